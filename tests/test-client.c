/* SPDX-License-Identifier: MIT */
/*
 * libipcd-client and ipcctl against a real ipcd: the public API as an
 * application uses it, and ipcctl as a shell script does.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ipcd/ipcd-client.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static TestBroker tb;

/* (The new-style cr_assert cannot take the wait macros directly.) */
static bool exited_normally(int status) {
        return WIFEXITED(status);
}

static bool exited_with(int status, int code) {
        return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static void start(void) {
        tb_start(&tb, NULL);
}

static void stop(void) {
        tb_stop(&tb);
}

/* Criterion ignores failures in .fini: the checks are in stop(), called at
 * the end of each test; this only cleans up after a test that failed. */
static void cleanup(void) {
        tb_kill(&tb);
}

typedef struct Seen {
        int n;
        char topic[64];
        char data[64];
        uint32_t type;
        uint32_t sub;
        uint64_t seq;
        pid_t pid;
        uid_t uid;
        gid_t gid;
} Seen;

static void record(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Seen *s = userdata;
        size_t len;
        const void *data = ipcd_msg_get_data(m, &len);

        s->n++;
        snprintf(s->topic, sizeof(s->topic), "%s", ipcd_msg_get_topic(m));
        snprintf(s->data, sizeof(s->data), "%.*s", (int)len, (const char *)data);
        s->type = ipcd_msg_get_type(m);
        s->sub = ipcd_msg_get_subscription(m);
        s->seq = ipcd_msg_get_seq(m);
        s->pid = ipcd_msg_get_sender_pid(m);
        s->uid = ipcd_msg_get_sender_uid(m);
        s->gid = ipcd_msg_get_sender_gid(m);
}

static ipcd_client *client(const char *name) {
        ipcd_client *c = NULL;
        int r = ipcd_client_new(&c, tb.sock, name);
        cr_assert(eq(int, r, 0), "ipcd_client_new: %s", strerror(-r));
        return c;
}

/* Processes until @cond holds or 5 s pass. */
#define WAIT_FOR(c, cond)                                                      \
        do {                                                                   \
                int _i;                                                        \
                for (_i = 0; _i < 100 && !(cond); _i++)                        \
                        cr_assert(ipcd_client_wait((c), 50) >= 0);             \
                cr_assert(cond, "timed out waiting for " #cond);               \
        } while (0)

TestSuite(client, .init = start, .fini = cleanup, .timeout = 60);

Test(client, publish_subscribe_and_accessors) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        uint32_t id = 0, types[] = { 7 };
        Seen seen = { 0 };

        cr_assert(eq(int, ipcd_client_subscribe(sub, "sensors/#", types, 1, record, &seen, &id), 0));
        cr_assert(id != 0);
        cr_assert(eq(int, ipcd_client_publish(pub, "sensors/cpu0/temp", 8, "no", 2, 0), 0));
        cr_assert(eq(int, ipcd_client_publish(pub, "sensors/cpu0/temp", 7, "42", 2, 0), 0));
        WAIT_FOR(sub, seen.n == 1);
        cr_assert(eq(str, seen.topic, "sensors/cpu0/temp"));
        cr_assert(eq(str, seen.data, "42"));
        cr_assert(eq(u32, seen.type, 7));
        cr_assert(eq(u32, seen.sub, id));
        cr_assert(eq(u64, seen.seq, 2)); /* the type-8 message was number 1 */
        cr_assert(eq(int, seen.pid, getpid()));
        cr_assert(eq(int, (int)seen.uid, (int)getuid()));
        cr_assert(eq(int, (int)seen.gid, (int)getgid()));
        cr_assert(ipcd_client_get_id(sub) != ipcd_client_get_id(pub));
        cr_assert(ipcd_client_get_max_payload(pub) >= 65536);
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        stop();
}

Test(client, every_matching_handler_runs_once) {
        ipcd_client *c = client("multi");
        Seen a = { 0 }, b = { 0 }, other = { 0 };
        uint32_t ida, idb;

        cr_assert(eq(int, ipcd_client_subscribe(c, "x/#", NULL, 0, record, &a, &ida), 0));
        cr_assert(eq(int, ipcd_client_subscribe(c, "x/+", NULL, 0, record, &b, &idb), 0));
        cr_assert(eq(int, ipcd_client_subscribe(c, "y", NULL, 0, record, &other, NULL), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "x/1", 1, "one", 3, 0), 0));
        WAIT_FOR(c, a.n == 1 && b.n == 1);
        cr_assert(eq(u32, a.sub, ida));
        cr_assert(eq(u32, b.sub, idb));
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        cr_assert(eq(int, ipcd_client_process(c), 0));
        cr_assert(eq(int, a.n, 1));
        cr_assert(eq(int, b.n, 1));
        cr_assert(eq(int, other.n, 0));
        ipcd_client_unref(c);
        stop();
}

