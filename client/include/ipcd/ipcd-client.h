/* SPDX-License-Identifier: MIT */
/*
 * libipcd-client: the client library of ipcd, the local message broker.
 *
 * A client connects to the broker's AF_UNIX socket, publishes messages on
 * topics ("sensors/cpu0/temp") and subscribes to topic filters with MQTT
 * wildcards ("sensors/+/temp", "sensors/#"). Every message carries a 32-bit
 * user type, the publisher's kernel credentials (pid, uid, gid) and a
 * per-topic sequence number. A message can carry open file descriptors
 * (files, pipes, sockets, eventfds, ...: each receiver gets its own working
 * copies), and large payloads travel as sealed memfds that no one copies
 * on the way: the receiver reads the sender's pages through a read-only
 * mapping.
 *
 * The library is loop-neutral: plug ipcd_client_get_fd() and
 * ipcd_client_get_events() into poll(), epoll, libevent, glib or sd-event
 * and call ipcd_client_process() when the fd is ready; or let
 * ipcd_client_wait() block for you.
 *
 * Conventions, true of every function below unless it says otherwise:
 *  - Functions returning int return 0 (or a count) on success and a
 *    negative errno on failure. Out-parameters (ret_*) are written only on
 *    success.
 *  - A NULL client or a bad argument gives -EINVAL.
 *  - Once the connection is lost (the broker closed it, sent a fatal error,
 *    or sent something this library cannot parse) the client is dead: the
 *    call that noticed returns the error that ended it (-ECONNRESET, -EPIPE,
 *    -EPROTO, or the errno of the broker's fatal error) and every later call
 *    returns -ENOTCONN. ipcd_client_last_error() says why. A dead client
 *    must still be released with ipcd_client_unref(). (Unless reconnection
 *    is on: see ipcd_client_set_reconnect().)
 *  - "Blocking" calls wait at most the client's timeout (see
 *    ipcd_client_set_timeout(), 5 s by default) and return -ETIMEDOUT when
 *    it expires. They restart by themselves when a signal interrupts them.
 *  - An ipcd_client is not thread-safe; use one per thread or lock around
 *    it. Distinct clients are independent. An ipcd_msg that a handler has
 *    kept with ipcd_msg_ref() belongs to no client and may be handed to
 *    another thread (its reference count is not atomic: only one thread at
 *    a time may ref/unref it).
 *  - The library never raises SIGPIPE and never calls exit().
 *  - Every file descriptor the library creates or receives is close-on-exec.
 *    Fds the application passes to a publish call stay the application's:
 *    the library sends duplicates. Fds it receives belong to the message
 *    until the application takes them (ipcd_msg_take_fd()).
 *  - Losing the connection also happens when the broker's file descriptors
 *    cannot be received (this process is at its RLIMIT_NOFILE limit:
 *    -EPROTO) or the kernel refuses to send more in flight
 *    (-ETOOMANYREFS).
 *
 * Buffered input. Blocking calls (subscribe, unsubscribe, sync, admin,
 * flush, publish with IPCD_PUBLISH_ACK) read from the socket to find their
 * answer; messages that arrive meanwhile are kept inside the library and
 * dispatched by the next ipcd_client_process() or ipcd_client_wait(),
 * never from inside the blocking call. Since poll() cannot see that
 * buffer, an application running its own loop calls ipcd_client_process()
 * once after any blocking call before it polls again. ipcd_client_wait()
 * does that by itself.
 *
 * A minimal subscriber (client/examples/example-sub.c):
 *
 *     static void on_temp(ipcd_client *c, ipcd_msg *m, void *userdata) {
 *             size_t size;
 *             const char *data = ipcd_msg_get_data(m, &size);
 *             printf("%s from pid %d: %.*s\n", ipcd_msg_get_topic(m),
 *                    (int)ipcd_msg_get_sender_pid(m), (int)size, data);
 *     }
 *
 *     ipcd_client *c = NULL;
 *     int r = ipcd_client_new(&c, NULL, "example-sub");
 *     if (r < 0) ... strerror(-r)
 *     r = ipcd_client_subscribe(c, "sensors/+/temp", NULL, 0, on_temp, NULL, NULL);
 *     while ((r = ipcd_client_wait(c, -1)) >= 0)
 *             ;
 *     ipcd_client_unref(c);
 *
 * A minimal publisher (client/examples/example-pub.c):
 *
 *     r = ipcd_client_publish(c, "sensors/cpu0/temp", 7, "42", 2, 0);
 *     r = ipcd_client_sync(c);    // the broker has seen it; 0 or its error
 *
 * Compile with `pkg-config --cflags --libs libipcd-client`.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A connection to the broker. Opaque, reference counted. */
typedef struct ipcd_client ipcd_client;

/* A received message. Opaque, reference counted. */
typedef struct ipcd_msg ipcd_msg;

/* Connection events (ipcd_client_set_event_handler()). */
enum {
        IPCD_EVENT_DISCONNECTED = 1, /* the connection was lost; reconnecting */
        IPCD_EVENT_RECONNECTED = 2,  /* connected again, subscriptions restored */
};

/*
 * What an event says. The library owns it; it is valid during the handler
 * call. Fields may be added at the end in later versions.
 */
