/* POST /v1/chat/completions and POST /v1/completions: validate, render, tokenize, submit the n
 * choices to the runner, answer with JSON or stream SSE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/gen.h"
#include "server/params.h"

static int role_ok(const char *r) {
    return strcmp(r, "system") == 0 || strcmp(r, "developer") == 0 || strcmp(r, "user") == 0 ||
           strcmp(r, "assistant") == 0 || strcmp(r, "tool") == 0;
}

/* Text of a content value: a string, or an array of {"type":"text","text":...} parts joined. -1 with
 * a 400 sent for anything else. null gives "" (assistant turns with tool calls). */
static int content_text(http_req *rq, const llm_json *v, size_t mi, llm_strbuf *out) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", mi);
    if (!v || llm_json_is_null(v)) return 0;
    if (llm_json_is_string(v)) {
        size_t n;
        const char *s = llm_json_string(v, &n);
        llm_strbuf_append(out, s, n);
        return 0;
    }
    if (!llm_json_is_array(v)) {
        http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                        "'%s' must be a string or an array of content parts, not %s", param,
                        llm_json_type_name(llm_json_type_of(v)));
        return -1;
    }
    for (size_t i = 0; i < llm_json_count(v); i++) {
        const llm_json *part = llm_json_value_at(v, i);
        const char *type = llm_json_string(llm_json_get(part, "type"), NULL);
        const char *text = llm_json_string(llm_json_get(part, "text"), NULL);
        if (!type || strcmp(type, "text") != 0 || !text) {
            http_send_error(rq, 400, "invalid_request_error", param, "unsupported_content", 0,
                            "'%s[%zu]': only {\"type\": \"text\", \"text\": ...} parts are supported", param,
                            i);
            return -1;
        }
        size_t n;
        text = llm_json_string(llm_json_get(part, "text"), &n);
        llm_strbuf_append(out, text, n);
    }
    return 0;
}

/* The messages as templates expect them: content as a string, tool-call arguments as objects (the
 * shape transformers passes; OpenAI clients send them as JSON text). */
