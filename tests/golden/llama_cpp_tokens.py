"""Write tests/golden/llama_cpp_tokens.json: llama.cpp's own token ids for the strings
of tests/token_strings.py (unicode, whitespace runs, special-token look-alikes, real
text), in two vocabularies, and for chat prompts laid out as the model's template
renders them. tests/test_llama_cpp_tokens.py holds Mote's tokenizers (Python and C)
to these ids. llama.cpp is not part of Mote: give the path of a `llama-tokenize` built
from any checkout (its version goes into the file's provenance).

    python tests/golden/llama_cpp_tokens.py /path/to/llama-tokenize

The vocabularies: SmolLM2-135M-Instruct's GGUF (byte-level BPE, pre-tokenizer smollm)
as published, and stories260K with its sentencepiece tokenizer (tok512) written as a
GGUF by tests/gguf_files.py (vocabulary "llama"). Plain strings are tokenized as a
user's text (--no-parse-special, no BOS); chat prompts as a rendered template
(special tokens parsed, as llama.cpp's chat does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from gguf_files import write_gguf  # noqa: E402
from shared_models import MODELS_DIR  # noqa: E402
from token_strings import llama_cpp_strings  # noqa: E402

from mote.importers import load_model  # noqa: E402

OUT = Path(__file__).with_suffix(".json")
SMOLLM = "smollm2-135m-instruct-q4_1.gguf"
# user lines for the chat prompts (no special-token look-alikes: a rendered template
# is parsed for special tokens, a user's line never is)
CHAT_LINES = ["Hello!", "What is the capital of France?", "List the atomic numbers of the first ten chemical elements.",
              "My name is Alice.  Please remember it.", "Write a haiku about the sea\nand the sky.",
              "  leading and trailing spaces  ", "Ünïcödé, 日本語, emoji 🙂 and numbers 12345.", "\n\nnewlines\n\n"]
SYSTEMS = [None, "", "You are a pirate."]


def stories_gguf(directory: Path) -> Path:
    model = load_model(MODELS_DIR / "stories260K.bin", MODELS_DIR / "tok512.bin")
    return write_gguf(directory / "stories260K.gguf", model, "F32")


def tokenize(binary: Path, model: Path, text: str, special: bool, directory: Path) -> list[int]:
    path = directory / "text.txt"
    path.write_bytes(text.encode("utf-8"))
    command = [str(binary), "-m", str(model), "-f", str(path), "--ids", "--no-bos", "--no-escape", "--log-disable"]
    if not special:
        command.append("--no-parse-special")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def chatml(system: str | None, line: str, default: str) -> str:
    """SmolLM2's template rendered for one user line (its default system prompt when none
    is given, none when it is empty): what Mote's chat template lays out."""
    system = default if system is None else system
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return head + f"<|im_start|>user\n{line}<|im_end|>\n<|im_start|>assistant\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("llama_tokenize", type=Path, help="the llama-tokenize binary of a llama.cpp build")
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    version = subprocess.run([str(args.llama_tokenize), "--version"], capture_output=True, text=True)
    smollm = MODELS_DIR / SMOLLM
    default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        vocabularies = {"smollm": smollm, "stories260K": stories_gguf(directory)}
        strings = llama_cpp_strings()
        cases = [{"vocabulary": name, "text": text, "ids": tokenize(args.llama_tokenize, path, text, False, directory)}
                 for name, path in vocabularies.items() for text in strings]
        chat = [{"vocabulary": "smollm", "system": system, "line": line,
                 "ids": tokenize(args.llama_tokenize, smollm, chatml(system, line, default_system), True, directory)}
                for system in SYSTEMS for line in CHAT_LINES]
    golden = {
        "provenance": {
            "generator": "tests/golden/llama_cpp_tokens.py",
            "llama.cpp": (version.stdout + version.stderr).strip().splitlines(),
            "strings": "llama-tokenize -m MODEL -f TEXT --ids --no-bos --no-escape --log-disable --no-parse-special",
            "chat": "the same with special tokens parsed, on SmolLM2's ChatML template rendered for one line",
            "vocabularies": {
                "smollm": f"{SMOLLM} sha256 {hashlib.sha256(smollm.read_bytes()).hexdigest()}",
                "stories260K": "stories260K.bin + tok512.bin written as a GGUF by tests/gguf_files.py write_gguf",
            },
        },
        "cases": cases,
        "chat": chat,
    }
    args.output.write_text(json.dumps(golden, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{len(cases)} strings and {len(chat)} chat prompts -> {args.output}")


if __name__ == "__main__":
    main()
