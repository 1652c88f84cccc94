/* SPDX-License-Identifier: MIT */
/*
 * Topic names and filters: the validators and the matcher of
 * client/topicname.c, the router's trie (daemon/router.c: matching,
 * queue-group candidates, topic walks, pruning) and the filter algebra of
 * the access rules (daemon/acl.c: overlaps, covers), all checked against
 * plain reference code written here from docs/PROTOCOL.md section 9.
 *
 * Input: a flags byte, then strings separated by '\n' (a '\n' is a
 * control character, never part of a valid topic). Each string is checked
 * as a name and as a filter; the valid ones are subscribed (filters) and
 * published to (names) in a router and matched every way.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "fuzz.h"
#include "router.h"
#include "topicname.h"

#define MAX_STRINGS 40
#define MAX_LEVELS TOPIC_MAX_LEVELS
#define N_OWNERS_MAX 4
#define N_GROUPS 2

typedef struct Levels {
        size_t n;
        const char *s[MAX_LEVELS + 1];
        size_t len[MAX_LEVELS + 1];
} Levels;

/* Splits a valid name or filter at every '/'. */
static void split(const char *s, size_t len, Levels *ret) {
        size_t start = 0, i;

        ret->n = 0;
        for (i = 0; i <= len; i++) {
                if (i == len || s[i] == '/') {
                        FUZZ_CHECK(ret->n <= MAX_LEVELS, "a valid topic with more than %d levels",
                                   MAX_LEVELS);
                        ret->s[ret->n] = s + start;
                        ret->len[ret->n] = i - start;
                        ret->n++;
                        start = i + 1;
                }
        }
}

static bool level_eq(const Levels *l, size_t i, const char *s) {
        size_t n = strlen(s);
        return l->len[i] == n && memcmp(l->s[i], s, n) == 0;
}

static bool level_wild(const Levels *l, size_t i) {
        return level_eq(l, i, "+") || level_eq(l, i, "#");
}

/* PROTOCOL.md 9.4, as its pseudocode says. */
static bool ref_match(const Levels *f, const Levels *t) {
        size_t i;

        if (t->len[0] > 0 && t->s[0][0] == '$' && level_wild(f, 0))
                return false;
        for (i = 0; i < f->n; i++) {
                if (level_eq(f, i, "#"))
                        return true;
                if (i >= t->n)
                        return false;
                if (!level_eq(f, i, "+") &&
                    (f->len[i] != t->len[i] || memcmp(f->s[i], t->s[i], f->len[i]) != 0))
                        return false;
        }
        return f->n == t->n;
}

/* PROTOCOL.md 9.1 to 9.3: every TopicCheck that applies to @s (bit per
 * code); 1 << TOPIC_OK alone when it is valid. Which one a validator
 * reports when several apply is its business. */
static unsigned ref_check(const uint8_t *s, size_t len, size_t max, bool filter) {
        unsigned bad = 0;
        size_t i, slashes = 0, start = 0;

        if (len == 0)
                return 1u << TOPIC_E_EMPTY;
        if (len > max)
                bad |= 1u << TOPIC_E_TOO_LONG;
        if (!fuzz_utf8_valid(s, len))
                bad |= 1u << TOPIC_E_UTF8;
        for (i = 0; i <= len; i++) {
                if (i < len && (s[i] < 0x20 || s[i] == 0x7f))
                        bad |= 1u << TOPIC_E_CONTROL;
                if (i < len && (s[i] == '+' || s[i] == '#') && !filter)
                        bad |= 1u << TOPIC_E_WILDCARD;
                if (i == len || s[i] == '/') {
                        /* The level [start, i). */
                        size_t k, n = i - start;
                        bool has_wild = false;
                        for (k = start; k < i; k++)
                                if (s[k] == '+' || s[k] == '#')
                                        has_wild = true;
                        if (filter && has_wild && n != 1)
                                bad |= 1u << TOPIC_E_PARTIAL;
                        if (filter && n == 1 && s[start] == '#' && i != len)
                                bad |= 1u << TOPIC_E_HASH_NOT_LAST;
                        if (i < len)
                                slashes++;
                        start = i + 1;
                }
        }
        if (slashes >= MAX_LEVELS)
                bad |= 1u << TOPIC_E_TOO_DEEP;
        return bad ? bad : 1u << TOPIC_OK;
}

