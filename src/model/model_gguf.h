/* GGUF model files (llama.cpp's layout of llama / qwen2 / qwen3): reading them into an llm_model with
 * the tensors used in place from the map, and writing an llm_model out as one.
 *
 * llama.cpp's conventions, which both directions follow:
 *  - hyper-parameters under "{arch}." keys (block_count, embedding_length, feed_forward_length,
 *    attention.head_count[_kv], attention.layer_norm_rms_epsilon, rope.freq_base, context_length,
 *    attention.key_length / value_length, rope.dimension_count);
 *  - tensor names token_embd, output_norm, output (absent: tied embeddings), blk.N.{attn_norm, attn_q,
 *    attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down}
 *    .weight (and .bias), rope_freqs (Llama 3.1 scaling as per-dimension divisors);
 *  - dims reversed (dims[0] = columns, the fastest-varying);
 *  - Llama's Q and K rows permuted per head so that RoPE rotates adjacent pairs (2i, 2i+1) where
 *    Hugging Face rotates (i, i + hd/2). The reader keeps that layout and sets hp.rope_interleaved (the
 *    attention scores q.k are invariant under a permutation shared by q and k); the writer applies it. */
#ifndef LLM_MODEL_GGUF_H
#define LLM_MODEL_GGUF_H

#include <stddef.h>

#include "core/quant.h"
#include "io/gguf.h"
#include "model/model_internal.h"

/* 1 if path is a regular file starting with the GGUF magic. */
int llm_path_is_gguf(const char *path);

/* If dir is a directory holding exactly one *.gguf file and no *.safetensors, writes that file's path
 * to out and returns 1; 0 otherwise (two or more .gguf files: 0 with a message in err naming them, so
 * that the caller can report the ambiguity rather than "config.json missing"). */
int llm_dir_single_gguf(const char *dir, char *out, size_t cap, llm_error *err);

/* The GGUF name of a tensor llm_model_bind asks for by its Hugging Face name ("model.layers.3.mlp.
 * up_proj.weight" -> "blk.3.ffn_up.weight"). Returns 0, or -1 for a name outside the mapping. */
int llm_gguf_name_from_hf(const char *hf, char *out, size_t cap);

/* Reads the hyper-parameters of an open GGUF file into hp (errors name the key, its type and offset).
 * model_gguf_hparams.c. */
llm_status llm_gguf_read_hparams(const llm_gguf *g, llm_hparams *hp, llm_error *err);

/* Opens path (already known to be GGUF) into m: m->gguf, m->hp, every tensor bound (presence, shape,
 * type, alignment checked), the embedded tokenizer and chat template when the file has one. */
llm_status llm_model_load_gguf(llm_model *m, const char *path, llm_error *err);

/* Per-dimension RoPE divisors exactly as llama.cpp's converter computes rope_freqs for Llama 3.1
 * scaling (hp->rope_kind == LLM_ROPE_LLAMA3), head_dim/2 of them. rope.c. */
void llm_rope_llama3_factors(const llm_hparams *hp, float *factors);

/* Writing: see model_gguf_write.c. */
typedef struct llm_gguf_write_params {
    const char *name; /* general.name; NULL: the architecture */
    /* progress over the tensors written (may be NULL) */
    void (*progress_fn)(float fraction, void *user_data);
    void *progress_user_data;
} llm_gguf_write_params;

/* Writes m as a llama.cpp-compatible GGUF file at path (atomically: path.tmp then rename), every matrix
 * in the dtype m holds it in (quantize by loading m with llm_model_params.quantize), vectors (norms,
 * biases, rope_freqs) in F32 as llama.cpp's converter writes them. m must compute on the CPU (its
 * tensors in host memory). m's
 * tokenizer goes in through llm_tokenizer_write_gguf; a model without one (random weights) gets a
 * minimal byte-level vocabulary of n_vocab tokens (see model_gguf_write.c). */
llm_status llm_model_write_gguf(llm_model *m, const char *path, const llm_gguf_write_params *params,
                                llm_error *err);

#endif
