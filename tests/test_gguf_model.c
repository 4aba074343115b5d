/* GGUF model files: every HF fixture converted to GGUF gives the logits of the safetensors original
 * (bit for bit for Qwen; for Llama, whose Q/K rows llama.cpp's layout permutes, the attention's q.k
 * sums the same products in another order, so equal to float rounding); quantized copies stay within
 * documented tolerances; model-level corrupt files fail with their specific status and a message
 * naming the key or tensor; the CLI converts and generates from the file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/quant.h"
#include "io/gguf.h"
#include "model/model_gguf.h"
#include "test_util.h"

static char tmpdir[512];

static llm_model *load(const char *path, llm_quantize q, char *err, size_t cap, llm_status *st_out) {
    llm_model_params mp = llm_model_default_params();
    mp.backend = LLM_BACKEND_CPU;
    mp.n_threads = 2;
    mp.quantize = q;
    /* the reference kernels, as the parity tests: the fast ones round activations to bf16 where the
     * CPU has AVX512_BF16, which turns the Llama layout's last-bit differences into bf16 steps */
    mp.cpu_kernels = LLM_CPU_KERNELS_REF;
    llm_model *m = NULL;
    llm_status st = llm_model_load(path, &mp, &m, err, cap);
    if (st_out) *st_out = st;
    return m;
}

/* logits of every position of toks: malloc'd [n][n_vocab] */
static float *logits_of(llm_model *m, const int32_t *toks, int n) {
    llm_model_info mi;
    llm_model_get_info(m, &mi);
    llm_engine_params ep = llm_engine_default_params();
    ep.n_ctx = n + 1;
    ep.n_seq_max = 1;
    llm_engine *e = NULL;
    llm_seq_id seq;
    float *out = malloc((size_t)n * (size_t)mi.n_vocab * sizeof *out);
    if (!out || llm_engine_create(m, &ep, &e) != LLM_OK || llm_seq_create(e, &seq) != LLM_OK ||
        llm_prefill(e, seq, toks, (size_t)n, LLM_LOGITS_ALL, out, (size_t)n * (size_t)mi.n_vocab, NULL) !=
            LLM_OK) {
        fprintf(stderr, "forward failed: %s\n", e ? llm_engine_last_error(e) : llm_model_last_error(m));
        free(out);
        out = NULL;
    }
    llm_engine_free(e);
    return out;
}

static llm_status write_gguf(llm_model *m, const char *path, char *msg, size_t cap) {
    llm_error e;
    llm_error_clear(&e);
    llm_status st = llm_model_write_gguf(m, path, NULL, &e);
    snprintf(msg, cap, "%s", e.msg);
    return st;
}

/* ---- 1. every fixture: safetensors == GGUF -------------------------------------------------------- */

/* Llama's tolerance: the products q_i k_i are the same numbers, summed in another order (the permuted
 * head layout), and llama3 RoPE comes from rope_freqs divisors (f32) instead of the formula: a few ulps
 * in the scores, ~1e-6 relative in the logits. 1e-4 leaves room and still catches any real mistake (a
 * wrong permutation moves logits by O(1)). */
#define LLAMA_GGUF_TOL 1e-4
/* The same for quantized Llama weights: the matmuls quantize their activations (Q8_0 / Q8_K blocks), and
 * an attention output that differs in its last bit can round to the neighbouring int8 step, 1/127 of
 * its block's maximum; a few such steps move the logits by ~1e-3 of their range. */
#define LLAMA_GGUF_QUANT_TOL 0.02

