/* Parser: tokens -> AST, following jinja2's grammar (parser.py) rule for rule, so precedence and
 * the odd corners (tests bind tighter than arithmetic, "-x|f" filters the negation, "a if b" without
 * else, tuples without parentheses) come out as jinja2 reads them. Errors name the line and column
 * of the offending token and what was expected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl.h"

typedef struct nvec {
    tpl_node **v;
    size_t n, cap;
} nvec;

typedef struct open_block {
    const char *tag;  /* "for", "if", ... */
    const char *ends; /* "'endfor' or 'else'" */
    int line, col;
} open_block;

typedef struct parser {
    tpl_arena *a;
    tpl_token *t;
    size_t n, i;
    tpl_error *err;
    int depth;
    int loop_depth; /* for break/continue: loops enclosing the statement within the same macro */
    open_block open[TPL_MAX_PARSE_DEPTH + 8];
    int n_open;
} parser;

static tpl_token *cur(parser *p) {
    return &p->t[p->i];
}
static tpl_token *peek(parser *p, size_t k) {
    return &p->t[p->i + k < p->n ? p->i + k : p->n - 1];
}
static void adv(parser *p) {
    if (p->i + 1 < p->n) p->i++;
}
static int is_name(const tpl_token *t, const char *name) {
    return t->type == TK_NAME && tpl_str_eq(t->s, name);
}
static int is_op(const tpl_token *t, int op) {
    return t->type == TK_OP && t->op == op;
}

const char *tpl_op_text(int op) {
    switch (op) {
    case OP_ADD:
        return "+";
    case OP_SUB:
        return "-";
    case OP_MUL:
        return "*";
    case OP_DIV:
        return "/";
    case OP_FLOORDIV:
        return "//";
    case OP_MOD:
        return "%";
    case OP_POW:
        return "**";
    case OP_TILDE:
        return "~";
    case OP_LBRACKET:
        return "[";
    case OP_RBRACKET:
        return "]";
    case OP_LPAREN:
        return "(";
    case OP_RPAREN:
        return ")";
    case OP_LBRACE:
        return "{";
    case OP_RBRACE:
        return "}";
    case OP_EQ:
        return "==";
    case OP_NE:
        return "!=";
    case OP_GT:
        return ">";
    case OP_GTEQ:
        return ">=";
    case OP_LT:
        return "<";
    case OP_LTEQ:
        return "<=";
    case OP_ASSIGN:
        return "=";
    case OP_DOT:
        return ".";
    case OP_COLON:
        return ":";
    case OP_PIPE:
        return "|";
    case OP_COMMA:
        return ",";
    case OP_SEMICOLON:
        return ";";
    default:
        return "?";
    }
}

static void describe(const tpl_token *t, char *buf, size_t cap) {
    switch (t->type) {
    case TK_NAME:
        snprintf(buf, cap, "'%.*s'", (int)(t->s.n > 60 ? 60 : t->s.n), t->s.p);
        break;
    case TK_STRING:
        snprintf(buf, cap, "string literal");
        break;
    case TK_INT:
        snprintf(buf, cap, "integer literal");
        break;
    case TK_FLOAT:
        snprintf(buf, cap, "float literal");
        break;
    case TK_OP:
        snprintf(buf, cap, "'%s'", tpl_op_text(t->op));
        break;
    case TK_VAR_END:
        snprintf(buf, cap, "end of expression '}}'");
        break;
    case TK_BLOCK_END:
        snprintf(buf, cap, "end of tag '%%}'");
        break;
    case TK_VAR_BEGIN:
        snprintf(buf, cap, "'{{'");
        break;
    case TK_BLOCK_BEGIN:
        snprintf(buf, cap, "'{%%'");
        break;
    case TK_DATA:
        snprintf(buf, cap, "template text");
        break;
    default:
        snprintf(buf, cap, "end of template");
        break;
    }
}

