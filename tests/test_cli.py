"""The host verbs end to end: convert, inspect, eval, generate, and their errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from shared_models import model_path


def mote(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mote.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_convert_inspect_generate_eval(tmp_path):
    out = tmp_path / "stories.mote"
    done = mote("convert", model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin"),
                "-o", out, "--ctx", "256", "--board", "qemu-m4")
    assert done.returncode == 0, done.stderr
    assert "260,032 parameters" in done.stdout and "arena 97,104 bytes at context 256" in done.stdout
    assert "layers.4.w_down" in done.stdout and "qemu-m4" in done.stdout
    info = json.loads(mote("inspect", out, "--json").stdout)
    assert info["blob_bytes"] == out.stat().st_size and info["tokenizer"]["vocab_size"] == 512
    assert any(b["board"] == "qemu-m4" and b["fits"] for b in info["boards"])
    text = mote("generate", out, "--prompt", "Once upon a time", "-n", "12").stdout
    assert text.startswith("Once upon a time, there was a little girl named Lily")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("Once upon a time, there was a little girl named Lily. She loved to play.\n" * 4)
    result = json.loads(mote("eval", out, "--text", heldout, "--json").stdout)
    assert result["quantized"] and 1 < result["perplexity"] < 20


def test_errors_are_one_line_and_exit_2(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x01\x02" * 10)
    for args, message in (
        (("convert", garbage, "-o", tmp_path / "x.mote"), "unrecognized checkpoint format"),
        (("inspect", garbage), "not a .mote blob"),
        (("convert", model_path("ref-11m-silu"), "-o", tmp_path / "y.mote", "--board", "qemu-m4"),
         "does not fit qemu-m4"),
    ):
        done = mote(*args)
        assert done.returncode == 2
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and message in errors[0], done.stderr
    assert not (tmp_path / "y.mote").exists()


def test_convert_int4a(tmp_path):
    """--quant int4a: q4a matrices, the embedding q8; inspect names the dtype, eval runs it."""
    out = tmp_path / "stories-int4a.mote"
    done = mote("convert", model_path("stories260K.bin"), "--tokenizer", model_path("tok512.bin"),
                "-o", out, "--ctx", "64", "--quant", "int4a")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^  layers\.4\.w_down +q4a  0\.0[0-9]+$", done.stdout, re.M), done.stdout
    info = json.loads(mote("inspect", out, "--json").stdout)
    assert info["dtypes"] == {"q8": 1, "f32": 11, "q4a": 35}
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("Once upon a time, there was a little girl named Lily. She loved to play.\n" * 2)
    result = json.loads(mote("eval", out, "--text", heldout, "--json").stdout)
    assert result["quantized"] and 1 < result["perplexity"] < 20
