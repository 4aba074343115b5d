/* llama-cli generate [--model DIR] --prompt T [--chat] [sampling flags]: streams text to stdout and a
 * timing summary to stderr. */
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
           "Prints TEXT and streams its continuation to stdout; a timing summary goes to stderr. Without "
           "--model the\n"
           "bundled demo model is used. --chat wraps TEXT as a user message through the model's chat\n"
           "template (with --system as the system message). Ctrl-C stops the generation.\n\n%s",
           cli_generate_flags_help);
}

static int print_event(const llm_generate_event *ev, void *user) {
    (void)user;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    }
    return 0;
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
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (prompt_tokens(model, prompt, system, chat, &ids, &n_ids) != 0) goto done;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    llm_engine_params ep = llm_engine_default_params();
    long long want = ctx ? ctx : (long long)n_ids + gp.max_tokens;
    ep.n_ctx = (int32_t)(want < mi.n_ctx_train ? want : mi.n_ctx_train);
    ep.n_seq_max = 1;
    if ((size_t)ep.n_ctx <= n_ids) {
        cli_error("the prompt has %zu tokens; the context holds %d", n_ids, ep.n_ctx);
        goto done;
    }
    if (llm_engine_create(model, &ep, &engine) != LLM_OK) {
        cli_error("%s", llm_model_last_error(model));
        goto done;
    }
    llm_seq_id seq;
    llm_seq_create(engine, &seq);
    if (!chat) { /* the continuation reads on from the prompt, as the model sees it */
        fputs(prompt, stdout);
        fflush(stdout);
    }
    gp.on_event = print_event;
    gp.cancel = &g_interrupted;
    signal(SIGINT, on_sigint);
    llm_generate_result res;
    llm_status st = llm_generate(engine, seq, ids, n_ids, &gp, &res);
    signal(SIGINT, SIG_DFL);
    if (st != LLM_OK) {
        fputc('\n', stdout);
        cli_error("%s (%s)", llm_engine_last_error(engine), llm_status_name(st));
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr,
            "llama-cli: load %.0f ms | prompt %d tokens, %.1f tok/s | generated %d tokens, %.2f tok/s | "
            "first token %.0f ms | finish %s | seed %llu\n",
            t_load, res.n_prompt_tokens, res.prefill_tok_s, res.n_generated, res.decode_tok_s, res.ttft_ms,
            llm_finish_reason_name(res.finish), (unsigned long long)gp.sampling.seed);
    rc = 0;
done:
    free(ids);
    llm_engine_free(engine);
    llm_model_free(model);
    return rc;
}
