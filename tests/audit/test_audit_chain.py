"""The audit log's core, tested as Certificate Transparency tests its logs
(transparency-dev/merkle): golden vectors, a valid log and the same log tampered with in each
way we know, with the verification each must give written down by hand; then properties over
generated logs: every valid chain verifies, and no single changed byte goes unnoticed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import importlib.util
import io
import json
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.audit import (
    FIELDS,
    GENESIS,
    AuditFormatError,
    AuditRecord,
    Verification,
    canonical_bytes,
    format_at,
    from_jsonl,
    now_at,
    seal,
    seal_many,
    to_jsonl,
    verify,
)
from migrate.audit.key import audit_key
from migrate.errors import ConfigError

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors"
EXPECTED = json.loads((VECTORS / "expected.json").read_text(encoding="utf-8"))
KEYS: dict[str | None, bytes | None] = {
    None: None,
    **{name: bytes.fromhex(digits) for name, digits in EXPECTED["keys"].items()},
}
HEAD = (EXPECTED["head"]["seq"], EXPECTED["head"]["hash"])
KEY = KEYS["right"]


def _make_vectors() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_vectors", HERE / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verify_file(name: str, key: bytes | None = None, head: bool = False) -> Verification:
    """Verify a vector read as a store export would be: bytes, line by line."""
    with (VECTORS / name).open("rb") as handle:
        return verify(from_jsonl(handle), key=key, expected_head=HEAD if head else None)


def _row(seq: int, **changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": "2026-11-29T10:04:06.123456Z",
        "actor": "ops.alice",
        "command": "stage",
        "batch": "MOC-2026-11-A",
        "installation_id": f"INST-{seq:04d}",
        "idempotency_key": hashlib.sha256(f"moc|{seq}".encode()).hexdigest(),
        "from_state": None,
        "to_state": "STAGED",
        "reason": None,
        "inputs": {"plan": hashlib.sha256(b"plan").hexdigest()},
        **changes,
    }


def _reference_json(value: object) -> bytes:
    """canonical_bytes as the design states it, with the standard library alone."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------
# Golden vectors.

CHECKS = [
    pytest.param(
        case["file"],
        check,
        id=f"{name}-key:{check['key'] or 'none'}-{'head' if check['head'] else 'no head'}",
    )
    for name, case in EXPECTED["cases"].items()
    for check in case["checks"]
]


@pytest.mark.parametrize(("file", "check"), CHECKS)
def test_golden_vector(file: str, check: dict[str, Any]) -> None:
    result = _verify_file(file, KEYS[check["key"]], check["head"])
    assert result.ok is check["ok"], result.problem
    assert result.count == check["count"]
    assert result.first_bad_seq == check["first_bad_seq"]
    if check["problem"] is None:
        assert result.problem is None
    else:
        assert result.problem is not None and check["problem"] in result.problem


def test_golden_vectors_are_what_make_vectors_writes() -> None:
    """The script is deterministic and the committed files are its output; every file has
    expectations and every expectation has its file."""
    built = _make_vectors().build()
    on_disk = {path.name: path.read_bytes() for path in VECTORS.glob("*.jsonl")}
    assert built == on_disk
    assert {case["file"] for case in EXPECTED["cases"].values()} == set(on_disk)
    assert _make_vectors().KEY == KEY


def test_valid_vector_checks_with_hashlib_alone() -> None:
    """The format is the documented one: a verifier of a dozen lines, knowing nothing of this
    package, accepts the golden log (as CT's vectors serve any implementation)."""
    prev = "0" * 64
    for seq, line in enumerate((VECTORS / "valid.jsonl").read_bytes().splitlines(), start=1):
        record = json.loads(line)
        assert record["seq"] == seq and record["prev_hash"] == prev
        content = {k: v for k, v in record.items() if k not in ("hash", "mac")}
        data = bytes.fromhex(prev) + _reference_json(content)
        assert record["hash"] == hashlib.sha256(data).hexdigest()
        assert record["mac"] == hmac.new(KEY, data, hashlib.sha256).hexdigest()
        assert line == _reference_json(record)
        prev = record["hash"]
    assert (seq, prev) == HEAD


