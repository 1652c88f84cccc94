/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "broker.h"
#include "fuzz-env.h"
#include "fuzz.h"
#include "json.h"
#include "request.h"
#include "topicname.h"
#include "util.h"
#include "wire.h"

/* What the peers and their limits are allowed, for the broker harness to
 * reach every access and topic rule path. */
static const char rules_yaml[] =
        "limits:\n"
        "  max_connections_per_user: 2\n"
        "  max_subscriptions: 6\n"
        "  queue_messages: 16\n"
        "  max_fds_per_message: 4\n"
        "  queue_fds: 6\n"
        "  user_fds: 10\n"
        "  max_pending_requests: 3\n"
        "  max_topics: 32\n"
        "  retained_max_messages: 4\n"
        "  retained_max_bytes: 4KiB\n"
        "  request_timeout: 10m\n"
        "topics:\n"
        "  - pattern: \"t/ro/#\"\n"
        "    types: [1, 2]\n"
        "    retain: false\n"
        "  - pattern: \"t/small/#\"\n"
        "    max_payload: 16\n"
        "    max_fds: 1\n"
        "    overflow: drop-old\n"
        "  - pattern: \"t/blk/#\"\n"
        "    overflow: block\n"
        "  - pattern: \"t/dis/#\"\n"
        "    overflow: disconnect\n"
        "  - pattern: \"svc/ro/#\"\n"
        "    types: [7]\n"
        "    max_fds: 0\n"
        "access:\n"
        "  - users: [\"1001\"]\n"
        "    publish: [\"t/#\"]\n"
        "    subscribe: [\"t/+/a\", \"$SYS/#\"]\n"
        "    request: [\"svc/#\"]\n"
        "  - users: [\"1002\"]\n"
        "    publish: [\"svc/#\"]\n"
        "    subscribe: [\"#\"]\n"
        "    admin: true\n"
        "  - groups: [\"2000\"]\n"
        "    subscribe: [\"t/ro/#\", \"svc/#\"]\n"
        "    request: [\"#\"]\n"
        "  - users: [\"*\"]\n"
        "    publish: [\"pub/#\"]\n"
        "    subscribe: [\"pub/#\", \"svc/+\"]\n";

/* What a reload may find instead: everything tighter, other grants, the
 * statistics timer on; and a file that does not load. */
static const char rules_tight_yaml[] =
        "limits:\n"
        "  max_connections_per_user: 1\n"
        "  max_subscriptions: 2\n"
        "  queue_bytes: 4KiB\n"
        "  user_queue_bytes: 8KiB\n"
        "  queue_messages: 4\n"
        "  max_fds_per_message: 1\n"
        "  queue_fds: 2\n"
        "  user_fds: 3\n"
        "  max_payload: 64\n"
        "  bulk_threshold: 32\n"
        "  max_topic_length: 12\n"
        "  max_pending_requests: 1\n"
        "  max_topics: 4\n"
        "  retained_max_messages: 1\n"
        "  retained_max_bytes: 100\n"
        "topics:\n"
        "  - pattern: \"#\"\n"
        "    overflow: drop-old\n"
        "access:\n"
        "  - users: [\"1001\"]\n"
        "    subscribe: [\"t/#\"]\n"
        "    publish: [\"t/+\"]\n"
        "  - users: [\"1002\"]\n"
        "    subscribe: [\"$SYS/#\"]\n"
        "    admin: true\n"
        "stats_interval: 1s\n";

static const char rules_broken_yaml[] = "limits:\n  max_payload: [\n";

static char rules_path[128], none_path[128], socket_path[128];
static int rules_variant = -1;
static int fd_templates[_FUZZ_FD_MAX] = { -1, -1, -1, -1 };
static int pipe_write_end = -1;
static int log_level = 0;

struct FuzzTx {
        FuzzTx *next;
        size_t len, sent;
        size_t n_fds;
        int fds[WIRE_MAX_FDS_PER_SENDMSG];
        uint8_t data[];
};

