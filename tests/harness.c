/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

bool harness_in_child;
/* RLIMIT_NOFILE (soft and hard) for the next broker tb_start_nofile()
 * starts; 0 leaves the limit alone. */
static rlim_t start_nofile;

void harness_child_begin(void) {
        harness_in_child = true;
        /* Never outlive the test, never hang it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        alarm(60);
}

void tb_check(bool ok, const char *expr, const char *file, int line, const char *fmt, ...) {
        char msg[1024] = "";
        va_list ap;

        if (ok)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* The macro puts a space before the caller's format. */
        if (harness_in_child) {
                /* Criterion's reporting belongs to the test process; a
                 * forked client says what failed and exits. */
                fprintf(stderr, "%s:%d: check failed in a forked client: %s:%s\n", file, line, expr, msg);
                _exit(90);
        }
        cr_assert_fail("%s:%d: %s:%s", file, line, expr, msg);
}

static long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int try_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

void tb_start(TestBroker *b, const char *const *extra) {
        char dir[64];

        snprintf(dir, sizeof(dir), "/tmp/ipcd-test-XXXXXX");
        TB_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        tb_start_in(b, dir, extra);
}

static const char *ipcd_bin(void) {
        const char *bin = getenv("IPCD_BIN");
        return bin ? bin : "daemon/ipcd";
}

