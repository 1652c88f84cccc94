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
#include <time.h>
#include <unistd.h>

#include <ipcd/ipcd-client.h>

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
        *ret = c;
        return 0;
}

/* ---- text helpers ---- */

/* Length of the valid UTF-8 character at @s (of @len bytes), or 0. */
static size_t utf8_char(const unsigned char *s, size_t len) {
        uint32_t cp;
        size_t n, i;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        if (len < n)
                return 0;
        for (i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* Text: valid UTF-8 with no control characters but tab, newline and
 * carriage return. */
static bool is_text(const void *data, size_t len) {
        const unsigned char *s = data;
        size_t i = 0;

        while (i < len) {
                size_t n;
                if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f)
                        return false;
                n = utf8_char(s + i, len - i);
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
        printf("Usage: ipcctl [OPTIONS] pub TOPIC [--type N] [--fd PATH]... [DATA | - | --file PATH]\n"
               "\n"
               "Publish one message on TOPIC and wait until the broker has routed it.\n"
               "DATA is the payload; '-' reads it from standard input; without DATA the\n"
               "payload is empty. Payloads over 64 KiB go to the broker as a sealed memfd\n"
               "(receivers map it; nobody copies it on the way).\n"
               "\n"
               "  --type N     user message type (0..4294967295, default 0)\n"
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
                { "help", no_argument, NULL, 'h' },
                {},
        };
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
                case 'h':
                        help_pub();
                        return 0;
                case ':':
                        return usage_error("pub", "option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error("pub", "unknown option '%s'", bad_option(argv));
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
                                              IPCD_PUBLISH_ACK);
        else
                r = ipcd_client_publish_fds(c, topic, type, p.data ? p.data : data_arg, p.size, fds,
                                            n_fds, IPCD_PUBLISH_ACK);
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
                size_t n = utf8_char((const unsigned char *)s + i, len - i);
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
        if (ipcd_msg_get_flags(m) & IPCD_MSG_RETAINED)
                fputs(",\"retained\":true", stdout);
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

static void help_sub(void) {
        printf("Usage: ipcctl [OPTIONS] sub FILTER [--type N]... [--count N] [--timeout SECONDS]\n"
               "                                   [--json] [--save DIR]\n"
               "\n"
               "Subscribe to FILTER ('+' matches one level, '#' the rest) and print one\n"
               "line per message:\n"
               "  TOPIC type=N seq=N pid=N uid=N size=N transport=T [fds=[...]]: PAYLOAD\n"
               "PAYLOAD is the text, or <N bytes binary>. T is inline, or memfd for a\n"
               "payload that came as a sealed memfd. fds lists the file descriptors that\n"
               "came with it, as TYPE or TYPE:PATH (file:/etc/hostname, pipe, socket, ...).\n"
               "\n"
               "  --type N           receive only this message type (repeatable, at most 64)\n"
               "  --count N          exit after N messages\n"
               "  --timeout SECONDS  give up after SECONDS (exit code 4)\n"
               "  --json             one JSON object per line: topic, type, seq, sender_pid,\n"
               "                     sender_uid, sender_gid, size, subscription,\n"
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
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint32_t types[MAX_TYPES], count32;
        SubState st = { .save_dirfd = -1 };
        const char *filter;
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
                case 'h':
                        help_sub();
                        return 0;
                case ':':
                        return usage_error("sub", "option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error("sub", "unknown option '%s'", bad_option(argv));
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
        r = ipcd_client_subscribe(c, filter, n_types ? types : NULL, n_types, on_message, &st,
                                  NULL);
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

/* ---- status ---- */

typedef struct JsonField {
        char *key;
        char *value; /* strings decoded; other values as written */
} JsonField;

static void skip_ws(const char **p) {
        while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
                (*p)++;
}

static int hexval(char ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

static int parse_hex4(const char *p, uint32_t *ret) {
        uint32_t v = 0;
        int i;

        for (i = 0; i < 4; i++) {
                int h = hexval(p[i]);
                if (h < 0)
                        return -EINVAL;
                v = v << 4 | (uint32_t)h;
        }
        *ret = v;
        return 0;
}

/* Appends code point @cp as UTF-8 at @out; returns the bytes written. */
static size_t utf8_put(char *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xc0 | cp >> 6);
                out[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xe0 | cp >> 12);
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

/* Parses the JSON string at *p (at its opening quote) into a malloc()ed
 * NUL-terminated UTF-8 string; advances *p past it. */
static int json_string(const char **p, char **ret) {
        const char *s = *p + 1;
        char *out, *o;

        /* The decoded string is never longer than the encoded one. */
        out = o = malloc(strlen(s) + 1);
        if (!out)
                return -ENOMEM;
        for (;;) {
                char ch = *s++;
                uint32_t cp, lo;

                if (ch == 0 || (unsigned char)ch < 0x20)
                        goto fail;
                if (ch == '"')
                        break;
                if (ch != '\\') {
                        *o++ = ch;
                        continue;
                }
                ch = *s++;
                switch (ch) {
                case '"':
                case '\\':
                case '/':
                        *o++ = ch;
                        break;
                case 'b':
                        *o++ = '\b';
                        break;
                case 'f':
                        *o++ = '\f';
                        break;
                case 'n':
                        *o++ = '\n';
                        break;
                case 'r':
                        *o++ = '\r';
                        break;
                case 't':
                        *o++ = '\t';
                        break;
                case 'u':
                        if (parse_hex4(s, &cp) < 0)
                                goto fail;
                        s += 4;
                        if (cp >= 0xd800 && cp <= 0xdbff) {
                                if (s[0] != '\\' || s[1] != 'u' || parse_hex4(s + 2, &lo) < 0 ||
                                    lo < 0xdc00 || lo > 0xdfff)
                                        goto fail;
                                s += 6;
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        } else if (cp >= 0xdc00 && cp <= 0xdfff)
                                goto fail;
                        if (cp == 0)
                                goto fail; /* would end our C string */
                        o += utf8_put(o, cp);
                        break;
                default:
                        goto fail;
                }
        }
        *o = 0;
        *p = s;
        *ret = out;
        return 0;
fail:
        free(out);
        return -EINVAL;
}

/* Copies the raw text of a non-string value at *p: a scalar up to the next
 * ',' or '}', or a nested object/array up to its matching bracket. */
static int json_raw_value(const char **p, char **ret) {
        const char *s = *p, *start = s;
        int depth = 0;
        char *v;

        for (;; s++) {
                char ch = *s;
                if (ch == 0)
                        return -EINVAL;
                if (ch == '"' && depth > 0) {
                        for (s++; *s && *s != '"'; s++)
                                if (*s == '\\' && s[1])
                                        s++;
                        if (!*s)
                                return -EINVAL;
                        continue;
                }
                if (ch == '{' || ch == '[')
                        depth++;
                else if (ch == '}' || ch == ']') {
                        if (depth == 0)
                                break;
                        if (--depth == 0) {
                                s++;
                                break;
                        }
                } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' ||
                                          ch == '\r'))
                        break;
        }
        if (s == start)
                return -EINVAL;
        v = strndup(start, (size_t)(s - start));
        if (!v)
                return -ENOMEM;
        *p = s;
        *ret = v;
        return 0;
}

static void fields_free(JsonField *f, size_t n) {
        size_t i;

        for (i = 0; i < n; i++) {
                free(f[i].key);
                free(f[i].value);
        }
        free(f);
}

/* Reads a flat JSON object (nested values are kept as raw text), keeping
 * the order of its keys. */
static int json_parse_flat(const char *json, JsonField **ret, size_t *ret_n) {
        JsonField *f = NULL;
        size_t n = 0, cap = 0;
        const char *p = json;
        int r = -EINVAL;

        skip_ws(&p);
        if (*p++ != '{')
                goto fail;
        skip_ws(&p);
        if (*p == '}') {
                p++;
                goto done;
        }
        for (;;) {
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        JsonField *nf = realloc(f, ncap * sizeof(*nf));
                        if (!nf) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        f = nf;
                        cap = ncap;
                }
                f[n] = (JsonField){ 0 };
                skip_ws(&p);
                if (*p != '"' || (r = json_string(&p, &f[n].key)) < 0)
                        goto fail_field;
                skip_ws(&p);
                if (*p++ != ':') {
                        r = -EINVAL;
                        goto fail_field;
                }
                skip_ws(&p);
                r = *p == '"' ? json_string(&p, &f[n].value) : json_raw_value(&p, &f[n].value);
                if (r < 0)
                        goto fail_field;
                n++;
                skip_ws(&p);
                if (*p == ',') {
                        p++;
                        continue;
                }
                if (*p++ != '}') {
                        r = -EINVAL;
                        goto fail;
                }
                break;
        }
done:
        skip_ws(&p);
        if (*p) {
                r = -EINVAL;
                goto fail;
        }
        *ret = f;
        *ret_n = n;
        return 0;
fail_field:
        free(f[n].key);
        free(f[n].value);
        if (r == 0)
                r = -EINVAL;
fail:
        fields_free(f, n);
        return r;
}

static void help_status(void) {
        printf("Usage: ipcctl [OPTIONS] status [--json]\n"
               "\n"
               "Show the broker's state and counters: version, pid, uptime, socket, clients,\n"
               "topics, subscriptions, messages and bytes in and out, drops, errors.\n"
               "\n"
               "  --json     print the broker's JSON object as it is\n"
               "  -h --help  show this help\n");
}

static void print_status_table(const JsonField *f, size_t n) {
        size_t i, width = 0;

        for (i = 0; i < n; i++)
                if (strlen(f[i].key) > width)
                        width = strlen(f[i].key);
        for (i = 0; i < n; i++) {
                printf("%s:%*s ", f[i].key, (int)(width - strlen(f[i].key)), "");
                print_text_escaped(stdout, f[i].value, strlen(f[i].value));
                if (strcmp(f[i].key, "uptime_sec") == 0) {
                        uint32_t s;
                        if (parse_u32(f[i].value, &s) == 0 && s >= 60)
                                printf(" (%ud %02uh %02um %02us)", s / 86400, s / 3600 % 24,
                                       s / 60 % 60, s % 60);
                }
                fputc('\n', stdout);
        }
}

static int cmd_status(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        ipcd_client *c = NULL;
        JsonField *fields = NULL;
        size_t len = 0, n = 0;
        bool json = false;
        char *reply = NULL;
        int o, r, ret;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'j':
                        json = true;
                        break;
                case 'h':
                        help_status();
                        return 0;
                case ':':
                        return usage_error("status", "option '%s' needs a value",
                                           argv[optind - 1]);
                default:
                        return usage_error("status", "unknown option '%s'", bad_option(argv));
                }
        }
        if (optind < argc)
                return usage_error("status", "unexpected argument '%s'", argv[optind]);

        ret = connect_broker(&c);
        if (ret != 0)
                return ret;
        r = ipcd_client_admin(c, "status", &reply, &len);
        if (r < 0) {
                ret = report(c, r, "status");
                ipcd_client_unref(c);
                return ret;
        }
        ipcd_client_unref(c);

        if (json) {
                fwrite(reply, 1, len, stdout);
                if (len == 0 || reply[len - 1] != '\n')
                        fputc('\n', stdout);
                free(reply);
                return 0;
        }
        r = strlen(reply) == len ? json_parse_flat(reply, &fields, &n) : -EINVAL;
        if (r < 0) {
                log_error("status: cannot read the broker's answer (%s); here it is:",
                          strerror(-r));
                fwrite(reply, 1, len, stderr);
                fputc('\n', stderr);
                free(reply);
                return EXIT_BROKER;
        }
        print_status_table(fields, n);
        fields_free(fields, n);
        free(reply);
        return 0;
}

/* ---- main ---- */

typedef struct Command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
} Command;

static const Command commands[] = {
        { "pub", cmd_pub, "publish a message" },
        { "sub", cmd_sub, "subscribe and print messages" },
        { "status", cmd_status, "show the broker's state and counters" },
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
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        size_t i;
        int o;

        /* '+': stop at the command; its options are its own. */
        while ((o = getopt_long(argc, argv, "+:s:t:h", options, NULL)) >= 0) {
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
                case ':':
                        return usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error(NULL, "unknown option '%s'", bad_option(argv));
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
