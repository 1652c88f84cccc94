/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of the frame, broker, client and topic harnesses:
 * `gen-corpus DIR` makes DIR/frame, DIR/broker, DIR/client and DIR/topic and fills
 * them. The corpus in the source tree is its output (`make fuzz-corpus`
 * writes it again); the config seeds are sample files, copied by hand.
 *
 *  - frame: the first byte is the number of fds, then a client's byte
 *    stream: HELLO and a frame of each kind, valid ones of every kind a
 *    client sends (with their variants) and the broker's own kinds.
 *  - broker: scripts of fuzz-broker operations (fuzz-broker.h) that reach
 *    publish/subscribe, retained messages, queue groups, request/reply,
 *    the admin commands, the access rules, the overflow policies, fds and
 *    bulk payloads, timers and malformed input.
 *  - client: what a broker sends a client, after a byte that says how
 *    many fds come with it and when (fuzz-client.c).
 *  - topic: lists of names and filters, '\n' apart, after a flags byte.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz-broker.h"
#include "util.h"
#include "wire.h"

typedef struct Buf {
        uint8_t data[65536];
        size_t len;
} Buf;

static const char *out_dir;

static void put(Buf *b, const void *p, size_t n) {
        if (b->len + n > sizeof(b->data)) {
                fprintf(stderr, "gen-corpus: seed too large\n");
                exit(1);
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

static void put_u8(Buf *b, unsigned v) {
        uint8_t c = (uint8_t)v;
        put(b, &c, 1);
}

static void put_str(Buf *b, const char *s) {
        put(b, s, strlen(s));
}

static void save(const char *harness, const char *name, const Buf *b) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", out_dir, harness);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                fprintf(stderr, "gen-corpus: %s: %s\n", path, strerror(errno));
                exit(1);
        }
        snprintf(path, sizeof(path), "%s/%s/%s", out_dir, harness, name);
        f = fopen(path, "wb");
        if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
                fprintf(stderr, "gen-corpus: cannot write %s\n", path);
                exit(1);
        }
}

/* ---- frame ---- */

static void frame(Buf *b, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr, uint8_t n_fds,
                  const void *meta, size_t meta_len, const char *topic, const void *payload,
                  size_t payload_len) {
        uint8_t f[4096];
        size_t n = wire_frame_encode(f, sizeof(f), kind, flags, type, corr, n_fds, meta, meta_len, topic,
                                     topic ? strlen(topic) : 0, payload, payload_len);
        if (n == 0) {
                fprintf(stderr, "gen-corpus: frame does not encode\n");
                exit(1);
        }
        put(b, f, n);
}

static void hello(Buf *b) {
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        frame(b, WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta), NULL, "seed", 4);
}

static void subscribe(Buf *b, uint64_t corr, uint32_t id, const char *filter, uint8_t flags,
                      const uint32_t *types, size_t n_types, const char *group) {
        uint8_t meta[WIRE_META_SUBSCRIBE], payload[512];
        size_t plen = 0, i;
        WireSubscribe ws = { .sub_id = id, .n_types = (uint16_t)n_types,
                             .group_len = (uint8_t)(group ? strlen(group) : 0), .flags = flags };

        wire_subscribe_encode(meta, &ws);
        for (i = 0; i < n_types; i++, plen += 4)
                le32_write(payload + plen, types[i]);
        if (group) {
                memcpy(payload + plen, group, strlen(group));
                plen += strlen(group);
        }
        frame(b, WIRE_SUBSCRIBE, 0, 0, corr, 0, meta, sizeof(meta), filter, payload, plen);
}

static void frame_seed(const char *name, unsigned n_fds, void (*body)(Buf *b)) {
        Buf b = { .len = 0 };
        put_u8(&b, n_fds);
        body(&b);
        save("frame", name, &b);
}

