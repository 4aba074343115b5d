/* jinja2's built-in filters and tests, with transformers' tojson (ensure_ascii=False, indent,
 * separators, sort_keys). Filters that return generators in jinja2 (map, select, reverse, ...) return
 * one-shot iterators here too, so "|length" on them fails and "if x|select(...)" is always true,
 * exactly as in Python. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tpl.h"

enum {
    F_ABS,
    F_ATTR,
    F_BATCH,
    F_CAPITALIZE,
    F_CENTER,
    F_COUNT,
    F_DEFAULT,
    F_DICTSORT,
    F_ESCAPE,
    F_FIRST,
    F_FLOAT,
    F_FORMAT,
    F_INDENT,
    F_INT,
    F_ITEMS,
    F_JOIN,
    F_LAST,
    F_LIST,
    F_LOWER,
    F_MAP,
    F_MAX,
    F_MIN,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_ROUND,
    F_SAFE,
    F_SELECT,
    F_SELECTATTR,
    F_SLICE,
    F_SORT,
    F_STRING,
    F_SUM,
    F_TITLE,
    F_TOJSON,
    F_TRIM,
    F_TRUNCATE,
    F_UNIQUE,
    F_UPPER,
    F_WORDCOUNT,
};

static const struct {
    const char *name;
    int id;
} FILTERS[] = {
    {"abs", F_ABS},
    {"attr", F_ATTR},
    {"batch", F_BATCH},
    {"capitalize", F_CAPITALIZE},
    {"center", F_CENTER},
    {"count", F_COUNT},
    {"d", F_DEFAULT},
    {"default", F_DEFAULT},
    {"dictsort", F_DICTSORT},
    {"e", F_ESCAPE},
    {"escape", F_ESCAPE},
    {"first", F_FIRST},
    {"float", F_FLOAT},
    {"forceescape", F_ESCAPE},
    {"format", F_FORMAT},
    {"indent", F_INDENT},
    {"int", F_INT},
    {"items", F_ITEMS},
    {"join", F_JOIN},
    {"last", F_LAST},
    {"length", F_COUNT},
    {"list", F_LIST},
    {"lower", F_LOWER},
    {"map", F_MAP},
    {"max", F_MAX},
    {"min", F_MIN},
    {"reject", F_REJECT},
    {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE},
    {"reverse", F_REVERSE},
    {"round", F_ROUND},
    {"safe", F_SAFE},
    {"select", F_SELECT},
    {"selectattr", F_SELECTATTR},
    {"slice", F_SLICE},
    {"sort", F_SORT},
    {"string", F_STRING},
    {"sum", F_SUM},
    {"title", F_TITLE},
    {"tojson", F_TOJSON},
    {"trim", F_TRIM},
    {"truncate", F_TRUNCATE},
    {"unique", F_UNIQUE},
    {"upper", F_UPPER},
    {"wordcount", F_WORDCOUNT},
};
static const char *const FILTERS_UNSUPPORTED[] = {"filesizeformat", "groupby",     "pprint", "random",
                                                  "striptags",      "urlencode",   "urlize", "wordwrap",
                                                  "xmlattr",        "mark_unsafe", NULL};

enum {
    T_BOOLEAN,
    T_CALLABLE,
    T_DEFINED,
    T_DIVISIBLEBY,
    T_EQ,
    T_ESCAPED,
    T_EVEN,
    T_FALSE,
    T_FILTER,
    T_FLOAT,
    T_GE,
    T_GT,
    T_IN,
    T_INTEGER,
    T_ITERABLE,
    T_LE,
    T_LOWER,
    T_LT,
    T_MAPPING,
    T_NE,
    T_NONE,
    T_NUMBER,
    T_ODD,
    T_SAMEAS,
    T_SEQUENCE,
    T_STRING,
    T_TEST,
    T_TRUE,
    T_UNDEFINED,
    T_UPPER,
};

static const struct {
    const char *name;
    int id;
} TESTS[] = {
    {"boolean", T_BOOLEAN},
    {"callable", T_CALLABLE},
    {"defined", T_DEFINED},
    {"divisibleby", T_DIVISIBLEBY},
    {"eq", T_EQ},
    {"equalto", T_EQ},
    {"==", T_EQ},
    {"escaped", T_ESCAPED},
    {"even", T_EVEN},
    {"false", T_FALSE},
    {"filter", T_FILTER},
    {"float", T_FLOAT},
    {"ge", T_GE},
    {">=", T_GE},
    {"gt", T_GT},
    {"greaterthan", T_GT},
    {">", T_GT},
    {"in", T_IN},
    {"integer", T_INTEGER},
    {"iterable", T_ITERABLE},
    {"le", T_LE},
    {"<=", T_LE},
    {"lower", T_LOWER},
    {"lt", T_LT},
    {"lessthan", T_LT},
    {"<", T_LT},
    {"mapping", T_MAPPING},
    {"ne", T_NE},
    {"!=", T_NE},
    {"none", T_NONE},
    {"number", T_NUMBER},
    {"odd", T_ODD},
    {"sameas", T_SAMEAS},
    {"sequence", T_SEQUENCE},
    {"string", T_STRING},
    {"test", T_TEST},
    {"true", T_TRUE},
    {"undefined", T_UNDEFINED},
    {"upper", T_UPPER},
};

static int lookup_name(const char *name, size_t n, int filters) {
    if (filters) {
        for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
            if (strlen(FILTERS[i].name) == n && memcmp(FILTERS[i].name, name, n) == 0) return FILTERS[i].id;
        for (const char *const *u = FILTERS_UNSUPPORTED; *u; u++)
            if (strlen(*u) == n && memcmp(*u, name, n) == 0) return TPL_UNSUPPORTED;
        return TPL_UNKNOWN;
    }
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++)
        if (strlen(TESTS[i].name) == n && memcmp(TESTS[i].name, name, n) == 0) return TESTS[i].id;
    return TPL_UNKNOWN;
}

int tpl_filter_lookup(const char *name, size_t n) {
    return lookup_name(name, n, 1);
}
int tpl_test_lookup(const char *name, size_t n) {
    return lookup_name(name, n, 0);
}

static const char *filter_name(int id) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (FILTERS[i].id == id) return FILTERS[i].name;
    return "?";
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int soft_str(tpl_ctx *c, const tpl_node *n, tv v, tv *out) {
    return tv_to_str(c, n, v, out);
}

static int need_int(tpl_ctx *c, const tpl_node *n, tv v, const char *what, int64_t *out) {
    if (v.kind == TV_INT)
        *out = v.u.i;
    else if (v.kind == TV_BOOL)
        *out = v.u.b;
    else if (v.kind == TV_UNDEF)
        return tpl_undefined_error(c, n, v);
    else
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s: '%s' object cannot be interpreted as an integer", what,
                        tv_type_name(v));
    return 0;
}

static tv make_iter(tpl_ctx *c, tpl_list *items, const char *type_name) {
    tpl_iter *it = tpl_alloc(&c->arena, sizeof *it);
    tv v = {TV_ITER, 0, 0, {0}};
    if (!it) return tv_none();
    it->items = items;
    it->type_name = type_name;
    v.u.iter = it;
    return v;
}

/* jinja2's make_attrgetter: "a.b.0" looked up step by step with item-first access. */
static int attr_get(tpl_ctx *c, const tpl_node *n, tv item, tv attribute, const tv *dflt, tv *out) {
    if (attribute.kind == TV_NONE) {
        *out = item;
        return 0;
    }
    if (attribute.kind != TV_STR) {
        if (tv_getitem(c, n, item, attribute, out)) return -1;
        if (dflt && out->kind == TV_UNDEF) *out = *dflt;
        return 0;
    }
    const char *p = attribute.u.s.p;
    size_t len = attribute.u.s.n, i = 0;
    for (;;) {
        size_t st = i;
        while (i < len && p[i] != '.') i++;
        tv key = tv_str(p + st, i - st);
        int digits = i > st;
        for (size_t k = st; k < i; k++) digits &= p[k] >= '0' && p[k] <= '9';
        if (digits && i - st < 18) key = tv_int(strtoll(p + st, NULL, 10));
        if (tv_getitem(c, n, item, key, &item)) return -1;
        if (dflt && item.kind == TV_UNDEF) item = *dflt;
        if (i >= len) break;
        i++;
    }
    *out = item;
    return 0;
}

