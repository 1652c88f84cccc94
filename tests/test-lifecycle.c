/* SPDX-License-Identifier: MIT */
/*
 * The broker's life cycle as clients see it, against a real ipcd: the
 * handshake timeout, graceful shutdown (queued messages, then GOODBYE,
 * bounded by shutdown_timeout), and libipcd-client surviving a broker
 * restart (automatic reconnection, resubscription, events), plus its
 * automatic batching of publishes.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static TestBroker tb;

static void cleanup(void) {
        tb_kill(&tb);
}

static long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool is_true(bool b) {
        return b;
}

/* Writes @yaml as the broker's configuration and starts it. */
static void start_with(const char *yaml) {
        char dir[] = "/tmp/ipcd-life-XXXXXX", path[128];
        const char *args[] = { "--config", path, NULL };
        FILE *f;

        cr_assert(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/ipcd.yaml", dir);
        f = fopen(path, "we");
        cr_assert(f != NULL);
        fputs(yaml, f);
        fclose(f);
        tb_start_in(&tb, dir, args);
        snprintf(tb.conf, sizeof(tb.conf), "%s", path); /* removed with the broker */
}

/* The broker was signalled by the test: waits for it to exit (at most
 * @max_ms), checks that it exited 0, and cleans up after it as tb_stop()
 * would. Returns how long it took. */
static long wait_exit(int max_ms) {
        long t0 = now_ms(), took;
        int status = 0;
        pid_t r;

        while ((r = waitpid(tb.pid, &status, WNOHANG)) == 0 && now_ms() - t0 < max_ms)
                usleep(5000);
        took = now_ms() - t0;
        if (r == 0) {
                kill(tb.pid, SIGKILL);
                waitpid(tb.pid, &status, 0);
        }
        tb.pid = 0;
        cr_assert(ne(int, r, 0), "ipcd did not exit within %d ms of the signal", max_ms);
        cr_assert(is_true(WIFEXITED(status)), "ipcd died of signal %d", WTERMSIG(status));
        cr_assert(eq(int, WEXITSTATUS(status), 0), "ipcd exited with %d", WEXITSTATUS(status));
        unlink(tb.log);
        if (tb.conf[0])
                unlink(tb.conf);
        rmdir(tb.dir);
        return took;
}

/* A subscriber that will not read, with @n messages of @size bytes queued
 * for it beyond what its socket holds. Returns its fd. */
static int backlogged_subscriber(int n, size_t size) {
        int s = raw_client(&tb, "slow", NULL), p = raw_client(&tb, "pub", NULL);
        char *buf = calloc(1, size);
        int i;

        cr_assert(buf != NULL);
        raw_subscribe(s, 1, "backlog/#", NULL, 0);
        for (i = 0; i < n; i++) {
                snprintf(buf, size, "%d", i);
                raw_publish(p, "backlog/x", 1, buf, size);
        }
        raw_sync(p);
        close(p);
        free(buf);
        return s;
}

/* ---- handshake timeout ---- */

TestSuite(handshake, .fini = cleanup, .timeout = 60);

Test(handshake, silent_connection_is_closed_after_hello_timeout) {
        int idle, ok;
        long t0;

        start_with("limits:\n  hello_timeout: 300ms\n");
        (void)tb_fd_baseline(&tb);
        ok = raw_client(&tb, "ok", NULL);
        idle = raw_connect(&tb);
        t0 = now_ms();
        raw_expect_error(idle, WIRE_E_HANDSHAKE, true);
        cr_assert(ge(long, now_ms() - t0, 250), "closed too early");
        close(idle);
        /* A client that said HELLO in time is not affected. */
        raw_sync(ok);
        cr_assert(eq(i64, tb_status_number(&tb, "handshake_timeouts"), 1));
        cr_assert(eq(i64, raw_status_number(ok, "clients"), 1));
        close(ok);
        tb_stop(&tb);
}

Test(handshake, many_silent_connections_cost_nothing_for_long) {
        int idle[50], ok, i, base;

        start_with("limits:\n  hello_timeout: 200ms\n");
        base = tb_fd_baseline(&tb);
        for (i = 0; i < 50; i++)
                idle[i] = raw_connect(&tb);
        ok = raw_client(&tb, "ok", NULL);
        raw_wait_clients(ok, 1);
        cr_assert(eq(i64, tb_status_number(&tb, "handshake_timeouts"), 50));
        for (i = 0; i < 50; i++)
                close(idle[i]);
        tb_wait_fd_count(&tb, base + 1);
        close(ok);
        tb_stop(&tb);
}

/* ---- graceful shutdown ---- */

TestSuite(shutdown, .fini = cleanup, .timeout = 120);

/* Everything queued before SIGTERM arrives, in order, then GOODBYE, then
 * the end of the stream; and the broker exits 0. */
Test(shutdown, queued_messages_then_goodbye) {
        const int n = 3000;
        RawFrame f;
        int s, i, r;

        tb_start(&tb, NULL);
        s = backlogged_subscriber(n, 2048);
        cr_assert(gt(i64, tb_status_number(&tb, "queued_bytes"), 0),
                  "the test needs a backlog in the broker");
        kill(tb.pid, SIGTERM);
        for (i = 0; i < n; i++) {
                raw_expect(s, WIRE_MESSAGE, &f);
                cr_assert(eq(int, atoi((const char *)f.payload), i));
                raw_frame_free(&f);
        }
        raw_expect(s, WIRE_GOODBYE, &f);
        cr_assert(eq(u32, f.h.meta_len, 0));
        cr_assert(eq(u32, f.h.topic_len, 0));
        cr_assert(eq(str, (char *)f.payload, "the broker is shutting down"));
        raw_frame_free(&f);
        r = raw_read(s, &f, 5000);
        cr_assert(eq(int, r, 0), "the broker keeps the connection open after GOODBYE");
        close(s);
        wait_exit(10000);
}

/* A client that never reads holds the shutdown for shutdown_timeout, no
 * longer. */
Test(shutdown, timeout_bounds_a_client_that_never_reads) {
        long took;
        int s;

        start_with("limits:\n  shutdown_timeout: 500ms\n");
        s = backlogged_subscriber(3000, 2048);
        kill(tb.pid, SIGTERM);
        took = wait_exit(TB_SANITIZED || tb.valgrind ? 20000 : 5000);
        cr_assert(ge(long, took, 400), "exited after %ld ms: did not wait for the queue", took);
        close(s);
}

Test(shutdown, second_signal_ends_the_wait) {
        long took;
        int s;

        start_with("limits:\n  shutdown_timeout: 1h\n");
        s = backlogged_subscriber(3000, 2048);
        kill(tb.pid, SIGTERM);
        usleep(200 * 1000);
        kill(tb.pid, SIGINT);
        took = wait_exit(20000);
        cr_assert(lt(long, took, 15000));
        close(s);
}

/* The library ends the client with a clear error when the broker says
 * goodbye (no reconnection asked for). */
Test(shutdown, library_reports_goodbye) {
        ipcd_client *c = NULL;
        int r;

        tb_start(&tb, NULL);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "sub"), 0));
        kill(tb.pid, SIGTERM);
        r = ipcd_client_wait(c, 10000);
        cr_assert(eq(int, r, -ECONNRESET));
        cr_assert(not(eq(ptr, strstr(ipcd_client_last_error(c), "shutting down"), NULL)),
                  "last error: %s", ipcd_client_last_error(c));
        cr_assert(eq(int, ipcd_client_publish(c, "x", 0, "1", 1, 0), -ENOTCONN));
        cr_assert(not(ipcd_client_is_connected(c)));
        ipcd_client_unref(c);
        wait_exit(10000);
}

