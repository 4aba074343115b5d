/* Methods of the built-in types (str, dict, list, loop) and jinja2's / transformers' globals
 * (range, namespace, dict, joiner, raise_exception, strftime_now), with Python's semantics.
 * Mutating methods (list.append, dict.update, ...) are refused as transformers' sandbox
 * (ImmutableSandboxedEnvironment) refuses them. */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template/tpl.h"

enum {
    /* str */
    M_STRIP = 1,
    M_LSTRIP,
    M_RSTRIP,
    M_SPLIT,
    M_RSPLIT,
    M_SPLITLINES,
    M_STARTSWITH,
    M_ENDSWITH,
    M_REPLACE,
    M_UPPER,
    M_LOWER,
    M_TITLE,
    M_CAPITALIZE,
    M_SWAPCASE,
    M_CASEFOLD,
    M_FIND,
    M_RFIND,
    M_INDEX,
    M_RINDEX,
    M_COUNT,
    M_JOIN,
    M_FORMAT,
    M_ISDIGIT,
    M_ISALPHA,
    M_ISALNUM,
    M_ISSPACE,
    M_ISLOWER,
    M_ISUPPER,
    M_ISTITLE,
    M_ISDECIMAL,
    M_ISNUMERIC,
    M_ISASCII,
    M_CENTER,
    M_LJUST,
    M_RJUST,
    M_ZFILL,
    M_PARTITION,
    M_RPARTITION,
    M_REMOVEPREFIX,
    M_REMOVESUFFIX,
    M_STR_UNSUPPORTED,
    /* dict */
    M_D_GET,
    M_D_ITEMS,
    M_D_KEYS,
    M_D_VALUES,
    M_D_COPY,
    /* list / tuple */
    M_L_INDEX,
    M_L_COUNT,
    M_L_COPY,
    /* loop */
    M_LOOP_CYCLE,
    M_LOOP_CHANGED,
    /* globals */
    G_RANGE,
    G_NAMESPACE,
    G_DICT,
    G_RAISE,
    G_STRFTIME,
    G_JOINER,
    G_JOINER_CALL,
    G_UNSUPPORTED,
};

static const struct {
    const char *name;
    int id;
} STR_METHODS[] = {
    {"strip", M_STRIP},
    {"lstrip", M_LSTRIP},
    {"rstrip", M_RSTRIP},
    {"split", M_SPLIT},
    {"rsplit", M_RSPLIT},
    {"splitlines", M_SPLITLINES},
    {"startswith", M_STARTSWITH},
    {"endswith", M_ENDSWITH},
    {"replace", M_REPLACE},
    {"upper", M_UPPER},
    {"lower", M_LOWER},
    {"title", M_TITLE},
    {"capitalize", M_CAPITALIZE},
    {"swapcase", M_SWAPCASE},
    {"casefold", M_CASEFOLD},
    {"find", M_FIND},
    {"rfind", M_RFIND},
    {"index", M_INDEX},
    {"rindex", M_RINDEX},
    {"count", M_COUNT},
    {"join", M_JOIN},
    {"format", M_FORMAT},
    {"isdigit", M_ISDIGIT},
    {"isalpha", M_ISALPHA},
    {"isalnum", M_ISALNUM},
    {"isspace", M_ISSPACE},
    {"islower", M_ISLOWER},
    {"isupper", M_ISUPPER},
    {"istitle", M_ISTITLE},
    {"isdecimal", M_ISDECIMAL},
    {"isnumeric", M_ISNUMERIC},
    {"isascii", M_ISASCII},
    {"center", M_CENTER},
    {"ljust", M_LJUST},
    {"rjust", M_RJUST},
    {"zfill", M_ZFILL},
    {"partition", M_PARTITION},
    {"rpartition", M_RPARTITION},
    {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX},
    /* exist in Python, not here */
    {"encode", M_STR_UNSUPPORTED},
    {"expandtabs", M_STR_UNSUPPORTED},
    {"format_map", M_STR_UNSUPPORTED},
    {"isidentifier", M_STR_UNSUPPORTED},
    {"isprintable", M_STR_UNSUPPORTED},
    {"maketrans", M_STR_UNSUPPORTED},
    {"translate", M_STR_UNSUPPORTED},
};

static const char *const DICT_UNSAFE[] = {"clear", "pop", "popitem", "setdefault", "update", NULL};
static const char *const LIST_UNSAFE[] = {"append", "clear",  "pop",    "reverse", "insert",
                                          "sort",   "extend", "remove", NULL};

static int name_in(tpl_str name, const char *const *list) {
    for (; *list; list++)
        if (tpl_str_eq(name, *list)) return 1;
    return 0;
}

static tv make_func(tpl_ctx *c, int id, tv self, tpl_str name) {
    tpl_func *f = tpl_alloc(&c->arena, sizeof *f);
    tv v = {TV_FUNC, 0, 0, {0}};
    if (!f) return tv_undef(TU_HINT, "out of memory", 13); /* the arena's failure flag reports it */
    f->id = id;
    f->self = self;
    f->name = name;
    v.u.func = f;
    return v;
}

static tv unsafe(tpl_ctx *c, tv obj, tpl_str name) {
    char msg[160];
    int k = snprintf(msg, sizeof msg, "access to attribute '%.*s' of '%s' object is unsafe.", (int)name.n,
                     name.p, tv_type_name(obj));
    char *m = tpl_strdup(&c->arena, msg, (size_t)k);
    return tv_undef(TU_UNSAFE, m ? m : "unsafe", m ? (size_t)k : 6);
}

int tpl_method_lookup(tpl_ctx *c, const tpl_node *n, tv obj, tpl_str name, tv *out) {
    (void)n;
    int id = 0;
    switch (obj.kind) {
    case TV_STR:
        for (size_t i = 0; i < sizeof STR_METHODS / sizeof STR_METHODS[0]; i++)
            if (tpl_str_eq(name, STR_METHODS[i].name)) id = STR_METHODS[i].id;
        break;
    case TV_DICT:
        if (tpl_str_eq(name, "get"))
            id = M_D_GET;
        else if (tpl_str_eq(name, "items"))
            id = M_D_ITEMS;
        else if (tpl_str_eq(name, "keys"))
            id = M_D_KEYS;
        else if (tpl_str_eq(name, "values"))
            id = M_D_VALUES;
        else if (tpl_str_eq(name, "copy"))
            id = M_D_COPY;
        else if (name_in(name, DICT_UNSAFE)) {
            *out = unsafe(c, obj, name);
            return 1;
        }
        break;
    case TV_LIST:
        if (obj.flags & (TVF_ITEMS | TVF_KEYS | TVF_VALUES)) break;
        if (tpl_str_eq(name, "index"))
            id = M_L_INDEX;
        else if (tpl_str_eq(name, "count"))
            id = M_L_COUNT;
        else if (!(obj.flags & (TVF_TUPLE | TVF_RANGE))) {
            if (tpl_str_eq(name, "copy"))
                id = M_L_COPY;
            else if (name_in(name, LIST_UNSAFE)) {
                *out = unsafe(c, obj, name);
                return 1;
            }
        }
        break;
    case TV_LOOP:
        if (tpl_str_eq(name, "cycle"))
            id = M_LOOP_CYCLE;
        else if (tpl_str_eq(name, "changed"))
            id = M_LOOP_CHANGED;
        break;
    default:
        break;
    }
    if (!id) return 0;
    *out = make_func(c, id, obj, name);
    return 1;
}

int tpl_global_lookup(tpl_ctx *c, tpl_str name, tv *out) {
    static const struct {
        const char *name;
        int id;
    } G[] = {{"range", G_RANGE},           {"namespace", G_NAMESPACE},   {"dict", G_DICT},
             {"raise_exception", G_RAISE}, {"strftime_now", G_STRFTIME}, {"joiner", G_JOINER},
             {"cycler", G_UNSUPPORTED},    {"lipsum", G_UNSUPPORTED}};
    for (size_t i = 0; i < sizeof G / sizeof G[0]; i++)
        if (tpl_str_eq(name, G[i].name)) {
            *out = make_func(c, G[i].id, tv_none(), name);
            return 1;
        }
    return 0;
}

