/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "util.h"

/*
 * A node per level. Literal children sit in an open-addressing hash table
 * (linear probing, deletion by backward shift); the '+' and '#' children have
 * their own pointers because every walk looks at them.
 */
struct TrieNode {
        TrieNode *parent;
        TrieNode **children;
        uint32_t n_children;
        uint32_t cap_children; /* 0 or a power of two */
        TrieNode *plus, *hash;
        Subscription *subs;    /* filters that end here */
        RouterTopic *topic;    /* set when this path was published to */
        uint32_t level_hash;
        uint16_t level_len;
        char level[];
};

struct Router {
        TrieNode *root;
        uint64_t epoch;
        size_t n_subs;
        size_t n_topics;
        size_t n_nodes;
};

static uint32_t level_hash(const char *s, size_t len) {
        /* FNV-1a: short keys, no adversarial worry beyond probe length, and
         * every table is bounded by the broker's topic limit. */
        uint32_t h = 2166136261u;
        size_t i;
        for (i = 0; i < len; i++) {
                h ^= (unsigned char)s[i];
                h *= 16777619u;
        }
        return h;
}

static TrieNode *node_new(Router *r, TrieNode *parent, const char *level, size_t len) {
        TrieNode *n = calloc(1, sizeof(*n) + len + 1);
        if (!n)
                return NULL;
        n->parent = parent;
        n->level_len = (uint16_t)len;
        n->level_hash = level_hash(level, len);
        memcpy(n->level, level, len);
        r->n_nodes++;
        return n;
}

static TrieNode *child_find(const TrieNode *n, const char *level, size_t len, uint32_t h) {
        uint32_t mask, i;

        if (n->n_children == 0)
                return NULL;
        mask = n->cap_children - 1;
        for (i = h & mask;; i = (i + 1) & mask) {
                TrieNode *c = n->children[i];
                if (!c)
                        return NULL;
                if (c->level_hash == h && c->level_len == len && memcmp(c->level, level, len) == 0)
                        return c;
        }
}

static void child_place(TrieNode **table, uint32_t cap, TrieNode *c) {
        uint32_t mask = cap - 1, i;
        for (i = c->level_hash & mask; table[i]; i = (i + 1) & mask)
                ;
        table[i] = c;
}

