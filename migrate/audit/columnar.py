"""The whole log checked a chunk of records at a time, at column speed: what `verify` checks,
for a log read in bulk (a store reads it so in seconds where records one by one take a
minute at a million).

A chunk is its records' canonical content, their stored hashes, prev_hashes and macs. The
store builds the content in SQL; it is the canonical content `_prepare` writes exactly when
no value needed escaping (escaping is where two JSON writers may differ: `is_plain` refuses
any content with a backslash), the inputs are stored in canonical form (`check_inputs`) and
the other fields pass `_prepare`'s checks (`check_at` here, the rest in the store's SQL).
Then each record's hash (and mac) is recomputed and compared, and the chain and head checked.

It can only confirm: a record that fails any check, or holds anything this path does not
read the way `verify` does, raises Unconfirmed, and the answer is None: the caller then runs
`verify` over the same log, which names the first bad record. So the two never disagree on a
log that verifies, and a log that does not is always described by `verify` itself.

`seal_columns` is the other direction: a run of records sealed from columns, as staging
appends one per installation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate import json_text
from migrate.audit.chain import (
    GENESIS,
    Verification,
    _at_ok,
    _hex64,
    _inputs,
    _Mac,
    _prepare,
    _quote,
    inputs_value,
)

# Each byte's value as a lowercase hex digit, 255 for a byte that is not one.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


class Unconfirmed(Exception):
    """A record this path cannot confirm: `verify` must look at the log."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive records from `first_seq`: content bytes (record i is
    content[bounds[i]:bounds[i+1]]), and hashes, prev_hashes and macs as rows of 64 ASCII
    bytes (macs None when the caller has no key to check them with)."""

    first_seq: int
    content: bytes | memoryview
    bounds: np.ndarray
    hashes: np.ndarray
    prev_hashes: np.ndarray
    macs: np.ndarray | None


def check_inputs(texts: Iterable[str]) -> None:
    """Stored inputs texts that `verify` reads as a record's inputs (`inputs_value`, then
    `_inputs`: the canonical text of a mapping of strings), with no escape in them, so that
    they are the very bytes `_prepare` writes and the content may hold them as they are."""
    for text in texts:
        try:
            _inputs(inputs_value(text), None)
        except ValueError:
            raise Unconfirmed from None
        if not is_plain(text):
            raise Unconfirmed


def is_plain(text: str) -> bool:
    """No escape in it: whatever JSON writer made it, `_quote` would write it the same."""
    return "\\" not in text


def check_at(values: Iterable[str]) -> None:
    """`at` values as `format_at` writes them, on days that exist."""
    if not all(isinstance(value, str) and _at_ok(value) for value in values):
        raise Unconfirmed


def _hex_rows(rows: np.ndarray) -> np.ndarray:
    """Rows of 64 lowercase hex digits (checked) as rows of 32 bytes."""
    nibbles = _NIBBLE[rows]
    if (nibbles == 255).any():
        raise Unconfirmed
    return nibbles[:, 0::2] << 4 | nibbles[:, 1::2]


def _check(chunk: Chunk, count: int, last: str, mac: _Mac | None) -> str:
    """The chunk's records good and chained to `last`; returns its last hash."""
    n = len(chunk.hashes)
    if chunk.first_seq != count + 1 or len(chunk.bounds) != n + 1 or len(chunk.prev_hashes) != n:
        raise Unconfirmed
    hashes = _hex_rows(chunk.hashes)
    previous = np.vstack([np.frombuffer(last.encode(), dtype=np.uint8), chunk.hashes[:-1]])
    if not np.array_equal(chunk.prev_hashes, previous):
        raise Unconfirmed
    # Each record is sealed after the previous one's hash: with the chain of stored hashes
    # checked (above) and every recomputed hash equal to its stored one (below), the hash
    # just computed is the next record's prefix.
    digest = bytes.fromhex(last)
    digests: list[bytes] = []
    macs: list[str] = []
    data, sha256 = chunk.content, hashlib.sha256
    for a, b in pairwise(chunk.bounds.tolist()):
        sealed = digest + data[a:b]
        digest = sha256(sealed).digest()
        digests.append(digest)
        if mac is not None:
            macs.append(mac(sealed))
    if not np.array_equal(np.frombuffer(b"".join(digests), np.uint8).reshape(n, 32), hashes):
        raise Unconfirmed
    if mac is not None:
        expected = np.frombuffer("".join(macs).encode(), dtype=np.uint8).reshape(n, 64)
        if chunk.macs is None or not np.array_equal(chunk.macs, expected):
            raise Unconfirmed
    return chunk.hashes[-1].tobytes().decode()


