"""Dynamic activation sparsity: quality against speed, per model and configuration, every
figure against the ORIGINAL dense int8 model of the same run.

    python bench/sparsity.py [--models ref-11m-silu,ref-11m-relu,stories260K,smollm2]
                             [--budgets 0.25,0.4,0.5] [--kl-budgets 0.01] [--uniform 0.25]
                             [--finetuned ref-11m-silu=DIR ...] [--corpus build/model/corpus]
                             [--qemu-board qemu-m7 --qemu-models stories260K]
                             [--variants NAME,... --configs LABEL,... --cache DIR --keep]
                             [--calib-tokens N --levels 0.1,0.2,0.35,0.5]
    python bench/sparsity.py --kernels [--models mcu-1m-silu,ref-11m-silu] [--uniform 0.25,0.5]
    python bench/sparsity.py --write-stories DIR   # stories260K's fine-tuning text

Writes bench/results/sparsity.json (with --keep, the runs of models, or with --variants of
variants, not measured now are kept) and bench/results/sparsity.png (perplexity increase
against the speed-up in instructions). Configurations of every model: `dense` (the original, int8: the
baseline), `bytes=F` (mote convert --sparsity F: thresholds per layer and point for a
fraction F of the weight bytes per token skipped, chosen by measured KL per byte;
mote.eval.budget), `kl=K` (the same for a mean KL budget), `uniform=S` (one fraction S
dropped at every point: the calibration the budgets replace), `natural` (a ReLU model's
own zeros); and of every fine-tuned checkpoint given with --finetuned (mote finetune), its
dense form and its budgets. How each figure is obtained:

- texts. Hugging Face models are evaluated on ALL of their heldout.txt (--eval-tokens
  limits it, for trial runs) and calibrated on documents of the public-domain corpus
  (`mote corpus build`, --corpus) that share no content with it (mote.train.exclude),
  the first --calib-tokens tokens of them in a fixed shuffled order. stories260K (trained
  on TinyStories, of which no text is available here) calibrates and is evaluated on
  stories the dense model itself samples (temperature 1, seeds 1-8 and 101-120);
  --write-stories writes 6,000 more (seeds 1001-7000) to fine-tune it on, with the
  evaluation stories beside them for `mote finetune --exclude`.
- perplexity increase: against the ORIGINAL float model's perplexity on the same tokens;
  mean KL(original dense int8 || configuration) of the next-token distributions. Both
  through the numpy reference (mote.eval.sparsity.compare).
- instructions per token: callgrind on the Linux port, 1 thread, the whole program:
  (instructions of an N+1-token generation - those of a 1-token one) / N
  (--callgrind-tokens N); once with the reference kernels (plain C, on both sides: what
  sparsity saves, as a core without SIMD runs it) and once with the AVX2 build
  (-mavx2 -mf16c: what valgrind 3.19 decodes). On x86 instructions say little about
  time (a gather is one instruction): tok/s is the x86 figure.
- weight bytes per token and greedy agreement: the runtime's own counters and tokens
  (tests/c/mote_dump.c --reads, the same build) over --tokens greedy tokens; agreement
  is the share of positions where the configuration's greedy token equals the original
  dense model's.
- tok/s: the default Linux build (-march=native), 1 thread, --tokens tokens; the dense
  model and the configuration run in turn --runs times; the medians and the median of
  the pairwise ratios are given (the machine may be shared: load averages recorded).
- QEMU: instructions per generated token on --qemu-board (-icount; the console's decode
  ticks times the calibrated instructions per tick, as bench/mcu.py), for --qemu-models.

--cache DIR keeps the original's float perplexity, dense logits and the budgets' per-layer
KL curves, so that a model's rows can be measured in several runs (--variants, --configs;
e.g. a fine-tune's after the original's, or side by side) without scoring the original or
measuring the curves again.

--kernels measures only what the sparse kernels make of the bytes (issue 12's kernel
target: dense time / sparse time >= 0.9 x dense bytes / sparse bytes): no perplexity, no
KL, no reference-kernel callgrind; per configuration the weight bytes per token, the AVX2
build's instructions per token, tok/s, and each speed-up divided by the bytes' reduction
(`instructions_per_bytes`, `tok_s_per_bytes`: 1 when time falls exactly as the bytes).
Writes bench/results/sparsity-kernels.json and .png unless --output says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS threads fight a shared machine

import numpy as np  # noqa: E402

from mote.eval import budget as budgets  # noqa: E402
from mote.eval import sparsity  # noqa: E402
from mote.eval.perplexity import perplexity, tokenizer_of  # noqa: E402
from mote.fileio import write_atomically  # noqa: E402
from mote.format import blob as blobfile  # noqa: E402
from mote.format.sparsity import POINTS  # noqa: E402
from mote.importers import load_model  # noqa: E402
from mote.model import MoteError  # noqa: E402
from mote.reference.forward import Runner  # noqa: E402
from mote.train.exclude import exclude  # noqa: E402
from mote.train.loop import read_documents  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
FIRMWARE = ROOT / "firmware"
CALLGRIND_BUILD = "build/linux-avx2"
CALLGRIND_ARCH = "-mavx2 -mf16c"
REF_BUILD = "build/linux-ref"
SOURCES = {
    "ref-11m-silu": (MODELS / "ref-11m-silu", None),
    "ref-11m-relu": (MODELS / "ref-11m-relu", None),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
    "smollm2": (MODELS / "smollm2-135m-instruct-q4_1.gguf", None),
}
HELDOUT = MODELS / "ref-11m-silu" / "heldout.txt"  # the same text in every model folder
PROMPTS = {"stories260K": "Once upon a time"}
DEFAULT_PROMPT = "And it came to pass"
CTX = 256


# ------------------------------------------------------------------ tools


def build_tools() -> dict[str, Path]:
    """mote-linux of the default build (tok/s) and of the AVX2 build with mote_dump
    (callgrind, reads, greedy tokens), all by firmware/Makefile."""
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "linux"], check=True, capture_output=True)
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "linux", "tools", f"BUILD={CALLGRIND_BUILD}",
                    f"ARCH_FLAGS={CALLGRIND_ARCH}"], check=True, capture_output=True)
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "linux", "KERNELS=ref", f"BUILD={REF_BUILD}"],
                   check=True, capture_output=True)
    native = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "print-build"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return {"native": FIRMWARE / native / "mote-linux", "avx2": FIRMWARE / CALLGRIND_BUILD / "mote-linux",
            "ref": FIRMWARE / REF_BUILD / "mote-linux", "dump": FIRMWARE / CALLGRIND_BUILD / "mote_dump"}


def one_shot(exe: Path, blob: Path, prompt: str, n: int, wrapper: tuple[str, ...] = (), **extra) -> str:
    args = [*wrapper, str(exe), str(blob), "--prompt", prompt, "-n", str(n), "--temp", "0", "--threads", "1"]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return subprocess.run(args, capture_output=True, text=True, check=True).stderr


def callgrind(exe: Path, blob: Path, prompt: str, n: int, work: Path) -> float:
    """Instructions per generated token: the difference of an n+1- and a 1-token run."""

    def total(tokens: int) -> int:
        err = one_shot(exe, blob, prompt, tokens,
                       ("valgrind", "--tool=callgrind", f"--callgrind-out-file={work / 'callgrind.out'}"))
        generated = int(re.search(r"tokens=(\d+)", err).group(1))
        if generated != tokens:
            raise MoteError(f"{blob.name}: generation ended after {generated} of {tokens} tokens")
        return int(re.search(r"Collected : (\d+)", err).group(1))

    return (total(n + 1) - total(1)) / n


def dump_run(dump: Path, blob: Path, prompt_ids: list[int], tokens: int) -> tuple[list[int], float]:
    """(greedy tokens, mean weight bytes per generated position) from mote_dump."""
    run = subprocess.run([str(dump), str(blob), "--tokens", ",".join(map(str, prompt_ids)), "-n",
                          str(tokens), "--reads"], capture_output=True, text=True, check=True)
    reads, generated = [], []
    for line in run.stdout.splitlines():
        head, *rest = line.split()
        if head == "reads" and int(rest[0]) >= len(prompt_ids):
            reads.append(int(rest[3]))
        elif head == "tokens":
            generated = [int(v) for v in rest]
    return generated, float(np.mean(reads))


def tok_s_pairs(exe: Path, dense: Path, blob: Path, prompt: str, tokens: int, runs: int) -> dict:
    """tok/s of the dense blob and `blob` run in turn, after one untimed run of each (cold
    page cache); medians and the median ratio."""
    for b in (dense, blob):
        one_shot(exe, b, prompt, tokens)
    pairs = []
    for _ in range(runs):
        rates = [float(re.search(r"tok_s=([\d.]+)", one_shot(exe, b, prompt, tokens)).group(1))
                 for b in (dense, blob)]
        pairs.append(rates)
    return {"dense": statistics.median(p[0] for p in pairs), "config": statistics.median(p[1] for p in pairs),
            "ratio": statistics.median(p[1] / p[0] for p in pairs), "runs": runs,
            "load": os.getloadavg()[0]}


def qemu_instructions(board_name: str, data: bytes, prompt: str, tokens: int) -> float:
    """Instructions per generated token on an emulated board, as bench/mcu.py counts
    them: the console's decode ticks times the calibrated instructions per tick."""
    from mote.boards.catalog import load_board
    from mote.boards.images import build_firmware, flash_model, images
    from mote.boards.qemu import QemuBoard, calibrate_clock
    from mote.console.client import MoteConsole

    board = load_board(board_name)
    if not hasattr(qemu_instructions, "per_tick"):
        build_firmware(board)
        qemu_instructions.per_tick = calibrate_clock(board)["instructions_per_tick"]
    flash_model(board, data)
    with QemuBoard(board, flash=images(board)) as qb, MoteConsole(qb.url, timeout=1800) as console:
        console.read_banner(boot_wait=10)
        console.set("temp", 0)
        console.set("n", tokens)
        _, stats = console.ask(prompt)
    return stats.decode_ticks * qemu_instructions.per_tick / stats.tokens


