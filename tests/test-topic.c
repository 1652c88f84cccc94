/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for topic names and filters (client/topicname.c): validation
 * tables with the exact TopicCheck of every case, a match table, and a
 * randomized cross-check of topic_filter_match against a deliberately
 * naive matcher written here from the rules in topicname.h.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topicname.h"
#include "util.h"

/* Parameters are indices into static tables: Criterion copies parameter
 * bytes into a freshly exec'd worker, not what they point to. */
#define INDEX_PARAMS(suite, test, table)                                          \
        ParameterizedTestParameters(suite, test) {                                \
                static size_t idx[ARRAY_SIZE(table)];                             \
                for (size_t i = 0; i < ARRAY_SIZE(table); i++)                    \
                        idx[i] = i;                                               \
                return cr_make_param_array(size_t, idx, ARRAY_SIZE(table));       \
        }

#define MAX 1024 /* the broker's default max_topic_len */

/*
 * One validation case. The string is @s (its strlen, or @len bytes when
 * @len is set, for embedded NULs), or, when @rep is set, @s repeated @rep
 * times followed by @tail. @max of 0 means MAX.
 */
typedef struct CheckCase {
        const char *s;
        size_t len;
        unsigned rep;
        const char *tail;
        size_t max;
        TopicCheck want;
} CheckCase;

static const char *check_name(TopicCheck c) {
        static const char *const names[_TOPIC_E_MAX] = {
                [TOPIC_OK] = "OK", [TOPIC_E_EMPTY] = "EMPTY", [TOPIC_E_TOO_LONG] = "TOO_LONG",
                [TOPIC_E_UTF8] = "UTF8", [TOPIC_E_CONTROL] = "CONTROL",
                [TOPIC_E_WILDCARD] = "WILDCARD", [TOPIC_E_PARTIAL] = "PARTIAL",
                [TOPIC_E_HASH_NOT_LAST] = "HASH_NOT_LAST", [TOPIC_E_TOO_DEEP] = "TOO_DEEP",
        };
        return (unsigned)c < _TOPIC_E_MAX ? names[c] : "?";
}

/* Builds the case's string into a malloc'ed buffer; returns its length. */
static size_t build(const CheckCase *c, char **ret) {
        size_t slen = c->len ? c->len : strlen(c->s);
        size_t tlen = c->tail ? strlen(c->tail) : 0;
        size_t n = c->rep ? slen * c->rep + tlen : slen;
        char *b = malloc(n + 1), *p = b;

        cr_assert(not(zero(ptr, b)));
        if (c->rep) {
                for (unsigned i = 0; i < c->rep; i++, p += slen)
                        memcpy(p, c->s, slen);
                memcpy(p, c->tail ? c->tail : "", tlen);
        } else
                memcpy(b, c->s, slen);
        b[n] = 0;
        *ret = b;
        return n;
}

/* Printable form of a case for failure messages. */
static void describe(const char *s, size_t n, char *out, size_t cap) {
        size_t o = 0;
        for (size_t i = 0; i < n && o + 8 < cap; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch >= 0x20 && ch < 0x7f)
                        out[o++] = (char)ch;
                else
                        o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        }
        if (n > 0 && o + 8 >= cap)
                o += (size_t)snprintf(out + o, cap - o, "...");
        out[o] = 0;
}

