/*
 * portrait_test.c - the portrait-rights check from the outside:
 *   - prompt screening: the protected name in disguises (case, accents,
 *     look-alike letters, digits for letters, spacing, punctuation) matches;
 *     look-alikes that are other words ("Tom Hanksford", "Atom Hanks", the
 *     surname alone) do not, unless listed as aliases;
 *   - the gallery file: add / list / remove round trip, mode 0600, nothing
 *     in it but names, aliases and 128-number descriptors;
 *   - enrolment refuses a photo with no face and one with several faces;
 *   - a photo of an enrolled person is refused, other people's photos are
 *     not, and reload swaps the gallery (removing the person lifts it).
 */
#include <jansson.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_face.h"
#include "ts_gallery.h"
#include "ts_names.h"
#include "ts_portrait.h"
#include "ts_test.h"
#include "vision_fixture.h"

static char dir[256];

/* ---------------------------------------------------------------- prompts */

static int prompt_has(const char *name, const char *prompt)
{
    ts_names_key key;
    ts_names_text text;
    if (ts_names_key_make(name, &key, NULL) != TS_OK)
        return -1;
    ts_names_text_make(prompt, &text, NULL);
    int found = ts_names_text_contains(&text, &key);
    ts_names_text_free(&text);
    ts_names_key_free(&key);
    return found;
}

static void test_prompt_disguises_match(void)
{
    const char *hits[] = {
        "a photo of Tom Hanks on the beach",
        "TOM HANKS",
        "tom   hanks",
        "Tom-Hanks eating soup",
        "T.o.m H.a.n.k.s",
        "TomHanks",
        "Tom Hanks's dog",
        "t0m h4nk5",
        "Tom Hank$",
        "T\xc3\xb4m H\xc3\xa4nks", /* Tôm Hänks */
        "\xd0\xa2\xd0\xbem \xd0\x9d"
        "anks",                                       /* Cyrillic Т о Н */
        "\xef\xbc\xb4\xef\xbd\x8f\xef\xbd\x8d Hanks", /* full-width Tom */
        "Tom Han\xe2\x80\x8bks",                      /* zero-width space inside */
        "To\xcc\x81m Hanks",                          /* combining acute accent */
        "portrait, (tom hanks:1.3), 4k",
    };
    for (size_t i = 0; i < sizeof hits / sizeof hits[0]; i++) {
        int r = prompt_has("Tom Hanks", hits[i]);
        if (r != 1)
            fprintf(stderr, "  should match: \"%s\"\n", hits[i]);
        TS_CHECK_INT_EQ(r, 1);
    }
    /* Diacritics in the protected name fold the same way. */
    TS_CHECK_INT_EQ(prompt_has("Zo\xc3\xab Sald\xc3\xa1\xc3\xb1\x61", "zoe saldana in space"), 1);
    TS_CHECK_INT_EQ(prompt_has("Bill Example", "b1ll example"), 1);
    TS_CHECK_INT_EQ(prompt_has("Bill Example", "BiII Example"), 1); /* capital i for l */
}

static void test_prompt_lookalikes_do_not_match(void)
{
    const char *misses[] = {
        "Tom Hanksford at the office",
        "Atom Hanks",
        "hanks",
        "tom",
        "Tom and Hanks",
        "custom hanks",
        "tomahanks",
        "Tom Hank",
        "",
        "$$$ @@@",
    };
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        int r = prompt_has("Tom Hanks", misses[i]);
        if (r != 0)
            fprintf(stderr, "  should not match: \"%s\"\n", misses[i]);
        TS_CHECK_INT_EQ(r, 0);
    }
    TS_CHECK_INT_EQ(prompt_has("Ed Sheeran", "a bed sheer and soft"), 0);
    /* i and l are only merged for 1 and capital I, never for each other. */
    TS_CHECK_INT_EQ(prompt_has("Ali", "all of them"), 0);
    TS_CHECK_INT_EQ(prompt_has("Ali", "ALI at the gym"), 1);
    TS_CHECK_INT_EQ(prompt_has("Ali", "al1 at the gym"), 1);
    TS_CHECK_INT_EQ(ts_names_same("ALI", "Ali"), 1);
    TS_CHECK_INT_EQ(ts_names_same("Ali", "All"), 0);
    TS_CHECK_INT_EQ(prompt_has("!!!", "anything"), -1); /* a name needs letters */
}

