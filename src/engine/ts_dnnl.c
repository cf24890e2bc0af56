/*
 * ts_dnnl.c - oneDNN convolution and matmul with per-shape primitive caches.
 *
 * Design note. A cache entry owns a primitive and whatever it needs around it
 * (reorders between plain and blocked activations, memory objects whose data
 * handles are set per call). Blocked activation buffers are shared by all
 * entries of one ts_dnnl and grow to the largest shape seen; they are
 * scratch, valid only within one call. A network meets a few dozen shapes
 * per image size; past DNNL_CACHE_MAX shapes the oldest is evicted (a server
 * that sees many image sizes rebuilds primitives for the old ones).
 */
#include "ts_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "ts_half.h"

#define DNNL_CACHE_MAX 512

#define DN(call, what)                                                                             \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            s = ts_error_set(err, TS_ERR_INTERNAL, "oneDNN %s failed (status %d)", what,           \
                             (int)st_);                                                            \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* Scratch slots: blocked activations, the kernel in a primitive's layout,
 * and a half-precision weight widened to f32. */
enum { SCR_SRC, SCR_DST, SCR_KERNEL, SCR_WIDE, N_SCRATCH };

/* One convolution call: h rows of the input (a tile of rows_in rows) to the
 * matching rows of an output of rows_out rows; rows_in and rows_out only set
 * the plain layouts' channel strides. pt/pb are this tile's padding. */
typedef struct conv_key {
    int cin, cout, k, stride, pt, pl, pb, pr, batch, h, w;
    int rows_in, rows_out;
} conv_key;

/* Above this many bytes of blocked input plus output activations a call is
 * split into tiles of output rows, so the reorder buffers stay bounded (a
 * 512x512 VAE layer would otherwise hold 512 MiB of blocked copies). */
#define CONV_TILE_BYTES ((size_t)32 << 20)

typedef struct conv_entry {
    conv_key key;
    dnnl_primitive_t prim;
    dnnl_primitive_t src_reorder;     /* plain -> blocked, or NULL */
    dnnl_primitive_t dst_reorder;     /* blocked -> plain, or NULL */
    dnnl_memory_desc_t wmd;           /* the kernel layout this primitive wants */
    dnnl_memory_t m_src_plain, m_src; /* m_src is m_src_plain when no reorder */
    dnnl_memory_t m_dst_plain, m_dst;
    dnnl_memory_t m_w, m_bias;
    size_t src_bytes, dst_bytes, w_bytes;
} conv_entry;

typedef struct matmul_key {
    int batch, m, n, k, trans_b, has_bias, accumulate;
    int64_t lda, sa, ldb, sb, ldc, sc;
    float alpha;
} matmul_key;

typedef struct matmul_entry {
    matmul_key key;
    dnnl_primitive_t prim;
    dnnl_memory_t m_a, m_b, m_c, m_bias;
} matmul_entry;

struct ts_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    conv_entry *convs[DNNL_CACHE_MAX];
    int n_convs;
    matmul_entry *matmuls[DNNL_CACHE_MAX];
    int n_matmuls;
    void *scratch[N_SCRATCH];
    size_t scratch_size[N_SCRATCH];
    uint64_t flops;
    size_t tile_bytes; /* CONV_TILE_BYTES unless a test asks for less */
};

int ts_dnnl_cpu_has_bf16(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

ts_status ts_dnnl_create(int force_f32, ts_dnnl **out, ts_error *err)
{
    ts_status s = TS_OK;
    ts_dnnl *d = calloc(1, sizeof(*d));
    if (!d)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory creating oneDNN context");
    d->tile_bytes = CONV_TILE_BYTES;
    DN(dnnl_engine_create(&d->engine, dnnl_cpu, 0), "engine creation");
    DN(dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags), "stream creation");
    *out = d;
    return TS_OK;
fail:
    ts_dnnl_destroy(d);
    return s;
}