static tpl_node *fail_tok(parser *p, const tpl_token *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tpl_node *fail_tok(parser *p, const tpl_token *t, const char *fmt, ...) {
    if (p->err->status == LLM_OK) {
        va_list ap;
        va_start(ap, fmt);
        tpl_error_vset(p->err, LLM_ERR_BAD_FORMAT, t->line, t->col, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static tpl_node *unexpected(parser *p, const char *expected) {
    char d[96];
    describe(cur(p), d, sizeof d);
    return fail_tok(p, cur(p), "expected %s, got %s", expected, d);
}

static tpl_node *oom(parser *p) {
    if (p->err->status == LLM_OK)
        tpl_error_set(p->err, LLM_ERR_OUT_OF_MEMORY, 0, 0, "out of memory while parsing");
    return NULL;
}

static tpl_node *node(parser *p, int kind, const tpl_token *at) {
    tpl_node *n = tpl_alloc(p->a, sizeof *n);
    if (!n) return oom(p);
    n->kind = (uint8_t)kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static int vpush(parser *p, nvec *v, tpl_node *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        tpl_node **nv = tpl_realloc(p->a, v->v, v->cap * sizeof *nv, cap * sizeof *nv);
        if (!nv) {
            oom(p);
            return -1;
        }
        v->v = nv, v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

static int enter(parser *p) {
    if (++p->depth > TPL_MAX_PARSE_DEPTH) {
        fail_tok(p, cur(p), "template nested too deeply (more than %d levels)", TPL_MAX_PARSE_DEPTH);
        return -1;
    }
    return 0;
}

static int expect_op(parser *p, int op) {
    if (is_op(cur(p), op)) {
        adv(p);
        return 0;
    }
    char want[16];
    snprintf(want, sizeof want, "'%s'", tpl_op_text(op));
    unexpected(p, want);
    return -1;
}

static int expect_type(parser *p, int type, const char *what) {
    if (cur(p)->type == type) {
        adv(p);
        return 0;
    }
    unexpected(p, what);
    return -1;
}

/* ---- expressions ---------------------------------------------------------------------------- */

static tpl_node *parse_expression(parser *p, int with_condexpr);
static tpl_node *parse_unary(parser *p, int with_filter);
static tpl_node *parse_primary(parser *p, int with_namespace);
static tpl_node *parse_postfix(parser *p, tpl_node *n);
static tpl_node *parse_filter(parser *p, tpl_node *n, int start_inline);

/* extra_end: NULL or a name that also ends a tuple ("in", "recursive") */
static int is_tuple_end(parser *p, const char *extra_end) {
    tpl_token *t = cur(p);
    if (t->type == TK_VAR_END || t->type == TK_BLOCK_END || is_op(t, OP_RPAREN) || t->type == TK_EOF)
        return 1;
    return extra_end && is_name(t, extra_end);
}

static tpl_node *parse_tuple(parser *p, int simplified, int with_condexpr, const char *extra_end,
                             int explicit_parens, int with_namespace) {
    tpl_token *start = cur(p);
    nvec items = {0};
    int is_tuple = 0;
    for (;;) {
        if (items.n && expect_op(p, OP_COMMA)) return NULL;
        if (is_tuple_end(p, extra_end)) break;
        tpl_node *e = simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr);
        if (!e || vpush(p, &items, e)) return NULL;
        if (is_op(cur(p), OP_COMMA))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n) return items.v[0];
        if (!explicit_parens) return unexpected(p, "an expression");
    }
    tpl_node *n = node(p, N_TUPLE, start);
    if (!n) return NULL;
    n->args = items.v, n->n_args = items.n;
    return n;
}

static tpl_node *parse_condexpr(parser *p) {
    tpl_node *e1 = parse_expression(p, 0);
    if (!e1) return NULL;
    while (is_name(cur(p), "if")) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *test = parse_expression(p, 0);
        if (!test) return NULL;
        tpl_node *e3 = NULL;
        if (is_name(cur(p), "else")) {
            adv(p);
            if (enter(p)) return NULL;
            e3 = parse_condexpr(p);
            p->depth--;
            if (!e3) return NULL;
        }
        tpl_node *n = node(p, N_CONDEXPR, at);
        if (!n) return NULL;
        n->a = test, n->b = e1, n->c = e3;
        e1 = n;
    }
    return e1;
}

static tpl_node *parse_math1(parser *p);

static tpl_node *parse_not(parser *p);
static tpl_node *parse_compare(parser *p) {
    tpl_token *start = cur(p);
    tpl_node *first = parse_math1(p);
    if (!first) return NULL;
    nvec ops = {0};
    for (;;) {
        tpl_token *t = cur(p);
        int op = 0;
        if (t->type == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT || t->op == OP_LTEQ ||
                                 t->op == OP_GT || t->op == OP_GTEQ)) {
            op = t->op;
            adv(p);
        } else if (is_name(t, "in")) {
            op = OP_IN;
            adv(p);
        } else if (is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = OP_NOTIN;
            adv(p);
            adv(p);
        } else {
            break;
        }
        tpl_node *operand = node(p, N_OPERAND, t);
        if (!operand) return NULL;
        operand->op = op;
        operand->a = parse_math1(p);
        if (!operand->a || vpush(p, &ops, operand)) return NULL;
    }
    if (!ops.n) return first;
    tpl_node *n = node(p, N_COMPARE, start);
    if (!n) return NULL;
    n->a = first, n->args = ops.v, n->n_args = ops.n;
    return n;
}

static tpl_node *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        tpl_token *at = cur(p);
        adv(p);
        if (enter(p)) return NULL;
        tpl_node *inner = parse_not(p);
        p->depth--;
        if (!inner) return NULL;
        tpl_node *n = node(p, N_NOT, at);
        if (!n) return NULL;
        n->a = inner;
        return n;
    }
    return parse_compare(p);
}

static tpl_node *parse_and(parser *p) {
    tpl_node *left = parse_not(p);
    while (left && is_name(cur(p), "and")) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *right = parse_not(p);
        if (!right) return NULL;
        tpl_node *n = node(p, N_AND, at);
        if (!n) return NULL;
        n->a = left, n->b = right;
        left = n;
    }
    return left;
}

static tpl_node *parse_or(parser *p) {
    tpl_node *left = parse_and(p);
    while (left && is_name(cur(p), "or")) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *right = parse_and(p);
        if (!right) return NULL;
        tpl_node *n = node(p, N_OR, at);
        if (!n) return NULL;
        n->a = left, n->b = right;
        left = n;
    }
    return left;
}

static tpl_node *parse_expression(parser *p, int with_condexpr) {
    if (enter(p)) return NULL;
    tpl_node *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    p->depth--;
    return n;
}

static tpl_node *binop(parser *p, tpl_token *at, int op, tpl_node *a, tpl_node *b) {
    tpl_node *n = node(p, N_BINOP, at);
    if (!n) return NULL;
    n->op = op, n->a = a, n->b = b;
    return n;
}

static tpl_node *parse_pow(parser *p) {
    tpl_node *left = parse_unary(p, 1);
    while (left && is_op(cur(p), OP_POW)) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *right = parse_unary(p, 1);
        if (!right) return NULL;
        left = binop(p, at, OP_POW, left, right);
    }
    return left;
}

static tpl_node *parse_math2(parser *p) {
    tpl_node *left = parse_pow(p);
    while (
        left && cur(p)->type == TK_OP &&
        (cur(p)->op == OP_MUL || cur(p)->op == OP_DIV || cur(p)->op == OP_FLOORDIV || cur(p)->op == OP_MOD)) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *right = parse_pow(p);
        if (!right) return NULL;
        left = binop(p, at, at->op, left, right);
    }
    return left;
}

