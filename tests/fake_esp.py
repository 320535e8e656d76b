"""A fake ESP32-S3 in its serial download mode, on a TCP socket (pyserial
`socket://127.0.0.1:PORT`), for testing the exact esptool call `mote flash` makes:
it speaks the ROM loader's SLIP protocol (sync, security info, registers), takes the
flasher stub esptool uploads (and answers as the stub from then on), and keeps what
esptool writes with compressed or plain flash commands in a bytearray, with the MD5
check esptool runs at the end. Only what esptool's write-flash uses is answered; any
other command gets the ROM's "invalid command" status, so a changed call fails loudly.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import zlib

CHIP_ID_ESP32S3 = 9  # esptool's ESP32S3ROM.IMAGE_CHIP_ID
SYNC, READ_REG, WRITE_REG = 0x08, 0x0A, 0x09
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14


def slip(data: bytes) -> bytes:
    return b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class FakeEsp32S3:
    """One board: `with FakeEsp32S3(flash_bytes) as esp: ... esp.url ... esp.flash`."""

    def __init__(self, flash_bytes: int):
        self.flash = bytearray(b"\xff" * flash_bytes)
        self.commands: list[int] = []  # every opcode received, in order
        self.stub = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._write_at = 0
        self._inflate = None

    def __enter__(self) -> "FakeEsp32S3":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._thread.join(5)

    # ---------------------------------------------------------------- transport
    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            frame, escaped, inside = bytearray(), False, False
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                for byte in chunk:
                    if byte == 0xC0:
                        if inside and frame:
                            self._packet(conn, bytes(frame))
                        frame, inside = bytearray(), True
                    elif inside and escaped:
                        frame.append({0xDC: 0xC0, 0xDD: 0xDB}[byte])
                        escaped = False
                    elif inside and byte == 0xDB:
                        escaped = True
                    elif inside:
                        frame.append(byte)

    def _reply(self, conn: socket.socket, op: int, value: int = 0, data: bytes = b"",
               status: int = 0, error: int = 0) -> None:
        # the ROM appends 4 status bytes, the stub 2
        tail = bytes([status, error]) + (b"" if self.stub else b"\0\0")
        body = data + tail
        conn.sendall(slip(struct.pack("<BBHI", 1, op, len(body), value) + body))

    # ---------------------------------------------------------------- commands
    def _packet(self, conn: socket.socket, packet: bytes) -> None:
        direction, op, size, _checksum = struct.unpack("<BBHI", packet[:8])
        data = packet[8:8 + size]
        if direction != 0:
            return
        self.commands.append(op)
        if op == SYNC:
            for _ in range(8):  # the ROM answers a sync eight times, with a non-zero value
                self._reply(conn, op, value=0x20120707)
        elif op == GET_SECURITY_INFO:
            self._reply(conn, op, data=struct.pack("<IBBBBBBBBII", 0, 0, *(0,) * 7, CHIP_ID_ESP32S3, 0))
        elif op == READ_REG:
            self._reply(conn, op, value=0)  # efuses all 0: no security features, revision 0
        elif op in (WRITE_REG, SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE, MEM_BEGIN, MEM_DATA,
                    FLASH_END, FLASH_DEFL_END):
            self._reply(conn, op)
        elif op == MEM_END:
            self._reply(conn, op)
            _, entry = struct.unpack("<II", data[:8])
            if entry:  # esptool started its stub: it greets, and then answers as the stub
                conn.sendall(slip(b"OHAI"))
                self.stub = True
        elif op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            self._write_at = struct.unpack("<IIII", data[:16])[3]
            self._inflate = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
            self._reply(conn, op)
        elif op in (FLASH_DATA, FLASH_DEFL_DATA):
            length = struct.unpack("<I", data[:4])[0]
            payload = data[16:16 + length]
            if self._inflate is not None:
                payload = self._inflate.decompress(payload)
            self.flash[self._write_at:self._write_at + len(payload)] = payload
            self._write_at += len(payload)
            self._reply(conn, op)
        elif op == SPI_FLASH_MD5:
            address, length = struct.unpack("<II", data[:8])
            digest = hashlib.md5(self.flash[address:address + length]).digest()
            self._reply(conn, op, data=digest if self.stub else digest.hex().encode())
        else:
            self._reply(conn, op, status=1, error=5)  # the ROM's "invalid command"
