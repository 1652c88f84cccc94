/* SPDX-License-Identifier: MIT */
/*
 * The listening socket: binds a Unix stream socket at a path (replacing a
 * stale socket file, never one a live broker answers on, never a file that is
 * not a socket), accepts connections with their kernel credentials, and
 * survives fd exhaustion with a reserve fd.
 */
#pragma once

#include <sys/types.h>

typedef struct Broker Broker;
typedef struct Listener Listener;

/* Binds and listens on @path with @mode; registers with @b's loop. */
int listener_new(Listener **ret, Broker *b, const char *path, mode_t mode);
/* Stops accepting, closes the socket and removes the socket file if it is
 * still the one this listener created. */
Listener *listener_free(Listener *l);
const char *listener_path(const Listener *l);