int tb_run_capture(const char *const *args, char *err, size_t err_size) {
        const char *argv[32];
        int epipe[2], status;
        size_t n = 0, have = 0;
        pid_t pid;

        argv[n++] = ipcd_bin();
        for (; args && *args && n < ARRAY_SIZE(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        TB_CHECK(pipe2(epipe, O_CLOEXEC) == 0);
        pid = fork();
        TB_CHECK(pid >= 0);
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (fd >= 0)
                        dup2(fd, STDOUT_FILENO);
                dup2(epipe[1], STDERR_FILENO);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(epipe[1]);
        for (;;) {
                ssize_t r = read(epipe[0], err + have, err_size - 1 - have);
                if (r <= 0)
                        break;
                have += (size_t)r;
        }
        err[have] = 0;
        close(epipe[0]);
        TB_CHECK(waitpid(pid, &status, 0) == pid);
        TB_CHECK(WIFEXITED(status), "ipcd died of signal %d", WTERMSIG(status));
        return WEXITSTATUS(status);
}

int tb_run(const char *const *args) {
        const char *argv[32];
        size_t n = 0;
        int status;
        pid_t pid;

        argv[n++] = ipcd_bin();
        for (; args && *args && n < ARRAY_SIZE(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        pid = fork();
        TB_CHECK(pid >= 0);
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (fd >= 0)
                        dup2(fd, STDOUT_FILENO);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        TB_CHECK(waitpid(pid, &status, 0) == pid);
        TB_CHECK(WIFEXITED(status), "ipcd died of signal %d", WTERMSIG(status));
        return WEXITSTATUS(status);
}

static void dump_log(const TestBroker *b) {
        char line[1024];
        FILE *f = fopen(b->log, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                fprintf(stderr, "  | %s", line);
        fclose(f);
}

void tb_start_in(TestBroker *b, const char *dir, const char *const *extra) {
        const char *bin = ipcd_bin();
        const char *argv[40];
        bool has_config;
        size_t n = 0;
        long deadline;

        memset(b, 0, sizeof(*b));
        snprintf(b->dir, sizeof(b->dir), "%s", dir);
        snprintf(b->sock, sizeof(b->sock), "%s/ipcd.sock", b->dir);
        snprintf(b->log, sizeof(b->log), "%s/ipcd.log", b->dir);
        b->valgrind = getenv("IPCD_VALGRIND") && strcmp(getenv("IPCD_VALGRIND"), "1") == 0;

        if (b->valgrind) {
                argv[n++] = "valgrind";
                argv[n++] = "-q";
                argv[n++] = "--leak-check=full";
                argv[n++] = "--show-leak-kinds=definite,indirect,possible";
                argv[n++] = "--errors-for-leak-kinds=definite,indirect,possible";
                argv[n++] = "--error-exitcode=99";
        }
        argv[n++] = bin;
        argv[n++] = "--socket";
        argv[n++] = b->sock;
        argv[n++] = "-v";
        /* Hermetic: an empty configuration (the built-in defaults), unless
         * the test brings its own; never a file installed on the machine. */
        has_config = false;
        for (const char *const *e = extra; e && *e; e++)
                if (strcmp(*e, "--config") == 0 || strncmp(*e, "--config=", 9) == 0)
                        has_config = true;
        if (!has_config) {
                FILE *f;
                snprintf(b->conf, sizeof(b->conf), "%s/empty.yaml", b->dir);
                f = fopen(b->conf, "we");
                TB_CHECK(f != NULL);
                fclose(f);
                argv[n++] = "--config";
                argv[n++] = b->conf;
        }
        for (; extra && *extra && n < ARRAY_SIZE(argv) - 1; extra++)
                argv[n++] = *extra;
        argv[n] = NULL;

        b->pid = fork();
        TB_CHECK(b->pid >= 0);
        if (b->pid == 0) {
                int fd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                /* A test that dies (a failed assertion, a crash) takes its
                 * broker with it. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (fd >= 0) {
                        dup2(fd, STDERR_FILENO);
                        dup2(fd, STDOUT_FILENO);
                }
                if (start_nofile > 0) {
                        struct rlimit rl = { start_nofile, start_nofile };
                        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                                _exit(126);
                }
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        deadline = now_ms() + (b->valgrind ? 30000 : 5000);
        for (;;) {
                int status, fd = try_connect(b->sock);
                if (fd >= 0) {
                        close(fd);
                        break;
                }
                if (waitpid(b->pid, &status, WNOHANG) != 0) {
                        b->pid = 0;
                        dump_log(b);
                        cr_assert_fail("ipcd exited during startup (its log is above)");
                }
                TB_CHECK(now_ms() < deadline, "ipcd did not start listening on %s", b->sock);
                usleep(10000);
        }
}


void tb_stop(TestBroker *b) {
        int status = 0;
        struct stat st;
        pid_t r;
        long deadline = now_ms() + (b->valgrind ? 60000 : 10000);
        long long internal;

        if (b->pid <= 0)
                return;
        /* The broker's own consistency checks found nothing. */
        internal = tb_status_number(b, "internal_errors");
        if (internal != 0)
                dump_log(b);
        TB_CHECK(internal == 0, "the broker counted %lld internal errors", internal);
        kill(b->pid, SIGTERM);
        while ((r = waitpid(b->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
                usleep(10000);
        if (r == 0) {
                kill(b->pid, SIGKILL);
                waitpid(b->pid, &status, 0);
                dump_log(b);
                cr_assert_fail("ipcd did not exit within the deadline after SIGTERM");
        }
        b->pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                dump_log(b);
        TB_CHECK(WIFEXITED(status), "ipcd died of signal %d", WTERMSIG(status));
        TB_CHECK(WEXITSTATUS(status) == 0, "ipcd exited with %d%s", WEXITSTATUS(status),
                  WEXITSTATUS(status) == 99 ? " (valgrind found errors)" : "");
        TB_CHECK(lstat(b->sock, &st) < 0 && errno == ENOENT, "socket file left behind");
        unlink(b->log);
        if (b->conf[0])
                unlink(b->conf);
        rmdir(b->dir);
}

void tb_kill(TestBroker *b) {
        if (b->pid <= 0)
                return;
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
        unlink(b->sock);
        unlink(b->log);
        if (b->conf[0])
                unlink(b->conf);
        rmdir(b->dir);
}

int tb_fd_count(const TestBroker *b) {
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)b->pid);
        d = opendir(path);
        TB_CHECK(d, "opendir %s: %s", path, strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

int tb_wait_fd_count(const TestBroker *b, int want) {
        long deadline = now_ms() + 5000;
        int n;
        while ((n = tb_fd_count(b)) != want && now_ms() < deadline)
                usleep(5000);
        return n;
}

long tb_rss_kib(const TestBroker *b) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)b->pid);
        f = fopen(path, "re");
        TB_CHECK(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

void raw_frame_free(RawFrame *f) {
        size_t i;
        for (i = 0; i < f->n_fds; i++)
                if (f->fds[i] >= 0)
                        close(f->fds[i]);
        free(f->buf);
        free(f->topic);
        memset(f, 0, sizeof(*f));
}

int raw_connect(const TestBroker *b) {
        int fd = try_connect(b->sock);
        TB_CHECK(fd >= 0, "connect %s: %s", b->sock, strerror(-fd));
        return fd;
}

void raw_write(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                TB_CHECK(n > 0, "send: %s", strerror(errno));
                p += n;
                len -= (size_t)n;
        }
}

void raw_send(int fd, uint8_t kind, uint16_t flags, uint32_t type, uint64_t corr,
              const void *meta, size_t meta_len, const char *topic, const void *payload,
              size_t payload_len) {
        size_t tlen = topic ? strlen(topic) : 0;
        size_t cap = WIRE_HEADER_SIZE + meta_len + tlen + payload_len, n;
        uint8_t *buf = malloc(cap);

        TB_CHECK(buf);
        n = wire_frame_encode(buf, cap, kind, flags, type, corr, 0, meta, meta_len, topic, tlen,
                              payload, payload_len);
        TB_CHECK(n == cap);
        raw_write(fd, buf, n);
        free(buf);
}

/* The fds received on each test socket, in arrival order, until a frame
 * claims them (the receiver side of the protocol's fd rule). */
static struct {
        int sock;
        int fds[1024];
        size_t n;
} fdq[64];

static size_t fdq_slot(int sock) {
        size_t i, free_slot = ARRAY_SIZE(fdq);
        for (i = 0; i < ARRAY_SIZE(fdq); i++) {
                if (fdq[i].n > 0 && fdq[i].sock == sock)
                        return i;
                if (fdq[i].n == 0 && free_slot == ARRAY_SIZE(fdq))
                        free_slot = i;
        }
        TB_CHECK(free_slot < ARRAY_SIZE(fdq), "too many sockets with pending fds");
        fdq[free_slot].sock = sock;
        return free_slot;
}

/* Reads exactly @len bytes before @deadline; 1, 0 on EOF, -ETIMEDOUT. */
static int read_full(int fd, uint8_t *buf, size_t len, long deadline) {
        while (len > 0) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int) * 253)];
                } ctrl;
                struct iovec iov = { buf, len };
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                                      .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf) };
                struct pollfd p = { .fd = fd, .events = POLLIN };
                long left = deadline - now_ms();
                struct cmsghdr *cm;
                ssize_t n;

                if (left <= 0 || poll(&p, 1, (int)left) == 0)
                        return -ETIMEDOUT;
                n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ECONNRESET)
                        return 0;
                TB_CHECK(n >= 0, "recvmsg: %s", strerror(errno));
                TB_CHECK(!(msg.msg_flags & MSG_CTRUNC), "control data truncated");
                for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), i, slot;
                        if (cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        slot = fdq_slot(fd);
                        TB_CHECK(fdq[slot].n + k <= ARRAY_SIZE(fdq[slot].fds));
                        for (i = 0; i < k; i++)
                                memcpy(&fdq[slot].fds[fdq[slot].n++], CMSG_DATA(cm) + i * sizeof(int),
                                       sizeof(int));
                }
                if (n == 0)
                        return 0;
                buf += n;
                len -= (size_t)n;
        }
        return 1;
}

