/* SPDX-License-Identifier: MIT */
/*
 * ipcd as a system service, against a real broker: configuration files and
 * reload, access rules for clients running as other users, socket
 * activation and sd_notify, and a flood of clients that never read.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static TestBroker tb;

/* The new-style cr_assert takes no expression that starts with '(' or '!'. */
static bool is_true(bool b) {
        return b;
}

/* A systemd-socket-activate a test started: it holds the test's stdout,
 * so one left behind by a failed test would hang the test driver. */
static pid_t activator;

static void cleanup(void) {
        tb_kill(&tb);
        if (activator > 0) {
                kill(activator, SIGKILL);
                waitpid(activator, NULL, 0);
                activator = 0;
        }
}

/* Whether something accepts connections on @path now. */
static bool accepting(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

/* Writes @text to @dir/@name; returns the path (static buffer per call). */
static const char *write_file(const char *dir, const char *name, const char *text, char *path,
                              size_t size) {
        FILE *f;
        snprintf(path, size, "%s/%s", dir, name);
        f = fopen(path, "we");
        cr_assert(f != NULL, "fopen %s: %s", path, strerror(errno));
        fputs(text, f);
        fclose(f);
        return path;
}

static void make_dir(char *dir) {
        cr_assert(mkdtemp(dir) != NULL);
        /* Clients of other users must reach the socket inside. */
        cr_assert(chmod(dir, 0755) == 0);
}

/* Starts a broker in @dir with the configuration @yaml (and @extra args). */
static void start_with(char *dir, const char *yaml, const char *const *extra) {
        static char conf[256];
        const char *args[16] = { "--config", conf };
        size_t n = 2;

        write_file(dir, "ipcd.yaml", yaml, conf, sizeof(conf));
        for (; extra && *extra && n < 15; extra++)
                args[n++] = *extra;
        args[n] = NULL;
        tb_start_in(&tb, dir, args);
}

static void stop_in(const char *dir) {
        char conf[256];
        tb_stop(&tb); /* removes dir if empty */
        snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
        unlink(conf);
        rmdir(dir);
}

/* A forked client must never outlive its test or hang: it dies with the
 * test process and after a minute at most. */
static void child_guard(void) {
        harness_child_begin();
}

/* ---- configuration ---- */

Test(config, check_config_names_file_line_and_column, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", path[256], err[4096];
        const char *good[] = { "--check-config=", path, NULL };
        char arg[300];

        make_dir(dir);
        write_file(dir, "good.yaml", "limits:\n  queue_bytes: 1MiB\n", path, sizeof(path));
        snprintf(arg, sizeof(arg), "--check-config=%s", path);
        good[0] = arg;
        good[1] = NULL;
        cr_assert(eq(int, tb_run_capture(good, err, sizeof(err)), 0), "%s", err);

        write_file(dir, "bad.yaml", "limits:\n  queue_bytes: 1MiB\n  no_such_key: 3\n", path,
                   sizeof(path));
        snprintf(arg, sizeof(arg), "--check-config=%s", path);
        cr_assert(eq(int, tb_run_capture(good, err, sizeof(err)), 1));
        {
                char want[300];
                snprintf(want, sizeof(want), "%s:3:3:", path);
                cr_assert(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
                cr_assert(strstr(err, "no_such_key") != NULL, "the key is named: %s", err);
        }
        unlink(path);
        snprintf(path, sizeof(path), "%s/good.yaml", dir);
        unlink(path);
        rmdir(dir);
}

Test(config, broken_file_at_start_is_refused, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", path[256], err[4096], sock[256];
        const char *args[] = { "--config", path, "--socket", sock, NULL };
        const char *missing[] = { "--config", "/nonexistent/ipcd.yaml", "--socket", sock, NULL };

        make_dir(dir);
        snprintf(sock, sizeof(sock), "%s/s.sock", dir);
        write_file(dir, "bad.yaml", "topics:\n  - pattern: \"a/#/b\"\n", path, sizeof(path));
        cr_assert(eq(int, tb_run_capture(args, err, sizeof(err)), 1));
        cr_assert(strstr(err, ":2:") != NULL && strstr(err, "pattern") != NULL, "%s", err);
        /* A file the user names must exist. */
        cr_assert(eq(int, tb_run_capture(missing, err, sizeof(err)), 1));
        cr_assert(strstr(err, "/nonexistent/ipcd.yaml") != NULL, "%s", err);
        unlink(path);
        rmdir(dir);
}

Test(config, topic_rules_apply, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        int p, s;
        RawFrame f;

        make_dir(dir);
        start_with(dir,
                   "topics:\n"
                   "  - pattern: \"sensors/#\"\n"
                   "    types: [7]\n"
                   "    retain: false\n"
                   "    max_payload: 8\n"
                   "    max_fds: 0\n",
                   NULL);
        p = raw_client(&tb, "pub", NULL);
        s = raw_client(&tb, "sub", NULL);
        raw_subscribe(s, 1, "#", NULL, 0);
        raw_send(p, WIRE_PUBLISH, 0, 8, 1, NULL, 0, "sensors/t", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 7, 2, NULL, 0, "sensors/t", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);
        raw_send(p, WIRE_PUBLISH, 0, 7, 3, NULL, 0, "sensors/t", "123456789", 9);
        raw_expect_error(p, WIRE_E_TOO_LARGE, false);
        /* Nothing of that reached the subscriber; this does. */
        raw_publish(p, "sensors/t", 7, "ok", 2);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "sensors/t"));
        raw_frame_free(&f);
        /* Other topics are free. */
        raw_publish(p, "other", 8, "123456789", 9);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "other"));
        raw_frame_free(&f);
        close(p);
        close(s);
        stop_in(dir);
}

