/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the systemd glue (daemon/sd.c): notifications caught on a
 * NOTIFY_SOCKET of our own, the watchdog interval, the journal-stream
 * check, and socket activation in a forked child that arranges fds from 3
 * on the way systemd does.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "sd.h"
#include "util.h"

/* A datagram socket in a private directory, as NOTIFY_SOCKET. */
typedef struct Notify {
        char dir[64];
        char path[128];
        int fd;
} Notify;

static void notify_open(Notify *n) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 5 };

        snprintf(n->dir, sizeof(n->dir), "/tmp/ipcd-test-sd.XXXXXX");
        cr_assert(not(zero(ptr, mkdtemp(n->dir))));
        snprintf(n->path, sizeof(n->path), "%s/notify", n->dir);
        memcpy(sa.sun_path, n->path, strlen(n->path) + 1); /* < 108: a short dir */
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert(ge(int, n->fd, 0));
        cr_assert(eq(int, bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0));
        cr_assert(eq(int, setsockopt(n->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0));
        cr_assert(eq(int, setenv("NOTIFY_SOCKET", n->path, 1), 0));
}

static void notify_close(Notify *n) {
        unsetenv("NOTIFY_SOCKET");
        close(n->fd);
        unlink(n->path);
        rmdir(n->dir);
}

/* The next datagram, NUL terminated. */
static void notify_expect(Notify *n, const char *want) {
        char buf[1024];
        ssize_t len = recv(n->fd, buf, sizeof(buf) - 1, 0);
        cr_assert(gt(sz, (size_t)(len < 0 ? 0 : len), 0), "no notification: %m");
        buf[len] = 0;
        cr_assert(eq(str, buf, (char *)want));
}

