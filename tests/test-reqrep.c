/* SPDX-License-Identifier: MIT */
/*
 * Request/reply through libipcd-client and ipcctl against a real ipcd:
 * async and blocking requests, the broker's own answers (no responders,
 * timed out, responder gone), load spreading between responders, replies
 * made after the handler returned, bulk payloads both ways, and
 * `ipcctl req`, `ipcctl serve` and `ipcctl monitor`.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static TestBroker tb;

static void start(void) {
        tb_start(&tb, NULL);
}

/* Criterion ignores failures in .fini: tb_stop() is called at the end of
 * each test; this only cleans up after a test that failed. */
static void cleanup(void) {
        tb_kill(&tb);
}

static long long now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ipcd_client *client(const char *name) {
        ipcd_client *c = NULL;
        int r = ipcd_client_new(&c, tb.sock, name);

        cr_assert(eq(int, r, 0), "ipcd_client_new: %s", strerror(-r));
        return c;
}

/* Lets every client in the list process until @cond holds (5 s at most). */
#define PUMP_UNTIL(cond, ...)                                                                   \
        do {                                                                                    \
                ipcd_client *_cs[] = { __VA_ARGS__ };                                           \
                int _i;                                                                         \
                size_t _k;                                                                      \
                for (_i = 0; _i < 2500 && !(cond); _i++)                                        \
                        for (_k = 0; _k < N_ELEMS(_cs); _k++)                                   \
                                cr_assert(ipcd_client_wait(_cs[_k], _i < 10 ? 0 : 2) >= 0);     \
                cr_assert(cond, "timed out waiting for " #cond);                               \
        } while (0)

/* ---- responders and requesters ---- */

typedef struct Served {
        int n;
        ipcd_msg *kept; /* with keep: the last request, ref'd */
        bool keep;      /* do not reply: keep it */
        bool silent;    /* do not reply at all */
        char last[64];
        uint32_t type;
        pid_t pid;
} Served;

/* Replies with "re:" + the payload and the request's type + 1, passing the
 * request's fds back. */
static void on_request(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Served *s = userdata;
        size_t len, n_fds = ipcd_msg_get_n_fds(m), i;
        const char *data = ipcd_msg_get_data(m, &len);
        int fds[8];
        char out[80];
        int n;

        (void)c;
        s->n++;
        cr_assert(ipcd_msg_is_request(m));
        s->type = ipcd_msg_get_type(m);
        s->pid = ipcd_msg_get_sender_pid(m);
        snprintf(s->last, sizeof(s->last), "%.*s", (int)len, data);
        if (s->silent)
                return;
        if (s->keep) {
                ipcd_msg_unref(s->kept);
                s->kept = ipcd_msg_ref(m);
                cr_assert(not(eq(ptr, s->kept, NULL)));
                return;
        }
        for (i = 0; i < n_fds && i < N_ELEMS(fds); i++)
                fds[i] = ipcd_msg_get_fd(m, i);
        n = snprintf(out, sizeof(out), "re:%.*s", (int)len, data);
        cr_assert(eq(int, ipcd_msg_reply(m, ipcd_msg_get_type(m) + 1, out, (size_t)n, fds, i), 0));
        cr_assert(eq(int, ipcd_msg_reply(m, 0, NULL, 0, NULL, 0), -EALREADY));
}

typedef struct Answer {
        int n;
        int error;
        char data[64];
        char topic[64];
        uint32_t type;
        pid_t pid;
        int fd;   /* taken from the reply, or -1 */
        ipcd_msg *kept;
} Answer;

static void on_reply(ipcd_client *c, int error, ipcd_msg *reply, void *userdata) {
        Answer *a = userdata;
        size_t len;
        const char *data;

        (void)c;
        a->n++;
        a->error = error;
        if (error) {
                cr_assert(eq(ptr, reply, NULL));
                return;
        }
        cr_assert(not(ipcd_msg_is_request(reply)));
        data = ipcd_msg_get_data(reply, &len);
        snprintf(a->data, sizeof(a->data), "%.*s", (int)len, data);
        snprintf(a->topic, sizeof(a->topic), "%s", ipcd_msg_get_topic(reply));
        a->type = ipcd_msg_get_type(reply);
        a->pid = ipcd_msg_get_sender_pid(reply);
        a->fd = ipcd_msg_get_n_fds(reply) > 0 ? ipcd_msg_take_fd(reply, 0) : -1;
}

/*
 * A responder in a child process serving @filter: echoes like on_request()
 * until killed. Returns its pid once it serves.
 */
static pid_t fork_responder(const char *filter) {
        int p[2];
        pid_t pid;
        char x;

        cr_assert(pipe2(p, O_CLOEXEC) == 0);
        pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                Served s = { 0 };
                ipcd_client *c = NULL;

                harness_child_begin();
                TB_CHECK(ipcd_client_new(&c, tb.sock, "child-responder") == 0);
                TB_CHECK(ipcd_client_serve(c, filter, NULL, 0, on_request, &s, NULL) == 0);
                TB_CHECK(write(p[1], "x", 1) == 1);
                while (ipcd_client_wait(c, -1) >= 0)
                        ;
                _exit(0);
        }
        close(p[1]);
        cr_assert(eq(int, (int)read(p[0], &x, 1), 1), "the responder did not start");
        close(p[0]);
        return pid;
}