static bool log_contains(const char *needle) {
        char buf[65536];
        size_t n;
        FILE *f = fopen(tb.log, "re");
        if (!f)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        return strstr(buf, needle) != NULL;
}

Test(config, reload_applies_and_a_broken_file_keeps_the_running_one, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", conf[256];
        int p;
        RawFrame f;
        int i;

        make_dir(dir);
        start_with(dir, "topics:\n  - pattern: \"t\"\n    types: [1]\n", NULL);
        snprintf(conf, sizeof(conf), "%s/ipcd.yaml", dir);
        p = raw_client(&tb, "pub", NULL);
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 2, 1, NULL, 0, "t", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);

        /* A broken file, by SIGHUP: the old rules stay, the log says why. */
        write_file(dir, "ipcd.yaml", "topics:\n  - pattern: \"t\"\n    types: [2]\n    bogus: 1\n", conf,
                   sizeof(conf));
        kill(tb.pid, SIGHUP);
        for (i = 0; i < 500 && !log_contains("not reloaded"); i++)
                usleep(10000);
        cr_assert(log_contains("not reloaded"), "the log does not say the reload failed");
        cr_assert(log_contains("ipcd.yaml:4:5"), "the log does not name file:line:column");
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 2, 2, NULL, 0, "t", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);

        /* The same by the admin command: the caller is told why. */
        raw_send(p, WIRE_ADMIN, 0, 0, 3, NULL, 0, "reload", NULL, 0);
        raw_expect(p, WIRE_ERROR, &f);
        cr_assert(eq(u32, le32_read(f.meta), WIRE_E_BAD_CONFIG));
        cr_assert(is_true(memmem(f.payload, f.h.payload_len, "bogus", 5) != NULL));
        raw_frame_free(&f);

        /* Fixed: the new rules apply to the connection that is already there. */
        write_file(dir, "ipcd.yaml", "topics:\n  - pattern: \"t\"\n    types: [2]\n", conf, sizeof(conf));
        raw_send(p, WIRE_ADMIN, 0, 0, 4, NULL, 0, "reload", NULL, 0);
        raw_expect(p, WIRE_ADMIN_REPLY, &f);
        raw_frame_free(&f);
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 2, 5, NULL, 0, "t", "x", 1);
        raw_expect(p, WIRE_ACK, &f);
        raw_frame_free(&f);
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 1, 6, NULL, 0, "t", "x", 1);
        raw_expect_error(p, WIRE_E_PERMISSION, false);
        cr_assert(eq(i64, raw_status_number(p, "reloads"), 1));
        cr_assert(eq(i64, raw_status_number(p, "reload_failures"), 2));
        close(p);
        stop_in(dir);
}

/* ---- access rules, with clients running as other users ---- */

#define ALICE 4101
#define BOB 4102
#define SENSORS_GID 4200

