/* SPDX-License-Identifier: MIT */
/*
 * bench-bulk: large payloads through a real ipcd that this program starts,
 * inline (bytes in the frames) against sealed memfds, and the same bytes
 * through a plain AF_UNIX stream socket pair (no broker) in the same run.
 *
 *   bench-bulk [--ipcd PATH] [--sizes 4K,64K,1M,16M,256M] [--reps N]
 *              [--cpu-count N]
 *
 * End-to-end time of one message, publisher to subscriber (two processes,
 * one message in flight at a time), median over --reps:
 *   delivered  the publisher called publish at t0; the subscriber's handler
 *              runs and holds the payload (inline: in the library's receive
 *              buffer; memfd: checked and mapped, no page touched yet);
 *   read all   the handler has also summed every byte of it as 64-bit
 *              words (every page of a mapping faulted in and read).
 * Transports:
 *   inline      ipcd_client_publish() with the bulk threshold at SIZE_MAX:
 *               copied into the frame, through both sockets, into the
 *               receiver's buffer (sizes up to the broker's max_payload);
 *   memfd/copy  ipcd_client_publish() with the threshold at 0: the library
 *               copies the payload into a new sealed memfd (in the timing);
 *   memfd/zero  ipcd_client_publish_memfd() of a sealed memfd the
 *               application filled before t0: no copy at all;
 *   socketpair  write() all bytes into one end, the reader read()s and sums
 *               them as they come.
 * Broker CPU per message: the broker process's CPU clock (utime + stime, in
 * ns: clock_getcpuclockid()) and /proc/PID/stat's utime + stime (clock
 * ticks), over --cpu-count messages published back to back (in batches the
 * subscriber keeps up with, so none is dropped) divided by the count. The
 * memfd column sends one sealed memfd again and again (publish_memfd) and
 * the subscriber only counts: the broker's work is the same as for any
 * other memfd of that size.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/ipcd-client.h>

#define MAX_SIZES 16
#define MAX_REPS 101
#define CPU_BATCH 100
#define TOPIC "bench/bulk"

enum { T_INLINE, T_COPY, T_ZERO, _T_MAX };
static const char *const tname[_T_MAX] = { "inline", "memfd/copy", "memfd/zero" };

/* What the subscriber reports per message. */
typedef struct Report {
        double delivered;
        double read;
        uint64_t sum;
        size_t size;
        unsigned flags;
} Report;

/* Subscriber modes, told through the command pipe. */
enum { MODE_TIME = 1, MODE_COUNT = 2 };

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err) {
        fprintf(stderr, "bench-bulk: %s: %s\n", what, strerror(err));
        exit(1);
}

static void write_all(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        die("write", errno);
                p += n;
                len -= (size_t)n;
        }
}

static void read_all(int fd, void *buf, size_t len) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = read(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        die("read (a child died?)", n < 0 ? errno : EPIPE);
                p += n;
                len -= (size_t)n;
        }
}

static uint64_t sum_words(const void *buf, size_t len, uint64_t acc) {
        const uint8_t *p = buf;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                acc += w;
        }
        for (; i < len; i++)
                acc += p[i];
        return acc;
}

static void fill(uint8_t *buf, size_t len, unsigned seed) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(buf + i, &x, 8);
        }
        for (; i < len; i++)
                buf[i] = (uint8_t)i;
}

/* ---- the subscriber process ---- */

typedef struct SubCtx {
        int mode;
        int report_fd;
} SubCtx;

static void on_message(ipcd_client *c, ipcd_msg *m, void *userdata) {
        SubCtx *s = userdata;
        Report r = { .delivered = now_s() };
        const void *data = ipcd_msg_get_data(m, &r.size);

        r.flags = ipcd_msg_get_flags(m);
        if (s->mode == MODE_TIME) {
                r.sum = sum_words(data, r.size, 0);
                r.read = now_s();
                write_all(s->report_fd, &r, sizeof(r));
        } else
                write_all(s->report_fd, "", 1);
}

/* Subscribes, says "ready" on @report_fd, then handles messages; a new
 * mode comes as one byte on @cmd_fd and is acknowledged with one byte. */
