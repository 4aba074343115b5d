/* llama-cli generate [--model DIR|FILE.gguf] --prompt T [--chat] [sampling flags]: streams text to stdout and
 * a timing summary to stderr. The one request runs on the continuous-batching runner, the code path the
 * server uses, so the CLI shows what a served request would give. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"

static volatile int g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void help(void) {
    printf("usage: llama-cli generate [--model DIR] --prompt TEXT [--chat] [--system TEXT] [--ctx N]\n"
           "           [--threads N] [--backend auto|cpu|cuda] [sampling flags]\n"
           "           [--cpu-kernels auto|ref|portable|avx2|avx512] [--quantize q8_0|q4_k]\n"
           "Prints TEXT and streams its continuation to stdout; a timing summary goes to stderr. Without "
           "--model the\n"
           "bundled demo model is used. --chat wraps TEXT as a user message through the model's chat\n"
           "template (with --system as the system message). Ctrl-C stops the generation.\n\n%s",
           cli_generate_flags_help);
}

static int print_event(const llm_generate_event *ev, void *user) {
    (void)user; /* called on the runner thread; the main thread only waits meanwhile */
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* How the request ended, as on_done reported it (read after llm_runner_wait_idle, which orders it). */
typedef struct outcome {
    llm_status status;
    llm_generate_result result;
    char error[512];
} outcome;

static void record_done(llm_request_id id, llm_status status, const llm_generate_result *result,
                        const char *error, void *user) {
    (void)id;
    outcome *o = user;
    o->status = status;
    o->result = *result;
    snprintf(o->error, sizeof o->error, "%s", error ? error : "");
}

/* The context for n_ids prompt tokens: the caller's (--ctx, else prompt + max_tokens) clipped to the
 * model's. When the context fills, one last token is still sampled (it is never stored), so at most
 * n_ctx - n_ids + 1 tokens can come: max_tokens is clipped to that. */
static void plan_context(size_t n_ids, int32_t *max_tokens, long long ctx, int32_t n_ctx_train,
                         int32_t *n_ctx) {
    long long want = ctx ? ctx : (long long)n_ids + *max_tokens;
    *n_ctx = (int32_t)(want < n_ctx_train ? want : n_ctx_train);
    if ((size_t)*n_ctx <= n_ids) return; /* the caller reports it */
    long long fit = (long long)*n_ctx - (long long)n_ids + 1;
    if (*max_tokens > fit) *max_tokens = (int32_t)fit;
}

/* Runs the prompt as the runner's only request, streaming to stdout; *out tells how it ended.
 * Returns the submit status (a refused request has no outcome). */
static llm_status run_request(llm_runner *runner, const int32_t *ids, size_t n_ids,
                              const llm_generate_params *gp, outcome *out, char *err, size_t err_cap) {
    llm_request rq = {0};
    rq.prompt = ids;
    rq.n_prompt = n_ids;
    rq.gen = *gp;
    rq.gen.on_event = print_event;
    rq.gen.user_data = out;
    rq.gen.cancel = &g_interrupted; /* checked by the runner thread before every sample */
    rq.on_done = record_done;
    signal(SIGINT, on_sigint);
    llm_status st = llm_runner_submit(runner, &rq, NULL, err, err_cap);
    if (st == LLM_OK) llm_runner_wait_idle(runner);
    signal(SIGINT, SIG_DFL);
    return st;
}

/* The prompt as tokens: plain text through the tokenizer (BOS/EOS as its post-processor adds them),
 * or a one-turn conversation through the chat template. */
static int prompt_tokens(llm_model *model, const char *prompt, const char *system, int chat, int32_t **out,
                         size_t *n) {
    if (!chat)
        return cli_tokenize_text(model, "the prompt", prompt, strlen(prompt),
                                 LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL, out, n);
    char *msgs = cli_messages_json(system, prompt);
    if (!msgs) return cli_error("out of memory");
    char *text = NULL;
    size_t len = 0;
    int rc = cli_render_chat(model, msgs, strlen(msgs), &text, &len);
    free(msgs);
    /* the template writes BOS itself: no post-processor */
    if (rc == 0) rc = cli_tokenize_text(model, "the prompt", text, len, LLM_TOKENIZE_PARSE_SPECIAL, out, n);
    free(text);
    return rc ? 1 : 0;
}

