/*
 * llamac.h — the one public header of libllamac.
 *
 * The narrow waist every layer above (CLI, batching scheduler, HTTP server) is built on:
 *
 *   llm_model   weights loaded from a Hugging Face model directory (config.json + safetensors).
 *   llm_engine  an execution context over one model: a KV-cache budget in fixed-size blocks shared by
 *               all its sequences (with a prefix cache), an activation arena, a backend instance
 *               (thread pool on the CPU, a stream on CUDA).
 *   llm_seq_id  a sequence inside an engine: its tokens' keys/values live in KV blocks.
 *   llm_runner  continuous batching over an engine on a thread of its own: requests, sessions, pull.
 *
 * One verb drives the engine: llm_step appends tokens to many sequences in one forward pass (decode
 * tokens and prefill chunks alike); llm_prefill (many tokens of one sequence) and llm_decode (one
 * token for each of several sequences) are its common cases. All write logits into caller-owned
 * buffers.
 *
 * Conventions
 *  - Every fallible call returns llm_status; LLM_OK is 0. Handles keep a detailed message of their
 *    last error (llm_model_last_error, llm_engine_last_error); load errors that happen before a
 *    handle exists are written into a caller buffer (llm_model_load's err argument).
 *  - The library never prints, exits or aborts on bad input. Diagnostics go to the log callback.
 *  - Ownership is stated at each declaration. Every *_free accepts NULL.
 *  - No global state: any number of models and engines may live in one process. One handle must not
 *    be used from two threads at the same time; different handles may.
 */
#ifndef LLAMAC_H
#define LLAMAC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLAMAC_VERSION_MAJOR 0
#define LLAMAC_VERSION_MINOR 1
#define LLAMAC_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------- */
/* Status codes: one table, expanded into the enum and into llm_strerror.                          */

#define LLM_STATUS_TABLE(X)                                                                                  \
    X(LLM_OK, 0, "success")                                                                                  \
    X(LLM_ERR_INVALID_ARGUMENT, 1, "invalid argument")                                                       \
    X(LLM_ERR_OUT_OF_MEMORY, 2, "out of memory")                                                             \
    X(LLM_ERR_IO, 3, "I/O error")                                                                            \
    X(LLM_ERR_NOT_FOUND, 4, "file not found")                                                                \
    X(LLM_ERR_BAD_JSON, 5, "malformed JSON")                                                                 \
    X(LLM_ERR_BAD_FORMAT, 6, "malformed or inconsistent model file")                                         \
    X(LLM_ERR_BAD_CONFIG, 7, "invalid model configuration")                                                  \
    X(LLM_ERR_UNSUPPORTED, 8, "unsupported model feature")                                                   \
    X(LLM_ERR_MISSING_TENSOR, 9, "required tensor missing")                                                  \
    X(LLM_ERR_SHAPE_MISMATCH, 10, "tensor shape mismatch")                                                   \
    X(LLM_ERR_DTYPE_MISMATCH, 11, "tensor dtype not usable")                                                 \
    X(LLM_ERR_MEMORY_LIMIT, 12, "memory limit exceeded")                                                     \
    X(LLM_ERR_KV_FULL, 13, "KV cache budget exhausted")                                                      \
    X(LLM_ERR_CONTEXT_FULL, 14, "sequence longer than the context")                                          \
    X(LLM_ERR_BUFFER_TOO_SMALL, 15, "output buffer too small")                                               \
    X(LLM_ERR_BACKEND_UNAVAILABLE, 16, "backend not available")                                              \
    X(LLM_ERR_BACKEND, 17, "backend failure")                                                                \
    X(LLM_ERR_INVALID_SEQUENCE, 18, "unknown or freed sequence")                                             \
    X(LLM_ERR_TOO_MANY_SEQUENCES, 19, "too many sequences")                                                  \
    X(LLM_ERR_INTERNAL, 20, "internal error")                                                                \
    X(LLM_ERR_BUSY, 21, "resource busy")                                                                     \
    X(LLM_ERR_EXISTS, 22, "already exists")

typedef enum llm_status {
#define LLM_STATUS_ENUM_(name, value, text) name = value,
    LLM_STATUS_TABLE(LLM_STATUS_ENUM_)
#undef LLM_STATUS_ENUM_
} llm_status;

/* Static English text for a status ("success", "malformed JSON", ...). Never NULL; unknown codes
 * give "unknown status". The returned string is owned by the library and lives forever. */
const char *llm_strerror(llm_status status);

/* Symbolic name of a status ("LLM_ERR_BAD_JSON"). Never NULL. Owned by the library. */
const char *llm_status_name(llm_status status);

/* ---------------------------------------------------------------------------------------------- */
/* Logging                                                                                          */

typedef enum llm_log_level {
    LLM_LOG_DEBUG = 0,
    LLM_LOG_INFO = 1,
    LLM_LOG_WARN = 2,
    LLM_LOG_ERROR = 3,
} llm_log_level;

/* Called synchronously from the thread that made the library call. msg is owned by the library and
 * valid only during the call; it has no trailing newline. */
typedef void (*llm_log_fn)(llm_log_level level, const char *msg, void *user_data);

/* ---------------------------------------------------------------------------------------------- */
/* Data types and backends                                                                          */

typedef enum llm_dtype {
    LLM_DTYPE_F32 = 0,
    LLM_DTYPE_F16 = 1,
    LLM_DTYPE_BF16 = 2,
    /* block-quantized weights, GGUF's layouts (used in place from a GGUF file, or made at load by
     * quantization): a row of K weights is K/32 blocks of 34 bytes (Q8_0: fp16 scale + 32 int8) or
     * K/256 blocks of 144 bytes (Q4_K: fp16 d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles) */
    LLM_DTYPE_Q8_0 = 3,
    LLM_DTYPE_Q4_K = 4,
    LLM_DTYPE_COUNT
} llm_dtype;

/* "F32", "F16", "BF16" (the safetensors spelling), "Q8_0", "Q4_K"; "?" for unknown values. Owned by the
 * library. */
const char *llm_dtype_name(llm_dtype dtype);

typedef enum llm_backend_kind {
    LLM_BACKEND_AUTO = 0, /* the fastest available backend */
    LLM_BACKEND_CPU = 1,  /* the reference backend: f32 math on f32/f16/bf16 weights */
    LLM_BACKEND_CUDA = 2, /* NVIDIA GPU (device 0): weights uploaded once at load; asking for it in a
                             build without CUDA or on a machine without a device gives
                             LLM_ERR_BACKEND_UNAVAILABLE with the reason. AUTO picks it only in builds
                             that passed the CUDA parity gate (make test-cuda) */
} llm_backend_kind;

/* Weight quantization applied while loading (llm_model_params.quantize). */
typedef enum llm_quantize {
    LLM_QUANTIZE_NONE = 0, /* keep the stored dtypes */
    LLM_QUANTIZE_Q8_0 = 1, /* LLM_DTYPE_Q8_0: 8.5 bits per weight */
    LLM_QUANTIZE_Q4_K = 2, /* LLM_DTYPE_Q4_K: 4.5 bits per weight */
} llm_quantize;

/* "auto", "cpu", "cuda". Owned by the library. */
const char *llm_backend_name(llm_backend_kind kind);

/* ---------------------------------------------------------------------------------------------- */
/* Model                                                                                            */

typedef struct llm_model llm_model;

/* The CPU backend's kernels. Every level computes the same ops; the fast ones round differently from
 * the reference (fewer, wider partial sums; bf16 weights meet activations rounded to bf16 where the CPU
 * has AVX512_BF16, as llama.cpp and the CUDA backend do), each in one fixed order per level, so the
 * batch invariance of engines holds at every level. */
typedef enum llm_cpu_kernels {
    LLM_CPU_KERNELS_AUTO = 0,     /* the best level this CPU runs */
    LLM_CPU_KERNELS_REF = 1,      /* the reference kernels: f32 math in a fixed order (the parity tests) */
    LLM_CPU_KERNELS_PORTABLE = 2, /* fast kernels in plain C: any CPU */
    LLM_CPU_KERNELS_AVX2 = 3,     /* x86-64 with AVX2, FMA and F16C */
    LLM_CPU_KERNELS_AVX512 = 4,   /* x86-64 with AVX-512 F/BW/VL (and AVX512_BF16 dot products if present) */
} llm_cpu_kernels;

/* "auto", "ref", "portable", "avx2", "avx512"; NULL for other values. Owned by the library. */
const char *llm_cpu_kernels_name(llm_cpu_kernels kernels);

