/* The evaluator: walks the AST with jinja2's scoping rules.
 *   - the template body and if-blocks share one scope; assignments there are seen afterwards;
 *   - every for-loop iteration, macro call, call/filter/set block and with-block gets a child scope,
 *     so assignments inside do not leak out (a namespace() is the way out, as in jinja2), and every
 *     iteration starts from the enclosing values again;
 *   - macros see their defining scope (late-bound, like jinja2's closures over the template).
 * Work is metered (steps) and memory is capped, so a hostile template ends with an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl.h"

struct tpl_scope {
    tpl_scope *parent;
    tpl_dict vars;
};

enum { EXEC_OK = 0, EXEC_BREAK = 1, EXEC_CONTINUE = 2, EXEC_ERR = -1 };

/* ---- errors and budgets --------------------------------------------------------------------- */

int tpl_fail(tpl_ctx *c, const tpl_node *n, llm_status status, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = 1;
    if (!n) n = c->cur;
    va_list ap;
    va_start(ap, fmt);
    tpl_error_vset(&c->err, status, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    return -1;
}

int tpl_oom(tpl_ctx *c, const tpl_node *n) {
    if (c->arena.failed == 2)
        return tpl_fail(c, n, LLM_ERR_OUT_OF_MEMORY, "out of memory while rendering the template");
    return tpl_fail(c, n, LLM_ERR_MEMORY_LIMIT, "the render exceeded its memory budget of %zu bytes",
                    c->max_bytes);
}

int tpl_charge(tpl_ctx *c, const tpl_node *n, size_t bytes) {
    c->steps += 1 + (int64_t)(bytes >> 8);
    if (c->steps > c->max_steps)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "the render exceeded its budget of %lld steps",
                        (long long)c->max_steps);
    return 0;
}

int tpl_check_out(tpl_ctx *c, const tpl_node *n) {
    if (c->out->oom)
        return tpl_fail(c, n, LLM_ERR_OUT_OF_MEMORY, "out of memory while rendering the template");
    if (c->arena.used + c->capture_bytes + c->out->len > c->max_bytes) {
        c->arena.failed = 1;
        return tpl_oom(c, n);
    }
    return 0;
}

int tpl_sb_over(tpl_ctx *c, const tpl_node *n, const llm_strbuf *sb) {
    if (sb->oom) return tpl_fail(c, n, LLM_ERR_OUT_OF_MEMORY, "out of memory while rendering the template");
    if (sb->len > c->max_bytes || c->arena.used + c->capture_bytes + sb->len > c->max_bytes) {
        c->arena.failed = 1;
        return tpl_oom(c, n);
    }
    return 0;
}

static int emit(tpl_ctx *c, const tpl_node *n, const char *p, size_t len) {
    if (!len) return 0;
    llm_strbuf_append(c->out, p, len);
    if (tpl_check_out(c, n)) return -1;
    return tpl_charge(c, n, len);
}

/* ---- scopes --------------------------------------------------------------------------------- */