static void conv_entry_free(conv_entry *e)
{
    if (!e)
        return;
    dnnl_primitive_destroy(e->prim);
    dnnl_primitive_destroy(e->src_reorder);
    dnnl_primitive_destroy(e->dst_reorder);
    if (e->m_src != e->m_src_plain)
        dnnl_memory_destroy(e->m_src);
    dnnl_memory_destroy(e->m_src_plain);
    if (e->m_dst != e->m_dst_plain)
        dnnl_memory_destroy(e->m_dst);
    dnnl_memory_destroy(e->m_dst_plain);
    dnnl_memory_destroy(e->m_w);
    dnnl_memory_destroy(e->m_bias);
    free(e);
}

static void matmul_entry_free(matmul_entry *e)
{
    if (!e)
        return;
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->m_a);
    dnnl_memory_destroy(e->m_b);
    dnnl_memory_destroy(e->m_c);
    dnnl_memory_destroy(e->m_bias);
    free(e);
}

void ts_dnnl_destroy(ts_dnnl *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_convs; i++)
        conv_entry_free(d->convs[i]);
    for (int i = 0; i < d->n_matmuls; i++)
        matmul_entry_free(d->matmuls[i]);
    for (int i = 0; i < N_SCRATCH; i++)
        free(d->scratch[i]);
    if (d->stream)
        dnnl_stream_destroy(d->stream);
    if (d->engine)
        dnnl_engine_destroy(d->engine);
    free(d);
}

void ts_dnnl_trim(ts_dnnl *d)
{
    for (int i = 0; i < N_SCRATCH; i++) {
        free(d->scratch[i]);
        d->scratch[i] = NULL;
        d->scratch_size[i] = 0;
    }
}

void ts_dnnl_set_tile_bytes(ts_dnnl *d, size_t bytes)
{
    d->tile_bytes = bytes ? bytes : CONV_TILE_BYTES;
}

uint64_t ts_dnnl_flops(const ts_dnnl *d)
{
    return d->flops;
}

void ts_dnnl_flops_reset(ts_dnnl *d)
{
    d->flops = 0;
}

static void *scratch_get(ts_dnnl *d, int i, size_t bytes, ts_error *err)
{
    if (d->scratch_size[i] < bytes) {
        free(d->scratch[i]);
        d->scratch[i] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        d->scratch_size[i] = d->scratch[i] ? bytes : 0;
        if (!d->scratch[i])
            ts_error_set(err, TS_ERR_NOMEM, "out of memory for %zu MiB of oneDNN scratch",
                         bytes >> 20);
    }
    return d->scratch[i];
}

/* ------------------------------------------------------------ convolution */

int ts_conv2d_out_size(int in, int k, int stride, int pad_lo, int pad_hi)
{
    return (in + pad_lo + pad_hi - k) / stride + 1;
}

/* A convolution primitive descriptor for one problem, with src, kernel and
 * dst layouts left to oneDNN. */
static dnnl_status_t conv_pd(ts_dnnl *d, const conv_key *k, dnnl_primitive_desc_t *pd)
{
    int ho = ts_conv2d_out_size(k->h, k->k, k->stride, k->pt, k->pb);
    int wo = ts_conv2d_out_size(k->w, k->k, k->stride, k->pl, k->pr);
    dnnl_dims_t src_dims = {k->batch, k->cin, k->h, k->w};
    dnnl_dims_t w_dims = {k->cout, k->cin, k->k, k->k};
    dnnl_dims_t b_dims = {k->cout};
    dnnl_dims_t dst_dims = {k->batch, k->cout, ho, wo};
    dnnl_dims_t strides = {k->stride, k->stride};
    dnnl_dims_t pad_l = {k->pt, k->pl};
    dnnl_dims_t pad_r = {k->pb, k->pr};
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
    dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_md, 4, w_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_a);
    dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_convolution_desc_t cd;
    dnnl_status_t st =
        dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                           &src_md, &w_md, &b_md, &dst_md, strides, pad_l, pad_r);
    if (st != dnnl_success)
        return st;
    return dnnl_primitive_desc_create(pd, &cd, NULL, d->engine, NULL);
}

