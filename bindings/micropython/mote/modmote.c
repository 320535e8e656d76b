/* modmote.c - `import mote` for MicroPython: the Mote runtime core as a module. One
 * source for both builds: a user C module (micropython.mk / micropython.cmake, linked
 * into the firmware) and a native .mpy (../natmod/Makefile, MICROPY_ENABLE_DYNRUNTIME,
 * loaded at run time). The core is reached only through its public headers.
 *
 *     m = mote.Model(blob, ctx=0, arena=None)   validate the blob in place (the firmware's
 *                                               checks and reasons: ValueError)
 *     for piece in m.generate("Once upon a time", n=64): print(piece, end="")
 *
 * Memory: the blob is used where it lies (any read buffer: bytes, a ROMFS file, a
 * memoryview of flash) and kept referenced by the Model. The arena is the caller's
 * writable buffer when `arena` is given, otherwise allocated once on the MicroPython
 * heap when the Model is made; generations reuse it. docs/micropython.md has it all. */
#include <stddef.h>
#include <stdint.h>

#include "generate.h"
#include "mote.h"
#include "text.h"

#if MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/runtime.h"
#endif

/* Argument tables hold qstrs, which a native module only knows at load time. */
#if MICROPY_ENABLE_DYNRUNTIME
#define ARG_TABLE mp_arg_t
#else
#define ARG_TABLE static const mp_arg_t
#endif

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#ifdef MOTE_KERNELS
#define KERNEL_SET STRINGIFY(MOTE_KERNELS)
#else
#define KERNEL_SET "ref"
#endif

/* The longest text one token can give (the tokenizer's contract, as the console's). */
#define PIECE_CAP MOTE_TOK_DECODE_CAP(MOTE_TOK_MAX_TOKEN_BYTES)

typedef struct {
    mp_obj_base_t base;
    mp_obj_t blob;        /* keeps the blob's memory alive */
    mp_obj_t arena_obj;   /* the caller's arena, or None (then arena_block holds ours) */
    void *arena_block;    /* our arena's heap block, referenced here for the GC */
    uint32_t arena_bytes; /* what mote_arena_bytes asked for */
    uint32_t generation;  /* bumped by every generate(): the state belongs to the newest */
    mote_model model;
    mote_state state;
} mote_mp_model;

typedef struct {
    mp_obj_base_t base;
    mp_obj_t model_obj;
    uint32_t generation;
    int32_t token;         /* id of the token the last piece came from, -1 before */
    uint32_t piece_len;
    int ended;
    mote_sampler sampler;
    mote_gen_io io;
    mote_gen gen;
    char piece[PIECE_CAP];
} mote_mp_generation;

/* The types: constant in the firmware. A native module builds them on the heap in
 * mpy_init (it cannot hold static writable data) and finds Generation as an attribute
 * of Model (its functions do not run in the module's globals). */
#if MICROPY_ENABLE_DYNRUNTIME
#define GENERATION_TYPE(model_type) \
    ((const mp_obj_type_t *)MP_OBJ_TO_PTR(mp_load_attr(MP_OBJ_FROM_PTR(model_type), MP_QSTR_Generation)))
#else
static const mp_obj_type_t mote_type_Generation;
#define GENERATION_TYPE(model_type) (&mote_type_Generation)
#endif

/* ------------------------------------------------------------------ errors */

#if MICROPY_ENABLE_DYNRUNTIME
#define MEMORY_ERROR ((const mp_obj_type_t *)MP_OBJ_TO_PTR(mp_load_global(MP_QSTR_MemoryError)))
#else
#define MEMORY_ERROR (&mp_type_MemoryError)
#endif

static MP_NORETURN void raise_text(const mp_obj_type_t *type, const mote_text *t)
{
    mp_raise_type_arg(type, mp_obj_new_str(t->buf, t->len));
}

static MP_NORETURN void raise_str(const mp_obj_type_t *type, const char *msg)
{
    char buf[160];
    mote_text t;
    mote_text_init(&t, buf, sizeof buf);
    mote_text_str(&t, msg);
    raise_text(type, &t);
}

/* "arena too small: 97104 bytes needed for ctx 256, 1000 given" */
static MP_NORETURN void raise_arena(const mp_obj_type_t *type, const char *what, uint32_t needed,
                                    uint32_t ctx, size_t given, const char *given_what)
{
    char buf[160];
    mote_text t;
    mote_text_init(&t, buf, sizeof buf);
    mote_text_str(&t, what);
    mote_text_str(&t, ": ");
    mote_text_u64(&t, needed);
    mote_text_str(&t, " bytes needed for ctx ");
    mote_text_u64(&t, ctx);
    mote_text_str(&t, ", ");
    mote_text_u64(&t, given);
    mote_text_str(&t, given_what);
    raise_text(type, &t);
}

