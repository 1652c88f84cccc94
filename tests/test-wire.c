/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the wire codec (client/wire.c): header and meta codecs,
 * every check wire_header_decode makes, frame encoding, error names and the
 * default socket path. The byte-exact examples of docs/PROTOCOL.md are
 * checked here too, so the document and the code cannot drift apart.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

/*
 * Criterion runs every test in a freshly exec'd worker, copying the
 * parameter bytes but not what they point to. So parameters are indices
 * into static tables, which every worker has at its own address.
 */
#define INDEX_PARAMS(suite, test, table)                                          \
        ParameterizedTestParameters(suite, test) {                                \
                static size_t idx[ARRAY_SIZE(table)];                             \
                for (size_t i = 0; i < ARRAY_SIZE(table); i++)                    \
                        idx[i] = i;                                               \
                return cr_make_param_array(size_t, idx, ARRAY_SIZE(table));       \
        }

static const WireLimits default_limits = {
        .max_payload = WIRE_DEFAULT_MAX_PAYLOAD,
        .max_topic_len = WIRE_DEFAULT_MAX_TOPIC,
        .max_fds = WIRE_DEFAULT_MAX_FDS,
};

static uint32_t frame_size(const WireHeader *h) {
        /* Wraps on purpose for the overflow rows, which set size themselves. */
        return (uint32_t)(WIRE_HEADER_SIZE + h->meta_len + h->topic_len + h->payload_len);
}

static void assert_header_eq(const WireHeader *a, const WireHeader *b, const char *what) {
        cr_assert(eq(u32, a->size, b->size), "%s: size", what);
        cr_assert(eq(u8, a->version, b->version), "%s: version", what);
        cr_assert(eq(u8, a->kind, b->kind), "%s: kind", what);
        cr_assert(eq(u16, a->flags, b->flags), "%s: flags", what);
        cr_assert(eq(u32, a->type, b->type), "%s: type", what);
        cr_assert(eq(u32, a->payload_len, b->payload_len), "%s: payload_len", what);
        cr_assert(eq(u16, a->topic_len, b->topic_len), "%s: topic_len", what);
        cr_assert(eq(u8, a->n_fds, b->n_fds), "%s: n_fds", what);
        cr_assert(eq(u8, a->meta_len, b->meta_len), "%s: meta_len", what);
        cr_assert(eq(u32, a->reserved, b->reserved), "%s: reserved", what);
        cr_assert(eq(u64, a->corr, b->corr), "%s: corr", what);
}

/* ---- Header round trip ------------------------------------------------ */

/* A valid header for each kind, with distinctive values in every field the
 * kind allows. */
static const WireHeader valid_per_kind[] = {
        { .version = 1, .kind = WIRE_HELLO, .meta_len = 8, .payload_len = 64, .corr = 1 },
        { .version = 1, .kind = WIRE_WELCOME, .meta_len = 40, .payload_len = 10,
          .corr = 0x0102030405060708ull },
        { .version = 1, .kind = WIRE_SUBSCRIBE, .meta_len = 8, .topic_len = 1024,
          .payload_len = 4 * 64, .corr = UINT64_MAX },
        { .version = 1, .kind = WIRE_UNSUBSCRIBE, .meta_len = 8, .corr = 77 },
        { .version = 1, .kind = WIRE_ACK, .corr = 0x8000000000000000ull },
        { .version = 1, .kind = WIRE_PUBLISH, .flags = WIRE_F_ACK | WIRE_F_RETAIN,
          .type = 0xdeadbeef, .topic_len = 12, .payload_len = 1u << 20, .corr = 2 },
        { .version = 1, .kind = WIRE_MESSAGE, .flags = WIRE_F_RETAIN, .type = 0xffffffff,
          .meta_len = 32, .topic_len = 3, .payload_len = 5 },
        { .version = 1, .kind = WIRE_ERROR, .flags = WIRE_F_FATAL, .meta_len = 8,
          .payload_len = 200, .corr = 9 },
        { .version = 1, .kind = WIRE_PING, .payload_len = 8, .corr = 10 },
        { .version = 1, .kind = WIRE_PONG, .payload_len = 8, .corr = 10 },
        { .version = 1, .kind = WIRE_REQUEST, .flags = WIRE_F_BULK, .meta_len = WIRE_META_REQUEST,
          .topic_len = 7, .payload_len = 1, .n_fds = 16, .type = 3 },
        { .version = 1, .kind = WIRE_REPLY, .meta_len = WIRE_META_REPLY, .n_fds = 0 },
        { .version = 1, .kind = WIRE_ADMIN, .topic_len = 6, .corr = 11 },
        { .version = 1, .kind = WIRE_ADMIN_REPLY, .payload_len = 4000, .corr = 11 },
        { .version = 1, .kind = WIRE_GOODBYE, .flags = 0x0001, .meta_len = 4, .topic_len = 2 },
};

Test(header, round_trip_every_kind) {
        bool seen[_WIRE_KIND_MAX + 1] = { false };

        for (size_t i = 0; i < ARRAY_SIZE(valid_per_kind); i++) {
                WireHeader in = valid_per_kind[i], out;
                uint8_t buf[WIRE_HEADER_SIZE];
                const char *why = "sentinel";
                WireError e;

                in.size = frame_size(&in);
                memset(&out, 0xa5, sizeof(out));
                wire_header_encode(buf, &in);
                e = wire_header_decode(buf, &default_limits, &out, &why);
                cr_assert(eq(int, e, WIRE_E_OK), "%s: %s", wire_kind_name(in.kind), why);
                cr_assert(zero(ptr, (void *)why), "ret_why is cleared on success");
                assert_header_eq(&out, &in, wire_kind_name(in.kind));
                seen[in.kind] = true;

                /* Encoding what was decoded gives the same bytes again. */
                uint8_t again[WIRE_HEADER_SIZE];
                wire_header_encode(again, &out);
                cr_assert(eq(mem, ((struct cr_mem){ buf, sizeof(buf) }),
                             ((struct cr_mem){ again, sizeof(again) })));
        }
        for (unsigned k = 1; k <= _WIRE_KIND_MAX; k++)
                cr_assert(seen[k], "kind %u has no round-trip row", k);
}

Test(header, null_why_and_null_limits) {
        WireHeader in = { .version = 1, .kind = WIRE_PUBLISH, .topic_len = 65535,
                          .payload_len = 0x7fffffff }, out;
        uint8_t buf[WIRE_HEADER_SIZE];

        in.size = frame_size(&in);
        wire_header_encode(buf, &in);
        /* Without limits only the structure is checked. */
        cr_assert(eq(int, wire_header_decode(buf, NULL, &out, NULL), WIRE_E_OK));
        assert_header_eq(&out, &in, "no limits");
        /* With limits the same header is too large; a NULL why is fine. */
        cr_assert(eq(int, wire_header_decode(buf, &default_limits, &out, NULL), WIRE_E_TOO_LARGE));
}

