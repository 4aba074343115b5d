/* Hyper-parameters of a supported architecture, read from a Hugging Face config.json (both the
 * transformers-4 and transformers-5 layouts) and generation_config.json. */
#ifndef LLM_MODEL_HPARAMS_H
#define LLM_MODEL_HPARAMS_H

#include <stdint.h>

#include "core/error.h"
#include "llamac.h"

typedef enum llm_arch { LLM_ARCH_LLAMA, LLM_ARCH_QWEN2, LLM_ARCH_QWEN3 } llm_arch;

typedef enum llm_rope_kind { LLM_ROPE_DEFAULT, LLM_ROPE_LLAMA3 } llm_rope_kind;

typedef struct llm_hparams {
    llm_arch arch;
    char architecture[64]; /* the class name, e.g. "LlamaForCausalLM" */
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    double rms_norm_eps;
    /* RoPE */
    llm_rope_kind rope_kind;
    double rope_theta;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3 only */
    int32_t rope_orig_ctx;                                           /* llama3 only */
    int rope_interleaved; /* pairs (2i, 2i+1): GGUF Llama files, whose Q/K rows llama.cpp permuted */
    /* structure */
    int tied_embeddings;
    int qkv_bias, o_bias, mlp_bias, qk_norm;
    /* special tokens (generation_config.json wins over config.json) */
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
