/*
 * json.c - strict RFC 8259 JSON parser; see json.h for the contract.
 *
 * Design in brief:
 *   - One pass over the text with an explicit stack instead of recursion,
 *     so nesting depth costs heap memory, never C stack, and the depth
 *     limit is a policy choice rather than a crash guard.
 *   - While a container is open, its children are parsed into shared
 *     scratch stacks (one of values, one of keys). When the container
 *     closes, its children are copied into right-sized arrays in the
 *     document's arena. Children of a container are therefore contiguous,
 *     which makes llm_json_value_at() O(1).
 *   - A node is 24 bytes (offset and type packed into one word), because
 *     memory traffic, not CPU, bounds the speed of big documents: a 10 MB
 *     array of small numbers has 5 million values.
 *   - Strings are decoded into the arena: a fast scan copies spans without
 *     escapes verbatim; only strings with a backslash take the decoder.
 *   - Objects with more than OBJECT_INDEX_MIN_MEMBERS members get a sorted
 *     index (see build_object_index for why not a hash table).
 */
#include "core/json.h"
#include "core/utf8.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define JSON_PRINTF_LIKE(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define JSON_PRINTF_LIKE(fmt_index, first_arg)
#endif

/* Objects up to this size are searched linearly: for a handful of members a
 * scan beats any index and costs no memory. */
#define OBJECT_INDEX_MIN_MEMBERS 16

/* ------------------------------------------------------------------------ */
/* Document representation                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *data; /* decoded, NUL-terminated, may contain NULs */
    size_t len;
} json_key;

typedef struct object_body object_body;

/* header = offset | type << TYPE_SHIFT | flags << FLAGS_SHIFT. Offsets
 * therefore need to fit in 56 bits; llm_json_parse() rejects larger inputs. */
#define OFFSET_BITS 56
#define OFFSET_MASK ((UINT64_C(1) << OFFSET_BITS) - 1)
#define TYPE_SHIFT  56
#define FLAGS_SHIFT 60

enum {
    /* The number is an exact int64 stored in u.integer; its double is
     * (double)u.integer, which is the correctly rounded value of the same
     * exact integer, i.e. what strtod would give. Storing one or the other
     * keeps numbers at 8 bytes. */
    NUMBER_IS_INT64 = 1,
    /* With NUMBER_IS_INT64 and u.integer == 0: the text was "-0". */
    NUMBER_NEGATIVE_ZERO = 2
};

struct llm_json {
    uint64_t header; /* source offset, type and flags, see above */
    union {
        double number;   /* numbers without NUMBER_IS_INT64 */
        int64_t integer; /* numbers with NUMBER_IS_INT64 */
        struct {
            const char *data; /* NUL-terminated, may contain NULs */
            size_t len;
        } string;
        struct {
            llm_json *items;
            size_t count;
        } array;
        struct {
            object_body *body; /* NULL when count == 0 */
            size_t count;
        } object;
    } u;
};

/* Keep nodes small: see the file comment. */
_Static_assert(sizeof(llm_json) <= 24, "llm_json grew beyond 24 bytes");

/* Members of an object, in document order: keys[i] names values[i]. */
struct object_body {
    const json_key *keys;
    /* Member indices sorted by (key, position); NULL for small objects. */
    const uint32_t *sorted_index;
    llm_json values[];
};

static llm_json_type node_type(const llm_json *v) {
    return (llm_json_type)((v->header >> TYPE_SHIFT) & 0xF);
}

static unsigned node_flags(const llm_json *v) {
    return (unsigned)(v->header >> FLAGS_SHIFT);
}

static void node_set_type(llm_json *v, llm_json_type type, unsigned flags) {
    v->header = (v->header & OFFSET_MASK) | ((uint64_t)type << TYPE_SHIFT) | ((uint64_t)flags << FLAGS_SHIFT);
}

/* Arena: a list of blocks that only grows and is freed all at once. Parsed
 * documents are immutable, so per-node frees would be pure overhead. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t cap;
    max_align_t data[]; /* max_align_t so every allocation can be aligned */
} arena_block;

typedef struct {
    arena_block *head;      /* block currently being filled */
    size_t next_block_size; /* grows geometrically so big documents need few mallocs */
} arena;

/* Small first block: most documents are small configs. */
#define ARENA_FIRST_BLOCK_SIZE 4096
#define ARENA_MAX_BLOCK_SIZE   (1u << 20)

struct llm_json_doc {
    arena arena;
    llm_json root;
};

static void arena_free(arena *a) {
    arena_block *block = a->head;
    while (block != NULL) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    a->head = NULL;
}

/* align must be a power of two no larger than alignof(max_align_t). */
static void *arena_alloc(arena *a, size_t size, size_t align) {
    arena_block *head = a->head;
    if (head != NULL) {
        size_t start = (head->used + (align - 1)) & ~(align - 1);
        if (start <= head->cap && size <= head->cap - start) {
            head->used = start + size;
            return (unsigned char *)head->data + start;
        }
    }
    if (a->next_block_size == 0) {
        a->next_block_size = ARENA_FIRST_BLOCK_SIZE;
    }
    if (size > SIZE_MAX - sizeof(arena_block)) {
        return NULL;
    }
    /* A request bigger than half a block (a huge array, a long string) gets
     * a block of its own, linked behind the head so that the head's
     * remaining space is not abandoned. */
    bool dedicated = size > a->next_block_size / 2;
    size_t cap = dedicated ? size : a->next_block_size;
    arena_block *block = malloc(sizeof(arena_block) + cap);
    if (block == NULL) {
        return NULL;
    }
    block->used = size;
    block->cap = cap;
    if (dedicated && head != NULL) {
        block->next = head->next;
        head->next = block;
    } else {
        block->next = head;
        a->head = block;
        if (!dedicated && a->next_block_size < ARENA_MAX_BLOCK_SIZE) {
            a->next_block_size *= 2;
        }
    }
    return block->data;
}

/* Gives back the unused tail of the most recent allocation (used for
 * strings, whose decoded size is only known after decoding into a buffer
 * sized for the worst case). Does nothing if ptr is not the latest
 * allocation in the head block. */
static void arena_shrink_last(arena *a, void *ptr, size_t old_size, size_t new_size) {
    arena_block *head = a->head;
    if (head == NULL || new_size > old_size) {
        return;
    }
    /* Integer comparison: relational operators on pointers into different
     * blocks would be undefined behaviour. */
    uintptr_t block_start = (uintptr_t)head->data;
    uintptr_t alloc_start = (uintptr_t)ptr;
    if (alloc_start >= block_start && alloc_start + old_size == block_start + head->used) {
        head->used -= old_size - new_size;
    }
}

