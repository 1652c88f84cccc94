/* SPDX-License-Identifier: MIT */
/*
 * ipcd_client: one connection to the broker.
 *
 * Output: frames are encoded straight into one growing output buffer and
 * written with send(MSG_NOSIGNAL) whenever the socket takes them, so many
 * small messages leave in one system call. File descriptors wait beside it
 * in a queue of (stream position of the frame, fds): a sendmsg() that
 * carries fds starts at the first byte of the first frame that owns some,
 * carries at most WIRE_FD_SENDMSG_MAX_BYTES (the kernel queues that much as
 * one piece, so a partial write cannot separate fds from their frames) and
 * the fds of every frame that starts in it, up to 253. Frames without fds
 * are written in one piece as before.
 *
 * Input: recvmsg() reads into one receive buffer; complete frames are
 * handled in place. A MESSAGE handed to handlers points into that buffer
 * (no allocation per message). Because a handler may make a blocking call
 * that reads more input, the buffer is "pinned" while a message from it is
 * being dispatched: it is then never moved or compacted; if it must grow, a
 * new one replaces it and the pinned one is freed when the dispatch ends.
 *
 * Received fds go to a queue in arrival order; each frame takes the n_fds
 * at its head when it is decoded. A bulk MESSAGE's memfd is checked and
 * mapped read-only; the message owns the mapping and its other fds (see
 * MsgRes in client-internal.h).
 *
 * Blocking calls handle frames as they read them but never call handlers:
 * MESSAGE frames are copied to a queue that the next ipcd_client_process()
 * dispatches first, keeping the stream's order.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "memfd.h"
#include "topicname.h"
#include "util.h"
#include "wire.h"

#define DEFAULT_TIMEOUT_MS 5000
/* publish() blocks while more than this waits to be written, until it is
 * down to the low-water mark. */
#define TX_HIGH_WATER (4u << 20)
#define TX_LOW_WATER (TX_HIGH_WATER / 2)
#define WBUF_INITIAL (64u << 10)
#define RBUF_INITIAL (64u << 10)
/* Read at least this much per recvmsg() (free space kept at the end). */
#define RX_MIN_READ 4096u
/* Buffers grown beyond this are released once empty. */
#define BUF_KEEP (8u << 20)
/* Bytes one ipcd_client_process() reads at most before returning. */
#define RX_BUDGET (1u << 20)
/* Largest payload accepted from the broker (answers such as ADMIN_REPLY are
 * not bound by the broker's publish limit). */
#define RX_MAX_PAYLOAD (64u << 20)
#define FALLBACK_NAME "ipcd-client"
/* Payloads above this go as a sealed memfd (ipcd_client_set_bulk_threshold()). */
#define DEFAULT_BULK_THRESHOLD (64u << 10)
/* publish() also blocks while more than this many fds wait to be written
 * (each is a dup the process holds), until it is down to the low mark. */
#define TX_FDS_HIGH_WATER 512u
#define TX_FDS_LOW_WATER (TX_FDS_HIGH_WATER / 2)
/* Received fds that no frame has claimed yet, at most: the broker's
 * sendmsg()s carry at most 253 each, and frames are handled between reads. */
#define RX_MAX_QUEUED_FDS 1024u

/* A queue of fds, in order: [head, head + len) of v. */
typedef struct FdQueue {
        int *v;
        size_t head, len, cap;
} FdQueue;

/* The frame at stream position @pos owns the next @n fds of the tx fd
 * queue. */
typedef struct TxFds {
        uint64_t pos;
        size_t n;
} TxFds;

/*
 * Subscription ids of queue group members have the top bit set, those of
 * ordinary subscriptions do not. A delivery names the subscription it is
 * for; one that names a group member is for that member alone, so the bit
 * tells even when the member is gone locally (unsubscribed while the
 * broker was still sending to it, or its SUBSCRIBE timed out) that the
 * delivery is for nobody else.
 */
#define SUB_ID_GROUPED 0x80000000u

/* A local subscription. */
typedef struct Sub {
        struct Sub *next;
        uint32_t id;
        bool dead; /* unsubscribed during a dispatch; freed when it ends */
        bool responder; /* ipcd_client_serve(): gets REQUESTs, never MESSAGEs */
        ipcd_msg_handler_t handler;
        ipcd_request_handler_t req_handler;
        void *userdata;
        /* rx index of the ACK: only messages after it are for us. */
        uint64_t active_from;
        uint8_t wire_flags; /* SUBSCRIBE's sub_flags, to subscribe again */
        size_t filter_len;
        char *filter; /* NUL-terminated, in this allocation after the types */
        size_t group_len;
        char *group;  /* NULL, or NUL-terminated after the filter */
        size_t n_types;
        uint32_t types[];
} Sub;

/* A blocking call waiting for the answer to the frame with id @corr. */
typedef struct Await {
        uint64_t corr;
        uint8_t want; /* kind of the positive answer */
        bool done;
        int err;           /* 0 or the errno of the broker's ERROR */
        uint64_t rx_index; /* position of the answer in the input */
        WireWelcome welcome;
        char *payload; /* ADMIN_REPLY: malloc()ed, NUL-terminated */
        size_t payload_len;
        ipcd_msg *reply; /* REPLY: an owned message */
} Await;

/* An ipcd_client_request() waiting for its answer (the REQUEST's corr). */
typedef struct Req {
        struct Req *next;
        uint64_t corr;
        ipcd_reply_handler_t handler;
        void *userdata;
} Req;

struct ipcd_client {
        unsigned n_ref;
        int fd;
        int timeout_ms;
        int dead; /* 0, or the negative errno that ended the connection */
        bool dead_reported;
        bool welcomed;
        bool closing; /* last unref: drop incoming messages */
        unsigned dispatching;

        uint32_t id;
        size_t max_payload;
        size_t max_topic_len;
        size_t max_types;
        size_t max_fds;         /* per frame, from WELCOME; 0: no fds at all */
        uint64_t max_bulk_size; /* from WELCOME; 0: no bulk payloads */
        size_t bulk_threshold;
        WireLimits rx_limits;

        uint64_t next_corr;
        uint32_t next_sub_id;       /* ordinary subscriptions: 1..0x7fffffff */
        uint32_t next_group_sub_id; /* group members: 0x80000000..0xffffffff */
        uint64_t rx_frames; /* frames parsed so far */
        bool rx_short;      /* the last read took less than it had room for */
        size_t rx_need;     /* bytes from rstart needed for the next frame */

        /* Output: [wstart, wend) waits to be written. */
        uint8_t *wbuf;
        size_t wcap, wstart, wend;
        uint64_t tx_pos; /* stream position of wbuf[wstart] */
        /* Fds waiting to be written (dups this client owns), and which
         * frame owns them: [txf_head, txf_head + txf_len) of txf. */
        FdQueue tx_fds;
        TxFds *txf;
        size_t txf_head, txf_len, txf_cap;

        /* Input: [rstart, rend) is read but not handled. */
        uint8_t *rbuf;
        size_t rcap, rstart, rend;
        uint8_t *rbuf_pinned;  /* must not move: a message in it is being dispatched */
        uint8_t *rbuf_retired; /* the pinned buffer after a replacement */
        FdQueue rx_fds;        /* received, not claimed by a frame yet (owned) */

        Sub *subs, *subs_tail;
        bool subs_need_reap;

        /* Messages read by blocking calls, owned copies, in input order. */
        ipcd_msg *queue_head, *queue_tail;
        ipcd_msg *slot;  /* reused for each handler call */
        char *topic_buf; /* NUL-terminated topic of the message being dispatched */

        Await *await;
        Req *reqs;          /* pending ipcd_client_request()s, newest first */
        ipcd_msg *live_reqs; /* request messages alive (see ipcd_msg.client) */
        int async_err; /* first ERROR for a fire-and-forget frame since the last sync */
        char last_error[512];

        /* ipcd_client_set_batch(): publishes wait until this much is
         * buffered (0: each one is written at once). */
        size_t batch_bytes;
        /* The last bulk memfd this library made, kept open until the next
         * one: its pages are then freed here, when it is replaced, and not
         * by whichever process happens to close it last (often the
         * broker, whose time is everyone's). */
        int last_bulk_fd;

        /* Reconnection (ipcd_client_set_reconnect()); off while
         * reconnect_min_ms is 0. */
        char *path;            /* the socket, kept to connect again */
        char name[WIRE_MAX_CLIENT_NAME + 1];
        int reconnect_min_ms, reconnect_max_ms;
        int retry_fd;          /* timerfd: readable when the next attempt is due */
        bool down_noted;       /* the loss is recorded (ev_down) */
        bool goodbye;          /* the broker said GOODBYE before the loss */
        unsigned attempts;     /* since the loss */
        int next_delay_ms;
        uint64_t down_since;   /* now_ms() of the loss */
        uint64_t next_attempt; /* now_ms() of the next attempt */
        char down_reason[512];
        char up_reason[128];
        ipcd_event_handler_t event_handler;
        void *event_userdata;
        /* Events not delivered yet (ipcd_client_process() delivers them). */
        ipcd_event ev_down, ev_up;
        bool ev_down_pending, ev_up_pending;
};

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t deadline_after(int timeout_ms) {
        return timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
}

