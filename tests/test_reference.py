"""The numpy reference: llama2.c's golden text, transformers' logits, and what
quantization costs in perplexity."""

from __future__ import annotations

import numpy as np
import pytest

from shared_models import model_path
from mote.format import blob as blobfile
from mote.eval.perplexity import adds_bos, perplexity, stop_ids, tokenizer_of
from mote.importers import load_model
from mote.reference.forward import Runner, generate
from mote.reference.sample import Sampler

# What llama2.c's run.c prints for stories260K, greedy, 64 steps (models/README.md).
RUN_C_GOLDEN = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in "
    "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
    "too high.\nLily's mom said"
)
EVAL_TOKENS = 2048  # a prefix of heldout.txt: eight 256-token windows


@pytest.fixture(scope="module")
def stories():
    return load_model(model_path("stories260K.bin"), model_path("tok512.bin"))


def greedy(source, prompt: str, steps: int) -> tuple[list[int], list[int]]:
    tok = tokenizer_of(source)
    ids = tok.encode(prompt, bos=adds_bos(tok))
    return ids, generate(Runner(source), ids, steps, Sampler(0.0), stop_ids(tok))


def test_float_stories260k_prints_what_run_c_prints(stories):
    tok = tokenizer_of(stories)
    prompt = tok.encode("Once upon a time", bos=True)
    out = generate(Runner(stories), prompt, 64, Sampler(0.0), stop_ids(tok))
    assert tok.decode(prompt + out).decode() == RUN_C_GOLDEN


def test_int8_blob_agrees_with_float_for_32_tokens(stories):
    _, float_out = greedy(stories, "Once upon a time", 40)
    _, int8_out = greedy(blobfile.load(blobfile.pack(stories, "int8", 32, 256)), "Once upon a time", 40)
    assert int8_out[:32] == float_out[:32]


def test_one_step_equals_a_batch(stories):
    """forward_batch is the firmware's token-by-token loop, batched: for a blob the
    same bits; for a float model BLAS may add in another order."""
    ids = [1, 403, 407, 261, 378, 18, 300]
    for source in (blobfile.load(blobfile.pack(stories, "int4", 32, 64)), stories):
        batch = Runner(source).forward_batch(ids, 0)
        runner = Runner(source)
        steps = np.stack([runner.forward(t, pos) for pos, t in enumerate(ids)])
        if source is stories:
            np.testing.assert_allclose(steps, batch, atol=1e-4)
        else:
            np.testing.assert_array_equal(steps, batch)


def test_seeded_sampling_is_reproducible(stories):
    tok = tokenizer_of(stories)
    ids = tok.encode("Once upon a time", bos=True)
    runs = [generate(Runner(stories), ids, 30, Sampler(0.8, 0.9, 0, seed=42), stop_ids(tok)) for _ in range(2)]
    assert runs[0] == runs[1]
    other = generate(Runner(stories), ids, 30, Sampler(0.8, 0.9, 0, seed=43), stop_ids(tok))
    assert other != runs[0]
    top1 = generate(Runner(stories), ids, 30, Sampler(1.0, 1.0, 1, seed=7), stop_ids(tok))
    assert top1 == greedy(stories, "Once upon a time", 30)[1]


@pytest.mark.parametrize("name", ["ref-11m-silu", "ref-11m-relu"])
def test_float_logits_equal_transformers(name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = model_path(name)
    model = load_model(path)
    tok = tokenizer_of(model)
    text = (path / "heldout.txt").read_text(encoding="utf-8")[:400]
    ids = tok.encode(text, bos=False)[:48]
    ours = Runner(model).forward_batch(ids, 0)
    hf = transformers.LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits[0].numpy()
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= 1e-3 * scale


@pytest.fixture(scope="module", params=["ref-11m-silu", "ref-11m-relu"])
def perplexities(request):
    path = model_path(request.param)
    model = load_model(path)
    text = (path / "heldout.txt").read_text(encoding="utf-8")
    tok = tokenizer_of(model)
    result = {"float": perplexity(Runner(model), tok, text, EVAL_TOKENS).ppl}
    for scheme in ("int8", "int4"):
        blob = blobfile.load(blobfile.pack(model, scheme, 32))
        result[scheme] = perplexity(Runner(blob), tok, text, EVAL_TOKENS).ppl
    return result


def test_int8_perplexity_within_half_a_percent(perplexities):
    p = perplexities
    assert abs(p["int8"] / p["float"] - 1) <= 0.005, p


def test_int4_perplexity_within_three_percent(perplexities):
    p = perplexities
    assert abs(p["int4"] / p["float"] - 1) <= 0.03, p
