/* llama-cli convert --to gguf: writes a model (a Hugging Face directory, a GGUF file, or random weights
 * of a preset's shape) as a GGUF file llama.cpp loads, optionally quantized on the way. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "cli_progress.h"
#include "core/error.h"
#include "core/fileutil.h"
#include "model/model_gguf.h"

static void help(void) {
    printf("usage: llama-cli convert --to gguf [--quantize q8_0|q4_k] [--name NAME] MODEL OUT.gguf\n"
           "       llama-cli convert --to gguf --random-weights PRESET [--dtype bf16|f16|f32|q8_0|q4_k]\n"
           "                         [--seed N] [--name NAME] OUT.gguf\n"
           "Writes MODEL (a Hugging Face directory, or a GGUF file) as a GGUF file in llama.cpp's layout:\n"
           "its key names, tensor names, Llama's permuted Q/K rows, Llama 3.1 RoPE scaling as rope_freqs,\n"
           "norms and biases in F32, the tokenizer as tokenizer.ggml.* (pre-tokenizer \"llama-bpe\" for\n"
           "Llama 3, \"qwen2\" for Qwen) and the chat template. The file appears atomically.\n\n"
           "  --quantize q8_0|q4_k    quantize the weight matrices (token embedding included); a matrix\n"
           "                          whose rows are not whole Q4_K blocks (256) falls back to Q8_0\n"
           "  --random-weights P      random weights in the exact shape of preset P (as bench builds them);\n"
           "                          such a model has no tokenizer, so the file gets a byte-level\n"
           "                          vocabulary: 256 byte tokens, no merges, the preset's BOS/EOS ids as\n"
           "                          control tokens, \"[PAD<id>]\" unused tokens up to the vocabulary size\n"
           "  --dtype D               storage of the random weights (default bf16)\n"
           "  --seed N                seed of the random weights (default 1)\n"
           "  --name NAME             general.name (default: the architecture)\n"
           "  --threads N             threads for quantizing / filling random weights\n");
}

static void on_progress(float fraction, void *user) {
    cli_progress_set(user, fraction);
}

int cli_convert(int argc, char **argv) {
    cli_model_opts mo = {0};
    mo.backend = LLM_BACKEND_CPU; /* the writer reads the weights from host memory */
    const char *to = NULL, *preset = NULL, *name = NULL, *pos[2] = {NULL, NULL};
    llm_dtype dtype = LLM_DTYPE_BF16;
    uint64_t seed = 1;
    int n_pos = 0, dtype_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return 0;
        }
        if (strcmp(a, "--backend") == 0) return cli_error("convert always runs on the CPU");
        const int r = cli_parse_model_flag(argc, argv, &i, &mo);
        if (r < 0) return 1;
        if (r > 0) continue;
        long long n;
        if (strcmp(a, "--to") == 0 && v) {
            to = argv[++i];
        } else if (strcmp(a, "--random-weights") == 0 && v) {
            preset = argv[++i];
        } else if (strcmp(a, "--name") == 0 && v) {
            name = argv[++i];
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_parse_int(v, 0, INT64_MAX, &n) != 0)
                return cli_error("--seed needs a non-negative integer, not '%s'", v ? v : "");
            seed = (uint64_t)n;
            i++;
        } else if (strcmp(a, "--dtype") == 0) {
            static const struct {
                const char *name;
                llm_dtype d;
            } dts[] = {{"bf16", LLM_DTYPE_BF16},
                       {"f16", LLM_DTYPE_F16},
                       {"f32", LLM_DTYPE_F32},
                       {"q8_0", LLM_DTYPE_Q8_0},
                       {"q4_k", LLM_DTYPE_Q4_K}};
            size_t k = 0;
            while (k < sizeof dts / sizeof dts[0] && !(v && strcmp(v, dts[k].name) == 0)) k++;
            if (k == sizeof dts / sizeof dts[0])
                return cli_error("--dtype must be bf16, f16, f32, q8_0 or q4_k, not '%s'", v ? v : "");
            dtype = dts[k].d;
            dtype_given = 1;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("convert: unknown option or missing value: '%s' (try --help)", a);
        } else if (n_pos < 2) {
            pos[n_pos++] = a;
        } else {
            return cli_error("convert: unexpected argument '%s' (try --help)", a);
        }
    }
    if (!to || strcmp(to, "gguf") != 0) return cli_error("convert needs --to gguf (the only output format)");
    const int want = preset ? 1 : 2;
    if (n_pos != want)
        return cli_error(preset ? "convert --random-weights needs exactly one argument: OUT.gguf"
                                : "convert needs MODEL and OUT.gguf (try --help)");
    if (preset && mo.model_dir) return cli_error("convert: give a MODEL or --random-weights, not both");
    if (dtype_given && !preset) return cli_error("convert: --dtype applies to --random-weights only");
    const char *out = pos[want - 1];

    llm_model *model = NULL;
    if (preset) {
        llm_model_params mp = cli_model_params(&mo);
        cli_progress bar;
        cli_progress_attach(&bar, "building random weights", &mp);
        char err[1024];
        llm_status st = llm_model_create_random(preset, dtype, seed, &mp, &model, err, sizeof err);
        cli_progress_end(&bar);
        if (st != LLM_OK) return cli_error("%s (%s)", err, llm_status_name(st));
    } else {
        mo.model_dir = pos[0];
        if (!(model = cli_load_model(&mo))) return 1;
    }
    llm_gguf_write_params wp = {.name = name};
    cli_progress bar;
    cli_progress_begin(&bar, "writing");
    wp.progress_fn = on_progress;
    wp.progress_user_data = &bar;
    llm_error e;
    llm_error_clear(&e);
    const double t0 = cli_now_ms();
    llm_status st = llm_model_write_gguf(model, out, &wp, &e);
    cli_progress_end(&bar);
    if (st != LLM_OK) {
        llm_model_free(model);
        return cli_error("%s (%s)", e.msg, llm_status_name(st));
    }
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    llm_model_free(model);
    char b[32];
    fprintf(stderr, "llama-cli: wrote %s: %s, %d layers, %llu parameters, %s of weights in %.1f s\n", out,
            mi.family, mi.n_layer, (unsigned long long)mi.n_params,
            llm_format_bytes(mi.weight_bytes, b, sizeof b), (cli_now_ms() - t0) / 1e3);
    return 0;
}
