/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the subscription trie (daemon/router.c): adding, removing
 * and pruning, one visit per owner, type selection, the '$' rule, topic
 * state and its limit. Where a result can be computed another way, the
 * router is checked against topic_filter_match over every subscription.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "topicname.h"
#include "util.h"

#define MAX_TYPES 64 /* WIRE_MAX_TYPES_PER_SUB */

typedef struct Owner {
        RouterOwner ro; /* what the router sees */
        unsigned index;
        unsigned visits;
        Subscription *via; /* the subscription of the last visit */
} Owner;

static Owner *owner_of(Subscription *s) {
        return (Owner *)((char *)s->owner - offsetof(Owner, ro));
}

/* Every visit of one router_match call, in order. */
typedef struct Visits {
        size_t n, cap;
        Subscription **subs;
} Visits;

static void on_visit(Subscription *s, void *userdata) {
        Visits *v = userdata;
        Owner *o = owner_of(s);

        if (v->n == v->cap) {
                v->cap = v->cap ? v->cap * 2 : 16;
                v->subs = realloc(v->subs, v->cap * sizeof(*v->subs));
                cr_assert(not(zero(ptr, v->subs)));
        }
        v->subs[v->n++] = s;
        o->visits++;
        o->via = s;
}

static Router *router;

/* Every subscription add() made; teardown frees them, so a test that
 * fails halfway (or keeps its subscriptions to the end) leaks nothing. */
static Subscription **made;
static size_t n_made, cap_made;

static void remember(Subscription *s) {
        if (n_made == cap_made) {
                cap_made = cap_made ? cap_made * 2 : 64;
                made = realloc(made, cap_made * sizeof(*made));
                cr_assert(not(zero(ptr, made)));
        }
        made[n_made++] = s;
}

static void setup(void) {
        cr_assert(eq(int, router_new(&router), 0));
        cr_assert(eq(sz, router_n_nodes(router), 1), "a new router is just its root");
        cr_assert(eq(sz, router_n_subscriptions(router), 0));
        cr_assert(eq(sz, router_n_topics(router), 0));
}

static void teardown(void) {
        for (size_t i = 0; i < n_made; i++) {
                if (router)
                        router_remove(router, made[i]); /* no-op when removed already */
                subscription_free(made[i]);
        }
        free(made);
        made = NULL;
        n_made = cap_made = 0;
        router = router_free(router);
}

/* Allocates and adds a subscription with a type selection. */
static Subscription *add_typed(Owner *o, uint32_t id, const char *filter, const uint32_t *types,
                               size_t n_types) {
        Subscription *s;

        cr_assert(eq(int, topic_filter_check(filter, strlen(filter), 1024), TOPIC_OK),
                  "test bug: invalid filter \"%s\"", filter);
        s = subscription_new(&o->ro, id, filter, strlen(filter), types, n_types, NULL, 0);
        cr_assert(not(zero(ptr, s)));
        remember(s);
        cr_assert(eq(int, router_add(router, s), 0));
        cr_assert(not(zero(ptr, (void *)s->node)), "added subscription has no node");
        return s;
}

static Subscription *add(Owner *o, uint32_t id, const char *filter) {
        return add_typed(o, id, filter, NULL, 0);
}

/* Removes a subscription add() made; teardown frees it. */
static void del(Subscription *s) {
        router_remove(router, s);
        cr_assert(zero(ptr, (void *)s->node), "removed subscription still points at its node");
}

/* Runs one match and checks the invariants every match must keep: each
 * visited subscription matches the topic and admits the type, and no
 * owner is visited twice. Returns the visits (caller frees .subs). */
static Visits match(const char *topic, uint32_t type) {
        Visits v = { 0 };
        size_t n;

        cr_assert(eq(int, topic_name_check(topic, strlen(topic), 1024), TOPIC_OK),
                  "test bug: invalid topic \"%s\"", topic);
        n = router_match(router, topic, strlen(topic), type, on_visit, NULL, &v);
        cr_assert(eq(sz, n, v.n), "return value is the number of visits");
        for (size_t i = 0; i < v.n; i++) {
                Subscription *s = v.subs[i];
                bool admitted = s->n_types == 0;

                cr_assert(topic_filter_match(s->filter, s->filter_len, topic, strlen(topic)),
                          "visited through \"%s\", which does not match \"%s\"", s->filter, topic);
                for (size_t t = 0; t < s->n_types; t++)
                        admitted |= s->types[t] == type;
                cr_assert(admitted, "visited through \"%s\", which does not admit type %u", s->filter,
                          type);
                for (size_t j = 0; j < i; j++)
                        cr_assert(ne(ptr, s->owner, v.subs[j]->owner), "owner visited twice for \"%s\"",
                                  topic);
        }
        return v;
}

