/* SPDX-License-Identifier: MIT */
/*
 * Queue groups, retained messages and the admin commands, through
 * libipcd-client and ipcctl against a real ipcd; and ipcctl's JSON reader
 * and bash completion.
 *
 * Every broker runs in its own directory (mode 0755) with a configuration
 * file there and a socket of mode 0666, so that a forked client of another
 * user can reach it and `reload` has a file to re-read.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <ipcd/ipcd-client.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "json.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
/* A user that is neither root nor the broker's. */
#define OTHER_UID 4321

/* (The new-style cr_assert cannot take a negation directly.) */
static bool is_false(bool b) {
        return !b;
}

static const char good_yaml[] = "limits:\n  max_subscriptions: 1024\n";

static TestBroker tb;
static char dir[64];
static char conf[128];

static void write_conf(const char *text) {
        FILE *f = fopen(conf, "we");

        cr_assert(f != NULL, "fopen %s: %s", conf, strerror(errno));
        fputs(text, f);
        cr_assert(fclose(f) == 0);
}

static void start(void) {
        const char *args[] = { "--config", conf, "--socket-mode", "0666", NULL };

        snprintf(dir, sizeof(dir), "/tmp/ipcd-test-XXXXXX");
        cr_assert(mkdtemp(dir) != NULL);
        /* Clients of another user must reach the socket inside. */
        cr_assert(chmod(dir, 0755) == 0);
        snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
        write_conf(good_yaml);
        tb_start_in(&tb, dir, args);
}

/* The checks at the end of each test (criterion ignores failures in .fini). */
static void stop(void) {
        tb_stop(&tb);
        unlink(conf);
        rmdir(dir);
}

static void cleanup(void) {
        tb_kill(&tb);
        unlink(conf);
        rmdir(dir);
}

/* ---- running ipcctl (and bash) ---- */

static const char *ipcctl_bin(void) {
        const char *b = getenv("IPCCTL_BIN");
        return b ? b : "client/ipcctl";
}

typedef struct Proc {
        pid_t pid;
        int out, err; /* read ends of its standard output and error */
} Proc;

typedef struct Run {
        int code; /* exit status; -1 when it died of a signal */
        char out[65536];
        char err[8192];
} Run;

static Run run;

/*
 * Starts @argv (argv[0] the program's path) with its output on pipes; as
 * user and group @uid unless @uid is 0.
 */
