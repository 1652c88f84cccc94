/* SPDX-License-Identifier: MIT */
/*
 * Integration tests against a real ipcd: routing, ordering, limits, and
 * every kind of bad input. Frames are written by hand (tests/harness.c) so
 * the tests control every byte.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static TestBroker tb;

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

/* Reads the next MESSAGE and checks its topic, type and payload. */
static void expect_message(int fd, const char *topic, uint32_t type, const char *payload,
                           WireDelivery *ret) {
        WireDelivery d;
        RawFrame f;

        raw_expect(fd, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, (char *)topic));
        cr_assert(eq(u32, f.h.type, type));
        cr_assert(eq(u32, f.h.payload_len, (uint32_t)strlen(payload)));
        cr_assert(memcmp(f.payload, payload, f.h.payload_len) == 0);
        cr_assert(eq(u32, f.h.meta_len, WIRE_META_MESSAGE));
        wire_delivery_decode(f.meta, &d);
        if (ret)
                *ret = d;
        raw_frame_free(&f);
}

/* Asserts that a fresh pair of clients can still exchange a message. */
static void assert_healthy_on(const TestBroker *b) {
        int s = raw_client(b, "probe-sub", NULL), p = raw_client(b, "probe-pub", NULL);
        raw_subscribe(s, 1, "health/check", NULL, 0);
        raw_publish(p, "health/check", 1, "ok", 2);
        expect_message(s, "health/check", 1, "ok", NULL);
        close(s);
        close(p);
}

static void assert_healthy(void) {
        assert_healthy_on(&tb);
}

static long long status_number(const char *key) {
        return tb_status_number(&tb, key);
}

TestSuite(pubsub, .init = start, .fini = cleanup, .timeout = 60);

Test(pubsub, one_to_one_with_credentials) {
        uint32_t types[] = { 7 };
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        WireDelivery d;

        raw_subscribe(s, 5, "sensors/#", types, 1);
        raw_publish(p, "sensors/cpu0/temp", 7, "42", 2);
        expect_message(s, "sensors/cpu0/temp", 7, "42", &d);
        cr_assert(eq(u32, d.sender_pid, (uint32_t)getpid()));
        cr_assert(eq(u32, d.sender_uid, (uint32_t)getuid()));
        cr_assert(eq(u32, d.sender_gid, (uint32_t)getgid()));
        cr_assert(eq(u32, d.sub_id, 5));
        cr_assert(eq(u64, d.seq, 1));
        cr_assert(eq(u64, d.bulk_size, 0));
        close(s);
        close(p);
        stop();
}

Test(pubsub, one_to_many) {
        int subs[8], p = raw_client(&tb, "pub", NULL);
        size_t i;

        for (i = 0; i < ARRAY_SIZE(subs); i++) {
                subs[i] = raw_client(&tb, "sub", NULL);
                raw_subscribe(subs[i], (uint32_t)i + 1, "fan/out", NULL, 0);
        }
        raw_publish(p, "fan/out", 1, "hello", 5);
        for (i = 0; i < ARRAY_SIZE(subs); i++) {
                WireDelivery d;
                expect_message(subs[i], "fan/out", 1, "hello", &d);
                cr_assert(eq(u32, d.sub_id, (uint32_t)i + 1));
                close(subs[i]);
        }
        close(p);
        stop();
}

typedef struct MatchCase {
        const char *filter;
        const char *topic;
        bool match;
} MatchCase;

Test(pubsub, wildcards) {
        static const MatchCase cases[] = {
                { "a/b/c", "a/b/c", true },   { "a/+/c", "a/b/c", true },
                { "a/+/c", "a/b/d", false },  { "a/#", "a", true },
                { "a/#", "a/b/c/d", true },   { "a/#", "ab", false },
                { "+", "a", true },           { "+", "a/b", false },
                { "+/+", "/", true },         { "#", "x/y", true },
                { "#", "$SYS/x", false },     { "+/x", "$SYS/x", false },
                { "$SYS/#", "$SYS/x", true }, { "a//b", "a//b", true },
                { "a/+/b", "a//b", true },    { "a/+", "a", false },
        };
        int p = raw_client(&tb, "pub", NULL);
        size_t i;

        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                int s = raw_client(&tb, "sub", NULL);
                raw_subscribe(s, 1, cases[i].filter, NULL, 0);
                /* $-topics cannot be published by clients; test the rule
                 * where a client can reach it: a plain topic after it. */
                if (cases[i].topic[0] != '$')
                        raw_publish(p, cases[i].topic, 1, "m", 1);
                raw_publish(p, "zz/end", 2, "end", 3);
                raw_sync(p);
                if (cases[i].match && cases[i].topic[0] != '$')
                        expect_message(s, cases[i].topic, 1, "m", NULL);
                else if (strcmp(cases[i].filter, "#") == 0)
                        expect_message(s, "zz/end", 2, "end", NULL);
                close(s);
        }
        close(p);
        stop();
}

