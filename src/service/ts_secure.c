/* ts_secure.c - core-dump switches and wiping frees. */
#include "ts_secure.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static ts_secure_free_hook_fn free_hook;
static void *free_hook_user;

ts_status ts_secure_disable_core_dumps(ts_error *err)
{
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        return ts_error_set(err, TS_ERR_IO, "cannot disable core dumps (setrlimit): %s",
                            strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return ts_error_set(err, TS_ERR_IO, "cannot mark the process non-dumpable: %s",
                            strerror(errno));
    return TS_OK;
}

int ts_secure_core_dumps_disabled(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0)
        return 0;
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0;
}

void ts_secure_wipe(void *p, size_t n)
{
    if (p && n)
        sodium_memzero(p, n);
}

static void call_hook(const void *p, size_t n)
{
    pthread_mutex_lock(&hook_lock);
    if (free_hook)
        free_hook(free_hook_user, p, n);
    pthread_mutex_unlock(&hook_lock);
}

void ts_secure_free(void *p, size_t n)
{
    if (!p)
        return;
    ts_secure_wipe(p, n);
    call_hook(p, n);
    free(p);
}

void *ts_secure_regrow(void *p, size_t len, size_t cap, size_t new_cap)
{
    unsigned char *nb = malloc(new_cap);
    if (!nb)
        return NULL;
    if (p) {
        memcpy(nb, p, len);
        sodium_memzero(p, cap);
        free(p);
    }
    return nb;
}

void ts_secure_free_string(char *s)
{
    if (!s)
        return;
    ts_secure_free(s, strlen(s) + 1);
}

char *ts_secure_strndup(const char *s, size_t max_bytes)
{
    if (!s)
        return NULL;
    size_t n = strnlen(s, max_bytes);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

void ts_secure_set_free_hook(ts_secure_free_hook_fn hook, void *user)
{
    pthread_mutex_lock(&hook_lock);
    free_hook = hook;
    free_hook_user = user;
    pthread_mutex_unlock(&hook_lock);
}
