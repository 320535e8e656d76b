"""`mote finetune`: continue training a pretrained checkpoint so that it runs sparse
(docs/training.md, "Sparse models").

The checkpoint (any format the importers read) becomes the training Llama of
mote.train.loop, optionally with its FFN gate activation swapped to ReLU
("ReLU-fication"), and is trained on text with the sparsity of mote.train.sparse in
the loop: an L1 penalty raised in stages and the runtime's own drops. The loss is
mostly distillation: the KL divergence of the model's next-token distribution from
the original checkpoint's (a frozen copy), so that what is learnt is to live with
sparsity rather than a new corpus; --distill sets its share against the
cross-entropy of the text. Documents of --exclude files (held-out text) are kept out
by content (mote.train.exclude).

The result is written in the format it came in, which the importers read back: a
Hugging Face directory for a Hugging Face checkpoint (its tokenizer files copied), a
llama2.c v1 checkpoint and its tokenizer.bin for a llama2.c one.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mote.importers import load_model
from mote.importers.hf import interleaved_to_rotate_half, rotate_half_to_interleaved
from mote.importers.llama2c import AK42_HEADER_BYTES, AK42_MAGIC, PER_LAYER, V1_ORDER, find_tokenizer
from mote.model import Model, MoteError
from mote.train import loop
from mote.train.config import TrainConfig
from mote.train.exclude import exclude

# Llama module names (Hugging Face's, without "model.") of Mote's per-layer tensors
TORCH_NAMES = {
    "attn_norm": "input_layernorm.weight", "wq": "self_attn.q_proj.weight", "wk": "self_attn.k_proj.weight",
    "wv": "self_attn.v_proj.weight", "wo": "self_attn.o_proj.weight",
    "ffn_norm": "post_attention_layernorm.weight", "w_gate": "mlp.gate_proj.weight",
    "w_up": "mlp.up_proj.weight", "w_down": "mlp.down_proj.weight",
}
HF_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def source_kind(path: Path) -> str:
    """"hf" or "llama2c": the formats a fine-tuned model can be written back in."""
    if path.is_dir():
        return "hf"
    if path.suffix == ".gguf":
        raise MoteError(f"{path}: fine-tuning a GGUF model is not supported (its quantized weights "
                        "would have to be written back as GGUF); start from a Hugging Face or llama2.c checkpoint")
    return "llama2c"


def shape_config(m: Model, **settings) -> TrainConfig:
    c = m.config
    if not c.tied_classifier:
        raise MoteError(f"{m.name}: fine-tuning needs a classifier tied to the token embedding "
                        "(mote's training Llama has no separate one)")
    return TrainConfig(dim=c.dim, n_layers=c.n_layers, n_heads=c.n_heads, n_kv_heads=c.n_kv_heads,
                       hidden_dim=c.hidden_dim, vocab_size=c.vocab_size, rope_theta=c.rope_theta,
                       norm_eps=c.norm_eps, **settings)


def torch_state(m: Model) -> dict:
    """Mote's tensors (interleaved RoPE rows) as the training Llama's state dict
    (rotate-half rows, as Hugging Face)."""
    import torch

    c = m.config
    state = {"embed_tokens.weight": m.tensors["tok_embedding"], "norm.weight": m.tensors["final_norm"]}
    for layer in range(c.n_layers):
        for name, torch_name in TORCH_NAMES.items():
            w = m.tensors[f"layers.{layer}.{name}"]
            if name in ("wq", "wk"):
                w = interleaved_to_rotate_half(w, c.n_heads if name == "wq" else c.n_kv_heads)
            state[f"layers.{layer}.{torch_name}"] = w
    return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in state.items()}


def mote_tensors(model) -> dict[str, np.ndarray]:
    """The inverse of torch_state: the training Llama's weights under Mote's names."""
    c = model.config
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {"tok_embedding": sd["embed_tokens.weight"], "final_norm": sd["norm.weight"]}
    for layer in range(c.n_layers):
        for name, torch_name in TORCH_NAMES.items():
            w = sd[f"layers.{layer}.{torch_name}"]
            if name in ("wq", "wk"):
                w = rotate_half_to_interleaved(w, c.n_heads if name == "wq" else c.n_kv_heads)
            out[f"layers.{layer}.{name}"] = w
    return out


def encode(m: Model, source: Path, texts: list[str]) -> np.ndarray:
    """Documents as one token stream in the checkpoint's own convention: Hugging Face
    models here were trained on documents each followed by EOS, llama2.c models on
    documents each preceded by BOS."""
    if source_kind(source) == "hf":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(source / "tokenizer.json"))
        eos = m.tokenizer.eos_id
        ids: list[int] = []
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            ids += enc.ids
            ids.append(eos)
        return np.array(ids, np.int64)
    from mote.tokenizer import Tokenizer

    tok = Tokenizer.from_data(m.tokenizer)
    return np.array([i for t in texts for i in tok.encode(t, bos=True)], np.int64)


def export(model, c: TrainConfig, source: Path, trained_ctx: int, out: Path) -> None:
    """Write the model as `source` was written; `trained_ctx`: the context the
    checkpoint declares (fine-tuning windows may be shorter)."""
    if source_kind(source) == "hf":
        from safetensors.torch import save_file

        tensors = {"model." + k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        config = json.loads((source / "config.json").read_text())
        config.update(hidden_act=c.activation, torch_dtype="float32")
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for name in HF_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, out / name)
        return
    tensors = mote_tensors(model)
    header = struct.pack("<Ii7iB", AK42_MAGIC, 1, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                         c.vocab_size, trained_ctx, 1)
    with open(out / "model.bin", "wb") as f:
        f.write(header.ljust(AK42_HEADER_BYTES, b"\0"))
        for name in V1_ORDER:
            parts = ([tensors[f"layers.{i}.{name}"] for i in range(c.n_layers)] if name in PER_LAYER
                     else [tensors[name]])
            for part in parts:
                f.write(np.ascontiguousarray(part, "<f4").tobytes())
    shutil.copyfile(find_tokenizer(source, c.vocab_size), out / "tokenizer.bin")


def finetune(c: TrainConfig, texts: list[Path], held_out: list[Path], out: Path, resume: bool = False,
             progress: bool = True) -> dict:
    """Fine-tune c.init on `texts` into `out`; returns the run's record (also
    out/finetune_meta.json)."""
    loop.require_torch()
    import torch
    import torch.nn.functional as F

    out.mkdir(parents=True, exist_ok=True)
    state = None
    if resume:
        state = loop.load_state(out)
        c = TrainConfig(**state["config"])
    source = Path(c.init)
    if source_kind(source) == "llama2c" and c.activation != "silu":
        raise MoteError("a llama2.c checkpoint has no activation field (run.c is SiLU): "
                        "fine-tune it with --act silu")
    m = load_model(source)
    c.check()
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)

    docs, exclusion = exclude(loop.read_documents(texts), held_out) if held_out else (loop.read_documents(texts), None)
    train_texts, val_texts, split_how = loop.split_documents(docs, c.val_fraction, c.seed)
    train_ids, val_ids = encode(m, source, train_texts), encode(m, source, val_texts)
    loop.check_streams(c, len(train_ids), len(val_ids))
    train_stream, val_stream = torch.from_numpy(train_ids), torch.from_numpy(val_ids)

    teacher = loop.Llama(TrainConfig(**{**asdict(c), "activation": m.config.activation}))
    teacher.load_state_dict(torch_state(m))
    teacher.eval().requires_grad_(False)
    model = loop.Llama(c)
    model.load_state_dict(torch_state(m))
    loop.attach_sparsity(model, c)

    def loss_of(model, x, y):
        logits = model(x).flatten(0, 1)
        loss = 0.0
        if c.distill > 0:
            with torch.no_grad():
                target = F.log_softmax(teacher(x).flatten(0, 1), dim=-1)
            kl = F.kl_div(F.log_softmax(logits, dim=-1), target, log_target=True, reduction="batchmean")
            loss = c.distill * kl
        if c.distill < 1:
            loss = loss + (1 - c.distill) * F.cross_entropy(logits, y.flatten())
        return loss

    before = loop.evaluate(model, val_stream, c.ctx, c.eval_windows) if state is None else None
    run = loop.fit(model, c, train_stream, out, state, progress, loss_of,
                   lambda: loop.evaluate(model, val_stream, c.ctx, c.eval_windows),
                   f"mote finetune --resume -o {out} (same --text and --exclude)")

    val_loss = loop.evaluate(model, val_stream, c.ctx)
    tokens_per_step = c.batch * c.ctx
    record = {
        "source": str(source),
        "config": asdict(c),
        "params": model.n_params(),
        "steps": run.step,
        "tokens_seen": run.step * tokens_per_step,
        "train_time_s": round(run.elapsed, 1),
        "train_cpu_s": round(run.cpu_seconds, 1),
        "tokens_per_s": round(run.step * tokens_per_step / run.elapsed) if run.elapsed else 0,
        "val_loss": round(val_loss, 4),
        "val_ppl": round(math.exp(val_loss), 2),
        "val_loss_at_start": None if before is None else round(before, 4),
        "data": {"files": len(docs), "train_tokens": len(train_ids), "val_tokens": len(val_ids),
                 "split": split_how, "held_out": exclusion.describe() if exclusion else "none given",
                 "dropped_as_held_out": exclusion.dropped if exclusion else []},
        "history": run.history,
        "versions": loop.versions(),
    }
    if model.sparsity is not None:
        record["sparsity"] = loop.sparsity_record(model, val_stream, c)
    export(model, c, source, m.config.max_seq_len, out)
    (out / "finetune_meta.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
