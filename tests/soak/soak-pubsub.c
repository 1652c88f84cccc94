/* SPDX-License-Identifier: MIT */
/*
 * ipcd-soak: publish/subscribe under the four overflow policies.
 *
 * Publishers P0..P3 publish on soak/<policy>/<k>/<leaf> (P0 and P1 on the
 * drop-new, drop-old and disconnect topics, P2 on block and drop-new, P3 on
 * block). Two fast subscribers take every one of those topics, through
 * overlapping wildcard filters (and one with a type selection), and must
 * lose nothing: each publisher stays at most PUB_WINDOW messages ahead of
 * what both have received (a credit window kept in the shared mapping), so
 * their queues never fill, whatever the scheduler does. One slow
 * subscriber per policy pauses and sleeps: under drop-new and drop-old it
 * loses messages, and what it misses must equal the broker's drop counters;
 * under block it loses nothing (the publishers wait); under disconnect it
 * is disconnected, reconnects, and must see no gap within a connection.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "soak.h"

#define PUB_WINDOW 48 /* messages a publisher may be ahead of the fast subscribers */
#define PUB_MAX_LEN 8192

/* What one subscription has seen. */
typedef struct Track {
        const char *filter;
        unsigned types;   /* mask of the selected types (bit T: type T) */
        bool lossless;    /* a gap is an integrity error */
        bool primary;     /* counts deliveries (one per message) and credits */
        bool restartable; /* after a reconnection, every stream starts afresh */
        int fast;         /* index into fast_seen, or -1 */
        uint32_t id;
        uint64_t last[N_PUBS][N_TOPICS]; /* last tseq */
        bool fresh[N_PUBS][N_TOPICS];
        uint64_t last_gseq[N_PUBS];
        uint64_t last_bseq[N_TOPICS];
        bool bfresh[N_TOPICS];
        uint64_t received[N_PUBS][N_TOPICS];
        uint64_t gaps; /* messages missing inside the streams */
} Track;

static void track_restart(Track *t) {
        unsigned p, i;

        for (p = 0; p < N_PUBS; p++)
                for (i = 0; i < N_TOPICS; i++)
                        t->fresh[p][i] = true;
        for (i = 0; i < N_TOPICS; i++)
                t->bfresh[i] = true;
}