Test(pubsub, dollar_topics_belong_to_the_broker) {
        int p = raw_client(&tb, "pub", NULL);
        raw_send(p, WIRE_PUBLISH, 0, 1, 9, NULL, 0, "$SYS/fake", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);
        /* The connection goes on. */
        raw_sync(p);
        close(p);
        stop();
}

Test(pubsub, one_delivery_per_connection) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);

        raw_subscribe(s, 1, "a/#", NULL, 0);
        raw_subscribe(s, 2, "a/+", NULL, 0);
        raw_subscribe(s, 3, "a/b", NULL, 0);
        raw_subscribe(s, 4, "#", NULL, 0);
        raw_publish(p, "a/b", 1, "once", 4);
        expect_message(s, "a/b", 1, "once", NULL);
        raw_sync(s);
        raw_expect_silence(s, 100);
        close(s);
        close(p);
        stop();
}

Test(pubsub, type_selection) {
        uint32_t types[] = { 1, 2 };
        int s = raw_client(&tb, "sub", NULL), all = raw_client(&tb, "all", NULL);
        int p = raw_client(&tb, "pub", NULL);

        raw_subscribe(s, 1, "t", types, 2);
        raw_subscribe(all, 1, "t", NULL, 0);
        raw_publish(p, "t", 3, "three", 5);
        raw_publish(p, "t", 1, "one", 3);
        raw_publish(p, "t", 2, "two", 3);
        expect_message(s, "t", 1, "one", NULL);
        expect_message(s, "t", 2, "two", NULL);
        expect_message(all, "t", 3, "three", NULL);
        expect_message(all, "t", 1, "one", NULL);
        expect_message(all, "t", 2, "two", NULL);
        close(s);
        close(all);
        close(p);
        stop();
}

Test(pubsub, order_and_sequence_numbers) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        char buf[32];
        int i;

        raw_subscribe(s, 1, "seq/#", NULL, 0);
        for (i = 1; i <= 10000; i++) {
                int n = snprintf(buf, sizeof(buf), "%d", i);
                raw_publish(p, i % 2 ? "seq/odd" : "seq/even", 1, buf, (size_t)n);
        }
        for (i = 1; i <= 10000; i++) {
                WireDelivery d;
                snprintf(buf, sizeof(buf), "%d", i);
                expect_message(s, i % 2 ? "seq/odd" : "seq/even", 1, buf, &d);
                /* Sequence numbers count per topic. */
                cr_assert(eq(u64, d.seq, (uint64_t)(i + 1) / 2));
        }
        close(s);
        close(p);
        stop();
}

Test(pubsub, publisher_receives_its_own_message) {
        int c = raw_client(&tb, "self", NULL);
        raw_subscribe(c, 1, "echo", NULL, 0);
        raw_publish(c, "echo", 1, "me", 2);
        expect_message(c, "echo", 1, "me", NULL);
        close(c);
        stop();
}

Test(pubsub, unsubscribe) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        uint8_t meta[WIRE_META_UNSUBSCRIBE] = { 0 };
        RawFrame f;

        raw_subscribe(s, 9, "u", NULL, 0);
        raw_publish(p, "u", 1, "a", 1);
        expect_message(s, "u", 1, "a", NULL);
        le32_write(meta, 9);
        raw_send(s, WIRE_UNSUBSCRIBE, 0, 0, 55, meta, sizeof(meta), NULL, NULL, 0);
        raw_expect(s, WIRE_ACK, &f);
        cr_assert(eq(u64, f.h.corr, 55));
        raw_frame_free(&f);
        raw_publish(p, "u", 1, "b", 1);
        raw_sync(p);
        raw_expect_silence(s, 100);

        /* Unknown id: a clear error, and the connection goes on. */
        raw_send(s, WIRE_UNSUBSCRIBE, 0, 0, 56, meta, sizeof(meta), NULL, NULL, 0);
        raw_expect_error(s, WIRE_E_NO_SUCH_SUB, false);
        raw_sync(s);
        cr_assert(eq(i64, status_number("subscriptions"), 0));
        close(s);
        close(p);
        stop();
}

Test(pubsub, duplicate_subscription_id) {
        uint8_t meta[WIRE_META_SUBSCRIBE];
        WireSubscribe ws = { .sub_id = 3 };
        int s = raw_client(&tb, "sub", NULL);

        raw_subscribe(s, 3, "x", NULL, 0);
        wire_subscribe_encode(meta, &ws);
        raw_send(s, WIRE_SUBSCRIBE, 0, 0, 4, meta, sizeof(meta), "y", NULL, 0);
        raw_expect_error(s, WIRE_E_SUB_EXISTS, false);
        raw_sync(s);
        close(s);
        stop();
}

/* SUBSCRIBE with a queue group named @group. */
static void subscribe_group(int fd, uint32_t id, const char *filter, const char *group) {
        uint8_t meta[WIRE_META_SUBSCRIBE];
        WireSubscribe ws = { .sub_id = id, .group_len = (uint8_t)strlen(group) };
        RawFrame f;

        wire_subscribe_encode(meta, &ws);
        raw_send(fd, WIRE_SUBSCRIBE, 0, 0, 500 + id, meta, sizeof(meta), filter, group, strlen(group));
        raw_expect(fd, WIRE_ACK, &f);
        raw_frame_free(&f);
}

