/* SPDX-License-Identifier: MIT */
/*
 * example-pub: publish a few readings in one batch, then make sure the
 * broker accepted them.
 *
 *   example-pub [TOPIC [COUNT]]       (socket: $IPCD_SOCKET or the default)
 *
 * Build: cc example-pub.c $(pkg-config --cflags --libs libipcd-client)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ipcd/ipcd-client.h>

#define TYPE_TEMPERATURE 7

int main(int argc, char **argv) {
        /* The client is released however main() returns. */
        __attribute__((cleanup(ipcd_client_unrefp))) ipcd_client *c = NULL;
        const char *topic = argc > 1 ? argv[1] : "sensors/cpu0/temp";
        unsigned long i, count = argc > 2 ? strtoul(argv[2], NULL, 10) : 10;
        int r;

        r = ipcd_client_new(&c, NULL, "example-pub");
        if (r < 0) {
                fprintf(stderr, "cannot connect to ipcd: %s\n", strerror(-r));
                return 1;
        }

        for (i = 0; i < count; i++) {
                char text[32];
                int len = snprintf(text, sizeof(text), "%lu", 40 + i % 20);

                /* MORE: only buffer; the last one writes the whole batch. */
                r = ipcd_client_publish(c, topic, TYPE_TEMPERATURE, text, (size_t)len,
                                        i + 1 < count ? IPCD_PUBLISH_MORE : 0);
                if (r < 0) {
                        fprintf(stderr, "cannot publish on '%s': %s (%s)\n", topic,
                                strerror(-r), ipcd_client_last_error(c));
                        return 1;
                }
        }

        /* Fire-and-forget errors (a refused topic, ...) surface here. */
        r = ipcd_client_sync(c);
        if (r < 0) {
                fprintf(stderr, "the broker refused a message: %s (%s)\n", strerror(-r),
                        ipcd_client_last_error(c));
                return 1;
        }
        printf("published %lu messages on %s\n", count, topic);
        return 0;
}
