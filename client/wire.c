/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

/* What each kind may carry. meta: exact meta length, or -1 for "any"
 * (reserved kinds). topic: 1 required, 0 forbidden, -1 optional. */
typedef struct KindRule {
        const char *name;
        uint16_t flags;
        int16_t meta;
        int8_t topic;
        bool fds;
} KindRule;

static const KindRule kind_rules[_WIRE_KIND_MAX + 1] = {
        [WIRE_HELLO] = { "HELLO", 0, WIRE_META_HELLO, 0, false },
        [WIRE_WELCOME] = { "WELCOME", 0, WIRE_META_WELCOME, 0, false },
        [WIRE_SUBSCRIBE] = { "SUBSCRIBE", 0, WIRE_META_SUBSCRIBE, 1, false },
        [WIRE_UNSUBSCRIBE] = { "UNSUBSCRIBE", 0, WIRE_META_UNSUBSCRIBE, 0, false },
        [WIRE_ACK] = { "ACK", 0, 0, 0, false },
        [WIRE_PUBLISH] = { "PUBLISH", WIRE_F_RETAIN | WIRE_F_BULK | WIRE_F_ACK, 0, 1, true },
        [WIRE_MESSAGE] = { "MESSAGE", WIRE_F_RETAIN | WIRE_F_BULK, WIRE_META_MESSAGE, 1, true },
        [WIRE_ERROR] = { "ERROR", WIRE_F_FATAL, WIRE_META_ERROR, 0, false },
        [WIRE_PING] = { "PING", 0, 0, 0, false },
        [WIRE_PONG] = { "PONG", 0, 0, 0, false },
        /* Their meta differs by direction: the receiver checks it. */
        [WIRE_REQUEST] = { "REQUEST", WIRE_F_BULK, -1, 1, true },
        [WIRE_REPLY] = { "REPLY", WIRE_F_BULK, -1, -1, true },
        [WIRE_ADMIN] = { "ADMIN", 0, 0, 1, false },
        [WIRE_ADMIN_REPLY] = { "ADMIN_REPLY", 0, 0, 0, false },
        [WIRE_GOODBYE] = { "GOODBYE", 0xffff, -1, -1, false },
};

const char *wire_kind_name(unsigned kind) {
        if (kind == 0 || kind > _WIRE_KIND_MAX)
                return "UNKNOWN";
        return kind_rules[kind].name;
}

WireError wire_header_decode(const uint8_t *buf, const WireLimits *limits, WireHeader *ret,
                             const char **ret_why) {
        WireHeader h = {
                .size = le32_read(buf + WIRE_OFF_SIZE),
                .version = buf[WIRE_OFF_VERSION],
                .kind = buf[WIRE_OFF_KIND],
                .flags = le16_read(buf + WIRE_OFF_FLAGS),
                .type = le32_read(buf + WIRE_OFF_TYPE),
                .payload_len = le32_read(buf + WIRE_OFF_PAYLOAD_LEN),
                .topic_len = le16_read(buf + WIRE_OFF_TOPIC_LEN),
                .n_fds = buf[WIRE_OFF_N_FDS],
                .meta_len = buf[WIRE_OFF_META_LEN],
                .reserved = le32_read(buf + WIRE_OFF_RESERVED),
                .corr = le64_read(buf + WIRE_OFF_CORR),
        };
        const char *why_dummy;
        const KindRule *rule;
        uint64_t sum;

        if (!ret_why)
                ret_why = &why_dummy;

        if (h.version != WIRE_VERSION) {
                *ret_why = "unsupported protocol version (this broker speaks version 1)";
                return WIRE_E_VERSION;
        }
        if (h.kind == 0 || h.kind > _WIRE_KIND_MAX) {
                *ret_why = "unknown frame kind";
                return WIRE_E_KIND;
        }
        rule = &kind_rules[h.kind];
        if (h.reserved != 0) {
                *ret_why = "reserved header field is not zero";
                return WIRE_E_MALFORMED;
        }
        if (h.flags & ~rule->flags) {
                *ret_why = "flag not defined for this frame kind";
                return WIRE_E_MALFORMED;
        }
        sum = (uint64_t)WIRE_HEADER_SIZE + h.meta_len + h.topic_len + h.payload_len;
        if (sum != h.size) {
                *ret_why = "frame size does not equal header + meta + topic + payload";
                return WIRE_E_MALFORMED;
        }
        if (h.kind == WIRE_PUBLISH) {
                unsigned want = (h.flags & WIRE_F_BULK) ? WIRE_META_PUBLISH_BULK : 0;
                if (h.meta_len != want) {
                        *ret_why = "PUBLISH meta length must be 8 with the bulk flag and 0 without";
                        return WIRE_E_MALFORMED;
                }
        } else if (rule->meta >= 0 && h.meta_len != rule->meta) {
                *ret_why = "meta length is wrong for this frame kind";
                return WIRE_E_MALFORMED;
        }
        if (rule->topic == 0 && h.topic_len != 0) {
                *ret_why = "this frame kind carries no topic";
                return WIRE_E_MALFORMED;
        }
        if (rule->topic == 1 && h.topic_len == 0) {
                *ret_why = "this frame kind needs a topic";
                return WIRE_E_MALFORMED;
        }
        if (h.n_fds > 0 && !rule->fds) {
                *ret_why = "this frame kind carries no file descriptors";
                return WIRE_E_FDS;
        }
        if ((h.flags & WIRE_F_BULK) && h.n_fds == 0) {
                *ret_why = "bulk frame without its memfd";
                return WIRE_E_FDS;
        }
        if (limits) {
                if (h.topic_len > limits->max_topic_len) {
                        *ret_why = "topic longer than the broker's limit";
                        return WIRE_E_TOO_LARGE;
                }
                if (h.payload_len > limits->max_payload) {
                        *ret_why = "payload longer than the broker's limit";
                        return WIRE_E_TOO_LARGE;
                }
                if (h.n_fds > limits->max_fds) {
                        *ret_why = "more file descriptors than the per-message limit";
                        return WIRE_E_TOO_LARGE;
                }
        }

        *ret = h;
        *ret_why = NULL;
        return WIRE_E_OK;
}