/* Milliseconds left until @deadline for poll(): -1 forever, 0 expired. */
static int remaining_ms(uint64_t deadline) {
        uint64_t now;

        if (deadline == UINT64_MAX)
                return -1;
        now = now_ms();
        if (now >= deadline)
                return 0;
        return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

static void set_error(ipcd_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(ipcd_client *c, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
        va_end(ap);
}

/* Stores the broker's text @s of @len bytes as the last error, with
 * control characters replaced: it is shown to humans. */
static void set_error_text(ipcd_client *c, const uint8_t *s, size_t len) {
        size_t i;

        if (len > sizeof(c->last_error) - 1)
                len = sizeof(c->last_error) - 1;
        for (i = 0; i < len; i++)
                c->last_error[i] = (s[i] < 0x20 || s[i] == 0x7f) ? ' ' : (char)s[i];
        c->last_error[len] = 0;
}

/* ---- fd queues ---- */

/* Makes room for @n more fds at the end of @q. Returns 0 or -ENOMEM. */
static int fdq_reserve(FdQueue *q, size_t n) {
        size_t cap;
        int *v;

        if (q->head + q->len + n <= q->cap)
                return 0;
        /* Moving costs at most what the head has passed: amortized O(1). */
        if (q->head >= q->len && q->len + n <= q->cap) {
                memmove(q->v, q->v + q->head, q->len * sizeof(int));
                q->head = 0;
                return 0;
        }
        if (n > SIZE_MAX / sizeof(int) / 4 - q->head - q->len)
                return -ENOMEM;
        cap = q->cap ? q->cap : 64;
        while (cap < q->head + q->len + n)
                cap *= 2;
        v = realloc(q->v, cap * sizeof(int));
        if (!v)
                return -ENOMEM;
        q->v = v;
        q->cap = cap;
        return 0;
}

/* Appends @n fds (room reserved with fdq_reserve()). */
static void fdq_push(FdQueue *q, const int *fds, size_t n) {
        if (n == 0)
                return;
        memcpy(q->v + q->head + q->len, fds, n * sizeof(int));
        q->len += n;
}

/* Moves the @n fds at the head of @q (there are that many) to @ret. */
static void fdq_pop(FdQueue *q, int *ret, size_t n) {
        if (n == 0)
                return;
        if (ret)
                memcpy(ret, q->v + q->head, n * sizeof(int));
        q->head += n;
        q->len -= n;
        if (q->len == 0)
                q->head = 0;
}

/* Closes every fd in @q; with @release, frees its memory too. */
static void fdq_clear(FdQueue *q, bool release) {
        size_t i;

        for (i = 0; i < q->len; i++)
                safe_close(q->v[q->head + i]);
        q->head = q->len = 0;
        if (release) {
                free(q->v);
                *q = (FdQueue){ 0 };
        }
}

/* Closes @n fds of @fds; entries that are -1 were taken. */
static void close_fds(int *fds, size_t n) {
        size_t i;

        for (i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* Drops every fd waiting to be written, with the output it belonged to. */
static void tx_fds_clear(ipcd_client *c) {
        fdq_clear(&c->tx_fds, false);
        c->txf_head = c->txf_len = 0;
}

/*
 * Ends the connection: from now on every call fails. @err is what the call
 * that noticed returns; the socket stays open (shut down, so poll() reports
 * it ready) until the last unref, so the application's loop wakes up and
 * sees the error. Unsent output (and its fds) is dropped. @fmt NULL keeps
 * the last error text. Returns @err.
 */
static void note_down(ipcd_client *c);
static int client_kill(ipcd_client *c, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int client_kill(ipcd_client *c, int err, const char *fmt, ...) {
        va_list ap;

        if (c->dead)
                return c->dead;
        c->dead = err;
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
                va_end(ap);
        }
        if (c->fd >= 0)
                (void)shutdown(c->fd, SHUT_RDWR);
        c->tx_pos += c->wend - c->wstart;
        c->wstart = c->wend = 0;
        tx_fds_clear(c);
        if (c->reconnect_min_ms > 0)
                note_down(c);
        return err;
}

/* What a call on a dead client returns: the error that ended the
 * connection the first time, -ENOTCONN after that. */
static int client_dead_error(ipcd_client *c) {
        if (!c->dead_reported) {
                c->dead_reported = true;
                return c->dead;
        }
        return -ENOTCONN;
}

/* ---- output ---- */

/* Makes room for @n more bytes at the end of the output buffer. */
static int tx_reserve(ipcd_client *c, size_t n) {
        size_t used = c->wend - c->wstart, cap;
        uint8_t *b;

        if (c->wcap - c->wend >= n)
                return 0;
        if (c->wstart > 0) {
                memmove(c->wbuf, c->wbuf + c->wstart, used);
                c->wstart = 0;
                c->wend = used;
                if (c->wcap - c->wend >= n)
                        return 0;
        }
        if (n > SIZE_MAX / 2 - used)
                return -ENOMEM;
        cap = c->wcap ? c->wcap : WBUF_INITIAL;
        while (cap < used + n)
                cap *= 2;
        b = realloc(c->wbuf, cap);
        if (!b)
                return -ENOMEM;
        c->wbuf = b;
        c->wcap = cap;
        return 0;
}

/* Makes room for one more entry in the tx fd owner list. */
static int txf_reserve(ipcd_client *c) {
        size_t cap;
        TxFds *t;

        if (c->txf_head + c->txf_len < c->txf_cap)
                return 0;
        if (c->txf_head >= c->txf_len && c->txf_len < c->txf_cap) {
                memmove(c->txf, c->txf + c->txf_head, c->txf_len * sizeof(*t));
                c->txf_head = 0;
                return 0;
        }
        cap = c->txf_cap ? c->txf_cap * 2 : 64;
        t = realloc(c->txf, cap * sizeof(*t));
        if (!t)
                return -ENOMEM;
        c->txf = t;
        c->txf_cap = cap;
        return 0;
}

/*
 * Encodes a frame at the end of the output buffer, with @n_fds fds. The
 * call owns @fds whatever happens: they are written with the frame and
 * closed then, or closed at once on failure. Returns 0 or -ENOMEM (nothing
 * queued).
 */
static int tx_append(ipcd_client *c, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
                     const void *meta, size_t meta_len, const void *topic, size_t topic_len,
                     const void *payload, size_t payload_len, int *fds, size_t n_fds) {
        size_t size = WIRE_HEADER_SIZE + meta_len + topic_len + payload_len, n;
        uint64_t pos = c->tx_pos + (c->wend - c->wstart);
        int r;

        r = tx_reserve(c, size);
        if (r >= 0 && n_fds > 0) {
                r = fdq_reserve(&c->tx_fds, n_fds);
                if (r >= 0)
                        r = txf_reserve(c);
        }
        if (r < 0) {
                close_fds(fds, n_fds);
                set_error(c, "out of memory for the output buffer");
                return r;
        }
        n = wire_frame_encode(c->wbuf + c->wend, c->wcap - c->wend, kind, flags, type, corr,
                              (uint8_t)n_fds, meta, meta_len, topic, topic_len, payload,
                              payload_len);
        if (n == 0) {
                /* Callers check every length first; this is a bug. */
                close_fds(fds, n_fds);
                set_error(c, "internal error: frame does not encode");
                return -EINVAL;
        }
        c->wend += n;
        if (n_fds > 0) {
                fdq_push(&c->tx_fds, fds, n_fds);
                c->txf[c->txf_head + c->txf_len++] = (TxFds){ .pos = pos, .n = n_fds };
        }
        return 0;
}

/* What a failed send() or sendmsg() means; 0 for "try again later". */
static int tx_error(ipcd_client *c, int err) {
        if (err == EAGAIN || err == EWOULDBLOCK)
                return 0;
        if (err == EPIPE || err == ECONNRESET)
                return client_kill(c, -err, "the broker closed the connection");
        if (err == ETOOMANYREFS)
                return client_kill(c, -err,
                                   "too many file descriptors in flight (the kernel's per-user limit)");
        return client_kill(c, -err, "failed to write to the broker: %s", strerror(err));
}

/*
 * One sendmsg() that starts at the first byte of a frame with fds: at most
 * WIRE_FD_SENDMSG_MAX_BYTES, with the fds of every frame that starts in it
 * (at most WIRE_MAX_FDS_PER_SENDMSG; a frame whose fds would not fit ends
 * the write before its first byte). Returns the bytes written (> 0), 0 when
 * the socket is full, or the error that ended the connection.
 */
static ssize_t tx_write_fds(ipcd_client *c) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
        } ctl;
        size_t len = c->wend - c->wstart, n_fds = 0, n_frames = 0, i;
        struct cmsghdr *cm;
        struct iovec iov;
        struct msghdr mh;
        ssize_t n;

        if (len > WIRE_FD_SENDMSG_MAX_BYTES)
                len = WIRE_FD_SENDMSG_MAX_BYTES;
        for (i = 0; i < c->txf_len; i++) {
                const TxFds *t = &c->txf[c->txf_head + i];

                if (t->pos >= c->tx_pos + len)
                        break;
                if (n_fds + t->n > WIRE_MAX_FDS_PER_SENDMSG) {
                        len = (size_t)(t->pos - c->tx_pos);
                        break;
                }
                n_fds += t->n;
                n_frames++;
        }
        if (n_fds == 0) {
                /* publish() keeps a frame's fds within the limit. */
                return client_kill(c, -EINVAL, "internal error: a frame owns too many fds");
        }
        iov = (struct iovec){ c->wbuf + c->wstart, len };
        mh = (struct msghdr){
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = ctl.buf,
                .msg_controllen = CMSG_SPACE(sizeof(int) * n_fds),
        };
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), c->tx_fds.v + c->tx_fds.head, sizeof(int) * n_fds);
        do
                n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return tx_error(c, errno);
        /* The fds went with the first byte: even after a partial write
         * (which this size rules out) they are on their way. Ours are
         * dups: close them. */
        for (i = 0; i < n_fds; i++)
                safe_close(c->tx_fds.v[c->tx_fds.head + i]);
        fdq_pop(&c->tx_fds, NULL, n_fds);
        c->txf_head += n_frames;
        c->txf_len -= n_frames;
        if (c->txf_len == 0)
                c->txf_head = 0;
        return n;
}

/* Writes as much buffered output as the socket takes, without blocking.
 * Returns 0, or the error that ended the connection. */
static int tx_write(ipcd_client *c) {
        while (c->wend > c->wstart) {
                size_t len = c->wend - c->wstart;
                ssize_t n;

                if (c->txf_len > 0 && c->txf[c->txf_head].pos == c->tx_pos)
                        n = tx_write_fds(c);
                else {
                        /* Up to the next frame with fds: that one starts a
                         * sendmsg() of its own. */
                        if (c->txf_len > 0 && c->txf[c->txf_head].pos - c->tx_pos < len)
                                len = (size_t)(c->txf[c->txf_head].pos - c->tx_pos);
                        n = send(c->fd, c->wbuf + c->wstart, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                n = tx_error(c, errno);
                }
                if (n <= 0)
                        return (int)n;
                c->wstart += (size_t)n;
                c->tx_pos += (uint64_t)n;
        }
        c->wstart = c->wend = 0;
        if (c->wcap > BUF_KEEP) {
                free(c->wbuf);
                c->wbuf = NULL;
                c->wcap = 0;
        }
        return 0;
}

/* ---- input ---- */

/*
 * Makes the receive buffer hold @need bytes from rstart, with at least
 * RX_MIN_READ free at the end. Never moves a pinned buffer: replaces it
 * and keeps it alive (rbuf_retired) until the dispatch ends.
 */
static int rx_make_room(ipcd_client *c, size_t need) {
        size_t avail = c->rend - c->rstart;
        size_t want = need > avail + RX_MIN_READ ? need : avail + RX_MIN_READ;
        size_t cap;
        uint8_t *b;

        if (c->rstart + want <= c->rcap)
                return 0;
        if (c->rbuf != c->rbuf_pinned && want <= c->rcap) {
                memmove(c->rbuf, c->rbuf + c->rstart, avail);
                c->rstart = 0;
                c->rend = avail;
                return 0;
        }
        cap = c->rcap > RBUF_INITIAL ? c->rcap : RBUF_INITIAL;
        while (cap < want)
                cap *= 2;
        if (!c->rbuf || c->rbuf != c->rbuf_pinned) {
                if (c->rstart > 0) {
                        memmove(c->rbuf, c->rbuf + c->rstart, avail);
                        c->rstart = 0;
                        c->rend = avail;
                }
                b = realloc(c->rbuf, cap);
                if (!b)
                        return -ENOMEM;
        } else {
                b = malloc(cap);
                if (!b)
                        return -ENOMEM;
                memcpy(b, c->rbuf + c->rstart, avail);
                c->rbuf_retired = c->rbuf;
                c->rstart = 0;
                c->rend = avail;
        }
        c->rbuf = b;
        c->rcap = cap;
        return 0;
}

static bool rx_has_frame(const ipcd_client *c);

/* Appends the fds that came with a recvmsg() to the input fd queue, in
 * order. Returns 0, or -ENOMEM (then they are closed: the stream is
 * broken). */
static int rx_take_fds(ipcd_client *c, struct msghdr *mh) {
        struct cmsghdr *cm;
        int r = 0;

        for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                size_t i, n;

                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                if (r >= 0)
                        r = fdq_reserve(&c->rx_fds, n);
                for (i = 0; i < n; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                        if (r >= 0)
                                fdq_push(&c->rx_fds, &fd, 1);
                        else
                                safe_close(fd);
                }
        }
        return r;
}

/* Ends the connection for a problem with the fds the broker sent: they
 * are all closed. Returns the error. */
static int rx_fds_fail(ipcd_client *c, int err, const char *why) {
        fdq_clear(&c->rx_fds, false);
        return client_kill(c, err, "%s", why);
}

/*
 * Called when the socket had nothing more to read: every sendmsg() of the
 * broker so far has then been received whole (one carrying fds is at most
 * WIRE_FD_SENDMSG_MAX_BYTES, which the kernel queues as one piece), so every
 * fd must belong to a frame whose first byte is buffered. Complete frames
 * are handled before reading, so that is at most the incomplete one.
 * (Between reads fds may legitimately arrive ahead of their frames: a
 * recvmsg() that ends inside a piece already returns all of its fds.)
 * Returns 0 or the error that ended the connection.
 */
static int rx_check_fds(ipcd_client *c) {
        size_t avail = c->rend - c->rstart, allowed;

        if (c->rx_fds.len == 0 || rx_has_frame(c))
                return 0;
        if (avail == 0)
                allowed = 0;
        else if (avail < WIRE_HEADER_SIZE)
                allowed = UINT8_MAX;
        else
                allowed = c->rbuf[c->rstart + WIRE_OFF_N_FDS];
        if (c->rx_fds.len <= allowed)
                return 0;
        return rx_fds_fail(c, -EPROTO, "the broker sent file descriptors that no frame declares");
}

/* One recvmsg(). Returns the bytes read (> 0), 0 when there is nothing to
 * read, -ENOMEM, or the error that ended the connection. */