/* An integer argument within [lo, hi]. */
static mp_int_t int_arg(mp_int_t n, const char *name, mp_int_t lo, mp_int_t hi)
{
    if (n < lo || n > hi) {
        char buf[96];
        mote_text t;
        mote_text_init(&t, buf, sizeof buf);
        mote_text_str(&t, name);
        mote_text_str(&t, " must be from ");
        mote_text_u64(&t, (uint64_t)lo);
        mote_text_str(&t, " to ");
        mote_text_u64(&t, (uint64_t)hi);
        raise_text(&mp_type_ValueError, &t);
    }
    return n;
}

/* ------------------------------------------------------------------ Model */

static void *heap_alloc_maybe(size_t n)
{
#if MICROPY_ENABLE_DYNRUNTIME
    return m_realloc_maybe(NULL, n, false);
#else
    return m_malloc_maybe(n);
#endif
}

static void *align16(void *p) { return (void *)(((uintptr_t)p + 15u) & ~(uintptr_t)15u); }

/* Model(blob, ctx=0, arena=None) */
static mp_obj_t model_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
                               const mp_obj_t *all_args)
{
    enum { ARG_blob, ARG_ctx, ARG_arena };
    ARG_TABLE allowed[] = {
        {MP_QSTR_blob, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
        {MP_QSTR_ctx, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = 0}},
        {MP_QSTR_arena, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed), allowed, args);

    mp_buffer_info_t blob;
    mp_get_buffer_raise(args[ARG_blob].u_obj, &blob, MP_BUFFER_READ);
    /* the model's views of the blob take 10+ KB (a table per possible layer) */
    mote_mp_model *self = heap_alloc_maybe(sizeof *self);
    if (self == NULL) {
        char buf[96];
        mote_text t;
        mote_text_init(&t, buf, sizeof buf);
        mote_text_str(&t, "no room on the heap for the model: ");
        mote_text_u64(&t, sizeof *self);
        mote_text_str(&t, " bytes needed");
        raise_text(MEMORY_ERROR, &t);
    }
    self->base.type = type;
    self->blob = args[ARG_blob].u_obj;
    self->arena_obj = mp_const_none;
    self->arena_block = NULL;
    self->generation = 0;

    /* the core reads norms and scales through typed pointers (mote_model_open) */
    const char *refused = ((uintptr_t)blob.buf & 3u) != 0u ? "the blob must start on a 4-byte boundary"
                                                           : NULL;
    /* the firmware's validation, CRC included, with its reason */
    if (refused == NULL) {
        const mote_status st = mote_model_open(&self->model, blob.buf, blob.len, 1);
        if (st != MOTE_OK) refused = mote_status_str(st);
    }
    if (refused != NULL) {
        m_del_obj(mote_mp_model, self); /* not left to the next collection */
        raise_str(&mp_type_ValueError, refused);
    }

    const mote_config *c = &self->model.config;
    uint32_t ctx = (uint32_t)int_arg(args[ARG_ctx].u_int, "ctx", 0,
                                     (mp_int_t)c->max_seq_len);
    if (ctx == 0u) ctx = c->ctx_len;
    self->arena_bytes = mote_arena_bytes(c, ctx);

    mp_obj_t arena_arg = args[ARG_arena].u_obj;
    uint8_t *arena;
    size_t usable;
    if (arena_arg != MP_OBJ_NULL && arena_arg != mp_const_none) {
        mp_buffer_info_t buf;
        mp_get_buffer_raise(arena_arg, &buf, MP_BUFFER_RW);
        arena = align16(buf.buf);
        const size_t skip = (size_t)(arena - (uint8_t *)buf.buf);
        usable = buf.len > skip ? buf.len - skip : 0u;
        if (usable < self->arena_bytes) {
            const uint32_t needed = self->arena_bytes;
            m_del_obj(mote_mp_model, self);
            raise_arena(&mp_type_ValueError, "arena too small", needed, ctx, usable,
                        " given (after 16-byte alignment)");
        }
        self->arena_obj = arena_arg;
    } else {
        /* once, here: 15 spare bytes so that any heap alignment can be rounded up */
        usable = (size_t)self->arena_bytes + 15u;
        uint8_t *block = heap_alloc_maybe(usable);
        if (block == NULL) {
            const uint32_t needed = self->arena_bytes;
            m_del_obj(mote_mp_model, self);
            raise_arena(MEMORY_ERROR, "no room on the heap for the arena", needed, ctx, usable,
                        " bytes asked for (pass arena= or a smaller ctx)");
        }
        self->arena_block = block;
        arena = align16(block);
        usable -= (size_t)(arena - block);
    }
    const mote_status ss = mote_state_init(&self->state, &self->model, arena, usable, ctx);
    if (ss != MOTE_OK) raise_str(&mp_type_ValueError, mote_status_str(ss));
    return MP_OBJ_FROM_PTR(self);
}

