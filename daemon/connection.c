/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "acl.h"
#include "broker.h"
#include "connection.h"
#include "log.h"
#include "protocol.h"
#include "request.h"
#include "utf8.h"
#include "util.h"

/* iovecs per sendmsg: two per queued frame (inline header, shared body). */
#define IOV_BATCH 512
/* How long a connection closed for an error may take to read its last
 * frames. */
#define CONNECTION_LINGER_SEC 2
/* Smallest allocation for a partial frame carried over between reads. */
#define IN_MIN_CAP (16 * 1024)

/*
 * Small bodies come from a pool: publishing is the hot path, and a malloc
 * and a free per message cost more than routing it. Each size class keeps
 * a bounded free list (the memory of a burst is kept for the next one, up
 * to BODY_POOL_KEEP bytes per class); bigger bodies, and bodies once the
 * free list is full, go to malloc. The broker is one thread, so the pool is
 * process-wide.
 */
#define BODY_POOL_CLASSES 4
#define BODY_POOL_KEEP (512 * 1024)
#define BODY_UNPOOLED UINT8_MAX

/* A bounded list of free blocks of one size, kept for reuse. */
typedef struct FreeBlock {
        struct FreeBlock *next;
} FreeBlock;

typedef struct FreeList {
        FreeBlock *head;
        size_t n, max;
} FreeList;

/* A block from @l, or NULL when it has none. */
static void *freelist_pop(FreeList *l) {
        FreeBlock *f = l->head;

        if (!f)
                return NULL;
        l->head = f->next;
        l->n--;
        return f;
}

/* Keeps @p in @l, or frees it when @l is full. */
static void freelist_push(FreeList *l, void *p) {
        FreeBlock *f = p;

        if (l->n >= l->max) {
                free(p);
                return;
        }
        f->next = l->head;
        l->head = f;
        l->n++;
}

static void freelist_clear(FreeList *l) {
        while (l->head)
                free(freelist_pop(l));
}

static const size_t body_class_size[BODY_POOL_CLASSES] = { 128, 512, 2048, 8192 };
static FreeList body_pool[BODY_POOL_CLASSES] = {
        { .max = BODY_POOL_KEEP / 128 },
        { .max = BODY_POOL_KEEP / 512 },
        { .max = BODY_POOL_KEEP / 2048 },
        { .max = BODY_POOL_KEEP / 8192 },
};

/*
 * Output rings of the smallest size are pooled too: a connection frees its
 * ring whenever the queue empties (an idle connection keeps none), so a
 * subscriber that keeps up would otherwise allocate one per delivery.
 */
#define RING_MIN 16
#define RING_POOL_KEEP 64

static FreeList ring_pool = { .max = RING_POOL_KEEP };

static OutEntry *ring_alloc(size_t cap) {
        OutEntry *ring = cap == RING_MIN ? freelist_pop(&ring_pool) : NULL;

        return ring ? ring : malloc(cap * sizeof(OutEntry));
}

static void ring_free(OutEntry *ring, size_t cap) {
        if (!ring)
                return;
        if (cap == RING_MIN)
                freelist_push(&ring_pool, ring);
        else
                free(ring);
}

static uint8_t body_class(size_t alloc) {
        uint8_t i;
        for (i = 0; i < BODY_POOL_CLASSES; i++)
                if (alloc <= body_class_size[i])
                        return i;
        return BODY_UNPOOLED;
}

void body_pool_trim(void) {
        size_t i;

        for (i = 0; i < BODY_POOL_CLASSES; i++)
                freelist_clear(&body_pool[i]);
        freelist_clear(&ring_pool);
}

