/* SPDX-License-Identifier: MIT */
/*
 * The configuration file: a recursive-descent walk over libyaml's event
 * stream, driven by a fixed schema. Because every key is known and anything
 * unexpected is an error at once, the walk never skips or buffers a
 * subtree, its depth is bounded by the schema, and anchors and aliases are
 * refused outright (no alias expansion, no billion laughs).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>
#include <yaml.h>

#include "conf.h"
#include "topicname.h"
#include "util.h"

/* Larger files are refused before parsing. */
#define CONFIG_FILE_MAX (16u << 20)
/* Entries per list (rules, names, filters, types): keeps every check that
 * compares entries pairwise cheap, whatever the file says. */
#define CONFIG_LIST_MAX 4096u

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

static const ConfigLimits default_limits = {
        .max_connections = 16384,
        .max_connections_per_user = 1024,
        .max_subscriptions = 1024,
        .queue_bytes = 8 * MiB,
        .queue_messages = 65536,
        .queue_fds = 256,
        .user_queue_bytes = 64 * MiB,
        .user_fds = 1024,
        .max_payload = 1 * MiB,
        .max_topic_length = 1024,
        .max_fds_per_message = 16,
        .max_bulk_size = 1 * GiB,
        .bulk_threshold = 64 * KiB,
        .max_pending_requests = 1024,
        .request_timeout_ms = 5000,
        .max_topics = 65536,
        .retained_max_messages = 10000,
        .retained_max_bytes = 64 * MiB,
        .hello_timeout_ms = 10000,
        .shutdown_timeout_ms = 5000,
};

/* How a value is written in the file. */
typedef enum ValueKind {
        VALUE_COUNT,    /* a plain integer */
        VALUE_SIZE,     /* bytes, optionally with a binary suffix */
        VALUE_DURATION, /* milliseconds, optionally with a time suffix */
} ValueKind;

/* The limits section, as a table: name, kind, field and range. */
typedef struct LimitKey {
        const char *name;
        ValueKind kind;
        size_t offset;
        size_t width; /* 4 or 8 */
        uint64_t min, max;
} LimitKey;

#define LIMIT(name, kind, min, max)                                                   \
        { #name, kind, offsetof(ConfigLimits, name), sizeof(((ConfigLimits *)0)->name), \
          min, max }

enum {
        L_MAX_CONNECTIONS,
        L_MAX_CONNECTIONS_PER_USER,
        L_MAX_SUBSCRIPTIONS,
        L_QUEUE_BYTES,
        L_QUEUE_MESSAGES,
        L_QUEUE_FDS,
        L_USER_QUEUE_BYTES,
        L_USER_FDS,
        L_MAX_PAYLOAD,
        L_MAX_TOPIC_LENGTH,
        L_MAX_FDS_PER_MESSAGE,
        L_MAX_BULK_SIZE,
        L_BULK_THRESHOLD,
        L_MAX_PENDING_REQUESTS,
        L_REQUEST_TIMEOUT,
        L_MAX_TOPICS,
        L_RETAINED_MAX_MESSAGES,
        L_RETAINED_MAX_BYTES,
        L_HELLO_TIMEOUT,
        L_SHUTDOWN_TIMEOUT,
        _L_MAX,
};

static const LimitKey limit_keys[_L_MAX] = {
        [L_MAX_CONNECTIONS] = LIMIT(max_connections, VALUE_COUNT, 1, 1u << 24),
        [L_MAX_CONNECTIONS_PER_USER] = LIMIT(max_connections_per_user, VALUE_COUNT, 1, 1u << 24),
        [L_MAX_SUBSCRIPTIONS] = LIMIT(max_subscriptions, VALUE_COUNT, 1, 1u << 24),
        [L_QUEUE_BYTES] = LIMIT(queue_bytes, VALUE_SIZE, 4 * KiB, TiB),
        [L_QUEUE_MESSAGES] = LIMIT(queue_messages, VALUE_COUNT, 1, 1u << 24),
        [L_QUEUE_FDS] = LIMIT(queue_fds, VALUE_COUNT, 0, 1u << 20),
        [L_USER_QUEUE_BYTES] = LIMIT(user_queue_bytes, VALUE_SIZE, 4 * KiB, TiB),
        [L_USER_FDS] = LIMIT(user_fds, VALUE_COUNT, 0, 1u << 20),
        [L_MAX_PAYLOAD] = LIMIT(max_payload, VALUE_SIZE, 1, CONFIG_MAX_PAYLOAD_LIMIT),
        [L_MAX_TOPIC_LENGTH] = LIMIT(max_topic_length, VALUE_COUNT, 1, CONFIG_MAX_TOPIC_LENGTH_LIMIT),
        [L_MAX_FDS_PER_MESSAGE] = LIMIT(max_fds_per_message, VALUE_COUNT, 0,
                                        CONFIG_MAX_FDS_PER_MESSAGE_LIMIT),
        [L_MAX_BULK_SIZE] = LIMIT(max_bulk_size, VALUE_SIZE, 1, TiB),
        [L_BULK_THRESHOLD] = LIMIT(bulk_threshold, VALUE_SIZE, 1, CONFIG_MAX_PAYLOAD_LIMIT),
        [L_MAX_PENDING_REQUESTS] = LIMIT(max_pending_requests, VALUE_COUNT, 1, 1u << 24),
        [L_REQUEST_TIMEOUT] = { "request_timeout", VALUE_DURATION,
                                offsetof(ConfigLimits, request_timeout_ms), sizeof(uint64_t), 1,
                                3600 * 1000 },
        [L_MAX_TOPICS] = LIMIT(max_topics, VALUE_COUNT, 1, 1u << 24),
        [L_RETAINED_MAX_MESSAGES] = LIMIT(retained_max_messages, VALUE_COUNT, 0, 1u << 24),
        [L_RETAINED_MAX_BYTES] = LIMIT(retained_max_bytes, VALUE_SIZE, 0, TiB),
        [L_HELLO_TIMEOUT] = { "hello_timeout", VALUE_DURATION,
                              offsetof(ConfigLimits, hello_timeout_ms), sizeof(uint64_t), 1,
                              3600 * 1000 },
        [L_SHUTDOWN_TIMEOUT] = { "shutdown_timeout", VALUE_DURATION,
                                 offsetof(ConfigLimits, shutdown_timeout_ms), sizeof(uint64_t), 0,
                                 3600 * 1000 },
};

static uint64_t limit_get(const ConfigLimits *l, size_t i) {
        const char *p = (const char *)l + limit_keys[i].offset;
        if (limit_keys[i].width == sizeof(uint32_t))
                return *(const uint32_t *)(const void *)p;
        return *(const uint64_t *)(const void *)p;
}

static void limit_set(ConfigLimits *l, size_t i, uint64_t v) {
        char *p = (char *)l + limit_keys[i].offset;
        if (limit_keys[i].width == sizeof(uint32_t))
                *(uint32_t *)(void *)p = (uint32_t)v;
        else
                *(uint64_t *)(void *)p = v;
}