static void f_hello(Buf *b) {
        hello(b);
}
static void f_subscribe(Buf *b) {
        static const uint32_t types[] = { 1, 7 };
        hello(b);
        subscribe(b, 2, 1, "sensors/#", 0, NULL, 0, NULL);
        subscribe(b, 3, 2, "jobs/+", WIRE_SUB_F_NO_RETAINED, types, 2, "workers");
        subscribe(b, 4, 3, "$SYS/#", 0, NULL, 0, NULL);
}
static void f_unsubscribe(Buf *b) {
        uint8_t meta[WIRE_META_UNSUBSCRIBE] = { 0 };
        hello(b);
        subscribe(b, 2, 1, "a/+", 0, NULL, 0, NULL);
        le32_write(meta, 1);
        frame(b, WIRE_UNSUBSCRIBE, 0, 0, 3, 0, meta, sizeof(meta), NULL, NULL, 0);
        frame(b, WIRE_UNSUBSCRIBE, 0, 0, 4, 0, meta, sizeof(meta), NULL, NULL, 0);
}
static void f_publish(Buf *b) {
        hello(b);
        subscribe(b, 2, 1, "#", 0, NULL, 0, NULL);
        frame(b, WIRE_PUBLISH, WIRE_F_ACK, 42, 3, 0, NULL, 0, "sensors/temp", "21.5", 4);
        frame(b, WIRE_PUBLISH, WIRE_F_RETAIN, 1, 4, 0, NULL, 0, "sensors/temp", "r", 1);
        frame(b, WIRE_PUBLISH, WIRE_F_RETAIN | WIRE_F_ACK, 1, 5, 0, NULL, 0, "sensors/temp", NULL, 0);
        frame(b, WIRE_PUBLISH, 0, 0, 6, 0, NULL, 0, "$SYS/x", "no", 2);
}
static void f_publish_fds(Buf *b) {
        uint8_t meta[8];
        hello(b);
        subscribe(b, 2, 1, "#", 0, NULL, 0, NULL);
        le64_write(meta, 16);
        /* fds 0 (sealed memfd) and 1 go with the bulk one, 2 and 3 with the next. */
        frame(b, WIRE_PUBLISH, WIRE_F_BULK | WIRE_F_ACK, 1, 3, 2, meta, sizeof(meta), "bulk/x", NULL, 0);
        frame(b, WIRE_PUBLISH, WIRE_F_ACK, 2, 4, 2, NULL, 0, "fds/x", "two fds", 7);
}
static void f_ping(Buf *b) {
        hello(b);
        frame(b, WIRE_PING, 0, 0, 2, 0, NULL, 0, NULL, "are you there", 13);
        frame(b, WIRE_PONG, 0, 0, 3, 0, NULL, 0, NULL, NULL, 0);
}
static void f_request(Buf *b) {
        uint8_t meta[WIRE_META_REQUEST] = { 0 }, rmeta[WIRE_META_REPLY] = { 0 };
        hello(b);
        subscribe(b, 2, 1, "svc/#", WIRE_SUB_F_RESPONDER, NULL, 0, NULL);
        le32_write(meta, 1000);
        frame(b, WIRE_REQUEST, 0, 1, 3, 0, meta, sizeof(meta), "svc/echo", "hi", 2);
        /* The broker's first request id is 1. */
        frame(b, WIRE_REPLY, 0, 1, 1, 0, rmeta, sizeof(rmeta), NULL, "ho", 2);
        frame(b, WIRE_REPLY, 0, 1, 99, 0, rmeta, sizeof(rmeta), NULL, "late", 4);
        frame(b, WIRE_REQUEST, 0, 1, 4, 0, meta, sizeof(meta), "nobody/home", NULL, 0);
}
static void f_admin(Buf *b) {
        hello(b);
        frame(b, WIRE_ADMIN, 0, 0, 2, 0, NULL, 0, "status", NULL, 0);
        frame(b, WIRE_ADMIN, 0, 0, 3, 0, NULL, 0, "clients", NULL, 0);
        frame(b, WIRE_ADMIN, 0, 0, 4, 0, NULL, 0, "topics", "#", 1);
        frame(b, WIRE_ADMIN, 0, 0, 5, 0, NULL, 0, "reload", NULL, 0);
        frame(b, WIRE_ADMIN, 0, 0, 6, 0, NULL, 0, "kick", "7", 1);
        frame(b, WIRE_ADMIN, 0, 0, 7, 0, NULL, 0, "nonsense", NULL, 0);
        frame(b, WIRE_ADMIN, 0, 0, 8, 0, NULL, 0, "kick", "1", 1);
}
static void f_monitor(Buf *b) {
        hello(b);
        subscribe(b, 2, 1, "$SYS/monitor/#", 0, NULL, 0, NULL);
        frame(b, WIRE_PUBLISH, 0, 3, 3, 0, NULL, 0, "a/b", "watched", 7);
}
/* Kinds only the broker sends, each answered with a fatal bad-kind. */
static void f_broker_kinds(Buf *b) {
        uint8_t meta[40] = { 0 };
        hello(b);
        frame(b, WIRE_WELCOME, 0, 0, 2, 0, meta, WIRE_META_WELCOME, NULL, NULL, 0);
}
static void f_message(Buf *b) {
        uint8_t meta[32] = { 0 };
        hello(b);
        frame(b, WIRE_MESSAGE, 0, 0, 2, 0, meta, WIRE_META_MESSAGE, "a", "x", 1);
}
static void f_error(Buf *b) {
        uint8_t meta[8] = { 0 };
        hello(b);
        frame(b, WIRE_ERROR, WIRE_F_FATAL, 0, 2, 0, meta, WIRE_META_ERROR, NULL, "bye", 3);
}
static void f_ack(Buf *b) {
        hello(b);
        frame(b, WIRE_ACK, 0, 0, 2, 0, NULL, 0, NULL, NULL, 0);
}
static void f_admin_reply(Buf *b) {
        hello(b);
        frame(b, WIRE_ADMIN_REPLY, 0, 0, 2, 0, NULL, 0, NULL, "{}", 2);
}
static void f_goodbye(Buf *b) {
        hello(b);
        frame(b, WIRE_GOODBYE, 0x10, 0, 2, 0, "any", 3, "t", "x", 1);
}
static void f_no_hello(Buf *b) {
        frame(b, WIRE_PING, 0, 0, 1, 0, NULL, 0, NULL, NULL, 0);
}

