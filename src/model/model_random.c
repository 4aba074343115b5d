/* llm_model_create_random: a real checkpoint's exact shape with seeded random weights, built in memory,
 * so speed figures can be reproduced anywhere without downloading weights.
 *
 * The tensors are bound through the same llm_model_bind as a file load (one list of names and shapes),
 * twice: a first pass lays them out and counts bytes so the memory limit is checked before anything
 * large is allocated; the second places them in one anonymous mapping, which is then filled in
 * parallel, chunk by chunk; each value is a hash of its index under a key from the seed and the tensor,
 * so the bytes do not depend on the thread count. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/arena.h"
#include "core/fileutil.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include "model/model_internal.h"

/* Hyper-parameters as in each checkpoint's Hugging Face config.json / generation_config.json. */
typedef struct random_preset {
    const char *name;
    int listed; /* "tiny" is for tests and not listed */
    llm_arch arch;
    const char *architecture;
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    double rms_norm_eps, rope_theta;
    int llama3_rope;
    double rope_factor, rope_low, rope_high;
    int32_t rope_orig_ctx;
    int tied, qk_norm;
    int32_t bos, n_eos, eos[3];
} random_preset;

/* clang-format off */
static const random_preset presets[] = {
    {.name = "llama-3.2-1b", .listed = 1, .arch = LLM_ARCH_LLAMA, .architecture = "LlamaForCausalLM",
     .n_vocab = 128256, .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8, .head_dim = 64, .n_ff = 8192,
     .n_ctx_train = 131072, .rms_norm_eps = 1e-5, .rope_theta = 500000.0, .llama3_rope = 1, .rope_factor = 32.0,
     .rope_low = 1.0, .rope_high = 4.0, .rope_orig_ctx = 8192, .tied = 1, .bos = 128000, .n_eos = 1,
     .eos = {128001}},
    {.name = "qwen3-0.6b", .listed = 1, .arch = LLM_ARCH_QWEN3, .architecture = "Qwen3ForCausalLM",
     .n_vocab = 151936, .n_embd = 1024, .n_layer = 28, .n_head = 16, .n_head_kv = 8, .head_dim = 128, .n_ff = 3072,
     .n_ctx_train = 40960, .rms_norm_eps = 1e-6, .rope_theta = 1000000.0, .tied = 1, .qk_norm = 1, .bos = 151643,
     .n_eos = 2, .eos = {151645, 151643}},
    {.name = "llama-3-8b", .listed = 1, .arch = LLM_ARCH_LLAMA, .architecture = "LlamaForCausalLM",
     .n_vocab = 128256, .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8, .head_dim = 128, .n_ff = 14336,
     .n_ctx_train = 8192, .rms_norm_eps = 1e-5, .rope_theta = 500000.0, .tied = 0, .bos = 128000, .n_eos = 1,
     .eos = {128001}},
    /* For tests: quick to build and run, yet its decode reads 80 MB (bf16) per token, more than the
     * last-level caches of most machines, so it measures memory bandwidth as the real shapes do; a model
     * that fits in cache decodes faster than the DRAM roofline. Most bytes are the tied embedding. */
    {.name = "tiny", .listed = 0, .arch = LLM_ARCH_LLAMA, .architecture = "LlamaForCausalLM", .n_vocab = 65536,
     .n_embd = 512, .n_layer = 2, .n_head = 8, .n_head_kv = 4, .head_dim = 64, .n_ff = 1536, .n_ctx_train = 4096,
     .rms_norm_eps = 1e-5, .rope_theta = 10000.0, .tied = 1, .bos = 1, .n_eos = 1, .eos = {2}},
};
/* clang-format on */
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *llm_model_random_preset(size_t i) {
    size_t k = 0;
    for (size_t p = 0; p < N_PRESETS; p++)
        if (presets[p].listed && k++ == i) return presets[p].name;
    return NULL;
}

