/* ts_portrait.c - the portrait-rights check: faces and names against the gallery. */
#include "ts_portrait.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_face.h"
#include "ts_gallery.h"
#include "ts_log.h"

#ifndef TS_FACE_MODELS_DEFAULT
#define TS_FACE_MODELS_DEFAULT "models/face"
#endif

#define PATH_BUF 4096

struct ts_portrait {
    ts_face_models *models;
    char gallery_path[PATH_BUF];
    float threshold;
    float min_face_score;
    int threads;

    /* The gallery in force; readers hold the lock while they match. */
    pthread_rwlock_t lock;
    ts_gallery *gallery;
    struct timespec gallery_mtime;
    long long gallery_size;
};

const char *ts_portrait_default_models_dir(void)
{
    const char *env = getenv("TOGETHERSHOT_FACE_MODELS");
    return env && *env ? env : TS_FACE_MODELS_DEFAULT;
}

const char *ts_portrait_default_gallery_path(char *buf, size_t n)
{
    const char *env = getenv("TOGETHERSHOT_GALLERY");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int len;
    if (env && *env)
        len = snprintf(buf, n, "%s", env);
    else if (xdg && *xdg)
        len = snprintf(buf, n, "%s/togethershot/gallery.json", xdg);
    else if (home && *home)
        len = snprintf(buf, n, "%s/.local/share/togethershot/gallery.json", home);
    else
        return NULL;
    return len >= 0 && (size_t)len < n ? buf : NULL;
}

/* Records the file's identity as seen now (missing file: zeros). */
static void stat_gallery(const char *path, struct timespec *mtime, long long *size)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        *mtime = sb.st_mtim;
        *size = (long long)sb.st_size;
    } else {
        memset(mtime, 0, sizeof *mtime);
        *size = -1;
    }
}

ts_status ts_portrait_open(const ts_portrait_options *opts, ts_portrait **out, ts_error *err)
{
    *out = NULL;
    ts_portrait_options o = opts ? *opts : (ts_portrait_options){0};
    ts_portrait *pc = calloc(1, sizeof *pc);
    if (!pc)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory opening the portrait check");
    pc->threshold = o.threshold > 0 ? o.threshold : TS_PORTRAIT_DEFAULT_THRESHOLD;
    pc->min_face_score =
        o.min_face_score > 0 ? o.min_face_score : TS_PORTRAIT_DEFAULT_MIN_FACE_SCORE;
    pc->threads = o.threads > 0 ? o.threads : 1;
    if (pthread_rwlock_init(&pc->lock, NULL) != 0) {
        free(pc);
        return ts_error_set(err, TS_ERR_INTERNAL, "cannot create the gallery lock");
    }

    ts_status st;
    if (o.gallery_path && *o.gallery_path) {
        if (snprintf(pc->gallery_path, sizeof pc->gallery_path, "%s", o.gallery_path) >=
            (int)sizeof pc->gallery_path)
            st = ts_error_set(err, TS_ERR_ARG, "gallery path is too long");
        else
            st = TS_OK;
    } else {
        st = ts_portrait_default_gallery_path(pc->gallery_path, sizeof pc->gallery_path)
                 ? TS_OK
                 : ts_error_set(err, TS_ERR_ARG, "no gallery path: set TOGETHERSHOT_GALLERY");
    }
    if (st == TS_OK)
        st = ts_face_models_load(o.models_dir && *o.models_dir ? o.models_dir
                                                               : ts_portrait_default_models_dir(),
                                 &pc->models, err);
    if (st == TS_OK)
        st = ts_portrait_reload(pc, err);
    if (st != TS_OK) {
        ts_portrait_close(pc);
        return st;
    }
    *out = pc;
    return TS_OK;
}

void ts_portrait_close(ts_portrait *pc)
{
    if (!pc)
        return;
    ts_face_models_free(pc->models);
    ts_gallery_free(pc->gallery);
    pthread_rwlock_destroy(&pc->lock);
    free(pc);
}

ts_status ts_portrait_reload(ts_portrait *pc, ts_error *err)
{
    struct timespec mtime;
    long long size;
    stat_gallery(pc->gallery_path, &mtime, &size);
    ts_gallery *fresh;
    ts_status st = ts_gallery_load(pc->gallery_path, &fresh, err);
    if (st != TS_OK)
        return st;

    pthread_rwlock_wrlock(&pc->lock);
    ts_gallery *old = pc->gallery;
    pc->gallery = fresh;
    pc->gallery_mtime = mtime;
    pc->gallery_size = size;
    pthread_rwlock_unlock(&pc->lock);

    ts_gallery_free(old);
    ts_log_info("vision", "portrait gallery loaded; protected persons: %d", fresh->count);
    return TS_OK;
}

int ts_portrait_gallery_changed(ts_portrait *pc)
{
    struct timespec mtime;
    long long size;
    stat_gallery(pc->gallery_path, &mtime, &size);
    pthread_rwlock_rdlock(&pc->lock);
    int changed = size != pc->gallery_size || mtime.tv_sec != pc->gallery_mtime.tv_sec ||
                  mtime.tv_nsec != pc->gallery_mtime.tv_nsec;
    pthread_rwlock_unlock(&pc->lock);
    return changed;
}

int ts_portrait_gallery_size(const ts_portrait *pc)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&pc->lock);
    int n = pc->gallery ? pc->gallery->count : 0;
    pthread_rwlock_unlock((pthread_rwlock_t *)&pc->lock);
    return n;
}

ts_status ts_portrait_check_image(ts_portrait *pc, const ts_image *img, ts_portrait_verdict *v,
                                  ts_error *err)
{
    memset(v, 0, sizeof *v);
    ts_face *faces = malloc(TS_FACE_MAX * sizeof *faces);
    if (!faces)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory in the portrait check");

    /* Descriptors only matter when there is someone to compare them with. */
    ts_face_options o = ts_face_options_default();
    o.min_confidence = pc->min_face_score;
    o.threads = pc->threads;
    o.describe = ts_portrait_gallery_size(pc) > 0;

    int n = 0;
    ts_status st = ts_face_detect(pc->models, img, &o, faces, TS_FACE_MAX, &n, err);
    if (st == TS_OK) {
        v->faces_found = n;
        pthread_rwlock_rdlock(&pc->lock);
        for (int i = 0; i < n && !v->refused; i++)
            if (faces[i].described &&
                ts_gallery_match_face(pc->gallery, faces[i].descriptor, pc->threshold, NULL) >= 0)
                v->refused = 1;
        pthread_rwlock_unlock(&pc->lock);
    }
    ts_face_wipe(faces, n > 0 ? n : 0);
    free(faces);
    return st;
}

void ts_portrait_check_prompt(ts_portrait *pc, const char *prompt, ts_portrait_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (!prompt)
        return;
    ts_names_text text;
    if (ts_names_text_make(prompt, &text, NULL) != TS_OK) {
        v->refused = 1; /* could not screen it: refuse rather than let it through */
        return;
    }
    pthread_rwlock_rdlock(&pc->lock);
    v->refused = ts_gallery_match_text(pc->gallery, &text) >= 0;
    pthread_rwlock_unlock(&pc->lock);
    ts_names_text_free(&text);
}
