"""Instructions per generated token of Mote blobs on the host, counted as bench/linux.py
counts Mote's (callgrind, the AVX2 build of tests/c/mote_dump, 1 thread, the difference
of an N_COUNT + 1- and a 1-token run over N_COUNT, the prompt of bench/results/linux.json),
without llama.cpp: to compare blobs of one model (e.g. int4 as q4a against symmetric q4).

    python bench/instructions.py BLOB [BLOB ...]

Prints one line per blob; deterministic, so it needs no quiet machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from cbuild import build_tool  # noqa: E402
from linux import CALLGRIND_ARCH, CALLGRIND_BUILD, N_COUNT, PREFILL_BATCH  # noqa: E402


def collected(cmd: list[str]) -> int:
    run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                         capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def main() -> int:
    ids = ",".join(map(str, json.loads((ROOT / "bench/results/linux.json").read_text())["prompt"]["ids"]))
    tool = build_tool("mote_dump", arch_flags=CALLGRIND_ARCH, build=CALLGRIND_BUILD)
    for blob in sys.argv[1:]:
        runs = {n: collected([str(tool), blob, "--tokens", ids, "-n", str(n), "--no-crc", "--batch",
                              str(PREFILL_BATCH)]) for n in (1, N_COUNT + 1)}
        print(f"{blob}: {round((runs[N_COUNT + 1] - runs[1]) / N_COUNT):,} instructions per generated token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
