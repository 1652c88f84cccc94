/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for access control (daemon/acl.c): the default policy (root
 * and the owner), users by name and id, primary and supplementary groups,
 * "*", each operation; filter overlap and coverage by table and against a
 * brute-force search over every small topic; and SO_PEERGROUPS.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl.h"
#include "conf.h"
#include "topicname.h"
#include "util.h"

#define TABLE_PARAMS(suite, test, table)                                       \
        ParameterizedTestParameters(suite, test) {                             \
                static size_t idx[ARRAY_SIZE(table)];                          \
                for (size_t i = 0; i < ARRAY_SIZE(table); i++)                 \
                        idx[i] = i;                                            \
                return cr_make_param_array(size_t, idx, ARRAY_SIZE(table));    \
        }

#define OWNER 500

static const char rules_yaml[] =
        "access:\n"
        "  - users: [\"1001\"]\n"
        "    publish: [\"sensors/#\", a/b]\n"
        "    subscribe: [\"sensors/+/temp\"]\n"
        "    request: [svc/time]\n"
        "  - users: [1002, root]\n"
        "    groups: [\"3000\"]\n"
        "    subscribe: [\"#\"]\n"
        "  - groups: [3001]\n"
        "    publish: [\"team/#\"]\n"
        "    admin: true\n"
        "  - users: [\"*\"]\n"
        "    subscribe: [\"public/#\", \"$SYS/broker/uptime\"]\n"
        "    publish: [public/chat]\n"
        "  - users: [\"1003\"]\n"
        "    subscribe: [\"$SYS/#\", \"+/x\"]\n"
        "    request: [\"svc/+/get\"]\n";

static Config *rules(void) {
        Config *c = NULL;
        char *err = NULL;
        int r = config_load_string("acl.yaml", rules_yaml, sizeof(rules_yaml) - 1, &c, &err);
        cr_assert(eq(int, r, 0), "%s", err ? err : "");
        return c;
}

static const gid_t groups_supp3000[] = { 5, 3000 };
static const gid_t groups_supp3001[] = { 3001 };
static const gid_t groups_other[] = { 7, 8, 9 };

enum { P_ROOT, P_OWNER, P_1001, P_1002, P_PRIMARY3000, P_SUPP3000, P_SUPP3001, P_1003, P_NOBODY,
       P_OTHER_GROUPS, _P_MAX };

static const AclPeer peers[_P_MAX] = {
        [P_ROOT] = { 0, 0, NULL, 0 },
        [P_OWNER] = { OWNER, 600, NULL, 0 },
        [P_1001] = { 1001, 1001, NULL, 0 },
        [P_1002] = { 1002, 1002, NULL, 0 },
        [P_PRIMARY3000] = { 2000, 3000, NULL, 0 },
        [P_SUPP3000] = { 2001, 2001, groups_supp3000, 2 },
        [P_SUPP3001] = { 2002, 2002, groups_supp3001, 1 },
        [P_1003] = { 1003, 1003, NULL, 0 },
        [P_NOBODY] = { 4000, 4000, NULL, 0 },
        [P_OTHER_GROUPS] = { 4001, 4001, groups_other, 3 },
};

typedef struct CheckCase {
        int peer;
        AclOp op;
        const char *topic;
        bool want;
} CheckCase;

