/*
 * ts_face_weights.h - reads a TensorFlow.js weights manifest and its .bin
 * shards (the format face-api ships its pretrained models in) into named
 * float tensors.
 *
 *     ts_face_weights *w;
 *     ts_face_weights_load("models/face", "face_recognition_model", &w, &err);
 *     const ts_face_tensor *t = ts_face_weights_get(w, "fc", 2, &err);
 *     ...
 *     ts_face_weights_free(w);
 *
 * The manifest (<dir>/<name>-weights_manifest.json) is a JSON array of groups
 * {"paths": [shard files], "weights": [{"name", "shape", "dtype",
 * "quantization"?}]}; each group's weights lie back to back in the
 * concatenation of its shards. Quantized weights (uint8 or uint16 with
 * {"scale", "min"}) are stored one code per element and restored here as
 * code * scale + min, which is what TensorFlow.js does when it loads them.
 * float32 and int32 tensors are 4 bytes per element, little-endian.
 *
 * Model files are hostile input (POLICY.md P11): sizes, shapes and names are
 * checked, shard paths may not leave the folder, and the total is capped at
 * TS_FACE_WEIGHTS_MAX_BYTES.
 *
 * Ownership: the weights own every tensor; pointers from ts_face_weights_get
 * live until ts_face_weights_free.
 */
#ifndef TS_FACE_WEIGHTS_H
#define TS_FACE_WEIGHTS_H

#include <stddef.h>

#include "ts_error.h"

#define TS_FACE_WEIGHTS_MAX_BYTES ((size_t)64 << 20)
#define TS_FACE_TENSOR_MAX_RANK   4

typedef struct ts_face_tensor {
    char *name;
    int rank;
    int shape[TS_FACE_TENSOR_MAX_RANK];
    size_t count;  /* product of shape (1 for a scalar) */
    float *values; /* count values; int32 tensors are converted to float */
} ts_face_tensor;

typedef struct ts_face_weights ts_face_weights;

ts_status ts_face_weights_load(const char *dir, const char *model_name, ts_face_weights **out,
                               ts_error *err);
void ts_face_weights_free(ts_face_weights *w);

/* The tensor called name, checked to have the given rank; NULL and
 * TS_ERR_FORMAT in err if it is missing or has another rank. */
const ts_face_tensor *ts_face_weights_get(const ts_face_weights *w, const char *name, int rank,
                                          ts_error *err);

#endif