static void reap(pid_t pid) {
        int status;

        kill(pid, SIGKILL);
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
}

static void on_msg(ipcd_client *c, ipcd_msg *m, void *userdata) {
        (void)c;
        (void)m;
        (*(int *)userdata)++;
}

TestSuite(reqrep, .init = start, .fini = cleanup, .timeout = 60);

Test(reqrep, async_round_trip_with_payload_and_fd) {
        ipcd_client *srv = client("srv"), *req = client("req");
        Served s = { 0 };
        Answer a = { .fd = -1 };
        uint32_t id;
        int pp[2];
        char buf[8] = { 0 };

        cr_assert(eq(int, ipcd_client_serve(srv, "svc/+", NULL, 0, on_request, &s, &id), 0));
        cr_assert(pipe2(pp, O_CLOEXEC) == 0);
        cr_assert(eq(int, ipcd_client_request(req, "svc/echo", 41, "hi", 2, &pp[1], 1, 0, on_reply, &a),
                     0));
        close(pp[1]);
        PUMP_UNTIL(a.n == 1, srv, req);
        cr_assert(eq(int, s.n, 1));
        cr_assert(eq(str, s.last, "hi"));
        cr_assert(eq(u32, s.type, 41));
        cr_assert(eq(int, s.pid, getpid()));
        cr_assert(eq(int, a.error, 0));
        cr_assert(eq(str, a.data, "re:hi"));
        cr_assert(eq(str, a.topic, "svc/echo"));
        cr_assert(eq(u32, a.type, 42));
        cr_assert(eq(int, a.pid, getpid()));
        /* The fd went there and back: it is the pipe's write end. */
        cr_assert(a.fd >= 0);
        cr_assert(eq(int, (int)write(a.fd, "ok", 2), 2));
        close(a.fd);
        cr_assert(eq(int, (int)read(pp[0], buf, sizeof(buf)), 2));
        cr_assert(eq(str, buf, "ok"));
        close(pp[0]);
        /* A responder gets no published messages. */
        cr_assert(eq(int, ipcd_client_publish(req, "svc/echo", 1, "p", 1, IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(int, ipcd_client_wait(srv, 100), 0));
        cr_assert(eq(int, s.n, 1));
        cr_assert(eq(int, ipcd_client_unsubscribe(srv, id), 0));
        ipcd_client_unref(srv);
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, sync_round_trip_keeps_other_messages) {
        pid_t pid = fork_responder("svc/echo");
        ipcd_client *req = client("req"), *pub = client("pub");
        ipcd_msg *reply = NULL;
        int n_msgs = 0;
        size_t len;
        const char *data;

        cr_assert(eq(int, ipcd_client_subscribe(req, "news", NULL, 0, on_msg, &n_msgs, NULL), 0));
        cr_assert(eq(int, ipcd_client_publish(pub, "news", 1, "x", 1, IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(int, ipcd_client_request_sync(req, "svc/echo", 7, "hello", 5, 2000, &reply), 0));
        data = ipcd_msg_get_data(reply, &len);
        cr_assert(eq(int, (int)len, 8));
        cr_assert(eq(int, memcmp(data, "re:hello", 8), 0));
        cr_assert(eq(u32, ipcd_msg_get_type(reply), 8));
        cr_assert(eq(int, ipcd_msg_get_sender_pid(reply), pid));
        ipcd_msg_unref(reply);
        /* The message that came meanwhile was kept for the next dispatch. */
        cr_assert(eq(int, n_msgs, 0));
        PUMP_UNTIL(n_msgs == 1, req);
        reap(pid);
        ipcd_client_unref(req);
        ipcd_client_unref(pub);
        tb_stop(&tb);
}

Test(reqrep, no_responders_fails_at_once) {
        ipcd_client *req = client("req");
        ipcd_msg *reply = NULL;
        Answer a = { .fd = -1 };
        long long t0 = now_ms();

        cr_assert(eq(int, ipcd_client_request_sync(req, "svc/none", 1, "x", 1, 0, &reply),
                     -EHOSTUNREACH));
        cr_assert(eq(ptr, reply, NULL));
        cr_assert(not(eq(ptr, strstr(ipcd_client_last_error(req), "no responders"), NULL)),
                  "%s", ipcd_client_last_error(req));
        cr_assert(eq(int, ipcd_client_request(req, "svc/none", 1, "x", 1, NULL, 0, 0, on_reply, &a),
                     0));
        PUMP_UNTIL(a.n == 1, req);
        cr_assert(eq(int, a.error, -EHOSTUNREACH));
        cr_assert(now_ms() - t0 < 1000);
        /* Nothing left over for sync(). */
        cr_assert(eq(int, ipcd_client_sync(req), 0));
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, timeout_when_the_responder_never_replies) {
        ipcd_client *srv = client("srv"), *req = client("req");
        Served s = { .silent = true };
        Answer a = { .fd = -1 };
        ipcd_msg *reply = NULL;
        long long t0;

        cr_assert(eq(int, ipcd_client_serve(srv, "svc/slow", NULL, 0, on_request, &s, NULL), 0));
        t0 = now_ms();
        cr_assert(eq(int, ipcd_client_request(req, "svc/slow", 1, "x", 1, NULL, 0, 200, on_reply, &a),
                     0));
        PUMP_UNTIL(a.n == 1, srv, req);
        cr_assert(eq(int, a.error, -ETIMEDOUT));
        cr_assert(now_ms() - t0 >= 150, "%lld ms", now_ms() - t0);
        cr_assert(now_ms() - t0 < 2000, "%lld ms", now_ms() - t0);
        cr_assert(eq(int, s.n, 1));
        /* Blocking: the responder is not processed meanwhile. */
        t0 = now_ms();
        cr_assert(eq(int, ipcd_client_request_sync(req, "svc/slow", 1, "x", 1, 200, &reply),
                     -ETIMEDOUT));
        cr_assert(now_ms() - t0 < 1000);
        ipcd_client_unref(srv);
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, responder_gone) {
        ipcd_client *srv = client("srv"), *req = client("req");
        Served s = { .silent = true };
        Answer a = { .fd = -1 };

        cr_assert(eq(int, ipcd_client_serve(srv, "svc/gone", NULL, 0, on_request, &s, NULL), 0));
        cr_assert(eq(int, ipcd_client_request(req, "svc/gone", 1, "x", 1, NULL, 0, 5000, on_reply,
                                              &a),
                     0));
        PUMP_UNTIL(s.n == 1, srv, req);
        ipcd_client_unref(srv);
        PUMP_UNTIL(a.n == 1, req);
        cr_assert(eq(int, a.error, -ECONNABORTED));
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, two_responders_split_the_load) {
        ipcd_client *srv[2] = { client("srv0"), client("srv1") }, *req = client("req");
        Served s[2] = { 0 };
        Answer a = { .fd = -1 };
        int i, batch;

        for (i = 0; i < 2; i++)
                cr_assert(eq(int, ipcd_client_serve(srv[i], "svc/work", NULL, 0, on_request, &s[i],
                                                    NULL),
                             0));
        /* In batches, below the broker's limit of pending requests. */
        for (batch = 0; batch < 10; batch++) {
                for (i = 0; i < 100; i++)
                        cr_assert(eq(int, ipcd_client_request(req, "svc/work", 1, "j", 1, NULL, 0, 0,
                                                              on_reply, &a),
                                     0));
                PUMP_UNTIL(a.n == (batch + 1) * 100, srv[0], srv[1], req);
        }
        cr_assert(eq(int, a.error, 0));
        cr_assert(eq(int, s[0].n + s[1].n, 1000));
        cr_assert(s[0].n >= 450 && s[0].n <= 550, "%d / %d", s[0].n, s[1].n);
        ipcd_client_unref(srv[0]);
        ipcd_client_unref(srv[1]);
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, reply_later_outside_the_handler) {
        ipcd_client *srv = client("srv"), *req = client("req");
        Served s = { .keep = true };
        Answer a = { .fd = -1 };

        cr_assert(eq(int, ipcd_client_serve(srv, "svc/later", NULL, 0, on_request, &s, NULL), 0));
        cr_assert(eq(int, ipcd_client_request(req, "svc/later", 3, "q", 1, NULL, 0, 0, on_reply, &a),
                     0));
        PUMP_UNTIL(s.n == 1, srv, req);
        cr_assert(eq(int, a.n, 0));
        cr_assert(eq(int, strcmp(ipcd_msg_get_topic(s.kept), "svc/later"), 0));
        cr_assert(eq(int, ipcd_msg_reply(s.kept, 9, "later", 5, NULL, 0), 0));
        cr_assert(eq(int, ipcd_msg_reply(s.kept, 9, "again", 5, NULL, 0), -EALREADY));
        PUMP_UNTIL(a.n == 1, srv, req);
        cr_assert(eq(int, a.error, 0));
        cr_assert(eq(str, a.data, "later"));
        cr_assert(eq(u32, a.type, 9));
        s.kept = ipcd_msg_unref(s.kept);

        /* A request kept past its client's end fails cleanly. */
        cr_assert(eq(int, ipcd_client_request(req, "svc/later", 3, "r", 1, NULL, 0, 0, on_reply, &a),
                     0));
        PUMP_UNTIL(s.n == 2, srv, req);
        ipcd_client_unref(srv);
        cr_assert(eq(int, ipcd_msg_reply(s.kept, 9, "late", 4, NULL, 0), -ENOTCONN));
        cr_assert(eq(int, ipcd_msg_reply(NULL, 0, NULL, 0, NULL, 0), -EINVAL));
        cr_assert(not(ipcd_msg_is_request(NULL)));
        s.kept = ipcd_msg_unref(s.kept);
        PUMP_UNTIL(a.n == 2, req);
        cr_assert(eq(int, a.error, -ECONNABORTED));
        ipcd_client_unref(req);
        tb_stop(&tb);
}

/* Replies with the request's bytes, each + 1 (a bulk payload both ways). */
static void on_big(ipcd_client *c, ipcd_msg *m, void *userdata) {
        size_t len, i;
        const unsigned char *data = (const unsigned char *)ipcd_msg_get_data(m, &len);
        unsigned char *out = malloc(len);

        (void)c;
        (*(unsigned *)userdata) = ipcd_msg_get_flags(m);
        cr_assert(not(eq(ptr, out, NULL)));
        for (i = 0; i < len; i++)
                out[i] = (unsigned char)(data[i] + 1);
        cr_assert(eq(int, ipcd_msg_reply(m, 1, out, len, NULL, 0), 0));
        free(out);
}

static void on_big_reply(ipcd_client *c, int error, ipcd_msg *reply, void *userdata) {
        size_t len, i;
        const unsigned char *data;
        int *ok = userdata;

        (void)c;
        *ok = -1;
        if (error) {
                fprintf(stderr, "big reply error %d\n", error);
                return;
        }
        data = ipcd_msg_get_data(reply, &len);
        if (len != (4u << 20) || !(ipcd_msg_get_flags(reply) & IPCD_MSG_BULK)) {
                fprintf(stderr, "big reply len %zu flags %u\n", len, ipcd_msg_get_flags(reply));
                return;
        }
        for (i = 0; i < len; i++)
                if (data[i] != (unsigned char)(i * 7 + 1))
                        return;
        *ok = 1;
}

Test(reqrep, four_mib_both_ways) {
        ipcd_client *srv = client("srv"), *req = client("req");
        size_t len = 4u << 20, i;
        unsigned char *buf = malloc(len);
        unsigned req_flags = 0;
        int ok = 0, r;

        cr_assert(not(eq(ptr, buf, NULL)));
        for (i = 0; i < len; i++)
                buf[i] = (unsigned char)(i * 7);
        cr_assert(eq(int, ipcd_client_serve(srv, "svc/big", NULL, 0, on_big, &req_flags, NULL), 0));
        r = ipcd_client_request(req, "svc/big", 1, buf, len, NULL, 0, 0, on_big_reply, &ok);
        cr_assert(eq(int, r, 0), "%s: %s", strerror(-r), ipcd_client_last_error(req));
        free(buf);
        PUMP_UNTIL(ok != 0, srv, req);
        cr_assert(eq(int, ok, 1));
        cr_assert(ne(u32, req_flags & IPCD_MSG_BULK, 0));
        ipcd_client_unref(srv);
        ipcd_client_unref(req);
        tb_stop(&tb);
}

Test(reqrep, connection_loss_ends_pending_requests) {
        ipcd_client *srv = client("srv"), *req = client("req"), *adm = client("adm");
        Served s = { .silent = true };
        Answer a = { .fd = -1 };
        char arg[16];

        cr_assert(eq(int, ipcd_client_serve(srv, "svc/x", NULL, 0, on_request, &s, NULL), 0));
        cr_assert(eq(int, ipcd_client_request(req, "svc/x", 1, "x", 1, NULL, 0, 5000, on_reply, &a),
                     0));
        PUMP_UNTIL(s.n == 1, srv, req);
        snprintf(arg, sizeof(arg), "%u", ipcd_client_get_id(req));
        cr_assert(eq(int, ipcd_client_admin_full(adm, "kick", arg, NULL, NULL), 0));
        for (int i = 0; i < 500 && a.n == 0; i++)
                (void)ipcd_client_wait(req, 10);
        cr_assert(eq(int, a.n, 1));
        cr_assert(a.error < 0);
        ipcd_client_unref(srv);
        ipcd_client_unref(req);
        ipcd_client_unref(adm);
        tb_stop(&tb);
}

/* ---- ipcctl req, serve and monitor ---- */

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

/* ipcctl -s SOCKET @args..., its output on pipes. */
static Proc ipcctl_start(const char *const *args) {
        const char *argv[32];
        size_t n = 0;
        int opipe[2], epipe[2];
        Proc p;

        argv[n++] = ipcctl_bin();
        argv[n++] = "-s";
        argv[n++] = tb.sock;
        for (; *args && n < N_ELEMS(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        cr_assert(pipe2(opipe, O_CLOEXEC) == 0 && pipe2(epipe, O_CLOEXEC) == 0);
        p.pid = fork();
        cr_assert(p.pid >= 0);
        if (p.pid == 0) {
                harness_child_begin();
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

/* Collects what @p writes (after the @have bytes of standard output
 * already in r->out) until it closes both pipes, then its exit status. */
static void finish_from(Proc *p, Run *r, size_t have_out) {
        size_t have[2] = { have_out, 0 }, cap[2] = { sizeof(r->out) - 1, sizeof(r->err) - 1 };
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

static int ipcctl_run(const char *const *args) {
        Proc p = ipcctl_start(args);

        finish_from(&p, &run, 0);
        return run.code;
}

#define IPCCTL(...) ipcctl_run((const char *const[]){ __VA_ARGS__, NULL })

/* Starts `ipcctl serve FILTER --exec CMD` and waits until it serves
 * @topic (a request to it no longer fails with "no responders"). */
static Proc serve_start(const char *filter, const char *cmd, const char *topic) {
        Proc p = ipcctl_start((const char *const[]){ "serve", filter, "--exec", cmd, NULL });
        ipcd_client *c = client("probe");
        ipcd_msg *reply = NULL;
        int i, r = -EHOSTUNREACH;

        for (i = 0; i < 500 && r == -EHOSTUNREACH; i++) {
                r = ipcd_client_request_sync(c, topic, 0, NULL, 0, 3000, &reply);
                if (r == -EHOSTUNREACH)
                        usleep(10000);
        }
        cr_assert(r != -EHOSTUNREACH, "ipcctl serve did not start serving");
        ipcd_msg_unref(reply);
        ipcd_client_unref(c);
        return p;
}

static void serve_stop(Proc *p) {
        Run r;

        kill(p->pid, SIGTERM);
        finish_from(p, &r, 0);
        cr_assert(eq(int, r.code, 0), "serve: %s", r.err);
}

Test(reqrep, ipcctl_serve_and_req) {
        Proc p = serve_start("svc/echo", "cat", "svc/echo");

        cr_assert(eq(int, IPCCTL("req", "svc/echo", "hello"), 0), "%s", run.err);
        cr_assert(eq(str, run.out, "hello"));
        cr_assert(eq(int, IPCCTL("req", "svc/echo", "x", "--type", "7", "--json"), 0), "%s", run.err);
        cr_assert(not(eq(ptr, strstr(run.out, "\"type\":7"), NULL)), "%s", run.out);
        cr_assert(not(eq(ptr, strstr(run.out, "\"payload\":\"x\""), NULL)), "%s", run.out);
        serve_stop(&p);
        tb_stop(&tb);
}

Test(reqrep, ipcctl_serve_replies_when_the_command_fails) {
        Proc p = serve_start("svc/fail", "echo -n out; exit 3", "svc/fail");
        Run r;

        cr_assert(eq(int, IPCCTL("req", "svc/fail", "in"), 0), "%s", run.err);
        cr_assert(eq(str, run.out, "out"));
        kill(p.pid, SIGTERM);
        finish_from(&p, &r, 0);
        cr_assert(eq(int, r.code, 0));
        cr_assert(not(eq(ptr, strstr(r.err, "status 3"), NULL)), "%s", r.err);
        tb_stop(&tb);
}

Test(reqrep, ipcctl_req_without_responders) {
        long long t0 = now_ms();

        cr_assert(eq(int, IPCCTL("req", "svc/none", "x"), 1));
        cr_assert(now_ms() - t0 < 2000);
        cr_assert(not(eq(ptr, strstr(run.err, "no responders"), NULL)), "%s", run.err);
        cr_assert(eq(str, run.out, ""));
        tb_stop(&tb);
}

Test(reqrep, ipcctl_req_times_out) {
        Proc p = serve_start("svc/slow", "sleep 2; cat", "svc/slow");
        long long t0 = now_ms();

        cr_assert(eq(int, IPCCTL("req", "svc/slow", "x", "--timeout", "0.3"), 4), "%s", run.err);
        cr_assert(now_ms() - t0 < 1500, "%lld ms", now_ms() - t0);
        cr_assert(not(eq(ptr, strstr(run.err, "timed out"), NULL)), "%s", run.err);
        serve_stop(&p);
        tb_stop(&tb);
}

Test(reqrep, ipcctl_monitor_sees_a_publish) {
        Proc p = ipcctl_start((const char *const[]){ "monitor", "--json", NULL });
        ipcd_client *pub = client("pub");
        size_t have = 0;
        int i;

        run.out[0] = 0;
        for (i = 0; i < 200 && !strstr(run.out, "\"topic\":\"news\""); i++) {
                struct pollfd pfd = { .fd = p.out, .events = POLLIN };

                cr_assert(eq(int, ipcd_client_publish(pub, "news", 5, "extra", 5, IPCD_PUBLISH_ACK), 0));
                if (poll(&pfd, 1, 50) > 0) {
                        ssize_t n = read(p.out, run.out + have, sizeof(run.out) - 1 - have);
                        cr_assert(n > 0);
                        have += (size_t)n;
                        run.out[have] = 0;
                }
        }
        cr_assert(not(eq(ptr, strstr(run.out, "\"topic\":\"news\""), NULL)), "%s", run.out);
        cr_assert(not(eq(ptr, strstr(run.out, "\"kind\":\"publish\""), NULL)), "%s", run.out);
        cr_assert(not(eq(ptr, strstr(run.out, "\"payload\":\"extra\""), NULL)), "%s", run.out);
        kill(p.pid, SIGTERM);
        finish_from(&p, &run, have);
        cr_assert(eq(int, run.code, 0), "%s", run.err);
        ipcd_client_unref(pub);
        tb_stop(&tb);
}

Test(reqrep, ipcctl_monitor_human_and_filter) {
        Proc p = ipcctl_start((const char *const[]){ "monitor", "news/#", NULL });
        ipcd_client *pub = client("pub");
        size_t have = 0;
        int i;

        run.out[0] = 0;
        for (i = 0; i < 200 && !strstr(run.out, "publish news/a type=5"); i++) {
                struct pollfd pfd = { .fd = p.out, .events = POLLIN };

                cr_assert(eq(int, ipcd_client_publish(pub, "other", 1, "no", 2, IPCD_PUBLISH_ACK), 0));
                cr_assert(eq(int, ipcd_client_publish(pub, "news/a", 5, "extra", 5, IPCD_PUBLISH_ACK),
                             0));
                if (poll(&pfd, 1, 50) > 0) {
                        ssize_t n = read(p.out, run.out + have, sizeof(run.out) - 1 - have);
                        cr_assert(n > 0);
                        have += (size_t)n;
                        run.out[have] = 0;
                }
        }
        cr_assert(not(eq(ptr, strstr(run.out, "publish news/a type=5 from client"), NULL)), "%s",
                  run.out);
        cr_assert(not(eq(ptr, strstr(run.out, "5 bytes \"extra\""), NULL)), "%s", run.out);
        cr_assert(eq(ptr, strstr(run.out, "other"), NULL), "%s", run.out);
        kill(p.pid, SIGTERM);
        finish_from(&p, &run, have);
        cr_assert(eq(int, run.code, 0), "%s", run.err);
        ipcd_client_unref(pub);
        tb_stop(&tb);
}

/* A client that subscribes and serves: a message routed to its subscription
 * must not hide its responder from the next request (the routers used to
 * share a per-connection "already matched" mark with separate counters, so
 * the first request after the first delivery found no responder). */
Test(reqrep, responder_that_also_subscribes) {
        ipcd_client *both = client("both"), *other = client("other");
        Served s = { 0 };
        Answer a = { 0 };
        int got = 0, i;

        cr_assert(eq(int, ipcd_client_subscribe(both, "news/#", NULL, 0, on_msg, &got, NULL), 0));
        cr_assert(eq(int, ipcd_client_serve(both, "svc/both", NULL, 0, on_request, &s, NULL), 0));
        for (i = 1; i <= 3; i++) {
                cr_assert(eq(int, ipcd_client_publish(other, "news/x", 0, "n", 1, 0), 0));
                while (got < i)
                        cr_assert(ge(int, ipcd_client_wait(both, 2000), 0));
                cr_assert(eq(int, ipcd_client_request(other, "svc/both", 1, "q", 1, NULL, 0, 2000,
                                                      on_reply, &a),
                             0));
                while (a.n < i) {
                        cr_assert(ge(int, ipcd_client_wait(both, 10), 0));
                        cr_assert(ge(int, ipcd_client_wait(other, 10), 0));
                }
                cr_assert(eq(int, a.error, 0), "request %d: %s", i, strerror(-a.error));
        }
        ipcd_client_unref(both);
        ipcd_client_unref(other);
        tb_stop(&tb);
}