static Proc spawn(const char *const *argv, uid_t uid) {
        int opipe[2], epipe[2];
        Proc p;

        cr_assert(pipe2(opipe, O_CLOEXEC) == 0 && pipe2(epipe, O_CLOEXEC) == 0);
        p.pid = fork();
        cr_assert(p.pid >= 0);
        if (p.pid == 0) {
                harness_child_begin();
                if (uid != 0)
                        TB_CHECK(setgroups(0, NULL) == 0 && setresgid(uid, uid, uid) == 0 &&
                                         setresuid(uid, uid, uid) == 0,
                                 "cannot become uid %u: %s", (unsigned)uid, strerror(errno));
                TB_CHECK(dup2(opipe[1], STDOUT_FILENO) >= 0 && dup2(epipe[1], STDERR_FILENO) >= 0);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(opipe[1]);
        close(epipe[1]);
        p.out = opipe[0];
        p.err = epipe[0];
        return p;
}

/* Collects what @p writes until it closes both pipes, then its exit status,
 * into @r. What does not fit is read and dropped. */
static void finish(Proc *p, Run *r) {
        size_t have[2] = { 0, 0 }, cap[2] = { sizeof(r->out) - 1, sizeof(r->err) - 1 };
        char *buf[2] = { r->out, r->err };
        struct pollfd pfd[2] = { { .fd = p->out, .events = POLLIN },
                                 { .fd = p->err, .events = POLLIN } };
        int status, open_fds = 2;

        while (open_fds > 0) {
                int i;

                cr_assert(poll(pfd, 2, 30000) > 0, "the command hangs");
                for (i = 0; i < 2; i++) {
                        char scratch[4096];
                        ssize_t n;

                        if (pfd[i].fd < 0 || !pfd[i].revents)
                                continue;
                        if (have[i] < cap[i])
                                n = read(pfd[i].fd, buf[i] + have[i], cap[i] - have[i]);
                        else
                                n = read(pfd[i].fd, scratch, sizeof(scratch));
                        if (n <= 0) {
                                close(pfd[i].fd);
                                pfd[i].fd = -1;
                                open_fds--;
                        } else if (have[i] < cap[i])
                                have[i] += (size_t)n;
                }
        }
        r->out[have[0]] = 0;
        r->err[have[1]] = 0;
        cr_assert(waitpid(p->pid, &status, 0) == p->pid);
        r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ipcctl -s SOCKET @args..., as user @uid (0: as we are). */
static Proc ipcctl_start(const char *const *args, uid_t uid) {
        const char *argv[32];
        size_t n = 0;

        argv[n++] = ipcctl_bin();
        argv[n++] = "-s";
        argv[n++] = tb.sock;
        for (; *args && n < N_ELEMS(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        return spawn(argv, uid);
}

/* Runs ipcctl to the end; the result is in `run`. Returns its exit code. */
static int ipcctl_as(uid_t uid, const char *const *args) {
        Proc p = ipcctl_start(args, uid);

        finish(&p, &run);
        return run.code;
}

#define IPCCTL(...) ipcctl_as(0, (const char *const[]){ __VA_ARGS__, NULL })

/* ---- library helpers ---- */

static ipcd_client *client(const char *name) {
        ipcd_client *c = NULL;
        int r = ipcd_client_new(&c, tb.sock, name);

        cr_assert(eq(int, r, 0), "ipcd_client_new: %s", strerror(-r));
        return c;
}

typedef struct Count {
        int n;
        int retained;         /* with IPCD_MSG_RETAINED */
        uint32_t sub;         /* subscription of the last one */
        char last[64];        /* payload of the last one */
        unsigned last_flags;
} Count;

static void count(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Count *k = userdata;
        size_t len;
        const char *data = ipcd_msg_get_data(m, &len);

        k->n++;
        k->last_flags = ipcd_msg_get_flags(m);
        if (k->last_flags & IPCD_MSG_RETAINED)
                k->retained++;
        k->sub = ipcd_msg_get_subscription(m);
        snprintf(k->last, sizeof(k->last), "%.*s", (int)len, data);
}

/* Lets every client in @cs process until @cond holds (5 s at most). */
#define PUMP_UNTIL(cond, ...)                                                           \
        do {                                                                            \
                ipcd_client *_cs[] = { __VA_ARGS__ };                                   \
                int _i;                                                                 \
                size_t _k;                                                              \
                for (_i = 0; _i < 1000 && !(cond); _i++)                                \
                        for (_k = 0; _k < N_ELEMS(_cs); _k++)                           \
                                cr_assert(ipcd_client_wait(_cs[_k], _i < 10 ? 0 : 2) >= 0); \
                cr_assert(cond, "timed out waiting for " #cond);                       \
        } while (0)

/* Makes sure nothing more is on its way to @c: a round trip, then a short
 * wait that dispatches whatever came. */
static void settle(ipcd_client *c) {
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        cr_assert(ipcd_client_wait(c, 100) >= 0);
}

/* ---- queue groups ---- */

TestSuite(groups, .init = start, .fini = cleanup, .timeout = 60);

Test(groups, three_members_share_evenly_and_plain_subscribers_get_all) {
        ipcd_client *m[3], *plain = client("plain"), *pub = client("pub");
        Count got[3] = { 0 }, all = { 0 }, beside = { 0 };
        uint32_t ids[3], plain_id;
        char name[16], buf[16];
        int i;

        for (i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), "worker%d", i);
                m[i] = client(name);
                cr_assert(eq(int, ipcd_client_subscribe_full(m[i], "jobs/#", NULL, 0, "workers", 0,
                                                             count, &got[i], &ids[i]), 0));
                cr_assert(ne(u32, ids[i] & 0x80000000u, 0), "group member ids have the top bit: %" PRIx32,
                          ids[i]);
        }
        /* Worker 0 also subscribes plainly: it gets every message once more. */
        cr_assert(eq(int, ipcd_client_subscribe(m[0], "jobs/#", NULL, 0, count, &beside, &plain_id),
                     0));
        cr_assert(eq(u32, plain_id & 0x80000000u, 0));
        cr_assert(eq(int, ipcd_client_subscribe(plain, "jobs/+", NULL, 0, count, &all, NULL), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "groups"), 1));

        for (i = 0; i < 300; i++) {
                int n = snprintf(buf, sizeof(buf), "%d", i);
                cr_assert(eq(int, ipcd_client_publish(pub, "jobs/work", 1, buf, (size_t)n,
                                                      IPCD_PUBLISH_MORE), 0));
        }
        cr_assert(eq(int, ipcd_client_sync(pub), 0));
        PUMP_UNTIL(got[0].n + got[1].n + got[2].n == 300 && all.n == 300 && beside.n == 300, m[0],
                   m[1], m[2], plain);
        for (i = 0; i < 3; i++) {
                settle(m[i]);
                cr_assert(eq(int, got[i].n, 100), "worker %d got %d of 300", i, got[i].n);
                cr_assert(eq(u32, got[i].sub, ids[i]));
        }
        settle(plain);
        cr_assert(eq(int, all.n, 300));
        cr_assert(eq(int, beside.n, 300));
        cr_assert(eq(u32, beside.sub, plain_id));

        for (i = 0; i < 3; i++)
                ipcd_client_unref(m[i]);
        ipcd_client_unref(plain);
        ipcd_client_unref(pub);
        stop();
}

/* Deliveries for a member that is gone locally go to no other
 * subscription: they are the group's, not this connection's. */
Test(groups, deliveries_for_a_removed_member_reach_no_one_else) {
        ipcd_client *c = client("both"), *pub = client("pub");
        Count plain = { 0 }, member = { 0 };
        uint32_t gid;
        int i;

        cr_assert(eq(int, ipcd_client_subscribe(c, "q/#", NULL, 0, count, &plain, NULL), 0));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "q/#", NULL, 0, "solo", 0, count, &member,
                                                     &gid), 0));
        for (i = 0; i < 50; i++)
                cr_assert(eq(int, ipcd_client_publish(pub, "q/x", 1, "m", 1, IPCD_PUBLISH_MORE), 0));
        /* Routed: both deliveries of each are queued for c, before the ACK
         * of the UNSUBSCRIBE that follows. */
        cr_assert(eq(int, ipcd_client_sync(pub), 0));
        cr_assert(eq(int, ipcd_client_unsubscribe(c, gid), 0));
        PUMP_UNTIL(plain.n == 50, c);
        settle(c);
        cr_assert(eq(int, plain.n, 50));
        cr_assert(eq(int, member.n, 0));
        ipcd_client_unref(c);
        ipcd_client_unref(pub);
        stop();
}

