"""The Windows-1252 to UTF-8 transcoding the CSV reader is given: byte for byte what Python's
codec writes, however the file is cut into blocks, and an undefined byte named by offset."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.errors import InputError
from migrate.extract.cp1252 import UNDEFINED, UndefinedByte, Utf8Stream, to_utf8
from migrate.extract.delimited import DelimitedReader

DEFINED = [byte for byte in range(256) if byte not in UNDEFINED]
# Mostly ASCII with a few bytes from 0x80 (the sparse path), or dense with them (the codec).
sparse = st.lists(
    st.sampled_from([*range(0x20, 0x7F)] * 40 + [b for b in DEFINED if b >= 0x80])
).map(bytes)
dense = st.lists(st.sampled_from(DEFINED)).map(bytes)


@given(st.one_of(sparse, dense))
def test_a_block_becomes_what_the_codec_writes(block: bytes) -> None:
    assert to_utf8(block) == block.decode("cp1252").encode("utf-8")


@given(st.one_of(sparse, dense), st.integers(min_value=1, max_value=64), st.integers(1, 50))
def test_the_stream_gives_the_same_bytes_however_it_is_cut_and_read(
    data: bytes, block_bytes: int, read_size: int
) -> None:
    stream = Utf8Stream(io.BytesIO(data), block_bytes=block_bytes)
    pieces = []
    while chunk := stream.read(read_size):
        pieces.append(chunk)
    assert b"".join(pieces) == data.decode("cp1252").encode("utf-8")


@pytest.mark.parametrize("undefined", sorted(UNDEFINED))
@pytest.mark.parametrize("filler", [b"a", b"\xe9"], ids=["sparse", "dense"])
def test_an_undefined_byte_is_named_by_its_offset_in_the_file(
    undefined: int, filler: bytes
) -> None:
    data = filler * 100 + bytes([undefined]) + b"tail"
    stream = Utf8Stream(io.BytesIO(data), block_bytes=32)
    with pytest.raises(UndefinedByte) as raised:
        stream.read()
    assert raised.value.offset == 100


def test_an_undefined_byte_in_the_mapping_s_windows_1252_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "extract.csv"
    data = b"MPAN;Serial\r\n" + b"1312345678907;\xe9X1\r\n" * 50 + b"1;\x81\r\n"
    path.write_bytes(data)
    # Found as the file is read, in small blocks here, not by a search of the file first.
    reader = DelimitedReader(path, ["MPAN", "Serial"], encoding="cp1252", block_bytes=256)
    offset = data.index(b"\x81")
    with pytest.raises(InputError, match=rf"extract\.csv.*cp1252.*offset {offset}\)") as caught:
        list(reader.batches())
    assert caught.value.row == 52
