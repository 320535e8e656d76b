"""Mote against llama.cpp on the Linux port: SmolLM2-135M-Instruct, the very same GGUF
file, on this machine. Writes bench/results/linux.json and bench/results/linux.png.

    python bench/linux.py [--runs 7] [--work DIR] [--ready FILE] [--skip-callgrind]
                          [--ppl-chunks N]

llama.cpp comes from bench/peers/llama_cpp.sh (the llama-cpp-python sdist's
vendor/llama.cpp, built outside this tree); --ready names the READY file that script
writes (default /work/scratch/llama.cpp/READY, or $LLAMA_CPP_READY). Mote converts the
GGUF with `mote convert --quant int8|int4` (kept in --work between runs).

What is measured, and how:
- prompt: the issue's ChatML prompt, tokenized by llama.cpp's llama-tokenize (special
  tokens parsed), the same ids for both (Mote's own tokenization of it is compared).
- decode tok/s: greedy, N_DECODE tokens after the prompt, generated through end tokens
  on both sides; llama.cpp's own "eval time" figure (llama-completion), Mote's
  decode passes over the generation's time (tests/c/mote_dump --time, the runtime's
  mote_generate). Medians of --runs runs, every case interleaved run by run (so a
  change in the machine's load hits all alike), 1 and 2 threads, native builds.
- prefill tok/s: the same runs' prompt figure (llama.cpp's "prompt eval time"; Mote's
  prompt ids over its prefill time, passes of 64 positions).
- peak RSS: the largest resident set of those runs' processes (wait4's ru_maxrss).
- instructions per generated token: callgrind, single thread, AVX2 builds on both
  sides (valgrind 3.19 decodes neither AVX-512 nor VNNI), difference of a run of
  N_COUNT + 1 and of 1 generated tokens over N_COUNT (Mote with --no-crc: the CRC is
  start-up, which the difference removes anyway).
- perplexity (only with --ppl-chunks N: the numpy reference takes about 100 s per
  chunk here): llama-perplexity on PPL_TEXT (N chunks of PPL_CTX tokens, the second
  half of each chunk scored); Mote's blobs and its float import of the GGUF scored on
  exactly those tokens and positions by the numpy reference (mote.reference, the C
  runtime's oracle; its fast, not bit-exact, float order).
- greedy text: 64 tokens from llama.cpp and from Mote's float path (the numpy reference
  on the dequantized GGUF), and Mote's int8/int4 runtime, compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("MOTE_MODELS_DIR", ROOT.parent / "shared" / "models"))
GGUF = MODELS / "smollm2-135m-instruct-q4_1.gguf"
PPL_TEXT = MODELS / "ref-11m-silu" / "heldout.txt"
DEFAULT_READY = Path(os.environ.get("LLAMA_CPP_READY", "/work/scratch/llama.cpp/READY"))
PROMPT = ("<|im_start|>user\nList the atomic numbers of the first ten chemical elements."
          "<|im_end|>\n<|im_start|>assistant\n")
QUANTS = ("int8", "int4")
N_DECODE = 128
N_COUNT = 32
N_GREEDY = 64
CTX = 512
PPL_CTX = 512
PREFILL_BATCH = 64
CALLGRIND_ARCH = "-mavx2 -mf16c -mfma"
CALLGRIND_BUILD = "build/linux-bench-avx2"

sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tests"))
from cbuild import build_tool  # noqa: E402
from mote.format import blob as mote_blob  # noqa: E402
from mote.importers import load_model  # noqa: E402
from mote.reference.forward import Runner, generate  # noqa: E402
from mote.reference.sample import Sampler  # noqa: E402
from mote.tokenizer import Tokenizer  # noqa: E402


# ------------------------------------------------------------------ running things

def measured(cmd: list[str], timeout: float = 1800) -> tuple[str, str, int]:
    """stdout, stderr and the peak resident set (bytes) of one run. The peak comes from
    GNU time, not from wait4 here: a child forked from this Python keeps the Python
    process's high-water mark across exec (Linux folds it into the child's maxrss)."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss_file:
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd],
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
        rss_kib = int(Path(rss_file.name).read_text().split()[-1])
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {' '.join(cmd)}\n{stderr[-3000:]}")
    return stdout, stderr, rss_kib * 1024


