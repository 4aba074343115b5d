/* llama-cli chat [--model DIR]: an interactive conversation through the model's chat template.
 *
 * Each turn re-renders the whole conversation, keeps the longest prefix of tokens the sequence already
 * holds (so earlier turns' KV is reused and only the new turn is prefilled), and streams the reply.
 * Ctrl-C stops the reply in progress, not the program. /reset starts over, /exit (or end of input)
 * quits. */
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
    printf("usage: llama-cli chat [--model DIR] [--system TEXT] [--ctx N] [--threads N] [sampling flags]\n"
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

typedef struct reply {
    llm_strbuf text;
} reply;

static int on_event(const llm_generate_event *ev, void *user) {
    reply *r = user;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
        llm_strbuf_append(&r->text, ev->text, ev->text_len);
    }
    return 0;
}

/* Renders the conversation (+ generation prompt) and tokenizes it. */
static llm_status render_tokens(llm_model *model, conversation *c, int32_t **ids, size_t *n) {
    llm_strbuf msgs = {0};
    llm_strbuf_append(&msgs, c->json.data, c->json.len);
    llm_strbuf_append_char(&msgs, ']');
    char *text = NULL;
    size_t len = 0;
    int rc = cli_render_chat(model, msgs.data, msgs.len, &text, &len);
    llm_strbuf_free(&msgs);
    if (rc == 0)
        rc = cli_tokenize_text(model, "the conversation", text, len, LLM_TOKENIZE_PARSE_SPECIAL, ids, n);
    free(text);
    return rc ? LLM_ERR_INVALID_ARGUMENT : LLM_OK;
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
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = (int32_t)(ctx && ctx < mi.n_ctx_train ? ctx : mi.n_ctx_train < 4096 ? mi.n_ctx_train : 4096);
    ep.n_seq_max = 1;
    llm_engine *engine = NULL;
    if (!llm_model_tokenizer(model) || llm_engine_create(model, &ep, &engine) != LLM_OK) {
        cli_error("%s", llm_model_tokenizer(model) ? llm_model_last_error(model)
                                                   : "the model directory has no tokenizer.json");
        llm_model_free(model);
        return 1;
    }
    llm_seq_id seq;
    llm_seq_create(engine, &seq);
    conversation conv = {{0}, 0};
    conv_reset(&conv, system);
    /* no SA_RESTART: Ctrl-C at the prompt interrupts the read and shows a fresh prompt */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    gp.cancel = &g_interrupted;
    gp.on_event = on_event;
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
            conv_reset(&conv, system);
            llm_seq_truncate(engine, seq, 0);
            fprintf(stderr, "llama-cli: conversation reset\n");
            continue;
        }
        conv_add(&conv, "user", line, (size_t)got);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (render_tokens(model, &conv, &ids, &n_ids) != LLM_OK) {
            rc = 1;
            break;
        }
        /* reuse the KV of the longest common prefix; at least one token must be prefilled */
        const int32_t have = llm_seq_length(engine, seq);
        const int32_t *held = llm_seq_tokens(engine, seq);
        size_t common = 0;
        while (common < n_ids && (int32_t)common < have && held[common] == ids[common]) common++;
        if (common == n_ids) common--;
        llm_seq_truncate(engine, seq, (int32_t)common);
        reply r = {{0}};
        gp.user_data = &r;
        llm_generate_result res;
        llm_status st = llm_generate(engine, seq, ids + common, n_ids - common, &gp, &res);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (st != LLM_OK) {
            cli_error("%s%s", llm_engine_last_error(engine),
                      st == LLM_ERR_CONTEXT_FULL || st == LLM_ERR_KV_FULL ? " (type /reset to start over)"
                                                                          : "");
            llm_strbuf_free(&r.text);
            /* forget the unanswered user message */
            conv_reset(&conv, system);
            llm_seq_truncate(engine, seq, 0);
            continue;
        }
        conv_add(&conv, "assistant", r.text.data ? r.text.data : "", r.text.len);
        llm_strbuf_free(&r.text);
        fprintf(
            stderr,
            "llama-cli: reused %zu tokens, prefilled %d (%.1f tok/s), generated %d (%.2f tok/s), finish %s\n",
            common, res.n_prompt_tokens, res.prefill_tok_s, res.n_generated, res.decode_tok_s,
            llm_finish_reason_name(res.finish));
    }
    signal(SIGINT, SIG_DFL);
    free(line);
    llm_strbuf_free(&conv.json);
    llm_engine_free(engine);
    llm_model_free(model);
    return rc;
}
