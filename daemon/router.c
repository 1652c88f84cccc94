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

/* Members of a queue group share its messages: each message that matches
 * some of them goes to one. Collected per publish in cands. */
struct RouterGroup {
        char *name;
        uint32_t n_members;
        uint32_t rr;
        uint64_t epoch;        /* the publish cands belong to */
        Subscription **cands;
        size_t n_cands, cap_cands;
        RouterGroup *next;     /* all groups */
        RouterGroup *touched;  /* groups with cands in this publish */
};

/* Numbers every match, across all routers: an owner (a connection) can have
 * subscriptions in several routers (messages, responders), and its epoch
 * must never look current to one router because of a match in another. */
static uint64_t match_epoch;

struct Router {
        TrieNode *root;
        void (*retained_free)(void *);
        RouterGroup *groups;
        size_t n_groups;
        uint64_t epoch;
        uint64_t shape;  /* changes whenever a node is added or freed */
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
        r->shape++;
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
                r->shape++;
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

static void node_free_tree(Router *r, TrieNode *n) {
        uint32_t i;
        if (!n)
                return;
        for (i = 0; i < n->cap_children; i++)
                node_free_tree(r, n->children[i]);
        node_free_tree(r, n->plus);
        node_free_tree(r, n->hash);
        if (n->topic && n->topic->retained && r->retained_free)
                r->retained_free(n->topic->retained);
        /* Subscriptions belong to their owners; only unlink them. */
        for (Subscription *s = n->subs; s; s = s->node_next)
                s->node = NULL;
        free(n->children);
        if (n->topic)
                free(n->topic->walk);
        free(n->topic);
        free(n);
}

Router *router_free(Router *r) {
        if (!r)
                return NULL;
        node_free_tree(r, r->root);
        while (r->groups) {
                RouterGroup *g = r->groups;
                r->groups = g->next;
                free(g->cands);
                free(g->name);
                free(g);
        }
        free(r);
        return NULL;
}

Subscription *subscription_new(RouterOwner *owner, uint32_t id, const char *filter,
                               size_t filter_len, const uint32_t *types, size_t n_types,
                               const char *group, size_t group_len) {
        size_t off = sizeof(Subscription) + filter_len + 1;
        Subscription *s;

        if (filter_len > UINT16_MAX || n_types > UINT16_MAX)
                return NULL;
        off = (off + alignof(uint32_t) - 1) & ~(alignof(uint32_t) - 1);
        s = calloc(1, off + n_types * sizeof(uint32_t) + (group_len ? group_len + 1 : 0));
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
        if (group_len) {
                s->group_name = (char *)(s->types + n_types);
                memcpy(s->group_name, group, group_len);
        }
        return s;
}

Subscription *subscription_free(Subscription *s) {
        free(s);
        return NULL;
}

static RouterGroup *group_get(Router *r, const char *name) {
        RouterGroup *g;

        for (g = r->groups; g; g = g->next)
                if (strcmp(g->name, name) == 0)
                        return g;
        g = calloc(1, sizeof(*g));
        if (!g)
                return NULL;
        g->name = strdup(name);
        if (!g->name) {
                free(g);
                return NULL;
        }
        g->next = r->groups;
        r->groups = g;
        r->n_groups++;
        return g;
}

static void group_put(Router *r, RouterGroup *g) {
        RouterGroup **p;

        if (--g->n_members > 0)
                return;
        for (p = &r->groups; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        r->n_groups--;
        free(g->cands);
        free(g->name);
        free(g);
}

int router_add(Router *r, Subscription *s) {
        RouterGroup *g = NULL;
        TrieNode *n;

        if (s->group_name) {
                g = group_get(r, s->group_name);
                if (!g)
                        return -ENOMEM;
                g->n_members++;
                /* Room for every member as a candidate: no allocation when
                 * publishing. */
                if (g->cap_cands < g->n_members) {
                        size_t cap = g->cap_cands ? g->cap_cands * 2 : 4;
                        Subscription **c = realloc(g->cands, cap * sizeof(*c));
                        if (!c) {
                                group_put(r, g);
                                return -ENOMEM;
                        }
                        g->cands = c;
                        g->cap_cands = cap;
                }
        }
        n = path_get(r, s->filter, s->filter_len, true);
        if (!n) {
                if (g)
                        group_put(r, g);
                return -ENOMEM;
        }
        s->group = g;
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
        if (s->group) {
                group_put(r, s->group);
                s->group = NULL;
        }
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
        n->topic = calloc(1, sizeof(RouterTopic) + len + 1);
        if (!n->topic) {
                node_prune(r, n);
                *ret_err = -ENOMEM;
                return NULL;
        }
        n->topic->name_len = (uint16_t)len;
        memcpy(n->topic->name, name, len);
        r->n_topics++;
        return n->topic;
}

typedef struct MatchCtx {
        Router *r;
        const char *name;
        size_t len;
        uint32_t type;
        RouterVisitFn visit;
        RouterGroupFn group;
        void *userdata;
        size_t n_visited;
        RouterGroup *touched;
        RouterTopic *record; /* remember the nodes emitted here, if set */
        bool record_failed;
} MatchCtx;

bool subscription_admits(const Subscription *s, uint32_t type) {
        size_t i;
        if (s->n_types == 0)
                return true;
        for (i = 0; i < s->n_types; i++)
                if (s->types[i] == type)
                        return true;
        return false;
}

/* Appends @n to the nodes m->record's match visits. */
static void record_node(MatchCtx *m, TrieNode *n) {
        RouterTopic *t = m->record;

        if (t->n_walk == t->cap_walk) {
                uint32_t cap = t->cap_walk ? t->cap_walk * 2 : 4;
                TrieNode **w = realloc(t->walk, cap * sizeof(*w));
                if (!w) {
                        m->record_failed = true;
                        return;
                }
                t->walk = w;
                t->cap_walk = cap;
        }
        t->walk[t->n_walk++] = n;
}

static void emit(MatchCtx *m, TrieNode *n) {
        Subscription *s;

        if (m->record)
                record_node(m, n);
        for (s = n->subs; s; s = s->node_next) {
                if (s->group) {
                        RouterGroup *g = s->group;
                        if (!m->group || !subscription_admits(s, m->type))
                                continue;
                        if (g->epoch != m->r->epoch) {
                                g->epoch = m->r->epoch;
                                g->n_cands = 0;
                                g->touched = m->touched;
                                m->touched = g;
                        }
                        /* A member matched by two of its filters' paths is
                         * still one member; cap_cands >= n_members. */
                        if (g->n_cands < g->cap_cands)
                                g->cands[g->n_cands++] = s;
                        continue;
                }
                if (s->owner->epoch == m->r->epoch || !subscription_admits(s, m->type))
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

static size_t match(Router *r, RouterTopic *t, const char *name, size_t len, uint32_t type,
                    RouterVisitFn visit, RouterGroupFn group, void *userdata) {
        MatchCtx m = {
                .r = r, .name = name, .len = len, .type = type, .visit = visit, .group = group,
                .userdata = userdata,
        };
        RouterGroup *g;
        uint32_t i;

        r->epoch = ++match_epoch;
        if (t && t->walk_shape == r->shape) {
                /* The same nodes as last time: no lookups. */
                for (i = 0; i < t->n_walk; i++)
                        emit(&m, t->walk[i]);
        } else {
                if (t) {
                        t->n_walk = 0;
                        t->walk_shape = 0; /* shapes count from 1 */
                        m.record = t;
                }
                match_walk(&m, r->root, 0);
                if (t && !m.record_failed)
                        t->walk_shape = r->shape;
        }
        for (g = m.touched; g; g = g->touched) {
                group(g->cands, g->n_cands, &g->rr, userdata);
                m.n_visited++;
        }
        return m.n_visited;
}

size_t router_match(Router *r, const char *name, size_t len, uint32_t type, RouterVisitFn visit,
                    RouterGroupFn group, void *userdata) {
        return match(r, NULL, name, len, type, visit, group, userdata);
}

size_t router_match_topic(Router *r, RouterTopic *t, const char *name, size_t len, uint32_t type,
                          RouterVisitFn visit, RouterGroupFn group, void *userdata) {
        return match(r, t, name, len, type, visit, group, userdata);
}

typedef struct TopicWalk {
        const char *filter;
        size_t len;
        RouterTopicFn visit;
        void *userdata;
        char name[65536];
} TopicWalk;

/* Every topic at or below @n; @nlen is the length of @n's name in w->name. */
static void topics_below(TopicWalk *w, TrieNode *n, size_t nlen, bool skip_dollar) {
        uint32_t i;

        if (n->topic)
                w->visit(w->name, nlen, n->topic, w->userdata);
        for (i = 0; i < n->cap_children; i++) {
                TrieNode *c = n->children[i];
                size_t clen;
                if (!c || (skip_dollar && c->level_len > 0 && c->level[0] == '$'))
                        continue;
                clen = nlen == 0 && n->parent == NULL ? c->level_len : nlen + 1 + c->level_len;
                if (clen >= sizeof(w->name))
                        continue;
                if (n->parent) {
                        w->name[nlen] = '/';
                        memcpy(w->name + nlen + 1, c->level, c->level_len);
                } else
                        memcpy(w->name, c->level, c->level_len);
                topics_below(w, c, clen, false);
        }
}

/* Walks the topics matching the filter from @pos on, below @n. */
static void topics_walk(TopicWalk *w, TrieNode *n, size_t nlen, size_t pos) {
        bool at_root = n->parent == NULL;
        size_t e;
        uint32_t i;

        if (pos > w->len) {
                if (n->topic)
                        w->visit(w->name, nlen, n->topic, w->userdata);
                return;
        }
        for (e = pos; e < w->len && w->filter[e] != '/'; e++)
                ;
        if (e - pos == 1 && w->filter[pos] == '#') {
                /* The parent itself ("a/#" matches "a"), then all below. */
                if (!at_root && n->topic)
                        w->visit(w->name, nlen, n->topic, w->userdata);
                if (at_root)
                        topics_below(w, n, 0, true);
                else {
                        for (i = 0; i < n->cap_children; i++) {
                                TrieNode *c = n->children[i];
                                size_t clen;
                                if (!c)
                                        continue;
                                clen = nlen + 1 + c->level_len;
                                if (clen >= sizeof(w->name))
                                        continue;
                                w->name[nlen] = '/';
                                memcpy(w->name + nlen + 1, c->level, c->level_len);
                                topics_below(w, c, clen, false);
                        }
                }
                return;
        }
        for (i = 0; i < n->cap_children; i++) {
                TrieNode *c = n->children[i];
                size_t clen, off;
                if (!c)
                        continue;
                if (e - pos == 1 && w->filter[pos] == '+') {
                        if (at_root && c->level_len > 0 && c->level[0] == '$')
                                continue;
                } else if (c->level_len != e - pos || memcmp(c->level, w->filter + pos, e - pos) != 0)
                        continue;
                off = at_root ? 0 : nlen + 1;
                clen = off + c->level_len;
                if (clen >= sizeof(w->name))
                        continue;
                if (!at_root)
                        w->name[nlen] = '/';
                memcpy(w->name + off, c->level, c->level_len);
                topics_walk(w, c, clen, e + 1);
        }
}

void router_match_topics(Router *r, const char *filter, size_t len, RouterTopicFn visit,
                         void *userdata) {
        TopicWalk *w = malloc(sizeof(*w));
        if (!w)
                return;
        w->filter = filter;
        w->len = len;
        w->visit = visit;
        w->userdata = userdata;
        topics_walk(w, r->root, 0, 0);
        free(w);
}

void router_foreach_group(Router *r, void (*fn)(const RouterGroup *g, void *userdata), void *userdata) {
        RouterGroup *g;
        for (g = r->groups; g; g = g->next)
                fn(g, userdata);
}

size_t router_n_groups(const Router *r) {
        return r->n_groups;
}

const char *router_group_name(const RouterGroup *g) {
        return g->name;
}

uint32_t router_group_size(const RouterGroup *g) {
        return g->n_members;
}

void router_set_retained_free(Router *r, void (*fn)(void *retained)) {
        r->retained_free = fn;
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
