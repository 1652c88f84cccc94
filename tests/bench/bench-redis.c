/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: Redis pub/sub as a peer, through hiredis, over Redis's Unix
 * socket. A client here is up to two connections, because a RESP2
 * connection that has subscribed can only (un)subscribe: one that
 * subscribes and receives, one that publishes. A publisher pipelines:
 * redisAppendCommandArgv() per message, one write for the batch, and the
 * integer replies read as they come (they cost Redis a write each, as
 * they would cost any real publisher). Request/reply: the request is
 * published on TOPIC, the answer on TOPIC/reply.
 *
 * The publishing connection stays blocking, as hiredis makes it: a large
 * command then goes in one write(). On a non-blocking socket hiredis
 * 0.14 moves the unwritten rest of its buffer to the front after every
 * partial write, which makes a 256 MiB PUBLISH take many seconds in the
 * client alone. The subscribing connection is non-blocking, read until
 * it is dry.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "bench.h"

/* Replies a publisher may leave unread before it reads them. */
#define ACKS_UNREAD_MAX 1024

/* hiredis reads 16 KiB per read(): a shorter read drained the socket. */
#define HIREDIS_READ_SIZE (16 * 1024)

struct BenchClient {
        char sock[108];
        redisContext *pub; /* PUBLISH, and its integer replies */
        redisContext *sub; /* SUBSCRIBE, then messages */
        bool pub_used;
        uint64_t pending; /* PUBLISH replies not read yet */
        BenchMsgFn fn;
        void *userdata;
        bool echo;             /* a responder: answers go to reply_topic */
        char reply_topic[160];
        bool req_subscribed;   /* a requester: subscribed to TOPIC/reply */
        void *req_buf;
        size_t req_size;
        bool req_waiting, req_done;
        char err[256];
};

static int fail(BenchClient *b, redisContext *ctx, const char *what) {
        char why[128];

        /* hiredis's reason, else the one set already (never both). */
        snprintf(why, sizeof(why), "%.127s", ctx && ctx->err ? ctx->errstr : b->err[0] ? b->err : "failed");
        snprintf(b->err, sizeof(b->err), "%.64s: %s", what, why);
        return -EIO;
}

static uint64_t redis_max_payload(size_t topic_len) {
        (void)topic_len;
        return 512ull << 20; /* proto-max-bulk-len */
}

static redisContext *rd_connect(BenchClient *b) {
        redisContext *ctx = redisConnectUnix(b->sock);

        if (!ctx || ctx->err) {
                snprintf(b->err, sizeof(b->err), "connect: %s", ctx ? ctx->errstr : "out of memory");
                redisFree(ctx);
                return NULL;
        }
        return ctx;
}

/* From now on reads and writes return at once; the loops poll. */
static void rd_nonblock(redisContext *ctx) {
        int fl = fcntl(ctx->fd, F_GETFL);

        fcntl(ctx->fd, F_SETFL, fl | O_NONBLOCK);
        ctx->flags &= ~REDIS_BLOCK;
}

static int redis_connect(const char *sock, const char *name, BenchClient **ret) {
        BenchClient *b = calloc(1, sizeof(*b));

        (void)name;
        if (!b)
                return -ENOMEM;
        snprintf(b->sock, sizeof(b->sock), "%s", sock);
        b->pub = rd_connect(b);
        if (!b->pub) {
                free(b);
                return -ECONNREFUSED;
        }
        *ret = b;
        return 0;
}

static void redis_close(BenchClient *b) {
        if (!b)
                return;
        if (b->pub)
                redisFree(b->pub);
        if (b->sub)
                redisFree(b->sub);
        free(b);
}

/* Reads what the socket has, up to 1 MiB. 0 or -EIO. */
static int rd_read(BenchClient *b, redisContext *ctx) {
        int i;

        for (i = 0; i < 64; i++) {
                size_t before = ctx->reader->len;

                errno = 0;
                if (redisBufferRead(ctx) != REDIS_OK)
                        return fail(b, ctx, "read");
                if (errno == EAGAIN || errno == EWOULDBLOCK ||
                    ctx->reader->len - before < HIREDIS_READ_SIZE)
                        break;
        }
        return 0;
}