static void check_fixture(const char *name, int *n_q8_checked) {
    char dir[1024], path[1024], err[1024];
    tu_fixture(name, dir, sizeof dir);
    tu_reference ref;
    if (tu_load_reference(dir, &ref) != 0) {
        TU_CHECK(0, "%s: no reference", name);
        return;
    }
    llm_status st;
    llm_model *st_model = load(dir, LLM_QUANTIZE_NONE, err, sizeof err, &st);
    TU_CHECK(st_model, "%s: %s", name, err);
    if (!st_model) {
        tu_free_reference(&ref);
        return;
    }
    llm_model_info a, b;
    llm_model_get_info(st_model, &a);
    snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, name);
    st = write_gguf(st_model, path, err, sizeof err);
    TU_CHECK(st == LLM_OK, "%s: write: %s", name, err);
    llm_model *gg = load(path, LLM_QUANTIZE_NONE, err, sizeof err, &st);
    TU_CHECK(gg, "%s: load gguf: %s (%s)", name, err, llm_status_name(st));
    if (gg) {
        llm_model_get_info(gg, &b);
        TU_CHECK(a.n_vocab == b.n_vocab && a.n_embd == b.n_embd && a.n_layer == b.n_layer &&
                     a.n_head == b.n_head && a.n_head_kv == b.n_head_kv && a.head_dim == b.head_dim &&
                     a.n_ff == b.n_ff && a.n_ctx_train == b.n_ctx_train &&
                     a.tied_embeddings == b.tied_embeddings && a.has_qkv_bias == b.has_qkv_bias &&
                     a.has_qk_norm == b.has_qk_norm && a.n_params == b.n_params &&
                     a.rope_theta == b.rope_theta && strcmp(a.family, b.family) == 0,
                 "%s: hyper-parameters differ after the round trip", name);
        TU_CHECK(fabs(a.rms_norm_eps - b.rms_norm_eps) <= 1e-6 * a.rms_norm_eps, "%s: eps %g vs %g", name,
                 a.rms_norm_eps, b.rms_norm_eps);
        TU_CHECK(strcmp(a.rope_type, "llama3") != 0 || strcmp(b.rope_type, "freq_factors") == 0,
                 "%s: llama3 RoPE comes back as rope_freqs, got %s", name, b.rope_type);
        TU_CHECK(b.bos_token_id == a.bos_token_id && b.n_eos >= 1 && b.eos_token_ids[0] == a.eos_token_ids[0],
                 "%s: bos/eos %d/%d vs %d/%d", name, b.bos_token_id, b.eos_token_ids[0], a.bos_token_id,
                 a.eos_token_ids[0]);
        float *x = logits_of(st_model, ref.tokens, ref.n_tokens),
              *y = logits_of(gg, ref.tokens, ref.n_tokens);
        const size_t n = (size_t)ref.n_tokens * (size_t)a.n_vocab;
        TU_CHECK(x && y, "%s: forward", name);
        if (x && y) {
            if (strcmp(a.family, "llama") == 0) {
                const double d = tu_rel_diff(y, x, n);
                TU_CHECK(d <= LLAMA_GGUF_TOL, "%s: GGUF logits differ by %.3g (tolerance %g)", name, d,
                         LLAMA_GGUF_TOL);
            } else {
                TU_CHECK(memcmp(x, y, n * sizeof *x) == 0, "%s: GGUF logits not bit-identical (max rel %.3g)",
                         name, tu_rel_diff(y, x, n));
            }
            /* and the GGUF model against the HF reference, as test_parity checks the original */
            const double dr = tu_rel_diff(y, ref.logits, n);
            TU_CHECK(dr <= 1e-3, "%s: GGUF logits vs HF reference: %.3g", name, dr);
        }
        /* GGUF -> GGUF: a model read from GGUF is already permuted and must not be permuted again */
        char path2[1100];
        snprintf(path2, sizeof path2, "%s/%s.again.gguf", tmpdir, name);
        st = write_gguf(gg, path2, err, sizeof err);
        TU_CHECK(st == LLM_OK, "%s: rewrite: %s", name, err);
        llm_model *gg2 = load(path2, LLM_QUANTIZE_NONE, err, sizeof err, &st);
        TU_CHECK(gg2, "%s: load rewritten: %s", name, err);
        float *z = gg2 ? logits_of(gg2, ref.tokens, ref.n_tokens) : NULL;
        TU_CHECK(z && y && memcmp(y, z, n * sizeof *z) == 0, "%s: GGUF -> GGUF changed the logits", name);
        free(z);
        llm_model_free(gg2);

        /* Q8_0 at load, then written and read back: the same bytes, so the same logits; and close to the
         * float model's. Tolerance 0.06 of the largest logit: measured 0.022 .. 0.035 on these fixtures
         * (weights and, in the matmuls, activations both in 8-bit blocks; the fixtures' logits are small
         * and close together, so the error is large relative to their maximum). */
        llm_model *q = load(dir, LLM_QUANTIZE_Q8_0, err, sizeof err, &st);
        TU_CHECK(q, "%s: load q8_0: %s", name, err);
        if (q && x) {
            llm_model_info qi;
            llm_model_get_info(q, &qi);
            TU_CHECK(qi.bytes_by_dtype[LLM_DTYPE_Q8_0] > 0 && qi.weight_bytes < a.weight_bytes,
                     "%s: q8_0 bytes %llu of %llu", name,
                     (unsigned long long)qi.bytes_by_dtype[LLM_DTYPE_Q8_0],
                     (unsigned long long)qi.weight_bytes);
            float *qx = logits_of(q, ref.tokens, ref.n_tokens);
            const double d = qx ? tu_rel_diff(qx, x, n) : INFINITY;
            printf("test_gguf_model: %-18s q8_0 vs float: %.3g\n", name, d);
            TU_CHECK(d <= 0.06, "%s: q8_0 logits differ from float by %.3g (tolerance 0.06)", name, d);
            char qpath[1100];
            snprintf(qpath, sizeof qpath, "%s/%s.q8_0.gguf", tmpdir, name);
            st = write_gguf(q, qpath, err, sizeof err);
            TU_CHECK(st == LLM_OK, "%s: write q8_0: %s", name, err);
            llm_model *qg = load(qpath, LLM_QUANTIZE_NONE, err, sizeof err, &st);
            TU_CHECK(qg, "%s: load q8_0 gguf: %s", name, err);
            float *qy = qg ? logits_of(qg, ref.tokens, ref.n_tokens) : NULL;
            if (qx && qy) {
                if (strcmp(a.family, "llama") == 0)
                    TU_CHECK(tu_rel_diff(qy, qx, n) <= LLAMA_GGUF_QUANT_TOL,
                             "%s: q8_0 GGUF vs q8_0 at load: %.3g", name, tu_rel_diff(qy, qx, n));
                else
                    TU_CHECK(memcmp(qx, qy, n * sizeof *qx) == 0,
                             "%s: q8_0 GGUF not bit-identical to q8_0 at load", name);
                ++*n_q8_checked;
            }
            free(qx);
            free(qy);
            llm_model_free(qg);
        }
        llm_model_free(q);
        free(x);
        free(y);
    }
    llm_model_free(gg);
    llm_model_free(st_model);
    tu_free_reference(&ref);
}