/* The level `kernels` resolves to on this CPU (AUTO → the best it runs; others unchanged), or
 * LLM_CPU_KERNELS_AUTO when the CPU cannot run the level asked for; then, if why is not NULL (capacity
 * why_cap), a one-line message naming the level and the CPU features it lacks. Never fails otherwise. */
llm_cpu_kernels llm_cpu_kernels_resolve(llm_cpu_kernels kernels, char *why, size_t why_cap);

typedef struct llm_model_params {
    llm_backend_kind backend; /* default LLM_BACKEND_AUTO */
    int n_threads;            /* CPU worker threads for engines of this model; 0 = all online cores */
    /* Kernels of the CPU backend for engines of this model; default LLM_CPU_KERNELS_AUTO. A level this
     * CPU cannot run makes llm_engine_create fail with LLM_ERR_UNSUPPORTED and a message naming the level
     * and the missing CPU features. Ignored by other backends. */
    llm_cpu_kernels cpu_kernels;
    /* Upper bound on weights + KV cache + scratch, checked before anything large is allocated.
     * 0 = the machine's physical memory. */
    uint64_t memory_limit_bytes;
    llm_log_fn log_fn; /* may be NULL: no logging */
    void *log_user_data;
    llm_log_level log_level; /* messages below this level are not formatted; default LLM_LOG_INFO */
    /* Optional progress of llm_model_load / llm_model_create_random, called from the calling thread
     * with fractions in [0, 1] that never decrease, the last one exactly 1 on success (not on failure).
     * With it set, llm_model_load also reads the weights through once after validating them (so they
     * are resident before the first forward pass) and reports that; without it, pages load lazily. */
    void (*progress_fn)(float fraction, void *user_data);
    void *progress_user_data;
    /* Quantize at load (default LLM_QUANTIZE_NONE: weights are used as stored). Every 2-D weight matrix,
     * the token embedding included (as llama.cpp does; with tied embeddings it is also the output
     * projection), is converted into owned memory in GGUF's block layout; norms and biases stay as
     * they are. A matrix whose row length is not a multiple of the block size (256 for Q4_K, 32 for
     * Q8_0) falls back to Q8_0 when that fits, else keeps its dtype (llama.cpp falls back likewise).
     * Tensors already in a quantized dtype are kept. Progress is reported through progress_fn. */
    llm_quantize quantize;
} llm_model_params;

/* Defaults as documented on each field. Never fails. */
llm_model_params llm_model_default_params(void);

/* Loads a Hugging Face model directory: config.json, optional generation_config.json, and
 * model.safetensors or the shards listed in model.safetensors.index.json. The safetensors files are
 * memory-mapped read-only and fully validated; every tensor the architecture needs is checked for
 * presence, shape and dtype.
 *
 * Or a GGUF file (llama.cpp's format; recognised by its magic, or a directory holding exactly one .gguf
 * file and no safetensors) of architecture llama, qwen2 or qwen3: hyper-parameters from its {arch}.*
 * keys, tensors in F32, F16, BF16, Q8_0 or Q4_K used in place from the map (another type is
 * LLM_ERR_UNSUPPORTED naming the tensor), Llama 3.1 RoPE scaling from rope_freqs, the embedded
 * tokenizer and chat template (tokenizer.ggml.*), BOS/EOS (and EOT/EOM, as end tokens) ids. Llama
 * files keep llama.cpp's permuted Q/K rows; RoPE then rotates adjacent pairs, which gives the same
 * attention scores (summed in another order: equal to float rounding, not bit for bit).
 *
 * dir:     path of the directory or GGUF file. Borrowed for the call.
 * params:  may be NULL for defaults. Borrowed for the call.
 * out:     receives the new model on LLM_OK (caller owns it; free with llm_model_free), NULL otherwise.
 * err:     optional caller buffer (may be NULL if err_cap is 0) that receives a one-line message naming
 *          the file, tensor, key and expected-vs-actual values on failure; always NUL-terminated.
 *
 * Returns LLM_OK, LLM_ERR_NOT_FOUND, LLM_ERR_IO, LLM_ERR_BAD_JSON, LLM_ERR_BAD_CONFIG,
 * LLM_ERR_BAD_FORMAT, LLM_ERR_UNSUPPORTED, LLM_ERR_MISSING_TENSOR, LLM_ERR_SHAPE_MISMATCH,
 * LLM_ERR_DTYPE_MISMATCH, LLM_ERR_MEMORY_LIMIT, LLM_ERR_BACKEND_UNAVAILABLE, LLM_ERR_OUT_OF_MEMORY,
 * LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_model_load(const char *dir, const llm_model_params *params, llm_model **out, char *err,
                          size_t err_cap);

/* Builds a model of a real checkpoint's exact shape with random weights, in memory (no files), so
 * that anyone can reproduce speed figures without downloading weights.
 *
 * preset:  "llama-3.2-1b", "qwen3-0.6b" or "llama-3-8b" (hyper-parameters as in their Hugging Face
 *          config.json: dimensions, tied embeddings, qk-norm, RoPE theta and llama3 scaling, EOS ids);
 *          also "tiny" (40 M parameters, 80 MB in BF16: quick, yet larger than most caches), for tests;
 *          llm_model_random_preset does not list it. Borrowed.
 * dtype:   storage of every tensor (real checkpoints are BF16); LLM_DTYPE_Q8_0 / LLM_DTYPE_Q4_K: the
 *          BF16 weights quantized as params->quantize would (matrices quantized, norms kept in BF16;
 *          the memory limit is checked against the BF16 size, the transient peak).
 * seed:    the same preset, dtype and seed give the same weights, whatever the thread count.
 *          Matrices are uniform in +-sqrt(3 / fan_in) (unit-variance outputs for unit-variance
 *          inputs, so activations and logits stay O(1)); norm weights are 1 + U(-0.1, 0.1).
 * params:  may be NULL for defaults; borrowed. The weight bytes are checked against the memory limit
 *          before anything large is allocated; the fill runs on params->n_threads threads and reports
 *          through params->progress_fn.
 * out:     receives the new model on LLM_OK (caller owns it; free with llm_model_free), NULL otherwise.
 *          It has no tokenizer. llm_model_info's architecture is the preset's ("LlamaForCausalLM").
 * err:     optional caller buffer for a one-line message; always NUL-terminated.
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT (an unknown preset: the message lists the presets; a bad
 * dtype or parameter), LLM_ERR_MEMORY_LIMIT, LLM_ERR_OUT_OF_MEMORY, LLM_ERR_BACKEND_UNAVAILABLE. */
llm_status llm_model_create_random(const char *preset, llm_dtype dtype, uint64_t seed,
                                   const llm_model_params *params, llm_model **out, char *err,
                                   size_t err_cap);

/* The name of the i-th preset of llm_model_create_random (0, 1, ...), NULL past the last. Owned by the
 * library. */
const char *llm_model_random_preset(size_t i);

/* Unmaps and frees the model. All engines of the model must have been freed first. NULL is a no-op. */
void llm_model_free(llm_model *model);

/* The message of the model's last failed call ("" if none). Owned by the model; valid until its next
 * call or llm_model_free. */
const char *llm_model_last_error(const llm_model *model);

#define LLM_MAX_EOS_TOKENS 8

typedef struct llm_model_info {
    char architecture[64]; /* "LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM" */
    char family[16];       /* "llama", "qwen2", "qwen3" */
    int32_t n_vocab;
    int32_t n_embd; /* hidden_size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;        /* intermediate_size */
    int32_t n_ctx_train; /* max_position_embeddings */
    double rope_theta;
    char rope_type[16]; /* "default" or "llama3" */
    double rms_norm_eps;
    int tied_embeddings; /* lm_head shares the token embedding matrix */
    int has_qkv_bias;
    int has_o_bias;
    int has_mlp_bias;
    int has_qk_norm;
    int32_t bos_token_id; /* -1 if none */
    int32_t n_eos;
    int32_t eos_token_ids[LLM_MAX_EOS_TOKENS];
    uint64_t n_params;     /* parameters actually used (tied embeddings counted once) */
    uint64_t n_tensors;    /* tensors used by the architecture */
    uint64_t weight_bytes; /* bytes of those tensors */
    uint64_t bytes_by_dtype[LLM_DTYPE_COUNT];
    uint64_t kv_bytes_per_token; /* all layers, K and V, as an engine stores them by default */
    llm_backend_kind backend;    /* the backend chosen at load */
    char backend_reason[192];    /* why: "cuda: requested; NVIDIA H100 ...", "cpu: auto; no CUDA device..." */
    int n_threads;               /* resolved worker count */
} llm_model_info;