static const char acl_yaml[] =
        "limits:\n"
        "  queue_bytes: 1MiB\n"
        "access:\n"
        "  - users: [\"4101\"]\n"
        "    publish: [\"sensors/#\"]\n"
        "    subscribe: [\"public/#\", \"sensors/#\"]\n"
        "  - groups: [\"4200\"]\n"
        "    publish: [\"group/#\"]\n"
        "  - users: [\"*\"]\n"
        "    subscribe: [\"public/#\"]\n";

/* Runs @fn in a child as @uid (with supplementary group @extra_gid when
 * not 0); the test fails unless it exits 0. */
static void as_user(uid_t uid, gid_t extra_gid, void (*fn)(void)) {
        int status;
        pid_t pid = fork();

        cr_assert(pid >= 0);
        if (pid == 0) {
                gid_t groups[1] = { extra_gid };
                child_guard();
                if (setgroups(extra_gid ? 1 : 0, groups) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(99);
                fn();
                _exit(0);
        }
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(is_true(WIFEXITED(status)), "client died of signal %d", WTERMSIG(status));
        cr_assert(eq(int, WEXITSTATUS(status), 0), "client as uid %d failed", (int)uid);
}

static void alice(void) {
        int c = raw_client(&tb, "alice", NULL), p;
        RawFrame f;

        /* Allowed, and refused with a clear error and nothing else. */
        raw_send(c, WIRE_PUBLISH, WIRE_F_ACK, 1, 1, NULL, 0, "sensors/t", "x", 1);
        raw_expect(c, WIRE_ACK, &f);
        raw_frame_free(&f);
        raw_send(c, WIRE_PUBLISH, 0, 1, 2, NULL, 0, "secret/t", "x", 1);
        raw_expect(c, WIRE_ERROR, &f);
        TB_CHECK(le32_read(f.meta) == WIRE_E_PERMISSION);
        TB_CHECK((memmem(f.payload, f.h.payload_len, "publish", 7) != NULL));
        TB_CHECK((memmem(f.payload, f.h.payload_len, "secret/t", 8) != NULL));
        TB_CHECK((!(f.h.flags & WIRE_F_FATAL)));
        raw_frame_free(&f);
        /* A filter that reaches nothing she may read is refused... */
        {
                uint8_t meta[WIRE_META_SUBSCRIBE];
                wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 9 });
                raw_send(c, WIRE_SUBSCRIBE, 0, 0, 3, meta, sizeof(meta), "secret/#", NULL, 0);
                raw_expect_error(c, WIRE_E_PERMISSION, false);
        }
        /* ... one that reaches part of it gets only the permitted topics. */
        raw_subscribe(c, 1, "#", NULL, 0);
        p = raw_client(&tb, "root-helper", NULL); /* alice's own connection publishes */
        raw_send(c, WIRE_ADMIN, 0, 0, 4, NULL, 0, "reload", NULL, 0);
        raw_expect_error(c, WIRE_E_PERMISSION, false);
        close(p);
        raw_sync(c);
        /* The root test process publishes secret/x, public/x, sensors/x now;
         * tell it we are ready by exiting the first phase. */
        close(c);
}

static void bob_in_group(void) {
        int c = raw_client(&tb, "bob", NULL);
        RawFrame f;
        raw_send(c, WIRE_PUBLISH, WIRE_F_ACK, 1, 1, NULL, 0, "group/t", "x", 1);
        raw_expect(c, WIRE_ACK, &f);
        raw_frame_free(&f);
        close(c);
}

static void bob_without_group(void) {
        int c = raw_client(&tb, "bob", NULL);
        raw_send(c, WIRE_PUBLISH, 0, 1, 1, NULL, 0, "group/t", "x", 1);
        raw_expect_error(c, WIRE_E_PERMISSION, false);
        raw_send(c, WIRE_PUBLISH, 0, 1, 1, NULL, 0, "sensors/t", "x", 1);
        raw_expect_error(c, WIRE_E_PERMISSION, false);
        close(c);
}

Test(acl, rules_by_user_and_supplementary_group, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        const char *args[] = { "--socket-mode", "0666", NULL };

        make_dir(dir);
        start_with(dir, acl_yaml, args);
        as_user(ALICE, 0, alice);
        as_user(BOB, SENSORS_GID, bob_in_group);
        as_user(BOB, 0, bob_without_group);
        stop_in(dir);
}