typedef struct ipcd_event {
        int type;   /* IPCD_EVENT_* */
        /* DISCONNECTED: why, as a negative errno (-ECONNRESET when the
         * broker closed the connection or went away, -EPIPE, -EPROTO, the
         * errno of a fatal broker error, ...); the text was in
         * ipcd_client_last_error() when it happened and is in @reason. */
        int error;
        /* DISCONNECTED: the broker announced its shutdown (GOODBYE) first:
         * everything it had queued for this client arrived before it. */
        bool goodbye;
        /* DISCONNECTED: pending ipcd_client_request()s that failed with
         * @error (their reply handlers have run or run next). */
        size_t requests_failed;
        /* RECONNECTED: connection attempts it took, and how long the
         * client had no connection, in milliseconds. Messages published
         * by others during that time were not delivered to this client
         * (retained messages are sent again on resubscribing, with
         * IPCD_MSG_RETAINED, unless the subscription said
         * IPCD_SUBSCRIBE_NO_RETAINED); publishes this client tried meanwhile
         * failed with -ENOTCONN. */
        unsigned attempts;
        uint64_t down_ms;
        /* RECONNECTED: subscriptions (ipcd_client_subscribe*(),
         * ipcd_client_serve()) made again with their old ids and handlers,
         * and those the broker refused this time (for example, the access
         * rules changed): these are gone, as if unsubscribed. */
        size_t restored;
        size_t refused;
        /* A human-readable summary, NUL-terminated. */
        const char *reason;
} ipcd_event;

/*
 * An event handler, called from ipcd_client_process() and
 * ipcd_client_wait() (never from inside other calls), like message
 * handlers. After either event the fd to watch has changed: read
 * ipcd_client_get_fd() again and re-register it with the event loop.
 */
typedef void (*ipcd_event_handler_t)(ipcd_client *c, const ipcd_event *ev, void *userdata);

/*
 * A subscription's message handler. Called from ipcd_client_process() or
 * ipcd_client_wait() only, once per matching subscription (see
 * ipcd_client_subscribe()). @m is borrowed for the duration of the call:
 * its pointers stay valid until the handler returns; ipcd_msg_ref() it to
 * keep it longer. The handler may call ipcd_client_publish(),
 * ipcd_client_unsubscribe() (of any subscription, itself included),
 * ipcd_client_subscribe(), ipcd_client_sync(), ipcd_client_admin() and
 * ipcd_client_flush(); ipcd_client_process() and ipcd_client_wait() return
 * -EBUSY from inside a handler. It may drop its own reference to @c: the
 * library holds one while it dispatches.
 */
typedef void (*ipcd_msg_handler_t)(ipcd_client *c, ipcd_msg *m, void *userdata);

/* ipcd_client_publish() flags. */
#define IPCD_PUBLISH_MORE (1u << 0)   /* buffer; more follows, do not write yet (like MSG_MORE) */
#define IPCD_PUBLISH_ACK (1u << 1)    /* block until the broker has routed it; return its error */
#define IPCD_PUBLISH_RETAIN (1u << 2) /* the broker keeps it as the topic's retained message */

/* ipcd_client_subscribe_full() flags. */
#define IPCD_SUBSCRIBE_NO_RETAINED (1u << 0) /* no retained messages on subscribing */

/* ipcd_msg_get_flags() bits. */
#define IPCD_MSG_RETAINED (1u << 0) /* a retained message, sent first to a new subscription */
#define IPCD_MSG_BULK (1u << 1)     /* the payload came as a sealed memfd, mapped read-only */

/*
 * Connects to the broker and performs the handshake (HELLO/WELCOME),
 * blocking up to the default timeout of 5 s.
 *
 * @ret:         receives the new client (one reference, owned by the caller).
 * @socket_path: the broker's socket; NULL picks $IPCD_SOCKET when set and
 *               not empty, else the broker's default path:
 *               $RUNTIME_DIRECTORY/ipcd.sock, $XDG_RUNTIME_DIR/ipcd.sock or
 *               /run/ipcd/ipcd.sock. Not kept after the call.
 * @name:        the client name the broker shows in its tables: at most 64
 *               bytes of printable UTF-8. NULL uses the program name
 *               (truncated to fit). Not kept after the call.
 *
 * Returns 0, or:
 *   -EINVAL          @ret is NULL, @name is not valid, the path is empty
 *   -ENAMETOOLONG    the socket path does not fit a sockaddr_un
 *   -ENOENT          no socket at that path (no broker running)
 *   -ECONNREFUSED    the socket exists but no broker listens on it
 *   -EACCES          no permission to connect to the socket
 *   -ETIMEDOUT       the broker did not answer in time
 *   -EPROTO          the broker's answer is malformed, or it refused the
 *                    handshake
 *   -EPROTONOSUPPORT the broker does not speak this protocol version
 *   -ECONNRESET      the broker closed the connection during the handshake
 *   -ENOBUFS         the broker is at its connection limit
 *   -ENOMEM          out of memory
 *   or another errno of socket(2)/connect(2) (-EMFILE, ...).
 * The failure's explanation is lost with the client; the return value is
 * all there is.
 */
int ipcd_client_new(ipcd_client **ret, const char *socket_path, const char *name);

/* Takes a reference. Returns @c. NULL-safe (returns NULL). */
ipcd_client *ipcd_client_ref(ipcd_client *c);

/*
 * Drops a reference. The last one writes what is still buffered (bounded by
 * the client's timeout), closes the connection and frees the client, its
 * subscriptions and any buffered messages; messages kept with
 * ipcd_msg_ref() stay valid. Handlers are not called from here. Returns
 * NULL. NULL-safe.
 */