static int lower_if_str(tpl_ctx *c, const tpl_node *n, tv v, tv *out) {
    if (v.kind != TV_STR) {
        *out = v;
        return 0;
    }
    return tpl_case(c, n, v, 1, out);
}

/* Sort key of one item: the (possibly comma-separated) attributes, lower-cased unless case sensitive. */
static int sort_key(tpl_ctx *c, const tpl_node *n, tv item, tv attribute, int multi, int case_sensitive,
                    tv *out) {
    if (multi && attribute.kind == TV_STR && memchr(attribute.u.s.p, ',', attribute.u.s.n)) {
        tpl_list *parts = tpl_list_new(c, 0);
        if (!parts) return tpl_oom(c, n);
        const char *p = attribute.u.s.p;
        size_t len = attribute.u.s.n, i = 0;
        for (;;) {
            size_t st = i;
            while (i < len && p[i] != ',') i++;
            tv k;
            if (attr_get(c, n, item, tv_str(p + st, i - st), NULL, &k)) return -1;
            if (!case_sensitive && lower_if_str(c, n, k, &k)) return -1;
            if (tpl_list_push(c, parts, k)) return tpl_oom(c, n);
            if (i >= len) break;
            i++;
        }
        *out = tv_list_val(parts, 0);
        return 0;
    }
    tv k;
    if (attr_get(c, n, item, attribute, NULL, &k)) return -1;
    if (!case_sensitive && lower_if_str(c, n, k, &k)) return -1;
    if (multi) { /* make_multi_attrgetter always yields a list */
        tpl_list *one = tpl_list_new(c, 1);
        if (!one) return tpl_oom(c, n);
        one->items[one->n++] = k;
        k = tv_list_val(one, 0);
    }
    *out = k;
    return 0;
}

/* Stable merge sort of items by keys (Python's sorted: only '<' is used). */
static int merge_sort(tpl_ctx *c, const tpl_node *n, tv *items, tv *keys, size_t k, int reverse, tv *ti,
                      tv *tk) {
    if (k < 2) return 0;
    size_t mid = k / 2;
    if (merge_sort(c, n, items, keys, mid, reverse, ti, tk) ||
        merge_sort(c, n, items + mid, keys + mid, k - mid, reverse, ti, tk))
        return -1;
    size_t a = 0, b = mid, o = 0;
    while (a < mid && b < k) {
        int take_b;
        /* reverse=True in Python keeps stability by reversing comparisons: b goes first if a < b */
        if (reverse) {
            if (tv_order(c, n, OP_LT, keys[a], keys[b], &take_b)) return -1;
        } else {
            if (tv_order(c, n, OP_LT, keys[b], keys[a], &take_b)) return -1;
        }
        if (take_b)
            ti[o] = items[b], tk[o++] = keys[b++];
        else
            ti[o] = items[a], tk[o++] = keys[a++];
    }
    while (a < mid) ti[o] = items[a], tk[o++] = keys[a++];
    while (b < k) ti[o] = items[b], tk[o++] = keys[b++];
    memcpy(items, ti, k * sizeof(tv));
    memcpy(keys, tk, k * sizeof(tv));
    return tpl_charge(c, n, k * 4);
}

static int sorted(tpl_ctx *c, const tpl_node *n, tpl_list *src, tv *keys, int reverse, tpl_list **out) {
    size_t k = src->n;
    tpl_list *l = tpl_list_new(c, k);
    tv *ti = tpl_alloc(&c->arena, (k + 1) * sizeof(tv)), *tk = tpl_alloc(&c->arena, (k + 1) * sizeof(tv));
    if (!l || !ti || !tk) return tpl_oom(c, n);
    memcpy(l->items, src->items, k * sizeof(tv));
    l->n = k;
    if (merge_sort(c, n, l->items, keys, k, reverse, ti, tk)) return -1;
    *out = l;
    return 0;
}

static int items_of(tpl_ctx *c, const tpl_node *n, tv v, tpl_list **out) {
    return tv_items(c, n, v, out);
}

/* ---- tojson (transformers' override of jinja2's) -------------------------------------------- */

