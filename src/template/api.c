/* Public entry points of the chat-template engine (include/llamac.h, "Chat templates"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "template/tpl.h"

struct llm_chat_template {
    tpl_arena arena; /* the AST and its literals */
    tpl_node *root;
};

int tpl_error_vset(tpl_error *e, llm_status status, int line, int col, const char *fmt, va_list ap) {
    e->status = status;
    int k = 0;
    if (line > 0) k = snprintf(e->msg, sizeof e->msg, "line %d, column %d: ", line, col);
    if (k < 0 || (size_t)k >= sizeof e->msg) k = 0;
    vsnprintf(e->msg + k, sizeof e->msg - (size_t)k, fmt, ap);
    return -1;
}

int tpl_error_set(tpl_error *e, llm_status status, int line, int col, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tpl_error_vset(e, status, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

static void copy_err(char *err, size_t err_cap, const char *msg) {
    if (err && err_cap) snprintf(err, err_cap, "%s", msg);
}

llm_status llm_chat_template_parse(const char *source, size_t len, llm_chat_template **out, char *err,
                                   size_t err_cap) {
    if (err && err_cap) err[0] = 0;
    if (!out) {
        copy_err(err, err_cap, "llm_chat_template_parse: out is NULL");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!source && len) {
        copy_err(err, err_cap, "llm_chat_template_parse: source is NULL");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    llm_chat_template *t = calloc(1, sizeof *t);
    if (!t) {
        copy_err(err, err_cap, "out of memory");
        return LLM_ERR_OUT_OF_MEMORY;
    }
    tpl_error e = {LLM_OK, {0}};
    if (tpl_parse(&t->arena, source ? source : "", len, &t->root, &e)) {
        if (e.status == LLM_OK) tpl_error_set(&e, LLM_ERR_INTERNAL, 0, 0, "template parse failed");
        copy_err(err, err_cap, e.msg);
        tpl_arena_free(&t->arena);
        free(t);
        return e.status;
    }
    *out = t;
    return LLM_OK;
}

void llm_chat_template_free(llm_chat_template *tmpl) {
    if (!tmpl) return;
    tpl_arena_free(&tmpl->arena);
    free(tmpl);
}

llm_chat_template_render_params llm_chat_template_default_render_params(void) {
    llm_chat_template_render_params p;
    memset(&p, 0, sizeof p);
    p.now_unix = 0;
    p.max_steps = TPL_DEFAULT_MAX_STEPS;
    p.max_bytes = TPL_DEFAULT_MAX_BYTES;
    return p;
}

llm_status llm_chat_template_render(const llm_chat_template *tmpl, const char *vars_json, size_t vars_len,
                                    const llm_chat_template_render_params *params, char *out, size_t cap,
                                    size_t *out_len, char *err, size_t err_cap) {
    if (err && err_cap) err[0] = 0;
    if (out_len) *out_len = 0;
    if (!tmpl || (!out && cap) || (!vars_json && vars_len)) {
        copy_err(err, err_cap,
                 !tmpl                    ? "llm_chat_template_render: tmpl is NULL"
                 : !vars_json && vars_len ? "llm_chat_template_render: vars_json is NULL"
                                          : "llm_chat_template_render: out is NULL but cap is not 0");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    llm_chat_template_render_params p = params ? *params : llm_chat_template_default_render_params();
    if (p.max_steps < 0 || p.max_bytes < 0) {
        copy_err(err, err_cap, "llm_chat_template_render: negative max_steps or max_bytes");
        return LLM_ERR_INVALID_ARGUMENT;
    }
    tpl_ctx c;
    memset(&c, 0, sizeof c);
    c.max_steps = p.max_steps ? p.max_steps : TPL_DEFAULT_MAX_STEPS;
    c.max_bytes = (size_t)(p.max_bytes ? p.max_bytes : TPL_DEFAULT_MAX_BYTES);
    c.arena.limit = c.max_bytes;
    c.now_unix = p.now_unix;
    c.vars_src = vars_json;
    c.vars_len = vars_len;
    llm_json_doc *doc = NULL;
    tv vars = tv_none();
    if (vars_len) {
        char jerr[256];
        if (llm_json_parse(vars_json, vars_len, &doc, jerr, sizeof jerr) != 0) {
            if (err && err_cap) snprintf(err, err_cap, "vars: %s", jerr);
            return LLM_ERR_BAD_JSON;
        }
        const llm_json *root = llm_json_root(doc);
        if (!llm_json_is_object(root)) {
            if (err && err_cap)
                snprintf(err, err_cap, "vars: expected a JSON object, got %s",
                         llm_json_type_name(llm_json_type_of(root)));
            llm_json_doc_free(doc);
            return LLM_ERR_BAD_JSON;
        }
        if (tv_from_json(&c, root, &vars)) goto fail;
    }
    llm_strbuf sb = LLM_STRBUF_INIT;
    c.out = &sb;
    int rc = tpl_render_root(&c, tmpl->root, vars.kind == TV_DICT ? &vars : NULL);
    if (rc == 0 && sb.oom)
        rc = tpl_fail(&c, NULL, LLM_ERR_OUT_OF_MEMORY, "out of memory while rendering the template");
    if (rc != 0) {
        llm_strbuf_free(&sb);
        goto fail;
    }
    size_t len = sb.len;
    if (out_len) *out_len = len;
    llm_status st = LLM_OK;
    if (len + 1 > cap) {
        st = LLM_ERR_BUFFER_TOO_SMALL;
        if (err && err_cap)
            snprintf(err, err_cap, "the render is %zu bytes; the buffer holds %zu (need %zu with the NUL)",
                     len, cap, len + 1);
    } else {
        if (len) memcpy(out, sb.data, len);
        out[len] = 0;
    }
    llm_strbuf_free(&sb);
    tpl_arena_free(&c.arena);
    llm_json_doc_free(doc);
    return st;
fail:
    if (!c.failed) tpl_fail(&c, NULL, LLM_ERR_INTERNAL, "render failed");
    copy_err(err, err_cap, c.err.msg);
    tpl_arena_free(&c.arena);
    llm_json_doc_free(doc);
    return c.err.status;
}
