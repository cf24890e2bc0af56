/* ts_clock.c - real time plus an atomic test offset. */
#include "ts_clock.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int64_t offset_ms;

int64_t ts_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&offset_ms);
}

int64_t ts_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ts_clock_advance_ms(int64_t delta_ms)
{
    atomic_fetch_add(&offset_ms, delta_ms);
}

int64_t ts_clock_offset_ms(void)
{
    return atomic_load(&offset_ms);
}

int64_t ts_duration_parse_ms(const char *text)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return -1;
    char *end;
    long long value = strtoll(text, &end, 10);
    if (value < 0 || value > 1000LL * 24 * 3600 * 365)
        return -1;
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].suffix) == 0)
            return value * units[i].ms;
    return -1;
}
