/* The value system: Python semantics for the types chat templates see (None, bool, int, float, str,
 * list/tuple, dict, plus jinja2's Undefined, namespace, loop, macros and built-in callables).
 * Every value lives in the render arena. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "template/tpl.h"

tv tv_list_val(tpl_list *l, unsigned flags) {
    tv v = {TV_LIST, (uint8_t)flags, 0, {0}};
    v.u.list = l;
    return v;
}

tv tv_dict_val(tpl_dict *d) {
    tv v = {TV_DICT, 0, 0, {0}};
    v.u.dict = d;
    return v;
}

tv tv_cstr(const char *s) {
    tv v = tv_str(s, strlen(s));
    if (tpl_is_ascii(s, v.u.s.n)) v.flags |= TVF_ASCII;
    return v;
}

tpl_list *tpl_list_new(tpl_ctx *c, size_t cap) {
    tpl_list *l = tpl_alloc(&c->arena, sizeof *l);
    if (!l) return NULL;
    if (!cap) cap = 1; /* items is never NULL: memcpy of zero items stays well-defined */
    l->items = tpl_alloc(&c->arena, cap * sizeof(tv));
    if (!l->items) return NULL;
    l->cap = cap;
    return l;
}

int tpl_list_push(tpl_ctx *c, tpl_list *l, tv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        tv *items = tpl_realloc(&c->arena, l->items, l->cap * sizeof(tv), cap * sizeof(tv));
        if (!items) return -1;
        l->items = items, l->cap = cap;
    }
    l->items[l->n++] = v;
    return 0;
}

tpl_dict *tpl_dict_new(tpl_ctx *c) {
    return tpl_alloc(&c->arena, sizeof(tpl_dict));
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Hash consistent with Python equality: 1, 1.0 and True hash alike. -1: unhashable. */
static int key_hash(tv k, uint64_t *h) {
    switch (k.kind) {
    case TV_STR: {
        uint64_t x = 1469598103934665603ULL;
        for (size_t i = 0; i < k.u.s.n; i++) x = (x ^ (unsigned char)k.u.s.p[i]) * 1099511628211ULL;
        *h = mix64(x);
        return 0;
    }
    case TV_BOOL:
        *h = mix64((uint64_t)k.u.b);
        return 0;
    case TV_INT:
        *h = mix64((uint64_t)k.u.i);
        return 0;
    case TV_FLOAT:
        if (k.u.f == floor(k.u.f) && fabs(k.u.f) < 9.2e18)
            *h = mix64((uint64_t)(int64_t)k.u.f);
        else {
            uint64_t bits;
            memcpy(&bits, &k.u.f, 8);
            *h = mix64(bits);
        }
        return 0;
    case TV_NONE:
        *h = 0x9e3779b97f4a7c15ULL;
        return 0;
    case TV_UNDEF:
        *h = 0x51ed270b1f3a5c2dULL;
        return 0;
    case TV_LIST:
        if (k.flags & TVF_TUPLE) {
            uint64_t x = 0x345678;
            for (size_t i = 0; i < k.u.list->n; i++) {
                uint64_t e;
                if (key_hash(k.u.list->items[i], &e)) return -1;
                x = mix64(x ^ e);
            }
            *h = x;
            return 0;
        }
        return -1;
    case TV_DICT:
        return -1;
    default:
        *h = mix64((uint64_t)(uintptr_t)k.u.dict);
        return 0; /* identity-hashed objects */
    }
}

static int key_eq(tv a, tv b) {
    if (a.kind == TV_STR && b.kind == TV_STR)
        return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    return tv_eq(NULL, NULL, a, b) == 1;
}

static void index_insert(tpl_dict *d, size_t entry, uint64_t h) {
    size_t mask = d->index_cap - 1, i = (size_t)h & mask;
    while (d->index[i]) i = (i + 1) & mask;
    d->index[i] = (uint32_t)(entry + 1);
}

static int rebuild_index(tpl_ctx *c, tpl_dict *d, size_t cap) {
    uint32_t *idx = tpl_alloc(&c->arena, cap * sizeof *idx);
    if (!idx) return -1;
    d->index = idx, d->index_cap = cap;
    for (size_t e = 0; e < d->n; e++) {
        uint64_t h;
        key_hash(d->keys[e], &h);
        index_insert(d, e, h);
    }
    return 0;
}

static tv *find(const tpl_dict *d, tv key, uint64_t h) {
    if (!d->index) {
        for (size_t e = 0; e < d->n; e++)
            if (key_eq(d->keys[e], key)) return &d->vals[e];
        return NULL;
    }
    size_t mask = d->index_cap - 1, i = (size_t)h & mask;
    while (d->index[i]) {
        size_t e = d->index[i] - 1;
        if (key_eq(d->keys[e], key)) return &d->vals[e];
        i = (i + 1) & mask;
    }
    return NULL;
}

int tpl_key_hashable(tv key) {
    uint64_t h;
    return key_hash(key, &h) == 0;
}

tv *tpl_dict_find(const tpl_dict *d, tv key) {
    uint64_t h;
    if (key_hash(key, &h)) return NULL;
    return find(d, key, h);
}

tv *tpl_dict_find_str(const tpl_dict *d, const char *p, size_t n) {
    return tpl_dict_find(d, tv_str(p, n));
}

int tpl_dict_set(tpl_ctx *c, tpl_dict *d, tv key, tv val) {
    uint64_t h;
    if (key_hash(key, &h))
        return tpl_fail(c, NULL, LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(key));
    tv *slot = find(d, key, h);
    if (slot) {
        *slot = val;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        tv *k = tpl_realloc(&c->arena, d->keys, d->cap * sizeof(tv), cap * sizeof(tv));
        tv *v = tpl_realloc(&c->arena, d->vals, d->cap * sizeof(tv), cap * sizeof(tv));
        if (!k || !v) return tpl_oom(c, NULL);
        d->keys = k, d->vals = v, d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
    if (d->n > 8) {
        if (d->n * 2 > d->index_cap) {
            size_t cap = 32;
            while (cap < d->n * 4) cap *= 2;
            if (rebuild_index(c, d, cap)) return tpl_oom(c, NULL);
        } else {
            index_insert(d, d->n - 1, h);
        }
    }
    return 0;
}

int tpl_new_str(tpl_ctx *c, const tpl_node *n, const char *p, size_t len, tv *out) {
    char *s = tpl_strdup(&c->arena, p, len);
    if (!s) return tpl_oom(c, n);
    *out = tv_str(s, len);
    return 0;
}

int tpl_sb_to_str(tpl_ctx *c, const tpl_node *n, llm_strbuf *sb, tv *out) {
    if (sb->oom) {
        llm_strbuf_free(sb);
        return tpl_oom(c, n);
    }
    int rc = tpl_new_str(c, n, sb->data ? sb->data : "", sb->len, out);
    llm_strbuf_free(sb);
    return rc;
}

int tv_truthy(tv v) {
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return 0;
    case TV_BOOL:
        return v.u.b;
    case TV_INT:
        return v.u.i != 0;
    case TV_FLOAT:
        return v.u.f != 0;
    case TV_STR:
        return v.u.s.n != 0;
    case TV_LIST:
        return v.u.list->n != 0;
    case TV_DICT:
        return v.u.dict->n != 0;
    default:
        return 1;
    }
}

const char *tv_type_name(tv v) {
    switch (v.kind) {
    case TV_UNDEF:
        return "Undefined";
    case TV_NONE:
        return "NoneType";
    case TV_BOOL:
        return "bool";
    case TV_INT:
        return "int";
    case TV_FLOAT:
        return "float";
    case TV_STR:
        return "str";
    case TV_LIST:
        if (v.flags & TVF_TUPLE) return "tuple";
        if (v.flags & TVF_ITEMS) return "dict_items";
        if (v.flags & TVF_KEYS) return "dict_keys";
        if (v.flags & TVF_VALUES) return "dict_values";
        if (v.flags & TVF_RANGE) return "range";
        return "list";
    case TV_DICT:
        return "dict";
    case TV_NS:
        return "Namespace";
    case TV_ITER:
        return v.u.iter->type_name;
    case TV_MACRO:
        return "Macro";
    case TV_FUNC:
        return "builtin_function_or_method";
    case TV_LOOP:
        return "LoopContext";
    default:
        return "object";
    }
}

const char *tv_object_type_repr(tv v) {
    switch (v.kind) {
    case TV_NONE:
        return "None";
    case TV_NS:
        return "jinja2.utils.Namespace object";
    case TV_LOOP:
        return "jinja2.runtime.LoopContext object";
    case TV_MACRO:
        return "jinja2.runtime.Macro object";
    case TV_UNDEF:
        return "jinja2.runtime.Undefined object";
    default:
        break;
    }
    static const char *const names[] = {"str object",
                                        "list object",
                                        "tuple object",
                                        "dict object",
                                        "int object",
                                        "float object",
                                        "bool object",
                                        "generator object",
                                        "dict_items object",
                                        "dict_keys object",
                                        "dict_values object",
                                        "range object",
                                        "builtin_function_or_method object"};
    const char *t = tv_type_name(v);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(names[i], t, strlen(t)) == 0 && names[i][strlen(t)] == ' ') return names[i];
    return "object";
}