/* Checks one delivery to @t and accounts for it. */
static void track_message(Track *t, ipcd_msg *m) {
        const char *topic = ipcd_msg_get_topic(m);
        uint32_t type = ipcd_msg_get_type(m);
        uint64_t bseq = ipcd_msg_get_seq(m);
        char why[256];
        const void *data;
        size_t size;
        SoakHdr h;
        int ti;

        atomic_fetch_add(&sh->checked, 1);
        data = ipcd_msg_get_data(m, &size);
        if (!soak_payload_check(data, size, MSG_PUBSUB, &h, why, sizeof(why))) {
                soak_fail("'%s' on %s: %s", t->filter, topic, why);
                return;
        }
        ti = soak_topic_index(topic);
        if (ti < 0 || (unsigned)ti != h.topic || h.src >= N_PUBS) {
                soak_fail("'%s': a message for topic %u from P%u arrived on '%s'", t->filter,
                          h.topic, h.src, topic);
                return;
        }
        if (!soak_filter_matches(t->filter, topic))
                soak_fail("'%s' was given a message on '%s', which it does not match", t->filter,
                          topic);
        if (type != soak_type_of(h.tseq) || !(t->types & (1u << type)))
                soak_fail("'%s' (types 0x%x) was given type %u for a message of type %u on %s",
                          t->filter, t->types, type, soak_type_of(h.tseq), topic);
        if (ipcd_msg_get_flags(m) != 0)
                soak_fail("'%s': unexpected flags 0x%x on %s", t->filter, ipcd_msg_get_flags(m),
                          topic);
        if (ipcd_msg_get_sender_pid(m) != atomic_load(&sh->pid[R_PUB0 + h.src]) ||
            ipcd_msg_get_sender_uid(m) != getuid())
                soak_fail("'%s': P%u's message says it was sent by pid %d uid %d", t->filter, h.src,
                          (int)ipcd_msg_get_sender_pid(m), (int)ipcd_msg_get_sender_uid(m));

        /* Per publisher: strictly increasing (no duplicate, no reordering). */
        if (h.gseq <= t->last_gseq[h.src]) {
                soak_fail("'%s': P%u's message %llu came after its message %llu (duplicate or "
                          "out of order) on %s",
                          t->filter, h.src, (unsigned long long)h.gseq,
                          (unsigned long long)t->last_gseq[h.src], topic);
                return;
        }
        t->last_gseq[h.src] = h.gseq;

        /* Per publisher and topic: the gaps are lost messages. */
        if (h.tseq <= t->last[h.src][ti]) {
                soak_fail("'%s': P%u's message %llu on %s repeated", t->filter, h.src,
                          (unsigned long long)h.tseq, topic);
                return;
        }
        if (t->fresh[h.src][ti])
                t->fresh[h.src][ti] = false;
        else {
                uint64_t missing = soak_count_types(h.tseq - 1, t->types) -
                                   soak_count_types(t->last[h.src][ti], t->types);
                if (missing > 0) {
                        if (t->lossless)
                                soak_fail("'%s' lost %llu of P%u's messages on %s (%llu to %llu)",
                                          t->filter, (unsigned long long)missing, h.src, topic,
                                          (unsigned long long)t->last[h.src][ti] + 1,
                                          (unsigned long long)h.tseq - 1);
                        t->gaps += missing;
                }
        }
        t->last[h.src][ti] = h.tseq;

        /* The broker's own sequence on the topic. */
        if (bseq <= t->last_bseq[ti] && !t->bfresh[ti])
                soak_fail("'%s': the broker's sequence on %s went from %llu to %llu", t->filter,
                          topic, (unsigned long long)t->last_bseq[ti], (unsigned long long)bseq);
        else if (t->lossless && t->types == TYPES_ALL && !t->bfresh[ti] &&
                 bseq != t->last_bseq[ti] + 1)
                soak_fail("'%s': the broker's sequence on %s jumped from %llu to %llu", t->filter,
                          topic, (unsigned long long)t->last_bseq[ti], (unsigned long long)bseq);
        t->bfresh[ti] = false;
        t->last_bseq[ti] = bseq;

        t->received[h.src][ti]++;
        if (t->primary) {
                atomic_fetch_add(&sh->delivered, 1);
                if (t->fast >= 0)
                        atomic_store(&sh->fast_seen[t->fast][h.src], h.gseq);
        }
}

/* After the drain: what @t should have received against what it did.
 * Returns the messages missing in all; per topic into @ret_missing (may be
 * NULL). */
static uint64_t track_account(Track *t, uint64_t *ret_missing, uint64_t *ret_received) {
        uint64_t total = 0, received = 0;
        unsigned p, i;

        for (i = 0; i < N_TOPICS; i++) {
                uint64_t topic_missing = 0;

                if (!soak_filter_matches(t->filter, soak_topic_name(i)))
                        continue;
                for (p = 0; p < N_PUBS; p++) {
                        uint64_t want =
                                soak_count_types(atomic_load(&sh->pub_count[p][i]), t->types);

                        received += t->received[p][i];
                        if (t->received[p][i] > want) {
                                soak_fail("'%s' received %llu of P%u's messages on %s, %llu were "
                                          "published",
                                          t->filter, (unsigned long long)t->received[p][i], p,
                                          soak_topic_name(i), (unsigned long long)want);
                                continue;
                        }
                        topic_missing += want - t->received[p][i];
                }
                if (ret_missing)
                        ret_missing[i] = topic_missing;
                total += topic_missing;
        }
        if (t->lossless && total > 0)
                soak_fail("'%s' lost %llu messages in all", t->filter, (unsigned long long)total);
        if (ret_received)
                *ret_received = received;
        return total;
}

static void on_track(ipcd_client *c, ipcd_msg *m, void *userdata) {
        track_message(userdata, m);
}

static void subscribe_track(ipcd_client *c, Track *t) {
        uint32_t types[N_TYPES];
        size_t n = 0;
        unsigned ty;
        int r;

        if (t->types != TYPES_ALL)
                for (ty = 1; ty <= N_TYPES; ty++)
                        if (t->types & (1u << ty))
                                types[n++] = ty;
        r = ipcd_client_subscribe(c, t->filter, n ? types : NULL, n, on_track, t, &t->id);
        if (r < 0)
                soak_die("subscribe '%s': %s (%s)", t->filter, strerror(-r),
                         ipcd_client_last_error(c));
}

