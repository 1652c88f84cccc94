/* SPDX-License-Identifier: MIT */
/*
 * ipcd-soak: the other kinds of traffic.
 *  - queue groups: jobs/0..3, two groups ("workers", "audit") whose members
 *    use different filters, plus an ungrouped witness in a member's own
 *    connection; each job must reach exactly one member of each group
 *    (shared bitmaps) and the witness;
 *  - request/reply: two echo responders (one answers some requests later,
 *    from its loop), a slow service that answers some requests after their
 *    deadline; a blocking and an asynchronous requester check every answer;
 *  - fds: pipes, eventfds and memfds carrying tokens, to one sink;
 *  - bulk payloads: automatic memfds, application memfds, inline payloads;
 *  - churn: short-lived connections that subscribe, publish, receive their
 *    own messages and retained ones, and go (the parent also kills them).
 * Every producer keeps a credit window on its receivers, so that a loss is
 * a broker or library error, never the scheduler's doing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soak.h"

#define JOB_WINDOW 32
#define FDS_WINDOW 8
#define BULK_WINDOW 4
#define BULK_THRESHOLD 65536 /* the library's default */
#define GROUP_BIT 0x80000000u

/* Waits until *@have + @window >= @want, processing @c. */
static void wait_window(ipcd_client *c, uint64_t (*have)(void), uint64_t want, unsigned window,
                        const char *what) {
        int64_t since = 0;

        while (have() + window < want) {
                if (!since)
                        since = soak_now_ms();
                else if (soak_now_ms() - since > 60000)
                        soak_die("%s: message %llu not received for 60 s", what,
                                 (unsigned long long)(want - window));
                soak_pump(c, 1);
        }
}

static void final_sync(ipcd_client *c) {
        int r = ipcd_client_sync(c);

        if (r < 0)
                soak_die("final sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
}

static void drain(ipcd_client *c) {
        final_sync(c);
        while (soak_pump(c, 0) > 0)
                ;
}

/* Reads the 8-byte token of a pipe, eventfd or memfd @fd of kind @kind
 * (0, 1, 2) and checks it is @want; for a pipe also that every write end is
 * gone. Returns true when it is. */
static bool check_token(int fd, unsigned kind, uint64_t want, const char *where) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        struct stat st;
        uint64_t got = 0;
        ssize_t n;
        int fl = fcntl(fd, F_GETFD);

        if (fl < 0 || !(fl & FD_CLOEXEC)) {
                soak_fail("%s: a received fd is not close-on-exec", where);
                return false;
        }
        if (fstat(fd, &st) < 0) {
                soak_fail("%s: fstat of a received fd: %s", where, strerror(errno));
                return false;
        }
        if ((kind == 0 && !S_ISFIFO(st.st_mode)) || (kind == 2 && !S_ISREG(st.st_mode))) {
                soak_fail("%s: fd of kind %u has mode 0%o", where, kind, (unsigned)st.st_mode);
                return false;
        }
        if (kind == 2)
                n = pread(fd, &got, sizeof(got), 0);
        else {
                if (poll(&p, 1, 5000) <= 0) {
                        soak_fail("%s: nothing to read on a received %s", where,
                                  kind ? "eventfd" : "pipe");
                        return false;
                }
                n = read(fd, &got, sizeof(got));
        }
        if (n != (ssize_t)sizeof(got) || got != want) {
                soak_fail("%s: token %llu where %llu was sent (read %zd)", where,
                          (unsigned long long)got, (unsigned long long)want, n);
                return false;
        }
        if (kind == 0) {
                char extra;
                /* The writer closed its end before sending: end of file now. */
                p.revents = 0;
                if (poll(&p, 1, 5000) <= 0 || read(fd, &extra, 1) != 0) {
                        soak_fail("%s: a received pipe is not at its end after the token "
                                  "(a write end leaked?)",
                                  where);
                        return false;
                }
        }
        return true;
}

/* A pipe (0), eventfd (1) or memfd (2) holding @token; the caller closes it. */
static int make_token_fd(unsigned kind, uint64_t token) {
        int fd, p[2];

        switch (kind) {
        case 0:
                if (pipe2(p, O_CLOEXEC) < 0)
                        soak_die("pipe2: %s", strerror(errno));
                if (write(p[1], &token, sizeof(token)) != (ssize_t)sizeof(token))
                        soak_die("write to a pipe: %s", strerror(errno));
                close(p[1]);
                return p[0];
        case 1:
                fd = eventfd(0, EFD_CLOEXEC);
                if (fd < 0)
                        soak_die("eventfd: %s", strerror(errno));
                break;
        default:
                fd = memfd_create("soak-token", MFD_CLOEXEC);
                if (fd < 0)
                        soak_die("memfd_create: %s", strerror(errno));
                break;
        }
        if (write(fd, &token, sizeof(token)) != (ssize_t)sizeof(token))
                soak_die("write a token: %s", strerror(errno));
        return fd;
}

/* A token an eventfd can hold (its counter stops below 2^64 - 1), not 0. */
static uint64_t new_token(uint64_t *rng) {
        return (soak_rand(rng) >> 2) | 1;
}

/* ---- queue groups ---- */

static uint64_t jobs_have(void) {
        uint64_t a = atomic_load(&sh->group_total[0]), b = atomic_load(&sh->group_total[1]);
        uint64_t w = atomic_load(&sh->witness);

        a = a < b ? a : b;
        return a < w ? a : w;
}

