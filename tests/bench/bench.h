/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: what its parts share.
 *
 *   bench-util.c      clocks, statistics, processes, shared memory, futexes,
 *                     cleanup on failure and on SIGINT
 *   bench-servers.c   starts and stops ipcd, redis-server and mosquitto on
 *                     private sockets in the run's temporary directory
 *   bench-ipcd.c      the ipcd client side, through libipcd-client
 *   bench-redis.c     Redis pub/sub through hiredis       (HAVE_BENCH_PEERS)
 *   bench-mosquitto.c MQTT through libmosquitto           (HAVE_BENCH_PEERS)
 *   bench-work.c      the workloads, written once for every system
 *   bench-limit.c     the same workloads with no broker, and memcpy
 *   bench-conns.c     idle connections and the broker's memory
 *   bench-report.c    the results: table, JSON, targets
 *   ipcd-bench.c      options and the order of the run
 *
 * Every workload runs in forked processes; they talk to the parent through
 * an anonymous MAP_SHARED mapping made before the fork (counters, flags,
 * samples) and futexes on words in it, never through the broker under
 * test, so the same harness measures every system.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_REPS 101

/* ---- bench-util.c ---- */

double now_s(void);

/* Prints "ipcd-bench: " and the message. */
void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the message, stops every server and child this run started,
 * removes its temporary files and exits 1. In a child it only prints and
 * _exit()s: the parent cleans up. */
__attribute__((noreturn, format(printf, 1, 2))) void bench_die(const char *fmt, ...);

/* Whether this process is a child of the benchmark (set by bench_fork()). */
extern bool bench_in_child;

/* Verbosity: --verbose prints each repetition's numbers as they come. */
extern int bench_verbose;

/* Writes/reads exactly @len bytes, restarting on EINTR. 0 or -errno
 * (-EPIPE for end of file on reading). */
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len);

/* A zeroed anonymous MAP_SHARED mapping that forked children share; dies
 * when out of memory. */
void *shm_new(size_t size);
void shm_free(void *p, size_t size);

/* Futexes on words of a shm_new() mapping (process-shared, so not
 * FUTEX_PRIVATE). futex_wait() returns when *@addr != @val, on a wake-up,
 * a signal or after @timeout_ms (-1: none). */
void futex_wait(uint32_t *addr, uint32_t val, int timeout_ms);
void futex_wake_all(uint32_t *addr);

/*
 * fork() for the benchmark's own children: the child gets the default
 * SIGINT/SIGTERM handling and dies with the parent (PR_SET_PDEATHSIG), and
 * the parent remembers the pid to kill it on failure. Returns as fork().
 */
pid_t bench_fork(void);

/* Waits for child @pid. Returns 0 if it exited with 0, else -1 after
 * saying what happened to it, named @what. A @timeout_s > 0 kills it
 * (SIGKILL) when it has not ended by then. */
int bench_wait(pid_t pid, const char *what, double timeout_s);

/* Whether child @pid has ended (it stays to be reaped by bench_wait()). */
bool bench_exited(pid_t pid);

/* Kills @pid with @sig and waits for it, SIGKILL after @grace_s. */
void bench_kill(pid_t pid, int sig, double grace_s);

/* Paths removed at the end of the run and on failure, the directory last. */
void cleanup_add_path(const char *path);
void cleanup_set_dir(const char *dir);
/* Installs the SIGINT/SIGTERM/SIGHUP handlers and the atexit() cleanup. */
void cleanup_install(void);
/* Stops what is left and removes the files; for the normal end too. */
void cleanup_run(void);

/* CPU time (user + system) of process @pid in seconds: its CPU-time clock
 * (ns resolution), else utime + stime of /proc/PID/stat (clock ticks). -1
 * when neither can be read. */
double proc_cpu_seconds(pid_t pid);
/* VmRSS of process @pid in bytes, from /proc/PID/status; -1 on failure. */
long long proc_rss_bytes(pid_t pid);

/* Fills @buf with a pseudo-random pattern from @seed (so a wrong byte is
 * seen), and sums 64-bit words of it (the tail bytewise): the check value a
 * receiver that read every byte computes. */
void fill_pattern(void *buf, size_t len, unsigned seed);
uint64_t sum_words(const void *buf, size_t len);

