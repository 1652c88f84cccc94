/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "broker.h"
#include "connection.h"
#include "log.h"
#include "memfd.h"
#include "protocol.h"
#include "request.h"
#include "router.h"
#include "topicname.h"
#include "util.h"

#define BROKER_VERSION_TEXT "ipcd " PACKAGE_VERSION

static int handle_hello(Connection *c, const WireHeader *h, const uint8_t *meta,
                        const uint8_t *payload) {
        Broker *b = c->broker;
        uint8_t out[WIRE_META_WELCOME];
        WireWelcome w;

        if (c->welcomed) {
                connection_error(c, WIRE_E_HANDSHAKE, h->kind, h->corr, true,
                                 "HELLO was already received on this connection");
                return 0;
        }
        if (le32_read(meta) != 0 || le32_read(meta + 4) != 0) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "HELLO meta must be zero in protocol version 1");
                return 0;
        }
        if (h->payload_len > WIRE_MAX_CLIENT_NAME ||
            !utf8_printable((const char *)payload, h->payload_len)) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "client name must be at most %d bytes of printable UTF-8",
                                 WIRE_MAX_CLIENT_NAME);
                return 0;
        }
        memcpy(c->name, payload, h->payload_len);
        c->name[h->payload_len] = 0;

        w = (WireWelcome){
                .client_id = c->id,
                .max_payload = b->limits.max_payload,
                .max_topic_len = b->limits.max_topic_len,
                .max_fds = b->limits.max_fds,
                .max_subscriptions = b->config.max_subscriptions,
                .max_types_per_sub = WIRE_MAX_TYPES_PER_SUB,
                .max_bulk_size = b->config.max_bulk_size,
                .out_queue_bytes = b->config.out_queue_bytes,
        };
        wire_welcome_encode(out, &w);
        c->welcomed = true;
        connection_welcome_done(c);
        return connection_send(c, WIRE_WELCOME, 0, 0, h->corr, out, sizeof(out), NULL, 0,
                               BROKER_VERSION_TEXT, strlen(BROKER_VERSION_TEXT));
}

static void deliver_retained(Connection *c, Subscription *s);
static bool filter_monitors(const char *filter, size_t len);

static int send_ack(Connection *c, uint64_t corr) {
        return connection_send(c, WIRE_ACK, 0, 0, corr, NULL, 0, NULL, 0, NULL, 0);
}

/* The kernel's word on who @c is, for the access rules. */
static AclPeer peer_of(const Connection *c) {
        return (AclPeer){ .uid = c->uid, .gid = c->gid, .groups = c->groups, .n_groups = c->n_groups };
}

static bool acl_allows(const Connection *c, AclOp op, const char *topic, size_t len) {
        AclPeer p = peer_of(c);
        return acl_check(c->broker->conf, c->broker->owner_uid, &p, op, topic, len);
}

void protocol_authorize_subscription(Connection *c, Subscription *s) {
        AclPeer p = peer_of(c);
        s->reach = (uint8_t)acl_subscribe_reach(c->broker->conf, c->broker->owner_uid, &p, s->filter,
                                                s->filter_len);
}

/* May @s's owner read @topic? Only filters that reach part of what they
 * match need the per-topic check. */
static bool may_read(Subscription *s, const char *topic, size_t len) {
        Connection *c;
        AclPeer p;

        if (s->reach == ACL_REACH_ALL)
                return true;
        if (s->reach == ACL_REACH_NONE)
                return false;
        c = container_of(s->owner, Connection, owner);
        p = peer_of(c);
        return acl_may_read(c->broker->conf, c->broker->owner_uid, &p, topic, len);
}

static bool type_allowed(const ConfigTopicRule *rule, uint32_t type) {
        size_t lo = 0, hi;

        if (!rule || rule->n_types == 0)
                return true;
        /* The rule's types are sorted. */
        hi = rule->n_types;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (rule->types[mid] == type)
                        return true;
                if (rule->types[mid] < type)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return false;
}

