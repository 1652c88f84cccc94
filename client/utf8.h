/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 validation, header only: the topic rules, the JSON reader and
 * ipcctl (which links nothing but the public library) all use it.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 character at @s (at most @len > 0 bytes), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static inline size_t utf8_char_len(const unsigned char *s, size_t len) {
        uint32_t cp;
        size_t n, i;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                n = 2;
                cp = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                n = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        if (len < n)
                return 0;
        for (i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}
