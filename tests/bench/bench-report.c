/* SPDX-License-Identifier: MIT */
/*
 * ipcd-bench: the results. Each figure is a list of per-repetition values
 * per column (ipcd, redis, mosquitto, limit); printed as the median with
 * the minimum and maximum, and the ratios of ipcd's median to the others'.
 * The targets of the project are judged from the same rows.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_ROWS 256
#define MAX_ERRORS 64

typedef struct Column {
        double v[BENCH_MAX_REPS];
        int n;
        char na[96]; /* why it does not apply, "" if it does */
} Column;

struct Row {
        char scenario[32];
        char metric[48];
        char unit[16];
        bool higher_better;
        Column col[_COL_MAX];
};

static Row rows[MAX_ROWS];
static int n_rows;
static char errors[MAX_ERRORS][320];
static int n_errors;

static const char *const col_name[_COL_MAX] = { "ipcd", "redis", "mosquitto", "limit" };

Row *report_row(const char *scenario, const char *metric, const char *unit, bool higher_better) {
        Row *r;
        int i;

        for (i = 0; i < n_rows; i++)
                if (strcmp(rows[i].scenario, scenario) == 0 && strcmp(rows[i].metric, metric) == 0)
                        return &rows[i];
        if (n_rows == MAX_ROWS)
                bench_die("too many result rows");
        r = &rows[n_rows++];
        snprintf(r->scenario, sizeof(r->scenario), "%s", scenario);
        snprintf(r->metric, sizeof(r->metric), "%s", metric);
        snprintf(r->unit, sizeof(r->unit), "%s", unit);
        r->higher_better = higher_better;
        return r;
}

static Row *find_row(const char *scenario, const char *metric) {
        int i;

        for (i = 0; i < n_rows; i++)
                if (strcmp(rows[i].scenario, scenario) == 0 && strcmp(rows[i].metric, metric) == 0)
                        return &rows[i];
        return NULL;
}

void report_add(Row *r, int col, double v) {
        Column *c = &r->col[col];

        if (c->n < BENCH_MAX_REPS)
                c->v[c->n++] = v;
        if (bench_verbose)
                bench_log("  %s | %s | %s: %g %s", r->scenario, r->metric, col_name[col], v, r->unit);
}

void report_na(Row *r, int col, const char *why) {
        snprintf(r->col[col].na, sizeof(r->col[col].na), "%s", why);
}

void report_error(const char *fmt, ...) {
        char buf[320];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        bench_log("ERROR: %s", buf);
        if (n_errors < MAX_ERRORS)
                snprintf(errors[n_errors], sizeof(errors[0]), "%s", buf);
        n_errors++;
}

int report_n_errors(void) {
        return n_errors;
}

/* Median, minimum, maximum of a column; false when it has no value. */
static bool stats(const Column *c, double *med, double *lo, double *hi) {
        int i;

        if (c->n == 0)
                return false;
        *med = median_of(c->v, (size_t)c->n);
        *lo = *hi = c->v[0];
        for (i = 1; i < c->n; i++) {
                if (c->v[i] < *lo)
                        *lo = c->v[i];
                if (c->v[i] > *hi)
                        *hi = c->v[i];
        }
        return true;
}

static bool median(const Row *r, int col, double *ret) {
        double lo, hi;

        return r && stats(&r->col[col], ret, &lo, &hi);
}

/* A number in few characters: 4.02M, 812k, 25.3, 0.61. */
static const char *num(double v, char *buf, size_t cap) {
        double a = v < 0 ? -v : v;

        if (a >= 1e9)
                snprintf(buf, cap, "%.2fG", v / 1e9);
        else if (a >= 1e6)
                snprintf(buf, cap, "%.2fM", v / 1e6);
        else if (a >= 1e5)
                snprintf(buf, cap, "%.0fk", v / 1e3);
        else if (a >= 100)
                snprintf(buf, cap, "%.0f", v);
        else if (a >= 10)
                snprintf(buf, cap, "%.1f", v);
        else if (a >= 0.1 || a == 0)
                snprintf(buf, cap, "%.2f", v);
        else
                snprintf(buf, cap, "%.3f", v);
        return buf;
}