static int handle_subscribe(Connection *c, const WireHeader *h, const uint8_t *meta,
                            const char *filter, const uint8_t *payload) {
        Broker *b = c->broker;
        uint32_t types[WIRE_MAX_TYPES_PER_SUB];
        const char *group;
        Subscription *s;
        WireSubscribe ws;
        TopicCheck tc;
        size_t i;
        int r;

        wire_subscribe_decode(meta, &ws);
        if (ws.sub_id == 0 || (ws.flags & ~_WIRE_SUB_F_ALL)) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 ws.sub_id == 0 ? "subscription id 0 is reserved"
                                                : "undefined subscription flags");
                return 0;
        }
        if (ws.n_types > WIRE_MAX_TYPES_PER_SUB) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "a subscription selects at most %d message types",
                                 WIRE_MAX_TYPES_PER_SUB);
                return 0;
        }
        if ((uint64_t)ws.n_types * 4 + ws.group_len != h->payload_len) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "SUBSCRIBE payload must be 4 * n_types + group_len bytes");
                return 0;
        }
        tc = topic_filter_check(filter, h->topic_len, b->limits.max_topic_len);
        if (tc != TOPIC_OK) {
                connection_error(c, WIRE_E_BAD_FILTER, h->kind, h->corr, true,
                                 "invalid subscription filter: %s", topic_check_str(tc));
                return 0;
        }
        group = (const char *)payload + 4 * ws.n_types;
        if (ws.group_len > 0 && !utf8_printable(group, ws.group_len)) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "a queue group name is printable UTF-8");
                return 0;
        }
        if ((ws.flags & WIRE_SUB_F_RESPONDER) && ws.group_len > 0) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "responders share their requests already: no queue group");
                return 0;
        }
        {
                AclPeer p = peer_of(c);
                AclReach reach = acl_subscribe_reach(b->conf, b->owner_uid, &p, filter, h->topic_len);
                /* A responder takes its share of every request its filter
                 * matches: it must be allowed to read all of them. */
                bool denied = (ws.flags & WIRE_SUB_F_RESPONDER) ? reach != ACL_REACH_ALL
                                                                 : reach == ACL_REACH_NONE;
                if (denied) {
                        connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                         "permission denied: uid %u may not subscribe to '%.*s'",
                                         (unsigned)c->uid, (int)h->topic_len, filter);
                        return 0;
                }
        }
        if (connection_find_sub(c, ws.sub_id)) {
                connection_error(c, WIRE_E_SUB_EXISTS, h->kind, h->corr, false,
                                 "subscription id %u is already in use on this connection",
                                 ws.sub_id);
                return 0;
        }
        if (c->n_subs >= b->config.max_subscriptions) {
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "at most %u subscriptions per connection",
                                 b->config.max_subscriptions);
                return 0;
        }
        for (i = 0; i < ws.n_types; i++)
                types[i] = le32_read(payload + 4 * i);

        if (c->n_subs == c->cap_subs) {
                size_t cap = c->cap_subs ? c->cap_subs * 2 : 4;
                Subscription **n = realloc(c->subs, cap * sizeof(*n));
                if (!n)
                        goto oom;
                c->subs = n;
                c->cap_subs = cap;
        }
        s = subscription_new(&c->owner, ws.sub_id, filter, h->topic_len, types, ws.n_types, group,
                             ws.group_len);
        if (!s)
                goto oom;
        s->flags = ws.flags;
        protocol_authorize_subscription(c, s);
        r = router_add(broker_router_of(b, s), s);
        if (r < 0) {
                subscription_free(s);
                goto oom;
        }
        c->subs[c->n_subs++] = s;
        if (!(ws.flags & WIRE_SUB_F_RESPONDER) && filter_monitors(filter, h->topic_len)) {
                s->flags |= SUB_F_MONITOR;
                b->n_monitors++;
        }
        r = send_ack(c, h->corr);
        if (r < 0 || (ws.flags & (WIRE_SUB_F_NO_RETAINED | WIRE_SUB_F_RESPONDER)))
                return r;
        /* The retained messages it matches come right after the ACK. */
        deliver_retained(c, s);
        return 0;
oom:
        connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
        return 0;
}

static int handle_unsubscribe(Connection *c, const WireHeader *h, const uint8_t *meta) {
        uint32_t id = le32_read(meta);
        size_t i;

        if (le32_read(meta + 4) != 0) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "UNSUBSCRIBE reserved meta field is not zero");
                return 0;
        }
        for (i = 0; i < c->n_subs; i++) {
                Subscription *s = c->subs[i];
                if (s->id != id)
                        continue;
                if (s->flags & SUB_F_MONITOR)
                        c->broker->n_monitors--;
                router_remove(broker_router_of(c->broker, s), s);
                subscription_free(s);
                c->subs[i] = c->subs[--c->n_subs];
                return send_ack(c, h->corr);
        }
        connection_error(c, WIRE_E_NO_SUCH_SUB, h->kind, h->corr, false,
                         "no subscription with id %u on this connection", id);
        return 0;
}

typedef struct Fanout {
        Body *body;
        RouterTopic *topic;
        const char *name;
        size_t name_len;
        bool admin_only;  /* a $SYS/monitor event: for administrators only */
        bool record;      /* monitors are watching: note the recipients */
        OverflowPolicy policy;
        Connection *from;
        uint8_t hdr[WIRE_HEADER_SIZE + WIRE_META_MESSAGE];
} Fanout;

static void monitor_note(Broker *b, uint32_t id);

static void deliver(Subscription *s, void *userdata) {
        Connection *to = container_of(s->owner, Connection, owner);
        Fanout *f = userdata;

        if (!may_read(s, f->name, f->name_len) ||
            (f->admin_only && !acl_allows(to, ACL_ADMIN, NULL, 0)))
                return;

        /* Everything but the subscription id is the same for every recipient. */
        le32_write(f->hdr + WIRE_HEADER_SIZE + 12, s->id);
        if (connection_deliver(to, f->hdr, sizeof(f->hdr), f->body, f->topic, f->policy,
                               f->from) == 0) {
                to->stats.msgs_out++;
                to->broker->stats.msgs_out++;
                if (f->record)
                        monitor_note(to->broker, to->id);
        }
}


#define MONITOR_PREFIX "$SYS/monitor/"
#define MONITOR_PAYLOAD_MAX 1024

/* Monitors: subscriptions that can match $SYS/monitor/...; they get an
 * event for every message routed. Counted so that routing does nothing
 * extra while nobody watches. */
static bool filter_monitors(const char *filter, size_t len) {
        return acl_filter_overlaps(filter, len, MONITOR_PREFIX "#", strlen(MONITOR_PREFIX "#"));
}

static void monitor_note(Broker *b, uint32_t id) {
        if (b->n_rcpt == b->cap_rcpt) {
                size_t cap = b->cap_rcpt ? b->cap_rcpt * 2 : 64;
                uint32_t *n = realloc(b->rcpt, cap * sizeof(*n));
                if (!n)
                        return; /* the event will list fewer recipients */
                b->rcpt = n;
                b->cap_rcpt = cap;
        }
        b->rcpt[b->n_rcpt++] = id;
}


/* Publishes what was just routed as a $SYS/monitor/<kind> event: the
 * sender, the recipients noted while routing, and the payload when it is
 * short printable text. Only called while monitors exist. */