static const CheckCase check_cases[] = {
        /* The default policy: root and the owner may do everything. */
        { P_ROOT, ACL_PUBLISH, "any/thing", true },
        { P_ROOT, ACL_SUBSCRIBE, "#", true },
        { P_ROOT, ACL_REQUEST, "svc/x", true },
        { P_ROOT, ACL_ADMIN, NULL, true },
        { P_OWNER, ACL_PUBLISH, "$SYS/x", true },
        { P_OWNER, ACL_SUBSCRIBE, "$SYS/#", true },
        { P_OWNER, ACL_REQUEST, "svc/x", true },
        { P_OWNER, ACL_ADMIN, NULL, true },

        /* A user by id: publish by filter. */
        { P_1001, ACL_PUBLISH, "sensors", true }, /* "sensors/#" matches the parent */
        { P_1001, ACL_PUBLISH, "sensors/cpu/temp", true },
        { P_1001, ACL_PUBLISH, "a/b", true },
        { P_1001, ACL_PUBLISH, "a/b/c", false },
        { P_1001, ACL_PUBLISH, "a", false },
        { P_1001, ACL_PUBLISH, "sensor", false },
        { P_1001, ACL_PUBLISH, "public/chat", true }, /* from "*" */
        { P_1001, ACL_PUBLISH, "public/other", false },
        /* Publish and request are separate grants. */
        { P_1001, ACL_REQUEST, "svc/time", true },
        { P_1001, ACL_REQUEST, "svc/date", false },
        { P_1001, ACL_REQUEST, "sensors/cpu/temp", false },
        { P_1001, ACL_PUBLISH, "svc/time", false },
        { P_1001, ACL_ADMIN, NULL, false },
        /* Subscribe: any overlap with a granted filter. */
        { P_1001, ACL_SUBSCRIBE, "sensors/+/temp", true },
        { P_1001, ACL_SUBSCRIBE, "sensors/cpu/temp", true },
        { P_1001, ACL_SUBSCRIBE, "sensors/#", true },
        { P_1001, ACL_SUBSCRIBE, "#", true },
        { P_1001, ACL_SUBSCRIBE, "+/+/+", true },
        { P_1001, ACL_SUBSCRIBE, "sensors/cpu/load", false },
        { P_1001, ACL_SUBSCRIBE, "sensors/+", false },
        { P_1001, ACL_SUBSCRIBE, "sensors/+/temp/x", false },
        { P_1001, ACL_SUBSCRIBE, "public/+", true }, /* from "*" */
        { P_1001, ACL_SUBSCRIBE, "$SYS/#", true },   /* "*" grants $SYS/broker/uptime */
        { P_1001, ACL_SUBSCRIBE, "$SYS/broker/load", false },
        { P_1001, ACL_SUBSCRIBE, "private/x", false },

        /* A user in a rule that also names groups; "#" is not "$SYS". */
        { P_1002, ACL_SUBSCRIBE, "anything/at/all", true },
        { P_1002, ACL_SUBSCRIBE, "#", true },
        { P_1002, ACL_SUBSCRIBE, "$SYS/broker/load", false },
        { P_1002, ACL_SUBSCRIBE, "$SYS/+/uptime", true }, /* "*" grants one $SYS topic */
        { P_1002, ACL_PUBLISH, "anything", false },
        { P_1002, ACL_ADMIN, NULL, false },

        /* A group, as the primary gid and as a supplementary group. */
        { P_PRIMARY3000, ACL_SUBSCRIBE, "x/y", true },
        { P_SUPP3000, ACL_SUBSCRIBE, "x/y", true },
        { P_SUPP3000, ACL_PUBLISH, "x/y", false },
        { P_SUPP3001, ACL_PUBLISH, "team/a", true },
        { P_SUPP3001, ACL_PUBLISH, "team", true },
        { P_SUPP3001, ACL_PUBLISH, "teams", false },
        { P_SUPP3001, ACL_ADMIN, NULL, true },
        { P_SUPP3001, ACL_SUBSCRIBE, "team/#", false },
        { P_PRIMARY3000, ACL_ADMIN, NULL, false },

        /* Everyone ("*"). */
        { P_NOBODY, ACL_SUBSCRIBE, "public/news", true },
        { P_NOBODY, ACL_SUBSCRIBE, "#", true },
        { P_NOBODY, ACL_SUBSCRIBE, "+", true }, /* "public" itself matches "public/#" */
        { P_NOBODY, ACL_SUBSCRIBE, "+/+/+", true },
        { P_NOBODY, ACL_SUBSCRIBE, "$SYS/+", false },
        { P_NOBODY, ACL_SUBSCRIBE, "private/#", false },
        { P_NOBODY, ACL_PUBLISH, "public/chat", true },
        { P_NOBODY, ACL_PUBLISH, "public/news", false },
        { P_NOBODY, ACL_REQUEST, "svc/time", false },
        { P_NOBODY, ACL_ADMIN, NULL, false },
        { P_OTHER_GROUPS, ACL_PUBLISH, "team/a", false },
        { P_OTHER_GROUPS, ACL_ADMIN, NULL, false },

        /* "$SYS/#" and a leading "+" that is not $. */
        { P_1003, ACL_SUBSCRIBE, "$SYS/broker/load", true },
        { P_1003, ACL_SUBSCRIBE, "$SYS/#", true },
        { P_1003, ACL_SUBSCRIBE, "a/x", true },
        { P_1003, ACL_SUBSCRIBE, "+/+", true },
        { P_1003, ACL_SUBSCRIBE, "$foo/x", false }, /* "+/x" does not match $-topics */
        { P_1003, ACL_REQUEST, "svc/clock/get", true },
        { P_1003, ACL_REQUEST, "svc/get", false },
};

