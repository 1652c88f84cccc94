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
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <ipcd/ipcd-client.h>

#define EXIT_BROKER 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define EXIT_TIMEOUT 4

#define MAX_TYPES 64

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
        printf("Usage: ipcctl [OPTIONS] pub TOPIC [--type N] [DATA | -]\n"
               "\n"
               "Publish one message on TOPIC and wait until the broker has routed it.\n"
               "DATA is the payload; '-' reads it from standard input; without DATA the\n"
               "payload is empty.\n"
               "\n"
               "  --type N   user message type (0..4294967295, default 0)\n"
               "  -h --help  show this help\n");
}

/* Reads all of standard input, at most @max bytes. Returns 0, -EMSGSIZE
 * when there is more, or another negative errno. */
static int read_stdin(size_t max, char **ret, size_t *ret_len) {
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
                n = read(STDIN_FILENO, buf + len, cap - len);
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

static int cmd_pub(int argc, char **argv) {
        static const struct option options[] = {
                { "type", required_argument, NULL, 'T' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *topic, *data_arg = NULL;
        ipcd_client *c = NULL;
        char *data = NULL;
        uint32_t type = 0;
        size_t size = 0;
        int o, r, ret;

        while ((o = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (o) {
                case 'T':
                        if (parse_u32(optarg, &type) < 0)
                                return usage_error("pub", "invalid --type '%s'", optarg);
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

        ret = connect_broker(&c);
        if (ret != 0)
                return ret;

        if (data_arg && strcmp(data_arg, "-") == 0) {
                r = read_stdin(ipcd_client_get_max_payload(c), &data, &size);
                if (r == -EMSGSIZE) {
                        log_error("pub: the data on standard input exceeds the broker's limit of %zu bytes",
                                  ipcd_client_get_max_payload(c));
                        ipcd_client_unref(c);
                        return EXIT_BROKER;
                }
                if (r < 0) {
                        log_error("pub: cannot read standard input: %s", strerror(-r));
                        ipcd_client_unref(c);
                        return EXIT_BROKER;
                }
        } else if (data_arg) {
                size = strlen(data_arg);
        }

        r = ipcd_client_publish(c, topic, type, data ? data : data_arg, size, IPCD_PUBLISH_ACK);
        ret = r < 0 ? report(c, r, "pub: cannot publish") : 0;
        free(data);
        ipcd_client_unref(c);
        return ret;
}

/* ---- sub ---- */

typedef struct SubState {
        bool json;
        uint64_t count; /* 0: no limit */
        uint64_t received;
} SubState;

static void print_message_json(ipcd_msg *m) {
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
        if (is_text(data, size)) {
                fputs(",\"payload\":", stdout);
                print_json_string(stdout, data, size);
        } else {
                fputs(",\"payload_base64\":\"", stdout);
                print_base64(stdout, data, size);
                fputc('"', stdout);
        }
        fputs("}\n", stdout);
}

static void print_message_human(ipcd_msg *m) {
        size_t size;
        const void *data = ipcd_msg_get_data(m, &size);

        printf("%s type=%" PRIu32 " seq=%" PRIu64 " pid=%ld uid=%lu size=%zu: ",
               ipcd_msg_get_topic(m), ipcd_msg_get_type(m), ipcd_msg_get_seq(m),
               (long)ipcd_msg_get_sender_pid(m), (unsigned long)ipcd_msg_get_sender_uid(m),
               size);
        if (is_text(data, size))
                print_text_escaped(stdout, data, size);
        else
                printf("<%zu bytes binary>", size);
        fputc('\n', stdout);
}

static void on_message(ipcd_client *c, ipcd_msg *m, void *userdata) {
        SubState *st = userdata;

        if (st->count > 0 && st->received >= st->count)
                return; /* enough: the rest of this batch is not shown */
        if (st->json)
                print_message_json(m);
        else
                print_message_human(m);
        fflush(stdout);
        st->received++;
}

static void help_sub(void) {
        printf("Usage: ipcctl [OPTIONS] sub FILTER [--type N]... [--count N] [--timeout SECONDS] [--json]\n"
               "\n"
               "Subscribe to FILTER ('+' matches one level, '#' the rest) and print one\n"
               "line per message:\n"
               "  TOPIC type=N seq=N pid=N uid=N size=N: PAYLOAD\n"
               "PAYLOAD is the text, or <N bytes binary>.\n"
               "\n"
               "  --type N           receive only this message type (repeatable, at most 64)\n"
               "  --count N          exit after N messages\n"
               "  --timeout SECONDS  give up after SECONDS (exit code 4)\n"
               "  --json             one JSON object per line: topic, type, seq, sender_pid,\n"
               "                     sender_uid, sender_gid, size, subscription, and payload\n"
               "                     (text) or payload_base64 (anything else)\n"
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
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint32_t types[MAX_TYPES], count32;
        SubState st = { 0 };
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