/* ---- broker ---- */

static unsigned filter_index(const char *f) {
        unsigned i;
        for (i = 0; i < FUZZ_BROKER_N_FILTERS; i++)
                if (strcmp(fuzz_broker_filters[i], f) == 0)
                        return i;
        fprintf(stderr, "gen-corpus: no filter '%s'\n", f);
        exit(1);
}

static unsigned topic_index(const char *t) {
        unsigned i;
        for (i = 0; i < FUZZ_BROKER_N_TOPICS; i++)
                if (strcmp(fuzz_broker_topics[i], t) == 0)
                        return i;
        fprintf(stderr, "gen-corpus: no topic '%s'\n", t);
        exit(1);
}

static unsigned uid_index(uid_t uid) {
        unsigned i;
        for (i = 0; i < FUZZ_BROKER_N_UIDS; i++)
                if (fuzz_broker_uids[i] == uid)
                        return i;
        exit(1);
}

/* A payload field: @s, at most 63 bytes. */
static void payload(Buf *b, const char *s) {
        put_u8(b, (unsigned)strlen(s));
        put_str(b, s);
}

static void o_connect(Buf *b, unsigned slot, uid_t uid) {
        put_u8(b, fuzz_broker_op(OP_CONNECT, slot));
        put_u8(b, uid_index(uid)); /* and HELLO */
        put_u8(b, 0);              /* named "fuzz" */
}

static void o_subscribe(Buf *b, unsigned slot, unsigned id, const char *filter, unsigned flags,
                        unsigned n_types, unsigned type) {
        unsigned i;
        put_u8(b, fuzz_broker_op(OP_SUBSCRIBE, slot));
        put_u8(b, id - 1);
        put_u8(b, flags | n_types << 3);
        put_u8(b, filter_index(filter));
        for (i = 0; i < n_types; i++)
                put_u8(b, type + i);
}