void wire_header_encode(uint8_t *buf, const WireHeader *h) {
        le32_write(buf + WIRE_OFF_SIZE, h->size);
        buf[WIRE_OFF_VERSION] = h->version;
        buf[WIRE_OFF_KIND] = h->kind;
        le16_write(buf + WIRE_OFF_FLAGS, h->flags);
        le32_write(buf + WIRE_OFF_TYPE, h->type);
        le32_write(buf + WIRE_OFF_PAYLOAD_LEN, h->payload_len);
        le16_write(buf + WIRE_OFF_TOPIC_LEN, h->topic_len);
        buf[WIRE_OFF_N_FDS] = h->n_fds;
        buf[WIRE_OFF_META_LEN] = h->meta_len;
        le32_write(buf + WIRE_OFF_RESERVED, h->reserved);
        le64_write(buf + WIRE_OFF_CORR, h->corr);
}

size_t wire_frame_encode(uint8_t *buf, size_t cap, uint8_t kind, uint16_t flags, uint32_t type,
                         uint64_t corr, uint8_t n_fds, const void *meta, size_t meta_len,
                         const void *topic, size_t topic_len, const void *payload,
                         size_t payload_len) {
        WireHeader h;
        uint64_t size = (uint64_t)WIRE_HEADER_SIZE + meta_len + topic_len + payload_len;
        uint8_t *p;

        if (meta_len > UINT8_MAX || topic_len > UINT16_MAX || payload_len > UINT32_MAX ||
            size > UINT32_MAX || size > cap)
                return 0;

        h = (WireHeader){
                .size = (uint32_t)size,
                .version = WIRE_VERSION,
                .kind = kind,
                .flags = flags,
                .type = type,
                .payload_len = (uint32_t)payload_len,
                .topic_len = (uint16_t)topic_len,
                .n_fds = n_fds,
                .meta_len = (uint8_t)meta_len,
                .corr = corr,
        };
        wire_header_encode(buf, &h);
        p = buf + WIRE_HEADER_SIZE;
        if (meta_len)
                memcpy(p, meta, meta_len);
        p += meta_len;
        if (topic_len)
                memcpy(p, topic, topic_len);
        p += topic_len;
        if (payload_len)
                memcpy(p, payload, payload_len);
        return (size_t)size;
}

void wire_welcome_encode(uint8_t *buf, const WireWelcome *w) {
        le32_write(buf + 0, w->client_id);
        le32_write(buf + 4, w->max_payload);
        le32_write(buf + 8, w->max_topic_len);
        le32_write(buf + 12, w->max_fds);
        le32_write(buf + 16, w->max_subscriptions);
        le32_write(buf + 20, w->max_types_per_sub);
        le64_write(buf + 24, w->max_bulk_size);
        le64_write(buf + 32, w->out_queue_bytes);
}

bool wire_welcome_decode(const uint8_t *buf, WireWelcome *ret) {
        WireWelcome w = {
                .client_id = le32_read(buf + 0),
                .max_payload = le32_read(buf + 4),
                .max_topic_len = le32_read(buf + 8),
                .max_fds = le32_read(buf + 12),
                .max_subscriptions = le32_read(buf + 16),
                .max_types_per_sub = le32_read(buf + 20),
                .max_bulk_size = le64_read(buf + 24),
                .out_queue_bytes = le64_read(buf + 32),
        };
        if (w.client_id == 0 || w.max_topic_len == 0 || w.max_topic_len > UINT16_MAX)
                return false;
        *ret = w;
        return true;
}

