"""Quantization: perplexity against blob bytes, per scheme and model.

    python bench/quant.py [--models stories260K,mcu-1m-silu,ref-11m-silu,ref-11m-relu]
                          [--eval-tokens N] [--calib-text samples|heldout] [--keep]
                          [--schemes int4a,...] [--group N] [--regenerate-texts]

Writes bench/results/quant.json and bench/results/quant.png (--keep keeps the runs of
other models and of the other --calib-text already there, so invocations can run in
parallel). Every perplexity is `mote eval`'s: the blob's exact arithmetic, the
firmware's bit for bit; the float model in float32. Which text each figure used (no
two of them overlap):

- calibration (--calib), --calib-text samples (default):
  bench/results/quant-texts/<model>-calib.txt, what the float model itself samples
  (temperature 1, seeds 1-16, 255 tokens each, from BOS for llama2.c models and from
  EOS, the documents' separator, for the others), made by this script when absent
  (--regenerate-texts to make them again); --calib-text heldout (Hugging Face models):
  the second half of heldout.txt;
- in-domain: the first half of heldout.txt of the Hugging Face models (text none of
  them trained on); for stories260K (trained on TinyStories, none of which is here)
  quant-texts/stories260K-eval.txt, stories its float model samples with seeds 101-140;
- out-of-domain: the first 9,000 characters of the local Python's LICENSE.txt and
  11,000 characters of docstrings of a fixed list of its standard-library modules
  (built at run time; its sha256 and the Python version are in the JSON).
--eval-tokens N scores the first N tokens of each evaluation text.

Schemes: the float model; "rtn", the writer before issue 17 (round to nearest, the
group's largest weight on the largest code, q4 in [-7, 7]), reproduced here; int8,
int4, int4a, mixed as `mote convert` writes them without --calib (the weight-error search)
and with it (GPTQ on the calibration text); auto (--quant auto) at the size of calibrated mixed and
at budgets between int4 and int8. --calib-text heldout measures only the float model
and the calibrated schemes. --schemes measures only those (and the float model),
replacing just their rows in the output. --group N (default 32) quantizes with groups
of N columns (weights and activations alike, docs/blob-format.md); each row records its
group, and a run replaces only the rows of its own group (and the float model's).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from mote.eval.perplexity import perplexity, tokenizer_of
from mote.fileio import write_atomically
from mote.format import blob as blobfile
from mote.importers import load_model
from mote.model import Model, MoteError
from mote.pipeline import ConvertOptions, MixedPrecision, activation_aware, convert
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "bench" / "results"
TEXTS = RESULTS / "quant-texts"
SOURCES = {
    "stories260K": (MODELS / "stories260K.bin", MODELS / "tok512.bin"),
    "mcu-1m-silu": (MODELS / "mcu-1m-silu", None),
    "ref-11m-silu": (MODELS / "ref-11m-silu", None),
    "ref-11m-relu": (MODELS / "ref-11m-relu", None),
}
CTX = 256
DEFAULT_GROUP = 32
CALIB_SEEDS = range(1, 17)
STORY_EVAL_SEEDS = range(101, 141)
SAMPLE_TOKENS = 255
OOD_MODULES = ("textwrap.py", "json/__init__.py", "functools.py", "shutil.py", "argparse.py",
               "collections/__init__.py", "pathlib.py", "subprocess.py", "datetime.py", "statistics.py")
AUTO_FRACTIONS = (0.25, 0.5, 0.75)  # auto budgets: int4 bytes + f * (int8 - int4)


def ood_text() -> str:
    """Python's LICENSE.txt (first 9,000 characters) and stdlib docstrings (11,000)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for module in OOD_MODULES:
        tree = ast.parse((stdlib / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(doc)
    license_text = (stdlib / "LICENSE.txt").read_text(encoding="utf-8")[:9000]
    return license_text + "\n\n" + "\n\n".join(docs)[:11000]


def sampled_text(model: Model, seeds) -> str:
    """Texts the float model samples (temperature 1), one per seed, blank-line separated."""
    tok = tokenizer_of(model)
    start = [tok.bos_id] if tok.kind == 1 else [tok.eos_id]
    runner = Runner(model, CTX)
    return "\n\n".join(tok.decode(generate(runner, start, SAMPLE_TOKENS, Sampler(1.0, 1.0, 0, seed)))
                       .decode("utf-8", "replace") for seed in seeds)


def texts_for(name: str, model: Model, args) -> dict[str, str]:
    """The calibration and in-domain texts of a model, and what each is."""
    TEXTS.mkdir(parents=True, exist_ok=True)
    if name == "stories260K":
        if args.calib_text == "heldout":
            raise MoteError("stories260K has no heldout.txt: --calib-text heldout is for the Hugging Face models")
        in_domain = TEXTS / f"{name}-eval.txt"
        if args.regenerate_texts or not in_domain.exists():
            in_domain.write_text(sampled_text(model, STORY_EVAL_SEEDS), encoding="utf-8")
        in_domain_text, in_domain_name = in_domain.read_text(encoding="utf-8"), str(in_domain.relative_to(ROOT))
    else:
        heldout = (MODELS / name / "heldout.txt").read_text(encoding="utf-8")
        half = len(heldout) // 2
        in_domain_text, in_domain_name = heldout[:half], f"heldout.txt, first {half:,} characters"
    if args.calib_text == "heldout":
        calib_text, calib_name = heldout[half:], f"heldout.txt from character {half:,} on"
    else:
        calib = TEXTS / f"{name}-calib.txt"
        if args.regenerate_texts or not calib.exists():
            calib.write_text(sampled_text(model, CALIB_SEEDS), encoding="utf-8")
        calib_text, calib_name = calib.read_text(encoding="utf-8"), str(calib.relative_to(ROOT))
    return {"calib": calib_text, "calib_name": calib_name, "in_domain": in_domain_text,
            "in_domain_name": in_domain_name}


def round_to_nearest(blob: blobfile.Blob, model: Model, group: int) -> blobfile.Blob:
    """The writer before issue 17: s = f16(amax / qmax), q = clamp(rint(w / s)) in
    [-qmax, qmax], qmax 127 (q8) or 7 (q4)."""
    for name, t in blob.tensors.items():
        if t.scales is None:
            continue
        qmax = 127 if t.dtype == "q8" else 7
        w = np.asarray(model.tensors[name], np.float32)
        pad = -w.shape[1] % group
        g = np.pad(w, ((0, 0), (0, pad))).reshape(w.shape[0], -1, group)
        s = (np.abs(g).max(axis=-1) / np.float32(qmax)).astype(np.float16)
        s32 = s.astype(np.float32)[..., None]
        codes = np.where(s32 == 0, 0, np.clip(np.rint(g / np.where(s32 == 0, 1, s32)), -qmax, qmax))
        blob.tensors[name] = blobfile.BlobTensor(name, t.dtype, t.rows, t.cols,
                                                 codes.astype(np.int8).reshape(w.shape[0], -1)[:, : w.shape[1]], s)
    return blob


def measure(source, tok, eval_texts: dict[str, str], eval_tokens: int | None) -> dict:
    out = {}
    for key, text in eval_texts.items():
        started = time.process_time()
        result = perplexity(Runner(source, CTX), tok, text, eval_tokens)
        out[key] = {"perplexity": result.ppl, "tokens": result.tokens,
                    "tokens_per_cpu_second": result.tokens / (time.process_time() - started)}
    return out


SCHEMES = ("int8", "int4", "int4a", "mixed", "auto")


def run_model(name: str, args, ood: str) -> list[dict]:
    source, tokenizer = SOURCES[name]
    model = load_model(source, tokenizer)
    texts = texts_for(name, model, args)
    tok = tokenizer_of(model)
    eval_texts = {"in_domain": texts["in_domain"], "ood": ood}
    rows: list[dict] = []
    group = args.group

    def record(scheme: str, calibrated: bool, blob, **extra) -> None:
        row = {"model": name, "scheme": scheme, "calibrated": calibrated, "run": args.calib_text,
               "eval_tokens": args.eval_tokens, "group": None if blob is None else group,
               "bytes": None if blob is None else blobfile.blob_bytes(blob), **extra}
        row["eval"] = measure(model if blob is None else blob, tok, eval_texts, args.eval_tokens)
        base = rows[0]["eval"] if rows else row["eval"]
        for key, e in row["eval"].items():
            e["increase"] = e["perplexity"] / base[key]["perplexity"] - 1
        rows.append(row)
        print(f"{name:13s} {scheme:10s} {'calib' if calibrated else '     '} {'' if blob is None else group:>4} "
              f"{'' if blob is None else format(row['bytes'], ','):>11s}  " +
              "  ".join(f"{k} {e['perplexity']:9.4f} ({100 * e['increase']:+6.2f} %)" for k, e in row["eval"].items()),
              flush=True)

    schemes = args.schemes.split(",")
    fixed = [s for s in schemes if s != "auto"]
    record("float", False, None)
    if args.calib_text == "samples":  # what does not depend on the calibration text: once
        for scheme in fixed:
            if scheme != "int4a":  # the rtn writer predates q4a
                plain = blobfile.quantize(model, scheme, group, CTX)
                record("rtn-" + scheme, False, round_to_nearest(plain, model, group))
            record(scheme, False, convert(source, ConvertOptions(tokenizer=tokenizer, quant=scheme, ctx=CTX,
                                                                  group=group)).blob)
    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "calib.txt"
        calib.write_text(texts["calib"], encoding="utf-8")
        options = ConvertOptions(tokenizer=tokenizer, quant="auto", ctx=CTX, calib=calib)
        grams, windows = activation_aware(model, options, [])
    for scheme in fixed:
        record(scheme, True, blobfile.quantize(model, scheme, group, CTX, grams=grams))
    if "auto" not in schemes:
        return finish(rows, texts)
    mixed_bytes, int8_bytes, int4_bytes = (
        blobfile.bytes_from_shapes(model, blobfile.tensor_dtypes(model.config, s), group, None)
        for s in ("mixed", "int8", "int4"))
    precision = MixedPrecision(model, group, CTX, grams, windows)
    budgets = [mixed_bytes] + [int(int4_bytes + f * (int8_bytes - int4_bytes)) for f in AUTO_FRACTIONS]
    for budget in budgets:
        blob, chosen = precision.fit(budget)
        record("auto", True, blob, budget=budget, q4=[c.name for c in chosen if c.dtype == "q4"],
               q4a=[c.name for c in chosen if c.dtype == "q4a"],
               predicted_kl=sum(c.cost for c in chosen))
    rows[-len(budgets)]["at_mixed_size"] = True
    return finish(rows, texts)


def finish(rows: list[dict], texts: dict) -> list[dict]:
    for row in rows:
        row["texts"] = {"calib": texts["calib_name"], "in_domain": texts["in_domain_name"],
                        "ood": "LICENSE.txt and docstrings (see settings)"}
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in SOURCES if any(r["model"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 6), squeeze=False)
    styles = {"rtn": ("x", "gray"), "plain": ("s", "tab:blue"), "calib samples": ("o", "tab:green"),
              "calib heldout": ("D", "tab:olive"), "auto samples": ("^", "tab:red"),
              "auto heldout": ("v", "tab:purple"), "int4a plain": ("P", "tab:cyan"),
              "int4a calib samples": ("*", "tab:orange"), "int4a calib heldout": ("X", "tab:brown")}

    def kind(r: dict) -> str:
        if r["scheme"] == "int4a":
            return f"int4a {'calib ' + r['run'] if r['calibrated'] else 'plain'}"
        if not r["calibrated"]:
            return "rtn" if r["scheme"].startswith("rtn") else "plain"
        return f"{'auto' if r['scheme'] == 'auto' else 'calib'} {r['run']}"

    legend: dict[str, object] = {}  # every axis' labels, once
    for ax, name in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == name and r["bytes"]]
        for group in sorted({r["group"] for r in mine}, key=lambda g: g != DEFAULT_GROUP):
            suffix = "" if group == DEFAULT_GROUP else f" g{group}"  # other groups: hollow markers
            for key, line in (("in_domain", "-"), ("ood", ":")):
                for k, (marker, color) in styles.items():
                    pick = sorted((r for r in mine if kind(r) == k and r["group"] == group), key=lambda r: r["bytes"])
                    if pick:
                        handle, = ax.plot([r["bytes"] / 1e6 for r in pick],
                                          [100 * r["eval"][key]["increase"] for r in pick],
                                          marker=marker, linestyle=line if k.startswith("auto") else "none",
                                          color=color, markerfacecolor=color if not suffix else "none",
                                          alpha=1 if key == "in_domain" else 0.4)
                        legend.setdefault(f"{k}{suffix} ({key})", handle)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(name)
        ax.set_xlabel("blob MB")
    axes[0][0].set_ylabel("perplexity increase over float (%)")
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=5, fontsize=7)
    fig.suptitle("Quantization: perplexity against blob size (exact evaluation)")
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    fig.savefig(path, dpi=110)