static int do_tojson(tpl_ctx *c, const tpl_node *n, tv in, const tv *v, const int *got, tv *out) {
    tpl_json_opts o;
    memset(&o, 0, sizeof o);
    o.ensure_ascii = got[0] && tv_truthy(v[0]);
    char *spaces = NULL;
    if (got[1] && v[1].kind != TV_NONE) {
        o.indent_set = 1;
        if (v[1].kind == TV_STR) {
            o.indent = v[1].u.s;
        } else if (v[1].kind == TV_INT || v[1].kind == TV_BOOL) {
            int64_t k = v[1].kind == TV_INT ? v[1].u.i : v[1].u.b;
            if (k < 0) k = 0;
            if (k > 4096)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "tojson: indent %lld is too large", (long long)k);
            spaces = tpl_alloc(&c->arena, (size_t)k + 1);
            if (!spaces) return tpl_oom(c, n);
            memset(spaces, ' ', (size_t)k);
            o.indent = (tpl_str){spaces, (size_t)k};
        } else {
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "tojson: indent must be an int or a str, not %s",
                            tv_type_name(v[1]));
        }
    }
    o.item_sep = o.indent_set ? (tpl_str){",", 1} : (tpl_str){", ", 2};
    o.key_sep = (tpl_str){": ", 2};
    if (got[2] && v[2].kind != TV_NONE) {
        tpl_list *seps;
        if (v[2].kind != TV_LIST || items_of(c, n, v[2], &seps) || seps->n != 2 ||
            seps->items[0].kind != TV_STR || seps->items[1].kind != TV_STR) {
            if (c->failed) return -1;
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "tojson: separators must be a pair of strings");
        }
        o.item_sep = seps->items[0].u.s;
        o.key_sep = seps->items[1].u.s;
    }
    o.sort_keys = got[3] && tv_truthy(v[3]);
    llm_strbuf sb = LLM_STRBUF_INIT;
    if (tv_write_json(c, n, in, &o, &sb)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    if (sb.len > c->max_bytes) {
        llm_strbuf_free(&sb);
        c->arena.failed = 1;
        return tpl_oom(c, n);
    }
    if (tpl_charge(c, n, sb.len)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    return tpl_sb_to_str(c, n, &sb, out);
}

/* ---- number conversions ------------------------------------------------------------------------ */

/* Python's int(str, base) (with whitespace, sign and underscores). 0 on success. */
static int parse_int_str(tv s, int64_t base, int64_t *out) {
    tv t = tpl_strip(s, NULL, 3);
    const char *p = t.u.s.p;
    size_t len = t.u.s.n, i = 0;
    int neg = 0;
    if (i < len && (p[i] == '+' || p[i] == '-')) neg = p[i++] == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (i + 1 < len && p[i] == '0' && strchr("xXoObB", p[i + 1])) {
            int b = (p[i + 1] | 32) == 'x' ? 16 : (p[i + 1] | 32) == 'o' ? 8 : 2;
            if (base && base != b) return -1;
            base = b;
            i += 2;
            if (i < len && p[i] == '_') i++;
        } else if (base == 0) {
            base = 10;
        }
    }
    if (base < 2 || base > 36 || i >= len) return -1;
    uint64_t v = 0;
    int prev_us = 1;
    for (; i < len; i++) {
        int ch = (unsigned char)p[i], d;
        if (ch == '_') {
            if (prev_us) return -1;
            prev_us = 1;
            continue;
        }
        prev_us = 0;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if ((ch | 32) >= 'a' && (ch | 32) <= 'z')
            d = (ch | 32) - 'a' + 10;
        else
            return -1;
        if (d >= base) return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -1;
        v = v * (uint64_t)base + (uint64_t)d;
        if (v > (uint64_t)INT64_MAX + (uint64_t)neg) return -1;
    }
    if (prev_us) return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Python's float(str): decimal, inf, nan, with whitespace and underscores between digits. */
static int parse_float_str(tv s, double *out) {
    tv t = tpl_strip(s, NULL, 3);
    char buf[128];
    size_t k = 0;
    const char *p = t.u.s.p;
    size_t len = t.u.s.n;
    if (len == 0 || len >= sizeof buf) return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (ch == '_') {
            if (i == 0 || i + 1 >= len || !(p[i - 1] >= '0' && p[i - 1] <= '9') ||
                !(p[i + 1] >= '0' && p[i + 1] <= '9'))
                return -1;
            continue;
        }
        if (!strchr("0123456789+-.eEinfatyINFATY", ch)) return -1;
        buf[k++] = ch;
    }
    buf[k] = 0;
    const char *q = buf;
    if (*q == '+' || *q == '-') q++;
    if (strncasecmp(q, "inf", 3) == 0 || strncasecmp(q, "nan", 3) == 0) {
        if (strcasecmp(q, "inf") && strcasecmp(q, "infinity") && strcasecmp(q, "nan")) return -1;
    } else {
        /* digits with an optional point and exponent; strtod would accept hex and more */
        const char *r = q;
        int digits = 0;
        while (*r >= '0' && *r <= '9') r++, digits++;
        if (*r == '.') {
            r++;
            while (*r >= '0' && *r <= '9') r++, digits++;
        }
        if (!digits) return -1;
        if (*r == 'e' || *r == 'E') {
            r++;
            if (*r == '+' || *r == '-') r++;
            if (!(*r >= '0' && *r <= '9')) return -1;
            while (*r >= '0' && *r <= '9') r++;
        }
        if (*r) return -1;
    }
    char *end;
    *out = strtod(buf, &end);
    return *end ? -1 : 0;
}

static int do_round(tpl_ctx *c, const tpl_node *n, tv in, const tv *v, const int *got, tv *out) {
    int64_t prec = 0;
    if (got[0] && need_int(c, n, v[0], "round", &prec)) return -1;
    tpl_str method = got[1] && v[1].kind == TV_STR ? v[1].u.s : (tpl_str){"common", 6};
    if (got[1] && v[1].kind != TV_STR)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "method must be common, ceil or floor");
    int m = tpl_str_eq(method, "common")  ? 0
            : tpl_str_eq(method, "ceil")  ? 1
            : tpl_str_eq(method, "floor") ? 2
                                          : -1;
    if (m < 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "method must be common, ceil or floor");
    if (in.kind == TV_UNDEF && m != 0) return tpl_undefined_error(c, n, in);
    if (!tv_is_num(in)) {
        if (m == 0)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "type %s doesn't define __round__ method",
                            tv_type_name(in));
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported operand type(s) for *: '%s' and 'int'",
                        tv_type_name(in));
    }
    if (m == 0) {
        if (in.kind != TV_FLOAT) { /* round(int, n) stays an int */
            int64_t x = in.kind == TV_INT ? in.u.i : in.u.b;
            if (prec < 0) {
                int64_t p10 = 1;
                for (int64_t i = 0; i < -prec && p10 <= INT64_MAX / 10; i++) p10 *= 10;
                if (-prec > 18) {
                    *out = tv_int(0);
                    return 0;
                }
                int64_t q = x / p10, r = x % p10;
                if (r < 0) r += p10, q--;
                if (2 * r > p10 || (2 * r == p10 && (q & 1))) q++;
                x = q * p10;
            }
            *out = tv_int(x);
            return 0;
        }
        double x = in.u.f;
        if (isnan(x) || isinf(x)) {
            *out = in;
            return 0;
        }
        if (prec > 300 || prec < -300) {
            *out = tv_float(prec > 0 ? x : 0.0 * x);
            return 0;
        }
        /* correctly rounded decimal (half-even on exact ties), as Python's round() */
        char buf[400];
        if (prec >= 0) {
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            *out = tv_float(strtod(buf, NULL));
        } else {
            double p10 = pow(10.0, (double)-prec);
            double y = x / p10, r = nearbyint(y);
            *out = tv_float(r * p10);
        }
        return 0;
    }
    double x = tv_num(in), p10 = pow(10.0, (double)prec);
    double r = m == 1 ? ceil(x * p10) : floor(x * p10);
    *out = tv_float(r / p10);
    return 0;
}

/* ---- select / reject / map ------------------------------------------------------------------ */

static int select_reject(tpl_ctx *c, const tpl_node *n, tv in, const tv *args, size_t nargs,
                         const tpl_kwarg *kw, size_t nkw, int reject, int by_attr, tv *out) {
    tpl_list *items, *kept = tpl_list_new(c, 0);
    if (!kept) return tpl_oom(c, n);
    tv attr = tv_none();
    size_t off = 0;
    if (by_attr) {
        if (nargs < 1) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Missing parameter for attribute name");
        attr = args[0];
        off = 1;
    }
    if (tv_truthy(in) || in.kind == TV_ITER) {
        if (items_of(c, n, in, &items)) return -1;
        for (size_t i = 0; i < items->n; i++) {
            tv x;
            int r;
            if (tpl_charge(c, n, 0)) return -1;
            if (by_attr) {
                if (attr_get(c, n, items->items[i], attr, NULL, &x)) return -1;
            } else {
                x = items->items[i];
            }
            if (nargs > off) {
                if (tpl_apply_test_named(c, n, args[off], x, args + off + 1, nargs - off - 1, kw, nkw, &r))
                    return -1;
            } else {
                r = tv_truthy(x);
            }
            if (r != reject && tpl_list_push(c, kept, items->items[i])) return tpl_oom(c, n);
        }
    }
    *out = make_iter(c, kept, "generator");
    return 0;
}

