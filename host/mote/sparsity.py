"""Dynamic activation sparsity: the blob's sparsity section, the weight layouts that
make a skipped activation a skipped contiguous run of weights, calibration of the
thresholds, and the count of weight bytes a token reads (docs/blob-format.md,
"Sparsity section").

Four activation points per layer can be sparsified; each drops the values whose
magnitude is at or below its layer's threshold by setting them to 0.0 *before* the
activation quantization, so that their int8 codes are 0. A kernel that skips the
weights of a zero code therefore computes exactly the dense integer sums: sparse
runs equal dense runs on the zeroed input, bit for bit.

- attn_in  (TEAL): the RMS-normed input of wq, wk, wv; those three are stored input-major.
- attn_out (TEAL): the attention output, the input of wo; wo is stored input-major.
- ffn_in   (TEAL): the RMS-normed input of w_gate and w_up; w_gate is stored
  input-major (and w_up too when gate is off).
- gate     (CATS): the activated gate act(w_gate·x); a dropped neuron j needs neither
  row j of w_up nor column j of w_down, stored side by side ("bundled").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from mote.model import Config, MoteError
from mote.quant import n_groups, quantize_activations

SECTION_MAGIC = 0x53525053  # b"SPRS" little-endian
SECTION_HEADER_BYTES = 32
POINTS = ("attn_in", "attn_out", "ffn_in", "gate")
POINT_BITS = {p: 1 << i for i, p in enumerate(POINTS)}

LAYOUT_ROWS = 0  # row-major, as without a sparsity section
LAYOUT_COLUMNS = 1  # input-major: column j's codes contiguous, scales per input group
LAYOUT_BUNDLED = 2  # w_up row j + w_down column j side by side (on both entries)

_SECTION = struct.Struct("<IIIf16x")


@dataclass
class Sparsity:
    points: tuple[str, ...]  # the sparsified activation points, in POINTS order
    thresholds: np.ndarray  # float32 (n_layers, 4): drop |v| <= threshold; 0 when off
    target: float = 0.0  # the fraction S calibrated for (informational)

    def threshold(self, layer: int, point: str) -> float | None:
        """The layer's threshold at `point`, or None when the point stays dense."""
        if point not in self.points:
            return None
        return self.thresholds[layer, POINTS.index(point)]


def layout_of(tensor_name: str, sparsity: Sparsity | None) -> int:
    """How a tensor's weights are laid out under `sparsity` (0 without it)."""
    if sparsity is None:
        return LAYOUT_ROWS
    leaf = tensor_name.rsplit(".", 1)[-1]
    on = set(sparsity.points)
    if leaf in ("wq", "wk", "wv") and "attn_in" in on:
        return LAYOUT_COLUMNS
    if leaf == "wo" and "attn_out" in on:
        return LAYOUT_COLUMNS
    if leaf in ("w_up", "w_down") and "gate" in on:
        return LAYOUT_BUNDLED
    if leaf in ("w_gate", "w_up") and "ffn_in" in on:
        return LAYOUT_COLUMNS
    return LAYOUT_ROWS


# ------------------------------------------------------------------ the section


def pack_section(sp: Sparsity, n_layers: int) -> bytes:
    t = np.asarray(sp.thresholds, np.float32)
    if t.shape != (n_layers, len(POINTS)):
        raise MoteError(f"sparsity thresholds have shape {t.shape}, expected ({n_layers}, {len(POINTS)})")
    flags = sum(POINT_BITS[p] for p in sp.points)
    return _SECTION.pack(SECTION_MAGIC, n_layers, flags, sp.target) + t.astype("<f4").tobytes()


def parse_section(data: bytes, n_layers: int, where: str = "blob") -> Sparsity:
    """Validate a sparsity section as firmware/core/blob.c does."""
    want = SECTION_HEADER_BYTES + 4 * len(POINTS) * n_layers
    if len(data) != want:
        raise MoteError(f"{where}: sparsity section is {len(data)} bytes, expected {want}")
    magic, layers, flags, target = _SECTION.unpack_from(data)
    if magic != SECTION_MAGIC or layers != n_layers:
        raise MoteError(f"{where}: sparsity section has magic {magic:#010x} and {layers} layers")
    if flags & ~((1 << len(POINTS)) - 1) or any(data[16:32]):
        raise MoteError(f"{where}: sparsity section has unknown flags {flags:#x} or reserved bytes set")
    t = np.frombuffer(data, "<f4", n_layers * len(POINTS), SECTION_HEADER_BYTES).reshape(n_layers, -1)
    points = tuple(p for p in POINTS if flags & POINT_BITS[p])
    off = [i for i, p in enumerate(POINTS) if p not in points]
    if not (np.all(np.isfinite(t)) and np.all(t >= 0) and not np.any(t[:, off])):
        raise MoteError(f"{where}: sparsity thresholds must be finite, >= 0, and 0 for dense points")
    return Sparsity(points, t.astype(np.float32), float(np.float32(target)))


