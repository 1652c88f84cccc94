/* SPDX-License-Identifier: MIT */
/*
 * ipcd-soak: payloads and their checksums, topic names and matching, and
 * what every role process needs (connecting, pumping a client, pacing,
 * reporting errors to the parent).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"

Shared *sh;
Options opt;
const char *role_name = "main";
RoleId role_id = N_ROLES;

/* ---- checksums and payloads ---- */

static inline uint64_t mix64(uint64_t x) {
        x ^= x >> 31;
        x *= 0x7fb5d329728ea185ull;
        x ^= x >> 27;
        x *= 0x81dadef4bc2dd44dull;
        x ^= x >> 33;
        return x;
}

/* Word by word: every byte and its position count; fast enough for the
 * multi-megabyte bulk payloads (it touches each page of a mapping once). */
uint64_t soak_sum(uint64_t h, const void *p, size_t n) {
        const uint8_t *b = p;
        size_t i;

        for (i = 0; i + 8 <= n; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                h = (h ^ w) * 0x9e3779b97f4a7c15ull;
                h ^= h >> 29;
        }
        if (i < n) {
                uint64_t w = 0;
                memcpy(&w, b + i, n - i);
                h = (h ^ w ^ ((uint64_t)(n - i) << 56)) * 0x9e3779b97f4a7c15ull;
                h ^= h >> 29;
        }
        return h;
}

static uint64_t payload_sum(const SoakHdr *h, const uint8_t *body, size_t body_len) {
        SoakHdr z = *h;
        uint64_t s;

        z.sum = 0;
        s = soak_sum(SOAK_SUM_INIT, &z, sizeof(z));
        s = soak_sum(s, body, body_len);
        return mix64(s ^ (uint64_t)body_len);
}

void soak_payload_fill(uint8_t *buf, size_t len, SoakHdr h, const void *prefix, size_t prefix_len,
                       uint64_t seed) {
        uint8_t *body = buf + SOAK_HDR_SIZE;
        size_t body_len = len - SOAK_HDR_SIZE, i;
        uint64_t x = mix64(seed) | 1;

        if (prefix_len > body_len)
                prefix_len = body_len;
        if (prefix_len)
                memcpy(body, prefix, prefix_len);
        for (i = prefix_len; i + 8 <= body_len; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(body + i, &x, 8);
        }
        for (; i < body_len; i++)
                body[i] = (uint8_t)(x >> (8 * (i & 7)));
        h.magic = SOAK_MAGIC;
        h.len = len;
        h.sum = payload_sum(&h, body, body_len);
        memcpy(buf, &h, sizeof(h));
}

bool soak_payload_check(const void *data, size_t size, uint32_t kind, SoakHdr *ret, char *why,
                        size_t why_len) {
        SoakHdr h;
        uint64_t s;

        if (!data || size < SOAK_HDR_SIZE) {
                snprintf(why, why_len, "payload of %zu bytes is shorter than its header", size);
                return false;
        }
        memcpy(&h, data, sizeof(h));
        if (h.magic != SOAK_MAGIC) {
                snprintf(why, why_len, "bad magic 0x%08x", h.magic);
                return false;
        }
        if (h.len != size) {
                snprintf(why, why_len, "payload of %zu bytes, its header says %llu", size,
                         (unsigned long long)h.len);
                return false;
        }
        s = payload_sum(&h, (const uint8_t *)data + SOAK_HDR_SIZE, size - SOAK_HDR_SIZE);
        if (s != h.sum) {
                snprintf(why, why_len, "checksum mismatch (src %u gseq %llu, %zu bytes)", h.src,
                         (unsigned long long)h.gseq, size);
                return false;
        }
        if (h.kind != kind) {
                snprintf(why, why_len, "message of kind %u where kind %u was expected", h.kind,
                         kind);
                return false;
        }
        *ret = h;
        return true;
}

/* ---- topics ---- */

static const char *const pol_names[N_POL] = { "block", "dropnew", "dropold", "disc" };

const char *soak_topic_name(unsigned t) {
        static char names[N_TOPICS][32];

        if (t >= N_TOPICS)
                return NULL;
        if (!names[t][0])
                snprintf(names[t], sizeof(names[t]), "soak/%s/%u/%c",
                         pol_names[soak_topic_policy(t)], (t / N_LEAF) % N_K, "ab"[t % N_LEAF]);
        return names[t];
}

int soak_topic_index(const char *name) {
        unsigned t;

        for (t = 0; t < N_TOPICS; t++)
                if (strcmp(name, soak_topic_name(t)) == 0)
                        return (int)t;
        return -1;
}

unsigned soak_topic_policy(unsigned t) {
        return t / (N_K * N_LEAF);
}

