/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: the limits a broker is held against, measured in the same
 * run on the same machine: the same workloads over one AF_UNIX stream
 * socket pair between two processes with nothing in between, and memcpy().
 * A broker hop crosses two sockets and parses and re-frames every message,
 * so it cannot reach them; the ratio says how close it comes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

static int pair(int sv[2]) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                bench_log("socketpair: %s", strerror(errno));
                return -1;
        }
        return 0;
}

int limit_rr(uint64_t warmup, uint64_t n, size_t size, RrResult *ret) {
        double *lat = malloc(sizeof(double) * (size_t)(n ? n : 1));
        uint8_t *buf = calloc(1, size), *back = calloc(1, size);
        uint64_t i;
        int sv[2], ok = 1;
        pid_t echo;

        if (!lat || !buf || !back || pair(sv) < 0)
                bench_die("limit rr: setup failed");
        echo = bench_fork();
        if (echo < 0)
                bench_die("fork: %s", strerror(errno));
        if (echo == 0) {
                /* Blocking read and write, one message at a time: the least a
                 * round trip between two processes costs. */
                close(sv[0]);
                while (read_all(sv[1], buf, size) == 0)
                        if (write_all(sv[1], buf, size) < 0)
                                _exit(1);
                _exit(0);
        }
        close(sv[1]);
        fill_pattern(buf, size, 3);
        for (i = 0; ok && i < warmup + n; i++) {
                double t0;

                put_u64(buf, i);
                t0 = now_s();
                if (write_all(sv[0], buf, size) < 0 || read_all(sv[0], back, size) < 0 ||
                    memcmp(buf, back, size) != 0) {
                        bench_log("limit rr: the echo failed");
                        ok = 0;
                        break;
                }
                if (i >= warmup)
                        lat[i - warmup] = now_s() - t0;
        }
        close(sv[0]);
        if (bench_wait(echo, "limit rr echo", 10) < 0)
                ok = 0;
        if (ok) {
                qsort(lat, (size_t)n, sizeof(double), cmp_double);
                ret->p50 = quantile_sorted(lat, (size_t)n, 0.50);
                ret->p99 = quantile_sorted(lat, (size_t)n, 0.99);
                ret->p999 = quantile_sorted(lat, (size_t)n, 0.999);
        }
        free(lat);
        free(buf);
        free(back);
        return ok ? 0 : -1;
}

int limit_oneway(uint64_t count, size_t size, unsigned batch, double *ret_rate) {
        uint8_t *out = calloc(batch, size);
        uint64_t sent = 0;
        int sv[2], rp[2], ok = 1;
        double t0, t_end = 0;
        pid_t reader;

        if (!out || pair(sv) < 0 || pipe2(rp, O_CLOEXEC) < 0)
                bench_die("limit one-way: setup failed");
        reader = bench_fork();
        if (reader < 0)
                bench_die("fork: %s", strerror(errno));
        if (reader == 0) {
                /* Reads as a client library does (large reads), and checks
                 * every record's sequence number as the subscribers do. */
                static uint8_t in[1 << 20];
                size_t have = 0, off;
                uint64_t got = 0;
                double t;

                close(sv[0]);
                close(rp[0]);
                while (got < count) {
                        ssize_t k = read(sv[1], in + have, sizeof(in) - have);

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                _exit(1);
                        have += (size_t)k;
                        for (off = 0; have - off >= size; off += size)
                                if (get_u64(in + off) != ++got)
                                        _exit(2);
                        memmove(in, in + off, have - off);
                        have -= off;
                }
                t = now_s();
                _exit(write_all(rp[1], &t, sizeof(t)) == 0 ? 0 : 1);
        }
        close(sv[1]);
        close(rp[1]);
        for (unsigned k = 0; k < batch; k++)
                fill_pattern(out + (size_t)k * size, size, 5);
        t0 = now_s();
        while (ok && sent < count) {
                uint64_t n = count - sent < batch ? count - sent : batch, k;

                for (k = 0; k < n; k++)
                        put_u64(out + k * size, sent + k + 1);
                if (write_all(sv[0], out, (size_t)n * size) < 0)
                        ok = 0;
                sent += n;
        }
        if (ok && read_all(rp[0], &t_end, sizeof(t_end)) < 0)
                ok = 0;
        close(sv[0]);
        close(rp[0]);
        if (bench_wait(reader, "limit one-way reader", 10) < 0)
                ok = 0;
        if (ok)
                *ret_rate = (double)count / (t_end - t0);
        free(out);
        return ok ? 0 : -1;
}

double limit_memcpy(size_t size) {
        /* Repeat small copies to get a measurable time, at least 3 times
         * each, at least 64 MiB in all; the buffers are touched first so
         * no page fault is timed. */
        size_t reps = size >= (64u << 20) ? 3 : (64u << 20) / (size ? size : 1);
        uint8_t *src = malloc(size), *dst = malloc(size);
        double v[5];
        int i;

        if (!src || !dst)
                bench_die("memcpy of %zu bytes: out of memory", size);
        if (reps > 100000)
                reps = 100000;
        fill_pattern(src, size, 9);
        memset(dst, 1, size);
        for (i = 0; i < 5; i++) {
                double t0 = now_s();
                size_t k;

                for (k = 0; k < reps; k++) {
                        memcpy(dst, src, size);
                        /* Keep the compiler from dropping the copies. */
                        __asm__ volatile("" : : "r"(dst) : "memory");
                }
                v[i] = (now_s() - t0) / (double)reps;
        }
        free(src);
        free(dst);
        return median_of(v, 5);
}