/* ---- reconnection ---- */

typedef struct Events {
        int down, up;
        ipcd_event last_down, last_up;
        int msgs;
        char last_data[64];
        unsigned last_flags;
} Events;

static void on_event(ipcd_client *c, const ipcd_event *ev, void *userdata) {
        Events *e = userdata;

        if (ev->type == IPCD_EVENT_DISCONNECTED) {
                e->down++;
                e->last_down = *ev;
        } else if (ev->type == IPCD_EVENT_RECONNECTED) {
                e->up++;
                e->last_up = *ev;
        }
        /* The handler may not process (no recursion). */
        cr_assert(eq(int, ipcd_client_process(c), -EBUSY));
}

static void on_msg(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Events *e = userdata;
        size_t len;
        const char *data = ipcd_msg_get_data(m, &len);

        e->msgs++;
        e->last_flags = ipcd_msg_get_flags(m);
        snprintf(e->last_data, sizeof(e->last_data), "%.*s", (int)len, data);
}

static void on_echo(ipcd_client *c, ipcd_msg *req, void *userdata) {
        size_t len;
        const void *data = ipcd_msg_get_data(req, &len);
        (void)ipcd_msg_reply(req, 1, data, len, NULL, 0);
}

/* Runs @c's loop until @cond holds or @ms pass. */
#define PUMP_UNTIL(c, cond, ms)                                          \
        do {                                                             \
                long deadline_ = now_ms() + (ms);                        \
                while (!(cond) && now_ms() < deadline_)                  \
                        cr_assert(ge(int, ipcd_client_wait((c), 50), 0)); \
        } while (0)

