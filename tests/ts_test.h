/*
 * ts_test.h - the smallest test harness that reads well.
 *
 *     static void test_parse_duration(void)
 *     {
 *         TS_CHECK_INT_EQ(ts_duration_parse_ms("2h"), 7200000);
 *     }
 *     int main(void)
 *     {
 *         TS_RUN(test_parse_duration);
 *         return ts_test_finish();
 *     }
 *
 * A failed check prints file:line and the values, and the test goes on; the
 * executable exits non-zero if anything failed, which is what CTest reads.
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int ts_test_failures;
static int ts_test_checks;

#define TS_CHECK(cond)                                                                             \
    do {                                                                                           \
        ts_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define TS_CHECK_INT_EQ(a, b)                                                                      \
    do {                                                                                           \
        long long ts_a_ = (long long)(a), ts_b_ = (long long)(b);                                  \
        ts_test_checks++;                                                                          \
        if (ts_a_ != ts_b_) {                                                                      \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    ts_a_, ts_b_);                                                                 \
        }                                                                                          \
    } while (0)

#define TS_CHECK_STR_EQ(a, b)                                                                      \
    do {                                                                                           \
        const char *ts_a_ = (a), *ts_b_ = (b);                                                     \
        ts_test_checks++;                                                                          \
        if (!ts_a_ || !ts_b_ || strcmp(ts_a_, ts_b_) != 0) {                                       \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, ts_a_ ? ts_a_ : "(null)", ts_b_ ? ts_b_ : "(null)");                       \
        }                                                                                          \
    } while (0)

#define TS_CHECK_NEAR(a, b, tol)                                                                   \
    do {                                                                                           \
        double ts_a_ = (double)(a), ts_b_ = (double)(b);                                           \
        ts_test_checks++;                                                                          \
        if (!(fabs(ts_a_ - ts_b_) <= (tol))) {                                                     \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %g vs %g\n", __FILE__, __LINE__, #a,   \
                    #b, (double)(tol), ts_a_, ts_b_);                                              \
        }                                                                                          \
    } while (0)

#define TS_RUN(fn)                                                                                 \
    do {                                                                                           \
        int ts_before_ = ts_test_failures;                                                         \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", ts_test_failures == ts_before_ ? "ok  " : "FAIL", #fn);         \
    } while (0)

static inline int ts_test_finish(void)
{
    fprintf(stderr, "%d checks, %d failed\n", ts_test_checks, ts_test_failures);
    return ts_test_failures ? 1 : 0;
}

#endif