Body *body_new_with_fds(size_t len, const int *fds, size_t n_fds, size_t *held_fds) {
        size_t off = (sizeof(Body) + len + alignof(int) - 1) & ~(alignof(int) - 1);
        size_t alloc = off + n_fds * sizeof(int);
        uint8_t cls = body_class(alloc);
        Body *b = NULL;
        size_t i;

        if (len > UINT32_MAX || n_fds > UINT16_MAX)
                goto fail;
        if (cls != BODY_UNPOOLED)
                b = freelist_pop(&body_pool[cls]);
        if (!b && !(b = malloc(cls != BODY_UNPOOLED ? body_class_size[cls] : alloc)))
                goto fail;
        b->n_refs = 1;
        b->len = (uint32_t)len;
        b->n_fds = (uint16_t)n_fds;
        b->pool_class = cls;
        b->fds = (int *)(void *)((char *)b + off);
        b->held_fds = held_fds;
        if (n_fds) {
                memcpy(b->fds, fds, n_fds * sizeof(int));
                if (held_fds)
                        *held_fds += n_fds;
        }
        return b;

fail:
        for (i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        return NULL;
}

Body *body_unref(Body *b) {
        size_t i;

        if (!b || --b->n_refs > 0)
                return NULL;
        for (i = 0; i < b->n_fds; i++)
                safe_close(b->fds[i]);
        if (b->held_fds)
                *b->held_fds -= b->n_fds;
        if (b->pool_class != BODY_UNPOOLED)
                freelist_push(&body_pool[b->pool_class], b);
        else
                free(b);
        return NULL;
}

static size_t body_n_fds(const Body *b) {
        return b ? b->n_fds : 0;
}

static size_t entry_size(const OutEntry *e) {
        return e->hdr_len + (e->body ? e->body->len : 0);
}

static size_t entry_charge(const OutEntry *e) {
        return sizeof(OutEntry) + entry_size(e);
}

/* The command name of @pid (for introspection only: it may lie). */
static void peer_comm(pid_t pid, char *buf, size_t size) {
        char path[64];
        ssize_t n;
        int fd;

        buf[0] = 0;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        n = read(fd, buf, size - 1);
        close(fd);
        if (n <= 0) {
                buf[0] = 0;
                return;
        }
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        /* The process chose it: keep it printable ASCII for logs and JSON. */
        for (; *buf; buf++)
                if ((unsigned char)*buf < 0x20 || (unsigned char)*buf >= 0x7f)
                        *buf = '?';
}

static void on_read(evutil_socket_t fd, short what, void *userdata);
static void on_write(evutil_socket_t fd, short what, void *userdata);
static void on_linger(evutil_socket_t fd, short what, void *userdata);
static void on_hello_timeout(evutil_socket_t fd, short what, void *userdata);

int connection_new(Connection **ret, Broker *b, int fd, uint32_t id, pid_t pid, uid_t uid,
                   gid_t gid) {
        Connection *c = calloc(1, sizeof(*c));
        struct timeval hello = {
                .tv_sec = b->config.hello_timeout_ms / 1000,
                .tv_usec = (suseconds_t)(b->config.hello_timeout_ms % 1000) * 1000,
        };

        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->broker = b;
        c->fd = fd;
        c->id = id;
        c->pid = pid;
        c->uid = uid;
        c->gid = gid;
        peer_comm(pid, c->comm, sizeof(c->comm));
        /* Supplementary groups count for the access rules; a kernel too old
         * to tell (before 4.13) leaves only the primary group. */
        if (acl_peer_groups(fd, &c->groups, &c->n_groups) < 0) {
                c->groups = NULL;
                c->n_groups = 0;
        }
        c->ev_read = event_new(b->base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->ev_write = event_new(b->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
        c->ev_hello = evtimer_new(b->base, on_hello_timeout, c);
        if (!c->ev_read || !c->ev_write || !c->ev_hello || event_add(c->ev_read, NULL) < 0 ||
            evtimer_add(c->ev_hello, &hello) < 0) {
                connection_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static void flush_list_remove(Connection *c) {
        Connection **p;

        if (!c->in_flush_list)
                return;
        for (p = &c->broker->flush_list; *p; p = &(*p)->flush_next)
                if (*p == c) {
                        *p = c->flush_next;
                        break;
                }
        c->in_flush_list = false;
        c->flush_next = NULL;
}

Connection *connection_free(Connection *c) {
        size_t i;

        if (!c)
                return NULL;
        flush_list_remove(c);
        /* Publishers waiting for this queue wait no more; and this one, if
         * it waited, leaves its recipient's list. */
        while (c->waiters) {
                Connection *w = c->waiters;
                c->waiters = w->waiter_next;
                connection_resume(w);
        }
        if (c->blocked_on) {
                Connection **p;
                for (p = &c->blocked_on->waiters; *p; p = &(*p)->waiter_next)
                        if (*p == c) {
                                *p = c->waiter_next;
                                break;
                        }
        }
        pending_connection_gone(c);
        for (i = 0; i < c->n_subs; i++) {
                if (c->subs[i]->flags & SUB_F_MONITOR)
                        c->broker->n_monitors--;
                router_remove(broker_router_of(c->broker, c->subs[i]), c->subs[i]);
                subscription_free(c->subs[i]);
        }
        free(c->subs);
        for (i = 0; i < c->out_count; i++)
                body_unref(c->out[(c->out_head + i) & (c->out_cap - 1)].body);
        if (c->user) {
                c->user->queued_bytes -= c->out_bytes;
                c->user->queued_fds -= c->out_fds;
                broker_user_put(c->broker, c->user);
        }
        ring_free(c->out, c->out_cap);
        free(c->in);
        for (i = 0; i < c->fdq_len; i++)
                safe_close(c->fdq[i]);
        free(c->fdq);
        free(c->groups);
        if (c->ev_read)
                event_free(c->ev_read);
        if (c->ev_write)
                event_free(c->ev_write);
        if (c->ev_linger)
                event_free(c->ev_linger);
        if (c->ev_hello)
                event_free(c->ev_hello);
        safe_close(c->fd);
        free(c);
        return NULL;
}

static int out_grow(Connection *c) {
        size_t cap = c->out_cap ? c->out_cap * 2 : RING_MIN, i;
        OutEntry *n = ring_alloc(cap);

        if (!n)
                return -ENOMEM;
        for (i = 0; i < c->out_count; i++)
                n[i] = c->out[(c->out_head + i) & (c->out_cap - 1)];
        ring_free(c->out, c->out_cap);
        c->out = n;
        c->out_cap = cap;
        c->out_head = 0;
        return 0;
}

static void charge(Connection *c, ssize_t bytes, ssize_t fds) {
        c->out_bytes += (size_t)bytes;
        c->out_fds += (size_t)fds;
        if (c->user) {
                c->user->queued_bytes += (size_t)bytes;
                c->user->queued_fds += (size_t)fds;
        }
}

/* Would @bytes and @fds more fit @c's queue, with every limit times
 * @factor? */
static bool has_room(const Connection *c, size_t bytes, size_t fds, size_t factor) {
        const BrokerConfig *cfg = &c->broker->config;
        const UserAcct *u = c->user;

        return c->out_bytes + bytes <= factor * cfg->out_queue_bytes &&
               c->out_msgs + 1 <= factor * cfg->queue_messages &&
               c->out_fds + fds <= factor * cfg->queue_fds &&
               (!u || (u->queued_bytes + bytes <= factor * cfg->user_queue_bytes &&
                       u->queued_fds + fds <= factor * cfg->user_fds));
}

bool connection_can_take(const Connection *c, size_t hdr_len, const Body *body) {
        return !c->closing &&
               has_room(c, sizeof(OutEntry) + hdr_len + (body ? body->len : 0), body_n_fds(body), 1);
}

/* Appends an entry; the caller checked the limits. */
static int queue_entry(Connection *c, const uint8_t *hdr, size_t hdr_len, Body *body,
                       RouterTopic *topic) {
        OutEntry *e;
        int r;

        if (hdr_len > OUT_HDR_MAX)
                return -EINVAL;
        if (c->out_count == c->out_cap) {
                r = out_grow(c);
                if (r < 0)
                        return r;
        }
        e = &c->out[(c->out_head + c->out_count) & (c->out_cap - 1)];
        memcpy(e->hdr, hdr, hdr_len);
        e->hdr_len = (uint16_t)hdr_len;
        e->body = body_ref(body);
        e->topic = topic;
        e->sent = 0;
        e->fds_sent = false;
        e->droppable = topic != NULL;
        c->out_count++;
        if (e->droppable)
                c->out_msgs++;
        charge(c, (ssize_t)entry_charge(e), (ssize_t)body_n_fds(body));
        broker_schedule_flush(c->broker, c);
        return 0;
}

void connection_trim(Connection *c) {
        if (c->out_count > 0 || !c->out)
                return;
        if (c->out_cap > RING_MIN && !c->ring_idle) {
                c->ring_idle = true; /* empty since the last trim: next time */
                return;
        }
        ring_free(c->out, c->out_cap);
        c->out = NULL;
        c->out_cap = 0;
        c->out_head = 0;
        c->ring_idle = false;
}

int connection_queue(Connection *c, const uint8_t *hdr, size_t hdr_len, Body *body) {
        size_t cost = sizeof(OutEntry) + hdr_len + (body ? body->len : 0);

        if (c->closing)
                return -ECONNABORTED;
        if (c->out_bytes + cost > 2 * c->broker->config.out_queue_bytes)
                return -ENOBUFS;
        return queue_entry(c, hdr, hdr_len, body, NULL);
}

static void count_drop(Connection *c, RouterTopic *topic) {
        c->stats.drops++;
        c->broker->stats.drops++;
        if (topic)
                topic->n_dropped++;
}

/* Cancels the oldest delivery that has not started going out: frees its
 * body and takes its entry out of the queue, so that it no longer counts
 * against the limits. Returns false when there is none. */
static bool cancel_oldest(Connection *c) {
        size_t mask = c->out_cap - 1, i, j;

        for (i = 0; i < c->out_count; i++) {
                OutEntry *e = &c->out[(c->out_head + i) & mask];
                if (!e->droppable || e->sent > 0 || e->fds_sent)
                        continue;
                count_drop(c, e->topic);
                charge(c, -(ssize_t)entry_charge(e), -(ssize_t)body_n_fds(e->body));
                body_unref(e->body);
                c->out_msgs--;
                /* Close the gap: the @i entries ahead of it (the ones the
                 * search above passed) move one slot on, in order. Leaving
                 * an empty entry instead would keep its charge, and enough
                 * of them fill the queue with nothing. */
                for (j = i; j > 0; j--)
                        c->out[(c->out_head + j) & mask] = c->out[(c->out_head + j - 1) & mask];
                c->out_head = (c->out_head + 1) & mask;
                c->out_count--;
                return true;
        }
        return false;
}

static void pause_on(Connection *from, Connection *to) {
        if (from->paused || from == to || from->closing)
                return;
        from->paused = true;
        from->blocked_on = to;
        from->waiter_next = to->waiters;
        to->waiters = from;
        event_del(from->ev_read);
        log_debug("client %u blocked until client %u reads", from->id, to->id);
}

void connection_resume(Connection *c) {
        if (!c->paused)
                return;
        c->paused = false;
        c->blocked_on = NULL;
        c->waiter_next = NULL;
        if (c->closing)
                return;
        /* Frames already read wait in c->in: have on_read parse them even
         * if the socket has nothing new. */
        c->resume_pending = true;
        event_add(c->ev_read, NULL);
        event_active(c->ev_read, EV_READ, 0);
}

int connection_deliver(Connection *to, const uint8_t *hdr, size_t hdr_len, Body *body,
                       RouterTopic *topic, OverflowPolicy policy, Connection *from) {
        size_t cost = sizeof(OutEntry) + hdr_len + (body ? body->len : 0);
        size_t fds = body_n_fds(body);
        int r;

        if (to->closing)
                return -ECONNABORTED;
        if (!has_room(to, cost, fds, 1)) {
                switch (policy) {
                case OVERFLOW_DROP_OLD:
                        while (!has_room(to, cost, fds, 1) && cancel_oldest(to))
                                ;
                        break;
                case OVERFLOW_DISCONNECT: {
                        /* The ERROR says what was queued; what the client
                         * has not started to receive is dropped, so that the
                         * ERROR comes next. */
                        size_t bytes = to->out_bytes, msgs = to->out_msgs, n_fds = to->out_fds;

                        while (cancel_oldest(to))
                                ;
                        count_drop(to, topic);
                        connection_error(to, WIRE_E_SLOW_CONSUMER, WIRE_MESSAGE, 0, true,
                                         "slow consumer: output queue full (%zu bytes, %zu messages, %zu fds queued)",
                                         bytes, msgs, n_fds);
                        return -ECONNABORTED;
                }
                case OVERFLOW_BLOCK:
                        /* Queue it anyway, within twice the limits, and
                         * hold the publisher back until this queue drains. */
                        if (from && has_room(to, cost, fds, 2)) {
                                pause_on(from, to);
                                goto queue;
                        }
                        break;
                default:
                        break;
                }
                if (!has_room(to, cost, fds, 1)) {
                        count_drop(to, topic);
                        return -ENOBUFS;
                }
        }
queue:
        r = queue_entry(to, hdr, hdr_len, body, topic);
        if (r < 0) {
                count_drop(to, topic);
                return -ENOBUFS;
        }
        return 0;
}

int connection_send(Connection *c, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
                    const void *meta, size_t meta_len, const void *topic, size_t topic_len,
                    const void *payload, size_t payload_len) {
        uint8_t hdr[OUT_HDR_MAX];
        Body *body = NULL;
        size_t n;
        int r;

        if (meta_len > OUT_HDR_MAX - WIRE_HEADER_SIZE)
                return -EINVAL;
        /* Header and meta inline; topic and payload, if any, in one body. */
        n = wire_frame_encode(hdr, sizeof(hdr), kind, flags, type, corr, 0, meta, meta_len, NULL, 0,
                              NULL, 0);
        if (n == 0)
                return -EINVAL;
        if (topic_len + payload_len > 0) {
                WireHeader h;
                uint64_t size = (uint64_t)n + topic_len + payload_len;
                if (topic_len > UINT16_MAX || size > UINT32_MAX)
                        return -EMSGSIZE;
                body = body_new(topic_len + payload_len);
                if (!body)
                        return -ENOMEM;
                if (topic_len)
                        memcpy(body->data, topic, topic_len);
                if (payload_len)
                        memcpy(body->data + topic_len, payload, payload_len);
                /* Patch the lengths the empty encode left at zero. */
                h = (WireHeader){
                        .size = (uint32_t)size, .version = WIRE_VERSION, .kind = kind,
                        .flags = flags, .type = type, .payload_len = (uint32_t)payload_len,
                        .topic_len = (uint16_t)topic_len, .meta_len = (uint8_t)meta_len,
                        .corr = corr,
                };
                wire_header_encode(hdr, &h);
        }
        r = connection_queue(c, hdr, n, body);
        body_unref(body);
        return r;
}

void connection_welcome_done(Connection *c) {
        if (c->ev_hello) {
                event_free(c->ev_hello);
                c->ev_hello = NULL;
        }
}

/* Reads nothing more; the connection goes once its queue is written, or
 * when @linger_ms ran out. */
static void stop_reading(Connection *c, uint32_t linger_ms) {
        struct timeval tv = { .tv_sec = linger_ms / 1000, .tv_usec = (linger_ms % 1000) * 1000 };

        c->closing = true;
        event_del(c->ev_read);
        if (!c->ev_linger && linger_ms > 0) {
                c->ev_linger = evtimer_new(c->broker->base, on_linger, c);
                if (c->ev_linger)
                        evtimer_add(c->ev_linger, &tv);
        }
        broker_schedule_flush(c->broker, c);
}

int connection_goodbye(Connection *c, const char *reason, uint32_t linger_ms) {
        if (!c->welcomed)
                return -ECONNABORTED;
        if (c->closing) /* a fatal ERROR is on its way: that is its last word */
                return 0;
        if (connection_send(c, WIRE_GOODBYE, 0, 0, 0, NULL, 0, NULL, 0, reason, strlen(reason)) < 0)
                return -ECONNABORTED;
        stop_reading(c, linger_ms);
        return 0;
}

void connection_error(Connection *c, WireError code, unsigned ref_kind, uint64_t corr, bool fatal,
                      const char *fmt, ...) {
        uint8_t meta[WIRE_META_ERROR];
        char text[512];
        va_list ap;
        int n, r;

        if (c->closing)
                return;
        va_start(ap, fmt);
        n = vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t)n >= sizeof(text)) {
                /* Cut short (a long topic in it): the text must stay UTF-8,
                 * so a character the cut split goes whole. */
                size_t i = sizeof(text) - 1;
                n = (int)i;
                while (i > 0 && ((unsigned char)text[i - 1] & 0xc0) == 0x80)
                        i--;
                if (i > 0 && utf8_char_len((const unsigned char *)text + i - 1, (size_t)n - (i - 1)) == 0)
                        n = (int)(i - 1);
                text[n] = 0;
        }

        log_debug("client %u (pid %d): %serror %s: %s", c->id, (int)c->pid,
                  fatal ? "fatal " : "", wire_error_name(code), text);
        wire_error_meta_encode(meta, code, ref_kind);
        r = connection_send(c, WIRE_ERROR, fatal ? WIRE_F_FATAL : 0, 0, corr, meta, sizeof(meta),
                            NULL, 0, text, (size_t)n);
        c->broker->stats.errors++;
        c->stats.errors++;
        if (fatal || r < 0) {
                /* Read nothing more; it closes once its queue (now ending
                 * with this ERROR) is written, or after a short linger. */
                stop_reading(c, CONNECTION_LINGER_SEC * 1000);
                if (fatal) {
                        char f_id[32], f_pid[32], f_uid[32], f_err[64];
                        const char *fields[] = { f_id, f_pid, f_uid, f_err, NULL };
                        snprintf(f_id, sizeof(f_id), "IPCD_CLIENT_ID=%u", c->id);
                        snprintf(f_pid, sizeof(f_pid), "IPCD_CLIENT_PID=%d", (int)c->pid);
                        snprintf(f_uid, sizeof(f_uid), "IPCD_CLIENT_UID=%d", (int)c->uid);
                        snprintf(f_err, sizeof(f_err), "IPCD_ERROR=%s", wire_error_name(code));
                        log_fields(LOG_INFO, 0, fields, "client %u (pid %d, uid %d) disconnected: %s",
                                   c->id, (int)c->pid, (int)c->uid, text);
                }
        }
}

Subscription *connection_find_sub(Connection *c, uint32_t id) {
        size_t i;
        for (i = 0; i < c->n_subs; i++)
                if (c->subs[i]->id == id)
                        return c->subs[i];
        return NULL;
}

static void out_pop(Connection *c) {
        OutEntry *e = &c->out[c->out_head];

        charge(c, -(ssize_t)entry_charge(e), -(ssize_t)body_n_fds(e->body));
        if (e->droppable)
                c->out_msgs--;
        body_unref(e->body);
        e->body = NULL;
        c->out_head = (c->out_head + 1) & (c->out_cap - 1);
        c->out_count--;
}

/* Drops the frame at the head of the queue, unsent. */
static void out_drop_head(Connection *c) {
        count_drop(c, c->out[c->out_head].topic);
        out_pop(c);
}

int connection_flush(Connection *c) {
        struct iovec iov[IOV_BATCH];
        int fds[WIRE_MAX_FDS_PER_SENDMSG];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
        } ctrl;
        bool fds_refused = false;

        while (c->out_count > 0) {
                struct msghdr msg = { .msg_iov = iov };
                size_t n_iov = 0, n_fds = 0, n_fd_entries = 0, bytes = 0, cap = SIZE_MAX, i;
                ssize_t n;

                if (entry_size(&c->out[c->out_head]) == 0) {
                        out_pop(c); /* cancelled by drop-old */
                        continue;
                }

                /*
                 * The fds of a frame go with the sendmsg that carries its
                 * first byte. A sendmsg with fds carries at most
                 * WIRE_FD_SENDMSG_MAX_BYTES, which the kernel never splits,
                 * so no fd can arrive ahead of its frame.
                 */
                for (i = 0; i < c->out_count && n_iov + 2 <= IOV_BATCH && bytes < cap; i++) {
                        OutEntry *e = &c->out[(c->out_head + i) & (c->out_cap - 1)];
                        size_t skip = e->sent, k;

                        if (body_n_fds(e->body) > 0 && !e->fds_sent) {
                                if (fds_refused || bytes >= WIRE_FD_SENDMSG_MAX_BYTES ||
                                    n_fds + e->body->n_fds > WIRE_MAX_FDS_PER_SENDMSG)
                                        break;
                                cap = WIRE_FD_SENDMSG_MAX_BYTES;
                                for (k = 0; k < e->body->n_fds; k++)
                                        fds[n_fds++] = e->body->fds[k];
                                n_fd_entries = i + 1;
                        }
                        if (skip < e->hdr_len) {
                                size_t len = e->hdr_len - skip;
                                if (len > cap - bytes)
                                        len = cap - bytes;
                                iov[n_iov++] = (struct iovec){ e->hdr + skip, len };
                                bytes += len;
                                skip = 0;
                        } else
                                skip -= e->hdr_len;
                        if (e->body && skip < e->body->len && bytes < cap) {
                                size_t len = e->body->len - skip;
                                if (len > cap - bytes)
                                        len = cap - bytes;
                                iov[n_iov++] = (struct iovec){ e->body->data + skip, len };
                                bytes += len;
                        }
                }
                if (n_iov == 0) {
                        /* The head frame needs fds the kernel refuses us:
                         * it cannot go without them. */
                        out_drop_head(c);
                        fds_refused = false;
                        continue;
                }
                msg.msg_iovlen = n_iov;
                if (n_fds > 0) {
                        struct cmsghdr *cm;
                        msg.msg_control = ctrl.buf;
                        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        memset(ctrl.buf, 0, msg.msg_controllen); /* padding too */
                        cm = CMSG_FIRSTHDR(&msg);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
                }
                n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                if (event_add(c->ev_write, NULL) < 0)
                                        return -ENOMEM;
                                break;
                        }
                        if (n_fds > 0 && (errno == ETOOMANYREFS || errno == EMFILE || errno == ENFILE)) {
                                /* Too many fds in flight for our user: send
                                 * what needs none, drop what does. */
                                log_debug_errno(errno, "client %u: cannot pass fds: %m", c->id);
                                fds_refused = true;
                                continue;
                        }
                        return -errno;
                }
                /* All attached fds went with the first byte of this call. */
                for (i = 0; i < n_fd_entries; i++) {
                        OutEntry *e = &c->out[(c->out_head + i) & (c->out_cap - 1)];
                        if (body_n_fds(e->body) > 0 && !e->fds_sent) {
                                e->fds_sent = true;
                                c->stats.fds_out += e->body->n_fds;
                        }
                }
                fds_refused = false;
                c->stats.bytes_out += (uint64_t)n;
                c->broker->stats.bytes_out += (uint64_t)n;
                while (n > 0 && c->out_count > 0) {
                        OutEntry *e = &c->out[c->out_head];
                        size_t left = entry_size(e) - e->sent;
                        if ((size_t)n >= left) {
                                n -= (ssize_t)left;
                                out_pop(c);
                        } else {
                                e->sent += (uint32_t)n;
                                n = 0;
                        }
                }
        }
        /* Publishers blocked on this queue go on once it is half empty. */
        if (c->waiters && c->out_bytes <= c->broker->config.out_queue_bytes / 2 &&
            c->out_msgs <= c->broker->config.queue_messages / 2) {
                while (c->waiters) {
                        Connection *w = c->waiters;
                        c->waiters = w->waiter_next;
                        connection_resume(w);
                }
        }
        if (c->out_count == 0) {
                event_del(c->ev_write);
                c->out_head = 0;
                /* An idle connection keeps no ring. A small one goes back to
                 * the pool at once; a grown one serves the next burst and
                 * goes at the next trim if it stays empty until then
                 * (connection_trim()), so a busy subscriber does not
                 * allocate a large ring for every batch. */
                if (c->out_cap <= RING_MIN)
                        connection_trim(c);
                else
                        c->ring_idle = false;
        }
        /* A connection with a fatal error goes once its ERROR frame is
         * written (or its linger timer runs out, or it cannot linger). */
        if (c->closing && (c->out_count == 0 || !c->ev_linger))
                return -ECONNABORTED;
        return 0;
}

