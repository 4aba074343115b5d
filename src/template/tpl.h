/*
 * tpl.h — internal interface of the chat-template engine (a Jinja2 interpreter).
 *
 * Pipeline: lexer (source -> tokens, with jinja2's whitespace control: trim_blocks, lstrip_blocks,
 * "-" and "+" markers) -> parser (tokens -> AST, every node with its line:col) -> tree-walking
 * evaluator over a small Python-like value system.
 *
 * Memory: a parsed template owns one arena (AST, decoded literals). A render owns another arena for
 * every value it creates; it is released in one go when the render ends, so values never need
 * freeing and nothing can leak. Lists, dicts and strings are never mutated once built (the
 * transformers sandbox forbids list.append and friends); what does change is a namespace's attributes
 * (assigned by templates), an iterator's position, loop.changed()'s memory and a joiner's state.
 *
 * All names here are prefixed tpl_ (types, functions) or TV_/N_/TK_ (enums) to stay out of other
 * subsystems' way inside libllamac.
 */
#ifndef LLM_TEMPLATE_TPL_H
#define LLM_TEMPLATE_TPL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/strbuf.h"
#include "llamac.h"

/* ---- limits ------------------------------------------------------------------------------------ */

#define TPL_MAX_PARSE_DEPTH   200    /* nested expressions + blocks in the source */
#define TPL_MAX_EVAL_DEPTH    600    /* evaluator recursion (expressions, blocks, macro calls) */
#define TPL_MAX_VALUE_DEPTH   500    /* nesting of values walked by repr/tojson/equality */
#define TPL_MAX_RANGE         100000 /* range() size, as jinja2's sandbox (MAX_RANGE) */
#define TPL_DEFAULT_MAX_STEPS 10000000
#define TPL_DEFAULT_MAX_BYTES ((int64_t)256 << 20)

/* ---- arena ------------------------------------------------------------------------------------- */

typedef struct tpl_chunk tpl_chunk;
typedef struct tpl_arena {
    tpl_chunk *head;
    size_t used;  /* bytes handed out, plus chunk overhead */
    size_t limit; /* 0 = unlimited */
    int failed;   /* 1: limit reached, 2: malloc failed */
} tpl_arena;

