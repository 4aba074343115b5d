/* The byte-level BPE tokenizer that llama.cpp embeds in GGUF files (tokenizer.ggml.*), read and written.
 *
 * GGUF keeps only what llama.cpp needs: the token strings in id order with a type per token, the merges,
 * a pre-tokenizer *name* (tokenizer.ggml.pre), special token ids, add_bos/add_eos flags and the chat
 * template. Reading rebuilds the Hugging Face pipeline that name stands for (normalizer, split regex,
 * ByteLevel, decoder, post-processor), so encoding gives the ids of the original tokenizer.json;
 * writing checks that the tokenizer's pipeline is the one the name stands for, so the file reads back
 * to a tokenizer that behaves identically.
 *
 * Token types (llama.cpp's numbering): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 * 6 byte. Control tokens are HF's special added tokens, user-defined ones its non-special added tokens
 * (all with normalized=false, lstrip/rstrip/single_word false, as llama.cpp matches them on raw text).
 * Unused tokens at the end of the list ("[PAD151665]" ... that convert_hf_to_gguf adds up to the
 * embedding's row count) are ids without a token, as in HF: in range of llm_tokenizer_n_vocab, skipped
 * by decode, never produced by encode.
 *
 * Pre-tokenizer names understood: "llama-bpe" (also "llama3", "llama-v3": Llama 3's split regex,
 * ignore_merges, BOS by default), "qwen2" (NFC, then Qwen2's split regex), "gpt-2" (ByteLevel with the
 * GPT-2 regex), "smollm" (single digits, then ByteLevel with the GPT-2 regex). Any other name, including
 * llama.cpp's "default" (a splitter no HF tokenizer uses), is LLM_ERR_UNSUPPORTED naming it. */
#ifndef LLM_TOKENIZER_TOK_GGUF_H
#define LLM_TOKENIZER_TOK_GGUF_H

#include <stdint.h>

#include "core/error.h"
#include "io/gguf.h"
#include "llamac.h"

/* Builds a tokenizer from g's tokenizer.ggml.* keys and tokenizer.chat_template.
 * Reads: model (must be "gpt2"), pre, tokens (required), token_type (optional: all normal when absent),
 * merges (required), bos/eos/unknown/padding/eot_token_id (optional, < the token count), add_bos_token
 * (default: true for the llama-bpe family, false otherwise, as llama.cpp), add_eos_token (default false),
 * chat_template (optional).
 * *out: a new tokenizer (caller owns; llm_tokenizer_free), NULL on failure. err (may be NULL) names the
 * file, the key and the index, e.g. `m.gguf: tokenizer.ggml.merges[1234]: "ab c": "c" is not a token`.
 * Returns LLM_OK; LLM_ERR_NOT_FOUND when g has no tokenizer.ggml.model (no embedded tokenizer);
 * LLM_ERR_UNSUPPORTED (another model or pre-tokenizer); LLM_ERR_BAD_FORMAT (missing or mistyped keys,
 * length mismatches, ids out of range, unknown token types, duplicate tokens, bad merges, invalid
 * UTF-8); LLM_ERR_OUT_OF_MEMORY; LLM_ERR_INVALID_ARGUMENT (NULL g or out). */
llm_status llm_tokenizer_from_gguf(const llm_gguf *g, const llm_tokenizer_params *params, llm_tokenizer **out,
                                   llm_error *err);

/* Adds the tokenizer's keys to w as llama.cpp's convert_hf_to_gguf writes them: tokenizer.ggml.model
 * "gpt2", .pre, .tokens (id order; ids no token has become "[PAD<id>]" of type unused), .token_type
 * (int32), .merges ("left right", in rank order), .bos/.eos/.unknown/.padding(/.eot)_token_id (uint32,
 * those the tokenizer has), .add_bos_token / .add_eos_token (what its post-processor adds),
 * tokenizer.chat_template (when it has one). One deliberate difference: an added token that is not
 * special is written user-defined even when it looks like a control token ("<|fim_prefix|>" of Qwen3),
 * where convert_hf_to_gguf writes control, so that it reads back non-special as in HF (llama.cpp itself
 * re-marks such tokens as control when it loads them).
 * pre: the tokenizer.ggml.pre to write, or NULL to name the one the tokenizer's pipeline matches.
 * Either way the pipeline must be exactly the one that name stands for (see above), byte-level BPE
 * without byte fallback or subword affixes, a ByteLevel decoder, added tokens without strip/single_word
 * flags, a post-processor that adds at most BOS before and EOS after; otherwise LLM_ERR_UNSUPPORTED
 * saying what differs, and nothing is added to w. Tokens or merges GGUF cannot hold (a NUL byte, a
 * space inside a merge part) are LLM_ERR_UNSUPPORTED naming the id. Other returns: LLM_ERR_INVALID_ARGUMENT
 * (NULL tok or w; an unknown pre), LLM_ERR_OUT_OF_MEMORY, and the writer's own errors (e.g. a key that
 * is already in w). On a writer error some keys may already have been added. */
llm_status llm_tokenizer_write_gguf(const llm_tokenizer *tok, llm_gguf_writer *w, const char *pre,
                                    llm_error *err);

/* As llm_tokenizer_write_gguf, with the token list padded with "[PAD<id>]" unused tokens up to n_tokens
 * entries (the model's vocab_size, the row count of its embedding, which llama.cpp requires to equal the
 * token count; Qwen's is larger than its tokenizer). n_tokens below llm_tokenizer_n_vocab is
 * LLM_ERR_INVALID_ARGUMENT; 0 means no padding. */
llm_status llm_tokenizer_write_gguf_padded(const llm_tokenizer *tok, llm_gguf_writer *w, const char *pre,
                                           int32_t n_tokens, llm_error *err);

/* The end-of-turn id read from tokenizer.ggml.eot_token_id, or -1 (always -1 for a tokenizer loaded from
 * tokenizer.json, where HF has no such notion). */
int32_t llm_tokenizer_eot_id(const llm_tokenizer *tok);

#endif