static size_t match_count(const char *topic, uint32_t type) {
        Visits v = match(topic, type);
        free(v.subs);
        return v.n;
}

/* ---- Adding, removing, pruning ------------------------------------------ */

TestSuite(router, .init = setup, .fini = teardown);

Test(router, empty) {
        cr_assert(eq(sz, match_count("a", 0), 0));
        cr_assert(eq(sz, match_count("$SYS/x", 0), 0));
        cr_assert(eq(sz, router_n_nodes(router), 1), "matching creates no nodes");
}

Test(router, add_then_remove_prunes_to_root) {
        Owner o = { 0 };
        Subscription *s = add(&o, 1, "a/b/c");

        cr_assert(eq(sz, router_n_nodes(router), 4));
        cr_assert(eq(sz, router_n_subscriptions(router), 1));
        cr_assert(eq(sz, match_count("a/b/c", 0), 1));
        cr_assert(eq(ptr, o.via, s));
        cr_assert(eq(u64, s->n_matched, 1));
        del(s);
        cr_assert(eq(sz, router_n_nodes(router), 1));
        cr_assert(eq(sz, router_n_subscriptions(router), 0));
        cr_assert(eq(sz, match_count("a/b/c", 0), 0));
}

Test(router, prune_keeps_shared_prefixes) {
        Owner o = { 0 };
        Subscription *c = add(&o, 1, "a/b/c");
        Subscription *d = add(&o, 2, "a/b/d");
        Subscription *p = add(&o, 3, "a/+");
        Subscription *h = add(&o, 4, "a/b/#");

        /* root, a, b, c, d, +, # */
        cr_assert(eq(sz, router_n_nodes(router), 7));
        del(c);
        cr_assert(eq(sz, router_n_nodes(router), 6));
        del(p);
        cr_assert(eq(sz, router_n_nodes(router), 5));
        cr_assert(eq(sz, match_count("a/b/d", 0), 1));
        del(h);
        cr_assert(eq(sz, router_n_nodes(router), 4));
        del(d);
        cr_assert(eq(sz, router_n_nodes(router), 1));
}

Test(router, removing_a_leaf_keeps_a_subscribed_parent) {
        Owner o = { 0 };
        Subscription *parent = add(&o, 1, "a");
        Subscription *child = add(&o, 2, "a/b");

        del(child);
        cr_assert(eq(sz, router_n_nodes(router), 2));
        cr_assert(eq(sz, match_count("a", 0), 1));
        del(parent);
        cr_assert(eq(sz, router_n_nodes(router), 1));
}

Test(router, same_filter_many_subscriptions) {
        Owner a = { 0 }, b = { 0 };
        Subscription *a1 = add(&a, 1, "x/y");
        Subscription *a2 = add(&a, 2, "x/y");
        Subscription *b1 = add(&b, 1, "x/y");

        cr_assert(eq(sz, router_n_nodes(router), 3), "one node per level, shared");
        cr_assert(eq(sz, router_n_subscriptions(router), 3));
        cr_assert(eq(sz, match_count("x/y", 0), 2), "two owners");
        del(a2); /* from the middle of the node's list */
        cr_assert(eq(sz, match_count("x/y", 0), 2));
        del(b1);
        cr_assert(eq(sz, match_count("x/y", 0), 1));
        cr_assert(eq(ptr, a.via, a1));
        cr_assert(eq(sz, router_n_nodes(router), 3));
        del(a1);
        cr_assert(eq(sz, router_n_nodes(router), 1));
}

Test(router, remove_of_never_added_is_a_noop) {
        Owner o = { 0 };
        Subscription *kept = add(&o, 1, "k");
        Subscription *s = subscription_new(&o.ro, 2, "a/b", 3, NULL, 0, NULL, 0);

        cr_assert(not(zero(ptr, s)));
        cr_assert(zero(ptr, (void *)s->node));
        router_remove(router, s);
        cr_assert(eq(sz, router_n_subscriptions(router), 1));
        cr_assert(eq(sz, router_n_nodes(router), 2));
        cr_assert(eq(sz, match_count("k", 0), 1));
        subscription_free(s);

        /* Removing twice: the second time is a no-op as well. */
        router_remove(router, kept);
        router_remove(router, kept);
        cr_assert(eq(sz, router_n_subscriptions(router), 0));
        cr_assert(eq(sz, router_n_nodes(router), 1));
}