/* ------------------------------------------------------------------------ */
/* Character classes                                                        */
/* ------------------------------------------------------------------------ */

#define ROW_OF_0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define ROW_OF_1 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1

/* Bytes that end a fast "copy as is" run inside a string: the closing quote,
 * a backslash, control characters (must be escaped) and non-ASCII bytes
 * (must be validated as UTF-8). Shared by the parser and the escaper. */
static const unsigned char string_byte_needs_care[256] = {
    ROW_OF_1, ROW_OF_1,                                                         /* 0x00-0x1F control */
    0,        0,        1,        0,        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20-0x2F: '"' */
    ROW_OF_0, ROW_OF_0,                                                         /* 0x30-0x4F */
    0,        0,        0,        0,        0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50-0x5F: '\\' */
    ROW_OF_0, ROW_OF_0,                                                         /* 0x60-0x7F */
    ROW_OF_1, ROW_OF_1, ROW_OF_1, ROW_OF_1,                                     /* 0x80-0xFF non-ASCII */
    ROW_OF_1, ROW_OF_1, ROW_OF_1, ROW_OF_1,
};

static bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static bool is_json_whitespace(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Length (1-4) of the well-formed UTF-8 sequence at s, or 0 if it is not
 * well formed: stray continuation bytes, overlong forms, UTF-16 surrogates
 * (U+D800-DFFF), code points above U+10FFFF and truncated sequences are
 * all rejected, per RFC 3629. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail) {
    unsigned char lead = s[0];
    if (lead < 0x80) {
        return 1;
    }
    if (lead < 0xC2) { /* continuation byte, or overlong 2-byte lead C0/C1 */
        return 0;
    }
    if (lead < 0xE0) {
        return (avail >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (lead < 0xF0) {
        if (avail < 3) {
            return 0;
        }
        unsigned char lo = lead == 0xE0 ? 0xA0 : 0x80; /* E0 80-9F would be overlong */
        unsigned char hi = lead == 0xED ? 0x9F : 0xBF; /* ED A0-BF would be surrogates */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) {
            return 0;
        }
        return 3;
    }
    if (lead < 0xF5) {
        if (avail < 4) {
            return 0;
        }
        unsigned char lo = lead == 0xF0 ? 0x90 : 0x80; /* F0 80-8F would be overlong */
        unsigned char hi = lead == 0xF4 ? 0x8F : 0xBF; /* F4 90+ would exceed U+10FFFF */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) {
            return 0;
        }
        return 4;
    }
    return 0;
}

