/* out[T][M] = x[T][K] · W[M][K]ᵀ + b on the fast kernel levels (the REF level is matmul.c), and the
 * fused forms of the op table (q/k/v in one pass; gate, up and SwiGLU in one pass).
 *
 * One code path for decode and prefill: threads claim runs of panels (LLM_CPU_PANEL weight rows) from a
 * shared counter, so every weight byte comes from memory once per call. Within a panel, for each tile
 * of nr tokens (its activations stay in L1) the panel's rows pass over it LLM_CPU_MR at a time through
 * the level's micro-kernel (kernels.h), accumulators in registers. With T <= nr (decode) this is a
 * GEMV: each weight row streamed once, LLM_CPU_MR rows at a time. K is split into blocks only past
 * LLM_CPU_KBLOCK columns; then the accumulators wait between blocks in the per-thread buffer, which
 * bounds the tokens handled per pass over the panel.
 *
 * Batch invariance: blocks are multiples of the kernel's chunk and accumulators carry over between
 * blocks untouched, so each element gets its level's canonical sequence of operations (kernels.h) and
 * the same bits whatever T is, wherever its row falls and whichever thread computes it. */
#include <stdatomic.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/quant_dot.h"

/* One weight matrix of a call: out[T][w->rows] = x · wᵀ (+ bias). */
typedef struct {
    const llm_tensor *w, *bias;
    float *out;
} mm_job;

typedef struct {
    llm_backend_cpu *cpu;
    const void *x; /* f32 rows, or bf16 rows when the kernel wants them */
    int64_t ldx;
    int n;
    const llm_gemm_kernel *kern;
    mm_job job[3]; /* sharing x and one dtype (q, k, v; or gate, up) */
    int n_jobs;
    int swiglu;           /* jobs 0 (gate) and 1 (up): then job 0's out = silu(gate) * up, panel by panel */
    _Atomic int64_t next; /* the next unclaimed panel of this dispatch */
} fast_args;

/* Shape: rows [row0, row0 + LLM_CPU_PANEL) of jb->out[T][M] from x[T][K] and jb->w[M][K]. */
static void run_panel(const fast_args *a, const mm_job *jb, int64_t pn, float *accbuf) {
    const llm_gemm_kernel *kern = a->kern;
    const int64_t m = jb->w->rows, k = jb->w->cols;
    const size_t wsz = jb->w->dtype == LLM_DTYPE_F32 ? 4 : 2;
    const size_t xsz = kern->act_bf16 ? 2 : 4;
    const int nr = kern->nr;
    /* tokens per chunk: bounded by the accumulator buffer only when K is cut into blocks (otherwise
     * every tile call is a final one and the accumulators never leave registers) */
    const int spill = jb->w->cols > a->cpu->kblock;
    const int tb = spill ? LLM_CPU_TOKEN_TILES * nr : a->n;
    const int64_t kb = a->cpu->kblock; /* a multiple of every kernel's chunk */
    const size_t tile_acc = (size_t)LLM_CPU_MR * LLM_CPU_NR_MAX * kern->lanes;
    const int64_t row0 = pn * LLM_CPU_PANEL;
    const int prow = (int)(m - row0 < LLM_CPU_PANEL ? m - row0 : LLM_CPU_PANEL);
    const int n_rt = (prow + LLM_CPU_MR - 1) / LLM_CPU_MR;
    llm_gemm_tile t;
    t.ldx = a->ldx;
    for (int c0 = 0; c0 < a->n; c0 += tb) {
        const int cn = a->n - c0 < tb ? a->n - c0 : tb;
        for (int64_t k0 = 0; k0 < k; k0 += kb) {
            const int64_t kc = k - k0 < kb ? k - k0 : kb;
            const int last = k0 + kc == k;
            /* token tiles outer: a tile's activations stay in L1 while the panel's rows pass over them */
            for (int j0 = 0; j0 < cn; j0 += nr) {
                const int tok = c0 + j0;
                t.nt = cn - j0 < nr ? cn - j0 : nr;
                t.x = (const char *)a->x + ((size_t)tok * a->ldx + k0) * xsz;
                t.kc = kc;
                t.load = k0 > 0;
                t.ldo = last ? m : 0;
                for (int rt = 0; rt < n_rt; rt++) {
                    const int64_t r0 = row0 + (int64_t)rt * LLM_CPU_MR;
                    const int valid = (int)(m - r0 < LLM_CPU_MR ? m - r0 : LLM_CPU_MR);
                    /* a short tile repeats its first row: same kernel, extra results dropped */
                    for (int r = 0; r < LLM_CPU_MR; r++)
                        t.w[r] =
                            (const char *)jb->w->data + ((size_t)(r0 + (r < valid ? r : 0)) * k + k0) * wsz;
                    t.nr_valid = valid;
                    t.acc = spill ? accbuf + ((size_t)rt * LLM_CPU_TOKEN_TILES + j0 / nr) * tile_acc : accbuf;
                    t.out = jb->out + (size_t)tok * m + r0;
                    kern->tile(&t);
                }
            }
        }
        if (jb->bias) /* after the dot, as in the reference: out = dot + b */
            for (int j = 0; j < cn; j++) {
                float *o = jb->out + (size_t)(c0 + j) * m + row0;
                for (int r = 0; r < prow; r++) o[r] += llm_cpu_elem_f32(jb->bias, row0 + r);
            }
    }
}

