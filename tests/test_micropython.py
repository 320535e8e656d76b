"""`import mote` on MicroPython (bindings/micropython, docs/micropython.md), against the
numpy reference: the unix port with the user C module, the qemu port (MPS2_AN500, a
Cortex-M7) with the user C module, and a stock qemu firmware importing the native .mpy
at run time. Each runs tests/micropython/check_mote.py on stories260K int8: greedy and
seeded tokens equal the reference's, bad blobs raise ValueError with the reason the
host's reader gives (the firmware's), a small arena says how much is needed, and the
interpreter goes on. On the unix port a real SIGINT (Ctrl-C) stops a generation between
tokens. One MicroPython build of each kind serves every test (bindings/micropython/
Makefile, under build/micropython)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest
from mote.eval.perplexity import adds_bos, stop_ids, tokenizer_of
from mote.format import blob as mote_blob
from mote.importers import load_model
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler
from shared_models import model_path

from mote.boards.catalog import load_board

ROOT = Path(__file__).resolve().parents[1]
BINDINGS = ROOT / "bindings" / "micropython"
CHECK_SCRIPT = Path(__file__).with_name("micropython") / "check_mote.py"

PROMPT = "Once upon a time"
# The stock qemu firmware's 140 KiB heap holds the armv6m module's code (48 KB), two
# Models' tables (12 KB each) and this context's arena (30 KB), not ctx 512's (185 KB).
CTX = 64
N = 48
SEEDED = {"temperature": 0.8, "top_p": 0.9, "seed": 42}
# qemu mps2-an500: PSRAM at 0x60000000 stands in for memory-mapped flash, as for the
# firmware's qemu-m7 board; MicroPython's qemu port has its ROMFS partition at 0x60C00000.
BLOB_ADDR, CRC_BLOB_ADDR, ROMFS_ADDR = 0x60000000, 0x60400000, 0x60C00000
FLIP_AT = 4096  # inside the tensor data of stories260K


def make(*targets: str) -> str:
    run = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(BINDINGS), *targets,
                          f"PYTHON={sys.executable}"], capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@lru_cache(maxsize=None)
def out_dir() -> Path:
    return Path(make("print-out").strip())


@lru_cache(maxsize=None)
def micropython_tree() -> Path:
    return Path(make("print-micropython").strip())


# ------------------------------------------------------------------ model and reference

@pytest.fixture(scope="module")
def blob(tmp_path_factory) -> Path:
    model = load_model(model_path("stories260K.bin"), tokenizer=model_path("tok512.bin"))
    path = tmp_path_factory.mktemp("mp") / "stories260K_int8.mote"
    path.write_bytes(mote_blob.pack(model, quant="int8", group_size=32))
    return path


@pytest.fixture(scope="module")
def crc_blob(blob) -> Path:
    data = bytearray(blob.read_bytes())
    data[FLIP_AT] ^= 0x01
    path = blob.with_name("crc.mote")
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def expected(blob, crc_blob) -> dict:
    """Tokens and text from the numpy reference; reasons from the host's reader."""
    loaded = mote_blob.load(blob)
    tok = tokenizer_of(loaded)
    prompt = tok.encode(PROMPT, bos=adds_bos(tok))
    runner = Runner(loaded, ctx=CTX)

    def run(sampler: Sampler) -> list:
        ids = generate(runner, prompt, N, sampler, stop_ids(tok))
        stream = tok.stream()
        stream.prev = prompt[-1]
        text = b"".join(stream.decode(t) for t in ids) + stream.flush()
        return [ids, text.decode("utf-8"), "length" if len(ids) == N else "eos"]

    def reason(data: bytes) -> str:
        with pytest.raises(mote_blob.BlobError) as refused:
            mote_blob.load(data)
        return refused.value.reason

    data = blob.read_bytes()
    return {
        "greedy": run(Sampler(0.0)),
        "seeded": run(Sampler(SEEDED["temperature"], SEEDED["top_p"], 0, SEEDED["seed"])),
        "bad": {"crc": ["ValueError", reason(crc_blob.read_bytes())],
                "truncated": ["ValueError", reason(data[:-1])],
                "magic": ["ValueError", reason(b"MOTX" + data[4:256])]},
        "arena": mote_blob.arena_bytes(loaded.config, CTX, loaded.group_size),
    }


