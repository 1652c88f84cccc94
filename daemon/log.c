/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "sd.h"

static int max_level = LOG_NOTICE;
static bool to_journal;

void log_set_journal(bool on) {
        to_journal = on;
}

void log_set_max_level(int level) {
        max_level = level < LOG_EMERG ? LOG_EMERG : level > LOG_DEBUG ? LOG_DEBUG : level;
}

int log_get_max_level(void) {
        return max_level;
}

static const char *level_name(int level) {
        switch (level) {
        case LOG_EMERG:
        case LOG_ALERT:
        case LOG_CRIT:
        case LOG_ERR:
                return "error";
        case LOG_WARNING:
                return "warning";
        case LOG_NOTICE:
                return "notice";
        case LOG_INFO:
                return "info";
        default:
                return "debug";
        }
}

static int log_va(int level, int err, const char *const *fields, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static int log_va(int level, int err, const char *const *fields, const char *fmt, va_list ap) {
        int saved = errno;
        char buf[2048];

        err = abs(err);
        if (level > max_level) {
                errno = saved;
                return -err;
        }
        errno = err; /* for %m */
        vsnprintf(buf, sizeof(buf), fmt, ap);
        if (!to_journal || systemd_journal_log(level, buf, fields) < 0)
                fprintf(stderr, "ipcd[%d]: %s: %s\n", (int)getpid(), level_name(level), buf);
        errno = saved;
        return -err;
}

int log_internal(int level, int err, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_va(level, err, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int log_fields(int level, int err, const char *const *fields, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_va(level, err, fields, fmt, ap);
        va_end(ap);
        return r;
}