static const struct {
        const char *name;
        int level;
} log_levels[] = {
        { "error", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
        { "info", LOG_INFO },   { "debug", LOG_DEBUG },
};

const char *config_log_level_name(int level) {
        if (level <= LOG_ERR)
                return "error";
        for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
                if (log_levels[i].level == level)
                        return log_levels[i].name;
        return "debug";
}

static const char *const log_target_names[_LOG_TARGET_MAX] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_STDERR] = "stderr",
        [LOG_TARGET_JOURNAL] = "journal",
};

/* ------------------------------------------------------------------------ */
/* Construction and destruction                                              */

static void strv_free(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void access_rule_done(ConfigAccessRule *a) {
        strv_free(a->user_names, a->n_users);
        free(a->uids);
        free(a->user_marks);
        strv_free(a->group_names, a->n_groups);
        free(a->gids);
        free(a->group_marks);
        strv_free(a->publish, a->n_publish);
        strv_free(a->subscribe, a->n_subscribe);
        strv_free(a->request, a->n_request);
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        for (size_t i = 0; i < c->n_listen; i++) {
                free(c->listen[i].path);
                free(c->listen[i].group_name);
        }
        free(c->listen);
        for (size_t i = 0; i < c->n_topics; i++) {
                free(c->topics[i].pattern);
                free(c->topics[i].types);
        }
        free(c->topics);
        for (size_t i = 0; i < c->n_access; i++)
                access_rule_done(&c->access[i]);
        free(c->access);
        free(c);
        return NULL;
}

DEFINE_CLEANUP(Config *, config_free);

int config_new_default(Config **ret) {
        Config *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->limits = default_limits;
        c->log_level = LOG_NOTICE;
        c->log_target = LOG_TARGET_AUTO;
        c->stats_interval_s = 0;
        *ret = c;
        return 0;
}

const ConfigTopicRule *config_topic_rule(const Config *c, const char *topic, size_t len) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_topics; i++) {
                const ConfigTopicRule *t = &c->topics[i];
                if (topic_filter_match(t->pattern, strlen(t->pattern), topic, len))
                        return t;
        }
        return NULL;
}

/* @arr (@n elements of @size bytes) grown by one zeroed element, or NULL on
 * ENOMEM (then @arr is unchanged). */
static void *array_grow(void *arr, size_t n, size_t size) {
        char *p = reallocarray(arr, n + 1, size);
        if (p)
                memset(p + n * size, 0, size);
        return p;
}

/* Appends a zeroed element to array @arr of @n elements (both lvalues);
 * evaluates to a pointer to it, or NULL on ENOMEM (nothing changed). */
#define ARRAY_APPEND(arr, n)                                                   \
        ({                                                                     \
                __typeof__(arr) _a = array_grow((arr), (n), sizeof(*(arr)));   \
                _a ? ((arr) = _a, &_a[(n)++]) : NULL;                          \
        })

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Writes @s (@len bytes, UTF-8) into @buf for an error message: control
 * bytes, quotes and backslashes escaped, cut (at a character boundary) after
 * about 60 bytes. */
static const char *quote(const char *s, size_t len, char *buf, size_t size) {
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (o + 8 >= size || (o >= 60 && (ch & 0xc0) != 0x80)) {
                        memcpy(buf + o, "...", 4);
                        return buf;
                }
                if (ch < 0x20 || ch == 0x7f || ch == '\'' || ch == '\\')
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
                else
                        buf[o++] = (char)ch;
        }
        buf[o] = 0;
        return buf;
}

/* "16MiB" for a whole number of binary units, else the number of bytes. */
static const char *format_size(uint64_t v, char buf[static 32]) {
        if (v >= GiB && v % GiB == 0)
                snprintf(buf, 32, "%" PRIu64 "GiB", v / GiB);
        else if (v >= MiB && v % MiB == 0)
                snprintf(buf, 32, "%" PRIu64 "MiB", v / MiB);
        else if (v >= KiB && v % KiB == 0)
                snprintf(buf, 32, "%" PRIu64 "KiB", v / KiB);
        else
                snprintf(buf, 32, "%" PRIu64, v);
        return buf;
}

static const char *format_duration(uint64_t ms, char buf[static 32]) {
        if (ms >= 3600000 && ms % 3600000 == 0)
                snprintf(buf, 32, "%" PRIu64 "h", ms / 3600000);
        else if (ms >= 60000 && ms % 60000 == 0)
                snprintf(buf, 32, "%" PRIu64 "m", ms / 60000);
        else if (ms >= 1000 && ms % 1000 == 0)
                snprintf(buf, 32, "%" PRIu64 "s", ms / 1000);
        else
                snprintf(buf, 32, "%" PRIu64 "ms", ms);
        return buf;
}

static const char *format_value(ValueKind kind, uint64_t v, char buf[static 32]) {
        switch (kind) {
        case VALUE_SIZE:
                return format_size(v, buf);
        case VALUE_DURATION:
                return format_duration(v, buf);
        default:
                snprintf(buf, 32, "%" PRIu64, v);
                return buf;
        }
}

