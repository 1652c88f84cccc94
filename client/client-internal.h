/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by client.c (the connection) and message.c (received
 * messages). Not installed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ipcd/ipcd-client.h>

/* Marks a function exported from libipcd-client.so; everything else is
 * hidden by -fvisibility=hidden (and by the version script). */
#define _public_ __attribute__((visibility("default")))

/*
 * The bytes of a message that outlives the receive buffer: its topic
 * (NUL-terminated) followed by its payload, shared by the ipcd_msg objects
 * that point into it.
 */
typedef struct MsgStorage {
        unsigned n_ref;
        size_t len;
        char bytes[];
} MsgStorage;

/*
 * What a message received besides bytes: the mapping of its bulk payload
 * and the file descriptors attached to it. Shared (reference counted) by
 * every ipcd_msg made from one MESSAGE frame, so that an fd taken through
 * one of them is gone for all. The last reference unmaps the payload and
 * closes the fds nobody took. The bulk memfd itself is closed as soon as it
 * is mapped: the mapping keeps its memory alive.
 */
typedef struct MsgRes {
        unsigned n_ref;
        void *map; /* PROT_READ mapping of the bulk payload, or NULL */
        size_t map_len;
        size_t n_fds;
        int fds[]; /* owned; -1 once taken by the application */
} MsgRes;

/* What an ipcd_msg is. */
typedef enum MsgKind {
        MSG_KIND_MESSAGE = 0, /* a delivery to a subscription */
        MSG_KIND_REQUEST,     /* a request to a responder (ipcd_client_serve()) */
        MSG_KIND_REPLY,       /* the answer to ipcd_client_request(), or its failure */
} MsgKind;

struct ipcd_msg {
        unsigned n_ref;
        MsgKind kind;
        uint32_t type;
        uint32_t sub_id;
        unsigned flags; /* IPCD_MSG_* */
        uint64_t seq;
        pid_t sender_pid;
        uid_t sender_uid;
        gid_t sender_gid;
        const char *topic; /* NUL-terminated */
        size_t topic_len;
        const void *data;
        size_t size;
        /* NULL: topic and data are borrowed from the client (its topic
         * scratch buffer and its receive buffer) and valid only while the
         * message is being dispatched. Else they point into it; the data of
         * a bulk message (IPCD_MSG_BULK) always points into res->map. */
        MsgStorage *storage;
        /* The bulk mapping and the attached fds; NULL when there are none. */
        MsgRes *res;
        /* Position of the MESSAGE frame in the connection's input (frames
         * numbered from 1), to tell it from subscriptions made later. */
        uint64_t rx_index;
        ipcd_msg *next; /* in the client's queue of buffered messages */

        /* MSG_KIND_REQUEST: the broker's id of the request (the REPLY's
         * corr), and the client to reply through. The client does not own
         * the message and the message does not own the client: while both
         * live the message is on the client's list of live requests
         * (req_prev/req_next); when the client is freed it sets ->client to
         * NULL, and a later ipcd_msg_reply() fails with -ENOTCONN. */
        uint64_t request_id;
        uint32_t request_timeout_ms;
        bool replied;
        ipcd_client *client;
        ipcd_msg *req_prev, *req_next;

        /* MSG_KIND_REPLY while it waits in the client's queue: whose
         * handler to call, and 0 or the error that ended the request (then
         * the handler gets NULL instead of this message). */
        ipcd_reply_handler_t reply_handler;
        void *reply_userdata;
        int reply_error;
};

/* Takes request @m off its client's list of live requests (client.c);
 * called when the message is freed. */
void client_forget_request(ipcd_msg *m);

/* Allocates an empty message with one reference; NULL when out of memory. */
ipcd_msg *msg_new(void);

/*
 * Makes @m own its bytes: copies the topic and an inline payload into a new
 * MsgStorage unless it already has one (a bulk payload stays in its
 * mapping). Returns 0 or -ENOMEM (then @m is unchanged).
 */
int msg_own(ipcd_msg *m);

/* Lets @m forget its storage and resources (dropping a reference to each),
 * leaving it empty for reuse. */
void msg_reset(ipcd_msg *m);

/* Makes @dst a copy of @src's fields sharing its storage and resources (one
 * more reference to each), with one reference of its own. */
void msg_copy_from(ipcd_msg *dst, const ipcd_msg *src);

/*
 * A resource block for @n_fds attached fds, taking ownership of them from
 * @fds (each entry is set to -1), plus the bulk mapping @map of @map_len
 * bytes (NULL for none), which it unmaps at the end. One reference. NULL
 * when out of memory: then nothing was taken.
 */
MsgRes *msg_res_new(int *fds, size_t n_fds, void *map, size_t map_len);
MsgRes *msg_res_unref(MsgRes *r);