static void monitor_event(Broker *b, const char *kind, const char *topic, size_t tlen,
                          uint32_t type, pid_t pid, uid_t uid, uint32_t client, const uint8_t *payload,
                          size_t plen, uint64_t bulk_size, unsigned n_fds, uint64_t seq) {
        char evtopic[64], *json = NULL;
        size_t len = 0, i;
        FILE *f;

        if (tlen >= strlen(MONITOR_PREFIX) && memcmp(topic, MONITOR_PREFIX, strlen(MONITOR_PREFIX)) == 0)
                return; /* never about itself */
        f = open_memstream(&json, &len);
        if (!f)
                return;
        fprintf(f, "{\"kind\":\"%s\",\"topic\":", kind);
        broker_json_string_n(f, topic, tlen);
        fprintf(f, ",\"type\":%u,\"sender\":{\"client\":%u,\"pid\":%d,\"uid\":%u},\"seq\":%llu"
                   ",\"size\":%llu,\"transport\":\"%s\",\"fds\":%u,\"recipients\":[",
                type, client, (int)pid, (unsigned)uid, (unsigned long long)seq,
                (unsigned long long)(bulk_size ? bulk_size : plen), bulk_size ? "memfd" : "inline",
                n_fds);
        for (i = 0; i < b->n_rcpt; i++)
                fprintf(f, "%s%u", i ? "," : "", b->rcpt[i]);
        fputc(']', f);
        if (plen > 0 && plen <= MONITOR_PAYLOAD_MAX && utf8_printable((const char *)payload, plen)) {
                fprintf(f, ",\"payload\":");
                broker_json_string_n(f, (const char *)payload, plen);
        }
        fputc('}', f);
        if (fclose(f) == 0) {
                snprintf(evtopic, sizeof(evtopic), MONITOR_PREFIX "%s", kind);
                protocol_publish_internal(b, evtopic, 0, json, len, false);
        }
        free(json);
        b->n_rcpt = 0;
}

/* One member of a queue group gets the message: the next in turn that has
 * room, or, when none has, the next in turn under the topic's policy. */
static void deliver_group(Subscription **cands, size_t n, uint32_t *rr, void *userdata) {
        Fanout *f = userdata;
        size_t start = *rr % n, i;

        Subscription *fallback = NULL;

        for (i = 0; i < n; i++) {
                Subscription *s = cands[(start + i) % n];
                Connection *to = container_of(s->owner, Connection, owner);
                if (!may_read(s, f->name, f->name_len))
                        continue;
                if (connection_can_take(to, sizeof(f->hdr), f->body)) {
                        *rr = (uint32_t)(start + i + 1);
                        deliver(s, f);
                        return;
                }
                if (!fallback)
                        fallback = s;
        }
        *rr = (uint32_t)(start + 1);
        if (fallback)
                deliver(fallback, f);
}

/* A topic's retained message: its body and the MESSAGE header it went
 * out with, flagged as retained. */
typedef struct Retained {
        Body *body;
        Broker *broker;
        size_t size; /* as counted in retained_bytes */
        uint8_t hdr[WIRE_HEADER_SIZE + WIRE_META_MESSAGE];
} Retained;

void protocol_retained_free(void *p) {
        Retained *r = p;
        if (!r)
                return;
        r->broker->retained_count--;
        r->broker->retained_bytes -= r->size;
        body_unref(r->body);
        free(r);
}

typedef struct RetainedWalk {
        Connection *c;
        Subscription *s;
} RetainedWalk;

static void deliver_one_retained(const char *name, size_t len, RouterTopic *t, void *userdata) {
        RetainedWalk *w = userdata;
        Retained *r = t->retained;
        const ConfigTopicRule *rule;
        uint8_t hdr[sizeof(r->hdr)];

        if (!r || !subscription_admits(w->s, le32_read(r->hdr + WIRE_OFF_TYPE)) ||
            !may_read(w->s, name, len))
                return;
        memcpy(hdr, r->hdr, sizeof(hdr));
        le32_write(hdr + WIRE_HEADER_SIZE + 12, w->s->id);
        rule = broker_topic_rule(w->c->broker, t, name, len);
        if (connection_deliver(w->c, hdr, sizeof(hdr), r->body, t,
                               rule ? rule->overflow : w->c->broker->config.overflow, NULL) == 0) {
                w->c->stats.msgs_out++;
                w->c->broker->stats.msgs_out++;
        }
}

static void deliver_retained(Connection *c, Subscription *s) {
        RetainedWalk w = { .c = c, .s = s };

        if (c->broker->retained_count == 0)
                return;
        router_match_topics(c->broker->router, s->filter, s->filter_len, deliver_one_retained, &w);
}

/* Keeps (or with an empty payload, clears) the retained message of @t.
 * Returns 0, or -ENOSPC over the retained limits (nothing changes then). */
/* What a retained message counts against retained_max_bytes: its topic
 * and inline payload, and its bulk payload's size. */
static size_t retained_size(size_t body_len, uint64_t bulk_size) {
        return body_len + (size_t)bulk_size;
}

/* Would a retained message of @size bytes on @t fit the limits? */
static bool retain_fits(const Broker *b, const RouterTopic *t, size_t size) {
        const Retained *old = t->retained;
        size_t bytes = b->retained_bytes - (old ? old->size : 0);

        return (old ? b->retained_count : b->retained_count + 1) <= b->config.retained_max_messages &&
               bytes + size <= b->config.retained_max_bytes;
}