class DenseLogits:
    """A runner that computes each window's logits once: the original dense model is
    compared with every configuration on the same windows. Up to `limit` bytes of
    logits are kept in memory (a large vocabulary recomputes what does not fit); with
    `store`, a directory, every chunk's logits are also kept there, so that separate
    runs (--cache, e.g. a fine-tune's rows measured after the original's, or in
    parallel) compute them once. A window comes in chunks (mote.eval.perplexity.log_probs):
    a chunk's logits are keyed by the whole window up to its end, and a chunk computed
    after a cached one first replays the window's earlier positions into the cache."""

    def __init__(self, runner: Runner, limit: int = 2 << 30, store: Path | None = None):
        self.runner, self.ctx, self.limit, self.kept, self.cache = runner, runner.ctx, limit, 0, {}
        self.store = store
        self.window: list[int] = []  # the tokens of the current window so far
        self.fed: list[int] = []  # the tokens in the runner's KV cache

    def reset(self) -> None:
        self.window = []

    def forward_batch(self, ids: list[int], pos: int) -> np.ndarray:
        if pos > len(self.window):
            raise ValueError(f"chunk at position {pos} after {len(self.window)} tokens of the window")
        self.window = self.window[:pos] + list(ids)  # one object may serve both sides of compare
        key = (tuple(self.window), pos)
        if key in self.cache:
            return self.cache[key]
        stored = self.store / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.npy" if self.store else None
        if stored is not None and stored.exists():
            logits = np.load(stored)
        else:
            if self.fed != self.window[:pos]:
                self.runner.reset()
                if pos:
                    self.runner.forward_batch(self.window[:pos], 0)
            logits = self.runner.forward_batch(ids, pos)
            self.fed = list(self.window)
            if stored is not None:
                buffer = io.BytesIO()
                np.save(buffer, logits)
                write_atomically(stored, buffer.getvalue())
        if self.kept + logits.nbytes <= self.limit:
            self.cache[key] = logits
            self.kept += logits.nbytes
        return logits


