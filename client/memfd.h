/* SPDX-License-Identifier: MIT */
/*
 * Sealed memfds for bulk payloads: the checks that make a received fd safe to
 * map read-only (run by the broker, which never maps it, and again by the
 * receiving library), and the sender's side: create, fill, seal.
 *
 * A bulk payload fd is acceptable when:
 *  - it is a regular file on tmpfs or hugetlbfs (memfd_create's file
 *    systems): F_GET_SEALS alone proves nothing, other files support it too;
 *  - its seals include F_SEAL_WRITE, F_SEAL_SHRINK and F_SEAL_GROW (tested by
 *    mask: newer kernels add more, like F_SEAL_EXEC). F_SEAL_FUTURE_WRITE is
 *    not enough: mappings made writable before it stay writable;
 *  - its size is at least the declared length, and the length is at most
 *    the receiver's maximum.
 * Every check costs a system call on the fd, none depends on the size.
 */
#pragma once

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

typedef enum MemfdCheck {
        MEMFD_OK = 0,
        MEMFD_E_BADF,       /* fstat failed: not an open fd */
        MEMFD_E_NOT_REGULAR,
        MEMFD_E_NOT_SHMEM,  /* a regular file, but not on tmpfs/hugetlbfs */
        MEMFD_E_NO_SEALS,   /* sealing not supported, or the seals are missing */
        MEMFD_E_TOO_SHORT,  /* smaller than the declared length */
        MEMFD_E_TOO_LARGE,  /* declared length over the maximum */
        _MEMFD_E_MAX,
} MemfdCheck;

/* The seals a bulk payload needs. */
#define MEMFD_REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

/* Checks @fd as a bulk payload of @len bytes against @max_len. */
MemfdCheck memfd_check(int fd, uint64_t len, uint64_t max_len);
/* What failed, for an ERROR frame or an application ("memfd is not sealed
 * against writing, shrinking and growing"). */
const char *memfd_check_str(MemfdCheck c);

/*
 * Creates a sealed memfd holding a copy of @data (@len bytes): memfd_create
 * with MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_NOEXEC_SEAL (retried without
 * MFD_NOEXEC_SEAL on kernels that refuse it), write, seal WRITE, SHRINK,
 * GROW and SEAL. Returns the fd (caller owns it) or a negative errno.
 */
int memfd_new_sealed(const char *name, const void *data, size_t len);

/* Seals an fd the caller filled (all of WRITE, SHRINK, GROW, SEAL);
 * returns 0 or a negative errno (-EBUSY: a writable mapping still exists). */
int memfd_seal(int fd);
