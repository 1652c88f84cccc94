/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: what an idle connection costs the broker in memory. A fresh
 * broker per measurement (memory that earlier runs freed would otherwise
 * be reused and hide the cost); connections opened with the raw protocol
 * (connect, HELLO, WELCOME: PROTOCOL.md §4), since a library client per
 * connection would cost this process far more than the broker.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "wire.h"

/* Connects to @sock and completes the handshake. Returns the fd or -1. */
static int hello(const char *sock) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint8_t frame[128], meta[WIRE_META_HELLO] = { 0 }, in[512];
        static const char name[] = "bench-idle";
        size_t n;
        int fd, r;

        memcpy(sa.sun_path, sock, strlen(sock) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        n = wire_frame_encode(frame, sizeof(frame), WIRE_HELLO, 0, 0, 0, 0, meta, sizeof(meta), NULL,
                              0, name, sizeof(name) - 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        r = write_all(fd, frame, n);
        if (r >= 0)
                r = read_all(fd, in, WIRE_HEADER_SIZE);
        if (r < 0) {
                close(fd);
                errno = -r;
                return -1;
        }
        if (in[WIRE_OFF_KIND] != WIRE_WELCOME) {
                /* An ERROR: the broker refused the connection. */
                close(fd);
                errno = ECONNREFUSED;
                return -1;
        }
        n = (size_t)in[0] | (size_t)in[1] << 8 | (size_t)in[2] << 16 | (size_t)in[3] << 24;
        if (n < WIRE_HEADER_SIZE || n > sizeof(in) || read_all(fd, in, n - WIRE_HEADER_SIZE) < 0) {
                close(fd);
                errno = EPROTO;
                return -1;
        }
        return fd;
}

int work_conns(const char *dir, const IpcdOptions *o, unsigned n, double *ret_bytes) {
        IpcdOptions opts = *o;
        int *fds = calloc(n, sizeof(int));
        long long rss0, rss1;
        BenchServer srv;
        unsigned i, opened = 0;
        int ok = 1;

        if (!fds)
                bench_die("out of memory");
        opts.max_connections = n + 64;
        if (server_start_ipcd(&srv, dir, "ipcd-conns", &opts) < 0) {
                free(fds);
                return -1;
        }
        rss0 = proc_rss_bytes(srv.pid);
        for (i = 0; i < n; i++) {
                fds[i] = hello(srv.sock);
                if (fds[i] < 0) {
                        bench_log("conns: connection %u of %u failed: %s", i + 1, n, strerror(errno));
                        ok = 0;
                        break;
                }
                opened++;
        }
        /* The broker has answered every HELLO: its side of each connection
         * is complete. */
        rss1 = proc_rss_bytes(srv.pid);
        for (i = 0; i < opened; i++)
                close(fds[i]);
        server_stop(&srv);
        free(fds);
        if (rss0 < 0 || rss1 < 0) {
                bench_log("conns: cannot read the broker's VmRSS");
                ok = 0;
        }
        if (ok)
                *ret_bytes = (double)(rss1 - rss0) / n;
        return ok ? 0 : -1;
}
