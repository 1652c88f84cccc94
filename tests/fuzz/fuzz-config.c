/* SPDX-License-Identifier: MIT */
/*
 * The configuration loader (daemon/conf.c) on arbitrary bytes, through
 * config_load_string(), the same parser config_load() runs on a file's
 * contents. A file either loads into a Config that keeps every promise
 * conf.h and ipcd.yaml(5) make (ranges, relations between limits, valid
 * filters, sorted types, usable socket paths), or is refused with one
 * printable line that names the file, line and column: the text a client
 * gets back from ADMIN reload. Either way nothing may leak (LeakSanitizer).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <syslog.h>

#include "conf.h"
#include "fuzz.h"
#include "topicname.h"

#define NAME "fuzz.yaml"

static void check_filter(const char *f, const char *what) {
        FUZZ_CHECK(f && topic_filter_check(f, strlen(f), 65535) == TOPIC_OK,
                   "%s '%s' is not a valid filter", what, f ? f : "(null)");
}

static void check_strv(char *const *v, size_t n, const char *what) {
        size_t i;
        FUZZ_CHECK(n == 0 || v, "%s: %zu entries and no array", what, n);
        for (i = 0; i < n; i++)
                check_filter(v[i], what);
}

static void check_names(char *const *names, size_t n, const char *what) {
        size_t i;
        for (i = 0; i < n; i++) {
                FUZZ_CHECK(names[i] && *names[i], "%s[%zu] is empty", what, i);
                FUZZ_CHECK(utf8_printable(names[i], strlen(names[i])) && !strpbrk(names[i], " :/,"),
                           "%s[%zu] '%s' is no valid name", what, i, names[i]);
        }
}

/* The first rule whose pattern matches, by the matcher itself. */
static const ConfigTopicRule *first_rule(const Config *c, const char *topic) {
        size_t i;
        for (i = 0; i < c->n_topics; i++)
                if (topic_filter_match(c->topics[i].pattern, strlen(c->topics[i].pattern), topic,
                                       strlen(topic)))
                        return &c->topics[i];
        return NULL;
}

