"""mote train: a tiny run end to end (train -> import -> convert -> generate on the
Linux port), the exported checkpoint against transformers, resume, and bad corpora."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mote.model import MoteError
from shared_models import REQUIRE_MODELS

try:
    import torch
except ImportError:
    # torch is an optional extra; CI (MOTE_REQUIRE_MODELS=1) installs it and must run these
    if REQUIRE_MODELS:
        raise
    pytest.skip("mote train needs the optional torch extra", allow_module_level=True)

from mote.train import loop as mote_train  # noqa: E402  (after the torch check)
from mote.train.loop import TrainConfig, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SUBJECTS = ["the king", "a fox", "my lord", "the old man", "her sister", "the queen", "a soldier"]
VERBS = ["sees", "loves", "follows", "fears", "calls", "remembers", "greets"]
OBJECTS = ["the river", "a golden crown", "the dark wood", "his brother", "the morning star"]


def write_corpus(folder: Path, n_files: int = 12, sentences: int = 40, seed: int = 0) -> Path:
    """A few KB of small-grammar English in n_files documents."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        lines = [
            f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
            for _ in range(sentences)
        ]
        (folder / f"doc{i:02d}.txt").write_text("\n".join(lines) + "\n")
    return folder


def tiny_config(**overrides) -> TrainConfig:
    settings = dict(dim=32, n_layers=2, n_heads=2, n_kv_heads=1, hidden_dim=64, vocab_size=300,
                    ctx=32, steps=150, batch=8, lr=5e-3, eval_every=50, threads=1, seed=3)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("train")
    corpus = write_corpus(base / "corpus")
    out = base / "model"
    record = train(tiny_config(), [corpus], out, data_license="test text", progress=False)
    return out, record


def test_run_learns_and_writes_a_card(trained):
    out, record = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "train_meta.json"):
        assert (out / name).is_file(), name
    assert record["steps"] == 150
    first = record["history"][0]["val_loss_estimate"]
    # uniform guessing over the vocabulary is ln(300) = 5.7 nats; the grammar is easy
    assert record["val_loss"] < first < np.log(300)
    card = (out / "README.md").read_text()
    assert "test text" in card and f"{record['val_ppl']:.2f}" in card
    assert f"{record['params']:,}" in card


def test_export_matches_transformers(trained):
    """transformers' LlamaForCausalLM reads the checkpoint and computes our logits:
    tensor names, config fields and the rotate-half RoPE layout all agree."""
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file

    out, record = trained
    ours = mote_train.Llama(TrainConfig(**record["config"]))
    ours.load_state_dict({k.removeprefix("model."): v for k, v in load_file(out / "model.safetensors").items()})
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = tok("The queen greets the morning star.", return_tensors="pt").input_ids
    assert ids[0, 0].item() != 0  # no <s> is added: the model never saw one
    with torch.no_grad():
        np.testing.assert_allclose(ours(ids).numpy(), theirs(ids).logits.numpy(), atol=1e-4)


def test_tokenizer_round_trips_and_separates_documents(trained):
    from tokenizers import Tokenizer

    out, _ = trained
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert [tok.token_to_id(t) for t in ("<s>", "</s>", "<unk>")] == [0, 1, 2]
    text = "A fox fears the dark wood.\nÉtude: 3 < 4"  # bytes never seen still encode
    assert tok.decode(tok.encode(text).ids) == text


