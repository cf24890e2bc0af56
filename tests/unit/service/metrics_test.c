/* metrics_test.c - the Prometheus exposition parses back line by line, the
 * numbers add up, and no label can carry anything personal (POLICY.md P7). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_metrics.h"
#include "ts_test.h"

/* One parsed sample line: name, label text between braces, value. */
typedef struct sample {
    char name[128];
    char labels[256];
    double value;
} sample;

/* Parses the text format strictly enough to catch malformed output: every
 * line is a comment (# HELP / # TYPE), or NAME[{k="v",...}] VALUE. Returns
 * the number of samples, or -1 on a malformed line. */
static int parse(const char *text, sample *out, int max)
{
    int n = 0;
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end)
            return -1; /* every line ends with a newline */
        size_t len = (size_t)(end - line);
        char buf[512];
        if (len >= sizeof buf)
            return -1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = end + 1;
        if (buf[0] == '#') {
            if (strncmp(buf, "# HELP ", 7) != 0 && strncmp(buf, "# TYPE ", 7) != 0)
                return -1;
            continue;
        }
        if (n == max)
            return -1;
        sample *s = &out[n];
        memset(s, 0, sizeof *s);
        size_t i = 0;
        while (buf[i] && (buf[i] == '_' || (buf[i] >= 'a' && buf[i] <= 'z') ||
                          (buf[i] >= 'A' && buf[i] <= 'Z') || (buf[i] >= '0' && buf[i] <= '9')))
            i++;
        if (i == 0 || i >= sizeof s->name)
            return -1;
        memcpy(s->name, buf, i);
        if (buf[i] == '{') {
            const char *close = strchr(buf + i, '}');
            if (!close || (size_t)(close - buf - i - 1) >= sizeof s->labels)
                return -1;
            memcpy(s->labels, buf + i + 1, (size_t)(close - buf - i - 1));
            i = (size_t)(close - buf) + 1;
            /* Each label is key="value" with a value of [a-z0-9_.+] only. */
            const char *p = s->labels;
            while (*p) {
                const char *eq = strchr(p, '=');
                if (!eq || eq[1] != '"')
                    return -1;
                const char *q = eq + 2;
                while (*q && *q != '"') {
                    if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_' ||
                          *q == '.' || *q == '+' || *q == 'I' || *q == 'n' || *q == 'f' ||
                          *q == 'x'))
                        return -1;
                    q++;
                }
                if (*q != '"')
                    return -1;
                p = q + 1;
                if (*p == ',')
                    p++;
                else if (*p)
                    return -1;
            }
        }
        if (buf[i] != ' ')
            return -1;
        char *vend;
        s->value = strtod(buf + i + 1, &vend);
        if (vend == buf + i + 1 || *vend)
            return -1;
        n++;
    }
    return n;
}

static double find(const sample *s, int n, const char *name, const char *labels)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0 && strcmp(s[i].labels, labels) == 0)
            return s[i].value;
    return -1;
}

static sample samples[2048];

