/* SPDX-License-Identifier: MIT */
/*
 * Topic names and subscription filters: validation and matching, with MQTT
 * filter semantics. Pure code, shared by the broker (to validate and route)
 * and the client library (to dispatch a delivery to every local
 * subscription it matches).
 *
 *  - Levels are separated by '/'. Empty levels are valid ("a//b", "/a").
 *  - In a filter, "+" is a whole level and matches exactly one level;
 *    "#" is a whole level, only the last, and matches the parent and every
 *    level below it ("a/#" matches "a", "a/b", "a/b/c").
 *  - A filter whose first level is a wildcard does not match a topic whose
 *    first level starts with '$' (those are the broker's own, "$SYS/...").
 *  - Names and filters are 1..max bytes of UTF-8 with no NUL and no control
 *    characters (U+0000..U+001F, U+007F), at most TOPIC_MAX_LEVELS levels.
 *    Topic names contain no '+' or '#' at all.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_MAX_LEVELS 64

typedef enum TopicCheck {
        TOPIC_OK = 0,
        TOPIC_E_EMPTY,
        TOPIC_E_TOO_LONG,
        TOPIC_E_UTF8,
        TOPIC_E_CONTROL,
        TOPIC_E_WILDCARD,     /* '+' or '#' in a topic name */
        TOPIC_E_PARTIAL,      /* wildcard that is not a whole level */
        TOPIC_E_HASH_NOT_LAST,
        TOPIC_E_TOO_DEEP,
        _TOPIC_E_MAX,
} TopicCheck;

/* Checks a topic name of @len bytes (not NUL terminated) against @max_len. */
TopicCheck topic_name_check(const char *s, size_t len, size_t max_len);
/* Checks a subscription filter of @len bytes against @max_len. */
TopicCheck topic_filter_check(const char *s, size_t len, size_t max_len);
/* Human explanation of a check result ("'#' must be the last level"). */
const char *topic_check_str(TopicCheck c);
/* True when valid @filter matches valid topic @name. */
bool topic_filter_match(const char *filter, size_t flen, const char *name, size_t nlen);
/* True when @s (@len bytes) is valid UTF-8 with no control characters or NUL:
 * what client names and other human text on the wire must be. */
bool utf8_printable(const char *s, size_t len);
/* True when @filter contains a wildcard level. */
bool topic_filter_is_wildcard(const char *filter, size_t flen);