def identity(row: dict) -> tuple:
    """What a new measurement replaces: the row of the same model, run, scheme and group."""
    return row["model"], row["run"], row["scheme"], row["calibrated"], row["group"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SOURCES))
    parser.add_argument("--eval-tokens", type=int, help="evaluate on the first N tokens of each text (default all)")
    parser.add_argument("--regenerate-texts", action="store_true")
    parser.add_argument("--calib-text", choices=("samples", "heldout"), default="samples",
                        help="calibrate on the float model's samples (and measure the uncalibrated "
                             "schemes too), or on the second half of heldout.txt")
    parser.add_argument("--output", type=Path, default=RESULTS / "quant.json")
    parser.add_argument("--keep", action="store_true", help="keep the output's runs of models not measured now")
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help="measure only these (and the float model); the output's other rows are kept")
    parser.add_argument("--group", type=int, default=DEFAULT_GROUP,
                        help="quantization group length (weights and activations)")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the output's runs")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.output.read_text())["runs"], args.output.with_suffix(".png"))
        return 0
    ood = ood_text()
    settings = {"ctx": CTX, "python": sys.version.split()[0],
                "ood_sha256": hashlib.sha256(ood.encode()).hexdigest(), "ood_chars": len(ood),
                "ood_modules": OOD_MODULES, "calib_seeds": [CALIB_SEEDS.start, CALIB_SEEDS.stop - 1]}
    measured = args.models.split(",")
    rows: list[dict] = []
    for name in measured:
        rows += run_model(name, args, ood)
        # --keep reads the output again before each write, so runs of other models that
        # a parallel invocation wrote meanwhile are kept too
        kept = []
        partial = set(args.schemes.split(",")) != set(SCHEMES)
        fresh = {identity(r) for r in rows}
        if (args.keep or partial) and args.output.exists():
            def stays(r: dict) -> bool:
                if partial:  # only the rows measured now are replaced
                    return identity(r) not in fresh
                return r["model"] not in measured or r["run"] != args.calib_text or r["group"] not in (None, args.group)

            kept = [r for r in json.loads(args.output.read_text())["runs"] if stays(r)]
        runs = kept + rows
        write_atomically(args.output, (json.dumps({"settings": settings, "runs": runs}, indent=1) + "\n").encode())
    plot(runs, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MoteError as err:
        print(f"bench/quant.py: error: {err}", file=sys.stderr)
        sys.exit(2)
