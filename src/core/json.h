/*
 * json.h - strict RFC 8259 JSON parser producing an immutable document tree.
 *
 * Used for model configs, tokenizer files and safetensors headers, i.e.
 * input that may come from anywhere. Hence:
 *   - strict: no comments, trailing commas, NaN/Infinity, leading zeros or
 *     '+', unescaped control characters, invalid UTF-8, lone surrogates,
 *     byte order marks or trailing garbage; whitespace is only
 *     space/tab/CR/LF; any value type is accepted at the top level;
 *   - hostile input is survivable: the parser never recurses, nesting is
 *     capped (LLM_JSON_DEFAULT_MAX_DEPTH), and all errors are returned,
 *     never printed or aborted on;
 *   - precise errors: "line L, column C (byte B): what was expected".
 *
 * All nodes and decoded strings of a document live in one block list owned
 * by the llm_json_doc; every pointer obtained from a document stays valid
 * until llm_json_doc_free(). The source text is not referenced after
 * llm_json_parse() returns and may be freed right away.
 *
 * A parsed document is never modified (object lookup indexes are built
 * during parsing, not lazily), so one document may be read from several
 * threads at once without locking.
 *
 * Accessors are NULL-tolerant so lookups can be chained:
 *     llm_json_int64(llm_json_get(llm_json_get(root, "a"), "b"), &v)
 * returns -1 if "a" or "b" is missing or of the wrong type.
 */
#ifndef LLAMAC_CORE_JSON_H
#define LLAMAC_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"

typedef enum {
    LLM_JSON_NULL,
    LLM_JSON_FALSE,
    LLM_JSON_TRUE,
    LLM_JSON_NUMBER,
    LLM_JSON_STRING,
    LLM_JSON_ARRAY,
    LLM_JSON_OBJECT,
    /* Not a JSON type: what llm_json_type_of(NULL) returns, so that a
     * missing member (llm_json_get() == NULL) is distinguishable from an
     * explicit null. */
    LLM_JSON_INVALID
} llm_json_type;

typedef struct llm_json llm_json;         /* one value, owned by its document */
typedef struct llm_json_doc llm_json_doc; /* a parsed document */

/* Containers nested deeper than this are rejected by llm_json_parse(). */
#define LLM_JSON_DEFAULT_MAX_DEPTH 256

typedef struct {
    /* Maximum number of simultaneously open arrays/objects; a document
     * whose nesting exceeds it fails to parse. 0 means the default. */
    size_t max_depth;
} llm_json_parse_options;

/*
 * Parses text[0..len) (need not be NUL-terminated; a raw NUL byte anywhere
 * is an error, while "\u0000" inside a string is fine).
 * On success stores a new document in *out and returns 0; free it with
 * llm_json_doc_free(). On failure returns -1, sets *out to NULL and, if
 * err != NULL and err_cap > 0, writes a NUL-terminated (possibly truncated)
 * message such as
 *     "line 3, column 17 (byte 45): expected ',' or '}' after object member"
 * Lines are 1-based and counted by '\n'; columns are 1-based and counted in
 * UTF-8 characters (not bytes) from the start of the line; the byte offset
 * is 0-based. At end of input the position is the one just past the last byte.
 */
int llm_json_parse(const char *text, size_t len, llm_json_doc **out, char *err, size_t err_cap);

/* Same, with options (opts may be NULL for the defaults). */
int llm_json_parse_ex(const char *text, size_t len, const llm_json_parse_options *opts, llm_json_doc **out,
                      char *err, size_t err_cap);

void llm_json_doc_free(llm_json_doc *doc); /* NULL is fine */

/* The top-level value (never NULL for a successfully parsed document). */
const llm_json *llm_json_root(const llm_json_doc *doc);

/* Type of v; LLM_JSON_INVALID if v is NULL. */
llm_json_type llm_json_type_of(const llm_json *v);

/* "null", "false", "true", "number", "string", "array", "object", or
 * "invalid": for callers' error messages. */
const char *llm_json_type_name(llm_json_type type);

