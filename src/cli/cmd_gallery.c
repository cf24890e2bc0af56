/* cmd_gallery.c - `togethershot gallery`: manage the protected-persons gallery
 * (POLICY.md P13). The gallery keeps names, aliases and face descriptors;
 * the photos given to `add` are read, described and wiped, never stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_cli.h"
#include "ts_face.h"
#include "ts_gallery.h"
#include "ts_image.h"
#include "ts_names.h"
#include "ts_portrait.h"

#define PATH_BUF 4096

/* The same picture gives the same descriptor, up to the gallery file's
 * rounding (about 1e-6). A re-encoded copy may already be 0.2 away, as far
 * as two photos of one person (0.2 to 0.5), so only the same picture counts
 * as a duplicate. */
#define SAME_PHOTO_DISTANCE 0.01f

static void usage(FILE *to)
{
    fprintf(to, "usage: togethershot gallery add --name NAME [--alias NICK]... [OPTIONS] PHOTO...\n"
                "       togethershot gallery list [OPTIONS]\n"
                "       togethershot gallery remove [OPTIONS] NAME\n"
                "\n"
                "Manages the protected persons whose faces and names the portrait-rights check\n"
                "refuses. The gallery stores names, aliases and 128-number face descriptors,\n"
                "never photos. Each PHOTO must show exactly one face; every photo of a person is\n"
                "kept as its own descriptor. Adding an existing name adds to that person.\n"
                "Prompts are screened for the full name and each alias (add the surname as an\n"
                "alias to protect it alone). A running server picks changes up on SIGHUP or when\n"
                "the file changes.\n"
                "\n"
                "options:\n"
                "  --gallery FILE   gallery file (default $TOGETHERSHOT_GALLERY, else\n"
                "                   $XDG_DATA_HOME/togethershot/gallery.json, else\n"
                "                   ~/.local/share/togethershot/gallery.json)\n"
                "  --models DIR     face model folder (default $TOGETHERSHOT_FACE_MODELS, else\n"
                "                   the folder scripts/setup.sh fills)\n"
                "  --help           this text\n"
                "\n"
                "exit codes: 0 ok, 1 failure (unreadable photo, no face or several faces in a\n"
                "photo, file error), 2 bad usage\n");
}

typedef struct args {
    const char *action;
    const char *name;
    const char *aliases[TS_GALLERY_ALIASES_MAX];
    int n_aliases;
    const char *gallery;
    const char *models;
    char **rest;
    int n_rest;
} args;

/* Returns -1 to continue, else an exit code. */
static int parse(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->rest = calloc((size_t)argc, sizeof *a->rest);
    if (!a->rest)
        return TS_EXIT_FAILURE;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return TS_EXIT_OK;
        }
        int takes_value = strcmp(arg, "--name") == 0 || strcmp(arg, "--alias") == 0 ||
                          strcmp(arg, "--gallery") == 0 || strcmp(arg, "--models") == 0;
        if (takes_value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "togethershot gallery: %s needs a value\n", arg);
                return TS_EXIT_USAGE;
            }
            const char *v = argv[++i];
            if (strcmp(arg, "--name") == 0) {
                a->name = v;
            } else if (strcmp(arg, "--alias") == 0) {
                if (a->n_aliases >= TS_GALLERY_ALIASES_MAX) {
                    fprintf(stderr, "togethershot gallery: at most %d aliases\n",
                            TS_GALLERY_ALIASES_MAX);
                    return TS_EXIT_USAGE;
                }
                a->aliases[a->n_aliases++] = v;
            } else if (strcmp(arg, "--gallery") == 0) {
                a->gallery = v;
            } else {
                a->models = v;
            }
        } else if (strncmp(arg, "--", 2) == 0) {
            fprintf(stderr, "togethershot gallery: unknown option '%s'\n\n", arg);
            usage(stderr);
            return TS_EXIT_USAGE;
        } else if (!a->action) {
            a->action = arg;
        } else {
            a->rest[a->n_rest++] = argv[i];
        }
    }
    if (!a->action) {
        usage(stderr);
        return TS_EXIT_USAGE;
    }
    return -1;
}