/* Fills *info. Never fails for a valid model; model and info must not be NULL. */
void llm_model_get_info(const llm_model *model, llm_model_info *info);

/* ---------------------------------------------------------------------------------------------- */
/* Engine (execution context + KV cache)                                                            */

typedef struct llm_engine llm_engine;
typedef int32_t llm_seq_id; /* > 0 when valid; a freed id is never valid again within its engine */

typedef struct llm_engine_params {
    int32_t n_ctx;         /* max tokens of one sequence; 0 = min(model's n_ctx_train, 4096) */
    int32_t n_seq_max;     /* max live sequences; default 16 */
    int32_t kv_block_size; /* tokens per KV block; default 16 */
    /* KV budget: tokens across all sequences (rounded up to whole blocks). If both are 0, n_ctx tokens.
     * If both are set, the smaller budget wins. */
    int64_t kv_budget_tokens;
    uint64_t kv_budget_bytes;
    int32_t max_batch_tokens; /* tokens per forward pass (longer prefills are chunked); default 256 */
    /* Storage of the KV cache. LLM_DTYPE_COUNT (the default) lets the engine pick (today F32 on every
     * backend); LLM_DTYPE_F32 forces float; LLM_DTYPE_BF16 (half the bytes, values rounded to nearest
     * even as they are stored) is accepted on CUDA only: LLM_ERR_UNSUPPORTED on the CPU, whose kernels
     * are the float reference. */
    llm_dtype kv_dtype;
} llm_engine_params;

/* Defaults as documented on each field. Never fails. */
llm_engine_params llm_engine_default_params(void);

/* Creates an engine over model. The memory footprint (weights + KV + scratch) is computed first and
 * checked against the model's memory limit; nothing large is allocated if it does not fit.
 *
 * model:  borrowed; must outlive the engine.
 * params: may be NULL for defaults. Borrowed for the call.
 * out:    receives the engine on LLM_OK (caller owns it; free with llm_engine_free).
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT, LLM_ERR_MEMORY_LIMIT, LLM_ERR_OUT_OF_MEMORY,
 * LLM_ERR_BACKEND. The message is in llm_model_last_error(model). */
llm_status llm_engine_create(llm_model *model, const llm_engine_params *params, llm_engine **out);

/* Frees the engine, its sequences and its KV cache. NULL is a no-op. */
void llm_engine_free(llm_engine *engine);

/* The message of the engine's last failed call ("" if none). Owned by the engine. */
const char *llm_engine_last_error(const llm_engine *engine);

typedef struct llm_engine_info {
    int32_t n_ctx;
    int32_t n_seq_max;
    int32_t kv_block_size;
    int32_t kv_blocks_total;
    int32_t kv_blocks_used;
    int32_t n_seqs; /* live sequences */
    int32_t max_batch_tokens;
    uint64_t kv_bytes;        /* KV cache allocation */
    llm_dtype kv_dtype;       /* its storage type (F32 or BF16) */
    uint64_t scratch_bytes;   /* activation arena */
    uint64_t footprint_bytes; /* weights + KV + scratch */
    /* Prefix cache (see "Prefix caching" below). kv_blocks_used counts blocks referenced by live
     * sequences; kv_blocks_cached those no sequence references that still hold a registered prefix
     * (reusable, evicted on demand); kv_blocks_total - used - cached are free. */
    int32_t kv_blocks_cached;
    uint64_t prefix_lookup_tokens; /* prefill tokens submitted to a prefix lookup */
    uint64_t prefix_hit_tokens;    /* of those, tokens whose computation was skipped (blocks reused) */
    uint64_t computed_tokens;      /* token rows actually run through the model (prefill + decode) */
} llm_engine_info;

/* Prefix caching (automatic, always on). The KV pool doubles as a cache of computed prefixes:
 * - Every FULL block of a sequence (kv_block_size positions) is registered under a hash of the
 *   previous block's hash and its token ids once a prefill or decode has filled it. The hash is only a
 *   shortcut: a lookup also compares the block's token ids and its parent block, so a hash collision
 *   can never make a sequence reuse another prefix's keys and values.
 * - When llm_prefill starts at a block boundary (a fresh sequence, or one whose length is a multiple
 *   of kv_block_size), the leading full blocks of the new tokens that are already registered after
 *   the same prefix are attached to the sequence (shared, reference counted) instead of computed.
 *   The last new token is always computed (whatever the logits mode), and LLM_LOGITS_ALL computes
 *   every row. The CPU kernels are batch invariant, so logits equal those of an uncached run.
 * - Shared blocks are immutable: a sequence writes only into its own last partial block (one that is
 *   still shared after llm_seq_truncate is copied first).
 * - A block no sequence references any more stays cached (kv_blocks_cached) until its memory is
 *   needed; then the least recently released cached block is evicted. Blocks of live sequences are
 *   never evicted, so the budget available to new tokens is free + cached blocks. */

/* Fills *info. Never fails; engine and info must not be NULL. */
void llm_engine_get_info(const llm_engine *engine, llm_engine_info *info);

/* Works out what llm_engine_create(model, params) would allocate, without allocating: fills *info
 * (kv_blocks_used, n_seqs, kv_blocks_cached and the prefix-cache counters are 0). Returns what
 * llm_engine_create would for invalid parameters or an exceeded memory limit (message in
 * llm_model_last_error), else LLM_OK. */
llm_status llm_engine_estimate(llm_model *model, const llm_engine_params *params, llm_engine_info *info);

/* Creates an empty sequence. *out receives its id.
 * Returns LLM_OK or LLM_ERR_TOO_MANY_SEQUENCES. */
llm_status llm_seq_create(llm_engine *engine, llm_seq_id *out);

/* Frees a sequence and returns its KV blocks (its full, registered blocks stay cached for later
 * prefills until evicted). Unknown ids are ignored (like free(NULL)). */
void llm_seq_free(llm_engine *engine, llm_seq_id seq);

/* Number of tokens the sequence holds (its next position). -1 for an unknown id. */
int32_t llm_seq_length(const llm_engine *engine, llm_seq_id seq);

/* The token ids the sequence holds, in order (llm_seq_length of them). Owned by the engine; valid
 * until the sequence next changes. NULL for an unknown id. */
const int32_t *llm_seq_tokens(const llm_engine *engine, llm_seq_id seq);

/* Keeps the first n_tokens of the sequence and forgets the rest (their KV blocks return to the pool).
 * Used to reuse a shared prefix: a chat turn re-renders the conversation, keeps the common prefix and
 * prefills only what differs. Returns LLM_OK, LLM_ERR_INVALID_SEQUENCE, or LLM_ERR_INVALID_ARGUMENT
 * when n_tokens is negative or larger than the sequence. */
llm_status llm_seq_truncate(llm_engine *engine, llm_seq_id seq, int32_t n_tokens);

/* Forks a sequence: *out receives a new sequence holding the same tokens, sharing every KV block of
 * src (reference counted, nothing copied). Blocks stay shared until one of the two writes into a
 * shared partial block, which is then copied first (copy-on-write); full blocks are never written.
 * Returns LLM_OK, LLM_ERR_INVALID_SEQUENCE, LLM_ERR_TOO_MANY_SEQUENCES. */
llm_status llm_seq_fork(llm_engine *engine, llm_seq_id src, llm_seq_id *out);

typedef enum llm_logits_mode {
    LLM_LOGITS_NONE = 0, /* compute no logits (the KV cache is still filled) */
    LLM_LOGITS_LAST = 1, /* logits of the last token only: n_vocab floats */
    LLM_LOGITS_ALL = 2,  /* logits of every token: n_tokens * n_vocab floats, row-major */
} llm_logits_mode;

/* Appends tokens to a sequence, filling its KV cache, and writes the requested logits.
 *
 * tokens:      n_tokens ids in [0, n_vocab); borrowed.
 * logits:      caller-owned output, logits_cap floats; may be NULL when mode is LLM_LOGITS_NONE.
 * logits_len:  optional; receives the number of floats the mode needs (also on
 *              LLM_ERR_BUFFER_TOO_SMALL, so a caller can size the buffer).
 * Atomic: on any error the sequence is unchanged.
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT (token out of range, n_tokens 0), LLM_ERR_INVALID_SEQUENCE,
 * LLM_ERR_BUFFER_TOO_SMALL, LLM_ERR_CONTEXT_FULL, LLM_ERR_KV_FULL, LLM_ERR_BACKEND. */
llm_status llm_prefill(llm_engine *engine, llm_seq_id seq, const int32_t *tokens, size_t n_tokens,
                       llm_logits_mode mode, float *logits, size_t logits_cap, size_t *logits_len);

