/* SPDX-License-Identifier: MIT */
/*
 * ipcctl: the command-line client and admin tool of ipcd. It uses only the
 * public libipcd-client API (and libc), like any other client would.
 *
 * Exit codes (documented in ipcctl(1), relied upon by scripts):
 *   0 success, 1 the broker refused or failed, 2 usage error,
 *   3 cannot connect to the broker, 4 timed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/ipcd-client.h>

#include "json.h"
#include "utf8.h"

#define EXIT_BROKER 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define EXIT_TIMEOUT 4

#define MAX_TYPES 64
/* --fd options at most: what one sendmsg() can carry (the broker's own
 * limit, 16 by default, is checked by the library). */
#define MAX_PUB_FDS 253
/* Files larger than this go to the broker as a memfd filled in the kernel
 * (the library's default bulk threshold). */
#define FILE_BULK_MIN (64u << 10)
/* Standard input read into memory: at most this (the broker's default bulk
 * limit; the library refuses what the broker does not take). */
#define STDIN_MAX (1ull << 30)

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

static const char *arg_socket;
static int arg_timeout_ms = 5000;
static bool arg_reconnect;

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...) {
        va_list ap;

        fputs("ipcctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* Reports a failed library call @r on @c: "ipcctl: WHAT: strerror (why)". */
static int report(ipcd_client *c, int r, const char *what) {
        const char *why = c ? ipcd_client_last_error(c) : "";

        if (*why && strcmp(why, "no error") != 0)
                log_error("%s: %s (%s)", what, strerror(-r), why);
        else
                log_error("%s: %s", what, strerror(-r));
        return r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_BROKER;
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "ipcctl: %s%s", cmd ? cmd : "", cmd ? ": " : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'ipcctl %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
        return EXIT_USAGE;
}

static const char *bad_option(char **argv);

/* The usage error for what getopt_long() (with a leading ':' in its
 * option string) just returned: a missing value or an unknown option. */
static int option_error(const char *cmd, int o, char **argv) {
        if (o == ':')
                return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        return usage_error(cmd, "unknown option '%s'", bad_option(argv));
}

/* The option getopt_long() just refused, for the error message. */
static const char *bad_option(char **argv) {
        static char buf[3];

        if (optopt > 0 && optopt < 128) {
                buf[0] = '-';
                buf[1] = (char)optopt;
                return buf;
        }
        return argv[optind - 1];
}

static int parse_u32(const char *s, uint32_t *ret) {
        unsigned long long v;
        char *end;

        if (!*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || *end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

/* Seconds (decimals allowed) to milliseconds; 0 stays 0. */
static int parse_seconds(const char *s, int *ret_ms) {
        char *end;
        double v;
        int ms;

        errno = 0;
        v = strtod(s, &end);
        /* The comparisons are false for NaN. */
        if (errno || end == s || *end || !(v >= 0 && v <= INT_MAX / 1000))
                return -EINVAL;
        ms = (int)(v * 1000);
        if (ms < v * 1000)
                ms++; /* round up: 0.0001 s is not "no limit" */
        *ret_ms = ms;
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --reconnect: say on stderr what happens to the connection. */
static void on_connection_event(ipcd_client *c, const ipcd_event *ev, void *userdata) {
        (void)c;
        (void)userdata;
        if (ev->type == IPCD_EVENT_DISCONNECTED)
                log_error("connection to the broker lost (%s); reconnecting", ev->reason);
        else if (ev->type == IPCD_EVENT_RECONNECTED)
                log_error("%s; messages published meanwhile were missed", ev->reason);
}

static int connect_broker(ipcd_client **ret) {
        ipcd_client *c = NULL;
        int r;

        r = ipcd_client_new(&c, arg_socket, "ipcctl");
        if (r < 0) {
                const char *where = arg_socket ? arg_socket : getenv("IPCD_SOCKET");
                if (!where || !*where)
                        where = "the default socket";
                log_error("cannot connect to the broker at %s: %s", where, strerror(-r));
                return r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_CONNECT;
        }
        (void)ipcd_client_set_timeout(c, arg_timeout_ms > 0 ? arg_timeout_ms : -1);
        if (arg_reconnect) {
                r = ipcd_client_set_reconnect(c, 100, 2000);
                if (r < 0) {
                        log_error("cannot set up reconnection: %s", strerror(-r));
                        ipcd_client_unref(c);
                        return EXIT_CONNECT;
                }
                (void)ipcd_client_set_event_handler(c, on_connection_event, NULL);
        }
        *ret = c;
        return 0;
}

/* ---- text helpers ---- */


/* Text: valid UTF-8 with no control characters but tab, newline and
 * carriage return. */
static bool is_text(const void *data, size_t len) {
        const unsigned char *s = data;
        size_t i = 0;

        while (i < len) {
                size_t n;
                if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f)
                        return false;
                n = utf8_char_len(s + i, len - i);
                if (n == 0)
                        return false;
                i += n;
        }
        return true;
}

/* Writes @len bytes of text, with tab, newline and carriage return shown
 * as \t, \n, \r so a message stays on one line. */
static void print_text_escaped(FILE *f, const char *s, size_t len) {
        size_t i;

        for (i = 0; i < len; i++) {
                switch (s[i]) {
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        fputc(s[i], f);
                }
        }
}

/* Writes @len bytes of valid UTF-8 as a JSON string, quotes included. */
static void print_json_string(FILE *f, const char *s, size_t len) {
        size_t i;

        fputc('"', f);
        for (i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                switch (ch) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (ch < 0x20 || ch == 0x7f)
                                fprintf(f, "\\u%04x", ch);
                        else
                                fputc(ch, f);
                }
        }
        fputc('"', f);
}

static void print_base64(FILE *f, const unsigned char *s, size_t len) {
        static const char tbl[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t i;

        for (i = 0; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
                fputc(tbl[v >> 18], f);
                fputc(tbl[(v >> 12) & 63], f);
                fputc(tbl[(v >> 6) & 63], f);
                fputc(tbl[v & 63], f);
        }
        if (len - i == 1) {
                uint32_t v = (uint32_t)s[i] << 16;
                fputc(tbl[v >> 18], f);
                fputc(tbl[(v >> 12) & 63], f);
                fputs("==", f);
        } else if (len - i == 2) {
                uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
                fputc(tbl[v >> 18], f);
                fputc(tbl[(v >> 12) & 63], f);
                fputc(tbl[(v >> 6) & 63], f);
                fputc('=', f);
        }
}

/* ---- pub ---- */

static void help_pub(void) {
        printf("Usage: ipcctl [OPTIONS] pub TOPIC [--type N] [--retain] [--fd PATH]...\n"
               "                                 [DATA | - | --file PATH]\n"
               "\n"
               "Publish one message on TOPIC and wait until the broker has routed it.\n"
               "DATA is the payload; '-' reads it from standard input; without DATA the\n"
               "payload is empty. Payloads over 64 KiB go to the broker as a sealed memfd\n"
               "(receivers map it; nobody copies it on the way).\n"
               "\n"
               "  --type N     user message type (0..4294967295, default 0)\n"
               "  --retain     the broker keeps it as TOPIC's retained message and gives it to\n"
               "               every new subscription that matches TOPIC; an empty retained\n"
               "               message clears it\n"
               "  --file PATH  the payload is the contents of PATH; a large regular file is\n"
               "               copied into a memfd by the kernel, with no copy through ipcctl\n"
               "  --fd PATH    open PATH read-only and pass the open file with the message\n"
               "               (repeatable, in order; the broker allows 16 per message by\n"
               "               default, one less with a memfd payload)\n"
               "  -h --help    show this help\n");
}

/* Reads all of @fd, at most @max bytes. Returns 0, -EMSGSIZE when there is
 * more, or another negative errno. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len) {
        size_t len = 0, cap = 0;
        char *buf = NULL;

        for (;;) {
                ssize_t n;

                if (cap - len < 4096) {
                        size_t ncap = cap ? cap * 2 : 65536;
                        char *nb = realloc(buf, ncap);
                        if (!nb) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nb;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        free(buf);
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > max) {
                        free(buf);
                        return -EMSGSIZE;
                }
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

/*
 * Copies the first @len bytes of the regular file @fd into a new memfd
 * inside the kernel (copy_file_range(), else sendfile(): the data never
 * passes through ipcctl). The library seals it when publishing. Returns
 * the memfd, or a negative errno; *ret_len receives the bytes copied (less
 * than @len when the file shrank meanwhile).
 */
static int file_to_memfd(int fd, uint64_t len, uint64_t *ret_len) {
        bool use_sendfile = false;
        off_t in_off = 0, out_off = 0;
        uint64_t done = 0;
        int memfd, r;

        memfd = memfd_create("ipcctl-file", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (memfd < 0 && errno == EINVAL)
                memfd = memfd_create("ipcctl-file", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0)
                return -errno;
        while (done < len) {
                size_t chunk = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);
                ssize_t n;

                if (!use_sendfile) {
                        n = copy_file_range(fd, &in_off, memfd, &out_off, chunk, 0);
                        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                                      errno == EOPNOTSUPP)) {
                                /* Across file systems: sendfile() splices. */
                                use_sendfile = true;
                                continue;
                        }
                } else
                        n = sendfile(memfd, fd, &in_off, chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        close(memfd);
                        return r;
                }
                if (n == 0)
                        break;
                done += (uint64_t)n;
        }
        *ret_len = done;
        return memfd;
}

/* The payload of a pub: bytes in memory, or a memfd of @memfd_len bytes. */
typedef struct Payload {
        char *data;
        size_t size;
        int memfd;
        uint64_t memfd_len;
} Payload;

/* Loads the contents of @fd (named @what in errors) as a payload: a large
 * regular file into a memfd, anything else into memory. Returns 0 or an
 * exit code. */
static int load_payload(int fd, const char *what, Payload *p) {
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0) {
                log_error("pub: cannot read %s: %s", what, strerror(errno));
                return EXIT_BROKER;
        }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > FILE_BULK_MIN) {
                r = file_to_memfd(fd, (uint64_t)st.st_size, &p->memfd_len);
                if (r < 0) {
                        log_error("pub: cannot copy %s into a memfd: %s", what, strerror(-r));
                        return EXIT_BROKER;
                }
                p->memfd = r;
                return 0;
        }
        r = read_all(fd, STDIN_MAX, &p->data, &p->size);
        if (r == -EMSGSIZE) {
                log_error("pub: %s is larger than %llu bytes", what, (unsigned long long)STDIN_MAX);
                return EXIT_BROKER;
        }
        if (r < 0) {
                log_error("pub: cannot read %s: %s", what, strerror(-r));
                return EXIT_BROKER;
        }
        return 0;
}