static int64_t n_panels(const llm_tensor *w) {
    return (w->rows + LLM_CPU_PANEL - 1) / LLM_CPU_PANEL;
}

/* Threads claim runs of `grain` consecutive panels (counted across the jobs in order) from a shared
 * counter: on a busy machine a thread that lost its core leaves its share to the others instead of
 * holding up the whole call; which thread computes a panel never changes its numbers. */
static void fast_task(void *p, int ith, int nth) {
    fast_args *a = p;
    float *accbuf = a->cpu->accbuf + (size_t)ith * a->cpu->acc_stride;
    int64_t total = 0;
    for (int j = 0; j < a->n_jobs; j++) total += n_panels(a->job[j].w);
    if (a->swiglu) total = n_panels(a->job[0].w);
    /* small runs: the threads finish within a run of each other (decode calls are short) */
    const int64_t grain = total / ((int64_t)nth * 32) > 1 ? total / ((int64_t)nth * 32) : 1;
    for (;;) {
        const int64_t p0 = atomic_fetch_add_explicit(&a->next, grain, memory_order_relaxed);
        if (p0 >= total) break;
        const int64_t p1 = p0 + grain < total ? p0 + grain : total;
        if (a->swiglu) {
            const mm_job *g = &a->job[0], *u = &a->job[1];
            const int64_t m = g->w->rows;
            for (int64_t pn = p0; pn < p1; pn++) {
                run_panel(a, g, pn, accbuf);
                run_panel(a, u, pn, accbuf);
                const int64_t row0 = pn * LLM_CPU_PANEL;
                const size_t prow = (size_t)(m - row0 < LLM_CPU_PANEL ? m - row0 : LLM_CPU_PANEL);
                for (int t = 0; t < a->n; t++) {
                    float *o = g->out + (size_t)t * m + row0;
                    a->cpu->kern.swiglu(o, o, u->out + (size_t)t * m + row0, prow);
                }
            }
            continue;
        }
        int64_t base = 0;
        for (int j = 0; j < a->n_jobs && base < p1; j++) {
            const int64_t np = n_panels(a->job[j].w);
            for (int64_t pn = p0 > base ? p0 - base : 0; pn < np && base + pn < p1; pn++)
                run_panel(a, &a->job[j], pn, accbuf);
            base += np;
        }
    }
}

typedef struct {
    uint16_t *dst;
    const float *src;
    int64_t k;
    int n;
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);
} conv_args;

static void conv_task(void *p, int ith, int nth) {
    const conv_args *a = p;
    long b, e;
    llm_split_range(a->n, ith, nth, &b, &e);
    for (long t = b; t < e; t++) a->to_bf16(a->dst + (size_t)t * a->k, a->src + (size_t)t * a->k, a->k);
}

/* Quantized weights (Q8_0, Q4_K) at the fast levels: each token row of x is quantized once per call
 * (quant_dot.h: the same bytes at every level) into the shared activation buffer, then the threads share
 * the weight rows in groups of LLM_CPU_QROWS, and each group is dotted with all the tokens in one
 * multi-token kernel call: a weight row is read from memory once, and each block loaded (and for Q4_K
 * unpacked) once per 4 tokens, however many tokens there are.
 * (Fusing q/k/v, or gate/up with SwiGLU, into one dispatch as the float path does measured no faster for
 * quantized weights, decode slightly slower: the quantized ops run them one by one.) */
#define LLM_CPU_QROWS   16
#define LLM_CPU_QSHARES 16 /* claim counters of a dispatch: one per thread up to this many threads */

typedef struct {
    llm_backend_cpu *cpu;
    float *out;
    const float *x;
    const llm_tensor *w;
    const llm_tensor *bias;
    int n;
    size_t act_bytes; /* per token row */
    struct {
        _Alignas(64) _Atomic uint64_t fb; /* share s: groups taken from the front | from the back << 32 */
    } share[LLM_CPU_QSHARES];
} quant_args;