int tpl_bind_args(tpl_ctx *c, const tpl_node *n, const char *fname, const char *const *params, size_t np,
                  const tv *args, size_t nargs, const tpl_kwarg *kw, size_t nkw, tv *vals, int *got) {
    for (size_t i = 0; i < np; i++) got[i] = 0, vals[i] = tv_none();
    if (nargs > np)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes at most %zu argument%s (%zu given)", fname, np,
                        np == 1 ? "" : "s", nargs);
    for (size_t i = 0; i < nargs; i++) vals[i] = args[i], got[i] = 1;
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < np && !tpl_str_eq(kw[k].name, params[i])) i++;
        if (i == np)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() got an unexpected keyword argument '%.*s'", fname,
                            (int)kw[k].name.n, kw[k].name.p);
        if (got[i])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() got multiple values for argument '%s'", fname,
                            params[i]);
        vals[i] = kw[k].value, got[i] = 1;
    }
    return 0;
}

/* ---- string helpers ------------------------------------------------------------------------- */

static int need_str(tpl_ctx *c, const tpl_node *n, tv v, const char *what) {
    if (v.kind == TV_STR) return 0;
    if (v.kind == TV_UNDEF) return tpl_undefined_error(c, n, v);
    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s%smust be str, not %s", what, *what ? " " : "",
                    tv_type_name(v));
}

static int need_int(tpl_ctx *c, const tpl_node *n, tv v, int64_t *out) {
    if (v.kind == TV_INT)
        *out = v.u.i;
    else if (v.kind == TV_BOOL)
        *out = v.u.b;
    else if (v.kind == TV_UNDEF)
        return tpl_undefined_error(c, n, v);
    else
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "'%s' object cannot be interpreted as an integer",
                        tv_type_name(v));
    return 0;
}

static int in_chars(uint32_t cp, const tpl_str *chars) {
    if (!chars) return tpl_py_isspace(cp);
    size_t i = 0;
    while (i < chars->n)
        if (tpl_utf8_next(chars->p, chars->n, &i) == cp) return 1;
    return 0;
}

/* str.strip family; which: 1 left, 2 right, 3 both */
tv tpl_strip(tv s, const tpl_str *chars, int which) {
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, a = 0, b = n;
    if (which & 1) {
        while (a < n) {
            size_t q = a;
            if (!in_chars(tpl_utf8_next(p, n, &q), chars)) break;
            a = q;
        }
    }
    if (which & 2) {
        size_t keep = a, i = a;
        while (i < n) { /* forward scan: the end of the last character not stripped */
            uint32_t cp = tpl_utf8_next(p, n, &i);
            if (!in_chars(cp, chars)) keep = i;
        }
        b = keep;
    }
    tv r = tv_str(p + a, b - a);
    r.flags = s.flags & TVF_ASCII;
    return r;
}

static int push_str(tpl_ctx *c, const tpl_node *n, tpl_list *l, const char *p, size_t len) {
    tv v = tv_str(p, len);
    if (tpl_list_push(c, l, v)) return tpl_oom(c, n);
    return 0;
}

static int do_split(tpl_ctx *c, const tpl_node *n, tv s, tv sep, int64_t maxsplit, int right, tv *out) {
    const char *p = s.u.s.p;
    size_t len = s.u.s.n;
    tpl_list *l = tpl_list_new(c, 0);
    if (!l) return tpl_oom(c, n);
    if (tpl_charge(c, n, len)) return -1;
    if (sep.kind == TV_NONE) {
        if (!right) {
            size_t i = 0;
            for (;;) {
                while (i < len) { /* skip whitespace */
                    size_t q = i;
                    if (!tpl_py_isspace(tpl_utf8_next(p, len, &q))) break;
                    i = q;
                }
                if (i >= len) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) {
                    size_t e = len; /* the rest, trailing whitespace included */
                    if (push_str(c, n, l, p + i, e - i)) return -1;
                    break;
                }
                size_t st = i;
                while (i < len) {
                    size_t q = i;
                    if (tpl_py_isspace(tpl_utf8_next(p, len, &q))) break;
                    i = q;
                }
                if (push_str(c, n, l, p + st, i - st)) return -1;
            }
        } else {
            /* collect words left to right with their starts, then keep the last maxsplit */
            size_t *starts = tpl_alloc(&c->arena, (len + 1) * sizeof *starts),
                   *ends = tpl_alloc(&c->arena, (len + 1) * sizeof *ends);
            if (!starts || !ends) return tpl_oom(c, n);
            size_t k = 0, i = 0;
            for (;;) {
                while (i < len) {
                    size_t q = i;
                    if (!tpl_py_isspace(tpl_utf8_next(p, len, &q))) break;
                    i = q;
                }
                if (i >= len) break;
                starts[k] = i;
                while (i < len) {
                    size_t q = i;
                    if (tpl_py_isspace(tpl_utf8_next(p, len, &q))) break;
                    i = q;
                }
                ends[k++] = i;
            }
            size_t first = 0;
            if (maxsplit >= 0 && k > (size_t)maxsplit + 1) first = k - (size_t)maxsplit - 1;
            if (k) {
                if (first > 0) {
                    if (push_str(c, n, l, p, ends[first])) return -1;
                    first++;
                    for (size_t j = first; j < k; j++)
                        if (push_str(c, n, l, p + starts[j], ends[j] - starts[j])) return -1;
                    /* the head keeps its leading whitespace: rsplit only strips from the right */
                } else {
                    for (size_t j = 0; j < k; j++)
                        if (push_str(c, n, l, p + starts[j], ends[j] - starts[j])) return -1;
                }
            }
        }
    } else {
        if (sep.kind != TV_STR) return need_str(c, n, sep, "separator");
        const char *q = sep.u.s.p;
        size_t m = sep.u.s.n;
        if (m == 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "empty separator");
        if (!right) {
            size_t i = 0;
            for (;;) {
                const char *hit =
                    (maxsplit < 0 || (int64_t)l->n < maxsplit) ? memmem(p + i, len - i, q, m) : NULL;
                if (!hit) {
                    if (push_str(c, n, l, p + i, len - i)) return -1;
                    break;
                }
                size_t h = (size_t)(hit - p);
                if (push_str(c, n, l, p + i, h - i)) return -1;
                i = h + m;
            }
        } else {
            /* find all non-overlapping occurrences from the right */
            size_t end = len;
            tpl_list *rev = tpl_list_new(c, 0);
            if (!rev) return tpl_oom(c, n);
            int64_t splits = 0;
            for (;;) {
                size_t found = (size_t)-1;
                if (maxsplit < 0 || splits < maxsplit) {
                    if (end >= m)
                        for (size_t k = end - m + 1; k-- > 0;)
                            if (memcmp(p + k, q, m) == 0) {
                                found = k;
                                break;
                            }
                }
                if (found == (size_t)-1) {
                    if (push_str(c, n, rev, p, end)) return -1;
                    break;
                }
                if (push_str(c, n, rev, p + found + m, end - found - m)) return -1;
                end = found;
                splits++;
            }
            for (size_t k = rev->n; k-- > 0;)
                if (tpl_list_push(c, l, rev->items[k])) return tpl_oom(c, n);
        }
    }
    for (size_t k = 0; k < l->n; k++)
        if (s.flags & TVF_ASCII) l->items[k].flags |= TVF_ASCII;
    *out = tv_list_val(l, 0);
    return 0;
}