/* Cases valid for both names and filters, or rejected the same way. */
static const CheckCase common_cases[] = {
        /* structure */
        { .s = "a", .want = TOPIC_OK },
        { .s = "a/b/c", .want = TOPIC_OK },
        { .s = "/", .want = TOPIC_OK },
        { .s = "//", .want = TOPIC_OK },
        { .s = "/a", .want = TOPIC_OK },
        { .s = "a/", .want = TOPIC_OK },
        { .s = "a//b", .want = TOPIC_OK },
        { .s = "$SYS/broker", .want = TOPIC_OK },
        { .s = "$", .want = TOPIC_OK },
        { .s = "a$b/$", .want = TOPIC_OK },
        { .s = " ", .want = TOPIC_OK },
        { .s = "~!\"%&'()*,-.:;<=>?@[\\]^_`{|}", .want = TOPIC_OK },
        { .s = "", .want = TOPIC_E_EMPTY },

        /* UTF-8: valid multibyte */
        { .s = "\xc2\x80", .want = TOPIC_OK },             /* U+0080, smallest 2-byte */
        { .s = "caf\xc3\xa9/\xe2\x82\xac", .want = TOPIC_OK }, /* café/€ */
        { .s = "\xdf\xbf", .want = TOPIC_OK },             /* U+07FF */
        { .s = "\xe0\xa0\x80", .want = TOPIC_OK },         /* U+0800, smallest 3-byte */
        { .s = "\xed\x9f\xbf", .want = TOPIC_OK },         /* U+D7FF, just below surrogates */
        { .s = "\xee\x80\x80", .want = TOPIC_OK },         /* U+E000, just above */
        { .s = "\xef\xbf\xbf", .want = TOPIC_OK },         /* U+FFFF */
        { .s = "\xf0\x90\x80\x80", .want = TOPIC_OK },     /* U+10000, smallest 4-byte */
        { .s = "\xf0\x9d\x84\x9e", .want = TOPIC_OK },     /* U+1D11E */
        { .s = "\xf4\x8f\xbf\xbf", .want = TOPIC_OK },     /* U+10FFFF, the last */
        { .s = "\xc2\x85", .want = TOPIC_OK },             /* U+0085 (C1 control) is allowed */

        /* UTF-8: overlong forms */
        { .s = "\xc0\x80", .want = TOPIC_E_UTF8 },         /* NUL, overlong */
        { .s = "\xc0\xaf", .want = TOPIC_E_UTF8 },         /* '/', overlong */
        { .s = "\xc1\xbf", .want = TOPIC_E_UTF8 },
        { .s = "\xe0\x80\x80", .want = TOPIC_E_UTF8 },
        { .s = "\xe0\x9f\xbf", .want = TOPIC_E_UTF8 },     /* U+07FF in 3 bytes */
        { .s = "\xf0\x80\x80\x80", .want = TOPIC_E_UTF8 },
        { .s = "\xf0\x8f\xbf\xbf", .want = TOPIC_E_UTF8 }, /* U+FFFF in 4 bytes */

        /* UTF-8: surrogates and beyond U+10FFFF */
        { .s = "\xed\xa0\x80", .want = TOPIC_E_UTF8 },     /* U+D800 */
        { .s = "\xed\xbf\xbf", .want = TOPIC_E_UTF8 },     /* U+DFFF */
        { .s = "\xed\xa0\xbd\xed\xb8\x80", .want = TOPIC_E_UTF8 }, /* CESU-8 pair */
        { .s = "\xf4\x90\x80\x80", .want = TOPIC_E_UTF8 }, /* U+110000 */
        { .s = "\xf5\x80\x80\x80", .want = TOPIC_E_UTF8 },
        { .s = "\xf7\xbf\xbf\xbf", .want = TOPIC_E_UTF8 },
        { .s = "\xf8\x88\x80\x80\x80", .want = TOPIC_E_UTF8 }, /* old 5-byte form */
        { .s = "\xfe", .want = TOPIC_E_UTF8 },
        { .s = "\xff", .want = TOPIC_E_UTF8 },

        /* UTF-8: bad continuation, stray continuation, truncated */
        { .s = "\xc3\x28", .want = TOPIC_E_UTF8 },
        { .s = "\xc3\xc3\xa9", .want = TOPIC_E_UTF8 },
        { .s = "\xe2\x28\xa1", .want = TOPIC_E_UTF8 },
        { .s = "\xe2\x82\x28", .want = TOPIC_E_UTF8 },
        { .s = "\xf0\x9d\x84\x2f", .want = TOPIC_E_UTF8 }, /* '/' where a continuation belongs */
        { .s = "\x80", .want = TOPIC_E_UTF8 },
        { .s = "a\xbf", .want = TOPIC_E_UTF8 },
        { .s = "\xc3", .want = TOPIC_E_UTF8 },
        { .s = "ab\xe2\x82", .want = TOPIC_E_UTF8 },
        { .s = "\xf0\x9d\x84", .want = TOPIC_E_UTF8 },
        { .s = "\xe2\x82/x", .want = TOPIC_E_UTF8 },
        /* truncated by the length, though the bytes continue in memory */
        { .s = "\xc3\xa9", .len = 1, .want = TOPIC_E_UTF8 },
        { .s = "x\xf0\x9d\x84\x9e", .len = 4, .want = TOPIC_E_UTF8 },

        /* control characters, NUL, DEL */
        { .s = "\x01", .want = TOPIC_E_CONTROL },
        { .s = "a\tb", .want = TOPIC_E_CONTROL },
        { .s = "a\n", .want = TOPIC_E_CONTROL },
        { .s = "\x1f", .want = TOPIC_E_CONTROL },
        { .s = "a/\x7f", .want = TOPIC_E_CONTROL },
        { .s = "a\0b", .len = 3, .want = TOPIC_E_CONTROL },
        { .s = "\0", .len = 1, .want = TOPIC_E_CONTROL },
        { .s = "ab\0", .len = 3, .want = TOPIC_E_CONTROL },

        /* depth: 64 levels are fine, 65 are not */
        { .s = "/", .rep = 63, .want = TOPIC_OK },                     /* 64 empty levels */
        { .s = "/", .rep = 64, .want = TOPIC_E_TOO_DEEP },
        { .s = "a/", .rep = 63, .tail = "a", .want = TOPIC_OK },
        { .s = "a/", .rep = 64, .tail = "a", .want = TOPIC_E_TOO_DEEP },
        { .s = "level/", .rep = 100, .tail = "x", .want = TOPIC_E_TOO_DEEP },

        /* length: bytes, not characters; checked before the content */
        { .s = "a", .rep = MAX, .want = TOPIC_OK },
        { .s = "a", .rep = MAX + 1, .want = TOPIC_E_TOO_LONG },
        { .s = "\xc3\xa9", .rep = MAX / 2, .want = TOPIC_OK },
        { .s = "\xc3\xa9", .rep = MAX / 2, .tail = "a", .want = TOPIC_E_TOO_LONG },
        { .s = "abcd", .max = 4, .want = TOPIC_OK },
        { .s = "abcde", .max = 4, .want = TOPIC_E_TOO_LONG },
        { .s = "\x01\x02\x03\x04\x05", .max = 4, .want = TOPIC_E_TOO_LONG },
        { .s = "/", .rep = 64, .max = 10, .want = TOPIC_E_TOO_LONG },
        { .s = "\xe2\x82\xac", .max = 2, .want = TOPIC_E_TOO_LONG },
        { .s = "a", .max = 65535, .want = TOPIC_OK },
        { .s = "", .max = 1, .want = TOPIC_E_EMPTY },
};