int raw_read(int fd, RawFrame *f, int timeout_ms) {
        long deadline = now_ms() + timeout_ms;
        uint8_t hdr[WIRE_HEADER_SIZE];
        const char *why = NULL;
        int r;

        memset(f, 0, sizeof(*f));
        r = read_full(fd, hdr, sizeof(hdr), deadline);
        if (r <= 0)
                return r;
        TB_CHECK(wire_header_decode(hdr, NULL, &f->h, &why) == WIRE_E_OK,
                  "broker sent a bad header: %s", why);
        f->buf = calloc(1, f->h.size - WIRE_HEADER_SIZE + 1);
        TB_CHECK(f->buf);
        r = read_full(fd, f->buf, f->h.size - WIRE_HEADER_SIZE, deadline);
        TB_CHECK(r == 1, "frame body did not arrive");
        f->meta = f->buf;
        /* Move the topic one byte on so it can be NUL terminated. */
        f->topic = calloc(1, f->h.topic_len + 1u);
        TB_CHECK(f->topic);
        memcpy(f->topic, f->buf + f->h.meta_len, f->h.topic_len);
        f->payload = f->buf + f->h.meta_len + f->h.topic_len;
        if (f->h.n_fds > 0) {
                size_t slot = fdq_slot(fd), i;
                TB_CHECK(fdq[slot].n >= f->h.n_fds, "frame declares %u fds, %zu arrived",
                          f->h.n_fds, fdq[slot].n);
                for (i = 0; i < f->h.n_fds; i++)
                        f->fds[i] = fdq[slot].fds[i];
                f->n_fds = f->h.n_fds;
                fdq[slot].n -= f->h.n_fds;
                memmove(fdq[slot].fds, fdq[slot].fds + f->h.n_fds, fdq[slot].n * sizeof(int));
        }
        return 1;
}

