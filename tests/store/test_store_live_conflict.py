"""A new device set for an installation (a new request key) is not staged beside its old
request while that one is still live: both would be sent, a double enrolment. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from migrate.plan import make_plan
from migrate.store import audit_log
from migrate.store.bulk import CHUNK, where_in_statement
from migrate.store.engine import make_engine, upgrade
from migrate.store.interventions import requeue_failed, withdraw
from migrate.store.moves import Move, apply_moves
from migrate.store.schema import audit, batches, devices, installations, requests
from migrate.store.staging import LIVE_COLUMNS, LiveRequestConflict, stage
from migrate.store.states import RequestState

REPO = Path(__file__).resolve().parents[2]
S = RequestState
SUBJECT = "SEC0000002"
# SEC0000002's gas meter on firmware 3.2 instead of 3.1: still eligible, a new request key.
OLD_ROW = "SEC0000002,SECURE-SMSO,BGAS,"
OLD_GAS = "Cirrus G4,3.1,"
NEW_GAS = "Cirrus G4,3.2,"


def _plan(folder: Path, extract_text: str) -> Path:
    folder.mkdir()
    extract = folder / "secure.csv"
    extract.write_text(extract_text)
    path = folder / "plan.json"
    make_plan([extract], "secure_moc_installations", "moc").write(path)
    return path


def _new_firmware(text: str, *, every: bool = False) -> str:
    """The extract with the gas firmware moved on, for SEC0000002 only or for every meter."""
    if every:
        return text.replace(OLD_GAS, NEW_GAS)
    lines = text.splitlines(keepends=True)
    changed = [
        line.replace(OLD_GAS, NEW_GAS) if line.startswith(OLD_ROW) else line for line in lines
    ]
    assert changed != lines
    return "".join(changed)


@pytest.fixture
def original(tmp_path: Path) -> str:
    return (REPO / "examples" / "secure_moc_installations.csv").read_text()


@pytest.fixture
def store(db_url: str, tmp_path: Path, original: str):  # type: ignore[no-untyped-def]
    """A store holding the Secure MOC sample staged as batch moc-1."""
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, _plan(tmp_path / "first", original), batch="moc-1", actor="tester", key=None)
    yield engine
    engine.dispose()


@pytest.fixture
def later(tmp_path: Path, original: str) -> Path:
    """A plan of the re-sent extract in which SEC0000002's gas firmware changed."""
    return _plan(tmp_path / "later", _new_firmware(original))


def _keys(plan: Path) -> dict[str, str]:
    entries = json.loads(plan.read_text())["eligible"]
    return {e["payload"]["installation_id"]: e["idempotency_key"] for e in entries}


def _snapshot(engine: Engine) -> tuple[object, ...]:
    """What staging writes: row counts, the audit head and every request's state."""
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (batches, installations, devices, requests, audit)
        )
        states = sorted(
            (key, state)
            for key, state in connection.execute(
                select(requests.c.idempotency_key, requests.c.state)
            )
        )
        return counts, audit_log.head(connection), states


def _move(engine: Engine, installation: str, *chain: RequestState) -> None:
    """Walk the installation's request in batch moc-1 along the states given, as a commit
    would, through the store's own moves."""
    with engine.connect() as connection:
        key = connection.execute(
            select(requests.c.idempotency_key).where(
                requests.c.batch == "moc-1", requests.c.installation_id == installation
            )
        ).scalar_one()
    moves = [
        Move(
            key,
            "moc-1",
            installation,
            source,
            target,
            reason="DCC_REJECTED" if target == S.FAILED else None,
            attempted=target == S.ACCEPTED,
            retryable=False if target == S.FAILED else None,
        )
        for source, target in pairwise(chain)
    ]
    with engine.begin() as connection:
        apply_moves(connection, moves, actor="worker", command="commit", inputs={}, key=None)


def test_a_new_device_set_beside_a_staged_request_is_refused_and_nothing_is_written(  # type: ignore[no-untyped-def]
    store, later: Path
) -> None:
    before = _snapshot(store)
    with pytest.raises(LiveRequestConflict) as caught:
        stage(store, later, batch="moc-2", actor="tester", key=None)
    assert caught.value.installations == [SUBJECT]
    assert caught.value.conflicts == [(SUBJECT, "moc-1", "STAGED")]
    message = str(caught.value)
    assert message.startswith("1 installation(s) already have a request that is not WITHDRAWN")
    assert f"{SUBJECT} (moc-1, STAGED)" in message
    assert "migrate withdraw --batch BATCH --installation ID" in message
    assert "then stage again" in message
    assert "FAILED" not in message and "MIGRATED" not in message
    assert _snapshot(store) == before
    with store.connect() as connection:
        assert audit_log.verify_log(connection, None).ok