static void dict_set(mp_obj_t d, const char *key, mp_obj_t value)
{
    mp_obj_dict_store(d, mp_obj_new_str(key, strlen(key)), value);
}

static mp_obj_t uint_obj(uint64_t v) { return mp_obj_new_int_from_uint((mp_uint_t)v); }

/* info(): the banner's and /info's fields, and the kernel set compiled in. */
static mp_obj_t model_info(mp_obj_t self_in)
{
    static const char *const dtype_names[MOTE_DTYPE_CODES] = MOTE_DTYPE_NAMES_INIT;
    mote_mp_model *self = MP_OBJ_TO_PTR(self_in);
    const mote_config *c = &self->model.config;
    const uint8_t dtype = self->model.layers[0].wq.dtype;
    const char *quant = dtype < MOTE_DTYPE_CODES && dtype_names[dtype] ? dtype_names[dtype] : "?";
    const char *activation = c->activation == MOTE_ACT_RELU ? "relu" : "silu";
    mp_obj_t d = mp_obj_new_dict(0);
    dict_set(d, "model", mp_obj_new_str(c->name, strlen(c->name)));
    dict_set(d, "params", uint_obj(mote_param_count(c)));
    dict_set(d, "ctx", uint_obj(self->state.ctx));
    dict_set(d, "arena", uint_obj(self->arena_bytes));
    dict_set(d, "quant", mp_obj_new_str(quant, strlen(quant)));
    dict_set(d, "group", uint_obj(c->group_size));
    dict_set(d, "dim", uint_obj(c->dim));
    dict_set(d, "hidden", uint_obj(c->hidden_dim));
    dict_set(d, "layers", uint_obj(c->n_layers));
    dict_set(d, "heads", uint_obj(c->n_heads));
    dict_set(d, "kv_heads", uint_obj(c->n_kv_heads));
    dict_set(d, "head_dim", uint_obj(c->head_dim));
    dict_set(d, "vocab", uint_obj(c->vocab_size));
    dict_set(d, "max_seq_len", uint_obj(c->max_seq_len));
    dict_set(d, "activation", mp_obj_new_str(activation, strlen(activation)));
    dict_set(d, "blob", uint_obj(self->model.blob_bytes));
    dict_set(d, "kernels", mp_obj_new_str(KERNEL_SET, sizeof KERNEL_SET - 1u));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(model_info_obj, model_info);

/* ------------------------------------------------------------------ generation */

static void on_text(void *ctx, const char *text, uint32_t len)
{
    mote_mp_generation *g = ctx;
    (void)text; /* always g->piece */
    g->piece_len = len;
}

static void on_token(void *ctx, int32_t token)
{
    mote_mp_generation *g = ctx;
    g->token = token;
}

/* Ctrl-C (a pending KeyboardInterrupt) stops a prompt's prefill between tokens. A
 * native module cannot see the interpreter's state: there the prefill runs to its end
 * and the interpreter raises at the next token. */
#if !MICROPY_ENABLE_DYNRUNTIME
static int interrupt_pending(void *ctx)
{
    (void)ctx;
    return MP_STATE_THREAD(mp_pending_exception) != MP_OBJ_NULL;
}
#endif

static float float_arg(mp_obj_t v)
{
#if MICROPY_ENABLE_DYNRUNTIME
    return mp_obj_get_float_to_f(v);
#else
    return (float)mp_obj_get_float(v);
#endif
}

/* generate(prompt, n=64, temperature=0.0, top_p=1.0, top_k=0, seed=0): an iterator of
 * text pieces, one per generated token ("" while a character spans tokens), ending at
 * the model's end token, after n tokens or when the context is full. The prompt runs
 * through the model here; each next() runs one token. */
static mp_obj_t model_generate(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args)
{
    enum { ARG_self, ARG_prompt, ARG_n, ARG_temperature, ARG_top_p, ARG_top_k, ARG_seed };
    ARG_TABLE allowed[] = {
        {MP_QSTR_self, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
        {MP_QSTR_prompt, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
        {MP_QSTR_n, MP_ARG_INT, {.u_int = 64}},
        {MP_QSTR_temperature, MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
        {MP_QSTR_top_p, MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL}},
        {MP_QSTR_top_k, MP_ARG_INT, {.u_int = 0}},
        {MP_QSTR_seed, MP_ARG_INT, {.u_int = 0}},
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed)];
    mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed), allowed, args);
    mote_mp_model *model = MP_OBJ_TO_PTR(args[ARG_self].u_obj);

    size_t len;
    const char *prompt = mp_obj_str_get_data(args[ARG_prompt].u_obj, &len);
    if (len == 0u) raise_str(&mp_type_ValueError, "empty prompt");
    const mp_int_t n = int_arg(args[ARG_n].u_int, "n", 0, INT32_MAX);
    const float temperature =
        args[ARG_temperature].u_obj == MP_OBJ_NULL ? 0.0f : float_arg(args[ARG_temperature].u_obj);
    const float top_p = args[ARG_top_p].u_obj == MP_OBJ_NULL ? 1.0f : float_arg(args[ARG_top_p].u_obj);
    if (!(temperature >= 0.0f && temperature <= 3.4e38f))
        raise_str(&mp_type_ValueError, "temperature must be a number from 0 (greedy) up");
    if (!(top_p > 0.0f && top_p <= 1.0f))
        raise_str(&mp_type_ValueError, "top_p must be above 0 and at most 1");
    const mp_int_t top_k = int_arg(args[ARG_top_k].u_int, "top_k", 0, INT32_MAX);
    const mp_int_t seed = int_arg(args[ARG_seed].u_int, "seed", 0, MP_INT_MAX);

    mote_mp_generation *g = mp_obj_malloc(mote_mp_generation, GENERATION_TYPE(model->base.type));
    g->model_obj = args[ARG_self].u_obj;
    g->generation = ++model->generation;
    g->token = -1;
    g->piece_len = 0;
    g->ended = 0;
    mote_sampler_init(&g->sampler, temperature, top_p, (uint32_t)top_k, (uint64_t)seed);
    g->io = (mote_gen_io){.max_new_tokens = (uint32_t)n,
                          .stop_at_end = 1,
                          .write = on_text,
                          .text = g->piece,
                          .text_cap = sizeof g->piece,
                          .token = on_token,
#if !MICROPY_ENABLE_DYNRUNTIME
                          .stop = interrupt_pending,
#endif
                          .ctx = g};

    /* the prompt's ids live only until the prefill is done */
    const size_t cap = len + 2u;
    int32_t *ids = m_new(int32_t, cap);
    const int32_t n_prompt =
        mote_gen_encode(&model->model.tokenizer, prompt, (uint32_t)len, ids, (uint32_t)cap);
    if (n_prompt <= 0) raise_str(&mp_type_ValueError, "the prompt cannot be encoded");
    const mote_status st =
        mote_gen_start(&g->gen, &model->state, &g->sampler, ids, (uint32_t)n_prompt, 0, &g->io);
    m_del(int32_t, ids, cap);
    if (st != MOTE_OK) {
        char buf[96];
        mote_text t;
        mote_text_init(&t, buf, sizeof buf);
        mote_text_str(&t, "prompt of ");
        mote_text_u64(&t, (uint64_t)n_prompt);
        mote_text_str(&t, " tokens does not fit the context of ");
        mote_text_u64(&t, model->state.ctx);
        raise_text(&mp_type_ValueError, &t);
    }
#if !MICROPY_ENABLE_DYNRUNTIME
    mp_handle_pending(MP_HANDLE_PENDING_CALLBACKS_AND_EXCEPTIONS);
#endif
    return MP_OBJ_FROM_PTR(g);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(model_generate_obj, 2, model_generate);

static mp_obj_t generation_iternext(mp_obj_t self_in)
{
    mote_mp_generation *g = MP_OBJ_TO_PTR(self_in);
    mote_mp_model *model = MP_OBJ_TO_PTR(g->model_obj);
#if !MICROPY_ENABLE_DYNRUNTIME
    /* between tokens, even when C code (list(), str.join) drives the iterator */
    mp_handle_pending(MP_HANDLE_PENDING_CALLBACKS_AND_EXCEPTIONS);
#endif
    if (g->ended) return MP_OBJ_STOP_ITERATION;
    if (g->generation != model->generation)
        raise_str(&mp_type_RuntimeError, "a later generate() on this model took over its state");
    g->piece_len = 0;
    if (!mote_gen_step(&g->gen)) {
        g->ended = 1;
        /* text still held back when the stream ends inside a character (U+FFFD) */
        if (g->piece_len == 0u) return MP_OBJ_STOP_ITERATION;
    }
    return mp_obj_new_str(g->piece, g->piece_len);
}

/* g.token: the id of the token the last piece came from (-1 before the first);
 * g.end: None while it runs, then why it ended, as the console's stats line names it
 * ("eos", "length", "context", "stopped", "numeric": a logit overflowed) */
static void generation_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest)
{
    mote_mp_generation *g = MP_OBJ_TO_PTR(self_in);
    if (dest[0] != MP_OBJ_NULL) return;
    if (attr == MP_QSTR_token) {
        dest[0] = mp_obj_new_int(g->token);
    } else if (attr == MP_QSTR_end) {
        const char *end = mote_end_name(g->gen.stats.end);
        dest[0] = g->ended ? mp_obj_new_str(end, strlen(end)) : mp_const_none;
    }
}

