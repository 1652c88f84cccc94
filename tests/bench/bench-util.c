/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: clocks, statistics, child processes, shared memory, futexes,
 * and the cleanup that stops servers and removes files whatever way the run
 * ends.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

bool bench_in_child;
int bench_verbose;

double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_log(const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        /* One write, so that children's lines do not interleave. */
        fprintf(stderr, "ipcd-bench: %s\n", buf);
}

void bench_die(const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        fprintf(stderr, "ipcd-bench: %s\n", buf);
        if (bench_in_child)
                _exit(1);
        exit(1); /* the atexit() handler cleans up */
}

int write_all(int fd, const void *buf, size_t len) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int read_all(int fd, void *buf, size_t len) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = read(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EPIPE;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

void *shm_new(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
                bench_die("mmap of %zu shared bytes: %s", size, strerror(errno));
        return p;
}

void shm_free(void *p, size_t size) {
        if (p)
                munmap(p, size);
}

void futex_wait(uint32_t *addr, uint32_t val, int timeout_ms) {
        struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };

        /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
        syscall(SYS_futex, addr, FUTEX_WAIT, val, timeout_ms < 0 ? NULL : &ts, NULL, 0);
}

void futex_wake_all(uint32_t *addr) {
        syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- children and cleanup ---- */

/* What the cleanup must undo. Fixed arrays: the signal handler walks them,
 * and it may not allocate. */
#define MAX_PIDS 512
#define MAX_PATHS 64

static volatile pid_t pids[MAX_PIDS];
static char paths[MAX_PATHS][600];
static volatile int n_paths;
static char tmpdir[600];

static void pid_add(pid_t pid) {
        int i;

        for (i = 0; i < MAX_PIDS; i++)
                if (pids[i] == 0) {
                        pids[i] = pid;
                        return;
                }
}

static void pid_forget(pid_t pid) {
        int i;

        for (i = 0; i < MAX_PIDS; i++)
                if (pids[i] == pid)
                        pids[i] = 0;
}

pid_t bench_fork(void) {
        pid_t parent = getpid(), pid;

        fflush(NULL); /* or buffered output would be printed twice */
        pid = fork();
        if (pid < 0)
                return pid;
        if (pid == 0) {
                bench_in_child = true;
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* The parent may have died before prctl(). */
                if (getppid() != parent)
                        _exit(1);
                return 0;
        }
        pid_add(pid);
        return pid;
}

int bench_wait(pid_t pid, const char *what, double timeout_s) {
        double deadline = now_s() + timeout_s;
        useconds_t nap = 1000;
        int status, r;

        for (;;) {
                r = waitpid(pid, &status, timeout_s > 0 ? WNOHANG : 0);
                if (r == pid)
                        break;
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        bench_log("%s: waitpid: %s", what, strerror(errno));
                        pid_forget(pid);
                        return -1;
                }
                if (now_s() > deadline) {
                        bench_log("%s did not end in %.0f s, killed", what, timeout_s);
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        pid_forget(pid);
                        return -1;
                }
                /* Waking often would steal CPU from what is measured. */
                usleep(nap);
                if (nap < 100000)
                        nap *= 2;
        }
        pid_forget(pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                bench_log("%s exited with status %d", what, WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                bench_log("%s was killed by signal %d (%s)", what, WTERMSIG(status),
                          strsignal(WTERMSIG(status)));
        return -1;
}

bool bench_exited(pid_t pid) {
        siginfo_t si = { 0 };

        return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

void bench_kill(pid_t pid, int sig, double grace_s) {
        double deadline = now_s() + grace_s;
        int status;

        if (pid <= 0)
                return;
        kill(pid, sig);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                if (now_s() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        break;
                }
                usleep(2000);
        }
        pid_forget(pid);
}

void cleanup_add_path(const char *path) {
        int i;

        for (i = 0; i < n_paths; i++)
                if (strcmp(paths[i], path) == 0)
                        return;
        if (n_paths < MAX_PATHS) {
                snprintf(paths[n_paths], sizeof(paths[0]), "%s", path);
                n_paths++;
        }
}

void cleanup_set_dir(const char *dir) {
        snprintf(tmpdir, sizeof(tmpdir), "%s", dir);
}

/* Async-signal-safe: kill, waitpid, unlink and rmdir only. */
static void cleanup_now(bool graceful) {
        int i;

        if (bench_in_child)
                return;
        for (i = 0; i < MAX_PIDS; i++)
                if (pids[i] > 0)
                        kill(pids[i], graceful ? SIGTERM : SIGKILL);
        for (i = 0; i < MAX_PIDS; i++)
                if (pids[i] > 0) {
                        if (graceful) {
                                /* Servers exit on SIGTERM at once; don't hang
                                 * on one that doesn't. */
                                int k;
                                for (k = 0; k < 200 && waitpid(pids[i], NULL, WNOHANG) == 0; k++)
                                        usleep(5000);
                                kill(pids[i], SIGKILL);
                        }
                        waitpid(pids[i], NULL, 0);
                        pids[i] = 0;
                }
        for (i = 0; i < n_paths; i++)
                unlink(paths[i]);
        n_paths = 0;
        if (tmpdir[0]) {
                rmdir(tmpdir);
                tmpdir[0] = 0;
        }
}

void cleanup_run(void) {
        cleanup_now(true);
}

static void on_signal(int sig) {
        static const char msg[] = "ipcd-bench: interrupted, stopping the servers\n";

        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        cleanup_now(false);
        signal(sig, SIG_DFL);
        raise(sig);
}

static void on_exit_cleanup(void) {
        cleanup_now(true);
}

void cleanup_install(void) {
        struct sigaction sa = { .sa_handler = on_signal };

        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        atexit(on_exit_cleanup);
}

/* ---- /proc ---- */

static double proc_stat_seconds(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        fclose(f);
        /* The command name may hold spaces and parentheses: skip to the
         * last ')'. utime and stime are fields 14 and 15. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return -1;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double proc_cpu_seconds(pid_t pid) {
        struct timespec ts;
        clockid_t clk;

        /* The same utime + stime as /proc/PID/stat, in ns rather than
         * 10 ms ticks: a bulk message costs the broker a few µs. */
        if (clock_getcpuclockid(pid, &clk) == 0 && clock_gettime(clk, &ts) == 0)
                return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        return proc_stat_seconds(pid);
}

long long proc_rss_bytes(pid_t pid) {
        char path[64], line[256];
        long long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib < 0 ? -1 : kib * 1024;
}

/* ---- data ---- */

void put_u64(void *p, uint64_t v) {
        uint8_t *b = p;
        int i;

        for (i = 0; i < 8; i++)
                b[i] = (uint8_t)(v >> (8 * i));
}

uint64_t get_u64(const void *p) {
        const uint8_t *b = p;
        uint64_t v = 0;
        int i;

        for (i = 7; i >= 0; i--)
                v = v << 8 | b[i];
        return v;
}

void fill_pattern(void *buf, size_t len, unsigned seed) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1u);
        uint8_t *b = buf;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(b + i, &x, 8);
        }
        for (; i < len; i++)
                b[i] = (uint8_t)i;
}