/* Appends one token to each of n_seqs distinct sequences in one forward pass and writes their
 * next-token logits, row i for seqs[i]: n_seqs * n_vocab floats.
 *
 * seqs, tokens: n_seqs entries each; borrowed. A sequence may appear only once.
 * logits:       caller-owned output of logits_cap floats; logits_len as in llm_prefill.
 * Atomic: on any error no sequence is changed.
 * Returns as llm_prefill. */
llm_status llm_decode(llm_engine *engine, const llm_seq_id *seqs, const int32_t *tokens, size_t n_seqs,
                      float *logits, size_t logits_cap, size_t *logits_len);

/* One item of llm_step: tokens appended to one sequence. */
typedef struct llm_step_item {
    llm_seq_id seq;
    const int32_t *tokens;  /* n_tokens ids in [0, n_vocab); borrowed */
    int32_t n_tokens;       /* >= 1 */
    llm_logits_mode logits; /* rows of this item whose logits are written */
    int32_t n_reused;       /* out: leading tokens taken from the prefix cache instead of computed */
} llm_step_item;

/* The general verb behind llm_prefill and llm_decode: appends every item's tokens to its sequence in
 * ONE forward pass over the ragged batch (the matmuls see all rows; attention runs per sequence
 * through its block table) and writes the logits the items ask for, in item order (an item's rows in
 * order): sum over items of 0, 1 or n_tokens rows of n_vocab floats. A scheduler mixes the decode
 * tokens of running sequences with prefill chunks of new ones in one call. Passes are split only when
 * the rows exceed the engine's max_batch_tokens. Items that start at a block boundary, have at least
 * two tokens and a mode other than LLM_LOGITS_ALL look up the prefix cache as llm_prefill does.
 *
 * items:      n_items entries, each for a distinct sequence (n_items <= n_seq_max); n_reused is set.
 * logits:     caller-owned output of logits_cap floats (may be NULL when no item wants logits);
 *             logits_len (optional) receives the floats needed, also on LLM_ERR_BUFFER_TOO_SMALL.
 * Atomic: on any error no sequence changes. Returns as llm_prefill; the message names the item. */
llm_status llm_step(llm_engine *engine, llm_step_item *items, size_t n_items, float *logits,
                    size_t logits_cap, size_t *logits_len);

typedef enum llm_pooling {
    LLM_POOL_MEAN = 0, /* the mean of every token's hidden state */
    LLM_POOL_LAST = 1, /* the last token's hidden state (in a causal model, the one that saw every token) */
} llm_pooling;

/* Embeds a token sequence (OpenAI /v1/embeddings): the model's final-RMSNormed hidden states (the
 * input of lm_head; HF's model.model(ids).last_hidden_state) over the tokens, pooled, then
 * L2-normalised: n_embd floats of unit length (all zero in the degenerate case of a zero pooled
 * vector). Pooling and normalisation run in double precision.
 *
 * The tokens run through a temporary sequence of the engine, created and freed inside the call, in
 * forward passes of at most max_batch_tokens rows: the call needs a free sequence slot and KV blocks
 * for n_tokens (free or cached ones). Afterwards the engine has the same sequences and used blocks as
 * before. Like any freed sequence, the temporary one leaves its full blocks in the prefix cache
 * (cached, evicted on demand; this may evict older cached blocks), so a later prefill or embedding of
 * the same prefix reuses them. LLM_POOL_LAST itself reuses cached prefix blocks as llm_prefill does
 * (same result: the kernels are batch invariant); LLM_POOL_MEAN computes every token.
 *
 * tokens:  n_tokens ids in [0, n_vocab), 1 <= n_tokens <= n_ctx; borrowed.
 * out:     caller-owned output of out_cap floats; n_embd are needed.
 * out_len: optional; receives n_embd (also on LLM_ERR_BUFFER_TOO_SMALL, so a caller can size out).
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT (n_tokens 0, a token out of range, unknown pooling),
 * LLM_ERR_BUFFER_TOO_SMALL, LLM_ERR_CONTEXT_FULL (n_tokens > n_ctx), LLM_ERR_TOO_MANY_SEQUENCES (no
 * free sequence slot), LLM_ERR_KV_FULL (fewer free + cached KV blocks than n_tokens needs),
 * LLM_ERR_OUT_OF_MEMORY, LLM_ERR_BACKEND; the message is in llm_engine_last_error. On error out is
 * unspecified and the engine is as described above. */
llm_status llm_embed(llm_engine *engine, const int32_t *tokens, size_t n_tokens, llm_pooling pooling,
                     float *out, size_t out_cap, size_t *out_len);

/* ---------------------------------------------------------------------------------------------- */
/* Tokenizer: Hugging Face tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)       */

/* Produces the ids of Hugging Face `tokenizers` (Tokenizer.encode / decode) for BPE tokenizer.json
 * files: Llama 3, Qwen2/2.5/3, GPT-2 style ByteLevel and SentencePiece-style (Metaspace, byte
 * fallback) BPE. Implemented: model BPE (dropout null); normalizers NFC/NFD/NFKC/NFKD, Lowercase,
 * Strip, StripAccents, Prepend, Append, Replace, Sequence; pre-tokenizers Split, ByteLevel,
 * Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer,
 * CharDelimiterSplit, Sequence; post-processors TemplateProcessing, ByteLevel, RobertaProcessing,
 * BertProcessing, Sequence; decoders ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace,
 * WordPiece, BPEDecoder, Sequence. Regex patterns are Oniguruma syntax, as in HF.
 *
 * Threads: a tokenizer keeps a word cache and scratch buffers that llm_tokenize, llm_detokenize and
 * the streams of that tokenizer update, so one tokenizer (with its streams) must not be used from two
 * threads at the same time; give each thread its own tokenizer (they are independent) or serialize. */

typedef struct llm_tokenizer llm_tokenizer;

typedef struct llm_tokenizer_params {
    llm_log_fn log_fn; /* may be NULL */
    void *log_user_data;
    llm_log_level log_level; /* default LLM_LOG_INFO */
} llm_tokenizer_params;

/* Defaults as documented on each field. Never fails. */
llm_tokenizer_params llm_tokenizer_default_params(void);

/* Loads dir/tokenizer.json plus, when present, dir/tokenizer_config.json,
 * dir/special_tokens_map.json and dir/chat_template.jinja (read as transformers does: a special
 * token set in tokenizer_config.json wins over special_tokens_map.json; chat_template.jinja wins
 * over the config's chat_template). A component the library does not implement (a normalizer,
 * pre-tokenizer, model, post-processor or decoder type) is an LLM_ERR_UNSUPPORTED error naming it.
 * Added tokens get the ids HF `tokenizers` gives them (the vocabulary id of the same string, else
 * the next free id); an "id" in the file that disagrees is logged as a warning.
 * err: optional caller buffer for a one-line message (file, line:col or JSON path, what is wrong).
 * *out: the new tokenizer (caller owns; free with llm_tokenizer_free), NULL on failure.
 * Returns LLM_OK, LLM_ERR_NOT_FOUND, LLM_ERR_IO, LLM_ERR_BAD_JSON, LLM_ERR_BAD_FORMAT, LLM_ERR_UNSUPPORTED,
 * LLM_ERR_OUT_OF_MEMORY, LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_tokenizer_load(const char *dir, const llm_tokenizer_params *params, llm_tokenizer **out,
                              char *err, size_t err_cap);

/* As llm_tokenizer_load, from memory: tokenizer_json is required; config_json (tokenizer_config.json)
 * may be NULL. Both borrowed for the call. */
llm_status llm_tokenizer_load_from_memory(const char *tokenizer_json, size_t tokenizer_json_len,
                                          const char *config_json, size_t config_json_len,
                                          const llm_tokenizer_params *params, llm_tokenizer **out, char *err,
                                          size_t err_cap);

/* NULL is a no-op. */
void llm_tokenizer_free(llm_tokenizer *tok);

/* Message of the tokenizer's last failed call ("" if none). Owned by the tokenizer. */
const char *llm_tokenizer_last_error(const llm_tokenizer *tok);

/* One past the largest token id (vocabulary plus added tokens). */
int32_t llm_tokenizer_n_vocab(const llm_tokenizer *tok);

typedef enum llm_special_token {
    LLM_SPECIAL_BOS = 0,
    LLM_SPECIAL_EOS = 1,
    LLM_SPECIAL_UNK = 2,
    LLM_SPECIAL_PAD = 3,
} llm_special_token;

/* Id of a special token named by tokenizer_config.json / special_tokens_map.json, -1 if none (or if
 * the named string is not a token). */