int cli_generate(int argc, char **argv) {
    cli_model_opts o = {0};
    const char *prompt = NULL, *system = NULL;
    int chat = 0, seed_given = 0;
    long long ctx = 0;
    llm_generate_params gp = llm_generate_default_params();
    cli_default_sampling(&gp.sampling);
    const char *stops[16];
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_model_flag(argc, argv, &i, &o);
        if (r == 0) r = cli_parse_generate_flag(argc, argv, &i, &gp, stops, &seed_given);
        if (r < 0) return 1;
        if (r > 0) continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return 0;
        }
        if ((strcmp(argv[i], "--prompt") == 0 || strcmp(argv[i], "-p") == 0) && i + 1 < argc) {
            prompt = argv[++i];
        } else if (strcmp(argv[i], "--system") == 0 && i + 1 < argc) {
            system = argv[++i];
        } else if (strcmp(argv[i], "--chat") == 0) {
            chat = 1;
        } else if (strcmp(argv[i], "--ctx") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 1 << 30, &ctx) != 0)
                return cli_error("--ctx needs a token count");
            i++;
        } else {
            return cli_error("generate: unknown option or missing value: '%s' (try --help)", argv[i]);
        }
    }
    if (!prompt) return cli_error("generate: --prompt TEXT is required");
    if (!o.model_dir) o.model_dir = cli_default_model_dir();
    if (!seed_given) gp.sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);

    const double t0 = cli_now_ms();
    llm_model *model = cli_load_model(&o);
    if (!model) return 1;
    const double t_load = cli_now_ms() - t0;
    int rc = 1;
    llm_engine *engine = NULL;
    llm_runner *runner = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (prompt_tokens(model, prompt, system, chat, &ids, &n_ids) != 0) goto done;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    llm_engine_params ep = llm_engine_default_params();
    plan_context(n_ids, &gp.max_tokens, ctx, mi.n_ctx_train, &ep.n_ctx);
    ep.n_seq_max = 1;
    if ((size_t)ep.n_ctx <= n_ids) {
        cli_error("the prompt has %zu tokens; the context holds %d", n_ids, ep.n_ctx);
        goto done;
    }
    if (llm_engine_create(model, &ep, &engine) != LLM_OK) {
        cli_error("%s", llm_model_last_error(model));
        goto done;
    }
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = 1;
    if (cli_start_runner(engine, &rp, &runner) != 0) goto done;
    if (!chat) { /* the continuation reads on from the prompt, as the model sees it */
        fputs(prompt, stdout);
        fflush(stdout);
    }
    outcome out = {LLM_OK, {0}, ""};
    char err[512];
    llm_status st = run_request(runner, ids, n_ids, &gp, &out, err, sizeof err);
    if (st == LLM_OK) st = out.status;
    fputc('\n', stdout);
    fflush(stdout);
    if (st != LLM_OK) {
        cli_error("%s (%s)", out.status != LLM_OK ? out.error : err, llm_status_name(st));
        goto done;
    }
    const llm_generate_result *res = &out.result;
    fprintf(stderr,
            "llama-cli: load %.0f ms | prompt %d tokens, %.1f tok/s | generated %d tokens, %.2f tok/s | "
            "first token %.0f ms | finish %s | seed %llu\n",
            t_load, res->n_prompt_tokens, res->prefill_tok_s, res->n_generated, res->decode_tok_s,
            res->ttft_ms, llm_finish_reason_name(res->finish), (unsigned long long)gp.sampling.seed);
    rc = 0;
done:
    free(ids);
    llm_runner_free(runner); /* before the engine it runs on */
    llm_engine_free(engine);
    llm_model_free(model);
    return rc;
}