static int retain(Broker *b, RouterTopic *t, Body *body, const uint8_t *hdr, bool clear) {
        Retained *old = t->retained, *r;
        size_t size = retained_size(body->len, le64_read(hdr + WIRE_HEADER_SIZE + 24));

        if (clear) {
                protocol_retained_free(old);
                t->retained = NULL;
                return 0;
        }
        if (!retain_fits(b, t, size))
                return -ENOSPC;
        r = malloc(sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->broker = b;
        r->body = body_ref(body);
        r->size = size;
        memcpy(r->hdr, hdr, sizeof(r->hdr));
        le16_write(r->hdr + WIRE_OFF_FLAGS, le16_read(r->hdr + WIRE_OFF_FLAGS) | WIRE_F_RETAIN);
        b->retained_count++;
        b->retained_bytes += size;
        protocol_retained_free(old);
        t->retained = r;
        return 0;
}

static void close_fds(const int *fds, size_t n) {
        size_t i;
        for (i = 0; i < n; i++)
                safe_close(fds[i]);
}

/* The checks every PUBLISH, REQUEST and REPLY payload passes: a bulk one is
 * a sealed memfd (checked without mapping or reading it: the cost does not
 * depend on its size), and the fds fit the broker's budget. Sends the
 * ERROR and returns false when not; the caller still owns the fds. */
static bool payload_acceptable(Connection *c, const WireHeader *h, uint64_t bulk_size,
                               const int *fds) {
        Broker *b = c->broker;

        if (h->flags & WIRE_F_BULK) {
                MemfdCheck mc;
                if (h->payload_len != 0) {
                        connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                         "a bulk %s carries its payload in the memfd: payload length must be 0",
                                         wire_kind_name(h->kind));
                        return false;
                }
                mc = memfd_check(fds[0], bulk_size, b->config.max_bulk_size);
                if (mc != MEMFD_OK) {
                        connection_error(c, WIRE_E_BULK, h->kind, h->corr, false, "%s",
                                         memfd_check_str(mc));
                        return false;
                }
        }
        if (h->n_fds > 0 && b->held_fds + h->n_fds > b->fd_budget) {
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "the broker holds %zu file descriptors, its limit is %zu",
                                 b->held_fds, b->fd_budget);
                return false;
        }
        return true;
}

/* Sends @f's body (its topic first) as a MESSAGE to everyone it matches,
 * as the next message of its topic: builds the header every recipient
 * shares into f->hdr. */
static void route_message(Broker *b, Fanout *f, uint32_t type, uint16_t flags, uint8_t n_fds,
                          uint64_t bulk_size, pid_t pid, uid_t uid, gid_t gid) {
        WireHeader mh = {
                .size = WIRE_HEADER_SIZE + WIRE_META_MESSAGE + f->body->len,
                .version = WIRE_VERSION,
                .kind = WIRE_MESSAGE,
                .flags = flags,
                .type = type,
                .payload_len = (uint32_t)(f->body->len - f->name_len),
                .topic_len = (uint16_t)f->name_len,
                .n_fds = n_fds,
                .meta_len = WIRE_META_MESSAGE,
        };
        WireDelivery d = {
                .sender_pid = (uint32_t)pid,
                .sender_uid = (uint32_t)uid,
                .sender_gid = (uint32_t)gid,
                .seq = ++f->topic->seq,
                .bulk_size = bulk_size,
        };

        f->topic->n_published++;
        if (f->from)
                b->stats.msgs_in++; /* client messages, not the broker's own */
        wire_header_encode(f->hdr, &mh);
        wire_delivery_encode(f->hdr + WIRE_HEADER_SIZE, &d);
        f->admin_only = f->name_len >= strlen(MONITOR_PREFIX) &&
                        memcmp(f->name, MONITOR_PREFIX, strlen(MONITOR_PREFIX)) == 0;
        /* Monitors watch the clients' traffic, not the broker's own. */
        f->record = b->n_monitors > 0 && f->from;
        b->n_rcpt = 0;
        router_match_topic(b->router, f->topic, f->name, f->name_len, type, deliver, deliver_group, f);
        if (f->record)
                monitor_event(b, "publish", f->name, f->name_len, type, pid, uid,
                              f->from ? f->from->id : 0, f->body->data + f->name_len,
                              f->body->len - f->name_len, bulk_size, n_fds, d.seq);
}

int protocol_publish_internal(Broker *b, const char *topic, uint32_t type, const void *payload,
                              size_t len, bool retained) {
        size_t tlen = strlen(topic);
        Fanout f;
        int r;

        f.topic = router_topic(b->router, topic, tlen, true, SIZE_MAX, &r);
        if (!f.topic)
                return r;
        f.body = body_new(tlen + len);
        if (!f.body)
                return -ENOMEM;
        memcpy(f.body->data, topic, tlen);
        memcpy(f.body->data + tlen, payload, len);
        f.from = NULL;
        f.policy = OVERFLOW_DROP_NEW;
        f.name = (const char *)f.body->data;
        f.name_len = tlen;
        route_message(b, &f, type, 0, 0, 0, getpid(), geteuid(), getegid());
        r = retained ? retain(b, f.topic, f.body, f.hdr, false) : 0;
        body_unref(f.body);
        return r;
}

/* The topic rule's word on a PUBLISH or REQUEST on @topic: its type, its
 * payload size and its fds. Sends the ERROR and returns false when the rule
 * refuses. */
static bool rule_allows(Connection *c, const WireHeader *h, const ConfigTopicRule *rule,
                        const char *topic, uint64_t bulk_size) {
        if (!rule)
                return true;
        if (!type_allowed(rule, h->type)) {
                connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                 "message type %u is not allowed on '%.*s' (topic rule '%s')",
                                 h->type, (int)h->topic_len, topic, rule->pattern);
                return false;
        }
        if (rule->max_payload > 0 &&
            ((h->flags & WIRE_F_BULK) ? bulk_size : h->payload_len) > rule->max_payload) {
                connection_error(c, WIRE_E_TOO_LARGE, h->kind, h->corr, false,
                                 "payload larger than %u bytes, the limit on '%.*s'",
                                 rule->max_payload, (int)h->topic_len, topic);
                return false;
        }
        if (rule->max_fds >= 0 && h->n_fds - ((h->flags & WIRE_F_BULK) ? 1 : 0) > rule->max_fds) {
                connection_error(c, WIRE_E_TOO_LARGE, h->kind, h->corr, false,
                                 "more than %d file descriptors, the limit on '%.*s'",
                                 (int)rule->max_fds, (int)h->topic_len, topic);
                return false;
        }
        return true;
}