/* ---- equality and ordering ------------------------------------------------------------------ */

static int num_eq(tv a, tv b) {
    if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
        int64_t x = a.kind == TV_INT ? a.u.i : a.u.b, y = b.kind == TV_INT ? b.u.i : b.u.b;
        return x == y;
    }
    if (a.kind == TV_FLOAT && b.kind == TV_FLOAT) return a.u.f == b.u.f;
    tv f = a.kind == TV_FLOAT ? a : b, i = a.kind == TV_FLOAT ? b : a;
    int64_t iv = i.kind == TV_INT ? i.u.i : i.u.b;
    double d = f.u.f;
    if (d != floor(d) || !(fabs(d) < 9.3e18)) return 0;
    if (d >= 9223372036854775807.0 || d < -9223372036854775808.0) return 0;
    return (int64_t)d == iv;
}

static int eq_depth(tpl_ctx *c, const tpl_node *n, tv a, tv b, int depth) {
    if (depth > TPL_MAX_VALUE_DEPTH) {
        if (c) tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "values nested too deeply to compare");
        return -1;
    }
    if (tv_is_num(a) && tv_is_num(b)) return num_eq(a, b);
    if (a.kind != b.kind) return 0;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return 1;
    case TV_STR:
        return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case TV_LIST: {
        if ((a.flags & TVF_TUPLE) != (b.flags & TVF_TUPLE)) return 0;
        if (a.u.list == b.u.list) return 1;
        if (a.u.list->n != b.u.list->n) return 0;
        for (size_t i = 0; i < a.u.list->n; i++) {
            int r = eq_depth(c, n, a.u.list->items[i], b.u.list->items[i], depth + 1);
            if (r != 1) return r;
        }
        return 1;
    }
    case TV_DICT: {
        if (a.u.dict == b.u.dict) return 1;
        if (a.u.dict->n != b.u.dict->n) return 0;
        for (size_t i = 0; i < a.u.dict->n; i++) {
            tv *o = tpl_dict_find(b.u.dict, a.u.dict->keys[i]);
            if (!o) return 0;
            int r = eq_depth(c, n, a.u.dict->vals[i], *o, depth + 1);
            if (r != 1) return r;
        }
        return 1;
    }
    default:
        return a.u.dict == b.u.dict; /* identity */
    }
}

int tv_eq(tpl_ctx *c, const tpl_node *n, tv a, tv b) {
    return eq_depth(c, n, a, b, 0);
}

static const char *op_sym(int op) {
    return op == OP_LT ? "<" : op == OP_LTEQ ? "<=" : op == OP_GT ? ">" : ">=";
}

