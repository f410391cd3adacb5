"""verify_log_fast gives verify_log's verdict, word for word, on good logs and on altered ones
(the fast path may only confirm; what it cannot confirm the reference describes)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, Executable, select, update

from migrate.audit import Verification
from migrate.plan import make_plan
from migrate.store import audit_log, audit_verify
from migrate.store.audit_verify import verify_log_fast
from migrate.store.engine import make_engine, upgrade
from migrate.store.schema import audit
from migrate.store.snapshot import reader
from migrate.store.staging import stage

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))


@dataclass(frozen=True)
class Logged:
    engine: Engine
    key: bytes | None


@pytest.fixture(params=[None, KEY], ids=["unkeyed", "keyed"])
def logged(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Logged]:
    """A store whose log holds a staged sample batch (306 records), read in chunks of 50."""
    extract = tmp_path / "secure.csv"
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", extract)
    plan = tmp_path / "plan.json"
    make_plan([extract], "secure_moc_installations", "moc").write(plan)
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, plan, batch="b1", actor="tester", key=request.param)
    monkeypatch.setattr(audit_verify, "CHUNK_ROWS", 50)
    monkeypatch.setattr(audit_verify, "AHEAD_CHUNK_ROWS", 50)  # PostgreSQL's, read ahead
    yield Logged(engine, request.param)
    engine.dispose()


def _both(engine: Engine, key: bytes | None) -> tuple[Verification, Verification]:
    with engine.connect() as connection:
        return verify_log_fast(connection, key), audit_log.verify_log(connection, key)


def _tamper(engine: Engine, sql: str | Executable) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        if isinstance(sql, str):
            connection.exec_driver_sql(sql)
        else:
            connection.execute(sql)


def _append(
    connection: Connection,
    key: bytes | None,
    inputs: dict[str, str] | None = None,
    **event: object,
) -> None:
    audit_log.append(
        connection,
        [{"batch": "b1", "from_state": "STAGED", "to_state": "WITHDRAWN", **event}],
        actor="op",
        command="withdraw",
        inputs=inputs or {"plan": "0" * 64},
        key=key,
    )


def test_a_good_log_verifies_the_same(logged: Logged, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, reference = _both(logged.engine, logged.key)
    assert fast == reference and fast.ok and fast.count == 306

    def no_fallback(*_: object) -> None:
        raise AssertionError("a good log is confirmed without the record-by-record reading")

    monkeypatch.setattr(audit_verify, "verify_log", no_fallback)
    with logged.engine.connect() as connection:
        assert verify_log_fast(connection, logged.key) == reference


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit SET actor = 'mallory' WHERE seq = 120",
        "UPDATE audit SET prev_hash = hash WHERE seq = 51",
        "UPDATE audit SET hash = upper(hash) WHERE seq = 7",
        "DELETE FROM audit WHERE seq = 200",
        "DELETE FROM audit WHERE seq = 306",
        "UPDATE audit_head SET seq = 305",
        "UPDATE audit SET at = '2026-02-31T10:00:00.000000Z' WHERE seq = 3",
        "UPDATE audit SET mac = NULL WHERE seq = 9",
        "UPDATE audit SET inputs = '[1]' WHERE seq = 10",
    ],
)
def test_an_altered_log_is_described_by_the_reference(logged: Logged, sql: str) -> None:
    _tamper(logged.engine, sql)
    fast, reference = _both(logged.engine, logged.key)
    assert fast == reference


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DELETE FROM audit_head; DELETE FROM audit WHERE seq > 300", "no head row"),
        ("UPDATE audit_head SET hash = upper(hash)", "head row is damaged"),
        ("UPDATE audit_head SET hash = 'xyz'", "head row is damaged"),
        ("UPDATE audit_head SET seq = -1", "head row is damaged"),
    ],
    ids=["head-deleted-tail-cut", "head-upper-case", "head-not-a-hash", "head-negative"],
)
def test_a_missing_or_damaged_head_fails_verification_not_the_tool(
    logged: Logged, sql: str, problem: str
) -> None:
    for statement in sql.split("; "):
        _tamper(logged.engine, statement)
    fast, reference = _both(logged.engine, logged.key)
    assert fast == reference
    assert not fast.ok and problem in (fast.problem or "")


def test_a_new_store_verifies_empty(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        with engine.connect() as connection:
            assert verify_log_fast(connection, None) == Verification(True, 0, None, None, None)
    finally:
        engine.dispose()


def test_a_wrong_key_or_none_at_all_fails_the_same(logged: Logged) -> None:
    fast, reference = _both(logged.engine, bytes(32))
    assert fast == reference and not fast.ok
    assert "mac" in (fast.problem or "")


def test_values_that_need_escaping_still_verify(logged: Logged) -> None:
    key = logged.key
    with logged.engine.begin() as connection:
        _append(connection, key, installation_id='SEC"quoted\\back\nline', reason="é\t")
        _append(connection, key, {"plan": "0" * 64, "wörker": "é\x7f"})
    fast, reference = _both(logged.engine, key)
    assert fast == reference and fast.ok and fast.count == 308


STORED_INPUTS = '{"plan":"' + "0" * 64 + '","worker":"w1"}'


@pytest.mark.parametrize(
    "altered",
    [
        STORED_INPUTS.replace(":", ": ").replace(",", ", "),
        '{"worker":"w1","plan":"' + "0" * 64 + '"}',
        '{"plan":"' + "1" * 64 + '",' + STORED_INPUTS[1:],
        STORED_INPUTS.replace("w1", "w\\u0031"),
        STORED_INPUTS + " ",
    ],
    ids=["spaced", "reordered", "repeated-key", "escaped", "trailing-space"],
)
def test_inputs_text_altered_to_the_same_value_fails_at_its_record(
    logged: Logged, altered: str
) -> None:
    """The hash covers the inputs' value, not their text: a store's text that reads back as
    the same mapping must still fail, as any other changed byte does."""
    with logged.engine.begin() as connection:
        _append(connection, logged.key, {"worker": "w1", "plan": "0" * 64})
        _append(connection, logged.key, installation_id="SEC0000001")
    with logged.engine.connect() as connection:
        stored = connection.execute(select(audit.c.inputs).where(audit.c.seq == 307)).scalar()
    assert stored == STORED_INPUTS
    _tamper(logged.engine, update(audit).where(audit.c.seq == 307).values(inputs=altered))
    fast, reference = _both(logged.engine, logged.key)
    assert fast == reference and not fast.ok
    assert (fast.first_bad_seq, fast.count) == (307, 307)
    assert fast.problem == (
        "record 307: not a well-formed record (field 'inputs' is text, not a mapping: stored "
        "inputs that are not exactly their canonical JSON were altered)"
    )


def test_any_flipped_byte_of_a_stored_record_fails_at_that_record(db_url: str) -> None:
    """Every byte of every stored field of a keyed record, one at a time, each bit pattern
    kept to ASCII: verification fails naming that record (inputs were read as JSON, so a
    flip that broke the JSON stopped the tool instead)."""
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        with engine.begin() as connection:
            for n in range(3):
                _append(
                    connection, KEY, {"plan": "0" * 64, "worker": "w1"}, installation_id=f"S{n}"
                )
            row = connection.execute(select(audit).where(audit.c.seq == 2)).one()._asdict()
        for name, value in row.items():
            if not isinstance(value, str):
                continue
            for position in range(len(value)):
                for flip in (0x01, 0x20):
                    changed = chr(ord(value[position]) ^ flip)
                    altered = value[:position] + changed + value[position + 1 :]
                    _tamper(engine, update(audit).where(audit.c.seq == 2).values({name: altered}))
                    fast, reference = _both(engine, KEY)
                    assert fast == reference, (name, position, flip)
                    assert (fast.ok, fast.first_bad_seq) == (False, 2), (name, altered)
                    _tamper(engine, update(audit).where(audit.c.seq == 2).values({name: value}))
        with engine.connect() as connection:
            assert verify_log_fast(connection, KEY).ok
    finally:
        engine.dispose()


def test_a_verification_carries_on_from_an_earlier_one(logged: Logged) -> None:
    key = logged.key
    with logged.engine.connect() as connection:
        earlier = verify_log_fast(connection, key)
    with logged.engine.begin() as connection:
        for n in range(3):
            _append(connection, key, installation_id=f"SEC{n}")
    with logged.engine.connect() as connection:
        assert verify_log_fast(connection, key, after=earlier) == audit_log.verify_log(
            connection, key
        )
    _tamper(logged.engine, "UPDATE audit SET reason = 'X' WHERE seq = 308")
    with logged.engine.connect() as connection:
        carried = verify_log_fast(connection, key, after=earlier)
        assert carried == audit_log.verify_log(connection, key) and not carried.ok


def test_records_the_caller_has_not_committed_are_verified_too(logged: Logged) -> None:
    """Chunks read ahead on other connections (PostgreSQL) cannot see the caller's
    uncommitted records: the log is then not confirmed there, and the reference reads it."""
    with logged.engine.begin() as connection:
        _append(connection, logged.key, installation_id="SEC0000001")
        fast = verify_log_fast(connection, logged.key)
        reference = audit_log.verify_log(connection, logged.key)
    assert fast == reference and fast.ok and fast.count == 307


def test_a_reader_sees_one_state_of_the_log_while_a_commit_appends(logged: Logged) -> None:
    """A verification that straddles a commit must see the log before it, whole: under
    PostgreSQL's default isolation the head read first and the records read next differed,
    and a good log looked tampered with (a record beyond the head)."""
    with reader(logged.engine) as snapshot, snapshot.connect() as connection:
        kept = audit_log.head(connection)  # the reader's snapshot is taken here
        with logged.engine.begin() as writer:
            _append(writer, logged.key, installation_id="SEC0000001")
        fast = verify_log_fast(connection, logged.key)
        reference = audit_log.verify_log(connection, logged.key)
    assert fast == reference and fast.ok and (fast.count, fast.head_hash) == kept
    with logged.engine.connect() as connection:
        assert verify_log_fast(connection, logged.key).count == 307


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            "UPDATE requests SET state = 'MIGRATED', reason = NULL WHERE installation_id = '{0}'",
            "is MIGRATED in batch b1 for installation {0} in the requests table, but its last "
            "record",
        ),
        (
            "UPDATE requests SET installation_id = '{1}' WHERE installation_id = '{0}'",
            "is STAGED in batch b1 for installation {1} in the requests table, but its last record",
        ),
        (
            "DELETE FROM requests WHERE installation_id = '{0}'",
            "has records in the log (the last, seq",
        ),
    ],
    ids=["state", "installation", "deleted"],
)
def test_a_requests_table_edited_beside_a_sound_log_does_not_verify(
    logged: Logged, edit: str, problem: str
) -> None:
    """The log holds, record for record, but a request was changed or removed without its
    record: `migrate audit verify` tells, naming the request and the record."""
    from migrate.store.audit_verify import requests_against_log
    from migrate.store.schema import requests

    with logged.engine.connect() as connection:
        sound = verify_log_fast(connection, logged.key)
        assert requests_against_log(connection, sound) == sound
        first, second = connection.execute(
            select(requests.c.installation_id).order_by(requests.c.installation_id).limit(2)
        ).scalars()
    _tamper(logged.engine, edit.format(first, second))
    with logged.engine.connect() as connection:
        found = requests_against_log(connection, verify_log_fast(connection, logged.key))
    assert not found.ok and found.first_bad_seq is not None
    assert problem.format(first, second) in (found.problem or "")
    assert first in (found.problem or "")
    assert "edited beside it" in (found.problem or "")
