"""The `.mote` blob format as data: the single source of truth.

firmware/core/blob_format.h is generated from this module (mote.format.gen_header,
`make -C firmware blob-format`), host/mote/format/blob.py derives its struct layouts
and limits from it, and docs/blob-format.md describes it in prose without restating
its numbers. A change here that changes the bytes of a blob is a change of VERSION.

Plain Python data rather than TOML: it needs no parser and no package data, and
blob.py imports it directly. Only literals and simple tuples, so it reads like a table.
"""

from __future__ import annotations

MAGIC = 0x45544F4D  # the bytes "M O T E"
VERSION = 3  # 3: the optional chat section, and the token history in its arena; 2: no console line in the arena
HEADER_BYTES = 256
ALIGN = 32  # every section and every tensor's data and scales
TABLE_ENTRY_BYTES = 32
GLOBAL_LAYER = 0xFFFF  # the layer field of tensors outside the layers

# Limits. MAX_DIM bounds every width (and max_seq_len) so that every product the
# runtime forms stays far from 64-bit overflow. MAX_GROUP: 127·127·1024 < 2^24 keeps
# every per-group integer sum exact in float32, which the reference relies on.
MAX_LAYERS = 64
MAX_DIM = 1 << 24
MAX_SEQ_LEN = 1 << 24
MIN_GROUP = 2
MAX_GROUP = 1024
# rope_theta in (0, ROPE_THETA_MAX), norm_eps in [0, NORM_EPS_MAX): float32 compares
ROPE_THETA_MAX = 3.0e38
NORM_EPS_MAX = 1.0

# Header fields: (name, byte offset, type). Types: u32, f32, or bytes:N.
HEADER = (
    ("magic", 0, "u32"),
    ("version", 4, "u32"),
    ("total_bytes", 8, "u32"),
    ("crc32", 12, "u32"),  # CRC-32 (zlib's) of bytes [CRC_START, total_bytes)
    ("header_bytes", 16, "u32"),
    ("dim", 20, "u32"),
    ("hidden_dim", 24, "u32"),
    ("n_layers", 28, "u32"),
    ("n_heads", 32, "u32"),
    ("n_kv_heads", 36, "u32"),
    ("head_dim", 40, "u32"),
    ("vocab_size", 44, "u32"),
    ("max_seq_len", 48, "u32"),
    ("ctx_len", 52, "u32"),
    ("arena_bytes", 56, "u32"),
    ("group_size", 60, "u32"),
    ("activation", 64, "u32"),
    ("flags", 68, "u32"),
    ("rope_theta", 72, "f32"),
    ("norm_eps", 76, "f32"),
    ("n_tensors", 80, "u32"),
    ("tensor_table_offset", 84, "u32"),
    ("tokenizer_offset", 88, "u32"),
    ("tokenizer_bytes", 92, "u32"),
    ("sparsity_offset", 96, "u32"),
    ("sparsity_bytes", 100, "u32"),
    ("chat_offset", 104, "u32"),  # 0 when absent: a completion model
    ("chat_bytes", 108, "u32"),
    ("reserved0", 112, "bytes:16"),
    ("name", 128, "bytes:32"),  # UTF-8, zero padded
    ("reserved1", 160, "bytes:96"),
)
CRC_START = 16
RESERVED = ("reserved0", "reserved1")  # must be zero

# Header flag bits; any other bit set is an error.
FLAGS = (("tied_classifier", 0),)

ACTIVATIONS = (("silu", 0), ("relu", 1))
# code 1 was f16, which no tensor kind ever allowed: retired, so it reads as unknown
# q4a (asymmetric 4-bit): codes 0..15, two nibbles a byte as q4, and per group an f16
# scale then an f16 offset, interleaved (w = scale * code + offset; GGUF's Q4_1 block)
DTYPES = (("f32", 0), ("q8", 2), ("q4", 3), ("q4a", 4))
# f16 values stored per row and group in a tensor's scales region
SCALES_PER_GROUP = {"q8": 1, "q4": 1, "q4a": 2}

# Tensor table entry fields: (name, byte offset, type). Types: u8, u16, u32.
ENTRY = (
    ("kind", 0, "u8"),
    ("dtype", 1, "u8"),
    ("layer", 2, "u16"),
    ("rows", 4, "u32"),
    ("cols", 8, "u32"),
    ("data_offset", 12, "u32"),
    ("data_bytes", 16, "u32"),
    ("scales_offset", 20, "u32"),  # 0 for f32
    ("scales_bytes", 24, "u32"),  # 0 for f32
    ("layout", 28, "u32"),
)

