/* llama-cli chat [--model DIR]: an interactive conversation through the model's chat template.
 *
 * The conversation runs on the continuous-batching runner, the code path the server uses, as one named
 * session. Each turn re-renders the whole conversation and submits it as the session's whole prompt:
 * the runner keeps the longest common prefix of the session's history (so earlier turns' KV is reused
 * and only the new turn is prefilled), and the reply is pulled and printed as it streams. Ctrl-C stops
 * the reply in progress, not the program. /reset starts over, /exit (or end of input) quits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "core/json.h"
#include "core/strbuf.h"

static volatile int g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void help(void) {
    printf("usage: llama-cli chat [--model DIR|FILE.gguf] [--system TEXT] [--ctx N] [--threads N] [sampling "
           "flags]\n"
           "           [--backend auto|cpu|cuda] [--cpu-kernels auto|ref|portable|avx2|avx512] [--quantize "
           "q8_0|q4_k]\n"
           "Reads one user message per line from stdin and streams the assistant's reply. Earlier turns'\n"
           "KV cache is reused: only the new turn is prefilled. Ctrl-C stops the current reply; /reset\n"
           "clears the conversation; /exit or end of input quits. Timing per turn goes to stderr.\n\n%s",
           cli_generate_flags_help);
}

typedef struct conversation {
    llm_strbuf json; /* the messages array without its closing bracket: "[{...},{...}" */
    int n;
} conversation;

static void conv_reset(conversation *c, const char *system) {
    llm_strbuf_clear(&c->json);
    llm_strbuf_append_char(&c->json, '[');
    c->n = 0;
    if (system) {
        llm_strbuf_append_str(&c->json, "{\"role\":\"system\",\"content\":");
        llm_json_escape(&c->json, system, strlen(system));
        llm_strbuf_append_char(&c->json, '}');
        c->n++;
    }
}

static void conv_add(conversation *c, const char *role, const char *content, size_t len) {
    if (c->n++) llm_strbuf_append_char(&c->json, ',');
    llm_strbuf_appendf(&c->json, "{\"role\":\"%s\",\"content\":", role);
    llm_json_escape(&c->json, content, len);
    llm_strbuf_append_char(&c->json, '}');
}

/* Renders the conversation (+ generation prompt) and tokenizes it with tok: the model's own tokenizer
 * belongs to the runner thread while the runner lives. The render only reads constant token pieces. */
static llm_status render_tokens(llm_model *model, llm_tokenizer *tok, conversation *c, int32_t **ids,
                                size_t *n) {
    llm_strbuf msgs = {0};
    llm_strbuf_append(&msgs, c->json.data, c->json.len);
    llm_strbuf_append_char(&msgs, ']');
    char *text = NULL;
    size_t len = 0;
    int rc = cli_render_chat(model, msgs.data, msgs.len, &text, &len);
    llm_strbuf_free(&msgs);
    if (rc == 0)
        rc = cli_tokenize_with(tok, "the conversation", text, len, LLM_TOKENIZE_PARSE_SPECIAL, ids, n);
    free(text);
    return rc ? LLM_ERR_INVALID_ARGUMENT : LLM_OK;
}

#define CHAT_SESSION "chat"

/* What one chat needs across turns. */
typedef struct chat {
    llm_model *model;
    llm_tokenizer *tok; /* the main thread's own */
    llm_runner *runner;
    int32_t ctx; /* tokens the conversation may fill (--ctx): the engine's n_ctx */
    const char *system;
    llm_generate_params gp;
    conversation conv;
} chat;

/* Forgets the conversation: the transcript and the session with its KV (the next submit recreates it). */
static void chat_reset(chat *c) {
    conv_reset(&c->conv, c->system);
    llm_runner_session_close(c->runner, CHAT_SESSION); /* LLM_ERR_NOT_FOUND when none yet: harmless */
}

/* Reports a failed turn; the conversation starts over, as the KV no longer matches it. */
static void turn_failed(chat *c, llm_status st, const char *msg) {
    fputc('\n', stdout);
    fflush(stdout);
    cli_error("%s%s", msg,
              st == LLM_ERR_CONTEXT_FULL || st == LLM_ERR_KV_FULL ? " (type /reset to start over)" : "");
    chat_reset(c);
}

/* Prints the request's output as it arrives (appending it to reply) until it ends. Ctrl-C is seen
 * here, between pulls, and cancels the request: runner functions are never called from the signal
 * handler. Returns the pull status; *end holds the request's end. */
static llm_status stream_reply(llm_runner *runner, llm_request_id id, llm_strbuf *reply, llm_pull *end) {
    char buf[4096];
    int cancelled = 0;
    for (;;) {
        memset(end, 0, sizeof *end);
        end->text = buf;
        end->text_cap = sizeof buf;
        llm_status st = llm_runner_pull(runner, id, 50, end);
        if (st != LLM_OK) return st;
        if (end->text_len) {
            fwrite(buf, 1, end->text_len, stdout);
            fflush(stdout);
            llm_strbuf_append(reply, buf, end->text_len);
        }
        if (end->done) return LLM_OK;
        if (g_interrupted && !cancelled) {
            llm_runner_cancel(runner, id); /* LLM_ERR_NOT_FOUND: it just ended, the next pull says so */
            cancelled = 1;
        }
    }
}

/* One turn: the user's line joins the conversation, the whole conversation is submitted to the session
 * and the reply streamed. Returns 0, or 1 when the conversation cannot be rendered (fatal). */