static void check_validators(const uint8_t *s, size_t len, size_t max) {
        unsigned want_name = ref_check(s, len, max, false);
        unsigned want_filter = ref_check(s, len, max, true);
        TopicCheck name = topic_name_check((const char *)s, len, max);
        TopicCheck filter = topic_filter_check((const char *)s, len, max);
        bool printable = fuzz_utf8_valid(s, len);
        size_t i;

        FUZZ_CHECK((unsigned)name < _TOPIC_E_MAX && (want_name & (1u << name)),
                   "topic_name_check says %d (%s), the rules allow 0x%x", name,
                   topic_check_str(name), want_name);
        FUZZ_CHECK((unsigned)filter < _TOPIC_E_MAX && (want_filter & (1u << filter)),
                   "topic_filter_check says %d (%s), the rules allow 0x%x", filter,
                   topic_check_str(filter), want_filter);
        /* Every valid name is a valid filter that matches only itself. */
        FUZZ_CHECK(name != TOPIC_OK || filter == TOPIC_OK, "a valid name that is no valid filter");

        for (i = 0; i < len; i++)
                if (s[i] < 0x20 || s[i] == 0x7f)
                        printable = false;
        FUZZ_CHECK(utf8_printable((const char *)s, len) == printable,
                   "utf8_printable says %d, the reference %d", !printable, printable);
}

typedef struct Str {
        const char *s;
        size_t len;
        Levels lv;
} Str;

typedef struct Ctx {
        Router *router;
        Str names[MAX_STRINGS];
        size_t n_names;
        Str filters[MAX_STRINGS];
        size_t n_filters;
        RouterOwner owners[N_OWNERS_MAX];
        size_t n_owners;
        bool groups;
        Subscription *subs[MAX_STRINGS];
        RouterTopic *topics[MAX_STRINGS];

        /* One router_match. */
        const Str *name;
        uint32_t type;
        bool owner_seen[N_OWNERS_MAX];
        bool group_seen[N_GROUPS];
        bool cand_seen[MAX_STRINGS];
        /* One router_match_topics. */
        const Str *filter;
        bool topic_seen[MAX_STRINGS];
} Ctx;

static const char *const group_names[N_GROUPS] = { "g0", "g1" };

static size_t sub_index(const Ctx *x, const Subscription *s) {
        size_t i;
        for (i = 0; i < x->n_filters; i++)
                if (x->subs[i] == s)
                        return i;
        fuzz_fail(__FILE__, __LINE__, "sub_index", "the router handed out a subscription it was never given");
}

/* The subscription made of filter @i. */
static size_t sub_owner(const Ctx *x, size_t i) {
        return i % x->n_owners;
}
static int sub_group(const Ctx *x, size_t i) {
        return x->groups && i % 2 == 0 ? (int)((i / 2) % N_GROUPS) : -1;
}
static bool sub_admits(size_t i, uint32_t type) {
        return i % 3 != 1 || type == i % 4;
}
static bool sub_takes(const Ctx *x, size_t i) {
        return sub_admits(i, x->type) && ref_match(&x->filters[i].lv, &x->name->lv);
}

static void on_visit(Subscription *s, void *userdata) {
        Ctx *x = userdata;
        size_t i = sub_index(x, s), o = sub_owner(x, i);

        FUZZ_CHECK(s->owner == &x->owners[o], "subscription with the wrong owner");
        FUZZ_CHECK(!x->owner_seen[o], "owner %zu visited twice for '%.*s'", o, (int)x->name->len,
                   x->name->s);
        FUZZ_CHECK(sub_group(x, i) < 0, "a queue group member visited as an ordinary subscriber");
        FUZZ_CHECK(sub_takes(x, i), "filter '%.*s' (types %u) visited for '%.*s' type %u",
                   (int)x->filters[i].len, x->filters[i].s, s->n_types ? s->types[0] : 0,
                   (int)x->name->len, x->name->s, x->type);
        x->owner_seen[o] = true;
}

