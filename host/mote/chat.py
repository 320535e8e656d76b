"""Chat templates as data the firmware can run: how a conversation is laid out in
tokens, without a template engine on the board.

A template is six segments and a few ids. Each segment is bytes in the blob's chat
section encoding (docs/blob-format.md, "Chat section"): UTF-8 text, `0xFF lo hi` for a
token id inserted as an id, `0xFE` where the content (a user line, the system prompt)
goes. UTF-8 never contains 0xFE or 0xFF, so the three cannot be confused.

- begin: once at the start of a conversation (Llama-3's <|begin_of_text|>)
- system: the system prompt's turn, after begin, when there is a system prompt
- user_first: the first user turn right after a system turn, where it differs from
  user (Llama-2 folds the system prompt into its first [INST]); empty: as user
- user: a user turn
- assistant: what opens the assistant's reply (the generation prompt)
- assistant_end: what closes a reply in the history (ChatML's <|im_end|> "\\n")
plus the ids that end a reply (stops) and a default system prompt.

Templates come from a small library of families (chatml, llama2, llama3, zephyr),
written with the model's own special tokens: a model's Jinja template
(tokenizer.chat_template, tokenizer_config.json) picks the family, and is then
rendered for probe conversations and compared with Mote's rendering, so a template
Mote would run differently is refused rather than approximated. "completion" is no
template: the console then completes each line from an empty context, as before.

Text typed by a user is content: it is encoded as text, never parsed for special
tokens, so it cannot become <|im_end|> or any control token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mote.format.chat import ChatTemplate, encode_items
from mote.model import MoteError, TokenizerData

COMPLETION = "completion"


# ---------------------------------------------------------------------------------
# The library: each family written with {content}, {bos}, {eos} and special tokens by
# their text; `reply` is how the family's Hugging Face template spells an assistant
# message around what the model generates (for the probe comparison only).


@dataclass(frozen=True)
class Family:
    segments: dict[str, str]
    stops: tuple[str, ...]
    needs: tuple[str, ...]  # texts that must be single special tokens of the vocabulary
    reply: str = "{}"
    marker: str = ""  # a text only this family's Jinja templates contain


FAMILIES = {
    "chatml": Family(
        segments={"begin": "", "system": "<|im_start|>system\n{content}<|im_end|>\n", "user_first": "",
                  "user": "<|im_start|>user\n{content}<|im_end|>\n", "assistant": "<|im_start|>assistant\n",
                  "assistant_end": "<|im_end|>\n"},
        stops=("<|im_end|>",), needs=("<|im_start|>", "<|im_end|>"), marker="<|im_start|>"),
    "llama2": Family(
        segments={"begin": "", "system": "{bos}[INST] <<SYS>>\n{content}\n<</SYS>>\n\n",
                  "user_first": "{content} [/INST]", "user": "{bos}[INST] {content} [/INST]",
                  "assistant": "", "assistant_end": "{eos}"},
        stops=("{eos}",), needs=("{bos}", "{eos}"), reply=" {} ", marker="[INST]"),
    "llama3": Family(
        segments={"begin": "<|begin_of_text|>",
                  "system": "<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
                  "user_first": "", "user": "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
                  "assistant": "<|start_header_id|>assistant<|end_header_id|>\n\n", "assistant_end": "<|eot_id|>"},
        stops=("<|eot_id|>",),
        needs=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        marker="<|start_header_id|>"),
    "zephyr": Family(
        segments={"begin": "", "system": "<|system|>\n{content}{eos}\n", "user_first": "",
                  "user": "<|user|>\n{content}{eos}\n", "assistant": "<|assistant|>\n",
                  "assistant_end": "{eos}\n"},
        stops=("{eos}",), needs=("{eos}",), marker="<|user|>"),
}
NAMES = (*FAMILIES, COMPLETION)


class _Vocabulary:
    """The special tokens of a vocabulary by their text, and its BOS and EOS."""

    def __init__(self, tok: TokenizerData):
        names = tok.names or [t.decode("utf-8", "replace") for t in tok.tokens]
        self.names = names
        self.special = {names[i]: i for i in sorted(tok.special) if names[i]}
        self.roles = {"{bos}": tok.bos_id, "{eos}": tok.eos_id}

    def token(self, text: str, family: str) -> int:
        token = self.roles[text] if text in self.roles else self.special.get(text, -1)
        if token < 0:
            what = {"{bos}": "a BOS token", "{eos}": "an EOS token"}.get(text, f"the special token {text!r}")
            raise MoteError(f"chat template {family} needs {what}, which this vocabulary lacks")
        return token

    def text_items(self, text: str) -> list[int | str]:
        """`text` cut at the special tokens it spells (longest first, leftmost), as
        llama.cpp parses special tokens in a rendered template."""
        out: list[int | str] = []
        i = start = 0
        by_length = sorted(self.special, key=len, reverse=True)
        while i < len(text):
            match = next((s for s in by_length if text.startswith(s, i)), None)
            if match is None:
                i += 1
                continue
            if i > start:
                out.append(text[start:i])
            out.append(self.special[match])
            i = start = i + len(match)
        if start < len(text):
            out.append(text[start:])
        return out

    def spelling(self, token: int) -> str:
        return self.names[token]


def _segment_items(vocab: _Vocabulary, family: str, text: str) -> list[int | str | None]:
    items: list[int | str | None] = []
    rest = text
    while rest:
        found = [(rest.find(m), m) for m in ("{content}", "{bos}", "{eos}") if m in rest]
        if not found:
            items += vocab.text_items(rest)
            break
        at, mark = min(found)
        items += vocab.text_items(rest[:at])
        items.append(None if mark == "{content}" else vocab.token(mark, family))
        rest = rest[at + len(mark):]
    return items


def named(name: str, tok: TokenizerData, default_system: str = "") -> ChatTemplate:
    """Template `name` of the library on vocabulary `tok`."""
    if name not in FAMILIES:
        raise MoteError(f"unknown chat template {name!r}; choose one of {', '.join(NAMES)}")
    family, vocab = FAMILIES[name], _Vocabulary(tok)
    for text in family.needs:
        vocab.token(text, name)
    segments = {seg: encode_items(_segment_items(vocab, name, text)) for seg, text in family.segments.items()}
    stops = tuple(vocab.token(s, name) for s in family.stops)
    return ChatTemplate(name, segments, stops, default_system)


# ---------------------------------------------------------------------------------
# A model's Jinja template: which family, and its default system prompt


def render_jinja(source: str, messages: list[dict[str, str]], bos: str, eos: str) -> str:
    """The Jinja chat template rendered as transformers renders it (sandboxed,
    trim_blocks, lstrip_blocks), with a generation prompt."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source).render(messages=messages, add_generation_prompt=True,
                                              bos_token=bos, eos_token=eos)
    except Exception as err:  # a template is code from the checkpoint; any failure is its own
        raise MoteError(f"the model's chat template cannot be rendered ({type(err).__name__}: {err})") from None