static void quant_act_task(void *p, int ith, int nth) {
    const quant_args *a = p;
    long b, e;
    llm_split_range(a->n, ith, nth, &b, &e);
    for (long t = b; t < e; t++)
        llm_quant_act(a->w->dtype, a->x + (size_t)t * a->w->cols,
                      (char *)a->cpu->xb + (size_t)t * a->act_bytes, a->w->cols, a->cpu->kern.level);
}

/* Which thread computes a group never changes its numbers; the order matters for speed only. Decode is a
 * stream from DRAM: each thread walks its own contiguous share of the groups front to back (one
 * sequential stream, which the kernels' prefetch runs ahead of); a thread done with its share takes
 * groups from the back of the others' shares, so that one that lost its core on a busy machine, or simply
 * read slower, holds up no one, and the streams stay apart. (Claiming runs of groups from one shared
 * counter instead interleaves the threads' streams: 7% slower Q8_0 decode, measured.) A share's state is
 * one word, groups taken from the front (low half) and from the back (high half), moved by CAS. */
static int claim_group(quant_args *a, int me, int nsh, int64_t total, int64_t *g) {
    for (int i = 0; i < nsh; i++) {
        const int s = (me + i) % nsh;
        const int own = i == 0;
        long b, e;
        llm_split_range((long)total, s, nsh, &b, &e);
        _Atomic uint64_t *fb = &a->share[s].fb;
        uint64_t v = atomic_load_explicit(fb, memory_order_relaxed);
        for (;;) {
            const uint64_t front = v & 0xffffffffu, back = v >> 32;
            if ((int64_t)(front + back) >= e - b) break;
            const uint64_t nv = own ? v + 1 : v + ((uint64_t)1 << 32);
            if (atomic_compare_exchange_weak_explicit(fb, &v, nv, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *g = own ? b + (int64_t)front : e - 1 - (int64_t)back;
                return 1;
            }
        }
    }
    return 0;
}

static void quant_dot_task(void *p, int ith, int nth) {
    quant_args *a = p;
    const int64_t m = a->w->rows, total = (m + LLM_CPU_QROWS - 1) / LLM_CPU_QROWS;
    /* more threads than counters: threads s, s + Q, ... start on share s */
    const int nsh = nth < LLM_CPU_QSHARES ? nth : LLM_CPU_QSHARES;
    int64_t g;
    while (claim_group(a, ith % nsh, nsh, total, &g)) {
        const int64_t r0 = g * LLM_CPU_QROWS, nr = m - r0 < LLM_CPU_QROWS ? m - r0 : LLM_CPU_QROWS;
        llm_quant_dot_rows_multi(a->w->dtype, a->w->data, a->w->cols, r0, nr, a->cpu->xb, a->act_bytes, a->n,
                                 a->out + r0, (size_t)m, a->cpu->kern.level);
        if (a->bias) /* after the dot, as in the reference: out = dot + b */
            for (int t = 0; t < a->n; t++) {
                float *o = a->out + (size_t)t * m + r0;
                for (int64_t r = 0; r < nr; r++) o[r] += llm_cpu_elem_f32(a->bias, r0 + r);
            }
    }
}

static void matmul_quant(llm_backend_cpu *cpu, float *out, const float *x, const llm_tensor *w,
                         const llm_tensor *bias, int n) {
    const size_t ab = llm_quant_act_bytes(w->dtype, w->cols);
    const size_t cap = cpu->xb_cap * sizeof(uint16_t);
    if (ab == 0 || ab > cap) { /* a dtype or shape the loader should not have let through */
        if (cpu->status == LLM_OK) {
            cpu->status = LLM_ERR_UNSUPPORTED;
            snprintf(cpu->msg, sizeof cpu->msg,
                     "cpu backend (%s kernels): no matmul for %s weights with %lld columns (tensor %s)",
                     llm_cpu_level_name(cpu->kern.level), llm_dtype_name(w->dtype), (long long)w->cols,
                     w->name ? w->name : "?");
        }
        return;
    }
    const int per = (int)(cap / ab);
    for (int t0 = 0; t0 < n; t0 += per) {
        const int cnt = n - t0 < per ? n - t0 : per;
        quant_args a = {cpu, out + (size_t)t0 * w->rows, x + (size_t)t0 * w->cols, w, bias, cnt, ab, {{0}}};
        if ((int64_t)cnt * w->cols < LLM_CPU_PARALLEL_MIN)
            quant_act_task(&a, 0, 1);
        else
            llm_threadpool_run(cpu->pool, quant_act_task, &a);
        llm_threadpool_run(cpu->pool, quant_dot_task, &a);
    }
}

/* The jobs (one dtype, one K, with a fast kernel) over n token rows of x. */
static void matmul_jobs(llm_backend_cpu *cpu, const float *x, int n, const mm_job *jobs, int n_jobs,
                        int swiglu) {
    const llm_gemm_kernel *kern = &cpu->kern.gemm[jobs[0].w->dtype];
    const int64_t k = jobs[0].w->cols;
    fast_args a = {cpu, x, k, n, kern, {{0}}, n_jobs, swiglu, 0};
    for (int j = 0; j < n_jobs; j++) a.job[j] = jobs[j];
    if (!kern->act_bf16) {
        llm_threadpool_run(cpu->pool, fast_task, &a);
        return;
    }
    /* bf16 activations: as many token rows per pass as the shared buffer holds (all of them, for the
     * shapes the engine plans); each row is converted once and read by every thread. */
    int per = (int)(cpu->xb_cap / (size_t)k);
    if (per < 1) per = 1; /* xb_cap >= max_row >= k: never happens */
    for (int t0 = 0; t0 < n; t0 += per) {
        const int cnt = n - t0 < per ? n - t0 : per;
        conv_args c = {cpu->xb, x + (size_t)t0 * k, k, cnt, cpu->kern.to_bf16};
        if ((int64_t)cnt * k < LLM_CPU_PARALLEL_MIN)
            conv_task(&c, 0, 1);
        else
            llm_threadpool_run(cpu->pool, conv_task, &c);
        a.x = cpu->xb;
        a.n = cnt;
        atomic_store_explicit(&a.next, 0, memory_order_relaxed); /* published by the dispatch */
        for (int j = 0; j < n_jobs; j++) a.job[j].out = jobs[j].out + (size_t)t0 * jobs[j].w->rows;
        llm_threadpool_run(cpu->pool, fast_task, &a);
    }
}

static int has_fast_kernel(const llm_backend_cpu *cpu, const llm_tensor *w) {
    return (int)w->dtype >= 0 && w->dtype < LLM_DTYPE_COUNT && cpu->kern.gemm[w->dtype].tile != NULL;
}

void llm_cpu_matmul_fast(llm_backend *be, float *out, const float *x, const llm_tensor *w,
                         const llm_tensor *bias, int n) {
    llm_backend_cpu *cpu = llm_cpu(be);
    LLM_ASSERT(w->cols <= cpu->max_row); /* the engine sizes max_row (and the buffers) from the model */
    if (n <= 0) return;
    if (!has_fast_kernel(cpu, w)) {
        matmul_quant(cpu, out, x, w, bias, n);
        return;
    }
    const mm_job job = {w, bias, out};
    matmul_jobs(cpu, x, n, &job, 1, 0);
}

void llm_cpu_matmul_multi_fast(llm_backend *be, int n, float *const outs[], const float *x,
                               const llm_tensor *const ws[], const llm_tensor *const biases[], int n_tokens) {
    llm_backend_cpu *cpu = llm_cpu(be);
    int same = n >= 1 && n <= 3 && has_fast_kernel(cpu, ws[0]);
    for (int i = 1; same && i < n; i++) same = ws[i]->dtype == ws[0]->dtype && ws[i]->cols == ws[0]->cols;
    if (!same || n_tokens <= 0) { /* one by one: the same numbers */
        for (int i = 0; i < n; i++) llm_cpu_matmul_fast(be, outs[i], x, ws[i], biases[i], n_tokens);
        return;
    }
    mm_job jobs[3];
    for (int i = 0; i < n; i++) jobs[i] = (mm_job){ws[i], biases[i], outs[i]};
    matmul_jobs(cpu, x, n_tokens, jobs, n, 0);
}

void llm_cpu_matmul_swiglu_fast(llm_backend *be, float *out, float *scratch, const float *x,
                                const llm_tensor *w_gate, const llm_tensor *b_gate, const llm_tensor *w_up,
                                const llm_tensor *b_up, int n_tokens) {
    llm_backend_cpu *cpu = llm_cpu(be);
    if (!has_fast_kernel(cpu, w_gate) || w_up->dtype != w_gate->dtype || w_up->rows != w_gate->rows ||
        w_up->cols != w_gate->cols || n_tokens <= 0) {
        llm_cpu_matmul_fast(be, out, x, w_gate, b_gate, n_tokens);
        llm_cpu_matmul_fast(be, scratch, x, w_up, b_up, n_tokens);
        llm_cpu_swiglu_fast(be, out, out, scratch, (size_t)n_tokens * (size_t)w_gate->rows);
        return;
    }
    const mm_job jobs[2] = {{w_gate, b_gate, out}, {w_up, b_up, scratch}};
    matmul_jobs(cpu, x, n_tokens, jobs, 2, 1);
}