/* Byte offset of the value's first character in the source text (0 for NULL),
 * so callers can report semantic errors at the right place, e.g. with
 * llm_json_line_col(). */
size_t llm_json_offset(const llm_json *v);

/* Converts a byte offset (0 <= offset <= len) in text into a 1-based line and
 * column with the same conventions as parse errors. Returns 0, or -1 (leaving
 * *line and *col untouched) if offset > len or text is NULL while len > 0.
 * line and col may be NULL. Values saturate at INT_MAX. */
int llm_json_line_col(const char *text, size_t len, size_t offset, int *line, int *col);

/* ---- type predicates (all return 0 for NULL) ---- */
int llm_json_is_null(const llm_json *v);
int llm_json_is_bool(const llm_json *v);
int llm_json_is_number(const llm_json *v);
int llm_json_is_string(const llm_json *v);
int llm_json_is_array(const llm_json *v);
int llm_json_is_object(const llm_json *v);

/* ---- containers ---- */

/* Number of members of an object / items of an array; 0 for anything else. */
size_t llm_json_count(const llm_json *v);

/* Member of obj named key (a NUL-terminated UTF-8 string). NULL if obj is not
 * an object or has no such member. With duplicate keys the last one wins
 * (like Python's json module). Objects with more than 16 members get a
 * sorted index at parse time, so lookups cost O(log n) key comparisons
 * (about 15 for a 20k-tensor safetensors header) whatever the input. */
const llm_json *llm_json_get(const llm_json *obj, const char *key);

/* Same with an explicit key length, for keys that may contain NUL bytes. */
const llm_json *llm_json_get_n(const llm_json *obj, const char *key, size_t key_len);

/* Key of the i-th member (in document order, duplicates included), decoded
 * and NUL-terminated; *key_len (if non-NULL) gets its length, which matters
 * if the key contains "\u0000". NULL (and *key_len = 0) if obj is not an
 * object or i is out of range. */
const char *llm_json_key_at(const llm_json *obj, size_t i, size_t *key_len);

/* The i-th item of an array, or the value of the i-th member of an object.
 * NULL for anything else or i out of range. */
const llm_json *llm_json_value_at(const llm_json *obj_or_array, size_t i);

/* ---- scalars ---- */

/* The number as a double (correctly rounded). NAN if v is not a number, so
 * an unchecked misuse shows up instead of passing as a plausible 0.
 * Numbers too large for a double are parse errors; tiny ones round to 0. */
double llm_json_number(const llm_json *v);

/* Exact integer view of a number: returns 0 and sets *out if the number's
 * exact decimal value is an integer that fits int64_t, else returns -1 and
 * leaves *out untouched. Decided from the digits, not from the double, so
 * 9223372036854775807 is exact. Integral values written with a fraction or
 * exponent count: "1e3" -> 1000, "1.50e1" -> 15, "2.0" -> 2, "-0" -> 0;
 * "1.5", "1e-1" and "9223372036854775808" return -1. */
int llm_json_int64(const llm_json *v, int64_t *out);

/* Decoded UTF-8 contents of a string, NUL-terminated. The string may contain
 * NUL bytes (from "\u0000"): *len (if non-NULL) gives the true length.
 * NULL (and *len = 0) if v is not a string. */
const char *llm_json_string(const llm_json *v, size_t *len);

/* Returns 0 and sets *out to 0 or 1 if v is true/false; -1 otherwise. */
int llm_json_bool(const llm_json *v, int *out);

/* ---- writing ---- */

/* Appends s[0..len) to sb as a JSON string literal, quotes included.
 * Escapes '"', '\\' and control characters (short forms \b \f \n \r \t where
 * they exist, else \u00XX); valid UTF-8 is copied through unchanged, and each
 * byte that is not part of valid UTF-8 becomes \ufffd so the output is always
 * valid JSON. Failure is reported through sb->oom. */
void llm_json_escape(llm_strbuf *sb, const char *s, size_t len);

#endif /* LLAMAC_CORE_JSON_H */