/* Reorders memory src into dst (one-off, for kernels at load). */
static dnnl_status_t reorder_once(ts_dnnl *d, dnnl_memory_t src, dnnl_memory_t dst)
{
    const dnnl_memory_desc_t *smd, *dmd;
    dnnl_memory_get_memory_desc(src, &smd);
    dnnl_memory_get_memory_desc(dst, &dmd);
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&rpd, smd, d->engine, dmd, d->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&r, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        st = dnnl_primitive_execute(r, d->stream, 2, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(d->stream);
    }
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    return st;
}

ts_status ts_conv2d_init(ts_dnnl *d, ts_conv2d *c, const float *weight, const float *bias, int cin,
                         int cout, int k, int stride, int pad_t, int pad_l, int pad_b, int pad_r,
                         ts_error *err)
{
    ts_status s = TS_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t plain = NULL;
    memset(c, 0, sizeof(*c));
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad_t = pad_t;
    c->pad_l = pad_l;
    c->pad_b = pad_b;
    c->pad_r = pad_r;

    /* The kernel layout oneDNN picks for a typical problem (32x32, batch 2);
     * other shapes that want another layout reorder it per call. */
    conv_key key = {cin, cout, k, stride, pad_t, pad_l, pad_b, pad_r, 2, 32, 32, 32, 0};
    DN(conv_pd(d, &key, &pd), "convolution descriptor");
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    c->wdesc = malloc(sizeof(dnnl_memory_desc_t));
    c->bias = calloc((size_t)cout, sizeof(float));
    if (!c->wdesc || !c->bias) {
        s = ts_error_set(err, TS_ERR_NOMEM, "out of memory for a convolution kernel");
        goto fail;
    }
    memcpy(c->wdesc, wmd, sizeof(*wmd));
    if (bias)
        memcpy(c->bias, bias, (size_t)cout * sizeof(float));

    dnnl_dims_t w_dims = {cout, cin, k, k};
    dnnl_memory_desc_t plain_md;
    dnnl_memory_desc_init_by_tag(&plain_md, 4, w_dims, dnnl_f32, dnnl_oihw);
    DN(dnnl_memory_create(&plain, &plain_md, d->engine, (void *)weight), "kernel memory");
    dnnl_memory_t wm;
    DN(dnnl_memory_create(&wm, wmd, d->engine, DNNL_MEMORY_ALLOCATE), "kernel allocation");
    c->wmem = wm;
    DN(reorder_once(d, plain, wm), "kernel reorder");

    dnnl_memory_destroy(plain);
    dnnl_primitive_desc_destroy(pd);
    return TS_OK;
fail:
    dnnl_memory_destroy(plain);
    dnnl_primitive_desc_destroy(pd);
    ts_conv2d_free(c);
    return s;
}

void ts_conv2d_free(ts_conv2d *c)
{
    if (c->wmem)
        dnnl_memory_destroy((dnnl_memory_t)c->wmem);
    free(c->wdesc);
    free(c->bias);
    free(c->whalf);
    memset(c, 0, sizeof(*c));
}

ts_status ts_conv2d_keep_half(ts_conv2d *c, int dtype, ts_error *err)
{
    if (dtype != TS_DTYPE_F16 && dtype != TS_DTYPE_BF16)
        return ts_error_set(err, TS_ERR_INTERNAL, "a kernel can be kept as f16 or bf16 only");
    if (!c->wmem)
        return TS_OK; /* already half */
    size_t n = dnnl_memory_desc_get_size(c->wdesc) / sizeof(float);
    void *wp = NULL;
    dnnl_memory_get_data_handle((dnnl_memory_t)c->wmem, &wp);
    c->whalf = malloc(n ? n * 2 : 2);
    if (!c->whalf)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a convolution kernel");
    ts_f32_to_half((ts_dtype)dtype, wp, n, c->whalf);
    c->whalf_dtype = dtype;
    dnnl_memory_destroy((dnnl_memory_t)c->wmem);
    c->wmem = NULL;
    return TS_OK;
}

