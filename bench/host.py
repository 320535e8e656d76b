"""Host benchmark of the C runtime (firmware/ports/linux one-shot mode): instructions
per generated token under callgrind and wall-clock tokens per second, for
stories260K and ref-11m-silu at int8 and int4, 1 and 2 threads. Writes
bench/results/host.json and a plot of it, bench/results/host.png.
Run: python bench/host.py [--runs 7]"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("MOTE_MODELS_DIR", ROOT.parent / "shared" / "models"))
PROMPT = "Once upon a time"
N_TOKENS = 128
# valgrind 3.19 cannot decode AVX-512 (EVEX) or AVX-VNNI: callgrind counts an AVX2 build
CALLGRIND_ARCH = "-mavx2 -mf16c -mfma"
NATIVE_BUILD = "build/linux"
CALLGRIND_BUILD = "build/linux-bench-avx2"

sys.path.insert(0, str(ROOT / "host"))
from mote.format import blob as mote_blob  # noqa: E402
from mote.importers import load_model  # noqa: E402


def build() -> tuple[Path, Path]:
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), "linux"], check=True)
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), "linux", f"BUILD={CALLGRIND_BUILD}",
                    f"ARCH_FLAGS={CALLGRIND_ARCH}"], check=True)
    fw = ROOT / "firmware"
    return fw / NATIVE_BUILD / "mote-linux", fw / CALLGRIND_BUILD / "mote-linux"


def one_shot(exe: Path, blob: Path, n: int, threads: int = 1, wrapper: list[str] = ()) -> str:
    run = subprocess.run([*wrapper, str(exe), str(blob), "--prompt", PROMPT, "-n", str(n),
                          "--temp", "0", "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return run.stderr


def callgrind_instructions(exe: Path, blob: Path, n: int, tmp: Path) -> tuple[int, int]:
    """(instructions, tokens generated): a generation may end early at EOS."""
    out = tmp / f"callgrind.{blob.stem}.{n}"
    err = one_shot(exe, blob, n, 1, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    tokens = int(re.search(r"tokens=(\d+)", err).group(1))
    return int(re.search(r"Collected : (\d+)", err).group(1)), tokens


def tok_per_second(exe: Path, blob: Path, thread_counts: tuple[int, ...], runs: int) -> dict[int, list[float]]:
    """tok/s of `runs` runs per thread count, the counts interleaved run by run so that
    a change in the machine's load hits them alike."""
    rates: dict[int, list[float]] = {t: [] for t in thread_counts}
    for _ in range(runs):
        for threads in thread_counts:
            err = one_shot(exe, blob, N_TOKENS, threads)
            rates[threads].append(float(re.search(r"tok_s=([0-9.]+)", err).group(1)))
    return rates


def blobs(tmp: Path) -> dict[str, Path]:
    models = {
        "stories260K": lambda: load_model(MODELS / "stories260K.bin", tokenizer=MODELS / "tok512.bin"),
        "ref-11m-silu": lambda: load_model(MODELS / "ref-11m-silu"),
    }
    out = {}
    for name, loader in models.items():
        model = loader()
        for quant in ("int8", "int4"):
            path = tmp / f"{name}-{quant}.mote"
            path.write_bytes(mote_blob.pack(model, quant=quant, group_size=32, ctx=256))
            out[f"{name}-{quant}"] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="wall-clock runs per case (median)")
    args = parser.parse_args()
    native, counted = build()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for case, blob in blobs(tmp).items():
            b = mote_blob.load(blob)
            long_run, long_tokens = callgrind_instructions(counted, blob, N_TOKENS + 1, tmp)
            short_run, short_tokens = callgrind_instructions(counted, blob, 1, tmp)
            entry = {
                "case": case,
                "blob_bytes": blob.stat().st_size,
                "ctx": b.ctx_len,
                "arena_bytes": b.arena_bytes,
                "tokens_counted": long_tokens - short_tokens,
                "instructions_per_token": round((long_run - short_run) / (long_tokens - short_tokens)),
                "tok_s": {},
            }
            entry["load_avg_before"] = os.getloadavg()[0]
            for threads, rates in tok_per_second(native, blob, (1, 2), args.runs).items():
                entry["tok_s"][f"threads_{threads}"] = {
                    "median": round(statistics.median(rates), 1),
                    "best": round(max(rates), 1),
                    "runs": [round(r, 1) for r in rates],
                }
            entry["load_avg_after"] = os.getloadavg()[0]
            results.append(entry)
            print(json.dumps(entry))
    report = {
        "method": {
            "instructions_per_token": (
                f"valgrind --tool=callgrind total instructions of `mote-linux BLOB --prompt "
                f"'{PROMPT}' -n {N_TOKENS + 1} --temp 0` minus the same with -n 1, divided by "
                f"the difference in generated tokens (tokens_counted, {N_TOKENS} unless EOS came "
                f"first): the cost of each further token (forward pass, greedy "
                f"sampling, decoding, output), without loading, CRC and prefill. Single thread. "
                f"Counted on an AVX2 build ({CALLGRIND_ARCH}, KERNELS=x86) because valgrind "
                f"cannot decode AVX-512 or AVX-VNNI instructions."),
            "tok_s": (f"the one-shot mode's own tok/s over {N_TOKENS} greedy tokens after the "
                      f"prompt, median (and best) of {args.runs} runs, 1 and 2 threads "
                      f"interleaved, build `make -C firmware linux` (-march=native, "
                      f"KERNELS=x86). Wall-clock on a shared machine: load_avg_before/after "
                      f"give the 1-minute load average around each case's runs."),
            "blobs": "mote.format.blob.pack(quant, group_size=32, ctx=256)",
        },
        "host": {"machine": platform.machine(), "cpu": _cpu_name(), "nproc": os.cpu_count()},
        "results": results,
    }
    out = ROOT / "bench" / "results" / "host.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.png')}")


def plot(results: list[dict], path: Path) -> None:
    """Instructions per token (left) and median tok/s with 1 and 2 threads (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [r["case"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bars = left.bar(cases, [r["instructions_per_token"] for r in results], color="tab:blue")
    left.bar_label(bars, labels=[f"{r['instructions_per_token']:,}" for r in results], fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("instructions / token (callgrind, AVX2 build)")
    left.set_title("cost per generated token (lower is better)")
    width = 0.4
    for k, threads in enumerate((1, 2)):
        rates = [r["tok_s"][f"threads_{threads}"]["median"] for r in results]
        xs = [i + (k - 0.5) * width for i in range(len(cases))]
        right.bar(xs, rates, width, label=f"{threads} thread{'s' if threads > 1 else ''}")
    right.set_xticks(range(len(cases)), cases)
    right.set_yscale("log")
    right.set_ylabel("tokens / s (median, native build)")
    right.set_title("speed (higher is better)")
    right.legend()
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