Test(notify, messages) {
        Notify n;
        char buf[1024];
        unsigned long long usec;
        ssize_t len;

        notify_open(&n);
        cr_assert(gt(int, systemd_notify_ready("Listening on 1 socket"), 0));
        notify_expect(&n, "READY=1\nSTATUS=Listening on 1 socket");
        cr_assert(gt(int, systemd_notify_ready(NULL), 0));
        notify_expect(&n, "READY=1");
        cr_assert(gt(int, systemd_notify_status("two\nlines\r"), 0));
        notify_expect(&n, "STATUS=two lines ");
        cr_assert(gt(int, systemd_notify_stopping("Stopping\nnow"), 0));
        notify_expect(&n, "STOPPING=1\nSTATUS=Stopping now");
        cr_assert(gt(int, systemd_notify_watchdog(), 0));
        notify_expect(&n, "WATCHDOG=1");

        cr_assert(gt(int, systemd_notify_reloading("Reloading"), 0));
        len = recv(n.fd, buf, sizeof(buf) - 1, 0);
        cr_assert(gt(sz, (size_t)(len < 0 ? 0 : len), 0));
        buf[len] = 0;
        cr_assert(eq(int, sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu\n", &usec), 1), "%s", buf);
        cr_assert(gt(u64, (uint64_t)usec, 0));
        cr_assert(not(zero(ptr, strstr(buf, "\nSTATUS=Reloading"))), "%s", buf);
        notify_close(&n);
}

Test(notify, without_systemd) {
        unsetenv("NOTIFY_SOCKET");
        cr_assert(eq(int, systemd_notify_ready("x"), 0));
        cr_assert(eq(int, systemd_notify_reloading(NULL), 0));
        cr_assert(eq(int, systemd_notify_stopping(NULL), 0));
        cr_assert(eq(int, systemd_notify_watchdog(), 0));
        cr_assert(eq(int, systemd_notify_status(NULL), 0));
}

Test(notify, watchdog_interval) {
        char pid[32];

        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        cr_assert(eq(u64, systemd_watchdog_interval_usec(), 0));

        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        setenv("WATCHDOG_USEC", "30000000", 1);
        setenv("WATCHDOG_PID", pid, 1);
        cr_assert(eq(u64, systemd_watchdog_interval_usec(), 15000000));

        /* Meant for another process. */
        snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
        setenv("WATCHDOG_PID", pid, 1);
        cr_assert(eq(u64, systemd_watchdog_interval_usec(), 0));
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
}

static void remove_in(const char *dir, const char *name) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        unlink(path);
}

static int child_status(pid_t pid) {
        int status, exited;
        cr_assert(eq(int, waitpid(pid, &status, 0), pid));
        exited = WIFEXITED(status);
        cr_assert(exited, "the child died by signal %d", WTERMSIG(status));
        return WEXITSTATUS(status);
}

Test(journal, stderr_stream) {
        char dir[64] = "/tmp/ipcd-test-sd.XXXXXX", path[128], env[64];
        struct stat st;
        int fd, saved;
        bool on, off;

        cr_assert(not(zero(ptr, mkdtemp(dir))));
        snprintf(path, sizeof(path), "%s/stream", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert(ge(int, fd, 0));
        cr_assert(eq(int, fstat(fd, &st), 0));
        snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);

        /* Stderr on that file for a moment. */
        saved = dup(STDERR_FILENO);
        cr_assert(ge(int, saved, 0));
        dup2(fd, STDERR_FILENO);
        setenv("JOURNAL_STREAM", env, 1);
        on = systemd_stderr_is_journal();
        dup2(saved, STDERR_FILENO);
        off = systemd_stderr_is_journal(); /* the same variable, another stderr */
        close(saved);
        close(fd);
        unlink(path);
        rmdir(dir);
        cr_assert(on);
        cr_assert(not(off));

        static const char *const bad[] = { "", "1", "1:", ":1", "1:2:3", "x:y", "1:2x", "-1:-1" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                setenv("JOURNAL_STREAM", bad[i], 1);
                cr_assert(not(systemd_stderr_is_journal()), "%s", bad[i]);
        }
        unsetenv("JOURNAL_STREAM");
        cr_assert(not(systemd_stderr_is_journal()));
}

/* Where a journal entry goes is libsystemd's fixed path: catch it in a
 * child with a private mount namespace and its own /run, so the test
 * writes nothing to the machine's journal. Returns the exit code to use. */
static int journal_child(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };
        const char *fields[] = { "IPCD_CLIENT_PID=42", "IPCD_TOPIC=a/b\nwith newline",
                                 "_PID=1",           "lower=x",
                                 "NOEQUALS",         "=x",
                                 "1ABC=x",           "IPCD_ERROR=permission-denied",
                                 NULL };
        struct timeval tv = { .tv_sec = 5 };
        char buf[4096];
        ssize_t n;
        int fd;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
                return 77;
        if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0)
                return 10;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return 11;
        if (systemd_journal_log(LOG_WARNING, "test message", fields) < 0)
                return 12;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
                return 13;
        buf[n] = 0;
        if (!memmem(buf, (size_t)n, "MESSAGE=test message\n", 21) ||
            !memmem(buf, (size_t)n, "PRIORITY=4\n", 11) ||
            !memmem(buf, (size_t)n, "SYSLOG_IDENTIFIER=ipcd\n", 23) ||
            !memmem(buf, (size_t)n, "IPCD_CLIENT_PID=42\n", 19) ||
            !memmem(buf, (size_t)n, "IPCD_ERROR=permission-denied\n", 29))
                return 14;
        /* A value with a newline goes in the binary form: NAME\n, le64 size, bytes. */
        if (!memmem(buf, (size_t)n, "IPCD_TOPIC\n\x10\0\0\0\0\0\0\0a/b\nwith newline\n", 11 + 8 + 16 + 1))
                return 15;
        /* Fields a client may not set, or that are no fields at all. */
        if (memmem(buf, (size_t)n, "\n_PID=", 6) || memmem(buf, (size_t)n, "lower", 5) ||
            memmem(buf, (size_t)n, "NOEQUALS", 8) || memmem(buf, (size_t)n, "1ABC", 4))
                return 16;
        /* A level out of range is clamped; a NULL message is empty. */
        if (systemd_journal_log(99, NULL, NULL) < 0)
                return 17;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0 || !memmem(buf, (size_t)n, "PRIORITY=7\n", 11) || !memmem(buf, (size_t)n, "MESSAGE=\n", 9))
                return 18;
        return 0;
}

Test(journal, send) {
        pid_t pid;
        int code;

        if (geteuid() != 0)
                cr_skip_test("needs root for a private /run to catch the entry in");
        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0)
                _exit(journal_child());
        code = child_status(pid);
        if (code == 77)
                cr_skip_test("cannot make a private mount namespace here");
        cr_assert(eq(int, code, 0), "the journal entry was not as expected (step %d)", code);
}

/* ------------------------------------------------------------------------ */
/* Socket activation, in a child that owns fds 3 and up.                     */

static int listening_socket(const char *dir, const char *name) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                return -1;
        return fd;
}

/* Puts @fds at 3, 4, ... (as systemd passes them) and sets the LISTEN_*
 * variables; returns false when it could not. */
