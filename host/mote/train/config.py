"""Hyperparameters of `mote train`, apart from the torch code so that the CLI can
show their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from mote.format.sparsity import POINTS
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
    # activation sparsity in the loop (docs/training.md, "Sparse models")
    l1: tuple[float, ...] = ()  # L1 strength per stage, stages splitting the budget equally
    l1_points: tuple[str, ...] = ("gate",)  # where the L1 penalty applies
    drop: dict[str, float] = field(default_factory=dict)  # point -> fraction dropped in the loop
    drop_ramp: float = 0.3  # share of the budget over which the drop fractions ramp up
    # fine-tuning (mote finetune): the checkpoint started from, and the loss
    init: str = ""
    distill: float = 1.0  # weight of KL(source || model); 1 - distill is the cross-entropy's

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
        if any(not 0 <= v < 1 for v in self.l1):
            raise MoteError(f"--l1 strengths must be in [0, 1), got {list(self.l1)}")
        for points in (self.l1_points, tuple(self.drop)):
            unknown = set(points) - set(POINTS)
            if unknown:
                raise MoteError(f"unknown sparsity point(s) {sorted(unknown)}; choose from {', '.join(POINTS)}")
        if any(not 0 <= f <= 0.95 for f in self.drop.values()):
            raise MoteError(f"--drop fractions must be in 0..0.95, got {self.drop}")
        if not 0 < self.drop_ramp <= 1 or not 0 <= self.distill <= 1:
            raise MoteError("--drop-ramp must be in (0, 1] and --distill in [0, 1]")


def parse_l1(spec: str) -> tuple[float, ...]:
    """--l1 "1e-4" or "3e-5,1e-4,3e-4" (one strength per stage)."""
    try:
        return tuple(float(v) for v in spec.split(",") if v.strip())
    except ValueError:
        raise MoteError(f"--l1 takes strengths separated by commas, not {spec!r}") from None


def parse_drop(spec: str) -> dict[str, float]:
    """--drop "gate=0.6,ffn_in=0.3": the fraction of each point's activations dropped."""
    out = {}
    for item in (i for i in spec.split(",") if i.strip()):
        point, _, value = item.partition("=")
        try:
            out[point.strip()] = float(value)
        except ValueError:
            raise MoteError(f"--drop takes POINT=FRACTION items separated by commas, not {item!r}") from None
    return out
