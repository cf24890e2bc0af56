/* ts_face_ops.c - layer drivers: padding rules, im2col, threading, dispatch. */
#include "ts_face_ops.h"

#include <assert.h>
#include <float.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ts_face_kernels.h"

#define THREADS_MAX 16

/* ---------------------------------------------------------------- maps */

ts_status ts_fmap_alloc(ts_fmap *m, int h, int w, int c, ts_error *err)
{
    assert(h > 0 && w > 0 && c > 0);
    size_t n = (size_t)h * w * c;
    m->data = malloc(n * sizeof(float));
    if (!m->data)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a %dx%dx%d face feature map", h,
                            w, c);
    m->h = h;
    m->w = w;
    m->c = c;
    m->rep_from = m->rep_to = 0;
    m->rep_col_from = m->rep_col_to = 0;
    return TS_OK;
}

void ts_fmap_free(ts_fmap *m)
{
    if (m->data) {
        sodium_memzero(m->data, (size_t)m->h * m->w * m->c * sizeof(float));
        free(m->data);
    }
    memset(m, 0, sizeof *m);
}

int ts_face_out_size(int in, int k, int stride, ts_face_pad pad, int *pad_before)
{
    if (pad == TS_FACE_PAD_VALID) {
        if (pad_before)
            *pad_before = 0;
        return in < k ? 0 : (in - k) / stride + 1;
    }
    int out = (in + stride - 1) / stride;
    int total = (out - 1) * stride + k - in;
    if (total < 0)
        total = 0;
    if (pad_before)
        *pad_before = total / 2;
    return out;
}

/* ---------------------------------------------------------------- repeated rows */

/* Along one axis: the output positions whose window (k inputs from
 * o * stride - pad) lies wholly inside the repeated span [from, to) of an
 * axis of n_in inputs, so that every one of them sees the same input.
 * Returns the span [*lo, *hi) when it holds at least two positions. */
static int repeat_span(int from, int to, int n_in, int k, int stride, int pad, int n_out, int *lo,
                       int *hi)
{
    *lo = *hi = 0;
    if (to - from < k || from < 0 || to > n_in)
        return 0;
    int l = (from + pad + stride - 1) / stride;
    int h = (to - k + pad) / stride + 1;
    if (h > n_out)
        h = n_out;
    if (h - l < 2)
        return 0;
    *lo = l;
    *hi = h;
    return 1;
}

/* Marks the rows and columns of a layer's output y that repeat. */
static void out_repeat(const ts_fmap *x, int kh, int kw, int stride, int pad_top, int pad_left,
                       ts_fmap *y)
{
    repeat_span(x->rep_from, x->rep_to, x->h, kh, stride, pad_top, y->h, &y->rep_from, &y->rep_to);
    repeat_span(x->rep_col_from, x->rep_col_to, x->w, kw, stride, pad_left, y->w, &y->rep_col_from,
                &y->rep_col_to);
}

/* The output rows a layer computes: all of them, or all but the repeated
 * ones after the first. range[0] and range[1] are [begin, end) pairs. */
static int out_ranges(const ts_fmap *y, int range[2][2])
{
    if (y->rep_to - y->rep_from < 2) {
        range[0][0] = 0;
        range[0][1] = y->h;
        return 1;
    }
    range[0][0] = 0;
    range[0][1] = y->rep_from + 1;
    range[1][0] = y->rep_to;
    range[1][1] = y->h;
    return range[1][1] > range[1][0] ? 2 : 1;
}

/* Copies the first repeated row of y over the others. */
static void fill_repeats(ts_fmap *y)
{
    size_t row = (size_t)y->w * y->c;
    const float *src = y->data + (size_t)y->rep_from * row;
    for (int r = y->rep_from + 1; r < y->rep_to; r++)
        memcpy(y->data + (size_t)r * row, src, row * sizeof(float));
}

/* ---------------------------------------------------------------- dispatch */

typedef void (*gemm_rows_fn)(const float *, int, int, int, int, int, const float *, const float *,
                             const float *, int, float *, int);
typedef void (*dw_rows_fn)(const float *, int, int, int, const float *, int, int, int, int, int,
                           const float *, const float *, int, float *, int, int, int);

