/* SPDX-License-Identifier: MIT */
/*
 * File descriptors and sealed-memfd bulk payloads through a real ipcd, as an
 * application and a shell script see them: libipcd-client's fd and bulk API
 * and ipcctl's pub --file/--fd and sub --json/--save.
 *
 * Every test ends by checking that this process holds exactly the fds it
 * held before (each fd the library received ends up owned by a message,
 * taken by the application, or closed) and that the broker is back to its
 * own baseline.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ipcd/ipcd-client.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static TestBroker tb;
static int fd_base;        /* this process's open fds after the broker started */
static int broker_fd_base; /* the broker's, with no client */

/* Open fds of this process (the directory stream's own fd included, the
 * same every time). */
static int fd_count(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        cr_assert(d != NULL);
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* Lines of /proc/self/maps that map a memfd made by the library. */
static int bulk_mappings(void) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "re");
        int n = 0;

        cr_assert(f != NULL);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "memfd:ipcd-bulk"))
                        n++;
        fclose(f);
        return n;
}

static void start(void) {
        struct rlimit rl;

        /* Hundreds of fds in flight: more than a 1024 soft limit allows. */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        tb_start(&tb, NULL);
        broker_fd_base = tb_fd_baseline(&tb);
        fd_base = fd_count();
}

/* Criterion ignores failures in .fini: the checks are in finish(), called at
 * the end of each test; this only cleans up after a test that failed. */
static void cleanup(void) {
        tb_kill(&tb);
}

/* The end of every test: no fd leaked here or in the broker. */
static void finish(void) {
        cr_assert(eq(int, fd_count(), fd_base), "this process leaked file descriptors");
        cr_assert(eq(int, tb_wait_fd_count(&tb, broker_fd_base), broker_fd_base),
                  "the broker kept file descriptors");
        tb_stop(&tb);
}

static ipcd_client *client(const char *name) {
        ipcd_client *c = NULL;
        int r = ipcd_client_new(&c, tb.sock, name);
        cr_assert(eq(int, r, 0), "ipcd_client_new: %s", strerror(-r));
        return c;
}

/* Processes until @cond holds or 10 s pass. */
#define WAIT_FOR(c, cond)                                                      \
        do {                                                                   \
                int _i;                                                        \
                for (_i = 0; _i < 200 && !(cond); _i++)                        \
                        cr_assert(ipcd_client_wait((c), 50) >= 0, "%s",        \
                                  ipcd_client_last_error(c));                  \
                cr_assert(cond, "timed out waiting for " #cond);               \
        } while (0)

/* (The new-style cr_assert cannot take the wait macros directly.) */
static bool exited_normally(int status) {
        return WIFEXITED(status);
}

/* A deterministic byte pattern and a checksum over it. */
static void fill(void *buf, size_t len, uint64_t seed) {
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, *w = buf;
        size_t i;

        for (i = 0; i < len / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w[i] = x;
        }
        for (i = len / 8 * 8; i < len; i++)
                ((uint8_t *)buf)[i] = (uint8_t)(i * 31 + seed);
}

static uint64_t checksum(const void *buf, size_t len) {
        const uint8_t *p = buf;
        uint64_t h = 0xcbf29ce484222325ull, w;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                memcpy(&w, p + i, 8);
                h = (h ^ w) * 0x100000001b3ull;
        }
        for (; i < len; i++)
                h = (h ^ p[i]) * 0x100000001b3ull;
        return h ^ len;
}

#define MAX_TAKE 16

/* What a handler saw. */
typedef struct Got {
        int n;
        unsigned flags;
        size_t size;
        uint64_t sum;
        size_t n_fds;
        int fds[MAX_TAKE]; /* taken, when take is set */
        bool take;
        char data[64];
        ipcd_msg *kept; /* with keep */
        bool keep;
} Got;

static void on_msg(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Got *g = userdata;
        const void *data = ipcd_msg_get_data(m, &g->size);
        size_t i;

        g->n++;
        g->flags = ipcd_msg_get_flags(m);
        g->sum = checksum(data, g->size);
        snprintf(g->data, sizeof(g->data), "%.*s", (int)(g->size < 63 ? g->size : 63),
                 (const char *)data);
        g->n_fds = ipcd_msg_get_n_fds(m);
        for (i = 0; g->take && i < g->n_fds && i < MAX_TAKE; i++) {
                g->fds[i] = ipcd_msg_take_fd(m, i);
                cr_assert(ge(int, g->fds[i], 0));
                cr_assert(eq(int, ipcd_msg_get_fd(m, i), -1));
                cr_assert(eq(int, ipcd_msg_take_fd(m, i), -1));
        }
        if (g->keep)
                g->kept = ipcd_msg_ref(m);
}

