/* SPDX-License-Identifier: MIT */
/*
 * A whole broker in this process, driven by a script of operations on up
 * to four fake clients (fuzz-env.h): connect as one of several uids (so
 * that the access rules and per-user limits run), close, half-close, send
 * well-formed frames of every kind built from fields the input chooses,
 * raw or mutated bytes, fds of several kinds, partial frames; stop and
 * start reading a client (its queue fills and the overflow policies run),
 * fire request and handshake deadlines, lingers and the statistics timer,
 * change the configuration file that the next reload reads, shut down (as
 * at SIGTERM: GOODBYE to everyone). The loop is pumped after
 * each step (or in batches) and everything the clients receive is checked;
 * at the end the broker's bookkeeping is recounted, everything is torn
 * down, and no fd and no byte of memory may be left.
 *
 * Input: one byte of broker setup, then operations: a byte whose low two
 * bits pick the client and whose high six the operation, then its fields.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-broker.h"
#include "fuzz-env.h"
#include "fuzz.h"
#include "util.h"
#include "wire.h"

#define N_PEERS 4
#define MAX_OPS 200
#define MAX_FRAME (128 * 1024)

typedef struct Run {
        FuzzInput in;
        Broker *b;
        FuzzPeer peers[N_PEERS];
        bool batch;          /* do not pump after each operation */
        bool tightened;      /* a reload may have lowered the limits */
        size_t split;        /* send the next frame in two parts, cut here */
        uint8_t frame[MAX_FRAME];
        uint8_t payload[MAX_FRAME];
} Run;

/* A topic name or filter: mostly one of the table's, else bytes of the
 * input (valid or not). */
static size_t pick_string(Run *r, FuzzPeer *p, const char *const *table, size_t n, const char **ret) {
        uint8_t sel = fuzz_u8(&r->in);
        const uint8_t *s;
        size_t len;

        if (sel < 224) {
                *ret = table[sel % n];
                len = strlen(*ret);
                if (r->tightened && len > 12)
                        p->lax = true; /* over the tight max_topic_length */
                return len;
        }
        p->lax = true; /* perhaps no valid name or filter */
        len = fuzz_bytes(&r->in, fuzz_u8(&r->in) % 48, &s);
        *ret = (const char *)s;
        return len;
}

/* A payload: bytes of the input, or filler of a size that fills queues. */
static size_t pick_payload(Run *r) {
        uint8_t sel = fuzz_u8(&r->in);
        const uint8_t *s;
        size_t len;

        if (sel == 0xff || sel == 0xfe) {
                len = sel == 0xff ? 3000 : 70000;
                memset(r->payload, 'p', len);
                return len;
        }
        len = fuzz_bytes(&r->in, sel % 64, &s);
        memcpy(r->payload, s, len);
        return len;
}

/* The fds of a PUBLISH, REQUEST or REPLY: how many and which kinds; with
 * @bulk the first is (mostly) the sealed memfd. Returns how many. */
static size_t pick_fds(Run *r, bool bulk, FuzzFdKind *kinds) {
        uint8_t sel = fuzz_u8(&r->in);
        size_t n = sel & 3, i;

        if (sel >> 2 == 0x3f)
                n = 20; /* more than any limit */
        if (bulk && n == 0)
                n = 1;
        for (i = 0; i < n; i++)
                kinds[i] = (FuzzFdKind)((sel >> (2 + (i % 3) * 2)) % _FUZZ_FD_MAX);
        if (bulk && !(sel & 0x80))
                kinds[0] = FUZZ_FD_MEMFD_SEALED;
        return n;
}

static void pump(Run *r) {
        if (!r->batch)
                fuzz_pump(r->b, r->peers, N_PEERS, 8);
}

/* Sends a frame (with fds), in two parts with a pump between when a split
 * was asked for. */
static void send_frame(Run *r, FuzzPeer *p, size_t len, const FuzzFdKind *kinds, size_t n_fds) {
        if (len == 0)
                return;
        if (r->split > 0 && r->split < len) {
                fuzz_peer_send(p, r->frame, r->split, kinds, n_fds);
                fuzz_pump(r->b, r->peers, N_PEERS, 4);
                fuzz_peer_send(p, r->frame + r->split, len - r->split, NULL, 0);
        } else
                fuzz_peer_send(p, r->frame, len, kinds, n_fds);
        r->split = 0;
}

