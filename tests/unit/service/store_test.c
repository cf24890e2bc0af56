/* store_test.c - the encrypted ephemeral store (POLICY.md P2-P5): what lands
 * on disk, restart semantics, destroy, expiry and memory-only mode. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ts_clock.h"
#include "ts_config.h"
#include "ts_store.h"
#include "ts_test.h"

static const char marker[] = "PLAINTEXT-MARKER-7f3a9c";

static char tmp_root[256];

static void make_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_root, name);
    mkdir(out, 0700);
}

/* Counts the entries of dir and returns the first regular file's path. */
static int list_dir(const char *dir, char *first, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    if (first)
        first[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == 0 && first)
            snprintf(first, cap, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static size_t read_all(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* A payload large enough for several secretstream chunks, with the marker
 * repeated throughout. */
static unsigned char *payload(size_t *len)
{
    *len = 200000;
    unsigned char *p = malloc(*len);
    for (size_t i = 0; i < *len; i++)
        p[i] = (unsigned char)marker[i % (sizeof marker - 1)];
    return p;
}

static int contains(const unsigned char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

static void test_encrypted_on_disk_and_restart(void)
{
    char dir[512];
    make_dir(dir, sizeof dir, "disk");
    ts_store_options o = {.data_dir = dir, .retention_ms = 3600000};
    ts_store *a;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &a, &err), TS_OK);

    size_t len;
    unsigned char *data = payload(&len);
    char id[TS_STORE_ID_SIZE];
    TS_CHECK_INT_EQ(ts_store_put(a, TS_ITEM_RESULT, "job1", data, len, 0, id, &err), TS_OK);

    /* One file, mode 0600, named without user data, holding no plaintext. */
    char path[1024];
    TS_CHECK_INT_EQ(list_dir(dir, path, sizeof path), 1);
    struct stat sb;
    TS_CHECK(stat(path, &sb) == 0);
    TS_CHECK_INT_EQ(sb.st_mode & 0777, 0600);
    TS_CHECK(strstr(path, "job1") == NULL);
    static unsigned char raw[300000];
    size_t n = read_all(path, raw, sizeof raw);
    TS_CHECK(n > len);
    TS_CHECK(!contains(raw, n, marker));
    TS_CHECK(!contains(raw, n, "PLAINTEXT"));

    /* Round trip. */
    void *back;
    size_t back_len;
    ts_store_item_info info;
    TS_CHECK_INT_EQ(ts_store_get(a, id, &back, &back_len, &info, &err), TS_OK);
    TS_CHECK_INT_EQ(back_len, len);
    TS_CHECK(back && memcmp(back, data, len) == 0);
    TS_CHECK_INT_EQ(info.kind, TS_ITEM_RESULT);
    TS_CHECK_STR_EQ(info.owner, "job1");
    ts_store_data_free(back, back_len);

    /* A flipped ciphertext byte fails authentication instead of decrypting. */
    int fd = open(path, O_RDWR);
    unsigned char b;
    TS_CHECK(pread(fd, &b, 1, 1000) == 1);
    b ^= 1;
    TS_CHECK(pwrite(fd, &b, 1, 1000) == 1);
    TS_CHECK_INT_EQ(ts_store_get(a, id, &back, &back_len, NULL, &err), TS_ERR_FORMAT);
    b ^= 1;
    TS_CHECK(pwrite(fd, &b, 1, 1000) == 1);
    close(fd);
    TS_CHECK_INT_EQ(ts_store_get(a, id, &back, &back_len, NULL, &err), TS_OK);
    ts_store_data_free(back, back_len);

    /* A second instance (a restart: the first one's keys are not its own)
     * cannot read the first one's item and removes its file at start. */
    memcpy(raw, "", 0);
    ts_store *b2;
    TS_CHECK_INT_EQ(ts_store_open(&o, &b2, &err), TS_OK);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    TS_CHECK_INT_EQ(ts_store_get(b2, id, &back, &back_len, NULL, &err), TS_ERR_NOT_FOUND);
    ts_store_stats stats;
    ts_store_get_stats(b2, &stats);
    TS_CHECK_INT_EQ(stats.leftovers_removed, 1);
    ts_store_close(b2);

    ts_store_close(a); /* its file is already gone; closing must cope */
    free(data);
}

static void test_foreign_files_refused(void)
{
    char dir[512], path[1024];
    make_dir(dir, sizeof dir, "foreign");
    snprintf(path, sizeof path, "%s/holiday.jpg", dir);
    FILE *f = fopen(path, "w");
    fputs("not ours", f);
    fclose(f);
    chmod(dir, 0755); /* someone's shared folder */
    ts_store_options o = {.data_dir = dir};
    ts_store *st;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "holiday.jpg") != NULL);
    TS_CHECK(access(path, F_OK) == 0); /* untouched */
    struct stat sb;
    TS_CHECK_INT_EQ(stat(dir, &sb), 0);
    TS_CHECK_INT_EQ(sb.st_mode & 0777, 0755); /* a refused folder keeps its mode */
    unlink(path);

    /* A folder we accept is made private. */
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(stat(dir, &sb), 0);
    TS_CHECK_INT_EQ(sb.st_mode & 0777, 0700);
    ts_store_close(st);
}