int32_t llm_tokenizer_special_id(const llm_tokenizer *tok, llm_special_token which);

/* Id of an exact vocabulary or added-token string (len bytes), -1 if none. */
int32_t llm_tokenizer_token_id(const llm_tokenizer *tok, const char *piece, size_t len);

/* 1 if id is an added token marked "special", 0 otherwise (also for out-of-range ids). */
int llm_tokenizer_is_special(const llm_tokenizer *tok, int32_t id);

/* The chat template: chat_template.jinja if the directory has one, else the chat_template of
 * tokenizer_config.json (the "default" one when it is a list of named templates), or NULL. Owned by
 * the tokenizer. */
const char *llm_tokenizer_chat_template(const llm_tokenizer *tok);

/* Flags of llm_tokenize. */
/* LLM_TOKENIZE_ADD_SPECIAL runs tokenizer.json's post-processor (HF's add_special_tokens=True, the
 * default of encode): BOS/EOS exactly as it is configured there, as raw `tokenizers` does.
 * tokenizer_config.json's add_bos_token / add_eos_token are not applied: transformers honours them
 * only in tokenizer classes that rebuild the post-processor from them (LlamaTokenizerFast), so ids
 * can differ from transformers' where a config's flags disagree with its tokenizer.json. */
#define LLM_TOKENIZE_ADD_SPECIAL 1u /* run the post-processor: BOS/EOS exactly as it is configured */
#define LLM_TOKENIZE_PARSE_SPECIAL                                                                           \
    2u /* special added tokens written in the text become those tokens                                       \
          (HF's default); without it their text is tokenized as text */

/* Encodes text[0..len) (UTF-8; invalid bytes are an LLM_ERR_INVALID_ARGUMENT naming the byte offset).
 * ids: caller buffer of cap entries (may be NULL when cap is 0); *n_ids receives the number of ids,
 * also when LLM_ERR_BUFFER_TOO_SMALL is returned (so the caller can size the buffer); nothing is
 * written then. Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT, LLM_ERR_BUFFER_TOO_SMALL,
 * LLM_ERR_OUT_OF_MEMORY, LLM_ERR_BAD_FORMAT (the model's unk_token is needed but is not in its
 * vocabulary, where HF fails too), LLM_ERR_INTERNAL (a regex resource limit). */
llm_status llm_tokenize(llm_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t *ids,
                        size_t cap, size_t *n_ids);

/* Flags of llm_detokenize and the stream. */
#define LLM_DETOKENIZE_SKIP_SPECIAL 1u /* leave out special added tokens */

/* Decodes ids through the decoder chain, as HF `tokenizers`' decode(ids, skip_special_tokens=...)
 * does (bytes that do not form valid UTF-8 become U+FFFD, as Rust's from_utf8_lossy does; ids in
 * range that no token has are skipped; no decoder: the token strings joined with spaces).
 * transformers' clean_up_tokenization_spaces is not applied. text: caller buffer of cap bytes; the
 * result is NUL-terminated when it fits (nothing is written otherwise); *len receives its length
 * without the NUL (also on LLM_ERR_BUFFER_TOO_SMALL). Ids out of range: LLM_ERR_INVALID_ARGUMENT
 * naming the index. */
llm_status llm_detokenize(llm_tokenizer *tok, const int32_t *ids, size_t n_ids, unsigned flags, char *text,
                          size_t cap, size_t *len);

/* The vocabulary string of one token as stored in tokenizer.json (e.g. "Ġhello"; an added token's
 * content), into buf as llm_detokenize fills text. LLM_ERR_INVALID_ARGUMENT for an id no token has
 * (tok is const: no message is recorded). */
llm_status llm_token_to_piece(const llm_tokenizer *tok, int32_t id, char *buf, size_t cap, size_t *len);

/* Streaming detokenizer: takes one token at a time and emits only complete UTF-8; a code point split
 * across tokens is held until its last byte arrives. The concatenation of everything emitted,
 * including the final flush, equals llm_detokenize of all the ids (same flags). Text that later ids
 * can still change is held back: an incomplete UTF-8 sequence, a run of <0xXX> byte-fallback tokens,
 * trailing characters a Strip decoder may still remove; decoders whose result depends on the whole
 * text after a Fuse/ByteLevel join (rare: Replace, WordPiece, BPEDecoder, ByteFallback there) hold
 * everything until the flush. End of stream: whatever is held is released exactly as llm_detokenize
 * ends, e.g. bytes that cannot complete a code point become U+FFFD. */
typedef struct llm_detok_stream llm_detok_stream;

/* tok is borrowed and must outlive the stream. flags: LLM_DETOKENIZE_*. */
llm_status llm_detok_stream_create(llm_tokenizer *tok, unsigned flags, llm_detok_stream **out);
void llm_detok_stream_free(llm_detok_stream *stream); /* NULL is a no-op */

/* Feeds one id; writes the newly complete text (possibly empty) into out (cap bytes, NUL-terminated
 * when it fits), *len its length. On LLM_ERR_BUFFER_TOO_SMALL nothing is consumed: call again with a
 * buffer of *len + 1 bytes. An id out of range is an LLM_ERR_INVALID_ARGUMENT (nothing consumed). */
llm_status llm_detok_stream_feed(llm_detok_stream *stream, int32_t id, char *out, size_t cap, size_t *len);

/* Ends the stream: writes whatever is held, as above. The stream can then be reused from empty (the
 * next id is again the first, as for a new llm_detokenize). On LLM_ERR_BUFFER_TOO_SMALL nothing is
 * consumed, as for feed. */
llm_status llm_detok_stream_flush(llm_detok_stream *stream, char *out, size_t cap, size_t *len);

/* ---------------------------------------------------------------------------------------------- */
/* Sampling: logits -> next token                                                                   */

/* Sampling is deterministic: a sampler's tokens depend only on its parameters (seed included), the
 * logits it is given and the tokens it has recorded; each sampler owns its random stream (xoshiro256**
 * seeded through splitmix64) and draws exactly one number per sample when temperature > 0 (none when
 * it is 0).
 *
 * Order of tokens: every truncation and top_logprobs ranks tokens by their logit after logit_bias and
 * penalties, higher first; equal logits rank by lower token id. Top-k keeps exactly the first k of
 * that order, top-p its shortest prefix whose probability (at the temperature, renormalized over the
 * top-k tokens) sums to >= top_p, min-p those with probability >= min_p * the largest one. The best
 * token always survives. Probabilities are computed in float (relative error ~1e-7) and summed in
 * double: a token whose top-p or min-p fate lies within that rounding may go either way.
 * Cost per call: a few vectorized passes over the vocabulary, no sort, no allocation; top-k adds a
 * bounded heap (O(k log k) at worst), top-p one to a few more passes and a heap over the few thousand
 * tokens nearest the nucleus' end (thousands of exactly equal logits there cost more, still exact).
 * Memory: about 20 bytes per vocabulary entry per sampler. */

#define LLM_MAX_TOP_LOGPROBS 20

typedef struct llm_logit_bias {
    int32_t token; /* in [0, n_vocab); a token may appear only once */
    float bias;    /* added to the token's logit before anything else (OpenAI semantics): [-100, 100] */
} llm_logit_bias;

typedef struct llm_sampling_params {
    float temperature;        /* finite, >= 0; 0 = greedy (argmax, ties to the lowest id; top_k, top_p,
                                 min_p then play no part). Default 1 */
    int32_t top_k;            /* >= 0; 0 = off. Default 0 */
    float top_p;              /* (0, 1]; 1 = off. Default 1 */
    float min_p;              /* [0, 1]; 0 = off. Default 0 */
    float repetition_penalty; /* finite, > 0; 1 = off. HF semantics over every token seen (prompt +
                                 generated), once per distinct token: logit > 0 ? logit / penalty
                                 : logit * penalty. Default 1 */
    float presence_penalty;   /* [-2, 2]; OpenAI semantics over generated tokens. Default 0 */
    float frequency_penalty;  /* [-2, 2]; OpenAI semantics over generated tokens: logit -= presence *
                                 (count > 0) + frequency * count, count = times generated. Default 0 */
    const llm_logit_bias *logit_bias; /* borrowed for llm_sampler_create; copied */
    size_t n_logit_bias;
    uint64_t seed;        /* same seed + same settings + same logits -> same tokens */
    int32_t top_logprobs; /* 0..LLM_MAX_TOP_LOGPROBS alternatives reported with each sampled token */
} llm_sampling_params;

/* temperature 1, top_k 0, top_p 1, min_p 0, repetition_penalty 1, penalties 0, no bias, seed 0,
 * top_logprobs 0. Never fails. */