static int convert_messages(http_req *rq, const llm_json *msgs, llm_strbuf *o) {
    const char *src = rq->body.data;
    const size_t src_len = rq->body.len;
    llm_strbuf text = LLM_STRBUF_INIT;
    llm_strbuf_append_char(o, '[');
    for (size_t i = 0; i < llm_json_count(msgs); i++) {
        const llm_json *m = llm_json_value_at(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!llm_json_is_object(m)) {
            http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                            "'%s' must be an object", param);
            goto fail;
        }
        const char *role = llm_json_string(llm_json_get(m, "role"), NULL);
        if (!role || !role_ok(role)) {
            snprintf(param, sizeof param, "messages[%zu].role", i);
            http_send_error(rq, 400, "invalid_request_error", param, "invalid_value", 0,
                            "'%s' must be one of system, developer, user, assistant, tool", param);
            goto fail;
        }
        const llm_json *content = llm_json_get(m, "content");
        const llm_json *calls = llm_json_get(m, "tool_calls");
        if (!content && !(strcmp(role, "assistant") == 0 && calls)) {
            snprintf(param, sizeof param, "messages[%zu].content", i);
            http_send_error(rq, 400, "invalid_request_error", param, "missing_field", 0, "'%s' is required",
                            param);
            goto fail;
        }
        llm_strbuf_clear(&text);
        if (content_text(rq, content, i, &text) != 0) goto fail;
        if (i) llm_strbuf_append_char(o, ',');
        llm_strbuf_append_str(o, "{\"role\":");
        llm_json_escape(o, strcmp(role, "developer") == 0 ? "system" : role,
                        strcmp(role, "developer") == 0 ? 6 : strlen(role));
        llm_strbuf_append_str(o, ",\"content\":");
        llm_json_escape(o, text.data ? text.data : "", text.len);
        for (size_t k = 0; k < llm_json_count(m);
             k++) { /* other fields (name, tool_call_id, ...) as they are */
            const char *key = llm_json_key_at(m, k, NULL);
            if (strcmp(key, "role") == 0 || strcmp(key, "content") == 0 || strcmp(key, "tool_calls") == 0)
                continue;
            llm_strbuf_append_char(o, ',');
            llm_json_escape(o, key, strlen(key));
            llm_strbuf_append_char(o, ':');
            srv_json_write(o, llm_json_value_at(m, k), src, src_len);
        }
        if (calls && !llm_json_is_null(calls)) {
            if (!llm_json_is_array(calls)) {
                snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
                http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                                "'%s' must be an array", param);
                goto fail;
            }
            llm_strbuf_append_str(o, ",\"tool_calls\":[");
            for (size_t c = 0; c < llm_json_count(calls); c++) {
                const llm_json *tc = llm_json_value_at(calls, c);
                const llm_json *fn = llm_json_get(tc, "function");
                const char *name = llm_json_string(llm_json_get(fn, "name"), NULL);
                if (!name) {
                    snprintf(param, sizeof param, "messages[%zu].tool_calls[%zu].function.name", i, c);
                    http_send_error(rq, 400, "invalid_request_error", param, "missing_field", 0,
                                    "'%s' is required", param);
                    goto fail;
                }
                if (c) llm_strbuf_append_char(o, ',');
                llm_strbuf_append_str(o, "{\"type\":\"function\"");
                const llm_json *id = llm_json_get(tc, "id");
                if (id) llm_strbuf_append_str(o, ",\"id\":"), srv_json_write(o, id, src, src_len);
                llm_strbuf_append_str(o, ",\"function\":{\"name\":");
                llm_json_escape(o, name, strlen(name));
                llm_strbuf_append_str(o, ",\"arguments\":");
                const llm_json *args = llm_json_get(fn, "arguments");
                size_t an = 0;
                const char *astr = llm_json_string(args, &an);
                llm_json_doc *parsed = NULL;
                if (astr && llm_json_parse(astr, an, &parsed, NULL, 0) == 0 &&
                    llm_json_is_object(llm_json_root(parsed)))
                    srv_json_write(o, llm_json_root(parsed), astr, an);
                else if (args && !astr)
                    srv_json_write(o, args, src, src_len);
                else
                    llm_json_escape(o, astr ? astr : "", an);
                llm_json_doc_free(parsed);
                llm_strbuf_append_str(o, "}}");
            }
            llm_strbuf_append_char(o, ']');
        }
        llm_strbuf_append_char(o, '}');
    }
    llm_strbuf_append_char(o, ']');
    llm_strbuf_free(&text);
    return 0;
fail:
    llm_strbuf_free(&text);
    return -1;
}

int srv_render_chat(http_req *rq, const llm_json *messages, const llm_json *tools, const char *only_tool,
                    const char *prefix, char **out, size_t *out_len) {
    llm_server *s = rq->srv;
    *out = NULL;
    if (!s->tmpl) {
        http_send_error(rq, 400, "invalid_request_error", "messages", "no_chat_template", 0,
                        "the model has no chat template; use /v1/completions");
        return -1;
    }
    llm_strbuf vars = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&vars, "{\"messages\":");
    if (convert_messages(rq, messages, &vars) != 0) {
        llm_strbuf_free(&vars);
        return -1;
    }
    llm_strbuf_append_str(&vars, ",\"tools\":");
    if (tools && only_tool) { /* just the named function */
        llm_strbuf_append_char(&vars, '[');
        for (size_t i = 0; i < llm_json_count(tools); i++) {
            const llm_json *t = llm_json_value_at(tools, i);
            const char *n = llm_json_string(llm_json_get(llm_json_get(t, "function"), "name"), NULL);
            if (n && strcmp(n, only_tool) == 0) {
                srv_json_write(&vars, t, rq->body.data, rq->body.len);
                break;
            }
        }
        llm_strbuf_append_char(&vars, ']');
    } else if (tools)
        srv_json_write(&vars, tools, rq->body.data, rq->body.len);
    else
        llm_strbuf_append_str(&vars, "null");
    llm_strbuf_append_str(&vars, ",\"add_generation_prompt\":true,\"bos_token\":");
    llm_json_escape(&vars, s->bos_text, strlen(s->bos_text));
    llm_strbuf_append_str(&vars, ",\"eos_token\":");
    llm_json_escape(&vars, s->eos_text, strlen(s->eos_text));
    llm_strbuf_append_char(&vars, '}');
    if (vars.oom) {
        llm_strbuf_free(&vars);
        http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
        return -1;
    }
    char err[512];
    size_t need = 0;
    llm_status st =
        llm_chat_template_render(s->tmpl, vars.data, vars.len, NULL, NULL, 0, &need, err, sizeof err);
    char *buf = NULL;
    const size_t plen = prefix ? strlen(prefix) : 0;
    if (st == LLM_ERR_BUFFER_TOO_SMALL) {
        buf = malloc(need + plen + 1);
        st = buf ? llm_chat_template_render(s->tmpl, vars.data, vars.len, NULL, buf, need + 1, &need, err,
                                            sizeof err)
                 : LLM_ERR_OUT_OF_MEMORY;
    }
    llm_strbuf_free(&vars);
    if (st != LLM_OK) {
        free(buf);
        /* a template that raises rejects the conversation (e.g. roles out of order): the client's fault */
        http_send_error(rq, st == LLM_ERR_OUT_OF_MEMORY ? 500 : 400,
                        st == LLM_ERR_OUT_OF_MEMORY ? "server_error" : "invalid_request_error", "messages",
                        "template_error", 0, "the chat template rejected the messages: %s",
                        st == LLM_ERR_OUT_OF_MEMORY ? "out of memory" : err);
        return -1;
    }
    if (plen) memcpy(buf + need, prefix, plen + 1);
    *out = buf;
    *out_len = need + plen;
    return 0;
}

