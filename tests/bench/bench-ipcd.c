/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: the ipcd side of every workload, through libipcd-client's
 * public API only, the way an application uses it.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/ipcd-client.h>

#include "bench.h"

/* Every message of the benchmark has this user type. */
#define BENCH_TYPE 1

/* Blocking calls: a 256 MiB bulk copy or a busy broker under valgrind
 * takes longer than the library's default 5 s. */
#define BLOCKING_TIMEOUT_MS 120000

bool bench_ipcd_batched = true;

struct BenchClient {
        ipcd_client *c;
        BenchMsgFn fn;
        void *userdata;
        int reply_error; /* the first failed ipcd_msg_reply() */
        char err[256];
};

static int fail(BenchClient *b, int r, const char *what) {
        snprintf(b->err, sizeof(b->err), "%s: %s (%s)", what, strerror(-r),
                 b->c ? ipcd_client_last_error(b->c) : "");
        return r;
}

static uint64_t ipcd_max_payload(size_t topic_len) {
        (void)topic_len;
        return 1ull << 30; /* the broker's max_bulk_size by default */
}

static int ipcd_connect(const char *sock, const char *name, BenchClient **ret) {
        BenchClient *b = calloc(1, sizeof(*b));
        int r;

        if (!b)
                return -ENOMEM;
        r = ipcd_client_new(&b->c, sock, name);
        if (r < 0) {
                free(b);
                return r;
        }
        ipcd_client_set_timeout(b->c, BLOCKING_TIMEOUT_MS);
        /* Batching lives in ipcd_publish() and ipcd_flush(): when the
         * library has its own automatic batching, switch it on here
         * (ipcd_client_set_batch()) and let ipcd_publish() pass no MORE. */
        *ret = b;
        return 0;
}

static void ipcd_close(BenchClient *b) {
        if (!b)
                return;
        ipcd_client_unref(b->c);
        free(b);
}

static void on_message(ipcd_client *c, ipcd_msg *m, void *userdata) {
        BenchClient *b = userdata;
        size_t size;
        const void *data = ipcd_msg_get_data(m, &size);

        (void)c;
        b->fn(b->userdata, data, size);
}

static int ipcd_subscribe(BenchClient *b, const char *topic, BenchMsgFn fn, void *userdata) {
        int r;

        b->fn = fn;
        b->userdata = userdata;
        r = ipcd_client_subscribe(b->c, topic, NULL, 0, on_message, b, NULL);
        return r < 0 ? fail(b, r, "subscribe") : 0;
}

static void on_request(ipcd_client *c, ipcd_msg *req, void *userdata) {
        BenchClient *b = userdata;
        size_t size;
        const void *data = ipcd_msg_get_data(req, &size);
        int r;

        (void)c;
        r = ipcd_msg_reply(req, BENCH_TYPE, data, size, NULL, 0);
        if (r < 0 && b->reply_error == 0)
                b->reply_error = r;
}

static int ipcd_serve_echo(BenchClient *b, const char *topic) {
        int r = ipcd_client_serve(b->c, topic, NULL, 0, on_request, b, NULL);

        return r < 0 ? fail(b, r, "serve") : 0;
}

static int ipcd_publish(BenchClient *b, const char *topic, const void *data, size_t size, bool more) {
        int r = ipcd_client_publish(b->c, topic, BENCH_TYPE, data, size,
                                    more && bench_ipcd_batched ? IPCD_PUBLISH_MORE : 0);

        return r < 0 ? fail(b, r, "publish") : 0;
}

static int ipcd_publish_memfd(BenchClient *b, const char *topic, int memfd, size_t size) {
        int r = ipcd_client_publish_memfd(b->c, topic, BENCH_TYPE, memfd, size, NULL, 0, 0);

        return r < 0 ? fail(b, r, "publish_memfd") : 0;
}

static int ipcd_flush(BenchClient *b) {
        int r = ipcd_client_flush(b->c);

        return r < 0 ? fail(b, r, "flush") : 0;
}

static int ipcd_sync(BenchClient *b) {
        int r = ipcd_client_sync(b->c);

        return r < 0 ? fail(b, r, "sync") : 0;
}

static int ipcd_request(BenchClient *b, const char *topic, const void *data, size_t size,
                        void *reply) {
        ipcd_msg *m = NULL;
        const void *got;
        size_t got_size;
        int r;

        r = ipcd_client_request_sync(b->c, topic, BENCH_TYPE, data, size, 0, &m);
        if (r < 0)
                return fail(b, r, "request");
        got = ipcd_msg_get_data(m, &got_size);
        if (got_size == size)
                memcpy(reply, got, size);
        ipcd_msg_unref(m);
        if (got_size != size) {
                snprintf(b->err, sizeof(b->err), "reply of %zu bytes to a request of %zu", got_size,
                         size);
                return -EPROTO;
        }
        return 0;
}

static int ipcd_get_fd(BenchClient *b) {
        return ipcd_client_get_fd(b->c);
}

static short ipcd_get_events(BenchClient *b) {
        return (short)ipcd_client_get_events(b->c);
}

static int ipcd_process(BenchClient *b, short revents) {
        int r;

        (void)revents; /* it does whatever can be done without blocking */
        r = ipcd_client_process(b->c);
        if (r < 0)
                return fail(b, r, "process");
        if (b->reply_error < 0)
                return fail(b, b->reply_error, "reply");
        return r;
}

static const char *ipcd_last_error(BenchClient *b) {
        return b->err;
}

const BenchSystem bench_ipcd = {
        .name = "ipcd",
        .max_payload = ipcd_max_payload,
        .connect = ipcd_connect,
        .close = ipcd_close,
        .subscribe = ipcd_subscribe,
        .serve_echo = ipcd_serve_echo,
        .publish = ipcd_publish,
        .publish_memfd = ipcd_publish_memfd,
        .flush = ipcd_flush,
        .sync = ipcd_sync,
        .request = ipcd_request,
        .get_fd = ipcd_get_fd,
        .get_events = ipcd_get_events,
        .process = ipcd_process,
        .last_error = ipcd_last_error,
};