ipcd_client *ipcd_client_unref(ipcd_client *c);

/* Calls ipcd_client_unref(*c); for `__attribute__((cleanup(ipcd_client_unrefp)))`. */
void ipcd_client_unrefp(ipcd_client **c);

/*
 * Sets the timeout of the blocking calls in milliseconds: -1 waits forever,
 * 0 fails at once when the answer is not already there. Default 5000.
 * Returns 0, or -EINVAL when @c is NULL or @timeout_ms < -1.
 */
int ipcd_client_set_timeout(ipcd_client *c, int timeout_ms);

/*
 * Publishes @size bytes at @data (NULL when @size is 0) on @topic (a topic
 * name: no wildcards) with user message type @type. The data is copied;
 * the caller keeps ownership of @topic and @data.
 *
 * Payloads above the bulk threshold (64 KiB by default, see
 * ipcd_client_set_bulk_threshold()), and every payload larger than
 * ipcd_client_get_max_payload(), go as a bulk payload: the library copies
 * them once into a new memfd, seals it (F_SEAL_WRITE, F_SEAL_SHRINK,
 * F_SEAL_GROW, F_SEAL_SEAL) and sends its fd; the broker passes the fd on
 * without touching the data and receivers map it read-only. Nothing
 * changes for the receiver's code but IPCD_MSG_BULK in
 * ipcd_msg_get_flags(). A broker that takes no bulk payloads (its
 * handshake says so) gets every payload inline, up to its max_payload.
 * The library keeps the last memfd it made for a bulk payload open until
 * it makes the next one (or the last unref): the publisher, not the
 * broker or a receiver that closes last, then pays for freeing its pages.
 *
 * The frame goes into the client's output buffer. Without
 * IPCD_PUBLISH_MORE the library then writes what is buffered, without
 * blocking; what the socket does not take goes out from
 * ipcd_client_process(), ipcd_client_wait(), ipcd_client_flush() or the
 * next call that writes. With IPCD_PUBLISH_MORE nothing is written yet
 * (batch several messages into one system call). When more than 4 MiB is
 * waiting to be written, the call first blocks until the socket took
 * part of it.
 *
 * Without IPCD_PUBLISH_ACK publishing is fire-and-forget: an error the
 * broker reports later (for example -EACCES for a topic starting with '$')
 * is returned by the next ipcd_client_sync(). With IPCD_PUBLISH_ACK the
 * call blocks until the broker has routed the message and returns the
 * broker's verdict.
 *
 * With IPCD_PUBLISH_RETAIN the message is delivered as usual and the
 * broker also keeps it as the topic's retained message, replacing the one
 * it kept before: every later subscription whose filter matches the topic
 * receives it right after subscribing, with IPCD_MSG_RETAINED set. A
 * retained publish with an empty payload (and no fds) clears the topic's
 * retained message (subscribers still receive the empty message). The
 * broker's topic rules may forbid retaining on a topic (-EACCES), and it
 * keeps a bounded number and size of them in total (-ENOBUFS: the message
 * was delivered but not retained).
 *
 * Returns 0, or:
 *   -EINVAL      @c or @topic NULL, @data NULL with @size > 0, unknown
 *                @flags, or @topic is not a valid topic name (empty, too
 *                long, wildcard, control character, bad UTF-8; the reason
 *                is in ipcd_client_last_error())
 *   -EMSGSIZE    @size exceeds the broker's bulk limit (1 GiB by default),
 *                or exceeds ipcd_client_get_max_payload() and the broker
 *                takes no bulk payloads
 *   -ENOMEM      out of memory (nothing was queued)
 *   -EMFILE, -ENFILE, -ENOSPC  a bulk payload's memfd could not be made
 *                (no fd left, or no memory for it in tmpfs)
 *   -ETIMEDOUT   the output buffer did not drain in time (nothing was
 *                queued), or with IPCD_PUBLISH_ACK: no answer in time (the
 *                message may still be routed)
 *   -ECONNRESET, -EPIPE, -EPROTO  the connection was lost during this call
 *   -ENOTCONN    the connection was lost earlier
 *   with IPCD_PUBLISH_ACK, the broker's refusal: -EACCES (permission
 *   denied, '$' topic, retaining not allowed on the topic), -ENOBUFS (a
 *   limit was reached; with IPCD_PUBLISH_RETAIN also: delivered but not
 *   retained), -EOPNOTSUPP, -EINVAL, -EMSGSIZE, -EIO (broker failure).
 */
int ipcd_client_publish(ipcd_client *c, const char *topic, uint32_t type, const void *data,
                        size_t size, unsigned flags);