static int hex_digit_value(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Value of the 4 hex digits s[pos..pos+4), or -1 if they are not all hex
 * digits or would extend past limit (the string's closing quote). */
static long parse_hex4(const unsigned char *s, size_t pos, size_t limit) {
    if (pos > limit || limit - pos < 4) {
        return -1;
    }
    long value = 0;
    for (size_t k = 0; k < 4; k++) {
        int digit = hex_digit_value(s[pos + k]);
        if (digit < 0) {
            return -1;
        }
        value = value * 16 + digit;
    }
    return value;
}

/* ------------------------------------------------------------------------ */
/* Parser state and errors                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    llm_json_type type; /* LLM_JSON_ARRAY or LLM_JSON_OBJECT */
    size_t slot;        /* value slot that receives the finished container */
    size_t first_child; /* first value slot holding one of its children */
    size_t first_key;   /* objects: first key slot of its members */
} open_container;

typedef struct {
    const unsigned char *text;
    size_t len;
    size_t pos;
    size_t max_depth;
    arena *arena;

    /* Scratch stacks of the values and keys of open containers. */
    llm_json *values;
    size_t value_count;
    size_t value_cap;
    json_key *keys;
    size_t key_count;
    size_t key_cap;

    open_container *stack;
    size_t depth;
    size_t stack_cap;

    size_t error_pos;
    char error_message[192];
} parser;

static int fail(parser *p, size_t pos, const char *fmt, ...) JSON_PRINTF_LIKE(3, 4);

static int fail(parser *p, size_t pos, const char *fmt, ...) {
    p->error_pos = pos;
    va_list args;
    va_start(args, fmt);
    vsnprintf(p->error_message, sizeof p->error_message, fmt, args);
    va_end(args);
    return -1;
}

static int fail_out_of_memory(parser *p) {
    return fail(p, p->pos, "out of memory");
}

/* Quotes a byte for a message: printable ASCII as 'c', the rest as hex. */
static const char *describe_byte(unsigned char c, char buf[16]) {
    if (c > 0x20 && c < 0x7F) {
        snprintf(buf, 16, "'%c'", c);
    } else {
        snprintf(buf, 16, "byte 0x%02X", c);
    }
    return buf;
}

static void skip_whitespace(parser *p) {
    const unsigned char *text = p->text;
    size_t pos = p->pos;
    while (pos < p->len && is_json_whitespace(text[pos])) {
        pos++;
    }
    p->pos = pos;
}

/* Grows a scratch stack (*items, holding *cap elements of elem_size) so
 * that it has room for one more element. */
static int grow_stack(parser *p, void **items, size_t *cap, size_t elem_size) {
    size_t new_cap = *cap ? *cap * 2 : 64;
    if (new_cap > SIZE_MAX / elem_size) {
        return fail_out_of_memory(p);
    }
    void *grown = realloc(*items, new_cap * elem_size);
    if (grown == NULL) {
        return fail_out_of_memory(p);
    }
    *items = grown;
    *cap = new_cap;
    return 0;
}

/* Reserves the value slot for the next value; its header starts as the
 * current position (type null) until the value is parsed. */
static int push_value(parser *p, size_t *slot_out) {
    if (p->value_count == p->value_cap) {
        void *items = p->values;
        if (grow_stack(p, &items, &p->value_cap, sizeof(llm_json)) != 0) {
            return -1;
        }
        p->values = items;
    }
    llm_json *slot = &p->values[p->value_count];
    memset(slot, 0, sizeof *slot);
    *slot_out = p->value_count++;
    return 0;
}

static int push_key(parser *p, const char *data, size_t len) {
    if (p->key_count == p->key_cap) {
        void *items = p->keys;
        if (grow_stack(p, &items, &p->key_cap, sizeof(json_key)) != 0) {
            return -1;
        }
        p->keys = items;
    }
    p->keys[p->key_count].data = data;
    p->keys[p->key_count].len = len;
    p->key_count++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Object index                                                             */
/* ------------------------------------------------------------------------ */

static int compare_keys(const char *a, size_t a_len, const char *b, size_t b_len) {
    size_t common = a_len < b_len ? a_len : b_len;
    if (common > 0) {
        int order = memcmp(a, b, common);
        if (order != 0) {
            return order;
        }
    }
    return (a_len > b_len) - (a_len < b_len);
}

static int compare_members(const json_key *keys, uint32_t a, uint32_t b) {
    return compare_keys(keys[a].data, keys[a].len, keys[b].data, keys[b].len);
}

/*
 * Builds the lookup index of a large object: member indices sorted by key,
 * ties (duplicate keys) kept in document order so the last duplicate is
 * the last of its run.
 *
 * Why sorted rather than hashed: keys come from untrusted files, and an
 * unkeyed hash lets a crafted document put every key in one bucket chain,
 * turning parsing quadratic (a 10 MB header could take minutes). Keying the
 * hash needs a randomness source, which a pure parser should not depend on.
 * A stable merge sort is O(n log n) whatever the input, and O(log n)
 * lookups are ~15 key comparisons for 20k members. Headers written with
 * sorted keys (common) are detected in O(n) and need no sorting at all.
 */
static uint32_t *build_object_index(parser *p, const json_key *keys, size_t count) {
    uint32_t *index = arena_alloc(p->arena, count * sizeof(uint32_t), sizeof(uint32_t));
    if (index == NULL) {
        return NULL;
    }
    bool already_sorted = true;
    for (size_t i = 0; i < count; i++) {
        index[i] = (uint32_t)i;
        if (i > 0 && already_sorted && compare_members(keys, (uint32_t)(i - 1), (uint32_t)i) > 0) {
            already_sorted = false;
        }
    }
    if (already_sorted) {
        return index;
    }

    /* Bottom-up merge sort (stable, no recursion). */
    uint32_t *scratch = malloc(count * sizeof(uint32_t));
    if (scratch == NULL) {
        return NULL;
    }
    uint32_t *src = index;
    uint32_t *dst = scratch;
    for (size_t width = 1; width < count; width *= 2) {
        for (size_t lo = 0; lo < count; lo += 2 * width) {
            size_t mid = lo + width < count ? lo + width : count;
            size_t hi = lo + 2 * width < count ? lo + 2 * width : count;
            size_t left = lo;
            size_t right = mid;
            size_t out = lo;
            while (left < mid && right < hi) {
                /* <= keeps equal keys in document order (stability). */
                if (compare_members(keys, src[left], src[right]) <= 0) {
                    dst[out++] = src[left++];
                } else {
                    dst[out++] = src[right++];
                }
            }
            while (left < mid) {
                dst[out++] = src[left++];
            }
            while (right < hi) {
                dst[out++] = src[right++];
            }
        }
        uint32_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != index) {
        memcpy(index, src, count * sizeof(uint32_t));
    }
    free(scratch);
    return index;
}

/* ------------------------------------------------------------------------ */
/* Containers                                                               */
/* ------------------------------------------------------------------------ */

static int open_container_at(parser *p, llm_json_type type, size_t slot) {
    if (p->depth >= p->max_depth) {
        return fail(p, p->pos, "nesting too deep: more than %zu levels of arrays/objects", p->max_depth);
    }
    if (p->depth == p->stack_cap) {
        void *items = p->stack;
        if (grow_stack(p, &items, &p->stack_cap, sizeof(open_container)) != 0) {
            return -1;
        }
        p->stack = items;
    }
    open_container *frame = &p->stack[p->depth++];
    frame->type = type;
    frame->slot = slot;
    frame->first_child = p->value_count;
    frame->first_key = p->key_count;
    node_set_type(&p->values[slot], type, 0);
    p->pos++; /* past '[' or '{' */
    return 0;
}

/* Moves the children of the innermost open container from the scratch
 * stacks into the arena and stores the finished container in its slot. */
static int close_container(parser *p) {
    open_container frame = p->stack[--p->depth];
    size_t count = p->value_count - frame.first_child;
    const llm_json *children = p->values + frame.first_child;
    llm_json *node = &p->values[frame.slot];

    if (frame.type == LLM_JSON_ARRAY) {
        llm_json *items = NULL;
        if (count > 0) {
            if (count > SIZE_MAX / sizeof(llm_json)) {
                return fail_out_of_memory(p);
            }
            items = arena_alloc(p->arena, count * sizeof(llm_json), _Alignof(llm_json));
            if (items == NULL) {
                return fail_out_of_memory(p);
            }
            memcpy(items, children, count * sizeof(llm_json));
        }
        node->u.array.items = items;
        node->u.array.count = count;
    } else {
        object_body *body = NULL;
        if (count > 0) {
            if (count > (SIZE_MAX - sizeof(object_body)) / sizeof(llm_json) ||
                count > SIZE_MAX / sizeof(json_key)) {
                return fail_out_of_memory(p);
            }
            body =
                arena_alloc(p->arena, sizeof(object_body) + count * sizeof(llm_json), _Alignof(object_body));
            json_key *keys = arena_alloc(p->arena, count * sizeof(json_key), _Alignof(json_key));
            if (body == NULL || keys == NULL) {
                return fail_out_of_memory(p);
            }
            memcpy(body->values, children, count * sizeof(llm_json));
            memcpy(keys, p->keys + frame.first_key, count * sizeof(json_key));
            body->keys = keys;
            body->sorted_index = NULL;
            /* Beyond UINT32_MAX members the index type cannot address them;
             * such objects (hundreds of GB) fall back to linear search. */
            if (count > OBJECT_INDEX_MIN_MEMBERS && count <= UINT32_MAX) {
                body->sorted_index = build_object_index(p, keys, count);
                if (body->sorted_index == NULL) {
                    return fail_out_of_memory(p);
                }
            }
        }
        node->u.object.body = body;
        node->u.object.count = count;
        p->key_count = frame.first_key;
    }
    p->value_count = frame.first_child;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                  */
/* ------------------------------------------------------------------------ */

static int fail_control_character(parser *p, size_t pos, unsigned char c) {
    if (c == '\n' || c == '\r') {
        return fail(p, pos, "unescaped line break in string (missing closing '\"'?)");
    }
    return fail(p, pos, "unescaped control character 0x%02X in string (write it as \\u%04X)", c, c);
}

static int fail_invalid_utf8(parser *p, size_t pos) {
    return fail(p, pos, "invalid UTF-8 in string (byte 0x%02X)", p->text[pos]);
}

/* Decodes a string containing escapes. `open` is the opening quote and
 * `first_escape` the first backslash; everything before it has already
 * been validated by the fast scan. */
static int parse_escaped_string(parser *p, size_t open, size_t first_escape, const char **out,
                                size_t *out_len) {
    const unsigned char *text = p->text;
    size_t content_start = open + 1;

    /* Find the closing quote, skipping escaped characters. Decoding never
     * makes a string longer, so the raw length bounds the output size. */
    size_t close = first_escape;
    while (close < p->len && text[close] != '"') {
        close += text[close] == '\\' ? 2 : 1;
    }
    if (close >= p->len) {
        return fail(p, open, "unterminated string (no closing '\"' before end of input)");
    }

    size_t capacity = close - content_start + 1;
    char *decoded = arena_alloc(p->arena, capacity, 1);
    if (decoded == NULL) {
        return fail_out_of_memory(p);
    }
    size_t prefix_len = first_escape - content_start;
    memcpy(decoded, text + content_start, prefix_len);
    size_t out_pos = prefix_len;

    size_t i = first_escape;
    while (i < close) {
        unsigned char c = text[i];
        if (c != '\\') {
            if (c < 0x20) {
                return fail_control_character(p, i, c);
            }
            size_t n = 1;
            if (c >= 0x80) {
                n = utf8_sequence_length(text + i, close - i);
                if (n == 0) {
                    return fail_invalid_utf8(p, i);
                }
            }
            memcpy(decoded + out_pos, text + i, n);
            out_pos += n;
            i += n;
            continue;
        }

        /* Escape sequence; the closing-quote scan guarantees i + 1 < close. */
        unsigned char escaped = text[i + 1];
        char simple = 0;
        switch (escaped) {
        case '"':
            simple = '"';
            break;
        case '\\':
            simple = '\\';
            break;
        case '/':
            simple = '/';
            break;
        case 'b':
            simple = '\b';
            break;
        case 'f':
            simple = '\f';
            break;
        case 'n':
            simple = '\n';
            break;
        case 'r':
            simple = '\r';
            break;
        case 't':
            simple = '\t';
            break;
        case 'u':
            break;
        default: {
            char buf[16];
            return fail(p, i, "invalid escape sequence: backslash followed by %s",
                        describe_byte(escaped, buf));
        }
        }
        if (escaped != 'u') {
            decoded[out_pos++] = simple;
            i += 2;
            continue;
        }

        long unit = parse_hex4(text, i + 2, close);
        if (unit < 0) {
            return fail(p, i, "invalid \\u escape: expected 4 hex digits after \\u");
        }
        unsigned long code_point = (unsigned long)unit;
        size_t escape_len = 6;
        if (unit >= 0xDC00 && unit <= 0xDFFF) {
            return fail(p, i,
                        "invalid \\u escape: lone low surrogate \\u%04lX "
                        "(not preceded by a high surrogate \\uD800-\\uDBFF)",
                        (unsigned long)unit);
        }
        if (unit >= 0xD800 && unit <= 0xDBFF) {
            long low = -1;
            if (close - i >= 12 && text[i + 6] == '\\' && text[i + 7] == 'u') {
                low = parse_hex4(text, i + 8, close);
            }
            if (low < 0xDC00 || low > 0xDFFF) {
                return fail(p, i,
                            "invalid \\u escape: lone high surrogate \\u%04lX "
                            "(must be followed by a low surrogate \\uDC00-\\uDFFF)",
                            (unsigned long)unit);
            }
            code_point = 0x10000 + (((unsigned long)unit - 0xD800) << 10) + ((unsigned long)low - 0xDC00);
            escape_len = 12;
        }
        out_pos += llm_utf8_encode((uint32_t)code_point, decoded + out_pos);
        i += escape_len;
    }
    decoded[out_pos] = '\0';
    arena_shrink_last(p->arena, decoded, capacity, out_pos + 1);
    p->pos = close + 1;
    *out = decoded;
    *out_len = out_pos;
    return 0;
}

/* Parses the string starting at the '"' at p->pos into the arena. */
static int parse_string(parser *p, const char **out, size_t *out_len) {
    const unsigned char *text = p->text;
    size_t end = p->len;
    size_t open = p->pos;
    size_t i = open + 1;
    for (;;) {
        while (i < end && !string_byte_needs_care[text[i]]) {
            i++;
        }
        if (i >= end) {
            return fail(p, open, "unterminated string (no closing '\"' before end of input)");
        }
        unsigned char c = text[i];
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            return parse_escaped_string(p, open, i, out, out_len);
        }
        if (c < 0x20) {
            return fail_control_character(p, i, c);
        }
        size_t n = utf8_sequence_length(text + i, end - i);
        if (n == 0) {
            return fail_invalid_utf8(p, i);
        }
        i += n;
    }

    /* No escapes: the decoded string is the source span. */
    size_t len = i - (open + 1);
    char *copy = arena_alloc(p->arena, len + 1, 1);
    if (copy == NULL) {
        return fail_out_of_memory(p);
    }
    memcpy(copy, text + open + 1, len);
    copy[len] = '\0';
    p->pos = i + 1;
    *out = copy;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

/* A double is determined by its first 767 significant decimal digits plus
 * whether any later digit is non-zero; keeping a few more than that lets
 * strtod round correctly from a bounded buffer whatever the input length. */
#define MAX_SIGNIFICANT_DIGITS 780

/* Exponents beyond this are saturated: with at most ~800 significant
 * digits, any |exponent| this large means overflow or underflow anyway,
 * and saturating keeps the arithmetic below far from overflowing. */
#define EXPONENT_SATURATION 100000000

static const double exact_powers_of_ten[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Exact int64 value of (negative ? -1 : 1) * digits * 10^exponent, where
 * digits[0..count) has no leading zeros. Returns false if the value is not
 * an integer or does not fit. */
static bool exact_int64(const char *digits, size_t count, long long exponent, bool negative, int64_t *out) {
    /* Trailing zeros of the digit string move into the exponent, so that
     * "1.50e1" is seen as 15 * 10^0. */
    while (count > 0 && digits[count - 1] == '0') {
        count--;
        exponent++;
    }
    if (count == 0) {
        *out = 0;
        return true;
    }
    if (exponent < 0 || (long long)count + exponent > 19) {
        return false; /* fraction left over, or at least 10^19 > INT64_MAX */
    }
    uint64_t magnitude = 0;
    for (size_t k = 0; k < count; k++) {
        magnitude = magnitude * 10 + (uint64_t)(digits[k] - '0'); /* <= 19 digits: no wrap */
    }
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (long long k = 0; k < exponent; k++) {
        if (magnitude > limit / 10) {
            return false;
        }
        magnitude *= 10;
    }
    if (magnitude > limit) {
        return false;
    }
    if (negative) {
        /* -(INT64_MAX + 1) without signed overflow */
        *out = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
    } else {
        *out = (int64_t)magnitude;
    }
    return true;
}

static int parse_number(parser *p, llm_json *node) {
    const unsigned char *text = p->text;
    size_t end = p->len;
    size_t start = p->pos;
    size_t i = start;
    char buf[16];

    /* 1. Validate the grammar and find the parts:
     *    '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? ([eE] [+-]? [0-9]+)? */
    bool negative = false;
    if (text[i] == '-') {
        negative = true;
        i++;
        if (i >= end) {
            return fail(p, i, "unexpected end of input in number: expected a digit after '-'");
        }
        if (!is_digit(text[i])) {
            return fail(p, i, "expected a digit after '-', found %s", describe_byte(text[i], buf));
        }
    }
    size_t int_start = i;
    if (text[i] == '0') {
        i++;
        if (i < end && is_digit(text[i])) {
            return fail(p, int_start, "leading zeros are not allowed in numbers");
        }
    } else {
        while (i < end && is_digit(text[i])) {
            i++;
        }
    }
    size_t int_end = i;
    size_t frac_start = i;
    size_t frac_end = i;
    if (i < end && text[i] == '.') {
        i++;
        if (i >= end) {
            return fail(p, i, "unexpected end of input in number: expected a digit after '.'");
        }
        if (!is_digit(text[i])) {
            return fail(p, i, "expected a digit after the decimal point, found %s",
                        describe_byte(text[i], buf));
        }
        frac_start = i;
        while (i < end && is_digit(text[i])) {
            i++;
        }
        frac_end = i;
    }
    long long exponent = 0;
    bool has_exponent = false;
    if (i < end && (text[i] == 'e' || text[i] == 'E')) {
        has_exponent = true;
        i++;
        bool exponent_negative = false;
        if (i < end && (text[i] == '+' || text[i] == '-')) {
            exponent_negative = text[i] == '-';
            i++;
        }
        if (i >= end) {
            return fail(p, i, "unexpected end of input in number: expected a digit in the exponent");
        }
        if (!is_digit(text[i])) {
            return fail(p, i, "expected a digit in the exponent, found %s", describe_byte(text[i], buf));
        }
        while (i < end && is_digit(text[i])) {
            if (exponent < EXPONENT_SATURATION) {
                exponent = exponent * 10 + (text[i] - '0');
            }
            i++;
        }
        if (exponent_negative) {
            exponent = -exponent;
        }
    }
    p->pos = i;

    size_t int_digits = int_end - int_start;
    size_t frac_digits = frac_end - frac_start;

    /* 2. Fast path for the overwhelmingly common case: a plain integer of at
     *    most 18 digits fits int64 and converts to double exactly rounded. */
    if (frac_digits == 0 && !has_exponent && int_digits <= 18) {
        int64_t magnitude = 0;
        for (size_t k = int_start; k < int_end; k++) {
            magnitude = magnitude * 10 + (text[k] - '0');
        }
        /* "-0" must stay a negative zero as a double. */
        unsigned flags = NUMBER_IS_INT64 | (negative && magnitude == 0 ? NUMBER_NEGATIVE_ZERO : 0);
        node_set_type(node, LLM_JSON_NUMBER, flags);
        node->u.integer = negative ? -magnitude : magnitude;
        return 0;
    }

    /* 3. General path: gather the significant digits (leading zeros dropped)
     *    into a bounded buffer; value = digits * 10^decimal_exponent. */
    char digits[MAX_SIGNIFICANT_DIGITS + 1];
    size_t digit_count = 0;
    size_t dropped_digits = 0;
    bool dropped_nonzero = false;
    for (int part = 0; part < 2; part++) {
        size_t from = part == 0 ? int_start : frac_start;
        size_t to = part == 0 ? int_end : frac_end;
        for (size_t k = from; k < to; k++) {
            char d = (char)text[k];
            if (digit_count == 0 && d == '0') {
                continue;
            }
            if (digit_count < MAX_SIGNIFICANT_DIGITS) {
                digits[digit_count++] = d;
            } else {
                dropped_digits++;
                dropped_nonzero |= d != '0';
            }
        }
    }
    /* frac_digits and dropped_digits are bounded by the input size, far
     * below LLONG_MAX; clamping keeps later sums in range. */
    long long decimal_exponent = exponent - (long long)frac_digits + (long long)dropped_digits;
    if (decimal_exponent > EXPONENT_SATURATION) {
        decimal_exponent = EXPONENT_SATURATION;
    } else if (decimal_exponent < -EXPONENT_SATURATION) {
        decimal_exponent = -EXPONENT_SATURATION;
    }

    int64_t integer;
    if (!dropped_nonzero && exact_int64(digits, digit_count, decimal_exponent, negative, &integer)) {
        unsigned flags = NUMBER_IS_INT64 | (negative && integer == 0 ? NUMBER_NEGATIVE_ZERO : 0);
        node_set_type(node, LLM_JSON_NUMBER, flags);
        node->u.integer = integer;
        return 0;
    }

    /* digit_count > 0 here: zero is an exact integer, handled above. */
    double value;
    if (digit_count <= 15 && decimal_exponent >= -22 && decimal_exponent <= 22) {
        /* Both the digits (< 10^15 < 2^53) and the power of ten are exact
         * doubles, so one multiplication/division rounds correctly. */
        double mantissa = 0.0;
        for (size_t k = 0; k < digit_count; k++) {
            mantissa = mantissa * 10.0 + (digits[k] - '0');
        }
        value = decimal_exponent >= 0 ? mantissa * exact_powers_of_ten[decimal_exponent]
                                      : mantissa / exact_powers_of_ten[-decimal_exponent];
    } else {
        /* Written without a decimal point ("123e-5") so the locale's
         * decimal separator cannot change the result. A dropped non-zero
         * digit becomes a trailing '1': the buffer then differs from the
         * truncated value exactly as the real input does, which is all
         * correct rounding needs. */
        char number_text[MAX_SIGNIFICANT_DIGITS + 32];
        memcpy(number_text, digits, digit_count);
        size_t len = digit_count;
        long long exponent_out = decimal_exponent;
        if (dropped_nonzero) {
            number_text[len++] = '1';
            exponent_out--;
        }
        snprintf(number_text + len, sizeof number_text - len, "e%lld", exponent_out);
        value = strtod(number_text, NULL);
    }
    if (isinf(value)) {
        return fail(p, start, "number out of range (too large for a double)");
    }
    node_set_type(node, LLM_JSON_NUMBER, 0);
    node->u.number = negative ? -value : value;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

static int parse_literal(parser *p, llm_json *node, const char *word, llm_json_type type) {
    size_t word_len = strlen(word);
    for (size_t k = 0; k < word_len; k++) {
        size_t at = p->pos + k;
        if (at >= p->len) {
            return fail(p, at, "unexpected end of input in literal: expected '%s'", word);
        }
        if (p->text[at] != (unsigned char)word[k]) {
            return fail(p, at, "invalid literal: expected '%s'", word);
        }
    }
    p->pos += word_len;
    node_set_type(node, type, 0);
    return 0;
}

static bool text_starts_with(const parser *p, const char *word) {
    size_t word_len = strlen(word);
    return p->len - p->pos >= word_len && memcmp(p->text + p->pos, word, word_len) == 0;
}

/* Explains a byte that cannot start a value, with hints for the usual
 * non-JSON habits (JavaScript literals, comments, single quotes...). */
static int fail_not_a_value(parser *p, bool after_comma) {
    unsigned char c = p->text[p->pos];
    char buf[16];
    const char *hint = "";
    if ((c == ']' || c == '}') && after_comma) {
        hint = " (trailing commas are not allowed)";
    } else if (c == '+') {
        hint = " (numbers may not start with '+')";
    } else if (c == '.') {
        hint = " (numbers need a digit before the decimal point)";
    } else if (c == '/') {
        hint = " (comments are not allowed)";
    } else if (c == '\'') {
        hint = " (strings must use double quotes)";
    } else if (text_starts_with(p, "NaN") || text_starts_with(p, "Infinity")) {
        hint = " (NaN and Infinity are not valid JSON)";
    } else if (p->pos == 0 && text_starts_with(p, "\xEF\xBB\xBF")) {
        hint = " (a UTF-8 byte order mark is not allowed)";
    }
    return fail(p, p->pos, "expected a value, found %s%s", describe_byte(c, buf), hint);
}

/* Parses a scalar, or opens a container, into slot `slot`. */
static int parse_value_start(parser *p, size_t slot, bool after_comma) {
    skip_whitespace(p);
    if (p->pos >= p->len) {
        return fail(p, p->pos, "unexpected end of input: expected a value");
    }
    unsigned char c = p->text[p->pos];
    llm_json *node = &p->values[slot];
    node->header = (uint64_t)p->pos; /* type bits filled in below */
    switch (c) {
    case '{':
        return open_container_at(p, LLM_JSON_OBJECT, slot);
    case '[':
        return open_container_at(p, LLM_JSON_ARRAY, slot);
    case '"':
        node_set_type(node, LLM_JSON_STRING, 0);
        return parse_string(p, &node->u.string.data, &node->u.string.len);
    case 't':
        return parse_literal(p, node, "true", LLM_JSON_TRUE);
    case 'f':
        return parse_literal(p, node, "false", LLM_JSON_FALSE);
    case 'n':
        return parse_literal(p, node, "null", LLM_JSON_NULL);
    default:
        if (c == '-' || is_digit(c)) {
            return parse_number(p, node);
        }
        return fail_not_a_value(p, after_comma);
    }
}

/* Describes where the innermost open container began, for EOF errors. */
static void describe_open_container(const parser *p, char *out, size_t out_cap) {
    const open_container *frame = &p->stack[p->depth - 1];
    int line = 0;
    int col = 0;
    llm_json_line_col((const char *)p->text, p->len, llm_json_offset(&p->values[frame->slot]), &line, &col);
    snprintf(out, out_cap, "%s opened at line %d, column %d",
             frame->type == LLM_JSON_ARRAY ? "array" : "object", line, col);
}

/* Parses `"key" :`, pushes the key and the slot for the member's value. */
static int parse_member_key(parser *p, bool after_comma, size_t *slot_out) {
    char buf[16];
    skip_whitespace(p);
    if (p->pos >= p->len) {
        char where[96];
        describe_open_container(p, where, sizeof where);
        return fail(p, p->pos, "unexpected end of input: expected a string key (%s)", where);
    }
    unsigned char c = p->text[p->pos];
    if (c != '"') {
        const char *hint = "";
        if (c == '}' && after_comma) {
            hint = " (trailing commas are not allowed)";
        } else if (c == '\'') {
            hint = " (strings must use double quotes)";
        } else if (c == '/') {
            hint = " (comments are not allowed)";
        } else if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
            hint = " (keys must be quoted)";
        }
        return fail(p, p->pos, "expected a string key, found %s%s", describe_byte(c, buf), hint);
    }
    const char *key;
    size_t key_len;
    if (parse_string(p, &key, &key_len) != 0) {
        return -1;
    }
    skip_whitespace(p);
    if (p->pos >= p->len) {
        return fail(p, p->pos, "unexpected end of input: expected ':' after object key");
    }
    if (p->text[p->pos] != ':') {
        return fail(p, p->pos, "expected ':' after object key, found %s",
                    describe_byte(p->text[p->pos], buf));
    }
    p->pos++;
    if (push_key(p, key, key_len) != 0) {
        return -1;
    }
    return push_value(p, slot_out);
}

/*
 * After a complete value: consumes separators and closing brackets until
 * either the document is complete (returns 1) or another value must be
 * parsed into *slot_out (returns 0). Returns -1 on error.
 */
static int after_value(parser *p, size_t *slot_out) {
    char buf[16];
    while (p->depth > 0) {
        const open_container *frame = &p->stack[p->depth - 1];
        bool is_array = frame->type == LLM_JSON_ARRAY;
        skip_whitespace(p);
        if (p->pos >= p->len) {
            char where[96];
            describe_open_container(p, where, sizeof where);
            return fail(p, p->pos, "unexpected end of input: expected ',' or '%c' (%s)", is_array ? ']' : '}',
                        where);
        }
        unsigned char c = p->text[p->pos];
        if (c == ',') {
            p->pos++;
            if (is_array) {
                return push_value(p, slot_out);
            }
            return parse_member_key(p, true, slot_out);
        }
        if (c == (is_array ? ']' : '}')) {
            p->pos++;
            if (close_container(p) != 0) {
                return -1;
            }
            continue;
        }
        return fail(p, p->pos, "expected ',' or '%c' after %s, found %s", is_array ? ']' : '}',
                    is_array ? "array element" : "object member", describe_byte(c, buf));
    }
    return 1;
}

static bool innermost_is_array(const parser *p) {
    return p->depth > 0 && p->stack[p->depth - 1].type == LLM_JSON_ARRAY;
}

static int parse_document(parser *p) {
    skip_whitespace(p);
    if (p->pos >= p->len) {
        return fail(p, p->pos,
                    p->len == 0 ? "empty input: expected a JSON value"
                                : "only whitespace: expected a JSON value");
    }
    size_t slot;
    if (push_value(p, &slot) != 0) { /* slot 0 receives the root */
        return -1;
    }
    bool after_comma = false;
    for (;;) {
        if (parse_value_start(p, slot, after_comma) != 0) {
            return -1;
        }
        int status;
        llm_json_type type = node_type(&p->values[slot]);
        if (type == LLM_JSON_ARRAY || type == LLM_JSON_OBJECT) {
            /* Just opened a container: empty, or its first child follows. */
            bool is_array = type == LLM_JSON_ARRAY;
            skip_whitespace(p);
            if (p->pos < p->len && p->text[p->pos] == (is_array ? ']' : '}')) {
                p->pos++;
                if (close_container(p) != 0) {
                    return -1;
                }
                status = after_value(p, &slot);
                after_comma = status == 0 && innermost_is_array(p);
            } else if (is_array) {
                status = push_value(p, &slot);
                after_comma = false;
            } else {
                status = parse_member_key(p, false, &slot);
                after_comma = false;
            }
        } else {
            status = after_value(p, &slot);
            /* In an array the next value follows a ','; in an object it
             * follows a ':' and a "trailing comma" hint would mislead. */
            after_comma = status == 0 && innermost_is_array(p);
        }
        if (status < 0) {
            return -1;
        }
        if (status == 1) {
            break;
        }
    }
    skip_whitespace(p);
    if (p->pos < p->len) {
        char buf[16];
        return fail(p, p->pos, "unexpected %s after the end of the JSON value",
                    describe_byte(p->text[p->pos], buf));
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

static void write_error(char *err, size_t err_cap, const char *text, size_t len, size_t pos,
                        const char *message) {
    if (err == NULL || err_cap == 0) {
        return;
    }
    int line = 1;
    int col = 1;
    llm_json_line_col(text, len, pos, &line, &col);
    snprintf(err, err_cap, "line %d, column %d (byte %zu): %s", line, col, pos, message);
}

int llm_json_parse_ex(const char *text, size_t len, const llm_json_parse_options *opts, llm_json_doc **out,
                      char *err, size_t err_cap) {
    if (err != NULL && err_cap > 0) {
        err[0] = '\0';
    }
    if (out == NULL) {
        if (err != NULL && err_cap > 0) {
            snprintf(err, err_cap, "invalid argument: out is NULL");
        }
        return -1;
    }
    *out = NULL;
    if (text == NULL) {
        if (len > 0) {
            if (err != NULL && err_cap > 0) {
                snprintf(err, err_cap, "invalid argument: text is NULL");
            }
            return -1;
        }
        text = ""; /* avoid arithmetic on a null pointer below */
    }
    if ((uint64_t)len > OFFSET_MASK) { /* offsets must fit the node header */
        if (err != NULL && err_cap > 0) {
            snprintf(err, err_cap, "input too large (%zu bytes)", len);
        }
        return -1;
    }

    llm_json_doc *doc = calloc(1, sizeof *doc);
    if (doc == NULL) {
        write_error(err, err_cap, text, len, 0, "out of memory");
        return -1;
    }
    parser p;
    memset(&p, 0, sizeof p);
    p.text = (const unsigned char *)text;
    p.len = len;
    p.max_depth = (opts != NULL && opts->max_depth > 0) ? opts->max_depth : LLM_JSON_DEFAULT_MAX_DEPTH;
    p.arena = &doc->arena;

    int rc = parse_document(&p);
    if (rc == 0) {
        doc->root = p.values[0];
    }
    free(p.values);
    free(p.keys);
    free(p.stack);
    if (rc != 0) {
        write_error(err, err_cap, text, len, p.error_pos, p.error_message);
        llm_json_doc_free(doc);
        return -1;
    }
    *out = doc;
    return 0;
}

int llm_json_parse(const char *text, size_t len, llm_json_doc **out, char *err, size_t err_cap) {
    return llm_json_parse_ex(text, len, NULL, out, err, err_cap);
}

void llm_json_doc_free(llm_json_doc *doc) {
    if (doc == NULL) {
        return;
    }
    arena_free(&doc->arena);
    free(doc);
}

const llm_json *llm_json_root(const llm_json_doc *doc) {
    return doc != NULL ? &doc->root : NULL;
}

llm_json_type llm_json_type_of(const llm_json *v) {
    return v != NULL ? node_type(v) : LLM_JSON_INVALID;
}

const char *llm_json_type_name(llm_json_type type) {
    switch (type) {
    case LLM_JSON_NULL:
        return "null";
    case LLM_JSON_FALSE:
        return "false";
    case LLM_JSON_TRUE:
        return "true";
    case LLM_JSON_NUMBER:
        return "number";
    case LLM_JSON_STRING:
        return "string";
    case LLM_JSON_ARRAY:
        return "array";
    case LLM_JSON_OBJECT:
        return "object";
    case LLM_JSON_INVALID:
        break;
    }
    return "invalid";
}

size_t llm_json_offset(const llm_json *v) {
    return v != NULL ? (size_t)(v->header & OFFSET_MASK) : 0;
}

int llm_json_line_col(const char *text, size_t len, size_t offset, int *line, int *col) {
    if ((text == NULL && len > 0) || offset > len) {
        return -1;
    }
    size_t line_number = 1;
    size_t line_start = 0;
    if (offset > 0) {
        const char *cursor = text;
        const char *stop = text + offset;
        const char *newline;
        while ((newline = memchr(cursor, '\n', (size_t)(stop - cursor))) != NULL) {
            line_number++;
            cursor = newline + 1;
        }
        line_start = (size_t)(cursor - text);
    }
    /* Count characters, not bytes: skip UTF-8 continuation bytes. */
    size_t column = 1;
    for (size_t i = line_start; i < offset; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80) {
            column++;
        }
    }
    if (line != NULL) {
        *line = line_number > INT_MAX ? INT_MAX : (int)line_number;
    }
    if (col != NULL) {
        *col = column > INT_MAX ? INT_MAX : (int)column;
    }
    return 0;
}

int llm_json_is_null(const llm_json *v) {
    return v != NULL && node_type(v) == LLM_JSON_NULL;
}

int llm_json_is_bool(const llm_json *v) {
    return v != NULL && (node_type(v) == LLM_JSON_TRUE || node_type(v) == LLM_JSON_FALSE);
}

int llm_json_is_number(const llm_json *v) {
    return v != NULL && node_type(v) == LLM_JSON_NUMBER;
}

int llm_json_is_string(const llm_json *v) {
    return v != NULL && node_type(v) == LLM_JSON_STRING;
}

int llm_json_is_array(const llm_json *v) {
    return v != NULL && node_type(v) == LLM_JSON_ARRAY;
}

int llm_json_is_object(const llm_json *v) {
    return v != NULL && node_type(v) == LLM_JSON_OBJECT;
}

size_t llm_json_count(const llm_json *v) {
    if (v == NULL) {
        return 0;
    }
    if (node_type(v) == LLM_JSON_ARRAY) {
        return v->u.array.count;
    }
    if (node_type(v) == LLM_JSON_OBJECT) {
        return v->u.object.count;
    }
    return 0;
}

const llm_json *llm_json_get_n(const llm_json *obj, const char *key, size_t key_len) {
    if (obj == NULL || node_type(obj) != LLM_JSON_OBJECT || (key == NULL && key_len > 0)) {
        return NULL;
    }
    const object_body *body = obj->u.object.body;
    size_t count = obj->u.object.count;
    if (count == 0) {
        return NULL;
    }
    const json_key *keys = body->keys;
    const uint32_t *sorted = body->sorted_index;
    if (sorted == NULL) {
        /* Backwards, so the last duplicate wins. */
        for (size_t i = count; i-- > 0;) {
            if (compare_keys(keys[i].data, keys[i].len, key, key_len) == 0) {
                return &body->values[i];
            }
        }
        return NULL;
    }
    /* Find the first entry whose key sorts after `key`; the entry before it
     * is the last (in document order) of the entries equal to `key`. */
    size_t lo = 0;
    size_t hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const json_key *k = &keys[sorted[mid]];
        if (compare_keys(k->data, k->len, key, key_len) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return NULL;
    }
    uint32_t candidate = sorted[lo - 1];
    if (compare_keys(keys[candidate].data, keys[candidate].len, key, key_len) != 0) {
        return NULL;
    }
    return &body->values[candidate];
}

const llm_json *llm_json_get(const llm_json *obj, const char *key) {
    if (key == NULL) {
        return NULL;
    }
    return llm_json_get_n(obj, key, strlen(key));
}

const char *llm_json_key_at(const llm_json *obj, size_t i, size_t *key_len) {
    if (key_len != NULL) {
        *key_len = 0;
    }
    if (obj == NULL || node_type(obj) != LLM_JSON_OBJECT || i >= obj->u.object.count) {
        return NULL;
    }
    const json_key *k = &obj->u.object.body->keys[i];
    if (key_len != NULL) {
        *key_len = k->len;
    }
    return k->data;
}

const llm_json *llm_json_value_at(const llm_json *obj_or_array, size_t i) {
    if (obj_or_array == NULL) {
        return NULL;
    }
    if (node_type(obj_or_array) == LLM_JSON_ARRAY && i < obj_or_array->u.array.count) {
        return &obj_or_array->u.array.items[i];
    }
    if (node_type(obj_or_array) == LLM_JSON_OBJECT && i < obj_or_array->u.object.count) {
        return &obj_or_array->u.object.body->values[i];
    }
    return NULL;
}

double llm_json_number(const llm_json *v) {
    if (v == NULL || node_type(v) != LLM_JSON_NUMBER) {
        return (double)NAN;
    }
    if (node_flags(v) & NUMBER_IS_INT64) {
        return (node_flags(v) & NUMBER_NEGATIVE_ZERO) ? -0.0 : (double)v->u.integer;
    }
    return v->u.number;
}

int llm_json_int64(const llm_json *v, int64_t *out) {
    if (v == NULL || node_type(v) != LLM_JSON_NUMBER || !(node_flags(v) & NUMBER_IS_INT64)) {
        return -1;
    }
    if (out != NULL) {
        *out = v->u.integer;
    }
    return 0;
}

const char *llm_json_string(const llm_json *v, size_t *len) {
    if (v == NULL || node_type(v) != LLM_JSON_STRING) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = v->u.string.len;
    }
    return v->u.string.data;
}

int llm_json_bool(const llm_json *v, int *out) {
    if (v == NULL || (node_type(v) != LLM_JSON_TRUE && node_type(v) != LLM_JSON_FALSE)) {
        return -1;
    }
    if (out != NULL) {
        *out = node_type(v) == LLM_JSON_TRUE;
    }
    return 0;
}

void llm_json_escape(llm_strbuf *sb, const char *s, size_t len) {
    if (sb == NULL) {
        return;
    }
    if (s == NULL) {
        len = 0;
        s = "";
    }
    /* One reservation covers the common case of nothing to escape. */
    if (len <= SIZE_MAX - 2 && llm_strbuf_reserve(sb, len + 2) != 0) {
        return;
    }
    const unsigned char *bytes = (const unsigned char *)s;
    llm_strbuf_append_char(sb, '"');
    size_t run_start = 0; /* start of the pending run copied verbatim */
    size_t i = 0;
    while (i < len) {
        unsigned char c = bytes[i];
        if (!string_byte_needs_care[c]) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_sequence_length(bytes + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
        }
        llm_strbuf_append(sb, bytes + run_start, i - run_start);
        switch (c) {
        case '"':
            llm_strbuf_append(sb, "\\\"", 2);
            break;
        case '\\':
            llm_strbuf_append(sb, "\\\\", 2);
            break;
        case '\b':
            llm_strbuf_append(sb, "\\b", 2);
            break;
        case '\f':
            llm_strbuf_append(sb, "\\f", 2);
            break;
        case '\n':
            llm_strbuf_append(sb, "\\n", 2);
            break;
        case '\r':
            llm_strbuf_append(sb, "\\r", 2);
            break;
        case '\t':
            llm_strbuf_append(sb, "\\t", 2);
            break;
        default:
            if (c < 0x20) {
                llm_strbuf_appendf(sb, "\\u%04x", c);
            } else {
                /* A byte that is not valid UTF-8: emit U+FFFD so the output
                 * stays valid JSON (the parser would reject the raw byte). */
                llm_strbuf_append(sb, "\\ufffd", 6);
            }
            break;
        }
        i++;
        run_start = i;
    }
    llm_strbuf_append(sb, bytes + run_start, i - run_start);
    llm_strbuf_append_char(sb, '"');
}
