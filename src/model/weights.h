/* The tensors of a Llama / Qwen2 / Qwen3 decoder, bound by name from the safetensors files.
 * A tensor the configuration does not use has data == NULL. */
#ifndef LLM_MODEL_WEIGHTS_H
#define LLM_MODEL_WEIGHTS_H

#include "backend/backend.h"

typedef struct llm_layer_weights {
    llm_tensor attn_norm;            /* [D] input_layernorm */
    llm_tensor wq, wk, wv, wo;       /* [H*hd][D], [KV*hd][D], [KV*hd][D], [D][H*hd] */
    llm_tensor bq, bk, bv, bo;       /* biases: [H*hd], [KV*hd], [KV*hd], [D] (optional) */
    llm_tensor q_norm, k_norm;       /* [hd] (Qwen3) */
    llm_tensor ffn_norm;             /* [D] post_attention_layernorm */
    llm_tensor w_gate, w_up;         /* [F][D] */
    llm_tensor w_down;               /* [D][F] */
    llm_tensor b_gate, b_up, b_down; /* [F], [F], [D] (optional, Llama mlp_bias) */
} llm_layer_weights;

typedef struct llm_weights {
    llm_tensor tok_embd;       /* [V][D] model.embed_tokens */
    llm_tensor output_norm;    /* [D] model.norm */
    llm_tensor output;         /* [V][D] lm_head, or tok_embd when embeddings are tied */
    llm_layer_weights *layers; /* [n_layer] */
} llm_weights;

#endif
