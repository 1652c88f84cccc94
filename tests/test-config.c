/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the configuration file (daemon/conf.c): a table of bad
 * files, each written to its own mkdtemp directory and required to fail
 * with "FILE:LINE:COLUMN: KEY: " and a message saying why; the defaults;
 * every key of a full file; sizes, durations and modes; the installed
 * example (conf/ipcd.yaml), which must equal the defaults; name
 * resolution; and hostile input (every truncation of a good file, random
 * mutations and garbage, alias bombs, deep nesting, huge files).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "conf.h"
#include "util.h"

#ifndef TEST_SRCDIR
#define TEST_SRCDIR "."
#endif

/* Parameters are indices into static tables (a worker process may not map
 * the tables where the runner did). */
#define TABLE_PARAMS(suite, test, table)                                       \
        ParameterizedTestParameters(suite, test) {                             \
                static size_t idx[ARRAY_SIZE(table)];                          \
                for (size_t i = 0; i < ARRAY_SIZE(table); i++)                 \
                        idx[i] = i;                                            \
                return cr_make_param_array(size_t, idx, ARRAY_SIZE(table));    \
        }

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* A private directory with one file in it, removed by tmpfile_done(). */
typedef struct TmpFile {
        char dir[64];
        char path[128];
} TmpFile;

static void tmpfile_write(TmpFile *t, const void *data, size_t len) {
        int fd;
        snprintf(t->dir, sizeof(t->dir), "/tmp/ipcd-test-config.XXXXXX");
        cr_assert(not(zero(ptr, mkdtemp(t->dir))), "mkdtemp: %m");
        snprintf(t->path, sizeof(t->path), "%s/ipcd.yaml", t->dir);
        fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert(ge(int, fd, 0), "open: %m");
        cr_assert(eq(sz, (size_t)write(fd, data, len), len));
        close(fd);
}

static void tmpfile_done(TmpFile *t) {
        unlink(t->path);
        rmdir(t->dir);
}

/* Loads @text (from a real file) and asserts success. */
static Config *load_ok(const char *text) {
        TmpFile t;
        Config *c = NULL;
        char *err = NULL;
        int r;

        tmpfile_write(&t, text, strlen(text));
        r = config_load(t.path, &c, &err);
        tmpfile_done(&t);
        cr_assert(eq(int, r, 0), "config_load failed: %s\n--- file:\n%s", err ? err : "(no message)",
                  text);
        cr_assert(zero(ptr, err));
        cr_assert(not(zero(ptr, c)));
        return c;
}

static void assert_limits_eq(const ConfigLimits *a, const ConfigLimits *b) {
#define F(f) cr_assert(eq(u64, (uint64_t)a->f, (uint64_t)b->f), "limits." #f)
        F(max_connections);
        F(max_connections_per_user);
        F(max_subscriptions);
        F(queue_bytes);
        F(queue_messages);
        F(queue_fds);
        F(user_queue_bytes);
        F(user_fds);
        F(max_payload);
        F(max_topic_length);
        F(max_fds_per_message);
        F(max_bulk_size);
        F(bulk_threshold);
        F(max_pending_requests);
        F(request_timeout_ms);
        F(max_topics);
        F(retained_max_messages);
        F(retained_max_bytes);
        F(hello_timeout_ms);
        F(shutdown_timeout_ms);
#undef F
}

/* @c equals the built-in defaults (apart from where it came from). */
static void assert_defaults(const Config *c) {
        Config *d = NULL;
        cr_assert(eq(int, config_new_default(&d), 0));
        assert_limits_eq(&c->limits, &d->limits);
        cr_assert(eq(sz, c->n_listen, 0));
        cr_assert(eq(sz, c->n_topics, 0));
        cr_assert(eq(sz, c->n_access, 0));
        cr_assert(eq(int, c->log_level, LOG_NOTICE));
        cr_assert(eq(int, (int)c->log_target, (int)LOG_TARGET_AUTO));
        cr_assert(eq(u32, c->stats_interval_s, 0));
        config_free(d);
}

/* ------------------------------------------------------------------------ */

Test(defaults, values) {
        Config *c = NULL;
        cr_assert(eq(int, config_new_default(&c), 0));
        cr_assert(zero(ptr, c->path));
        cr_assert(eq(u32, c->limits.max_connections, 16384));
        cr_assert(eq(u32, c->limits.max_connections_per_user, 1024));
        cr_assert(eq(u32, c->limits.max_subscriptions, 1024));
        cr_assert(eq(u64, c->limits.queue_bytes, 8 * MiB));
        cr_assert(eq(u32, c->limits.queue_messages, 65536));
        cr_assert(eq(u32, c->limits.queue_fds, 256));
        cr_assert(eq(u64, c->limits.user_queue_bytes, 64 * MiB));
        cr_assert(eq(u32, c->limits.user_fds, 1024));
        cr_assert(eq(u32, c->limits.max_payload, 1 * MiB));
        cr_assert(eq(u32, c->limits.max_topic_length, 1024));
        cr_assert(eq(u32, c->limits.max_fds_per_message, 16));
        cr_assert(eq(u64, c->limits.max_bulk_size, 1 * GiB));
        cr_assert(eq(u64, c->limits.bulk_threshold, 64 * KiB));
        cr_assert(eq(u32, c->limits.max_pending_requests, 1024));
        cr_assert(eq(u64, c->limits.request_timeout_ms, 5000));
        cr_assert(eq(u32, c->limits.max_topics, 65536));
        cr_assert(eq(u32, c->limits.retained_max_messages, 10000));
        cr_assert(eq(u64, c->limits.retained_max_bytes, 64 * MiB));
        cr_assert(eq(int, c->log_level, LOG_NOTICE));
        cr_assert(eq(int, (int)c->log_target, (int)LOG_TARGET_AUTO));
        cr_assert(eq(u32, c->stats_interval_s, 0));
        cr_assert(zero(ptr, (void *)config_topic_rule(c, "a", 1)));
        cr_assert(zero(ptr, config_free(c)));
        cr_assert(zero(ptr, config_free(NULL)));
}

/* Files that mean "all defaults". */
static const char *const default_files[] = {
        "",
        "\n\n",
        "# only a comment\n",
        "---\n",
        "---\n...\n",
        "{}\n",
        "~\n",
        "limits:\ntopics:\naccess:\nlogging:\n",
        "limits: {}\ntopics: []\naccess: []\nlogging: {}\n",
        "listen: []\n",
        "%YAML 1.1\n---\nlimits: {}\n",
        "\xef\xbb\xbflimits: {}\n", /* UTF-8 BOM */
};
TABLE_PARAMS(defaults, files, default_files)
ParameterizedTest(size_t *i, defaults, files) {
        Config *c = load_ok(default_files[*i]);
        cr_assert(not(zero(ptr, c->path)));
        assert_defaults(c);
        config_free(c);
}