def test_resume_continues_exactly(tmp_path, monkeypatch):
    """A run interrupted after its step-20 checkpoint and resumed ends with the same
    weights as an uninterrupted run: batches depend only on (seed, step)."""
    corpus = write_corpus(tmp_path / "corpus")
    short = tiny_config(steps=40, eval_every=20)
    whole = train(short, [corpus], tmp_path / "whole", progress=False)

    real_batch_at = mote_train.batch_at

    def interrupt_at_25(stream, step, c):
        if step == 25:
            raise KeyboardInterrupt
        return real_batch_at(stream, step, c)

    monkeypatch.setattr(mote_train, "batch_at", interrupt_at_25)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(steps=40, eval_every=20), [corpus], tmp_path / "split", progress=False)
    monkeypatch.setattr(mote_train, "batch_at", real_batch_at)
    resumed = train(tiny_config(steps=1), [corpus], tmp_path / "split", resume=True, progress=False)

    assert resumed["steps"] == 40  # the checkpoint's own budget, not the new flag
    assert resumed["val_loss"] == whole["val_loss"]
    from safetensors.numpy import load_file

    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "corpus is empty"),
        (b"  \n\n", "corpus is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "looks binary"),
        (b"caf\xe9 au lait", "not UTF-8"),
        (b"Too short to train on.", "corpus too small"),
    ],
)
def test_bad_corpus_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(MoteError, match=message):
        train(tiny_config(), [path], tmp_path / "out", progress=False)


