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
#include <sys/stat.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "util.h"
#include "wire.h"

static void help(void) {
        printf("Usage: ipcd [OPTIONS]\n"
               "\n"
               "Local message broker: routes typed messages between topics over a Unix socket.\n"
               "\n"
               "  -c, --config FILE          configuration file (default " IPCD_DEFAULT_CONFIG ";\n"
               "                             built-in defaults when that one does not exist)\n"
               "      --check-config[=FILE]  validate the configuration and exit\n"
               "  -s, --socket PATH          listen on PATH, overriding the file (default: socket\n"
               "                             activation, the file's listen entries, else\n"
               "                             $RUNTIME_DIRECTORY/ipcd.sock, $XDG_RUNTIME_DIR/ipcd.sock\n"
               "                             or /run/ipcd/ipcd.sock)\n"
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
               "Options that set limits override the file's values, at start and at reload.\n"
               "SIGHUP re-reads the configuration; a broken file keeps the running one.\n"
               "\n"
               "Exit status: 0 after SIGTERM/SIGINT, 1 on a setup or configuration error,\n"
               "2 on a usage error.\n");
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
        enum { OPT_CHECK = 0x200,
               OPT_VERSION = 0x100, OPT_MODE, OPT_QUEUE, OPT_MAXCONN, OPT_OVERFLOW, OPT_MAXFDS,
               OPT_MAXBULK };
        static const struct option options[] = {
                { "socket", required_argument, NULL, 's' },
                { "config", required_argument, NULL, 'c' },
                { "check-config", optional_argument, NULL, OPT_CHECK },
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
        BrokerOptions o = {
                .config_path = IPCD_DEFAULT_CONFIG,
                .log_level_cli = -1,
        };
        BrokerConfig cfg;
        Broker *b = NULL;
        int level = LOG_NOTICE, opt, r;
        const char *check = NULL;
        bool level_set = false;
        unsigned long long v;

        broker_config_defaults(&cfg);
        while ((opt = getopt_long(argc, argv, "s:c:vqh", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        o.socket_path = optarg;
                        break;
                case 'c':
                        o.config_path = optarg;
                        o.config_explicit = true;
                        break;
                case OPT_CHECK:
                        check = optarg ? optarg : "";
                        break;
                case OPT_MODE:
                        if (parse_number(optarg, 8, 0, 0777, &v) < 0) {
                                fprintf(stderr, "ipcd: --socket-mode: '%s' is not an octal mode\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.socket_mode = (mode_t)v;
                        o.cli_set |= BROKER_SET_SOCKET_MODE;
                        break;
                case OPT_QUEUE:
                        if (parse_number(optarg, 10, 4096, SIZE_MAX / 4, &v) < 0) {
                                fprintf(stderr,
                                        "ipcd: --max-queue-bytes: '%s' is not a number >= 4096\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.out_queue_bytes = (size_t)v;
                        o.cli_set |= BROKER_SET_QUEUE_BYTES;
                        break;
                case OPT_MAXCONN:
                        if (parse_number(optarg, 10, 1, 1u << 24, &v) < 0) {
                                fprintf(stderr,
                                        "ipcd: --max-connections: '%s' is not a number from 1 to %u\n",
                                        optarg, 1u << 24);
                                goto usage;
                        }
                        cfg.max_connections = (size_t)v;
                        o.cli_set |= BROKER_SET_MAX_CONNECTIONS;
                        break;
                case OPT_MAXFDS:
                        if (parse_number(optarg, 10, 0, WIRE_MAX_FDS_PER_SENDMSG, &v) < 0) {
                                fprintf(stderr, "ipcd: --max-fds: '%s' is not a number from 0 to %d\n",
                                        optarg, WIRE_MAX_FDS_PER_SENDMSG);
                                goto usage;
                        }
                        cfg.max_fds_per_msg = (uint8_t)v;
                        o.cli_set |= BROKER_SET_MAX_FDS;
                        break;
                case OPT_MAXBULK:
                        if (parse_number(optarg, 10, 0, UINT64_MAX, &v) < 0) {
                                fprintf(stderr, "ipcd: --max-bulk-size: '%s' is not a number of bytes\n",
                                        optarg);
                                goto usage;
                        }
                        cfg.max_bulk_size = v;
                        o.cli_set |= BROKER_SET_MAX_BULK;
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
                        o.cli_set |= BROKER_SET_OVERFLOW;
                        break;
                case 'v':
                        level = level < LOG_DEBUG ? level + 1 : LOG_DEBUG;
                        level_set = true;
                        break;
                case 'q':
                        level = LOG_WARNING;
                        level_set = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("ipcd %s\n", PACKAGE_VERSION);
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

        if (check) {
                /* --check-config [FILE]: validate, say what is wrong, exit. */
                const char *path = *check ? check : o.config_path;
                char *error = NULL;
                Config *c = NULL;
                struct stat st;
                if (!*check && !o.config_explicit && stat(path, &st) < 0 && errno == ENOENT) {
                        printf("%s does not exist: ipcd uses its built-in defaults\n", path);
                        return 0;
                }
                r = config_load(path, &c, &error);
                if (r < 0) {
                        fprintf(stderr, "%s\n", error ? error : strerror(-r));
                        free(error);
                        return 1;
                }
                printf("%s: configuration is valid\n", path);
                config_free(c);
                return 0;
        }
        o.cli = cfg;
        o.log_level_cli = level_set ? level : -1;
        /* A client that goes away mid-write must never kill the broker. */
        signal(SIGPIPE, SIG_IGN);

        r = broker_new(&b, &o);
        if (r < 0) {
                log_error_errno(r, "Failed to start: %m");
                return 1;
        }
        r = broker_run(b);
        broker_free(b);
        log_notice("Stopped");
        return r < 0 ? 1 : 0;
usage:
        fprintf(stderr, "Try 'ipcd --help'.\n");
        return 2;
}