Test(defaults, example_file_is_the_defaults) {
        const char *path = TEST_SRCDIR "/conf/ipcd.yaml";
        Config *c = NULL;
        char *err = NULL;
        int r = config_load(path, &c, &err);

        cr_assert(eq(int, r, 0), "%s", err ? err : "");
        cr_assert(eq(str, c->path, (char *)path));
        assert_defaults(c);
        config_free(c);
}

/* The example documents every key of the schema: each one appears in it,
 * active or in a comment. */
Test(defaults, example_file_mentions_every_key) {
        static const char *const keys[] = {
                "listen:", "path:", "mode:", "group:", "limits:", "max_connections:",
                "max_connections_per_user:", "max_subscriptions:", "queue_bytes:",
                "queue_messages:", "queue_fds:", "user_queue_bytes:", "user_fds:",
                "max_payload:", "max_topic_length:", "max_fds_per_message:", "max_bulk_size:",
                "bulk_threshold:", "max_pending_requests:", "request_timeout:", "max_topics:",
                "retained_max_messages:", "retained_max_bytes:", "hello_timeout:",
                "shutdown_timeout:", "topics:", "pattern:", "types:",
                "retain:", "overflow:", "max_fds:", "access:", "users:", "groups:", "publish:",
                "subscribe:", "request:", "admin:", "logging:", "level:", "target:",
                "stats_interval:",
        };
        FILE *f = fopen(TEST_SRCDIR "/conf/ipcd.yaml", "re");
        char *text = NULL;
        size_t cap = 0;
        ssize_t n;

        cr_assert(not(zero(ptr, f)));
        n = getdelim(&text, &cap, 0, f);
        fclose(f);
        cr_assert(gt(sz, (size_t)n, 0));
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                cr_expect(not(zero(ptr, strstr(text, keys[i]))), "conf/ipcd.yaml does not mention %s",
                          keys[i]);
        free(text);
}

/* ------------------------------------------------------------------------ */

Test(full, every_key) {
        const char *path = TEST_SRCDIR "/tests/config/full.yaml";
        const ConfigAccessRule *a;
        const ConfigTopicRule *t;
        Config *c = NULL;
        char *err = NULL;
        int r = config_load(path, &c, &err);

        cr_assert(eq(int, r, 0), "%s", err ? err : "");

        cr_assert(eq(sz, c->n_listen, 3));
        cr_assert(eq(str, c->listen[0].path, "/run/ipcd-test/a.sock"));
        cr_assert(eq(u32, (uint32_t)c->listen[0].mode, 0660));
        cr_assert(c->listen[0].has_group);
        cr_assert(eq(str, c->listen[0].group_name, "root"));
        cr_assert(eq(u32, (uint32_t)c->listen[0].gid, 0));
        cr_assert(eq(u32, c->listen[0].group_mark.line, 6));
        cr_assert(eq(u32, c->listen[0].group_mark.column, 12));
        cr_assert(eq(str, c->listen[1].path, "/run/ipcd-test/b.sock"));
        cr_assert(eq(u32, (uint32_t)c->listen[1].mode, 0600));
        cr_assert(eq(u32, (uint32_t)c->listen[1].gid, 4242));
        cr_assert(eq(u32, (uint32_t)c->listen[2].mode, 0666)); /* the default */
        cr_assert(not(c->listen[2].has_group));

        cr_assert(eq(u32, c->limits.max_connections, 100));
        cr_assert(eq(u32, c->limits.max_connections_per_user, 10));
        cr_assert(eq(u32, c->limits.max_subscriptions, 20));
        cr_assert(eq(u64, c->limits.queue_bytes, 2 * MiB));
        cr_assert(eq(u32, c->limits.queue_messages, 300));
        cr_assert(eq(u32, c->limits.queue_fds, 40));
        cr_assert(eq(u64, c->limits.user_queue_bytes, 3 * GiB));
        cr_assert(eq(u32, c->limits.user_fds, 50));
        cr_assert(eq(u32, c->limits.max_payload, 512 * KiB));
        cr_assert(eq(u32, c->limits.max_topic_length, 200));
        cr_assert(eq(u32, c->limits.max_fds_per_message, 8));
        cr_assert(eq(u64, c->limits.max_bulk_size, 2 * GiB));
        cr_assert(eq(u64, c->limits.bulk_threshold, 4096));
        cr_assert(eq(u32, c->limits.max_pending_requests, 60));
        cr_assert(eq(u64, c->limits.request_timeout_ms, 60000));
        cr_assert(eq(u32, c->limits.max_topics, 700));
        cr_assert(eq(u32, c->limits.retained_max_messages, 0));
        cr_assert(eq(u64, c->limits.retained_max_bytes, 123456));

        cr_assert(eq(sz, c->n_topics, 4));
        t = &c->topics[0];
        cr_assert(eq(str, t->pattern, "sensors/#"));
        cr_assert(eq(sz, t->n_types, 3)); /* sorted, the repeated 7 once */
        cr_assert(eq(u32, t->types[0], 1));
        cr_assert(eq(u32, t->types[1], 2));
        cr_assert(eq(u32, t->types[2], 7));
        cr_assert(not(t->retain));
        cr_assert(eq(int, (int)t->overflow, (int)OVERFLOW_DROP_OLD));
        cr_assert(eq(u32, t->max_payload, 64 * KiB));
        cr_assert(eq(i32, t->max_fds, 0));
        t = &c->topics[1];
        cr_assert(eq(str, t->pattern, "control/+/set"));
        cr_assert(eq(sz, t->n_types, 0));
        cr_assert(t->retain);
        cr_assert(eq(int, (int)t->overflow, (int)OVERFLOW_BLOCK));
        cr_assert(eq(u32, t->max_payload, 0));
        cr_assert(eq(i32, t->max_fds, 8));
        cr_assert(eq(int, (int)c->topics[2].overflow, (int)OVERFLOW_DISCONNECT));
        cr_assert(eq(i32, c->topics[2].max_fds, -1));
        cr_assert(eq(int, (int)c->topics[3].overflow, (int)OVERFLOW_DROP_NEW));

        cr_assert(eq(sz, c->n_access, 3));
        a = &c->access[0];
        cr_assert(not(a->all_users));
        cr_assert(eq(sz, a->n_users, 3));
        cr_assert(eq(str, a->user_names[0], "root"));
        cr_assert(eq(str, a->user_names[1], "1001"));
        cr_assert(eq(str, a->user_names[2], "1002"));
        cr_assert(eq(u32, (uint32_t)a->uids[0], 0));
        cr_assert(eq(u32, (uint32_t)a->uids[1], 1001));
        cr_assert(eq(u32, (uint32_t)a->uids[2], 1002));
        cr_assert(eq(u32, a->user_marks[1].line, 45));
        cr_assert(eq(u32, a->user_marks[1].column, 19));
        cr_assert(eq(sz, a->n_groups, 2));
        cr_assert(eq(u32, (uint32_t)a->gids[0], 0));
        cr_assert(eq(u32, (uint32_t)a->gids[1], 2001));
        cr_assert(eq(sz, a->n_publish, 2));
        cr_assert(eq(str, a->publish[0], "sensors/#"));
        cr_assert(eq(str, a->publish[1], "a/b"));
        cr_assert(eq(sz, a->n_subscribe, 2));
        cr_assert(eq(str, a->subscribe[1], "$SYS/#"));
        cr_assert(eq(sz, a->n_request, 1));
        cr_assert(eq(str, a->request[0], "svc/+"));
        cr_assert(a->admin);
        a = &c->access[1];
        cr_assert(a->all_users);
        cr_assert(eq(sz, a->n_users, 0));
        cr_assert(eq(sz, a->n_subscribe, 1));
        cr_assert(eq(sz, a->n_publish, 0));
        cr_assert(not(a->admin));
        a = &c->access[2];
        cr_assert(eq(sz, a->n_users, 0));
        cr_assert(eq(sz, a->n_groups, 1));
        cr_assert(eq(u32, (uint32_t)a->gids[0], 0));

        cr_assert(eq(int, c->log_level, LOG_DEBUG));
        cr_assert(eq(int, (int)c->log_target, (int)LOG_TARGET_JOURNAL));
        cr_assert(eq(u32, c->stats_interval_s, 120));
        config_free(c);
}

