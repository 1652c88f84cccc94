/* SPDX-License-Identifier: MIT */
/*
 * The broker: owns the event loop, the listener, the router, every
 * connection and the statistics; handles signals and shutdown. One process,
 * one thread, one libevent loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "conf.h"
#include "connection.h"
#include "router.h"
#include "wire.h"

struct event_base;
struct event;
typedef struct Listener Listener;

typedef struct BrokerConfig {
        char *socket_path;         /* owned */
        mode_t socket_mode;
        uint32_t max_payload;      /* inline payload bytes */
        uint16_t max_topic_len;
        uint32_t max_subscriptions; /* per connection */
        size_t out_queue_bytes;    /* per connection */
        uint32_t queue_fds;        /* fds queued toward one connection */
        uint32_t queue_messages;   /* deliveries queued toward one connection */
        size_t user_queue_bytes;   /* all connections of one uid */
        uint32_t user_fds;
        uint32_t max_connections_per_user;
        OverflowPolicy overflow;   /* where no topic rule says otherwise */
        uint32_t retained_max_messages;
        size_t retained_max_bytes;
        uint8_t max_fds_per_msg;
        uint64_t max_bulk_size;
        size_t max_topics;
        size_t max_connections;
        uint32_t hello_timeout_ms;    /* to complete the handshake */
        uint32_t shutdown_timeout_ms; /* to drain the queues on SIGTERM */
} BrokerConfig;

/* Fills @cfg with the built-in defaults (socket_path NULL). */
void broker_config_defaults(BrokerConfig *cfg);

/* Settings given on the command line: they win over the file, at start and
 * at every reload. */
enum {
        BROKER_SET_SOCKET_MODE = 1u << 0,
        BROKER_SET_QUEUE_BYTES = 1u << 1,
        BROKER_SET_MAX_CONNECTIONS = 1u << 2,
        BROKER_SET_OVERFLOW = 1u << 3,
        BROKER_SET_MAX_FDS = 1u << 4,
        BROKER_SET_MAX_BULK = 1u << 5,
};

typedef struct BrokerOptions {
        const char *config_path; /* the file to load, and to reload */
        bool config_explicit;    /* given by the user: it must exist */
        const char *socket_path; /* --socket, or NULL */
        BrokerConfig cli;        /* values of the BROKER_SET_* bits in cli_set */
        uint32_t cli_set;
        int log_level_cli;       /* -v/-q, or -1 */
} BrokerOptions;

typedef struct BrokerStats {
        uint64_t msgs_in;
        uint64_t msgs_out;
        uint64_t bytes_in;
        uint64_t bytes_out;
        uint64_t drops;
        uint64_t errors;          /* ERROR frames sent */
        uint64_t connections_total;
        uint64_t connections_refused;
        uint64_t handshake_timeouts; /* closed for no HELLO in time */
        uint64_t internal_errors;  /* bugs caught by a consistency check */
        uint64_t requests, replies, request_timeouts, late_replies, no_responders;
} BrokerStats;

/* Size of the shared receive buffer: one recvmsg takes up to this much. */
#define BROKER_RBUF_SIZE (256 * 1024)