/* A member whose SUBSCRIBE timed out is withdrawn: it must not take a
 * share of the group's messages that no handler would see. */
Test(groups, a_member_that_timed_out_is_withdrawn) {
        ipcd_client *c = client("late"), *other = client("other"), *pub = client("pub");
        Count k = { 0 }, o = { 0 };
        int i;

        cr_assert(eq(int, ipcd_client_subscribe_full(other, "w", NULL, 0, "g", 0, count, &o, NULL),
                     0));
        /* Timeout 0: it fails as soon as the frame is written. */
        cr_assert(eq(int, ipcd_client_set_timeout(c, 0), 0));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "w", NULL, 0, "g", 0, count, &k, NULL),
                     -ETIMEDOUT));
        cr_assert(eq(int, ipcd_client_set_timeout(c, 5000), 0));
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "subscriptions"), 1));
        for (i = 0; i < 10; i++)
                cr_assert(eq(int, ipcd_client_publish(pub, "w", 1, "x", 1, IPCD_PUBLISH_MORE), 0));
        cr_assert(eq(int, ipcd_client_sync(pub), 0));
        PUMP_UNTIL(o.n == 10, other);
        settle(c);
        cr_assert(eq(int, k.n, 0));
        ipcd_client_unref(c);
        ipcd_client_unref(other);
        ipcd_client_unref(pub);
        stop();
}

Test(groups, invalid_group_names_and_flags) {
        ipcd_client *c = client("bad");
        char longest[256], too_long[257];
        Count k = { 0 };

        memset(longest, 'g', sizeof(longest) - 1);
        longest[sizeof(longest) - 1] = 0;
        memset(too_long, 'g', sizeof(too_long) - 1);
        too_long[sizeof(too_long) - 1] = 0;
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, "", 0, count, &k, NULL),
                     -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, too_long, 0, count, &k, NULL),
                     -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, "tab\there", 0, count, &k,
                                                     NULL), -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, "bad\xff", 0, count, &k, NULL),
                     -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, NULL, 1u << 7, count, &k, NULL),
                     -EINVAL));
        cr_assert(eq(int, ipcd_client_publish(c, "a", 1, "x", 1, 1u << 7), -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, longest, 0, count, &k, NULL),
                     0));
        cr_assert(eq(int, ipcd_client_subscribe_full(c, "a", NULL, 0, "grüppe", 0, count, &k, NULL),
                     0));
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        ipcd_client_unref(c);
        stop();
}

/* ---- retained messages ---- */

TestSuite(retained, .init = start, .fini = cleanup, .timeout = 60);

Test(retained, library_flags_and_only_the_new_subscription_gets_it) {
        ipcd_client *pub = client("pub"), *s = client("sub"), *late;
        Count a = { 0 }, b = { 0 }, quiet = { 0 }, later = { 0 };
        uint32_t ida, idb;

        cr_assert(eq(int, ipcd_client_publish(pub, "cfg/a", 3, "v1", 2,
                                              IPCD_PUBLISH_RETAIN | IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "retained"), 1));

        cr_assert(eq(int, ipcd_client_subscribe(s, "cfg/#", NULL, 0, count, &a, &ida), 0));
        PUMP_UNTIL(a.n == 1, s);
        cr_assert(eq(int, a.retained, 1));
        cr_assert(eq(str, a.last, "v1"));
        cr_assert(eq(u32, a.sub, ida));

        /* A live message is not flagged (and this one is not retained). */
        cr_assert(eq(int, ipcd_client_publish(pub, "cfg/a", 3, "v2", 2, IPCD_PUBLISH_ACK), 0));
        PUMP_UNTIL(a.n == 2, s);
        cr_assert(eq(uint, a.last_flags & IPCD_MSG_RETAINED, 0));
        cr_assert(eq(str, a.last, "v2"));

        /* A second subscription gets the retained one; the first does not
         * get it again. */
        cr_assert(eq(int, ipcd_client_subscribe(s, "cfg/a", NULL, 0, count, &b, &idb), 0));
        PUMP_UNTIL(b.n == 1, s);
        settle(s);
        cr_assert(eq(int, b.retained, 1));
        cr_assert(eq(str, b.last, "v1"));
        cr_assert(eq(u32, b.sub, idb));
        cr_assert(eq(int, a.n, 2));

        /* Unless it asks not to. */
        cr_assert(eq(int, ipcd_client_subscribe_full(s, "cfg/#", NULL, 0, NULL,
                                                     IPCD_SUBSCRIBE_NO_RETAINED, count, &quiet,
                                                     NULL), 0));
        settle(s);
        cr_assert(eq(int, quiet.n, 0));

        /* Type selection applies to retained messages too. */
        {
                Count other_type = { 0 };
                uint32_t t = 4;
                cr_assert(eq(int, ipcd_client_subscribe(s, "cfg/a", &t, 1, count, &other_type, NULL),
                             0));
                settle(s);
                cr_assert(eq(int, other_type.n, 0));
        }

        /* An empty retained publish clears it (and is delivered). */
        cr_assert(eq(int, ipcd_client_publish(pub, "cfg/a", 3, NULL, 0,
                                              IPCD_PUBLISH_RETAIN | IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "retained"), 0));
        PUMP_UNTIL(a.n == 3 && b.n == 2 && quiet.n == 1, s);
        cr_assert(eq(str, a.last, ""));
        late = client("late");
        cr_assert(eq(int, ipcd_client_subscribe(late, "cfg/#", NULL, 0, count, &later, NULL), 0));
        settle(late);
        cr_assert(eq(int, later.n, 0));

        ipcd_client_unref(late);
        ipcd_client_unref(s);
        ipcd_client_unref(pub);
        stop();
}

