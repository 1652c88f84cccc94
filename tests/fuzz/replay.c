/* SPDX-License-Identifier: MIT */
/*
 * main() for a harness built without libFuzzer: runs every file named on
 * the command line (a directory: every file in it, in name order) through
 * LLVMFuzzerTestOneInput once, and reports each as a TAP line. Without
 * arguments it runs the directories compiled in as FUZZ_REPLAY_DIRS
 * (colon-separated: the harness's seed corpus and crash reproducers), which
 * is what `make check` does. A finding aborts the program, after the name
 * of the input on stderr.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_REPLAY_DIRS
#define FUZZ_REPLAY_DIRS ""
#endif

static unsigned n_run;

static int run_file(const char *path) {
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        FILE *f = fopen(path, "rb");

        if (!f) {
                printf("not ok %u - %s: %s\n", ++n_run, path, strerror(errno));
                return -1;
        }
        for (;;) {
                size_t n;
                if (len == cap) {
                        uint8_t *nb;
                        cap = cap ? cap * 2 : 4096;
                        nb = realloc(buf, cap);
                        FUZZ_CHECK(nb, "out of memory");
                        buf = nb;
                }
                n = fread(buf + len, 1, cap - len, f);
                if (n == 0)
                        break;
                len += n;
        }
        fclose(f);
        fprintf(stderr, "# %s (%zu bytes)\n", path, len);
        /* A copy of exactly the input's size, so that AddressSanitizer sees
         * a read past its end, as under libFuzzer. */
        {
                uint8_t *exact = malloc(len ? len : 1);
                FUZZ_CHECK(exact, "out of memory");
                memcpy(exact, buf, len);
                LLVMFuzzerTestOneInput(exact, len);
                free(exact);
        }
        free(buf);
        printf("ok %u - %s\n", ++n_run, path);
        fflush(stdout);
        return 0;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file, or every regular file in a directory in name order. A directory
 * that does not exist is empty (there may be no reproducers yet). */
static int run_path(const char *path) {
        struct dirent *e;
        struct stat st;
        char **names = NULL;
        size_t n = 0, cap = 0, i;
        int r = 0;
        DIR *d;

        if (stat(path, &st) < 0)
                return errno == ENOENT ? 0 : -1;
        if (!S_ISDIR(st.st_mode))
                return run_file(path);
        d = opendir(path);
        if (!d)
                return -1;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        char **nn;
                        cap = cap ? cap * 2 : 64;
                        nn = realloc(names, cap * sizeof(*nn));
                        FUZZ_CHECK(nn, "out of memory");
                        names = nn;
                }
                names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
                FUZZ_CHECK(names[n], "out of memory");
                sprintf(names[n], "%s/%s", path, e->d_name);
                n++;
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof(*names), name_cmp);
        for (i = 0; i < n; i++) {
                if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && run_file(names[i]) < 0)
                        r = -1;
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv) {
        int failed = 0, i;

        LLVMFuzzerInitialize(&argc, &argv);
        if (argc > 1) {
                for (i = 1; i < argc; i++)
                        if (run_path(argv[i]) < 0)
                                failed = 1;
        } else {
                char *dirs = strdup(FUZZ_REPLAY_DIRS), *save = NULL, *dir;
                FUZZ_CHECK(dirs, "out of memory");
                for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
                        if (run_path(dir) < 0)
                                failed = 1;
                free(dirs);
        }
        if (n_run == 0)
                printf("ok 1 # SKIP no inputs\n");
        printf("1..%u\n", n_run ? n_run : 1);
        return failed;
}
