"""The audit log's core: records sealed into a hash chain, and the check that names the first
record that was altered, removed, inserted or reordered.

Pure on purpose: the store keeps the records and the head in its own tables and calls these
functions inside its transactions; the same functions check an exported JSONL file.

The format, so that a log can be re-checked without this code:

- content: the record minus hash and mac, as JSON with sorted keys, separators "," and ":",
  no ASCII escaping, in UTF-8 (`canonical_bytes`);
- sealed bytes: the 32 raw bytes of prev_hash, then the content (prev_hash is inside the
  content too; a fixed-length prefix cannot run into the JSON);
- hash: SHA-256 of the sealed bytes, lowercase hex; mac: HMAC-SHA256 of the same bytes under
  the key, lowercase hex, or None when there is no key;
- record 1 has prev_hash GENESIS; record n has prev_hash equal to record n-1's hash;
- a store keeps inputs as text, `inputs_text` (sorted keys, compact, ASCII-escaped). The hash
  covers their value, not that text, so a record whose text is anything else (a repeated key,
  spacing) is a bad record, although it reads back as the same value (`inputs_value`).

What each part catches:

- the chain: an edit, a deletion, an insertion or a reordering inside the log. Not a rewrite
  from some record to the end with its hashes recomputed (anyone can compute SHA-256), and not
  a cut tail (what is left is still a valid chain);
- the head (seq, hash) that the store keeps apart and moves in the same transaction: a cut
  tail and a re-sealed tail, unless the head row was rewritten too;
- the mac: any record written or re-sealed without the key, whatever else was rewritten.

A cut tail with the head rolled back to match it beats all three: only a copy of the head
kept outside the database (a report, a ticket) catches that, as CT's witnesses do.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from hmac import compare_digest
from json.encoder import encode_basestring as _quote

GENESIS = "0" * 64

# Every field of a record, in the dataclass's order.
FIELDS = (
    "seq",
    "at",
    "actor",
    "command",
    "batch",
    "installation_id",
    "idempotency_key",
    "from_state",
    "to_state",
    "reason",
    "inputs",
    "prev_hash",
    "hash",
    "mac",
)
_GIVEN = frozenset(FIELDS[:-3])  # what the caller gives seal: not prev_hash, hash, mac
_CONTENT = frozenset(FIELDS[:-2])  # what canonical_bytes covers: not hash, mac
_ALL = frozenset(FIELDS)

_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")

# The reference serialisation: the JSON lines of an export, and the definition the fast
# content builder below must match byte for byte (the tests hold it to that).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The stored spelling of a record's inputs (inputs_text): ASCII-escaped, as stores hold it.
_STORED = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class AuditRecord:
    """One sealed record. Made by seal or seal_many; the store may also build one from its
    row when reading back (the constructor checks nothing: verify does, and reports a bad
    record rather than raising)."""

    seq: int
    at: str
    actor: str
    command: str
    batch: str | None
    installation_id: str | None
    idempotency_key: str | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    # A dict cannot be hashed; equality keeps it. Read back from a store whose text is not
    # the canonical spelling of its value, it is that text (see inputs_value): verify says so.
    inputs: dict[str, str] = field(hash=False)
    prev_hash: str
    hash: str
    mac: str | None


@dataclass(frozen=True)
class Verification:
    """The outcome of verify: whether the log holds, and if not, where it first breaks."""

    ok: bool
    count: int  # records read, the first bad one included (verification stops there)
    head_hash: str | None  # the hash of the last good record; None before any
    first_bad_seq: int | None  # the seq the first bad record holds, or would hold there
    problem: str | None


class AuditFormatError(ValueError):
    """A line of a JSONL log that is not a record: names the line (1-based) and the fault."""

    def __init__(self, line_number: int, problem: str) -> None:
        self.line_number = line_number
        self.problem = problem
        super().__init__(f"line {line_number}: {problem}")


def format_at(moment: dt.datetime) -> str:
    """A moment as a record's `at`: UTC, microseconds, 'Z'. One spelling only, since `at` is
    hashed: the same moment must always give the same bytes."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no time zone: give an aware one")
    u = moment.astimezone(dt.UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def now_at() -> str:
    """Now, as a record's `at`."""
    return format_at(dt.datetime.now(dt.UTC))


# ---------------------------------------------------------------------------------------
# Field checks. One set of rules for writing and reading: a record that seal accepts is one
# that from_jsonl and verify accept, and nothing else is.


def _where(seq: object) -> str:
    return f"record {seq}" if type(seq) is int else "record"


def _text(value: object, name: str, seq: object, *, optional: bool) -> str | None:
    """A string field, as a plain str (a StrEnum such as RequestState becomes its value, so a
    record read back equals the one written)."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        value = str.__str__(value)
        if value or optional:
            return value
        raise ValueError(f"{_where(seq)}: field {name!r} is empty")
    kind = "a string or None" if optional else "a string"
    raise ValueError(f"{_where(seq)}: field {name!r} must be {kind}, not {type(value).__name__}")


@lru_cache(maxsize=1024)
def _at_ok(value: str) -> bool:
    """Whether `at` is spelled as format_at spells it, on a day that exists (2026-02-31 has
    the right shape). Cached: the records of one transaction share their time."""
    if not _AT.fullmatch(value):
        return False
    try:
        dt.datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return True


def _at(value: object, seq: object) -> str:
    text = _text(value, "at", seq, optional=False)
    if text is not None and _at_ok(text):
        return text
    raise ValueError(
        f"{_where(seq)}: field 'at' must be UTC ISO-8601 as 2026-11-29T10:04:06.123456Z"
    )


def inputs_text(inputs: Mapping[str, str]) -> str:
    """A record's inputs as a store keeps them: JSON, sorted keys, compact, ASCII-escaped.
    The hash covers the mapping, not this text, so this is its only spelling: a store reads
    back exactly this or reports the record (inputs_value)."""
    return _STORED.encode(dict(inputs))


def inputs_value(text: str) -> object:
    """The value a store's inputs text holds when the text is its canonical spelling, else
    the text itself, which verify reports: a repeated key, reordered keys or spacing would
    otherwise read back as the same mapping, and the edit would verify."""
    try:
        value = json.loads(text)
        canonical = _STORED.encode(value)
    except (ValueError, RecursionError):
        return text
    return value if canonical == text else text


def _inputs(value: object, seq: object) -> dict[str, str]:
    """The input hashes as a new dict in key order: the caller's dict may change later."""
    if type(value) is dict and len(value) == 1:  # the usual case, without the general path
        ((name, digest),) = value.items()
        if type(name) is str and type(digest) is str:
            return {name: digest}
    if isinstance(value, str):
        raise ValueError(
            f"{_where(seq)}: field 'inputs' is text, not a mapping: stored inputs that are not "
            "exactly their canonical JSON were altered"
        )
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{_where(seq)}: field 'inputs' must be a mapping of names to hashes, "
            f"not {type(value).__name__}"
        )
    pairs = []
    for name, digest in value.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise ValueError(f"{_where(seq)}: field 'inputs' must map strings to strings")
        pairs.append((str.__str__(name), str.__str__(digest)))
    pairs.sort()
    return dict(pairs)