def test_a_resealed_tail_needs_the_head_or_the_key() -> None:
    # Without a key, a full re-seal of the tail is undetectable: SHA-256 is public, so whoever
    # can write the audit table can edit a record and recompute every hash from there to the
    # end, and the chain holds again. That is why the store keeps the head apart (moved in the
    # same transaction as each append; a re-sealed tail ends on another hash), and why the key
    # exists: a mac cannot be recomputed without it, whatever else was rewritten.
    name = "resealed_after_edit.jsonl"
    assert _verify_file(name).ok
    assert "differs from the head" in str(_verify_file(name, head=True).problem)
    with_key = _verify_file(name, KEY)
    assert (with_key.ok, with_key.first_bad_seq) == (False, 7)
    assert "mac does not match" in str(with_key.problem)


def test_a_cut_tail_needs_the_head() -> None:
    # What is left of a log cut short is a valid chain, macs included: only the head shows it.
    assert _verify_file("truncated_tail.jsonl", KEY).ok
    result = _verify_file("truncated_tail.jsonl", KEY, head=True)
    assert not result.ok and "truncated" in str(result.problem)


def test_every_changed_byte_of_the_golden_log_is_caught_at_its_record() -> None:
    """Exhaustive over the valid vector: each byte changed in turn (its low bit; for a hex
    letter also the case bit). Always caught, and at the line changed."""
    data = (VECTORS / "valid.jsonl").read_bytes()
    line_of = [data.count(b"\n", 0, i) + 1 for i in range(len(data))]
    for position in range(len(data)):
        for bit in (0x01, 0x20) if data[position] in b"abcdef" else (0x01,):
            mutated = bytearray(data)
            mutated[position] ^= bit
            result = verify(from_jsonl(io.BytesIO(bytes(mutated))), key=KEY)
            assert not result.ok, (position, bit)
            assert result.first_bad_seq == line_of[position], (position, bit, result.problem)


# ---------------------------------------------------------------------------------------
# Sealing.


def test_hash_and_mac_are_the_documented_ones() -> None:
    fields = _row(1)
    record = seal(fields, GENESIS, KEY)
    content = {**fields, "prev_hash": GENESIS}
    assert canonical_bytes(content) == _reference_json(content)
    data = bytes(32) + _reference_json(content)
    assert record.hash == hashlib.sha256(data).hexdigest()
    assert record.mac == hmac.new(KEY, data, hashlib.sha256).hexdigest()
    assert seal(fields, GENESIS, None).mac is None
    assert seal(fields, GENESIS, None).hash == record.hash  # the key touches the mac only


@pytest.mark.parametrize("length", [1, 31, 32, 64, 65, 200])
def test_mac_matches_hmac_for_any_key_length(length: int) -> None:
    key = bytes(range(256))[:length]
    data = bytes(32) + canonical_bytes({**_row(1), "prev_hash": GENESIS})
    assert seal(_row(1), GENESIS, key).mac == hmac.new(key, data, hashlib.sha256).hexdigest()


def test_seal_many_is_successive_seals() -> None:
    rows = [_row(seq) for seq in range(1, 6)]
    many = seal_many(rows, GENESIS, KEY)
    one_by_one, prev = [], GENESIS
    for row in rows:
        one_by_one.append(seal(row, prev, KEY))
        prev = one_by_one[-1].hash
    assert many == one_by_one
    more = seal_many([_row(6), _row(7)], many[-1].hash, KEY)  # a second transaction
    assert verify([*many, *more], KEY, (7, more[-1].hash)).ok
    assert seal_many([], GENESIS, KEY) == []