/* Takes the PUBLISH replies that have been read. */
static int rd_acks(BenchClient *b) {
        void *r;

        for (;;) {
                redisReply *rep;

                if (redisGetReplyFromReader(b->pub, &r) != REDIS_OK)
                        return fail(b, b->pub, "reply");
                if (!r)
                        return 0;
                rep = r;
                if (rep->type == REDIS_REPLY_ERROR) {
                        snprintf(b->err, sizeof(b->err), "PUBLISH: %s", rep->str);
                        freeReplyObject(rep);
                        return -EIO;
                }
                freeReplyObject(rep);
                if (b->pending > 0)
                        b->pending--;
        }
}

/* Reads the PUBLISH replies that have arrived, without blocking. */
static int rd_read_acks(BenchClient *b) {
        int i;

        for (i = 0; i < 64; i++) {
                struct pollfd p = { .fd = b->pub->fd, .events = POLLIN };

                if (poll(&p, 1, 0) <= 0)
                        break;
                if (redisBufferRead(b->pub) != REDIS_OK)
                        return fail(b, b->pub, "read");
        }
        return rd_acks(b);
}

/* Writes what was appended to the (blocking) publishing connection. */
static int rd_write_all(BenchClient *b) {
        int done = 0;

        while (!done)
                if (redisBufferWrite(b->pub, &done) != REDIS_OK)
                        return fail(b, b->pub, "write");
        return 0;
}

static int redis_subscribe_as(BenchClient *b, const char *topic) {
        redisReply *rep;

        if (!b->sub) {
                if (b->pub && !b->pub_used) {
                        b->sub = b->pub;
                        b->pub = NULL;
                } else if (!(b->sub = rd_connect(b)))
                        return -ECONNREFUSED;
        }
        rep = redisCommand(b->sub, "SUBSCRIBE %s", topic);
        if (!rep)
                return fail(b, b->sub, "SUBSCRIBE");
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
                snprintf(b->err, sizeof(b->err), "SUBSCRIBE: %s",
                         rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
                freeReplyObject(rep);
                return -EIO;
        }
        freeReplyObject(rep);
        rd_nonblock(b->sub);
        return 0;
}

static int redis_subscribe(BenchClient *b, const char *topic, BenchMsgFn fn, void *userdata) {
        b->fn = fn;
        b->userdata = userdata;
        return redis_subscribe_as(b, topic);
}

static int redis_serve_echo(BenchClient *b, const char *topic) {
        b->echo = true;
        snprintf(b->reply_topic, sizeof(b->reply_topic), "%s/reply", topic);
        return redis_subscribe_as(b, topic);
}

static int rd_append(BenchClient *b, const char *topic, const void *data, size_t size) {
        const char *argv[3] = { "PUBLISH", topic, data };
        size_t lens[3] = { 7, strlen(topic), size };

        if (!b->pub) {
                b->pub = rd_connect(b);
                if (!b->pub)
                        return -ECONNREFUSED;
        }
        b->pub_used = true;
        if (redisAppendCommandArgv(b->pub, 3, argv, lens) != REDIS_OK)
                return fail(b, b->pub, "PUBLISH");
        b->pending++;
        return 0;
}

static int redis_flush(BenchClient *b) {
        if (!b->pub || !b->pub_used)
                return 0;
        if (rd_write_all(b) < 0)
                return -EIO;
        if (b->pending >= ACKS_UNREAD_MAX)
                return rd_read_acks(b);
        return 0;
}

static int redis_publish(BenchClient *b, const char *topic, const void *data, size_t size, bool more) {
        int r = rd_append(b, topic, data, size);

        if (r < 0 || more)
                return r;
        return redis_flush(b);
}

