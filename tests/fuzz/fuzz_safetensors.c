/*
 * fuzz_safetensors.c - a model file as the loader meets it: the header parse
 * over a buffer (ts_safetensors_parse), and the same bytes as a file mapped
 * by ts_weights (through a memfd), with every tensor read back as f32 in its
 * declared shape. Model files are hostile (POLICY.md P11).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ts_safetensors.h"
#include "ts_weights.h"

/* Reading a tensor converts it to f32; bigger ones are skipped so one input
 * stays fast (the bounds checks are the same for every size). */
#define FUZZ_TENSOR_MAX_ELEMS (1 << 20)

static void read_all(ts_weights *w)
{
    int n = ts_weights_count(w);
    for (int i = 0; i < n; i++) {
        const ts_st_tensor *t = ts_weights_at(w, i);
        if (!t || t->count > FUZZ_TENSOR_MAX_ELEMS)
            continue;
        float *dst = malloc((size_t)(t->count ? t->count : 1) * sizeof *dst);
        if (!dst)
            continue;
        ts_error err;
        ts_weights_copy_f32(w, t->name, t->ndim, t->shape, dst, &err);
        const float *view;
        ts_weights_get_f32(w, t->name, t->ndim, t->shape, &view, &err);
        free(dst);
    }
    (void)ts_weights_file_metadata(w, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_error err;
    ts_safetensors *st = NULL;
    if (ts_safetensors_parse(data, size, &st, &err) == TS_OK) {
        for (int i = 0; i < st->n_tensors; i++)
            (void)ts_safetensors_find(st, st->tensors[i].name);
        ts_safetensors_close(st);
    }

    /* The file path: mmap, pickle sniffing, the weights table. */
    int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ts_weights *w = NULL;
    if (ts_weights_create(&w, &err) == TS_OK) {
        if (ts_weights_add_file(w, path, "m.", &err) == TS_OK)
            read_all(w);
        ts_weights_destroy(w);
    }
    close(fd);
    return 0;
}
