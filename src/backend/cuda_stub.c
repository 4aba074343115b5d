/* Stand-ins for the CUDA backend in builds without it (no nvcc, or LLAMAC_CUDA=OFF). */
#include <stdio.h>

#include "backend/cuda/cuda_backend.h"

int llm_cuda_compiled(void) {
    return 0;
}

int llm_cuda_auto_allowed(void) {
    return 0;
}

int llm_cuda_probe(char *why, size_t cap) {
    if (why && cap)
        snprintf(why, cap, "this build has no CUDA backend (built without nvcc or with LLAMAC_CUDA=OFF)");
    return 0;
}

llm_backend *llm_backend_cuda_create(const llm_backend_config *cfg, char *err, size_t cap) {
    (void)cfg;
    llm_cuda_probe(err, cap);
    return NULL;
}

llm_status llm_cuda_store_create(uint64_t total_bytes, llm_cuda_store **out, char *err, size_t cap) {
    (void)total_bytes;
    *out = NULL;
    llm_cuda_probe(err, cap);
    return LLM_ERR_BACKEND_UNAVAILABLE;
}

llm_status llm_cuda_store_put(llm_cuda_store *st, const void *host, size_t bytes, const void **dev, char *err,
                              size_t cap) {
    (void)st, (void)host, (void)bytes;
    *dev = NULL;
    llm_cuda_probe(err, cap);
    return LLM_ERR_BACKEND_UNAVAILABLE;
}

llm_status llm_cuda_store_finish(llm_cuda_store *st, char *err, size_t cap) {
    (void)st;
    llm_cuda_probe(err, cap);
    return LLM_ERR_BACKEND_UNAVAILABLE;
}

void llm_cuda_store_free(llm_cuda_store *st) {
    (void)st;
}

double llm_cuda_copy_bandwidth(void) {
    return 0;
}