Test(header, byte_layout) {
        /* Every field at its documented offset, little-endian. */
        WireHeader h = {
                .size = 0x04030201, .version = 0x05, .kind = 0x06, .flags = 0x0807,
                .type = 0x0c0b0a09, .payload_len = 0x100f0e0d, .topic_len = 0x1211,
                .n_fds = 0x13, .meta_len = 0x14, .reserved = 0x18171615,
                .corr = 0x201f1e1d1c1b1a19ull,
        };
        uint8_t buf[WIRE_HEADER_SIZE];

        wire_header_encode(buf, &h);
        for (size_t i = 0; i < sizeof(buf); i++)
                cr_assert(eq(u8, buf[i], (uint8_t)(i + 1)), "byte %zu", i);
        cr_assert(eq(int, WIRE_OFF_SIZE, 0));
        cr_assert(eq(int, WIRE_OFF_VERSION, 4));
        cr_assert(eq(int, WIRE_OFF_KIND, 5));
        cr_assert(eq(int, WIRE_OFF_FLAGS, 6));
        cr_assert(eq(int, WIRE_OFF_TYPE, 8));
        cr_assert(eq(int, WIRE_OFF_PAYLOAD_LEN, 12));
        cr_assert(eq(int, WIRE_OFF_TOPIC_LEN, 16));
        cr_assert(eq(int, WIRE_OFF_N_FDS, 18));
        cr_assert(eq(int, WIRE_OFF_META_LEN, 19));
        cr_assert(eq(int, WIRE_OFF_RESERVED, 20));
        cr_assert(eq(int, WIRE_OFF_CORR, 24));
}

/* The flags each kind may carry, as the protocol document states them.
 * The reserved kind GOODBYE is not constrained yet. */
static const uint16_t allowed_flags[_WIRE_KIND_MAX + 1] = {
        [WIRE_PUBLISH] = WIRE_F_RETAIN | WIRE_F_BULK | WIRE_F_ACK,
        [WIRE_MESSAGE] = WIRE_F_RETAIN | WIRE_F_BULK,
        [WIRE_ERROR] = WIRE_F_FATAL,
        [WIRE_REQUEST] = WIRE_F_BULK,
        [WIRE_REPLY] = WIRE_F_BULK,
        [WIRE_GOODBYE] = 0xffff,
};

Test(header, every_flag_bit_of_every_kind) {
        for (size_t i = 0; i < ARRAY_SIZE(valid_per_kind); i++) {
                for (unsigned bit = 0; bit < 16; bit++) {
                        WireHeader in = valid_per_kind[i], out;
                        uint8_t buf[WIRE_HEADER_SIZE];
                        uint16_t f = (uint16_t)(1u << bit);
                        WireError want;

                        in.flags = f;
                        in.size = frame_size(&in);
                        /* BULK needs its fd, and a meta block on PUBLISH. */
                        if (f == WIRE_F_BULK && in.kind == WIRE_PUBLISH) {
                                in.meta_len = WIRE_META_PUBLISH_BULK;
                                in.n_fds = 1;
                                in.size = frame_size(&in);
                        } else if (f == WIRE_F_BULK && in.n_fds == 0 &&
                                   (in.kind == WIRE_MESSAGE || in.kind == WIRE_REQUEST ||
                                    in.kind == WIRE_REPLY))
                                in.n_fds = 1;

                        if (!(allowed_flags[in.kind] & f))
                                want = WIRE_E_MALFORMED;
                        else if (f == WIRE_F_BULK && in.kind == WIRE_GOODBYE)
                                want = WIRE_E_FDS; /* BULK without fds, and GOODBYE takes none */
                        else
                                want = WIRE_E_OK;

                        wire_header_encode(buf, &in);
                        cr_assert(eq(int, wire_header_decode(buf, &default_limits, &out, NULL), want),
                                  "%s flag 0x%04x", wire_kind_name(in.kind), f);
                }
        }
}

/* ---- Malformed headers ------------------------------------------------- */

typedef struct BadHeader {
        const char *name;
        WireHeader h;
        bool raw_size;   /* use h.size as given instead of the consistent one */
        WireError want;
} BadHeader;

#define V .version = 1