static pthread_once_t dispatch_once = PTHREAD_ONCE_INIT;
static gemm_rows_fn gemm_rows;
static dw_rows_fn dw_rows;
static int have_avx2;

static void dispatch_init(void)
{
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    gemm_rows = have_avx2 ? ts_face_gemm_rows_avx2 : ts_face_gemm_rows_generic;
    dw_rows = have_avx2 ? ts_face_dw_rows_avx2 : ts_face_dw_rows_generic;
}

int ts_face_ops_have_avx2(void)
{
    pthread_once(&dispatch_once, dispatch_init);
    return have_avx2;
}

/* ---------------------------------------------------------------- threads */

typedef struct part {
    void (*fn)(void *ctx, int begin, int end);
    void *ctx;
    int begin, end;
} part;

static void *part_main(void *arg)
{
    part *p = arg;
    p->fn(p->ctx, p->begin, p->end);
    return NULL;
}

void ts_face_parallel_for(int threads, int n, void (*fn)(void *ctx, int begin, int end), void *ctx)
{
    if (threads > THREADS_MAX)
        threads = THREADS_MAX;
    if (threads > n)
        threads = n;
    if (threads <= 1) {
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
    part parts[THREADS_MAX];
    pthread_t ids[THREADS_MAX];
    int started[THREADS_MAX] = {0};
    for (int t = 0; t < threads; t++) {
        parts[t] =
            (part){fn, ctx, (int)((long)n * t / threads), (int)((long)n * (t + 1) / threads)};
    }
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, part_main, &parts[t]) == 0;
    fn(ctx, parts[0].begin, parts[0].end);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            fn(ctx, parts[t].begin, parts[t].end); /* could not start: do it here */
    }
}

/* ---------------------------------------------------------------- GEMM */

size_t ts_face_gemm_packed_size(int k, int n)
{
    return (size_t)((n + TS_FACE_GEMM_NR - 1) / TS_FACE_GEMM_NR) * TS_FACE_GEMM_NR * (size_t)k;
}

void ts_face_gemm_pack(const float *b, int k, int n, float *packed)
{
    int panels = (n + TS_FACE_GEMM_NR - 1) / TS_FACE_GEMM_NR;
    for (int p = 0; p < panels; p++) {
        float *dst = packed + (size_t)p * k * TS_FACE_GEMM_NR;
        for (int r = 0; r < k; r++) {
            for (int j = 0; j < TS_FACE_GEMM_NR; j++) {
                int col = p * TS_FACE_GEMM_NR + j;
                dst[(size_t)r * TS_FACE_GEMM_NR + j] = col < n ? b[(size_t)r * n + col] : 0.0f;
            }
        }
    }
}

typedef struct gemm_job {
    const float *a;
    int lda, k, n;
    const float *packed, *mul, *add;
    int act;
    float *c;
    int ldc;
} gemm_job;

static void gemm_part(void *ctx, int begin, int end)
{
    const gemm_job *g = ctx;
    gemm_rows(g->a, g->lda, begin, end, g->k, g->n, g->packed, g->mul, g->add, g->act, g->c,
              g->ldc);
}

void ts_face_gemm(const float *a, int lda, int m, int k, int n, const float *packed,
                  const float *mul, const float *add, ts_face_act act, float *c, int ldc,
                  int threads)
{
    pthread_once(&dispatch_once, dispatch_init);
    gemm_job g = {a, lda, k, n, packed, mul, add, (int)act, c, ldc};
    /* Below a few hundred thousand multiply-adds a thread costs more than it saves. */
    if ((long)m * k * n < 400000)
        threads = 1;
    ts_face_parallel_for(threads, m, gemm_part, &g);
}

/* ---------------------------------------------------------------- conv */

ts_status ts_face_conv_init(ts_face_conv *cv, int kh, int kw, int cin, int cout, int stride,
                            ts_face_pad pad, ts_face_act act, ts_error *err)
{
    memset(cv, 0, sizeof *cv);
    *cv = (ts_face_conv){kh, kw, cin, cout, stride, pad, act, NULL, NULL, NULL, NULL};
    size_t nf = (size_t)kh * kw * cin * cout;
    cv->filters = calloc(nf, sizeof(float));
    cv->mul = malloc((size_t)cout * sizeof(float));
    cv->add = calloc((size_t)cout, sizeof(float));
    if (!cv->filters || !cv->mul || !cv->add) {
        ts_face_conv_free(cv);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a face model convolution");
    }
    for (int o = 0; o < cout; o++)
        cv->mul[o] = 1.0f;
    return TS_OK;
}

