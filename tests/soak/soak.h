/* SPDX-License-Identifier: MIT */
/*
 * ipcd-soak: what the parts of the soak program share. The parent
 * (ipcd-soak.c) starts a broker and forks one process per client role
 * (soak-pubsub.c, soak-work.c); they meet in one shared anonymous mapping,
 * struct Shared, made before the forks: the run's phase, each role's
 * progress, the counts the checks compare, and the count of integrity
 * errors found. Every message the roles send carries a SoakHdr and a
 * checksum over all its bytes, so that each receiver can check what it got
 * without asking anyone.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ipcd/ipcd-client.h>

/* ---- the pub/sub topics: soak/<policy>/<k>/<leaf> ---- */

/* Overflow policies, in the order of the soak/<policy> topics. */
enum { POL_BLOCK, POL_DROPNEW, POL_DROPOLD, POL_DISC, N_POL };
#define N_K 4
#define N_LEAF 2
#define N_TOPICS (N_POL * N_K * N_LEAF)
#define N_PUBS 4  /* pub/sub publishers P0..P3 */
#define N_FAST 2  /* subscribers that keep up (credit windows) */
#define N_TYPES 3 /* message types 1..3: type = 1 + tseq % 3 */

/* Other topic families. */
#define N_JOB_TOPICS 4 /* jobs/0..3 */
#define N_GROUP_MEMBERS 3
#define JOBS_MAX (1u << 22) /* jobs published at most (the bitmaps' size) */
#define N_CHURN 2           /* churn slots */
#define N_BULK_SUBS 2

/* ---- roles: one forked process each ---- */

typedef enum RoleId {
        R_PUB0,
        R_PUB_LAST = R_PUB0 + N_PUBS - 1,
        R_FAST0,
        R_FAST_LAST = R_FAST0 + N_FAST - 1,
        R_SLOW0, /* one per policy, in POL_* order */
        R_SLOW_LAST = R_SLOW0 + N_POL - 1,
        R_JOBS_PUB,
        R_MEMBER0,
        R_MEMBER_LAST = R_MEMBER0 + N_GROUP_MEMBERS - 1,
        R_ECHO0,
        R_ECHO1,
        R_SLOWSVC,
        R_REQ_SYNC,
        R_REQ_ASYNC,
        R_FDS_PUB,
        R_FDS_SINK,
        R_BULK_PUB,
        R_BULK_SUB0,
        R_BULK_SUB_LAST = R_BULK_SUB0 + N_BULK_SUBS - 1,
        R_CHURN0,
        R_CHURN_LAST = R_CHURN0 + N_CHURN - 1,
        N_ROLES,
} RoleId;

/* How a role takes part in the end of a run. */
typedef enum RoleKind {
        KIND_PRODUCER, /* stops at PH_STOP, then sets done */
        KIND_CONSUMER, /* at PH_DRAIN receives what is left, checks, sets drained */
        KIND_CHURN,    /* killed and restarted during the run; exits at PH_STOP */
} RoleKind;

/* The run's phases, in order; the parent moves them on. */
enum {
        PH_SETUP, /* roles connect and subscribe, then set ready */
        PH_RUN,   /* traffic */
        PH_STOP,  /* producers finish (every publish routed: sync) and set done */
        PH_DRAIN, /* consumers take what is queued, count, set drained */
        PH_CHECK, /* the parent compares with the broker's counters */
        PH_EXIT,  /* everyone disconnects and exits */
};

/* ---- message payloads ---- */

#define SOAK_MAGIC 0x4b414f53u /* "SOAK" */

enum {
        MSG_PUBSUB = 1,
        MSG_JOB,
        MSG_REQUEST,
        MSG_FDS,
        MSG_BULK,
        MSG_CHURN,
        MSG_RETAINED,
};

/* The start of every payload; all fields in host order (one machine). */
typedef struct SoakHdr {
        uint32_t magic;
        uint32_t kind;  /* MSG_* */
        uint32_t src;   /* the sending role (RoleId), or a churn slot */
        uint32_t topic; /* index of the topic in its family */
        uint64_t gseq;  /* the sender's own counter, from 1: order, duplicates */
        uint64_t tseq;  /* the sender's counter on this topic, from 1: loss */
        uint64_t len;   /* the payload's length, this header included */
        uint64_t extra; /* per kind: token, flags */
        uint64_t sum;   /* checksum of the payload with this field 0 */
} SoakHdr;

#define SOAK_HDR_SIZE sizeof(SoakHdr)

/* Fills @buf (@len >= SOAK_HDR_SIZE bytes) with @h (len and sum are set
 * here), @prefix_len bytes of @prefix right after the header, and bytes
 * derived from @seed for the rest, then stores the checksum. */
void soak_payload_fill(uint8_t *buf, size_t len, SoakHdr h, const void *prefix, size_t prefix_len,
                       uint64_t seed);
/* Checks @data (@size bytes): magic, kind @kind, length and checksum.
 * Returns true and the header in @ret; false and a reason in @why. */
bool soak_payload_check(const void *data, size_t size, uint32_t kind, SoakHdr *ret, char *why,
                        size_t why_len);
/* The checksum of @n bytes (a multiple of 8 except for the last call),
 * continuing from @h (start with SOAK_SUM_INIT). */
#define SOAK_SUM_INIT 0x243f6a8885a308d3ull
uint64_t soak_sum(uint64_t h, const void *p, size_t n);

/* ---- topics ---- */

