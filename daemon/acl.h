/* SPDX-License-Identifier: MIT */
/*
 * Access control: who may publish, subscribe, send requests and use the
 * admin commands, decided from the kernel's credentials of a peer and the
 * access rules of the configuration. Pure (acl_peer_groups aside, which
 * only asks the kernel for a socket's supplementary groups).
 *
 * Default policy: root (uid 0) and the owner (the uid the broker runs as,
 * which owns the socket it creates) may do everything. Anyone else may do
 * exactly what the access rules grant to their uid, their primary gid or
 * one of their supplementary groups, or to everyone ("*"); the grants of
 * every matching rule add up. No rule takes anything away.
 *
 * Topics follow topicname.h, including the '$' rule: a granted filter that
 * starts with a wildcard ("#", "+/x") does not grant "$SYS/..." topics;
 * grant "$SYS/#" for those.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

typedef enum AclOp {
        ACL_PUBLISH,   /* @topic is a topic name */
        ACL_SUBSCRIBE, /* @topic is a filter: acl_may_subscribe() */
        ACL_REQUEST,   /* @topic is a topic name */
        ACL_ADMIN,     /* @topic is ignored */
        _ACL_OP_MAX,
} AclOp;

/* A peer's kernel credentials (SO_PEERCRED) and supplementary groups
 * (SO_PEERGROUPS). @groups is borrowed. */
typedef struct AclPeer {
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
} AclPeer;

/* "publish", "subscribe", "request", "admin" (for error frames and logs). */
const char *acl_op_name(AclOp op);

/* True when @p is root or @owner_uid: allowed everything. */
bool acl_peer_is_privileged(uid_t owner_uid, const AclPeer *p);

/*
 * May @p do @op on @topic (@len bytes; a valid topic name, or for
 * ACL_SUBSCRIBE a valid filter)? @c may be NULL (no rules: only the
 * privileged). ACL_SUBSCRIBE answers acl_may_subscribe().
 */
bool acl_check(const Config *c, uid_t owner_uid, const AclPeer *p, AclOp op, const char *topic,
               size_t len);

/* How much of what a subscription filter matches the peer may read. */
typedef enum AclReach {
        ACL_REACH_NONE,    /* nothing: refuse the subscription */
        ACL_REACH_PARTIAL, /* some topics: check every delivery with acl_may_read() */
        ACL_REACH_ALL,     /* every topic it matches: no per-delivery check needed */
} AclReach;

/* What @p may read of filter @filter: ALL when a single granted subscribe
 * filter covers it (or @p is privileged), PARTIAL when some granted filter
 * overlaps it, else NONE. (PARTIAL is the safe answer when only several
 * grants together would cover it.) */
AclReach acl_subscribe_reach(const Config *c, uid_t owner_uid, const AclPeer *p,
                             const char *filter, size_t len);

/* Could a subscription with @filter deliver anything to @p? (Reach is not
 * NONE.) */
bool acl_may_subscribe(const Config *c, uid_t owner_uid, const AclPeer *p, const char *filter,
                       size_t len);

/* May @p receive a message on topic name @topic (a granted subscribe filter
 * matches it)? The per-delivery check for ACL_REACH_PARTIAL subscriptions. */
bool acl_may_read(const Config *c, uid_t owner_uid, const AclPeer *p, const char *topic,
                  size_t len);

/* Could some topic name match both valid filters @a and @b? */
bool acl_filter_overlaps(const char *a, size_t alen, const char *b, size_t blen);

/* Does every topic name that matches valid filter @inner also match valid
 * filter @outer? */
bool acl_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen);

/*
 * The supplementary groups of the peer of connected Unix socket @fd as the
 * kernel recorded them at connect() (SO_PEERGROUPS, Linux >= 4.13). On
 * success 0 and *ret a malloc'd array (NULL when there are none) of *ret_n
 * gids. -EOPNOTSUPP when the kernel does not have SO_PEERGROUPS, -ENOMEM,
 * or the getsockopt errno. @fd stays the caller's.
 */
int acl_peer_groups(int fd, gid_t **ret, size_t *ret_n);