Test(full, flow_style) {
        Config *c = NULL;
        char *err = NULL;
        int r = config_load(TEST_SRCDIR "/tests/config/flow.yaml", &c, &err);

        cr_assert(eq(int, r, 0), "%s", err ? err : "");
        cr_assert(eq(u32, c->limits.max_payload, 2 * MiB));
        cr_assert(eq(u64, c->limits.queue_bytes, 16 * MiB));
        cr_assert(eq(sz, c->n_topics, 1));
        cr_assert(eq(u32, c->topics[0].types[0], 3));
        cr_assert(eq(sz, c->n_access, 1));
        cr_assert(c->access[0].all_users);
        cr_assert(eq(str, c->access[0].publish[0], "a/b"));
        cr_assert(eq(int, c->log_level, LOG_INFO));
        cr_assert(eq(int, (int)c->log_target, (int)LOG_TARGET_STDERR));
        config_free(c);
}

Test(full, topic_rule_first_match_wins) {
        Config *c = load_ok("topics:\n"
                            "  - pattern: a/b\n"
                            "    overflow: block\n"
                            "  - pattern: a/+\n"
                            "    overflow: disconnect\n"
                            "  - pattern: \"#\"\n"
                            "    overflow: drop-old\n"
                            "  - pattern: \"$SYS/#\"\n"
                            "    retain: false\n");
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "a/b", 3), &c->topics[0]));
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "a/c", 3), &c->topics[1]));
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "a", 1), &c->topics[2]));
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "a/b/c", 5), &c->topics[2]));
        /* "#" does not match $-topics; the later rule does. */
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "$SYS/x", 6), &c->topics[3]));
        cr_assert(zero(ptr, (void *)config_topic_rule(c, "$other", 6)));
        /* Only @len bytes count. */
        cr_assert(eq(ptr, (void *)config_topic_rule(c, "a/bc", 3), &c->topics[0]));
        config_free(c);
        cr_assert(zero(ptr, (void *)config_topic_rule(NULL, "a", 1)));
}