def llama_tools(ready: Path) -> dict[tuple[str, str], Path]:
    """(build, tool) -> path, from the READY file bench/peers/llama_cpp.sh writes."""
    if not ready.is_file():
        raise SystemExit(f"{ready}: missing; build llama.cpp with bench/peers/llama_cpp.sh")
    tools = {}
    for line in ready.read_text().splitlines():
        if line and not line.startswith("#"):
            build, tool, path = line.split(maxsplit=2)
            tools[(build, tool)] = Path(path)
    return tools


def llama_tokenize(tools: dict, text: str | Path, special: bool) -> list[int]:
    source = ["-f", str(text)] if isinstance(text, Path) else ["-p", text]
    out, _, _ = measured([str(tools[("native", "llama-tokenize")]), "-m", str(GGUF), *source, "--ids",
                          "--log-disable", *(() if special else ("--no-parse-special",))])
    return json.loads(out.strip().splitlines()[-1])


def mote_blobs(work: Path) -> dict[str, Path]:
    blobs = {}
    for quant in QUANTS:
        path = work / f"smollm2-135m-{quant}.mote"
        if not path.exists() or path.stat().st_mtime < GGUF.stat().st_mtime:
            subprocess.run([str(ROOT / ".venv" / "bin" / "mote"), "convert", str(GGUF), "-o", str(path),
                            "--quant", quant, "--ctx", str(CTX)], check=True, stdout=subprocess.DEVNULL)
        blobs[quant] = path
    return blobs


# ------------------------------------------------------------------ one run of each side

def mote_run(dump: Path, blob: Path, ids: list[int], n: int, threads: int, extra: tuple = ()) -> dict:
    out, err, rss = measured([str(dump), str(blob), "--tokens", ",".join(map(str, ids)), "-n", str(n),
                              "--threads", str(threads), "--batch", str(PREFILL_BATCH), "--time", *extra])
    t = re.search(r"time prefill_s ([0-9.]+) gen_s ([0-9.]+) new_tokens (\d+) decode_passes (\d+)", err)
    tokens = [int(v) for v in re.search(r"^tokens(.*)$", out, re.M).group(1).split()]
    prefill_s, gen_s, passes = float(t.group(1)), float(t.group(2)), int(t.group(4))
    return {"decode_tok_s": passes / gen_s, "prefill_tok_s": len(ids) / prefill_s, "peak_rss": rss,
            "tokens": tokens}


def llama_run(tools: dict, build: str, n: int, threads: int, extra: tuple = ()) -> dict:
    out, err, rss = measured([str(tools[(build, "llama-completion")]), "-m", str(GGUF), "-p", PROMPT,
                              "-n", str(n), "-t", str(threads), "-c", str(CTX), "--temp", "0",
                              "--ignore-eos", "-no-cnv", "--no-display-prompt", *extra])
    prompt = re.search(r"prompt eval time =\s*([0-9.]+) ms /\s*(\d+) tokens", err)
    decode = re.search(r"\beval time =\s*([0-9.]+) ms /\s*(\d+) runs", err.replace("prompt eval", "prompt_eval"))
    # completion.cpp prints "\n\n" after the generated text, always
    result = {"peak_rss": rss, "text": out.removesuffix("\n\n"), "prompt_tokens": int(prompt.group(2))}
    result["prefill_tok_s"] = 1000.0 * int(prompt.group(2)) / float(prompt.group(1))
    if int(decode.group(2)) > 0:
        result["decode_tok_s"] = 1000.0 * int(decode.group(2)) / float(decode.group(1))
    return result


# ------------------------------------------------------------------ the measurements

