/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: starts a real ipcd (and, with --peers, Redis and Mosquitto)
 * on private sockets, runs every scenario against each, and prints the
 * median over --reps repetitions with min and max, the ratios to the
 * physical limits measured in the same run and to the peers, and whether
 * the project's targets held. docs/PERFORMANCE.md and ipcd-bench(1)
 * describe each scenario.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#ifndef IPCD_BENCH_IPCD
#define IPCD_BENCH_IPCD "/usr/local/sbin/ipcd"
#endif

enum {
        SC_LIMIT,
        SC_RR,
        SC_PUBSUB,
        SC_FANOUT,
        SC_FANIN,
        SC_BULK,
        SC_CONNS,
        SC_CALLGRIND,
        _SC_MAX,
};
static const char *const sc_name[_SC_MAX] = { "limit", "rr",    "pubsub", "fanout",
                                              "fanin", "bulk", "conns",  "callgrind" };

#define MAX_FANOUT 8
#define MAX_SIZES 16

typedef struct Options {
        const char *ipcd, *redis, *mosquitto;
        bool only[_SC_MAX];
        char only_arg[128];
        bool peers, json;
        int reps;
        uint64_t count, rr_count, warmup, window, conns, cg_count, cpu_count;
        uint64_t size;
        unsigned batch;
        int fanout[MAX_FANOUT], n_fanout;
        char fanout_arg[64];
        int fanin, sub_procs, bulk_msgs, stall_s;
        uint64_t bulk[MAX_SIZES];
        int n_bulk;
        char bulk_arg[128];
} Options;

static Options o = {
        .ipcd = IPCD_BENCH_IPCD,
        .redis = "redis-server",
        .mosquitto = "mosquitto",
        .reps = 5,
        .count = 1000000,
        .rr_count = 20000,
        .warmup = 2000,
        .window = 50000,
        .conns = 10000,
        .cg_count = 100000,
        .cpu_count = 1000,
        .size = 64,
        .batch = 256,
        .fanin = 10,
        .sub_procs = 2,
        .bulk_msgs = 3,
        .stall_s = 30,
};

static BenchServer servers[_SYS_MAX];
static const int systems_all[] = { SYS_IPCD, SYS_REDIS, SYS_MOSQUITTO };
static int n_systems = 1;
static char dir[] = "/tmp/ipcd-bench-XXXXXX";
/* The bulk payloads: the largest size, a pattern a receiver can check. */
static uint8_t *bulk_data;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: ipcd-bench [OPTIONS]\n"
                "\n"
                "Benchmarks ipcd, the local message broker: starts one on a private socket\n"
                "and runs each scenario --reps times; prints the median, min and max of every\n"
                "figure, its ratio to the physical limit measured in the same run, and (with\n"
                "--peers) the same workloads against Redis and Mosquitto.\n"
                "\n"
                "Scenarios (--only, comma-separated; all but callgrind by default):\n"
                "  rr        request/reply round trip: p50, p99, p99.9\n"
                "  pubsub    1 publisher -> 1 subscriber: msg/s and broker CPU per message\n"
                "  fanout    1 publisher -> N subscribers (--fanout): deliveries/s\n"
                "  fanin     N publishers (--fanin) -> 1 subscriber: deliveries/s\n"
                "  bulk      large payloads (--bulk-sizes): end-to-end time, broker CPU/msg\n"
                "  conns     broker memory per idle connection (--conns)\n"
                "  limit     the same over a bare AF_UNIX socket pair, and memcpy\n"
                "  callgrind instructions per routed message (valgrind; or --callgrind)\n"
                "\n"
                "Options:\n"
                "      --ipcd PATH          the broker to test (default %s)\n"
                "      --only LIST          run only these scenarios\n"
                "      --peers              also Redis and Mosquitto (redis-server, mosquitto,\n"
                "                           built with hiredis and libmosquitto)\n"
                "      --redis-server PATH  default redis-server\n"
                "      --mosquitto PATH     default mosquitto (also looked for in /usr/sbin)\n"
                "      --callgrind          add the callgrind scenario\n"
                "  -r, --reps N             repetitions of each figure (default 5)\n"
                "      --count N            deliveries per pubsub/fanout/fanin run (default 1000000)\n"
                "      --size BYTES         small message payload (default 64, at least 16)\n"
                "      --window N           messages a publisher may be ahead of the slowest\n"
                "                           subscriber (default 50000)\n"
                "      --batch N            messages per flush when batching (default 256)\n"
                "      --fanout LIST        subscriber counts (default 10,100)\n"
                "      --fanin N            publishers (default 10)\n"
                "      --sub-procs N        processes the fanout subscribers share (default 2)\n"
                "      --rr-count N         timed round trips (default 20000)\n"
                "      --warmup N           round trips before timing (default 2000)\n"
                "      --bulk-sizes LIST    default 4K,64K,1M,16M,64M,256M\n"
                "      --bulk-msgs N        messages timed per size and repetition (default 3)\n"
                "      --cpu-count N        bulk messages for the broker's CPU time (default 1000;\n"
                "                           fewer for large copies: 512 MiB in all, at least 4)\n"
                "      --conns N            idle connections (default 10000)\n"
                "      --callgrind-count N  messages of the callgrind run (default 100000)\n"
                "      --timeout SEC        a run that makes no progress that long fails (30)\n"
                "      --json               print the results as JSON\n"
                "  -v, --verbose            print every measurement as it is made\n"
                "  -h, --help               show this help\n"
                "\n"
                "Exit status: 0; 1 when a message was lost or reordered or a run failed;\n"
                "2 on a usage error.\n",
                IPCD_BENCH_IPCD);
}

