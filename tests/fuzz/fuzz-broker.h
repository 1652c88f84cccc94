/* SPDX-License-Identifier: MIT */
/*
 * The operations of fuzz-broker's input, shared with gen-corpus, which
 * writes its seeds. An operation is a byte: the low two bits pick the
 * client, the high six index fuzz_broker_opcodes[]; its fields follow
 * (see fuzz-broker.c).
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "fuzz-env.h"

/* Filters, topics and uids an operation picks by index. */
static const char *const fuzz_broker_filters[] = {
        "#", "+", "t/#", "t/+/a", "t/ro/#", "t/small/#", "t/blk/#", "t/dis/#", "svc/#", "svc/+",
        "svc/ro/x", "pub/#", "$SYS/#", "$SYS/monitor/#", "+/+", "a/b", "a/+", "/", "+/#",
        "$SYS/monitor/publish", "t/+/+", "svc/echo", "a/#",
};

static const char *const fuzz_broker_topics[] = {
        "t/a", "t/x/a", "t/ro/a", "t/small/a", "t/blk/a", "t/dis/a", "svc/echo", "svc/ro/x", "pub/x",
        "a/b", "a", "/", "$SYS/x", "t/ro", "svc/x/y", "t/small", "a/b/c",
};

static const uid_t fuzz_broker_uids[] = { 0, FUZZ_UID_PUBLISHER, FUZZ_UID_ADMIN, FUZZ_UID_GROUPED, FUZZ_UID_NOBODY };

enum {
        OP_CONNECT,
        OP_CLOSE,
        OP_SHUTDOWN,
        OP_HELLO,
        OP_SUBSCRIBE,
        OP_UNSUBSCRIBE,
        OP_PUBLISH,
        OP_REQUEST,
        OP_REPLY,
        OP_ADMIN,
        OP_PING,
        OP_PONG,
        OP_RAW,
        OP_MUTATE,
        OP_SPLIT,
        OP_PUMP,
        OP_STALL,
        OP_TIMER,
        OP_FLOOD,
        OP_BATCH,
        OP_CONFIG,
        OP_GOODBYE,
        _OP_MAX,
};

/* Which operation each of the 64 opcodes is: the frames most often. */
static const uint8_t fuzz_broker_opcodes[64] = {
        OP_CONNECT, OP_CONNECT, OP_CONNECT, OP_CLOSE, OP_SHUTDOWN, OP_HELLO, OP_HELLO,
        OP_SUBSCRIBE, OP_SUBSCRIBE, OP_SUBSCRIBE, OP_SUBSCRIBE, OP_SUBSCRIBE, OP_SUBSCRIBE,
        OP_UNSUBSCRIBE, OP_UNSUBSCRIBE, OP_PUBLISH, OP_PUBLISH, OP_PUBLISH, OP_PUBLISH, OP_PUBLISH,
        OP_PUBLISH, OP_PUBLISH, OP_PUBLISH, OP_REQUEST, OP_REQUEST, OP_REQUEST, OP_REQUEST, OP_REPLY,
        OP_REPLY, OP_REPLY, OP_ADMIN, OP_ADMIN, OP_ADMIN, OP_PING, OP_PONG, OP_RAW, OP_RAW, OP_MUTATE,
        OP_MUTATE, OP_SPLIT, OP_PUMP, OP_STALL, OP_STALL, OP_TIMER, OP_TIMER, OP_FLOOD, OP_FLOOD,
        OP_BATCH, OP_PUBLISH, OP_PUBLISH, OP_SUBSCRIBE, OP_REQUEST, OP_REPLY, OP_CONNECT, OP_HELLO,
        OP_PUBLISH, OP_PUBLISH, OP_ADMIN, OP_UNSUBSCRIBE, OP_PING, OP_RAW, OP_MUTATE, OP_GOODBYE,
        OP_CONFIG,
};

#define FUZZ_BROKER_N_FILTERS (sizeof(fuzz_broker_filters) / sizeof(fuzz_broker_filters[0]))
#define FUZZ_BROKER_N_TOPICS (sizeof(fuzz_broker_topics) / sizeof(fuzz_broker_topics[0]))
#define FUZZ_BROKER_N_UIDS (sizeof(fuzz_broker_uids) / sizeof(fuzz_broker_uids[0]))

/* The operation byte for @op on client @slot (0..3). */
static inline uint8_t fuzz_broker_op(unsigned op, unsigned slot) {
        unsigned i;
        for (i = 0; i < 64; i++)
                if (fuzz_broker_opcodes[i] == op)
                        break;
        return (uint8_t)(i << 2 | (slot & 3));
}
