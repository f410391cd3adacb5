"""Request moves: the state change and its audit record together, or neither."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text

from migrate.plan import make_plan
from migrate.store import audit_log
from migrate.store.engine import make_engine, upgrade
from migrate.store.moves import Move, StaleState, apply_moves
from migrate.store.schema import requests
from migrate.store.staging import stage
from migrate.store.states import IllegalTransition, RequestState

REPO = Path(__file__).resolve().parents[2]
S = RequestState


@pytest.fixture
def staged(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    extract = tmp_path / "secure.csv"
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", extract)
    plan = tmp_path / "plan.json"
    make_plan([extract], "secure_moc_installations", "moc").write(plan)
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, plan, batch="b1", actor="tester", key=None)
    yield engine
    engine.dispose()


def _requests(engine, count: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        rows = connection.execute(
            select(requests.c.idempotency_key, requests.c.installation_id)
            .order_by(requests.c.idempotency_key)
            .limit(count)
        ).all()
    return [(k, i) for k, i in rows]


def _moves(
    rows: list[tuple[str, str]], source: RequestState, target: RequestState, **kw: object
) -> list[Move]:
    return [Move(k, "b1", i, source, target, **kw) for k, i in rows]  # type: ignore[arg-type]


def _state(engine, key: str) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        row = connection.execute(
            select(requests.c.state, requests.c.attempts).where(requests.c.idempotency_key == key)
        ).one()
    return row.state, row.attempts


def test_moves_change_state_and_append_their_audit_records(staged) -> None:  # type: ignore[no-untyped-def]
    rows = _requests(staged, 3)
    with staged.connect() as connection:
        before = audit_log.head(connection)
    with staged.begin() as connection:
        head = apply_moves(
            connection,
            _moves(rows, S.STAGED, S.SUBMITTING, attempted=True),
            actor="worker-1",
            command="commit",
            inputs={},
            key=None,
        )
    assert head == before[0] + 3
    assert all(_state(staged, k) == ("SUBMITTING", 1) for k, _ in rows)
    with staged.connect() as connection:
        records = list(audit_log.records(connection))[-3:]
        assert audit_log.verify_log(connection, None).ok
    assert [(r.idempotency_key, r.from_state, r.to_state, r.actor) for r in records] == [
        (k, "STAGED", "SUBMITTING", "worker-1") for k, _ in rows
    ]


def test_an_illegal_move_writes_nothing(staged) -> None:  # type: ignore[no-untyped-def]
    rows = _requests(staged, 2)
    with pytest.raises(IllegalTransition), staged.begin() as connection:
        apply_moves(
            connection,
            _moves(rows, S.STAGED, S.MIGRATED),
            actor="w",
            command="commit",
            inputs={},
            key=None,
        )
    assert all(_state(staged, k) == ("STAGED", 0) for k, _ in rows)


def test_a_request_moved_by_someone_else_rolls_back_the_whole_set(staged) -> None:  # type: ignore[no-untyped-def]
    rows = _requests(staged, 3)
    with staged.begin() as connection:
        apply_moves(
            connection,
            _moves(rows[:1], S.STAGED, S.WITHDRAWN),
            actor="op",
            command="withdraw",
            inputs={},
            key=None,
        )
    with staged.connect() as connection:
        head = audit_log.head(connection)
    with pytest.raises(StaleState) as caught, staged.begin() as connection:
        apply_moves(
            connection,
            _moves(rows, S.STAGED, S.SUBMITTING),
            actor="w",
            command="commit",
            inputs={},
            key=None,
        )
    assert caught.value.keys == [rows[0][0]]
    assert [_state(staged, k)[0] for k, _ in rows] == ["WITHDRAWN", "STAGED", "STAGED"]
    with staged.connect() as connection:
        assert audit_log.head(connection) == head
        assert audit_log.verify_log(connection, None).ok


def test_values_written_by_the_driver_read_back_as_sqlalchemy_writes_them(staged) -> None:  # type: ignore[no-untyped-def]
    """The bulk path hands datetimes to the driver itself: they must read back through the
    table's types as values written through SQLAlchemy do."""
    import datetime as dt

    from sqlalchemy import insert

    from migrate.store.bulk import driver_value, execute_many
    from migrate.store.schema import attempts

    (first, _), (second, _) = _requests(staged, 2)
    at = dt.datetime(2026, 11, 29, 12, 30, 1, 123456, tzinfo=dt.UTC)
    with staged.begin() as connection:
        connection.execute(insert(attempts).values(idempotency_key=first, attempt=1, started_at=at))
        execute_many(
            connection,
            "INSERT INTO attempts (idempotency_key, attempt, started_at) VALUES (?, ?, ?)",
            [(second, 1, driver_value(connection, attempts.c.started_at, at))],
        )
        found = dict(
            connection.execute(select(attempts.c.idempotency_key, attempts.c.started_at)).all()
        )
        raw = connection.execute(text("SELECT started_at FROM attempts")).scalars().all()
    assert found[first] == found[second]
    assert found[second].replace(tzinfo=found[second].tzinfo or dt.UTC) == at
    assert raw[0] == raw[1]


def test_moves_that_follow_on_are_one_update_and_a_record_each(staged) -> None:  # type: ignore[no-untyped-def]
    rows = _requests(staged, 2)
    chain = [
        *_moves(rows, S.STAGED, S.SUBMITTING),
        *_moves(rows, S.SUBMITTING, S.ACCEPTED, attempted=True),
        *_moves(rows, S.ACCEPTED, S.FAILED, reason="NO_WAN_DURING_MIGRATION", retryable=True),
        *_moves(rows, S.FAILED, S.STAGED, reason="NO_WAN_DURING_MIGRATION"),
    ]
    with staged.begin() as connection:
        apply_moves(connection, chain, actor="w", command="commit", inputs={}, key=None)
    assert all(_state(staged, k) == ("STAGED", 1) for k, _ in rows)
    with staged.connect() as connection:
        records = list(audit_log.records(connection))[-8:]
        assert audit_log.verify_log(connection, None).ok
    assert [(r.from_state, r.to_state) for r in records if r.idempotency_key == rows[0][0]] == [
        ("STAGED", "SUBMITTING"),
        ("SUBMITTING", "ACCEPTED"),
        ("ACCEPTED", "FAILED"),
        ("FAILED", "STAGED"),
    ]
    broken = [*_moves(rows[:1], S.STAGED, S.SUBMITTING), *_moves(rows[:1], S.ACCEPTED, S.MIGRATED)]
    with pytest.raises(IllegalTransition), staged.begin() as connection:
        apply_moves(connection, broken, actor="w", command="commit", inputs={}, key=None)


def test_staged_and_moved_requests_keep_one_time_format(staged) -> None:  # type: ignore[no-untyped-def]
    """Staging's bulk path and the moves write updated_at alike, so that comparing the
    stored text in SQL orders them truly."""
    rows = _requests(staged, 1)
    with staged.begin() as connection:
        apply_moves(
            connection, _moves(rows, S.STAGED, S.WITHDRAWN), actor="w", command="withdraw",
            inputs={}, key=None,
        )  # fmt: skip
        values = connection.execute(text("SELECT updated_at FROM requests")).scalars().all()
    if staged.dialect.name == "sqlite":
        assert {len(value) for value in values} == {len("2026-11-29 13:01:02.345678")}