static void o_unsubscribe(Buf *b, unsigned slot, unsigned id) {
        put_u8(b, fuzz_broker_op(OP_UNSUBSCRIBE, slot));
        put_u8(b, id - 1);
}

/* PUBLISH or REQUEST (flags as fuzz-broker reads them: RETAIN 1, BULK 2,
 * ACK 4; the top two bits pick a REQUEST's timeout). */
static void o_send(Buf *b, unsigned op, unsigned slot, unsigned flags, unsigned type, const char *topic,
                   const char *text, unsigned fds_sel) {
        put_u8(b, fuzz_broker_op(op, slot));
        put_u8(b, flags);
        put_u8(b, type);
        put_u8(b, 16); /* bulk size */
        put_u8(b, topic_index(topic));
        if (!(flags & 2))
                payload(b, text);
        put_u8(b, fds_sel);
}

static void o_reply(Buf *b, unsigned slot, const char *text) {
        put_u8(b, fuzz_broker_op(OP_REPLY, slot));
        put_u8(b, 0);
        put_u8(b, 1);
        put_u8(b, 0);
        payload(b, text);
        put_u8(b, 0); /* no fds */
        put_u8(b, 0); /* the first request it received */
}

static void o_admin(Buf *b, unsigned slot, unsigned cmd, unsigned arg) {
        put_u8(b, fuzz_broker_op(OP_ADMIN, slot));
        put_u8(b, cmd);
        put_u8(b, arg);
        if (cmd == 2 && arg < 128)
                put_u8(b, filter_index("#"));
}

static void o_plain(Buf *b, unsigned op, unsigned slot) {
        put_u8(b, fuzz_broker_op(op, slot));
}

static void s_pubsub(Buf *b) {
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        o_subscribe(b, 1, 1, "#", 0, 0, 0);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "hello", 0);
        o_send(b, OP_PUBLISH, 0, 1, 2, "a/b", "retained", 0);
        o_subscribe(b, 1, 2, "a/+", 0, 1, 2);
        o_subscribe(b, 1, 3, "a/#", WIRE_SUB_F_NO_RETAINED, 0, 0);
        o_send(b, OP_PUBLISH, 0, 5, 2, "a/b", "", 0);
        o_unsubscribe(b, 1, 1);
        o_unsubscribe(b, 1, 1);
        put_u8(b, fuzz_broker_op(OP_PING, 0));
        payload(b, "ping");
        o_admin(b, 1, 0, 0);
        o_admin(b, 1, 1, 0);
        o_admin(b, 1, 2, 0);
        o_plain(b, OP_CLOSE, 0);
}

static void s_groups(Buf *b) {
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        o_connect(b, 2, 0);
        o_subscribe(b, 1, 1, "a/#", 0x04, 0, 0);
        o_subscribe(b, 2, 1, "a/+", 0x04, 0, 0);
        o_subscribe(b, 2, 2, "#", 0, 0, 0);
        o_send(b, OP_PUBLISH, 0, 0, 1, "a/b", "one", 0);
        o_send(b, OP_PUBLISH, 0, 0, 1, "a/b", "two", 0);
        o_send(b, OP_PUBLISH, 0, 0, 1, "a", "three", 0);
        o_unsubscribe(b, 2, 1);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "four", 0);
        o_admin(b, 0, 2, 0);
}

