"""The commit engine against the real simulator over loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from processes import simulator_thread
from sqlalchemy import Engine, func, select, update

from migrate.commit.engine import CommitOptions, CommitResult, commit
from migrate.commit.gateway import (
    GatewayUnavailable,
    HttpGateway,
    Outcome,
    Receipt,
    Submission,
)
from migrate.commit.lease import WorkerLease
from migrate.errors import ConfigError
from migrate.plan import make_plan
from migrate.sim.extract_generator import generate_long_extract
from migrate.store import audit_log
from migrate.store.engine import make_engine, upgrade
from migrate.store.interventions import withdraw
from migrate.store.moves import Move, apply_moves
from migrate.store.schema import attempts, batches, capacity_use, requests
from migrate.store.staging import stage
from migrate.store.states import UNANSWERED, RequestState

S = RequestState
BATCH = "b1"
PLANS: dict[int, Path] = {}


def _plan(folder: Path, devices: int) -> Path:
    """A generated IOC estate's plan, made once per size for the whole session."""
    if devices not in PLANS:
        extract = folder / f"estate-{devices}.csv"
        generate_long_extract(extract, devices, seed=7)
        PLANS[devices] = folder / f"plan-{devices}.json"
        make_plan([extract], "landis_ioc_devices", "ioc").write(PLANS[devices])
    return PLANS[devices]