static void on_group(Subscription **cands, size_t n, uint32_t *rr, void *userdata) {
        Ctx *x = userdata;
        int g = -1;
        size_t k;

        FUZZ_CHECK(n > 0, "a queue group called with no candidates");
        for (k = 0; k < n; k++) {
                size_t i = sub_index(x, cands[k]);
                int gi = sub_group(x, i);
                FUZZ_CHECK(gi >= 0, "a subscription without a group among a group's candidates");
                FUZZ_CHECK(g < 0 || gi == g, "candidates of two groups in one call");
                g = gi;
                FUZZ_CHECK(!x->cand_seen[i], "a group candidate given twice");
                FUZZ_CHECK(sub_takes(x, i), "group candidate '%.*s' does not take '%.*s'",
                           (int)x->filters[i].len, x->filters[i].s, (int)x->name->len, x->name->s);
                x->cand_seen[i] = true;
        }
        FUZZ_CHECK(!x->group_seen[g], "group %d called twice for one message", g);
        x->group_seen[g] = true;
        (*rr)++;
}

static void check_route(Ctx *x, const Str *name, uint32_t type) {
        size_t i, visited, want = 0;
        bool owner_want[N_OWNERS_MAX] = { false }, group_want[N_GROUPS] = { false };

        x->name = name;
        x->type = type;
        memset(x->owner_seen, 0, sizeof(x->owner_seen));
        memset(x->group_seen, 0, sizeof(x->group_seen));
        memset(x->cand_seen, 0, sizeof(x->cand_seen));
        visited = router_match(x->router, name->s, name->len, type, on_visit, on_group, x);
        for (i = 0; i < x->n_filters; i++) {
                bool takes = sub_takes(x, i);
                int g = sub_group(x, i);
                if (g >= 0) {
                        FUZZ_CHECK(x->cand_seen[i] == takes,
                                   "group member '%.*s' %s a candidate for '%.*s' type %u",
                                   (int)x->filters[i].len, x->filters[i].s,
                                   takes ? "was not" : "was", (int)name->len, name->s, type);
                        group_want[g] |= takes;
                } else if (takes)
                        owner_want[sub_owner(x, i)] = true;
        }
        for (i = 0; i < x->n_owners; i++) {
                FUZZ_CHECK(x->owner_seen[i] == owner_want[i], "owner %zu %s for '%.*s' type %u", i,
                           owner_want[i] ? "not visited" : "visited", (int)name->len, name->s, type);
                want += owner_want[i];
        }
        for (i = 0; i < N_GROUPS; i++)
                want += group_want[i];
        FUZZ_CHECK(visited == want, "router_match returned %zu, visited %zu", visited, want);
}

static size_t name_index(const Ctx *x, const char *s, size_t len) {
        size_t i;
        for (i = 0; i < x->n_names; i++)
                if (x->names[i].len == len && memcmp(x->names[i].s, s, len) == 0)
                        return i;
        return SIZE_MAX;
}

static void on_topic(const char *name, size_t len, RouterTopic *t, void *userdata) {
        Ctx *x = userdata;
        size_t i = name_index(x, name, len);

        FUZZ_CHECK(i != SIZE_MAX, "router_match_topics made up topic '%.*s'", (int)len, name);
        FUZZ_CHECK(t == x->topics[i], "topic '%.*s' with another topic's state", (int)len, name);
        FUZZ_CHECK(!x->topic_seen[i], "topic '%.*s' visited twice", (int)len, name);
        FUZZ_CHECK(ref_match(&x->filter->lv, &x->names[i].lv), "filter '%.*s' walked to '%.*s'",
                   (int)x->filter->len, x->filter->s, (int)len, name);
        x->topic_seen[i] = true;
}