Test(pubsub, queue_group_members_share_the_messages) {
        enum { MEMBERS = 3, N = 300 };
        int members[MEMBERS], plain = raw_client(&tb, "plain", NULL);
        int other = raw_client(&tb, "other-group", NULL), p = raw_client(&tb, "pub", NULL);
        int counts[MEMBERS] = { 0 }, i, k, total = 0;

        for (k = 0; k < MEMBERS; k++) {
                members[k] = raw_client(&tb, "worker", NULL);
                subscribe_group(members[k], 7, k == 0 ? "jobs/#" : "jobs/+", "workers");
        }
        subscribe_group(other, 1, "jobs/#", "auditors");
        raw_subscribe(plain, 1, "jobs/#", NULL, 0);
        cr_assert(eq(i64, tb_status_number(&tb, "groups"), 2));
        for (i = 0; i < N; i++)
                raw_publish(p, "jobs/new", 1, "job", 3);
        raw_sync(p);
        /* Every plain subscriber and the one-member group get all; the
         * workers share them, evenly. */
        for (i = 0; i < N; i++) {
                RawFrame f;
                raw_expect(plain, WIRE_MESSAGE, &f);
                raw_frame_free(&f);
                raw_expect(other, WIRE_MESSAGE, &f);
                raw_frame_free(&f);
        }
        for (k = 0; k < MEMBERS; k++) {
                for (;;) {
                        RawFrame f;
                        WireDelivery d;
                        if (raw_read(members[k], &f, 200) != 1)
                                break;
                        wire_delivery_decode(f.meta, &d);
                        cr_assert(eq(u32, d.sub_id, 7));
                        counts[k]++;
                        raw_frame_free(&f);
                }
                total += counts[k];
                cr_assert(eq(int, counts[k], N / MEMBERS), "member %d got %d of %d", k, counts[k], N);
        }
        cr_assert(eq(int, total, N));
        for (k = 0; k < MEMBERS; k++)
                close(members[k]);
        close(plain);
        close(other);
        close(p);
        stop();
}

Test(pubsub, retained_messages) {
        int p = raw_client(&tb, "pub", NULL), s, s2, s3;
        WireDelivery d;
        RawFrame f;

        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 4, 0, NULL, 0, "state/door", "open", 4);
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 4, 0, NULL, 0, "state/door", "closed", 6);
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 5, 0, NULL, 0, "state/light", "on", 2);
        raw_publish(p, "state/fan", 1, "not retained", 12);
        raw_sync(p);
        cr_assert(eq(i64, tb_status_number(&tb, "retained"), 2));

        /* A new subscriber gets the last retained value of each matching
         * topic, marked as retained, right after its ACK. */
        s = raw_client(&tb, "late", NULL);
        raw_subscribe(s, 3, "state/+", NULL, 0);
        {
                int seen_door = 0, seen_light = 0, i;
                for (i = 0; i < 2; i++) {
                        raw_expect(s, WIRE_MESSAGE, &f);
                        cr_assert(eq(u32, f.h.flags & WIRE_F_RETAIN, WIRE_F_RETAIN));
                        wire_delivery_decode(f.meta, &d);
                        cr_assert(eq(u32, d.sub_id, 3));
                        if (strcmp(f.topic, "state/door") == 0) {
                                cr_assert(eq(u32, f.h.payload_len, 6));
                                cr_assert(memcmp(f.payload, "closed", 6) == 0);
                                cr_assert(eq(u64, d.seq, 2));
                                seen_door++;
                        } else {
                                cr_assert(eq(str, f.topic, "state/light"));
                                seen_light++;
                        }
                        raw_frame_free(&f);
                }
                cr_assert(seen_door == 1 && seen_light == 1 ? 1 : 0);
        }
        raw_sync(s);
        raw_expect_silence(s, 50);

        /* Live messages are not marked retained. */
        raw_publish(p, "state/fan", 1, "live", 4);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(u32, f.h.flags & WIRE_F_RETAIN, 0));
        raw_frame_free(&f);

        /* Type selection applies; NO_RETAINED skips them. */
        {
                uint32_t types[] = { 5 };
                s2 = raw_client(&tb, "typed", NULL);
                raw_subscribe(s2, 1, "state/#", types, 1);
                raw_expect(s2, WIRE_MESSAGE, &f);
                cr_assert(eq(str, f.topic, "state/light"));
                raw_frame_free(&f);
                raw_sync(s2);
                raw_expect_silence(s2, 50);
        }
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1, .flags = WIRE_SUB_F_NO_RETAINED });
                s3 = raw_client(&tb, "fresh", NULL);
                raw_send(s3, WIRE_SUBSCRIBE, 0, 0, 9, meta, sizeof(meta), "state/#", NULL, 0);
                raw_expect(s3, WIRE_ACK, &f);
                raw_frame_free(&f);
                raw_sync(s3);
                raw_expect_silence(s3, 50);
        }

        /* An empty retained publish clears it. */
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 4, 0, NULL, 0, "state/door", NULL, 0);
        raw_sync(p);
        cr_assert(eq(i64, tb_status_number(&tb, "retained"), 1));
        close(s);
        close(s2);
        close(s3);
        close(p);
        stop();
}