Test(router, subscription_new_copies) {
        Owner o = { 0 };
        char filter[] = "a/+/c";
        uint32_t types[] = { 7, 8, 9 };
        Subscription *s = subscription_new(&o.ro, 42, filter, strlen(filter), types, 3, NULL, 0);

        cr_assert(not(zero(ptr, s)));
        filter[0] = 'z';
        types[0] = 0;
        cr_assert(eq(str, s->filter, "a/+/c"), "filter copied and NUL terminated");
        cr_assert(eq(u16, s->filter_len, 5));
        cr_assert(eq(u32, s->id, 42));
        cr_assert(eq(ptr, s->owner, &o.ro));
        cr_assert(eq(u16, s->n_types, 3));
        cr_assert(eq(u32, s->types[0], 7));
        cr_assert(eq(u32, s->types[2], 9));
        cr_assert(eq(sz, (uintptr_t)s->types % _Alignof(uint32_t), 0));
        cr_assert(eq(u64, s->n_matched, 0));
        subscription_free(s);
        cr_assert(zero(ptr, subscription_free(NULL)));
}

Test(router, free_unlinks_remaining_subscriptions) {
        Owner o = { 0 };
        Subscription *s = add(&o, 1, "a/#");
        Subscription *t = add(&o, 2, "a/#");

        router = router_free(router);
        cr_assert(zero(ptr, router));
        cr_assert(zero(ptr, (void *)s->node));
        cr_assert(zero(ptr, (void *)t->node));
        cr_assert(zero(ptr, router_free(NULL)));
}

/* ---- Matching ------------------------------------------------------------ */

Test(router, one_visit_per_owner) {
        Owner a = { 0 }, b = { 0 };
        const char *const filters[] = { "a/#", "a/+", "a/b", "#", "+/b", "+/+", "+/#", "a/b/#" };

        for (size_t i = 0; i < ARRAY_SIZE(filters); i++)
                add(&a, (uint32_t)i + 1, filters[i]);
        add(&b, 1, "a/b");

        for (int round = 0; round < 3; round++) {
                a.visits = b.visits = 0;
                cr_assert(eq(sz, match_count("a/b", 0), 2));
                cr_assert(eq(u32, a.visits, 1), "round %d", round);
                cr_assert(eq(u32, b.visits, 1), "round %d", round);
        }
        a.visits = 0;
        cr_assert(eq(sz, match_count("a", 0), 1), "a/#, #, +/# match \"a\", all owned by a");
        cr_assert(eq(u32, a.visits, 1));
}

Test(router, type_selection) {
        Owner a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
        const uint32_t t12[] = { 1, 2 }, t3[] = { 3 }, t1[] = { 1 }, t2[] = { 2 };
        uint32_t many[MAX_TYPES];
        Subscription *d1, *d2, *e2;

        add_typed(&a, 1, "t", t12, 2);
        add(&b, 1, "t");
        add_typed(&c, 1, "t", t3, 1);
        cr_assert(eq(sz, match_count("t", 1), 2)); /* a, b */
        cr_assert(eq(sz, match_count("t", 2), 2)); /* a, b */
        cr_assert(eq(sz, match_count("t", 3), 2)); /* b, c */
        cr_assert(eq(sz, match_count("t", 9), 1)); /* b */
        cr_assert(eq(sz, match_count("t", UINT32_MAX), 1));

        /* One owner, two subscriptions with different types: the delivery
         * goes through the one that admits the type. */
        d1 = add_typed(&d, 1, "u", t1, 1);
        d2 = add_typed(&d, 2, "#", t2, 1);
        d.visits = 0;
        match_count("u", 1);
        cr_assert(eq(u32, d.visits, 1));
        cr_assert(eq(ptr, d.via, d1));
        match_count("u", 2);
        cr_assert(eq(u32, d.visits, 2));
        cr_assert(eq(ptr, d.via, d2));
        match_count("u", 3);
        cr_assert(eq(u32, d.visits, 2), "no subscription of d admits type 3");

        /* A subscription that refuses the type must not use up the owner's
         * one visit: '#' at the root is looked at before the literal. */
        add_typed(&e, 1, "#", t1, 1);
        e2 = add(&e, 2, "v");
        match_count("v", 5);
        cr_assert(eq(u32, e.visits, 1));
        cr_assert(eq(ptr, e.via, e2));

        /* A full selection of 64 types. */
        for (uint32_t i = 0; i < MAX_TYPES; i++)
                many[i] = 1000 + i * 3;
        add_typed(&a, 2, "w", many, MAX_TYPES);
        cr_assert(eq(sz, match_count("w", 1000), 1));
        cr_assert(eq(sz, match_count("w", 1000 + 63 * 3), 1));
        cr_assert(eq(sz, match_count("w", 1001), 0));
}