/* Dispatches everything the broker sent before now: a PING round trip,
 * then what it buffered. */
static void drain_client(ipcd_client *c) {
        int r = ipcd_client_sync(c);

        if (r < 0)
                soak_die("sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        while (soak_pump(c, 0) > 0)
                ;
}

/* ---- publishers ---- */

/* Waits until both fast subscribers have P@p's message @gseq - PUB_WINDOW. */
static void wait_credit(ipcd_client *c, unsigned p, uint64_t gseq) {
        int64_t since = 0;

        for (;;) {
                uint64_t low = UINT64_MAX;
                unsigned f;

                for (f = 0; f < N_FAST; f++) {
                        uint64_t s = atomic_load(&sh->fast_seen[f][p]);
                        low = s < low ? s : low;
                }
                if (low + PUB_WINDOW >= gseq)
                        return;
                if (!since)
                        since = soak_now_ms();
                else if (soak_now_ms() - since > 60000)
                        soak_die("the fast subscribers have not received message %llu for 60 s",
                                 (unsigned long long)(gseq - PUB_WINDOW));
                soak_pump(c, 1);
        }
}

static size_t pick_len(uint64_t *rng) {
        uint64_t roll = soak_rand(rng) % 100;

        if (roll < 80)
                return (size_t)soak_rand_range(rng, SOAK_HDR_SIZE, 256);
        if (roll < 98)
                return (size_t)soak_rand_range(rng, 257, 2048);
        return (size_t)soak_rand_range(rng, 2049, PUB_MAX_LEN);
}

int role_publisher(unsigned p) {
        static const unsigned masks[N_PUBS] = {
                1u << POL_DROPNEW | 1u << POL_DROPOLD | 1u << POL_DISC,
                1u << POL_DROPNEW | 1u << POL_DROPOLD | 1u << POL_DISC,
                1u << POL_BLOCK | 1u << POL_DROPNEW,
                1u << POL_BLOCK,
        };
        uint64_t rng = opt.seed * 0x9e3779b97f4a7c15ull + p + 1, gseq = 0;
        uint64_t tcount[N_TOPICS] = { 0 };
        unsigned topics[N_TOPICS], n_topics = 0, i, batch = 0;
        static uint8_t buf[PUB_MAX_LEN];
        char name[32];
        ipcd_client *c;
        int64_t start;
        int r;

        for (i = 0; i < N_TOPICS; i++)
                if (masks[p] & (1u << soak_topic_policy(i)))
                        topics[n_topics++] = i;
        snprintf(name, sizeof(name), "soak-pub%u", p);
        c = soak_connect(name);
        atomic_store(&sh->ready[role_id], 1);
        soak_wait_phase(c, PH_RUN);

        start = soak_now_ms();
        while (soak_phase() == PH_RUN) {
                unsigned t = topics[soak_rand(&rng) % n_topics];
                size_t len = pick_len(&rng);
                unsigned flags = 0;
                uint64_t roll;

                soak_pace(c, start, gseq, opt.rate);
                if (soak_phase() != PH_RUN)
                        break;
                gseq++;
                tcount[t]++;
                soak_payload_fill(buf, len,
                                  (SoakHdr){ .kind = MSG_PUBSUB,
                                             .src = p,
                                             .topic = t,
                                             .gseq = gseq,
                                             .tseq = tcount[t] },
                                  NULL, 0, rng);
                wait_credit(c, p, gseq);
                roll = soak_rand(&rng) % 64;
                if (roll == 0)
                        flags = IPCD_PUBLISH_ACK;
                else if (roll < 16 || (batch > 0 && batch < 8))
                        /* Batches of a few frames per system call. */
                        flags = IPCD_PUBLISH_MORE;
                batch = flags == IPCD_PUBLISH_MORE ? batch + 1 : 0;
                r = ipcd_client_publish(c, soak_topic_name(t), soak_type_of(tcount[t]), buf, len,
                                        flags);
                if (r < 0)
                        soak_die("publish on %s: %s (%s)", soak_topic_name(t), strerror(-r),
                                 ipcd_client_last_error(c));
                if (flags & IPCD_PUBLISH_ACK)
                        atomic_fetch_add(&sh->acked, 1);
                atomic_store(&sh->pub_count[p][t], tcount[t]);
                atomic_store(&sh->pub_gseq[p], gseq);
                atomic_fetch_add(&sh->pubsub_published, 1);
                if (gseq % 512 == 0) {
                        r = ipcd_client_sync(c);
                        if (r < 0)
                                soak_die("sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
                        atomic_fetch_add(&sh->syncs, 1);
                }
        }
        /* Every message routed, and none refused. */
        r = ipcd_client_sync(c);
        if (r < 0)
                soak_die("final sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        atomic_store(&sh->done[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        return 0;
}

/* ---- fast subscribers ---- */

typedef struct Spec {
        const char *filter;
        unsigned types;
} Spec;

#define MAX_SPECS 5
static const Spec fast_specs[N_FAST][MAX_SPECS] = {
        {
                { "soak/#", TYPES_ALL },
                { "soak/+/+/a", TYPES_ALL },
                { "soak/dropnew/+/+", TYPES_ALL },
                { "soak/+/2/#", TYPES_ALL },
                { "soak/block/1/b", 1u << 1 },
        },
        {
                { "+/+/+/+", TYPES_ALL },
                { "soak/block/#", TYPES_ALL },
                { "soak/+/+/b", 1u << 2 | 1u << 3 },
                { "+/disc/+/a", TYPES_ALL },
                { "soak/dropold/3/#", TYPES_ALL },
        },
};

static uint64_t stats_seen;

/* The broker's statistics ($SYS/broker/stats, every second): JSON that
 * parses, with the keys of the status document. */
static void on_stats(ipcd_client *c, ipcd_msg *m, void *userdata) {
        uint64_t v;
        size_t size;
        const char *data = ipcd_msg_get_data(m, &size);
        char *text = malloc(size + 1);
        Json j;

        if (!text)
                return;
        memcpy(text, data, size);
        text[size] = 0;
        if (json_parse(text, size, &j) < 0)
                soak_fail("$SYS/broker/stats is not JSON: %.80s", text);
        else {
                if (!json_u64(json_get(&j, "messages_in"), &v) ||
                    !json_u64(json_get(&j, "internal_errors"), &v))
                        soak_fail("$SYS/broker/stats lacks its counters: %.80s", text);
                else if (v != 0)
                        soak_fail("$SYS/broker/stats: internal_errors is %llu",
                                  (unsigned long long)v);
                json_deinit(&j);
        }
        free(text);
        stats_seen++;
}

int role_fast_sub(unsigned f) {
        Track *tracks = calloc(MAX_SPECS, sizeof(Track));
        char name[32];
        ipcd_client *c;
        unsigned i;
        int r;

        if (!tracks)
                soak_die("out of memory");
        snprintf(name, sizeof(name), "soak-fast%u", f);
        c = soak_connect(name);
        for (i = 0; i < MAX_SPECS; i++) {
                tracks[i] = (Track){ .filter = fast_specs[f][i].filter,
                                     .types = fast_specs[f][i].types,
                                     .lossless = true,
                                     .primary = i == 0,
                                     .fast = i == 0 ? (int)f : -1 };
                subscribe_track(c, &tracks[i]);
        }
        if (f == 0) {
                r = ipcd_client_subscribe(c, "$SYS/broker/stats", NULL, 0, on_stats, NULL, NULL);
                if (r < 0)
                        soak_die("subscribe $SYS/broker/stats: %s", strerror(-r));
        }
        atomic_store(&sh->ready[role_id], 1);
        while (soak_phase() < PH_DRAIN)
                soak_pump(c, 50);

        drain_client(c);
        for (i = 0; i < MAX_SPECS; i++)
                track_account(&tracks[i], NULL, NULL);
        if (f == 0 && opt.seconds >= 5 && stats_seen == 0)
                soak_fail("no $SYS/broker/stats message in %u s (stats_interval 1s)", opt.seconds);
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(tracks);
        return 0;
}

/* ---- slow subscribers ---- */

static bool slow_handler;

static void on_slow(ipcd_client *c, ipcd_msg *m, void *userdata) {
        track_message(userdata, m);
        if (slow_handler)
                usleep(200);
}

/* Handles the end of a connection of the disconnect-policy subscriber: a
 * slow-consumer disconnection is expected, anything else is not. */
static ipcd_client *slow_reconnect(ipcd_client *c, int r, Track *t, const char *name) {
        const char *why = ipcd_client_last_error(c);

        if (r != -ENOBUFS || !strstr(why, "slow consumer"))
                soak_die("connection lost: %s (%s)", strerror(-r), why);
        atomic_fetch_add(&sh->disconnects, 1);
        soak_log("disconnected as a slow consumer (%s); reconnecting", why);
        ipcd_client_unref(c);
        c = soak_connect(name);
        track_restart(t);
        r = ipcd_client_subscribe(c, t->filter, NULL, 0, on_slow, t, &t->id);
        if (r < 0)
                soak_die("subscribe '%s': %s", t->filter, strerror(-r));
        return c;
}

int role_slow_sub(unsigned pol) {
        static const char *const filters[N_POL] = { "soak/block/#", "soak/dropnew/#",
                                                    "soak/dropold/+/+", "soak/disc/#" };
        uint64_t rng = opt.seed * 0xbf58476d1ce4e5b9ull + pol + 101;
        Track *t = calloc(1, sizeof(Track));
        char name[32];
        ipcd_client *c;
        int r;

        if (!t)
                soak_die("out of memory");
        *t = (Track){ .filter = filters[pol],
                      .types = TYPES_ALL,
                      .lossless = pol == POL_BLOCK || pol == POL_DISC,
                      .primary = true,
                      .restartable = pol == POL_DISC,
                      .fast = -1 };
        snprintf(name, sizeof(name), "soak-slow-%s", filters[pol] + 5);
        *strchr(name + 10, '/') = 0;
        c = soak_connect(name);
        r = ipcd_client_subscribe(c, t->filter, NULL, 0, on_slow, t, &t->id);
        if (r < 0)
                soak_die("subscribe '%s': %s", t->filter, strerror(-r));
        atomic_store(&sh->ready[role_id], 1);

        while (soak_phase() < PH_DRAIN) {
                int64_t until;

                if (soak_phase() == PH_RUN) {
                        /* Read nothing for a while: the queue fills. A
                         * blocked publisher waits as long, so block pauses
                         * are shorter. */
                        until = soak_now_ms() +
                                (int64_t)(pol == POL_BLOCK ? soak_rand_range(&rng, 50, 700)
                                                           : soak_rand_range(&rng, 100, 1500));
                        while (soak_now_ms() < until && soak_phase() == PH_RUN)
                                usleep(20000);
                }
                /* Then read, sometimes slowly, for a while. */
                slow_handler = soak_phase() == PH_RUN && soak_rand(&rng) % 2;
                until = soak_now_ms() + (int64_t)soak_rand_range(&rng, 200, 1200);
                while (soak_now_ms() < until && soak_phase() < PH_DRAIN) {
                        r = ipcd_client_wait(c, 50);
                        if (r == -EINTR)
                                continue;
                        if (r < 0) {
                                if (pol != POL_DISC)
                                        soak_die("connection lost: %s (%s)", strerror(-r),
                                                 ipcd_client_last_error(c));
                                c = slow_reconnect(c, r, t, name);
                        }
                        if (soak_phase() != PH_RUN)
                                slow_handler = false;
                }
        }

        slow_handler = false;
        r = ipcd_client_sync(c);
        if (r < 0 && pol == POL_DISC) {
                /* Disconnected during the stop: a new connection has no
                 * backlog. */
                c = slow_reconnect(c, r, t, name);
                r = ipcd_client_sync(c);
        }
        if (r < 0)
                soak_die("sync: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        while (soak_pump(c, 0) > 0)
                ;
        if (pol != POL_DISC) {
                sh->slow_missing_total[pol] =
                        track_account(t, sh->slow_missing[pol], &sh->slow_received[pol]);
                soak_log("%llu received, %llu missing", (unsigned long long)sh->slow_received[pol],
                         (unsigned long long)sh->slow_missing_total[pol]);
        }
        atomic_store(&sh->client_id[role_id], ipcd_client_get_id(c));
        atomic_store(&sh->drained[role_id], 1);
        soak_wait_phase(c, PH_EXIT);
        ipcd_client_unref(c);
        free(t);
        return 0;
}