Test(pubsub, status_counts) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        raw_subscribe(s, 1, "st/#", NULL, 0);
        raw_publish(p, "st/a", 1, "x", 1);
        raw_publish(p, "st/b", 1, "x", 1);
        raw_sync(p);
        cr_assert(eq(i64, status_number("messages_in"), 2));
        cr_assert(eq(i64, status_number("messages_out"), 2));
        cr_assert(eq(i64, status_number("topics"), 2));
        cr_assert(eq(i64, status_number("subscriptions"), 1));
        cr_assert(eq(i64, status_number("clients"), 3));
        close(s);
        close(p);
        stop();
}

Test(pubsub, many_clients_at_once) {
        enum { N = 200 };
        int fds[N], p;
        char topic[32];
        size_t i;

        for (i = 0; i < N; i++) {
                fds[i] = raw_client(&tb, "many", NULL);
                snprintf(topic, sizeof(topic), "own/%zu", i);
                raw_subscribe(fds[i], 1, "all", NULL, 0);
                raw_subscribe(fds[i], 2, topic, NULL, 0);
        }
        p = raw_client(&tb, "pub", NULL);
        raw_publish(p, "all", 1, "everyone", 8);
        for (i = 0; i < N; i++) {
                snprintf(topic, sizeof(topic), "own/%zu", i);
                raw_publish(p, topic, 2, "you", 3);
        }
        for (i = 0; i < N; i++) {
                snprintf(topic, sizeof(topic), "own/%zu", i);
                expect_message(fds[i], "all", 1, "everyone", NULL);
                expect_message(fds[i], topic, 2, "you", NULL);
        }
        cr_assert(eq(i64, status_number("clients"), N + 1 + 1));
        for (i = 0; i < N; i++)
                close(fds[i]);
        close(p);
        stop();
}

/* A subscriber that never reads: its queue stops at the limit, deliveries
 * to it are dropped and counted, memory stays bounded, and a subscriber that
 * does read gets every message. */
Test(limits, subscriber_that_never_reads, .timeout = 120) {
        static const char *const args[] = { "--max-queue-bytes", "1048576", NULL };
        enum { ROUNDS = 400, PER_ROUND = 100, SIZE = 1024 };
        char payload[SIZE];
        long rss_before, rss_after;
        int slow, good, p, r, i;
        uint64_t next_seq = 1;

        tb_start(&tb, args);
        memset(payload, 'p', sizeof(payload));
        slow = raw_client(&tb, "slow", NULL);
        good = raw_client(&tb, "good", NULL);
        p = raw_client(&tb, "pub", NULL);
        raw_subscribe(slow, 1, "flood", NULL, 0);
        raw_subscribe(good, 1, "flood", NULL, 0);
        rss_before = tb_rss_kib(&tb);

        /* 40 MB in total, 100 KB at a time so the good reader keeps up. */
        for (r = 0; r < ROUNDS; r++) {
                for (i = 0; i < PER_ROUND; i++)
                        raw_publish(p, "flood", 1, payload, sizeof(payload));
                for (i = 0; i < PER_ROUND; i++) {
                        RawFrame f;
                        WireDelivery d;
                        raw_expect(good, WIRE_MESSAGE, &f);
                        wire_delivery_decode(f.meta, &d);
                        cr_assert(eq(u64, d.seq, next_seq));
                        next_seq++;
                        raw_frame_free(&f);
                }
        }
        raw_sync(p);
        rss_after = tb_rss_kib(&tb);
        /* 1 MiB queue + the socket buffer is all the slow one may hold.
         * (Memory checkers change what RSS means; they check leaks instead.) */
        if (!tb.valgrind && !TB_SANITIZED)
                cr_assert(rss_after - rss_before < 16 * 1024, "broker grew by %ld KiB",
                          rss_after - rss_before);
        cr_assert(gt(i64, status_number("drops"), (int64_t)ROUNDS * PER_ROUND / 2));
        assert_healthy();
        close(slow);
        close(good);
        close(p);
        tb_stop(&tb);
}

Test(limits, client_killed_mid_frame) {
        int base, i;

        tb_start(&tb, NULL);
        base = tb_fd_baseline(&tb);
        for (i = 0; i < 20; i++) {
                pid_t pid = fork();
                cr_assert(pid >= 0);
                if (pid == 0) {
                        harness_child_begin();
                        uint8_t frame[256];
                        size_t n;
                        int fd = raw_client(&tb, "doomed", NULL);
                        n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 0, NULL,
                                              0, "t", 1, "0123456789", 10);
                        raw_write(fd, frame, i % 2 ? n / 2 : 7);
                        kill(getpid(), SIGKILL);
                }
                waitpid(pid, NULL, 0);
        }
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        assert_healthy();
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