@pytest.fixture
def store(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A store holding a staged batch of about 60 installations."""
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, _plan(tmp_path_factory.getbasetemp(), 200), batch=BATCH, actor="t", key=None)
    yield engine
    engine.dispose()


def run(engine: Engine, url: str, **options: Any) -> CommitResult:
    settings = {"poll_interval_s": 0.02, "capacity_per_day": 100_000, **options}
    stop = settings.pop("stop", None)
    clock = settings.pop("clock", None)
    extra = {"clock": clock} if clock else {}
    return commit(
        engine,
        BATCH,
        lambda: HttpGateway(url, read_timeout=5),
        options=CommitOptions(**settings),
        actor="tester",
        key=None,
        gateway_name=url,
        stop=stop,
        **extra,
    )


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(requests).where(requests.c.batch == BATCH)))


def verified(engine: Engine) -> bool:
    with engine.connect() as connection:
        return audit_log.verify_log(connection, None).ok


def test_a_batch_is_committed_and_every_state_change_is_audited(
    store: Engine, tmp_path: Path
) -> None:
    with simulator_thread(tmp_path, gt01_rate=0.2, master_keys_rate=0.1) as url:
        result = run(store, url, chunk=7)
    found = rows(store)
    assert result.finished and not result.stopped and result.unavailable is None
    assert result.tally.sent == result.tally.accepted == len(found) > 40
    assert {r.state for r in found} == {"MIGRATED", "FAILED"}
    assert {r.reason for r in found if r.state == "FAILED"} == {"MISSING_MASTER_KEYS"}
    assert "GAS_HAN_ERROR_GT01" in {r.reason for r in found if r.state == "MIGRATED"}
    assert all(r.worker is None for r in found if r.state == "FAILED")
    with store.connect() as connection:
        sends = connection.execute(select(func.count()).select_from(attempts)).scalar_one()
        outcomes = Counter(connection.execute(select(attempts.c.outcome)).scalars())
        # Each request: staged, submitting, accepted, settled.
        audited = connection.execute(
            select(audit_log.audit.c.idempotency_key, func.count())
            .where(audit_log.audit.c.command == "commit")
            .group_by(audit_log.audit.c.idempotency_key)
        ).all()
    assert sends == len(found) and set(outcomes) == {"MIGRATED", "FAILED"}
    assert {n for _, n in audited} == {3}
    assert verified(store)


def test_retryable_failures_are_sent_again_until_the_attempt_limit(
    store: Engine, tmp_path: Path
) -> None:
    with simulator_thread(tmp_path, no_wan_rate=1.0) as url:
        result = run(store, url, max_attempts=3)
    found = rows(store)
    assert result.finished
    assert {(r.state, r.reason, r.retryable, r.attempts) for r in found} == {
        ("FAILED", "MAX_ATTEMPTS_EXCEEDED", False, 3)
    }
    assert result.tally.requeued == 2 * len(found)
    with store.connect() as connection:
        details = set(connection.execute(select(attempts.c.detail)).scalars())
    assert details == {"NO_WAN_DURING_MIGRATION"}


def test_attempts_the_dcc_decided_while_no_run_recorded_them_still_count(
    store: Engine, tmp_path: Path
) -> None:
    """A run killed after the DCC reported a retryable failure, before the store wrote it:
    the store still holds the request as unsent. The resend is the DCC's second attempt,
    and the store counts it so (from the receipt's attempt number), so the limit of 3 is
    3 attempts at the DCC, not 4."""
    with store.connect() as connection:
        row = connection.execute(select(requests).limit(1)).one()
    with store.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key != row.idempotency_key)
            .values(state="WITHDRAWN")
        )
    with simulator_thread(tmp_path, no_wan_rate=1.0, processing_ms=0) as url:
        gateway = HttpGateway(url, read_timeout=5)
        sent = Submission(
            row.idempotency_key,
            row.fingerprint,
            row.installation_id,
            row.supplier_mpid,
            row.payload,
        )
        assert gateway.submit([sent]) == [Receipt(row.idempotency_key, "ACCEPTED", 1)]
        assert gateway.outcomes([row.idempotency_key])[0].retryable  # reported, then lost
        result = run(store, url, max_attempts=3)
        # One more send, after the third attempt's reported failure, is the DCC's next.
        probe = gateway.submit([sent])[0].attempt
    (after,) = [r for r in rows(store) if r.idempotency_key == row.idempotency_key]
    assert result.finished
    assert (after.state, after.reason, after.attempts) == ("FAILED", "MAX_ATTEMPTS_EXCEEDED", 3)
    assert probe == 4  # so the DCC had made 3 attempts, as the store counts


def test_held_failures_stay_failed_and_retryable(store: Engine, tmp_path: Path) -> None:
    with simulator_thread(tmp_path, device_test_rate=1.0) as url:
        run(store, url, requeue_failures=False)
    assert {(r.state, r.reason, r.retryable) for r in rows(store)} == {
        ("FAILED", "DEVICE_TEST_FAILED", True)
    }


def test_the_cohort_capacity_per_supplier_per_day_is_kept(store: Engine, tmp_path: Path) -> None:
    today = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)
    suppliers = Counter(r.supplier_mpid for r in rows(store))
    with simulator_thread(tmp_path) as url:
        first = run(store, url, capacity_per_day=5, clock=lambda: today)
        again = run(store, url, capacity_per_day=5, clock=lambda: today)
        sent_on_day_one = Counter(r.supplier_mpid for r in rows(store) if r.state != "STAGED")
        tomorrow = run(store, url, capacity_per_day=5, clock=lambda: today + dt.timedelta(days=1))
    assert sent_on_day_one == {s: min(5, n) for s, n in suppliers.items()}
    assert first.waiting_for_capacity == sum(max(0, n - 5) for n in suppliers.values()) > 0
    assert not first.finished
    assert again.tally.sent == 0
    assert tomorrow.tally.sent == sum(min(5, max(0, n - 5)) for n in suppliers.values())
    with store.connect() as connection:
        used = connection.execute(select(capacity_use.c.used)).scalars().all()
    assert max(used) == 5


def test_a_summer_run_after_uk_midnight_draws_on_the_new_days_allowance(
    store: Engine, tmp_path: Path
) -> None:
    """23:30 BST and 00:30 BST are one UTC day apart from nothing: the DCC's day, the UK's,
    turns between them, so the second run has a fresh allowance of 5 a supplier."""
    before_midnight = dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC)  # 23:30 BST, 30 June
    after_midnight = dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)  # 00:30 BST, 1 July
    suppliers = Counter(r.supplier_mpid for r in rows(store))
    with simulator_thread(tmp_path) as url:
        first = run(store, url, capacity_per_day=5, clock=lambda: before_midnight)
        second = run(store, url, capacity_per_day=5, clock=lambda: after_midnight)
    assert first.tally.sent == sum(min(5, n) for n in suppliers.values())
    assert second.tally.sent == sum(min(5, max(0, n - 5)) for n in suppliers.values()) > 0
    with store.connect() as connection:
        days = connection.execute(select(capacity_use.c.day).distinct()).scalars().all()
    assert sorted(days) == [dt.date(2026, 6, 30), dt.date(2026, 7, 1)]


def test_a_batch_keeps_the_limits_it_was_planned_with(db_url: str, tmp_path: Path) -> None:
    """The cohort file edited after staging (capacity 3 → 1,000, attempts 2 → 9) does not
    change the batch: the go-live run keeps the dry run's limits."""
    rules = tmp_path / "ioc.yaml"
    planned = Path("cohorts/ioc.yaml").read_text(encoding="utf-8")
    planned = planned.replace(
        "capacity_per_supplier_per_day: 100", "capacity_per_supplier_per_day: 3"
    )
    rules.write_text(planned.replace("max_attempts: 5", "max_attempts: 2"), encoding="utf-8")
    extract = tmp_path / "estate.csv"
    generate_long_extract(extract, 200, seed=7)
    plan = tmp_path / "plan.json"
    make_plan([extract], "landis_ioc_devices", str(rules)).write(plan)
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, plan, batch=BATCH, actor="t", key=None)
    edited = planned.replace(
        "capacity_per_supplier_per_day: 3", "capacity_per_supplier_per_day: 1000"
    )
    rules.write_text(edited.replace("max_attempts: 2", "max_attempts: 9"), encoding="utf-8")
    with engine.connect() as connection:
        kept = connection.execute(select(batches.c.capacity_per_day, batches.c.max_attempts)).one()
    assert tuple(kept) == (3, 2)
    suppliers = Counter(r.supplier_mpid for r in rows(engine))
    with simulator_thread(tmp_path) as url:
        run(
            engine,
            url,
            capacity_per_day=None,
            clock=lambda: dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        )
    sent = Counter(r.supplier_mpid for r in rows(engine) if r.state != "STAGED")
    assert sent == {supplier: min(3, n) for supplier, n in suppliers.items()}
    engine.dispose()


def test_a_batch_staged_before_the_store_kept_limits_goes_by_the_cohort_file(
    store: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "cohorts"
    folder.mkdir()
    rules = Path("cohorts/ioc.yaml").read_text(encoding="utf-8")
    (folder / "ioc.yaml").write_text(
        rules.replace("capacity_per_supplier_per_day: 100", "capacity_per_supplier_per_day: 2"),
        encoding="utf-8",
    )
    with store.begin() as connection:
        connection.execute(update(batches).values(capacity_per_day=None, max_attempts=None))
    suppliers = Counter(r.supplier_mpid for r in rows(store))
    with simulator_thread(tmp_path) as url:
        commit(
            store,
            BATCH,
            lambda: HttpGateway(url, read_timeout=5),
            options=CommitOptions(poll_interval_s=0.02),
            actor="tester",
            key=None,
            gateway_name=url,
            clock=lambda: dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
            cohorts_dir=folder,
        )
    sent = Counter(r.supplier_mpid for r in rows(store) if r.state != "STAGED")
    assert sent == {supplier: min(2, n) for supplier, n in suppliers.items()}


def test_the_dccs_own_capacity_is_waited_for_and_an_oversized_chunk_is_split(
    store: Engine, tmp_path: Path
) -> None:
    """The DCC answers 413 to a chunk bigger than its day and 429 once the day is spent: the
    chunk is halved until it fits and the wait follows Retry-After."""
    keys = [r.idempotency_key for r in rows(store)][:8]
    with store.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key.not_in(keys))
            .values(state="WITHDRAWN")
        )
    with simulator_thread(tmp_path, capacity=3, day_seconds=0.5) as url:
        result = run(store, url, chunk=8)
    assert result.finished
    assert Counter(r.state for r in rows(store))["MIGRATED"] == 8