static const BadHeader bad_headers[] = {
        /* version: checked before anything else */
        { "version 0", { .version = 0, .kind = WIRE_PING }, false, WIRE_E_VERSION },
        { "version 2", { .version = 2, .kind = WIRE_PING }, false, WIRE_E_VERSION },
        { "version 255", { .version = 255, .kind = WIRE_HELLO, .meta_len = 8 }, false, WIRE_E_VERSION },
        { "version 2 beats kind 0", { .version = 2, .kind = 0 }, false, WIRE_E_VERSION },
        { "version 2 beats reserved", { .version = 2, .kind = WIRE_PING, .reserved = 1 }, false,
          WIRE_E_VERSION },

        /* kind */
        { "kind 0", { V, .kind = 0 }, false, WIRE_E_KIND },
        { "kind 16", { V, .kind = 16 }, false, WIRE_E_KIND },
        { "kind 255", { V, .kind = 255 }, false, WIRE_E_KIND },
        { "kind 16 beats reserved", { V, .kind = 16, .reserved = 7 }, false, WIRE_E_KIND },

        /* reserved */
        { "reserved 1", { V, .kind = WIRE_PING, .reserved = 1 }, false, WIRE_E_MALFORMED },
        { "reserved top bit", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .reserved = 0x80000000u },
          false, WIRE_E_MALFORMED },
        { "reserved on a reserved kind", { V, .kind = WIRE_GOODBYE, .reserved = 0x100 }, false,
          WIRE_E_MALFORMED },

        /* undefined flags, one row per kind at least */
        { "HELLO RETAIN", { V, .kind = WIRE_HELLO, .meta_len = 8, .flags = WIRE_F_RETAIN }, false,
          WIRE_E_MALFORMED },
        { "HELLO 0x8000", { V, .kind = WIRE_HELLO, .meta_len = 8, .flags = 0x8000 }, false,
          WIRE_E_MALFORMED },
        { "WELCOME ACK", { V, .kind = WIRE_WELCOME, .meta_len = 40, .flags = WIRE_F_ACK }, false,
          WIRE_E_MALFORMED },
        { "SUBSCRIBE BULK", { V, .kind = WIRE_SUBSCRIBE, .meta_len = 8, .topic_len = 1,
                              .flags = WIRE_F_BULK }, false, WIRE_E_MALFORMED },
        { "UNSUBSCRIBE FATAL", { V, .kind = WIRE_UNSUBSCRIBE, .meta_len = 8, .flags = WIRE_F_FATAL },
          false, WIRE_E_MALFORMED },
        { "ACK ACK", { V, .kind = WIRE_ACK, .flags = WIRE_F_ACK }, false, WIRE_E_MALFORMED },
        { "PUBLISH FATAL", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .flags = WIRE_F_FATAL }, false,
          WIRE_E_MALFORMED },
        { "PUBLISH 0x0010", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .flags = 0x0010 }, false,
          WIRE_E_MALFORMED },
        { "PUBLISH ACK|0x8000", { V, .kind = WIRE_PUBLISH, .topic_len = 1,
                                  .flags = WIRE_F_ACK | 0x8000 }, false, WIRE_E_MALFORMED },
        { "MESSAGE ACK", { V, .kind = WIRE_MESSAGE, .meta_len = 32, .topic_len = 1,
                           .flags = WIRE_F_ACK }, false, WIRE_E_MALFORMED },
        { "MESSAGE FATAL", { V, .kind = WIRE_MESSAGE, .meta_len = 32, .topic_len = 1,
                             .flags = WIRE_F_FATAL }, false, WIRE_E_MALFORMED },
        { "ERROR RETAIN", { V, .kind = WIRE_ERROR, .meta_len = 8, .flags = WIRE_F_RETAIN }, false,
          WIRE_E_MALFORMED },
        { "ERROR FATAL|ACK", { V, .kind = WIRE_ERROR, .meta_len = 8,
                               .flags = WIRE_F_FATAL | WIRE_F_ACK }, false, WIRE_E_MALFORMED },
        { "PING FATAL", { V, .kind = WIRE_PING, .flags = WIRE_F_FATAL }, false, WIRE_E_MALFORMED },
        { "PONG RETAIN", { V, .kind = WIRE_PONG, .flags = WIRE_F_RETAIN }, false, WIRE_E_MALFORMED },
        { "ADMIN ACK", { V, .kind = WIRE_ADMIN, .topic_len = 6, .flags = WIRE_F_ACK }, false,
          WIRE_E_MALFORMED },
        { "ADMIN_REPLY FATAL", { V, .kind = WIRE_ADMIN_REPLY, .flags = WIRE_F_FATAL }, false,
          WIRE_E_MALFORMED },

        /* size equation */
        { "size 0", { V, .kind = WIRE_PING, .size = 0 }, true, WIRE_E_MALFORMED },
        { "size 31", { V, .kind = WIRE_PING, .size = 31 }, true, WIRE_E_MALFORMED },
        { "size 33", { V, .kind = WIRE_PING, .size = 33 }, true, WIRE_E_MALFORMED },
        { "size one short", { V, .kind = WIRE_PUBLISH, .topic_len = 3, .payload_len = 5, .size = 39 },
          true, WIRE_E_MALFORMED },
        { "size one long", { V, .kind = WIRE_PUBLISH, .topic_len = 3, .payload_len = 5, .size = 41 },
          true, WIRE_E_MALFORMED },
        { "size UINT32_MAX", { V, .kind = WIRE_PING, .size = UINT32_MAX }, true, WIRE_E_MALFORMED },
        /* 32 + 1 + 0xffffffdf = 2^32: a 32-bit sum would give 0 */
        { "sum wraps to 0", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .payload_len = 0xffffffdfu,
                              .size = 0 }, true, WIRE_E_MALFORMED },
        /* 32 + 40 + 0xffffffff = 2^32 + 71 */
        { "sum wraps to 71", { V, .kind = WIRE_WELCOME, .meta_len = 40, .payload_len = 0xffffffffu,
                               .size = 71 }, true, WIRE_E_MALFORMED },
        /* 32 + 255 + 65535 + 0xffffffff = 2^32 + 65821 */
        { "every length at its maximum", { V, .kind = WIRE_REQUEST, .meta_len = 255,
                                           .topic_len = 65535, .payload_len = 0xffffffffu,
                                           .size = 65821 }, true, WIRE_E_MALFORMED },
        { "size equation beats meta", { V, .kind = WIRE_HELLO, .meta_len = 0, .size = 40 }, true,
          WIRE_E_MALFORMED },

        /* meta length of each kind */
        { "HELLO meta 0", { V, .kind = WIRE_HELLO, .meta_len = 0 }, false, WIRE_E_MALFORMED },
        { "HELLO meta 7", { V, .kind = WIRE_HELLO, .meta_len = 7 }, false, WIRE_E_MALFORMED },
        { "HELLO meta 9", { V, .kind = WIRE_HELLO, .meta_len = 9 }, false, WIRE_E_MALFORMED },
        { "HELLO meta 255", { V, .kind = WIRE_HELLO, .meta_len = 255 }, false, WIRE_E_MALFORMED },
        { "WELCOME meta 39", { V, .kind = WIRE_WELCOME, .meta_len = 39 }, false, WIRE_E_MALFORMED },
        { "WELCOME meta 41", { V, .kind = WIRE_WELCOME, .meta_len = 41 }, false, WIRE_E_MALFORMED },
        { "SUBSCRIBE meta 0", { V, .kind = WIRE_SUBSCRIBE, .topic_len = 1 }, false, WIRE_E_MALFORMED },
        { "SUBSCRIBE meta 16", { V, .kind = WIRE_SUBSCRIBE, .meta_len = 16, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "UNSUBSCRIBE meta 4", { V, .kind = WIRE_UNSUBSCRIBE, .meta_len = 4 }, false,
          WIRE_E_MALFORMED },
        { "ACK meta 8", { V, .kind = WIRE_ACK, .meta_len = 8 }, false, WIRE_E_MALFORMED },
        { "PUBLISH meta 8 without BULK", { V, .kind = WIRE_PUBLISH, .meta_len = 8, .topic_len = 1 },
          false, WIRE_E_MALFORMED },
        { "PUBLISH BULK meta 0", { V, .kind = WIRE_PUBLISH, .flags = WIRE_F_BULK, .topic_len = 1,
                                   .n_fds = 1 }, false, WIRE_E_MALFORMED },
        { "PUBLISH BULK meta 16", { V, .kind = WIRE_PUBLISH, .flags = WIRE_F_BULK, .meta_len = 16,
                                    .topic_len = 1, .n_fds = 1 }, false, WIRE_E_MALFORMED },
        { "MESSAGE meta 0", { V, .kind = WIRE_MESSAGE, .topic_len = 1 }, false, WIRE_E_MALFORMED },
        { "MESSAGE meta 31", { V, .kind = WIRE_MESSAGE, .meta_len = 31, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "ERROR meta 4", { V, .kind = WIRE_ERROR, .meta_len = 4 }, false, WIRE_E_MALFORMED },
        { "PING meta 8", { V, .kind = WIRE_PING, .meta_len = 8 }, false, WIRE_E_MALFORMED },
        { "PONG meta 1", { V, .kind = WIRE_PONG, .meta_len = 1 }, false, WIRE_E_MALFORMED },
        { "ADMIN meta 8", { V, .kind = WIRE_ADMIN, .meta_len = 8, .topic_len = 6 }, false,
          WIRE_E_MALFORMED },
        { "ADMIN_REPLY meta 1", { V, .kind = WIRE_ADMIN_REPLY, .meta_len = 1 }, false,
          WIRE_E_MALFORMED },

        /* topic present where none belongs, absent where one is needed */
        { "topic on HELLO", { V, .kind = WIRE_HELLO, .meta_len = 8, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "topic on WELCOME", { V, .kind = WIRE_WELCOME, .meta_len = 40, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "topic on UNSUBSCRIBE", { V, .kind = WIRE_UNSUBSCRIBE, .meta_len = 8, .topic_len = 3 },
          false, WIRE_E_MALFORMED },
        { "topic on ACK", { V, .kind = WIRE_ACK, .topic_len = 1 }, false, WIRE_E_MALFORMED },
        { "topic on ERROR", { V, .kind = WIRE_ERROR, .meta_len = 8, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "topic on PING", { V, .kind = WIRE_PING, .topic_len = 1 }, false, WIRE_E_MALFORMED },
        { "topic on PONG", { V, .kind = WIRE_PONG, .topic_len = 1 }, false, WIRE_E_MALFORMED },
        { "topic on ADMIN_REPLY", { V, .kind = WIRE_ADMIN_REPLY, .topic_len = 1 }, false,
          WIRE_E_MALFORMED },
        { "no topic on SUBSCRIBE", { V, .kind = WIRE_SUBSCRIBE, .meta_len = 8 }, false,
          WIRE_E_MALFORMED },
        { "no topic on PUBLISH", { V, .kind = WIRE_PUBLISH, .payload_len = 4 }, false,
          WIRE_E_MALFORMED },
        { "no topic on MESSAGE", { V, .kind = WIRE_MESSAGE, .meta_len = 32 }, false,
          WIRE_E_MALFORMED },
        { "no topic on ADMIN", { V, .kind = WIRE_ADMIN }, false, WIRE_E_MALFORMED },

        /* file descriptors */
        { "fds on SUBSCRIBE", { V, .kind = WIRE_SUBSCRIBE, .meta_len = 8, .topic_len = 1, .n_fds = 1 },
          false, WIRE_E_FDS },
        { "fds on HELLO", { V, .kind = WIRE_HELLO, .meta_len = 8, .n_fds = 1 }, false, WIRE_E_FDS },
        { "fds on ERROR", { V, .kind = WIRE_ERROR, .meta_len = 8, .n_fds = 2 }, false, WIRE_E_FDS },
        { "fds on ADMIN", { V, .kind = WIRE_ADMIN, .topic_len = 6, .n_fds = 1 }, false, WIRE_E_FDS },
        { "fds on GOODBYE", { V, .kind = WIRE_GOODBYE, .n_fds = 1 }, false, WIRE_E_FDS },
        { "17 fds on SUBSCRIBE: kind rule beats limit",
          { V, .kind = WIRE_SUBSCRIBE, .meta_len = 8, .topic_len = 1, .n_fds = 17 }, false,
          WIRE_E_FDS },
        { "PUBLISH BULK without fds", { V, .kind = WIRE_PUBLISH, .flags = WIRE_F_BULK, .meta_len = 8,
                                        .topic_len = 1 }, false, WIRE_E_FDS },
        { "MESSAGE BULK without fds", { V, .kind = WIRE_MESSAGE, .flags = WIRE_F_BULK,
                                        .meta_len = 32, .topic_len = 1 }, false, WIRE_E_FDS },
        { "REQUEST BULK without fds", { V, .kind = WIRE_REQUEST, .flags = WIRE_F_BULK,
                                        .topic_len = 1 }, false, WIRE_E_FDS },
        { "REQUEST without a topic", { V, .kind = WIRE_REQUEST, .meta_len = 16 }, false,
          WIRE_E_MALFORMED },
        { "REQUEST undefined flag", { V, .kind = WIRE_REQUEST, .flags = WIRE_F_ACK, .topic_len = 1 },
          false, WIRE_E_MALFORMED },

        /* limits (1 MiB payload, 1024 topic bytes, 16 fds) */
        { "topic 1025", { V, .kind = WIRE_PUBLISH, .topic_len = 1025 }, false, WIRE_E_TOO_LARGE },
        { "topic 65535", { V, .kind = WIRE_SUBSCRIBE, .meta_len = 8, .topic_len = 65535 }, false,
          WIRE_E_TOO_LARGE },
        { "payload 1 MiB + 1", { V, .kind = WIRE_PUBLISH, .topic_len = 1,
                                 .payload_len = (1u << 20) + 1 }, false, WIRE_E_TOO_LARGE },
        { "payload near 4 GiB", { V, .kind = WIRE_PUBLISH, .topic_len = 1,
                                  .payload_len = 0xffffff00u }, false, WIRE_E_TOO_LARGE },
        { "payload over limit on PING", { V, .kind = WIRE_PING, .payload_len = (1u << 20) + 1 }, false,
          WIRE_E_TOO_LARGE },
        { "17 fds", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .n_fds = 17 }, false, WIRE_E_TOO_LARGE },
        { "255 fds", { V, .kind = WIRE_PUBLISH, .flags = WIRE_F_BULK, .meta_len = 8, .topic_len = 1,
                       .n_fds = 255 }, false, WIRE_E_TOO_LARGE },
};

INDEX_PARAMS(header, malformed, bad_headers)

ParameterizedTest(size_t *i, header, malformed) {
        const BadHeader *c = &bad_headers[*i];
        WireHeader in = c->h, out, untouched;
        uint8_t buf[WIRE_HEADER_SIZE];
        const char *why = NULL;
        WireError e;

        if (!c->raw_size)
                in.size = frame_size(&in);
        wire_header_encode(buf, &in);
        memset(&out, 0xa5, sizeof(out));
        untouched = out;

        e = wire_header_decode(buf, &default_limits, &out, &why);
        cr_assert(eq(int, e, c->want), "%s: got %s (%s), want %s", c->name, wire_error_name(e),
                  why ? why : "no reason", wire_error_name(c->want));
        cr_assert(eq(mem, ((struct cr_mem){ &out, sizeof(out) }),
                     ((struct cr_mem){ &untouched, sizeof(untouched) })),
                  "%s: out-struct was written", c->name);
        cr_assert(not(zero(ptr, (void *)why)), "%s: no reason given", c->name);
        cr_assert(gt(sz, strlen(why), 0), "%s: empty reason", c->name);
}

/* Accepted corner cases: what sits right on a limit, and the reserved
 * kinds that are only checked structurally. */
typedef struct GoodHeader {
        const char *name;
        WireHeader h;
        bool no_limits;
} GoodHeader;

static const GoodHeader good_headers[] = {
        { "topic at 1024", { V, .kind = WIRE_PUBLISH, .topic_len = 1024 }, false },
        { "payload at 1 MiB", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .payload_len = 1u << 20 },
          false },
        { "16 fds", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .n_fds = 16 }, false },
        { "PUBLISH BULK with meta and fd", { V, .kind = WIRE_PUBLISH, .flags = WIRE_F_BULK,
                                             .meta_len = 8, .topic_len = 1, .n_fds = 1 }, false },
        { "MESSAGE BULK with fd", { V, .kind = WIRE_MESSAGE, .flags = WIRE_F_BULK | WIRE_F_RETAIN,
                                    .meta_len = 32, .topic_len = 1, .n_fds = 1 }, false },
        { "PUBLISH every flag", { V, .kind = WIRE_PUBLISH,
                                  .flags = WIRE_F_BULK | WIRE_F_ACK | WIRE_F_RETAIN, .meta_len = 8,
                                  .topic_len = 1, .n_fds = 2 }, false },
        { "empty payload everywhere", { V, .kind = WIRE_PUBLISH, .topic_len = 1 }, false },
        { "no limits: topic 65535", { V, .kind = WIRE_PUBLISH, .topic_len = 65535 }, true },
        { "no limits: 255 fds", { V, .kind = WIRE_PUBLISH, .topic_len = 1, .n_fds = 255 }, true },
        { "no limits: largest frame", { V, .kind = WIRE_PUBLISH, .topic_len = 65535,
                                        .payload_len = UINT32_MAX - 32 - 65535 }, true },
        { "REQUEST any meta length (checked by direction)", { V, .kind = WIRE_REQUEST,
                                           .meta_len = 200, .topic_len = 1, .payload_len = 9 }, false },
        { "REPLY with topic and fds", { V, .kind = WIRE_REPLY, .topic_len = 9, .n_fds = 3 }, false },
        { "GOODBYE with topic", { V, .kind = WIRE_GOODBYE, .flags = 0x8001, .topic_len = 4 }, false },
        { "type and corr are free", { V, .kind = WIRE_PING, .type = UINT32_MAX, .corr = UINT64_MAX },
          false },
};

INDEX_PARAMS(header, accepted, good_headers)

ParameterizedTest(size_t *i, header, accepted) {
        const GoodHeader *c = &good_headers[*i];
        WireHeader in = c->h, out;
        uint8_t buf[WIRE_HEADER_SIZE];
        const char *why = NULL;
        WireError e;

        in.size = frame_size(&in);
        wire_header_encode(buf, &in);
        e = wire_header_decode(buf, c->no_limits ? NULL : &default_limits, &out, &why);
        cr_assert(eq(int, e, WIRE_E_OK), "%s: got %s (%s)", c->name, wire_error_name(e),
                  why ? why : "");
        assert_header_eq(&out, &in, c->name);
}

/* ---- Frames ------------------------------------------------------------ */

Test(frame, parts_land_at_their_offsets) {
        const uint8_t meta[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        const char topic[] = "a/b/c";
        const char payload[] = "hello, world";
        uint8_t buf[128];
        WireHeader h;
        size_t n;

        memset(buf, 0xee, sizeof(buf));
        n = wire_frame_encode(buf, sizeof(buf), WIRE_PUBLISH, WIRE_F_BULK | WIRE_F_ACK, 42, 99, 1,
                              meta, sizeof(meta), topic, strlen(topic), payload, strlen(payload));
        cr_assert(eq(sz, n, 32 + 8 + 5 + 12));
        cr_assert(eq(int, wire_header_decode(buf, &default_limits, &h, NULL), WIRE_E_OK));
        cr_assert(eq(u32, h.size, n));
        cr_assert(eq(u8, h.version, WIRE_VERSION));
        cr_assert(eq(u8, h.kind, WIRE_PUBLISH));
        cr_assert(eq(u16, h.flags, WIRE_F_BULK | WIRE_F_ACK));
        cr_assert(eq(u32, h.type, 42));
        cr_assert(eq(u64, h.corr, 99));
        cr_assert(eq(u8, h.n_fds, 1));
        cr_assert(eq(u8, h.meta_len, 8));
        cr_assert(eq(u16, h.topic_len, 5));
        cr_assert(eq(u32, h.payload_len, 12));
        cr_assert(eq(u32, h.reserved, 0));
        cr_assert(eq(int, memcmp(buf + 32, meta, 8), 0));
        cr_assert(eq(int, memcmp(buf + 40, topic, 5), 0));
        cr_assert(eq(int, memcmp(buf + 45, payload, 12), 0));
        cr_assert(eq(u8, buf[n], 0xee), "wrote past the frame");
}

Test(frame, empty_parts_may_be_null) {
        uint8_t buf[WIRE_HEADER_SIZE];
        size_t n = wire_frame_encode(buf, sizeof(buf), WIRE_PING, 0, 0, 5, 0, NULL, 0, NULL, 0,
                                     NULL, 0);
        WireHeader h;

        cr_assert(eq(sz, n, WIRE_HEADER_SIZE));
        cr_assert(eq(int, wire_header_decode(buf, &default_limits, &h, NULL), WIRE_E_OK));
        cr_assert(eq(u64, h.corr, 5));
}

Test(frame, exact_fit_and_one_short) {
        uint8_t buf[64];
        const char topic[] = "t";
        const char payload[] = "0123456789";

        /* 32 + 1 + 10 = 43 */
        cr_assert(eq(sz, wire_frame_encode(buf, 43, WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0, topic, 1,
                                           payload, 10), 43));
        cr_assert(eq(sz, wire_frame_encode(buf, 42, WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0, topic, 1,
                                           payload, 10), 0));
        cr_assert(eq(sz, wire_frame_encode(buf, 0, WIRE_PING, 0, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0),
                     0));
        cr_assert(eq(sz, wire_frame_encode(buf, 31, WIRE_PING, 0, 0, 0, 0, NULL, 0, NULL, 0, NULL, 0),
                     0));
}

Test(frame, lengths_over_their_fields) {
        uint8_t buf[WIRE_HEADER_SIZE];

        /* The length checks come before any byte is read from the parts,
         * so NULL parts with huge lengths are safe here. */
        cr_assert(eq(sz, wire_frame_encode(buf, SIZE_MAX, WIRE_REQUEST, 0, 0, 0, 0, NULL, 256, NULL,
                                           0, NULL, 0), 0), "meta over 255");
        cr_assert(eq(sz, wire_frame_encode(buf, SIZE_MAX, WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0, NULL,
                                           65536, NULL, 0), 0), "topic over 65535");
        cr_assert(eq(sz, wire_frame_encode(buf, SIZE_MAX, WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0, NULL, 1,
                                           NULL, (size_t)UINT32_MAX + 1), 0), "payload over u32");
        cr_assert(eq(sz, wire_frame_encode(buf, SIZE_MAX, WIRE_PUBLISH, 0, 0, 0, 0, NULL, 0, NULL, 1,
                                           NULL, UINT32_MAX - 32), 0), "size over u32");
        cr_assert(eq(sz, wire_frame_encode(buf, SIZE_MAX, WIRE_REQUEST, 0, 0, 0, 0, NULL, 255, NULL,
                                           65535, NULL, UINT32_MAX), 0), "all at maximum");
}

/* ---- Meta blocks ------------------------------------------------------- */

Test(meta, welcome_round_trip) {
        const WireWelcome in = {
                .client_id = 7, .max_payload = 1u << 20, .max_topic_len = 1024, .max_fds = 16,
                .max_subscriptions = 1024, .max_types_per_sub = 64,
                .max_bulk_size = 0x0102030405060708ull, .out_queue_bytes = 8u << 20,
        };
        uint8_t buf[WIRE_META_WELCOME + 1];
        WireWelcome out;

        memset(buf, 0xee, sizeof(buf));
        wire_welcome_encode(buf, &in);
        cr_assert(eq(u8, buf[WIRE_META_WELCOME], 0xee), "wrote past 40 bytes");
        cr_assert(eq(u32, le32_read(buf + 0), 7));
        cr_assert(eq(u32, le32_read(buf + 4), 1u << 20));
        cr_assert(eq(u32, le32_read(buf + 8), 1024));
        cr_assert(eq(u32, le32_read(buf + 12), 16));
        cr_assert(eq(u32, le32_read(buf + 16), 1024));
        cr_assert(eq(u32, le32_read(buf + 20), 64));
        cr_assert(eq(u64, le64_read(buf + 24), 0x0102030405060708ull));
        cr_assert(eq(u64, le64_read(buf + 32), 8u << 20));

        cr_assert(wire_welcome_decode(buf, &out));
        cr_assert(eq(u32, out.client_id, in.client_id));
        cr_assert(eq(u32, out.max_payload, in.max_payload));
        cr_assert(eq(u32, out.max_topic_len, in.max_topic_len));
        cr_assert(eq(u32, out.max_fds, in.max_fds));
        cr_assert(eq(u32, out.max_subscriptions, in.max_subscriptions));
        cr_assert(eq(u32, out.max_types_per_sub, in.max_types_per_sub));
        cr_assert(eq(u64, out.max_bulk_size, in.max_bulk_size));
        cr_assert(eq(u64, out.out_queue_bytes, in.out_queue_bytes));
}

Test(meta, welcome_rejects_nonsense) {
        const WireWelcome bad[] = {
                { .client_id = 0, .max_topic_len = 1024 },
                { .client_id = 1, .max_topic_len = 0 },
                { .client_id = 1, .max_topic_len = 65536 },
                { .client_id = 1, .max_topic_len = UINT32_MAX },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                uint8_t buf[WIRE_META_WELCOME];
                WireWelcome out, untouched;

                memset(&out, 0x5a, sizeof(out));
                untouched = out;
                wire_welcome_encode(buf, &bad[i]);
                cr_assert(not(wire_welcome_decode(buf, &out)), "row %zu accepted", i);
                cr_assert(eq(int, memcmp(&out, &untouched, sizeof(out)), 0), "row %zu wrote out", i);
        }
        /* The edge that is still fine. */
        {
                const WireWelcome ok = { .client_id = UINT32_MAX, .max_topic_len = 65535 };
                uint8_t buf[WIRE_META_WELCOME];
                WireWelcome out;
                wire_welcome_encode(buf, &ok);
                cr_assert(wire_welcome_decode(buf, &out));
                cr_assert(eq(u32, out.max_topic_len, 65535));
        }
}

Test(meta, delivery_round_trip) {
        const WireDelivery in = {
                .sender_pid = 1234, .sender_uid = 1000, .sender_gid = 0xfffffffe, .sub_id = 42,
                .seq = 0x1122334455667788ull, .bulk_size = 5,
        };
        uint8_t buf[WIRE_META_MESSAGE + 1];
        WireDelivery out;

        memset(buf, 0xee, sizeof(buf));
        wire_delivery_encode(buf, &in);
        cr_assert(eq(u8, buf[WIRE_META_MESSAGE], 0xee), "wrote past 32 bytes");
        cr_assert(eq(u32, le32_read(buf + 0), 1234));
        cr_assert(eq(u32, le32_read(buf + 4), 1000));
        cr_assert(eq(u32, le32_read(buf + 8), 0xfffffffe));
        cr_assert(eq(u32, le32_read(buf + 12), 42));
        cr_assert(eq(u64, le64_read(buf + 16), 0x1122334455667788ull));
        cr_assert(eq(u64, le64_read(buf + 24), 5));
        wire_delivery_decode(buf, &out);
        cr_assert(eq(u32, out.sender_pid, in.sender_pid));
        cr_assert(eq(u32, out.sender_uid, in.sender_uid));
        cr_assert(eq(u32, out.sender_gid, in.sender_gid));
        cr_assert(eq(u32, out.sub_id, in.sub_id));
        cr_assert(eq(u64, out.seq, in.seq));
        cr_assert(eq(u64, out.bulk_size, in.bulk_size));
}

Test(meta, subscribe_round_trip) {
        const WireSubscribe in = { .sub_id = 0xa1b2c3d4, .n_types = 0x0102, .group_len = 0x33,
                                   .flags = 0x44 };
        uint8_t buf[WIRE_META_SUBSCRIBE + 1];
        const uint8_t want[WIRE_META_SUBSCRIBE] = { 0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x01, 0x33, 0x44 };
        WireSubscribe out;

        memset(buf, 0xee, sizeof(buf));
        wire_subscribe_encode(buf, &in);
        cr_assert(eq(int, memcmp(buf, want, sizeof(want)), 0));
        cr_assert(eq(u8, buf[WIRE_META_SUBSCRIBE], 0xee), "wrote past 8 bytes");
        wire_subscribe_decode(buf, &out);
        cr_assert(eq(u32, out.sub_id, in.sub_id));
        cr_assert(eq(u16, out.n_types, in.n_types));
        cr_assert(eq(u8, out.group_len, in.group_len));
        cr_assert(eq(u8, out.flags, in.flags));
}

Test(meta, error_meta_layout) {
        uint8_t buf[WIRE_META_ERROR + 1];
        const uint8_t want[WIRE_META_ERROR] = { 0x05, 0, 0, 0, 0x06, 0, 0, 0 };

        memset(buf, 0xee, sizeof(buf));
        wire_error_meta_encode(buf, WIRE_E_BAD_TOPIC, WIRE_PUBLISH);
        cr_assert(eq(int, memcmp(buf, want, sizeof(want)), 0));
        cr_assert(eq(u8, buf[WIRE_META_ERROR], 0xee), "wrote past 8 bytes");
        wire_error_meta_encode(buf, 0xfffffffe, 255);
        cr_assert(eq(u32, le32_read(buf), 0xfffffffe));
        cr_assert(eq(u32, le32_read(buf + 4), 255));
}

Test(meta, sizes) {
        cr_assert(eq(int, WIRE_HEADER_SIZE, 32));
        cr_assert(eq(int, WIRE_META_HELLO, 8));
        cr_assert(eq(int, WIRE_META_WELCOME, 40));
        cr_assert(eq(int, WIRE_META_SUBSCRIBE, 8));
        cr_assert(eq(int, WIRE_META_UNSUBSCRIBE, 8));
        cr_assert(eq(int, WIRE_META_PUBLISH_BULK, 8));
        cr_assert(eq(int, WIRE_META_MESSAGE, 32));
        cr_assert(eq(int, WIRE_META_ERROR, 8));
}

/* ---- Names -------------------------------------------------------------- */

typedef struct ErrorRow {
        unsigned code;
        const char *name;
        int neg_errno;
} ErrorRow;

/* The stable names and errnos; docs/PROTOCOL.md has the same table. */
static const ErrorRow error_rows[] = {
        { WIRE_E_OK, "ok", 0 },
        { WIRE_E_MALFORMED, "malformed", -EPROTO },
        { WIRE_E_VERSION, "version", -EPROTONOSUPPORT },
        { WIRE_E_KIND, "bad-kind", -EPROTO },
        { WIRE_E_TOO_LARGE, "too-large", -EMSGSIZE },
        { WIRE_E_BAD_TOPIC, "bad-topic", -EINVAL },
        { WIRE_E_BAD_FILTER, "bad-filter", -EINVAL },
        { WIRE_E_HANDSHAKE, "handshake", -EPROTO },
        { WIRE_E_NO_SUCH_SUB, "no-such-subscription", -ENOENT },
        { WIRE_E_SUB_EXISTS, "subscription-exists", -EEXIST },
        { WIRE_E_LIMIT, "limit", -ENOBUFS },
        { WIRE_E_PERMISSION, "permission-denied", -EACCES },
        { WIRE_E_UNSUPPORTED, "unsupported", -EOPNOTSUPP },
        { WIRE_E_FDS, "bad-fds", -EBADF },
        { WIRE_E_BULK, "bad-bulk", -EBADFD },
        { WIRE_E_NO_RESPONDERS, "no-responders", -EHOSTUNREACH },
        { WIRE_E_TIMEOUT, "timed-out", -ETIMEDOUT },
        { WIRE_E_RESPONDER_GONE, "responder-gone", -ECONNABORTED },
        { WIRE_E_INTERNAL, "internal", -EIO },
        { WIRE_E_SLOW_CONSUMER, "slow-consumer", -ENOBUFS },
        { WIRE_E_BAD_COMMAND, "bad-command", -EINVAL },
        { WIRE_E_NO_SUCH_REQUEST, "no-such-request", -ESRCH },
        { WIRE_E_BAD_CONFIG, "bad-config", -EINVAL },
        { WIRE_E_KICKED, "kicked", -ECONNRESET },
};

Test(names, error_codes) {
        cr_assert(eq(sz, ARRAY_SIZE(error_rows), (size_t)_WIRE_E_MAX),
                  "an error code was added: add it here and to docs/PROTOCOL.md");
        for (size_t i = 0; i < ARRAY_SIZE(error_rows); i++) {
                const ErrorRow *r = &error_rows[i];
                cr_assert(eq(u32, r->code, (unsigned)i), "codes are dense and in order");
                cr_assert(eq(str, (char *)wire_error_name(r->code), (char *)r->name));
                cr_assert(eq(int, wire_error_to_errno(r->code), r->neg_errno), "%s", r->name);
                for (size_t j = 0; j < i; j++)
                        cr_assert(ne(str, (char *)r->name, (char *)error_rows[j].name));
        }
        cr_assert(eq(str, (char *)wire_error_name(_WIRE_E_MAX), "unknown-error"));
        cr_assert(eq(str, (char *)wire_error_name(1000), "unknown-error"));
        cr_assert(eq(str, (char *)wire_error_name(UINT32_MAX), "unknown-error"));
        cr_assert(eq(int, wire_error_to_errno(_WIRE_E_MAX), -EIO));
        cr_assert(eq(int, wire_error_to_errno(UINT32_MAX), -EIO));
}

Test(names, kinds) {
        static const char *const names[] = {
                NULL, "HELLO", "WELCOME", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "PUBLISH", "MESSAGE",
                "ERROR", "PING", "PONG", "REQUEST", "REPLY", "ADMIN", "ADMIN_REPLY", "GOODBYE",
        };
        cr_assert(eq(sz, ARRAY_SIZE(names), (size_t)_WIRE_KIND_MAX + 1));
        for (unsigned k = 1; k <= _WIRE_KIND_MAX; k++)
                cr_assert(eq(str, (char *)wire_kind_name(k), (char *)names[k]));
        cr_assert(eq(str, (char *)wire_kind_name(0), "UNKNOWN"));
        cr_assert(eq(str, (char *)wire_kind_name(16), "UNKNOWN"));
        cr_assert(eq(str, (char *)wire_kind_name(255), "UNKNOWN"));
        cr_assert(eq(str, (char *)wire_kind_name(UINT32_MAX), "UNKNOWN"));
}

/* ---- Default socket path -----------------------------------------------
 * Every test runs in its own process, so changing the environment here
 * cannot leak into another test. */

static void env(const char *runtime_dir, const char *xdg) {
        if (runtime_dir)
                cr_assert(eq(int, setenv("RUNTIME_DIRECTORY", runtime_dir, 1), 0));
        else
                unsetenv("RUNTIME_DIRECTORY");
        if (xdg)
                cr_assert(eq(int, setenv("XDG_RUNTIME_DIR", xdg, 1), 0));
        else
                unsetenv("XDG_RUNTIME_DIR");
}

Test(socket_path, runtime_directory) {
        char buf[128];
        env("/run/ipcd-test", "/run/user/1000");
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/ipcd-test/ipcd.sock"));
}

Test(socket_path, runtime_directory_first_of_several) {
        char buf[128];
        env("a:b", NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "a/ipcd.sock"));
        env("/run/one:/run/two:/run/three", "/x");
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/one/ipcd.sock"));
}

Test(socket_path, xdg_runtime_dir) {
        char buf[128];
        env(NULL, "/run/user/1000");
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/user/1000/ipcd.sock"));
        /* An empty RUNTIME_DIRECTORY counts as unset. */
        env("", "/run/user/42");
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/user/42/ipcd.sock"));
}

Test(socket_path, neither) {
        char buf[128];
        env(NULL, NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/ipcd/ipcd.sock"));
        env("", "");
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(str, buf, "/run/ipcd/ipcd.sock"));
}

/* sun_path holds 108 bytes with the NUL: a 97-byte directory plus
 * "/ipcd.sock" (10) is the longest path that fits. */
static char *dir_of_len(char *buf, size_t len) {
        memset(buf, 'd', len);
        buf[0] = '/';
        buf[len] = 0;
        return buf;
}

Test(socket_path, too_long) {
        char dir[8192], buf[8192];

        env(dir_of_len(dir, 97), NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));
        cr_assert(eq(sz, strlen(buf), 107));

        env(dir_of_len(dir, 98), NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), -ENAMETOOLONG));
        env(NULL, dir_of_len(dir, 98));
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), -ENAMETOOLONG));
        env(NULL, dir_of_len(dir, 97));
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), 0));

        /* Longer than any path buffer, with and without a ':' list. */
        env(dir_of_len(dir, 5000), NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), -ENAMETOOLONG));
        dir_of_len(dir, 5000);
        dir[4500] = ':';
        env(dir, NULL);
        cr_assert(eq(int, wire_default_socket_path(buf, sizeof(buf)), -ENAMETOOLONG));
}

