"""TensorFlow Lite Micro beside Mote on the same models: instructions per generated
token, arena bytes, model bytes and perplexity.

    python bench/tflm.py [--models stories260K,mcu-1m-silu] [--tokens 128] [--eval-tokens 4096]

Writes bench/results/tflm.json and bench/results/tflm.png. Needs the tflite extra
(pip install -e '.[tflite]') and valgrind. Each model is packed by Mote (int8, groups
of 32) and exported by `mote export --tflite` (int8 weights per output channel with
int8 activations, --quant int8, and with int16 activations, --quant 16x8), both for a
context of 256.

- instructions per token: callgrind, the difference of a run of the prompt plus
  --tokens greedy steps and a run of the prompt alone, divided by --tokens, counting
  only inside one decode step on both sides: Mote's reference kernels (`make -C
  firmware linux KERNELS=ref`: plain C, -O2, no -march) inside mote_forward;
  TFLM's reference kernels (the tflite-micro wheel's host interpreter, GCC -O2
  x86-64 build) inside tflite::micro::MicroInterpreter::Invoke(). The same class of
  code on the same x86-64 host; NOT Cortex-M counts, and TFLM with CMSIS-NN on a
  board was not measured (its third-party downloads cannot be fetched here). Both
  runs set GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4294967295: glibc's
  memcpy otherwise copies large blocks with `rep movsb`, which callgrind counts one
  instruction per byte (TFLM copies each KV cache three times per step).
- arena: Mote's, from the blob header (what the firmware allocates); TFLM's, what its
  recording allocator reports after a step (print_allocations), on the x86-64 host,
  whose pointers and structures are larger than a 32-bit MCU's.
- model bytes: the .mote and .tflite files.
- perplexity: the first --eval-tokens tokens of the evaluation text, windows of 256,
  through the numpy float reference, Mote's int8 blob in the numpy reference (the
  firmware's arithmetic) and each export in tflite-micro's interpreter. Texts:
  mcu-1m-silu calibrates on the first 20 % of its heldout.txt and is evaluated on
  the rest; stories260K (trained on TinyStories, of which no text is available here)
  calibrates on stories its float model samples (temperature 1, seeds 1-8) and is
  evaluated on others (seeds 101-120), sampled by the numpy reference. TFLM int8 is
  also calibrated on text the model samples itself (mote export's default without
  --calib): perplexity_self_calibrated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mote.eval.perplexity import adds_bos, perplexity, tokenizer_of
from mote.eval.sparsity import calibration_windows
from mote.export import tflite
from mote.format import blob as blobfile
from mote.importers import load_model
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("MOTE_MODELS_DIR", ROOT.parent / "shared" / "models"))
RESULTS = ROOT / "bench" / "results"
LINUX = ROOT / "firmware" / "build" / "linux-ref" / "mote-linux"
SOURCES = {
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
}
PROMPTS = {"stories260K": "Once upon a time", "mcu-1m-silu": "And it came to pass"}
CTX = 256
CALIBRATION_TOKENS = 4096
# memcpy by vector loops, not `rep movsb` (counted per byte by callgrind)
COUNTING_ENV = {**os.environ, "GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4294967295"}
INVOKE = "tflite::micro::MicroInterpreter::Invoke()"


def texts(name: str, model) -> tuple[str, str]:
    """(calibration text, evaluation text)."""
    if name != "stories260K":
        heldout = (MODELS / name / "heldout.txt").read_text(encoding="utf-8")
        cut = len(heldout) // 5
        return heldout[:cut], heldout[cut:]
    tok = tokenizer_of(model)
    runner = Runner(model, CTX)

    def stories(seeds) -> str:
        return "\n".join(tok.decode(generate(runner, [tok.bos_id], 250, Sampler(1.0, seed=seed)))
                         .decode("utf-8", "replace") for seed in seeds)

    return stories(range(1, 9)), stories(range(101, 121))


def callgrind_total(command: list[str], toggle: str, work: Path) -> int:
    out = work / "callgrind.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                    f"--toggle-collect={toggle}", *command], check=True, capture_output=True, env=COUNTING_ENV)
    return int(re.search(r"^totals:\s+(\d+)", out.read_text(), re.M).group(1))


def mote_instructions(blob: Path, prompt: str, tokens: int, work: Path) -> float:
    """Instructions inside mote_forward per step, by the difference of -n tokens+1 and
    -n 1: the one-shot mode runs every prompt token, then every sampled token but the
    last, so the two runs differ by `tokens` steps unless EOS ends one early."""
    def run(n: int) -> tuple[int, int]:
        command = [str(LINUX), str(blob), "--prompt", prompt, "-n", str(n), "--temp", "0"]
        total = callgrind_total(command, "mote_forward", work)
        stats = subprocess.run(command, capture_output=True, text=True, check=True).stderr
        fields = dict(re.findall(r"(\w+)=(\w+)", stats[stats.index("[stats]"):]))
        return total, int(fields["prompt"]) + int(fields["tokens"]) - (fields["end"] == "length")

    (long_total, long_calls), (short_total, short_calls) = run(tokens + 1), run(1)
    return (long_total - short_total) / (long_calls - short_calls)


def tflm_instructions(model_file: Path, sequence: list[int], prompt_len: int, work: Path) -> float:
    """Instructions inside Invoke per step: the prompt plus len(sequence) - prompt_len
    steps, minus the prompt alone."""
    def run(n: int) -> int:
        command = [sys.executable, __file__, "--invoke", str(model_file), ",".join(map(str, sequence[:n]))]
        return callgrind_total(command, INVOKE, work)

    steps = len(sequence) - prompt_len
    return (run(len(sequence)) - run(prompt_len)) / steps


def tflm_greedy(decoder: tflite.MicroDecoder, ids: list[int], tokens: int) -> list[int]:
    decoder.reset()
    logits = decoder.forward_batch(ids, 0)[-1]
    out = list(ids)
    for pos in range(len(ids), len(ids) + tokens):
        out.append(int(np.argmax(logits)))
        logits = decoder.step(out[-1], pos)
    return out


def run_model(name: str, args, work: Path) -> dict:
    source, tokenizer = SOURCES[name]
    model = load_model(source, tokenizer)
    tok = tokenizer_of(model)
    calib_text, eval_text = texts(name, model)
    windows = calibration_windows(tok, calib_text, CTX, CALIBRATION_TOKENS)
    ids = tok.encode(PROMPTS[name], bos=adds_bos(tok))

    def ppl(runner) -> float:
        return round(perplexity(runner, tok, eval_text, args.eval_tokens).ppl, 4)

    blob_path = work / f"{name}.mote"
    blob_path.write_bytes(blobfile.pack(model, quant="int8", group_size=32, ctx=CTX))
    blob = blobfile.load(blob_path)
    row = {"model": name, "ctx": CTX, "prompt": PROMPTS[name], "float_perplexity": ppl(Runner(model, CTX))}
    row["mote_int8"] = {
        "model_bytes": blob_path.stat().st_size,
        "arena_bytes": blob.arena_bytes,
        "instructions_per_token": round(mote_instructions(blob_path, PROMPTS[name], args.tokens, work)),
        "perplexity": ppl(Runner(blob, CTX)),
    }
    print(json.dumps({name: row["mote_int8"]}), flush=True)
    for quant in ("int8", "16x8"):
        exported = tflite.export(model, CTX, windows, quant=quant)
        path = work / f"{name}-{quant}.tflite"
        path.write_bytes(exported.data)
        decoder = tflite.MicroDecoder(exported.data)
        sequence = tflm_greedy(decoder, ids, args.tokens)
        arena = decoder.arena()
        row[f"tflm_{quant}"] = {
            "model_bytes": len(exported.data),
            "arena_bytes": arena.total,
            "arena_persistent_bytes": arena.tail,
            "arena_activation_bytes": arena.head,
            "kv_cache_bytes": exported.cache_bytes,
            "operators": sum(exported.op_counts.values()),
            "instructions_per_token": round(tflm_instructions(path, sequence, len(ids), work)),
            "perplexity": ppl(decoder),
        }
        print(json.dumps({f"{name} tflm {quant}": row[f"tflm_{quant}"]}), flush=True)
    # the default without --calib: text the model samples itself
    sampled = tflite.export(model, CTX, None, CALIBRATION_TOKENS, quant="int8")
    row["tflm_int8"]["perplexity_self_calibrated"] = ppl(tflite.MicroDecoder(sampled.data))
    row["eval_tokens"] = args.eval_tokens
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [("mote_int8", "Mote int8 (groups of 32)"), ("tflm_int8", "TFLM int8"),
             ("tflm_16x8", "TFLM 16x8")]
    panels = [("instructions_per_token", "instructions / token\n(callgrind, x86-64 reference kernels)"),
              ("arena_bytes", "arena bytes (RAM)"), ("model_bytes", "model bytes (flash)"),
              ("perplexity", "perplexity increase over the float model, %")]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    width = 0.27
    for ax, (key, label) in zip(axes, panels):
        for k, (side, name) in enumerate(sides):
            xs = [i + (k - 1) * width for i in range(len(rows))]
            if key == "perplexity":
                values = [100 * (r[side][key] / r["float_perplexity"] - 1) for r in rows]
                labels = [f"{v:+.2f} %" for v in values]
            else:
                values = [r[side][key] for r in rows]
                labels = [f"{v:,}" for v in values]
            bars = ax.bar(xs, values, width, label=name)
            ax.bar_label(bars, labels=labels, fontsize=6)
        ax.ticklabel_format(axis="y", style="plain")
        ax.set_xticks(range(len(rows)), [r["model"] for r in rows])
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle("Mote vs TensorFlow Lite Micro, same models, context 256 (x86-64 host; not Cortex-M counts)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def invoke_only(model_file: Path, tokens: str) -> None:
    """The program callgrind counts: one step per token, at positions 0, 1, ..."""
    decoder = tflite.MicroDecoder(model_file.read_bytes())
    for pos, token in enumerate(int(t) for t in tokens.split(",")):
        decoder.step(token, pos)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SOURCES))
    parser.add_argument("--tokens", type=int, default=128, help="generated tokens counted by callgrind")
    parser.add_argument("--eval-tokens", type=int, default=4096, help="tokens of evaluation text for perplexity")
    parser.add_argument("--output", type=Path, default=RESULTS / "tflm.json")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot of --output")
    parser.add_argument("--invoke", nargs=2, metavar=("MODEL", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.invoke:
        invoke_only(Path(args.invoke[0]), args.invoke[1])
        return 0
    if args.replot:
        plot(json.loads(args.output.read_text())["results"], args.output.with_suffix(".png"))
        return 0
    subprocess.run(["make", "-C", str(ROOT / "firmware"), "linux", "KERNELS=ref"], check=True, capture_output=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mote-tflm-bench-") as tmp:
        rows = [run_model(name, args, Path(tmp)) for name in args.models.split(",")]
    import importlib.metadata

    report = {
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "settings": {"ctx": CTX, "tokens": args.tokens, "eval_tokens": args.eval_tokens,
                     "calibration_tokens": CALIBRATION_TOKENS, "prompts": PROMPTS,
                     "tflite_micro": importlib.metadata.version("tflite-micro"),
                     "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True,
                                                text=True).stdout.strip()},
        "host": {"machine": platform.machine(), "nproc": os.cpu_count(),
                 "load_avg_before": load_before, "load_avg_after": os.getloadavg()[0]},
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