int role_jobs_pub(void) {
        uint64_t rng = opt.seed * 0x94d049bb133111ebull + 7, gseq = 0;
        uint64_t tcount[N_JOB_TOPICS] = { 0 };
        uint8_t buf[512];
        char topic[16];
        ipcd_client *c = soak_connect("soak-jobs");
        int64_t start;
        int r;

        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(c, PH_RUN);
        start = soak_now_ms();
        while (soak_phase() == PH_RUN) {
                unsigned t = (unsigned)(soak_rand(&rng) % N_JOB_TOPICS);
                size_t len = (size_t)soak_rand_range(&rng, SOAK_HDR_SIZE, sizeof(buf));
                unsigned flags = soak_rand(&rng) % 32 == 0 ? IPCD_PUBLISH_ACK : 0;

                soak_pace(c, start, gseq, opt.rate / 2 + 1);
                if (soak_phase() != PH_RUN)
                        break;
                if (gseq + 1 >= JOBS_MAX) {
                        soak_pump(c, 100);
                        continue;
                }
                snprintf(topic, sizeof(topic), "jobs/%u", t);
                if (soak_rand(&rng) % 256 == 0) {
                        /* The topic rule allows types 1 to 3 only. */
                        r = ipcd_client_publish(c, topic, 9, "x", 1, IPCD_PUBLISH_ACK);
                        if (r != -EACCES)
                                soak_fail("a publish of a type the topic rule forbids gave %s, not "
                                          "EACCES",
                                          strerror(-r));
                        atomic_fetch_add(&sh->jobs_refused, 1);
                }
                gseq++;
                tcount[t]++;
                soak_payload_fill(buf, len,
                                  (SoakHdr){ .kind = MSG_JOB,
                                             .src = R_JOBS_PUB,
                                             .topic = t,
                                             .gseq = gseq,
                                             .tseq = tcount[t] },
                                  NULL, 0, rng);
                wait_window(c, jobs_have, gseq, JOB_WINDOW, "queue groups");
                r = ipcd_client_publish(c, topic, soak_type_of(tcount[t]), buf, len, flags);
                if (r < 0)
                        soak_die("publish on %s: %s (%s)", topic, strerror(-r),
                                 ipcd_client_last_error(c));
                atomic_store(&sh->jobs_published, gseq);
        }
        final_sync(c);
        atomic_store(&sh->done[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        return 0;
}

typedef struct MemberSub {
        unsigned member;
        int group; /* 0 workers, 1 audit, -1 the ungrouped witness */
        const char *filter;
        uint32_t id;
        uint64_t last;
        bool slow;
} MemberSub;

static void on_job(ipcd_client *c, ipcd_msg *m, void *userdata) {
        MemberSub *s = userdata;
        const char *topic = ipcd_msg_get_topic(m);
        uint32_t sub = ipcd_msg_get_subscription(m);
        char why[256], want[16];
        const void *data;
        size_t size;
        SoakHdr h;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_JOB, &h, why, sizeof(why))) {
                soak_fail("job on %s: %s", topic, why);
                return;
        }
        snprintf(want, sizeof(want), "jobs/%u", h.topic);
        if (strcmp(want, topic) != 0 || !soak_filter_matches(s->filter, topic))
                soak_fail("job %llu for %s arrived on %s at '%s'", (unsigned long long)h.gseq, want,
                          topic, s->filter);
        if (ipcd_msg_get_type(m) != soak_type_of(h.tseq))
                soak_fail("job %llu has type %u", (unsigned long long)h.gseq, ipcd_msg_get_type(m));
        if (s->group < 0) {
                /* Every job, in order. */
                if (sub != s->id || (sub & GROUP_BIT))
                        soak_fail("the witness got job %llu through subscription 0x%x",
                                  (unsigned long long)h.gseq, sub);
                if (h.gseq != s->last + 1)
                        soak_fail("the witness got job %llu after job %llu",
                                  (unsigned long long)h.gseq, (unsigned long long)s->last);
                s->last = h.gseq;
                atomic_fetch_add(&sh->witness, 1);
                return;
        }
        if (sub != s->id || !(sub & GROUP_BIT))
                soak_fail("a group member (0x%x) got job %llu through subscription 0x%x", s->id,
                          (unsigned long long)h.gseq, sub);
        if (h.gseq <= s->last)
                soak_fail("member %u got job %llu after job %llu", s->member,
                          (unsigned long long)h.gseq, (unsigned long long)s->last);
        s->last = h.gseq;
        if (h.gseq == 0 || h.gseq > JOBS_MAX)
                soak_fail("job number %llu out of range", (unsigned long long)h.gseq);
        else {
                uint64_t bit = 1ull << ((h.gseq - 1) % 64);
                uint64_t old = atomic_fetch_or(&sh->group_bits[s->group][(h.gseq - 1) / 64], bit);
                if (old & bit)
                        soak_fail("job %llu reached two members of group %s",
                                  (unsigned long long)h.gseq, s->group ? "audit" : "workers");
        }
        atomic_fetch_add(&sh->job_count[s->member][s->group], 1);
        atomic_fetch_add(&sh->group_total[s->group], 1);
        if (s->slow && h.gseq % 16 == 0)
                usleep(3000);
}

int role_member(unsigned m) {
        static const struct {
                const char *filter;
                int group;
        } specs[N_GROUP_MEMBERS][2] = {
                { { "jobs/+", 0 }, { "jobs/#", -1 } },
                { { "jobs/+", 0 }, { "jobs/#", 1 } },
                { { "jobs/#", 0 }, { "jobs/+", 1 } },
        };
        static const char *const names[2] = { "workers", "audit" };
        MemberSub subs[2];
        char name[32];
        ipcd_client *c;
        unsigned i;
        int r;

        snprintf(name, sizeof(name), "soak-member%u", m);
        c = soak_connect(name);
        for (i = 0; i < 2; i++) {
                subs[i] = (MemberSub){ .member = m,
                                       .group = specs[m][i].group,
                                       .filter = specs[m][i].filter,
                                       .slow = m == 2 };
                r = ipcd_client_subscribe_full(c, subs[i].filter, NULL, 0,
                                               subs[i].group >= 0 ? names[subs[i].group] : NULL, 0,
                                               on_job, &subs[i], &subs[i].id);
                if (r < 0)
                        soak_die("subscribe '%s': %s (%s)", subs[i].filter, strerror(-r),
                                 ipcd_client_last_error(c));
        }
        atomic_store(&sh->ready[role_id], 1);
        while (soak_phase() < PH_DRAIN)
                soak_pump(c, 50);
        drain(c);
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        return 0;
}

