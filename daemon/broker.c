/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"
#include "broker.h"
#include "listener.h"
#include "protocol.h"
#include "request.h"
#include "sd.h"
#include "log.h"
#include "util.h"

void broker_config_defaults(BrokerConfig *cfg) {
        *cfg = (BrokerConfig){
                .socket_mode = 0600,
                .max_payload = WIRE_DEFAULT_MAX_PAYLOAD,
                .max_topic_len = WIRE_DEFAULT_MAX_TOPIC,
                .max_subscriptions = 1024,
                .out_queue_bytes = 8u << 20,
                .queue_fds = 256,
                .queue_messages = 65536,
                .user_queue_bytes = 64u << 20,
                .user_fds = 1024,
                .max_connections_per_user = 1024,
                .overflow = OVERFLOW_DROP_NEW,
                .retained_max_messages = 10000,
                .retained_max_bytes = 64u << 20,
                .max_fds_per_msg = WIRE_DEFAULT_MAX_FDS,
                .max_bulk_size = WIRE_DEFAULT_MAX_BULK,
                .max_topics = 65536,
                .max_connections = 16384,
                .hello_timeout_ms = 10000,
                .shutdown_timeout_ms = 5000,
        };
}

static char *status_json(Broker *b, bool tables, size_t *ret_len);
static int stats_timer_update(Broker *b);

/* The settings in effect: the file's, then what the command line says. */
static void settings_compute(Broker *b) {
        const ConfigLimits *l = &b->conf->limits;
        BrokerConfig *s = &b->config;
        char *path = s->socket_path;

        broker_config_defaults(s);
        s->socket_path = path;
        s->max_payload = l->max_payload;
        s->max_topic_len = (uint16_t)l->max_topic_length;
        s->max_subscriptions = l->max_subscriptions;
        s->out_queue_bytes = (size_t)l->queue_bytes;
        s->queue_fds = l->queue_fds;
        s->queue_messages = l->queue_messages;
        s->user_queue_bytes = (size_t)l->user_queue_bytes;
        s->user_fds = l->user_fds;
        s->max_connections_per_user = l->max_connections_per_user;
        s->retained_max_messages = l->retained_max_messages;
        s->retained_max_bytes = (size_t)l->retained_max_bytes;
        s->max_fds_per_msg = (uint8_t)l->max_fds_per_message;
        s->max_bulk_size = l->max_bulk_size;
        s->max_topics = l->max_topics;
        s->max_connections = l->max_connections;
        s->hello_timeout_ms = (uint32_t)l->hello_timeout_ms;
        s->shutdown_timeout_ms = (uint32_t)l->shutdown_timeout_ms;

        if (b->cli_set & BROKER_SET_SOCKET_MODE)
                s->socket_mode = b->cli.socket_mode;
        if (b->cli_set & BROKER_SET_QUEUE_BYTES)
                s->out_queue_bytes = b->cli.out_queue_bytes;
        if (b->cli_set & BROKER_SET_MAX_CONNECTIONS)
                s->max_connections = b->cli.max_connections;
        if (b->cli_set & BROKER_SET_OVERFLOW)
                s->overflow = b->cli.overflow;
        if (b->cli_set & BROKER_SET_MAX_FDS)
                s->max_fds_per_msg = b->cli.max_fds_per_msg;
        if (b->cli_set & BROKER_SET_MAX_BULK)
                s->max_bulk_size = b->cli.max_bulk_size;

        b->limits = (WireLimits){
                .max_payload = s->max_payload,
                .max_topic_len = s->max_topic_len,
                .max_fds = s->max_fds_per_msg,
        };
        log_set_max_level(b->log_level_cli >= 0 ? b->log_level_cli : b->conf->log_level);
        log_set_journal(b->conf->log_target == LOG_TARGET_JOURNAL ||
                        (b->conf->log_target == LOG_TARGET_AUTO && systemd_stderr_is_journal()));
}

/* Loads the file: a missing file at the default path means the built-in
 * defaults; one the user named must exist. */
static int conf_read(Broker *b, Config **ret, char **ret_error) {
        struct stat st;

        *ret_error = NULL;
        if (!b->conf_explicit && stat(b->conf_path, &st) < 0 && errno == ENOENT)
                return config_new_default(ret);
        return config_load(b->conf_path, ret, ret_error);
}