Test(router, dollar_topics) {
        const char *const filters[] = { "#", "+", "+/x", "+/#", "+/+", "$SYS/#", "$SYS/+", "$SYS/x",
                                        "$SYS", "a/+", "a/#" };
        Owner o[ARRAY_SIZE(filters)];

        memset(o, 0, sizeof(o));
        for (size_t i = 0; i < ARRAY_SIZE(filters); i++)
                add(&o[i], 1, filters[i]);
        cr_assert(eq(sz, match_count("$SYS/x", 0), 3)); /* $SYS/#, $SYS/+, $SYS/x */
        cr_assert(eq(sz, match_count("$SYS", 0), 2));   /* $SYS/#, $SYS */
        cr_assert(eq(sz, match_count("$", 0), 0));
        cr_assert(eq(sz, match_count("$other/x", 0), 0));
        /* '$' is only special as the first character of the topic. */
        cr_assert(eq(sz, match_count("a/$x", 0), 5)); /* #, +/#, +/+, a/+, a/# */
}

/* Subscribes one owner per filter, then checks for each topic that the
 * router visits exactly the owners whose filter topic_filter_match says
 * matches. */
static void cross_check(const char *const *filters, size_t n_filters, const char *const *topics,
                        size_t n_topics) {
        Owner *o = calloc(n_filters, sizeof(*o));
        Subscription **s = calloc(n_filters, sizeof(*s));

        cr_assert(not(zero(ptr, o)));
        cr_assert(not(zero(ptr, s)));
        for (size_t i = 0; i < n_filters; i++) {
                o[i].index = (unsigned)i;
                s[i] = add(&o[i], (uint32_t)i + 1, filters[i]);
        }
        for (size_t t = 0; t < n_topics; t++) {
                size_t want = 0;
                Visits v;

                for (size_t i = 0; i < n_filters; i++)
                        o[i].visits = 0;
                v = match(topics[t], 0);
                for (size_t i = 0; i < n_filters; i++) {
                        bool m = topic_filter_match(filters[i], strlen(filters[i]), topics[t],
                                                    strlen(topics[t]));
                        want += m;
                        cr_assert(eq(u32, o[i].visits, m ? 1 : 0), "filter \"%s\" topic \"%s\"",
                                  filters[i], topics[t]);
                }
                cr_assert(eq(sz, v.n, want), "topic \"%s\"", topics[t]);
                free(v.subs);
        }
        for (size_t i = 0; i < n_filters; i++)
                del(s[i]);
        cr_assert(eq(sz, router_n_nodes(router), 1));
        free(s);
        free(o);
}

Test(router, exact_plus_hash) {
        static const char *const filters[] = {
                "a/b", "a/+", "a/#", "#", "+/b", "a/b/#", "a/b/+", "+", "+/+", "+/+/+", "a", "b",
                "+/#", "a/+/#", "+/b/#",
        };
        static const char *const topics[] = {
                "a", "b", "c", "a/b", "a/c", "b/b", "a/b/c", "a/b/c/d", "x/y/z", "a/b/b",
        };
        cross_check(filters, ARRAY_SIZE(filters), topics, ARRAY_SIZE(topics));
}

Test(router, empty_levels) {
        static const char *const filters[] = {
                "/", "+/+", "+", "/+", "+/", "/#", "a//b", "a/+/b", "a/", "a/+", "a/#", "//",
                "+/+/+", "#", "+//+",
        };
        static const char *const topics[] = {
                "/", "//", "a/", "/a", "a//b", "a/b", "a", "a//", "///", "a///b",
        };
        cross_check(filters, ARRAY_SIZE(filters), topics, ARRAY_SIZE(topics));
}

