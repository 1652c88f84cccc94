/* SPDX-License-Identifier: MIT */
/*
 * A whole broker in this process, and fake clients ("peers") talking to it
 * over socket pairs, for the frame and broker harnesses. The broker is the
 * daemon's own code (daemon/libipcd-daemon.la without main.c): broker_new()
 * with a configuration of the harness's choice, connections handed to
 * broker_accept() with chosen credentials, and its libevent loop pumped
 * with EVLOOP_NONBLOCK.
 *
 * Everything a peer receives is checked the way a client library would,
 * and more: every frame passes the header checks (wire_header_decode), is
 * a kind the broker may send, with the meta its kind has, its fds arrived
 * no later than its first byte, nothing follows a fatal ERROR, JSON is
 * JSON, and (for peers that only sent well-formed frames, "tracked") every
 * delivery comes through a subscription that was live at the time and
 * whose filter and types admit it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker.h"

/* Kinds of fds a harness can attach to a frame. */
typedef enum FuzzFdKind {
        FUZZ_FD_MEMFD_SEALED, /* 64 bytes, sealed: a valid bulk payload up to 64 bytes */
        FUZZ_FD_DEVNULL,
        FUZZ_FD_PIPE,
        FUZZ_FD_MEMFD_UNSEALED,
        _FUZZ_FD_MAX,
} FuzzFdKind;

/* Size of the sealed memfd. */
#define FUZZ_MEMFD_SIZE 64

typedef struct FuzzBrokerOptions {
        bool rules;               /* the configuration with access and topic rules */
        int overflow;             /* an OverflowPolicy, or -1 for the default */
        size_t queue_bytes;       /* per-connection output queue; 0 for the default */
        int max_fds;              /* fds per message; -1 for the default */
} FuzzBrokerOptions;

/* The uid of the configuration's rules (see fuzz-env.c): */
#define FUZZ_UID_PUBLISHER 1001 /* publishes on t/#, reads t/+/a and $SYS/#, requests svc/# */
#define FUZZ_UID_ADMIN 1002     /* reads everything, publishes svc/#, admin */
#define FUZZ_UID_GROUPED 1003   /* primary gid 2000: reads t/ro/#, requests anything */
#define FUZZ_UID_NOBODY 65534   /* only what "*" gets: pub/# */

/* Sets up the configuration files and fd templates; call once. */
void fuzz_env_init(void);

/* Writes the rules configuration as variant @variant (mod 3): 0 the one
 * brokers start with, 1 a tighter one, 2 one that does not load. A reload
 * (ADMIN reload) picks it up. */
void fuzz_env_config(unsigned variant);

/* A new broker (aborts when it cannot be made). Rewrites the rules
 * configuration as variant 0 first. */
Broker *fuzz_broker_new(const FuzzBrokerOptions *o);

/* Checks the broker's bookkeeping, closes every connection, checks that
 * nothing is left over, frees it. */
void fuzz_broker_free(Broker *b);

/* A subscription a tracked peer made, as the peer knows it. */
typedef struct FuzzSub {
        bool live;              /* between the ACKs of SUBSCRIBE and UNSUBSCRIBE */
        bool responder;
        char group[4];          /* its queue group, "" for none */
        char filter[64];
        size_t filter_len;
        uint32_t types[4];
        size_t n_types;
} FuzzSub;

/* What a tracked peer has asked for and not yet been answered. */
typedef struct FuzzAsk {
        uint64_t corr;
        uint8_t kind;
        uint32_t sub_id;
        FuzzSub sub;    /* SUBSCRIBE: what becomes live with the ACK */
        bool want_ack;  /* PUBLISH with F_ACK, SUBSCRIBE, UNSUBSCRIBE */
} FuzzAsk;

#define FUZZ_PEER_SUBS 8  /* sub ids 1..8 */
#define FUZZ_PEER_SEQS 32

/* The last sequence number a peer received on a topic through one way of
 * delivery (its ungrouped subscriptions, or one queue group). */
typedef struct FuzzSeq {
        char key[72];   /* topic, '\n', group */
        uint64_t seq;
} FuzzSeq;
#define FUZZ_PEER_ASKS 128
#define FUZZ_PEER_REQS 4

typedef struct FuzzTx FuzzTx;

typedef struct FuzzPeer {
        int fd;                 /* our end; -1 when closed */
        uid_t uid;
        bool used;
        bool stalled;           /* not read from (its broker queue fills up) */
        bool was_stalled;
        bool tracked;           /* only well-formed frames sent: check deliveries */
        bool lax;               /* ... but maybe one the broker must refuse: a name too
                                 * long, a wildcard in a topic, more fds or bytes than
                                 * a limit, a second HELLO, a stream cut short */
        bool hello_sent;
        bool eof;
        bool fatal;             /* a fatal ERROR or GOODBYE arrived: nothing may follow */
        bool welcomed;
        bool admin_pending;
        uint32_t client_id;
        uint8_t *rx;
        size_t rx_len, rx_cap;
        size_t fds_queued;      /* received, not yet claimed by a frame */
        uint64_t frames;
        FuzzTx *tx_head, *tx_tail; /* what the socket did not take yet */
        FuzzSub subs[FUZZ_PEER_SUBS + 1];
        FuzzAsk asks[FUZZ_PEER_ASKS];
        size_t n_asks;
        uint64_t next_corr;
        uint64_t req_ids[FUZZ_PEER_REQS]; /* REQUESTs received (their corr), newest last */
        size_t n_req_ids;
        uint32_t retained_sub;  /* retained MESSAGEs may come for it now */
        FuzzSeq seqs[FUZZ_PEER_SEQS];
        size_t n_seqs;
} FuzzPeer;

/* Connects @p (closed) to @b as @uid (gid: 2000 for FUZZ_UID_GROUPED,
 * else the uid), with a small socket buffer when @small_buf. */
void fuzz_peer_connect(FuzzPeer *p, Broker *b, uid_t uid, bool small_buf);
/* Closes our end, forgets everything. */
void fuzz_peer_close(FuzzPeer *p);
/* Sends @len bytes with @n_fds fds of @kinds attached to the first byte;
 * what the socket does not take now waits for fuzz_pump(). */
void fuzz_peer_send(FuzzPeer *p, const uint8_t *buf, size_t len, const FuzzFdKind *kinds,
                    size_t n_fds);
/* A correlation id for a frame the harness builds, and what to expect. */
uint64_t fuzz_peer_ask(FuzzPeer *p, const FuzzAsk *a);
/* Reads whatever the broker sent and checks it. Returns the bytes read. */
size_t fuzz_peer_drain(FuzzPeer *p);

/* Runs the loop (EVLOOP_NONBLOCK) and drains the peers that are not
 * stalled until nothing moves any more (at most @max_rounds rounds). */
void fuzz_pump(Broker *b, FuzzPeer *peers, size_t n_peers, unsigned max_rounds);

/* Makes one of the broker's timers due now, deterministically: number
 * @which (modulo their number) of the pending requests' deadlines, the
 * closing connections' lingers, the handshakes' deadlines and the
 * statistics timer. */
void fuzz_fire_timer(Broker *b, unsigned which);
