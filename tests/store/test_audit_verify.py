"""verify_log_fast gives verify_log's verdict, word for word, on good logs and on altered ones
(the fast path may only confirm; what it cannot confirm the reference describes)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from migrate.audit import Verification
from migrate.plan import make_plan
from migrate.store import audit_log, audit_verify
from migrate.store.audit_verify import verify_log_fast
from migrate.store.engine import make_engine, upgrade
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


def _tamper(engine: Engine, sql: str) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.exec_driver_sql(sql)


def _append(connection: Connection, key: bytes | None, **event: object) -> None:
    audit_log.append(
        connection,
        [{"batch": "b1", "from_state": "STAGED", "to_state": "WITHDRAWN", **event}],
        actor="op",
        command="withdraw",
        inputs={"plan": "0" * 64},
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


def test_values_that_need_escaping_or_stored_non_canonically_still_verify(logged: Logged) -> None:
    key = logged.key
    with logged.engine.begin() as connection:
        _append(connection, key, installation_id='SEC"quoted\\back\nline', reason="é\t")
    _tamper(
        logged.engine,
        'UPDATE audit SET inputs = \'{"plan": "\' || substr(inputs, 10) WHERE seq = 4',
    )
    fast, reference = _both(logged.engine, key)
    assert fast == reference and fast.ok and fast.count == 307


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