static ts_status conv_entry_make(ts_dnnl *d, const conv_key *key, conv_entry **out, ts_error *err)
{
    ts_status s = TS_OK;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    conv_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory caching a convolution");
    e->key = *key;
    DN(conv_pd(d, key, &pd), "convolution descriptor");
    DN(dnnl_primitive_create(&e->prim, pd), "convolution primitive");

    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    e->wmd = *w_md;
    e->src_bytes = dnnl_memory_desc_get_size(src_md);
    e->dst_bytes = dnnl_memory_desc_get_size(dst_md);
    e->w_bytes = dnnl_memory_desc_get_size(w_md);

    /* Plain (B, C, rows, W) tiles inside images of rows_in / rows_out rows. */
    dnnl_memory_desc_t src_plain, dst_plain, b_md;
    dnnl_dims_t b_dims = {key->cout};
    const int64_t *sd = src_md->dims, *dd = dst_md->dims;
    dnnl_dims_t src_str = {sd[1] * key->rows_in * sd[3], key->rows_in * sd[3], sd[3], 1};
    dnnl_dims_t dst_str = {dd[1] * key->rows_out * dd[3], key->rows_out * dd[3], dd[3], 1};
    DN(dnnl_memory_desc_init_by_strides(&src_plain, 4, sd, dnnl_f32, src_str), "src desc");
    DN(dnnl_memory_desc_init_by_strides(&dst_plain, 4, dd, dnnl_f32, dst_str), "dst desc");
    dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_a);
    DN(dnnl_memory_create(&e->m_src_plain, &src_plain, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_dst_plain, &dst_plain, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_w, w_md, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_bias, &b_md, d->engine, DNNL_MEMORY_NONE), "memory");

    if (dnnl_memory_desc_equal(src_md, &src_plain)) {
        e->m_src = e->m_src_plain;
    } else {
        DN(dnnl_memory_create(&e->m_src, src_md, d->engine, DNNL_MEMORY_NONE), "memory");
        DN(dnnl_reorder_primitive_desc_create(&rpd, &src_plain, d->engine, src_md, d->engine, NULL),
           "reorder descriptor");
        DN(dnnl_primitive_create(&e->src_reorder, rpd), "reorder primitive");
        dnnl_primitive_desc_destroy(rpd);
        rpd = NULL;
    }
    if (dnnl_memory_desc_equal(dst_md, &dst_plain)) {
        e->m_dst = e->m_dst_plain;
    } else {
        DN(dnnl_memory_create(&e->m_dst, dst_md, d->engine, DNNL_MEMORY_NONE), "memory");
        DN(dnnl_reorder_primitive_desc_create(&rpd, dst_md, d->engine, &dst_plain, d->engine, NULL),
           "reorder descriptor");
        DN(dnnl_primitive_create(&e->dst_reorder, rpd), "reorder primitive");
        dnnl_primitive_desc_destroy(rpd);
        rpd = NULL;
    }
    dnnl_primitive_desc_destroy(pd);
    *out = e;
    return TS_OK;
fail:
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    conv_entry_free(e);
    return s;
}

/* One primitive call on a tile: rows [r0, r0 + key->h) of x with the
 * tile's own top/bottom padding, writing its output rows at y. wp is the
 * kernel in layout c->wdesc, f32. */