# Tensor kinds: (name, code, allowed dtypes). The table holds tok_embedding, then per
# layer the nine layer kinds in code order, then final_norm, then classifier only when
# the classifier is not tied.
KINDS = (
    ("tok_embedding", 1, ("q8", "q4", "q4a")),
    ("attn_norm", 2, ("f32",)),
    ("wq", 3, ("q8", "q4", "q4a")),
    ("wk", 4, ("q8", "q4", "q4a")),
    ("wv", 5, ("q8", "q4", "q4a")),
    ("wo", 6, ("q8", "q4", "q4a")),
    ("ffn_norm", 7, ("f32",)),
    ("w_gate", 8, ("q8", "q4", "q4a")),
    ("w_up", 9, ("q8", "q4", "q4a")),
    ("w_down", 10, ("q8", "q4", "q4a")),
    ("final_norm", 11, ("f32",)),
    ("classifier", 12, ("q8", "q4", "q4a")),
)
LAYER_KINDS = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")

# Weight layouts (the sparsity section decides which; only q8 may be non-row-major).
LAYOUTS = (("rows", 0), ("columns", 1), ("bundled", 2))

# The optional sparsity section.
SPARSITY_MAGIC = 0x53525053  # the bytes "S P R S"
SPARSITY_HEADER_BYTES = 32
SPARSITY = (
    ("magic", 0, "u32"),
    ("n_layers", 4, "u32"),
    ("flags", 8, "u32"),
    ("target", 12, "f32"),
    ("reserved", 16, "bytes:16"),
)
SPARSE_POINTS = (("attn_in", 0), ("attn_out", 1), ("ffn_in", 2), ("gate", 3))

# The optional chat section: a chat template the console runs (host/mote/chat.py).
# Header, then the segments' bytes back to back in CHAT_SEGMENTS order (their lengths
# in the header), zero padding to a multiple of 4. A segment is UTF-8 text with
# CHAT_TOKEN_MARK + u16 id (a token inserted as an id) and CHAT_CONTENT_MARK (where
# the user's line or the system prompt goes); default_system is plain UTF-8.
CHAT_MAGIC = 0x54414843  # the bytes "C H A T"
CHAT_HEADER_BYTES = 96
CHAT = (
    ("magic", 0, "u32"),
    ("name", 4, "bytes:16"),  # printable ASCII without spaces, zero padded
    ("n_stops", 20, "u32"),  # 1..CHAT_MAX_STOPS ids that end a reply
    ("stop0", 24, "u32"),
    ("stop1", 28, "u32"),  # unused stops are 0
    ("stop2", 32, "u32"),
    ("stop3", 36, "u32"),
    ("begin_bytes", 40, "u32"),
    ("system_bytes", 44, "u32"),
    ("user_first_bytes", 48, "u32"),
    ("user_bytes", 52, "u32"),
    ("assistant_bytes", 56, "u32"),
    ("assistant_end_bytes", 60, "u32"),
    ("default_system_bytes", 64, "u32"),
    ("reserved", 68, "bytes:28"),
)
CHAT_SEGMENTS = ("begin", "system", "user_first", "user", "assistant", "assistant_end", "default_system")
# segments holding the content exactly once ("0..1": at most once, and only when not empty)
CHAT_CONTENT = {"begin": "0", "system": "1", "user_first": "0..1", "user": "1", "assistant": "0",
                "assistant_end": "0", "default_system": "text"}
CHAT_MAX_STOPS = 4
CHAT_SEGMENT_MAX = 128  # bytes of one segment (the console keeps room for three around a line)
CHAT_SYSTEM_MAX = 1024  # bytes of the default system prompt
CHAT_TOKEN_MARK = 0xFF
CHAT_CONTENT_MARK = 0xFE

# Why a blob is refused: (status, reason). The firmware's mote_status_str and the host's
# BlobError say exactly these words, so both sides' verdicts can be compared. In the
# order of mote.h's mote_status enum (after MOTE_OK); docs/blob-format.md, "Validation",
# gives the order of the checks.
REASONS = (
    ("truncated", "blob truncated"),
    ("magic", "not a .mote blob (bad magic)"),
    ("version", "unsupported format version: reconvert with mote convert"),
    ("crc", "CRC mismatch: blob corrupted"),
    ("header", "impossible hyperparameters in the header"),
    ("table", "tensor table entry out of bounds, misaligned, mis-shaped or overlapping"),
    ("tokenizer", "tokenizer section malformed"),
    ("sparsity", "sparsity section malformed"),
    ("chat", "chat section malformed"),
    ("values", "non-finite value (NaN or infinity) in a norm or a scale"),
)