@pytest.mark.parametrize(
    ("chain", "state", "advice"),
    [
        ((S.STAGED, S.SUBMITTING, S.ACCEPTED, S.MIGRATED), "MIGRATED", "already enrolled"),
        ((S.STAGED, S.SUBMITTING, S.FAILED), "FAILED", "`migrate requeue --batch BATCH"),
        ((S.STAGED, S.SUBMITTING, S.ACCEPTED), "ACCEPTED", "wait for its outcome"),
        ((S.STAGED, S.SUBMITTING), "SUBMITTING", "wait for its outcome"),
    ],
)
def test_an_old_request_sent_migrated_or_failed_still_refuses_the_new_one(  # type: ignore[no-untyped-def]
    store, later: Path, chain: tuple[RequestState, ...], state: str, advice: str
) -> None:
    _move(store, SUBJECT, *chain)
    before = _snapshot(store)
    with pytest.raises(LiveRequestConflict) as caught:
        stage(store, later, batch="moc-2", actor="tester", key=None)
    assert f"{SUBJECT} (moc-1, {state})" in str(caught.value)
    assert advice in str(caught.value)
    assert _snapshot(store) == before


def test_once_the_old_request_is_withdrawn_the_new_one_stages(store, later: Path) -> None:  # type: ignore[no-untyped-def]
    withdraw(store, "moc-1", installations=[SUBJECT], actor="tester", key=None)
    result = stage(store, later, batch="moc-2", actor="tester", key=None)
    assert (result.staged, result.already) == (1, 305)
    with store.connect() as connection:
        rows = connection.execute(
            select(requests.c.batch, requests.c.state, requests.c.idempotency_key)
            .where(requests.c.installation_id == SUBJECT)
            .order_by(requests.c.batch)
        ).all()
        assert audit_log.verify_log(connection, None).ok
    assert [(b, s) for b, s, _ in rows] == [("moc-1", "WITHDRAWN"), ("moc-2", "STAGED")]
    assert rows[1].idempotency_key == _keys(later)[SUBJECT]
    # And staging it again is idempotent: the withdrawn request does not count, the new one is
    # its own key.
    again = stage(store, later, batch="moc-2", actor="tester", key=None)
    assert (again.staged, again.already) == (0, 306)


def test_a_failed_old_request_is_requeued_then_withdrawn_as_the_message_says(  # type: ignore[no-untyped-def]
    store, later: Path
) -> None:
    """FAILED -> WITHDRAWN is not a transition: the remedy the message gives must work."""
    _move(store, SUBJECT, S.STAGED, S.SUBMITTING, S.FAILED)
    with pytest.raises(LiveRequestConflict):
        stage(store, later, batch="moc-2", actor="tester", key=None)
    requeue_failed(store, "moc-1", installations=[SUBJECT], actor="tester", key=None)
    withdraw(store, "moc-1", installations=[SUBJECT], actor="tester", key=None)
    assert stage(store, later, batch="moc-2", actor="tester", key=None).staged == 1


def test_restaging_the_same_plan_is_still_idempotent(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "first" / "plan.json"
    before = _snapshot(store)
    again = stage(store, plan, batch="moc-1", actor="tester", key=None)
    assert (again.staged, again.already) == (0, 306)
    assert _snapshot(store) == before


def test_every_conflict_is_counted_and_the_first_ten_named(  # type: ignore[no-untyped-def]
    store, tmp_path: Path, original: str
) -> None:
    plan = _plan(tmp_path / "every", _new_firmware(original, every=True))
    old, new = _keys(tmp_path / "first" / "plan.json"), _keys(plan)
    moved = sorted(i for i in new if new[i] != old.get(i))
    assert len(moved) > 10 and all(i in old for i in moved)
    with pytest.raises(LiveRequestConflict) as caught:
        stage(store, plan, batch="moc-all", actor="tester", key=None)
    assert caught.value.installations == moved
    message = str(caught.value)
    assert message.startswith(f"{len(moved)} installation(s) ")
    named = ", ".join(f"{i} (moc-1, STAGED)" for i in moved[:10])
    assert f": {named} ...." in message
    assert moved[10] not in message


def test_several_old_requests_of_one_installation_are_named_together() -> None:
    error = LiveRequestConflict([("I-1", "b1", "FAILED"), ("I-1", "b2", "STAGED")])
    assert error.installations == ["I-1"]
    assert str(error).startswith("1 installation(s) ")
    assert "I-1 (b1, FAILED; b2, STAGED)." in str(error)


def test_the_lookup_is_by_the_installation_index(store) -> None:  # type: ignore[no-untyped-def]
    """Bounded on a store of millions: the statement staging runs reads requests through
    requests_installation, a chunk of ids at a time, never the whole table."""
    ids = json.dumps([f"I-{n}" for n in range(CHUNK)])
    with store.begin() as connection:
        statement = where_in_statement(connection, "requests", LIVE_COLUMNS, "installation_id")
        cursor = connection.connection.driver_connection.cursor()
        if store.dialect.name == "postgresql":
            # The sample is too small for the planner to prefer an index on its own.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {statement}", (ids,))
            plan = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", (ids,))
            plan = [row[-1] for row in cursor.fetchall()]
        cursor.close()
    assert any("requests_installation" in line for line in plan), plan