static int memfd_template(bool sealed) {
        uint8_t bytes[FUZZ_MEMFD_SIZE];
        int fd = memfd_create("ipcd-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
        memset(bytes, 'm', sizeof(bytes));
        FUZZ_CHECK(write(fd, bytes, sizeof(bytes)) == (ssize_t)sizeof(bytes), "write: %s",
                   strerror(errno));
        if (sealed)
                FUZZ_CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0,
                           "F_ADD_SEALS: %s", strerror(errno));
        return fd;
}

void fuzz_env_init(void) {
        const char *dir = fuzz_tmpdir();
        int p[2];

        if (fd_templates[0] >= 0)
                return;
        signal(SIGPIPE, SIG_IGN);
        if (getenv("FUZZ_VERBOSE"))
                log_level = LOG_DEBUG;
        snprintf(rules_path, sizeof(rules_path), "%s/rules.yaml", dir);
        snprintf(none_path, sizeof(none_path), "%s/none.yaml", dir);
        snprintf(socket_path, sizeof(socket_path), "%s/ipcd.sock", dir);
        fuzz_env_config(0);

        fd_templates[FUZZ_FD_MEMFD_SEALED] = memfd_template(true);
        fd_templates[FUZZ_FD_MEMFD_UNSEALED] = memfd_template(false);
        fd_templates[FUZZ_FD_DEVNULL] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(fd_templates[FUZZ_FD_DEVNULL] >= 0 && pipe2(p, O_CLOEXEC) == 0, "open: %s",
                   strerror(errno));
        fd_templates[FUZZ_FD_PIPE] = p[0];
        pipe_write_end = p[1];
}

void fuzz_env_config(unsigned variant) {
        static const char *const texts[] = { rules_yaml, rules_tight_yaml, rules_broken_yaml };
        FILE *f;

        variant %= 3;
        if ((int)variant == rules_variant)
                return;
        f = fopen(rules_path, "w");
        FUZZ_CHECK(f && fputs(texts[variant], f) >= 0 && fclose(f) == 0, "cannot write %s", rules_path);
        rules_variant = (int)variant;
}

Broker *fuzz_broker_new(const FuzzBrokerOptions *o) {
        BrokerOptions bo = {
                .config_path = o->rules ? rules_path : none_path,
                .config_explicit = o->rules,
                .socket_path = socket_path,
                .log_level_cli = log_level,
        };
        Broker *b = NULL;
        int r;

        fuzz_env_config(0);
        broker_config_defaults(&bo.cli);
        if (o->overflow >= 0) {
                bo.cli.overflow = (OverflowPolicy)o->overflow;
                bo.cli_set |= BROKER_SET_OVERFLOW;
        }
        if (o->queue_bytes > 0) {
                bo.cli.out_queue_bytes = o->queue_bytes;
                bo.cli_set |= BROKER_SET_QUEUE_BYTES;
        }
        if (o->max_fds >= 0) {
                bo.cli.max_fds_per_msg = (uint8_t)o->max_fds;
                bo.cli_set |= BROKER_SET_MAX_FDS;
        }
        r = broker_new(&b, &bo);
        FUZZ_CHECK(r == 0, "broker_new: %s", strerror(-r));
        return b;
}

