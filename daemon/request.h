/* SPDX-License-Identifier: MIT */
/*
 * Pending requests: a REQUEST the broker routed to one responder and whose
 * REPLY (or timeout, or the responder's departure) it still owes the
 * requester. Each is on its requester's and its responder's list, so either
 * going away settles it, and has a deadline timer. Pending records and
 * their timers are pooled: a request/reply round trip allocates nothing in
 * steady state.
 */
#pragma once

#include <stdint.h>

#include "connection.h"

typedef struct Pending {
        uint64_t id;             /* the broker's: the corr id the responder sees */
        uint64_t requester_corr; /* the requester's own corr id */
        Connection *requester;
        Connection *responder;
        struct Pending *made_prev, *made_next;   /* requester's list */
        struct Pending *asked_prev, *asked_next; /* responder's list */
        Body *request;           /* starts with the service topic */
        uint16_t topic_len;
        struct event *timer;
        struct Pending *pool_next;
} Pending;

/* A pending request for @requester (corr @corr) handed to @responder, due
 * in @timeout_ms; NULL when out of memory. Takes a reference on @request. */
Pending *pending_new(Broker *b, Connection *requester, uint64_t corr, Connection *responder,
                     Body *request, uint16_t topic_len, uint64_t timeout_ms);
/* Settles @p: unlinks it, stops its timer, returns it to the pool. */
void pending_done(Broker *b, Pending *p);
/* The pending request @id that @responder was asked, or NULL. */
Pending *pending_find(Connection *responder, uint64_t id);
/* A connection goes: its own requests are forgotten (their replies will be
 * late), and the requesters of what it was asked hear "responder gone". */
void pending_connection_gone(Connection *c);
/* Frees the pool (at shutdown). */
void pending_pool_free(Broker *b);
