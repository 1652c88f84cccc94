/* SPDX-License-Identifier: MIT */
/*
 * One client connection: the socket, its credentials, the input buffer that
 * frames are parsed from, and the bounded output queue that deliveries and
 * answers wait in until the socket takes them. Does the I/O (recvmsg,
 * sendmsg) and hands each complete, header-checked frame to the protocol
 * layer through the broker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"
#include "router.h"
#include "wire.h"

typedef struct Broker Broker;
struct event;

/* A refcounted, immutable byte block shared by every output queue that
 * carries it: a published message's topic and payload are stored once,
 * however many recipients it has. The same goes for the file descriptors
 * that came with it: the broker holds each once, every recipient gets its
 * own copy from the kernel, and they are closed with the last reference. */
typedef struct Body {
        uint32_t n_refs;
        uint32_t len;
        uint16_t n_fds;
        uint8_t pool_class; /* where it goes back to (connection.c) */
        int *fds;          /* n_fds fds in this allocation, owned */
        size_t *held_fds;  /* the broker's count of fds held in bodies */
        uint8_t data[];
} Body;

/* A body of @len bytes that takes ownership of @fds (n_fds of them, counted
 * in *held_fds), even when it fails (then it closes them). */
Body *body_new_with_fds(size_t len, const int *fds, size_t n_fds, size_t *held_fds);
static inline Body *body_new(size_t len) {
        return body_new_with_fds(len, NULL, 0, NULL);
}
static inline Body *body_ref(Body *b) {
        if (b)
                b->n_refs++;
        return b;
}
Body *body_unref(Body *b);
/* Frees the bodies and output rings kept for reuse (at exit, so leak
 * checkers see none). */
void body_pool_trim(void);

/* The largest per-frame prefix kept inline in a queue entry: the header and
 * the biggest meta block a broker sends (WELCOME). */
#define OUT_HDR_MAX (WIRE_HEADER_SIZE + WIRE_META_WELCOME)

/* One queued frame: an inline header (+meta), then an optional shared body. */
typedef struct OutEntry {
        Body *body;
        RouterTopic *topic; /* a delivery's topic (for drop counts), else NULL */
        uint32_t sent;  /* bytes of hdr+body already written */
        bool fds_sent;  /* the body's fds went with an earlier sendmsg */
        bool droppable; /* a delivery not yet started: drop-old may cancel it */
        uint16_t hdr_len; /* 0 with no body: a cancelled entry */
        uint8_t hdr[OUT_HDR_MAX];
} OutEntry;

typedef struct ConnectionStats {
        uint64_t msgs_in;    /* PUBLISH frames accepted */
        uint64_t msgs_out;   /* MESSAGE frames queued */
        uint64_t bytes_in;   /* bytes received */
        uint64_t bytes_out;  /* bytes written */
        uint64_t drops;      /* deliveries dropped for a full queue */
        uint64_t errors;     /* ERROR frames sent to it */
        uint64_t fds_in;     /* file descriptors received */
        uint64_t fds_out;    /* file descriptors passed on */
} ConnectionStats;

/* What one uid has queued across all its connections. */
typedef struct UserAcct {
        uid_t uid;
        uint32_t n_conns;
        size_t queued_bytes;
        size_t queued_fds;
        struct UserAcct *next;
} UserAcct;

typedef struct Connection {
        RouterOwner owner; /* for the router's once-per-owner rule */
        Broker *broker;
        struct Connection *prev, *next; /* broker's list */
        struct Connection *flush_next;  /* broker's list of queues to write */
        bool in_flush_list;
        bool welcomed;  /* HELLO accepted */
        bool closing;   /* a fatal error is queued: read nothing more */
        bool paused;    /* a publish blocked on a full queue: read nothing for now */
        bool resume_pending; /* unpaused: parse what is buffered before reading */
        struct Connection *blocked_on;  /* the recipient whose queue is full */
        struct Connection *waiters;     /* publishers blocked on this queue */
        struct Connection *waiter_next;
        UserAcct *user;

        int fd;
        struct event *ev_read;
        struct event *ev_write;
        struct event *ev_linger; /* closing: how long its last frames may take */
        struct event *ev_hello;  /* until HELLO: how long the handshake may take */
        uint32_t id;
        pid_t pid;
        uid_t uid;
        gid_t gid;
        gid_t *groups;  /* supplementary groups (SO_PEERGROUPS) */
        size_t n_groups;
        char name[WIRE_MAX_CLIENT_NAME + 1];
        char comm[16];  /* the peer's command name, as it was at connect */

        /* Bytes of a frame that has not completely arrived yet. Empty (and
         * freed) when the last read ended on a frame boundary, which is the
         * common case: reads go into the broker's shared buffer then. */
        uint8_t *in;
        size_t in_len, in_cap;

        /* Output ring. out_bytes counts what the queue charges against the
         * limit: the frame bytes of each entry plus the entry itself. */
        OutEntry *out;
        size_t out_head, out_count, out_cap;
        size_t out_bytes;
        size_t out_fds; /* fds referenced by queued entries */
        size_t out_msgs; /* deliveries queued (not cancelled) */
        bool ring_idle;  /* the ring was empty at the last trim */

        /* Received fds not yet claimed by a frame, in arrival order. */
        int *fdq;
        size_t fdq_len, fdq_cap;

        Subscription **subs;
        size_t n_subs, cap_subs;

        /* The topic of its last publish, valid under configuration
         * last_topic_gen: a client that publishes to the same topic again
         * skips validating and looking it up. Topics live as long as the
         * broker. */
        RouterTopic *last_topic;
        uint32_t last_topic_gen;

        struct Pending *requests_made;  /* awaiting a reply for this client */
        struct Pending *requests_asked; /* this client must answer */
        uint32_t n_pending;

        ConnectionStats stats;
} Connection;