static tpl_scope *scope_new(tpl_ctx *c, tpl_scope *parent) {
    tpl_scope *s = tpl_alloc(&c->arena, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

static int scope_set(tpl_ctx *c, tpl_scope *s, tpl_str name, tv v) {
    tv key = tv_str(name.p, name.n);
    return tpl_dict_set(c, &s->vars, key, v);
}

static int lookup(tpl_ctx *c, tpl_scope *s, tpl_str name, tv *out) {
    for (; s; s = s->parent) {
        if (!s->vars.n) continue;
        tv *v = tpl_dict_find_str(&s->vars, name.p, name.n);
        if (v) {
            *out = *v;
            return 1;
        }
    }
    return tpl_global_lookup(c, name, out);
}

/* ---- expressions ---------------------------------------------------------------------------- */

static int eval(tpl_ctx *c, tpl_scope *s, const tpl_node *n, tv *out);
static int exec_body(tpl_ctx *c, tpl_scope *s, tpl_node *const *body, size_t k);

static int enter(tpl_ctx *c, const tpl_node *n) {
    if (++c->depth > TPL_MAX_EVAL_DEPTH) {
        c->depth--;
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "template recursion too deep (more than %d levels)",
                        TPL_MAX_EVAL_DEPTH);
    }
    return 0;
}

/* Positional and keyword arguments of a call / filter / test node. */
typedef struct call_args {
    tv *args;
    size_t nargs;
    tpl_kwarg *kw;
    size_t nkw;
} call_args;

static int eval_args(tpl_ctx *c, tpl_scope *s, const tpl_node *n, call_args *a) {
    a->nargs = n->n_args;
    a->nkw = n->n_kwargs;
    a->args = NULL;
    a->kw = NULL;
    if (a->nargs && !(a->args = tpl_alloc(&c->arena, a->nargs * sizeof(tv)))) return tpl_oom(c, n);
    if (a->nkw && !(a->kw = tpl_alloc(&c->arena, a->nkw * sizeof(tpl_kwarg)))) return tpl_oom(c, n);
    for (size_t i = 0; i < a->nargs; i++)
        if (eval(c, s, n->args[i], &a->args[i])) return -1;
    for (size_t i = 0; i < a->nkw; i++) {
        a->kw[i].name = n->kwargs[i]->s;
        if (eval(c, s, n->kwargs[i]->a, &a->kw[i].value)) return -1;
    }
    return 0;
}

/* A filter node whose chain ends in NULL (filter blocks, set blocks) takes *input there. */
static int eval_filter(tpl_ctx *c, tpl_scope *s, const tpl_node *n, const tv *input, tv *out) {
    tv in;
    if (n->a) {
        if (n->a->kind == N_FILTER && input) {
            if (eval_filter(c, s, n->a, input, &in)) return -1;
        } else if (eval(c, s, n->a, &in)) {
            return -1;
        }
    } else {
        in = input ? *input : tv_undef(TU_HINT, "", 0);
    }
    call_args a;
    if (eval_args(c, s, n, &a)) return -1;
    if (n->op == TPL_UNKNOWN)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "No filter named '%.*s' found.", (int)n->s.n, n->s.p);
    if (n->op == TPL_UNSUPPORTED)
        return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "the '%.*s' filter is not supported", (int)n->s.n, n->s.p);
    if (tpl_charge(c, n, 0)) return -1;
    return tpl_apply_filter(c, n, n->op, in, a.args, a.nargs, a.kw, a.nkw, out);
}

static int compare(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, int *res) {
    int e;
    switch (op) {
    case OP_EQ:
    case OP_NE:
        if ((e = tv_eq(c, n, a, b)) < 0) return -1;
        *res = op == OP_EQ ? e : !e;
        return 0;
    case OP_IN:
    case OP_NOTIN:
        if (tv_contains(c, n, b, a, &e)) return -1;
        *res = op == OP_IN ? e : !e;
        return 0;
    default:
        return tv_order(c, n, op, a, b, res);
    }
}

