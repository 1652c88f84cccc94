/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"
#include "topicname.h"
#include "util.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

const char *acl_op_name(AclOp op) {
        static const char *const names[_ACL_OP_MAX] = {
                [ACL_PUBLISH] = "publish",
                [ACL_SUBSCRIBE] = "subscribe",
                [ACL_REQUEST] = "request",
                [ACL_ADMIN] = "admin",
        };
        return (unsigned)op < _ACL_OP_MAX ? names[op] : "unknown";
}

bool acl_peer_is_privileged(uid_t owner_uid, const AclPeer *p) {
        return p->uid == 0 || p->uid == owner_uid;
}

/* ------------------------------------------------------------------------ */
/* Filters against filters                                                   */

/* One level of a filter: [start, end) and what kind it is. */
typedef struct Level {
        const char *s;
        size_t len;
} Level;

static bool level_is(const Level *l, char wildcard) {
        return l->len == 1 && l->s[0] == wildcard;
}

/* The level of @f (@flen bytes) that starts at *@pos; advances *@pos past
 * its '/' (to flen + 1 after the last level). False when there is none. */
static bool level_next(const char *f, size_t flen, size_t *pos, Level *ret) {
        size_t i = *pos, e = i;
        if (i > flen)
                return false;
        while (e < flen && f[e] != '/')
                e++;
        *ret = (Level){ f + i, e - i };
        *pos = e + 1;
        return true;
}

/* A literal level starting with '$': a topic whose first level it is cannot
 * be matched by a filter whose first level is a wildcard. */
static bool level_is_dollar(const Level *l) {
        return l->len > 0 && l->s[0] == '$' && !level_is(l, '+') && !level_is(l, '#');
}

static bool level_is_wild(const Level *l) {
        return level_is(l, '+') || level_is(l, '#');
}

/*
 * Both walk the two filters level by level. Two details of topicname.h make
 * this more than a zip: '#' also matches the parent ("a/#" matches "a"),
 * except where the parent would be the empty topic (the parent of "/#"
 * is ""); and a first-level wildcard never matches a first level that
 * starts with '$'.
 */
bool acl_filter_overlaps(const char *a, size_t alen, const char *b, size_t blen) {
        size_t pa = 0, pb = 0, depth = 0;
        bool first_empty = false; /* a topic matching both starts with an empty level */

        for (;; depth++) {
                Level la = { NULL, 0 }, lb = { NULL, 0 };
                bool ha = level_next(a, alen, &pa, &la);
                bool hb = level_next(b, blen, &pb, &lb);

                if (!ha && !hb)
                        return true; /* same depth, every level compatible */
                if ((ha && level_is(&la, '#')) || (hb && level_is(&lb, '#'))) {
                        /* '#' takes whatever the other has left; if nothing
                         * is left, the topic is the parent, which must not be
                         * "". At the top, '#' does not meet a '$' level. */
                        const Level *other = level_is(&la, '#') ? &lb : &la;
                        bool has_other = level_is(&la, '#') ? hb : ha;
                        if (!has_other)
                                return !(depth == 1 && first_empty);
                        return !(depth == 0 && level_is_dollar(other));
                }
                if (!ha || !hb)
                        return false; /* different depths, and no '#' to absorb it */
                if (level_is(&la, '+') || level_is(&lb, '+')) {
                        if (depth == 0 && (level_is_dollar(&la) || level_is_dollar(&lb)))
                                return false;
                } else if (la.len != lb.len || memcmp(la.s, lb.s, la.len) != 0)
                        return false;
                if (depth == 0)
                        first_empty = (!level_is_wild(&la) && la.len == 0) ||
                                      (!level_is_wild(&lb) && lb.len == 0);
        }
}

