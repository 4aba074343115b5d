#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LLM_CPU_RELAX() _mm_pause()
#else
#define LLM_CPU_RELAX() ((void)0)
#endif

/* Spin iterations before a worker goes to sleep: long enough to cover the gap between two ops of one
 * forward pass, short enough not to burn a core while the engine is idle. */
#define LLM_SPIN_LIMIT 20000

struct llm_threadpool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    _Atomic uint64_t generation; /* bumped once per dispatch */
    _Atomic uint64_t closed;     /* the last generation whose shares are all claimed */
    _Atomic int next_share;      /* the next unclaimed share (ith) of the current dispatch */
    _Atomic int active;          /* workers inside the current dispatch */
    _Atomic int sleepers;        /* workers that stopped spinning (may be on the condition variable) */
    _Atomic int stop;
    /* The current dispatch. Written by the caller before it publishes the generation (release) and read
     * by workers after they see it (acquire): no race, and atomics keep TSan's model simple. */
    _Atomic(llm_task_fn) fn;
    _Atomic(void *) arg;
};

typedef struct {
    llm_threadpool *pool;
    int ith;
} worker_start;

/* Waits until the generation differs from seen or the pool stops: spins first (the next op of a forward
 * pass follows within microseconds), then sleeps. Returns the new generation. */
static uint64_t wait_for_work(llm_threadpool *pool, uint64_t seen) {
    for (int spins = 0; spins < LLM_SPIN_LIMIT; spins++) {
        const uint64_t g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) return g;
        if (spins % 256 == 255)
            sched_yield(); /* let a descheduled peer run on a busy machine */
        else
            LLM_CPU_RELAX();
    }
    /* Announce the sleep before the last check (seq_cst on both sides): the dispatcher bumps the
     * generation and then reads sleepers, we bump sleepers and then read the generation, so at least
     * one of us sees the other and no wake-up is lost. */
    atomic_fetch_add(&pool->sleepers, 1);
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
    atomic_fetch_sub(&pool->sleepers, 1);
    return atomic_load_explicit(&pool->generation, memory_order_acquire);
}

/* Runs unclaimed shares of the current dispatch until none is left. */
static void claim_shares(llm_threadpool *pool, llm_task_fn fn, void *arg) {
    for (;;) {
        const int share = atomic_fetch_add_explicit(&pool->next_share, 1, memory_order_relaxed);
        if (share >= pool->n_threads) return;
        fn(arg, share, pool->n_threads);
    }
}

static void *worker_main(void *p) {
    worker_start start = *(worker_start *)p;
    free(p);
    llm_threadpool *pool = start.pool;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_work(pool, seen);
        if (atomic_load(&pool->stop)) break;
        /* Join, then check the dispatch is still open (seq_cst on both sides, as with sleepers): either
         * the caller sees us active and waits for us, or we see it closed and touch nothing of it. */
        atomic_fetch_add(&pool->active, 1);
        if (atomic_load(&pool->closed) < seen) {
            llm_task_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
            void *arg = atomic_load_explicit(&pool->arg, memory_order_relaxed);
            claim_shares(pool, fn, arg);
        }
        atomic_fetch_sub_explicit(&pool->active, 1, memory_order_release);
    }
    return NULL;
}

llm_threadpool *llm_threadpool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    llm_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        llm_threadpool_free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_start *ws = malloc(sizeof *ws);
        if (!ws) goto fail;
        ws->pool = pool;
        ws->ith = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, ws) != 0) {
            free(ws);
            goto fail;
        }
        pool->n_threads = i + 1; /* threads actually started, so free() joins the right ones */
    }
    pool->n_threads = n_threads;
    return pool;
fail:
    llm_threadpool_free(pool);
    return NULL;
}

void llm_threadpool_free(llm_threadpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    if (pool->threads)
        for (int i = 1; i < pool->n_threads; i++)
            if (pool->threads[i]) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool);
}

int llm_threadpool_size(const llm_threadpool *pool) {
    return pool->n_threads;
}

/* Shares are claimed, not assigned: the caller runs every share no worker has taken by the time it is
 * free, so a worker that lost its core (a busy machine) delays nothing; it only has to finish the
 * shares it did take. Each share runs once, on one thread, with its own ith. */
void llm_threadpool_run(llm_threadpool *pool, llm_task_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&pool->next_share, 0, memory_order_relaxed);
    const uint64_t gen = atomic_fetch_add(&pool->generation, 1) + 1; /* seq_cst: publishes the above */
    if (atomic_load(&pool->sleepers) > 0) { /* only then the mutex and a futex wake */
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    claim_shares(pool, fn, arg);
    atomic_store(&pool->closed, gen); /* late workers now skip this dispatch */
    /* Wait for the workers that joined. Spin briefly, then yield: with more runnable threads than cores,
     * pure spinning would keep the very worker we wait for off its core. */
    for (int spins = 0; atomic_load_explicit(&pool->active, memory_order_acquire) > 0; spins++) {
        if (spins < LLM_SPIN_LIMIT / 4)
            LLM_CPU_RELAX();
        else
            sched_yield();
    }
}