static const char *cell(const Row *r, int col, bool spread, char *buf, size_t cap) {
        const Column *c = &r->col[col];
        double med, lo, hi;
        char a[16], b[16], d[16];

        if (!stats(c, &med, &lo, &hi))
                snprintf(buf, cap, "%s", c->na[0] ? "n/a" : "-");
        else if (spread && c->n > 1)
                snprintf(buf, cap, "%s (%s-%s)", num(med, a, sizeof(a)), num(lo, b, sizeof(b)),
                         num(hi, d, sizeof(d)));
        else
                snprintf(buf, cap, "%s", num(med, a, sizeof(a)));
        return buf;
}

static const char *ratio(const Row *r, int col, char *buf, size_t cap) {
        double x, y;

        if (!median(r, SYS_IPCD, &x) || !median(r, col, &y) || y == 0)
                snprintf(buf, cap, "-");
        else if (x / y >= 1000)
                snprintf(buf, cap, "%.0fx", x / y);
        else if (x / y < 0.001)
                snprintf(buf, cap, "<0.001x");
        else
                snprintf(buf, cap, "%.3gx", x / y);
        return buf;
}

/* ---- targets ---- */

typedef struct Target {
        char what[128];
        char value[64];
        int held; /* 1, 0, or -1: not measured in this run */
} Target;

static Target targets[32];
static int n_targets;

static void target(const char *what, int held, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void target(const char *what, int held, const char *fmt, ...) {
        Target *t;
        va_list ap;

        if (n_targets == (int)(sizeof(targets) / sizeof(targets[0])))
                return;
        t = &targets[n_targets++];
        snprintf(t->what, sizeof(t->what), "%s", what);
        t->held = held;
        va_start(ap, fmt);
        vsnprintf(t->value, sizeof(t->value), fmt, ap);
        va_end(ap);
}

/* ipcd's median over column @col's, when both exist. */
static bool ratio_of(const char *scenario, const char *metric, int col, double *ret) {
        const Row *r = find_row(scenario, metric);
        double x, y;

        if (!median(r, SYS_IPCD, &x) || !median(r, col, &y) || y == 0)
                return false;
        *ret = x / y;
        return true;
}

static void judge(bool peers) {
        static const char *const streams[][2] = {
                { "pubsub", "msg/s" },
                { "fanout-10", "deliveries/s" },
                { "fanout-100", "deliveries/s" },
        };
        static const char *const sizes[] = { "1 MiB", "16 MiB", "64 MiB", "256 MiB" };
        static const char *const cpu[] = { "broker CPU/msg (publish)", "broker CPU/msg (publish_memfd)" };
        char what[128];
        double v;
        size_t i, k;

        n_targets = 0;
        if (ratio_of("rr", "p50", COL_LIMIT, &v))
                target("rr p50 <= 2.5x the AF_UNIX round trip", v <= 2.5, "%.2fx", v);
        else
                target("rr p50 <= 2.5x the AF_UNIX round trip", -1, "not measured");
        for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
                snprintf(what, sizeof(what), "%s %s >= 2x Redis", streams[i][0], streams[i][1]);
                if (peers && ratio_of(streams[i][0], streams[i][1], SYS_REDIS, &v))
                        target(what, v >= 2, "%.2fx", v);
                else
                        target(what, -1, "not measured");
                snprintf(what, sizeof(what), "%s %s >= 3x Mosquitto", streams[i][0], streams[i][1]);
                if (peers && ratio_of(streams[i][0], streams[i][1], SYS_MOSQUITTO, &v))
                        target(what, v >= 3, "%.2fx", v);
                else
                        target(what, -1, "not measured");
        }
        /* Redis has one way to publish: ipcd's two against it. */
        for (i = 0; i < 2; i++) {
                const char *m = i == 0 ? "publish_memfd: delivered" : "publish: delivered";
                double x, y;

                snprintf(what, sizeof(what), "bulk 64 MiB %s >= 20x faster than Redis", m);
                if (peers && median(find_row("bulk 64 MiB", m), SYS_IPCD, &x) &&
                    median(find_row("bulk 64 MiB", "publish: delivered"), SYS_REDIS, &y) && x > 0)
                        target(what, y / x >= 20, "%.1fx faster", y / x);
                else
                        target(what, -1, "not measured");
        }
        for (k = 0; k < 2; k++) {
                double lo = 0, hi = 0;
                int n = 0;

                for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                        char sc[32];

                        snprintf(sc, sizeof(sc), "bulk %s", sizes[i]);
                        if (!median(find_row(sc, cpu[k]), SYS_IPCD, &v))
                                continue;
                        if (n == 0 || v < lo)
                                lo = v;
                        if (n == 0 || v > hi)
                                hi = v;
                        n++;
                }
                snprintf(what, sizeof(what), "%s flat from 1 to 256 MiB (max/min <= 2)", cpu[k]);
                if (n >= 2 && lo > 0)
                        target(what, hi / lo <= 2, "%.2f-%.2f us, max/min %.2f", lo, hi, hi / lo);
                else
                        target(what, -1, "not measured");
        }
        if (median(find_row("conns", "broker RSS/connection"), SYS_IPCD, &v))
                target("conns <= 4 KiB of broker memory per idle connection", v <= 4096, "%.0f B", v);
        else
                target("conns <= 4 KiB of broker memory per idle connection", -1, "not measured");
        target("no message lost or out of order", n_errors == 0, "%d error(s)", n_errors);
}