def test_records_are_frozen_and_hashable() -> None:
    record = seal(_row(1), GENESIS, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.seq = 2  # type: ignore[misc]
    assert {record} == {seal(_row(1), GENESIS, None)}
    assert dataclasses.asdict(record)["hash"] == record.hash  # as the store inserts it
    assert AuditRecord(**dataclasses.asdict(record)) == record  # as the store reads it back


def test_inputs_are_copied_and_sorted() -> None:
    inputs = {"plan": "b" * 64, "cohort": "a" * 64}
    record = seal(_row(1, inputs=inputs), GENESIS, None)
    inputs["plan"] = "tampered"
    assert list(record.inputs) == ["cohort", "plan"]
    assert record.inputs["plan"] == "b" * 64
    assert verify([record]).ok


def test_str_enums_are_kept_as_plain_strings() -> None:
    """The store passes RequestState members; a record read back must equal the one written."""

    class State(StrEnum):
        STAGED = "STAGED"

    record = seal(_row(1, to_state=State.STAGED, inputs={State.STAGED: "x"}), GENESIS, None)
    assert type(record.to_state) is str and record.to_state == "STAGED"
    assert all(type(name) is str for name in record.inputs)
    assert record == seal(_row(1, to_state="STAGED", inputs={"STAGED": "x"}), GENESIS, None)
    assert verify([dataclasses.replace(record, to_state=State.STAGED)]).ok  # as read back


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seq": 0}, "'seq' must be an integer from 1"),
        ({"seq": True}, "'seq' must be an integer from 1"),
        ({"seq": "1"}, "'seq' must be an integer from 1"),
        ({"at": "2026-11-29T10:04:06Z"}, "'at' must be UTC ISO-8601"),
        ({"at": "2026-11-29T10:04:06.123456+00:00"}, "'at' must be UTC ISO-8601"),
        ({"at": "2026-02-31T10:04:06.123456Z"}, "'at' must be UTC ISO-8601"),
        ({"at": "२०२६-11-29T10:04:06.123456Z"}, "'at' must be UTC ISO-8601"),
        ({"at": dt.datetime(2026, 11, 29, tzinfo=dt.UTC)}, "'at' must be a string"),
        ({"actor": ""}, "'actor' is empty"),
        ({"actor": None}, "'actor' must be a string"),
        ({"command": 3}, "'command' must be a string"),
        ({"batch": 3}, "'batch' must be a string or None"),
        ({"reason": b"x"}, "'reason' must be a string or None"),
        ({"inputs": None}, "'inputs' must be a mapping"),
        ({"inputs": {"plan": 1}}, "'inputs' must map strings to strings"),
        ({"reason": "\ud800"}, "lone surrogate"),
        ({"extra": 1}, "unexpected field 'extra'"),
        ({"prev_hash": GENESIS}, "unexpected field 'prev_hash'"),
    ],
)
def test_seal_refuses_what_a_record_cannot_hold(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        seal({**_row(1), **changes}, GENESIS, None)


def test_seal_refuses_a_missing_field() -> None:
    row = _row(1)
    del row["reason"]
    with pytest.raises(ValueError, match="record 1: missing field 'reason'"):
        seal(row, GENESIS, None)


def test_seal_many_keeps_the_chain_well_formed() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        seal_many([_row(1), _row(3)], GENESIS, None)
    with pytest.raises(ValueError, match="record 1 must follow GENESIS"):
        seal(_row(2), GENESIS, None)
    with pytest.raises(ValueError, match="record 1 must follow GENESIS"):
        seal(_row(1), "a" * 64, None)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        seal(_row(2), "A" * 64, None)
    with pytest.raises(TypeError, match="must be bytes"):
        seal(_row(1), GENESIS, KEY.hex())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        seal(_row(1), GENESIS, b"")


def test_canonical_bytes_wants_the_record_minus_hash_and_mac() -> None:
    with pytest.raises(ValueError, match="missing field 'prev_hash'"):
        canonical_bytes(_row(1))
    with pytest.raises(ValueError, match="unexpected field 'hash'"):
        canonical_bytes({**_row(1), "prev_hash": GENESIS, "hash": GENESIS})


def test_format_at() -> None:
    moment = dt.datetime(2026, 11, 29, 10, 4, 6, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_at(moment) == "2026-11-29T09:04:06.123456Z"
    assert format_at(dt.datetime(999, 1, 2, tzinfo=dt.UTC)) == "0999-01-02T00:00:00.000000Z"
    with pytest.raises(ValueError, match="naive"):
        format_at(dt.datetime(2026, 11, 29))
    seal(_row(1, at=now_at()), GENESIS, None)


# ---------------------------------------------------------------------------------------
# Verifying.


def test_verify_names_the_last_good_record() -> None:
    records = seal_many([_row(seq) for seq in range(1, 6)], GENESIS, None)
    bad = [*records[:3], dataclasses.replace(records[3], actor="mallory"), records[4]]
    result = verify(bad)
    assert result == Verification(
        ok=False,
        count=4,
        head_hash=records[2].hash,
        first_bad_seq=4,
        problem="record 4: hash does not match its content",
    )
    assert verify(records) == Verification(True, 5, records[-1].hash, None, None)


def test_verify_reports_a_malformed_record_rather_than_raising() -> None:
    """Rows the store reads back go straight into AuditRecord, unchecked: a damaged row must
    come out as a finding, not a traceback."""
    record = seal(_row(1), GENESIS, None)
    for changes, problem in [
        ({"seq": "1"}, "record 1: seq is not an integer"),
        ({"at": "yesterday"}, "record 1: not a well-formed record"),
        ({"inputs": None}, "record 1: not a well-formed record"),
        ({"hash": None}, "record 1: hash does not match"),
        ({"prev_hash": None}, "record 1: prev_hash does not match the genesis hash"),
    ]:
        result = verify([dataclasses.replace(record, **changes)])
        assert not result.ok and result.first_bad_seq == 1
        assert result.problem is not None and result.problem.startswith(problem)
    result = verify([dataclasses.replace(record, mac=3)], KEY)  # type: ignore[arg-type]
    assert "mac does not match" in str(result.problem)


def test_verify_against_the_head() -> None:
    records = seal_many([_row(seq) for seq in range(1, 4)], GENESIS, None)
    assert verify([], expected_head=(0, GENESIS)) == Verification(True, 0, None, None, None)
    empty = verify([], expected_head=(2, records[1].hash))
    assert empty.problem == "the log is empty, but the head said 2 (truncated)"
    assert empty.first_bad_seq == 1
    beyond = verify(records, expected_head=(2, records[1].hash))
    assert (beyond.ok, beyond.first_bad_seq, beyond.count) == (False, 3, 3)
    assert str(beyond.problem).startswith("record 3: beyond the head (record 2)")
    assert not verify(records, expected_head=(0, "a" * 64)).ok
    with pytest.raises(ValueError, match="expected_head"):
        verify(records, expected_head=(-1, GENESIS))


def test_the_key_is_never_shown() -> None:
    from migrate.audit.chain import _Mac

    assert repr(_Mac(KEY)) == "<audit key>"
    assert not hasattr(_Mac(KEY), "__dict__")  # no attribute to hold the key


# ---------------------------------------------------------------------------------------
# JSON Lines.


def test_jsonl_round_trip() -> None:
    records = seal_many([_row(seq) for seq in range(1, 4)], GENESIS, KEY)
    lines = list(to_jsonl(records))
    assert all("\n" not in line for line in lines)  # the writer adds the line break
    assert lines[0] == _reference_json(dataclasses.asdict(records[0])).decode()
    assert list(from_jsonl(lines)) == records
    assert list(from_jsonl(line + "\n" for line in lines)) == records
    assert list(from_jsonl(line + "\r\n" for line in lines)) == records
    assert list(from_jsonl((line + "\n").encode() for line in lines)) == records


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "empty line"),
        ("not json", "not JSON at column 1"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"seq": 1}', "missing field 'actor'"),
        ("[" * 100_000, "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_line_that_is_not_a_record(line: str | bytes, problem: str) -> None:
    good = next(to_jsonl([seal(_row(1), GENESIS, None)]))
    with pytest.raises(AuditFormatError) as raised:
        list(from_jsonl([good, line, good]))  # not trailing: a record follows
    assert raised.value.line_number == 2
    assert raised.value.problem.startswith(f"not a record ({problem}")
    assert str(raised.value).startswith("line 2: not a record")
    with pytest.raises(AuditFormatError, match=r"line 2: not a record \(trailing garbage: "):
        list(from_jsonl([good, line, "", "junk"]))  # nothing but garbage after it


def test_a_hash_in_upper_case_is_not_a_record() -> None:
    """Hex case is part of the bytes: a flipped case bit must not slip through."""
    line = next(to_jsonl([seal(_row(1), GENESIS, None)]))
    record = json.loads(line)
    record["hash"] = record["hash"].upper()
    with pytest.raises(AuditFormatError, match="'hash' must be 64 lowercase hex"):
        list(from_jsonl([_reference_json(record).decode()]))


# ---------------------------------------------------------------------------------------
# Properties.

texts = st.text(max_size=12)  # any code point but surrogates: quotes, controls, emoji...
optional = st.none() | texts
moments = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
contents = st.fixed_dictionaries(
    {
        "at": moments.map(format_at),
        "actor": st.text(min_size=1, max_size=12),
        "command": st.sampled_from(["stage", "commit", "reconcile", "withdraw"]),
        "batch": optional,
        "installation_id": optional,
        "idempotency_key": optional,
        "from_state": optional,
        "to_state": optional,
        "reason": optional,
        "inputs": st.dictionaries(texts, texts, max_size=3),
    }
)
keys = st.none() | st.binary(min_size=1, max_size=80)


def _numbered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "seq": seq} for seq, row in enumerate(rows, start=1)]