Test(client, batched_publishes_arrive_in_order) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Seen seen = { 0 };
        char buf[16];
        int i;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "batch", NULL, 0, record, &seen, NULL), 0));
        for (i = 0; i < 5000; i++) {
                int n = snprintf(buf, sizeof(buf), "%d", i);
                cr_assert(eq(int, ipcd_client_publish(pub, "batch", 1, buf, (size_t)n,
                                                      IPCD_PUBLISH_MORE), 0));
        }
        cr_assert(eq(int, ipcd_client_flush(pub), 0));
        WAIT_FOR(sub, seen.n == 5000);
        cr_assert(eq(str, seen.data, "4999"));
        cr_assert(eq(u64, seen.seq, 5000));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        stop();
}

Test(client, local_validation_and_broker_errors) {
        ipcd_client *c = client("errors");
        /* Over the broker's bulk maximum (1 GiB): refused before any of it
         * is touched, so address space without memory serves. */
        size_t huge = ((size_t)1 << 30) + 1;
        void *big = mmap(NULL, huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

        cr_assert(eq(int, ipcd_client_publish(c, "a/+", 1, "x", 1, 0), -EINVAL));
        cr_assert(eq(int, ipcd_client_publish(c, "", 1, "x", 1, 0), -EINVAL));
        cr_assert(big != MAP_FAILED);
        cr_assert(eq(int, ipcd_client_publish(c, "big", 1, big, huge, 0), -EMSGSIZE));
        munmap(big, huge);
        cr_assert(eq(int, ipcd_client_subscribe(c, "a/#/b", NULL, 0, record, NULL, NULL), -EINVAL));
        /* The broker refuses $-topics; the connection survives. */
        cr_assert(eq(int, ipcd_client_publish(c, "$SYS/x", 1, "x", 1, IPCD_PUBLISH_ACK), -EACCES));
        cr_assert(strstr(ipcd_client_last_error(c), "$") != NULL, "last error: %s",
                  ipcd_client_last_error(c));
        cr_assert(eq(int, ipcd_client_unsubscribe(c, 12345), -ENOENT));
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        ipcd_client_unref(c);
        stop();
}

Test(client, unsubscribe_stops_delivery) {
        ipcd_client *c = client("unsub");
        Seen seen = { 0 };
        uint32_t id;

        cr_assert(eq(int, ipcd_client_subscribe(c, "u", NULL, 0, record, &seen, &id), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "u", 1, "a", 1, 0), 0));
        WAIT_FOR(c, seen.n == 1);
        cr_assert(eq(int, ipcd_client_unsubscribe(c, id), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "u", 1, "b", 1, 0), 0));
        cr_assert(eq(int, ipcd_client_sync(c), 0));
        cr_assert(eq(int, ipcd_client_wait(c, 100), 0));
        cr_assert(eq(int, seen.n, 1));
        ipcd_client_unref(c);
        stop();
}

Test(client, admin_status) {
        ipcd_client *c = client("admin");
        char *json = NULL;
        size_t len = 0;

        cr_assert(eq(int, ipcd_client_admin(c, "status", &json, &len), 0));
        cr_assert(json != NULL && len == strlen(json));
        cr_assert(strstr(json, "\"version\":\"" PACKAGE_VERSION "\"") != NULL, "%s", json);
        cr_assert(strstr(json, "\"clients\":1") != NULL, "%s", json);
        free(json);
        cr_assert(eq(int, ipcd_client_admin(c, "nonsense", &json, &len), -EINVAL));
        ipcd_client_unref(c);
        stop();
}

Test(client, loop_neutral_poll) {
        ipcd_client *sub = client("poll"), *pub = client("pub");
        Seen seen = { 0 };
        int i;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "p", NULL, 0, record, &seen, NULL), 0));
        cr_assert(eq(int, ipcd_client_publish(pub, "p", 1, "via poll", 8, 0), 0));
        for (i = 0; i < 100 && seen.n == 0; i++) {
                struct pollfd p = { .fd = ipcd_client_get_fd(sub),
                                    .events = (short)ipcd_client_get_events(sub) };
                cr_assert(p.fd >= 0);
                cr_assert(p.events & POLLIN);
                cr_assert(poll(&p, 1, 50) >= 0);
                cr_assert(ipcd_client_process(sub) >= 0);
        }
        cr_assert(eq(int, seen.n, 1));
        cr_assert(eq(str, seen.data, "via poll"));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        stop();
}