/* Recomputes what each subscription's access rules let it read. */
static void subscriptions_reauthorize(Broker *b) {
        Connection *c;
        size_t i;

        for (c = b->conns; c; c = c->next)
                for (i = 0; i < c->n_subs; i++)
                        protocol_authorize_subscription(c, c->subs[i]);
}

int broker_reload(Broker *b, char **ret_error) {
        char *error = NULL, status[128];
        Config *n = NULL;
        int r;

        systemd_notify_reloading("Reloading configuration");
        r = conf_read(b, &n, &error);
        if (r < 0) {
                b->reload_failures++;
                log_error("Configuration not reloaded, keeping the running one: %s",
                          error ? error : strerror(-r));
                systemd_notify_ready("Running (last reload failed)");
                if (ret_error)
                        *ret_error = error ? error : strdup(strerror(-r));
                else
                        free(error);
                return r;
        }
        config_free(b->conf);
        b->conf = n;
        b->conf_gen++;
        b->reloads++;
        clock_gettime(CLOCK_REALTIME, &b->conf_loaded);
        settings_compute(b);
        subscriptions_reauthorize(b);
        if (stats_timer_update(b) < 0)
                log_warning("Failed to rearm the statistics timer, ignoring");
        log_notice("Configuration reloaded from %s", b->conf->path ? b->conf->path : "built-in defaults");
        snprintf(status, sizeof(status), "Running: %zu clients", b->n_conns);
        systemd_notify_ready(status);
        return 0;
}