def wall_clock(tools: dict, dump: Path, blobs: dict, ids: list[int], runs: int) -> dict:
    """Every case, runs times, interleaved: decode and prefill tok/s and peak RSS."""
    names = [f"mote-{q}" for q in QUANTS] + ["llama.cpp-q4_1"]
    samples: dict[str, dict[int, list[dict]]] = {n: {1: [], 2: []} for n in names}
    loads = [os.getloadavg()[0]]
    for _ in range(runs):
        for threads in (1, 2):
            for q in QUANTS:
                samples[f"mote-{q}"][threads].append(mote_run(dump, blobs[q], ids, N_DECODE, threads))
            samples["llama.cpp-q4_1"][threads].append(llama_run(tools, "native", N_DECODE, threads))
        loads.append(os.getloadavg()[0])
    out = {}
    for name, by_threads in samples.items():
        entry = {"peak_rss_bytes": max(r["peak_rss"] for rs in by_threads.values() for r in rs)}
        for threads, rs in by_threads.items():
            for key in ("decode_tok_s", "prefill_tok_s"):
                values = [r[key] for r in rs]
                entry.setdefault(key, {})[f"threads_{threads}"] = {
                    "median": round(statistics.median(values), 1),
                    "min": round(min(values), 1), "max": round(max(values), 1),
                    "runs": [round(v, 1) for v in values]}
        out[name] = entry
    out["load_avg_1min"] = {"before": loads[0], "after_each_round": loads[1:]}
    return out


def callgrind(ready: Path, counted_dump: Path, blobs: dict, ids: list[int], tmp: Path) -> dict:
    """Instructions per generated token, AVX2 builds, 1 thread, difference method. The
    READY file is read now: the AVX2 build may finish while the wall-clock runs go."""
    tools = llama_tools(ready)
    if ("avx2", "llama-completion") not in tools:
        raise SystemExit(f"{ready}: no avx2 build yet (bench/peers/llama_cpp.sh still running?)")

    def total(cmd: list[str], tag: str) -> int:
        out_file = tmp / f"callgrind.{tag}"
        _, err, _ = measured(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *cmd],
                             timeout=7200)
        return int(re.search(r"Collected : (\d+)", err).group(1))

    result = {}
    ids_arg = ",".join(map(str, ids))
    for q in QUANTS:
        runs = {n: total([str(counted_dump), str(blobs[q]), "--tokens", ids_arg, "-n", str(n), "--no-crc",
                          "--batch", str(PREFILL_BATCH)], f"mote-{q}.{n}") for n in (1, N_COUNT + 1)}
        result[f"mote-{q}"] = round((runs[N_COUNT + 1] - runs[1]) / N_COUNT)
    llama = tools[("avx2", "llama-completion")]
    runs = {n: total([str(llama), "-m", str(GGUF), "-p", PROMPT, "-n", str(n), "-t", "1", "-c", str(CTX),
                      "--temp", "0", "--ignore-eos", "-no-cnv", "--no-display-prompt", "--no-warmup"],
                     f"llama.{n}") for n in (1, N_COUNT + 1)}
    result["llama.cpp-q4_1"] = round((runs[N_COUNT + 1] - runs[1]) / N_COUNT)
    return result


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def perplexities(tools: dict, blobs: dict, text_ids: list[int], text: Path, n_chunks: int) -> dict:
    """llama-perplexity's figure, and Mote's on the same tokens, chunks and positions."""
    out, err, _ = measured([str(tools[("native", "llama-perplexity")]), "-m", str(GGUF), "-f", str(text),
                            "-c", str(PPL_CTX), "-b", str(PPL_CTX), "--chunks", str(n_chunks), "-t", "2"],
                           timeout=7200)
    llama = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out + err).group(1))
    first = PPL_CTX // 2  # llama-perplexity scores the second half of each chunk
    sources = {f"mote-{q}": mote_blob.load(blobs[q]) for q in QUANTS}
    sources["mote-float"] = load_model(GGUF)
    result = {"llama.cpp-q4_1": llama, "scored_tokens": n_chunks * (PPL_CTX - first - 1)}
    for name, source in sources.items():
        runner = Runner(source, ctx=PPL_CTX, exact=False)
        nll, count = 0.0, 0
        for chunk in range(n_chunks):
            ids = text_ids[chunk * PPL_CTX:(chunk + 1) * PPL_CTX]
            runner.reset()
            logp = log_softmax(runner.forward_batch(ids, 0))
            targets = np.asarray(ids[first + 1:])
            nll -= float(logp[np.arange(first, PPL_CTX - 1), targets].sum())
            count += len(targets)
        result[name] = round(math.exp(nll / count), 4)
        del runner
    return result


