/* SPDX-License-Identifier: MIT */
/*
 * Request/reply through a real ipcd, with hand-written frames: routing to
 * one responder, spreading over several, and every way it can end (reply,
 * no responders, timeout, responder gone, requester gone, late and foreign
 * replies, too many pending).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static TestBroker tb;

/* The new-style cr_assert takes no expression that starts with '(' or '!'. */
static bool is_true(bool b) {
        return b;
}

static void start(void) {
        tb_start(&tb, NULL);
}

static void stop(void) {
        cr_assert(eq(i64, tb_status_number(&tb, "requests_pending"), 0), "requests left pending");
        tb_stop(&tb);
}

static void cleanup(void) {
        tb_kill(&tb);
}

/* Serves @filter (a responder subscription with id @id). */
static void serve(int fd, uint32_t id, const char *filter, const uint32_t *types, size_t n) {
        uint8_t meta[WIRE_META_SUBSCRIBE], payload[64];
        WireSubscribe ws = { .sub_id = id, .n_types = (uint16_t)n, .flags = WIRE_SUB_F_RESPONDER };
        RawFrame f;
        size_t i;

        for (i = 0; i < n; i++)
                le32_write(payload + 4 * i, types[i]);
        wire_subscribe_encode(meta, &ws);
        raw_send(fd, WIRE_SUBSCRIBE, 0, 0, 900 + id, meta, sizeof(meta), filter, payload, 4 * n);
        raw_expect(fd, WIRE_ACK, &f);
        raw_frame_free(&f);
}

static void request(int fd, const char *topic, uint32_t type, uint64_t corr, uint32_t timeout_ms,
                    const char *payload) {
        uint8_t meta[WIRE_META_REQUEST] = { 0 };
        le32_write(meta, timeout_ms);
        raw_send(fd, WIRE_REQUEST, 0, type, corr, meta, sizeof(meta), topic, payload,
                 payload ? strlen(payload) : 0);
}

static void reply(int fd, uint64_t id, uint32_t type, const char *payload) {
        uint8_t meta[WIRE_META_REPLY] = { 0 };
        raw_send(fd, WIRE_REPLY, 0, type, id, meta, sizeof(meta), NULL, payload, strlen(payload));
}

TestSuite(request, .init = start, .fini = cleanup, .timeout = 60);

Test(request, routed_to_a_responder_and_back) {
        uint32_t types[] = { 3 };
        int srv = raw_client(&tb, "server", NULL), cli = raw_client(&tb, "client", NULL);
        WireDelivery d;
        RawFrame f;
        uint64_t id;

        serve(srv, 4, "svc/+", types, 1);
        request(cli, "svc/echo", 3, 77, 0, "hello");
        raw_expect(srv, WIRE_REQUEST, &f);
        cr_assert(eq(str, f.topic, "svc/echo"));
        cr_assert(eq(u32, f.h.type, 3));
        cr_assert(eq(u32, f.h.meta_len, WIRE_META_REQUEST_IN));
        cr_assert(eq(u32, f.h.payload_len, 5));
        cr_assert(memcmp(f.payload, "hello", 5) == 0);
        wire_delivery_decode(f.meta, &d);
        cr_assert(eq(u32, d.sender_pid, (uint32_t)getpid()));
        cr_assert(eq(u32, d.sub_id, 4));
        cr_assert(eq(u32, le32_read(f.meta + 32), 5000), "the default deadline is announced");
        id = f.h.corr;
        cr_assert(id != 77, "the responder sees the broker's id, not the requester's");
        raw_frame_free(&f);

        reply(srv, id, 4, "HELLO");
        raw_expect(cli, WIRE_REPLY, &f);
        cr_assert(eq(u64, f.h.corr, 77));
        cr_assert(eq(str, f.topic, "svc/echo"));
        cr_assert(eq(u32, f.h.type, 4));
        cr_assert(eq(u32, f.h.payload_len, 5));
        cr_assert(memcmp(f.payload, "HELLO", 5) == 0);
        raw_frame_free(&f);

        /* A type the responder does not select finds nobody. */
        request(cli, "svc/echo", 9, 78, 0, "x");
        raw_expect_error(cli, WIRE_E_NO_RESPONDERS, false);
        close(srv);
        close(cli);
        stop();
}

