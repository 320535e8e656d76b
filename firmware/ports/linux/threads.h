/* threads.h - a persistent pthread pool behind mote_state's parallel_rows hook: the
 * forward pass hands it row ranges of its matrix-vector products. Workers spin
 * briefly between jobs (a token's matvecs are microseconds apart), then sleep. */
#ifndef MOTE_THREADS_H
#define MOTE_THREADS_H

#include <pthread.h>
#include <stdint.h>

#include "mote.h"

#define MOTE_THREADS_MAX 64u

typedef struct mote_threads {
    pthread_t workers[MOTE_THREADS_MAX];
    uint32_t n_threads; /* the caller's thread included */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* the current job, published by bumping `generation` */
    mote_rows_fn fn;
    void *ctx;
    uint32_t rows, chunk;
    uint32_t generation; /* atomics (GCC builtins) */
    uint32_t pending;    /* workers still running the job */
    uint32_t sleeping;   /* workers blocked on `wake` */
    uint32_t stop;
    uint32_t next_index; /* hands each worker its index at start */
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