ts_status ts_face_conv_prepare(ts_face_conv *cv, ts_error *err)
{
    int k = cv->kh * cv->kw * cv->cin;
    free(cv->packed);
    cv->packed = malloc(ts_face_gemm_packed_size(k, cv->cout) * sizeof(float));
    if (!cv->packed)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory packing face model filters");
    ts_face_gemm_pack(cv->filters, k, cv->cout, cv->packed);
    return TS_OK;
}

void ts_face_conv_drop_filters(ts_face_conv *cv)
{
    assert(cv->packed);
    free(cv->filters);
    cv->filters = NULL;
}

void ts_face_conv_free(ts_face_conv *cv)
{
    free(cv->filters);
    free(cv->packed);
    free(cv->mul);
    free(cv->add);
    memset(cv, 0, sizeof *cv);
}

/* ---------------------------------------------------------------- rows in chunks */

/* Both the im2col convolutions and the fused depthwise + pointwise pairs
 * feed the GEMM from a small buffer per thread: a chunk of output rows'
 * worth of its left operand (the im2col rows, or the depthwise output) is
 * made, multiplied into y while still in cache, and overwritten by the
 * next chunk. Nothing the size of a whole map is written out and read back.
 *
 * Chunk: whole output rows, at least CHUNK_PIXELS pixels (sixteen 6-row
 * GEMM tiles), and a multiple of the 6-row tile where the width allows, so
 * few tiles are ragged. */
#define CHUNK_PIXELS 96

typedef struct chunk_job {
    const ts_fmap *x;
    ts_fmap *y;
    const ts_face_dwconv *dw;        /* the depthwise pass; NULL: im2col for cv */
    const ts_face_conv *cv;          /* the GEMM's filters and epilogue */
    int pt, pl;                      /* padding of the first pass */
    int k;                           /* GEMM depth: columns of the buffer */
    int range[2][2], nranges, total; /* output rows to compute, and how many */
    int parts, chunk;                /* parts (threads), and rows per chunk */
    float *bufs;                     /* parts x (chunk * ow, k) */
} chunk_job;

/* buf[(oy - oy0, ox), (i, j, c)] = x[oy * s - pt + i, ox * s - pl + j, c],
 * zero outside the map. */
static void im2col_rows(const chunk_job *j, int oy0, int oy1, float *buf)
{
    const ts_fmap *x = j->x;
    const ts_face_conv *cv = j->cv;
    int ow = j->y->w;
    size_t cin_bytes = (size_t)cv->cin * sizeof(float);
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *dst = buf + ((size_t)(oy - oy0) * ow + ox) * j->k;
            for (int i = 0; i < cv->kh; i++) {
                int iy = oy * cv->stride - j->pt + i;
                for (int jj = 0; jj < cv->kw; jj++) {
                    int ix = ox * cv->stride - j->pl + jj;
                    float *d = dst + ((size_t)i * cv->kw + jj) * cv->cin;
                    if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w)
                        memset(d, 0, cin_bytes);
                    else
                        memcpy(d, x->data + ((size_t)iy * x->w + ix) * x->c, cin_bytes);
                }
            }
        }
    }
}

/* Output rows [oy0, oy1), chunk by chunk: the GEMM's operand into buf,
 * then the GEMM from it into y. */