Test(retained, ipcctl_pub_retain_and_sub_no_retained) {
        ipcd_client *pub;
        Proc p;
        int i;

        cr_assert(eq(int, IPCCTL("pub", "--retain", "cfg/b", "v2", "--type", "5"), 0), "%s",
                  run.err);
        cr_assert(eq(int, IPCCTL("sub", "cfg/b", "--json", "--count", "1", "--timeout", "5"), 0),
                  "%s", run.err);
        cr_assert(strstr(run.out, "\"retained\":true") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "\"payload\":\"v2\"") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "\"type\":5") != NULL, "%s", run.out);

        cr_assert(eq(int, IPCCTL("sub", "cfg/+", "--count", "1", "--timeout", "5"), 0), "%s",
                  run.err);
        cr_assert(strstr(run.out, " retained: v2\n") != NULL, "%s", run.out);

        /* A group member gets it too. */
        cr_assert(eq(int, IPCCTL("sub", "cfg/#", "--group", "g", "--json", "--count", "1",
                                 "--timeout", "5"), 0), "%s", run.err);
        cr_assert(strstr(run.out, "\"retained\":true") != NULL, "%s", run.out);

        cr_assert(eq(int, IPCCTL("sub", "cfg/b", "--no-retained", "--timeout", "0.3"), 4));
        cr_assert(eq(str, run.out, ""));

        /* Retained first, then a live one, which is not. */
        p = ipcctl_start((const char *const[]){ "sub", "cfg/b", "--json", "--count", "2",
                                                "--timeout", "10", NULL }, 0);
        for (i = 0; i < 500 && tb_status_number(&tb, "subscriptions") < 1; i++)
                usleep(10000);
        pub = client("pub");
        cr_assert(eq(int, ipcd_client_publish(pub, "cfg/b", 5, "v3", 2, IPCD_PUBLISH_ACK), 0));
        ipcd_client_unref(pub);
        finish(&p, &run);
        cr_assert(eq(int, run.code, 0), "%s", run.err);
        cr_assert(strstr(run.out, "\"retained\":true") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "\"retained\":false") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "\"retained\":true") < strstr(run.out, "\"retained\":false"));

        /* An empty retained message clears it. */
        cr_assert(eq(int, IPCCTL("pub", "--retain", "cfg/b"), 0), "%s", run.err);
        cr_assert(eq(int, IPCCTL("sub", "cfg/b", "--timeout", "0.3"), 4));
        cr_assert(eq(str, run.out, ""));

        cr_assert(eq(int, IPCCTL("sub", "x", "--group", ""), 2));
        stop();
}

/* ---- admin commands ---- */

TestSuite(admin, .init = start, .fini = cleanup, .timeout = 60);

Test(admin, reload_applies_a_good_file_and_explains_a_bad_one) {
        char want[200];

        cr_assert(eq(int, IPCCTL("reload"), 0), "%s", run.err);
        cr_assert(eq(str, run.out, "configuration reloaded\n"));
        cr_assert(eq(i64, tb_status_number(&tb, "reloads"), 1));

        write_conf("limits:\n  queue_bytes: 1MiB\n  no_such_key: 3\n");
        cr_assert(eq(int, IPCCTL("reload"), 1));
        snprintf(want, sizeof(want), "%s:3:3:", conf);
        cr_assert(strstr(run.err, want) != NULL, "want '%s' in: %s", want, run.err);
        cr_assert(strstr(run.err, "no_such_key") != NULL, "%s", run.err);
        cr_assert(eq(str, run.out, ""));
        cr_assert(eq(i64, tb_status_number(&tb, "reload_failures"), 1));
        cr_assert(eq(i64, tb_status_number(&tb, "reloads"), 1));

        /* The broker runs on, and takes the file once it is good again. */
        write_conf(good_yaml);
        cr_assert(eq(int, IPCCTL("reload"), 0), "%s", run.err);
        cr_assert(eq(i64, tb_status_number(&tb, "reloads"), 2));
        stop();
}

/* The entry of array @a whose string member @key is @value, or NULL. */
static const Json *find_by(const Json *a, const char *key, const char *value) {
        size_t i;

        for (i = 0; a && i < a->n; i++) {
                const char *s = json_get_string(&a->items[i], key);
                if (s && strcmp(s, value) == 0)
                        return &a->items[i];
        }
        return NULL;
}

/* The entry of array @a whose number member @key is @value, or NULL. */
static const Json *find_by_number(const Json *a, const char *key, uint64_t value) {
        size_t i;

        for (i = 0; a && i < a->n; i++) {
                uint64_t v;
                if (json_u64(json_get(&a->items[i], key), &v) && v == value)
                        return &a->items[i];
        }
        return NULL;
}

static uint64_t number(const Json *obj, const char *key) {
        uint64_t v = 0;

        cr_assert(json_u64(json_get(obj, key), &v), "no number \"%s\" in: %s", key, run.out);
        return v;
}