static ts_status conv_run(ts_dnnl *d, const ts_conv2d *c, const conv_key *key, const void *wp,
                          const float *x, float *y, ts_error *err)
{
    ts_status s = TS_OK;
    conv_entry *e = NULL;
    for (int i = 0; i < d->n_convs && !e; i++)
        if (memcmp(&d->convs[i]->key, key, sizeof(*key)) == 0)
            e = d->convs[i];
    if (!e) {
        if (d->n_convs >= DNNL_CACHE_MAX) { /* evict the oldest shape */
            conv_entry_free(d->convs[0]);
            memmove(d->convs, d->convs + 1, (size_t)(d->n_convs - 1) * sizeof(d->convs[0]));
            d->n_convs--;
        }
        s = conv_entry_make(d, key, &e, err);
        if (s != TS_OK)
            return s;
        d->convs[d->n_convs++] = e;
    }

    /* The kernel as given, or reordered into this primitive's layout. */
    const dnnl_memory_desc_t *have = c->wdesc;
    if (dnnl_memory_desc_equal(have, &e->wmd)) {
        DN(dnnl_memory_set_data_handle(e->m_w, (void *)wp), "set handle");
    } else {
        dnnl_memory_t given = NULL;
        void *buf = scratch_get(d, SCR_KERNEL, e->w_bytes, err);
        if (!buf)
            return err->status;
        DN(dnnl_memory_set_data_handle(e->m_w, buf), "set handle");
        DN(dnnl_memory_create(&given, have, d->engine, (void *)wp), "kernel memory");
        dnnl_status_t rst = reorder_once(d, given, e->m_w);
        dnnl_memory_destroy(given);
        DN(rst, "kernel reorder");
    }
    DN(dnnl_memory_set_data_handle(e->m_bias, c->bias), "set handle");
    DN(dnnl_memory_set_data_handle(e->m_src_plain, (void *)x), "set handle");
    DN(dnnl_memory_set_data_handle(e->m_dst_plain, y), "set handle");
    if (e->src_reorder) {
        void *buf = scratch_get(d, SCR_SRC, e->src_bytes, err);
        if (!buf)
            return err->status;
        DN(dnnl_memory_set_data_handle(e->m_src, buf), "set handle");
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, e->m_src_plain}, {DNNL_ARG_TO, e->m_src}};
        DN(dnnl_primitive_execute(e->src_reorder, d->stream, 2, args), "src reorder");
    }
    if (e->dst_reorder) {
        void *buf = scratch_get(d, SCR_DST, e->dst_bytes, err);
        if (!buf)
            return err->status;
        DN(dnnl_memory_set_data_handle(e->m_dst, buf), "set handle");
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->m_src},
                               {DNNL_ARG_WEIGHTS, e->m_w},
                               {DNNL_ARG_BIAS, e->m_bias},
                               {DNNL_ARG_DST, e->m_dst}};
    DN(dnnl_primitive_execute(e->prim, d->stream, 4, args), "convolution");
    if (e->dst_reorder) {
        dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, e->m_dst}, {DNNL_ARG_TO, e->m_dst_plain}};
        DN(dnnl_primitive_execute(e->dst_reorder, d->stream, 2, rargs), "dst reorder");
    }
    DN(dnnl_stream_wait(d->stream), "stream wait");
    return TS_OK;
fail:
    return s;
}