static ssize_t rx_read(ipcd_client *c) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS_PER_SENDMSG)];
        } ctl;
        struct iovec iov;
        struct msghdr mh;
        ssize_t n;
        int r;

        r = rx_make_room(c, c->rx_need);
        if (r < 0) {
                set_error(c, "out of memory for the receive buffer");
                return r;
        }
        for (;;) {
                iov = (struct iovec){ c->rbuf + c->rend, c->rcap - c->rend };
                mh = (struct msghdr){
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf),
                };
                n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n >= 0 || errno != EINTR)
                        break;
        }
        if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return rx_check_fds(c);
                if (errno == ECONNRESET)
                        return client_kill(c, -ECONNRESET, "the broker reset the connection");
                return client_kill(c, -errno, "failed to read from the broker: %s",
                                   strerror(errno));
        }
        r = rx_take_fds(c, &mh);
        if (mh.msg_flags & MSG_CTRUNC)
                /* Also what the kernel does when we are out of fds. */
                return rx_fds_fail(c, -EPROTO,
                                   "file descriptors from the broker were lost (control data "
                                   "truncated: is this process at its limit of open files?)");
        if (r < 0)
                return rx_fds_fail(c, -ENOMEM, "out of memory for received file descriptors");
        if (c->rx_fds.len > RX_MAX_QUEUED_FDS)
                return rx_fds_fail(c, -EPROTO,
                                   "the broker sent file descriptors far ahead of their frames");
        if (n == 0)
                return client_kill(c, -ECONNRESET, "the broker closed the connection");
        c->rend += (size_t)n;
        /* Less than there was room for: the socket was empty a moment ago. */
        c->rx_short = (size_t)n < iov.iov_len;
        return n;
}

/*
 * Takes the next complete frame off the receive buffer: *h is its header,
 * *ret_frame its first byte (valid until the buffer is next read into,
 * unless pinned), and its h->n_fds fds are moved to @ret_fds (room for
 * UINT8_MAX), which the caller then owns. Returns 1, 0 when no complete
 * frame is buffered, or -EPROTO (connection ended) for a frame that breaks
 * the protocol.
 */
static int rx_next_frame(ipcd_client *c, WireHeader *h, const uint8_t **ret_frame,
                         int *ret_fds) {
        size_t avail = c->rend - c->rstart;
        const char *why;
        WireError e;

        if (avail == 0 && c->rbuf != c->rbuf_pinned) {
                c->rstart = c->rend = 0;
                if (c->rcap > BUF_KEEP) {
                        free(c->rbuf);
                        c->rbuf = NULL;
                        c->rcap = 0;
                }
        }
        if (avail < WIRE_HEADER_SIZE) {
                c->rx_need = WIRE_HEADER_SIZE;
                return 0;
        }
        e = wire_header_decode(c->rbuf + c->rstart, &c->rx_limits, h, &why);
        if (e != WIRE_E_OK) {
                c->rstart = c->rend; /* the rest of the stream means nothing now */
                fdq_clear(&c->rx_fds, false);
                return client_kill(c, -EPROTO, "the broker sent an invalid frame (%s): %s",
                                   wire_error_name(e), why);
        }
        if (avail < h->size) {
                c->rx_need = h->size;
                return 0;
        }
        /* Fds come no later than their frame's first byte. */
        if (h->n_fds > c->rx_fds.len) {
                c->rstart = c->rend;
                return rx_fds_fail(c, -EPROTO,
                                   "the broker sent a frame whose file descriptors did not arrive");
        }
        fdq_pop(&c->rx_fds, ret_fds, h->n_fds);
        *ret_frame = c->rbuf + c->rstart;
        c->rstart += h->size;
        c->rx_need = WIRE_HEADER_SIZE;
        c->rx_frames++;
        return 1;
}

static bool rx_has_frame(const ipcd_client *c) {
        size_t avail = c->rend - c->rstart;

        return avail >= WIRE_HEADER_SIZE &&
               avail >= le32_read(c->rbuf + c->rstart + WIRE_OFF_SIZE);
}

/* ---- subscriptions and dispatch ---- */

static Sub *sub_find(ipcd_client *c, uint32_t id) {
        Sub *s;

        for (s = c->subs; s; s = s->next)
                if (s->id == id && !s->dead)
                        return s;
        return NULL;
}

static bool sub_id_grouped(uint32_t id) {
        return (id & SUB_ID_GROUPED) != 0;
}

/* The next free id for an ordinary subscription or a group member, from
 * its own half of the id space (see SUB_ID_GROUPED); 0 is never used. */
static uint32_t sub_id_next(ipcd_client *c, bool grouped) {
        uint32_t *next = grouped ? &c->next_group_sub_id : &c->next_sub_id;
        uint32_t id;

        do {
                id = *next;
                *next = grouped ? (id + 1) | SUB_ID_GROUPED : (id + 1) & ~SUB_ID_GROUPED;
        } while (id == 0 || sub_find(c, id));
        return id;
}

/* Frees dead subscriptions; only when no dispatch walks the list. */
static void subs_reap(ipcd_client *c) {
        Sub **p = &c->subs, *s;

        if (!c->subs_need_reap || c->dispatching > 0)
                return;
        c->subs_tail = NULL;
        while ((s = *p)) {
                if (s->dead) {
                        *p = s->next;
                        free(s);
                } else {
                        c->subs_tail = s;
                        p = &s->next;
                }
        }
        c->subs_need_reap = false;
}

static void sub_remove(ipcd_client *c, Sub *s) {
        s->dead = true;
        s->handler = NULL;
        c->subs_need_reap = true;
        subs_reap(c);
}

static bool sub_matches(const Sub *s, const ipcd_msg *m) {
        if (s->dead || m->rx_index <= s->active_from)
                return false;
        /* The broker matched (topic and type) the subscription it names. */
        if (s->id == m->sub_id)
                return true;
        if (s->n_types > 0) {
                size_t i;
                for (i = 0; i < s->n_types; i++)
                        if (s->types[i] == m->type)
                                break;
                if (i == s->n_types)
                        return false;
        }
        return topic_filter_match(s->filter, s->filter_len, m->topic, m->topic_len);
}

/*
 * Whether delivery @m is for subscription @s. A delivery to a group member
 * and a retained one (sent because that one subscription is new) are for
 * the subscription they name alone. Any other is the one delivery this
 * connection gets for the message, whichever ordinary subscription it
 * names: it is for every ordinary subscription that matches.
 */
static bool sub_takes(const Sub *s, const ipcd_msg *m) {
        if (s->responder)
                return false;
        if (sub_id_grouped(m->sub_id) || (m->flags & IPCD_MSG_RETAINED)) {
                if (s->id != m->sub_id)
                        return false;
        } else if (sub_id_grouped(s->id))
                return false;
        return sub_matches(s, m);
}

static bool any_sub_takes(const ipcd_client *c, const ipcd_msg *m) {
        const Sub *s;

        for (s = c->subs; s; s = s->next)
                if (sub_takes(s, m))
                        return true;
        return false;
}

static void note_async_error(ipcd_client *c, int err) {
        if (c->async_err == 0)
                c->async_err = err;
}

/*
 * Calls the handler of every subscription @tmpl is for (sub_takes()), each
 * with its own ipcd_msg (a copy of @tmpl's fields, sharing its bytes) so that a
 * message a handler keeps has a stable subscription id. The message object
 * is reused from call to call unless the application kept it. Returns 1
 * when at least one handler ran, else 0.
 */
static int dispatch_msg(ipcd_client *c, const ipcd_msg *tmpl) {
        int n = 0;
        Sub *s;

        c->dispatching++;
        /* Handlers may unsubscribe (that marks the Sub dead and keeps it
         * until the walk ends) or subscribe (that appends a Sub too new for
         * this message). */
        for (s = c->subs; s; s = s->next) {
                ipcd_msg *m;

                if (!sub_takes(s, tmpl))
                        continue;
                m = c->slot ? c->slot : msg_new();
                if (!m) {
                        set_error(c, "out of memory: a message on '%s' was not dispatched",
                                  tmpl->topic);
                        note_async_error(c, -ENOMEM);
                        break;
                }
                c->slot = NULL;
                msg_copy_from(m, tmpl);
                m->sub_id = s->id;
                s->handler(c, m, s->userdata);
                n = 1;
                if (m->n_ref > 1)
                        m->n_ref--; /* the application keeps it (ipcd_msg_ref() copied it) */
                else {
                        msg_reset(m);
                        c->slot = m;
                }
        }
        c->dispatching--;
        subs_reap(c);
        return n;
}

static int dispatch_request(ipcd_client *c, ipcd_msg *m);
static int dispatch_reply(ipcd_client *c, ipcd_msg *m);

/* Dispatches the messages (and requests, and answers to requests) that
 * blocking calls queued. Returns how many reached a handler. */
static int dispatch_queue(ipcd_client *c) {
        ipcd_msg *m;
        int n = 0;

        while ((m = c->queue_head)) {
                c->queue_head = m->next;
                if (!c->queue_head)
                        c->queue_tail = NULL;
                m->next = NULL;
                if (m->kind == MSG_KIND_REQUEST)
                        n += dispatch_request(c, m);
                else if (m->kind == MSG_KIND_REPLY)
                        n += dispatch_reply(c, m);
                else
                        n += dispatch_msg(c, m);
                ipcd_msg_unref(m);
        }
        return n;
}

static void queue_free(ipcd_client *c) {
        ipcd_msg *m;

        while ((m = c->queue_head)) {
                c->queue_head = m->next;
                ipcd_msg_unref(m);
        }
        c->queue_tail = NULL;
}

/* ---- frames from the broker ---- */

/*
 * Gives @tmpl what a MESSAGE with fds carries: with WIRE_F_BULK, checks its
 * memfd (fds[0]) as the broker did, maps it read-only and closes it; the
 * other fds become the message's attached fds. Taken fds are set to -1 in
 * @fds. Returns 1, or 0 when the message must be dropped: a bulk payload
 * that fails the checks is the broker's fault, not a reason to end the
 * connection (the reason is in the last error; the caller closes the fds).
 */
static int message_resources(ipcd_client *c, const WireHeader *h, const WireDelivery *d,
                             const char *topic, int *fds, ipcd_msg *tmpl) {
        void *map = NULL;
        size_t first = 0, len = 0;

        if (h->flags & WIRE_F_BULK) {
                MemfdCheck mc;

                if (h->payload_len != 0) {
                        set_error(c, "dropped a bulk message on '%.*s': it also has an inline payload",
                                  (int)h->topic_len, topic);
                        return 0;
                }
                mc = memfd_check(fds[0], d->bulk_size, c->max_bulk_size);
                if (mc == MEMFD_OK && d->bulk_size > SIZE_MAX)
                        mc = MEMFD_E_TOO_LARGE;
                if (mc != MEMFD_OK) {
                        set_error(c, "dropped a bulk message on '%.*s': %s", (int)h->topic_len,
                                  topic, memfd_check_str(mc));
                        return 0;
                }
                len = (size_t)d->bulk_size;
                if (len > 0) {
                        map = mmap(NULL, len, PROT_READ, MAP_SHARED, fds[0], 0);
                        if (map == MAP_FAILED && errno == EPERM)
                                /* Older kernels refuse shared maps of some sealed files. */
                                map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fds[0], 0);
                        if (map == MAP_FAILED) {
                                set_error(c, "dropped a bulk message on '%.*s': cannot map its %zu bytes: %s",
                                          (int)h->topic_len, topic, len, strerror(errno));
                                note_async_error(c, -ENOMEM);
                                return 0;
                        }
                }
                /* The mapping keeps the memory: the fd is not needed. */
                fds[0] = safe_close(fds[0]);
                first = 1;
                tmpl->flags |= IPCD_MSG_BULK;
                tmpl->data = map ? map : "";
                tmpl->size = len;
        }
        if (h->n_fds > first || map) {
                tmpl->res = msg_res_new(fds + first, h->n_fds - first, map, len);
                if (!tmpl->res) {
                        if (map)
                                (void)munmap(map, len);
                        set_error(c, "out of memory: dropped a message on '%.*s'",
                                  (int)h->topic_len, topic);
                        note_async_error(c, -ENOMEM);
                        return 0;
                }
        }
        return 1;
}

/*
 * A MESSAGE: dispatched now (@dispatch) or queued. Takes from @fds what the
 * message keeps; the caller closes the rest. Returns 1 when a handler ran.
 */