/* Takes ownership of @fds (h->n_fds of them). */
static int handle_publish(Connection *c, const WireHeader *h, const uint8_t *meta,
                          const char *topic, const int *fds) {
        const ConfigTopicRule *rule;
        Broker *b = c->broker;
        RouterTopic *known = c->last_topic;
        uint64_t bulk_size = 0;
        TopicCheck tc;
        Fanout f;
        int r;

        /* The same topic as the client's last publish is valid and known. */
        if (!known || c->last_topic_gen != b->conf_gen || known->name_len != h->topic_len ||
            memcmp(known->name, topic, h->topic_len) != 0) {
                known = NULL;
                tc = topic_name_check(topic, h->topic_len, b->limits.max_topic_len);
                if (tc != TOPIC_OK) {
                        connection_error(c, WIRE_E_BAD_TOPIC, h->kind, h->corr, true,
                                         "invalid topic name: %s", topic_check_str(tc));
                        goto refuse;
                }
        }
        if (h->flags & WIRE_F_BULK)
                bulk_size = le64_read(meta);
        if (!payload_acceptable(c, h, bulk_size, fds))
                goto refuse;
        if (topic[0] == '$') {
                connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                 "topics starting with '$' belong to the broker");
                goto refuse;
        }
        if (!acl_allows(c, ACL_PUBLISH, topic, h->topic_len)) {
                connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                 "permission denied: uid %u may not publish on '%.*s'",
                                 (unsigned)c->uid, (int)h->topic_len, topic);
                goto refuse;
        }
        f.topic = known ? known
                        : router_topic(b->router, topic, h->topic_len, true, b->config.max_topics, &r);
        if (!f.topic) {
                if (r == -ENOSPC)
                        connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                         "the broker already has %zu topics, its limit",
                                         b->config.max_topics);
                else
                        connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false,
                                         "out of memory");
                goto refuse;
        }
        c->last_topic = f.topic;
        c->last_topic_gen = b->conf_gen;
        rule = broker_topic_rule(b, f.topic, topic, h->topic_len);
        if (!rule_allows(c, h, rule, topic, bulk_size))
                goto refuse;
        if ((h->flags & WIRE_F_RETAIN) &&
            ((rule && !rule->retain) || b->config.retained_max_messages == 0 ||
             b->config.retained_max_bytes == 0)) {
                connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                 "retained messages are not allowed on '%.*s'", (int)h->topic_len,
                                 topic);
                goto refuse;
        }
        /* Over the retained limits a retained publish is refused whole:
         * nothing is delivered, nothing kept. */
        if ((h->flags & WIRE_F_RETAIN) && !(h->payload_len == 0 && h->n_fds == 0) &&
            !retain_fits(b, f.topic, retained_size((size_t)h->topic_len + h->payload_len, bulk_size))) {
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "not published: the broker keeps at most %u retained messages and %zu bytes",
                                 b->config.retained_max_messages, b->config.retained_max_bytes);
                goto refuse;
        }
        /* Topic and payload sit next to each other in the frame and in the
         * MESSAGE frame: one copy into a shared body serves every recipient,
         * and so do the fds, held once. */
        f.body = body_new_with_fds((size_t)h->topic_len + h->payload_len, fds, h->n_fds,
                                   &b->held_fds);
        if (!f.body) {
                connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
                return 0; /* body_new_with_fds closed the fds */
        }
        memcpy(f.body->data, topic, f.body->len);
        f.from = c;
        f.policy = rule ? rule->overflow : b->config.overflow;
        f.name = (const char *)f.body->data; /* the topic, first in the body */
        f.name_len = h->topic_len;

        c->stats.msgs_in++;
        route_message(b, &f, h->type, h->flags & WIRE_F_BULK, h->n_fds, bulk_size, c->pid, c->uid,
                      c->gid);
        if (h->flags & WIRE_F_RETAIN) {
                /* An empty retained publish clears the topic's. */
                bool clear = h->payload_len == 0 && h->n_fds == 0;
                r = retain(b, f.topic, f.body, f.hdr, clear);
                body_unref(f.body);
                if (r < 0) {
                        connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false,
                                         "delivered but not retained: out of memory");
                        return 0;
                }
        } else
                body_unref(f.body);

        if (h->flags & WIRE_F_ACK)
                return send_ack(c, h->corr);
        return 0;
refuse:
        close_fds(fds, h->n_fds);
        return 0;
}

/* What the answer to a frame's queueing means for the connection. */
static int answer_result(Connection *c, const WireHeader *h, int r) {
        /* A control answer that cannot be queued means the client floods us
         * with requests and never reads the answers. */
        if (r == -ENOBUFS) {
                connection_error(c, WIRE_E_SLOW_CONSUMER, h->kind, h->corr, true,
                                 "output queue full: the client does not read its answers");
                return 0;
        }
        return r == -ECONNABORTED ? 0 : r;
}


/* Collects the responders a request could go to (one subscription per
 * connection, admitting the type). */
static void collect_responder(Subscription *s, void *userdata) {
        Broker *b = userdata;
        if (b->n_cands < b->cap_cands)
                b->cands[b->n_cands++] = s;
}

static void collect_responder_group(Subscription **cands, size_t n, uint32_t *rr, void *userdata) {
        /* Responder subscriptions carry no group; nothing to do. */
        (void)cands;
        (void)n;
        (void)rr;
        (void)userdata;
}

/* REQUEST from a client: to one responder of the topic (the next in turn
 * with room), remembered with a deadline until its REPLY. */