static int cmd_pub(int argc, char **argv) {
        static const struct option options[] = {
                { "type", required_argument, NULL, 'T' },
                { "file", required_argument, NULL, 'F' },
                { "fd", required_argument, NULL, 'D' },
                { "retain", no_argument, NULL, 'R' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        unsigned flags = IPCD_PUBLISH_ACK;
        const char *topic, *data_arg = NULL, *file = NULL, *fd_paths[MAX_PUB_FDS];
        int fds[MAX_PUB_FDS], o, r, ret, file_fd = -1;
        Payload p = { .memfd = -1 };
        ipcd_client *c = NULL;
        size_t n_fds = 0, i;
        uint32_t type = 0;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'T':
                        if (parse_u32(optarg, &type) < 0)
                                return usage_error("pub", "invalid --type '%s'", optarg);
                        break;
                case 'F':
                        if (file)
                                return usage_error("pub", "--file given twice");
                        file = optarg;
                        break;
                case 'D':
                        if (n_fds == MAX_PUB_FDS)
                                return usage_error("pub", "at most %d --fd options", MAX_PUB_FDS);
                        fd_paths[n_fds++] = optarg;
                        break;
                case 'R':
                        flags |= IPCD_PUBLISH_RETAIN;
                        break;
                case 'h':
                        help_pub();
                        return 0;
                default:
                        return option_error("pub", o, argv);
                }
        }
        if (optind >= argc)
                return usage_error("pub", "missing TOPIC");
        topic = argv[optind++];
        if (optind < argc)
                data_arg = argv[optind++];
        if (optind < argc)
                return usage_error("pub", "unexpected argument '%s'", argv[optind]);
        if (file && data_arg)
                return usage_error("pub", "give DATA, '-' or --file, not more than one");

        /* Files named on the command line first: a typo is a usage error,
         * found before anything is sent. */
        ret = 0;
        for (i = 0; i < n_fds; i++) {
                fds[i] = open(fd_paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fds[i] < 0) {
                        log_error("pub: cannot open '%s' for --fd: %s", fd_paths[i], strerror(errno));
                        n_fds = i;
                        ret = EXIT_USAGE;
                        goto out;
                }
        }
        if (file) {
                file_fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (file_fd < 0) {
                        log_error("pub: cannot open '%s' for --file: %s", file, strerror(errno));
                        ret = EXIT_USAGE;
                        goto out;
                }
        }

        ret = connect_broker(&c);
        if (ret != 0)
                goto out;

        if (file)
                ret = load_payload(file_fd, file, &p);
        else if (data_arg && strcmp(data_arg, "-") == 0)
                ret = load_payload(STDIN_FILENO, "standard input", &p);
        else if (data_arg)
                p.size = strlen(data_arg);
        if (ret != 0)
                goto out;

        if (p.memfd >= 0)
                r = ipcd_client_publish_memfd(c, topic, type, p.memfd, p.memfd_len, fds, n_fds,
                                              flags);
        else
                r = ipcd_client_publish_fds(c, topic, type, p.data ? p.data : data_arg, p.size, fds,
                                            n_fds, flags);
        ret = r < 0 ? report(c, r, "pub: cannot publish") : 0;
out:
        ipcd_client_unref(c);
        for (i = 0; i < n_fds; i++)
                close(fds[i]);
        if (file_fd >= 0)
                close(file_fd);
        if (p.memfd >= 0)
                close(p.memfd);
        free(p.data);
        return ret;
}

/* ---- sub ---- */

typedef struct SubState {
        bool json;
        uint64_t count; /* 0: no limit */
        uint64_t received;
        int save_dirfd; /* --save: the directory, else -1 */
        const char *save_dir;
        int failed; /* an exit code: stop */
} SubState;

/* What an fd is, for people and scripts: a type, and a path or name when
 * there is one. */
typedef struct FdInfo {
        const char *type;
        const char *key; /* "path", "name" or NULL */
        char value[PATH_MAX];
} FdInfo;

static void describe_fd(int fd, FdInfo *ret) {
        static const char *const anon[] = { "eventfd", "timerfd", "signalfd", "pidfd",
                                            "inotify", "fanotify", "userfaultfd", "io_uring" };
        char proc[64], link[PATH_MAX];
        struct stat st;
        ssize_t n;
        size_t i;

        *ret = (FdInfo){ .type = "unknown" };
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        n = readlink(proc, link, sizeof(link) - 1);
        link[n < 0 ? 0 : n] = 0;
        if (fstat(fd, &st) < 0)
                return;
        switch (st.st_mode & S_IFMT) {
        case S_IFREG:
                if (strncmp(link, "/memfd:", 7) == 0) {
                        char *deleted = strstr(link, " (deleted)");
                        if (deleted)
                                *deleted = 0;
                        ret->type = "memfd";
                        ret->key = "name";
                        snprintf(ret->value, sizeof(ret->value), "%s", link + 7);
                        return;
                }
                ret->type = "file";
                break;
        case S_IFDIR:
                ret->type = "directory";
                break;
        case S_IFCHR:
                ret->type = "chardev";
                break;
        case S_IFBLK:
                ret->type = "blockdev";
                break;
        case S_IFIFO:
                if (strncmp(link, "pipe:", 5) == 0) {
                        ret->type = "pipe";
                        return;
                }
                ret->type = "fifo";
                break;
        case S_IFSOCK:
                ret->type = "socket";
                return;
        default:
                /* Anonymous inodes: "anon_inode:[eventfd]", "anon_inode:inotify". */
                if (strncmp(link, "anon_inode:", 11) == 0) {
                        const char *name = link + 11;
                        size_t len = strlen(name);

                        if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
                                name++;
                                len -= 2;
                        }
                        for (i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
                                if (strlen(anon[i]) == len && strncmp(anon[i], name, len) == 0) {
                                        ret->type = anon[i];
                                        return;
                                }
                        if (len == 9 && strncmp(name, "eventpoll", 9) == 0) {
                                ret->type = "epoll";
                                return;
                        }
                        ret->type = "anon_inode";
                        ret->key = "name";
                        snprintf(ret->value, sizeof(ret->value), "%.*s", (int)len, name);
                }
                return;
        }
        if (n > 0) {
                ret->key = "path";
                snprintf(ret->value, sizeof(ret->value), "%s", link);
        }
}

/* Writes @s as a JSON string; bytes that are not valid UTF-8 (a path may
 * hold any) become U+FFFD. */