static void s_reqrep(Buf *b) {
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        o_subscribe(b, 1, 1, "svc/#", WIRE_SUB_F_RESPONDER, 0, 0);
        o_send(b, OP_REQUEST, 0, 0, 1, "svc/echo", "question", 0);
        o_reply(b, 1, "answer");
        o_send(b, OP_REQUEST, 0, 0x40, 1, "svc/echo", "again", 0);
        o_plain(b, OP_TIMER, 0);
        put_u8(b, 0);
        o_send(b, OP_REQUEST, 0, 0x40, 1, "svc/x/y", "gone", 0);
        o_plain(b, OP_CLOSE, 1);
        o_send(b, OP_REQUEST, 0, 0, 1, "svc/echo", "nobody", 0);
        o_connect(b, 1, 0);
        o_subscribe(b, 1, 1, "svc/+", WIRE_SUB_F_RESPONDER, 1, 1);
        o_send(b, OP_REQUEST, 0, 0x02, 1, "svc/echo", "", 1);
        o_reply(b, 1, "bulk");
        o_subscribe(b, 0, 1, "$SYS/monitor/#", 0, 0, 0);
        o_send(b, OP_REQUEST, 0, 0, 1, "svc/echo", "watched", 0);
        o_reply(b, 1, "seen");
}

static void s_rules(Buf *b) {
        put_u8(b, 1);
        o_connect(b, 0, FUZZ_UID_PUBLISHER);
        o_connect(b, 1, FUZZ_UID_ADMIN);
        o_connect(b, 2, FUZZ_UID_GROUPED);
        o_connect(b, 3, FUZZ_UID_NOBODY);
        o_subscribe(b, 1, 1, "#", 0, 0, 0);
        o_subscribe(b, 2, 1, "t/ro/#", 0, 0, 0);
        o_subscribe(b, 2, 2, "#", 0, 0, 0);
        o_subscribe(b, 3, 1, "pub/#", 0, 0, 0);
        o_subscribe(b, 3, 2, "t/#", 0, 0, 0);
        o_subscribe(b, 0, 1, "t/+/+", 0, 0, 0);
        o_subscribe(b, 0, 2, "svc/+", WIRE_SUB_F_RESPONDER, 0, 0);
        o_send(b, OP_PUBLISH, 0, 4, 1, "t/a", "a", 0);
        o_send(b, OP_PUBLISH, 0, 5, 1, "t/ro/a", "ro", 0);
        o_send(b, OP_PUBLISH, 0, 4, 3, "t/ro/a", "type", 0);
        o_send(b, OP_PUBLISH, 0, 4, 1, "t/small/a", "more than sixteen bytes", 2);
        o_send(b, OP_PUBLISH, 0, 4, 1, "pub/x", "x", 0);
        o_send(b, OP_PUBLISH, 3, 4, 1, "pub/x", "nobody", 0);
        o_send(b, OP_PUBLISH, 3, 4, 1, "t/a", "denied", 0);
        o_send(b, OP_REQUEST, 2, 0, 7, "svc/ro/x", "q", 0);
        o_send(b, OP_REQUEST, 1, 0, 1, "svc/echo", "denied", 0);
        o_admin(b, 1, 3, 3);
        o_admin(b, 1, 4, 0);
        o_admin(b, 0, 1, 0);
        o_admin(b, 0, 0, 0);
        o_connect(b, 3, FUZZ_UID_ADMIN);
        o_connect(b, 2, FUZZ_UID_ADMIN);
}

/* A reader that stops reading, under each overflow policy. */
static void s_overflow(Buf *b, unsigned setup) {
        put_u8(b, setup);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        o_subscribe(b, 1, 1, "#", 0, 0, 0);
        o_plain(b, OP_STALL, 1);
        put_u8(b, fuzz_broker_op(OP_FLOOD, 0));
        put_u8(b, 40);
        put_u8(b, 4);
        put_u8(b, 0xff); /* 3000 bytes */
        put_u8(b, topic_index("a/b"));
        put_u8(b, fuzz_broker_op(OP_PING, 0));
        payload(b, "still there?");
        o_plain(b, OP_STALL, 1);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "after", 0);
}

