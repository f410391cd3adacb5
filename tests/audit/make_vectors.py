"""Write the audit log's golden vectors: a valid log and logs derived from it by tampering, in
the manner of Certificate Transparency's test data (transparency-dev/merkle). Deterministic:
fixed timestamps and keys, so running it again gives the same bytes (a test checks that).

    PYTHONPATH=. python tests/audit/make_vectors.py

The expected verification of each vector is NOT generated: it is written by hand in
vectors/expected.json, so that a change to the code cannot quietly change what is expected.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from migrate.audit import GENESIS, AuditRecord, seal, seal_many, to_jsonl

VECTORS = Path(__file__).resolve().parent / "vectors"

# Test keys, public on purpose: these vectors must be checkable by anyone.
KEY = hashlib.sha256(b"smets1-migrate audit test vectors: the key").digest()
WRONG_KEY = hashlib.sha256(b"smets1-migrate audit test vectors: a wrong key").digest()
ATTACKER_KEY = hashlib.sha256(b"smets1-migrate audit test vectors: an attacker's key").digest()


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


PLAN = {"plan": _h("plan moc 2026-11")}
BATCH = "MOC-2026-11-A"


def _row(
    seq: int,
    command: str,
    installation: str | None,
    src: str | None,
    dst: str | None,
    reason: str | None = None,
    actor: str = "ops.alice",
    inputs: dict[str, str] | None = None,
    batch: str | None = BATCH,
) -> dict[str, object]:
    return {
        "seq": seq,
        "at": f"2026-11-29T10:{seq:02d}:06.{seq * 12345:06d}Z",
        "actor": actor,
        "command": command,
        "batch": batch,
        "installation_id": installation,
        "idempotency_key": None if installation is None else _h(f"moc|{installation}"),
        "from_state": src,
        "to_state": dst,
        "reason": reason,
        "inputs": PLAN if inputs is None else inputs,
    }


ROWS = [
    _row(1, "stage", "INST-0001", None, "STAGED"),
    _row(2, "stage", "INST-0002", None, "STAGED"),
    _row(3, "stage", "INST-0003", None, "STAGED"),
    _row(4, "commit", "INST-0001", "STAGED", "SUBMITTING", actor="svc-commit"),
    _row(5, "commit", "INST-0002", "STAGED", "SUBMITTING", actor="svc-commit"),
    _row(6, "commit", "INST-0001", "SUBMITTING", "ACCEPTED", actor="svc-commit"),
    _row(
        7,
        "commit",
        "INST-0002",
        "SUBMITTING",
        "FAILED",
        reason="NO_WAN_DURING_MIGRATION",
        actor="svc-commit",
    ),
    _row(
        8, "reconcile", "INST-0001", "ACCEPTED", "MIGRATED", inputs={**PLAN, "inventory": _h("i")}
    ),
    # Non-ASCII and quotes: the content is UTF-8, and escapes only what JSON must.
    _row(
        9,
        "withdraw",
        "INST-0003",
        "STAGED",
        "WITHDRAWN",
        reason='customer "moved out", Ynys Môn',
        actor="siân.ops",
    ),
    _row(10, "audit-export", None, None, None, inputs={}, batch=None),
]


def _lines(records: list[AuditRecord]) -> list[str]:
    return list(to_jsonl(records))


def _flip(line: str, needle: str, offset: int, bit: int = 0) -> str:
    """The line with one bit flipped in the byte at `offset` inside the first `needle`."""
    data = bytearray(line.encode())
    at = data.index(needle.encode()) + offset
    data[at] ^= 1 << bit
    return data.decode()


def _flip_hex(line: str, field: str, position: int) -> str:
    """The line with one hex digit of a hash field changed (to its neighbour, xor 1)."""
    start = line.index(f'"{field}":"') + len(field) + 4 + position
    digit = format(int(line[start], 16) ^ 1, "x")
    return line[:start] + digit + line[start + 1 :]


def build() -> dict[str, bytes]:
    """Every vector file, by name."""
    valid = seal_many(ROWS, GENESIS, KEY)
    lines = _lines(valid)
    cases: dict[str, list[str]] = {"valid": lines}

    # Record 3 now names INST-0002 ("3" is 0x33, "2" is 0x32): another installation.
    cases["flipped_bit_in_field"] = [
        *lines[:2],
        _flip(lines[2], '"installation_id":"INST-0003"', 27),
        *lines[3:],
    ]
    cases["flipped_hex_in_hash"] = [*lines[:3], _flip_hex(lines[3], "hash", 10), *lines[4:]]
    cases["flipped_prev_hash"] = [*lines[:5], _flip_hex(lines[5], "prev_hash", 63), *lines[6:]]
    cases["deleted_record"] = [*lines[:4], *lines[5:]]

    # A well-formed record 6 chained to record 5, its hash right, its mac under another key;
    # the real record 6 and the rest follow.
    forged = seal(
        {**ROWS[6], "seq": 6, "installation_id": "INST-0666", "to_state": "MIGRATED"},
        valid[4].hash,
        ATTACKER_KEY,
    )
    cases["inserted_record"] = [*lines[:5], *_lines([forged]), *lines[5:]]
    cases["swapped_records"] = [*lines[:3], lines[4], lines[3], *lines[5:]]
    cases["truncated_tail"] = lines[:8]
    # An interrupted write: half a record, no line break.
    cases["trailing_garbage"] = [*lines, lines[9][: len(lines[9]) // 2]]
    cases["empty_line"] = [*lines[:5], "", *lines[5:]]

    # An insider hides record 7's failure and re-seals 7 to 10 with new hashes. Without the
    # key the macs cannot be redone, so the old ones stay; the log is a valid chain again.
    edited = [{**ROWS[6], "to_state": "ACCEPTED", "reason": None}, *ROWS[7:]]
    resealed = [
        dataclasses.replace(record, mac=old.mac)
        for record, old in zip(seal_many(edited, valid[5].hash, None), valid[6:], strict=True)
    ]
    cases["resealed_after_edit"] = [*lines[:6], *_lines(resealed)]

    # Record 2's mac removed: a record that looks written without a key.
    cases["mac_removed"] = [
        lines[0],
        _lines([dataclasses.replace(valid[1], mac=None)])[0],
        *lines[2:],
    ]
    # Same values, other bytes: a space after a separator. Not written by to_jsonl.
    cases["not_canonical"] = [*lines[:2], lines[2].replace(',"at":', ', "at":', 1), *lines[3:]]

    return {
        f"{name}.jsonl": "".join(f"{line}\n" for line in body).encode()
        for name, body in cases.items()
    }


def main() -> None:
    VECTORS.mkdir(exist_ok=True)
    for name, data in build().items():
        (VECTORS / name).write_bytes(data)
        print(f"wrote {VECTORS / name}")


if __name__ == "__main__":
    main()
