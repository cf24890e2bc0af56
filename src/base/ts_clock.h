/*
 * ts_clock.h - the time source, injectable so tests drive expiry without
 * waiting.
 *
 * ts_clock_now_ms() is wall-clock milliseconds since the Unix epoch plus a
 * test offset. Everything that expires (results at retention, rate-limit
 * buckets, key rotation) reads time only through this function. Tests and the
 * server's test mode move time forward with ts_clock_advance_ms().
 */
#ifndef TS_CLOCK_H
#define TS_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch, as seen by the program (real time + offset). */
int64_t ts_clock_now_ms(void);

/* Monotonic milliseconds for measuring durations; not affected by the offset. */
int64_t ts_clock_mono_ms(void);

/* Moves program time forward (or back, if negative) by delta_ms. Thread-safe. */
void ts_clock_advance_ms(int64_t delta_ms);

/* Total offset applied so far. */
int64_t ts_clock_offset_ms(void);

/* Parses "90s", "15m", "24h", "1d", "500ms" or a plain number of seconds into
 * milliseconds. Returns -1 when the text is not a duration. */
int64_t ts_duration_parse_ms(const char *text);

#endif
