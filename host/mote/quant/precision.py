"""Mixed precision by measured sensitivity (`mote convert --quant auto`): which
matrices go from q8 to q4 or q4a so that a blob fits a byte budget at the least cost.

Each 4-bit option's cost is measured alone (mote.eval.sensitivity: the mean KL
divergence of the next-token distribution when that one matrix takes it and every
other stays q8); costs are taken to add up. Choosing at most one option per matrix for
the least total cost that saves enough bytes is a multiple-choice knapsack; this
solves it greedily: each matrix's options on their lower convex hull of (bytes saved,
cost) become upgrades (q8 -> q4a -> q4, or q8 -> q4 when q4a is not worth its 2 extra
scale bytes per group), all matrices' upgrades are taken least KL per byte first until
enough is saved, then chosen matrices step back to a cheaper option while the budget
still holds (the greedy's last upgrade may save more than needed)."""

from __future__ import annotations

from dataclasses import dataclass

from mote.model import MoteError


@dataclass(frozen=True)
class Option:
    name: str  # the matrix
    dtype: str  # "q4" or "q4a"
    cost: float  # mean KL (nats/token) when this matrix alone takes this dtype
    saved: int  # blob bytes this dtype saves against q8 for this matrix


def over_budget(over: int, budget: int) -> MoteError:
    """The refusal when even the smallest blob (every matrix q4) is `over` bytes too big."""
    return MoteError(f"even with every matrix q4 the blob is {over:,} bytes over the budget of {budget:,}")


def _upgrades(q8: Option, options: list[Option]) -> list[tuple[float, Option]]:
    """One matrix's options on the lower convex hull of (saved, cost) from q8, as
    (KL per byte of the step to it, option), in increasing order of both."""
    hull = [q8]
    for o in sorted(options, key=lambda o: (o.saved, o.cost)):
        if o.saved <= hull[-1].saved:  # no more bytes than an option at least as cheap
            continue
        while len(hull) > 1 and ((hull[-1].cost - hull[-2].cost) * (o.saved - hull[-1].saved)
                                 >= (o.cost - hull[-1].cost) * (hull[-1].saved - hull[-2].saved)):
            hull.pop()  # the previous option costs at least as much per byte as going on to o
        hull.append(o)
    return [((b.cost - a.cost) / (b.saved - a.saved), b) for a, b in zip(hull, hull[1:])]


def choose(options: list[Option], must_save: int) -> list[Option]:
    """At most one option per matrix saving at least `must_save` bytes in total, at a
    small total cost (none when must_save <= 0), least cost per byte first. The caller
    checks that every matrix's largest saving together is enough."""
    by_matrix: dict[str, list[Option]] = {}
    for o in options:
        by_matrix.setdefault(o.name, []).append(o)
    q8 = {name: Option(name, "q8", 0.0, 0) for name in by_matrix}
    steps = sorted((step for name, opts in by_matrix.items() for step in _upgrades(q8[name], opts)),
                   key=lambda s: (s[0], s[1].name, s[1].saved))
    chosen: dict[str, Option] = {}
    for _, o in steps:
        if sum(c.saved for c in chosen.values()) >= must_save:
            break
        chosen[o.name] = o
    while True:  # step back to a cheaper option where the budget allows, the largest gain first
        spare = sum(c.saved for c in chosen.values()) - must_save
        backs = [(o.cost - c.cost, o.name, o.dtype, o) for c in chosen.values()
                 for o in [q8[c.name], *by_matrix[c.name]] if o.cost < c.cost and o.saved >= c.saved - spare]
        if not backs:
            return sorted((c for c in chosen.values() if c.dtype != "q8"), key=lambda c: (c.cost / c.saved, c.name))
        back = min(backs)[3]
        chosen[back.name] = back
