/*
 * tool_calls.c - see tool_calls.h for the formats and the streaming contract.
 *
 * Everything is one byte-driven state machine, so the result cannot depend on how the text was cut
 * into pieces, and llm_tool_parse_all is just feed + finish. Two layers:
 *   - jv: an incremental JSON validator (one byte at a time, no recursion, no allocation) that knows
 *     when a value ends; it lets arguments be streamed while they are generated and tells, at the
 *     exact byte, when a call stops being JSON;
 *   - the parser: Hermes text / Llama lead-in / the call object (keys, "name", "arguments") / what
 *     follows a call, with `raw` holding every byte not yet released, so a failed call can give all
 *     of it back as content.
 */
#include "server/tool_calls.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/strbuf.h"

/* ---------------------------------------------------------------- format detection */

llm_tool_format llm_tool_format_for_template(const char *src) {
    if (!src) return LLM_TOOLFMT_NONE;
    /* Qwen2.5 / Qwen3 / QwQ / Hermes-2-Pro all spell the block tag literally in their system prompt
     * and in the rendering of past assistant tool calls. */
    if (strstr(src, "<tool_call>")) return LLM_TOOLFMT_HERMES;
    /* Llama 3.1 renders past calls after <|python_tag|>; Llama 3.2 has no python tag, but both
     * instruct the model with "Given the following functions ... \"parameters\"". */
    if (strstr(src, "<|python_tag|>")) return LLM_TOOLFMT_LLAMA3_JSON;
    if (strstr(src, "Given the following functions") && strstr(src, "parameters"))
        return LLM_TOOLFMT_LLAMA3_JSON;
    return LLM_TOOLFMT_NONE;
}

/* ---------------------------------------------------------------- incremental JSON validator */

enum { JV_MORE, JV_DONE, JV_DONE_BEFORE, JV_ERROR };

enum {
    JV_VALUE,
    JV_ARR_FIRST,
    JV_OBJ_FIRST,
    JV_OBJ_KEY,
    JV_COLON,
    JV_AFTER,
    JV_STR,
    JV_ESC,
    JV_HEX,
    JV_LIT,
    JV_NUM_MINUS,
    JV_NUM_ZERO,
    JV_NUM_INT,
    JV_NUM_DOT,
    JV_NUM_FRAC,
    JV_NUM_E,
    JV_NUM_ESIGN,
    JV_NUM_EXP,
    JV_END
};

/* Same depth cap as core/json.h, so whatever this accepts the strict parser accepts too. */
#define JV_MAX_DEPTH LLM_JSON_DEFAULT_MAX_DEPTH

typedef struct {
    unsigned char st;
    unsigned char in_key;           /* the string being read is an object key */
    unsigned char want_low;         /* a \uD800-\uDBFF escape must be followed by \uDC00-\uDFFF */
    unsigned char hex_n;            /* hex digits of a \u escape read so far */
    unsigned char utf8_need;        /* continuation bytes still expected */
    unsigned char utf8_lo, utf8_hi; /* allowed range of the next continuation byte */
    unsigned char lit_n;
    const char *lit; /* "true", "false" or "null" while reading one */
    unsigned depth;
    uint32_t hex;
    unsigned char is_obj[JV_MAX_DEPTH / 8]; /* bit per open container: object (1) or array (0) */
} jv;

static void jv_init(jv *v) {
    memset(v, 0, sizeof *v);
    v->st = JV_VALUE;
}

static int jv_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int jv_top_is_obj(const jv *v) {
    unsigned d = v->depth - 1;
    return (v->is_obj[d / 8] >> (d % 8)) & 1;
}

static int jv_value_done(jv *v) {
    if (v->depth == 0) {
        v->st = JV_END;
        return JV_DONE;
    }
    v->st = JV_AFTER;
    return JV_MORE;
}

static int jv_open(jv *v, int obj) {
    if (v->depth >= JV_MAX_DEPTH) return JV_ERROR;
    unsigned d = v->depth++;
    if (obj)
        v->is_obj[d / 8] |= (unsigned char)(1u << (d % 8));
    else
        v->is_obj[d / 8] &= (unsigned char)~(1u << (d % 8));
    v->st = obj ? JV_OBJ_FIRST : JV_ARR_FIRST;
    return JV_MORE;
}

