/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: the servers under test. Each runs as a child of the benchmark
 * on a socket in the run's private temporary directory, with a
 * configuration written there (nothing from the machine's own), its output
 * in a log file beside it, and no TCP port; each is stopped at the end of
 * the run, on failure and on SIGINT (bench-util.c's cleanup).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* Writes @text to @path, registered for removal. 0 or -1. */
static int write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        if (!f) {
                bench_log("%s: %s", path, strerror(errno));
                return -1;
        }
        cleanup_add_path(path);
        fputs(text, f);
        if (fclose(f) != 0) {
                bench_log("%s: %s", path, strerror(errno));
                return -1;
        }
        return 0;
}

/* Prints the last lines of a server's log, to say why it failed. */
static void show_log(const char *path) {
        char buf[4096];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        off_t end;

        if (fd < 0)
                return;
        end = lseek(fd, 0, SEEK_END);
        lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
                buf[n] = 0;
                fprintf(stderr, "--- %s ---\n%s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
        }
}

/* Forks and execs @argv with stdout and stderr going to @log. */
static pid_t spawn(char *const argv[], const char *log) {
        pid_t pid;

        cleanup_add_path(log);
        pid = bench_fork();
        if (pid < 0) {
                bench_log("fork: %s", strerror(errno));
                return -1;
        }
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                /* Its own process group: a ^C reaches the benchmark, which
                 * stops the servers in order. */
                setpgid(0, 0);
                execvp(argv[0], argv);
                fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        return pid;
}

/*
 * Waits until something accepts on @sock; with @ping, until it answers
 * @ping with a reply starting with @pong (a server that accepts before it
 * serves). 0, or -1 when the server died or @timeout_s passed.
 */
static int wait_ready(BenchServer *s, const char *ping, const char *pong, double timeout_s,
                      const char *log) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        double deadline = now_s() + timeout_s;

        memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
        while (now_s() < deadline) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), status;

                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        char buf[64] = "";
                        bool ok = true;

                        if (ping) {
                                struct timeval tv = { 1, 0 };
                                ssize_t n;

                                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                                ok = write_all(fd, ping, strlen(ping)) == 0 &&
                                     (n = read(fd, buf, sizeof(buf) - 1)) > 0 &&
                                     strncmp(buf, pong, strlen(pong)) == 0;
                        }
                        close(fd);
                        if (ok)
                                return 0;
                } else if (fd >= 0)
                        close(fd);
                if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                        bench_log("%s did not start (exit status %d)", s->tag,
                                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                        show_log(log);
                        s->pid = 0;
                        return -1;
                }
                usleep(10000);
        }
        bench_log("%s did not answer on %s within %.0f s", s->tag, s->sock, timeout_s);
        show_log(log);
        server_stop(s);
        return -1;
}

static int server_init(BenchServer *s, int kind, const char *dir, const char *tag) {
        int n;

        memset(s, 0, sizeof(*s));
        s->kind = kind;
        snprintf(s->dir, sizeof(s->dir), "%s", dir);
        snprintf(s->tag, sizeof(s->tag), "%s", tag);
        n = snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", dir, tag);
        if (n < 0 || (size_t)n >= sizeof(s->sock)) {
                bench_log("socket path %s/%s.sock is too long for AF_UNIX", dir, tag);
                return -1;
        }
        cleanup_add_path(s->sock);
        return 0;
}

int server_start_ipcd(BenchServer *s, const char *dir, const char *tag, const IpcdOptions *o) {
        char conf[600], log[600], text[1024], maxc[32];
        unsigned max_conn = o->max_connections ? o->max_connections : 4096;
        char *argv[16];
        int argc = 0;

        if (server_init(s, SYS_IPCD, dir, tag) < 0)
                return -1;
        s->sys = &bench_ipcd;
        snprintf(conf, sizeof(conf), "%s/%s.yaml", dir, tag);
        snprintf(log, sizeof(log), "%s/%s.log", dir, tag);
        /*
         * Queues far deeper than anything the benchmark's window lets build
         * up, so that no limit drops a message (the benchmark measures
         * speed, and checks that nothing is lost); as many connections per
         * user as in all. Everything else is the built-in default.
         */
        snprintf(text, sizeof(text),
                 "# Written by ipcd-bench for one run.\n"
                 "limits:\n"
                 "  max_connections: %u\n"
                 "  max_connections_per_user: %u\n"
                 "  queue_bytes: 64GiB\n"
                 "  queue_messages: 16777216\n"
                 "  queue_fds: 65536\n"
                 "  user_queue_bytes: 512GiB\n"
                 "  user_fds: 1048576\n"
                 "  max_pending_requests: 65536\n",
                 max_conn, max_conn);
        if (write_file(conf, text) < 0)
                return -1;
        snprintf(maxc, sizeof(maxc), "%u", max_conn);
        if (o->callgrind_out) {
                static char outarg[700];
                snprintf(outarg, sizeof(outarg), "--callgrind-out-file=%s", o->callgrind_out);
                argv[argc++] = "valgrind";
                argv[argc++] = "--tool=callgrind";
                argv[argc++] = "-q";
                argv[argc++] = outarg;
        }
        argv[argc++] = (char *)o->path;
        argv[argc++] = "--socket";
        argv[argc++] = s->sock;
        argv[argc++] = "--config";
        argv[argc++] = conf;
        argv[argc++] = "--max-connections";
        argv[argc++] = maxc;
        argv[argc++] = "-q";
        argv[argc] = NULL;
        s->pid = spawn(argv, log);
        if (s->pid < 0)
                return -1;
        /* Valgrind takes seconds to start a program. */
        return wait_ready(s, NULL, NULL, o->callgrind_out ? 120 : 10, log);
}

