/* SPDX-License-Identifier: MIT */
/*
 * The client library's receive path (client/client.c: frame reassembly,
 * the fd queue, MESSAGE/REQUEST/REPLY/ERROR handling, bulk memfd checks and
 * mapping, dispatch to subscriptions) on arbitrary bytes from the broker.
 * Those functions are internal to libipcd-client and need a connected
 * client, so the harness plays the broker: a thread answers the client's
 * HELLO with a WELCOME and its SUBSCRIBEs with ACKs, and sends the input.
 *
 * Input: the first byte's low six bits are a number of fds (assorted
 * kinds, the first a sealed memfd) sent with the input's first byte; its
 * top two bits say when the input comes: 0 and 1 after the client
 * subscribed (an ordinary subscription, a queue group member and a
 * responder), 2 instead of the WELCOME, 3 right after the WELCOME, before
 * the first subscription's ACK (the only one: then the fake broker
 * half-closes, lest the client wait for an ACK the input swallowed). The
 * client processes until the connection ends (the fake broker half-closes
 * after the input); the handlers touch every
 * part of what they get and reply to requests. Then everything is freed:
 * no fd and no memory may be left.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ipcd/ipcd-client.h>

#include "fuzz.h"
#include "util.h"
#include "wire.h"

#define N_SUBS 3

static char socket_path[128];
static int listen_fd = -1;
static int templates[4] = { -1, -1, -1, -1 };

typedef struct Fake {
        pthread_t thread;
        const uint8_t *data;
        size_t len;
        size_t n_fds;
        unsigned mode;
} Fake;

static int memfd_with(bool sealed) {
        int fd = memfd_create("ipcd-fuzz-client", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        FUZZ_CHECK(fd >= 0 && write(fd, "0123456789abcdef0123456789abcdef", 32) == 32, "memfd: %s",
                   strerror(errno));
        if (sealed)
                FUZZ_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0,
                           "seal: %s", strerror(errno));
        return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int p[2];

        (void)argc;
        (void)argv;
        signal(SIGPIPE, SIG_IGN);
        snprintf(socket_path, sizeof(socket_path), "%s/client.sock", fuzz_tmpdir());
        memcpy(sa.sun_path, socket_path, strlen(socket_path));
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FUZZ_CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                           listen(listen_fd, 4) == 0,
                   "cannot listen on %s: %s", socket_path, strerror(errno));
        templates[0] = memfd_with(true);
        templates[1] = memfd_with(false);
        templates[2] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(templates[2] >= 0 && pipe2(p, O_CLOEXEC) == 0, "open: %s", strerror(errno));
        templates[3] = p[0]; /* the write end stays open: reads would block, never end */
        return 0;
}

static void send_all(int fd, const uint8_t *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 64)];
        } ctrl;
        size_t off = 0;

        while (off < len) {
                struct iovec iov = { (void *)(buf + off), len - off };
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n;

                if (off == 0 && n_fds > 0) {
                        struct cmsghdr *cm;
                        memset(&ctrl, 0, sizeof(ctrl));
                        msg.msg_control = ctrl.buf;
                        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        cm = CMSG_FIRSTHDR(&msg);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
                }
                n = sendmsg(fd, &msg, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return; /* the client is gone */
                off += (size_t)n;
        }
}

static void send_input(Fake *f, int conn) {
        int fds[64];
        size_t i;

        for (i = 0; i < f->n_fds; i++) {
                fds[i] = fcntl(templates[i % 4], F_DUPFD_CLOEXEC, 3);
                FUZZ_CHECK(fds[i] >= 0, "dup: %s", strerror(errno));
        }
        send_all(conn, f->data, f->len, fds, f->len > 0 ? f->n_fds : 0);
        for (i = 0; i < f->n_fds; i++)
                close(fds[i]);
}

/* The broker's side: answers the handshake and the subscriptions, sends
 * the input where the mode says, half-closes, then reads until the client
 * is gone. */
static void *fake_broker(void *userdata) {
        Fake *f = userdata;
        uint8_t buf[65536], out[256];
        size_t have = 0;
        unsigned n_subs = 0;
        bool shut = false;
        int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

        FUZZ_CHECK(conn >= 0, "accept: %s", strerror(errno));
        for (;;) {
                ssize_t n = read(conn, buf + have, sizeof(buf) - have);
                size_t off = 0;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                have += (size_t)n;
                while (have - off >= WIRE_HEADER_SIZE) {
                        WireHeader h;
                        const char *why;
                        size_t k = 0;

                        FUZZ_CHECK(wire_header_decode(buf + off, NULL, &h, &why) == WIRE_E_OK,
                                   "the client sent an invalid frame: %s", why);
                        if (h.size > sizeof(buf))
                                goto done; /* more than this broker reads: it hangs up */
                        if (have - off < h.size)
                                break;
                        if (h.kind == WIRE_HELLO && !shut) {
                                if (f->mode == 2) {
                                        send_input(f, conn);
                                        shutdown(conn, SHUT_WR);
                                        shut = true;
                                } else {
                                        uint8_t meta[WIRE_META_WELCOME];
                                        WireWelcome w = { .client_id = 7, .max_payload = 1u << 20,
                                                          .max_topic_len = 1024, .max_fds = 16,
                                                          .max_subscriptions = 1024, .max_types_per_sub = 64,
                                                          .max_bulk_size = 1u << 20, .out_queue_bytes = 1u << 23 };
                                        wire_welcome_encode(meta, &w);
                                        k = wire_frame_encode(out, sizeof(out), WIRE_WELCOME, 0, 0, h.corr, 0,
                                                              meta, sizeof(meta), NULL, 0, "ipcd fuzz", 9);
                                        send_all(conn, out, k, NULL, 0);
                                        if (f->mode == 3)
                                                send_input(f, conn);
                                }
                        } else if (h.kind == WIRE_SUBSCRIBE && !shut) {
                                k = wire_frame_encode(out, sizeof(out), WIRE_ACK, 0, 0, h.corr, 0, NULL, 0,
                                                      NULL, 0, NULL, 0);
                                send_all(conn, out, k, NULL, 0);
                                /* Mode 3: the input may have left a frame open
                                 * that the ACK completes: no more waiting. */
                                if (++n_subs == N_SUBS || f->mode == 3) {
                                        if (f->mode != 3)
                                                send_input(f, conn);
                                        shutdown(conn, SHUT_WR);
                                        shut = true;
                                }
                        }
                        off += h.size;
                }
                memmove(buf, buf + off, have - off);
                have -= off;
        }
done:
        close(conn);
        return NULL;
}