static int order_depth(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, int *res, int depth) {
    if (a.kind == TV_UNDEF) return tpl_undefined_error(c, n, a);
    if (b.kind == TV_UNDEF) return tpl_undefined_error(c, n, b);
    if (depth > TPL_MAX_VALUE_DEPTH)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "values nested too deeply to compare");
    int cmp = 0;
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
            int64_t x = a.kind == TV_INT ? a.u.i : a.u.b, y = b.kind == TV_INT ? b.u.i : b.u.b;
            cmp = x < y ? -1 : x > y;
        } else {
            double x = tv_num(a), y = tv_num(b);
            if (isnan(x) || isnan(y)) {
                *res = 0;
                return 0;
            }
            cmp = x < y ? -1 : x > y;
        }
    } else if (a.kind == TV_STR && b.kind == TV_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, m);
        cmp = r < 0 ? -1 : r > 0 ? 1 : a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    } else if (a.kind == TV_LIST && b.kind == TV_LIST && (a.flags & TVF_TUPLE) == (b.flags & TVF_TUPLE) &&
               !(a.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES | TVF_RANGE)) &&
               !(b.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES | TVF_RANGE))) {
        size_t i = 0;
        for (; i < a.u.list->n && i < b.u.list->n; i++) {
            int e = eq_depth(c, n, a.u.list->items[i], b.u.list->items[i], depth + 1);
            if (e < 0) return -1;
            if (!e) return order_depth(c, n, op, a.u.list->items[i], b.u.list->items[i], res, depth + 1);
        }
        cmp = a.u.list->n < b.u.list->n ? -1 : a.u.list->n > b.u.list->n;
    } else {
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' not supported between instances of '%s' and '%s'",
                        op_sym(op), tv_type_name(a), tv_type_name(b));
    }
    *res = op == OP_LT ? cmp < 0 : op == OP_LTEQ ? cmp <= 0 : op == OP_GT ? cmp > 0 : cmp >= 0;
    return 0;
}

int tv_order(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, int *res) {
    return order_depth(c, n, op, a, b, res, 0);
}

/* ---- str() / repr() ------------------------------------------------------------------------- */

static int write_depth(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb, int repr, int depth);

static int write_items(tpl_ctx *c, const tpl_node *n, const tpl_list *l, llm_strbuf *sb, int depth) {
    for (size_t i = 0; i < l->n; i++) {
        if (i) llm_strbuf_append_str(sb, ", ");
        if (write_depth(c, n, l->items[i], sb, 1, depth + 1) || tpl_sb_over(c, n, sb)) return -1;
    }
    return 0;
}

static int write_dict(tpl_ctx *c, const tpl_node *n, const tpl_dict *d, llm_strbuf *sb, int depth) {
    llm_strbuf_append_char(sb, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i) llm_strbuf_append_str(sb, ", ");
        if (write_depth(c, n, d->keys[i], sb, 1, depth + 1)) return -1;
        llm_strbuf_append_str(sb, ": ");
        if (write_depth(c, n, d->vals[i], sb, 1, depth + 1) || tpl_sb_over(c, n, sb)) return -1;
    }
    llm_strbuf_append_char(sb, '}');
    return 0;
}

static int write_depth(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb, int repr, int depth) {
    if (depth > TPL_MAX_VALUE_DEPTH)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "value nested too deeply to print");
    switch (v.kind) {
    case TV_UNDEF:
        if (repr) llm_strbuf_append_str(sb, "Undefined");
        return 0;
    case TV_NONE:
        llm_strbuf_append_str(sb, "None");
        return 0;
    case TV_BOOL:
        llm_strbuf_append_str(sb, v.u.b ? "True" : "False");
        return 0;
    case TV_INT:
        llm_strbuf_appendf(sb, "%lld", (long long)v.u.i);
        return 0;
    case TV_FLOAT:
        tpl_format_float(sb, v.u.f);
        return 0;
    case TV_STR:
        if (repr)
            tpl_format_repr_str(sb, v.u.s.p, v.u.s.n);
        else
            llm_strbuf_append(sb, v.u.s.p, v.u.s.n);
        return 0;
    case TV_LIST: {
        const tpl_list *l = v.u.list;
        if (v.flags & TVF_RANGE) {
            if (l->range_step == 1)
                llm_strbuf_appendf(sb, "range(%lld, %lld)", (long long)l->range_start,
                                   (long long)l->range_stop);
            else
                llm_strbuf_appendf(sb, "range(%lld, %lld, %lld)", (long long)l->range_start,
                                   (long long)l->range_stop, (long long)l->range_step);
            return 0;
        }
        const char *pre = "[", *post = "]";
        if (v.flags & TVF_TUPLE)
            pre = "(", post = l->n == 1 ? ",)" : ")";
        else if (v.flags & TVF_ITEMS)
            pre = "dict_items([", post = "])";
        else if (v.flags & TVF_KEYS)
            pre = "dict_keys([", post = "])";
        else if (v.flags & TVF_VALUES)
            pre = "dict_values([", post = "])";
        llm_strbuf_append_str(sb, pre);
        if (write_items(c, n, l, sb, depth)) return -1;
        llm_strbuf_append_str(sb, post);
        return 0;
    }
    case TV_DICT:
        return write_dict(c, n, v.u.dict, sb, depth);
    case TV_NS:
        llm_strbuf_append_str(sb, "<Namespace ");
        if (write_dict(c, n, v.u.dict, sb, depth)) return -1;
        llm_strbuf_append_char(sb, '>');
        return 0;
    case TV_ITER:
        llm_strbuf_appendf(sb, "<%s object>", v.u.iter->type_name);
        return 0;
    case TV_MACRO: {
        const tpl_node *d = v.u.macro->def;
        if (d->kind == N_MACRO)
            llm_strbuf_appendf(sb, "<Macro '%.*s'>", (int)d->s.n, d->s.p);
        else
            llm_strbuf_append_str(sb, "<Macro 'caller'>");
        return 0;
    }
    case TV_FUNC:
        llm_strbuf_appendf(sb, "<built-in function %.*s>", (int)v.u.func->name.n, v.u.func->name.p);
        return 0;
    case TV_LOOP:
        llm_strbuf_appendf(sb, "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->seq->n);
        return 0;
    default:
        return 0;
    }
}

int tv_write_str(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb) {
    return write_depth(c, n, v, sb, 0, 0);
}
int tv_write_repr(tpl_ctx *c, const tpl_node *n, tv v, llm_strbuf *sb) {
    return write_depth(c, n, v, sb, 1, 0);
}

