/* SPDX-License-Identifier: MIT */
/*
 * The configuration file (YAML, default /etc/ipcd/ipcd.yaml): parsing,
 * validation and the resolved result. Pure: no logging, no globals. Every
 * error is one malloc'd line "FILE:LINE:COLUMN: KEY: what is wrong" (the
 * key as a path, "limits.max_payload", "topics[2].pattern"); the caller
 * decides where it goes.
 *
 * (The file is conf.h, not config.h: every source file includes autoconf's
 * "config.h", and a daemon/config.h would shadow it for daemon/.)
 *
 * A Config is immutable once loaded: a reload builds a new one and swaps it
 * in, so a bad file never disturbs the running configuration.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h" /* OverflowPolicy, overflow_policy_name(), overflow_policy_from_name() */

typedef enum ConfigLogTarget {
        LOG_TARGET_AUTO,    /* the journal when stderr is connected to it, else stderr */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
} ConfigLogTarget;

/* Where a value came from in the file: 1-based; line 0 = not from a file. */
typedef struct ConfigMark {
        uint32_t line;
        uint32_t column;
} ConfigMark;

typedef struct ConfigListen {
        char *path;         /* absolute, fits sun_path */
        mode_t mode;        /* default 0666: the access rules decide who may do what */
        bool has_group;
        char *group_name;   /* as written (a name or a number), when has_group */
        gid_t gid;          /* resolved, when has_group */
        ConfigMark group_mark;
} ConfigListen;

typedef struct ConfigLimits {
        uint32_t max_connections;          /* 16384 */
        uint32_t max_connections_per_user; /* 1024 */
        uint32_t max_subscriptions;        /* per connection, 1024 */
        uint64_t queue_bytes;              /* per connection output queue, 8 MiB */
        uint32_t queue_messages;           /* per connection, 65536 */
        uint32_t queue_fds;                /* fds queued toward one connection, 256 */
        uint64_t user_queue_bytes;         /* all connections of one uid, 64 MiB */
        uint32_t user_fds;                 /* fds queued toward all connections of one uid, 1024 */
        uint32_t max_payload;              /* inline, 1 MiB, at most 16 MiB */
        uint32_t max_topic_length;         /* 1024, at most 65535 */
        uint32_t max_fds_per_message;      /* 16, at most 253 */
        uint64_t max_bulk_size;            /* 1 GiB */
        uint64_t bulk_threshold;           /* 64 KiB: advice to clients (not yet in WELCOME) */
        uint32_t max_pending_requests;     /* per connection, 1024 */
        uint64_t request_timeout_ms;       /* default deadline, 5000 */
        uint32_t max_topics;               /* 65536 */
        uint32_t retained_max_messages;    /* 10000; 0 = no retained messages */
        uint64_t retained_max_bytes;       /* 64 MiB; 0 = no retained messages */
        uint64_t hello_timeout_ms;         /* a new connection's time to say HELLO, 10 s */
        uint64_t shutdown_timeout_ms;      /* SIGTERM: time to drain queues, 5 s; 0 = none */
} ConfigLimits;

/* Hard bounds the file cannot exceed. */
#define CONFIG_MAX_PAYLOAD_LIMIT (16u << 20)
#define CONFIG_MAX_TOPIC_LENGTH_LIMIT 65535u
#define CONFIG_MAX_FDS_PER_MESSAGE_LIMIT 253u

typedef struct ConfigTopicRule {
        char *pattern;           /* a valid filter (topic_filter_check) */
        uint32_t *types;         /* allowed message types, sorted, no duplicates */
        size_t n_types;          /* 0 = every type */
        bool retain;             /* retained publishes allowed (default true) */
        OverflowPolicy overflow; /* default drop-new */
        uint32_t max_payload;    /* 0 = the global limit; else at most that */
        int32_t max_fds;         /* -1 = the global limit; else 0..max_fds_per_message */
} ConfigTopicRule;

typedef struct ConfigAccessRule {
        /* users: names or numeric ids as written ("*" is not kept here but
         * sets all_users); uids[i] is user_names[i] resolved. */
        char **user_names;
        uid_t *uids;
        ConfigMark *user_marks;
        size_t n_users;
        bool all_users;
        /* groups: the same for group names; gids[i] resolved. */
        char **group_names;
        gid_t *gids;
        ConfigMark *group_marks;
        size_t n_groups;
        /* Topic filters (valid, topic_filter_check) granted per operation. */
        char **publish;
        size_t n_publish;
        char **subscribe;
        size_t n_subscribe;
        char **request;
        size_t n_request;
        bool admin;
} ConfigAccessRule;

typedef struct Config {
        char *path;                 /* file it came from; NULL for built-in defaults */
        ConfigListen *listen;       /* n_listen == 0: the command line / default path */
        size_t n_listen;
        ConfigLimits limits;
        ConfigTopicRule *topics;    /* first match wins */
        size_t n_topics;
        ConfigAccessRule *access;
        size_t n_access;
        int log_level;              /* syslog level, default LOG_NOTICE */
        ConfigLogTarget log_target; /* default LOG_TARGET_AUTO */
        uint32_t stats_interval_s;  /* $SYS statistics every N s, 0 = off (default) */
} Config;

/* The built-in defaults (no listen entries, no rules). 0 or -ENOMEM. */
int config_new_default(Config **ret);

/*
 * Reads, parses and validates the file at @path, then resolves user and
 * group names (config_resolve_ids). On success returns 0 and *ret (owned by
 * the caller). On failure returns a negative errno, leaves *ret untouched
 * and sets *ret_error (if not NULL) to a malloc'd message, or NULL when even
 * that allocation failed:
 *   -ENOENT, -EACCES, ... "FILE: cannot open: No such file or directory"
 *   -EFBIG   "FILE: cannot read: larger than 16 MiB"
 *   -EINVAL  "FILE:LINE:COLUMN: KEY: message" (syntax, schema, values, names)
 *   -ENOMEM  out of memory
 * An empty file (or one with only comments) is valid: all defaults.
 */
int config_load(const char *path, Config **ret, char **ret_error);

/* The same for @len bytes at @buf; @name is used in messages and kept as
 * Config.path. For tests, fuzzing and --check-config on stdin. */
int config_load_string(const char *name, const void *buf, size_t len, Config **ret,
                       char **ret_error);

/*
 * Resolves every user and group name in @c to its id (getpwnam_r /
 * getgrnam_r; numeric names are ids as they are, existing or not). Either
 * every name resolves and the ids are replaced, or @c is left unchanged and
 * a negative errno returned with *ret_error as in config_load: -EINVAL for an
 * unknown name, another errno when the lookup itself failed. config_load
 * calls it; call it again to pick up changed user databases.
 */
int config_resolve_ids(Config *c, char **ret_error);

/* Frees @c and everything it owns; accepts NULL; returns NULL. */
Config *config_free(Config *c);

/* The first topic rule whose pattern matches topic name @topic (@len bytes),
 * or NULL (then no rule restricts the topic). Borrowed from @c. */
const ConfigTopicRule *config_topic_rule(const Config *c, const char *topic, size_t len);

/* "error", "warning", "notice", "info", "debug" (the names the file uses). */
const char *config_log_level_name(int level);