def render(template: ChatTemplate, vocab: _Vocabulary, system: str | None, turns: list[str],
           reply: str) -> str:
    """A conversation as the text Mote's template gives (tokens by their spelling):
    begin, the system turn, user and assistant turns alternating from turns[0], the
    assistant's messages spelled `reply`-wise, and the generation prompt."""

    def text(segment: str, content: str = "") -> str:
        return "".join(content if item is None else vocab.spelling(item) if isinstance(item, int) else item
                       for item in template.items(segment))

    out = text("begin")
    if system:
        out += text("system", system)
    for i, turn in enumerate(turns):
        if i % 2:
            out += reply.format(turn) + text("assistant_end")
        else:
            first = i == 0 and system and template.segments["user_first"]
            out += text("user_first" if first else "user", turn) + text("assistant")
    return out


def from_jinja(source: str, tok: TokenizerData) -> ChatTemplate:
    """The library template a model's Jinja chat template is, with the default system
    prompt it injects; MoteError when it is none of them or renders differently."""
    family = next((name for name, f in FAMILIES.items() if f.marker in source), None)
    if family is None:
        raise MoteError("the model's chat template is none of Mote's (chatml, llama2, llama3, zephyr); "
                        "--chat-template NAME runs one of them anyway, or completion")
    vocab = _Vocabulary(tok)
    bos = vocab.spelling(tok.bos_id) if tok.bos_id >= 0 else ""
    eos = vocab.spelling(tok.eos_id) if tok.eos_id >= 0 else ""
    plain = named(family, tok)
    reply = FAMILIES[family].reply

    def jinja(*messages: tuple[str, str]) -> str:
        return render_jinja(source, [{"role": r, "content": c} for r, c in messages], bos, eos)

    alone = jinja(("user", "U1"))
    default = ""
    if alone != render(plain, vocab, None, ["U1"], reply):
        before, _, after = jinja(("system", "\x01"), ("user", "U1")).partition("\x01")
        if alone.startswith(before) and alone.endswith(after) and len(alone) >= len(before) + len(after):
            default = alone[len(before):len(alone) - len(after)]
    template = ChatTemplate(family, plain.segments, plain.stops, default)
    probes = [
        (jinja(("user", "U1")), render(template, vocab, default, ["U1"], reply)),
        (jinja(("system", "S"), ("user", "U1")), render(template, vocab, "S", ["U1"], reply)),
        (jinja(("system", "S"), ("user", "U1"), ("assistant", "A1"), ("user", "U2")),
         render(template, vocab, "S", ["U1", "A1", "U2"], reply)),
    ]
    for theirs, ours in probes:
        if theirs != ours:
            raise MoteError(f"the model's chat template renders {theirs!r} where Mote's {family} renders "
                            f"{ours!r}; --chat-template NAME runs one of Mote's anyway, or completion")
    return template


def choose(tok: TokenizerData, jinja: str | None, name: str | None, system: str | None) -> ChatTemplate | None:
    """The template a blob gets: `name` if given (completion: None), else the one the
    model's Jinja template is, else None; `system` replaces the default system prompt."""
    if name == COMPLETION or (name is None and jinja is None):
        if system is not None:
            raise MoteError("--system-prompt needs a chat template (--chat-template NAME)")
        return None
    template = named(name, tok) if name is not None else from_jinja(jinja, tok)
    if system is not None:
        template = ChatTemplate(template.name, template.segments, template.stops, system)
    return template


@dataclass
class Rendered:
    """Items of several segments in a row, adjacent texts joined (so a text is
    encoded as one piece, as a tokenizer sees the rendered string)."""

    items: list[int | str] = field(default_factory=list)

    def add(self, template: ChatTemplate, segment: str, content: str = "") -> Rendered:
        for item in template.items(segment):
            item = content if item is None else item
            if isinstance(item, str) and self.items and isinstance(self.items[-1], str):
                self.items[-1] += item
            elif item != "":
                self.items.append(item)
        return self
