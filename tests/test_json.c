/*
 * test_json.c - tests for core/json.{h,c} and core/strbuf.{h,c}.
 *
 * Standalone: main() returns 0 when every check passes; each failed check
 * is reported on stderr with its source line. Checks do not stop at the
 * first failure, so one run shows everything that is broken.
 */
/* clock_gettime needs POSIX; the project builds with -D_GNU_SOURCE anyway. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "core/json.h"
#include "core/strbuf.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Timing assertions are meaningless under sanitizers (5-20x slower). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer) ||                       \
    __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

static int failures;
static int checks;

#if defined(__GNUC__) || defined(__clang__)
static void report_failure(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif

static void report_failure(int line, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "test_json.c:%d: FAILED: ", line);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    failures++;
}

/* CHECK(cond, printf-style message...) */
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        checks++;                                                                                            \
        if (!(cond)) {                                                                                       \
            report_failure(__LINE__, __VA_ARGS__);                                                           \
        }                                                                                                    \
    } while (0)

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic PRNG (xorshift64*) so fuzz failures are reproducible. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(size_t n) {
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

/* Parses a NUL-terminated document that must be valid. */
static llm_json_doc *parse_ok_at(int line, const char *text, size_t len) {
    llm_json_doc *doc = NULL;
    char err[256];
    int rc = llm_json_parse(text, len, &doc, err, sizeof err);
    checks++;
    if (rc != 0 || doc == NULL) {
        report_failure(line, "expected valid JSON, got error \"%s\" for input: %.80s", err, text);
        return NULL;
    }
    return doc;
}
#define PARSE_OK(text)        parse_ok_at(__LINE__, (text), strlen(text))
#define PARSE_OK_N(text, len) parse_ok_at(__LINE__, (text), (len))

/* The input must fail with an error at line:col whose message contains
 * `needle` (if non-NULL) and, if `forbidden` is non-NULL, does not contain it. */
static void expect_error_at(int src_line, const char *text, size_t len, int line, int col, const char *needle,
                            const char *forbidden) {
    llm_json_doc *doc = (llm_json_doc *)&doc; /* must be reset to NULL on failure */
    char err[256];
    int rc = llm_json_parse(text, len, &doc, err, sizeof err);
    checks++;
    if (rc == 0) {
        report_failure(src_line, "expected an error for input \"%.60s\", but it parsed", text);
        llm_json_doc_free(doc);
        return;
    }
    if (rc != -1 || doc != NULL) {
        report_failure(src_line, "failed parse must return -1 and set *out = NULL");
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "line %d, column %d (byte ", line, col);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        report_failure(src_line, "expected error at \"%s...\", got \"%s\"", prefix, err);
    }
    if (needle != NULL && strstr(err, needle) == NULL) {
        report_failure(src_line, "expected error mentioning \"%s\", got \"%s\"", needle, err);
    }
    if (forbidden != NULL && strstr(err, forbidden) != NULL) {
        report_failure(src_line, "error should not mention \"%s\": \"%s\"", forbidden, err);
    }
}
#define EXPECT_ERROR(text, line, col, needle)                                                                \
    expect_error_at(__LINE__, (text), sizeof(text) - 1, (line), (col), (needle), NULL)
#define EXPECT_ERROR_NOT(text, line, col, needle, forbidden)                                                 \
    expect_error_at(__LINE__, (text), sizeof(text) - 1, (line), (col), (needle), (forbidden))

static bool string_equals(const llm_json *v, const char *expected, size_t expected_len) {
    size_t len = 0;
    const char *s = llm_json_string(v, &len);
    return s != NULL && len == expected_len && memcmp(s, expected, len) == 0 && s[len] == '\0';
}

/* ------------------------------------------------------------------------ */
/* Serializer + structural equality, used by round-trip and fuzz tests      */
/* ------------------------------------------------------------------------ */

static void serialize(const llm_json *v, llm_strbuf *sb) {
    switch (llm_json_type_of(v)) {
    case LLM_JSON_NULL:
        llm_strbuf_append_str(sb, "null");
        break;
    case LLM_JSON_TRUE:
        llm_strbuf_append_str(sb, "true");
        break;
    case LLM_JSON_FALSE:
        llm_strbuf_append_str(sb, "false");
        break;
    case LLM_JSON_NUMBER: {
        int64_t i;
        double d = llm_json_number(v);
        if (llm_json_int64(v, &i) == 0 && !(i == 0 && signbit(d))) {
            llm_strbuf_appendf(sb, "%" PRId64, i);
        } else {
            llm_strbuf_appendf(sb, "%.17g", d);
        }
        break;
    }
    case LLM_JSON_STRING: {
        size_t len;
        const char *s = llm_json_string(v, &len);
        llm_json_escape(sb, s, len);
        break;
    }
    case LLM_JSON_ARRAY:
        llm_strbuf_append_char(sb, '[');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            if (i > 0) {
                llm_strbuf_append_char(sb, ',');
            }
            serialize(llm_json_value_at(v, i), sb);
        }
        llm_strbuf_append_char(sb, ']');
        break;
    case LLM_JSON_OBJECT:
        llm_strbuf_append_char(sb, '{');
        for (size_t i = 0; i < llm_json_count(v); i++) {
            if (i > 0) {
                llm_strbuf_append_char(sb, ',');
            }
            size_t key_len;
            const char *key = llm_json_key_at(v, i, &key_len);
            llm_json_escape(sb, key, key_len);
            llm_strbuf_append_char(sb, ':');
            serialize(llm_json_value_at(v, i), sb);
        }
        llm_strbuf_append_char(sb, '}');
        break;
    case LLM_JSON_INVALID:
        llm_strbuf_append_str(sb, "<invalid>");
        break;
    }
}

/* Is b (a re-parse of serialize(a)) the same tree as a? A non-integral
 * number whose double happens to be integral (1234567890123456.9 ->
 * 1234567890123457.0) legitimately gains an int64 view, so int64 is only
 * required to be preserved, not to be absent. */
static bool json_equal(const llm_json *a, const llm_json *b) {
    if (llm_json_type_of(a) != llm_json_type_of(b)) {
        return false;
    }
    switch (llm_json_type_of(a)) {
    case LLM_JSON_NUMBER: {
        double da = llm_json_number(a);
        double db = llm_json_number(b);
        int64_t ia = 0;
        int64_t ib = 0;
        int ra = llm_json_int64(a, &ia);
        int rb = llm_json_int64(b, &ib);
        return memcmp(&da, &db, sizeof da) == 0 && (ra != 0 || (rb == 0 && ia == ib));
    }
    case LLM_JSON_STRING: {
        size_t la;
        size_t lb;
        const char *sa = llm_json_string(a, &la);
        const char *sb = llm_json_string(b, &lb);
        return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LLM_JSON_ARRAY:
    case LLM_JSON_OBJECT: {
        size_t n = llm_json_count(a);
        if (n != llm_json_count(b)) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            size_t ka_len;
            size_t kb_len;
            const char *ka = llm_json_key_at(a, i, &ka_len);
            const char *kb = llm_json_key_at(b, i, &kb_len);
            if ((ka == NULL) != (kb == NULL) || ka_len != kb_len ||
                (ka != NULL && memcmp(ka, kb, ka_len) != 0)) {
                return false;
            }
            if (!json_equal(llm_json_value_at(a, i), llm_json_value_at(b, i))) {
                return false;
            }
        }
        return true;
    }
    default:
        return true;
    }
}