int srv_tokenize_text(http_req *rq, const char *text, size_t len, unsigned flags, const char *param,
                      int32_t **ids, size_t *n_ids) {
    llm_server *s = rq->srv;
    *ids = NULL;
    size_t cap = len + 16, n = 0;
    int32_t *buf = malloc(cap * sizeof *buf);
    llm_status st = buf ? LLM_OK : LLM_ERR_OUT_OF_MEMORY;
    char msg[256] = "";
    pthread_mutex_lock(&s->tok_mu);
    if (st == LLM_OK) st = llm_tokenize(s->tok, text, len, flags, buf, cap, &n);
    if (st == LLM_ERR_BUFFER_TOO_SMALL) {
        int32_t *p = realloc(buf, n * sizeof *buf);
        st = p ? llm_tokenize(s->tok, text, len, flags, p, n, &n) : LLM_ERR_OUT_OF_MEMORY;
        if (p) buf = p;
    }
    if (st != LLM_OK) snprintf(msg, sizeof msg, "%s", llm_tokenizer_last_error(s->tok));
    pthread_mutex_unlock(&s->tok_mu);
    if (st != LLM_OK) {
        free(buf);
        if (st == LLM_ERR_INVALID_ARGUMENT)
            http_send_error(rq, 400, "invalid_request_error", param, "invalid_text", 0, "'%s': %s", param,
                            msg);
        else
            http_send_error(rq, 500, "server_error", NULL, NULL, 0, "tokenizing failed: %s", msg);
        return -1;
    }
    *ids = buf;
    *n_ids = n;
    return 0;
}

void srv_token_text(llm_server *s, int32_t id, llm_strbuf *sb) {
    char buf[256];
    size_t len = 0;
    pthread_mutex_lock(&s->tok_mu);
    llm_status st = llm_detokenize(s->tok, &id, 1, 0, buf, sizeof buf, &len);
    pthread_mutex_unlock(&s->tok_mu);
    if (st == LLM_OK) llm_strbuf_append(sb, buf, len);
}

/* ---- the shared tail: submit the choices, answer ---------------------------------------------- */