@settings(max_examples=200, deadline=None)
@given(contents, st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_canonical_bytes_is_json_dumps(row: dict[str, Any], prev_hash: str) -> None:
    fields = {**row, "seq": 7, "prev_hash": prev_hash}
    assert canonical_bytes(fields) == _reference_json(fields)


@settings(max_examples=100, deadline=None)
@given(st.lists(contents, max_size=8), keys)
def test_any_valid_chain_verifies(rows: list[dict[str, Any]], key: bytes | None) -> None:
    records = seal_many(_numbered(rows), GENESIS, key)
    head = (len(records), records[-1].hash if records else GENESIS)
    assert verify(records, key, head) == Verification(
        True, len(records), records[-1].hash if records else None, None, None
    )
    read_back = list(from_jsonl(line + "\n" for line in to_jsonl(records)))
    assert read_back == records
    assert verify(read_back, key, head).ok


@settings(max_examples=300, deadline=None)
@given(st.lists(contents, min_size=1, max_size=4), st.data())
def test_any_changed_byte_is_caught(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    """One byte of a JSONL log changed, anywhere, line breaks included: the log no longer
    verifies (with the key: without one a mac is not read), and the fault is named at the
    line changed (a record, or a line that is not one)."""
    records = seal_many(_numbered(rows), GENESIS, KEY)
    log = "".join(line + "\n" for line in to_jsonl(records)).encode()
    position = data.draw(st.integers(0, len(log) - 1), label="position")
    change = data.draw(st.integers(1, 255), label="xor")
    mutated = bytearray(log)
    mutated[position] ^= change
    result = verify(from_jsonl(io.BytesIO(bytes(mutated))), key=KEY)
    assert not result.ok
    assert result.first_bad_seq == log.count(b"\n", 0, position) + 1


# ---------------------------------------------------------------------------------------
# The key.

SECRET = "5eC7e7" + "0123456789abcdef" * 4  # 70 hex digits, mixed case


def test_audit_key_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATE_AUDIT_KEY", raising=False)
    assert audit_key() is None


def test_audit_key_is_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATE_AUDIT_KEY", f"  {SECRET}\n")
    assert audit_key() == bytes.fromhex(SECRET)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "set but empty"),
        ("   ", "set but empty"),
        ("correct horse battery staple" * 3, "not hex"),
        (SECRET[:-1], "not hex"),
        (SECRET[:62], "too short"),
    ],
)
def test_audit_key_refuses_a_bad_value_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str, message: str
) -> None:
    monkeypatch.setenv("MIGRATE_AUDIT_KEY", value)
    with pytest.raises(ConfigError, match=message) as raised:
        audit_key()
    shown = str(raised.value) + repr(raised.value) + repr(raised.value.__cause__)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    if value.strip():
        assert value.strip() not in shown and value.strip()[:16] not in shown
    assert not caplog.records


def test_fields_are_the_dataclass_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(AuditRecord)) == FIELDS