/* The output queues' totals are kept incrementally: recount them. */
static void check_accounting(Broker *b) {
        Connection *c;
        UserAcct *u;

        for (c = b->conns; c; c = c->next) {
                size_t bytes = 0, fds = 0, msgs = 0, i;
                for (i = 0; i < c->out_count; i++) {
                        const OutEntry *e = &c->out[(c->out_head + i) & (c->out_cap - 1)];
                        bytes += sizeof(OutEntry) + e->hdr_len + (e->body ? e->body->len : 0);
                        fds += e->body ? e->body->n_fds : 0;
                        msgs += e->droppable;
                }
                FUZZ_CHECK(c->out_bytes == bytes && c->out_fds == fds && c->out_msgs == msgs,
                           "client %u: queue charged %zu bytes, %zu fds, %zu messages; it holds %zu, %zu, %zu",
                           c->id, c->out_bytes, c->out_fds, c->out_msgs, bytes, fds, msgs);
                FUZZ_CHECK(c->user, "client %u without a user account", c->id);
        }
        for (u = b->users; u; u = u->next) {
                size_t bytes = 0, fds = 0, n = 0;
                for (c = b->conns; c; c = c->next)
                        if (c->user == u) {
                                bytes += c->out_bytes;
                                fds += c->out_fds;
                                n++;
                        }
                FUZZ_CHECK(u->queued_bytes == bytes && u->queued_fds == fds && u->n_conns == n,
                           "uid %u: charged %zu bytes, %zu fds, %u connections; its queues hold %zu, %zu, %zu",
                           (unsigned)u->uid, u->queued_bytes, u->queued_fds, u->n_conns, bytes, fds, n);
        }
}

void fuzz_broker_free(Broker *b) {
        check_accounting(b);
        while (b->conns)
                broker_drop_connection(b, b->conns, NULL);
        FUZZ_CHECK(b->n_conns == 0 && !b->users, "connections or user accounts left");
        FUZZ_CHECK(router_n_subscriptions(b->router) == 0 && router_n_subscriptions(b->services) == 0,
                   "subscriptions left without connections");
        FUZZ_CHECK(router_n_groups(b->router) == 0, "queue groups left without members");
        FUZZ_CHECK(b->n_pending == 0, "%zu requests pending without connections", b->n_pending);
        FUZZ_CHECK(b->n_monitors == 0, "%zu monitors left", b->n_monitors);
        FUZZ_CHECK(b->stats.internal_errors == 0, "the broker counted %llu internal errors",
                   (unsigned long long)b->stats.internal_errors);
        /* What is left are the retained messages: freeing them must bring
         * every count to 0. */
        b->router = router_free(b->router);
        FUZZ_CHECK(b->held_fds == 0, "%zu fds still counted as held", b->held_fds);
        FUZZ_CHECK(b->retained_count == 0 && b->retained_bytes == 0,
                   "%zu retained messages (%zu bytes) still counted", b->retained_count,
                   b->retained_bytes);
        broker_free(b);
}

/* ---- peers ---- */

void fuzz_peer_connect(FuzzPeer *p, Broker *b, uid_t uid, bool small_buf) {
        int sv[2];

        FUZZ_CHECK(p->fd < 0, "connecting a connected peer");
        *p = (FuzzPeer){ .fd = -1, .uid = uid, .used = true, .tracked = true, .next_corr = 1 };
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
                   "socketpair: %s", strerror(errno));
        if (small_buf) {
                int size = 4096;
                setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
        p->fd = sv[0];
        broker_accept(b, sv[1], getpid(), uid, uid == FUZZ_UID_GROUPED ? 2000 : (gid_t)uid);
}

static void tx_free(FuzzTx *t) {
        size_t i;
        for (i = 0; i < t->n_fds; i++)
                safe_close(t->fds[i]);
        free(t);
}

void fuzz_peer_close(FuzzPeer *p) {
        while (p->tx_head) {
                FuzzTx *t = p->tx_head;
                p->tx_head = t->next;
                tx_free(t);
        }
        p->tx_tail = NULL;
        p->fd = safe_close(p->fd);
        free(p->rx);
        *p = (FuzzPeer){ .fd = -1 };
}