static void check_topic_walk(Ctx *x, const Str *filter) {
        size_t i;

        x->filter = filter;
        memset(x->topic_seen, 0, sizeof(x->topic_seen));
        router_match_topics(x->router, filter->s, filter->len, on_topic, x);
        for (i = 0; i < x->n_names; i++)
                FUZZ_CHECK(x->topic_seen[i] || !ref_match(&filter->lv, &x->names[i].lv),
                           "filter '%.*s' did not walk to '%.*s'", (int)filter->len, filter->s,
                           (int)x->names[i].len, x->names[i].s);
}

/*
 * Exact answers for small filters: every topic that could tell the
 * difference is made of, at each level, a literal of one of the two filters
 * there or one other level (all others behave alike: no '$' at the top,
 * where a wildcard would not match it), and is at most one level deeper
 * than the deeper filter.
 */
#define SMALL_LEVELS 4

typedef struct Brute {
        const Levels *a, *b;
        size_t depth;
        const char *cand[SMALL_LEVELS + 1][3];
        size_t cand_len[SMALL_LEVELS + 1][3];
        size_t n_cand[SMALL_LEVELS + 1];
        bool overlap;      /* some topic matches both */
        bool a_covers_b;   /* every topic b matches, a matches */
        bool b_covers_a;
} Brute;

static void brute_add(Brute *w, size_t i, const Levels *f) {
        size_t k;
        if (i >= f->n || level_wild(f, i))
                return;
        for (k = 0; k < w->n_cand[i]; k++)
                if (w->cand_len[i][k] == f->len[i] && memcmp(w->cand[i][k], f->s[i], f->len[i]) == 0)
                        return;
        w->cand[i][w->n_cand[i]] = f->s[i];
        w->cand_len[i][w->n_cand[i]] = f->len[i];
        w->n_cand[i]++;
}

/* A level at @i that is none of the literals there (one of three is). */
static void brute_add_other(Brute *w, size_t i) {
        static const char *const other[3] = { "x", "y", "z" };
        size_t k, o;

        for (o = 0; o < 3; o++) {
                for (k = 0; k < w->n_cand[i]; k++)
                        if (w->cand_len[i][k] == 1 && w->cand[i][k][0] == other[o][0])
                                break;
                if (k == w->n_cand[i])
                        break;
        }
        w->cand[i][w->n_cand[i]] = other[o];
        w->cand_len[i][w->n_cand[i]] = 1;
        w->n_cand[i]++;
}

static void brute_walk(Brute *w, Levels *t, size_t i) {
        size_t k;

        if (i > 0 && !(t->n == 1 && t->len[0] == 0)) {
                /* t (i levels) is a topic name: "" alone is not. */
                bool ma = ref_match(w->a, t), mb = ref_match(w->b, t);
                w->overlap |= ma && mb;
                if (mb && !ma)
                        w->a_covers_b = false;
                if (ma && !mb)
                        w->b_covers_a = false;
        }
        if (i == w->depth)
                return;
        for (k = 0; k < w->n_cand[i]; k++) {
                t->s[i] = w->cand[i][k];
                t->len[i] = w->cand_len[i][k];
                t->n = i + 1;
                brute_walk(w, t, i + 1);
        }
}

