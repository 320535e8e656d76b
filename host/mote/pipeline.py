"""The data path of `mote convert` (and of `mote flash` with a checkpoint), in one
place and one pass: checkpoint -> importer -> quantizer -> sparsity calibration on the
quantized model in memory -> blob bytes, packed once and checked against a board
when one is named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mote.boards.catalog import Board, check_fit
from mote.eval import sparsity as calibration
from mote.eval.perplexity import tokenizer_of
from mote.format import blob as blobfile
from mote import chat
from mote.format.sparsity import POINTS
from mote.importers import load_model
from mote.model import MoteError

# The context the arena is sized for unless --ctx says otherwise: the trained context,
# at most this. Real chat models are trained at 8192 or more (SmolLM2-135M: 8192),
# where the int8 KV cache alone is 94 MB; 2048 positions (24 MB for SmolLM2) hold a
# conversation of many turns on a Raspberry Pi-class board. The Linux port can still
# run a blob at any context up to the trained one (mote-linux --ctx).
DEFAULT_CTX_MAX = 2048


@dataclass
class ConvertOptions:
    tokenizer: Path | None = None  # llama2.c checkpoints: their tokenizer.bin
    quant: str = "int8"
    group: int = 32
    ctx: int | None = None  # context the arena is sized for (default: trained, at most DEFAULT_CTX_MAX)
    sparsity: str | None = None  # a budget (mote.eval.budget), "natural", or None (dense)
    calib: Path | None = None  # calibration text for sparsity
    calib_tokens: int = 2048
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
    if o.sparsity not in (None, "natural") and o.calib is None:
        raise MoteError("a --sparsity budget needs --calib TEXT to calibrate the thresholds on")
    if o.calib_tokens < 1:
        raise MoteError(f"--calib-tokens must be at least 1, got {o.calib_tokens}")
    model = load_model(source, o.tokenizer)
    errors: dict[str, float] = {}
    ctx = o.ctx if o.ctx is not None else min(model.config.max_seq_len, DEFAULT_CTX_MAX)
    template = chat.choose(model.tokenizer, model.chat_template, o.chat_template, o.system_prompt)
    blob = blobfile.quantize(model, o.quant, o.group, ctx, progress=progress, errors=errors, chat=template)
    if blob.arena_bytes > 0xFFFFFFFF:  # the header's arena_bytes is a u32
        raise MoteError(f"the arena for context {blob.ctx_len} is {blob.arena_bytes} bytes, more than the "
                        f"32-bit header can hold: convert with a smaller --ctx")
    notes: list[str] = []
    if o.sparsity is not None:
        blob.sparsity, notes = _calibrate(blob, o)
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


def _calibrate(dense: blobfile.Blob, o: ConvertOptions):
    """Thresholds for `o.sparsity`, calibrated on the quantized dense model: ReLU's
    own zeros ("natural"), or per layer and point for a budget (mote.eval.budget)."""
    from mote.eval import budget as budgets

    natural = o.sparsity == "natural"
    spec = None if natural else budgets.parse_budget(o.sparsity)
    windows = []  # natural: thresholds are 0 by definition; --calib only measures sparsity
    if o.calib is not None:
        try:
            text = o.calib.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise MoteError(f"cannot read {o.calib} as UTF-8 text: {err}") from None
        windows = calibration.calibration_windows(tokenizer_of(dense), text, dense.ctx_len, o.calib_tokens)
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