static void on_reply_msg(ipcd_client *c, int error, ipcd_msg *reply, void *userdata) {
        ipcd_msg **ret = userdata;
        if (error == 0)
                *ret = ipcd_msg_ref(reply);
        else
                fprintf(stderr, "reply error %d: %s\n", error, ipcd_client_last_error(c));
}

/* Stops the broker gracefully and starts a new one on the same socket. */
static void restart_broker(const char *const *args) {
        char dir[64];

        snprintf(dir, sizeof(dir), "%s", tb.dir);
        tb_stop(&tb);
        cr_assert(eq(int, mkdir(dir, 0700), 0));
        tb_start_in(&tb, dir, args);
}

TestSuite(reconnect, .fini = cleanup, .timeout = 120);

Test(reconnect, subscriptions_and_responders_survive_a_restart) {
        ipcd_client *c = NULL, *p = NULL;
        ipcd_msg *reply = NULL;
        Events e = { 0 };
        uint32_t sub_id = 0;
        size_t len;
        int old_fd;

        tb_start(&tb, NULL);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "survivor"), 0));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 20, 200), 0));
        cr_assert(eq(int, ipcd_client_set_event_handler(c, on_event, &e), 0));
        cr_assert(eq(int, ipcd_client_subscribe(c, "r/#", NULL, 0, on_msg, &e, &sub_id), 0));
        cr_assert(eq(int, ipcd_client_serve(c, "svc/echo", NULL, 0, on_echo, NULL, NULL), 0));
        old_fd = ipcd_client_get_fd(c);

        restart_broker(NULL);
        PUMP_UNTIL(c, e.up > 0, 10000);
        cr_assert(eq(int, e.down, 1));
        cr_assert(eq(int, e.up, 1));
        cr_assert(eq(int, e.last_down.error, -ECONNRESET));
        cr_assert(is_true(e.last_down.goodbye), "the broker said GOODBYE first");
        cr_assert(eq(sz, e.last_up.restored, 2));
        cr_assert(eq(sz, e.last_up.refused, 0));
        cr_assert(ge(uint, e.last_up.attempts, 1));
        cr_assert(is_true(ipcd_client_is_connected(c)));
        (void)old_fd; /* the fd may or may not have the same number */

        /* The subscription works, with its old id. */
        cr_assert(eq(int, ipcd_client_new(&p, tb.sock, "pub"), 0));
        cr_assert(eq(int, ipcd_client_publish(p, "r/x", 1, "after", 5, 0), 0));
        cr_assert(eq(int, ipcd_client_sync(p), 0));
        PUMP_UNTIL(c, e.msgs > 0, 5000);
        cr_assert(eq(str, e.last_data, "after"));

        /* So does the responder. */
        cr_assert(eq(int, ipcd_client_request(p, "svc/echo", 1, "ping", 4, NULL, 0, 5000,
                                              on_reply_msg, &reply),
                     0));
        for (long end = now_ms() + 5000; !reply && now_ms() < end;) {
                cr_assert(ge(int, ipcd_client_wait(c, 10), 0));
                cr_assert(ge(int, ipcd_client_wait(p, 10), 0));
        }
        cr_assert(not(eq(ptr, reply, NULL)), "no reply from the restored responder");
        cr_assert(eq(int, memcmp(ipcd_msg_get_data(reply, &len), "ping", 4), 0));
        cr_assert(eq(sz, len, 4));
        ipcd_msg_unref(reply);
        ipcd_client_unref(p);
        ipcd_client_unref(c);
        tb_stop(&tb);
}