/* Topic names: wildcards are not allowed at all. */
static const CheckCase name_cases[] = {
        { .s = "+", .want = TOPIC_E_WILDCARD },
        { .s = "#", .want = TOPIC_E_WILDCARD },
        { .s = "a/+", .want = TOPIC_E_WILDCARD },
        { .s = "a/#", .want = TOPIC_E_WILDCARD },
        { .s = "a+b", .want = TOPIC_E_WILDCARD },
        { .s = "a#", .want = TOPIC_E_WILDCARD },
        { .s = "c++", .want = TOPIC_E_WILDCARD },
        { .s = "$SYS/#", .want = TOPIC_E_WILDCARD },
        { .s = "+/+", .want = TOPIC_E_WILDCARD },
};

/* Filters: wildcards are whole levels, '#' only last. */
static const CheckCase filter_cases[] = {
        { .s = "#", .want = TOPIC_OK },
        { .s = "+", .want = TOPIC_OK },
        { .s = "+/+", .want = TOPIC_OK },
        { .s = "+/#", .want = TOPIC_OK },
        { .s = "a/#", .want = TOPIC_OK },
        { .s = "a/+", .want = TOPIC_OK },
        { .s = "a/+/b", .want = TOPIC_OK },
        { .s = "/#", .want = TOPIC_OK },
        { .s = "/+", .want = TOPIC_OK },
        { .s = "+/", .want = TOPIC_OK },
        { .s = "a//+", .want = TOPIC_OK },
        { .s = "$SYS/#", .want = TOPIC_OK },
        { .s = "+/$SYS", .want = TOPIC_OK },
        { .s = "a#", .want = TOPIC_E_PARTIAL },
        { .s = "#a", .want = TOPIC_E_PARTIAL },
        { .s = "a/b#", .want = TOPIC_E_PARTIAL },
        { .s = "a/+b", .want = TOPIC_E_PARTIAL },
        { .s = "a/b+", .want = TOPIC_E_PARTIAL },
        { .s = "+a", .want = TOPIC_E_PARTIAL },
        { .s = "++", .want = TOPIC_E_PARTIAL },
        { .s = "##", .want = TOPIC_E_PARTIAL },
        { .s = "+#", .want = TOPIC_E_PARTIAL },
        { .s = "c++/x", .want = TOPIC_E_PARTIAL },
        { .s = "#/a", .want = TOPIC_E_HASH_NOT_LAST },
        { .s = "#/", .want = TOPIC_E_HASH_NOT_LAST },
        { .s = "#/#", .want = TOPIC_E_HASH_NOT_LAST },
        { .s = "a/#/b", .want = TOPIC_E_HASH_NOT_LAST },
        { .s = "a/#/+", .want = TOPIC_E_HASH_NOT_LAST },
        { .s = "+/", .rep = 63, .tail = "+", .want = TOPIC_OK },  /* 64 levels of '+' */
        { .s = "+/", .rep = 63, .tail = "#", .want = TOPIC_OK },
        { .s = "+/", .rep = 64, .tail = "#", .want = TOPIC_E_TOO_DEEP },
        { .s = "#", .max = 1, .want = TOPIC_OK },
        { .s = "a/#", .max = 2, .want = TOPIC_E_TOO_LONG },
        { .s = "+\x01", .want = TOPIC_E_PARTIAL },
        { .s = "+/\xff", .want = TOPIC_E_UTF8 },
};