static void on_count(ipcd_client *c, ipcd_msg *m, void *userdata) {
        (*(int *)userdata)++;
}

static bool same_file(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

/* An fd number that is not open, and that the library's own dups (lowest
 * free numbers) will not take. */
static int closed_fd(void) {
        int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 900);

        cr_assert(ge(int, fd, 900));
        close(fd);
        return fd;
}

TestSuite(fds, .init = start, .fini = cleanup, .timeout = 120);

Test(fds, pipe_passed_and_used) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Got got = { .take = true };
        struct pollfd p;
        char buf[16];
        int pp[2];

        cr_assert(eq(int, ipcd_client_subscribe(sub, "pipe", NULL, 0, on_msg, &got, NULL), 0));
        cr_assert(eq(int, pipe2(pp, O_CLOEXEC), 0));
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "pipe", 1, "w", 1, &pp[1], 1, 0), 0));
        /* Ours: the library sent a duplicate. */
        close(pp[1]);
        WAIT_FOR(sub, got.n == 1);
        cr_assert(eq(sz, got.n_fds, 1));
        cr_assert(eq(str, got.data, "w"));
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), 0));
        cr_assert(eq(int, (int)write(got.fds[0], "hello", 5), 5));
        close(got.fds[0]);
        cr_assert(eq(int, (int)read(pp[0], buf, sizeof(buf)), 5));
        cr_assert(eq(int, memcmp(buf, "hello", 5), 0));
        /* End of file: every copy of the write end is closed, the
         * library's, the broker's and the receiver's. */
        p = (struct pollfd){ .fd = pp[0], .events = POLLIN };
        cr_assert(eq(int, poll(&p, 1, 5000), 1));
        cr_assert(eq(int, (int)read(pp[0], buf, sizeof(buf)), 0));
        close(pp[0]);
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

Test(fds, several_fds_keep_their_order) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Got got = { .take = true };
        int fds[5], sp[2], pp[2];
        size_t i;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "order", NULL, 0, on_msg, &got, NULL), 0));
        cr_assert(eq(int, pipe2(pp, O_CLOEXEC), 0));
        cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0));
        fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        fds[1] = pp[0];
        fds[2] = sp[0];
        fds[3] = eventfd(3, EFD_CLOEXEC);
        fds[4] = memfd_create("attached", MFD_CLOEXEC);
        for (i = 0; i < 5; i++)
                cr_assert(ge(int, fds[i], 0));
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "order", 2, "five", 4, fds, 5, IPCD_PUBLISH_ACK), 0));
        WAIT_FOR(sub, got.n == 1);
        cr_assert(eq(sz, got.n_fds, 5));
        for (i = 0; i < 5; i++) {
                cr_assert(same_file(got.fds[i], fds[i]), "fd %zu is not the one sent", i);
                cr_assert(ne(int, got.fds[i], fds[i]));
                cr_assert(fcntl(got.fds[i], F_GETFD) & FD_CLOEXEC, "received fds are close-on-exec");
                close(got.fds[i]);
                close(fds[i]);
        }
        close(pp[1]);
        close(sp[1]);
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

/* Many frames with fds leave in a few sendmsg() calls (at most 253 fds and
 * 16 KiB each) and arrive in order, each with its own fd. */
typedef struct Batch {
        int n;
        bool ok;
        char why[128];
} Batch;

static void on_batch(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Batch *b = userdata;
        size_t size;
        const char *data = ipcd_msg_get_data(m, &size);
        uint64_t v = 0;
        int fd = ipcd_msg_get_fd(m, 0);
        char want[16];

        snprintf(want, sizeof(want), "%d", b->n);
        if (b->ok && (ipcd_msg_get_n_fds(m) != 1 || fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v) ||
                      v != (uint64_t)b->n + 1 || size != strlen(want) ||
                      memcmp(data, want, size) != 0)) {
                b->ok = false;
                snprintf(b->why, sizeof(b->why), "message %d: '%.*s' with %zu fds, counter %llu",
                         b->n, (int)size, data, ipcd_msg_get_n_fds(m), (unsigned long long)v);
        }
        b->n++;
}