/* Takes ownership of @fd (a connected, non-blocking, CLOEXEC socket) even on
 * failure. Registers the read event with the broker's loop. */
int connection_new(Connection **ret, Broker *b, int fd, uint32_t id, pid_t pid, uid_t uid,
                   gid_t gid);
/* Removes its subscriptions from the router, drops its queue, closes the fd. */
Connection *connection_free(Connection *c);

/*
 * Queues a frame that is not a droppable delivery (an answer, a REQUEST for
 * a responder, a REPLY): @hdr_len bytes of header+meta (copied) and an
 * optional body (a reference is taken; its fds go with the frame). It goes
 * in up to twice the per-connection byte limit; past that -ENOBUFS tells the
 * caller the client does not read and must be dropped. Deliveries go through
 * connection_deliver(). Schedules a flush.
 */
int connection_queue(Connection *c, const uint8_t *hdr, size_t hdr_len, Body *body);

/*
 * Queues a delivery of @body (+ its header and meta in @hdr) for @to under
 * @policy when its queue is full (bytes, messages, fds, or its user's
 * totals): drop this one, cancel the oldest unsent deliveries to make room,
 * disconnect @to, or queue it anyway (up to twice the limits) and stop
 * reading from @from until @to's queue drains. Returns 0 when queued,
 * -ENOBUFS when dropped (counted), -ECONNABORTED when @to is going away.
 */
int connection_deliver(Connection *to, const uint8_t *hdr, size_t hdr_len, Body *body,
                       RouterTopic *topic, OverflowPolicy policy, Connection *from);

/* Would a delivery of @body (with @hdr_len bytes of header) fit @c's queue
 * now, within every limit? */
bool connection_can_take(const Connection *c, size_t hdr_len, const Body *body);

/* Builds and queues a control frame (never droppable). topic and payload are
 * copied into a fresh body. Returns 0 or a negative errno. */
int connection_send(Connection *c, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
                    const void *meta, size_t meta_len, const void *topic, size_t topic_len,
                    const void *payload, size_t payload_len);

/*
 * Queues an ERROR frame answering a frame of @ref_kind with @corr. With
 * @fatal the frame carries WIRE_F_FATAL, the connection stops reading, and
 * it is closed once the frame is written (or at once if it cannot be).
 */
/* Frees the output ring of an idle connection: a small one at once, a
 * grown one when it was already empty at the previous call (the broker
 * calls this for every connection each second). */
void connection_trim(Connection *c);

/* HELLO was accepted: the handshake timer stops. */
void connection_welcome_done(Connection *c);

/*
 * The broker is shutting down: queues GOODBYE (with @reason as its text)
 * after everything already queued, reads nothing more, and closes the
 * connection once its queue is written or @linger_ms has passed (0: after
 * the next write, whatever is left). A connection still in its handshake
 * is closed at once. Returns -ECONNABORTED when @c must be dropped now.
 */
int connection_goodbye(Connection *c, const char *reason, uint32_t linger_ms);

void connection_error(Connection *c, WireError code, unsigned ref_kind, uint64_t corr, bool fatal,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * Writes as much of the queue as the socket takes, in as few sendmsg calls
 * as it can. Returns 0 when it should stay open (possibly with output still
 * pending, EV_WRITE armed), or a negative errno when the connection is dead
 * and the caller must free it.
 */
int connection_flush(Connection *c);

/* Reads from a connection paused by a blocked publish again, handling the
 * frames it had already read first. */
void connection_resume(Connection *c);

/* Finds one of @c's subscriptions by id. */
Subscription *connection_find_sub(Connection *c, uint32_t id);