static int partial_pipe[2];

static void alice_reads_partially(void) {
        int c = raw_client(&tb, "alice", NULL);
        RawFrame f;
        char ok = 'r';

        raw_subscribe(c, 1, "#", NULL, 0);
        TB_CHECK(write(partial_pipe[1], &ok, 1) == 1);
        /* Of secret/x, public/x, sensors/x, end: the two she may read, then end. */
        raw_expect(c, WIRE_MESSAGE, &f);
        TB_CHECK(strcmp(f.topic, "public/x") == 0, "got %s", f.topic);
        raw_frame_free(&f);
        raw_expect(c, WIRE_MESSAGE, &f);
        TB_CHECK(strcmp(f.topic, "sensors/x") == 0, "got %s", f.topic);
        raw_frame_free(&f);
        raw_expect(c, WIRE_MESSAGE, &f);
        TB_CHECK(strcmp(f.topic, "public/end") == 0, "got %s", f.topic);
        raw_frame_free(&f);
        close(c);
}

Test(acl, subscription_receives_only_permitted_topics, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        const char *args[] = { "--socket-mode", "0666", NULL };
        int status, p;
        pid_t pid;
        char ready;

        make_dir(dir);
        start_with(dir, acl_yaml, args);
        cr_assert(pipe(partial_pipe) == 0);
        pid = fork();
        if (pid == 0) {
                child_guard();
                if (setresgid(ALICE, ALICE, ALICE) < 0 || setresuid(ALICE, ALICE, ALICE) < 0)
                        _exit(99);
                alice_reads_partially();
                _exit(0);
        }
        cr_assert(read(partial_pipe[0], &ready, 1) == 1);
        p = raw_client(&tb, "root", NULL);
        raw_publish(p, "secret/x", 1, "s", 1);
        raw_publish(p, "public/x", 1, "p", 1);
        raw_publish(p, "sensors/x", 1, "n", 1);
        raw_publish(p, "public/end", 1, "e", 1);
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0), "alice's view was wrong");
        close(p);
        stop_in(dir);
}

/* ---- systemd: socket activation and notifications ---- */

/* A datagram socket for NOTIFY_SOCKET; returns the fd. */
static int notify_socket(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        return fd;
}

/* Waits for a notification containing @what; returns whether one came. */
static bool wait_notify(int fd, const char *what, char *last, size_t size) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n;
                if (poll(&p, 1, 5000) <= 0)
                        return false;
                n = recv(fd, last, size - 1, 0);
                if (n <= 0)
                        return false;
                last[n] = 0;
                if (strstr(last, what))
                        return true;
        }
}

Test(systemd, notifications_ready_reload_stopping_watchdog, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", npath[100], msg[1024];
        int nfd;

        make_dir(dir);
        snprintf(npath, sizeof(npath), "%s/notify", dir);
        nfd = notify_socket(npath);
        setenv("NOTIFY_SOCKET", npath, 1);
        setenv("WATCHDOG_USEC", "200000", 1);
        tb_start_in(&tb, dir, NULL);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");

        cr_assert(wait_notify(nfd, "READY=1", msg, sizeof(msg)), "no READY=1");
        cr_assert(strstr(msg, "STATUS=") != NULL, "READY without STATUS: %s", msg);
        cr_assert(wait_notify(nfd, "WATCHDOG=1", msg, sizeof(msg)), "no watchdog pings");
        kill(tb.pid, SIGHUP);
        cr_assert(wait_notify(nfd, "RELOADING=1", msg, sizeof(msg)), "no RELOADING=1");
        cr_assert(strstr(msg, "MONOTONIC_USEC=") != NULL, "RELOADING without MONOTONIC_USEC: %s", msg);
        cr_assert(wait_notify(nfd, "READY=1", msg, sizeof(msg)), "no READY=1 after the reload");
        {
                /* tb_stop sends SIGTERM; STOPPING=1 must come. */
                int status;
                char stat_check = 0;
                (void)stat_check;
                tb_stop(&tb);
                (void)status;
        }
        cr_assert(wait_notify(nfd, "STOPPING=1", msg, sizeof(msg)), "no STOPPING=1");
        close(nfd);
        unlink(npath);
        rmdir(dir);
}