static void chunk_rows(const chunk_job *j, float *buf, int oy0, int oy1)
{
    const ts_fmap *x = j->x;
    const ts_face_dwconv *dw = j->dw;
    const ts_face_conv *cv = j->cv;
    int ow = j->y->w;
    for (int oy = oy0; oy < oy1; oy += j->chunk) {
        int end = oy + j->chunk < oy1 ? oy + j->chunk : oy1;
        if (dw)
            dw_rows(x->data, x->h, x->w, x->c, dw->filters, dw->kh, dw->kw, dw->stride, j->pt,
                    j->pl, dw->mul, dw->add, (int)dw->act, buf, ow, oy, end);
        else
            im2col_rows(j, oy, end, buf);
        float *out = j->y->data + (size_t)oy * ow * cv->cout;
        int cf = j->y->rep_col_from, ct = j->y->rep_col_to;
        if (ct - cf < 2) {
            gemm_rows(buf, j->k, 0, (end - oy) * ow, j->k, cv->cout, cv->packed, cv->mul, cv->add,
                      (int)cv->act, out, cv->cout);
            continue;
        }
        /* Repeated columns: per row, the pixels before them and the first
         * of them, then those after; the first copied over the rest. */
        size_t px = (size_t)cv->cout;
        for (int r = 0; r < end - oy; r++) {
            gemm_rows(buf, j->k, r * ow, r * ow + cf + 1, j->k, cv->cout, cv->packed, cv->mul,
                      cv->add, (int)cv->act, out, cv->cout);
            if (ct < ow)
                gemm_rows(buf, j->k, r * ow + ct, (r + 1) * ow, j->k, cv->cout, cv->packed, cv->mul,
                          cv->add, (int)cv->act, out, cv->cout);
            float *row = out + (size_t)r * ow * px;
            for (int col = cf + 1; col < ct; col++)
                memcpy(row + col * px, row + cf * px, px * sizeof(float));
        }
    }
}

/* Part t of j->parts takes an equal share of the computed rows. */
static void chunk_part(void *ctx, int begin, int end)
{
    const chunk_job *j = ctx;
    for (int t = begin; t < end; t++) {
        int from = (int)((long)j->total * t / j->parts);
        int to = (int)((long)j->total * (t + 1) / j->parts);
        float *buf = j->bufs + (size_t)t * j->chunk * j->y->w * j->k;
        /* Index i of the computed rows is row range[0][0] + i while in the
         * first range, then carries on in the second. */
        int skip = 0;
        for (int r = 0; r < j->nranges && from < to; r++) {
            int len = j->range[r][1] - j->range[r][0];
            int a = from - skip, b = to - skip;
            if (a < len && b > 0) {
                a = a > 0 ? a : 0;
                b = b < len ? b : len;
                chunk_rows(j, buf, j->range[r][0] + a, j->range[r][0] + b);
            }
            skip += len;
        }
    }
}

/* Runs j (x, y, dw, cv, pt, pl, k set; y allocated, its repeated rows
 * marked) over threads, then copies the repeated rows. */
static ts_status chunk_run(chunk_job *j, int threads, ts_error *err)
{
    int oh = j->y->h, ow = j->y->w;
    j->nranges = out_ranges(j->y, j->range);
    j->total = 0;
    for (int r = 0; r < j->nranges; r++)
        j->total += j->range[r][1] - j->range[r][0];
    /* Rows per chunk: a multiple of 6 / gcd(ow, 6) reaching CHUNK_PIXELS. */
    int unit = ow % 6 == 0 ? 1 : ow % 3 == 0 ? 2 : ow % 2 == 0 ? 3 : 6;
    j->chunk = unit;
    while (j->chunk * ow < CHUNK_PIXELS && j->chunk < oh)
        j->chunk += unit;
    if (j->chunk > oh)
        j->chunk = oh;
    /* Below a few hundred thousand multiply-adds a thread costs more than it saves. */
    long macs = (long)j->total * ow * j->k * j->cv->cout;
    j->parts = macs < 400000 || threads < 1 ? 1 : threads;
    if (j->parts > THREADS_MAX) /* one buffer per part: no more parts than threads run */
        j->parts = THREADS_MAX;
    if (j->parts > j->total)
        j->parts = j->total;
    size_t nbuf = (size_t)j->parts * j->chunk * ow * j->k;
    j->bufs = malloc(nbuf * sizeof(float));
    if (!j->bufs) {
        ts_fmap_free(j->y);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a face convolution");
    }
    ts_face_parallel_for(j->parts, j->parts, chunk_part, j);
    fill_repeats(j->y);
    sodium_memzero(j->bufs, nbuf * sizeof(float));
    free(j->bufs);
    j->bufs = NULL;
    return TS_OK;
}