def greedy_texts(tools: dict, dump: Path, blobs: dict, ids: list[int], tok: Tokenizer) -> dict:
    """N_GREEDY greedy tokens: llama.cpp, Mote's float path, Mote's runtime."""
    texts = {"llama.cpp-q4_1": llama_run(tools, "native", N_GREEDY, 1)["text"]}
    runner = Runner(load_model(GGUF), ctx=CTX)
    float_ids = generate(runner, ids, N_GREEDY, Sampler(0.0))
    texts["mote-float"] = tok.decode(float_ids).decode(errors="replace")
    for q in QUANTS:
        texts[f"mote-{q}"] = tok.decode(mote_run(dump, blobs[q], ids, N_GREEDY, 1)["tokens"]).decode(errors="replace")
    return compare_texts(texts)


def compare_texts(texts: dict[str, str]) -> dict:
    """Each text beside llama.cpp's: identical, and the characters they share first."""
    reference = texts["llama.cpp-q4_1"]
    result = {}
    for name, text in texts.items():
        common = next((i for i, (a, b) in enumerate(zip(text, reference)) if a != b), min(len(text), len(reference)))
        result[name] = {"text": text, "same_as_llama_cpp": text == reference, "common_prefix_chars": common}
    return result


# ------------------------------------------------------------------ report

