/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: the workloads, written once against BenchSystem so that ipcd,
 * Redis and Mosquitto run exactly the same code: the same processes, the
 * same flow control, the same checks.
 *
 * Flow control (streams). Each subscriber stores how many messages it has
 * received from each publisher in a counter in shared memory (a MAP_SHARED
 * anonymous mapping made before the fork). A publisher never gets more than
 * `window` messages ahead of its slowest subscriber: at the window it
 * flushes and sleeps on a futex until that subscriber is back to half the
 * window. Subscribers wake it only when it sleeps. No system's own
 * back-pressure or limits are involved, so none may drop a message: the
 * subscribers check every sequence number and count losses and reorders.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define LINE 64

/* Each run gets topics of its own: a late message of an earlier run can
 * never be counted in a later one. */
static unsigned run_serial;

static void topic_name(char *buf, size_t cap, const char *what) {
        snprintf(buf, cap, "bench/%s/%u-%d", what, ++run_serial, (int)getpid());
}

/* ---- streams: pubsub, fanout, fanin, bulk CPU ---- */

typedef struct StreamShm {
        uint32_t go;       /* futex: 0 until the parent starts the run */
        uint32_t ready;    /* futex: clients set up (subscribers, then publishers) */
        uint32_t done;     /* futex: subscribers that received everything */
        uint32_t progress; /* futex: bumped when a sleeping publisher should look */
        uint32_t waiting;  /* publishers asleep at their window */
        uint32_t failed;   /* a child failed (it said why) */
        uint32_t err_taken;
        uint64_t lost, misordered;
        char error[256];
} StreamShm;

typedef struct Stream {
        const StreamSpec *spec;
        const BenchServer *srv;
        char topic[128];
        StreamShm *shm;
        size_t shm_size;
        double *t_end;     /* per subscriber: when its last message came */
        uint8_t *counters; /* [sub][pub] received, a cache line each */
} Stream;

static uint64_t *rx_counter(const Stream *st, int sub, int pub) {
        return (uint64_t *)(st->counters + ((size_t)sub * (size_t)st->spec->n_pubs + (size_t)pub) * LINE);
}

