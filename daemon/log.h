/* SPDX-License-Identifier: MIT */
/*
 * Logging for the daemon's edge (broker, listener, connection, main). Pure
 * modules never log. Messages go to stderr as "ipcd[PID]: <level>: text".
 * Levels are syslog's (LOG_ERR .. LOG_DEBUG); the default shows LOG_NOTICE
 * and more severe; each -v shows one level more.
 */
#pragma once

#include <syslog.h>

#include <stdbool.h>

void log_set_max_level(int level);
int log_get_max_level(void);
/* Send messages to the journal (with structured fields) instead of stderr. */
void log_set_journal(bool on);

/* Like log_internal, with extra journal fields ("IPCD_CLIENT_PID=42", NULL
 * terminated) that stderr shows as nothing. */
int log_fields(int level, int err, const char *const *fields, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Logs at @level when enabled; `%m` expands to strerror(@err) when @err is a
 * (positive or negative) errno. Returns -abs(@err) so callers can
 * `return log_error_errno(r, "Failed to ...: %m");`. */
int log_internal(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