/* Cosine similarity of two logit arrays: a broken block layout (nibble order, scale packing) leaves
 * logits uncorrelated with the float model's, which a max-difference bound alone might not show. */
static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* ---- 2. Q4_K on a shape with whole 256-blocks: the random "tiny" preset ------------------------------ */

static void check_random_quant(void) {
    const int32_t toks[6] = {1, 17, 4242, 999, 65000, 3};
    llm_model_params mp = llm_model_default_params();
    mp.backend = LLM_BACKEND_CPU;
    mp.n_threads = 2;
    mp.cpu_kernels = LLM_CPU_KERNELS_REF;
    char err[1024];
    llm_model *f = NULL, *q4 = NULL, *q8 = NULL;
    TU_CHECK(llm_model_create_random("tiny", LLM_DTYPE_BF16, 7, &mp, &f, err, sizeof err) == LLM_OK, "%s",
             err);
    TU_CHECK(llm_model_create_random("tiny", LLM_DTYPE_Q4_K, 7, &mp, &q4, err, sizeof err) == LLM_OK, "%s",
             err);
    TU_CHECK(llm_model_create_random("tiny", LLM_DTYPE_Q8_0, 7, &mp, &q8, err, sizeof err) == LLM_OK, "%s",
             err);
    if (!f || !q4 || !q8) goto done;
    llm_model_info fi, qi4, qi8;
    llm_model_get_info(f, &fi);
    llm_model_get_info(q4, &qi4);
    llm_model_get_info(q8, &qi8);
    /* every matrix quantized (512 and 1536 columns are whole Q4_K blocks); only norms stay BF16 */
    TU_CHECK(qi4.bytes_by_dtype[LLM_DTYPE_Q4_K] > 0 && qi4.bytes_by_dtype[LLM_DTYPE_Q8_0] == 0,
             "q4_k bytes %llu, q8_0 fallback bytes %llu",
             (unsigned long long)qi4.bytes_by_dtype[LLM_DTYPE_Q4_K],
             (unsigned long long)qi4.bytes_by_dtype[LLM_DTYPE_Q8_0]);
    TU_CHECK(qi4.weight_bytes * 3 < fi.weight_bytes && qi8.weight_bytes * 3 > fi.weight_bytes * 1.5,
             "sizes bf16 %llu, q8_0 %llu, q4_k %llu", (unsigned long long)fi.weight_bytes,
             (unsigned long long)qi8.weight_bytes, (unsigned long long)qi4.weight_bytes);
    TU_CHECK(qi4.n_params == fi.n_params, "parameter count changed by quantizing");
    float *x = logits_of(f, toks, 6), *y4 = logits_of(q4, toks, 6), *y8 = logits_of(q8, toks, 6);
    const size_t n = 6 * (size_t)fi.n_vocab;
    /* Tolerances (max |diff| / max |logit|), measured 0.19 (Q4_K) and 0.013 (Q8_0) with seed 7, cosine
     * similarity 0.983 and 0.99992 (a broken block layout gives ~0): random
     * weights are the hard case for 4 bits (uniform, no outliers to spend the scales on); Q4_K's ~7%
     * relative error per weight, plus 8-bit activations, over two layers and the tied output. */
    if (x && y4 && y8) {
        printf("test_gguf_model: random tiny vs bf16: q4_k %.3g (cosine %.5f), q8_0 %.3g (cosine %.6f)\n",
               tu_rel_diff(y4, x, n), cosine(y4, x, n), tu_rel_diff(y8, x, n), cosine(y8, x, n));
        TU_CHECK(cosine(y4, x, n) >= 0.97 && cosine(y8, x, n) >= 0.999, "cosine q4_k %.5f, q8_0 %.6f",
                 cosine(y4, x, n), cosine(y8, x, n));
    }
    if (x && y4)
        TU_CHECK(tu_rel_diff(y4, x, n) <= 0.3, "q4_k vs bf16: %.3g (tolerance 0.3)", tu_rel_diff(y4, x, n));
    if (x && y8)
        TU_CHECK(tu_rel_diff(y8, x, n) <= 0.03, "q8_0 vs bf16: %.3g (tolerance 0.03)", tu_rel_diff(y8, x, n));
    TU_CHECK(x && y4 && y8, "forward");
    /* the Q4_K model written to GGUF reads back with the same bytes (a Llama: permuted rows, so within
     * LLAMA_GGUF_QUANT_TOL) */
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny.q4_k.gguf", tmpdir);
    llm_status st = write_gguf(q4, path, err, sizeof err);
    TU_CHECK(st == LLM_OK, "write q4_k: %s (%s)", err, llm_status_name(st));
    if (st == LLM_OK) {
        llm_model *g = load(path, LLM_QUANTIZE_NONE, err, sizeof err, &st);
        TU_CHECK(g, "load q4_k gguf: %s", err);
        float *z = g ? logits_of(g, toks, 6) : NULL;
        if (z && y4)
            TU_CHECK(tu_rel_diff(z, y4, n) <= LLAMA_GGUF_QUANT_TOL, "q4_k gguf vs q4_k: %.3g",
                     tu_rel_diff(z, y4, n));
        free(z);
        llm_model_free(g);
    }
    free(x);
    free(y4);
    free(y8);
done:
    llm_model_free(f);
    llm_model_free(q4);
    llm_model_free(q8);
}