static int is_linebreak(uint32_t cp) {
    return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
           cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

int tpl_splitlines(tpl_ctx *c, const tpl_node *n, tv s, int keepends, tpl_list **out) {
    const char *p = s.u.s.p;
    size_t len = s.u.s.n, i = 0, st = 0;
    tpl_list *l = tpl_list_new(c, 0);
    if (!l) return tpl_oom(c, n);
    while (i < len) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(p, len, &i);
        if (!is_linebreak(cp)) continue;
        size_t eol = i;
        if (cp == '\r' && i < len && p[i] == '\n') eol = ++i;
        if (push_str(c, n, l, p + st, (keepends ? eol : at) - st)) return -1;
        st = i;
    }
    if (st < len && push_str(c, n, l, p + st, len - st)) return -1;
    *out = l;
    return tpl_charge(c, n, len);
}

static int map_case(tpl_ctx *c, const tpl_node *n, tv s, int mode, tv *out) {
    /* mode: 0 upper, 1 lower, 2 python title, 3 capitalize, 4 swapcase */
    const char *p = s.u.s.p;
    size_t len = s.u.s.n, i = 0;
    llm_strbuf sb = LLM_STRBUF_INIT;
    int prev_cased = 0, first = 1;
    while (i < len) {
        uint32_t cp = tpl_utf8_next(p, len, &i), r = cp;
        switch (mode) {
        case 0:
            r = tpl_cp_upper(cp);
            break;
        case 1:
            r = tpl_cp_lower(cp);
            break;
        case 2:
            r = prev_cased ? tpl_cp_lower(cp) : tpl_cp_title(cp);
            prev_cased = tpl_cp_is_cased(cp);
            break;
        case 3:
            r = first ? tpl_cp_title(cp) : tpl_cp_lower(cp);
            break;
        default:
            r = tpl_cp_is_upper(cp) ? tpl_cp_lower(cp) : tpl_cp_is_lower(cp) ? tpl_cp_upper(cp) : cp;
            break;
        }
        first = 0;
        char u[4];
        llm_strbuf_append(&sb, u, tpl_utf8_put(r, u));
    }
    if (tpl_charge(c, n, len)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    int rc = tpl_sb_to_str(c, n, &sb, out);
    if (!rc) out->flags |= s.flags & TVF_ASCII;
    return rc;
}

int tpl_case(tpl_ctx *c, const tpl_node *n, tv s, int mode, tv *out) {
    return map_case(c, n, s, mode, out);
}

/* Code point index range [start, end) arguments of find/count/startswith as byte offsets. */
static int cp_range(tpl_ctx *c, const tpl_node *n, tv s, const tv *vals, const int *got, size_t *bs,
                    size_t *be) {
    int64_t len = (int64_t)tpl_utf8_count(s.u.s.p, s.u.s.n), a = 0, b = len;
    if (got[0] && vals[0].kind != TV_NONE && need_int(c, n, vals[0], &a)) return -1;
    if (got[1] && vals[1].kind != TV_NONE && need_int(c, n, vals[1], &b)) return -1;
    if (a < 0) a = a + len < 0 ? 0 : a + len;
    if (b < 0) b = b + len < 0 ? 0 : b + len;
    if (a > len) a = len + 1; /* empty, and "start past the end" finds nothing */
    if (b > len) b = len;
    *bs = a > len ? s.u.s.n + 1 : tpl_utf8_offset(s.u.s.p, s.u.s.n, (size_t)a);
    *be = tpl_utf8_offset(s.u.s.p, s.u.s.n, (size_t)b);
    return 0;
}

static int64_t cp_index(tv s, size_t byte_off) {
    return (int64_t)tpl_utf8_count(s.u.s.p, byte_off);
}

static int pad(tpl_ctx *c, const tpl_node *n, tv s, int64_t width, tv fill, int mode, tv *out) {
    /* mode: 0 center, 1 ljust, 2 rjust */
    uint32_t fc = ' ';
    if (fill.kind != TV_NONE) {
        if (need_str(c, n, fill, "fill character")) return -1;
        if (tpl_utf8_count(fill.u.s.p, fill.u.s.n) != 1)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                            "The fill character must be exactly one character long");
        size_t i = 0;
        fc = tpl_utf8_next(fill.u.s.p, fill.u.s.n, &i);
    }
    int64_t len = (int64_t)tpl_utf8_count(s.u.s.p, s.u.s.n);
    if (width <= len) {
        *out = s;
        return 0;
    }
    if (width > (int64_t)c->max_bytes) return tpl_oom(c, n);
    int64_t marg = width - len, left;
    if (mode == 0)
        left = marg / 2 + (marg & width & 1);
    else
        left = mode == 1 ? 0 : marg;
    llm_strbuf sb = LLM_STRBUF_INIT;
    char u[4];
    size_t un = tpl_utf8_put(fc, u);
    for (int64_t i = 0; i < left; i++) llm_strbuf_append(&sb, u, un);
    llm_strbuf_append(&sb, s.u.s.p, s.u.s.n);
    for (int64_t i = 0; i < marg - left; i++) llm_strbuf_append(&sb, u, un);
    return tpl_sb_to_str(c, n, &sb, out);
}

int tpl_pad(tpl_ctx *c, const tpl_node *n, tv s, int64_t width, int mode, tv *out) {
    return pad(c, n, s, width, tv_none(), mode, out);
}

static int str_format(tpl_ctx *c, const tpl_node *n, tv fmt, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out);

/* prefix/suffix test with a str or a tuple of str */
static int affix(tpl_ctx *c, const tpl_node *n, tv s, tv what, size_t bs, size_t be, int suffix, int *res) {
    *res = 0;
    if (bs > s.u.s.n) return 0;
    if (what.kind == TV_LIST && (what.flags & TVF_TUPLE)) {
        for (size_t i = 0; i < what.u.list->n; i++) {
            if (affix(c, n, s, what.u.list->items[i], bs, be, suffix, res)) return -1;
            if (*res) return 0;
        }
        return 0;
    }
    if (what.kind != TV_STR)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s first arg must be str or a tuple of str, not %s",
                        suffix ? "endswith" : "startswith", tv_type_name(what));
    size_t m = what.u.s.n;
    if (be < bs || be - bs < m) return 0;
    *res = memcmp(s.u.s.p + (suffix ? be - m : bs), what.u.s.p, m) == 0;
    return 0;
}

