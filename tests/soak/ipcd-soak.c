/* SPDX-License-Identifier: MIT */
/*
 * ipcd-soak: runs a real ipcd for a long time under mixed traffic and
 * checks every delivery, the broker's own counters, and that its memory
 * and file descriptors stay flat.
 *
 *   ipcd-soak [--ipcd PATH] [--seconds N] [--seed N] [--json]
 *             [--sample-interval S] [--warmup S] [--rss-growth F]
 *             [--rss-slack KIB] [--fd-slack N] [--rate N] [--bulk-rate N]
 *             [--no-rss-check] [--keep] [--verbose]
 *
 * The parent starts ipcd on a socket in a new directory under /tmp with a
 * configuration file it writes there (small queues, one overflow policy
 * per topic family), forks one process per client role (soak-pubsub.c,
 * soak-work.c), lets them run for --seconds, samples the broker's VmRSS
 * and open fds every --sample-interval seconds, and kills the churn
 * processes with SIGKILL at random moments (and starts them again). At
 * the end the producers stop, the consumers take what is left and count,
 * and the parent compares their counts with the broker's (ADMIN "status"
 * and "clients"), waits for the broker to be idle (no client but its own,
 * nothing queued or held, as many fds as at the start), stops it with
 * SIGTERM and expects exit status 0.
 *
 * Exit status: 0 when every check passed; 1 on an integrity error, a
 * mismatch with the broker's counters, a broker that crashed or exited,
 * growth beyond the limits, or a role that failed; 2 on a usage or setup
 * error.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "soak.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifndef SOAK_ASAN
#define SOAK_ASAN 0
#endif

#define MAX_SAMPLES 4096

typedef struct Sample {
        unsigned t;   /* seconds since the traffic started */
        long rss_kib; /* VmRSS */
        int fds;      /* entries of /proc/PID/fd */
        uint64_t clients, fds_held, queued_bytes;
} Sample;

typedef struct Run {
        char dir[64], sock[128], conf[128], log[128];
        pid_t broker;
        int broker_status; /* once it has exited */
        bool broker_gone;
        ipcd_client *admin;
        pid_t pids[N_ROLES];
        unsigned generation[N_ROLES];
        bool killed[N_ROLES]; /* SIGKILLed by the churn timer, not yet reaped */
        int64_t t0;
        Sample samples[MAX_SAMPLES];
        size_t n_samples;
        Sample base, idle; /* before the roles connected; after they left */
        bool idle_measured;
        size_t warm, end;    /* indexes of the warm-up and the last traffic sample */
        bool sanitized;      /* the broker reserves sanitizer shadow memory */
        uint64_t errors;     /* the parent's own findings */
        uint64_t mismatches; /* counts that disagree with the broker's */
        bool growth_failed, broker_failed;
        unsigned printed;
        /* From the broker at the end. */
        uint64_t dropped[N_POL];
        uint64_t st_requests, st_replies, st_timeouts, st_late, st_noresp, st_drops;
        uint64_t st_messages_in, st_messages_out, st_connections;
        int64_t elapsed_ms;
} Run;

static Run run;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
        interrupted = sig;
}

/* ---- reporting ---- */

static FILE *out(void) {
        /* With --json the document alone goes to stdout. */
        return opt.json ? stderr : stdout;
}