size_t raw_pending_fds(int fd) {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(fdq); i++)
                if (fdq[i].n > 0 && fdq[i].sock == fd)
                        return fdq[i].n;
        return 0;
}

void raw_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 253)];
        } ctrl;
        struct iovec iov = { (void *)buf, len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cm;
        ssize_t n;

        TB_CHECK(n_fds > 0 && n_fds <= 253);
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        TB_CHECK(n > 0, "sendmsg: %s", strerror(errno));
        if ((size_t)n < len)
                raw_write(fd, (const uint8_t *)buf + n, len - (size_t)n);
}

void raw_expect(int fd, uint8_t kind, RawFrame *f) {
        int r = raw_read(fd, f, 5000);
        TB_CHECK(r == 1, "expected %s, got %s", wire_kind_name(kind),
                  r == 0 ? "EOF" : "nothing (timeout)");
        if (f->h.kind == WIRE_ERROR && kind != WIRE_ERROR)
                /* Only an ERROR has the 8 bytes of meta read here. */
                TB_CHECK(false, "expected %s, got ERROR %s: %.*s", wire_kind_name(kind),
                         wire_error_name(le32_read(f->meta)), (int)f->h.payload_len,
                         (const char *)f->payload);
        TB_CHECK(f->h.kind == kind, "expected %s, got %s", wire_kind_name(kind),
                  wire_kind_name(f->h.kind));
}

void raw_expect_error(int fd, WireError code, bool fatal) {
        RawFrame f;
        uint32_t got;

        raw_expect(fd, WIRE_ERROR, &f);
        got = le32_read(f.meta);
        TB_CHECK(got == (uint32_t)code, "expected error %s, got %s: %.*s", wire_error_name(code),
                  wire_error_name(got), (int)f.h.payload_len, (const char *)f.payload);
        TB_CHECK(f.h.payload_len > 0, "ERROR frame without text");
        TB_CHECK(!!(f.h.flags & WIRE_F_FATAL) == fatal, "error %s should%s be fatal",
                  wire_error_name(code), fatal ? "" : " not");
        raw_frame_free(&f);
        if (fatal) {
                int r = raw_read(fd, &f, 5000);
                TB_CHECK(r == 0, "broker did not close the connection after a fatal error");
        }
}

int raw_client(const TestBroker *b, const char *name, uint32_t *ret_id) {
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        WireWelcome w;
        RawFrame f;
        int fd = raw_connect(b);

        raw_send(fd, WIRE_HELLO, 0, 0, 1, meta, sizeof(meta), NULL, name, strlen(name));
        raw_expect(fd, WIRE_WELCOME, &f);
        TB_CHECK(f.h.corr == 1);
        TB_CHECK(wire_welcome_decode(f.meta, &w));
        if (ret_id)
                *ret_id = w.client_id;
        raw_frame_free(&f);
        return fd;
}

