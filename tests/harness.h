/* SPDX-License-Identifier: MIT */
/*
 * Test harness for integration tests: starts a real ipcd on a socket in its
 * own temporary directory, and speaks the wire protocol with raw frames so
 * tests can send exactly the bytes they want (good and bad).
 *
 * IPCD_BIN names the daemon (set by tests/include.am). With IPCD_VALGRIND=1
 * the daemon runs under valgrind memcheck and a leak or error fails the test
 * at tb_stop().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* Built with AddressSanitizer: RSS figures mean nothing then. */
#if defined(__SANITIZE_ADDRESS__)
#define TB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TB_SANITIZED 1
#endif
#endif
#ifndef TB_SANITIZED
#define TB_SANITIZED 0
#endif

/*
 * Checks for the harness and for code that may run in a forked client:
 * in the test process a failure fails the test (criterion); in a forked
 * child (after harness_child_begin) it prints what failed and exits 90,
 * because criterion's reporting must not be used from two processes.
 */
#define TB_CHECK(cond, ...) tb_check(!!(cond), #cond, __FILE__, __LINE__, " " __VA_ARGS__)
void tb_check(bool ok, const char *expr, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
extern bool harness_in_child;
/* Call first thing in a forked client: checks exit instead of reporting,
 * and the child dies with its test (and after 60 s at the most). */
void harness_child_begin(void);

typedef struct TestBroker {
        pid_t pid;
        char dir[64];
        char sock[128];
        char log[128];
        char conf[128]; /* the empty configuration tb_start wrote, if any */
        bool valgrind;
} TestBroker;

/* Starts ipcd with @extra (NULL-terminated, may be NULL) and waits until it
 * accepts connections. Fails the test on error. */
void tb_start(TestBroker *b, const char *const *extra);
/* The same in an existing directory @dir (socket @dir/ipcd.sock). */
void tb_start_in(TestBroker *b, const char *dir, const char *const *extra);
/* Runs ipcd with @args to completion (stdout discarded); returns its exit
 * status. For option and startup errors. */
int tb_run(const char *const *args);
/* The same, with its standard error in @err (NUL terminated). */
int tb_run_capture(const char *const *args, char *err, size_t err_size);
/* SIGTERM; asserts a clean exit (status 0: under valgrind, no errors or
 * leaks) and that the socket file is gone; removes the directory. */
void tb_stop(TestBroker *b);
/* Kills a broker that is still running, without checks: for cleanup after a
 * failed test (criterion ignores assertions in .fini). */
void tb_kill(TestBroker *b);
/* Open fds of the broker process. */
int tb_fd_count(const TestBroker *b);
/* Waits up to 5 s for the broker's fd count to fall to @want; returns the
 * last count seen. */
int tb_wait_fd_count(const TestBroker *b, int want);
/* The broker's fd count with no client connected, measured race-free. */
int tb_fd_baseline(const TestBroker *b);
/* A number from the broker's status document (ADMIN "status"), or -1. */
long long tb_status_number(const TestBroker *b, const char *key);
/* A number from the status document, asked on connection @fd. */
long long raw_status_number(int fd, const char *key);
/* Waits (asking on @fd) until the broker counts @n clients: connections
 * closed before are then gone on its side too. */
void raw_wait_clients(int fd, long long n);
/* The broker's resident set in KiB. */
long tb_rss_kib(const TestBroker *b);

typedef struct RawFrame {
        WireHeader h;
        uint8_t *meta;
        char *topic; /* NUL terminated */
        uint8_t *payload;
        uint8_t *buf; /* owns meta and payload; topic is its own allocation */
        int fds[WIRE_MAX_FDS_PER_SENDMSG]; /* owned; set an entry to -1 to keep it */
        size_t n_fds;
} RawFrame;

void raw_frame_free(RawFrame *f);

/* A connected socket (blocking), not yet greeted. */
int raw_connect(const TestBroker *b);
/* Connects and completes the handshake; returns the fd and the client id. */
int raw_client(const TestBroker *b, const char *name, uint32_t *ret_id);
/* Sends @len bytes, all of them. */
void raw_write(int fd, const void *buf, size_t len);
/* Encodes and sends a frame. */
void raw_send(int fd, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
              const void *meta, size_t meta_len, const char *topic, const void *payload,
              size_t payload_len);
/* Sends @len bytes with @fds attached to the first byte (one sendmsg). */
void raw_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds);
/* Fds received on @fd that no frame has claimed yet. */
size_t raw_pending_fds(int fd);
/* Reads one frame and the fds it declares; 1 on success, 0 on EOF/reset,
 * -ETIMEDOUT. */
int raw_read(int fd, RawFrame *f, int timeout_ms);
/* Reads the next frame and asserts it is of @kind. */
void raw_expect(int fd, uint8_t kind, RawFrame *f);
/* Asserts the next frame is ERROR @code (fatal or not as @fatal); for a fatal
 * one also asserts that the broker then closes the connection. */
void raw_expect_error(int fd, WireError code, bool fatal);
/* Subscribes with id @id and waits for the ACK. */
void raw_subscribe(int fd, uint32_t id, const char *filter, const uint32_t *types,
                   size_t n_types);
void raw_publish(int fd, const char *topic, uint32_t type, const void *data, size_t len);
/* PING round trip: every frame sent before has been handled when it returns. */
void raw_sync(int fd);
/* Asserts nothing arrives within @ms. */
void raw_expect_silence(int fd, int ms);

/* ---- Fault injection ---- */

/* tb_start() with the broker's RLIMIT_NOFILE set to @nofile, soft and hard
 * (it raises its soft limit to the hard one at start). */
void tb_start_nofile(TestBroker *b, const char *const *extra, unsigned long nofile);
/* The CPU time the broker has used (user + system), in clock ticks. */
long tb_cpu_ticks(const TestBroker *b);
/* Connects and says HELLO; returns the fd once WELCOME arrives, or -1 when
 * the broker closes the connection or answers with an ERROR instead (it
 * is out of fds or at a connection limit). Fails the test when the broker
 * does neither within 10 s. */
int raw_try_client(const TestBroker *b, const char *name, uint32_t *ret_id);
/* The status document, asked on connection @fd (malloc'd, NUL terminated). */
char *raw_status_json(int fd);
/* The number after "@key": in @json: after the first @anchor and within
 * the object it is in (@anchor such as "{\"id\":7," for a row of
 * per_client), or anywhere when @anchor is NULL. -1 when absent. */
long long tb_json_number(const char *json, const char *anchor, const char *key);
/* Raises this process's soft RLIMIT_NOFILE to at least @want; false when
 * the hard limit is lower. */
bool tb_raise_own_nofile(unsigned long want);