bool acl_filter_covers(const char *outer, size_t olen, const char *inner, size_t ilen) {
        size_t po = 0, pi = 0, depth = 0;
        bool inner_first_empty = false;

        for (;; depth++) {
                Level lo = { NULL, 0 }, li = { NULL, 0 };
                bool ho = level_next(outer, olen, &po, &lo);
                bool hi = level_next(inner, ilen, &pi, &li);

                if (!ho && !hi)
                        return true;
                if (ho && level_is(&lo, '#'))
                        /* Everything from here down; at the top not '$'
                         * topics, which a literal "$..." of @inner names. */
                        return !(depth == 0 && hi && level_is_dollar(&li));
                if (!ho || !hi)
                        return false;
                if (level_is(&li, '#')) {
                        /* @inner matches any depth from here, the parent
                         * included, which only '#' covers; but where the
                         * parent cannot be a topic (at the top, or the ""
                         * below a first empty level), "+/#" covers it too. */
                        Level next = { NULL, 0 };
                        size_t pn = po;
                        if (!(depth == 0 || (depth == 1 && inner_first_empty)))
                                return false;
                        return level_is(&lo, '+') && level_next(outer, olen, &pn, &next) &&
                               level_is(&next, '#');
                }
                if (level_is(&lo, '+')) {
                        if (depth == 0 && level_is_dollar(&li))
                                return false;
                } else if (level_is(&li, '+') || lo.len != li.len || memcmp(lo.s, li.s, lo.len) != 0)
                        return false;
                if (depth == 0)
                        inner_first_empty = !level_is_wild(&li) && li.len == 0;
        }
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                     */

static bool rule_applies(const ConfigAccessRule *a, const AclPeer *p) {
        if (a->all_users)
                return true;
        for (size_t i = 0; i < a->n_users; i++)
                if (a->uids[i] == p->uid)
                        return true;
        for (size_t i = 0; i < a->n_groups; i++) {
                if (a->gids[i] == p->gid)
                        return true;
                for (size_t j = 0; j < p->n_groups; j++)
                        if (a->gids[i] == p->groups[j])
                                return true;
        }
        return false;
}

/* True when a filter of @filters (@n of them) matches topic name @topic. */
static bool any_matches(char *const *filters, size_t n, const char *topic, size_t len) {
        for (size_t i = 0; i < n; i++)
                if (topic_filter_match(filters[i], strlen(filters[i]), topic, len))
                        return true;
        return false;
}

AclReach acl_subscribe_reach(const Config *c, uid_t owner_uid, const AclPeer *p,
                             const char *filter, size_t len) {
        AclReach reach = ACL_REACH_NONE;

        if (acl_peer_is_privileged(owner_uid, p))
                return ACL_REACH_ALL;
        if (!c)
                return ACL_REACH_NONE;
        for (size_t i = 0; i < c->n_access; i++) {
                const ConfigAccessRule *a = &c->access[i];
                if (!rule_applies(a, p))
                        continue;
                for (size_t j = 0; j < a->n_subscribe; j++) {
                        size_t glen = strlen(a->subscribe[j]);
                        if (acl_filter_covers(a->subscribe[j], glen, filter, len))
                                return ACL_REACH_ALL;
                        if (acl_filter_overlaps(a->subscribe[j], glen, filter, len))
                                reach = ACL_REACH_PARTIAL;
                }
        }
        return reach;
}

bool acl_may_subscribe(const Config *c, uid_t owner_uid, const AclPeer *p, const char *filter,
                       size_t len) {
        return acl_subscribe_reach(c, owner_uid, p, filter, len) != ACL_REACH_NONE;
}

bool acl_check(const Config *c, uid_t owner_uid, const AclPeer *p, AclOp op, const char *topic,
               size_t len) {
        if (acl_peer_is_privileged(owner_uid, p))
                return true;
        if (!c)
                return false;
        if (op == ACL_SUBSCRIBE)
                return acl_may_subscribe(c, owner_uid, p, topic, len);
        for (size_t i = 0; i < c->n_access; i++) {
                const ConfigAccessRule *a = &c->access[i];
                if (!rule_applies(a, p))
                        continue;
                switch (op) {
                case ACL_PUBLISH:
                        if (any_matches(a->publish, a->n_publish, topic, len))
                                return true;
                        break;
                case ACL_REQUEST:
                        if (any_matches(a->request, a->n_request, topic, len))
                                return true;
                        break;
                case ACL_ADMIN:
                        if (a->admin)
                                return true;
                        break;
                default:
                        return false;
                }
        }
        return false;
}

bool acl_may_read(const Config *c, uid_t owner_uid, const AclPeer *p, const char *topic,
                  size_t len) {
        if (acl_peer_is_privileged(owner_uid, p))
                return true;
        if (!c)
                return false;
        for (size_t i = 0; i < c->n_access; i++) {
                const ConfigAccessRule *a = &c->access[i];
                if (rule_applies(a, p) && any_matches(a->subscribe, a->n_subscribe, topic, len))
                        return true;
        }
        return false;
}

/* ------------------------------------------------------------------------ */
/* The kernel                                                                */

int acl_peer_groups(int fd, gid_t **ret, size_t *ret_n) {
        _cleanup_(freep) gid_t *groups = NULL;
        socklen_t len = 32 * sizeof(gid_t);

        for (;;) {
                gid_t *g = realloc(groups, len);
                socklen_t got = len;
                if (!g)
                        return -ENOMEM;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &got) == 0) {
                        size_t n = got / sizeof(gid_t);
                        if (n == 0) {
                                *ret = NULL;
                                *ret_n = 0;
                                return 0;
                        }
                        *ret = TAKE_PTR(groups);
                        *ret_n = n;
                        return 0;
                }
                /* Too small: the kernel says how much it needs. */
                if (errno == ERANGE && got > len) {
                        len = got;
                        continue;
                }
                if (errno == ENOPROTOOPT)
                        return -EOPNOTSUPP;
                return -errno;
        }
}