Test(fds, hundreds_of_messages_with_fds_batched) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Batch b = { .ok = true };
        const int count = 300;
        int i;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "batch", NULL, 0, on_batch, &b, NULL), 0));
        for (i = 0; i < count; i++) {
                char text[16];
                int len = snprintf(text, sizeof(text), "%d", i);
                /* An eventfd whose counter says which message it came with. */
                int efd = eventfd((unsigned)i + 1, EFD_CLOEXEC | EFD_NONBLOCK);

                cr_assert(ge(int, efd, 0));
                cr_assert(eq(int, ipcd_client_publish_fds(pub, "batch", 1, text, (size_t)len, &efd, 1,
                                                          IPCD_PUBLISH_MORE), 0),
                          "%s", ipcd_client_last_error(pub));
                close(efd);
        }
        cr_assert(eq(int, ipcd_client_flush(pub), 0));
        WAIT_FOR(sub, b.n == count);
        cr_assert(b.ok, "%s", b.why);
        cr_assert(eq(int, ipcd_client_sync(pub), 0), "%s", ipcd_client_last_error(pub));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

/*
 * Frames of every size, two in three with an fd, while the subscriber
 * reads: a sendmsg() then carries the fds of several frames, and a reader
 * whose buffer ends inside that piece receives all of its fds at once,
 * ahead of the later frames' first bytes. That is legal (the receiver may
 * only call fds surplus once the socket is drained); a broker that judges
 * after every read disconnects this publisher.
 */
Test(fds, mixed_frames_with_fds_under_load) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        static char payload[4000];
        const int count = 5000;
        int n = 0, i, r;
        unsigned seed = 1;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "load", NULL, 0, on_count, &n, NULL), 0));
        for (i = 0; i < count; i++) {
                int efd = eventfd(0, EFD_CLOEXEC);
                size_t len;

                seed = seed * 1103515245u + 12345u;
                len = (seed >> 8) % sizeof(payload);
                r = ipcd_client_publish_fds(pub, "load", 1, payload, len, &efd, i % 3 ? 1 : 0,
                                            IPCD_PUBLISH_MORE);
                close(efd);
                cr_assert(eq(int, r, 0), "publish %d: %s", i, ipcd_client_last_error(pub));
                if (i % 200 == 199) {
                        /* Batches no larger than the broker's fd queue
                         * toward one subscriber (256): nothing is dropped. */
                        cr_assert(eq(int, ipcd_client_sync(pub), 0), "after %d: %s", i,
                                  ipcd_client_last_error(pub));
                        WAIT_FOR(sub, n == i + 1);
                }
        }
        cr_assert(eq(int, ipcd_client_sync(pub), 0), "%s", ipcd_client_last_error(pub));
        WAIT_FOR(sub, n == count);
        cr_assert(eq(i64, tb_status_number(&tb, "drops"), 0));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

/* Publishes @size bytes with ipcd_client_publish() (the library picks the
 * transport) and checks what arrives. */
static void round_trip(size_t size, bool want_bulk) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Got got = { 0 };
        uint64_t sum;
        void *buf;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "bulk/#", NULL, 0, on_msg, &got, NULL), 0));
        buf = malloc(size ? size : 1);
        cr_assert(buf != NULL);
        fill(buf, size, size);
        sum = checksum(buf, size);
        cr_assert(eq(int, ipcd_client_publish(pub, "bulk/x", 9, buf, size, IPCD_PUBLISH_ACK), 0),
                  "%s", ipcd_client_last_error(pub));
        free(buf);
        WAIT_FOR(sub, got.n == 1);
        cr_assert(eq(sz, got.size, size));
        cr_assert(eq(u64, got.sum, sum), "payload differs");
        cr_assert(eq(int, !!(got.flags & IPCD_MSG_BULK), want_bulk));
        cr_assert(eq(sz, got.n_fds, 0));
        /* Unmapped with the message. */
        cr_assert(eq(int, bulk_mappings(), 0));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

Test(fds, bulk_1_mib) {
        round_trip(1u << 20, true);
}

Test(fds, bulk_16_mib) {
        round_trip(16u << 20, true);
}

Test(fds, bulk_256_mib, .timeout = 240) {
        round_trip(256u << 20, true);
}

Test(fds, small_payload_stays_inline) {
        round_trip(60000, false);
}

Test(fds, above_the_threshold_goes_bulk) {
        round_trip(65537, true);
}

