"""mote-linux as a program: one-shot runs, --info, the console on stdin/stdout and on a
tty it opens, its exits; and `mote run` on top of it. stories260K at int8."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mote.format.blob import arena_bytes, rope_table_bytes
from mote.model import MoteError
from mote.boards.runners import GenerateOptions, LinuxRunner, linux_binary, run_prompt

PROMPT = "Once upon a time"
STATS = re.compile(r"\[stats\] tokens=(\d+) prompt=(\d+) prefill_ms=\d+ ms=\d+ tok_s=\d+\.\d\d "
                   r"decode_ticks=\d+ ticks_hz=\d+ read_bytes_per_token=\d+ end=(eos|length|context|stopped|numeric)")


@pytest.fixture
def model(stories260k_model):
    return stories260k_model


@pytest.fixture
def blob(stories260k_int8_blob) -> Path:
    linux_binary()  # built before any test waits for replies
    return stories260k_int8_blob


@pytest.fixture(scope="module")
def binary() -> str:
    return str(linux_binary())


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), input=stdin, capture_output=True, timeout=60)


def test_one_shot_prints_only_text_and_stats_on_stderr(binary, blob):
    done = run(binary, str(blob), "--prompt", PROMPT, "-n", "24", "--temp", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b", there was") and b"[stats]" not in done.stdout
    stats = STATS.fullmatch(done.stderr.decode().strip())
    assert stats and stats.groups() == ("24", "5", "length")


def test_one_shot_is_deterministic_for_a_seed(binary, blob):
    args = (binary, str(blob), "--prompt", PROMPT, "-n", "32", "--temp", "1", "--topk", "50",
            "--topp", "0.95", "--seed", "7")
    first, again = run(*args), run(*args)
    other = run(*args[:-1], "8")
    assert first.stdout == again.stdout and first.stdout != other.stdout


def test_threads_give_the_same_text(binary, blob):
    args = (binary, str(blob), "--prompt", PROMPT, "-n", "16", "--temp", "0")
    assert run(*args, "--threads", "2").stdout == run(*args).stdout


def test_prefill_passes_give_the_same_text(binary, blob):
    args = (binary, str(blob), "--prompt", PROMPT * 3, "-n", "16", "--temp", "0")
    assert run(*args, "--batch", "1").stdout == run(*args, "--batch", "4").stdout == run(*args).stdout


def test_ctx_limits_the_generation(binary, blob):
    done = run(binary, str(blob), "--prompt", PROMPT, "-n", "1000", "--temp", "0", "--ctx", "32")
    # 27 more positions after the prompt's 5, and the token sampled at the last one
    assert STATS.fullmatch(done.stderr.decode().strip()).groups() == ("28", "5", "context")


def test_info_reports_config_and_arena(binary, blob, model):
    done = run(binary, str(blob), "--info", "--ctx", "128")
    info = dict(line.split("=", 1) for line in done.stdout.decode().splitlines())
    c = model.config
    assert info["model"] == "stories260K" and info["quant"] == "q8"
    assert (int(info["dim"]), int(info["n_layers"]), int(info["vocab_size"])) == (c.dim, c.n_layers, c.vocab_size)
    assert int(info["ctx"]) == 128
    assert int(info["arena_bytes"]) == arena_bytes(c, 128, 32)
    assert int(info["prefill_batch"]) == 64
    assert int(info["arena_allocated"]) == arena_bytes(c, 128, 32, batch=64) + rope_table_bytes(c, 128)
    wide = run(binary, str(blob), "--info", "--ctx", "100", "--batch", "7")
    info = dict(line.split("=", 1) for line in wide.stdout.decode().splitlines())
    assert (int(info["arena_allocated"]) == arena_bytes(c, 100, 32, batch=7) + rope_table_bytes(c, 100)
            > arena_bytes(c, 100, 32))
    assert int(info["blob_bytes"]) == blob.stat().st_size


def test_console_on_stdin_ends_at_eof(binary, blob):
    done = run(binary, str(blob), stdin=b"/n 5\n" + PROMPT.encode() + b"\n/temp 0\n")
    assert done.returncode == 0
    lines = done.stdout.decode().split("\r\n")
    assert lines[0].startswith("mote 0.1.0 board=linux model=stories260K ")
    assert lines[1] == "> ok n=5"
    assert STATS.fullmatch(lines[3]).groups() == ("5", "5", "length")
    assert lines[4:] == ["> ok temp=0", "> "]  # no echo on stdin: the terminal echoes


def test_sigint_stops_a_one_shot_run_with_stats(binary, blob):
    # A story takes some 100 ms; on a loaded machine it may end before the signal
    # arrives, so a few tries are allowed (every one must exit cleanly with stats).
    for seed in range(1, 6):
        proc = subprocess.Popen([binary, str(blob), "--prompt", PROMPT, "-n", "100000",
                                 "--temp", "1", "--seed", str(seed)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.read(1)  # generating
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        end = STATS.fullmatch(err.decode().strip()).group(3)
        if end == "stopped":
            break
    assert end == "stopped"


def test_console_on_a_tty_path_exits_when_it_hangs_up(binary, blob):
    master, slave = os.openpty()  # slave stays open: reading a master without one fails
    proc = subprocess.Popen([binary, str(blob), "--tty", os.ttyname(slave)], stdin=subprocess.DEVNULL)
    try:
        raw = b""
        while not raw.endswith(b"> "):
            raw += os.read(master, 4096)
        assert raw.startswith(b"mote 0.1.0 board=linux ")
        os.write(master, b"/n 2\r")  # a terminal sends \r; the device echoes (raw mode)
        raw = b""
        while not raw.endswith(b"\r\n> "):
            raw += os.read(master, 4096)
        assert raw == b"/n 2\r\nok n=2\r\n> "
    finally:
        os.close(slave)
        os.close(master)  # the "cable" is gone: mote-linux ends cleanly
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("args, message", [
    (["--prompt", PROMPT, "--topp", "2"], "topp must be a decimal number above 0 and at most 1"),
    (["--prompt", PROMPT, "-n", "0"], "n must be a whole number from 1"),
    (["--ctx", "4096"], "exceeds the model's max_seq_len 512"),
    (["--threads", "0"], "--threads must be 1..64"),
    (["--batch", "65"], "--batch must be 1..64"),
    (["--temp", "0.5"], "need --prompt"),
    (["--tty", "/nonexistent/tty"], "/nonexistent/tty: No such file or directory"),
])
def test_bad_arguments_exit_2_with_one_line(binary, blob, args, message):
    done = run(binary, str(blob), *args)
    assert done.returncode == 2
    assert message in done.stderr.decode() and done.stderr.decode().count("\n") == 1


def test_missing_and_invalid_blobs(binary, tmp_path):
    missing = run(binary, str(tmp_path / "nothing.mote"), "--info")
    assert missing.returncode == 2 and b"No such file" in missing.stderr
    junk = tmp_path / "junk.mote"
    junk.write_bytes(b"\0" * 4096)
    bad = run(binary, str(junk), "--prompt", PROMPT)
    assert bad.returncode == 2 and b"bad magic" in bad.stderr
    # the console keeps running without a model, as a board does
    console = run(binary, str(junk), stdin=b"hello\n/temp 0\n")
    assert console.returncode == 0
    assert console.stdout.decode().split("\r\n") == [
        "mote 0.1.0 board=linux model=none",
        "error: no valid model in flash: not a .mote blob (bad magic)",
        "> error: no valid model in flash: not a .mote blob (bad magic)",
        "> ok temp=0", "> "]


def test_run_prompt_streams_prompt_and_text(blob):
    out = io.BytesIO()
    stats = run_prompt(blob, "linux", GenerateOptions(PROMPT, n=20), out)
    one_shot = run(str(linux_binary()), str(blob), "--prompt", PROMPT, "-n", "20", "--temp", "0")
    assert out.getvalue() == PROMPT.encode() + one_shot.stdout + b"\n"
    assert (stats.tokens, stats.end) == (20, "length")


def test_mote_run_cli(blob):
    done = subprocess.run([sys.executable, "-m", "mote.cli", "run", str(blob), "--board", "linux",
                           "--prompt", PROMPT, "-n", "12", "--temp", "0.7", "--seed", "5"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(PROMPT.encode()) and len(done.stdout) > len(PROMPT) + 12
    assert b"12 tokens in" in done.stderr


def test_unknown_board_is_a_clear_error(blob):
    with pytest.raises(MoteError, match="no runner for board 'avr'"):
        run_prompt(blob, "avr", GenerateOptions(PROMPT), io.BytesIO())


def test_console_survives_its_client_dying(blob):
    """The pty's holder closing abruptly mid-generation must not kill mote-linux."""
    with LinuxRunner().console(blob) as client:
        client.read_banner()
        client.set("n", 400)
        client.write(PROMPT.encode() + b"\n")
        client.close()
        time.sleep(0.2)
        with type(client)(client.url) as again:
            assert again.read_banner(boot_wait=0.1).startswith("mote 0.1.0 board=linux")