static int do_map(tpl_ctx *c, const tpl_node *n, tv in, const tv *args, size_t nargs, const tpl_kwarg *kw,
                  size_t nkw, tv *out) {
    tpl_list *items, *res;
    tv attribute = tv_none(), dflt = tv_none();
    int by_attr = 0, have_default = 0;
    if (nargs == 0) {
        for (size_t k = 0; k < nkw; k++) {
            if (tpl_str_eq(kw[k].name, "attribute"))
                attribute = kw[k].value, by_attr = 1;
            else if (tpl_str_eq(kw[k].name, "default"))
                dflt = kw[k].value, have_default = 1;
        }
        if (!by_attr) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "map requires a filter argument");
        for (size_t k = 0; k < nkw; k++)
            if (!tpl_str_eq(kw[k].name, "attribute") && !tpl_str_eq(kw[k].name, "default"))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Unexpected keyword argument '%.*s'",
                                (int)kw[k].name.n, kw[k].name.p);
    }
    if (!tv_truthy(in) && in.kind != TV_ITER) { /* jinja2 maps nothing over a falsy value */
        if (!(res = tpl_list_new(c, 0))) return tpl_oom(c, n);
        *out = make_iter(c, res, "generator");
        return 0;
    }
    if (items_of(c, n, in, &items)) return -1;
    if (!(res = tpl_list_new(c, items->n))) return tpl_oom(c, n);
    for (size_t i = 0; i < items->n; i++) {
        tv r;
        if (tpl_charge(c, n, 0)) return -1;
        if (by_attr) {
            if (attr_get(c, n, items->items[i], attribute,
                         have_default && dflt.kind != TV_NONE ? &dflt : NULL, &r))
                return -1;
        } else if (tpl_apply_filter_named(c, n, args[0], items->items[i], args + 1, nargs - 1, kw, nkw, &r)) {
            return -1;
        }
        res->items[res->n++] = r;
    }
    *out = make_iter(c, res, "generator");
    return 0;
}

static int min_max(tpl_ctx *c, const tpl_node *n, tv in, const tv *v, const int *got, int want_max, tv *out) {
    tpl_list *items;
    if (items_of(c, n, in, &items)) return -1;
    if (!items->n) {
        static const char msg[] = "No aggregated item, sequence was empty.";
        *out = tv_undef(TU_HINT, msg, sizeof msg - 1);
        return 0;
    }
    int cs = got[0] && tv_truthy(v[0]);
    tv attr = got[1] ? v[1] : tv_none();
    size_t best = 0;
    tv best_key;
    if (sort_key(c, n, items->items[0], attr, 0, cs, &best_key)) return -1;
    for (size_t i = 1; i < items->n; i++) {
        tv k;
        int better;
        if (sort_key(c, n, items->items[i], attr, 0, cs, &k)) return -1;
        /* Python's max() asks item > best, min() item < best */
        if (tv_order(c, n, want_max ? OP_GT : OP_LT, k, best_key, &better)) return -1;
        if (better) best = i, best_key = k;
    }
    *out = items->items[best];
    return 0;
}

/* jinja2's do_title: words begin after runs of whitespace, '-', '(', '{', '[' or '<'. */
static int do_title(tpl_ctx *c, const tpl_node *n, tv s, tv *out) {
    const char *p = s.u.s.p;
    size_t len = s.u.s.n, i = 0;
    llm_strbuf sb = LLM_STRBUF_INIT;
    int at_start = 1;
    while (i < len) {
        uint32_t cp = tpl_utf8_next(p, len, &i);
        int sep = tpl_py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        uint32_t r = sep ? cp : at_start ? tpl_cp_upper(cp) : tpl_cp_lower(cp);
        at_start = sep;
        char u[4];
        llm_strbuf_append(&sb, u, tpl_utf8_put(r, u));
    }
    return tpl_sb_to_str(c, n, &sb, out);
}

static int do_indent(tpl_ctx *c, const tpl_node *n, tv s, const tv *v, const int *got, tv *out) {
    tpl_str ind = {"    ", 4};
    char *spaces = NULL;
    if (got[0]) {
        if (v[0].kind == TV_STR)
            ind = v[0].u.s;
        else {
            int64_t w = 0;
            if (need_int(c, n, v[0], "indent", &w)) return -1;
            if (w < 0) w = 0;
            if (w > 4096)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "indent width %lld is too large", (long long)w);
            if (!(spaces = tpl_alloc(&c->arena, (size_t)w + 1))) return tpl_oom(c, n);
            memset(spaces, ' ', (size_t)w);
            ind = (tpl_str){spaces, (size_t)w};
        }
    }
    int first = got[1] && tv_truthy(v[1]), blank = got[2] && tv_truthy(v[2]);
    /* s += "\n"; then splitlines() */
    char *buf = tpl_alloc(&c->arena, s.u.s.n + 2);
    if (!buf) return tpl_oom(c, n);
    memcpy(buf, s.u.s.p, s.u.s.n);
    buf[s.u.s.n] = '\n';
    tpl_list *lines;
    if (tpl_splitlines(c, n, tv_str(buf, s.u.s.n + 1), 0, &lines)) return -1;
    llm_strbuf sb = LLM_STRBUF_INIT;
    if (first) llm_strbuf_append(&sb, ind.p, ind.n);
    for (size_t i = 0; i < lines->n; i++) {
        tv line = lines->items[i];
        if (i) {
            llm_strbuf_append_char(&sb, '\n');
            if (blank || line.u.s.n) llm_strbuf_append(&sb, ind.p, ind.n);
        }
        llm_strbuf_append(&sb, line.u.s.p, line.u.s.n);
        if (tpl_sb_over(c, n, &sb)) {
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

static int do_escape(tpl_ctx *c, const tpl_node *n, tv s, tv *out) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        switch (ch) {
        case '&':
            llm_strbuf_append_str(&sb, "&amp;");
            break;
        case '<':
            llm_strbuf_append_str(&sb, "&lt;");
            break;
        case '>':
            llm_strbuf_append_str(&sb, "&gt;");
            break;
        case '"':
            llm_strbuf_append_str(&sb, "&#34;");
            break;
        case '\'':
            llm_strbuf_append_str(&sb, "&#39;");
            break;
        default:
            llm_strbuf_append_char(&sb, ch);
        }
    }
    return tpl_sb_to_str(c, n, &sb, out);
}

