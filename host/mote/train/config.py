"""Hyperparameters of `mote train`, apart from the torch code so that the CLI can
show their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from mote.model import MoteError


@dataclass
class TrainConfig:
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    hidden_dim: int = 352
    vocab_size: int = 1024
    ctx: int = 256
    activation: str = "silu"
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    # optimisation
    steps: int = 0  # 0: train for `minutes` of wall time instead
    minutes: float = 0.0
    batch: int = 16  # windows of ctx tokens per step
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: float = 0.05  # fraction of the budget
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1
    val_fraction: float = 0.02
    eval_every: int = 200  # steps between validation estimates (and checkpoints)
    eval_windows: int = 32  # windows per intermediate estimate; the final one uses all
    threads: int = 0  # 0: torch's default

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def check(self) -> None:
        if self.activation not in ("silu", "relu"):
            raise MoteError(f"--act must be silu or relu, not {self.activation!r}")
        if self.dim % self.n_heads or self.head_dim % 2:
            raise MoteError(f"--dim {self.dim} must split into --heads {self.n_heads} even-sized heads")
        if self.n_heads % self.n_kv_heads:
            raise MoteError(f"--kv-heads {self.n_kv_heads} must divide --heads {self.n_heads}")
        if self.vocab_size < 259:
            raise MoteError("--vocab must be at least 259 (256 bytes + 3 special tokens)")
        if (self.steps > 0) == (self.minutes > 0):
            raise MoteError("give exactly one of --steps N or --minutes M")
        for name in ("dim", "n_layers", "hidden_dim", "ctx", "batch"):
            if getattr(self, name) < 1:
                raise MoteError(f"{name} must be positive")