/* While the broker is away calls fail at once with -ENOTCONN, the loop
 * keeps running (process returns 0) on a timer fd, and the client comes
 * back by itself when the broker does. */
Test(reconnect, while_down_calls_fail_clearly_and_the_loop_waits) {
        ipcd_client *c = NULL;
        Events e = { 0 };
        struct pollfd pfd;
        char dir[64];
        int r, n;

        tb_start(&tb, NULL);
        snprintf(dir, sizeof(dir), "%s", tb.dir);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "waiter"), 0));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 50, 100), 0));
        cr_assert(eq(int, ipcd_client_set_event_handler(c, on_event, &e), 0));
        cr_assert(eq(int, ipcd_client_subscribe(c, "w/#", NULL, 0, on_msg, &e, NULL), 0));

        tb_kill(&tb); /* no GOODBYE: a crash */
        cr_assert(eq(int, mkdir(dir, 0700), 0));
        PUMP_UNTIL(c, e.down > 0, 5000);
        cr_assert(eq(int, e.down, 1));
        cr_assert(not(e.last_down.goodbye));
        cr_assert(not(ipcd_client_is_connected(c)));

        r = ipcd_client_publish(c, "w/x", 0, "lost", 4, 0);
        cr_assert(eq(int, r, -ENOTCONN));
        cr_assert(not(eq(ptr, strstr(ipcd_client_last_error(c), "reconnecting"), NULL)),
                  "last error: %s", ipcd_client_last_error(c));
        cr_assert(eq(int, ipcd_client_subscribe(c, "v/#", NULL, 0, on_msg, &e, NULL), -ENOTCONN));
        cr_assert(eq(int, ipcd_client_sync(c), -ENOTCONN));

        /* The fd to watch is the retry timer: it does not spin. */
        pfd = (struct pollfd){ .fd = ipcd_client_get_fd(c), .events = POLLIN };
        cr_assert(ge(int, pfd.fd, 0));
        n = 0;
        for (long end = now_ms() + 500; now_ms() < end;) {
                if (poll(&pfd, 1, 50) > 0) {
                        cr_assert(eq(int, ipcd_client_process(c), 0));
                        n++;
                        pfd.fd = ipcd_client_get_fd(c);
                }
        }
        cr_assert(le(int, n, 20), "the loop woke %d times in 500 ms", n);

        tb_start_in(&tb, dir, NULL);
        PUMP_UNTIL(c, e.up > 0, 10000);
        cr_assert(eq(int, e.up, 1));
        cr_assert(ge(u64, e.last_up.down_ms, 400));
        cr_assert(eq(int, ipcd_client_publish(c, "w/x", 0, "back", 4, 0), 0));
        PUMP_UNTIL(c, e.msgs > 0, 5000);
        cr_assert(eq(str, e.last_data, "back"));
        ipcd_client_unref(c);
        tb_stop(&tb);
}

static void on_reply(ipcd_client *c, int error, ipcd_msg *reply, void *userdata) {
        int *err = userdata;
        *err = error == 0 ? 1 : error;
}

/* A request pending when the connection goes fails with the loss's error;
 * requests received from the old connection cannot be answered. */
Test(reconnect, pending_requests_fail_on_the_loss) {
        ipcd_client *c = NULL, *srv = NULL;
        Events e = { 0 };
        int err = 0, fd;
        RawFrame f;

        tb_start(&tb, NULL);
        /* A responder that never answers (raw). */
        fd = raw_client(&tb, "mute", NULL);
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1, .flags = WIRE_SUB_F_RESPONDER });
                raw_send(fd, WIRE_SUBSCRIBE, 0, 0, 7, meta, sizeof(meta), "mute/svc", NULL, 0);
                raw_expect(fd, WIRE_ACK, &f);
                raw_frame_free(&f);
        }
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "asker"), 0));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 20, 100), 0));
        cr_assert(eq(int, ipcd_client_set_event_handler(c, on_event, &e), 0));
        cr_assert(eq(int, ipcd_client_request(c, "mute/svc", 1, "q", 1, NULL, 0, 60000, on_reply,
                                              &err),
                     0));
        raw_expect(fd, WIRE_REQUEST, &f);
        raw_frame_free(&f);
        (void)srv;

        restart_broker(NULL);
        close(fd);
        PUMP_UNTIL(c, e.up > 0 && err != 0, 10000);
        cr_assert(eq(int, err, -ECONNRESET));
        cr_assert(eq(sz, e.last_down.requests_failed, 1));
        ipcd_client_unref(c);
        tb_stop(&tb);
}