ts_status ts_conv2d_forward(ts_dnnl *d, const ts_conv2d *c, const float *x, int batch, int h, int w,
                            float *y, ts_error *err)
{
    ts_status s = TS_OK;
    int ho = ts_conv2d_out_size(h, c->k, c->stride, c->pad_t, c->pad_b);
    int wo = ts_conv2d_out_size(w, c->k, c->stride, c->pad_l, c->pad_r);

    /* The kernel in its stored layout as f32: widened once per call when
     * kept half (every tile below shares it). */
    const void *wp = NULL;
    if (c->whalf) {
        size_t bytes = dnnl_memory_desc_get_size(c->wdesc);
        float *buf = scratch_get(d, SCR_WIDE, bytes, err);
        if (!buf)
            return err->status;
        ts_half_to_f32((ts_dtype)c->whalf_dtype, c->whalf, bytes / sizeof(float), buf);
        wp = buf;
    } else {
        void *p = NULL;
        dnnl_memory_get_data_handle((dnnl_memory_t)c->wmem, &p);
        wp = p;
    }

    /* Output rows per tile: blocked copies of one output row and its input
     * rows (channels padded to 16) within CONV_TILE_BYTES. */
    size_t cin16 = ((size_t)c->cin + 15) & ~(size_t)15,
           cout16 = ((size_t)c->cout + 15) & ~(size_t)15;
    size_t row_bytes = (size_t)batch * sizeof(float) *
                       (cin16 * (size_t)c->stride * (size_t)w + cout16 * (size_t)wo);
    int tile = (int)(d->tile_bytes / (row_bytes ? row_bytes : 1));
    if (tile < 1)
        tile = 1;
    if (tile >= ho)
        tile = ho;

    for (int o0 = 0; o0 < ho && s == TS_OK; o0 += tile) {
        int o1 = o0 + tile < ho ? o0 + tile : ho;
        /* Input rows [in0, in1) feed output rows [o0, o1); the part outside
         * [0, h) is this tile's padding. */
        int in0 = o0 * c->stride - c->pad_t;
        int in1 = (o1 - 1) * c->stride - c->pad_t + c->k;
        int r0 = in0 > 0 ? in0 : 0, r1 = in1 < h ? in1 : h;
        conv_key key = {c->cin,   c->cout, c->k,    c->stride, r0 - in0, c->pad_l, in1 - r1,
                        c->pad_r, batch,   r1 - r0, w,         h,        ho};
        s = conv_run(d, c, &key, wp, x + (size_t)r0 * w, y + (size_t)o0 * wo, err);
    }
    if (s != TS_OK)
        return s;
    d->flops += 2ull * (uint64_t)batch * (uint64_t)ho * (uint64_t)wo * (uint64_t)c->cout *
                (uint64_t)c->cin * (uint64_t)(c->k * c->k);
    return TS_OK;
}

/* ---------------------------------------------------------------- matmul */

static ts_status matmul_entry_make(ts_dnnl *d, const matmul_key *k, matmul_entry **out,
                                   ts_error *err)
{
    ts_status s = TS_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    matmul_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory caching a matmul");
    e->key = *k;

    int bb = k->sb == 0 ? 1 : k->batch; /* B shared across the batch */
    dnnl_dims_t a_dims = {k->batch, k->m, k->k}, a_str = {k->sa, k->lda, 1};
    dnnl_dims_t b_dims = {bb, k->k, k->n}, b_str = {k->sb ? k->sb : 1, k->ldb, 1};
    if (k->trans_b) {
        b_str[1] = 1;
        b_str[2] = k->ldb;
    }
    dnnl_dims_t c_dims = {k->batch, k->m, k->n}, c_str = {k->sc, k->ldc, 1};
    dnnl_dims_t bias_dims = {1, 1, k->n};
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    DN(dnnl_memory_desc_init_by_strides(&a_md, 3, a_dims, dnnl_f32, a_str), "A desc");
    DN(dnnl_memory_desc_init_by_strides(&b_md, 3, b_dims, dnnl_f32, b_str), "B desc");
    DN(dnnl_memory_desc_init_by_strides(&c_md, 3, c_dims, dnnl_f32, c_str), "C desc");
    DN(dnnl_memory_desc_init_by_tag(&bias_md, 3, bias_dims, dnnl_f32, dnnl_abc), "bias desc");

    DN(dnnl_primitive_attr_create(&attr), "attr");
    if (k->alpha != 1.0f)
        DN(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha), "output scale");
    if (k->accumulate) {
        DN(dnnl_post_ops_create(&po), "post ops");
        DN(dnnl_post_ops_append_sum(po, 1.0f), "sum post op");
        DN(dnnl_primitive_attr_set_post_ops(attr, po), "set post ops");
    }
    dnnl_matmul_desc_t md;
    DN(dnnl_matmul_desc_init(&md, &a_md, &b_md, k->has_bias ? &bias_md : NULL, &c_md),
       "matmul descriptor");
    DN(dnnl_primitive_desc_create(&pd, &md, attr, d->engine, NULL), "matmul primitive desc");
    DN(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
    DN(dnnl_memory_create(&e->m_a, &a_md, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_b, &b_md, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_c, &c_md, d->engine, DNNL_MEMORY_NONE), "memory");
    DN(dnnl_memory_create(&e->m_bias, &bias_md, d->engine, DNNL_MEMORY_NONE), "memory");
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_post_ops_destroy(po);
    *out = e;
    return TS_OK;
fail:
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_post_ops_destroy(po);
    matmul_entry_free(e);
    return s;
}