static int jv_start_value(jv *v, unsigned char c) {
    switch (c) {
    case '{':
        return jv_open(v, 1);
    case '[':
        return jv_open(v, 0);
    case '"':
        v->st = JV_STR;
        return JV_MORE;
    case '-':
        v->st = JV_NUM_MINUS;
        return JV_MORE;
    case '0':
        v->st = JV_NUM_ZERO;
        return JV_MORE;
    case 't':
        v->lit = "true";
        break;
    case 'f':
        v->lit = "false";
        break;
    case 'n':
        v->lit = "null";
        break;
    default:
        if (c >= '1' && c <= '9') {
            v->st = JV_NUM_INT;
            return JV_MORE;
        }
        return JV_ERROR;
    }
    v->st = JV_LIT;
    v->lit_n = 1;
    return JV_MORE;
}

static int jv_hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A byte >= 0x80 starting a UTF-8 sequence: well-formed sequences only (no overlongs, surrogates or
 * code points above U+10FFFF), as core/json.h requires. */
static int jv_utf8_lead(jv *v, unsigned char c) {
    v->utf8_lo = 0x80;
    v->utf8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        v->utf8_need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        v->utf8_need = 2;
        if (c == 0xE0) v->utf8_lo = 0xA0;
        if (c == 0xED) v->utf8_hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        v->utf8_need = 3;
        if (c == 0xF0) v->utf8_lo = 0x90;
        if (c == 0xF4) v->utf8_hi = 0x8F;
    } else {
        return JV_ERROR;
    }
    return JV_MORE;
}

/* Feeds one byte. JV_MORE: consumed, value not finished. JV_DONE: consumed, it was the value's last
 * byte. JV_DONE_BEFORE: a top-level number ended just before c, which is not consumed. JV_ERROR: c
 * cannot continue valid JSON (the validator must not be fed again). */