static void fill_hparams(const random_preset *p, llm_dtype dtype, llm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->arch = p->arch;
    snprintf(hp->architecture, sizeof hp->architecture, "%s", p->architecture);
    hp->n_vocab = p->n_vocab;
    hp->n_embd = p->n_embd;
    hp->n_layer = p->n_layer;
    hp->n_head = p->n_head;
    hp->n_head_kv = p->n_head_kv;
    hp->head_dim = p->head_dim;
    hp->n_ff = p->n_ff;
    hp->n_ctx_train = p->n_ctx_train;
    hp->rms_norm_eps = p->rms_norm_eps;
    hp->rope_theta = p->rope_theta;
    hp->rope_kind = p->llama3_rope ? LLM_ROPE_LLAMA3 : LLM_ROPE_DEFAULT;
    hp->rope_factor = p->rope_factor;
    hp->rope_low_freq_factor = p->rope_low;
    hp->rope_high_freq_factor = p->rope_high;
    hp->rope_orig_ctx = p->rope_orig_ctx;
    hp->tied_embeddings = p->tied;
    hp->qk_norm = p->qk_norm;
    hp->bos_token_id = p->bos;
    hp->n_eos = p->n_eos;
    for (int i = 0; i < p->n_eos; i++) hp->eos_token_ids[i] = p->eos[i];
    snprintf(hp->config_dtype, sizeof hp->config_dtype, "%s",
             dtype == LLM_DTYPE_F32   ? "float32"
             : dtype == LLM_DTYPE_F16 ? "float16"
                                      : "bfloat16");
}

/* ---- layout: the tensor source ----------------------------------------------------------------- */

typedef struct random_tensor {
    void *data;
    uint64_t n_elems;
    float center, scale; /* values are center + scale * U(-1, 1) */
} random_tensor;

typedef struct random_source {
    llm_tensor_source base;
    llm_model *m;
    llm_dtype dtype;
    size_t elem_size;
    int place;              /* 0: lay out and count; 1: point into block, record for the fill */
    uint64_t offset;        /* bytes laid out so far */
    size_t names_len;       /* bytes of names (with NULs) so far */
    unsigned char *block;   /* place only */
    char *names;            /* place only */
    random_tensor *tensors; /* place only: [n_tensors] */
    size_t n_tensors;
} random_source;

static llm_status random_get(llm_tensor_source *src, llm_tensor *out, const char *name, int64_t rows,
                             int64_t cols, llm_error *err) {
    (void)err;
    random_source *r = (random_source *)src;
    const uint64_t n = (uint64_t)(rows ? rows : 1) * (uint64_t)cols, bytes = n * r->elem_size;
    r->offset = llm_align_up(r->offset, LLM_ARENA_ALIGN);
    const size_t name_len = strlen(name) + 1;
    out->dtype = r->dtype;
    out->rows = rows ? rows : 1;
    out->cols = cols;
    if (r->place) {
        out->data = r->block + r->offset;
        out->name = memcpy(r->names + r->names_len, name, name_len);
        random_tensor *t = &r->tensors[r->n_tensors];
        t->data = r->block + r->offset;
        t->n_elems = n;
        if (rows) { /* a matrix: unit-variance outputs for unit-variance inputs */
            t->center = 0.0f;
            t->scale = sqrtf(3.0f / (float)cols);
        } else if (strstr(name, "norm")) {
            t->center = 1.0f;
            t->scale = 0.1f;
        } else { /* a bias */
            t->center = 0.0f;
            t->scale = 0.1f;
        }
    } else {
        out->data = NULL;
        out->name = NULL;
        llm_model *m = r->m;
        m->n_params += n;
        m->n_tensors++;
        m->weight_bytes += bytes;
        m->bytes_by_dtype[r->dtype] += bytes;
    }
    r->n_tensors++;
    r->offset += bytes;
    r->names_len += name_len;
    return LLM_OK;
}

/* ---- the fill ------------------------------------------------------------------------------------- */

#define FILL_CHUNK ((uint64_t)1 << 20) /* elements per job */

typedef struct fill_job {
    uint32_t tensor;
    uint64_t first, n;
} fill_job;

typedef struct fill_ctx {
    const llm_model *m;
    const random_tensor *tensors;
    const fill_job *jobs;
    size_t n_jobs;
    llm_dtype dtype;
    uint64_t seed;
    uint64_t total_elems;
    double progress_scale; /* the fill's share of the progress (the rest: quantizing) */
    _Atomic size_t next;
    _Atomic uint64_t done;
} fill_ctx;

/* Counter-based: element i of a tensor is hash(i) under the tensor's key, so any chunk can be filled by
 * any thread. 32-bit integer ops only (murmur3's finaliser, a bijection), which vectorise, so the fill
 * runs at memory speed: 16 GB of weights in seconds. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LLM_NO_TARGET_CLONES)
#define FILL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FILL_CLONES
#endif

static inline float uniform_at(uint32_t i, uint32_t key) { /* in [-2^31, 2^31) */
    uint32_t h = i * 0x9e3779b1u ^ key;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return (float)(int32_t)h;
}

FILL_CLONES static void fill_f32(float *dst, uint32_t first, uint32_t n, uint32_t key, float center,
                                 float k) {
    for (uint32_t i = 0; i < n; i++) dst[i] = center + k * uniform_at(first + i, key);
}

