"""Windows-1252 extracts handed to the CSV parser as UTF-8, at memory speed.

Arrow parses UTF-8 only; for any other encoding it runs the file through Python's codecs,
block by block, on the thread that parses and holding the interpreter's lock: a fifth of a
second per hundred megabytes, while the threads that normalise wait. In a supplier's
Windows-1252 file nearly every byte is ASCII, which is already UTF-8: only the few bytes
from 0x80 up need rewriting, and numpy finds them at memory speed.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

# The five bytes Windows-1252 leaves undefined: a file holding one does not decode.
UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
# Each byte from 0x80 as UTF-8 (None where undefined).
_UTF8: list[bytes | None] = [
    None if byte in UNDEFINED else bytes([byte]).decode("cp1252").encode("utf-8")
    for byte in range(0x80, 0x100)
]
# Above one rewritten byte in this many, the codec in C beats slicing around each one.
_SPARSE = 64
BLOCK_BYTES = 1 << 22


class UndefinedByte(ValueError):
    """A byte Windows-1252 does not define, at an offset in the file."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        super().__init__(f"byte undefined in Windows-1252 at offset {offset}")


def to_utf8(block: bytes, offset: int = 0, scratch: np.ndarray | None = None) -> bytes:
    """A block of Windows-1252 as UTF-8; `offset` is the block's place in the file, for the
    error. Each byte is a whole character, so blocks may be cut anywhere. `scratch`, a bool
    array at least as long as the block, is reused for the search rather than allocating
    (and faulting in) a new one each block."""
    if block.isascii():
        return block
    found = np.empty(len(block), dtype=bool) if scratch is None else scratch[: len(block)]
    np.greater_equal(np.frombuffer(block, dtype=np.uint8), 0x80, out=found)
    high = np.flatnonzero(found)
    if len(high) * _SPARSE > len(block):
        try:
            return block.decode("cp1252").encode("utf-8")
        except UnicodeDecodeError as error:
            raise UndefinedByte(offset + error.start) from None
    pieces = []
    start = 0
    for at in high.tolist():
        utf8 = _UTF8[block[at] - 0x80]
        if utf8 is None:
            raise UndefinedByte(offset + at)
        pieces.append(block[start:at])
        pieces.append(utf8)
        start = at + 1
    pieces.append(block[start:])
    return b"".join(pieces)


class Utf8Stream(io.RawIOBase):
    """A binary Windows-1252 file read as UTF-8: what Arrow's CSV reader is given."""

    def __init__(self, raw: BinaryIO, block_bytes: int = BLOCK_BYTES) -> None:
        super().__init__()
        self._raw = raw
        self._block_bytes = block_bytes
        self._offset = 0
        self._pending = memoryview(b"")
        self._scratch = np.empty(block_bytes, dtype=bool)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not len(self._pending):
            block = self._raw.read(self._block_bytes)
            if not block:
                return 0
            self._pending = memoryview(to_utf8(block, self._offset, self._scratch))
            self._offset += len(block)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()