static int jv_push(jv *v, unsigned char c) {
    for (;;) {
        switch (v->st) {
        case JV_VALUE:
            if (jv_ws(c)) return JV_MORE;
            return jv_start_value(v, c);
        case JV_ARR_FIRST:
            if (jv_ws(c)) return JV_MORE;
            if (c == ']') {
                v->depth--;
                return jv_value_done(v);
            }
            return jv_start_value(v, c);
        case JV_OBJ_FIRST:
        case JV_OBJ_KEY:
            if (jv_ws(c)) return JV_MORE;
            if (c == '"') {
                v->st = JV_STR;
                v->in_key = 1;
                return JV_MORE;
            }
            if (c == '}' && v->st == JV_OBJ_FIRST) {
                v->depth--;
                return jv_value_done(v);
            }
            return JV_ERROR;
        case JV_COLON:
            if (jv_ws(c)) return JV_MORE;
            if (c != ':') return JV_ERROR;
            v->st = JV_VALUE;
            return JV_MORE;
        case JV_AFTER:
            if (jv_ws(c)) return JV_MORE;
            if (c == ',') {
                v->st = jv_top_is_obj(v) ? JV_OBJ_KEY : JV_VALUE;
                return JV_MORE;
            }
            if (c == (jv_top_is_obj(v) ? '}' : ']')) {
                v->depth--;
                return jv_value_done(v);
            }
            return JV_ERROR;
        case JV_STR:
            if (v->utf8_need) {
                if (c < v->utf8_lo || c > v->utf8_hi) return JV_ERROR;
                v->utf8_need--;
                v->utf8_lo = 0x80;
                v->utf8_hi = 0xBF;
                return JV_MORE;
            }
            if (v->want_low && c != '\\') return JV_ERROR;
            if (c == '"') {
                if (v->in_key) {
                    v->in_key = 0;
                    v->st = JV_COLON;
                    return JV_MORE;
                }
                return jv_value_done(v);
            }
            if (c == '\\') {
                v->st = JV_ESC;
                return JV_MORE;
            }
            if (c < 0x20) return JV_ERROR;
            if (c < 0x80) return JV_MORE;
            return jv_utf8_lead(v, c);
        case JV_ESC:
            if (c == 'u') {
                v->st = JV_HEX;
                v->hex = 0;
                v->hex_n = 0;
                return JV_MORE;
            }
            if (v->want_low || !c || !strchr("\"\\/bfnrt", c)) return JV_ERROR;
            v->st = JV_STR;
            return JV_MORE;
        case JV_HEX: {
            int d = jv_hexval(c);
            if (d < 0) return JV_ERROR;
            v->hex = v->hex * 16 + (uint32_t)d;
            if (++v->hex_n < 4) return JV_MORE;
            v->st = JV_STR;
            int low = v->hex >= 0xDC00 && v->hex <= 0xDFFF;
            if (v->want_low) {
                if (!low) return JV_ERROR;
                v->want_low = 0;
            } else if (low) {
                return JV_ERROR;
            } else if (v->hex >= 0xD800 && v->hex <= 0xDBFF) {
                v->want_low = 1;
            }
            return JV_MORE;
        }
        case JV_LIT:
            if (c != (unsigned char)v->lit[v->lit_n]) return JV_ERROR;
            if (v->lit[++v->lit_n] == '\0') return jv_value_done(v);
            return JV_MORE;
        case JV_NUM_MINUS:
            if (c == '0') {
                v->st = JV_NUM_ZERO;
                return JV_MORE;
            }
            if (c >= '1' && c <= '9') {
                v->st = JV_NUM_INT;
                return JV_MORE;
            }
            return JV_ERROR;
        case JV_NUM_DOT:
            if (c < '0' || c > '9') return JV_ERROR;
            v->st = JV_NUM_FRAC;
            return JV_MORE;
        case JV_NUM_E:
            if (c == '+' || c == '-') {
                v->st = JV_NUM_ESIGN;
                return JV_MORE;
            }
            /* fall through */
        case JV_NUM_ESIGN:
            if (c < '0' || c > '9') return JV_ERROR;
            v->st = JV_NUM_EXP;
            return JV_MORE;
        case JV_NUM_ZERO:
        case JV_NUM_INT:
        case JV_NUM_FRAC:
        case JV_NUM_EXP:
            if (c >= '0' && c <= '9' && v->st != JV_NUM_ZERO) return JV_MORE;
            if (c == '.' && v->st != JV_NUM_FRAC && v->st != JV_NUM_EXP) {
                v->st = JV_NUM_DOT;
                return JV_MORE;
            }
            if ((c == 'e' || c == 'E') && v->st != JV_NUM_EXP) {
                v->st = JV_NUM_E;
                return JV_MORE;
            }
            /* A number only ends at the first byte that cannot extend it. */
            if (v->depth == 0) {
                v->st = JV_END;
                return JV_DONE_BEFORE;
            }
            v->st = JV_AFTER;
            continue; /* c belongs to the container: read it there */
        default:
            return JV_ERROR;
        }
    }
}

/* ---------------------------------------------------------------- parser */

#define OPEN_TAG   "<tool_call>"
#define CLOSE_TAG  "</tool_call>"
#define PYTHON_TAG "<|python_tag|>"
#define LEN(lit)   (sizeof(lit) - 1)

enum {
    M_PASS, /* everything is content (format NONE; Llama once the output is known not to be calls) */
    M_TEXT, /* Hermes, outside blocks: `mpos` bytes of "<tool_call>" held */
    M_LEAD, /* Llama, before the first call: whitespace and <|python_tag|> (`mpos` bytes matched) */
    M_CALL, /* inside a call object ({"name": ..., "arguments": ...}) */
    M_TAIL  /* after a call object: Hermes "</tool_call>" (`mpos` matched); Llama ';' or the next '{' */
};

/* Where we are in the call object. */
enum { O_OPEN, O_FIRST, O_KEYSTART, O_KEY, O_COLON, O_VSTART, O_VAL, O_COMMA };

enum { MEM_NAME, MEM_ARGS, MEM_OTHER };

struct llm_tool_parser {
    llm_tool_format fmt;
    int mode;
    size_t mpos;
    int tag_done;  /* Llama: <|python_tag|> already seen */
    int tail_semi; /* Llama: ';' already seen after the last call */
    int oom;
    int finished;
    int n_calls; /* calls ended so far = index of the current one */