static int do_truncate(tpl_ctx *c, const tpl_node *n, tv s, const tv *v, const int *got, tv *out) {
    int64_t length = 255, leeway = 5;
    if (got[0] && need_int(c, n, v[0], "truncate", &length)) return -1;
    int killwords = got[1] && tv_truthy(v[1]);
    tv end = got[2] ? v[2] : tv_cstr("...");
    if (got[3] && v[3].kind != TV_NONE && need_int(c, n, v[3], "truncate", &leeway)) return -1;
    if (end.kind != TV_STR && soft_str(c, n, end, &end)) return -1;
    int64_t end_len = (int64_t)tpl_utf8_count(end.u.s.p, end.u.s.n);
    if (length < end_len)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "expected length >= %lld, got %lld", (long long)end_len,
                        (long long)length);
    if (leeway < 0)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "expected leeway >= 0, got %lld", (long long)leeway);
    int64_t len = (int64_t)tpl_utf8_count(s.u.s.p, s.u.s.n);
    if (len <= length + leeway) {
        *out = s;
        return 0;
    }
    size_t cut = tpl_utf8_offset(s.u.s.p, s.u.s.n, (size_t)(length - end_len));
    if (!killwords) { /* s[:length - len(end)].rsplit(" ", 1)[0] */
        for (size_t k = cut; k-- > 0;)
            if (s.u.s.p[k] == ' ') {
                cut = k;
                break;
            }
    }
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append(&sb, s.u.s.p, cut);
    llm_strbuf_append(&sb, end.u.s.p, end.u.s.n);
    return tpl_sb_to_str(c, n, &sb, out);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

#define BIND(fname, ...)                                                                                     \
    do {                                                                                                     \
        static const char *const P_[] = {__VA_ARGS__};                                                       \
        if (tpl_bind_args(c, n, fname, P_, sizeof P_ / sizeof P_[0], args, nargs, kw, nkw, v, got))          \
            return -1;                                                                                       \
    } while (0)
#define NOARGS(fname)                                                                                        \
    do {                                                                                                     \
        if (nargs || nkw)                                                                                    \
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "the %s filter takes no arguments", fname);            \
    } while (0)