void raw_subscribe(int fd, uint32_t id, const char *filter, const uint32_t *types,
                   size_t n_types) {
        uint8_t meta[WIRE_META_SUBSCRIBE], payload[4 * WIRE_MAX_TYPES_PER_SUB];
        WireSubscribe s = { .sub_id = id, .n_types = (uint16_t)n_types };
        RawFrame f;
        size_t i;

        for (i = 0; i < n_types; i++)
                le32_write(payload + 4 * i, types[i]);
        wire_subscribe_encode(meta, &s);
        raw_send(fd, WIRE_SUBSCRIBE, 0, 0, 1000 + id, meta, sizeof(meta), filter, payload,
                 4 * n_types);
        raw_expect(fd, WIRE_ACK, &f);
        TB_CHECK(f.h.corr == 1000 + id);
        raw_frame_free(&f);
}

void raw_publish(int fd, const char *topic, uint32_t type, const void *data, size_t len) {
        raw_send(fd, WIRE_PUBLISH, 0, type, 0, NULL, 0, topic, data, len);
}

void raw_sync(int fd) {
        RawFrame f;
        raw_send(fd, WIRE_PING, 0, 0, 0x5151, NULL, 0, NULL, "sync", 4);
        raw_expect(fd, WIRE_PONG, &f);
        TB_CHECK(f.h.corr == 0x5151);
        TB_CHECK(f.h.payload_len == 4 && memcmp(f.payload, "sync", 4) == 0);
        raw_frame_free(&f);
}

void raw_expect_silence(int fd, int ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        TB_CHECK(poll(&p, 1, ms) == 0, "unexpected data from the broker");
}

long long raw_status_number(int fd, const char *key) {
        char pattern[64];
        const char *at;
        long long v = -1;
        RawFrame f;
        char *json;

        raw_send(fd, WIRE_ADMIN, 0, 0, 77, NULL, 0, "status", NULL, 0);
        raw_expect(fd, WIRE_ADMIN_REPLY, &f);
        TB_CHECK(f.h.corr == 77);
        json = strndup((const char *)f.payload, f.h.payload_len);
        TB_CHECK(json);
        snprintf(pattern, sizeof(pattern), "\"%s\":", key);
        at = strstr(json, pattern);
        if (at)
                v = strtoll(at + strlen(pattern), NULL, 10);
        free(json);
        raw_frame_free(&f);
        return v;
}

long long tb_status_number(const TestBroker *b, const char *key) {
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        long deadline = now_ms() + 5000;
        long long v;
        int fd;

        /* A test may have just closed clients that a connection limit still
         * counts: try again until the broker has let them go. */
        for (;;) {
                RawFrame f;
                fd = raw_connect(b);
                raw_send(fd, WIRE_HELLO, 0, 0, 1, meta, sizeof(meta), NULL, "status", 6);
                TB_CHECK(raw_read(fd, &f, 5000) == 1, "no answer to HELLO");
                if (f.h.kind == WIRE_WELCOME) {
                        raw_frame_free(&f);
                        break;
                }
                TB_CHECK(f.h.kind == WIRE_ERROR && le32_read(f.meta) == WIRE_E_LIMIT,
                          "unexpected answer to HELLO");
                raw_frame_free(&f);
                close(fd);
                TB_CHECK(now_ms() < deadline, "the broker keeps refusing connections");
                usleep(10000);
        }
        v = raw_status_number(fd, key);
        close(fd);
        return v;
}

void raw_wait_clients(int fd, long long n) {
        long deadline = now_ms() + 5000;
        while (raw_status_number(fd, "clients") != n) {
                TB_CHECK(now_ms() < deadline, "the broker never got to %lld clients", n);
                usleep(5000);
        }
}