static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_error(const char *fmt, ...) {
        va_list ap;

        run.errors++;
        if (run.printed++ >= 50)
                return;
        va_start(ap, fmt);
        fprintf(stderr, "ipcd-soak: ERROR: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* A count of ours that the broker's must equal. */
static void expect_eq(const char *what, uint64_t broker, uint64_t ours) {
        if (broker == ours)
                return;
        run.mismatches++;
        report_error("integrity: %s: the broker counts %" PRIu64 ", the clients %" PRIu64, what,
                     broker, ours);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fprintf(stderr, "ipcd-soak: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static _Noreturn void setup_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void setup_failed(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fprintf(stderr, "ipcd-soak: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        if (run.broker > 0) {
                kill(run.broker, SIGKILL);
                waitpid(run.broker, NULL, 0);
        }
        exit(2);
}

static void dump_log_tail(void) {
        char line[1024];
        long lines = 0, skip;
        FILE *f = fopen(run.log, "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                lines++;
        skip = lines > 40 ? lines - 40 : 0;
        rewind(f);
        fprintf(stderr, "ipcd-soak: the broker's log (%s), last %ld lines:\n", run.log,
                lines - skip);
        lines = 0;
        while (fgets(line, sizeof(line), f))
                if (lines++ >= skip)
                        fprintf(stderr, "  | %s", line);
        fclose(f);
}

/* ---- the broker ---- */

static int write_config(void) {
        FILE *f = fopen(run.conf, "we");

        if (!f)
                return -errno;
        /* Small per-connection queues, so that the slow subscribers
         * overflow theirs within a second; large per-user ones (every
         * client is the same user), so that only they do. */
        fputs("# Written by ipcd-soak.\n"
              "limits:\n"
              "  queue_bytes: 1MiB\n"
              "  queue_messages: 512\n"
              "  queue_fds: 64\n"
              "  user_queue_bytes: 1GiB\n"
              "  user_fds: 8192\n"
              "  max_pending_requests: 64\n"
              "  request_timeout: 5s\n"
              "topics:\n"
              "  - pattern: \"soak/block/#\"\n"
              "    overflow: block\n"
              "  - pattern: \"soak/dropnew/#\"\n"
              "    overflow: drop-new\n"
              "  - pattern: \"soak/dropold/#\"\n"
              "    overflow: drop-old\n"
              "  - pattern: \"soak/disc/#\"\n"
              "    overflow: disconnect\n"
              "  - pattern: \"jobs/#\"\n"
              "    types: [1, 2, 3]\n"
              "  - pattern: \"fds/#\"\n"
              "    max_fds: 8\n"
              "  - pattern: \"churn/#\"\n"
              "    retain: false\n"
              "logging:\n"
              "  level: notice\n"
              "  target: stderr\n"
              "stats_interval: 1s\n",
              f);
        if (fclose(f) != 0)
                return -errno;
        return 0;
}

static int try_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        int fd, r = 0;

        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                r = -errno;
        close(fd);
        return r;
}

static void start_broker(void) {
        int64_t deadline;

        run.broker = fork();
        if (run.broker < 0)
                setup_failed("fork: %s", strerror(errno));
        if (run.broker == 0) {
                int fd = open(run.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                /* The broker never outlives the soak. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execl(opt.ipcd, opt.ipcd, "--socket", run.sock, "--config", run.conf, (char *)NULL);
                fprintf(stderr, "exec %s: %s\n", opt.ipcd, strerror(errno));
                _exit(127);
        }
        deadline = soak_now_ms() + 30000;
        while (try_connect(run.sock) < 0) {
                if (waitpid(run.broker, NULL, WNOHANG) == run.broker) {
                        run.broker = 0;
                        dump_log_tail();
                        setup_failed("%s exited during startup (its log is above)", opt.ipcd);
                }
                if (soak_now_ms() > deadline)
                        setup_failed("%s does not listen on %s after 30 s", opt.ipcd, run.sock);
                usleep(10000);
        }
}

/* Whether the broker still runs; notes how it ended otherwise. */
static bool broker_alive(void) {
        int status;

        if (run.broker_gone)
                return false;
        if (waitpid(run.broker, &status, WNOHANG) != run.broker)
                return true;
        run.broker_gone = true;
        run.broker_status = status;
        run.broker_failed = true;
        if (WIFSIGNALED(status))
                report_error("the broker died of signal %d (%s)", WTERMSIG(status),
                             strsignal(WTERMSIG(status)));
        else
                report_error("the broker exited with status %d during the run",
                             WEXITSTATUS(status));
        dump_log_tail();
        return false;
}

static long proc_status_kib(pid_t pid, const char *key) {
        char path[64], line[256];
        size_t klen = strlen(key);
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
                        kib = strtol(line + klen + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return kib;
}

static int proc_fd_count(pid_t pid) {
        char path[64];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* The broker's answer to @command as parsed JSON, or false. */
static bool admin_json(const char *command, Json *ret) {
        char *text = NULL;
        size_t len = 0;
        int r;

        if (!run.admin)
                return false;
        r = ipcd_client_admin(run.admin, command, &text, &len);
        if (r < 0) {
                report_error("admin %s: %s (%s)", command, strerror(-r),
                             ipcd_client_last_error(run.admin));
                if (r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE || r == -EPROTO) {
                        ipcd_client_unref(run.admin);
                        run.admin = NULL;
                }
                return false;
        }
        r = json_parse(text, len, ret);
        if (r < 0)
                report_error("admin %s: the answer is not JSON: %.100s", command, text);
        free(text);
        return r >= 0;
}

static uint64_t num(const Json *j, const char *key) {
        uint64_t v = 0;

        if (!json_u64(json_get(j, key), &v))
                report_error("the broker's status has no number '%s'", key);
        return v;
}

static void sample(Sample *s) {
        Json j;

        s->t = (unsigned)((soak_now_ms() - run.t0 + 500) / 1000);
        s->rss_kib = proc_status_kib(run.broker, "VmRSS");
        s->fds = proc_fd_count(run.broker);
        if (admin_json("status", &j)) {
                s->clients = num(&j, "clients");
                s->fds_held = num(&j, "fds_held");
                s->queued_bytes = num(&j, "queued_bytes");
                json_deinit(&j);
        }
        if (opt.verbose)
                note("t=%us RSS %ld KiB, %d fds, %" PRIu64 " clients, %" PRIu64
                     " fds held, %" PRIu64 " bytes queued",
                     s->t, s->rss_kib, s->fds, s->clients, s->fds_held, s->queued_bytes);
}

static void take_sample(void) {
        if (run.n_samples < MAX_SAMPLES)
                sample(&run.samples[run.n_samples++]);
}

/* ---- roles ---- */

static RoleKind role_kind(RoleId r) {
        if (r >= R_CHURN0 && r <= R_CHURN_LAST)
                return KIND_CHURN;
        if (r <= R_PUB_LAST || r == R_JOBS_PUB || r == R_REQ_SYNC || r == R_REQ_ASYNC ||
            r == R_FDS_PUB || r == R_BULK_PUB)
                return KIND_PRODUCER;
        return KIND_CONSUMER;
}

static const char *role_label(RoleId r) {
        static char buf[N_ROLES][24];
        static const char *const slow[N_POL] = { "slow-block", "slow-dropnew", "slow-dropold",
                                                 "slow-disconnect" };

        if (buf[r][0])
                return buf[r];
        if (r <= R_PUB_LAST)
                snprintf(buf[r], sizeof(buf[r]), "pub%u", (unsigned)(r - R_PUB0));
        else if (r <= R_FAST_LAST)
                snprintf(buf[r], sizeof(buf[r]), "fast-sub%u", (unsigned)(r - R_FAST0));
        else if (r <= R_SLOW_LAST)
                snprintf(buf[r], sizeof(buf[r]), "%s", slow[r - R_SLOW0]);
        else if (r == R_JOBS_PUB)
                snprintf(buf[r], sizeof(buf[r]), "jobs-pub");
        else if (r <= R_MEMBER_LAST)
                snprintf(buf[r], sizeof(buf[r]), "member%u", (unsigned)(r - R_MEMBER0));
        else if (r == R_ECHO0 || r == R_ECHO1)
                snprintf(buf[r], sizeof(buf[r]), "echo%u", (unsigned)(r - R_ECHO0));
        else if (r == R_SLOWSVC)
                snprintf(buf[r], sizeof(buf[r]), "slow-service");
        else if (r == R_REQ_SYNC)
                snprintf(buf[r], sizeof(buf[r]), "requester-sync");
        else if (r == R_REQ_ASYNC)
                snprintf(buf[r], sizeof(buf[r]), "requester-async");
        else if (r == R_FDS_PUB)
                snprintf(buf[r], sizeof(buf[r]), "fds-pub");
        else if (r == R_FDS_SINK)
                snprintf(buf[r], sizeof(buf[r]), "fds-sink");
        else if (r == R_BULK_PUB)
                snprintf(buf[r], sizeof(buf[r]), "bulk-pub");
        else if (r <= R_BULK_SUB_LAST)
                snprintf(buf[r], sizeof(buf[r]), "bulk-sub%u", (unsigned)(r - R_BULK_SUB0));
        else
                snprintf(buf[r], sizeof(buf[r]), "churn%u", (unsigned)(r - R_CHURN0));
        return buf[r];
}

static int run_role(RoleId r, unsigned generation) {
        if (r <= R_PUB_LAST)
                return role_publisher(r - R_PUB0);
        if (r <= R_FAST_LAST)
                return role_fast_sub(r - R_FAST0);
        if (r <= R_SLOW_LAST)
                return role_slow_sub(r - R_SLOW0);
        if (r == R_JOBS_PUB)
                return role_jobs_pub();
        if (r <= R_MEMBER_LAST)
                return role_member(r - R_MEMBER0);
        if (r == R_ECHO0 || r == R_ECHO1 || r == R_SLOWSVC)
                return role_responder(r - R_ECHO0);
        if (r == R_REQ_SYNC || r == R_REQ_ASYNC)
                return role_requester(r == R_REQ_ASYNC);
        if (r == R_FDS_PUB)
                return role_fds_pub();
        if (r == R_FDS_SINK)
                return role_fds_sink();
        if (r == R_BULK_PUB)
                return role_bulk_pub();
        if (r <= R_BULK_SUB_LAST)
                return role_bulk_sub(r - R_BULK_SUB0);
        return role_churn(r - R_CHURN0, generation);
}

static void spawn(RoleId r) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                report_error("fork: %s", strerror(errno));
                atomic_store(&sh->abort, 1);
                return;
        }
        if (pid == 0) {
                int status;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                signal(SIGINT, SIG_IGN);
                signal(SIGTERM, SIG_DFL);
                /* The parent's admin connection is not ours to keep open. */
                if (run.admin)
                        close(ipcd_client_get_fd(run.admin));
                role_id = r;
                role_name = role_label(r);
                atomic_store(&sh->pid[r], getpid());
                status = run_role(r, run.generation[r]);
                fflush(NULL);
                _exit(status);
        }
        run.pids[r] = pid;
        atomic_store(&sh->pid[r], pid);
}

/* Reaps exited roles; restarts churn processes while the traffic runs.
 * An exit is expected from a killed churn process, and from everyone in
 * PH_EXIT (status 0), and from churn processes after PH_STOP. */
static void reap(void) {
        int status;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                RoleId r;

                if (pid == run.broker) {
                        run.broker_gone = true;
                        run.broker_status = status;
                        run.broker_failed = true;
                        if (WIFSIGNALED(status))
                                report_error("the broker died of signal %d (%s)", WTERMSIG(status),
                                             strsignal(WTERMSIG(status)));
                        else
                                report_error("the broker exited with status %d during the run",
                                             WEXITSTATUS(status));
                        dump_log_tail();
                        atomic_store(&sh->abort, 1);
                        continue;
                }
                for (r = 0; r < N_ROLES; r++)
                        if (run.pids[r] == pid)
                                break;
                if (r == N_ROLES)
                        continue;
                run.pids[r] = 0;
                if (run.killed[r] && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
                        run.killed[r] = false;
                        if (soak_phase() == PH_RUN) {
                                run.generation[r]++;
                                spawn(r);
                        }
                        continue;
                }
                run.killed[r] = false;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                    (soak_phase() >= PH_EXIT ||
                     (role_kind(r) == KIND_CHURN && soak_phase() >= PH_STOP)))
                        continue;
                if (WIFSIGNALED(status))
                        report_error("%s (pid %d) died of signal %d (%s)", role_label(r), (int)pid,
                                     WTERMSIG(status), strsignal(WTERMSIG(status)));
                else
                        report_error("%s (pid %d) exited with status %d", role_label(r), (int)pid,
                                     WEXITSTATUS(status));
                atomic_store(&sh->abort, 1);
        }
}

static void kill_roles(void) {
        RoleId r;

        for (r = 0; r < N_ROLES; r++)
                if (run.pids[r] > 0) {
                        kill(run.pids[r], SIGKILL);
                        waitpid(run.pids[r], NULL, 0);
                        run.pids[r] = 0;
                }
}

/* Waits until every role of @kind has set @flag. Returns false on a
 * timeout or an abort. */
static bool wait_flag(_Atomic int *flags, RoleKind kind, const char *what, int timeout_s) {
        int64_t deadline = soak_now_ms() + (int64_t)timeout_s * 1000;

        for (;;) {
                RoleId r, missing = N_ROLES;

                for (r = 0; r < N_ROLES; r++)
                        if (role_kind(r) == kind && !atomic_load(&flags[r])) {
                                missing = r;
                                break;
                        }
                if (missing == N_ROLES)
                        return true;
                reap();
                if (atomic_load(&sh->abort) || !broker_alive())
                        return false;
                if (soak_now_ms() > deadline) {
                        report_error("%s: %s did not finish in %d s", what, role_label(missing),
                                     timeout_s);
                        return false;
                }
                usleep(10000);
        }
}

static bool churn_running(void) {
        RoleId r;

        for (r = R_CHURN0; r <= R_CHURN_LAST; r++)
                if (run.pids[r] > 0)
                        return true;
        return false;
}

/* ---- the checks at the end ---- */

static const Json *find_client(const Json *list, uint32_t id) {
        size_t i;
        uint64_t v;

        for (i = 0; list && i < list->n; i++)
                if (json_u64(json_get(&list->items[i], "id"), &v) && v == id)
                        return &list->items[i];
        return NULL;
}

static const Json *find_topic(const Json *list, const char *name) {
        size_t i;

        for (i = 0; list && i < list->n; i++) {
                const char *t = json_get_string(&list->items[i], "topic");
                if (t && strcmp(t, name) == 0)
                        return &list->items[i];
        }
        return NULL;
}

static uint64_t client_drops(const Json *per_client, const Json *clients, RoleId r) {
        uint32_t id = atomic_load(&sh->client_id[r]);
        const Json *a = find_client(per_client, id), *b = find_client(clients, id);
        uint64_t da = 0, db = 0;

        if (!a || !b) {
                report_error("%s (client %u) is missing from the broker's %s", role_label(r), id,
                             a ? "clients list" : "status");
                return 0;
        }
        json_u64(json_get(a, "drops"), &da);
        json_u64(json_get(b, "drops"), &db);
        if (da != db)
                report_error("status and clients disagree on the drops of %s: %" PRIu64
                             " and %" PRIu64,
                             role_label(r), da, db);
        return da;
}

static void check_accounts(void) {
        const Json *per_client, *per_topic, *clients;
        Json st, cl;
        char name[32];
        unsigned t, p, pol, m;
        RoleId r;
        uint64_t v, sum;

        if (!admin_json("status", &st))
                return;
        if (!admin_json("clients", &cl)) {
                json_deinit(&st);
                return;
        }
        per_client = json_get_array(&st, "per_client");
        per_topic = json_get_array(&st, "per_topic");
        clients = json_get_array(&cl, "clients");
        if (!per_client || !per_topic || !clients ||
            json_is_true(json_get(&st, "per_client_truncated")) ||
            json_is_true(json_get(&st, "per_topic_truncated"))) {
                report_error("the status lacks complete per-client and per-topic tables");
                goto out;
        }
        run.st_requests = num(&st, "requests");
        run.st_replies = num(&st, "replies");
        run.st_timeouts = num(&st, "request_timeouts");
        run.st_late = num(&st, "late_replies");
        run.st_noresp = num(&st, "no_responders");
        run.st_drops = num(&st, "drops");
        run.st_messages_in = num(&st, "messages_in");
        run.st_messages_out = num(&st, "messages_out");
        run.st_connections = num(&st, "connections_total");
        expect_eq("internal errors", num(&st, "internal_errors"), 0);

        /* Every pub/sub message published was routed, on its topic. */
        for (t = 0; t < N_TOPICS; t++) {
                const Json *tj = find_topic(per_topic, soak_topic_name(t));
                uint64_t published = 0, seq = 0, dropped = 0;

                for (p = 0, sum = 0; p < N_PUBS; p++)
                        sum += atomic_load(&sh->pub_count[p][t]);
                if (tj) {
                        json_u64(json_get(tj, "published"), &published);
                        json_u64(json_get(tj, "seq"), &seq);
                        json_u64(json_get(tj, "dropped"), &dropped);
                } else if (sum > 0)
                        report_error("the broker has no state for %s", soak_topic_name(t));
                snprintf(name, sizeof(name), "published on %s", soak_topic_name(t));
                expect_eq(name, published, sum);
                snprintf(name, sizeof(name), "sequence of %s", soak_topic_name(t));
                expect_eq(name, seq, sum);
                pol = soak_topic_policy(t);
                run.dropped[pol] += dropped;
                /* Every recipient of the drop topics but the slow one keeps up. */
                if (pol == POL_DROPNEW || pol == POL_DROPOLD) {
                        snprintf(name, sizeof(name), "dropped on %s", soak_topic_name(t));
                        expect_eq(name, dropped, sh->slow_missing[pol][t]);
                } else if (pol == POL_BLOCK) {
                        snprintf(name, sizeof(name), "dropped on %s", soak_topic_name(t));
                        expect_eq(name, dropped, 0);
                }
        }
        /* Each slow subscriber missed what the broker says it dropped. */
        expect_eq("drops of the drop-new subscriber",
                  client_drops(per_client, clients, R_SLOW0 + POL_DROPNEW),
                  sh->slow_missing_total[POL_DROPNEW]);
        expect_eq("drops of the drop-old subscriber",
                  client_drops(per_client, clients, R_SLOW0 + POL_DROPOLD),
                  sh->slow_missing_total[POL_DROPOLD]);
        /* A disconnect subscriber's connection, and everyone else's, has
         * lost nothing. */
        for (r = 0; r < N_ROLES; r++) {
                if (role_kind(r) == KIND_CHURN || r == R_SLOW0 + POL_DROPNEW ||
                    r == R_SLOW0 + POL_DROPOLD)
                        continue;
                snprintf(name, sizeof(name), "drops of %s", role_label(r));
                expect_eq(name, client_drops(per_client, clients, r), 0);
        }
        if (run.dropped[POL_DISC] < atomic_load(&sh->disconnects))
                expect_eq("drops on the disconnect topics (at least one per disconnection)",
                          run.dropped[POL_DISC], atomic_load(&sh->disconnects));

        /* Queue groups: one member of each group, and the witness, got each
         * job. */
        v = atomic_load(&sh->jobs_published);
        expect_eq("jobs delivered to group workers", atomic_load(&sh->group_total[0]), v);
        expect_eq("jobs delivered to group audit", atomic_load(&sh->group_total[1]), v);
        expect_eq("jobs delivered to the ungrouped witness", atomic_load(&sh->witness), v);
        for (unsigned g = 0; g < 2; g++)
                for (uint64_t i = 0; i < v; i++)
                        if (!(atomic_load(&sh->group_bits[g][i / 64]) & (1ull << (i % 64)))) {
                                report_error("integrity: job %" PRIu64
                                             " reached no member of group %s",
                                             i + 1, g ? "audit" : "workers");
                                break;
                        }
        for (t = 0, sum = 0; t < N_JOB_TOPICS; t++) {
                const Json *tj;
                snprintf(name, sizeof(name), "jobs/%u", t);
                tj = find_topic(per_topic, name);
                if (tj && json_u64(json_get(tj, "published"), &v))
                        sum += v;
        }
        expect_eq("jobs published", sum, atomic_load(&sh->jobs_published));
        if (atomic_load(&sh->jobs_published) >= 300)
                for (m = 0; m < N_GROUP_MEMBERS; m++)
                        if (atomic_load(&sh->job_count[m][0]) == 0 ||
                            (m > 0 && atomic_load(&sh->job_count[m][1]) == 0))
                                report_error("integrity: member%u got no share of a group's jobs",
                                             m);

        /* Requests: every one the broker routed was answered once. */
        sum = atomic_load(&sh->req_ok) + atomic_load(&sh->req_timeout) +
              atomic_load(&sh->req_late_replied);
        expect_eq("requests routed (answered by a reply or a timeout)", run.st_requests, sum);
        expect_eq("requests served by the responders", run.st_requests,
                  atomic_load(&sh->served[0]) + atomic_load(&sh->served[1]) +
                          atomic_load(&sh->served[2]));
        expect_eq("replies", run.st_replies, atomic_load(&sh->replies_received));
        expect_eq("request timeouts", run.st_timeouts, atomic_load(&sh->req_timeout));
        expect_eq("late replies refused", run.st_late, atomic_load(&sh->late_esrch));
        expect_eq("no-responders answers", run.st_noresp, atomic_load(&sh->req_no_responders));
        if (atomic_load(&sh->late_accepted) != atomic_load(&sh->req_late_replied))
                report_error(
                        "integrity: the slow service's late replies that the broker took (%" PRIu64
                        ") are not those the requester got (%" PRIu64 ")",
                        atomic_load(&sh->late_accepted), atomic_load(&sh->req_late_replied));

        /* fds and bulk: everything arrived (the receivers checked each). */
        if (atomic_load(&sh->fds_received) != atomic_load(&sh->fds_published))
                report_error("integrity: %" PRIu64 " of %" PRIu64 " messages with fds arrived",
                             atomic_load(&sh->fds_received), atomic_load(&sh->fds_published));
        for (unsigned i = 0; i < N_BULK_SUBS; i++)
                if (atomic_load(&sh->bulk_received[i]) != atomic_load(&sh->bulk_published))
                        report_error("integrity: bulk-sub%u got %" PRIu64 " of %" PRIu64
                                     " bulk messages",
                                     i, atomic_load(&sh->bulk_received[i]),
                                     atomic_load(&sh->bulk_published));
out:
        json_deinit(&cl);
        json_deinit(&st);
}

/* After every role left: nothing held, nothing queued, the fds of the start. */
static void check_idle(void) {
        int64_t deadline = soak_now_ms() + 15000;
        uint64_t clients = 0, held = 0, queued = 0, qfds = 0, pending = 0, internal = 0;
        int fds = -1;

        for (;;) {
                Json st;

                if (!broker_alive() || !admin_json("status", &st))
                        return;
                clients = num(&st, "clients");
                held = num(&st, "fds_held");
                queued = num(&st, "queued_bytes");
                qfds = num(&st, "queued_fds");
                pending = num(&st, "requests_pending");
                internal = num(&st, "internal_errors");
                json_deinit(&st);
                fds = proc_fd_count(run.broker);
                if ((clients == 1 && held == 0 && queued == 0 && qfds == 0 && pending == 0 &&
                     fds <= run.base.fds) ||
                    soak_now_ms() > deadline)
                        break;
                usleep(50000);
        }
        run.idle_measured = true;
        run.idle.rss_kib = proc_status_kib(run.broker, "VmRSS");
        run.idle.fds = fds;
        run.idle.clients = clients;
        run.idle.fds_held = held;
        run.idle.queued_bytes = queued;
        expect_eq("clients once every role left (this one only)", clients, 1);
        expect_eq("fds held once idle", held, 0);
        expect_eq("bytes queued once idle", queued, 0);
        expect_eq("fds queued once idle", qfds, 0);
        expect_eq("requests pending once idle", pending, 0);
        expect_eq("internal errors", internal, 0);
        if (fds != run.base.fds) {
                run.growth_failed = true;
                report_error("the broker has %d fds open once idle, %d at the start (a leak)", fds,
                             run.base.fds);
        }
}

static void check_growth(void) {
        const Sample *w = &run.samples[run.warm], *e = &run.samples[run.end];
        long rss_limit = (long)((double)w->rss_kib * opt.rss_growth) + (long)opt.rss_slack_kib;

        if (!opt.no_rss_check && !run.sanitized && e->rss_kib > rss_limit) {
                run.growth_failed = true;
                report_error("the broker's RSS grew from %ld KiB (warm-up, %u s) to %ld KiB "
                             "(%u s), over the limit of %ld KiB",
                             w->rss_kib, w->t, e->rss_kib, e->t, rss_limit);
        }
        if (e->fds > w->fds + (int)opt.fd_slack) {
                run.growth_failed = true;
                report_error(
                        "the broker's open fds grew from %d (warm-up, %u s) to %d (%u s), over the "
                        "slack of %u",
                        w->fds, w->t, e->fds, e->t, opt.fd_slack);
        }
}

/* Sends SIGTERM and expects exit status 0 and the socket gone. */
static void stop_broker(void) {
        int64_t deadline = soak_now_ms() + 60000;
        struct stat st;
        int status = 0;
        pid_t r;

        if (run.broker <= 0 || run.broker_gone)
                return;
        kill(run.broker, SIGTERM);
        while ((r = waitpid(run.broker, &status, WNOHANG)) == 0 && soak_now_ms() < deadline)
                usleep(10000);
        if (r == 0) {
                kill(run.broker, SIGKILL);
                waitpid(run.broker, &status, 0);
                run.broker_failed = true;
                report_error("the broker did not exit within 60 s of SIGTERM");
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                run.broker_failed = true;
                if (WIFSIGNALED(status))
                        report_error("after SIGTERM the broker died of signal %d (%s)",
                                     WTERMSIG(status), strsignal(WTERMSIG(status)));
                else
                        report_error("after SIGTERM the broker exited with status %d",
                                     WEXITSTATUS(status));
                dump_log_tail();
        } else if (lstat(run.sock, &st) == 0) {
                run.broker_failed = true;
                report_error("the broker left its socket file behind");
        }
        run.broker_gone = true;
        run.broker_status = status;
}

/* Empty retained publishes: the retained messages (and their fds) go. */
static void clear_retained(void) {
        unsigned i;

        for (i = 0; i < N_CHURN && run.admin; i++) {
                char topic[32];
                int r;

                snprintf(topic, sizeof(topic), "retained/%u", i);
                r = ipcd_client_publish(run.admin, topic, 1, NULL, 0,
                                        IPCD_PUBLISH_RETAIN | IPCD_PUBLISH_ACK);
                if (r < 0)
                        report_error("clearing %s: %s", topic, strerror(-r));
        }
}

/* ---- the summary ---- */

static uint64_t total_integrity(void) {
        return atomic_load(&sh->integrity) + run.mismatches;
}

static bool passed(void) {
        return run.errors == 0 && atomic_load(&sh->integrity) == 0 &&
               atomic_load(&sh->failures) == 0 && !run.broker_failed && !run.growth_failed &&
               !interrupted;
}

static const Sample *peak(bool fds) {
        const Sample *best = &run.samples[0];
        size_t i;

        for (i = 1; i < run.n_samples; i++)
                if (fds ? run.samples[i].fds > best->fds : run.samples[i].rss_kib > best->rss_kib)
                        best = &run.samples[i];
        return best;
}

static void print_rerun(FILE *f) {
        fprintf(f,
                "rerun: %s --ipcd %s --seconds %u --seed %" PRIu64
                " --sample-interval %u --warmup %u"
                " --rss-growth %g --rss-slack %u --fd-slack %u --rate %u --bulk-rate %u%s%s\n",
                program_invocation_name, opt.ipcd, opt.seconds, opt.seed, opt.sample_interval,
                opt.warmup, opt.rss_growth, opt.rss_slack_kib, opt.fd_slack, opt.rate,
                opt.bulk_rate, opt.no_rss_check ? " --no-rss-check" : "",
                opt.json ? " --json" : "");
}

/* How the broker ended, in words. */
static const char *broker_fate(char *buf, size_t len) {
        int st = run.broker_status;

        if (!run.broker_gone)
                snprintf(buf, len, "still running");
        else if (WIFSIGNALED(st))
                snprintf(buf, len, "died of signal %d (%s)%s", WTERMSIG(st),
                         strsignal(WTERMSIG(st)), run.broker_failed ? "" : " after SIGTERM");
        else
                snprintf(buf, len, "exited with status %d%s", WEXITSTATUS(st),
                         WEXITSTATUS(st) == 0 && !run.broker_failed ? " after SIGTERM (clean)"
                                                                    : "");
        return buf;
}

static void print_summary(void) {
        const Sample *w = &run.samples[run.warm], *e = &run.samples[run.end], *s0 = &run.samples[0];
        const Sample *pr = peak(false), *pf = peak(true);
        FILE *f = out();
        uint64_t published = atomic_load(&sh->pubsub_published) + atomic_load(&sh->jobs_published) +
                             atomic_load(&sh->fds_published) + atomic_load(&sh->bulk_published) +
                             atomic_load(&sh->churn_msgs);
        size_t i;

        char fate[128], idle_rss[32], idle_fds[64];
        bool fds_flat;

        if (run.idle_measured) {
                snprintf(idle_rss, sizeof(idle_rss), "%ld", run.idle.rss_kib);
                snprintf(idle_fds, sizeof(idle_fds), "%d (before any client %d)", run.idle.fds,
                         run.base.fds);
        } else {
                snprintf(idle_rss, sizeof(idle_rss), "not measured");
                snprintf(idle_fds, sizeof(idle_fds), "not measured (before any client %d)",
                         run.base.fds);
        }
        fds_flat = e->fds <= w->fds + (int)opt.fd_slack &&
                   (!run.idle_measured || run.idle.fds == run.base.fds);
        fprintf(f, "ipcd-soak: %.1f s of traffic, seed %" PRIu64 ", broker %s (pid %d)%s\n",
                (double)run.elapsed_ms / 1000, opt.seed, opt.ipcd, (int)run.broker,
                run.sanitized ? ", under a sanitizer" : "");
        fprintf(f, "broker: %s\n", broker_fate(fate, sizeof(fate)));
        fprintf(f,
                "broker RSS (KiB): start %ld, warm-up %ld (%u s), peak %ld (%u s), end %ld (%u s), "
                "idle %s; limit %ld: %s\n",
                s0->rss_kib, w->rss_kib, w->t, pr->rss_kib, pr->t, e->rss_kib, e->t, idle_rss,
                (long)((double)w->rss_kib * opt.rss_growth) + (long)opt.rss_slack_kib,
                opt.no_rss_check || run.sanitized ? "not checked"
                : e->rss_kib <= (long)((double)w->rss_kib * opt.rss_growth) +
                                        (long)opt.rss_slack_kib
                        ? "flat"
                        : "GREW");
        fprintf(f,
                "broker fds: start %d, warm-up %d (%u s), peak %d (%u s), end %d (%u s), idle %s; "
                "limit %d: %s\n",
                s0->fds, w->fds, w->t, pf->fds, pf->t, e->fds, e->t, idle_fds,
                w->fds + (int)opt.fd_slack, fds_flat ? "flat" : "GREW");
        fprintf(f, "series (s: RSS KiB / fds / clients):");
        for (i = 0; i < run.n_samples; i++)
                fprintf(f, "%s%u: %ld/%d/%" PRIu64, i % 6 ? "  " : "\n  ", run.samples[i].t,
                        run.samples[i].rss_kib, run.samples[i].fds, run.samples[i].clients);
        fprintf(f, "\n");
        fprintf(f,
                "messages published: %" PRIu64 " (pub/sub %" PRIu64 ", jobs %" PRIu64
                ", with fds %" PRIu64 ", bulk %" PRIu64 ", churn %" PRIu64 "); %" PRIu64
                " with ACK, %" PRIu64 " syncs\n",
                published, atomic_load(&sh->pubsub_published), atomic_load(&sh->jobs_published),
                atomic_load(&sh->fds_published), atomic_load(&sh->bulk_published),
                atomic_load(&sh->churn_msgs), atomic_load(&sh->acked), atomic_load(&sh->syncs));
        fprintf(f,
                "messages checked by their receivers: %" PRIu64 " (pub/sub deliveries %" PRIu64
                "); broker: %" PRIu64 " messages in, %" PRIu64 " out\n",
                atomic_load(&sh->checked), atomic_load(&sh->delivered), run.st_messages_in,
                run.st_messages_out);
        fprintf(f,
                "dropped by the broker, by topic policy: drop-new %" PRIu64
                " (subscriber missed %" PRIu64 "), drop-old %" PRIu64 " (missed %" PRIu64
                "), disconnect %" PRIu64 " (%" PRIu64 " disconnections), block %" PRIu64
                "; all drops %" PRIu64 "\n",
                run.dropped[POL_DROPNEW], sh->slow_missing_total[POL_DROPNEW],
                run.dropped[POL_DROPOLD], sh->slow_missing_total[POL_DROPOLD],
                run.dropped[POL_DISC], atomic_load(&sh->disconnects), run.dropped[POL_BLOCK],
                run.st_drops);
        fprintf(f,
                "queue groups: %" PRIu64 " jobs; workers %" PRIu64 "/%" PRIu64 "/%" PRIu64
                ", audit %" PRIu64 "/%" PRIu64 ", witness %" PRIu64 "; %" PRIu64 " refused types\n",
                atomic_load(&sh->jobs_published), atomic_load(&sh->job_count[0][0]),
                atomic_load(&sh->job_count[1][0]), atomic_load(&sh->job_count[2][0]),
                atomic_load(&sh->job_count[1][1]), atomic_load(&sh->job_count[2][1]),
                atomic_load(&sh->witness), atomic_load(&sh->jobs_refused));
        fprintf(f,
                "requests: %" PRIu64 " OK, %" PRIu64 " timed out (meant to), %" PRIu64
                " late but in time, %" PRIu64 " late replies refused, %" PRIu64
                " no responders; served %" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
                atomic_load(&sh->req_ok), atomic_load(&sh->req_timeout),
                atomic_load(&sh->req_late_replied), atomic_load(&sh->late_esrch),
                atomic_load(&sh->req_no_responders), atomic_load(&sh->served[0]),
                atomic_load(&sh->served[1]), atomic_load(&sh->served[2]));
        fprintf(f,
                "fds passed: %" PRIu64 " (pipes %" PRIu64 ", eventfds %" PRIu64 ", memfds %" PRIu64
                ", with requests %" PRIu64 ")\n",
                atomic_load(&sh->fds_passed[0]) + atomic_load(&sh->fds_passed[1]) +
                        atomic_load(&sh->fds_passed[2]) + atomic_load(&sh->req_fds),
                atomic_load(&sh->fds_passed[0]), atomic_load(&sh->fds_passed[1]),
                atomic_load(&sh->fds_passed[2]), atomic_load(&sh->req_fds));
        fprintf(f,
                "bulk: %" PRIu64
                " messages, %.1f MiB published, %.1f MiB received by memfd, %" PRIu64 " inline\n",
                atomic_load(&sh->bulk_published),
                (double)atomic_load(&sh->bulk_bytes_published) / (1 << 20),
                (double)atomic_load(&sh->bulk_bytes_received) / (1 << 20),
                atomic_load(&sh->inline_received));
        fprintf(f,
                "churn: %" PRIu64 " cycles, %" PRIu64 " SIGKILLs, %" PRIu64
                " retained received; %" PRIu64 " connections in all\n",
                atomic_load(&sh->churn_cycles), atomic_load(&sh->churn_kills),
                atomic_load(&sh->churn_retained), run.st_connections);
        fprintf(f,
                "integrity errors: %" PRIu64 " (%" PRIu64 " found by the clients, %" PRIu64
                " counter mismatches); other errors: %" PRIu64 "\n",
                total_integrity(), atomic_load(&sh->integrity), run.mismatches,
                run.errors - run.mismatches + atomic_load(&sh->failures));
        if (run.dropped[POL_DROPNEW] == 0 || run.dropped[POL_DROPOLD] == 0 ||
            atomic_load(&sh->disconnects) == 0)
                fprintf(f, "note: a policy was not exercised in this run (no drops or no "
                           "disconnections): run longer?\n");
        fprintf(f, "result: %s\n", passed() ? "PASS" : "FAIL");
        print_rerun(f);
}

static void print_json(void) {
        size_t i;

        printf("{\"result\":\"%s\",\"seconds\":%.1f,\"seed\":%" PRIu64 ",\"sanitized\":%s,",
               passed() ? "pass" : "fail", (double)run.elapsed_ms / 1000, opt.seed,
               run.sanitized ? "true" : "false");
        printf("\"rss\":{\"start\":%ld,\"warmup\":%ld,\"peak\":%ld,\"end\":%ld,\"idle\":%ld,"
               "\"checked\":%s},",
               run.samples[0].rss_kib, run.samples[run.warm].rss_kib, peak(false)->rss_kib,
               run.samples[run.end].rss_kib, run.idle.rss_kib,
               opt.no_rss_check || run.sanitized ? "false" : "true");
        printf("\"fds\":{\"base\":%d,\"start\":%d,\"warmup\":%d,\"peak\":%d,\"end\":%d,"
               "\"idle\":%d},",
               run.base.fds, run.samples[0].fds, run.samples[run.warm].fds, peak(true)->fds,
               run.samples[run.end].fds, run.idle.fds);
        printf("\"samples\":[");
        for (i = 0; i < run.n_samples; i++)
                printf("%s[%u,%ld,%d,%" PRIu64 "]", i ? "," : "", run.samples[i].t,
                       run.samples[i].rss_kib, run.samples[i].fds, run.samples[i].clients);
        printf("],\"warmup_at\":%u,\"end_at\":%u,", run.samples[run.warm].t,
               run.samples[run.end].t);
        printf("\"published\":{\"pubsub\":%" PRIu64 ",\"jobs\":%" PRIu64 ",\"fds\":%" PRIu64
               ",\"bulk\":%" PRIu64 ",\"churn\":%" PRIu64 "},",
               atomic_load(&sh->pubsub_published), atomic_load(&sh->jobs_published),
               atomic_load(&sh->fds_published), atomic_load(&sh->bulk_published),
               atomic_load(&sh->churn_msgs));
        printf("\"checked\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"broker_messages_in\":%" PRIu64
               ",\"broker_messages_out\":%" PRIu64 ",",
               atomic_load(&sh->checked), atomic_load(&sh->delivered), run.st_messages_in,
               run.st_messages_out);
        printf("\"dropped\":{\"drop-new\":%" PRIu64 ",\"drop-old\":%" PRIu64
               ",\"disconnect\":%" PRIu64 ",\"block\":%" PRIu64 ",\"all\":%" PRIu64
               "},\"disconnections\":%" PRIu64 ",",
               run.dropped[POL_DROPNEW], run.dropped[POL_DROPOLD], run.dropped[POL_DISC],
               run.dropped[POL_BLOCK], run.st_drops, atomic_load(&sh->disconnects));
        printf("\"requests\":{\"ok\":%" PRIu64 ",\"timed_out\":%" PRIu64
               ",\"late_in_time\":%" PRIu64 ",\"late_refused\":%" PRIu64
               ",\"no_responders\":%" PRIu64 "},",
               atomic_load(&sh->req_ok), atomic_load(&sh->req_timeout),
               atomic_load(&sh->req_late_replied), atomic_load(&sh->late_esrch),
               atomic_load(&sh->req_no_responders));
        printf("\"fds_passed\":%" PRIu64 ",\"bulk_bytes\":%" PRIu64 ",\"churn_cycles\":%" PRIu64
               ",\"churn_kills\":%" PRIu64 ",",
               atomic_load(&sh->fds_passed[0]) + atomic_load(&sh->fds_passed[1]) +
                       atomic_load(&sh->fds_passed[2]) + atomic_load(&sh->req_fds),
               atomic_load(&sh->bulk_bytes_published), atomic_load(&sh->churn_cycles),
               atomic_load(&sh->churn_kills));
        printf("\"integrity_errors\":%" PRIu64 ",\"other_errors\":%" PRIu64 "}\n",
               total_integrity(), run.errors - run.mismatches + atomic_load(&sh->failures));
}

/* ---- main ---- */

static void usage(FILE *f) {
        fprintf(f, "Usage: ipcd-soak [OPTIONS]\n"
                   "Runs ipcd under mixed traffic and checks every delivery and its resources.\n\n"
                   "  --ipcd PATH            the broker to start (daemon/ipcd)\n"
                   "  --seconds N            traffic duration (600)\n"
                   "  --seed N               random seed (from the clock)\n"
                   "  --json                 the summary as JSON on stdout\n"
                   "  --sample-interval S    broker RSS and fd samples every S seconds (5)\n"
                   "  --warmup S             the sample the end is compared with (a sixth of the\n"
                   "                         duration, 10 to 60 s)\n"
                   "  --rss-growth F         end RSS at most warm-up RSS * F + slack (1.2)\n"
                   "  --rss-slack KIB        (2048)\n"
                   "  --fd-slack N           end fds at most warm-up fds + N (16)\n"
                   "  --rate N               pub/sub messages per second per publisher (1000)\n"
                   "  --bulk-rate N          bulk messages per second (20)\n"
                   "  --no-rss-check         report RSS but do not judge it\n"
                   "  --keep                 keep the directory with the broker's log\n"
                   "  --verbose              say more\n");
}

static uint64_t parse_u64(const char *s, const char *what) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-') {
                fprintf(stderr, "ipcd-soak: invalid %s '%s'\n", what, s);
                exit(2);
        }
        return v;
}

static unsigned parse_uint(const char *s, const char *what, unsigned lo, unsigned hi) {
        uint64_t v = parse_u64(s, what);

        if (v < lo || v > hi) {
                fprintf(stderr, "ipcd-soak: %s must be %u to %u\n", what, lo, hi);
                exit(2);
        }
        return (unsigned)v;
}

static void parse_options(int argc, char **argv) {
        static const struct option opts[] = {
                { "ipcd", required_argument, NULL, 'i' },
                { "seconds", required_argument, NULL, 's' },
                { "seed", required_argument, NULL, 'S' },
                { "json", no_argument, NULL, 'j' },
                { "sample-interval", required_argument, NULL, 'I' },
                { "warmup", required_argument, NULL, 'w' },
                { "rss-growth", required_argument, NULL, 'g' },
                { "rss-slack", required_argument, NULL, 'r' },
                { "fd-slack", required_argument, NULL, 'f' },
                { "rate", required_argument, NULL, 'R' },
                { "bulk-rate", required_argument, NULL, 'B' },
                { "no-rss-check", no_argument, NULL, 'n' },
                { "keep", no_argument, NULL, 'k' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool have_seed = false, have_warmup = false;
        int c;

        opt = (Options){ .ipcd = "daemon/ipcd",
                         .seconds = 600,
                         .sample_interval = 5,
                         .rss_growth = 1.2,
                         .rss_slack_kib = 2048,
                         .fd_slack = 16,
                         .rate = 1000,
                         .bulk_rate = 20 };
        while ((c = getopt_long(argc, argv, "hv", opts, NULL)) >= 0) {
                char *end;

                switch (c) {
                case 'i':
                        opt.ipcd = optarg;
                        break;
                case 's':
                        opt.seconds = parse_uint(optarg, "--seconds", 1, 7 * 24 * 3600);
                        break;
                case 'S':
                        opt.seed = parse_u64(optarg, "--seed");
                        have_seed = true;
                        break;
                case 'j':
                        opt.json = true;
                        break;
                case 'I':
                        opt.sample_interval = parse_uint(optarg, "--sample-interval", 1, 3600);
                        break;
                case 'w':
                        opt.warmup = parse_uint(optarg, "--warmup", 0, 7 * 24 * 3600);
                        have_warmup = true;
                        break;
                case 'g':
                        opt.rss_growth = strtod(optarg, &end);
                        if (*end || !(opt.rss_growth >= 1.0 && opt.rss_growth <= 100)) {
                                fprintf(stderr, "ipcd-soak: --rss-growth must be 1 to 100\n");
                                exit(2);
                        }
                        break;
                case 'r':
                        opt.rss_slack_kib = parse_uint(optarg, "--rss-slack", 0, 1u << 30);
                        break;
                case 'f':
                        opt.fd_slack = parse_uint(optarg, "--fd-slack", 0, 1u << 20);
                        break;
                case 'R':
                        opt.rate = parse_uint(optarg, "--rate", 1, 1000000);
                        break;
                case 'B':
                        opt.bulk_rate = parse_uint(optarg, "--bulk-rate", 1, 10000);
                        break;
                case 'n':
                        opt.no_rss_check = true;
                        break;
                case 'k':
                        opt.keep = true;
                        break;
                case 'v':
                        opt.verbose = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        exit(2);
                }
        }
        if (optind < argc) {
                usage(stderr);
                exit(2);
        }
        if (!have_seed) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                opt.seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                            (uint64_t)getpid()) %
                           1000000000u;
        }
        if (!have_warmup) {
                opt.warmup = opt.seconds / 6;
                opt.warmup = opt.warmup < 10 ? 10 : opt.warmup > 60 ? 60 : opt.warmup;
        }
}

/* Runs the traffic until the deadline; samples and kills churn. */
static void traffic(void) {
        int64_t deadline = run.t0 + (int64_t)opt.seconds * 1000;
        int64_t next_sample = run.t0 + (int64_t)opt.sample_interval * 1000;
        int64_t next_kill[N_CHURN];
        uint64_t rng = opt.seed * 0x9e3779b97f4a7c15ull + 977;
        unsigned i;

        for (i = 0; i < N_CHURN; i++)
                next_kill[i] = run.t0 + (int64_t)soak_rand_range(&rng, 500, 4000);
        for (;;) {
                int64_t now = soak_now_ms();

                reap();
                if (atomic_load(&sh->abort) || interrupted || !broker_alive())
                        break;
                if (now >= deadline)
                        break;
                if (now >= next_sample) {
                        take_sample();
                        next_sample += (int64_t)opt.sample_interval * 1000;
                }
                for (i = 0; i < N_CHURN; i++)
                        if (now >= next_kill[i]) {
                                RoleId r = R_CHURN0 + i;
                                if (run.pids[r] > 0 && !run.killed[r] &&
                                    kill(run.pids[r], SIGKILL) == 0) {
                                        run.killed[r] = true;
                                        atomic_fetch_add(&sh->churn_kills, 1);
                                }
                                next_kill[i] = now + (int64_t)soak_rand_range(&rng, 500, 4000);
                        }
                usleep(20000);
        }
        run.elapsed_ms = soak_now_ms() - run.t0;
        if (broker_alive()) {
                take_sample();
                run.end = run.n_samples - 1;
        }
        if (interrupted)
                report_error("interrupted by signal %d", (int)interrupted);
}

static void cleanup_dir(void) {
        unlink(run.conf);
        unlink(run.log);
        unlink(run.sock);
        rmdir(run.dir);
}

int main(int argc, char **argv) {
        struct sigaction sa = { .sa_handler = on_signal };
        bool ok_end;
        RoleId r;
        int rc;
        size_t i;

        parse_options(argc, argv);
        signal(SIGPIPE, SIG_IGN);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        if (access(opt.ipcd, X_OK) < 0)
                setup_failed("cannot run %s: %s (--ipcd PATH names the broker)", opt.ipcd,
                             strerror(errno));
        snprintf(run.dir, sizeof(run.dir), "/tmp/ipcd-soak-XXXXXX");
        if (!mkdtemp(run.dir))
                setup_failed("mkdtemp: %s", strerror(errno));
        snprintf(run.sock, sizeof(run.sock), "%s/ipcd.sock", run.dir);
        snprintf(run.conf, sizeof(run.conf), "%s/ipcd.yaml", run.dir);
        snprintf(run.log, sizeof(run.log), "%s/ipcd.log", run.dir);
        opt.socket = run.sock;
        rc = write_config();
        if (rc < 0)
                setup_failed("writing %s: %s", run.conf, strerror(-rc));

        sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED)
                setup_failed("mmap: %s", strerror(errno));

        note("seed %" PRIu64 ", %u s, broker %s, directory %s", opt.seed, opt.seconds, opt.ipcd,
             run.dir);
        start_broker();
        /* Shadow memory of ASan (and other sanitizers) is terabytes of
         * address space; RSS says nothing about leaks then. */
        run.sanitized = SOAK_ASAN || proc_status_kib(run.broker, "VmSize") > (1L << 30);
        rc = ipcd_client_new(&run.admin, run.sock, "soak-main");
        if (rc < 0)
                setup_failed("connecting to the broker: %s", strerror(-rc));
        ipcd_client_set_timeout(run.admin, 30000);
        /* With this connection only (the handshake is over: the broker
         * has accepted it), as at the end. */
        run.base.rss_kib = proc_status_kib(run.broker, "VmRSS");
        run.base.fds = proc_fd_count(run.broker);

        for (r = 0; r < N_ROLES; r++)
                spawn(r);
        for (r = 0; r < N_ROLES; r++)
                atomic_store(&sh->done[r], role_kind(r) != KIND_PRODUCER);
        if (!wait_flag(sh->ready, KIND_PRODUCER, "setup", 60) ||
            !wait_flag(sh->ready, KIND_CONSUMER, "setup", 60) ||
            !wait_flag(sh->ready, KIND_CHURN, "setup", 60)) {
                report_error("the roles did not start");
                goto end;
        }
        run.t0 = soak_now_ms();
        take_sample();
        atomic_store(&sh->phase, PH_RUN);
        traffic();
        run.warm = 0;
        for (i = 0; i < run.n_samples; i++)
                if (run.samples[i].t >= opt.warmup || i == run.end) {
                        run.warm = i;
                        break;
                }

        ok_end = !atomic_load(&sh->abort) && !interrupted && broker_alive();
        atomic_store(&sh->phase, PH_STOP);
        if (ok_end)
                ok_end = wait_flag(sh->done, KIND_PRODUCER, "stop", 120);
        if (ok_end) {
                int64_t deadline = soak_now_ms() + 60000;
                while (churn_running() && soak_now_ms() < deadline) {
                        reap();
                        usleep(10000);
                }
                if (churn_running()) {
                        report_error("a churn process did not stop in 60 s");
                        ok_end = false;
                }
        }
        if (ok_end) {
                atomic_store(&sh->phase, PH_DRAIN);
                ok_end = wait_flag(sh->drained, KIND_CONSUMER, "drain", 120);
        }
        if (ok_end) {
                atomic_store(&sh->phase, PH_CHECK);
                check_accounts();
                atomic_store(&sh->phase, PH_EXIT);
                {
                        int64_t deadline = soak_now_ms() + 60000;
                        bool any;
                        do {
                                reap();
                                any = false;
                                for (r = 0; r < N_ROLES; r++)
                                        any |= run.pids[r] > 0;
                                if (any)
                                        usleep(10000);
                        } while (any && soak_now_ms() < deadline);
                        if (any)
                                report_error("roles still running 60 s after the end");
                }
        }
        kill_roles();
        if (ok_end && atomic_load(&sh->failures) == 0) {
                clear_retained();
                check_idle();
                if (run.n_samples > 0)
                        check_growth();
        }
end:
        kill_roles();
        atomic_store(&sh->phase, PH_EXIT);
        if (run.n_samples == 0)
                take_sample();
        if (run.end >= run.n_samples)
                run.end = run.n_samples - 1;
        run.admin = ipcd_client_unref(run.admin);
        stop_broker();
        print_summary();
        if (opt.json)
                print_json();
        if (!passed() || opt.keep)
                note("the broker's log and configuration are in %s", run.dir);
        else
                cleanup_dir();
        return passed() ? 0 : 1;
}