def verify_chunks(
    chunks: Iterable[Chunk],
    key: bytes | None = None,
    expected_head: tuple[int, str] | None = None,
    *,
    after: tuple[int, str] = (0, GENESIS),
) -> Verification | None:
    """The verdict of `verify` on a log given as chunks in seq order, when every record
    holds; None when one does not, or cannot be confirmed here (the chunks may raise
    Unconfirmed too): then run `verify`.

    `after` is a prefix of the log already verified (its length and last hash): the chunks
    then start at the record after it, and the verdict covers the whole log."""
    mac = None if key is None else _Mac(key)
    count, last = after
    try:
        for chunk in chunks:
            if len(chunk.hashes):
                last = _check(chunk, count, last, mac)
                count += len(chunk.hashes)
    except Unconfirmed:
        return None
    if expected_head is not None and expected_head != (count, last):
        return None
    return Verification(True, count, last if count else None, None, None)


# ---------------------------------------------------------------------------------------
# Sealing a column of records: staging appends one record per installation, hundreds of
# thousands at once, all alike but for a few fields.

PER_ROW = ("batch", "idempotency_key", "from_state", "to_state", "reason", "installation_id")


@dataclass(frozen=True)
class SealedColumns:
    """Each record's prev_hash, hash and mac (None without a key), in seq order."""

    prev_hashes: list[str]
    hashes: list[str]
    macs: list[str | None]


def seal_columns(
    first_seq: int,
    prev_hash: str,
    key: bytes | None,
    shared: Mapping[str, object],
    columns: Mapping[str, pa.Array],
) -> SealedColumns:
    """The records `seal_many` would make of these rows, byte for byte: `shared` holds the
    fields every row has alike (at, actor, command, inputs), `columns` the others (PER_ROW,
    strings or nulls, of one length). The canonical content is built by Arrow, column by
    column; only the chain, which is sequential by nature, is a loop of hash calls."""
    count = len(columns["installation_id"])
    if count == 0:
        return SealedColumns([], [], [])
    # The shared fields pass the same checks a record's do (the first record stands for all).
    probe = {name: None for name in PER_ROW} | dict(shared) | {"seq": first_seq}
    values, _ = _prepare(probe, _hex64(prev_hash, "prev_hash", None))
    if (first_seq == 1) != (prev_hash == GENESIS):
        raise ValueError(f"record {first_seq}: record 1 must follow GENESIS, and only record 1 may")
    ins = ",".join(_quote(name) + ":" + _quote(digest) for name, digest in values["inputs"].items())
    text = {name: json_text.strings(columns[name]) for name in PER_ROW}
    before = pc.binary_join_element_wise(
        f'{{"actor":{_quote(values["actor"])},"at":"{values["at"]}","batch":',
        text["batch"],
        f',"command":{_quote(values["command"])},"from_state":',
        text["from_state"],
        ',"idempotency_key":',
        text["idempotency_key"],
        f',"inputs":{{{ins}}},"installation_id":',
        text["installation_id"],
        ',"prev_hash":"',
        "",
    )
    seqs = pa.array(np.arange(first_seq, first_seq + count, dtype=np.int64)).cast(pa.string())
    after = pc.binary_join_element_wise(
        '","reason":', text["reason"], ',"seq":', seqs, ',"to_state":', text["to_state"], "}", ""
    )
    mac = None if key is None else _Mac(key)
    sha256 = hashlib.sha256
    digest, previous = bytes.fromhex(prev_hash), prev_hash.encode()
    prev_hashes: list[str] = []
    hashes: list[str] = []
    macs: list[str | None] = []
    heads, tails = _pieces(before), _pieces(after)
    for head, tail in zip(heads, tails, strict=True):
        sealed = digest + head + previous + tail
        digest = sha256(sealed).digest()
        prev_hashes.append(previous.decode())
        previous = digest.hex().encode()
        hashes.append(previous.decode())
        macs.append(None if mac is None else mac(sealed))
    return SealedColumns(prev_hashes, hashes, macs)


def _pieces(texts: pa.Array) -> list[bytes]:
    """Each string's UTF-8 bytes, sliced from the array's one data buffer."""
    texts = texts.cast(pa.large_string())
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[
        texts.offset : texts.offset + len(texts) + 1
    ].tolist()
    data = texts.buffers()[2].to_pybytes()
    return [data[a:b] for a, b in pairwise(offsets)]
