/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: Mosquitto as a peer, through libmosquitto, MQTT 3.1.1 at
 * QoS 0 over Mosquitto's Unix socket listener (mosquitto_connect() with a
 * socket path and port 0). libmosquitto runs in the caller's thread here
 * (no mosquitto_loop_start()): a publish writes its packet at once, so a
 * publisher cannot batch; reading takes one packet per
 * mosquitto_loop_read(), which is called until the socket is dry.
 * Request/reply: the request is published on TOPIC, the answer on
 * TOPIC/reply.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "bench.h"

/* MQTT's largest remaining length; a QoS 0 PUBLISH spends 2 bytes and the
 * topic of it before the payload. */
#define MQTT_MAX_REMAINING 268435455u

/* Long enough that no keep-alive PING falls into a run. */
#define KEEPALIVE_S 3600

struct BenchClient {
        struct mosquitto *m;
        BenchMsgFn fn;
        void *userdata;
        int connected; /* 1 connected, -1 refused */
        int acked_mid; /* the last SUBACK */
        bool echo;
        char reply_topic[160];
        bool req_subscribed;
        void *req_buf;
        size_t req_size;
        bool req_waiting, req_done;
        int cb_error;
        char err[256];
};

static int fail(BenchClient *b, int rc, const char *what) {
        snprintf(b->err, sizeof(b->err), "%s: %s", what,
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return -EIO;
}

static uint64_t mosq_max_payload(size_t topic_len) {
        return MQTT_MAX_REMAINING - 2 - topic_len;
}

static void on_connect(struct mosquitto *m, void *userdata, int rc) {
        BenchClient *b = userdata;

        (void)m;
        b->connected = rc == 0 ? 1 : -1;
}

static void on_subscribe(struct mosquitto *m, void *userdata, int mid, int n, const int *granted) {
        BenchClient *b = userdata;

        (void)m;
        (void)n;
        (void)granted;
        b->acked_mid = mid;
}

static void on_message(struct mosquitto *m, void *userdata, const struct mosquitto_message *msg) {
        BenchClient *b = userdata;
        /* The read loop looks at errno after each packet: keep it. */
        int saved = errno;
        size_t size = (size_t)msg->payloadlen;

        if (b->echo) {
                /* In a callback the packet is only queued: process() writes it. */
                int rc = mosquitto_publish(m, NULL, b->reply_topic, msg->payloadlen, msg->payload, 0,
                                           false);
                if (rc != MOSQ_ERR_SUCCESS && !b->cb_error)
                        b->cb_error = rc;
        } else if (b->req_waiting) {
                if (size == b->req_size)
                        memcpy(b->req_buf, msg->payload, size);
                else
                        memset(b->req_buf, 0, b->req_size);
                b->req_done = true;
        } else
                b->fn(b->userdata, msg->payload, size);
        errno = saved;
}

/* Reads packets until the socket is dry (at most 4096). 0 or -EIO. */
static int mq_read(BenchClient *b) {
        int i, rc;

        for (i = 0; i < 4096; i++) {
                errno = 0;
                rc = mosquitto_loop_read(b->m, 1);
                if (rc != MOSQ_ERR_SUCCESS)
                        return fail(b, rc, "read");
                if (b->cb_error)
                        return fail(b, b->cb_error, "publish");
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        break;
        }
        return 0;
}

static int mq_write(BenchClient *b) {
        int rc;

        if (!mosquitto_want_write(b->m))
                return 0;
        rc = mosquitto_loop_write(b->m, 1);
        return rc == MOSQ_ERR_SUCCESS ? 0 : fail(b, rc, "write");
}

/* Waits up to @timeout_ms for the socket, then reads and writes. */
static int mq_turn(BenchClient *b, int timeout_ms) {
        struct pollfd p = { .fd = mosquitto_socket(b->m),
                            .events = (short)(POLLIN | (mosquitto_want_write(b->m) ? POLLOUT : 0)) };

        if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
                return fail(b, MOSQ_ERR_ERRNO, "poll");
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && mq_read(b) < 0)
                return -EIO;
        return mq_write(b);
}

static int mosq_connect(const char *sock, const char *name, BenchClient **ret) {
        static bool initialized;
        BenchClient *b = calloc(1, sizeof(*b));
        double deadline = now_s() + 10;
        int rc;

        (void)name;
        if (!b)
                return -ENOMEM;
        if (!initialized) {
                mosquitto_lib_init();
                initialized = true;
        }
        b->m = mosquitto_new(NULL, true, b);
        if (!b->m) {
                free(b);
                return -ENOMEM;
        }
        mosquitto_connect_callback_set(b->m, on_connect);
        mosquitto_subscribe_callback_set(b->m, on_subscribe);
        mosquitto_message_callback_set(b->m, on_message);
        rc = mosquitto_connect(b->m, sock, 0, KEEPALIVE_S);
        while (rc == MOSQ_ERR_SUCCESS && b->connected == 0 && now_s() < deadline)
                rc = mq_turn(b, 100) < 0 ? MOSQ_ERR_CONN_LOST : MOSQ_ERR_SUCCESS;
        if (rc != MOSQ_ERR_SUCCESS || b->connected != 1) {
                mosquitto_destroy(b->m);
                free(b);
                return rc == MOSQ_ERR_ERRNO ? -errno : -ECONNREFUSED;
        }
        *ret = b;
        return 0;
}