Test(socket_path, small_buffer) {
        char buf[128];
        env(NULL, NULL);
        /* "/run/ipcd/ipcd.sock" is 19 bytes plus the NUL. */
        cr_assert(eq(int, wire_default_socket_path(buf, 20), 0));
        cr_assert(eq(str, buf, "/run/ipcd/ipcd.sock"));
        cr_assert(eq(int, wire_default_socket_path(buf, 19), -ENAMETOOLONG));
        cr_assert(eq(int, wire_default_socket_path(buf, 1), -ENAMETOOLONG));
}

/* ---- The examples in docs/PROTOCOL.md -----------------------------------
 * The walkthrough there: HELLO (corr 1), WELCOME, SUBSCRIBE "sensors/#"
 * (corr 2), PUBLISH "sensors/temp" type 42 "21.5" with ACK (corr 3), the
 * MESSAGE it produces, and an ERROR answering a PUBLISH to "$SYS/x"
 * (corr 4). Same bytes here and there. */

static void assert_bytes(const uint8_t *got, size_t n_got, const uint8_t *want, size_t n_want,
                         const char *what) {
        cr_assert(eq(sz, n_got, n_want), "%s: length", what);
        for (size_t i = 0; i < n_want; i++)
                cr_assert(eq(u8, got[i], want[i]), "%s: byte 0x%02zx", what, i);
}