Test(systemd, socket_activation, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", sock[100];
        const char *bin = getenv("IPCD_BIN") ? getenv("IPCD_BIN") : "daemon/ipcd";
        pid_t act;
        int fd, i, status;
        uint32_t id;
        struct stat st;

        if (access("/usr/bin/systemd-socket-activate", X_OK) != 0 &&
            access("/bin/systemd-socket-activate", X_OK) != 0)
                cr_skip_test("systemd-socket-activate is not installed");
        make_dir(dir);
        snprintf(sock, sizeof(sock), "%s/activated.sock", dir);
        act = activator = fork();
        cr_assert(act >= 0);
        if (act == 0) {
                char conf[256];
                FILE *f;
                snprintf(conf, sizeof(conf), "%s/empty.yaml", dir);
                f = fopen(conf, "we");
                if (f)
                        fclose(f);
                execlp("systemd-socket-activate", "systemd-socket-activate", "-l", sock,
                       "--fdname=ipcd", bin, "--config", conf, (char *)NULL);
                _exit(127);
        }
        /* The socket exists before ipcd does; connecting starts it (that
         * first connection only probes: systemd-socket-activate binds before
         * it listens, so wait until a connect succeeds). */
        for (i = 0; i < 500 && stat(sock, &st) < 0; i++)
                usleep(10000);
        cr_assert(is_true(S_ISSOCK(st.st_mode)));
        for (i = 0; i < 500 && !accepting(sock); i++)
                usleep(10000);
        snprintf(tb.sock, sizeof(tb.sock), "%s", sock);
        fd = raw_client(&tb, "activated", &id);
        cr_assert(id > 0);
        raw_wait_clients(fd, 1); /* the probe's connection goes too */
        close(fd);
        kill(act, SIGTERM); /* systemd-socket-activate exec'ed ipcd: same pid */
        cr_assert(waitpid(act, &status, 0) == act);
        activator = 0;
        cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0), "ipcd did not exit cleanly");
        /* The socket is systemd's: ipcd leaves it. */
        cr_assert(stat(sock, &st) == 0);
        unlink(sock);
        {
                char conf[256];
                snprintf(conf, sizeof(conf), "%s/empty.yaml", dir);
                unlink(conf);
        }
        rmdir(dir);
        memset(&tb, 0, sizeof(tb));
}

/* ---- a flood of clients that never read ---- */

