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

struct ipcd_msg {
        unsigned n_ref;
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
         * message is being dispatched. Else they point into it. */
        MsgStorage *storage;
        /* Position of the MESSAGE frame in the connection's input (frames
         * numbered from 1), to tell it from subscriptions made later. */
        uint64_t rx_index;
        ipcd_msg *next; /* in the client's queue of buffered messages */
};

/* Allocates an empty message with one reference; NULL when out of memory. */
ipcd_msg *msg_new(void);

/*
 * Makes @m own its bytes: copies topic and data into a new MsgStorage
 * unless it already has one. Returns 0 or -ENOMEM (then @m is unchanged).
 */
int msg_own(ipcd_msg *m);

/* Lets @m forget its storage (dropping a reference to it), leaving it
 * empty for reuse. */
void msg_reset(ipcd_msg *m);

/* Makes @dst a copy of @src's fields sharing its storage (one more
 * reference to it), with one reference of its own. */
void msg_copy_from(ipcd_msg *dst, const ipcd_msg *src);
