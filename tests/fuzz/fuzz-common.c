/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "\n%s:%d: FUZZ_CHECK(%s) failed: ", file, line, cond);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fflush(stderr);
        abort();
}

size_t fuzz_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        size_t n = 0;

        FUZZ_CHECK(d, "cannot open /proc/self/fd: %s", strerror(errno));
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

static char tmpdir[64];

/* Removes the files the harnesses made (no subdirectories) and the directory. */
static void tmpdir_remove(void) {
        DIR *d = opendir(tmpdir);
        struct dirent *e;
        char path[512];

        if (!d)
                return;
        while ((e = readdir(d))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
                unlink(path);
        }
        closedir(d);
        rmdir(tmpdir);
}

const char *fuzz_tmpdir(void) {
        const char *base;

        if (tmpdir[0])
                return tmpdir;
        base = getenv("TMPDIR");
        if (!base || !*base || strlen(base) > 32)
                base = "/tmp";
        snprintf(tmpdir, sizeof(tmpdir), "%s/ipcd-fuzz-XXXXXX", base);
        FUZZ_CHECK(mkdtemp(tmpdir), "mkdtemp %s: %s", tmpdir, strerror(errno));
        atexit(tmpdir_remove);
        return tmpdir;
}

size_t fuzz_utf8_char(const uint8_t *s, size_t n) {
        static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        size_t len, i;
        uint32_t cp;

        if ((s[0] & 0x80) == 0)
                return 1;
        if ((s[0] & 0xe0) == 0xc0) {
                len = 2;
                cp = s[0] & 0x1fu;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                cp = s[0] & 0x0fu;
        } else if ((s[0] & 0xf8) == 0xf0) {
                len = 4;
                cp = s[0] & 0x07u;
        } else
                return 0;
        if (n < len)
                return 0;
        for (i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3fu);
        }
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

bool fuzz_utf8_valid(const uint8_t *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                size_t k = fuzz_utf8_char(s + i, n - i);
                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

uint8_t fuzz_u8(FuzzInput *in) {
        return in->pos < in->size ? in->data[in->pos++] : 0;
}

uint16_t fuzz_u16(FuzzInput *in) {
        uint16_t v = fuzz_u8(in);
        return (uint16_t)(v | fuzz_u8(in) << 8);
}

uint32_t fuzz_u32(FuzzInput *in) {
        uint32_t v = fuzz_u16(in);
        return v | (uint32_t)fuzz_u16(in) << 16;
}

uint64_t fuzz_u64(FuzzInput *in) {
        uint64_t v = fuzz_u32(in);
        return v | (uint64_t)fuzz_u32(in) << 32;
}

size_t fuzz_bytes(FuzzInput *in, size_t n, const uint8_t **ret) {
        size_t left = in->size - in->pos;

        if (n > left)
                n = left;
        *ret = in->data + in->pos;
        in->pos += n;
        return n;
}
