/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stddef.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "listener.h"
#include "log.h"
#include "util.h"

/* Connections taken per readiness callback, so a connect storm cannot starve
 * the clients already connected. */
#define ACCEPT_BATCH 64

struct Listener {
        Broker *broker;
        int fd;
        int reserve_fd; /* spent when accept() hits EMFILE */
        struct event *ev;
        char *path;
        dev_t dev;
        ino_t ino;
};

static int sockaddr_fill(struct sockaddr_un *sa, const char *path) {
        size_t len = strlen(path);
        if (len == 0 || len >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, path, len);
        return 0;
}

/* Is something accepting connections at @sa? */
static int socket_is_live(const struct sockaddr_un *sa) {
        _cleanup_(closep) int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
                return 1;
        return errno == ECONNREFUSED ? 0 : -errno;
}

static int bind_path(int fd, const char *path) {
        struct sockaddr_un sa;
        struct stat st;
        int r;

        r = sockaddr_fill(&sa, path);
        if (r < 0)
                return log_error_errno(r, "Socket path '%s' is too long for a Unix socket", path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                return 0;
        if (errno != EADDRINUSE)
                return log_error_errno(errno, "Failed to bind to %s: %m", path);

        /* Something is there. Replace it only if it is a socket nobody
         * answers on: the leftover of a broker that died. */
        if (lstat(path, &st) < 0)
                return log_error_errno(errno, "Failed to bind to %s: %m", path);
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(EEXIST, "%s exists and is not a socket, refusing to replace it",
                                       path);
        r = socket_is_live(&sa);
        if (r > 0)
                return log_error_errno(EADDRINUSE,
                                       "Another broker is already listening on %s", path);
        if (r < 0)
                return log_error_errno(r, "Failed to check whether %s is in use: %m", path);
        log_notice("Removing stale socket %s", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove stale socket %s: %m", path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind to %s: %m", path);
        return 0;
}

/* Creates the socket's directory when it is missing (one level, as
 * /run/ipcd). */
static void make_parent_dir(const char *path) {
        char *dir = strdup(path), *slash;
        if (!dir)
                return;
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                if (mkdir(dir, 0755) == 0)
                        log_info("Created %s", dir);
        }
        free(dir);
}

static void on_accept(evutil_socket_t fd, short what, void *userdata) {
        Listener *l = userdata;
        int i;

        for (i = 0; i < ACCEPT_BATCH; i++) {
                struct ucred cred;
                socklen_t len = sizeof(cred);
                int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return;
                        if ((errno == EMFILE || errno == ENFILE) && l->reserve_fd >= 0) {
                                /* Out of fds: the pending connection would keep the
                                 * socket readable and the loop spinning. Spend the
                                 * reserve fd to take it and close it at once. */
                                log_warning("Out of file descriptors, refusing a connection");
                                l->reserve_fd = safe_close(l->reserve_fd);
                                cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                                safe_close(cfd);
                                l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                                l->broker->stats.connections_refused++;
                                return;
                        }
                        log_warning_errno(errno, "accept() failed: %m");
                        return;
                }
                if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                        log_warning_errno(errno, "Failed to read peer credentials, closing: %m");
                        safe_close(cfd);
                        continue;
                }
                broker_accept(l->broker, cfd, cred.pid, cred.uid, cred.gid);
        }
}

static int listener_watch(Listener *l) {
        l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        l->ev = event_new(l->broker->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
        if (!l->ev || event_add(l->ev, NULL) < 0)
                return -ENOMEM;
        return 0;
}

int listener_new_from_fd(Listener **ret, Broker *b, int fd) {
        struct sockaddr_un sa = { 0 };
        socklen_t len = sizeof(sa);
        Listener *l;
        int flags, r;

        l = calloc(1, sizeof(*l));
        if (!l) {
                safe_close(fd);
                return -ENOMEM;
        }
        l->broker = b;
        l->fd = fd;
        l->reserve_fd = -1;
        flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
                fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && len > offsetof(struct sockaddr_un, sun_path) &&
            sa.sun_path[0])
                l->path = strndup(sa.sun_path, sizeof(sa.sun_path));
        else
                l->path = strdup("(socket from systemd)");
        if (!l->path) {
                listener_free(l);
                return -ENOMEM;
        }
        r = listener_watch(l);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int listener_new(Listener **ret, Broker *b, const char *path, mode_t mode, int64_t gid) {
        Listener *l;
        struct stat st;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->broker = b;
        l->reserve_fd = -1;
        l->path = strdup(path);
        l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (!l->path || l->fd < 0) {
                r = l->path ? log_error_errno(errno, "Failed to create socket: %m") : -ENOMEM;
                goto fail;
        }
        make_parent_dir(path);
        r = bind_path(l->fd, path);
        if (r < 0)
                goto fail;
        /* Remember what we created, so shutdown removes only our own file. */
        if (stat(path, &st) == 0) {
                l->dev = st.st_dev;
                l->ino = st.st_ino;
        }
        if (gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) < 0) {
                r = log_error_errno(errno, "Failed to set the group of %s to %lld: %m", path,
                                    (long long)gid);
                goto fail;
        }
        if (chmod(path, mode) < 0) {
                r = log_error_errno(errno, "Failed to set mode of %s: %m", path);
                goto fail;
        }
        if (listen(l->fd, SOMAXCONN) < 0) {
                r = log_error_errno(errno, "Failed to listen on %s: %m", path);
                goto fail;
        }
        r = listener_watch(l);
        if (r < 0)
                goto fail;
        *ret = l;
        return 0;
fail:
        listener_free(l);
        return r;
}

Listener *listener_free(Listener *l) {
        struct stat st;

        if (!l)
                return NULL;
        if (l->ev)
                event_free(l->ev);
        if (l->fd >= 0 && l->ino != 0 && stat(l->path, &st) == 0 && st.st_dev == l->dev &&
            st.st_ino == l->ino)
                unlink(l->path);
        safe_close(l->fd);
        safe_close(l->reserve_fd);
        free(l->path);
        free(l);
        return NULL;
}

const char *listener_path(const Listener *l) {
        return l->path;
}
