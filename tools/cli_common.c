#include "cli_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_progress.h"
#include "core/json.h"
#include "core/strbuf.h"

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llama-cli: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static void log_to_stderr(llm_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "llama-cli: %s: %s\n", names[level & 3], msg);
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_model_flag(int argc, char **argv, int *i, cli_model_opts *o) {
    const char *a = argv[*i];
    const int has_value = *i + 1 < argc;
    if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
        if (!has_value) return cli_error("%s needs a directory", a), -1;
        o->model_dir = argv[++*i];
        return 1;
    }
    if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) {
        long long v;
        if (!has_value || cli_parse_int(argv[*i + 1], 1, 1024, &v) != 0)
            return cli_error("%s needs a thread count from 1 to 1024", a), -1;
        o->n_threads = (int)v;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--backend") == 0) {
        if (!has_value) return cli_error("--backend needs auto, cpu or cuda"), -1;
        const char *v = argv[++*i];
        if (strcmp(v, "auto") == 0)
            o->backend = LLM_BACKEND_AUTO;
        else if (strcmp(v, "cpu") == 0)
            o->backend = LLM_BACKEND_CPU;
        else if (strcmp(v, "cuda") == 0)
            o->backend = LLM_BACKEND_CUDA;
        else
            return cli_error("--backend must be auto, cpu or cuda, not '%s'", v), -1;
        return 1;
    }
    if (strcmp(a, "--quantize") == 0) {
        const char *v = has_value ? argv[++*i] : "";
        if (strcmp(v, "q8_0") == 0)
            o->quantize = LLM_QUANTIZE_Q8_0;
        else if (strcmp(v, "q4_k") == 0)
            o->quantize = LLM_QUANTIZE_Q4_K;
        else if (strcmp(v, "none") == 0)
            o->quantize = LLM_QUANTIZE_NONE;
        else
            return cli_error("--quantize must be q8_0, q4_k or none, not '%s'", v), -1;
        return 1;
    }
    if (strcmp(a, "--cpu-kernels") == 0) {
        const char *v = has_value ? argv[++*i] : "";
        for (int k = LLM_CPU_KERNELS_AUTO; k <= LLM_CPU_KERNELS_AVX512; k++)
            if (strcmp(v, llm_cpu_kernels_name((llm_cpu_kernels)k)) == 0) {
                o->cpu_kernels = (llm_cpu_kernels)k;
                return 1;
            }
        return cli_error("--cpu-kernels must be auto, ref, portable, avx2 or avx512, not '%s'", v), -1;
    }
    if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
        o->verbose = 1;
        return 1;
    }
    return 0;
}

int cli_parse_token_list(const char *s, int32_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return cli_error("out of memory"), -1;
    const char *p = s;
    size_t count = 0;
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[32];
        long long v;
        if (len == 0 || len >= sizeof buf) {
            free(ids);
            return cli_error("--tokens: empty or overlong entry at position %zu", count + 1), -1;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (cli_parse_int(buf, 0, INT32_MAX, &v) != 0) {
            free(ids);
            return cli_error("--tokens: '%s' (entry %zu) is not a token id", buf, count + 1), -1;
        }
        ids[count++] = (int32_t)v;
        if (!comma) break;
        p = comma + 1;
    }
    *out = ids;
    *n = count;
    return 0;
}

const char cli_generate_flags_help[] =
    "  --max-tokens N          tokens to generate (default 256)\n"
    "  --temperature T         0 = greedy (default 0.8)\n"
    "  --top-k K               0 = off (default 40)\n"
    "  --top-p P               (0, 1], 1 = off (default 0.95)\n"
    "  --min-p P               [0, 1], 0 = off (default 0.05)\n"
    "  --repeat-penalty R      > 0, 1 = off (default 1.1)\n"
    "  --presence-penalty P    [-2, 2] (default 0)\n"
    "  --frequency-penalty P   [-2, 2] (default 0)\n"
    "  --seed S                random seed (default: from the clock, printed in the summary)\n"
    "  --stop TEXT             stop string, repeatable (up to 16)\n"
    "  --ignore-eos            keep going past end-of-sequence tokens\n";

