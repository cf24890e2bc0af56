/*
 * ts_safetensors.h - a .safetensors file, memory-mapped and checked.
 *
 * Format: 8 bytes little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section. Offsets are relative to the
 * data section.
 *
 * The file is hostile until checked. ts_safetensors_open refuses (with
 * TS_ERR_FORMAT and a sentence naming the tensor): a header length past the
 * end of the file or above TS_SAFETENSORS_HEADER_MAX, a header that is not a
 * JSON object, a tensor without dtype/shape/data_offsets, an unknown dtype
 * string, more than TS_SAFETENSORS_MAX_DIMS dimensions, a dimension above
 * TS_SAFETENSORS_DIM_MAX or an element count that overflows, a byte range
 * that does not equal count * element size, lies outside the data section or
 * overlaps another tensor. Tensors of a known non-float dtype (I64 position
 * ids in many checkpoints) are kept in the table so the file opens; asking
 * for their values as floats fails naming the tensor and the dtype.
 *
 * The data is never read whole: the mapping is read-only and pages come in
 * as tensors are used.
 *
 * Ownership: the caller destroys what open returns; tensor records and data
 * pointers live until then.
 */
#ifndef TS_SAFETENSORS_H
#define TS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"

#define TS_SAFETENSORS_HEADER_MAX (100u * 1024u * 1024u)
#define TS_SAFETENSORS_MAX_DIMS   8
#define TS_SAFETENSORS_DIM_MAX    ((int64_t)1 << 31)
#define TS_SAFETENSORS_NAME_MAX   256

typedef enum ts_dtype {
    TS_DTYPE_F32 = 0,
    TS_DTYPE_F16,
    TS_DTYPE_BF16,
    TS_DTYPE_OTHER, /* a known safetensors dtype we do not compute with (I64, U8, ...) */
} ts_dtype;

typedef struct ts_st_tensor {
    char name[TS_SAFETENSORS_NAME_MAX];
    ts_dtype dtype;
    char dtype_name[8]; /* as written in the file: "F16", "I64", ... */
    int ndim;
    int64_t shape[TS_SAFETENSORS_MAX_DIMS];
    int64_t count; /* product of shape (1 for a scalar) */
    const void *data;
    size_t nbytes;
} ts_st_tensor;

typedef struct ts_safetensors {
    void *map;
    size_t map_size;
    int n_tensors;
    ts_st_tensor *tensors; /* sorted by name */
    char *metadata;        /* the "__metadata__" object as compact JSON, or NULL */
} ts_safetensors;

ts_status ts_safetensors_open(const char *path, ts_safetensors **out, ts_error *err);

/* Same checks on a buffer the caller owns (used by the fuzzer and tests);
 * the result points into buf, which must outlive it. */
ts_status ts_safetensors_parse(const void *buf, size_t size, ts_safetensors **out, ts_error *err);

void ts_safetensors_close(ts_safetensors *st);

/* Binary search by exact name; NULL when absent. */
const ts_st_tensor *ts_safetensors_find(const ts_safetensors *st, const char *name);

/* Element size in bytes of a dtype name ("F16" -> 2), 0 when unknown. */
int ts_safetensors_dtype_size(const char *dtype_name);

/* Writes a file of f32 tensors (tests and tools). shapes[i] has ndims[i] dims. */
ts_status ts_safetensors_write_f32(const char *path, int n, const char *const *names,
                                   const int *ndims, const int64_t *const *shapes,
                                   const float *const *data, ts_error *err);

/* IEEE half and bfloat16 to float. */
float ts_f16_to_f32(uint16_t h);
float ts_bf16_to_f32(uint16_t h);
uint16_t ts_f32_to_f16(float f);

#endif
