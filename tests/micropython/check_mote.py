# check_mote.py - runs ON MicroPython (unix or qemu port): the `mote` module against
# what tests/test_micropython.py expects. The host puts a preamble before it that
# defines load_blob(), crc_blob() (the blob with one byte flipped), PROMPT, CTX, N,
# HEAP_ARENA_CTX and SEEDED (float arguments reach the module: the sampled run and a
# refused top_p). Every result is one line "@KEY <json>".
import gc
import json

import mote


def emit(key, value):
    print("@" + key, json.dumps(value))


def run(model, **kw):
    g = model.generate(PROMPT, **kw)
    ids, text = [], []
    assert g.end is None
    for piece in g:
        ids.append(g.token)
        text.append(piece)
    return [ids, "".join(text), g.end]


def refused(make):
    try:
        make()
    except (ValueError, MemoryError, RuntimeError) as e:
        return [type(e).__name__, str(e)]
    return ["accepted", ""]


def superseded():
    first = model.generate(PROMPT, n=4)
    next(first)
    model.generate(PROMPT, n=4)
    next(first)


blob = load_blob()
model = mote.Model(blob, ctx=CTX)
emit("info", model.info())
emit("greedy", run(model, n=N))
if SEEDED:
    emit("seeded", run(model, n=N, temperature=0.8, top_p=0.9, seed=42))

# Bad blobs: ValueError with the firmware's reason, and the interpreter goes on.
emit("bad", {
    "crc": refused(lambda: mote.Model(crc_blob())),
    "truncated": refused(lambda: mote.Model(memoryview(blob)[: len(blob) - 1])),
    "magic": refused(lambda: mote.Model(b"MOTX" + bytes(blob[4:256]))),
})
emit("arguments", [
    refused(lambda: model.generate("", n=4)),
    refused(lambda: model.generate(PROMPT, n=-1)),
    refused(superseded),
] + ([refused(lambda: model.generate(PROMPT, top_p=0.0))] if SEEDED else []))
emit("misaligned", refused(lambda: mote.Model(memoryview(blob)[1:])))
gc.collect()  # what the refused calls left; the armv6m module's code takes 48 KB of heap
emit("small_arena", refused(lambda: mote.Model(blob, ctx=CTX, arena=bytearray(4096))))
if HEAP_ARENA_CTX:
    emit("heap_arena", refused(lambda: mote.Model(blob, ctx=HEAP_ARENA_CTX)))



def again():
    """The same model after all that. In a function: a value the module-level code
    pushes stays in its value stack's slot after use, where the collector finds it."""
    emit("again", run(model, n=N))
    return model.info()["arena"]


# Then one on a caller's arena of exactly the size info() reports (heap blocks are
# 16-byte aligned): the same tokens. The first model must be collectable by then
# (a `del` would leave it in the globals table's slot) for the armv6m module to fit.
needed = again()
model = None
gc.collect()
emit("caller_arena", run(mote.Model(blob, ctx=CTX, arena=bytearray(needed)), n=N))
emit("done", True)