int tb_fd_baseline(const TestBroker *b) {
        long deadline = now_ms() + 5000;
        int fd = raw_client(b, "baseline", NULL), n;

        /* Once the broker says this is its only client, every earlier
         * connection (the start-up probe) is closed on its side too. */
        for (;;) {
                RawFrame f;
                char *json;
                bool alone;

                raw_send(fd, WIRE_ADMIN, 0, 0, 1, NULL, 0, "status", NULL, 0);
                raw_expect(fd, WIRE_ADMIN_REPLY, &f);
                json = strndup((const char *)f.payload, f.h.payload_len);
                TB_CHECK(json);
                alone = strstr(json, "\"clients\":1,") != NULL;
                free(json);
                raw_frame_free(&f);
                if (alone)
                        break;
                TB_CHECK(now_ms() < deadline, "broker never got down to one client");
                usleep(5000);
        }
        n = tb_fd_count(b) - 1;
        close(fd);
        return n;
}

/* ---- Fault injection (tests/test-faults.c) ---- */

void tb_start_nofile(TestBroker *b, const char *const *extra, unsigned long nofile) {
        start_nofile = (rlim_t)nofile;
        tb_start(b, extra);
        start_nofile = 0;
}

long tb_cpu_ticks(const TestBroker *b) {
        char path[64], buf[1024], *p;
        unsigned long utime = 0, stime = 0;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)b->pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        TB_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        TB_CHECK(n > 0);
        buf[n] = 0;
        /* The command name may hold anything, ')' too: the fields start
         * after the last one. utime and stime are fields 14 and 15. */
        p = strrchr(buf, ')');
        TB_CHECK(p);
        TB_CHECK(sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) == 2, "cannot parse %s", path);
        return (long)(utime + stime);
}

int raw_try_client(const TestBroker *b, const char *name, uint32_t *ret_id) {
        uint8_t frame[WIRE_HEADER_SIZE + WIRE_META_HELLO + WIRE_MAX_CLIENT_NAME];
        uint8_t meta[WIRE_META_HELLO] = { 0 };
        size_t n;
        RawFrame f;
        WireWelcome w;
        int fd = try_connect(b->sock), r;

        if (fd < 0)
                return -1;
        n = wire_frame_encode(frame, sizeof(frame), WIRE_HELLO, 0, 0, 1, 0, meta, sizeof(meta), NULL,
                              0, name, strlen(name));
        TB_CHECK(n > 0);
        /* A broker that closed the connection at once makes this fail:
         * the read below tells. */
        (void)send(fd, frame, n, MSG_NOSIGNAL);
        r = raw_read(fd, &f, 10000);
        TB_CHECK(r != -ETIMEDOUT, "the broker neither accepted nor closed a connection in 10 s");
        if (r == 1 && f.h.kind == WIRE_WELCOME) {
                TB_CHECK(wire_welcome_decode(f.meta, &w));
                if (ret_id)
                        *ret_id = w.client_id;
                raw_frame_free(&f);
                return fd;
        }
        if (r == 1)
                raw_frame_free(&f);
        close(fd);
        return -1;
}

char *raw_status_json(int fd) {
        RawFrame f;
        char *json;

        raw_send(fd, WIRE_ADMIN, 0, 0, 78, NULL, 0, "status", NULL, 0);
        raw_expect(fd, WIRE_ADMIN_REPLY, &f);
        TB_CHECK(f.h.corr == 78);
        json = strndup((const char *)f.payload, f.h.payload_len);
        TB_CHECK(json);
        raw_frame_free(&f);
        return json;
}

long long tb_json_number(const char *json, const char *anchor, const char *key) {
        const char *from = json, *end, *at;
        char pattern[128];

        if (anchor) {
                from = strstr(json, anchor);
                if (!from)
                        return -1;
        }
        /* Within the object the anchor starts (or the whole document). */
        end = anchor ? strchr(from, '}') : NULL;
        snprintf(pattern, sizeof(pattern), "\"%s\":", key);
        at = strstr(from, pattern);
        if (!at || (end && at > end))
                return -1;
        return strtoll(at + strlen(pattern), NULL, 10);
}

bool tb_raise_own_nofile(unsigned long want) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return false;
        if (rl.rlim_cur >= want)
                return true;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
                return false;
        rl.rlim_cur = want;
        return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}