int tv_to_str(tpl_ctx *c, const tpl_node *n, tv v, tv *out) {
    if (v.kind == TV_STR) {
        *out = v;
        return 0;
    }
    if (v.kind == TV_UNDEF) {
        *out = tv_str("", 0);
        out->flags |= TVF_ASCII;
        return 0;
    }
    llm_strbuf sb = LLM_STRBUF_INIT;
    if (tv_write_str(c, n, v, &sb)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    return tpl_sb_to_str(c, n, &sb, out);
}

/* ---- json.dumps ----------------------------------------------------------------------------- */

static void newline_indent(llm_strbuf *sb, const tpl_json_opts *o, int level) {
    llm_strbuf_append_char(sb, '\n');
    for (int i = 0; i < level; i++) llm_strbuf_append(sb, o->indent.p, o->indent.n);
}

static int json_key(tpl_ctx *c, const tpl_node *n, tv k, const tpl_json_opts *o, llm_strbuf *sb) {
    switch (k.kind) {
    case TV_STR:
        tpl_format_json_str(sb, k.u.s.p, k.u.s.n, o->ensure_ascii);
        return 0;
    case TV_BOOL:
        llm_strbuf_append_str(sb, k.u.b ? "\"true\"" : "\"false\"");
        return 0;
    case TV_NONE:
        llm_strbuf_append_str(sb, "\"null\"");
        return 0;
    case TV_INT:
        llm_strbuf_appendf(sb, "\"%lld\"", (long long)k.u.i);
        return 0;
    case TV_FLOAT:
        llm_strbuf_append_char(sb, '"');
        if (isnan(k.u.f))
            llm_strbuf_append_str(sb, "NaN");
        else if (isinf(k.u.f))
            llm_strbuf_append_str(sb, k.u.f < 0 ? "-Infinity" : "Infinity");
        else
            tpl_format_float(sb, k.u.f);
        llm_strbuf_append_char(sb, '"');
        return 0;
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "keys must be str, int, float, bool or None, not %s",
                        tv_type_name(k));
    }
}

static int json_depth(tpl_ctx *c, const tpl_node *n, tv v, const tpl_json_opts *o, llm_strbuf *sb,
                      int level) {
    if (level > TPL_MAX_VALUE_DEPTH)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "value nested too deeply for tojson");
    switch (v.kind) {
    case TV_NONE:
        llm_strbuf_append_str(sb, "null");
        return 0;
    case TV_BOOL:
        llm_strbuf_append_str(sb, v.u.b ? "true" : "false");
        return 0;
    case TV_INT:
        llm_strbuf_appendf(sb, "%lld", (long long)v.u.i);
        return 0;
    case TV_FLOAT:
        if (isnan(v.u.f))
            llm_strbuf_append_str(sb, "NaN");
        else if (isinf(v.u.f))
            llm_strbuf_append_str(sb, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            tpl_format_float(sb, v.u.f);
        return 0;
    case TV_STR:
        tpl_format_json_str(sb, v.u.s.p, v.u.s.n, o->ensure_ascii);
        return 0;
    case TV_LIST:
        if (!(v.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES | TVF_RANGE))) {
            const tpl_list *l = v.u.list;
            if (!l->n) {
                llm_strbuf_append_str(sb, "[]");
                return 0;
            }
            llm_strbuf_append_char(sb, '[');
            for (size_t i = 0; i < l->n; i++) {
                if (i) llm_strbuf_append(sb, o->item_sep.p, o->item_sep.n);
                if (o->indent_set) newline_indent(sb, o, level + 1);
                if (json_depth(c, n, l->items[i], o, sb, level + 1) || tpl_sb_over(c, n, sb)) return -1;
            }
            if (o->indent_set) newline_indent(sb, o, level);
            llm_strbuf_append_char(sb, ']');
            if (sb->oom) return tpl_oom(c, n);
            return 0;
        }
        break;
    case TV_DICT: {
        const tpl_dict *d = v.u.dict;
        if (!d->n) {
            llm_strbuf_append_str(sb, "{}");
            return 0;
        }
        size_t *order = NULL;
        if (o->sort_keys) {
            order = tpl_alloc(&c->arena, d->n * sizeof *order);
            if (!order) return tpl_oom(c, n);
            for (size_t i = 0; i < d->n; i++) order[i] = i;
            for (size_t i = 1; i < d->n; i++) { /* insertion sort: stable, small dicts */
                size_t x = order[i], j = i;
                while (j > 0) {
                    int lt;
                    if (tv_order(c, n, OP_LT, d->keys[x], d->keys[order[j - 1]], &lt)) return -1;
                    if (!lt) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        llm_strbuf_append_char(sb, '{');
        for (size_t k = 0; k < d->n; k++) {
            size_t i = order ? order[k] : k;
            if (k) llm_strbuf_append(sb, o->item_sep.p, o->item_sep.n);
            if (o->indent_set) newline_indent(sb, o, level + 1);
            if (json_key(c, n, d->keys[i], o, sb)) return -1;
            llm_strbuf_append(sb, o->key_sep.p, o->key_sep.n);
            if (json_depth(c, n, d->vals[i], o, sb, level + 1) || tpl_sb_over(c, n, sb)) return -1;
        }
        if (o->indent_set) newline_indent(sb, o, level);
        llm_strbuf_append_char(sb, '}');
        if (sb->oom) return tpl_oom(c, n);
        return 0;
    }
    default:
        break;
    }
    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Object of type %s is not JSON serializable", tv_type_name(v));
}

int tv_write_json(tpl_ctx *c, const tpl_node *n, tv v, const tpl_json_opts *o, llm_strbuf *sb) {
    return json_depth(c, n, v, o, sb, 0);
}

/* ---- len / iteration / membership ----------------------------------------------------------- */

int tv_len(tpl_ctx *c, const tpl_node *n, tv v, int64_t *out) {
    switch (v.kind) {
    case TV_UNDEF:
        *out = 0;
        return 0;
    case TV_STR:
        *out = (int64_t)((v.flags & TVF_ASCII) ? v.u.s.n : tpl_utf8_count(v.u.s.p, v.u.s.n));
        return tpl_charge(c, n, v.u.s.n);
    case TV_LIST:
        *out = (int64_t)v.u.list->n;
        return 0;
    case TV_DICT:
        *out = (int64_t)v.u.dict->n;
        return 0;
    case TV_LOOP:
        *out = (int64_t)v.u.loop->seq->n;
        return 0;
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "object of type '%s' has no len()", tv_type_name(v));
    }
}

int tv_items(tpl_ctx *c, const tpl_node *n, tv v, tpl_list **out) {
    switch (v.kind) {
    case TV_UNDEF:
        *out = tpl_list_new(c, 0);
        return *out ? 0 : tpl_oom(c, n);
    case TV_LIST:
        *out = v.u.list;
        return 0;
    case TV_DICT: {
        tpl_list *l = tpl_list_new(c, v.u.dict->n);
        if (!l) return tpl_oom(c, n);
        if (v.u.dict->n) memcpy(l->items, v.u.dict->keys, v.u.dict->n * sizeof(tv));
        l->n = v.u.dict->n;
        *out = l;
        return 0;
    }
    case TV_STR: {
        const char *s = v.u.s.p;
        size_t len = v.u.s.n, i = 0;
        tpl_list *l = tpl_list_new(c, (v.flags & TVF_ASCII) ? len : tpl_utf8_count(s, len));
        if (!l) return tpl_oom(c, n);
        while (i < len) {
            size_t st = i;
            tpl_utf8_next(s, len, &i);
            tv ch = tv_str(s + st, i - st);
            if (i - st == 1) ch.flags |= TVF_ASCII;
            l->items[l->n++] = ch;
        }
        *out = l;
        return tpl_charge(c, n, len);
    }
    case TV_ITER: {
        tpl_iter *it = v.u.iter;
        tpl_list *l = tpl_list_new(c, it->items->n - it->pos);
        if (!l) return tpl_oom(c, n);
        for (; it->pos < it->items->n; it->pos++) l->items[l->n++] = it->items->items[it->pos];
        *out = l;
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object is not iterable", tv_type_name(v));
    }
}

int tv_contains(tpl_ctx *c, const tpl_node *n, tv container, tv item, int *res) {
    *res = 0;
    switch (container.kind) {
    case TV_UNDEF:
        return 0;
    case TV_STR:
        if (item.kind != TV_STR)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'in <string>' requires string as left operand, not %s",
                            tv_type_name(item));
        *res = item.u.s.n == 0 || memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return tpl_charge(c, n, container.u.s.n);
    case TV_DICT: {
        uint64_t h;
        if (key_hash(item, &h))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(item));
        *res = tpl_dict_find(container.u.dict, item) != NULL;
        return 0;
    }
    case TV_LIST: {
        const tpl_list *l = container.u.list;
        if (container.flags & TVF_KEYS) {
            uint64_t h;
            if (key_hash(item, &h))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(item));
        }
        for (size_t i = 0; i < l->n; i++) {
            int e = tv_eq(c, n, l->items[i], item);
            if (e < 0) return -1;
            if (e) {
                *res = 1;
                return 0;
            }
        }
        return tpl_charge(c, n, l->n * 8);
    }
    case TV_ITER: {
        tpl_iter *it = container.u.iter;
        while (it->pos < it->items->n) {
            int e = tv_eq(c, n, it->items->items[it->pos++], item);
            if (e < 0) return -1;
            if (e) {
                *res = 1;
                return 0;
            }
        }
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "argument of type '%s' is not iterable",
                        tv_type_name(container));
    }
}