# ------------------------------------------------------------------ layouts (q8)


def bundle_bytes_per_neuron(dim: int, group: int) -> int:
    """w_up row codes, w_up row scales, w_down column codes."""
    return 2 * dim + 2 * n_groups(dim, group)


def bundled_region_bytes(dim: int, hidden: int, group: int) -> int:
    """Per hidden group: w_down's scales for that input group (dim f16), then the
    group's neurons' bundles."""
    return n_groups(hidden, group) * 2 * dim + hidden * bundle_bytes_per_neuron(dim, group)


def to_columns(codes: np.ndarray, scales: np.ndarray) -> tuple[bytes, bytes]:
    """Input-major: data[j·rows + r] = q[r, j]; scales[g·rows + r] = s[r, g]."""
    return (np.ascontiguousarray(codes.T).tobytes(), np.ascontiguousarray(scales.T, "<f2").tobytes())


def from_columns(data: np.ndarray, scales: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(data.reshape(cols, rows).T),
            np.ascontiguousarray(scales.reshape(-1, rows).T))


def _bundle_views(region: np.ndarray, dim: int, hidden: int, group: int):
    """Views of a bundled region (uint8): per hidden group its down-scales block and
    its bundles (n, bundle bytes)."""
    bb = bundle_bytes_per_neuron(dim, group)
    out, cursor = [], 0
    for g in range(n_groups(hidden, group)):
        n = min(group, hidden - g * group)
        block = region[cursor : cursor + 2 * dim]
        bundles = region[cursor + 2 * dim : cursor + 2 * dim + n * bb].reshape(n, bb)
        out.append((g * group, n, block, bundles))
        cursor += 2 * dim + n * bb
    return out


