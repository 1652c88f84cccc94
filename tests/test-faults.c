/* SPDX-License-Identifier: MIT */
/*
 * Fault injection against a real ipcd (issue #7): clients killed at random
 * points, connection churn, many clients and silent ones, a broker out of
 * file descriptors, and consumers that never read under every overflow
 * policy. After each test the broker's fds, memory and counters are back
 * where they started, and the clients that were there all along still work.
 *
 * The random choices come from a fixed seed (FAULTS_SEED=n overrides it,
 * and failures name it with the round), so a run can be replayed; only the
 * exact moment of each kill is left to the scheduler.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "memfd.h"
#include "util.h"

static TestBroker tb;

/* The new-style cr_assert takes no expression that starts with '(' or '!'. */
static bool is_true(bool b) {
        return b;
}

/* Criterion ignores failures in .fini: the checks run at the end of each
 * test body; this only cleans up after a test that failed. */
static void cleanup(void) {
        tb_kill(&tb);
}

static long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Memory checkers make the broker slow and its RSS meaningless. */
static bool slow_broker(void) {
        return tb.valgrind || TB_SANITIZED;
}

/* Will the next broker run under valgrind (tb.valgrind, before it starts)? */
static bool under_valgrind(void) {
        const char *v = getenv("IPCD_VALGRIND");
        return v && strcmp(v, "1") == 0;
}

/* ---- Reproducible randomness (xorshift64*) ---- */

#define FAULTS_DEFAULT_SEED 0x49504344u /* "IPCD" */

static uint64_t rng_state;
static unsigned long long rng_seed_used;

static void rng_seed(uint64_t salt) {
        const char *s = getenv("FAULTS_SEED");

        rng_seed_used = s ? strtoull(s, NULL, 0) : FAULTS_DEFAULT_SEED;
        rng_state = (rng_seed_used ^ (salt * 0x9e3779b97f4a7c15ull)) | 1;
}

static uint32_t rng_next(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t rng_below(uint32_t n) {
        return rng_next() % n;
}

/* ---- Small protocol helpers ---- */

/* Reads the next MESSAGE on @fd and checks its topic. */
static void expect_topic(int fd, const char *topic) {
        RawFrame f;
        raw_expect(fd, WIRE_MESSAGE, &f);
        TB_CHECK(strcmp(f.topic, topic) == 0, "got a message on %s, expected %s", f.topic, topic);
        raw_frame_free(&f);
}

/* A round trip between two clients that were connected all along. */
static void round_trip(int pub, int sub, const char *topic) {
        raw_publish(pub, topic, 1, "still here", 10);
        expect_topic(sub, topic);
}

/* A fresh pair of clients can exchange a message. */
static void assert_healthy(void) {
        int s = raw_client(&tb, "probe-sub", NULL), p = raw_client(&tb, "probe-pub", NULL);
        raw_subscribe(s, 1, "health/check", NULL, 0);
        round_trip(p, s, "health/check");
        close(s);
        close(p);
}

static void subscribe_responder(int fd, uint32_t id, const char *filter) {
        uint8_t meta[WIRE_META_SUBSCRIBE];
        RawFrame f;

        wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = id, .flags = WIRE_SUB_F_RESPONDER });
        raw_send(fd, WIRE_SUBSCRIBE, 0, 0, 1000 + id, meta, sizeof(meta), filter, NULL, 0);
        raw_expect(fd, WIRE_ACK, &f);
        raw_frame_free(&f);
}

/* Encodes a PUBLISH, REQUEST or REPLY that owns @n_fds fds into @buf;
 * returns its size. A bulk one (@bulk_size > 0) names its memfd first. */
static size_t encode_with_fds(uint8_t *buf, size_t cap, uint8_t kind, uint64_t corr, const char *topic,
                              const void *payload, size_t len, uint64_t bulk_size, size_t n_fds) {
        uint8_t meta[16] = { 0 };
        size_t meta_len = 0, n;

        switch (kind) {
        case WIRE_PUBLISH:
                meta_len = bulk_size ? 8 : 0;
                le64_write(meta, bulk_size);
                break;
        case WIRE_REQUEST:
                meta_len = WIRE_META_REQUEST;
                le32_write(meta, 60000); /* never the deadline that answers it here */
                le64_write(meta + 8, bulk_size);
                break;
        default:
                meta_len = WIRE_META_REPLY;
                le64_write(meta, bulk_size);
                break;
        }
        n = wire_frame_encode(buf, cap, kind, bulk_size ? WIRE_F_BULK : 0, 1, corr, (uint8_t)n_fds,
                              meta, meta_len, topic, topic ? strlen(topic) : 0, payload,
                              bulk_size ? 0 : len);
        TB_CHECK(n > 0);
        return n;
}

/* Sends a frame with fds: a pipe's two ends, or a sealed memfd as a bulk
 * payload, as @bulk says. The fds are ours to close afterwards. */
static void send_with_fds(int fd, uint8_t kind, uint64_t corr, const char *topic, bool bulk) {
        static const char data[] = "bulk payload for a memfd";
        uint8_t frame[256];
        int fds[2];
        size_t n;

        if (bulk) {
                fds[0] = memfd_new_sealed("fault", data, sizeof(data));
                TB_CHECK(fds[0] >= 0, "memfd: %s", strerror(-fds[0]));
                n = encode_with_fds(frame, sizeof(frame), kind, corr, topic, NULL, 0, sizeof(data), 1);
                raw_send_fds(fd, frame, n, fds, 1);
                close(fds[0]);
                return;
        }
        TB_CHECK(pipe2(fds, O_CLOEXEC) == 0);
        n = encode_with_fds(frame, sizeof(frame), kind, corr, topic, "pipe", 4, 0, 2);
        raw_send_fds(fd, frame, n, fds, 2);
        close(fds[0]);
        close(fds[1]);
}

/* The broker's status, asked on @ctl, and the numbers tests look at. */
typedef struct Status {
        long long clients, subscriptions, queued_bytes, queued_fds, fds_held, pending, drops;
} Status;

static Status status_of(int ctl) {
        char *json = raw_status_json(ctl);
        Status s = {
                .clients = tb_json_number(json, NULL, "clients"),
                .subscriptions = tb_json_number(json, NULL, "subscriptions"),
                .queued_bytes = tb_json_number(json, NULL, "queued_bytes"),
                .queued_fds = tb_json_number(json, NULL, "queued_fds"),
                .fds_held = tb_json_number(json, NULL, "fds_held"),
                .pending = tb_json_number(json, NULL, "requests_pending"),
                .drops = tb_json_number(json, NULL, "drops"),
        };
        free(json);
        return s;
}

/* Waits (asking on @ctl) until the broker holds nothing for anyone: no
 * queued bytes or fds, no fds in bodies, no pending requests, @clients
 * clients and @subs subscriptions. Says what is left when it times out. */
