#include "cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

llm_model *cli_load_model(const cli_model_opts *o) {
    if (!o->model_dir) {
        cli_error("--model DIR is required");
        return NULL;
    }
    llm_model_params mp = llm_model_default_params();
    mp.backend = o->backend;
    mp.n_threads = o->n_threads;
    mp.log_fn = log_to_stderr;
    mp.log_level = o->verbose ? LLM_LOG_DEBUG : LLM_LOG_WARN;
    llm_model *model = NULL;
    char err[1024];
    llm_status st = llm_model_load(o->model_dir, &mp, &model, err, sizeof err);
    if (st != LLM_OK) {
        cli_error("%s (%s)", err, llm_status_name(st));
        return NULL;
    }
    return model;
}
