/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker.h"
#include "listener.h"
#include "protocol.h"
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
        };
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        Broker *b = userdata;

        if (sig == SIGHUP) {
                log_notice("SIGHUP received; this version has no configuration to reload, ignoring");
                return;
        }
        log_notice("Received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        b->stopping = true;
        event_base_loopbreak(b->base);
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

int broker_new(Broker **ret, BrokerConfig *cfg) {
        Broker *b;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->config = *cfg;
        *cfg = (BrokerConfig){ 0 };
        b->limits = (WireLimits){
                .max_payload = b->config.max_payload,
                .max_topic_len = b->config.max_topic_len,
                .max_fds = b->config.max_fds_per_msg,
        };
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
        b->ev_sigterm = evsignal_new(b->base, SIGTERM, on_signal, b);
        b->ev_sigint = evsignal_new(b->base, SIGINT, on_signal, b);
        b->ev_sighup = evsignal_new(b->base, SIGHUP, on_signal, b);
        if (!b->ev_sigterm || !b->ev_sigint || !b->ev_sighup || evsignal_add(b->ev_sigterm, NULL) < 0 ||
            evsignal_add(b->ev_sigint, NULL) < 0 || evsignal_add(b->ev_sighup, NULL) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        r = listener_new(&b->listener, b, b->config.socket_path, b->config.socket_mode);
        if (r < 0)
                goto fail;
        *ret = b;
        return 0;
fail:
        broker_free(b);
        return r;
}

Broker *broker_free(Broker *b) {
        if (!b)
                return NULL;
        while (b->conns)
                broker_drop_connection(b, b->conns, NULL);
        b->listener = listener_free(b->listener);
        if (b->ev_sigterm)
                event_free(b->ev_sigterm);
        if (b->ev_sigint)
                event_free(b->ev_sigint);
        if (b->ev_sighup)
                event_free(b->ev_sighup);
        router_free(b->router);
        if (b->base)
                event_base_free(b->base);
        free(b->rbuf);
        free(b->config.socket_path);
        free(b);
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

int broker_run(Broker *b) {
        Connection *c;

        log_notice("ipcd %s listening on %s", PACKAGE_VERSION, listener_path(b->listener));
        while (!b->stopping) {
                if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
                        return log_error_errno(EIO, "Event loop failed");
        }
        /* Stop taking clients, then give each queue one last chance. */
        b->listener = listener_free(b->listener);
        for (c = b->conns; c; c = c->next)
                if (c->out_count > 0)
                        broker_schedule_flush(b, c);
        broker_flush_pending(b);
        return 0;
}

/* Appends @s to @buf as a JSON string. */
static void json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\')
                        fprintf(f, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(f, "\\u%04x", ch);
                else
                        fputc(ch, f);
        }
        fputc('"', f);
}

char *broker_status_json(Broker *b, size_t *ret_len) {
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
        json_string(f, b->listener ? listener_path(b->listener) : "");
        fprintf(f,
                ",\"clients\":%zu,\"topics\":%zu,\"subscriptions\":%zu,\"groups\":%zu"
                ",\"retained\":%zu,\"retained_bytes\":%zu"
                ",\"messages_in\":%llu,\"messages_out\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu"
                ",\"drops\":%llu,\"errors\":%llu,\"connections_total\":%llu"
                ",\"connections_refused\":%llu,\"fds_held\":%zu,\"fd_budget\":%zu"
                ",\"queued_bytes\":%zu,\"queued_fds\":%zu,\"internal_errors\":%llu}",
                b->n_conns, router_n_topics(b->router), router_n_subscriptions(b->router),
                router_n_groups(b->router), b->retained_count, b->retained_bytes,
                (unsigned long long)b->stats.msgs_in, (unsigned long long)b->stats.msgs_out,
                (unsigned long long)b->stats.bytes_in, (unsigned long long)b->stats.bytes_out,
                (unsigned long long)b->stats.drops, (unsigned long long)b->stats.errors,
                (unsigned long long)b->stats.connections_total,
                (unsigned long long)b->stats.connections_refused, b->held_fds, b->fd_budget,
                queued_bytes, queued_fds, (unsigned long long)b->stats.internal_errors);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        *ret_len = len;
        return buf;
}