TABLE_PARAMS(acl, check, check_cases)
ParameterizedTest(size_t *i, acl, check) {
        const CheckCase *k = &check_cases[*i];
        const char *t = k->topic ? k->topic : "";
        Config *c = rules();
        bool got = acl_check(c, OWNER, &peers[k->peer], k->op, t, strlen(t));

        cr_assert(eq(int, got, k->want), "case %zu: peer uid %u %s '%s' should be %s", *i,
                  (unsigned)peers[k->peer].uid, acl_op_name(k->op), t, k->want ? "allowed" : "refused");
        config_free(c);
}

/* Without a configuration only root and the owner may do anything. */
Test(acl, no_config) {
        for (int op = 0; op < _ACL_OP_MAX; op++) {
                cr_assert(acl_check(NULL, OWNER, &peers[P_ROOT], (AclOp)op, "a", 1));
                cr_assert(acl_check(NULL, OWNER, &peers[P_OWNER], (AclOp)op, "a", 1));
                cr_assert(not(acl_check(NULL, OWNER, &peers[P_NOBODY], (AclOp)op, "a", 1)));
        }
        cr_assert(not(acl_may_read(NULL, OWNER, &peers[P_NOBODY], "a", 1)));
        cr_assert(eq(int, acl_subscribe_reach(NULL, OWNER, &peers[P_NOBODY], "a", 1), ACL_REACH_NONE));
        cr_assert(eq(int, acl_subscribe_reach(NULL, OWNER, &peers[P_ROOT], "a", 1), ACL_REACH_ALL));
        cr_assert(acl_peer_is_privileged(OWNER, &peers[P_OWNER]));
        cr_assert(not(acl_peer_is_privileged(OWNER, &peers[P_1001])));
}

/* Users by name: "root" in a rule is uid 0, which is privileged anyway, so
 * check the resolved uid the rule holds, and a rule naming uid 0 by name
 * for a broker owned by someone else still lets root in. */
Test(acl, users_by_name) {
        Config *c = rules();
        cr_assert(eq(u32, (uint32_t)c->access[1].uids[1], 0));
        cr_assert(acl_check(c, 12345, &peers[P_ROOT], ACL_SUBSCRIBE, "x", 1));
        config_free(c);
}

Test(acl, op_names) {
        cr_assert(eq(str, (char *)acl_op_name(ACL_PUBLISH), "publish"));
        cr_assert(eq(str, (char *)acl_op_name(ACL_SUBSCRIBE), "subscribe"));
        cr_assert(eq(str, (char *)acl_op_name(ACL_REQUEST), "request"));
        cr_assert(eq(str, (char *)acl_op_name(ACL_ADMIN), "admin"));
        cr_assert(eq(str, (char *)acl_op_name(_ACL_OP_MAX), "unknown"));
}

/* ------------------------------------------------------------------------ */

typedef struct ReachCase {
        int peer;
        const char *filter;
        AclReach want;
        /* Topics the subscription may carry, and ones it must not deliver. */
        const char *readable[3];
        const char *unreadable[3];
} ReachCase;

