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

#include <stdint.h>

/* Binds and listens on @path with @mode (and group @gid unless it is -1);
 * registers with @b's loop. */
int listener_new(Listener **ret, Broker *b, const char *path, mode_t mode, int64_t gid);
/* Takes a listening socket systemd passed (ownership passes, even on
 * failure). Its file is systemd's: it is never removed. */
int listener_new_from_fd(Listener **ret, Broker *b, int fd);
/* Stops accepting, closes the socket and removes the socket file if it is
 * still the one this listener created. */
Listener *listener_free(Listener *l);
const char *listener_path(const Listener *l);