static void subscriber(const char *sock, int cmd_fd, int report_fd) {
        SubCtx s = { .mode = MODE_TIME, .report_fd = report_fd };
        ipcd_client *c = NULL;
        int r;

        r = ipcd_client_new(&c, sock, "bench-sub");
        if (r < 0)
                die("subscriber: connect", -r);
        r = ipcd_client_subscribe(c, TOPIC, NULL, 0, on_message, &s, NULL);
        if (r < 0)
                die("subscriber: subscribe", -r);
        write_all(report_fd, "r", 1);
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = ipcd_client_get_fd(c), .events = (short)ipcd_client_get_events(c) },
                        { .fd = cmd_fd, .events = POLLIN },
                };

                r = ipcd_client_process(c);
                if (r < 0) {
                        fprintf(stderr, "bench-bulk: subscriber: %s (%s)\n", strerror(-r),
                                ipcd_client_last_error(c));
                        _exit(1);
                }
                if (r > 0)
                        continue;
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        die("subscriber: poll", errno);
                if (p[1].revents) {
                        char mode;
                        if (read(cmd_fd, &mode, 1) != 1)
                                break; /* the benchmark is over */
                        s.mode = mode;
                        write_all(report_fd, "m", 1);
                }
        }
        ipcd_client_unref(c);
        _exit(0);
}

/* ---- measurements ---- */

typedef struct Bench {
        pid_t broker;
        ipcd_client *pub;
        int cmd_fd, report_fd;
        int reps, cpu_count;
} Bench;

/* Switches the subscriber's mode; returns once it has switched (no message
 * is in flight then). */
