/* base_test.c - errors, durations, clock offset and the log sink. */
#include "ts_clock.h"
#include "ts_error.h"
#include "ts_log.h"
#include "ts_test.h"

static void test_error_set_and_wrap(void)
{
    ts_error err;
    ts_error_clear(&err);
    TS_CHECK_INT_EQ(err.status, TS_OK);
    TS_CHECK_INT_EQ(ts_error_set(&err, TS_ERR_LIMIT, "%d pixels", 42), TS_ERR_LIMIT);
    ts_error_wrap(&err, "decoding %s", "upload");
    TS_CHECK_STR_EQ(err.message, "decoding upload: 42 pixels");
    TS_CHECK_STR_EQ(ts_status_name(TS_ERR_LIMIT), "limit_exceeded");
    TS_CHECK_STR_EQ(ts_status_name((ts_status)999), "unknown");
}

static void test_duration_parse(void)
{
    TS_CHECK_INT_EQ(ts_duration_parse_ms("24h"), 86400000);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("90s"), 90000);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("15m"), 900000);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("250ms"), 250);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("60"), 60000);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("1d"), 86400000);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("h"), -1);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("-5s"), -1);
    TS_CHECK_INT_EQ(ts_duration_parse_ms("5 weeks"), -1);
    TS_CHECK_INT_EQ(ts_duration_parse_ms(NULL), -1);
}

static void test_clock_advance(void)
{
    int64_t before = ts_clock_now_ms();
    ts_clock_advance_ms(3600000);
    int64_t after = ts_clock_now_ms();
    TS_CHECK(after - before >= 3600000);
    TS_CHECK(after - before < 3600000 + 5000);
    ts_clock_advance_ms(-3600000);
    TS_CHECK_INT_EQ(ts_clock_offset_ms(), 0);
}

static char captured[1024];
static void capture_sink(void *user, ts_log_level level, const char *line)
{
    (void)user;
    (void)level;
    snprintf(captured, sizeof captured, "%s", line);
}

static void test_log_prefix_and_level(void)
{
    ts_log_set_sink(capture_sink, NULL);
    ts_log_set_request_id("ab12");
    ts_log_info("http", "GET %s %d", "/healthz", 200);
    TS_CHECK(strstr(captured, " I http    r=ab12  GET /healthz 200") != NULL);
    captured[0] = '\0';
    ts_log_set_level(TS_LOG_WARN);
    ts_log_info("http", "dropped");
    TS_CHECK_STR_EQ(captured, "");
    ts_log_set_level(TS_LOG_INFO);
    ts_log_set_request_id(NULL);
    ts_log_set_sink(NULL, NULL);
    TS_CHECK_INT_EQ(ts_log_level_parse("warn"), TS_LOG_WARN);
    TS_CHECK_INT_EQ(ts_log_level_parse("loud"), -1);
}

int main(void)
{
    TS_RUN(test_error_set_and_wrap);
    TS_RUN(test_duration_parse);
    TS_RUN(test_clock_advance);
    TS_RUN(test_log_prefix_and_level);
    return ts_test_finish();
}
