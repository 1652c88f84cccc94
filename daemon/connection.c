/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "broker.h"
#include "connection.h"
#include "log.h"
#include "protocol.h"
#include "util.h"

/* iovecs per sendmsg: two per queued frame (inline header, shared body). */
#define IOV_BATCH 512
/* Smallest allocation for a partial frame carried over between reads. */
#define IN_MIN_CAP (16 * 1024)

Body *body_new(size_t len) {
        Body *b;
        if (len > UINT32_MAX)
                return NULL;
        b = malloc(sizeof(*b) + len);
        if (!b)
                return NULL;
        b->n_refs = 1;
        b->len = (uint32_t)len;
        return b;
}

Body *body_unref(Body *b) {
        if (b && --b->n_refs == 0)
                free(b);
        return NULL;
}

static size_t entry_size(const OutEntry *e) {
        return e->hdr_len + (e->body ? e->body->len : 0);
}

static size_t entry_charge(const OutEntry *e) {
        return sizeof(OutEntry) + entry_size(e);
}

static void on_read(evutil_socket_t fd, short what, void *userdata);
static void on_write(evutil_socket_t fd, short what, void *userdata);

int connection_new(Connection **ret, Broker *b, int fd, uint32_t id, pid_t pid, uid_t uid,
                   gid_t gid) {
        Connection *c = calloc(1, sizeof(*c));

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
        c->ev_read = event_new(b->base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->ev_write = event_new(b->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
        if (!c->ev_read || !c->ev_write || event_add(c->ev_read, NULL) < 0) {
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
        for (i = 0; i < c->n_subs; i++) {
                router_remove(c->broker->router, c->subs[i]);
                subscription_free(c->subs[i]);
        }
        free(c->subs);
        for (i = 0; i < c->out_count; i++)
                body_unref(c->out[(c->out_head + i) & (c->out_cap - 1)].body);
        free(c->out);
        free(c->in);
        if (c->ev_read)
                event_free(c->ev_read);
        if (c->ev_write)
                event_free(c->ev_write);
        safe_close(c->fd);
        free(c);
        return NULL;
}

static int out_grow(Connection *c) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 16, i;
        OutEntry *n = malloc(cap * sizeof(*n));

        if (!n)
                return -ENOMEM;
        for (i = 0; i < c->out_count; i++)
                n[i] = c->out[(c->out_head + i) & (c->out_cap - 1)];
        free(c->out);
        c->out = n;
        c->out_cap = cap;
        c->out_head = 0;
        return 0;
}

int connection_queue(Connection *c, const uint8_t *hdr, size_t hdr_len, Body *body,
                     bool droppable) {
        size_t limit = c->broker->config.out_queue_bytes;
        size_t charge = sizeof(OutEntry) + hdr_len + (body ? body->len : 0);
        OutEntry *e;
        int r;

        if (c->closing)
                return -ECONNABORTED;
        if (hdr_len > OUT_HDR_MAX)
                return -EINVAL;
        if (c->out_bytes + charge > (droppable ? limit : 2 * limit))
                return -ENOBUFS;
        if (c->out_count == c->out_cap) {
                r = out_grow(c);
                if (r < 0)
                        return r;
        }
        e = &c->out[(c->out_head + c->out_count) & (c->out_cap - 1)];
        memcpy(e->hdr, hdr, hdr_len);
        e->hdr_len = (uint16_t)hdr_len;
        e->body = body_ref(body);
        e->sent = 0;
        c->out_count++;
        c->out_bytes += charge;
        broker_schedule_flush(c->broker, c);
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
        r = connection_queue(c, hdr, n, body, false);
        body_unref(body);
        return r;
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
        if ((size_t)n >= sizeof(text))
                n = sizeof(text) - 1;

        log_debug("client %u (pid %d): %serror %s: %s", c->id, (int)c->pid,
                  fatal ? "fatal " : "", wire_error_name(code), text);
        wire_error_meta_encode(meta, code, ref_kind);
        r = connection_send(c, WIRE_ERROR, fatal ? WIRE_F_FATAL : 0, 0, corr, meta, sizeof(meta),
                            NULL, 0, text, (size_t)n);
        c->broker->stats.errors++;
        if (fatal || r < 0) {
                /* Read nothing more; the flush that follows closes it. */
                c->closing = true;
                event_del(c->ev_read);
                broker_schedule_flush(c->broker, c);
                if (fatal)
                        log_info("client %u (pid %d, uid %d) disconnected: %s", c->id, (int)c->pid,
                                 (int)c->uid, text);
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

        c->out_bytes -= entry_charge(e);
        body_unref(e->body);
        e->body = NULL;
        c->out_head = (c->out_head + 1) & (c->out_cap - 1);
        c->out_count--;
}

int connection_flush(Connection *c) {
        struct iovec iov[IOV_BATCH];

        while (c->out_count > 0) {
                struct msghdr msg = { .msg_iov = iov };
                size_t n_iov = 0, i;
                ssize_t n;

                for (i = 0; i < c->out_count && n_iov + 2 <= IOV_BATCH; i++) {
                        OutEntry *e = &c->out[(c->out_head + i) & (c->out_cap - 1)];
                        size_t skip = e->sent;

                        if (skip < e->hdr_len) {
                                iov[n_iov++] = (struct iovec){ e->hdr + skip, e->hdr_len - skip };
                                skip = 0;
                        } else
                                skip -= e->hdr_len;
                        if (e->body && skip < e->body->len)
                                iov[n_iov++] = (struct iovec){ e->body->data + skip,
                                                               e->body->len - skip };
                }
                msg.msg_iovlen = n_iov;
                n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                if (!c->closing && event_add(c->ev_write, NULL) < 0)
                                        return -ENOMEM;
                                break;
                        }
                        return -errno;
                }
                c->stats.bytes_out += (uint64_t)n;
                c->broker->stats.bytes_out += (uint64_t)n;
                while (n > 0) {
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
        if (c->out_count == 0) {
                event_del(c->ev_write);
                /* An idle connection keeps no ring. */
                free(c->out);
                c->out = NULL;
                c->out_cap = 0;
                c->out_head = 0;
        }
        /* A connection with a fatal error goes now: its ERROR frame was
         * written if the socket took it, and one that does not read gets
         * no more of our time. */
        if (c->closing)
                return -ECONNABORTED;
        return 0;
}

/* Parses every complete frame in @buf. Returns the bytes consumed, or a
 * negative errno when the connection must be dropped. */
static ssize_t parse(Connection *c, const uint8_t *buf, size_t len) {
        size_t off = 0;

        while (!c->closing && len - off >= WIRE_HEADER_SIZE) {
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
                r = protocol_handle(c, &h, buf + off);
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
                /* The header was checked when the frame started. */
                size_t size = le32_read(start + WIRE_OFF_SIZE);
                if (size > want)
                        want = size;
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

/* Closes every fd in @msg's control data; returns how many there were. */
static size_t close_passed_fds(struct msghdr *msg) {
        struct cmsghdr *cm;
        size_t n = 0;

        for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), i;
                        for (i = 0; i < k; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                safe_close(fd);
                        }
                        n += k;
                }
        }
        return n;
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
        bool carried = c->in_len > 0;
        ssize_t n, consumed;
        int r;

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
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_debug_errno(errno, "client %u: read failed: %m", c->id);
                broker_drop_connection(b, c, "read error");
                goto flush;
        }
        if (close_passed_fds(&msg) > 0 || (msg.msg_flags & MSG_CTRUNC)) {
                connection_error(c, WIRE_E_UNSUPPORTED, 0, 0, true,
                                 "file descriptors are not supported by this broker version");
                goto flush;
        }
        if (n == 0) {
                if (carried)
                        /* A half-closed client can still read why. */
                        connection_error(c, WIRE_E_MALFORMED, 0, 0, true,
                                         "connection closed in the middle of a frame");
                else
                        broker_drop_connection(b, c, NULL);
                goto flush;
        }
        c->stats.bytes_in += (uint64_t)n;
        b->stats.bytes_in += (uint64_t)n;

        if (carried) {
                c->in_len += (size_t)n;
                consumed = parse(c, c->in, c->in_len);
                if (consumed < 0) {
                        broker_drop_connection(b, c, "out of memory");
                        goto flush;
                }
                c->in_len -= (size_t)consumed;
                if (c->in_len == 0) {
                        free(c->in);
                        c->in = NULL;
                        c->in_cap = 0;
                } else if (consumed > 0)
                        memmove(c->in, c->in + consumed, c->in_len);
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
flush:
        /* Write everything this batch queued, for every connection, in as
         * few system calls as the queues allow. @c may be gone after this. */
        broker_flush_pending(b);
}

static void on_write(evutil_socket_t fd, short what, void *userdata) {
        Connection *c = userdata;
        int r = connection_flush(c);
        if (r < 0)
                broker_drop_connection(c->broker, c,
                                       r == -ECONNABORTED ? NULL : "write failed");
}