int tpl_apply_filter(tpl_ctx *c, const tpl_node *n, int id, tv in, const tv *args, size_t nargs,
                     const tpl_kwarg *kw, size_t nkw, tv *out) {
    tv v[6], s;
    int got[6];
    tpl_list *items;
    switch (id) {
    case F_ABS:
        NOARGS("abs");
        if (in.kind == TV_INT) {
            if (in.u.i == INT64_MIN) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "integer overflow");
            *out = tv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        } else if (in.kind == TV_BOOL)
            *out = tv_int(in.u.b);
        else if (in.kind == TV_FLOAT)
            *out = tv_float(fabs(in.u.f));
        else
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "bad operand type for abs(): '%s'", tv_type_name(in));
        return 0;
    case F_ATTR:
        BIND("attr", "name");
        if (!got[0] || v[0].kind != TV_STR)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "attr() requires an attribute name");
        if (in.kind == TV_UNDEF) return tpl_undefined_error(c, n, in);
        if (in.kind == TV_NS || in.kind == TV_LOOP) return tv_getattr(c, n, in, v[0].u.s, out);
        if (tpl_method_lookup(c, n, in, v[0].u.s, out)) return c->failed ? -1 : 0;
        *out = tv_undef(TU_HINT, "no such attribute", 17);
        return 0;
    case F_BATCH:
    case F_SLICE: {
        if (id == F_BATCH)
            BIND("batch", "linecount", "fill_with");
        else
            BIND("slice", "slices", "fill_with");
        int64_t k = 0;
        if (!got[0]) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "missing argument");
        if (need_int(c, n, v[0], id == F_BATCH ? "batch" : "slice", &k) || items_of(c, n, in, &items))
            return -1;
        if (k <= 0)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s must be positive",
                            id == F_BATCH ? "linecount" : "slices");
        tpl_list *res = tpl_list_new(c, 0);
        if (!res) return tpl_oom(c, n);
        int fill = got[1] && v[1].kind != TV_NONE;
        if (id == F_BATCH) {
            for (size_t i = 0; i < items->n; i += (size_t)k) {
                size_t take = items->n - i < (size_t)k ? items->n - i : (size_t)k;
                tpl_list *row = tpl_list_new(c, (size_t)k);
                if (!row) return tpl_oom(c, n);
                for (size_t j = 0; j < take; j++) row->items[row->n++] = items->items[i + j];
                if (fill)
                    while (row->n < (size_t)k) row->items[row->n++] = v[1];
                if (tpl_list_push(c, res, tv_list_val(row, 0))) return tpl_oom(c, n);
            }
        } else {
            size_t len = items->n, per = len / (size_t)k, extra = len % (size_t)k, off = 0;
            for (size_t s_i = 0; s_i < (size_t)k; s_i++) {
                size_t start = off + s_i * per, end = start + per;
                if (s_i < extra) off++;
                if (s_i < extra) end++;
                tpl_list *row = tpl_list_new(c, per + 1);
                if (!row) return tpl_oom(c, n);
                for (size_t j = start; j < end; j++) row->items[row->n++] = items->items[j];
                if (fill && s_i >= extra) row->items[row->n++] = v[1];
                if (tpl_list_push(c, res, tv_list_val(row, 0))) return tpl_oom(c, n);
            }
        }
        *out = make_iter(c, res, "generator");
        return 0;
    }
    case F_CAPITALIZE:
    case F_LOWER:
    case F_UPPER:
        NOARGS(filter_name(id));
        if (soft_str(c, n, in, &s)) return -1;
        return tpl_case(c, n, s, id == F_UPPER ? 0 : id == F_LOWER ? 1 : 3, out);
    case F_TITLE:
        NOARGS("title");
        if (soft_str(c, n, in, &s)) return -1;
        return do_title(c, n, s, out);
    case F_CENTER: {
        BIND("center", "width");
        int64_t w = 80;
        if (got[0] && need_int(c, n, v[0], "center", &w)) return -1;
        if (soft_str(c, n, in, &s)) return -1;
        return tpl_pad(c, n, s, w, 0, out);
    }
    case F_COUNT: {
        NOARGS("length");
        int64_t len;
        if (tv_len(c, n, in, &len)) return -1;
        *out = tv_int(len);
        return 0;
    }
    case F_DEFAULT:
        BIND("default", "default_value", "boolean");
        if (in.kind == TV_UNDEF || (got[1] && tv_truthy(v[1]) && !tv_truthy(in)))
            *out = got[0] ? v[0] : tv_str("", 0);
        else
            *out = in;
        return 0;
    case F_DICTSORT: {
        BIND("dictsort", "case_sensitive", "by", "reverse");
        if (in.kind != TV_DICT) {
            if (in.kind == TV_UNDEF) return tpl_undefined_error(c, n, in);
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object has no attribute 'items'",
                            tv_type_name(in));
        }
        int by_value = 0;
        if (got[1]) {
            if (v[1].kind == TV_STR && tpl_str_eq(v[1].u.s, "value"))
                by_value = 1;
            else if (!(v[1].kind == TV_STR && tpl_str_eq(v[1].u.s, "key")))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "You can only sort by either \"key\" or \"value\"");
        }
        const tpl_dict *d = in.u.dict;
        tpl_list *pairs = tpl_list_new(c, d->n);
        tv *keys = tpl_alloc(&c->arena, (d->n + 1) * sizeof(tv));
        if (!pairs || !keys) return tpl_oom(c, n);
        for (size_t i = 0; i < d->n; i++) {
            tpl_list *pair = tpl_list_new(c, 2);
            if (!pair) return tpl_oom(c, n);
            pair->items[0] = d->keys[i], pair->items[1] = d->vals[i], pair->n = 2;
            pairs->items[pairs->n++] = tv_list_val(pair, TVF_TUPLE);
            keys[i] = by_value ? d->vals[i] : d->keys[i];
            if (!(got[0] && tv_truthy(v[0])) && lower_if_str(c, n, keys[i], &keys[i])) return -1;
        }
        tpl_list *res;
        if (sorted(c, n, pairs, keys, got[2] && tv_truthy(v[2]), &res)) return -1;
        *out = tv_list_val(res, 0);
        return 0;
    }
    case F_ESCAPE:
        NOARGS("escape");
        if (soft_str(c, n, in, &s)) return -1;
        return do_escape(c, n, s, out);
    case F_FIRST:
    case F_LAST: {
        NOARGS(id == F_FIRST ? "first" : "last");
        if (id == F_LAST && in.kind != TV_LIST && in.kind != TV_STR && in.kind != TV_DICT &&
            in.kind != TV_UNDEF)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object is not reversible", tv_type_name(in));
        if (id == F_FIRST && in.kind == TV_ITER) {
            tpl_iter *it = in.u.iter;
            if (it->pos < it->items->n) {
                *out = it->items->items[it->pos++];
                return 0;
            }
            items = NULL;
        } else if (items_of(c, n, in, &items)) {
            return -1;
        }
        if (!items || !items->n) {
            *out = id == F_FIRST ? tv_undef(TU_HINT, "No first item, sequence was empty.", 34)
                                 : tv_undef(TU_HINT, "No last item, sequence was empty.", 33);
            return 0;
        }
        *out = items->items[id == F_FIRST ? 0 : items->n - 1];
        return 0;
    }
    case F_FLOAT: {
        BIND("float", "default");
        double d;
        if (tv_is_num(in))
            *out = tv_float(tv_num(in));
        else if (in.kind == TV_STR && parse_float_str(in, &d) == 0)
            *out = tv_float(d);
        else if (in.kind == TV_UNDEF)
            return tpl_undefined_error(c, n, in); /* float(Undefined) raises */
        else
            *out = got[0] ? v[0] : tv_float(0.0);
        return 0;
    }
    case F_INT: {
        BIND("int", "default", "base");
        int64_t base = 10, iv;
        double d;
        if (got[1] && need_int(c, n, v[1], "int", &base)) return -1;
        tv dflt = got[0] ? v[0] : tv_int(0);
        if (in.kind == TV_INT)
            *out = in;
        else if (in.kind == TV_BOOL)
            *out = tv_int(in.u.b);
        else if (in.kind == TV_FLOAT) {
            if (isnan(in.u.f) || isinf(in.u.f) || fabs(in.u.f) >= 9.2e18)
                *out = dflt;
            else
                *out = tv_int((int64_t)in.u.f);
        } else if (in.kind == TV_STR) {
            if (parse_int_str(in, base, &iv) == 0)
                *out = tv_int(iv);
            else if (parse_float_str(in, &d) == 0 && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18)
                *out = tv_int((int64_t)d);
            else
                *out = dflt;
        } else if (in.kind == TV_UNDEF) {
            return tpl_undefined_error(c, n, in);
        } else {
            *out = dflt;
        }
        return 0;
    }
    case F_FORMAT: {
        if (nargs && nkw)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                            "can't handle positional and keyword arguments at the same time");
        if (soft_str(c, n, in, &s)) return -1;
        tv argv;
        if (nkw) {
            tpl_dict *d = tpl_dict_new(c);
            if (!d) return tpl_oom(c, n);
            for (size_t k = 0; k < nkw; k++)
                if (tpl_dict_set(c, d, tv_str(kw[k].name.p, kw[k].name.n), kw[k].value)) return -1;
            argv = tv_dict_val(d);
        } else {
            tpl_list *l = tpl_list_new(c, nargs);
            if (!l) return tpl_oom(c, n);
            for (size_t i = 0; i < nargs; i++) l->items[l->n++] = args[i];
            argv = tv_list_val(l, TVF_TUPLE);
        }
        return tpl_percent_format(c, n, s, argv, out);
    }
    case F_INDENT:
        BIND("indent", "width", "first", "blank");
        /* jinja2 appends "\n" to the value itself: only strings work */
        if (in.kind == TV_UNDEF) return tpl_undefined_error(c, n, in);
        if (in.kind == TV_LIST && !(in.flags & TVF_TUPLE))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'list' object has no attribute 'splitlines'");
        if (in.kind == TV_LIST)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "can only concatenate tuple (not \"str\") to tuple");
        if (in.kind != TV_STR)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported operand type(s) for +=: '%s' and 'str'",
                            tv_type_name(in));
        return do_indent(c, n, in, v, got, out);
    case F_ITEMS: {
        NOARGS("items");
        tpl_list *l = tpl_list_new(c, in.kind == TV_DICT ? in.u.dict->n : 0);
        if (!l) return tpl_oom(c, n);
        if (in.kind == TV_DICT) {
            for (size_t i = 0; i < in.u.dict->n; i++) {
                tpl_list *pair = tpl_list_new(c, 2);
                if (!pair) return tpl_oom(c, n);
                pair->items[0] = in.u.dict->keys[i], pair->items[1] = in.u.dict->vals[i], pair->n = 2;
                l->items[l->n++] = tv_list_val(pair, TVF_TUPLE);
            }
        } else if (in.kind != TV_UNDEF) {
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Can only get item pairs from a mapping.");
        }
        *out = make_iter(c, l, "generator");
        return 0;
    }
    case F_JOIN: {
        BIND("join", "d", "attribute");
        tv sep = got[0] ? v[0] : tv_str("", 0);
        if (sep.kind != TV_STR && soft_str(c, n, sep, &sep)) return -1;
        if (items_of(c, n, in, &items)) return -1;
        llm_strbuf sb = LLM_STRBUF_INIT;
        for (size_t i = 0; i < items->n; i++) {
            tv x = items->items[i];
            if (got[1] && v[1].kind != TV_NONE && attr_get(c, n, x, v[1], NULL, &x)) {
                llm_strbuf_free(&sb);
                return -1;
            }
            if (i) llm_strbuf_append(&sb, sep.u.s.p, sep.u.s.n);
            if (tv_write_str(c, n, x, &sb) || tpl_sb_over(c, n, &sb)) {
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
    case F_LIST: {
        NOARGS("list");
        if (items_of(c, n, in, &items)) return -1;
        tpl_list *l = tpl_list_new(c, items->n);
        if (!l) return tpl_oom(c, n);
        memcpy(l->items, items->items, items->n * sizeof(tv));
        l->n = items->n;
        *out = tv_list_val(l, 0);
        return 0;
    }
    case F_MAP:
        return do_map(c, n, in, args, nargs, kw, nkw, out);
    case F_MAX:
    case F_MIN:
        BIND(id == F_MAX ? "max" : "min", "case_sensitive", "attribute");
        return min_max(c, n, in, v, got, id == F_MAX, out);
    case F_REJECT:
        return select_reject(c, n, in, args, nargs, kw, nkw, 1, 0, out);
    case F_SELECT:
        return select_reject(c, n, in, args, nargs, kw, nkw, 0, 0, out);
    case F_REJECTATTR:
        return select_reject(c, n, in, args, nargs, kw, nkw, 1, 1, out);
    case F_SELECTATTR:
        return select_reject(c, n, in, args, nargs, kw, nkw, 0, 1, out);
    case F_REPLACE: {
        BIND("replace", "old", "new", "count");
        if (!got[0] || !got[1]) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "replace() requires old and new");
        int64_t count = -1;
        tv old, nw;
        if (got[2] && v[2].kind != TV_NONE && need_int(c, n, v[2], "replace", &count)) return -1;
        if (soft_str(c, n, in, &s) || soft_str(c, n, v[0], &old) || soft_str(c, n, v[1], &nw)) return -1;
        return tpl_str_replace(c, n, s, old, nw, count, out);
    }
    case F_REVERSE: {
        NOARGS("reverse");
        if (in.kind == TV_STR) {
            tv step = tv_int(-1);
            return tv_slice(c, n, in, tv_none(), tv_none(), step, out);
        }
        if (in.kind == TV_UNDEF) {
            tpl_list *l = tpl_list_new(c, 0);
            if (!l) return tpl_oom(c, n);
            *out = make_iter(c, l, "reversed");
            return 0;
        }
        int was_iter = in.kind == TV_ITER;
        if (in.kind != TV_LIST && in.kind != TV_DICT && in.kind != TV_ITER)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "argument must be iterable");
        if (items_of(c, n, in, &items)) return -1;
        tpl_list *l = tpl_list_new(c, items->n);
        if (!l) return tpl_oom(c, n);
        for (size_t i = items->n; i-- > 0;) l->items[l->n++] = items->items[i];
        if (was_iter)
            *out = tv_list_val(l, 0);
        else
            *out = make_iter(c, l,
                             in.kind == TV_DICT       ? "dict_reversekeyiterator"
                             : (in.flags & TVF_RANGE) ? "range_iterator"
                                                      : "list_reverseiterator");
        return 0;
    }
    case F_ROUND:
        BIND("round", "precision", "method");
        return do_round(c, n, in, v, got, out);
    case F_SAFE:
    case F_STRING:
        NOARGS(id == F_SAFE ? "safe" : "string");
        return soft_str(c, n, in, out);
    case F_SORT: {
        BIND("sort", "reverse", "case_sensitive", "attribute");
        if (items_of(c, n, in, &items)) return -1;
        tv *keys = tpl_alloc(&c->arena, (items->n + 1) * sizeof(tv));
        if (!keys) return tpl_oom(c, n);
        int cs = got[1] && tv_truthy(v[1]);
        tv attr = got[2] ? v[2] : tv_none();
        for (size_t i = 0; i < items->n; i++)
            if (sort_key(c, n, items->items[i], attr, 1, cs, &keys[i])) return -1;
        tpl_list *res;
        if (sorted(c, n, items, keys, got[0] && tv_truthy(v[0]), &res)) return -1;
        *out = tv_list_val(res, 0);
        return 0;
    }
    case F_SUM: {
        BIND("sum", "attribute", "start");
        tv acc = got[1] ? v[1] : tv_int(0);
        if (items_of(c, n, in, &items)) return -1;
        for (size_t i = 0; i < items->n; i++) {
            tv x = items->items[i];
            if (got[0] && v[0].kind != TV_NONE && attr_get(c, n, x, v[0], NULL, &x)) return -1;
            if (acc.kind == TV_STR)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                "sum() can't sum strings [use ''.join(seq) instead]");
            if (tv_binop(c, n, OP_ADD, acc, x, &acc)) return -1;
        }
        *out = acc;
        return 0;
    }
    case F_TOJSON:
        BIND("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
        return do_tojson(c, n, in, v, got, out);
    case F_TRIM: {
        BIND("trim", "chars");
        if (soft_str(c, n, in, &s)) return -1;
        if (got[0] && v[0].kind != TV_NONE) {
            if (v[0].kind != TV_STR)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "strip arg must be None or str");
            tpl_str chars = v[0].u.s;
            *out = tpl_strip(s, &chars, 3);
        } else {
            *out = tpl_strip(s, NULL, 3);
        }
        return tpl_charge(c, n, s.u.s.n);
    }
    case F_TRUNCATE:
        BIND("truncate", "length", "killwords", "end", "leeway");
        if (in.kind != TV_STR) { /* jinja2 measures the value itself: only a short sequence passes through */
            int64_t len, length = 255, leeway = 5;
            if (tv_len(c, n, in, &len)) return -1;
            if (got[0] && need_int(c, n, v[0], "truncate", &length)) return -1;
            if (got[3] && v[3].kind != TV_NONE && need_int(c, n, v[3], "truncate", &leeway)) return -1;
            if (len <= length + leeway) {
                *out = in;
                return 0;
            }
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object has no attribute 'rsplit'",
                            tv_type_name(in));
        }
        return do_truncate(c, n, in, v, got, out);
    case F_UNIQUE: {
        BIND("unique", "case_sensitive", "attribute");
        if (items_of(c, n, in, &items)) return -1;
        tpl_list *res = tpl_list_new(c, 0);
        tpl_dict *seen = tpl_dict_new(c);
        if (!res || !seen) return tpl_oom(c, n);
        for (size_t i = 0; i < items->n; i++) {
            tv k;
            if (sort_key(c, n, items->items[i], got[1] ? v[1] : tv_none(), 0, got[0] && tv_truthy(v[0]), &k))
                return -1;
            if (!tpl_key_hashable(k))
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(k));
            if (tpl_dict_find(seen, k)) continue;
            if (tpl_dict_set(c, seen, k, tv_none()) || tpl_list_push(c, res, items->items[i]))
                return tpl_oom(c, n);
        }
        *out = make_iter(c, res, "generator");
        return 0;
    }
    case F_WORDCOUNT: {
        NOARGS("wordcount");
        if (soft_str(c, n, in, &s)) return -1;
        int64_t words = 0;
        int in_word = 0;
        size_t i = 0;
        while (i < s.u.s.n) {
            int w = tpl_cp_is_word(tpl_utf8_next(s.u.s.p, s.u.s.n, &i));
            if (w && !in_word) words++;
            in_word = w;
        }
        *out = tv_int(words);
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_INTERNAL, "internal error: filter id %d", id);
    }
}