static void run_check(const CheckCase *c, bool filter, const char *table, size_t i) {
        char *s, what[160];
        size_t n = build(c, &s);
        TopicCheck got = filter ? topic_filter_check(s, n, c->max ? c->max : MAX)
                                : topic_name_check(s, n, c->max ? c->max : MAX);

        describe(s, n, what, sizeof(what));
        cr_assert(eq(int, got, c->want), "%s[%zu] %s \"%s\" (%zu bytes): got %s, want %s", table, i,
                  filter ? "filter" : "name", what, n, check_name(got), check_name(c->want));
        free(s);
}

INDEX_PARAMS(check, common_as_name, common_cases)
ParameterizedTest(size_t *i, check, common_as_name) {
        run_check(&common_cases[*i], false, "common", *i);
}

INDEX_PARAMS(check, common_as_filter, common_cases)
ParameterizedTest(size_t *i, check, common_as_filter) {
        run_check(&common_cases[*i], true, "common", *i);
}

INDEX_PARAMS(check, name, name_cases)
ParameterizedTest(size_t *i, check, name) {
        run_check(&name_cases[*i], false, "name", *i);
}

INDEX_PARAMS(check, filter, filter_cases)
ParameterizedTest(size_t *i, check, filter) {
        run_check(&filter_cases[*i], true, "filter", *i);
}

Test(check, strings_for_every_result) {
        for (int c = 0; c < _TOPIC_E_MAX; c++) {
                const char *s = topic_check_str((TopicCheck)c);
                cr_assert(not(zero(ptr, (void *)s)));
                cr_assert(gt(sz, strlen(s), 0), "%s", check_name((TopicCheck)c));
                for (int d = 0; d < c; d++)
                        cr_assert(ne(str, (char *)s, (char *)topic_check_str((TopicCheck)d)));
        }
        cr_assert(eq(str, (char *)topic_check_str(_TOPIC_E_MAX), "invalid topic"));
        cr_assert(eq(str, (char *)topic_check_str((TopicCheck)-1), "invalid topic"));
}

