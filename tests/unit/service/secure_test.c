/* secure_test.c - growing, copying and freeing buffers that hold user content. */
#include <stdlib.h>
#include <string.h>

#include "ts_secure.h"
#include "ts_test.h"

static void test_regrow_keeps_content(void)
{
    char *p = ts_secure_regrow(NULL, 0, 0, 8);
    TS_CHECK(p != NULL);
    memcpy(p, "abcdefgh", 8);

    char *q = ts_secure_regrow(p, 8, 8, 64);
    TS_CHECK(q != NULL);
    TS_CHECK(memcmp(q, "abcdefgh", 8) == 0);
    ts_secure_free(q, 64);
}

static int hook_calls;
static int hook_saw_nonzero;
static void zero_hook(void *user, const void *p, size_t n)
{
    (void)user;
    hook_calls++;
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            hook_saw_nonzero = 1;
}

static void test_free_zeroes_before_release(void)
{
    ts_secure_set_free_hook(zero_hook, NULL);
    char *s = ts_secure_strndup("a private prompt", 1000);
    TS_CHECK_STR_EQ(s, "a private prompt");
    ts_secure_free_string(s);

    unsigned char *b = malloc(32);
    memset(b, 0xAB, 32);
    ts_secure_free(b, 32);
    ts_secure_set_free_hook(NULL, NULL);

    TS_CHECK_INT_EQ(hook_calls, 2);
    TS_CHECK_INT_EQ(hook_saw_nonzero, 0);
}

static void test_strndup_bounds(void)
{
    char *s = ts_secure_strndup("abcdef", 3);
    TS_CHECK_STR_EQ(s, "abc");
    ts_secure_free_string(s);
    TS_CHECK(ts_secure_strndup(NULL, 3) == NULL);
}

int main(void)
{
    TS_RUN(test_regrow_keeps_content);
    TS_RUN(test_free_zeroes_before_release);
    TS_RUN(test_strndup_bounds);
    return ts_test_finish();
}
