/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "topicname.h"
#include "utf8.h"


static TopicCheck check(const char *str, size_t len, size_t max_len, bool filter) {
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0, level_start = 0, levels = 1;

        if (len == 0)
                return TOPIC_E_EMPTY;
        if (len > max_len)
                return TOPIC_E_TOO_LONG;

        while (i < len) {
                unsigned char c = s[i];
                size_t n;

                if (c < 0x20 || c == 0x7f)
                        return TOPIC_E_CONTROL;
                if (c == '/') {
                        if (++levels > TOPIC_MAX_LEVELS)
                                return TOPIC_E_TOO_DEEP;
                        level_start = ++i;
                        continue;
                }
                if (c == '+' || c == '#') {
                        if (!filter)
                                return TOPIC_E_WILDCARD;
                        /* A wildcard is the whole level: preceded by '/' or
                         * the start, followed by '/' or the end. */
                        if (i != level_start || (i + 1 < len && s[i + 1] != '/'))
                                return TOPIC_E_PARTIAL;
                        if (c == '#' && i + 1 != len)
                                return TOPIC_E_HASH_NOT_LAST;
                        i++;
                        continue;
                }
                n = utf8_char_len(s + i, len - i);
                if (n == 0)
                        return TOPIC_E_UTF8;
                i += n;
        }
        return TOPIC_OK;
}

TopicCheck topic_name_check(const char *s, size_t len, size_t max_len) {
        return check(s, len, max_len, false);
}

TopicCheck topic_filter_check(const char *s, size_t len, size_t max_len) {
        return check(s, len, max_len, true);
}

const char *topic_check_str(TopicCheck c) {
        static const char *const str[_TOPIC_E_MAX] = {
                [TOPIC_OK] = "valid",
                [TOPIC_E_EMPTY] = "empty topic",
                [TOPIC_E_TOO_LONG] = "topic longer than the limit",
                [TOPIC_E_UTF8] = "topic is not valid UTF-8",
                [TOPIC_E_CONTROL] = "topic contains a control character or NUL",
                [TOPIC_E_WILDCARD] = "wildcard ('+' or '#') in a topic name",
                [TOPIC_E_PARTIAL] = "wildcard must be a whole level",
                [TOPIC_E_HASH_NOT_LAST] = "'#' must be the last level",
                [TOPIC_E_TOO_DEEP] = "too many topic levels",
        };
        if ((unsigned)c >= _TOPIC_E_MAX)
                return "invalid topic";
        return str[c];
}

bool topic_filter_match(const char *f, size_t flen, const char *t, size_t tlen) {
        size_t fi = 0, ti = 0;

        /* $-topics are not matched by a leading wildcard. */
        if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
                return false;

        for (;;) {
                size_t fe = fi, te = ti;

                while (fe < flen && f[fe] != '/')
                        fe++;
                if (fe - fi == 1 && f[fi] == '#')
                        return true; /* matches this level, the parent, and below */
                if (ti > tlen)
                        /* Topic exhausted: only "parent/#" can still match. */
                        return false;
                while (te < tlen && t[te] != '/')
                        te++;
                if (!(fe - fi == 1 && f[fi] == '+')) {
                        if (fe - fi != te - ti || memcmp(f + fi, t + ti, fe - fi) != 0)
                                return false;
                }
                /* Both at the end of their last level? */
                if (fe == flen && te == tlen)
                        return true;
                if (fe == flen)
                        return false; /* filter ended, topic has more levels */
                fi = fe + 1;
                ti = te + 1; /* may step past tlen: topic has no more levels */
                if (ti > tlen) {
                        /* Filter has more levels, topic has none: only '#' fits. */
                        return flen - fi == 1 && f[fi] == '#';
                }
        }
}

bool topic_filter_is_wildcard(const char *f, size_t flen) {
        size_t i;
        for (i = 0; i < flen; i++)
                if ((f[i] == '+' || f[i] == '#') && (i == 0 || f[i - 1] == '/'))
                        return true;
        return false;
}

bool utf8_printable(const char *str, size_t len) {
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;

        while (i < len) {
                size_t n;
                if (s[i] < 0x20 || s[i] == 0x7f)
                        return false;
                n = utf8_char_len(s + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}