/* The name of pub/sub topic @t, in a static buffer per index. */
const char *soak_topic_name(unsigned t);
/* Index of a pub/sub topic name, or -1. */
int soak_topic_index(const char *name);
unsigned soak_topic_policy(unsigned t);
/* MQTT matching of topic @name against @filter ('+', '#', the '$' rule). */
bool soak_filter_matches(const char *filter, const char *name);
/* How many of the sequence numbers 1..@n have a type in @mask (bit T for
 * type T), with type = 1 + seq % 3. */
uint64_t soak_count_types(uint64_t n, unsigned mask);
static inline uint32_t soak_type_of(uint64_t tseq) {
        return (uint32_t)(1 + tseq % N_TYPES);
}
#define TYPES_ALL 0xeu /* types 1, 2 and 3 */

/* ---- shared state ---- */

typedef _Atomic uint64_t au64;

typedef struct Shared {
        _Atomic int phase;
        _Atomic int abort; /* set by a role that cannot go on: ends the run */
        au64 integrity;    /* integrity errors found by the roles */
        au64 failures;     /* other errors of the roles (setup, lost connection) */
        _Atomic int ready[N_ROLES];
        _Atomic int done[N_ROLES];
        _Atomic int drained[N_ROLES];
        _Atomic uint32_t client_id[N_ROLES]; /* the role's current connection */
        _Atomic pid_t pid[N_ROLES];

        /* pub/sub */
        au64 pub_count[N_PUBS][N_TOPICS]; /* messages published per topic (last tseq) */
        au64 pub_gseq[N_PUBS];
        au64 fast_seen[N_FAST][N_PUBS]; /* the last gseq a fast subscriber got */
        au64 delivered;                 /* deliveries checked, every subscriber */
        au64 pubsub_published;
        au64 acked; /* publishes with IPCD_PUBLISH_ACK */
        au64 syncs;
        uint64_t slow_missing[N_POL][N_TOPICS]; /* written before drained */
        uint64_t slow_missing_total[N_POL];
        uint64_t slow_received[N_POL];
        au64 disconnects; /* slow-consumer disconnections of the disconnect subscriber */
        au64 checked;     /* messages (deliveries, requests, replies) checked by a receiver */

        /* queue groups */
        au64 jobs_published;
        au64 jobs_refused; /* publishes of a type the topic rule forbids: refused as it should */
        au64 job_count[N_GROUP_MEMBERS][2]; /* per member: workers, audit */
        au64 group_total[2];
        au64 witness;
        _Atomic uint64_t group_bits[2][JOBS_MAX / 64];

        /* request/reply */
        au64 req_ok, req_timeout, req_late_replied, req_no_responders, req_sent;
        au64 replies_received;
        au64 served[3];     /* per responder */
        au64 late_esrch;    /* late replies the broker refused */
        au64 late_accepted; /* replies meant to be late that still made it */
        au64 req_fds;

        /* fds and bulk */
        au64 fds_published, fds_received;
        au64 fds_passed[3]; /* pipes, eventfds, memfds */
        au64 bulk_published, bulk_bytes_published;
        au64 bulk_received[N_BULK_SUBS], bulk_bytes_received;
        au64 inline_received;

        /* churn */
        au64 churn_cycles, churn_msgs, churn_retained;
        au64 churn_kills;
} Shared;

/* ---- the run's settings, the same in every process ---- */

typedef struct Options {
        const char *ipcd;
        const char *socket;
        unsigned seconds;
        uint64_t seed;
        unsigned sample_interval;
        unsigned warmup;
        double rss_growth;
        unsigned rss_slack_kib;
        unsigned fd_slack;
        unsigned rate;      /* pub/sub messages per second per publisher */
        unsigned bulk_rate; /* bulk messages per second */
        bool json;
        bool no_rss_check;
        bool keep;
        bool verbose;
} Options;

extern Shared *sh;
extern Options opt;
extern const char *role_name;
extern RoleId role_id;

/* ---- helpers for the roles ---- */

/* Monotonic milliseconds. */
int64_t soak_now_ms(void);
/* A small fast generator (xorshift64*); the state must not be 0. */
uint64_t soak_rand(uint64_t *state);
/* Uniform in [lo, hi]. */
uint64_t soak_rand_range(uint64_t *state, uint64_t lo, uint64_t hi);
/* An integrity error: prints it (the first ones of each process) and
 * counts it. */
void soak_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A failure that ends this role: prints, counts, asks the parent to stop
 * the run, exits 2. */
_Noreturn void soak_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void soak_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int soak_phase(void);
/* Connects (with retries while the broker is busy), sets a long timeout,
 * records the client id for the role. Dies on failure. */
ipcd_client *soak_connect(const char *name);
/* Processes @c for about @ms milliseconds (or once with 0); dies when the
 * connection is lost. Returns the messages dispatched. */
int soak_pump(ipcd_client *c, int ms);
/* Waits until the phase is at least @phase, processing @c meanwhile. */
void soak_wait_phase(ipcd_client *c, int phase);
/* The number of open fds of this process. */
int soak_count_fds(void);
/* Paces a sender at @rate per second: returns once the @n-th message may
 * go, processing @c meanwhile. */
void soak_pace(ipcd_client *c, int64_t start_ms, uint64_t n, unsigned rate);

/* Role entry points (each returns the process's exit status). */
int role_publisher(unsigned p);
int role_fast_sub(unsigned f);
int role_slow_sub(unsigned pol);
int role_jobs_pub(void);
int role_member(unsigned m);
int role_responder(unsigned which);
int role_requester(bool async);
int role_fds_pub(void);
int role_fds_sink(void);
int role_bulk_pub(void);
int role_bulk_sub(unsigned i);
int role_churn(unsigned slot, unsigned generation);