static int child_insert(TrieNode *n, TrieNode *c) {
        /* Keep the load factor at most 1/2. */
        if ((n->n_children + 1) * 2 > n->cap_children) {
                uint32_t cap = n->cap_children ? n->cap_children * 2 : 4, i;
                TrieNode **t = calloc(cap, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                for (i = 0; i < n->cap_children; i++)
                        if (n->children[i])
                                child_place(t, cap, n->children[i]);
                free(n->children);
                n->children = t;
                n->cap_children = cap;
        }
        child_place(n->children, n->cap_children, c);
        n->n_children++;
        return 0;
}

static void child_delete(TrieNode *n, TrieNode *c) {
        uint32_t mask = n->cap_children - 1, i, j;

        for (i = c->level_hash & mask; n->children[i] != c; i = (i + 1) & mask)
                ;
        n->children[i] = NULL;
        n->n_children--;
        /* Backward shift: re-place the entries of the probe run after i. */
        for (j = (i + 1) & mask; n->children[j]; j = (j + 1) & mask) {
                TrieNode *m = n->children[j];
                n->children[j] = NULL;
                child_place(n->children, n->cap_children, m);
        }
        if (n->n_children == 0) {
                free(n->children);
                n->children = NULL;
                n->cap_children = 0;
        }
}

/* Finds or creates the child of @n for @level (literal, "+" or "#"). */
static TrieNode *child_get(Router *r, TrieNode *n, const char *level, size_t len, bool create) {
        TrieNode *c, **slot = NULL;
        uint32_t h;

        if (len == 1 && level[0] == '+')
                slot = &n->plus;
        else if (len == 1 && level[0] == '#')
                slot = &n->hash;
        if (slot) {
                if (!*slot && create)
                        *slot = node_new(r, n, level, len);
                return *slot;
        }
        h = level_hash(level, len);
        c = child_find(n, level, len, h);
        if (c || !create)
                return c;
        c = node_new(r, n, level, len);
        if (!c)
                return NULL;
        if (child_insert(n, c) < 0) {
                free(c);
                r->n_nodes--;
                return NULL;
        }
        return c;
}

/* Frees @n and its now-empty ancestors (never the root). */
static void node_prune(Router *r, TrieNode *n) {
        while (n->parent && !n->subs && !n->topic && n->n_children == 0 && !n->plus && !n->hash) {
                TrieNode *p = n->parent;
                if (p->plus == n)
                        p->plus = NULL;
                else if (p->hash == n)
                        p->hash = NULL;
                else
                        child_delete(p, n);
                free(n);
                r->n_nodes--;
                n = p;
        }
}

/* Walks (and with @create builds) the path of @s; returns its last node. On a
 * failed create the partial path is pruned again and NULL returned. */
static TrieNode *path_get(Router *r, const char *s, size_t len, bool create) {
        TrieNode *n = r->root;
        size_t i = 0;

        for (;;) {
                size_t e = i;
                TrieNode *c;
                while (e < len && s[e] != '/')
                        e++;
                c = child_get(r, n, s + i, e - i, create);
                if (!c) {
                        if (create)
                                node_prune(r, n);
                        return NULL;
                }
                n = c;
                if (e >= len)
                        return n;
                i = e + 1;
        }
}

int router_new(Router **ret) {
        Router *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->root = node_new(r, NULL, "", 0);
        if (!r->root) {
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

static void node_free_tree(TrieNode *n) {
        uint32_t i;
        if (!n)
                return;
        for (i = 0; i < n->cap_children; i++)
                node_free_tree(n->children[i]);
        node_free_tree(n->plus);
        node_free_tree(n->hash);
        /* Subscriptions belong to their owners; only unlink them. */
        for (Subscription *s = n->subs; s; s = s->node_next)
                s->node = NULL;
        free(n->children);
        free(n->topic);
        free(n);
}

Router *router_free(Router *r) {
        if (!r)
                return NULL;
        node_free_tree(r->root);
        free(r);
        return NULL;
}

Subscription *subscription_new(RouterOwner *owner, uint32_t id, const char *filter,
                               size_t filter_len, const uint32_t *types, size_t n_types) {
        size_t off = sizeof(Subscription) + filter_len + 1;
        Subscription *s;

        if (filter_len > UINT16_MAX || n_types > UINT16_MAX)
                return NULL;
        off = (off + alignof(uint32_t) - 1) & ~(alignof(uint32_t) - 1);
        s = calloc(1, off + n_types * sizeof(uint32_t));
        if (!s)
                return NULL;
        s->owner = owner;
        s->id = id;
        s->filter_len = (uint16_t)filter_len;
        memcpy(s->filter, filter, filter_len);
        s->n_types = (uint16_t)n_types;
        s->types = (uint32_t *)((char *)s + off);
        if (n_types)
                memcpy(s->types, types, n_types * sizeof(uint32_t));
        return s;
}

Subscription *subscription_free(Subscription *s) {
        free(s);
        return NULL;
}

int router_add(Router *r, Subscription *s) {
        TrieNode *n = path_get(r, s->filter, s->filter_len, true);
        if (!n)
                return -ENOMEM;
        s->node = n;
        s->node_prev = NULL;
        s->node_next = n->subs;
        if (n->subs)
                n->subs->node_prev = s;
        n->subs = s;
        r->n_subs++;
        return 0;
}

void router_remove(Router *r, Subscription *s) {
        TrieNode *n = s->node;
        if (!n)
                return;
        if (s->node_prev)
                s->node_prev->node_next = s->node_next;
        else
                n->subs = s->node_next;
        if (s->node_next)
                s->node_next->node_prev = s->node_prev;
        s->node = NULL;
        s->node_prev = s->node_next = NULL;
        r->n_subs--;
        node_prune(r, n);
}

RouterTopic *router_topic(Router *r, const char *name, size_t len, bool create,
                          size_t max_topics, int *ret_err) {
        TrieNode *n;

        *ret_err = 0;
        n = path_get(r, name, len, false);
        if (n && n->topic)
                return n->topic;
        if (!create)
                return NULL;
        if (r->n_topics >= max_topics) {
                *ret_err = -ENOSPC;
                return NULL;
        }
        if (!n)
                n = path_get(r, name, len, true);
        if (!n) {
                *ret_err = -ENOMEM;
                return NULL;
        }
        n->topic = calloc(1, sizeof(RouterTopic));
        if (!n->topic) {
                node_prune(r, n);
                *ret_err = -ENOMEM;
                return NULL;
        }
        r->n_topics++;
        return n->topic;
}

typedef struct MatchCtx {
        Router *r;
        const char *name;
        size_t len;
        uint32_t type;
        RouterVisitFn visit;
        void *userdata;
        size_t n_visited;
} MatchCtx;

static bool type_admitted(const Subscription *s, uint32_t type) {
        size_t i;
        if (s->n_types == 0)
                return true;
        for (i = 0; i < s->n_types; i++)
                if (s->types[i] == type)
                        return true;
        return false;
}

static void emit(MatchCtx *m, TrieNode *n) {
        Subscription *s;
        for (s = n->subs; s; s = s->node_next) {
                if (s->owner->epoch == m->r->epoch || !type_admitted(s, m->type))
                        continue;
                s->owner->epoch = m->r->epoch;
                s->n_matched++;
                m->n_visited++;
                m->visit(s, m->userdata);
        }
}

/* @pos is where the next level of the name starts; > len when none is left. */
static void match_walk(MatchCtx *m, TrieNode *n, size_t pos) {
        bool at_root = n == m->r->root;
        /* Wildcards at the first level never match "$..." topics. */
        bool wild_ok = !(at_root && m->name[0] == '$');
        size_t e;
        TrieNode *c;

        if (n->hash && wild_ok)
                emit(m, n->hash);
        if (pos > m->len) {
                emit(m, n);
                return;
        }
        for (e = pos; e < m->len && m->name[e] != '/'; e++)
                ;
        c = child_find(n, m->name + pos, e - pos, level_hash(m->name + pos, e - pos));
        if (c)
                match_walk(m, c, e + 1);
        if (n->plus && wild_ok)
                match_walk(m, n->plus, e + 1);
}

size_t router_match(Router *r, const char *name, size_t len, uint32_t type, RouterVisitFn visit,
                    void *userdata) {
        MatchCtx m = {
                .r = r, .name = name, .len = len, .type = type, .visit = visit, .userdata = userdata,
        };
        r->epoch++;
        match_walk(&m, r->root, 0);
        return m.n_visited;
}

size_t router_n_subscriptions(const Router *r) {
        return r->n_subs;
}

size_t router_n_topics(const Router *r) {
        return r->n_topics;
}

size_t router_n_nodes(const Router *r) {
        return r->n_nodes;
}