def test_a_split_chunk_keeps_the_answered_part_when_the_dcc_stops_taking_the_rest(
    store: Engine, tmp_path: Path
) -> None:
    """8 requests of one supplier to a DCC whose real day holds 3: the chunk is refused as
    too big (413) and halved, the first 2 are ACCEPTED, then the day is spent (429 until
    tomorrow, so the run stops). Those 2 are the DCC's now: the store keeps them as sent and
    their capacity as spent; only the 6 never sent go back to STAGED."""
    keys = sorted(r.idempotency_key for r in rows(store))[:8]
    with store.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key.not_in(keys))
            .values(state="WITHDRAWN")
        )
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key.in_(keys))
            .values(supplier_mpid="SUPA")
        )
    with simulator_thread(tmp_path, capacity=3) as url:
        result = run(store, url, chunk=8)
        held_by_dcc = [
            o.idempotency_key
            for o in HttpGateway(url, read_timeout=5).outcomes(keys)
            if o.state != "UNKNOWN"
        ]
    after = {r.idempotency_key: r for r in rows(store) if r.idempotency_key in keys}
    sent = sorted(k for k, r in after.items() if r.state != "STAGED")
    assert result.dcc_capacity_spent and not result.finished
    assert len(held_by_dcc) == 2 and sent == sorted(held_by_dcc)
    assert {after[k].reason for k in keys if k not in sent} == {"DCC_CAPACITY"}
    assert result.tally.sent == 2
    with store.connect() as connection:
        assert connection.execute(select(capacity_use.c.used)).scalars().all() == [2]
    assert verified(store)