static void wait_settled(int ctl, long long clients, long long subs, const char *what) {
        long deadline = now_ms() + (tb.valgrind ? 30000 : 10000);
        Status s;

        for (;;) {
                s = status_of(ctl);
                if (s.clients == clients && s.subscriptions == subs && s.queued_bytes == 0 &&
                    s.queued_fds == 0 && s.fds_held == 0 && s.pending == 0)
                        return;
                if (now_ms() > deadline)
                        break;
                sleep_ms(5);
        }
        TB_CHECK(false,
                 "%s (seed %llu): the broker did not settle: clients %lld (want %lld), "
                 "subscriptions %lld (want %lld), queued_bytes %lld, queued_fds %lld, fds_held %lld, "
                 "requests_pending %lld",
                 what, rng_seed_used, s.clients, clients, s.subscriptions, subs, s.queued_bytes,
                 s.queued_fds, s.fds_held, s.pending);
}

/* ---- Victims: forked clients the test kills ---- */

typedef struct Victim {
        pid_t pid;
        int ready; /* read end: one byte once the victim is where it wanted to be */
} Victim;

typedef void (*VictimFn)(int ready, uint32_t r);

static void victim_ready(int ready) {
        TB_CHECK(write(ready, "r", 1) == 1);
}

/* Forks a client that runs @fn(ready pipe, @r) and then waits to be killed. */
static Victim victim_start(VictimFn fn, uint32_t r) {
        int p[2];
        Victim v;

        TB_CHECK(pipe2(p, O_CLOEXEC) == 0);
        v.pid = fork();
        TB_CHECK(v.pid >= 0);
        if (v.pid == 0) {
                harness_child_begin();
                close(p[0]);
                fn(p[1], r);
                for (;;)
                        pause();
        }
        close(p[1]);
        v.ready = p[0];
        return v;
}

/* Waits until the victim says it is ready. */
static void victim_wait(const Victim *v, int round) {
        struct pollfd pf = { .fd = v->ready, .events = POLLIN };
        char c;

        TB_CHECK(poll(&pf, 1, 20000) == 1, "round %d (seed %llu): a victim never got ready", round,
                 rng_seed_used);
        TB_CHECK(read(v->ready, &c, 1) == 1, "round %d (seed %llu): a victim died before it was ready",
                 round, rng_seed_used);
}

/* SIGKILL, and makes sure the victim had not failed a check on its own. */
static void victim_kill(Victim *v, int round) {
        int status;

        if (v->pid <= 0)
                return;
        kill(v->pid, SIGKILL);
        TB_CHECK(waitpid(v->pid, &status, 0) == v->pid);
        TB_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                 "round %d (seed %llu): a victim exited with %d before it was killed (its error is above)",
                 round, rng_seed_used, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        close(v->ready);
        v->pid = 0;
}

static uint8_t big_payload[256 * 1024];

/* A frame cut short: part of the HELLO, or after it part of a PUBLISH of
 * up to 256 KiB. */
static void victim_mid_frame(int ready, uint32_t r) {
        static uint8_t frame[WIRE_HEADER_SIZE + 64 + sizeof(big_payload)];
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        size_t n, cut;
        int fd;

        if (r % 4 == 0) {
                fd = raw_connect(&tb);
                n = wire_frame_encode(frame, sizeof(frame), WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta),
                                      NULL, 0, "victim", 6);
        } else {
                fd = raw_client(&tb, "victim", NULL);
                n = wire_frame_encode(frame, sizeof(frame), WIRE_PUBLISH, 0, 1, 0, 0, NULL, 0,
                                      "kill/frame", 10, big_payload, 1 + (r >> 4) % sizeof(big_payload));
        }
        TB_CHECK(n > 0);
        cut = 1 + (r >> 2) % (n - 1);
        raw_write(fd, frame, cut);
        victim_ready(ready);
}

/* A subscriber that never reads. */
static void victim_slow_sub(int ready, uint32_t r) {
        int fd = raw_client(&tb, "slow", NULL);

        raw_subscribe(fd, 1, (r & 1) ? "kill/full" : "kill/#", NULL, 0);
        victim_ready(ready);
}

/* A publisher of fds: fills the slow subscriber's socket, queues frames
 * with pipes and memfds behind it, and leaves a frame whose fds have
 * arrived but whose bytes have not all. */
static void victim_fd_publisher(int ready, uint32_t r) {
        uint8_t frame[256];
        size_t n, cut;
        int fd = raw_client(&tb, "fd-pub", NULL), i, fds[2];


        /* Until the broker queues for the subscriber (its socket is full). */
        for (i = 0; i < 64 && raw_status_number(fd, "queued_bytes") <= 0; i++) {
                int k;
                for (k = 0; k < 4; k++)
                        raw_publish(fd, "kill/full", 1, big_payload, 8192);
        }
        for (i = 0; i < 6; i++)
                send_with_fds(fd, WIRE_PUBLISH, 0, "kill/full", (r >> i) & 1);
        raw_sync(fd);
        TB_CHECK(pipe2(fds, O_CLOEXEC) == 0);
        n = encode_with_fds(frame, sizeof(frame), WIRE_PUBLISH, 0, "kill/full", "cut", 3, 0, 2);
        cut = 1 + (r >> 8) % (n - 1);
        raw_send_fds(fd, frame, cut, fds, 2);
        close(fds[0]);
        close(fds[1]);
        victim_ready(ready);
}

/* A requester with requests at the parent's responder, some carrying fds. */
static void victim_requester(int ready, uint32_t r) {
        int fd = raw_client(&tb, "requester", NULL);
        uint8_t frame[WIRE_HEADER_SIZE + 64 + 4096];
        unsigned i, k = 1 + r % 4;

        for (i = 0; i < k; i++) {
                if ((r >> (4 + i)) & 1)
                        send_with_fds(fd, WIRE_REQUEST, 100 + i, "svc/parent", (r >> (8 + i)) & 1);
                else {
                        size_t n = encode_with_fds(frame, sizeof(frame), WIRE_REQUEST, 100 + i,
                                                   "svc/parent", big_payload, 1 + (r >> 12) % 4096,
                                                   0, 0);
                        raw_write(fd, frame, n);
                }
        }
        raw_sync(fd);
        victim_ready(ready);
}

/* A responder that takes requests and never answers; some times it leaves
 * half a REPLY behind. */
static void victim_responder(int ready, uint32_t r) {
        int fd = raw_client(&tb, "responder", NULL);
        uint8_t frame[WIRE_HEADER_SIZE + 64 + 4096];

        subscribe_responder(fd, 1, "svc/victim");
        victim_ready(ready);
        for (;;) {
                RawFrame f;
                if (raw_read(fd, &f, 60000) != 1)
                        return;
                if ((r & 1) && f.h.kind == WIRE_REQUEST) {
                        size_t n = encode_with_fds(frame, sizeof(frame), WIRE_REPLY, f.h.corr, NULL,
                                                   big_payload, 2048, 0, 0);
                        raw_write(fd, frame, 1 + (r >> 1) % (n - 1));
                        raw_frame_free(&f);
                        return; /* and read no more */
                }
                raw_frame_free(&f);
        }
}

/* ---- 1. Clients killed at random points ---- */

/* The clients that stay connected through all the kills. */
typedef struct Steady {
        int ctl;   /* asks for the status */
        int sub;   /* subscribed to "steady" */
        int pub;   /* publishes on "steady" */
        int flood; /* fills the queues of slow victims, with fds too */
        int resp;  /* responder on "svc/parent" */
        int req;   /* sends requests to victims */
} Steady;

