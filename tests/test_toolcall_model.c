/* The deterministic tool-calling model (tests/fixtures/toolcall, made by scripts/make_toolcall_model.py)
 * really produces its fixed generations through our pipeline: for every conversation of its
 * toolcall_cases.json the chat template (with tools) is rendered by llm_model_apply_chat_template,
 * tokenized, and generated with llm_generate, greedily and at temperature 1 with several seeds; the
 * text must be exactly the expected one and end with the EOS token <|im_end|>. The logits of every
 * position of prompt + generation have a top-1/top-2 gap above MIN_GAP (so no sampler setting can
 * leave the chain), and turn 1's prompt + generation + <|im_end|> is a token prefix of turn 2's prompt
 * (the round trip the server makes). scripts/check_toolcall_model_hf.py checks the same cases with
 * HF transformers. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/strbuf.h"
#include "test_util.h"

#define MIN_GAP    30.0f
#define MAX_PROMPT 4096

static const char *const TOOL_CALL =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
static const char *const ANSWER = "The weather in Paris is sunny.";

/* Writes v back as JSON text (keys in their order; numbers as %.17g). */
static void to_json(llm_strbuf *sb, const llm_json *v) {
    switch (llm_json_type_of(v)) {
    case LLM_JSON_NULL:
        llm_strbuf_append(sb, "null", 4);
        break;
    case LLM_JSON_FALSE:
        llm_strbuf_append(sb, "false", 5);
        break;
    case LLM_JSON_TRUE:
        llm_strbuf_append(sb, "true", 4);
        break;
    case LLM_JSON_NUMBER: {
        int64_t i;
        if (llm_json_int64(v, &i) == 0)
            llm_strbuf_appendf(sb, "%lld", (long long)i);
        else
            llm_strbuf_appendf(sb, "%.17g", llm_json_number(v));
        break;
    }
    case LLM_JSON_STRING: {
        size_t len;
        const char *s = llm_json_string(v, &len);
        llm_json_escape(sb, s, len);
        break;
    }
    case LLM_JSON_ARRAY:
        llm_strbuf_append(sb, "[", 1);
        for (size_t i = 0; i < llm_json_count(v); i++) {
            if (i) llm_strbuf_append(sb, ", ", 2);
            to_json(sb, llm_json_value_at(v, i));
        }
        llm_strbuf_append(sb, "]", 1);
        break;
    case LLM_JSON_OBJECT:
        llm_strbuf_append(sb, "{", 1);
        for (size_t i = 0; i < llm_json_count(v); i++) {
            size_t klen;
            const char *k = llm_json_key_at(v, i, &klen);
            if (i) llm_strbuf_append(sb, ", ", 2);
            llm_json_escape(sb, k, klen);
            llm_strbuf_append(sb, ": ", 2);
            to_json(sb, llm_json_value_at(v, i));
        }
        llm_strbuf_append(sb, "}", 1);
        break;
    default:
        break;
    }
}

typedef struct tc_case {
    const char *name;
    char *messages; /* JSON text */
    char *tools;    /* JSON text, NULL when the case has none */
    const char *expected;
    int32_t prompt[MAX_PROMPT];
    size_t n_prompt;
    char *render;
    size_t render_len;
} tc_case;

typedef struct collected {
    int32_t tokens[64];
    int n;
    llm_strbuf text;
    float min_gap; /* smallest top-1/top-2 log-probability gap over the streamed tokens */
} collected;

static int collect(const llm_generate_event *ev, void *user) {
    collected *c = user;
    if (ev->token >= 0 && c->n < 64) c->tokens[c->n++] = ev->token;
    llm_strbuf_append(&c->text, ev->text, ev->text_len);
    if (ev->sample && ev->sample->n_top >= 2) {
        float gap = ev->sample->top[0].logprob - ev->sample->top[1].logprob;
        if (gap < c->min_gap) c->min_gap = gap;
    }
    return 0;
}