static int handle_request(Connection *c, const WireHeader *h, const uint8_t *meta, const char *topic,
                          const int *fds) {
        Broker *b = c->broker;
        uint64_t timeout_ms, bulk_size = 0;
        uint8_t hdr[WIRE_HEADER_SIZE + WIRE_META_REQUEST_IN];
        Subscription *chosen = NULL;
        Connection *to = NULL;
        WireDelivery d;
        WireHeader mh;
        TopicCheck tc;
        Pending *p;
        Body *body;
        size_t i, start;

        if (h->meta_len != WIRE_META_REQUEST || le32_read(meta + 4) != 0) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "a client's REQUEST has 16 bytes of meta: timeout, 0, bulk size");
                goto refuse;
        }
        tc = topic_name_check(topic, h->topic_len, b->limits.max_topic_len);
        if (tc != TOPIC_OK) {
                connection_error(c, WIRE_E_BAD_TOPIC, h->kind, h->corr, true,
                                 "invalid request topic: %s", topic_check_str(tc));
                goto refuse;
        }
        timeout_ms = le32_read(meta);
        if (timeout_ms == 0)
                timeout_ms = b->conf->limits.request_timeout_ms;
        if (h->flags & WIRE_F_BULK)
                bulk_size = le64_read(meta + 8);
        if (!payload_acceptable(c, h, bulk_size, fds))
                goto refuse;
        if (topic[0] == '$' || !acl_allows(c, ACL_REQUEST, topic, h->topic_len)) {
                connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                                 "permission denied: uid %u may not send requests to '%.*s'",
                                 (unsigned)c->uid, (int)h->topic_len, topic);
                goto refuse;
        }
        if (!rule_allows(c, h, config_topic_rule(b->conf, topic, h->topic_len), topic, bulk_size))
                goto refuse;
        if (c->n_pending >= b->conf->limits.max_pending_requests) {
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "at most %u requests may be pending per connection",
                                 b->conf->limits.max_pending_requests);
                goto refuse;
        }

        /* Room for every responder as a candidate, without allocating
         * per request once it has grown. */
        if (b->cap_cands < router_n_subscriptions(b->services)) {
                size_t cap = router_n_subscriptions(b->services) * 2;
                Subscription **n = realloc(b->cands, cap * sizeof(*n));
                if (!n) {
                        connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
                        goto refuse;
                }
                b->cands = n;
                b->cap_cands = cap;
        }
        b->n_cands = 0;
        router_match(b->services, topic, h->topic_len, h->type, collect_responder,
                     collect_responder_group, b);
        if (b->n_cands == 0) {
                b->stats.no_responders++;
                connection_error(c, WIRE_E_NO_RESPONDERS, h->kind, h->corr, false,
                                 "no responders for '%.*s'", (int)h->topic_len, topic);
                goto refuse;
        }
        start = b->rr_requests++ % b->n_cands;
        body = body_new_with_fds((size_t)h->topic_len + h->payload_len, fds, h->n_fds, &b->held_fds);
        if (!body) {
                connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
                return 0;
        }
        memcpy(body->data, topic, body->len);
        for (i = 0; i < b->n_cands; i++) {
                Subscription *s = b->cands[(start + i) % b->n_cands];
                Connection *cand = container_of(s->owner, Connection, owner);
                if (cand->closing)
                        continue;
                if (!chosen)
                        chosen = s;
                if (connection_can_take(cand, sizeof(hdr), body)) {
                        chosen = s;
                        break;
                }
        }
        if (chosen)
                to = container_of(chosen->owner, Connection, owner);
        if (!to || !connection_can_take(to, sizeof(hdr), body)) {
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "every responder for '%.*s' is busy (its queue is full)",
                                 (int)h->topic_len, topic);
                body_unref(body);
                return 0;
        }
        p = pending_new(b, c, h->corr, to, body, h->topic_len, timeout_ms);
        if (!p) {
                connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
                body_unref(body);
                return 0;
        }
        mh = (WireHeader){
                .size = (uint32_t)(sizeof(hdr) + body->len), .version = WIRE_VERSION,
                .kind = WIRE_REQUEST, .flags = h->flags & WIRE_F_BULK, .type = h->type,
                .payload_len = h->payload_len, .topic_len = h->topic_len, .n_fds = h->n_fds,
                .meta_len = WIRE_META_REQUEST_IN, .corr = p->id,
        };
        d = (WireDelivery){
                .sender_pid = (uint32_t)c->pid, .sender_uid = (uint32_t)c->uid,
                .sender_gid = (uint32_t)c->gid, .sub_id = chosen->id, .bulk_size = bulk_size,
        };
        wire_header_encode(hdr, &mh);
        wire_delivery_encode(hdr + WIRE_HEADER_SIZE, &d);
        le32_write(hdr + WIRE_HEADER_SIZE + WIRE_META_REPLY_IN, (uint32_t)timeout_ms);
        le32_write(hdr + WIRE_HEADER_SIZE + WIRE_META_REPLY_IN + 4, 0);
        if (connection_queue(to, hdr, sizeof(hdr), body) < 0) {
                pending_done(b, p);
                connection_error(c, WIRE_E_LIMIT, h->kind, h->corr, false,
                                 "the responder for '%.*s' cannot take it", (int)h->topic_len, topic);
        } else {
                chosen->n_matched++;
                b->stats.requests++;
                c->stats.msgs_in++;
                to->stats.msgs_out++;
                if (b->n_monitors > 0) {
                        b->n_rcpt = 0;
                        monitor_note(b, to->id);
                        monitor_event(b, "request", topic, h->topic_len, h->type, c->pid, c->uid,
                                      c->id, body->data + h->topic_len, h->payload_len, bulk_size,
                                      h->n_fds, 0);
                }
        }
        body_unref(body);
        return 0;
refuse:
        close_fds(fds, h->n_fds);
        return 0;
}

