/* SPDX-License-Identifier: MIT */
/*
 * bench-pubsub: one publisher, one subscriber, small messages, through a
 * real ipcd that this program starts; and the same frames through a plain
 * AF_UNIX socket pair (no broker) in the same run, as the physical limit.
 *
 *   bench-pubsub [--ipcd PATH] [--count N] [--size BYTES] [--reps N]
 *
 * The publisher writes frames in batches (as a client library that coalesces
 * does); the subscriber checks every sequence number. Prints the median
 * delivered messages/s over the repetitions, min and max, the broker's CPU
 * time per message, and the ratio to the socket pair.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "wire.h"

#define BATCH 256

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
        fprintf(stderr, "bench-pubsub: %s: %s\n", what, strerror(errno));
        exit(1);
}

static void write_all(int fd, const uint8_t *p, size_t len) {
        while (len) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        die("write");
                p += n;
                len -= (size_t)n;
        }
}

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Reads frames until @count MESSAGE frames (or, with @raw, PUBLISH frames
 * on a socket pair) have arrived; checks the sequence. Returns the time the
 * last one arrived. */
static double consume(int fd, uint64_t count, bool raw) {
        static uint8_t buf[1 << 20];
        size_t have = 0;
        uint64_t got = 0, base = 0;

        (void)raw;
        while (got < count) {
                ssize_t n = read(fd, buf + have, sizeof(buf) - have);
                size_t off = 0;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        die("read (broker gone?)");
                have += (size_t)n;
                while (have - off >= WIRE_HEADER_SIZE) {
                        uint32_t size = le32_read(buf + off);
                        if (have - off < size)
                                break;
                        if (buf[off + WIRE_OFF_KIND] == WIRE_MESSAGE) {
                                uint64_t seq = le64_read(buf + off + WIRE_HEADER_SIZE + 16);
                                /* The topic's counter goes on across runs. */
                                if (got == 0)
                                        base = seq - 1;
                                if (seq != base + got + 1) {
                                        fprintf(stderr, "bench-pubsub: lost messages: seq %llu, expected %llu\n",
                                                (unsigned long long)seq,
                                                (unsigned long long)(base + got + 1));
                                        exit(1);
                                }
                        }
                        got++;
                        off += size;
                }
                memmove(buf, buf + off, have - off);
                have -= off;
        }
        return now_s();
}

static void produce(int fd, uint64_t count, size_t size) {
        static uint8_t batch[BATCH * 512];
        uint8_t payload[256] = { 0 };
        size_t one, i;
        uint64_t sent = 0;

        one = wire_frame_encode(batch, sizeof(batch), WIRE_PUBLISH, 0, 1, 0, 0, NULL, 0,
                                "bench/topic", 11, payload, size);
        for (i = 1; i < BATCH; i++)
                memcpy(batch + i * one, batch, one);
        while (sent < count) {
                uint64_t n = count - sent < BATCH ? count - sent : BATCH;
                write_all(fd, batch, n * one);
                sent += n;
        }
}

static void handshake(int fd, const char *name) {
        uint8_t frame[128], meta[WIRE_META_HELLO] = { 0 }, reply[256];
        size_t n = wire_frame_encode(frame, sizeof(frame), WIRE_HELLO, 0, 0, 0, 0, meta,
                                     sizeof(meta), NULL, 0, name, strlen(name));
        write_all(fd, frame, n);
        if (read(fd, reply, sizeof(reply)) < WIRE_HEADER_SIZE || reply[WIRE_OFF_KIND] != WIRE_WELCOME) {
                fprintf(stderr, "bench-pubsub: handshake failed\n");
                exit(1);
        }
}