static void stream_error(Stream *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stream_error(Stream *st, const char *fmt, ...) {
        va_list ap;

        if (__atomic_exchange_n(&st->shm->err_taken, 1, __ATOMIC_SEQ_CST))
                return;
        va_start(ap, fmt);
        vsnprintf(st->shm->error, sizeof(st->shm->error), fmt, ap);
        va_end(ap);
}

/* Says why a child fails, marks the run failed and exits. */
__attribute__((noreturn)) static void child_fail(Stream *st, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void child_fail(Stream *st, const char *fmt, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (st) {
                __atomic_store_n(&st->shm->failed, 1, __ATOMIC_SEQ_CST);
                futex_wake_all(&st->shm->ready);
                futex_wake_all(&st->shm->done);
                futex_wake_all(&st->shm->progress);
        }
        bench_die("%s", buf);
}

typedef struct SubState {
        Stream *st;
        int index;
        uint64_t *next;  /* per publisher: the sequence number expected next */
        int pubs_left;   /* publishers not complete yet */
} SubState;

static void stream_on_message(void *userdata, const void *data, size_t size) {
        SubState *s = userdata;
        Stream *st = s->st;
        const StreamSpec *spec = st->spec;
        uint64_t seq, pub, *ctr;

        if (size != spec->size) {
                __atomic_add_fetch(&st->shm->misordered, 1, __ATOMIC_RELAXED);
                stream_error(st, "subscriber %d: a message of %zu bytes, expected %zu", s->index, size,
                             spec->size);
                return;
        }
        seq = get_u64(data);
        pub = get_u64((const uint8_t *)data + 8);
        if (pub >= (uint64_t)spec->n_pubs) {
                __atomic_add_fetch(&st->shm->misordered, 1, __ATOMIC_RELAXED);
                stream_error(st, "subscriber %d: a message from publisher %llu of %d", s->index,
                             (unsigned long long)pub, spec->n_pubs);
                return;
        }
        ctr = rx_counter(st, s->index, (int)pub);
        if (spec->bulk == BULK_ZERO)
                /* One memfd sent again and again: nothing to number. */
                seq = s->next[pub];
        if (seq > s->next[pub]) {
                __atomic_add_fetch(&st->shm->lost, seq - s->next[pub], __ATOMIC_RELAXED);
                stream_error(st, "subscriber %d, publisher %llu: seq %llu, expected %llu (%llu lost)",
                             s->index, (unsigned long long)pub, (unsigned long long)seq,
                             (unsigned long long)s->next[pub],
                             (unsigned long long)(seq - s->next[pub]));
        } else if (seq < s->next[pub]) {
                __atomic_add_fetch(&st->shm->misordered, 1, __ATOMIC_RELAXED);
                stream_error(st, "subscriber %d, publisher %llu: seq %llu after %llu (out of order or twice)",
                             s->index, (unsigned long long)pub, (unsigned long long)seq,
                             (unsigned long long)(s->next[pub] - 1));
                return;
        }
        s->next[pub] = seq + 1;
        __atomic_store_n(ctr, seq, __ATOMIC_RELEASE);
        if (seq == spec->count && --s->pubs_left == 0) {
                st->t_end[s->index] = now_s();
                __atomic_add_fetch(&st->shm->done, 1, __ATOMIC_SEQ_CST);
                futex_wake_all(&st->shm->done);
        }
}

/* A subscriber process: clients @first .. @first + @n - 1. */
__attribute__((noreturn)) static void stream_subscribers(Stream *st, int first, int n) {
        const BenchSystem *sys = st->srv->sys;
        const StreamSpec *spec = st->spec;
        BenchClient **c = calloc((size_t)n, sizeof(*c));
        SubState *s = calloc((size_t)n, sizeof(*s));
        struct pollfd *p = calloc((size_t)n, sizeof(*p));
        int *idx = calloc((size_t)n, sizeof(*idx));
        bool first_round = true;
        int i, r, left = n;

        if (!c || !s || !p || !idx)
                child_fail(st, "%s: out of memory", spec->label);
        for (i = 0; i < n; i++) {
                char name[32];

                s[i] = (SubState){ .st = st, .index = first + i, .pubs_left = spec->n_pubs };
                s[i].next = calloc((size_t)spec->n_pubs, sizeof(uint64_t));
                if (!s[i].next)
                        child_fail(st, "%s: out of memory", spec->label);
                for (int k = 0; k < spec->n_pubs; k++)
                        s[i].next[k] = 1;
                if (spec->count == 0)
                        s[i].pubs_left = 0;
                snprintf(name, sizeof(name), "bench-sub-%d", first + i);
                r = sys->connect(st->srv->sock, name, &c[i]);
                if (r < 0)
                        child_fail(st, "%s: %s: subscriber %d: connect: %s", spec->label, sys->name,
                                   first + i, strerror(-r));
                r = sys->subscribe(c[i], st->topic, stream_on_message, &s[i]);
                if (r < 0)
                        child_fail(st, "%s: %s: subscriber %d: %s", spec->label, sys->name, first + i,
                                   sys->last_error(c[i]));
                __atomic_add_fetch(&st->shm->ready, 1, __ATOMIC_SEQ_CST);
                futex_wake_all(&st->shm->ready);
        }
        if (spec->count == 0)
                left = 0;
        while (left > 0 && !__atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED)) {
                int np = 0;

                for (i = 0; i < n; i++)
                        if (s[i].pubs_left > 0) {
                                p[np] = (struct pollfd){ .fd = sys->get_fd(c[i]),
                                                         .events = sys->get_events(c[i]) };
                                idx[np++] = i;
                        }
                /* The first turn also dispatches what the blocking
                 * subscribe calls buffered. */
                if (!first_round && poll(p, (nfds_t)np, 100) < 0 && errno != EINTR)
                        child_fail(st, "%s: poll: %s", spec->label, strerror(errno));
                for (i = 0; i < np; i++) {
                        if (!first_round && p[i].revents == 0)
                                continue;
                        r = sys->process(c[idx[i]], p[i].revents);
                        if (r < 0)
                                child_fail(st, "%s: %s: subscriber %d: %s", spec->label, sys->name,
                                           first + idx[i], sys->last_error(c[idx[i]]));
                        if (s[idx[i]].pubs_left == 0)
                                left--;
                }
                first_round = false;
                if (__atomic_load_n(&st->shm->waiting, __ATOMIC_SEQ_CST)) {
                        __atomic_add_fetch(&st->shm->progress, 1, __ATOMIC_SEQ_CST);
                        futex_wake_all(&st->shm->progress);
                }
        }
        /* Not before the parent says so: closing a connection while others
         * still receive would put the broker's teardown into the figures. */
        while (!__atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED) &&
               __atomic_load_n(&st->shm->go, __ATOMIC_SEQ_CST) != 2)
                futex_wait(&st->shm->go, __atomic_load_n(&st->shm->go, __ATOMIC_SEQ_CST), 100);
        for (i = 0; i < n; i++)
                sys->close(c[i]);
        _exit(0);
}