/* Parses every complete frame in @buf. Returns the bytes consumed, or a
 * negative errno when the connection must be dropped. */
static ssize_t parse(Connection *c, const uint8_t *buf, size_t len) {
        size_t off = 0;

        while (!c->closing && !c->paused && len - off >= WIRE_HEADER_SIZE) {
                const char *why;
                WireHeader h;
                WireError e;
                int r;

                e = wire_header_decode(buf + off, &c->broker->limits, &h, &why);
                if (e != WIRE_E_OK) {
                        connection_error(c, e, buf[off + WIRE_OFF_KIND],
                                         le64_read(buf + off + WIRE_OFF_CORR), true, "%s", why);
                        break;
                }
                if (len - off < h.size)
                        break;
                /* A frame's fds come with its first byte or earlier. */
                if (h.n_fds > c->fdq_len) {
                        connection_error(c, WIRE_E_FDS, h.kind, h.corr, true,
                                         "frame declares %u file descriptors but %zu arrived with it",
                                         h.n_fds, c->fdq_len);
                        break;
                }
                r = protocol_handle(c, &h, buf + off, c->fdq);
                /* protocol_handle took the frame's fds, whatever it returned. */
                c->fdq_len -= h.n_fds;
                if (c->fdq_len > 0 && h.n_fds > 0)
                        memmove(c->fdq, c->fdq + h.n_fds, c->fdq_len * sizeof(int));
                if (r < 0)
                        return r;
                off += h.size;
        }
        return (ssize_t)off;
}