/* The next level of @s (up to '/' or the end) and its length. */
static size_t level_len(const char *s) {
        const char *e = strchr(s, '/');
        return e ? (size_t)(e - s) : strlen(s);
}

bool soak_filter_matches(const char *filter, const char *name) {
        const char *f = filter, *n = name;

        if ((f[0] == '+' || f[0] == '#') && n[0] == '$')
                return false;
        for (;;) {
                size_t fl = level_len(f), nl = level_len(n);

                if (fl == 1 && f[0] == '#')
                        return true;
                if (!(fl == 1 && f[0] == '+') && (fl != nl || memcmp(f, n, fl) != 0))
                        return false;
                f += fl;
                n += nl;
                if (!*f && !*n)
                        return true;
                if (!*n)
                        /* "a/#" also matches "a". */
                        return strcmp(f, "/#") == 0;
                if (!*f)
                        return false;
                f++;
                n++;
        }
}

uint64_t soak_count_types(uint64_t n, unsigned mask) {
        uint64_t total = 0;

        /* seq % 3 == 0 → type 1, 1 → type 2, 2 → type 3 */
        if (mask & (1u << 1))
                total += n / 3;
        if (mask & (1u << 2))
                total += (n + 2) / 3;
        if (mask & (1u << 3))
                total += (n + 1) / 3;
        return total;
}

/* ---- process helpers ---- */

int64_t soak_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t soak_rand(uint64_t *state) {
        uint64_t x = *state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545f4914f6cdd1dull;
}

uint64_t soak_rand_range(uint64_t *state, uint64_t lo, uint64_t hi) {
        if (hi <= lo)
                return lo;
        return lo + soak_rand(state) % (hi - lo + 1);
}

static void vreport(const char *what, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
static void vreport(const char *what, const char *fmt, va_list ap) {
        char msg[1024];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        fprintf(stderr, "ipcd-soak: %s%s%s\n", role_name, what, msg);
}

void soak_fail(const char *fmt, ...) {
        static unsigned printed;
        va_list ap;

        atomic_fetch_add(&sh->integrity, 1);
        if (printed++ >= 20)
                return;
        va_start(ap, fmt);
        vreport(": INTEGRITY ERROR: ", fmt, ap);
        va_end(ap);
}

void soak_die(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vreport(": FAILED: ", fmt, ap);
        va_end(ap);
        atomic_fetch_add(&sh->failures, 1);
        atomic_store(&sh->abort, 1);
        _exit(2);
}

void soak_log(const char *fmt, ...) {
        va_list ap;

        if (!opt.verbose)
                return;
        va_start(ap, fmt);
        vreport(": ", fmt, ap);
        va_end(ap);
}

int soak_phase(void) {
        return atomic_load(&sh->phase);
}

ipcd_client *soak_connect(const char *name) {
        int64_t deadline = soak_now_ms() + 30000;
        ipcd_client *c = NULL;
        int r;

        for (;;) {
                r = ipcd_client_new(&c, opt.socket, name);
                if (r >= 0)
                        break;
                /* A broker busy with a burst may refuse for a moment. */
                if ((r != -ETIMEDOUT && r != -ENOBUFS && r != -EAGAIN && r != -ECONNRESET) ||
                    soak_now_ms() > deadline)
                        soak_die("cannot connect to %s: %s", opt.socket, strerror(-r));
                usleep(50000);
        }
        /* Generous: the broker may run under a sanitizer on a busy machine. */
        ipcd_client_set_timeout(c, 30000);
        if (role_id < N_ROLES)
                atomic_store(&sh->client_id[role_id], ipcd_client_get_id(c));
        return c;
}

int soak_pump(ipcd_client *c, int ms) {
        int r;

        for (;;) {
                r = ipcd_client_wait(c, ms);
                if (r != -EINTR)
                        break;
        }
        if (r < 0)
                soak_die("connection lost: %s (%s)", strerror(-r), ipcd_client_last_error(c));
        return r;
}

void soak_wait_phase(ipcd_client *c, int phase) {
        while (soak_phase() < phase) {
                if (c)
                        soak_pump(c, 20);
                else
                        usleep(20000);
        }
}

int soak_count_fds(void) {
        struct dirent *de;
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

void soak_pace(ipcd_client *c, int64_t start_ms, uint64_t n, unsigned rate) {
        if (rate == 0)
                return;
        for (;;) {
                int64_t due = start_ms + (int64_t)(n * 1000 / rate);
                int64_t now = soak_now_ms();

                if (now >= due || soak_phase() != PH_RUN)
                        return;
                /* Reading meanwhile keeps answers (PONG, ERROR) from piling up. */
                soak_pump(c, (int)(due - now > 20 ? 20 : due - now));
        }
}