static int render_and_tokenize(llm_model *m, tc_case *tc) {
    size_t need = 0;
    size_t mlen = strlen(tc->messages), tlen = tc->tools ? strlen(tc->tools) : 0;
    llm_status st =
        llm_model_apply_chat_template(m, tc->messages, mlen, tc->tools, tlen, 1, NULL, 0, NULL, 0, &need);
    if (st != LLM_OK && st != LLM_ERR_BUFFER_TOO_SMALL) {
        TU_CHECK(0, "%s: render: %s", tc->name, llm_model_last_error(m));
        return -1;
    }
    tc->render = malloc(need + 1);
    st = llm_model_apply_chat_template(m, tc->messages, mlen, tc->tools, tlen, 1, NULL, 0, tc->render,
                                       need + 1, &tc->render_len);
    TU_CHECK(st == LLM_OK, "%s: render: %s", tc->name, llm_model_last_error(m));
    if (st != LLM_OK) return -1;
    const char *gen_prompt = "<|im_start|>assistant\n";
    size_t gl = strlen(gen_prompt);
    TU_CHECK(tc->render_len >= gl && memcmp(tc->render + tc->render_len - gl, gen_prompt, gl) == 0,
             "%s: the render does not end with the generation prompt", tc->name);
    const char *tools_header = "# Tools\n\nYou may call one or more functions";
    TU_CHECK((strstr(tc->render, tools_header) != NULL) == (tc->tools != NULL),
             "%s: tools rendered into the system prompt: %d, tools given: %d", tc->name,
             strstr(tc->render, tools_header) != NULL, tc->tools != NULL);
    st = llm_tokenize(llm_model_tokenizer(m), tc->render, tc->render_len, LLM_TOKENIZE_PARSE_SPECIAL,
                      tc->prompt, MAX_PROMPT, &tc->n_prompt);
    TU_CHECK(st == LLM_OK, "%s: tokenize: %s", tc->name, llm_status_name(st));
    return st == LLM_OK ? 0 : -1;
}

static int32_t piece_id(llm_tokenizer *tok, const char *s) {
    return llm_tokenizer_token_id(tok, s, strlen(s));
}

/* Runs one generation on a fresh sequence of engine e. */
static llm_status run(llm_engine *e, const tc_case *tc, float temperature, uint64_t seed, collected *c,
                      llm_generate_result *res) {
    llm_seq_id s;
    if (llm_seq_create(e, &s) != LLM_OK) return LLM_ERR_INTERNAL;
    llm_generate_params gp = llm_generate_default_params();
    gp.sampling.temperature = temperature;
    gp.sampling.seed = seed;
    gp.sampling.top_logprobs = 2;
    gp.max_tokens = 16;
    gp.on_event = collect;
    gp.user_data = c;
    c->n = 0;
    c->min_gap = 1e30f;
    llm_strbuf_clear(&c->text);
    llm_status st = llm_generate(e, s, tc->prompt, tc->n_prompt, &gp, res);
    if (st != LLM_OK) fprintf(stderr, "  generate: %s\n", llm_engine_last_error(e));
    llm_seq_free(e, s);
    return st;
}

/* The expected generation as tokens (each piece is one added token), EOS appended. */
static int expected_tokens(llm_tokenizer *tok, const char *expected, int32_t *out) {
    int n = 0;
    if (strcmp(expected, ANSWER) == 0) {
        out[n++] = piece_id(tok, ANSWER);
    } else {
        out[n++] = piece_id(tok, "<tool_call>\n");
        out[n++] = piece_id(tok, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}");
        out[n++] = piece_id(tok, "\n</tool_call>");
    }
    out[n++] = llm_tokenizer_special_id(tok, LLM_SPECIAL_EOS);
    return n;
}

/* Logits of prompt + expected generation in one prefill: every row's argmax is the next token (from
 * the end of the prompt on) and every row's top-1/top-2 gap is above MIN_GAP. */
static void check_logits(llm_engine *e, llm_tokenizer *tok, const tc_case *tc, int32_t n_vocab) {
    int32_t gen[8];
    int n_gen = expected_tokens(tok, tc->expected, gen);
    size_t n = tc->n_prompt + (size_t)n_gen - 1; /* the EOS itself is never fed back */
    int32_t *seq_tokens = malloc(n * sizeof *seq_tokens);
    memcpy(seq_tokens, tc->prompt, tc->n_prompt * sizeof *seq_tokens);
    memcpy(seq_tokens + tc->n_prompt, gen, (size_t)(n_gen - 1) * sizeof *seq_tokens);
    float *logits = malloc(n * (size_t)n_vocab * sizeof *logits);
    llm_seq_id s;
    llm_seq_create(e, &s);
    llm_status st = llm_prefill(e, s, seq_tokens, n, LLM_LOGITS_ALL, logits, n * (size_t)n_vocab, NULL);
    TU_CHECK(st == LLM_OK, "%s: prefill: %s", tc->name, llm_engine_last_error(e));
    if (st == LLM_OK) {
        float min_gap = 1e30f;
        size_t at = 0;
        for (size_t p = 0; p < n; p++) {
            const float *row = logits + p * (size_t)n_vocab;
            int32_t best = 0;
            for (int32_t v = 1; v < n_vocab; v++)
                if (row[v] > row[best]) best = v;
            float second = -1e30f;
            for (int32_t v = 0; v < n_vocab; v++)
                if (v != best && row[v] > second) second = row[v];
            if (row[best] - second < min_gap) {
                min_gap = row[best] - second;
                at = p;
            }
            if (p + 1 >= tc->n_prompt) {
                int32_t want = gen[p + 1 - tc->n_prompt];
                TU_CHECK(best == want, "%s: position %zu: argmax %d, want %d", tc->name, p, best, want);
            }
        }
        printf("  %-20s %4zu prompt tokens; smallest top-2 logit gap over all %zu positions: %.1f (at %zu)\n",
               tc->name, tc->n_prompt, n, min_gap, at);
        TU_CHECK(min_gap > MIN_GAP, "%s: logit gap %.2f at position %zu", tc->name, min_gap, at);
    }
    llm_seq_free(e, s);
    free(logits);
    free(seq_tokens);
}

