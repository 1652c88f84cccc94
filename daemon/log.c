/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_NOTICE;

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

int log_internal(int level, int err, const char *fmt, ...) {
        int saved = errno;
        char buf[2048];
        va_list ap;

        err = abs(err);
        if (level > max_level) {
                errno = saved;
                return -err;
        }
        errno = err; /* for %m */
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        fprintf(stderr, "ipcd[%d]: %s: %s\n", (int)getpid(), level_name(level), buf);
        errno = saved;
        return -err;
}
