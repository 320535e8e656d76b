/* threads.c - the pool of threads.h. One job at a time. The caller cuts it into
 * chunks (multiples of 8 rows, a few per thread), publishes it by storing a new
 * ticket, then claims and runs chunks like any worker; it waits only for chunks that
 * workers claimed and have not finished. Claiming is a compare-and-swap on the ticket
 * that also checks the generation, so a late worker can never take a chunk of a newer
 * job; and since a job is not replaced before all its chunks are done, a worker that
 * holds a chunk can read the job's fields without a race.
 * Sleeping is a Dekker handshake on sequentially consistent atomics: a worker counts
 * itself in `sleepers` before futex_wait re-checks `wake`; the caller stores `wake`
 * before it reads `sleepers`. Either the caller sees the sleeper and wakes it, or the
 * worker sees the new generation and does not sleep. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* syscall(); the Makefile also defines it */
#endif
#include "threads.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* pause-loops a worker waits for the next job before sleeping: a few microseconds,
 * enough for the short gaps between a layer's products (norm, SiLU), not for the
 * attention between wq/wk/wv and wo. Spinning longer stole time from the caller on an
 * oversubscribed machine (ref-11m, 2 threads on a shared 2-core host: 2000 loops gave
 * about 0.7x the speed of 100 loops, 20000 loops 0.5x). */
#define SPIN_BEFORE_SLEEP 100u
#define SPIN_BEFORE_YIELD 2000u /* the caller, waiting for a claimed chunk */
/* A caller that waited longer than its spin for a worker's chunk (the worker was
 * preempted: the machine is busier than the pool, and such a wait lasts a scheduler
 * time slice, milliseconds) runs the next jobs alone: 32 after a first stall, twice
 * as many after each further one, up to 4096 (about 120 tokens of ref-11m); each job
 * that runs in parallel without a stall halves the length again. On an oversubscribed
 * machine two threads then cost little more than one; without stalls every job above
 * the forward pass's threshold runs in parallel. */
#define BACKOFF_MIN 32u
#define BACKOFF_MAX 4096u
#define ROW_ALIGN 8u            /* chunks start on multiples of 8 rows (SIMD row blocks) */
#define CHUNKS_PER_THREAD 4u    /* a few chunks each: an idle thread takes over the rest */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(uint32_t *word, uint32_t expected)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static uint32_t ticket_generation(uint64_t t) { return (uint32_t)(t >> 32); }

/* Claim the next chunk of job `generation`: its index, or -1 when none is left. */
static int32_t claim(mote_threads *p, uint32_t generation)
{
    uint64_t t = __atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        const uint32_t next = (uint32_t)t & 0xFFFFu, n_chunks = (uint32_t)(t >> 16) & 0xFFFFu;
        if (ticket_generation(t) != generation || next >= n_chunks)
            return -1;
        if (__atomic_compare_exchange_n(&p->ticket, &t, t + 1u, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (int32_t)next;
    }
}

/* Claim and run chunks of job `generation` until none is left. */
static void run_chunks(mote_threads *p, uint32_t generation)
{
    int32_t index;
    while ((index = claim(p, generation)) >= 0) {
        const uint64_t begin = (uint64_t)(uint32_t)index * p->chunk_rows;
        const uint64_t end = begin + p->chunk_rows < p->rows ? begin + p->chunk_rows : p->rows;
        p->fn(p->ctx, (uint32_t)begin, (uint32_t)end);
        __atomic_add_fetch(&p->done, 1u, __ATOMIC_RELEASE);
    }
}

static void *worker_main(void *arg)
{
    mote_threads *p = (mote_threads *)arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t spins = 0, generation;
        while ((generation = ticket_generation(__atomic_load_n(&p->ticket, __ATOMIC_ACQUIRE))) ==
               seen) {
            if (++spins < SPIN_BEFORE_SLEEP) {
                cpu_relax();
                continue;
            }
            __atomic_add_fetch(&p->sleepers, 1u, __ATOMIC_SEQ_CST);
            futex_wait(&p->wake, seen); /* returns at once if `wake` moved on */
            __atomic_sub_fetch(&p->sleepers, 1u, __ATOMIC_SEQ_CST);
            spins = 0;
        }
        seen = generation;
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return NULL;
        run_chunks(p, generation);
    }
}

/* Publish job `n_chunks` under a new generation and wake sleeping workers. */
static uint32_t publish(mote_threads *p, uint32_t n_chunks)
{
    const uint32_t generation = ticket_generation(__atomic_load_n(&p->ticket, __ATOMIC_RELAXED)) + 1u;
    __atomic_store_n(&p->ticket, (uint64_t)generation << 32 | (uint64_t)n_chunks << 16,
                     __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->wake, generation, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) != 0)
        futex_wake_all(&p->wake);
    return generation;
}

void mote_threads_run(void *pool, mote_rows_fn fn, void *ctx, uint32_t rows)
{
    mote_threads *p = (mote_threads *)pool;
    const uint32_t blocks = (rows + ROW_ALIGN - 1u) / ROW_ALIGN;
    uint32_t n_chunks = p->n_threads * CHUNKS_PER_THREAD, blocks_per_chunk, generation, spins = 0;
    int stalled = 0;
    if (p->n_threads < 2u || blocks < 2u || p->inline_jobs > 0) {
        if (p->inline_jobs > 0)
            p->inline_jobs--;
        fn(ctx, 0, rows);
        return;
    }
    if (n_chunks > blocks)
        n_chunks = blocks;
    blocks_per_chunk = (blocks + n_chunks - 1u) / n_chunks;
    p->fn = fn;
    p->ctx = ctx;
    p->rows = rows;
    p->chunk_rows = blocks_per_chunk * ROW_ALIGN;
    n_chunks = (blocks + blocks_per_chunk - 1u) / blocks_per_chunk;
    __atomic_store_n(&p->done, 0u, __ATOMIC_RELAXED); /* published by the ticket store */
    generation = publish(p, n_chunks);
    run_chunks(p, generation);
    while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) != n_chunks) {
        if (++spins > SPIN_BEFORE_YIELD) {
            sched_yield(); /* a worker holding a chunk was descheduled: let it run */
            stalled = 1;
        } else {
            cpu_relax();
        }
    }
    if (stalled) {
        p->backoff = p->backoff < BACKOFF_MIN ? BACKOFF_MIN
                     : p->backoff < BACKOFF_MAX ? 2u * p->backoff : BACKOFF_MAX;
        p->inline_jobs = p->backoff;
    } else {
        p->backoff /= 2u;
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
    for (i = 1; i < n_threads; i++) {
        err = pthread_create(&p->workers[i], NULL, worker_main, p);
        if (err != 0) {
            mote_threads_stop(p);
            errno = err;
            return -1;
        }
        p->n_threads++;
    }
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
    publish(p, 0);
    for (i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    p->n_threads = 1;
}