Test(router, exact_counts) {
        /* The same, with the expected numbers written out by hand. */
        static const char *const filters[] = { "a/b", "a/+", "a/#", "#", "+/b", "a/b/#", "a/b/+" };
        Owner o[ARRAY_SIZE(filters)];

        memset(o, 0, sizeof(o));
        for (size_t i = 0; i < ARRAY_SIZE(filters); i++)
                add(&o[i], 1, filters[i]);
        cr_assert(eq(sz, match_count("a/b", 0), 6));   /* all but a/b/+ */
        cr_assert(eq(sz, match_count("a", 0), 2));     /* a/#, # */
        cr_assert(eq(sz, match_count("a/b/c", 0), 4)); /* a/#, #, a/b/#, a/b/+ */
        cr_assert(eq(sz, match_count("a/c", 0), 3));   /* a/+, a/#, # */
        cr_assert(eq(sz, match_count("b", 0), 1));     /* # */
        cr_assert(eq(sz, match_count("x/b", 0), 2));   /* #, +/b */
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static unsigned rnd(unsigned n) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (unsigned)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

static char *gen(const char *const *alphabet, unsigned n_alpha, unsigned max_levels) {
        char buf[64];
        do {
                unsigned levels = 1 + rnd(max_levels);
                buf[0] = 0;
                for (unsigned i = 0; i < levels; i++) {
                        if (i)
                                strcat(buf, "/");
                        strcat(buf, alphabet[rnd(n_alpha)]);
                }
        } while (buf[0] == 0);
        return strdup(buf);
}

Test(router, randomized_against_topic_filter_match) {
        static const char *const falpha[] = { "a", "b", "$", "+", "#", "", "$a" };
        static const char *const talpha[] = { "a", "b", "$", "", "$a" };
        char *filters[300], *topics[300];
        size_t nf = 0;

        while (nf < ARRAY_SIZE(filters)) {
                char *f = gen(falpha, ARRAY_SIZE(falpha), 4);
                if (topic_filter_check(f, strlen(f), 1024) != TOPIC_OK) {
                        free(f);
                        continue;
                }
                filters[nf++] = f;
        }
        for (size_t i = 0; i < ARRAY_SIZE(topics); i++)
                topics[i] = gen(talpha, ARRAY_SIZE(talpha), 4);
        cross_check((const char *const *)filters, nf, (const char *const *)topics,
                    ARRAY_SIZE(topics));
        for (size_t i = 0; i < nf; i++)
                free(filters[i]);
        for (size_t i = 0; i < ARRAY_SIZE(topics); i++)
                free(topics[i]);
}

/* ---- Scale ----------------------------------------------------------------- */

#define N_MANY 10000

Test(router, many_distinct_filters) {
        Owner *o = calloc(N_MANY, sizeof(*o));
        Subscription **s = calloc(N_MANY, sizeof(*s));
        unsigned *order = calloc(N_MANY, sizeof(*order));
        char filter[64];

        cr_assert(not(zero(ptr, o)));
        cr_assert(not(zero(ptr, s)));
        cr_assert(not(zero(ptr, order)));
        /* Four shapes; the literal ones put thousands of children under one
         * node, which grows and shrinks its hash table. */
        for (unsigned i = 0; i < N_MANY; i++) {
                switch (i % 4) {
                case 0: snprintf(filter, sizeof(filter), "n/%u", i); break;
                case 1: snprintf(filter, sizeof(filter), "w/%u/+", i); break;
                case 2: snprintf(filter, sizeof(filter), "h/%u/#", i); break;
                default: snprintf(filter, sizeof(filter), "+/%u", i); break;
                }
                o[i].index = i;
                s[i] = add(&o[i], 1, filter);
                order[i] = i;
        }
        cr_assert(eq(sz, router_n_subscriptions(router), N_MANY));
        cr_assert(gt(sz, router_n_nodes(router), N_MANY));

        cr_assert(eq(sz, match_count("n/4000", 0), 1));
        cr_assert(eq(u32, o[4000].visits, 1));
        cr_assert(eq(sz, match_count("w/4001/x", 0), 1));
        cr_assert(eq(sz, match_count("h/4002", 0), 1));
        cr_assert(eq(sz, match_count("h/4002/x/y", 0), 1));
        cr_assert(eq(sz, match_count("q/4003", 0), 1));
        cr_assert(eq(sz, match_count("n/4003", 0), 1), "via +/4003 only");
        cr_assert(eq(sz, match_count("n/4001", 0), 0));

        /* Remove in a shuffled order, checking now and then that what is
         * left is still found and what is gone is not. */
        for (unsigned i = N_MANY - 1; i > 0; i--) {
                unsigned j = rnd(i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
        }
        for (unsigned k = 0; k < N_MANY; k++) {
                unsigned gone = order[k];
                del(s[gone]);
                s[gone] = NULL;
                if (k % 997 == 0) {
                        for (unsigned probe = 0; probe < N_MANY; probe += 4) {
                                snprintf(filter, sizeof(filter), "n/%u", probe);
                                cr_assert(eq(sz, match_count(filter, 0), s[probe] ? 1 : 0),
                                          "after %u removals, %s", k + 1, filter);
                        }
                }
        }
        cr_assert(eq(sz, router_n_subscriptions(router), 0));
        cr_assert(eq(sz, router_n_nodes(router), 1), "every node pruned");
        free(order);
        free(s);
        free(o);
}

Test(router, fan_out_to_many_owners) {
        Owner *o = calloc(N_MANY, sizeof(*o));
        Subscription **s = calloc(N_MANY, sizeof(*s));

        cr_assert(not(zero(ptr, o)));
        cr_assert(not(zero(ptr, s)));
        for (unsigned i = 0; i < N_MANY; i++)
                s[i] = add(&o[i], 1, (i & 1) ? "t/#" : "t/+");
        cr_assert(eq(sz, router_n_nodes(router), 4));
        cr_assert(eq(sz, match_count("t/x", 0), N_MANY));
        cr_assert(eq(sz, match_count("t", 0), N_MANY / 2));
        for (unsigned i = 0; i < N_MANY; i++)
                cr_assert(eq(u32, o[i].visits, (i & 1) ? 2 : 1));
        for (unsigned i = 0; i < N_MANY; i++)
                del(s[i]);
        cr_assert(eq(sz, router_n_nodes(router), 1));
        free(s);
        free(o);
}

/* ---- Topic state ------------------------------------------------------------ */

Test(router, topic_create_and_lookup) {
        RouterTopic *t, *again;
        int err = 1;

        t = router_topic(router, "a/b", 3, false, 10, &err);
        cr_assert(zero(ptr, t));
        cr_assert(eq(int, err, 0), "absent is not an error");
        cr_assert(eq(sz, router_n_nodes(router), 1), "a lookup creates nothing");

        err = 1;
        t = router_topic(router, "a/b", 3, true, 10, &err);
        cr_assert(not(zero(ptr, t)));
        cr_assert(eq(int, err, 0));
        cr_assert(eq(u64, t->seq, 0));
        cr_assert(eq(sz, router_n_topics(router), 1));
        cr_assert(eq(sz, router_n_nodes(router), 3));
        t->seq = 5;

        again = router_topic(router, "a/b", 3, false, 10, &err);
        cr_assert(eq(ptr, again, t));
        cr_assert(eq(u64, again->seq, 5));
        again = router_topic(router, "a/b", 3, true, 10, &err);
        cr_assert(eq(ptr, again, t), "create returns the existing state");
        cr_assert(eq(sz, router_n_topics(router), 1));

        /* A prefix of a topic is not a topic. */
        cr_assert(zero(ptr, router_topic(router, "a", 1, false, 10, &err)));
        cr_assert(zero(ptr, router_topic(router, "a/b/c", 5, false, 10, &err)));
}

Test(router, topic_keeps_its_nodes) {
        Owner o = { 0 };
        RouterTopic *t;
        Subscription *s;
        int err;

        t = router_topic(router, "a/b", 3, true, 10, &err);
        cr_assert(not(zero(ptr, t)));
        s = add(&o, 1, "a/b/c");
        cr_assert(eq(sz, router_n_nodes(router), 4));
        del(s);
        cr_assert(eq(sz, router_n_nodes(router), 3), "the topic's path stays");
        s = add(&o, 1, "a/b");
        del(s);
        cr_assert(eq(sz, router_n_nodes(router), 3), "a node with a topic is not pruned");
        cr_assert(eq(ptr, router_topic(router, "a/b", 3, false, 10, &err), t));
}

Test(router, topic_on_a_subscribed_path) {
        Owner o = { 0 };
        Subscription *s = add(&o, 1, "x/y");
        RouterTopic *t;
        int err;

        cr_assert(zero(ptr, router_topic(router, "x/y", 3, false, 10, &err)),
                  "a subscription does not make a topic");
        t = router_topic(router, "x/y", 3, true, 10, &err);
        cr_assert(not(zero(ptr, t)));
        cr_assert(eq(sz, router_n_nodes(router), 3), "the subscription's nodes are reused");
        del(s);
        cr_assert(eq(sz, router_n_nodes(router), 3));
        cr_assert(eq(sz, match_count("x/y", 0), 0), "topic state is not a subscriber");
}

Test(router, topic_limit) {
        RouterTopic *t1, *t2, *t3;
        int err;
        size_t nodes;

        t1 = router_topic(router, "t1", 2, true, 2, &err);
        t2 = router_topic(router, "t/2", 3, true, 2, &err);
        cr_assert(not(zero(ptr, t1)));
        cr_assert(not(zero(ptr, t2)));
        cr_assert(ne(ptr, t1, t2));
        nodes = router_n_nodes(router);

        err = 0;
        t3 = router_topic(router, "t3/x", 4, true, 2, &err);
        cr_assert(zero(ptr, t3));
        cr_assert(eq(int, err, -ENOSPC));
        cr_assert(eq(sz, router_n_topics(router), 2));
        cr_assert(eq(sz, router_n_nodes(router), nodes), "a refused topic leaves no nodes");

        /* Under a prefix that exists: still refused, still nothing left. */
        t3 = router_topic(router, "t/3", 3, true, 2, &err);
        cr_assert(zero(ptr, t3));
        cr_assert(eq(int, err, -ENOSPC));
        cr_assert(eq(sz, router_n_nodes(router), nodes));

        /* Existing topics are still found at the limit, with create too. */
        cr_assert(eq(ptr, router_topic(router, "t1", 2, true, 2, &err), t1));
        cr_assert(eq(int, err, 0));
        cr_assert(eq(ptr, router_topic(router, "t/2", 3, false, 2, &err), t2));

        /* A limit of 0 refuses the first one. */
        {
                Router *r2;
                cr_assert(eq(int, router_new(&r2), 0));
                cr_assert(zero(ptr, router_topic(r2, "a", 1, true, 0, &err)));
                cr_assert(eq(int, err, -ENOSPC));
                cr_assert(eq(sz, router_n_nodes(r2), 1));
                router_free(r2);
        }
}

Test(router, many_topics) {
        char name[32];
        int err;

        for (unsigned i = 0; i < N_MANY; i++) {
                RouterTopic *t;
                snprintf(name, sizeof(name), "s/%u/v", i);
                t = router_topic(router, name, strlen(name), true, N_MANY, &err);
                cr_assert(not(zero(ptr, t)), "%s: %d", name, err);
                t->seq = i + 1;
        }
        cr_assert(eq(sz, router_n_topics(router), N_MANY));
        cr_assert(zero(ptr, router_topic(router, "one/more", 8, true, N_MANY, &err)));
        cr_assert(eq(int, err, -ENOSPC));
        for (unsigned i = 0; i < N_MANY; i += 7) {
                RouterTopic *t;
                snprintf(name, sizeof(name), "s/%u/v", i);
                t = router_topic(router, name, strlen(name), false, N_MANY, &err);
                cr_assert(not(zero(ptr, t)), "%s", name);
                cr_assert(eq(u64, t->seq, i + 1));
        }
}

/* ---- Queue groups and topic iteration ---- */

typedef struct GroupVisits {
        size_t plain;
        size_t groups;
        size_t cands[8];
        uint32_t rr_seen[8];
} GroupVisits;

static void count_plain(Subscription *s, void *userdata) {
        GroupVisits *v = userdata;
        (void)s;
        v->plain++;
}

static void count_group(Subscription **cands, size_t n, uint32_t *rr, void *userdata) {
        GroupVisits *v = userdata;
        cr_assert(lt(sz, v->groups, 8));
        v->cands[v->groups] = n;
        v->rr_seen[v->groups] = *rr;
        (*rr)++;
        v->groups++;
        (void)cands;
}

Test(router_groups, one_call_per_group_with_every_matching_member) {
        Router *r;
        RouterOwner o[5] = { 0 };
        Subscription *s[5];
        GroupVisits v = { 0 };
        size_t i;

        cr_assert(eq(int, router_new(&r), 0));
        s[0] = subscription_new(&o[0], 1, "a/#", 3, NULL, 0, "workers", 7);
        s[1] = subscription_new(&o[1], 1, "a/b", 3, NULL, 0, "workers", 7);
        s[2] = subscription_new(&o[2], 1, "a/+", 3, NULL, 0, "workers", 7);
        s[3] = subscription_new(&o[3], 1, "a/b", 3, NULL, 0, "others", 6);
        s[4] = subscription_new(&o[4], 1, "#", 1, NULL, 0, NULL, 0);
        for (i = 0; i < 5; i++)
                cr_assert(eq(int, router_add(r, s[i]), 0));
        cr_assert(eq(sz, router_n_groups(r), 2));

        cr_assert(eq(sz, router_match(r, "a/b", 3, 1, count_plain, count_group, &v), 3));
        cr_assert(eq(sz, v.plain, 1));
        cr_assert(eq(sz, v.groups, 2));
        cr_assert(eq(sz, v.cands[0] + v.cands[1], 4), "3 workers and 1 other");
        cr_assert(eq(sz, v.cands[0] * v.cands[1], 3), "3 workers and 1 other");

        /* "a/c" reaches only two workers, and the group's turn counter moved on. */
        memset(&v, 0, sizeof(v));
        router_match(r, "a/c", 3, 1, count_plain, count_group, &v);
        cr_assert(eq(sz, v.groups, 1));
        cr_assert(eq(sz, v.cands[0], 2));
        cr_assert(eq(u32, v.rr_seen[0], 1));

        /* Groups go with their last member. */
        for (i = 0; i < 5; i++) {
                router_remove(r, s[i]);
                subscription_free(s[i]);
        }
        cr_assert(eq(sz, router_n_groups(r), 0));
        cr_assert(eq(sz, router_n_nodes(r), 1));
        router_free(r);
}

typedef struct TopicList {
        char names[16][64];
        size_t n;
} TopicList;

static void collect_topic(const char *name, size_t len, RouterTopic *t, void *userdata) {
        TopicList *l = userdata;
        (void)t;
        cr_assert(lt(sz, l->n, 16));
        snprintf(l->names[l->n++], 64, "%.*s", (int)len, name);
}

static bool listed(const TopicList *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->names[i], name) == 0)
                        return true;
        return false;
}

