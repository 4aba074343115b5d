/* tokenizer-bench: single-threaded encode throughput of a tokenizer.json on a corpus.
 *
 *   tokenizer-bench --tokenizer DIR --corpus FILE [--seconds S | --iters N] [--chunk BYTES]
 *                   [--no-parse-special] [--decode] [--json]
 *
 * FILE is either a JSON array of strings (tests/fixtures/tokenizer/corpus.json: each string is one
 * text) or plain text (one text, or chunks of about --chunk bytes cut at line ends). Every text is
 * encoded as HF's encode(text) does by default: post-processor on, special-token text parsed
 * (--no-parse-special turns the latter off). A first pass warms up and counts tokens; then whole
 * passes run until S seconds (default 3) or N passes are done, and the best and mean passes are
 * reported in MB/s and tokens/s. --json ends the output with one line of JSON:
 *   {"bytes": B, "tokens": T, "texts": K, "passes": P, "best_pass_s": x, "mean_pass_s": y}
 * (--model and --file are accepted as aliases of --tokenizer and --corpus.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llamac.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

typedef struct text {
    char *s;
    size_t len;
} text;

static size_t put_utf8(unsigned long cp, char *o) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON array of strings (the corpus format); returns the count, or -1 if p is not one. */
static long parse_string_array(const char *p, size_t n, text **out) {
    size_t i = 0, cap = 64;
    long count = 0;
    text *v = malloc(cap * sizeof *v);
#define WS()                                                                                                 \
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) i++
    WS();
    if (i >= n || p[i++] != '[') goto bad;
    WS();
    if (i < n && p[i] == ']') goto done;
    for (;;) {
        WS();
        if (i >= n || p[i++] != '"') goto bad;
        char *s = malloc(n - i + 1);
        size_t k = 0;
        while (i < n && p[i] != '"') {
            if (p[i] != '\\') {
                s[k++] = p[i++];
                continue;
            }
            if (++i >= n) goto bad;
            char e = p[i++];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (simple && e != 'u') {
                static const char map[] = "\"\\/\b\f\n\r\t";
                s[k++] = map[simple - "\"\\/bfnrt"];
                continue;
            }
            if (e != 'u' || i + 4 > n) goto bad;
            unsigned long cp = strtoul((char[5]){p[i], p[i + 1], p[i + 2], p[i + 3], 0}, NULL, 16);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && p[i] == '\\' && p[i + 1] == 'u') {
                unsigned long lo = strtoul((char[5]){p[i + 2], p[i + 3], p[i + 4], p[i + 5], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            k += put_utf8(cp, s + k);
        }
        if (i >= n) goto bad;
        i++;
        if ((size_t)count == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[count++] = (text){s, k};
        WS();
        if (i < n && p[i] == ',') {
            i++;
            continue;
        }
        if (i < n && p[i] == ']') break;
        goto bad;
    }
done:
    *out = v;
    return count;
bad:
    for (long c = 0; c < count; c++) free(v[c].s);
    free(v);
    return -1;
#undef WS
}

int main(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    long iters = 0, chunk = 0;
    double seconds = 3.0;
    int parse_special = 1, decode = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--tokenizer") == 0 || strcmp(argv[i], "--model") == 0) && i + 1 < argc)
            model = argv[++i];
        else if ((strcmp(argv[i], "--corpus") == 0 || strcmp(argv[i], "--file") == 0) && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atol(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
            chunk = atol(argv[++i]);
        else if (strcmp(argv[i], "--no-parse-special") == 0)
            parse_special = 0;
        else if (strcmp(argv[i], "--decode") == 0)
            decode = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: tokenizer-bench --tokenizer DIR --corpus FILE [--seconds S | --iters N] "
                            "[--chunk BYTES] [--no-parse-special] [--decode] [--json]\n");
            return 1;
        }
    }
    if (!model || !file) {
        fprintf(stderr, "tokenizer-bench: --tokenizer and --corpus are required\n");
        return 1;
    }
    size_t len = 0;
    char *raw = read_all(file, &len);
    if (!raw) {
        fprintf(stderr, "tokenizer-bench: cannot read %s\n", file);
        return 1;
    }
    text *texts = NULL;
    long n_texts = parse_string_array(raw, len, &texts);
    if (n_texts < 0) { /* plain text: chunks at line ends */
        size_t cap = 16;
        texts = malloc(cap * sizeof *texts);
        n_texts = 0;
        for (size_t pos = 0; pos < len;) {
            size_t end = chunk > 0 && pos + (size_t)chunk < len ? pos + (size_t)chunk : len;
            while (end < len && raw[end - 1] != '\n') end++;
            if ((size_t)n_texts == cap) texts = realloc(texts, (cap *= 2) * sizeof *texts);
            texts[n_texts].s = malloc(end - pos + 1);
            memcpy(texts[n_texts].s, raw + pos, end - pos);
            texts[n_texts++].len = end - pos;
            pos = end;
        }
    }
    free(raw);
    size_t total_bytes = 0, max_len = 0;
    for (long t = 0; t < n_texts; t++) {
        total_bytes += texts[t].len;
        if (texts[t].len > max_len) max_len = texts[t].len;
    }

    char err[1024];
    llm_tokenizer *tok = NULL;
    double t0 = now();
    llm_status st = llm_tokenizer_load(model, NULL, &tok, err, sizeof err);
    if (st != LLM_OK) {
        fprintf(stderr, "tokenizer-bench: %s (%s)\n", err, llm_status_name(st));
        return 1;
    }
    double load_ms = (now() - t0) * 1e3;

    size_t ids_cap = max_len + 1024;
    int32_t *ids = malloc(ids_cap * sizeof *ids);
    unsigned flags = LLM_TOKENIZE_ADD_SPECIAL | (parse_special ? LLM_TOKENIZE_PARSE_SPECIAL : 0);
    size_t total_ids = 0;
    for (long t = 0; t < n_texts; t++) { /* warm-up, and the token count */
        size_t n = 0;
        st = llm_tokenize(tok, texts[t].s, texts[t].len, flags, ids, ids_cap, &n);
        if (st != LLM_OK) {
            fprintf(stderr, "tokenizer-bench: text %ld: %s\n", t, llm_tokenizer_last_error(tok));
            return 1;
        }
        total_ids += n;
    }
    double best = 1e30, sum = 0;
    long passes = 0;
    double start = now();
    while (iters > 0 ? passes < iters : (passes == 0 || now() - start < seconds)) {
        double a = now();
        for (long t = 0; t < n_texts; t++) {
            size_t n = 0;
            llm_tokenize(tok, texts[t].s, texts[t].len, flags, ids, ids_cap, &n);
        }
        double dt = now() - a;
        sum += dt;
        if (dt < best) best = dt;
        passes++;
    }
    double mean = sum / (double)passes;
    printf("tokenizer: %s (loaded in %.1f ms)\n", model, load_ms);
    printf("corpus: %ld text(s), %zu bytes -> %zu tokens (%.2f bytes/token)\n", n_texts, total_bytes,
           total_ids, (double)total_bytes / (double)(total_ids ? total_ids : 1));
    printf("encode: best %.2f MB/s, %.0f tokens/s; mean %.2f MB/s (%ld passes, one thread)\n",
           (double)total_bytes / best / 1e6, (double)total_ids / best, (double)total_bytes / mean / 1e6,
           passes);
    if (decode) {
        size_t out_cap = 4 * max_len + 1024, out_len = 0, dec_bytes = 0, dec_ids = 0;
        char *out = malloc(out_cap);
        double dsum = 0;
        for (long t = 0; t < n_texts; t++) {
            size_t n = 0;
            llm_tokenize(tok, texts[t].s, texts[t].len, flags, ids, ids_cap, &n);
            double a = now();
            llm_detokenize(tok, ids, n, 0, out, out_cap, &out_len);
            dsum += now() - a;
            dec_bytes += out_len;
            dec_ids += n;
        }
        printf("decode: %zu tokens -> %zu bytes: %.2f MB/s, %.0f tokens/s\n", dec_ids, dec_bytes,
               (double)dec_bytes / dsum / 1e6, (double)dec_ids / dsum);
        free(out);
    }
    if (json)
        printf("{\"bytes\": %zu, \"tokens\": %zu, \"texts\": %ld, \"passes\": %ld, \"best_pass_s\": %.9f, "
               "\"mean_pass_s\": %.9f}\n",
               total_bytes, total_ids, n_texts, passes, best, mean);
    for (long t = 0; t < n_texts; t++) free(texts[t].s);
    free(texts);
    free(ids);
    llm_tokenizer_free(tok);
    return 0;
}