Test(fds, bulk_threshold) {
        ipcd_client *c = client("threshold");
        static char big[100 << 10], huge[2 << 20];
        Got got = { 0 };

        cr_assert(eq(int, ipcd_client_set_bulk_threshold(NULL, 1), -EINVAL));
        cr_assert(eq(int, ipcd_client_subscribe(c, "t", NULL, 0, on_msg, &got, NULL), 0));
        /* 0: every non-empty payload goes as a memfd. */
        cr_assert(eq(int, ipcd_client_set_bulk_threshold(c, 0), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "t", 1, "ab", 2, 0), 0));
        WAIT_FOR(c, got.n == 1);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), IPCD_MSG_BULK));
        cr_assert(eq(str, got.data, "ab"));
        cr_assert(eq(int, ipcd_client_publish(c, "t", 1, NULL, 0, 0), 0));
        WAIT_FOR(c, got.n == 2);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), 0), "empty payloads go inline");
        cr_assert(eq(sz, got.size, 0));
        /* SIZE_MAX: inline while it fits, a memfd beyond max_payload. */
        cr_assert(eq(int, ipcd_client_set_bulk_threshold(c, SIZE_MAX), 0));
        cr_assert(eq(int, ipcd_client_publish(c, "t", 1, big, sizeof(big), 0), 0));
        WAIT_FOR(c, got.n == 3);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), 0));
        cr_assert(eq(sz, got.size, sizeof(big)));
        cr_assert(eq(int, ipcd_client_publish(c, "t", 1, huge, sizeof(huge), 0), 0));
        WAIT_FOR(c, got.n == 4);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), IPCD_MSG_BULK));
        cr_assert(eq(sz, got.size, sizeof(huge)));
        ipcd_client_unref(c);
        finish();
}

static int new_memfd(const char *name, size_t size, uint64_t seed, unsigned flags) {
        int fd = memfd_create(name, MFD_CLOEXEC | flags);
        void *buf;

        cr_assert(ge(int, fd, 0));
        if (size > 0) {
                buf = malloc(size);
                cr_assert(buf != NULL);
                fill(buf, size, seed);
                cr_assert(eq(int, (int)write(fd, buf, size), (int)size));
                free(buf);
        }
        return fd;
}

static int seals_of(int fd) {
        return fcntl(fd, F_GET_SEALS);
}

#define ALL_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

Test(fds, publish_memfd_built_by_the_application) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        const size_t size = 3u << 20, sent = size - 5;
        Got got = { .take = true };
        uint64_t sum, v = 0;
        void *map;
        int memfd, efd;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "app", NULL, 0, on_msg, &got, NULL), 0));
        memfd = new_memfd("app-built", size, 7, MFD_ALLOW_SEALING);
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, memfd, 0);
        cr_assert(map != MAP_FAILED);
        sum = checksum(map, sent);
        munmap(map, size);
        efd = eventfd(42, EFD_CLOEXEC);
        /* Not sealed yet: the library seals it. Only a prefix is sent. */
        cr_assert(eq(int, seals_of(memfd), 0));
        cr_assert(eq(int, ipcd_client_publish_memfd(pub, "app", 3, memfd, sent, &efd, 1, 0), 0),
                  "%s", ipcd_client_last_error(pub));
        cr_assert(eq(int, seals_of(memfd) & ALL_SEALS, ALL_SEALS));
        close(memfd);
        close(efd);
        WAIT_FOR(sub, got.n == 1);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), IPCD_MSG_BULK));
        cr_assert(eq(sz, got.size, sent));
        cr_assert(eq(u64, got.sum, sum));
        /* The memfd is not one of the attached fds. */
        cr_assert(eq(sz, got.n_fds, 1));
        cr_assert(eq(int, (int)read(got.fds[0], &v, sizeof(v)), 8));
        cr_assert(eq(u64, v, 42));
        close(got.fds[0]);

        /* An empty memfd is an empty bulk payload. */
        memfd = new_memfd("empty", 0, 0, MFD_ALLOW_SEALING);
        got.take = false;
        cr_assert(eq(int, ipcd_client_publish_memfd(pub, "app", 3, memfd, 0, NULL, 0, IPCD_PUBLISH_ACK), 0),
                  "%s", ipcd_client_last_error(pub));
        close(memfd);
        WAIT_FOR(sub, got.n == 2);
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), IPCD_MSG_BULK));
        cr_assert(eq(sz, got.size, 0));
        cr_assert(eq(str, got.data, ""));
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

