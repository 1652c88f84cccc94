/* SPDX-License-Identifier: MIT */
/*
 * The frame decoder, on arbitrary bytes: the first input byte is a number
 * of fds (0..253, of assorted kinds, the first a sealed memfd), the rest is
 * the byte stream a client sends.
 *
 *  1. wire_header_decode() on every header of the stream is compared with
 *     the checks of docs/PROTOCOL.md 2.3, written out here in their order,
 *     and must re-encode to the same 32 bytes.
 *  2. The stream and the fds go to a real broker in this process, over a
 *     socket pair, as one sendmsg (the fds with its first byte); the loop
 *     runs until nothing moves, then the client half-closes and it runs
 *     again. This is the daemon's own receive path: connection.c's recvmsg,
 *     fd queue and frame parser, and protocol.c's per-kind checks of meta,
 *     topic and payload, with the broker's answers checked as a client
 *     library would (fuzz-env.h), fds and memory counted at the end.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz-env.h"
#include "fuzz.h"
#include "util.h"
#include "wire.h"

/* PROTOCOL.md 2.2 and 3: the flags, meta length (-1: any; -2: PUBLISH's
 * rule), topic (1 required, 0 none, -1 optional) and fds of each kind. */
static const struct {
        uint16_t flags;
        int meta;
        int topic;
        bool fds;
} kinds[16] = {
        [WIRE_HELLO] = { 0, 8, 0, false },
        [WIRE_WELCOME] = { 0, 40, 0, false },
        [WIRE_SUBSCRIBE] = { 0, 8, 1, false },
        [WIRE_UNSUBSCRIBE] = { 0, 8, 0, false },
        [WIRE_ACK] = { 0, 0, 0, false },
        [WIRE_PUBLISH] = { WIRE_F_RETAIN | WIRE_F_BULK | WIRE_F_ACK, -2, 1, true },
        [WIRE_MESSAGE] = { WIRE_F_RETAIN | WIRE_F_BULK, 32, 1, true },
        [WIRE_ERROR] = { WIRE_F_FATAL, 8, 0, false },
        [WIRE_PING] = { 0, 0, 0, false },
        [WIRE_PONG] = { 0, 0, 0, false },
        [WIRE_REQUEST] = { WIRE_F_BULK, -1, 1, true },
        [WIRE_REPLY] = { WIRE_F_BULK, -1, -1, true },
        [WIRE_ADMIN] = { 0, 0, 1, false },
        [WIRE_ADMIN_REPLY] = { 0, 0, 0, false },
        [WIRE_GOODBYE] = { 0xffff, -1, -1, false },
};

/* The header checks of PROTOCOL.md 2.3, in the order of its table. */
static WireError ref_header_check(const uint8_t *b, const WireLimits *l) {
        uint32_t size = le32_read(b), payload_len = le32_read(b + 12);
        uint16_t flags = le16_read(b + 6), topic_len = le16_read(b + 16);
        uint8_t version = b[4], kind = b[5], n_fds = b[18], meta_len = b[19];
        int meta;

        if (version != 1)
                return WIRE_E_VERSION;
        if (kind < 1 || kind > 15)
                return WIRE_E_KIND;
        if (le32_read(b + 20) != 0)
                return WIRE_E_MALFORMED;
        if (flags & ~kinds[kind].flags)
                return WIRE_E_MALFORMED;
        if ((uint64_t)size != 32u + (uint64_t)meta_len + topic_len + payload_len)
                return WIRE_E_MALFORMED;
        meta = kinds[kind].meta == -2 ? ((flags & WIRE_F_BULK) ? 8 : 0) : kinds[kind].meta;
        if (meta >= 0 && meta_len != meta)
                return WIRE_E_MALFORMED;
        if ((kinds[kind].topic == 1 && topic_len == 0) || (kinds[kind].topic == 0 && topic_len != 0))
                return WIRE_E_MALFORMED;
        if (n_fds > 0 && !kinds[kind].fds)
                return WIRE_E_FDS;
        if ((flags & WIRE_F_BULK) && n_fds == 0)
                return WIRE_E_FDS;
        if (l && topic_len > l->max_topic_len)
                return WIRE_E_TOO_LARGE;
        if (l && payload_len > l->max_payload)
                return WIRE_E_TOO_LARGE;
        if (l && n_fds > l->max_fds)
                return WIRE_E_TOO_LARGE;
        return WIRE_E_OK;
}

static void check_header(const uint8_t *b, const WireLimits *l) {
        WireHeader h = { 0 };
        const char *why = NULL;
        WireError want = ref_header_check(b, l);
        WireError e = wire_header_decode(b, l, &h, &why);
        uint8_t again[WIRE_HEADER_SIZE];

        FUZZ_CHECK(e == want, "wire_header_decode says %s (%s), PROTOCOL.md 2.3 says %s",
                   wire_error_name(e), why ? why : "", wire_error_name(want));
        if (e != WIRE_E_OK) {
                FUZZ_CHECK(why && *why, "a refusal without a reason");
                return;
        }
        FUZZ_CHECK(!why, "an accepted header with a reason");
        wire_header_encode(again, &h);
        FUZZ_CHECK(memcmp(again, b, WIRE_HEADER_SIZE) == 0, "the header does not encode back to itself");
}

/* Walks the stream as the broker's parser does, frame by frame. */
static void check_decoder(const uint8_t *s, size_t len) {
        static const WireLimits limits[] = {
                { WIRE_DEFAULT_MAX_PAYLOAD, WIRE_DEFAULT_MAX_TOPIC, WIRE_DEFAULT_MAX_FDS },
                { 16, 8, 2 },
                { 0, 0, 0 },
        };
        size_t off = 0, i;

        while (len - off >= WIRE_HEADER_SIZE) {
                WireHeader h;
                const char *why;

                check_header(s + off, NULL);
                for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
                        check_header(s + off, &limits[i]);
                if (wire_header_decode(s + off, NULL, &h, &why) != WIRE_E_OK || h.size > len - off)
                        break;
                off += h.size;
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        fuzz_env_init();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzFdKind fd_kinds[WIRE_MAX_FDS_PER_SENDMSG];
        FuzzBrokerOptions o = { .rules = false, .overflow = -1, .queue_bytes = 0, .max_fds = -1 };
        FuzzPeer p = { .fd = -1 };
        size_t n_fds, fds_before, i;
        Broker *b;

        if (size < 1)
                return 0;
        n_fds = data[0] % (WIRE_MAX_FDS_PER_SENDMSG + 1);
        check_decoder(data + 1, size - 1);

        fds_before = fuzz_count_fds();
        b = fuzz_broker_new(&o);
        fuzz_peer_connect(&p, b, 0, false);
        p.tracked = false; /* its corrs are whatever the input says */
        for (i = 0; i < n_fds; i++)
                fd_kinds[i] = (FuzzFdKind)(i % _FUZZ_FD_MAX);
        fuzz_peer_send(&p, data + 1, size - 1, fd_kinds, n_fds);
        fuzz_pump(b, &p, 1, 64);
        if (p.fd >= 0)
                shutdown(p.fd, SHUT_WR);
        fuzz_pump(b, &p, 1, 64);
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "# the broker sent %llu frames%s\n", (unsigned long long)p.frames,
                        p.fatal ? ", the last a fatal ERROR" : "");
        fuzz_broker_free(b);
        fuzz_peer_close(&p);
        FUZZ_CHECK(fuzz_count_fds() == fds_before, "%zu fds open before, %zu after", fds_before,
                   fuzz_count_fds());
        return 0;
}