/* Makes room in c->in for the rest of the frame whose first @have bytes
 * are at @start (c->in itself, or the shared buffer they are copied from). */
static int in_reserve(Connection *c, const uint8_t *start, size_t have) {
        size_t want = IN_MIN_CAP;
        uint8_t *n;

        if (have >= WIRE_HEADER_SIZE) {
                /* The header was checked when the frame started. Grow with
                 * what has arrived, not with what the header claims: a
                 * client that declares 1 MiB and stalls costs what it sent. */
                size_t size = le32_read(start + WIRE_OFF_SIZE), step = have * 2;
                if (step < want)
                        step = want;
                want = size < step ? size : step;
                if (want < IN_MIN_CAP)
                        want = IN_MIN_CAP;
        }
        if (want <= have)
                want = have + IN_MIN_CAP;
        if (c->in_cap >= want)
                return 0;
        n = realloc(c->in, want);
        if (!n)
                return -ENOMEM;
        c->in = n;
        c->in_cap = want;
        return 0;
}

/* Moves every fd in @msg's control data to the connection's fd queue (or
 * closes it when the queue cannot grow). Returns how many arrived. */
static size_t take_passed_fds(Connection *c, struct msghdr *msg) {
        struct cmsghdr *cm;
        size_t n = 0;

        for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
                size_t k, i;
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                if (c->fdq_len + k > c->fdq_cap) {
                        size_t cap = c->fdq_len + k;
                        int *q = realloc(c->fdq, cap * sizeof(int));
                        if (q) {
                                c->fdq = q;
                                c->fdq_cap = cap;
                        }
                }
                for (i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (c->fdq_len < c->fdq_cap)
                                c->fdq[c->fdq_len++] = fd;
                        else
                                safe_close(fd); /* out of memory: the frame will miss it */
                }
                n += k;
        }
        return n;
}