static char *string(const Json *obj, const char *key) {
        const char *v = json_get_string(obj, key);

        cr_assert(v != NULL, "no string \"%s\" in: %s", key, run.out);
        return (char *)v;
}

static JsonType type_of(const Json *obj, const char *key) {
        const Json *v = json_get(obj, key);

        cr_assert(v != NULL, "no \"%s\" in: %s", key, run.out);
        return v->type;
}

static void parse_run(Json *doc) {
        int r = json_parse(run.out, strlen(run.out), doc);

        cr_assert(eq(int, r, 0), "not JSON: %s", run.out);
        cr_assert(eq(int, doc->type, JSON_OBJECT));
}

Test(admin, status_clients_and_topics_describe_what_is_connected) {
        ipcd_client *alpha = client("alpha"), *beta = client("beta"), *gamma = client("gamma"),
                    *delta = client("delta");
        const uint32_t types[] = { 7, 9 };
        const Json *clients, *topics, *subs, *groups, *e, *t;
        Count k = { 0 };
        uint64_t u;
        Json doc;
        int i;

        cr_assert(eq(int, ipcd_client_subscribe(alpha, "sensors/#", types, 2, count, &k, NULL), 0));
        cr_assert(eq(int, ipcd_client_subscribe_full(beta, "sensors/+/temp", NULL, 0, "readers", 0,
                                                     count, &k, NULL), 0));
        cr_assert(eq(int, ipcd_client_subscribe_full(gamma, "sensors/+/temp", NULL, 0, "readers",
                                                     0, count, &k, NULL), 0));
        for (i = 0; i < 3; i++)
                cr_assert(eq(int, ipcd_client_publish(delta, "sensors/cpu0/temp", 7, "42", 2,
                                                      IPCD_PUBLISH_ACK), 0));
        for (i = 0; i < 2; i++)
                cr_assert(eq(int, ipcd_client_publish(delta, "other/x", 1, "o", 1, IPCD_PUBLISH_ACK),
                             0));

        /* status: counters, and a row per client and per topic. */
        cr_assert(eq(int, IPCCTL("status", "--json"), 0), "%s", run.err);
        parse_run(&doc);
        cr_assert(eq(u64, number(&doc, "clients"), 5)); /* with ipcctl */
        cr_assert(eq(u64, number(&doc, "subscriptions"), 3));
        cr_assert(eq(u64, number(&doc, "groups"), 1));
        cr_assert(eq(str, string(&doc, "version"), PACKAGE_VERSION));
        clients = json_get_array(&doc, "per_client");
        cr_assert(clients != NULL);
        cr_assert(eq(sz, clients->n, 5));
        e = find_by(clients, "name", "alpha");
        cr_assert(e != NULL, "%s", run.out);
        cr_assert(eq(u64, number(e, "id"), ipcd_client_get_id(alpha)));
        cr_assert(eq(u64, number(e, "pid"), (uint64_t)getpid()));
        cr_assert(eq(u64, number(e, "uid"), (uint64_t)getuid()));
        cr_assert(eq(u64, number(e, "subscriptions"), 1));
        cr_assert(eq(u64, number(e, "messages_out"), 3));
        cr_assert(json_get_string(e, "command") != NULL);
        e = find_by(clients, "name", "delta");
        cr_assert(e != NULL);
        cr_assert(eq(u64, number(e, "messages_in"), 5));
        cr_assert(eq(u64, number(e, "subscriptions"), 0));
        cr_assert(find_by(clients, "name", "ipcctl") != NULL);
        cr_assert(is_false(json_is_true(json_get(&doc, "per_client_truncated"))));
        topics = json_get_array(&doc, "per_topic");
        cr_assert(topics != NULL);
        t = find_by(topics, "topic", "sensors/cpu0/temp");
        cr_assert(t != NULL, "%s", run.out);
        cr_assert(eq(u64, number(t, "published"), 3));
        cr_assert(eq(u64, number(t, "seq"), 3));
        cr_assert(eq(int, type_of(t, "retained"), JSON_FALSE));
        t = find_by(topics, "topic", "other/x");
        cr_assert(t != NULL);
        cr_assert(eq(u64, number(t, "published"), 2));
        cr_assert(is_false(json_is_true(json_get(&doc, "per_topic_truncated"))));
        json_deinit(&doc);

        /* clients: the same rows, all of them. */
        cr_assert(eq(int, IPCCTL("clients", "--json"), 0), "%s", run.err);
        parse_run(&doc);
        clients = json_get_array(&doc, "clients");
        cr_assert(clients != NULL);
        cr_assert(eq(sz, clients->n, 5));
        e = find_by_number(clients, "id", ipcd_client_get_id(beta));
        cr_assert(e != NULL, "%s", run.out);
        cr_assert(eq(str, string(e, "name"), "beta"));
        cr_assert(eq(u64, number(e, "subscriptions"), 1));
        json_deinit(&doc);

        /* topics: subscriptions with their filters, groups with members. */
        cr_assert(eq(int, IPCCTL("topics", "--json"), 0), "%s", run.err);
        parse_run(&doc);
        topics = json_get_array(&doc, "topics");
        cr_assert(eq(sz, topics->n, 2));
        subs = json_get_array(&doc, "subscriptions");
        cr_assert(eq(sz, subs->n, 3));
        e = find_by_number(subs, "client", ipcd_client_get_id(alpha));
        cr_assert(e != NULL, "%s", run.out);
        cr_assert(eq(str, string(e, "filter"), "sensors/#"));
        cr_assert(eq(int, type_of(e, "group"), JSON_NULL));
        t = json_get_array(e, "types");
        cr_assert(t != NULL && t->n == 2, "%s", run.out);
        cr_assert(json_u64(&t->items[0], &u) && u == 7);
        cr_assert(json_u64(&t->items[1], &u) && u == 9);
        cr_assert(eq(str, string(e, "reach"), "all"));
        e = find_by_number(subs, "client", ipcd_client_get_id(gamma));
        cr_assert(e != NULL);
        cr_assert(eq(str, string(e, "group"), "readers"));
        cr_assert(eq(str, string(e, "filter"), "sensors/+/temp"));
        groups = json_get_array(&doc, "groups");
        e = find_by(groups, "name", "readers");
        cr_assert(e != NULL, "%s", run.out);
        cr_assert(eq(u64, number(e, "members"), 2));
        json_deinit(&doc);

        /* A filter narrows the topics. */
        cr_assert(eq(int, IPCCTL("topics", "other/#", "--json"), 0), "%s", run.err);
        parse_run(&doc);
        topics = json_get_array(&doc, "topics");
        cr_assert(eq(sz, topics->n, 1));
        cr_assert(find_by(topics, "topic", "other/x") != NULL);
        json_deinit(&doc);
        cr_assert(eq(int, IPCCTL("topics", "a/#/b"), 1));

        /* The same as tables. */
        cr_assert(eq(int, IPCCTL("status"), 0), "%s", run.err);
        cr_assert(strstr(run.out, "uptime_sec:") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "ID  NAME") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "TOPIC ") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "sensors/cpu0/temp") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "alpha") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "per_client") == NULL, "%s", run.out);
        cr_assert(eq(int, IPCCTL("clients"), 0), "%s", run.err);
        cr_assert(strstr(run.out, "QUEUED") != NULL && strstr(run.out, "gamma") != NULL, "%s",
                  run.out);
        cr_assert(eq(int, IPCCTL("topics"), 0), "%s", run.err);
        cr_assert(strstr(run.out, "sensors/+/temp") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "readers") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "MEMBERS") != NULL, "%s", run.out);

        ipcd_client_unref(alpha);
        ipcd_client_unref(beta);
        ipcd_client_unref(gamma);
        ipcd_client_unref(delta);
        stop();
}