/* Describes the one face in photo into d; prints why not otherwise. */
static int describe_photo(const ts_face_models *m, const char *photo, float *d)
{
    ts_error err;
    ts_image img = {0};
    ts_status st = ts_image_load_file(photo, NULL, &img, NULL, &err);
    if (st != TS_OK) /* the message names the file already */
        fprintf(stderr, "togethershot gallery: %s\n", err.message);
    if (st == TS_OK && (st = ts_face_describe_single(m, &img, d, 2, &err)) != TS_OK)
        fprintf(stderr, "togethershot gallery: %s: %s\n", photo, err.message);
    ts_image_free(&img);
    return st == TS_OK;
}

static int do_add(const args *a, ts_gallery *g, const char *path)
{
    if (!a->name || a->n_rest == 0) {
        fprintf(stderr, "togethershot gallery add: give --name NAME and at least one PHOTO\n");
        return TS_EXIT_USAGE;
    }
    if (a->n_rest > TS_GALLERY_DESCRIPTORS_MAX) {
        fprintf(stderr, "togethershot gallery add: at most %d photos per person\n",
                TS_GALLERY_DESCRIPTORS_MAX);
        return TS_EXIT_USAGE;
    }
    /* A name or alias the gallery cannot screen for ("", "  ", "!!") is a
     * usage error, told before the photos are read, not after. */
    for (int i = -1; i < a->n_aliases; i++) {
        const char *what = i < 0 ? "--name" : "--alias";
        const char *v = i < 0 ? a->name : a->aliases[i];
        ts_names_key key;
        ts_error kerr;
        if (ts_names_key_make(v, &key, &kerr) != TS_OK) {
            fprintf(stderr, "togethershot gallery add: invalid value '%s' for %s: %s\n", v, what,
                    kerr.message);
            return kerr.status == TS_ERR_ARG ? TS_EXIT_USAGE : TS_EXIT_FAILURE;
        }
        ts_names_key_free(&key);
    }
    ts_error err;
    ts_face_models *m;
    const char *models = a->models ? a->models : ts_portrait_default_models_dir();
    if (ts_face_models_load(models, &m, &err) != TS_OK) {
        fprintf(stderr, "togethershot gallery: %s\n", err.message);
        return TS_EXIT_FAILURE;
    }
    float(*d)[TS_FACE_DESCRIPTOR_DIM] = calloc((size_t)a->n_rest, sizeof *d);
    int ok = d != NULL;
    for (int i = 0; ok && i < a->n_rest; i++)
        ok = describe_photo(m, a->rest[i], d[i]);
    ts_face_models_free(m);

    /* A photo already in the gallery (or given twice) would only add a copy
     * of a descriptor: it is skipped, with a word. */
    int kept = 0;
    for (int i = 0; ok && i < a->n_rest; i++) {
        float dist;
        int who = ts_gallery_match_face(g, d[i], SAME_PHOTO_DISTANCE, &dist);
        int twice = 0;
        for (int k = 0; k < kept && !twice; k++)
            twice = ts_face_distance(d[i], d[k]) <= SAME_PHOTO_DISTANCE;
        if (who >= 0 || twice) {
            if (twice)
                fprintf(stderr,
                        "togethershot gallery: %s is the same photo as one before it; "
                        "skipped\n",
                        a->rest[i]);
            else
                fprintf(stderr,
                        "togethershot gallery: %s is already in the gallery (a photo of \"%s\"); "
                        "skipped\n",
                        a->rest[i], g->persons[who].name);
            continue;
        }
        memcpy(d[kept++], d[i], sizeof d[0]);
    }

    int rc = TS_EXIT_FAILURE;
    if (ok && kept == 0) {
        printf("nothing was added: every photo is already in %s\n", path);
        rc = TS_EXIT_OK;
    } else if (ok) {
        if (ts_gallery_add(g, a->name, a->aliases, a->n_aliases,
                           (const float(*)[TS_FACE_DESCRIPTOR_DIM])d, kept, &err) != TS_OK ||
            ts_gallery_save(g, path, &err) != TS_OK) {
            fprintf(stderr, "togethershot gallery: %s\n", err.message);
        } else {
            printf("added %d face descriptor%s for \"%s\" to %s\n", kept, kept == 1 ? "" : "s",
                   a->name, path);
            rc = TS_EXIT_OK;
        }
    } else {
        fprintf(stderr, "togethershot gallery: nothing was added\n");
    }
    if (d)
        memset(d, 0, (size_t)a->n_rest * sizeof *d);
    free(d);
    return rc;
}