/* After a batch of frames: fds nobody can claim are a protocol error. The
 * kernel hands over a sendmsg's fds with any of its bytes, so fds may
 * arrive ahead of frames whose bytes are still in the socket; only once the
 * socket is drained must every queued fd belong to a frame already begun. */
static void check_unclaimed_fds(Connection *c) {
        size_t allowed;
        int pending = 0;

        if (c->closing || c->paused || c->fdq_len == 0)
                return;
        /* Early fds are at most one sendmsg's worth beyond the pending frame. */
        if (c->fdq_len > WIRE_MAX_FDS_PER_SENDMSG + (size_t)c->broker->limits.max_fds) {
                connection_error(c, WIRE_E_FDS, 0, 0, true,
                                 "%zu file descriptors queued that no frame has claimed", c->fdq_len);
                return;
        }
        if (ioctl(c->fd, FIONREAD, &pending) < 0 || pending > 0)
                return;
        if (c->in_len == 0)
                allowed = 0; /* at a frame boundary */
        else if (c->in_len >= WIRE_HEADER_SIZE)
                allowed = c->in[WIRE_OFF_N_FDS]; /* the pending frame's */
        else
                allowed = c->broker->limits.max_fds;
        if (c->fdq_len > allowed)
                connection_error(c, WIRE_E_FDS, 0, 0, true,
                                 "%zu file descriptors arrived that no frame declares",
                                 c->fdq_len - allowed);
}

