/* SPDX-License-Identifier: MIT */
/*
 * File descriptors and sealed-memfd bulk payloads through a real ipcd, with
 * hand-written frames: what arrives, in which order, and every way a client
 * can get them wrong. After each test the broker's fd count is back where
 * it started.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "memfd.h"
#include "util.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static TestBroker tb;
static int base_fds;

static void start(void) {
        tb_start(&tb, NULL);
        base_fds = tb_fd_baseline(&tb);
}

static void stop(void) {
        int n = tb_wait_fd_count(&tb, base_fds);
        /* Nothing is charged to anyone once the clients are gone. */
        cr_assert(eq(i64, tb_status_number(&tb, "queued_fds"), 0));
        cr_assert(eq(i64, tb_status_number(&tb, "fds_held"), 0));
        tb_stop(&tb);
        cr_assert(eq(int, n, base_fds), "the broker holds %d fds, %d at the start", n, base_fds);
}

/* Criterion ignores failures in .fini: the checks are in stop(), called at
 * the end of each test; this only cleans up after a test that failed. */
static void cleanup(void) {
        tb_kill(&tb);
}

/* Encodes a PUBLISH (bulk with @bulk_size when @bulk) and sends it with @fds. */
static void publish_fds(int sock, const char *topic, uint32_t type, const void *payload,
                        size_t len, bool bulk, uint64_t bulk_size, const int *fds, size_t n_fds,
                        uint64_t corr) {
        uint8_t frame[4096], meta[8];
        size_t n;

        le64_write(meta, bulk_size);
        n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, bulk ? WIRE_F_BULK : 0, type, corr,
                              (uint8_t)n_fds, meta, bulk ? 8 : 0, topic, strlen(topic), payload, len);
        cr_assert(n > 0);
        if (n_fds)
                raw_send_fds(sock, frame, n, fds, n_fds);
        else
                raw_write(sock, frame, n);
}

static bool same_file(int a, int b) {
        struct stat sa, sb;
        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

TestSuite(fds, .init = start, .fini = cleanup, .timeout = 60);

Test(fds, pipe_passed_and_used) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL), pipefd[2];
        char buf[16] = { 0 };
        WireDelivery d;
        RawFrame f;

        cr_assert(pipe2(pipefd, O_CLOEXEC) == 0);
        raw_subscribe(s, 1, "pipes/#", NULL, 0);
        publish_fds(p, "pipes/a", 3, "take this", 9, false, 0, &pipefd[1], 1, 0);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(u32, f.h.n_fds, 1));
        cr_assert(eq(u32, f.h.payload_len, 9));
        wire_delivery_decode(f.meta, &d);
        cr_assert(eq(u64, d.bulk_size, 0));
        cr_assert(same_file(f.fds[0], pipefd[1]));
        /* The received write end works: what we write, our read end reads. */
        cr_assert(write(f.fds[0], "hello", 5) == 5);
        cr_assert(read(pipefd[0], buf, sizeof(buf)) == 5);
        cr_assert(eq(str, buf, "hello"));
        raw_frame_free(&f);
        close(pipefd[0]);
        close(pipefd[1]);
        close(s);
        close(p);
        stop();
}

Test(fds, many_frames_with_fds_in_one_sendmsg_arrive_in_order) {
        enum { FRAMES = 40, PER = 3 };
        int s = raw_client(&tb, "sub", NULL), s2 = raw_client(&tb, "sub2", NULL);
        int p = raw_client(&tb, "pub", NULL);
        int files[FRAMES * PER];
        uint8_t batch[FRAMES * 64];
        size_t off = 0, i, k;

        raw_subscribe(s, 1, "ordered", NULL, 0);
        raw_subscribe(s2, 1, "ordered", NULL, 0);
        for (i = 0; i < ARRAY_SIZE(files); i++) {
                files[i] = memfd_create("order", MFD_CLOEXEC);
                cr_assert(files[i] >= 0);
        }
        /* 40 frames and 120 fds, one sendmsg: the batching the protocol allows. */
        for (i = 0; i < FRAMES; i++) {
                char payload[8];
                int n = snprintf(payload, sizeof(payload), "%zu", i);
                off += wire_frame_encode(batch + off, sizeof(batch) - off, WIRE_PUBLISH, 0, 1, 0,
                                         PER, NULL, 0, "ordered", 7, payload, (size_t)n);
        }
        raw_send_fds(p, batch, off, files, ARRAY_SIZE(files));
        for (k = 0; k < 2; k++) {
                int sock = k ? s2 : s;
                for (i = 0; i < FRAMES; i++) {
                        RawFrame f;
                        size_t j;
                        raw_expect(sock, WIRE_MESSAGE, &f);
                        cr_assert(eq(u32, f.h.n_fds, PER));
                        for (j = 0; j < PER; j++)
                                cr_assert(same_file(f.fds[j], files[i * PER + j]),
                                          "frame %zu fd %zu is not the one sent", i, j);
                        raw_frame_free(&f);
                }
                cr_assert(eq(sz, raw_pending_fds(sock), 0));
        }
        for (i = 0; i < ARRAY_SIZE(files); i++)
                close(files[i]);
        close(s);
        close(s2);
        close(p);
        stop();
}