static void s_fds(Buf *b) {
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        o_subscribe(b, 1, 1, "#", 0, 0, 0);
        o_send(b, OP_PUBLISH, 0, 2 | 4, 1, "a/b", "", 2);               /* bulk, sealed memfd + 1 */
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "fds", 3 | 1 << 2 | 2 << 4); /* 3 fds */
        o_send(b, OP_PUBLISH, 0, 2 | 4, 1, "a/b", "", 0x80 | 1 | 3 << 2); /* unsealed memfd */
        o_send(b, OP_PUBLISH, 0, 1 | 2 | 4, 1, "a/b", "", 1);           /* retained bulk */
        o_subscribe(b, 1, 2, "a/+", 0, 0, 0);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "too many", 0xfc);          /* 20 fds */
}

static void s_malformed(Buf *b) {
        static const uint8_t junk[] = { 0x20, 0, 0, 0, 2, 6, 0, 0 };
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        put_u8(b, fuzz_broker_op(OP_SPLIT, 0));
        put_u8(b, 10);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "split", 0);
        put_u8(b, fuzz_broker_op(OP_MUTATE, 0));
        put_u8(b, WIRE_PUBLISH - 1);
        put_u8(b, 18); /* n_fds */
        put_u8(b, 1);
        put_u8(b, 0);
        payload(b, "x");
        put_u8(b, topic_index("a"));
        put_u8(b, fuzz_broker_op(OP_RAW, 1));
        put_u8(b, 1); /* one fd */
        put_u8(b, sizeof(junk));
        put(b, junk, sizeof(junk));
        o_plain(b, OP_SHUTDOWN, 1);
        o_connect(b, 2, 0);
        o_plain(b, OP_BATCH, 2);
        o_send(b, OP_PUBLISH, 2, 4, 1, "a/b", "one", 0);
        o_send(b, OP_PUBLISH, 2, 4, 1, "a/b", "two", 0);
        o_plain(b, OP_PUMP, 2);
}

/* ---- client ---- */

/* What a broker sends after the handshake: deliveries for the harness's
 * subscriptions ("#" is 1, the responder "svc/#" 2, the group member
 * "a/+" 0x80000001), a request, answers nobody asked for, and a fatal
 * ERROR at the end. */
static void client_seed(const char *name, unsigned first, void (*body)(Buf *b)) {
        Buf b = { .len = 0 };
        put_u8(&b, first);
        body(&b);
        save("client", name, &b);
}

static void delivery(Buf *b, uint8_t kind, uint16_t flags, uint32_t sub, const char *topic,
                     uint64_t corr, uint8_t n_fds, uint64_t bulk, const char *text) {
        uint8_t meta[WIRE_META_REQUEST_IN] = { 0 };
        WireDelivery d = { .sender_pid = 1, .sender_uid = 2, .sender_gid = 3, .sub_id = sub, .seq = 4,
                           .bulk_size = bulk };
        wire_delivery_encode(meta, &d);
        if (kind == WIRE_REQUEST)
                le32_write(meta + WIRE_META_REPLY_IN, 1000);
        frame(b, kind, flags, 5, corr, n_fds, meta,
              kind == WIRE_REQUEST ? WIRE_META_REQUEST_IN : kind == WIRE_REPLY ? WIRE_META_REPLY_IN : WIRE_META_MESSAGE,
              topic, text, text ? strlen(text) : 0);
}