static bool pass_fds(const int *fds, int n, const char *names) {
        char buf[32];
        int moved[8];
        /* Out of the way first, so that dup2 cannot clobber one of them. */
        for (int i = 0; i < n; i++) {
                moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
                if (moved[i] < 0)
                        return false;
        }
        for (int i = 0; i < n; i++)
                if (dup2(moved[i], 3 + i) < 0)
                        return false;
        snprintf(buf, sizeof(buf), "%d", (int)getpid());
        setenv("LISTEN_PID", buf, 1);
        snprintf(buf, sizeof(buf), "%d", n);
        setenv("LISTEN_FDS", buf, 1);
        if (names)
                setenv("LISTEN_FDNAMES", names, 1);
        else
                unsetenv("LISTEN_FDNAMES");
        return true;
}

Test(activation, two_sockets) {
        char dir[64] = "/tmp/ipcd-test-sd.XXXXXX";
        pid_t pid;

        cr_assert(not(zero(ptr, mkdtemp(dir))));
        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0) {
                int fds[2] = { listening_socket(dir, "a"), listening_socket(dir, "b") };
                SystemdSocket *s = NULL;
                char *err = NULL;
                int n;

                if (fds[0] < 0 || fds[1] < 0 || !pass_fds(fds, 2, "ipcd:second"))
                        _exit(10);
                n = systemd_listen_sockets(&s, &err);
                if (n != 2 || err)
                        _exit(11);
                if (s[0].fd != 3 || s[1].fd != 4 || strcmp(s[0].name, "ipcd") != 0 ||
                    strcmp(s[1].name, "second") != 0)
                        _exit(12);
                if (!(fcntl(3, F_GETFL) & O_NONBLOCK) || !(fcntl(4, F_GETFD) & FD_CLOEXEC))
                        _exit(13);
                if (getenv("LISTEN_FDS") || getenv("LISTEN_PID") || getenv("LISTEN_FDNAMES"))
                        _exit(14);
                systemd_sockets_free(s, 2);
                if (fcntl(3, F_GETFD) >= 0 || fcntl(4, F_GETFD) >= 0)
                        _exit(15);
                _exit(0);
        }
        cr_assert(eq(int, child_status(pid), 0));
        remove_in(dir, "a");
        remove_in(dir, "b");
        rmdir(dir);
}

Test(activation, without_names) {
        char dir[64] = "/tmp/ipcd-test-sd.XXXXXX";
        pid_t pid;

        cr_assert(not(zero(ptr, mkdtemp(dir))));
        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0) {
                int fd = listening_socket(dir, "a");
                SystemdSocket *s = NULL;
                if (fd < 0 || !pass_fds(&fd, 1, NULL))
                        _exit(10);
                if (systemd_listen_sockets(&s, NULL) != 1 || strcmp(s[0].name, "unknown") != 0)
                        _exit(11);
                systemd_sockets_free(s, 1);
                _exit(0);
        }
        cr_assert(eq(int, child_status(pid), 0));
        remove_in(dir, "a");
        rmdir(dir);
}

/* A socket that is not listening (or not a stream): refused, and every
 * passed fd is closed. */
Test(activation, refuses_other_sockets) {
        char dir[64] = "/tmp/ipcd-test-sd.XXXXXX";
        pid_t pid;

        cr_assert(not(zero(ptr, mkdtemp(dir))));
        pid = fork();
        cr_assert(ge(int, pid, 0));
        if (pid == 0) {
                int sv[2], fds[3];
                SystemdSocket *s = NULL;
                char *err = NULL;
                int r;

                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                        _exit(10);
                fds[0] = listening_socket(dir, "a");
                fds[1] = sv[0];
                fds[2] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                if (fds[0] < 0 || fds[2] < 0 || !pass_fds(fds, 3, "a:b:c"))
                        _exit(11);
                r = systemd_listen_sockets(&s, &err);
                if (r != -EPROTOTYPE || s)
                        _exit(12);
                if (!err || strcmp(err, "fd 4 (name 'b') is not a listening Unix stream socket") != 0)
                        _exit(13);
                free(err);
                for (int fd = 3; fd < 6; fd++)
                        if (fcntl(fd, F_GETFD) >= 0)
                                _exit(14);
                _exit(0);
        }
        cr_assert(eq(int, child_status(pid), 0));
        remove_in(dir, "a");
        rmdir(dir);
}

Test(activation, not_activated) {
        SystemdSocket *s = (SystemdSocket *)1;
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        cr_assert(eq(int, systemd_listen_sockets(&s, NULL), 0));
        cr_assert(zero(ptr, s));
        cr_assert(zero(ptr, systemd_sockets_free(NULL, 0)));
}
