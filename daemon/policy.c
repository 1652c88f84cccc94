/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "policy.h"

const char *overflow_policy_name(OverflowPolicy p) {
        static const char *const names[_OVERFLOW_MAX] = {
                [OVERFLOW_DROP_NEW] = "drop-new",
                [OVERFLOW_DROP_OLD] = "drop-old",
                [OVERFLOW_DISCONNECT] = "disconnect",
                [OVERFLOW_BLOCK] = "block",
        };
        return (unsigned)p < _OVERFLOW_MAX ? names[p] : "unknown";
}

int overflow_policy_from_name(const char *s) {
        int p;
        for (p = 0; p < _OVERFLOW_MAX; p++)
                if (strcmp(s, overflow_policy_name((OverflowPolicy)p)) == 0)
                        return p;
        return -EINVAL;
}