Test(fds, bulk_memfd_delivered_without_copy) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL), mfd, pipefd[2];
        size_t len = 4u << 20, i;
        uint8_t *data = malloc(len);
        const uint8_t *map;
        WireDelivery d;
        RawFrame f;
        int fds[2];

        cr_assert(data != NULL);
        for (i = 0; i < len; i++)
                data[i] = (uint8_t)(i * 7 + 3);
        mfd = memfd_new_sealed("bulk", data, len);
        cr_assert(mfd >= 0, "memfd_new_sealed: %s", strerror(-mfd));
        cr_assert(pipe2(pipefd, O_CLOEXEC) == 0);
        fds[0] = mfd;
        fds[1] = pipefd[1];
        raw_subscribe(s, 1, "bulk", NULL, 0);
        publish_fds(p, "bulk", 9, NULL, 0, true, len, fds, 2, 0);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(u32, f.h.flags & WIRE_F_BULK, WIRE_F_BULK), "flags %#x", f.h.flags);
        cr_assert(eq(u32, f.h.payload_len, 0));
        cr_assert(eq(u32, f.h.n_fds, 2));
        wire_delivery_decode(f.meta, &d);
        cr_assert(eq(u64, d.bulk_size, len));
        cr_assert(eq(int, memfd_check(f.fds[0], len, len), MEMFD_OK));
        cr_assert(same_file(f.fds[0], mfd), "the broker must forward the memfd itself");
        cr_assert(same_file(f.fds[1], pipefd[1]));
        map = mmap(NULL, len, PROT_READ, MAP_SHARED, f.fds[0], 0);
        cr_assert(map != MAP_FAILED);
        cr_assert(memcmp(map, data, len) == 0);
        munmap((void *)map, len);
        raw_frame_free(&f);
        free(data);
        close(mfd);
        close(pipefd[0]);
        close(pipefd[1]);
        close(s);
        close(p);
        stop();
}

/* Bad bulk payloads: refused with bad-bulk, the fds closed, the
 * connection goes on. */
typedef enum BadBulk {
        BULK_UNSEALED,
        BULK_FUTURE_WRITE_ONLY,
        BULK_SHORT,
        BULK_DISK_FILE,
        BULK_PIPE,
        BULK_SOCKET,
        BULK_OVER_MAX,
        _BULK_MAX,
} BadBulk;