/* ---------------------------------------------------------------- gallery file */

static void fake_descriptor(float *d, float seed)
{
    for (int i = 0; i < TS_FACE_DESCRIPTOR_DIM; i++)
        d[i] = sinf(seed * (i + 1)) * 0.1f;
}

static void test_gallery_round_trip(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sub/gallery.json", dir);
    ts_gallery *g;
    TS_CHECK_INT_EQ(ts_gallery_load(path, &g, NULL), TS_OK); /* missing: empty */
    TS_CHECK_INT_EQ(g->count, 0);

    float d[3][TS_FACE_DESCRIPTOR_DIM];
    fake_descriptor(d[0], 1.0f);
    fake_descriptor(d[1], 2.0f);
    fake_descriptor(d[2], 3.0f);
    const char *aliases[] = {"Ada E", "Countess"};
    TS_CHECK_INT_EQ(ts_gallery_add(g, "Ada Example", aliases, 2,
                                   (const float(*)[TS_FACE_DESCRIPTOR_DIM])d, 2, NULL),
                    TS_OK);
    TS_CHECK_INT_EQ(ts_gallery_add(g, "Bob Sample", NULL, 0,
                                   (const float(*)[TS_FACE_DESCRIPTOR_DIM])d + 2, 1, NULL),
                    TS_OK);
    /* The same name, spelled otherwise, adds to the same person. */
    TS_CHECK_INT_EQ(ts_gallery_add(g, "ADA  EXAMPLE", (const char *[]){"ada e"}, 1,
                                   (const float(*)[TS_FACE_DESCRIPTOR_DIM])d + 2, 1, NULL),
                    TS_OK);
    TS_CHECK_INT_EQ(g->count, 2);
    TS_CHECK_INT_EQ(g->persons[0].n_descriptors, 3);
    TS_CHECK_INT_EQ(g->persons[0].n_aliases, 2);
    TS_CHECK_INT_EQ(ts_gallery_save(g, path, NULL), TS_OK);

    struct stat sb;
    TS_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);

    /* Only names, aliases and descriptors: walk the whole JSON. */
    json_t *root = json_load_file(path, 0, NULL);
    TS_CHECK(root != NULL);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        int allowed = !strcmp(key, "format") || !strcmp(key, "version") ||
                      !strcmp(key, "descriptor_dim") || !strcmp(key, "persons");
        TS_CHECK(allowed);
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(root, "persons"), i, p)
    {
        json_object_foreach(p, key, v)
        {
            int allowed =
                !strcmp(key, "name") || !strcmp(key, "aliases") || !strcmp(key, "descriptors");
            TS_CHECK(allowed);
        }
        size_t k;
        json_t *row;
        json_array_foreach(json_object_get(p, "descriptors"), k, row)
        {
            TS_CHECK_INT_EQ(json_array_size(row), TS_FACE_DESCRIPTOR_DIM);
            for (size_t j = 0; j < json_array_size(row); j++)
                TS_CHECK(json_is_number(json_array_get(row, j)));
        }
    }
    json_decref(root);
    /* 4 descriptors of ~128 short numbers: a few KB, no room for a photo. */
    TS_CHECK(sb.st_size < 4 * 128 * 20 + 1024);

    ts_gallery *back;
    TS_CHECK_INT_EQ(ts_gallery_load(path, &back, NULL), TS_OK);
    TS_CHECK_INT_EQ(back->count, 2);
    TS_CHECK_STR_EQ(back->persons[0].name, "Ada Example");
    TS_CHECK_STR_EQ(back->persons[0].aliases[1], "Countess");
    TS_CHECK_INT_EQ(back->persons[0].n_descriptors, 3);
    TS_CHECK_NEAR(back->persons[1].descriptors[0][5], d[2][5], 1e-7);
    TS_CHECK_INT_EQ(ts_gallery_match_face(back, d[1], 0.01f, NULL), 0);
    TS_CHECK_INT_EQ(ts_gallery_match_face(back, d[2], 0.01f, NULL), 0); /* Ada has it too */

    TS_CHECK_INT_EQ(ts_gallery_remove(back, "ada example"), 1);
    TS_CHECK_INT_EQ(ts_gallery_remove(back, "Nobody"), 0);
    TS_CHECK_INT_EQ(ts_gallery_save(back, path, NULL), TS_OK);
    ts_gallery *after;
    TS_CHECK_INT_EQ(ts_gallery_load(path, &after, NULL), TS_OK);
    TS_CHECK_INT_EQ(after->count, 1);
    TS_CHECK_STR_EQ(after->persons[0].name, "Bob Sample");
    ts_gallery_free(after);
    ts_gallery_free(back);
    ts_gallery_free(g);

    /* A damaged file is an error, never a silently empty gallery. */
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"togethershot-gallery\", \"version\": 1, \"persons\": [", f);
    fclose(f);
    ts_error err;
    TS_CHECK_INT_EQ(ts_gallery_load(path, &g, &err), TS_ERR_FORMAT);
}