/* ---- output ---- */

static void json_str(const char *s) {
        putchar('"');
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\')
                        printf("\\%c", ch);
                else if (ch < 0x20)
                        printf("\\u%04x", ch);
                else
                        putchar(ch);
        }
        putchar('"');
}

static void json_num(double v) {
        if (isfinite(v))
                printf("%.6g", v);
        else
                printf("null");
}

static void json_column(const Column *c) {
        double med, lo, hi;
        int i;

        if (!stats(c, &med, &lo, &hi)) {
                if (c->na[0]) {
                        printf("{\"na\": ");
                        json_str(c->na);
                        printf("}");
                } else
                        printf("null");
                return;
        }
        printf("{\"median\": ");
        json_num(med);
        printf(", \"min\": ");
        json_num(lo);
        printf(", \"max\": ");
        json_num(hi);
        printf(", \"samples\": [");
        for (i = 0; i < c->n; i++) {
                printf(i ? ", " : "");
                json_num(c->v[i]);
        }
        printf("]}");
}

static void print_json(const ReportInfo *info) {
        int i, k;

        printf("{\n  \"machine\": {\"nproc\": %ld, \"cpu\": ", info->nproc);
        json_str(info->cpu);
        printf(", \"kernel\": ");
        json_str(info->kernel);
        for (k = 0; k < _SYS_MAX; k++) {
                if (k != SYS_IPCD && !info->peers)
                        continue;
                printf(", \"%s\": ", col_name[k]);
                json_str(info->version[k]);
        }
        printf("},\n  \"settings\": ");
        json_str(info->settings);
        printf(",\n  \"results\": [\n");
        for (i = 0; i < n_rows; i++) {
                const Row *r = &rows[i];
                double v;

                printf("    {\"scenario\": ");
                json_str(r->scenario);
                printf(", \"metric\": ");
                json_str(r->metric);
                printf(", \"unit\": ");
                json_str(r->unit);
                printf(", \"better\": \"%s\"", r->higher_better ? "higher" : "lower");
                for (k = 0; k < _COL_MAX; k++) {
                        if ((k == SYS_REDIS || k == SYS_MOSQUITTO) && !info->peers)
                                continue;
                        printf(", \"%s\": ", col_name[k]);
                        json_column(&r->col[k]);
                }
                for (k = 1; k < _COL_MAX; k++) {
                        if ((k == SYS_REDIS || k == SYS_MOSQUITTO) && !info->peers)
                                continue;
                        if (ratio_of(r->scenario, r->metric, k, &v)) {
                                printf(", \"ipcd/%s\": ", col_name[k]);
                                json_num(v);
                        }
                }
                printf("}%s\n", i + 1 < n_rows ? "," : "");
        }
        printf("  ],\n  \"targets\": [\n");
        for (i = 0; i < n_targets; i++) {
                printf("    {\"target\": ");
                json_str(targets[i].what);
                printf(", \"held\": %s, \"value\": ",
                       targets[i].held < 0 ? "null" : targets[i].held ? "true" : "false");
                json_str(targets[i].value);
                printf("}%s\n", i + 1 < n_targets ? "," : "");
        }
        printf("  ],\n  \"errors\": [");
        for (i = 0; i < n_errors && i < MAX_ERRORS; i++) {
                printf(i ? ",\n    " : "\n    ");
                json_str(errors[i]);
        }
        printf("%s],\n  \"rerun\": ", n_errors ? "\n  " : "");
        json_str(info->rerun);
        printf("\n}\n");
}