static void print_json_text(FILE *f, const char *s) {
        char buf[3 * PATH_MAX + 1];
        size_t len = strlen(s), i = 0, o = 0;

        while (i < len && o + 3 < sizeof(buf)) {
                size_t n = utf8_char_len((const unsigned char *)s + i, len - i);
                if (n == 0) {
                        memcpy(buf + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        i++;
                        continue;
                }
                if (o + n >= sizeof(buf))
                        break;
                memcpy(buf + o, s + i, n);
                o += n;
                i += n;
        }
        print_json_string(f, buf, o);
}

static void print_fds_json(ipcd_msg *m) {
        size_t i, n = ipcd_msg_get_n_fds(m);

        fputs(",\"fds\":[", stdout);
        for (i = 0; i < n; i++) {
                FdInfo info;

                describe_fd(ipcd_msg_get_fd(m, i), &info);
                printf("%s{\"type\":\"%s\"", i ? "," : "", info.type);
                if (info.key) {
                        printf(",\"%s\":", info.key);
                        print_json_text(stdout, info.value);
                }
                fputc('}', stdout);
        }
        fputc(']', stdout);
}

static void print_fds_human(ipcd_msg *m) {
        size_t i, n = ipcd_msg_get_n_fds(m);

        if (n == 0)
                return;
        fputs(" fds=[", stdout);
        for (i = 0; i < n; i++) {
                FdInfo info;

                describe_fd(ipcd_msg_get_fd(m, i), &info);
                printf("%s%s", i ? "," : "", info.type);
                if (info.key) {
                        fputc(':', stdout);
                        print_text_escaped(stdout, info.value, strlen(info.value));
                }
        }
        fputc(']', stdout);
}

static const char *transport(ipcd_msg *m) {
        return (ipcd_msg_get_flags(m) & IPCD_MSG_BULK) ? "memfd" : "inline";
}

/* @saved: where --save wrote the payload (then it is not printed), or NULL. */
static void print_message_json(ipcd_msg *m, const char *saved) {
        const char *topic = ipcd_msg_get_topic(m);
        size_t size;
        const void *data = ipcd_msg_get_data(m, &size);

        fputs("{\"topic\":", stdout);
        print_json_string(stdout, topic, strlen(topic));
        printf(",\"type\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"sender_pid\":%ld"
               ",\"sender_uid\":%lu,\"sender_gid\":%lu,\"size\":%zu,\"subscription\":%" PRIu32,
               ipcd_msg_get_type(m), ipcd_msg_get_seq(m), (long)ipcd_msg_get_sender_pid(m),
               (unsigned long)ipcd_msg_get_sender_uid(m),
               (unsigned long)ipcd_msg_get_sender_gid(m), size, ipcd_msg_get_subscription(m));
        printf(",\"retained\":%s", (ipcd_msg_get_flags(m) & IPCD_MSG_RETAINED) ? "true" : "false");
        printf(",\"payload_transport\":\"%s\"", transport(m));
        print_fds_json(m);
        if (saved) {
                fputs(",\"saved\":", stdout);
                print_json_text(stdout, saved);
        } else if (is_text(data, size)) {
                fputs(",\"payload\":", stdout);
                print_json_string(stdout, data, size);
        } else {
                fputs(",\"payload_base64\":\"", stdout);
                print_base64(stdout, data, size);
                fputc('"', stdout);
        }
        fputs("}\n", stdout);
}

static void print_message_human(ipcd_msg *m, const char *saved) {
        size_t size;
        const void *data = ipcd_msg_get_data(m, &size);

        printf("%s type=%" PRIu32 " seq=%" PRIu64 " pid=%ld uid=%lu size=%zu transport=%s",
               ipcd_msg_get_topic(m), ipcd_msg_get_type(m), ipcd_msg_get_seq(m),
               (long)ipcd_msg_get_sender_pid(m), (unsigned long)ipcd_msg_get_sender_uid(m), size,
               transport(m));
        if (ipcd_msg_get_flags(m) & IPCD_MSG_RETAINED)
                fputs(" retained", stdout);
        print_fds_human(m);
        fputs(": ", stdout);
        if (saved) {
                fputs("saved to ", stdout);
                print_text_escaped(stdout, saved, strlen(saved));
        } else if (is_text(data, size))
                print_text_escaped(stdout, data, size);
        else
                printf("<%zu bytes binary>", size);
        fputc('\n', stdout);
}

/*
 * --save: writes the payload of @m to SEQ-TOPIC.bin in the save directory
 * ('/' in the topic becomes '_'; the name is cut to NAME_MAX). @ret_path
 * receives the path. Returns 0 or a negative errno.
 */
static int save_payload(SubState *st, ipcd_msg *m, char *ret_path, size_t path_size) {
        char name[NAME_MAX + 1];
        const char *topic = ipcd_msg_get_topic(m);
        size_t size, len, i;
        const char *data = ipcd_msg_get_data(m, &size);
        int fd, r = 0;

        len = (size_t)snprintf(name, sizeof(name), "%" PRIu64 "-", ipcd_msg_get_seq(m));
        for (i = 0; topic[i] && len < sizeof(name) - 1 - 4; i++)
                name[len++] = topic[i] == '/' ? '_' : topic[i];
        memcpy(name + len, ".bin", 5);
        snprintf(ret_path, path_size, "%s/%s", st->save_dir, name);

        fd = openat(st->save_dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0644);
        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t n = write(fd, data, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                data += n;
                size -= (size_t)n;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

static void on_message(ipcd_client *c, ipcd_msg *m, void *userdata) {
        SubState *st = userdata;
        char path[PATH_MAX + NAME_MAX + 2];
        const char *saved = NULL;

        if (st->failed || (st->count > 0 && st->received >= st->count))
                return; /* enough: the rest of this batch is not shown */
        if (st->save_dirfd >= 0) {
                int r = save_payload(st, m, path, sizeof(path));
                if (r < 0) {
                        log_error("sub: cannot save the payload to %s: %s", path, strerror(-r));
                        st->failed = EXIT_BROKER;
                        return;
                }
                saved = path;
        }
        if (st->json)
                print_message_json(m, saved);
        else
                print_message_human(m, saved);
        fflush(stdout);
        st->received++;
}

/* What the broker accepts as a queue group name. */
static bool valid_group_name(const char *s) {
        size_t len = strlen(s), i;

        if (len == 0 || len > 255 || !is_text(s, len))
                return false;
        for (i = 0; i < len; i++)
                if (s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
                        return false;
        return true;
}

static void help_sub(void) {
        printf("Usage: ipcctl [OPTIONS] sub FILTER [--type N]... [--group NAME] [--no-retained]\n"
               "                    [--count N] [--timeout SECONDS] [--json] [--save DIR]\n"
               "\n"
               "Subscribe to FILTER ('+' matches one level, '#' the rest) and print one\n"
               "line per message (wrapped here):\n"
               "  TOPIC type=N seq=N pid=N uid=N size=N transport=T [retained] [fds=[...]]:\n"
               "    PAYLOAD\n"
               "PAYLOAD is the text, or <N bytes binary>. T is inline, or memfd for a\n"
               "payload that came as a sealed memfd. retained marks a topic's retained\n"
               "message, which the broker sends first to a new subscription. fds lists the\n"
               "file descriptors that came with it, as TYPE or TYPE:PATH (file:/etc/hostname,\n"
               "pipe, socket, ...).\n"
               "\n"
               "  --type N           receive only this message type (repeatable, at most 64)\n"
               "  --group NAME       join queue group NAME: each message goes to one member\n"
               "                     of the group only, in turn\n"
               "  --no-retained      do not receive the retained messages first\n"
               "  --count N          exit after N messages\n"
               "  --timeout SECONDS  give up after SECONDS (exit code 4)\n"
               "  --json             one JSON object per line: topic, type, seq, sender_pid,\n"
               "                     sender_uid, sender_gid, size, subscription, retained\n"
               "                     (true or false),\n"
               "                     payload_transport (\"inline\" or \"memfd\"), fds (a list\n"
               "                     of {\"type\":...} with \"path\" or \"name\" when known), and\n"
               "                     payload (text) or payload_base64 (anything else)\n"
               "  --save DIR         write each payload to DIR/SEQ-TOPIC.bin ('/' in TOPIC\n"
               "                     becomes '_') and print that path instead of the payload\n"
               "                     (\"saved\" in JSON)\n"
               "  -h --help          show this help\n"
               "\n"
               "SIGINT and SIGTERM end it with exit code 0.\n");
}

static int cmd_sub(int argc, char **argv) {
        static const struct option options[] = {
                { "type", required_argument, NULL, 'T' },
                { "count", required_argument, NULL, 'c' },
                { "timeout", required_argument, NULL, 'w' },
                { "json", no_argument, NULL, 'j' },
                { "save", required_argument, NULL, 'S' },
                { "group", required_argument, NULL, 'g' },
                { "no-retained", no_argument, NULL, 'N' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint32_t types[MAX_TYPES], count32;
        SubState st = { .save_dirfd = -1 };
        const char *filter, *group = NULL;
        unsigned sub_flags = 0;
        ipcd_client *c = NULL;
        size_t n_types = 0;
        int timeout_ms = 0, o, r, ret, sfd = -1;
        int64_t deadline = 0;
        sigset_t mask, old_mask;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'T':
                        if (n_types == MAX_TYPES)
                                return usage_error("sub", "at most %d --type options", MAX_TYPES);
                        if (parse_u32(optarg, &types[n_types]) < 0)
                                return usage_error("sub", "invalid --type '%s'", optarg);
                        n_types++;
                        break;
                case 'c':
                        if (parse_u32(optarg, &count32) < 0 || count32 == 0)
                                return usage_error("sub", "invalid --count '%s'", optarg);
                        st.count = count32;
                        break;
                case 'w':
                        if (parse_seconds(optarg, &timeout_ms) < 0)
                                return usage_error("sub", "invalid --timeout '%s'", optarg);
                        break;
                case 'j':
                        st.json = true;
                        break;
                case 'S':
                        st.save_dir = optarg;
                        break;
                case 'g':
                        if (!valid_group_name(optarg))
                                return usage_error("sub", "invalid --group '%s': 1 to 255 bytes of "
                                                          "printable UTF-8", optarg);
                        group = optarg;
                        break;
                case 'N':
                        sub_flags |= IPCD_SUBSCRIBE_NO_RETAINED;
                        break;
                case 'h':
                        help_sub();
                        return 0;
                default:
                        return option_error("sub", o, argv);
                }
        }
        if (optind >= argc)
                return usage_error("sub", "missing FILTER");
        filter = argv[optind++];
        if (optind < argc)
                return usage_error("sub", "unexpected argument '%s'", argv[optind]);
        if (st.save_dir) {
                /* Checked now: better than after the first message. */
                st.save_dirfd = open(st.save_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (st.save_dirfd < 0 || faccessat(st.save_dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
                        log_error("sub: cannot save into '%s': %s", st.save_dir, strerror(errno));
                        if (st.save_dirfd >= 0)
                                close(st.save_dirfd);
                        return EXIT_USAGE;
                }
        }

        /* Signals arrive on a signalfd polled with the broker's socket: no
         * race between checking for them and sleeping. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, &old_mask) < 0 ||
            (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
                log_error("sub: cannot set up signal handling: %s", strerror(errno));
                return EXIT_BROKER;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);

        if (timeout_ms > 0)
                deadline = now_ms() + timeout_ms;
        ret = connect_broker(&c);
        if (ret != 0)
                goto out;
        r = ipcd_client_subscribe_full(c, filter, n_types ? types : NULL, n_types, group,
                                       sub_flags, on_message, &st, NULL);
        if (r < 0) {
                ret = report(c, r, "sub: cannot subscribe");
                goto out;
        }

        for (;;) {
                struct pollfd pfd[2];
                int t = -1;

                /* Also right after subscribing: messages may already be
                 * buffered in the library. */
                r = ipcd_client_process(c);
                if (r < 0) {
                        ret = report(c, r, "sub: connection to the broker lost");
                        break;
                }
                if (st.failed) {
                        ret = st.failed;
                        break;
                }
                if (st.count > 0 && st.received >= st.count) {
                        ret = 0;
                        break;
                }
                if (r > 0)
                        continue;
                if (deadline > 0) {
                        int64_t left = deadline - now_ms();
                        if (left <= 0) {
                                log_error("sub: timed out after %.3g s (%" PRIu64
                                          " messages received)",
                                          timeout_ms / 1000.0, st.received);
                                ret = EXIT_TIMEOUT;
                                break;
                        }
                        t = left > INT_MAX ? INT_MAX : (int)left;
                }
                pfd[0] = (struct pollfd){ .fd = ipcd_client_get_fd(c),
                                          .events = (short)ipcd_client_get_events(c) };
                pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                if (poll(pfd, 2, t) < 0 && errno != EINTR) {
                        log_error("sub: poll failed: %s", strerror(errno));
                        ret = EXIT_BROKER;
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        /* Consumed, so it is not delivered when the mask is
                         * restored. Interrupted: a normal way to stop. */
                        (void)!read(sfd, &si, sizeof(si));
                        ret = 0;
                        break;
                }
        }
out:
        ipcd_client_unref(c);
        if (sfd >= 0)
                close(sfd);
        if (st.save_dirfd >= 0)
                close(st.save_dirfd);
        (void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
        return ret;
}

/* ---- tables ---- */

/*
 * Columns of text, each as wide as its widest cell (counted in characters),
 * numbers right-aligned. Cells are added row by row, left to right.
 */
typedef struct Table {
        size_t n_cols;
        const char *const *headers;
        const bool *right;
        char **cells;
        size_t n_cells, cap;
        bool oom;
} Table;

/* A copy of @s fit for one table cell: control characters and bytes that
 * are not UTF-8 become '?'. */
static char *cell_text(const char *s) {
        size_t len = strlen(s), i = 0, o = 0;
        char *out = malloc(len + 1);

        if (!out)
                return NULL;
        while (i < len) {
                unsigned char ch = (unsigned char)s[i];
                size_t n = utf8_char_len((const unsigned char *)s + i, len - i);

                if (n == 0 || ch < 0x20 || ch == 0x7f) {
                        out[o++] = '?';
                        i++;
                        continue;
                }
                memcpy(out + o, s + i, n);
                o += n;
                i += n;
        }
        out[o] = 0;
        return out;
}

/* Characters in valid UTF-8 @s. */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char)*s & 0xc0) != 0x80)
                        w++;
        return w;
}

static void table_add(Table *t, const char *text) {
        char *cell;

        if (t->oom)
                return;
        if (t->n_cells == t->cap) {
                size_t ncap = t->cap ? t->cap * 2 : 64;
                char **cells = realloc(t->cells, ncap * sizeof(*cells));
                if (!cells) {
                        t->oom = true;
                        return;
                }
                t->cells = cells;
                t->cap = ncap;
        }
        cell = cell_text(text);
        if (!cell) {
                t->oom = true;
                return;
        }
        t->cells[t->n_cells++] = cell;
}

static void table_addf(Table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_addf(Table *t, const char *fmt, ...) {
        char buf[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        table_add(t, buf);
}

/* Prints the header and the rows; two spaces between columns, no
 * trailing blanks. Returns 0, or -ENOMEM when a cell was lost. */
static int table_print(const Table *t) {
        size_t widths[16] = { 0 }, i, col;

        if (t->oom)
                return -ENOMEM;
        for (col = 0; col < t->n_cols; col++)
                widths[col] = text_width(t->headers[col]);
        for (i = 0; i < t->n_cells; i++) {
                size_t w = text_width(t->cells[i]);
                if (w > widths[i % t->n_cols])
                        widths[i % t->n_cols] = w;
        }
        for (i = 0; i < t->n_cells + t->n_cols; i++) {
                const char *s = i < t->n_cols ? t->headers[i] : t->cells[i - t->n_cols];
                bool last = (i + 1) % t->n_cols == 0;
                size_t pad;

                col = i % t->n_cols;
                pad = widths[col] - text_width(s);
                if (t->right[col])
                        printf("%*s%s", (int)pad, "", s);
                else
                        printf("%s%*s", s, last ? 0 : (int)pad, "");
                fputs(last ? "\n" : "  ", stdout);
        }
        return 0;
}

static void table_free(Table *t) {
        size_t i;

        for (i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        t->cells = NULL;
        t->n_cells = t->cap = 0;
}

/* A cell for a scalar member @key of @obj: strings and numbers as they
 * are, booleans as yes/no, anything else (or nothing) as "-". */
static void table_add_member(Table *t, const Json *obj, const char *key) {
        const Json *v = json_get(obj, key);

        if (v && (v->type == JSON_STRING || v->type == JSON_NUMBER))
                table_add(t, v->text);
        else if (v && (v->type == JSON_TRUE || v->type == JSON_FALSE))
                table_add(t, v->type == JSON_TRUE ? "yes" : "no");
        else
                table_add(t, "-");
}

/* "512 B", "3.4 KiB", "12.0 MiB". */
static void format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double)bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, size, "%" PRIu64 " B", bytes);
                return;
        }
        v /= 1024;
        while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

/* The rows of a "per_client" or "clients" array. */
static int print_clients_table(const Json *clients) {
        static const char *const headers[] = { "ID",   "NAME",  "PID", "UID", "USER",   "CMD",
                                               "SUBS", "IN",    "OUT", "DROPS", "ERRORS",
                                               "QUEUED" };
        static const bool right[] = { true, false, true, true,  false, false,
                                      true, true,  true, true,  true,  false };
        Table t = { .n_cols = 12, .headers = headers, .right = right };
        size_t i;
        int r;

        for (i = 0; i < clients->n; i++) {
                const Json *cl = &clients->items[i];
                uint64_t msgs = 0, bytes = 0, fds = 0;
                char size[32];

                table_add_member(&t, cl, "id");
                table_add_member(&t, cl, "name");
                table_add_member(&t, cl, "pid");
                table_add_member(&t, cl, "uid");
                table_add_member(&t, cl, "user");
                table_add_member(&t, cl, "command");
                table_add_member(&t, cl, "subscriptions");
                table_add_member(&t, cl, "messages_in");
                table_add_member(&t, cl, "messages_out");
                table_add_member(&t, cl, "drops");
                table_add_member(&t, cl, "errors");
                (void)json_u64(json_get(cl, "queued_messages"), &msgs);
                (void)json_u64(json_get(cl, "queued_bytes"), &bytes);
                (void)json_u64(json_get(cl, "queued_fds"), &fds);
                format_bytes(size, sizeof(size), bytes);
                if (msgs == 0 && bytes == 0 && fds == 0)
                        table_add(&t, "0");
                else if (fds == 0)
                        table_addf(&t, "%" PRIu64 " msgs, %s", msgs, size);
                else
                        table_addf(&t, "%" PRIu64 " msgs, %s, %" PRIu64 " fds", msgs, size, fds);
        }
        r = table_print(&t);
        table_free(&t);
        return r;
}

/* The rows of a "per_topic" or "topics" array. */
static int print_topics_table(const Json *topics) {
        static const char *const headers[] = { "TOPIC", "PUBLISHED", "SEQ", "DROPPED",
                                               "RETAINED" };
        static const bool right[] = { false, true, true, true, false };
        Table t = { .n_cols = 5, .headers = headers, .right = right };
        size_t i;
        int r;

        for (i = 0; i < topics->n; i++) {
                const Json *tp = &topics->items[i];

                table_add_member(&t, tp, "topic");
                table_add_member(&t, tp, "published");
                table_add_member(&t, tp, "seq");
                table_add_member(&t, tp, "dropped");
                table_add_member(&t, tp, "retained");
        }
        r = table_print(&t);
        table_free(&t);
        return r;
}

static int print_subscriptions_table(const Json *subs) {
        static const char *const headers[] = { "CLIENT", "ID",    "FILTER",   "GROUP",
                                               "TYPES",  "REACH", "DELIVERED" };
        static const bool right[] = { true, true, false, false, false, false, true };
        Table t = { .n_cols = 7, .headers = headers, .right = right };
        size_t i, k;
        int r;

        for (i = 0; i < subs->n; i++) {
                const Json *s = &subs->items[i], *types = json_get_array(s, "types");
                char buf[256];
                size_t len = 0;

                table_add_member(&t, s, "client");
                table_add_member(&t, s, "id");
                table_add_member(&t, s, "filter");
                table_add_member(&t, s, "group");
                /* "7,9", or "all" when it selects no types. */
                buf[0] = 0;
                for (k = 0; types && k < types->n && len < sizeof(buf) - 1; k++) {
                        const Json *ty = &types->items[k];
                        int n = snprintf(buf + len, sizeof(buf) - len, "%s%s", k ? "," : "",
                                         ty->type == JSON_NUMBER ? ty->text : "?");
                        if (n < 0 || (size_t)n >= sizeof(buf) - len) {
                                /* Too many to show: the last ones go. */
                                memcpy(buf + sizeof(buf) - 4, "...", 4);
                                break;
                        }
                        len += (size_t)n;
                }
                table_add(&t, types && types->n > 0 ? buf : "all");
                table_add_member(&t, s, "reach");
                table_add_member(&t, s, "delivered");
        }
        r = table_print(&t);
        table_free(&t);
        return r;
}

static int print_groups_table(const Json *groups) {
        static const char *const headers[] = { "GROUP", "MEMBERS" };
        static const bool right[] = { false, true };
        Table t = { .n_cols = 2, .headers = headers, .right = right };
        size_t i;
        int r;

        for (i = 0; i < groups->n; i++) {
                table_add_member(&t, &groups->items[i], "name");
                table_add_member(&t, &groups->items[i], "members");
        }
        r = table_print(&t);
        table_free(&t);
        return r;
}

/* ---- admin commands ---- */

/*
 * Connects, runs admin command @command with @arg (may be NULL) and hands
 * the broker's answer to @ret_json (malloc()ed, NUL-terminated) and
 * @ret_len. @name is the ipcctl command, for messages. Returns 0 or an
 * exit code, after saying why on standard error: for a refusal the
 * broker's own words.
 */
static int admin_call(const char *name, const char *command, const char *arg, char **ret_json,
                      size_t *ret_len) {
        ipcd_client *c = NULL;
        int r, ret;

        ret = connect_broker(&c);
        if (ret != 0)
                return ret;
        r = ipcd_client_admin_full(c, command, arg, ret_json, ret_len);
        if (r == -EINVAL || r == -EACCES) {
                /* The broker's reason says it all ("permission denied: ...",
                 * "no client with id 7", "file:line:column: ..."). */
                log_error("%s: %s", name, ipcd_client_last_error(c));
                ret = EXIT_BROKER;
        } else if (r < 0)
                ret = report(c, r, name);
        ipcd_client_unref(c);
        return ret;
}

/* Parses the answer @json of @name into @ret. Returns 0 or an exit code
 * (the answer is then shown on standard error). */
static int admin_parse(const char *name, const char *json, size_t len, Json *ret) {
        int r = json_parse(json, len, ret);

        if (r >= 0 && ret->type != JSON_OBJECT) {
                json_deinit(ret);
                r = -EINVAL;
        }
        if (r < 0) {
                log_error("%s: cannot read the broker's answer (%s); here it is:", name,
                          r == -ENOMEM ? strerror(ENOMEM) : "not the JSON object expected");
                fwrite(json, 1, len, stderr);
                fputc('\n', stderr);
                return EXIT_BROKER;
        }
        return 0;
}

/* Prints @json as it came, on one line. */
static void print_json_answer(const char *json, size_t len) {
        fwrite(json, 1, len, stdout);
        if (len == 0 || json[len - 1] != '\n')
                fputc('\n', stdout);
}

/* The options of a command that takes only --json and --help. Returns -1
 * to go on, else an exit code. */
static int parse_json_options(const char *name, int argc, char **argv, void (*help)(void),
                              bool *ret_json) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int o;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'j':
                        if (!ret_json)
                                return usage_error(name, "unknown option '--json'");
                        *ret_json = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return option_error(name, o, argv);
                }
        }
        return -1;
}