def bundle(up_codes, up_scales, down_codes, down_scales, group: int) -> bytes:
    hidden, dim = up_codes.shape
    if dim % 2:
        raise MoteError(f"row-column bundling needs an even model width, got {dim}")
    region = np.zeros(bundled_region_bytes(dim, hidden, group), np.uint8)
    ngd = n_groups(dim, group)
    for first, n, block, bundles in _bundle_views(region, dim, hidden, group):
        block[:] = np.ascontiguousarray(down_scales[:, first // group], "<f2").view(np.uint8)
        js = slice(first, first + n)
        bundles[:, :dim] = up_codes[js].view(np.uint8)
        bundles[:, dim : dim + 2 * ngd] = np.ascontiguousarray(up_scales[js], "<f2").view(np.uint8).reshape(n, -1)
        bundles[:, dim + 2 * ngd :] = np.ascontiguousarray(down_codes[:, js].T).view(np.uint8)
    return region.tobytes()


def unbundle(region: np.ndarray, dim: int, hidden: int, group: int):
    """(up_codes, up_scales, down_codes, down_scales) back in row-major order."""
    ngd, ngh = n_groups(dim, group), n_groups(hidden, group)
    up_codes = np.empty((hidden, dim), np.int8)
    up_scales = np.empty((hidden, ngd), np.float16)
    down_codes = np.empty((dim, hidden), np.int8)
    down_scales = np.empty((dim, ngh), np.float16)
    for first, n, block, bundles in _bundle_views(region, dim, hidden, group):
        down_scales[:, first // group] = block.view("<f2")
        js = slice(first, first + n)
        up_codes[js] = bundles[:, :dim].view(np.int8)
        up_scales[js] = np.ascontiguousarray(bundles[:, dim : dim + 2 * ngd]).view("<f2")
        down_codes[:, js] = bundles[:, dim + 2 * ngd :].view(np.int8).T
    return up_codes, up_scales, down_codes, down_scales


# ------------------------------------------------------------------ dropping


def drop(v: np.ndarray, threshold: float) -> np.ndarray:
    """v with every value of magnitude <= threshold set to 0 (NaN is kept, as in C)."""
    return np.where(np.abs(v) <= np.float32(threshold), np.float32(0), v).astype(np.float32)


# ------------------------------------------------------------------ read counting


@dataclass
class Reads:
    """Weights one token reads: matrix rows computed as dot products (row kernels,
    the embedding row), matrix columns read by column kernels, and bytes of weight
    data and scales (norm vectors included). firmware/core/model.c counts the same."""

    rows: int = 0
    cols: int = 0
    bytes: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.rows, self.cols, self.bytes)


def _dense_matrix_bytes(rows: int, cols: int, dtype: str, group: int) -> int:
    row_bytes = cols if dtype == "q8" else -(-cols // 2)
    return rows * (row_bytes + 2 * n_groups(cols, group))


def count_columns(reads: Reads, rows: int, xq_groups: np.ndarray) -> None:
    """A column kernel: one column per nonzero input code, one scales block (rows f16)
    per input group with any nonzero code. xq_groups: (n_groups, group) codes."""
    nonzero = xq_groups != 0
    kept = int(nonzero.sum())
    reads.cols += kept
    reads.bytes += kept * rows + int(nonzero.any(axis=1).sum()) * 2 * rows


def count_bundled(reads: Reads, dim: int, group: int, kept_neurons: np.ndarray, hq_groups: np.ndarray) -> None:
    """CATS: w_up row + scales of every kept neuron; w_down column of every nonzero
    code of h, and w_down's scales block of every hidden group with one."""
    kept = int(np.count_nonzero(kept_neurons))
    reads.rows += kept
    reads.bytes += kept * (dim + 2 * n_groups(dim, group))
    count_columns(reads, dim, hq_groups)


# ------------------------------------------------------------------ calibration


def calibrate(blob, token_windows: list[list[int]], target: float, points: tuple[str, ...] = POINTS,
              natural: bool = False) -> tuple[Sparsity, dict]:
    """Thresholds so that a fraction `target` of each layer's activations at each
    point is dropped on the calibration tokens: the `target` quantile of |v|.
    `natural` (ReLU models): the gate only, threshold 0, i.e. exactly the zeros ReLU
    makes. Returns the Sparsity and the measured fraction dropped per layer and point
    (for natural, the ReLU model's own sparsity)."""
    from mote.reference import Runner

    c = blob.config
    if not 0.0 <= target <= 0.9:
        raise MoteError(f"sparsity {target} outside 0..0.9")
    if natural:
        if c.activation != "relu":
            raise MoteError("natural sparsity needs a ReLU model (its gate's exact zeros)")
        points = ("gate",)
    unknown = set(points) - set(POINTS)
    if unknown:
        raise MoteError(f"unknown sparsity point(s) {sorted(unknown)}; choose from {', '.join(POINTS)}")
    points = tuple(p for p in POINTS if p in points)

    samples: dict[tuple[int, str], list[np.ndarray]] = {}

    class Recorder(Runner):
        def _drop(self, v, layer, point):
            samples.setdefault((layer, point), []).append(np.abs(v).ravel())
            return v

    runner = Recorder(blob, exact=False)
    runner.sparsity = None
    for ids in token_windows:
        runner.reset()
        runner.forward_batch(ids, 0)

    if not natural and not token_windows:
        raise MoteError("calibration needs text")
    thresholds = np.zeros((c.n_layers, len(POINTS)), np.float32)
    dropped: dict = {p: [] for p in points} if token_windows else {}
    for p in points:
        for layer in range(c.n_layers):
            if not token_windows:
                continue
            mags = np.concatenate(samples[(layer, p)])
            # S = 0 (and natural): threshold 0 drops only exact zeros, i.e. the dense result
            exact_zeros = natural or target == 0
            thr = np.float32(0) if exact_zeros else np.float32(np.quantile(mags, target, method="lower"))
            thresholds[layer, POINTS.index(p)] = thr
            dropped[p].append(float(np.mean(mags <= thr)))
    return Sparsity(points, thresholds, 0.0 if natural else float(target)), dropped


def calibration_windows(tok, text: str, ctx: int, max_tokens: int) -> list[list[int]]:
    """The text's first max_tokens tokens, cut into windows of the context (BOS
    first for llama2.c models, as perplexity evaluation does)."""
    from mote.eval import adds_bos

    ids = tok.encode(text, bos=False)[:max_tokens]
    bos = adds_bos(tok)
    window = ctx - 1 if bos else ctx
    out = [([tok.bos_id] if bos else []) + ids[i : i + window] for i in range(0, len(ids), window)]
    out = [w for w in out if len(w) >= 2]
    if not out:
        raise MoteError("calibration text too short: fewer than 2 tokens")
    return out


def describe(sp: Sparsity, config: Config) -> str:
    mean = {p: float(np.mean(sp.thresholds[:, POINTS.index(p)])) for p in sp.points}
    return ", ".join(f"{p} (mean threshold {mean[p]:.4g})" for p in sp.points)


def counting_runner(blob, **kwargs):
    """A reference Runner over `blob` that also counts, per position of each
    forward_batch, the weights read (its `reads`: one Reads per position), by the
    rules of firmware/core/model.c: column kernels skip zero codes, CATS reads the
    bundles of kept neurons only, everything else is read whole."""
    from mote.reference import Runner

    class CountingRunner(Runner):
        def forward_batch(self, tokens, pos):
            c = self.config
            self.reads = [Reads(bytes=4 * c.dim * (2 * c.n_layers + 1)) for _ in range(len(tokens))]
            return super().forward_batch(tokens, pos)

        def _embed(self, tokens):
            t = blob.tensors["tok_embedding"]
            row = 4 * t.cols if t.scales is None else _dense_matrix_bytes(1, t.cols, t.dtype, blob.group_size)
            for r in self.reads:
                r.rows += 1
                r.bytes += row
            return super()._embed(tokens)

        def _drop(self, v, layer, point):
            out = super()._drop(v, layer, point)
            if point == "gate":
                self._kept_neurons = out != 0
            return out

        def _matmul(self, x, name):
            t = blob.tensors[name]
            layout = layout_of(name, self.sparsity)
            group = blob.group_size
            if layout == LAYOUT_COLUMNS:
                codes = quantize_activations(x, group)[0]
                for r, xq in zip(self.reads, codes):
                    count_columns(r, t.rows, xq)
            elif layout == LAYOUT_BUNDLED and name.endswith("w_down"):
                codes = quantize_activations(x, group)[0]
                for r, kept, hq in zip(self.reads, self._kept_neurons, codes):
                    count_bundled(r, t.rows, group, kept, hq)
            elif layout == LAYOUT_ROWS:
                size = 4 * t.rows * t.cols if t.scales is None else _dense_matrix_bytes(t.rows, t.cols, t.dtype, group)
                for r in self.reads:
                    r.rows += t.rows
                    r.bytes += size
            return super()._matmul(x, name)

    return CountingRunner(blob, **kwargs)


@dataclass
class Comparison:
    tokens: int
    nll: float  # the sparse model's mean negative log-likelihood (nats/token)
    dense_nll: float
    kl: float  # mean KL(dense || sparse) of the next-token distributions (nats)

    @property
    def ppl(self) -> float:
        return float(np.exp(self.nll))

    @property
    def dense_ppl(self) -> float:
        return float(np.exp(self.dense_nll))


def compare(sparse_runner, dense_runner, tok, text: str, max_tokens: int | None = None,
            progress: bool = False) -> Comparison:
    """Perplexity of both runners and the mean KL divergence from the dense model's
    next-token distribution, over the windows mote.eval.perplexity scores."""
    from tqdm import tqdm

    from mote.eval import adds_bos, log_softmax

    ids = tok.encode(text, bos=False)[:max_tokens]
    bos = adds_bos(tok)
    window = sparse_runner.ctx - 1 if bos else sparse_runner.ctx
    if len(ids) < 2:
        raise MoteError("text too short to evaluate: fewer than 2 tokens")
    nll = dense_nll = kl = 0.0
    count = 0
    for start in tqdm(range(0, len(ids), window), desc="eval", unit="window", disable=not progress):
        chunk = ids[start : start + window]
        inputs = ([tok.bos_id] + chunk) if bos else chunk
        if len(inputs) < 2:
            continue
        logp = []
        for runner in (sparse_runner, dense_runner):
            runner.reset()
            logp.append(log_softmax(runner.forward_batch(inputs[:-1], 0)))
        targets = np.asarray(inputs[1:])
        rows = np.arange(len(targets))
        nll -= float(logp[0][rows, targets].sum())
        dense_nll -= float(logp[1][rows, targets].sum())
        kl += float((np.exp(logp[1]) * (logp[1] - logp[0])).sum())
        count += len(targets)
    return Comparison(count, nll / count, dense_nll / count, kl / count)