/* The least any subscriber has received from publisher @pub. */
static uint64_t slowest(const Stream *st, int pub) {
        uint64_t low = UINT64_MAX;
        int i;

        for (i = 0; i < st->spec->n_subs; i++) {
                uint64_t v = __atomic_load_n(rx_counter(st, i, pub), __ATOMIC_ACQUIRE);
                if (v < low)
                        low = v;
        }
        return low;
}

/* A sealed memfd holding @size bytes of @data, made as an application
 * that fills one would: write, then seal. */
static int sealed_memfd(const void *data, size_t size) {
        int fd = memfd_create("ipcd-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -errno;
        if (write_all(fd, data, size) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* A publisher process, number @pub. */
__attribute__((noreturn)) static void stream_publisher(Stream *st, int pub) {
        const BenchSystem *sys = st->srv->sys;
        const StreamSpec *spec = st->spec;
        uint64_t sent = 0, window = spec->window ? spec->window : 1;
        unsigned batch = spec->batch ? spec->batch : 1;
        BenchClient *c = NULL;
        uint8_t *data = malloc(spec->size);
        char name[32];
        int memfd = -1, r;

        if (!data)
                child_fail(st, "%s: out of memory for %zu bytes", spec->label, spec->size);
        fill_pattern(data, spec->size, (unsigned)pub);
        put_u64(data + 8, (uint64_t)pub);
        if (spec->bulk == BULK_ZERO) {
                memfd = sealed_memfd(data, spec->size);
                if (memfd < 0)
                        child_fail(st, "%s: memfd: %s", spec->label, strerror(-memfd));
        }
        snprintf(name, sizeof(name), "bench-pub-%d", pub);
        r = sys->connect(st->srv->sock, name, &c);
        if (r < 0)
                child_fail(st, "%s: %s: publisher %d: connect: %s", spec->label, sys->name, pub,
                           strerror(-r));
        __atomic_add_fetch(&st->shm->ready, 1, __ATOMIC_SEQ_CST);
        futex_wake_all(&st->shm->ready);
        while (__atomic_load_n(&st->shm->go, __ATOMIC_SEQ_CST) == 0) {
                if (__atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED))
                        _exit(1);
                futex_wait(&st->shm->go, 0, 100);
        }

        while (sent < spec->count) {
                uint64_t ahead = sent - slowest(st, pub), n, k;

                if (ahead >= window) {
                        if (sys->flush(c) < 0)
                                child_fail(st, "%s: %s: publisher %d: %s", spec->label, sys->name,
                                           pub, sys->last_error(c));
                        /* Sleep until the slowest subscriber is back to half
                         * the window: a subscriber that keeps up never lets
                         * it come to this. */
                        for (;;) {
                                uint32_t gen;

                                __atomic_add_fetch(&st->shm->waiting, 1, __ATOMIC_SEQ_CST);
                                gen = __atomic_load_n(&st->shm->progress, __ATOMIC_SEQ_CST);
                                if (sent - slowest(st, pub) <= window / 2 ||
                                    __atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED)) {
                                        __atomic_sub_fetch(&st->shm->waiting, 1, __ATOMIC_SEQ_CST);
                                        break;
                                }
                                futex_wait(&st->shm->progress, gen, 100);
                                __atomic_sub_fetch(&st->shm->waiting, 1, __ATOMIC_SEQ_CST);
                        }
                        if (__atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED))
                                _exit(1);
                        continue;
                }
                n = spec->count - sent;
                if (n > batch)
                        n = batch;
                if (n > window - ahead)
                        n = window - ahead;
                for (k = 0; k < n; k++) {
                        put_u64(data, sent + k + 1);
                        if (memfd >= 0)
                                r = sys->publish_memfd(c, st->topic, memfd, spec->size);
                        else
                                r = sys->publish(c, st->topic, data, spec->size, k + 1 < n);
                        if (r < 0)
                                child_fail(st, "%s: %s: publisher %d: %s", spec->label, sys->name,
                                           pub, sys->last_error(c));
                }
                sent += n;
                if (spec->batched && sys->flush(c) < 0)
                        child_fail(st, "%s: %s: publisher %d: %s", spec->label, sys->name, pub,
                                   sys->last_error(c));
        }
        if (sys->flush(c) < 0 || sys->sync(c) < 0)
                child_fail(st, "%s: %s: publisher %d: %s", spec->label, sys->name, pub,
                           sys->last_error(c));
        /* Stay connected until the subscribers are done (see above). */
        while (!__atomic_load_n(&st->shm->failed, __ATOMIC_RELAXED) &&
               __atomic_load_n(&st->shm->go, __ATOMIC_SEQ_CST) != 2)
                futex_wait(&st->shm->go, 1, 100);
        sys->close(c);
        if (memfd >= 0)
                close(memfd);
        free(data);
        _exit(0);
}