static int eval_inner(tpl_ctx *c, tpl_scope *s, const tpl_node *n, tv *out) {
    switch (n->kind) {
    case N_CONST:
        *out = n->value;
        return 0;
    case N_NAME:
        if (!lookup(c, s, n->s, out)) *out = tv_undef(TU_NAME, n->s.p, n->s.n);
        return 0;
    case N_GETATTR: {
        tv obj;
        if (eval(c, s, n->a, &obj)) return -1;
        return tv_getattr(c, n, obj, n->s, out);
    }
    case N_GETITEM: {
        tv obj, key;
        if (eval(c, s, n->a, &obj)) return -1;
        if (n->b->kind == N_SLICE) {
            tv b[3] = {tv_none(), tv_none(), tv_none()};
            const tpl_node *parts[3] = {n->b->a, n->b->b, n->b->c};
            for (int i = 0; i < 3; i++)
                if (parts[i] && eval(c, s, parts[i], &b[i])) return -1;
            return tv_slice(c, n, obj, b[0], b[1], b[2], out);
        }
        if (eval(c, s, n->b, &key)) return -1;
        return tv_getitem(c, n, obj, key, out);
    }
    case N_CALL: {
        tv callee;
        if (eval(c, s, n->a, &callee)) return -1;
        call_args a;
        if (eval_args(c, s, n, &a)) return -1;
        return tpl_call_value(c, n, callee, a.args, a.nargs, a.kw, a.nkw, out);
    }
    case N_FILTER:
        return eval_filter(c, s, n, NULL, out);
    case N_TEST: {
        tv in;
        if (eval(c, s, n->a, &in)) return -1;
        call_args a;
        if (eval_args(c, s, n, &a)) return -1;
        if (n->op == TPL_UNKNOWN)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "No test named '%.*s' found.", (int)n->s.n, n->s.p);
        if (n->op == TPL_UNSUPPORTED)
            return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "the '%.*s' test is not supported", (int)n->s.n,
                            n->s.p);
        int r;
        if (tpl_apply_test(c, n, n->op, in, a.args, a.nargs, a.kw, a.nkw, &r)) return -1;
        *out = tv_bool(r);
        return 0;
    }
    case N_NEG:
    case N_POS: {
        tv v;
        if (eval(c, s, n->a, &v)) return -1;
        if (v.kind == TV_UNDEF) return tpl_undefined_error(c, n, v);
        if (v.kind == TV_FLOAT)
            *out = tv_float(n->kind == N_NEG ? -v.u.f : v.u.f);
        else if (v.kind == TV_INT || v.kind == TV_BOOL) {
            int64_t x = v.kind == TV_INT ? v.u.i : v.u.b;
            if (n->kind == N_NEG && x == INT64_MIN)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                "integer overflow (integers are limited to 64 bits here)");
            *out = tv_int(n->kind == N_NEG ? -x : x);
        } else {
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "bad operand type for unary %c: '%s'",
                            n->kind == N_NEG ? '-' : '+', tv_type_name(v));
        }
        return 0;
    }
    case N_NOT: {
        tv v;
        if (eval(c, s, n->a, &v)) return -1;
        *out = tv_bool(!tv_truthy(v));
        return 0;
    }
    case N_BINOP: {
        tv a, b;
        if (eval(c, s, n->a, &a) || eval(c, s, n->b, &b)) return -1;
        return tv_binop(c, n, n->op, a, b, out);
    }
    case N_CONCAT: {
        llm_strbuf sb = LLM_STRBUF_INIT;
        for (size_t i = 0; i < n->n_args; i++) {
            tv v;
            if (eval(c, s, n->args[i], &v) || tv_write_str(c, n, v, &sb)) {
                llm_strbuf_free(&sb);
                return -1;
            }
        }
        if (tpl_charge(c, n, sb.len)) {
            llm_strbuf_free(&sb);
            return -1;
        }
        return tpl_sb_to_str(c, n, &sb, out);
    }
    case N_AND:
    case N_OR: {
        if (eval(c, s, n->a, out)) return -1;
        int t = tv_truthy(*out);
        if ((n->kind == N_AND) == (t != 0)) return eval(c, s, n->b, out);
        return 0;
    }
    case N_COMPARE: {
        tv left;
        if (eval(c, s, n->a, &left)) return -1;
        for (size_t i = 0; i < n->n_args; i++) {
            tv right;
            const tpl_node *o = n->args[i];
            int r;
            if (eval(c, s, o->a, &right) || compare(c, o, o->op, left, right, &r)) return -1;
            if (!r) {
                *out = tv_bool(0);
                return 0;
            }
            left = right;
        }
        *out = tv_bool(1);
        return 0;
    }
    case N_CONDEXPR: {
        tv t;
        if (eval(c, s, n->a, &t)) return -1;
        if (tv_truthy(t)) return eval(c, s, n->b, out);
        if (n->c) return eval(c, s, n->c, out);
        static const char msg[] =
            "the inline if-expression evaluated to false and no else section was defined.";
        *out = tv_undef(TU_HINT, msg, sizeof msg - 1);
        return 0;
    }
    case N_LIST:
    case N_TUPLE: {
        tpl_list *l = tpl_list_new(c, n->n_args);
        if (!l) return tpl_oom(c, n);
        for (size_t i = 0; i < n->n_args; i++)
            if (eval(c, s, n->args[i], &l->items[l->n++])) return -1;
        *out = tv_list_val(l, n->kind == N_TUPLE ? TVF_TUPLE : 0);
        return 0;
    }
    case N_DICT: {
        tpl_dict *d = tpl_dict_new(c);
        if (!d) return tpl_oom(c, n);
        for (size_t i = 0; i < n->n_args; i++) {
            tv k, v;
            if (eval(c, s, n->args[i]->a, &k) || eval(c, s, n->args[i]->b, &v)) return -1;
            if (!tpl_key_hashable(k))
                return tpl_fail(c, n->args[i], LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(k));
            if (tpl_dict_set(c, d, k, v)) return -1;
        }
        *out = tv_dict_val(d);
        return 0;
    }
    case N_SLICE: { /* a slice inside a tuple subscript (x[1:2, 3]): no type takes those keys */
        static const char msg[] = "slice objects are only supported as the whole subscript";
        *out = tv_undef(TU_HINT, msg, sizeof msg - 1);
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_INTERNAL, "internal error: node kind %d is not an expression", n->kind);
    }
}

