"""Mixed precision by measured sensitivity (`mote convert --quant auto`): which
matrices go from q8 to q4 so that a blob fits a byte budget at the least cost.

Each matrix's cost is measured alone (mote.eval.sensitivity: the mean KL divergence
of the next-token distribution when that one matrix is q4 and every other q8); costs
are taken to add up, so the cheapest choice for a budget is, to a good approximation,
the matrices with the least cost per byte saved, taken in that order until enough
bytes are saved."""

from __future__ import annotations

from dataclasses import dataclass

from mote.model import MoteError


@dataclass
class Candidate:
    name: str
    cost: float  # mean KL (nats/token) when this matrix alone is q4
    saved: int  # blob bytes q4 saves against q8 for this matrix


def choose_q4(candidates: list[Candidate], must_save: int) -> list[Candidate]:
    """The matrices to turn to q4, least cost per byte first, until `must_save` bytes
    are saved (none when must_save <= 0). MoteError when all of them save too little."""
    if must_save <= 0:
        return []
    chosen: list[Candidate] = []
    saved = 0
    for c in sorted(candidates, key=lambda c: (c.cost / c.saved, c.name)):
        chosen.append(c)
        saved += c.saved
        if saved >= must_save:
            return chosen
    raise MoteError(f"even with every matrix q4 the blob is {must_save - saved} bytes over the budget")
