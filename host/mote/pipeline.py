"""The data path of `mote convert` (and of `mote flash` with a checkpoint), in one
place and one pass: checkpoint -> importer -> (activation statistics on the
calibration text) -> quantizer (-> measured precision per matrix, for auto) ->
sparsity calibration on the quantized model in memory -> blob bytes, packed once and
checked against a board when one is named."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mote.boards.catalog import Board, check_fit
from mote.eval import sparsity as calibration
from mote.eval.activations import MAX_WINDOW, input_grams
from mote.eval.perplexity import tokenizer_of
from mote.eval.sensitivity import matrix_costs
from mote.format import blob as blobfile
from mote import chat
from mote.format.chat import ChatTemplate
from mote.format.sparsity import POINTS
from mote.importers import load_model
from mote.model import Model, MoteError
from mote.quant.gptq import quantize_weights
from mote.quant.groups import relative_error
from mote.quant.native import stored_exactly
from mote.quant.precision import Option, choose, over_budget

QUANT_CHOICES = ("int8", "int4", "int4a", "mixed", "auto")
# Calibration tokens each matrix's q4 cost is measured on (--quant auto): one run of
# the model per matrix, so fewer than the statistics use.
SENSITIVITY_TOKENS = 1024

# The context the arena is sized for unless --ctx says otherwise: the trained context,
# at most this. Real chat models are trained at 8192 or more (SmolLM2-135M: 8192),
# where the int8 KV cache alone is 94 MB; 2048 positions (24 MB for SmolLM2) hold a
# conversation of many turns on a Raspberry Pi-class board. The Linux port can still
# run a blob at any context up to the trained one (mote-linux --ctx).
DEFAULT_CTX_MAX = 2048


@dataclass
class ConvertOptions:
    tokenizer: Path | None = None  # llama2.c checkpoints: their tokenizer.bin
    quant: str = "int8"  # a scheme (mote.quant.groups.SCHEMES) or "auto"
    budget: int | None = None  # --quant auto: blob bytes at most (a board's partition too)
    group: int = 32
    ctx: int | None = None  # context the arena is sized for (default: trained, at most DEFAULT_CTX_MAX)
    sparsity: str | None = None  # a budget (mote.eval.budget), "natural", "trained", or None (dense)
    calib: Path | None = None  # calibration text: activation-aware quantization, sparsity
    calib_tokens: int = 4096
    sparse_points: tuple[str, ...] = POINTS
    chat_template: str | None = None  # a library name (mote.chat.NAMES); None: the model's own
    system_prompt: str | None = None  # replaces the template's default system prompt


@dataclass
class Converted:
    data: bytes
    blob: blobfile.Blob
    errors: dict[str, float]  # relative quantization error per tensor, against the imported values
    source_types: dict[str, str]  # how the checkpoint stored each tensor, where known (GGUF: Q4_1, ...)
    notes: list[str] = field(default_factory=list)  # what calibration chose, for the report


def convert(source: Path, options: ConvertOptions, board: Board | None = None,
            progress: Callable[[str], None] | None = None) -> Converted:
    """Import, quantize and pack `source`; refuse (MoteError, by how much) when it
    does not fit `board`. Without an explicit context, a model whose arena is too large
    for the board at its trained context is packed for the largest one that fits (a note
    says so)."""
    o = options
    if o.sparsity is not None and o.quant != "int8":
        raise MoteError("--sparsity lays out q8 matrices: use --quant int8")
    if o.sparsity not in (None, "natural", "trained") and o.calib is None:
        raise MoteError("a --sparsity budget needs --calib TEXT to calibrate the thresholds on")
    if o.calib_tokens < 1:
        raise MoteError(f"--calib-tokens must be at least 1, got {o.calib_tokens}")
    model = load_model(source, o.tokenizer)
    errors: dict[str, float] = {}
    notes: list[str] = []
    ctx = o.ctx if o.ctx is not None else min(model.config.max_seq_len, DEFAULT_CTX_MAX)
    template = chat.choose(model.tokenizer, model.chat_template, o.chat_template, o.system_prompt)
    grams = windows = None
    if o.calib is not None:
        grams, windows = activation_aware(model, o, notes)
    if o.quant == "auto":
        budgets = [b for b in (o.budget, board.model_size if board else None) if b is not None]
        blob = _auto(model, o, ctx, template, grams, windows, min(budgets, default=None), errors, notes, progress)
    else:
        if o.budget is not None:
            raise MoteError("--budget is for --quant auto")
        blob = blobfile.quantize(model, o.quant, o.group, ctx, progress=progress, errors=errors,
                                 grams=grams, chat=template)
    if blob.arena_bytes > 0xFFFFFFFF:  # the header's arena_bytes is a u32
        raise MoteError(f"the arena for context {blob.ctx_len} is {blob.arena_bytes} bytes, more than the "
                        f"32-bit header can hold: convert with a smaller --ctx")
    if o.sparsity == "trained":
        blob.sparsity, sparse_notes = _trained(source, blob.config, o.sparse_points)
        notes += sparse_notes
    elif o.sparsity is not None:
        blob.sparsity, sparse_notes = _calibrate(blob, o)
        notes += sparse_notes
    if board is not None and o.ctx is None:
        notes += fit_context(blob, board)
    data = blobfile.serialize(blob)
    blob.total_bytes = len(data)
    if board is not None:
        check_fit(board, len(data), blob.arena_bytes)
    return Converted(data, blob, errors, model.source_types, notes)


def fit_context(blob: blobfile.Blob, board: Board) -> list[str]:
    """If `blob`'s arena exceeds `board`'s RAM budget at its context, shorten the context
    to the largest that fits (the arena grows with it; the weights do not change) and
    return the note saying so; [] when it already fits or when no context would."""
    if blob.arena_bytes <= board.arena_bytes:
        return []

    def arena(ctx: int) -> int:
        return blobfile.arena_bytes(blob.config, ctx, blob.group_size)

    if arena(1) > board.arena_bytes:
        return []  # check_fit refuses it, saying by how much at the blob's own context
    lo, hi = 1, blob.ctx_len - 1  # arena(lo) fits, arena(blob.ctx_len) does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if arena(mid) <= board.arena_bytes else (lo, mid - 1)
    note = (f"context {blob.ctx_len} needs {blob.arena_bytes} bytes of arena, {board.name} has "
            f"{board.arena_bytes}: packed for context {lo} ({arena(lo)} bytes; --ctx N chooses)")
    blob.ctx_len, blob.arena_bytes = lo, arena(lo)
    return [note]


def pack_for_board(data: bytes, board: Board) -> tuple[bytes, list[str]]:
    """A packed blob as `board` takes it: the same bytes, or repacked for the largest
    context that fits its RAM (fit_context); refused (MoteError, by how much) if it
    cannot fit at all."""
    blob = blobfile.load(data)
    notes = fit_context(blob, board)
    if notes:
        data = blobfile.serialize(blob)
    check_fit(board, len(data), blob.arena_bytes)
    return data, notes


def activation_aware(model: Model, o: ConvertOptions, notes: list[str]):
    """What --calib gives the quantizer: the mean x x^T of every matrix input on the
    text (which GPTQ, mote.quant.gptq, quantizes against), and the token windows they
    were measured on."""
    ctx = min(o.ctx or model.config.max_seq_len, MAX_WINDOW)
    windows = calibration.calibration_windows(tokenizer_of(model), _read(o.calib), ctx, o.calib_tokens)
    grams = input_grams(model, windows)
    notes.append(f"activation-aware quantization (GPTQ): the inputs of every matrix measured on "
                 f"{sum(map(len, windows))} tokens of {o.calib}")
    return grams, windows


def _calibrate(dense: blobfile.Blob, o: ConvertOptions):
    """Thresholds for `o.sparsity`, calibrated on the quantized dense model: ReLU's
    own zeros ("natural"), or per layer and point for a budget (mote.eval.budget)."""
    from mote.eval import budget as budgets

    natural = o.sparsity == "natural"
    spec = None if natural else budgets.parse_budget(o.sparsity)
    windows = []  # natural: thresholds are 0 by definition; --calib only measures sparsity
    if o.calib is not None:
        windows = calibration.calibration_windows(tokenizer_of(dense), _read(o.calib), dense.ctx_len,
                                                  o.calib_tokens)
    if natural:
        sp, zeros = calibration.calibrate(dense, windows, 0.0, natural=True)
        notes = [f"sparsity natural (ReLU zeros, threshold 0): {calibration.describe(sp, dense.config)}"]
        if windows:
            notes.append(f"  measured on {sum(len(w) for w in windows)} tokens of {o.calib}")
            notes.append("  gate zeros per layer: " + " ".join(f"{v:.3f}" for v in zeros["gate"]))
        return sp, notes
    a = budgets.allocate(dense, windows, spec, o.sparse_points, progress=True)
    notes = [f"sparsity budget {spec}: {a.skipped:.1%} of the weight bytes per token skipped "
             f"(x{a.dense_bytes / a.bytes:.2f} fewer), mean KL {a.kl:.4f} nats/token from dense, "
             f"on {sum(len(w) for w in windows)} tokens of {o.calib}",
             "  fraction of activations dropped per layer (calibration text):"]
    for point, levels in a.levels.items():
        notes.append(f"  {point:8s} " + " ".join(f"{v:.2f}" for v in levels))
    return a.sparsity, notes


def _trained(source: Path, config, points: tuple[str, ...]):
    """The thresholds the drops in the loop ended training with (`mote train` or
    `mote finetune --drop`), as the run's train_meta.json or finetune_meta.json records
    them: exactly what the model learned to live with, no calibration text needed."""
    import json

    from mote.format.sparsity import Sparsity

    metas = [Path(source) / name for name in ("train_meta.json", "finetune_meta.json")]
    meta = next((m for m in metas if m.is_file()), None)
    if meta is None:
        raise MoteError(f"--sparsity trained needs the train_meta.json or finetune_meta.json of a "
                        f"`mote train`/`mote finetune` run in {source}")
    try:
        recorded = json.loads(meta.read_text()).get("sparsity", {}).get("thresholds", {})
    except (OSError, ValueError, AttributeError) as err:
        raise MoteError(f"{meta}: not a training record ({err})") from None
    chosen = tuple(p for p in POINTS if p in recorded and p in points)
    if not chosen:
        raise MoteError(f"{meta}: no thresholds of the loop at {', '.join(points)} (trained without --drop?)")
    thresholds = np.zeros((config.n_layers, len(POINTS)), np.float32)
    for p in chosen:
        values = recorded[p]
        if not isinstance(values, list) or len(values) != config.n_layers:
            raise MoteError(f"{meta}: {p} thresholds are not one per layer ({config.n_layers})")
        thresholds[:, POINTS.index(p)] = values
    sp = Sparsity(chosen, thresholds, 0.0)
    return sp, [f"sparsity trained (the loop's thresholds, {meta.name}): {calibration.describe(sp, config)}"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MoteError(f"cannot read {path} as UTF-8 text: {err}") from None


class MixedPrecision:
    """What --quant auto chooses from: the all-q8 blob, every matrix at q4 and at q4a,
    and what each of those costs (measured once, when a budget first needs it)."""

    def __init__(self, model: Model, group: int, ctx: int | None, grams: dict, windows: list[list[int]],
                 progress: Callable[[str], None] | None = None, template: ChatTemplate | None = None):
        self.errors: dict[str, float] = {}
        self.q8 = blobfile.quantize(model, "int8", group, ctx, progress=progress, errors=self.errors,
                                    grams=grams, chat=template)
        self.variants: dict[str, dict[str, blobfile.BlobTensor]] = {"q4": {}, "q4a": {}}
        self.variant_errors: dict[tuple[str, str], float] = {}
        size = blobfile.blob_bytes(self.q8)
        self.saved: dict[tuple[str, str], int] = {}
        for name, t in self.q8.tensors.items():
            if t.scales is None:
                continue
            w = np.asarray(model.tensors[name], np.float32)
            native = model.source_codes.get(name)
            for dtype, variants in self.variants.items():
                # a GGUF tensor's own 4-bit codes (Q4_1: q4a, Q4_0: q4) are that dtype's candidate
                q = None if native is None else stored_exactly(native, dtype, group)
                if q is None or q.dtype != dtype:
                    q = quantize_weights(w, dtype, group, grams.get(name))
                if not np.isfinite(q.scales).all():  # weights too large for 4-bit codes' f16 scales
                    continue
                variants[name] = blobfile.BlobTensor(name, dtype, t.rows, t.cols, q.codes, q.scales)
                self.variant_errors[name, dtype] = relative_error(w, q)
                changed = dataclasses.replace(self.q8, tensors={**self.q8.tensors, name: variants[name]})
                self.saved[name, dtype] = size - blobfile.blob_bytes(changed)
        self.sample: list[list[int]] = []  # the windows the costs are measured on
        for ids in windows:
            room = SENSITIVITY_TOKENS - sum(map(len, self.sample))
            if room <= 0:
                break
            self.sample.append(ids[:room])
        self._options: list[Option] | None = None

    def fit(self, budget: int) -> tuple[blobfile.Blob, list[Option]]:
        """The blob with the least predicted KL within `budget` bytes (to the chooser's
        approximation, mote.quant.precision), and its 4-bit matrices."""
        over = blobfile.blob_bytes(self.q8) - budget
        most = sum(max(self.saved.get((name, d), 0) for d in self.variants) for name in self.q8.tensors)
        if over > most:  # a matrix whose 4-bit scales overflow f16 stays q8
            raise over_budget(over - most, budget)
        chosen = []
        if over > 0:
            if self._options is None:
                self._options = [Option(name, dtype, cost, self.saved[name, dtype])
                                 for dtype, variants in self.variants.items()
                                 for name, cost in matrix_costs(self.q8, variants, self.sample).items()]
            chosen = choose(self._options, over)
        tensors = {**self.q8.tensors, **{c.name: self.variants[c.dtype][c.name] for c in chosen}}
        return dataclasses.replace(self.q8, tensors=tensors), chosen


def smallest_blob(model: Model, o: ConvertOptions, template: ChatTemplate | None) -> int:
    """The bytes of the blob with every matrix q4 (the smallest auto can write), from
    the shapes alone."""
    dtypes = blobfile.tensor_dtypes(model.config, "int8")
    smallest = {name: "q4" if dtype == "q8" and "q4" in blobfile.KIND_DTYPES[name.rsplit(".", 1)[-1]] else dtype
                for name, dtype in dtypes.items()}
    return blobfile.bytes_from_shapes(model, smallest, o.group, template)


def _auto(model: Model, o: ConvertOptions, ctx: int, template: ChatTemplate | None, grams, windows,
          budget: int | None, errors: dict, notes: list[str], progress) -> blobfile.Blob:
    """--quant auto: every matrix q8, then q4 or q4a for the matrices where they cost
    the least KL per byte saved, until the blob fits the budget (mote.quant.precision)."""
    if budget is None:
        raise MoteError("--quant auto needs --budget BYTES or --board B (whose model partition it fills)")
    if windows is None:
        raise MoteError("--quant auto measures what q4 costs each matrix on --calib TEXT")
    smallest = smallest_blob(model, o, template)
    if smallest > budget:  # refused before anything is quantized
        raise over_budget(smallest - budget, budget)
    mixed = MixedPrecision(model, o.group, ctx, grams, windows, progress, template)
    blob, chosen = mixed.fit(budget)
    errors.update(mixed.errors)
    errors.update({c.name: mixed.variant_errors[c.name, c.dtype] for c in chosen})
    if chosen:  # measured only when all q8 does not fit
        notes.append(f"auto: each matrix's q4 and q4a cost (mean KL from all-q8, nats/token) measured on "
                     f"{sum(map(len, mixed.sample))} tokens of {o.calib}")
    counts = {d: sum(c.dtype == d for c in chosen) for d in mixed.variants}
    notes.append(f"auto: {counts['q4']} q4 and {counts['q4a']} q4a of {len(mixed.variants['q4'])} matrices "
                 f"for a budget of {budget:,} bytes (all q8: {blobfile.blob_bytes(mixed.q8):,}; "
                 f"now {blobfile.blob_bytes(blob):,}); predicted KL {sum(c.cost for c in chosen):.5f}")
    for c in chosen:
        notes.append(f"  {c.dtype:3s} {c.name:24s} KL {c.cost:.6f}  saves {c.saved:,} bytes")
    return blob
