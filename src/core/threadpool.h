/* A fixed pool of worker threads for data-parallel ops. One dispatch of n_threads shares runs
 * fn(arg, ith, n_threads) once for every ith, each on one thread of the pool (the caller included), and
 * returns when all have finished. Shares are claimed: whichever thread is free takes the next one, so a
 * worker that lost its core on a busy machine holds nothing up. A share's ith is stable (per-share
 * scratch indexed by ith is safe); which thread runs it is not. Workers spin briefly between dispatches
 * (decode issues hundreds of small dispatches per token) and then sleep on a condition variable; a
 * dispatch costs a few atomic operations and no allocation, the mutex and a futex wake only when some
 * worker has gone to sleep. */
#ifndef LLM_CORE_THREADPOOL_H
#define LLM_CORE_THREADPOOL_H

typedef struct llm_threadpool llm_threadpool;

/* fn(arg, ith, nth): do the ith of nth shares of the work. */
typedef void (*llm_task_fn)(void *arg, int ith, int nth);

/* Returns NULL if threads cannot be created. n_threads >= 1; 1 means no worker threads at all. */
llm_threadpool *llm_threadpool_create(int n_threads);
void llm_threadpool_free(llm_threadpool *pool); /* NULL ok */
int llm_threadpool_size(const llm_threadpool *pool);

/* Runs the n_threads shares of fn and waits. Not reentrant: one dispatch at a time per pool. */
void llm_threadpool_run(llm_threadpool *pool, llm_task_fn fn, void *arg);

/* The [begin, end) share of n items for thread ith of nth (contiguous, sizes differ by at most one). */
static inline void llm_split_range(long n, int ith, int nth, long *begin, long *end) {
    long base = n / nth, extra = n % nth;
    *begin = ith * base + (ith < extra ? ith : extra);
    *end = *begin + base + (ith < extra ? 1 : 0);
}

#endif