Test(admin, kick_ends_a_client_and_refuses_unknown_ids) {
        ipcd_client *victim = client("victim"), *admin = client("admin");
        char id[16], *json = NULL;
        Count k = { 0 };
        int r, i;

        cr_assert(eq(int, ipcd_client_subscribe(victim, "k", NULL, 0, count, &k, NULL), 0));
        snprintf(id, sizeof(id), "%" PRIu32, ipcd_client_get_id(victim));
        cr_assert(eq(int, IPCCTL("kick", id), 0), "%s", run.err);
        cr_assert(strstr(run.out, id) != NULL, "%s", run.out);
        for (i = 0, r = 0; i < 50 && r >= 0; i++)
                r = ipcd_client_wait(victim, 100);
        cr_assert(eq(int, r, -ECONNRESET), "%s", strerror(-r));
        cr_assert(strstr(ipcd_client_last_error(victim), "administrator") != NULL, "%s",
                  ipcd_client_last_error(victim));
        cr_assert(eq(int, ipcd_client_publish(victim, "k", 1, "x", 1, 0), -ENOTCONN));
        ipcd_client_unref(victim);

        cr_assert(eq(int, IPCCTL("kick", "999999"), 1));
        cr_assert(strstr(run.err, "no client with id 999999") != NULL, "%s", run.err);
        cr_assert(eq(int, IPCCTL("kick", "seven"), 2));
        cr_assert(eq(int, IPCCTL("kick"), 2));

        /* Through the library: the argument travels as text. */
        cr_assert(eq(int, ipcd_client_admin_full(admin, "kick", "999999", &json, NULL), -EINVAL));
        cr_assert(strstr(ipcd_client_last_error(admin), "999999") != NULL);
        cr_assert(json == NULL);
        cr_assert(eq(int, ipcd_client_admin_full(admin, "topics", "k", &json, NULL), 0));
        cr_assert(strstr(json, "\"topics\"") != NULL, "%s", json);
        free(json);
        ipcd_client_unref(admin);
        stop();
}

Test(admin, admin_commands_refuse_other_users) {
        static const char *const admin_cmds[][3] = {
                { "clients", NULL }, { "topics", NULL }, { "kick", "1" }, { "reload", NULL }
        };
        size_t i;

        for (i = 0; i < N_ELEMS(admin_cmds); i++) {
                const char *args[] = { admin_cmds[i][0], admin_cmds[i][1], NULL };
                cr_assert(eq(int, ipcctl_as(OTHER_UID, args), 1), "%s: %s", args[0], run.err);
                cr_assert(strstr(run.err, "permission") != NULL, "%s: %s", args[0], run.err);
                cr_assert(eq(str, run.out, ""));
        }
        /* status is for everyone. */
        cr_assert(eq(int, ipcctl_as(OTHER_UID, (const char *const[]){ "status", NULL }), 0), "%s",
                  run.err);
        cr_assert(strstr(run.out, "version:") != NULL, "%s", run.out);
        cr_assert(eq(i64, tb_status_number(&tb, "reloads"), 0));
        stop();
}