llm_sampling_params llm_sampling_default_params(void);

typedef struct llm_sampler llm_sampler;

/* Validates params against n_vocab (>= 1): a bad value (NaN included) is LLM_ERR_INVALID_ARGUMENT with
 * a message naming the parameter, the value and its allowed range in err (optional caller buffer,
 * always NUL-terminated when err_cap > 0). params may be NULL for the defaults; borrowed for the call.
 * *out: caller owns; free with llm_sampler_free. NULL on failure.
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT, LLM_ERR_OUT_OF_MEMORY. */
llm_status llm_sampler_create(const llm_sampling_params *params, int32_t n_vocab, llm_sampler **out,
                              char *err, size_t err_cap);
void llm_sampler_free(llm_sampler *s); /* NULL is a no-op */

/* The message of the sampler's last failed call ("" if none). Owned by the sampler; valid until its
 * next call or llm_sampler_free. */
const char *llm_sampler_last_error(const llm_sampler *s);

/* Forgets the token history and restarts the random stream from the seed. */
void llm_sampler_reset(llm_sampler *s);

/* Records a prompt token (counts for the repetition penalty only). LLM_ERR_INVALID_ARGUMENT for a
 * token outside [0, n_vocab). */
llm_status llm_sampler_accept_prompt(llm_sampler *s, int32_t token);

typedef struct llm_token_logprob {
    int32_t token;
    float logprob;
} llm_token_logprob;

typedef struct llm_sample_result {
    int32_t token;
    float logprob;                               /* of the chosen token, see below */
    int32_t n_top;                               /* entries used in top[]: min(top_logprobs, n_vocab) */
    llm_token_logprob top[LLM_MAX_TOP_LOGPROBS]; /* the best tokens, best first (see "Order of tokens") */
} llm_sample_result;

/* Chooses the next token from logits[n_vocab] (not modified) and records it as generated.
 * Order: logit_bias, repetition penalty, presence/frequency penalties, temperature, top-k, top-p,
 * min-p, then a draw. Log-probabilities are those of the distribution after bias and penalties, before
 * temperature and truncation (what the model, as steered, predicts): the log-softmax computed with the
 * max subtracted and the sum in double.
 * Logits may be -inf (a banned token: never chosen); a NaN or +inf logit (the message names its index)
 * or every logit -inf is LLM_ERR_INVALID_ARGUMENT. On error nothing is recorded and no random number is
 * drawn. Returns LLM_OK or LLM_ERR_INVALID_ARGUMENT (message in llm_sampler_last_error). */
llm_status llm_sampler_sample(llm_sampler *s, const float *logits, llm_sample_result *out);

/* ---------------------------------------------------------------------------------------------- */
/* Chat templates: the Jinja2 subset that real chat templates use, rendered as transformers does   */

typedef struct llm_chat_template llm_chat_template;

/* Parses a template (trim_blocks and lstrip_blocks on, as transformers renders chat templates).
 * source: UTF-8 (need not be NUL-terminated), borrowed for the call.
 * Syntax errors: LLM_ERR_BAD_FORMAT with "line L, column C: message" in err (lines 1-based, columns
 * in code points, 1-based): unclosed tags and blocks, unexpected tokens, unknown tags, unknown filter
 * or test names outside an if (as jinja2 rejects them at compile time), invalid UTF-8.
 * *out: caller owns; free with llm_chat_template_free. NULL on failure. */
llm_status llm_chat_template_parse(const char *source, size_t len, llm_chat_template **out, char *err,
                                   size_t err_cap);

void llm_chat_template_free(llm_chat_template *tmpl); /* NULL is a no-op */

typedef struct llm_chat_template_render_params {
    /* Seconds since the epoch that strftime_now() sees; 0 = the current time. */
    int64_t now_unix;
    /* Bound on the work one render may do (loop iterations, calls, statements, plus one step per 256
     * bytes of text processed); 0 = 10,000,000. Guards against templates that never finish.
     * Exceeding it is an LLM_ERR_BAD_FORMAT error. */
    int64_t max_steps;
    /* Bound on the memory one render may use (values + output); 0 = 256 MiB. A template can build
     * huge strings in few steps ('x' * 10**9); exceeding it is LLM_ERR_MEMORY_LIMIT. */
    int64_t max_bytes;
} llm_chat_template_render_params;

/* now_unix 0, max_steps 10,000,000, max_bytes 256 MiB. Never fails. */
llm_chat_template_render_params llm_chat_template_default_render_params(void);

/* Renders with the variables of a JSON object, in the shapes transformers passes them:
 * {"messages": [...OpenAI-style messages...], "tools": [...] or null, "add_generation_prompt": bool,
 *  "bos_token": "...", "eos_token": "...", plus any extra variables ("enable_thinking", ...)}.
 * transformers passes tools=None when there are none: pass null to match it (an absent key is an
 * undefined variable, which some templates treat differently). JSON values become Python values as
 * json.loads makes them (1 an int, 1.0 a float, objects keep their key order).
 * vars_json may be NULL when vars_len is 0 (no variables).
 * out: caller buffer of cap bytes (may be NULL when cap is 0). The render fits when cap >= *out_len + 1:
 * it is then written NUL-terminated; otherwise nothing is written and LLM_ERR_BUFFER_TOO_SMALL is
 * returned. *out_len (may be NULL) receives the length of the render without the NUL (also on
 * LLM_ERR_BUFFER_TOO_SMALL; 0 on other errors). The render may contain NUL bytes ("\u0000" in vars).
 * A template that calls raise_exception(msg), or an undefined function, an invalid operation or
 * exceeded step budget, is an error with "line L, column C: message" in err: LLM_ERR_BAD_FORMAT for
 * template errors (raise_exception's message is given verbatim after the position),
 * LLM_ERR_UNSUPPORTED for jinja2 features this engine lacks (e.g. the groupby filter),
 * LLM_ERR_MEMORY_LIMIT past max_bytes, LLM_ERR_BAD_JSON for malformed vars_json ("vars: line L, column
 * C (byte B): ...") or one that is not an object, LLM_ERR_INVALID_ARGUMENT for NULL misuse,
 * LLM_ERR_OUT_OF_MEMORY when malloc fails.
 * Semantics are those of Python jinja2 3.x inside transformers' ImmutableSandboxedEnvironment
 * (trim_blocks, lstrip_blocks, loopcontrols, the generation tag, tojson with ensure_ascii=False,
 * raise_exception, strftime_now); strftime_now formats now_unix in UTC with the C locale (transformers
 * uses the host's local time). Integers are 64-bit (Python's are unbounded: overflow is an error).
 * A parsed template is immutable: any number of threads may render it at the same time. Parsing and
 * rendering use at most about 512 KiB of the calling thread's stack: deeper nesting (in the source, in
 * macro recursion, in values) is refused with an error instead.
 * params may be NULL for defaults. */
llm_status llm_chat_template_render(const llm_chat_template *tmpl, const char *vars_json, size_t vars_len,
                                    const llm_chat_template_render_params *params, char *out, size_t cap,
                                    size_t *out_len, char *err, size_t err_cap);

/* ---------------------------------------------------------------------------------------------- */
/* Generation: prompt -> streamed tokens and text                                                   */

/* The model's tokenizer (tokenizer.json in its directory), or NULL when the directory has none.
 * Owned by the model. */
llm_tokenizer *llm_model_tokenizer(llm_model *model);

/* Renders the model's chat template (tokenizer_config.json / chat_template.jinja) the way
 * transformers' apply_chat_template does: bos_token and eos_token come from the tokenizer config.
 * messages_json: a JSON array of OpenAI-style messages. tools_json: a JSON array of tools, or NULL.
 * extra_vars_json: a JSON object of further variables ({"enable_thinking": false}), or NULL.
 * out/cap/out_len as llm_chat_template_render. Errors: LLM_ERR_UNSUPPORTED when the model has no chat
 * template, LLM_ERR_BAD_JSON, and those of llm_chat_template_render; the message is in
 * llm_model_last_error(model). The render is meant to be tokenized with LLM_TOKENIZE_PARSE_SPECIAL
 * and without LLM_TOKENIZE_ADD_SPECIAL (the template writes BOS itself). */
llm_status llm_model_apply_chat_template(llm_model *model, const char *messages_json, size_t messages_len,
                                         const char *tools_json, size_t tools_len, int add_generation_prompt,
                                         const char *extra_vars_json, size_t extra_len, char *out, size_t cap,
                                         size_t *out_len);