/* ---- 3. corrupt model-level files ----------------------------------------------------------------- */

/* A tiny valid Llama GGUF (1 layer, D 64, 4 heads of 16, 2 KV heads, F 96, vocab 40) written through
 * the container writer, with one thing changed per case. */
typedef struct mutation {
    const char *skip_key;    /* key left out */
    const char *string_key;  /* key written as a string instead */
    const char *skip_tensor; /* tensor left out */
    const char *tensor;      /* tensor whose dims/type change: */
    uint64_t dims[2];        /* non-zero: these dims (GGUF order) */
    int n_dims;              /* with dims */
    uint32_t type;           /* non-zero: this type (F16 = 1 is written; others patched in) */
    const char *arch;        /* general.architecture value */
    int32_t head_count_kv;   /* 0: 2 */
    int n_tokens;            /* 0: 40 */
    int rope_freqs;          /* 0: none; else that many factors */
    const char *scaling;     /* {arch}.rope.scaling.type */
    int32_t eos;             /* 0: 2 */
    int32_t key_length;      /* 0: absent */
    long truncate;           /* bytes cut off the end */
} mutation;

static float payload[64 * 96 * 2];

static int add_u32(llm_gguf_writer *w, const mutation *mu, const char *key, uint32_t v) {
    if (mu->skip_key && strcmp(mu->skip_key, key) == 0) return 0;
    if (mu->string_key && strcmp(mu->string_key, key) == 0)
        return llm_gguf_writer_add_string(w, key, "12", 2, NULL) != LLM_OK;
    return llm_gguf_writer_add_u32(w, key, v, NULL) != LLM_OK;
}

static int add_t(llm_gguf_writer *w, const mutation *mu, const char *name, uint64_t d0, uint64_t d1) {
    if (mu->skip_tensor && strcmp(mu->skip_tensor, name) == 0) return 0;
    uint64_t dims[2] = {d0, d1};
    int nd = d1 ? 2 : 1;
    uint32_t type = LLM_GGML_F32;
    if (mu->tensor && strcmp(mu->tensor, name) == 0) {
        if (mu->n_dims) {
            nd = mu->n_dims;
            dims[0] = mu->dims[0];
            dims[1] = mu->dims[1];
        }
        if (mu->type == LLM_GGML_F16 || mu->type == LLM_GGML_Q8_0) type = mu->type;
        if (mu->type == LLM_GGML_Q4_0) type = LLM_GGML_Q8_0; /* patched to Q4_0 after writing */
    }
    uint32_t be, bb;
    llm_ggml_type_block(type, &be, &bb);
    const uint64_t n = dims[0] * (nd == 2 ? dims[1] : 1);
    static const float factors[16] = {1, 1, 1, 1.5f, 2, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}; /* rope_freqs */
    const void *data = strcmp(name, "rope_freqs.weight") == 0 ? (const void *)factors : (const void *)payload;
    return llm_gguf_writer_add_tensor(w, name, type, nd, dims, data, (size_t)(n / be * bb), NULL) != LLM_OK;
}

/* Rewrites the ggml type of tensor `name` in the file's tensor infos. */
static int patch_type(const char *path, const char *name, uint32_t type) {
    size_t len = 0;
    char *data = tu_read_file(path, &len);
    if (!data) return -1;
    const size_t nl = strlen(name);
    char *p = memmem(data, len, name, nl);
    int rc = -1;
    if (p) {
        uint32_t nd;
        memcpy(&nd, p + nl, 4);
        memcpy(p + nl + 4 + 8 * nd, &type, 4);
        rc = tu_write_file(path, data, len);
    }
    free(data);
    return rc;
}