@pytest.mark.parametrize("mode", [("--prompt", "hi", "-n", "2"), ("--info",)])
def test_every_mode_names_a_corrupted_blob_by_its_crc_first(binary, blob, tmp_path, mode):
    data = bytearray(blob.read_bytes())
    data[300] ^= 0xFF  # inside the tensor table: a structural error too, once the CRC is ignored
    bad = tmp_path / "bad.mote"
    bad.write_bytes(data)
    done = run(binary, str(bad), *mode)
    assert done.returncode == 2
    assert b"CRC mismatch" in done.stderr and done.stdout == b""


@pytest.mark.parametrize("rewrite", ["truncated", "overwritten"])
def test_a_blob_rewritten_in_place_under_a_running_console_changes_nothing(blob, tmp_path, rewrite):
    """cp, an editor or a second convert can rewrite the file the port was started on;
    the port runs from its own copy, so the next reply is the same and nothing crashes."""
    path = tmp_path / "live.mote"
    path.write_bytes(blob.read_bytes())
    with LinuxRunner().console(path) as client:
        client.read_banner()
        client.set("n", 12)
        before, _ = client.ask("Once upon a time")
        with open(path, "r+b") as f:  # in place: the same inode, as `cp` does
            if rewrite == "truncated":
                f.truncate(4096)
            else:
                f.write(bytes(len(blob.read_bytes())))
        after, _ = client.ask("Once upon a time")
    assert after == before and before