static void test_destroy_and_owner(void)
{
    char dir[512];
    make_dir(dir, sizeof dir, "destroy");
    ts_store_options o = {.data_dir = dir};
    ts_store *st;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
    char a[TS_STORE_ID_SIZE], b[TS_STORE_ID_SIZE], c[TS_STORE_ID_SIZE];
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, "j1", "aa", 2, 0, a, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_RESULT, "j1", "bb", 2, 0, b, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, "j2", "cc", 2, 0, c, &err), TS_OK);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 3);

    TS_CHECK_INT_EQ(ts_store_destroy(st, c), TS_OK);
    TS_CHECK_INT_EQ(ts_store_destroy(st, c), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 2);
    TS_CHECK_INT_EQ(ts_store_destroy_owner(st, "j1", TS_ITEM_UPLOAD), 1);
    ts_store_item_info info;
    TS_CHECK_INT_EQ(ts_store_info(st, a, &info), TS_ERR_NOT_FOUND);
    TS_CHECK_INT_EQ(ts_store_info(st, b, &info), TS_OK);
    TS_CHECK_INT_EQ(ts_store_destroy_owner(st, "j1", -1), 1);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    ts_store_stats stats;
    ts_store_get_stats(st, &stats);
    TS_CHECK_INT_EQ(stats.items[TS_ITEM_UPLOAD] + stats.items[TS_ITEM_RESULT], 0);
    TS_CHECK_INT_EQ(stats.bytes, 0);
    TS_CHECK_INT_EQ(stats.destroyed_total, 3);
    ts_store_close(st);
}

static void test_expiry_by_sweep(void)
{
    char dir[512];
    make_dir(dir, sizeof dir, "expiry");
    ts_store_options o = {.data_dir = dir, .retention_ms = 2 * 3600000};
    ts_store *st;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
    char a[TS_STORE_ID_SIZE], b[TS_STORE_ID_SIZE];
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_RESULT, "j", "x", 1, 0, a, &err), TS_OK);
    /* An explicit expiry beyond retention is clamped to retention. */
    int64_t far = ts_clock_now_ms() + 48LL * 3600000;
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_RESULT, "j", "y", 1, far, b, &err), TS_OK);
    ts_store_item_info info;
    TS_CHECK_INT_EQ(ts_store_info(st, b, &info), TS_OK);
    TS_CHECK(info.expires_ms <= ts_clock_now_ms() + 2 * 3600000);

    ts_clock_advance_ms(3600000);
    TS_CHECK_INT_EQ(ts_store_sweep(st, ts_clock_now_ms()), 0);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 2);
    ts_clock_advance_ms(3600000 + 1000);
    /* Expired items are unreadable even before the sweeper runs... */
    void *data;
    size_t len;
    TS_CHECK_INT_EQ(ts_store_get(st, a, &data, &len, NULL, &err), TS_ERR_NOT_FOUND);
    /* ...and the sweep removes their files. */
    TS_CHECK_INT_EQ(ts_store_sweep(st, ts_clock_now_ms()), 2);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    ts_store_stats stats;
    ts_store_get_stats(st, &stats);
    TS_CHECK_INT_EQ(stats.expired_total, 2);
    ts_clock_advance_ms(-(2 * 3600000 + 1000));
    ts_store_close(st);
}

static void test_memory_only_writes_nothing(void)
{
    char dir[512], cwd[512];
    make_dir(dir, sizeof dir, "memonly");
    TS_CHECK(getcwd(cwd, sizeof cwd) != NULL);
    TS_CHECK(chdir(dir) == 0);
    ts_store_options o = {.memory_only = 1, .data_dir = dir};
    ts_store *st;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
    size_t len;
    unsigned char *data = payload(&len);
    char id[TS_STORE_ID_SIZE];
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, "j", data, len, 0, id, &err), TS_OK);
    void *back;
    size_t back_len;
    TS_CHECK_INT_EQ(ts_store_get(st, id, &back, &back_len, NULL, &err), TS_OK);
    TS_CHECK(back_len == len && memcmp(back, data, len) == 0);
    ts_store_data_free(back, back_len);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    TS_CHECK_INT_EQ(ts_store_destroy(st, id), TS_OK);
    ts_store_close(st);
    TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    TS_CHECK(chdir(cwd) == 0);
    free(data);
}