/* Sends what it can of the queued data. Returns true when something went. */
static bool tx_flush(FuzzPeer *p) {
        bool moved = false;

        while (p->tx_head && p->fd >= 0) {
                FuzzTx *t = p->tx_head;
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
                } ctrl;
                struct iovec iov = { t->data + t->sent, t->len - t->sent };
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n;

                if (t->n_fds > 0) {
                        struct cmsghdr *cm;
                        memset(&ctrl, 0, sizeof(ctrl));
                        msg.msg_control = ctrl.buf;
                        msg.msg_controllen = CMSG_SPACE(sizeof(int) * t->n_fds);
                        cm = CMSG_FIRSTHDR(&msg);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int) * t->n_fds);
                        memcpy(CMSG_DATA(cm), t->fds, sizeof(int) * t->n_fds);
                }
                n = sendmsg(p->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                if (n < 0) {
                        /* The broker closed its end: nothing more goes. */
                        while (p->tx_head) {
                                t = p->tx_head;
                                p->tx_head = t->next;
                                tx_free(t);
                        }
                        p->tx_tail = NULL;
                        break;
                }
                moved = true;
                /* The fds went with the first byte: ours are copies. */
                while (t->n_fds > 0) {
                        t->n_fds--;
                        t->fds[t->n_fds] = safe_close(t->fds[t->n_fds]);
                }
                t->sent += (size_t)n;
                if (t->sent == t->len) {
                        p->tx_head = t->next;
                        if (!p->tx_head)
                                p->tx_tail = NULL;
                        tx_free(t);
                }
        }
        return moved;
}

void fuzz_peer_send(FuzzPeer *p, const uint8_t *buf, size_t len, const FuzzFdKind *kinds,
                    size_t n_fds) {
        FuzzTx *t;
        size_t i;

        if (p->fd < 0 || len == 0)
                return;
        if (n_fds > WIRE_MAX_FDS_PER_SENDMSG)
                n_fds = WIRE_MAX_FDS_PER_SENDMSG;
        t = malloc(sizeof(*t) + len);
        FUZZ_CHECK(t, "out of memory");
        t->next = NULL;
        t->len = len;
        t->sent = 0;
        t->n_fds = n_fds;
        for (i = 0; i < n_fds; i++) {
                t->fds[i] = fcntl(fd_templates[kinds[i] % _FUZZ_FD_MAX], F_DUPFD_CLOEXEC, 3);
                FUZZ_CHECK(t->fds[i] >= 0, "dup: %s", strerror(errno));
        }
        memcpy(t->data, buf, len);
        if (p->tx_tail)
                p->tx_tail->next = t;
        else
                p->tx_head = t;
        p->tx_tail = t;
        tx_flush(p);
}

uint64_t fuzz_peer_ask(FuzzPeer *p, const FuzzAsk *a) {
        uint64_t corr = p->next_corr++;

        if (!p->tracked)
                return corr;
        if (p->n_asks == FUZZ_PEER_ASKS) {
                /* Too much outstanding to keep track of: stop checking. */
                p->tracked = false;
                return corr;
        }
        p->asks[p->n_asks] = *a;
        p->asks[p->n_asks].corr = corr;
        p->n_asks++;
        return corr;
}

/* Takes the ask @corr of a frame of @kind (0: any kind) off the list into
 * *ret; false when there is none. (REPLY frames carry the broker's request
 * ids as corr, which may be any of ours.) */
static bool ask_take(FuzzPeer *p, uint64_t corr, uint8_t kind, FuzzAsk *ret) {
        size_t i;
        for (i = 0; i < p->n_asks; i++)
                if (p->asks[i].corr == corr && (kind == 0 || p->asks[i].kind == kind)) {
                        *ret = p->asks[i];
                        p->asks[i] = p->asks[--p->n_asks];
                        return true;
                }
        return false;
}

static bool sub_admits(const FuzzSub *s, uint32_t type) {
        size_t i;
        if (s->n_types == 0)
                return true;
        for (i = 0; i < s->n_types; i++)
                if (s->types[i] == type)
                        return true;
        return false;
}

static void check_json(const uint8_t *text, size_t len, const char *what) {
        char *copy = malloc(len + 1);
        Json v;
        int r;

        FUZZ_CHECK(copy, "out of memory");
        memcpy(copy, text, len);
        copy[len] = 0;
        r = json_parse(copy, len, &v);
        FUZZ_CHECK(r == 0 || r == -ENOMEM, "%s is not JSON (%d): %.*s", what, r, (int)len, text);
        if (r == 0)
                json_deinit(&v);
        free(copy);
}