static void c_messages(Buf *b) {
        delivery(b, WIRE_MESSAGE, 0, 1, "x/y", 0, 0, 0, "hello");
        delivery(b, WIRE_MESSAGE, WIRE_F_RETAIN, 1, "x/y", 0, 0, 0, "retained");
        delivery(b, WIRE_MESSAGE, 0, 0x80000001u, "a/b", 0, 0, 0, "grouped");
        delivery(b, WIRE_MESSAGE, 0, 9, "a/b", 0, 0, 0, "nobody's");
        frame(b, WIRE_PING, 0, 0, 77, 0, NULL, 0, NULL, "ping", 4);
}
static void c_fds(Buf *b) {
        /* fd 0 is the sealed memfd, 1 the unsealed one, 2 /dev/null, 3 a pipe. */
        delivery(b, WIRE_MESSAGE, WIRE_F_BULK, 1, "bulk", 0, 2, 16, NULL);
        delivery(b, WIRE_MESSAGE, WIRE_F_BULK, 1, "bad/bulk", 0, 1, 8, NULL);
        delivery(b, WIRE_MESSAGE, 0, 1, "fds", 0, 1, 0, "one fd");
}
static void c_request(Buf *b) {
        delivery(b, WIRE_REQUEST, 0, 2, "svc/echo", 41, 0, 0, "question");
        delivery(b, WIRE_REPLY, 0, 0, "svc/echo", 42, 0, 0, "unasked");
        frame(b, WIRE_ACK, 0, 0, 43, 0, NULL, 0, NULL, NULL, 0);
        frame(b, WIRE_ADMIN_REPLY, 0, 0, 44, 0, NULL, 0, NULL, "{}", 2);
}
static void c_error(Buf *b) {
        uint8_t meta[WIRE_META_ERROR];
        delivery(b, WIRE_MESSAGE, 0, 1, "x", 0, 0, 0, "before");
        wire_error_meta_encode(meta, WIRE_E_KICKED, 0);
        frame(b, WIRE_ERROR, WIRE_F_FATAL, 0, 0, 0, meta, sizeof(meta), NULL, "kicked", 6);
        delivery(b, WIRE_MESSAGE, 0, 1, "x", 0, 0, 0, "after");
}
static void c_welcome(Buf *b) {
        uint8_t meta[WIRE_META_WELCOME];
        WireWelcome w = { .client_id = 1, .max_payload = 100, .max_topic_len = 10, .max_fds = 0,
                          .max_subscriptions = 1, .max_types_per_sub = 64 };
        wire_welcome_encode(meta, &w);
        frame(b, WIRE_WELCOME, 0, 0, 1, 0, meta, sizeof(meta), NULL, "ipcd", 4);
}

/* Reloads: a tighter configuration, then one that does not load. */
static void s_reload(Buf *b) {
        put_u8(b, 1);
        o_connect(b, 0, FUZZ_UID_ADMIN);
        o_connect(b, 1, FUZZ_UID_PUBLISHER);
        o_connect(b, 2, 0);
        o_subscribe(b, 0, 1, "#", 0, 0, 0);
        o_subscribe(b, 0, 2, "$SYS/#", 0, 0, 0);
        o_subscribe(b, 1, 1, "t/+/a", 0, 0, 0);
        o_subscribe(b, 2, 1, "svc/#", WIRE_SUB_F_RESPONDER, 0, 0);
        o_send(b, OP_PUBLISH, 1, 1 | 4, 1, "t/x/a", "retained before", 0);
        o_send(b, OP_REQUEST, 1, 0, 1, "svc/echo", "pending over the reload", 0);
        put_u8(b, fuzz_broker_op(OP_CONFIG, 0));
        put_u8(b, 1);
        o_admin(b, 0, 4, 0);
        o_send(b, OP_PUBLISH, 1, 4, 1, "t/a", "after", 0);
        o_send(b, OP_PUBLISH, 1, 4, 1, "t/x/a", "longer than the new payload limit of sixty-four bytes, surely", 0);
        o_plain(b, OP_TIMER, 0);
        put_u8(b, 1);
        o_plain(b, OP_TIMER, 0);
        put_u8(b, 2);
        put_u8(b, fuzz_broker_op(OP_CONFIG, 0));
        put_u8(b, 2);
        o_admin(b, 0, 4, 0);
        o_reply(b, 2, "late");
        o_admin(b, 0, 0, 0);
}