def _hex64(value: object, name: str, seq: object) -> str:
    if type(value) is str and _HEX64.fullmatch(value):
        return value
    raise ValueError(f"{_where(seq)}: field {name!r} must be 64 lowercase hex digits")


def _keys(fields: Mapping[str, object], wanted: frozenset[str]) -> None:
    """Raises ValueError naming the missing and unexpected fields, if any."""
    have = set(fields.keys())
    if have == wanted:
        return
    parts = [f"missing field {name!r}" for name in sorted(wanted - have)]
    parts += [f"unexpected field {name!r}" for name in sorted(map(str, have - wanted))]
    if len(parts) > 3:
        parts[3:] = [f"{len(parts) - 3} more"]
    raise ValueError(f"{_where(fields.get('seq'))}: {', '.join(parts)}")


_PREFIX = re.compile(r"record(?: [0-9]+)?: ")


def _detail(error: ValueError) -> str:
    """A field check's message without its "record N: " (the caller says where)."""
    return _PREFIX.sub("", str(error), count=1)


def _prepare(f: Mapping[str, object], prev_hash: str) -> tuple[dict[str, object], bytes]:
    """The given fields (all but prev_hash, hash, mac) checked and normalised, as a new dict
    with prev_hash added, and the canonical content bytes. One function, the common case
    tested first: seal_many runs it for every record of a batch. The caller checks prev_hash.
    """
    values = dict(f)  # the record's own dict: cheaper than a literal of twelve keys
    try:
        if len(values) != len(_GIVEN):
            raise KeyError
        seq, at, actor, command = values["seq"], values["at"], values["actor"], values["command"]
        batch, inst = values["batch"], values["installation_id"]
        key, src, dst = values["idempotency_key"], values["from_state"], values["to_state"]
        reason, inputs = values["reason"], values["inputs"]
    except KeyError:
        _keys(f, _GIVEN)
        raise
    if type(seq) is not int or seq < 1:
        raise ValueError(f"record: field 'seq' must be an integer from 1, not {seq!r}")
    # The common case costs two type tests a field; only a value that is not a plain str
    # (a StrEnum, or something wrong) takes the slow path, which normalises or raises.
    if type(at) is not str or not _at_ok(at):
        at = values["at"] = _at(at, seq)
    if type(actor) is not str or not actor:
        actor = values["actor"] = _text(actor, "actor", seq, optional=False)
    if type(command) is not str or not command:
        command = values["command"] = _text(command, "command", seq, optional=False)
    if batch is not None and type(batch) is not str:
        batch = values["batch"] = _text(batch, "batch", seq, optional=True)
    if inst is not None and type(inst) is not str:
        inst = values["installation_id"] = _text(inst, "installation_id", seq, optional=True)
    if key is not None and type(key) is not str:
        key = values["idempotency_key"] = _text(key, "idempotency_key", seq, optional=True)
    if src is not None and type(src) is not str:
        src = values["from_state"] = _text(src, "from_state", seq, optional=True)
    if dst is not None and type(dst) is not str:
        dst = values["to_state"] = _text(dst, "to_state", seq, optional=True)
    if reason is not None and type(reason) is not str:
        reason = values["reason"] = _text(reason, "reason", seq, optional=True)
    inputs = values["inputs"] = _inputs(inputs, seq)
    values["prev_hash"] = prev_hash
    if len(inputs) == 1:
        ((name, digest),) = inputs.items()
        ins = _quote(name) + ":" + _quote(digest)
    else:
        ins = ",".join([_quote(name) + ":" + _quote(digest) for name, digest in inputs.items()])
    # The canonical JSON built directly, keys in sorted order: json.dumps with sort_keys costs
    # three times as much. The tests hold it to json.dumps byte for byte.
    text = (
        f'{{"actor":{_quote(actor)},"at":"{at}",'
        f'"batch":{"null" if batch is None else _quote(batch)},'
        f'"command":{_quote(command)},'
        f'"from_state":{"null" if src is None else _quote(src)},'
        f'"idempotency_key":{"null" if key is None else _quote(key)},'
        f'"inputs":{{{ins}}},'
        f'"installation_id":{"null" if inst is None else _quote(inst)},'
        f'"prev_hash":"{prev_hash}",'
        f'"reason":{"null" if reason is None else _quote(reason)},'
        f'"seq":{seq},'
        f'"to_state":{"null" if dst is None else _quote(dst)}}}'
    )
    try:
        content = text.encode()
    except UnicodeEncodeError:
        raise ValueError(f"record {seq}: a value holds a lone surrogate (not Unicode)") from None
    return values, content