def test_a_key_the_dcc_holds_with_another_fingerprint_fails_as_a_conflict(
    store: Engine, tmp_path: Path
) -> None:
    first = rows(store)[0]
    with simulator_thread(tmp_path) as url:
        with HttpGateway(url) as gateway:
            gateway.submit(
                [Submission(first.idempotency_key, "other", first.installation_id, "X", {})]
            )
        result = run(store, url)
    found = {r.idempotency_key: r for r in rows(store)}
    assert result.tally.conflicts == 1
    assert (found[first.idempotency_key].state, found[first.idempotency_key].reason) == (
        "FAILED",
        "KEY_CONFLICT",
    )
    assert Counter(r.state for r in found.values())["MIGRATED"] == len(found) - 1


def test_a_request_the_dcc_refuses_fails_alone(store: Engine, tmp_path: Path) -> None:
    bad = rows(store)[3]
    with store.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key == bad.idempotency_key)
            .values(supplier_mpid=None)
        )
    with simulator_thread(tmp_path) as url:
        result = run(store, url, chunk=50)
    found = {r.idempotency_key: r for r in rows(store)}
    assert result.tally.rejected == 1
    assert found[bad.idempotency_key].reason == "DCC_REJECTED"
    assert Counter(r.state for r in found.values())["MIGRATED"] == len(found) - 1


def test_a_dcc_that_stays_unavailable_leaves_everything_staged(
    store: Engine, tmp_path: Path
) -> None:
    with simulator_thread(tmp_path) as url:
        pass  # the simulator has stopped: its port refuses connections
    result = run(store, url, retry_attempts=2, retry_max_wait_s=0.05, capacity_per_day=500)
    found = rows(store)
    assert result.unavailable is not None and not result.finished
    assert {(r.state, r.reason, r.worker, r.attempts) for r in found} == {
        ("STAGED", "DCC_UNAVAILABLE", None, 0)
    }
    assert result.tally.released > 0
    with store.connect() as connection:
        assert set(connection.execute(select(capacity_use.c.used)).scalars()) == {0}
        assert set(connection.execute(select(attempts.c.outcome)).scalars()) == {"UNAVAILABLE"}
    with simulator_thread(tmp_path) as url:
        assert run(store, url).finished
    assert verified(store)


def test_a_send_whose_answer_was_lost_cannot_be_withdrawn_until_the_dcc_answers(
    store: Engine, tmp_path: Path
) -> None:
    """The DCC stores every chunk and the answers are lost, until the retries give up: the
    requests go back to STAGED, but the DCC holds them. Withdrawn, one could still migrate
    there while a new request for its installation enrolled it a second time; so withdraw
    refuses them, and the next commit learns the DCC's answer by resending the same keys."""
    with simulator_thread(tmp_path, lost_response_rate=1.0) as url:
        result = run(store, url, chunk=10, retry_attempts=2, retry_max_wait_s=0.05)
    found = rows(store)
    assert result.unavailable is not None and not result.finished
    staged = [r for r in found if r.state == "STAGED" and r.reason == "DCC_UNAVAILABLE"]
    assert {r.state for r in found} == {"STAGED"}  # the rest were never claimed
    with store.connect() as connection:
        last = dict(
            connection.execute(
                select(attempts.c.idempotency_key, attempts.c.outcome).order_by(attempts.c.attempt)
            ).all()
        )
    # The chunk sent, its answer lost; the chunks claimed after it were never sent.
    unanswered = [r for r in staged if last[r.idempotency_key] == UNANSWERED]
    assert len(unanswered) == result.tally.unanswered == 10
    assert {last[r.idempotency_key] for r in staged if r not in unanswered} == {"UNAVAILABLE"}
    chosen = unanswered[0].installation_id
    with pytest.raises(ConfigError, match="the answer was lost") as refused:
        withdraw(store, BATCH, installations=[chosen], actor="engineer", key=None)
    assert chosen in str(refused.value) and f"migrate commit --batch {BATCH}" in str(refused.value)
    assert {r.state for r in rows(store) if r.installation_id == chosen} == {"STAGED"}

    with simulator_thread(tmp_path) as url:
        again = run(store, url, chunk=10)
        with HttpGateway(url) as gateway:
            held = gateway.outcomes([r.idempotency_key for r in found])
    assert again.finished and again.tally.duplicates == len(unanswered)  # held all along
    assert all(o.state != "UNKNOWN" for o in held)  # one key per installation, each held once
    assert {r.state for r in rows(store)} <= {"MIGRATED", "FAILED"}
    assert verified(store)


