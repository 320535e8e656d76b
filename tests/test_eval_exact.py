"""`mote eval` of a blob scores exactly what the C runtime computes: its perplexity
equals, to the last bit, the perplexity of the logits tests/c/mote_dump.c prints for
the same windows, with 1 and 2 BLAS threads on the numpy side and 1 and 2 runtime
threads on the C side. A dense int8, int4 and int4a blob, an int4 one quantized by GPTQ
(`--calib`), and a sparse one (column kernels), with and without BOS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cbuild import build_tool
from shared_models import model_path

from mote.eval import sparsity
from mote.eval.perplexity import perplexity, tokenizer_of
from mote.format import blob as blobfile
from mote.importers import load_model
from mote.pipeline import ConvertOptions, convert

CTX = 64
MAX_TOKENS = 150  # three windows, the last one short


class CRuntimeLogits:
    """What mote.eval.perplexity asks of a Runner, answered by the C runtime: the
    logits mote_dump prints for a window's positions."""

    def __init__(self, tool: Path, blob: Path, threads: int):
        self.tool, self.blob, self.threads, self.ctx = tool, blob, threads, CTX
        self.window: list[int] = []

    def reset(self) -> None:
        self.window = []

    def forward_batch(self, tokens, pos: int) -> np.ndarray:
        assert pos == len(self.window), "perplexity runs a window's chunks in order"
        self.window += list(tokens)
        run = subprocess.run([str(self.tool), str(self.blob), "--tokens", ",".join(map(str, self.window)),
                              "--logits", str(len(self.window)), "--ctx", str(CTX),
                              "--threads", str(self.threads)],
                             capture_output=True, text=True, timeout=300, check=True)
        rows = [line.split()[2:] for line in run.stdout.splitlines() if line.startswith("logits ")]
        return np.array(rows[pos:], np.float32)  # %.9g: each float32 exactly


def mote_eval(blob: Path, text: Path, blas_threads: int) -> float:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(blas_threads))
    run = subprocess.run([sys.executable, "-m", "mote", "eval", str(blob), "--text", str(text), "--ctx",
                          str(CTX), "--max-tokens", str(MAX_TOKENS), "--json"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)["perplexity"]


def blobs(tmp: Path) -> dict[str, Path]:
    out = {}
    mcu = load_model(model_path("mcu-1m-silu"))
    stories = load_model(model_path("stories260K.bin"), model_path("tok512.bin"))
    for name, model, quant in (("mcu-int4", mcu, "int4"), ("mcu-int4a", mcu, "int4a"),
                               ("stories-int8", stories, "int8")):
        out[name] = tmp / f"{name}.mote"
        out[name].write_bytes(blobfile.pack(model, quant, 32, CTX))
    text = (model_path("mcu-1m-silu") / "heldout.txt").read_text(encoding="utf-8")
    calib = tmp / "calib.txt"  # the end of heldout.txt; the evaluation reads its start
    calib.write_text(text[-20000:], encoding="utf-8")
    out["mcu-int4-gptq"] = tmp / "mcu-int4-gptq.mote"
    out["mcu-int4-gptq"].write_bytes(
        convert(model_path("mcu-1m-silu"), ConvertOptions(quant="int4", ctx=CTX, calib=calib, calib_tokens=1024)).data)
    dense = blobfile.quantize(mcu, "int8", 32, CTX)
    windows = sparsity.calibration_windows(tokenizer_of(dense), text[-20000:], CTX, 1024)
    dense.sparsity, _ = sparsity.calibrate(dense, windows, 0.3)
    out["mcu-sparse"] = tmp / "mcu-sparse.mote"
    out["mcu-sparse"].write_bytes(blobfile.serialize(dense))
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    return blobs(tmp_path_factory.mktemp("exact-eval"))


@pytest.mark.parametrize("name", ["mcu-int4", "mcu-int4a", "mcu-int4-gptq", "stories-int8", "mcu-sparse"])
def test_mote_eval_equals_the_c_runtime(cases, name):
    blob = cases[name]
    text = model_path("mcu-1m-silu") / "heldout.txt"
    tool = build_tool("mote_dump")
    tok = tokenizer_of(blobfile.load(blob))
    words = text.read_text(encoding="utf-8")
    from_c = {t: perplexity(CRuntimeLogits(tool, blob, t), tok, words, MAX_TOKENS).ppl for t in (1, 2)}
    from_eval = {t: mote_eval(blob, text, t) for t in (1, 2)}
    assert from_c[1] == from_c[2] == from_eval[1] == from_eval[2], (from_c, from_eval)