/* ---- attribute and item access -------------------------------------------------------------- */

/* An attribute-undefined remembers the kind of object it came from (flags: kind | list subtype << 4)
 * to word its message as jinja2 does ("'dict object' has no attribute 'x'"). */
static tv undef_attr(tv obj, tpl_str name) {
    tv u = tv_undef(TU_ATTR, name.p, name.n);
    unsigned sub = 0;
    if (obj.kind == TV_LIST)
        sub = (obj.flags & TVF_TUPLE)    ? 1
              : (obj.flags & TVF_ITEMS)  ? 2
              : (obj.flags & TVF_KEYS)   ? 3
              : (obj.flags & TVF_VALUES) ? 4
              : (obj.flags & TVF_RANGE)  ? 5
                                         : 0;
    u.flags = (uint8_t)(obj.kind | (sub << 4));
    return u;
}

static const char *undef_obj_repr(tv u) {
    static const unsigned subflags[] = {0, TVF_TUPLE, TVF_ITEMS, TVF_KEYS, TVF_VALUES, TVF_RANGE};
    tv fake = {(uint8_t)(u.flags & 0xF), 0, 0, {0}};
    unsigned sub = u.flags >> 4;
    if (fake.kind == TV_ITER) return "generator object"; /* the iterator itself is not remembered */
    if (fake.kind == TV_LIST && sub < 6) fake.flags = (uint8_t)subflags[sub];
    return tv_object_type_repr(fake);
}