static int write_tiny(const char *path, const mutation *mu) {
    llm_gguf_writer *w = NULL;
    if (llm_gguf_writer_create(path, &w, NULL) != LLM_OK) return -1;
    const char *arch = mu->arch ? mu->arch : "llama";
    int bad = 0;
    if (!(mu->skip_key && strcmp(mu->skip_key, "general.architecture") == 0))
        bad |= llm_gguf_writer_add_string(w, "general.architecture", arch, strlen(arch), NULL) != LLM_OK;
    bad |= add_u32(w, mu, "llama.block_count", 1);
    bad |= add_u32(w, mu, "llama.context_length", 128);
    bad |= add_u32(w, mu, "llama.embedding_length", 64);
    bad |= add_u32(w, mu, "llama.feed_forward_length", 96);
    bad |= add_u32(w, mu, "llama.attention.head_count", 4);
    bad |= add_u32(w, mu, "llama.attention.head_count_kv",
                   (uint32_t)(mu->head_count_kv ? mu->head_count_kv : 2));
    if (mu->key_length) bad |= add_u32(w, mu, "llama.attention.key_length", (uint32_t)mu->key_length);
    if (!(mu->skip_key && strcmp(mu->skip_key, "llama.attention.layer_norm_rms_epsilon") == 0))
        bad |= llm_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, NULL) != LLM_OK;
    bad |= llm_gguf_writer_add_f32(w, "llama.rope.freq_base", 10000.0f, NULL) != LLM_OK;
    if (mu->scaling)
        bad |= llm_gguf_writer_add_string(w, "llama.rope.scaling.type", mu->scaling, strlen(mu->scaling),
                                          NULL) != LLM_OK;
    const int n_tok = mu->n_tokens ? mu->n_tokens : 40;
    char names[64][8];
    const char *toks[64];
    for (int i = 0; i < n_tok && i < 64; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        toks[i] = names[i];
    }
    bad |= llm_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", toks, (size_t)n_tok, NULL) != LLM_OK;
    bad |= add_u32(w, mu, "tokenizer.ggml.bos_token_id", 1);
    bad |= add_u32(w, mu, "tokenizer.ggml.eos_token_id", (uint32_t)(mu->eos ? mu->eos : 2));
    if (mu->rope_freqs) bad |= add_t(w, mu, "rope_freqs.weight", (uint64_t)mu->rope_freqs, 0);
    bad |= add_t(w, mu, "token_embd.weight", 64, 40);
    bad |= add_t(w, mu, "blk.0.attn_norm.weight", 64, 0);
    bad |= add_t(w, mu, "blk.0.attn_q.weight", 64, 64);
    bad |= add_t(w, mu, "blk.0.attn_k.weight", 64, 32);
    bad |= add_t(w, mu, "blk.0.attn_v.weight", 64, 32);
    bad |= add_t(w, mu, "blk.0.attn_output.weight", 64, 64);
    bad |= add_t(w, mu, "blk.0.ffn_norm.weight", 64, 0);
    bad |= add_t(w, mu, "blk.0.ffn_gate.weight", 64, 96);
    bad |= add_t(w, mu, "blk.0.ffn_up.weight", 64, 96);
    bad |= add_t(w, mu, "blk.0.ffn_down.weight", 96, 64);
    bad |= add_t(w, mu, "output_norm.weight", 64, 0);
    if (bad) {
        llm_gguf_writer_free(w);
        return -1;
    }
    if (llm_gguf_writer_finish(w, NULL) != LLM_OK) return -1;
    if (mu->type == LLM_GGML_Q4_0 && patch_type(path, mu->tensor, LLM_GGML_Q4_0) != 0) return -1;
    if (mu->truncate) {
        size_t len = 0;
        char *d = tu_read_file(path, &len);
        if (!d || tu_write_file(path, d, len - (size_t)mu->truncate) != 0) {
            free(d);
            return -1;
        }
        free(d);
    }
    return 0;
}

static void expect_failure(const char *what, const mutation *mu, llm_status want, const char *frag1,
                           const char *frag2) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/corrupt.gguf", tmpdir);
    if (write_tiny(path, mu) != 0) {
        TU_CHECK(0, "%s: cannot write the corrupt file", what);
        return;
    }
    llm_status st;
    llm_model *m = load(path, LLM_QUANTIZE_NONE, err, sizeof err, &st);
    TU_CHECK(!m && st == want, "%s: got %s, want %s: %s", what, llm_status_name(st), llm_status_name(want),
             err);
    TU_CHECK(strstr(err, frag1) && (!frag2 || strstr(err, frag2)), "%s: message lacks '%s'/'%s': %s", what,
             frag1, frag2 ? frag2 : "", err);
    TU_CHECK(strstr(err, "corrupt.gguf"), "%s: message does not name the file: %s", what, err);
    llm_model_free(m);
    unlink(path);
}