Test(router_groups, topics_matching_a_filter) {
        static const char *topics[] = { "a", "a/b", "a/b/c", "a/c", "x/b", "$SYS/load", "/lead", "a//e" };
        static const struct {
                const char *filter;
                size_t n;
                const char *must[4];
        } cases[] = {
                { "#", 7, { "a", "a/b/c", "/lead", "a//e" } },
                { "a/#", 5, { "a", "a/b", "a/c", "a//e" } },
                { "+/b", 2, { "a/b", "x/b" } },
                { "a/+/c", 1, { "a/b/c" } },
                { "$SYS/#", 1, { "$SYS/load" } },
                { "+/load", 0, { NULL } },
                { "+/lead", 1, { "/lead" } },
                { "a/b", 1, { "a/b" } },
                { "nothing", 0, { NULL } },
        };
        Router *r;
        size_t i, k;
        int err;

        cr_assert(eq(int, router_new(&r), 0));
        for (i = 0; i < ARRAY_SIZE(topics); i++)
                cr_assert(router_topic(r, topics[i], strlen(topics[i]), true, 100, &err) != NULL);
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                TopicList l = { 0 };
                router_match_topics(r, cases[i].filter, strlen(cases[i].filter), collect_topic, &l);
                cr_assert(eq(sz, l.n, cases[i].n), "filter %s", cases[i].filter);
                for (k = 0; k < 4 && cases[i].must[k]; k++)
                        cr_assert(listed(&l, cases[i].must[k]), "filter %s misses %s", cases[i].filter,
                                  cases[i].must[k]);
        }
        router_free(r);
}