Test(limits, connection_limit) {
        static const char *const args[] = { "--max-connections", "3", NULL };
        int a, b, c, d;

        tb_start(&tb, args);
        a = raw_client(&tb, "1", NULL);
        raw_wait_clients(a, 1); /* the start-up probe is gone */
        b = raw_client(&tb, "2", NULL);
        c = raw_client(&tb, "3", NULL);
        d = raw_connect(&tb);
        raw_expect_error(d, WIRE_E_LIMIT, true);
        close(a);
        close(b);
        close(c);
        close(d);
        tb_stop(&tb);
}

Test(lifecycle, stale_socket_is_replaced_live_one_is_not) {
        TestBroker again;
        char dir[64];
        int fd;

        tb_start(&tb, NULL);
        fd = raw_client(&tb, "x", NULL);
        close(fd);
        /* Die without cleaning up: the socket file stays behind. */
        kill(tb.pid, SIGKILL);
        waitpid(tb.pid, NULL, 0);
        snprintf(dir, sizeof(dir), "%s", tb.dir);
        tb_start_in(&again, dir, NULL);
        {
                /* A second broker on a live socket refuses to start. */
                const char *args[] = { "--socket", again.sock, NULL };
                cr_assert(eq(int, tb_run(args), 1));
        }
        assert_healthy_on(&again);
        tb_stop(&again); /* exit 0, socket file removed */
}