/* REPLY from a responder: back to the requester of the pending request its
 * corr id names, if that is still pending and this client was asked. */
static int handle_reply(Connection *c, const WireHeader *h, const uint8_t *meta,
                        const uint8_t *payload, const int *fds) {
        Broker *b = c->broker;
        uint8_t hdr[WIRE_HEADER_SIZE + WIRE_META_REPLY_IN];
        uint64_t bulk_size;
        Connection *to;
        WireDelivery d;
        WireHeader mh;
        Pending *p;
        Body *body;
        int r;

        if (h->meta_len != WIRE_META_REPLY || h->topic_len != 0) {
                connection_error(c, WIRE_E_MALFORMED, h->kind, h->corr, true,
                                 "a responder's REPLY has 8 bytes of meta (bulk size) and no topic");
                goto refuse;
        }
        bulk_size = (h->flags & WIRE_F_BULK) ? le64_read(meta) : 0;
        if (!payload_acceptable(c, h, bulk_size, fds))
                goto refuse;
        p = pending_find(c, h->corr);
        if (!p) {
                /* Answered, timed out, its requester gone, or never asked
                 * of this client: nothing to deliver it to. */
                if (h->corr != 0 && h->corr <= b->next_request_id)
                        b->stats.late_replies++;
                connection_error(c, WIRE_E_NO_SUCH_REQUEST, h->kind, h->corr, false,
                                 "request %llu is not pending for this client (unknown, answered, timed out, or asked of another client)",
                                 (unsigned long long)h->corr);
                goto refuse;
        }
        to = p->requester;
        body = body_new_with_fds((size_t)p->topic_len + h->payload_len, fds, h->n_fds, &b->held_fds);
        if (!body) {
                connection_error(to, WIRE_E_INTERNAL, WIRE_REQUEST, p->requester_corr, false,
                                 "out of memory for the reply");
                pending_done(b, p);
                return 0;
        }
        memcpy(body->data, p->request->data, p->topic_len);
        if (h->payload_len)
                memcpy(body->data + p->topic_len, payload, h->payload_len);
        mh = (WireHeader){
                .size = (uint32_t)(sizeof(hdr) + body->len), .version = WIRE_VERSION,
                .kind = WIRE_REPLY, .flags = h->flags & WIRE_F_BULK, .type = h->type,
                .payload_len = h->payload_len, .topic_len = p->topic_len, .n_fds = h->n_fds,
                .meta_len = WIRE_META_REPLY_IN, .corr = p->requester_corr,
        };
        d = (WireDelivery){
                .sender_pid = (uint32_t)c->pid, .sender_uid = (uint32_t)c->uid,
                .sender_gid = (uint32_t)c->gid, .bulk_size = bulk_size,
        };
        wire_header_encode(hdr, &mh);
        wire_delivery_encode(hdr + WIRE_HEADER_SIZE, &d);
        /* The requester asked for it: like an answer, never dropped. */
        r = connection_queue(to, hdr, sizeof(hdr), body);
        if (r == 0) {
                b->stats.replies++;
                c->stats.msgs_in++;
                to->stats.msgs_out++;
                if (b->n_monitors > 0) {
                        b->n_rcpt = 0;
                        monitor_note(b, to->id);
                        monitor_event(b, "reply", (const char *)body->data, p->topic_len, h->type,
                                      c->pid, c->uid, c->id, payload, h->payload_len, bulk_size,
                                      h->n_fds, 0);
                }
        }
        body_unref(body);
        pending_done(b, p);
        if (r == -ENOBUFS)
                connection_error(to, WIRE_E_SLOW_CONSUMER, WIRE_REQUEST, mh.corr, true,
                                 "output queue full: the client does not read its replies");
        return 0;
refuse:
        close_fds(fds, h->n_fds);
        return 0;
}

/* Sends @json (@len bytes, taken over) as the ADMIN_REPLY to @h. The
 * caller evaluates the document before the call: argument order is
 * unspecified in C, so never pass `make(&len), len` in one call. */
static int send_json(Connection *c, const WireHeader *h, char *json, size_t len) {
        int r;
        if (!json) {
                connection_error(c, WIRE_E_INTERNAL, h->kind, h->corr, false, "out of memory");
                return 0;
        }
        r = connection_send(c, WIRE_ADMIN_REPLY, 0, 0, h->corr, NULL, 0, NULL, 0, json, len);
        free(json);
        return r;
}

static bool admin_allowed(Connection *c, const WireHeader *h, const char *what) {
        if (acl_allows(c, ACL_ADMIN, NULL, 0))
                return true;
        connection_error(c, WIRE_E_PERMISSION, h->kind, h->corr, false,
                         "permission denied: %s is an admin command", what);
        return false;
}

static bool command_is(const WireHeader *h, const char *cmd, const char *name) {
        return h->topic_len == strlen(name) && memcmp(cmd, name, h->topic_len) == 0;
}

