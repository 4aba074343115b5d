/* llama-cli bench: prefill and decode speed of one model on this machine, with the fraction of the
 * memory-bandwidth roofline measured in the same run.
 *
 * Decode reads every weight it uses once per token, plus the KV cache of the context so far, so its
 * roofline is (read bandwidth) / (bytes read per token, the real bytes of quantized tensors). The
 * bandwidth is probed here, right before the model runs, with the engine's thread count; so is the f32
 * FMA peak (cli_peak.c), which the prefill's matmul FLOP rate is reported against. --random-weights builds a
 * real checkpoint's shape in memory, so anyone can reproduce the figures without downloading weights. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_bench_concurrency.h"
#include "backend/cuda/cuda_backend.h"
#include "cli_common.h"
#include "cli_peak.h"
#include "cli_progress.h"

static void help(void) {
    printf(
        "usage: llama-cli bench [--model DIR [--quantize q8_0|q4_k] | --random-weights PRESET [--dtype D]\n"
        "           [--seed N]] [--prompt N] [--gen N] [--repeat R] [--threads N] [--backend auto|cpu|cuda]\n"
        "           [--json]\n"
        "Measures prefill and decode speed, and the memory read bandwidth of this machine in the same run\n"
        "(the better of a probe before and one after the runs, on the engine's thread count).\n"
        "Each of R runs prefills N random prompt tokens into a fresh sequence, then decodes --gen tokens\n"
        "one at a time (greedy); the medians are reported, after one untimed warm-up forward pass.\n"
        "\n"
        "  --model DIR             a Hugging Face model directory or a GGUF file (default: the demo model)\n"
        "  --random-weights P      random weights in the exact shape of P, built in memory (no files):\n"
        "                          ");
    for (size_t i = 0; llm_model_random_preset(i); i++)
        printf("%s%s", i ? ", " : "", llm_model_random_preset(i));
    printf(
        "\n"
        "  --dtype D               storage of the random weights: bf16 (default), f16, f32, q8_0, q4_k\n"
        "                          (q8_0/q4_k: the matrices quantized from bf16, norms kept in bf16)\n"
        "  --quantize q8_0|q4_k    quantize a --model's weight matrices at load\n"
        "  --seed N                seed of the random weights (default 1)\n"
        "  --prompt N              prompt tokens (default 128)\n"
        "  --gen N                 decoded tokens per run (default 64)\n"
        "  --repeat R              runs; medians are reported (default 3)\n"
        "  --threads N             worker threads (default: all cores); the bandwidth probe uses the same\n"
        "  --json                  print one JSON object instead of the table\n"
        "  --concurrency C1,C2,..  instead: for each level C, C requests at once through the "
        "continuous-batching\n"
        "                          runner: aggregate tok/s, time to first token and inter-token latency "
        "p50/p99\n"
        "                          (--json: one object per level, one per line)\n"
        "\n"
        "decode roofline = bandwidth / bytes read per decoded token: the weights a token uses (all of\n"
        "them, less the embedding table of an untied model, of which one row is read) plus the KV cache\n"
        "at the mean context length of the decode. roofline_fraction = decode tok/s / roofline tok/s.\n"
        "Also shown: the matmul FLOPs of a decoded token (2 per weight) and the rate the prefill reached,\n"
        "i.e. how fast decode could be if compute were its only limit, and that rate as a fraction of the\n"
        "compute peak probed in the same run with the arithmetic the weights' dtype runs on (f32 FMA,\n"
        "AVX512-BF16 or AVX512-VNNI int8 dot products; prefill_peak_fraction in --json).\n");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- read bandwidth ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t *p;
    size_t n; /* words */
    int init;
    uint64_t sum;
} probe_arg;