static size_t encode(Run *r, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
                     uint8_t n_fds, const void *meta, size_t meta_len, const void *topic,
                     size_t topic_len, const void *payload, size_t payload_len) {
        return wire_frame_encode(r->frame, sizeof(r->frame), kind, flags, type, corr, n_fds, meta,
                                 meta_len, topic, topic_len, payload, payload_len);
}

static void op_hello(Run *r, FuzzPeer *p) {
        static const char *const names[] = {
                "fuzz", "", "ünïcødé",
                "a-long-client-name-of-many-bytes-0123456789-0123456789-0123456789", /* 65 */
        };
        uint8_t sel = fuzz_u8(&r->in), meta[WIRE_META_HELLO] = { 0 };
        FuzzAsk a = { .kind = WIRE_HELLO };
        const char *name;
        size_t len;

        if (sel < 200) {
                name = names[sel % 4];
                len = strlen(name);
        } else {
                const uint8_t *s;
                len = fuzz_bytes(&r->in, sel % 72, &s);
                name = (const char *)s;
                p->lax = true;
        }
        if (p->hello_sent || len > WIRE_MAX_CLIENT_NAME)
                p->lax = true; /* a second HELLO, a name too long */
        p->hello_sent = true;
        send_frame(r, p, encode(r, WIRE_HELLO, 0, 0, fuzz_peer_ask(p, &a), 0, meta, sizeof(meta), NULL, 0,
                                name, len),
                   NULL, 0);
}

static void op_subscribe(Run *r, FuzzPeer *p) {
        uint8_t id_sel = fuzz_u8(&r->in), flags = fuzz_u8(&r->in);
        uint32_t id = id_sel == 0xff ? 0 : 1 + id_sel % FUZZ_PEER_SUBS;
        size_t n_types = (flags >> 3) & 3, group_len = 0, flen, i, plen = 0;
        uint8_t meta[WIRE_META_SUBSCRIBE];
        FuzzAsk a = { .kind = WIRE_SUBSCRIBE, .sub_id = id, .want_ack = true };
        const char *filter;
        WireSubscribe ws;

        flen = pick_string(r, p, fuzz_broker_filters, FUZZ_BROKER_N_FILTERS, &filter);
        for (i = 0; i < n_types; i++) {
                uint32_t t = fuzz_u8(&r->in) % 8;
                le32_write(r->payload + plen, t);
                plen += 4;
                a.sub.types[i] = t;
        }
        a.sub.n_types = n_types;
        if (flags & 0x04) {
                r->payload[plen] = 'g';
                r->payload[plen + 1] = (uint8_t)('0' + (flags >> 5));
                memcpy(a.sub.group, r->payload + plen, 2);
                group_len = 2;
                plen += 2;
        }
        a.sub.responder = flags & WIRE_SUB_F_RESPONDER;
        if (id == 0 || (a.sub.responder && group_len > 0))
                p->lax = true;
        if (flen >= sizeof(a.sub.filter))
                p->tracked = false;
        else {
                memcpy(a.sub.filter, filter, flen);
                a.sub.filter[flen] = 0;
                a.sub.filter_len = flen;
        }
        ws = (WireSubscribe){ .sub_id = id, .n_types = (uint16_t)n_types, .group_len = (uint8_t)group_len,
                              .flags = flags & 3 };
        wire_subscribe_encode(meta, &ws);
        send_frame(r, p,
                   encode(r, WIRE_SUBSCRIBE, 0, 0, id >= 1 ? fuzz_peer_ask(p, &a) : 7777, 0, meta,
                          sizeof(meta), filter, flen, r->payload, plen),
                   NULL, 0);
}

static void op_unsubscribe(Run *r, FuzzPeer *p) {
        uint8_t meta[WIRE_META_UNSUBSCRIBE] = { 0 };
        uint32_t id = 1 + fuzz_u8(&r->in) % FUZZ_PEER_SUBS;
        FuzzAsk a = { .kind = WIRE_UNSUBSCRIBE, .sub_id = id, .want_ack = true };

        le32_write(meta, id);
        send_frame(r, p, encode(r, WIRE_UNSUBSCRIBE, 0, 0, fuzz_peer_ask(p, &a), 0, meta, sizeof(meta),
                                NULL, 0, NULL, 0),
                   NULL, 0);
}