static tpl_node *parse_concat(parser *p) {
    tpl_token *start = cur(p);
    tpl_node *first = parse_math2(p);
    if (!first || !is_op(cur(p), OP_TILDE)) return first;
    nvec parts = {0};
    if (vpush(p, &parts, first)) return NULL;
    while (is_op(cur(p), OP_TILDE)) {
        adv(p);
        tpl_node *e = parse_math2(p);
        if (!e || vpush(p, &parts, e)) return NULL;
    }
    tpl_node *n = node(p, N_CONCAT, start);
    if (!n) return NULL;
    n->args = parts.v, n->n_args = parts.n;
    return n;
}

static tpl_node *parse_math1(parser *p) {
    tpl_node *left = parse_concat(p);
    while (left && cur(p)->type == TK_OP && (cur(p)->op == OP_ADD || cur(p)->op == OP_SUB)) {
        tpl_token *at = cur(p);
        adv(p);
        tpl_node *right = parse_concat(p);
        if (!right) return NULL;
        left = binop(p, at, at->op, left, right);
    }
    return left;
}

static tpl_node *parse_filter_expr(parser *p, tpl_node *n);

static tpl_node *parse_unary(parser *p, int with_filter) {
    tpl_token *t = cur(p);
    tpl_node *n;
    if (enter(p)) return NULL;
    if (is_op(t, OP_SUB) || is_op(t, OP_ADD)) {
        adv(p);
        tpl_node *inner = parse_unary(p, 0);
        if (!inner) return NULL;
        n = node(p, is_op(t, OP_SUB) ? N_NEG : N_POS, t);
        if (!n) return NULL;
        n->a = inner;
    } else {
        n = parse_primary(p, 0);
    }
    p->depth--;
    if (!n) return NULL;
    n = parse_postfix(p, n);
    if (n && with_filter) n = parse_filter_expr(p, n);
    return n;
}

static tpl_node *parse_list(parser *p) {
    tpl_token *at = cur(p);
    adv(p);
    nvec items = {0};
    while (!is_op(cur(p), OP_RBRACKET)) {
        if (items.n && expect_op(p, OP_COMMA)) return NULL;
        if (is_op(cur(p), OP_RBRACKET)) break;
        tpl_node *e = parse_expression(p, 1);
        if (!e || vpush(p, &items, e)) return NULL;
    }
    if (expect_op(p, OP_RBRACKET)) return NULL;
    tpl_node *n = node(p, N_LIST, at);
    if (!n) return NULL;
    n->args = items.v, n->n_args = items.n;
    return n;
}

static tpl_node *parse_dict(parser *p) {
    tpl_token *at = cur(p);
    adv(p);
    nvec items = {0};
    while (!is_op(cur(p), OP_RBRACE)) {
        if (items.n && expect_op(p, OP_COMMA)) return NULL;
        if (is_op(cur(p), OP_RBRACE)) break;
        tpl_token *kt = cur(p);
        tpl_node *k = parse_expression(p, 1);
        if (!k || expect_op(p, OP_COLON)) return NULL;
        tpl_node *v = parse_expression(p, 1);
        if (!v) return NULL;
        tpl_node *pair = node(p, N_PAIR, kt);
        if (!pair) return NULL;
        pair->a = k, pair->b = v;
        if (vpush(p, &items, pair)) return NULL;
    }
    if (expect_op(p, OP_RBRACE)) return NULL;
    tpl_node *n = node(p, N_DICT, at);
    if (!n) return NULL;
    n->args = items.v, n->n_args = items.n;
    return n;
}

static tpl_node *parse_primary(parser *p, int with_namespace) {
    tpl_token *t = cur(p);
    tpl_node *n;
    switch (t->type) {
    case TK_NAME:
        adv(p);
        n = node(p, N_CONST, t);
        if (!n) return NULL;
        if (tpl_str_eq(t->s, "true") || tpl_str_eq(t->s, "True")) {
            n->value = tv_bool(1);
        } else if (tpl_str_eq(t->s, "false") || tpl_str_eq(t->s, "False")) {
            n->value = tv_bool(0);
        } else if (tpl_str_eq(t->s, "none") || tpl_str_eq(t->s, "None")) {
            n->value = tv_none();
        } else if (with_namespace && is_op(cur(p), OP_DOT)) {
            adv(p);
            tpl_token *attr = cur(p);
            if (expect_type(p, TK_NAME, "an attribute name")) return NULL;
            n->kind = N_NSREF;
            n->s = t->s;
            n->s2 = attr->s;
        } else {
            n->kind = N_NAME;
            n->s = t->s;
        }
        return n;
    case TK_STRING: {
        adv(p);
        n = node(p, N_CONST, t);
        if (!n) return NULL;
        if (cur(p)->type != TK_STRING) {
            n->value = tv_str(t->s.p, t->s.n);
            if (tpl_is_ascii(t->s.p, t->s.n)) n->value.flags |= TVF_ASCII;
            return n;
        }
        size_t total = t->s.n;
        for (size_t k = p->i; k < p->n && p->t[k].type == TK_STRING; k++) total += p->t[k].s.n;
        char *buf = tpl_alloc(p->a, total + 1);
        if (!buf) return oom(p);
        memcpy(buf, t->s.p, t->s.n);
        size_t off = t->s.n;
        while (cur(p)->type == TK_STRING) {
            memcpy(buf + off, cur(p)->s.p, cur(p)->s.n);
            off += cur(p)->s.n;
            adv(p);
        }
        n->value = tv_str(buf, off);
        return n;
    }
    case TK_INT:
    case TK_FLOAT:
        adv(p);
        n = node(p, N_CONST, t);
        if (!n) return NULL;
        n->value = t->type == TK_INT ? tv_int(t->i) : tv_float(t->f);
        return n;
    case TK_OP:
        if (t->op == OP_LPAREN) {
            adv(p);
            n = parse_tuple(p, 0, 1, NULL, 1, 0);
            if (!n || expect_op(p, OP_RPAREN)) return NULL;
            return n;
        }
        if (t->op == OP_LBRACKET) return parse_list(p);
        if (t->op == OP_LBRACE) return parse_dict(p);
        break;
    default:
        break;
    }
    char d[96];
    describe(t, d, sizeof d);
    return fail_tok(p, t, "unexpected %s, expected an expression", d);
}