/* ---- Human text (client names) ------------------------------------------ */

typedef struct TextCase {
        const char *s;
        size_t len; /* 0: strlen */
        bool want;
} TextCase;

static const TextCase text_cases[] = {
        { "demo", 0, true },
        { "", 0, true },                     /* an empty name is allowed */
        { "sensor daemon #2 (+/$)", 0, true }, /* no topic rules here */
        { "caf\xc3\xa9 \xf0\x9d\x84\x9e", 0, true },
        { "\x01", 0, false },
        { "a\tb", 0, false },
        { "a\x7f", 0, false },
        { "a\0b", 3, false },
        { "\xc3", 0, false },
        { "\xc0\x80", 0, false },
        { "\xed\xa0\x80", 0, false },
        { "\xf4\x90\x80\x80", 0, false },
        { "\xc3\xa9", 1, false },
};

Test(check, utf8_printable) {
        for (size_t i = 0; i < ARRAY_SIZE(text_cases); i++) {
                const TextCase *c = &text_cases[i];
                size_t n = c->len ? c->len : strlen(c->s);
                char what[64];

                describe(c->s, n, what, sizeof(what));
                cr_assert(eq(int, utf8_printable(c->s, n), c->want), "\"%s\"", what);
        }
}

/* ---- Matching ----------------------------------------------------------- */

typedef struct MatchCase {
        const char *filter;
        const char *topic;
        bool want;
} MatchCase;

static const MatchCase match_cases[] = {
        /* literal */
        { "a", "a", true },
        { "a", "b", false },
        { "a", "ab", false },
        { "ab", "a", false },
        { "a/b", "a/b", true },
        { "a/b", "a", false },
        { "a", "a/b", false },
        { "a/b", "a/b/", false },
        { "a/", "a/", true },
        { "a/", "a", false },
        { "a//b", "a//b", true },
        { "a/b", "a//b", false },
        { "/", "/", true },
        { "/a", "a", false },
        /* '+' is exactly one level, possibly empty */
        { "+", "a", true },
        { "+", "a/b", false },
        { "+", "/", false },
        { "+/+", "/", true },
        { "+/+", "a/", true },
        { "+/+", "/b", true },
        { "+/+", "a", false },
        { "+/+", "a/b/c", false },
        { "a/+", "a", false },
        { "a/+", "a/", true },
        { "a/+", "a/b", true },
        { "a/+", "a/b/c", false },
        { "a/+/c", "a/b/c", true },
        { "a/+/c", "a//c", true },
        { "a/+/c", "a/b/d", false },
        { "/+", "/a", true },
        { "/+", "a", false },
        { "+/b", "a/b", true },
        /* '#' is the parent and everything below */
        { "#", "a", true },
        { "#", "/", true },
        { "#", "a/b/c", true },
        { "a/#", "a", true },
        { "a/#", "a/", true },
        { "a/#", "a/b", true },
        { "a/#", "a/b/c", true },
        { "a/#", "b", false },
        { "a/#", "ab", false },
        { "a/#", "ab/c", false },
        { "/#", "/", true },
        { "/#", "/a", true },
        { "/#", "a", false },
        { "+/#", "a", true },
        { "+/#", "/", true },
        { "+/#", "a/b/c", true },
        { "a/+/#", "a", false },
        { "a/+/#", "a/b", true },
        { "a/+/#", "a/b/c/d", true },
        { "+/+/#", "a", false },
        /* '$' topics are not matched by a leading wildcard */
        { "#", "$SYS/x", false },
        { "#", "$SYS", false },
        { "#", "$", false },
        { "+", "$SYS", false },
        { "+/x", "$SYS/x", false },
        { "+/#", "$SYS/a", false },
        { "$SYS/#", "$SYS/x", true },
        { "$SYS/#", "$SYS", true },
        { "$SYS/#", "$SYSX", false },
        { "$SYS/+", "$SYS/x", true },
        { "$SYS", "$SYS", true },
        { "$", "$", true },
        /* ... but only at the first level */
        { "a/+", "a/$x", true },
        { "a/#", "a/$x", true },
        { "+/$x", "a/$x", true },
        { "+", "a$", true },
        /* multibyte levels compare byte for byte */
        { "caf\xc3\xa9/+", "caf\xc3\xa9/x", true },
        { "caf\xc3\xa9", "cafe", false },
};