/*
 * Like ipcd_client_publish(), and the message carries the @n_fds file
 * descriptors in @fds (NULL when @n_fds is 0), in this order. Any kind of
 * fd works: files, directories, pipes, sockets, eventfds, memfds, ... Each
 * receiver gets its own copies (as with dup(2): they share the open file
 * description, offset and status flags included).
 *
 * Ownership: the library duplicates @fds (F_DUPFD_CLOEXEC) during the
 * call; the caller keeps its own fds and may close them as soon as this
 * returns. The duplicates are closed once they have been written to the
 * socket, or when the message is dropped (connection lost, last unref).
 * Up to 512 duplicates wait for the socket at a time: beyond that, this
 * call first blocks until the socket took some (like the 4 MiB of bytes).
 *
 * The payload goes inline or as a memfd as for ipcd_client_publish(); a
 * memfd takes one of the broker's fds per message (max_fds in its
 * handshake, 16 by default), so with a bulk payload at most max_fds - 1
 * more may go with it. When @n_fds leaves no room for it, a payload that
 * fits max_payload goes inline whatever the threshold.
 *
 * Returns what ipcd_client_publish() returns, and also:
 *   -EINVAL      @fds NULL with @n_fds > 0, or a negative fd in @fds
 *   -EBADF       an fd in @fds is not open
 *   -E2BIG       more than max_fds fds, or max_fds fds and a payload over
 *                max_payload (that needs one more for its memfd)
 *   -EOPNOTSUPP  @n_fds > 0 but the broker accepts no fds (max_fds 0)
 *   -EMFILE      no fd left for a duplicate
 *   with IPCD_PUBLISH_ACK also the broker's refusals: -ENOBUFS (the
 *   broker's own fd budget is exhausted), -EBADFD (a bulk payload failed
 *   its checks; cannot happen with memfds this library made).
 * On failure nothing was queued and no fd was kept.
 */
int ipcd_client_publish_fds(ipcd_client *c, const char *topic, uint32_t type, const void *data,
                            size_t size, const int *fds, size_t n_fds, unsigned flags);

/*
 * Publishes the first @size bytes of @memfd, a memfd the application
 * filled (memfd_create(2) with MFD_ALLOW_SEALING), as a bulk payload: no
 * byte is copied, receivers map the same pages read-only. @fds and @n_fds
 * as for ipcd_client_publish_fds() (at most max_fds - 1 of them). @size 0
 * sends an empty payload (the memfd may be empty too).
 *
 * The memfd must be sealed against writing, shrinking and growing before
 * it can go. When it has none of those seals yet, this call adds them
 * (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL): seals belong
 * to the file, so from then on the application's memfd is read-only and
 * of fixed size too. Sealing needs every writable shared mapping of it to
 * be gone (munmap(2) first). A memfd that fails the checks is never
 * changed.
 *
 * Ownership: @memfd and @fds stay the caller's; the library sends
 * duplicates, as for ipcd_client_publish_fds(). The caller may close and
 * unmap its memfd as soon as this returns.
 *
 * Returns 0, or what ipcd_client_publish_fds() returns, and also:
 *   -EINVAL      @memfd negative; not a memfd (not a regular file on tmpfs
 *                or hugetlbfs: a pipe, a socket, a file on disk); or
 *                smaller than @size bytes
 *   -EBADF       @memfd is not open
 *   -EBUSY       it needed sealing, and a writable mapping of it exists
 *   -EPERM       it needed sealing and cannot be sealed (made without
 *                MFD_ALLOW_SEALING, or sealed with F_SEAL_SEAL without the
 *                seals a bulk payload needs)
 *   -EMSGSIZE    @size exceeds the broker's bulk limit (1 GiB by default)
 *   -EOPNOTSUPP  the broker accepts no bulk payloads
 *   -E2BIG       more than max_fds - 1 fds in @fds
 */
int ipcd_client_publish_memfd(ipcd_client *c, const char *topic, uint32_t type, int memfd,
                              uint64_t size, const int *fds, size_t n_fds, unsigned flags);

/*
 * Sets the bulk threshold: payloads of more than @bytes bytes go as a
 * sealed memfd. Default 65536. 0 sends every non-empty payload as a memfd
 * (an empty one always goes inline); SIZE_MAX sends a payload as a memfd
 * only when it does not fit inline (above ipcd_client_get_max_payload()).
 * Below a few tens of KiB a memfd costs more than the copies it saves
 * (creating, sealing and mapping it are system calls and page faults).
 * Returns 0, or -EINVAL when @c is NULL.
 */
int ipcd_client_set_bulk_threshold(ipcd_client *c, size_t bytes);

/*
 * Subscribes to @filter (a topic name or a filter with '+' and '#'
 * wildcards) and blocks until the broker confirms it. The same as
 * ipcd_client_subscribe_full() with no group and no flags.
 *
 * @types, @n_types: the message types to receive (at most 64); NULL and 0
 *               for every type. Copied.
 * @handler:     called for every message whose topic matches @filter and
 *               whose type is selected, from ipcd_client_process() or
 *               ipcd_client_wait(); never from inside this call.
 * @userdata:    passed to @handler; not owned.
 * @ret_id:      receives the subscription's id (nonzero, unique among this
 *               client's subscriptions, not reused before 2^31 more
 *               subscriptions); may be NULL.
 *
 * When several subscriptions of one client match a message, the broker
 * sends it once and the library calls the handler of each of them, in the
 * order they were made. A subscription sees the messages the broker routed
 * after it confirmed it, preceded by the retained messages of the topics
 * it matches (IPCD_MSG_RETAINED; those go to the new subscription only,
 * not to older ones of the client that match them too).
 *
 * Returns 0, or:
 *   -EINVAL      @c, @filter or @handler NULL, @types NULL with
 *                @n_types > 0, or @filter invalid (reason in
 *                ipcd_client_last_error())
 *   -E2BIG       more types than the broker allows per subscription (64)
 *   -ENOBUFS     the broker's subscription limit for this connection
 *   -EACCES      the broker's access rules refuse it
 *   -EOPNOTSUPP  the broker does not support what was asked
 *   -ETIMEDOUT   no answer in time (should the broker still create it,
 *                the library has asked it to remove it again right after;
 *                meanwhile its messages are ignored)
 *   -ENOMEM, -ECONNRESET, -EPIPE, -EPROTO, -ENOTCONN as for publish.
 */