Test(lifecycle, refuses_to_replace_a_file_that_is_not_a_socket) {
        char dir[64] = "/tmp/ipcd-test-XXXXXX", path[128];
        const char *args[] = { "--socket", path, NULL };
        struct stat st;
        FILE *f;

        cr_assert(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/ipcd.sock", dir);
        f = fopen(path, "w");
        cr_assert(f != NULL);
        fputs("precious", f);
        fclose(f);
        cr_assert(eq(int, tb_run(args), 1));
        cr_assert(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 8);
        unlink(path);
        rmdir(dir);
}

Test(lifecycle, command_line_errors) {
        const char *unknown[] = { "--no-such-option", NULL };
        const char *extra[] = { "surplus", NULL };
        const char *mode[] = { "--socket-mode", "999", NULL };
        const char *queue[] = { "--max-queue-bytes", "12abc", NULL };
        const char *help[] = { "--help", NULL };
        const char *version[] = { "--version", NULL };
        const char *toolong[] = {
                "--socket",
                "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/s",
                NULL
        };

        cr_assert(eq(int, tb_run(unknown), 2));
        cr_assert(eq(int, tb_run(extra), 2));
        cr_assert(eq(int, tb_run(mode), 2));
        cr_assert(eq(int, tb_run(queue), 2));
        cr_assert(eq(int, tb_run(help), 0));
        cr_assert(eq(int, tb_run(version), 0));
        cr_assert(eq(int, tb_run(toolong), 1));
}

/* ---- Bad input: every malformed frame is answered by an ERROR naming the
 * problem and the disconnection of that client only. ---- */

/* Criterion runs each case in a fresh process of this binary: the case
 * must hold its data, not point to it. */
typedef struct BadCase {
        char name[64];
        bool greet;        /* complete the handshake first */
        WireError code;    /* the error expected */
        size_t len;
        uint8_t bytes[96]; /* what the client sends after the handshake */
} BadCase;

static void hdr(uint8_t *b, uint32_t size, uint8_t version, uint8_t kind, uint16_t flags,
                uint32_t payload_len, uint16_t topic_len, uint8_t n_fds, uint8_t meta_len,
                uint32_t reserved) {
        WireHeader h = {
                .size = size, .version = version, .kind = kind, .flags = flags,
                .payload_len = payload_len, .topic_len = topic_len, .n_fds = n_fds,
                .meta_len = meta_len, .reserved = reserved, .corr = 0xabcdef,
        };
        wire_header_encode(b, &h);
}

static BadCase bad_case(const char *name, bool greet, WireError code) {
        BadCase c = { .greet = greet, .code = code };
        snprintf(c.name, sizeof(c.name), "%s", name);
        return c;
}

ParameterizedTestParameters(bad_input, frames) {
        static BadCase cases[24];
        size_t n = 0;
        BadCase *c;

        c = &cases[n++];
        *c = bad_case("wrong version", true, WIRE_E_VERSION);
        hdr(c->bytes, 32, 2, WIRE_PING, 0, 0, 0, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("unknown kind 0", true, WIRE_E_KIND);
        hdr(c->bytes, 32, 1, 0, 0, 0, 0, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("unknown kind 200", true, WIRE_E_KIND);
        hdr(c->bytes, 32, 1, 200, 0, 0, 0, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("MESSAGE sent by a client", true, WIRE_E_KIND);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_MESSAGE, 0, 0, 0, 0,
                                   (uint8_t[WIRE_META_MESSAGE]){ 0 }, WIRE_META_MESSAGE, "t", 1,
                                   NULL, 0);

        c = &cases[n++];
        *c = bad_case("WELCOME sent by a client", true, WIRE_E_KIND);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_WELCOME, 0, 0, 0, 0,
                                   (uint8_t[WIRE_META_WELCOME]){ 0 }, WIRE_META_WELCOME, NULL, 0,
                                   NULL, 0);

        c = &cases[n++];
        *c = bad_case("size does not add up", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 40, 1, WIRE_PING, 0, 0, 0, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("lengths that overflow 32 bits", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 32 + 8 - 1, 1, WIRE_PUBLISH, 0, 0xfffffff8u, 9, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("payload over the limit", true, WIRE_E_TOO_LARGE);
        hdr(c->bytes, 32 + 1 + (2u << 20), 1, WIRE_PUBLISH, 0, 2u << 20, 1, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("topic over the limit", true, WIRE_E_TOO_LARGE);
        hdr(c->bytes, 32 + 5000, 1, WIRE_PUBLISH, 0, 0, 5000, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("reserved field set", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 32, 1, WIRE_PING, 0, 0, 0, 0, 0, 1);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("undefined flag", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 32, 1, WIRE_PING, 0x40, 0, 0, 0, 0, 0);
        c->len = 32;

        c = &cases[n++];
        *c = bad_case("wrong meta length", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 36, 1, WIRE_UNSUBSCRIBE, 0, 0, 0, 0, 4, 0);
        c->len = 36;

        c = &cases[n++];
        *c = bad_case("wildcard in a published topic", true, WIRE_E_BAD_TOPIC);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0,
                                   "a/+/b", 5, "x", 1);

        c = &cases[n++];
        *c = bad_case("published topic with a control character", true, WIRE_E_BAD_TOPIC);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0,
                                   "a\nb", 3, "x", 1);

        c = &cases[n++];
        *c = bad_case("invalid filter", true, WIRE_E_BAD_FILTER);
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1 });
                c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_SUBSCRIBE, 0, 0, 0, 0,
                                           meta, sizeof(meta), "a/#/b", 5, NULL, 0);
        }

        c = &cases[n++];
        *c = bad_case("SUBSCRIBE types do not match the payload", true, WIRE_E_MALFORMED);
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1, .n_types = 2 });
                c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_SUBSCRIBE, 0, 0, 0, 0,
                                           meta, sizeof(meta), "a", 1, "1234", 4);
        }

        c = &cases[n++];
        *c = bad_case("subscription id 0", true, WIRE_E_MALFORMED);
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 0 });
                c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_SUBSCRIBE, 0, 0, 0, 0,
                                           meta, sizeof(meta), "a", 1, NULL, 0);
        }

        c = &cases[n++];
        *c = bad_case("payload longer than declared", true, WIRE_E_VERSION);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0,
                                   "t", 1, "ab", 2);
        memset(c->bytes + c->len, 'x', 40);
        c->len += 40;

        c = &cases[n++];
        *c = bad_case("PUBLISH before HELLO", false, WIRE_E_HANDSHAKE);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0,
                                   "t", 1, "ab", 2);

        c = &cases[n++];
        *c = bad_case("second HELLO", true, WIRE_E_HANDSHAKE);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_HELLO, 0, 0, 0, 0,
                                   (uint8_t[WIRE_META_HELLO]){ 0 }, WIRE_META_HELLO, NULL, 0, "x",
                                   1);

        c = &cases[n++];
        *c = bad_case("client name with a control character", false, WIRE_E_MALFORMED);
        c->len = wire_frame_encode(c->bytes, sizeof(c->bytes), WIRE_HELLO, 0, 0, 0, 0,
                                   (uint8_t[WIRE_META_HELLO]){ 0 }, WIRE_META_HELLO, NULL, 0,
                                   "bad\033name", 8);

        c = &cases[n++];
        *c = bad_case("fds declared in the header that never arrive", true, WIRE_E_FDS);
        hdr(c->bytes, 33, 1, WIRE_PUBLISH, 0, 0, 1, 1, 0, 0);
        c->bytes[32] = 't';
        c->len = 33;

        c = &cases[n++];
        *c = bad_case("garbage", false, WIRE_E_VERSION);
        memcpy(c->bytes, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 36);
        c->len = 36;

        c = &cases[n++];
        *c = bad_case("truncated header, then half-close", true, WIRE_E_MALFORMED);
        hdr(c->bytes, 32, 1, WIRE_PING, 0, 0, 0, 0, 0, 0);
        c->len = 10;

        return cr_make_param_array(BadCase, cases, n);
}

ParameterizedTest(BadCase *c, bad_input, frames, .init = start, .fini = cleanup, .timeout = 60) {
        int base = tb_fd_baseline(&tb);
        int fd = c->greet ? raw_client(&tb, "bad", NULL) : raw_connect(&tb);

        cr_log_info("case: %s", c->name);
        raw_write(fd, c->bytes, c->len);
        if (c->len < WIRE_HEADER_SIZE)
                shutdown(fd, SHUT_WR);
        raw_expect_error(fd, c->code, true);
        close(fd);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base), "fd leaked after: %s", c->name);
        assert_healthy();
        stop();
}