Test(client, connect_errors_and_socket_from_environment) {
        ipcd_client *c = NULL;
        char missing[160];

        snprintf(missing, sizeof(missing), "%s/nothing-here.sock", tb.dir);
        cr_assert(eq(int, ipcd_client_new(&c, missing, "x"), -ENOENT));
        cr_assert(c == NULL);
        setenv("IPCD_SOCKET", tb.sock, 1);
        cr_assert(eq(int, ipcd_client_new(&c, NULL, "env"), 0));
        ipcd_client_unref(c);
        unsetenv("IPCD_SOCKET");
        stop();
}

Test(client, broker_going_away) {
        ipcd_client *c = client("orphan");
        int r, i;

        tb_stop(&tb);
        for (i = 0, r = 0; i < 50 && r >= 0; i++)
                r = ipcd_client_wait(c, 100);
        cr_assert(lt(int, r, 0), "the library did not notice the broker left");
        cr_assert(eq(int, ipcd_client_publish(c, "t", 1, "x", 1, 0), -ENOTCONN));
        ipcd_client_unref(c);
        tb_start(&tb, NULL); /* for the fixture's stop */
        stop();
}

/* ---- ipcctl ---- */

static const char *ipcctl_bin(void) {
        const char *b = getenv("IPCCTL_BIN");
        return b ? b : "client/ipcctl";
}