/* PUBLISH, REQUEST and REPLY carry the same things. */
static void op_payload_frame(Run *r, FuzzPeer *p, uint8_t kind) {
        uint8_t flags_sel = fuzz_u8(&r->in), meta[WIRE_META_REQUEST] = { 0 };
        uint32_t type = fuzz_u8(&r->in) % 9;
        bool bulk = flags_sel & 0x02;
        uint16_t flags = kind == WIRE_PUBLISH ? flags_sel & (WIRE_F_RETAIN | WIRE_F_BULK | WIRE_F_ACK)
                                              : flags_sel & WIRE_F_BULK;
        FuzzFdKind kinds[32];
        const char *topic = NULL;
        size_t tlen = 0, plen = 0, meta_len = 0, n_fds;
        uint64_t bulk_size = fuzz_u8(&r->in) % 80, corr;
        FuzzAsk a = { .kind = kind, .want_ack = kind == WIRE_PUBLISH && (flags & WIRE_F_ACK) };

        if (kind != WIRE_REPLY)
                tlen = pick_string(r, p, fuzz_broker_topics, FUZZ_BROKER_N_TOPICS, &topic);
        if (!bulk)
                plen = pick_payload(r);
        n_fds = pick_fds(r, bulk, kinds);
        if (n_fds > 1 || (r->tightened && plen > 64))
                p->lax = true; /* over a limit, maybe */
        if (kind == WIRE_PUBLISH) {
                if (bulk) {
                        le64_write(meta, bulk_size);
                        meta_len = WIRE_META_PUBLISH_BULK;
                }
                corr = a.want_ack ? fuzz_peer_ask(p, &a) : p->next_corr++;
        } else if (kind == WIRE_REQUEST) {
                static const uint32_t timeouts[4] = { 0, 600000, 1, 3600000 };
                le32_write(meta, timeouts[flags_sel >> 6]);
                le64_write(meta + 8, bulk_size);
                meta_len = WIRE_META_REQUEST;
                corr = fuzz_peer_ask(p, &a);
        } else {
                uint8_t sel = fuzz_u8(&r->in);
                le64_write(meta, bulk_size);
                meta_len = WIRE_META_REPLY;
                corr = p->n_req_ids > 0 && sel < 240 ? p->req_ids[sel % p->n_req_ids] : sel;
        }
        send_frame(r, p,
                   encode(r, kind, flags, type, corr, (uint8_t)n_fds, meta, meta_len, topic, tlen,
                          r->payload, plen),
                   kinds, n_fds);
}

static void op_admin(Run *r, FuzzPeer *p) {
        static const char *const commands[] = { "status", "clients", "topics", "kick", "reload", "bogus" };
        uint8_t sel = fuzz_u8(&r->in), arg_sel = fuzz_u8(&r->in);
        const char *cmd = commands[sel % 6], *arg = NULL;
        FuzzAsk a = { .kind = WIRE_ADMIN };
        char idbuf[16];
        size_t alen = 0;

        if (strcmp(cmd, "topics") == 0 && arg_sel < 128)
                alen = pick_string(r, p, fuzz_broker_filters, FUZZ_BROKER_N_FILTERS, &arg);
        else if (strcmp(cmd, "kick") == 0 && arg_sel < 200) {
                alen = (size_t)snprintf(idbuf, sizeof(idbuf), "%u", r->peers[arg_sel % N_PEERS].client_id);
                arg = idbuf;
        } else if (arg_sel >= 200) {
                const uint8_t *s;
                alen = fuzz_bytes(&r->in, arg_sel % 20, &s);
                arg = (const char *)s;
        }
        send_frame(r, p, encode(r, WIRE_ADMIN, 0, 0, fuzz_peer_ask(p, &a), 0, NULL, 0, cmd, strlen(cmd),
                                arg, alen),
                   NULL, 0);
}

static void op_ping(Run *r, FuzzPeer *p, uint8_t kind) {
        FuzzAsk a = { .kind = WIRE_PING };
        size_t plen = pick_payload(r);

        if (r->tightened && plen > 64)
                p->lax = true;
        uint64_t corr = kind == WIRE_PING ? fuzz_peer_ask(p, &a) : p->next_corr++;

        send_frame(r, p, encode(r, kind, 0, 0, corr, 0, NULL, 0, NULL, 0, r->payload, plen), NULL, 0);
}