/* The visits of a match through a topic's remembered walk, as sets of
 * subscriptions (sorted pointers) for comparing. */
static int cmp_ptr(const void *a, const void *b) {
        uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
        return x < y ? -1 : x > y;
}

static Visits match_cached(RouterTopic *t, const char *topic, uint32_t type) {
        Visits v = { 0 };
        size_t n = router_match_topic(router, t, topic, strlen(topic), type, on_visit, NULL, &v);
        cr_assert(eq(sz, n, v.n));
        return v;
}

/* Publishing to a known topic reuses the nodes its last match visited;
 * every change of the trie's shape (a subscription that adds or frees a
 * node) must be seen, and a new subscription on an existing node too.
 * Random subscriptions and removals, each followed by a match of every
 * topic both ways: the remembered walk gives what a full walk gives. */
Test(router, remembered_walks_follow_every_change) {
        static const char *const filters[] = {
                "a/b/c", "a/+/c", "a/#", "#", "+/b/#", "a/b", "+", "a/b/+", "+/+/+", "$sys/#",
                "$sys/x", "+/x", "a/b/c/d", "a/+/+/d",
        };
        static const char *const topics[] = { "a/b/c", "a/b", "a", "x/x", "$sys/x", "a/b/c/d",
                                              "q/b/z" };
        Subscription *live[64] = { 0 };
        RouterTopic *t[ARRAY_SIZE(topics)];
        Owner owners[64];
        unsigned seed = 12345;
        size_t i, k, round;
        int err = 0;

        memset(owners, 0, sizeof(owners));
        for (k = 0; k < ARRAY_SIZE(topics); k++) {
                t[k] = router_topic(router, topics[k], strlen(topics[k]), true, SIZE_MAX, &err);
                cr_assert(not(zero(ptr, t[k])));
        }
        for (round = 0; round < 2000; round++) {
                i = (size_t)rand_r(&seed) % ARRAY_SIZE(live);
                if (live[i]) {
                        del(live[i]);
                        live[i] = NULL;
                } else {
                        const char *f = filters[(size_t)rand_r(&seed) % ARRAY_SIZE(filters)];
                        live[i] = add(&owners[i], (uint32_t)round + 1, f);
                }
                for (k = 0; k < ARRAY_SIZE(topics); k++) {
                        Visits full = match(topics[k], 0), cached = match_cached(t[k], topics[k], 0);
                        cr_assert(eq(sz, cached.n, full.n), "round %zu, topic %s", round, topics[k]);
                        if (full.n > 0) {
                                qsort(full.subs, full.n, sizeof(*full.subs), cmp_ptr);
                                qsort(cached.subs, cached.n, sizeof(*cached.subs), cmp_ptr);
                                cr_assert(eq(int, memcmp(full.subs, cached.subs,
                                                         full.n * sizeof(*full.subs)), 0),
                                          "round %zu, topic %s", round, topics[k]);
                        }
                        free(full.subs);
                        free(cached.subs);
                }
        }
}
