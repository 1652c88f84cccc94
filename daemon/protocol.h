/* SPDX-License-Identifier: MIT */
/*
 * The protocol layer: takes one complete frame whose header already passed
 * wire_header_decode, checks what depends on the kind (handshake state,
 * topic and filter rules, meta contents), and acts on it through the router
 * and the connections' queues. Every refusal is an ERROR frame; protocol
 * violations are fatal to the sending connection only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connection.h"
#include "wire.h"

/*
 * Handles @h with its @frame bytes (h->size of them, header included) and
 * its h->n_fds file descriptors @fds from @c. Takes ownership of the fds on
 * every path: they end up in a message body or closed. Returns 0, or a
 * negative errno when @c must be dropped at once (nothing could be queued
 * for it).
 */
int protocol_handle(Connection *c, const WireHeader *h, const uint8_t *frame, const int *fds);

/* Releases a topic's retained message (the router's retained_free). */
void protocol_retained_free(void *retained);

/* (Re)computes what the access rules let @s read. */
void protocol_authorize_subscription(Connection *c, Subscription *s);

/* Publishes a message of the broker's own (its $SYS topics), with the
 * broker's credentials; kept as the topic's retained message when
 * @retained. Returns 0 or a negative errno. */
int protocol_publish_internal(Broker *b, const char *topic, uint32_t type, const void *payload,
                              size_t len, bool retained);
