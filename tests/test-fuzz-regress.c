/* SPDX-License-Identifier: MIT */
/*
 * What the fuzzers found (tests/fuzz/), each also kept as a reproducer in
 * tests/fuzz/crashes/ that its harness replays: here against a real ipcd,
 * as a client sees it.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "utf8.h"
#include "util.h"

static TestBroker tb;

static void start(void) {
        tb_start(&tb, NULL);
}

static void cleanup(void) {
        tb_kill(&tb);
}

TestSuite(fuzz_regress, .init = start, .fini = cleanup, .timeout = 60);

static bool utf8_valid(const uint8_t *s, size_t len) {
        size_t i = 0;
        while (i < len) {
                size_t n = utf8_char_len(s + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}

/* fuzz-frame, crashes/frame/error-text-cut-inside-a-character: an ERROR
 * text that quotes a long topic is cut to 511 bytes, and the cut fell
 * inside a two-byte character. */
Test(fuzz_regress, long_error_text_stays_utf8) {
        uint8_t meta[WIRE_META_REQUEST] = { 0 };
        char topic[1 + 2 * 246 + 1];
        int fd = raw_client(&tb, "cut", NULL);
        RawFrame f;
        size_t i;

        topic[0] = 'a';
        for (i = 0; i < 246; i++)
                memcpy(topic + 1 + 2 * i, "\xc3\xa9", 2); /* é */
        topic[sizeof(topic) - 1] = 0;
        raw_send(fd, WIRE_REQUEST, 0, 0, 7, meta, sizeof(meta), topic, NULL, 0);
        raw_expect(fd, WIRE_ERROR, &f);
        cr_assert(eq(u32, le32_read(f.meta), WIRE_E_NO_RESPONDERS));
        cr_assert(le(u32, f.h.payload_len, 511));
        cr_assert(utf8_valid(f.payload, f.h.payload_len), "the ERROR text is not UTF-8");
        raw_frame_free(&f);
        close(fd);
        tb_stop(&tb);
}

/* fuzz-broker, crashes/broker/half-closed-client-loses-its-answers: a
 * client that sends its frames and shuts down its sending side gets every
 * answer, whole, before the end of the stream; more than the socket holds. */
Test(fuzz_regress, half_closed_client_reads_its_answers) {
        enum { N = 10, SIZE = 64 * 1024 };
        uint8_t *payload = malloc(SIZE);
        int fd = raw_client(&tb, "half", NULL);
        RawFrame f;
        size_t i;

        cr_assert(payload != NULL);
        memset(payload, 'p', SIZE);
        for (i = 0; i < N; i++)
                raw_send(fd, WIRE_PING, 0, 0, 100 + i, NULL, 0, NULL, payload, SIZE);
        cr_assert(eq(int, shutdown(fd, SHUT_WR), 0));
        for (i = 0; i < N; i++) {
                raw_expect(fd, WIRE_PONG, &f);
                cr_assert(eq(u64, f.h.corr, 100 + i));
                cr_assert(eq(u32, f.h.payload_len, SIZE));
                raw_frame_free(&f);
        }
        cr_assert(eq(int, raw_read(fd, &f, 5000), 0), "expected the end of the stream");
        free(payload);
        close(fd);
        tb_stop(&tb);
}