static long broker_cpu_ticks(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        fclose(f);
        p = strrchr(buf, ')');
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                return (long)(ut + st);
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* One run; returns messages/s and adds the broker's CPU seconds to *cpu. */
static double run_once(const char *sock, pid_t broker, uint64_t count, size_t size, double *cpu) {
        int ready[2], done[2];
        double start, end;
        long t0, t1;
        pid_t child;
        int pub;

        if (pipe(ready) < 0 || pipe(done) < 0)
                die("pipe");
        child = fork();
        if (child < 0)
                die("fork");
        if (child == 0) {
                uint8_t frame[128], meta[WIRE_META_SUBSCRIBE];
                int fd = sock ? connect_to(sock) : 3;
                double t;
                size_t n;

                if (sock) {
                        handshake(fd, "bench-sub");
                        wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1 });
                        n = wire_frame_encode(frame, sizeof(frame), WIRE_SUBSCRIBE, 0, 0, 0, 0,
                                              meta, sizeof(meta), "bench/#", 7, NULL, 0);
                        write_all(fd, frame, n);
                        /* The ACK: the subscription is in place. */
                        if (read(fd, frame, WIRE_HEADER_SIZE) != WIRE_HEADER_SIZE ||
                            frame[WIRE_OFF_KIND] != WIRE_ACK) {
                                fprintf(stderr, "bench-pubsub: subscribe failed\n");
                                _exit(1);
                        }
                }
                write_all(ready[1], (const uint8_t *)"r", 1);
                t = consume(fd, count, !sock);
                write_all(done[1], (const uint8_t *)&t, sizeof(t));
                _exit(0);
        }
        if (sock) {
                pub = connect_to(sock);
                if (pub < 0)
                        die("connect");
                handshake(pub, "bench-pub");
        } else
                pub = 4;
        {
                char c;
                if (read(ready[0], &c, 1) != 1)
                        die("ready");
        }
        t0 = broker ? broker_cpu_ticks(broker) : 0;
        start = now_s();
        produce(pub, count, size);
        if (read(done[0], &end, sizeof(end)) != sizeof(end))
                die("done");
        t1 = broker ? broker_cpu_ticks(broker) : 0;
        waitpid(child, NULL, 0);
        if (sock)
                close(pub);
        close(ready[0]);
        close(ready[1]);
        close(done[0]);
        close(done[1]);
        *cpu += (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK);
        return (double)count / (end - start);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "ipcd", required_argument, NULL, 'i' }, { "count", required_argument, NULL, 'n' },
                { "size", required_argument, NULL, 's' }, { "reps", required_argument, NULL, 'r' },
                {},
        };
        const char *ipcd = "daemon/ipcd";
        uint64_t count = 1000000;
        size_t size = 64;
        int reps = 5, opt, i;
        char dir[] = "/tmp/ipcd-bench-XXXXXX", sock[128], conf[128];
        double broker_rate[64], pair_rate[64], cpu = 0, dummy = 0;
        pid_t broker;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (opt) {
                case 'i': ipcd = optarg; break;
                case 'n': count = strtoull(optarg, NULL, 10); break;
                case 's': size = strtoul(optarg, NULL, 10); break;
                case 'r': reps = atoi(optarg); break;
                default: return 2;
                }
        }
        if (size > 256 || reps < 1 || reps > 64 || count == 0) {
                fprintf(stderr, "bench-pubsub: --size at most 256, --reps 1..64\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        if (!mkdtemp(dir))
                die("mkdtemp");
        snprintf(sock, sizeof(sock), "%s/ipcd.sock", dir);
        /* Queues deep enough that a subscriber briefly behind loses
         * nothing (the benchmark measures throughput, not drops), and a
         * configuration of its own, not whatever the machine has. */
        snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
        {
                FILE *f = fopen(conf, "we");
                if (!f)
                        die("fopen");
                fputs("limits:\n  queue_bytes: 2GiB\n  queue_messages: 16777216\n"
                      "  user_queue_bytes: 4GiB\n",
                      f);
                fclose(f);
        }
        broker = fork();
        if (broker == 0) {
                execl(ipcd, ipcd, "--socket", sock, "--config", conf, "-q", (char *)NULL);
                _exit(127);
        }
        for (i = 0; i < 500; i++) {
                int fd = connect_to(sock);
                if (fd >= 0) {
                        close(fd);
                        break;
                }
                usleep(10000);
        }
        for (i = 0; i < reps; i++) {
                int sp[2];
                broker_rate[i] = run_once(sock, broker, count, size, &cpu);
                /* The same frames over a socket pair: fds 3 and 4 in the
                 * reader and writer (dup'ed into place). */
                if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
                        die("socketpair");
                dup2(sp[0], 3);
                dup2(sp[1], 4);
                pair_rate[i] = run_once(NULL, 0, count, size, &dummy);
                close(3);
                close(4);
                close(sp[0]);
                close(sp[1]);
        }
        kill(broker, SIGTERM);
        waitpid(broker, NULL, 0);
        unlink(conf);
        rmdir(dir);

        qsort(broker_rate, (size_t)reps, sizeof(double), cmp_double);
        qsort(pair_rate, (size_t)reps, sizeof(double), cmp_double);
        printf("pubsub %zu-byte payloads, %llu messages x %d runs, 1 publisher -> 1 subscriber\n",
               size, (unsigned long long)count, reps);
        printf("  %-28s %12s %12s %12s\n", "", "median msg/s", "min", "max");
        printf("  %-28s %12.0f %12.0f %12.0f\n", "through ipcd", broker_rate[reps / 2], broker_rate[0],
               broker_rate[reps - 1]);
        printf("  %-28s %12.0f %12.0f %12.0f\n", "AF_UNIX socket pair (limit)", pair_rate[reps / 2],
               pair_rate[0], pair_rate[reps - 1]);
        printf("  ipcd / socket pair: %.2f\n", broker_rate[reps / 2] / pair_rate[reps / 2]);
        printf("  broker CPU per message: %.0f ns\n", cpu * 1e9 / ((double)count * reps));
        printf("rerun: %s --ipcd %s --count %llu --size %zu --reps %d\n", argv[0], ipcd,
               (unsigned long long)count, size, reps);
        return 0;
}