/* ---------------------------------------------------------------- faces */

static void crop(const ts_image *src, int x, int y, int w, int h, ts_image *dst)
{
    dst->width = w;
    dst->height = h;
    dst->pixels = malloc((size_t)w * h * 3);
    for (int r = 0; r < h; r++)
        memcpy(dst->pixels + (size_t)r * w * 3,
               src->pixels + ((size_t)(y + r) * src->width + x) * 3, (size_t)w * 3);
}

typedef struct checker {
    ts_portrait *pc;
    const ts_image *img;
    int failures;
} checker;

/* Checks from a worker thread while the main thread reloads. */
static void *checker_main(void *arg)
{
    checker *c = arg;
    for (int i = 0; i < 2; i++) {
        ts_portrait_verdict v;
        ts_error err;
        if (ts_portrait_check_image(c->pc, c->img, &v, &err) != TS_OK || v.faces_found != 4)
            c->failures++;
        ts_portrait_check_prompt(c->pc, "Lady Ada", &v);
    }
    return NULL;
}

static void check_concurrently(ts_portrait *pc, const ts_image *img)
{
    checker c[2] = {{pc, img, 0}, {pc, img, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, checker_main, &c[i]);
    for (int i = 0; i < 3; i++) {
        ts_error err;
        TS_CHECK_INT_EQ(ts_portrait_reload(pc, &err), TS_OK);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        TS_CHECK_INT_EQ(c[i].failures, 0);
    }
}

static void test_enrolment_refusals_and_check(void)
{
    ts_face_models *m;
    ts_error err;
    if (ts_face_models_load(vision_models_dir(), &m, &err) != TS_OK) {
        fprintf(stderr, "face models: %s\n", err.message);
        TS_CHECK(0);
        return;
    }
    ts_image group3 = {0}, group4 = {0}, one = {0}, none = {0};
    TS_CHECK(vision_load_webp("group3.webp", &group3));
    TS_CHECK(vision_load_webp("group4.webp", &group4));
    if (!group3.pixels || !group4.pixels)
        return;

    /* Several faces, and no face, are refused with a reason. */
    float d[TS_FACE_DESCRIPTOR_DIM];
    TS_CHECK_INT_EQ(ts_face_describe_single(m, &group3, d, 2, &err), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "3 faces found") != NULL);
    crop(&group3, 0, 250, 90, 90, &none); /* the dark lower-left corner */
    TS_CHECK_INT_EQ(ts_face_describe_single(m, &none, d, 2, &err), TS_ERR_NOT_FOUND);
    TS_CHECK(strstr(err.message, "no face") != NULL);

    /* The left-hand woman of group3 alone (her face is near x 110..160). */
    crop(&group3, 60, 40, 150, 200, &one);
    TS_CHECK_INT_EQ(ts_face_describe_single(m, &one, d, 2, &err), TS_OK);

    char path[512];
    snprintf(path, sizeof path, "%s/portrait-gallery.json", dir);
    ts_gallery *g;
    ts_gallery_new(&g, NULL);
    TS_CHECK_INT_EQ(ts_gallery_add(g, "Ada Example", (const char *[]){"Lady Ada"}, 1,
                                   (const float(*)[TS_FACE_DESCRIPTOR_DIM])d, 1, NULL),
                    TS_OK);
    TS_CHECK_INT_EQ(ts_gallery_save(g, path, NULL), TS_OK);
    ts_face_models_free(m);

    ts_portrait_options o = {.models_dir = vision_models_dir(), .gallery_path = path, .threads = 2};
    ts_portrait *pc;
    TS_CHECK_INT_EQ(ts_portrait_open(&o, &pc, &err), TS_OK);
    if (!pc)
        return;
    TS_CHECK_INT_EQ(ts_portrait_gallery_size(pc), 1);
    TS_CHECK_INT_EQ(ts_portrait_gallery_changed(pc), 0);

    ts_portrait_verdict v;
    TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &group3, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.faces_found, 3);
    TS_CHECK_INT_EQ(v.refused, 1);
    TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &group4, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.faces_found, 4);
    TS_CHECK_INT_EQ(v.refused, 0);
    TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &none, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.faces_found, 0);
    TS_CHECK_INT_EQ(v.refused, 0);

    ts_portrait_check_prompt(pc, "Lady  ADA at a ball", &v);
    TS_CHECK_INT_EQ(v.refused, 1);
    ts_portrait_check_prompt(pc, "a lady at a ball", &v);
    TS_CHECK_INT_EQ(v.refused, 0);

    /* Checks in two threads while the gallery is reloaded under them. */
    check_concurrently(pc, &group4);

    /* Remove her, see the change, reload: the same photo now passes. */
    ts_gallery_remove(g, "Ada Example");
    sleep(1); /* coarse file systems keep whole-second times */
    TS_CHECK_INT_EQ(ts_gallery_save(g, path, NULL), TS_OK);
    TS_CHECK_INT_EQ(ts_portrait_gallery_changed(pc), 1);
    TS_CHECK_INT_EQ(ts_portrait_reload(pc, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_portrait_gallery_size(pc), 0);
    TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &group3, &v, &err), TS_OK);
    TS_CHECK_INT_EQ(v.refused, 0);
    ts_portrait_check_prompt(pc, "Lady Ada", &v);
    TS_CHECK_INT_EQ(v.refused, 0);

    /* Degenerate pictures: a pixel, a line, a black square. */
    const int sizes[][2] = {{1, 1}, {5000, 1}, {2, 3000}, {64, 64}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ts_image tiny = {sizes[i][0], sizes[i][1], calloc((size_t)sizes[i][0] * sizes[i][1], 3)};
        TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &tiny, &v, &err), TS_OK);
        TS_CHECK_INT_EQ(v.faces_found, 0);
        free(tiny.pixels);
    }
    ts_image empty = {0};
    TS_CHECK_INT_EQ(ts_portrait_check_image(pc, &empty, &v, &err), TS_ERR_ARG);

    /* A broken file keeps the old gallery in force. */
    FILE *f = fopen(path, "w");
    fputs("not json", f);
    fclose(f);
    TS_CHECK(ts_portrait_reload(pc, &err) != TS_OK);
    TS_CHECK_INT_EQ(ts_portrait_gallery_size(pc), 0);

    ts_portrait_close(pc);
    ts_gallery_free(g);
    free(group3.pixels);
    free(group4.pixels);
    free(one.pixels);
    free(none.pixels);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ts-portrait-test-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    TS_RUN(test_prompt_disguises_match);
    TS_RUN(test_prompt_lookalikes_do_not_match);
    TS_RUN(test_gallery_round_trip);
    TS_RUN(test_enrolment_refusals_and_check);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return ts_test_finish();
}