Test(request, no_responders_at_once) {
        int cli = raw_client(&tb, "client", NULL), sub = raw_client(&tb, "plain", NULL);
        RawFrame f;

        /* A plain subscriber is not a responder. */
        raw_subscribe(sub, 1, "svc/#", NULL, 0);
        request(cli, "svc/none", 1, 5, 0, "x");
        raw_expect(cli, WIRE_ERROR, &f);
        cr_assert(eq(u32, le32_read(f.meta), WIRE_E_NO_RESPONDERS));
        cr_assert(eq(u64, f.h.corr, 5));
        cr_assert(eq(u32, le32_read(f.meta + 4), WIRE_REQUEST));
        raw_frame_free(&f);
        raw_expect_silence(sub, 50);
        close(cli);
        close(sub);
        stop();
}

Test(request, timed_out_and_late_reply_counted) {
        int srv = raw_client(&tb, "sleepy", NULL), cli = raw_client(&tb, "client", NULL);
        RawFrame f;
        uint64_t id;

        serve(srv, 1, "svc/slow", NULL, 0);
        request(cli, "svc/slow", 1, 9, 150, "x");
        raw_expect(srv, WIRE_REQUEST, &f);
        id = f.h.corr;
        raw_frame_free(&f);
        raw_expect_error(cli, WIRE_E_TIMEOUT, false);
        /* The reply comes too late: refused, counted, and nothing reaches
         * the requester. */
        reply(srv, id, 1, "late");
        raw_expect_error(srv, WIRE_E_NO_SUCH_REQUEST, false);
        raw_sync(cli);
        raw_expect_silence(cli, 50);
        cr_assert(eq(i64, tb_status_number(&tb, "late_replies"), 1));
        cr_assert(eq(i64, tb_status_number(&tb, "request_timeouts"), 1));
        close(srv);
        close(cli);
        stop();
}

Test(request, responder_gone_and_requester_gone) {
        int srv = raw_client(&tb, "server", NULL), cli = raw_client(&tb, "client", NULL), cli2;
        RawFrame f;
        uint64_t id;

        serve(srv, 1, "svc/x", NULL, 0);
        request(cli, "svc/x", 1, 21, 5000, "x");
        raw_expect(srv, WIRE_REQUEST, &f);
        raw_frame_free(&f);
        close(srv);
        raw_expect_error(cli, WIRE_E_RESPONDER_GONE, false);

        /* A requester that leaves cancels its requests: the reply is late. */
        srv = raw_client(&tb, "server2", NULL);
        serve(srv, 1, "svc/x", NULL, 0);
        cli2 = raw_client(&tb, "leaving", NULL);
        request(cli2, "svc/x", 1, 22, 5000, "x");
        raw_expect(srv, WIRE_REQUEST, &f);
        id = f.h.corr;
        raw_frame_free(&f);
        close(cli2);
        raw_wait_clients(srv, 2); /* the broker has seen it go */
        reply(srv, id, 1, "nobody");
        raw_expect_error(srv, WIRE_E_NO_SUCH_REQUEST, false);
        close(srv);
        close(cli);
        stop();
}

