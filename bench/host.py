"""Host benchmark of the C runtime (firmware/ports/linux one-shot mode): instructions
per generated token under callgrind and wall-clock tokens per second, for
stories260K and ref-11m-silu at int8 and int4, 1 and 2 threads. Writes
bench/results/host.json. Run: python bench/host.py [--runs 7]"""

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
from mote import blob as mote_blob  # noqa: E402
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


def tok_per_second(exe: Path, blob: Path, threads: int, runs: int) -> list[float]:
    rates = []
    for _ in range(runs):
        err = one_shot(exe, blob, N_TOKENS, threads)
        rates.append(float(re.search(r"tok_s=([0-9.]+)", err).group(1)))
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
            for threads in (1, 2):
                rates = tok_per_second(native, blob, threads, args.runs)
                entry["tok_s"][f"threads_{threads}"] = {
                    "median": round(statistics.median(rates), 1),
                    "runs": [round(r, 1) for r in rates],
                }
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
                      f"prompt, median of {args.runs} runs, build `make -C firmware linux` "
                      f"(-march=native, KERNELS=x86)."),
            "blobs": "mote.blob.pack(quant, group_size=32, ctx=256)",
        },
        "host": {"machine": platform.machine(), "cpu": _cpu_name(), "nproc": os.cpu_count()},
        "results": results,
    }
    out = ROOT / "bench" / "results" / "host.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


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