Test(fds, memfds_that_cannot_go) {
        ipcd_client *c = client("refusals");
        char path[160];
        void *map;
        int fd, pp[2], r;

        /* A writable mapping prevents sealing: refused, and left alone. */
        fd = new_memfd("mapped", 4096, 1, MFD_ALLOW_SEALING);
        map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert(map != MAP_FAILED);
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, 4096, NULL, 0, 0), -EBUSY));
        cr_assert(strstr(ipcd_client_last_error(c), "writable mapping") != NULL, "%s",
                  ipcd_client_last_error(c));
        cr_assert(eq(int, seals_of(fd), 0));
        munmap(map, 4096);
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, 4096, NULL, 0, IPCD_PUBLISH_ACK), 0));
        close(fd);

        /* Not sealable. */
        fd = new_memfd("no-sealing", 4096, 1, 0);
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, 4096, NULL, 0, 0), -EPERM));
        close(fd);

        /* Shorter than declared: refused, not sealed. */
        fd = new_memfd("short", 100, 1, MFD_ALLOW_SEALING);
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, 200, NULL, 0, 0), -EINVAL));
        cr_assert(eq(int, seals_of(fd), 0));
        /* Over the broker's bulk limit (1 GiB). */
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, (1ull << 30) + 1, NULL, 0, 0),
                     -EMSGSIZE));
        close(fd);

        /* Only F_SEAL_FUTURE_WRITE: not enough, so the library seals it. */
        fd = new_memfd("future-write", 4096, 1, MFD_ALLOW_SEALING);
        cr_assert(eq(int, fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0));
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, fd, 4096, NULL, 0, IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(int, seals_of(fd) & ALL_SEALS, ALL_SEALS));
        close(fd);

        /* Not memfds at all. */
        snprintf(path, sizeof(path), "%s/on-disk", tb.dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert(ge(int, fd, 0));
        cr_assert(eq(int, (int)write(fd, "data", 4), 4));
        r = ipcd_client_publish_memfd(c, "r", 1, fd, 4, NULL, 0, 0);
        /* -EPERM only where the directory is on a tmpfs (whose plain files
         * cannot be sealed). */
        cr_assert(r == -EINVAL || r == -EPERM, "%d", r);
        close(fd);
        unlink(path);
        cr_assert(eq(int, pipe2(pp, O_CLOEXEC), 0));
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, pp[0], 0, NULL, 0, 0), -EINVAL));
        close(pp[0]);
        close(pp[1]);
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, -1, 0, NULL, 0, 0), -EINVAL));
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "r", 1, closed_fd(), 0, NULL, 0, 0), -EBADF));

        cr_assert(eq(int, ipcd_client_sync(c), 0), "%s", ipcd_client_last_error(c));
        ipcd_client_unref(c);
        finish();
}

Test(fds, fd_limits) {
        ipcd_client *c = client("limits");
        static char huge[2 << 20];
        int fds[17], bad[2], i;
        void *reserved;

        for (i = 0; i < 17; i++)
                fds[i] = eventfd(0, EFD_CLOEXEC);
        /* max_fds is 16 by default. */
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, "x", 1, fds, 17, 0), -E2BIG));
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, "x", 1, fds, 16, 0), 0));
        /* A bulk payload needs one of them. */
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, huge, sizeof(huge), fds, 16, 0), -E2BIG));
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, huge, sizeof(huge), fds, 15, 0), 0));
        cr_assert(eq(int, ipcd_client_publish_memfd(c, "l", 1, fds[0], 0, fds, 16, 0), -E2BIG));
        /* Bad fds. */
        bad[0] = fds[0];
        bad[1] = -1;
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, "x", 1, bad, 2, 0), -EINVAL));
        bad[1] = closed_fd();
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, "x", 1, bad, 2, 0), -EBADF));
        cr_assert(eq(int, ipcd_client_publish_fds(c, "l", 1, "x", 1, NULL, 1, 0), -EINVAL));
        /* Over the bulk limit: refused before the data is touched. */
        reserved = mmap(NULL, (2ul << 30) + 4096, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        cr_assert(reserved != MAP_FAILED);
        cr_assert(eq(int, ipcd_client_publish(c, "l", 1, reserved, 2ul << 30, 0), -EMSGSIZE));
        munmap(reserved, (2ul << 30) + 4096);
        for (i = 0; i < 17; i++)
                close(fds[i]);
        cr_assert(eq(int, ipcd_client_sync(c), 0), "%s", ipcd_client_last_error(c));
        ipcd_client_unref(c);
        finish();
}