static int make_bad_bulk(BadBulk kind, uint64_t *ret_len, int *ret_extra) {
        int fd = -1, sp[2];
        char path[64];

        *ret_len = 4096;
        *ret_extra = -1;
        switch (kind) {
        case BULK_UNSEALED:
                fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                cr_assert(fd >= 0 && ftruncate(fd, 4096) == 0);
                break;
        case BULK_FUTURE_WRITE_ONLY:
                fd = memfd_create("future", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                cr_assert(fd >= 0 && ftruncate(fd, 4096) == 0);
                cr_assert(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
                break;
        case BULK_SHORT:
                fd = memfd_new_sealed("short", "abc", 3);
                break;
        case BULK_DISK_FILE:
                snprintf(path, sizeof(path), "bulk-test-%d.tmp", (int)getpid());
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                cr_assert(fd >= 0 && ftruncate(fd, 4096) == 0);
                unlink(path);
                break;
        case BULK_PIPE:
                cr_assert(pipe2(sp, O_CLOEXEC) == 0);
                fd = sp[0];
                *ret_extra = sp[1];
                break;
        case BULK_SOCKET:
                cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
                fd = sp[0];
                *ret_extra = sp[1];
                break;
        case BULK_OVER_MAX:
                fd = memfd_new_sealed("big", "x", 1);
                *ret_len = WIRE_DEFAULT_MAX_BULK + 1;
                break;
        default:
                break;
        }
        cr_assert(fd >= 0);
        return fd;
}

Test(fds, bad_bulk_payloads_are_refused) {
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        unsigned k;

        raw_subscribe(s, 1, "bulk/#", NULL, 0);
        for (k = 0; k < _BULK_MAX; k++) {
                uint64_t len;
                int extra, fd = make_bad_bulk((BadBulk)k, &len, &extra);

                cr_log_info("bad bulk case %u", k);
                publish_fds(p, "bulk/bad", 1, NULL, 0, true, len, &fd, 1, 100 + k);
                raw_expect_error(p, WIRE_E_BULK, false);
                close(fd);
                if (extra >= 0)
                        close(extra);
        }
        /* Nothing was delivered, the publisher is still connected. */
        raw_sync(p);
        raw_publish(p, "bulk/ok", 1, "fine", 4);
        {
                RawFrame f;
                raw_expect(s, WIRE_MESSAGE, &f);
                cr_assert(eq(str, f.topic, "bulk/ok"));
                raw_frame_free(&f);
        }
        close(s);
        close(p);
        stop();
}

Test(fds, bulk_with_inline_payload_is_malformed) {
        int p = raw_client(&tb, "pub", NULL), mfd = memfd_new_sealed("m", "abcd", 4);

        publish_fds(p, "bulk", 1, "inline", 6, true, 4, &mfd, 1, 7);
        raw_expect_error(p, WIRE_E_MALFORMED, true);
        close(mfd);
        close(p);
        stop();
}

Test(fds, more_fds_than_the_per_message_limit) {
        int p = raw_client(&tb, "pub", NULL), fds[WIRE_DEFAULT_MAX_FDS + 1], i;

        for (i = 0; i < (int)ARRAY_SIZE(fds); i++)
                fds[i] = memfd_create("x", MFD_CLOEXEC);
        publish_fds(p, "many", 1, "x", 1, false, 0, fds, ARRAY_SIZE(fds), 8);
        raw_expect_error(p, WIRE_E_TOO_LARGE, true);
        for (i = 0; i < (int)ARRAY_SIZE(fds); i++)
                close(fds[i]);
        close(p);
        stop();
}

Test(fds, kernel_refuses_254_fds_in_one_sendmsg) {
        int p = raw_client(&tb, "pub", NULL), fds[254], i;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 254)];
        } ctrl;
        struct iovec iov = { "x", 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
                              .msg_controllen = sizeof(ctrl.buf) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

        for (i = 0; i < 254; i++)
                fds[i] = STDERR_FILENO;
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        cr_assert(eq(int, (int)sendmsg(p, &msg, MSG_NOSIGNAL), -1));
        cr_assert(eq(int, errno, EINVAL));
        /* Nothing reached the broker; the connection is fine. */
        raw_sync(p);
        close(p);
        stop();
}

Test(fds, frame_with_more_fds_than_arrived_then_surplus) {
        /* Declares 2, sends 1: the frame completes without its fds. */
        int p = raw_client(&tb, "pub", NULL), m = memfd_create("x", MFD_CLOEXEC);
        uint8_t frame[128];
        size_t n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 2, NULL, 0, "t", 1,
                                     "x", 1);

        raw_send_fds(p, frame, n, &m, 1);
        raw_expect_error(p, WIRE_E_FDS, true);
        close(m);
        close(p);

        /* Declares 1, sends 3: two left over at the frame boundary. */
        {
                int q = raw_client(&tb, "pub2", NULL), fds[3];
                fds[0] = fds[1] = fds[2] = memfd_create("y", MFD_CLOEXEC);
                n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 1, NULL, 0, "t", 1,
                                      "x", 1);
                raw_send_fds(q, frame, n, fds, 3);
                raw_expect_error(q, WIRE_E_FDS, true);
                close(fds[0]);
                close(q);
        }
        stop();
}

Test(fds, fds_arriving_with_the_first_half_of_a_frame) {
        /* Legal: the fds come with the first byte, the rest later. */
        int s = raw_client(&tb, "sub", NULL), p = raw_client(&tb, "pub", NULL);
        int m = memfd_create("half", MFD_CLOEXEC);
        uint8_t frame[128];
        size_t n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 1, NULL, 0,
                                     "half", 4, "payload", 7);
        RawFrame f;

        raw_subscribe(s, 1, "half", NULL, 0);
        raw_send_fds(p, frame, 10, &m, 1);
        usleep(50000);
        raw_write(p, frame + 10, n - 10);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(u32, f.h.n_fds, 1));
        cr_assert(same_file(f.fds[0], m));
        raw_frame_free(&f);
        close(m);
        close(s);
        close(p);
        stop();
}