    /* the call object being read */
    int ost;
    int member;         /* whose value is being read */
    int collect;        /* the value's bytes go to tok */
    int committed;      /* CALL_BEGIN was emitted */
    int args_streaming; /* the arguments value is being emitted byte by byte */
    int args_seen;      /* args holds complete arguments (not yet committed) */
    int have_name;
    jv v;              /* validator of the current key or value */
    llm_strbuf tok;    /* raw text of the current key / name / collected arguments */
    llm_strbuf name;   /* decoded name */
    llm_strbuf args;   /* complete arguments waiting for the name */
    llm_strbuf raw;    /* bytes not yet released: content-to-be if the call fails */
    llm_strbuf replay; /* Hermes: bytes to read again (after a failed block) before new input */
    size_t replay_pos;

    /* events of one kind are merged until the kind changes or the feed ends */
    llm_strbuf out;
    llm_tool_event_kind out_kind;
    int out_index;
    llm_tool_event_fn fn;
    void *user;
};

static void app(llm_tool_parser *p, llm_strbuf *sb, const void *s, size_t n) {
    if (n && llm_strbuf_append(sb, s, n)) p->oom = 1;
}

static void deliver(llm_tool_parser *p, llm_tool_event_kind kind, int index, const char *text, size_t len) {
    if (!p->fn) return;
    llm_tool_event ev = {kind, index, text, len};
    p->fn(&ev, p->user);
}

static void flush(llm_tool_parser *p) {
    if (p->out.len == 0) return;
    deliver(p, p->out_kind, p->out_index, p->out.data, p->out.len);
    llm_strbuf_clear(&p->out);
}

static void emit_text(llm_tool_parser *p, llm_tool_event_kind kind, int index, const char *s, size_t n) {
    if (n == 0) return;
    if (p->out.len && (p->out_kind != kind || p->out_index != index)) flush(p);
    p->out_kind = kind;
    p->out_index = index;
    app(p, &p->out, s, n);
}

static void content(llm_tool_parser *p, const char *s, size_t n) {
    emit_text(p, LLM_TOOL_EV_CONTENT, -1, s, n);
}

static void call_reset(llm_tool_parser *p) {
    p->ost = O_OPEN;
    p->member = MEM_OTHER;
    p->collect = p->committed = p->args_streaming = p->args_seen = p->have_name = 0;
    llm_strbuf_clear(&p->tok);
    llm_strbuf_clear(&p->name);
    llm_strbuf_clear(&p->args);
}

/* Puts s in front of whatever is still to be replayed. */
static void replay_prepend(llm_tool_parser *p, const char *s, size_t n) {
    llm_strbuf next = LLM_STRBUF_INIT;
    app(p, &next, s, n);
    if (p->replay_pos < p->replay.len)
        app(p, &next, p->replay.data + p->replay_pos, p->replay.len - p->replay_pos);
    llm_strbuf_free(&p->replay);
    p->replay = next;
    p->replay_pos = 0;
}

/* The held text after a call (or a failed one) becomes text again: Hermes reads it again, as it may
 * hold the next block; for Llama nothing after a non-call can be a call, so it is content. */
static void release_raw(llm_tool_parser *p, size_t from) {
    if (p->fmt == LLM_TOOLFMT_HERMES) {
        replay_prepend(p, p->raw.data + from, p->raw.len - from);
        p->mode = M_TEXT;
    } else {
        content(p, p->raw.data + from, p->raw.len - from);
        p->mode = M_PASS;
    }
    p->mpos = 0;
    llm_strbuf_clear(&p->raw);
    call_reset(p);
}

static void call_end(llm_tool_parser *p) {
    flush(p);
    deliver(p, LLM_TOOL_EV_CALL_END, p->n_calls, NULL, 0);
    p->n_calls++;
}

/* A call that was never committed is not a call: all its text is content. For Hermes the first '<'
 * is released and the rest read again, since a real block may start inside the failed one. */
static void fail_pre(llm_tool_parser *p) {
    size_t from = 0;
    if (p->fmt == LLM_TOOLFMT_HERMES) {
        content(p, p->raw.data, 1);
        from = 1;
    }
    release_raw(p, from);
}

/* A committed call cannot be taken back: it ends here, and what was held after it is text. */
static void fail_post(llm_tool_parser *p) {
    call_end(p);
    release_raw(p, 0);
}