/* ---------------------------------------------------------------- conv forward */

ts_status ts_face_conv_forward(const ts_face_conv *cv, const ts_fmap *x, ts_fmap *y, int threads,
                               ts_error *err)
{
    pthread_once(&dispatch_once, dispatch_init);
    assert(cv->packed && x->c == cv->cin);
    int pt, pl;
    int oh = ts_face_out_size(x->h, cv->kh, cv->stride, cv->pad, &pt);
    int ow = ts_face_out_size(x->w, cv->kw, cv->stride, cv->pad, &pl);
    if (oh <= 0 || ow <= 0)
        return ts_error_set(err, TS_ERR_ARG,
                            "face feature map %dx%d is smaller than a %dx%d "
                            "filter",
                            x->h, x->w, cv->kh, cv->kw);
    ts_status st = ts_fmap_alloc(y, oh, ow, cv->cout, err);
    if (st != TS_OK)
        return st;
    out_repeat(x, cv->kh, cv->kw, cv->stride, pt, pl, y);

    int k = cv->kh * cv->kw * cv->cin;
    if (cv->kh == 1 && cv->kw == 1 && cv->stride == 1) {
        /* A 1x1 convolution is the GEMM of the map itself. */
        int range[2][2];
        int nranges = out_ranges(y, range);
        for (int r = 0; r < nranges; r++) {
            size_t first = (size_t)range[r][0] * ow;
            ts_face_gemm(x->data + first * x->c, x->c, (range[r][1] - range[r][0]) * ow, k,
                         cv->cout, cv->packed, cv->mul, cv->add, cv->act,
                         y->data + first * cv->cout, cv->cout, threads);
        }
        fill_repeats(y);
        return TS_OK;
    }
    chunk_job j = {.x = x, .y = y, .dw = NULL, .cv = cv, .pt = pt, .pl = pl, .k = k};
    return chunk_run(&j, threads, err);
}

/* ---------------------------------------------------------------- depthwise */

ts_status ts_face_dwconv_init(ts_face_dwconv *dw, int kh, int kw, int c, int stride,
                              ts_face_pad pad, ts_face_act act, ts_error *err)
{
    *dw = (ts_face_dwconv){kh, kw, c, stride, pad, act, NULL, NULL, NULL};
    dw->filters = calloc((size_t)kh * kw * c, sizeof(float));
    dw->mul = malloc((size_t)c * sizeof(float));
    dw->add = calloc((size_t)c, sizeof(float));
    if (!dw->filters || !dw->mul || !dw->add) {
        ts_face_dwconv_free(dw);
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for a face model convolution");
    }
    for (int i = 0; i < c; i++)
        dw->mul[i] = 1.0f;
    return TS_OK;
}

void ts_face_dwconv_free(ts_face_dwconv *dw)
{
    free(dw->filters);
    free(dw->mul);
    free(dw->add);
    memset(dw, 0, sizeof *dw);
}

typedef struct dw_job {
    const ts_face_dwconv *dw;
    const ts_fmap *x;
    ts_fmap *y;
    int pt, pl;
    int oy_base; /* the first output row of this pass */
} dw_job;

static void dw_part(void *ctx, int begin, int end)
{
    const dw_job *j = ctx;
    int oy0 = j->oy_base + begin, oy1 = j->oy_base + end;
    dw_rows(j->x->data, j->x->h, j->x->w, j->x->c, j->dw->filters, j->dw->kh, j->dw->kw,
            j->dw->stride, j->pt, j->pl, j->dw->mul, j->dw->add, (int)j->dw->act,
            j->y->data + (size_t)oy0 * j->y->w * j->y->c, j->y->w, oy0, oy1);
}