static void *probe_thread(void *a_) {
    probe_arg *a = a_;
    if (a->init) { /* first touch from the thread that reads it (NUMA placement) */
        for (size_t i = 0; i < a->n; i++) a->p[i] = i * 0x9e3779b97f4a7c15ull;
        return NULL;
    }
    /* integer adds: one-cycle latency, so the loads, not the arithmetic, set the pace */
    uint64_t acc[8] = {0};
    for (size_t i = 0; i + 8 <= a->n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a->p[i + l];
    for (int l = 0; l < 8; l++) a->sum += acc[l];
    return NULL;
}

static int probe_pass(uint64_t *buf, size_t n, int nt, int init, uint64_t *sum) {
    pthread_t th[256];
    probe_arg args[256];
    int started = 0;
    for (int i = 0; i < nt; i++) {
        size_t b = n / (size_t)nt * (size_t)i, e = i == nt - 1 ? n : n / (size_t)nt * (size_t)(i + 1);
        args[i] = (probe_arg){buf + b, e - b, init, 0};
        if (i > 0 && pthread_create(&th[i], NULL, probe_thread, &args[i]) != 0) break;
        started = i + 1;
    }
    if (started == nt) probe_thread(&args[0]);
    for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < started; i++) *sum += args[i].sum;
    return started == nt ? 0 : -1;
}

/* A buffer of 1 GiB (far beyond any cache), first touched by the threads that will read it. */
typedef struct probe_buf {
    uint64_t *p;
    size_t n; /* words */
    int nt;   /* threads */
} probe_buf;

static int probe_init(probe_buf *b, int n_threads) {
    b->n = ((size_t)1 << 30) / sizeof(uint64_t);
    b->nt = n_threads < 1 ? 1 : n_threads > 256 ? 256 : n_threads;
    b->p = malloc(b->n * sizeof(uint64_t));
    uint64_t sum = 0;
    if (b->p && probe_pass(b->p, b->n, b->nt, 1, &sum) == 0) return 0;
    free(b->p);
    b->p = NULL;
    return -1;
}

/* Read bandwidth in bytes/s: the best of 5 passes over the buffer. 0 if it cannot be measured. */
static double probe_bandwidth(const probe_buf *b) {
    if (!b->p) return 0;
    uint64_t sum = 0;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        const double t0 = now();
        if (probe_pass(b->p, b->n, b->nt, 0, &sum) != 0) break;
        const double bw = (double)(b->n * sizeof(uint64_t)) / (now() - t0);
        if (bw > best) best = bw;
    }
    return sum == 42 ? best * (1 + 1e-12) : best; /* uses the sum so the reads cannot be optimised away */
}

/* ---- helpers -------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
    double s[256];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int32_t argmax(const float *row, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (row[i] > row[b]) b = i;
    return b;
}

static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_array(const char *key, const double *v, int n) {
    printf(",\"%s\":[", key);
    for (int i = 0; i < n; i++) printf("%s%.3f", i ? "," : "", v[i]);
    putchar(']');
}

static llm_dtype main_dtype(const llm_model_info *mi) {
    int best = 0;
    for (int d = 1; d < LLM_DTYPE_COUNT; d++)
        if (mi->bytes_by_dtype[d] > mi->bytes_by_dtype[best]) best = d;
    return (llm_dtype)best;
}

/* The arithmetic the prefill's matmuls run on, from the dtype holding most weight bytes. */
static cli_peak_kind peak_kind(const llm_model_info *mi) {
    const llm_dtype d = main_dtype(mi);
    if (d == LLM_DTYPE_Q8_0 || d == LLM_DTYPE_Q4_K) return CLI_PEAK_INT8_DOT;
    return d == LLM_DTYPE_BF16 ? CLI_PEAK_BF16_DOT : CLI_PEAK_F32_FMA;
}

/* ---- the command ---------------------------------------------------------------------------------- */

typedef struct bench_opts {
    cli_model_opts m;
    const char *preset;
    llm_dtype dtype;
    uint64_t seed;
    int prompt, gen, repeat, json;
    int levels[16], n_levels; /* --concurrency */
} bench_opts;