/* Handles the complete frames in c->in and keeps the rest. */
static int parse_carried(Connection *c) {
        ssize_t consumed = parse(c, c->in, c->in_len);

        if (consumed < 0)
                return (int)consumed;
        c->in_len -= (size_t)consumed;
        if (c->in_len == 0) {
                free(c->in);
                c->in = NULL;
                c->in_cap = 0;
        } else if (consumed > 0)
                memmove(c->in, c->in + consumed, c->in_len);
        return 0;
}

static void on_read(evutil_socket_t fd, short what, void *userdata) {
        Connection *c = userdata;
        Broker *b = c->broker;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
        } ctrl;
        struct iovec iov;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        bool carried;
        ssize_t n, consumed;
        int r;

        if (c->resume_pending) {
                /* Unpaused: first the frames that were read but not handled. */
                c->resume_pending = false;
                if (c->in_len > 0 && parse_carried(c) < 0) {
                        broker_drop_connection(b, c, "out of memory");
                        goto flush;
                }
                if (c->paused || c->closing)
                        goto flush;
        }
        if (c->paused)
                return;
        carried = c->in_len > 0;
        if (carried) {
                r = in_reserve(c, c->in, c->in_len);
                if (r < 0) {
                        broker_drop_connection(b, c, "out of memory for its input");
                        goto flush;
                }
                iov = (struct iovec){ c->in + c->in_len, c->in_cap - c->in_len };
        } else
                iov = (struct iovec){ b->rbuf, BROKER_RBUF_SIZE };
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = sizeof(ctrl.buf);

        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
                /* Nothing new; but frames handled on resume may have queued
                 * answers and deliveries. */
                if (errno == EAGAIN || errno == EINTR)
                        goto flush;
                log_debug_errno(errno, "client %u: read failed: %m", c->id);
                broker_drop_connection(b, c, "read error");
                goto flush;
        }
        c->stats.fds_in += take_passed_fds(c, &msg);
        if (msg.msg_flags & MSG_CTRUNC) {
                connection_error(c, WIRE_E_FDS, 0, 0, true,
                                 "file descriptors were lost on the way: more than %d in one "
                                 "sendmsg, or the broker is out of file descriptors",
                                 WIRE_MAX_FDS_PER_SENDMSG);
                goto flush;
        }
        if (n == 0) {
                if (carried)
                        /* A half-closed client can still read why. */
                        connection_error(c, WIRE_E_MALFORMED, 0, 0, true,
                                         "connection closed in the middle of a frame");
                else if (c->out_count > 0)
                        /* It may have shut down only its sending side:
                         * like after an ERROR, it gets what is queued (the
                         * answers to what it sent) within the linger. */
                        stop_reading(c, CONNECTION_LINGER_SEC * 1000);
                else
                        broker_drop_connection(b, c, NULL);
                goto flush;
        }
        c->stats.bytes_in += (uint64_t)n;
        b->stats.bytes_in += (uint64_t)n;

        if (carried) {
                c->in_len += (size_t)n;
                if (parse_carried(c) < 0) {
                        broker_drop_connection(b, c, "out of memory");
                        goto flush;
                }
        } else {
                consumed = parse(c, b->rbuf, (size_t)n);
                if (consumed < 0) {
                        broker_drop_connection(b, c, "out of memory");
                        goto flush;
                }
                if (consumed < n && !c->closing) {
                        /* Keep the start of an incomplete frame. */
                        size_t left = (size_t)(n - consumed);
                        r = in_reserve(c, b->rbuf + consumed, left);
                        if (r < 0) {
                                broker_drop_connection(b, c, "out of memory for its input");
                                goto flush;
                        }
                        memcpy(c->in, b->rbuf + consumed, left);
                        c->in_len = left;
                }
        }
        check_unclaimed_fds(c);
flush:
        /* Write everything this batch queued, for every connection, in as
         * few system calls as the queues allow. @c may be gone after this. */
        broker_flush_pending(b);
}

static void on_write(evutil_socket_t fd, short what, void *userdata) {
        Connection *c = userdata;
        Broker *b = c->broker;
        int r = connection_flush(c);
        if (r < 0)
                broker_drop_connection(b, c, r == -ECONNABORTED ? NULL : "write failed");
        /* Dropping it may have queued answers for others (responder gone). */
        broker_flush_pending(b);
}

static void on_hello_timeout(evutil_socket_t fd, short what, void *userdata) {
        Connection *c = userdata;
        Broker *b = c->broker;

        b->stats.handshake_timeouts++;
        connection_error(c, WIRE_E_HANDSHAKE, 0, 0, true, "no HELLO within %u ms",
                         b->config.hello_timeout_ms);
        broker_flush_pending(b);
}

static void on_linger(evutil_socket_t fd, short what, void *userdata) {
        Connection *c = userdata;
        Broker *b = c->broker;
        broker_drop_connection(b, c, "did not read its last frames in time");
        broker_flush_pending(b);
}