def test_a_send_the_dcc_never_received_can_be_withdrawn(store: Engine, tmp_path: Path) -> None:
    """No connection was made (the DCC's port refuses): nothing can be held there."""
    with simulator_thread(tmp_path) as url:
        pass  # the simulator has stopped: its port refuses connections
    run(store, url, chunk=10, retry_attempts=2, retry_max_wait_s=0.05)
    chosen = rows(store)[0].installation_id
    withdrawn = withdraw(store, BATCH, installations=[chosen], actor="engineer", key=None)
    assert withdrawn.installation_ids == [chosen]
    assert verified(store)


def test_a_stop_request_ends_the_run_consistent_and_a_rerun_finishes(
    store: Engine, tmp_path: Path
) -> None:
    stop = threading.Event()
    with simulator_thread(tmp_path, processing_ms=300) as url:
        timer = threading.Timer(0.4, stop.set)
        timer.start()
        stopped = run(store, url, chunk=5, stop=stop)
        timer.cancel()
        assert stopped.stopped and not stopped.finished
        assert stopped.states.get("SUBMITTING", 0) == 0
        finished = run(store, url, chunk=5)
    assert finished.finished and finished.tally.adopted == stopped.states.get("ACCEPTED", 0)
    assert verified(store)


def _leave_with(engine: Engine, worker: str, count: int, target: RequestState) -> list[Any]:
    """Requests left by `worker` in SUBMITTING (and ACCEPTED), as a killed worker leaves them."""
    chosen = rows(engine)[:count]
    with engine.begin() as connection:
        moves = [
            Move(r.idempotency_key, BATCH, r.installation_id, S.STAGED, S.SUBMITTING,
                 sent=True, worker=worker)
            for r in chosen
        ]  # fmt: skip
        apply_moves(connection, moves, actor="t", command="commit", inputs={}, key=None)
        connection.execute(
            attempts.insert(),
            [
                {"idempotency_key": r.idempotency_key, "attempt": 1,
                 "started_at": dt.datetime.now(dt.UTC)}
                for r in chosen
            ],
        )  # fmt: skip
        if target == S.ACCEPTED:
            moves = [
                Move(m.idempotency_key, BATCH, m.installation_id, S.SUBMITTING, S.ACCEPTED,
                     attempted=True, worker=worker)
                for m in moves
            ]  # fmt: skip
            apply_moves(connection, moves, actor="t", command="commit", inputs={}, key=None)
    return chosen


def test_requests_a_dead_worker_left_are_resent_with_their_keys(
    store: Engine, tmp_path: Path
) -> None:
    left = _leave_with(store, "gone:1:0:dead", 6, S.SUBMITTING)
    with simulator_thread(tmp_path) as url:
        with HttpGateway(url) as gateway:  # the dead worker had sent three of them
            gateway.submit(
                [
                    Submission(r.idempotency_key, r.fingerprint, r.installation_id,
                               r.supplier_mpid, {})
                    for r in left[:3]
                ]
            )  # fmt: skip
        result = run(store, url)
    assert result.finished and result.tally.adopted == 6
    assert result.tally.duplicates == 3 and result.tally.resent == 6
    assert {r.state for r in rows(store)} == {"MIGRATED"}
    resent = {r.idempotency_key for r in left}
    assert {r.sends for r in rows(store) if r.idempotency_key in resent} == {2}
    with store.connect() as connection:
        numbers = connection.execute(
            select(attempts.c.attempt).where(attempts.c.idempotency_key.in_(resent))
        ).scalars()
        assert Counter(numbers) == {1: 6, 2: 6}
    assert verified(store)