def preamble(load_blob: str, crc_blob: str, seeded: bool, heap_arena_ctx: int) -> str:
    return "\n".join([
        f"PROMPT = {PROMPT!r}", f"CTX = {CTX}", f"N = {N}", f"SEEDED = {seeded}",
        f"HEAP_ARENA_CTX = {heap_arena_ctx}",
        f"def load_blob():\n    return {load_blob}",
        f"def crc_blob():\n    return {crc_blob}", "",
    ])


def results(output: str) -> dict:
    found = {}
    for line in output.splitlines():
        if line.startswith("@"):
            key, value = line[1:].split(" ", 1)
            found[key] = json.loads(value)
    assert found.get("done"), output[-3000:]
    return found


def check(found: dict, expected: dict, kernels: str, seeded: bool = True) -> None:
    info = found["info"]
    assert (info["model"], info["quant"], info["ctx"], info["kernels"]) == \
        ("stories260K", "q8", CTX, kernels)
    assert info["arena"] == expected["arena"]
    assert found["greedy"] == expected["greedy"]
    if seeded:
        assert found["seeded"] == expected["seeded"]
    assert found["bad"] == expected["bad"]
    assert found["arguments"] == [
        ["ValueError", "empty prompt"], ["ValueError", "n must be from 0 to 2147483647"],
        ["RuntimeError", "a later generate() on this model took over its state"],
    ] + ([["ValueError", "top_p must be above 0 and at most 1"]] if seeded else [])
    assert found["misaligned"] == ["ValueError", "the blob must start on a 4-byte boundary"]
    kind, message = found["small_arena"]
    assert kind == "ValueError", message
    assert message.startswith(f"arena too small: {expected['arena']} bytes needed for ctx {CTX}")
    assert found["again"] == expected["greedy"]
    assert found["caller_arena"] == expected["greedy"]


# ------------------------------------------------------------------ unix port

@pytest.fixture(scope="module")
def unix_micropython() -> Path:
    make("unix")
    return out_dir() / "unix" / "micropython"


