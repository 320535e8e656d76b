"""The blob's chat section (docs/blob-format.md, "Chat section"): a chat template
(host/mote/chat.py makes them) packed as the firmware reads it, and read back with
exactly the checks firmware/core/blob.c's read_chat makes, in the same order."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mote.format import spec
from mote.model import MoteError


@dataclass(frozen=True)
class ChatTemplate:
    """A template as the blob stores it (segments in the section's encoding)."""

    name: str
    segments: dict[str, bytes]
    stops: tuple[int, ...]
    default_system: str = ""

    def items(self, segment: str) -> list[int | str | None]:
        """The segment as items: a token id, a text, or None for the content."""
        return parse_segment(self.segments[segment])


def parse_segment(data: bytes) -> list[int | str | None]:
    items: list[int | str | None] = []
    i = 0
    while i < len(data):
        if data[i] == spec.CHAT_TOKEN_MARK:
            items.append(int.from_bytes(data[i + 1 : i + 3], "little"))
            i += 3
        elif data[i] == spec.CHAT_CONTENT_MARK:
            items.append(None)
            i += 1
        else:
            end = i
            while end < len(data) and data[end] not in (spec.CHAT_TOKEN_MARK, spec.CHAT_CONTENT_MARK):
                end += 1
            items.append(data[i:end].decode("utf-8"))
            i = end
    return items


def encode_items(items: list[int | str | None]) -> bytes:
    out = bytearray()
    for item in items:
        if item is None:
            out.append(spec.CHAT_CONTENT_MARK)
        elif isinstance(item, int):
            out += bytes([spec.CHAT_TOKEN_MARK]) + item.to_bytes(2, "little")
        else:
            out += item.encode("utf-8")
    return bytes(out)


_FIELDS = [name for name, _, _ in spec.CHAT]
_SECTION = struct.Struct("<" + "".join(f"{k[6:]}s" if k.startswith("bytes:") else "I" for _, _, k in spec.CHAT))
_STOPS = [f"stop{i}" for i in range(spec.CHAT_MAX_STOPS)]
assert _SECTION.size == spec.CHAT_HEADER_BYTES


def pack_section(template: ChatTemplate) -> bytes:
    segments = dict(template.segments, default_system=template.default_system.encode("utf-8"))
    stops = list(template.stops) + [0] * (spec.CHAT_MAX_STOPS - len(template.stops))
    fields = dict(magic=spec.CHAT_MAGIC, name=template.name.encode("ascii"), n_stops=len(template.stops),
                  reserved=b"", **dict(zip(_STOPS, stops)),
                  **{f"{seg}_bytes": len(segments[seg]) for seg in spec.CHAT_SEGMENTS})
    body = _SECTION.pack(*(fields[f] for f in _FIELDS)) + b"".join(segments[seg] for seg in spec.CHAT_SEGMENTS)
    section = body + bytes(-len(body) % 4)
    parse_section(section, 1 << 16)  # a template the firmware would refuse is never written
    return section


def _utf8_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8")  # strict: RFC 3629, as mote_utf8_invalid_at
        return True
    except UnicodeDecodeError:
        return False


def _segment_ok(data: bytes, rule: str, vocab_size: int) -> bool:
    """blob.c's segment_valid: text runs valid UTF-8, token marks followed by an id
    below the vocabulary, and the content mark as often as `rule` says."""
    if rule == "text":
        return _utf8_ok(data)
    contents, i, start = 0, 0, 0
    while i <= len(data):
        if i == len(data) or data[i] in (spec.CHAT_TOKEN_MARK, spec.CHAT_CONTENT_MARK):
            if not _utf8_ok(data[start:i]):
                return False
            if i == len(data):
                break
            if data[i] == spec.CHAT_CONTENT_MARK:
                contents += 1
                i += 1
            else:
                if len(data) - i < 3 or int.from_bytes(data[i + 1 : i + 3], "little") >= vocab_size:
                    return False
                i += 3
            start = i
        else:
            i += 1
    allowed = {"0": (0,), "1": (1,), "0..1": (1,) if data else (0,)}[rule]
    return contents in allowed


def parse_section(buf: bytes, vocab_size: int) -> ChatTemplate:
    """The template in a chat section, after the checks read_chat makes, in its order;
    MoteError saying which failed."""
    if len(buf) < spec.CHAT_HEADER_BYTES:
        raise MoteError(f"chat section of {len(buf)} bytes is shorter than its header")
    h = dict(zip(_FIELDS, _SECTION.unpack_from(buf)))
    if h["magic"] != spec.CHAT_MAGIC or any(h["reserved"]):
        raise MoteError("chat section: bad magic or reserved bytes set")
    name = h["name"].rstrip(b"\0")
    if not name or not all(0x21 <= b <= 0x7E for b in name):
        raise MoteError(f"chat section: template name {h['name']!r} is not printable ASCII, zero padded")
    stops = [h[s] for s in _STOPS]
    n = h["n_stops"]
    if not 1 <= n <= spec.CHAT_MAX_STOPS or any(s >= vocab_size for s in stops[:n]) or any(stops[n:]):
        raise MoteError(f"chat section: {n} stop ids {stops} (1..{spec.CHAT_MAX_STOPS}, each a token, "
                        "unused ones 0)")
    lengths = {seg: h[f"{seg}_bytes"] for seg in spec.CHAT_SEGMENTS}
    for seg, length in lengths.items():
        limit = spec.CHAT_SYSTEM_MAX if seg == "default_system" else spec.CHAT_SEGMENT_MAX
        if length > limit:
            raise MoteError(f"chat section: segment {seg} is {length} bytes, at most {limit}")
    used = spec.CHAT_HEADER_BYTES + sum(lengths.values())
    if len(buf) != used + -used % 4 or any(buf[used:]):
        raise MoteError(f"chat section is {len(buf)} bytes, its segments need {used} and zero padding to 4")
    segments, at = {}, spec.CHAT_HEADER_BYTES
    for seg, length in lengths.items():
        data = bytes(buf[at : at + length])
        if not _segment_ok(data, spec.CHAT_CONTENT[seg], vocab_size):
            raise MoteError(f"chat section: segment {seg} {data!r} is not valid UTF-8 with token ids below "
                            f"{vocab_size} and the content where it belongs")
        segments[seg] = data
        at += length
    default_system = segments.pop("default_system").decode("utf-8")
    return ChatTemplate(name.decode("ascii"), segments, tuple(stops[:n]), default_system)