const ConfigTopicRule *broker_topic_rule(Broker *b, RouterTopic *t, const char *name, size_t len) {
        if (t->rule_gen != b->conf_gen + 1) {
                t->rule = config_topic_rule(b->conf, name, len);
                t->rule_gen = b->conf_gen + 1;
        }
        return t->rule;
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        Broker *b = userdata;

        if (sig == SIGHUP) {
                log_notice("SIGHUP received, reloading %s", b->conf_path);
                broker_reload(b, NULL);
                return;
        }
        if (b->stopping) {
                log_notice("Received %s again, exiting now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                b->stop_now = true;
        } else
                log_notice("Received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        b->stopping = true;
        event_base_loopbreak(b->base);
}

/* Each second: output rings that stayed empty go. */
static void on_trim(evutil_socket_t fd, short what, void *userdata) {
        Broker *b = userdata;
        Connection *c;

        for (c = b->conns; c; c = c->next)
                connection_trim(c);
}

static void on_watchdog(evutil_socket_t fd, short what, void *userdata) {
        systemd_notify_watchdog();
}

/* $SYS/broker/stats: the status counters, retained, every stats_interval. */
static void on_stats(evutil_socket_t fd, short what, void *userdata) {
        Broker *b = userdata;
        size_t len = 0;
        char *json = status_json(b, false, &len);
        int r;

        if (!json)
                return;
        r = protocol_publish_internal(b, "$SYS/broker/stats", 0, json, len, true);
        if (r < 0)
                log_debug_errno(r, "Failed to publish $SYS/broker/stats: %m");
        free(json);
        broker_flush_pending(b);
}

/* (Re)arms the statistics timer for the configuration's interval. */
static int stats_timer_update(Broker *b) {
        struct timeval tv = { .tv_sec = (time_t)b->conf->stats_interval_s };

        if (b->ev_stats)
                event_del(b->ev_stats);
        if (b->conf->stats_interval_s == 0)
                return 0;
        if (!b->ev_stats) {
                b->ev_stats = event_new(b->base, -1, EV_PERSIST, on_stats, b);
                if (!b->ev_stats)
                        return -ENOMEM;
        }
        return event_add(b->ev_stats, &tv) < 0 ? -ENOMEM : 0;
}

/* Raises the soft fd limit to the hard one: every client costs an fd, and
 * so does every fd a queued message carries. Returns the soft limit. */
static size_t raise_nofile(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1024;
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                        log_debug_errno(errno, "Failed to raise RLIMIT_NOFILE, ignoring: %m");
                        getrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 30) ? (1u << 30) : (size_t)rl.rlim_cur;
}

static int listener_add(Broker *b, Listener *l) {
        Listener **n = realloc(b->listeners, (b->n_listeners + 1) * sizeof(*n));
        if (!n) {
                listener_free(l);
                return -ENOMEM;
        }
        b->listeners = n;
        b->listeners[b->n_listeners++] = l;
        return 0;
}

/* Socket activation, else --socket, else the file's listen entries, else
 * the default path. */
static int listen_all(Broker *b, const BrokerOptions *o) {
        SystemdSocket *socks = NULL;
        char *error = NULL, path[4096];
        Listener *l;
        size_t i;
        int n, r = 0;

        n = systemd_listen_sockets(&socks, &error);
        if (n < 0) {
                log_error("Socket activation failed: %s", error ? error : strerror(-n));
                free(error);
                return n;
        }
        if (n > 0) {
                for (i = 0; i < (size_t)n; i++) {
                        r = listener_new_from_fd(&l, b, socks[i].fd);
                        socks[i].fd = -1; /* the listener owns it now, or closed it */
                        if (r < 0 || (r = listener_add(b, l)) < 0)
                                break;
                }
                systemd_sockets_free(socks, (size_t)n);
                return r < 0 ? r : 0;
        }
        if (o->socket_path) {
                r = listener_new(&l, b, o->socket_path, b->config.socket_mode, -1);
                return r < 0 ? r : listener_add(b, l);
        }
        for (i = 0; i < b->conf->n_listen; i++) {
                const ConfigListen *cl = &b->conf->listen[i];
                r = listener_new(&l, b, cl->path,
                                 b->cli_set & BROKER_SET_SOCKET_MODE ? b->config.socket_mode : cl->mode,
                                 cl->has_group ? (int64_t)cl->gid : -1);
                if (r < 0)
                        return r;
                r = listener_add(b, l);
                if (r < 0)
                        return r;
        }
        if (b->n_listeners > 0)
                return 0;
        r = wire_default_socket_path(path, sizeof(path));
        if (r < 0)
                return log_error_errno(r, "The default socket path is too long: %m");
        r = listener_new(&l, b, path, b->config.socket_mode, -1);
        if (r < 0)
                return r;
        return listener_add(b, l);
}

int broker_new(Broker **ret, const BrokerOptions *o) {
        char *error = NULL;
        Broker *b;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->conf_path = strdup(o->config_path);
        if (!b->conf_path) {
                free(b);
                return -ENOMEM;
        }
        b->conf_explicit = o->config_explicit;
        b->cli = o->cli;
        b->cli.socket_path = NULL;
        b->cli_set = o->cli_set;
        b->log_level_cli = o->log_level_cli;
        b->owner_uid = geteuid();
        broker_config_defaults(&b->config);
        r = conf_read(b, &b->conf, &error);
        if (r < 0) {
                log_error("%s", error ? error : strerror(-r));
                free(error);
                goto fail;
        }
        clock_gettime(CLOCK_REALTIME, &b->conf_loaded);
        settings_compute(b);
        b->next_id = 1;
        clock_gettime(CLOCK_MONOTONIC, &b->started);
        /* Half the fds for messages in flight, half for connections. */
        b->fd_budget = raise_nofile() / 2;

        b->rbuf = malloc(BROKER_RBUF_SIZE);
        b->base = event_base_new();
        if (!b->rbuf || !b->base) {
                r = -ENOMEM;
                goto fail;
        }
        r = router_new(&b->router);
        if (r < 0)
                goto fail;
        router_set_retained_free(b->router, protocol_retained_free);
        r = router_new(&b->services);
        if (r < 0)
                goto fail;
        b->ev_sigterm = evsignal_new(b->base, SIGTERM, on_signal, b);
        b->ev_sigint = evsignal_new(b->base, SIGINT, on_signal, b);
        b->ev_sighup = evsignal_new(b->base, SIGHUP, on_signal, b);
        if (!b->ev_sigterm || !b->ev_sigint || !b->ev_sighup || evsignal_add(b->ev_sigterm, NULL) < 0 ||
            evsignal_add(b->ev_sigint, NULL) < 0 || evsignal_add(b->ev_sighup, NULL) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        if (systemd_watchdog_interval_usec() > 0) {
                uint64_t us = systemd_watchdog_interval_usec();
                struct timeval tv = { .tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000) };
                b->ev_watchdog = event_new(b->base, -1, EV_PERSIST, on_watchdog, b);
                if (!b->ev_watchdog || event_add(b->ev_watchdog, &tv) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        b->ev_trim = event_new(b->base, -1, EV_PERSIST, on_trim, b);
        if (!b->ev_trim || event_add(b->ev_trim, &(const struct timeval){ .tv_sec = 1 }) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        r = stats_timer_update(b);
        if (r < 0)
                goto fail;
        r = listen_all(b, o);
        if (r < 0)
                goto fail;
        *ret = b;
        return 0;
fail:
        broker_free(b);
        return r;
}

Broker *broker_free(Broker *b) {
        size_t i;

        if (!b)
                return NULL;
        while (b->conns)
                broker_drop_connection(b, b->conns, NULL);
        for (i = 0; i < b->n_listeners; i++)
                listener_free(b->listeners[i]);
        free(b->listeners);
        if (b->ev_sigterm)
                event_free(b->ev_sigterm);
        if (b->ev_sigint)
                event_free(b->ev_sigint);
        if (b->ev_sighup)
                event_free(b->ev_sighup);
        if (b->ev_watchdog)
                event_free(b->ev_watchdog);
        if (b->ev_trim)
                event_free(b->ev_trim);
        if (b->ev_stats)
                event_free(b->ev_stats);
        router_free(b->router);
        router_free(b->services);
        pending_pool_free(b);
        free(b->cands);
        free(b->rcpt);
        if (b->base)
                event_base_free(b->base);
        free(b->rbuf);
        config_free(b->conf);
        free(b->conf_path);
        free(b);
        body_pool_trim();
        return NULL;
}

UserAcct *broker_user_get(Broker *b, uid_t uid) {
        UserAcct *u;

        for (u = b->users; u; u = u->next)
                if (u->uid == uid)
                        break;
        if (!u) {
                u = calloc(1, sizeof(*u));
                if (!u)
                        return NULL;
                u->uid = uid;
                u->next = b->users;
                b->users = u;
        }
        u->n_conns++;
        return u;
}

void broker_user_put(Broker *b, UserAcct *u) {
        UserAcct **p;

        if (--u->n_conns > 0)
                return;
        if (u->queued_bytes != 0 || u->queued_fds != 0) {
                /* The totals are kept incrementally: this is a bug. */
                log_error("Internal error: uid %d left with %zu bytes and %zu fds charged",
                          (int)u->uid, u->queued_bytes, u->queued_fds);
                b->stats.internal_errors++;
        }
        for (p = &b->users; *p; p = &(*p)->next)
                if (*p == u) {
                        *p = u->next;
                        break;
                }
        free(u);
}

/* Says why before closing: the client has not sent HELLO, but an ERROR frame
 * is the one thing every client understands. */
static void refuse(Broker *b, int fd, const char *text) {
        uint8_t frame[WIRE_HEADER_SIZE + WIRE_META_ERROR + 128], meta[WIRE_META_ERROR];
        size_t n;

        wire_error_meta_encode(meta, WIRE_E_LIMIT, 0);
        n = wire_frame_encode(frame, sizeof(frame), WIRE_ERROR, WIRE_F_FATAL, 0, 0, 0, meta,
                              sizeof(meta), NULL, 0, text, strlen(text));
        if (n > 0 && send(fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug_errno(errno, "Failed to tell a refused client why: %m");
        safe_close(fd);
        b->stats.connections_refused++;
}

void broker_accept(Broker *b, int fd, pid_t pid, uid_t uid, gid_t gid) {
        Connection *c;
        UserAcct *u;
        int r;

        if (b->n_conns >= b->config.max_connections) {
                refuse(b, fd, "the broker has reached its connection limit");
                log_warning("Connection limit (%zu) reached, refused a client (pid %d, uid %d)",
                            b->config.max_connections, (int)pid, (int)uid);
                return;
        }
        u = broker_user_get(b, uid);
        if (!u) {
                refuse(b, fd, "the broker is out of memory");
                return;
        }
        if (u->n_conns > b->config.max_connections_per_user) {
                broker_user_put(b, u);
                refuse(b, fd, "this user has reached its connection limit");
                log_warning("Connection limit per user (%u) reached, refused a client (pid %d, uid %d)",
                            b->config.max_connections_per_user, (int)pid, (int)uid);
                return;
        }
        r = connection_new(&c, b, fd, b->next_id, pid, uid, gid);
        if (r < 0) {
                broker_user_put(b, u);
                log_warning_errno(r, "Failed to set up a connection, closing it: %m");
                return;
        }
        c->user = u;
        /* Ids are never 0 and are not reused for a long time. */
        if (++b->next_id == 0)
                b->next_id = 1;
        c->next = b->conns;
        if (b->conns)
                b->conns->prev = c;
        b->conns = c;
        b->n_conns++;
        b->stats.connections_total++;
        log_debug("client %u connected (pid %d, uid %d, gid %d)", c->id, (int)pid, (int)uid,
                  (int)gid);
}

void broker_drop_connection(Broker *b, Connection *c, const char *why) {
        if (why)
                log_info("client %u (pid %d, uid %d, '%s') dropped: %s", c->id, (int)c->pid,
                         (int)c->uid, c->name, why);
        else
                log_debug("client %u disconnected", c->id);
        if (c->prev)
                c->prev->next = c->next;
        else
                b->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        b->n_conns--;
        connection_free(c);
}

void broker_schedule_flush(Broker *b, Connection *c) {
        if (c->in_flush_list)
                return;
        c->in_flush_list = true;
        c->flush_next = b->flush_list;
        b->flush_list = c;
}

void broker_flush_pending(Broker *b) {
        while (b->flush_list) {
                Connection *c = b->flush_list;
                int r;

                b->flush_list = c->flush_next;
                c->flush_next = NULL;
                c->in_flush_list = false;
                r = connection_flush(c);
                if (r < 0)
                        broker_drop_connection(b, c, r == -ECONNABORTED ? NULL : "write failed");
        }
}

/*
 * Graceful shutdown: no new clients, nothing more read; every client gets
 * what is queued for it, then GOODBYE, and is closed once that is written.
 * The loop runs until every connection is gone, shutdown_timeout has
 * passed (each connection's linger timer), or a second signal came.
 */
static int broker_drain(Broker *b) {
        uint32_t timeout = b->config.shutdown_timeout_ms;
        size_t i, n = b->n_conns;
        Connection *c, *next;
        struct timespec t0, t1;
        char status[128];
        long long ms;

        snprintf(status, sizeof(status), "Shutting down: draining %zu clients", n);
        systemd_notify_stopping(status);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (i = 0; i < b->n_listeners; i++)
                listener_free(b->listeners[i]);
        b->n_listeners = 0;
        for (c = b->conns; c; c = next) {
                next = c->next;
                if (connection_goodbye(c, "the broker is shutting down", timeout) < 0)
                        broker_drop_connection(b, c, NULL);
        }
        broker_flush_pending(b);
        while (b->n_conns > 0 && timeout > 0 && !b->stop_now)
                if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
                        return log_error_errno(EIO, "Event loop failed");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (b->n_conns > 0)
                log_notice("Shut down after %lld ms: %zu of %zu clients had not read everything",
                           ms, b->n_conns, n);
        else if (n > 0)
                log_info("Shut down after %lld ms: every client had its last messages", ms);
        return 0;
}

int broker_run(Broker *b) {
        char status[256];
        size_t i;

        for (i = 0; i < b->n_listeners; i++)
                log_notice("ipcd %s listening on %s", PACKAGE_VERSION, listener_path(b->listeners[i]));
        snprintf(status, sizeof(status), "Listening on %s", listener_path(b->listeners[0]));
        systemd_notify_ready(status);
        while (!b->stopping) {
                if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
                        return log_error_errno(EIO, "Event loop failed");
        }
        return broker_drain(b);
}

void broker_json_string_n(FILE *f, const char *s, size_t len) {
        size_t i;

        fputc('"', f);
        for (i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch == '"' || ch == '\\')
                        fprintf(f, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(f, "\\u%04x", ch);
                else
                        fputc(ch, f);
        }
        fputc('"', f);
}

static void json_string(FILE *f, const char *s) {
        broker_json_string_n(f, s, strlen(s));
}

/* Rows of the per-client and per-topic tables in status (the clients and
 * topics commands give them all). */
#define STATUS_MAX_ROWS 1000

static char *memstream_done(FILE *f, char **buf, size_t *len, size_t *ret_len) {
        if (fclose(f) != 0) {
                free(*buf);
                return NULL;
        }
        *ret_len = *len;
        return *buf;
}

/* The account name of @uid, or NULL. */
static void json_user(FILE *f, uid_t uid) {
        char pwbuf[1024];
        struct passwd pw, *res = NULL;
        if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
                json_string(f, res->pw_name);
        else
                fprintf(f, "null");
}

/* A JSON array of the connections, at most @max; with @trunc_key, then
 * ",<trunc_key>":bool after the array. */
static void json_clients(Broker *b, FILE *f, size_t max, const char *trunc_key) {
        size_t n = 0;
        Connection *c;

        fputc('[', f);
        for (c = b->conns; c && n < max; c = c->next, n++) {
                fprintf(f, "%s{\"id\":%u,\"name\":", n ? "," : "", c->id);
                json_string(f, c->name);
                fprintf(f, ",\"pid\":%d,\"uid\":%u,\"gid\":%u,\"user\":", (int)c->pid,
                        (unsigned)c->uid, (unsigned)c->gid);
                json_user(f, c->uid);
                fprintf(f, ",\"command\":");
                json_string(f, c->comm);
                fprintf(f,
                        ",\"subscriptions\":%zu,\"messages_in\":%llu,\"messages_out\":%llu"
                        ",\"bytes_in\":%llu,\"bytes_out\":%llu,\"drops\":%llu,\"errors\":%llu"
                        ",\"queued_bytes\":%zu,\"queued_messages\":%zu,\"queued_fds\":%zu}",
                        c->n_subs, (unsigned long long)c->stats.msgs_in,
                        (unsigned long long)c->stats.msgs_out, (unsigned long long)c->stats.bytes_in,
                        (unsigned long long)c->stats.bytes_out, (unsigned long long)c->stats.drops,
                        (unsigned long long)c->stats.errors, c->out_bytes, c->out_msgs, c->out_fds);
        }
        fputc(']', f);
        if (trunc_key)
                fprintf(f, ",\"%s\":%s", trunc_key, c ? "true" : "false");
}

typedef struct TopicRows {
        FILE *f;
        size_t n, max;
        bool truncated;
} TopicRows;

static void json_topic(const char *name, size_t len, RouterTopic *t, void *userdata) {
        TopicRows *w = userdata;
        char *s;

        if (w->n >= w->max) {
                w->truncated = true;
                return;
        }
        s = strndup(name, len);
        if (!s)
                return;
        fprintf(w->f, "%s{\"topic\":", w->n ? "," : "");
        json_string(w->f, s);
        free(s);
        fprintf(w->f, ",\"published\":%llu,\"seq\":%llu,\"dropped\":%llu,\"retained\":%s}",
                (unsigned long long)t->n_published, (unsigned long long)t->seq,
                (unsigned long long)t->n_dropped, t->retained ? "true" : "false");
        w->n++;
}

static void json_topics(Broker *b, FILE *f, const char *filter, size_t len, size_t max,
                        const char *trunc_key) {
        TopicRows w = { .f = f, .max = max };

        fputc('[', f);
        router_match_topics(b->router, filter, len, json_topic, &w);
        fputc(']', f);
        if (trunc_key)
                fprintf(f, ",\"%s\":%s", trunc_key, w.truncated ? "true" : "false");
}

char *broker_status_json(Broker *b, bool tables, size_t *ret_len) {
        return status_json(b, tables, ret_len);
}

static char *status_json(Broker *b, bool tables, size_t *ret_len) {
        struct timespec now;
        char *buf = NULL;
        size_t len = 0;
        FILE *f;

        size_t queued_bytes = 0, queued_fds = 0;
        UserAcct *u;

        for (u = b->users; u; u = u->next) {
                queued_bytes += u->queued_bytes;
                queued_fds += u->queued_fds;
        }
        f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        clock_gettime(CLOCK_MONOTONIC, &now);
        fprintf(f, "{\"version\":");
        json_string(f, PACKAGE_VERSION);
        fprintf(f, ",\"pid\":%d,\"uptime_sec\":%lld,\"socket\":", (int)getpid(),
                (long long)(now.tv_sec - b->started.tv_sec));
        json_string(f, b->n_listeners > 0 ? listener_path(b->listeners[0]) : "");
        fprintf(f, ",\"config\":");
        json_string(f, b->conf->path ? b->conf->path : "");
        fprintf(f, ",\"config_loaded\":%lld,\"reloads\":%llu,\"reload_failures\":%llu",
                (long long)b->conf_loaded.tv_sec, (unsigned long long)b->reloads,
                (unsigned long long)b->reload_failures);
        fprintf(f,
                ",\"clients\":%zu,\"topics\":%zu,\"subscriptions\":%zu,\"groups\":%zu"
                ",\"retained\":%zu,\"retained_bytes\":%zu"
                ",\"messages_in\":%llu,\"messages_out\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu"
                ",\"drops\":%llu,\"errors\":%llu,\"connections_total\":%llu"
                ",\"connections_refused\":%llu,\"handshake_timeouts\":%llu"
                ",\"fds_held\":%zu,\"fd_budget\":%zu"
                ",\"queued_bytes\":%zu,\"queued_fds\":%zu,\"internal_errors\":%llu"
                ",\"requests\":%llu,\"replies\":%llu,\"requests_pending\":%zu"
                ",\"request_timeouts\":%llu,\"late_replies\":%llu,\"no_responders\":%llu",
                b->n_conns, router_n_topics(b->router), router_n_subscriptions(b->router),
                router_n_groups(b->router), b->retained_count, b->retained_bytes,
                (unsigned long long)b->stats.msgs_in, (unsigned long long)b->stats.msgs_out,
                (unsigned long long)b->stats.bytes_in, (unsigned long long)b->stats.bytes_out,
                (unsigned long long)b->stats.drops, (unsigned long long)b->stats.errors,
                (unsigned long long)b->stats.connections_total,
                (unsigned long long)b->stats.connections_refused,
                (unsigned long long)b->stats.handshake_timeouts, b->held_fds, b->fd_budget,
                queued_bytes, queued_fds, (unsigned long long)b->stats.internal_errors,
                (unsigned long long)b->stats.requests, (unsigned long long)b->stats.replies,
                b->n_pending, (unsigned long long)b->stats.request_timeouts,
                (unsigned long long)b->stats.late_replies, (unsigned long long)b->stats.no_responders);
        if (tables) {
                fprintf(f, ",\"per_client\":");
                json_clients(b, f, STATUS_MAX_ROWS, "per_client_truncated");
                fprintf(f, ",\"per_topic\":");
                json_topics(b, f, "#", 1, STATUS_MAX_ROWS, "per_topic_truncated");
        }
        fputc('}', f);
        return memstream_done(f, &buf, &len, ret_len);
}

char *broker_clients_json(Broker *b, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fprintf(f, "{\"clients\":");
        json_clients(b, f, SIZE_MAX, NULL);
        fputc('}', f);
        return memstream_done(f, &buf, &len, ret_len);
}

typedef struct GroupWalk {
        FILE *f;
        bool first;
} GroupWalk;

static void json_group(const RouterGroup *g, void *userdata) {
        GroupWalk *w = userdata;
        fprintf(w->f, "%s{\"name\":", w->first ? "" : ",");
        json_string(w->f, router_group_name(g));
        fprintf(w->f, ",\"members\":%u}", router_group_size(g));
        w->first = false;
}

char *broker_topics_json(Broker *b, const char *filter, size_t filter_len, size_t *ret_len) {
        char *buf = NULL;
        size_t len = 0, i;
        bool first = true;
        Connection *c;
        GroupWalk gw;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fprintf(f, "{\"topics\":");
        json_topics(b, f, filter, filter_len, SIZE_MAX, NULL);
        fprintf(f, ",\"subscriptions\":[");
        for (c = b->conns; c; c = c->next)
                for (i = 0; i < c->n_subs; i++) {
                        static const char *const reach[] = { "none", "partial", "all" };
                        Subscription *s = c->subs[i];
                        size_t k;
                        if (!acl_filter_overlaps(s->filter, s->filter_len, filter, filter_len))
                                continue;
                        fprintf(f, "%s{\"client\":%u,\"id\":%u,\"filter\":", first ? "" : ",", c->id,
                                s->id);
                        json_string(f, s->filter);
                        fprintf(f, ",\"group\":");
                        if (s->group_name)
                                json_string(f, s->group_name);
                        else
                                fprintf(f, "null");
                        fprintf(f, ",\"types\":[");
                        for (k = 0; k < s->n_types; k++)
                                fprintf(f, "%s%u", k ? "," : "", s->types[k]);
                        fprintf(f, "],\"reach\":\"%s\",\"delivered\":%llu}",
                                reach[s->reach < 3 ? s->reach : 0], (unsigned long long)s->n_matched);
                        first = false;
                }
        fprintf(f, "],\"groups\":[");
        gw = (GroupWalk){ .f = f, .first = true };
        router_foreach_group(b->router, json_group, &gw);
        fprintf(f, "]}");
        return memstream_done(f, &buf, &len, ret_len);
}

Connection *broker_find_connection(Broker *b, uint32_t id) {
        Connection *c;
        for (c = b->conns; c; c = c->next)
                if (c->id == id)
                        return c;
        return NULL;
}