def test_cli_resume_needs_no_budget(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "model"
    c = tiny_config(steps=20, eval_every=10)
    train(c, [corpus], out, progress=False)
    result = subprocess.run(
        [sys.executable, "-m", "mote.cli", "train", "--text", str(corpus), "-o", str(out), "--resume", "--quiet"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "20 steps" in result.stdout  # the finished run resumes as finished
    missing = subprocess.run(
        [sys.executable, "-m", "mote.cli", "train", "--text", str(corpus), "-o", str(tmp_path / "new")],
        capture_output=True, text=True,
    )
    assert missing.returncode == 2 and "--steps N or --minutes M" in missing.stderr


def test_cli_reports_errors_in_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "mote.cli", "train", "--text", str(empty), "-o", str(tmp_path / "o"),
         "--steps", "5"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "mote train: error:" in result.stderr and "empty" in result.stderr


def test_end_to_end_on_the_linux_port(trained, tmp_path):
    """train -> HF importer -> .mote blob -> greedy generation on the Linux port, which
    must print what the numpy reference of the same blob generates."""
    from mote.format.blob import pack
    from mote.importers import load_model

    out, _ = trained
    model = load_model(out)
    assert model.config.dim == 32 and model.config.vocab_size == len(model.tokenizer.tokens)
    blob = tmp_path / "tiny.mote"
    blob.write_bytes(pack(model, quant="int8", group_size=32))

    prompt = "The king"
    port = subprocess.run(
        [sys.executable, "-m", "mote.cli", "run", str(blob), "--board", "linux", "--prompt", prompt, "-n", "24"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert port.returncode == 0, port.stderr
    reference = subprocess.run(
        [sys.executable, "-m", "mote.cli", "generate", str(blob), "--prompt", prompt, "-n", "24"],
        capture_output=True, text=True, timeout=300,
    )
    assert reference.returncode == 0, reference.stderr
    generated = reference.stdout.strip()
    assert any(phrase in generated[len(prompt):] for phrase in OBJECTS + SUBJECTS)  # it learned
    assert generated in port.stdout


# ---------------------------------------------------------------------------
# Sparse training and fine-tuning (docs/training.md, "Sparse models")


def gate_zeros(record: dict) -> float:
    zeros = record["sparsity"]["validation_zeros"]["gate"]
    return sum(zeros) / len(zeros)


def test_l1_and_drops_in_the_loop_make_zeros(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    common = dict(activation="relu", steps=80, eval_every=40)
    plain = train(tiny_config(l1=(0.0,), **common), [corpus], tmp_path / "plain", progress=False)
    sparse = train(tiny_config(l1=(0.03, 0.1), drop={"ffn_in": 0.5}, **common), [corpus],
                   tmp_path / "sparse", progress=False)
    assert gate_zeros(sparse) > gate_zeros(plain) + 0.1
    ffn_in = sparse["sparsity"]["validation_zeros"]["ffn_in"]
    assert all(0.35 < z < 0.65 for z in ffn_in)  # the loop's thresholds drop about half
    assert all(t > 0 for t in sparse["sparsity"]["thresholds"]["ffn_in"])
    card = (tmp_path / "sparse" / "README.md").read_text()
    assert "L1 penalty on gate activations, raised in stages: 0.03 -> 0.1" in card
    assert "ffn_in drops 50%" in card


def test_sparse_resume_continues_exactly(tmp_path, monkeypatch):
    """The thresholds of the loop are part of the checkpoint."""
    corpus = write_corpus(tmp_path / "corpus")
    settings = dict(steps=40, eval_every=20, l1=(0.01,), drop={"gate": 0.4, "attn_in": 0.3})
    whole = train(tiny_config(**settings), [corpus], tmp_path / "whole", progress=False)
    real_batch_at = mote_train.batch_at

    def interrupt_at_25(stream, step, c):
        if step == 25:
            raise KeyboardInterrupt
        return real_batch_at(stream, step, c)

    monkeypatch.setattr(mote_train, "batch_at", interrupt_at_25)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(**settings), [corpus], tmp_path / "split", progress=False)
    monkeypatch.setattr(mote_train, "batch_at", real_batch_at)
    resumed = train(tiny_config(steps=1), [corpus], tmp_path / "split", resume=True, progress=False)
    assert resumed["val_loss"] == whole["val_loss"]
    assert resumed["sparsity"] == whole["sparsity"]


def test_bad_sparsity_settings(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    for overrides, message in (({"drop": {"gate": 0.99}}, "--drop fractions"),
                               ({"drop": {"mlp": 0.5}}, "unknown sparsity point"),
                               ({"l1": (2.0,)}, "--l1 strengths")):
        with pytest.raises(MoteError, match=message):
            train(tiny_config(**overrides), [corpus], tmp_path / "out", progress=False)
    result = subprocess.run([sys.executable, "-m", "mote.cli", "train", "--text", str(corpus), "-o",
                             str(tmp_path / "o"), "--steps", "5", "--drop", "gate:0.5"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "POINT=FRACTION" in result.stderr


def test_finetune_relufies_keeps_held_out_text_out_and_reads_back(trained, tmp_path):
    from mote.importers import load_model
    from mote.train.finetune import finetune, shape_config

    source, _ = trained
    corpus = write_corpus(tmp_path / "corpus", seed=5)
    held = tmp_path / "heldout.txt"  # one document of the corpus, on one line
    held.write_text((corpus / "doc03.txt").read_text().replace("\n", " "))
    c = shape_config(load_model(source), init=str(source), activation="relu", steps=40, ctx=32, batch=8,
                     lr=3e-3, eval_every=20, threads=1, l1=(0.01,), drop={"gate": 0.3})
    record = finetune(c, [corpus], [held], tmp_path / "ft", progress=False)
    assert [name for name, _ in record["data"]["dropped_as_held_out"]] == [str(corpus / "doc03.txt")]
    tuned = load_model(tmp_path / "ft")
    assert tuned.config.activation == "relu" and tuned.config.dim == 32
    assert record["val_loss"] < record["val_loss_at_start"]  # recovers from the swap to ReLU
    assert gate_zeros(record) > 0.3


def test_finetune_writes_a_llama2c_checkpoint_back(tmp_path):
    """With a learning rate of 0 the written checkpoint is the original, bit for bit:
    the RoPE row order and the tensor layout survive the round trip."""
    from mote.importers import load_model
    from mote.train.finetune import finetune, shape_config
    from shared_models import model_path

    source = model_path("stories260K.bin")
    original = load_model(source)
    c = shape_config(original, init=str(source), steps=2, ctx=32, batch=2, lr=0.0, eval_every=10,
                     threads=1)
    finetune(c, [write_corpus(tmp_path / "corpus")], [], tmp_path / "ft", progress=False)
    tuned = load_model(tmp_path / "ft" / "model.bin")
    assert tuned.config == original.config
    assert all(np.array_equal(tuned.tensors[k], original.tensors[k]) for k in original.tensors)
    relu = shape_config(original, init=str(source), activation="relu", steps=1, ctx=32, batch=2)
    with pytest.raises(MoteError, match="no activation field"):
        finetune(relu, [write_corpus(tmp_path / "corpus")], [], tmp_path / "ft2", progress=False)