/* Submits every choice of job (prompt ids per choice), then answers. Takes ownership of job. */
static enum MHD_Result run_job(http_req *rq, gen_job *job, const srv_gen_opts *o, int32_t *const *prompts,
                               const size_t *n_prompts, int n_per_prompt) {
    llm_server *s = rq->srv;
    for (int i = 0; i < job->n; i++) {
        const int p = i / n_per_prompt;
        llm_request req = {.prompt = prompts[p], .n_prompt = n_prompts[p], .gen = o->gen};
        req.gen.max_tokens = o->max_tokens ? o->max_tokens : (int32_t)(s->n_ctx - (int32_t)n_prompts[p] + 1);
        req.gen.sampling.seed = o->gen.sampling.seed + (uint64_t)(i % n_per_prompt); /* choices differ */
        req.session = o->session;
        req.session_prompt = LLM_SESSION_WHOLE;
        char err[512];
        llm_status st = gen_submit(job, i, &req, err, sizeof err);
        if (st != LLM_OK) {
            gen_abort(job);
            enum MHD_Result r;
            if (st == LLM_ERR_CONTEXT_FULL || st == LLM_ERR_KV_FULL)
                r = http_send_error(rq, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                                    0, "%s", err);
            else if (st == LLM_ERR_BUSY)
                r = http_send_error(rq, 409, "invalid_request_error", "session_id", "session_busy", 0, "%s",
                                    err);
            else if (st == LLM_ERR_TOO_MANY_SEQUENCES)
                r = http_send_error(rq, 429, "rate_limit_error", "session_id", "too_many_sessions", 1, "%s",
                                    err);
            else if (st == LLM_ERR_INVALID_ARGUMENT)
                r = http_send_error(rq, 400, "invalid_request_error", NULL, "invalid_value", 0, "%s", err);
            else
                r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "%s", err);
            pthread_mutex_lock(&job->mu); /* wait for the choices already submitted, then drop the job */
            while (1) {
                int pending = 0;
                for (int k = 0; k < job->n; k++) pending |= !job->choices[k].done;
                if (!pending) break;
                pthread_cond_wait(&job->cv, &job->mu);
            }
            pthread_mutex_unlock(&job->mu);
            gen_release(job);
            return r;
        }
    }
    if (o->stream) return http_send_stream(rq, gen_sse_reader, job, gen_sse_free);
    if (gen_wait_all(job) != 0) { /* the client left: nobody to answer (499, as nginx logs it) */
        srv_metrics_request(&s->metrics, rq->endpoint, 499);
        gen_release(job);
        return MHD_NO;
    }
    for (int i = 0; i < job->n; i++) {
        const gen_choice *c = &job->choices[i];
        if (c->status != LLM_OK || c->res.finish == LLM_FINISH_CANCELLED) {
            enum MHD_Result r =
                c->status != LLM_OK
                    ? http_send_error(rq, 500, "server_error", NULL, NULL, 0, "generation failed: %s",
                                      c->error)
                    : http_send_error(rq, 503, "server_error", NULL, "shutting_down", 1,
                                      "the request was cancelled: the server is shutting down");
            gen_release(job);
            return r;
        }
    }
    llm_strbuf out = LLM_STRBUF_INIT;
    gen_build_response(job, &out);
    gen_release(job);
    return http_send_json(rq, 200, &out);
}

static void job_set_opts(gen_job *job, const srv_gen_opts *o) {
    job->stream = o->stream;
    job->include_usage = o->include_usage;
    job->logprobs = o->logprobs;
    job->top_logprobs = o->top_logprobs;
}

/* Checks the prompt fits the context with room for one generated token and for max_tokens. */
static int check_length(http_req *rq, size_t n_prompt, int32_t max_tokens, const char *param) {
    const int32_t n_ctx = rq->srv->n_ctx;
    if (n_prompt >= (size_t)n_ctx + 1 || (max_tokens && (int64_t)n_prompt + max_tokens - 1 > n_ctx)) {
        if (max_tokens)
            http_send_error(
                rq, 400, "invalid_request_error", param, "context_length_exceeded", 0,
                "the prompt has %zu tokens and max_tokens is %d: %lld tokens, more than the context of "
                "%d tokens",
                n_prompt, max_tokens, (long long)n_prompt + max_tokens, n_ctx);
        else
            http_send_error(rq, 400, "invalid_request_error", param, "context_length_exceeded", 0,
                            "the prompt has %zu tokens; the context holds %d", n_prompt, n_ctx);
        return -1;
    }
    return 0;
}

/* tool_choice: "none" | "auto" | "required" | {"type":"function","function":{"name":...}}. Sets
 * *use_tools and, for required/named, the text the assistant is made to start with. */