static void check_corrupt(void) {
    for (size_t i = 0; i < sizeof payload / sizeof payload[0]; i++)
        payload[i] = 0.01f * (float)((i * 7) % 13) - 0.06f;
    char path[1024], err[1024];
    /* the valid baseline loads and runs; with rope_freqs it uses them */
    snprintf(path, sizeof path, "%s/tiny.gguf", tmpdir);
    mutation ok = {0};
    TU_CHECK(write_tiny(path, &ok) == 0, "write baseline");
    llm_status st;
    llm_model *m = load(path, LLM_QUANTIZE_NONE, err, sizeof err, &st);
    TU_CHECK(m, "baseline: %s", err);
    if (m) {
        llm_model_info mi;
        llm_model_get_info(m, &mi);
        TU_CHECK(mi.n_vocab == 40 && mi.head_dim == 16 && mi.tied_embeddings &&
                     strcmp(mi.rope_type, "default") == 0,
                 "baseline hparams");
        const int32_t t[3] = {1, 5, 9};
        float *l = logits_of(m, t, 3);
        TU_CHECK(l && isfinite(l[0]), "baseline forward");
        free(l);
        llm_model_free(m);
    }
    mutation rf = {.rope_freqs = 8};
    TU_CHECK(write_tiny(path, &rf) == 0, "write rope_freqs");
    m = load(path, LLM_QUANTIZE_NONE, err, sizeof err, &st);
    TU_CHECK(m, "rope_freqs: %s", err);
    if (m) {
        llm_model_info mi;
        llm_model_get_info(m, &mi);
        TU_CHECK(strcmp(mi.rope_type, "freq_factors") == 0, "rope type %s", mi.rope_type);
        llm_model_free(m);
    }

    expect_failure("missing tensor", &(mutation){.skip_tensor = "blk.0.ffn_up.weight"},
                   LLM_ERR_MISSING_TENSOR, "'blk.0.ffn_up.weight'", NULL);
    expect_failure("wrong shape", &(mutation){.tensor = "blk.0.attn_k.weight", .n_dims = 2, .dims = {64, 48}},
                   LLM_ERR_SHAPE_MISMATCH, "'blk.0.attn_k.weight'", "[64, 48]");
    expect_failure("1-D matrix",
                   &(mutation){.tensor = "blk.0.ffn_down.weight", .n_dims = 1, .dims = {6144, 0}},
                   LLM_ERR_SHAPE_MISMATCH, "'blk.0.ffn_down.weight'", "expected [96, 64]");
    expect_failure("quantized norm", &(mutation){.tensor = "output_norm.weight", .type = LLM_GGML_Q8_0},
                   LLM_ERR_DTYPE_MISMATCH, "'output_norm.weight'", "Q8_0");
    expect_failure("unsupported type", &(mutation){.tensor = "blk.0.attn_v.weight", .type = LLM_GGML_Q4_0},
                   LLM_ERR_UNSUPPORTED, "'blk.0.attn_v.weight'", "Q4_0");
    expect_failure("unknown architecture", &(mutation){.arch = "gpt2"}, LLM_ERR_UNSUPPORTED,
                   "general.architecture", "gpt2");
    expect_failure("no architecture", &(mutation){.skip_key = "general.architecture"}, LLM_ERR_BAD_CONFIG,
                   "general.architecture", NULL);
    expect_failure("missing hparam", &(mutation){.skip_key = "llama.block_count"}, LLM_ERR_BAD_CONFIG,
                   "llama.block_count", NULL);
    expect_failure("missing epsilon", &(mutation){.skip_key = "llama.attention.layer_norm_rms_epsilon"},
                   LLM_ERR_BAD_CONFIG, "llama.attention.layer_norm_rms_epsilon", NULL);
    expect_failure("key of wrong type", &(mutation){.string_key = "llama.embedding_length"},
                   LLM_ERR_BAD_FORMAT, "llama.embedding_length", "string");
    expect_failure("head count not dividing", &(mutation){.head_count_kv = 3}, LLM_ERR_BAD_CONFIG,
                   "head_count_kv", NULL);
    expect_failure("vocab mismatch", &(mutation){.n_tokens = 39}, LLM_ERR_SHAPE_MISMATCH,
                   "tokenizer.ggml.tokens", "token_embd.weight");
    expect_failure("truncated tensor data", &(mutation){.truncate = 100}, LLM_ERR_BAD_FORMAT,
                   "output_norm.weight", "truncated");
    expect_failure("rope_freqs wrong length", &(mutation){.rope_freqs = 9}, LLM_ERR_SHAPE_MISMATCH,
                   "rope_freqs.weight", "expected [8]");
    expect_failure("rope_freqs wrong type",
                   &(mutation){.rope_freqs = 8, .tensor = "rope_freqs.weight", .type = 1},
                   LLM_ERR_DTYPE_MISMATCH, "rope_freqs.weight", "F16");
    expect_failure("unsupported rope scaling", &(mutation){.scaling = "yarn"}, LLM_ERR_UNSUPPORTED,
                   "llama.rope.scaling.type", "yarn");
    expect_failure("eos out of range", &(mutation){.eos = 40}, LLM_ERR_BAD_CONFIG,
                   "tokenizer.ggml.eos_token_id", NULL);
    expect_failure("odd head dim", &(mutation){.key_length = 15}, LLM_ERR_UNSUPPORTED, "head dim 15", NULL);

    /* a directory holding two .gguf files and no safetensors is ambiguous */
    char *d = tu_make_temp_dir();
    if (d) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/a.gguf", d);
        snprintf(b, sizeof b, "%s/b.gguf", d);
        TU_CHECK(write_tiny(a, &ok) == 0 && write_tiny(b, &ok) == 0, "write two");
        m = load(d, LLM_QUANTIZE_NONE, err, sizeof err, &st);
        TU_CHECK(!m && st == LLM_ERR_INVALID_ARGUMENT && strstr(err, "a.gguf") && strstr(err, "b.gguf"),
                 "two gguf files: %s (%s)", err, llm_status_name(st));
        llm_model_free(m);
        unlink(b);
        m = load(d, LLM_QUANTIZE_NONE, err, sizeof err, &st); /* exactly one: found */
        TU_CHECK(m, "directory with one gguf: %s", err);
        llm_model_free(m);
        tu_remove_dir(d);
        free(d);
    }
}