static tpl_node *parse_subscribed(parser *p) {
    tpl_token *at = cur(p);
    tpl_node *args[3] = {NULL, NULL, NULL};
    if (is_op(cur(p), OP_COLON)) {
        adv(p);
    } else {
        tpl_node *e = parse_expression(p, 1);
        if (!e) return NULL;
        if (!is_op(cur(p), OP_COLON)) return e;
        adv(p);
        args[0] = e;
    }
    if (!is_op(cur(p), OP_COLON) && !is_op(cur(p), OP_RBRACKET) && !is_op(cur(p), OP_COMMA)) {
        if (!(args[1] = parse_expression(p, 1))) return NULL;
    }
    if (is_op(cur(p), OP_COLON)) {
        adv(p);
        if (!is_op(cur(p), OP_RBRACKET) && !is_op(cur(p), OP_COMMA)) {
            if (!(args[2] = parse_expression(p, 1))) return NULL;
        }
    }
    tpl_node *n = node(p, N_SLICE, at);
    if (!n) return NULL;
    n->a = args[0], n->b = args[1], n->c = args[2];
    return n;
}

static tpl_node *parse_subscript(parser *p, tpl_node *obj) {
    tpl_token *t = cur(p);
    adv(p);
    if (t->op == OP_DOT) {
        tpl_token *a = cur(p);
        if (a->type == TK_NAME) {
            adv(p);
            tpl_node *n = node(p, N_GETATTR, t);
            if (!n) return NULL;
            n->a = obj, n->s = a->s;
            return n;
        }
        if (a->type != TK_INT) return unexpected(p, "an attribute name or number after '.'");
        adv(p);
        tpl_node *k = node(p, N_CONST, a);
        tpl_node *n = node(p, N_GETITEM, t);
        if (!k || !n) return NULL;
        k->value = tv_int(a->i);
        n->a = obj, n->b = k;
        return n;
    }
    nvec args = {0};
    while (!is_op(cur(p), OP_RBRACKET)) {
        if (args.n && expect_op(p, OP_COMMA)) return NULL;
        tpl_node *e = parse_subscribed(p);
        if (!e || vpush(p, &args, e)) return NULL;
    }
    if (expect_op(p, OP_RBRACKET)) return NULL;
    tpl_node *n = node(p, N_GETITEM, t);
    if (!n) return NULL;
    n->a = obj;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        tpl_node *tup = node(p, N_TUPLE, t);
        if (!tup) return NULL;
        tup->args = args.v, tup->n_args = args.n;
        n->b = tup;
    }
    return n;
}

/* "(" args ")" into n->args / n->kwargs */
static int parse_call_args(parser *p, tpl_node *n) {
    tpl_token *open = cur(p);
    if (expect_op(p, OP_LPAREN)) return -1;
    nvec args = {0}, kwargs = {0};
    int need_comma = 0;
    while (!is_op(cur(p), OP_RPAREN)) {
        if (need_comma) {
            if (expect_op(p, OP_COMMA)) return -1;
            if (is_op(cur(p), OP_RPAREN)) break;
        }
        tpl_token *t = cur(p);
        if (is_op(t, OP_MUL) || is_op(t, OP_POW)) {
            fail_tok(p, t, "'%s' argument unpacking in calls is not supported",
                     is_op(t, OP_MUL) ? "*" : "**");
            return -1;
        }
        if (t->type == TK_NAME && is_op(peek(p, 1), OP_ASSIGN)) {
            adv(p);
            adv(p);
            tpl_node *kw = node(p, N_PARAM, t);
            if (!kw) return -1;
            kw->s = t->s;
            if (!(kw->a = parse_expression(p, 1)) || vpush(p, &kwargs, kw)) return -1;
        } else {
            if (kwargs.n) {
                fail_tok(p, t,
                         "positional argument follows keyword argument (call opened at line %d, column %d)",
                         open->line, open->col);
                return -1;
            }
            tpl_node *e = parse_expression(p, 1);
            if (!e || vpush(p, &args, e)) return -1;
        }
        need_comma = 1;
    }
    if (expect_op(p, OP_RPAREN)) return -1;
    n->args = args.v, n->n_args = args.n;
    n->kwargs = kwargs.v, n->n_kwargs = kwargs.n;
    return 0;
}

static tpl_node *parse_call(parser *p, tpl_node *callee) {
    tpl_node *n = node(p, N_CALL, cur(p));
    if (!n) return NULL;
    n->a = callee;
    /* errors about the call (undefined function, bad arguments) point at the callee's name */
    n->line = callee->line, n->col = callee->col;
    if (callee->kind == N_GETATTR) { /* the method name: one past the dot */
        n->line = callee->line;
        n->col = callee->col + 1;
    }
    if (parse_call_args(p, n)) return NULL;
    return n;
}

static tpl_node *parse_postfix(parser *p, tpl_node *n) {
    while (n) {
        tpl_token *t = cur(p);
        if (is_op(t, OP_DOT) || is_op(t, OP_LBRACKET))
            n = parse_subscript(p, n);
        else if (is_op(t, OP_LPAREN))
            n = parse_call(p, n);
        else
            break;
    }
    return n;
}

/* A dotted name after '|' or 'is' into *name (in the arena when dotted). */
static int parse_dotted_name(parser *p, tpl_str *name, const char *what) {
    tpl_token *t = cur(p);
    if (expect_type(p, TK_NAME, what)) return -1;
    *name = t->s;
    while (is_op(cur(p), OP_DOT)) {
        adv(p);
        tpl_token *part = cur(p);
        if (expect_type(p, TK_NAME, "a name after '.'")) return -1;
        char *buf = tpl_alloc(p->a, name->n + 1 + part->s.n + 1);
        if (!buf) {
            oom(p);
            return -1;
        }
        memcpy(buf, name->p, name->n);
        buf[name->n] = '.';
        memcpy(buf + name->n + 1, part->s.p, part->s.n);
        name->p = buf;
        name->n += 1 + part->s.n;
    }
    return 0;
}