static const ReachCase reach_cases[] = {
        { P_1001, "sensors/+/temp", ACL_REACH_ALL, { "sensors/a/temp" }, { NULL } },
        { P_1001, "sensors/cpu/temp", ACL_REACH_ALL, { "sensors/cpu/temp" }, { NULL } },
        { P_1001, "sensors/#", ACL_REACH_PARTIAL, { "sensors/a/temp" }, { "sensors", "sensors/a", "sensors/a/load" } },
        { P_1001, "#", ACL_REACH_PARTIAL, { "sensors/x/temp", "public/a", "$SYS/broker/uptime" }, { "a", "private/x" } },
        { P_1001, "public/#", ACL_REACH_ALL, { "public", "public/a/b" }, { NULL } },
        { P_1001, "nothing/here", ACL_REACH_NONE, { NULL }, { "nothing/here" } },
        { P_1002, "#", ACL_REACH_ALL, { "a", "b/c" }, { "$SYS/broker/load" } },
        { P_1002, "$SYS/#", ACL_REACH_PARTIAL, { "$SYS/broker/uptime" }, { "$SYS/broker/load" } },
        { P_1003, "+/x", ACL_REACH_ALL, { "a/x" }, { "$a/x" } },
        { P_1003, "$SYS/+/load", ACL_REACH_ALL, { "$SYS/broker/load" }, { NULL } },
        { P_1003, "$a/x", ACL_REACH_NONE, { NULL }, { "$a/x" } },
        { P_ROOT, "$SYS/#", ACL_REACH_ALL, { "$SYS/x" }, { NULL } },
        { P_OWNER, "#", ACL_REACH_ALL, { "a", "$SYS/x" }, { NULL } },
};

TABLE_PARAMS(acl, reach, reach_cases)
ParameterizedTest(size_t *i, acl, reach) {
        const ReachCase *k = &reach_cases[*i];
        const AclPeer *p = &peers[k->peer];
        Config *c = rules();
        AclReach got = acl_subscribe_reach(c, OWNER, p, k->filter, strlen(k->filter));

        cr_assert(eq(int, got, k->want), "case %zu: '%s'", *i, k->filter);
        cr_assert(eq(int, acl_may_subscribe(c, OWNER, p, k->filter, strlen(k->filter)),
                     k->want != ACL_REACH_NONE));
        for (size_t j = 0; j < 3 && k->readable[j]; j++) {
                const char *t = k->readable[j];
                cr_assert(acl_may_read(c, OWNER, p, t, strlen(t)), "case %zu: '%s' readable", *i, t);
        }
        for (size_t j = 0; j < 3 && k->unreadable[j]; j++) {
                const char *t = k->unreadable[j];
                cr_assert(not(acl_may_read(c, OWNER, p, t, strlen(t))), "case %zu: '%s' unreadable", *i, t);
        }
        config_free(c);
}

/* ------------------------------------------------------------------------ */
/* Filters                                                                   */

typedef struct PairCase {
        const char *a, *b;
        bool overlaps;
        bool a_covers_b;
} PairCase;