/* Visits every value and exercises every accessor (fuzz: no crash, sane answers). */
static size_t walk(const llm_json *v) {
    size_t visited = 1;
    (void)llm_json_offset(v);
    (void)llm_json_number(v);
    int64_t i64;
    (void)llm_json_int64(v, &i64);
    int b;
    (void)llm_json_bool(v, &b);
    size_t len;
    const char *s = llm_json_string(v, &len);
    if (s != NULL && s[len] != '\0') {
        report_failure(__LINE__, "string not NUL-terminated");
    }
    for (size_t i = 0; i < llm_json_count(v); i++) {
        size_t key_len;
        const char *key = llm_json_key_at(v, i, &key_len);
        if (key != NULL) {
            const llm_json *found = llm_json_get_n(v, key, key_len);
            if (found == NULL) {
                report_failure(__LINE__, "key at %zu not found by llm_json_get_n", i);
            }
        }
        visited += walk(llm_json_value_at(v, i));
    }
    return visited;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_scalars(void) {
    llm_json_doc *doc;

    doc = PARSE_OK(" null ");
    CHECK(llm_json_type_of(llm_json_root(doc)) == LLM_JSON_NULL, "null type");
    CHECK(llm_json_is_null(llm_json_root(doc)), "is_null");
    CHECK(llm_json_offset(llm_json_root(doc)) == 1, "null offset");
    llm_json_doc_free(doc);

    int flag = -1;
    doc = PARSE_OK("\t\r\ntrue\n");
    CHECK(llm_json_type_of(llm_json_root(doc)) == LLM_JSON_TRUE, "true type");
    CHECK(llm_json_bool(llm_json_root(doc), &flag) == 0 && flag == 1, "true value");
    llm_json_doc_free(doc);

    doc = PARSE_OK("false");
    CHECK(llm_json_type_of(llm_json_root(doc)) == LLM_JSON_FALSE, "false type");
    CHECK(llm_json_bool(llm_json_root(doc), &flag) == 0 && flag == 0, "false value");
    CHECK(llm_json_is_bool(llm_json_root(doc)), "is_bool");
    llm_json_doc_free(doc);

    doc = PARSE_OK("\"hi\"");
    CHECK(string_equals(llm_json_root(doc), "hi", 2), "top-level string");
    CHECK(llm_json_is_string(llm_json_root(doc)), "is_string");
    CHECK(llm_json_bool(llm_json_root(doc), &flag) == -1, "string is not a bool");
    llm_json_doc_free(doc);

    doc = PARSE_OK("-12.5e-1");
    CHECK(llm_json_number(llm_json_root(doc)) == -1.25, "top-level number");
    llm_json_doc_free(doc);

    doc = PARSE_OK("[]");
    CHECK(llm_json_is_array(llm_json_root(doc)) && llm_json_count(llm_json_root(doc)) == 0, "empty array");
    CHECK(llm_json_value_at(llm_json_root(doc), 0) == NULL, "empty array has no item 0");
    llm_json_doc_free(doc);

    doc = PARSE_OK("{ }");
    CHECK(llm_json_is_object(llm_json_root(doc)) && llm_json_count(llm_json_root(doc)) == 0, "empty object");
    CHECK(llm_json_get(llm_json_root(doc), "") == NULL, "empty object lookup");
    llm_json_doc_free(doc);

    /* Input need not be NUL-terminated: only text[0..len) is read. */
    const char partial[] = {'[', '1', ']', 'x', 'y'};
    doc = PARSE_OK_N(partial, 3);
    CHECK(llm_json_count(llm_json_root(doc)) == 1, "bounded input");
    llm_json_doc_free(doc);
    const char number_then_junk[] = {'4', '2', '7'};
    doc = PARSE_OK_N(number_then_junk, 2);
    int64_t i64 = 0;
    CHECK(llm_json_int64(llm_json_root(doc), &i64) == 0 && i64 == 42, "bounded number");
    llm_json_doc_free(doc);
}

static void test_nested_document(void) {
    const char *text = "{\n"
                       "  \"name\": \"llama\",\n"
                       "  \"layers\": 32,\n"
                       "  \"rope\": {\"theta\": 10000.0, \"scaling\": null},\n"
                       "  \"shape\": [4096, 11008, [1, [2, []]]],\n"
                       "  \"flags\": [true, false, null],\n"
                       "  \"empty\": {}\n"
                       "}";
    llm_json_doc *doc = PARSE_OK(text);
    if (doc == NULL) {
        return;
    }
    const llm_json *root = llm_json_root(doc);
    CHECK(llm_json_type_of(root) == LLM_JSON_OBJECT, "root is object");
    CHECK(llm_json_count(root) == 6, "root has 6 members");
    CHECK(string_equals(llm_json_get(root, "name"), "llama", 5), "name");
    int64_t layers = 0;
    CHECK(llm_json_int64(llm_json_get(root, "layers"), &layers) == 0 && layers == 32, "layers");
    const llm_json *rope = llm_json_get(root, "rope");
    CHECK(llm_json_number(llm_json_get(rope, "theta")) == 10000.0, "rope.theta");
    int64_t theta = 0;
    CHECK(llm_json_int64(llm_json_get(rope, "theta"), &theta) == 0 && theta == 10000,
          "10000.0 is an exact integer");
    CHECK(llm_json_type_of(llm_json_get(rope, "scaling")) == LLM_JSON_NULL, "explicit null");
    CHECK(llm_json_type_of(llm_json_get(rope, "missing")) == LLM_JSON_INVALID,
          "missing member is INVALID, not NULL");

    const llm_json *shape = llm_json_get(root, "shape");
    CHECK(llm_json_count(shape) == 3, "shape count");
    int64_t dim = 0;
    CHECK(llm_json_int64(llm_json_value_at(shape, 1), &dim) == 0 && dim == 11008, "shape[1]");
    const llm_json *inner = llm_json_value_at(llm_json_value_at(shape, 2), 1);
    CHECK(llm_json_count(inner) == 2 && llm_json_count(llm_json_value_at(inner, 1)) == 0,
          "deep nested arrays");
    CHECK(llm_json_value_at(shape, 3) == NULL, "out of range item");

    const llm_json *flags = llm_json_get(root, "flags");
    CHECK(llm_json_type_of(llm_json_value_at(flags, 0)) == LLM_JSON_TRUE, "flags[0]");
    CHECK(llm_json_type_of(llm_json_value_at(flags, 1)) == LLM_JSON_FALSE, "flags[1]");
    CHECK(llm_json_type_of(llm_json_value_at(flags, 2)) == LLM_JSON_NULL, "flags[2]");

    size_t key_len = 99;
    CHECK(strcmp(llm_json_key_at(root, 2, &key_len), "rope") == 0 && key_len == 4, "key_at");
    CHECK(llm_json_key_at(root, 6, &key_len) == NULL && key_len == 0, "key_at out of range");
    CHECK(llm_json_key_at(shape, 0, NULL) == NULL, "key_at on array");
    CHECK(llm_json_value_at(root, 5) == llm_json_get(root, "empty"), "value_at on object");

    /* Offsets point at the value's first character. */
    size_t offset = llm_json_offset(llm_json_get(root, "layers"));
    CHECK(offset < strlen(text) && text[offset] == '3', "offset of layers");
    int line = 0;
    int col = 0;
    CHECK(llm_json_line_col(text, strlen(text), offset, &line, &col) == 0 && line == 3 && col == 13,
          "line_col of layers: %d:%d", line, col);
    offset = llm_json_offset(llm_json_get(root, "shape"));
    CHECK(text[offset] == '[', "offset of an array is its '['");

    /* Accessors on the wrong type or NULL answer "nothing", never crash. */
    CHECK(llm_json_get(shape, "x") == NULL, "get on array");
    CHECK(llm_json_get(NULL, "x") == NULL, "get on NULL");
    CHECK(llm_json_get(root, NULL) == NULL, "get with NULL key");
    CHECK(llm_json_count(NULL) == 0 && llm_json_count(llm_json_get(root, "name")) == 0,
          "count of non-containers");
    CHECK(isnan(llm_json_number(llm_json_get(root, "name"))), "number of a string is NAN");
    CHECK(llm_json_int64(llm_json_get(root, "name"), &dim) == -1, "int64 of a string");
    CHECK(llm_json_string(llm_json_get(root, "layers"), &key_len) == NULL && key_len == 0,
          "string of a number");
    CHECK(llm_json_int64(llm_json_get(llm_json_get(root, "nope"), "deeper"), &dim) == -1,
          "chained lookup through a missing member");
    CHECK(llm_json_type_of(NULL) == LLM_JSON_INVALID, "type_of(NULL)");
    int flag = 7;
    size_t len = 7;
    CHECK(llm_json_value_at(NULL, 0) == NULL && llm_json_key_at(NULL, 0, &len) == NULL && len == 0 &&
              llm_json_string(NULL, NULL) == NULL && llm_json_bool(NULL, &flag) == -1 && flag == 7 &&
              llm_json_int64(NULL, &dim) == -1 && isnan(llm_json_number(NULL)) &&
              llm_json_get_n(NULL, "a", 1) == NULL && llm_json_get_n(root, NULL, 1) == NULL,
          "accessors on NULL");
    CHECK(!llm_json_is_null(NULL) && !llm_json_is_bool(NULL) && !llm_json_is_number(NULL) &&
              !llm_json_is_string(NULL) && !llm_json_is_array(NULL) && !llm_json_is_object(NULL),
          "predicates on NULL");
    CHECK(llm_json_offset(NULL) == 0, "offset(NULL)");
    CHECK(llm_json_root(NULL) == NULL, "root(NULL)");
    static const char *const names[] = {"null",   "false", "true",   "number",
                                        "string", "array", "object", "invalid"};
    for (int t = LLM_JSON_NULL; t <= LLM_JSON_INVALID; t++) {
        CHECK(strcmp(llm_json_type_name((llm_json_type)t), names[t]) == 0, "type name %d", t);
    }
    CHECK(strcmp(llm_json_type_name((llm_json_type)42), "invalid") == 0, "unknown type name");
    llm_json_doc_free(doc);
    llm_json_doc_free(NULL);
}

static void test_source_not_retained(void) {
    /* The document must not point into the caller's buffer. */
    const char *source = "{\"key\": \"value\", \"n\": \"a\\nb\"}";
    size_t len = strlen(source);
    char *copy = malloc(len);
    if (copy == NULL) {
        CHECK(0, "malloc");
        return;
    }
    memcpy(copy, source, len);
    llm_json_doc *doc = PARSE_OK_N(copy, len);
    memset(copy, 'X', len);
    free(copy);
    const llm_json *root = llm_json_root(doc);
    CHECK(string_equals(llm_json_get(root, "key"), "value", 5), "string survives source free");
    CHECK(string_equals(llm_json_get(root, "n"), "a\nb", 3), "escaped string survives");
    llm_json_doc_free(doc);
}

typedef struct {
    const char *text;
    double value;
    int has_int64; /* 1: llm_json_int64 must succeed with `integer` */
    int64_t integer;
} number_case;

static void test_numbers(void) {
    static const number_case cases[] = {
        {"0", 0.0, 1, 0},
        {"-0", -0.0, 1, 0},
        {"1", 1.0, 1, 1},
        {"-1", -1.0, 1, -1},
        {"123456789012345678", 123456789012345678.0, 1, 123456789012345678LL},
        {"9223372036854775807", 9223372036854775807.0, 1, INT64_MAX},
        {"-9223372036854775808", -9223372036854775808.0, 1, INT64_MIN},
        {"9223372036854775808", 9223372036854775808.0, 0, 0},
        {"-9223372036854775809", -9223372036854775809.0, 0, 0},
        {"9007199254740993", 9007199254740992.0, 1, 9007199254740993LL},
        {"1e3", 1000.0, 1, 1000},
        {"1E+3", 1000.0, 1, 1000},
        {"1.50e1", 15.0, 1, 15},
        {"2.0", 2.0, 1, 2},
        {"-0.0", -0.0, 1, 0},
        {"100e-2", 1.0, 1, 1},
        {"922337203685477580.7e1", 9223372036854775807.0, 1, INT64_MAX},
        {"9.223372036854775807e18", 9223372036854775807.0, 1, INT64_MAX},
        {"9.223372036854775808e18", 9223372036854775808.0, 0, 0},
        {"1e19", 1e19, 0, 0},
        {"0e99999999999999999999", 0.0, 1, 0},
        {"0.000e5", 0.0, 1, 0},
        {"1.5", 1.5, 0, 0},
        {"1e-1", 0.1, 0, 0},
        {"0.1", 0.1, 0, 0},
        {"-12.5e-1", -1.25, 0, 0},
        {"3.141592653589793", 3.141592653589793, 0, 0},
        {"1e-400", 0.0, 0, 0},
        {"-1e-400", -0.0, 0, 0},
        {"4.9e-324", 4.9e-324, 0, 0},
        {"2.2250738585072011e-308", 2.2250738585072011e-308, 0, 0},
        {"1.7976931348623157e308", 1.7976931348623157e308, 0, 0},
        {"123456789012345678901234567890", 1.2345678901234568e29, 0, 0},
        {"0.000000000000000000000000000001", 1e-30, 0, 0},
        {"1e22", 1e22, 0, 0},
        {"1e23", 1e23, 0, 0},
        {"8.98846567431158e307", 8.98846567431158e307, 0, 0},
        /* 2^53 + 1 written with a fraction: exact halfway, rounds to even. */
        {"9007199254740993.0", 9007199254740992.0, 1, 9007199254740993LL},
        {"9007199254740993.00000000000000000001", 9007199254740994.0, 0, 0},
        /* Absurd exponents saturate instead of overflowing. */
        {"1e-99999999999999999999999", 0.0, 0, 0},
        {"-1e-99999999999999999999999", -0.0, 0, 0},
        {"0.0e-99999999999999999999999", 0.0, 1, 0},
        {"0.00000000000000000000000000000000000000000000001e47", 1.0, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const number_case *c = &cases[i];
        llm_json_doc *doc = PARSE_OK(c->text);
        if (doc == NULL) {
            continue;
        }
        const llm_json *v = llm_json_root(doc);
        double got = llm_json_number(v);
        CHECK(llm_json_is_number(v), "%s is a number", c->text);
        CHECK(got == c->value && signbit(got) == signbit(c->value), "%s -> %.17g (want %.17g)", c->text, got,
              c->value);
        int64_t integer = 12345;
        int rc = llm_json_int64(v, &integer);
        if (c->has_int64) {
            CHECK(rc == 0 && integer == c->integer, "%s int64 -> rc %d, %" PRId64, c->text, rc, integer);
        } else {
            CHECK(rc == -1 && integer == 12345, "%s must not be an int64", c->text);
        }
        llm_json_doc_free(doc);
    }

    /* A very long number: rounding must match strtod on the full text. */
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "0.");
    for (int i = 0; i < 1500; i++) {
        llm_strbuf_append_char(&sb, (char)('0' + (i * 7 + 3) % 10));
    }
    llm_strbuf_append_str(&sb, "e-10");
    llm_json_doc *doc = PARSE_OK(sb.data);
    CHECK(llm_json_number(llm_json_root(doc)) == strtod(sb.data, NULL), "1500-digit number");
    llm_json_doc_free(doc);

    /* Exact halfway case decided only by a digit past the 800th. */
    llm_strbuf_clear(&sb);
    llm_strbuf_append_str(&sb, "9007199254740993");
    for (int i = 0; i < 1000; i++) {
        llm_strbuf_append_char(&sb, '0');
    }
    llm_strbuf_append_str(&sb, "1e-1001");
    doc = PARSE_OK(sb.data);
    CHECK(llm_json_number(llm_json_root(doc)) == 9007199254740994.0,
          "sticky digit beyond the buffer rounds up");
    llm_json_doc_free(doc);
    llm_strbuf_free(&sb);

    /* Random numbers, compared against strtod (the C library is the oracle). */
    char text[128];
    for (int i = 0; i < 20000; i++) {
        size_t pos = 0;
        if (rng_below(2)) {
            text[pos++] = '-';
        }
        size_t int_digits = 1 + rng_below(rng_below(4) == 0 ? 25 : 8);
        for (size_t k = 0; k < int_digits; k++) {
            text[pos++] = (char)('0' + (k == 0 && int_digits > 1 ? 1 + rng_below(9) : rng_below(10)));
        }
        if (rng_below(2)) {
            text[pos++] = '.';
            size_t frac_digits = 1 + rng_below(20);
            for (size_t k = 0; k < frac_digits; k++) {
                text[pos++] = (char)('0' + rng_below(10));
            }
        }
        if (rng_below(2)) {
            pos += (size_t)snprintf(text + pos, sizeof text - pos, "e%d", (int)rng_below(640) - 330);
        }
        text[pos] = '\0';
        double expected = strtod(text, NULL);
        llm_json_doc *number_doc = NULL;
        int rc = llm_json_parse(text, pos, &number_doc, NULL, 0);
        if (isinf(expected)) {
            CHECK(rc == -1, "%s overflows and must be rejected", text);
        } else {
            double got = llm_json_number(llm_json_root(number_doc));
            CHECK(rc == 0 && memcmp(&got, &expected, sizeof got) == 0, "%s -> %.17g, strtod says %.17g", text,
                  got, expected);
        }
        llm_json_doc_free(number_doc);
    }
}

static void test_strings(void) {
    llm_json_doc *doc =
        PARSE_OK("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", "
                 "\"\\uD83D\\uDE00\", \"a\\u0000b\", \"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\", "
                 "\"\", \"\\u0041\\u007f\\u0080\\u07FF\\u0800\\uFFFF\", "
                 "\"\\uDBFF\\uDFFF\\ud800\\udc00\", \"\x7F\"]");
    if (doc == NULL) {
        return;
    }
    const llm_json *root = llm_json_root(doc);
    CHECK(string_equals(llm_json_value_at(root, 0), "\"\\/\b\f\n\r\t", 8), "simple escapes");
    CHECK(string_equals(llm_json_value_at(root, 1), "\xC3\xA9\xE2\x82\xAC", 5), "\\u BMP escapes");
    CHECK(string_equals(llm_json_value_at(root, 2), "\xF0\x9F\x98\x80", 4), "surrogate pair");
    CHECK(string_equals(llm_json_value_at(root, 3), "a\0b", 3), "\\u0000 kept, length 3");
    CHECK(string_equals(llm_json_value_at(root, 4), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9),
          "raw UTF-8 passes through");
    CHECK(string_equals(llm_json_value_at(root, 5), "", 0), "empty string");
    CHECK(string_equals(llm_json_value_at(root, 6), "A\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF", 12),
          "UTF-8 encoding boundaries");
    CHECK(string_equals(llm_json_value_at(root, 7), "\xF4\x8F\xBF\xBF\xF0\x90\x80\x80", 8),
          "highest and lowest supplementary code points");
    CHECK(string_equals(llm_json_value_at(root, 8), "\x7F", 1), "DEL needs no escape");
    llm_json_doc_free(doc);

    /* Keys are decoded too, and may contain NUL. */
    doc = PARSE_OK("{\"a\\u0000b\": 1, \"a\": 2, \"caf\\u00e9\": 3}");
    const llm_json *root2 = llm_json_root(doc);
    int64_t v = 0;
    CHECK(llm_json_int64(llm_json_get_n(root2, "a\0b", 3), &v) == 0 && v == 1, "key with NUL");
    CHECK(llm_json_int64(llm_json_get(root2, "a"), &v) == 0 && v == 2, "key prefix of NUL key");
    CHECK(llm_json_int64(llm_json_get(root2, "caf\xC3\xA9"), &v) == 0 && v == 3, "escaped key");
    size_t key_len = 0;
    const char *key = llm_json_key_at(root2, 0, &key_len);
    CHECK(key != NULL && key_len == 3 && memcmp(key, "a\0b", 4) == 0, "key_at with NUL");
    llm_json_doc_free(doc);
}

static void test_duplicate_keys(void) {
    llm_json_doc *doc = PARSE_OK("{\"a\": 1, \"b\": 2, \"a\": 3}");
    const llm_json *root = llm_json_root(doc);
    int64_t v = 0;
    CHECK(llm_json_int64(llm_json_get(root, "a"), &v) == 0 && v == 3, "last duplicate wins");
    CHECK(llm_json_count(root) == 3, "duplicates are all kept for iteration");
    CHECK(llm_json_int64(llm_json_value_at(root, 0), &v) == 0 && v == 1, "first duplicate kept");
    llm_json_doc_free(doc);

    /* Same in an indexed (large) object, with duplicates scattered. */
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_char(&sb, '{');
    for (int i = 0; i < 100; i++) {
        if (i == 10 || i == 50 || i == 99) {
            llm_strbuf_appendf(&sb, "\"dup\": %d,", i);
        }
        llm_strbuf_appendf(&sb, "\"k%d\": %d%s", 99 - i, i, i < 99 ? "," : "");
    }
    llm_strbuf_append_char(&sb, '}');
    doc = PARSE_OK(sb.data);
    root = llm_json_root(doc);
    CHECK(llm_json_int64(llm_json_get(root, "dup"), &v) == 0 && v == 99,
          "last duplicate wins in an indexed object (got %" PRId64 ")", v);
    CHECK(llm_json_int64(llm_json_get(root, "k0"), &v) == 0 && v == 99, "k0");
    CHECK(llm_json_int64(llm_json_get(root, "k99"), &v) == 0 && v == 0, "k99");
    CHECK(llm_json_get(root, "k100") == NULL && llm_json_get(root, "") == NULL &&
              llm_json_get(root, "k") == NULL && llm_json_get(root, "zzz") == NULL,
          "absent keys in an indexed object");
    llm_json_doc_free(doc);
    llm_strbuf_free(&sb);
}

static void test_depth_limit(void) {
    enum { DEEP = 100000 };
    char *text = malloc(2 * DEEP + 1);
    if (text == NULL) {
        CHECK(0, "malloc");
        return;
    }
    /* Exactly the default limit parses. */
    size_t depth = LLM_JSON_DEFAULT_MAX_DEPTH;
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    llm_json_doc *doc = PARSE_OK_N(text, 2 * depth);
    const llm_json *v = llm_json_root(doc);
    size_t levels = 0;
    while (llm_json_is_array(v)) {
        levels++;
        v = llm_json_value_at(v, 0);
    }
    CHECK(levels == depth, "walked %zu levels", levels);
    llm_json_doc_free(doc);

    /* One more level fails, at the bracket that crossed the limit. */
    depth = LLM_JSON_DEFAULT_MAX_DEPTH + 1;
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    expect_error_at(__LINE__, text, 2 * depth, 1, 257, "nesting too deep", NULL);

    /* Hostile depth: fails fast and cleanly. */
    memset(text, '[', DEEP);
    expect_error_at(__LINE__, text, DEEP, 1, 257, "nesting too deep", NULL);
    for (size_t i = 0; i < DEEP; i++) {
        text[i] = (i % 2 == 0) ? '[' : '{';
    }
    expect_error_at(__LINE__, text, DEEP, 1, 3, "expected a string key, found '['", NULL);
    for (size_t i = 0; i < DEEP / 6; i++) {
        memcpy(text + 6 * i, "{\"a\":[", 6);
    }
    /* Level 257 is the '{' of the 129th "{"a":[" (byte 768). */
    expect_error_at(__LINE__, text, 6 * (DEEP / 6), 1, 769, "nesting too deep", NULL);

    /* The parser itself never recurses: a caller may allow huge depth. */
    memset(text, '[', DEEP);
    memset(text + DEEP, ']', DEEP);
    llm_json_parse_options opts = {.max_depth = DEEP};
    char err[256];
    doc = NULL;
    CHECK(llm_json_parse_ex(text, 2 * DEEP, &opts, &doc, err, sizeof err) == 0,
          "depth %d with max_depth option", DEEP);
    llm_json_doc_free(doc);

    /* A smaller custom limit. */
    opts.max_depth = 3;
    CHECK(llm_json_parse_ex("[[[1]]]", 7, &opts, &doc, err, sizeof err) == 0, "depth 3 ok");
    llm_json_doc_free(doc);
    CHECK(llm_json_parse_ex("[[{\"a\":[]}]]", 12, &opts, &doc, err, sizeof err) == -1 &&
              strncmp(err, "line 1, column 8 ", 17) == 0,
          "depth 4 with max 3: %s", err);
    free(text);
}

static void test_invalid_inputs(void) {
    /* Structure */
    EXPECT_ERROR("", 1, 1, "empty input");
    EXPECT_ERROR("  \n ", 2, 2, "only whitespace");
    EXPECT_ERROR("[1,]", 1, 4, "trailing commas");
    EXPECT_ERROR("[[],]", 1, 5, "trailing commas");
    EXPECT_ERROR("{\"a\":1,}", 1, 8, "trailing commas");
    EXPECT_ERROR_NOT("{\"a\":}", 1, 6, "expected a value, found '}'", "trailing");
    EXPECT_ERROR("{\"a\" 1}", 1, 6, "expected ':' after object key");
    EXPECT_ERROR("{\"a\":1 \"b\":2}", 1, 8, "expected ',' or '}' after object member");
    EXPECT_ERROR("[1 2]", 1, 4, "expected ',' or ']' after array element");
    EXPECT_ERROR("{,}", 1, 2, "expected a string key");
    EXPECT_ERROR("[,1]", 1, 2, "expected a value, found ','");
    EXPECT_ERROR("{a:1}", 1, 2, "keys must be quoted");
    EXPECT_ERROR("['a']", 1, 2, "double quotes");
    EXPECT_ERROR("{'a':1}", 1, 2, "double quotes");
    EXPECT_ERROR("// comment\n1", 1, 1, "comments are not allowed");
    EXPECT_ERROR("[1, /* c */ 2]", 1, 5, "comments are not allowed");
    EXPECT_ERROR("1 2", 1, 3, "after the end of the JSON value");
    EXPECT_ERROR("{}}", 1, 3, "after the end of the JSON value");
    EXPECT_ERROR("[1]\0", 1, 4, "byte 0x00");
    EXPECT_ERROR("\0", 1, 1, "byte 0x00");
    EXPECT_ERROR("1\x80", 1, 2, "byte 0x80");
    EXPECT_ERROR("\xEF\xBB\xBF{}", 1, 1, "byte order mark");
    EXPECT_ERROR("[\n  1,\n  2\n", 4, 1, "array opened at line 1, column 1");
    EXPECT_ERROR("{\"a\": {\"b\": 1", 1, 14, "object opened at line 1, column 7");
    EXPECT_ERROR("{", 1, 2, "expected a string key");
    EXPECT_ERROR("{\"a\"", 1, 5, "expected ':'");
    EXPECT_ERROR("{\"a\":", 1, 6, "expected a value");
    EXPECT_ERROR("[\"a\",\n \"b\" \"c\"]", 2, 6, "expected ',' or ']'");
    EXPECT_ERROR("[1,\r\n2,,3]", 2, 3, "expected a value, found ','");
    EXPECT_ERROR("\t\tx", 1, 3, "expected a value, found 'x'");
    EXPECT_ERROR("\f1", 1, 1, "byte 0x0C");
    EXPECT_ERROR("\xC2\xA0"
                 "1",
                 1, 1, "byte 0xC2");
    EXPECT_ERROR("{\n  \"a\": [1, 2,\n    3\n  ],\n  \"b\": {\"c\": true,}\n}", 5, 19, "trailing commas");
    /* Literals */
    EXPECT_ERROR("tru", 1, 4, "end of input in literal");
    EXPECT_ERROR("trUe", 1, 3, "expected 'true'");
    EXPECT_ERROR("[nulL]", 1, 5, "expected 'null'");
    EXPECT_ERROR("[fals", 1, 6, "expected 'false'");
    EXPECT_ERROR("True", 1, 1, "expected a value, found 'T'");
    EXPECT_ERROR("NaN", 1, 1, "NaN and Infinity");
    EXPECT_ERROR("[Infinity]", 1, 2, "NaN and Infinity");
    EXPECT_ERROR("undefined", 1, 1, "expected a value");
    /* Numbers */
    EXPECT_ERROR("-Infinity", 1, 2, "expected a digit after '-'");
    EXPECT_ERROR("01", 1, 1, "leading zeros");
    EXPECT_ERROR("[-012]", 1, 3, "leading zeros");
    EXPECT_ERROR("+1", 1, 1, "may not start with '+'");
    EXPECT_ERROR(".5", 1, 1, "digit before the decimal point");
    EXPECT_ERROR("1.", 1, 3, "end of input in number");
    EXPECT_ERROR("1.e5", 1, 3, "after the decimal point");
    EXPECT_ERROR("1e", 1, 3, "end of input in number");
    EXPECT_ERROR("1e+", 1, 4, "end of input in number");
    EXPECT_ERROR("[1ea]", 1, 4, "digit in the exponent");
    EXPECT_ERROR("-", 1, 2, "end of input in number");
    EXPECT_ERROR("[-]", 1, 3, "expected a digit after '-', found ']'");
    EXPECT_ERROR("[1.5.3]", 1, 5, "expected ',' or ']'");
    EXPECT_ERROR("0x10", 1, 2, "after the end");
    EXPECT_ERROR("[1e400]", 1, 2, "out of range");
    EXPECT_ERROR("-1e309", 1, 1, "out of range");
    EXPECT_ERROR("[0, 1e99999999999999999999999]", 1, 5, "out of range");
    /* Strings */
    EXPECT_ERROR("\"abc", 1, 1, "unterminated string");
    EXPECT_ERROR("[\"a\\\"]", 1, 2, "unterminated string");
    EXPECT_ERROR("{\"a\": \"x\n\"}", 1, 9, "line break in string");
    EXPECT_ERROR("\"a\tb\"", 1, 3, "control character 0x09");
    EXPECT_ERROR("\"\\x\"", 1, 2, "invalid escape");
    EXPECT_ERROR("\"ab\\'\"", 1, 4, "invalid escape");
    EXPECT_ERROR("\"\\u12G4\"", 1, 2, "4 hex digits");
    EXPECT_ERROR("\"\\u12\"", 1, 2, "4 hex digits");
    EXPECT_ERROR("\"\\uD800\"", 1, 2, "lone high surrogate");
    EXPECT_ERROR("\"x\\uDC00\"", 1, 3, "lone low surrogate");
    EXPECT_ERROR("\"\\uD800\\u0041\"", 1, 2, "lone high surrogate");
    EXPECT_ERROR("\"\\uD83D\\uDE0\"", 1, 2, "lone high surrogate");
    EXPECT_ERROR("\"\\uD800\\uD800\"", 1, 2, "lone high surrogate");
    EXPECT_ERROR("\"\\uD83D\\uDE00\\uDE00\"", 1, 14, "lone low surrogate");
    EXPECT_ERROR("\"\xC3\x28\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xC0\xAF\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xE0\x80\xAF\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xED\xA0\x80\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xF4\x90\x80\x80\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xF8\x88\x80\x80\x80\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\x80\"", 1, 2, "invalid UTF-8");
    EXPECT_ERROR("\"\xE2\x82\"", 1, 2, "invalid UTF-8");
    /* Columns count characters: the two-byte 'é' is one column. */
    EXPECT_ERROR("\"\xC3\xA9\xFF\"", 1, 3, "invalid UTF-8 in string (byte 0xFF)");
    EXPECT_ERROR("\"\\n\xC3\xA9\\q\"", 1, 5, "invalid escape");
    EXPECT_ERROR("{\"\xE2\x82\xAC\": x}", 1, 7, "expected a value, found 'x'");

    /* The byte offset is reported too. */
    char err[128];
    llm_json_doc *doc = NULL;
    CHECK(llm_json_parse("{\n\"a\" 1}", 8, &doc, err, sizeof err) == -1 &&
              strcmp(err, "line 2, column 5 (byte 6): expected ':' after object key, found '1'") == 0,
          "full message: %s", err);
    /* Truncated messages stay NUL-terminated; err may be NULL. */
    char tiny[8];
    CHECK(llm_json_parse("[", 1, &doc, tiny, sizeof tiny) == -1 && strlen(tiny) == 7, "truncated message");
    CHECK(llm_json_parse("[", 1, &doc, NULL, 0) == -1 && doc == NULL, "NULL err buffer");
    CHECK(llm_json_parse(NULL, 0, &doc, err, sizeof err) == -1 && strstr(err, "empty input"),
          "NULL text with len 0 is empty input");
    CHECK(llm_json_parse(NULL, 5, &doc, err, sizeof err) == -1 && strstr(err, "invalid argument"),
          "NULL text with len > 0");
    CHECK(llm_json_parse("1", 1, NULL, err, sizeof err) == -1 && strstr(err, "invalid argument"), "NULL out");
}

/* A document using every feature, with no valid proper prefix. */
static const char feature_document[] =
    "{\"model\": {\"name\": \"caf\\u00e9 \xE2\x82\xAC \\uD83D\\uDE00\", \"dims\": [4096, -1.5e-3, 0, "
    "9223372036854775807],\n \"ok\": true, \"no\": false, \"none\": null, \"nested\": [[], {}, "
    "[{\"a\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\"}]]}, \"tail\": 12345678901234567890123}";

static void test_truncation(void) {
    size_t len = sizeof feature_document - 1;
    llm_json_doc *doc = PARSE_OK_N(feature_document, len);
    llm_json_doc_free(doc);
    for (size_t prefix = 0; prefix < len; prefix++) {
        /* A right-sized heap copy lets ASan catch any read past len. */
        char *copy = malloc(prefix + 1);
        if (copy == NULL) {
            CHECK(0, "malloc");
            return;
        }
        memcpy(copy, feature_document, prefix);
        char err[256] = "";
        doc = (llm_json_doc *)copy;
        int rc = llm_json_parse(copy, prefix, &doc, err, sizeof err);
        CHECK(rc == -1 && doc == NULL, "prefix of length %zu must fail", prefix);
        CHECK(strncmp(err, "line ", 5) == 0, "prefix %zu: error message \"%s\"", prefix, err);
        if (rc == 0) {
            llm_json_doc_free(doc);
        }
        free(copy);
    }
}

static void test_fuzz(void) {
    static const char *const seeds[] = {
        feature_document,
        "[1, 2.5, -3e10, \"x\", [true, false, null], {\"k\": {\"k\": [\"\\u0041\"]}}]",
        "{\"a\":\"\xF0\x9F\x98\x80\\uD83D\\uDE00\",\"b\":[0.1,1E+2,-0]}",
        "\"just a string with \\\\ escapes \\n and \xC3\xA9\"",
    };
    static const char interesting[] = "{}[]\",:\\u0123456789.eE+-tfn \t\r\n\x80\xC3\xED\xF4\xFF";
    const int iterations = 30000;
    llm_strbuf out = LLM_STRBUF_INIT;
    char *buf = malloc(4096);
    if (buf == NULL) {
        CHECK(0, "malloc");
        return;
    }
    size_t accepted = 0;
    for (int iter = 0; iter < iterations; iter++) {
        const char *seed = seeds[rng_below(sizeof seeds / sizeof seeds[0])];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int mutations = 1 + (int)rng_below(4);
        for (int m = 0; m < mutations; m++) {
            size_t at = rng_below(len + 1);
            switch (rng_below(6)) {
            case 0: /* overwrite with a random byte */
                if (at < len) {
                    buf[at] = (char)rng_below(256);
                }
                break;
            case 1: /* overwrite with a syntax-relevant byte */
                if (at < len) {
                    buf[at] = interesting[rng_below(sizeof interesting - 1)];
                }
                break;
            case 2: /* insert */
                if (len < 4000) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = interesting[rng_below(sizeof interesting - 1)];
                    len++;
                }
                break;
            case 3: /* delete */
                if (at < len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 4: /* truncate */
                len = at;
                break;
            default: { /* duplicate a chunk */
                size_t chunk = rng_below(16);
                if (at + chunk <= len && len + chunk < 4000) {
                    memmove(buf + at + chunk, buf + at, len - at);
                    len += chunk;
                }
                break;
            }
            }
        }
        /* Exact-size heap copy so ASan sees any overread. */
        char *input = malloc(len + 1);
        if (input == NULL) {
            CHECK(0, "malloc");
            break;
        }
        memcpy(input, buf, len);
        llm_json_doc *doc = NULL;
        char err[256] = "";
        if (llm_json_parse(input, len, &doc, err, sizeof err) == 0) {
            accepted++;
            const llm_json *root = llm_json_root(doc);
            walk(root);
            /* Re-serialize and re-parse: must give the same tree. */
            llm_strbuf_clear(&out);
            serialize(root, &out);
            llm_json_doc *again = NULL;
            char err2[256] = "";
            int rc = llm_json_parse(out.data, out.len, &again, err2, sizeof err2);
            CHECK(rc == 0 && json_equal(root, llm_json_root(again)), "fuzz %d: round trip failed (%s) for %s",
                  iter, err2, out.data);
            llm_json_doc_free(again);
            llm_json_doc_free(doc);
        } else {
            size_t byte = (size_t)-1;
            const char *at = strstr(err, "(byte ");
            CHECK(strncmp(err, "line ", 5) == 0 && at != NULL && sscanf(at, "(byte %zu)", &byte) == 1 &&
                      byte <= len,
                  "fuzz %d: malformed error \"%s\"", iter, err);
        }
        free(input);
    }
    /* Some mutants must stay valid, or the round-trip part tested nothing. */
    CHECK(accepted > 100, "fuzz accepted only %zu inputs", accepted);
    free(buf);
    llm_strbuf_free(&out);
}

static void test_large_object(void) {
    enum { MEMBERS = 20000 };
    unsigned *order = malloc(MEMBERS * sizeof *order);
    if (order == NULL) {
        CHECK(0, "malloc");
        return;
    }
    for (unsigned i = 0; i < MEMBERS; i++) {
        order[i] = i;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            /* Shuffled keys force the index to be sorted; pass 0 covers
             * the already-sorted shortcut. */
            for (size_t i = MEMBERS - 1; i > 0; i--) {
                size_t j = rng_below(i + 1);
                unsigned tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
        }
        llm_strbuf sb = LLM_STRBUF_INIT;
        llm_strbuf_append_char(&sb, '{');
        for (unsigned i = 0; i < MEMBERS; i++) {
            /* %05u keeps pass 0 in sorted key order. */
            llm_strbuf_appendf(&sb, "%s\"model.layers.%05u.weight\": {\"offset\": %u}", i ? ", " : "",
                               order[i], order[i] * 7);
        }
        llm_strbuf_append_char(&sb, '}');
        CHECK(!sb.oom, "building the large object");
        llm_json_doc *doc = PARSE_OK_N(sb.data, sb.len);
        const llm_json *root = llm_json_root(doc);
        CHECK(llm_json_count(root) == MEMBERS, "20k members");
        double start = seconds_now();
        int wrong = 0;
        char key[64];
        for (int repeat = 0; repeat < 5; repeat++) {
            for (unsigned i = 0; i < MEMBERS; i++) {
                snprintf(key, sizeof key, "model.layers.%05u.weight", i);
                int64_t offset = -1;
                if (llm_json_int64(llm_json_get(llm_json_get(root, key), "offset"), &offset) != 0 ||
                    offset != (int64_t)i * 7) {
                    wrong++;
                }
            }
        }
        double elapsed = seconds_now() - start;
        CHECK(wrong == 0, "pass %d: %d lookups wrong", pass, wrong);
        CHECK(llm_json_get(root, "model.layers.20000.weight") == NULL &&
                  llm_json_get(root, "model.layers.00000.weigh") == NULL && llm_json_get(root, "a") == NULL &&
                  llm_json_get(root, "~") == NULL,
              "absent keys");
        printf("large object (%s keys): 100k lookups in %.1f ms\n", pass == 0 ? "sorted" : "shuffled",
               elapsed * 1e3);
        CHECK(UNDER_SANITIZER || elapsed < 0.5, "100k lookups took %.3f s", elapsed);
        llm_json_doc_free(doc);
        llm_strbuf_free(&sb);
    }
    free(order);
}

static void test_big_document_speed(void) {
    /* ~10 MB mixing every value type, like a big tokenizer.json. */
    llm_strbuf sb = LLM_STRBUF_INIT;
    llm_strbuf_append_str(&sb, "{\"entries\": [\n");
    size_t count = 0;
    while (sb.len < 10u * 1000 * 1000) {
        llm_strbuf_appendf(&sb,
                           "%s  {\"id\": %zu, \"token\": \"tok_%zu\\u0120caf\xC3\xA9\\n\", "
                           "\"score\": -%zu.%03zue-2, \"shape\": [4096, 11008], "
                           "\"special\": %s, \"extra\": null}",
                           count ? ",\n" : "", count, count, count % 1000, count % 997,
                           count % 3 ? "false" : "true");
        count++;
    }
    llm_strbuf_append_str(&sb, "\n]}");
    CHECK(!sb.oom, "building the big document");
    double start = seconds_now();
    llm_json_doc *doc = PARSE_OK_N(sb.data, sb.len);
    double elapsed = seconds_now() - start;
    const llm_json *entries = llm_json_get(llm_json_root(doc), "entries");
    CHECK(llm_json_count(entries) == count, "entry count");
    int64_t id = 0;
    CHECK(llm_json_int64(llm_json_get(llm_json_value_at(entries, count - 1), "id"), &id) == 0 &&
              id == (int64_t)(count - 1),
          "last id");
    printf("parsed %.1f MB (%zu entries) in %.1f ms (%.0f MB/s)\n", (double)sb.len / 1e6, count,
           elapsed * 1e3, (double)sb.len / 1e6 / elapsed);
    CHECK(UNDER_SANITIZER || elapsed < 1.0, "10 MB parse took %.3f s", elapsed);
    llm_json_doc_free(doc);
    llm_strbuf_free(&sb);
}

static void test_escape_round_trip(void) {
    llm_strbuf sb = LLM_STRBUF_INIT;

    /* Every byte value 0x01-0x7F, NUL, and valid multi-byte UTF-8. */
    char all[200];
    size_t n = 0;
    all[n++] = '\0';
    for (int c = 1; c < 0x80; c++) {
        all[n++] = (char)c;
    }
    const char multi[] = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBF";
    memcpy(all + n, multi, sizeof multi - 1);
    n += sizeof multi - 1;
    llm_json_escape(&sb, all, n);
    CHECK(!sb.oom, "escape oom");
    llm_json_doc *doc = PARSE_OK_N(sb.data, sb.len);
    CHECK(string_equals(llm_json_root(doc), all, n), "escape then parse gives the same bytes");
    llm_json_doc_free(doc);

    llm_strbuf_clear(&sb);
    llm_json_escape(&sb, "a\"b\\c\n\x01/", 8);
    CHECK(strcmp(sb.data, "\"a\\\"b\\\\c\\n\\u0001/\"") == 0, "escape output: %s", sb.data);

    llm_strbuf_clear(&sb);
    llm_json_escape(&sb, NULL, 0);
    CHECK(strcmp(sb.data, "\"\"") == 0, "escape of NULL/empty");
    llm_json_escape(NULL, "x", 1); /* no buffer: nothing happens */

    /* A failed buffer is left alone. */
    llm_strbuf_clear(&sb);
    llm_strbuf_append_str(&sb, "kept");
    llm_strbuf_reserve(&sb, SIZE_MAX);
    llm_json_escape(&sb, "x", 1);
    CHECK(sb.oom && sb.len == 4 && strcmp(sb.data, "kept") == 0, "escape into a failed buffer");

    /* Invalid UTF-8 becomes U+FFFD so the output is still valid JSON. */
    llm_strbuf_clear(&sb);
    llm_json_escape(&sb, "x\xFFy\xC3", 4);
    CHECK(strcmp(sb.data, "\"x\\ufffdy\\ufffd\"") == 0, "invalid UTF-8 escaped: %s", sb.data);
    doc = PARSE_OK_N(sb.data, sb.len);
    CHECK(string_equals(llm_json_root(doc), "x\xEF\xBF\xBDy\xEF\xBF\xBD", 8), "U+FFFD decoded");
    llm_json_doc_free(doc);

    /* Random byte strings: output always parses; valid UTF-8 round-trips. */
    char random_bytes[64];
    for (int iter = 0; iter < 5000; iter++) {
        size_t len = rng_below(sizeof random_bytes);
        for (size_t i = 0; i < len; i++) {
            random_bytes[i] = (char)rng_below(iter % 2 ? 256 : 128);
        }
        llm_strbuf_clear(&sb);
        llm_json_escape(&sb, random_bytes, len);
        llm_json_doc *d = NULL;
        char err[256];
        int rc = llm_json_parse(sb.data, sb.len, &d, err, sizeof err);
        CHECK(rc == 0, "escaped random string does not parse: %s", err);
        if (rc == 0 && iter % 2 == 0) {
            CHECK(string_equals(llm_json_root(d), random_bytes, len), "ASCII round trip %d", iter);
        }
        llm_json_doc_free(d);
    }
    llm_strbuf_free(&sb);
}

static void test_line_col(void) {
    const char *text = "ab\n\xC3\xA9x\r\n\ny";
    size_t len = strlen(text);
    int line = 0;
    int col = 0;
    CHECK(llm_json_line_col(text, len, 0, &line, &col) == 0 && line == 1 && col == 1, "start");
    CHECK(llm_json_line_col(text, len, 2, &line, &col) == 0 && line == 1 && col == 3, "at LF");
    CHECK(llm_json_line_col(text, len, 5, &line, &col) == 0 && line == 2 && col == 2,
          "after a two-byte character: %d:%d", line, col);
    CHECK(llm_json_line_col(text, len, len, &line, &col) == 0 && line == 4 && col == 2, "end of text: %d:%d",
          line, col);
    line = col = -7;
    CHECK(llm_json_line_col(text, len, len + 1, &line, &col) == -1 && line == -7 && col == -7,
          "offset past the end");
    CHECK(llm_json_line_col(NULL, 3, 0, &line, &col) == -1, "NULL text");
    CHECK(llm_json_line_col(NULL, 0, 0, NULL, NULL) == 0, "NULL empty text, NULL outputs");
}

static void test_strbuf(void) {
    llm_strbuf sb = LLM_STRBUF_INIT;
    CHECK(strcmp(llm_strbuf_str(&sb), "") == 0, "empty buffer reads as \"\"");
    CHECK(llm_strbuf_append_str(&sb, "abc") == 0 && sb.len == 3 && strcmp(sb.data, "abc") == 0, "append_str");
    CHECK(llm_strbuf_appendf(&sb, "-%d-%s", 42, "x") == 0 && strcmp(sb.data, "abc-42-x") == 0, "appendf");
    /* Force several growths, including appendf's second formatting pass. */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(llm_strbuf_appendf(&sb, "%s|%s", big, big) == 0 && sb.len == 8 + 2 * 999 + 1, "appendf growth");
    CHECK(sb.data[sb.len] == '\0' && sb.data[8] == 'z' && sb.data[8 + 999] == '|', "content");
    for (int i = 0; i < 10000; i++) {
        llm_strbuf_append_char(&sb, (char)('a' + i % 26));
    }
    CHECK(sb.len == 8 + 1999 + 10000 && sb.data[sb.len - 1] == 'a' + 9999 % 26, "append_char");

    /* Failure is sticky and leaves the content intact. */
    size_t len_before = sb.len;
    CHECK(llm_strbuf_reserve(&sb, SIZE_MAX) == -1 && sb.oom, "impossible reserve sets oom");
    CHECK(llm_strbuf_append_str(&sb, "more") == -1 && sb.len == len_before, "no append after oom");
    CHECK(llm_strbuf_appendf(&sb, "%d", 1) == -1 && sb.len == len_before, "no appendf after oom");
    size_t detached_len = 123;
    CHECK(llm_strbuf_detach(&sb, &detached_len) == NULL && detached_len == 0 && sb.data == NULL,
          "detach of a failed buffer returns NULL and releases it");

    llm_strbuf_clear(&sb);
    CHECK(llm_strbuf_append(&sb, "hi", 2) == 0, "usable after detach");
    char *owned = llm_strbuf_detach(&sb, &detached_len);
    CHECK(owned != NULL && strcmp(owned, "hi") == 0 && detached_len == 2 && sb.data == NULL && sb.len == 0,
          "detach");
    free(owned);
    owned = llm_strbuf_detach(&sb, NULL);
    CHECK(owned != NULL && owned[0] == '\0', "detach of an empty buffer gives \"\"");
    free(owned);

    llm_strbuf_append_str(&sb, "abc");
    llm_strbuf_clear(&sb);
    CHECK(sb.len == 0 && sb.data != NULL && sb.data[0] == '\0' && !sb.oom, "clear");
    llm_strbuf_free(&sb);
    llm_strbuf_free(&sb); /* double free of the struct is harmless */
    llm_strbuf_free(NULL);
    CHECK(sb.data == NULL && sb.len == 0 && sb.cap == 0, "free resets");
}

int main(void) {
    test_scalars();
    test_nested_document();
    test_source_not_retained();
    test_numbers();
    test_strings();
    test_duplicate_keys();
    test_depth_limit();
    test_invalid_inputs();
    test_truncation();
    test_fuzz();
    test_large_object();
    test_big_document_speed();
    test_escape_round_trip();
    test_line_col();
    test_strbuf();
    if (failures > 0) {
        fprintf(stderr, "test_json: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_json: all %d checks passed\n", checks);
    return 0;
}
