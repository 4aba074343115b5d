/* llama-cli inspect / eval on directories in the transformers-4 and transformers-5 config layouts,
 * and its error paths: a non-zero exit and exactly one line on stderr. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

static char tmpdir[512];

static void inspect(const char *fixture, const char *must1, const char *must2) {
    char dir[1024], args[2048];
    tu_fixture(fixture, dir, sizeof dir);
    snprintf(args, sizeof args, "inspect --model '%s'", dir);
    char *out, *err;
    int rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "inspect %s exit %d: %s", fixture, rc, err ? err : "");
    TU_CHECK(out && strstr(out, must1), "inspect %s: missing '%s' in:\n%s", fixture, must1, out ? out : "");
    TU_CHECK(out && strstr(out, must2), "inspect %s: missing '%s' in:\n%s", fixture, must2, out ? out : "");
    TU_CHECK(out && strstr(out, "footprint"), "inspect %s: no footprint", fixture);
    free(out);
    free(err);
}

static void eval(const char *fixture) {
    char dir[1024];
    tu_fixture(fixture, dir, sizeof dir);
    tu_reference ref;
    if (tu_load_reference(dir, &ref) != 0) {
        TU_CHECK(0, "reference of %s", fixture);
        return;
    }
    char toks[4096] = "";
    size_t pos = 0;
    for (int i = 0; i < ref.n_tokens; i++)
        pos += (size_t)snprintf(toks + pos, sizeof toks - pos, "%s%d", i ? "," : "", ref.tokens[i]);
    char args[8192], logits_path[1024];
    snprintf(logits_path, sizeof logits_path, "%s/logits.f32", tmpdir);
    snprintf(args, sizeof args, "eval --model '%s' --tokens %s --logits-out '%s' --threads 2", dir, toks,
             logits_path);
    char *out, *err;
    int rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "eval %s exit %d: %s", fixture, rc, err ? err : "");
    TU_CHECK(tu_count_lines(out) == ref.n_tokens + 1, "eval %s: %d lines for %d tokens", fixture,
             tu_count_lines(out), ref.n_tokens);
    /* every printed argmax equals the reference argmax of that position */
    const char *line = out ? strchr(out, '\n') : NULL;
    for (int t = 0; line && t < ref.n_tokens; t++) {
        int p, tok, am;
        if (sscanf(line + 1, "%d\t%d\t%d", &p, &tok, &am) != 3) {
            TU_CHECK(0, "eval %s: unparsable line %d", fixture, t);
            break;
        }
        const float *row = ref.logits + (size_t)t * ref.n_vocab;
        int best = 0;
        for (int v = 1; v < ref.n_vocab; v++)
            if (row[v] > row[best]) best = v;
        TU_CHECK(p == t && tok == ref.tokens[t] && am == best, "eval %s pos %d: argmax %d, HF %d", fixture, t,
                 am, best);
        line = strchr(line + 1, '\n');
    }
    size_t len = 0;
    char *raw = tu_read_file(logits_path, &len);
    TU_CHECK(raw && len == (size_t)ref.n_tokens * ref.n_vocab * 4, "logits file of %zu bytes", len);
    if (raw && len == (size_t)ref.n_tokens * ref.n_vocab * 4) {
        double d = tu_rel_diff((const float *)raw, ref.logits, len / 4);
        TU_CHECK(d <= 1e-4, "eval %s: logits file differs from HF by %.3g (relative)", fixture, d);
    }
    free(raw);
    free(out);
    free(err);
    tu_free_reference(&ref);
}

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    /* transformers-4 layout (rope_theta, torch_dtype) and transformers-5 layout (rope_parameters, dtype) */
    inspect("llama_f32", "LlamaForCausalLM", "GQA");
    inspect("qwen3_bf16", "Qwen3ForCausalLM", "tied");
    inspect("llama_bf16", "rope:             llama3", "BF16");
    inspect("llama_mqa_sharded", "MQA", "2,3");
    inspect("qwen2_f16", "F16", "qkv yes");
    eval("llama_f32"); /* transformers-4 layout */
    eval("qwen3_f32"); /* transformers-5 layout */
    eval("llama_mqa_sharded");

    char dir[1024], args[2048];
    tu_fixture("llama_f32", dir, sizeof dir);
    tu_expect_cli_error(tmpdir, "inspect --model /nonexistent/model", "/nonexistent/model");
    snprintf(args, sizeof args, "eval --model '%s' --tokens 1,x,3", dir);
    tu_expect_cli_error(tmpdir, args, "'x'");
    snprintf(args, sizeof args, "eval --model '%s' --tokens 1,99999", dir);
    tu_expect_cli_error(tmpdir, args, "vocabulary");
    snprintf(args, sizeof args, "eval --model '%s'", dir);
    tu_expect_cli_error(tmpdir, args, "--tokens");
    snprintf(args, sizeof args, "eval --model '%s' --tokens 1 --threads 0", dir);
    tu_expect_cli_error(tmpdir, args, "--threads");
    snprintf(args, sizeof args, "inspect --model '%s' --frobnicate", dir);
    tu_expect_cli_error(tmpdir, args, "--frobnicate");
    snprintf(args, sizeof args, "inspect --model '%s' --backend cuda", dir);
    tu_expect_cli_error(tmpdir, args, "CUDA");
    tu_expect_cli_error(tmpdir, "no-such-command", "no-such-command");
    char *out, *err;
    TU_CHECK(tu_run_cli(tmpdir, "eval --help", NULL, &out, NULL, &err) == 0 && out &&
                 strstr(out, "--logits-out"),
             "eval --help");
    free(out);
    free(err);
    TU_CHECK(tu_run_cli(tmpdir, "inspect --help", NULL, &out, NULL, &err) == 0 && out &&
                 strstr(out, "--model"),
             "inspect --help");
    free(out);
    free(err);
    tu_remove_dir(tmpdir);
    return tu_finish("test_cli");
}
