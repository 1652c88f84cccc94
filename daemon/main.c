/* SPDX-License-Identifier: MIT */
/* ipcd: command line, setup, run, exit code. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "util.h"
#include "wire.h"

static void help(void) {
        printf("Usage: ipcd [OPTIONS]\n"
               "\n"
               "Local message broker: routes typed messages between topics over a Unix socket.\n"
               "\n"
               "  -s, --socket PATH          listen on PATH (default: $RUNTIME_DIRECTORY/ipcd.sock,\n"
               "                             $XDG_RUNTIME_DIR/ipcd.sock or /run/ipcd/ipcd.sock)\n"
               "      --socket-mode MODE     permissions of the socket file, octal (default 0600)\n"
               "      --max-queue-bytes N    per-connection output queue limit (default 8388608)\n"
               "      --max-connections N    connections at once (default 16384)\n"
               "      --max-fds N            file descriptors per message, 0..253 (default 16)\n"
               "      --max-bulk-size N      largest memfd payload in bytes (default 1073741824)\n"
               "      --overflow POLICY      when a subscriber's queue is full: drop-new (default),\n"
               "                             drop-old, disconnect or block\n"
               "  -v, --verbose              log more (repeat for debug)\n"
               "  -q, --quiet                log only warnings and errors\n"
               "  -h, --help                 show this help\n"
               "      --version              show the version\n"
               "\n"
               "Exit status: 0 after SIGTERM/SIGINT, 1 on a setup error, 2 on a usage error.\n");
}

/* Parses a whole decimal (or with @base 8, octal) number in [min, max]. */
static int parse_number(const char *s, int base, unsigned long long min, unsigned long long max,
                        unsigned long long *ret) {
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno || *end || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100, OPT_MODE, OPT_QUEUE, OPT_MAXCONN, OPT_OVERFLOW, OPT_MAXFDS,
               OPT_MAXBULK };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "socket-mode", required_argument, NULL, OPT_MODE },
                { "max-queue-bytes", required_argument, NULL, OPT_QUEUE },
                { "max-connections", required_argument, NULL, OPT_MAXCONN },
                { "overflow", required_argument, NULL, OPT_OVERFLOW },
                { "max-fds", required_argument, NULL, OPT_MAXFDS },
                { "max-bulk-size", required_argument, NULL, OPT_MAXBULK },
                { "verbose", no_argument, NULL, 'v' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        BrokerConfig cfg;
        Broker *b = NULL;
        int level = LOG_NOTICE, opt, r;
        unsigned long long v;
        char path[4096];

        broker_config_defaults(&cfg);
        while ((opt = getopt_long(argc, argv, "s:vqh", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        free(cfg.socket_path);
                        cfg.socket_path = strdup(optarg);
                        if (!cfg.socket_path) {
                                fprintf(stderr, "ipcd: out of memory\n");
                                return 1;
                        }
                        break;
                case OPT_MODE:
                        if (parse_number(optarg, 8, 0, 0777, &v) < 0) {
                                fprintf(stderr, "ipcd: --socket-mode: '%s' is not an octal mode\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.socket_mode = (mode_t)v;
                        break;
                case OPT_QUEUE:
                        if (parse_number(optarg, 10, 4096, SIZE_MAX / 4, &v) < 0) {
                                fprintf(stderr,
                                        "ipcd: --max-queue-bytes: '%s' is not a number >= 4096\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.out_queue_bytes = (size_t)v;
                        break;
                case OPT_MAXCONN:
                        if (parse_number(optarg, 10, 1, 1u << 24, &v) < 0) {
                                fprintf(stderr,
                                        "ipcd: --max-connections: '%s' is not a number from 1 to %u\n",
                                        optarg, 1u << 24);
                                goto usage;
                        }
                        cfg.max_connections = (size_t)v;
                        break;
                case OPT_MAXFDS:
                        if (parse_number(optarg, 10, 0, WIRE_MAX_FDS_PER_SENDMSG, &v) < 0) {
                                fprintf(stderr, "ipcd: --max-fds: '%s' is not a number from 0 to %d\n",
                                        optarg, WIRE_MAX_FDS_PER_SENDMSG);
                                goto usage;
                        }
                        cfg.max_fds_per_msg = (uint8_t)v;
                        break;
                case OPT_MAXBULK:
                        if (parse_number(optarg, 10, 0, UINT64_MAX, &v) < 0) {
                                fprintf(stderr, "ipcd: --max-bulk-size: '%s' is not a number of bytes\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.max_bulk_size = v;
                        break;
                case OPT_OVERFLOW:
                        r = overflow_policy_from_name(optarg);
                        if (r < 0) {
                                fprintf(stderr,
                                        "ipcd: --overflow: '%s' is not drop-new, drop-old, disconnect or block\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.overflow = (OverflowPolicy)r;
                        break;
                case 'v':
                        level = level < LOG_DEBUG ? level + 1 : LOG_DEBUG;
                        break;
                case 'q':
                        level = LOG_WARNING;
                        break;
                case 'h':
                        help();
                        free(cfg.socket_path);
                        return 0;
                case OPT_VERSION:
                        printf("ipcd %s\n", PACKAGE_VERSION);
                        free(cfg.socket_path);
                        return 0;
                default:
                        goto usage;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "ipcd: unexpected argument '%s'\n", argv[optind]);
                goto usage;
        }
        log_set_max_level(level);

        if (!cfg.socket_path) {
                r = wire_default_socket_path(path, sizeof(path));
                if (r < 0) {
                        log_error_errno(r, "The default socket path is too long: %m");
                        return 1;
                }
                cfg.socket_path = strdup(path);
                if (!cfg.socket_path) {
                        log_error("Out of memory");
                        return 1;
                }
        }
        /* A client that goes away mid-write must never kill the broker. */
        signal(SIGPIPE, SIG_IGN);

        r = broker_new(&b, &cfg);
        free(cfg.socket_path); /* NULL unless broker_new failed before taking it */
        if (r < 0) {
                log_error_errno(r, "Failed to start: %m");
                return 1;
        }
        r = broker_run(b);
        broker_free(b);
        log_notice("Stopped");
        return r < 0 ? 1 : 0;
usage:
        free(cfg.socket_path);
        fprintf(stderr, "Try 'ipcd --help'.\n");
        return 2;
}