typedef enum llm_finish_reason {
    LLM_FINISH_NONE = 0,      /* still running (only seen in events) */
    LLM_FINISH_STOP = 1,      /* a stop string matched (it is not part of the text) */
    LLM_FINISH_LENGTH = 2,    /* max_tokens generated, or the context is full */
    LLM_FINISH_EOS = 3,       /* an end-of-sequence token was sampled (not part of the text) */
    LLM_FINISH_CANCELLED = 4, /* the cancel flag was set or the callback asked to stop */
} llm_finish_reason;

/* "none", "stop", "length", "eos", "cancelled". Owned by the library. */
const char *llm_finish_reason_name(llm_finish_reason reason);

typedef struct llm_generate_event {
    int32_t token;    /* the generated token; -1 for the final flush event */
    const char *text; /* complete UTF-8 that became final with this token (may be empty) */
    size_t text_len;
    const llm_sample_result *sample; /* its log-probabilities; NULL for the final flush event */
} llm_generate_event;

/* Called from the generating thread for every generated token (not for EOS or a token completing a
 * stop string beyond the text before it), then once with token -1 if held text remains at the end.
 * The event and its pointers are valid only during the call. Return nonzero to stop (finish reason
 * cancelled). */
typedef int (*llm_generate_fn)(const llm_generate_event *event, void *user_data);

typedef struct llm_generate_params {
    llm_sampling_params sampling;
    int32_t max_tokens;      /* >= 1; default 256 */
    const char *const *stop; /* stop strings (UTF-8, non-empty), matched on the text across token
                                boundaries; nothing past a match is emitted. Borrowed for the call */
    size_t n_stop;
    int ignore_eos;             /* default 0: stop at the EOS tokens of generation_config.json and
                                   the tokenizer's eos_token */
    const volatile int *cancel; /* optional; checked before every step; set it nonzero from any
                                   thread or a signal handler to stop */
    llm_generate_fn on_event;   /* optional */
    void *user_data;
} llm_generate_params;

/* sampling defaults, max_tokens 256, no stop strings, EOS honoured, no cancel flag, no callback. */
llm_generate_params llm_generate_default_params(void);

typedef struct llm_generate_result {
    llm_finish_reason finish;
    int32_t n_prompt_tokens;
    int32_t n_generated; /* tokens sampled, EOS excluded */
    double prefill_ms;   /* the prompt's prefill */
    double ttft_ms;      /* from the call to the first sampled token */
    double decode_ms;    /* every later step */
    double prefill_tok_s;
    double decode_tok_s;
    int32_t n_cached_tokens; /* prompt tokens whose keys/values were reused (a session's KV or the
                                prefix cache) instead of computed */
} llm_generate_result;

/* Appends prompt (n_prompt >= 1 tokens) to the sequence, then samples up to max_tokens tokens, each
 * appended to the sequence before the next is sampled (the final token is sampled but not appended),
 * streaming them through params->on_event with their text (the model's tokenizer turns tokens into
 * complete UTF-8 only). result may be NULL. Returns LLM_OK whatever the finish reason; errors as
 * llm_prefill / llm_decode and LLM_ERR_INVALID_ARGUMENT for bad sampling or generation parameters
 * (the message names the parameter). A model without a tokenizer (random weights) generates tokens
 * only: events carry empty text, and stop strings are an LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_generate(llm_engine *engine, llm_seq_id seq, const int32_t *prompt, size_t n_prompt,
                        const llm_generate_params *params, llm_generate_result *result);

/* ---------------------------------------------------------------------------------------------- */
/* Runner: continuous batching on a thread of its own                                              */

/* A runner owns an engine and runs its loop on a thread it starts. Requests are submitted (and
 * cancelled) from any thread; each step of the loop
 *   1. admits queued requests, oldest first, up to max_running (one sequence each),
 *   2. builds ONE llm_step batch: the decode token of every running request past its prompt, plus
 *      prefill chunks of requests still reading their prompt, at most step_token_budget prompt tokens
 *      in all and no more than max_batch_tokens rows (LLM_LOGITS_LAST on a prompt's final chunk),
 *   3. samples each request that got logits with its own sampler, streams the text and finishes those
 *      that hit EOS, a stop string, max_tokens or a cancel.
 * When the KV budget runs out (LLM_ERR_KV_FULL), the most recently admitted running request is
 * preempted: its sequence is freed and it goes back to the FRONT of the queue; when admitted again it
 * prefills its prompt plus the tokens it already generated, so its output continues seamlessly (no text
 * is streamed twice) and is token for token what it would have been (the CPU kernels are batch
 * invariant and its sampler keeps its state). The loop sleeps on a condition variable when idle.
 *
 * Threads: on_event and on_done of every request are called from the runner thread, with no runner
 * lock held: they may call llm_runner_submit, llm_runner_cancel and llm_runner_get_stats (never
 * llm_runner_free or llm_runner_wait_idle). A slow callback delays every request of the runner.
 * While the runner lives, the engine and the model's tokenizer (llm_model_tokenizer) belong to the
 * runner thread: do not use them from other threads (tokenize prompts with a tokenizer of your own). */

typedef struct llm_runner llm_runner;
typedef int64_t llm_request_id; /* > 0; unique within a runner, never reused */

typedef struct llm_runner_params {
    int32_t max_running;       /* requests holding a sequence at once; 0 = the engine's n_seq_max
                                  (larger values are clipped to it). Default 0 */
    int32_t step_token_budget; /* prompt tokens prefilled per step, across requests; 0 = the engine's
                                  max_batch_tokens. Default 0 */
    int32_t max_sessions;      /* named sessions at once; 0 = 256. Default 0 */
    int64_t session_ttl_ms;    /* an idle session is closed this long after its last request ended;
                                  0 = 600000 (10 minutes), < 0 = never. Default 0 */
} llm_runner_params;

/* Defaults as documented on each field. Never fails. */
llm_runner_params llm_runner_default_params(void);

/* Starts a runner over engine.
 * engine: borrowed; must outlive the runner, and must not be used by the caller (nor by another
 *         runner) until llm_runner_free returns. Without a tokenizer, requests generate tokens only
 *         (empty text, no stop strings), as llm_generate does. Sequences created
 *         before take slots and KV blocks the runner then cannot use.
 * params: may be NULL for defaults; borrowed for the call.
 * *out:   the runner (caller owns; free with llm_runner_free), NULL on failure.
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT (negative parameters), LLM_ERR_OUT_OF_MEMORY, LLM_ERR_INTERNAL
 * (the thread could not start); the message is in llm_engine_last_error(engine). */
llm_status llm_runner_create(llm_engine *engine, const llm_runner_params *params, llm_runner **out);

/* Called exactly once per accepted request, from the runner thread, after its last on_event:
 * when it finishes, is cancelled (result->finish LLM_FINISH_CANCELLED, also when it never ran), or
 * fails. status: LLM_OK whatever the finish reason, else the error (LLM_ERR_BACKEND, LLM_ERR_KV_FULL
 * when the request alone does not fit the KV budget, LLM_ERR_TOO_MANY_SEQUENCES when no sequence slot
 * can ever be had, LLM_ERR_OUT_OF_MEMORY, ...) with result->finish LLM_FINISH_NONE and a message in
 * error. result: as llm_generate's (ttft_ms counts from the submit, prefill_ms from the first
 * admission to the prompt's logits; preemptions are included in the times). result and error are
 * valid only during the call; error is "" on success. user_data is the request's gen.user_data. */
typedef void (*llm_request_done_fn)(llm_request_id id, llm_status status, const llm_generate_result *result,
                                    const char *error, void *user_data);

/* How a request's prompt relates to its session's history (see Sessions below). */
typedef enum llm_session_prompt {
    LLM_SESSION_APPEND = 0, /* the prompt continues the history (e.g. the next turn's tokens) */
    LLM_SESSION_WHOLE = 1,  /* the prompt is the whole conversation; the longest common prefix with the
                               history is reused and the rest replaced (e.g. a re-rendered chat) */
} llm_session_prompt;

typedef struct llm_request {
    const int32_t *prompt; /* n_prompt >= 1 ids in [0, n_vocab); copied by llm_runner_submit */
    size_t n_prompt;
    /* As for llm_generate, with these differences: stop strings and sampling.logit_bias are copied by
     * llm_runner_submit; on_event is called from the runner thread with the events llm_generate
     * would give (a nonzero return cancels the request); cancel, when set, must stay valid until
     * on_done has returned, and is checked before every sample. */
    llm_generate_params gen;
    llm_request_done_fn on_done; /* optional; gets gen.user_data */
    const char *session;         /* optional session name (copied); created if it does not exist */
    llm_session_prompt session_prompt;
    int pull; /* 1: keep the request's output for llm_runner_pull (on_event and on_done
                 may still be set); its record lives until a pull returns done */
} llm_request;

