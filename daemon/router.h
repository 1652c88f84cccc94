/* SPDX-License-Identifier: MIT */
/*
 * The router: a trie of topic levels holding every subscription filter, plus
 * the state of every topic that has been published to (its sequence
 * counter). Publishing walks the trie along the topic's levels and the '+'
 * and '#' branches, so its cost grows with the topic's depth, not with the
 * number of subscriptions. Pure code: no I/O, no logging.
 *
 * Subscriptions belong to an owner (a connection) that embeds a RouterOwner;
 * a publish reaches each owner at most once, however many of its filters
 * match, and only through subscriptions whose type selection admits the
 * message's type.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct TrieNode TrieNode;
typedef struct Router Router;
typedef struct RouterGroup RouterGroup;

/* Embedded in whatever owns subscriptions. */
typedef struct RouterOwner {
        uint64_t epoch; /* last publish that reached this owner */
} RouterOwner;

typedef struct Subscription {
        RouterOwner *owner;
        uint32_t id;        /* chosen by the owner, unique per owner */
        uint32_t flags;     /* the owner's: the router does not look at them */
        uint8_t reach;      /* the owner's (access rules) */
        TrieNode *node;     /* where the filter ends; NULL until added */
        RouterGroup *group; /* queue group, when it has one (set by router_add) */
        char *group_name;   /* points into this allocation, or NULL */
        struct Subscription *node_prev, *node_next;
        uint64_t n_matched; /* deliveries through this subscription */
        uint16_t filter_len;
        uint16_t n_types;   /* 0: every type */
        uint32_t *types;    /* points into this allocation */
        char filter[];      /* filter_len bytes + NUL, then the types */
} Subscription;

/* The state kept per published topic. */
typedef struct RouterTopic {
        uint64_t seq;         /* sequence number of the last message */
        uint64_t n_published;
        uint64_t n_dropped;   /* deliveries dropped for full queues */
        void *retained;       /* the owner's retained message, or NULL */
        const void *rule;     /* the owner's cached topic rule ... */
        uint32_t rule_gen;    /* ... valid while this matches its generation */
        /* The trie nodes a match of this name visits, in order (router.c):
         * valid while the trie's shape is walk_shape. */
        struct TrieNode **walk;
        uint32_t n_walk, cap_walk;
        uint64_t walk_shape;
        uint16_t name_len;
        char name[];          /* the topic, NUL-terminated */
} RouterTopic;

/* Called once per matching owner; @sub is one of its matching subscriptions. */
typedef void (*RouterVisitFn)(Subscription *sub, void *userdata);

/* Called once per queue group with a matching member: @cands are its
 * matching members (each admits the type); the callee delivers to one of
 * them, starting its search at *@rr and moving it on, so that successive
 * messages spread over the members. */
typedef void (*RouterGroupFn)(Subscription **cands, size_t n_cands, uint32_t *rr, void *userdata);

/* Called for each topic that has state and matches a filter. */
typedef void (*RouterTopicFn)(const char *name, size_t len, RouterTopic *t, void *userdata);

int router_new(Router **ret);
/* How router_free releases a topic's retained message. */
void router_set_retained_free(Router *r, void (*fn)(void *retained));
Router *router_free(Router *r);

/* Allocates a subscription (not yet in a router). @types may be NULL when
 * @n_types is 0. Returns NULL when out of memory. Free with subscription_free
 * after removing it. */
Subscription *subscription_new(RouterOwner *owner, uint32_t id, const char *filter,
                               size_t filter_len, const uint32_t *types, size_t n_types,
                               const char *group, size_t group_len);
Subscription *subscription_free(Subscription *s);
/* Does @s select message type @type? */
bool subscription_admits(const Subscription *s, uint32_t type);

/* Adds a (valid) subscription. Returns 0 or -ENOMEM. */
int router_add(Router *r, Subscription *s);
/* Removes a subscription added before; prunes nodes left empty. */
void router_remove(Router *r, Subscription *s);

/*
 * Finds the topic @name (a valid topic name), creating its state when
 * @create is true. Returns NULL when it does not exist (or on -ENOMEM when
 * creating; *ret_err says which: 0 or -ENOMEM). -ENOSPC when creating would
 * exceed @max_topics.
 */
RouterTopic *router_topic(Router *r, const char *name, size_t len, bool create,
                          size_t max_topics, int *ret_err);

/*
 * Calls @visit once for every owner with a subscription without a queue
 * group that matches topic @name (a valid name) and admits @type; and
 * @group (may be NULL to skip groups) once for every queue group with such
 * members. Returns the number of owners visited plus groups called.
 */
/*
 * The same for the name of @t (a topic of @r, from router_topic()): the
 * nodes the match visits are remembered in @t until a subscription adds or
 * removes a trie node, so publishing to a known topic walks no trie.
 */
size_t router_match_topic(Router *r, RouterTopic *t, const char *name, size_t len, uint32_t type,
                          RouterVisitFn visit, RouterGroupFn group, void *userdata);

size_t router_match(Router *r, const char *name, size_t len, uint32_t type, RouterVisitFn visit,
                    RouterGroupFn group, void *userdata);

/* Calls @visit for every topic with state whose name matches @filter (a
 * valid filter), with the $ rule; in no particular order. */
void router_match_topics(Router *r, const char *filter, size_t len, RouterTopicFn visit,
                         void *userdata);

/* Calls @fn for every queue group. */
void router_foreach_group(Router *r, void (*fn)(const RouterGroup *g, void *userdata), void *userdata);
/* Queue groups: how many there are; a group's name and member count. */
size_t router_n_groups(const Router *r);
const char *router_group_name(const RouterGroup *g);
uint32_t router_group_size(const RouterGroup *g);

size_t router_n_subscriptions(const Router *r);
size_t router_n_topics(const Router *r);
size_t router_n_nodes(const Router *r);