static int str_method(tpl_ctx *c, const tpl_node *n, tpl_func *f, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out) {
    tv s = f->self;
    tv v[4];
    int got[4];
    char fname[48];
    snprintf(fname, sizeof fname, "str.%.*s", (int)f->name.n, f->name.p);
#define BIND(...)                                                                                            \
    do {                                                                                                     \
        static const char *const P_[] = {__VA_ARGS__};                                                       \
        if (tpl_bind_args(c, n, fname, P_, sizeof P_ / sizeof P_[0], args, nargs, kw, nkw, v, got))          \
            return -1;                                                                                       \
    } while (0)
#define NOARGS()                                                                                             \
    do {                                                                                                     \
        if (nargs || nkw) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes no arguments", fname);       \
    } while (0)
    switch (f->id) {
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        BIND("chars");
        tpl_str chars;
        int have = got[0] && v[0].kind != TV_NONE;
        if (have) {
            if (need_str(c, n, v[0], "strip arg")) return -1;
            chars = v[0].u.s;
        }
        *out = tpl_strip(s, have ? &chars : NULL, f->id == M_STRIP ? 3 : f->id == M_LSTRIP ? 1 : 2);
        return tpl_charge(c, n, s.u.s.n);
    }
    case M_SPLIT:
    case M_RSPLIT: {
        BIND("sep", "maxsplit");
        int64_t maxsplit = -1;
        if (got[1] && need_int(c, n, v[1], &maxsplit)) return -1;
        return do_split(c, n, s, got[0] ? v[0] : tv_none(), maxsplit, f->id == M_RSPLIT, out);
    }
    case M_SPLITLINES: {
        BIND("keepends");
        tpl_list *l;
        if (tpl_splitlines(c, n, s, got[0] && tv_truthy(v[0]), &l)) return -1;
        *out = tv_list_val(l, 0);
        return 0;
    }
    case M_STARTSWITH:
    case M_ENDSWITH: {
        BIND("prefix", "start", "end");
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes at least 1 argument (0 given)", fname);
        size_t bs, be;
        int r;
        if (cp_range(c, n, s, v + 1, got + 1, &bs, &be) ||
            affix(c, n, s, v[0], bs, be, f->id == M_ENDSWITH, &r))
            return -1;
        *out = tv_bool(r);
        return 0;
    }
    case M_REPLACE: {
        BIND("old", "new", "count");
        int64_t count = -1;
        if (!got[0] || !got[1])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes at least 2 arguments", fname);
        if (need_str(c, n, v[0], "replace() argument 1") || need_str(c, n, v[1], "replace() argument 2"))
            return -1;
        if (got[2] && need_int(c, n, v[2], &count)) return -1;
        return tpl_str_replace(c, n, s, v[0], v[1], count, out);
    }
    case M_UPPER:
        NOARGS();
        return map_case(c, n, s, 0, out);
    case M_LOWER:
    case M_CASEFOLD:
        NOARGS();
        return map_case(c, n, s, 1, out);
    case M_TITLE:
        NOARGS();
        return map_case(c, n, s, 2, out);
    case M_CAPITALIZE:
        NOARGS();
        return map_case(c, n, s, 3, out);
    case M_SWAPCASE:
        NOARGS();
        return map_case(c, n, s, 4, out);
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
    case M_COUNT: {
        BIND("sub", "start", "end");
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes at least 1 argument (0 given)", fname);
        if (need_str(c, n, v[0], "")) return -1;
        size_t bs, be;
        if (cp_range(c, n, s, v + 1, got + 1, &bs, &be)) return -1;
        if (tpl_charge(c, n, s.u.s.n)) return -1;
        const char *p = s.u.s.p, *q = v[0].u.s.p;
        size_t m = v[0].u.s.n;
        if (f->id == M_COUNT) {
            int64_t k = 0;
            if (bs <= be && bs <= s.u.s.n) {
                if (m == 0)
                    k = (int64_t)tpl_utf8_count(p + bs, be - bs) + 1;
                else
                    for (size_t i = bs; i + m <= be;) {
                        const char *h = memmem(p + i, be - i, q, m);
                        if (!h) break;
                        k++;
                        i = (size_t)(h - p) + m;
                    }
            }
            *out = tv_int(k);
            return 0;
        }
        int64_t at = -1;
        if (bs <= be && bs <= s.u.s.n && be - bs >= m) {
            if (f->id == M_FIND || f->id == M_INDEX) {
                const char *h = m ? memmem(p + bs, be - bs, q, m) : p + bs;
                if (h) at = cp_index(s, (size_t)(h - p));
            } else {
                for (size_t k = be - m + 1; k-- > bs;)
                    if (memcmp(p + k, q, m) == 0) {
                        at = cp_index(s, k);
                        break;
                    }
            }
        }
        if (at < 0 && (f->id == M_INDEX || f->id == M_RINDEX))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "substring not found");
        *out = tv_int(at);
        return 0;
    }
    case M_JOIN: {
        BIND("iterable");
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes exactly one argument (0 given)", fname);
        tpl_list *items;
        if (tv_items(c, n, v[0], &items)) return -1;
        llm_strbuf sb = LLM_STRBUF_INIT;
        for (size_t i = 0; i < items->n; i++) {
            if (items->items[i].kind != TV_STR) {
                llm_strbuf_free(&sb);
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                "sequence item %zu: expected str instance, %s found", i,
                                tv_type_name(items->items[i]));
            }
            if (i) llm_strbuf_append(&sb, s.u.s.p, s.u.s.n);
            llm_strbuf_append(&sb, items->items[i].u.s.p, items->items[i].u.s.n);
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
    case M_FORMAT:
        return str_format(c, n, s, args, nargs, kw, nkw, out);
    case M_ISDIGIT:
    case M_ISALPHA:
    case M_ISALNUM:
    case M_ISSPACE:
    case M_ISDECIMAL:
    case M_ISNUMERIC:
    case M_ISASCII: {
        NOARGS();
        const char *p = s.u.s.p;
        size_t len = s.u.s.n, i = 0;
        int ok = len > 0 || f->id == M_ISASCII;
        while (ok && i < len) {
            uint32_t cp = tpl_utf8_next(p, len, &i);
            switch (f->id) {
            case M_ISDIGIT:
                ok = tpl_cp_is_digit(cp);
                break;
            case M_ISALPHA:
                ok = tpl_cp_is_alpha(cp);
                break;
            case M_ISALNUM:
                ok = tpl_cp_is_alnum(cp);
                break;
            case M_ISSPACE:
                ok = tpl_py_isspace(cp);
                break;
            case M_ISDECIMAL:
                ok = tpl_cp_is_decimal(cp);
                break;
            case M_ISNUMERIC:
                ok = tpl_cp_is_digit(cp) || (tpl_cp_is_alnum(cp) && !tpl_cp_is_alpha(cp));
                break;
            default:
                ok = cp < 0x80;
                break;
            }
        }
        *out = tv_bool(ok);
        return 0;
    }
    case M_ISLOWER:
    case M_ISUPPER:
    case M_ISTITLE: {
        NOARGS();
        const char *p = s.u.s.p;
        size_t len = s.u.s.n, i = 0;
        int cased = 0, ok = 1, prev_cased = 0;
        while (i < len && ok) {
            uint32_t cp = tpl_utf8_next(p, len, &i);
            int up = tpl_cp_is_upper(cp), lo = tpl_cp_is_lower(cp);
            if (f->id == M_ISLOWER) {
                if (up)
                    ok = 0;
                else if (lo)
                    cased = 1;
            } else if (f->id == M_ISUPPER) {
                if (lo)
                    ok = 0;
                else if (up)
                    cased = 1;
            } else {
                if (up) {
                    if (prev_cased) ok = 0;
                    prev_cased = cased = 1;
                } else if (lo) {
                    if (!prev_cased) ok = 0;
                    prev_cased = cased = 1;
                } else {
                    prev_cased = 0;
                }
            }
        }
        *out = tv_bool(ok && cased);
        return 0;
    }
    case M_CENTER:
    case M_LJUST:
    case M_RJUST: {
        BIND("width", "fillchar");
        int64_t w = 0;
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes at least 1 argument (0 given)", fname);
        if (need_int(c, n, v[0], &w)) return -1;
        return pad(c, n, s, w, got[1] ? v[1] : tv_none(),
                   f->id == M_CENTER  ? 0
                   : f->id == M_LJUST ? 1
                                      : 2,
                   out);
    }
    case M_ZFILL: {
        BIND("width");
        int64_t w = 0;
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes exactly one argument (0 given)", fname);
        if (need_int(c, n, v[0], &w)) return -1;
        int64_t len = (int64_t)tpl_utf8_count(s.u.s.p, s.u.s.n);
        if (w <= len) {
            *out = s;
            return 0;
        }
        if (w > (int64_t)c->max_bytes) return tpl_oom(c, n);
        llm_strbuf sb = LLM_STRBUF_INIT;
        size_t st = 0;
        if (s.u.s.n && (s.u.s.p[0] == '+' || s.u.s.p[0] == '-'))
            llm_strbuf_append_char(&sb, s.u.s.p[0]), st = 1;
        for (int64_t i = 0; i < w - len; i++) llm_strbuf_append_char(&sb, '0');
        llm_strbuf_append(&sb, s.u.s.p + st, s.u.s.n - st);
        return tpl_sb_to_str(c, n, &sb, out);
    }
    case M_PARTITION:
    case M_RPARTITION: {
        BIND("sep");
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes exactly one argument (0 given)", fname);
        if (need_str(c, n, v[0], "separator")) return -1;
        const char *p = s.u.s.p, *q = v[0].u.s.p;
        size_t len = s.u.s.n, m = v[0].u.s.n, at = (size_t)-1;
        if (!m) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "empty separator");
        if (f->id == M_PARTITION) {
            const char *h = memmem(p, len, q, m);
            if (h) at = (size_t)(h - p);
        } else if (len >= m) {
            for (size_t k = len - m + 1; k-- > 0;)
                if (memcmp(p + k, q, m) == 0) {
                    at = k;
                    break;
                }
        }
        tpl_list *l = tpl_list_new(c, 3);
        if (!l) return tpl_oom(c, n);
        if (at == (size_t)-1) {
            tv e = tv_str("", 0);
            if (f->id == M_PARTITION)
                l->items[0] = s, l->items[1] = e, l->items[2] = e;
            else
                l->items[0] = e, l->items[1] = e, l->items[2] = s;
        } else {
            l->items[0] = tv_str(p, at);
            l->items[1] = v[0];
            l->items[2] = tv_str(p + at + m, len - at - m);
        }
        l->n = 3;
        *out = tv_list_val(l, TVF_TUPLE);
        return 0;
    }
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        BIND("affix");
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s() takes exactly one argument (0 given)", fname);
        if (need_str(c, n, v[0], "argument")) return -1;
        size_t m = v[0].u.s.n, len = s.u.s.n;
        *out = s;
        if (m <= len) {
            if (f->id == M_REMOVEPREFIX && memcmp(s.u.s.p, v[0].u.s.p, m) == 0)
                *out = tv_str(s.u.s.p + m, len - m);
            else if (f->id == M_REMOVESUFFIX && m && memcmp(s.u.s.p + len - m, v[0].u.s.p, m) == 0)
                *out = tv_str(s.u.s.p, len - m);
        }
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "%s() is not supported", fname);
    }
