/* SPDX-License-Identifier: MIT */
/*
 * A small JSON reader (RFC 8259: objects, arrays, strings with every
 * escape, numbers, true, false, null) for ipcctl, which reads the broker's
 * ADMIN_REPLY documents with it. Pure code: no I/O, no globals.
 *
 * The broker is trusted, but nothing it sends may crash its reader:
 * nesting deeper than JSON_MAX_DEPTH, strings that are not valid UTF-8 or
 * hold U+0000, and anything else off the grammar are refused with -EINVAL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum JsonType {
        JSON_NULL,
        JSON_FALSE,
        JSON_TRUE,
        JSON_NUMBER,
        JSON_STRING,
        JSON_ARRAY,
        JSON_OBJECT,
} JsonType;

/* A parsed value. Every pointer in it is owned by it. */
typedef struct Json {
        JsonType type;
        char *key;          /* a member of an object: its name, decoded */
        char *text;         /* JSON_STRING: decoded, NUL-terminated; JSON_NUMBER: as written */
        size_t n;           /* JSON_ARRAY, JSON_OBJECT: number of items */
        struct Json *items; /* JSON_ARRAY, JSON_OBJECT: the items, in order (members carry key) */
} Json;

/*
 * Parses the document @text of @len bytes, which must be followed by a NUL
 * and hold none, into @ret (untouched on failure). Surrounding white space
 * is allowed, anything else after the value is not. Returns 0, -EINVAL for
 * a text that is not valid JSON (as above), or -ENOMEM. The caller
 * releases the result with json_deinit().
 */
int json_parse(const char *text, size_t len, Json *ret);

/* Frees what @v owns and empties it. */
void json_deinit(Json *v);

/* The member @key of object @v (the first one of that name); NULL when @v
 * is NULL or no object, or has no such member. */
const Json *json_get(const Json *v, const char *key);

/* The same, only when the member is an array. */
const Json *json_get_array(const Json *v, const char *key);

/* The decoded text of string member @key of @v, or NULL. */
const char *json_get_string(const Json *v, const char *key);

/* Whether @v is `true` (false for NULL). */
bool json_is_true(const Json *v);

/* A number @v that is a non-negative integer of at most 64 bits, written
 * without fraction or exponent, into *ret. Returns false otherwise. */
bool json_u64(const Json *v, uint64_t *ret);