/* Runs ipcctl with @args; returns its exit status and its stdout in @out. */
static int ipcctl(const char *const *args, const char *input, char *out, size_t out_size) {
        const char *argv[32];
        int opipe[2], ipipe[2], status;
        size_t n = 0, have = 0;
        pid_t pid;

        argv[n++] = ipcctl_bin();
        argv[n++] = "-s";
        argv[n++] = tb.sock;
        for (; *args && n < 31; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        cr_assert(pipe(opipe) == 0 && pipe(ipipe) == 0);
        pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                dup2(opipe[1], STDOUT_FILENO);
                dup2(ipipe[0], STDIN_FILENO);
                close(opipe[0]);
                close(ipipe[1]);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(opipe[1]);
        close(ipipe[0]);
        if (input && *input)
                cr_assert(write(ipipe[1], input, strlen(input)) == (ssize_t)strlen(input));
        close(ipipe[1]);
        for (;;) {
                ssize_t r = read(opipe[0], out + have, out_size - 1 - have);
                if (r <= 0)
                        break;
                have += (size_t)r;
        }
        out[have] = 0;
        close(opipe[0]);
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(exited_normally(status));
        return WEXITSTATUS(status);
}

Test(ipcctl, sub_json_receives_pub_with_sender, .init = start, .fini = cleanup, .timeout = 60) {
        const char *subargs[] = { "sub", "sensors/#", "--json", "--count", "1", "--timeout", "20",
                                  NULL };
        const char *pubargs[] = { "pub", "sensors/cpu0/temp", "42", "--type", "7", NULL };
        char out[4096], pubout[256], expect[128];
        int opipe[2], status, i;
        size_t have = 0;
        pid_t sub, pub;

        /* The subscriber runs in the background, like in a second terminal. */
        cr_assert(pipe(opipe) == 0);
        sub = fork();
        if (sub == 0) {
                dup2(opipe[1], STDOUT_FILENO);
                close(opipe[0]);
                execl(ipcctl_bin(), ipcctl_bin(), "-s", tb.sock, subargs[0], subargs[1], subargs[2],
                      subargs[3], subargs[4], subargs[5], subargs[6], (char *)NULL);
                _exit(127);
        }
        close(opipe[1]);
        for (i = 0; i < 500 && tb_status_number(&tb, "subscriptions") < 1; i++)
                usleep(10000);
        cr_assert(eq(i64, tb_status_number(&tb, "subscriptions"), 1));

        pub = fork();
        if (pub == 0) {
                int fd = open("/dev/null", O_WRONLY);
                dup2(fd, STDOUT_FILENO);
                execl(ipcctl_bin(), ipcctl_bin(), "-s", tb.sock, pubargs[0], pubargs[1], pubargs[2],
                      pubargs[3], pubargs[4], (char *)NULL);
                _exit(127);
        }
        cr_assert(waitpid(pub, &status, 0) == pub);
        cr_assert(exited_with(status, 0));

        for (;;) {
                ssize_t r = read(opipe[0], out + have, sizeof(out) - 1 - have);
                if (r <= 0)
                        break;
                have += (size_t)r;
        }
        out[have] = 0;
        close(opipe[0]);
        cr_assert(waitpid(sub, &status, 0) == sub);
        cr_assert(exited_with(status, 0), "sub exited %d", WEXITSTATUS(status));
        cr_assert(strstr(out, "\"topic\":\"sensors/cpu0/temp\"") != NULL, "%s", out);
        cr_assert(strstr(out, "\"type\":7") != NULL, "%s", out);
        cr_assert(strstr(out, "\"payload\":\"42\"") != NULL, "%s", out);
        cr_assert(strstr(out, "\"seq\":1") != NULL, "%s", out);
        snprintf(expect, sizeof(expect), "\"sender_pid\":%d,", (int)pub);
        cr_assert(strstr(out, expect) != NULL, "want %s in %s", expect, out);
        snprintf(expect, sizeof(expect), "\"sender_uid\":%d,", (int)getuid());
        cr_assert(strstr(out, expect) != NULL, "want %s in %s", expect, out);
        /* One object, one line. */
        cr_assert(eq(int, (int)(strchr(out, '\n') - out), (int)strlen(out) - 1));
        (void)pubout;
        stop();
}

Test(ipcctl, exit_codes, .init = start, .fini = cleanup, .timeout = 60) {
        const char *timeout[] = { "sub", "quiet/#", "--timeout", "1", NULL };
        const char *status[] = { "status", "--json", NULL };
        const char *human[] = { "status", NULL };
        const char *badtopic[] = { "pub", "a/+", "x", NULL };
        const char *dollar[] = { "pub", "$SYS/x", "x", NULL };
        const char *usage[] = { "frobnicate", NULL };
        const char *stdin_pub[] = { "pub", "in", "-", NULL };
        char out[8192];

        cr_assert(eq(int, ipcctl(timeout, NULL, out, sizeof(out)), 4));
        cr_assert(eq(int, ipcctl(status, NULL, out, sizeof(out)), 0));
        cr_assert(strstr(out, "\"version\"") != NULL, "%s", out);
        cr_assert(eq(int, ipcctl(human, NULL, out, sizeof(out)), 0));
        cr_assert(strstr(out, "version") != NULL, "%s", out);
        cr_assert(ne(int, ipcctl(badtopic, NULL, out, sizeof(out)), 0));
        cr_assert(eq(int, ipcctl(dollar, NULL, out, sizeof(out)), 1));
        cr_assert(eq(int, ipcctl(usage, NULL, out, sizeof(out)), 2));
        cr_assert(eq(int, ipcctl(stdin_pub, "from stdin", out, sizeof(out)), 0));
        tb_stop(&tb);
        cr_assert(eq(int, ipcctl(human, NULL, out, sizeof(out)), 3));
        tb_start(&tb, NULL);
        stop();
}

Test(ipcctl, binary_payload_is_base64, .init = start, .fini = cleanup, .timeout = 60) {
        const char *subargs[] = { "sub", "bin", "--json", "--count", "1", "--timeout", "20", NULL };
        ipcd_client *pub;
        char out[4096];
        int opipe[2], status, i;
        size_t have = 0;
        pid_t sub;

        cr_assert(pipe(opipe) == 0);
        sub = fork();
        if (sub == 0) {
                dup2(opipe[1], STDOUT_FILENO);
                close(opipe[0]);
                execl(ipcctl_bin(), ipcctl_bin(), "-s", tb.sock, subargs[0], subargs[1], subargs[2],
                      subargs[3], subargs[4], subargs[5], subargs[6], (char *)NULL);
                _exit(127);
        }
        close(opipe[1]);
        for (i = 0; i < 500 && tb_status_number(&tb, "subscriptions") < 1; i++)
                usleep(10000);
        pub = client("bin");
        cr_assert(eq(int, ipcd_client_publish(pub, "bin", 3, "\x00\xff\x01", 3, IPCD_PUBLISH_ACK), 0));
        ipcd_client_unref(pub);
        for (;;) {
                ssize_t r = read(opipe[0], out + have, sizeof(out) - 1 - have);
                if (r <= 0)
                        break;
                have += (size_t)r;
        }
        out[have] = 0;
        close(opipe[0]);
        cr_assert(waitpid(sub, &status, 0) == sub);
        cr_assert(exited_with(status, 0));
        cr_assert(strstr(out, "\"payload_base64\":\"AP8B\"") != NULL, "%s", out);
        stop();
}
