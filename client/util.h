/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the daemon, the client library and the tests:
 * little-endian access, cleanup attributes, array sizes. Header only.
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _cleanup_(f) __attribute__((cleanup(f)))

/* Defines NAME##p(T *p) that calls FREE(*p): for _cleanup_ locals. */
#define DEFINE_CLEANUP(T, FREE)                         \
        static inline void FREE##p(T *p) {              \
                if (*p)                                 \
                        FREE(*p);                       \
        }

static inline void freep(void *p) {
        free(*(void **)p);
}

/* Closes *fd if it is open; for `_cleanup_(closep) int fd = -1;`. */
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

/* Hands a value out of a cleanup-owned local: returns it and clears the local. */
#define TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline uint16_t le16_read(const uint8_t *p) {
        return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t le32_read(const uint8_t *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64_read(const uint8_t *p) {
        return (uint64_t)le32_read(p) | (uint64_t)le32_read(p + 4) << 32;
}
static inline void le16_write(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}
static inline void le32_write(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
}
static inline void le64_write(uint8_t *p, uint64_t v) {
        le32_write(p, (uint32_t)v);
        le32_write(p + 4, (uint32_t)(v >> 32));
}