static uint64_t total_received(const Stream *st) {
        uint64_t sum = 0;
        int i, k;

        for (i = 0; i < st->spec->n_subs; i++)
                for (k = 0; k < st->spec->n_pubs; k++)
                        sum += __atomic_load_n(rx_counter(st, i, k), __ATOMIC_RELAXED);
        return sum;
}

/* Waits until *@word reaches @target, the run fails, or nothing was
 * received for @stall_ms (once the run has started). 0 or -1. */
static int stream_wait(Stream *st, uint32_t *word, uint32_t target, int stall_ms, const char *what) {
        uint64_t last = total_received(st);
        double last_t = now_s();

        for (;;) {
                uint32_t v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
                uint64_t got;

                if (v >= target)
                        return 0;
                if (__atomic_load_n(&st->shm->failed, __ATOMIC_SEQ_CST))
                        return -1;
                futex_wait(word, v, 100);
                got = total_received(st);
                if (got != last) {
                        last = got;
                        last_t = now_s();
                } else if ((now_s() - last_t) * 1000 > stall_ms) {
                        uint64_t want = st->spec->count * (uint64_t)st->spec->n_pubs *
                                        (uint64_t)st->spec->n_subs;
                        bench_log("%s: %s: %s: nothing for %.1f s (received %llu of %llu)",
                                  st->spec->label, st->srv->sys->name, what, stall_ms / 1000.0,
                                  (unsigned long long)got, (unsigned long long)want);
                        if (want > got && __atomic_load_n(&st->shm->go, __ATOMIC_SEQ_CST)) {
                                st->shm->lost += want - got;
                                stream_error(st, "stalled after %llu of %llu deliveries",
                                             (unsigned long long)got, (unsigned long long)want);
                        }
                        return -1;
                }
        }
}