#undef BIND
#undef NOARGS
}

int tpl_str_replace(tpl_ctx *c, const tpl_node *n, tv s, tv old, tv new_, int64_t count, tv *out) {
    const char *p = s.u.s.p, *o = old.u.s.p;
    size_t len = s.u.s.n, m = old.u.s.n;
    llm_strbuf sb = LLM_STRBUF_INIT;
    int64_t done = 0;
    if (m == 0) { /* insert between every character */
        size_t i = 0;
        while (count < 0 || done < count) {
            llm_strbuf_append(&sb, new_.u.s.p, new_.u.s.n);
            done++;
            if (i >= len) break;
            size_t st = i;
            tpl_utf8_next(p, len, &i);
            llm_strbuf_append(&sb, p + st, i - st);
            if (sb.len > c->max_bytes) break;
        }
        llm_strbuf_append(&sb, p + i, len - i);
    } else {
        size_t i = 0;
        while (count < 0 || done < count) {
            const char *h = memmem(p + i, len - i, o, m);
            if (!h) break;
            size_t at = (size_t)(h - p);
            llm_strbuf_append(&sb, p + i, at - i);
            llm_strbuf_append(&sb, new_.u.s.p, new_.u.s.n);
            i = at + m;
            done++;
            if (sb.len > c->max_bytes) break;
        }
        llm_strbuf_append(&sb, p + i, len - i);
    }
    if (sb.len > c->max_bytes) {
        llm_strbuf_free(&sb);
        c->arena.failed = 1;
        return tpl_oom(c, n);
    }
    if (tpl_charge(c, n, len + sb.len)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    int rc = tpl_sb_to_str(c, n, &sb, out);
    if (!rc) out->flags |= s.flags & old.flags & new_.flags & TVF_ASCII;
    return rc;
}

/* ---- str.format ----------------------------------------------------------------------------- */

/* Applies a format spec [[fill]align][sign][0][width][.precision][type] to a value. */
static int format_spec(tpl_ctx *c, const tpl_node *n, tv v, const char *spec, size_t sl, llm_strbuf *sb) {
    uint32_t fill = ' ';
    char align = 0, sign = '-', type = 0;
    int zero = 0;
    int64_t width = -1, prec = -1;
    size_t i = 0;
    if (sl >= 2) {
        size_t q = 0;
        uint32_t cp = tpl_utf8_next(spec, sl, &q);
        if (q < sl && strchr("<>^=", spec[q])) fill = cp, align = spec[q], i = q + 1;
    }
    if (!align && i < sl && strchr("<>^=", spec[i])) align = spec[i++];
    if (i < sl && strchr("+- ", spec[i])) sign = spec[i++];
    if (i < sl && spec[i] == '0') zero = 1, i++;
    while (i < sl && spec[i] >= '0' && spec[i] <= '9')
        width = (width < 0 ? 0 : width * 10) + (spec[i++] - '0');
    if (i < sl && spec[i] == '.') {
        i++;
        prec = 0;
        while (i < sl && spec[i] >= '0' && spec[i] <= '9') prec = prec * 10 + (spec[i++] - '0');
    }
    if (i < sl) type = spec[i++];
    if (i != sl || width > 100000 || prec > 1000)
        return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "format spec '%.*s' is not supported", (int)sl, spec);
    llm_strbuf body = LLM_STRBUF_INIT;
    int numeric = tv_is_num(v) && v.kind != TV_BOOL;
    if (v.kind == TV_BOOL && type && type != 's') numeric = 1;
    if (!type && v.kind == TV_STR) type = 's';
    if (type == 's' || (!type && !numeric)) {
        if (v.kind != TV_STR && type == 's')
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Unknown format code 's' for object of type '%s'",
                            tv_type_name(v));
        if (tv_write_str(c, n, v, &body)) {
            llm_strbuf_free(&body);
            return -1;
        }
        if (prec >= 0 && v.kind == TV_STR)
            body.len = tpl_utf8_offset(body.data ? body.data : "", body.len, (size_t)prec);
        if (!align) align = '<';
    } else {
        if (!numeric)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Unknown format code '%c' for object of type '%s'",
                            type, tv_type_name(v));
        double x = tv_num(v);
        int is_int = v.kind != TV_FLOAT;
        char buf[1200];
        if (!type) {
            if (is_int)
                snprintf(buf, sizeof buf, "%lld", (long long)(v.kind == TV_INT ? v.u.i : v.u.b));
            else if (prec < 0) {
                llm_strbuf t = LLM_STRBUF_INIT;
                tpl_format_float(&t, x);
                snprintf(buf, sizeof buf, "%s", llm_strbuf_str(&t));
                llm_strbuf_free(&t);
            } else
                snprintf(buf, sizeof buf, "%.*g", (int)(prec ? prec : 1), x);
        } else if (strchr("dxXob", type)) {
            if (!is_int)
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                "Unknown format code '%c' for object of type 'float'", type);
            long long iv = v.kind == TV_INT ? v.u.i : v.u.b;
            if (type == 'd')
                snprintf(buf, sizeof buf, "%lld", iv);
            else if (type == 'x')
                snprintf(buf, sizeof buf, "%s%llx", iv < 0 ? "-" : "",
                         iv < 0 ? -(unsigned long long)iv : (unsigned long long)iv);
            else if (type == 'X')
                snprintf(buf, sizeof buf, "%s%llX", iv < 0 ? "-" : "",
                         iv < 0 ? -(unsigned long long)iv : (unsigned long long)iv);
            else if (type == 'o')
                snprintf(buf, sizeof buf, "%s%llo", iv < 0 ? "-" : "",
                         iv < 0 ? -(unsigned long long)iv : (unsigned long long)iv);
            else
                return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "format code 'b' is not supported");
        } else if (strchr("fFeEgG%", type)) {
            int p = prec < 0 ? 6 : (int)prec;
            if (type == '%')
                snprintf(buf, sizeof buf, "%.*f%%", p, x * 100);
            else {
                char f[8] = {'%', '.', '*', type, 0};
                snprintf(buf, sizeof buf, f, p, x);
            }
        } else {
            return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "format code '%c' is not supported", type);
        }
        if (sign != '-' && buf[0] != '-') llm_strbuf_append_char(&body, sign);
        llm_strbuf_append_str(&body, buf);
        if (!align) align = zero ? '=' : '>';
        if (zero && fill == ' ') fill = '0';
    }
    int64_t len = (int64_t)tpl_utf8_count(body.data ? body.data : "", body.len);
    int64_t padn = width > len ? width - len : 0, left = 0;
    if (align == '>')
        left = padn;
    else if (align == '^')
        left = padn / 2;
    char u[4];
    size_t un = tpl_utf8_put(fill, u);
    const char *b = body.data ? body.data : "";
    if (align == '=' && body.len && (b[0] == '-' || b[0] == '+' || b[0] == ' ')) {
        llm_strbuf_append_char(sb, b[0]);
        for (int64_t k = 0; k < padn; k++) llm_strbuf_append(sb, u, un);
        llm_strbuf_append(sb, b + 1, body.len - 1);
    } else {
        if (align == '=') left = padn;
        for (int64_t k = 0; k < left; k++) llm_strbuf_append(sb, u, un);
        llm_strbuf_append(sb, b, body.len);
        for (int64_t k = 0; k < padn - left; k++) llm_strbuf_append(sb, u, un);
    }
    llm_strbuf_free(&body);
    return 0;
}