#define STEADY_CLIENTS 6
#define STEADY_SUBS 1 /* responders are not counted in "subscriptions" */

enum {
        KILL_MID_FRAME,
        KILL_SLOW_SUBSCRIBER,
        KILL_FD_PUBLISHER,
        KILL_REQUESTER,
        KILL_RESPONDER,
        _KILL_MAX,
};

static const char *const kill_names[_KILL_MAX] = {
        [KILL_MID_FRAME] = "mid-frame",
        [KILL_SLOW_SUBSCRIBER] = "slow subscriber with fds queued",
        [KILL_FD_PUBLISHER] = "publisher of fds (and its slow subscriber)",
        [KILL_REQUESTER] = "requester with requests at a responder",
        [KILL_RESPONDER] = "responder holding requests",
};

/* Publishes enough on kill/full to fill a slow subscriber's socket and its
 * queue, with fds in between; the victim dies after batch @kill_at (when it
 * is not -1). */
static void flood_slow(const Steady *s, Victim *v, int kill_at, int round) {
        int b, i;

        for (b = 0; b < 4; b++) {
                if (b == kill_at)
                        victim_kill(v, round);
                for (i = 0; i < 24; i++)
                        raw_publish(s->flood, "kill/full", 1, big_payload, 4096);
                send_with_fds(s->flood, WIRE_PUBLISH, 0, "kill/full", b & 1);
                send_with_fds(s->flood, WIRE_PUBLISH, 0, "kill/full", !(b & 1));
        }
        raw_sync(s->flood);
}

/* One round: one scenario, a victim (two for the fd publisher) and its
 * kill, at a moment chosen for it (@wait: once it is where it wanted to
 * be, else after a random delay). Returns true when fds were seen held
 * for a victim at the moment of a kill. */
static bool kill_round(const Steady *s, int round, int scenario, bool wait) {
        uint32_t r = rng_next();
        long delay = rng_below(12);
        bool held = false;
        Victim v, w;

        switch (scenario) {
        case KILL_MID_FRAME:
                v = victim_start(victim_mid_frame, r);
                if (wait)
                        victim_wait(&v, round);
                sleep_ms(delay);
                victim_kill(&v, round);
                break;

        case KILL_SLOW_SUBSCRIBER:
                v = victim_start(victim_slow_sub, r);
                if (wait) {
                        victim_wait(&v, round);
                        flood_slow(s, &v, -1, round);
                        held = status_of(s->ctl).fds_held > 0;
                        victim_kill(&v, round);
                } else {
                        sleep_ms(delay);
                        flood_slow(s, &v, (int)rng_below(5), round);
                        victim_kill(&v, round);
                }
                break;

        case KILL_FD_PUBLISHER:
                v = victim_start(victim_slow_sub, r | 1);
                victim_wait(&v, round);
                w = victim_start(victim_fd_publisher, r);
                if (wait) {
                        victim_wait(&w, round);
                        held = status_of(s->ctl).fds_held > 0;
                } else
                        sleep_ms(delay);
                /* Either may go first. */
                if (r & 2) {
                        victim_kill(&v, round);
                        sleep_ms(rng_below(3));
                        victim_kill(&w, round);
                } else {
                        victim_kill(&w, round);
                        sleep_ms(rng_below(3));
                        victim_kill(&v, round);
                }
                break;

        case KILL_REQUESTER: {
                uint64_t corrs[8];
                unsigned n = 0, answered, i;
                RawFrame f;

                v = victim_start(victim_requester, r);
                if (wait) {
                        /* Every request reached the responder; some get
                         * their reply while the requester lives. */
                        unsigned k = 1 + r % 4;
                        victim_wait(&v, round);
                        for (i = 0; i < k; i++) {
                                raw_expect(s->resp, WIRE_REQUEST, &f);
                                corrs[n++] = f.h.corr;
                                held = held || f.h.n_fds > 0;
                                raw_frame_free(&f);
                        }
                        answered = rng_below(n + 1);
                        for (i = 0; i < answered; i++)
                                raw_send(s->resp, WIRE_REPLY, 0, 1, corrs[i], (uint8_t[8]){ 0 }, 8, NULL,
                                         "early", 5);
                        raw_sync(s->resp);
                        sleep_ms(delay);
                        victim_kill(&v, round);
                } else {
                        sleep_ms(delay);
                        victim_kill(&v, round);
                        answered = 0;
                }
                /* Once the broker has let the requester go, what it had
                 * sent is at the responder; a reply now has nowhere to go. */
                raw_wait_clients(s->ctl, STEADY_CLIENTS);
                while (n < ARRAY_SIZE(corrs) && raw_read(s->resp, &f, 20) == 1) {
                        TB_CHECK(f.h.kind == WIRE_REQUEST, "round %d: the responder got %s", round,
                                 wire_kind_name(f.h.kind));
                        corrs[n++] = f.h.corr;
                        raw_frame_free(&f);
                }
                for (i = answered; i < n; i++) {
                        raw_send(s->resp, WIRE_REPLY, 0, 1, corrs[i], (uint8_t[8]){ 0 }, 8, NULL, "late",
                                 4);
                        raw_expect_error(s->resp, WIRE_E_NO_SUCH_REQUEST, false);
                }
                break;
        }

        case KILL_RESPONDER: {
                unsigned k = 1 + r % 6, i, got[8] = { 0 };
                uint8_t frame[256];
                long deadline;

                v = victim_start(victim_responder, r);
                victim_wait(&v, round);
                for (i = 0; i < k; i++) {
                        if ((r >> (8 + i)) & 1)
                                send_with_fds(s->req, WIRE_REQUEST, 1 + i, "svc/victim", (r >> 16) & 1);
                        else {
                                size_t n = encode_with_fds(frame, sizeof(frame), WIRE_REQUEST, 1 + i,
                                                           "svc/victim", "q", 1, 0, 0);
                                raw_write(s->req, frame, n);
                        }
                }
                if (wait) {
                        deadline = now_ms() + 10000;
                        while (status_of(s->ctl).pending != (long long)k) {
                                TB_CHECK(now_ms() < deadline,
                                         "round %d: the requests never reached the responder", round);
                                sleep_ms(2);
                        }
                        held = status_of(s->ctl).fds_held > 0;
                }
                sleep_ms(delay);
                victim_kill(&v, round);
                /* Every request is answered once: the responder went away
                 * (or was gone before the broker routed it). */
                for (i = 0; i < k; i++) {
                        RawFrame f;
                        uint32_t code;
                        raw_expect(s->req, WIRE_ERROR, &f);
                        code = le32_read(f.meta);
                        TB_CHECK(f.h.corr >= 1 && f.h.corr <= k, "round %d: an answer to corr %llu",
                                 round, (unsigned long long)f.h.corr);
                        TB_CHECK(got[f.h.corr - 1]++ == 0, "round %d: request %llu answered twice", round,
                                 (unsigned long long)f.h.corr);
                        TB_CHECK(code == WIRE_E_RESPONDER_GONE || (!wait && code == WIRE_E_NO_RESPONDERS),
                                 "round %d (seed %llu): request %llu got %s: %.*s", round, rng_seed_used,
                                 (unsigned long long)f.h.corr, wire_error_name(code),
                                 (int)f.h.payload_len, (const char *)f.payload);
                        raw_frame_free(&f);
                }
                raw_sync(s->req); /* and nothing more */
                break;
        }
        }
        return held;
}