int work_stream(const BenchServer *srv, const StreamSpec *spec, StreamResult *ret) {
        size_t n_ctr = (size_t)spec->n_subs * (size_t)spec->n_pubs;
        int procs = spec->sub_procs < 1 ? 1 : spec->sub_procs, i, failed = 0;
        pid_t *kids = calloc((size_t)(procs + spec->n_pubs), sizeof(pid_t));
        int n_kids = 0;
        double cpu0, cpu1, t_go, t_end = 0;
        Stream st = { .spec = spec, .srv = srv };
        uint8_t *base;

        if (!kids)
                bench_die("out of memory");
        if (procs > spec->n_subs)
                procs = spec->n_subs;
        memset(ret, 0, sizeof(*ret));
        topic_name(st.topic, sizeof(st.topic), spec->label);
        st.shm_size = LINE * 4 + sizeof(StreamShm) + sizeof(double) * (size_t)spec->n_subs + n_ctr * LINE;
        base = shm_new(st.shm_size);
        st.shm = (StreamShm *)base;
        st.t_end = (double *)(base + ((sizeof(StreamShm) + LINE - 1) / LINE) * LINE);
        st.counters = base + ((sizeof(StreamShm) + sizeof(double) * (size_t)spec->n_subs) / LINE + 2) * LINE;

        /* Subscribers first, each set in place before anything is sent. */
        for (i = 0; i < procs; i++) {
                int first = spec->n_subs * i / procs, last = spec->n_subs * (i + 1) / procs;
                pid_t pid = bench_fork();

                if (pid < 0)
                        bench_die("fork: %s", strerror(errno));
                if (pid == 0)
                        stream_subscribers(&st, first, last - first);
                kids[n_kids++] = pid;
        }
        if (stream_wait(&st, &st.shm->ready, (uint32_t)spec->n_subs, 60000, "subscribing") < 0)
                failed = 1;
        for (i = 0; !failed && i < spec->n_pubs; i++) {
                pid_t pid = bench_fork();

                if (pid < 0)
                        bench_die("fork: %s", strerror(errno));
                if (pid == 0)
                        stream_publisher(&st, i);
                kids[n_kids++] = pid;
        }
        if (!failed && stream_wait(&st, &st.shm->ready, (uint32_t)(spec->n_subs + spec->n_pubs), 60000,
                                   "connecting") < 0)
                failed = 1;

        cpu0 = proc_cpu_seconds(srv->pid);
        t_go = now_s();
        __atomic_store_n(&st.shm->go, 1, __ATOMIC_SEQ_CST);
        futex_wake_all(&st.shm->go);
        if (!failed && spec->count > 0 &&
            stream_wait(&st, &st.shm->done, (uint32_t)spec->n_subs, spec->stall_ms, "receiving") < 0)
                failed = 1;
        cpu1 = proc_cpu_seconds(srv->pid);
        for (i = 0; i < spec->n_subs; i++)
                if (st.t_end[i] > t_end)
                        t_end = st.t_end[i];
        if (spec->count == 0)
                t_end = now_s();

        if (failed) {
                __atomic_store_n(&st.shm->failed, 1, __ATOMIC_SEQ_CST);
                for (i = 0; i < n_kids; i++)
                        kill(kids[i], SIGKILL);
        }
        __atomic_store_n(&st.shm->go, 2, __ATOMIC_SEQ_CST);
        futex_wake_all(&st.shm->go);
        for (i = 0; i < n_kids; i++) {
                char what[96];
                snprintf(what, sizeof(what), "%s: %s: %s", spec->label, srv->sys->name,
                         i < procs ? "subscriber process" : "publisher process");
                if (bench_wait(kids[i], what, 60) < 0 && !failed) {
                        failed = 1;
                }
        }
        ret->seconds = t_end - t_go;
        ret->deliveries = (double)spec->count * spec->n_pubs * spec->n_subs;
        ret->cpu_s = cpu1 - cpu0;
        ret->lost = st.shm->lost;
        ret->misordered = st.shm->misordered;
        snprintf(ret->error, sizeof(ret->error), "%s", st.shm->error);
        shm_free(base, st.shm_size);
        free(kids);
        if (failed && !ret->lost && !ret->misordered)
                return -1;
        return failed ? -1 : 0;
}

/* ---- request/reply ---- */

typedef struct RrShm {
        uint32_t ready, stop, failed;
        double lat[];
} RrShm;