INDEX_PARAMS(match, table, match_cases)

ParameterizedTest(size_t *i, match, table) {
        const MatchCase *c = &match_cases[*i];
        size_t flen = strlen(c->filter), tlen = strlen(c->topic);

        /* The table itself must only hold valid input. */
        cr_assert(eq(int, topic_filter_check(c->filter, flen, MAX), TOPIC_OK), "filter %s", c->filter);
        cr_assert(eq(int, topic_name_check(c->topic, tlen, MAX), TOPIC_OK), "topic %s", c->topic);
        cr_assert(eq(int, topic_filter_match(c->filter, flen, c->topic, tlen), c->want),
                  "\"%s\" vs \"%s\": want %s", c->filter, c->topic, c->want ? "match" : "no match");
}

Test(match, table_is_large_enough) {
        cr_assert(ge(sz, ARRAY_SIZE(match_cases), 40));
}

Test(match, lengths_not_terminators) {
        /* The strings are not NUL terminated where the lengths end. */
        cr_assert(topic_filter_match("a/+XXXX", 3, "a/bYYYY", 3));
        cr_assert(topic_filter_match("a/#/zzz", 3, "a", 1));
        cr_assert(not(topic_filter_match("a/bc", 3, "a/bc", 4)));
        cr_assert(not(topic_filter_match("a/bc", 4, "a/bc", 3)));
}

Test(match, is_wildcard) {
        cr_assert(topic_filter_is_wildcard("#", 1));
        cr_assert(topic_filter_is_wildcard("+", 1));
        cr_assert(topic_filter_is_wildcard("a/+/b", 5));
        cr_assert(topic_filter_is_wildcard("a/#", 3));
        cr_assert(topic_filter_is_wildcard("/+", 2));
        cr_assert(not(topic_filter_is_wildcard("a/b", 3)));
        cr_assert(not(topic_filter_is_wildcard("/", 1)));
        cr_assert(not(topic_filter_is_wildcard("$SYS/x", 6)));
        cr_assert(not(topic_filter_is_wildcard("a/#", 2)), "stops at the length");
}

/* ---- Randomized cross-check ---------------------------------------------
 * The reference splits both strings into levels and compares them one by
 * one, straight from the rules: slow and obvious on purpose. */

#define REF_MAX_LEVELS 16

static size_t split(const char *s, const char *levels[], size_t lens[]) {
        size_t n = 0;
        const char *start = s;
        for (const char *p = s;; p++) {
                if (*p == '/' || *p == 0) {
                        levels[n] = start;
                        lens[n] = (size_t)(p - start);
                        n++;
                        if (*p == 0)
                                return n;
                        start = p + 1;
                }
        }
}

static bool level_is(const char *l, size_t len, const char *what) {
        return len == strlen(what) && memcmp(l, what, len) == 0;
}

static bool ref_match(const char *filter, const char *topic) {
        const char *fl[REF_MAX_LEVELS * 2], *tl[REF_MAX_LEVELS * 2];
        size_t fn[REF_MAX_LEVELS * 2], tn[REF_MAX_LEVELS * 2];
        size_t nf = split(filter, fl, fn), nt = split(topic, tl, tn);

        if (topic[0] == '$' && (level_is(fl[0], fn[0], "+") || level_is(fl[0], fn[0], "#")))
                return false;
        for (size_t i = 0; i < nf; i++) {
                if (level_is(fl[i], fn[i], "#"))
                        return true; /* the rest, including none at all */
                if (i >= nt)
                        return false;
                if (level_is(fl[i], fn[i], "+"))
                        continue;
                if (fn[i] != tn[i] || memcmp(fl[i], tl[i], fn[i]) != 0)
                        return false;
        }
        return nf == nt;
}