/* Bytes as they are, with fds: the peer's corrs mean nothing any more. */
static void op_raw(Run *r, FuzzPeer *p) {
        FuzzFdKind kinds[32];
        size_t n_fds = pick_fds(r, false, kinds);
        const uint8_t *s;
        size_t len = fuzz_bytes(&r->in, fuzz_u8(&r->in), &s);

        p->tracked = false;
        memcpy(r->frame, s, len);
        send_frame(r, p, len, kinds, n_fds);
}

/* A well-formed frame with one header byte changed. */
static void op_mutate(Run *r, FuzzPeer *p) {
        uint8_t kind = 1 + fuzz_u8(&r->in) % _WIRE_KIND_MAX, off = fuzz_u8(&r->in) % WIRE_HEADER_SIZE;
        uint8_t value = fuzz_u8(&r->in), meta[64] = { 0 };
        size_t meta_len = fuzz_u8(&r->in) % 48, plen = pick_payload(r), len;
        const char *topic;
        size_t tlen = pick_string(r, p, fuzz_broker_topics, FUZZ_BROKER_N_TOPICS, &topic);

        p->tracked = false;
        len = encode(r, kind, 0, 0, p->next_corr++, 0, meta, meta_len, topic, tlen, r->payload, plen);
        if (len >= WIRE_HEADER_SIZE)
                r->frame[off] = value;
        send_frame(r, p, len, NULL, 0);
}

/* Many PUBLISHes without a pump between them. */
static void op_flood(Run *r, FuzzPeer *p) {
        uint8_t n = fuzz_u8(&r->in) % 64, flags = fuzz_u8(&r->in) & (WIRE_F_RETAIN | WIRE_F_ACK);
        size_t plen = pick_payload(r), i;
        const char *topic;
        size_t tlen = pick_string(r, p, fuzz_broker_topics, FUZZ_BROKER_N_TOPICS, &topic);

        if (r->tightened && plen > 64)
                p->lax = true;
        for (i = 0; i < n; i++) {
                FuzzAsk a = { .kind = WIRE_PUBLISH, .want_ack = true };
                uint64_t corr = (flags & WIRE_F_ACK) ? fuzz_peer_ask(p, &a) : p->next_corr++;
                fuzz_peer_send(p, r->frame,
                               encode(r, WIRE_PUBLISH, flags, (uint32_t)i % 3, corr, 0, NULL, 0, topic, tlen,
                                      r->payload, plen),
                               NULL, 0);
        }
}

static bool verbose;