Test(admin, every_command_has_help) {
        static const char *const cmds[] = { "pub",    "sub",  "status", "clients",
                                            "topics", "kick", "reload" };
        size_t i;

        for (i = 0; i < N_ELEMS(cmds); i++) {
                cr_assert(eq(int, IPCCTL(cmds[i], "--help"), 0), "%s", cmds[i]);
                cr_assert(strncmp(run.out, "Usage: ipcctl", 13) == 0, "%s: %s", cmds[i], run.out);
                cr_assert(eq(int, IPCCTL(cmds[i], "--no-such-option"), 2), "%s", cmds[i]);
        }
        cr_assert(eq(int, IPCCTL("--help"), 0));
        for (i = 0; i < N_ELEMS(cmds); i++)
                cr_assert(strstr(run.out, cmds[i]) != NULL, "%s missing from: %s", cmds[i], run.out);
        stop();
}

/* ---- bash completion ---- */

TestSuite(completion, .init = start, .fini = cleanup, .timeout = 60);

/* Completes the words @line (the last one being completed) with
 * ipcctl.bash-completion in a bash without bash-completion; the
 * candidates end up in run.out, one per line. */
static void complete(const char *line) {
        const char *file = getenv("IPCCTL_COMPLETION");
        char script[1024];
        Proc p;

        snprintf(script, sizeof(script),
                 "source \"$1\" || exit 9; "
                 "read -ra COMP_WORDS <<< \"$2\"; "
                 "[[ $2 == *' ' ]] && COMP_WORDS+=(''); "
                 "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                 "COMP_WORDS[0]=\"$3\"; "
                 "_ipcctl; printf '%%s\\n' \"${COMPREPLY[@]}\"");
        p = spawn((const char *const[]){ "/bin/bash", "--norc", "--noprofile", "-c", script, "bash",
                                         file ? file : "client/ipcctl.bash-completion", line,
                                         ipcctl_bin(), NULL },
                  0);
        finish(&p, &run);
        cr_assert(eq(int, run.code, 0), "%s", run.err);
}

Test(completion, commands_options_and_client_ids) {
        ipcd_client *c = client("completed");
        char line[256], want[32];

        complete("ipcctl ");
        cr_assert(eq(str, run.out, "pub\nsub\nreq\nserve\nmonitor\nstatus\nclients\ntopics\nkick\nreload\nhelp\n"));
        complete("ipcctl --s");
        cr_assert(eq(str, run.out, "--socket\n"));
        complete("ipcctl -t 3 sub --");
        cr_assert(strstr(run.out, "--group\n") != NULL, "%s", run.out);
        cr_assert(strstr(run.out, "--no-retained\n") != NULL, "%s", run.out);
        complete("ipcctl pub --re");
        cr_assert(eq(str, run.out, "--retain\n"));
        complete("ipcctl topics --");
        cr_assert(eq(str, run.out, "--json\n--help\n"));

        snprintf(line, sizeof(line), "ipcctl -s %s kick ", tb.sock);
        complete(line);
        snprintf(want, sizeof(want), "%" PRIu32 "\n", ipcd_client_get_id(c));
        cr_assert(strstr(run.out, want) != NULL, "want %s in: %s", want, run.out);
        ipcd_client_unref(c);
        stop();
}

/* ---- ipcctl's JSON reader ---- */

Test(json, reads_every_kind_of_value) {
        static const char doc[] =
                " {\"a\":1,\"b\":[true,false,null,-0.5e+3,\"x\"],\r\n"
                "\t\"c\":{\"d\":\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"},"
                "\"e\":[],\"f\":{},\"g\":\"\xc3\xa9t\xc3\xa9\",\"a\":2,\"big\":18446744073709551615} ";
        const Json *b, *c;
        Json v;
        uint64_t u;

        cr_assert(eq(int, json_parse(doc, strlen(doc), &v), 0));
        cr_assert(eq(int, v.type, JSON_OBJECT));
        cr_assert(eq(sz, v.n, 8));
        cr_assert(json_u64(json_get(&v, "a"), &u) && u == 1, "the first of two keys");
        b = json_get_array(&v, "b");
        cr_assert(b != NULL && b->n == 5);
        cr_assert(eq(int, b->items[0].type, JSON_TRUE));
        cr_assert(eq(int, b->items[1].type, JSON_FALSE));
        cr_assert(eq(int, b->items[2].type, JSON_NULL));
        cr_assert(eq(int, b->items[3].type, JSON_NUMBER));
        cr_assert(eq(str, b->items[3].text, "-0.5e+3"));
        cr_assert(is_false(json_u64(&b->items[3], &u)));
        cr_assert(eq(str, b->items[4].text, "x"));
        c = json_get(&v, "c");
        cr_assert(eq(str, (char *)json_get_string(c, "d"),
                     "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\b\f\r\t"));
        cr_assert(eq(sz, json_get_array(&v, "e")->n, 0));
        cr_assert(eq(int, json_get(&v, "f")->type, JSON_OBJECT));
        cr_assert(eq(str, (char *)json_get_string(&v, "g"), "\xc3\xa9t\xc3\xa9"));
        cr_assert(json_u64(json_get(&v, "big"), &u) && u == UINT64_MAX);
        cr_assert(json_get(&v, "nothing") == NULL);
        cr_assert(json_get(b, "a") == NULL, "an array has no members");
        cr_assert(json_get_string(&v, "a") == NULL, "a number is no string");
        json_deinit(&v);

        cr_assert(eq(int, json_parse("\"top\"", 5, &v), 0));
        cr_assert(eq(str, v.text, "top"));
        json_deinit(&v);
        cr_assert(eq(int, json_parse("0", 1, &v), 0));
        cr_assert(json_u64(&v, &u) && u == 0);
        json_deinit(&v);
        cr_assert(eq(int, json_parse("18446744073709551616", 20, &v), 0));
        cr_assert(is_false(json_u64(&v, &u)), "too large for 64 bits");
        json_deinit(&v);
}