static void fail(llm_tool_parser *p) {
    if (p->committed)
        fail_post(p);
    else
        fail_pre(p);
}

static void commit(llm_tool_parser *p) {
    flush(p);
    deliver(p, LLM_TOOL_EV_CALL_BEGIN, p->n_calls, p->name.data, p->name.len);
    p->committed = 1;
    llm_strbuf_clear(&p->raw); /* the call consumed it */
    if (p->args_seen) emit_text(p, LLM_TOOL_EV_ARGS, p->n_calls, p->args.data, p->args.len);
}

/* Decodes the JSON string literal in tok; NULL if it is not one. */
static llm_json_doc *decode_tok(llm_tool_parser *p, const char **s, size_t *len) {
    llm_json_doc *doc = NULL;
    *s = NULL;
    *len = 0;
    if (llm_json_parse(p->tok.data, p->tok.len, &doc, NULL, 0) != 0) return NULL;
    *s = llm_json_string(llm_json_root(doc), len);
    if (!*s) {
        llm_json_doc_free(doc);
        return NULL;
    }
    return doc;
}

static void start_key(llm_tool_parser *p, unsigned char c) {
    jv_init(&p->v);
    jv_push(&p->v, c);
    llm_strbuf_clear(&p->tok);
    app(p, &p->tok, &c, 1);
    p->ost = O_KEY;
}

/* Returns -1 if the call failed (the caller must stop looking at it). */
static int key_end(llm_tool_parser *p) {
    const char *k;
    size_t n;
    llm_json_doc *doc = decode_tok(p, &k, &n);
    p->member = MEM_OTHER;
    if (k && n == 4 && !memcmp(k, "name", 4))
        p->member = MEM_NAME;
    else if (k && ((n == 9 && !memcmp(k, "arguments", 9)) || (n == 10 && !memcmp(k, "parameters", 10))))
        p->member = MEM_ARGS;
    llm_json_doc_free(doc);
    /* A Llama call is the whole reply, so any other key means it is ordinary JSON content. */
    if (p->member == MEM_OTHER && p->fmt == LLM_TOOLFMT_LLAMA3_JSON && !p->committed) {
        fail_pre(p);
        return -1;
    }
    p->ost = O_COLON;
    return 0;
}

/* A value's bytes: streamed as arguments, collected, or (other members) only held in raw. */
static void keep(llm_tool_parser *p, unsigned char c) {
    if (p->args_streaming)
        emit_text(p, LLM_TOOL_EV_ARGS, p->n_calls, (const char *)&c, 1);
    else if (p->collect)
        app(p, &p->tok, &c, 1);
}

static void start_value(llm_tool_parser *p, unsigned char c) {
    if (p->committed) p->member = MEM_OTHER; /* later duplicates of name/arguments are ignored */
    if ((p->member == MEM_NAME && c != '"') || (p->member == MEM_ARGS && c != '{' && c != '"')) {
        fail(p);
        return;
    }
    jv_init(&p->v);
    if (jv_push(&p->v, c) == JV_ERROR) {
        fail(p);
        return;
    }
    llm_strbuf_clear(&p->tok);
    p->ost = O_VAL;
    p->collect = p->member != MEM_OTHER;
    /* The commitment point: a name and the start of an arguments object. From here on the
     * arguments are emitted as they come, which is what streaming clients want. */
    if (p->member == MEM_ARGS && c == '{' && p->have_name) {
        commit(p);
        p->args_streaming = 1;
        p->collect = 0;
    }
    keep(p, c);
}