static int eval(tpl_ctx *c, tpl_scope *s, const tpl_node *n, tv *out) {
    if (enter(c, n)) return -1;
    const tpl_node *saved = c->cur;
    c->cur = n;
    int rc = eval_inner(c, s, n, out);
    c->cur = saved;
    c->depth--;
    if (rc == 0 && c->arena.failed) return tpl_oom(c, n);
    return rc;
}

/* ---- assignment ----------------------------------------------------------------------------- */

static int assign(tpl_ctx *c, tpl_scope *s, const tpl_node *target, tv v) {
    if (target->kind == N_NAME) return scope_set(c, s, target->s, v) ? tpl_oom(c, target) : 0;
    if (target->kind == N_NSREF) {
        tv ns;
        if (!lookup(c, s, target->s, &ns) || ns.kind != TV_NS)
            return tpl_fail(c, target, LLM_ERR_BAD_FORMAT, "cannot assign attribute on non-namespace object");
        return tpl_dict_set(c, ns.u.dict, tv_str(target->s2.p, target->s2.n), v) ? tpl_oom(c, target) : 0;
    }
    /* tuple unpacking */
    tpl_list *items;
    if (v.kind == TV_UNDEF) return tpl_undefined_error(c, target, v);
    if (v.kind != TV_LIST && v.kind != TV_STR && v.kind != TV_DICT && v.kind != TV_ITER)
        return tpl_fail(c, target, LLM_ERR_BAD_FORMAT, "cannot unpack non-iterable %s object",
                        tv_type_name(v));
    if (tv_items(c, target, v, &items)) return -1;
    if (items->n < target->n_args)
        return tpl_fail(c, target, LLM_ERR_BAD_FORMAT, "not enough values to unpack (expected %zu, got %zu)",
                        target->n_args, items->n);
    if (items->n > target->n_args)
        return tpl_fail(c, target, LLM_ERR_BAD_FORMAT, "too many values to unpack (expected %zu)",
                        target->n_args);
    for (size_t i = 0; i < target->n_args; i++)
        if (assign(c, s, target->args[i], items->items[i])) return -1;
    return 0;
}

/* ---- macros --------------------------------------------------------------------------------- */

/* Renders body into a new string (a child scope must be passed by the caller). */
static int capture(tpl_ctx *c, tpl_scope *s, const tpl_node *n, tpl_node *const *body, size_t k, tv *out) {
    llm_strbuf buf = LLM_STRBUF_INIT, *saved = c->out;
    size_t saved_capture = c->capture_bytes;
    c->capture_bytes += saved->len;
    c->out = &buf;
    int rc = exec_body(c, s, body, k);
    c->out = saved;
    c->capture_bytes = saved_capture;
    if (rc < 0) {
        llm_strbuf_free(&buf);
        return -1;
    }
    return tpl_sb_to_str(c, n, &buf, out);
}