/* -1 after printing an error, 1 for --help, 0 to run. */
static int parse(int argc, char **argv, bench_opts *o) {
    int dtype_given = 0;
    for (int i = 1; i < argc; i++) {
        const int r = cli_parse_model_flag(argc, argv, &i, &o->m);
        if (r < 0) return -1;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--concurrency") == 0) {
            if (!v || (o->n_levels = cli_parse_levels(v, o->levels, 16)) < 1)
                return cli_error(
                           "--concurrency needs up to 16 comma-separated levels from 1 to 1024, not '%s'",
                           v ? v : ""),
                       -1;
            i++;
        } else if (strcmp(a, "--random-weights") == 0) {
            if (!v || !*v) return cli_error("--random-weights needs a preset name (see --help)"), -1;
            o->preset = argv[++i];
        } else if (strcmp(a, "--dtype") == 0) {
            if (v && strcmp(v, "bf16") == 0)
                o->dtype = LLM_DTYPE_BF16;
            else if (v && strcmp(v, "f16") == 0)
                o->dtype = LLM_DTYPE_F16;
            else if (v && strcmp(v, "f32") == 0)
                o->dtype = LLM_DTYPE_F32;
            else if (v && strcmp(v, "q8_0") == 0)
                o->dtype = LLM_DTYPE_Q8_0;
            else if (v && strcmp(v, "q4_k") == 0)
                o->dtype = LLM_DTYPE_Q4_K;
            else
                return cli_error("--dtype must be bf16, f16, f32, q8_0 or q4_k, not '%s'", v ? v : ""), -1;
            dtype_given = 1;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_parse_int(v, 0, INT64_MAX, &n) != 0)
                return cli_error("--seed needs a non-negative integer, not '%s'", v ? v : ""), -1;
            o->seed = (uint64_t)n;
            i++;
        } else if (strcmp(a, "--prompt") == 0 || strcmp(a, "--gen") == 0) {
            if (cli_parse_int(v, 1, 1 << 20, &n) != 0)
                return cli_error("%s needs a token count from 1 to %d, not '%s'", a, 1 << 20, v ? v : ""), -1;
            if (strcmp(a, "--prompt") == 0)
                o->prompt = (int)n;
            else
                o->gen = (int)n;
            i++;
        } else if (strcmp(a, "--repeat") == 0) {
            if (cli_parse_int(v, 1, 100, &n) != 0)
                return cli_error("--repeat needs a count from 1 to 100, not '%s'", v ? v : ""), -1;
            o->repeat = (int)n;
            i++;
        } else {
            return cli_error("bench: unknown option or missing value: '%s' (try --help)", a), -1;
        }
    }
    if (o->preset && o->m.model_dir)
        return cli_error("bench: give --model or --random-weights, not both"), -1;
    if (!o->preset && !o->m.model_dir) o->m.model_dir = cli_default_model_dir(); /* the bundled demo model */
    if (dtype_given && !o->preset) return cli_error("bench: --dtype applies to --random-weights only"), -1;
    return 0;
}

typedef struct bench_result {
    double load_s, bandwidth;
    double peak_flops;     /* f32 FMA peak probed in this run (cli_peak.c) */
    const char *peak_what; /* its instruction mix */
    double prefill[100], decode[100];
} bench_result;