/* ------------------------------------------------------------------ registration */

#if MICROPY_ENABLE_DYNRUNTIME

static void set_type(mp_obj_full_type_t *t, qstr name)
{
    t->base.type = (void *)&mp_type_type;
    t->flags = MP_TYPE_FLAG_NONE;
    t->name = name;
}

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args)
{
    MP_DYNRUNTIME_INIT_ENTRY

    mp_obj_full_type_t *model_type = m_malloc(sizeof *model_type);
    memset(model_type, 0, sizeof *model_type);
    set_type(model_type, MP_QSTR_Model);
    mp_obj_full_type_t *gen_type = m_malloc(sizeof *gen_type);
    memset(gen_type, 0, sizeof *gen_type);
    set_type(gen_type, MP_QSTR_Generation);
    gen_type->flags = MP_TYPE_FLAG_ITER_IS_ITERNEXT;
    MP_OBJ_TYPE_SET_SLOT(gen_type, iter, generation_iternext, 0);
    MP_OBJ_TYPE_SET_SLOT(gen_type, attr, generation_attr, 1);
    mp_store_global(MP_QSTR_Generation, MP_OBJ_FROM_PTR(gen_type));

    mp_obj_t locals = mp_obj_new_dict(3);
    mp_obj_dict_store(locals, MP_OBJ_NEW_QSTR(MP_QSTR_info), MP_OBJ_FROM_PTR(&model_info_obj));
    mp_obj_dict_store(locals, MP_OBJ_NEW_QSTR(MP_QSTR_generate), MP_OBJ_FROM_PTR(&model_generate_obj));
    mp_obj_dict_store(locals, MP_OBJ_NEW_QSTR(MP_QSTR_Generation), MP_OBJ_FROM_PTR(gen_type));
    MP_OBJ_TYPE_SET_SLOT(model_type, make_new, model_make_new, 0);
    MP_OBJ_TYPE_SET_SLOT(model_type, locals_dict, MP_OBJ_TO_PTR(locals), 1);
    mp_store_global(MP_QSTR_Model, MP_OBJ_FROM_PTR(model_type));

    MP_DYNRUNTIME_INIT_EXIT
}