int work_rr(const BenchServer *srv, uint64_t warmup, uint64_t n_req, size_t size, RrResult *ret) {
        const BenchSystem *sys = srv->sys;
        size_t shm_size = sizeof(RrShm) + sizeof(double) * (size_t)n_req;
        RrShm *shm = shm_new(shm_size);
        pid_t resp, req;
        char topic[128];
        int ok;

        topic_name(topic, sizeof(topic), "rr");
        resp = bench_fork();
        if (resp < 0)
                bench_die("fork: %s", strerror(errno));
        if (resp == 0) {
                BenchClient *c = NULL;
                int r = sys->connect(srv->sock, "bench-responder", &c);

                if (r < 0)
                        bench_die("rr: %s: responder: connect: %s", sys->name, strerror(-r));
                if (sys->serve_echo(c, topic) < 0)
                        bench_die("rr: %s: responder: %s", sys->name, sys->last_error(c));
                __atomic_store_n(&shm->ready, 1, __ATOMIC_SEQ_CST);
                futex_wake_all(&shm->ready);
                r = sys->process(c, 0);
                while (r >= 0 && !__atomic_load_n(&shm->stop, __ATOMIC_SEQ_CST)) {
                        struct pollfd p = { .fd = sys->get_fd(c), .events = sys->get_events(c) };

                        if (poll(&p, 1, 100) > 0)
                                r = sys->process(c, p.revents);
                }
                if (r < 0)
                        bench_die("rr: %s: responder: %s", sys->name, sys->last_error(c));
                sys->close(c);
                _exit(0);
        }
        while (!__atomic_load_n(&shm->ready, __ATOMIC_SEQ_CST)) {
                futex_wait(&shm->ready, 0, 100);
                if (bench_exited(resp)) {
                        bench_wait(resp, "rr responder", 1);
                        shm_free(shm, shm_size);
                        return -1;
                }
        }
        req = bench_fork();
        if (req < 0)
                bench_die("fork: %s", strerror(errno));
        if (req == 0) {
                uint8_t *out = calloc(1, size), *in = calloc(1, size);
                BenchClient *c = NULL;
                uint64_t i;
                int r = sys->connect(srv->sock, "bench-requester", &c);

                if (r < 0)
                        bench_die("rr: %s: requester: connect: %s", sys->name, strerror(-r));
                if (!out || !in)
                        bench_die("out of memory");
                fill_pattern(out, size, 7);
                for (i = 0; i < warmup + n_req; i++) {
                        double t0, t1;

                        put_u64(out, i);
                        t0 = now_s();
                        r = sys->request(c, topic, out, size, in);
                        t1 = now_s();
                        if (r < 0)
                                bench_die("rr: %s: request %llu: %s", sys->name,
                                          (unsigned long long)i, sys->last_error(c));
                        if (memcmp(in, out, size) != 0)
                                bench_die("rr: %s: the reply to request %llu is not its echo",
                                          sys->name, (unsigned long long)i);
                        if (i >= warmup)
                                shm->lat[i - warmup] = t1 - t0;
                }
                sys->close(c);
                _exit(0);
        }
        ok = bench_wait(req, "rr requester", 600) == 0;
        __atomic_store_n(&shm->stop, 1, __ATOMIC_SEQ_CST);
        if (bench_wait(resp, "rr responder", 30) < 0)
                ok = 0;
        if (ok) {
                qsort(shm->lat, (size_t)n_req, sizeof(double), cmp_double);
                ret->p50 = quantile_sorted(shm->lat, (size_t)n_req, 0.50);
                ret->p99 = quantile_sorted(shm->lat, (size_t)n_req, 0.99);
                ret->p999 = quantile_sorted(shm->lat, (size_t)n_req, 0.999);
        }
        shm_free(shm, shm_size);
        return ok ? 0 : -1;
}

/* ---- bulk: one large message at a time ---- */

typedef struct BulkShm {
        uint32_t ready, reports, stop, pad;
        double delivered, read;
        uint64_t sum, size;
} BulkShm;

static void bulk_on_message(void *userdata, const void *data, size_t size) {
        BulkShm *shm = userdata;
        double t_deliv = now_s();
        /* Reading every byte: what an application that uses the payload
         * does, and for a mapped memfd every page faulted in. */
        uint64_t sum = sum_words(data, size);

        shm->read = now_s();
        shm->delivered = t_deliv;
        shm->sum = sum;
        shm->size = size;
        __atomic_add_fetch(&shm->reports, 1, __ATOMIC_SEQ_CST);
        futex_wake_all(&shm->reports);
}

