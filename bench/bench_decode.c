/* llamac-bench: prefill and decode speed of one model on this machine, with the fraction of the
 * memory-bandwidth roofline measured in the same run (a first number; the full `llama-cli bench`
 * comes with the generation issue).
 *
 *   llamac-bench --model DIR [--prompt N] [--gen N] [--threads N] [--json]
 *
 * Decode reads every weight once per token, so its roofline is bandwidth / weight bytes. The
 * bandwidth is probed here, right before the model runs, with the same number of threads. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llamac.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const float *p;
    size_t n;
    float sum;
} probe_arg;

static void *probe_thread(void *a_) {
    probe_arg *a = a_;
    float acc[16] = {0};
    for (size_t i = 0; i + 16 <= a->n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += a->p[i + l];
    for (int l = 0; l < 16; l++) a->sum += acc[l];
    return NULL;
}

/* Read bandwidth in bytes/s: the best of several passes over a buffer far larger than the caches. */
static double probe_bandwidth(int n_threads) {
    const size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    float *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        probe_arg args[64];
        int nt = n_threads > 64 ? 64 : n_threads;
        double t0 = now();
        for (int i = 0; i < nt; i++) {
            args[i] = (probe_arg){buf + n / nt * i, n / nt, 0};
            pthread_create(&th[i], NULL, probe_thread, &args[i]);
        }
        float total = 0;
        for (int i = 0; i < nt; i++) {
            pthread_join(th[i], NULL);
            total += args[i].sum;
        }
        double bw = bytes / (now() - t0);
        if (bw > best && total != -1.0f) best = bw;
    }
    free(buf);
    return best;
}

static int argmax(const float *row, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int prompt = 128, gen = 64, threads = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc) gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: llamac-bench --model DIR [--prompt N] [--gen N] [--threads N] [--json]\n");
            return 1;
        }
    }
    if (!dir || prompt < 1 || gen < 1) {
        fprintf(stderr, "llamac-bench: error: --model DIR is required; --prompt and --gen must be >= 1\n");
        return 1;
    }
    llm_model_params mp = llm_model_default_params();
    mp.n_threads = threads;
    llm_model *model = NULL;
    char err[1024];
    double t0 = now();
    llm_status st = llm_model_load(dir, &mp, &model, err, sizeof err);
    if (st) return fprintf(stderr, "llamac-bench: error: %s\n", err), 1;
    const double t_load = now() - t0;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = prompt + gen;
    ep.n_seq_max = 1;
    ep.max_batch_tokens = prompt < 256 ? prompt : 256;
    llm_engine *e = NULL;
    if (llm_engine_create(model, &ep, &e)) return fprintf(stderr, "llamac-bench: error: %s\n", llm_model_last_error(model)), 1;

    const double bw = probe_bandwidth(mi.n_threads);

    int32_t *toks = malloc((size_t)(prompt + gen) * sizeof *toks);
    uint64_t s = 12345;
    for (int i = 0; i < prompt; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % (uint64_t)mi.n_vocab);
    }
    float *row = malloc((size_t)mi.n_vocab * sizeof *row);
    llm_seq_id seq;
    llm_seq_create(e, &seq);
    t0 = now();
    st = llm_prefill(e, seq, toks, (size_t)prompt, LLM_LOGITS_LAST, row, (size_t)mi.n_vocab, NULL);
    const double t_prefill = now() - t0;
    if (st) return fprintf(stderr, "llamac-bench: error: %s\n", llm_engine_last_error(e)), 1;
    int32_t tok = argmax(row, mi.n_vocab);
    t0 = now();
    for (int i = 0; i < gen && st == LLM_OK; i++) {
        st = llm_decode(e, &seq, &tok, 1, row, (size_t)mi.n_vocab, NULL);
        tok = argmax(row, mi.n_vocab);
    }
    const double t_decode = now() - t0;
    if (st) return fprintf(stderr, "llamac-bench: error: %s\n", llm_engine_last_error(e)), 1;

    const double prefill_tps = prompt / t_prefill, decode_tps = gen / t_decode;
    const double roofline_tps = bw / (double)mi.weight_bytes; /* every weight byte read once per token */
    if (json) {
        printf("{\"model\":\"%s\",\"architecture\":\"%s\",\"n_params\":%llu,\"weight_bytes\":%llu,\"threads\":%d,"
               "\"prompt_tokens\":%d,\"gen_tokens\":%d,\"load_s\":%.3f,\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f,"
               "\"bandwidth_gb_s\":%.2f,\"roofline_tok_s\":%.3f,\"roofline_fraction\":%.4f}\n",
               dir, mi.architecture, (unsigned long long)mi.n_params, (unsigned long long)mi.weight_bytes, mi.n_threads,
               prompt, gen, t_load, prefill_tps, decode_tps, bw / 1e9, roofline_tps, decode_tps / roofline_tps);
    } else {
        printf("model       %s (%s, %.3f B params, %.2f GB weights)\n", dir, mi.architecture, mi.n_params / 1e9,
               mi.weight_bytes / 1e9);
        printf("threads     %d\n", mi.n_threads);
        printf("bandwidth   %.1f GB/s (read, measured in this run)\n", bw / 1e9);
        printf("%-10s %10s %12s %12s\n", "phase", "tokens", "tok/s", "roofline");
        printf("%-10s %10d %12.2f %12s\n", "prefill", prompt, prefill_tps, "-");
        printf("%-10s %10d %12.2f %11.1f%%\n", "decode", gen, decode_tps, 100.0 * decode_tps / roofline_tps);
        printf("decode roofline: %.2f tok/s (bandwidth / weight bytes)\n", roofline_tps);
    }
    free(row);
    free(toks);
    llm_engine_free(e);
    llm_model_free(model);
    return 0;
}
