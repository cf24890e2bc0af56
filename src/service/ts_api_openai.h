/*
 * ts_api_openai.h - the OpenAI-compatible Images API, so the official client
 * libraries work unchanged against TogetherShot.
 *
 *   POST /v1/images/generations   JSON: prompt, n, size "WxH", response_format
 *                                 url|b64_json, output_format png|jpeg|webp, and
 *                                 our extras negative_prompt, seed, steps, guidance
 *   POST /v1/images/edits         multipart: image or image[] (1-4), optional mask,
 *                                 and the same fields
 *   GET  /v1/models               the loaded model, in OpenAI's list shape
 *   GET  /v1/models/:id
 *
 * Both image routes are synchronous, as OpenAI's are: the request is parked
 * (no thread waits) until its job ends, then answers
 *   {"created": T, "data": [{"b64_json": "..."} | {"url": "..."}],
 *    "output_format": "png", "size": "512x512",          (OpenAI's fields)
 *    "native_size": "64x64", "upscaled": true}           (ours; docs/API.md)
 * A "model" field, when sent, must be the id GET /v1/models lists.
 * A url is the native download address with the job's capability token in
 * its query, valid until retention. With b64_json the images are in the
 * answer, so the job is destroyed as soon as the answer is queued.
 * Errors use OpenAI's shape (ts_http_respond_error); a portrait-rights refusal
 * is 422 with code "portrait_rights".
 *
 * Limits: a client that disconnects while waiting is noticed only when its
 * job ends (libmicrohttpd does not watch parked connections); the job runs
 * to completion and its results are destroyed (b64_json) or expire (url).
 */
#ifndef TS_API_OPENAI_H
#define TS_API_OPENAI_H

#include "ts_api_jobs.h"
#include "ts_http.h"

ts_status ts_api_openai_register(ts_api *api, ts_http_server *srv, ts_error *err);

#endif