static int call_macro(tpl_ctx *c, const tpl_node *n, tpl_macro *m, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv caller, tv *out) {
    const tpl_node *def = m->def;
    int flags = def->op;
    const char *mname = def->kind == N_MACRO ? "" : "caller";
    char namebuf[80];
    if (def->kind == N_MACRO) {
        snprintf(namebuf, sizeof namebuf, "%.*s", (int)(def->s.n > 60 ? 60 : def->s.n), def->s.p);
        mname = namebuf;
    }
    if (tpl_charge(c, n, 0)) return -1;
    tpl_scope *ms = scope_new(c, m->closure);
    if (!ms) return tpl_oom(c, n);
    size_t np = def->n_args;
    if (nargs > np && !(flags & 1))
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "macro '%s' takes not more than %zu argument(s)", mname,
                        np);
    int *bound = tpl_alloc(&c->arena, (np + 1) * sizeof *bound);
    tpl_dict *extra_kw = (flags & 2) ? tpl_dict_new(c) : NULL;
    if (!bound || ((flags & 2) && !extra_kw)) return tpl_oom(c, n);
    for (size_t i = 0; i < nargs && i < np; i++) {
        if (scope_set(c, ms, def->args[i]->s, args[i])) return tpl_oom(c, n);
        bound[i] = 1;
    }
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        for (; i < np; i++)
            if (def->args[i]->s.n == kw[k].name.n &&
                memcmp(def->args[i]->s.p, kw[k].name.p, kw[k].name.n) == 0)
                break;
        if (i < np && !bound[i]) {
            if (scope_set(c, ms, def->args[i]->s, kw[k].value)) return tpl_oom(c, n);
            bound[i] = 1;
        } else if (tpl_str_eq(kw[k].name, "caller") && (flags & 4)) {
            caller = kw[k].value;
        } else if (flags & 2) {
            if (tpl_dict_set(c, extra_kw, tv_str(kw[k].name.p, kw[k].name.n), kw[k].value)) return -1;
        } else {
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "macro '%s' takes no keyword argument '%.*s'", mname,
                            (int)kw[k].name.n, kw[k].name.p);
        }
    }
    for (size_t i = 0; i < np; i++) {
        if (bound[i]) continue;
        tv v;
        if (def->args[i]->a) {
            if (eval(c, ms, def->args[i]->a, &v)) return -1;
        } else {
            llm_strbuf sb = LLM_STRBUF_INIT;
            llm_strbuf_appendf(&sb, "parameter '%.*s' was not provided", (int)def->args[i]->s.n,
                               def->args[i]->s.p);
            tv msg;
            if (tpl_sb_to_str(c, n, &sb, &msg)) return -1;
            v = tv_undef(TU_HINT, msg.u.s.p, msg.u.s.n);
        }
        if (scope_set(c, ms, def->args[i]->s, v)) return tpl_oom(c, n);
    }
    if (flags & 1) {
        tpl_list *va = tpl_list_new(c, nargs > np ? nargs - np : 0);
        if (!va) return tpl_oom(c, n);
        for (size_t i = np; i < nargs; i++) va->items[va->n++] = args[i];
        if (scope_set(c, ms, (tpl_str){"varargs", 7}, tv_list_val(va, TVF_TUPLE))) return tpl_oom(c, n);
    }
    if (flags & 2 && scope_set(c, ms, (tpl_str){"kwargs", 6}, tv_dict_val(extra_kw))) return tpl_oom(c, n);
    if (flags & 4) {
        if (caller.kind == TV_NONE) caller = tv_undef(TU_HINT, "No caller defined", 17);
        if (scope_set(c, ms, (tpl_str){"caller", 6}, caller)) return tpl_oom(c, n);
    }
    if (enter(c, n)) return -1;
    int rc = capture(c, ms, n, def->body, def->n_body, out);
    c->depth--;
    return rc;
}

int tpl_call_value(tpl_ctx *c, const tpl_node *n, tv callee, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *out) {
    switch (callee.kind) {
    case TV_MACRO:
        return call_macro(c, n, callee.u.macro, args, nargs, kw, nkw, tv_none(), out);
    case TV_FUNC:
        if (tpl_charge(c, n, 0)) return -1;
        return tpl_call_builtin(c, n, callee.u.func, args, nargs, kw, nkw, out);
    case TV_UNDEF:
        return tpl_undefined_error(c, n, callee);
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object is not callable", tv_type_name(callee));
    }
}

/* ---- statements ----------------------------------------------------------------------------- */