/* A retained value comes again on resubscribing, flagged, so the
 * application can catch up with the last state it missed. */
Test(reconnect, retained_values_come_again) {
        ipcd_client *c = NULL, *p = NULL;
        Events e = { 0 };
        char dir[64];

        tb_start(&tb, NULL);
        snprintf(dir, sizeof(dir), "%s", tb.dir);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "catcher"), 0));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 20, 100), 0));
        cr_assert(eq(int, ipcd_client_set_event_handler(c, on_event, &e), 0));
        cr_assert(eq(int, ipcd_client_subscribe(c, "state/#", NULL, 0, on_msg, &e, NULL), 0));

        tb_kill(&tb);
        cr_assert(eq(int, mkdir(dir, 0700), 0));
        PUMP_UNTIL(c, e.down > 0, 5000);
        tb_start_in(&tb, dir, NULL);
        /* Published while the subscriber is away, retained. */
        cr_assert(eq(int, ipcd_client_new(&p, tb.sock, "pub"), 0));
        cr_assert(eq(int, ipcd_client_publish(p, "state/door", 1, "open", 4,
                                              IPCD_PUBLISH_RETAIN | IPCD_PUBLISH_ACK),
                     0));
        PUMP_UNTIL(c, e.msgs > 0, 10000);
        cr_assert(eq(int, e.up, 1));
        cr_assert(eq(str, e.last_data, "open"));
        cr_assert(eq(uint, e.last_flags & IPCD_MSG_RETAINED, IPCD_MSG_RETAINED));
        ipcd_client_unref(p);
        ipcd_client_unref(c);
        tb_stop(&tb);
}

/* Without ipcd_client_set_reconnect() a loss is final, as before. */
Test(reconnect, off_by_default) {
        ipcd_client *c = NULL;
        int r;

        tb_start(&tb, NULL);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "plain"), 0));
        restart_broker(NULL);
        r = ipcd_client_wait(c, 5000);
        cr_assert(eq(int, r, -ECONNRESET));
        cr_assert(eq(int, ipcd_client_wait(c, 100), -ENOTCONN));
        cr_assert(eq(int, ipcd_client_publish(c, "x", 0, NULL, 0, 0), -ENOTCONN));
        ipcd_client_unref(c);
        tb_stop(&tb);
}

Test(reconnect, bad_arguments) {
        ipcd_client *c = NULL;

        cr_assert(eq(int, ipcd_client_set_reconnect(NULL, 1, 1), -EINVAL));
        cr_assert(eq(int, ipcd_client_set_event_handler(NULL, NULL, NULL), -EINVAL));
        cr_assert(eq(int, ipcd_client_set_batch(NULL, 1), -EINVAL));
        cr_assert(not(ipcd_client_is_connected(NULL)));
        tb_start(&tb, NULL);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "args"), 0));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, -1, 10), -EINVAL));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 10, -1), -EINVAL));
        cr_assert(eq(int, ipcd_client_set_reconnect(c, 0, 0), 0));
        ipcd_client_unref(c);
        tb_stop(&tb);
}

/* ---- batching ---- */

TestSuite(batch, .fini = cleanup, .timeout = 60);

/* Small publishes wait in the library until the batch fills or the
 * application flushes; then they leave together, in order. */
