"""UF2 files (Microsoft's USB flashing format, which the RP2350's boot ROM takes on its
USB drive and picotool loads): 512-byte blocks of 256 payload bytes each, with their
flash address and the chip's family ID, so a copied file lands where it belongs.
`mote flash` makes one for the firmware and one for the model, written separately."""

from __future__ import annotations

import struct

MAGIC_START0 = 0x0A324655  # "UF2\n"
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID_PRESENT = 0x00002000
PAYLOAD_BYTES = 256  # what the RP2350 boot ROM requires (one flash page per block)
BLOCK_BYTES = 512
_HEADER = struct.Struct("<8I")  # magic0, magic1, flags, address, size, block, blocks, family


def to_uf2(data: bytes, address: int, family: int) -> bytes:
    """`data` to be written at `address` (256-byte aligned), as UF2 blocks of `family`;
    the last block's payload is padded with 0xFF (erased flash)."""
    if address % PAYLOAD_BYTES:
        raise ValueError(f"UF2 address 0x{address:X} is not {PAYLOAD_BYTES}-byte aligned")
    count = -(-len(data) // PAYLOAD_BYTES)
    blocks = []
    for i in range(count):
        payload = data[i * PAYLOAD_BYTES:(i + 1) * PAYLOAD_BYTES].ljust(PAYLOAD_BYTES, b"\xff")
        header = _HEADER.pack(MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID_PRESENT,
                              address + i * PAYLOAD_BYTES, PAYLOAD_BYTES, i, count, family)
        padding = BLOCK_BYTES - _HEADER.size - PAYLOAD_BYTES - 4
        blocks.append(header + payload + bytes(padding) + struct.pack("<I", MAGIC_END))
    return b"".join(blocks)