static int parse_float(const char *s, double lo, double hi, float *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return -1;
    *out = (float)v;
    return 0;
}

int cli_parse_generate_flag(int argc, char **argv, int *i, llm_generate_params *gp, const char **stops,
                            int *seed_given) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long long n;
    static const struct {
        const char *flag;
        size_t offset;
        double lo, hi;
        const char *range;
    } floats[] = {
        {"--temperature", offsetof(llm_sampling_params, temperature), 0, 1e6, "a number >= 0"},
        {"--top-p", offsetof(llm_sampling_params, top_p), 1e-9, 1, "a number in (0, 1]"},
        {"--min-p", offsetof(llm_sampling_params, min_p), 0, 1, "a number in [0, 1]"},
        {"--repeat-penalty", offsetof(llm_sampling_params, repetition_penalty), 1e-9, 1e6, "a number > 0"},
        {"--presence-penalty", offsetof(llm_sampling_params, presence_penalty), -2, 2, "a number in [-2, 2]"},
        {"--frequency-penalty", offsetof(llm_sampling_params, frequency_penalty), -2, 2,
         "a number in [-2, 2]"},
    };
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++)
        if (strcmp(a, floats[k].flag) == 0) {
            if (parse_float(v, floats[k].lo, floats[k].hi,
                            (float *)((char *)&gp->sampling + floats[k].offset)) != 0)
                return cli_error("%s needs %s, not '%s'", a, floats[k].range, v ? v : ""), -1;
            ++*i;
            return 1;
        }
    if (strcmp(a, "--max-tokens") == 0 || strcmp(a, "-n") == 0) {
        if (cli_parse_int(v, 1, 1 << 24, &n) != 0)
            return cli_error("%s needs a count >= 1, not '%s'", a, v ? v : ""), -1;
        gp->max_tokens = (int32_t)n;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--top-k") == 0) {
        if (cli_parse_int(v, 0, INT32_MAX, &n) != 0)
            return cli_error("--top-k needs a count >= 0, not '%s'", v ? v : ""), -1;
        gp->sampling.top_k = (int32_t)n;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--seed") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long sd = v ? strtoull(v, &end, 10) : 0;
        if (!v || !*v || *v == '-' || errno || *end)
            return cli_error("--seed needs a non-negative integer, not '%s'", v ? v : ""), -1;
        gp->sampling.seed = sd;
        *seed_given = 1;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--stop") == 0) {
        if (!v || !*v) return cli_error("--stop needs a non-empty string"), -1;
        if (gp->n_stop >= 16) return cli_error("at most 16 --stop strings"), -1;
        stops[gp->n_stop++] = v;
        gp->stop = stops;
        ++*i;
        return 1;
    }
    if (strcmp(a, "--ignore-eos") == 0) {
        gp->ignore_eos = 1;
        return 1;
    }
    return 0;
}

void cli_default_sampling(llm_sampling_params *sp) {
    sp->temperature = 0.8f;
    sp->top_k = 40;
    sp->top_p = 0.95f;
    sp->min_p = 0.05f;
    sp->repetition_penalty = 1.1f;
}

char *cli_messages_json(const char *system, const char *user) {
    llm_strbuf sb = {0};
    llm_strbuf_append_char(&sb, '[');
    if (system) {
        llm_strbuf_append_str(&sb, "{\"role\":\"system\",\"content\":");
        llm_json_escape(&sb, system, strlen(system));
        llm_strbuf_append_str(&sb, "},");
    }
    llm_strbuf_append_str(&sb, "{\"role\":\"user\",\"content\":");
    llm_json_escape(&sb, user, strlen(user));
    llm_strbuf_append_str(&sb, "}]");
    return llm_strbuf_detach(&sb, NULL);
}