static void set_mode(Bench *b, char mode) {
        char ack;

        write_all(b->cmd_fd, &mode, 1);
        read_all(b->report_fd, &ack, 1);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
        qsort(v, (size_t)n, sizeof(double), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A sealed memfd holding @len bytes of @data, made the way an application
 * that produces data in place would: write, then seal. */
static int app_memfd(const uint8_t *data, size_t len) {
        int fd = memfd_create("bench-app", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                die("memfd_create", errno);
        write_all(fd, data, len);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                die("F_ADD_SEALS", errno);
        return fd;
}

static int publish(Bench *b, int t, const uint8_t *data, size_t size, int memfd, unsigned flags) {
        if (t == T_ZERO)
                return ipcd_client_publish_memfd(b->pub, TOPIC, 1, memfd, size, NULL, 0, flags);
        return ipcd_client_publish(b->pub, TOPIC, 1, data, size, flags);
}

static void check(Bench *b, int r, const char *what) {
        if (r < 0) {
                fprintf(stderr, "bench-bulk: %s: %s (%s)\n", what, strerror(-r),
                        b->pub ? ipcd_client_last_error(b->pub) : "");
                exit(1);
        }
}

/* Median delivered and read-all times of @size bytes by transport @t. */
static void time_ipcd(Bench *b, int t, const uint8_t *data, size_t size, uint64_t sum,
                      double *ret_delivered, double *ret_read) {
        double delivered[MAX_REPS], readall[MAX_REPS];
        int i;

        check(b, ipcd_client_set_bulk_threshold(b->pub, t == T_INLINE ? SIZE_MAX : 0), "threshold");
        set_mode(b, MODE_TIME);
        for (i = 0; i < b->reps; i++) {
                int memfd = t == T_ZERO ? app_memfd(data, size) : -1;
                bool bulk = t != T_INLINE && size > 0;
                double t0;
                Report r;

                t0 = now_s();
                check(b, publish(b, t, data, size, memfd, 0), "publish");
                /* What the socket did not take at once (a large inline
                 * payload) is written here, while the broker forwards. */
                check(b, ipcd_client_flush(b->pub), "flush");
                read_all(b->report_fd, &r, sizeof(r));
                if (memfd >= 0)
                        close(memfd);
                if (r.size != size || r.sum != sum || !!(r.flags & IPCD_MSG_BULK) != bulk) {
                        fprintf(stderr, "bench-bulk: %s %zu bytes arrived wrong (%zu bytes, %s)\n",
                                tname[t], size, r.size,
                                (r.flags & IPCD_MSG_BULK) ? "memfd" : "inline");
                        exit(1);
                }
                delivered[i] = r.delivered - t0;
                readall[i] = r.read - t0;
        }
        *ret_delivered = median(delivered, b->reps);
        *ret_read = median(readall, b->reps);
}

static double proc_stat_seconds(pid_t pid) {
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
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return 0;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_clock_seconds(pid_t pid) {
        struct timespec ts;
        clockid_t clk;

        if (clock_getcpuclockid(pid, &clk) != 0 || clock_gettime(clk, &ts) < 0)
                return 0;
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The broker's CPU seconds per message for --cpu-count messages of @size
 * bytes, inline or (@bulk) as one sealed memfd sent again and again, in
 * *ret_clock (CPU clock) and *ret_stat (/proc/PID/stat). */
static void cpu_ipcd(Bench *b, bool bulk, const uint8_t *data, size_t size, double *ret_clock,
                     double *ret_stat) {
        int t = bulk ? T_ZERO : T_INLINE, memfd = bulk ? app_memfd(data, size) : -1;
        double c0, s0;
        char buf[CPU_BATCH];
        int i, n;

        check(b, ipcd_client_set_bulk_threshold(b->pub, SIZE_MAX), "threshold");
        set_mode(b, MODE_COUNT);
        c0 = cpu_clock_seconds(b->broker);
        s0 = proc_stat_seconds(b->broker);
        for (i = 0; i < b->cpu_count; i += n) {
                int k;

                n = b->cpu_count - i < CPU_BATCH ? b->cpu_count - i : CPU_BATCH;
                for (k = 0; k < n; k++)
                        check(b, publish(b, t, data, size, memfd, IPCD_PUBLISH_MORE), "publish");
                check(b, ipcd_client_flush(b->pub), "flush");
                read_all(b->report_fd, buf, (size_t)n);
        }
        *ret_clock = (cpu_clock_seconds(b->broker) - c0) / b->cpu_count;
        *ret_stat = (proc_stat_seconds(b->broker) - s0) / b->cpu_count;
        if (memfd >= 0)
                close(memfd);
}

/* Median time to move @size bytes through a socket pair: write all, the
 * reader reads and sums them as they come. */
static double time_socketpair(Bench *b, const uint8_t *data, size_t size, uint64_t sum) {
        double v[MAX_REPS];
        int i;

        for (i = 0; i < b->reps; i++) {
                int sp[2], rp[2];
                double t0;
                pid_t child;
                struct {
                        double end;
                        uint64_t sum;
                } res;

                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
                    pipe2(rp, O_CLOEXEC) < 0)
                        die("socketpair", errno);
                child = fork();
                if (child < 0)
                        die("fork", errno);
                if (child == 0) {
                        static uint8_t buf[1 << 20];
                        size_t left = size;
                        uint64_t acc = 0;

                        close(sp[0]);
                        while (left > 0) {
                                /* Whole words per chunk keep the sum the same. */
                                size_t want = left < sizeof(buf) ? left : sizeof(buf), have = 0;
                                while (have < want && (have == 0 || have % 8)) {
                                        ssize_t n = read(sp[1], buf + have, want - have);
                                        if (n <= 0)
                                                _exit(1);
                                        have += (size_t)n;
                                }
                                acc = sum_words(buf, have, acc);
                                left -= have;
                        }
                        res.end = now_s();
                        res.sum = acc;
                        write_all(rp[1], &res, sizeof(res));
                        _exit(0);
                }
                close(sp[1]);
                close(rp[1]);
                t0 = now_s();
                write_all(sp[0], data, size);
                read_all(rp[0], &res, sizeof(res));
                waitpid(child, NULL, 0);
                close(sp[0]);
                close(rp[0]);
                if (res.sum != sum) {
                        fprintf(stderr, "bench-bulk: socket pair: %zu bytes arrived wrong\n", size);
                        exit(1);
                }
                v[i] = res.end - t0;
        }
        return median(v, b->reps);
}

/* ---- main ---- */

static int parse_size(const char *s, size_t *ret) {
        unsigned long long v;
        char *end;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        switch (*end) {
        case 'K':
        case 'k':
                v <<= 10;
                end++;
                break;
        case 'M':
        case 'm':
                v <<= 20;
                end++;
                break;
        case 'G':
        case 'g':
                v <<= 30;
                end++;
                break;
        }
        if (*end || v > (4ull << 30))
                return -EINVAL;
        *ret = (size_t)v;
        return 0;
}

static const char *fmt_size(size_t v, char *buf, size_t cap) {
        if (v >= (1u << 20) && v % (1u << 20) == 0)
                snprintf(buf, cap, "%zu MiB", v >> 20);
        else if (v >= 1024 && v % 1024 == 0)
                snprintf(buf, cap, "%zu KiB", v >> 10);
        else
                snprintf(buf, cap, "%zu B", v);
        return buf;
}

static const char *fmt_time(double s, char *buf, size_t cap) {
        if (s < 0)
                snprintf(buf, cap, "-");
        else if (s < 1e-3)
                snprintf(buf, cap, "%.1f us", s * 1e6);
        else if (s < 1)
                snprintf(buf, cap, "%.2f ms", s * 1e3);
        else
                snprintf(buf, cap, "%.2f s", s);
        return buf;
}

/* Starts @ipcd on @sock and waits until it accepts connections. */
static pid_t start_broker(const char *ipcd, const char *sock) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pid_t pid;
        int i;

        if (strlen(sock) >= sizeof(sa.sun_path))
                die(sock, ENAMETOOLONG);
        memcpy(sa.sun_path, sock, strlen(sock) + 1);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                /* Deep queues (the benchmark measures time, not drops) and a
                 * configuration of its own, beside the socket, not whatever
                 * the machine has installed. */
                char conf[PATH_MAX];
                FILE *f;
                snprintf(conf, sizeof(conf), "%.*s/ipcd.yaml",
                         (int)(strrchr(sock, '/') ? strrchr(sock, '/') - sock : 1), sock);
                f = fopen(conf, "we");
                if (!f)
                        _exit(126);
                fputs("limits:\n  queue_bytes: 2GiB\n  queue_messages: 16777216\n"
                      "  user_queue_bytes: 4GiB\n",
                      f);
                fclose(f);
                execl(ipcd, ipcd, "--socket", sock, "--config", conf, "-q", (char *)NULL);
                _exit(127);
        }
        for (i = 0; i < 500; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(fd);
                        return pid;
                }
                if (fd >= 0)
                        close(fd);
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        break;
                usleep(10000);
        }
        fprintf(stderr, "bench-bulk: %s did not start\n", ipcd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        exit(1);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "ipcd", required_argument, NULL, 'i' },
                { "sizes", required_argument, NULL, 's' },
                { "reps", required_argument, NULL, 'r' },
                { "cpu-count", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *ipcd = "daemon/ipcd", *sizes_arg = "4K,64K,1M,16M,256M";
        size_t sizes[MAX_SIZES], n_sizes = 0, max_size = 0, max_payload, i;
        char dir[] = "/tmp/ipcd-bench-XXXXXX", sock[128], list[256], *tok, *save = NULL;
        double deliv[MAX_SIZES][_T_MAX], readall[MAX_SIZES][_T_MAX], pair[MAX_SIZES];
        double cpu_clock[MAX_SIZES][2], cpu_stat[MAX_SIZES][2];
        char c1[32], c2[32], c3[32], c4[32], c5[32], c6[32], c7[32], c8[32];
        Bench b = { .reps = 5, .cpu_count = 1000 };
        int cmd[2], rep[2], opt, t;
        uint8_t *data;
        pid_t sub;

        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (opt) {
                case 'i':
                        ipcd = optarg;
                        break;
                case 's':
                        sizes_arg = optarg;
                        break;
                case 'r':
                        b.reps = atoi(optarg);
                        break;
                case 'c':
                        b.cpu_count = atoi(optarg);
                        break;
                case 'h':
                        printf("Usage: bench-bulk [--ipcd PATH] [--sizes 4K,64K,1M,16M,256M] [--reps N]"
                               " [--cpu-count N]\n");
                        return 0;
                default:
                        return 2;
                }
        }
        if (b.reps < 1 || b.reps > MAX_REPS || b.cpu_count < 1) {
                fprintf(stderr, "bench-bulk: --reps 1..%d, --cpu-count at least 1\n", MAX_REPS);
                return 2;
        }
        snprintf(list, sizeof(list), "%s", sizes_arg);
        for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n_sizes == MAX_SIZES || parse_size(tok, &sizes[n_sizes]) < 0) {
                        fprintf(stderr, "bench-bulk: bad --sizes '%s' (at most %d, like 4K,1M)\n",
                                sizes_arg, MAX_SIZES);
                        return 2;
                }
                if (sizes[n_sizes] > max_size)
                        max_size = sizes[n_sizes];
                n_sizes++;
        }
        signal(SIGPIPE, SIG_IGN);

        data = malloc(max_size ? max_size : 1);
        if (!data)
                die("malloc", ENOMEM);
        fill(data, max_size, 1);

        if (!mkdtemp(dir))
                die("mkdtemp", errno);
        snprintf(sock, sizeof(sock), "%s/ipcd.sock", dir);
        b.broker = start_broker(ipcd, sock);

        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
                die("pipe", errno);
        sub = fork();
        if (sub < 0)
                die("fork", errno);
        if (sub == 0) {
                close(cmd[1]);
                close(rep[0]);
                subscriber(sock, cmd[0], rep[1]);
        }
        close(cmd[0]);
        close(rep[1]);
        b.cmd_fd = cmd[1];
        b.report_fd = rep[0];
        {
                char ready;
                read_all(b.report_fd, &ready, 1);
        }
        check(&b, ipcd_client_new(&b.pub, sock, "bench-pub"), "connect");
        max_payload = ipcd_client_get_max_payload(b.pub);

        for (i = 0; i < n_sizes; i++) {
                size_t size = sizes[i];
                uint64_t sum = sum_words(data, size, 0);

                for (t = 0; t < _T_MAX; t++) {
                        deliv[i][t] = readall[i][t] = -1;
                        if (t == T_INLINE && size > max_payload)
                                continue;
                        time_ipcd(&b, t, data, size, sum, &deliv[i][t], &readall[i][t]);
                }
                cpu_clock[i][0] = cpu_stat[i][0] = -1;
                if (size <= max_payload)
                        cpu_ipcd(&b, false, data, size, &cpu_clock[i][0], &cpu_stat[i][0]);
                cpu_ipcd(&b, true, data, size, &cpu_clock[i][1], &cpu_stat[i][1]);
                pair[i] = time_socketpair(&b, data, size, sum);
        }

        ipcd_client_unref(b.pub);
        close(b.cmd_fd); /* the subscriber's cue to leave */
        waitpid(sub, NULL, 0);
        kill(b.broker, SIGTERM);
        waitpid(b.broker, NULL, 0);
        {
                char conf[PATH_MAX];
                snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
                unlink(conf);
        }
        rmdir(dir);

        printf("bench-bulk: one message publisher -> ipcd -> subscriber, median of %d runs\n", b.reps);
        printf("  delivered: the subscriber's handler holds the payload (inline: in the library's\n"
               "             buffer; memfd: checked and mapped); read all: it also summed every byte\n"
               "  memfd/copy: ipcd_client_publish() copies into a new sealed memfd (timed);\n"
               "  memfd/zero: ipcd_client_publish_memfd() of the application's sealed memfd\n");
        printf("  %8s | %-21s | %-21s | %-21s | %-10s\n", "", "inline", "memfd/copy", "memfd/zero",
               "socketpair");
        printf("  %8s | %10s %10s | %10s %10s | %10s %10s | %10s\n", "size", "delivered", "read all",
               "delivered", "read all", "delivered", "read all", "read all");
        for (i = 0; i < n_sizes; i++)
                printf("  %8s | %10s %10s | %10s %10s | %10s %10s | %10s\n",
                       fmt_size(sizes[i], c1, sizeof(c1)), fmt_time(deliv[i][T_INLINE], c2, sizeof(c2)),
                       fmt_time(readall[i][T_INLINE], c3, sizeof(c3)),
                       fmt_time(deliv[i][T_COPY], c4, sizeof(c4)),
                       fmt_time(readall[i][T_COPY], c5, sizeof(c5)),
                       fmt_time(deliv[i][T_ZERO], c6, sizeof(c6)),
                       fmt_time(readall[i][T_ZERO], c7, sizeof(c7)), fmt_time(pair[i], c8, sizeof(c8)));
        for (i = 0; i < n_sizes; i++)
                if (sizes[i] > max_payload)
                        printf("  (inline skipped for %s: over the broker's max_payload of %zu bytes)\n",
                               fmt_size(sizes[i], c1, sizeof(c1)), max_payload);
        printf("\nbroker CPU per message, %d messages back to back (CPU clock; /proc/PID/stat"
               " utime+stime in ticks)\n", b.cpu_count);
        printf("  %8s | %10s %10s | %10s %10s\n", "size", "inline", "(stat)", "memfd", "(stat)");
        for (i = 0; i < n_sizes; i++)
                printf("  %8s | %10s %10s | %10s %10s\n", fmt_size(sizes[i], c1, sizeof(c1)),
                       fmt_time(cpu_clock[i][0], c2, sizeof(c2)),
                       fmt_time(cpu_stat[i][0], c3, sizeof(c3)),
                       fmt_time(cpu_clock[i][1], c4, sizeof(c4)),
                       fmt_time(cpu_stat[i][1], c5, sizeof(c5)));
        {
                /* Run through libtool's wrapper, argv[0] is the real binary. */
                char *libs = strstr(argv[0], "/.libs/");
                if (libs)
                        memmove(libs + 1, libs + 7, strlen(libs + 7) + 1);
                printf("rerun: %s --ipcd %s --sizes %s --reps %d --cpu-count %d\n", argv[0], ipcd,
                       sizes_arg, b.reps, b.cpu_count);
        }
        free(data);
        return 0;
}
