/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "memfd.h"
#include "util.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

MemfdCheck memfd_check(int fd, uint64_t len, uint64_t max_len) {
        struct statfs sfs;
        struct stat st;
        int seals;

        if (len > max_len)
                return MEMFD_E_TOO_LARGE;
        if (fstat(fd, &st) < 0)
                return MEMFD_E_BADF;
        if (!S_ISREG(st.st_mode))
                return MEMFD_E_NOT_REGULAR;
        if (fstatfs(fd, &sfs) < 0 ||
            ((unsigned long)sfs.f_type != TMPFS_MAGIC && (unsigned long)sfs.f_type != HUGETLBFS_MAGIC))
                return MEMFD_E_NOT_SHMEM;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & MEMFD_REQUIRED_SEALS) != MEMFD_REQUIRED_SEALS)
                return MEMFD_E_NO_SEALS;
        /* Sealed against shrinking: the size cannot change after this. */
        if (st.st_size < 0 || (uint64_t)st.st_size < len)
                return MEMFD_E_TOO_SHORT;
        return MEMFD_OK;
}

const char *memfd_check_str(MemfdCheck c) {
        static const char *const str[_MEMFD_E_MAX] = {
                [MEMFD_OK] = "valid sealed memfd",
                [MEMFD_E_BADF] = "bulk payload fd is not an open file",
                [MEMFD_E_NOT_REGULAR] = "bulk payload fd is not a regular file (a pipe, socket or device?)",
                [MEMFD_E_NOT_SHMEM] = "bulk payload fd is not a memfd (not on tmpfs or hugetlbfs)",
                [MEMFD_E_NO_SEALS] = "bulk payload memfd is not sealed against writing, shrinking and growing",
                [MEMFD_E_TOO_SHORT] = "bulk payload memfd is shorter than the declared length",
                [MEMFD_E_TOO_LARGE] = "declared bulk length is over the maximum",
        };
        if ((unsigned)c >= _MEMFD_E_MAX)
                return "invalid bulk payload";
        return str[c];
}

int memfd_seal(int fd) {
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        return 0;
}

int memfd_new_sealed(const char *name, const void *data, size_t len) {
        _cleanup_(closep) int fd = -1;
        const uint8_t *p = data;
        size_t left = len;
        int r;

        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL)
                /* Kernels before 6.3 do not know MFD_NOEXEC_SEAL. */
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (len > 0 && ftruncate(fd, (off_t)len) < 0)
                return -errno;
        /* write(), not a mapping: no writable mapping may exist when sealing. */
        while (left > 0) {
                ssize_t n = pwrite(fd, p, left, (off_t)(len - left));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                left -= (size_t)n;
        }
        r = memfd_seal(fd);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}