int cli_render_chat(llm_model *model, const char *messages_json, size_t len, char **text, size_t *text_len) {
    size_t need = 0;
    *text = NULL;
    llm_status st =
        llm_model_apply_chat_template(model, messages_json, len, NULL, 0, 1, NULL, 0, NULL, 0, &need);
    if (st == LLM_ERR_BUFFER_TOO_SMALL) {
        *text = malloc(need + 1);
        st = *text ? llm_model_apply_chat_template(model, messages_json, len, NULL, 0, 1, NULL, 0, *text,
                                                   need + 1, &need)
                   : LLM_ERR_OUT_OF_MEMORY;
    }
    if (st != LLM_OK) {
        free(*text);
        *text = NULL;
        return cli_error("%s", st == LLM_ERR_OUT_OF_MEMORY ? "out of memory" : llm_model_last_error(model)),
               -1;
    }
    *text_len = need;
    return 0;
}

int cli_tokenize_text(llm_model *model, const char *what, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n) {
    return cli_tokenize_with(llm_model_tokenizer(model), what, text, len, flags, ids, n);
}

int cli_tokenize_with(llm_tokenizer *tok, const char *what, const char *text, size_t len, unsigned flags,
                      int32_t **ids, size_t *n) {
    *ids = NULL;
    if (!tok) return cli_error("the model directory has no tokenizer.json"), -1;
    size_t need = 0;
    llm_status st = llm_tokenize(tok, text, len, flags, NULL, 0, &need);
    if (st == LLM_OK || st == LLM_ERR_BUFFER_TOO_SMALL) {
        *ids = malloc((need ? need : 1) * sizeof **ids);
        st = *ids ? llm_tokenize(tok, text, len, flags, *ids, need, &need) : LLM_ERR_OUT_OF_MEMORY;
    }
    if (st != LLM_OK || need == 0) {
        free(*ids);
        *ids = NULL;
        if (st != LLM_OK) return cli_error("tokenizing %s: %s", what, llm_tokenizer_last_error(tok)), -1;
        return cli_error("%s is empty after tokenization", what), -1;
    }
    *n = need;
    return 0;
}

double cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

const char *cli_default_model_dir(void) {
    const char *env = getenv("LLAMAC_DEMO_MODEL");
    return env && *env ? env : LLAMAC_DEMO_MODEL_DIR;
}

llm_model_params cli_model_params(const cli_model_opts *o) {
    llm_model_params mp = llm_model_default_params();
    mp.backend = o->backend;
    mp.n_threads = o->n_threads;
    mp.cpu_kernels = o->cpu_kernels;
    mp.quantize = o->quantize;
    mp.log_fn = log_to_stderr;
    mp.log_level = o->verbose ? LLM_LOG_DEBUG : LLM_LOG_WARN;
    return mp;
}

llm_model *cli_load_model(const cli_model_opts *o) {
    if (!o->model_dir) {
        cli_error("--model DIR is required");
        return NULL;
    }
    llm_model_params mp = cli_model_params(o);
    cli_progress bar;
    cli_progress_attach(&bar, "loading", &mp);
    llm_model *model = NULL;
    char err[1024];
    llm_status st = llm_model_load(o->model_dir, &mp, &model, err, sizeof err);
    cli_progress_end(&bar);
    if (st != LLM_OK) {
        cli_error("%s (%s)", err, llm_status_name(st));
        return NULL;
    }
    return model;
}

int cli_start_runner(llm_engine *engine, const llm_runner_params *params, llm_runner **out) {
    /* The runner thread inherits this thread's signal mask: with SIGINT blocked there, Ctrl-C always
     * lands on the main thread, where it interrupts a blocking read (chat's prompt). */
    sigset_t intr, old;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    pthread_sigmask(SIG_BLOCK, &intr, &old);
    llm_status st = llm_runner_create(engine, params, out);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != LLM_OK) return cli_error("%s (%s)", llm_engine_last_error(engine), llm_status_name(st));
    return 0;
}