static int str_format(tpl_ctx *c, const tpl_node *n, tv fmt, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tv *out) {
    const char *p = fmt.u.s.p;
    size_t len = fmt.u.s.n, i = 0, auto_idx = 0;
    llm_strbuf sb = LLM_STRBUF_INIT;
    int rc = -1;
    while (i < len) {
        char ch = p[i];
        if (ch == '}') {
            if (i + 1 < len && p[i + 1] == '}') {
                llm_strbuf_append_char(&sb, '}');
                i += 2;
                continue;
            }
            tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "Single '}' encountered in format string");
            goto done;
        }
        if (ch != '{') {
            llm_strbuf_append_char(&sb, ch);
            i++;
            continue;
        }
        if (i + 1 < len && p[i + 1] == '{') {
            llm_strbuf_append_char(&sb, '{');
            i += 2;
            continue;
        }
        size_t st = ++i;
        while (i < len && p[i] != '}') i++;
        if (i >= len) {
            tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "expected '}' before end of string");
            goto done;
        }
        const char *field = p + st;
        size_t fl = i - st, spec_at = fl, conv_at = fl;
        i++;
        for (size_t k = 0; k < fl; k++)
            if (field[k] == ':') {
                spec_at = k;
                break;
            }
        for (size_t k = 0; k < spec_at; k++)
            if (field[k] == '!') {
                conv_at = k;
                break;
            }
        size_t name_len = conv_at < spec_at ? conv_at : spec_at, head = 0;
        while (head < name_len && field[head] != '.' && field[head] != '[') head++;
        tv v;
        if (head == 0) {
            if (auto_idx >= nargs) {
                tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                         "Replacement index %zu out of range for positional args tuple", auto_idx);
                goto done;
            }
            v = args[auto_idx++];
        } else if (field[0] >= '0' && field[0] <= '9') {
            size_t idx = 0;
            for (size_t k = 0; k < head; k++) idx = idx * 10 + (size_t)(field[k] - '0');
            if (idx >= nargs) {
                tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                         "Replacement index %zu out of range for positional args tuple", idx);
                goto done;
            }
            v = args[idx];
        } else {
            size_t k = 0;
            while (k < nkw && !(kw[k].name.n == head && memcmp(kw[k].name.p, field, head) == 0)) k++;
            if (k == nkw) {
                tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "KeyError: '%.*s'", (int)head, field);
                goto done;
            }
            v = kw[k].value;
        }
        /* .attr and [key] parts */
        size_t k = head;
        while (k < name_len) {
            if (field[k] == '.') {
                size_t a = ++k;
                while (k < name_len && field[k] != '.' && field[k] != '[') k++;
                if (tv_getattr(c, n, v, (tpl_str){field + a, k - a}, &v)) goto done;
            } else {
                size_t a = ++k;
                while (k < name_len && field[k] != ']') k++;
                tv key = tv_str(field + a, k - a);
                int digits = k > a;
                for (size_t d = a; d < k; d++) digits &= field[d] >= '0' && field[d] <= '9';
                if (digits) key = tv_int(strtoll(field + a, NULL, 10));
                k++;
                if (tv_getitem(c, n, v, key, &v)) goto done;
            }
        }
        if (conv_at < spec_at) {
            char conv = conv_at + 1 < spec_at ? field[conv_at + 1] : 0;
            llm_strbuf t = LLM_STRBUF_INIT;
            int r = conv == 'r' || conv == 'a' ? tv_write_repr(c, n, v, &t) : tv_write_str(c, n, v, &t);
            if (r || tpl_sb_to_str(c, n, &t, &v)) {
                llm_strbuf_free(&t);
                goto done;
            }
        }
        if (format_spec(c, n, v, field + (spec_at < fl ? spec_at + 1 : fl),
                        spec_at < fl ? fl - spec_at - 1 : 0, &sb) ||
            tpl_sb_over(c, n, &sb))
            goto done;
    }
    if (tpl_charge(c, n, sb.len)) goto done;
    return tpl_sb_to_str(c, n, &sb, out);
done:
    llm_strbuf_free(&sb);
    return rc;
}

/* ---- printf-style formatting ---------------------------------------------------------------- */