/* Random byte changes in the metadata and tensor infos of a valid file (the part the model reads
 * values from): every load returns a status, and any model that still loads runs a forward pass. Under
 * ASan (the _asan twin) this is the no-crash check of the model-level reading. */
static void check_mutations(void) {
    char path[1024], mpath[1100], err[1024];
    snprintf(path, sizeof path, "%s/tiny.gguf", tmpdir);
    snprintf(mpath, sizeof mpath, "%s/mutant.gguf", tmpdir);
    mutation ok = {.rope_freqs = 8};
    size_t len = 0;
    char *good = write_tiny(path, &ok) == 0 ? tu_read_file(path, &len) : NULL;
    TU_CHECK(good, "write the file to mutate");
    if (!good) return;
    llm_gguf *g = NULL;
    const uint64_t meta_end = llm_gguf_open(path, &g, NULL) == LLM_OK ? llm_gguf_data_offset(g) : 0;
    llm_gguf_close(g);
    tu_rng rng = {tu_fresh_seed("test_gguf_model mutations")};
    int loaded = 0, refused = 0;
    for (int iter = 0; iter < 300 && meta_end > 24; iter++) {
        char *mut = malloc(len);
        memcpy(mut, good, len);
        const int flips = 1 + (int)tu_rng_below(&rng, 3);
        for (int k = 0; k < flips; k++) {
            const size_t at = 24 + tu_rng_below(&rng, (uint32_t)(meta_end - 24));
            static const unsigned char vals[] = {0, 1, 2, 3, 0x7f, 0x80, 0xff};
            mut[at] = (char)(tu_rng_below(&rng, 2) ? vals[tu_rng_below(&rng, sizeof vals)]
                                                   : tu_rng_below(&rng, 256));
        }
        tu_write_file(mpath, mut, len);
        free(mut);
        llm_status st;
        llm_model *m = load(mpath, LLM_QUANTIZE_NONE, err, sizeof err, &st);
        TU_CHECK((m != NULL) == (st == LLM_OK) && (m || err[0]), "mutation %d: status %s, message '%s'", iter,
                 llm_status_name(st), err);
        if (m) {
            llm_model_info mi;
            llm_model_get_info(m, &mi);
            if (mi.n_ctx_train >= 4) {
                const int32_t t[3] = {1, 5, 9};
                free(logits_of(m, t, 3));
            }
            loaded++;
            llm_model_free(m);
        } else {
            refused++;
        }
    }
    printf("test_gguf_model: mutations: %d loaded, %d refused\n", loaded, refused);
    TU_CHECK(refused > 0, "no mutation was refused");
    free(good);
    unlink(mpath);
}

/* ---- 4. the CLI: convert, then generate / eval from the file -------------------------------------- */