static int handle_message(ipcd_client *c, const WireHeader *h, const uint8_t *meta,
                          const char *topic, const uint8_t *payload, int *fds, bool dispatch) {
        WireDelivery d;
        ipcd_msg tmpl;
        ipcd_msg *m;
        int n;

        wire_delivery_decode(meta, &d);
        tmpl = (ipcd_msg){
                .type = h->type,
                .flags = (h->flags & WIRE_F_RETAIN) ? IPCD_MSG_RETAINED : 0,
                .seq = d.seq,
                .sender_pid = (pid_t)d.sender_pid,
                .sender_uid = (uid_t)d.sender_uid,
                .sender_gid = (gid_t)d.sender_gid,
                .sub_id = d.sub_id,
                .topic = topic,
                .topic_len = h->topic_len,
                .data = payload,
                .size = h->payload_len,
                .rx_index = c->rx_frames,
        };
        /* Subscriptions removed locally (while the broker did not know yet)
         * and messages for a subscription that timed out match nothing. */
        if (!any_sub_takes(c, &tmpl))
                return 0;
        if (!dispatch && c->closing)
                return 0;
        if (h->n_fds > 0 && !message_resources(c, h, &d, topic, fds, &tmpl))
                return 0;

        if (!dispatch) {
                m = msg_new();
                if (m) {
                        msg_copy_from(m, &tmpl);
                        if (msg_own(m) < 0)
                                m = ipcd_msg_unref(m);
                }
                tmpl.res = msg_res_unref(tmpl.res); /* m has its own reference */
                if (!m) {
                        set_error(c, "out of memory: dropped a message on '%.*s'",
                                  (int)h->topic_len, topic);
                        note_async_error(c, -ENOMEM);
                        return 0;
                }
                if (c->queue_tail)
                        c->queue_tail->next = m;
                else
                        c->queue_head = m;
                c->queue_tail = m;
                return 0;
        }

        memcpy(c->topic_buf, topic, h->topic_len);
        c->topic_buf[h->topic_len] = 0;
        tmpl.topic = c->topic_buf;
        c->rbuf_pinned = c->rbuf;
        n = dispatch_msg(c, &tmpl);
        c->rbuf_pinned = NULL;
        free(c->rbuf_retired);
        c->rbuf_retired = NULL;
        /* Messages the handlers kept hold their own references. */
        tmpl.res = msg_res_unref(tmpl.res);
        return n;
}

/* ---- requests and replies ---- */

static int answer(ipcd_client *c, Await *a, uint8_t kind);

/* Puts request @m on @c's list of live requests: @m can reply through @c
 * until either is freed. */
static void req_msg_link(ipcd_client *c, ipcd_msg *m) {
        m->client = c;
        m->req_prev = NULL;
        m->req_next = c->live_reqs;
        if (c->live_reqs)
                c->live_reqs->req_prev = m;
        c->live_reqs = m;
}

void client_forget_request(ipcd_msg *m) {
        ipcd_client *c = m->client;

        if (!c)
                return;
        if (m->req_prev)
                m->req_prev->req_next = m->req_next;
        else
                c->live_reqs = m->req_next;
        if (m->req_next)
                m->req_next->req_prev = m->req_prev;
        m->client = NULL;
        m->req_prev = m->req_next = NULL;
}

/* Takes the pending request with id @corr off the list; NULL if none. */
static Req *req_take(ipcd_client *c, uint64_t corr) {
        Req **p, *q;

        for (p = &c->reqs; (q = *p); p = &q->next)
                if (q->corr == corr) {
                        *p = q->next;
                        return q;
                }
        return NULL;
}

/* Calls a reply handler; the client is "dispatching" meanwhile, so that
 * process() and wait() refuse to recurse. */
static void call_reply_handler(ipcd_client *c, ipcd_reply_handler_t handler, void *userdata,
                               int error, ipcd_msg *reply) {
        c->dispatching++;
        handler(c, error, error ? NULL : reply, userdata);
        c->dispatching--;
        subs_reap(c);
}

/* A queued answer: its handler, with the message or its error. Returns 1. */
static int dispatch_reply(ipcd_client *c, ipcd_msg *m) {
        call_reply_handler(c, m->reply_handler, m->reply_userdata, m->reply_error, m);
        return 1;
}

/* A request for one of our responders: its handler, if the subscription
 * the broker named still serves. Returns 1 when a handler ran. Without
 * one the request is dropped and its requester times out. */
static int dispatch_request(ipcd_client *c, ipcd_msg *m) {
        Sub *s = sub_find(c, m->sub_id);

        if (!s || !s->responder || m->rx_index <= s->active_from)
                return 0;
        c->dispatching++;
        s->req_handler(c, m, s->userdata);
        c->dispatching--;
        subs_reap(c);
        return 1;
}

/* Queues @m (one reference, owned) for the next dispatch. */
static void queue_push(ipcd_client *c, ipcd_msg *m) {
        if (c->queue_tail)
                c->queue_tail->next = m;
        else
                c->queue_head = m;
        c->queue_tail = m;
}

/* Ends pending request @q with @error: its handler runs now (@dispatch) or
 * from the next dispatch. Frees @q. Returns 1 when the handler ran. */
static int req_fail(ipcd_client *c, Req *q, int error, bool dispatch) {
        ipcd_msg *m;
        int n = 0;

        if (dispatch) {
                call_reply_handler(c, q->handler, q->userdata, error, NULL);
                n = 1;
        } else {
                m = msg_new();
                if (!m) {
                        /* Cannot queue it: better late from here than never. */
                        call_reply_handler(c, q->handler, q->userdata, error, NULL);
                        free(q);
                        return 1;
                }
                m->kind = MSG_KIND_REPLY;
                m->reply_handler = q->handler;
                m->reply_userdata = q->userdata;
                m->reply_error = error;
                queue_push(c, m);
        }
        free(q);
        return n;
}

/* The connection is gone: every pending request ends with its error, from
 * ipcd_client_process(). Returns how many handlers ran. */
static int reqs_fail_all(ipcd_client *c) {
        int n = 0;
        Req *q;

        while ((q = c->reqs)) {
                c->reqs = q->next;
                n += req_fail(c, q, c->dead ? c->dead : -ENOTCONN, true);
        }
        return n;
}

/*
 * A REQUEST (for one of our responders) or a REPLY (to one of our
 * requests, or to the blocking request @a waits for). Dispatched now
 * (@dispatch) or queued. Takes from @fds what the message keeps; the
 * caller closes the rest. Returns 1 when a handler ran.
 */
static int handle_reqrep(ipcd_client *c, const WireHeader *h, const uint8_t *meta,
                         const char *topic, const uint8_t *payload, int *fds, bool dispatch,
                         Await *a) {
        bool request = h->kind == WIRE_REQUEST;
        WireDelivery d;
        ipcd_msg tmpl;
        ipcd_msg *m;
        Req *q = NULL;
        int n = 0, r;

        if (h->meta_len != (request ? WIRE_META_REQUEST_IN : WIRE_META_REPLY_IN))
                return client_kill(c, -EPROTO, "the broker sent a %s with %u bytes of meta",
                                   wire_kind_name(h->kind), h->meta_len);
        wire_delivery_decode(meta, &d);
        if (request) {
                Sub *s = sub_find(c, d.sub_id);
                if (!s || !s->responder || c->closing)
                        return 0; /* no longer served: the requester times out */
        } else if (a) {
                r = answer(c, a, h->kind);
                if (r < 0)
                        return r;
        } else {
                q = req_take(c, h->corr);
                if (!q)
                        return 0; /* late: its blocking call gave up */
        }
        tmpl = (ipcd_msg){
                .kind = request ? MSG_KIND_REQUEST : MSG_KIND_REPLY,
                .type = h->type,
                .sender_pid = (pid_t)d.sender_pid,
                .sender_uid = (uid_t)d.sender_uid,
                .sender_gid = (gid_t)d.sender_gid,
                .sub_id = request ? d.sub_id : 0,
                .topic = topic,
                .topic_len = h->topic_len,
                .data = payload,
                .size = h->payload_len,
                .rx_index = c->rx_frames,
                .request_id = request ? h->corr : 0,
                .request_timeout_ms = request ? le32_read(meta + WIRE_META_REPLY_IN) : 0,
        };
        if (h->n_fds > 0 && !message_resources(c, h, &d, topic, fds, &tmpl)) {
                /* Dropped (reason in the last error): a requester hears. */
                if (a) {
                        a->err = -EBADFD;
                        return 0;
                }
                return q ? req_fail(c, q, -EBADFD, dispatch) : 0;
        }
        m = msg_new();
        if (m) {
                msg_copy_from(m, &tmpl);
                if (!dispatch || a) {
                        if (msg_own(m) < 0)
                                m = ipcd_msg_unref(m);
                } else {
                        memcpy(c->topic_buf, topic, h->topic_len);
                        c->topic_buf[h->topic_len] = 0;
                        m->topic = c->topic_buf;
                }
        }
        tmpl.res = msg_res_unref(tmpl.res); /* m has its own reference */
        if (!m) {
                set_error(c, "out of memory: dropped a %s on '%.*s'", wire_kind_name(h->kind),
                          (int)h->topic_len, topic);
                if (a) {
                        a->err = -ENOMEM;
                        return 0;
                }
                if (q)
                        return req_fail(c, q, -ENOMEM, dispatch);
                note_async_error(c, -ENOMEM);
                return 0;
        }
        if (request)
                req_msg_link(c, m);
        if (a) {
                a->reply = m;
                return 0;
        }
        if (q) {
                m->reply_handler = q->handler;
                m->reply_userdata = q->userdata;
                free(q);
        }
        if (!dispatch) {
                queue_push(c, m);
                return 0;
        }
        c->rbuf_pinned = c->rbuf;
        n = request ? dispatch_request(c, m) : dispatch_reply(c, m);
        c->rbuf_pinned = NULL;
        free(c->rbuf_retired);
        c->rbuf_retired = NULL;
        ipcd_msg_unref(m); /* a handler that kept it has its own copy */
        return n;
}

static int handle_error(ipcd_client *c, const WireHeader *h, const uint8_t *meta,
                        const uint8_t *payload, Await *a, bool dispatch) {
        uint32_t code = le32_read(meta), ref_kind = le32_read(meta + 4);
        int err = wire_error_to_errno(code);

        if (err == 0)
                err = -EPROTO; /* an ERROR that says "ok" */
        if (h->payload_len > 0)
                set_error_text(c, payload, h->payload_len);
        else
                set_error(c, "the broker refused a %s frame: %s", wire_kind_name(ref_kind),
                          wire_error_name(code));
        if (a) {
                a->err = err;
                a->done = true;
                a->rx_index = c->rx_frames;
        } else {
                Req *q = ref_kind == WIRE_REQUEST ? req_take(c, h->corr) : NULL;
                int n = 0;

                if (q)
                        n = req_fail(c, q, err, dispatch);
                else
                        note_async_error(c, err);
                if (h->flags & WIRE_F_FATAL)
                        return client_kill(c, err, NULL);
                return n;
        }
        if (h->flags & WIRE_F_FATAL)
                return client_kill(c, err, NULL);
        return 0;
}

/* Marks @a answered by a frame of @kind, which must be the expected one. */
static int answer(ipcd_client *c, Await *a, uint8_t kind) {
        if (a->want != kind)
                return client_kill(c, -EPROTO, "the broker answered with %s instead of %s",
                                   wire_kind_name(kind), wire_kind_name(a->want));
        a->done = true;
        a->err = 0;
        a->rx_index = c->rx_frames;
        return 0;
}

/*
 * Acts on one frame. @dispatch: call handlers for a MESSAGE (from
 * ipcd_client_process()), else queue it (from a blocking call). @fds are
 * the frame's h->n_fds fds: what a message keeps is set to -1, the caller
 * closes the rest. Returns the number of messages dispatched (0 or 1), or
 * the error that ended the connection.
 */