ts_status ts_face_dwconv_forward(const ts_face_dwconv *dw, const ts_fmap *x, ts_fmap *y,
                                 int threads, ts_error *err)
{
    pthread_once(&dispatch_once, dispatch_init);
    assert(x->c == dw->c);
    int pt, pl;
    int oh = ts_face_out_size(x->h, dw->kh, dw->stride, dw->pad, &pt);
    int ow = ts_face_out_size(x->w, dw->kw, dw->stride, dw->pad, &pl);
    if (oh <= 0 || ow <= 0)
        return ts_error_set(err, TS_ERR_ARG, "face feature map is smaller than its filter");
    ts_status st = ts_fmap_alloc(y, oh, ow, dw->c, err);
    if (st != TS_OK)
        return st;
    out_repeat(x, dw->kh, dw->kw, dw->stride, pt, pl, y);
    int range[2][2];
    int nranges = out_ranges(y, range);
    for (int r = 0; r < nranges; r++) {
        int rows = range[r][1] - range[r][0];
        dw_job j = {dw, x, y, pt, pl, range[r][0]};
        ts_face_parallel_for((long)rows * ow * dw->c > 100000 ? threads : 1, rows, dw_part, &j);
    }
    fill_repeats(y);
    return TS_OK;
}

/* ---------------------------------------------------------------- separable */

ts_status ts_face_sepconv_forward(const ts_face_dwconv *dw, const ts_face_conv *pw,
                                  const ts_fmap *x, ts_fmap *y, int threads, ts_error *err)
{
    pthread_once(&dispatch_once, dispatch_init);
    assert(x->c == dw->c && pw->cin == dw->c && pw->packed);
    assert(pw->kh == 1 && pw->kw == 1 && pw->stride == 1);
    int pt, pl;
    int oh = ts_face_out_size(x->h, dw->kh, dw->stride, dw->pad, &pt);
    int ow = ts_face_out_size(x->w, dw->kw, dw->stride, dw->pad, &pl);
    if (oh <= 0 || ow <= 0)
        return ts_error_set(err, TS_ERR_ARG, "face feature map is smaller than its filter");
    ts_status st = ts_fmap_alloc(y, oh, ow, pw->cout, err);
    if (st != TS_OK)
        return st;
    out_repeat(x, dw->kh, dw->kw, dw->stride, pt, pl, y);
    chunk_job j = {.x = x, .y = y, .dw = dw, .cv = pw, .pt = pt, .pl = pl, .k = x->c};
    return chunk_run(&j, threads, err);
}

/* ---------------------------------------------------------------- pooling */

static ts_status pool(const ts_fmap *x, int k, int stride, int is_max, ts_fmap *y, ts_error *err)
{
    int oh = ts_face_out_size(x->h, k, stride, TS_FACE_PAD_VALID, NULL);
    int ow = ts_face_out_size(x->w, k, stride, TS_FACE_PAD_VALID, NULL);
    if (oh <= 0 || ow <= 0)
        return ts_error_set(err, TS_ERR_ARG, "face feature map is smaller than its pool window");
    ts_status st = ts_fmap_alloc(y, oh, ow, x->c, err);
    if (st != TS_OK)
        return st;
    int c = x->c;
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *out = y->data + ((size_t)oy * ow + ox) * c;
            for (int ch = 0; ch < c; ch++)
                out[ch] = is_max ? -FLT_MAX : 0.0f;
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    const float *in =
                        x->data +
                        ((size_t)(oy * stride + i) * x->w + (size_t)(ox * stride + j)) * c;
                    for (int ch = 0; ch < c; ch++) {
                        if (is_max)
                            out[ch] = in[ch] > out[ch] ? in[ch] : out[ch];
                        else
                            out[ch] += in[ch];
                    }
                }
            }
            if (!is_max)
                for (int ch = 0; ch < c; ch++)
                    out[ch] /= (float)(k * k);
        }
    }
    return TS_OK;
}

ts_status ts_face_maxpool(const ts_fmap *x, int k, int stride, ts_fmap *y, ts_error *err)
{
    return pool(x, k, stride, 1, y, err);
}

ts_status ts_face_avgpool(const ts_fmap *x, int k, int stride, ts_fmap *y, ts_error *err)
{
    return pool(x, k, stride, 0, y, err);
}

void ts_face_add_relu(ts_fmap *y, const ts_fmap *x)
{
    assert(y->h == x->h && y->w == x->w && y->c == x->c);
    size_t n = (size_t)y->h * y->w * y->c;
    for (size_t i = 0; i < n; i++) {
        float v = y->data[i] + x->data[i];
        y->data[i] = v > 0.0f ? v : 0.0f;
    }
}