/* ---- status ---- */

static void help_status(void) {
        printf("Usage: ipcctl [OPTIONS] status [--json]\n"
               "\n"
               "Show the broker's state and counters (version, pid, uptime, socket,\n"
               "configuration, clients, topics, subscriptions, messages and bytes in and out,\n"
               "drops, errors, file descriptors and queues), then a table of the clients:\n"
               "  ID NAME PID UID USER CMD SUBS IN OUT DROPS ERRORS QUEUED\n"
               "(IN and OUT count messages; QUEUED is what waits in the client's output queue)\n"
               "and a table of the topics:\n"
               "  TOPIC PUBLISHED SEQ DROPPED RETAINED\n"
               "Each table shows at most 1000 rows; 'ipcctl clients' and 'ipcctl topics'\n"
               "show them all.\n"
               "\n"
               "  --json     print the broker's JSON object as it is\n"
               "  -h --help  show this help\n");
}

/* Writes scalar @v as the key table shows it. */
static void print_scalar(const Json *v) {
        switch (v->type) {
        case JSON_STRING:
        case JSON_NUMBER:
                print_text_escaped(stdout, v->text, strlen(v->text));
                break;
        case JSON_TRUE:
                fputs("true", stdout);
                break;
        case JSON_FALSE:
                fputs("false", stdout);
                break;
        case JSON_NULL:
                fputs("null", stdout);
                break;
        default:
                fputs("...", stdout);
                break;
        }
}

