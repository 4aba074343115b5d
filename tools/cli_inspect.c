/* llama-cli inspect --model DIR|FILE.gguf [--ctx N]: what the model is and what running it would cost. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"

static void help(void) {
    printf(
        "usage: llama-cli inspect --model DIR [--ctx N] [--threads N] [--backend auto|cpu|cuda] [--verbose]\n"
        "           [--cpu-kernels auto|ref|portable|avx2|avx512] [--quantize q8_0|q4_k]\n"
        "Prints architecture, dimensions, parameter count, bytes by dtype and the memory footprint\n"
        "(weights + KV cache + scratch) of an engine with a context of N tokens (default: min(model, "
        "4096)).\n");
}

static const char *bytes(uint64_t b, char *buf, size_t cap) {
    static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) v /= 1024, i++;
    if (i == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)b);
    else
        snprintf(buf, cap, "%.2f %s (%llu B)", v, u[i], (unsigned long long)b);
    return buf;
}

int cli_inspect(int argc, char **argv) {
    cli_model_opts o = {0};
    long long ctx = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_model_flag(argc, argv, &i, &o);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        }
        if (strcmp(argv[i], "--ctx") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 1 << 30, &ctx) != 0)
                return cli_error("--ctx needs a token count");
            i++;
            continue;
        }
        return cli_error("inspect: unknown option '%s' (try --help)", argv[i]);
    }
    llm_model *model = cli_load_model(&o);
    if (!model) return 1;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = (int32_t)ctx;
    llm_engine_info ei;
    llm_status st = llm_engine_estimate(model, &ep, &ei);
    if (st != LLM_OK && st != LLM_ERR_MEMORY_LIMIT) {
        cli_error("%s", llm_model_last_error(model));
        llm_model_free(model);
        return 1;
    }
    char b[64];
    printf("model:            %s\n", o.model_dir);
    printf("architecture:     %s (%s)\n", mi.architecture, mi.family);
    printf("vocab:            %d\n", mi.n_vocab);
    printf("hidden:           %d\n", mi.n_embd);
    printf("layers:           %d\n", mi.n_layer);
    printf("heads:            %d (kv %d, %s), head_dim %d\n", mi.n_head, mi.n_head_kv,
           mi.n_head_kv == mi.n_head ? "MHA"
           : mi.n_head_kv == 1       ? "MQA"
                                     : "GQA",
           mi.head_dim);
    printf("ffn:              %d\n", mi.n_ff);
    printf("context (train):  %d\n", mi.n_ctx_train);
    printf("rope:             %s, theta %g\n", mi.rope_type, mi.rope_theta);
    printf("rms_norm_eps:     %g\n", mi.rms_norm_eps);
    printf("embeddings:       %s\n", mi.tied_embeddings ? "tied" : "untied");
    printf("biases:           qkv %s, o %s, mlp %s; qk-norm %s\n", mi.has_qkv_bias ? "yes" : "no",
           mi.has_o_bias ? "yes" : "no", mi.has_mlp_bias ? "yes" : "no", mi.has_qk_norm ? "yes" : "no");
    printf("bos / eos:        %d / ", mi.bos_token_id);
    for (int i = 0; i < mi.n_eos; i++) printf("%s%d", i ? "," : "", mi.eos_token_ids[i]);
    printf("%s\n", mi.n_eos ? "" : "none");
    printf("parameters:       %llu (%.3f B) in %llu tensors\n", (unsigned long long)mi.n_params,
           mi.n_params / 1e9, (unsigned long long)mi.n_tensors);
    printf("weights:          %s\n", bytes(mi.weight_bytes, b, sizeof b));
    for (int d = 0; d < LLM_DTYPE_COUNT; d++)
        if (mi.bytes_by_dtype[d])
            printf("  %-5s           %s\n", llm_dtype_name((llm_dtype)d),
                   bytes(mi.bytes_by_dtype[d], b, sizeof b));
    printf("backend:          %s (%d threads; requested %s; %s)\n", llm_backend_name(mi.backend),
           mi.n_threads, llm_backend_name(o.backend), mi.backend_reason);
    if (mi.backend == LLM_BACKEND_CPU)
        printf("cpu kernels:      %s (requested %s)\n",
               llm_cpu_kernels_name(llm_cpu_kernels_resolve(o.cpu_kernels, NULL, 0)),
               llm_cpu_kernels_name(o.cpu_kernels));
    printf("KV per token:     %s (f32)\n", bytes(mi.kv_bytes_per_token, b, sizeof b));
    printf("footprint @ctx %d: %s", ei.n_ctx, bytes(ei.footprint_bytes, b, sizeof b));
    printf(" = weights + KV %s", bytes(ei.kv_bytes, b, sizeof b));
    printf(" + scratch %s\n", bytes(ei.scratch_bytes, b, sizeof b));
    if (st == LLM_ERR_MEMORY_LIMIT) printf("warning:          %s\n", llm_model_last_error(model));
    llm_model_free(model);
    return 0;
}
