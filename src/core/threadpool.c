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
    _Atomic int pending;         /* workers still running the current dispatch */
    _Atomic int stop;
    llm_task_fn fn;
    void *arg;
};

typedef struct {
    llm_threadpool *pool;
    int ith;
} worker_start;

static void *worker_main(void *p) {
    worker_start start = *(worker_start *)p;
    free(p);
    llm_threadpool *pool = start.pool;
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            if (++spins < LLM_SPIN_LIMIT) {
                if (spins % 256 == 0)
                    sched_yield(); /* let a descheduled peer run on a busy machine */
                else
                    LLM_CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) break;
        seen = atomic_load(&pool->generation);
        pool->fn(pool->arg, start.ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
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

void llm_threadpool_run(llm_threadpool *pool, llm_task_fn fn, void *arg) {
    if (pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex); /* pairs with the sleeping side: no lost wake-up */
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(arg, 0, pool->n_threads);
    /* Spin briefly, then yield: when the machine has more runnable threads than cores (a busy
     * host, tests running in parallel), pure spinning would keep the very worker we wait for off its
     * core. */
    for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++) {
        if (spins < LLM_SPIN_LIMIT / 4)
            LLM_CPU_RELAX();
        else
            sched_yield();
    }
}