/* Whether the key table shows member @v: scalars, and arrays of scalars
 * (as a list). Tables (arrays of objects) and objects come after, or not
 * at all; so do the notes on the tables. */
static bool status_key_shown(const Json *v) {
        size_t i;

        if (strcmp(v->key, "per_client_truncated") == 0 ||
            strcmp(v->key, "per_topic_truncated") == 0)
                return false;
        if (v->type == JSON_OBJECT)
                return false;
        if (v->type == JSON_ARRAY) {
                for (i = 0; i < v->n; i++)
                        if (v->items[i].type == JSON_ARRAY || v->items[i].type == JSON_OBJECT)
                                return false;
                return v->n > 0;
        }
        return true;
}

/* One "key: value" line per counter of the status object, with times
 * also in a form for people. */
static void print_status_keys(const Json *st) {
        size_t i, k, width = 0;

        for (i = 0; i < st->n; i++)
                if (status_key_shown(&st->items[i]) && strlen(st->items[i].key) > width)
                        width = strlen(st->items[i].key);
        for (i = 0; i < st->n; i++) {
                const Json *v = &st->items[i];
                const char *key = v->key;
                uint64_t u;

                if (!status_key_shown(v))
                        continue;
                printf("%s:%*s ", key, (int)(width - strlen(key)), "");
                if (v->type == JSON_ARRAY)
                        for (k = 0; k < v->n; k++) {
                                if (k > 0)
                                        fputs(", ", stdout);
                                print_scalar(&v->items[k]);
                        }
                else
                        print_scalar(v);
                if (strcmp(key, "uptime_sec") == 0 && json_u64(v, &u) && u >= 60)
                        printf(" (%" PRIu64 "d %02uh %02um %02us)", u / 86400,
                               (unsigned)(u / 3600 % 24), (unsigned)(u / 60 % 60),
                               (unsigned)(u % 60));
                if (strcmp(key, "config_loaded") == 0 && json_u64(v, &u) && u > 0 &&
                    u <= (uint64_t)INT32_MAX * 4) {
                        time_t t = (time_t)u;
                        struct tm tm;
                        char when[64];

                        if (localtime_r(&t, &tm) &&
                            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm) > 0)
                                printf(" (%s)", when);
                }
                fputc('\n', stdout);
        }
}

static int cmd_status(int argc, char **argv) {
        const Json *clients, *topics;
        char *reply = NULL;
        bool json = false;
        size_t len = 0;
        Json st;
        int ret, r = 0;

        ret = parse_json_options("status", argc, argv, help_status, &json);
        if (ret >= 0)
                return ret;
        if (optind < argc)
                return usage_error("status", "unexpected argument '%s'", argv[optind]);

        ret = admin_call("status", "status", NULL, &reply, &len);
        if (ret != 0)
                return ret;
        if (json) {
                print_json_answer(reply, len);
                free(reply);
                return 0;
        }
        ret = admin_parse("status", reply, len, &st);
        if (ret != 0) {
                free(reply);
                return ret;
        }
        print_status_keys(&st);
        clients = json_get_array(&st, "per_client");
        if (clients) {
                fputc('\n', stdout);
                r = print_clients_table(clients);
                if (json_is_true(json_get(&st, "per_client_truncated")))
                        printf("(the first %zu clients; 'ipcctl clients' shows all)\n", clients->n);
        }
        topics = json_get_array(&st, "per_topic");
        if (topics && r >= 0) {
                fputc('\n', stdout);
                if (topics->n == 0)
                        printf("No topics yet.\n");
                else
                        r = print_topics_table(topics);
                if (json_is_true(json_get(&st, "per_topic_truncated")))
                        printf("(the first %zu topics; 'ipcctl topics' shows all)\n", topics->n);
        }
        json_deinit(&st);
        free(reply);
        if (r < 0) {
                log_error("status: %s", strerror(-r));
                return EXIT_BROKER;
        }
        return 0;
}

/* ---- clients ---- */

