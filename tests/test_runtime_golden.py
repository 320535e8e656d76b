"""The C runtime against the numpy reference (host/mote/reference/forward.py) on real models:
logits of the first positions bit for bit, 128 greedy tokens identical, a seeded
sampled generation identical. Built with the optimized kernels, the reference
kernels, ASan+UBSan, and run with a 2-thread pool (which must change no bit). Group 32
(the default), and stories260K at group 16 too (bench/quant.py's choice for it)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from cbuild import build_tool
from mote.format import blob as mote_blob
from mote.importers import load_model
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler
from shared_models import model_path
from tiny_model import all_q4a

X86 = platform.machine() == "x86_64"

N_LOGIT_POSITIONS = 8
N_GENERATE = 128


def build_dump(out: Path, kernels: str, sanitize: bool) -> Path:
    """tests/c/mote_dump.c built by firmware/Makefile (`make tools`), copied to `out` so
    that another make run rebuilding the build directory cannot change it mid-session."""
    shutil.copy2(build_tool("mote_dump", kernels, sanitize), out)
    return out


BUILDS = ["x86", "ref", "asan"] if X86 else ["ref", "asan"]


@pytest.fixture(scope="session")
def dump_tools(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mote_dump")
    tools = {}
    for build in BUILDS:
        kernels = "ref" if build == "ref" or not X86 else "x86"
        tools[build] = build_dump(out / f"mote_dump_{build}", kernels, build == "asan")
    return tools


def run_dump(tool: Path, blob: Path, ids: list[int], *extra: str) -> dict:
    run = subprocess.run(
        [str(tool), str(blob), "--tokens", ",".join(map(str, ids)), *extra],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result: dict = {"logits": {}}
    for line in run.stdout.splitlines():
        head, *rest = line.split()
        if head == "logits":
            result["logits"][int(rest[0])] = np.array(rest[1:], np.float32)  # %.9g: the float32 exactly
        elif head in ("prompt", "tokens"):
            result[head] = [int(v) for v in rest]
    return result


@lru_cache(maxsize=None)
def packed_blob(model_key: str, quant: str, directory: str, group: int = 32) -> Path:
    if model_key == "stories260K":
        model = load_model(model_path("stories260K.bin"), tokenizer=model_path("tok512.bin"))
    else:
        model = load_model(model_path(model_key))
    path = Path(directory) / f"{model_key}_{quant}_g{group}.mote"
    dtypes = all_q4a(model.config) if quant == "q4a-all" else quant
    path.write_bytes(mote_blob.pack(model, quant=dtypes, group_size=group))
    return path


@pytest.fixture(scope="session")
def blob_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("blobs"))


PROMPTS = {
    # "Once upon a time" as tok512 encodes it (BOS first)
    "stories260K": [1, 403, 407, 261, 378],
    # a few plain-text ids of the 4096-token byte-level vocabulary (no BOS: see README)
    "ref-11m-silu": [464, 1011, 286, 262, 1110, 13, 198, 40],
}


def reference_run(blob_path: Path, ids: list[int]) -> dict:
    blob = mote_blob.load(blob_path)
    runner = Runner(blob)
    ids = [i % blob.config.vocab_size for i in ids]
    logits = {}
    for pos, token in enumerate(ids):
        out = runner.forward(token, pos)
        if pos < N_LOGIT_POSITIONS:
            logits[pos] = out
    greedy = generate(runner, ids, N_GENERATE, Sampler(0.0))
    sampled = generate(runner, ids, N_GENERATE, Sampler(0.8, 0.9, 0, 42))
    return {"ids": ids, "logits": logits, "greedy": greedy, "sampled": sampled}


_reference_cache: dict[Path, dict] = {}


def reference_for(blob_path: Path, model_key: str) -> dict:
    if blob_path not in _reference_cache:
        _reference_cache[blob_path] = reference_run(blob_path, PROMPTS[model_key])
    return _reference_cache[blob_path]


CASES = [(m, q, b, 32) for m in ("stories260K", "ref-11m-silu") for q in ("int8", "int4")
         for b in BUILDS if not (m == "ref-11m-silu" and b == "ref")]
CASES += [("stories260K", "q4a-all", b, 32) for b in BUILDS] + [("ref-11m-silu", "int4a", BUILDS[0], 32)]
# group 16: four groups per row of stories260K's dim-64 matrices (group 32: two)
CASES += [("stories260K", q, b, 16) for q in ("int8", "int4", "q4a-all") for b in BUILDS if b != "asan"]


@pytest.mark.parametrize("model_key,quant,build,group", CASES,
                         ids=["-".join(c[:3]) + ("" if c[3] == 32 else f"-g{c[3]}") for c in CASES])
def test_runtime_matches_reference(dump_tools, blob_dir, model_key, quant, build, group):
    blob = packed_blob(model_key, quant, blob_dir, group)
    ref = reference_for(blob, model_key)
    ids = ref["ids"]
    tool = dump_tools[build]

    # logits position by position through the prompt, then greedy generation
    greedy = run_dump(tool, blob, ids, "--logits", str(N_LOGIT_POSITIONS), "-n", str(N_GENERATE))
    assert greedy["prompt"] == ids
    for pos, want in ref["logits"].items():
        got = greedy["logits"][pos]
        assert np.array_equal(got, want), f"position {pos}: logits differ by {np.max(np.abs(got - want)):.3g}"
    assert greedy["tokens"] == ref["greedy"]

    sampled = run_dump(tool, blob, ids, "-n", str(N_GENERATE), "--temp", "0.8", "--top-p", "0.9",
                       "--seed", "42")
    assert sampled["tokens"] == ref["sampled"]


@pytest.mark.parametrize("model_key", ["stories260K", "ref-11m-silu"])
def test_threads_change_no_bit(dump_tools, blob_dir, model_key):
    blob = packed_blob(model_key, "int8", blob_dir)
    ids = PROMPTS[model_key]
    tool = dump_tools["x86" if X86 else "ref"]
    args = ["--logits", "4", "-n", "32", "--temp", "0.8", "--seed", "7"]
    one = run_dump(tool, blob, ids, *args)
    two = run_dump(tool, blob, ids, *args, "--threads", "2")
    assert one["tokens"] == two["tokens"]
    for pos in one["logits"]:
        assert np.array_equal(one["logits"][pos], two["logits"][pos])


def test_prompt_text_matches_token_ids(dump_tools, blob_dir):
    """--prompt goes through the on-device tokenizer and gives the same run."""
    blob = packed_blob("stories260K", "int8", blob_dir)
    tool = dump_tools["x86" if X86 else "ref"]
    run = subprocess.run([str(tool), str(blob), "--prompt", "Once upon a time", "-n", "16"],
                         capture_output=True, text=True, timeout=60, check=True)
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["prompt"].split() == [str(i) for i in PROMPTS["stories260K"]]
    by_ids = run_dump(tool, blob, PROMPTS["stories260K"], "-n", "16")
    assert lines["tokens"].split() == [str(i) for i in by_ids["tokens"]]


# a prompt long enough for several prefill passes: the model's own greedy continuation
# of PROMPTS, so that the text is plausible, as ids
LONG_PROMPT_EXTRA = 19
PASS_CASES = [(m, q, b) for m in ("stories260K", "ref-11m-silu") for q in ("int8", "int4")
              for b in BUILDS if b == ("x86" if X86 else "ref") or m == "stories260K"]


@pytest.mark.parametrize("model_key,quant,build", PASS_CASES, ids=["-".join(c) for c in PASS_CASES])
def test_prefill_in_passes_changes_no_bit(dump_tools, blob_dir, model_key, quant, build):
    """A prompt prefilled several positions per pass (mote_prefill: each matrix read once
    per pass, matrix x matrix kernels) gives the bits of the token-by-token run, which
    test_runtime_matches_reference holds to the numpy reference: the logits at the end
    of every pass and every generated token, with 1 and 2 threads. The token-by-token
    run computes each position's RoPE row in its pass, the others read the table of
    every position that mote_state_init computed."""
    blob = packed_blob(model_key, quant, blob_dir)
    ref = reference_for(blob, model_key)
    ids = ref["ids"] + ref["greedy"][:LONG_PROMPT_EXTRA]
    tool = dump_tools[build]
    args = ["--logits", "64", "-n", "12"]
    one = run_dump(tool, blob, ids, *args, "--batch", "1", "--no-rope-table")
    assert sorted(one["logits"]) == list(range(len(ids) + 11))
    for batch, threads in ((4, 1), (7, 2), (64, 1), (64, 2)):
        passes = run_dump(tool, blob, ids, *args, "--batch", str(batch), "--threads", str(threads))
        pass_ends = {min(end, len(ids)) - 1 for end in range(batch, len(ids) + batch, batch)}
        assert set(passes["logits"]) == pass_ends | set(range(len(ids), len(ids) + 11))
        assert passes["tokens"] == one["tokens"]
        for pos, got in passes["logits"].items():
            assert np.array_equal(got, one["logits"][pos]), (batch, threads, pos)