/* A connection gets each message at most once through its ungrouped
 * subscriptions and once through each queue group, in the order of the
 * topic's sequence: numbers only grow (gaps are drops, or the messages of
 * other types or group members). */
static void check_seq(FuzzPeer *p, const uint8_t *topic, size_t len, const char *group, uint64_t seq) {
        char key[sizeof(p->seqs[0].key)];
        size_t i;
        int n = snprintf(key, sizeof(key), "%.*s\n%s", (int)len, (const char *)topic, group);

        if (n < 0 || (size_t)n >= sizeof(key))
                return;
        for (i = 0; i < p->n_seqs; i++)
                if (strcmp(p->seqs[i].key, key) == 0) {
                        FUZZ_CHECK(seq > p->seqs[i].seq,
                                   "message %llu on '%.*s'%s%s after message %llu", (unsigned long long)seq,
                                   (int)len, topic, *group ? " for group " : "", group,
                                   (unsigned long long)p->seqs[i].seq);
                        p->seqs[i].seq = seq;
                        return;
                }
        if (p->n_seqs < FUZZ_PEER_SEQS) {
                memcpy(p->seqs[p->n_seqs].key, key, (size_t)n + 1);
                p->seqs[p->n_seqs].seq = seq;
                p->n_seqs++;
        }
}

#define MONITOR_PREFIX "$SYS/monitor/"