static void check_case(llm_engine *e, llm_tokenizer *tok, const tc_case *tc, uint64_t fresh_seed) {
    int32_t gen[8];
    int n_gen = expected_tokens(tok, tc->expected, gen);
    collected c = {{0}, 0, {0}, 0};
    llm_generate_result res;
    const float temps[] = {0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const uint64_t seeds[] = {0, 1, 42, 1234, 987654321, fresh_seed};
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
        llm_status st = run(e, tc, temps[i], seeds[i], &c, &res);
        TU_CHECK(st == LLM_OK, "%s: generate", tc->name);
        if (st != LLM_OK) continue;
        size_t el = strlen(tc->expected);
        TU_CHECK(c.text.len == el && memcmp(c.text.data, tc->expected, el) == 0,
                 "%s (temperature %.1f, seed %llu): generated \"%.*s\", want \"%s\"", tc->name, temps[i],
                 (unsigned long long)seeds[i], (int)c.text.len, c.text.data ? c.text.data : "", tc->expected);
        TU_CHECK(res.finish == LLM_FINISH_EOS, "%s (temperature %.1f, seed %llu): finish %s", tc->name,
                 temps[i], (unsigned long long)seeds[i], llm_finish_reason_name(res.finish));
        TU_CHECK(res.n_generated == n_gen - 1 && c.n == n_gen - 1 &&
                     memcmp(c.tokens, gen, (size_t)(n_gen - 1) * sizeof(int32_t)) == 0,
                 "%s (temperature %.1f, seed %llu): %d tokens, want %d", tc->name, temps[i],
                 (unsigned long long)seeds[i], c.n, n_gen - 1);
        TU_CHECK(c.min_gap > MIN_GAP, "%s: log-probability gap %.2f", tc->name, c.min_gap);
    }
    llm_strbuf_free(&c.text);
}

static tc_case *find(tc_case *cases, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(cases[i].name, name) == 0) return &cases[i];
    return NULL;
}