/* Little-endian u64/u32 in a payload, whatever the alignment. */
void put_u64(void *p, uint64_t v);
uint64_t get_u64(const void *p);

int cmp_double(const void *a, const void *b);
/* The value at quantile @q (0..1) of the @n sorted values (nearest rank). */
double quantile_sorted(const double *v, size_t n, double q);
/* Median of @n values (sorts a copy). */
double median_of(const double *v, size_t n);

/* "4 KiB", "1 MiB", "100 B". */
const char *fmt_size(uint64_t v, char *buf, size_t cap);
/* Parses "64", "4K", "16M", "1G" (powers of 1024). 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *ret);

/* ---- systems: bench-ipcd.c, bench-redis.c, bench-mosquitto.c ---- */

typedef struct BenchClient BenchClient;

/* A subscriber's message callback: @data/@size valid during the call. */
typedef void (*BenchMsgFn)(void *userdata, const void *data, size_t size);

/*
 * One message system, seen through its own client library, the way an
 * application would use it. Every function returns 0 (or a count) or a
 * negative errno; last_error() explains the last failure.
 */
typedef struct BenchSystem {
        const char *name;
        /* The largest payload on @topic_len bytes of topic, 0 for none. */
        uint64_t (*max_payload)(size_t topic_len);
        int (*connect)(const char *sock, const char *name, BenchClient **ret);
        void (*close)(BenchClient *c);
        /* Subscribes and blocks until the server has confirmed it. */
        int (*subscribe)(BenchClient *c, const char *topic, BenchMsgFn fn, void *userdata);
        /* Serves requests to @topic, answering each with its own payload
         * (an echo); blocks until the server has confirmed it. */
        int (*serve_echo)(BenchClient *c, const char *topic);
        /* Queues a message; @more: more follow at once, the system may hold
         * this one back until flush() (what it does with the hint is its
         * client library's business). */
        int (*publish)(BenchClient *c, const char *topic, const void *data, size_t size, bool more);
        /* ipcd only (NULL elsewhere): publishes @size bytes of the sealed
         * memfd @memfd without copying them. */
        int (*publish_memfd)(BenchClient *c, const char *topic, int memfd, size_t size);
        /* Blocks until everything queued was written to the socket. */
        int (*flush)(BenchClient *c);
        /* Blocks until the server has handled everything sent so far and
         * reports an error it answered to any of it. */
        int (*sync)(BenchClient *c);
        /* One request to a serve_echo() responder on @topic and its reply,
         * blocking; the reply's bytes go to @reply (room for @size). */
        int (*request)(BenchClient *c, const char *topic, const void *data, size_t size,
                       void *reply);
        /* For poll(): the socket, the events to wait for, and a
         * non-blocking turn that handles what @revents says is ready and
         * calls the callbacks; returns the messages handled. */
        int (*get_fd)(BenchClient *c);
        short (*get_events)(BenchClient *c);
        int (*process)(BenchClient *c, short revents);
        const char *(*last_error)(BenchClient *c);
} BenchSystem;

extern const BenchSystem bench_ipcd;
#if HAVE_BENCH_PEERS
extern const BenchSystem bench_redis;
extern const BenchSystem bench_mosquitto;
#endif

/* How an ipcd publisher batches (bench-ipcd.c): MORE and a flush every
 * --batch messages, or a write per message. */
extern bool bench_ipcd_batched;

/* ---- bench-servers.c ---- */

enum { SYS_IPCD, SYS_REDIS, SYS_MOSQUITTO, _SYS_MAX };

typedef struct BenchServer {
        const BenchSystem *sys;
        int kind;        /* SYS_* */
        pid_t pid;       /* the server process (valgrind's for callgrind) */
        char sock[108];  /* where clients connect */
        char dir[512];   /* the run's temporary directory */
        char tag[32];    /* file names: "ipcd", "ipcd-conns", ... */
} BenchServer;

typedef struct IpcdOptions {
        const char *path;           /* the ipcd binary */
        unsigned max_connections;   /* 0: the default of this benchmark */
        const char *callgrind_out;  /* run under valgrind --tool=callgrind, NULL: no */
} IpcdOptions;