static void run_op(Run *r) {
        static const char *const names[_OP_MAX] = {
                "connect", "close", "shutdown", "hello", "subscribe", "unsubscribe", "publish",
                "request", "reply", "admin", "ping", "pong", "raw", "mutate", "split", "pump",
                "stall", "timer", "flood", "batch", "config", "goodbye",
        };
        uint8_t op_byte = fuzz_u8(&r->in);
        FuzzPeer *p = &r->peers[op_byte & 3];
        uint8_t op = fuzz_broker_opcodes[op_byte >> 2];

        if (verbose)
                fprintf(stderr, "# %s, client %d (%s), at input byte %zu\n", names[op], op_byte & 3,
                        p->fd < 0 ? "closed" : p->eof ? "at its end" : "open", r->in.pos);

        if (op != OP_CONNECT && op != OP_PUMP && op != OP_TIMER && op != OP_BATCH && op != OP_SPLIT &&
            op != OP_CONFIG && op != OP_GOODBYE && p->fd < 0)
                return;
        if (((op >= OP_SUBSCRIBE && op <= OP_PONG) || op == OP_FLOOD) && !p->hello_sent)
                p->lax = true; /* the first frame must be HELLO */
        switch (op) {
        case OP_CONNECT: {
                uint8_t sel = fuzz_u8(&r->in);
                if (p->fd >= 0)
                        fuzz_peer_close(p);
                fuzz_peer_connect(p, r->b, fuzz_broker_uids[(sel & 0x7f) % FUZZ_BROKER_N_UIDS], sel & 0x80);
                pump(r);
                if (!(sel & 0x40))
                        op_hello(r, p);
                break;
        }
        case OP_CLOSE:
                fuzz_peer_close(p);
                break;
        case OP_SHUTDOWN:
                /* Perhaps inside a frame the socket did not take whole. */
                p->lax = true;
                shutdown(p->fd, SHUT_WR);
                break;
        case OP_HELLO:
                op_hello(r, p);
                break;
        case OP_SUBSCRIBE:
                op_subscribe(r, p);
                break;
        case OP_UNSUBSCRIBE:
                op_unsubscribe(r, p);
                break;
        case OP_PUBLISH:
                op_payload_frame(r, p, WIRE_PUBLISH);
                break;
        case OP_REQUEST:
                op_payload_frame(r, p, WIRE_REQUEST);
                break;
        case OP_REPLY:
                op_payload_frame(r, p, WIRE_REPLY);
                break;
        case OP_ADMIN:
                op_admin(r, p);
                break;
        case OP_PING:
                op_ping(r, p, WIRE_PING);
                break;
        case OP_PONG:
                op_ping(r, p, WIRE_PONG);
                break;
        case OP_RAW:
                op_raw(r, p);
                break;
        case OP_MUTATE:
                op_mutate(r, p);
                break;
        case OP_SPLIT:
                r->split = 1 + fuzz_u8(&r->in) % 64;
                return;
        case OP_PUMP:
                r->batch = false;
                break;
        case OP_STALL:
                p->stalled = !p->stalled;
                break;
        case OP_TIMER:
                fuzz_fire_timer(r->b, fuzz_u8(&r->in));
                break;
        case OP_FLOOD:
                op_flood(r, p);
                break;
        case OP_BATCH:
                r->batch = true;
                return;
        case OP_GOODBYE: {
                /* What the broker does at SIGTERM (broker_drain): every
                 * connection gets GOODBYE after what is queued for it. */
                Connection *c, *next;
                for (c = r->b->conns; c; c = next) {
                        next = c->next;
                        if (connection_goodbye(c, "the broker is shutting down", 5000) < 0)
                                broker_drop_connection(r->b, c, NULL);
                }
                broker_flush_pending(r->b);
                break;
        }
        case OP_CONFIG: {
                /* The next reload finds this. */
                uint8_t variant = fuzz_u8(&r->in) % 3;
                fuzz_env_config(variant);
                r->tightened |= variant == 1;
                return;
        }
        }
        pump(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        fuzz_env_init();
        verbose = getenv("FUZZ_VERBOSE") != NULL;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const int overflows[4] = { -1, OVERFLOW_DROP_OLD, OVERFLOW_DISCONNECT, OVERFLOW_BLOCK };
        size_t fds_before, i, n_ops;
        FuzzBrokerOptions o;
        uint8_t setup;
        Run *r;

        if (size < 1)
                return 0;
        r = calloc(1, sizeof(*r));
        FUZZ_CHECK(r, "out of memory");
        r->in = (FuzzInput){ data, size, 0 };
        setup = fuzz_u8(&r->in);
        o = (FuzzBrokerOptions){
                .rules = setup & 1,
                .overflow = overflows[(setup >> 1) & 3],
                .queue_bytes = (setup & 0x08) ? 4096 : 0,
                .max_fds = (setup & 0x10) ? 2 : -1,
        };
        for (i = 0; i < N_PEERS; i++)
                r->peers[i].fd = -1;

        fds_before = fuzz_count_fds();
        r->b = fuzz_broker_new(&o);
        for (n_ops = 0; fuzz_more(&r->in) && n_ops < MAX_OPS; n_ops++)
                run_op(r);
        /* Everyone reads what is left. */
        for (i = 0; i < N_PEERS; i++)
                r->peers[i].stalled = false;
        r->batch = false;
        fuzz_pump(r->b, r->peers, N_PEERS, 64);
        if (verbose)
                for (i = 0; i < N_PEERS; i++)
                        if (r->peers[i].used)
                                fprintf(stderr, "# client %zu: %llu frames%s%s\n", i,
                                        (unsigned long long)r->peers[i].frames,
                                        r->peers[i].tracked ? ", tracked" : "",
                                        r->peers[i].fatal ? ", fatal ERROR" : "");
        fuzz_broker_free(r->b);
        for (i = 0; i < N_PEERS; i++)
                fuzz_peer_close(&r->peers[i]);
        free(r);
        FUZZ_CHECK(fuzz_count_fds() == fds_before, "%zu fds open before, %zu after", fds_before,
                   fuzz_count_fds());
        return 0;
}