static int exec_for(tpl_ctx *c, tpl_scope *s, const tpl_node *n) {
    tv iterable;
    if (eval(c, s, n->b, &iterable)) return EXEC_ERR;
    tpl_list *items;
    if (tv_items(c, n->b, iterable, &items)) return EXEC_ERR;
    if (n->c) { /* {% for x in xs if cond %}: filter first, so loop.* describe the filtered sequence */
        tpl_list *kept = tpl_list_new(c, items->n);
        if (!kept) return tpl_oom(c, n);
        for (size_t i = 0; i < items->n; i++) {
            if (tpl_charge(c, n, 0)) return EXEC_ERR;
            tpl_scope *fs = scope_new(c, s);
            tv t;
            if (!fs) return tpl_oom(c, n);
            if (assign(c, fs, n->a, items->items[i]) || eval(c, fs, n->c, &t)) return EXEC_ERR;
            if (tv_truthy(t)) kept->items[kept->n++] = items->items[i];
        }
        items = kept;
    }
    if (!items->n) {
        if (!n->n_else) return EXEC_OK;
        tpl_scope *es = scope_new(c, s);
        if (!es) return tpl_oom(c, n);
        int rc = exec_body(c, es, n->else_body, n->n_else);
        return rc < 0 ? EXEC_ERR : EXEC_OK;
    }
    tpl_loop *loop = tpl_alloc(&c->arena, sizeof *loop);
    if (!loop) return tpl_oom(c, n);
    loop->seq = items;
    tv loop_v = {TV_LOOP, 0, 0, {0}};
    loop_v.u.loop = loop;
    for (size_t i = 0; i < items->n; i++) {
        if (tpl_charge(c, n, 0)) return EXEC_ERR;
        loop->index0 = i;
        tpl_scope *is = scope_new(c, s);
        if (!is) return tpl_oom(c, n);
        if (assign(c, is, n->a, items->items[i])) return EXEC_ERR;
        if (scope_set(c, is, (tpl_str){"loop", 4}, loop_v)) return tpl_oom(c, n);
        int rc = exec_body(c, is, n->body, n->n_body);
        if (rc == EXEC_ERR) return EXEC_ERR;
        if (rc == EXEC_BREAK) break;
    }
    return EXEC_OK;
}

