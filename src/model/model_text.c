/* The text side of a model directory: its tokenizer (tokenizer.json) and chat template, and rendering
 * conversations through that template the way transformers' apply_chat_template does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileutil.h"
#include "core/json.h"
#include "core/strbuf.h"
#include "model/model_internal.h"

llm_status llm_model_load_text(llm_model *m, const char *dir, llm_error *err) {
    char path[4096];
    if (llm_path_join(path, sizeof path, dir, "tokenizer.json") != 0 || !llm_file_exists(path)) return LLM_OK;
    llm_tokenizer_params tp = llm_tokenizer_default_params();
    tp.log_fn = m->log.fn;
    tp.log_user_data = m->log.user_data;
    tp.log_level = m->log.level;
    char msg[LLM_ERROR_CAP];
    llm_status st = llm_tokenizer_load(dir, &tp, &m->tokenizer, msg, sizeof msg);
    if (st != LLM_OK) return llm_fail(err, st, "%s", msg);
    return llm_model_parse_chat_template(m, dir);
}

llm_status llm_model_parse_chat_template(llm_model *m, const char *where) {
    const char *src = m->tokenizer ? llm_tokenizer_chat_template(m->tokenizer) : NULL;
    if (!src) return LLM_OK;
    /* A template we cannot parse does not stop the model from loading: raw prompts still work, and the
     * reason is kept for whoever asks for a chat render. */
    char msg[LLM_ERROR_CAP];
    llm_status st = llm_chat_template_parse(src, strlen(src), &m->chat_template, msg, sizeof msg);
    if (st != LLM_OK) {
        snprintf(m->chat_template_error, sizeof m->chat_template_error, "chat template of %s: %s", where,
                 msg);
        llm_log(&m->log, LLM_LOG_WARN, "%s", m->chat_template_error);
    }
    return LLM_OK;
}

void llm_model_free_text(llm_model *m) {
    llm_chat_template_free(m->chat_template);
    llm_tokenizer_free(m->tokenizer);
    m->chat_template = NULL;
    m->tokenizer = NULL;
}

llm_tokenizer *llm_model_tokenizer(llm_model *model) {
    return model ? model->tokenizer : NULL;
}

/* The content of a special token as a JSON string value, or "" when the tokenizer names none. */
static void append_special(llm_strbuf *sb, const char *key, llm_tokenizer *tok, llm_special_token which) {
    char piece[512];
    size_t len = 0;
    int32_t id = tok ? llm_tokenizer_special_id(tok, which) : -1;
    llm_strbuf_appendf(sb, ",\"%s\":", key);
    if (id >= 0 && llm_token_to_piece(tok, id, piece, sizeof piece, &len) == LLM_OK)
        llm_json_escape(sb, piece, len);
    else
        llm_strbuf_append_str(sb, "\"\"");
}

/* Checks that text is one JSON value of the given type; fills err with where it is not. */
static llm_status check_json(llm_model *m, const char *what, const char *text, size_t len,
                             llm_json_type want) {
    llm_json_doc *doc = NULL;
    char jerr[300];
    if (llm_json_parse(text, len, &doc, jerr, sizeof jerr) != 0) {
        snprintf(m->last_error, sizeof m->last_error, "%s: %s", what, jerr);
        return LLM_ERR_BAD_JSON;
    }
    llm_json_type got = llm_json_type_of(llm_json_root(doc));
    llm_json_doc_free(doc);
    if (got != want) {
        snprintf(m->last_error, sizeof m->last_error, "%s must be a JSON %s, not %s", what,
                 llm_json_type_name(want), llm_json_type_name(got));
        return LLM_ERR_BAD_JSON;
    }
    return LLM_OK;
}

llm_status llm_model_apply_chat_template(llm_model *m, const char *messages_json, size_t messages_len,
                                         const char *tools_json, size_t tools_len, int add_generation_prompt,
                                         const char *extra_vars_json, size_t extra_len, char *out, size_t cap,
                                         size_t *out_len) {
    if (out_len) *out_len = 0;
    if (!m || !messages_json) return LLM_ERR_INVALID_ARGUMENT;
    if (!m->chat_template) {
        snprintf(m->last_error, sizeof m->last_error, "%s",
                 m->chat_template_error[0] ? m->chat_template_error : "the model has no chat template");
        return LLM_ERR_UNSUPPORTED;
    }
    llm_status st = check_json(m, "messages", messages_json, messages_len, LLM_JSON_ARRAY);
    if (st == LLM_OK && tools_json) st = check_json(m, "tools", tools_json, tools_len, LLM_JSON_ARRAY);
    if (st == LLM_OK && extra_vars_json)
        st = check_json(m, "extra variables", extra_vars_json, extra_len, LLM_JSON_OBJECT);
    if (st != LLM_OK) return st;

    /* {"messages": ..., "tools": ..., "add_generation_prompt": ..., "bos_token": ..., "eos_token": ...,
     * extra} */
    llm_strbuf vars = {0};
    llm_strbuf_append_str(&vars, "{\"messages\":");
    llm_strbuf_append(&vars, messages_json, messages_len);
    /* transformers always passes tools (None when there are none); templates tell the two apart */
    llm_strbuf_append_str(&vars, ",\"tools\":");
    if (tools_json)
        llm_strbuf_append(&vars, tools_json, tools_len);
    else
        llm_strbuf_append_str(&vars, "null");
    llm_strbuf_appendf(&vars, ",\"add_generation_prompt\":%s", add_generation_prompt ? "true" : "false");
    append_special(&vars, "bos_token", m->tokenizer, LLM_SPECIAL_BOS);
    append_special(&vars, "eos_token", m->tokenizer, LLM_SPECIAL_EOS);
    if (extra_vars_json) {
        /* splice the members of the extra object (validated above) after ours: later keys win */
        const char *open = memchr(extra_vars_json, '{', extra_len);
        const char *close = extra_vars_json + extra_len;
        while (close > open && close[-1] != '}') close--;
        size_t inner = (size_t)(close - 1 - (open + 1));
        const char *p = open + 1;
        while (inner && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, inner--;
        if (inner) {
            llm_strbuf_append_char(&vars, ',');
            llm_strbuf_append(&vars, p, inner);
        }
    }
    llm_strbuf_append_char(&vars, '}');
    if (vars.oom) {
        llm_strbuf_free(&vars);
        snprintf(m->last_error, sizeof m->last_error, "out of memory building the template variables");
        return LLM_ERR_OUT_OF_MEMORY;
    }
    char err[LLM_ERROR_CAP];
    st = llm_chat_template_render(m->chat_template, vars.data, vars.len, NULL, out, cap, out_len, err,
                                  sizeof err);
    llm_strbuf_free(&vars);
    if (st != LLM_OK && st != LLM_ERR_BUFFER_TOO_SMALL)
        snprintf(m->last_error, sizeof m->last_error, "chat template: %s", err);
    return st;
}