FILL_CLONES static void fill_bf16(uint16_t *dst, uint32_t first, uint32_t n, uint32_t key, float center,
                                  float k) {
    for (uint32_t i = 0; i < n; i++) {
        const float v = center + k * uniform_at(first + i, key);
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        dst[i] = (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16); /* finite by construction: RNE */
    }
}

static void fill_f16(uint16_t *dst, uint32_t first, uint32_t n, uint32_t key, float center, float k) {
    for (uint32_t i = 0; i < n; i++) dst[i] = llm_f32_to_f16(center + k * uniform_at(first + i, key));
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_job_run(const fill_ctx *c, size_t j) {
    const fill_job *job = &c->jobs[j];
    const random_tensor *t = &c->tensors[job->tensor];
    /* a job never straddles a multiple of 2^32 elements (jobs start at multiples of FILL_CHUNK), so the
     * high half of the index goes into the key */
    const uint32_t key =
        (uint32_t)mix64(c->seed ^ mix64(((uint64_t)job->tensor << 32) + (job->first >> 32) + 1));
    const float k = t->scale * 0x1p-31f;
    const uint32_t first = (uint32_t)job->first, n = (uint32_t)job->n;
    switch (c->dtype) {
    case LLM_DTYPE_F32:
        fill_f32((float *)t->data + job->first, first, n, key, t->center, k);
        break;
    case LLM_DTYPE_F16:
        fill_f16((uint16_t *)t->data + job->first, first, n, key, t->center, k);
        break;
    default:
        fill_bf16((uint16_t *)t->data + job->first, first, n, key, t->center, k);
        break;
    }
}

static void fill_task(void *arg, int ith, int nth) {
    (void)nth;
    fill_ctx *c = arg;
    for (;;) {
        const size_t j = atomic_fetch_add(&c->next, 1);
        if (j >= c->n_jobs) break;
        fill_job_run(c, j);
        const uint64_t done = atomic_fetch_add(&c->done, c->jobs[j].n) + c->jobs[j].n;
        if (ith == 0)
            llm_model_progress(c->m, c->progress_scale * (double)done / (double)c->total_elems); /* caller */
    }
}

static llm_status fill(llm_model *m, const random_tensor *tensors, size_t n_tensors, llm_dtype dtype,
                       uint64_t seed, double progress_scale, llm_error *err) {
    size_t n_jobs = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        n_jobs += (size_t)((tensors[i].n_elems + FILL_CHUNK - 1) / FILL_CHUNK);
        total += tensors[i].n_elems;
    }
    fill_job *jobs = malloc((n_jobs ? n_jobs : 1) * sizeof *jobs);
    if (!jobs) return llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    size_t j = 0;
    for (size_t i = 0; i < n_tensors; i++)
        for (uint64_t first = 0; first < tensors[i].n_elems; first += FILL_CHUNK) {
            const uint64_t left = tensors[i].n_elems - first;
            jobs[j++] = (fill_job){(uint32_t)i, first, left < FILL_CHUNK ? left : FILL_CHUNK};
        }
    fill_ctx c = {.m = m,
                  .tensors = tensors,
                  .jobs = jobs,
                  .n_jobs = n_jobs,
                  .dtype = dtype,
                  .seed = seed,
                  .total_elems = total ? total : 1,
                  .progress_scale = progress_scale};
    atomic_init(&c.next, 0);
    atomic_init(&c.done, 0);
    llm_threadpool *pool = m->n_threads > 1 ? llm_threadpool_create(m->n_threads) : NULL;
    if (pool)
        llm_threadpool_run(pool, fill_task, &c);
    else
        fill_task(&c, 0, 1); /* one thread, or no threads to be had: the same bytes, just slower */
    llm_threadpool_free(pool);
    free(jobs);
    return LLM_OK;
}

