/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "sd.h"
#include "util.h"

/* At most this many caller fields per journal entry. */
#define JOURNAL_MAX_FIELDS 32

static void names_free(char **names) {
        if (!names)
                return;
        for (char **n = names; *n; n++)
                free(*n);
        free(names);
}

SystemdSocket *systemd_sockets_free(SystemdSocket *s, size_t n) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                safe_close(s[i].fd);
                free(s[i].name);
        }
        free(s);
        return NULL;
}

int systemd_listen_sockets(SystemdSocket **ret, char **ret_error) {
        char **names = NULL;
        SystemdSocket *s = NULL;
        int n, r, i;

        if (ret_error)
                *ret_error = NULL;
        n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
                if (ret_error && asprintf(ret_error, "cannot take the sockets systemd passed: %s",
                                          strerror(-n)) < 0)
                        *ret_error = NULL;
                return n;
        }
        if (n == 0) {
                names_free(names);
                *ret = NULL;
                return 0;
        }

        s = calloc((size_t)n, sizeof(*s));
        if (!s) {
                r = -ENOMEM;
                goto fail;
        }
        for (i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i, flags;
                const char *name = names && names[i] ? names[i] : "unknown";

                r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
                if (r <= 0) {
                        if (r == 0)
                                r = -EPROTOTYPE;
                        if (ret_error &&
                            asprintf(ret_error, "fd %d (name '%s') %s", fd, name,
                                     r == -EPROTOTYPE ? "is not a listening Unix stream socket"
                                                      : strerror(-r)) < 0)
                                *ret_error = NULL;
                        goto fail;
                }
                flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                        r = -errno;
                        if (ret_error && asprintf(ret_error, "fd %d (name '%s'): cannot make it non-blocking: %s",
                                                  fd, name, strerror(-r)) < 0)
                                *ret_error = NULL;
                        goto fail;
                }
        }
        for (i = 0; i < n; i++) {
                s[i].name = strdup(names && names[i] ? names[i] : "unknown");
                if (!s[i].name) {
                        r = -ENOMEM;
                        goto fail_names;
                }
        }
        for (i = 0; i < n; i++)
                s[i].fd = SD_LISTEN_FDS_START + i;
        names_free(names);
        *ret = s;
        return n;

fail_names:
        for (i = 0; i < n; i++)
                free(s[i].name);
fail:
        for (i = 0; i < n; i++)
                close(SD_LISTEN_FDS_START + i);
        free(s);
        names_free(names);
        if (r == -ENOMEM && ret_error && !*ret_error)
                *ret_error = strdup("out of memory");
        return r;
}

/* Sends @head (e.g. "READY=1") plus STATUS=@status when @status is set. */
static int notify(const char *head, const char *status) {
        _cleanup_(freep) char *msg = NULL;
        if (!status)
                return sd_notify(0, head);
        if (asprintf(&msg, "%s\nSTATUS=%s", head, status) < 0)
                return -ENOMEM;
        /* A status is one line: a newline would start a new assignment. */
        for (char *p = msg + strlen(head) + 1; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        return sd_notify(0, msg);
}

int systemd_notify_ready(const char *status) {
        return notify("READY=1", status);
}

int systemd_notify_status(const char *status) {
        _cleanup_(freep) char *msg = NULL;
        if (!status)
                return 0;
        msg = strdup(status);
        if (!msg)
                return -ENOMEM;
        for (char *p = msg; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        return sd_notifyf(0, "STATUS=%s", msg);
}

int systemd_notify_reloading(const char *status) {
        struct timespec ts;
        char head[64];

        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(head, sizeof(head), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
        return notify(head, status);
}

int systemd_notify_stopping(const char *status) {
        return notify("STOPPING=1", status);
}

int systemd_notify_watchdog(void) {
        return sd_notify(0, "WATCHDOG=1");
}

uint64_t systemd_watchdog_interval_usec(void) {
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec / 2 > 0 ? usec / 2 : 1;
}

bool systemd_stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char *end;

        if (!e || !*e)
                return false;
        errno = 0;
        dev = strtoull(e, &end, 10);
        if (errno || end == e || *end != ':')
                return false;
        e = end + 1;
        ino = strtoull(e, &end, 10);
        if (errno || end == e || *end)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* "NAME=..." with NAME a journal field name a client may set. */
static bool field_ok(const char *f) {
        size_t i;
        if (!f || f[0] == '_' || (f[0] >= '0' && f[0] <= '9'))
                return false;
        for (i = 0; f[i] && f[i] != '='; i++)
                if (!((f[i] >= 'A' && f[i] <= 'Z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '_'))
                        return false;
        return i > 0 && i <= 64 && f[i] == '=';
}

int systemd_journal_log(int level, const char *msg, const char *const *fields) {
        struct iovec iov[3 + JOURNAL_MAX_FIELDS];
        _cleanup_(freep) char *m = NULL;
        char prio[16];
        size_t n = 0, mlen = strlen(msg ? msg : "");

        m = malloc(sizeof("MESSAGE=") - 1 + mlen + 1);
        if (!m)
                return -ENOMEM;
        memcpy(m, "MESSAGE=", sizeof("MESSAGE=") - 1);
        memcpy(m + sizeof("MESSAGE=") - 1, msg ? msg : "", mlen + 1);
        iov[n++] = (struct iovec){ m, strlen(m) };
        snprintf(prio, sizeof(prio), "PRIORITY=%d", level < 0 ? 0 : level > 7 ? 7 : level);
        iov[n++] = (struct iovec){ prio, strlen(prio) };
        iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=ipcd", sizeof("SYSLOG_IDENTIFIER=ipcd") - 1 };
        for (size_t i = 0; fields && fields[i] && n < ARRAY_SIZE(iov); i++)
                if (field_ok(fields[i]))
                        iov[n++] = (struct iovec){ (char *)fields[i], strlen(fields[i]) };
        return sd_journal_sendv(iov, (int)n);
}