static int undef_item(tpl_ctx *c, const tpl_node *n, tv obj, tv key, tv *out) {
    if (key.kind == TV_STR) {
        *out = undef_attr(obj, key.u.s);
        return 0;
    }
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_appendf(&sb, "%s has no element ", tv_object_type_repr(obj));
    if (tv_write_repr(c, n, key, &sb)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    tv msg;
    if (tpl_sb_to_str(c, n, &sb, &msg)) return -1;
    *out = tv_undef(TU_HINT, msg.u.s.p, msg.u.s.n);
    return 0;
}

static int loop_attr(tpl_ctx *c, const tpl_node *n, tv obj, tpl_str name, tv *out) {
    const tpl_loop *l = obj.u.loop;
    size_t len = l->seq->n, i = l->index0;
    if (tpl_str_eq(name, "index"))
        *out = tv_int((int64_t)i + 1);
    else if (tpl_str_eq(name, "index0"))
        *out = tv_int((int64_t)i);
    else if (tpl_str_eq(name, "revindex"))
        *out = tv_int((int64_t)(len - i));
    else if (tpl_str_eq(name, "revindex0"))
        *out = tv_int((int64_t)(len - i - 1));
    else if (tpl_str_eq(name, "first"))
        *out = tv_bool(i == 0);
    else if (tpl_str_eq(name, "last"))
        *out = tv_bool(i + 1 == len);
    else if (tpl_str_eq(name, "length"))
        *out = tv_int((int64_t)len);
    else if (tpl_str_eq(name, "depth"))
        *out = tv_int(l->depth0 + 1);
    else if (tpl_str_eq(name, "depth0"))
        *out = tv_int(l->depth0);
    else if (tpl_str_eq(name, "previtem")) {
        if (i > 0)
            *out = l->seq->items[i - 1];
        else
            *out = tv_undef(TU_HINT, "there is no previous item", 25);
    } else if (tpl_str_eq(name, "nextitem")) {
        if (i + 1 < len)
            *out = l->seq->items[i + 1];
        else
            *out = tv_undef(TU_HINT, "there is no next item", 21);
    } else if (tpl_method_lookup(c, n, obj, name, out)) {
        return 0;
    } else {
        *out = undef_attr(obj, name);
    }
    return 0;
}

int tv_getattr(tpl_ctx *c, const tpl_node *n, tv obj, tpl_str name, tv *out) {
    switch (obj.kind) {
    case TV_UNDEF:
        return tpl_undefined_error(c, n, obj);
    case TV_LOOP:
        return loop_attr(c, n, obj, name, out);
    case TV_NS: {
        tv *v = tpl_dict_find_str(obj.u.dict, name.p, name.n);
        *out = v ? *v : undef_attr(obj, name);
        return 0;
    }
    case TV_DICT: {
        if (tpl_method_lookup(c, n, obj, name, out)) return c->failed ? -1 : 0;
        tv *v = tpl_dict_find_str(obj.u.dict, name.p, name.n);
        *out = v ? *v : undef_attr(obj, name);
        return 0;
    }
    default:
        if (tpl_method_lookup(c, n, obj, name, out)) return c->failed ? -1 : 0;
        *out = undef_attr(obj, name);
        return 0;
    }
}

static int index_of(tv key, int64_t *i) {
    if (key.kind == TV_INT)
        *i = key.u.i;
    else if (key.kind == TV_BOOL)
        *i = key.u.b;
    else
        return -1;
    return 0;
}

int tv_getitem(tpl_ctx *c, const tpl_node *n, tv obj, tv key, tv *out) {
    int64_t i;
    switch (obj.kind) {
    case TV_UNDEF:
        return tpl_undefined_error(c, n, obj);
    case TV_LIST:
        if (!(obj.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES)) && index_of(key, &i) == 0) {
            int64_t len = (int64_t)obj.u.list->n;
            if (i < 0) i += len;
            if (i >= 0 && i < len) {
                *out = obj.u.list->items[i];
                return 0;
            }
        }
        break;
    case TV_STR:
        if (index_of(key, &i) == 0) {
            const char *s = obj.u.s.p;
            size_t bn = obj.u.s.n;
            int ascii = (obj.flags & TVF_ASCII) != 0;
            int64_t len = (int64_t)(ascii ? bn : tpl_utf8_count(s, bn));
            if (i < 0) i += len;
            if (i >= 0 && i < len) {
                size_t off = ascii ? (size_t)i : tpl_utf8_offset(s, bn, (size_t)i), e = off;
                tpl_utf8_next(s, bn, &e);
                *out = tv_str(s + off, e - off);
                if (e - off == 1) out->flags |= TVF_ASCII;
                return tpl_charge(c, n, ascii ? 0 : bn);
            }
        }
        break;
    case TV_DICT: {
        tv *v = tpl_dict_find(obj.u.dict, key);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case TV_NS:
    case TV_LOOP:
        if (key.kind == TV_STR) return tv_getattr(c, n, obj, key.u.s, out);
        break;
    default:
        break;
    }
    if (key.kind == TV_STR && obj.kind != TV_NS && obj.kind != TV_LOOP) {
        if (tpl_method_lookup(c, n, obj, key.u.s, out)) return c->failed ? -1 : 0;
    }
    return undef_item(c, n, obj, key, out);
}

/* 0: ok (*given tells whether a bound was written), 1: not a valid index (the slice is undefined) */
static int slice_bound(tv v, int64_t *out, int *given) {
    *given = 0;
    if (v.kind == TV_NONE) return 0;
    if (index_of(v, out)) return 1;
    *given = 1;
    return 0;
}

int tv_slice(tpl_ctx *c, const tpl_node *n, tv obj, tv start, tv stop, tv step, tv *out) {
    if (obj.kind == TV_UNDEF) return tpl_undefined_error(c, n, obj);
    int64_t a = 0, b = 0, s = 1;
    int ga, gb, gs;
    /* jinja2 subscripts slices directly (not through the sandbox's forgiving getitem), so Python's
     * TypeErrors surface */
    int is_seq =
        obj.kind == TV_STR || (obj.kind == TV_LIST && !(obj.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES)));
    if (!is_seq) {
        if (obj.kind == TV_DICT) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unhashable type: 'slice'");
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object is not subscriptable", tv_type_name(obj));
    }
    if (slice_bound(start, &a, &ga) || slice_bound(stop, &b, &gb) || slice_bound(step, &s, &gs))
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                        "slice indices must be integers or None or have an __index__ method");
    if (!gs) s = 1;
    if (s == 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "slice step cannot be zero");
    int is_str = obj.kind == TV_STR;
    int ascii = is_str && (obj.flags & TVF_ASCII);
    int64_t len =
        is_str ? (int64_t)(ascii ? obj.u.s.n : tpl_utf8_count(obj.u.s.p, obj.u.s.n)) : (int64_t)obj.u.list->n;
    int64_t lower = s > 0 ? 0 : -1, upper = s > 0 ? len : len - 1;
    if (!ga)
        a = s > 0 ? lower : upper;
    else if (a < 0)
        a = a + len < lower ? lower : a + len;
    else if (a > upper)
        a = upper;
    if (!gb)
        b = s > 0 ? upper : lower;
    else if (b < 0)
        b = b + len < lower ? lower : b + len;
    else if (b > upper)
        b = upper;
    int64_t count = 0;
    if (s > 0 && a < b)
        count = (b - a + s - 1) / s;
    else if (s < 0 && a > b)
        count = (a - b + (-s) - 1) / (-s);
    if (is_str) {
        const char *p = obj.u.s.p;
        size_t bn = obj.u.s.n;
        if (s == 1) {
            size_t o1 = ascii ? (size_t)a : tpl_utf8_offset(p, bn, (size_t)a);
            size_t o2 = ascii ? (size_t)(a + count) : o1 + tpl_utf8_offset(p + o1, bn - o1, (size_t)count);
            *out = tv_str(p + o1, o2 - o1);
            if (ascii) out->flags |= TVF_ASCII;
            return tpl_charge(c, n, bn);
        }
        /* general step: collect code point offsets */
        size_t *offs = tpl_alloc(&c->arena, ((size_t)len + 1) * sizeof *offs);
        char *buf = tpl_alloc(&c->arena, bn + 1);
        if (!offs || !buf) return tpl_oom(c, n);
        size_t k = 0, i = 0;
        while (i < bn) {
            offs[k++] = i;
            tpl_utf8_next(p, bn, &i);
        }
        offs[k] = bn;
        size_t w = 0;
        for (int64_t j = 0, x = a; j < count; j++, x += s) {
            size_t st = offs[x], en = offs[x + 1];
            memcpy(buf + w, p + st, en - st);
            w += en - st;
        }
        *out = tv_str(buf, w);
        if (ascii) out->flags |= TVF_ASCII;
        return tpl_charge(c, n, bn);
    }
    tpl_list *l = tpl_list_new(c, (size_t)count);
    if (!l) return tpl_oom(c, n);
    for (int64_t j = 0, x = a; j < count; j++, x += s) l->items[l->n++] = obj.u.list->items[x];
    *out = tv_list_val(l, obj.flags & (TVF_TUPLE | TVF_RANGE));
    if (obj.flags & TVF_RANGE) { /* a slice of a range is a range */
        const tpl_list *r = obj.u.list;
        l->range_start = r->range_start + a * r->range_step;
        l->range_stop = r->range_start + b * r->range_step;
        l->range_step = r->range_step * s;
    }
    return tpl_charge(c, n, (size_t)count * 8);
}