int ipcd_client_subscribe(ipcd_client *c, const char *filter, const uint32_t *types,
                          size_t n_types, ipcd_msg_handler_t handler, void *userdata,
                          uint32_t *ret_id);

/*
 * Like ipcd_client_subscribe(), with a queue group and flags.
 *
 * @group:  NULL for an ordinary subscription, or the name of a queue group
 *          to join: 1 to 255 bytes of printable UTF-8 (no control
 *          characters). Copied. The group is the broker's, shared by every
 *          connection that subscribes with that name: each message goes to
 *          exactly one member of each group whose filter matches it (in
 *          turn, among the members whose queue has room), and, as always,
 *          to every ordinary subscription. So a client that has both an
 *          ordinary subscription and a group member matching a message
 *          receives it twice: once for each.
 * @flags:  0, or IPCD_SUBSCRIBE_NO_RETAINED: no retained messages when the
 *          subscription starts.
 *
 * Delivery to a group member: the message's handler is the member's only
 * (no other subscription of this client is called for that delivery),
 * and ipcd_msg_get_subscription() is its id. Ids of grouped subscriptions
 * have the top bit set (0x80000000 and above), ordinary ones do not.
 *
 * Returns what ipcd_client_subscribe() returns; -EINVAL also for an
 * invalid @group or unknown @flags.
 */
int ipcd_client_subscribe_full(ipcd_client *c, const char *filter, const uint32_t *types,
                               size_t n_types, const char *group, unsigned flags,
                               ipcd_msg_handler_t handler, void *userdata, uint32_t *ret_id);

/*
 * Removes subscription @id and blocks until the broker confirms it. The
 * subscription is removed locally first, whatever the outcome: once this
 * returns (even with an error) its handler is never called again, not even
 * for messages already buffered. Safe from inside any handler, that
 * subscription's own included.
 *
 * Returns 0, or:
 *   -EINVAL     @c NULL
 *   -ENOENT     no subscription @id on this client (or the broker did not
 *               know it)
 *   -ETIMEDOUT, -ENOMEM, -ECONNRESET, -EPIPE, -EPROTO, -ENOTCONN as for
 *               publish (the local subscription is gone all the same).
 */
int ipcd_client_unsubscribe(ipcd_client *c, uint32_t id);

/*
 * The connection's socket, for poll()/epoll: watch it for
 * ipcd_client_get_events() and call ipcd_client_process() when ready. It
 * stays open (and owned by the client) until the last ipcd_client_unref();
 * do not read, write or close it. Returns the fd, or -EINVAL when @c is
 * NULL.
 */
int ipcd_client_get_fd(ipcd_client *c);

/*
 * The poll events to wait for: POLLIN, plus POLLOUT while output is waiting
 * to be written. Recompute it after every call on the client. Returns the
 * mask, or -EINVAL when @c is NULL.
 */
int ipcd_client_get_events(ipcd_client *c);

/*
 * Does whatever can be done without blocking: writes buffered output,
 * dispatches buffered messages, reads what the socket has (up to about
 * 1 MiB per call, so one busy connection cannot starve a shared loop) and
 * dispatches it. Call it when the fd is ready, and once after any blocking
 * call.
 *
 * Returns the number of messages dispatched to at least one handler (0 if
 * none), or:
 *   -EINVAL     @c NULL
 *   -EBUSY      called from inside a handler
 *   -ECONNRESET the broker closed the connection (or -EPIPE, -EPROTO, the
 *               errno of a fatal broker error)
 *   -ENOTCONN   the connection was lost earlier (messages that arrived
 *               before that are still dispatched first)
 * Errors the broker reports for earlier fire-and-forget frames are not
 * returned here; see ipcd_client_sync().
 */
int ipcd_client_process(ipcd_client *c);

/*
 * Processes (as ipcd_client_process()) until at least one message has been
 * dispatched or @timeout_ms milliseconds have passed (-1: no limit, 0:
 * process once). This timeout replaces the client's for this call.
 * Returns the number of messages dispatched, 0 on timeout, or the errors of
 * ipcd_client_process(), or -EINTR when a signal interrupted the wait
 * (the caller decides whether to retry).
 */
int ipcd_client_wait(ipcd_client *c, int timeout_ms);

/*
 * Blocks until everything buffered has been written to the socket (which
 * does not mean the broker has handled it: see ipcd_client_sync()).
 * Returns 0, or -EINVAL, -ETIMEDOUT, -ECONNRESET, -EPIPE, -EPROTO,
 * -ENOTCONN.
 */
int ipcd_client_flush(ipcd_client *c);

/*
 * Writes everything buffered and makes a round trip to the broker (PING,
 * PONG). The broker handles frames in order, so when this returns every
 * frame sent before has been handled and any error it caused has arrived.
 *
 * Returns 0, or the errno of the first error the broker reported for a
 * fire-and-forget frame since the previous ipcd_client_sync() (-EACCES,
 * -ENOBUFS, -EINVAL, ...; the text is in ipcd_client_last_error(); the
 * error is cleared by being returned; errors that a blocking call already
 * returned to its caller are not repeated), or -EINVAL, -ETIMEDOUT,
 * -ECONNRESET, -EPIPE, -EPROTO, -ENOTCONN, -ENOMEM.
 */
int ipcd_client_sync(ipcd_client *c);

