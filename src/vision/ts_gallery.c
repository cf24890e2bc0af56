/* ts_gallery.c - the protected-persons gallery file. */
#include "ts_gallery.h"

#include "ts_face.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_NAME    "togethershot-gallery"
#define FORMAT_VERSION 1
#define PATH_BUF       4096

/* ---------------------------------------------------------------- persons */

static void person_free(ts_gallery_person *p)
{
    free(p->name);
    for (int i = 0; i < p->n_aliases; i++)
        free(p->aliases[i]);
    free(p->descriptors);
    for (int i = 0; i < p->n_keys; i++)
        ts_names_key_free(&p->keys[i]);
    memset(p, 0, sizeof *p);
}

static int person_has_alias(const ts_gallery_person *p, const char *alias)
{
    if (ts_names_same(p->name, alias))
        return 1;
    for (int i = 0; i < p->n_aliases; i++)
        if (ts_names_same(p->aliases[i], alias))
            return 1;
    return 0;
}

/* Appends an alias (ignoring repeats) with its key. */
static ts_status person_add_alias(ts_gallery_person *p, const char *alias, ts_error *err)
{
    if (person_has_alias(p, alias))
        return TS_OK;
    if (p->n_aliases >= TS_GALLERY_ALIASES_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "a person may have at most %d aliases",
                            TS_GALLERY_ALIASES_MAX);
    ts_status st = ts_names_key_make(alias, &p->keys[p->n_keys], err);
    if (st != TS_OK)
        return ts_error_wrap(err, "alias");
    p->n_keys++;
    p->aliases[p->n_aliases] = strdup(alias);
    if (!p->aliases[p->n_aliases])
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory adding an alias");
    p->n_aliases++;
    return TS_OK;
}

static ts_status person_add_descriptors(ts_gallery_person *p,
                                        const float (*d)[TS_FACE_DESCRIPTOR_DIM], int n,
                                        ts_error *err)
{
    if (n <= 0)
        return TS_OK;
    if (p->n_descriptors + n > TS_GALLERY_DESCRIPTORS_MAX)
        return ts_error_set(err, TS_ERR_LIMIT, "a person may have at most %d face descriptors",
                            TS_GALLERY_DESCRIPTORS_MAX);
    float(*grown)[TS_FACE_DESCRIPTOR_DIM] =
        realloc(p->descriptors, (size_t)(p->n_descriptors + n) * sizeof *grown);
    if (!grown)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory adding a face descriptor");
    memcpy(grown + p->n_descriptors, d, (size_t)n * sizeof *grown);
    p->descriptors = grown;
    p->n_descriptors += n;
    return TS_OK;
}

/* ---------------------------------------------------------------- gallery */

ts_status ts_gallery_new(ts_gallery **out, ts_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory for the gallery");
    return TS_OK;
}

void ts_gallery_free(ts_gallery *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->count; i++)
        person_free(&g->persons[i]);
    free(g->persons);
    free(g);
}

int ts_gallery_find(const ts_gallery *g, const char *name)
{
    for (int i = 0; i < g->count; i++)
        if (ts_names_same(g->persons[i].name, name))
            return i;
    return -1;
}

ts_status ts_gallery_add(ts_gallery *g, const char *name, const char *const *aliases, int n_aliases,
                         const float (*descriptors)[TS_FACE_DESCRIPTOR_DIM], int n_descriptors,
                         ts_error *err)
{
    int at = ts_gallery_find(g, name);
    ts_gallery_person fresh = {0};
    ts_gallery_person *p;
    ts_status st;
    if (at >= 0) {
        /* An existing person only grows: on failure, aliases merged so far
         * stay, and the caller (which saves only on success) loses nothing. */
        p = &g->persons[at];
    } else {
        if (g->count >= TS_GALLERY_PERSONS_MAX)
            return ts_error_set(err, TS_ERR_LIMIT, "the gallery holds at most %d persons",
                                TS_GALLERY_PERSONS_MAX);
        p = &fresh;
        st = ts_names_key_make(name, &p->keys[0], err);
        if (st != TS_OK)
            return ts_error_wrap(err, "name");
        p->n_keys = 1;
        p->name = strdup(name);
        if (!p->name) {
            person_free(p);
            return ts_error_set(err, TS_ERR_NOMEM, "out of memory adding a person");
        }
    }
    for (int i = 0; i < n_aliases; i++)
        if ((st = person_add_alias(p, aliases[i], err)) != TS_OK)
            goto fail;
    if ((st = person_add_descriptors(p, descriptors, n_descriptors, err)) != TS_OK)
        goto fail;
    if (at < 0) {
        ts_gallery_person *grown = realloc(g->persons, (size_t)(g->count + 1) * sizeof *grown);
        if (!grown) {
            st = ts_error_set(err, TS_ERR_NOMEM, "out of memory adding a person");
            goto fail;
        }
        g->persons = grown;
        g->persons[g->count++] = fresh;
    }
    return TS_OK;
fail:
    if (at < 0)
        person_free(&fresh);
    return st;
}