/* ---- request/reply ---- */

/* Request flags, in SoakHdr.extra; a pipe's token is in tseq. */
#define REQ_LATE 1u /* the slow service answers after the deadline */
#define REQ_PIPE 2u /* a pipe with a token goes with it; the reply has token + 1 */
#define LATE_TIMEOUT_MS 150
#define LATE_DELAY_MS 400
#define REQ_TIMEOUT_MS 10000
#define MAX_DEFERRED 64

typedef struct Deferred {
        ipcd_msg *m;
        int64_t due;
} Deferred;

typedef struct Responder {
        unsigned which; /* 0, 1 echo; 2 the slow service */
        uint64_t rng;
        Deferred deferred[MAX_DEFERRED];
        size_t n_deferred;
} Responder;

/* Checks a request; returns false (after counting the error) when it is
 * not one this program sent. */
static bool check_request(ipcd_msg *m, SoakHdr *h) {
        const char *topic = ipcd_msg_get_topic(m);
        char why[256];
        const void *data;
        size_t size, want_fds;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_REQUEST, h, why, sizeof(why))) {
                soak_fail("request on %s: %s", topic, why);
                return false;
        }
        want_fds = (h->extra & REQ_PIPE) ? 1 : 0;
        if (ipcd_msg_get_n_fds(m) != want_fds) {
                soak_fail("request %llu on %s came with %zu fds, %zu were sent",
                          (unsigned long long)h->gseq, topic, ipcd_msg_get_n_fds(m), want_fds);
                return false;
        }
        if (want_fds && !check_token(ipcd_msg_get_fd(m, 0), 0, h->tseq, "request"))
                return false;
        if (((ipcd_msg_get_flags(m) & IPCD_MSG_BULK) != 0) != (size > BULK_THRESHOLD))
                soak_fail("request of %zu bytes with flags 0x%x", size, ipcd_msg_get_flags(m));
        return true;
}

/* Answers @m: its own payload back, type + 100, and a pipe with token + 1
 * when one came. */
