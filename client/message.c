/* SPDX-License-Identifier: MIT */
/*
 * ipcd_msg: a received message. While a handler runs, the message usually
 * borrows its bytes from the client's receive buffer (no allocation per
 * message); the first ipcd_msg_ref() copies them into a MsgStorage so the
 * application can keep the message. A bulk payload is never copied: it is
 * a read-only mapping of the sender's sealed memfd, owned (with the
 * attached fds) by a MsgRes that the message's copies share.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "client-internal.h"
#include "util.h"

static MsgStorage *storage_unref(MsgStorage *s) {
        if (s && --s->n_ref == 0)
                free(s);
        return NULL;
}

MsgRes *msg_res_new(int *fds, size_t n_fds, void *map, size_t map_len) {
        MsgRes *r;
        size_t i;

        r = malloc(sizeof(*r) + n_fds * sizeof(int));
        if (!r)
                return NULL;
        r->n_ref = 1;
        r->map = map;
        r->map_len = map_len;
        r->n_fds = n_fds;
        for (i = 0; i < n_fds; i++) {
                r->fds[i] = fds[i];
                fds[i] = -1;
        }
        return r;
}

MsgRes *msg_res_unref(MsgRes *r) {
        size_t i;

        if (!r || --r->n_ref > 0)
                return NULL;
        if (r->map)
                (void)munmap(r->map, r->map_len);
        for (i = 0; i < r->n_fds; i++)
                safe_close(r->fds[i]);
        free(r);
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
        /* A bulk payload lives in its mapping, which is already ours. */
        size_t size = (m->flags & IPCD_MSG_BULK) ? 0 : m->size;
        MsgStorage *s;

        if (m->storage)
                return 0;
        if (m->topic_len > SIZE_MAX - sizeof(*s) - 1 - size)
                return -ENOMEM;
        s = malloc(sizeof(*s) + m->topic_len + 1 + size);
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->len = m->topic_len + 1 + size;
        memcpy(s->bytes, m->topic, m->topic_len);
        s->bytes[m->topic_len] = 0;
        if (size > 0)
                memcpy(s->bytes + m->topic_len + 1, m->data, size);
        m->storage = s;
        m->topic = s->bytes;
        if (!(m->flags & IPCD_MSG_BULK))
                m->data = s->bytes + m->topic_len + 1;
        return 0;
}

void msg_reset(ipcd_msg *m) {
        if (m->client)
                client_forget_request(m);
        m->storage = storage_unref(m->storage);
        m->res = msg_res_unref(m->res);
        m->topic = NULL;
        m->data = NULL;
        m->next = NULL;
}

void msg_copy_from(ipcd_msg *dst, const ipcd_msg *src) {
        *dst = *src;
        dst->n_ref = 1;
        dst->next = NULL;
        /* Only the one object made for a request is on the client's list. */
        dst->client = NULL;
        dst->req_prev = dst->req_next = NULL;
        if (dst->storage)
                dst->storage->n_ref++;
        if (dst->res)
                dst->res->n_ref++;
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

_public_ size_t ipcd_msg_get_n_fds(const ipcd_msg *m) {
        return m && m->res ? m->res->n_fds : 0;
}

_public_ int ipcd_msg_get_fd(const ipcd_msg *m, size_t i) {
        if (!m || !m->res || i >= m->res->n_fds)
                return -1;
        return m->res->fds[i];
}

_public_ int ipcd_msg_take_fd(ipcd_msg *m, size_t i) {
        int fd;

        if (!m || !m->res || i >= m->res->n_fds)
                return -1;
        fd = m->res->fds[i];
        m->res->fds[i] = -1;
        return fd;
}

_public_ bool ipcd_msg_is_request(const ipcd_msg *m) {
        return m && m->kind == MSG_KIND_REQUEST;
}