/* Start a server and wait until it answers; 0 or -1 after saying why. */
int server_start_ipcd(BenchServer *s, const char *dir, const char *tag, const IpcdOptions *o);
int server_start_redis(BenchServer *s, const char *dir, const char *bin);
int server_start_mosquitto(BenchServer *s, const char *dir, const char *bin);
/* SIGTERM, wait (SIGKILL after a grace period). Idempotent. */
void server_stop(BenchServer *s);
/* The version line of a server binary ("7.0.15"), or "?" */
void server_version(int kind, const char *bin, char *buf, size_t cap);

/* ---- bench-work.c: the workloads ---- */

typedef struct RrResult {
        double p50, p99, p999; /* seconds */
} RrResult;

/* @n_req round trips of @size bytes (after @warmup more), requester and
 * responder in two processes. 0 or -1 (the reason was printed). */
int work_rr(const BenchServer *srv, uint64_t warmup, uint64_t n_req, size_t size, RrResult *ret);

enum { BULK_NONE, BULK_COPY, BULK_ZERO };

typedef struct StreamSpec {
        const char *label;   /* for messages: "fanout-10" */
        int n_pubs, n_subs;  /* publishers (a process each), subscribers */
        int sub_procs;       /* processes the subscribers are spread over */
        uint64_t count;      /* messages per publisher */
        size_t size;         /* payload bytes, at least 16 */
        uint64_t window;     /* messages a publisher may be ahead of the slowest */
        unsigned batch;      /* messages per flush() when batched */
        bool batched;        /* publish(more) + flush() every batch; else one write each */
        int bulk;            /* BULK_ZERO: ipcd publish_memfd of one sealed memfd (no seq) */
        int stall_ms;        /* no progress that long: failure */
} StreamSpec;

typedef struct StreamResult {
        double seconds;      /* go to the last delivery */
        double deliveries;   /* messages × subscribers received */
        double cpu_s;        /* the server's CPU time over the run */
        uint64_t lost, misordered;
        char error[256];     /* first loss or misorder seen */
} StreamResult;

/* Runs a stream; returns 0 (even with losses: see ret->lost and
 * ret->misordered) or -1 when it could not run (the reason was printed). */
int work_stream(const BenchServer *srv, const StreamSpec *spec, StreamResult *ret);

typedef struct BulkTimes {
        double delivered, read; /* seconds from publish call, medians */
} BulkTimes;

/* End-to-end time of one @size-byte message at a time, @msgs of them,
 * through @mode (BULK_COPY: the system's publish of an application
 * buffer; BULK_ZERO: ipcd's publish_memfd), taking the median. */
int work_bulk_time(const BenchServer *srv, const void *data, size_t size, int mode, int msgs,
                   BulkTimes *ret);

/* ---- bench-limit.c ---- */

int limit_rr(uint64_t warmup, uint64_t n, size_t size, RrResult *ret);
/* Messages/s of @count @size-byte records written @batch to a write(). */
int limit_oneway(uint64_t count, size_t size, unsigned batch, double *ret_rate);
/* Seconds one memcpy() of @size bytes takes (warm, median of a few). */
double limit_memcpy(size_t size);

/* ---- bench-conns.c ---- */

/* The broker's VmRSS growth per connection over @n idle connections that
 * finished their handshake, on a fresh broker. 0 or -1. */
int work_conns(const char *dir, const IpcdOptions *o, unsigned n, double *ret_bytes);

/* ---- bench-report.c ---- */

enum { COL_LIMIT = _SYS_MAX, _COL_MAX };

typedef struct Row Row;

/* The row of @metric in @scenario, made at the end of the table (in the
 * order of first use) if new. @unit as printed; @higher_better decides how
 * targets read it. */
Row *report_row(const char *scenario, const char *metric, const char *unit, bool higher_better);
/* One repetition's value for column @col (SYS_* or COL_LIMIT). */
void report_add(Row *r, int col, double v);
/* Column @col does not apply or cannot be measured, and why. */
void report_na(Row *r, int col, const char *why);
/* A failure (loss, reorder, a workload that could not run): printed at
 * once, listed at the end, and the exit status is 1. */
void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int report_n_errors(void);

typedef struct ReportInfo {
        bool peers;
        char cpu[128], kernel[128];
        long nproc;
        char version[_SYS_MAX][64];
        const char *rerun;
        const char *settings; /* a line saying what ran, as options */
} ReportInfo;

/* The table and the targets, or (@json) the same as one JSON document. */
void report_print(const ReportInfo *info, bool json);