Test(limits_system, flood_of_clients_that_never_read, .fini = cleanup, .timeout = 120) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        enum { SLOW = 100, ROUNDS = 100, PER = 100, SIZE = 2048, GOOD_UID = 4103 };
        static char payload[SIZE];
        const char *args[] = { "--socket-mode", "0666", NULL };
        int slow[SLOW], p, i, r, peak_fds = 0, sync_pipe[2], status;
        long rss0, rss_peak = 0;
        pid_t good;

        make_dir(dir);
        /* The slow readers (this test's uid) may hold at most 8 MiB
         * together; the well-behaved reader is another user. */
        start_with(dir,
                   "limits:\n"
                   "  max_payload: 64KiB\n"
                   "  queue_bytes: 256KiB\n"
                   "  user_queue_bytes: 8MiB\n"
                   "access:\n"
                   "  - users: [\"4103\"]\n"
                   "    subscribe: [\"flood\"]\n",
                   args);
        for (i = 0; i < SLOW; i++) {
                slow[i] = raw_client(&tb, "slow", NULL);
                raw_subscribe(slow[i], 1, "flood", NULL, 0);
        }
        cr_assert(pipe(sync_pipe) == 0);
        good = fork();
        cr_assert(good >= 0);
        if (good == 0) {
                uint64_t next = 1;
                int c;
                child_guard();
                close(sync_pipe[0]);
                if (setresgid(GOOD_UID, GOOD_UID, GOOD_UID) < 0 || setresuid(GOOD_UID, GOOD_UID, GOOD_UID) < 0)
                        _exit(99);
                c = raw_client(&tb, "good", NULL);
                raw_subscribe(c, 1, "flood", NULL, 0);
                for (r = 0; r < ROUNDS; r++) {
                        /* Tell the publisher to go on, then read its round. */
                        if (write(sync_pipe[1], "g", 1) != 1)
                                _exit(98);
                        for (i = 0; i < PER; i++) {
                                RawFrame f;
                                WireDelivery d;
                                raw_expect(c, WIRE_MESSAGE, &f);
                                wire_delivery_decode(f.meta, &d);
                                if (d.seq != next)
                                        _exit(97); /* lost a message */
                                next++;
                                raw_frame_free(&f);
                        }
                }
                close(c);
                _exit(0);
        }
        close(sync_pipe[1]); /* a reader that dies ends the reads below */
        p = raw_client(&tb, "pub", NULL);
        rss0 = tb_rss_kib(&tb);
        for (r = 0; r < ROUNDS; r++) {
                char go;
                cr_assert(eq(int, (int)read(sync_pipe[0], &go, 1), 1), "the reader is gone (round %d)", r);
                for (i = 0; i < PER; i++)
                        raw_publish(p, "flood", 1, payload, sizeof(payload));
                if (r % 10 == 0) {
                        long rss = tb_rss_kib(&tb);
                        int n = tb_fd_count(&tb);
                        if (rss > rss_peak)
                                rss_peak = rss;
                        if (n > peak_fds)
                                peak_fds = n;
                }
        }
        close(sync_pipe[0]);
        cr_assert(waitpid(good, &status, 0) == good);
        cr_assert(is_true(WIFEXITED(status)), "the reader died of signal %d", WTERMSIG(status));
        cr_assert(eq(int, WEXITSTATUS(status), 0), "the well-behaved client failed (97: lost a message)");
        /* 20 MB went to 100 readers that took nothing: the broker holds at
         * most their user's 8 MiB of queues (plus what the sockets hold). */
        if (!tb.valgrind && !TB_SANITIZED)
                cr_assert(lt(i64, rss_peak - rss0, 24 * 1024), "RSS grew by %ld KiB", rss_peak - rss0);
        cr_assert(lt(int, peak_fds, SLOW + 40));
        cr_assert(gt(i64, raw_status_number(p, "drops"), 0));
        cr_assert(le(i64, raw_status_number(p, "queued_bytes"), 8 << 20));
        for (i = 0; i < SLOW; i++)
                close(slow[i]);
        close(p);
        stop_in(dir);
}

Test(config, sys_statistics_are_published, .fini = cleanup, .timeout = 30) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        RawFrame f;
        int s, i;

        make_dir(dir);
        start_with(dir, "stats_interval: 1s\n", NULL);
        s = raw_client(&tb, "dashboard", NULL);
        /* "#" does not reach $-topics; "$SYS/#" does. */
        raw_subscribe(s, 1, "#", NULL, 0);
        raw_subscribe(s, 2, "$SYS/#", NULL, 0);
        for (i = 0; i < 2; i++) {
                WireDelivery d;
                cr_assert(eq(int, raw_read(s, &f, 3000), 1), "no statistics within 3 s");
                cr_assert(eq(str, f.topic, "$SYS/broker/stats"));
                wire_delivery_decode(f.meta, &d);
                cr_assert(eq(u32, d.sub_id, 2));
                cr_assert(eq(u32, d.sender_pid, (uint32_t)tb.pid));
                cr_assert(is_true(memmem(f.payload, f.h.payload_len, "\"messages_in\":", 14) != NULL));
                raw_frame_free(&f);
        }
        close(s);
        /* Retained: a late subscriber gets the last one at once. */
        s = raw_client(&tb, "late", NULL);
        raw_subscribe(s, 1, "$SYS/broker/+", NULL, 0);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(u32, f.h.flags & WIRE_F_RETAIN, WIRE_F_RETAIN));
        raw_frame_free(&f);
        close(s);
        stop_in(dir);
}

static int mon_pipe[2];

static void non_admin_monitor(void) {
        int c = raw_client(&tb, "curious", NULL);
        raw_subscribe(c, 1, "$SYS/monitor/#", NULL, 0);
        TB_CHECK(write(mon_pipe[1], "r", 1) == 1);
        /* The parent publishes now; a non-admin sees no monitor event. */
        raw_expect_silence(c, 500);
        close(c);
}