Test(fds, client_killed_with_fds_in_flight) {
        int s = raw_client(&tb, "slow", NULL), i;

        raw_subscribe(s, 1, "inflight/#", NULL, 0);
        for (i = 0; i < 10; i++) {
                pid_t pid = fork();
                cr_assert(pid >= 0);
                if (pid == 0) {
                        harness_child_begin();
                        int p = raw_client(&tb, "doomed", NULL), m = memfd_new_sealed("d", "data", 4);
                        uint8_t frame[128];
                        int fds[2] = { m, STDERR_FILENO };
                        size_t n;
                        /* A complete message with fds, then half of another. */
                        publish_fds(p, "inflight/x", 1, NULL, 0, true, 4, fds, 2, 0);
                        n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 1, NULL,
                                              0, "inflight/y", 10, "zz", 2);
                        raw_send_fds(p, frame, n - 3, fds, 1);
                        kill(getpid(), SIGKILL);
                }
                waitpid(pid, NULL, 0);
        }
        /* The subscriber still holds references in its queue and socket. */
        close(s);
        stop();
}

Test(fds, subscriber_that_never_reads_while_fds_pile_up, .timeout = 120) {
        enum { N = 3000 };
        int slow = raw_client(&tb, "slow", NULL), good = raw_client(&tb, "good", NULL);
        int p = raw_client(&tb, "pub", NULL), m = memfd_create("pile", MFD_CLOEXEC), i, peak = 0;

        raw_subscribe(slow, 1, "pile", NULL, 0);
        raw_subscribe(good, 1, "pile", NULL, 0);
        for (i = 0; i < N; i++) {
                RawFrame f;
                int n;
                publish_fds(p, "pile", 1, "x", 1, false, 0, &m, 1, 0);
                raw_expect(good, WIRE_MESSAGE, &f);
                cr_assert(same_file(f.fds[0], m));
                raw_frame_free(&f);
                if (i % 100 == 0) {
                        n = tb_fd_count(&tb);
                        if (n > peak)
                                peak = n;
                }
        }
        /* The slow one's queue stops at its fd limit (256); the rest of its
         * deliveries are dropped and counted. */
        cr_assert(lt(int, peak, base_fds + 256 + 64), "broker fd count peaked at %d", peak);
        cr_assert(gt(i64, tb_status_number(&tb, "drops"), 0));
        cr_assert(le(i64, tb_status_number(&tb, "fds_held"), 256 + 16));
        close(slow);
        close(good);
        close(p);
        close(m);
        stop();
}

Test(fds_limits, configured_fd_and_bulk_limits, .fini = cleanup) {
        static const char *const args[] = { "--max-fds", "2", "--max-bulk-size", "1000", NULL };
        int p, fds[3], m;
        RawFrame f;
        WireWelcome w;
        uint8_t meta[WIRE_META_HELLO] = { 0 };

        tb_start(&tb, args);
        /* WELCOME announces them. */
        p = raw_connect(&tb);
        raw_send(p, WIRE_HELLO, 0, 0, 1, meta, sizeof(meta), NULL, "limits", 6);
        raw_expect(p, WIRE_WELCOME, &f);
        cr_assert(wire_welcome_decode(f.meta, &w));
        cr_assert(eq(u32, w.max_fds, 2));
        cr_assert(eq(u64, w.max_bulk_size, 1000));
        raw_frame_free(&f);

        m = memfd_new_sealed("big", "0123456789", 10);
        fds[0] = fds[1] = fds[2] = m;
        /* A bulk payload over the maximum is refused, the connection goes on. */
        publish_fds(p, "t", 1, NULL, 0, true, 4096, &m, 1, 1);
        raw_expect_error(p, WIRE_E_BULK, false);
        /* Three fds where two are allowed: the header is refused. */
        publish_fds(p, "t", 1, "x", 1, false, 0, fds, 3, 2);
        raw_expect_error(p, WIRE_E_TOO_LARGE, true);
        close(m);
        close(p);
        tb_stop(&tb);
}
