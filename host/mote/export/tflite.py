"""One decode step of a Llama model as a TensorFlow Lite flatbuffer for TensorFlow
Lite Micro: `mote export MODEL --tflite OUT.tflite` (docs/export.md).

The graph takes a token and its position and returns the next token's logits; the
KV cache lives in resource variables that keep their values between invocations.
Quantized (SCHEMES), every matrix is int8 with one scale per output channel
(symmetric), and every matrix product is TFLM's integer FULLY_CONNECTED between a
QUANTIZE and a DEQUANTIZE whose per-tensor activation ranges are calibrated on text
through the float reference. The rest (RMSNorm, RoPE, attention over a float32
cache, softmax, SiLU, residuals) stays float32, step for step the float reference's
formulas.

The flatbuffer is written through the TFLite schema's object API that the
tflite-micro wheel ships (no TensorFlow), then re-aligned by the wheel's flatbuffer
aligner so that constant buffers get the 16-byte alignment the schema asks for.
tflite-micro is an optional extra: importing this module needs only numpy; the
first use of the schema or the interpreter raises one MoteError naming the pip
command when it is absent.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import struct
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mote.eval.perplexity import adds_bos, tokenizer_of
from mote.model import Model, MoteError
from mote.reference.forward import Runner, generate, rope_tables
from mote.reference.sample import Sampler

PIP_COMMAND = "pip install -e '.[tflite]'"
# Scores of the positions after the current one: far below any real score, finite so
# that softmax gives them exactly 0 without an inf - inf.
MASKED_SCORE = -1e30
FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3


def _tflite_micro(module: str):
    """A module of the tflite-micro wheel, or one MoteError saying how to install it."""
    try:
        return importlib.import_module(f"tflite_micro.{module}")
    except ImportError:
        raise MoteError(f"exporting to .tflite needs tflite-micro, an optional extra: {PIP_COMMAND}") from None


def require():
    """The TFLite schema module of the tflite-micro wheel (its object API writes the
    flatbuffer), or one MoteError naming the pip command."""
    return _tflite_micro("tensorflow.lite.micro.python.schema_py_generated")


# ------------------------------------------------------------------ calibration


class _RangeRunner(Runner):
    """The float reference, recording the range of every matrix product's input and
    output: {matrix name: [in_min, in_max, out_min, out_max]}."""

    def __init__(self, model: Model, ctx: int):
        super().__init__(model, ctx)
        self.ranges: dict[str, np.ndarray] = {}

    def _matmul(self, x: np.ndarray, name: str) -> np.ndarray:
        y = super()._matmul(x, name)
        seen = np.array([x.min(), x.max(), y.min(), y.max()], np.float64)
        r = self.ranges.setdefault(name, seen.copy())
        r[0::2] = np.minimum(r[0::2], seen[0::2])
        r[1::2] = np.maximum(r[1::2], seen[1::2])
        return y


def calibrate(model: Model, ctx: int, windows: list[list[int]]) -> dict[str, np.ndarray]:
    """Activation ranges of every matrix product over the calibration windows."""
    runner = _RangeRunner(model, ctx)
    for window in windows:
        runner.reset()
        runner.forward_batch(window[:ctx], 0)
    return runner.ranges


# Quantization schemes, by TFLite's names, and their activation type: int8 weights per
# output channel with asymmetric int8 activations ("int8", its full-integer scheme) or
# symmetric int16 activations ("16x8"); or none at all ("float32": float weights too,
# since TFLM has no kernel for int8 weights with float activations).
SCHEMES = {"int8": np.int8, "16x8": np.int16, "float32": None}


def activation_quantization(lo: float, hi: float, quant: str = "int8") -> tuple[float, int]:
    """(scale, zero point) covering [lo, hi] as TFLite quantizes activations: int8
    asymmetric, with 0 exactly representable; int16 symmetric (zero point 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if quant == "16x8":
        return max(-lo, hi) / 32767.0 or 1e-8, 0
    scale = (hi - lo) / 255.0 or 1e-8
    zero_point = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return scale, zero_point


def quantize_per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes (rows, cols) and float32 scales (rows,): one per output
    channel, the largest magnitude of the row mapped to 127."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=1)
    scales = (np.maximum(amax, np.float32(1e-30)) / np.float32(127)).astype(np.float32)
    codes = np.clip(np.rint(w / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


# ------------------------------------------------------------------ the graph


class _Graph:
    """One subgraph, its constant buffers and operator codes, in the schema's
    object API. Tensors are referred to by index."""

    def __init__(self):
        self.fb = fb = require()
        self.types = {np.dtype(np.float32): fb.TensorType.FLOAT32, np.dtype(np.int8): fb.TensorType.INT8,
                      np.dtype(np.int16): fb.TensorType.INT16,
                      np.dtype(np.int32): fb.TensorType.INT32, np.dtype(np.bool_): fb.TensorType.BOOL}
        empty = fb.BufferT()
        self.buffers = [empty]  # buffer 0 is the empty buffer, by convention
        self.tensors: list = []
        self.operators: list = []
        self.opcodes: dict[int, int] = {}  # builtin code -> index in the model's table
        self.op_counts: Counter[str] = Counter()
        self.weight_bytes = 0

    def buffer(self, array: np.ndarray) -> int:
        b = self.fb.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.buffers.append(b)
        self.weight_bytes += b.data.size
        return len(self.buffers) - 1

    def tensor(self, name: str, shape, dtype, buffer: int = 0, quantization=None) -> int:
        t = self.fb.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = dtype if isinstance(dtype, int) else self.types[np.dtype(dtype)]
        t.buffer = buffer
        t.quantization = quantization
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, array: np.ndarray, quantization=None) -> int:
        return self.tensor(name, array.shape, array.dtype, self.buffer(array), quantization)

    def quant(self, scales, zero_points, axis: int = 0):
        q = self.fb.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(scales)]
        q.zeroPoint = [int(z) for z in np.atleast_1d(zero_points)]
        q.quantizedDimension = axis
        return q

    def op(self, kind: str, inputs: list[int], outputs: list[int], options=None) -> None:
        fb = self.fb
        code = getattr(fb.BuiltinOperator, kind)
        if code not in self.opcodes:
            self.opcodes[code] = len(self.opcodes)
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes[code]
        o.inputs, o.outputs = inputs, outputs
        if options is not None:
            o.builtinOptionsType = getattr(fb.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)
        self.op_counts[kind] += 1

    def apply(self, kind: str, inputs: list[int], name: str, shape, dtype=np.float32, options=None,
              quantization=None) -> int:
        """Add an operator with one new output tensor and return that tensor."""
        out = self.tensor(name, shape, dtype, quantization=quantization)
        self.op(kind, inputs, [out], options)
        return out

    def options(self, kind: str, **fields):
        o = getattr(self.fb, f"{kind}OptionsT")()
        for key, value in fields.items():
            assert hasattr(o, key), key  # a typo would be ignored by the schema
            setattr(o, key, value)
        return o

    def serialize(self, inputs: list[int], outputs: list[int], description: str,
                  metadata: dict[str, bytes]) -> bytes:
        import flatbuffers

        fb = self.fb
        sub = fb.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = self.tensors, self.operators, inputs, outputs
        sub.name = "decode_step"
        model = fb.ModelT()
        model.version = SCHEMA_VERSION
        model.description = description
        model.subgraphs = [sub]
        model.operatorCodes = []
        for code in sorted(self.opcodes, key=self.opcodes.get):
            oc = fb.OperatorCodeT()
            oc.builtinCode = code
            # readers take max(builtin, deprecated); codes above 127 keep the placeholder
            oc.deprecatedBuiltinCode = min(code, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            model.operatorCodes.append(oc)
        model.metadata = []
        for key, value in metadata.items():
            entry = fb.MetadataT()
            entry.name = key
            entry.buffer = len(self.buffers)
            b = fb.BufferT()
            b.data = np.frombuffer(value, np.uint8)
            self.buffers.append(b)
            model.metadata.append(entry)
        model.buffers = self.buffers
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return _aligned(bytes(builder.Output()))


def _aligned(data: bytes) -> bytes:
    """The flatbuffer rewritten by tflite-micro's aligner (the C++ flatbuffers
    library), which honours the schema's force_align: 16 on buffer data; Python's
    flatbuffers builder aligns a byte vector to 1 only."""
    align = _tflite_micro("tensorflow.lite.micro.tools.tflite_flatbuffer_align_wrapper")
    with tempfile.TemporaryDirectory(prefix="mote-tflite-") as tmp:
        raw, out = Path(tmp) / "raw.tflite", Path(tmp) / "aligned.tflite"
        raw.write_bytes(data)
        align.align_tflite_model(str(raw), str(out))
        return out.read_bytes()


@dataclass
class Exported:
    data: bytes  # the .tflite file
    ctx: int
    quant: str  # a key of SCHEMES
    op_counts: dict[str, int]  # operators in the graph, by kind
    weight_bytes: int  # constant buffers: weights, scales, tables
    cache_bytes: int  # the resource variables: float32 KV cache
    calibration_tokens: int


def build(model: Model, ctx: int, ranges: dict[str, np.ndarray], calibration_tokens: int,
          quant: str = "int8") -> Exported:
    """The decode-step graph of `model` for a cache of `ctx` positions, quantized by the
    scheme `quant` with the activation ranges `calibrate` measured (unused by float32)."""
    c = model.config
    act_type = SCHEMES[quant]
    hd, n_kv, group = c.head_dim, c.n_kv_heads, c.n_heads // c.n_kv_heads
    g = _Graph()
    I32, I8, F32 = np.int32, np.int8, np.float32

    def const(name, values, dtype):
        return g.const(name, np.asarray(values, dtype))

    def reshape(x, shape, name):
        return g.apply("RESHAPE", [x, const(f"{name}.shape", shape, I32)], name, shape,
                       options=g.options("Reshape", newShape=list(shape)))

    def gather(table, index, shape, name, axis=0, dtype=np.float32):
        return g.apply("GATHER", [table, index], name, shape, dtype, g.options("Gather", axis=axis))

    def weights(name, w):
        """A matrix as FULLY_CONNECTED takes it: int8 per output channel, or float32."""
        if act_type is None:
            return g.const(name, np.asarray(w, np.float32))
        codes, scales = quantize_per_channel(w)
        return g.const(name, codes, g.quant(scales, np.zeros(len(scales), np.int64)))

    def fully_connected(x, w, name, rows, matrix=None, fold=1.0):
        """W x for x from `quantize`: quantized, DEQUANTIZE(FULLY_CONNECTED) whose output
        covers the calibrated output range of `matrix` (default: `name`) times `fold`."""
        if act_type is None:
            return g.apply("FULLY_CONNECTED", [x, w, -1], f"{name}.out", [1, rows],
                           options=g.options("FullyConnected"))
        span = activation_quantization(*(ranges[matrix or name][2:] * fold), quant)
        y = g.apply("FULLY_CONNECTED", [x, w, -1], f"{name}.out", [1, rows], act_type,
                    g.options("FullyConnected"), g.quant(*span))
        return g.apply("DEQUANTIZE", [y], f"{name}.out.float", [1, rows])

    def quantize(x, matrix, width):
        """x as `matrix` (and every matrix sharing its input) takes it."""
        if act_type is None:
            return x
        span = activation_quantization(*ranges[matrix][:2], quant)
        return g.apply("QUANTIZE", [x], f"{matrix}.in.{quant}", [1, width], act_type, quantization=g.quant(*span))

    def rmsnorm(x, weight_name):
        square = g.apply("MUL", [x, x], f"{weight_name}.square", [1, c.dim])
        mean = g.apply("MEAN", [square, const(f"{weight_name}.axis", [1], I32)], f"{weight_name}.mean",
                       [1, 1], options=g.options("Reducer", keepDims=True))
        shifted = g.apply("ADD", [mean, const(f"{weight_name}.eps", [[c.norm_eps]], F32)],
                          f"{weight_name}.mean_eps", [1, 1])
        inverse = g.apply("RSQRT", [shifted], f"{weight_name}.rsqrt", [1, 1])
        normed = g.apply("MUL", [x, inverse], f"{weight_name}.normed", [1, c.dim])
        weight = const(weight_name, model.tensors[weight_name][None, :], F32)
        return g.apply("MUL", [normed, weight], f"{weight_name}.out", [1, c.dim])

    token = g.tensor("token", [1], I32)
    pos = g.tensor("pos", [1], I32)

    # embedding: int8 rows with one scale each (or float32); a tied classifier is the
    # same buffer, read by FULLY_CONNECTED
    embedding = model.tensors["tok_embedding"]
    table = weights("tok_embedding", embedding)
    if act_type is None:
        x = gather(table, token, [1, c.dim], "embedding")
    else:
        row = gather(table, token, [1, c.dim], "embedding.row", dtype=I8)
        row = g.apply("CAST", [row], "embedding.row.float", [1, c.dim])
        scales = np.asarray(g.tensors[table].quantization.scale, np.float32)
        row_scale = gather(const("tok_embedding.scales", scales, F32), token, [1], "embedding.scale")
        x = g.apply("MUL", [row, row_scale], "embedding", [1, c.dim])

    # per step, shared by every layer: RoPE rows, cache write offsets, the causal mask
    cos, sin = rope_tables(c, np.arange(ctx))  # (ctx, hd/2), pairs (2i, 2i+1)
    cos_row = gather(const("rope.cos", np.repeat(cos, 2, axis=1), F32), pos, [1, hd], "rope.cos.row")
    sin_signed = np.stack([-sin, sin], axis=-1).reshape(ctx, hd)  # -s0 s0 -s1 s1 ...
    sin_row = gather(const("rope.sin", sin_signed, F32), pos, [1, hd], "rope.sin.row")
    pair_swap = const("rope.swap", np.arange(hd) ^ 1, I32)  # 1 0 3 2 ...
    zero1 = const("zero.i32", [0], I32)
    concat = g.options("Concatenation", axis=0)
    k_start = g.apply("CONCATENATION", [zero1, pos, zero1], "k_cache.start", [3], I32, concat)
    v_start = g.apply("CONCATENATION", [const("zeros2.i32", [0, 0], I32), pos], "v_cache.start", [3], I32,
                      concat)
    later = g.apply("GREATER", [const("positions", np.arange(ctx), I32), pos], "mask.later", [ctx], np.bool_)
    mask_row = g.apply("SELECT_V2", [later, const("mask.masked", [MASKED_SCORE], F32),
                                     const("mask.visible", [0.0], F32)], "mask.row", [ctx])
    mask = g.apply("BROADCAST_TO", [mask_row, const("mask.shape", [n_kv, group, ctx], I32)], "mask",
                   [n_kv, group, ctx])

    def rope(v, heads, name):
        """v·cos + swap(v)·sin_signed per head: the interleaved rotation of pairs."""
        v = reshape(v, [heads, hd], f"{name}.heads")
        swapped = gather(v, pair_swap, [heads, hd], f"{name}.swapped", axis=1)
        a = g.apply("MUL", [v, cos_row], f"{name}.cos", [heads, hd])
        b = g.apply("MUL", [swapped, sin_row], f"{name}.sin", [heads, hd])
        return g.apply("ADD", [a, b], f"{name}.rotated", [heads, hd])

    def cache_update(name, shape, value, start):
        """The cache with `value` written at `start`, stored back into its variable."""
        handle = g.apply("VAR_HANDLE", [], f"{name}.handle", [], g.fb.TensorType.RESOURCE,
                         g.options("VarHandle", sharedName=name))
        old = g.apply("READ_VARIABLE", [handle], f"{name}.read", shape)
        new = g.apply("DYNAMIC_UPDATE_SLICE", [old, value, start], f"{name}.updated", shape)
        g.op("ASSIGN_VARIABLE", [handle, new], [])
        return new

    adj_y = g.options("BatchMatMul", adjY=True)
    # folded into wq: q·k / sqrt(hd) = (wq / sqrt(hd)) x · k
    q_fold = np.float32(1) / np.sqrt(np.float32(hd))
    for layer in range(c.n_layers):
        p = f"layers.{layer}."
        t = model.tensors
        xb = quantize(rmsnorm(x, p + "attn_norm"), p + "wq", c.dim)
        q = fully_connected(xb, weights(p + "wq", t[p + "wq"] * q_fold), p + "wq", c.q_dim, fold=q_fold)
        k = fully_connected(xb, weights(p + "wk", t[p + "wk"]), p + "wk", c.kv_dim)
        v = fully_connected(xb, weights(p + "wv", t[p + "wv"]), p + "wv", c.kv_dim)
        q = reshape(rope(q, c.n_heads, p + "q"), [n_kv, group, hd], p + "q.grouped")
        k = reshape(rope(k, n_kv, p + "k"), [n_kv, 1, hd], p + "k.column")
        v = reshape(v, [n_kv, hd, 1], p + "v.column")
        keys = cache_update(p + "k_cache", [n_kv, ctx, hd], k, k_start)  # a row per position
        values = cache_update(p + "v_cache", [n_kv, hd, ctx], v, v_start)  # a column per position
        scores = g.apply("BATCH_MATMUL", [q, keys], p + "scores", [n_kv, group, ctx], options=adj_y)
        scores = g.apply("ADD", [scores, mask], p + "scores.masked", [n_kv, group, ctx])
        att = g.apply("SOFTMAX", [scores], p + "att", [n_kv, group, ctx], options=g.options("Softmax", beta=1.0))
        out = g.apply("BATCH_MATMUL", [att, values], p + "att.out", [n_kv, group, hd], options=adj_y)
        out = quantize(reshape(out, [1, c.q_dim], p + "att.out.flat"), p + "wo", c.q_dim)
        out = fully_connected(out, weights(p + "wo", t[p + "wo"]), p + "wo", c.dim)
        x = g.apply("ADD", [x, out], p + "attn.residual", [1, c.dim])

        xb = quantize(rmsnorm(x, p + "ffn_norm"), p + "w_gate", c.dim)
        gate = fully_connected(xb, weights(p + "w_gate", t[p + "w_gate"]), p + "w_gate", c.hidden_dim)
        up = fully_connected(xb, weights(p + "w_up", t[p + "w_up"]), p + "w_up", c.hidden_dim)
        if c.activation == "silu":
            sig = g.apply("LOGISTIC", [gate], p + "gate.sigmoid", [1, c.hidden_dim])
            act = g.apply("MUL", [gate, sig], p + "gate.silu", [1, c.hidden_dim])
        else:
            act = g.apply("RELU", [gate], p + "gate.relu", [1, c.hidden_dim])
        hidden = g.apply("MUL", [act, up], p + "ffn.hidden", [1, c.hidden_dim])
        hidden = quantize(hidden, p + "w_down", c.hidden_dim)
        down = fully_connected(hidden, weights(p + "w_down", t[p + "w_down"]), p + "w_down", c.dim)
        x = g.apply("ADD", [x, down], p + "ffn.residual", [1, c.dim])

    classifier = "tok_embedding" if c.tied_classifier else "classifier"  # the reference's name
    xb = quantize(rmsnorm(x, "final_norm"), classifier, c.dim)
    if c.tied_classifier:
        shared = g.tensors[table]
        w = g.tensor("classifier", shared.shape, shared.type, shared.buffer, shared.quantization)
    else:
        w = weights("classifier", model.tensors["classifier"])
    logits = fully_connected(xb, w, "classifier", c.vocab_size, matrix=classifier)

    cache_bytes = 2 * c.n_layers * ctx * c.kv_dim * 4
    info = {"exporter": "mote export --tflite", "model": model.name, "ctx": ctx,
            "inputs": {"token": "int32 [1]", "pos": "int32 [1], 0 <= pos < ctx"},
            "outputs": {"logits": f"float32 [1, {c.vocab_size}]"},
            "quant": quant, "calibration_tokens": calibration_tokens}
    description = (f"Mote export of {model.name}: one decode step (token, pos) -> logits, quantization "
                   f"{quant}, float32 KV cache of {ctx} positions in resource variables")
    data = g.serialize([token, pos], [logits], description, {"mote": json.dumps(info).encode()})
    return Exported(data=data, ctx=ctx, quant=quant, op_counts=dict(g.op_counts),
                    weight_bytes=g.weight_bytes, cache_bytes=cache_bytes, calibration_tokens=calibration_tokens)


def context_length(model: Model, ctx: int | None) -> int:
    """The cache length asked for (default: the trained context), checked."""
    limit = model.config.max_seq_len
    ctx = limit if ctx is None else ctx
    if not 2 <= ctx <= limit:
        raise MoteError(f"context {ctx} outside 2..{limit} (the model's trained context)")
    return ctx


def sampled_windows(model: Model, ctx: int, n_tokens: int, seed: int = 0) -> list[list[int]]:
    """Calibration windows of text the float model samples itself (temperature 1),
    each started as its training documents start: BOS for llama2.c models, else the
    end-of-text token that separates documents."""
    tok = tokenizer_of(model)
    start = tok.bos_id if adds_bos(tok) or tok.eos_id < 0 else tok.eos_id
    runner = Runner(model, ctx)
    sampler = Sampler(temperature=1.0, seed=seed)
    windows: list[list[int]] = []
    count = 0
    while count < n_tokens:
        budget = min(ctx, n_tokens - count + 1)  # at least 2: the start and one sample
        windows.append([start] + generate(runner, [start], budget - 1, sampler))
        count += len(windows[-1])
    return windows


def export(model: Model, ctx: int | None, calibration_windows: list[list[int]] | None = None,
           calibration_tokens: int = 4096, quant: str = "int8") -> Exported:
    """Calibrate `model` on the windows (default: `calibration_tokens` tokens it
    samples itself; none for float32) and build its decode-step graph."""
    ctx = context_length(model, ctx)
    if quant not in SCHEMES:
        raise MoteError(f"quantization must be one of {', '.join(SCHEMES)}, not {quant!r}")
    require()  # the extra is there, before the calibration's work
    if SCHEMES[quant] is None:
        return build(model, ctx, {}, 0, quant)
    if calibration_windows is None:
        calibration_windows = sampled_windows(model, ctx, calibration_tokens)
    ranges = calibrate(model, ctx, calibration_windows)
    tokens = sum(min(len(w), ctx) for w in calibration_windows)
    return build(model, ctx, ranges, tokens, quant)


# ------------------------------------------------------------------ running it


@contextlib.contextmanager
def _stderr_to(path: Path):
    """Send file descriptor 2 (where TFLM's MicroPrintf writes) to `path` meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _mote_metadata(data: bytes) -> dict:
    """What `build` recorded in the file's "mote" metadata entry."""
    fb = require()
    try:
        model = fb.Model.GetRootAs(data, 0)
        entries = {model.Metadata(i).Name(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
        return json.loads(model.Buffers(entries[b"mote"]).DataAsNumpy().tobytes())
    except (KeyError, ValueError, IndexError, TypeError, AttributeError, struct.error):
        raise MoteError("not a .tflite file that mote export wrote (no readable \"mote\" metadata)") from None


def _arena_bound(data: bytes) -> int:
    """Enough arena for any exported graph: three times all its non-constant tensors
    (the cache reads among them) and 1 MiB for TFLM's own structures."""
    fb = require()
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    size = {fb.TensorType.FLOAT32: 4, fb.TensorType.INT32: 4, fb.TensorType.INT16: 2, fb.TensorType.INT8: 1,
            fb.TensorType.BOOL: 1}
    total = 0
    for t in model.subgraphs[0].tensors:
        if t.buffer == 0 and t.shape is not None:
            total += int(np.prod(t.shape, dtype=np.int64)) * size.get(t.type, 4)
    return 3 * total + (1 << 20)


@dataclass
class Arena:
    total: int  # what the interpreter needs: head + tail
    head: int  # non-persistent: the activations, planned to overlap
    tail: int  # persistent: resource variables (the KV cache), tensor and node structures


class MicroDecoder:
    """An exported model in tflite-micro's Python interpreter (TFLM's reference
    kernels, built for the host), one decode step per `step`."""

    def __init__(self, data: bytes, arena_bytes: int | None = None):
        runtime = _tflite_micro("python.tflite_micro.runtime")
        self.ctx = _mote_metadata(data)["ctx"]
        with tempfile.TemporaryDirectory(prefix="mote-tflm-") as tmp:
            log = Path(tmp) / "stderr"
            try:
                with _stderr_to(log):
                    self.interpreter = runtime.Interpreter.from_bytes(
                        data, arena_size=arena_bytes or _arena_bound(data))
            except (RuntimeError, ValueError) as err:
                said = " ".join(log.read_text(errors="replace").split())
                raise MoteError(f"tflite-micro refuses the model: {err}{': ' + said if said else ''}") from None

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab,) for `token` at `pos`; the cache keeps it for the next steps."""
        # set both inputs before every invoke: the arena may reuse their buffers
        self.interpreter.set_input(np.array([token], np.int32), 0)
        self.interpreter.set_input(np.array([pos], np.int32), 1)
        self.interpreter.invoke()
        return self.interpreter.get_output(0)[0]

    def forward_batch(self, tokens, pos: int) -> np.ndarray:
        """Logits (T, vocab) of tokens at pos.., one step each: the reference Runner's
        interface, so that mote.eval.perplexity scores the exported model too."""
        if pos < 0 or pos + len(tokens) > self.ctx:
            raise MoteError(f"positions {pos}..{pos + len(tokens) - 1} exceed the context of {self.ctx}")
        return np.stack([self.step(int(t), pos + i) for i, t in enumerate(tokens)])

    def reset(self) -> None:
        """Zero the cache (a new sequence); positions past `pos` are masked anyway."""
        self.interpreter.reset()

    def arena(self) -> Arena:
        """The arena bytes the recording allocator counted (print_allocations)."""
        with tempfile.TemporaryDirectory(prefix="mote-tflm-") as tmp:
            log = Path(tmp) / "stderr"
            with _stderr_to(log):
                self.interpreter.print_allocations()
            text = log.read_text(errors="replace")
        found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text))
        if set(found) != {"total", "head", "tail"}:
            raise MoteError(f"unexpected print_allocations output from tflite-micro: {text[:200]!r}")
        return Arena(**{k: int(v) for k, v in found.items()})