Test(batch, publishes_wait_for_the_batch_or_a_flush) {
        ipcd_client *c = NULL;
        RawFrame f;
        char buf[16];
        int s, i;

        tb_start(&tb, NULL);
        s = raw_client(&tb, "sub", NULL);
        raw_subscribe(s, 1, "b/#", NULL, 0);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "batcher"), 0));
        cr_assert(eq(int, ipcd_client_set_batch(c, 64 * 1024), 0));
        cr_assert(eq(int, ipcd_client_get_events(c) & POLLOUT, 0));
        for (i = 0; i < 100; i++) {
                snprintf(buf, sizeof(buf), "%d", i);
                cr_assert(eq(int, ipcd_client_publish(c, "b/x", 0, buf, strlen(buf), 0), 0));
        }
        /* Nothing left yet; the loop would be asked to write. */
        raw_expect_silence(s, 100);
        cr_assert(eq(int, ipcd_client_get_events(c) & POLLOUT, POLLOUT));
        cr_assert(eq(int, ipcd_client_flush(c), 0));
        for (i = 0; i < 100; i++) {
                raw_expect(s, WIRE_MESSAGE, &f);
                cr_assert(eq(int, atoi((const char *)f.payload), i));
                raw_frame_free(&f);
        }

        /* A full batch leaves by itself. */
        {
                static char big[1000];
                for (i = 0; i < 70; i++)
                        cr_assert(eq(int, ipcd_client_publish(c, "b/y", 0, big, sizeof(big), 0), 0));
                for (i = 0; i < 60; i++) {
                        raw_expect(s, WIRE_MESSAGE, &f);
                        raw_frame_free(&f);
                }
        }
        /* The last unref writes the rest. */
        cr_assert(eq(int, ipcd_client_publish(c, "b/z", 0, "end", 3, 0), 0));
        ipcd_client_unref(c);
        for (i = 0; i < 11; i++) {
                raw_expect(s, WIRE_MESSAGE, &f);
                raw_frame_free(&f);
        }
        close(s);
        tb_stop(&tb);
}

/* ipcd_client_process() writes what is batched (an event loop that polls
 * with ipcd_client_get_events() sends it on its next iteration). */
Test(batch, process_writes_the_batch) {
        ipcd_client *c = NULL;
        RawFrame f;
        int s;

        tb_start(&tb, NULL);
        s = raw_client(&tb, "sub", NULL);
        raw_subscribe(s, 1, "b/#", NULL, 0);
        cr_assert(eq(int, ipcd_client_new(&c, tb.sock, "batcher"), 0));
        cr_assert(eq(int, ipcd_client_set_batch(c, 1 << 20), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "b/x", 0, "one", 3, 0), 0));
        raw_expect_silence(s, 50);
        cr_assert(eq(int, ipcd_client_process(c), 0));
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "b/x"));
        raw_frame_free(&f);
        ipcd_client_unref(c);
        close(s);
        tb_stop(&tb);
}

/* ipcctl --reconnect sub keeps its subscription across a restart. */
Test(reconnect, ipcctl_sub_reconnects) {
        const char *bin = getenv("IPCCTL_BIN");
        char out[128], buf[512] = "";
        ipcd_client *p = NULL;
        int status = 0, fd;
        ssize_t n;
        pid_t pid;

        cr_assert(is_true(bin != NULL), "IPCCTL_BIN is not set");
        tb_start(&tb, NULL);
        /* Outside the broker's directory, which the restart removes. */
        snprintf(out, sizeof(out), "/tmp/ipcd-life-sub-XXXXXX");
        fd = mkstemp(out);
        cr_assert(ge(int, fd, 0));
        close(fd);
        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (o < 0 || dup2(o, STDOUT_FILENO) < 0)
                        _exit(120);
                execl(bin, bin, "-s", tb.sock, "--reconnect", "sub", "a/#", "--count", "1",
                      "--timeout", "20", (char *)NULL);
                _exit(127);
        }
        /* Once it has subscribed, restart the broker under it. */
        fd = raw_client(&tb, "probe", NULL);
        for (long end = now_ms() + 5000; raw_status_number(fd, "subscriptions") < 1;) {
                cr_assert(lt(long, now_ms(), end), "ipcctl sub did not subscribe");
                usleep(10000);
        }
        close(fd);
        restart_broker(NULL);
        /* Publish until the resubscribed ipcctl has taken one and exited. */
        cr_assert(eq(int, ipcd_client_new(&p, tb.sock, "pub"), 0));
        for (long end = now_ms() + 10000; waitpid(pid, &status, WNOHANG) == 0;) {
                cr_assert(lt(long, now_ms(), end), "ipcctl sub did not get the message");
                cr_assert(eq(int, ipcd_client_publish(p, "a/b", 0, "again", 5, 0), 0));
                usleep(20000);
        }
        cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        fd = open(out, O_RDONLY | O_CLOEXEC);
        cr_assert(ge(int, fd, 0));
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        unlink(out);
        cr_assert(gt(int, (int)n, 0));
        cr_assert(not(eq(ptr, strstr(buf, "again"), NULL)), "ipcctl printed: %s", buf);
        ipcd_client_unref(p);
        tb_stop(&tb);
}