def test_an_empty_prompt_is_refused_on_every_path(binary, blob):
    """One behaviour everywhere: the firmware's one-shot mode, `mote run` on any board
    (refused before a board starts) and the reference's `mote generate` say "empty
    prompt" and exit 2; the console reads an empty line as no prompt at all."""
    one_shot = run(binary, str(blob), "--prompt", "")
    assert one_shot.returncode == 2 and one_shot.stderr.decode() == "mote-linux: empty prompt\n"
    for verb in (["run", str(blob), "--board", "linux"], ["run", str(blob), "--board", "qemu-m4"],
                 ["generate", str(blob)]):
        done = subprocess.run([sys.executable, "-m", "mote.cli", *verb, "--prompt", ""],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr == f"mote {verb[0]}: error: empty prompt\n", verb
        assert done.stdout == ""
    console = run(binary, str(blob), stdin=b"\n/temp 0\n")
    assert console.stdout.decode().split("\r\n")[1:] == ["> > ok temp=0", "> "]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_overflowing_arithmetic_ends_with_end_numeric(tmp_path):
    """Finite weights that overflow float (a final norm of 3e38) give non-finite logits:
    the generation ends at once with end=numeric instead of streaming token 0 as text,
    and the reference stops the same way (issue 16)."""
    from mote.format import blob as mote_blob
    from mote.reference.forward import Runner, generate
    from mote.reference.sample import Sampler
    from tiny_model import tiny_model

    model = tiny_model(7)
    model.tensors["final_norm"][:] = 3e38
    path = tmp_path / "overflow.mote"
    path.write_bytes(mote_blob.serialize(mote_blob.quantize(model, "int8", 8, ctx=16)))
    done = run(str(linux_binary()), str(path), "--prompt", "the", "-n", "8", "--temp", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"" and b"end=numeric" in done.stderr, done.stderr
    runner = Runner(mote_blob.load(path), ctx=16)
    assert generate(runner, [1, 20], 8, Sampler(0.0, 1.0, 0, 0)) == []