/*
 * Automatic batching of publishes. With @bytes > 0, ipcd_client_publish()
 * (and its _fds and _memfd variants) without IPCD_PUBLISH_MORE no longer
 * writes each message at once: messages collect in the output buffer and
 * leave in one system call when @bytes or more are waiting, and whenever
 * the library writes anyway: ipcd_client_flush(), ipcd_client_sync(),
 * ipcd_client_process() and ipcd_client_wait() (so an application that
 * runs its loop, polling with ipcd_client_get_events(), which asks for
 * POLLOUT while anything waits, sends them at its next iteration), any
 * blocking call, a request or reply, and the last ipcd_client_unref().
 * A program that publishes and then sleeps without any of those must call
 * ipcd_client_flush() first. 16 KiB to 64 KiB is a good size: many small
 * messages per system call, little delay. @bytes 0 (the default) writes
 * every publish at once. Returns 0 or -EINVAL.
 */
int ipcd_client_set_batch(ipcd_client *c, size_t bytes);

/*
 * Automatic reconnection. With @min_delay_ms > 0, a lost connection (the
 * broker restarted, or was stopped and comes back) no longer ends the
 * client: the library connects again, repeats the handshake and makes
 * every subscription and ipcd_client_serve() registration again, with the
 * same ids and handlers. The first attempt is immediate, then after
 * @min_delay_ms, doubling up to @max_delay_ms (at least @min_delay_ms).
 * Attempts are made from ipcd_client_process()/ipcd_client_wait() (and
 * from any call that needs the connection, once one is due); while there
 * is no connection:
 *  - ipcd_client_get_fd() returns a timer fd that becomes readable when the
 *    next attempt is due; process and wait return 0, not an error;
 *  - publishing, requests, subscribing, admin and sync fail at once with
 *    -ENOTCONN (nothing is queued for later), and
 *    ipcd_client_last_error() says that the client is reconnecting;
 *  - pending requests fail with the error that ended the connection;
 *    requests received from the broker can no longer be answered
 *    (ipcd_msg_reply() returns -ENOTCONN).
 * The event handler (ipcd_client_set_event_handler()) hears of the loss
 * and of the new connection, with what may have been missed. A fatal
 * error that the broker sent for this client's own fault (a protocol
 * violation, a slow consumer cut off) is reconnected like any other loss.
 * @min_delay_ms 0 turns it off (the default: a lost connection is final).
 * Returns 0, -EINVAL (negative delays), or the errno of timerfd_create().
 */
int ipcd_client_set_reconnect(ipcd_client *c, int min_delay_ms, int max_delay_ms);

/* Sets the connection event handler (NULL: none). Returns 0 or -EINVAL. */
int ipcd_client_set_event_handler(ipcd_client *c, ipcd_event_handler_t handler, void *userdata);

/* Whether the client has a working connection now. */
bool ipcd_client_is_connected(ipcd_client *c);

/*
 * The explanation of the last error: the broker's text of the last ERROR
 * it sent, or the library's own explanation of a local failure (invalid
 * topic, lost connection, ...). Valid until the next call on @c. Never
 * NULL: "" for a NULL client, "no error" before any error.
 */
const char *ipcd_client_last_error(ipcd_client *c);

/* The client id the broker assigned in its handshake (nonzero); 0 for NULL. */
uint32_t ipcd_client_get_id(ipcd_client *c);

/* The largest inline payload the broker accepts, from its handshake
 * (default 1 MiB); 0 for NULL. Larger ones go as memfds (see
 * ipcd_client_publish()). */
size_t ipcd_client_get_max_payload(ipcd_client *c);

/*
 * Runs the broker administration command @command without an argument and
 * blocks for the answer, a JSON document: ipcd_client_admin_full() with
 * @arg NULL.
 */
int ipcd_client_admin(ipcd_client *c, const char *command, char **ret_json, size_t *ret_len);

/*
 * Runs the broker administration command @command with the argument @arg
 * and blocks for the answer, a JSON object. The commands (ipcctl(1) shows
 * them; docs/PROTOCOL.md describes each answer):
 *   "status"   anyone: counters, and tables of clients and topics
 *   "clients"  admin: every connection
 *   "topics"   admin: @arg is a filter ("#" when NULL or ""): the topics
 *              it matches, the subscriptions and queue groups
 *   "kick"     admin: @arg is a client id in decimal; the broker
 *              disconnects that client (its calls fail with -ECONNRESET)
 *   "reload"   admin: re-read the configuration file
 * "Admin" means root, the broker's own user, or a user an access rule
 * makes an administrator.
 *
 * @arg:      NUL-terminated argument text; NULL or "" for none. Not kept.
 * @ret_json: receives the answer, malloc()ed and NUL-terminated; the
 *            caller frees it. May be NULL to discard it.
 * @ret_len:  receives its length without the NUL; may be NULL.
 *
 * Returns 0, or:
 *   -EINVAL     @c or @command NULL, or @command empty or invalid; or the
 *               broker refused the command or its argument: unknown
 *               command, no client with that id, invalid filter, or (for
 *               "reload") an invalid configuration file, which the broker
 *               does not apply. The broker's reason is in
 *               ipcd_client_last_error() ("file:line:column: ..." for a
 *               configuration error).
 *   -EMSGSIZE   @arg is longer than ipcd_client_get_max_payload()
 *   -EACCES     an admin command and this client's user is no admin
 *   -ETIMEDOUT, -ENOMEM, -ECONNRESET, -EPIPE, -EPROTO, -ENOTCONN.
 */