int work_bulk_time(const BenchServer *srv, const void *data, size_t size, int mode, int msgs,
                   BulkTimes *ret) {
        const BenchSystem *sys = srv->sys;
        BulkShm *shm = shm_new(sizeof(BulkShm));
        uint64_t want_sum = sum_words(data, size);
        double deliv[BENCH_MAX_REPS], readall[BENCH_MAX_REPS];
        BenchClient *c = NULL;
        char topic[128];
        int i, r, ok = 1;
        pid_t sub;

        if (msgs > BENCH_MAX_REPS)
                msgs = BENCH_MAX_REPS;
        topic_name(topic, sizeof(topic), "bulk");
        sub = bench_fork();
        if (sub < 0)
                bench_die("fork: %s", strerror(errno));
        if (sub == 0) {
                r = sys->connect(srv->sock, "bench-bulk-sub", &c);
                if (r < 0)
                        bench_die("bulk: %s: subscriber: connect: %s", sys->name, strerror(-r));
                if (sys->subscribe(c, topic, bulk_on_message, shm) < 0)
                        bench_die("bulk: %s: subscriber: %s", sys->name, sys->last_error(c));
                __atomic_store_n(&shm->ready, 1, __ATOMIC_SEQ_CST);
                futex_wake_all(&shm->ready);
                r = sys->process(c, 0);
                while (r >= 0 && !__atomic_load_n(&shm->stop, __ATOMIC_SEQ_CST)) {
                        struct pollfd p = { .fd = sys->get_fd(c), .events = sys->get_events(c) };

                        if (poll(&p, 1, 100) > 0)
                                r = sys->process(c, p.revents);
                }
                if (r < 0)
                        bench_die("bulk: %s: subscriber: %s", sys->name, sys->last_error(c));
                sys->close(c);
                _exit(0);
        }
        while (!__atomic_load_n(&shm->ready, __ATOMIC_SEQ_CST)) {
                futex_wait(&shm->ready, 0, 100);
                if (bench_exited(sub)) {
                        bench_wait(sub, "bulk subscriber", 1);
                        shm_free(shm, sizeof(BulkShm));
                        return -1;
                }
        }
        r = sys->connect(srv->sock, "bench-bulk-pub", &c);
        if (r < 0) {
                bench_log("bulk: %s: publisher: connect: %s", sys->name, strerror(-r));
                ok = 0;
        }
        for (i = 0; ok && i < msgs; i++) {
                uint32_t before = __atomic_load_n(&shm->reports, __ATOMIC_SEQ_CST);
                int memfd = -1;
                double t0, deadline;

                if (mode == BULK_ZERO) {
                        /* Filled before the clock starts: the application
                         * produced its data in the memfd. */
                        memfd = sealed_memfd(data, size);
                        if (memfd < 0) {
                                bench_log("bulk: memfd of %zu bytes: %s", size, strerror(-memfd));
                                ok = 0;
                                break;
                        }
                }
                t0 = now_s();
                r = memfd >= 0 ? sys->publish_memfd(c, topic, memfd, size)
                               : sys->publish(c, topic, data, size, false);
                if (r >= 0)
                        r = sys->flush(c);
                if (r < 0) {
                        bench_log("bulk: %s: publish %zu bytes: %s", sys->name, size, sys->last_error(c));
                        ok = 0;
                }
                deadline = now_s() + 120;
                while (ok && __atomic_load_n(&shm->reports, __ATOMIC_SEQ_CST) == before) {
                        futex_wait(&shm->reports, before, 100);
                        if (now_s() > deadline || bench_exited(sub)) {
                                bench_log("bulk: %s: %zu bytes never arrived", sys->name, size);
                                ok = 0;
                        }
                }
                if (memfd >= 0)
                        close(memfd);
                if (!ok)
                        break;
                if (shm->size != size || shm->sum != want_sum) {
                        bench_log("bulk: %s: %zu bytes arrived wrong (%llu bytes, sum %s)", sys->name,
                                  size, (unsigned long long)shm->size,
                                  shm->sum == want_sum ? "right" : "wrong");
                        ok = 0;
                        break;
                }
                deliv[i] = shm->delivered - t0;
                readall[i] = shm->read - t0;
        }
        if (c) {
                if (ok && sys->sync(c) < 0) {
                        bench_log("bulk: %s: %s", sys->name, sys->last_error(c));
                        ok = 0;
                }
                sys->close(c);
        }
        __atomic_store_n(&shm->stop, 1, __ATOMIC_SEQ_CST);
        if (bench_wait(sub, "bulk subscriber", ok ? 30 : 1) < 0)
                ok = 0;
        if (ok) {
                ret->delivered = median_of(deliv, (size_t)msgs);
                ret->read = median_of(readall, (size_t)msgs);
        }
        shm_free(shm, sizeof(BulkShm));
        return ok ? 0 : -1;
}