#else

static MP_DEFINE_CONST_OBJ_TYPE(mote_type_Generation, MP_QSTR_Generation,
                                MP_TYPE_FLAG_ITER_IS_ITERNEXT, iter, generation_iternext, attr,
                                generation_attr);

static const mp_rom_map_elem_t model_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&model_info_obj)},
    {MP_ROM_QSTR(MP_QSTR_generate), MP_ROM_PTR(&model_generate_obj)},
    {MP_ROM_QSTR(MP_QSTR_Generation), MP_ROM_PTR(&mote_type_Generation)},
};
static MP_DEFINE_CONST_DICT(model_locals, model_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(mote_type_Model, MP_QSTR_Model, MP_TYPE_FLAG_NONE, make_new,
                                model_make_new, locals_dict, &model_locals);

static const mp_rom_map_elem_t mote_module_globals_table[] = {
    {MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_mote)},
    {MP_ROM_QSTR(MP_QSTR_Model), MP_ROM_PTR(&mote_type_Model)},
    {MP_ROM_QSTR(MP_QSTR_Generation), MP_ROM_PTR(&mote_type_Generation)},
};
static MP_DEFINE_CONST_DICT(mote_module_globals, mote_module_globals_table);

const mp_obj_module_t mote_user_cmodule = {
    .base = {&mp_type_module},
    .globals = (mp_obj_dict_t *)&mote_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_mote, mote_user_cmodule);

#endif
