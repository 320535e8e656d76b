/* threads.h - a persistent pthread pool behind mote_state's parallel_rows hook: the
 * forward pass hands it row ranges of its matrix-vector products. A job is cut into
 * chunks that the caller and the workers claim one at a time, so a worker that is
 * asleep or descheduled (a busy machine) never holds the caller up for more than the
 * chunk it already claimed; a worker preempted while it holds a chunk (the caller
 * then waits for it) makes the caller run the next jobs alone for a while, longer
 * each time it happens again. Workers spin briefly between jobs, then sleep on a
 * futex. */
#ifndef MOTE_THREADS_H
#define MOTE_THREADS_H

#include <pthread.h>
#include <stdint.h>

#include "mote.h"

#define MOTE_THREADS_MAX 64u

typedef struct mote_threads {
    pthread_t workers[MOTE_THREADS_MAX];
    uint32_t n_threads; /* the caller's thread included */
    /* the current job: written by the caller before it publishes `ticket`, read by a
     * worker only after it claimed a chunk of that job */
    mote_rows_fn fn;
    void *ctx;
    uint32_t rows, chunk_rows;
    /* the caller's own: jobs still to run alone after a stall, and the length of the
     * next such run (doubled by each stall, halved by each job without one) */
    uint32_t inline_jobs, backoff;
    /* atomics (GCC builtins): ticket = generation << 32 | n_chunks << 16 | next chunk */
    uint64_t ticket;
    uint32_t done;     /* chunks of the current job finished */
    uint32_t wake;     /* futex word: the generation's low 32 bits */
    uint32_t sleepers; /* workers in (or entering) futex_wait */
    uint32_t stop;
} mote_threads;

/* Start n_threads - 1 workers (n_threads counts the caller, 1..MOTE_THREADS_MAX).
 * Returns 0, or -1 with errno set. */
int mote_threads_start(mote_threads *pool, uint32_t n_threads);

/* Point the state's parallel_rows hook at the pool. */
void mote_threads_attach(mote_threads *pool, mote_state *s);

/* The hook itself: run fn over [0, rows) split across the pool; returns when done. */
void mote_threads_run(void *pool, mote_rows_fn fn, void *ctx, uint32_t rows);

/* Stop and join the workers. */
void mote_threads_stop(mote_threads *pool);

#endif /* MOTE_THREADS_H */