void *tpl_alloc(tpl_arena *a, size_t n); /* zeroed, 16-byte aligned; NULL on limit/OOM (a->failed) */
void *tpl_realloc(tpl_arena *a, void *old, size_t old_n, size_t new_n);
char *tpl_strdup(tpl_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void tpl_arena_free(tpl_arena *a);

/* ---- strings and text helpers (text.c) ---------------------------------------------------------- */

typedef struct tpl_str {
    const char *p;
    size_t n;
} tpl_str;

/* Decodes one UTF-8 code point at s[*i] (valid UTF-8 assumed, as every string in the engine is);
 * advances *i. */
uint32_t tpl_utf8_next(const char *s, size_t n, size_t *i);
size_t tpl_utf8_put(uint32_t cp, char out[4]);
int tpl_utf8_valid(const char *s, size_t n, size_t *bad_offset);
size_t tpl_utf8_count(const char *s, size_t n); /* code points */
/* Byte offset of code point index cp_index (clamped to n). */
size_t tpl_utf8_offset(const char *s, size_t n, size_t cp_index);
int tpl_is_ascii(const char *s, size_t n);

int tpl_py_isspace(uint32_t cp); /* str.isspace() and re's \s */
uint32_t tpl_cp_upper(uint32_t cp);
uint32_t tpl_cp_lower(uint32_t cp);
uint32_t tpl_cp_title(uint32_t cp);
int tpl_cp_is_cased(uint32_t cp);
int tpl_cp_is_upper(uint32_t cp);
int tpl_cp_is_lower(uint32_t cp);
int tpl_cp_is_alpha(uint32_t cp);
int tpl_cp_is_digit(uint32_t cp);   /* str.isdigit */
int tpl_cp_is_decimal(uint32_t cp); /* str.isdecimal (what int() accepts) */
int tpl_cp_is_alnum(uint32_t cp);
int tpl_cp_is_word(uint32_t cp); /* re's \w */
int tpl_cp_printable(uint32_t cp);

/* Python repr(float) ("1.0", "1e-05", "inf", "nan"). */
void tpl_format_float(llm_strbuf *sb, double x);
/* Python repr(str): quotes chosen as Python does, escapes for non-printables. */
void tpl_format_repr_str(llm_strbuf *sb, const char *s, size_t n);
/* json.dumps string: escapes as Python's json module (ensure_ascii as given). */
void tpl_format_json_str(llm_strbuf *sb, const char *s, size_t n, int ensure_ascii);

/* ---- values ------------------------------------------------------------------------------------ */

typedef enum tv_kind {
    TV_UNDEF,
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST, /* list; flags tell tuple / dict view / range */
    TV_DICT,
    TV_NS,   /* jinja2 namespace(): a dict whose attributes can be assigned */
    TV_ITER, /* one-shot iterator (generator, reversed(...)): truthy, no len, exhausts */
    TV_MACRO,
    TV_FUNC, /* built-in function or bound method */
    TV_LOOP, /* the loop variable of a for loop */
} tv_kind;

/* List flags */
#define TVF_TUPLE  1u
#define TVF_ITEMS  2u  /* dict.items() view */
#define TVF_KEYS   4u  /* dict.keys() view */
#define TVF_VALUES 8u  /* dict.values() view */
#define TVF_RANGE  16u /* range object */
/* String flag: known to be pure ASCII (code point index == byte index). */
#define TVF_ASCII 32u

/* Undefined kinds (tv.aux), deciding the message an undefined raises when misused. */
enum {
    TU_NAME,   /* "'x' is undefined" */
    TU_ATTR,   /* "'dict object' has no attribute 'x'" (flags: the object's kind | list subtype << 4) */
    TU_HINT,   /* s: the whole message ("list object has no element 5", "No first item, ...") */
    TU_UNSAFE, /* s: the whole message; a SecurityError when used */
};

typedef struct tpl_list tpl_list;
typedef struct tpl_dict tpl_dict;
typedef struct tpl_iter tpl_iter;
typedef struct tpl_macro tpl_macro;
typedef struct tpl_func tpl_func;
typedef struct tpl_loop tpl_loop;

typedef struct tv {
    uint8_t kind;
    uint8_t flags;
    uint8_t aux;
    union {
        int b;
        int64_t i;
        double f;
        tpl_str s; /* strings; an undefined's name or message */
        tpl_list *list;
        tpl_dict *dict; /* TV_DICT and TV_NS */
        tpl_iter *iter;
        tpl_macro *macro;
        tpl_func *func;
        tpl_loop *loop;
    } u;
} tv;

struct tpl_list {
    size_t n, cap;
    tv *items;
    int64_t range_start, range_stop, range_step; /* TVF_RANGE only, for repr */
};

struct tpl_dict {
    size_t n, cap;
    tv *keys;
    tv *vals;
    uint32_t *index; /* open addressing over keys once n > 8; slot = entry + 1, 0 = empty */
    size_t index_cap;
};

struct tpl_iter {
    tpl_list *items;
    size_t pos;
    const char *type_name; /* "generator", "list_reverseiterator", ... */
};

typedef struct tpl_node tpl_node;
typedef struct tpl_scope tpl_scope;

struct tpl_macro {
    const tpl_node *def; /* N_MACRO, or N_CALL_BLOCK for a caller */
    tpl_scope *closure;
    tv caller; /* for macros invoked by a call block: the caller macro */
};

struct tpl_func {
    int id;  /* tpl_builtin */
    tv self; /* bound object for methods, state for others */
    tpl_str name;
};

struct tpl_loop {
    tpl_list *seq;
    size_t index0;
    int depth0;
    tv last_changed;
    int has_changed;
};

/* ---- AST --------------------------------------------------------------------------------------- */

typedef enum tpl_node_kind {
    /* statements */
    N_DATA,         /* s: literal text */
    N_OUTPUT,       /* a: expression to print */
    N_IF,           /* a: test, body, else_body (an elif is an N_IF alone in else_body, op=1) */
    N_FOR,          /* a: target, b: iterable, c: filter test or NULL, body, else_body */
    N_SET,          /* a: target, b: value */
    N_SET_BLOCK,    /* a: target, b: filter chain (input NULL) or NULL, body */
    N_MACRO,        /* s: name, params (N_PARAM), body; op: bit 1 uses varargs, 2 kwargs, 4 caller */
    N_CALL_BLOCK,   /* a: the call expression, params, body */
    N_FILTER_BLOCK, /* b: filter chain (input NULL), body */
    N_WITH,         /* params (N_PARAM: s name, a value), body */
    N_BREAK,
    N_CONTINUE,
    N_SCOPE_BODY, /* body rendered in place (generation, block) */
    N_PARAM,      /* s: name, a: default/value or NULL */
    /* expressions */
    N_CONST,   /* value */
    N_NAME,    /* s */
    N_NSREF,   /* s: namespace variable, s2: attribute (assignment target) */
    N_GETATTR, /* a: object, s: attribute */
    N_GETITEM, /* a: object, b: key (or N_SLICE) */
    N_SLICE,   /* a, b, c: start, stop, step (each may be NULL) */
    N_CALL,    /* a: callee, args, kwargs (N_PARAM) */
    N_FILTER,  /* a: input (NULL inside filter blocks), s: name, op: filter id, args, kwargs */
    N_TEST,    /* a: operand, s: name, op: test id, args, kwargs */
    N_NEG,
    N_POS,
    N_NOT,
    N_BINOP,  /* op: TK op code, a, b */
    N_CONCAT, /* args */
    N_AND,
    N_OR,
    N_COMPARE, /* a: first operand, args: N_OPERAND (op, a) */
    N_OPERAND,
    N_CONDEXPR, /* a: test, b: then, c: else or NULL */
    N_LIST,     /* args */
    N_TUPLE,    /* args */
    N_DICT,     /* args: N_PAIR (a key, b value) */
    N_PAIR,
} tpl_node_kind;

struct tpl_node {
    uint8_t kind;
    uint8_t soft; /* inside if/conditional: unknown filters/tests fail at runtime, as in jinja2 */
    int op;
    int line, col;
    tpl_node *a, *b, *c;
    tpl_node **args;
    size_t n_args;
    tpl_node **kwargs;
    size_t n_kwargs;
    tpl_node **body;
    size_t n_body;
    tpl_node **else_body;
    size_t n_else;
    tpl_str s, s2;
    tv value;
};

/* Operator codes shared by tokens and N_BINOP / N_OPERAND. */
enum {
    OP_NONE,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_TILDE,
    OP_LBRACKET,
    OP_RBRACKET,
    OP_LPAREN,
    OP_RPAREN,
    OP_LBRACE,
    OP_RBRACE,
    OP_EQ,
    OP_NE,
    OP_GT,
    OP_GTEQ,
    OP_LT,
    OP_LTEQ,
    OP_ASSIGN,
    OP_DOT,
    OP_COLON,
    OP_PIPE,
    OP_COMMA,
    OP_SEMICOLON,
    OP_IN,
    OP_NOTIN, /* comparison operands only */
};

/* ---- lexer ------------------------------------------------------------------------------------- */

typedef enum tpl_token_type {
    TK_DATA,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
    TK_EOF,
} tpl_token_type;

typedef struct tpl_token {
    uint8_t type;
    uint8_t op;
    int line, col;
    tpl_str s; /* data text, name, decoded string */
    int64_t i;
    double f;
} tpl_token;

typedef struct tpl_error {
    llm_status status;
    char msg[640]; /* "line L, column C: message" */
} tpl_error;

int tpl_error_set(tpl_error *e, llm_status status, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int tpl_error_vset(tpl_error *e, llm_status status, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* Lexes src (already newline-normalised, trailing newline dropped) into tokens in the arena. */
int tpl_lex(tpl_arena *a, const char *src, size_t len, tpl_token **out, size_t *n_out, tpl_error *err);

/* ---- parser ------------------------------------------------------------------------------------ */

/* Parses a whole template (raw source as given to llm_chat_template_parse). *root is an N_SCOPE_BODY. */
int tpl_parse(tpl_arena *a, const char *source, size_t len, tpl_node **root, tpl_error *err);

/* Filter / test ids: >= 0 implemented; TPL_UNSUPPORTED known to jinja2 but not implemented here;
 * TPL_UNKNOWN not a jinja2 name at all. */
#define TPL_UNKNOWN     (-1)
#define TPL_UNSUPPORTED (-2)
int tpl_filter_lookup(const char *name, size_t n);
int tpl_test_lookup(const char *name, size_t n);

/* ---- rendering --------------------------------------------------------------------------------- */

typedef struct tpl_kwarg {
    tpl_str name;
    tv value;
} tpl_kwarg;

typedef struct tpl_ctx {
    tpl_arena arena;
    llm_strbuf *out;      /* where output goes now (a macro call swaps in its own buffer) */
    size_t capture_bytes; /* bytes held by buffers of macro calls / set blocks in progress */
    size_t max_bytes;
    int64_t steps, max_steps;
    int depth;
    int64_t now_unix;
    const char *vars_src; /* the vars JSON text, to tell 1 from 1.0 */
    size_t vars_len;
    const tpl_node *cur; /* the node being evaluated: the position of errors raised without one */
    tpl_error err;
    int failed;
} tpl_ctx;

/* Records the first error (at node n's position; n may be NULL) and returns -1. */
int tpl_fail(tpl_ctx *c, const tpl_node *n, llm_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tpl_oom(tpl_ctx *c, const tpl_node *n); /* arena limit or malloc failure */
/* Charges work: 1 step per call plus 1 per 256 bytes. Returns -1 (error set) when over budget. */
int tpl_charge(tpl_ctx *c, const tpl_node *n, size_t bytes);
/* Checks output growth against the memory budget. */
int tpl_check_out(tpl_ctx *c, const tpl_node *n);
/* -1 (memory-limit error set) when a scratch buffer outgrew the render's memory budget. */
int tpl_sb_over(tpl_ctx *c, const tpl_node *n, const llm_strbuf *sb);

int tpl_render_root(tpl_ctx *c, const tpl_node *root, const tv *vars_dict);

/* Calls any callable value (macro, built-in) with evaluated arguments. */
int tpl_call_value(tpl_ctx *c, const tpl_node *n, tv callee, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *out);

/* ---- values (value.c) -------------------------------------------------------------------------- */

static inline tv tv_none(void) {
    tv v = {TV_NONE, 0, 0, {0}};
    return v;
}
static inline tv tv_bool(int b) {
    tv v = {TV_BOOL, 0, 0, {0}};
    v.u.b = b ? 1 : 0;
    return v;
}
static inline tv tv_int(int64_t i) {
    tv v = {TV_INT, 0, 0, {0}};
    v.u.i = i;
    return v;
}
static inline tv tv_float(double f) {
    tv v = {TV_FLOAT, 0, 0, {0}};
    v.u.f = f;
    return v;
}
static inline tv tv_str(const char *p, size_t n) {
    tv v = {TV_STR, 0, 0, {0}};
    v.u.s.p = p ? p : "";
    v.u.s.n = n;
    return v;
}
static inline tv tv_undef(int mode, const char *p, size_t n) {
    tv v = {TV_UNDEF, 0, (uint8_t)mode, {0}};
    v.u.s.p = p ? p : "";
    v.u.s.n = n;
    return v;
}
static inline int tv_is_num(tv v) {
    return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL;
}
static inline double tv_num(tv v) {
    return v.kind == TV_FLOAT ? v.u.f : v.kind == TV_INT ? (double)v.u.i : (double)v.u.b;
}

tv tv_list_val(tpl_list *l, unsigned flags);
tv tv_dict_val(tpl_dict *d);
tv tv_cstr(const char *s); /* static strings */

tpl_list *tpl_list_new(tpl_ctx *c, size_t cap);
int tpl_list_push(tpl_ctx *c, tpl_list *l, tv v);
tpl_dict *tpl_dict_new(tpl_ctx *c);
int tpl_dict_set(tpl_ctx *c, tpl_dict *d, tv key, tv val);
tv *tpl_dict_find(const tpl_dict *d, tv key);
int tpl_key_hashable(tv key);
tv *tpl_dict_find_str(const tpl_dict *d, const char *p, size_t n);

/* Copies bytes into the arena as a string value. */
int tpl_new_str(tpl_ctx *c, const tpl_node *n, const char *p, size_t len, tv *out);
int tpl_sb_to_str(tpl_ctx *c, const tpl_node *n, llm_strbuf *sb, tv *out); /* frees sb */

int tv_truthy(tv v);
const char *tv_type_name(tv v); /* Python's type(x).__name__ */
/* Python ==; returns 1/0, or -1 with an error (nesting too deep). */
int tv_eq(tpl_ctx *c, const tpl_node *n, tv a, tv b);
/* Python a OP b for OP in < <= > >=; *res 1/0. */
int tv_order(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, int *res);

int tv_write_str(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb);  /* str(v) */
int tv_write_repr(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb); /* repr(v) */
int tv_to_str(tpl_ctx *c, const tpl_node *n, tv v, tv *out);            /* str(v) as a value */

typedef struct tpl_json_opts {
    int ensure_ascii;
    int indent_set; /* indent is not None */
    tpl_str indent; /* the indent string */
    tpl_str item_sep, key_sep;
    int sort_keys;
} tpl_json_opts;
int tv_write_json(tpl_ctx *c, const tpl_node *n, tv v, const tpl_json_opts *o, llm_strbuf *sb);

int tv_len(tpl_ctx *c, const tpl_node *n, tv v, int64_t *out);
/* Materialises the items of an iterable (list items, dict keys, string characters...); iterators
 * are consumed. Undefined is empty. */
int tv_items(tpl_ctx *c, const tpl_node *n, tv v, tpl_list **out);
int tv_contains(tpl_ctx *c, const tpl_node *n, tv container, tv item, int *res);

/* x.name (attribute first, then item) and x[key] (item first, then attribute). */
int tv_getattr(tpl_ctx *c, const tpl_node *n, tv obj, tpl_str name, tv *out);
int tv_getitem(tpl_ctx *c, const tpl_node *n, tv obj, tv key, tv *out);
int tv_slice(tpl_ctx *c, const tpl_node *n, tv obj, tv start, tv stop, tv step, tv *out);

/* The error an undefined raises when it is used (its message, at node n). */
int tpl_undefined_error(tpl_ctx *c, const tpl_node *n, tv u);

int tv_from_json(tpl_ctx *c, const void *json_value, tv *out);

/* Python's object_type_repr ("dict object", "None", ...). */
const char *tv_object_type_repr(tv v);

/* Binary arithmetic (op: OP_ADD...OP_POW). */
int tv_binop(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, tv *out);

/* ---- filters, tests, methods, globals ---------------------------------------------------------- */

int tpl_apply_filter(tpl_ctx *c, const tpl_node *n, int id, tv in, const tv *args, size_t nargs,
                     const tpl_kwarg *kw, size_t nkw, tv *out);
int tpl_apply_test(tpl_ctx *c, const tpl_node *n, int id, tv in, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, int *res);
/* By name (map('upper'), select('odd')): unknown names are runtime errors. */
int tpl_apply_filter_named(tpl_ctx *c, const tpl_node *n, tv name, tv in, const tv *args, size_t nargs,
                           const tpl_kwarg *kw, size_t nkw, tv *out);
int tpl_apply_test_named(tpl_ctx *c, const tpl_node *n, tv name, tv in, const tv *args, size_t nargs,
                         const tpl_kwarg *kw, size_t nkw, int *res);

/* Attribute of a built-in type that is a method (str.split, dict.items, loop.cycle...): 1 and *out
 * a bound method; 0 if the type has no such attribute. */
int tpl_method_lookup(tpl_ctx *c, const tpl_node *n, tv obj, tpl_str name, tv *out);
int tpl_call_builtin(tpl_ctx *c, const tpl_node *n, tpl_func *f, const tv *args, size_t nargs,
                     const tpl_kwarg *kw, size_t nkw, tv *out);
/* Global functions (range, namespace, dict, raise_exception, strftime_now, ...): 1 if name is one. */
int tpl_global_lookup(tpl_ctx *c, tpl_str name, tv *out);

/* Python-style argument binding: params[0..np) by position or keyword. got[i] tells which were
 * passed. fname names the callee in error messages. */
int tpl_bind_args(tpl_ctx *c, const tpl_node *n, const char *fname, const char *const *params, size_t np,
                  const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw, tv *vals, int *got);

/* str helpers shared by methods and filters (methods.c). tpl_strip: which = 1 left, 2 right, 3 both;
 * chars NULL = whitespace. tpl_case: mode 0 upper, 1 lower, 2 str.title, 3 capitalize, 4 swapcase.
 * tpl_pad: mode 0 center, 1 ljust, 2 rjust. */
tv tpl_strip(tv s, const tpl_str *chars, int which);
int tpl_splitlines(tpl_ctx *c, const tpl_node *n, tv s, int keepends, tpl_list **out);
int tpl_case(tpl_ctx *c, const tpl_node *n, tv s, int mode, tv *out);
int tpl_pad(tpl_ctx *c, const tpl_node *n, tv s, int64_t width, int mode, tv *out);
int tpl_str_replace(tpl_ctx *c, const tpl_node *n, tv s, tv old, tv new_, int64_t count, tv *out);

/* printf-style formatting (str % args, the format filter). */
int tpl_percent_format(tpl_ctx *c, const tpl_node *n, tv fmt, tv args, tv *out);

static inline int tpl_str_eq(tpl_str a, const char *b) {
    size_t i = 0;
    for (; i < a.n; i++)
        if (b[i] == 0 || a.p[i] != b[i]) return 0;
    return b[i] == 0;
}

/* The source text of an operator token ("+", "//", "**", ...); "?" for unknown ones. */
const char *tpl_op_text(int op);

#endif