Test(fds, taken_fds_stay_and_the_rest_is_closed) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Got got = { 0 }, other = { 0 };
        int fds[3], i, base;
        uint32_t id;
        size_t size;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "own", NULL, 0, on_msg, &got, NULL), 0));
        for (i = 0; i < 3; i++)
                fds[i] = eventfd((unsigned)i, EFD_CLOEXEC);
        base = fd_count();

        /* Nothing taken: all three are closed after the handler. */
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "a", 1, fds, 3, IPCD_PUBLISH_ACK), 0));
        WAIT_FOR(sub, got.n == 1);
        cr_assert(eq(sz, got.n_fds, 3));
        cr_assert(eq(int, fd_count(), base));

        /* All taken: they stay, the application closes them. */
        got.take = true;
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "b", 1, fds, 3, IPCD_PUBLISH_ACK), 0));
        WAIT_FOR(sub, got.n == 2);
        cr_assert(eq(int, fd_count(), base + 3));
        for (i = 0; i < 3; i++)
                close(got.fds[i]);
        cr_assert(eq(int, fd_count(), base));

        /* A kept message keeps its fds and its mapping until unref. */
        got.take = false;
        got.keep = true;
        cr_assert(eq(int, ipcd_client_set_bulk_threshold(pub, 0), 0));
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "kept", 4, fds, 2, IPCD_PUBLISH_ACK), 0));
        base++; /* from now on the publisher keeps its last bulk memfd */
        WAIT_FOR(sub, got.n == 3);
        cr_assert(got.kept != NULL);
        cr_assert(eq(int, fd_count(), base + 2));
        cr_assert(eq(int, bulk_mappings(), 1));
        cr_assert(eq(int, memcmp(ipcd_msg_get_data(got.kept, &size), "kept", 4), 0));
        cr_assert(eq(sz, size, 4));
        cr_assert(same_file(ipcd_msg_get_fd(got.kept, 1), fds[1]));
        ipcd_msg_unref(got.kept);
        got.kept = NULL;
        got.keep = false;
        cr_assert(eq(int, fd_count(), base));
        cr_assert(eq(int, bulk_mappings(), 0));

        /* Buffered by a blocking call: fds kept until it is dispatched. */
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "queued", 6, fds, 3, IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(int, ipcd_client_sync(sub), 0));
        cr_assert(eq(int, got.n, 3), "a blocking call dispatched");
        cr_assert(eq(int, fd_count(), base + 3), "the buffered message owns its fds");
        cr_assert(eq(int, bulk_mappings(), 1));
        got.take = true;
        cr_assert(eq(int, ipcd_client_process(sub), 1));
        cr_assert(eq(str, got.data, "queued"));
        cr_assert(eq(int, (int)(got.flags & IPCD_MSG_BULK), IPCD_MSG_BULK));
        for (i = 0; i < 3; i++) {
                cr_assert(same_file(got.fds[i], fds[i]));
                close(got.fds[i]);
        }
        cr_assert(eq(int, fd_count(), base));
        cr_assert(eq(int, bulk_mappings(), 0));

        /* Two matching subscriptions share the fds: taken through the
         * first, gone for the second. */
        cr_assert(eq(int, ipcd_client_subscribe(sub, "own/#", NULL, 0, on_msg, &other, &id), 0));
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "c", 1, fds, 1, IPCD_PUBLISH_ACK), 0));
        WAIT_FOR(sub, other.n == 1);
        cr_assert(eq(sz, other.n_fds, 1));
        cr_assert(eq(int, fd_count(), base + 1));
        close(got.fds[0]);
        cr_assert(eq(int, ipcd_client_unsubscribe(sub, id), 0));

        /* Unsent dups and unread deliveries go with the clients. */
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "own", 1, "last", 4, fds, 3, IPCD_PUBLISH_MORE), 0));
        for (i = 0; i < 3; i++)
                close(fds[i]);
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        finish();
}

Test(fds, unread_messages_with_fds_are_closed_at_unref) {
        ipcd_client *sub = client("sub"), *pub = client("pub");
        Got got = { 0 };
        int efd = eventfd(0, EFD_CLOEXEC), i;

        cr_assert(eq(int, ipcd_client_subscribe(sub, "unread", NULL, 0, on_msg, &got, NULL), 0));
        cr_assert(eq(int, ipcd_client_set_bulk_threshold(pub, 0), 0));
        for (i = 0; i < 50; i++)
                cr_assert(eq(int, ipcd_client_publish_fds(pub, "unread", 1, "xyz", 3, &efd, 1,
                                                          IPCD_PUBLISH_MORE), 0));
        cr_assert(eq(int, ipcd_client_sync(pub), 0));
        /* Read (some of) it into the library's queue, never dispatch. */
        cr_assert(eq(int, ipcd_client_sync(sub), 0));
        close(efd);
        ipcd_client_unref(sub);
        ipcd_client_unref(pub);
        cr_assert(eq(int, got.n, 0));
        cr_assert(eq(int, bulk_mappings(), 0));
        finish();
}

/* ---- ipcctl ---- */

TestSuite(ipcctl, .init = start, .fini = cleanup, .timeout = 120);

static const char *ipcctl_bin(void) {
        const char *b = getenv("IPCCTL_BIN");
        return b ? b : "client/ipcctl";
}