static int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t v;

        if (parse_size(s, &v) < 0 || v < min || v > max)
                return -1;
        *ret = v;
        return 0;
}

static int parse_list(const char *arg, uint64_t *v, int max, uint64_t lo, uint64_t hi) {
        char buf[256], *tok, *save = NULL;
        int n = 0;

        snprintf(buf, sizeof(buf), "%s", arg);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n == max || parse_count(tok, lo, hi, &v[n]) < 0)
                        return -1;
                n++;
        }
        return n;
}

static void bad(const char *opt, const char *arg) {
        fprintf(stderr, "ipcd-bench: invalid %s '%s' (see --help)\n", opt, arg);
        exit(2);
}

static void parse_args(int argc, char **argv) {
        enum {
                O_IPCD = 256, O_ONLY, O_PEERS, O_REDIS, O_MOSQ, O_CG, O_COUNT, O_SIZE, O_WINDOW,
                O_BATCH, O_FANOUT, O_FANIN, O_SUBPROCS, O_RRCOUNT, O_WARMUP, O_BULK, O_BULKMSGS,
                O_CPUCOUNT, O_CONNS, O_CGCOUNT, O_TIMEOUT, O_JSON,
        };
        static const struct option opts[] = {
                { "ipcd", required_argument, NULL, O_IPCD },
                { "only", required_argument, NULL, O_ONLY },
                { "peers", no_argument, NULL, O_PEERS },
                { "redis-server", required_argument, NULL, O_REDIS },
                { "mosquitto", required_argument, NULL, O_MOSQ },
                { "callgrind", no_argument, NULL, O_CG },
                { "reps", required_argument, NULL, 'r' },
                { "count", required_argument, NULL, O_COUNT },
                { "size", required_argument, NULL, O_SIZE },
                { "window", required_argument, NULL, O_WINDOW },
                { "batch", required_argument, NULL, O_BATCH },
                { "fanout", required_argument, NULL, O_FANOUT },
                { "fanin", required_argument, NULL, O_FANIN },
                { "sub-procs", required_argument, NULL, O_SUBPROCS },
                { "rr-count", required_argument, NULL, O_RRCOUNT },
                { "warmup", required_argument, NULL, O_WARMUP },
                { "bulk-sizes", required_argument, NULL, O_BULK },
                { "bulk-msgs", required_argument, NULL, O_BULKMSGS },
                { "cpu-count", required_argument, NULL, O_CPUCOUNT },
                { "conns", required_argument, NULL, O_CONNS },
                { "callgrind-count", required_argument, NULL, O_CGCOUNT },
                { "timeout", required_argument, NULL, O_TIMEOUT },
                { "json", no_argument, NULL, O_JSON },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool only_given = false, cg = false;
        uint64_t v, list[MAX_SIZES];
        int opt, i, n;

        snprintf(o.fanout_arg, sizeof(o.fanout_arg), "10,100");
        snprintf(o.bulk_arg, sizeof(o.bulk_arg), "4K,64K,1M,16M,64M,256M");
        while ((opt = getopt_long(argc, argv, "r:vh", opts, NULL)) >= 0) {
                switch (opt) {
                case O_IPCD:
                        o.ipcd = optarg;
                        break;
                case O_ONLY: {
                        char buf[128], *tok, *save = NULL;

                        only_given = true;
                        memset(o.only, 0, sizeof(o.only));
                        snprintf(buf, sizeof(buf), "%s", optarg);
                        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                                for (i = 0; i < _SC_MAX; i++)
                                        if (strcmp(tok, sc_name[i]) == 0)
                                                break;
                                if (i == _SC_MAX)
                                        bad("--only", tok);
                                o.only[i] = true;
                        }
                        break;
                }
                case O_PEERS:
                        o.peers = true;
                        break;
                case O_REDIS:
                        o.redis = optarg;
                        break;
                case O_MOSQ:
                        o.mosquitto = optarg;
                        break;
                case O_CG:
                        cg = true;
                        break;
                case 'r':
                        if (parse_count(optarg, 1, BENCH_MAX_REPS, &v) < 0)
                                bad("--reps", optarg);
                        o.reps = (int)v;
                        break;
                case O_COUNT:
                        if (parse_count(optarg, 1, 1ull << 34, &o.count) < 0)
                                bad("--count", optarg);
                        break;
                case O_SIZE:
                        if (parse_count(optarg, 16, 1u << 20, &o.size) < 0)
                                bad("--size", optarg);
                        break;
                case O_WINDOW:
                        if (parse_count(optarg, 1, 1u << 24, &o.window) < 0)
                                bad("--window", optarg);
                        break;
                case O_BATCH:
                        if (parse_count(optarg, 1, 1u << 20, &v) < 0)
                                bad("--batch", optarg);
                        o.batch = (unsigned)v;
                        break;
                case O_FANOUT:
                        n = parse_list(optarg, list, MAX_FANOUT, 1, 1000);
                        if (n < 1)
                                bad("--fanout", optarg);
                        for (i = 0; i < n; i++)
                                o.fanout[i] = (int)list[i];
                        o.n_fanout = n;
                        snprintf(o.fanout_arg, sizeof(o.fanout_arg), "%s", optarg);
                        break;
                case O_FANIN:
                        if (parse_count(optarg, 1, 200, &v) < 0)
                                bad("--fanin", optarg);
                        o.fanin = (int)v;
                        break;
                case O_SUBPROCS:
                        if (parse_count(optarg, 1, 64, &v) < 0)
                                bad("--sub-procs", optarg);
                        o.sub_procs = (int)v;
                        break;
                case O_RRCOUNT:
                        if (parse_count(optarg, 1, 1u << 26, &o.rr_count) < 0)
                                bad("--rr-count", optarg);
                        break;
                case O_WARMUP:
                        if (parse_count(optarg, 0, 1u << 26, &o.warmup) < 0)
                                bad("--warmup", optarg);
                        break;
                case O_BULK:
                        n = parse_list(optarg, o.bulk, MAX_SIZES, 16, 1ull << 30);
                        if (n < 1)
                                bad("--bulk-sizes", optarg);
                        o.n_bulk = n;
                        snprintf(o.bulk_arg, sizeof(o.bulk_arg), "%s", optarg);
                        break;
                case O_BULKMSGS:
                        if (parse_count(optarg, 1, BENCH_MAX_REPS, &v) < 0)
                                bad("--bulk-msgs", optarg);
                        o.bulk_msgs = (int)v;
                        break;
                case O_CPUCOUNT:
                        if (parse_count(optarg, 1, 1u << 24, &o.cpu_count) < 0)
                                bad("--cpu-count", optarg);
                        break;
                case O_CONNS:
                        if (parse_count(optarg, 1, 1u << 20, &o.conns) < 0)
                                bad("--conns", optarg);
                        break;
                case O_CGCOUNT:
                        if (parse_count(optarg, 1, 1u << 26, &o.cg_count) < 0)
                                bad("--callgrind-count", optarg);
                        break;
                case O_TIMEOUT:
                        if (parse_count(optarg, 1, 3600, &v) < 0)
                                bad("--timeout", optarg);
                        o.stall_s = (int)v;
                        break;
                case O_JSON:
                        o.json = true;
                        break;
                case 'v':
                        bench_verbose++;
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
                fprintf(stderr, "ipcd-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
                exit(2);
        }
        if (!only_given)
                for (i = 0; i < _SC_MAX; i++)
                        o.only[i] = i != SC_CALLGRIND;
        if (cg)
                o.only[SC_CALLGRIND] = true;
        o.only_arg[0] = 0;
        for (i = 0; i < _SC_MAX; i++)
                if (o.only[i])
                        snprintf(o.only_arg + strlen(o.only_arg), sizeof(o.only_arg) - strlen(o.only_arg),
                                 "%s%s", o.only_arg[0] ? "," : "", sc_name[i]);
        if (o.n_fanout == 0) {
                o.fanout[0] = 10;
                o.fanout[1] = 100;
                o.n_fanout = 2;
        }
        if (o.n_bulk == 0)
                o.n_bulk = parse_list(o.bulk_arg, o.bulk, MAX_SIZES, 16, 1ull << 30);
#if !HAVE_BENCH_PEERS
        if (o.peers) {
                fprintf(stderr,
                        "ipcd-bench: --peers: this ipcd-bench was built without Redis and Mosquitto\n"
                        "support. Install the servers and their client libraries (Debian:\n"
                        "apt-get install redis-server mosquitto libhiredis-dev libmosquitto-dev),\n"
                        "then configure and build again; `make bench PEERS=1` does all of that.\n");
                exit(2);
        }
#endif
}

/* ---- the scenarios ---- */

static const char *bulk_scenario(uint64_t size, char *buf, size_t cap) {
        char s[32];

        snprintf(buf, cap, "bulk %s", fmt_size(size, s, sizeof(s)));
        return buf;
}

/* Creates the rows in the order they are printed. */
static void layout(void) {
        char sc[32];
        int i;

        if (o.only[SC_RR]) {
                report_row("rr", "p50", "us", false);
                report_row("rr", "p99", "us", false);
                report_row("rr", "p99.9", "us", false);
        }
        if (o.only[SC_PUBSUB]) {
                report_row("pubsub", "msg/s", "msg/s", true);
                report_row("pubsub", "msg/s (unbatched)", "msg/s", true);
                report_row("pubsub", "broker CPU/msg", "ns", false);
        }
        for (i = 0; o.only[SC_FANOUT] && i < o.n_fanout; i++) {
                snprintf(sc, sizeof(sc), "fanout-%d", o.fanout[i]);
                report_row(sc, "deliveries/s", "msg/s", true);
                report_row(sc, "broker CPU/delivery", "ns", false);
        }
        if (o.only[SC_FANIN]) {
                snprintf(sc, sizeof(sc), "fanin-%d", o.fanin);
                report_row(sc, "deliveries/s", "msg/s", true);
                report_row(sc, "broker CPU/delivery", "ns", false);
        }
        for (i = 0; o.only[SC_BULK] && i < o.n_bulk; i++) {
                bulk_scenario(o.bulk[i], sc, sizeof(sc));
                report_row(sc, "publish: delivered", "us", false);
                report_row(sc, "publish: read all", "us", false);
                report_row(sc, "publish_memfd: delivered", "us", false);
                report_row(sc, "publish_memfd: read all", "us", false);
                report_row(sc, "broker CPU/msg (publish)", "us", false);
                report_row(sc, "broker CPU/msg (publish_memfd)", "us", false);
        }
        if (o.only[SC_CONNS])
                report_row("conns", "broker RSS/connection", "B", false);
        if (o.only[SC_LIMIT]) {
                report_row("limit", "AF_UNIX round trip p50", "us", false);
                report_row("limit", "AF_UNIX one-way (batched)", "msg/s", true);
                report_row("limit", "AF_UNIX one-way (unbatched)", "msg/s", true);
                report_row("limit", "memcpy bandwidth (256 MiB)", "GB/s", true);
        }
        if (o.only[SC_CALLGRIND])
                report_row("callgrind", "instructions/msg (pubsub)", "Ir", false);
}

static void scen_limit(int rep) {
        RrResult rr;
        double rate;
        int i;

        (void)rep;
        if (limit_rr(o.warmup, o.rr_count, o.size, &rr) == 0) {
                report_add(report_row("limit", "AF_UNIX round trip p50", "us", false), COL_LIMIT, rr.p50 * 1e6);
                if (o.only[SC_RR]) {
                        report_add(report_row("rr", "p50", "us", false), COL_LIMIT, rr.p50 * 1e6);
                        report_add(report_row("rr", "p99", "us", false), COL_LIMIT, rr.p99 * 1e6);
                        report_add(report_row("rr", "p99.9", "us", false), COL_LIMIT, rr.p999 * 1e6);
                }
        } else
                report_error("limit: the AF_UNIX round trip failed");
        if (limit_oneway(o.count, o.size, o.batch, &rate) == 0) {
                char sc[32];

                report_add(report_row("limit", "AF_UNIX one-way (batched)", "msg/s", true), COL_LIMIT, rate);
                /* Fan-out and fan-in move more deliveries through one broker
                 * than one socket pair carries: the same limit. */
                if (o.only[SC_PUBSUB])
                        report_add(report_row("pubsub", "msg/s", "msg/s", true), COL_LIMIT, rate);
                for (i = 0; o.only[SC_FANOUT] && i < o.n_fanout; i++) {
                        snprintf(sc, sizeof(sc), "fanout-%d", o.fanout[i]);
                        report_add(report_row(sc, "deliveries/s", "msg/s", true), COL_LIMIT, rate);
                }
                if (o.only[SC_FANIN]) {
                        snprintf(sc, sizeof(sc), "fanin-%d", o.fanin);
                        report_add(report_row(sc, "deliveries/s", "msg/s", true), COL_LIMIT, rate);
                }
        } else
                report_error("limit: the AF_UNIX one-way stream failed");
        /* A write per message, like the unbatched publisher; fewer of them,
         * they are slow. */
        if (limit_oneway(o.count / 4 ? o.count / 4 : 1, o.size, 1, &rate) == 0) {
                report_add(report_row("limit", "AF_UNIX one-way (unbatched)", "msg/s", true), COL_LIMIT, rate);
                if (o.only[SC_PUBSUB])
                        report_add(report_row("pubsub", "msg/s (unbatched)", "msg/s", true), COL_LIMIT, rate);
        } else
                report_error("limit: the AF_UNIX one-way stream failed");
        report_add(report_row("limit", "memcpy bandwidth (256 MiB)", "GB/s", true), COL_LIMIT,
                   (256u << 20) / limit_memcpy(256u << 20) / 1e9);
        for (i = 0; o.only[SC_BULK] && i < o.n_bulk; i++) {
                static const char *const rows[] = { "publish: delivered", "publish: read all",
                                                    "publish_memfd: delivered", "publish_memfd: read all" };
                double t = limit_memcpy((size_t)o.bulk[i]) * 1e6;
                char sc[32];

                bulk_scenario(o.bulk[i], sc, sizeof(sc));
                for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++)
                        report_add(report_row(sc, rows[k], "us", false), COL_LIMIT, t);
        }
}

static void scen_rr(int rep, int sys) {
        RrResult rr;

        (void)rep;
        if (work_rr(&servers[sys], o.warmup, o.rr_count, o.size, &rr) < 0) {
                report_error("rr: %s: the run failed", servers[sys].sys->name);
                return;
        }
        report_add(report_row("rr", "p50", "us", false), sys, rr.p50 * 1e6);
        report_add(report_row("rr", "p99", "us", false), sys, rr.p99 * 1e6);
        report_add(report_row("rr", "p99.9", "us", false), sys, rr.p999 * 1e6);
}

/* Runs one stream and reports its failures; false when it has no figure. */
static bool stream(int sys, const StreamSpec *spec, StreamResult *res) {
        int r = work_stream(&servers[sys], spec, res);

        if (res->lost || res->misordered)
                report_error("%s: %s: %llu lost, %llu out of order (first: %s)", spec->label,
                             servers[sys].sys->name, (unsigned long long)res->lost,
                             (unsigned long long)res->misordered, res->error);
        else if (r < 0)
                report_error("%s: %s: the run failed", spec->label, servers[sys].sys->name);
        return r == 0 && res->seconds > 0;
}

static StreamSpec stream_spec(const char *label, int pubs, int subs, uint64_t count) {
        return (StreamSpec){
                .label = label,
                .n_pubs = pubs,
                .n_subs = subs,
                .sub_procs = subs < o.sub_procs ? subs : o.sub_procs,
                .count = count ? count : 1,
                .size = (size_t)o.size,
                .window = o.window / (uint64_t)pubs ? o.window / (uint64_t)pubs : 1,
                .batch = o.batch,
                .batched = true,
                .stall_ms = o.stall_s * 1000,
        };
}

static void scen_pubsub(int rep, int sys) {
        StreamSpec spec = stream_spec("pubsub", 1, 1, o.count);
        StreamResult res;

        (void)rep;
        if (stream(sys, &spec, &res)) {
                report_add(report_row("pubsub", "msg/s", "msg/s", true), sys, res.deliveries / res.seconds);
                report_add(report_row("pubsub", "broker CPU/msg", "ns", false), sys,
                           res.cpu_s / res.deliveries * 1e9);
        }
        if (sys == SYS_MOSQUITTO) {
                /* libmosquitto writes each message as it is published:
                 * its only way is the unbatched one, in the row above. */
                report_na(report_row("pubsub", "msg/s (unbatched)", "msg/s", true), sys,
                          "libmosquitto writes every message at once: the msg/s row is unbatched");
                return;
        }
        spec.label = "pubsub-unbatched";
        spec.batched = false;
        bench_ipcd_batched = false;
        if (stream(sys, &spec, &res))
                report_add(report_row("pubsub", "msg/s (unbatched)", "msg/s", true), sys,
                           res.deliveries / res.seconds);
        bench_ipcd_batched = true;
}

static void scen_fan(int sys, int pubs, int subs) {
        char sc[32];
        StreamSpec spec;
        StreamResult res;

        if (subs > 1)
                snprintf(sc, sizeof(sc), "fanout-%d", subs);
        else
                snprintf(sc, sizeof(sc), "fanin-%d", pubs);
        /* The same number of deliveries in every stream scenario. */
        spec = stream_spec(sc, pubs, subs, o.count / (uint64_t)pubs / (uint64_t)subs);
        if (stream(sys, &spec, &res)) {
                report_add(report_row(sc, "deliveries/s", "msg/s", true), sys, res.deliveries / res.seconds);
                report_add(report_row(sc, "broker CPU/delivery", "ns", false), sys,
                           res.cpu_s / res.deliveries * 1e9);
        }
}

static void scen_bulk(int rep, int sys) {
        const BenchServer *srv = &servers[sys];
        int i;

        (void)rep;
        for (i = 0; i < o.n_bulk; i++) {
                size_t size = (size_t)o.bulk[i];
                uint64_t max = srv->sys->max_payload(32);
                char sc[32], why[96], s[32];
                BulkTimes t;
                StreamSpec spec;
                StreamResult res;
                Row *pd, *pr, *zd, *zr, *pc, *zc;

                bulk_scenario(size, sc, sizeof(sc));
                pd = report_row(sc, "publish: delivered", "us", false);
                pr = report_row(sc, "publish: read all", "us", false);
                zd = report_row(sc, "publish_memfd: delivered", "us", false);
                zr = report_row(sc, "publish_memfd: read all", "us", false);
                pc = report_row(sc, "broker CPU/msg (publish)", "us", false);
                zc = report_row(sc, "broker CPU/msg (publish_memfd)", "us", false);
                if (!srv->sys->publish_memfd) {
                        report_na(zd, sys, "publish_memfd is ipcd's");
                        report_na(zr, sys, "publish_memfd is ipcd's");
                        report_na(zc, sys, "publish_memfd is ipcd's");
                }
                if (max && size > max) {
                        snprintf(why, sizeof(why), "%s is more than %s's largest message (%llu bytes)",
                                 fmt_size(size, s, sizeof(s)), srv->sys->name, (unsigned long long)max);
                        report_na(pd, sys, why);
                        report_na(pr, sys, why);
                        report_na(pc, sys, why);
                        continue;
                }
                if (work_bulk_time(srv, bulk_data, size, BULK_COPY, o.bulk_msgs, &t) == 0) {
                        report_add(pd, sys, t.delivered * 1e6);
                        report_add(pr, sys, t.read * 1e6);
                } else
                        report_error("%s: %s: publish failed", sc, srv->sys->name);
                if (srv->sys->publish_memfd) {
                        if (work_bulk_time(srv, bulk_data, size, BULK_ZERO, o.bulk_msgs, &t) == 0) {
                                report_add(zd, sys, t.delivered * 1e6);
                                report_add(zr, sys, t.read * 1e6);
                        } else
                                report_error("%s: %s: publish_memfd failed", sc, srv->sys->name);
                }
                /*
                 * Broker CPU: messages back to back, with the same window
                 * and batches for every size, so that only the size
                 * differs. The copies are real memory: a few at a time,
                 * 1 GiB of them in all (at least 16 messages).
                 */
                spec = stream_spec(sc, 1, 1, 0);
                spec.size = size;
                spec.window = 4;
                spec.batch = 4;
                spec.count = ((uint64_t)1 << 30) / size;
                if (spec.count < 16)
                        spec.count = 16;
                if (spec.count > o.cpu_count)
                        spec.count = o.cpu_count;
                if (stream(sys, &spec, &res))
                        report_add(pc, sys, res.cpu_s / res.deliveries * 1e6);
                if (srv->sys->publish_memfd) {
                        /* One sealed memfd again and again: what the broker
                         * does is the same for every memfd of that size. */
                        spec.bulk = BULK_ZERO;
                        spec.window = 64;
                        spec.batch = 16;
                        spec.count = o.cpu_count;
                        if (stream(sys, &spec, &res))
                                report_add(zc, sys, res.cpu_s / res.deliveries * 1e6);
                }
        }
}

static void scen_conns(int rep) {
        IpcdOptions io = { .path = o.ipcd };
        double bytes;

        (void)rep;
        if (work_conns(dir, &io, (unsigned)o.conns, &bytes) == 0)
                report_add(report_row("conns", "broker RSS/connection", "B", false), SYS_IPCD, bytes);
        else
                report_error("conns: the run failed");
}

/* The total instruction count of a callgrind profile: its "totals:" line
 * (older valgrinds: "summary:"). -1 when there is none. */
static double callgrind_total(const char *path) {
        char line[512];
        double total = -1;
        FILE *f = fopen(path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long v;

                if (sscanf(line, "totals: %llu", &v) == 1 || sscanf(line, "summary: %llu", &v) == 1)
                        total = (double)v;
        }
        fclose(f);
        return total;
}

/* Instructions the broker executes for a pubsub run of @count messages. */
static double callgrind_run(uint64_t count) {
        IpcdOptions io = { .path = o.ipcd };
        char tag[32], out[600];
        StreamSpec spec;
        StreamResult res;
        BenchServer srv;
        int r;

        snprintf(tag, sizeof(tag), "ipcd-cg-%llu", (unsigned long long)count);
        snprintf(out, sizeof(out), "%s/callgrind.out.%llu", dir, (unsigned long long)count);
        cleanup_add_path(out);
        io.callgrind_out = out;
        if (server_start_ipcd(&srv, dir, tag, &io) < 0)
                return -1;
        spec = stream_spec("callgrind", 1, 1, 1);
        spec.count = count;
        /* Valgrind runs the broker some 50 times slower. */
        spec.stall_ms = o.stall_s * 1000 * 4;
        r = work_stream(&srv, &spec, &res);
        server_stop(&srv);
        if (r < 0 || res.lost || res.misordered) {
                report_error("callgrind: the pubsub run of %llu messages failed", (unsigned long long)count);
                return -1;
        }
        return callgrind_total(out);
}

static void scen_callgrind(void) {
        double ir0, irn;

        if (system("valgrind --version >/dev/null 2>&1") != 0) {
                report_error("callgrind: valgrind not found (Debian: apt-get install valgrind)");
                return;
        }
        ir0 = callgrind_run(0);
        irn = callgrind_run(o.cg_count);
        if (ir0 < 0 || irn < 0) {
                report_error("callgrind: no instruction count in the profile");
                return;
        }
        report_add(report_row("callgrind", "instructions/msg (pubsub)", "Ir", false), SYS_IPCD,
                   (irn - ir0) / (double)o.cg_count);
}

/* ---- the run ---- */

static void start_servers(void) {
        IpcdOptions io = { .path = o.ipcd };

        if (server_start_ipcd(&servers[SYS_IPCD], dir, "ipcd", &io) < 0)
                bench_die("cannot start %s (--ipcd PATH names the broker to test)", o.ipcd);
        if (!o.peers)
                return;
        if (server_start_redis(&servers[SYS_REDIS], dir, o.redis) < 0)
                bench_die("cannot start %s (Debian: apt-get install redis-server)", o.redis);
        if (server_start_mosquitto(&servers[SYS_MOSQUITTO], dir, o.mosquitto) < 0)
                bench_die("cannot start %s (Debian: apt-get install mosquitto)", o.mosquitto);
        n_systems = 3;
}

static void machine(ReportInfo *info) {
        struct utsname u;
        char line[256];
        FILE *f;
        int k;

        info->nproc = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(info->cpu, sizeof(info->cpu), "?");
        f = fopen("/proc/cpuinfo", "re");
        while (f && fgets(line, sizeof(line), f)) {
                char *v = strchr(line, ':');
                if (strncmp(line, "model name", 10) == 0 && v) {
                        v += 2;
                        v[strcspn(v, "\n")] = 0;
                        snprintf(info->cpu, sizeof(info->cpu), "%s", v);
                        break;
                }
        }
        if (f)
                fclose(f);
        snprintf(info->kernel, sizeof(info->kernel), "%s", uname(&u) == 0 ? u.release : "?");
        for (k = 0; k < (o.peers ? _SYS_MAX : 1); k++)
                server_version(k, k == SYS_IPCD ? o.ipcd : k == SYS_REDIS ? o.redis : o.mosquitto,
                               info->version[k], sizeof(info->version[k]));
}

/* The program's name as the user runs it: libtool's wrapper runs
 * .libs/lt-NAME or .libs/NAME. */
static const char *program_name(const char *argv0, char *buf, size_t cap) {
        char *libs;

        snprintf(buf, cap, "%s", argv0);
        libs = strstr(buf, ".libs/");
        if (libs) {
                const char *rest = libs + 6;
                if (strncmp(rest, "lt-", 3) == 0)
                        rest += 3;
                memmove(libs, rest, strlen(rest) + 1);
        }
        return buf;
}

int main(int argc, char **argv) {
        char rerun[16384], settings[768], prog[PATH_MAX], ipcd_abs[PATH_MAX];
        ReportInfo info = { 0 };
        struct rlimit rl;
        uint64_t max_bulk = 0;
        int rep, k, i;

        parse_args(argc, argv);
        cleanup_install();
        /* Idle connections take a descriptor each, here and in the broker
         * (which raises its own soft limit to the hard one it inherits). */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (o.only[SC_CONNS] && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < o.conns + 100) {
                bench_log("conns: RLIMIT_NOFILE is %llu: %llu connections instead of %llu",
                          (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_cur - 100,
                          (unsigned long long)o.conns);
                o.conns = rl.rlim_cur - 100;
        }
        if (!mkdtemp(dir))
                bench_die("mkdtemp: %s", strerror(errno));
        cleanup_set_dir(dir);

        for (i = 0; o.only[SC_BULK] && i < o.n_bulk; i++)
                if (o.bulk[i] > max_bulk)
                        max_bulk = o.bulk[i];
        if (max_bulk) {
                bulk_data = malloc((size_t)max_bulk);
                if (!bulk_data)
                        bench_die("out of memory for %llu bytes", (unsigned long long)max_bulk);
                fill_pattern(bulk_data, (size_t)max_bulk, 1);
        }

        layout();
        start_servers();
        machine(&info);

        /* One scenario after the other; within one, the systems take turns
         * every repetition, so that a slow spell of the machine touches
         * them alike. */
        if (o.only[SC_LIMIT])
                for (rep = 0; rep < o.reps; rep++)
                        scen_limit(rep);
        if (o.only[SC_RR])
                for (rep = 0; rep < o.reps; rep++)
                        for (k = 0; k < n_systems; k++)
                                scen_rr(rep, systems_all[k]);
        if (o.only[SC_PUBSUB])
                for (rep = 0; rep < o.reps; rep++)
                        for (k = 0; k < n_systems; k++)
                                scen_pubsub(rep, systems_all[k]);
        for (i = 0; o.only[SC_FANOUT] && i < o.n_fanout; i++)
                for (rep = 0; rep < o.reps; rep++)
                        for (k = 0; k < n_systems; k++)
                                scen_fan(systems_all[k], 1, o.fanout[i]);
        if (o.only[SC_FANIN])
                for (rep = 0; rep < o.reps; rep++)
                        for (k = 0; k < n_systems; k++)
                                scen_fan(systems_all[k], o.fanin, 1);
        if (o.only[SC_BULK])
                for (rep = 0; rep < o.reps; rep++)
                        for (k = 0; k < n_systems; k++)
                                scen_bulk(rep, systems_all[k]);
        if (o.only[SC_CONNS])
                for (rep = 0; rep < o.reps; rep++)
                        scen_conns(rep);
        if (o.only[SC_CALLGRIND])
                scen_callgrind();

        for (k = 0; k < _SYS_MAX; k++)
                server_stop(&servers[k]);
        cleanup_run();

        snprintf(rerun, sizeof(rerun),
                 "%s --ipcd %s --only %s%s --reps %d --count %llu --size %llu --window %llu --batch %u "
                 "--fanout %s --fanin %d --sub-procs %d --rr-count %llu --warmup %llu --bulk-sizes %s "
                 "--bulk-msgs %d --cpu-count %llu --conns %llu --callgrind-count %llu",
                 program_name(argv[0], prog, sizeof(prog)),
                 strchr(o.ipcd, '/') && realpath(o.ipcd, ipcd_abs) ? ipcd_abs : o.ipcd, o.only_arg,
                 o.peers ? " --peers" : "", o.reps, (unsigned long long)o.count,
                 (unsigned long long)o.size, (unsigned long long)o.window, o.batch, o.fanout_arg,
                 o.fanin, o.sub_procs, (unsigned long long)o.rr_count, (unsigned long long)o.warmup,
                 o.bulk_arg, o.bulk_msgs, (unsigned long long)o.cpu_count, (unsigned long long)o.conns,
                 (unsigned long long)o.cg_count);
        snprintf(settings, sizeof(settings),
                 "%d repetitions; rr: %llu round trips of %llu B after %llu; streams: %llu deliveries of "
                 "%llu B, window %llu, ipcd batches MORE + flush every %u; bulk: %d messages per size; "
                 "conns: %llu",
                 o.reps, (unsigned long long)o.rr_count, (unsigned long long)o.size,
                 (unsigned long long)o.warmup, (unsigned long long)o.count, (unsigned long long)o.size,
                 (unsigned long long)o.window, o.batch, o.bulk_msgs, (unsigned long long)o.conns);
        info.peers = o.peers;
        info.rerun = rerun;
        info.settings = settings;
        report_print(&info, o.json);
        free(bulk_data);
        return report_n_errors() ? 1 : 0;
}