static const PairCase pair_cases[] = {
        { "a", "a", true, true },
        { "a", "b", false, false },
        { "a/#", "a/b", true, true },
        { "a/b", "a/#", true, false },
        { "a/#", "a", true, true }, /* "#" matches the parent */
        { "a", "a/#", true, false },
        { "a/#", "b/#", false, false },
        { "+/x", "a/+", true, false },
        { "a/+", "+/x", true, false },
        { "+/x", "a/x", true, true },
        { "+/x", "a/y", false, false },
        { "+", "a/b", false, false },
        { "+/+", "a/#", true, false },
        { "a/#", "+/+", true, false },
        { "#", "a/b/c", true, true },
        { "#", "#", true, true },
        { "#", "+", true, true },
        { "+", "#", true, false },
        { "+/#", "#", true, true },   /* every topic has a first level */
        { "#", "+/#", true, true },
        { "a/+/c", "a/b/+", true, false },
        { "a/+/c", "a/+/c/d", false, false },
        { "a/+/#", "a/b", true, true },
        { "a/+/#", "a", false, false },
        { "a//b", "a/+/b", true, false },
        { "a/+/b", "a//b", true, true },
        { "/", "+/+", true, false },
        { "+/+", "/", true, true },
        { "/#", "#", true, false },
        /* The parent of "/#" would be the empty topic, which is no topic. */
        { "+", "/#", false, false },
        { "/#", "+", false, false },
        { "+/+/#", "/#", true, true },
        { "/+/#", "/#", true, true },
        { "//#", "+/+", true, false },
        /* '$': a leading wildcard never matches a $-topic. */
        { "#", "$SYS/x", false, false },
        { "$SYS/x", "#", false, false },
        { "+/x", "$SYS/x", false, false },
        { "$SYS/x", "+/x", false, false },
        { "+/#", "$SYS", false, false },
        { "#", "$SYS/#", false, false },
        { "$SYS/#", "$SYS/x", true, true },
        { "$SYS/+", "$SYS/#", true, false },
        { "$SYS/#", "$SYS", true, true },
        { "a/#", "a/$x", true, true }, /* '$' matters only in the first level */
        { "a/+", "a/$x", true, true },
        { "#", "a$/x", true, true },
        { "+", "$", false, false },
        { "#", "+/$x", true, true },
};

TABLE_PARAMS(filters, pairs, pair_cases)
ParameterizedTest(size_t *i, filters, pairs) {
        const PairCase *k = &pair_cases[*i];
        size_t al = strlen(k->a), bl = strlen(k->b);

        cr_assert(eq(int, topic_filter_check(k->a, al, 1024), TOPIC_OK));
        cr_assert(eq(int, topic_filter_check(k->b, bl, 1024), TOPIC_OK));
        cr_assert(eq(int, acl_filter_overlaps(k->a, al, k->b, bl), k->overlaps), "overlaps('%s', '%s')",
                  k->a, k->b);
        cr_assert(eq(int, acl_filter_overlaps(k->b, bl, k->a, al), k->overlaps), "overlaps('%s', '%s')",
                  k->b, k->a);
        cr_assert(eq(int, acl_filter_covers(k->a, al, k->b, bl), k->a_covers_b), "covers('%s', '%s')",
                  k->a, k->b);
}

/*
 * Brute force: every filter of up to 3 levels over {a, $x, "", +, #} against
 * every topic of up to 4 levels over {a, b, $x, ""} (deep enough to tell
 * any two such filters apart). overlaps(f, g) must say whether some topic
 * matches both; covers(f, g) whether every topic matching g matches f.
 */
#define MAX_ITEMS 4096

static size_t build_all(const char *const *alphabet, size_t n_alpha, size_t max_levels, bool filters,
                        char (*out)[32]) {
        size_t n = 0;
        size_t idx[8];
        for (size_t levels = 1; levels <= max_levels; levels++) {
                size_t total = 1;
                for (size_t l = 0; l < levels; l++)
                        total *= n_alpha;
                for (size_t k = 0; k < total; k++) {
                        size_t v = k, o = 0;
                        char buf[32];
                        for (size_t l = 0; l < levels; l++) {
                                idx[l] = v % n_alpha;
                                v /= n_alpha;
                        }
                        for (size_t l = 0; l < levels; l++)
                                o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", l ? "/" : "",
                                                      alphabet[idx[l]]);
                        if (filters ? topic_filter_check(buf, o, 1024) != TOPIC_OK
                                    : topic_name_check(buf, o, 1024) != TOPIC_OK)
                                continue;
                        cr_assert(lt(sz, n, (size_t)MAX_ITEMS));
                        memcpy(out[n++], buf, o + 1);
                }
        }
        return n;
}