# ------------------------------------------------------------------ texts


def corpus_calibration(corpus: Path) -> str:
    """Corpus documents sharing no content with heldout.txt, in a fixed shuffled order."""
    if not corpus.is_dir():
        raise MoteError(f"{corpus}: no corpus; build it with `python -m mote corpus build CACHE {corpus}` "
                        "(make corpus-deps first)")
    docs, _ = exclude(read_documents([corpus]), [HELDOUT])
    random.Random(0).shuffle(docs)
    return "\n\n".join(text for _, text in docs[:200])


# stories260K's texts: stories its dense int8 blob samples (temperature 1), by seed
CALIB_SEEDS = range(1, 9)
EVAL_SEEDS = range(101, 121)
FINETUNE_SEEDS = range(1001, 7001)  # --write-stories: fine-tuning text, disjoint from the two above


def story_list(linux: Path, blob: Path, seeds) -> list[str]:
    out = []
    for seed in seeds:
        run = subprocess.run([str(linux), str(blob), "--prompt", PROMPTS["stories260K"], "-n", "250",
                              "--temp", "1.0", "--seed", str(seed)], capture_output=True, text=True, check=True)
        out.append(PROMPTS["stories260K"] + run.stdout)
    return out


def stories(linux: Path, blob: Path, seeds) -> str:
    return "\n".join(story_list(linux, blob, seeds))