int tpl_undefined_error(tpl_ctx *c, const tpl_node *n, tv u) {
    switch (u.aux) {
    case TU_NAME:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%.*s' is undefined", (int)u.u.s.n, u.u.s.p);
    case TU_ATTR:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' has no attribute '%.*s'", undef_obj_repr(u),
                        (int)u.u.s.n, u.u.s.p);
    default:
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%.*s", (int)u.u.s.n, u.u.s.p);
    }
}

/* ---- JSON input ----------------------------------------------------------------------------- */

static int from_json(tpl_ctx *c, const llm_json *j, tv *out) {
    switch (llm_json_type_of(j)) {
    case LLM_JSON_NULL:
        *out = tv_none();
        return 0;
    case LLM_JSON_TRUE:
        *out = tv_bool(1);
        return 0;
    case LLM_JSON_FALSE:
        *out = tv_bool(0);
        return 0;
    case LLM_JSON_NUMBER: {
        /* Python's json module gives an int unless the literal has a fraction or an exponent */
        size_t off = llm_json_offset(j);
        int is_float = 0;
        for (size_t i = off; i < c->vars_len; i++) {
            char ch = c->vars_src[i];
            if (ch == '.' || ch == 'e' || ch == 'E')
                is_float = 1;
            else if (!(ch == '-' || (ch >= '0' && ch <= '9')))
                break;
        }
        int64_t iv;
        if (!is_float && llm_json_int64(j, &iv) == 0)
            *out = tv_int(iv);
        else
            *out = tv_float(llm_json_number(j));
        return 0;
    }
    case LLM_JSON_STRING: {
        size_t len;
        const char *s = llm_json_string(j, &len);
        *out = tv_str(s, len);
        if (tpl_is_ascii(s, len)) out->flags |= TVF_ASCII;
        return 0;
    }
    case LLM_JSON_ARRAY: {
        size_t k = llm_json_count(j);
        tpl_list *l = tpl_list_new(c, k);
        if (!l) return tpl_oom(c, NULL);
        for (size_t i = 0; i < k; i++)
            if (from_json(c, llm_json_value_at(j, i), &l->items[l->n++])) return -1;
        *out = tv_list_val(l, 0);
        return 0;
    }
    case LLM_JSON_OBJECT: {
        size_t k = llm_json_count(j);
        tpl_dict *d = tpl_dict_new(c);
        if (!d) return tpl_oom(c, NULL);
        for (size_t i = 0; i < k; i++) {
            size_t kl;
            const char *key = llm_json_key_at(j, i, &kl);
            tv key_v = tv_str(key, kl), val;
            if (tpl_is_ascii(key, kl)) key_v.flags |= TVF_ASCII;
            if (from_json(c, llm_json_value_at(j, i), &val) || tpl_dict_set(c, d, key_v, val)) return -1;
        }
        *out = tv_dict_val(d);
        return 0;
    }
    default:
        *out = tv_none();
        return 0;
    }
}

int tv_from_json(tpl_ctx *c, const void *json_value, tv *out) {
    return from_json(c, json_value, out);
}

/* ---- arithmetic ----------------------------------------------------------------------------- */

/* The operator as Python names it in a TypeError ("unsupported operand type(s) for ..."). */
static const char *op_name(int op) {
    return op == OP_POW ? "** or pow()" : tpl_op_text(op);
}

static int overflow(tpl_ctx *c, const tpl_node *n) {
    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "integer overflow (integers are limited to 64 bits here)");
}

static int repeat(tpl_ctx *c, const tpl_node *n, tv seq, int64_t times, tv *out) {
    if (times < 0) times = 0;
    if (seq.kind == TV_STR) {
        size_t len = seq.u.s.n;
        if (len && (uint64_t)times > (uint64_t)(c->max_bytes / len + 1)) return tpl_oom(c, n);
        char *buf = tpl_alloc(&c->arena, len * (size_t)times + 1);
        if (!buf) return tpl_oom(c, n);
        for (int64_t i = 0; i < times; i++) memcpy(buf + (size_t)i * len, seq.u.s.p, len);
        *out = tv_str(buf, len * (size_t)times);
        out->flags = seq.flags & TVF_ASCII;
        return tpl_charge(c, n, len * (size_t)times);
    }
    size_t len = seq.u.list->n;
    if (len && (uint64_t)times > (uint64_t)(c->max_bytes / (len * sizeof(tv)) + 1)) return tpl_oom(c, n);
    tpl_list *l = tpl_list_new(c, len * (size_t)times);
    if (!l) return tpl_oom(c, n);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < len; k++) l->items[l->n++] = seq.u.list->items[k];
    *out = tv_list_val(l, seq.flags & TVF_TUPLE);
    return tpl_charge(c, n, l->n * 8);
}