Test(request, replies_that_were_not_asked) {
        int a = raw_client(&tb, "a", NULL), b = raw_client(&tb, "b", NULL), cli = raw_client(&tb, "c", NULL);
        RawFrame f;
        uint64_t id;

        serve(a, 1, "svc/one", NULL, 0);
        request(cli, "svc/one", 1, 31, 5000, "x");
        raw_expect(a, WIRE_REQUEST, &f);
        id = f.h.corr;
        raw_frame_free(&f);
        /* b was not asked; unknown ids are refused too. */
        reply(b, id, 1, "mine!");
        raw_expect_error(b, WIRE_E_NO_SUCH_REQUEST, false);
        reply(b, 123456789, 1, "?");
        raw_expect_error(b, WIRE_E_NO_SUCH_REQUEST, false);
        reply(a, 0, 1, "?");
        raw_expect_error(a, WIRE_E_NO_SUCH_REQUEST, false);
        /* The right reply still goes through, once. */
        reply(a, id, 1, "ok");
        raw_expect(cli, WIRE_REPLY, &f);
        cr_assert(eq(u64, f.h.corr, 31));
        raw_frame_free(&f);
        reply(a, id, 1, "twice");
        raw_expect_error(a, WIRE_E_NO_SUCH_REQUEST, false);
        /* Malformed replies are protocol errors. */
        raw_send(a, WIRE_REPLY, 0, 1, id, NULL, 0, "topic", "x", 1);
        raw_expect_error(a, WIRE_E_MALFORMED, true);
        close(a);
        close(b);
        close(cli);
        stop();
}