static int chat_turn(chat *c, const char *line, size_t len) {
    conv_add(&c->conv, "user", line, len);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (render_tokens(c->model, c->tok, &c->conv, &ids, &n_ids) != LLM_OK) return 1;
    /* when the context fills, one last token is still sampled (it is never stored) */
    const long long fit = (long long)c->ctx - (long long)n_ids + 1;
    if (fit < 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "the conversation has %zu tokens; the context holds %d", n_ids, c->ctx);
        free(ids);
        turn_failed(c, LLM_ERR_CONTEXT_FULL, msg);
        return 0;
    }
    llm_request rq = {0};
    rq.prompt = ids;
    rq.n_prompt = n_ids;
    rq.session = CHAT_SESSION;
    rq.session_prompt = LLM_SESSION_WHOLE;
    rq.pull = 1;
    rq.gen = c->gp;
    if (rq.gen.max_tokens > fit) rq.gen.max_tokens = (int32_t)fit;
    char err[512];
    llm_request_id id = 0;
    llm_status st = llm_runner_submit(c->runner, &rq, &id, err, sizeof err);
    free(ids);
    if (st != LLM_OK) {
        turn_failed(c, st, err);
        return 0;
    }
    llm_strbuf reply = {0};
    llm_pull end;
    st = stream_reply(c->runner, id, &reply, &end);
    if (st == LLM_OK) st = end.status;
    if (st != LLM_OK) {
        turn_failed(c, st, end.error[0] ? end.error : llm_status_name(st));
        llm_strbuf_free(&reply);
        return 0;
    }
    fputc('\n', stdout);
    fflush(stdout);
    conv_add(&c->conv, "assistant", reply.data ? reply.data : "", reply.len);
    llm_strbuf_free(&reply);
    const llm_generate_result *res = &end.result;
    fprintf(stderr,
            "llama-cli: reused %d tokens, prefilled %d (%.1f tok/s), generated %d (%.2f tok/s), finish %s\n",
            res->n_cached_tokens, res->n_prompt_tokens - res->n_cached_tokens, res->prefill_tok_s,
            res->n_generated, res->decode_tok_s, llm_finish_reason_name(res->finish));
    return 0;
}

/* Reads lines until /exit or end of input. Returns the exit status. */
static int chat_loop(chat *c) {
    const int interactive = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    for (;;) {
        if (interactive) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        g_interrupted = 0;
        errno = 0;
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) {
            if (errno == EINTR) {
                clearerr(stdin);
                fputc('\n', stdout);
                continue;
            }
            break; /* end of input */
        }
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            chat_reset(c);
            fprintf(stderr, "llama-cli: conversation reset\n");
            continue;
        }
        if ((rc = chat_turn(c, line, (size_t)got)) != 0) break;
    }
    free(line);
    return rc;
}

/* The main thread's tokenizer, loaded silently: the model's load already logged its warnings. */
static llm_tokenizer *load_tokenizer(const char *dir) {
    llm_tokenizer_params tp = llm_tokenizer_default_params();
    tp.log_fn = NULL;
    llm_tokenizer *tok = NULL;
    char err[512];
    if (llm_tokenizer_load(dir, &tp, &tok, err, sizeof err) != LLM_OK) cli_error("%s", err);
    return tok;
}

int cli_chat(int argc, char **argv) {
    cli_model_opts o = {0};
    const char *system = NULL;
    int seed_given = 0;
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
        if (strcmp(argv[i], "--system") == 0 && i + 1 < argc) {
            system = argv[++i];
        } else if (strcmp(argv[i], "--ctx") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 1 << 30, &ctx) != 0)
                return cli_error("--ctx needs a token count");
            i++;
        } else {
            return cli_error("chat: unknown option or missing value: '%s' (try --help)", argv[i]);
        }
    }
    if (!o.model_dir) o.model_dir = cli_default_model_dir();
    if (!seed_given) gp.sampling.seed = (uint64_t)time(NULL);
    llm_model *model = cli_load_model(&o);
    if (!model) return 1;
    llm_model_info mi;
    llm_model_get_info(model, &mi);
    chat c = {.model = model, .system = system, .gp = gp};
    c.ctx = (int32_t)(ctx && ctx < mi.n_ctx_train ? ctx : mi.n_ctx_train < 4096 ? mi.n_ctx_train : 4096);
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = c.ctx;
    ep.n_seq_max = 1;
    llm_engine *engine = NULL;
    if (!llm_model_tokenizer(model) || llm_engine_create(model, &ep, &engine) != LLM_OK) {
        cli_error("%s", llm_model_tokenizer(model) ? llm_model_last_error(model)
                                                   : "the model directory has no tokenizer.json");
        llm_model_free(model);
        return 1;
    }
    llm_runner_params rp = llm_runner_default_params();
    rp.max_running = 1;
    rp.session_ttl_ms = -1; /* a user may think for a long time: keep the conversation's KV */
    int rc = 1;
    if (!(c.tok = load_tokenizer(o.model_dir)) || cli_start_runner(engine, &rp, &c.runner) != 0) goto done;
    conv_reset(&c.conv, system);
    /* no SA_RESTART: Ctrl-C at the prompt interrupts the read and shows a fresh prompt */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    rc = chat_loop(&c);
    signal(SIGINT, SIG_DFL);
done:
    llm_runner_free(c.runner); /* before the engine it runs on */
    llm_strbuf_free(&c.conv.json);
    llm_tokenizer_free(c.tok);
    llm_engine_free(engine);
    llm_model_free(model);
    return rc;
}