Test(acl, monitor_events_are_for_admins_only, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        const char *args[] = { "--socket-mode", "0666", NULL };
        int status, p, admin;
        RawFrame f;
        pid_t pid;
        char ready;

        make_dir(dir);
        start_with(dir, "access:\n  - users: [\"4104\"]\n    subscribe: [\"$SYS/#\"]\n", args);
        admin = raw_client(&tb, "root-monitor", NULL);
        raw_subscribe(admin, 1, "$SYS/monitor/#", NULL, 0);
        cr_assert(pipe(mon_pipe) == 0);
        pid = fork();
        if (pid == 0) {
                child_guard();
                if (setresgid(4104, 4104, 4104) < 0 || setresuid(4104, 4104, 4104) < 0)
                        _exit(99);
                non_admin_monitor();
                _exit(0);
        }
        close(mon_pipe[1]);
        cr_assert(eq(int, (int)read(mon_pipe[0], &ready, 1), 1));
        p = raw_client(&tb, "pub", NULL);
        raw_publish(p, "anything", 1, "x", 1);
        raw_expect(admin, WIRE_MESSAGE, &f); /* root sees it */
        cr_assert(eq(str, f.topic, "$SYS/monitor/publish"));
        raw_frame_free(&f);
        cr_assert(waitpid(pid, &status, 0) == pid);
        cr_assert(is_true(WIFEXITED(status) && WEXITSTATUS(status) == 0), "the non-admin saw an event");
        close(mon_pipe[0]);
        close(p);
        close(admin);
        stop_in(dir);
}

static void alice_serves_and_looks(void) {
        int c = raw_client(&tb, "alice", NULL);
        uint8_t meta[WIRE_META_SUBSCRIBE];
        RawFrame f;

        /* A responder must be allowed to read every request it could get. */
        wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 1, .flags = WIRE_SUB_F_RESPONDER });
        raw_send(c, WIRE_SUBSCRIBE, 0, 0, 1, meta, sizeof(meta), "sensors/#", NULL, 0);
        raw_expect(c, WIRE_ACK, &f);
        raw_frame_free(&f);
        wire_subscribe_encode(meta, &(WireSubscribe){ .sub_id = 2, .flags = WIRE_SUB_F_RESPONDER });
        raw_send(c, WIRE_SUBSCRIBE, 0, 0, 2, meta, sizeof(meta), "#", NULL, 0);
        raw_expect_error(c, WIRE_E_PERMISSION, false);
        /* status: the totals, not who is connected nor which topics exist. */
        raw_send(c, WIRE_ADMIN, 0, 0, 3, NULL, 0, "status", NULL, 0);
        raw_expect(c, WIRE_ADMIN_REPLY, &f);
        TB_CHECK(memmem(f.payload, f.h.payload_len, "\"clients\":", 10) != NULL);
        TB_CHECK(memmem(f.payload, f.h.payload_len, "per_client", 10) == NULL);
        TB_CHECK(memmem(f.payload, f.h.payload_len, "per_topic", 9) == NULL);
        raw_frame_free(&f);
        close(c);
}

Test(acl, responders_and_status_tables, .fini = cleanup, .timeout = 60) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        const char *args[] = { "--socket-mode", "0666", NULL };
        int root;
        RawFrame f;

        make_dir(dir);
        start_with(dir, acl_yaml, args);
        as_user(ALICE, 0, alice_serves_and_looks);
        /* Root sees the tables. */
        root = raw_client(&tb, "root", NULL);
        raw_send(root, WIRE_ADMIN, 0, 0, 3, NULL, 0, "status", NULL, 0);
        raw_expect(root, WIRE_ADMIN_REPLY, &f);
        cr_assert(is_true(memmem(f.payload, f.h.payload_len, "per_client", 10) != NULL));
        raw_frame_free(&f);
        close(root);
        stop_in(dir);
}

