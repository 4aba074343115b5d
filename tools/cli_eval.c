/* llama-cli eval --model DIR|FILE.gguf --tokens 1,2,3 [--logits-out FILE]: one prefill, all logits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

static void help(void) {
    printf("usage: llama-cli eval --model DIR --tokens ID,ID,... [--logits-out FILE] [--threads N]\n"
           "           [--backend auto|cpu|cuda] [--verbose]\n"
           "           [--cpu-kernels auto|ref|portable|avx2|avx512] [--quantize q8_0|q4_k]\n"
           "Runs the tokens through the model in one prefill. Prints, per position, the input token, the\n"
           "argmax of the next-token logits and its logit (tab-separated, with a header line). With\n"
           "--logits-out, writes the logits of all positions as little-endian float32, row-major\n"
           "[n_tokens][n_vocab], no header.\n");
}

static int write_logits(const char *path, const float *logits, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_error("--logits-out: cannot open '%s' for writing", path);
    const uint16_t probe = 1;
    const int little = *(const uint8_t *)&probe == 1;
    size_t written = 0;
    if (little) {
        written = fwrite(logits, sizeof *logits, n, f);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint8_t b[4], s[4];
            memcpy(b, &logits[i], 4);
            s[0] = b[3], s[1] = b[2], s[2] = b[1], s[3] = b[0];
            written += fwrite(s, 4, 1, f);
        }
    }
    if (fclose(f) != 0 || written != n) return cli_error("--logits-out: write to '%s' failed", path);
    return 0;
}

int cli_eval(int argc, char **argv) {
    cli_model_opts o = {0};
    const char *tokens_arg = NULL, *logits_out = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_model_flag(argc, argv, &i, &o);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        }
        if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            tokens_arg = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--logits-out") == 0 && i + 1 < argc) {
            logits_out = argv[++i];
            continue;
        }
        return cli_error("eval: unknown option or missing value: '%s' (try --help)", argv[i]);
    }
    if (!tokens_arg) return cli_error("eval: --tokens ID,ID,... is required");
    int32_t *tokens = NULL;
    size_t n = 0;
    if (cli_parse_token_list(tokens_arg, &tokens, &n) != 0) return 1;
    llm_model *model = cli_load_model(&o);
    if (!model) {
        free(tokens);
        return 1;
    }
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    int rc = 1;
    llm_engine *engine = NULL;
    float *logits = NULL;
    if (n > (size_t)mi.n_ctx_train) {
        cli_error("eval: %zu tokens exceed the model's context of %d", n, mi.n_ctx_train);
        goto done;
    }
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = (int32_t)n;
    ep.n_seq_max = 1;
    if (llm_engine_create(model, &ep, &engine) != LLM_OK) {
        cli_error("%s", llm_model_last_error(model));
        goto done;
    }
    const size_t V = (size_t)mi.n_vocab;
    logits = malloc(n * V * sizeof *logits);
    if (!logits) {
        cli_error("out of memory for %zu x %zu logits", n, V);
        goto done;
    }
    llm_seq_id seq;
    llm_status st = llm_seq_create(engine, &seq);
    if (st == LLM_OK) st = llm_prefill(engine, seq, tokens, n, LLM_LOGITS_ALL, logits, n * V, NULL);
    if (st != LLM_OK) {
        cli_error("%s (%s)", llm_engine_last_error(engine), llm_status_name(st));
        goto done;
    }
    printf("pos\ttoken\targmax\tlogit\n");
    for (size_t t = 0; t < n; t++) {
        const float *row = logits + t * V;
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        printf("%zu\t%d\t%zu\t%.6f\n", t, tokens[t], best, row[best]);
    }
    if (logits_out && write_logits(logits_out, logits, n * V) != 0) goto done;
    rc = 0;
done:
    free(logits);
    free(tokens);
    llm_engine_free(engine);
    llm_model_free(model);
    return rc;
}