Test(docs, hello_example) {
        static const uint8_t want[] = {
                0x2c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, /* size 44, v1, HELLO, flags 0 */
                0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* type 0, payload_len 4 */
                0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, /* topic 0, fds 0, meta 8, rsvd */
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 1 */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* meta: flags 0, reserved 0 */
                0x64, 0x65, 0x6d, 0x6f,                         /* "demo" */
        };
        const uint8_t meta[WIRE_META_HELLO] = { 0 };
        uint8_t buf[64];
        size_t n = wire_frame_encode(buf, sizeof(buf), WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta),
                                     NULL, 0, "demo", 4);
        assert_bytes(buf, n, want, sizeof(want), "HELLO");
}

Test(docs, welcome_example) {
        static const uint8_t want[] = {
                0x52, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, /* size 82, v1, WELCOME */
                0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, /* type 0, payload_len 10 */
                0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, /* topic 0, fds 0, meta 40 */
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 1 */
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* client 1, max_payload 1 MiB */
                0x00, 0x04, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, /* max_topic 1024, max_fds 16 */
                0x00, 0x04, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, /* max_subs 1024, types 64 */
                0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, /* max_bulk_size 1 GiB */
                0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, /* out_queue_bytes 8 MiB */
                0x69, 0x70, 0x63, 0x64, 0x20, 0x30, 0x2e, 0x31, /* "ipcd 0.1" */
                0x2e, 0x30,                                     /* ".0" */
        };
        const WireWelcome w = { .client_id = 1, .max_payload = 1u << 20, .max_topic_len = 1024,
                                .max_fds = 16, .max_subscriptions = 1024, .max_types_per_sub = 64,
                                .max_bulk_size = 1ull << 30, .out_queue_bytes = 8u << 20 };
        uint8_t meta[WIRE_META_WELCOME], buf[96];
        WireWelcome back;
        size_t n;

        wire_welcome_encode(meta, &w);
        n = wire_frame_encode(buf, sizeof(buf), WIRE_WELCOME, 0, 0, 1, 0, meta, sizeof(meta), NULL,
                              0, "ipcd 0.1.0", 10);
        assert_bytes(buf, n, want, sizeof(want), "WELCOME");
        cr_assert(wire_welcome_decode(want + WIRE_HEADER_SIZE, &back));
        cr_assert(eq(u32, back.client_id, 1));
}