static int value_end(llm_tool_parser *p) {
    p->ost = O_COMMA;
    p->collect = 0;
    if (p->member == MEM_NAME) {
        const char *s;
        size_t n;
        llm_json_doc *doc = decode_tok(p, &s, &n);
        int ok = s && n > 0 && !memchr(s, 0, n);
        if (ok) {
            llm_strbuf_clear(&p->name);
            app(p, &p->name, s, n);
        }
        llm_json_doc_free(doc);
        if (!ok) {
            fail_pre(p);
            return -1;
        }
        p->have_name = 1;
        if (p->args_seen) commit(p);
    } else if (p->member == MEM_ARGS && p->args_streaming) {
        p->args_streaming = 0;
    } else if (p->member == MEM_ARGS) {
        llm_strbuf_clear(&p->args);
        if (p->tok.len && p->tok.data[0] == '{') {
            app(p, &p->args, p->tok.data, p->tok.len);
        } else {
            /* Arguments given as a string holding JSON: its decoded text, if that is an object. */
            const char *s;
            size_t n;
            llm_json_doc *doc = decode_tok(p, &s, &n), *inner = NULL;
            int ok =
                s && llm_json_parse(s, n, &inner, NULL, 0) == 0 && llm_json_is_object(llm_json_root(inner));
            if (ok) app(p, &p->args, s, n);
            llm_json_doc_free(inner);
            llm_json_doc_free(doc);
            if (!ok) {
                fail_pre(p);
                return -1;
            }
        }
        p->args_seen = 1;
        if (p->have_name) commit(p);
    }
    return 0;
}

static void object_end(llm_tool_parser *p) {
    if (!p->committed) {
        if (!p->have_name) {
            fail_pre(p);
            return;
        }
        /* a function without parameters: models often leave "arguments" out */
        llm_strbuf_clear(&p->args);
        app(p, &p->args, "{}", 2);
        p->args_seen = 1;
        commit(p);
    }
    call_end(p);
    llm_strbuf_clear(&p->raw);
    call_reset(p);
    p->mode = M_TAIL;
    p->mpos = 0;
    p->tail_semi = 0;
}

static void call_byte(llm_tool_parser *p, unsigned char c) {
    int ws = jv_ws(c);
    /* Streamed argument bytes are already out; everything else is held until the call is decided. */
    if (!(p->ost == O_VAL && p->args_streaming)) app(p, &p->raw, &c, 1);
    switch (p->ost) {
    case O_OPEN:
        if (ws) return;
        if (c == '{')
            p->ost = O_FIRST;
        else
            fail(p);
        return;
    case O_FIRST:
    case O_KEYSTART:
        if (ws) return;
        if (c == '"')
            start_key(p, c);
        else if (c == '}' && p->ost == O_FIRST)
            object_end(p);
        else
            fail(p);
        return;
    case O_KEY: {
        int r = jv_push(&p->v, c);
        app(p, &p->tok, &c, 1);
        if (r == JV_ERROR)
            fail(p);
        else if (r == JV_DONE)
            key_end(p);
        return;
    }
    case O_COLON:
        if (ws) return;
        if (c == ':')
            p->ost = O_VSTART;
        else
            fail(p);
        return;
    case O_VSTART:
        if (!ws) start_value(p, c);
        return;
    case O_VAL: {
        int r = jv_push(&p->v, c);
        if (r == JV_ERROR) {
            if (p->args_streaming) {
                /* The arguments stopped being JSON mid-stream: the call ends with what was sent,
                 * and the offending byte onwards is text. */
                p->args_streaming = 0;
                app(p, &p->raw, &c, 1);
            }
            fail(p);
            return;
        }
        if (r != JV_DONE_BEFORE) keep(p, c);
        if (r == JV_MORE) return;
        if (value_end(p) != 0) return;
        if (r == JV_DONE) return;
        /* a top-level number ended before c: c is the object's next token */
    }
        /* fall through */
    case O_COMMA:
        if (ws) return;
        if (c == '<' && p->committed && p->fmt == LLM_TOOLFMT_HERMES) {
            /* A common slip: the call object's closing brace is missing before "</tool_call>". The
             * arguments are complete, so the call stands; the tail decides what the '<' starts. */
            call_end(p);
            call_reset(p);
            p->mode = M_TAIL;
            p->mpos = 1;
            return;
        }
        if (c == ',')
            p->ost = O_KEYSTART;
        else if (c == '}')
            object_end(p);
        else
            fail(p);
        return;
    default:
        fail(p);
        return;
    }
}