Test(request, two_responders_share_the_load) {
        enum { N = 1000 };
        int a = raw_client(&tb, "a", NULL), b = raw_client(&tb, "b", NULL), cli = raw_client(&tb, "c", NULL);
        int got[2] = { 0, 0 }, replies = 0, i;

        serve(a, 1, "svc/work", NULL, 0);
        serve(b, 1, "svc/work", NULL, 0);
        for (i = 0; i < N; i++) {
                int k;
                request(cli, "svc/work", 1, (uint64_t)i + 1, 5000, "job");
                /* Whoever got it answers at once. */
                {
                        struct pollfd pf[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
                        RawFrame f;
                        cr_assert(eq(int, poll(pf, 2, 5000) > 0, 1), "no responder got request %d", i);
                        k = (pf[0].revents & POLLIN) ? 0 : 1;
                        raw_expect(k ? b : a, WIRE_REQUEST, &f);
                        got[k]++;
                        reply(k ? b : a, f.h.corr, 1, "done");
                        raw_frame_free(&f);
                }
                {
                        RawFrame f;
                        raw_expect(cli, WIRE_REPLY, &f);
                        cr_assert(eq(u64, f.h.corr, (uint64_t)i + 1));
                        raw_frame_free(&f);
                        replies++;
                }
        }
        cr_assert(eq(int, replies, N));
        cr_assert(eq(int, got[0] + got[1], N));
        cr_assert(ge(int, got[0], N / 2 - N / 20), "a got %d of %d", got[0], N);
        cr_assert(ge(int, got[1], N / 2 - N / 20), "b got %d of %d", got[1], N);
        close(a);
        close(b);
        close(cli);
        stop();
}

Test(request, fds_travel_both_ways) {
        int srv = raw_client(&tb, "server", NULL), cli = raw_client(&tb, "client", NULL), p[2], q[2];
        uint8_t frame[256], meta[WIRE_META_REQUEST] = { 0 }, rmeta[WIRE_META_REPLY] = { 0 };
        struct stat s1, s2;
        RawFrame f;
        uint64_t id;
        size_t n;

        cr_assert(pipe2(p, O_CLOEXEC) == 0 && pipe2(q, O_CLOEXEC) == 0);
        serve(srv, 1, "svc/fd", NULL, 0);
        n = wire_frame_encode(frame, sizeof(frame), WIRE_REQUEST, 0, 1, 40, 1, meta, sizeof(meta),
                              "svc/fd", 6, "r", 1);
        raw_send_fds(cli, frame, n, &p[1], 1);
        raw_expect(srv, WIRE_REQUEST, &f);
        cr_assert(eq(u32, f.h.n_fds, 1));
        cr_assert(fstat(f.fds[0], &s1) == 0 && fstat(p[1], &s2) == 0);
        cr_assert(eq(u64, (uint64_t)s1.st_ino, (uint64_t)s2.st_ino));
        id = f.h.corr;
        raw_frame_free(&f);
        n = wire_frame_encode(frame, sizeof(frame), WIRE_REPLY, 0, 1, id, 1, rmeta, sizeof(rmeta),
                              NULL, 0, "a", 1);
        raw_send_fds(srv, frame, n, &q[1], 1);
        raw_expect(cli, WIRE_REPLY, &f);
        cr_assert(eq(u32, f.h.n_fds, 1));
        cr_assert(fstat(f.fds[0], &s1) == 0 && fstat(q[1], &s2) == 0);
        cr_assert(eq(u64, (uint64_t)s1.st_ino, (uint64_t)s2.st_ino));
        raw_frame_free(&f);
        close(p[0]);
        close(p[1]);
        close(q[0]);
        close(q[1]);
        close(srv);
        close(cli);
        stop();
}

Test(request_limits, pending_limit_and_flood, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", conf[128];
        const char *args[] = { "--config", conf, NULL };
        int srv, cli, i;
        FILE *fc;

        cr_assert(mkdtemp(dir) != NULL);
        snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
        fc = fopen(conf, "we");
        cr_assert(fc != NULL);
        fputs("limits:\n  max_pending_requests: 10\n", fc);
        fclose(fc);
        tb_start_in(&tb, dir, args);
        srv = raw_client(&tb, "silent", NULL);
        cli = raw_client(&tb, "flooder", NULL);
        serve(srv, 1, "svc/q", NULL, 0);
        for (i = 0; i < 12; i++)
                request(cli, "svc/q", 1, (uint64_t)i + 1, 60000, "x");
        /* Ten are pending; the next two are refused and nothing else. */
        raw_expect_error(cli, WIRE_E_LIMIT, false);
        raw_expect_error(cli, WIRE_E_LIMIT, false);
        raw_sync(cli);
        cr_assert(eq(i64, raw_status_number(cli, "requests_pending"), 10));
        close(cli);
        close(srv);
        stop();
        unlink(conf);
        rmdir(dir);
}

Test(request, monitor_sees_every_routed_message) {
        int mon = raw_client(&tb, "monitor", NULL), srv = raw_client(&tb, "server", NULL);
        int cli = raw_client(&tb, "client", NULL), sub = raw_client(&tb, "sub", NULL);
        RawFrame f;
        uint64_t id;

        raw_subscribe(mon, 1, "$SYS/monitor/#", NULL, 0);
        serve(srv, 1, "svc/m", NULL, 0);
        raw_subscribe(sub, 1, "news", NULL, 0);

        raw_publish(cli, "news", 5, "extra", 5);
        raw_expect(sub, WIRE_MESSAGE, &f);
        raw_frame_free(&f);
        raw_expect(mon, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "$SYS/monitor/publish"));
        f.payload[f.h.payload_len] = 0;
        cr_assert(is_true(strstr((char *)f.payload, "\"topic\":\"news\"") != NULL), "%s", f.payload);
        cr_assert(is_true(strstr((char *)f.payload, "\"payload\":\"extra\"") != NULL), "%s", f.payload);
        cr_assert(is_true(strstr((char *)f.payload, "\"recipients\":[") != NULL), "%s", f.payload);
        raw_frame_free(&f);

        request(cli, "svc/m", 1, 3, 0, "q");
        raw_expect(srv, WIRE_REQUEST, &f);
        id = f.h.corr;
        raw_frame_free(&f);
        raw_expect(mon, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "$SYS/monitor/request"));
        raw_frame_free(&f);
        reply(srv, id, 1, "a");
        raw_expect(cli, WIRE_REPLY, &f);
        raw_frame_free(&f);
        raw_expect(mon, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "$SYS/monitor/reply"));
        f.payload[f.h.payload_len] = 0;
        cr_assert(is_true(strstr((char *)f.payload, "\"topic\":\"svc/m\"") != NULL), "%s", f.payload);
        raw_frame_free(&f);
        close(mon);
        close(srv);
        close(cli);
        close(sub);
        stop();
}