/* Prints a table line without the padding its last column leaves. */
static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...) {
        char buf[512];
        size_t n;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == ' ')
                buf[--n] = 0;
        puts(buf);
}

static void print_table(const ReportInfo *info) {
        char a[64], b[64], c[64], d[64], e[64], f[64], g[64];
        const char *last = "";
        int i;

        printf("ipcd-bench: %ld CPUs (%s), Linux %s; ipcd %s", info->nproc, info->cpu, info->kernel,
               info->version[SYS_IPCD]);
        if (info->peers)
                printf(", redis %s, mosquitto %s", info->version[SYS_REDIS],
                       info->version[SYS_MOSQUITTO]);
        printf("\n%s\n", info->settings);
        printf("median (min-max) over the repetitions; ratios are ipcd's median / the other's median\n\n");
        if (info->peers)
                line("%-12s %-31s %-6s %-23s %-8s %-10s %-23s %-23s %-10s %-10s", "scenario", "metric",
                     "unit", "ipcd (min-max)", "limit", "ipcd/limit", "redis (min-max)",
                     "mosquitto (min-max)", "ipcd/redis", "ipcd/mosq");
        else
                line("%-12s %-31s %-6s %-23s %-8s %-10s", "scenario", "metric", "unit",
                     "ipcd (min-max)", "limit", "ipcd/limit");
        for (i = 0; i < n_rows; i++) {
                const Row *r = &rows[i];
                const char *sc = strcmp(last, r->scenario) ? r->scenario : "";

                if (info->peers)
                        line("%-12s %-31s %-6s %-23s %-8s %-10s %-23s %-23s %-10s %-10s", sc,
                             r->metric, r->unit, cell(r, SYS_IPCD, true, a, sizeof(a)),
                             cell(r, COL_LIMIT, false, b, sizeof(b)), ratio(r, COL_LIMIT, c, sizeof(c)),
                             cell(r, SYS_REDIS, true, d, sizeof(d)),
                             cell(r, SYS_MOSQUITTO, true, e, sizeof(e)),
                             ratio(r, SYS_REDIS, f, sizeof(f)), ratio(r, SYS_MOSQUITTO, g, sizeof(g)));
                else
                        line("%-12s %-31s %-6s %-23s %-8s %-10s", sc, r->metric, r->unit,
                             cell(r, SYS_IPCD, true, a, sizeof(a)),
                             cell(r, COL_LIMIT, false, b, sizeof(b)), ratio(r, COL_LIMIT, c, sizeof(c)));
                last = r->scenario;
        }
        /* Each reason for an n/a once. */
        for (i = 0; i < n_rows; i++) {
                int k, j;

                for (k = 0; k < _COL_MAX; k++) {
                        const char *why = rows[i].col[k].na;
                        bool seen = false;

                        if (rows[i].col[k].n > 0 || !why[0] ||
                            (!info->peers && (k == SYS_REDIS || k == SYS_MOSQUITTO)))
                                continue;
                        for (j = 0; j < i && !seen; j++)
                                seen = strcmp(rows[j].col[k].na, why) == 0;
                        if (!seen)
                                printf("  n/a %s: %s\n", col_name[k], why);
                }
        }
        printf("\ntargets (those this run measured):\n");
        for (i = 0; i < n_targets; i++)
                if (targets[i].held >= 0)
                        printf("  %-7s %-66s %s\n", targets[i].held ? "held" : "FAILED",
                               targets[i].what, targets[i].value);
        if (n_errors) {
                printf("\nerrors:\n");
                for (i = 0; i < n_errors && i < MAX_ERRORS; i++)
                        printf("  %s\n", errors[i]);
        }
        printf("\nrerun: %s\n", info->rerun);
}

void report_print(const ReportInfo *info, bool json) {
        judge(info->peers);
        if (json)
                print_json(info);
        else
                print_table(info);
}