int ipcd_client_admin_full(ipcd_client *c, const char *command, const char *arg, char **ret_json,
                           size_t *ret_len);

/*
 * Request/reply. A responder serves a topic filter (ipcd_client_serve());
 * a requester sends a request to a topic name (ipcd_client_request() or
 * ipcd_client_request_sync()) and gets one answer: the reply of one
 * responder (the broker picks one in turn among all the responders whose
 * filter and types match), or the broker's refusal. Requests and replies
 * carry a type, a payload (a bulk memfd above the bulk threshold, as for
 * ipcd_client_publish()) and fds, and are never delivered to ordinary
 * subscriptions. The broker gives each request a deadline (the
 * requester's, or its configured default, 5 s unless changed) and answers
 * by itself when nobody can.
 *
 * Errors a request can end with (the handler's @error, or the return of
 * ipcd_client_request_sync()); the broker's text is in
 * ipcd_client_last_error():
 *   -EHOSTUNREACH  no responders: nobody serves the topic (at once)
 *   -ETIMEDOUT     the deadline passed without a reply (a late reply is
 *                  dropped by the broker)
 *   -ECONNABORTED  the responder disconnected with the request pending
 *   -ENOBUFS       too many requests pending on this connection, or every
 *                  responder's queue is full
 *   -EACCES        the access rules refuse requests to the topic (or the
 *                  topic starts with '$')
 *   -EMSGSIZE, -EINVAL, -EBADFD, -EIO  refused as a publish would be
 *   the error that ended the connection (-ECONNRESET, -EPIPE, -EPROTO, ...)
 *   when it is lost with the request pending.
 */

/*
 * An answer to ipcd_client_request(). Called exactly once per request, from
 * ipcd_client_process() or ipcd_client_wait() (never from inside another
 * call), unless the client is freed first (then never).
 *
 * @error: 0 and @reply the reply; or a negative errno (see above) and
 *         @reply NULL.
 * @reply: borrowed as in ipcd_msg_handler_t (ipcd_msg_ref() it to keep
 *         it). Its topic is the request's topic, its type and payload the
 *         responder's, its sender the responder's pid/uid/gid; its
 *         sequence number and subscription id are 0. It owns the fds the
 *         responder attached.
 * The handler may do what a subscription's handler may.
 */
typedef void (*ipcd_reply_handler_t)(ipcd_client *c, int error, ipcd_msg *reply, void *userdata);

/*
 * A request to one of this client's services (ipcd_client_serve()). @request
 * is borrowed as for ipcd_msg_handler_t: answer it with ipcd_msg_reply()
 * before returning, or ipcd_msg_ref() it and reply later. Its topic is the
 * topic the requester named, its type and payload the requester's, its
 * sender the requester's credentials, ipcd_msg_get_subscription() the id
 * ipcd_client_serve() returned. A request that is never answered makes the
 * requester time out.
 */
typedef void (*ipcd_request_handler_t)(ipcd_client *c, ipcd_msg *request, void *userdata);

/*
 * Sends a request to @topic (a topic name) and returns at once; @handler
 * gets the answer later (see ipcd_reply_handler_t).
 *
 * @type, @data, @size, @fds, @n_fds: as for ipcd_client_publish_fds() (the
 *             data and fds are copied/duplicated; the caller keeps its own;
 *             a payload over the bulk threshold goes as a sealed memfd).
 * @timeout_ms: the broker's deadline for the reply; <= 0 for the broker's
 *             default.
 * @handler:   must not be NULL. @userdata is passed to it, not owned.
 *
 * Returns 0 (the handler will run), or what ipcd_client_publish_fds()
 * returns for a payload or fds it cannot send (-EINVAL, -EMSGSIZE, -E2BIG,
 * -EBADF, -EOPNOTSUPP, -ENOMEM, -EMFILE, -ETIMEDOUT, -ECONNRESET, -EPIPE,
 * -EPROTO, -ENOTCONN): then the handler never runs.
 */
int ipcd_client_request(ipcd_client *c, const char *topic, uint32_t type, const void *data,
                        size_t size, const int *fds, size_t n_fds, int timeout_ms,
                        ipcd_reply_handler_t handler, void *userdata);

/*
 * Sends a request to @topic and blocks for the answer. Messages, requests
 * and other replies that arrive meanwhile are buffered and dispatched by
 * the next ipcd_client_process() or ipcd_client_wait(), as for every
 * blocking call.
 *
 * @timeout_ms: the broker's deadline (<= 0: its default). The call waits
 *              until the broker's answer, at most @timeout_ms plus one
 *              second (with @timeout_ms <= 0: the client's timeout plus one
 *              second, or forever when that is -1).
 * @ret_reply:  receives the reply (one reference, the caller unrefs it);
 *              must not be NULL.
 *
 * Returns 0, or a request error (see above), or what ipcd_client_request()
 * returns; -ETIMEDOUT also when no answer came in time locally; -EBUSY
 * never (it may be called from a handler).
 */
int ipcd_client_request_sync(ipcd_client *c, const char *topic, uint32_t type, const void *data,
                             size_t size, int timeout_ms, ipcd_msg **ret_reply);