uint64_t sum_words(const void *buf, size_t len) {
        const uint8_t *b = buf;
        uint64_t acc = 0;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                acc += w;
        }
        for (; i < len; i++)
                acc += b[i];
        return acc;
}

/* ---- statistics and formats ---- */

int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

double quantile_sorted(const double *v, size_t n, double q) {
        size_t k;

        if (n == 0)
                return 0;
        /* Nearest rank: the smallest value with at least q·n values at or
         * below it. */
        k = (size_t)(q * (double)n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

double median_of(const double *v, size_t n) {
        double tmp[BENCH_MAX_REPS * 4];

        if (n == 0)
                return 0;
        if (n > sizeof(tmp) / sizeof(tmp[0]))
                n = sizeof(tmp) / sizeof(tmp[0]);
        memcpy(tmp, v, n * sizeof(double));
        qsort(tmp, n, sizeof(double), cmp_double);
        return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

const char *fmt_size(uint64_t v, char *buf, size_t cap) {
        if (v >= (1u << 30) && v % (1u << 30) == 0)
                snprintf(buf, cap, "%llu GiB", (unsigned long long)(v >> 30));
        else if (v >= (1u << 20) && v % (1u << 20) == 0)
                snprintf(buf, cap, "%llu MiB", (unsigned long long)(v >> 20));
        else if (v >= 1024 && v % 1024 == 0)
                snprintf(buf, cap, "%llu KiB", (unsigned long long)(v >> 10));
        else
                snprintf(buf, cap, "%llu B", (unsigned long long)v);
        return buf;
}

int parse_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;
        int shift = 0;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *s == '-')
                return -EINVAL;
        switch (*end) {
        case 'K':
        case 'k':
                shift = 10;
                end++;
                break;
        case 'M':
        case 'm':
                shift = 20;
                end++;
                break;
        case 'G':
        case 'g':
                shift = 30;
                end++;
                break;
        }
        if (*end == 'i' && shift)
                end++;
        if (*end == 'B')
                end++;
        if (*end || v > (64ull << 30) >> shift)
                return -EINVAL;
        *ret = (uint64_t)v << shift;
        return 0;
}