/* "NAME:LINE:COLUMN: " (or "NAME: " without a position) + @fmt, malloc'd. */
static char *format_error(const char *name, ConfigMark m, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static char *format_error(const char *name, ConfigMark m, const char *fmt, va_list ap) {
        char *head = NULL, *body = NULL, *msg = NULL;
        int r;

        if (m.line > 0)
                r = asprintf(&head, "%s:%" PRIu32 ":%" PRIu32 ": ", name, m.line, m.column);
        else
                r = asprintf(&head, "%s: ", name);
        if (r < 0)
                return NULL;
        if (vasprintf(&body, fmt, ap) < 0) {
                free(head);
                return NULL;
        }
        if (asprintf(&msg, "%s%s", head, body) < 0)
                msg = NULL;
        free(head);
        free(body);
        return msg;
}

static char *make_error(const char *name, ConfigMark m, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static char *make_error(const char *name, ConfigMark m, const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        s = format_error(name, m, fmt, ap);
        va_end(ap);
        return s;
}

/* ------------------------------------------------------------------------ */
/* The parser                                                                */

typedef struct TopicMarks {
        ConfigMark max_payload, max_fds;
} TopicMarks;

typedef struct Parser {
        yaml_parser_t yaml;
        yaml_event_t ev; /* the current event, valid while have_ev */
        bool have_ev;
        const char *name;
        const unsigned char *buf;
        size_t len;
        Config *c;
        char *error;
        int r;
        char key[256]; /* where we are: "topics[2].pattern" */
        size_t key_len;
        ConfigMark limit_marks[_L_MAX];
        TopicMarks *topic_marks; /* one per topic rule */
        size_t n_topic_marks;
} Parser;

static ConfigMark mark_of(const yaml_mark_t *m) {
        return (ConfigMark){
                .line = m->line >= UINT32_MAX ? UINT32_MAX : (uint32_t)m->line + 1,
                .column = m->column >= UINT32_MAX ? UINT32_MAX : (uint32_t)m->column + 1,
        };
}

static ConfigMark here(const Parser *p) {
        return mark_of(&p->ev.start_mark);
}

/* Records the first error (a message at @m naming the current key) and
 * returns -EINVAL. */
static int fail_at(Parser *p, ConfigMark m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(Parser *p, ConfigMark m, const char *fmt, ...) {
        char *body = NULL;
        va_list ap;

        if (p->r < 0)
                return p->r;
        p->r = -EINVAL;
        va_start(ap, fmt);
        if (vasprintf(&body, fmt, ap) < 0)
                body = NULL;
        va_end(ap);
        if (!body)
                return p->r;
        if (p->key_len > 0)
                p->error = make_error(p->name, m, "%s: %s", p->key, body);
        else
                p->error = make_error(p->name, m, "%s", body);
        free(body);
        return p->r;
}

#define fail(p, ...) fail_at((p), here(p), __VA_ARGS__)

static int fail_oom(Parser *p) {
        if (p->r < 0)
                return p->r;
        p->r = -ENOMEM;
        p->error = make_error(p->name, (ConfigMark){ 0 }, "out of memory");
        return p->r;
}

/* Appends ".NAME" (or NAME at the top) or "[INDEX]" to the key path;
 * returns the previous length for key_pop(). A long path is cut. */
static size_t key_push_name(Parser *p, const char *name, size_t len) {
        size_t old = p->key_len;
        char q[128];
        int n = snprintf(p->key + old, sizeof(p->key) - old, "%s%s", old ? "." : "",
                         len ? quote(name, len, q, sizeof(q)) : "\"\"");
        if (n > 0)
                p->key_len = old + (size_t)n >= sizeof(p->key) ? sizeof(p->key) - 1 : old + (size_t)n;
        return old;
}

static size_t key_push_index(Parser *p, size_t i) {
        size_t old = p->key_len;
        int n = snprintf(p->key + old, sizeof(p->key) - old, "[%zu]", i);
        if (n > 0)
                p->key_len = old + (size_t)n >= sizeof(p->key) ? sizeof(p->key) - 1 : old + (size_t)n;
        return old;
}

static void key_pop(Parser *p, size_t old) {
        p->key_len = old;
        p->key[old] = 0;
}

/* Line and column of byte @offset of the input (for reader errors, which
 * libyaml reports as an offset). */
static ConfigMark mark_of_offset(const Parser *p, size_t offset) {
        ConfigMark m = { .line = 1, .column = 1 };
        if (offset > p->len)
                offset = p->len;
        for (size_t i = 0; i < offset; i++) {
                if (p->buf[i] == '\n') {
                        m.line++;
                        m.column = 1;
                } else if ((p->buf[i] & 0xc0) != 0x80)
                        m.column++;
        }
        return m;
}

static int syntax_error(Parser *p) {
        const yaml_parser_t *y = &p->yaml;
        const char *problem = y->problem ? y->problem : "invalid YAML";
        size_t saved = p->key_len;
        int r;

        if (y->error == YAML_MEMORY_ERROR)
                return fail_oom(p);
        /* A syntax error is about the text, not about a key. */
        p->key_len = 0;
        if (y->error == YAML_READER_ERROR) {
                if (y->problem_value >= 0)
                        r = fail_at(p, mark_of_offset(p, y->problem_offset),
                                    "invalid input: %s (byte 0x%02x)", problem,
                                    (unsigned)y->problem_value & 0xffu);
                else
                        r = fail_at(p, mark_of_offset(p, y->problem_offset), "invalid input: %s",
                                    problem);
        } else if (y->context)
                r = fail_at(p, mark_of(&y->problem_mark), "syntax error: %s (%s at line %zu)",
                            problem, y->context, y->context_mark.line + 1);
        else
                r = fail_at(p, mark_of(&y->problem_mark), "syntax error: %s", problem);
        p->key_len = saved;
        return r;
}

static bool ev_is_null(const yaml_event_t *e) {
        const char *v;
        if (e->type != YAML_SCALAR_EVENT || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        v = (const char *)e->data.scalar.value;
        return e->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
               strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static const char *ev_what(const yaml_event_t *e) {
        switch (e->type) {
        case YAML_MAPPING_START_EVENT:
                return "a mapping";
        case YAML_SEQUENCE_START_EVENT:
                return "a list";
        case YAML_SCALAR_EVENT:
                return ev_is_null(e) ? "nothing" : "a single value";
        default:
                return "something else";
        }
}

/* Moves to the next event; refuses aliases, anchors and tags. */
static int next(Parser *p) {
        const yaml_char_t *anchor = NULL, *tag = NULL;

        if (p->have_ev) {
                yaml_event_delete(&p->ev);
                p->have_ev = false;
        }
        if (!yaml_parser_parse(&p->yaml, &p->ev))
                return syntax_error(p);
        p->have_ev = true;

        switch (p->ev.type) {
        case YAML_ALIAS_EVENT:
                return fail(p, "aliases (*name) are not supported");
        case YAML_SCALAR_EVENT:
                anchor = p->ev.data.scalar.anchor;
                tag = p->ev.data.scalar.tag;
                if (memchr(p->ev.data.scalar.value, 0, p->ev.data.scalar.length))
                        return fail(p, "a value must not contain a NUL character");
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = p->ev.data.sequence_start.anchor;
                tag = p->ev.data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = p->ev.data.mapping_start.anchor;
                tag = p->ev.data.mapping_start.tag;
                break;
        default:
                break;
        }
        if (anchor)
                return fail(p, "anchors (&name) are not supported");
        if (tag)
                return fail(p, "tags (!tag) are not supported");
        return 0;
}

/* The current event as a string: a non-null scalar, else an error naming
 * what was found instead of @what. */
static int scalar(Parser *p, const char *what, const char **ret, size_t *ret_len) {
        if (p->ev.type != YAML_SCALAR_EVENT || ev_is_null(&p->ev))
                return fail(p, "expected %s, found %s", what, ev_what(&p->ev));
        *ret = (const char *)p->ev.data.scalar.value;
        *ret_len = p->ev.data.scalar.length;
        return 0;
}

/* 1 when the current event starts a mapping, 0 when it is null (an empty
 * section: "limits:" with everything commented out), else an error. */
static int want_mapping(Parser *p) {
        if (p->ev.type == YAML_MAPPING_START_EVENT)
                return 1;
        if (ev_is_null(&p->ev))
                return 0;
        return fail(p, "expected a mapping (key: value lines), found %s", ev_what(&p->ev));
}

static int want_sequence(Parser *p) {
        if (p->ev.type == YAML_SEQUENCE_START_EVENT)
                return 1;
        if (ev_is_null(&p->ev))
                return 0;
        return fail(p, "expected a list, found %s", ev_what(&p->ev));
}

typedef int (*KeyHandler)(Parser *p, void *obj, size_t key);
typedef int (*ItemHandler)(Parser *p, void *obj, size_t index);

/* Walks the mapping the current event starts (or nothing, for a null), with
 * the keys @keys: every value is handed to @handler with the key's index.
 * Unknown and repeated keys are errors. */
static int walk_mapping(Parser *p, const char *const *keys, size_t n_keys, KeyHandler handler,
                        void *obj) {
        ConfigMark seen[32] = {};
        int r;

        if (n_keys > ARRAY_SIZE(seen))
                return -EINVAL; /* a bug in a schema table */
        r = want_mapping(p);
        if (r <= 0)
                return r;
        for (;;) {
                const char *k;
                size_t klen, i, old;
                ConfigMark m;

                r = next(p);
                if (r < 0)
                        return r;
                if (p->ev.type == YAML_MAPPING_END_EVENT)
                        return 0;
                if (p->ev.type != YAML_SCALAR_EVENT)
                        return fail(p, "expected a key name, found %s", ev_what(&p->ev));
                k = (const char *)p->ev.data.scalar.value;
                klen = p->ev.data.scalar.length;
                m = here(p);
                for (i = 0; i < n_keys; i++)
                        if (strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0)
                                break;
                old = key_push_name(p, k, klen);
                if (i == n_keys) {
                        char expected[512] = "";
                        size_t o = 0;
                        for (size_t j = 0; j < n_keys && o < sizeof(expected); j++)
                                o += (size_t)snprintf(expected + o, sizeof(expected) - o, "%s%s",
                                                      j ? ", " : "", keys[j]);
                        return fail_at(p, m, "unknown key (expected one of: %s)", expected);
                }
                if (seen[i].line > 0)
                        return fail_at(p, m, "duplicate key (first at line %" PRIu32 ")",
                                       seen[i].line);
                seen[i] = m;
                r = next(p);
                if (r < 0)
                        return r;
                r = handler(p, obj, i);
                if (r < 0)
                        return r;
                key_pop(p, old);
        }
}

/* Walks the list the current event starts (or nothing, for a null), handing
 * each item's first event to @handler. At most CONFIG_LIST_MAX items. */
static int walk_sequence(Parser *p, ItemHandler handler, void *obj) {
        int r = want_sequence(p);
        if (r <= 0)
                return r;
        for (size_t i = 0;; i++) {
                size_t old;
                r = next(p);
                if (r < 0)
                        return r;
                if (p->ev.type == YAML_SEQUENCE_END_EVENT)
                        return 0;
                if (i >= CONFIG_LIST_MAX)
                        return fail(p, "too many entries (at most %u)", CONFIG_LIST_MAX);
                old = key_push_index(p, i);
                r = handler(p, obj, i);
                if (r < 0)
                        return r;
                key_pop(p, old);
        }
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

/* Parses the leading decimal digits of @s into *ret; returns how many there
 * were (0: none), or -ERANGE on overflow. */
static int digits(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;
        size_t i;
        for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                unsigned d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return (int)(i > INT32_MAX ? INT32_MAX : i);
}

typedef struct Unit {
        const char *suffix;
        uint64_t factor;
} Unit;

static const Unit size_units[] = {
        { "", 1 },        { "B", 1 },         { "K", KiB }, { "KiB", KiB },
        { "M", MiB },     { "MiB", MiB },     { "G", GiB }, { "GiB", GiB },
};

static const Unit duration_units[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
};

/*
 * Parses a number written as digits, optional spaces and one of @units'
 * suffixes. 0, -EINVAL (not such a number), -ERANGE (does not fit 64 bits).
 */
static int parse_with_units(const char *s, size_t len, const Unit *units, size_t n_units,
                            uint64_t *ret) {
        uint64_t v;
        size_t i;
        int n = digits(s, len, &v);

        if (n < 0)
                return n;
        if (n == 0)
                return -EINVAL;
        i = (size_t)n;
        while (i < len && s[i] == ' ')
                i++;
        for (size_t u = 0; u < n_units; u++) {
                size_t sl = strlen(units[u].suffix);
                if (len - i != sl || memcmp(s + i, units[u].suffix, sl) != 0)
                        continue;
                if (sl == 0 && i != (size_t)n)
                        return -EINVAL; /* trailing spaces */
                if (v > UINT64_MAX / units[u].factor)
                        return -ERANGE;
                *ret = v * units[u].factor;
                return 0;
        }
        return -EINVAL;
}

/* Reads the current value as @kind within [@min, @max]. */
static int read_number(Parser *p, ValueKind kind, uint64_t min, uint64_t max, uint64_t *ret) {
        static const char *const expect[] = {
                [VALUE_COUNT] = "a whole number",
                [VALUE_SIZE] = "a size (bytes, or a number with B, K, KiB, M, MiB, G or GiB)",
                [VALUE_DURATION] = "a duration (milliseconds, or a number with ms, s, m or h)",
        };
        char q[128], a[32], b[32];
        const char *s;
        size_t len;
        uint64_t v;
        int r;

        r = scalar(p, expect[kind], &s, &len);
        if (r < 0)
                return r;
        if (len > 0 && s[0] == '-')
                return fail(p, "'%s' must not be negative", quote(s, len, q, sizeof(q)));
        switch (kind) {
        case VALUE_SIZE:
                r = parse_with_units(s, len, size_units, ARRAY_SIZE(size_units), &v);
                break;
        case VALUE_DURATION:
                r = parse_with_units(s, len, duration_units, ARRAY_SIZE(duration_units), &v);
                break;
        default:
                r = parse_with_units(s, len, size_units, 1, &v);
                break;
        }
        if (r == -EINVAL)
                return fail(p, "'%s' is not %s", quote(s, len, q, sizeof(q)), expect[kind]);
        if (r < 0 || v < min || v > max)
                return fail(p, "'%s' is out of range (%s to %s)", quote(s, len, q, sizeof(q)),
                            format_value(kind, min, a), format_value(kind, max, b));
        *ret = v;
        return 0;
}

static int read_bool(Parser *p, bool *ret) {
        char q[128];
        const char *s;
        size_t len;
        int r = scalar(p, "true or false", &s, &len);
        if (r < 0)
                return r;
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
                *ret = true;
        else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
                *ret = false;
        else
                return fail(p, "'%s' is not true or false", quote(s, len, q, sizeof(q)));
        return 0;
}

/* A copy of the current scalar, non-empty. */
static int read_string(Parser *p, const char *what, char **ret) {
        const char *s;
        size_t len;
        char *d;
        int r = scalar(p, what, &s, &len);
        if (r < 0)
                return r;
        if (len == 0)
                return fail(p, "expected %s, found an empty string", what);
        d = strndup(s, len);
        if (!d)
                return fail_oom(p);
        *ret = d;
        return 0;
}

/* A numeric user or group id: decimal digits only, below (uint32_t)-1
 * (which means "no id" to the kernel). */
static bool parse_id(const char *s, uint32_t *ret) {
        uint64_t v;
        size_t len = strlen(s);
        int n = digits(s, len, &v);
        if (n <= 0 || (size_t)n != len || v >= UINT32_MAX)
                return false;
        *ret = (uint32_t)v;
        return true;
}

/* A user or group name as written: an id, or a name of printable characters
 * (what the user database may hold is its business; this only keeps
 * garbage out of lookups and messages). */
static int read_principal(Parser *p, bool user, char **ret) {
        char q[128];
        char *s = NULL;
        uint32_t id;
        int r = read_string(p, user ? "a user name or id" : "a group name or id", &s);
        if (r < 0)
                return r;
        if (!utf8_printable(s, strlen(s)) || strpbrk(s, " :/,")) {
                r = fail(p, "'%s' is not a valid %s name", quote(s, strlen(s), q, sizeof(q)),
                         user ? "user" : "group");
                free(s);
                return r;
        }
        if (strspn(s, "0123456789") == strlen(s) && !parse_id(s, &id)) {
                r = fail(p, "'%s' is out of range for a numeric id", quote(s, strlen(s), q, sizeof(q)));
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

/* A topic filter, checked by the broker's own rules. */
static int read_filter(Parser *p, char **ret) {
        char q[128];
        const char *s;
        size_t len;
        TopicCheck tc;
        char *d;
        int r = scalar(p, "a topic filter", &s, &len);
        if (r < 0)
                return r;
        tc = topic_filter_check(s, len, CONFIG_MAX_TOPIC_LENGTH_LIMIT);
        if (tc != TOPIC_OK)
                return fail(p, "'%s' is not a valid topic filter: %s", quote(s, len, q, sizeof(q)),
                            topic_check_str(tc));
        d = strndup(s, len);
        if (!d)
                return fail_oom(p);
        *ret = d;
        return 0;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

static int limits_key(Parser *p, void *obj, size_t key) {
        ConfigLimits *l = obj;
        const LimitKey *k = &limit_keys[key];
        uint64_t v;
        int r = read_number(p, k->kind, k->min, k->max, &v);
        if (r < 0)
                return r;
        limit_set(l, key, v);
        p->limit_marks[key] = here(p);
        return 0;
}

static int parse_limits(Parser *p) {
        const char *keys[_L_MAX];
        for (size_t i = 0; i < _L_MAX; i++)
                keys[i] = limit_keys[i].name;
        return walk_mapping(p, keys, _L_MAX, limits_key, &p->c->limits);
}

enum { LISTEN_PATH, LISTEN_MODE, LISTEN_GROUP, _LISTEN_MAX };
static const char *const listen_keys[_LISTEN_MAX] = { "path", "mode", "group" };

static int read_mode(Parser *p, mode_t *ret) {
        char q[128];
        const char *s;
        size_t len, i = 0;
        unsigned v = 0;
        int r = scalar(p, "an octal mode like \"0660\"", &s, &len);
        if (r < 0)
                return r;
        if (len > 2 && s[0] == '0' && s[1] == 'o')
                i = 2;
        if (i == len)
                return fail(p, "'%s' is not an octal mode like \"0660\"", quote(s, len, q, sizeof(q)));
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '7')
                        return fail(p, "'%s' is not an octal mode like \"0660\"",
                                    quote(s, len, q, sizeof(q)));
                v = v * 8 + (unsigned)(s[i] - '0');
                if (v > 0777)
                        return fail(p, "'%s' is out of range (0 to 0777)", quote(s, len, q, sizeof(q)));
        }
        *ret = (mode_t)v;
        return 0;
}

static int listen_key(Parser *p, void *obj, size_t key) {
        ConfigListen *l = obj;
        char q[128];
        int r;

        switch (key) {
        case LISTEN_PATH:
                r = read_string(p, "a socket path", &l->path);
                if (r < 0)
                        return r;
                if (l->path[0] != '/')
                        return fail(p, "'%s' is not an absolute path",
                                    quote(l->path, strlen(l->path), q, sizeof(q)));
                if (!utf8_printable(l->path, strlen(l->path)))
                        return fail(p, "'%s' contains control characters",
                                    quote(l->path, strlen(l->path), q, sizeof(q)));
                if (strlen(l->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                        return fail(p, "the path is longer than a socket path can be (%zu bytes)",
                                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
                for (size_t i = 0; i + 1 < p->c->n_listen; i++)
                        if (p->c->listen[i].path && strcmp(p->c->listen[i].path, l->path) == 0)
                                return fail(p, "'%s' is already listen[%zu]",
                                            quote(l->path, strlen(l->path), q, sizeof(q)), i);
                return 0;
        case LISTEN_MODE:
                return read_mode(p, &l->mode);
        case LISTEN_GROUP:
                r = read_principal(p, false, &l->group_name);
                if (r < 0)
                        return r;
                l->has_group = true;
                l->group_mark = here(p);
                return 0;
        }
        return 0;
}

static int listen_item(Parser *p, void *obj, size_t index) {
        ConfigListen *l;
        ConfigMark m = here(p);
        int r;

        l = ARRAY_APPEND(p->c->listen, p->c->n_listen);
        if (!l)
                return fail_oom(p);
        l->mode = 0666;
        if (p->ev.type != YAML_MAPPING_START_EVENT)
                return fail(p, "expected a mapping with path (and mode, group), found %s",
                            ev_what(&p->ev));
        r = walk_mapping(p, listen_keys, _LISTEN_MAX, listen_key, l);
        if (r < 0)
                return r;
        if (!l->path)
                return fail_at(p, m, "path is required");
        return 0;
}

enum { TOPIC_PATTERN, TOPIC_TYPES, TOPIC_RETAIN, TOPIC_OVERFLOW, TOPIC_MAX_PAYLOAD, TOPIC_MAX_FDS,
       _TOPIC_KEY_MAX };
static const char *const topic_keys[_TOPIC_KEY_MAX] = {
        "pattern", "types", "retain", "overflow", "max_payload", "max_fds",
};

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static int type_item(Parser *p, void *obj, size_t index) {
        ConfigTopicRule *t = obj;
        uint32_t *slot;
        uint64_t v;
        int r = read_number(p, VALUE_COUNT, 0, UINT32_MAX, &v);
        if (r < 0)
                return r;
        slot = ARRAY_APPEND(t->types, t->n_types);
        if (!slot)
                return fail_oom(p);
        *slot = (uint32_t)v;
        return 0;
}

static int topic_key(Parser *p, void *obj, size_t key) {
        ConfigTopicRule *t = obj;
        TopicMarks *tm = &p->topic_marks[p->n_topic_marks - 1];
        char q[128];
        const char *s;
        size_t len, n;
        uint64_t v;
        int r;

        switch (key) {
        case TOPIC_PATTERN:
                r = read_filter(p, &t->pattern);
                if (r < 0)
                        return r;
                for (size_t i = 0; i + 1 < p->c->n_topics; i++)
                        if (p->c->topics[i].pattern && strcmp(p->c->topics[i].pattern, t->pattern) == 0)
                                return fail(p, "'%s' is already the pattern of topics[%zu], which matches first",
                                            quote(t->pattern, strlen(t->pattern), q, sizeof(q)), i);
                return 0;
        case TOPIC_TYPES: {
                ConfigMark m = here(p);
                if (p->ev.type != YAML_SEQUENCE_START_EVENT)
                        return fail(p, "expected a list of message types, found %s", ev_what(&p->ev));
                r = walk_sequence(p, type_item, t);
                if (r < 0)
                        return r;
                if (t->n_types == 0)
                        return fail_at(p, m, "an empty list allows no type at all; leave types out to allow every type");
                qsort(t->types, t->n_types, sizeof(*t->types), cmp_u32);
                n = 1;
                for (size_t i = 1; i < t->n_types; i++)
                        if (t->types[i] != t->types[n - 1])
                                t->types[n++] = t->types[i];
                t->n_types = n;
                return 0;
        }
        case TOPIC_RETAIN:
                return read_bool(p, &t->retain);
        case TOPIC_OVERFLOW:
                r = scalar(p, "an overflow policy", &s, &len);
                if (r < 0)
                        return r;
                r = overflow_policy_from_name(s);
                if (r < 0)
                        return fail(p, "'%s' is not an overflow policy (drop-new, drop-old, disconnect, block)",
                                    quote(s, len, q, sizeof(q)));
                t->overflow = (OverflowPolicy)r;
                return 0;
        case TOPIC_MAX_PAYLOAD:
                r = read_number(p, VALUE_SIZE, 1, CONFIG_MAX_PAYLOAD_LIMIT, &v);
                if (r < 0)
                        return r;
                t->max_payload = (uint32_t)v;
                tm->max_payload = here(p);
                return 0;
        case TOPIC_MAX_FDS:
                r = read_number(p, VALUE_COUNT, 0, CONFIG_MAX_FDS_PER_MESSAGE_LIMIT, &v);
                if (r < 0)
                        return r;
                t->max_fds = (int32_t)v;
                tm->max_fds = here(p);
                return 0;
        }
        return 0;
}

static int topic_item(Parser *p, void *obj, size_t index) {
        ConfigTopicRule *t;
        TopicMarks *tm;
        ConfigMark m = here(p);
        int r;

        t = ARRAY_APPEND(p->c->topics, p->c->n_topics);
        if (!t)
                return fail_oom(p);
        t->retain = true;
        t->overflow = OVERFLOW_DROP_NEW;
        t->max_payload = 0;
        t->max_fds = -1;
        tm = ARRAY_APPEND(p->topic_marks, p->n_topic_marks);
        if (!tm)
                return fail_oom(p);
        if (p->ev.type != YAML_MAPPING_START_EVENT)
                return fail(p, "expected a mapping with pattern (and types, retain, overflow, "
                               "max_payload, max_fds), found %s",
                            ev_what(&p->ev));
        r = walk_mapping(p, topic_keys, _TOPIC_KEY_MAX, topic_key, t);
        if (r < 0)
                return r;
        if (!t->pattern)
                return fail_at(p, m, "pattern is required");
        return 0;
}

enum { ACCESS_USERS, ACCESS_GROUPS, ACCESS_PUBLISH, ACCESS_SUBSCRIBE, ACCESS_REQUEST, ACCESS_ADMIN,
       _ACCESS_KEY_MAX };
static const char *const access_keys[_ACCESS_KEY_MAX] = {
        "users", "groups", "publish", "subscribe", "request", "admin",
};

/* A list being filled: its strings and (for users and groups) marks. */
typedef struct StrList {
        ConfigAccessRule *rule;
        char ***v;
        size_t *n;
        ConfigMark **marks;
        bool users;
} StrList;

static int strlist_append(Parser *p, StrList *l, char *s) {
        char **slot;
        size_t n = *l->n;
        if (l->marks) {
                ConfigMark *m = reallocarray(*l->marks, n + 1, sizeof(**l->marks));
                if (!m) {
                        free(s);
                        return fail_oom(p);
                }
                *l->marks = m;
                m[n] = here(p);
        }
        slot = ARRAY_APPEND(*l->v, *l->n);
        if (!slot) {
                free(s);
                return fail_oom(p);
        }
        *slot = s;
        return 0;
}

static int principal_item(Parser *p, void *obj, size_t index) {
        StrList *l = obj;
        char *s = NULL;
        int r = read_principal(p, l->users, &s);
        if (r < 0)
                return r;
        if (strcmp(s, "*") == 0) {
                free(s);
                if (!l->users)
                        return fail(p, "'*' is for users only (users: [\"*\"] means everyone)");
                l->rule->all_users = true;
                return 0;
        }
        return strlist_append(p, l, s);
}

static int filter_item(Parser *p, void *obj, size_t index) {
        char *s = NULL;
        int r = read_filter(p, &s);
        if (r < 0)
                return r;
        return strlist_append(p, obj, s);
}

static int access_key(Parser *p, void *obj, size_t key) {
        ConfigAccessRule *a = obj;
        StrList l = { .rule = a };

        switch (key) {
        case ACCESS_USERS:
                l = (StrList){ a, &a->user_names, &a->n_users, &a->user_marks, true };
                break;
        case ACCESS_GROUPS:
                l = (StrList){ a, &a->group_names, &a->n_groups, &a->group_marks, false };
                break;
        case ACCESS_PUBLISH:
                l.v = &a->publish;
                l.n = &a->n_publish;
                break;
        case ACCESS_SUBSCRIBE:
                l.v = &a->subscribe;
                l.n = &a->n_subscribe;
                break;
        case ACCESS_REQUEST:
                l.v = &a->request;
                l.n = &a->n_request;
                break;
        case ACCESS_ADMIN:
                return read_bool(p, &a->admin);
        }
        if (p->ev.type != YAML_SEQUENCE_START_EVENT)
                return fail(p, "expected a list, found %s", ev_what(&p->ev));
        return walk_sequence(p, key <= ACCESS_GROUPS ? principal_item : filter_item, &l);
}

static int access_item(Parser *p, void *obj, size_t index) {
        ConfigAccessRule *a;
        ConfigMark m = here(p);
        int r;

        a = ARRAY_APPEND(p->c->access, p->c->n_access);
        if (!a)
                return fail_oom(p);
        if (p->ev.type != YAML_MAPPING_START_EVENT)
                return fail(p, "expected a mapping with users or groups and what they may do, found %s",
                            ev_what(&p->ev));
        r = walk_mapping(p, access_keys, _ACCESS_KEY_MAX, access_key, a);
        if (r < 0)
                return r;
        /* The id arrays are filled by config_resolve_ids(). */
        if (a->n_users > 0) {
                a->uids = calloc(a->n_users, sizeof(*a->uids));
                if (!a->uids)
                        return fail_oom(p);
        }
        if (a->n_groups > 0) {
                a->gids = calloc(a->n_groups, sizeof(*a->gids));
                if (!a->gids)
                        return fail_oom(p);
        }
        if (!a->all_users && a->n_users == 0 && a->n_groups == 0)
                return fail_at(p, m, "a rule needs users or groups to apply to");
        return 0;
}

enum { LOGGING_LEVEL, LOGGING_TARGET, _LOGGING_MAX };
static const char *const logging_keys[_LOGGING_MAX] = { "level", "target" };

static int logging_key(Parser *p, void *obj, size_t key) {
        char q[128];
        const char *s;
        size_t len;
        int r = scalar(p, key == LOGGING_LEVEL ? "a log level" : "a log target", &s, &len);
        if (r < 0)
                return r;
        if (key == LOGGING_LEVEL) {
                for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
                        if (strcmp(s, log_levels[i].name) == 0) {
                                p->c->log_level = log_levels[i].level;
                                return 0;
                        }
                return fail(p, "'%s' is not a log level (error, warning, notice, info, debug)",
                            quote(s, len, q, sizeof(q)));
        }
        for (size_t i = 0; i < _LOG_TARGET_MAX; i++)
                if (strcmp(s, log_target_names[i]) == 0) {
                        p->c->log_target = (ConfigLogTarget)i;
                        return 0;
                }
        return fail(p, "'%s' is not a log target (auto, stderr, journal)", quote(s, len, q, sizeof(q)));
}

enum { ROOT_LISTEN, ROOT_LIMITS, ROOT_TOPICS, ROOT_ACCESS, ROOT_LOGGING, ROOT_STATS_INTERVAL,
       _ROOT_MAX };
static const char *const root_keys[_ROOT_MAX] = {
        "listen", "limits", "topics", "access", "logging", "stats_interval",
};

static int root_key(Parser *p, void *obj, size_t key) {
        char q[128];
        uint64_t v;
        int r;

        switch (key) {
        case ROOT_LISTEN:
                return walk_sequence(p, listen_item, NULL);
        case ROOT_LIMITS:
                return parse_limits(p);
        case ROOT_TOPICS:
                return walk_sequence(p, topic_item, NULL);
        case ROOT_ACCESS:
                return walk_sequence(p, access_item, NULL);
        case ROOT_LOGGING:
                return walk_mapping(p, logging_keys, _LOGGING_MAX, logging_key, NULL);
        case ROOT_STATS_INTERVAL:
                r = read_number(p, VALUE_DURATION, 0, 24 * 3600 * 1000, &v);
                if (r < 0)
                        return r;
                if (v % 1000 != 0)
                        return fail(p, "'%s' is not a whole number of seconds",
                                    quote((const char *)p->ev.data.scalar.value,
                                          p->ev.data.scalar.length, q, sizeof(q)));
                p->c->stats_interval_s = (uint32_t)(v / 1000);
                return 0;
        }
        return 0;
}

/* ------------------------------------------------------------------------ */
/* Checks across keys, once everything is read                               */

/* Fails unless limit @a <= limit @b (or < with @strict). The error is at the
 * one of the two the file set last (a default cannot be wrong alone). */
static int check_limits_order(Parser *p, size_t a, size_t b, bool strict, const char *why) {
        const ConfigLimits *l = &p->c->limits;
        uint64_t va = limit_get(l, a), vb = limit_get(l, b);
        ConfigMark ma = p->limit_marks[a], mb = p->limit_marks[b];
        char x[32], y[32];
        bool at_a;

        if (strict ? va < vb : va <= vb)
                return 0;
        at_a = ma.line > mb.line || (ma.line == mb.line && ma.column >= mb.column);
        key_pop(p, 0);
        key_push_name(p, "limits", 6);
        if (at_a) {
                key_push_name(p, limit_keys[a].name, strlen(limit_keys[a].name));
                return fail_at(p, ma, "%s is %s limits.%s (%s): %s",
                               format_value(limit_keys[a].kind, va, x), strict ? "not below" : "above",
                               limit_keys[b].name, format_value(limit_keys[b].kind, vb, y), why);
        }
        key_push_name(p, limit_keys[b].name, strlen(limit_keys[b].name));
        return fail_at(p, mb, "%s is %s limits.%s (%s): %s", format_value(limit_keys[b].kind, vb, y),
                       strict ? "not above" : "below", limit_keys[a].name,
                       format_value(limit_keys[a].kind, va, x), why);
}

static int check_relations(Parser *p) {
        const ConfigLimits *l = &p->c->limits;
        char x[32], y[32];
        int r;

        r = check_limits_order(p, L_BULK_THRESHOLD, L_MAX_PAYLOAD, false,
                               "payloads up to the bulk threshold are sent inline");
        if (r < 0)
                return r;
        r = check_limits_order(p, L_BULK_THRESHOLD, L_MAX_BULK_SIZE, true,
                               "bulk payloads are those above the threshold");
        if (r < 0)
                return r;
        r = check_limits_order(p, L_MAX_PAYLOAD, L_QUEUE_BYTES, false,
                               "a message of the largest payload could never be queued");
        if (r < 0)
                return r;
        r = check_limits_order(p, L_MAX_PAYLOAD, L_USER_QUEUE_BYTES, false,
                               "a message of the largest payload could never be queued");
        if (r < 0)
                return r;
        r = check_limits_order(p, L_MAX_FDS_PER_MESSAGE, L_QUEUE_FDS, false,
                               "a message with the most fds could never be queued");
        if (r < 0)
                return r;
        r = check_limits_order(p, L_MAX_FDS_PER_MESSAGE, L_USER_FDS, false,
                               "a message with the most fds could never be queued");
        if (r < 0)
                return r;

        for (size_t i = 0; i < p->c->n_topics; i++) {
                const ConfigTopicRule *t = &p->c->topics[i];
                const TopicMarks *tm = &p->topic_marks[i];

                key_pop(p, 0);
                key_push_name(p, "topics", 6);
                key_push_index(p, i);
                if (t->max_payload > l->max_payload) {
                        key_push_name(p, "max_payload", 11);
                        return fail_at(p, tm->max_payload,
                                       "%s is above limits.max_payload (%s): a topic rule can only lower it",
                                       format_size(t->max_payload, x), format_size(l->max_payload, y));
                }
                if (t->max_fds > 0 && (uint32_t)t->max_fds > l->max_fds_per_message) {
                        key_push_name(p, "max_fds", 7);
                        return fail_at(p, tm->max_fds,
                                       "%" PRIi32 " is above limits.max_fds_per_message (%" PRIu32
                                       "): a topic rule can only lower it",
                                       t->max_fds, l->max_fds_per_message);
                }
        }
        key_pop(p, 0);
        return 0;
}

/* ------------------------------------------------------------------------ */
/* The document                                                              */

static int parse_document(Parser *p) {
        int r;

        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type != YAML_STREAM_START_EVENT)
                return fail(p, "not a YAML stream");
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type == YAML_STREAM_END_EVENT)
                return 0; /* empty, or only comments: the defaults */
        if (p->ev.type != YAML_DOCUMENT_START_EVENT)
                return fail(p, "not a YAML document");
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type != YAML_MAPPING_START_EVENT && !ev_is_null(&p->ev))
                return fail(p, "the file must be a mapping of sections (%s, %s, %s, %s, %s, %s), not %s",
                            root_keys[0], root_keys[1], root_keys[2], root_keys[3], root_keys[4],
                            root_keys[5], ev_what(&p->ev));
        r = walk_mapping(p, root_keys, _ROOT_MAX, root_key, NULL);
        if (r < 0)
                return r;
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type != YAML_DOCUMENT_END_EVENT)
                return fail(p, "unexpected content after the document");
        r = next(p);
        if (r < 0)
                return r;
        if (p->ev.type != YAML_STREAM_END_EVENT)
                return fail(p, "only one YAML document is allowed (found another)");
        return check_relations(p);
}

int config_load_string(const char *name, const void *buf, size_t len, Config **ret,
                       char **ret_error) {
        _cleanup_(config_freep) Config *c = NULL;
        Parser p = {
                .name = name,
                .buf = buf,
                .len = len,
        };
        int r;

        if (ret_error)
                *ret_error = NULL;
        r = config_new_default(&c);
        if (r < 0)
                goto oom;
        c->path = strdup(name);
        if (!c->path)
                goto oom;
        if (!yaml_parser_initialize(&p.yaml))
                goto oom;
        p.c = c;
        yaml_parser_set_input_string(&p.yaml, buf, len);

        r = parse_document(&p);

        if (p.have_ev)
                yaml_event_delete(&p.ev);
        yaml_parser_delete(&p.yaml);
        free(p.topic_marks);
        if (r < 0) {
                if (ret_error)
                        *ret_error = p.error;
                else
                        free(p.error);
                return r;
        }
        r = config_resolve_ids(c, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
oom:
        if (ret_error)
                *ret_error = make_error(name, (ConfigMark){ 0 }, "out of memory");
        return -ENOMEM;
}

int config_load(const char *path, Config **ret, char **ret_error) {
        _cleanup_(closep) int fd = -1;
        _cleanup_(freep) char *buf = NULL;
        size_t len = 0, cap = 0;
        struct stat st;
        int r;

        if (ret_error)
                *ret_error = NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        if (S_ISDIR(st.st_mode)) {
                r = -EISDIR;
                goto fail;
        }
        /* Read to the end (st_size may be 0 for pipes and /proc), refusing
         * anything longer than CONFIG_FILE_MAX. */
        for (;;) {
                ssize_t n;
                if (len == cap) {
                        size_t ncap = cap ? cap * 2 : 16384;
                        char *nbuf;
                        if (ncap > CONFIG_FILE_MAX + 1)
                                ncap = CONFIG_FILE_MAX + 1;
                        if (ncap == cap) {
                                if (ret_error)
                                        *ret_error = make_error(path, (ConfigMark){ 0 },
                                                                "cannot read: larger than 16 MiB");
                                return -EFBIG;
                        }
                        nbuf = realloc(buf, ncap);
                        if (!nbuf) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        buf = nbuf;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto fail;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        return config_load_string(path, buf ? buf : "", len, ret, ret_error);
fail:
        if (ret_error)
                *ret_error = make_error(path, (ConfigMark){ 0 }, "cannot open: %s", strerror(-r));
        return r;
}

/* ------------------------------------------------------------------------ */
/* Names to ids                                                              */

/* Looks up user (@user) or group name @name: 0 and *ret, -ENOENT when there
 * is no such name, another negative errno when the lookup failed. */
static int lookup_id(const char *name, bool user, uint32_t *ret) {
        _cleanup_(freep) char *buf = NULL;
        long hint = sysconf(user ? _SC_GETPW_R_SIZE_MAX : _SC_GETGR_R_SIZE_MAX);
        size_t size = hint > 0 && hint < (1 << 20) ? (size_t)hint : 4096;

        if (parse_id(name, ret))
                return 0;
        for (;;) {
                struct passwd pw, *pwr = NULL;
                struct group gr, *grr = NULL;
                char *nbuf;
                int e;

                nbuf = realloc(buf, size);
                if (!nbuf)
                        return -ENOMEM;
                buf = nbuf;
                if (user)
                        e = getpwnam_r(name, &pw, buf, size, &pwr);
                else
                        e = getgrnam_r(name, &gr, buf, size, &grr);
                if (e == ERANGE && size < (1u << 24)) {
                        size *= 2;
                        continue;
                }
                /* "Not found" may come back as 0 with no result or as one of
                 * these (getpwnam_r(3)). */
                if (e == 0 && !pwr && !grr)
                        return -ENOENT;
                if (e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
                        return -ENOENT;
                if (e != 0)
                        return -e;
                *ret = user ? (uint32_t)pwr->pw_uid : (uint32_t)grr->gr_gid;
                return 0;
        }
}

/* Resolves @name into *@slot, or sets *ret_error naming @key (at @m). */
static int resolve_one(const Config *c, const char *name, bool user, ConfigMark m, const char *key,
                       uint32_t *slot, char **ret_error) {
        const char *what = user ? "user" : "group";
        char q[128];
        int r = lookup_id(name, user, slot);

        if (r >= 0)
                return 0;
        if (ret_error) {
                const char *file = c->path ? c->path : "(built-in)";
                quote(name, strlen(name), q, sizeof(q));
                if (r == -ENOENT)
                        *ret_error = make_error(file, m, "%s: unknown %s '%s'", key, what, q);
                else
                        *ret_error = make_error(file, m, "%s: cannot look up %s '%s': %s", key, what,
                                                q, strerror(-r));
        }
        return r == -ENOENT ? -EINVAL : r;
}

int config_resolve_ids(Config *c, char **ret_error) {
        _cleanup_(freep) uint32_t *ids = NULL;
        char key[64];
        size_t n = 0, k = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        for (size_t i = 0; i < c->n_listen; i++)
                n += c->listen[i].has_group;
        for (size_t i = 0; i < c->n_access; i++)
                n += c->access[i].n_users + c->access[i].n_groups;
        if (n == 0)
                return 0;
        ids = calloc(n, sizeof(*ids));
        if (!ids)
                return -ENOMEM;

        /* First every lookup, then the stores: all or nothing. */
        for (size_t i = 0; i < c->n_listen; i++) {
                const ConfigListen *l = &c->listen[i];
                if (!l->has_group)
                        continue;
                snprintf(key, sizeof(key), "listen[%zu].group", i);
                r = resolve_one(c, l->group_name, false, l->group_mark, key, &ids[k++], ret_error);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_access; i++) {
                const ConfigAccessRule *a = &c->access[i];
                for (size_t j = 0; j < a->n_users; j++) {
                        snprintf(key, sizeof(key), "access[%zu].users[%zu]", i, j);
                        r = resolve_one(c, a->user_names[j], true,
                                        a->user_marks ? a->user_marks[j] : (ConfigMark){ 0 }, key,
                                        &ids[k++], ret_error);
                        if (r < 0)
                                return r;
                }
                for (size_t j = 0; j < a->n_groups; j++) {
                        snprintf(key, sizeof(key), "access[%zu].groups[%zu]", i, j);
                        r = resolve_one(c, a->group_names[j], false,
                                        a->group_marks ? a->group_marks[j] : (ConfigMark){ 0 }, key,
                                        &ids[k++], ret_error);
                        if (r < 0)
                                return r;
                }
        }

        k = 0;
        for (size_t i = 0; i < c->n_listen; i++)
                if (c->listen[i].has_group)
                        c->listen[i].gid = (gid_t)ids[k++];
        for (size_t i = 0; i < c->n_access; i++) {
                ConfigAccessRule *a = &c->access[i];
                for (size_t j = 0; j < a->n_users; j++)
                        a->uids[j] = (uid_t)ids[k++];
                for (size_t j = 0; j < a->n_groups; j++)
                        a->gids[j] = (gid_t)ids[k++];
        }
        return 0;
}