/*
 * Serves requests sent to topics @filter matches (wildcards allowed), of
 * the types in @types (NULL and 0 for every type), and blocks until the
 * broker confirms it. Each request goes to one responder among every
 * client serving a matching filter, in turn. @handler (not NULL) is
 * called for each from ipcd_client_process() or ipcd_client_wait(). A
 * responder receives no published messages. Stop with
 * ipcd_client_unsubscribe(@*ret_id): requests the broker already sent it
 * are then dropped (their requesters time out).
 *
 * Returns what ipcd_client_subscribe() returns.
 */
int ipcd_client_serve(ipcd_client *c, const char *filter, const uint32_t *types, size_t n_types,
                      ipcd_request_handler_t handler, void *userdata, uint32_t *ret_id);

/*
 * Replies to @request, a message given to an ipcd_request_handler_t: from
 * inside the handler, or later if it was kept with ipcd_msg_ref() (on the
 * thread that uses its client). @type, @data, @size, @fds, @n_fds as for
 * ipcd_client_publish_fds() (copied; bulk above the threshold). The reply
 * is queued and written like a publish without flags; once only.
 *
 * Returns 0, or:
 *   -EINVAL     @request NULL or not a request (ipcd_msg_is_request()), or
 *               bad payload arguments
 *   -EALREADY   it was replied to already
 *   -ENOTCONN   its client was freed or lost its connection
 *   and the errors of ipcd_client_publish_fds(). The broker's verdict on
 *   the reply (for example -ESRCH: the requester gave up or timed out) is
 *   reported by the next ipcd_client_sync().
 */
int ipcd_msg_reply(ipcd_msg *request, uint32_t type, const void *data, size_t size,
                   const int *fds, size_t n_fds);

/* Whether @m is a request to be answered with ipcd_msg_reply(); false for
 * NULL. */
bool ipcd_msg_is_request(const ipcd_msg *m);

/*
 * Takes a reference to @m. Inside a handler, the first reference copies
 * the message out of the library's receive buffer (so it outlives the
 * handler); pointers returned by accessors before that copy are valid only
 * until the handler returns, so call the accessors again on a kept
 * message. Returns @m, or NULL when @m is NULL or the copy fails for lack
 * of memory (no reference taken then).
 */
ipcd_msg *ipcd_msg_ref(ipcd_msg *m);

/* Drops a reference; the last one frees the message. Returns NULL.
 * NULL-safe. */
ipcd_msg *ipcd_msg_unref(ipcd_msg *m);

/* Accessors. Each accepts NULL and then returns NULL or 0. */

/* The topic, NUL-terminated. Owned by @m. */
const char *ipcd_msg_get_topic(const ipcd_msg *m);

/* The user message type given by the publisher. */
uint32_t ipcd_msg_get_type(const ipcd_msg *m);

/* The payload, owned by @m; *ret_size (if not NULL) receives its length.
 * Never NULL for a valid @m, even when the payload is empty. The payload
 * is not NUL-terminated. A bulk payload (IPCD_MSG_BULK) is a read-only
 * mapping of the sender's sealed memfd: reading it touches the sender's
 * pages directly, writing to it crashes the process (SIGSEGV). The
 * library checked the memfd before mapping it (sealed against writing,
 * shrinking and growing, on tmpfs or hugetlbfs, long enough), so it cannot
 * change or shrink under the reader. It is unmapped when the message is
 * freed. */
const void *ipcd_msg_get_data(const ipcd_msg *m, size_t *ret_size);

/* The message's sequence number on its topic (1, 2, ...): a gap means
 * messages this client did not receive. */
uint64_t ipcd_msg_get_seq(const ipcd_msg *m);

/* The publisher's process, user and group ids, as the kernel reported them
 * to the broker when the publisher connected: they can be trusted. */
pid_t ipcd_msg_get_sender_pid(const ipcd_msg *m);
uid_t ipcd_msg_get_sender_uid(const ipcd_msg *m);
gid_t ipcd_msg_get_sender_gid(const ipcd_msg *m);

/* The id of the subscription whose handler receives @m (for a kept
 * message: the one whose handler kept it). */
uint32_t ipcd_msg_get_subscription(const ipcd_msg *m);

/* IPCD_MSG_* bits. */
unsigned ipcd_msg_get_flags(const ipcd_msg *m);

/*
 * File descriptors. A message owns the fds that came with it (the bulk
 * payload's memfd is not one of them: the library closes it once it is
 * mapped). When the message is freed (after its handler returns, unless
 * it was kept with ipcd_msg_ref(); else at the last ipcd_msg_unref()) the
 * fds the application did not take are closed. When several subscriptions
 * of a client match one message, their handlers get messages that share
 * the same fds: one taken through any of them is taken for all. Messages
 * buffered during a blocking call keep their fds until dispatched. Every
 * received fd is close-on-exec.
 */

/* The number of fds attached to @m (0 for NULL), counting those already
 * taken; the bulk memfd is not counted. */
size_t ipcd_msg_get_n_fds(const ipcd_msg *m);

/* Fd @i (from 0) of @m, in the order the publisher gave them; still owned
 * by @m: do not close it, dup(2) it to keep it. -1 when @m is NULL, @i is
 * out of range or the fd was taken. errno is left alone. */
int ipcd_msg_get_fd(const ipcd_msg *m, size_t i);

/* Takes fd @i of @m: from now on the caller owns it (and must close it);
 * later ipcd_msg_get_fd() and ipcd_msg_take_fd() calls for @i return -1.
 * -1 when @m is NULL, @i is out of range or the fd was taken already. */
int ipcd_msg_take_fd(ipcd_msg *m, size_t i);

#ifdef __cplusplus
}
#endif