static void hermes_text_byte(llm_tool_parser *p, unsigned char c) {
    if (c == (unsigned char)OPEN_TAG[p->mpos]) {
        if (++p->mpos == LEN(OPEN_TAG)) {
            p->mode = M_CALL;
            call_reset(p);
            llm_strbuf_clear(&p->raw);
            app(p, &p->raw, OPEN_TAG, LEN(OPEN_TAG));
            p->mpos = 0;
        }
        return;
    }
    /* '<' occurs only at the start of "<tool_call>", so after a mismatch the one prefix that can
     * still be held is a fresh '<'. */
    content(p, OPEN_TAG, p->mpos);
    p->mpos = 0;
    if (c == '<')
        p->mpos = 1;
    else
        content(p, (const char *)&c, 1);
}

static void hermes_tail_byte(llm_tool_parser *p, unsigned char c) {
    app(p, &p->raw, &c, 1);
    if (p->mpos == 0 && jv_ws(c)) return;
    if (c == (unsigned char)CLOSE_TAG[p->mpos]) {
        if (++p->mpos == LEN(CLOSE_TAG)) {
            llm_strbuf_clear(&p->raw);
            p->mode = M_TEXT;
            p->mpos = 0;
        }
        return;
    }
    /* No closing tag: the call stands, and what followed it is text (maybe the next block). */
    release_raw(p, 0);
}

static void llama_lead_byte(llm_tool_parser *p, unsigned char c) {
    app(p, &p->raw, &c, 1);
    if (p->mpos > 0 || (!p->tag_done && c == (unsigned char)PYTHON_TAG[0])) {
        if (c != (unsigned char)PYTHON_TAG[p->mpos]) {
            fail_pre(p);
        } else if (++p->mpos == LEN(PYTHON_TAG)) {
            p->tag_done = 1;
            p->mpos = 0;
        }
        return;
    }
    if (jv_ws(c)) return;
    if (c == '{') {
        call_reset(p);
        p->mode = M_CALL;
        p->ost = O_FIRST;
    } else {
        fail_pre(p);
    }
}

static void llama_tail_byte(llm_tool_parser *p, unsigned char c) {
    app(p, &p->raw, &c, 1);
    if (jv_ws(c)) return;
    if (c == ';' && !p->tail_semi) {
        p->tail_semi = 1;
    } else if (c == '{') {
        /* the next call; raw keeps the separator so that it is released if this one fails */
        call_reset(p);
        p->mode = M_CALL;
        p->ost = O_FIRST;
    } else {
        fail_pre(p);
    }
}

static void step(llm_tool_parser *p, unsigned char c) {
    if (p->oom) return; /* buffers may be incomplete; feed reports the failure */
    switch (p->mode) {
    case M_TEXT:
        hermes_text_byte(p, c);
        return;
    case M_LEAD:
        llama_lead_byte(p, c);
        return;
    case M_CALL:
        call_byte(p, c);
        return;
    case M_TAIL:
        if (p->fmt == LLM_TOOLFMT_HERMES)
            hermes_tail_byte(p, c);
        else
            llama_tail_byte(p, c);
        return;
    default:
        content(p, (const char *)&c, 1);
        return;
    }
}

llm_tool_parser *llm_tool_parser_create(llm_tool_format fmt) {
    if (fmt != LLM_TOOLFMT_NONE && fmt != LLM_TOOLFMT_HERMES && fmt != LLM_TOOLFMT_LLAMA3_JSON) return NULL;
    llm_tool_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->fmt = fmt;
    p->mode = fmt == LLM_TOOLFMT_HERMES ? M_TEXT : fmt == LLM_TOOLFMT_LLAMA3_JSON ? M_LEAD : M_PASS;
    call_reset(p);
    return p;
}

void llm_tool_parser_free(llm_tool_parser *p) {
    if (!p) return;
    llm_strbuf_free(&p->tok);
    llm_strbuf_free(&p->name);
    llm_strbuf_free(&p->args);
    llm_strbuf_free(&p->raw);
    llm_strbuf_free(&p->replay);
    llm_strbuf_free(&p->out);
    free(p);
}

int llm_tool_parser_feed(llm_tool_parser *p, const char *text, size_t len, llm_tool_event_fn fn, void *user) {
    if (!p || p->oom) return -1;
    if (p->finished || (!text && len)) return 0;
    p->fn = fn;
    p->user = user;
    size_t i = 0;
    while (!p->oom) {
        unsigned char c;
        if (p->replay_pos < p->replay.len) {
            c = (unsigned char)p->replay.data[p->replay_pos++];
        } else {
            llm_strbuf_clear(&p->replay);
            p->replay_pos = 0;
            if (i >= len) break;
            c = (unsigned char)text[i++];
        }
        step(p, c);
    }
    if (!p->oom) flush(p);
    return p->oom ? -1 : 0;
}