void wire_delivery_encode(uint8_t *buf, const WireDelivery *d) {
        le32_write(buf + 0, d->sender_pid);
        le32_write(buf + 4, d->sender_uid);
        le32_write(buf + 8, d->sender_gid);
        le32_write(buf + 12, d->sub_id);
        le64_write(buf + 16, d->seq);
        le64_write(buf + 24, d->bulk_size);
}

void wire_delivery_decode(const uint8_t *buf, WireDelivery *ret) {
        *ret = (WireDelivery){
                .sender_pid = le32_read(buf + 0),
                .sender_uid = le32_read(buf + 4),
                .sender_gid = le32_read(buf + 8),
                .sub_id = le32_read(buf + 12),
                .seq = le64_read(buf + 16),
                .bulk_size = le64_read(buf + 24),
        };
}

void wire_subscribe_encode(uint8_t *buf, const WireSubscribe *s) {
        le32_write(buf + 0, s->sub_id);
        le16_write(buf + 4, s->n_types);
        buf[6] = s->group_len;
        buf[7] = s->flags;
}

void wire_subscribe_decode(const uint8_t *buf, WireSubscribe *ret) {
        *ret = (WireSubscribe){
                .sub_id = le32_read(buf + 0),
                .n_types = le16_read(buf + 4),
                .group_len = buf[6],
                .flags = buf[7],
        };
}

void wire_error_meta_encode(uint8_t *buf, uint32_t code, uint32_t ref_kind) {
        le32_write(buf + 0, code);
        le32_write(buf + 4, ref_kind);
}

static const struct {
        const char *name;
        int err;
} error_table[_WIRE_E_MAX] = {
        [WIRE_E_OK] = { "ok", 0 },
        [WIRE_E_MALFORMED] = { "malformed", EPROTO },
        [WIRE_E_VERSION] = { "version", EPROTONOSUPPORT },
        [WIRE_E_KIND] = { "bad-kind", EPROTO },
        [WIRE_E_TOO_LARGE] = { "too-large", EMSGSIZE },
        [WIRE_E_BAD_TOPIC] = { "bad-topic", EINVAL },
        [WIRE_E_BAD_FILTER] = { "bad-filter", EINVAL },
        [WIRE_E_HANDSHAKE] = { "handshake", EPROTO },
        [WIRE_E_NO_SUCH_SUB] = { "no-such-subscription", ENOENT },
        [WIRE_E_SUB_EXISTS] = { "subscription-exists", EEXIST },
        [WIRE_E_LIMIT] = { "limit", ENOBUFS },
        [WIRE_E_PERMISSION] = { "permission-denied", EACCES },
        [WIRE_E_UNSUPPORTED] = { "unsupported", EOPNOTSUPP },
        [WIRE_E_FDS] = { "bad-fds", EBADF },
        [WIRE_E_BULK] = { "bad-bulk", EBADFD },
        [WIRE_E_NO_RESPONDERS] = { "no-responders", EHOSTUNREACH },
        [WIRE_E_TIMEOUT] = { "timed-out", ETIMEDOUT },
        [WIRE_E_RESPONDER_GONE] = { "responder-gone", ECONNABORTED },
        [WIRE_E_INTERNAL] = { "internal", EIO },
        [WIRE_E_SLOW_CONSUMER] = { "slow-consumer", ENOBUFS },
        [WIRE_E_BAD_COMMAND] = { "bad-command", EINVAL },
        [WIRE_E_NO_SUCH_REQUEST] = { "no-such-request", ESRCH },
        [WIRE_E_BAD_CONFIG] = { "bad-config", EINVAL },
        [WIRE_E_KICKED] = { "kicked", ECONNRESET },
};

const char *wire_error_name(unsigned code) {
        if (code >= _WIRE_E_MAX)
                return "unknown-error";
        return error_table[code].name;
}

int wire_error_to_errno(unsigned code) {
        if (code == WIRE_E_OK)
                return 0;
        if (code >= _WIRE_E_MAX)
                return -EIO;
        return -error_table[code].err;
}

int wire_default_socket_path(char *buf, size_t cap) {
        const char *dir = getenv("RUNTIME_DIRECTORY");
        char first[4096];
        int n;

        if (dir && *dir) {
                /* systemd passes several directories separated by ':'. */
                size_t len = strcspn(dir, ":");
                if (len >= sizeof(first))
                        return -ENAMETOOLONG;
                memcpy(first, dir, len);
                first[len] = 0;
                dir = first;
        } else {
                dir = getenv("XDG_RUNTIME_DIR");
                if (!dir || !*dir)
                        dir = "/run/ipcd";
        }
        /* 108 is sizeof(sockaddr_un.sun_path) on Linux. */
        n = snprintf(buf, cap, "%s/ipcd.sock", dir);
        if (n < 0 || (size_t)n >= cap || n >= 108)
                return -ENAMETOOLONG;
        return 0;
}
