/*
 * fuzz_api_request.c - a generation request body as the API routes turn it
 * into job parameters (ts_api_parse_body): JSON with every field, wrong
 * types, huge numbers, duplicate keys; or multipart with form fields and
 * uploads that go through the image decoders. The first byte picks the
 * Content-Type and the route's rules (images allowed or required); the rest
 * is the body. Only the service's configuration is needed, no server.
 */
#include <stdint.h>
#include <string.h>

#include "ts_api_jobs.h"
#include "ts_config.h"

static ts_config cfg;
static ts_api api;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ts_config_default(&cfg);
    memset(&api, 0, sizeof api);
    api.cfg = &cfg;
    ts_api_json_wipe_on_free();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const types[] = {
        "application/json",
        "multipart/form-data; boundary=xYzZY",
        NULL,
        "application/json; charset=utf-8",
    };
    const char *ctype = types[data[0] & 3];
    int allow_images = (data[0] >> 2) & 1;
    int need_images = allow_images && ((data[0] >> 3) & 1);

    ts_api_input in;
    const char *param = NULL;
    ts_error err;
    if (ts_api_parse_body(&api, ctype, data + 1, size - 1, allow_images, need_images, &in, &param,
                          &err) == TS_OK) {
        /* The parsed request must hold what the limits promise. */
        if (in.rq.prompt && strlen(in.rq.prompt) > cfg.limits.max_prompt_bytes)
            __builtin_trap();
        if (in.rq.n > cfg.limits.max_n || in.rq.n_inputs > cfg.limits.max_uploads)
            __builtin_trap();
        if (in.rq.width > cfg.limits.max_width || in.rq.height > cfg.limits.max_height)
            __builtin_trap();
        ts_api_input_free(&in);
    }
    return 0;
}