def test_requests_of_a_live_worker_are_not_taken(
    store: Engine, tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        with (
            WorkerLease(store, "other"),
            simulator_thread(tmp_path) as url,
            pytest.raises(ConfigError, match="another"),
        ):
            run(store, url)
        return
    left = _leave_with(store, "alive:1:0:live", 4, S.ACCEPTED)
    with WorkerLease(store, "alive:1:0:live"), simulator_thread(tmp_path) as url:
        result = run(store, url, outcome_wait_s=0.2)
        assert result.tally.adopted == 0 and result.in_flight == 4 and not result.finished
        assert {r.worker for r in rows(store) if r.state == "ACCEPTED"} == {"alive:1:0:live"}
    with simulator_thread(tmp_path) as url:
        # The worker is gone now; its accepted requests were never really sent: the DCC does
        # not know them, so they are sent again.
        result = run(store, url)
    assert result.finished and result.tally.adopted == 4 and result.tally.unknown == 4
    assert {r.idempotency_key for r in left} <= {
        r.idempotency_key for r in rows(store) if r.state == "MIGRATED"
    }


def test_several_workers_never_send_the_same_request(
    store: Engine, tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        with pytest.raises(ConfigError, match="SQLite serves one commit worker"):
            run(store, "http://127.0.0.1:9", workers=2)
        return
    with simulator_thread(tmp_path, latency_ms=5) as url:
        results: list[CommitResult] = []
        others = [
            threading.Thread(target=lambda: results.append(run(store, url, workers=2, chunk=3)))
            for _ in range(2)
        ]
        for thread in others:
            thread.start()
        for thread in others:
            thread.join()
    found = rows(store)
    assert {r.state for r in found} == {"MIGRATED"}
    # No faults: one send per request, and no DCC answer was a DUPLICATE (a second send).
    assert {r.sends for r in found} == {1}
    assert sum(r.tally.duplicates for r in results) == 0
    assert sum(r.tally.sent for r in results) == len(found)
    assert verified(store)


def test_the_dccs_own_attempt_limit_still_reads_as_max_attempts_exceeded(
    store: Engine, tmp_path: Path
) -> None:
    """The DCC stops calling a failure retryable at its own limit: at the cohort's limit it
    is MAX_ATTEMPTS_EXCEEDED all the same, not the last attempt's reason."""
    with simulator_thread(tmp_path, no_wan_rate=1.0, max_attempts=2) as url:
        run(store, url, max_attempts=2)
    assert {(r.state, r.reason, r.attempts) for r in rows(store)} == {
        ("FAILED", "MAX_ATTEMPTS_EXCEEDED", 2)
    }


def test_a_payload_altered_in_the_store_is_never_sent(store: Engine, tmp_path: Path) -> None:
    victim = rows(store)[2]
    with store.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key == victim.idempotency_key)
            .values(payload=victim.payload.replace("Landis+Gyr", "Landis+Gyr Ltd", 1))
        )
    with simulator_thread(tmp_path) as url:
        result = run(store, url)
        with HttpGateway(url) as gateway:
            (outcome,) = gateway.outcomes([victim.idempotency_key])
    found = {r.idempotency_key: r for r in rows(store)}[victim.idempotency_key]
    assert (found.state, found.reason, found.retryable) == ("FAILED", "PAYLOAD_ALTERED", False)
    assert outcome.state == "UNKNOWN"  # the DCC never saw it
    assert result.finished and verified(store)


def test_a_keyed_audit_log_is_not_extended_without_its_key(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, _plan(tmp_path, 200), batch=BATCH, actor="t", key=b"k" * 32)
    with pytest.raises(ConfigError, match="MIGRATE_AUDIT_KEY"):
        run(engine, "http://127.0.0.1:9")
    engine.dispose()