static void answer(ipcd_client *c, Responder *s, ipcd_msg *m) {
        const void *data;
        size_t size;
        SoakHdr h;
        int fd = -1, r;

        data = ipcd_msg_get_data(m, &size);
        memcpy(&h, data, sizeof(h));
        if (h.extra & REQ_PIPE)
                fd = make_token_fd(0, h.tseq + 1);
        r = ipcd_msg_reply(m, ipcd_msg_get_type(m) + 100, data, size, fd >= 0 ? &fd : NULL,
                           fd >= 0 ? 1 : 0);
        if (fd >= 0)
                close(fd);
        if (r < 0)
                soak_die("reply: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        if (s->which == 2) {
                /* One verdict per reply: in time, or refused as late. */
                r = ipcd_client_sync(c);
                if (r == -ESRCH) {
                        if (!(h.extra & REQ_LATE))
                                soak_fail("a reply in time was refused: %s",
                                          ipcd_client_last_error(c));
                        atomic_fetch_add(&sh->late_esrch, 1);
                } else if (r < 0)
                        soak_die("sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
                else if (h.extra & REQ_LATE)
                        atomic_fetch_add(&sh->late_accepted, 1);
        }
}

static void on_request(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Responder *s = userdata;
        SoakHdr h;

        atomic_fetch_add(&sh->served[s->which], 1);
        if (!check_request(m, &h))
                return;
        if ((h.extra & REQ_LATE) && strcmp(ipcd_msg_get_topic(m), "svc/slow") != 0)
                soak_fail("request %llu on the wrong service %s", (unsigned long long)h.gseq,
                          ipcd_msg_get_topic(m));
        /* The slow service keeps late ones; the second echo responder keeps
         * some to answer from its loop. */
        if (((s->which == 2 && (h.extra & REQ_LATE)) ||
             (s->which == 1 && soak_rand(&s->rng) % 4 == 0)) &&
            s->n_deferred < MAX_DEFERRED) {
                ipcd_msg *kept = ipcd_msg_ref(m);
                if (!kept)
                        soak_die("out of memory");
                s->deferred[s->n_deferred++] = (Deferred){
                        .m = kept,
                        .due = soak_now_ms() + (s->which == 2 ? LATE_DELAY_MS : 0),
                };
                return;
        }
        answer(c, s, m);
}

/* Answers the kept requests that are due (all of them with @all). */
static void answer_deferred(ipcd_client *c, Responder *s, bool all) {
        int64_t now = soak_now_ms();
        size_t i = 0;

        while (i < s->n_deferred) {
                Deferred d = s->deferred[i];
                if (!all && d.due > now) {
                        i++;
                        continue;
                }
                s->deferred[i] = s->deferred[--s->n_deferred];
                answer(c, s, d.m);
                ipcd_msg_unref(d.m);
        }
}

int role_responder(unsigned which) {
        Responder *s = calloc(1, sizeof(*s));
        char name[32];
        ipcd_client *c;
        int r;

        if (!s)
                soak_die("out of memory");
        s->which = which;
        s->rng = opt.seed * 0xd6e8feb86659fd93ull + which + 31;
        snprintf(name, sizeof(name), which == 2 ? "soak-slowsvc" : "soak-echo%u", which);
        c = soak_connect(name);
        r = ipcd_client_serve(c, which == 2 ? "svc/slow" : "svc/echo/+", NULL, 0, on_request, s,
                              NULL);
        if (r < 0)
                soak_die("serve: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        atomic_store(&sh->ready[role_id], 1);
        while (soak_phase() < PH_DRAIN) {
                soak_pump(c, s->n_deferred ? 5 : 50);
                answer_deferred(c, s, false);
        }
        answer_deferred(c, s, true);
        drain(c);
        answer_deferred(c, s, true);
        final_sync(c);
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(s);
        return 0;
}

/* What a requester remembers of a request until its answer. */
typedef struct Pending {
        bool used;
        SoakHdr h; /* of the request */
        size_t size;
        uint32_t type;
} Pending;

#define MAX_PENDING 16
static Pending pending[MAX_PENDING];
static size_t n_pending;

/* Checks an answer to request @p. */
static void check_answer(Pending *p, int error, ipcd_msg *reply) {
        bool late = p->h.extra & REQ_LATE;
        char why[256];
        const void *data;
        size_t size, want_fds = (p->h.extra & REQ_PIPE) ? 1 : 0;
        SoakHdr h;

        if (error == -ETIMEDOUT && late) {
                atomic_fetch_add(&sh->req_timeout, 1);
                return;
        }
        if (error < 0) {
                soak_fail("request %llu (%s%zu bytes) failed: %s", (unsigned long long)p->h.gseq,
                          late ? "late, " : "", p->size, strerror(-error));
                return;
        }
        atomic_fetch_add(&sh->replies_received, 1);
        atomic_fetch_add(&sh->checked, 1);
        atomic_fetch_add(late ? &sh->req_late_replied : &sh->req_ok, 1);
        data = ipcd_msg_get_data(reply, &size);
        if (!soak_payload_check(data, size, MSG_REQUEST, &h, why, sizeof(why))) {
                soak_fail("reply to request %llu: %s", (unsigned long long)p->h.gseq, why);
                return;
        }
        if (h.gseq != p->h.gseq || h.sum != p->h.sum || h.src != p->h.src || size != p->size)
                soak_fail("the reply to request %llu echoes request %llu of role %u",
                          (unsigned long long)p->h.gseq, (unsigned long long)h.gseq, h.src);
        if (ipcd_msg_get_type(reply) != p->type + 100)
                soak_fail("reply of type %u to a request of type %u", ipcd_msg_get_type(reply),
                          p->type);
        if (((ipcd_msg_get_flags(reply) & IPCD_MSG_BULK) != 0) != (size > BULK_THRESHOLD))
                soak_fail("reply of %zu bytes with flags 0x%x", size, ipcd_msg_get_flags(reply));
        if (ipcd_msg_get_n_fds(reply) != want_fds)
                soak_fail("reply with %zu fds, %zu expected", ipcd_msg_get_n_fds(reply), want_fds);
        else if (want_fds) {
                if (check_token(ipcd_msg_get_fd(reply, 0), 0, p->h.tseq + 1, "reply"))
                        atomic_fetch_add(&sh->req_fds, 2);
        }
}

static void on_reply(ipcd_client *c, int error, ipcd_msg *reply, void *userdata) {
        Pending *p = userdata;

        check_answer(p, error, reply);
        p->used = false;
        n_pending--;
}

int role_requester(bool async) {
        uint64_t rng = opt.seed * 0xff51afd7ed558ccdull + (async ? 53 : 59), gseq = 0;
        size_t cap = 1u << 20;
        uint8_t *buf = malloc(cap);
        ipcd_client *c = soak_connect(async ? "soak-req-async" : "soak-req-sync");
        unsigned rate = opt.rate / 10 + 1;
        int64_t start, since;
        int r;

        if (!buf)
                soak_die("out of memory");
        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(c, PH_RUN);
        start = soak_now_ms();
        while (soak_phase() == PH_RUN) {
                unsigned roll = (unsigned)(soak_rand(&rng) % 100), extra = 0;
                char topic[32];
                size_t size = (size_t)soak_rand_range(&rng, SOAK_HDR_SIZE, 2048);
                uint32_t type = (uint32_t)soak_rand_range(&rng, 1, 50);
                int timeout = REQ_TIMEOUT_MS, fd = -1;
                uint64_t token = new_token(&rng);
                Pending *p = NULL;

                soak_pace(c, start, gseq, rate);
                if (soak_phase() != PH_RUN)
                        break;
                snprintf(topic, sizeof(topic), "svc/echo/%u", (unsigned)(soak_rand(&rng) % 4));
                if (!async) {
                        if (roll < 10)
                                size = (size_t)soak_rand_range(&rng, BULK_THRESHOLD + 1, 300 << 10);
                        else if (roll < 20)
                                snprintf(topic, sizeof(topic), "svc/none/%u", roll);
                        else if (roll < 40)
                                snprintf(topic, sizeof(topic), "svc/slow");
                } else {
                        if (roll < 50)
                                extra = REQ_PIPE;
                        else if (roll < 60)
                                size = (size_t)soak_rand_range(&rng, BULK_THRESHOLD + 1, cap);
                        else if (roll < 85) {
                                snprintf(topic, sizeof(topic), "svc/slow");
                                extra = REQ_LATE;
                                timeout = LATE_TIMEOUT_MS;
                        } else
                                snprintf(topic, sizeof(topic), "svc/slow");
                }
                gseq++;
                soak_payload_fill(buf, size,
                                  (SoakHdr){ .kind = MSG_REQUEST,
                                             .src = role_id,
                                             .gseq = gseq,
                                             .tseq = token,
                                             .extra = extra },
                                  NULL, 0, rng);
                if (!async) {
                        ipcd_msg *reply = NULL;
                        Pending one = { .used = true, .size = size, .type = type };

                        memcpy(&one.h, buf, sizeof(one.h));
                        r = ipcd_client_request_sync(c, topic, type, buf, size, timeout, &reply);
                        if (strncmp(topic, "svc/none", 8) == 0) {
                                if (r != -EHOSTUNREACH)
                                        soak_fail("a request nobody serves gave %s, not "
                                                  "EHOSTUNREACH",
                                                  strerror(-r));
                                else
                                        atomic_fetch_add(&sh->req_no_responders, 1);
                        } else {
                                atomic_fetch_add(&sh->req_sent, 1);
                                check_answer(&one, r, reply);
                        }
                        ipcd_msg_unref(reply);
                        /* What arrived meanwhile (nothing is expected). */
                        soak_pump(c, 0);
                        continue;
                }
                /* Asynchronous: at most MAX_PENDING at a time. */
                while (n_pending >= MAX_PENDING)
                        soak_pump(c, 10);
                for (size_t i = 0; i < MAX_PENDING; i++)
                        if (!pending[i].used) {
                                p = &pending[i];
                                break;
                        }
                *p = (Pending){ .used = true, .size = size, .type = type };
                memcpy(&p->h, buf, sizeof(p->h));
                if (extra & REQ_PIPE)
                        fd = make_token_fd(0, token);
                r = ipcd_client_request(c, topic, type, buf, size, fd >= 0 ? &fd : NULL,
                                        fd >= 0 ? 1 : 0, timeout, on_reply, p);
                if (fd >= 0)
                        close(fd);
                if (r < 0)
                        soak_die("request: %s (%s)", strerror(-r), ipcd_client_last_error(c));
                n_pending++;
                atomic_fetch_add(&sh->req_sent, 1);
                soak_pump(c, 0);
        }
        /* Every request answered, by a reply or the broker. */
        since = soak_now_ms();
        while (n_pending > 0) {
                if (soak_now_ms() - since > 60000)
                        soak_die("%zu requests without an answer for 60 s", n_pending);
                soak_pump(c, 20);
        }
        final_sync(c);
        atomic_store(&sh->done[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(buf);
        return 0;
}

/* ---- fds ---- */

static uint64_t fds_have(void) {
        return atomic_load(&sh->fds_received);
}

/*
 * The end of a publisher of fds or bulk payloads: everything sent and
 * handled, and no fd left behind but the one the library keeps (the last
 * bulk memfd it made stays open until the next one or the unref).
 */
static void publisher_done(ipcd_client *c, int base_fds, const char *who) {
        int r, now_fds;

        final_sync(c);
        r = ipcd_client_flush(c);
        if (r < 0)
                soak_die("flush: %s", strerror(-r));
        now_fds = soak_count_fds();
        if (now_fds < base_fds || now_fds > base_fds + 1)
                soak_fail("the %s publisher has %d fds open after the run, %d before (the "
                          "library keeps fds it sent?)",
                          who, now_fds, base_fds);
}

int role_fds_pub(void) {
        uint64_t rng = opt.seed * 0xc4ceb9fe1a85ec53ull + 71, gseq = 0;
        size_t cap = 256 << 10;
        uint8_t *buf = malloc(cap);
        ipcd_client *c = soak_connect("soak-fds-pub");
        int base_fds = soak_count_fds();
        int64_t start;
        int r;

        if (!buf)
                soak_die("out of memory");
        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(c, PH_RUN);
        start = soak_now_ms();
        while (soak_phase() == PH_RUN) {
                bool bulk = soak_rand(&rng) % 8 == 0;
                unsigned n = (unsigned)soak_rand_range(&rng, 1, 4), i;
                uint64_t base = new_token(&rng) & ~(uint64_t)0xff;
                size_t size = bulk ? (size_t)soak_rand_range(&rng, BULK_THRESHOLD + 1, cap)
                                   : (size_t)soak_rand_range(&rng, SOAK_HDR_SIZE + 8, 1024);
                uint8_t kinds[8] = { (uint8_t)n };
                unsigned flags = 0, roll = (unsigned)(soak_rand(&rng) % 16);
                int fds[4];

                soak_pace(c, start, gseq, opt.rate / 10 + 1);
                if (soak_phase() != PH_RUN)
                        break;
                for (i = 0; i < n; i++) {
                        kinds[1 + i] = (uint8_t)(soak_rand(&rng) % 3);
                        fds[i] = make_token_fd(kinds[1 + i], base + i);
                }
                gseq++;
                soak_payload_fill(buf, size,
                                  (SoakHdr){ .kind = MSG_FDS,
                                             .src = R_FDS_PUB,
                                             .topic = bulk,
                                             .gseq = gseq,
                                             .extra = base },
                                  kinds, sizeof(kinds), rng);
                wait_window(c, fds_have, gseq, FDS_WINDOW, "fds");
                if (roll == 0)
                        flags = IPCD_PUBLISH_ACK;
                else if (roll < 4)
                        flags = IPCD_PUBLISH_MORE;
                r = ipcd_client_publish_fds(c, bulk ? "fds/bulk" : "fds/pipe", 1, buf, size, fds, n,
                                            flags);
                for (i = 0; i < n; i++)
                        close(fds[i]);
                if (r < 0)
                        soak_die("publish with %u fds: %s (%s)", n, strerror(-r),
                                 ipcd_client_last_error(c));
                atomic_store(&sh->fds_published, gseq);
        }
        publisher_done(c, base_fds, "fds");
        atomic_store(&sh->done[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(buf);
        return 0;
}

static uint64_t fds_last;

static void on_fds(ipcd_client *c, ipcd_msg *m, void *userdata) {
        const char *topic = ipcd_msg_get_topic(m);
        const uint8_t *data;
        char why[256];
        size_t size, i, n;
        SoakHdr h;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_FDS, &h, why, sizeof(why))) {
                soak_fail("fds message on %s: %s", topic, why);
                return;
        }
        if (h.gseq != fds_last + 1)
                soak_fail("fds message %llu after %llu", (unsigned long long)h.gseq,
                          (unsigned long long)fds_last);
        fds_last = h.gseq;
        atomic_fetch_add(&sh->fds_received, 1);
        if (strcmp(topic, h.topic ? "fds/bulk" : "fds/pipe") != 0)
                soak_fail("fds message for topic %u on %s", h.topic, topic);
        if (((ipcd_msg_get_flags(m) & IPCD_MSG_BULK) != 0) != (size > BULK_THRESHOLD))
                soak_fail("fds message of %zu bytes with flags 0x%x", size, ipcd_msg_get_flags(m));
        n = data[SOAK_HDR_SIZE];
        if (ipcd_msg_get_n_fds(m) != n) {
                soak_fail("fds message %llu with %zu fds, %zu were sent",
                          (unsigned long long)h.gseq, ipcd_msg_get_n_fds(m), n);
                return;
        }
        for (i = 0; i < n; i++) {
                unsigned kind = data[SOAK_HDR_SIZE + 1 + i];
                if (kind < 3 && check_token(ipcd_msg_get_fd(m, i), kind, h.extra + i, topic))
                        atomic_fetch_add(&sh->fds_passed[kind], 1);
        }
}

int role_fds_sink(void) {
        ipcd_client *c = soak_connect("soak-fds-sink");
        int base_fds, now_fds, r;

        r = ipcd_client_subscribe(c, "fds/#", NULL, 0, on_fds, NULL, NULL);
        if (r < 0)
                soak_die("subscribe fds/#: %s", strerror(-r));
        base_fds = soak_count_fds();
        atomic_store(&sh->ready[role_id], 1);
        while (soak_phase() < PH_DRAIN)
                soak_pump(c, 50);
        drain(c);
        if (fds_last != atomic_load(&sh->fds_published))
                soak_fail("the fds sink got %llu messages, %llu were published",
                          (unsigned long long)fds_last,
                          (unsigned long long)atomic_load(&sh->fds_published));
        now_fds = soak_count_fds();
        if (now_fds != base_fds)
                soak_fail("the fds sink has %d fds open after the run, %d before (received fds "
                          "not closed?)",
                          now_fds, base_fds);
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        return 0;
}

/* ---- bulk ---- */

enum { BULK_AUTO, BULK_MEMFD, BULK_INLINE, BULK_TINY, N_BULK_TOPICS };
static const char *const bulk_topics[N_BULK_TOPICS] = { "bulk/auto", "bulk/memfd", "bulk/inline",
                                                        "bulk/tiny" };
#define BULK_MAX (8u << 20)

static uint64_t bulk_have(void) {
        uint64_t a = atomic_load(&sh->bulk_received[0]), b = atomic_load(&sh->bulk_received[1]);
        return a < b ? a : b;
}

/* A size from @lo to @hi, spread evenly over the powers of two. */
static size_t log_size(uint64_t *rng, size_t lo, size_t hi) {
        unsigned bits_lo = 63 - (unsigned)__builtin_clzll(lo),
                 bits_hi = 63 - (unsigned)__builtin_clzll(hi);
        unsigned b = (unsigned)soak_rand_range(rng, bits_lo, bits_hi);
        size_t top = (size_t)1 << (b + 1);

        return (size_t)soak_rand_range(rng, lo > ((size_t)1 << b) ? lo : (size_t)1 << b,
                                       hi < top ? hi : top - 1);
}

/* Publishes @size bytes from an application memfd. */
static int publish_own_memfd(ipcd_client *c, const char *topic, uint32_t type, SoakHdr h,
                             size_t size, uint64_t seed) {
        int fd = memfd_create("soak-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING), r;
        void *map;

        if (fd < 0)
                soak_die("memfd_create: %s", strerror(errno));
        if (ftruncate(fd, (off_t)size) < 0)
                soak_die("ftruncate: %s", strerror(errno));
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                soak_die("mmap: %s", strerror(errno));
        soak_payload_fill(map, size, h, NULL, 0, seed);
        /* Sealing needs the writable mapping gone. */
        munmap(map, size);
        r = ipcd_client_publish_memfd(c, topic, type, fd, size, NULL, 0, 0);
        close(fd);
        return r;
}

int role_bulk_pub(void) {
        uint64_t rng = opt.seed * 0x2545f4914f6cdd1dull + 83, gseq = 0;
        uint8_t *buf = malloc(BULK_MAX);
        ipcd_client *c = soak_connect("soak-bulk-pub");
        int base_fds = soak_count_fds();
        int64_t start;
        int r;

        if (!buf)
                soak_die("out of memory");
        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(c, PH_RUN);
        start = soak_now_ms();
        while (soak_phase() == PH_RUN) {
                unsigned t = (unsigned)(soak_rand(&rng) % N_BULK_TOPICS);
                size_t size;
                bool bulk;
                SoakHdr h;

                soak_pace(c, start, gseq, opt.bulk_rate);
                if (soak_phase() != PH_RUN)
                        break;
                switch (t) {
                case BULK_AUTO:
                        size = log_size(&rng, BULK_THRESHOLD + 1, 4u << 20);
                        bulk = true;
                        break;
                case BULK_MEMFD:
                        size = log_size(&rng, SOAK_HDR_SIZE, BULK_MAX);
                        bulk = true;
                        break;
                case BULK_INLINE:
                        size = log_size(&rng, SOAK_HDR_SIZE, BULK_THRESHOLD);
                        bulk = false;
                        break;
                default:
                        size = (size_t)soak_rand_range(&rng, SOAK_HDR_SIZE, 4096);
                        bulk = true;
                        break;
                }
                gseq++;
                h = (SoakHdr){
                        .kind = MSG_BULK, .src = R_BULK_PUB, .topic = t, .gseq = gseq, .extra = bulk
                };
                wait_window(c, bulk_have, gseq, BULK_WINDOW, "bulk");
                if (t == BULK_MEMFD)
                        r = publish_own_memfd(c, bulk_topics[t], 1, h, size, rng);
                else {
                        soak_payload_fill(buf, size, h, NULL, 0, rng);
                        if (t == BULK_TINY)
                                ipcd_client_set_bulk_threshold(c, 0);
                        r = ipcd_client_publish(c, bulk_topics[t], 1, buf, size,
                                                soak_rand(&rng) % 8 ? 0 : IPCD_PUBLISH_ACK);
                        ipcd_client_set_bulk_threshold(c, BULK_THRESHOLD);
                }
                if (r < 0)
                        soak_die("publish %zu bytes on %s: %s (%s)", size, bulk_topics[t],
                                 strerror(-r), ipcd_client_last_error(c));
                atomic_store(&sh->bulk_published, gseq);
                atomic_fetch_add(&sh->bulk_bytes_published, size);
        }
        publisher_done(c, base_fds, "bulk");
        atomic_store(&sh->done[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(buf);
        return 0;
}

typedef struct BulkTrack {
        unsigned sub;
        const char *filter;
        bool primary, all; /* counts; sees every bulk message */
        uint64_t last;
} BulkTrack;

static void on_bulk(ipcd_client *c, ipcd_msg *m, void *userdata) {
        BulkTrack *t = userdata;
        const char *topic = ipcd_msg_get_topic(m);
        unsigned flags = ipcd_msg_get_flags(m);
        char why[256];
        const void *data;
        size_t size;
        SoakHdr h;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_BULK, &h, why, sizeof(why))) {
                soak_fail("bulk on %s at '%s': %s", topic, t->filter, why);
                return;
        }
        if (h.topic >= N_BULK_TOPICS || strcmp(topic, bulk_topics[h.topic]) != 0 ||
            !soak_filter_matches(t->filter, topic))
                soak_fail("bulk message for topic %u on %s at '%s'", h.topic, topic, t->filter);
        if (((flags & IPCD_MSG_BULK) != 0) != (h.extra != 0))
                soak_fail("bulk message of %zu bytes on %s: flags 0x%x", size, topic, flags);
        if (h.gseq <= t->last || (t->all && h.gseq != t->last + 1))
                soak_fail("bulk message %llu after %llu at '%s'", (unsigned long long)h.gseq,
                          (unsigned long long)t->last, t->filter);
        t->last = h.gseq;
        if (t->primary) {
                atomic_fetch_add(&sh->bulk_received[t->sub], 1);
                if (flags & IPCD_MSG_BULK)
                        atomic_fetch_add(&sh->bulk_bytes_received, size);
                else
                        atomic_fetch_add(&sh->inline_received, 1);
        }
}

int role_bulk_sub(unsigned i) {
        BulkTrack tracks[2] = {
                { .sub = i, .filter = i == 0 ? "bulk/#" : "bulk/+", .primary = true, .all = true },
                { .sub = i, .filter = i == 0 ? "bulk/inline" : "bulk/memfd" },
        };
        char name[32];
        ipcd_client *c;
        unsigned k;
        int r;

        snprintf(name, sizeof(name), "soak-bulk-sub%u", i);
        c = soak_connect(name);
        for (k = 0; k < 2; k++) {
                r = ipcd_client_subscribe(c, tracks[k].filter, NULL, 0, on_bulk, &tracks[k], NULL);
                if (r < 0)
                        soak_die("subscribe %s: %s", tracks[k].filter, strerror(-r));
        }
        atomic_store(&sh->ready[role_id], 1);
        while (soak_phase() < PH_DRAIN)
                soak_pump(c, 50);
        drain(c);
        if (tracks[0].last != atomic_load(&sh->bulk_published))
                soak_fail("'%s' got %llu bulk messages, %llu were published", tracks[0].filter,
                          (unsigned long long)tracks[0].last,
                          (unsigned long long)atomic_load(&sh->bulk_published));
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        return 0;
}

/* ---- churn ---- */

typedef struct Churn {
        unsigned slot;
        uint64_t cycle;
        uint64_t got; /* own messages received this cycle */
} Churn;

static void on_churn_own(ipcd_client *c, ipcd_msg *m, void *userdata) {
        Churn *ch = userdata;
        const char *topic = ipcd_msg_get_topic(m);
        char why[256];
        const void *data;
        size_t size;
        SoakHdr h;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_CHURN, &h, why, sizeof(why))) {
                soak_fail("churn message on %s: %s", topic, why);
                return;
        }
        /* A killed predecessor's last frames may still be routed after
         * this connection subscribed; they are no loss and no error. */
        if (h.src == ch->slot && h.extra >> 32 != ch->cycle >> 32)
                return;
        if (h.src != ch->slot || h.extra != ch->cycle || h.gseq != ch->got + 1)
                soak_fail("churn %u cycle %llu: got message %llu of slot %u cycle %llu after %llu",
                          ch->slot, (unsigned long long)ch->cycle, (unsigned long long)h.gseq,
                          h.src, (unsigned long long)h.extra, (unsigned long long)ch->got);
        ch->got = h.gseq;
        if (((ipcd_msg_get_flags(m) & IPCD_MSG_BULK) != 0) != (size > BULK_THRESHOLD))
                soak_fail("churn message of %zu bytes with flags 0x%x", size,
                          ipcd_msg_get_flags(m));
        if (ipcd_msg_get_n_fds(m) != (h.tseq ? 1u : 0u))
                soak_fail("churn message with %zu fds", ipcd_msg_get_n_fds(m));
        else if (h.tseq)
                check_token(ipcd_msg_get_fd(m, 0), 0, h.tseq, topic);
}

static void on_retained(ipcd_client *c, ipcd_msg *m, void *userdata) {
        const char *topic = ipcd_msg_get_topic(m);
        char why[256];
        const void *data;
        size_t size;
        SoakHdr h;

        data = ipcd_msg_get_data(m, &size);
        if (size == 0)
                return; /* a clearing publish */
        if (!soak_payload_check(data, size, MSG_RETAINED, &h, why, sizeof(why))) {
                soak_fail("retained message on %s: %s", topic, why);
                return;
        }
        if (ipcd_msg_get_n_fds(m) != (h.tseq ? 1u : 0u))
                soak_fail("retained message with %zu fds", ipcd_msg_get_n_fds(m));
        else if (h.tseq)
                check_token(ipcd_msg_get_fd(m, 0), 2, h.tseq, topic);
        if (ipcd_msg_get_flags(m) & IPCD_MSG_RETAINED)
                atomic_fetch_add(&sh->churn_retained, 1);
}

/* One connection's life; returns when the cycle is over. */
static void churn_cycle(Churn *ch, uint64_t *rng, uint8_t *buf, size_t cap) {
        char name[32], filter[32], topic[32];
        unsigned k = (unsigned)soak_rand_range(rng, 1, 16), j;
        ipcd_client *c;
        uint32_t ids[2];
        size_t n_ids = 0;
        int64_t deadline;
        int r;

        snprintf(name, sizeof(name), "soak-churn%u", ch->slot);
        c = soak_connect(name);
        ch->got = 0;
        snprintf(filter, sizeof(filter), "churn/%u/+", ch->slot);
        r = ipcd_client_subscribe(c, filter, NULL, 0, on_churn_own, ch, &ids[n_ids++]);
        if (r < 0)
                soak_die("subscribe %s: %s", filter, strerror(-r));
        if (soak_rand(rng) % 2) {
                r = ipcd_client_subscribe(c, "retained/+", NULL, 0, on_retained, NULL,
                                          &ids[n_ids++]);
                if (r < 0)
                        soak_die("subscribe retained/+: %s", strerror(-r));
        }
        for (j = 0; j < k; j++) {
                unsigned roll = (unsigned)(soak_rand(rng) % 16), flags = 0;
                size_t size = roll == 0 ? (size_t)soak_rand_range(rng, BULK_THRESHOLD + 1, cap)
                                        : (size_t)soak_rand_range(rng, SOAK_HDR_SIZE, 1024);
                uint64_t token = roll == 1 || roll == 2 ? new_token(rng) : 0;
                int fd = token ? make_token_fd(0, token) : -1;

                snprintf(topic, sizeof(topic), "churn/%u/%u", ch->slot, j % 4);
                soak_payload_fill(buf, size,
                                  (SoakHdr){ .kind = MSG_CHURN,
                                             .src = ch->slot,
                                             .topic = j % 4,
                                             .gseq = j + 1,
                                             .tseq = token,
                                             .extra = ch->cycle },
                                  NULL, 0, *rng);
                if (roll == 3)
                        flags = IPCD_PUBLISH_ACK;
                else if (roll < 8 && j + 1 < k)
                        flags = IPCD_PUBLISH_MORE;
                r = ipcd_client_publish_fds(c, topic, 1, buf, size, fd >= 0 ? &fd : NULL,
                                            fd >= 0 ? 1 : 0, flags);
                if (fd >= 0)
                        close(fd);
                if (r < 0)
                        soak_die("publish on %s: %s (%s)", topic, strerror(-r),
                                 ipcd_client_last_error(c));
                atomic_fetch_add(&sh->churn_msgs, 1);
        }
        if (soak_rand(rng) % 4 == 0) {
                /* A retained message, sometimes with a memfd token. */
                uint64_t token = soak_rand(rng) % 2 ? new_token(rng) : 0;
                int fd = token ? make_token_fd(2, token) : -1;
                size_t size = (size_t)soak_rand_range(rng, SOAK_HDR_SIZE, 512);

                snprintf(topic, sizeof(topic), "retained/%u", ch->slot);
                soak_payload_fill(buf, size,
                                  (SoakHdr){ .kind = MSG_RETAINED,
                                             .src = ch->slot,
                                             .gseq = ch->cycle,
                                             .tseq = token },
                                  NULL, 0, *rng);
                r = ipcd_client_publish_fds(c, topic, 1, buf, size, fd >= 0 ? &fd : NULL,
                                            fd >= 0 ? 1 : 0,
                                            IPCD_PUBLISH_RETAIN | IPCD_PUBLISH_ACK);
                if (fd >= 0)
                        close(fd);
                if (r < 0)
                        soak_fail("retained publish on %s: %s (%s)", topic, strerror(-r),
                                  ipcd_client_last_error(c));
        }
        deadline = soak_now_ms() + 20000;
        while (ch->got < k) {
                if (soak_now_ms() > deadline) {
                        soak_fail("churn %u cycle %llu: %llu of its %u messages came back in 20 s",
                                  ch->slot, (unsigned long long)ch->cycle,
                                  (unsigned long long)ch->got, k);
                        break;
                }
                soak_pump(c, 20);
        }
        if (soak_rand(rng) % 8 == 0) {
                r = ipcd_client_admin(c, "status", NULL, NULL);
                if (r < 0)
                        soak_fail("admin status: %s", strerror(-r));
        }
        if (soak_rand(rng) % 3 == 0)
                while (n_ids > 0) {
                        r = ipcd_client_unsubscribe(c, ids[--n_ids]);
                        if (r < 0)
                                soak_fail("unsubscribe: %s", strerror(-r));
                }
        ipcd_client_unref(c);
        atomic_fetch_add(&sh->churn_cycles, 1);
}

int role_churn(unsigned slot, unsigned generation) {
        uint64_t rng = (opt.seed + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)slot << 32 | generation);
        size_t cap = 256 << 10;
        uint8_t *buf = malloc(cap);
        Churn ch = { .slot = slot };

        if (!buf)
                soak_die("out of memory");
        if (rng == 0)
                rng = 1;
        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(NULL, PH_RUN);
        while (soak_phase() == PH_RUN) {
                ch.cycle = (uint64_t)generation << 32 | (ch.cycle + 1);
                churn_cycle(&ch, &rng, buf, cap);
                /* Some tens of connections a second per slot: churn, not
                 * a flood that starves the other roles. */
                usleep((useconds_t)soak_rand_range(&rng, 5000, 50000));
        }
        free(buf);
        return 0;
}