Test(config, retained_publish_over_the_limits_is_refused_whole, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        int p, s;
        RawFrame f;

        make_dir(dir);
        start_with(dir, "limits:\n  retained_max_messages: 1\n  retained_max_bytes: 64\n", NULL);
        p = raw_client(&tb, "pub", NULL);
        s = raw_client(&tb, "sub", NULL);
        raw_subscribe(s, 1, "r/#", NULL, 0);
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN | WIRE_F_ACK, 1, 1, NULL, 0, "r/a", "first", 5);
        raw_expect(p, WIRE_ACK, &f);
        raw_frame_free(&f);
        raw_expect(s, WIRE_MESSAGE, &f);
        raw_frame_free(&f);
        /* A second topic would be a second retained message: refused, and
         * not delivered either. Replacing the first one fits. */
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN | WIRE_F_ACK, 1, 2, NULL, 0, "r/b", "second", 6);
        raw_expect_error(p, WIRE_E_LIMIT, false);
        raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN | WIRE_F_ACK, 1, 3, NULL, 0, "r/a", "third", 5);
        raw_expect(p, WIRE_ACK, &f);
        raw_frame_free(&f);
        raw_expect(s, WIRE_MESSAGE, &f);
        cr_assert(eq(str, f.topic, "r/a"));
        raw_frame_free(&f);
        /* Too many bytes for the limit: refused as well. */
        {
                static char big[100];
                raw_send(p, WIRE_PUBLISH, WIRE_F_RETAIN, 1, 4, NULL, 0, "r/a", big, sizeof(big));
                raw_expect_error(p, WIRE_E_LIMIT, false);
        }
        raw_sync(p);
        raw_expect_silence(s, 50);
        cr_assert(eq(i64, raw_status_number(p, "retained"), 1));
        close(p);
        close(s);
        stop_in(dir);
}

Test(config, topic_rules_apply_to_requests_too, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX";
        uint8_t meta[WIRE_META_REQUEST] = { 0 }, smeta[WIRE_META_SUBSCRIBE];
        int srv, cli;
        RawFrame f;

        make_dir(dir);
        start_with(dir, "topics:\n  - pattern: \"svc/#\"\n    types: [1]\n    max_payload: 4\n", NULL);
        srv = raw_client(&tb, "server", NULL);
        cli = raw_client(&tb, "client", NULL);
        wire_subscribe_encode(smeta, &(WireSubscribe){ .sub_id = 1, .flags = WIRE_SUB_F_RESPONDER });
        raw_send(srv, WIRE_SUBSCRIBE, 0, 0, 1, smeta, sizeof(smeta), "svc/#", NULL, 0);
        raw_expect(srv, WIRE_ACK, &f);
        raw_frame_free(&f);
        raw_send(cli, WIRE_REQUEST, 0, 2, 5, meta, sizeof(meta), "svc/x", "ok", 2);
        raw_expect_error(cli, WIRE_E_PERMISSION, false);
        raw_send(cli, WIRE_REQUEST, 0, 1, 6, meta, sizeof(meta), "svc/x", "too long", 8);
        raw_expect_error(cli, WIRE_E_TOO_LARGE, false);
        raw_send(cli, WIRE_REQUEST, 0, 1, 7, meta, sizeof(meta), "svc/x", "ok", 2);
        raw_expect(srv, WIRE_REQUEST, &f);
        raw_frame_free(&f);
        close(srv); /* the pending request ends with responder-gone */
        raw_expect_error(cli, WIRE_E_RESPONDER_GONE, false);
        close(cli);
        stop_in(dir);
}

/* A client's repeated topic skips validation and lookup: a reload that
 * shortens max_topic_length must still refuse the topic it published
 * before. */
Test(config, reload_rechecks_a_repeated_topic, .fini = cleanup) {
        char dir[] = "/tmp/ipcd-test-XXXXXX", conf[256];
        RawFrame f;
        int p;

        make_dir(dir);
        start_with(dir, "", NULL);
        p = raw_client(&tb, "pub", NULL);
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 0, 1, NULL, 0, "a/long/topic/name", "x", 1);
        raw_expect(p, WIRE_ACK, &f);
        raw_frame_free(&f);
        write_file(dir, "ipcd.yaml", "limits:\n  max_topic_length: 8\n", conf, sizeof(conf));
        raw_send(p, WIRE_ADMIN, 0, 0, 2, NULL, 0, "reload", NULL, 0);
        raw_expect(p, WIRE_ADMIN_REPLY, &f);
        raw_frame_free(&f);
        raw_send(p, WIRE_PUBLISH, WIRE_F_ACK, 0, 3, NULL, 0, "a/long/topic/name", "x", 1);
        raw_expect_error(p, WIRE_E_TOO_LARGE, true);
        close(p);
        stop_in(dir);
}
