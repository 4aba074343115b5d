/* llama-cli generate and chat on the bundled demo model, and their error paths (non-zero exit, one
 * line on stderr). chat is driven through stdin: the second turn must reuse the first turn's KV. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

static char tmpdir[512];

static int run_cli(const char *args, const char *stdin_text, char **out, char **err) {
    const char *cli = getenv("LLAMAC_CLI");
    char in_path[600], cmd[4096];
    snprintf(in_path, sizeof in_path, "%s/in", tmpdir);
    tu_write_file(in_path, stdin_text ? stdin_text : "", stdin_text ? strlen(stdin_text) : 0);
    snprintf(cmd, sizeof cmd, "'%s' %s <'%s' >'%s/out' 2>'%s/err'", cli ? cli : "llama-cli", args, in_path, tmpdir,
             tmpdir);
    int rc = system(cmd);
    char p[1024];
    snprintf(p, sizeof p, "%s/out", tmpdir);
    *out = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/err", tmpdir);
    *err = tu_read_file(p, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static void expect_error(const char *args, const char *fragment) {
    char *out, *err;
    int rc = run_cli(args, NULL, &out, &err);
    TU_CHECK(rc != 0, "'%s' should fail", args);
    TU_CHECK(err && count_lines(err) == 1 && strncmp(err, "llama-cli: error: ", 18) == 0,
             "'%s': one error line expected, got: %s", args, err ? err : "(none)");
    TU_CHECK(err && strstr(err, fragment), "'%s': error should mention '%s': %s", args, fragment, err ? err : "");
    free(out);
    free(err);
}

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    char *out, *err;

    /* generate with the bundled model (no --model), fixed seed: same text twice */
    int rc = run_cli("generate --prompt 'In the beginning' --max-tokens 24 --seed 11 --threads 2", NULL, &out, &err);
    TU_CHECK(rc == 0, "generate exit %d: %s", rc, err ? err : "");
    TU_CHECK(out && strlen(out) > 20, "generate printed: %s", out ? out : "(nothing)");
    TU_CHECK(err && strstr(err, "tok/s") && strstr(err, "finish") && strstr(err, "seed 11"), "summary: %s",
             err ? err : "");
    char *again, *err2;
    run_cli("generate --prompt 'In the beginning' --max-tokens 24 --seed 11 --threads 1", NULL, &again, &err2);
    TU_CHECK(out && again && strcmp(out, again) == 0, "same seed, different text:\n%s\n---\n%s", out, again ? again : "");
    free(out);
    free(err);
    free(again);
    free(err2);

    /* --chat and a stop string */
    rc = run_cli("generate --chat --prompt 'Who was Moses?' --max-tokens 16 --seed 3 --stop ' the '", NULL, &out, &err);
    TU_CHECK(rc == 0, "generate --chat exit %d: %s", rc, err ? err : "");
    TU_CHECK(out && !strstr(out, " the "), "text past the stop string: %s", out ? out : "");
    free(out);
    free(err);

    /* chat through stdin: two turns, a reset, a third turn */
    rc = run_cli("chat --max-tokens 12 --seed 5 --temperature 0", "Hello\nAnd then?\n/reset\nAgain\n/exit\n", &out, &err);
    TU_CHECK(rc == 0, "chat exit %d: %s", rc, err ? err : "");
    const char *first = err ? strstr(err, "reused ") : NULL;
    const char *second = first ? strstr(first + 1, "reused ") : NULL;
    const char *reset = err ? strstr(err, "conversation reset") : NULL;
    const char *third = second ? strstr(second + 1, "reused ") : NULL;
    TU_CHECK(first && atoi(first + 7) == 0, "first turn reuses nothing: %s", err ? err : "");
    TU_CHECK(second && atoi(second + 7) > 0, "second turn reuses the first turn's KV: %s", err ? err : "");
    TU_CHECK(reset && third && third > reset && atoi(third + 7) == 0, "after /reset nothing is reused: %s",
             err ? err : "");
    TU_CHECK(out && count_lines(out) >= 3, "three replies: %s", out ? out : "");
    free(out);
    free(err);

    /* help and errors */
    TU_CHECK(run_cli("generate --help", NULL, &out, &err) == 0 && out && strstr(out, "--temperature"), "generate --help");
    free(out);
    free(err);
    TU_CHECK(run_cli("chat --help", NULL, &out, &err) == 0 && out && strstr(out, "/reset"), "chat --help");
    free(out);
    free(err);
    expect_error("generate --model /nonexistent/dir --prompt hi", "/nonexistent/dir");
    expect_error("generate --prompt hi --temperature -1", "--temperature");
    expect_error("generate --prompt hi --top-p 0", "--top-p");
    expect_error("generate --prompt hi --max-tokens 0", "--max-tokens");
    expect_error("generate --prompt hi --seed x", "--seed");
    expect_error("generate", "--prompt");
    expect_error("chat --frobnicate", "--frobnicate");
    tu_remove_dir(tmpdir);
    return tu_finish("test_generate_cli");
}