def test_a_keyed_audit_log_is_not_extended_with_another_key(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, _plan(tmp_path, 200), batch=BATCH, actor="t", key=b"k" * 32)
    with pytest.raises(ConfigError, match="not the key this store's audit log is sealed with"):
        commit(
            engine, BATCH, lambda: HttpGateway("http://127.0.0.1:9"), options=CommitOptions(),
            actor="t", key=b"x" * 32, gateway_name="x",
        )  # fmt: skip
    engine.dispose()


class _GoesAway:
    """An HTTP gateway whose DCC answers `answered` submissions, then stays unavailable."""

    def __init__(self, url: str, answered: int) -> None:
        self.inner = HttpGateway(url, read_timeout=5)
        self.left = answered

    def submit(self, chunk: Sequence[Submission]) -> list[Receipt]:
        if self.left == 0:
            raise GatewayUnavailable("injected: the DCC went away")
        self.left -= 1
        return self.inner.submit(chunk)

    def outcomes(self, keys: Sequence[str]) -> list[Outcome]:
        return self.inner.outcomes(keys)

    def inventory(self) -> Iterator[dict[str, Any]]:
        return self.inner.inventory()

    def close(self) -> None:
        self.inner.close()


def _released_sends(engine: Engine) -> int:
    """Attempts rows a release closed: sends that never got the DCC's answer."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(
                attempts.c.outcome.in_(["STOPPED", "UNAVAILABLE", "OVER_CAPACITY", UNANSWERED])
            )
        ).scalar_one()


def test_requests_released_when_the_dcc_goes_away_are_not_counted_as_sent(
    store: Engine, tmp_path: Path
) -> None:
    """Sent counts what the DCC answered; a chunk handed over but released unanswered counts
    only as released, never in both."""
    with simulator_thread(tmp_path) as url:
        result = commit(
            store, BATCH, lambda: _GoesAway(url, answered=2),
            options=CommitOptions(chunk=5, poll_interval_s=0.02, capacity_per_day=100_000,
                                  retry_attempts=2, retry_max_wait_s=0.05),
            actor="tester", key=None, gateway_name=url,
        )  # fmt: skip
        with HttpGateway(url) as gateway:
            held = [
                o for o in gateway.outcomes([r.idempotency_key for r in rows(store)])
                if o.state != "UNKNOWN"
            ]  # fmt: skip
    assert result.unavailable is not None and not result.finished
    assert result.tally.sent == result.tally.accepted == len(held) == 10
    assert result.tally.released == _released_sends(store) > 0
    with store.connect() as connection:
        sends = connection.execute(select(func.count()).select_from(attempts)).scalar_one()
    assert result.tally.sent + result.tally.released == sends
    assert verified(store)


def test_requests_released_by_a_stop_mid_send_are_not_counted_as_sent(
    store: Engine, tmp_path: Path
) -> None:
    """A stop while a chunk's send is being retried (the DCC answering 503, storing nothing)
    releases it unsent: released, not sent (nor resent, for a dead worker's requests)."""
    left = _leave_with(store, "gone:1:0:dead", 5, S.SUBMITTING)
    stop = threading.Event()
    with simulator_thread(tmp_path, error_rate=1.0) as url:
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        result = run(store, url, chunk=5, stop=stop, retry_attempts=1_000,
                     retry_max_delay_s=600, retry_max_wait_s=0.05)  # fmt: skip
        timer.cancel()
    assert result.stopped and result.unavailable is None and result.tally.adopted == len(left)
    assert {r.state for r in rows(store)} == {"STAGED"}
    assert result.tally.sent == result.tally.resent == 0
    assert result.tally.released == _released_sends(store) > 0
    assert verified(store)


def test_a_sqlite_store_reached_through_a_symlink_meets_the_same_commit_lock(
    tmp_path: Path,
) -> None:
    """Two commit processes on one SQLite store, one naming it through a symlink: the second
    is refused, as with the same path (it took over the first's live requests and sent them
    again)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    (tmp_path / "link.db").symlink_to(tmp_path / "store.db")
    linked = make_engine(f"sqlite:///{tmp_path / 'link.db'}")
    with (
        WorkerLease(engine, "first"),
        pytest.raises(ConfigError, match="another `migrate commit` is running"),
        WorkerLease(linked, "second"),
    ):
        pass
    with WorkerLease(linked, "second"):
        pass  # free again once the first ended
    engine.dispose()
    linked.dispose()