ts_status ts_dnnl_matmul(ts_dnnl *d, const ts_matmul_args *a, ts_error *err)
{
    ts_status s = TS_OK;
    if (a->bias && a->alpha != 1.0f)
        return ts_error_set(err, TS_ERR_INTERNAL, "matmul with both bias and alpha");
    matmul_key key;
    memset(&key, 0, sizeof(key)); /* padding bytes take part in memcmp */
    key.batch = a->batch;
    key.m = a->m;
    key.n = a->n;
    key.k = a->k;
    key.trans_b = a->trans_b ? 1 : 0;
    key.has_bias = a->bias != NULL;
    key.accumulate = a->accumulate ? 1 : 0;
    key.lda = a->lda;
    key.sa = a->batch > 1 ? a->sa : (int64_t)a->m * a->lda;
    key.ldb = a->ldb;
    key.sb = a->batch > 1 ? a->sb : 0;
    key.ldc = a->ldc;
    key.sc = a->batch > 1 ? a->sc : (int64_t)a->m * a->ldc;
    key.alpha = a->alpha;

    matmul_entry *e = NULL;
    for (int i = d->n_matmuls - 1; i >= 0 && !e; i--)
        if (memcmp(&d->matmuls[i]->key, &key, sizeof(key)) == 0)
            e = d->matmuls[i];
    if (!e) {
        if (d->n_matmuls >= DNNL_CACHE_MAX) { /* evict the oldest shape */
            matmul_entry_free(d->matmuls[0]);
            memmove(d->matmuls, d->matmuls + 1, (size_t)(d->n_matmuls - 1) * sizeof(d->matmuls[0]));
            d->n_matmuls--;
        }
        s = matmul_entry_make(d, &key, &e, err);
        if (s != TS_OK)
            return s;
        d->matmuls[d->n_matmuls++] = e;
    }
    DN(dnnl_memory_set_data_handle(e->m_a, (void *)a->a), "set handle");
    DN(dnnl_memory_set_data_handle(e->m_b, (void *)a->b), "set handle");
    DN(dnnl_memory_set_data_handle(e->m_c, a->c), "set handle");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->m_a},
                               {DNNL_ARG_WEIGHTS, e->m_b},
                               {DNNL_ARG_DST, e->m_c},
                               {DNNL_ARG_BIAS, e->m_bias}};
    int nargs = 3;
    if (a->bias) {
        DN(dnnl_memory_set_data_handle(e->m_bias, (void *)a->bias), "set handle");
        nargs = 4;
    }
    DN(dnnl_primitive_execute(e->prim, d->stream, nargs, args), "matmul");
    DN(dnnl_stream_wait(d->stream), "stream wait");
    d->flops += 2ull * (uint64_t)a->batch * (uint64_t)a->m * (uint64_t)a->n * (uint64_t)a->k;
    return TS_OK;
fail:
    return s;
}

ts_status ts_linear_forward(ts_dnnl *d, const ts_linear *l, const float *x, int m, float *y,
                            int accumulate, ts_error *err)
{
    const float *w = l->w;
    if (!w) {
        size_t n = (size_t)l->out * (size_t)l->in;
        float *buf = scratch_get(d, SCR_WIDE, n * sizeof(float), err);
        if (!buf)
            return err->status;
        ts_half_to_f32((ts_dtype)l->wh_dtype, l->wh, n, buf);
        w = buf;
    }
    ts_matmul_args a = {
        .batch = 1,
        .m = m,
        .n = l->out,
        .k = l->in,
        .a = x,
        .lda = l->in,
        .b = w,
        .ldb = l->in,
        .trans_b = 1,
        .bias = l->b,
        .c = y,
        .ldc = l->out,
        .alpha = 1.0f,
        .accumulate = accumulate,
    };
    return ts_dnnl_matmul(d, &a, err);
}
