"""A conversation with a chat blob, exactly as the firmware's console holds it
(firmware/core/chat.c, docs/serial-protocol.md "Chat"): the oracle the board's tokens
are compared with, turn for turn.

Each user line is laid out by the blob's chat template after the closing of the
previous reply (assistant_end, with the reply's last token if it was streamed but not
run), appended to the history and run from there: earlier turns stay in the KV cache.
Before a turn, the fewest oldest exchanges are dropped that leave room for the turn and
a reserve for the reply (the generation limit, at most a quarter of what the system
turn leaves); the kept ones run again from the end of the system turn, which is never
dropped. If even dropping all of them leaves no room, the turn is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mote.chat import Rendered
from mote.format.blob import Blob
from mote.model import MoteError
from mote.reference.forward import Runner
from mote.reference.sample import Sampler
from mote.tokenizer import Tokenizer

TURNS_MAX = 64  # chat.h MOTE_CHAT_TURNS_MAX: exchanges remembered one by one


@dataclass
class Reply:
    tokens: list[int]  # streamed tokens (an ending stop token is not one)
    text: str
    end: str  # eos, length, context or numeric (the board's end=)
    prompt_tokens: int  # ids run before the first new token: history run again, closing, turn
    ctx_used: int  # positions the conversation holds after the turn
    dropped: int  # exchanges dropped to make room


@dataclass
class Conversation:
    blob: Blob
    ctx: int | None = None
    runner: Runner = field(init=False)
    tokens: list[int] = field(default_factory=list)  # the history: the id at each position

    def __post_init__(self):
        if self.blob.chat is None:
            raise MoteError("this blob has no chat template")
        self.template = self.blob.chat
        self.tok = Tokenizer.from_section(self.blob.tokenizer_section)
        self.runner = Runner(self.blob, self.ctx)
        self.ctx = self.runner.ctx
        self.started = False
        self.run = 0  # positions whose keys and values are computed
        self.stops = set(self.template.stops) | {i for i in (self.tok.bos_id, self.tok.eos_id) if i >= 0}

    def _ids(self, rendered: Rendered) -> list[int]:
        out: list[int] = []
        for item in rendered.items:
            out += [item] if isinstance(item, int) else self.tok.encode(item, bos=False)
        return out

    def start(self, system: str | None = None) -> None:
        """A new conversation with this system prompt (None: the blob's default, "":
        none)."""
        system = self.template.default_system if system is None else system
        rendered = Rendered().add(self.template, "begin")
        if system:
            rendered.add(self.template, "system", system)
        ids = self._ids(rendered)
        if len(ids) + 2 > self.ctx:
            raise MoteError(f"the system prompt of {len(system.encode())} bytes leaves no room in the "
                            f"context of {self.ctx} tokens")
        self.started = True
        self.system_turn = bool(system)
        self.pinned = len(ids)
        self.tokens = ids
        self.run = 0
        self.reset()

    def reset(self) -> None:
        """A new conversation with the same system prompt (/reset)."""
        self.tokens = self.tokens[: self.pinned]
        self.run = min(self.run, self.pinned)
        self.turn_start: list[int] = []
        self.unfed = -1
        self.replied = False
        self.first_user = self.system_turn and bool(self.template.segments["user_first"])

    def _pos_after_dropping(self, k: int) -> int:
        if k == 0:
            return len(self.tokens)
        if k == len(self.turn_start):
            return self.pinned
        return len(self.tokens) - (self.turn_start[k] - self.pinned)

    def turn(self, line: str, max_new_tokens: int, sampler: Sampler) -> Reply:
        """One user line and the reply to it."""
        if not self.started:
            self.start()
        closing: list[int] = []
        if self.replied:
            closing = ([self.unfed] if self.unfed >= 0 else []) + self._ids(
                Rendered().add(self.template, "assistant_end"))
        segment = "user_first" if self.first_user else "user"
        turn = self._ids(Rendered().add(self.template, segment, line).add(self.template, "assistant"))

        reserve = max(1, min(max_new_tokens, (self.ctx - self.pinned) // 4))
        n = len(self.turn_start)
        k = next((k for k in range(n + 1) if self._pos_after_dropping(k) + (0 if k == n and k else len(closing))
                  + len(turn) + reserve <= self.ctx), None)
        if k is None:
            if self.pinned + len(turn) + 1 > self.ctx:
                raise MoteError(f"this turn of {len(turn)} tokens does not fit the context of {self.ctx} "
                                "tokens with the system prompt: /reset, a shorter line or a larger context")
            k = n
        if k:
            keep = len(self.tokens) if k == n else self.turn_start[k]
            gone = keep - self.pinned
            self.tokens = self.tokens[: self.pinned] + self.tokens[keep:]
            self.turn_start = [t - gone for t in self.turn_start[k:]]
            self.run = min(self.run, self.pinned)
            if not self.turn_start:
                closing = []
        self.tokens += closing
        if len(self.turn_start) == TURNS_MAX:
            del self.turn_start[1]
        self.turn_start.append(len(self.tokens))
        self.tokens += turn
        self.replied, self.unfed = False, -1
        reply = self._generate(max_new_tokens, sampler)
        reply.dropped = k
        return reply

    def _generate(self, max_new_tokens: int, sampler: Sampler) -> Reply:
        """generate.c's loop from position `run`: prefill, then sample, stop, emit, run."""
        start, end = self.run, len(self.tokens)
        logits = self.runner.forward_batch(self.tokens[start:end], start)[-1]
        pos = end
        out: list[int] = []
        finish, unfed = "length", -1
        while len(out) < max_new_tokens:
            if not np.isfinite(logits).all():
                finish = "numeric"
                break
            token = sampler.sample(np.array(logits))
            if token in self.stops:
                finish = "eos"
                break
            out.append(token)
            unfed = token
            if len(out) == max_new_tokens:
                break
            if pos >= self.ctx:
                finish = "context"
                break
            logits = self.runner.forward(token, pos)
            self.tokens.append(token)
            pos += 1
            unfed = -1
        self.run = pos
        self.unfed, self.replied, self.first_user = unfed, True, False
        stream = self.tok.stream()
        text = b"".join(stream.decode(t) for t in out) + stream.flush()
        return Reply(out, text.decode("utf-8", "replace"), finish, end - start, pos, 0)