static unsigned n_handled;

static void touch(const void *data, size_t size) {
        volatile uint8_t sum = 0;
        size_t i;
        for (i = 0; i < size; i++)
                sum ^= ((const uint8_t *)data)[i];
        (void)sum;
}

/* What an application does with a message: look at all of it, keep an fd,
 * keep the message a while. */
static void use_msg(ipcd_msg *m) {
        const char *topic = ipcd_msg_get_topic(m);
        size_t size = 0, i, n;
        const void *data = ipcd_msg_get_data(m, &size);
        ipcd_msg *kept;

        FUZZ_CHECK(topic, "a message without a topic");
        touch(topic, strlen(topic) + 1);
        FUZZ_CHECK(size == 0 || data, "%zu bytes of data at NULL", size);
        touch(data, size);
        (void)ipcd_msg_get_type(m);
        (void)ipcd_msg_get_seq(m);
        (void)ipcd_msg_get_sender_pid(m);
        (void)ipcd_msg_get_subscription(m);
        (void)ipcd_msg_get_flags(m);
        n = ipcd_msg_get_n_fds(m);
        for (i = 0; i < n; i++)
                (void)ipcd_msg_get_fd(m, i);
        if (n > 0) {
                int fd = ipcd_msg_take_fd(m, n - 1);
                if (fd >= 0)
                        close(fd);
                FUZZ_CHECK(ipcd_msg_take_fd(m, n - 1) < 0, "an fd taken twice");
        }
        kept = ipcd_msg_ref(m);
        ipcd_msg_unref(kept);
        n_handled++;
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "# message on '%s', %zu bytes, %zu fds\n", topic, size, n);
}

static void on_msg(ipcd_client *c, ipcd_msg *m, void *userdata) {
        (void)c;
        (void)userdata;
        use_msg(m);
}

static void on_request(ipcd_client *c, ipcd_msg *m, void *userdata) {
        (void)c;
        (void)userdata;
        use_msg(m);
        FUZZ_CHECK(ipcd_msg_is_request(m), "a request that is none");
        (void)ipcd_msg_reply(m, 1, "ok", 2, NULL, 0);
        (void)ipcd_msg_reply(m, 1, "twice", 5, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Fake f = { 0 };
        ipcd_client *c = NULL;
        size_t fds_before;
        int r, i;

        if (size < 1)
                return 0;
        f.n_fds = data[0] & 0x3f;
        f.mode = data[0] >> 6;
        f.data = data + 1;
        f.len = size - 1;

        n_handled = 0;
        fds_before = fuzz_count_fds();
        FUZZ_CHECK(pthread_create(&f.thread, NULL, fake_broker, &f) == 0, "pthread_create");
        r = ipcd_client_new(&c, socket_path, "fuzz");
        if (r == 0) {
                ipcd_client_set_timeout(c, 1000);
                r = ipcd_client_subscribe(c, "#", NULL, 0, on_msg, NULL, NULL);
                if (r == 0)
                        r = ipcd_client_subscribe_full(c, "a/+", NULL, 0, "g", 0, on_msg, NULL, NULL);
                if (r == 0)
                        r = ipcd_client_serve(c, "svc/#", NULL, 0, on_request, NULL, NULL);
                /* Until the fake broker's half-close ends it. */
                for (i = 0; i < 100; i++)
                        if (ipcd_client_wait(c, 1000) < 0)
                                break;
                FUZZ_CHECK(i < 100, "the client did not see the end of the connection");
                if (getenv("FUZZ_VERBOSE"))
                        fprintf(stderr, "# %u messages handled; the end: %s\n", n_handled,
                                ipcd_client_last_error(c));
                ipcd_client_set_timeout(c, 0);
                c = ipcd_client_unref(c);
        }
        pthread_join(f.thread, NULL);
        FUZZ_CHECK(fuzz_count_fds() == fds_before, "%zu fds open before, %zu after", fds_before,
                   fuzz_count_fds());
        return 0;
}