def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["mote-int8", "mote-int4", "llama.cpp-q4_1"]
    colors = ["tab:blue", "tab:green", "tab:gray"]
    wall = report["wall_clock"]
    panels = 3 + ("perplexity" in report)
    fig, axes = plt.subplots(1, panels, figsize=(4.25 * panels, 4))
    for ax, key, title in ((axes[0], "decode_tok_s", "decode tok/s (median)"),
                           (axes[1], "prefill_tok_s", "prefill tok/s (median)")):
        width = 0.27
        for k, (name, color) in enumerate(zip(names, colors)):
            values = [wall[name][key][f"threads_{t}"]["median"] for t in (1, 2)]
            bars = ax.bar([t + (k - 1) * width for t in (0, 1)], values, width, label=name, color=color)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([0, 1], ["1 thread", "2 threads"])
        ax.set_title(title + ", higher is better")
        ax.legend(fontsize=7)
    if "instructions_per_token" in report:
        ipt = report["instructions_per_token"]
        bars = axes[2].bar(names, [ipt[n] / 1e6 for n in names], color=colors)
        axes[2].bar_label(bars, fmt="%.1f", fontsize=8)
        axes[2].set_title("M instructions / token (callgrind, AVX2)")
    if "perplexity" in report:
        ppl = report["perplexity"]
        shown = names + ["mote-float"]
        bars = axes[3].bar(shown, [ppl[n] for n in shown], color=colors + ["tab:orange"])
        axes[3].bar_label(bars, fmt="%.2f", fontsize=8)
        axes[3].set_title(f"perplexity ({ppl['scored_tokens']} tokens)")
    for ax in axes[2:]:
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.suptitle("SmolLM2-135M-Instruct, the same GGUF: Mote (int8, int4) and llama.cpp (Q4_1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="wall-clock runs per case (median)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mote-bench-linux",
                        help="where the converted blobs are kept between runs")
    parser.add_argument("--ready", type=Path, default=DEFAULT_READY, help="llama.cpp's READY file")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--ppl-chunks", type=int, default=0,
                        help="perplexity on this many chunks of PPL_CTX tokens (0: none)")
    args = parser.parse_args()

    tools = llama_tools(args.ready)
    dump = build_tool("mote_dump")
    counted = build_tool("mote_dump", arch_flags=CALLGRIND_ARCH, build=CALLGRIND_BUILD)
    args.work.mkdir(parents=True, exist_ok=True)
    blobs = mote_blobs(args.work)
    tok = Tokenizer.from_section(mote_blob.load(blobs["int8"]).tokenizer_section)
    ids = llama_tokenize(tools, PROMPT, special=True)
    report = {
        "method": __doc__.split("What is measured, and how:\n", 1)[1].strip(),
        "machine": {"cpu": _cpu_name(), "nproc": os.cpu_count(), "arch": platform.machine(),
                    "avx512": "avx512f" in _cpu_flags(), "avx_vnni": "avx_vnni" in _cpu_flags()},
        "model": {"gguf": GGUF.name, "gguf_bytes": GGUF.stat().st_size,
                  **{f"mote-{q}_bytes": blobs[q].stat().st_size for q in QUANTS}},
        "prompt": {"text": PROMPT, "ids": ids, "mote_tokenizer_agrees": _mote_ids(tok, PROMPT) == ids},
        "settings": {"decode_tokens": N_DECODE, "ctx": CTX, "runs": args.runs, "prefill_batch": PREFILL_BATCH},
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    report["wall_clock"] = wall_clock(tools, dump, blobs, ids, args.runs)
    print(json.dumps(report["wall_clock"], indent=1))
    if not args.skip_callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            report["instructions_per_token"] = callgrind(args.ready, counted, blobs, ids, Path(tmp))
        print(json.dumps(report["instructions_per_token"]))
    report["greedy"] = greedy_texts(tools, dump, blobs, ids, tok)
    if args.ppl_chunks:
        text_ids = llama_tokenize(tools, PPL_TEXT, special=False)[: args.ppl_chunks * PPL_CTX]
        report["perplexity"] = {"text": PPL_TEXT.name,
                                "mote_tokenizer_agrees": tok.encode(PPL_TEXT.read_text(), False)[:len(text_ids)] == text_ids,
                                **perplexities(tools, blobs, text_ids, PPL_TEXT, args.ppl_chunks)}
        print(json.dumps(report["perplexity"]))
    report["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    report["targets"] = targets(report)
    out = ROOT / "bench" / "results" / "linux.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def targets(report: dict) -> dict:
    """The issue's targets as ratios (>= 1.5x decode, <= 0.5x instructions, perplexity
    within 1 % / 3 %)."""
    wall = report["wall_clock"]
    llama = wall["llama.cpp-q4_1"]["decode_tok_s"]
    llama_best = max(llama["threads_1"]["median"], llama["threads_2"]["median"])
    out = {}
    for q in QUANTS:
        mote = wall[f"mote-{q}"]["decode_tok_s"]
        out[f"{q}_decode_1_thread_vs_llama_1_thread"] = round(mote["threads_1"]["median"] / llama["threads_1"]["median"], 2)
        out[f"{q}_decode_2_threads_vs_llama_best"] = round(mote["threads_2"]["median"] / llama_best, 2)
        if "instructions_per_token" in report:
            ipt = report["instructions_per_token"]
            out[f"{q}_instructions_vs_llama"] = round(ipt[f"mote-{q}"] / ipt["llama.cpp-q4_1"], 3)
        if "perplexity" in report:
            ppl = report["perplexity"]
            out[f"{q}_perplexity_vs_llama"] = round(ppl[f"mote-{q}"] / ppl["llama.cpp-q4_1"] - 1, 4)
    out["llama_second_thread_speedup"] = round(llama["threads_2"]["median"] / llama["threads_1"]["median"], 2)
    return out


def _mote_ids(tok: Tokenizer, prompt: str) -> list[int]:
    """The prompt as a chat template gives it to Mote: control tokens as their ids (a
    special token's entry holds its name), the text between them through the tokenizer."""
    control = {tok.tokens[i].decode(): i for i in range(tok.vocab_size) if tok.special[i]}
    ids: list[int] = []
    for piece in re.split("(" + "|".join(map(re.escape, control)) + ")", prompt):
        if piece in control:
            ids.append(control[piece])
        elif piece:
            ids.extend(tok.encode(piece, False))
    return ids


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