static int is_plain_seq(tv v) {
    return v.kind == TV_LIST && !(v.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES | TVF_RANGE));
}

int tv_binop(tpl_ctx *c, const tpl_node *n, int op, tv a, tv b, tv *out) {
    /* str % x formats even an undefined x (it only fails once a conversion touches it) */
    if (op == OP_MOD && a.kind == TV_STR) return tpl_percent_format(c, n, a, b, out);
    if (a.kind == TV_UNDEF) return tpl_undefined_error(c, n, a);
    if (b.kind == TV_UNDEF) return tpl_undefined_error(c, n, b);
    if (tv_is_num(a) && tv_is_num(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT && op != OP_DIV) {
            int64_t x = a.kind == TV_INT ? a.u.i : a.u.b, y = b.kind == TV_INT ? b.u.i : b.u.b, r;
            switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r)) return overflow(c, n);
                break;
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r)) return overflow(c, n);
                break;
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r)) return overflow(c, n);
                break;
            case OP_FLOORDIV:
                if (y == 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) return overflow(c, n);
                r = x / y;
                if ((x % y != 0) && ((x < 0) != (y < 0))) r--;
                break;
            case OP_MOD:
                if (y == 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "integer modulo by zero");
                if (y == -1) {
                    r = 0;
                    break;
                }
                r = x % y;
                if (r != 0 && ((r < 0) != (y < 0))) r += y;
                break;
            case OP_POW:
                if (y < 0) {
                    if (x == 0)
                        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "0.0 cannot be raised to a negative power");
                    *out = tv_float(pow((double)x, (double)y));
                    return 0;
                }
                r = 1;
                for (int64_t base = x, e = y; e; e >>= 1) {
                    if (e & 1 && __builtin_mul_overflow(r, base, &r)) return overflow(c, n);
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow(c, n);
                }
                break;
            default:
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported operator");
            }
            *out = tv_int(r);
            return 0;
        }
        double x = tv_num(a), y = tv_num(b), r;
        switch (op) {
        case OP_ADD:
            r = x + y;
            break;
        case OP_SUB:
            r = x - y;
            break;
        case OP_MUL:
            r = x * y;
            break;
        case OP_DIV:
            if (y == 0)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%sdivision by zero",
                                a.kind == TV_FLOAT || b.kind == TV_FLOAT ? "float " : "");
            r = x / y;
            break;
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                op == OP_MOD ? "float modulo by zero" : "float floor division by zero");
            double mod = fmod(x, y);
            if (mod != 0) {
                if ((y < 0) != (mod < 0)) mod += y;
            } else {
                mod = copysign(0.0, y);
            }
            if (op == OP_MOD) {
                r = mod;
                break;
            }
            double div = (x - mod) / y;
            if (div != 0) {
                r = floor(div);
                if (div - r > 0.5) r += 1.0;
            } else {
                r = copysign(0.0, x / y);
            }
            break;
        }
        case OP_POW:
            if (x == 0 && y < 0)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "0.0 cannot be raised to a negative power");
            if (x < 0 && y != floor(y))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                "a negative number raised to a fractional power is complex");
            r = pow(x, y);
            if (isinf(r) && !isinf(x) && !isinf(y))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "(34, 'Numerical result out of range')");
            break;
        default:
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported operator");
        }
        *out = tv_float(r);
        return 0;
    }
    if (op == OP_ADD) {
        if (a.kind == TV_STR && b.kind == TV_STR) {
            char *buf = tpl_alloc(&c->arena, a.u.s.n + b.u.s.n + 1);
            if (!buf) return tpl_oom(c, n);
            memcpy(buf, a.u.s.p, a.u.s.n);
            memcpy(buf + a.u.s.n, b.u.s.p, b.u.s.n);
            *out = tv_str(buf, a.u.s.n + b.u.s.n);
            out->flags = a.flags & b.flags & TVF_ASCII;
            return tpl_charge(c, n, a.u.s.n + b.u.s.n);
        }
        if (is_plain_seq(a) && is_plain_seq(b) && (a.flags & TVF_TUPLE) == (b.flags & TVF_TUPLE)) {
            tpl_list *l = tpl_list_new(c, a.u.list->n + b.u.list->n);
            if (!l) return tpl_oom(c, n);
            memcpy(l->items, a.u.list->items, a.u.list->n * sizeof(tv));
            memcpy(l->items + a.u.list->n, b.u.list->items, b.u.list->n * sizeof(tv));
            l->n = a.u.list->n + b.u.list->n;
            *out = tv_list_val(l, a.flags & TVF_TUPLE);
            return tpl_charge(c, n, l->n * 8);
        }
        if (a.kind == TV_STR || is_plain_seq(a))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "can only concatenate %s (not \"%s\") to %s",
                            tv_type_name(a), tv_type_name(b), tv_type_name(a));
    }
    if (op == OP_MUL) {
        if ((a.kind == TV_STR || is_plain_seq(a)) && (b.kind == TV_INT || b.kind == TV_BOOL))
            return repeat(c, n, a, b.kind == TV_INT ? b.u.i : b.u.b, out);
        if ((b.kind == TV_STR || is_plain_seq(b)) && (a.kind == TV_INT || a.kind == TV_BOOL))
            return repeat(c, n, b, a.kind == TV_INT ? a.u.i : a.u.b, out);
        if (a.kind == TV_STR || is_plain_seq(a) || b.kind == TV_STR || is_plain_seq(b))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "can't multiply sequence by non-int of type '%s'",
                            tv_type_name(a.kind == TV_STR || is_plain_seq(a) ? b : a));
    }
    if (op == OP_MOD && a.kind == TV_STR) return tpl_percent_format(c, n, a, b, out);
    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported operand type(s) for %s: '%s' and '%s'",
                    op_name(op), tv_type_name(a), tv_type_name(b));
}