struct Broker {
        struct event_base *base;
        BrokerConfig config;  /* in effect: the file, then the command line */
        Config *conf;         /* the file as loaded (or the built-in defaults) */
        char *conf_path;
        bool conf_explicit;
        struct timespec conf_loaded; /* CLOCK_REALTIME */
        uint32_t conf_gen;    /* counts loads: cached topic rules are stale */
        BrokerConfig cli;
        uint32_t cli_set;
        int log_level_cli;
        uid_t owner_uid;      /* may do everything, like root */
        WireLimits limits;
        Router *router;
        Router *services;     /* responder subscriptions: where REQUESTs go */
        struct Pending *pending_pool;
        size_t n_pending;
        uint64_t next_request_id;
        uint32_t rr_requests;
        size_t n_monitors;    /* subscriptions that see $SYS/monitor/... */
        uint32_t *rcpt;       /* scratch: recipients of what is being routed */
        size_t n_rcpt, cap_rcpt;
        Subscription **cands; /* scratch: a request's candidate responders */
        size_t n_cands, cap_cands;
        Listener **listeners;
        size_t n_listeners;
        struct event *ev_watchdog;
        struct event *ev_trim;  /* idle output rings, each second */
        struct event *ev_stats;
        uint64_t reloads, reload_failures;
        Connection *conns;
        size_t n_conns;
        uint32_t next_id;
        Connection *flush_list;
        UserAcct *users;
        struct event *ev_sigterm, *ev_sigint, *ev_sighup;
        struct timespec started;
        BrokerStats stats;
        uint8_t *rbuf;
        size_t held_fds;  /* fds held in message bodies */
        size_t retained_count, retained_bytes;
        size_t fd_budget; /* at most this many: half of RLIMIT_NOFILE */
        bool stopping;
        bool stop_now;    /* a second signal: no more draining */
};

/* Loads the configuration, then listens: on the sockets systemd passed,
 * else --socket, else the file's listen entries, else the default path.
 * Setup errors are logged; returns 0 or a negative errno. */
int broker_new(Broker **ret, const BrokerOptions *o);

/* Re-reads the configuration file and applies it to everything, existing
 * connections included. On an error the running configuration stays, and
 * *ret_error (when not NULL) says why, malloc'd. Returns 0 or a negative
 * errno. */
int broker_reload(Broker *b, char **ret_error);

/* The topic rule for @t (named @name), cached per topic until a reload. */
const ConfigTopicRule *broker_topic_rule(Broker *b, RouterTopic *t, const char *name, size_t len);
Broker *broker_free(Broker *b);

/* Runs the loop until SIGTERM/SIGINT; then flushes what it can, closes every
 * connection and removes the socket. Returns 0 or a negative errno. */
int broker_run(Broker *b);

/* The accounting of @uid's connections, created on first use (NULL when
 * out of memory); put releases a connection's hold on it. */
UserAcct *broker_user_get(Broker *b, uid_t uid);
void broker_user_put(Broker *b, UserAcct *u);

/* Called by the listener with an accepted socket (ownership passes). */
void broker_accept(Broker *b, int fd, pid_t pid, uid_t uid, gid_t gid);

/* Puts @c on the list written at the end of this loop iteration. */
void broker_schedule_flush(Broker *b, Connection *c);

/* Writes the queue of every connection scheduled since the last call; drops
 * those whose socket is dead (or that had a fatal error). */
void broker_flush_pending(Broker *b);

/* Closes and frees @c now, with a log line saying why (@why may be NULL). */
void broker_drop_connection(Broker *b, Connection *c, const char *why);

/* The JSON documents of the ADMIN commands status (with the per-client
 * and per-topic tables when @tables), clients and topics (topics and
 * subscriptions that @filter can match), malloc'd. */
char *broker_status_json(Broker *b, bool tables, size_t *ret_len);
char *broker_clients_json(Broker *b, size_t *ret_len);
char *broker_topics_json(Broker *b, const char *filter, size_t filter_len, size_t *ret_len);

/* Subscription flag of the broker's own (above the wire's): it watches
 * $SYS/monitor/... */
#define SUB_F_MONITOR (1u << 31)

/* The router a subscription lives in: responders serve requests apart. */
static inline Router *broker_router_of(Broker *b, const Subscription *s) {
        return (s->flags & WIRE_SUB_F_RESPONDER) ? b->services : b->router;
}

/* Writes @len bytes of @s (valid UTF-8) to @f as a JSON string. */
void broker_json_string_n(FILE *f, const char *s, size_t len);

/* The connection with client id @id, or NULL. */
Connection *broker_find_connection(Broker *b, uint32_t id);