/* One frame from the broker, complete: @f is h->size bytes. */
static void check_frame(FuzzPeer *p, const WireHeader *h, const uint8_t *f) {
        const uint8_t *meta = f + WIRE_HEADER_SIZE;
        const uint8_t *topic = meta + h->meta_len;
        const uint8_t *payload = topic + h->topic_len;
        uint32_t retained_sub = 0;
        FuzzAsk a;

        FUZZ_CHECK(!p->fatal, "a %s frame after a fatal ERROR or GOODBYE", wire_kind_name(h->kind));
        FUZZ_CHECK(h->n_fds <= p->fds_queued, "a %s frame with %u fds, %zu arrived before it",
                   wire_kind_name(h->kind), h->n_fds, p->fds_queued);
        p->fds_queued -= h->n_fds;
        FUZZ_CHECK(p->welcomed || h->kind == WIRE_WELCOME || h->kind == WIRE_ERROR,
                   "a %s frame before WELCOME", wire_kind_name(h->kind));
        p->frames++;

        switch (h->kind) {
        case WIRE_WELCOME: {
                WireWelcome w;
                FUZZ_CHECK(!p->welcomed, "a second WELCOME");
                FUZZ_CHECK(wire_welcome_decode(meta, &w), "a WELCOME the client library refuses");
                FUZZ_CHECK(w.max_fds <= WIRE_MAX_FDS_PER_SENDMSG && w.max_types_per_sub == WIRE_MAX_TYPES_PER_SUB,
                           "WELCOME limits");
                FUZZ_CHECK(fuzz_utf8_valid(payload, h->payload_len), "WELCOME version text");
                p->welcomed = true;
                p->client_id = w.client_id;
                if (p->tracked) {
                        FUZZ_CHECK(ask_take(p, h->corr, WIRE_HELLO, &a),
                                   "a WELCOME that answers no HELLO (corr %llu)",
                                   (unsigned long long)h->corr);
                }
                break;
        }
        case WIRE_ERROR: {
                uint32_t code = le32_read(meta), ref_kind = le32_read(meta + 4);
                FUZZ_CHECK(code > WIRE_E_OK && code < _WIRE_E_MAX, "ERROR code %u", code);
                FUZZ_CHECK(ref_kind <= UINT8_MAX, "ERROR ref_kind %u", ref_kind);
                FUZZ_CHECK(h->payload_len <= 511, "ERROR text of %u bytes", h->payload_len);
                FUZZ_CHECK(fuzz_utf8_valid(payload, h->payload_len), "ERROR %s text is not UTF-8: %.*s",
                           wire_error_name(code), (int)h->payload_len, payload);
                /* A client that sent nothing wrong is only ever cut off
                 * for what it did not read, at a limit, by an admin, or
                 * for a HELLO that was not handled in time (ref_kind 0:
                 * about no frame). */
                if ((h->flags & WIRE_F_FATAL) && p->tracked && !p->lax)
                        FUZZ_CHECK(code == WIRE_E_SLOW_CONSUMER || code == WIRE_E_KICKED ||
                                           code == WIRE_E_LIMIT || (code == WIRE_E_HANDSHAKE && ref_kind == 0),
                                   "a fatal ERROR %s for well-formed frames: %.*s", wire_error_name(code),
                                   (int)h->payload_len, payload);
                if (h->flags & WIRE_F_FATAL)
                        p->fatal = true;
                if (p->tracked && h->corr != 0)
                        (void)ask_take(p, h->corr, (uint8_t)ref_kind, &a);
                break;
        }
        case WIRE_ACK:
                FUZZ_CHECK(h->topic_len == 0 && h->payload_len == 0 && h->flags == 0, "ACK with contents");
                if (!p->tracked)
                        break;
                FUZZ_CHECK(ask_take(p, h->corr, 0, &a) && a.want_ack, "an ACK for corr %llu, which asked for none",
                           (unsigned long long)h->corr);
                if (a.kind == WIRE_SUBSCRIBE) {
                        p->subs[a.sub_id] = a.sub;
                        p->subs[a.sub_id].live = true;
                        retained_sub = a.sub_id;
                } else if (a.kind == WIRE_UNSUBSCRIBE)
                        p->subs[a.sub_id].live = false;
                break;
        case WIRE_PONG:
                if (p->tracked)
                        FUZZ_CHECK(ask_take(p, h->corr, WIRE_PING, &a),
                                   "a PONG for no PING (corr %llu, client %u)", (unsigned long long)h->corr,
                                   p->client_id);
                break;
        case WIRE_ADMIN_REPLY:
                FUZZ_CHECK(h->topic_len == 0, "ADMIN_REPLY with a topic");
                check_json(payload, h->payload_len, "ADMIN_REPLY");
                if (p->tracked)
                        FUZZ_CHECK(ask_take(p, h->corr, WIRE_ADMIN, &a),
                                   "an ADMIN_REPLY for no ADMIN");
                break;
        case WIRE_MESSAGE:
        case WIRE_REQUEST:
        case WIRE_REPLY: {
                WireDelivery d;
                size_t want_meta = h->kind == WIRE_MESSAGE ? WIRE_META_MESSAGE
                                   : h->kind == WIRE_REQUEST ? WIRE_META_REQUEST_IN
                                                             : WIRE_META_REPLY_IN;
                FUZZ_CHECK(h->meta_len == want_meta, "%s with %u bytes of meta", wire_kind_name(h->kind),
                           h->meta_len);
                FUZZ_CHECK(topic_name_check((const char *)topic, h->topic_len, UINT16_MAX) == TOPIC_OK,
                           "%s on an invalid topic '%.*s'", wire_kind_name(h->kind), (int)h->topic_len,
                           topic);
                wire_delivery_decode(meta, &d);
                if (h->flags & WIRE_F_BULK)
                        FUZZ_CHECK(h->payload_len == 0 && h->n_fds >= 1 && d.bulk_size <= FUZZ_MEMFD_SIZE,
                                   "a bulk %s with %u inline bytes, %u fds, bulk size %llu",
                                   wire_kind_name(h->kind), h->payload_len, h->n_fds,
                                   (unsigned long long)d.bulk_size);
                else
                        FUZZ_CHECK(d.bulk_size == 0, "bulk size %llu without F_BULK",
                                   (unsigned long long)d.bulk_size);
                if (h->kind == WIRE_REQUEST) {
                        if (p->n_req_ids == FUZZ_PEER_REQS) {
                                memmove(p->req_ids, p->req_ids + 1, sizeof(p->req_ids[0]) * (FUZZ_PEER_REQS - 1));
                                p->n_req_ids--;
                        }
                        p->req_ids[p->n_req_ids++] = h->corr;
                }
                if (h->kind == WIRE_REPLY) {
                        if (p->tracked)
                                FUZZ_CHECK(ask_take(p, h->corr, WIRE_REQUEST, &a),
                                           "a REPLY for no REQUEST");
                        break;
                }
                if (h->kind == WIRE_MESSAGE) {
                        FUZZ_CHECK(h->corr == 0, "MESSAGE with corr %llu", (unsigned long long)h->corr);
                        if (h->topic_len >= strlen(MONITOR_PREFIX) &&
                            memcmp(topic, MONITOR_PREFIX, strlen(MONITOR_PREFIX)) == 0)
                                check_json(payload, h->payload_len, "a monitor event");
                }
                if (!p->tracked)
                        break;
                FUZZ_CHECK(d.sub_id >= 1 && d.sub_id <= FUZZ_PEER_SUBS && p->subs[d.sub_id].live,
                           "a %s for subscription %u, which is not live", wire_kind_name(h->kind), d.sub_id);
                FUZZ_CHECK(topic_filter_match(p->subs[d.sub_id].filter, p->subs[d.sub_id].filter_len,
                                              (const char *)topic, h->topic_len),
                           "a %s on '%.*s' for subscription %u to '%s'", wire_kind_name(h->kind),
                           (int)h->topic_len, topic, d.sub_id, p->subs[d.sub_id].filter);
                FUZZ_CHECK(sub_admits(&p->subs[d.sub_id], h->type), "a %s of type %u for subscription %u",
                           wire_kind_name(h->kind), h->type, d.sub_id);
                FUZZ_CHECK(p->subs[d.sub_id].responder == (h->kind == WIRE_REQUEST),
                           "a %s for %s subscription %u", wire_kind_name(h->kind),
                           p->subs[d.sub_id].responder ? "responder" : "ordinary", d.sub_id);
                if (h->kind == WIRE_MESSAGE && !(h->flags & WIRE_F_RETAIN))
                        check_seq(p, topic, h->topic_len, p->subs[d.sub_id].group, d.seq);
                if (h->flags & WIRE_F_RETAIN) {
                        FUZZ_CHECK(d.sub_id == p->retained_sub,
                                   "a retained MESSAGE for subscription %u that is not right after its ACK",
                                   d.sub_id);
                        retained_sub = d.sub_id;
                }
                break;
        }
        case WIRE_GOODBYE:
                /* PROTOCOL.md 7: the last frame, as this broker sends it. */
                FUZZ_CHECK(h->meta_len == 0 && h->topic_len == 0 && h->flags == 0 && h->corr == 0,
                           "GOODBYE with meta, topic, flags or corr");
                FUZZ_CHECK(h->payload_len > 0 && utf8_printable((const char *)payload, h->payload_len),
                           "GOODBYE without a printable reason");
                p->fatal = true;
                break;
        default:
                FUZZ_CHECK(false, "the broker sent a %s frame", wire_kind_name(h->kind));
        }
        p->retained_sub = retained_sub;
}

