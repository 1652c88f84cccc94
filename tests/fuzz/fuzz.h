/* SPDX-License-Identifier: MIT */
/*
 * What every fuzz harness shares. Each harness is one .c file defining the
 * two libFuzzer entry points below. It is built twice: with libFuzzer
 * (`configure --enable-fuzzing CC=clang`, tests/fuzz/fuzz-NAME) and with
 * tests/fuzz/replay.c's main() instead (tests/fuzz/replay-NAME, in every
 * build), which runs the seed corpus and the crash reproducers in
 * `make check`.
 *
 * A harness reports a finding by aborting (FUZZ_CHECK): libFuzzer saves
 * the input, the replay fails the test.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints what went wrong and where, then aborts. */
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Aborts with a message when @cond is false: a finding. */
#define FUZZ_CHECK(cond, ...)                                                      \
        do {                                                                       \
                if (!(cond))                                                       \
                        fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);         \
        } while (0)

/* Open file descriptors of this process (entries of /proc/self/fd). */
size_t fuzz_count_fds(void);

/* A private directory for the harness's files, made on first use and
 * removed at exit. */
const char *fuzz_tmpdir(void);

/* Length of the valid UTF-8 character at @s (@n > 0 bytes left), or 0.
 * Written apart from client/utf8.h, so that the two can be compared. */
size_t fuzz_utf8_char(const uint8_t *s, size_t n);
/* True when @s is valid UTF-8 (empty included). */
bool fuzz_utf8_valid(const uint8_t *s, size_t n);

/* Reads the input byte by byte; past the end every read is 0. */
typedef struct FuzzInput {
        const uint8_t *data;
        size_t size, pos;
} FuzzInput;

static inline bool fuzz_more(const FuzzInput *in) {
        return in->pos < in->size;
}
uint8_t fuzz_u8(FuzzInput *in);
uint16_t fuzz_u16(FuzzInput *in);
uint32_t fuzz_u32(FuzzInput *in);
uint64_t fuzz_u64(FuzzInput *in);
/* Up to @n bytes (fewer at the end); returns how many, *ret points at them. */
size_t fuzz_bytes(FuzzInput *in, size_t n, const uint8_t **ret);
