/* An open-addressing map from NUL-terminated strings (borrowed, must outlive the map) to int indices.
 * Used for tensor-name lookups across all shards of a model. */
#ifndef LLM_CORE_STRMAP_H
#define LLM_CORE_STRMAP_H

#include <stddef.h>

typedef struct llm_strmap {
    const char **keys;
    int *values;
    size_t cap; /* power of two */
    size_t count;
} llm_strmap;

/* Returns -1 on allocation failure. */
int llm_strmap_init(llm_strmap *m, size_t expected);
void llm_strmap_free(llm_strmap *m);
/* Inserts or replaces. Returns the previous value, -1 if the key was new, -2 on allocation failure. */
int llm_strmap_put(llm_strmap *m, const char *key, int value);
/* Returns the value or -1. */
int llm_strmap_get(const llm_strmap *m, const char *key);

#endif