def write_stories(linux: Path, out: Path) -> None:
    """stories260K's fine-tuning text (one file per story, FINETUNE_SEEDS) and the
    evaluation and calibration texts the bench uses (eval.txt, calib.txt), for
    `mote finetune --text OUT/train --exclude OUT/eval.txt`."""
    original = load_model(*SOURCES["stories260K"])
    dense = out / "dense.mote"
    out.mkdir(parents=True, exist_ok=True)
    dense.write_bytes(blobfile.pack(original, "int8", 32, min(CTX, original.config.max_seq_len)))
    write_atomically(out / "eval.txt", stories(linux, dense, EVAL_SEEDS).encode())
    write_atomically(out / "calib.txt", stories(linux, dense, CALIB_SEEDS).encode())
    (out / "train").mkdir(exist_ok=True)
    for seed, text in zip(FINETUNE_SEEDS, story_list(linux, dense, FINETUNE_SEEDS)):
        write_atomically(out / "train" / f"story-{seed:05d}.txt", text.encode())
    dense.unlink()
    print(f"wrote {len(FINETUNE_SEEDS)} stories to {out / 'train'}, and {out / 'eval.txt'}, {out / 'calib.txt'}")


# ------------------------------------------------------------------ measuring


class Bench:
    def __init__(self, args, tools: dict[str, Path], work: Path):
        self.args, self.tools, self.work = args, tools, work

    def variants(self, name: str) -> list[tuple[str, Path, Path | None]]:
        """(variant, checkpoint, tokenizer): the original, then the fine-tuned ones."""
        source, tokenizer = SOURCES[name]
        out = [("original", source, tokenizer)]
        for item in self.args.finetuned:
            model, _, path = item.partition("=")
            if model == name:
                checkpoint = Path(path)
                out.append((checkpoint.name, checkpoint / "model.bin" if (checkpoint / "model.bin").exists()
                            else checkpoint, None))
        return out

    def float_perplexity(self, original, ctx: int, tok, eval_text: str, store: Path | None) -> float:
        """The original float model's perplexity on the evaluation text (kept in the
        --cache directory, keyed by the text and the token limit)."""
        key = hashlib.sha256(f"{eval_text}\0{self.args.eval_tokens}".encode()).hexdigest()[:24]
        stored = store / f"float-{key}.json" if store else None
        if stored is not None and stored.exists():
            return json.loads(stored.read_text())["perplexity"]
        ppl = perplexity(Runner(original, ctx), tok, eval_text, self.args.eval_tokens).ppl
        if stored is not None:
            write_atomically(stored, json.dumps({"perplexity": ppl}).encode())
        return ppl

    def calibrator(self, data: bytes, blob, windows: list[list[int]], store: Path | None) -> budgets.Calibrator:
        """A budget Calibrator whose per-layer curves (the long part: a partial pass per
        layer, point and level) are kept in the --cache directory, keyed by the blob, the
        calibration windows and the levels, and reused by any later run's budgets."""
        levels = tuple(self.args.levels)
        key = hashlib.sha256(data + repr((windows, levels, POINTS)).encode()).hexdigest()[:24]
        stored = store / f"curves-{key}.json" if store else None
        curves = ([budgets.Curve(**c) for c in json.loads(stored.read_text())]
                  if stored is not None and stored.exists() else None)
        calibrator = budgets.Calibrator(blob, windows, POINTS, progress=True, curves=curves, levels=levels)
        if stored is not None and curves is None:
            write_atomically(stored, json.dumps([dataclasses.asdict(c) for c in calibrator.curves()]).encode())
        return calibrator

    def run_model(self, name: str) -> list[dict]:
        args = self.args
        source, tokenizer = SOURCES[name]
        original = load_model(source, tokenizer)
        ctx = min(CTX, original.config.max_seq_len)
        dense_bytes = blobfile.pack(original, "int8", 32, ctx)
        dense = blobfile.load(dense_bytes)
        dense_path = self.work / f"{name}-dense.mote"
        dense_path.write_bytes(dense_bytes)
        tok = tokenizer_of(dense)
        if name == "stories260K":
            calib_text = stories(self.tools["native"], dense_path, CALIB_SEEDS)
            eval_text = stories(self.tools["native"], dense_path, EVAL_SEEDS)
        else:
            calib_text = corpus_calibration(args.corpus)
            eval_text = HELDOUT.read_text(encoding="utf-8")
        windows = sparsity.calibration_windows(tok, calib_text, ctx, args.calib_tokens)
        prompt = PROMPTS.get(name, DEFAULT_PROMPT)
        prompt_ids = ([tok.bos_id] if tok.kind == 1 else []) + tok.encode(prompt, bos=False)
        store = args.cache / name if args.cache else None
        float_ppl = None if args.kernels else self.float_perplexity(original, ctx, tok, eval_text, store)
        dense_runner = None if args.kernels else DenseLogits(Runner(dense), store=store)
        base = {"model": name, "float_perplexity": float_ppl, "eval_tokens": args.eval_tokens or "all"}
        dense_tokens, _ = dump_run(self.tools["dump"], dense_path, prompt_ids, args.tokens)
        base_figures: dict = {}
        rows = []
        for variant, checkpoint, variant_tok in self.variants(name):
            only_dense = bool(args.variants) and variant not in args.variants
            if only_dense and variant != "original":
                continue  # the original's dense row, the baseline, is measured all the same
            model = original if variant == "original" else load_model(checkpoint, variant_tok)
            packed_bytes = dense_bytes if variant == "original" else blobfile.pack(model, "int8", 32, ctx)
            packed = dense if variant == "original" else blobfile.load(packed_bytes)
            configs: list[tuple[str, object]] = [("dense", None)]
            if variant == "original":
                configs += [(f"uniform={s:g}", s) for s in args.uniform]
            configs += [(f"bytes={b:g}", budgets.Budget("bytes", b)) for b in args.budgets]
            configs += [(f"kl={k:g}", budgets.Budget("kl", k)) for k in args.kl_budgets]
            if model.config.activation == "relu":
                configs.append(("natural", "natural"))
            calibrator = None
            for label, how in configs:
                skipped = only_dense or (args.configs and label not in args.configs)
                if skipped and (variant, label) != ("original", "dense"):
                    continue
                if variant == "original" and label == "dense":
                    path, blob, extra = dense_path, dense, {}
                else:
                    started = time.monotonic()
                    sp, extra = None, {}
                    if isinstance(how, float):
                        sp, _ = sparsity.calibrate(packed, windows, how)
                    elif isinstance(how, budgets.Budget):
                        calibrator = calibrator or self.calibrator(packed_bytes, packed, windows, store)
                        a = calibrator.allocation(how)
                        sp = a.sparsity
                        extra = {"calibration": {"skipped": a.skipped, "kl": a.kl, "levels": a.levels,
                                                 "rounds": a.rounds}}
                    elif how == "natural":
                        sp, _ = sparsity.calibrate(packed, windows, 0.0, natural=True)
                    extra["calibration_seconds"] = round(time.monotonic() - started, 1)
                    path = self.work / f"{name}-{variant}-{label}.mote"
                    path.write_bytes(blobfile.pack(model, "int8", 32, ctx, sparsity=sp))
                    blob = blobfile.load(path)
                row = self.measure(base, variant, label, path, blob, dense_path, dense_runner, tok, eval_text,
                                   prompt, prompt_ids, dense_tokens, base_figures)
                row.update(extra)
                if calibrator is not None and label.startswith(("bytes", "kl")):
                    row["curves"] = [{"layer": c.layer, "point": c.point, "fractions": c.fractions,
                                      "saved": c.saved, "kl": c.kl} for c in calibrator.curves()]
                rows.append(row)
        return rows

    def measure(self, base, variant, label, path, blob, dense_path, dense_runner, tok, eval_text, prompt,
                prompt_ids, dense_tokens, base_figures) -> dict:
        args, tools = self.args, self.tools
        started = time.monotonic()
        generated, read = dump_run(tools["dump"], path, prompt_ids, args.tokens)
        row = dict(base) | {
            "variant": variant, "config": label,
            "points": list(blob.sparsity.points) if blob.sparsity else [],
            "bytes_per_token": read,
            "instructions_per_token_avx2": callgrind(tools["avx2"], path, prompt, args.callgrind_tokens,
                                                     self.work),
            "greedy_agreement": float(np.mean([a == b for a, b in zip(generated, dense_tokens)])),
            "greedy_prefix": next((i for i, (a, b) in enumerate(zip(generated, dense_tokens)) if a != b),
                                  len(generated)),
        }
        if not args.kernels:
            # the original dense blob is the dense runner itself: its logits are computed once
            runner = dense_runner if path == dense_path else Runner(blob)
            cmp = sparsity.compare(runner, dense_runner, tok, eval_text, args.eval_tokens)
            row |= {"perplexity": cmp.ppl, "dense_int8_perplexity": cmp.dense_ppl, "tokens_scored": cmp.tokens,
                    "perplexity_increase": cmp.ppl / base["float_perplexity"] - 1, "mean_kl": cmp.kl,
                    "instructions_per_token": callgrind(tools["ref"], path, prompt, args.callgrind_tokens,
                                                        self.work)}
        if args.qemu_board and base["model"] in args.qemu_models:
            try:
                row["qemu_instructions_per_token"] = qemu_instructions(
                    args.qemu_board, path.read_bytes(), prompt, args.qemu_tokens)
            except (MoteError, OSError, subprocess.CalledProcessError) as err:
                row["qemu_error"] = str(err)
        if not base_figures:  # the first row: the original dense model
            base_figures.update(row)
        if "qemu_instructions_per_token" in row and "qemu_instructions_per_token" in base_figures:
            row["qemu_speedup"] = base_figures["qemu_instructions_per_token"] / row["qemu_instructions_per_token"]
        row["bytes_reduction"] = base_figures["bytes_per_token"] / read
        if not args.kernels:
            row["speedup_instructions"] = base_figures["instructions_per_token"] / row["instructions_per_token"]
        row["speedup_instructions_avx2"] = (base_figures["instructions_per_token_avx2"]
                                            / row["instructions_per_token_avx2"])
        row["tok_s"] = tok_s_pairs(tools["native"], dense_path, path, prompt, args.tokens, args.runs)
        # the kernel target: each speed-up over the bytes' reduction, >= 0.9 asked
        row["instructions_per_bytes"] = row["speedup_instructions_avx2"] / row["bytes_reduction"]
        row["tok_s_per_bytes"] = row["tok_s"]["ratio"] / row["bytes_reduction"]
        row["bench_seconds"] = round(time.monotonic() - started, 1)
        quality = ("" if args.kernels else
                   f"ppl {row['perplexity']:8.3f} ({100 * row['perplexity_increase']:+6.2f} % vs float) "
                   f"KL {row['mean_kl']:.4f}  instr x{row['speedup_instructions']:.2f} ")
        print(f"{base['model']:13s} {variant:12s} {label:10s} {quality}"
              f"avx2 instr x{row['speedup_instructions_avx2']:.2f}  bytes x{row['bytes_reduction']:.2f}  "
              f"tok/s x{row['tok_s']['ratio']:.2f}  per bytes: instr {row['instructions_per_bytes']:.2f} "
              f"tok/s {row['tok_s_per_bytes']:.2f}  greedy {row['greedy_agreement']:.2f}"
              + (f"  {args.qemu_board} x{row['qemu_speedup']:.2f}" if "qemu_speedup" in row else ""), flush=True)
        return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for model, variant in dict.fromkeys((r["model"], r["variant"]) for r in rows):
        mine = sorted((r for r in rows if r["model"] == model and r["variant"] == variant
                       and not r["config"].startswith("uniform")), key=lambda r: r["speedup_instructions"])
        label = model if variant == "original" else f"{model} fine-tuned ({variant})"
        ax.plot([r["speedup_instructions"] for r in mine], [100 * r["perplexity_increase"] for r in mine],
                marker="o", label=label)
        for r in mine:
            ax.annotate(r["config"], (r["speedup_instructions"], 100 * r["perplexity_increase"]), fontsize=7)
        uniform = [r for r in rows if r["model"] == model and r["variant"] == variant
                   and r["config"].startswith("uniform")]
        if uniform:
            ax.plot([r["speedup_instructions"] for r in uniform], [100 * r["perplexity_increase"] for r in uniform],
                    marker="x", linestyle="none", color="gray")
    ax.axhline(1, color="gray", linewidth=0.5, linestyle="--")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=-1)
    ax.set_xlabel("speed-up in instructions per token vs the original dense int8 (callgrind, reference kernels)")
    ax.set_ylabel("perplexity increase over the original float model (%)")
    ax.set_title("Dynamic activation sparsity: quality against speed-up (x: one fraction at every point)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_kernels(rows: list[dict], path: Path) -> None:
    """Speed-up against the bytes' reduction, AVX2 instructions and tok/s, with the
    target line (0.9 x the bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["bytes_reduction"])
        x = [r["bytes_reduction"] for r in mine]
        ax.plot(x, [r["speedup_instructions_avx2"] for r in mine], marker="o", label=f"{model}: instructions (AVX2)")
        ax.plot(x, [r["tok_s"]["ratio"] for r in mine], marker="s", linestyle="--", label=f"{model}: tok/s")
        for r in mine:
            ax.annotate(r["config"], (r["bytes_reduction"], r["speedup_instructions_avx2"]), fontsize=7)
    top = max(r["bytes_reduction"] for r in rows)
    ax.plot([1, top], [1, top], color="gray", linewidth=0.5, label="time falls as the bytes")
    ax.plot([1, top], [0.9, 0.9 * top], color="red", linewidth=0.8, linestyle=":", label="target: 0.9 x the bytes")
    ax.set_xlabel("weight bytes per token, dense / sparse")
    ax.set_ylabel("speed-up over the dense int8 blob (x86)")
    ax.set_title("Sparse kernels: speed-up against the bytes skipped")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def kept_runs(runs: list[dict], models: list[str], variants: list[str]) -> list[dict]:
    """--keep: the earlier runs a run of `models` (of their `variants` only, if any) does
    not measure again; the original dense row, the baseline, it always measures."""

    def measured(r: dict) -> bool:
        return r["model"] in models and (not variants or r["variant"] in variants
                                         or (r["variant"], r["config"]) == ("original", "dense"))

    return [r for r in runs if not measured(r)]


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ref-11m-silu,ref-11m-relu,stories260K")
    parser.add_argument("--budgets", type=floats, default=floats("0.25,0.4,0.5"),
                        help="fractions of weight bytes per token to skip")
    parser.add_argument("--kl-budgets", type=floats, default=[], help="mean KL budgets (nats/token)")
    parser.add_argument("--uniform", type=floats, default=floats("0.25"),
                        help="one fraction dropped at every point (the original model only)")
    parser.add_argument("--finetuned", action="append", default=[], metavar="MODEL=DIR",
                        help="a mote finetune output of MODEL, measured against MODEL's original")
    parser.add_argument("--variants", type=lambda t: t.split(","), default=[],
                        help="measure only these variants (original, a --finetuned DIR's name); the "
                             "original dense row, the baseline, is always measured")
    parser.add_argument("--configs", type=lambda t: t.split(","), default=[],
                        help="measure only these configurations (dense, natural, bytes=F, ...)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="a directory keeping the original's float perplexity and dense logits "
                             "between runs (runs of one model's rows, one after another or in parallel)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "build" / "model" / "corpus",
                        help="the public-domain corpus (mote corpus build) the HF models calibrate on")
    parser.add_argument("--tokens", type=int, default=128, help="greedy tokens for agreement, reads and tok/s")
    parser.add_argument("--eval-tokens", type=int, default=None, help="score only this many tokens")
    parser.add_argument("--calib-tokens", type=int, default=1024)
    parser.add_argument("--levels", type=floats, default=list(budgets.LEVELS),
                        help="the budgets' drop levels per point (fewer: cheaper curves, e.g. for small budgets)")
    parser.add_argument("--callgrind-tokens", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5, help="interleaved tok/s runs")
    parser.add_argument("--qemu-board", default="qemu-m7", help="empty to skip QEMU")
    parser.add_argument("--qemu-models", default="stories260K")
    parser.add_argument("--qemu-tokens", type=int, default=64)
    parser.add_argument("--kernels", action="store_true",
                        help="the kernels' speed-up against the bytes only: no perplexity, KL or reference kernels")
    parser.add_argument("--output", type=Path, default=None,
                        help="default bench/results/sparsity.json (--kernels: sparsity-kernels.json)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the output file's runs of the models (with --variants: of the "
                             "variants) not measured now")
    parser.add_argument("--write-stories", type=Path, metavar="DIR",
                        help="only write stories260K's fine-tuning stories (DIR/train) and the bench's "
                             "evaluation and calibration stories (DIR/eval.txt, calib.txt)")
    args = parser.parse_args()
    if args.write_stories:
        write_stories(build_tools()["native"], args.write_stories)
        return 0
    args.qemu_models = args.qemu_models.split(",")
    if args.output is None:
        args.output = RESULTS / ("sparsity-kernels.json" if args.kernels else "sparsity.json")
    rows: list[dict] = []
    if args.keep and args.output.exists():
        rows = kept_runs(json.loads(args.output.read_text())["runs"], args.models.split(","), args.variants)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("output", "keep")}
    with tempfile.TemporaryDirectory(prefix="mote-sparsity-") as tmp:
        bench = Bench(args, build_tools(), Path(tmp))
        for name in args.models.split(","):
            rows += bench.run_model(name)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps({"settings": settings, "runs": rows}, indent=1, default=str) + "\n")
    (plot_kernels if args.kernels else plot)(rows, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MoteError as err:
        print(f"bench/sparsity.py: error: {err}", file=sys.stderr)
        sys.exit(2)