Test(filters, brute_force, .timeout = 120) {
        static const char *const falpha[] = { "a", "$x", "", "+", "#" };
        static const char *const talpha[] = { "a", "b", "$x", "" };
        static char f[MAX_ITEMS][32], t[MAX_ITEMS][32];
        static bool m[MAX_ITEMS][400];
        size_t nf = build_all(falpha, ARRAY_SIZE(falpha), 3, true, f);
        size_t nt = build_all(talpha, ARRAY_SIZE(talpha), 4, false, t);

        cr_assert(lt(sz, nf, (size_t)400));
        for (size_t j = 0; j < nt; j++)
                for (size_t i = 0; i < nf; i++)
                        m[j][i] = topic_filter_match(f[i], strlen(f[i]), t[j], strlen(t[j]));

        for (size_t x = 0; x < nf; x++)
                for (size_t y = 0; y < nf; y++) {
                        bool both = false, covered = true;
                        for (size_t j = 0; j < nt; j++) {
                                both |= m[j][x] && m[j][y];
                                if (m[j][y] && !m[j][x])
                                        covered = false;
                        }
                        cr_assert(eq(int, acl_filter_overlaps(f[x], strlen(f[x]), f[y], strlen(f[y])), both),
                                  "overlaps('%s', '%s')", f[x], f[y]);
                        cr_assert(eq(int, acl_filter_covers(f[x], strlen(f[x]), f[y], strlen(f[y])), covered),
                                  "covers('%s', '%s')", f[x], f[y]);
                }
}

/* ------------------------------------------------------------------------ */
/* SO_PEERGROUPS                                                             */

static bool same_set(const gid_t *a, size_t na, const gid_t *b, size_t nb) {
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++) {
                bool found = false;
                for (size_t j = 0; j < nb; j++)
                        found |= a[i] == b[j];
                if (!found)
                        return false;
        }
        return true;
}

Test(peer_groups, socketpair) {
        int sv[2], n;
        gid_t mine[256], *got = NULL;
        size_t n_got = 0;
        int r;

        cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0));
        n = getgroups(ARRAY_SIZE(mine), mine);
        cr_assert(ge(int, n, 0));
        r = acl_peer_groups(sv[0], &got, &n_got);
        if (r == -EOPNOTSUPP)
                cr_skip_test("the kernel has no SO_PEERGROUPS");
        cr_assert(eq(int, r, 0), "%s", strerror(-r));
        cr_assert(same_set(got, n_got, mine, (size_t)n));
        free(got);
        close(sv[0]);
        close(sv[1]);

        /* Not a socket. */
        cr_assert(eq(int, acl_peer_groups(-1, &got, &n_got), -EBADF));
}

/* A client with many supplementary groups (more than the first guess of
 * the buffer) connects; the broker side sees exactly them. Needs root to
 * setgroups() in the forked client. */
Test(peer_groups, many_groups_from_a_client) {
        char dir[64] = "/tmp/ipcd-test-acl.XXXXXX";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        gid_t want[100], *got = NULL;
        size_t n_got = 0;
        int lfd, cfd, status, r;
        pid_t pid;

        if (geteuid() != 0)
                cr_skip_test("needs root to set a client's groups");
        for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                want[i] = (gid_t)(70000 + i);
        cr_assert(not(zero(ptr, mkdtemp(dir))));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(ge(int, lfd, 0));
        cr_assert(eq(int, bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0));
        cr_assert(eq(int, listen(lfd, 1), 0));

        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0) {
                int fd;
                char ch;
                if (setgroups(ARRAY_SIZE(want), want) < 0)
                        _exit(10);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        _exit(11);
                (void)!read(fd, &ch, 1); /* until the parent is done */
                _exit(0);
        }
        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        cr_assert(ge(int, cfd, 0));
        r = acl_peer_groups(cfd, &got, &n_got);
        close(cfd);
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        cr_assert(eq(int, status, 0));
        close(lfd);
        unlink(sa.sun_path);
        rmdir(dir);
        if (r == -EOPNOTSUPP)
                cr_skip_test("the kernel has no SO_PEERGROUPS");
        cr_assert(eq(int, r, 0), "%s", strerror(-r));
        cr_assert(same_set(got, n_got, want, ARRAY_SIZE(want)));
        free(got);
}