/* Starts ipcctl with @args; its stdout is *ret_out. */
static pid_t ipcctl_start(const char *const *args, int *ret_out) {
        const char *argv[64];
        int opipe[2];
        size_t n = 0;
        pid_t pid;

        argv[n++] = ipcctl_bin();
        argv[n++] = "-s";
        argv[n++] = tb.sock;
        for (; *args && n < 63; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        cr_assert(eq(int, pipe2(opipe, O_CLOEXEC), 0));
        pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);
                dup2(null, STDIN_FILENO);
                dup2(opipe[1], STDOUT_FILENO);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(opipe[1]);
        *ret_out = opipe[0];
        return pid;
}

/* Collects the output of ipcctl_start() and its exit code. */
static int ipcctl_finish(pid_t pid, int out, char *buf, size_t size) {
        size_t have = 0;
        int status;

        for (;;) {
                ssize_t r = read(out, buf + have, size - 1 - have);
                if (r <= 0)
                        break;
                have += (size_t)r;
        }
        buf[have] = 0;
        close(out);
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        cr_assert(exited_normally(status), "ipcctl died");
        return WEXITSTATUS(status);
}

static int ipcctl(const char *const *args, char *buf, size_t size) {
        int out;
        pid_t pid = ipcctl_start(args, &out);
        return ipcctl_finish(pid, out, buf, size);
}

static void wait_for_subscriptions(long long n) {
        int i;

        for (i = 0; i < 500 && tb_status_number(&tb, "subscriptions") < n; i++)
                usleep(10000);
        cr_assert(eq(i64, tb_status_number(&tb, "subscriptions"), n));
}

static void write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        cr_assert(ge(int, fd, 0));
        cr_assert(eq(sz, (size_t)write(fd, data, len), len));
        close(fd);
}

static void *read_file(const char *path, size_t *ret_len) {
        struct stat st;
        void *buf;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        cr_assert(ge(int, fd, 0), "%s: %s", path, strerror(errno));
        cr_assert(eq(int, fstat(fd, &st), 0));
        buf = malloc((size_t)st.st_size + 1);
        cr_assert(eq(sz, (size_t)read(fd, buf, (size_t)st.st_size), (size_t)st.st_size));
        close(fd);
        *ret_len = (size_t)st.st_size;
        return buf;
}

Test(ipcctl, pub_file_and_fd_seen_by_sub_json_and_saved) {
        const size_t size = 300 << 10;
        char path[160], smallpath[160], save[160], saved[256], out[8192], dummy[256];
        const char *subargs[] = { "sub", "files/#", "--json", "--count", "2", "--timeout", "20",
                                  "--save", save, NULL };
        const char *big[] = { "pub", "files/big", "--file", path, "--fd", "/etc/hostname", NULL };
        const char *small[] = { "pub", "files/small", "--file", smallpath, NULL };
        void *data, *back;
        size_t len;
        int subout;
        pid_t sub;

        snprintf(path, sizeof(path), "%s/big.bin", tb.dir);
        snprintf(smallpath, sizeof(smallpath), "%s/small.txt", tb.dir);
        snprintf(save, sizeof(save), "%s/saved", tb.dir);
        cr_assert(eq(int, mkdir(save, 0700), 0));
        data = malloc(size);
        fill(data, size, 99);
        write_file(path, data, size);
        write_file(smallpath, "small text\n", 11);

        sub = ipcctl_start(subargs, &subout);
        wait_for_subscriptions(1);
        cr_assert(eq(int, ipcctl(big, dummy, sizeof(dummy)), 0));
        cr_assert(eq(int, ipcctl(small, dummy, sizeof(dummy)), 0));
        cr_assert(eq(int, ipcctl_finish(sub, subout, out, sizeof(out)), 0), "%s", out);

        cr_assert(strstr(out, "\"topic\":\"files/big\"") != NULL, "%s", out);
        cr_assert(strstr(out, "\"payload_transport\":\"memfd\"") != NULL, "%s", out);
        cr_assert(strstr(out, "\"fds\":[{\"type\":\"file\",\"path\":\"/etc/hostname\"}]") != NULL, "%s",
                  out);
        cr_assert(strstr(out, "\"payload_transport\":\"inline\"") != NULL, "%s", out);
        cr_assert(strstr(out, "\"fds\":[]") != NULL, "%s", out);
        snprintf(saved, sizeof(saved), "\"saved\":\"%s/1-files_big.bin\"", save);
        cr_assert(strstr(out, saved) != NULL, "want %s in %s", saved, out);

        snprintf(saved, sizeof(saved), "%s/1-files_big.bin", save);
        back = read_file(saved, &len);
        cr_assert(eq(sz, len, size));
        cr_assert(eq(int, memcmp(back, data, size), 0));
        free(back);
        snprintf(saved, sizeof(saved), "%s/1-files_small.bin", save);
        back = read_file(saved, &len);
        cr_assert(eq(sz, len, 11));
        cr_assert(eq(int, memcmp(back, "small text\n", 11), 0));
        free(back);
        free(data);
        finish();
}