static tpl_node *parse_filter(parser *p, tpl_node *n, int start_inline) {
    while (is_op(cur(p), OP_PIPE) || start_inline) {
        if (!start_inline) adv(p);
        start_inline = 0;
        tpl_token *at = cur(p);
        tpl_node *f = node(p, N_FILTER, at);
        if (!f) return NULL;
        if (parse_dotted_name(p, &f->s, "a filter name")) return NULL;
        f->op = tpl_filter_lookup(f->s.p, f->s.n);
        f->a = n;
        if (is_op(cur(p), OP_LPAREN) && parse_call_args(p, f)) return NULL;
        n = f;
    }
    return n;
}

static tpl_node *parse_test(parser *p, tpl_node *operand) {
    tpl_token *is_tok = cur(p);
    adv(p);
    int negated = 0;
    if (is_name(cur(p), "not")) {
        negated = 1;
        adv(p);
    }
    tpl_token *at = cur(p);
    tpl_node *t = node(p, N_TEST, at);
    if (!t) return NULL;
    if (parse_dotted_name(p, &t->s, "a test name after 'is'")) return NULL;
    t->op = tpl_test_lookup(t->s.p, t->s.n);
    t->a = operand;
    tpl_token *c = cur(p);
    if (is_op(c, OP_LPAREN)) {
        if (parse_call_args(p, t)) return NULL;
    } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT || c->type == TK_FLOAT ||
                is_op(c, OP_LPAREN) || is_op(c, OP_LBRACKET) || is_op(c, OP_LBRACE)) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) return fail_tok(p, c, "tests cannot be chained with another 'is'");
        tpl_node *arg = parse_primary(p, 0);
        if (!arg || !(arg = parse_postfix(p, arg))) return NULL;
        tpl_node **args = tpl_alloc(p->a, sizeof *args);
        if (!args) return oom(p);
        args[0] = arg;
        t->args = args, t->n_args = 1;
    }
    if (!negated) return t;
    tpl_node *n = node(p, N_NOT, is_tok);
    if (!n) return NULL;
    n->a = t;
    return n;
}

static tpl_node *parse_filter_expr(parser *p, tpl_node *n) {
    while (n) {
        tpl_token *t = cur(p);
        if (is_op(t, OP_PIPE))
            n = parse_filter(p, n, 0);
        else if (is_name(t, "is"))
            n = parse_test(p, n);
        else if (is_op(t, OP_LPAREN))
            n = parse_call(p, n);
        else
            break;
    }
    return n;
}

/* ---- statements ----------------------------------------------------------------------------- */

static int subparse(parser *p, const char *const *end_names, nvec *body);

static int can_assign(const tpl_node *t) {
    if (t->kind == N_NAME || t->kind == N_NSREF) return 1;
    if (t->kind != N_TUPLE) return 0;
    for (size_t i = 0; i < t->n_args; i++)
        if (!can_assign(t->args[i]) || t->args[i]->kind == N_NSREF) return 0;
    return 1;
}

static tpl_node *parse_assign_target(parser *p, const char *extra_end, int with_namespace) {
    tpl_token *at = cur(p);
    tpl_node *t = parse_tuple(p, 1, 1, extra_end, 0, with_namespace);
    if (!t) return NULL;
    if (!can_assign(t)) {
        char d[96];
        describe(at, d, sizeof d);
        return fail_tok(p, at, "cannot assign to %s", t->kind == N_CONST ? d : "this expression");
    }
    if (t->kind == N_NAME && tpl_str_eq(t->s, "loop") && extra_end) {
        /* jinja2 allows it but it shadows the loop variable; keep behaviour */
    }
    return t;
}

static void push_open(parser *p, const tpl_token *at, const char *tag, const char *ends) {
    if (p->n_open < (int)(sizeof p->open / sizeof p->open[0])) {
        open_block *o = &p->open[p->n_open];
        o->tag = tag, o->ends = ends, o->line = at->line, o->col = at->col;
    }
    p->n_open++;
}
static void pop_open(parser *p) {
    p->n_open--;
}

/* ":"? "%}" body until one of end_names; the needle (end name) stays current unless drop. */
static int parse_statements(parser *p, const char *const *end_names, nvec *body, int drop_needle) {
    if (is_op(cur(p), OP_COLON)) adv(p);
    if (expect_type(p, TK_BLOCK_END, "end of tag '%}'")) return -1;
    if (subparse(p, end_names, body)) return -1;
    if (drop_needle) adv(p);
    return 0;
}

static int is_end_of(parser *p, const char *const *names) {
    for (; *names; names++)
        if (is_name(cur(p), *names)) return 1;
    return 0;
}

static tpl_node *parse_for(parser *p, tpl_token *at) {
    static const char *const ends[] = {"endfor", "else", NULL}, *const endfor[] = {"endfor", NULL};
    tpl_node *n = node(p, N_FOR, at);
    if (!n) return NULL;
    if (!(n->a = parse_assign_target(p, "in", 0))) return NULL;
    if (n->a->kind == N_NSREF) return fail_tok(p, at, "a namespace attribute cannot be a loop variable");
    if (!is_name(cur(p), "in")) return unexpected(p, "'in'");
    adv(p);
    if (!(n->b = parse_tuple(p, 0, 0, "recursive", 0, 0))) return NULL;
    if (is_name(cur(p), "if")) {
        adv(p);
        if (!(n->c = parse_expression(p, 1))) return NULL;
    }
    if (is_name(cur(p), "recursive")) return fail_tok(p, cur(p), "recursive for loops are not supported");
    nvec body = {0}, els = {0};
    push_open(p, at, "for", "'endfor' or 'else'");
    p->loop_depth++;
    int rc = parse_statements(p, ends, &body, 0);
    p->loop_depth--;
    if (rc) return NULL;
    if (is_name(cur(p), "else")) {
        adv(p);
        pop_open(p);
        push_open(p, at, "for", "'endfor'");
        if (parse_statements(p, endfor, &els, 1)) return NULL;
    } else {
        adv(p);
    }
    pop_open(p);
    n->body = body.v, n->n_body = body.n;
    n->else_body = els.v, n->n_else = els.n;
    return n;
}