int ts_gallery_remove(ts_gallery *g, const char *name)
{
    int at = ts_gallery_find(g, name);
    if (at < 0)
        return 0;
    person_free(&g->persons[at]);
    memmove(&g->persons[at], &g->persons[at + 1],
            (size_t)(g->count - at - 1) * sizeof g->persons[0]);
    g->count--;
    return 1;
}

int ts_gallery_match_face(const ts_gallery *g, const float *d, float threshold, float *distance)
{
    int best = -1;
    float best_d = -1.0f;
    for (int i = 0; i < g->count; i++)
        for (int k = 0; k < g->persons[i].n_descriptors; k++) {
            float dist = ts_face_distance(d, g->persons[i].descriptors[k]);
            if (best_d < 0 || dist < best_d) {
                best_d = dist;
                best = i;
            }
        }
    if (distance)
        *distance = best_d;
    return best >= 0 && best_d <= threshold ? best : -1;
}

int ts_gallery_match_text(const ts_gallery *g, const ts_names_text *text)
{
    for (int i = 0; i < g->count; i++)
        for (int k = 0; k < g->persons[i].n_keys; k++)
            if (ts_names_text_contains(text, &g->persons[i].keys[k]))
                return i;
    return -1;
}

/* ---------------------------------------------------------------- reading */

static ts_status parse_person(json_t *jp, ts_gallery *g, ts_error *err)
{
    const char *name = json_string_value(json_object_get(jp, "name"));
    json_t *jal = json_object_get(jp, "aliases");
    json_t *jd = json_object_get(jp, "descriptors");
    if (!name || (jal && !json_is_array(jal)) || !json_is_array(jd))
        return ts_error_set(err, TS_ERR_FORMAT, "a gallery person lacks name or descriptors");
    size_t na = jal ? json_array_size(jal) : 0, nd = json_array_size(jd);
    if (na > TS_GALLERY_ALIASES_MAX || nd > TS_GALLERY_DESCRIPTORS_MAX)
        return ts_error_set(err, TS_ERR_LIMIT,
                            "a gallery person has too many aliases or "
                            "descriptors");
    const char *aliases[TS_GALLERY_ALIASES_MAX];
    for (size_t i = 0; i < na; i++)
        if (!(aliases[i] = json_string_value(json_array_get(jal, i))))
            return ts_error_set(err, TS_ERR_FORMAT, "a gallery alias is not a string");
    float(*d)[TS_FACE_DESCRIPTOR_DIM] = calloc(nd ? nd : 1, sizeof *d);
    if (!d)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory reading the gallery");
    ts_status st = TS_OK;
    for (size_t i = 0; i < nd && st == TS_OK; i++) {
        json_t *row = json_array_get(jd, i);
        if (!json_is_array(row) || json_array_size(row) != TS_FACE_DESCRIPTOR_DIM) {
            st = ts_error_set(err, TS_ERR_FORMAT, "a gallery descriptor does not have %d values",
                              TS_FACE_DESCRIPTOR_DIM);
            break;
        }
        for (int k = 0; k < TS_FACE_DESCRIPTOR_DIM; k++) {
            json_t *v = json_array_get(row, (size_t)k);
            double x = json_number_value(v);
            if (!json_is_number(v) || !isfinite(x) || fabs(x) > 100.0) {
                st = ts_error_set(err, TS_ERR_FORMAT, "a gallery descriptor holds a bad value");
                break;
            }
            d[i][k] = (float)x;
        }
    }
    if (st == TS_OK)
        st = ts_gallery_add(g, name, aliases, (int)na, (const float(*)[TS_FACE_DESCRIPTOR_DIM])d,
                            (int)nd, err);
    free(d);
    return st;
}