static void check_filter_pair(const Ctx *x, const Str *a, const Str *b) {
        bool ov = acl_filter_overlaps(a->s, a->len, b->s, b->len);
        bool ab = acl_filter_covers(a->s, a->len, b->s, b->len);
        bool ba = acl_filter_covers(b->s, b->len, a->s, a->len);
        size_t i;

        FUZZ_CHECK(ov == acl_filter_overlaps(b->s, b->len, a->s, a->len),
                   "acl_filter_overlaps('%.*s', '%.*s') is not symmetric", (int)a->len, a->s,
                   (int)b->len, b->s);
        /* What the input's names show. */
        for (i = 0; i < x->n_names; i++) {
                bool ma = ref_match(&a->lv, &x->names[i].lv), mb = ref_match(&b->lv, &x->names[i].lv);
                FUZZ_CHECK(ov || !(ma && mb), "'%.*s' matches '%.*s' and '%.*s', which do not overlap",
                           (int)x->names[i].len, x->names[i].s, (int)a->len, a->s, (int)b->len, b->s);
                FUZZ_CHECK(!ab || !mb || ma, "'%.*s' covers '%.*s', but not its topic '%.*s'",
                           (int)a->len, a->s, (int)b->len, b->s, (int)x->names[i].len,
                           x->names[i].s);
                FUZZ_CHECK(!ba || !ma || mb, "'%.*s' covers '%.*s', but not its topic '%.*s'",
                           (int)b->len, b->s, (int)a->len, a->s, (int)x->names[i].len,
                           x->names[i].s);
        }
        /* The whole truth, when it is small enough to enumerate. */
        if (a->lv.n <= SMALL_LEVELS - 1 && b->lv.n <= SMALL_LEVELS - 1) {
                Brute w = { .a = &a->lv, .b = &b->lv, .overlap = false, .a_covers_b = true,
                            .b_covers_a = true };
                Levels t;
                w.depth = (a->lv.n > b->lv.n ? a->lv.n : b->lv.n) + 1;
                for (i = 0; i < w.depth; i++) {
                        brute_add(&w, i, &a->lv);
                        brute_add(&w, i, &b->lv);
                        brute_add_other(&w, i);
                }
                brute_walk(&w, &t, 0);
                FUZZ_CHECK(ov == w.overlap, "acl_filter_overlaps('%.*s', '%.*s') says %d, the truth is %d",
                           (int)a->len, a->s, (int)b->len, b->s, ov, w.overlap);
                FUZZ_CHECK(ab == w.a_covers_b, "acl_filter_covers('%.*s', '%.*s') says %d, the truth is %d",
                           (int)a->len, a->s, (int)b->len, b->s, ab, w.a_covers_b);
                FUZZ_CHECK(ba == w.b_covers_a, "acl_filter_covers('%.*s', '%.*s') says %d, the truth is %d",
                           (int)b->len, b->s, (int)a->len, a->s, ba, w.b_covers_a);
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t maxes[4] = { 1024, 16, 65535, 3 };
        Ctx *x;
        Router *fresh = NULL;
        size_t max, pos = 1, i, j, nodes_topics_only;
        uint8_t flags;

        if (size < 1)
                return 0;
        flags = data[0];
        max = maxes[flags & 3];
        x = calloc(1, sizeof(*x));
        FUZZ_CHECK(x, "out of memory");
        x->n_owners = 1 + ((flags >> 2) & 3);
        x->groups = flags & 0x10;

        for (i = 0; i < MAX_STRINGS && pos <= size; i++) {
                const uint8_t *s = data + pos;
                const uint8_t *nl = memchr(s, '\n', size - pos);
                size_t len = nl ? (size_t)(nl - s) : size - pos;

                pos += len + 1;
                check_validators(s, len, max);
                if (topic_name_check((const char *)s, len, max) == TOPIC_OK &&
                    name_index(x, (const char *)s, len) == SIZE_MAX) {
                        Str *n = &x->names[x->n_names++];
                        *n = (Str){ (const char *)s, len, { 0 } };
                        split(n->s, len, &n->lv);
                }
                if (topic_filter_check((const char *)s, len, max) == TOPIC_OK) {
                        Str *f = &x->filters[x->n_filters++];
                        *f = (Str){ (const char *)s, len, { 0 } };
                        split(f->s, len, &f->lv);
                }
        }

        /* The matcher, every filter against every name. */
        for (i = 0; i < x->n_filters; i++) {
                const Str *f = &x->filters[i];
                bool wild = false;
                for (j = 0; j < f->lv.n; j++)
                        wild |= level_wild(&f->lv, j);
                FUZZ_CHECK(topic_filter_is_wildcard(f->s, f->len) == wild,
                           "topic_filter_is_wildcard('%.*s') says %d", (int)f->len, f->s, !wild);
                for (j = 0; j < x->n_names; j++) {
                        const Str *n = &x->names[j];
                        bool want = ref_match(&f->lv, &n->lv);
                        FUZZ_CHECK(topic_filter_match(f->s, f->len, n->s, n->len) == want,
                                   "topic_filter_match('%.*s', '%.*s') says %d", (int)f->len, f->s,
                                   (int)n->len, n->s, !want);
                }
        }

        /* The router: subscriptions and topics interleaved, as a broker
         * sees them. */
        FUZZ_CHECK(router_new(&x->router) == 0, "out of memory");
        for (i = 0; i < MAX_STRINGS; i++) {
                if (i < x->n_filters) {
                        const Str *f = &x->filters[i];
                        uint32_t type = (uint32_t)(i % 4);
                        int g = sub_group(x, i);
                        x->subs[i] = subscription_new(&x->owners[sub_owner(x, i)], (uint32_t)i + 1, f->s,
                                                      f->len, &type, i % 3 == 1 ? 1 : 0,
                                                      g >= 0 ? group_names[g] : NULL, g >= 0 ? 2 : 0);
                        FUZZ_CHECK(x->subs[i], "out of memory");
                        FUZZ_CHECK(router_add(x->router, x->subs[i]) == 0, "out of memory");
                }
                if (i < x->n_names) {
                        int r;
                        x->topics[i] = router_topic(x->router, x->names[i].s, x->names[i].len, true,
                                                    SIZE_MAX, &r);
                        FUZZ_CHECK(x->topics[i] && r == 0, "router_topic failed: %d", r);
                }
        }
        FUZZ_CHECK(router_n_subscriptions(x->router) == x->n_filters, "subscription count %zu",
                   router_n_subscriptions(x->router));
        FUZZ_CHECK(router_n_topics(x->router) == x->n_names, "topic count %zu",
                   router_n_topics(x->router));
        for (i = 0; i < x->n_names; i++) {
                int r;
                FUZZ_CHECK(router_topic(x->router, x->names[i].s, x->names[i].len, false, 0, &r) ==
                                   x->topics[i],
                           "topic '%.*s' not found again", (int)x->names[i].len, x->names[i].s);
                for (j = 0; j < 4; j++)
                        check_route(x, &x->names[i], (uint32_t)j);
        }
        for (i = 0; i < x->n_filters; i++)
                check_topic_walk(x, &x->filters[i]);
        for (i = 0; i < x->n_filters && i < 12; i++)
                for (j = i; j < x->n_filters && j < 12; j++)
                        check_filter_pair(x, &x->filters[i], &x->filters[j]);

        /* Unsubscribing everything (odd ones first) leaves the nodes the
         * topics need, as in a router that never had subscriptions. */
        for (j = 0; j < 2; j++)
                for (i = j == 0 ? 1 : 0; i < x->n_filters; i += 2) {
                        router_remove(x->router, x->subs[i]);
                        x->subs[i] = subscription_free(x->subs[i]);
                }
        FUZZ_CHECK(router_n_subscriptions(x->router) == 0, "subscriptions left");
        FUZZ_CHECK(router_n_groups(x->router) == 0, "groups left");
        FUZZ_CHECK(router_new(&fresh) == 0, "out of memory");
        for (i = 0; i < x->n_names; i++) {
                int r;
                FUZZ_CHECK(router_topic(fresh, x->names[i].s, x->names[i].len, true, SIZE_MAX, &r),
                           "router_topic failed: %d", r);
        }
        nodes_topics_only = router_n_nodes(fresh);
        FUZZ_CHECK(router_n_nodes(x->router) == nodes_topics_only,
                   "%zu trie nodes after unsubscribing everything, %zu for the topics alone",
                   router_n_nodes(x->router), nodes_topics_only);
        router_free(fresh);
        router_free(x->router);
        free(x);
        return 0;
}