/* ---- the entry point ------------------------------------------------------------------------------ */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static llm_status create(const char *name, llm_dtype dtype, uint64_t seed, const llm_model_params *params,
                         llm_model **out, llm_error *err) {
    const random_preset *p = NULL;
    for (size_t i = 0; name && i < N_PRESETS && !p; i++)
        if (strcmp(name, presets[i].name) == 0) p = &presets[i];
    if (!p) {
        char list[256] = "";
        size_t pos = 0;
        for (size_t i = 0; llm_model_random_preset(i); i++)
            pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "",
                                    llm_model_random_preset(i));
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT, "unknown random-weights preset '%.64s' (presets: %s)",
                        name ? name : "(null)", list);
    }
    if ((int)dtype < 0 || dtype >= LLM_DTYPE_COUNT)
        return llm_fail(err, LLM_ERR_INVALID_ARGUMENT,
                        "unknown dtype %d (expected F32, F16, BF16, Q8_0 or Q4_K)", (int)dtype);
    const double t0 = seconds();
    llm_model *m = NULL;
    llm_status st = llm_model_new(params, &m, err);
    if (st != LLM_OK) return st;
    llm_model_progress(m, 0);
    /* quantized dtypes: BF16 weights made as usual, then quantized as a load with that option would
     * (norms stay BF16); the quantization releases the BF16 pages as it goes */
    const llm_dtype requested = dtype;
    if (llm_dtype_is_quant(dtype)) {
        m->params.quantize = dtype == LLM_DTYPE_Q4_K ? LLM_QUANTIZE_Q4_K : LLM_QUANTIZE_Q8_0;
        dtype = LLM_DTYPE_BF16;
    }
    fill_hparams(p, dtype, &m->hp);

    /* pass 1: lay out and count, allocating nothing large */
    random_source r = {
        .base = {random_get}, .m = m, .dtype = dtype, .elem_size = dtype == LLM_DTYPE_F32 ? 4 : 2};
    st = llm_model_bind(m, &r.base, err);
    if (st == LLM_OK && m->weight_bytes > m->memory_limit) {
        char a[32], b[32];
        st = llm_fail(
            err, LLM_ERR_MEMORY_LIMIT,
            "random-weights preset '%s' in %s needs %llu bytes (%s) of weights, more than the memory limit "
            "of %s",
            p->name, llm_dtype_name(dtype), (unsigned long long)m->weight_bytes,
            llm_format_bytes(m->weight_bytes, a, sizeof a), llm_format_bytes(m->memory_limit, b, sizeof b));
    }
    const uint64_t block_bytes = r.offset, n_tensors = r.n_tensors;
    random_tensor *tensors = NULL;
    if (st == LLM_OK) {
        void *block =
            mmap(NULL, (size_t)block_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED) {
            char a[32];
            st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "cannot allocate %s for the random weights",
                          llm_format_bytes(block_bytes, a, sizeof a));
        } else {
            m->weight_block = block;
            m->weight_block_bytes = (size_t)block_bytes;
        }
    }
    if (st == LLM_OK) {
        m->tensor_names = malloc(r.names_len);
        tensors = calloc((size_t)n_tensors, sizeof *tensors);
        if (!m->tensor_names || !tensors) st = llm_fail(err, LLM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (st == LLM_OK) {
        /* pass 2: the same order, now into the block */
        r = (random_source){.base = {random_get},
                            .m = m,
                            .dtype = dtype,
                            .elem_size = r.elem_size,
                            .place = 1,
                            .block = m->weight_block,
                            .names = m->tensor_names,
                            .tensors = tensors};
        st = llm_model_bind(m, &r.base, err);
        LLM_ASSERT(st != LLM_OK || (r.offset == block_bytes && r.n_tensors == n_tensors));
    }
    const int quantize = m->params.quantize != LLM_QUANTIZE_NONE;
    if (st == LLM_OK) st = fill(m, tensors, (size_t)n_tensors, dtype, seed, quantize ? 0.5 : 1.0, err);
    if (st == LLM_OK && quantize) st = llm_model_quantize_weights(m, 0.5, err);
    if (st == LLM_OK) st = llm_model_place_weights(m, err);
    free(tensors);
    if (st != LLM_OK) {
        llm_model_free(m);
        return st;
    }
    llm_model_progress(m, 1);
    char wb[32];
    llm_log(
        &m->log, LLM_LOG_INFO,
        "built random-weight %s (%s): %d layers, %llu parameters, %s of %s weights in %.2f s on %d threads",
        p->name, m->hp.architecture, m->hp.n_layer, (unsigned long long)m->n_params,
        llm_format_bytes(m->weight_bytes, wb, sizeof wb), llm_dtype_name(requested), seconds() - t0,
        m->n_threads);
    *out = m;
    return LLM_OK;
}

llm_status llm_model_create_random(const char *preset, llm_dtype dtype, uint64_t seed,
                                   const llm_model_params *params, llm_model **out, char *err,
                                   size_t err_cap) {
    if (err && err_cap) err[0] = '\0';
    if (!out) return LLM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    llm_error e;
    llm_error_clear(&e);
    llm_status st = create(preset, dtype, seed, params, out, &e);
    if (st != LLM_OK && err && err_cap) snprintf(err, err_cap, "%s", e.msg);
    return st;
}