static int do_list(const ts_gallery *g, const char *path)
{
    if (g->count == 0)
        printf("the gallery %s is empty; add people with 'togethershot gallery add'\n", path);
    for (int i = 0; i < g->count; i++) {
        const ts_gallery_person *p = &g->persons[i];
        printf("%s", p->name);
        for (int k = 0; k < p->n_aliases; k++)
            printf("%s%s", k ? ", " : "  (aliases: ", p->aliases[k]);
        printf("%s  %d descriptor%s\n", p->n_aliases ? ")" : "", p->n_descriptors,
               p->n_descriptors == 1 ? "" : "s");
    }
    return TS_EXIT_OK;
}

static int do_remove(const args *a, ts_gallery *g, const char *path)
{
    if (a->n_rest != 1) {
        fprintf(stderr, "togethershot gallery remove: give exactly one NAME\n");
        return TS_EXIT_USAGE;
    }
    if (!ts_gallery_remove(g, a->rest[0])) {
        fprintf(stderr, "togethershot gallery: \"%s\" is not in %s\n", a->rest[0], path);
        return TS_EXIT_FAILURE;
    }
    ts_error err;
    if (ts_gallery_save(g, path, &err) != TS_OK) {
        fprintf(stderr, "togethershot gallery: %s\n", err.message);
        return TS_EXIT_FAILURE;
    }
    printf("removed \"%s\" from %s\n", a->rest[0], path);
    return TS_EXIT_OK;
}

int ts_cli_gallery(int argc, char **argv)
{
    args a;
    int rc = parse(argc, argv, &a);
    if (rc >= 0) {
        free(a.rest);
        return rc;
    }
    char buf[PATH_BUF];
    const char *path = a.gallery ? a.gallery : ts_portrait_default_gallery_path(buf, sizeof buf);
    if (!path) {
        fprintf(stderr, "togethershot gallery: no gallery path; give --gallery FILE\n");
        free(a.rest);
        return TS_EXIT_USAGE;
    }
    int known = strcmp(a.action, "add") == 0 || strcmp(a.action, "list") == 0 ||
                strcmp(a.action, "remove") == 0;
    if (!known) {
        fprintf(stderr, "togethershot gallery: unknown action '%s'\n\n", a.action);
        usage(stderr);
        free(a.rest);
        return TS_EXIT_USAGE;
    }

    ts_error err;
    ts_gallery *g;
    if (ts_gallery_load(path, &g, &err) != TS_OK) {
        fprintf(stderr, "togethershot gallery: %s\n", err.message);
        free(a.rest);
        return TS_EXIT_FAILURE;
    }
    if (strcmp(a.action, "add") == 0)
        rc = do_add(&a, g, path);
    else if (strcmp(a.action, "list") == 0)
        rc = a.n_rest ? TS_EXIT_USAGE : do_list(g, path);
    else
        rc = do_remove(&a, g, path);
    if (rc == TS_EXIT_USAGE && strcmp(a.action, "list") == 0)
        fprintf(stderr, "togethershot gallery list: takes no arguments\n");
    ts_gallery_free(g);
    free(a.rest);
    return rc;
}