static int handle_frame(ipcd_client *c, const WireHeader *h, const uint8_t *frame, int *fds,
                        bool dispatch) {
        const uint8_t *meta = frame + WIRE_HEADER_SIZE;
        const char *topic = (const char *)meta + h->meta_len;
        const uint8_t *payload = (const uint8_t *)topic + h->topic_len;
        Await *a = c->await;
        int r;

        if (a && (a->done || a->corr != h->corr))
                a = NULL; /* not the answer we wait for */

        if (!c->welcomed && h->kind != WIRE_WELCOME && h->kind != WIRE_ERROR)
                return client_kill(c, -EPROTO, "the broker sent %s before WELCOME",
                                   wire_kind_name(h->kind));

        switch (h->kind) {
        case WIRE_WELCOME:
                if (c->welcomed || !a)
                        return client_kill(c, -EPROTO, "the broker sent an unexpected WELCOME");
                if (!wire_welcome_decode(meta, &a->welcome))
                        return client_kill(c, -EPROTO, "the broker sent a malformed WELCOME");
                return answer(c, a, h->kind);

        case WIRE_ACK:
        case WIRE_PONG:
                return a ? answer(c, a, h->kind) : 0;

        case WIRE_ADMIN_REPLY:
                if (!a)
                        return 0;
                r = answer(c, a, h->kind);
                if (r < 0)
                        return r;
                a->payload = malloc((size_t)h->payload_len + 1);
                if (!a->payload) {
                        set_error(c, "out of memory for the broker's answer");
                        a->err = -ENOMEM;
                        return 0;
                }
                memcpy(a->payload, payload, h->payload_len);
                a->payload[h->payload_len] = 0;
                a->payload_len = h->payload_len;
                return 0;

        case WIRE_ERROR:
                return handle_error(c, h, meta, payload, a, dispatch);

        case WIRE_PING:
                /* The broker checks we are alive; answering can wait for the
                 * next write. Out of memory: it will ask again. */
                (void)tx_append(c, WIRE_PONG, 0, 0, h->corr, NULL, 0, NULL, 0, payload,
                                h->payload_len, NULL, 0);
                return 0;

        case WIRE_MESSAGE:
                return handle_message(c, h, meta, topic, payload, fds, dispatch);

        case WIRE_GOODBYE:
                c->goodbye = true;
                if (h->payload_len > 0 && h->payload_len <= 200 &&
                    utf8_printable((const char *)payload, h->payload_len))
                        return client_kill(c, -ECONNRESET, "the broker said goodbye: %.*s",
                                           (int)h->payload_len, (const char *)payload);
                return client_kill(c, -ECONNRESET, "the broker is shutting down");

        case WIRE_REQUEST:
        case WIRE_REPLY:
                return handle_reqrep(c, h, meta, topic, payload, fds, dispatch, a);

        default:
                return client_kill(c, -EPROTO, "the broker sent a %s frame, which only clients send",
                                   wire_kind_name(h->kind));
        }
}

/* handle_frame(); a frame that ended the connection (a fatal ERROR,
 * GOODBYE, a protocol violation) is the last one taken from the stream:
 * whatever was read after it is dropped, never dispatched. */
static int handle_frame_last(ipcd_client *c, const WireHeader *h, const uint8_t *frame, int *fds,
                             bool dispatch) {
        bool was_dead = c->dead != 0;
        int r = handle_frame(c, h, frame, fds, dispatch);

        if (!was_dead && c->dead) {
                c->rstart = c->rend;
                c->rx_need = WIRE_HEADER_SIZE;
                fdq_clear(&c->rx_fds, false);
        }
        return r;
}

/*
 * Blocks until @a is answered (@a not NULL) or the output buffer holds at
 * most @out_max bytes (@a NULL), or until @deadline. Meanwhile it writes
 * output, reads input and handles frames, queueing messages instead of
 * dispatching them. Reading even when only waiting for output keeps a
 * broker that waits for us to read from deadlocking with us.
 *
 * Returns 0 (then @a->err holds the broker's verdict), -ETIMEDOUT, -ENOMEM,
 * or the error that ended the connection.
 */
static int client_block(ipcd_client *c, Await *a, size_t out_max, uint64_t deadline) {
        /* Waiting for output to drain also waits for its fds (the dups
         * this process holds) to be written. */
        size_t fds_max = out_max == 0 ? 0 : TX_FDS_LOW_WATER;
        Await *saved = c->await;
        int fds[UINT8_MAX];
        int r;

        c->await = a;
        for (;;) {
                struct pollfd pfd;
                const uint8_t *f = NULL;
                WireHeader h;
                int t;

                /* Frames already buffered may hold the answer, also after
                 * the connection ended. */
                while (!(a && a->done)) {
                        r = rx_next_frame(c, &h, &f, fds);
                        if (r <= 0)
                                break;
                        (void)handle_frame_last(c, &h, f, fds, false);
                        close_fds(fds, h.n_fds);
                }
                if (a && a->done) {
                        r = 0;
                        break;
                }
                if (c->dead) {
                        r = client_dead_error(c);
                        break;
                }
                (void)tx_write(c);
                if (c->dead)
                        continue;
                if (!a && c->wend - c->wstart <= out_max && c->tx_fds.len <= fds_max) {
                        r = 0;
                        break;
                }

                t = remaining_ms(deadline);
                if (t == 0) {
                        set_error(c, "timed out waiting for the broker");
                        r = -ETIMEDOUT;
                        break;
                }
                pfd = (struct pollfd){
                        .fd = c->fd,
                        .events = POLLIN | (c->wend > c->wstart ? POLLOUT : 0),
                };
                r = poll(&pfd, 1, t);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (r > 0 && (pfd.revents & POLLNVAL)) {
                        /* Someone closed our socket behind our back. */
                        (void)client_kill(c, -EBADF, "the connection's socket was closed");
                        continue;
                }
                if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
                        ssize_t k = rx_read(c);
                        if (k == -ENOMEM && !c->dead) {
                                r = -ENOMEM;
                                break;
                        }
                }
        }
        c->await = saved;
        return r;
}

/* Waits for the answer to the frame just queued with @a->corr. Returns 0 or
 * a negative errno: the broker's verdict or the failure to get it. */
static int client_request(ipcd_client *c, Await *a) {
        int r;

        r = client_block(c, a, 0, deadline_after(c->timeout_ms));
        if (r < 0)
                return r;
        if (a->err < 0 && a->err == c->dead)
                c->dead_reported = true; /* a fatal answer: this caller hears it */
        return a->err;
}

/* ---- the public interface ---- */

/* The default client name: the program's, cut to the protocol's limit on a
 * character boundary. */
static void default_name(char *buf, size_t cap) {
        const char *p = program_invocation_short_name;
        size_t len = p ? strlen(p) : 0;

        if (len > cap - 1) {
                len = cap - 1;
                while (len > 0 && ((unsigned char)p[len] & 0xc0) == 0x80)
                        len--;
        }
        if (len == 0 || !utf8_printable(p, len)) {
                p = FALLBACK_NAME;
                len = strlen(p);
        }
        memcpy(buf, p, len);
        buf[len] = 0;
}

static int client_connect(ipcd_client *c, const char *path, uint64_t deadline) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        socklen_t salen;

        memcpy(sa.sun_path, path, len);
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);

        for (;;) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
                socklen_t optlen = sizeof(int);
                int t, err = 0;

                if (connect(c->fd, (struct sockaddr *)&sa, salen) == 0)
                        return 0;
                if (errno == EAGAIN) {
                        /* The broker's accept backlog is full; a unix socket
                         * cannot wait for room, so retry. */
                        t = remaining_ms(deadline);
                        if (t == 0)
                                return -ETIMEDOUT;
                        (void)poll(NULL, 0, t < 0 || t > 10 ? 10 : t);
                        continue;
                }
                if (errno != EINPROGRESS && errno != EINTR)
                        return -errno;
                /* Connecting in the background: wait for it to finish. */
                for (;;) {
                        int k;

                        t = remaining_ms(deadline);
                        if (t == 0)
                                return -ETIMEDOUT;
                        k = poll(&pfd, 1, t);
                        if (k > 0)
                                break;
                        if (k < 0 && errno != EINTR)
                                return -errno;
                }
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &optlen) < 0)
                        return -errno;
                return -err;
        }
}

/*
 * Opens a connection to c->path and makes the handshake (HELLO, WELCOME),
 * taking the broker's limits from WELCOME. c->fd is -1 and c->dead 0 on
 * entry. Returns 0 or a negative errno (c->fd may then be open).
 */
static int client_open(ipcd_client *c, uint64_t deadline) {
        uint8_t hello[WIRE_META_HELLO] = { 0 };
        char *topic_buf;
        Await a;
        int r;

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
                return -errno;
        r = client_connect(c, c->path, deadline);
        if (r < 0)
                return r;

        a = (Await){ .corr = c->next_corr++, .want = WIRE_WELCOME };
        r = tx_append(c, WIRE_HELLO, 0, 0, a.corr, hello, sizeof(hello), NULL, 0, c->name,
                      strlen(c->name), NULL, 0);
        if (r < 0)
                return r;
        r = client_block(c, &a, 0, deadline);
        if (r < 0)
                return r;
        if (a.err < 0)
                return a.err;

        c->id = a.welcome.client_id;
        c->max_payload = a.welcome.max_payload;
        c->max_topic_len = a.welcome.max_topic_len;
        c->max_types = WIRE_MAX_TYPES_PER_SUB;
        if (a.welcome.max_types_per_sub > 0 && a.welcome.max_types_per_sub < c->max_types)
                c->max_types = a.welcome.max_types_per_sub;
        /* Fds per frame: the header has 8 bits, a sendmsg() carries 253. */
        c->max_fds = a.welcome.max_fds < WIRE_MAX_FDS_PER_SENDMSG ? a.welcome.max_fds
                                                                  : WIRE_MAX_FDS_PER_SENDMSG;
        c->max_bulk_size = c->max_fds > 0 ? a.welcome.max_bulk_size : 0;
        c->rx_limits.max_topic_len = (uint16_t)a.welcome.max_topic_len;
        c->rx_limits.max_payload = RX_MAX_PAYLOAD;
        if (a.welcome.max_payload > c->rx_limits.max_payload)
                c->rx_limits.max_payload = a.welcome.max_payload;
        topic_buf = realloc(c->topic_buf, c->max_topic_len + 1);
        if (!topic_buf)
                return -ENOMEM;
        c->topic_buf = topic_buf;
        c->welcomed = true;
        return 0;
}