Test(kills, clients_killed_at_random_points, .fini = cleanup, .timeout = 300) {
        /* A small queue, so that a few publishes fill it. */
        static const char *const args[] = { "--max-queue-bytes", "131072", NULL };
        int rounds, round, warmup, base, i, kinds[_KILL_MAX] = { 0 }, held = 0;
        long rss_warm = 0, rss_end;
        Steady s;

        signal(SIGPIPE, SIG_IGN);
        rng_seed(1);
        memset(big_payload, 'k', sizeof(big_payload));
        tb_start(&tb, args);
        rounds = tb.valgrind ? 100 : 200;
        warmup = rounds / 5;
        base = tb_fd_baseline(&tb);

        s.ctl = raw_client(&tb, "control", NULL);
        s.sub = raw_client(&tb, "steady-sub", NULL);
        s.pub = raw_client(&tb, "steady-pub", NULL);
        s.flood = raw_client(&tb, "flood", NULL);
        s.resp = raw_client(&tb, "parent-responder", NULL);
        s.req = raw_client(&tb, "parent-requester", NULL);
        raw_subscribe(s.sub, 1, "steady", NULL, 0);
        subscribe_responder(s.resp, 1, "svc/parent");
        wait_settled(s.ctl, STEADY_CLIENTS, STEADY_SUBS, "after the start");

        for (round = 0; round < rounds; round++) {
                int scenario = (int)rng_below(_KILL_MAX);
                bool wait = rng_below(2) == 0;
                char what[128];

                kinds[scenario]++;
                if (kill_round(&s, round, scenario, wait))
                        held++;
                snprintf(what, sizeof(what), "round %d, %s (%s)", round, kill_names[scenario],
                         wait ? "killed where it wanted to be" : "killed at a random moment");
                wait_settled(s.ctl, STEADY_CLIENTS, STEADY_SUBS, what);
                cr_assert(eq(int, tb_fd_count(&tb), base + STEADY_CLIENTS), "%s (seed %llu)", what,
                          rng_seed_used);
                if (round == warmup)
                        rss_warm = tb_rss_kib(&tb);
        }
        for (i = 0; i < _KILL_MAX; i++)
                cr_assert(gt(int, kinds[i], 0), "scenario %s never ran", kill_names[i]);
        /* The kills did hit the broker while it held fds for the victim. */
        cr_assert(gt(int, held, 0), "no victim died with fds held for it");

        /* The clients connected all along still work. */
        round_trip(s.pub, s.sub, "steady");
        raw_sync(s.flood);
        raw_sync(s.resp);
        raw_sync(s.req);
        rss_end = tb_rss_kib(&tb);
        cr_log_info("%d kills (seed %llu): %d mid-frame, %d slow subscriber, %d fd publisher, "
                    "%d requester, %d responder; %d with fds held; RSS %ld KiB after the warm-up, %ld KiB "
                    "at the end",
                    rounds, rng_seed_used, kinds[KILL_MID_FRAME], kinds[KILL_SLOW_SUBSCRIBER],
                    kinds[KILL_FD_PUBLISHER], kinds[KILL_REQUESTER], kinds[KILL_RESPONDER], held, rss_warm,
                    rss_end);
        /* Dozens of kills later the broker is no bigger: what a victim left
         * was freed (the warm-up rounds grew the allocator's pools). */
        if (!slow_broker())
                cr_assert(lt(i64, rss_end - rss_warm, 4096), "RSS grew by %ld KiB over %d kills",
                          rss_end - rss_warm, rounds - warmup);

        close(s.sub);
        close(s.pub);
        close(s.flood);
        close(s.resp);
        close(s.req);
        wait_settled(s.ctl, 1, 0, "after the steady clients left");
        close(s.ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* ---- 2. Churn, many clients, silent clients ---- */

Test(churn, thousands_of_short_lived_clients, .fini = cleanup, .timeout = 300) {
        int cycles, warmup, base, i, ctl, sub, pub;
        long rss_warm = 0, rss_end;
        long long total0;

        signal(SIGPIPE, SIG_IGN);
        rng_seed(2);
        tb_start(&tb, NULL);
        cycles = tb.valgrind ? 1000 : 3000;
        warmup = cycles / 10;
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        sub = raw_client(&tb, "steady-sub", NULL);
        pub = raw_client(&tb, "steady-pub", NULL);
        raw_subscribe(sub, 1, "steady", NULL, 0);
        total0 = raw_status_number(ctl, "connections_total");

        for (i = 0; i < cycles; i++) {
                uint32_t r = rng_next();
                char topic[32];
                int fd;

                if (i == warmup) {
                        raw_wait_clients(ctl, 3);
                        rss_warm = tb_rss_kib(&tb);
                }
                snprintf(topic, sizeof(topic), "churn/%u", r % 16);
                if (r % 8 == 7) {
                        /* HELLO, and gone before the WELCOME is read. */
                        uint8_t meta[WIRE_META_HELLO] = { 0 };
                        fd = raw_connect(&tb);
                        raw_send(fd, WIRE_HELLO, 0, 0, 1, meta, sizeof(meta), NULL, "brief", 5);
                        close(fd);
                        continue;
                }
                fd = raw_client(&tb, "churn", NULL);
                raw_subscribe(fd, 1, topic, NULL, 0);
                raw_publish(fd, topic, 1, "self", 4);
                /* Mostly read its own message; some leave without reading
                 * (the broker writes to a socket about to close). */
                if (r % 8 < 5)
                        expect_topic(fd, topic);
                close(fd);
        }
        raw_wait_clients(ctl, 3);
        cr_assert(ge(i64, raw_status_number(ctl, "connections_total") - total0, cycles));
        wait_settled(ctl, 3, 1, "after the churn");
        cr_assert(eq(int, tb_wait_fd_count(&tb, base + 3), base + 3));
        round_trip(pub, sub, "steady");
        rss_end = tb_rss_kib(&tb);
        cr_log_info("%d connections: RSS %ld KiB after the warm-up, %ld KiB at the end", cycles, rss_warm,
                    rss_end);
        if (!slow_broker())
                cr_assert(lt(i64, rss_end - rss_warm, 2048), "RSS grew by %ld KiB over %d connections",
                          rss_end - rss_warm, cycles - warmup);
        close(sub);
        close(pub);
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* Writes @yaml to a new configuration file in a new directory and starts
 * the broker there with it (and @extra). */
static void start_with_config(const char *yaml, const char *const *extra) {
        static char dir[64], conf[128];
        const char *args[16] = { "--config", conf };
        size_t n = 2;
        FILE *f;

        snprintf(dir, sizeof(dir), "/tmp/ipcd-test-XXXXXX");
        cr_assert(mkdtemp(dir) != NULL);
        snprintf(conf, sizeof(conf), "%s/faults.yaml", dir);
        f = fopen(conf, "we");
        cr_assert(f != NULL);
        fputs(yaml, f);
        fclose(f);
        for (; extra && *extra && n < ARRAY_SIZE(args) - 1; extra++)
                args[n++] = *extra;
        args[n] = NULL;
        tb_start_in(&tb, dir, args);
}

/* tb_stop(), then the configuration file and the directory. */
static void stop_with_config(void) {
        char dir[64], conf[128];

        snprintf(dir, sizeof(dir), "%s", tb.dir);
        snprintf(conf, sizeof(conf), "%s/faults.yaml", dir);
        tb_stop(&tb);
        unlink(conf);
        rmdir(dir);
}

static void cleanup_with_config(void) {
        char conf[128];

        if (tb.pid <= 0)
                return;
        snprintf(conf, sizeof(conf), "%s/faults.yaml", tb.dir);
        unlink(conf);
        tb_kill(&tb);
}

Test(churn, a_thousand_clients_at_once, .fini = cleanup_with_config, .timeout = 300) {
        enum { N = 1000 };
        static int fds[N];
        int base, p, i;

        if (!tb_raise_own_nofile(N + 200))
                cr_skip_test("RLIMIT_NOFILE's hard limit is below %d", N + 200);
        /* All of them are this test's uid. */
        start_with_config("limits:\n  max_connections_per_user: 2000\n", NULL);
        base = tb_fd_baseline(&tb);
        for (i = 0; i < N; i++) {
                fds[i] = raw_client(&tb, "many", NULL);
                raw_subscribe(fds[i], 1, "all", NULL, 0);
        }
        p = raw_client(&tb, "pub", NULL);
        cr_assert(eq(i64, raw_status_number(p, "clients"), N + 1));
        cr_assert(eq(i64, raw_status_number(p, "subscriptions"), N));
        cr_assert(eq(int, tb_fd_count(&tb), base + N + 1));
        /* One publish reaches all of them. */
        raw_publish(p, "all", 7, "everyone", 8);
        for (i = 0; i < N; i++) {
                WireDelivery d;
                RawFrame f;
                raw_expect(fds[i], WIRE_MESSAGE, &f);
                wire_delivery_decode(f.meta, &d);
                cr_assert(eq(u64, d.seq, 1), "client %d", i);
                cr_assert(eq(u32, f.h.type, 7));
                raw_frame_free(&f);
        }
        cr_assert(eq(i64, raw_status_number(p, "messages_out"), N));
        cr_assert(eq(i64, raw_status_number(p, "drops"), 0));
        for (i = 0; i < N; i++)
                close(fds[i]);
        raw_wait_clients(p, 1);
        close(p);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        stop_with_config();
}

/* Connections that never say HELLO: until limits.hello_timeout (10 s by
 * default, see hello_timeout below) the broker keeps them and counts them
 * as clients, and serves everyone else as usual. */
Test(idle, silent_connections_do_not_stop_others, .fini = cleanup, .timeout = 120) {
        enum { SILENT = 200, PARTIAL = 50 };
        static int fds[SILENT + PARTIAL];
        uint8_t hello[WIRE_HEADER_SIZE + WIRE_META_HELLO + 8];
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        int base, ctl, sub, pub, i;
        size_t n;

        tb_start(&tb, NULL);
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        n = wire_frame_encode(hello, sizeof(hello), WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta), NULL, 0,
                              "partial", 7);
        for (i = 0; i < SILENT + PARTIAL; i++) {
                fds[i] = raw_connect(&tb);
                /* Some send the start of a HELLO, and stop. */
                if (i >= SILENT)
                        raw_write(fds[i], hello, 1 + (size_t)i % (n - 1));
        }
        raw_wait_clients(ctl, SILENT + PARTIAL + 1);
        /* Everyone else: new clients, and one that was there before. */
        sub = raw_client(&tb, "sub", NULL);
        pub = raw_client(&tb, "pub", NULL);
        raw_subscribe(sub, 1, "busy", NULL, 0);
        round_trip(pub, sub, "busy");
        assert_healthy();
        raw_sync(ctl);
        /* The silent ones are still there a while later (and the probes
         * of assert_healthy() gone). */
        sleep_ms(500);
        raw_wait_clients(ctl, SILENT + PARTIAL + 3);
        for (i = 0; i < SILENT + PARTIAL; i++) {
                struct pollfd pf = { .fd = fds[i], .events = POLLIN };
                cr_assert(eq(int, poll(&pf, 1, 0), 0), "silent connection %d was answered or closed", i);
                close(fds[i]);
        }
        raw_wait_clients(ctl, 3);
        round_trip(pub, sub, "busy");
        close(sub);
        close(pub);
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* The handshake timeout: a connection that has not completed HELLO within
 * limits.hello_timeout gets a fatal ERROR handshake and is closed, and
 * counted; one that has completed it stays. */
Test(idle, hello_timeout, .fini = cleanup_with_config, .timeout = 120) {
        enum { SILENT = 20, PARTIAL = 10 };
        static int fds[SILENT + PARTIAL];
        uint8_t hello[WIRE_HEADER_SIZE + WIRE_META_HELLO + 8];
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        int base, ctl, good, i, timeout_ms;
        long t0, elapsed;
        char yaml[128];
        size_t n;

        timeout_ms = under_valgrind() ? 1000 : 300;
        snprintf(yaml, sizeof(yaml), "limits:\n  hello_timeout: %dms\n", timeout_ms);
        start_with_config(yaml, NULL);
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        n = wire_frame_encode(hello, sizeof(hello), WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta), NULL, 0,
                              "partial", 7);
        t0 = now_ms();
        for (i = 0; i < SILENT + PARTIAL; i++) {
                fds[i] = raw_connect(&tb);
                if (i >= SILENT)
                        raw_write(fds[i], hello, 1 + (size_t)i % (n - 1));
        }
        /* A client that completes HELLO late, but in time, stays. */
        good = raw_connect(&tb);
        sleep_ms(timeout_ms / 3);
        raw_send(good, WIRE_HELLO, 0, 0, 1, meta, sizeof(meta), NULL, "late", 4);
        {
                RawFrame w;
                raw_expect(good, WIRE_WELCOME, &w);
                raw_frame_free(&w);
        }
        /* The others are told why, and closed; not before their time. */
        for (i = 0; i < SILENT + PARTIAL; i++) {
                raw_expect_error(fds[i], WIRE_E_HANDSHAKE, true);
                close(fds[i]);
                if (i == 0) {
                        elapsed = now_ms() - t0;
                        cr_assert(ge(i64, elapsed, timeout_ms - 20),
                                  "closed after %ld ms, before the timeout", elapsed);
                }
        }
        /* Well past the timeout, the greeted clients work. */
        sleep_ms(2 * timeout_ms);
        raw_sync(good);
        raw_subscribe(good, 1, "after", NULL, 0);
        round_trip(ctl, good, "after");
        cr_assert(eq(i64, raw_status_number(ctl, "clients"), 2));
        cr_assert(eq(i64, raw_status_number(ctl, "handshake_timeouts"), SILENT + PARTIAL));
        close(good);
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        stop_with_config();
}

/* ---- 3. Out of file descriptors ---- */

/* Low enough to reach quickly; valgrind keeps some fds of the broker's
 * limit for itself. */
static unsigned long low_nofile(void) {
        return under_valgrind() ? 128 : 64;
}

/* Valgrind keeps the top of the fd table for itself, and closes on its own
 * an fd the kernel hands the broker above its share (from accept4, or in
 * SCM_RIGHTS): at the limit, a test would see valgrind's behaviour, not the
 * broker's. */
static void skip_under_valgrind(void) {
        if (under_valgrind())
                cr_skip_test("valgrind handles the end of the fd table itself");
}

/* Opens connections until the broker refuses one; returns how many it
 * took (stored in @fds). */
static int fill_fd_table(int *fds, int max) {
        int n = 0;

        for (;;) {
                int fd = raw_try_client(&tb, "filler", NULL);
                if (fd < 0)
                        return n;
                cr_assert(lt(int, n, max), "the broker took %d connections with RLIMIT_NOFILE %lu", n,
                          low_nofile());
                fds[n++] = fd;
        }
}

Test(fd_exhaustion, refuses_without_spinning_and_recovers, .fini = cleanup, .timeout = 120) {
        int fds[256], base, n, ctl, sub, pub, more, i;
        long long refused0, refused;
        long ticks;

        skip_under_valgrind();
        tb_start_nofile(&tb, NULL, low_nofile());
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        sub = raw_client(&tb, "sub", NULL);
        pub = raw_client(&tb, "pub", NULL);
        raw_subscribe(sub, 1, "steady", NULL, 0);
        refused0 = raw_status_number(ctl, "connections_refused");

        n = fill_fd_table(fds, (int)ARRAY_SIZE(fds));
        cr_assert(gt(int, n, 0));
        /* It counts what it refused, and goes on refusing while full. */
        for (i = 0; i < 3; i++)
                cr_assert(eq(int, raw_try_client(&tb, "refused", NULL), -1));
        refused = raw_status_number(ctl, "connections_refused");
        cr_assert(ge(i64, refused - refused0, 4), "connections_refused went from %lld to %lld",
                  refused0, refused);
        /* Full, with a connection knocking: it does not spin. */
        {
                int knock = raw_connect(&tb);
                ticks = tb_cpu_ticks(&tb);
                sleep_ms(1000);
                ticks = tb_cpu_ticks(&tb) - ticks;
                close(knock);
        }
        cr_assert(lt(i64, ticks, 25), "the broker used %ld ticks of CPU in an idle second", ticks);
        /* The clients it has are served. */
        round_trip(pub, sub, "steady");
        for (i = 0; i < n; i++)
                raw_sync(fds[i]);

        /* Once some go, it takes new ones again. */
        for (i = 0; i < 4; i++)
                close(fds[--n]);
        raw_wait_clients(ctl, n + 3);
        more = raw_try_client(&tb, "newcomer", NULL);
        cr_assert(ge(int, more, 0), "no connection taken after fds were freed");
        raw_subscribe(more, 1, "steady", NULL, 0);
        round_trip(pub, more, "steady");
        expect_topic(sub, "steady");

        for (i = 0; i < n; i++)
                close(fds[i]);
        close(more);
        close(sub);
        close(pub);
        wait_settled(ctl, 1, 0, "after the fillers left");
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* Is the far end of pipe @wr closed everywhere (nobody holds the read end)? */
static bool pipe_reader_gone(int wr) {
        long deadline = now_ms() + 5000;

        for (;;) {
                if (write(wr, "x", 1) < 0 && errno == EPIPE)
                        return true;
                if (now_ms() > deadline)
                        return false;
                sleep_ms(10);
        }
}

Test(fd_exhaustion, fds_received_when_out_of_fds, .fini = cleanup, .timeout = 120) {
        int fds[256], base, n, ctl, sub, pub, sender, round, i;

        skip_under_valgrind();
        signal(SIGPIPE, SIG_IGN);
        tb_start_nofile(&tb, NULL, low_nofile());
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        sub = raw_client(&tb, "sub", NULL);
        pub = raw_client(&tb, "pub", NULL);
        raw_subscribe(sub, 1, "fds", NULL, 0);
        n = 0;
        /* A pipe's read end, then a sealed memfd: the broker cannot take
         * them, and says so. */
        for (round = 0; round < 2; round++) {
                int p[2];

                sender = raw_client(&tb, "sender", NULL);
                n += fill_fd_table(fds + n, (int)ARRAY_SIZE(fds) - n);
                if (round == 0) {
                        uint8_t frame[128];
                        size_t len;
                        cr_assert(eq(int, pipe2(p, O_CLOEXEC), 0));
                        len = encode_with_fds(frame, sizeof(frame), WIRE_PUBLISH, 0, "fds", "r", 1, 0, 1);
                        raw_send_fds(sender, frame, len, &p[0], 1);
                        close(p[0]);
                } else
                        send_with_fds(sender, WIRE_PUBLISH, 0, "fds", true);
                raw_expect_error(sender, WIRE_E_FDS, true);
                close(sender);
                if (round == 0) {
                        cr_assert(pipe_reader_gone(p[1]), "someone still holds the pipe's read end");
                        close(p[1]);
                }
                raw_expect_silence(sub, 100);
        }
        cr_assert(eq(i64, raw_status_number(ctl, "fds_held"), 0));
        /* Everyone else goes on, fds included once there is room. */
        for (i = 0; i < n; i++)
                raw_sync(fds[i]);
        raw_publish(pub, "fds", 1, "plain", 5);
        expect_topic(sub, "fds");
        for (i = 0; i < 4; i++)
                close(fds[--n]);
        raw_wait_clients(ctl, n + 3);
        send_with_fds(pub, WIRE_PUBLISH, 0, "fds", false);
        {
                RawFrame f;
                raw_expect(sub, WIRE_MESSAGE, &f);
                cr_assert(eq(u32, f.h.n_fds, 2));
                raw_frame_free(&f);
        }
        for (i = 0; i < n; i++)
                close(fds[i]);
        close(sub);
        close(pub);
        wait_settled(ctl, 1, 0, "after the fds");
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* Fds queued for a subscriber that never reads stop at the broker's fd
 * budget (half its RLIMIT_NOFILE), with a non-fatal error to the
 * publisher; they are all closed when that subscriber goes. */
Test(fd_exhaustion, queued_fds_stop_at_the_budget, .fini = cleanup, .timeout = 120) {
        int base, ctl, slow, pub, i, sent = 0;
        long long budget, held;
        RawFrame f;

        tb_start_nofile(&tb, NULL, low_nofile());
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        slow = raw_client(&tb, "slow", NULL);
        pub = raw_client(&tb, "pub", NULL);
        raw_subscribe(slow, 1, "held", NULL, 0);
        budget = raw_status_number(ctl, "fd_budget");
        cr_assert(is_true(budget > 0 && budget <= (long long)low_nofile() / 2), "fd_budget %lld", budget);
        /* Fill the slow subscriber's socket, so that what follows waits in
         * the broker. */
        for (i = 0; i < 1000 && raw_status_number(ctl, "queued_bytes") == 0; i++) {
                int k;
                for (k = 0; k < 16; k++)
                        raw_publish(pub, "held", 1, big_payload, 4096);
                raw_sync(pub);
        }
        cr_assert(gt(i64, raw_status_number(ctl, "queued_bytes"), 0));
        /* One fd per message, acknowledged, until the broker says no. */
        for (;;) {
                uint8_t frame[128];
                uint32_t code;
                size_t len;
                int p[2];

                cr_assert(le(int, sent, (int)budget), "the broker took %d fds, its budget is %lld", sent,
                          budget);
                cr_assert(eq(int, pipe2(p, O_CLOEXEC), 0));
                len = encode_with_fds(frame, sizeof(frame), WIRE_PUBLISH, 500 + (uint64_t)sent, "held",
                                      "fd", 2, 0, 1);
                frame[WIRE_OFF_FLAGS] |= WIRE_F_ACK;
                raw_send_fds(pub, frame, len, &p[0], 1);
                close(p[0]);
                close(p[1]);
                cr_assert(eq(int, raw_read(pub, &f, 5000), 1));
                cr_assert(eq(u64, f.h.corr, 500 + (uint64_t)sent));
                if (f.h.kind == WIRE_ACK) {
                        raw_frame_free(&f);
                        sent++;
                        continue;
                }
                cr_assert(eq(u32, f.h.kind, WIRE_ERROR));
                code = le32_read(f.meta);
                cr_assert(eq(u32, code, WIRE_E_LIMIT), "got %s: %.*s", wire_error_name(code),
                          (int)f.h.payload_len, (const char *)f.payload);
                cr_assert(eq(u32, f.h.flags & WIRE_F_FATAL, 0));
                raw_frame_free(&f);
                break;
        }
        /* Exactly the budget: nothing else holds fds. */
        cr_assert(eq(i64, sent, budget));
        held = raw_status_number(ctl, "fds_held");
        cr_assert(eq(i64, held, budget));
        cr_assert(eq(i64, raw_status_number(ctl, "queued_fds"), held));
        /* The publisher goes on without fds, and new clients are taken. */
        raw_sync(pub);
        assert_healthy();
        /* The slow one goes: every fd it had queued is closed. */
        close(slow);
        wait_settled(ctl, 2, 0, "after the slow subscriber left");
        close(pub);
        raw_wait_clients(ctl, 1);
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}

/* ---- 4. Memory pressure: consumers that never read ---- */

enum { P_DROP_NEW, P_DROP_OLD, P_DISCONNECT, P_BLOCK };
static const char *const policy_names[] = { "drop-new", "drop-old", "disconnect", "block" };

typedef struct PressureCase {
        int policy; /* P_*: parameters hold no pointers */
} PressureCase;

ParameterizedTestParameters(pressure, slow_consumers) {
        static PressureCase cases[] = { { P_DROP_NEW }, { P_DROP_OLD }, { P_DISCONNECT }, { P_BLOCK } };
        return cr_make_param_array(PressureCase, cases, ARRAY_SIZE(cases));
}

#define QUEUE_BYTES 262144
#define QUEUE_BYTES_ARG "262144"
#define PRESSURE_PAYLOAD 4096
enum { SLOW = 8 };

/* The publisher: @n messages on "flood", then a PING answered once all of
 * them are routed. Runs in its own process: with "block" it is held back. */
static void pressure_publisher(int n) {
        int p = raw_client(&tb, "publisher", NULL), i;
        RawFrame f;

        for (i = 0; i < n; i++)
                raw_publish(p, "flood", 1, big_payload, PRESSURE_PAYLOAD);
        raw_send(p, WIRE_PING, 0, 0, 42, NULL, 0, NULL, NULL, 0);
        TB_CHECK(raw_read(p, &f, 300000) == 1 && f.h.kind == WIRE_PONG, "no PONG");
        raw_frame_free(&f);
        close(p);
}

/* Reads every MESSAGE @fd has (until it has been quiet for @quiet_ms or
 * the broker ended it); returns how many, with the first and last seq. A
 * fatal ERROR (slow-consumer) sets @ret_error. */
static int drain(int fd, int quiet_ms, uint64_t *ret_first, uint64_t *ret_last, uint32_t *ret_error) {
        int n = 0;

        for (;;) {
                WireDelivery d;
                RawFrame f;
                if (raw_read(fd, &f, quiet_ms) != 1)
                        return n;
                if (f.h.kind == WIRE_ERROR) {
                        *ret_error = le32_read(f.meta);
                        raw_frame_free(&f);
                        continue;
                }
                TB_CHECK(f.h.kind == WIRE_MESSAGE, "got %s", wire_kind_name(f.h.kind));
                wire_delivery_decode(f.meta, &d);
                if (n == 0)
                        *ret_first = d.seq;
                TB_CHECK(d.seq > *ret_last || n == 0, "out of order: %llu after %llu",
                         (unsigned long long)d.seq, (unsigned long long)*ret_last);
                *ret_last = d.seq;
                n++;
                raw_frame_free(&f);
        }
}

/* Reads what a disconnected consumer's socket still holds, up to the end,
 * as a byte stream: the broker may have closed it in the middle of a frame
 * (it lingers only so long for a client to take its last frames). Returns
 * the whole MESSAGE frames; an ERROR among them sets @ret_error. */
static int drain_to_end(int fd, uint32_t *ret_error) {
        static uint8_t buf[4 << 20];
        size_t have = 0, off = 0;
        long deadline = now_ms() + 10000;
        int n = 0;

        for (;;) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                ssize_t r;

                cr_assert(eq(int, poll(&pf, 1, 10000), 1), "the broker never closed the connection");
                cr_assert(lt(i64, now_ms(), deadline));
                r = recv(fd, buf + have, sizeof(buf) - have, 0);
                if (r < 0 && errno == ECONNRESET)
                        r = 0;
                cr_assert(ge(i64, r, 0), "recv: %s", strerror(errno));
                if (r == 0)
                        break;
                have += (size_t)r;
                cr_assert(lt(u64, have, sizeof(buf)), "more than a socket holds");
        }
        while (have - off >= WIRE_HEADER_SIZE) {
                WireHeader h;
                const char *why;
                cr_assert(eq(int, wire_header_decode(buf + off, NULL, &h, &why), WIRE_E_OK), "%s", why);
                if (have - off < h.size)
                        break; /* cut short by the close */
                if (h.kind == WIRE_MESSAGE)
                        n++;
                else if (h.kind == WIRE_ERROR)
                        *ret_error = le32_read(buf + off + WIRE_HEADER_SIZE);
                off += h.size;
        }
        return n;
}

ParameterizedTest(PressureCase *pc, pressure, slow_consumers, .fini = cleanup, .timeout = 300) {
        const char *policy = policy_names[pc->policy];
        const char *args[] = { "--max-queue-bytes", QUEUE_BYTES_ARG, "--overflow", policy, NULL };
        int base, ctl, slow[SLOW], i, messages, status, quiet = 0;
        uint32_t ids[SLOW];
        long rss0, rss_peak, bound_kib, deadline;
        long long drops, topic_drops, client_drops = 0, in_prev = -1;
        bool stalled = false;
        char anchor[48], *json;
        pid_t child;

        memset(big_payload, 'm', sizeof(big_payload));
        tb_start(&tb, args);
        messages = 4096; /* of 4 KiB: 16 MiB, 64 times a queue */
        base = tb_fd_baseline(&tb);
        ctl = raw_client(&tb, "control", NULL);
        for (i = 0; i < SLOW; i++) {
                slow[i] = raw_client(&tb, "slow", &ids[i]);
                raw_subscribe(slow[i], 1, "flood", NULL, 0);
        }
        rss0 = tb_rss_kib(&tb);
        rss_peak = rss0;

        child = fork();
        cr_assert(ge(int, child, 0));
        if (child == 0) {
                harness_child_begin();
                alarm(290);
                pressure_publisher(messages);
                _exit(0);
        }
        /* Until the publisher is done, or (block) held back for good. */
        deadline = now_ms() + (tb.valgrind ? 240000 : 60000);
        for (;;) {
                long long in;
                long rss = tb_rss_kib(&tb);
                if (rss > rss_peak)
                        rss_peak = rss;
                if (waitpid(child, &status, WNOHANG) == child) {
                        child = 0;
                        break;
                }
                cr_assert(lt(i64, now_ms(), deadline), "the publisher never finished nor stalled");
                in = raw_status_number(ctl, "messages_in");
                if (pc->policy == P_BLOCK && in == in_prev && in > 0 && ++quiet == 2) {
                        /* Nothing got through for 600 ms. */
                        stalled = true;
                        break;
                }
                if (in != in_prev)
                        quiet = 0;
                in_prev = in;
                sleep_ms(pc->policy == P_BLOCK ? 300 : 20);
        }
        if (pc->policy == P_BLOCK) {
                cr_assert(is_true(stalled), "the publisher was not held back");
                cr_assert(lt(i64, in_prev, messages));
        } else
                cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0),
                          "the publisher failed (its error is above)");

        /* Memory: the limits of the slow consumers (twice for block, which
         * queues up to twice the limit while it holds the publisher back)
         * and some slack, though 16 MiB went by. */
        cr_log_info("%s: RSS %ld KiB at the start, at most %ld KiB while %d messages of %d bytes went to %d "
                    "consumers that never read",
                    policy, rss0, rss_peak, messages, PRESSURE_PAYLOAD, SLOW);
        bound_kib = (long)SLOW * QUEUE_BYTES / 1024 * (pc->policy == P_BLOCK ? 2 : 1) + 8 * 1024;
        if (!slow_broker())
                cr_assert(lt(i64, rss_peak - rss0, bound_kib), "%s: RSS grew by %ld KiB, bound %ld KiB",
                          policy, rss_peak - rss0, bound_kib);

        /* Disconnected consumers that do not read linger a moment (for an
         * ERROR they cannot take) before they go. */
        if (pc->policy == P_DISCONNECT)
                raw_wait_clients(ctl, 1);
        /* The counters: every drop is counted once per client, per topic and
         * in the total. */
        json = raw_status_json(ctl);
        drops = tb_json_number(json, NULL, "drops");
        topic_drops = tb_json_number(json, "{\"topic\":\"flood\",", "dropped");
        for (i = 0; i < SLOW; i++) {
                long long d;
                snprintf(anchor, sizeof(anchor), "{\"id\":%u,", ids[i]);
                d = tb_json_number(json, anchor, "drops");
                if (pc->policy == P_DISCONNECT) {
                        /* Gone, and with them their rows. */
                        cr_assert(eq(i64, d, -1), "a slow consumer was not disconnected");
                        continue;
                }
                cr_assert(ge(i64, d, 0), "no row for slow consumer %u", ids[i]);
                if (pc->policy == P_BLOCK)
                        cr_assert(eq(i64, d, 0));
                else
                        cr_assert(gt(i64, d, 0), "%s: slow consumer %u dropped nothing", policy, ids[i]);
                client_drops += d;
        }
        free(json);
        cr_assert(eq(i64, topic_drops, drops), "%s: %lld drops on the topic, %lld in all", policy,
                  topic_drops, drops);
        if (pc->policy == P_BLOCK)
                cr_assert(eq(i64, drops, 0));
        else if (pc->policy == P_DISCONNECT)
                cr_assert(ge(i64, drops, SLOW));
        else
                cr_assert(eq(i64, client_drops, drops), "%s: %lld drops per client, %lld in all", policy,
                          client_drops, drops);

        /* What each slow consumer reads now, plus what it lost, is what was
         * published. */
        if (pc->policy == P_BLOCK) {
                /* Reading lets the publisher go on: read them all in turn. */
                int got[SLOW] = { 0 }, done = 0;
                deadline = now_ms() + (tb.valgrind ? 240000 : 60000);
                while (done < SLOW) {
                        struct pollfd pf[SLOW];
                        for (i = 0; i < SLOW; i++)
                                pf[i] = (struct pollfd){ .fd = got[i] < messages ? slow[i] : -1,
                                                         .events = POLLIN };
                        cr_assert(gt(int, poll(pf, SLOW, 10000), 0), "the publisher stopped for good");
                        cr_assert(lt(i64, now_ms(), deadline));
                        for (i = 0; i < SLOW; i++) {
                                WireDelivery d;
                                RawFrame f;
                                if (!(pf[i].revents & POLLIN))
                                        continue;
                                raw_expect(slow[i], WIRE_MESSAGE, &f);
                                wire_delivery_decode(f.meta, &d);
                                cr_assert(eq(u64, d.seq, (uint64_t)got[i] + 1), "a gap with block");
                                raw_frame_free(&f);
                                if (++got[i] == messages)
                                        done++;
                        }
                }
                cr_assert(eq(int, waitpid(child, &status, 0), child));
                cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0),
                          "the publisher failed (its error is above)");
                cr_assert(eq(i64, raw_status_number(ctl, "drops"), 0));
        } else {
                for (i = 0; i < SLOW; i++) {
                        uint64_t first = 0, last = 0;
                        uint32_t error = 0;
                        int got;
                        if (pc->policy == P_DISCONNECT) {
                                /* Cut off: what its socket held, the ERROR
                                 * only if it fitted, then the end. */
                                got = drain_to_end(slow[i], &error);
                                cr_assert(is_true(error == 0 || error == WIRE_E_SLOW_CONSUMER),
                                          "got ERROR %s", wire_error_name(error));
                                cr_assert(lt(int, got, messages));
                                continue;
                        }
                        got = drain(slow[i], 300, &first, &last, &error);
                        cr_assert(eq(u32, error, 0), "%s: ERROR %s", policy, wire_error_name(error));
                        snprintf(anchor, sizeof(anchor), "{\"id\":%u,", ids[i]);
                        json = raw_status_json(ctl);
                        cr_assert(eq(i64, got + tb_json_number(json, anchor, "drops"), messages),
                                  "%s: slow consumer %u read %d", policy, ids[i], got);
                        free(json);
                        /* drop-new keeps the first (more may follow a
                         * gap: the queue fills within one read of the
                         * publisher, before the broker writes to the
                         * socket); drop-old keeps the newest, however
                         * many it dropped before. */
                        if (pc->policy == P_DROP_NEW)
                                cr_assert(eq(u64, first, 1), "drop-new lost the first");
                        else
                                cr_assert(eq(u64, last, (uint64_t)messages), "drop-old lost the newest");
                }
        }

        for (i = 0; i < SLOW; i++)
                close(slow[i]);
        wait_settled(ctl, 1, 0, "after the slow consumers left");
        assert_healthy();
        close(ctl);
        cr_assert(eq(int, tb_wait_fd_count(&tb, base), base));
        tb_stop(&tb);
}