Test(json, refuses_what_is_not_json) {
        static const char *const bad[] = {
                "", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{a:1}",
                "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[1 2]", "[01]", "[1.]", "[.5]", "[+1]", "[1e]",
                "[1e+]", "[-]", "[--1]", "[0x10]", "[tru]", "[nul]", "[falsey]", "truex", "[1] [2]",
                "[\"abc", "[\"abc\\\"]", "[\"\\u0000\"]", "[\"\\ud800\"]", "[\"\\ud800\\u0041\"]",
                "[\"\\udc00\"]", "[\"\\u12\"]", "[\"\\u12g4\"]", "[\"\\x\"]", "[\"a\nb\"]",
                "[\"a\tb\"]", "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xe2\x82\"]",
                "[\"\xf4\x90\x80\x80\"]", "'a'", "NaN", "[Infinity]", "{\"a\":1}}", "\xef\xbb\xbf{}",
        };
        size_t i;
        Json v;

        for (i = 0; i < N_ELEMS(bad); i++) {
                v = (Json){ .type = JSON_TRUE };
                cr_assert(eq(int, json_parse(bad[i], strlen(bad[i]), &v), -EINVAL), "accepted: %s",
                          bad[i]);
                cr_assert(eq(int, v.type, JSON_TRUE), "touched the result for: %s", bad[i]);
        }
        /* A NUL inside, or a length that is not the text's. */
        cr_assert(eq(int, json_parse("[1]\0[2]", 7, &v), -EINVAL));
        cr_assert(eq(int, json_parse("[1]", 2, &v), -EINVAL));
        cr_assert(eq(int, json_parse(NULL, 0, &v), -EINVAL));
}

/* Every prefix of a valid document is refused, cleanly (under the
 * sanitizers: without reading past the end or leaking). */
Test(json, every_truncation_fails) {
        static const char doc[] = "{\"per_client\":[{\"id\":1,\"name\":\"a\\u00e9\\ud83d\\ude00\","
                                  "\"user\":null,\"x\":[1.5e3,true,false,{}]}],\"k\":\"v\"}";
        size_t len;
        Json v;

        cr_assert(eq(int, json_parse(doc, strlen(doc), &v), 0));
        json_deinit(&v);
        for (len = 0; len < strlen(doc); len++) {
                char *prefix = strndup(doc, len);
                cr_assert(prefix != NULL);
                cr_assert(eq(int, json_parse(prefix, len, &v), -EINVAL), "accepted %zu bytes: %s", len,
                          prefix);
                free(prefix);
        }
}

Test(json, nesting_is_bounded) {
        size_t deep = 100000, i;
        char *s = malloc(2 * deep + 1);
        Json v;

        cr_assert(s != NULL);
        /* JSON_MAX_DEPTH levels are fine, one more is not. */
        for (i = 0; i < JSON_MAX_DEPTH; i++) {
                s[i] = '[';
                s[JSON_MAX_DEPTH + i] = ']';
        }
        s[2 * JSON_MAX_DEPTH] = 0;
        cr_assert(eq(int, json_parse(s, strlen(s), &v), 0));
        json_deinit(&v);
        memset(s, '[', JSON_MAX_DEPTH + 1);
        memset(s + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
        s[2 * JSON_MAX_DEPTH + 2] = 0;
        cr_assert(eq(int, json_parse(s, strlen(s), &v), -EINVAL));
        /* Far deeper: refused without exhausting the stack. */
        memset(s, '[', deep);
        memset(s + deep, ']', deep);
        s[2 * deep] = 0;
        cr_assert(eq(int, json_parse(s, 2 * deep, &v), -EINVAL));
        free(s);
}

/* kick takes decimal digits only: a sign, spaces or a NUL followed by more
 * bytes do not name a client (the broker once read "5\0junk" as 5). */
Test(admin, kick_refuses_ids_that_are_not_plain_numbers) {
        static const char *const bad[] = { " 1", "+1", "1 ", "0x1", "-1" };
        int fd = raw_client(&tb, "admin", NULL), other = raw_client(&tb, "other", NULL);
        uint32_t corr = 1;
        size_t i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                raw_send(fd, WIRE_ADMIN, 0, 0, corr++, NULL, 0, "kick", bad[i], strlen(bad[i]));
                raw_expect_error(fd, WIRE_E_BAD_COMMAND, false);
        }
        raw_send(fd, WIRE_ADMIN, 0, 0, corr++, NULL, 0, "kick", "2\0junk", 6);
        raw_expect_error(fd, WIRE_E_BAD_COMMAND, false);
        /* Nobody was kicked. */
        raw_sync(other);
        cr_assert(eq(i64, raw_status_number(fd, "clients"), 2));
        close(fd);
        close(other);
        stop();
}
