/* llama-cli serve: the OpenAI-compatible HTTP server over one model.
 *
 * Binds first (so /health answers 503 "loading" while the model loads), then serves until SIGINT or
 * SIGTERM: new connections are refused, requests in flight get --shutdown-timeout seconds to finish,
 * the rest are cancelled, everything is freed, exit 0. */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "server/server.h"

static void help(void) {
    printf(
        "usage: llama-cli serve [--model DIR] [--host 127.0.0.1] [--port 8080] [--api-key K]... "
        "[--api-key-file F]\n"
        "                       [--max-concurrency N] [--ctx N] [--kv-budget SIZE] [--model-id NAME]\n"
        "                       [--open-health-metrics] [--max-body SIZE] [--request-timeout S] [--max-queue "
        "N]\n"
        "                       [--shutdown-timeout S] [--threads N] [--backend auto|cpu|cuda]\n"
        "                       [--cpu-kernels auto|ref|portable|avx2|avx512] [--quantize q8_0|q4_k]\n"
        "OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,\n"
        "/tokenize, /detokenize, /apply-template, /health, /metrics. Binds 127.0.0.1 unless --host is "
        "given;\n"
        "--port 0 picks a free port. API keys (Bearer) are compared in constant time; /health and /metrics\n"
        "need one too unless --open-health-metrics. SIZE: bytes with an optional k/M/G suffix (powers of "
        "1024),\n"
        "or a token count with a 't' suffix for --kv-budget. Prints 'listening on http://HOST:PORT' on "
        "stdout.\n");
}

/* "512M", "2G", "1048576", "8192t" (tokens). Returns 0 on success. */
static int parse_size(const char *s, uint64_t *bytes, int64_t *tokens) {
    char *end = NULL;
    const double v = strtod(s, &end);
    if (end == s || !(v > 0)) return -1;
    double mult = 1;
    const char c = (char)tolower((unsigned char)*end);
    if (c == 't' && tokens) {
        if (end[1]) return -1;
        *tokens = (int64_t)v;
        return 0;
    }
    if (c == 'k') mult = 1024.0;
    if (c == 'm') mult = 1024.0 * 1024;
    if (c == 'g') mult = 1024.0 * 1024 * 1024;
    if (mult > 1) end++;
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end) return -1;
    *bytes = (uint64_t)(v * mult);
    return 0;
}

static void log_stderr(llm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= LLM_LOG_WARN) fprintf(stderr, "llama-cli: %s\n", msg);
}

static int read_key_file(const char *path, char ***keys, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) return cli_error("cannot read --api-key-file %s", path);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (!len || line[0] == '#') continue;
        char **p = realloc(*keys, (*n + 1) * sizeof *p);
        if (!p) break;
        *keys = p;
        (*keys)[(*n)++] = strdup(line);
    }
    fclose(f);
    return 0;
}

int cli_serve(int argc, char **argv) {
    cli_model_opts mo = {0};
    mo.model_dir = cli_default_model_dir();
    llm_server_params sp = llm_server_default_params();
    char **keys = NULL;
    size_t n_keys = 0;
    long long shutdown_s = 10;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        int r = cli_parse_model_flag(argc, argv, &i, &mo);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            rc = 0;
            goto out;
        } else if (strcmp(a, "--host") == 0 && v) {
            sp.host = v, i++;
        } else if (strcmp(a, "--port") == 0 && v && cli_parse_int(v, 0, 65535, &x) == 0) {
            sp.port = (int)x, i++;
        } else if (strcmp(a, "--api-key") == 0 && v && *v) {
            char **p = realloc(keys, (n_keys + 1) * sizeof *p);
            if (!p) goto out;
            keys = p;
            keys[n_keys++] = strdup(v);
            i++;
        } else if (strcmp(a, "--api-key-file") == 0 && v) {
            if (read_key_file(v, &keys, &n_keys)) goto out;
            i++;
        } else if (strcmp(a, "--max-concurrency") == 0 && v && cli_parse_int(v, 1, 4096, &x) == 0) {
            sp.max_concurrency = (int32_t)x, i++;
        } else if (strcmp(a, "--max-queue") == 0 && v && cli_parse_int(v, 1, 1 << 20, &x) == 0) {
            sp.max_queue = (int32_t)x, i++;
        } else if (strcmp(a, "--ctx") == 0 && v && cli_parse_int(v, 1, 1 << 24, &x) == 0) {
            sp.n_ctx = (int32_t)x, i++;
        } else if (strcmp(a, "--kv-budget") == 0 && v &&
                   parse_size(v, &sp.kv_budget_bytes, &sp.kv_budget_tokens) == 0) {
            i++;
        } else if (strcmp(a, "--max-body") == 0 && v && parse_size(v, &(uint64_t){0}, NULL) == 0) {
            uint64_t b = 0;
            parse_size(v, &b, NULL);
            sp.max_body_bytes = (size_t)b, i++;
        } else if (strcmp(a, "--request-timeout") == 0 && v && cli_parse_int(v, 1, 3600, &x) == 0) {
            sp.request_timeout_s = (int32_t)x, i++;
        } else if (strcmp(a, "--shutdown-timeout") == 0 && v && cli_parse_int(v, 0, 3600, &x) == 0) {
            shutdown_s = x, i++;
        } else if (strcmp(a, "--model-id") == 0 && v && *v) {
            sp.model_id = v, i++;
        } else if (strcmp(a, "--open-health-metrics") == 0) {
            sp.open_health_metrics = 1;
        } else {
            cli_error("unknown or incomplete option '%s' (see llama-cli serve --help)", a);
            goto out;
        }
    }
    sp.api_keys = (const char *const *)keys;
    sp.n_api_keys = n_keys;
    sp.log_fn = log_stderr;
    /* every thread (the server's included) inherits this mask: the signals are taken by sigwait below */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that disconnects must not kill the server */

    llm_server *srv = NULL;
    char err[1024];
    if (llm_server_create(&sp, &srv, err, sizeof err) != LLM_OK) {
        cli_error("%s", err);
        goto out;
    }
    printf("listening on http://%s:%d\n", sp.host, llm_server_port(srv));
    fflush(stdout);
    llm_model *model = cli_load_model(&mo);
    if (!model) {
        llm_server_free(srv);
        goto out;
    }
    llm_status st = llm_server_attach(srv, model, mo.model_dir, err, sizeof err);
    if (st != LLM_OK) {
        cli_error("%s (%s)", err, llm_status_name(st));
        llm_server_free(srv);
        llm_model_free(model);
        goto out;
    }
    fprintf(stderr, "llama-cli: serving %s as '%s'\n", mo.model_dir, sp.model_id);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "llama-cli: %s: shutting down (in-flight requests get %lld s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", shutdown_s);
    llm_server_shutdown(srv, (int)(shutdown_s * 1000));
    llm_server_free(srv);
    llm_model_free(model);
    rc = 0;
out:
    for (size_t k = 0; k < n_keys; k++) free(keys[k]);
    free(keys);
    return rc;
}