static int exec_stmt(tpl_ctx *c, tpl_scope *s, const tpl_node *n) {
    switch (n->kind) {
    case N_DATA:
        return emit(c, n, n->s.p, n->s.n) ? EXEC_ERR : EXEC_OK;
    case N_OUTPUT: {
        tv v;
        if (eval(c, s, n->a, &v)) return EXEC_ERR;
        if (v.kind == TV_STR) return emit(c, n, v.u.s.p, v.u.s.n) ? EXEC_ERR : EXEC_OK;
        size_t before = c->out->len;
        if (tv_write_str(c, n->a, v, c->out) || tpl_check_out(c, n) || tpl_charge(c, n, c->out->len - before))
            return EXEC_ERR;
        return EXEC_OK;
    }
    case N_IF: {
        tv t;
        if (eval(c, s, n->a, &t)) return EXEC_ERR;
        if (tv_truthy(t)) return exec_body(c, s, n->body, n->n_body);
        return exec_body(c, s, n->else_body, n->n_else);
    }
    case N_FOR:
        return exec_for(c, s, n);
    case N_SET: {
        tv v;
        if (eval(c, s, n->b, &v) || assign(c, s, n->a, v)) return EXEC_ERR;
        return EXEC_OK;
    }
    case N_SET_BLOCK:
    case N_FILTER_BLOCK: {
        tpl_scope *bs = scope_new(c, s);
        tv v;
        if (!bs) return tpl_oom(c, n);
        if (capture(c, bs, n, n->body, n->n_body, &v)) return EXEC_ERR;
        if (n->b && eval_filter(c, s, n->b, &v, &v)) return EXEC_ERR;
        if (n->kind == N_SET_BLOCK) return assign(c, s, n->a, v) ? EXEC_ERR : EXEC_OK;
        if (v.kind != TV_STR) {
            size_t before = c->out->len;
            if (tv_write_str(c, n, v, c->out) || tpl_check_out(c, n) ||
                tpl_charge(c, n, c->out->len - before))
                return EXEC_ERR;
            return EXEC_OK;
        }
        return emit(c, n, v.u.s.p, v.u.s.n) ? EXEC_ERR : EXEC_OK;
    }
    case N_MACRO: {
        tpl_macro *m = tpl_alloc(&c->arena, sizeof *m);
        if (!m) return tpl_oom(c, n);
        m->def = n;
        m->closure = s;
        m->caller = tv_none();
        tv v = {TV_MACRO, 0, 0, {0}};
        v.u.macro = m;
        return scope_set(c, s, n->s, v) ? tpl_oom(c, n) : EXEC_OK;
    }
    case N_CALL_BLOCK: {
        tpl_macro *m = tpl_alloc(&c->arena, sizeof *m);
        if (!m) return tpl_oom(c, n);
        m->def = n;
        m->closure = s;
        m->caller = tv_none();
        tv caller = {TV_MACRO, 0, 0, {0}};
        caller.u.macro = m;
        const tpl_node *call = n->a;
        tv callee, out;
        if (eval(c, s, call->a, &callee)) return EXEC_ERR;
        call_args a;
        if (eval_args(c, s, call, &a)) return EXEC_ERR;
        if (callee.kind == TV_MACRO) {
            if (call_macro(c, call, callee.u.macro, a.args, a.nargs, a.kw, a.nkw, caller, &out))
                return EXEC_ERR;
        } else {
            /* a built-in gets caller as a keyword argument, as jinja2 passes it */
            tpl_kwarg *kw = tpl_alloc(&c->arena, (a.nkw + 1) * sizeof *kw);
            if (!kw) return tpl_oom(c, n);
            if (a.nkw) memcpy(kw, a.kw, a.nkw * sizeof *kw);
            kw[a.nkw].name = (tpl_str){"caller", 6};
            kw[a.nkw].value = caller;
            if (tpl_call_value(c, call, callee, a.args, a.nargs, kw, a.nkw + 1, &out)) return EXEC_ERR;
        }
        size_t before = c->out->len;
        if (tv_write_str(c, n, out, c->out) || tpl_check_out(c, n) || tpl_charge(c, n, c->out->len - before))
            return EXEC_ERR;
        return EXEC_OK;
    }
    case N_WITH: {
        tpl_scope *ws = scope_new(c, s);
        if (!ws) return tpl_oom(c, n);
        for (size_t i = 0; i < n->n_args; i++) {
            tv v;
            if (eval(c, s, n->args[i]->a, &v)) return EXEC_ERR;
            if (scope_set(c, ws, n->args[i]->s, v)) return tpl_oom(c, n);
        }
        return exec_body(c, ws, n->body, n->n_body);
    }
    case N_BREAK:
        return EXEC_BREAK;
    case N_CONTINUE:
        return EXEC_CONTINUE;
    case N_SCOPE_BODY: {
        tpl_scope *bs = s;
        if (n->op != 1 && !(bs = scope_new(c, s))) return tpl_oom(c, n);
        return exec_body(c, bs, n->body, n->n_body);
    }
    default:
        return tpl_fail(c, n, LLM_ERR_INTERNAL, "internal error: node kind %d is not a statement", n->kind);
    }
}

static int exec_body(tpl_ctx *c, tpl_scope *s, tpl_node *const *body, size_t k) {
    if (!k) return EXEC_OK;
    if (enter(c, body[0])) return EXEC_ERR;
    int rc = EXEC_OK;
    for (size_t i = 0; i < k; i++) {
        c->cur = body[i];
        rc = exec_stmt(c, s, body[i]);
        if (rc == EXEC_OK && c->arena.failed) rc = tpl_oom(c, body[i]);
        if (rc != EXEC_OK) break;
    }
    c->depth--;
    return rc;
}

int tpl_render_root(tpl_ctx *c, const tpl_node *root, const tv *vars_dict) {
    tpl_scope *s = scope_new(c, NULL);
    if (!s) return tpl_oom(c, root);
    if (vars_dict && vars_dict->kind == TV_DICT) s->vars = *vars_dict->u.dict;
    int rc = exec_body(c, s, root->body, root->n_body);
    return rc == EXEC_ERR ? -1 : 0;
}
