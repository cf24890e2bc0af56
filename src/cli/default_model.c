/*
 * default_model.c - where the built-in model is found.
 *
 * Order: $TOGETHERSHOT_MODEL; then models/togethershot-mini under the
 * install prefix of the running binary (<exe>/../share/togethershot/);
 * then the source tree the binary was built from (a compile-time path, so
 * a build folder works without installing). The first that exists wins; if
 * none does, the source-tree path is returned so the loader's error names
 * a real place to look.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_cli.h"

#ifndef TS_SOURCE_DIR
#define TS_SOURCE_DIR "."
#endif

#define MODEL_SUBDIR "models/togethershot-mini"

static char found[PATH_MAX];

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *ts_cli_default_model(void)
{
    const char *env = getenv("TOGETHERSHOT_MODEL");
    if (env && *env)
        return env;

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(found, sizeof found, "%s/../share/togethershot/" MODEL_SUBDIR, exe) <
                    (int)sizeof found &&
                is_dir(found))
                return found;
        }
    }
    snprintf(found, sizeof found, "%s/" MODEL_SUBDIR, TS_SOURCE_DIR);
    return found;
}