Test(docs, subscribe_example) {
        static const uint8_t want[] = {
                0x31, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, /* size 49, v1, SUBSCRIBE */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* type 0, payload_len 0 */
                0x09, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, /* topic 9, fds 0, meta 8 */
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 2 */
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* sub 1, 0 types, no group */
                0x73, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x73, 0x2f, /* "sensors/" */
                0x23,                                           /* "#" */
        };
        const WireSubscribe sub = { .sub_id = 1 };
        uint8_t meta[WIRE_META_SUBSCRIBE], buf[64];
        size_t n;

        wire_subscribe_encode(meta, &sub);
        n = wire_frame_encode(buf, sizeof(buf), WIRE_SUBSCRIBE, 0, 0, 2, 0, meta, sizeof(meta),
                              "sensors/#", 9, NULL, 0);
        assert_bytes(buf, n, want, sizeof(want), "SUBSCRIBE");
}

Test(docs, ack_example) {
        static const uint8_t want[] = {
                0x20, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, /* size 32, v1, ACK */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 2 */
        };
        uint8_t buf[64];
        size_t n = wire_frame_encode(buf, sizeof(buf), WIRE_ACK, 0, 0, 2, 0, NULL, 0, NULL, 0, NULL,
                                     0);
        assert_bytes(buf, n, want, sizeof(want), "ACK");
}