/* A handshake that never ends, a reader that stopped, then the shutdown. */
static void s_goodbye(Buf *b) {
        put_u8(b, 0);
        o_connect(b, 0, 0);
        o_connect(b, 1, 0);
        put_u8(b, fuzz_broker_op(OP_CONNECT, 2));
        put_u8(b, 0x40); /* no HELLO */
        o_subscribe(b, 1, 1, "#", 0, 0, 0);
        o_subscribe(b, 0, 1, "svc/#", WIRE_SUB_F_RESPONDER, 0, 0);
        o_plain(b, OP_STALL, 1);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "queued before the shutdown", 0);
        o_send(b, OP_REQUEST, 1, 0, 1, "svc/echo", "unanswered", 0);
        o_plain(b, OP_TIMER, 0);
        put_u8(b, 0); /* the handshake's deadline */
        o_plain(b, OP_TIMER, 0);
        put_u8(b, 0); /* the request's */
        o_plain(b, OP_GOODBYE, 0);
        o_send(b, OP_PUBLISH, 0, 4, 1, "a/b", "too late", 0);
        o_plain(b, OP_STALL, 1);
}

/* ---- topic ---- */

static void topic_seed(const char *name, unsigned flags, const char *list) {
        Buf b = { .len = 0 };
        put_u8(&b, flags);
        put_str(&b, list);
        save("topic", name, &b);
}

int main(int argc, char **argv) {
        Buf b;

        if (argc != 2) {
                fprintf(stderr, "usage: gen-corpus DIR\n");
                return 2;
        }
        out_dir = argv[1];

        frame_seed("hello", 0, f_hello);
        frame_seed("subscribe", 0, f_subscribe);
        frame_seed("unsubscribe", 0, f_unsubscribe);
        frame_seed("publish", 0, f_publish);
        frame_seed("publish-fds", 4, f_publish_fds);
        frame_seed("ping", 0, f_ping);
        frame_seed("request", 0, f_request);
        frame_seed("admin", 0, f_admin);
        frame_seed("monitor", 0, f_monitor);
        frame_seed("welcome", 0, f_broker_kinds);
        frame_seed("message", 0, f_message);
        frame_seed("error", 0, f_error);
        frame_seed("ack", 0, f_ack);
        frame_seed("admin-reply", 0, f_admin_reply);
        frame_seed("goodbye", 0, f_goodbye);
        frame_seed("no-hello", 0, f_no_hello);

#define SCRIPT(name, call)                     \
        do {                                   \
                b.len = 0;                     \
                call;                          \
                save("broker", name, &b);      \
        } while (0)
        SCRIPT("pubsub", s_pubsub(&b));
        SCRIPT("groups", s_groups(&b));
        SCRIPT("reqrep", s_reqrep(&b));
        SCRIPT("rules", s_rules(&b));
        SCRIPT("drop-new", s_overflow(&b, 0x08));
        SCRIPT("drop-old", s_overflow(&b, 0x08 | 1 << 1));
        SCRIPT("disconnect", s_overflow(&b, 0x08 | 2 << 1));
        SCRIPT("block", s_overflow(&b, 0x08 | 3 << 1));
        SCRIPT("fds", s_fds(&b));
        SCRIPT("malformed", s_malformed(&b));
        SCRIPT("reload", s_reload(&b));
        SCRIPT("goodbye", s_goodbye(&b));

        client_seed("messages", 0, c_messages);
        client_seed("fds", 4, c_fds);
        client_seed("request", 0, c_request);
        client_seed("error", 0, c_error);
        client_seed("welcome", 2 << 6, c_welcome);
        client_seed("early", 3 << 6, c_messages);

        topic_seed("basic", 0x0c, "a/b\n+/b\n#\na/#\n$SYS/x\n$SYS/#\n+\n/\n+/+\na//b\n/a\na/\nx\n");
        topic_seed("groups", 0x1c, "sensors/+/temp\nsensors/#\n+/kitchen/#\nsensors/kitchen/temp\nsensors\n#\n+/#\nsensors/kitchen\n");
        topic_seed("invalid", 0x00, "a#\n#a\na/b#\na/+b\n+a\n++\nc++\n#/a\n#/\na/#/b\n\n\xc0\x80\n\xed\xa0\x80\nok/\xc3\xa9\n");
        topic_seed("short", 0x03, "abcd\nab\n+/+\n#\n");
        return 0;
}