/* Queues a request (FIFO). Thread-safe. *out (may be NULL) receives its id.
 * err: optional caller buffer for a one-line message (NUL-terminated when err_cap > 0).
 * Returns LLM_OK, LLM_ERR_INVALID_ARGUMENT (empty prompt, a token out of range, bad sampling or
 * generation parameters: the message names them), LLM_ERR_CONTEXT_FULL (n_prompt + max_tokens exceeds
 * the engine's n_ctx + 1 — the last sampled token is never stored, as with llm_generate — the message
 * gives the numbers; with a session, its history counts), LLM_ERR_KV_FULL
 * (the request alone would need more KV blocks than the engine has), LLM_ERR_BUSY (its session has a
 * request in progress), LLM_ERR_TOO_MANY_SEQUENCES (a new session beyond max_sessions),
 * LLM_ERR_OUT_OF_MEMORY. A refused request gets no on_done and creates no session. */
llm_status llm_runner_submit(llm_runner *runner, const llm_request *request, llm_request_id *out, char *err,
                             size_t err_cap);

/* Cancels a request, queued or running (mid-prefill or mid-decode). Thread-safe. Its sequence is
 * freed within one step and on_done reports LLM_FINISH_CANCELLED (a request that finishes otherwise
 * in the same step may still report its own reason). Returns LLM_OK, or LLM_ERR_NOT_FOUND when no
 * live request has that id (it already finished: harmless). */
llm_status llm_runner_cancel(llm_runner *runner, llm_request_id id);

/* Blocks until no request is queued or running and every on_done has returned. Thread-safe, but
 * must not be called from a callback of this runner. Requests submitted meanwhile are waited for. */
void llm_runner_wait_idle(llm_runner *runner);

typedef struct llm_runner_stats {
    int32_t running;           /* requests holding a sequence */
    int32_t queued;            /* waiting for admission (preempted ones included) */
    uint64_t submitted;        /* accepted by llm_runner_submit */
    uint64_t completed;        /* finished with LLM_OK and a reason other than cancelled */
    uint64_t cancelled;        /* finished as LLM_FINISH_CANCELLED */
    uint64_t failed;           /* finished with an error status */
    uint64_t preempted;        /* preemptions (a request may be preempted several times) */
    uint64_t steps;            /* loop steps that ran the engine */
    uint64_t decode_calls;     /* steps that decoded at least one token */
    uint64_t decode_tokens;    /* tokens decoded (decode_tokens / decode_calls = mean decode batch) */
    uint64_t prefill_tokens;   /* prompt tokens prefilled, recomputation after preemption included */
    uint64_t cached_tokens;    /* prompt tokens reused from a session's KV or the prefix cache */
    int32_t sessions;          /* open sessions */
    uint64_t sessions_expired; /* closed by the TTL */
    uint64_t sessions_parked;  /* times an idle session gave its sequence up under pressure */
    /* the engine's KV accounting as of the end of the runner's last step (llm_engine_info's fields;
     * the engine itself belongs to the runner thread) */
    int32_t kv_blocks_total, kv_blocks_used, kv_blocks_cached, n_seqs;
    uint64_t prefix_hit_tokens, computed_tokens;
} llm_runner_stats;

/* A consistent snapshot. Thread-safe. */
void llm_runner_get_stats(llm_runner *runner, llm_runner_stats *stats);

/* Pull: results without callbacks. For a request submitted with pull = 1, llm_runner_pull waits up to
 * timeout_ms (0 = do not wait, < 0 = forever) for output not yet pulled and hands it over: the tokens
 * sampled since the last pull and their text (whole UTF-8 characters; what does not fit the caller's
 * buffers stays for the next pull). When the request has ended and everything was taken, done is 1,
 * status / result / error describe the end (as on_done's) and the id is forgotten. */
typedef struct llm_pull {
    char *text; /* in: caller buffer of text_cap >= 5 bytes (NUL-terminated), or NULL: text unwanted */
    size_t text_cap;
    int32_t *tokens; /* in: caller buffer, or NULL: tokens unwanted (a NULL buffer discards its kind) */
    size_t tokens_cap;
    size_t text_len;            /* out: bytes written (NUL excluded) */
    size_t n_tokens;            /* out: tokens written */
    int done;                   /* out: 1 once the request ended and nothing is left */
    llm_status status;          /* out, when done */
    llm_generate_result result; /* out, when done */
    char error[256];            /* out, when done: "" on success */
} llm_pull;

/* Thread-safe (several threads may pull different requests). Returns LLM_OK (possibly with nothing
 * new when the timeout passed), LLM_ERR_NOT_FOUND (no pull request with that id, or already done),
 * LLM_ERR_INVALID_ARGUMENT. Must not be called from a callback of this runner with a timeout != 0. */
llm_status llm_runner_pull(llm_runner *runner, llm_request_id id, int timeout_ms, llm_pull *pull);

/* Sessions. A named session keeps a conversation's token history and the KV blocks that hold it
 * between requests, so the next turn prefills only its new tokens. A request names it in
 * llm_request.session (one request per session at a time: a second gets LLM_ERR_BUSY at submit).
 * After the request its history is the request's whole token list: the history it started from (or
 * the reused part of it), the prompt, and every token sampled, EOS and stop-string tokens included,
 * also when the request was cancelled or failed (then it ends at what was streamed).
 * The history is authoritative and the KV a cache of it: under memory pressure (KV blocks or sequence
 * slots needed by running requests) the runner parks idle sessions, least recently used first,
 * releasing their sequence (its full blocks stay in the prefix cache) before it preempts any request;
 * the next request of a parked session recomputes what the prefix cache no longer holds. Sessions idle
 * for session_ttl_ms are closed. Names are 1..LLM_SESSION_NAME_MAX-1 bytes. All functions below are
 * thread-safe; those that change sessions return once the runner thread has done it (from a callback
 * of this runner they act at once). */
#define LLM_SESSION_NAME_MAX 64

typedef struct llm_session_info {
    char name[LLM_SESSION_NAME_MAX];
    int32_t n_tokens;    /* history length */
    int32_t n_kv_tokens; /* of them held in the session's own sequence (0 when parked) */
    int busy;            /* a request is queued or running on it */
    double idle_ms;      /* since its last request ended, or since creation (0 while busy) */
} llm_session_info;

/* Creates an empty session. Returns LLM_OK, LLM_ERR_EXISTS, LLM_ERR_INVALID_ARGUMENT (bad name),
 * LLM_ERR_TOO_MANY_SEQUENCES (max_sessions reached), LLM_ERR_OUT_OF_MEMORY; message in err. */
llm_status llm_runner_session_create(llm_runner *runner, const char *name, char *err, size_t err_cap);

/* Creates session dst as a copy of idle session src: the same history, sharing src's KV blocks
 * (copy-on-write). Returns LLM_OK, LLM_ERR_NOT_FOUND, LLM_ERR_EXISTS, LLM_ERR_BUSY (src has a request),
 * LLM_ERR_INVALID_ARGUMENT, LLM_ERR_TOO_MANY_SEQUENCES, LLM_ERR_OUT_OF_MEMORY; message in err. */
llm_status llm_runner_session_fork(llm_runner *runner, const char *src, const char *dst, char *err,
                                   size_t err_cap);

/* Closes a session: its blocks return to the pool or prefix cache. A request running on it is
 * cancelled (its blocks freed within one step) and the session goes when it ends. Returns LLM_OK or
 * LLM_ERR_NOT_FOUND. */
llm_status llm_runner_session_close(llm_runner *runner, const char *name);

/* Writes up to cap sessions (in creation order) to out and the number of sessions to *n (which may
 * exceed cap). out may be NULL with cap 0. Returns LLM_OK or LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_runner_session_list(llm_runner *runner, llm_session_info *out, size_t cap, size_t *n);

/* Copies up to cap ids of a session's history to tokens and its length to *n. Returns LLM_OK,
 * LLM_ERR_NOT_FOUND, LLM_ERR_BUSY (a request is changing it), LLM_ERR_INVALID_ARGUMENT. */
llm_status llm_runner_session_history(llm_runner *runner, const char *name, int32_t *tokens, size_t cap,
                                      size_t *n);

/* Cancels every request (each gets its on_done, from the runner thread), stops and joins the thread
 * and frees the runner; every sequence the runner created is freed, and the engine is the caller's
 * again. Must not be called from a callback of this runner. NULL is a no-op. */
void llm_runner_free(llm_runner *runner);

#ifdef __cplusplus
}
#endif

#endif /* LLAMAC_H */