ts_status ts_gallery_load(const char *path, ts_gallery **out, ts_error *err)
{
    *out = NULL;
    ts_gallery *g;
    ts_status st = ts_gallery_new(&g, err);
    if (st != TS_OK)
        return st;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) {
            *out = g;
            return TS_OK;
        }
        ts_gallery_free(g);
        return ts_error_set(err, TS_ERR_IO, "cannot read gallery %s: %s", path, strerror(errno));
    }
    if ((size_t)sb.st_size > TS_GALLERY_FILE_MAX) {
        ts_gallery_free(g);
        return ts_error_set(err, TS_ERR_LIMIT, "gallery %s is larger than %zu bytes", path,
                            TS_GALLERY_FILE_MAX);
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        ts_gallery_free(g);
        return ts_error_set(err, TS_ERR_FORMAT, "gallery %s is not valid JSON (line %d: %s)", path,
                            jerr.line, jerr.text);
    }
    const char *format = json_string_value(json_object_get(root, "format"));
    json_t *persons = json_object_get(root, "persons");
    if (!format || strcmp(format, FORMAT_NAME) != 0 ||
        json_integer_value(json_object_get(root, "version")) != FORMAT_VERSION ||
        json_integer_value(json_object_get(root, "descriptor_dim")) != TS_FACE_DESCRIPTOR_DIM ||
        !json_is_array(persons)) {
        st = ts_error_set(err, TS_ERR_FORMAT, "%s is not a version %d TogetherShot gallery", path,
                          FORMAT_VERSION);
    } else if (json_array_size(persons) > TS_GALLERY_PERSONS_MAX) {
        st = ts_error_set(err, TS_ERR_LIMIT, "gallery %s lists more than %d persons", path,
                          TS_GALLERY_PERSONS_MAX);
    }
    for (size_t i = 0; st == TS_OK && i < json_array_size(persons); i++)
        st = parse_person(json_array_get(persons, i), g, err);
    json_decref(root);
    if (st != TS_OK) {
        ts_gallery_free(g);
        return st == TS_ERR_NOMEM ? st : ts_error_wrap(err, "gallery %s", path);
    }
    *out = g;
    return TS_OK;
}

/* ---------------------------------------------------------------- writing */

/* mkdir -p for the folder that holds path, new folders 0700. */
static ts_status make_parent(const char *path, ts_error *err)
{
    char dir[PATH_BUF];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return ts_error_set(err, TS_ERR_ARG, "gallery path is too long");
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return TS_OK;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return ts_error_set(err, TS_ERR_IO, "cannot create folder %s: %s", dir,
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ts_error_set(err, TS_ERR_IO, "cannot create folder %s: %s", dir, strerror(errno));
    return TS_OK;
}

static json_t *gallery_to_json(const ts_gallery *g)
{
    json_t *root = json_object(), *persons = json_array();
    json_object_set_new(root, "format", json_string(FORMAT_NAME));
    json_object_set_new(root, "version", json_integer(FORMAT_VERSION));
    json_object_set_new(root, "descriptor_dim", json_integer(TS_FACE_DESCRIPTOR_DIM));
    for (int i = 0; i < g->count; i++) {
        const ts_gallery_person *p = &g->persons[i];
        json_t *jp = json_object(), *jal = json_array(), *jd = json_array();
        json_object_set_new(jp, "name", json_string(p->name));
        for (int k = 0; k < p->n_aliases; k++)
            json_array_append_new(jal, json_string(p->aliases[k]));
        for (int k = 0; k < p->n_descriptors; k++) {
            json_t *row = json_array();
            for (int j = 0; j < TS_FACE_DESCRIPTOR_DIM; j++)
                json_array_append_new(row, json_real(p->descriptors[k][j]));
            json_array_append_new(jd, row);
        }
        json_object_set_new(jp, "aliases", jal);
        json_object_set_new(jp, "descriptors", jd);
        json_array_append_new(persons, jp);
    }
    json_object_set_new(root, "persons", persons);
    return root;
}

ts_status ts_gallery_save(const ts_gallery *g, const char *path, ts_error *err)
{
    ts_status st = make_parent(path, err);
    if (st != TS_OK)
        return st;
    char tmp[PATH_BUF];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return ts_error_set(err, TS_ERR_ARG, "gallery path is too long");

    json_t *root = gallery_to_json(g);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    if (!text)
        return ts_error_set(err, TS_ERR_NOMEM, "out of memory writing the gallery");

    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(text);
        return ts_error_set(err, TS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = ts_error_set(err, TS_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
        done += (size_t)n;
    }
    free(text);
    if (st == TS_OK && (write(fd, "\n", 1) != 1 || fchmod(fd, 0600) != 0 || fsync(fd) != 0))
        st = ts_error_set(err, TS_ERR_IO, "cannot finish %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == TS_OK)
        st = ts_error_set(err, TS_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (st == TS_OK && rename(tmp, path) != 0)
        st = ts_error_set(err, TS_ERR_IO, "cannot replace %s: %s", path, strerror(errno));
    if (st != TS_OK)
        unlink(tmp);
    return st;
}