def canonical_bytes(fields: Mapping[str, object]) -> bytes:
    """The record minus hash and mac as canonical JSON in UTF-8: the bytes that are hashed
    (after the 32 bytes of prev_hash). Raises ValueError for a field that a record cannot
    hold, so that nothing is sealed that a reader would refuse."""
    _keys(fields, _CONTENT)
    given = {name: value for name, value in fields.items() if name != "prev_hash"}
    return _prepare(given, _hex64(fields["prev_hash"], "prev_hash", fields["seq"]))[1]


# ---------------------------------------------------------------------------------------
# Sealing.


class _Mac:
    """HMAC-SHA256 with the key's pads hashed once: per record it is then two hash copies,
    half the cost of hmac.new. Keeps no copy of the key, so nothing can print it."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray):
            raise TypeError(f"the audit key must be bytes, not {type(key).__name__}")
        if not key:
            raise ValueError("the audit key is empty")
        block = bytes(key)
        if len(block) > 64:  # RFC 2104: a key longer than the block is hashed first
            block = hashlib.sha256(block).digest()
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, data: bytes) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "<audit key>"


_new = object.__new__
_set = object.__setattr__


def _record(values: dict[str, object]) -> AuditRecord:
    """A record from its checked fields, without the frozen dataclass's 14 guarded
    attribute writes (nearly 2 µs a record; this takes 0.25). `values` holds exactly FIELDS."""
    record = _new(AuditRecord)
    _set(record, "__dict__", values)
    return record


def seal(fields: Mapping[str, object], prev_hash: str, key: bytes | None) -> AuditRecord:
    """One record chained to prev_hash (the head's hash, or GENESIS for record 1).

    `fields` holds every field but prev_hash, hash and mac. Raises ValueError for a field a
    record cannot hold, or a seq that cannot follow prev_hash."""
    return seal_many([fields], prev_hash, key)[0]


def seal_many(
    rows: Sequence[Mapping[str, object]], prev_hash: str, key: bytes | None
) -> list[AuditRecord]:
    """A run of records chained one to the next, the first to prev_hash: what one transaction
    appends. Seqs must be consecutive; record 1 goes with GENESIS and only with it.

    Nothing is returned unless every row is good, so the caller can insert all or none."""
    prev_hash = _hex64(prev_hash, "prev_hash", None)
    mac = None if key is None else _Mac(key)
    # Each record is two new tracked objects, none in a cycle: the collector's passes over
    # them would cost over a third of the time and reclaim nothing. Another thread meanwhile only
    # sees its collection come late; the previous setting is restored.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _seal_run(rows, prev_hash, mac)
    finally:
        if collecting:
            gc.enable()


def _seal_run(
    rows: Sequence[Mapping[str, object]], prev_hash: str, mac: _Mac | None
) -> list[AuditRecord]:
    sha256, new, set_dict = hashlib.sha256, object.__new__, object.__setattr__
    prefix = bytes.fromhex(prev_hash)
    sealed: list[AuditRecord] = []
    append = sealed.append
    expected = -1
    for fields in rows:
        values, content = _prepare(fields, prev_hash)
        seq = values["seq"]
        if expected == -1:
            if (seq == 1) != (prev_hash == GENESIS):
                raise ValueError(
                    f"record {seq}: record 1 must follow GENESIS, and only record 1 may"
                )
        elif seq != expected:
            raise ValueError(f"record {seq}: rows must be consecutive, expected seq {expected}")
        expected = seq + 1
        data = prefix + content
        digest = sha256(data).digest()
        hash_ = digest.hex()
        values["hash"] = hash_
        values["mac"] = None if mac is None else mac(data)
        record = new(AuditRecord)  # as _record does, without the call
        set_dict(record, "__dict__", values)
        append(record)
        prefix, prev_hash = digest, hash_
    return sealed


# ---------------------------------------------------------------------------------------
# Verifying.


def sealed_with(record: AuditRecord, key: bytes) -> bool:
    """Whether the record's MAC is the one this key gives: a writer checks its key against
    the log's last record before extending it, so that a wrong key is refused at once rather
    than found later as if someone had tampered with the log."""
    if record.mac is None:
        return False
    return hmac.compare_digest(
        _Mac(key)(_sealed_bytes(record, bytes.fromhex(record.prev_hash))), record.mac
    )


def _sealed_bytes(record: AuditRecord, prefix: bytes) -> bytes:
    """The bytes the record's hash and mac cover, recomputed from its fields."""
    fields = dict(vars(record))
    del fields["prev_hash"], fields["hash"], fields["mac"]
    return prefix + _prepare(fields, record.prev_hash)[1]


def _record_problem(
    record: AuditRecord, n: int, prev_hash: str, prefix: bytes, mac: _Mac | None
) -> str | None:
    """What is wrong with record n given the good record before it, or None."""
    seq = record.seq
    if type(seq) is not int:
        return f"record {n}: seq is not an integer"
    if seq != n:
        how = "deleted" if seq > n else "inserted"
        return (
            f"record {n}: expected seq {n}, found {seq} (a record was {how} or the log reordered)"
        )
    if record.prev_hash != prev_hash:
        before = "the genesis hash" if n == 1 else f"record {n - 1}"
        return f"record {n}: prev_hash does not match {before}"
    try:
        data = _sealed_bytes(record, prefix)
    except ValueError as error:
        return f"record {n}: not a well-formed record ({_detail(error)})"
    except KeyError as error:  # a field missing from the record's __dict__
        return f"record {n}: not a well-formed record (no field {error})"
    if record.hash != hashlib.sha256(data).hexdigest():
        return f"record {n}: hash does not match its content"
    if mac is not None:
        if record.mac is None:
            return f"record {n}: no mac, but a key was given (written without the key)"
        given = record.mac
        if not isinstance(given, str) or not compare_digest(
            mac(data).encode(), given.encode("utf-8", "surrogatepass")
        ):
            return f"record {n}: mac does not match (wrong key or altered)"
    return None


def valid_head(expected_head: tuple[int, str]) -> tuple[int, str]:
    """The head as given, or ValueError saying why it cannot be one."""
    seq, hash_ = expected_head
    if type(seq) is not int or seq < 0:
        raise ValueError(f"expected_head: seq must be an integer from 0, not {seq!r}")
    return seq, _hex64(hash_, "hash", None)


def verify(
    records: Iterable[AuditRecord],
    key: bytes | None = None,
    expected_head: tuple[int, str] | None = None,
) -> Verification:
    """Check a log from record 1 and name the FIRST bad record: seq continuity, each
    prev_hash link, each hash, each mac when a key is given (a record without one is then
    bad; without a key macs are not read), and, given the head the store keeps apart, that
    the log reaches it with the same hash: the only way a cut or re-sealed tail shows.

    Streams: `records` may be a database cursor or from_jsonl of a file. An AuditFormatError
    from it becomes the problem; a bad record is reported, never raised."""
    mac = None if key is None else _Mac(key)
    head = None if expected_head is None else valid_head(expected_head)
    if head is not None and head[0] == 0 and head[1] != GENESIS:
        return Verification(False, 0, None, None, "the head is at record 0 but not at GENESIS")
    count = 0
    prev_hash, prefix, last = GENESIS, bytes(32), None
    stream = iter(records)
    while True:
        try:
            record = next(stream)
        except StopIteration:
            break
        except AuditFormatError as error:
            return Verification(False, count, last, count + 1, str(error))
        count += 1
        problem = _record_problem(record, count, prev_hash, prefix, mac)
        if problem is None and head is not None:
            if count > head[0]:
                problem = (
                    f"record {count}: beyond the head (record {head[0]}): written without "
                    "moving the head, or the head was rolled back"
                )
            elif count == head[0] and record.hash != head[1]:
                problem = (
                    f"record {count}: hash differs from the head's (records were rewritten "
                    "and re-sealed, or the head was altered)"
                )
        if problem is not None:
            return Verification(False, count, last, count, problem)
        prev_hash = last = record.hash
        prefix = bytes.fromhex(prev_hash)
    if head is not None and count < head[0]:
        where = f"ends at record {count}" if count else "is empty"
        problem = f"the log {where}, but the head said {head[0]} (truncated)"
        return Verification(False, count, last, count + 1, problem)
    return Verification(True, count, last, None, None)


# ---------------------------------------------------------------------------------------
# JSON Lines.


def _line(record: AuditRecord) -> str:
    return _JSON.encode({name: getattr(record, name) for name in FIELDS})


def to_jsonl(records: Iterable[AuditRecord]) -> Iterator[str]:
    """Each record as one canonical JSON line (sorted keys, compact, hash and mac included),
    without its line break. Writes the fields as they are: an export of a damaged store must
    show the damage, not mend it."""
    for record in records:
        yield _line(record)


def _parse(line: str | bytes) -> AuditRecord:
    """A line as a record, or ValueError saying why it is not one."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
    if line.endswith("\n"):
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    if not line.strip():
        raise ValueError("empty line")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON at column {error.colno}: {error.msg}") from None
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__}, not an object")
    try:
        _keys(obj, _ALL)
        seq = obj["seq"]
        prev_hash = _hex64(obj.pop("prev_hash"), "prev_hash", seq)
        hash_ = _hex64(obj.pop("hash"), "hash", seq)
        mac = obj.pop("mac")
        mac = None if mac is None else _hex64(mac, "mac", seq)
        values = _prepare(obj, prev_hash)[0]
    except ValueError as error:
        raise ValueError(_detail(error)) from None
    values["hash"] = hash_
    values["mac"] = mac
    record = _record(values)
    if _line(record) != line:
        # Same values, other bytes (spacing, key order, escapes, a repeated key): the line
        # was not written by to_jsonl, so it was edited.
        raise ValueError("not in canonical form")
    return record


def from_jsonl(lines: Iterable[str | bytes]) -> Iterator[AuditRecord]:
    """Records from JSON lines (with or without their line breaks; str, or bytes from a file
    opened in binary mode, which is best: it reads a stray CR as the damage it is, where
    text mode would take it for a line break). Strict: a line that is not exactly what
    to_jsonl wrote raises AuditFormatError, and verify reports it as the first bad line.
    Garbage with no record after it is called trailing garbage (an interrupted write)."""
    stream = iter(lines)
    for number, line in enumerate(stream, start=1):
        try:
            record = _parse(line)
        except ValueError as error:
            if any(_is_record(rest) for rest in stream):
                raise AuditFormatError(number, f"not a record ({error})") from None
            raise AuditFormatError(number, f"not a record (trailing garbage: {error})") from None
        yield record


def _is_record(line: str | bytes) -> bool:
    try:
        _parse(line)
    except ValueError:
        return False
    return True