int tpl_percent_format(tpl_ctx *c, const tpl_node *n, tv fmt, tv argv, tv *out) {
    const char *p = fmt.u.s.p;
    size_t len = fmt.u.s.n, i = 0, next = 0;
    const tv *args = &argv;
    size_t nargs = 1;
    int mapping = argv.kind == TV_DICT;
    /* Python treats any non-tuple subscriptable argument as a mapping: no "not all arguments converted" */
    int lenient = mapping || argv.kind == TV_UNDEF || (argv.kind == TV_LIST && !(argv.flags & TVF_TUPLE));
    if (argv.kind == TV_LIST && (argv.flags & TVF_TUPLE))
        args = argv.u.list->items, nargs = argv.u.list->n;
    else if (mapping)
        nargs = 0;
    llm_strbuf sb = LLM_STRBUF_INIT;
    int used_mapping = 0;
    while (i < len) {
        if (p[i] != '%') {
            llm_strbuf_append_char(&sb, p[i++]);
            continue;
        }
        i++;
        if (i < len && p[i] == '%') {
            llm_strbuf_append_char(&sb, '%');
            i++;
            continue;
        }
        tv v;
        int have_v = 0;
        if (i < len && p[i] == '(') {
            size_t st = ++i;
            while (i < len && p[i] != ')') i++;
            if (i < len && argv.kind == TV_UNDEF) {
                llm_strbuf_free(&sb);
                return tpl_undefined_error(c, n, argv);
            }
            if (i >= len || !mapping) {
                llm_strbuf_free(&sb);
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                i >= len ? "incomplete format key" : "format requires a mapping");
            }
            tv *found = tpl_dict_find_str(argv.u.dict, p + st, i - st);
            i++;
            if (!found) {
                llm_strbuf_free(&sb);
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "KeyError: '%.*s'", (int)(i - st - 1), p + st);
            }
            v = *found;
            have_v = used_mapping = 1;
        }
        char flags[8] = {0};
        int nf = 0;
        while (i < len && strchr("-+ #0", p[i]) && nf < 6) flags[nf++] = p[i++];
        int width = -1, prec = -1;
        while (i < len && p[i] >= '0' && p[i] <= '9') width = (width < 0 ? 0 : width * 10) + (p[i++] - '0');
        if (i < len && p[i] == '.') {
            i++;
            prec = 0;
            while (i < len && p[i] >= '0' && p[i] <= '9') prec = prec * 10 + (p[i++] - '0');
        }
        while (i < len && strchr("hlL", p[i])) i++;
        if (i >= len) {
            llm_strbuf_free(&sb);
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "incomplete format");
        }
        char type = p[i++];
        if (width > 100000 || prec > 1000) {
            llm_strbuf_free(&sb);
            return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "format width or precision too large");
        }
        if (!have_v) {
            if (mapping && !used_mapping && nargs == 0) {
                v = argv; /* "%s" % {...} formats the dict itself */
                used_mapping = 1;
            } else if (next >= nargs) {
                llm_strbuf_free(&sb);
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "not enough arguments for format string");
            } else {
                v = args[next++];
            }
        }
        llm_strbuf piece = LLM_STRBUF_INIT;
        if (type == 's' || type == 'r' || type == 'a') {
            int r = type == 's' ? tv_write_str(c, n, v, &piece) : tv_write_repr(c, n, v, &piece);
            if (r) {
                llm_strbuf_free(&piece);
                llm_strbuf_free(&sb);
                return -1;
            }
            if (prec >= 0) piece.len = tpl_utf8_offset(llm_strbuf_str(&piece), piece.len, (size_t)prec);
        } else if (strchr("diuxXoeEfFgGc", type)) {
            if (!tv_is_num(v) && !(type == 'c' && v.kind == TV_STR)) {
                llm_strbuf_free(&sb);
                if (v.kind == TV_UNDEF) return tpl_undefined_error(c, n, v);
                return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%%%c format: a %s is required, not %s", type,
                                strchr("xXo", type) ? "integer" : "real number", tv_type_name(v));
            }
            char f[24], buf[1200];
            int k = 0;
            f[k++] = '%';
            for (int q = 0; q < nf; q++) f[k++] = flags[q];
            if (prec >= 0) k += snprintf(f + k, sizeof f - (size_t)k, ".%d", prec);
            if (strchr("diu", type)) {
                double x = tv_num(v);
                long long iv = v.kind == TV_FLOAT ? (long long)x : v.kind == TV_INT ? v.u.i : v.u.b;
                snprintf(f + k, sizeof f - (size_t)k, "lld");
                snprintf(buf, sizeof buf, f, iv);
            } else if (strchr("xXo", type)) {
                if (v.kind == TV_FLOAT) {
                    llm_strbuf_free(&sb);
                    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                    "%%%c format: an integer is required, not float", type);
                }
                long long iv = v.kind == TV_INT ? v.u.i : v.u.b;
                snprintf(f + k, sizeof f - (size_t)k, "ll%c", type);
                snprintf(buf, sizeof buf, f, iv);
            } else if (type == 'c') {
                uint32_t cp = v.kind == TV_STR ? 0 : (uint32_t)tv_num(v);
                size_t q = 0;
                if (v.kind == TV_STR) cp = tpl_utf8_next(v.u.s.p, v.u.s.n, &q);
                char u[5] = {0};
                tpl_utf8_put(cp, u);
                snprintf(buf, sizeof buf, "%s", u);
            } else {
                snprintf(f + k, sizeof f - (size_t)k, "%c", type);
                snprintf(buf, sizeof buf, f, tv_num(v));
            }
            llm_strbuf_append_str(&piece, buf);
        } else {
            llm_strbuf_free(&sb);
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unsupported format character '%c'", type);
        }
        int64_t plen = (int64_t)tpl_utf8_count(llm_strbuf_str(&piece), piece.len);
        int left = strchr(flags, '-') != NULL;
        if (!left)
            for (int64_t q = plen; q < width; q++)
                llm_strbuf_append_char(&sb, (strchr(flags, '0') && type != 's' && type != 'r') ? '0' : ' ');
        llm_strbuf_append(&sb, llm_strbuf_str(&piece), piece.len);
        if (left)
            for (int64_t q = plen; q < width; q++) llm_strbuf_append_char(&sb, ' ');
        llm_strbuf_free(&piece);
        if (tpl_sb_over(c, n, &sb)) {
            llm_strbuf_free(&sb);
            return -1;
        }
    }
    if (!lenient && next < nargs) {
        llm_strbuf_free(&sb);
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "not all arguments converted during string formatting");
    }
    if (tpl_charge(c, n, sb.len)) {
        llm_strbuf_free(&sb);
        return -1;
    }
    return tpl_sb_to_str(c, n, &sb, out);
}

/* ---- globals -------------------------------------------------------------------------------- */

/* dict(*args, **kwargs) semantics, shared by dict() and namespace() */
static int build_dict(tpl_ctx *c, const tpl_node *n, const char *fname, const tv *args, size_t nargs,
                      const tpl_kwarg *kw, size_t nkw, tpl_dict **out) {
    tpl_dict *d = tpl_dict_new(c);
    if (!d) return tpl_oom(c, n);
    if (nargs > 1)
        return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s expected at most 1 argument, got %zu", fname, nargs);
    if (nargs == 1) {
        tv src = args[0];
        if (src.kind == TV_DICT || src.kind == TV_NS) {
            for (size_t i = 0; i < src.u.dict->n; i++)
                if (tpl_dict_set(c, d, src.u.dict->keys[i], src.u.dict->vals[i])) return -1;
        } else {
            tpl_list *items;
            if (tv_items(c, n, src, &items)) return -1;
            for (size_t i = 0; i < items->n; i++) {
                tpl_list *pair;
                tv it = items->items[i];
                if (it.kind != TV_LIST && it.kind != TV_STR)
                    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                    "cannot convert dictionary update sequence element #%zu to a sequence",
                                    i);
                if (tv_items(c, n, it, &pair)) return -1;
                if (pair->n != 2)
                    return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                                    "dictionary update sequence element #%zu has length %zu; 2 is required",
                                    i, pair->n);
                if (tpl_dict_set(c, d, pair->items[0], pair->items[1])) return -1;
            }
        }
    }
    for (size_t k = 0; k < nkw; k++)
        if (tpl_dict_set(c, d, tv_str(kw[k].name.p, kw[k].name.n), kw[k].value)) return -1;
    *out = d;
    return 0;
}

static int do_strftime(tpl_ctx *c, const tpl_node *n, tv fmt, tv *out) {
    if (need_str(c, n, fmt, "strftime_now() argument")) return -1;
    time_t t = (time_t)(c->now_unix ? c->now_unix : (int64_t)time(NULL));
    struct tm tmv;
    if (!gmtime_r(&t, &tmv)) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "strftime_now: time out of range");
    char *f = tpl_strdup(&c->arena, fmt.u.s.p, fmt.u.s.n);
    if (!f) return tpl_oom(c, n);
    locale_t cl = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    size_t cap = 256 + fmt.u.s.n * 16;
    char *buf = tpl_alloc(&c->arena, cap);
    size_t k = 0;
    if (buf && cl) k = strftime_l(buf, cap, f, &tmv, cl);
    if (cl) freelocale(cl);
    if (!buf) return tpl_oom(c, n);
    *out = tv_str(buf, k);
    return 0;
}

static int loop_method(tpl_ctx *c, const tpl_node *n, tpl_func *f, const tv *args, size_t nargs, tv *out) {
    tpl_loop *l = f->self.u.loop;
    if (f->id == M_LOOP_CYCLE) {
        if (!nargs) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "no items for cycling given");
        *out = args[l->index0 % nargs];
        return 0;
    }
    /* changed(*values): true when the values differ from the previous call's */
    tpl_list *vals = tpl_list_new(c, nargs);
    if (!vals) return tpl_oom(c, n);
    for (size_t i = 0; i < nargs; i++) vals->items[vals->n++] = args[i];
    tv cur = tv_list_val(vals, 0);
    int changed = 1;
    if (l->has_changed) {
        int e = tv_eq(c, n, l->last_changed, cur);
        if (e < 0) return -1;
        changed = !e;
    }
    if (changed) l->last_changed = cur, l->has_changed = 1;
    *out = tv_bool(changed);
    return 0;
}