/* @bin when it has a '/', else the first executable @bin in $PATH or in
 * the sbin directories, which a user's $PATH may lack. */
static const char *find_program(const char *bin, char *buf, size_t cap) {
        const char *path = getenv("PATH");
        char dirs[4096];
        char *dir, *save = NULL;

        if (strchr(bin, '/'))
                return bin;
        snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "/usr/bin:/bin");
        for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                snprintf(buf, cap, "%s/%s", *dir ? dir : ".", bin);
                if (access(buf, X_OK) == 0)
                        return buf;
        }
        return bin;
}

int server_start_redis(BenchServer *s, const char *dir, const char *bin) {
        char conf[600], log[600], text[2048], prog[600];
        char *argv[3];

        if (server_init(s, SYS_REDIS, dir, "redis") < 0)
                return -1;
#if HAVE_BENCH_PEERS
        s->sys = &bench_redis;
#endif
        snprintf(conf, sizeof(conf), "%s/redis.conf", dir);
        snprintf(log, sizeof(log), "%s/redis.log", dir);
        /*
         * No TCP port, no persistence (no RDB snapshot, no AOF), and no
         * output buffer limit for pub/sub clients: by default Redis
         * disconnects a subscriber more than 32 MiB behind, which one large
         * message already is. Logs to stdout (the log file).
         */
        snprintf(text, sizeof(text),
                 "# Written by ipcd-bench for one run.\n"
                 "port 0\n"
                 "unixsocket %s\n"
                 "unixsocketperm 700\n"
                 "daemonize no\n"
                 "save \"\"\n"
                 "appendonly no\n"
                 "dir %s\n"
                 "logfile \"\"\n"
                 "loglevel warning\n"
                 "databases 1\n"
                 "client-output-buffer-limit pubsub 0 0 0\n"
                 "client-output-buffer-limit normal 0 0 0\n",
                 s->sock, dir);
        if (write_file(conf, text) < 0)
                return -1;
        argv[0] = (char *)find_program(bin, prog, sizeof(prog));
        argv[1] = conf;
        argv[2] = NULL;
        s->pid = spawn(argv, log);
        if (s->pid < 0)
                return -1;
        return wait_ready(s, "PING\r\n", "+PONG", 10, log);
}

int server_start_mosquitto(BenchServer *s, const char *dir, const char *bin) {
        char conf[600], log[600], text[2048], prog[600];
        const struct passwd *pw = getpwuid(getuid());
        char *argv[4];

        if (server_init(s, SYS_MOSQUITTO, dir, "mosquitto") < 0)
                return -1;
#if HAVE_BENCH_PEERS
        s->sys = &bench_mosquitto;
#endif
        snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
        snprintf(log, sizeof(log), "%s/mosquitto.log", dir);
        /*
         * A Unix socket listener only (port 0), no persistence, and no cap
         * on the messages queued for a client: by default (1000) QoS 0
         * messages to a subscriber with 1000 packets waiting are dropped.
         * Packet size: the default, no limit but MQTT's own (a remaining
         * length below 256 MiB). `user`: run as root, mosquitto would
         * switch to another user, who could not use the private directory.
         */
        snprintf(text, sizeof(text),
                 "# Written by ipcd-bench for one run.\n"
                 "listener 0 %s\n"
                 "allow_anonymous true\n"
                 "persistence false\n"
                 "max_queued_messages 0\n"
                 "max_queued_bytes 0\n"
                 "log_dest stderr\n"
                 "log_type error\n"
                 "log_type warning\n"
                 "user %s\n",
                 s->sock, pw ? pw->pw_name : "root");
        if (write_file(conf, text) < 0)
                return -1;
        argv[0] = (char *)find_program(bin, prog, sizeof(prog));
        argv[1] = "-c";
        argv[2] = conf;
        argv[3] = NULL;
        s->pid = spawn(argv, log);
        if (s->pid < 0)
                return -1;
        return wait_ready(s, NULL, NULL, 10, log);
}

void server_stop(BenchServer *s) {
        if (s->pid > 0)
                /* Valgrind writes its profile on the way out. */
                bench_kill(s->pid, SIGTERM, 60);
        s->pid = 0;
}

void server_version(int kind, const char *bin, char *buf, size_t cap) {
        static const char *const opt[_SYS_MAX] = { "--version", "--version", "-h" };
        static const char *const key[_SYS_MAX] = { "ipcd ", "v=", "version " };
        char prog[600], cmd[800], line[256];
        FILE *p;

        snprintf(buf, cap, "?");
        snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", find_program(bin, prog, sizeof(prog)), opt[kind]);
        p = popen(cmd, "re");
        if (!p)
                return;
        while (fgets(line, sizeof(line), p)) {
                char *v = strstr(line, key[kind]);
                if (v) {
                        v += strlen(key[kind]);
                        v[strcspn(v, " \n")] = 0;
                        snprintf(buf, cap, "%s", v);
                        break;
                }
        }
        pclose(p);
}