static tpl_node *parse_if(parser *p, tpl_token *at) {
    static const char *const ends[] = {"elif", "else", "endif", NULL}, *const endif[] = {"endif", NULL};
    tpl_node *result = node(p, N_IF, at), *n = result;
    if (!n) return NULL;
    push_open(p, at, "if", "'elif', 'else' or 'endif'");
    for (;;) {
        if (!(n->a = parse_tuple(p, 0, 0, NULL, 0, 0))) return NULL;
        nvec body = {0};
        if (parse_statements(p, ends, &body, 0)) return NULL;
        n->body = body.v, n->n_body = body.n;
        tpl_token *t = cur(p);
        adv(p);
        if (is_name(t, "elif")) {
            tpl_node *e = node(p, N_IF, t);
            tpl_node **eb = tpl_alloc(p->a, sizeof *eb);
            if (!e || !eb) return oom(p);
            e->op = 1;
            eb[0] = e;
            n->else_body = eb, n->n_else = 1;
            n = e;
            continue;
        }
        if (is_name(t, "else")) {
            pop_open(p);
            push_open(p, at, "if", "'endif'");
            nvec els = {0};
            if (parse_statements(p, endif, &els, 1)) return NULL;
            n->else_body = els.v, n->n_else = els.n;
        }
        break;
    }
    pop_open(p);
    return result;
}

static tpl_node *parse_set(parser *p, tpl_token *at) {
    static const char *const ends[] = {"endset", NULL};
    tpl_node *target = parse_assign_target(p, NULL, 1);
    if (!target) return NULL;
    if (is_op(cur(p), OP_ASSIGN)) {
        adv(p);
        tpl_node *n = node(p, N_SET, at);
        if (!n) return NULL;
        n->a = target;
        if (!(n->b = parse_tuple(p, 0, 1, NULL, 0, 0))) return NULL;
        return n;
    }
    tpl_node *n = node(p, N_SET_BLOCK, at);
    if (!n) return NULL;
    n->a = target;
    if (is_op(cur(p), OP_PIPE) && !(n->b = parse_filter(p, NULL, 0))) return NULL;
    nvec body = {0};
    push_open(p, at, "set", "'endset'");
    if (parse_statements(p, ends, &body, 1)) return NULL;
    pop_open(p);
    n->body = body.v, n->n_body = body.n;
    return n;
}

static int parse_signature(parser *p, tpl_node *n) {
    if (expect_op(p, OP_LPAREN)) return -1;
    nvec params = {0};
    int have_default = 0;
    while (!is_op(cur(p), OP_RPAREN)) {
        if (params.n && expect_op(p, OP_COMMA)) return -1;
        tpl_token *t = cur(p);
        if (expect_type(p, TK_NAME, "a parameter name")) return -1;
        tpl_node *param = node(p, N_PARAM, t);
        if (!param) return -1;
        param->s = t->s;
        if (is_op(cur(p), OP_ASSIGN)) {
            adv(p);
            if (!(param->a = parse_expression(p, 1))) return -1;
            have_default = 1;
        } else if (have_default) {
            fail_tok(p, t, "non-default parameter '%.*s' follows a parameter with a default", (int)t->s.n,
                     t->s.p);
            return -1;
        }
        if (vpush(p, &params, param)) return -1;
    }
    if (expect_op(p, OP_RPAREN)) return -1;
    n->args = params.v, n->n_args = params.n;
    return 0;
}

static tpl_node *parse_macro_like(parser *p, tpl_token *at, int kind) {
    static const char *const endmacro[] = {"endmacro", NULL}, *const endcall[] = {"endcall", NULL};
    tpl_node *n = node(p, kind, at);
    if (!n) return NULL;
    if (kind == N_MACRO) {
        tpl_token *name = cur(p);
        if (expect_type(p, TK_NAME, "a macro name")) return NULL;
        n->s = name->s;
        if (parse_signature(p, n)) return NULL;
    } else {
        if (is_op(cur(p), OP_LPAREN) && parse_signature(p, n)) return NULL;
        tpl_token *ct = cur(p);
        if (!(n->a = parse_expression(p, 1))) return NULL;
        if (n->a->kind != N_CALL) return fail_tok(p, ct, "'call' must be followed by a macro call");
    }
    nvec body = {0};
    push_open(p, at, kind == N_MACRO ? "macro" : "call", kind == N_MACRO ? "'endmacro'" : "'endcall'");
    int saved = p->loop_depth;
    p->loop_depth = 0;
    int rc = parse_statements(p, kind == N_MACRO ? endmacro : endcall, &body, 1);
    p->loop_depth = saved;
    if (rc) return NULL;
    pop_open(p);
    n->body = body.v, n->n_body = body.n;
    return n;
}

static tpl_node *parse_simple_block(parser *p, tpl_token *at, int kind, const char *tag,
                                    const char *endname) {
    const char *const ends[] = {endname, NULL};
    char quoted[40];
    snprintf(quoted, sizeof quoted, "'%s'", endname);
    tpl_node *n = node(p, kind, at);
    if (!n) return NULL;
    nvec body = {0};
    push_open(p, at, tag, tpl_strdup(p->a, quoted, strlen(quoted)));
    if (parse_statements(p, ends, &body, 1)) return NULL;
    pop_open(p);
    n->body = body.v, n->n_body = body.n;
    return n;
}