static int parse_tool_choice(http_req *rq, const llm_json *body, const llm_json *tools, int *use_tools,
                             char *prefix, size_t cap, char *only, size_t only_cap) {
    llm_server *s = rq->srv;
    *use_tools = tools != NULL;
    prefix[0] = '\0';
    only[0] = '\0';
    const llm_json *tc = llm_json_get(body, "tool_choice");
    if (!tc || llm_json_is_null(tc)) return 0;
    const char *mode = llm_json_string(tc, NULL);
    const char *name = NULL;
    if (mode) {
        if (strcmp(mode, "none") == 0) {
            *use_tools = 0;
            return 0;
        }
        if (strcmp(mode, "auto") == 0) return 0;
        if (strcmp(mode, "required") != 0) {
            http_send_error(rq, 400, "invalid_request_error", "tool_choice", "invalid_value", 0,
                            "'tool_choice' must be none, auto, required or a function object");
            return -1;
        }
    } else if (llm_json_is_object(tc)) {
        name = llm_json_string(llm_json_get(llm_json_get(tc, "function"), "name"), NULL);
        if (!name) {
            http_send_error(rq, 400, "invalid_request_error", "tool_choice.function.name", "missing_field", 0,
                            "'tool_choice.function.name' is required");
            return -1;
        }
        int found = 0;
        for (size_t i = 0; i < llm_json_count(tools); i++) {
            const char *n = llm_json_string(
                llm_json_get(llm_json_get(llm_json_value_at(tools, i), "function"), "name"), NULL);
            found |= n && strcmp(n, name) == 0;
        }
        if (!found) {
            http_send_error(rq, 400, "invalid_request_error", "tool_choice", "invalid_value", 0,
                            "tool_choice names '%s', which is not in tools", name);
            return -1;
        }
    } else {
        http_send_error(rq, 400, "invalid_request_error", "tool_choice", "invalid_type", 0,
                        "'tool_choice' must be a string or an object");
        return -1;
    }
    if (!tools) {
        http_send_error(rq, 400, "invalid_request_error", "tool_choice", "invalid_value", 0,
                        "tool_choice %s needs tools", name ? "with a function" : "required");
        return -1;
    }
    /* The call is forced by making the assistant's turn start with the format's opening. A named
     * choice also shows the model only that function. (The name itself is not forced: that needs
     * grammar-constrained decoding, which this server does not have yet.) */
    llm_strbuf b = LLM_STRBUF_INIT;
    if (s->tool_format == LLM_TOOLFMT_HERMES)
        llm_strbuf_append_str(&b, "<tool_call>\n");
    else if (s->tool_format == LLM_TOOLFMT_LLAMA3_JSON)
        llm_strbuf_append_str(&b, "{\"name\": \"");
    if (name) snprintf(only, only_cap, "%s", name);
    snprintf(prefix, cap, "%s", b.data ? b.data : "");
    llm_strbuf_free(&b);
    return 0;
}

