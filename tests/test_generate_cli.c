/* llama-cli generate and chat on the bundled demo model, and their error paths (non-zero exit, one
 * line on stderr). chat is driven through stdin: the second turn must reuse the first turn's KV. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

static char tmpdir[512];

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    char *out, *err;

    /* generate with the bundled model (no --model), fixed seed: same text twice */
    int rc = tu_run_cli(tmpdir, "generate --prompt 'In the beginning' --max-tokens 24 --seed 11 --threads 2",
                        NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "generate exit %d: %s", rc, err ? err : "");
    TU_CHECK(out && strlen(out) > 20, "generate printed: %s", out ? out : "(nothing)");
    TU_CHECK(err && strstr(err, "tok/s") && strstr(err, "finish") && strstr(err, "seed 11"), "summary: %s",
             err ? err : "");
    char *again, *err2;
    tu_run_cli(tmpdir, "generate --prompt 'In the beginning' --max-tokens 24 --seed 11 --threads 1", NULL,
               &again, NULL, &err2);
    TU_CHECK(out && again && strcmp(out, again) == 0, "same seed, different text:\n%s\n---\n%s", out,
             again ? again : "");
    free(out);
    free(err);
    free(again);
    free(err2);

    /* --chat and a stop string */
    rc = tu_run_cli(tmpdir,
                    "generate --chat --prompt 'Who was Moses?' --max-tokens 16 --seed 3 --stop ' the '", NULL,
                    &out, NULL, &err);
    TU_CHECK(rc == 0, "generate --chat exit %d: %s", rc, err ? err : "");
    TU_CHECK(out && !strstr(out, " the "), "text past the stop string: %s", out ? out : "");
    free(out);
    free(err);

    /* chat through stdin: two turns, a reset, a third turn */
    rc = tu_run_cli(tmpdir, "chat --max-tokens 12 --seed 5 --temperature 0",
                    "Hello\nAnd then?\n/reset\nAgain\n/exit\n", &out, NULL, &err);
    TU_CHECK(rc == 0, "chat exit %d: %s", rc, err ? err : "");
    const char *first = err ? strstr(err, "reused ") : NULL;
    const char *second = first ? strstr(first + 1, "reused ") : NULL;
    const char *reset = err ? strstr(err, "conversation reset") : NULL;
    const char *third = second ? strstr(second + 1, "reused ") : NULL;
    TU_CHECK(first && atoi(first + 7) == 0, "first turn reuses nothing: %s", err ? err : "");
    TU_CHECK(second && atoi(second + 7) > 0, "second turn reuses the first turn's KV: %s", err ? err : "");
    TU_CHECK(reset && third && third > reset && atoi(third + 7) == 0, "after /reset nothing is reused: %s",
             err ? err : "");
    TU_CHECK(out && tu_count_lines(out) >= 3, "three replies: %s", out ? out : "");
    free(out);
    free(err);

    /* help and errors */
    TU_CHECK(tu_run_cli(tmpdir, "generate --help", NULL, &out, NULL, &err) == 0 && out &&
                 strstr(out, "--temperature"),
             "generate --help");
    free(out);
    free(err);
    TU_CHECK(tu_run_cli(tmpdir, "chat --help", NULL, &out, NULL, &err) == 0 && out && strstr(out, "/reset"),
             "chat --help");
    free(out);
    free(err);
    tu_expect_cli_error(tmpdir, "generate --model /nonexistent/dir --prompt hi", "/nonexistent/dir");
    tu_expect_cli_error(tmpdir, "generate --prompt hi --temperature -1", "--temperature");
    tu_expect_cli_error(tmpdir, "generate --prompt hi --top-p 0", "--top-p");
    tu_expect_cli_error(tmpdir, "generate --prompt hi --max-tokens 0", "--max-tokens");
    tu_expect_cli_error(tmpdir, "generate --prompt hi --seed x", "--seed");
    tu_expect_cli_error(tmpdir, "generate", "--prompt");
    tu_expect_cli_error(tmpdir, "chat --frobnicate", "--frobnicate");
    tu_remove_dir(tmpdir);
    return tu_finish("test_generate_cli");
}