int llm_tool_parser_finish(llm_tool_parser *p, llm_tool_event_fn fn, void *user) {
    if (!p || p->oom) return -1;
    if (p->finished) return 0;
    p->fn = fn;
    p->user = user;
    switch (p->mode) {
    case M_TEXT:
        content(p, OPEN_TAG, p->mpos);
        break;
    case M_LEAD:
        content(p, p->raw.data, p->raw.len);
        break;
    case M_CALL:
        if (p->committed)
            call_end(p); /* arguments cut short: the call ends with what was generated */
        else
            content(p, p->raw.data, p->raw.len);
        break;
    default:
        break; /* M_TAIL: a complete call's unfinished ending is framing; M_PASS holds nothing */
    }
    llm_strbuf_clear(&p->raw);
    p->finished = 1;
    if (!p->oom) flush(p);
    return p->oom ? -1 : 0;
}

/* ---------------------------------------------------------------- whole output */

typedef struct {
    llm_strbuf content;
    llm_strbuf args;
    llm_tool_call *calls;
    size_t n, cap;
    int oom;
} collector;

static void collect_event(const llm_tool_event *ev, void *user) {
    collector *c = user;
    switch (ev->kind) {
    case LLM_TOOL_EV_CONTENT:
        llm_strbuf_append(&c->content, ev->text, ev->len);
        break;
    case LLM_TOOL_EV_CALL_BEGIN: {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 4;
            llm_tool_call *grown = realloc(c->calls, cap * sizeof *grown);
            if (!grown) {
                c->oom = 1;
                return;
            }
            c->calls = grown;
            c->cap = cap;
        }
        llm_tool_call *call = &c->calls[c->n++];
        call->arguments = NULL;
        call->name = malloc(ev->len + 1);
        if (!call->name) {
            c->oom = 1;
            return;
        }
        memcpy(call->name, ev->text, ev->len);
        call->name[ev->len] = '\0';
        llm_strbuf_clear(&c->args);
        break;
    }
    case LLM_TOOL_EV_ARGS:
        llm_strbuf_append(&c->args, ev->text, ev->len);
        break;
    case LLM_TOOL_EV_CALL_END:
        if (c->n == 0 || c->args.oom) {
            c->oom = 1;
            return;
        }
        c->calls[c->n - 1].arguments = llm_strbuf_detach(&c->args, NULL);
        if (!c->calls[c->n - 1].arguments) c->oom = 1;
        break;
    }
}

void llm_tool_calls_free(llm_tool_call *calls, size_t n_calls) {
    if (!calls) return;
    for (size_t i = 0; i < n_calls; i++) {
        free(calls[i].name);
        free(calls[i].arguments);
    }
    free(calls);
}

int llm_tool_parse_all(llm_tool_format fmt, const char *text, size_t len, char **content_out,
                       llm_tool_call **calls, size_t *n_calls) {
    *content_out = NULL;
    *calls = NULL;
    *n_calls = 0;
    collector c = {LLM_STRBUF_INIT, LLM_STRBUF_INIT, NULL, 0, 0, 0};
    llm_tool_parser *p = llm_tool_parser_create(fmt);
    int rc = p ? 0 : -1;
    if (rc == 0) rc = llm_tool_parser_feed(p, text, len, collect_event, &c);
    if (rc == 0) rc = llm_tool_parser_finish(p, collect_event, &c);
    llm_tool_parser_free(p);
    char *content = NULL;
    if (rc == 0 && !c.oom) content = llm_strbuf_detach(&c.content, NULL); /* "" when empty */
    llm_strbuf_free(&c.content);
    llm_strbuf_free(&c.args);
    if (!content) {
        llm_tool_calls_free(c.calls, c.n);
        return -1;
    }
    if (c.n == 0) {
        free(c.calls);
        c.calls = NULL;
    }
    *content_out = content;
    *calls = c.calls;
    *n_calls = c.n;
    return 0;
}
