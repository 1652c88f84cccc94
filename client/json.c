/* SPDX-License-Identifier: MIT */
/*
 * The JSON reader of json.h: a recursive descent over a NUL-terminated
 * text, whose NUL is the sentinel every loop stops at (no byte of the
 * grammar is NUL), with the depth bounded so recursion cannot exhaust the
 * stack.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

typedef struct JsonParser {
        const char *p; /* next byte */
        unsigned depth;
} JsonParser;

void json_deinit(Json *v) {
        size_t i;

        if (!v)
                return;
        for (i = 0; i < v->n; i++)
                json_deinit(&v->items[i]);
        free(v->items);
        free(v->key);
        free(v->text);
        *v = (Json){ 0 };
}

static void skip_ws(JsonParser *jp) {
        while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
                jp->p++;
}


static int hex4(const char *p, uint32_t *ret) {
        uint32_t v = 0;
        int i;

        for (i = 0; i < 4; i++) {
                char ch = p[i];
                int h;

                if (ch >= '0' && ch <= '9')
                        h = ch - '0';
                else if (ch >= 'a' && ch <= 'f')
                        h = ch - 'a' + 10;
                else if (ch >= 'A' && ch <= 'F')
                        h = ch - 'A' + 10;
                else
                        return -EINVAL;
                v = v << 4 | (uint32_t)h;
        }
        *ret = v;
        return 0;
}

/* Writes code point @cp (valid, not a surrogate) as UTF-8 at @out; returns
 * the bytes written. */
static size_t utf8_put(char *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xc0 | cp >> 6);
                out[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xe0 | cp >> 12);
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

/*
 * The string whose opening quote is at jp->p, decoded into a malloc()ed
 * NUL-terminated string; jp->p moves past its closing quote. The closing
 * quote is found first, so the allocation is the encoded length: no escape
 * decodes to more bytes than it is written with (\uXXXX is 6 bytes for at
 * most 3, a surrogate pair 12 for 4).
 */