int tpl_apply_filter_named(tpl_ctx *c, const tpl_node *n, tv name, tv in, const tv *args, size_t nargs,
                           const tpl_kwarg *kw, size_t nkw, tv *out) {
    if (name.kind != TV_STR) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "filter name must be a string");
    int id = tpl_filter_lookup(name.u.s.p, name.u.s.n);
    if (id == TPL_UNKNOWN)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "No filter named '%.*s'.", (int)name.u.s.n, name.u.s.p);
    if (id == TPL_UNSUPPORTED)
        return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "the '%.*s' filter is not supported", (int)name.u.s.n,
                        name.u.s.p);
    return tpl_apply_filter(c, n, id, in, args, nargs, kw, nkw, out);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static int one_arg(tpl_ctx *c, const tpl_node *n, const char *name, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, tv *v) {
    (void)kw;
    if (nargs != 1 || nkw)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "the '%s' test takes exactly one argument (%zu given)",
                        name, nargs + nkw);
    *v = args[0];
    return 0;
}

int tpl_apply_test(tpl_ctx *c, const tpl_node *n, int id, tv in, const tv *args, size_t nargs,
                   const tpl_kwarg *kw, size_t nkw, int *res) {
    tv a, r;
    if (id != T_EQ && id != T_NE && id != T_LT && id != T_LE && id != T_GT && id != T_GE && id != T_IN &&
        id != T_DIVISIBLEBY && id != T_SAMEAS && (nargs || nkw))
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "this test takes no arguments");
    switch (id) {
    case T_BOOLEAN:
        *res = in.kind == TV_BOOL;
        return 0;
    case T_CALLABLE:
        *res = in.kind == TV_MACRO || in.kind == TV_FUNC || in.kind == TV_UNDEF;
        return 0;
    case T_DEFINED:
        *res = in.kind != TV_UNDEF;
        return 0;
    case T_UNDEFINED:
        *res = in.kind == TV_UNDEF;
        return 0;
    case T_NONE:
        *res = in.kind == TV_NONE;
        return 0;
    case T_TRUE:
        *res = in.kind == TV_BOOL && in.u.b;
        return 0;
    case T_FALSE:
        *res = in.kind == TV_BOOL && !in.u.b;
        return 0;
    case T_INTEGER:
        *res = in.kind == TV_INT;
        return 0;
    case T_FLOAT:
        *res = in.kind == TV_FLOAT;
        return 0;
    case T_NUMBER:
        *res = tv_is_num(in);
        return 0;
    case T_STRING:
        *res = in.kind == TV_STR;
        return 0;
    case T_MAPPING:
        *res = in.kind == TV_DICT;
        return 0;
    case T_ITERABLE:
        *res = in.kind == TV_STR || in.kind == TV_LIST || in.kind == TV_DICT || in.kind == TV_ITER ||
               in.kind == TV_UNDEF || in.kind == TV_LOOP;
        return 0;
    case T_SEQUENCE:
        *res = in.kind == TV_STR || in.kind == TV_DICT || in.kind == TV_UNDEF ||
               (in.kind == TV_LIST && !(in.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES)));
        return 0;
    case T_ESCAPED:
        *res = 0;
        return 0;
    case T_ODD:
    case T_EVEN: {
        /* value % 2 == 1 / == 0, literally (3.5 is neither odd nor even; a str goes through str % 2) */
        if (tv_binop(c, n, OP_MOD, in, tv_int(2), &r)) return -1;
        int e = tv_eq(c, n, r, tv_int(id == T_ODD ? 1 : 0));
        if (e < 0) return -1;
        *res = e;
        return 0;
    }
    case T_DIVISIBLEBY: {
        if (one_arg(c, n, "divisibleby", args, nargs, kw, nkw, &a) || tv_binop(c, n, OP_MOD, in, a, &r))
            return -1;
        int e = tv_eq(c, n, r, tv_int(0));
        if (e < 0) return -1;
        *res = e;
        return 0;
    }
    case T_LOWER:
    case T_UPPER: {
        tv s;
        if (soft_str(c, n, in, &s)) return -1;
        int cased = 0, ok = 1;
        size_t i = 0;
        while (i < s.u.s.n && ok) {
            uint32_t cp = tpl_utf8_next(s.u.s.p, s.u.s.n, &i);
            if (id == T_LOWER ? tpl_cp_is_upper(cp) : tpl_cp_is_lower(cp))
                ok = 0;
            else if (id == T_LOWER ? tpl_cp_is_lower(cp) : tpl_cp_is_upper(cp))
                cased = 1;
        }
        *res = ok && cased;
        return 0;
    }
    case T_EQ:
    case T_NE: {
        if (one_arg(c, n, id == T_EQ ? "eq" : "ne", args, nargs, kw, nkw, &a)) return -1;
        int e = tv_eq(c, n, in, a);
        if (e < 0) return -1;
        *res = id == T_EQ ? e : !e;
        return 0;
    }
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE:
        if (one_arg(c, n, "comparison", args, nargs, kw, nkw, &a)) return -1;
        return tv_order(c, n,
                        id == T_LT   ? OP_LT
                        : id == T_LE ? OP_LTEQ
                        : id == T_GT ? OP_GT
                                     : OP_GTEQ,
                        in, a, res);
    case T_IN:
        if (one_arg(c, n, "in", args, nargs, kw, nkw, &a)) return -1;
        return tv_contains(c, n, a, in, res);
    case T_SAMEAS:
        if (one_arg(c, n, "sameas", args, nargs, kw, nkw, &a)) return -1;
        if (in.kind != a.kind)
            *res = 0;
        else if (in.kind == TV_NONE || in.kind == TV_UNDEF)
            *res = 1;
        else if (in.kind == TV_BOOL)
            *res = in.u.b == a.u.b;
        else if (in.kind == TV_INT)
            *res = in.u.i == a.u.i && in.u.i >= -5 && in.u.i <= 256; /* CPython's small ints */
        else if (in.kind == TV_FLOAT)
            *res = 0;
        else if (in.kind == TV_STR)
            *res = in.u.s.p == a.u.s.p && in.u.s.n == a.u.s.n;
        else
            *res = in.u.dict == a.u.dict;
        return 0;
    case T_FILTER:
    case T_TEST:
        if (in.kind != TV_STR) {
            *res = 0;
            return 0;
        }
        *res = (id == T_FILTER ? tpl_filter_lookup(in.u.s.p, in.u.s.n)
                               : tpl_test_lookup(in.u.s.p, in.u.s.n)) >= 0;
        return 0;
    default:
        return tpl_fail(c, n, LLM_ERR_INTERNAL, "internal error: test id %d", id);
    }
}

int tpl_apply_test_named(tpl_ctx *c, const tpl_node *n, tv name, tv in, const tv *args, size_t nargs,
                         const tpl_kwarg *kw, size_t nkw, int *res) {
    if (name.kind != TV_STR) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "test name must be a string");
    int id = tpl_test_lookup(name.u.s.p, name.u.s.n);
    if (id < 0)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "No test named '%.*s'.", (int)name.u.s.n, name.u.s.p);
    return tpl_apply_test(c, n, id, in, args, nargs, kw, nkw, res);
}