static int redis_sync(BenchClient *b) {
        if (redis_flush(b) < 0)
                return -EIO;
        while (b->pending > 0) {
                struct pollfd p = { .fd = b->pub->fd, .events = POLLIN };

                if (poll(&p, 1, 60000) == 0) {
                        snprintf(b->err, sizeof(b->err), "%llu PUBLISH replies missing",
                                 (unsigned long long)b->pending);
                        return -ETIMEDOUT;
                }
                if (rd_read_acks(b) < 0)
                        return -EIO;
        }
        return 0;
}

/* Handles the messages the subscriber connection has read. */
static int rd_dispatch(BenchClient *b) {
        int n = 0;
        void *r;

        for (;;) {
                redisReply *rep;

                if (redisGetReplyFromReader(b->sub, &r) != REDIS_OK)
                        return fail(b, b->sub, "message");
                if (!r)
                        break;
                rep = r;
                if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                    rep->element[0]->type == REDIS_REPLY_STRING &&
                    strcmp(rep->element[0]->str, "message") == 0) {
                        const redisReply *p = rep->element[2];

                        if (b->echo) {
                                if (rd_append(b, b->reply_topic, p->str, p->len) < 0) {
                                        freeReplyObject(rep);
                                        return -EIO;
                                }
                        } else if (b->req_waiting) {
                                if (p->len == b->req_size)
                                        memcpy(b->req_buf, p->str, p->len);
                                else
                                        memset(b->req_buf, 0, b->req_size);
                                b->req_done = true;
                        } else
                                b->fn(b->userdata, p->str, p->len);
                        n++;
                }
                freeReplyObject(rep);
        }
        if (b->echo && n > 0 && redis_flush(b) < 0)
                return -EIO;
        return n;
}

static int redis_request(BenchClient *b, const char *topic, const void *data, size_t size,
                         void *reply) {
        if (!b->req_subscribed) {
                char channel[160];

                snprintf(channel, sizeof(channel), "%s/reply", topic);
                if (redis_subscribe_as(b, channel) < 0)
                        return -EIO;
                b->req_subscribed = true;
        }
        b->req_buf = reply;
        b->req_size = size;
        b->req_done = false;
        b->req_waiting = true;
        if (redis_publish(b, topic, data, size, false) < 0)
                return -EIO;
        while (!b->req_done) {
                struct pollfd p = { .fd = b->sub->fd, .events = POLLIN };

                if (poll(&p, 1, 60000) == 0) {
                        snprintf(b->err, sizeof(b->err), "no reply in 60 s");
                        return -ETIMEDOUT;
                }
                if (rd_read(b, b->sub) < 0 || rd_dispatch(b) < 0)
                        return -EIO;
        }
        b->req_waiting = false;
        return 0;
}

static int redis_get_fd(BenchClient *b) {
        return b->sub ? b->sub->fd : b->pub->fd;
}

static short redis_get_events(BenchClient *b) {
        (void)b;
        return POLLIN;
}

static int redis_process(BenchClient *b, short revents) {
        int n = 0;

        if (b->sub) {
                if (rd_read(b, b->sub) < 0)
                        return -EIO;
                n = rd_dispatch(b);
                if (n < 0)
                        return n;
        } else if (revents & POLLIN) {
                if (rd_read_acks(b) < 0)
                        return -EIO;
        }
        if (b->pub_used && b->pending >= ACKS_UNREAD_MAX && rd_read_acks(b) < 0)
                return -EIO;
        return n;
}

static const char *redis_last_error(BenchClient *b) {
        return b->err;
}

const BenchSystem bench_redis = {
        .name = "redis",
        .max_payload = redis_max_payload,
        .connect = redis_connect,
        .close = redis_close,
        .subscribe = redis_subscribe,
        .serve_echo = redis_serve_echo,
        .publish = redis_publish,
        .publish_memfd = NULL,
        .flush = redis_flush,
        .sync = redis_sync,
        .request = redis_request,
        .get_fd = redis_get_fd,
        .get_events = redis_get_events,
        .process = redis_process,
        .last_error = redis_last_error,
};