static void mosq_close(BenchClient *b) {
        if (!b)
                return;
        mosquitto_disconnect(b->m);
        mosquitto_destroy(b->m);
        free(b);
}

static int mq_subscribe(BenchClient *b, const char *topic) {
        double deadline = now_s() + 30;
        int mid = 0, rc;

        rc = mosquitto_subscribe(b->m, &mid, topic, 0);
        if (rc != MOSQ_ERR_SUCCESS)
                return fail(b, rc, "subscribe");
        while (b->acked_mid != mid) {
                if (now_s() > deadline) {
                        snprintf(b->err, sizeof(b->err), "subscribe: no SUBACK in 30 s");
                        return -ETIMEDOUT;
                }
                if (mq_turn(b, 100) < 0)
                        return -EIO;
        }
        return 0;
}

static int mosq_subscribe(BenchClient *b, const char *topic, BenchMsgFn fn, void *userdata) {
        b->fn = fn;
        b->userdata = userdata;
        return mq_subscribe(b, topic);
}

static int mosq_serve_echo(BenchClient *b, const char *topic) {
        b->echo = true;
        snprintf(b->reply_topic, sizeof(b->reply_topic), "%s/reply", topic);
        return mq_subscribe(b, topic);
}

static int mosq_publish(BenchClient *b, const char *topic, const void *data, size_t size, bool more) {
        int rc;

        (void)more; /* libmosquitto writes at once, whatever follows */
        if (size > mosq_max_payload(strlen(topic))) {
                snprintf(b->err, sizeof(b->err), "%zu bytes exceed MQTT's packet limit", size);
                return -EMSGSIZE;
        }
        rc = mosquitto_publish(b->m, NULL, topic, (int)size, data, 0, false);
        return rc == MOSQ_ERR_SUCCESS ? 0 : fail(b, rc, "publish");
}

static int mosq_flush(BenchClient *b) {
        while (mosquitto_want_write(b->m)) {
                struct pollfd p = { .fd = mosquitto_socket(b->m), .events = POLLOUT };

                if (poll(&p, 1, 60000) == 0) {
                        snprintf(b->err, sizeof(b->err), "write: no progress in 60 s");
                        return -ETIMEDOUT;
                }
                if (mq_write(b) < 0)
                        return -EIO;
        }
        return 0;
}

static int mosq_sync(BenchClient *b) {
        /* QoS 0 is never acknowledged: written is all one can know. */
        return mosq_flush(b);
}

static int mosq_request(BenchClient *b, const char *topic, const void *data, size_t size,
                        void *reply) {
        double deadline;

        if (!b->req_subscribed) {
                char channel[160];

                snprintf(channel, sizeof(channel), "%s/reply", topic);
                if (mq_subscribe(b, channel) < 0)
                        return -EIO;
                b->req_subscribed = true;
        }
        b->req_buf = reply;
        b->req_size = size;
        b->req_done = false;
        b->req_waiting = true;
        if (mosq_publish(b, topic, data, size, false) < 0)
                return -EIO;
        deadline = now_s() + 60;
        while (!b->req_done) {
                if (now_s() > deadline) {
                        snprintf(b->err, sizeof(b->err), "no reply in 60 s");
                        return -ETIMEDOUT;
                }
                if (mq_turn(b, 1000) < 0)
                        return -EIO;
        }
        b->req_waiting = false;
        return 0;
}

static int mosq_get_fd(BenchClient *b) {
        return mosquitto_socket(b->m);
}

static short mosq_get_events(BenchClient *b) {
        return (short)(POLLIN | (mosquitto_want_write(b->m) ? POLLOUT : 0));
}

static int mosq_process(BenchClient *b, short revents) {
        (void)revents; /* reading a dry non-blocking socket costs one read() */
        if (mq_read(b) < 0 || mq_write(b) < 0)
                return -EIO;
        return 0;
}

static const char *mosq_last_error(BenchClient *b) {
        return b->err;
}

const BenchSystem bench_mosquitto = {
        .name = "mosquitto",
        .max_payload = mosq_max_payload,
        .connect = mosq_connect,
        .close = mosq_close,
        .subscribe = mosq_subscribe,
        .serve_echo = mosq_serve_echo,
        .publish = mosq_publish,
        .publish_memfd = NULL,
        .flush = mosq_flush,
        .sync = mosq_sync,
        .request = mosq_request,
        .get_fd = mosq_get_fd,
        .get_events = mosq_get_events,
        .process = mosq_process,
        .last_error = mosq_last_error,
};
