"""Train a tiny Llama on your own text, on the CPU, and export it in Hugging Face format.

The pipeline, in order: read documents (`read_documents`), hold some out for
validation (`split_documents`), train a byte-level BPE tokenizer on the rest
(`train_tokenizer`), train the model (`train`), and write `config.json`,
`model.safetensors`, `tokenizer.json` and a model card that `mote.importers`
reads like any other Hugging Face Llama checkpoint.

The model is written out in full below (RMSNorm, rotary positions, grouped-query
attention, gated FFN, tied embeddings) so it is easy to read next to the C runtime.
RoPE uses Hugging Face's "rotate-half" pairing (dimension i rotates with
i + head_dim/2), which is what `LlamaForCausalLM` expects of q_proj/k_proj rows;
the HF importer converts to Mote's interleaved convention.

Reproducibility: every random choice derives from `--seed` (weights from torch's
generator, batch i from numpy's `default_rng([seed, i])`), so a run resumed from
its checkpoint takes the same batches as an uninterrupted one, and with one
thread (`--threads 1`) torch on the CPU gives bit-identical weights.
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mote.model import MoteError
from mote.train.config import TrainConfig

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # torch is the optional "train" extra
    torch = None

BOS, EOS, UNK = "<s>", "</s>", "<unk>"  # ids 0, 1, 2, as in the reference models
EOS_ID = 1
STATE_FILE = "train_state.pt"
MIN_DOCS_FOR_DOC_SPLIT = 10


def require_torch() -> None:
    if torch is None:
        raise MoteError(
            "mote train needs PyTorch: pip install 'mote[train]' (or pip install torch==2.13.0)"
        )


# ---------------------------------------------------------------------------
# Data


def read_documents(paths: list[Path]) -> list[tuple[str, str]]:
    """(name, text) for every file given, directories walked for *.txt and *.md in name order.

    Each file is one document. Raises MoteError for a missing, binary or empty input.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".md"))
            if not found:
                raise MoteError(f"{path}: directory holds no .txt or .md files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise MoteError(f"{path}: no such file or directory")
    docs = []
    for file in files:
        data = file.read_bytes()
        if b"\0" in data:
            raise MoteError(f"{file}: looks binary (contains NUL bytes); give UTF-8 text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MoteError(f"{file}: not UTF-8 text (byte {err.start}); give UTF-8 text") from None
        if text.strip():
            docs.append((str(file), text))
    if not docs:
        raise MoteError("the corpus is empty: every file given has no text")
    return docs


def split_documents(
    docs: list[tuple[str, str]], fraction: float, seed: int
) -> tuple[list[str], list[str], str]:
    """(train texts, validation texts, how the split was made).

    With enough documents, whole documents are held out (chosen by `seed`) so no
    validation text is ever trained on; with fewer, the last `fraction` of each
    document's characters is held out.
    """
    if len(docs) >= MIN_DOCS_FOR_DOC_SPLIT:
        n_val = max(1, round(fraction * len(docs)))
        val_ids = set(random.Random(seed).sample(range(len(docs)), n_val))
        train = [t for i, (_, t) in enumerate(docs) if i not in val_ids]
        val = [t for i, (_, t) in enumerate(docs) if i in val_ids]
        how = f"{n_val} of {len(docs)} documents held out (random.Random({seed}))"
        return train, val, how
    fraction = max(fraction, 0.1)
    train, val = [], []
    for _, text in docs:
        cut = int(len(text) * (1 - fraction))
        train.append(text[:cut])
        val.append(text[cut:])
    return train, val, f"last {fraction:.0%} of each of {len(docs)} documents held out"


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer like the reference models': no special token is
    added when encoding; </s> (id 1) separates documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode_documents(tok, texts: list[str]) -> np.ndarray:
    """All documents as one stream of token ids, each document followed by </s>."""
    ids: list[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids += enc.ids
        ids.append(EOS_ID)
    return np.array(ids, dtype=np.int64)


# ---------------------------------------------------------------------------
# The model


if torch is not None:

    class RMSNorm(nn.Module):
        def __init__(self, dim: int, eps: float):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope_tables(head_dim: int, ctx: int, theta: float):
        """cos, sin of shape (ctx, head_dim) in rotate-half layout."""
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(ctx, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()

    def apply_rope(x, cos, sin):
        """x (batch, heads, T, head_dim): dimension i rotates with i + head_dim/2."""
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    class Attention(nn.Module):
        def __init__(self, c: TrainConfig):
            super().__init__()
            self.n_heads, self.n_kv_heads, self.head_dim = c.n_heads, c.n_kv_heads, c.head_dim
            self.q_proj = nn.Linear(c.dim, c.n_heads * c.head_dim, bias=False)
            self.k_proj = nn.Linear(c.dim, c.n_kv_heads * c.head_dim, bias=False)
            self.v_proj = nn.Linear(c.dim, c.n_kv_heads * c.head_dim, bias=False)
            self.o_proj = nn.Linear(c.n_heads * c.head_dim, c.dim, bias=False)

        def forward(self, x, cos, sin, hook, layer):
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
            k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
            v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            # query head h reads kv head h // (n_heads / n_kv_heads), as HF's repeat_kv
            repeat = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
            return self.o_proj(y if hook is None else hook(y, layer, "attn_out"))

    class FeedForward(nn.Module):
        def __init__(self, c: TrainConfig):
            super().__init__()
            self.gate_proj = nn.Linear(c.dim, c.hidden_dim, bias=False)
            self.up_proj = nn.Linear(c.dim, c.hidden_dim, bias=False)
            self.down_proj = nn.Linear(c.hidden_dim, c.dim, bias=False)
            self.act = F.silu if c.activation == "silu" else F.relu

        def forward(self, x, hook, layer):
            a = self.act(self.gate_proj(x))
            if hook is not None:
                a = hook(a, layer, "gate")
            return self.down_proj(a * self.up_proj(x))

    class Block(nn.Module):
        def __init__(self, c: TrainConfig):
            super().__init__()
            self.input_layernorm = RMSNorm(c.dim, c.norm_eps)
            self.self_attn = Attention(c)
            self.post_attention_layernorm = RMSNorm(c.dim, c.norm_eps)
            self.mlp = FeedForward(c)

        def forward(self, x, cos, sin, hook, layer):
            """`hook(v, layer, point)` (mote.train.sparse, or None) sees the activations
            at the runtime's sparsity points and returns them with drops applied."""
            h = self.input_layernorm(x)
            x = x + self.self_attn(h if hook is None else hook(h, layer, "attn_in"), cos, sin, hook, layer)
            h = self.post_attention_layernorm(x)
            return x + self.mlp(h if hook is None else hook(h, layer, "ffn_in"), hook, layer)

    class Llama(nn.Module):
        """Module names follow Hugging Face's LlamaForCausalLM, minus its "model." prefix."""

        def __init__(self, c: TrainConfig):
            super().__init__()
            self.config = c
            self.embed_tokens = nn.Embedding(c.vocab_size, c.dim)
            self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
            self.norm = RMSNorm(c.dim, c.norm_eps)
            cos, sin = rope_tables(c.head_dim, c.ctx, c.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
            self.sparsity = None  # a mote.train.sparse.LoopSparsity when training sparse
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    # GPT-2 style: residual-stream writers scaled by depth
                    deep = name.endswith(("o_proj.weight", "down_proj.weight"))
                    std = 0.02 / math.sqrt(2 * c.n_layers) if deep else 0.02
                    nn.init.normal_(p, mean=0.0, std=std)

        def forward(self, ids):
            t = ids.shape[1]
            cos, sin = self.rope_cos[:t], self.rope_sin[:t]
            x = self.embed_tokens(ids)
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, self.sparsity, i)
            return self.norm(x) @ self.embed_tokens.weight.T  # tied classifier

        def n_params(self) -> int:
            return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------
# Training


def batch_at(stream, step: int, c: TrainConfig):
    """The windows of step `step`: a pure function of (seed, step), so resuming is exact."""
    rng = np.random.default_rng([c.seed, step])
    starts = rng.integers(0, len(stream) - c.ctx - 1, size=c.batch)
    windows = torch.stack([stream[s : s + c.ctx + 1] for s in starts])
    return windows[:, :-1], windows[:, 1:]


def evaluate(model, stream, ctx: int, max_windows: int = 0) -> float:
    """Mean next-token loss (nats) over consecutive windows of the validation stream."""
    n = (len(stream) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for first in range(0, n, 16):
            idx = range(first, min(n, first + 16))
            x = torch.stack([stream[i * ctx : i * ctx + ctx] for i in idx])
            y = torch.stack([stream[i * ctx + 1 : i * ctx + ctx + 1] for i in idx])
            logits = model(x)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count


def learning_rate(progress: float, c: TrainConfig) -> float:
    """Linear warmup, then cosine down to min_lr_ratio · lr; progress in [0, 1]."""
    if progress < c.warmup:
        return c.lr * progress / c.warmup
    done = (progress - c.warmup) / (1 - c.warmup)
    ratio = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
    return c.lr * ratio


def make_optimizer(model, c: TrainConfig):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": c.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=c.lr, betas=(0.9, 0.95), eps=1e-8)


@dataclass
class Run:
    """Where a run stands: what fit() continues from and what it leaves."""

    step: int = 0
    elapsed: float = 0.0  # seconds of training steps (wall clock)
    cpu_seconds: float = 0.0  # CPU time of this process in those steps
    history: list = field(default_factory=list)


def load_state(out: Path) -> dict:
    state_path = out / STATE_FILE
    if not state_path.exists():
        raise MoteError(f"{state_path}: no checkpoint to resume from")
    return torch.load(state_path, weights_only=False)


def fit(model, c: TrainConfig, train_stream, out: Path, state: dict | None, progress: bool,
        loss_of, validate, resume_hint: str) -> Run:
    """The training loop shared by `mote train` and `mote finetune`: AdamW on
    loss_of(model, x, y) over the batches of `train_stream` (batch_at), plus the L1
    penalty of model.sparsity if any, with a checkpoint every eval_every steps (and
    at the end) that `state` continues from exactly. validate() gives the
    validation loss printed at each checkpoint."""
    from tqdm import tqdm

    optimizer = make_optimizer(model, c)
    run = Run()
    sparse = model.sparsity
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run = Run(state["step"], state["elapsed"], state["cpu_seconds"], state["history"])
        if sparse is not None:
            sparse.load_state_dict(state["sparsity"])
    budget = c.steps if c.steps else c.minutes * 60

    def progress_now() -> float:
        return run.step / c.steps if c.steps else run.elapsed / budget

    def save_state() -> None:
        snapshot = {"config": asdict(c), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": run.step, "elapsed": run.elapsed, "cpu_seconds": run.cpu_seconds,
                    "history": run.history}
        if sparse is not None:
            snapshot["sparsity"] = sparse.state_dict()
        torch.save(snapshot, out / (STATE_FILE + ".tmp"))
        (out / (STATE_FILE + ".tmp")).replace(out / STATE_FILE)

    tokens_per_step = c.batch * c.ctx
    bar = tqdm(
        total=c.steps if c.steps else round(budget),
        initial=run.step if c.steps else round(run.elapsed),
        unit="step" if c.steps else "s",
        disable=not progress,
        dynamic_ncols=True,
    )
    loss_avg = None
    while progress_now() < 1.0:
        started, cpu_started = time.perf_counter(), time.process_time()
        lr = learning_rate(progress_now(), c)
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            x, y = batch_at(train_stream, run.step, c)
            l1 = sparse.begin(progress_now(), learning=True) if sparse is not None else 0.0
            loss = loss_of(model, x, y)
            total = loss + l1 * sparse.penalty if l1 else loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            optimizer.step()
        except KeyboardInterrupt:
            # the weights may be half-updated: only the last saved checkpoint is sound
            bar.close()
            saved = (out / STATE_FILE).exists()
            print(f"interrupted at step {run.step}; " + (
                f"{resume_hint} continues from the last checkpoint"
                if saved else f"no checkpoint yet (one is saved every {c.eval_every} steps)"))
            raise
        run.step += 1
        seconds = time.perf_counter() - started
        run.elapsed += seconds
        run.cpu_seconds += time.process_time() - cpu_started
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        shown = {"loss": f"{loss_avg:.3f}", "tok_s": f"{tokens_per_step / seconds:.0f}", "lr": f"{lr:.1e}"}
        if sparse is not None:
            shown.update({f"{p}_zeros": f"{z:.2f}" for p, z in sparse.summary().items()
                          if p in c.drop or (c.l1 and p in c.l1_points)})
        bar.set_postfix(shown)
        bar.update(1 if c.steps else round(run.elapsed) - bar.n)
        if run.step % c.eval_every == 0:
            val = validate()
            entry = {"step": run.step, "time_s": round(run.elapsed, 1), "train_loss": round(loss_avg, 4),
                     "val_loss_estimate": round(val, 4)}
            if sparse is not None:
                entry["zeros"] = {p: round(z, 4) for p, z in sparse.summary().items()}
            run.history.append(entry)
            bar.write(f"step {run.step}: train loss {loss_avg:.3f}, val loss ~{val:.3f} ({run.elapsed:.0f} s)")
            save_state()
    bar.close()
    save_state()
    return run


def attach_sparsity(model, c: TrainConfig) -> None:
    """Give `model` the in-loop sparsity hook when the config asks for drops or L1."""
    from mote.train.sparse import LoopSparsity

    hook = LoopSparsity(c)
    model.sparsity = hook if hook.active else None


def train(
    c: TrainConfig,
    texts: list[Path],
    out: Path,
    resume: bool = False,
    data_license: str = "",
    progress: bool = True,
) -> dict:
    """Train and export into `out`; returns the run's record (also out/train_meta.json)."""
    require_torch()

    if not resume:
        c.check()
    out.mkdir(parents=True, exist_ok=True)
    state = None
    if resume:
        state = load_state(out)
        c = TrainConfig(**state["config"])  # the run's own settings, not today's flags
        c.check()
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)

    docs = read_documents(texts)
    train_texts, val_texts, split_how = split_documents(docs, c.val_fraction, c.seed)
    if resume:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    else:
        tok = train_tokenizer(train_texts, c.vocab_size)
        if tok.get_vocab_size() < c.vocab_size:
            print(f"note: the corpus yields only {tok.get_vocab_size()} tokens; using that vocabulary")
            c.vocab_size = tok.get_vocab_size()
        tok.save(str(out / "tokenizer.json"))

    train_ids = encode_documents(tok, train_texts)
    val_ids = encode_documents(tok, val_texts)
    check_streams(c, len(train_ids), len(val_ids))
    train_stream, val_stream = torch.from_numpy(train_ids), torch.from_numpy(val_ids)

    model = Llama(c)
    attach_sparsity(model, c)

    def cross_entropy(model, x, y):
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    run = fit(model, c, train_stream, out, state, progress, cross_entropy,
              lambda: evaluate(model, val_stream, c.ctx, c.eval_windows),
              f"mote train --resume -o {out} (same --text)")

    val_loss = evaluate(model, val_stream, c.ctx)
    val_bytes = sum(len(t.encode("utf-8")) for t in val_texts)
    n_val_tokens = ((len(val_ids) - 1) // c.ctx) * c.ctx
    tokens_per_step = c.batch * c.ctx
    record = {
        "config": asdict(c),
        "params": model.n_params(),
        "steps": run.step,
        "tokens_seen": run.step * tokens_per_step,
        "train_time_s": round(run.elapsed, 1),
        # CPU time of this process: what the run costs, whatever else shares the machine
        "train_cpu_s": round(run.cpu_seconds, 1),
        "tokens_per_s": round(run.step * tokens_per_step / run.elapsed) if run.elapsed else 0,
        "val_loss": round(val_loss, 4),
        "val_ppl": round(math.exp(val_loss), 2),
        # bits per byte of validation text: comparable across vocabularies
        "val_bits_per_byte": round(val_loss * len(val_ids) / math.log(2) / val_bytes, 4),
        "data": {
            "files": len(docs),
            "bytes": sum(len(t.encode("utf-8")) for _, t in docs),
            "train_tokens": len(train_ids),
            "val_tokens": len(val_ids),
            "val_tokens_scored": n_val_tokens,
            "split": split_how,
            "license": data_license or "not stated (pass --data-license)",
        },
        "history": run.history,
        "versions": versions(),
    }
    if model.sparsity is not None:
        record["sparsity"] = sparsity_record(model, val_stream, c)
    export_hf(model, tok, out)
    (out / "train_meta.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "README.md").write_text(model_card(record, out.name))
    return record


def check_streams(c: TrainConfig, n_train: int, n_val: int) -> None:
    need = c.ctx + 1
    if n_train < 2 * need or n_val < need:
        raise MoteError(
            f"corpus too small: {n_train} training and {n_val} validation tokens; "
            f"--ctx {c.ctx} needs at least {2 * need} and {need} (add text or lower --ctx)"
        )


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
    }


def sparsity_record(model, val_stream, c: TrainConfig) -> dict:
    """The in-loop thresholds at the end, and the fraction of zeros per point and
    layer they give on validation windows (the runtime recalibrates its own)."""
    from mote.format.sparsity import POINTS

    hook = model.sparsity
    hook.begin(1.0, learning=False)
    evaluate(model, val_stream, c.ctx, c.eval_windows)
    zeros = {p: [round(v, 4) for v in layers] for p, layers in hook.zeros().items()}
    return {"thresholds": {p: [round(float(t), 6) for t in hook.thresholds[:, POINTS.index(p)]]
                           for p in c.drop},
            "validation_zeros": zeros}


# ---------------------------------------------------------------------------
# Export


def hf_config(c: TrainConfig) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.dim,
        "intermediate_size": c.hidden_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": c.activation,
        "max_position_embeddings": c.ctx,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "vocab_size": c.vocab_size,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "bos_token_id": 0,
        "eos_token_id": EOS_ID,
        "pad_token_id": EOS_ID,
        "torch_dtype": "float32",
    }


def export_hf(model, tok, out: Path) -> None:
    """config.json, model.safetensors (float32, HF tensor names) and tokenizer files."""
    from safetensors.torch import save_file

    c = model.config
    tensors = {"model." + name: p.detach().contiguous() for name, p in model.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config(c), indent=2) + "\n")
    tok.save(str(out / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": EOS,
        "model_max_length": c.ctx,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")


def model_card(record: dict, name: str) -> str:
    c, d = record["config"], record["data"]
    schedule = f"{record['steps']} steps" + (f" ({c['minutes']} min budget)" if c["minutes"] else "")
    lines = [
        f"# {name}",
        "",
        "A tiny Llama trained with `mote train`.",
        "",
        "## Data",
        "",
        f"- {d['files']} files, {d['bytes']:,} bytes; license: {d['license']}",
        f"- validation: {d['split']}",
        f"- tokens: {d['train_tokens']:,} training, {d['val_tokens']:,} validation",
        "",
        "## Model",
        "",
        f"- {record['params']:,} parameters: dim {c['dim']}, {c['n_layers']} layers, "
        f"{c['n_heads']} heads / {c['n_kv_heads']} kv heads, FFN {c['hidden_dim']} "
        f"({c['activation']}), vocab {c['vocab_size']} (byte-level BPE), context {c['ctx']}, "
        "tied embeddings",
        "",
        "## Training",
        "",
        f"- {schedule}, batch {c['batch']} x {c['ctx']} tokens, {record['tokens_seen']:,} tokens seen",
        f"- AdamW (0.9, 0.95), peak lr {c['lr']}, warmup {c['warmup']:.0%}, cosine to "
        f"{c['min_lr_ratio']}x, weight decay {c['weight_decay']}, grad clip {c['grad_clip']}, seed {c['seed']}",
        f"- {record['train_time_s']:.0f} s wall time, {record['train_cpu_s']:.0f} s CPU time "
        f"({record['tokens_per_s']:,} tokens/s, "
        f"{record['versions']['threads']} thread(s)); torch {record['versions']['torch']}, "
        f"tokenizers {record['versions']['tokenizers']}",
        *sparsity_lines(record),
        "",
        "## Validation",
        "",
        f"- loss {record['val_loss']:.4f} nats/token, perplexity {record['val_ppl']:.2f}, "
        f"{record['val_bits_per_byte']:.4f} bits/byte "
        f"({d['val_tokens_scored']:,} tokens, float32 weights"
        + (", thresholds of the loop applied)" if record["config"]["drop"] else ")"),
        "",
    ]
    return "\n".join(lines)


def sparsity_lines(record: dict) -> list[str]:
    """The model card's account of the sparsity trained in, if any."""
    c = record["config"]
    lines = []
    if c["l1"]:
        lines.append(f"- L1 penalty on {', '.join(c['l1_points'])} activations, raised in stages: "
                     + " -> ".join(f"{v:g}" for v in c["l1"]))
    if c["drop"]:
        lines.append("- thresholds in the loop (straight-through), ramped over "
                     f"{c['drop_ramp']:.0%} of the budget: "
                     + ", ".join(f"{p} drops {f:.0%}" for p, f in c["drop"].items()))
    if "sparsity" in record:
        zeros = record["sparsity"]["validation_zeros"]
        lines.append("- zeros on validation windows (mean over layers): "
                     + ", ".join(f"{p} {sum(v) / len(v):.1%}" for p, v in zeros.items()))
    return lines
