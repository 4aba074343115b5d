/* Hyper-parameters of a supported architecture, read from a Hugging Face config.json (both the
 * transformers-4 and transformers-5 layouts) and generation_config.json. */
#ifndef LLM_MODEL_HPARAMS_H
#define LLM_MODEL_HPARAMS_H

#include <stdint.h>

#include "core/error.h"
#include "llamac.h"

typedef enum llm_arch { LLM_ARCH_LLAMA, LLM_ARCH_QWEN2, LLM_ARCH_QWEN3 } llm_arch;

/* DEFAULT: base^(-2i/d). LLAMA3: Llama 3.1's smooth band scaling from its four parameters.
 * FREQ_FACTORS: base^(-2i/d) / rope_freq_factors[i], the per-dimension factors llama.cpp stores in a
 * GGUF file's rope_freqs.weight tensor instead of the four parameters. LINEAR: every frequency divided
 * by rope_factor (GGUF {arch}.rope.scaling.type = linear). */
typedef enum llm_rope_kind {
    LLM_ROPE_DEFAULT,
    LLM_ROPE_LLAMA3,
    LLM_ROPE_FREQ_FACTORS,
    LLM_ROPE_LINEAR
} llm_rope_kind;

#define LLM_MAX_HEAD_DIM 512

typedef struct llm_hparams {
    llm_arch arch;
    char architecture[64]; /* the class name, e.g. "LlamaForCausalLM" */
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    double rms_norm_eps;
    /* RoPE */
    llm_rope_kind rope_kind;
    double rope_theta;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3 (rope_factor: linear too) */
    int32_t rope_orig_ctx;                                           /* llama3 only */
    float rope_freq_factors[LLM_MAX_HEAD_DIM / 2];                   /* FREQ_FACTORS: head_dim/2 of them */
    int rope_interleaved; /* pairs (2i, 2i+1): GGUF Llama files, whose Q/K rows llama.cpp permuted */
    /* structure */
    int tied_embeddings;
    int qkv_bias, o_bias, mlp_bias, qk_norm;
    /* special tokens (generation_config.json wins over config.json; GGUF: tokenizer.ggml.bos_token_id,
     * eos_token_id, eot_token_id, eom_token_id) */
    int32_t bos_token_id;
    int32_t n_eos;
    int32_t eos_token_ids[LLM_MAX_EOS_TOKENS];
    char config_dtype[16]; /* "torch_dtype"/"dtype" as written, informational */
} llm_hparams;

/* Reads dir/config.json and (if present) dir/generation_config.json. Errors name the file, the key and
 * its line:column. */
llm_status llm_hparams_load(const char *dir, llm_hparams *hp, llm_error *err);

const char *llm_arch_family(llm_arch arch); /* "llama", "qwen2", "qwen3" */

/* RoPE inverse frequencies, head_dim/2 of them, with the configured scaling applied exactly as
 * transformers computes them. */
void llm_rope_inv_freq(const llm_hparams *hp, double *inv_freq);

#endif