static void help_clients(void) {
        printf("Usage: ipcctl [OPTIONS] clients [--json]\n"
               "\n"
               "List every client connected to the broker, one row each:\n"
               "  ID NAME PID UID USER CMD SUBS IN OUT DROPS ERRORS QUEUED\n"
               "NAME is the name the client gave, CMD its process's command name, SUBS its\n"
               "subscriptions, IN and OUT the messages it published and received, DROPS the\n"
               "messages dropped because its queue was full, ERRORS the errors the broker\n"
               "sent it, QUEUED what waits in its output queue. An admin command.\n"
               "\n"
               "  --json     print the broker's JSON object as it is:\n"
               "             {\"clients\":[{\"id\":..., \"name\":..., ...}, ...]}\n"
               "  -h --help  show this help\n");
}

static int cmd_clients(int argc, char **argv) {
        const Json *clients = NULL;
        char *reply = NULL;
        bool json = false;
        size_t len = 0;
        Json doc;
        int ret, r;

        ret = parse_json_options("clients", argc, argv, help_clients, &json);
        if (ret >= 0)
                return ret;
        if (optind < argc)
                return usage_error("clients", "unexpected argument '%s'", argv[optind]);

        ret = admin_call("clients", "clients", NULL, &reply, &len);
        if (ret != 0)
                return ret;
        if (json) {
                print_json_answer(reply, len);
                free(reply);
                return 0;
        }
        ret = admin_parse("clients", reply, len, &doc);
        if (ret == 0 && !(clients = json_get_array(&doc, "clients"))) {
                log_error("clients: the broker's answer has no \"clients\" list");
                json_deinit(&doc);
                ret = EXIT_BROKER;
        }
        if (ret != 0) {
                free(reply);
                return ret;
        }
        r = print_clients_table(clients);
        json_deinit(&doc);
        free(reply);
        if (r < 0) {
                log_error("clients: %s", strerror(-r));
                return EXIT_BROKER;
        }
        return 0;
}

/* ---- topics ---- */

static void help_topics(void) {
        printf("Usage: ipcctl [OPTIONS] topics [FILTER] [--json]\n"
               "\n"
               "Show the topics that match FILTER (default '#': all but the '$' ones),\n"
               "the subscriptions whose filters can match any of them, and the queue\n"
               "groups, as three tables:\n"
               "  TOPIC PUBLISHED SEQ DROPPED RETAINED\n"
               "  CLIENT ID FILTER GROUP TYPES REACH DELIVERED\n"
               "  GROUP MEMBERS\n"
               "TYPES is the message types a subscription selects (all: every type); REACH\n"
               "says whether the access rules let it receive all, part or none of what its\n"
               "filter matches; DELIVERED counts what it received. An admin command.\n"
               "\n"
               "  --json     print the broker's JSON object as it is:\n"
               "             {\"topics\":[...], \"subscriptions\":[...], \"groups\":[...]}\n"
               "  -h --help  show this help\n");
}

static int cmd_topics(int argc, char **argv) {
        const Json *topics, *subs, *groups;
        const char *filter = NULL;
        char *reply = NULL;
        bool json = false;
        size_t len = 0;
        Json doc;
        int ret, r = 0;

        ret = parse_json_options("topics", argc, argv, help_topics, &json);
        if (ret >= 0)
                return ret;
        if (optind < argc)
                filter = argv[optind++];
        if (optind < argc)
                return usage_error("topics", "unexpected argument '%s'", argv[optind]);
        if (filter && !*filter)
                return usage_error("topics", "empty FILTER");

        ret = admin_call("topics", "topics", filter, &reply, &len);
        if (ret != 0)
                return ret;
        if (json) {
                print_json_answer(reply, len);
                free(reply);
                return 0;
        }
        ret = admin_parse("topics", reply, len, &doc);
        if (ret != 0) {
                free(reply);
                return ret;
        }
        topics = json_get_array(&doc, "topics");
        subs = json_get_array(&doc, "subscriptions");
        groups = json_get_array(&doc, "groups");
        if (!topics || topics->n == 0)
                printf("No topics match '%s'.\n", filter ? filter : "#");
        else
                r = print_topics_table(topics);
        fputc('\n', stdout);
        if (r >= 0 && (!subs || subs->n == 0))
                printf("No subscriptions.\n");
        else if (r >= 0)
                r = print_subscriptions_table(subs);
        fputc('\n', stdout);
        if (r >= 0 && (!groups || groups->n == 0))
                printf("No queue groups.\n");
        else if (r >= 0)
                r = print_groups_table(groups);
        json_deinit(&doc);
        free(reply);
        if (r < 0) {
                log_error("topics: %s", strerror(-r));
                return EXIT_BROKER;
        }
        return 0;
}

/* ---- kick ---- */

static void help_kick(void) {
        printf("Usage: ipcctl [OPTIONS] kick CLIENT_ID\n"
               "\n"
               "Disconnect the client with id CLIENT_ID (the ID column of 'ipcctl clients').\n"
               "It receives a final 'kicked' error. An admin command; an unknown id is an\n"
               "error (exit code 1).\n"
               "\n"
               "  -h --help  show this help\n");
}

static int cmd_kick(int argc, char **argv) {
        char *reply = NULL, arg[16];
        uint32_t id;
        size_t len = 0;
        int ret;

        ret = parse_json_options("kick", argc, argv, help_kick, NULL);
        if (ret >= 0)
                return ret;
        if (optind >= argc)
                return usage_error("kick", "missing CLIENT_ID");
        if (parse_u32(argv[optind], &id) < 0 || id == 0)
                return usage_error("kick", "invalid CLIENT_ID '%s'", argv[optind]);
        if (optind + 1 < argc)
                return usage_error("kick", "unexpected argument '%s'", argv[optind + 1]);

        snprintf(arg, sizeof(arg), "%" PRIu32, id);
        ret = admin_call("kick", "kick", arg, &reply, &len);
        if (ret != 0)
                return ret;
        printf("kicked client %" PRIu32 "\n", id);
        free(reply);
        return 0;
}

/* ---- reload ---- */

static void help_reload(void) {
        printf("Usage: ipcctl [OPTIONS] reload\n"
               "\n"
               "Make the broker re-read its configuration file and apply it, without\n"
               "dropping clients (like SIGHUP). When the file is invalid the broker keeps\n"
               "the configuration it runs, and ipcctl prints why (file:line:column) and\n"
               "exits with code 1. An admin command.\n"
               "\n"
               "  -h --help  show this help\n");
}

static int cmd_reload(int argc, char **argv) {
        char *reply = NULL;
        size_t len = 0;
        int ret;

        ret = parse_json_options("reload", argc, argv, help_reload, NULL);
        if (ret >= 0)
                return ret;
        if (optind < argc)
                return usage_error("reload", "unexpected argument '%s'", argv[optind]);

        ret = admin_call("reload", "reload", NULL, &reply, &len);
        if (ret != 0)
                return ret;
        printf("configuration reloaded\n");
        free(reply);
        return 0;
}

/* ---- main ---- */

/* ---- req ---- */

static void help_req(void) {
        printf("Usage: ipcctl [OPTIONS] req TOPIC [DATA | -] [--type N] [--timeout SECONDS]\n"
               "                    [--json]\n"
               "\n"
               "Send a request to the service TOPIC (with DATA, or standard input for '-',\n"
               "or an empty payload) and print its reply's payload on standard output, as\n"
               "raw bytes.\n"
               "\n"
               "  --type N           the request's message type (default 0)\n"
               "  --timeout SECONDS  the deadline for the reply (default: the broker's,\n"
               "                     5 s unless configured); exit code 4 when it passes\n"
               "  --json             print the reply as one JSON object, as sub --json\n"
               "  -h --help          show this help\n"
               "\n"
               "Exit codes: 0 replied, 1 no responders, responder gone or another refusal,\n"
               "4 timed out.\n");
}

static int cmd_req(int argc, char **argv) {
        static const struct option options[] = {
                { "type", required_argument, NULL, 'T' },
                { "timeout", required_argument, NULL, 'w' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *topic, *data_arg = NULL;
        char *data = NULL;
        size_t size = 0;
        uint32_t type = 0;
        int timeout_ms = 0, o, r, ret;
        bool json = false;
        ipcd_client *c = NULL;
        ipcd_msg *reply = NULL;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'T':
                        if (parse_u32(optarg, &type) < 0)
                                return usage_error("req", "invalid --type '%s'", optarg);
                        break;
                case 'w':
                        if (parse_seconds(optarg, &timeout_ms) < 0)
                                return usage_error("req", "invalid --timeout '%s'", optarg);
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        help_req();
                        return 0;
                default:
                        return option_error("req", o, argv);
                }
        }
        if (optind >= argc)
                return usage_error("req", "missing TOPIC");
        topic = argv[optind++];
        if (optind < argc)
                data_arg = argv[optind++];
        if (optind < argc)
                return usage_error("req", "unexpected argument '%s'", argv[optind]);

        if (data_arg && strcmp(data_arg, "-") == 0) {
                r = read_all(STDIN_FILENO, STDIN_MAX, &data, &size);
                if (r < 0) {
                        log_error("req: cannot read standard input: %s", strerror(-r));
                        return EXIT_BROKER;
                }
        } else if (data_arg)
                size = strlen(data_arg);

        ret = connect_broker(&c);
        if (ret != 0)
                goto out;
        r = ipcd_client_request_sync(c, topic, type, data ? data : data_arg, size, timeout_ms,
                                     &reply);
        switch (r) {
        case 0:
                break;
        case -EHOSTUNREACH:
                log_error("req: no responders for '%s'", topic);
                ret = EXIT_BROKER;
                goto out;
        case -ETIMEDOUT:
                log_error("req: timed out waiting for a reply from '%s'", topic);
                ret = EXIT_TIMEOUT;
                goto out;
        case -ECONNABORTED:
                log_error("req: the responder for '%s' went away (responder gone)", topic);
                ret = EXIT_BROKER;
                goto out;
        default:
                ret = report(c, r, "req: the request failed");
                goto out;
        }
        if (json)
                print_message_json(reply, NULL);
        else {
                size_t len;
                const char *p = ipcd_msg_get_data(reply, &len);

                if (len > 0 && fwrite(p, 1, len, stdout) != len) {
                        log_error("req: cannot write the reply: %s", strerror(errno));
                        ret = EXIT_BROKER;
                        goto out;
                }
        }
        if (fflush(stdout) != 0) {
                log_error("req: cannot write the reply: %s", strerror(errno));
                ret = EXIT_BROKER;
        }
out:
        ipcd_msg_unref(reply);
        ipcd_client_unref(c);
        free(data);
        return ret;
}

