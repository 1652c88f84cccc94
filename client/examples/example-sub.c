/* SPDX-License-Identifier: MIT */
/*
 * example-sub: subscribe to a filter and print what arrives, driving the
 * client from a plain poll() loop (the same get_fd/get_events/process
 * calls plug into libevent, glib or sd-event).
 *
 *   example-sub [FILTER [COUNT]]      (socket: $IPCD_SOCKET or the default)
 *
 * Build: cc example-sub.c $(pkg-config --cflags --libs libipcd-client)
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/ipcd-client.h>

static unsigned long received;

static void on_message(ipcd_client *c, ipcd_msg *m, void *userdata) {
        size_t size;
        const char *data = ipcd_msg_get_data(m, &size);

        (void)c;
        (void)userdata;
        /* m is borrowed: valid until we return (ipcd_msg_ref() keeps it).
         * So are its fds: ipcd_msg_take_fd() would keep one; the others
         * are closed for us. A large payload is a read-only mapping of
         * the publisher's memfd; reading it is all it takes. */
        if (ipcd_msg_get_flags(m) & IPCD_MSG_BULK)
                printf("%s type=%" PRIu32 " seq=%" PRIu64 " from pid %ld: %zu bytes by memfd, %zu fds\n",
                       ipcd_msg_get_topic(m), ipcd_msg_get_type(m), ipcd_msg_get_seq(m),
                       (long)ipcd_msg_get_sender_pid(m), size, ipcd_msg_get_n_fds(m));
        else
                printf("%s type=%" PRIu32 " seq=%" PRIu64 " from pid %ld, %zu fds: %.*s\n",
                       ipcd_msg_get_topic(m), ipcd_msg_get_type(m), ipcd_msg_get_seq(m),
                       (long)ipcd_msg_get_sender_pid(m), ipcd_msg_get_n_fds(m), (int)size, data);
        fflush(stdout);
        received++;
}

int main(int argc, char **argv) {
        const char *filter = argc > 1 ? argv[1] : "sensors/#";
        unsigned long count = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
        ipcd_client *c = NULL;
        int r;

        r = ipcd_client_new(&c, NULL, "example-sub");
        if (r < 0) {
                fprintf(stderr, "cannot connect to ipcd: %s\n", strerror(-r));
                return 1;
        }
        r = ipcd_client_subscribe(c, filter, NULL, 0, on_message, NULL, NULL);
        if (r < 0) {
                fprintf(stderr, "cannot subscribe to '%s': %s (%s)\n", filter, strerror(-r),
                        ipcd_client_last_error(c));
                ipcd_client_unref(c);
                return 1;
        }

        while (count == 0 || received < count) {
                struct pollfd pfd;

                /* First process: a blocking call such as subscribe may have
                 * buffered messages that poll() cannot see. */
                r = ipcd_client_process(c);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                pfd.fd = ipcd_client_get_fd(c);
                pfd.events = (short)ipcd_client_get_events(c);
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
        }
        if (r < 0)
                fprintf(stderr, "connection lost: %s (%s)\n", strerror(-r),
                        ipcd_client_last_error(c));
        ipcd_client_unref(c);
        return r < 0 ? 1 : 0;
}