Test(full, overflow_names) {
        for (int p = 0; p < _OVERFLOW_MAX; p++) {
                const char *n = overflow_policy_name((OverflowPolicy)p);
                cr_assert(not(zero(ptr, (void *)n)));
                cr_assert(eq(int, overflow_policy_from_name(n), p));
        }
        cr_assert(eq(str, (char *)overflow_policy_name(OVERFLOW_DROP_NEW), "drop-new"));
        cr_assert(eq(str, (char *)overflow_policy_name(OVERFLOW_BLOCK), "block"));
        cr_assert(eq(int, overflow_policy_from_name("drop"), -EINVAL));
        cr_assert(eq(str, (char *)config_log_level_name(LOG_WARNING), "warning"));
        cr_assert(eq(str, (char *)config_log_level_name(LOG_CRIT), "error"));
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

typedef struct ValueCase {
        const char *key;  /* under limits: */
        const char *text; /* the value as written */
        uint64_t want;
} ValueCase;

static const ValueCase value_cases[] = {
        { "retained_max_bytes", "1", 1 },
        { "retained_max_bytes", "0001", 1 },
        { "retained_max_bytes", "65537", 65537 },
        { "retained_max_bytes", "65537B", 65537 },
        { "retained_max_bytes", "\"65537\"", 65537 },
        { "retained_max_bytes", "'3 KiB'", 3 * KiB },
        { "retained_max_bytes", "64K", 64 * KiB },
        { "retained_max_bytes", "64KiB", 64 * KiB },
        { "retained_max_bytes", "3M", 3 * MiB },
        { "retained_max_bytes", "3 MiB", 3 * MiB },
        { "retained_max_bytes", "5G", 5 * GiB },
        { "max_bulk_size", "65537", 65537 },
        { "max_bulk_size", "5G", 5 * GiB },
        { "retained_max_bytes", "1024GiB", 1024 * GiB }, /* the largest */
        { "retained_max_bytes", "1099511627776", 1024 * GiB },
        { "max_payload", "16MiB", 16 * MiB },
        { "max_payload", "16777216", 16 * MiB },
        { "queue_bytes", "4KiB", 4 * KiB },
        { "max_topic_length", "65535", 65535 },
        { "max_fds_per_message", "253", 253 },
        { "max_fds_per_message", "0", 0 },
        { "max_connections", "16777216", 16777216 },
        { "retained_max_bytes", "0", 0 },
        { "request_timeout", "1", 1 },
        { "request_timeout", "250ms", 250 },
        { "request_timeout", "250 ms", 250 },
        { "request_timeout", "5s", 5000 },
        { "request_timeout", "2m", 120000 },
        { "request_timeout", "1h", 3600000 },
        { "request_timeout", "3600000", 3600000 },
};

static uint64_t limit_value(const ConfigLimits *l, const char *key) {
#define F(f) if (strcmp(key, #f) == 0) return l->f
        F(max_bulk_size);
        F(max_payload);
        F(queue_bytes);
        F(max_topic_length);
        F(max_fds_per_message);
        F(max_connections);
        F(retained_max_bytes);
#undef F
        if (strcmp(key, "request_timeout") == 0)
                return l->request_timeout_ms;
        cr_fatal("no such key in the test: %s", key);
        return 0;
}

TABLE_PARAMS(values, limits, value_cases)
ParameterizedTest(size_t *i, values, limits) {
        const ValueCase *v = &value_cases[*i];
        char text[256];
        Config *c;

        /* max_fds_per_message 253 needs room in the fd queues, 16MiB
         * payloads in the byte queues. */
        snprintf(text, sizeof(text),
                 "limits:\n  queue_fds: 1000\n  queue_bytes: 32MiB\n  %s: %s\n", v->key, v->text);
        if (strcmp(v->key, "queue_bytes") == 0)
                snprintf(text, sizeof(text), "limits:\n  max_payload: 4KiB\n  bulk_threshold: 1KiB\n  %s: %s\n",
                         v->key, v->text);
        c = load_ok(text);
        cr_assert(eq(u64, limit_value(&c->limits, v->key), v->want), "%s: %s", v->key, v->text);
        config_free(c);
}

typedef struct ModeCase {
        const char *text;
        unsigned want;
} ModeCase;

static const ModeCase mode_cases[] = {
        { "\"0666\"", 0666 }, { "0644", 0644 }, { "'0o640'", 0640 }, { "0", 0 },
        { "755", 0755 },      { "0777", 0777 }, { "00600", 0600 },
};

TABLE_PARAMS(values, modes, mode_cases)
ParameterizedTest(size_t *i, values, modes) {
        char text[256];
        Config *c;

        snprintf(text, sizeof(text), "listen:\n  - path: /x.sock\n    mode: %s\n", mode_cases[*i].text);
        c = load_ok(text);
        cr_assert(eq(u32, (uint32_t)c->listen[0].mode, mode_cases[*i].want), "%s", mode_cases[*i].text);
        config_free(c);
}

Test(values, stats_interval_and_booleans) {
        Config *c = load_ok("stats_interval: 15s\n"
                            "topics:\n"
                            "  - {pattern: a, retain: True}\n"
                            "  - {pattern: b, retain: FALSE}\n");
        cr_assert(eq(u32, c->stats_interval_s, 15));
        cr_assert(c->topics[0].retain);
        cr_assert(not(c->topics[1].retain));
        config_free(c);
        c = load_ok("stats_interval: 60000\n");
        cr_assert(eq(u32, c->stats_interval_s, 60));
        config_free(c);
}

Test(values, log_levels) {
        static const struct {
                const char *name;
                int level;
        } levels[] = { { "error", LOG_ERR },  { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
                       { "info", LOG_INFO }, { "debug", LOG_DEBUG } };
        for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
                char text[64];
                Config *c;
                snprintf(text, sizeof(text), "logging:\n  level: %s\n", levels[i].name);
                c = load_ok(text);
                cr_assert(eq(int, c->log_level, levels[i].level));
                cr_assert(eq(str, (char *)config_log_level_name(c->log_level), (char *)levels[i].name));
                config_free(c);
        }
}

/* ------------------------------------------------------------------------ */
/* Bad files                                                                 */

typedef struct BadCase {
        const char *text;
        uint32_t line, column;
        const char *key; /* NULL: a syntax error, which names no key */
        const char *msg; /* a part of the message */
} BadCase;

static const BadCase bad_cases[] = {
        /* unknown keys, at every level */
        { "foo: 1\n", 1, 1, "foo", "unknown key (expected one of: listen, limits," },
        { "limits:\n  max_payloadd: 1\n", 2, 3, "limits.max_payloadd", "unknown key" },
        { "topics:\n  - pattern: a\n    colour: red\n", 3, 5, "topics[0].colour", "unknown key" },
        { "access:\n  - users: [root]\n    write: [a]\n", 3, 5, "access[0].write", "unknown key" },
        { "listen:\n  - path: /a\n    owner: x\n", 3, 5, "listen[0].owner", "unknown key" },
        { "logging:\n  file: /x\n", 2, 3, "logging.file", "unknown key" },
        { "\"\": 1\n", 1, 1, "\"\"", "unknown key" },
        { "Limits: {}\n", 1, 1, "Limits", "unknown key" },
        { "limits:\n  \"max_payload\\x01\": 1\n", 2, 3, "limits.max_payload\\x01", "unknown key" },

        /* wrong types */
        { "limits: [1]\n", 1, 9, "limits", "expected a mapping (key: value lines), found a list" },
        { "limits: 5\n", 1, 9, "limits", "expected a mapping (key: value lines), found a single value" },
        { "topics:\n  pattern: a\n", 2, 3, "topics", "expected a list, found a mapping" },
        { "listen: /run/x.sock\n", 1, 9, "listen", "expected a list, found a single value" },
        { "limits:\n  max_payload: [1]\n", 2, 16, "limits.max_payload", "expected a size" },
        { "limits:\n  max_payload: {a: 1}\n", 2, 16, "limits.max_payload", "found a mapping" },
        { "limits:\n  max_payload:\n", 2, 15, "limits.max_payload", "expected a size (bytes, or a number with B, K, KiB, M, MiB, G or GiB), found nothing" },
        { "access:\n  - users: [root]\n    publish: a/b\n", 3, 14, "access[0].publish", "expected a list, found a single value" },
        { "access:\n  - users: root\n", 2, 12, "access[0].users", "expected a list" },
        { "access:\n  - users: [{a: b}]\n", 2, 13, "access[0].users[0]", "expected a user name or id, found a mapping" },
        { "access:\n  - users: [root]\n    publish:\n", 3, 13, "access[0].publish", "expected a list, found nothing" },
        { "topics:\n  - pattern: a\n    types: 5\n", 3, 12, "topics[0].types", "expected a list of message types" },
        { "topics:\n  - a/b\n", 2, 5, "topics[0]", "expected a mapping with pattern" },
        { "topics:\n  - [a]\n", 2, 5, "topics[0]", "found a list" },
        { "access:\n  - root\n", 2, 5, "access[0]", "expected a mapping with users or groups" },
        { "listen:\n  - /a.sock\n", 2, 5, "listen[0]", "expected a mapping with path" },
        { "logging:\n  level: [debug]\n", 2, 10, "logging.level", "expected a log level, found a list" },
        { "logging: debug\n", 1, 10, "logging", "expected a mapping" },
        { "topics:\n  - pattern: a\n    retain: yes\n", 3, 13, "topics[0].retain", "'yes' is not true or false" },
        { "access:\n  - users: [root]\n    admin: 1\n", 3, 12, "access[0].admin", "'1' is not true or false" },
        { "? [a]\n: b\n", 1, 3, NULL, "expected a key name, found a list" },
        { "limits:\n  ? {a: 1}\n  : 2\n", 2, 5, "limits", "expected a key name, found a mapping" },

        /* numbers, sizes, durations, modes */
        { "limits:\n  max_connections: 12abc\n", 2, 20, "limits.max_connections", "'12abc' is not a whole number" },
        { "limits:\n  max_connections: 1K\n", 2, 20, "limits.max_connections", "'1K' is not a whole number" },
        { "limits:\n  queue_messages: 1.5\n", 2, 19, "limits.queue_messages", "'1.5' is not a whole number" },
        { "limits:\n  queue_messages: 0x10\n", 2, 19, "limits.queue_messages", "is not a whole number" },
        { "limits:\n  queue_messages: \" 10\"\n", 2, 19, "limits.queue_messages", "is not a whole number" },
        { "limits:\n  queue_messages: \"10 \"\n", 2, 19, "limits.queue_messages", "is not a whole number" },
        { "limits:\n  queue_bytes: 8MB\n", 2, 16, "limits.queue_bytes", "'8MB' is not a size (bytes, or a number with B, K, KiB, M, MiB, G or GiB)" },
        { "limits:\n  queue_bytes: MiB\n", 2, 16, "limits.queue_bytes", "is not a size" },
        { "limits:\n  queue_bytes: 1.5MiB\n", 2, 16, "limits.queue_bytes", "is not a size" },
        { "limits:\n  queue_bytes: 8mib\n", 2, 16, "limits.queue_bytes", "is not a size" },
        { "limits:\n  queue_bytes: 8 MiB extra\n", 2, 16, "limits.queue_bytes", "is not a size" },
        { "limits:\n  max_bulk_size: 99999999999999999999\n", 2, 18, "limits.max_bulk_size", "'99999999999999999999' is out of range (1 to 1024GiB)" },
        { "limits:\n  max_bulk_size: 17179869184GiB\n", 2, 18, "limits.max_bulk_size", "is out of range" },
        { "limits:\n  max_bulk_size: 1025GiB\n", 2, 18, "limits.max_bulk_size", "is out of range" },
        { "limits:\n  request_timeout: 5 sec\n", 2, 20, "limits.request_timeout", "'5 sec' is not a duration (milliseconds, or a number with ms, s, m or h)" },
        { "limits:\n  request_timeout: 0\n", 2, 20, "limits.request_timeout", "'0' is out of range (1ms to 1h)" },
        { "limits:\n  request_timeout: 2h\n", 2, 20, "limits.request_timeout", "'2h' is out of range" },
        { "limits:\n  request_timeout: 5S\n", 2, 20, "limits.request_timeout", "is not a duration" },
        { "stats_interval: 1500ms\n", 1, 17, "stats_interval", "'1500ms' is not a whole number of seconds" },
        { "stats_interval: soon\n", 1, 17, "stats_interval", "is not a duration" },
        { "stats_interval: 25h\n", 1, 17, "stats_interval", "is out of range (0ms to 24h)" },
        { "limits:\n  max_connections: -5\n", 2, 20, "limits.max_connections", "'-5' must not be negative" },
        { "limits:\n  queue_bytes: -1MiB\n", 2, 16, "limits.queue_bytes", "must not be negative" },
        { "limits:\n  max_connections: 0\n", 2, 20, "limits.max_connections", "'0' is out of range (1 to 16777216)" },
        { "limits:\n  max_subscriptions: 0\n", 2, 22, "limits.max_subscriptions", "is out of range" },
        { "limits:\n  queue_messages: 0\n", 2, 19, "limits.queue_messages", "is out of range" },
        { "limits:\n  max_topics: 0\n", 2, 15, "limits.max_topics", "is out of range" },
        { "limits:\n  max_pending_requests: 0\n", 2, 25, "limits.max_pending_requests", "is out of range" },
        { "limits:\n  max_payload: 0\n", 2, 16, "limits.max_payload", "is out of range (1 to 16MiB)" },
        { "limits:\n  max_fds_per_message: 254\n", 2, 24, "limits.max_fds_per_message", "'254' is out of range (0 to 253)" },
        { "limits:\n  max_payload: 17MiB\n", 2, 16, "limits.max_payload", "'17MiB' is out of range (1 to 16MiB)" },
        { "limits:\n  max_payload: 16777217\n", 2, 16, "limits.max_payload", "is out of range" },
        { "limits:\n  max_topic_length: 65536\n", 2, 21, "limits.max_topic_length", "'65536' is out of range (1 to 65535)" },
        { "limits:\n  max_topic_length: 0\n", 2, 21, "limits.max_topic_length", "is out of range" },
        { "limits:\n  queue_bytes: 100\n", 2, 16, "limits.queue_bytes", "'100' is out of range (4KiB to 1024GiB)" },
        { "listen:\n  - path: /a\n    mode: \"0999\"\n", 3, 11, "listen[0].mode", "'0999' is not an octal mode" },
        { "listen:\n  - path: /a\n    mode: \"01777\"\n", 3, 11, "listen[0].mode", "'01777' is out of range (0 to 0777)" },
        { "listen:\n  - path: /a\n    mode: rw\n", 3, 11, "listen[0].mode", "'rw' is not an octal mode" },
        { "listen:\n  - path: /a\n    mode: \"0o\"\n", 3, 11, "listen[0].mode", "is not an octal mode" },
        { "listen:\n  - path: /a\n    mode: -1\n", 3, 11, "listen[0].mode", "is not an octal mode" },

        /* listen */
        { "listen:\n  - path: a.sock\n", 2, 11, "listen[0].path", "'a.sock' is not an absolute path" },
        { "listen:\n  - path: /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
          2, 11, "listen[0].path", "longer than a socket path can be (107 bytes)" },
        { "listen:\n  - path: \"\"\n", 2, 11, "listen[0].path", "expected a socket path, found an empty string" },
        { "listen:\n  - path: \"/a\\nb\"\n", 2, 11, "listen[0].path", "'/a\\x0ab' contains control characters" },
        { "listen:\n  - mode: \"0600\"\n", 2, 5, "listen[0]", "path is required" },
        { "listen:\n  - path: /a\n  - path: /b\n  - path: /a\n", 4, 11, "listen[2].path", "'/a' is already listen[0]" },
        { "listen:\n  - path: /a\n    group: \"\"\n", 3, 12, "listen[0].group", "found an empty string" },

        /* topic rules */
        { "topics:\n  - pattern: \"a/#/b\"\n", 2, 14, "topics[0].pattern", "'a/#/b' is not a valid topic filter: '#' must be the last level" },
        { "topics:\n  - pattern: a+/b\n", 2, 14, "topics[0].pattern", "wildcard must be a whole level" },
        { "topics:\n  - pattern: \"\"\n", 2, 14, "topics[0].pattern", "is not a valid topic filter: empty topic" },
        { "topics:\n  - pattern: \"a\\tb\"\n", 2, 14, "topics[0].pattern", "'a\\x09b' is not a valid topic filter" },
        { "topics:\n  - retain: true\n", 2, 5, "topics[0]", "pattern is required" },
        { "topics:\n  - pattern: a/b\n  - pattern: a/b\n", 3, 14, "topics[1].pattern", "'a/b' is already the pattern of topics[0]" },
        { "topics:\n  - pattern: a\n    overflow: drop\n", 3, 15, "topics[0].overflow", "'drop' is not an overflow policy (drop-new, drop-old, disconnect, block)" },
        { "topics:\n  - pattern: a\n    types: []\n", 3, 12, "topics[0].types", "an empty list allows no type at all" },
        { "topics:\n  - pattern: a\n    types: [1, -1]\n", 3, 16, "topics[0].types[1]", "'-1' must not be negative" },
        { "topics:\n  - pattern: a\n    types: [4294967296]\n", 3, 13, "topics[0].types[0]", "is out of range (0 to 4294967295)" },
        { "topics:\n  - pattern: a\n    types: [x]\n", 3, 13, "topics[0].types[0]", "'x' is not a whole number" },
        { "topics:\n  - pattern: a\n    max_payload: 0\n", 3, 18, "topics[0].max_payload", "'0' is out of range (1 to 16MiB)" },
        { "topics:\n  - pattern: a\n    max_fds: 254\n", 3, 14, "topics[0].max_fds", "is out of range (0 to 253)" },
        { "topics:\n  - pattern: a\n    max_fds: -1\n", 3, 14, "topics[0].max_fds", "must not be negative" },
        { "limits:\n  max_payload: 2KiB\n  bulk_threshold: 1KiB\ntopics:\n  - pattern: a\n    max_payload: 4KiB\n",
          6, 18, "topics[0].max_payload", "4KiB is above limits.max_payload (2KiB): a topic rule can only lower it" },
        { "topics:\n  - pattern: a\n  - pattern: b\n    max_fds: 17\n", 4, 14, "topics[1].max_fds", "17 is above limits.max_fds_per_message (16)" },
        { "topics:\n  - pattern: a\n    max_payload: 2MiB\n", 3, 18, "topics[0].max_payload", "2MiB is above limits.max_payload (1MiB)" },

        /* access rules */
        { "access:\n  - users: [ipcd-no-such-user-9f3b]\n    publish: [a]\n", 2, 13, "access[0].users[0]", "unknown user 'ipcd-no-such-user-9f3b'" },
        { "access:\n  - users: [root]\n    groups: [root, ipcd-no-such-group-9f3b]\n", 3, 20, "access[0].groups[1]", "unknown group 'ipcd-no-such-group-9f3b'" },
        { "listen:\n  - path: /a\n    group: ipcd-no-such-group-9f3b\n", 3, 12, "listen[0].group", "unknown group 'ipcd-no-such-group-9f3b'" },
        { "access:\n  - groups: [\"*\"]\n", 2, 14, "access[0].groups[0]", "'*' is for users only" },
        { "access:\n  - publish: [a]\n", 2, 5, "access[0]", "a rule needs users or groups to apply to" },
        { "access:\n  - users: []\n    groups: []\n    admin: true\n", 2, 5, "access[0]", "needs users or groups" },
        { "access:\n  - users: [\"a b\"]\n", 2, 13, "access[0].users[0]", "'a b' is not a valid user name" },
        { "access:\n  - users: [\"a:b\"]\n", 2, 13, "access[0].users[0]", "is not a valid user name" },
        { "access:\n  - users: [\"\"]\n", 2, 13, "access[0].users[0]", "expected a user name or id, found an empty string" },
        { "access:\n  - users: [4294967295]\n", 2, 13, "access[0].users[0]", "'4294967295' is out of range for a numeric id" },
        { "access:\n  - users: [root]\n    publish: [\"a/b#\"]\n", 3, 15, "access[0].publish[0]", "'a/b#' is not a valid topic filter: wildcard must be a whole level" },
        { "access:\n  - users: [root]\n    subscribe: [a, \"#/a\"]\n", 3, 20, "access[0].subscribe[1]", "'#' must be the last level" },
        { "access:\n  - users: [root]\n    request: [\"\"]\n", 3, 15, "access[0].request[0]", "empty topic" },

        /* duplicates */
        { "limits: {}\nlimits: {}\n", 2, 1, "limits", "duplicate key (first at line 1)" },
        { "limits:\n  max_payload: 1KiB\n  max_payload: 2KiB\n", 3, 3, "limits.max_payload", "duplicate key (first at line 2)" },
        { "topics:\n  - pattern: a\n    retain: true\n    retain: false\n", 4, 5, "topics[0].retain", "duplicate key (first at line 3)" },
        { "access:\n  - users: [root]\n    users: [root]\n", 3, 5, "access[0].users", "duplicate key" },

        /* limits that contradict each other */
        { "limits:\n  max_payload: 32KiB\n", 2, 16, "limits.max_payload", "32KiB is below limits.bulk_threshold (64KiB): payloads up to the bulk threshold are sent inline" },
        { "limits:\n  bulk_threshold: 2MiB\n", 2, 19, "limits.bulk_threshold", "2MiB is above limits.max_payload (1MiB)" },
        { "limits:\n  bulk_threshold: 8KiB\n  max_payload: 4KiB\n", 3, 16, "limits.max_payload", "below limits.bulk_threshold" },
        { "limits:\n  max_payload: 4KiB\n  bulk_threshold: 8KiB\n", 3, 19, "limits.bulk_threshold", "above limits.max_payload" },
        { "limits:\n  max_bulk_size: 64KiB\n", 2, 18, "limits.max_bulk_size", "64KiB is not above limits.bulk_threshold (64KiB): bulk payloads are those above the threshold" },
        { "limits:\n  queue_bytes: 512KiB\n", 2, 16, "limits.queue_bytes", "512KiB is below limits.max_payload (1MiB): a message of the largest payload could never be queued" },
        { "limits:\n  user_queue_bytes: 512KiB\n", 2, 21, "limits.user_queue_bytes", "below limits.max_payload" },
        { "limits:\n  queue_fds: 8\n", 2, 14, "limits.queue_fds", "8 is below limits.max_fds_per_message (16): a message with the most fds could never be queued" },
        { "limits:\n  user_fds: 4\n", 2, 13, "limits.user_fds", "below limits.max_fds_per_message" },
        { "limits:\n  max_fds_per_message: 253\n  queue_fds: 100\n", 3, 14, "limits.queue_fds", "100 is below limits.max_fds_per_message (253)" },

        /* logging */
        { "logging:\n  level: verbose\n", 2, 10, "logging.level", "'verbose' is not a log level (error, warning, notice, info, debug)" },
        { "logging:\n  level: true\n", 2, 10, "logging.level", "is not a log level" },
        { "logging:\n  target: syslog\n", 2, 11, "logging.target", "'syslog' is not a log target (auto, stderr, journal)" },

        /* YAML itself */
        { "limits: {max_payload: 1MiB\n", 2, 1, NULL, "syntax error: did not find expected ',' or '}'" },
        { "limits:\n\tmax_payload: 1\n", 2, 1, NULL, "syntax error: found character that cannot start any token" },
        { "limits:\n  max_payload: 1MiB\n  - x\n", 3, 3, NULL, "syntax error: did not find expected key (while parsing a block mapping at line 2)" },
        { "limits:\n  max_payload: 1MiB\nx\n", 4, 1, NULL, "syntax error: could not find expected ':'" },
        { "logging:\n  level: \"debug\n", 3, 1, NULL, "syntax error: found unexpected end of stream" },
        { "limits: &l\n  max_payload: 1MiB\n", 1, 9, "limits", "anchors (&name) are not supported" },
        { "limits:\n  max_payload: *x\n", 2, 16, "limits.max_payload", "aliases (*name) are not supported" },
        { "limits:\n  max_payload: !!int 5\n", 2, 16, "limits.max_payload", "tags (!tag) are not supported" },
        { "limits: !custom\n  max_payload: 5\n", 1, 9, "limits", "tags (!tag) are not supported" },
        { "- a\n- b\n", 1, 1, NULL, "the file must be a mapping of sections (listen, limits, topics, access, logging, stats_interval), not a list" },
        { "hello\n", 1, 1, NULL, "must be a mapping of sections" },
        { "\"\"\n", 1, 1, NULL, "must be a mapping of sections" },
        { "limits: {}\n---\nlimits: {}\n", 2, 1, NULL, "only one YAML document is allowed" },
        { "---\n---\n", 2, 1, NULL, "only one YAML document is allowed" },
        { "logging:\n  level: \"de\\0bug\"\n", 2, 10, "logging.level", "a value must not contain a NUL character" },
        { "logging:\n  level: \xff\n", 2, 10, NULL, "invalid input: invalid leading UTF-8 octet (byte 0xff)" },
        { "limits:\n  max_payload: \x01\n", 2, 16, NULL, "invalid input: control characters are not allowed" },
        { "lim\xc3its: {}\n", 1, 5, NULL, "invalid input: invalid trailing UTF-8 octet" },
};

TABLE_PARAMS(bad, files, bad_cases)
ParameterizedTest(size_t *i, bad, files) {
        const BadCase *b = &bad_cases[*i];
        char prefix[512];
        Config *c = NULL;
        char *err = NULL;
        TmpFile t;
        int r;

        tmpfile_write(&t, b->text, strlen(b->text));
        r = config_load(t.path, &c, &err);
        cr_assert(eq(int, r, -EINVAL), "case %zu should fail with -EINVAL\n--- file:\n%s", *i, b->text);
        cr_assert(zero(ptr, c));
        cr_assert(not(zero(ptr, err)));
        if (b->key)
                snprintf(prefix, sizeof(prefix), "%s:%u:%u: %s: ", t.path, b->line, b->column, b->key);
        else
                snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", t.path, b->line, b->column);
        cr_assert(eq(int, strncmp(err, prefix, strlen(prefix)), 0),
                  "case %zu:\n  got:  %s\n  want: %s...\n--- file:\n%s", *i, err, prefix, b->text);
        cr_assert(not(zero(ptr, strstr(err + strlen(prefix), b->msg))),
                  "case %zu:\n  got:  %s\n  want: ...%s...", *i, err, b->msg);
        cr_assert(zero(ptr, strchr(err, '\n')), "one line: %s", err);
        free(err);
        tmpfile_done(&t);
}

/* Without a place for the message, errors are still reported. */
Test(bad, no_error_pointer) {
        Config *c = NULL;
        cr_assert(eq(int, config_load_string("x.yaml", "foo: 1\n", 7, &c, NULL), -EINVAL));
        cr_assert(zero(ptr, c));
        cr_assert(eq(int, config_load("/nonexistent/ipcd.yaml", &c, NULL), -ENOENT));
}

Test(bad, cannot_open) {
        char dir[64] = "/tmp/ipcd-test-config.XXXXXX", path[128], want[256];
        Config *c = NULL;
        char *err = NULL;
        int r;

        cr_assert(not(zero(ptr, mkdtemp(dir))));
        snprintf(path, sizeof(path), "%s/missing.yaml", dir);
        r = config_load(path, &c, &err);
        cr_assert(eq(int, r, -ENOENT));
        snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
        cr_assert(eq(str, err, want));
        free(err);

        /* A directory. */
        r = config_load(dir, &c, &err);
        cr_assert(eq(int, r, -EISDIR));
        snprintf(want, sizeof(want), "%s: cannot open: Is a directory", dir);
        cr_assert(eq(str, err, want));
        free(err);
        rmdir(dir);
}

Test(bad, too_large) {
        TmpFile t;
        Config *c = NULL;
        char *err = NULL, want[256];
        int fd, r;

        tmpfile_write(&t, "", 0);
        fd = open(t.path, O_WRONLY | O_CLOEXEC);
        cr_assert(eq(int, ftruncate(fd, (16 << 20) + 1), 0));
        close(fd);
        r = config_load(t.path, &c, &err);
        cr_assert(eq(int, r, -EFBIG));
        snprintf(want, sizeof(want), "%s: cannot read: larger than 16 MiB", t.path);
        cr_assert(eq(str, err, want));
        free(err);
        tmpfile_done(&t);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

Test(names, resolve) {
        Config *c = load_ok("listen:\n"
                            "  - path: /a\n"
                            "    group: root\n"
                            "access:\n"
                            "  - users: [root, \"123\", 4294967294]\n"
                            "    groups: [root, 77]\n");
        cr_assert(eq(u32, (uint32_t)c->listen[0].gid, 0));
        cr_assert(eq(u32, (uint32_t)c->access[0].uids[0], 0));
        cr_assert(eq(u32, (uint32_t)c->access[0].uids[1], 123));
        cr_assert(eq(u32, (uint32_t)c->access[0].uids[2], 4294967294u));
        cr_assert(eq(u32, (uint32_t)c->access[0].gids[0], 0));
        cr_assert(eq(u32, (uint32_t)c->access[0].gids[1], 77));
        config_free(c);
}

/* All or nothing: a name that no longer resolves leaves every id as it was. */
Test(names, resolve_is_atomic) {
        Config *c = load_ok("access:\n"
                            "  - users: [\"5\", root]\n"
                            "    groups: [\"6\"]\n");
        char *err = NULL;

        c->access[0].uids[0] = 55;
        c->access[0].gids[0] = 66;
        free(c->access[0].user_names[1]);
        c->access[0].user_names[1] = strdup("ipcd-no-such-user-9f3b");
        cr_assert(eq(int, config_resolve_ids(c, &err), -EINVAL));
        cr_assert(not(zero(ptr, strstr(err, ":2:18: access[0].users[1]: unknown user 'ipcd-no-such-user-9f3b'"))),
                  "%s", err);
        free(err);
        cr_assert(eq(u32, (uint32_t)c->access[0].uids[0], 55));
        cr_assert(eq(u32, (uint32_t)c->access[0].gids[0], 66));

        /* Fixed, it resolves again. */
        free(c->access[0].user_names[1]);
        c->access[0].user_names[1] = strdup("root");
        cr_assert(eq(int, config_resolve_ids(c, &err), 0));
        cr_assert(zero(ptr, err));
        cr_assert(eq(u32, (uint32_t)c->access[0].uids[0], 5));
        cr_assert(eq(u32, (uint32_t)c->access[0].gids[0], 6));
        config_free(c);
}

Test(names, everyone) {
        Config *c = load_ok("access:\n  - users: [\"*\", root]\n    subscribe: [\"#\"]\n");
        cr_assert(c->access[0].all_users);
        cr_assert(eq(sz, c->access[0].n_users, 1));
        config_free(c);
}

/* ------------------------------------------------------------------------ */
/* Hostile input                                                             */

static char *read_all(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *text = NULL;
        size_t cap = 0;
        ssize_t n;

        cr_assert(not(zero(ptr, f)), "%s: %m", path);
        n = getdelim(&text, &cap, 0, f);
        fclose(f);
        cr_assert(gt(sz, (size_t)n, 0));
        *ret_len = (size_t)n;
        return text;
}

/* Loads @len bytes; either it works or it fails with one line that starts
 * with the name. */
static void load_any(const void *buf, size_t len) {
        Config *c = NULL;
        char *err = NULL;
        int r = config_load_string("fuzz.yaml", buf, len, &c, &err);

        if (r == 0) {
                cr_assert(not(zero(ptr, c)));
                cr_assert(zero(ptr, err));
                config_free(c);
                return;
        }
        cr_assert(lt(int, r, 0));
        cr_assert(zero(ptr, c));
        cr_assert(not(zero(ptr, err)));
        cr_assert(eq(int, strncmp(err, "fuzz.yaml:", 10), 0), "%s", err);
        cr_assert(zero(ptr, strchr(err, '\n')), "%s", err);
        cr_assert(lt(sz, strlen(err), 1024));
        free(err);
}

Test(hostile, every_truncation) {
        size_t len;
        char *text = read_all(TEST_SRCDIR "/tests/config/full.yaml", &len);
        for (size_t n = 0; n <= len; n++)
                load_any(text, n);
        free(text);
}

/* Bytes flipped, dropped and inserted at random, from a fixed seed. */
Test(hostile, mutations, .timeout = 120) {
        static const char specials[] = "{}[]:,-?&*!|>'\"%@`#\n \t\\\x00\xff\xc3";
        size_t len;
        char *text = read_all(TEST_SRCDIR "/tests/config/full.yaml", &len);
        char *buf = malloc(len + 64);
        unsigned seed = 12345;

        cr_assert(not(zero(ptr, buf)));
        for (int round = 0; round < 3000; round++) {
                size_t n = len;
                memcpy(buf, text, len);
                for (int k = 0; k < 1 + round % 4; k++) {
                        size_t at = (size_t)rand_r(&seed) % n;
                        char ch = (rand_r(&seed) & 1) ? specials[(size_t)rand_r(&seed) % (sizeof(specials) - 1)]
                                                      : (char)rand_r(&seed);
                        switch (rand_r(&seed) % 3) {
                        case 0:
                                buf[at] = ch;
                                break;
                        case 1:
                                memmove(buf + at, buf + at + 1, n - at - 1);
                                n--;
                                break;
                        default:
                                if (n < len + 60) {
                                        memmove(buf + at + 1, buf + at, n - at);
                                        buf[at] = ch;
                                        n++;
                                }
                        }
                }
                load_any(buf, n);
        }
        free(buf);
        free(text);
}

Test(hostile, garbage) {
        unsigned seed = 777;
        char buf[512];
        for (int round = 0; round < 2000; round++) {
                size_t n = (size_t)rand_r(&seed) % sizeof(buf);
                for (size_t i = 0; i < n; i++)
                        buf[i] = (char)rand_r(&seed);
                load_any(buf, n);
        }
        /* Structure characters only: random YAML-ish shapes. */
        for (int round = 0; round < 2000; round++) {
                static const char alphabet[] = "{}[]:,- \n#&*!'\"ab1";
                size_t n = (size_t)rand_r(&seed) % sizeof(buf);
                for (size_t i = 0; i < n; i++)
                        buf[i] = alphabet[(size_t)rand_r(&seed) % (sizeof(alphabet) - 1)];
                load_any(buf, n);
        }
}

Test(hostile, billion_laughs) {
        const char *text = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                           "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                           "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                           "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                           "limits: *d\n";
        const char *text2 = "limits: &a {max_payload: 1MiB}\nlogging: *a\n";
        char *err = NULL;
        Config *c = NULL;

        cr_assert(eq(int, config_load_string("x.yaml", text, strlen(text), &c, &err), -EINVAL));
        free(err);
        cr_assert(eq(int, config_load_string("x.yaml", text2, strlen(text2), &c, &err), -EINVAL));
        cr_assert(eq(str, err, "x.yaml:1:9: limits: anchors (&name) are not supported"));
        free(err);
}

Test(hostile, deep_nesting) {
        size_t n = 1 << 20;
        char *buf = malloc(n + 16);
        char *err = NULL;
        Config *c = NULL;

        cr_assert(not(zero(ptr, buf)));
        memcpy(buf, "limits: ", 8);
        memset(buf + 8, '[', n);
        cr_assert(eq(int, config_load_string("x.yaml", buf, n + 8, &c, &err), -EINVAL));
        free(err);
        memset(buf, '[', n);
        cr_assert(eq(int, config_load_string("x.yaml", buf, n, &c, &err), -EINVAL));
        free(err);
        memset(buf, '{', n);
        cr_assert(eq(int, config_load_string("x.yaml", buf, n, &c, &err), -EINVAL));
        free(err);
        free(buf);
}

/* A key of 100000 bytes: the message quotes a short piece of it. */
Test(hostile, long_key) {
        size_t n = 100000;
        char *buf = malloc(n + 16);
        char *err = NULL;
        Config *c = NULL;

        cr_assert(not(zero(ptr, buf)));
        /* An explicit key: implicit ones end at 1024 characters. */
        memcpy(buf, "? ", 2);
        memset(buf + 2, 'k', n);
        memcpy(buf + 2 + n, "\n: 1\n", 5);
        cr_assert(eq(int, config_load_string("x.yaml", buf, n + 7, &c, &err), -EINVAL));
        cr_assert(lt(sz, strlen(err), 400), "%s", err);
        cr_assert(not(zero(ptr, strstr(err, "...: unknown key"))), "%s", err);
        free(err);
        free(buf);
}

Test(hostile, too_many_entries) {
        size_t cap = 4200 * 32, o = 0;
        char *buf = malloc(cap);
        char *err = NULL;
        Config *c = NULL;

        cr_assert(not(zero(ptr, buf)));
        o += (size_t)snprintf(buf + o, cap - o, "topics:\n");
        for (int i = 0; i < 4097; i++)
                o += (size_t)snprintf(buf + o, cap - o, "  - pattern: t/%d\n", i);
        cr_assert(eq(int, config_load_string("x.yaml", buf, o, &c, &err), -EINVAL));
        cr_assert(not(zero(ptr, strstr(err, ":4098:5: topics: too many entries (at most 4096)"))), "%s", err);
        free(err);

        /* 4096 is fine. */
        o = (size_t)snprintf(buf, cap, "topics:\n");
        for (int i = 0; i < 4096; i++)
                o += (size_t)snprintf(buf + o, cap - o, "  - pattern: t/%d\n", i);
        cr_assert(eq(int, config_load_string("x.yaml", buf, o, &c, &err), 0), "%s", err);
        cr_assert(eq(sz, c->n_topics, 4096));
        config_free(c);
        free(buf);
}