def run_unix(micropython: Path, script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.run([str(micropython), str(path)], capture_output=True, text=True,
                          timeout=300)


def test_unix_user_c_module(unix_micropython, blob, crc_blob, expected, tmp_path):
    script = preamble(f"open({str(blob)!r}, 'rb').read()", f"open({str(crc_blob)!r}, 'rb').read()",
                      True, 0) + CHECK_SCRIPT.read_text()
    run = run_unix(unix_micropython, script, tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    check(results(run.stdout), expected, "ref")


INTERRUPT_SCRIPT = """
import mote
blob = open({blob!r}, 'rb').read()
model = mote.Model(blob, ctx={ctx})
def pieces(**kw):
    return [p for p in model.generate({prompt!r}, n={n}, **kw)]
print('READY')
inside = False
try:
    while True:
        inside = True
        list(model.generate({prompt!r}, n=500, temperature=1.0, seed=1))
        inside = False
except KeyboardInterrupt:
    print('INTERRUPTED', inside)
print('AGAIN', ''.join(pieces()))
"""


def test_unix_ctrl_c_between_tokens(unix_micropython, blob, expected, tmp_path):
    """SIGINT (Ctrl-C) while list() drives a generation: the module's check between
    tokens raises KeyboardInterrupt there (without it the interpreter would raise only
    after list() returned, at the loop's jump, with inside False); the model still
    generates the reference's tokens afterwards."""
    path = tmp_path / "interrupt.py"
    path.write_text(INTERRUPT_SCRIPT.format(blob=str(blob), ctx=512, prompt=PROMPT, n=N))
    proc = subprocess.Popen([str(unix_micropython), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.2)  # well into the loop, where list() takes nearly all the time
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "INTERRUPTED True", out + err
    assert lines[1] == "AGAIN " + expected["greedy"][1]


# ------------------------------------------------------------------ qemu port

@pytest.fixture(scope="module")
def qemu_firmware() -> Path:
    make("qemu")
    return out_dir() / "qemu-MPS2_AN500" / "firmware.elf"


@pytest.fixture(scope="module")
def stock_firmware() -> Path:
    make("qemu-stock")
    return out_dir() / "qemu-MPS2_AN500-stock" / "firmware.elf"


@pytest.fixture(scope="module")
def natmods() -> dict[str, Path]:
    make("natmod")
    return {arch: out_dir() / f"natmod-{arch}" / "mote.mpy"
            for arch in ("armv7emsp", "armv7m", "armv6m")}


def romfs_image(files: dict[str, bytes], path: Path) -> Path:
    """A ROMFS image (MicroPython's own writer, from the tree being tested)."""
    sys.path.insert(0, str(micropython_tree() / "tools" / "mpremote"))
    try:
        from mpremote.romfs import VfsRomWriter
    finally:
        sys.path.pop(0)
    writer = VfsRomWriter()
    for name, data in files.items():
        writer.mkfile(name, data)
    path.write_bytes(writer.finalise())
    return path


def run_qemu(firmware: Path, script: str, images: dict[int, Path]) -> str:
    """The script through the raw REPL of the firmware under QEMU (MicroPython's
    tools/pyboard.py, as its own test runner does), the images loaded at their addresses."""
    sys.path.insert(0, str(micropython_tree() / "tools"))
    try:
        import pyboard
    finally:
        sys.path.pop(0)
    loaders = " ".join(f"-device loader,file={p},addr={hex(a)},force-raw=on"
                       for a, p in images.items())
    board = pyboard.Pyboard(f"execpty:qemu-system-arm -machine mps2-an500 -nographic "
                            f"-monitor null -semihosting {loaders} -serial pty -kernel {firmware}")
    try:
        board.enter_raw_repl()
        out, err = board.exec_raw(script, timeout=300)
    finally:
        board.close()
    assert not err, (out + err).decode(errors="replace")[-3000:]
    return out.decode()


def qemu_preamble(blob: Path, seeded: bool) -> str:
    size = blob.stat().st_size
    return ("import uctypes\n" +
            preamble(f"uctypes.bytearray_at({hex(BLOB_ADDR)}, {size})",
                     f"uctypes.bytearray_at({hex(CRC_BLOB_ADDR)}, {size})", seeded, 512))


def test_qemu_user_c_module(qemu_firmware, blob, crc_blob, expected):
    out = run_qemu(qemu_firmware, qemu_preamble(blob, True) + CHECK_SCRIPT.read_text(),
                   {BLOB_ADDR: blob, CRC_BLOB_ADDR: crc_blob})
    found = results(out)
    check(found, expected, load_board("qemu-m7").kernels)  # the set bindings/micropython builds
    assert found["heap_arena"][0] == "MemoryError"
    assert found["heap_arena"][1].startswith("no room on the heap for the arena: ")


@pytest.mark.parametrize("arch", ["armv7emsp", "armv7m", "armv6m"])
def test_qemu_native_module(arch, stock_firmware, natmods, blob, crc_blob, expected, tmp_path):
    """The .mpy imported from ROMFS by a firmware built without it. armv7m and armv6m
    code runs on the Cortex-M7 too, but with the soft-float calling convention, which
    this hard-float firmware does not share: their float arguments (temperature,
    top_p) would arrive garbled, so those two run greedy only."""
    rom = romfs_image({"mote.mpy": natmods[arch].read_bytes()}, tmp_path / "romfs.img")
    seeded = arch == "armv7emsp"
    script = "import mote\nassert mote.__file__ == '/rom/mote.mpy'\n" + \
        qemu_preamble(blob, seeded) + CHECK_SCRIPT.read_text()
    found = results(run_qemu(stock_firmware, script,
                             {BLOB_ADDR: blob, CRC_BLOB_ADDR: crc_blob, ROMFS_ADDR: rom}))
    # the Cortex-M7's set for armv7emsp, the plain-C one for the cores without DSP
    check(found, expected, load_board("qemu-m7").kernels if arch == "armv7emsp" else "cm",
          seeded=seeded)
    assert found["heap_arena"][0] == "MemoryError"


# ------------------------------------------------------------------ CMake ports

def test_cmake_module_configures(tmp_path):
    """micropython.cmake (rp2, esp32: not built here) configures against a stand-in
    `usermod` target and gives it modmote.c and the core's sources for the chosen set:
    every core file but console.c and the other sets' kernels."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(probe C)\n"
        "add_library(usermod INTERFACE)\n"
        f"include({BINDINGS / 'micropython.cmake'})\n"
        'file(GENERATE OUTPUT sources.txt CONTENT '
        '"$<TARGET_PROPERTY:usermod_mote,INTERFACE_SOURCES>")\n')
    run = subprocess.run(["cmake", "-S", str(source), "-B", str(tmp_path / "build"),
                          "-DMOTE_KERNELS=cm"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    got = (tmp_path / "build" / "sources.txt").read_text().split(";")
    core = ROOT / "firmware" / "core"
    want = [BINDINGS / "mote" / "modmote.c"] + [
        p for p in core.glob("*.c")
        if p.name != "console.c" and (not p.name.startswith("kernels_")
                                      or p.name in ("kernels_ref.c", "kernels_cm.c"))]
    assert sorted(map(Path, got)) == sorted(want)