Test(docs, publish_example) {
        static const uint8_t want[] = {
                0x30, 0x00, 0x00, 0x00, 0x01, 0x06, 0x04, 0x00, /* size 48, v1, PUBLISH, ACK */
                0x2a, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* type 42, payload_len 4 */
                0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* topic 12, fds 0, meta 0 */
                0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 3 */
                0x73, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x73, 0x2f, /* "sensors/" */
                0x74, 0x65, 0x6d, 0x70,                         /* "temp" */
                0x32, 0x31, 0x2e, 0x35,                         /* "21.5" */
        };
        uint8_t buf[64];
        size_t n = wire_frame_encode(buf, sizeof(buf), WIRE_PUBLISH, WIRE_F_ACK, 42, 3, 0, NULL, 0,
                                     "sensors/temp", 12, "21.5", 4);
        assert_bytes(buf, n, want, sizeof(want), "PUBLISH");
}

Test(docs, message_example) {
        static const uint8_t want[] = {
                0x50, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x00, /* size 80, v1, MESSAGE */
                0x2a, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* type 42, payload_len 4 */
                0x0c, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, /* topic 12, fds 0, meta 32 */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 0 */
                0xd2, 0x04, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, /* pid 1234, uid 1000 */
                0xe8, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* gid 1000, sub 1 */
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* seq 1 */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* bulk_size 0 */
                0x73, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x73, 0x2f, /* "sensors/" */
                0x74, 0x65, 0x6d, 0x70,                         /* "temp" */
                0x32, 0x31, 0x2e, 0x35,                         /* "21.5" */
        };
        const WireDelivery d = { .sender_pid = 1234, .sender_uid = 1000, .sender_gid = 1000,
                                 .sub_id = 1, .seq = 1 };
        uint8_t meta[WIRE_META_MESSAGE], buf[96];
        WireHeader h;
        size_t n;

        wire_delivery_encode(meta, &d);
        n = wire_frame_encode(buf, sizeof(buf), WIRE_MESSAGE, 0, 42, 0, 0, meta, sizeof(meta),
                              "sensors/temp", 12, "21.5", 4);
        assert_bytes(buf, n, want, sizeof(want), "MESSAGE");
        cr_assert(eq(int, wire_header_decode(want, &default_limits, &h, NULL), WIRE_E_OK));
}

Test(docs, error_example) {
        static const char text[] = "topics starting with '$' belong to the broker";
        static const uint8_t head[] = {
                0x55, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, /* size 85, v1, ERROR, not fatal */
                0x00, 0x00, 0x00, 0x00, 0x2d, 0x00, 0x00, 0x00, /* type 0, payload_len 45 */
                0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, /* topic 0, fds 0, meta 8 */
                0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* corr 4 */
                0x0b, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, /* permission-denied, PUBLISH */
        };
        uint8_t want[sizeof(head) + sizeof(text) - 1], meta[WIRE_META_ERROR], buf[128];
        size_t n;

        memcpy(want, head, sizeof(head));
        memcpy(want + sizeof(head), text, sizeof(text) - 1);
        wire_error_meta_encode(meta, WIRE_E_PERMISSION, WIRE_PUBLISH);
        n = wire_frame_encode(buf, sizeof(buf), WIRE_ERROR, 0, 0, 4, 0, meta, sizeof(meta), NULL, 0,
                              text, sizeof(text) - 1);
        assert_bytes(buf, n, want, sizeof(want), "ERROR");
}