/* Warm-up, then o->repeat timed runs. 0, or 1 after printing an error. */
static int run(llm_model *model, const llm_model_info *mi, const bench_opts *o, bench_result *r) {
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = o->prompt + o->gen;
    ep.n_seq_max = 1;
    /* the GPU takes a whole prompt in one pass; the CPU gains nothing past 256 rows */
    const int max_batch = mi->backend == LLM_BACKEND_CUDA ? 4096 : 256;
    ep.max_batch_tokens = o->prompt < max_batch ? o->prompt : max_batch;
    llm_engine *e = NULL;
    if (llm_engine_create(model, &ep, &e) != LLM_OK) return cli_error("%s", llm_model_last_error(model));
    int32_t *toks = malloc((size_t)o->prompt * sizeof *toks);
    float *row = malloc((size_t)mi->n_vocab * sizeof *row);
    int rc = 1;
    if (!toks || !row) {
        cli_error("out of memory");
        goto done;
    }
    probe_buf pb;
    if (probe_init(&pb, mi->n_threads) != 0) {
        cli_error("cannot allocate 1 GiB for the bandwidth probe");
        goto done;
    }
    cli_progress bar;
    cli_progress_begin(&bar, "measuring");
    cli_progress_set(&bar, 0);
    const int gpu = mi->backend == LLM_BACKEND_CUDA; /* the roofline of the memory the weights are in */
    r->bandwidth = gpu ? llm_cuda_copy_bandwidth() : probe_bandwidth(&pb);
    r->peak_what = "not probed (GPU)";
    if (!gpu) r->peak_flops = cli_probe_peak_flops(mi->n_threads, peak_kind(mi), &r->peak_what);
    const double steps = (double)o->repeat * (1 + o->gen); /* a prefill or a decode step each */
    llm_status st = LLM_OK;
    for (int k = -1; k < o->repeat && st == LLM_OK; k++) { /* k = -1: the warm-up, untimed */
        llm_seq_id seq;
        if ((st = llm_seq_create(e, &seq)) != LLM_OK) break;
        /* a prompt of its own for every run (the same ones every time): the engine's prefix cache
         * would otherwise hand a repeated prompt back without computing it */
        uint64_t s = 0x853c49e6748fea9bull + 0x9e3779b97f4a7c15ull * (uint64_t)(k + 2);
        for (int i = 0; i < o->prompt; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((s >> 33) % (uint64_t)mi->n_vocab);
        }
        /* the warm-up: one token touches every weight on the CPU; on the GPU the whole prompt also
         * lets cuBLAS pick and load its kernels before anything is timed */
        const size_t n_prompt = k >= 0 || gpu ? (size_t)o->prompt : 1;
        double t0 = now();
        st = llm_prefill(e, seq, toks, n_prompt, LLM_LOGITS_LAST, row, (size_t)mi->n_vocab, NULL);
        const double t_prefill = now() - t0;
        int32_t tok = argmax(row, mi->n_vocab);
        t0 = now();
        for (int i = 0; k >= 0 && i < o->gen && st == LLM_OK; i++) {
            cli_progress_set(&bar, (float)((k * (1 + o->gen) + 1 + i) / steps));
            st = llm_decode(e, &seq, &tok, 1, row, (size_t)mi->n_vocab, NULL);
            tok = argmax(row, mi->n_vocab);
        }
        const double t_decode = now() - t0;
        llm_seq_free(e, seq);
        if (k >= 0 && st == LLM_OK) {
            r->prefill[k] = o->prompt / t_prefill;
            r->decode[k] = o->gen / t_decode;
        }
    }
    if (st == LLM_OK) { /* a figure from reused blocks would be meaningless: make sure there were none */
        llm_engine_info ei;
        llm_engine_get_info(e, &ei);
        if (ei.prefix_hit_tokens != 0) {
            cli_error("bench: %llu prompt tokens came from the prefix cache",
                      (unsigned long long)ei.prefix_hit_tokens);
            goto done;
        }
    }
    /* probed again after the runs: the roofline is the better of the two (the machine may be shared) */
    if (st == LLM_OK) {
        const double again = gpu ? llm_cuda_copy_bandwidth() : probe_bandwidth(&pb);
        if (again > r->bandwidth) r->bandwidth = again;
    }
    free(pb.p);
    cli_progress_end(&bar);
    if (st != LLM_OK) {
        cli_error("%s (%s)", llm_engine_last_error(e), llm_status_name(st));
        goto done;
    }
    rc = 0;
done:
    free(row);
    free(toks);
    llm_engine_free(e);
    return rc;
}