/* ADMIN: the topic names the command, the payload is its argument. */
static int handle_admin(Connection *c, const WireHeader *h, const char *cmd, const uint8_t *arg) {
        Broker *b = c->broker;
        size_t len = 0;
        char *json;

        if (command_is(h, cmd, "status")) {
                /* Anyone may see the totals; who is connected and which
                 * topics exist are for administrators, as with clients
                 * and topics. */
                json = broker_status_json(b, acl_allows(c, ACL_ADMIN, NULL, 0), &len);
                return send_json(c, h, json, len);
        }
        if (command_is(h, cmd, "clients")) {
                if (!admin_allowed(c, h, "clients"))
                        return 0;
                json = broker_clients_json(b, &len);
                return send_json(c, h, json, len);
        }
        if (command_is(h, cmd, "topics")) {
                const char *filter = h->payload_len ? (const char *)arg : "#";
                size_t flen = h->payload_len ? h->payload_len : 1;
                TopicCheck tc;
                if (!admin_allowed(c, h, "topics"))
                        return 0;
                tc = topic_filter_check(filter, flen, b->limits.max_topic_len);
                if (tc != TOPIC_OK) {
                        connection_error(c, WIRE_E_BAD_FILTER, h->kind, h->corr, false,
                                         "invalid filter for topics: %s", topic_check_str(tc));
                        return 0;
                }
                json = broker_topics_json(b, filter, flen, &len);
                return send_json(c, h, json, len);
        }
        if (command_is(h, cmd, "kick")) {
                char idbuf[16], *end, reply[64];
                unsigned long id;
                Connection *victim;
                int n;
                if (!admin_allowed(c, h, "kick"))
                        return 0;
                if (h->payload_len == 0 || h->payload_len >= sizeof(idbuf)) {
                        connection_error(c, WIRE_E_BAD_COMMAND, h->kind, h->corr, false,
                                         "kick needs a client id");
                        return 0;
                }
                memcpy(idbuf, arg, h->payload_len);
                idbuf[h->payload_len] = 0;
                /* Digits only: no sign, no spaces, no NUL inside. */
                if (strspn(idbuf, "0123456789") != h->payload_len) {
                        connection_error(c, WIRE_E_BAD_COMMAND, h->kind, h->corr, false,
                                         "kick needs a client id (a decimal number)");
                        return 0;
                }
                errno = 0;
                id = strtoul(idbuf, &end, 10);
                victim = (errno || id == 0 || id > UINT32_MAX)
                                 ? NULL
                                 : broker_find_connection(b, (uint32_t)id);
                if (!victim || victim->closing) {
                        connection_error(c, WIRE_E_BAD_COMMAND, h->kind, h->corr, false,
                                         "no client with id %s", idbuf);
                        return 0;
                }
                log_notice("client %u (pid %d, uid %d) kicked by client %u (uid %d)", victim->id,
                           (int)victim->pid, (int)victim->uid, c->id, (int)c->uid);
                n = snprintf(reply, sizeof(reply), "{\"kicked\":%u}", victim->id);
                /* Answer first: the caller may be kicking itself. */
                if (victim != c) {
                        connection_error(victim, WIRE_E_KICKED, 0, 0, true,
                                         "disconnected by an administrator");
                        return connection_send(c, WIRE_ADMIN_REPLY, 0, 0, h->corr, NULL, 0, NULL, 0,
                                               reply, (size_t)n);
                }
                connection_send(c, WIRE_ADMIN_REPLY, 0, 0, h->corr, NULL, 0, NULL, 0, reply, (size_t)n);
                connection_error(c, WIRE_E_KICKED, 0, 0, true, "disconnected by an administrator");
                return 0;
        }
        if (command_is(h, cmd, "reload")) {
                char *error = NULL, reply[512];
                int r, n;
                if (!admin_allowed(c, h, "reload"))
                        return 0;
                r = broker_reload(b, &error);
                if (r < 0) {
                        connection_error(c, WIRE_E_BAD_CONFIG, h->kind, h->corr, false,
                                         "configuration not reloaded, the running one stays: %s",
                                         error ? error : strerror(-r));
                        free(error);
                        return 0;
                }
                n = snprintf(reply, sizeof(reply), "{\"reloaded\":true,\"reloads\":%llu}",
                             (unsigned long long)b->reloads);
                return connection_send(c, WIRE_ADMIN_REPLY, 0, 0, h->corr, NULL, 0, NULL, 0, reply,
                                       (size_t)n);
        }
        connection_error(c, WIRE_E_BAD_COMMAND, h->kind, h->corr, false,
                         "unknown admin command (this broker knows: status, clients, topics, kick, reload)");
        return 0;
}

int protocol_handle(Connection *c, const WireHeader *h, const uint8_t *frame, const int *fds) {
        const uint8_t *meta = frame + WIRE_HEADER_SIZE;
        const char *topic = (const char *)meta + h->meta_len;
        const uint8_t *payload = (const uint8_t *)topic + h->topic_len;
        int r = 0;

        if (!c->welcomed && h->kind != WIRE_HELLO) {
                connection_error(c, WIRE_E_HANDSHAKE, h->kind, h->corr, true,
                                 "the first frame must be HELLO, not %s", wire_kind_name(h->kind));
                close_fds(fds, h->n_fds);
                return 0;
        }
        if (h->kind == WIRE_PUBLISH)
                return answer_result(c, h, handle_publish(c, h, meta, topic, fds));
        if (h->kind == WIRE_REQUEST)
                return answer_result(c, h, handle_request(c, h, meta, topic, fds));
        if (h->kind == WIRE_REPLY)
                return answer_result(c, h, handle_reply(c, h, meta, payload, fds));
        /* Only PUBLISH uses fds in this version; the header check let the
         * others through only for the kinds reserved for them. */
        close_fds(fds, h->n_fds);

        switch (h->kind) {
        case WIRE_HELLO:
                r = handle_hello(c, h, meta, payload);
                break;
        case WIRE_SUBSCRIBE:
                r = handle_subscribe(c, h, meta, topic, payload);
                break;
        case WIRE_UNSUBSCRIBE:
                r = handle_unsubscribe(c, h, meta);
                break;
        case WIRE_PING:
                r = connection_send(c, WIRE_PONG, 0, 0, h->corr, NULL, 0, NULL, 0, payload,
                                    h->payload_len);
                break;
        case WIRE_PONG:
                break;
        case WIRE_ADMIN:
                r = handle_admin(c, h, topic, payload);
                break;
        default:
                connection_error(c, WIRE_E_KIND, h->kind, h->corr, true,
                                 "%s frames are sent by the broker, not by clients",
                                 wire_kind_name(h->kind));
                break;
        }
        return answer_result(c, h, r);
}