static tpl_node *parse_statement(parser *p) {
    tpl_token *t = cur(p);
    if (t->type != TK_NAME) {
        char d[96];
        describe(t, d, sizeof d);
        return fail_tok(p, t, "expected a tag name after '{%%', got %s", d);
    }
    adv(p);
    if (is_name(t, "for")) return parse_for(p, t);
    if (is_name(t, "if")) return parse_if(p, t);
    if (is_name(t, "set")) return parse_set(p, t);
    if (is_name(t, "macro")) return parse_macro_like(p, t, N_MACRO);
    if (is_name(t, "call")) return parse_macro_like(p, t, N_CALL_BLOCK);
    if (is_name(t, "filter")) {
        tpl_node *chain = parse_filter(p, NULL, 1);
        if (!chain) return NULL;
        tpl_node *n = parse_simple_block(p, t, N_FILTER_BLOCK, "filter", "endfilter");
        if (n) n->b = chain;
        return n;
    }
    if (is_name(t, "with")) {
        nvec params = {0};
        while (cur(p)->type != TK_BLOCK_END) {
            if (params.n && expect_op(p, OP_COMMA)) return NULL;
            tpl_token *nt = cur(p);
            if (expect_type(p, TK_NAME, "a variable name")) return NULL;
            if (expect_op(p, OP_ASSIGN)) return NULL;
            tpl_node *param = node(p, N_PARAM, nt);
            if (!param) return NULL;
            param->s = nt->s;
            if (!(param->a = parse_expression(p, 1)) || vpush(p, &params, param)) return NULL;
        }
        tpl_node *n = parse_simple_block(p, t, N_WITH, "with", "endwith");
        if (n) n->args = params.v, n->n_args = params.n;
        return n;
    }
    if (is_name(t, "print")) {
        tpl_node *n = node(p, N_SCOPE_BODY, t);
        nvec outs = {0};
        if (!n) return NULL;
        n->op = 1; /* no scope of its own */
        while (cur(p)->type != TK_BLOCK_END) {
            if (outs.n && expect_op(p, OP_COMMA)) return NULL;
            tpl_node *o = node(p, N_OUTPUT, cur(p));
            if (!o || !(o->a = parse_expression(p, 1)) || vpush(p, &outs, o)) return NULL;
        }
        n->body = outs.v, n->n_body = outs.n;
        return n;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loop_depth) return fail_tok(p, t, "'%.*s' outside of a for loop", (int)t->s.n, t->s.p);
        return node(p, is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
    }
    if (is_name(t, "generation")) { /* transformers' AssistantTracker: a call block that renders its body */
        int saved = p->loop_depth;
        p->loop_depth = 0;
        tpl_node *n = parse_simple_block(p, t, N_SCOPE_BODY, "generation", "endgeneration");
        p->loop_depth = saved;
        return n;
    }
    if (is_name(t, "block")) {
        tpl_token *name = cur(p);
        if (expect_type(p, TK_NAME, "a block name")) return NULL;
        if (is_name(cur(p), "scoped")) adv(p);
        if (is_name(cur(p), "required")) adv(p);
        tpl_node *n = parse_simple_block(p, t, N_SCOPE_BODY, "block", "endblock");
        if (!n) return NULL;
        if (cur(p)->type == TK_NAME && cur(p)->s.n == name->s.n &&
            memcmp(cur(p)->s.p, name->s.p, name->s.n) == 0)
            adv(p);
        return n;
    }
    if (is_name(t, "extends") || is_name(t, "include") || is_name(t, "import") || is_name(t, "from"))
        return fail_tok(p, t, "'%.*s' is not supported: a chat template cannot load other templates",
                        (int)t->s.n, t->s.p);
    if (is_name(t, "autoescape")) return fail_tok(p, t, "'autoescape' blocks are not supported");
    /* an end or middle tag in the wrong place */
    int endish = (t->s.n > 3 && memcmp(t->s.p, "end", 3) == 0) || is_name(t, "else") || is_name(t, "elif");
    if (endish && p->n_open > 0) {
        int k = p->n_open - 1;
        if (k >= (int)(sizeof p->open / sizeof p->open[0])) k = (int)(sizeof p->open / sizeof p->open[0]) - 1;
        open_block *o = &p->open[k];
        return fail_tok(
            p, t, "unexpected '%.*s': the innermost open block is '%s' (line %d, column %d), expecting %s",
            (int)t->s.n, t->s.p, o->tag, o->line, o->col, o->ends);
    }
    if (t->s.n > 3 && memcmp(t->s.p, "end", 3) == 0)
        return fail_tok(p, t, "unexpected '%.*s': no '%.*s' block is open", (int)t->s.n, t->s.p,
                        (int)t->s.n - 3, t->s.p + 3);
    if (endish)
        return fail_tok(p, t, "unexpected '%.*s' outside of an 'if' or 'for' block", (int)t->s.n, t->s.p);
    return fail_tok(p, t, "unknown tag '%.*s'", (int)t->s.n, t->s.p);
}