/* ---- serve ---- */

typedef struct ServeState {
        const char *cmd;
        sigset_t child_mask; /* the signal mask the command starts with */
        uint64_t served;
        int failed; /* an exit code: stop */
} ServeState;

/*
 * Runs @cmd with /bin/sh -c, @in (@in_len bytes) on its standard input,
 * and collects its standard output into *ret_out (malloc()ed, the caller
 * frees it). Returns its wait status, or a negative errno.
 */
static int run_exec(ServeState *st, ipcd_msg *m, const char *in, size_t in_len, char **ret_out,
                    size_t *ret_len) {
        int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, status, r = 0;
        size_t done = 0, len = 0, cap = 0;
        char *out = NULL;
        pid_t pid;

        if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                goto fail;
        }
        if (pid == 0) {
                char num[32];

                sigprocmask(SIG_SETMASK, &st->child_mask, NULL);
                signal(SIGPIPE, SIG_DFL);
                if (dup2(inp[0], STDIN_FILENO) < 0 || dup2(outp[1], STDOUT_FILENO) < 0)
                        _exit(127);
                setenv("IPCD_TOPIC", ipcd_msg_get_topic(m), 1);
                snprintf(num, sizeof(num), "%" PRIu32, ipcd_msg_get_type(m));
                setenv("IPCD_TYPE", num, 1);
                snprintf(num, sizeof(num), "%ld", (long)ipcd_msg_get_sender_pid(m));
                setenv("IPCD_SENDER_PID", num, 1);
                snprintf(num, sizeof(num), "%lu", (unsigned long)ipcd_msg_get_sender_uid(m));
                setenv("IPCD_SENDER_UID", num, 1);
                execl("/bin/sh", "sh", "-c", st->cmd, (char *)NULL);
                _exit(127);
        }
        close(inp[0]);
        close(outp[1]);
        inp[0] = outp[1] = -1;
        (void)fcntl(inp[1], F_SETFL, O_NONBLOCK);
        if (in_len == 0)
                inp[1] = (close(inp[1]), -1);
        /* Feed and drain at once: a command may write before reading all. */
        while (outp[0] >= 0) {
                struct pollfd pfd[2] = { { .fd = outp[0], .events = POLLIN },
                                         { .fd = inp[1], .events = POLLOUT } };
                ssize_t n;

                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (inp[1] >= 0 && pfd[1].revents) {
                        n = write(inp[1], in + done, in_len - done);
                        if (n > 0)
                                done += (size_t)n;
                        if ((n < 0 && errno != EAGAIN && errno != EINTR) || done == in_len)
                                inp[1] = (close(inp[1]), -1); /* EPIPE: it read no more */
                }
                if (pfd[0].revents) {
                        if (cap - len < 65536) {
                                char *b;
                                if (cap > STDIN_MAX) {
                                        r = -EMSGSIZE;
                                        break;
                                }
                                cap = cap ? cap * 2 : 65536;
                                b = realloc(out, cap);
                                if (!b) {
                                        r = -ENOMEM;
                                        break;
                                }
                                out = b;
                        }
                        n = read(outp[0], out + len, cap - len);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0)
                                outp[0] = (close(outp[0]), -1);
                        else
                                len += (size_t)n;
                }
        }
        if (inp[1] >= 0)
                close(inp[1]);
        if (outp[0] >= 0)
                close(outp[0]);
        inp[1] = outp[0] = -1;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        status = 0;
                        break;
                }
        if (r < 0)
                goto fail;
        *ret_out = out;
        *ret_len = len;
        return status;
fail:
        free(out);
        if (inp[0] >= 0)
                close(inp[0]);
        if (inp[1] >= 0)
                close(inp[1]);
        if (outp[0] >= 0)
                close(outp[0]);
        if (outp[1] >= 0)
                close(outp[1]);
        return r;
}

static void on_serve_request(ipcd_client *c, ipcd_msg *m, void *userdata) {
        ServeState *st = userdata;
        const char *in;
        char *out = NULL;
        size_t in_len, out_len = 0;
        int status, r;

        (void)c;
        if (st->failed)
                return; /* stopping: the requester times out */
        in = ipcd_msg_get_data(m, &in_len);
        status = run_exec(st, m, in, in_len, &out, &out_len);
        if (status < 0) {
                log_error("serve: cannot run the command for a request on '%s': %s",
                          ipcd_msg_get_topic(m), strerror(-status));
                /* The requester still hears something: an empty reply. */
                out_len = 0;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (WIFEXITED(status))
                        log_error("serve: warning: the command exited with status %d; "
                                  "replying with its output",
                                  WEXITSTATUS(status));
                else
                        log_error("serve: warning: the command died of signal %d; replying "
                                  "with its output",
                                  WTERMSIG(status));
        }
        r = ipcd_msg_reply(m, ipcd_msg_get_type(m), out, out_len, NULL, 0);
        if (r < 0) {
                log_error("serve: cannot reply: %s", strerror(-r));
                if (r != -EMSGSIZE && r != -ENOMEM)
                        st->failed = EXIT_BROKER;
        }
        free(out);
        st->served++;
}

static void help_serve(void) {
        printf("Usage: ipcctl [OPTIONS] serve FILTER --exec COMMAND [--type N]...\n"
               "\n"
               "Serve requests sent to topics FILTER matches: for each, run COMMAND with\n"
               "/bin/sh -c, the request's payload on its standard input, and reply with\n"
               "what it writes to standard output (with the request's type). One request\n"
               "at a time. COMMAND also finds IPCD_TOPIC, IPCD_TYPE, IPCD_SENDER_PID and\n"
               "IPCD_SENDER_UID in its environment. When it exits with a non-zero status,\n"
               "the reply goes anyway (with its output) and a warning is printed.\n"
               "\n"
               "  --exec COMMAND     the command to run (required)\n"
               "  --type N           serve only this request type (repeatable, at most 64)\n"
               "  -h --help          show this help\n"
               "\n"
               "SIGINT and SIGTERM end it with exit code 0 (after the running command).\n");
}

/* Processes @c until a signal arrives on @sfd (exit code 0), the
 * connection is lost, or *@failed is set. */
static int run_loop(ipcd_client *c, int sfd, const int *failed, const char *what) {
        for (;;) {
                struct pollfd pfd[2];
                int r = ipcd_client_process(c);

                if (r < 0)
                        return report(c, r, what);
                if (*failed)
                        return *failed;
                if (r > 0)
                        continue;
                pfd[0] = (struct pollfd){ .fd = ipcd_client_get_fd(c),
                                          .events = (short)ipcd_client_get_events(c) };
                pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                if (poll(pfd, 2, -1) < 0 && errno != EINTR)
                        return EXIT_BROKER;
                if (pfd[1].revents)
                        return 0;
        }
}

/* Blocks SIGINT and SIGTERM and returns a signalfd for them (old mask in
 * @old_mask), or -1 after an error message. */
static int signals_setup(const char *cmd, sigset_t *old_mask) {
        sigset_t mask;
        int sfd;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, old_mask) < 0 ||
            (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
                log_error("%s: cannot set up signal handling: %s", cmd, strerror(errno));
                return -1;
        }
        return sfd;
}

static int cmd_serve(int argc, char **argv) {
        static const struct option options[] = {
                { "exec", required_argument, NULL, 'e' },
                { "type", required_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint32_t types[MAX_TYPES];
        ServeState st = { 0 };
        const char *filter;
        ipcd_client *c = NULL;
        size_t n_types = 0;
        int o, r, ret, sfd;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'e':
                        st.cmd = optarg;
                        break;
                case 'T':
                        if (n_types == MAX_TYPES)
                                return usage_error("serve", "at most %d --type options", MAX_TYPES);
                        if (parse_u32(optarg, &types[n_types]) < 0)
                                return usage_error("serve", "invalid --type '%s'", optarg);
                        n_types++;
                        break;
                case 'h':
                        help_serve();
                        return 0;
                default:
                        return option_error("serve", o, argv);
                }
        }
        if (optind >= argc)
                return usage_error("serve", "missing FILTER");
        filter = argv[optind++];
        if (optind < argc)
                return usage_error("serve", "unexpected argument '%s'", argv[optind]);
        if (!st.cmd)
                return usage_error("serve", "missing --exec COMMAND");

        sfd = signals_setup("serve", &st.child_mask);
        if (sfd < 0)
                return EXIT_BROKER;
        /* A command that does not read its input must not kill us. */
        signal(SIGPIPE, SIG_IGN);
        ret = connect_broker(&c);
        if (ret != 0)
                goto out;
        r = ipcd_client_serve(c, filter, n_types ? types : NULL, n_types, on_serve_request, &st,
                              NULL);
        if (r < 0) {
                ret = report(c, r, "serve: cannot serve");
                goto out;
        }
        ret = run_loop(c, sfd, &st.failed, "serve: connection to the broker lost");
out:
        ipcd_client_unref(c);
        close(sfd);
        return ret;
}