enum MHD_Result srv_chat_completions(http_req *rq, const llm_json *body) {
    llm_server *s = rq->srv;
    if (srv_check_model(rq, body)) return MHD_YES;
    const llm_json *messages = llm_json_get(body, "messages");
    if (!messages)
        return http_send_error(rq, 400, "invalid_request_error", "messages", "missing_field", 0,
                               "'messages' is required");
    if (!llm_json_is_array(messages) || llm_json_count(messages) == 0)
        return http_send_error(rq, 400, "invalid_request_error", "messages", "invalid_type", 0,
                               "'messages' must be a non-empty array");
    if (llm_json_count(messages) > (size_t)s->p.max_messages)
        return http_send_error(rq, 400, "invalid_request_error", "messages", "too_many_messages", 0,
                               "%zu messages; at most %d are accepted", llm_json_count(messages),
                               s->p.max_messages);
    const llm_json *tools = llm_json_get(body, "tools");
    if (tools && llm_json_is_null(tools)) tools = NULL;
    if (tools && !llm_json_is_array(tools))
        return http_send_error(rq, 400, "invalid_request_error", "tools", "invalid_type", 0,
                               "'tools' must be an array");
    for (size_t i = 0; tools && i < llm_json_count(tools); i++) {
        const llm_json *t = llm_json_value_at(tools, i);
        if (!llm_json_string(llm_json_get(llm_json_get(t, "function"), "name"), NULL)) {
            char param[48];
            snprintf(param, sizeof param, "tools[%zu].function.name", i);
            return http_send_error(rq, 400, "invalid_request_error", param, "missing_field", 0,
                                   "'%s' is required", param);
        }
    }
    if (tools && llm_json_count(tools) == 0) tools = NULL;
    int use_tools = 0;
    char prefix[512], only[256];
    if (parse_tool_choice(rq, body, tools, &use_tools, prefix, sizeof prefix, only, sizeof only))
        return MHD_YES;
    srv_gen_opts o;
    if (srv_parse_gen(rq, body, 1, &o) != 0) {
        srv_gen_opts_free(&o);
        return MHD_YES;
    }
    enum MHD_Result r = MHD_YES;
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (srv_check_capacity(rq) == 0 &&
        srv_render_chat(rq, messages, use_tools ? tools : NULL, only[0] ? only : NULL, prefix, &text,
                        &text_len) == 0 &&
        srv_tokenize_text(rq, text, text_len, LLM_TOKENIZE_PARSE_SPECIAL, "messages", &ids, &n_ids) == 0 &&
        check_length(rq, n_ids, o.max_tokens, o.max_tokens ? "max_tokens" : "messages") == 0) {
        gen_job *job = gen_job_new(s, o.n, 1, rq->conn);
        if (!job) {
            r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
        } else {
            job_set_opts(job, &o);
            job->n_prompt_total = (int32_t)n_ids;
            job->tool_format = use_tools ? s->tool_format : LLM_TOOLFMT_NONE;
            snprintf(job->forced_prefix, sizeof job->forced_prefix, "%s", prefix);
            for (int i = 0; i < job->n && job->tool_format != LLM_TOOLFMT_NONE; i++)
                job->choices[i].parser = llm_tool_parser_create(job->tool_format);
            int32_t *const prompts[1] = {ids};
            const size_t lens[1] = {n_ids};
            r = run_job(rq, job, &o, prompts, lens, o.n);
        }
    }
    free(text);
    free(ids);
    srv_gen_opts_free(&o);
    return r;
}