size_t fuzz_peer_drain(FuzzPeer *p) {
        size_t total = 0;

        while (p->fd >= 0 && !p->eof) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
                } ctrl;
                struct iovec iov;
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
                struct cmsghdr *cm;
                size_t off = 0;
                ssize_t n;

                if (p->rx_cap - p->rx_len < 65536) {
                        uint8_t *nb = realloc(p->rx, p->rx_len + 65536);
                        FUZZ_CHECK(nb, "out of memory");
                        p->rx = nb;
                        p->rx_cap = p->rx_len + 65536;
                }
                iov = (struct iovec){ p->rx + p->rx_len, p->rx_cap - p->rx_len };
                msg.msg_control = ctrl.buf;
                msg.msg_controllen = sizeof(ctrl.buf);
                n = recvmsg(p->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        break;
                for (cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
                        size_t k, i;
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (i = 0; i < k; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                                safe_close(fd);
                        }
                        p->fds_queued += k;
                }
                if (n >= 0)
                        FUZZ_CHECK(!(msg.msg_flags & MSG_CTRUNC),
                                   "the broker sent more fds with one sendmsg than one recvmsg takes");
                if (n <= 0) {
                        /* The broker closed the connection (ECONNRESET: with
                         * data of ours unread). A frame cut short is fine only
                         * where the broker stopped waiting for a peer that
                         * did not read. */
                        FUZZ_CHECK(n == 0 || errno == ECONNRESET, "recvmsg: %s", strerror(errno));
                        FUZZ_CHECK(p->was_stalled || p->rx_len == 0,
                                   "the stream ended inside a frame (%zu bytes of it)", p->rx_len);
                        FUZZ_CHECK(p->was_stalled || p->fds_queued == 0,
                                   "the broker sent %zu fds that no frame declares", p->fds_queued);
                        p->eof = true;
                        break;
                }
                total += (size_t)n;
                p->rx_len += (size_t)n;
                while (p->rx_len - off >= WIRE_HEADER_SIZE) {
                        const char *why = NULL;
                        WireHeader h;
                        WireError e = wire_header_decode(p->rx + off, NULL, &h, &why);
                        FUZZ_CHECK(e == WIRE_E_OK, "the broker sent an invalid frame: %s (%s)",
                                   wire_error_name(e), why);
                        if (p->rx_len - off < h.size)
                                break;
                        check_frame(p, &h, p->rx + off);
                        off += h.size;
                }
                memmove(p->rx, p->rx + off, p->rx_len - off);
                p->rx_len -= off;
        }
        return total;
}

