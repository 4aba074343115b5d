/* Shared helpers for llamac's test programs: checks, files, temporary directories, fixtures. */
#ifndef LLAMAC_TEST_UTIL_H
#define LLAMAC_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llamac.h"

extern int tu_failures;

/* A failed check prints where and why and counts; the test continues so one run shows every failure. */
#define TU_CHECK(cond, ...)                                                                                  \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            tu_failures++;                                                                                   \
            fprintf(stderr, "%s:%d: CHECK FAILED: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

/* Ends main(): prints a one-line summary and returns the exit status. */
int tu_finish(const char *test_name);

/* The fixtures folder (env LLAMAC_FIXTURES, else the source tree's tests/fixtures). */
const char *tu_fixtures_dir(void);
/* fixtures dir + "/" + name into a static buffer of the caller's: returns out. */
char *tu_fixture(const char *name, char *out, size_t cap);

char *tu_read_file(const char *path, size_t *len); /* malloc'd, NUL-terminated; NULL on failure */
int tu_write_file(const char *path, const void *data, size_t len);
char *tu_make_temp_dir(void);                      /* malloc'd path of a fresh directory */
int tu_copy_dir(const char *src, const char *dst); /* regular files, flat */
void tu_remove_dir(const char *dir);               /* regular files, flat, then the dir */

/* The HF reference data of one fixture (reference.json + reference_logits.f32). */
typedef struct tu_reference {
    int32_t tokens[256];
    int n_tokens;
    int32_t n_vocab;
    int32_t greedy_prompt[64];
    int n_prompt;
    int32_t greedy[64];
    int n_greedy;
    double max_abs_logit;
    float *logits; /* [n_tokens][n_vocab] */
} tu_reference;

int tu_load_reference(const char *fixture_dir, tu_reference *ref); /* 0 on success */
void tu_free_reference(tu_reference *ref);

/* Names of the fixture directories that hold a reference.json (static storage). */
int tu_list_fixtures(const char *names[], int cap);

/* Loads a fixture model with quiet logging; NULL (with a printed reason) on failure. */
llm_model *tu_load_model(const char *dir, int n_threads);

/* Runs "$LLAMAC_CLI ARGS" through the shell with stdin_text (may be NULL) as its input, capturing
 * stdout and stderr in files under dir. *out / *err: malloc'd contents (NUL-terminated; out_len may be
 * NULL). Returns the exit status, -1 if it did not exit normally. */
int tu_run_cli(const char *dir, const char *args, const char *stdin_text, char **out, size_t *out_len,
               char **err);

/* Newlines in s (0 for NULL). */
int tu_count_lines(const char *s);

/* Checks that "llama-cli ARGS" fails with exactly one line on stderr, "llama-cli: error: ...",
 * mentioning fragment, and prints nothing on stdout. */
void tu_expect_cli_error(const char *dir, const char *args, const char *fragment);

/* max |a - b| / max(1, max |b|) over n floats; NaN anywhere gives infinity. b is the reference. */
double tu_rel_diff(const float *a, const float *b, size_t n);

/* A deterministic PRNG for tests (xorshift64*), seeded explicitly. */
typedef struct {
    uint64_t s;
} tu_rng;
uint64_t tu_rng_next(tu_rng *r);
static inline uint32_t tu_rng_below(tu_rng *r, uint32_t n) {
    return (uint32_t)(tu_rng_next(r) % n);
}
/* A seed from the clock and pid, printed so a failure can be replayed (env LLAMAC_TEST_SEED wins). */
uint64_t tu_fresh_seed(const char *test_name);

#endif