Test(bad_input, fds_with_no_frame, .init = start, .fini = cleanup) {
        int base = tb_fd_baseline(&tb), fd = raw_client(&tb, "fds", NULL), p[2];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } ctrl;
        uint8_t frame[64];
        struct iovec iov;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cm;
        size_t n;

        cr_assert(pipe(p) == 0);
        n = wire_frame_encode(frame, sizeof(frame), WIRE_PING, 0, 0, 0, 0, NULL, 0, NULL, 0, NULL,
                              0);
        iov = (struct iovec){ frame, n };
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = sizeof(ctrl.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(cm), p, sizeof(p));
        cr_assert(sendmsg(fd, &msg, 0) == (ssize_t)n);
        /* The PING is answered (its fds could belong to a later frame of
         * the same sendmsg); at the end of the batch they belong to none. */
        {
                RawFrame f;
                raw_expect(fd, WIRE_PONG, &f);
                raw_frame_free(&f);
        }
        raw_expect_error(fd, WIRE_E_FDS, true);
        close(fd);
        close(p[0]);
        close(p[1]);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        assert_healthy();
        stop();
}

Test(bad_input, unknown_admin_command, .init = start, .fini = cleanup) {
        int fd = raw_client(&tb, "admin", NULL);
        raw_send(fd, WIRE_ADMIN, 0, 0, 1, NULL, 0, "selfdestruct", NULL, 0);
        raw_expect_error(fd, WIRE_E_BAD_COMMAND, false);
        raw_sync(fd);
        close(fd);
        stop();
}

Test(bad_input, goodbye_is_the_brokers_to_send, .init = start, .fini = cleanup) {
        int fd = raw_client(&tb, "bye", NULL);
        raw_send(fd, WIRE_GOODBYE, 0, 0, 1, NULL, 0, NULL, NULL, 0);
        raw_expect_error(fd, WIRE_E_KIND, true);
        close(fd);
        stop();
}

Test(bad_input, ping_flood_without_reading, .init = start, .fini = cleanup, .timeout = 60) {
        /* A client that sends requests and never reads the answers is cut off
         * once its answers fill twice its queue; others are unaffected. */
        static uint8_t frame[WIRE_HEADER_SIZE + 4096], payload[4096 - 64];
        size_t n = wire_frame_encode(frame, sizeof(frame), WIRE_PING, 0, 0, 0, 0, NULL, 0, NULL, 0,
                                     payload, sizeof(payload));
        int fd = raw_client(&tb, "flood", NULL), i;

        for (i = 0; i < 20000; i++)
                if (send(fd, frame, n, MSG_NOSIGNAL) < 0)
                        break;
        cr_assert(lt(i64, (int64_t)i, 20000), "the broker never cut the flooding client off");
        close(fd);
        assert_healthy();
        stop();
}

/* ---- Overflow policies: what happens when a subscriber's queue is full. ---- */

/* Once every client is gone, nothing may still be charged to anyone: the
 * per-user totals are kept incrementally and must come back to zero. */
static void assert_accounting_clean(void) {
        tb_fd_baseline(&tb); /* waits until the status client is the only one */
        cr_assert(eq(i64, tb_status_number(&tb, "queued_bytes"), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "queued_fds"), 0));
}

/* Publishes @n 1 KiB messages on "flood" from @p, with a PING round trip at
 * the end so they have all been routed. */
static void flood(int p, int n) {
        static char payload[1024];
        int i;
        for (i = 0; i < n; i++)
                raw_publish(p, "flood", 1, payload, sizeof(payload));
        raw_sync(p);
}

Test(policies, drop_old_keeps_the_newest, .timeout = 60) {
        static const char *const args[] = { "--max-queue-bytes", "1048576", "--overflow", "drop-old",
                                             NULL };
        uint64_t first = 0, last = 0, n = 0;
        int slow, p;

        tb_start(&tb, args);
        slow = raw_client(&tb, "slow", NULL);
        p = raw_client(&tb, "pub", NULL);
        raw_subscribe(slow, 1, "flood", NULL, 0);
        flood(p, 5000);
        /* Now read: what is left is the newest, ending with the last one. */
        for (;;) {
                RawFrame f;
                WireDelivery d;
                if (raw_read(slow, &f, 300) != 1)
                        break;
                wire_delivery_decode(f.meta, &d);
                if (n == 0)
                        first = d.seq;
                cr_assert(gt(u64, d.seq, last), "out of order");
                last = d.seq;
                n++;
                raw_frame_free(&f);
        }
        cr_assert(eq(u64, last, 5000), "the newest message must survive");
        cr_assert(gt(u64, first, 1), "the oldest must have been dropped");
        cr_assert(eq(i64, tb_status_number(&tb, "drops"), (int64_t)(5000 - n)));
        close(slow);
        close(p);
        assert_accounting_clean();
        tb_stop(&tb);
}