/* ---- monitor ---- */

typedef struct MonitorState {
        const char *filter;
        bool json;
        int failed;
} MonitorState;

/* Whether topic @t matches filter @f ('+' one level, '#' the rest). */
static bool topic_matches(const char *f, const char *t) {
        for (;;) {
                size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");

                if (fl == 1 && f[0] == '#')
                        return true;
                if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
                        return false;
                f += fl;
                t += tl;
                if (!*f && !*t)
                        return true;
                if (!*f || !*t) {
                        /* "a/#" also matches "a" */
                        return !*t && strcmp(f, "/#") == 0;
                }
                f++;
                t++;
        }
}

static void on_monitor_event(ipcd_client *c, ipcd_msg *m, void *userdata) {
        MonitorState *st = userdata;
        const Json *sender, *rcpt, *payload;
        const char *kind, *topic;
        uint64_t type = 0, client = 0, pid = 0, uid = 0, size = 0, id;
        size_t len, i;
        const char *data = ipcd_msg_get_data(m, &len);
        char *text;
        Json ev;

        (void)c;
        /* json_parse() wants a NUL after the text. */
        text = malloc(len + 1);
        if (!text) {
                log_error("monitor: out of memory");
                st->failed = EXIT_BROKER;
                return;
        }
        memcpy(text, data, len);
        text[len] = 0;
        if (json_parse(text, len, &ev) < 0) {
                log_error("monitor: the broker sent an event that is not JSON, ignoring");
                free(text);
                return;
        }
        kind = json_get_string(&ev, "kind");
        topic = json_get_string(&ev, "topic");
        if (!kind || !topic || !topic_matches(st->filter, topic))
                goto done;
        if (st->json) {
                fwrite(text, 1, len, stdout);
                fputc('\n', stdout);
                goto done;
        }
        (void)json_u64(json_get(&ev, "type"), &type);
        (void)json_u64(json_get(&ev, "size"), &size);
        sender = json_get(&ev, "sender");
        (void)json_u64(json_get(sender, "client"), &client);
        (void)json_u64(json_get(sender, "uid"), &uid);
        /* pid is signed in the event; a negative one stays 0 here. */
        (void)json_u64(json_get(sender, "pid"), &pid);
        printf("%s ", kind);
        print_text_escaped(stdout, topic, strlen(topic));
        printf(" type=%" PRIu64 " from client %" PRIu64 " (pid %" PRIu64 ", uid %" PRIu64 ") -> [",
               type, client, pid, uid);
        rcpt = json_get_array(&ev, "recipients");
        for (i = 0; rcpt && i < rcpt->n; i++)
                if (json_u64(&rcpt->items[i], &id))
                        printf("%s%" PRIu64, i ? "," : "", id);
        printf("] %" PRIu64 " bytes", size);
        payload = json_get(&ev, "payload");
        if (payload && payload->type == JSON_STRING) {
                fputs(" \"", stdout);
                print_text_escaped(stdout, payload->text, strlen(payload->text));
                fputc('"', stdout);
        }
        fputc('\n', stdout);
done:
        fflush(stdout);
        json_deinit(&ev);
        free(text);
}

static void help_monitor(void) {
        printf("Usage: ipcctl [OPTIONS] monitor [FILTER] [--json]\n"
               "\n"
               "Show every message the broker routes (publishes, requests and replies) whose\n"
               "topic FILTER matches (default '#'), one line each:\n"
               "  KIND TOPIC type=N from client ID (pid N, uid N) -> [RECIPIENTS] N bytes \"TEXT\"\n"
               "KIND is publish, request or reply; RECIPIENTS the ids of the clients it went\n"
               "to; TEXT the start of a text payload. Admin only: the broker refuses others.\n"
               "\n"
               "  --json             print each event as the broker's JSON object: kind,\n"
               "                     topic, type, sender {client, pid, uid}, seq, size,\n"
               "                     transport, fds, recipients, and payload (when text)\n"
               "  -h --help          show this help\n"
               "\n"
               "SIGINT and SIGTERM end it with exit code 0.\n");
}

static int cmd_monitor(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        MonitorState st = { .filter = "#" };
        ipcd_client *c = NULL;
        sigset_t old_mask;
        int o, r, ret, sfd;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'j':
                        st.json = true;
                        break;
                case 'h':
                        help_monitor();
                        return 0;
                default:
                        return option_error("monitor", o, argv);
                }
        }
        if (optind < argc)
                st.filter = argv[optind++];
        if (optind < argc)
                return usage_error("monitor", "unexpected argument '%s'", argv[optind]);
        if (!*st.filter)
                return usage_error("monitor", "empty FILTER");

        sfd = signals_setup("monitor", &old_mask);
        if (sfd < 0)
                return EXIT_BROKER;
        setvbuf(stdout, NULL, _IOLBF, 0);
        ret = connect_broker(&c);
        if (ret != 0)
                goto out;
        r = ipcd_client_subscribe_full(c, "$SYS/monitor/#", NULL, 0, NULL,
                                       IPCD_SUBSCRIBE_NO_RETAINED, on_monitor_event, &st, NULL);
        if (r < 0) {
                ret = report(c, r, "monitor: cannot subscribe to the broker's events");
                goto out;
        }
        ret = run_loop(c, sfd, &st.failed, "monitor: connection to the broker lost");
out:
        ipcd_client_unref(c);
        close(sfd);
        return ret;
}

typedef struct Command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
} Command;

static const Command commands[] = {
        { "pub", cmd_pub, "publish a message" },
        { "sub", cmd_sub, "subscribe and print messages" },
        { "req", cmd_req, "send a request to a service and print the reply" },
        { "serve", cmd_serve, "answer requests with a command's output" },
        { "monitor", cmd_monitor, "show every message the broker routes (admin)" },
        { "status", cmd_status, "show the broker's state, counters, clients and topics" },
        { "clients", cmd_clients, "list the connected clients (admin)" },
        { "topics", cmd_topics, "show topics, subscriptions and queue groups (admin)" },
        { "kick", cmd_kick, "disconnect a client (admin)" },
        { "reload", cmd_reload, "re-read the broker's configuration (admin)" },
};

static void help(void) {
        size_t i;

        printf("Usage: ipcctl [OPTIONS] COMMAND [ARGS...]\n"
               "\n"
               "Talk to ipcd, the local message broker.\n"
               "\n"
               "Options:\n"
               "  -s --socket PATH     the broker's socket (default: $IPCD_SOCKET, else\n"
               "                       $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or /run/ipcd,\n"
               "                       + /ipcd.sock)\n"
               "  -t --timeout SECONDS how long to wait for each answer of the broker\n"
               "                       (default 5, 0 waits forever)\n"
               "  -r --reconnect       sub, serve, monitor: survive a broker restart\n"
               "                       (connect again, subscribe again)\n"
               "  -h --help            show this help\n"
               "     --version         show the version\n"
               "\n"
               "Commands:\n");
        for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                printf("  %-8s %s\n", commands[i].name, commands[i].summary);
        printf("\n"
               "'ipcctl COMMAND --help' describes a command.\n"
               "Exit codes: 0 success, 1 the broker refused or failed, 2 usage error,\n"
               "3 cannot connect to the broker, 4 timed out.\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "timeout", required_argument, NULL, 't' },
                { "reconnect", no_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        size_t i;
        int o;

        /* '+': stop at the command; its options are its own. */
        while ((o = getopt_long(argc, argv, "+:s:t:rh", options, NULL)) >= 0) {
                switch (o) {
                case 's':
                        if (!*optarg)
                                return usage_error(NULL, "empty socket path");
                        arg_socket = optarg;
                        break;
                case 't':
                        if (parse_seconds(optarg, &arg_timeout_ms) < 0)
                                return usage_error(NULL, "invalid --timeout '%s'", optarg);
                        break;
                case 'r':
                        arg_reconnect = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
#ifdef PACKAGE_VERSION
                        printf("ipcctl %s\n", PACKAGE_VERSION);
#else
                        printf("ipcctl\n");
#endif
                        return 0;
                default:
                        return option_error(NULL, o, argv);
                }
        }
        if (optind >= argc)
                return usage_error(NULL, "missing COMMAND");
        if (strcmp(argv[optind], "help") == 0) {
                help();
                return 0;
        }
        for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(argv[optind], commands[i].name) == 0) {
                        int sub_argc = argc - optind;
                        char **sub_argv = argv + optind;

                        optind = 0; /* restart getopt on the command's arguments */
                        return commands[i].run(sub_argc, sub_argv);
                }
        }
        return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
