#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/json.h"

int tu_failures = 0;

int tu_finish(const char *test_name) {
    if (tu_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", test_name, tu_failures);
        return 1;
    }
    printf("%s: all checks passed\n", test_name);
    return 0;
}

const char *tu_fixtures_dir(void) {
    const char *env = getenv("LLAMAC_FIXTURES");
    return env && *env ? env : LLAMAC_FIXTURES_DEFAULT;
}

char *tu_fixture(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", tu_fixtures_dir(), name);
    return out;
}

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

char *tu_make_temp_dir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/llamac-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) return NULL;
    return strdup(tmpl);
}

int tu_copy_dir(const char *src, const char *dst) {
    DIR *d = opendir(src);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char from[1024], to[1024];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t len;
        char *data = tu_read_file(from, &len);
        if (!data || tu_write_file(to, data, len) != 0) rc = -1;
        free(data);
    }
    closedir(d);
    return rc;
}

void tu_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int read_ids(const llm_json *arr, int32_t *out, int cap) {
    if (llm_json_type_of(arr) != LLM_JSON_ARRAY || (int)llm_json_count(arr) > cap) return -1;
    for (size_t i = 0; i < llm_json_count(arr); i++) {
        int64_t v;
        if (llm_json_int64(llm_json_value_at(arr, i), &v) != 0) return -1;
        out[i] = (int32_t)v;
    }
    return (int)llm_json_count(arr);
}

int tu_load_reference(const char *dir, tu_reference *ref) {
    memset(ref, 0, sizeof *ref);
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    size_t len;
    char *text = tu_read_file(path, &len);
    if (!text) return -1;
    llm_json_doc *doc = NULL;
    char err[256];
    int rc = -1;
    if (llm_json_parse(text, len, &doc, err, sizeof err) != 0) goto out;
    const llm_json *root = llm_json_root(doc);
    int64_t v;
    if (llm_json_int64(llm_json_get(root, "n_vocab"), &v) != 0) goto out;
    ref->n_vocab = (int32_t)v;
    ref->n_tokens = read_ids(llm_json_get(root, "tokens"), ref->tokens, 256);
    ref->n_prompt = read_ids(llm_json_get(root, "greedy_prompt"), ref->greedy_prompt, 64);
    ref->n_greedy = read_ids(llm_json_get(root, "greedy_continuation"), ref->greedy, 64);
    ref->max_abs_logit = llm_json_number(llm_json_get(root, "max_abs_logit"));
    if (ref->n_tokens <= 0 || ref->n_prompt <= 0 || ref->n_greedy <= 0) goto out;
    snprintf(path, sizeof path, "%s/reference_logits.f32", dir);
    size_t blen;
    char *raw = tu_read_file(path, &blen);
    if (!raw || blen != (size_t)ref->n_tokens * (size_t)ref->n_vocab * 4) {
        free(raw);
        goto out;
    }
    ref->logits = (float *)raw; /* little-endian host assumed (x86-64, arm64) */
    rc = 0;
out:
    llm_json_doc_free(doc);
    free(text);
    return rc;
}

void tu_free_reference(tu_reference *ref) {
    free(ref->logits);
    ref->logits = NULL;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int tu_list_fixtures(const char *names[], int cap) {
    static char storage[64][128];
    DIR *d = opendir(tu_fixtures_dir());
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap && n < 64) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s/reference.json", tu_fixtures_dir(), e->d_name);
        if (access(p, R_OK) != 0) continue;
        snprintf(storage[n], sizeof storage[n], "%s", e->d_name);
        names[n] = storage[n];
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

llm_model *tu_load_model(const char *dir, int n_threads) {
    llm_model_params mp = llm_model_default_params();
    mp.n_threads = n_threads;
    /* The suite checks the CPU reference path (bit-exact batch invariance and all): never let auto pick
     * a GPU. LLAMAC_TEST_BACKEND=cuda runs a test on the CUDA backend instead. */
    const char *b = getenv("LLAMAC_TEST_BACKEND");
    mp.backend = b && strcmp(b, "cuda") == 0 ? LLM_BACKEND_CUDA : LLM_BACKEND_CPU;
    /* ... and its reference kernels (LLM_CPU_KERNELS_REF), unless LLAMAC_TEST_CPU_KERNELS names another
     * level (auto, portable, avx2, avx512), to run a test on the fast kernels. */
    const char *k = getenv("LLAMAC_TEST_CPU_KERNELS");
    mp.cpu_kernels = LLM_CPU_KERNELS_REF;
    for (int l = LLM_CPU_KERNELS_AUTO; k && l <= LLM_CPU_KERNELS_AVX512; l++)
        if (strcmp(k, llm_cpu_kernels_name((llm_cpu_kernels)l)) == 0) mp.cpu_kernels = (llm_cpu_kernels)l;
    llm_model *m = NULL;
    char err[1024];
    llm_status st = llm_model_load(dir, &mp, &m, err, sizeof err);
    if (st != LLM_OK) {
        fprintf(stderr, "cannot load %s: %s (%s)\n", dir, err, llm_status_name(st));
        return NULL;
    }
    return m;
}

uint64_t tu_rng_next(tu_rng *r) {
    uint64_t x = r->s ? r->s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t tu_fresh_seed(const char *test_name) {
    const char *env = getenv("LLAMAC_TEST_SEED");
    uint64_t seed;
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    }
    printf("%s: seed %llu (replay with LLAMAC_TEST_SEED=%llu)\n", test_name, (unsigned long long)seed,
           (unsigned long long)seed);
    return seed;
}

double tu_rel_diff(const float *a, const float *b, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= max_diff)) max_diff = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > max_ref) max_ref = fabs(b[i]);
    }
    return max_diff / (max_ref > 1 ? max_ref : 1);
}

int tu_run_cli(const char *dir, const char *args, const char *stdin_text, char **out, size_t *out_len,
               char **err) {
    const char *cli = getenv("LLAMAC_CLI");
    char in_path[1024], cmd[16384];
    snprintf(in_path, sizeof in_path, "%s/stdin", dir);
    tu_write_file(in_path, stdin_text ? stdin_text : "", stdin_text ? strlen(stdin_text) : 0);
    snprintf(cmd, sizeof cmd, "'%s' %s <'%s' >'%s/out' 2>'%s/err'", cli ? cli : "llama-cli", args, in_path,
             dir, dir);
    int rc = system(cmd);
    char p[1024];
    snprintf(p, sizeof p, "%s/out", dir);
    *out = tu_read_file(p, out_len);
    snprintf(p, sizeof p, "%s/err", dir);
    *err = tu_read_file(p, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int tu_count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

void tu_expect_cli_error(const char *dir, const char *args, const char *fragment) {
    char *out, *err;
    int rc = tu_run_cli(dir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc != 0, "'%s' should fail", args);
    TU_CHECK(err && tu_count_lines(err) == 1 && strncmp(err, "llama-cli: error: ", 18) == 0,
             "'%s': one error line expected, got: %s", args, err ? err : "(none)");
    TU_CHECK(err && strstr(err, fragment), "'%s': error should mention '%s': %s", args, fragment,
             err ? err : "");
    TU_CHECK(out && *out == '\0', "'%s': nothing on stdout expected, got: %s", args, out ? out : "");
    free(out);
    free(err);
}
