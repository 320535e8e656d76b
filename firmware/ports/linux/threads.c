/* threads.c - the pool of threads.h. One job at a time: the caller publishes it with
 * a generation bump, runs share 0 itself, and spins until every worker has reported.
 * The generation/sleeping pair is a Dekker handshake (sequentially consistent
 * atomics): either the caller sees a sleeping worker and signals it, or the worker
 * sees the new generation before it waits. */
#include "threads.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#define SPIN_BEFORE_SLEEP 20000u /* pause-loops a worker waits before blocking */
#define ROW_ALIGN 8u             /* shares start on multiples of 8 rows (SIMD row blocks) */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_share(mote_threads *p, uint32_t index)
{
    const uint64_t begin = (uint64_t)index * p->chunk;
    uint64_t end = begin + p->chunk;
    if (end > p->rows)
        end = p->rows;
    if (begin < end)
        p->fn(p->ctx, (uint32_t)begin, (uint32_t)end);
}

static void *worker_main(void *arg)
{
    mote_threads *p = (mote_threads *)arg;
    const uint32_t index = __atomic_add_fetch(&p->next_index, 1u, __ATOMIC_SEQ_CST);
    uint32_t seen = 0;
    for (;;) {
        uint32_t spins = 0, gen;
        while ((gen = __atomic_load_n(&p->generation, __ATOMIC_SEQ_CST)) == seen &&
               spins++ < SPIN_BEFORE_SLEEP)
            cpu_relax();
        if (gen == seen) {
            pthread_mutex_lock(&p->lock);
            __atomic_add_fetch(&p->sleeping, 1u, __ATOMIC_SEQ_CST);
            while ((gen = __atomic_load_n(&p->generation, __ATOMIC_SEQ_CST)) == seen)
                pthread_cond_wait(&p->wake, &p->lock);
            __atomic_sub_fetch(&p->sleeping, 1u, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&p->lock);
        }
        seen = gen;
        if (__atomic_load_n(&p->stop, __ATOMIC_SEQ_CST))
            return NULL;
        run_share(p, index);
        __atomic_sub_fetch(&p->pending, 1u, __ATOMIC_SEQ_CST);
    }
}

/* Publish a new generation and wake any sleeping worker. */
static void publish(mote_threads *p)
{
    __atomic_add_fetch(&p->generation, 1u, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleeping, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
}

void mote_threads_run(void *pool, mote_rows_fn fn, void *ctx, uint32_t rows)
{
    mote_threads *p = (mote_threads *)pool;
    const uint32_t n = p->n_threads;
    uint32_t chunk = (rows + n - 1u) / n, spins = 0;
    chunk = (chunk + ROW_ALIGN - 1u) / ROW_ALIGN * ROW_ALIGN;
    if (n < 2u || rows <= ROW_ALIGN) {
        fn(ctx, 0, rows);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->rows = rows;
    p->chunk = chunk;
    __atomic_store_n(&p->pending, n - 1u, __ATOMIC_SEQ_CST);
    publish(p);
    run_share(p, 0);
    while (__atomic_load_n(&p->pending, __ATOMIC_SEQ_CST) != 0) {
        if (++spins > SPIN_BEFORE_SLEEP)
            sched_yield(); /* a worker was descheduled: let it run */
        else
            cpu_relax();
    }
}

int mote_threads_start(mote_threads *p, uint32_t n_threads)
{
    uint32_t i;
    int err;
    if (n_threads < 1u || n_threads > MOTE_THREADS_MAX) {
        errno = EINVAL;
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->n_threads = 1;
    if (pthread_mutex_init(&p->lock, NULL) != 0 || pthread_cond_init(&p->wake, NULL) != 0)
        return -1;
    for (i = 1; i < n_threads; i++) {
        err = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (err != 0) {
            mote_threads_stop(p);
            errno = err;
            return -1;
        }
        p->n_threads++;
    }
    /* every worker must hold its index before the first job */
    while (__atomic_load_n(&p->next_index, __ATOMIC_SEQ_CST) != n_threads - 1u)
        sched_yield();
    return 0;
}

void mote_threads_attach(mote_threads *pool, mote_state *s)
{
    s->parallel_rows = mote_threads_run;
    s->pool = pool;
}

void mote_threads_stop(mote_threads *p)
{
    uint32_t i;
    __atomic_store_n(&p->stop, 1u, __ATOMIC_SEQ_CST);
    publish(p);
    for (i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    p->n_threads = 1;
}
