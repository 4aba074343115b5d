/* The CUDA backend, as C code sees it. Built when CMake finds nvcc (LLAMAC_CUDA=AUTO|ON); otherwise
 * src/backend/cuda_stub.c provides the same functions, reporting that the build has no CUDA. */
#ifndef LLM_BACKEND_CUDA_BACKEND_H
#define LLM_BACKEND_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has the CUDA backend (whether or not a device is present). */
int llm_cuda_compiled(void);

/* 1 when auto selection may pick CUDA: the build passed the CUDA parity gate (make test-cuda). */
int llm_cuda_auto_allowed(void);

/* 1 when a CUDA device can be used; else 0 and the reason ("this build has no CUDA backend", "no CUDA
 * device: <driver message>") in why. */
int llm_cuda_probe(char *why, size_t cap);

/* A backend on device 0 with its own stream, cuBLAS handle and workspaces sized for cfg (max_row,
 * max_tokens). NULL with the reason in err. */
llm_backend *llm_backend_cuda_create(const llm_backend_config *cfg, char *err, size_t cap);

/* Device memory bandwidth in bytes/s: a device-to-device copy of 1 GiB, counted as bytes read plus
 * bytes written, the best of 5 (the roofline the bench compares decode with). 0 if it cannot run. */
double llm_cuda_copy_bandwidth(void);

/* Device memory holding a model's weights, filled once from host memory (the file's mmap) through a
 * pinned staging buffer. */
typedef struct llm_cuda_store llm_cuda_store;

/* Reserves total_bytes of device memory (one allocation). */
llm_status llm_cuda_store_create(uint64_t total_bytes, llm_cuda_store **out, char *err, size_t cap);
/* Copies bytes from host into the store (256-byte aligned slots); *dev receives the device address. */
llm_status llm_cuda_store_put(llm_cuda_store *st, const void *host, size_t bytes, const void **dev, char *err,
                              size_t cap);
/* Waits for every copy to land. */
llm_status llm_cuda_store_finish(llm_cuda_store *st, char *err, size_t cap);
void llm_cuda_store_free(llm_cuda_store *st);

#ifdef __cplusplus
}
#endif

#endif