static void test_counts_and_format(void)
{
    ts_metrics *m;
    ts_error err;
    TS_CHECK_INT_EQ(ts_metrics_create(&m, &err), TS_OK);
    ts_metrics_request(m, TS_ROUTE_GENERATIONS, 200, 0.003);
    ts_metrics_request(m, TS_ROUTE_GENERATIONS, 200, 0.2);
    ts_metrics_request(m, TS_ROUTE_GENERATIONS, 429, 0.001);
    ts_metrics_request(m, TS_ROUTE_JOB_STATUS, 404, 0.001);
    ts_metrics_request(m, (ts_route)999, 500, 0.001); /* out of range: "other" */
    ts_metrics_job(m, TS_JOB_OUTCOME_DONE, 7.0);
    ts_metrics_job(m, TS_JOB_OUTCOME_DONE, 45.0);
    ts_metrics_job(m, TS_JOB_OUTCOME_REFUSED, 1.0);
    ts_metrics_refusal(m, TS_REFUSAL_RATE_LIMIT);
    ts_metrics_refusal(m, TS_REFUSAL_RATE_LIMIT);
    ts_metrics_set_queue_length(m, 3);

    char *text;
    size_t len;
    TS_CHECK_INT_EQ(ts_metrics_render(m, &text, &len, &err), TS_OK);
    TS_CHECK_INT_EQ(strlen(text), len);
    int n = parse(text, samples, 2048);
    TS_CHECK(n > 100);
    const char *req = "togethershot_requests_total";
    TS_CHECK_NEAR(find(samples, n, req, "route=\"generations\",status=\"2xx\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, req, "route=\"generations\",status=\"4xx\""), 1, 0);
    TS_CHECK_NEAR(find(samples, n, req, "route=\"job_status\",status=\"4xx\""), 1, 0);
    TS_CHECK_NEAR(find(samples, n, req, "route=\"other\",status=\"5xx\""), 1, 0);
    TS_CHECK_NEAR(find(samples, n, req, "route=\"page\",status=\"2xx\""), 0, 0);

    /* Histogram buckets are cumulative; the count equals +Inf. */
    const char *h = "togethershot_request_duration_seconds_bucket";
    TS_CHECK_NEAR(find(samples, n, h, "route=\"generations\",le=\"0.005\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, h, "route=\"generations\",le=\"0.1\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, h, "route=\"generations\",le=\"0.25\""), 3, 0);
    TS_CHECK_NEAR(find(samples, n, h, "route=\"generations\",le=\"+Inf\""), 3, 0);
    TS_CHECK_NEAR(
        find(samples, n, "togethershot_request_duration_seconds_count", "route=\"generations\""), 3,
        0);
    TS_CHECK_NEAR(
        find(samples, n, "togethershot_request_duration_seconds_sum", "route=\"generations\""),
        0.204, 1e-6);

    TS_CHECK_NEAR(find(samples, n, "togethershot_jobs_total", "outcome=\"done\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_jobs_total", "outcome=\"refused\""), 1, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_generation_seconds_count", ""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_generation_seconds_sum", ""), 52, 1e-6);
    TS_CHECK_NEAR(find(samples, n, "togethershot_generation_seconds_bucket", "le=\"10\""), 1, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_generation_seconds_bucket", "le=\"60\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_refusals_total", "reason=\"rate_limit\""), 2, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_queue_length", ""), 3, 0);

    /* Only these label keys exist: nothing per client, per job or per user. */
    for (int i = 0; i < n; i++) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", samples[i].labels);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            *eq = '\0';
            TS_CHECK(strcmp(tok, "route") == 0 || strcmp(tok, "status") == 0 ||
                     strcmp(tok, "outcome") == 0 || strcmp(tok, "reason") == 0 ||
                     strcmp(tok, "le") == 0);
        }
    }
    free(text);
    ts_metrics_destroy(m);
}

static void *hammer(void *arg)
{
    ts_metrics *m = arg;
    for (int i = 0; i < 10000; i++) {
        ts_metrics_request(m, TS_ROUTE_PAGE, 200, 0.001);
        ts_metrics_job(m, TS_JOB_OUTCOME_DONE, 1.0);
    }
    return NULL;
}

static void test_threads(void)
{
    ts_metrics *m;
    ts_error err;
    ts_metrics_create(&m, &err);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, m);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text;
    size_t len;
    TS_CHECK_INT_EQ(ts_metrics_render(m, &text, &len, &err), TS_OK);
    int n = parse(text, samples, 2048);
    TS_CHECK_NEAR(find(samples, n, "togethershot_requests_total", "route=\"page\",status=\"2xx\""),
                  40000, 0);
    TS_CHECK_NEAR(find(samples, n, "togethershot_jobs_total", "outcome=\"done\""), 40000, 0);
    free(text);
    ts_metrics_destroy(m);
    /* A NULL metrics handle is a no-op everywhere. */
    ts_metrics_request(NULL, TS_ROUTE_PAGE, 200, 0);
    ts_metrics_job(NULL, TS_JOB_OUTCOME_DONE, 0);
    ts_metrics_refusal(NULL, TS_REFUSAL_LIMIT);
    TS_CHECK_STR_EQ(ts_route_name(TS_ROUTE_JOB_EVENTS), "job_events");
    TS_CHECK(ts_route_is_expensive(TS_ROUTE_EDITS));
    TS_CHECK(!ts_route_is_expensive(TS_ROUTE_JOB_DOWNLOAD));
}

int main(void)
{
    TS_RUN(test_counts_and_format);
    TS_RUN(test_threads);
    return ts_test_finish();
}