int cli_bench(int argc, char **argv) {
    bench_opts o = {.dtype = LLM_DTYPE_BF16, .seed = 1, .prompt = 128, .gen = 64, .repeat = 3};
    const int pr = parse(argc, argv, &o);
    if (pr != 0) return pr > 0 ? 0 : 1;

    bench_result r = {0};
    llm_model *model = NULL;
    char name[600];
    double t0 = now();
    if (o.preset) {
        llm_model_params mp = cli_model_params(&o.m);
        cli_progress bar;
        cli_progress_attach(&bar, "building random weights", &mp);
        char err[1024];
        llm_status st = llm_model_create_random(o.preset, o.dtype, o.seed, &mp, &model, err, sizeof err);
        cli_progress_end(&bar);
        if (st != LLM_OK) return cli_error("%s (%s)", err, llm_status_name(st));
        snprintf(name, sizeof name, "random:%s", o.preset);
    } else {
        if (!(model = cli_load_model(&o.m))) return 1;
        snprintf(name, sizeof name, "%s", o.m.model_dir);
    }
    r.load_s = now() - t0;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    if ((int64_t)o.prompt + o.gen > mi.n_ctx_train) {
        llm_model_free(model);
        return cli_error("bench: --prompt %d + --gen %d exceed the model's context of %d tokens", o.prompt,
                         o.gen, mi.n_ctx_train);
    }
    if (o.n_levels) {
        const int crc =
            cli_bench_concurrency(model, &mi, name, o.levels, o.n_levels, o.prompt, o.gen, o.seed, o.json);
        llm_model_free(model);
        return crc;
    }
    const int rc = run(model, &mi, &o, &r);
    llm_model_free(model);
    if (rc != 0) return rc;

    /* bytes one decoded token reads; bytes per parameter averaged over the model's tensors */
    const double per_param = mi.n_params ? (double)mi.weight_bytes / (double)mi.n_params : 0;
    const double embd_unread = mi.tied_embeddings ? 0 : ((double)mi.n_vocab - 1) * mi.n_embd * per_param;
    const double weights_read = (double)mi.weight_bytes - embd_unread;
    const double mean_ctx = o.prompt + (o.gen + 1) / 2.0; /* step i attends over prompt + i + 1 positions */
    const double kv_read = (double)mi.kv_bytes_per_token * mean_ctx;
    const double bytes_per_token = weights_read + kv_read;
    const double prefill = median(r.prefill, o.repeat), decode = median(r.decode, o.repeat);
    const double roofline = r.bandwidth > 0 ? r.bandwidth / bytes_per_token : 0;
    const double fraction = roofline > 0 ? decode / roofline : 0;
    /* Matmul FLOPs: 2 per weight multiplied. Every token goes through the layers; the output projection
     * (lm_head, V x D) runs for each decoded token but only for the last token of a prefill; an untied
     * embedding table is only read. */
    const double table = (double)mi.n_vocab * mi.n_embd;
    const double body = (double)mi.n_params - (mi.tied_embeddings ? 1 : 2) * table;
    const double flops = 2.0 * (body + table);                              /* per decoded token */
    const double prefill_flops = 2.0 * body * o.prompt + 2.0 * table;       /* per prefill */
    const double prefill_gflops = prefill / o.prompt * prefill_flops / 1e9; /* at the median rate */
    const double peak_fraction = r.peak_flops > 0 ? prefill_gflops * 1e9 / r.peak_flops : 0;
    const char *dtype = llm_dtype_name(main_dtype(&mi));

    if (o.json) {
        printf("{\"model\":");
        json_string(name);
        printf(",\"architecture\":\"%s\",\"dtype\":\"%s\"", mi.architecture, dtype);
        if (o.preset) printf(",\"seed\":%llu", (unsigned long long)o.seed);
        printf(",\"params\":%llu,\"weight_bytes\":%llu,\"threads\":%d,\"backend\":\"%s\",\"backend_reason\":"
               "\"%s\","
               "\"prompt_tokens\":%d,"
               "\"gen_tokens\":%d,\"repeat\":%d,\"load_s\":%.3f,\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f",
               (unsigned long long)mi.n_params, (unsigned long long)mi.weight_bytes, mi.n_threads,
               llm_backend_name(mi.backend), mi.backend_reason, o.prompt, o.gen, o.repeat, r.load_s, prefill,
               decode);
        if (mi.backend == LLM_BACKEND_CPU)
            printf(",\"cpu_kernels\":\"%s\"",
                   llm_cpu_kernels_name(llm_cpu_kernels_resolve(o.m.cpu_kernels, NULL, 0)));
        json_array("prefill_tok_s_runs", r.prefill, o.repeat);
        json_array("decode_tok_s_runs", r.decode, o.repeat);
        printf(",\"bandwidth_gb_s\":%.3f,\"bytes_per_token\":%.0f,\"kv_bytes_per_token\":%.0f,\"roofline_tok_"
               "s\":%.3f,"
               "\"roofline_fraction\":%.4f,\"flops_per_token\":%.0f,\"prefill_gflop_s\":%.3f,"
               "\"peak_gflop_s\":%.3f,\"prefill_peak_fraction\":%.4f}\n",
               r.bandwidth / 1e9, bytes_per_token, kv_read, roofline, fraction, flops, prefill_gflops,
               r.peak_flops / 1e9, peak_fraction);
        return 0;
    }
    printf("model      %s (%s, %.3f B params, %.2f GB %s weights%s)\n", name, mi.architecture,
           mi.n_params / 1e9, mi.weight_bytes / 1e9, dtype, o.preset ? ", random" : "");
    printf("backend    %s, %d threads; %s in %.2f s (%s)\n", llm_backend_name(mi.backend), mi.n_threads,
           o.preset ? "built" : "loaded", r.load_s, mi.backend_reason);
    if (mi.backend == LLM_BACKEND_CPU)
        printf("kernels    cpu %s (asked: %s)\n", llm_cpu_kernels_name(llm_cpu_kernels_resolve(o.m.cpu_kernels, NULL, 0)),
               llm_cpu_kernels_name(o.m.cpu_kernels));
    if (mi.backend == LLM_BACKEND_CUDA)
        printf("bandwidth  %.1f GB/s device memory (a 1 GiB device copy in this run: read + write, best of "
               "5)\n\n",
               r.bandwidth / 1e9);
    else
        printf("bandwidth  %.1f GB/s read (measured in this run: the better of before and after; %d "
               "threads)\n\n",
               r.bandwidth / 1e9, mi.n_threads);
    printf("%-8s %7s %12s   %-24s %s\n", "phase", "tokens", "tok/s", "runs", "roofline");
    char runs[2][256] = {"", ""};
    for (int k = 0; k < 2; k++) {
        size_t pos = 0;
        for (int i = 0; i < o.repeat && pos < sizeof runs[k] - 16; i++)
            pos += (size_t)snprintf(runs[k] + pos, sizeof runs[k] - pos, "%s%.2f", i ? " " : "",
                                    k ? r.decode[i] : r.prefill[i]);
    }
    char peak[96] = "-";
    if (r.peak_flops > 0)
        snprintf(peak, sizeof peak, "%.1f%% of %.1f GFLOP/s peak", 100.0 * peak_fraction, r.peak_flops / 1e9);
    printf("%-8s %7d %12.2f   %-24s %s\n", "prefill", o.prompt, prefill, runs[0], peak);
    printf("%-8s %7d %12.2f   %-24s %.1f%% of %.2f tok/s\n\n", "decode", o.gen, decode, runs[1],
           100.0 * fraction, roofline);
    printf(
        "tok/s: median of %d runs. decode roofline = %.1f GB/s / %.1f MB read per token (weights %.1f MB +\n"
        "KV cache %.2f MB at mean context %.1f)\n",
        o.repeat, r.bandwidth / 1e9, bytes_per_token / 1e6, weights_read / 1e6, kv_read / 1e6, mean_ctx);
    printf(
        "compute: %.2f GFLOP per decoded token (2 x matmul weights); the prefill ran at %.1f GFLOP/s, where\n"
        "decode would take %.1f ms per token if compute were its only limit\n",
        flops / 1e9, prefill_gflops, prefill_gflops > 0 ? 1e3 * flops / (prefill_gflops * 1e9) : 0.0);
    if (r.peak_flops > 0)
        printf("prefill peak = %.1f GFLOP/s, measured in this run on %d threads with the arithmetic this\n"
               "dtype's kernels use: %s. prefill FLOPs = 2 x matmul weights x prompt tokens\n"
               "(+ one lm_head row), attention not counted\n",
               r.peak_flops / 1e9, mi.n_threads, r.peak_what);
    return 0;
}
