/* SPDX-License-Identifier: MIT */
/* What happens to a delivery when its recipient's queue is full. */
#pragma once

typedef enum OverflowPolicy {
        OVERFLOW_DROP_NEW,   /* drop the message that does not fit (default) */
        OVERFLOW_DROP_OLD,   /* cancel the oldest unsent deliveries to make room */
        OVERFLOW_DISCONNECT, /* disconnect the slow recipient, telling it why */
        OVERFLOW_BLOCK,      /* queue it, and stop reading from the publisher until there is room */
        _OVERFLOW_MAX,
} OverflowPolicy;

/* "drop-new", "drop-old", "disconnect", "block". */
const char *overflow_policy_name(OverflowPolicy p);
/* The policy named @s, or -EINVAL. */
int overflow_policy_from_name(const char *s);