static int parse_string(JsonParser *jp, char **ret) {
        const char *s = jp->p + 1, *q;
        char *out, *o;

        for (q = s; *q && *q != '"'; q++)
                if (*q == '\\' && q[1])
                        q++;
        if (*q != '"')
                return -EINVAL;
        out = o = malloc((size_t)(q - s) + 1);
        if (!out)
                return -ENOMEM;
        /* Inside [s, q) every backslash has the byte it escapes. */
        while (s < q) {
                unsigned char ch = (unsigned char)*s;
                uint32_t cp, lo;
                size_t n;

                if (ch < 0x20)
                        goto fail;
                if (ch != '\\') {
                        n = utf8_char_len((const unsigned char *)s, (size_t)(q - s));
                        if (n == 0)
                                goto fail;
                        memcpy(o, s, n);
                        o += n;
                        s += n;
                        continue;
                }
                s++;
                switch (*s++) {
                case '"':
                        *o++ = '"';
                        break;
                case '\\':
                        *o++ = '\\';
                        break;
                case '/':
                        *o++ = '/';
                        break;
                case 'b':
                        *o++ = '\b';
                        break;
                case 'f':
                        *o++ = '\f';
                        break;
                case 'n':
                        *o++ = '\n';
                        break;
                case 'r':
                        *o++ = '\r';
                        break;
                case 't':
                        *o++ = '\t';
                        break;
                case 'u':
                        if (q - s < 4 || hex4(s, &cp) < 0)
                                goto fail;
                        s += 4;
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                /* A high surrogate needs its low one. */
                                if (q - s < 6 || s[0] != '\\' || s[1] != 'u' ||
                                    hex4(s + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                                        goto fail;
                                s += 6;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        } else if (cp >= 0xdc00 && cp <= 0xdfff)
                                goto fail;
                        if (cp == 0)
                                goto fail;
                        o += utf8_put(o, cp);
                        break;
                default:
                        goto fail;
                }
        }
        *o = 0;
        jp->p = q + 1;
        *ret = out;
        return 0;
fail:
        free(out);
        return -EINVAL;
}

static bool is_digit(char ch) {
        return ch >= '0' && ch <= '9';
}

/* A number, kept as written: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(JsonParser *jp, char **ret) {
        const char *s = jp->p;
        char *text;

        if (*s == '-')
                s++;
        if (*s == '0')
                s++;
        else if (*s >= '1' && *s <= '9')
                while (is_digit(*s))
                        s++;
        else
                return -EINVAL;
        if (*s == '.') {
                s++;
                if (!is_digit(*s))
                        return -EINVAL;
                while (is_digit(*s))
                        s++;
        }
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '+' || *s == '-')
                        s++;
                if (!is_digit(*s))
                        return -EINVAL;
                while (is_digit(*s))
                        s++;
        }
        text = strndup(jp->p, (size_t)(s - jp->p));
        if (!text)
                return -ENOMEM;
        jp->p = s;
        *ret = text;
        return 0;
}

static int parse_value(JsonParser *jp, Json *ret);

/* Appends an empty item to @v; returns it, or NULL when out of memory. */
static Json *push_item(Json *v, size_t *cap) {
        if (v->n == *cap) {
                size_t ncap = *cap ? *cap * 2 : 8;
                Json *items = realloc(v->items, ncap * sizeof(*items));

                if (!items)
                        return NULL;
                v->items = items;
                *cap = ncap;
        }
        v->items[v->n] = (Json){ 0 };
        return &v->items[v->n];
}

/*
 * The array or object (@v->type set, @close ']' or '}') whose opening
 * bracket is at jp->p. On failure @v holds the items parsed so far (each
 * counted in @v->n as soon as it owns anything), for json_deinit().
 */
static int parse_container(JsonParser *jp, Json *v, char close) {
        size_t cap = 0;
        int r;

        if (++jp->depth > JSON_MAX_DEPTH)
                return -EINVAL;
        jp->p++;
        skip_ws(jp);
        if (*jp->p == close) {
                jp->p++;
                jp->depth--;
                return 0;
        }
        for (;;) {
                Json *item = push_item(v, &cap);

                if (!item)
                        return -ENOMEM;
                v->n++;
                skip_ws(jp);
                if (close == '}') {
                        if (*jp->p != '"')
                                return -EINVAL;
                        r = parse_string(jp, &item->key);
                        if (r < 0)
                                return r;
                        skip_ws(jp);
                        if (*jp->p != ':')
                                return -EINVAL;
                        jp->p++;
                        skip_ws(jp);
                }
                r = parse_value(jp, item);
                if (r < 0)
                        return r;
                skip_ws(jp);
                if (*jp->p == ',') {
                        jp->p++;
                        continue;
                }
                if (*jp->p != close)
                        return -EINVAL;
                jp->p++;
                jp->depth--;
                return 0;
        }
}

/* One value at jp->p into @ret (empty); on failure @ret holds what was
 * parsed of it. */
static int parse_value(JsonParser *jp, Json *ret) {
        switch (*jp->p) {
        case '{':
                ret->type = JSON_OBJECT;
                return parse_container(jp, ret, '}');
        case '[':
                ret->type = JSON_ARRAY;
                return parse_container(jp, ret, ']');
        case '"':
                ret->type = JSON_STRING;
                return parse_string(jp, &ret->text);
        case 't':
                if (strncmp(jp->p, "true", 4) != 0)
                        return -EINVAL;
                ret->type = JSON_TRUE;
                jp->p += 4;
                return 0;
        case 'f':
                if (strncmp(jp->p, "false", 5) != 0)
                        return -EINVAL;
                ret->type = JSON_FALSE;
                jp->p += 5;
                return 0;
        case 'n':
                if (strncmp(jp->p, "null", 4) != 0)
                        return -EINVAL;
                ret->type = JSON_NULL;
                jp->p += 4;
                return 0;
        default:
                ret->type = JSON_NUMBER;
                return parse_number(jp, &ret->text);
        }
}

int json_parse(const char *text, size_t len, Json *ret) {
        JsonParser jp = { .p = text };
        Json v = { 0 };
        int r;

        if (!text || !ret || strlen(text) != len)
                return -EINVAL;
        skip_ws(&jp);
        r = parse_value(&jp, &v);
        if (r >= 0) {
                skip_ws(&jp);
                if (jp.p != text + len)
                        r = -EINVAL;
        }
        if (r < 0) {
                json_deinit(&v);
                return r;
        }
        *ret = v;
        return 0;
}

const Json *json_get(const Json *v, const char *key) {
        size_t i;

        if (!v || v->type != JSON_OBJECT)
                return NULL;
        for (i = 0; i < v->n; i++)
                if (strcmp(v->items[i].key, key) == 0)
                        return &v->items[i];
        return NULL;
}

const Json *json_get_array(const Json *v, const char *key) {
        const Json *a = json_get(v, key);

        return a && a->type == JSON_ARRAY ? a : NULL;
}

const char *json_get_string(const Json *v, const char *key) {
        const Json *s = json_get(v, key);

        return s && s->type == JSON_STRING ? s->text : NULL;
}

bool json_is_true(const Json *v) {
        return v && v->type == JSON_TRUE;
}

bool json_u64(const Json *v, uint64_t *ret) {
        unsigned long long x;
        char *end;

        if (!v || v->type != JSON_NUMBER || !is_digit(v->text[0]))
                return false;
        errno = 0;
        x = strtoull(v->text, &end, 10);
        if (errno || *end)
                return false;
        *ret = x;
        return true;
}