static int subparse(parser *p, const char *const *end_names, nvec *body) {
    if (enter(p)) return -1;
    for (;;) {
        tpl_token *t = cur(p);
        if (t->type == TK_EOF) {
            if (end_names) {
                open_block *o = &p->open[p->n_open - 1 < (int)(sizeof p->open / sizeof p->open[0])
                                             ? p->n_open - 1
                                             : (int)(sizeof p->open / sizeof p->open[0]) - 1];
                tpl_token fake = *t;
                fake.line = o->line, fake.col = o->col;
                fail_tok(
                    p, &fake,
                    "unexpected end of template: the '%s' block opened here is never closed (expected %s)",
                    o->tag, o->ends);
                return -1;
            }
            break;
        }
        if (t->type == TK_DATA) {
            tpl_node *n = node(p, N_DATA, t);
            if (!n) return -1;
            n->s = t->s;
            adv(p);
            if (vpush(p, body, n)) return -1;
        } else if (t->type == TK_VAR_BEGIN) {
            adv(p);
            tpl_node *n = node(p, N_OUTPUT, t);
            if (!n) return -1;
            if (!(n->a = parse_tuple(p, 0, 1, NULL, 0, 0))) return -1;
            if (expect_type(p, TK_VAR_END, "end of expression '}}'")) return -1;
            if (vpush(p, body, n)) return -1;
        } else if (t->type == TK_BLOCK_BEGIN) {
            adv(p);
            if (end_names && is_end_of(p, end_names)) break;
            tpl_node *n = parse_statement(p);
            if (!n) return -1;
            if (expect_type(p, TK_BLOCK_END, "end of tag '%}'")) return -1;
            if (vpush(p, body, n)) return -1;
        } else {
            char d[96];
            describe(t, d, sizeof d);
            fail_tok(p, t, "unexpected %s", d);
            return -1;
        }
    }
    p->depth--;
    return 0;
}

/* ---- checks after parsing: unknown filters/tests (jinja2 rejects them at compile time unless they
 * sit inside an if or conditional expression) and what each macro needs bound ------------------ */

static int check(parser *p, tpl_node *n, int soft, int *macro_flags);

static int check_list(parser *p, tpl_node **v, size_t k, int soft, int *mf) {
    for (size_t i = 0; i < k; i++)
        if (check(p, v[i], soft, mf)) return -1;
    return 0;
}

static int check(parser *p, tpl_node *n, int soft, int *mf) {
    if (!n) return 0;
    n->soft = (uint8_t)soft;
    switch (n->kind) {
    case N_FILTER:
    case N_TEST:
        if (n->op == TPL_UNKNOWN && !soft) {
            tpl_token at = {0};
            at.line = n->line, at.col = n->col;
            fail_tok(p, &at, "No %s named '%.*s'.", n->kind == N_FILTER ? "filter" : "test", (int)n->s.n,
                     n->s.p);
            return -1;
        }
        break;
    case N_NAME:
        if (mf) {
            if (tpl_str_eq(n->s, "varargs"))
                *mf |= 1;
            else if (tpl_str_eq(n->s, "kwargs"))
                *mf |= 2;
            else if (tpl_str_eq(n->s, "caller"))
                *mf |= 4;
        }
        return 0;
    case N_IF:
    case N_CONDEXPR:
        return check(p, n->a, 1, mf) || check(p, n->b, 1, mf) || check(p, n->c, 1, mf) ||
               check_list(p, n->body, n->n_body, 1, mf) || check_list(p, n->else_body, n->n_else, 1, mf);
    case N_FOR:
        return check(p, n->a, soft, mf) || check(p, n->b, soft, mf) || check(p, n->c, 0, mf) ||
               check_list(p, n->body, n->n_body, 0, mf) || check_list(p, n->else_body, n->n_else, 0, mf);
    case N_MACRO:
    case N_CALL_BLOCK: {
        int flags = 0;
        if (check(p, n->a, soft, mf) || check_list(p, n->args, n->n_args, 0, &flags) ||
            check_list(p, n->body, n->n_body, 0, &flags))
            return -1;
        n->op = flags;
        /* names a nested macro needs from outside are not this one's concern; a caller's
         * references to varargs/kwargs belong to the call block */
        return 0;
    }
    case N_SET_BLOCK:
    case N_FILTER_BLOCK:
    case N_WITH:
        return check(p, n->a, soft, mf) || check(p, n->b, soft, mf) ||
               check_list(p, n->args, n->n_args, soft, mf) || check_list(p, n->body, n->n_body, 0, mf);
    default:
        break;
    }
    return check(p, n->a, soft, mf) || check(p, n->b, soft, mf) || check(p, n->c, soft, mf) ||
           check_list(p, n->args, n->n_args, soft, mf) || check_list(p, n->kwargs, n->n_kwargs, soft, mf) ||
           check_list(p, n->body, n->n_body, soft, mf) || check_list(p, n->else_body, n->n_else, soft, mf);
}

int tpl_parse(tpl_arena *a, const char *source, size_t len, tpl_node **root, tpl_error *err) {
    size_t bad;
    if (!tpl_utf8_valid(source, len, &bad)) {
        int line = 1, col = 1;
        for (size_t i = 0; i < bad; i++) {
            if (source[i] == '\n')
                line++, col = 1;
            else if (((unsigned char)source[i] & 0xC0) != 0x80)
                col++;
        }
        return tpl_error_set(err, LLM_ERR_BAD_FORMAT, line, col, "invalid UTF-8 in template (byte %zu)", bad);
    }
    /* newlines: \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False) */
    char *src = tpl_alloc(a, len + 1);
    if (!src) return tpl_error_set(err, LLM_ERR_OUT_OF_MEMORY, 0, 0, "out of memory while parsing");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (source[i] == '\r') {
            src[n++] = '\n';
            if (i + 1 < len && source[i + 1] == '\n') i++;
        } else {
            src[n++] = source[i];
        }
    }
    if (n && src[n - 1] == '\n') n--;
    src[n] = 0;
    tpl_token *toks;
    size_t ntok;
    if (tpl_lex(a, src, n, &toks, &ntok, err)) return -1;
    parser p = {.a = a, .t = toks, .n = ntok, .i = 0, .err = err};
    nvec body = {0};
    if (subparse(&p, NULL, &body)) return -1;
    if (check_list(&p, body.v, body.n, 0, NULL)) return -1;
    tpl_token start = {0};
    start.line = 1, start.col = 1;
    tpl_node *r = node(&p, N_SCOPE_BODY, &start);
    if (!r) return -1;
    r->op = 1;
    r->body = body.v, r->n_body = body.n;
    *root = r;
    return 0;
}