int tpl_call_builtin(tpl_ctx *c, const tpl_node *n, tpl_func *f, const tv *args, size_t nargs,
                     const tpl_kwarg *kw, size_t nkw, tv *out) {
    if (f->id < M_STR_UNSUPPORTED + 1) return str_method(c, n, f, args, nargs, kw, nkw, out);
    tv v[4];
    int got[4];
    switch (f->id) {
    case M_D_GET: {
        static const char *const P[] = {"key", "default"};
        if (tpl_bind_args(c, n, "dict.get", P, 2, args, nargs, kw, nkw, v, got)) return -1;
        if (!got[0]) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "get expected at least 1 argument, got 0");
        if (!tpl_key_hashable(v[0]))
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "unhashable type: '%s'", tv_type_name(v[0]));
        tv *found = tpl_dict_find(f->self.u.dict, v[0]);
        *out = found ? *found : (got[1] ? v[1] : tv_none());
        return 0;
    }
    case M_D_ITEMS:
    case M_D_KEYS:
    case M_D_VALUES:
    case M_D_COPY: {
        if (nargs || nkw)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "dict.%.*s() takes no arguments", (int)f->name.n,
                            f->name.p);
        const tpl_dict *d = f->self.u.dict;
        if (f->id == M_D_COPY) {
            tpl_dict *nd = NULL;
            if (build_dict(c, n, "dict", &f->self, 1, NULL, 0, &nd)) return -1;
            *out = tv_dict_val(nd);
            return 0;
        }
        tpl_list *l = tpl_list_new(c, d->n);
        if (!l) return tpl_oom(c, n);
        for (size_t i = 0; i < d->n; i++) {
            if (f->id == M_D_ITEMS) {
                tpl_list *pair = tpl_list_new(c, 2);
                if (!pair) return tpl_oom(c, n);
                pair->items[0] = d->keys[i], pair->items[1] = d->vals[i], pair->n = 2;
                l->items[l->n++] = tv_list_val(pair, TVF_TUPLE);
            } else {
                l->items[l->n++] = f->id == M_D_KEYS ? d->keys[i] : d->vals[i];
            }
        }
        *out = tv_list_val(l, f->id == M_D_ITEMS ? TVF_ITEMS : f->id == M_D_KEYS ? TVF_KEYS : TVF_VALUES);
        return 0;
    }
    case M_L_INDEX:
    case M_L_COUNT: {
        static const char *const P[] = {"value"};
        if (tpl_bind_args(c, n, f->id == M_L_INDEX ? "list.index" : "list.count", P, 1, args, nargs, kw, nkw,
                          v, got))
            return -1;
        if (!got[0]) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "expected 1 argument, got 0");
        const tpl_list *l = f->self.u.list;
        int64_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
            int e = tv_eq(c, n, l->items[i], v[0]);
            if (e < 0) return -1;
            if (e && f->id == M_L_INDEX) {
                *out = tv_int((int64_t)i);
                return 0;
            }
            k += e;
        }
        if (f->id == M_L_INDEX) {
            llm_strbuf sb = LLM_STRBUF_INIT;
            if (tv_write_repr(c, n, v[0], &sb)) {
                llm_strbuf_free(&sb);
                return -1;
            }
            tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s is not in list", llm_strbuf_str(&sb));
            llm_strbuf_free(&sb);
            return -1;
        }
        *out = tv_int(k);
        return 0;
    }
    case M_L_COPY: {
        tpl_list *l = tpl_list_new(c, f->self.u.list->n);
        if (!l) return tpl_oom(c, n);
        memcpy(l->items, f->self.u.list->items, f->self.u.list->n * sizeof(tv));
        l->n = f->self.u.list->n;
        *out = tv_list_val(l, 0);
        return 0;
    }
    case M_LOOP_CYCLE:
    case M_LOOP_CHANGED:
        return loop_method(c, n, f, args, nargs, out);
    case G_RANGE: {
        if (nkw) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "range() takes no keyword arguments");
        if (nargs < 1 || nargs > 3)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "range expected %s 3 arguments, got %zu",
                            nargs ? "at most" : "at least 1 argument, got 0;", nargs);
        int64_t a = 0, b = 0, s = 1;
        if (nargs == 1) {
            if (need_int(c, n, args[0], &b)) return -1;
        } else {
            if (need_int(c, n, args[0], &a) || need_int(c, n, args[1], &b)) return -1;
            if (nargs == 3 && need_int(c, n, args[2], &s)) return -1;
        }
        if (s == 0) return tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "range() arg 3 must not be zero");
        int64_t count = 0;
        if (s > 0 && a < b)
            count = (int64_t)(((__int128)b - a + s - 1) / s);
        else if (s < 0 && a > b)
            count = (int64_t)(((__int128)a - b - s - 1) / -s);
        if (count > TPL_MAX_RANGE)
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                            "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                            TPL_MAX_RANGE);
        tpl_list *l = tpl_list_new(c, (size_t)count);
        if (!l) return tpl_oom(c, n);
        for (int64_t i = 0; i < count; i++) l->items[l->n++] = tv_int(a + i * s);
        l->range_start = a, l->range_stop = b, l->range_step = s;
        *out = tv_list_val(l, TVF_RANGE);
        return tpl_charge(c, n, (size_t)count * 8);
    }
    case G_NAMESPACE:
    case G_DICT: {
        tpl_dict *d = NULL;
        if (build_dict(c, n, f->id == G_DICT ? "dict" : "namespace", args, nargs, kw, nkw, &d)) return -1;
        *out = tv_dict_val(d);
        if (f->id == G_NAMESPACE) out->kind = TV_NS;
        return 0;
    }
    case G_RAISE: {
        static const char *const P[] = {"message"};
        if (tpl_bind_args(c, n, "raise_exception", P, 1, args, nargs, kw, nkw, v, got)) return -1;
        llm_strbuf sb = LLM_STRBUF_INIT;
        if (got[0] && tv_write_str(c, n, v[0], &sb)) {
            llm_strbuf_free(&sb);
            return -1;
        }
        tpl_fail(c, n, LLM_ERR_BAD_FORMAT, "%s", llm_strbuf_str(&sb));
        llm_strbuf_free(&sb);
        return -1;
    }
    case G_STRFTIME: {
        static const char *const P[] = {"format"};
        if (tpl_bind_args(c, n, "strftime_now", P, 1, args, nargs, kw, nkw, v, got)) return -1;
        if (!got[0])
            return tpl_fail(c, n, LLM_ERR_BAD_FORMAT,
                            "strftime_now() missing 1 required positional argument: 'format'");
        return do_strftime(c, n, v[0], out);
    }
    case G_JOINER: {
        static const char *const P[] = {"sep"};
        if (tpl_bind_args(c, n, "joiner", P, 1, args, nargs, kw, nkw, v, got)) return -1;
        tpl_dict *state = tpl_dict_new(c);
        if (!state) return tpl_oom(c, n);
        if (tpl_dict_set(c, state, tv_cstr("sep"), got[0] ? v[0] : tv_cstr(", ")) ||
            tpl_dict_set(c, state, tv_cstr("used"), tv_bool(0)))
            return -1;
        tv self = tv_dict_val(state);
        *out = make_func(c, G_JOINER_CALL, self, (tpl_str){"joiner", 6});
        return 0;
    }
    case G_JOINER_CALL: {
        tpl_dict *state = f->self.u.dict;
        tv *used = tpl_dict_find_str(state, "used", 4), *sep = tpl_dict_find_str(state, "sep", 3);
        if (!used->u.b) {
            used->u.b = 1;
            *out = tv_str("", 0);
            return 0;
        }
        *out = *sep;
        return 0;
    }
    default:
        return tpl_fail(c, n, LLM_ERR_UNSUPPORTED, "'%.*s' is not supported", (int)f->name.n, f->name.p);
    }
}