static void check_cli(void) {
    char args[3000], *out = NULL, *err = NULL;
    char demo[1024];
    snprintf(demo, sizeof demo, "%s/models/kjv-tiny", LLAMAC_SOURCE_DIR);
    snprintf(args, sizeof args, "convert --to gguf '%s' '%s/demo.gguf'", demo, tmpdir);
    int rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && err && strstr(err, "wrote"), "convert exit %d: %s", rc, err ? err : "");
    free(out);
    free(err);
    /* greedy text from the GGUF copy: the same as from the directory (llama: logits equal to rounding,
     * far below the margins between greedy choices of this model) */
    char *from_dir = NULL, *from_gguf = NULL;
    snprintf(args, sizeof args,
             "generate --model '%s' --prompt 'In the beginning' --max-tokens 16 --temperature 0 --threads 2",
             demo);
    rc = tu_run_cli(tmpdir, args, NULL, &from_dir, NULL, &err);
    TU_CHECK(rc == 0, "generate (dir): %s", err ? err : "");
    free(err);
    snprintf(args, sizeof args,
             "generate --model '%s/demo.gguf' --prompt 'In the beginning' --max-tokens 16 --temperature 0 "
             "--threads 2",
             tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &from_gguf, NULL, &err);
    TU_CHECK(rc == 0, "generate (gguf): %s", err ? err : "");
    TU_CHECK(from_dir && from_gguf && strcmp(from_dir, from_gguf) == 0 && strlen(from_gguf) > 20,
             "GGUF text differs:\n%s\n---\n%s", from_dir ? from_dir : "", from_gguf ? from_gguf : "");
    free(err);
    free(from_dir);
    free(from_gguf);
    /* tokenize reads the embedded tokenizer of a GGUF file: the same ids as from the directory */
    snprintf(args, sizeof args, "tokenize --model '%s' --text 'Let there be light: and there was light.'",
             demo);
    rc = tu_run_cli(tmpdir, args, NULL, &from_dir, NULL, &err);
    free(err);
    snprintf(args, sizeof args,
             "tokenize --model '%s/demo.gguf' --text 'Let there be light: and there was light.'", tmpdir);
    int rc2 = tu_run_cli(tmpdir, args, NULL, &from_gguf, NULL, &err);
    TU_CHECK(rc == 0 && rc2 == 0 && from_dir && from_gguf && strcmp(from_dir, from_gguf) == 0 &&
                 strlen(from_gguf) > 8,
             "tokenize from the GGUF: exit %d/%d, %s vs %s", rc, rc2, from_dir ? from_dir : "",
             from_gguf ? from_gguf : "");
    free(err);
    free(from_dir);
    free(from_gguf);
    /* --quantize on generate (any model-loading command) and on convert; the quantized file generates */
    snprintf(
        args, sizeof args,
        "generate --model '%s' --quantize q8_0 --prompt 'In the beginning' --max-tokens 8 --temperature 0",
        demo);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && out && strlen(out) > 16, "generate --quantize q8_0: %s", err ? err : "");
    free(out);
    free(err);
    snprintf(args, sizeof args, "convert --to gguf --quantize q8_0 '%s' '%s/demo.q8_0.gguf'", demo, tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "convert --quantize q8_0: %s", err ? err : "");
    free(out);
    free(err);
    snprintf(args, sizeof args, "inspect --model '%s/demo.q8_0.gguf'", tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && out && strstr(out, "Q8_0"), "inspect of the q8_0 file: %s", out ? out : "");
    free(out);
    free(err);
    snprintf(
        args, sizeof args,
        "generate --model '%s/demo.q8_0.gguf' --prompt 'In the beginning' --max-tokens 8 --temperature 0",
        tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0 && out && strlen(out) > 16, "generate from the q8_0 file: %s", err ? err : "");
    free(out);
    free(err);
    tu_expect_cli_error(tmpdir, "generate --quantize q5_1 --prompt x", "--quantize must be");
    /* random weights of a preset's shape: loadable, with its byte-level vocabulary */
    snprintf(args, sizeof args, "convert --to gguf --random-weights tiny --dtype bf16 '%s/rand.gguf'",
             tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "convert --random-weights: %s", err ? err : "");
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval --model '%s/rand.gguf' --tokens 1,2,3 --backend cpu", tmpdir);
    rc = tu_run_cli(tmpdir, args, NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "eval of the random GGUF: %s", err ? err : "");
    free(out);
    free(err);
    /* errors */
    tu_expect_cli_error(tmpdir, "convert --to safetensors a b", "--to gguf");
    snprintf(args, sizeof args, "convert --to gguf '%s/nonexistent' '%s/x.gguf'", tmpdir, tmpdir);
    tu_expect_cli_error(tmpdir, args, "nonexistent");
    tu_expect_cli_error(tmpdir, "convert --to gguf --random-weights nope x.gguf",
                        "unknown random-weights preset");
}

int main(void) {
    char *t = tu_make_temp_dir();
    if (!t) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", t);
    free(t);
    const char *names[32];
    const int n = tu_list_fixtures(names, 32);
    TU_CHECK(n >= 8, "found %d fixtures", n);
    int n_q8 = 0;
    for (int i = 0; i < n; i++) check_fixture(names[i], &n_q8);
    TU_CHECK(n_q8 == n, "q8_0 round trips checked: %d of %d", n_q8, n);
    check_random_quant();
    check_corrupt();
    check_mutations();
    check_cli();
    /* temp files are flat in tmpdir */
    tu_remove_dir(tmpdir);
    return tu_finish("test_gguf_model");
}