Test(ipcctl, sub_human_shows_transport_and_fds) {
        const char *subargs[] = { "sub", "h", "--count", "1", "--timeout", "20", NULL };
        const char *pub[] = { "pub", "h", "--fd", "/etc/hostname", "--fd", "/dev/null", "hi", NULL };
        char out[4096], dummy[256];
        int subout;
        pid_t sub;

        sub = ipcctl_start(subargs, &subout);
        wait_for_subscriptions(1);
        cr_assert(eq(int, ipcctl(pub, dummy, sizeof(dummy)), 0));
        cr_assert(eq(int, ipcctl_finish(sub, subout, out, sizeof(out)), 0), "%s", out);
        cr_assert(strstr(out, "transport=inline") != NULL, "%s", out);
        cr_assert(strstr(out, "fds=[file:/etc/hostname,chardev:/dev/null]") != NULL, "%s", out);
        cr_assert(strstr(out, ": hi\n") != NULL, "%s", out);
        finish();
}

Test(ipcctl, fd_types_in_json) {
        const char *subargs[] = { "sub", "types", "--json", "--count", "1", "--timeout", "20", NULL };
        ipcd_client *pub = client("types");
        int fds[5], sp[2], pp[2], subout, i;
        char out[4096];
        pid_t sub;

        cr_assert(eq(int, pipe2(pp, O_CLOEXEC), 0));
        cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0));
        fds[0] = pp[0];
        fds[1] = sp[0];
        fds[2] = eventfd(0, EFD_CLOEXEC);
        fds[3] = memfd_create("some-memfd", MFD_CLOEXEC);
        fds[4] = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sub = ipcctl_start(subargs, &subout);
        wait_for_subscriptions(1);
        cr_assert(eq(int, ipcd_client_publish_fds(pub, "types", 1, "x", 1, fds, 5, IPCD_PUBLISH_ACK), 0));
        cr_assert(eq(int, ipcctl_finish(sub, subout, out, sizeof(out)), 0), "%s", out);
        cr_assert(strstr(out, "\"fds\":[{\"type\":\"pipe\"},{\"type\":\"socket\"},{\"type\":\"eventfd\"},"
                              "{\"type\":\"memfd\",\"name\":\"some-memfd\"},"
                              "{\"type\":\"directory\",\"path\":\"/tmp\"}]") != NULL,
                  "%s", out);
        for (i = 0; i < 5; i++)
                close(fds[i]);
        close(pp[1]);
        close(sp[1]);
        ipcd_client_unref(pub);
        finish();
}

Test(ipcctl, errors) {
        char missing[160], out[1024];
        const char *save_missing[] = { "sub", "x", "--save", missing, NULL };
        const char *no_file[] = { "pub", "x", "--file", missing, NULL };
        const char *no_fd[] = { "pub", "x", "--fd", missing, NULL };
        const char *both[] = { "pub", "x", "--file", "/etc/hostname", "data", NULL };
        const char *stdin_pub[] = { "pub", "x", "-", NULL };
        const char *fds[2 + 2 * 17 + 1] = { "pub", "x" };
        int i;

        snprintf(missing, sizeof(missing), "%s/not-there", tb.dir);
        cr_assert(eq(int, ipcctl(save_missing, out, sizeof(out)), 2));
        cr_assert(eq(int, ipcctl(no_file, out, sizeof(out)), 2));
        cr_assert(eq(int, ipcctl(no_fd, out, sizeof(out)), 2));
        cr_assert(eq(int, ipcctl(both, out, sizeof(out)), 2));
        cr_assert(eq(int, ipcctl(stdin_pub, out, sizeof(out)), 0));
        /* The broker's limit is 16 per message. */
        for (i = 0; i < 16; i++) {
                fds[2 + 2 * i] = "--fd";
                fds[3 + 2 * i] = "/dev/null";
        }
        cr_assert(eq(int, ipcctl(fds, out, sizeof(out)), 0));
        fds[2 + 2 * 16] = "--fd";
        fds[3 + 2 * 16] = "/dev/null";
        cr_assert(eq(int, ipcctl(fds, out, sizeof(out)), 1));
        finish();
}