static void test_limits_and_retention(void)
{
    ts_store_options o = {.memory_only = 1, .retention_ms = 25LL * 3600000};
    ts_store *st;
    ts_error err;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_ERR_ARG);
    TS_CHECK(strstr(err.message, "24 hours") != NULL);
    o.retention_ms = 0; /* default: 24h */
    o.max_items = 2;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_store_retention_ms(st), TS_RETENTION_MAX_MS);
    char a[TS_STORE_ID_SIZE];
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, NULL, "1", 1, 0, a, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, NULL, "2", 1, 0, a, &err), TS_OK);
    TS_CHECK_INT_EQ(ts_store_put(st, TS_ITEM_UPLOAD, NULL, "3", 1, 0, a, &err), TS_ERR_BUSY);
    ts_store_close(st);

    o.memory_only = 0;
    o.data_dir = NULL;
    TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_ERR_ARG);
}

/* Several threads storing, reading back and destroying at once, plus a
 * thread that destroys items other threads are reading: every read returns
 * the exact bytes or "not found", never damaged data. */
typedef struct worker_ctx {
    ts_store *st;
    int index;
    int bad;
} worker_ctx;

static char shared_ids[64][TS_STORE_ID_SIZE];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static void *store_worker(void *arg)
{
    worker_ctx *w = arg;
    ts_error err;
    unsigned char buf[70000];
    for (int round = 0; round < 40; round++) {
        memset(buf, (w->index * 40 + round) & 0xff, sizeof buf);
        char id[TS_STORE_ID_SIZE];
        if (ts_store_put(w->st, TS_ITEM_RESULT, "c", buf, sizeof buf, 0, id, &err) != TS_OK) {
            w->bad++;
            continue;
        }
        pthread_mutex_lock(&shared_lock);
        memcpy(shared_ids[(w->index * 40 + round) % 64], id, sizeof id);
        pthread_mutex_unlock(&shared_lock);
        void *back;
        size_t len;
        ts_status st = ts_store_get(w->st, id, &back, &len, NULL, &err);
        if (st == TS_OK) {
            if (len != sizeof buf || memcmp(back, buf, len) != 0)
                w->bad++;
            ts_store_data_free(back, len);
        } else if (st != TS_ERR_NOT_FOUND) {
            w->bad++; /* only the destroyer may take it away */
        }
    }
    return NULL;
}

static void *destroyer(void *arg)
{
    worker_ctx *w = arg;
    for (int round = 0; round < 400; round++) {
        char id[TS_STORE_ID_SIZE];
        pthread_mutex_lock(&shared_lock);
        memcpy(id, shared_ids[round % 64], sizeof id);
        pthread_mutex_unlock(&shared_lock);
        if (id[0])
            ts_store_destroy(w->st, id);
    }
    return NULL;
}

static void test_concurrent(void)
{
    for (int mem = 0; mem < 2; mem++) {
        char dir[512];
        make_dir(dir, sizeof dir, mem ? "conc-mem" : "conc-disk");
        ts_store_options o = {.data_dir = dir, .memory_only = mem};
        ts_store *st;
        ts_error err;
        TS_CHECK_INT_EQ(ts_store_open(&o, &st, &err), TS_OK);
        memset(shared_ids, 0, sizeof shared_ids);
        worker_ctx w[5];
        pthread_t t[5];
        for (int i = 0; i < 5; i++) {
            w[i] = (worker_ctx){st, i, 0};
            pthread_create(&t[i], NULL, i == 4 ? destroyer : store_worker, &w[i]);
        }
        for (int i = 0; i < 5; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 4; i++)
            TS_CHECK_INT_EQ(w[i].bad, 0);
        ts_store_stats stats;
        ts_store_get_stats(st, &stats);
        TS_CHECK(stats.items[TS_ITEM_RESULT] + (int)stats.destroyed_total == 160);
        ts_store_close(st);
        TS_CHECK_INT_EQ(list_dir(dir, NULL, 0), 0);
    }
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/ts-store-test-XXXXXX");
    if (!mkdtemp(tmp_root))
        return 1;
    TS_RUN(test_encrypted_on_disk_and_restart);
    TS_RUN(test_foreign_files_refused);
    TS_RUN(test_destroy_and_owner);
    TS_RUN(test_expiry_by_sweep);
    TS_RUN(test_memory_only_writes_nothing);
    TS_RUN(test_limits_and_retention);
    TS_RUN(test_concurrent);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return ts_test_finish();
}
