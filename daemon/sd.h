/* SPDX-License-Identifier: MIT */
/*
 * systemd integration: socket activation, the notification protocol
 * (readiness, reload, stop, watchdog) and the journal. The only file that
 * includes libsystemd's headers. Every function here is harmless when ipcd
 * does not run under systemd: notifications are then no-ops returning 0.
 *
 * (Our names start with systemd_, not sd_, which is libsystemd's own
 * namespace.)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A listening socket systemd passed to us (socket activation). */
typedef struct SystemdSocket {
        int fd;     /* owned by whoever holds the SystemdSocket */
        char *name; /* FileDescriptorName= of the socket unit, "unknown" without one */
} SystemdSocket;

/*
 * Takes the sockets systemd passed (LISTEN_FDS for our pid), and unsets the
 * LISTEN_* variables so nothing we start inherits them. Each must be a
 * listening AF_UNIX SOCK_STREAM socket; they are made O_NONBLOCK (and are
 * O_CLOEXEC already).
 *
 * Returns the number of sockets (0: not socket-activated) with *ret a
 * malloc'd array of them (NULL for 0) to release with systemd_sockets_free().
 * On error returns a negative errno, closes every passed fd, and sets
 * *ret_error (when not NULL) to a malloc'd message: -EPROTOTYPE for a passed
 * fd that is not a listening Unix stream socket ("fd 3 (name 'ipcd') is not
 * a listening Unix stream socket"), else the errno of libsystemd or fcntl.
 */
int systemd_listen_sockets(SystemdSocket **ret, char **ret_error);

/* Closes the fds still open (fd >= 0) of the @n sockets, frees names and
 * array; returns NULL. */
SystemdSocket *systemd_sockets_free(SystemdSocket *s, size_t n);

/* Notifications (sd_notify): > 0 sent, 0 when there is no NOTIFY_SOCKET,
 * negative errno. @status (may be NULL) becomes STATUS=, one line of text
 * shown by `systemctl status`; newlines in it are replaced by spaces. */
int systemd_notify_ready(const char *status);     /* READY=1; also ends a reload */
int systemd_notify_status(const char *status);    /* STATUS= alone */
int systemd_notify_reloading(const char *status); /* RELOADING=1, MONOTONIC_USEC=now */
int systemd_notify_stopping(const char *status);  /* STOPPING=1 */
int systemd_notify_watchdog(void);                /* WATCHDOG=1 */

/* How often to send WATCHDOG=1: half of $WATCHDOG_USEC when the watchdog is
 * on for this process, in microseconds; 0 when it is off. */
uint64_t systemd_watchdog_interval_usec(void);

/* True when stderr is the journal's stream ($JOURNAL_STREAM names stderr's
 * device and inode): what LOG_TARGET_AUTO picks the journal by. */
bool systemd_stderr_is_journal(void);

/*
 * Sends one entry to the journal: MESSAGE=@msg, PRIORITY=@level (syslog),
 * SYSLOG_IDENTIFIER=ipcd, and @fields, a NULL-terminated array (may be NULL)
 * of "NAME=value" strings with NAME of [A-Z0-9_], not starting with '_'
 * (e.g. "IPCD_CLIENT_PID=42", "IPCD_CLIENT_UID=1000", "IPCD_TOPIC=a/b",
 * "IPCD_ERROR=permission-denied"); entries not of that form are skipped.
 * Values may hold any bytes but NUL. 0 or a negative errno.
 */
int systemd_journal_log(int level, const char *msg, const char *const *fields);