Test(policies, disconnect_the_slow_subscriber, .timeout = 60) {
        static const char *const args[] = { "--max-queue-bytes", "1048576", "--overflow", "disconnect",
                                             NULL };
        int slow, good, p, got = 0;

        tb_start(&tb, args);
        slow = raw_client(&tb, "slow", NULL);
        good = raw_client(&tb, "good", NULL);
        p = raw_client(&tb, "pub", NULL);
        raw_subscribe(slow, 1, "flood", NULL, 0);
        raw_subscribe(good, 1, "flood", NULL, 0);
        /* Rounds small enough for the good subscriber to keep up. */
        for (int r = 0; r < 30; r++) {
                flood(p, 100);
                for (int i = 0; i < 100; i++) {
                        RawFrame f;
                        raw_expect(good, WIRE_MESSAGE, &f);
                        raw_frame_free(&f);
                        got++;
                }
        }
        cr_assert(eq(int, got, 3000));
        /* The slow one was cut off: what it reads now is what the socket
         * held, then an ERROR saying why, then the end. */
        for (;;) {
                RawFrame f;
                int r = raw_read(slow, &f, 2000);
                cr_assert(eq(int, r, 1), "the slow subscriber got no ERROR before the end");
                if (f.h.kind == WIRE_ERROR) {
                        cr_assert(eq(u32, le32_read(f.meta), WIRE_E_SLOW_CONSUMER));
                        cr_assert(f.h.flags & WIRE_F_FATAL ? 1 : 0);
                        raw_frame_free(&f);
                        break;
                }
                raw_frame_free(&f);
        }
        {
                RawFrame f;
                cr_assert(eq(int, raw_read(slow, &f, 2000), 0));
        }
        cr_assert(eq(i64, tb_status_number(&tb, "clients"), 3)); /* good, pub, status */
        close(slow);
        close(good);
        close(p);
        assert_accounting_clean();
        tb_stop(&tb);
}

Test(policies, block_holds_the_publisher_back_and_loses_nothing, .timeout = 60) {
        static const char *const args[] = { "--max-queue-bytes", "1048576", "--overflow", "block",
                                             NULL };
        static char payload[1024];
        enum { N = 5000 };
        int slow, p, i;
        RawFrame f;

        tb_start(&tb, args);
        slow = raw_client(&tb, "slow", NULL);
        p = raw_client(&tb, "pub", NULL);
        raw_subscribe(slow, 1, "flood", NULL, 0);
        /* More than the queue and the socket buffers hold. A child writes,
         * since the broker stops reading from it and its writes block. */
        pid_t child = fork();
        cr_assert(child >= 0);
        if (child == 0) {
                harness_child_begin();
                for (i = 0; i < N; i++)
                        raw_publish(p, "flood", 1, payload, sizeof(payload));
                raw_send(p, WIRE_PING, 0, 0, 42, NULL, 0, NULL, NULL, 0);
                _exit(0);
        }
        /* While the subscriber does not read, the PING stays unanswered. */
        usleep(300000);
        {
                struct pollfd pf = { .fd = p, .events = POLLIN };
                cr_assert(eq(int, poll(&pf, 1, 0), 0), "the publisher was not held back");
        }
        /* Reading everything lets it go on; nothing was dropped. */
        for (i = 1; i <= N; i++) {
                WireDelivery d;
                raw_expect(slow, WIRE_MESSAGE, &f);
                wire_delivery_decode(f.meta, &d);
                cr_assert(eq(u64, d.seq, (uint64_t)i));
                raw_frame_free(&f);
        }
        raw_expect(p, WIRE_PONG, &f);
        cr_assert(eq(u64, f.h.corr, 42));
        raw_frame_free(&f);
        waitpid(child, NULL, 0);
        cr_assert(eq(i64, tb_status_number(&tb, "drops"), 0));
        close(slow);
        close(p);
        assert_accounting_clean();
        tb_stop(&tb);
}

/* The broker's virtual size in KiB: what it allocated, touched or not. */
static long vm_size_kib(void) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)tb.pid);
        f = fopen(path, "re");
        cr_assert(f != NULL);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

Test(limits, half_sent_large_frames_cost_what_was_sent, .timeout = 60) {
        /* 64 clients each declare a 1 MiB PUBLISH, send its first 100 bytes
         * and stall: the broker holds about what arrived, not 64 MiB. */
        enum { N = 64 };
        uint8_t head[100];
        WireHeader h = { .version = WIRE_VERSION, .kind = WIRE_PUBLISH, .topic_len = 1,
                         .payload_len = (1u << 20) - 64 };
        long vm0, vm1 = 0;
        int fds[N], i;

        tb_start(&tb, NULL);
        h.size = WIRE_HEADER_SIZE + h.topic_len + h.payload_len;
        memset(head, 'x', sizeof(head));
        wire_header_encode(head, &h);
        vm0 = vm_size_kib();
        for (i = 0; i < N; i++) {
                fds[i] = raw_client(&tb, "staller", NULL);
                raw_write(fds[i], head, sizeof(head));
        }
        {
                int probe = raw_client(&tb, "probe", NULL);
                raw_wait_clients(probe, N + 1);
                vm1 = vm_size_kib();
                close(probe);
        }
        if (!tb.valgrind && !TB_SANITIZED)
                cr_assert(lt(i64, vm1 - vm0, 16 * 1024), "allocated %ld KiB more", vm1 - vm0);
        for (i = 0; i < N; i++)
                close(fds[i]);
        assert_healthy();
        tb_stop(&tb);
}
