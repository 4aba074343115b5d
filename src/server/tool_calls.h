/*
 * tool_calls.h - tool calls parsed out of a model's generated text, whole or while it streams.
 *
 * Two output conventions are understood:
 *
 *   LLM_TOOLFMT_HERMES (Qwen2.5, Qwen3, QwQ, Hermes-2-Pro): calls are blocks
 *       <tool_call>\n{"name": "fn", "arguments": {...}}\n</tool_call>
 *   anywhere in the text; everything outside blocks is content, as generated: Qwen3's <think>...</think>
 *   and the newline between two blocks included (a caller may drop whitespace-only content).
 *   "arguments" may also be a JSON string holding a JSON object (its decoded text is used).
 *
 *   LLM_TOOLFMT_LLAMA3_JSON (Llama 3.1 / 3.2 with custom tools): the output is a JSON object
 *       {"name": "fn", "parameters": {...}}
 *   optionally preceded by <|python_tag|>, surrounded by whitespace; several calls may follow each
 *   other, separated by ';' (or just whitespace). Only the keys "name" and "parameters" (or
 *   "arguments") are allowed, so a reply that merely is JSON (e.g. {"city": "Paris"}) stays content.
 *
 * In both formats "parameters" and "arguments" are synonyms, the keys may come in any order, and a
 * call without arguments gets "{}".
 *
 * Streaming (llm_tool_parser_feed): content is released as soon as it cannot be the start of a call:
 * HERMES holds back at most a proper prefix of "<tool_call>" (10 bytes); LLAMA3_JSON holds back an
 * output that begins with whitespace / <|python_tag|> / '{' until it is known whether it is a call,
 * and releases everything at once when it is not. A call is committed the moment its name is known
 * and its arguments object starts: CALL_BEGIN (name), then ARGS fragments as the arguments are
 * generated (their concatenation is exactly the arguments' JSON text as generated), then CALL_END
 * when the call's object closes. Arguments that cannot be streamed as they come (a JSON string, to be
 * decoded; an object generated before the name) are complete when the call is committed and come as
 * one ARGS fragment. Until that commitment, a call that turns out malformed (not JSON,
 * no name, wrong types, other keys for LLAMA3_JSON) releases all text held for it as content, at the
 * byte where that becomes known; HERMES then keeps looking for blocks in the text after "<".
 *
 * After commitment nothing can be taken back, so (like OpenAI, whose documentation warns that
 * arguments need not be valid JSON):
 *   - arguments cut short by the end of output, or by a byte that breaks their JSON syntax, end the
 *     call with the prefix emitted so far (CALL_END); after a syntax break, the rest is content.
 *     The arguments are validated byte by byte with the rules of core/json.h (strings, escapes,
 *     UTF-8, surrogates, numbers, nesting <= LLM_JSON_DEFAULT_MAX_DEPTH), except that a number too
 *     large for a double is not detected;
 *   - text after a committed call that does not fit the format (no "</tool_call>", junk after a
 *     Llama call) is content; the call stands. A call object missing only its closing brace before
 *     "</tool_call>" (a common slip) is accepted as if the brace were there;
 *   - at the end of output, a truncated but so far well-formed call ending (e.g. "}\n</tool_")
 *     is dropped: it is framing, not content.
 * An unterminated block whose JSON never reached the arguments (or a name) is content.
 *
 * The parser never fails on input: anything a model can generate is either content or calls, and no
 * byte of content is ever lost. Only allocation failure is an error.
 */
#ifndef LLAMAC_SERVER_TOOL_CALLS_H
#define LLAMAC_SERVER_TOOL_CALLS_H

#include <stddef.h>

typedef enum { LLM_TOOLFMT_NONE, LLM_TOOLFMT_HERMES, LLM_TOOLFMT_LLAMA3_JSON } llm_tool_format;

/* The format a chat template's tool calls use, from its Jinja source (NULL -> NONE):
 * HERMES if it mentions "<tool_call>"; LLAMA3_JSON if it mentions "<|python_tag|>", or both
 * "Given the following functions" and "parameters" (Llama 3.2 has no python tag); else NONE. */
llm_tool_format llm_tool_format_for_template(const char *chat_template_source);

/* One parsed call. Both strings are malloc'd, NUL-terminated and owned by the array they are in. */
typedef struct llm_tool_call {
    char *name;      /* decoded function name (never empty) */
    char *arguments; /* the arguments object's JSON text as generated ("{}" if none was given) */
} llm_tool_call;

typedef enum {
    LLM_TOOL_EV_CONTENT,    /* text: a piece of content */
    LLM_TOOL_EV_CALL_BEGIN, /* text: the function name (decoded); starts call `index` */
    LLM_TOOL_EV_ARGS,       /* text: the next fragment of call `index`'s arguments JSON */
    LLM_TOOL_EV_CALL_END    /* text: NULL, len 0 */
} llm_tool_event_kind;

typedef struct llm_tool_event {
    llm_tool_event_kind kind;
    int index;        /* tool call index, 0.. in order of appearance (-1 for CONTENT) */
    const char *text; /* valid only during the callback; not NUL-terminated */
    size_t len;
} llm_tool_event;

typedef void (*llm_tool_event_fn)(const llm_tool_event *ev, void *user);

typedef struct llm_tool_parser llm_tool_parser;

/* A parser for one generated output. LLM_TOOLFMT_NONE passes everything through as content.
 * NULL on out of memory (or an unknown format). Free with llm_tool_parser_free (NULL is fine). */
llm_tool_parser *llm_tool_parser_create(llm_tool_format fmt);
void llm_tool_parser_free(llm_tool_parser *p);

/* Appends generated text (any bytes, any split; UTF-8 characters may be split across calls) and
 * delivers the events it makes final, in order, through fn (NULL: discarded). Consecutive bytes of
 * one kind are merged, so a feed gives at most a few events. Returns 0, or -1 on out of memory
 * (the parser is then unusable: later calls return -1 too). */
int llm_tool_parser_feed(llm_tool_parser *p, const char *text, size_t len, llm_tool_event_fn fn, void *user);

/* End of output: releases what was held (as content, or the end of a call), see the header comment.
 * Afterwards feed/finish do nothing more (they return 0). 0, or -1 on out of memory. */
int llm_tool_parser_finish(llm_tool_parser *p, llm_tool_event_fn fn, void *user);

/* A whole output at once (non-streamed responses), through the same parser, so both always agree.
 * (*content is a C string: a NUL byte in the input's content would cut it; the events keep lengths.)
 * On success returns 0 with *content (malloc'd, NUL-terminated, possibly "") and *calls (malloc'd
 * array of *n_calls calls, NULL when there are none); free them with llm_tool_calls_free and free().
 * On out of memory returns -1 with *content = NULL, *calls = NULL, *n_calls = 0. */
int llm_tool_parse_all(llm_tool_format fmt, const char *text, size_t len, char **content,
                       llm_tool_call **calls, size_t *n_calls);

/* Frees the array from llm_tool_parse_all and its strings. NULL is fine. */
void llm_tool_calls_free(llm_tool_call *calls, size_t n_calls);

#endif /* LLAMAC_SERVER_TOOL_CALLS_H */
