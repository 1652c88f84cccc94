/* SPDX-License-Identifier: MIT */
/*
 * ipcd_msg: a received message. While a handler runs, the message usually
 * borrows its bytes from the client's receive buffer (no allocation per
 * message); the first ipcd_msg_ref() copies them into a MsgStorage so the
 * application can keep the message.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"

static MsgStorage *storage_unref(MsgStorage *s) {
        if (s && --s->n_ref == 0)
                free(s);
        return NULL;
}

ipcd_msg *msg_new(void) {
        ipcd_msg *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->n_ref = 1;
        return m;
}

int msg_own(ipcd_msg *m) {
        MsgStorage *s;

        if (m->storage)
                return 0;
        if (m->topic_len > SIZE_MAX - sizeof(*s) - 1 - m->size)
                return -ENOMEM;
        s = malloc(sizeof(*s) + m->topic_len + 1 + m->size);
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->len = m->topic_len + 1 + m->size;
        memcpy(s->bytes, m->topic, m->topic_len);
        s->bytes[m->topic_len] = 0;
        if (m->size > 0)
                memcpy(s->bytes + m->topic_len + 1, m->data, m->size);
        m->storage = s;
        m->topic = s->bytes;
        m->data = s->bytes + m->topic_len + 1;
        return 0;
}

void msg_reset(ipcd_msg *m) {
        m->storage = storage_unref(m->storage);
        m->topic = NULL;
        m->data = NULL;
        m->next = NULL;
}

void msg_copy_from(ipcd_msg *dst, const ipcd_msg *src) {
        *dst = *src;
        dst->n_ref = 1;
        dst->next = NULL;
        if (dst->storage)
                dst->storage->n_ref++;
}

_public_ ipcd_msg *ipcd_msg_ref(ipcd_msg *m) {
        if (!m)
                return NULL;
        /* A borrowed message becomes the application's: copy it out of the
         * receive buffer before that buffer is reused. */
        if (!m->storage && msg_own(m) < 0)
                return NULL;
        m->n_ref++;
        return m;
}

_public_ ipcd_msg *ipcd_msg_unref(ipcd_msg *m) {
        if (!m)
                return NULL;
        if (--m->n_ref > 0)
                return NULL;
        msg_reset(m);
        free(m);
        return NULL;
}

_public_ const char *ipcd_msg_get_topic(const ipcd_msg *m) {
        return m ? m->topic : NULL;
}

_public_ uint32_t ipcd_msg_get_type(const ipcd_msg *m) {
        return m ? m->type : 0;
}

_public_ const void *ipcd_msg_get_data(const ipcd_msg *m, size_t *ret_size) {
        if (!m) {
                if (ret_size)
                        *ret_size = 0;
                return NULL;
        }
        if (ret_size)
                *ret_size = m->size;
        return m->data;
}

_public_ uint64_t ipcd_msg_get_seq(const ipcd_msg *m) {
        return m ? m->seq : 0;
}

_public_ pid_t ipcd_msg_get_sender_pid(const ipcd_msg *m) {
        return m ? m->sender_pid : 0;
}

_public_ uid_t ipcd_msg_get_sender_uid(const ipcd_msg *m) {
        return m ? m->sender_uid : 0;
}

_public_ gid_t ipcd_msg_get_sender_gid(const ipcd_msg *m) {
        return m ? m->sender_gid : 0;
}

_public_ uint32_t ipcd_msg_get_subscription(const ipcd_msg *m) {
        return m ? m->sub_id : 0;
}

_public_ unsigned ipcd_msg_get_flags(const ipcd_msg *m) {
        return m ? m->flags : 0;
}