int main(void) {
    char dir[1024], path[1100];
    tu_fixture("toolcall", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/toolcall_cases.json", dir);
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    llm_json_doc *doc = NULL;
    char err[256];
    TU_CHECK(text && llm_json_parse(text, len, &doc, err, sizeof err) == 0, "%s: %s", path,
             text ? err : "unreadable");
    llm_model *m = doc ? tu_load_model(dir, 2) : NULL;
    TU_CHECK(m != NULL, "load %s", dir);
    if (!m) {
        llm_json_doc_free(doc);
        free(text);
        return tu_finish("test_toolcall_model");
    }
    llm_tokenizer *tok = llm_model_tokenizer(m);
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    const llm_json *root = llm_json_root(doc);

    /* The model's EOS is <|im_end|> in generation_config.json and the tokenizer config alike. */
    int64_t eos = -1;
    llm_json_int64(llm_json_get(root, "eos_token_id"), &eos);
    TU_CHECK(piece_id(tok, "<|im_end|>") == eos && llm_tokenizer_special_id(tok, LLM_SPECIAL_EOS) == eos,
             "tokenizer EOS %d, <|im_end|> %d, cases file %lld",
             llm_tokenizer_special_id(tok, LLM_SPECIAL_EOS), piece_id(tok, "<|im_end|>"), (long long)eos);
    TU_CHECK(mi.n_eos == 1 && mi.eos_token_ids[0] == eos, "generation_config EOS: %d ids, first %d", mi.n_eos,
             mi.eos_token_ids[0]);
    /* each piece of the outputs is one token, with the id the script gave it */
    const llm_json *ids = llm_json_get(root, "tokens");
    for (size_t i = 0; i < llm_json_count(ids); i++) {
        size_t kl;
        const char *k = llm_json_key_at(ids, i, &kl);
        int64_t want = -2;
        llm_json_int64(llm_json_value_at(ids, i), &want);
        TU_CHECK(llm_tokenizer_token_id(tok, k, kl) == want, "token id of \"%.*s\": %d, want %lld", (int)kl,
                 k, llm_tokenizer_token_id(tok, k, kl), (long long)want);
    }
    {
        int32_t one[8];
        size_t n_one = 0;
        llm_tokenize(tok, TOOL_CALL, strlen(TOOL_CALL), LLM_TOKENIZE_PARSE_SPECIAL, one, 8, &n_one);
        TU_CHECK(n_one == 3, "the tool call text is %zu tokens, want 3", n_one);
    }

    const llm_json *jc = llm_json_get(root, "cases");
    int n_cases = (int)llm_json_count(jc);
    TU_CHECK(n_cases >= 5, "%d cases", n_cases);
    tc_case *cases = calloc((size_t)n_cases, sizeof *cases);
    for (int i = 0; i < n_cases; i++) {
        const llm_json *c = llm_json_value_at(jc, (size_t)i);
        tc_case *tc = &cases[i];
        tc->name = llm_json_string(llm_json_get(c, "name"), NULL);
        tc->expected = llm_json_string(llm_json_get(c, "expected"), NULL);
        llm_strbuf sb = {0};
        to_json(&sb, llm_json_get(c, "messages"));
        tc->messages = llm_strbuf_detach(&sb, NULL);
        if (!llm_json_is_null(llm_json_get(c, "tools"))) {
            to_json(&sb, llm_json_get(c, "tools"));
            tc->tools = llm_strbuf_detach(&sb, NULL);
        }
        TU_CHECK(tc->name && tc->expected && tc->messages, "case %d malformed", i);
        TU_CHECK(strcmp(tc->expected, TOOL_CALL) == 0 || strcmp(tc->expected, ANSWER) == 0,
                 "case %s: unexpected expectation \"%s\"", tc->name, tc->expected);
    }

    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = MAX_PROMPT;
    ep.n_seq_max = 2;
    llm_engine *e = NULL;
    TU_CHECK(llm_engine_create(m, &ep, &e) == LLM_OK, "engine: %s", llm_model_last_error(m));
    uint64_t seed = tu_fresh_seed("test_toolcall_model");
    for (int i = 0; e && i < n_cases; i++) {
        tc_case *tc = &cases[i];
        if (!tc->name || !tc->expected || render_and_tokenize(m, tc) != 0) continue;
        TU_CHECK(tc->n_prompt > 0 && tc->prompt[tc->n_prompt - 1] == piece_id(tok, "assistant\n"),
                 "%s: the prompt does not end with the token assistant\\n", tc->name);
        check_logits(e, tok, tc, mi.n_vocab);
        check_case(e, tok, tc, seed);
    }

    /* The round trip: turn 1's prompt + its generation + <|im_end|> is a token prefix of the prompt
     * that renders the call and its result (so a server session reuses it), and that prompt holds the
     * call exactly as the model wrote it. */
    tc_case *call = find(cases, n_cases, "call"), *result = find(cases, n_cases, "result");
    TU_CHECK(call && result && call->n_prompt && result->n_prompt, "cases 'call' and 'result'");
    if (call && result && call->n_prompt && result->n_prompt) {
        int32_t gen[8];
        int n_gen = expected_tokens(tok, TOOL_CALL, gen);
        size_t n = call->n_prompt + (size_t)n_gen;
        int prefix = n <= result->n_prompt &&
                     memcmp(result->prompt, call->prompt, call->n_prompt * sizeof(int32_t)) == 0 &&
                     memcmp(result->prompt + call->n_prompt, gen, (size_t)n_gen * sizeof(int32_t)) == 0;
        TU_CHECK(prefix, "turn 1 + its generation is not a token prefix of turn 2");
        TU_CHECK(strstr(result->render, TOOL_CALL) != NULL &&
                     strstr(result->render, "</tool_response>") != NULL,
                 "turn 2's render lacks the call or the tool response");
    }

    for (int i = 0; i < n_cases; i++) {
        free(cases[i].messages);
        free(cases[i].tools);
        free(cases[i].render);
    }
    free(cases);
    llm_engine_free(e);
    llm_model_free(m);
    llm_json_doc_free(doc);
    free(text);
    return tu_finish("test_toolcall_model");
}
