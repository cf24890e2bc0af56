/*
 * ts_weights.h - the weights of a model: one or more .safetensors files,
 * each under a name prefix, looked up by name with the expected shape.
 *
 *     ts_weights *w;
 *     ts_weights_create(&w, err);
 *     ts_weights_add_file(w, "m/unet/diffusion_pytorch_model.safetensors", "unet.", err);
 *     ts_weights_add_file(w, "m/vae/diffusion_pytorch_model.safetensors", "vae.", err);
 *     const float *k;
 *     int64_t shape[4] = {320, 4, 3, 3};
 *     if (ts_weights_get_f32(w, "unet.conv_in.weight", 4, shape, &k, err) != TS_OK)
 *         ...err names the tensor, the expected and the actual shape...
 *     ...
 *     ts_weights_destroy(w);
 *
 * A missing tensor is TS_ERR_NOT_FOUND, a shape mismatch or a non-float
 * tensor TS_ERR_FORMAT; both messages name the tensor. Pickle checkpoints
 * (.ckpt, .pt, .pth, .bin) are refused with TS_ERR_UNSUPPORTED: unpickling
 * can run arbitrary code; convert them to .safetensors.
 *
 * f32 tensors are used straight from the mapping when aligned; f16/bf16
 * tensors are converted to f32 once per load and cached (owned by the
 * weights), and the mapped pages of a converted tensor are handed back to
 * the kernel at once, so loading peaks near the size of the f32 copies.
 * ts_weights_copy_f32 converts into a caller buffer without caching, for
 * weights that are repacked anyway (convolution kernels), and
 * ts_weights_get_view hands out half-precision tensors unconverted.
 *
 * Aliases let a loader present another layout under the names the networks
 * use: an alias is a name for a contiguous element range of another tensor
 * with its own shape (a fused q/k/v matrix split in three, a 1x1 convolution
 * seen as a matrix). Lookups by alias behave like lookups by name.
 *
 * Not thread-safe during loading; after the networks are built they only
 * read what they copied.
 */
#ifndef TS_WEIGHTS_H
#define TS_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_error.h"
#include "ts_models.h"
#include "ts_safetensors.h"

#define TS_WEIGHTS_MAX_FILES 8

ts_status ts_weights_create(ts_weights **out, ts_error *err);
void ts_weights_destroy(ts_weights *w);

/* Maps path and makes its tensors visible as prefix + name. prefix may be ""
 * or NULL. Refuses pickle files by extension and by content. */
ts_status ts_weights_add_file(ts_weights *w, const char *path, const char *prefix, ts_error *err);

/* Tensor record by full name (prefix included), following aliases to the
 * underlying record; NULL when absent. */
const ts_st_tensor *ts_weights_find(const ts_weights *w, const char *name);

/* Number of tensors over all files and the i-th (in file order, then name
 * order), for loaders that detect a layout from names. */
int ts_weights_count(const ts_weights *w);
const ts_st_tensor *ts_weights_at(const ts_weights *w, int i);

/* The "__metadata__" object of the i-th file added, as compact JSON, or
 * NULL when it has none. Hostile like the rest of the file. */
const char *ts_weights_file_metadata(const ts_weights *w, int i);

/* Adds name as an alias for elements [elem_offset, elem_offset + prod(shape))
 * of tensor src. Fails when src is missing or the range is outside it. */
ts_status ts_weights_alias(ts_weights *w, const char *name, const char *src, int64_t elem_offset,
                           int ndim, const int64_t *shape, ts_error *err);

/* The tensor as f32 after checking it has exactly the given shape. The
 * pointer stays valid until ts_weights_destroy. */
ts_status ts_weights_get_f32(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                             const float **out, ts_error *err);

/* A tensor as stored, without conversion: f16/bf16 tensors point into the
 * mapping (any alignment; widen them with ts_half_to_f32), f32 tensors are
 * given as from ts_weights_get_f32. The pointer stays valid until
 * ts_weights_destroy. Lets networks keep half-precision weights at half the
 * memory of f32 copies; the mapped pages they read count in the process's
 * resident memory and come back from the file if the kernel drops them. */
typedef struct ts_wview {
    ts_dtype dtype; /* TS_DTYPE_F32, TS_DTYPE_F16 or TS_DTYPE_BF16 */
    const void *data;
    int64_t count;
} ts_wview;

ts_status ts_weights_get_view(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                              ts_wview *out, ts_error *err);

/* Same check, converting into dst (prod(shape) floats), no caching. */
ts_status ts_weights_copy_f32(ts_weights *w, const char *name, int ndim, const int64_t *shape,
                              float *dst, ts_error *err);

/* Bytes of f32 copies held by the cache (for memory reports). */
size_t ts_weights_cached_bytes(const ts_weights *w);

/* Tells the kernel the mapped pages may be dropped (after the networks have
 * repacked what they need); pages come back from the file if read again. */
void ts_weights_drop_pages(ts_weights *w);

/* Releases every cached f32 copy made so far. Only safe when no network
 * built from w is alive (networks keep pointers into the cache). */
void ts_weights_release_cache(ts_weights *w);

#endif