enum MHD_Result srv_completions(http_req *rq, const llm_json *body) {
    llm_server *s = rq->srv;
    if (srv_check_model(rq, body)) return MHD_YES;
    static const char *const unsupported[] = {"suffix", "best_of"};
    for (size_t i = 0; i < 2; i++) {
        const llm_json *v = llm_json_get(body, unsupported[i]);
        int64_t b = 0;
        if (v && !llm_json_is_null(v) && !(i == 1 && llm_json_int64(v, &b) == 0 && b <= 1))
            return http_send_error(rq, 400, "invalid_request_error", unsupported[i], "unsupported_field", 0,
                                   "'%s' is not supported by this server", unsupported[i]);
    }
    const llm_json *prompt = llm_json_get(body, "prompt");
    if (!prompt)
        return http_send_error(rq, 400, "invalid_request_error", "prompt", "missing_field", 0,
                               "'prompt' is required");
    /* prompt: a string, an array of strings, an array of token ids, or an array of arrays of ids */
    size_t n_prompts = 1;
    int kind = 0; /* 0 string, 1 strings, 2 ids, 3 id arrays */
    if (llm_json_is_string(prompt)) {
        kind = 0;
    } else if (llm_json_is_array(prompt) && llm_json_count(prompt) > 0) {
        const llm_json *first = llm_json_value_at(prompt, 0);
        kind = llm_json_is_string(first)   ? 1
               : llm_json_is_number(first) ? 2
               : llm_json_is_array(first)  ? 3
                                           : -1;
        n_prompts = kind == 2 ? 1 : llm_json_count(prompt);
    } else {
        kind = -1;
    }
    if (kind < 0)
        return http_send_error(
            rq, 400, "invalid_request_error", "prompt", "invalid_type", 0,
            "'prompt' must be a string, an array of strings, an array of token ids or an array "
            "of arrays of token ids");
    srv_gen_opts o;
    if (srv_parse_gen(rq, body, 0, &o) != 0) {
        srv_gen_opts_free(&o);
        return MHD_YES;
    }
    if (n_prompts * (size_t)o.n > 64) {
        srv_gen_opts_free(&o);
        return http_send_error(rq, 400, "invalid_request_error", "prompt", "invalid_value", 0,
                               "%zu prompts x n = %d: at most 64 completions per request", n_prompts, o.n);
    }
    if (o.session) {
        srv_gen_opts_free(&o);
        return http_send_error(rq, 400, "invalid_request_error", "session_id", "unsupported_field", 0,
                               "session_id is supported on /v1/chat/completions only");
    }
    int32_t **prompts = calloc(n_prompts, sizeof *prompts);
    size_t *lens = calloc(n_prompts, sizeof *lens);
    char **texts = calloc(n_prompts, sizeof *texts);
    size_t *text_lens = calloc(n_prompts, sizeof *text_lens);
    enum MHD_Result r = MHD_YES;
    int ok = prompts && lens && texts && text_lens;
    if (!ok) r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
    ok = ok && srv_check_capacity(rq) == 0;
    for (size_t p = 0; ok && p < n_prompts; p++) {
        char param[32];
        snprintf(param, sizeof param, kind == 0 || kind == 2 ? "prompt" : "prompt[%zu]", p);
        const llm_json *item = kind == 0 || kind == 2 ? prompt : llm_json_value_at(prompt, p);
        if (kind <= 1) {
            size_t n;
            const char *t = llm_json_string(item, &n);
            if (!t) {
                r = http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                                    "'%s' must be a string", param);
                ok = 0;
                break;
            }
            ok = srv_tokenize_text(rq, t, n, LLM_TOKENIZE_ADD_SPECIAL | LLM_TOKENIZE_PARSE_SPECIAL, param,
                                   &prompts[p], &lens[p]) == 0;
            if (ok && o.echo) texts[p] = strndup(t, n), text_lens[p] = n;
        } else {
            const size_t n = llm_json_count(item);
            if (!llm_json_is_array(item) || n == 0) {
                r = http_send_error(rq, 400, "invalid_request_error", param, "invalid_type", 0,
                                    "'%s' must be a non-empty array of token ids", param);
                ok = 0;
                break;
            }
            prompts[p] = malloc(n * sizeof *prompts[p]);
            lens[p] = n;
            for (size_t k = 0; ok && prompts[p] && k < n; k++) {
                int64_t id;
                if (llm_json_int64(llm_json_value_at(item, k), &id) != 0 || id < 0 || id >= s->n_vocab) {
                    r = http_send_error(rq, 400, "invalid_request_error", param, "invalid_value", 0,
                                        "'%s[%zu]' is not a token id in [0, %d)", param, k, s->n_vocab);
                    ok = 0;
                } else {
                    prompts[p][k] = (int32_t)id;
                }
            }
            if (ok && o.echo) {
                llm_strbuf t = LLM_STRBUF_INIT;
                for (size_t k = 0; k < n; k++) srv_token_text(s, prompts[p][k], &t);
                text_lens[p] = t.len;
                texts[p] = llm_strbuf_detach(&t, NULL);
            }
        }
        if (ok && check_length(rq, lens[p], o.max_tokens, o.max_tokens ? "max_tokens" : "prompt") != 0)
            ok = 0;
        if (ok && lens[p] == 0) {
            r = http_send_error(rq, 400, "invalid_request_error", param, "invalid_value", 0, "'%s' is empty",
                                param);
            ok = 0;
        }
    }
    if (ok) {
        gen_job *job = gen_job_new(s, (int)n_prompts * o.n, 0, rq->conn);
        if (!job) {
            r = http_send_error(rq, 500, "server_error", NULL, NULL, 0, "out of memory");
        } else {
            job_set_opts(job, &o);
            for (size_t p = 0; p < n_prompts; p++) job->n_prompt_total += (int32_t)lens[p];
            for (int i = 0; i < job->n; i++)
                if (texts[i / o.n])
                    llm_strbuf_append(&job->choices[i].echo, texts[i / o.n], text_lens[i / o.n]);
            r = run_job(rq, job, &o, prompts, lens, o.n);
        }
    }
    for (size_t p = 0; p < n_prompts; p++) {
        if (prompts) free(prompts[p]);
        if (texts) free(texts[p]);
    }
    free(prompts);
    free(lens);
    free(texts);
    free(text_lens);
    srv_gen_opts_free(&o);
    return r;
}