_public_ int ipcd_client_new(ipcd_client **ret, const char *socket_path, const char *name) {
        _cleanup_(ipcd_client_unrefp) ipcd_client *c = NULL;
        char path_buf[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
        size_t len;
        int r;

        if (!ret)
                return -EINVAL;
        if (name) {
                len = strlen(name);
                if (len > WIRE_MAX_CLIENT_NAME || !utf8_printable(name, len))
                        return -EINVAL;
        }
        if (!socket_path) {
                const char *e = getenv("IPCD_SOCKET");
                if (e && *e)
                        socket_path = e;
                else {
                        r = wire_default_socket_path(path_buf, sizeof(path_buf));
                        if (r < 0)
                                return r;
                        socket_path = path_buf;
                }
        }
        if (!*socket_path)
                return -EINVAL;
        if (strlen(socket_path) >= sizeof(path_buf))
                return -ENAMETOOLONG;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->fd = -1;
        c->retry_fd = -1;
        c->last_bulk_fd = -1;
        c->timeout_ms = DEFAULT_TIMEOUT_MS;
        c->next_corr = 1;
        c->next_sub_id = 1;
        c->next_group_sub_id = SUB_ID_GROUPED;
        c->rx_need = WIRE_HEADER_SIZE;
        c->max_topic_len = WIRE_DEFAULT_MAX_TOPIC;
        c->max_payload = WIRE_DEFAULT_MAX_PAYLOAD;
        c->max_types = WIRE_MAX_TYPES_PER_SUB;
        c->bulk_threshold = DEFAULT_BULK_THRESHOLD;
        c->rx_limits = (WireLimits){
                .max_payload = RX_MAX_PAYLOAD,
                .max_topic_len = UINT16_MAX,
                .max_fds = UINT8_MAX, /* a receiver takes what the broker sends */
        };
        snprintf(c->last_error, sizeof(c->last_error), "no error");
        if (name)
                memcpy(c->name, name, strlen(name) + 1);
        else
                default_name(c->name, sizeof(c->name));
        c->path = strdup(socket_path);
        if (!c->path)
                return -ENOMEM;

        r = client_open(c, deadline_after(DEFAULT_TIMEOUT_MS));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- reconnection ---- */

static int sub_send(ipcd_client *c, Sub *s, Await *a);
static void sub_remove(ipcd_client *c, Sub *s);
static int req_fail(ipcd_client *c, Req *q, int error, bool dispatch);

static bool reconnecting(const ipcd_client *c) {
        return c->reconnect_min_ms > 0;
}

/* Arms the retry timer to fire in @ms (0 disarms it). Setting it also
 * clears an expiry nobody read, so the fd is readable only when due. */
static void retry_arm(ipcd_client *c, int ms) {
        struct itimerspec its = { 0 };

        if (c->retry_fd < 0)
                return;
        its.it_value.tv_sec = ms / 1000;
        its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
        (void)timerfd_settime(c->retry_fd, 0, &its, NULL);
}

/* Records a loss (once): the DISCONNECTED event, and an attempt due now. */
static void note_down(ipcd_client *c) {
        size_t n = 0;
        Req *q;

        if (c->down_noted)
                return;
        c->down_noted = true;
        c->attempts = 0;
        c->next_delay_ms = c->reconnect_min_ms;
        c->next_attempt = now_ms();
        if (c->ev_down_pending && c->ev_up_pending) {
                /* The application has not heard of the last loss or of the
                 * reconnection yet: one DISCONNECTED covers both. */
                c->ev_up_pending = false;
                return;
        }
        c->down_since = c->next_attempt;
        for (q = c->reqs; q; q = q->next)
                n++;
        snprintf(c->down_reason, sizeof(c->down_reason), "%s", c->last_error);
        c->ev_down = (ipcd_event){
                .type = IPCD_EVENT_DISCONNECTED,
                .error = c->dead,
                .goodbye = c->goodbye,
                .requests_failed = n,
                .reason = c->down_reason,
        };
        c->ev_down_pending = true;
}

/* Forgets the lost connection: its socket, buffers, fds in flight, and the
 * requests that were waiting on it (their failure is queued for the next
 * ipcd_client_process()). */
static void connection_reset(ipcd_client *c) {
        int err = c->dead ? c->dead : -ECONNRESET;
        Req *q;

        c->fd = safe_close(c->fd);
        c->rstart = c->rend = 0;
        c->rx_need = WIRE_HEADER_SIZE;
        fdq_clear(&c->rx_fds, false);
        c->tx_pos += c->wend - c->wstart;
        c->wstart = c->wend = 0;
        tx_fds_clear(c);
        c->welcomed = false;
        c->goodbye = false;
        c->async_err = 0;
        while ((q = c->reqs)) {
                c->reqs = q->next;
                (void)req_fail(c, q, err, false);
        }
        /* Requests from the old connection can no longer be answered. */
        while (c->live_reqs)
                client_forget_request(c->live_reqs);
        c->dead = 0;
        c->dead_reported = false;
}

/* Makes every subscription again, with its old id. One the broker refuses
 * now is removed (counted in *refused); a failure of the connection itself
 * is returned. */
static int resubscribe(ipcd_client *c, size_t *restored, size_t *refused) {
        Sub *s, *next;
        Await a;
        int r;

        for (s = c->subs; s; s = next) {
                next = s->next;
                if (s->dead)
                        continue;
                r = sub_send(c, s, &a);
                if (r >= 0) {
                        (*restored)++;
                        continue;
                }
                if (c->dead || r == -ETIMEDOUT || r == -ENOMEM)
                        return r;
                (*refused)++;
                sub_remove(c, s);
        }
        return 0;
}

/*
 * Connects again if an attempt is due: handshake, then every subscription.
 * Never from inside a handler, nor while frames of the old connection wait
 * to be dispatched. On failure the next attempt is scheduled (doubling
 * delay) and the retry timer armed.
 */
static void try_reconnect(ipcd_client *c) {
        size_t restored = 0, refused = 0;
        uint64_t now, x;
        int r;

        if (!c->dead || !reconnecting(c) || c->dispatching || rx_has_frame(c))
                return;
        note_down(c);
        if (c->retry_fd >= 0)
                (void)!read(c->retry_fd, &x, sizeof(x));
        now = now_ms();
        if (now < c->next_attempt) {
                retry_arm(c, (int)(c->next_attempt - now) + 1);
                return;
        }
        c->attempts++;
        connection_reset(c);
        r = client_open(c, deadline_after(c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS));
        if (r >= 0)
                r = resubscribe(c, &restored, &refused);
        if (r < 0) {
                (void)client_kill(c, r, "not connected to the broker: attempt %u to connect again "
                                        "failed (%s); the connection was lost: %s",
                                  c->attempts, strerror(-r), c->down_reason);
                c->dead = r;
                c->fd = safe_close(c->fd);
                c->next_attempt = now_ms() + (uint64_t)c->next_delay_ms;
                retry_arm(c, c->next_delay_ms);
                if (c->next_delay_ms < c->reconnect_max_ms / 2)
                        c->next_delay_ms *= 2;
                else
                        c->next_delay_ms = c->reconnect_max_ms;
                return;
        }
        retry_arm(c, 0);
        c->down_noted = false;
        snprintf(c->up_reason, sizeof(c->up_reason),
                 "connected again after %" PRIu64 " ms (%u attempts): %zu subscriptions restored, "
                 "%zu refused", now_ms() - c->down_since, c->attempts, restored, refused);
        c->ev_up = (ipcd_event){
                .type = IPCD_EVENT_RECONNECTED,
                .attempts = c->attempts,
                .down_ms = now_ms() - c->down_since,
                .restored = restored,
                .refused = refused,
                .reason = c->up_reason,
        };
        c->ev_up_pending = true;
}

/* Calls the event handler with what happened, in order. */
static void deliver_events(ipcd_client *c) {
        ipcd_event ev;

        while (c->ev_down_pending || c->ev_up_pending) {
                if (c->ev_down_pending) {
                        ev = c->ev_down;
                        c->ev_down_pending = false;
                } else {
                        ev = c->ev_up;
                        c->ev_up_pending = false;
                }
                if (!c->event_handler)
                        continue;
                c->dispatching++;
                c->event_handler(c, &ev, c->event_userdata);
                c->dispatching--;
        }
}

/* For a call that needs the connection: 0 when there is one (made again
 * if that is due), else the error to return. */
static int client_need_connection(ipcd_client *c) {
        if (!c->dead)
                return 0;
        if (!reconnecting(c))
                return client_dead_error(c);
        try_reconnect(c);
        if (!c->dead)
                return 0;
        set_error(c, "not connected to the broker (reconnecting): %s", c->down_reason);
        return -ENOTCONN;
}

_public_ int ipcd_client_set_reconnect(ipcd_client *c, int min_delay_ms, int max_delay_ms) {
        if (!c || min_delay_ms < 0 || max_delay_ms < 0)
                return -EINVAL;
        if (min_delay_ms > 0 && c->retry_fd < 0) {
                c->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                if (c->retry_fd < 0)
                        return -errno;
        }
        c->reconnect_min_ms = min_delay_ms;
        c->reconnect_max_ms = max_delay_ms > min_delay_ms ? max_delay_ms : min_delay_ms;
        if (min_delay_ms > 0 && c->dead)
                note_down(c);
        return 0;
}

_public_ int ipcd_client_set_event_handler(ipcd_client *c, ipcd_event_handler_t handler,
                                           void *userdata) {
        if (!c)
                return -EINVAL;
        c->event_handler = handler;
        c->event_userdata = userdata;
        return 0;
}

_public_ bool ipcd_client_is_connected(ipcd_client *c) {
        return c && !c->dead && c->welcomed;
}

_public_ int ipcd_client_set_batch(ipcd_client *c, size_t bytes) {
        if (!c)
                return -EINVAL;
        c->batch_bytes = bytes;
        return 0;
}

_public_ ipcd_client *ipcd_client_ref(ipcd_client *c) {
        if (c)
                c->n_ref++;
        return c;
}

_public_ ipcd_client *ipcd_client_unref(ipcd_client *c) {
        Sub *s;

        if (!c || --c->n_ref > 0)
                return NULL;

        if (c->welcomed && !c->dead && c->wend > c->wstart) {
                c->closing = true;
                (void)client_block(c, NULL, 0, deadline_after(c->timeout_ms));
        }
        safe_close(c->fd);
        safe_close(c->retry_fd);
        safe_close(c->last_bulk_fd);
        free(c->path);
        fdq_clear(&c->tx_fds, true);
        fdq_clear(&c->rx_fds, true);
        free(c->txf);
        while ((s = c->subs)) {
                c->subs = s->next;
                free(s);
        }
        queue_free(c);
        ipcd_msg_unref(c->slot);
        /* Handlers are not called from here: pending requests just go. */
        while (c->reqs) {
                Req *q = c->reqs;
                c->reqs = q->next;
                free(q);
        }
        /* Requests the application kept can no longer reply. */
        while (c->live_reqs)
                client_forget_request(c->live_reqs);
        free(c->topic_buf);
        free(c->wbuf);
        free(c->rbuf);
        free(c->rbuf_retired);
        free(c);
        return NULL;
}

_public_ void ipcd_client_unrefp(ipcd_client **c) {
        if (c)
                *c = ipcd_client_unref(*c);
}

_public_ int ipcd_client_set_timeout(ipcd_client *c, int timeout_ms) {
        if (!c || timeout_ms < -1)
                return -EINVAL;
        c->timeout_ms = timeout_ms;
        return 0;
}

/* The negative errno for a failed memfd_check() of an application's memfd. */
static int memfd_check_errno(MemfdCheck mc) {
        switch (mc) {
        case MEMFD_OK:
                return 0;
        case MEMFD_E_BADF:
                return -EBADF;
        case MEMFD_E_NO_SEALS:
                return -EPERM;
        case MEMFD_E_TOO_LARGE:
                return -EMSGSIZE;
        default:
                return -EINVAL;
        }
}

/*
 * Makes sure @memfd can go as a bulk payload of @size bytes, sealing it
 * when it has no seals yet: the seals are the file's, so the application's
 * memfd is sealed too. Nothing is changed when it is too short or no memfd
 * at all. Returns 0 or a negative errno (explained in the last error).
 */
static int memfd_prepare(ipcd_client *c, int memfd, uint64_t size) {
        MemfdCheck mc = memfd_check(memfd, size, c->max_bulk_size);
        int r;

        if (mc == MEMFD_E_NO_SEALS) {
                struct stat st;

                if (fstat(memfd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < size)
                        mc = MEMFD_E_TOO_SHORT;
                else {
                        r = memfd_seal(memfd);
                        if (r < 0) {
                                if (r == -EBUSY)
                                        set_error(c, "cannot seal the memfd: a writable mapping of it exists");
                                else if (r == -EPERM)
                                        set_error(c, "cannot seal the memfd: it does not allow sealing "
                                                     "(made without MFD_ALLOW_SEALING, or F_SEAL_SEAL is set)");
                                else
                                        set_error(c, "cannot seal the memfd: %s", strerror(-r));
                                return r;
                        }
                        mc = memfd_check(memfd, size, c->max_bulk_size);
                }
        }
        if (mc != MEMFD_OK) {
                if (mc == MEMFD_E_TOO_LARGE)
                        set_error(c, "bulk payload of %" PRIu64 " bytes exceeds the broker's limit of %" PRIu64
                                     " bytes", size, c->max_bulk_size);
                else
                        set_error(c, "%s", memfd_check_str(mc));
                return memfd_check_errno(mc);
        }
        return 0;
}

/*
 * What the publish, request and reply calls share: sends a PUBLISH, a
 * REQUEST (with the broker deadline @req_timeout_ms, 0 for its default) or
 * a REPLY (with @corr, the broker's request id, and no topic) frame. The
 * payload is either @data/@size (it goes as a sealed memfd when it is
 * above the bulk threshold or over max_payload) or, when @memfd >= 0, the
 * application's memfd of @bulk_size bytes. The application keeps @memfd
 * and @fds: dups are sent. *ret_corr (if not NULL) receives the frame's
 * corr id.
 */
static int send_payload(ipcd_client *c, uint8_t kind, uint64_t corr, const char *topic,
                        uint32_t type, const void *data, size_t size, int memfd,
                        uint64_t bulk_size, const int *fds, size_t n_fds, unsigned flags,
                        uint32_t req_timeout_ms, uint64_t *ret_corr) {
        int owned[WIRE_MAX_FDS_PER_SENDMSG];
        uint8_t meta[WIRE_META_REQUEST];
        size_t topic_len = 0, meta_len, n_owned = 0, i;
        bool bulk = memfd >= 0;
        TopicCheck tc;
        int r;

        if (!c || (kind != WIRE_REPLY && !topic) || (!data && size > 0) ||
            (!fds && n_fds > 0) ||
            (flags & ~(IPCD_PUBLISH_MORE | IPCD_PUBLISH_ACK | IPCD_PUBLISH_RETAIN)) ||
            (kind != WIRE_PUBLISH && flags != 0))
                return -EINVAL;
        if (kind == WIRE_REPLY && c->dead)
                return client_dead_error(c); /* a reply belongs to this connection */
        r = client_need_connection(c);
        if (r < 0)
                return r;
        if (kind != WIRE_REPLY) {
                topic_len = strlen(topic);
                tc = topic_name_check(topic, topic_len, c->max_topic_len);
                if (tc != TOPIC_OK) {
                        set_error(c, "invalid topic name: %s", topic_check_str(tc));
                        return -EINVAL;
                }
        } else
                topic = NULL;
        for (i = 0; i < n_fds; i++)
                if (fds[i] < 0) {
                        set_error(c, "file descriptor %zu is negative (%d)", i, fds[i]);
                        return -EINVAL;
                }
        if (n_fds > 0 && c->max_fds == 0) {
                set_error(c, "the broker accepts no file descriptors");
                return -EOPNOTSUPP;
        }
        if (n_fds > c->max_fds) {
                set_error(c, "%zu file descriptors exceed the broker's limit of %zu per message",
                          n_fds, c->max_fds);
                return -E2BIG;
        }

        /* Bulk when the payload is large and can go that way; inline
         * otherwise, as long as it fits a frame. */
        if (!bulk && size > 0 && (size > c->bulk_threshold || size > c->max_payload) &&
            size <= c->max_bulk_size && n_fds < c->max_fds) {
                bulk = true;
                bulk_size = size;
        }
        if (!bulk && size > c->max_payload) {
                if (c->max_bulk_size == 0) {
                        set_error(c, "payload of %zu bytes exceeds the broker's limit of %zu bytes "
                                     "(and it accepts no bulk payloads)", size, c->max_payload);
                        return -EMSGSIZE;
                }
                if (size > c->max_bulk_size) {
                        set_error(c, "payload of %zu bytes exceeds the broker's bulk limit of %" PRIu64
                                     " bytes", size, c->max_bulk_size);
                        return -EMSGSIZE;
                }
                set_error(c, "a payload of %zu bytes goes as a memfd, which takes one of the "
                             "broker's %zu file descriptors per message: at most %zu more may go with it",
                          size, c->max_fds, c->max_fds - 1);
                return -E2BIG;
        }
        if (memfd >= 0) {
                if (c->max_bulk_size == 0) {
                        set_error(c, "the broker accepts no bulk (memfd) payloads");
                        return -EOPNOTSUPP;
                }
                if (n_fds >= c->max_fds) {
                        set_error(c, "a bulk payload takes one of the broker's %zu file descriptors "
                                     "per message: at most %zu more may go with it",
                                  c->max_fds, c->max_fds - 1);
                        return -E2BIG;
                }
                r = memfd_prepare(c, memfd, bulk_size);
                if (r < 0)
                        return r;
        }

        if (c->wend - c->wstart > TX_HIGH_WATER || c->tx_fds.len > TX_FDS_HIGH_WATER) {
                r = client_block(c, NULL, TX_LOW_WATER, deadline_after(c->timeout_ms));
                if (r < 0)
                        return r;
        }

        /* Dups first (cheap, and a closed fd fails here), then the memfd. */
        if (bulk)
                owned[n_owned++] = -1;
        for (i = 0; i < n_fds; i++) {
                int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        r = -errno;
                        if (r == -EBADF)
                                set_error(c, "file descriptor %d is not open", fds[i]);
                        else
                                set_error(c, "cannot duplicate file descriptor %d: %s", fds[i],
                                          strerror(-r));
                        close_fds(owned, n_owned);
                        return r;
                }
                owned[n_owned++] = fd;
        }
        if (bulk) {
                if (memfd >= 0)
                        owned[0] = fcntl(memfd, F_DUPFD_CLOEXEC, 3);
                else
                        owned[0] = memfd_new_sealed("ipcd-bulk", data, size);
                if (owned[0] < 0) {
                        r = memfd >= 0 ? -errno : owned[0];
                        set_error(c, "cannot %s the bulk payload's memfd: %s",
                                  memfd >= 0 ? "duplicate" : "create", strerror(-r));
                        owned[0] = -1;
                        close_fds(owned, n_owned);
                        return r;
                }
                if (memfd < 0) {
                        /* Freeing the previous payload's pages is ours. */
                        safe_close(c->last_bulk_fd);
                        c->last_bulk_fd = fcntl(owned[0], F_DUPFD_CLOEXEC, 3);
                }
        }
        /* Meta: PUBLISH has the bulk size only when bulk; REQUEST the
         * deadline, 0 and the bulk size; REPLY the bulk size. */
        if (kind == WIRE_REQUEST) {
                le32_write(meta, req_timeout_ms);
                le32_write(meta + 4, 0);
                le64_write(meta + 8, bulk ? bulk_size : 0);
                meta_len = WIRE_META_REQUEST;
        } else {
                le64_write(meta, bulk ? bulk_size : 0);
                meta_len = (kind == WIRE_REPLY || bulk) ? WIRE_META_PUBLISH_BULK : 0;
        }

        if (kind != WIRE_REPLY)
                corr = c->next_corr++;
        r = tx_append(c, kind,
                      (uint16_t)(((flags & IPCD_PUBLISH_ACK) ? WIRE_F_ACK : 0) |
                                 ((flags & IPCD_PUBLISH_RETAIN) ? WIRE_F_RETAIN : 0) |
                                 (bulk ? WIRE_F_BULK : 0)),
                      type, corr, meta_len ? meta : NULL, meta_len, topic, topic_len,
                      bulk ? NULL : data, bulk ? 0 : size, owned, n_owned);
        if (r < 0)
                return r;
        if (ret_corr)
                *ret_corr = corr;
        if (flags & IPCD_PUBLISH_ACK) {
                Await a = { .corr = corr, .want = WIRE_ACK };
                return client_request(c, &a);
        }
        /* Batching: publishes wait until batch_bytes are buffered. */
        if (!(flags & IPCD_PUBLISH_MORE) &&
            !(kind == WIRE_PUBLISH && c->batch_bytes > 0 && c->wend - c->wstart < c->batch_bytes)) {
                (void)tx_write(c);
                if (c->dead)
                        return client_dead_error(c);
        }
        return 0;
}

_public_ int ipcd_client_publish(ipcd_client *c, const char *topic, uint32_t type,
                                 const void *data, size_t size, unsigned flags) {
        return send_payload(c, WIRE_PUBLISH, 0, topic, type, data, size, -1, 0, NULL, 0, flags, 0,
                            NULL);
}

_public_ int ipcd_client_publish_fds(ipcd_client *c, const char *topic, uint32_t type,
                                     const void *data, size_t size, const int *fds,
                                     size_t n_fds, unsigned flags) {
        return send_payload(c, WIRE_PUBLISH, 0, topic, type, data, size, -1, 0, fds, n_fds, flags,
                            0, NULL);
}

_public_ int ipcd_client_publish_memfd(ipcd_client *c, const char *topic, uint32_t type,
                                       int memfd, uint64_t size, const int *fds, size_t n_fds,
                                       unsigned flags) {
        if (c && memfd < 0) {
                set_error(c, "the memfd is negative (%d)", memfd);
                return -EINVAL;
        }
        return send_payload(c, WIRE_PUBLISH, 0, topic, type, NULL, 0, memfd, size, fds, n_fds,
                            flags, 0, NULL);
}

_public_ int ipcd_client_set_bulk_threshold(ipcd_client *c, size_t bytes) {
        if (!c)
                return -EINVAL;
        c->bulk_threshold = bytes;
        return 0;
}

/* Subscribes (@handler) or serves (@req_handler, no group, no flags). */
/* Sends SUBSCRIBE for @s and waits for the broker's answer. Returns 0 or a
 * negative errno (the broker's refusal, or the failure to get it). */
static int sub_send(ipcd_client *c, Sub *s, Await *a) {
        uint8_t meta[WIRE_META_SUBSCRIBE], payload[4 * WIRE_MAX_TYPES_PER_SUB + UINT8_MAX];
        size_t i;
        int r;

        for (i = 0; i < s->n_types; i++)
                le32_write(payload + 4 * i, s->types[i]);
        if (s->group_len > 0)
                memcpy(payload + 4 * s->n_types, s->group, s->group_len);
        wire_subscribe_encode(meta, &(WireSubscribe){
                                            .sub_id = s->id,
                                            .n_types = (uint16_t)s->n_types,
                                            .group_len = (uint8_t)s->group_len,
                                            .flags = s->wire_flags,
                                    });
        *a = (Await){ .corr = c->next_corr++, .want = WIRE_ACK };
        r = tx_append(c, WIRE_SUBSCRIBE, 0, 0, a->corr, meta, sizeof(meta), s->filter,
                      s->filter_len, payload, 4 * s->n_types + s->group_len, NULL, 0);
        if (r < 0)
                return r;
        return client_request(c, a);
}

static int subscribe(ipcd_client *c, const char *filter, const uint32_t *types, size_t n_types,
                     const char *group, unsigned flags, ipcd_msg_handler_t handler,
                     ipcd_request_handler_t req_handler, void *userdata, uint32_t *ret_id) {
        size_t filter_len, group_len = 0;
        TopicCheck tc;
        Await a;
        Sub *s;
        int r;

        if (!c || !filter || !handler == !req_handler || (!types && n_types > 0) ||
            (flags & ~IPCD_SUBSCRIBE_NO_RETAINED) || (req_handler && (group || flags)))
                return -EINVAL;
        r = client_need_connection(c);
        if (r < 0)
                return r;
        filter_len = strlen(filter);
        tc = topic_filter_check(filter, filter_len, c->max_topic_len);
        if (tc != TOPIC_OK) {
                set_error(c, "invalid subscription filter: %s", topic_check_str(tc));
                return -EINVAL;
        }
        if (group) {
                group_len = strlen(group);
                if (group_len == 0 || group_len > UINT8_MAX || !utf8_printable(group, group_len)) {
                        set_error(c, "invalid queue group name: it is 1 to %d bytes of "
                                     "printable UTF-8", UINT8_MAX);
                        return -EINVAL;
                }
        }
        if (n_types > c->max_types) {
                set_error(c, "a subscription selects at most %zu message types", c->max_types);
                return -E2BIG;
        }

        s = malloc(sizeof(*s) + n_types * sizeof(uint32_t) + filter_len + 1 +
                   (group ? group_len + 1 : 0));
        if (!s) {
                set_error(c, "out of memory");
                return -ENOMEM;
        }
        *s = (Sub){
                .id = sub_id_next(c, group != NULL),
                .handler = handler,
                .req_handler = req_handler,
                .responder = req_handler != NULL,
                .userdata = userdata,
                .wire_flags = (uint8_t)(((flags & IPCD_SUBSCRIBE_NO_RETAINED) ? WIRE_SUB_F_NO_RETAINED
                                                                               : 0) |
                                        (req_handler ? WIRE_SUB_F_RESPONDER : 0)),
                .filter_len = filter_len,
                .group_len = group_len,
                .n_types = n_types,
        };
        if (n_types > 0)
                memcpy(s->types, types, n_types * sizeof(uint32_t));
        s->filter = (char *)(s->types + n_types);
        memcpy(s->filter, filter, filter_len + 1);
        if (group) {
                s->group = s->filter + filter_len + 1;
                memcpy(s->group, group, group_len + 1);
        }

        r = sub_send(c, s, &a);
        if (r == -ETIMEDOUT && !c->dead) {
                /* The broker may still make it: take it back, so that it
                 * takes no share of a group's messages that nobody would
                 * handle. Frames are handled in order, so a later
                 * subscription given the same id is not affected. */
                uint8_t um[WIRE_META_UNSUBSCRIBE];

                le32_write(um, s->id);
                le32_write(um + 4, 0);
                if (tx_append(c, WIRE_UNSUBSCRIBE, 0, 0, c->next_corr++, um, sizeof(um), NULL, 0,
                              NULL, 0, NULL, 0) >= 0)
                        (void)tx_write(c);
                set_error(c, "timed out waiting for the broker");
        }
        if (r < 0) {
                free(s);
                return r;
        }

        /* What the broker sends after its ACK is for it, retained messages
         * first. */
        s->active_from = a.rx_index;
        if (c->subs_tail)
                c->subs_tail->next = s;
        else
                c->subs = s;
        c->subs_tail = s;
        if (ret_id)
                *ret_id = s->id;
        return 0;
}

_public_ int ipcd_client_subscribe_full(ipcd_client *c, const char *filter,
                                        const uint32_t *types, size_t n_types, const char *group,
                                        unsigned flags, ipcd_msg_handler_t handler,
                                        void *userdata, uint32_t *ret_id) {
        if (!handler)
                return -EINVAL;
        return subscribe(c, filter, types, n_types, group, flags, handler, NULL, userdata, ret_id);
}

_public_ int ipcd_client_serve(ipcd_client *c, const char *filter, const uint32_t *types,
                               size_t n_types, ipcd_request_handler_t handler, void *userdata,
                               uint32_t *ret_id) {
        if (!handler)
                return -EINVAL;
        return subscribe(c, filter, types, n_types, NULL, 0, NULL, handler, userdata, ret_id);
}

_public_ int ipcd_client_request(ipcd_client *c, const char *topic, uint32_t type,
                                 const void *data, size_t size, const int *fds, size_t n_fds,
                                 int timeout_ms, ipcd_reply_handler_t handler, void *userdata) {
        uint64_t corr = 0;
        Req *q;
        int r;

        if (!c || !handler)
                return -EINVAL;
        q = malloc(sizeof(*q));
        if (!q) {
                set_error(c, "out of memory");
                return -ENOMEM;
        }
        r = send_payload(c, WIRE_REQUEST, 0, topic, type, data, size, -1, 0, fds, n_fds, 0,
                         timeout_ms > 0 ? (uint32_t)timeout_ms : 0, &corr);
        if (r < 0) {
                free(q);
                return r;
        }
        *q = (Req){ .next = c->reqs, .corr = corr, .handler = handler, .userdata = userdata };
        c->reqs = q;
        return 0;
}

_public_ int ipcd_client_request_sync(ipcd_client *c, const char *topic, uint32_t type,
                                      const void *data, size_t size, int timeout_ms,
                                      ipcd_msg **ret_reply) {
        uint64_t deadline;
        Await a;
        int r;

        if (!c || !ret_reply)
                return -EINVAL;
        a = (Await){ .want = WIRE_REPLY };
        r = send_payload(c, WIRE_REQUEST, 0, topic, type, data, size, -1, 0, NULL, 0, 0,
                         timeout_ms > 0 ? (uint32_t)timeout_ms : 0, &a.corr);
        if (r < 0)
                return r;
        /* The broker answers by its deadline; a second more for the way. */
        if (timeout_ms > 0)
                deadline = deadline_after(timeout_ms) + 1000;
        else
                deadline = c->timeout_ms < 0 ? UINT64_MAX : deadline_after(c->timeout_ms) + 1000;
        r = client_block(c, &a, 0, deadline);
        if (r >= 0) {
                if (a.err < 0 && a.err == c->dead)
                        c->dead_reported = true;
                r = a.err;
        }
        if (r < 0) {
                ipcd_msg_unref(a.reply);
                return r;
        }
        if (!a.reply) {
                set_error(c, "internal error: a reply without a message");
                return -EIO;
        }
        *ret_reply = a.reply;
        return 0;
}

_public_ int ipcd_msg_reply(ipcd_msg *request, uint32_t type, const void *data, size_t size,
                            const int *fds, size_t n_fds) {
        int r;

        if (!request || request->kind != MSG_KIND_REQUEST)
                return -EINVAL;
        if (request->replied)
                return -EALREADY;
        if (!request->client)
                return -ENOTCONN;
        r = send_payload(request->client, WIRE_REPLY, request->request_id, NULL, type, data, size,
                         -1, 0, fds, n_fds, 0, 0, NULL);
        if (r < 0)
                return r;
        request->replied = true;
        return 0;
}

_public_ int ipcd_client_subscribe(ipcd_client *c, const char *filter, const uint32_t *types,
                                   size_t n_types, ipcd_msg_handler_t handler, void *userdata,
                                   uint32_t *ret_id) {
        return ipcd_client_subscribe_full(c, filter, types, n_types, NULL, 0, handler, userdata,
                                          ret_id);
}

_public_ int ipcd_client_unsubscribe(ipcd_client *c, uint32_t id) {
        uint8_t meta[WIRE_META_UNSUBSCRIBE];
        Await a;
        Sub *s;
        int r;

        if (!c)
                return -EINVAL;
        s = sub_find(c, id);
        if (!s) {
                set_error(c, "no subscription with id %u", id);
                return -ENOENT;
        }
        /* Gone locally first: no handler call for it from now on, even for
         * messages already queued. */
        sub_remove(c, s);
        if (c->dead)
                /* Reconnecting: the next connection will not have it. */
                return reconnecting(c) ? 0 : client_dead_error(c);

        le32_write(meta, id);
        le32_write(meta + 4, 0);
        a = (Await){ .corr = c->next_corr++, .want = WIRE_ACK };
        r = tx_append(c, WIRE_UNSUBSCRIBE, 0, 0, a.corr, meta, sizeof(meta), NULL, 0, NULL, 0,
                      NULL, 0);
        if (r < 0)
                return r;
        return client_request(c, &a);
}

_public_ int ipcd_client_get_fd(ipcd_client *c) {
        if (!c)
                return -EINVAL;
        /* Reconnecting with no socket: the timer of the next attempt. */
        if (c->fd < 0 && reconnecting(c))
                return c->retry_fd;
        return c->fd;
}

_public_ int ipcd_client_get_events(ipcd_client *c) {
        if (!c)
                return -EINVAL;
        return POLLIN | (!c->dead && c->wend > c->wstart ? POLLOUT : 0);
}

_public_ int ipcd_client_process(ipcd_client *c) {
        size_t budget = RX_BUDGET;
        int n = 0, err = 0, r;
        bool lost, read_some = false;

        if (!c)
                return -EINVAL;
        if (c->dispatching)
                return -EBUSY;
        if (c->dead && !c->queue_head && !rx_has_frame(c) && !c->reqs && !reconnecting(c))
                return client_dead_error(c);

        /* A handler may drop the application's last reference. */
        ipcd_client_ref(c);
        if (!c->dead)
                err = tx_write(c);
        for (;;) {
                const uint8_t *f = NULL;
                int fds[UINT8_MAX];
                WireHeader h;
                ssize_t k;

                /* What blocking calls queued came before what is buffered. */
                n += dispatch_queue(c);
                r = rx_next_frame(c, &h, &f, fds);
                if (r < 0) {
                        err = err ? err : r;
                        break;
                }
                if (r > 0) {
                        r = handle_frame_last(c, &h, f, fds, true);
                        close_fds(fds, h.n_fds);
                        if (r < 0)
                                err = err ? err : r;
                        else
                                n += r;
                        continue;
                }
                if (c->dead || budget == 0)
                        break;
                /* A short read emptied the socket: rather than a read that
                 * finds nothing, let poll() say when more comes (unclaimed
                 * fds wait for the read that drains it, see rx_check_fds). */
                if (read_some && c->rx_short && c->rx_fds.len == 0)
                        break;
                k = rx_read(c);
                read_some = true;
                if (k <= 0) {
                        if (k < 0)
                                err = err ? err : (int)k;
                        break;
                }
                budget -= (size_t)k < budget ? (size_t)k : budget;
        }
        /* Requests still pending on a lost connection get their answer. */
        if (c->dead)
                n += reqs_fail_all(c);
        lost = c->dead != 0;
        /* Connect again when that is due (messages that came with the
         * resubscriptions, retained ones first, are dispatched right
         * away); then tell the application. */
        if (lost && reconnecting(c)) {
                try_reconnect(c);
                if (!c->dead)
                        n += dispatch_queue(c);
        }
        deliver_events(c);
        /* Answers to PINGs, and what handlers published. */
        if (!c->dead)
                (void)tx_write(c);

        if (n > 0)
                r = n;
        else if (lost && reconnecting(c))
                r = 0; /* the events tell; the client goes on */
        else if (c->dead)
                r = client_dead_error(c);
        else
                r = err;
        ipcd_client_unref(c);
        return r;
}

_public_ int ipcd_client_wait(ipcd_client *c, int timeout_ms) {
        uint64_t deadline;

        if (!c || timeout_ms < -1)
                return -EINVAL;
        if (c->dispatching)
                return -EBUSY;
        deadline = deadline_after(timeout_ms);
        for (;;) {
                struct pollfd pfd;
                int r, t;

                r = ipcd_client_process(c);
                if (r != 0)
                        return r;
                t = remaining_ms(deadline);
                if (t == 0)
                        return 0;
                pfd = (struct pollfd){ .fd = ipcd_client_get_fd(c),
                                       .events = (short)ipcd_client_get_events(c) };
                if (poll(&pfd, 1, t) < 0)
                        return -errno;
        }
}

_public_ int ipcd_client_flush(ipcd_client *c) {
        int r;

        if (!c)
                return -EINVAL;
        r = client_need_connection(c);
        if (r < 0)
                return r;
        return client_block(c, NULL, 0, deadline_after(c->timeout_ms));
}

_public_ int ipcd_client_sync(ipcd_client *c) {
        Await a;
        int r;

        if (!c)
                return -EINVAL;
        if (reconnecting(c) && c->dead)
                return client_need_connection(c);
        if (!c->dead) {
                a = (Await){ .corr = c->next_corr++, .want = WIRE_PONG };
                r = tx_append(c, WIRE_PING, 0, 0, a.corr, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
                if (r >= 0)
                        r = client_request(c, &a);
        } else
                r = -ENOTCONN;
        /* An earlier refusal explains more than the failure to ask. */
        if (c->async_err) {
                r = c->async_err;
                c->async_err = 0;
                if (c->dead && r == c->dead)
                        c->dead_reported = true;
                return r;
        }
        if (r == -ENOTCONN && c->dead)
                return client_dead_error(c);
        return r;
}

_public_ const char *ipcd_client_last_error(ipcd_client *c) {
        return c ? c->last_error : "";
}

_public_ uint32_t ipcd_client_get_id(ipcd_client *c) {
        return c ? c->id : 0;
}

_public_ size_t ipcd_client_get_max_payload(ipcd_client *c) {
        return c ? c->max_payload : 0;
}

_public_ int ipcd_client_admin_full(ipcd_client *c, const char *command, const char *arg,
                                    char **ret_json, size_t *ret_len) {
        size_t len, arg_len = arg ? strlen(arg) : 0;
        TopicCheck tc;
        Await a;
        int r;

        if (!c || !command)
                return -EINVAL;
        r = client_need_connection(c);
        if (r < 0)
                return r;
        len = strlen(command);
        tc = topic_name_check(command, len, c->max_topic_len);
        if (tc != TOPIC_OK) {
                set_error(c, "invalid admin command: %s", topic_check_str(tc));
                return -EINVAL;
        }
        if (arg_len > c->max_payload) {
                set_error(c, "the argument of %zu bytes exceeds the broker's limit of %zu bytes",
                          arg_len, c->max_payload);
                return -EMSGSIZE;
        }
        a = (Await){ .corr = c->next_corr++, .want = WIRE_ADMIN_REPLY };
        r = tx_append(c, WIRE_ADMIN, 0, 0, a.corr, NULL, 0, command, len, arg, arg_len, NULL, 0);
        if (r >= 0)
                r = client_request(c, &a);
        if (r < 0) {
                free(a.payload);
                return r;
        }
        if (ret_len)
                *ret_len = a.payload_len;
        if (ret_json)
                *ret_json = a.payload;
        else
                free(a.payload);
        return 0;
}

_public_ int ipcd_client_admin(ipcd_client *c, const char *command, char **ret_json,
                               size_t *ret_len) {
        return ipcd_client_admin_full(c, command, NULL, ret_json, ret_len);
}