Test(match, reference_agrees_with_table) {
        /* The reference is only worth comparing against if it gets the
         * hand-written table right. */
        for (size_t i = 0; i < ARRAY_SIZE(match_cases); i++)
                cr_assert(eq(int, ref_match(match_cases[i].filter, match_cases[i].topic),
                             match_cases[i].want), "\"%s\" vs \"%s\"", match_cases[i].filter,
                          match_cases[i].topic);
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (unsigned)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

/* Joins 1..@max_levels levels drawn from @alphabet with '/'; never the
 * empty string, which is no topic at all. */
static void gen(char *buf, const char *const *alphabet, unsigned n_alpha, unsigned max_levels) {
        do {
                unsigned levels = 1 + rnd(max_levels);
                buf[0] = 0;
                for (unsigned i = 0; i < levels; i++) {
                        if (i)
                                strcat(buf, "/");
                        strcat(buf, alphabet[rnd(n_alpha)]);
                }
        } while (buf[0] == 0);
}

Test(match, randomized_against_reference) {
        static const char *const filter_alpha[] = { "a", "b", "$", "+", "#", "", "a$", "$a" };
        static const char *const topic_alpha[] = { "a", "b", "$", "", "a$", "$a" };
        unsigned compared = 0, matched = 0, invalid_filters = 0;

        for (unsigned iter = 0; iter < 20000; iter++) {
                char f[REF_MAX_LEVELS * 4], t[REF_MAX_LEVELS * 4];
                bool got, want;

                gen(f, filter_alpha, ARRAY_SIZE(filter_alpha), 5);
                gen(t, topic_alpha, ARRAY_SIZE(topic_alpha), 5);
                if (topic_filter_check(f, strlen(f), MAX) != TOPIC_OK) {
                        /* '#' not last: the generator makes these often. */
                        invalid_filters++;
                        continue;
                }
                cr_assert(eq(int, topic_name_check(t, strlen(t), MAX), TOPIC_OK), "topic \"%s\"", t);
                want = ref_match(f, t);
                got = topic_filter_match(f, strlen(f), t, strlen(t));
                cr_assert(eq(int, got, want), "filter \"%s\" topic \"%s\": got %d, reference %d", f, t,
                          got, want);
                compared++;
                matched += want;
        }
        /* The generator must exercise both outcomes in earnest. */
        cr_assert(gt(u32, compared, 5000), "only %u valid pairs", compared);
        cr_assert(gt(u32, matched, 500), "only %u matches", matched);
        cr_assert(gt(u32, compared - matched, 500));
        cr_assert(gt(u32, invalid_filters, 0));
}

Test(match, randomized_filter_check_against_reference) {
        /* Validity of filters built from whole levels: '#' may only be last. */
        static const char *const alpha[] = { "a", "+", "#", "", "$" };

        for (unsigned iter = 0; iter < 5000; iter++) {
                char f[REF_MAX_LEVELS * 4];
                const char *fl[REF_MAX_LEVELS * 2];
                size_t fn[REF_MAX_LEVELS * 2], nf;
                TopicCheck want = TOPIC_OK;

                gen(f, alpha, ARRAY_SIZE(alpha), 6);
                nf = split(f, fl, fn);
                for (size_t i = 0; i + 1 < nf; i++)
                        if (level_is(fl[i], fn[i], "#")) {
                                want = TOPIC_E_HASH_NOT_LAST;
                                break;
                        }
                cr_assert(eq(int, topic_filter_check(f, strlen(f), MAX), want), "filter \"%s\"", f);
                cr_assert(eq(int, topic_name_check(f, strlen(f), MAX),
                             strpbrk(f, "+#") ? TOPIC_E_WILDCARD : TOPIC_OK), "name \"%s\"", f);
        }
}