static void check_config(const Config *c) {
        const ConfigLimits *l = &c->limits;
        static const char *const probes[] = { "a", "a/b", "sensors/temp", "$SYS/broker/stats", "/",
                                              "x/y/z" };
        size_t i, j;

        FUZZ_CHECK(c->path && strcmp(c->path, NAME) == 0, "path '%s'", c->path ? c->path : "");

        /* ipcd.yaml(5): the ranges of the limits ... */
        FUZZ_CHECK(l->max_connections >= 1 && l->max_connections_per_user >= 1 &&
                           l->max_subscriptions >= 1 && l->queue_messages >= 1 &&
                           l->max_pending_requests >= 1 && l->max_topics >= 1,
                   "a count limit of 0");
        FUZZ_CHECK(l->max_payload >= 1 && l->max_payload <= CONFIG_MAX_PAYLOAD_LIMIT,
                   "max_payload %u", l->max_payload);
        FUZZ_CHECK(l->max_topic_length >= 1 && l->max_topic_length <= CONFIG_MAX_TOPIC_LENGTH_LIMIT,
                   "max_topic_length %u", l->max_topic_length);
        FUZZ_CHECK(l->max_fds_per_message <= CONFIG_MAX_FDS_PER_MESSAGE_LIMIT,
                   "max_fds_per_message %u", l->max_fds_per_message);
        FUZZ_CHECK(l->queue_bytes >= 4096 && l->user_queue_bytes >= 4096, "queue bytes below 4 KiB");
        FUZZ_CHECK(l->request_timeout_ms >= 1 && l->request_timeout_ms <= 3600 * 1000,
                   "request_timeout %llu ms", (unsigned long long)l->request_timeout_ms);
        /* ... and how they relate. */
        FUZZ_CHECK(l->bulk_threshold <= l->max_payload && l->bulk_threshold < l->max_bulk_size,
                   "bulk_threshold %llu", (unsigned long long)l->bulk_threshold);
        FUZZ_CHECK(l->max_payload <= l->queue_bytes && l->max_payload <= l->user_queue_bytes,
                   "max_payload %u above a queue", l->max_payload);
        FUZZ_CHECK(l->max_fds_per_message <= l->queue_fds && l->max_fds_per_message <= l->user_fds,
                   "max_fds_per_message %u above a queue", l->max_fds_per_message);

        FUZZ_CHECK(c->log_level >= LOG_ERR && c->log_level <= LOG_DEBUG, "log level %d", c->log_level);
        FUZZ_CHECK((unsigned)c->log_target < _LOG_TARGET_MAX, "log target %d", c->log_target);
        FUZZ_CHECK(config_log_level_name(c->log_level) != NULL, "no name for log level %d",
                   c->log_level);

        FUZZ_CHECK(c->n_listen == 0 || c->listen, "listen entries without an array");
        for (i = 0; i < c->n_listen; i++) {
                const ConfigListen *s = &c->listen[i];
                FUZZ_CHECK(s->path && s->path[0] == '/' &&
                                   strlen(s->path) < sizeof(((struct sockaddr_un *)0)->sun_path) &&
                                   utf8_printable(s->path, strlen(s->path)),
                           "listen[%zu].path '%s'", i, s->path ? s->path : "(null)");
                FUZZ_CHECK(s->mode <= 0777, "listen[%zu].mode 0%o", i, (unsigned)s->mode);
                FUZZ_CHECK(!s->has_group || s->group_name, "listen[%zu] group without a name", i);
                for (j = 0; j < i; j++)
                        FUZZ_CHECK(strcmp(c->listen[j].path, s->path) != 0, "listen path '%s' twice",
                                   s->path);
        }

        FUZZ_CHECK(c->n_topics == 0 || c->topics, "topic rules without an array");
        for (i = 0; i < c->n_topics; i++) {
                const ConfigTopicRule *t = &c->topics[i];
                check_filter(t->pattern, "topics[].pattern");
                for (j = 0; j < i; j++)
                        FUZZ_CHECK(strcmp(c->topics[j].pattern, t->pattern) != 0,
                                   "pattern '%s' twice", t->pattern);
                FUZZ_CHECK(t->n_types == 0 || t->types, "types without an array");
                for (j = 1; j < t->n_types; j++)
                        FUZZ_CHECK(t->types[j - 1] < t->types[j], "topics[%zu].types not sorted and unique",
                                   i);
                FUZZ_CHECK((unsigned)t->overflow < _OVERFLOW_MAX &&
                                   overflow_policy_name(t->overflow) != NULL,
                           "topics[%zu].overflow %d", i, t->overflow);
                FUZZ_CHECK(t->max_payload <= l->max_payload, "topics[%zu].max_payload %u above the limit",
                           i, t->max_payload);
                FUZZ_CHECK(t->max_fds >= -1 && (t->max_fds < 0 || (uint32_t)t->max_fds <= l->max_fds_per_message),
                           "topics[%zu].max_fds %d", i, (int)t->max_fds);
        }
        for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
                FUZZ_CHECK(config_topic_rule(c, probes[i], strlen(probes[i])) == first_rule(c, probes[i]),
                           "config_topic_rule('%s') is not the first matching rule", probes[i]);

        FUZZ_CHECK(c->n_access == 0 || c->access, "access rules without an array");
        for (i = 0; i < c->n_access; i++) {
                const ConfigAccessRule *a = &c->access[i];
                FUZZ_CHECK(a->n_users == 0 || (a->user_names && a->uids), "users without arrays");
                FUZZ_CHECK(a->n_groups == 0 || (a->group_names && a->gids), "groups without arrays");
                check_names(a->user_names, a->n_users, "users");
                check_names(a->group_names, a->n_groups, "groups");
                check_strv(a->publish, a->n_publish, "publish");
                check_strv(a->subscribe, a->n_subscribe, "subscribe");
                check_strv(a->request, a->n_request, "request");
        }
}

/* "NAME:LINE:COLUMN: ..." (or "NAME: ..." for errors not at a place), one
 * printable line. */
static void check_error(int r, const char *error) {
        size_t n = strlen(NAME);

        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM || r == -ENOENT, "config_load_string returned %d", r);
        if (r == -ENOMEM && !error)
                return;
        FUZZ_CHECK(error, "refused (%d) without a message", r);
        FUZZ_CHECK(strncmp(error, NAME ":", n + 1) == 0, "the message does not start with the file name: %s",
                   error);
        FUZZ_CHECK(utf8_printable(error, strlen(error)), "the message is no printable UTF-8 line: %s",
                   error);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config *c = NULL;
        char *error = NULL;
        int r;

        r = config_load_string(NAME, data, size, &c, &error);
        if (r == 0) {
                FUZZ_CHECK(c && !error, "loaded, but no Config or an error message");
                check_config(c);
                config_free(c);
        } else {
                FUZZ_CHECK(!c, "refused, but *ret was set");
                check_error(r, error);
                free(error);
        }
        return 0;
}
