/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>

#include "broker.h"
#include "log.h"
#include "request.h"

static void on_deadline(evutil_socket_t fd, short what, void *userdata);

Pending *pending_new(Broker *b, Connection *requester, uint64_t corr, Connection *responder,
                     Body *request, uint16_t topic_len, uint64_t timeout_ms) {
        struct timeval tv = { .tv_sec = (time_t)(timeout_ms / 1000),
                              .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000 };
        Pending *p = b->pending_pool;

        if (p)
                b->pending_pool = p->pool_next;
        else {
                p = calloc(1, sizeof(*p));
                if (!p)
                        return NULL;
                p->timer = evtimer_new(b->base, on_deadline, p);
                if (!p->timer) {
                        free(p);
                        return NULL;
                }
        }
        p->id = ++b->next_request_id;
        p->requester_corr = corr;
        p->requester = requester;
        p->responder = responder;
        p->request = body_ref(request);
        p->topic_len = topic_len;
        p->made_prev = NULL;
        p->made_next = requester->requests_made;
        if (p->made_next)
                p->made_next->made_prev = p;
        requester->requests_made = p;
        requester->n_pending++;
        p->asked_prev = NULL;
        p->asked_next = responder->requests_asked;
        if (p->asked_next)
                p->asked_next->asked_prev = p;
        responder->requests_asked = p;
        b->n_pending++;
        evtimer_add(p->timer, &tv);
        return p;
}

static void unlink_made(Pending *p) {
        if (!p->requester)
                return;
        if (p->made_prev)
                p->made_prev->made_next = p->made_next;
        else
                p->requester->requests_made = p->made_next;
        if (p->made_next)
                p->made_next->made_prev = p->made_prev;
        p->requester->n_pending--;
        p->requester = NULL;
}

static void unlink_asked(Pending *p) {
        if (!p->responder)
                return;
        if (p->asked_prev)
                p->asked_prev->asked_next = p->asked_next;
        else
                p->responder->requests_asked = p->asked_next;
        if (p->asked_next)
                p->asked_next->asked_prev = p->asked_prev;
        p->responder = NULL;
}

void pending_done(Broker *b, Pending *p) {
        unlink_made(p);
        unlink_asked(p);
        evtimer_del(p->timer);
        p->request = body_unref(p->request);
        b->n_pending--;
        p->pool_next = b->pending_pool;
        b->pending_pool = p;
}

Pending *pending_find(Connection *responder, uint64_t id) {
        Pending *p;
        for (p = responder->requests_asked; p; p = p->asked_next)
                if (p->id == id)
                        return p;
        return NULL;
}

static void on_deadline(evutil_socket_t fd, short what, void *userdata) {
        Pending *p = userdata;
        Broker *b = p->requester->broker;

        b->stats.request_timeouts++;
        connection_error(p->requester, WIRE_E_TIMEOUT, WIRE_REQUEST, p->requester_corr, false,
                         "timed out: no reply from the responder (client %u) in time",
                         p->responder ? p->responder->id : 0);
        pending_done(b, p);
        broker_flush_pending(b);
}

void pending_connection_gone(Connection *c) {
        Broker *b = c->broker;

        while (c->requests_made)
                pending_done(b, c->requests_made);
        while (c->requests_asked) {
                Pending *p = c->requests_asked;
                connection_error(p->requester, WIRE_E_RESPONDER_GONE, WIRE_REQUEST,
                                 p->requester_corr, false,
                                 "the responder (client %u) went away before replying", c->id);
                pending_done(b, p);
        }
}

void pending_pool_free(Broker *b) {
        while (b->pending_pool) {
                Pending *p = b->pending_pool;
                b->pending_pool = p->pool_next;
                event_free(p->timer);
                free(p);
        }
}