void fuzz_pump(Broker *b, FuzzPeer *peers, size_t n_peers, unsigned max_rounds) {
        unsigned round, quiet = 0;
        size_t i;

        for (round = 0; round < max_rounds && quiet < 2; round++) {
                bool moved = false;
                for (i = 0; i < n_peers; i++)
                        moved |= tx_flush(&peers[i]);
                FUZZ_CHECK(event_base_loop(b->base, EVLOOP_NONBLOCK) >= 0, "event_base_loop failed");
                for (i = 0; i < n_peers; i++) {
                        if (peers[i].stalled) {
                                peers[i].was_stalled = true;
                                continue;
                        }
                        moved |= fuzz_peer_drain(&peers[i]) > 0;
                }
                quiet = moved ? 0 : quiet + 1;
        }
}

void fuzz_fire_timer(Broker *b, unsigned which) {
        unsigned n = 0, k;
        Connection *c;
        Pending *p;

        /* The timers, in a fixed order: every pending request's deadline,
         * every closing connection's linger, every handshake's deadline,
         * the statistics. */
        for (c = b->conns; c; c = c->next) {
                for (p = c->requests_made; p; p = p->made_next)
                        n++;
                n += c->closing && c->ev_linger;
                n += c->ev_hello != NULL;
        }
        n += b->ev_stats != NULL;
        if (n == 0)
                return;
        k = which % n;
        for (c = b->conns; c; c = c->next) {
                for (p = c->requests_made; p; p = p->made_next)
                        if (k-- == 0) {
                                event_active(p->timer, EV_TIMEOUT, 1);
                                return;
                        }
                if (c->closing && c->ev_linger && k-- == 0) {
                        event_active(c->ev_linger, EV_TIMEOUT, 1);
                        return;
                }
                if (c->ev_hello && k-- == 0) {
                        event_active(c->ev_hello, EV_TIMEOUT, 1);
                        return;
                }
        }
        if (b->ev_stats)
                event_active(b->ev_stats, EV_TIMEOUT, 1);
}
