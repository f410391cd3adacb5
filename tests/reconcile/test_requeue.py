"""--requeue: exactly the stuck requests and the retryable failures that carry no other
discrepancy go back to STAGED, each move audited, the chain verifying afterwards."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from reconciliation import NOW, Cohort
from sqlalchemy import select

from migrate.errors import ConfigError
from migrate.reconcile.compare import Category
from migrate.reconcile.report import REQUEUE_REFUSED
from migrate.reconcile.requeue import requeue
from migrate.store import audit_log
from migrate.store.schema import requests


def _states(cohort: Cohort) -> dict[str, tuple[str, str | None, str | None]]:
    with cohort.engine.connect() as connection:
        rows = connection.execute(
            select(
                requests.c.installation_id, requests.c.state, requests.c.reason, requests.c.worker
            ).where(requests.c.batch == "b1")
        )
        return {row.installation_id: (row.state, row.reason, row.worker) for row in rows}


def test_requeue_moves_the_stuck_and_the_retryable_and_audits_each(cohort: Cohort) -> None:
    ids = cohort.ids()
    stuck, accepted, young, retryable, permanent, listed_stuck = (
        ids[0],
        ids[1],
        ids[2],
        ids[3:5],
        ids[5],
        ids[6],
    )
    migrated = ids[7:]
    cohort.set(migrated, "MIGRATED")
    cohort.set([stuck], "SUBMITTING", worker="w1")
    cohort.set([accepted, listed_stuck], "ACCEPTED", worker="w2")
    cohort.set([young], "ACCEPTED", worker="w3", updated_at=NOW - dt.timedelta(minutes=1))
    cohort.set(retryable, "FAILED", reason="DEVICE_TEST_FAILED", retryable=True)
    cohort.set([permanent], "FAILED", reason="MISSING_MASTER_KEYS", retryable=False)
    inventory = cohort.write_inventory(cohort.inventory_lines([*migrated, listed_stuck]))
    with cohort.engine.connect() as connection:
        before = audit_log.head(connection)

    result = cohort.reconcile(inventory, requeue=True)

    assert result.requeued == 4
    states = _states(cohort)
    assert states[stuck] == ("STAGED", "REQUEUED_STUCK", None)
    assert states[accepted] == ("STAGED", "REQUEUED_STUCK", None)
    assert all(states[i] == ("STAGED", "DEVICE_TEST_FAILED", None) for i in retryable)
    assert states[young] == ("ACCEPTED", None, "w3")
    assert states[permanent][0] == "FAILED"
    # Listed by the DCC although not MIGRATED: a person decides, the requeue does not.
    assert states[listed_stuck] == ("ACCEPTED", None, "w2")
    assert all(states[i][0] == "MIGRATED" for i in migrated)

    with cohort.engine.connect() as connection:
        records = list(audit_log.records(connection))[before[0] :]
        assert audit_log.verify_log(connection, None).ok
    assert sorted((r.installation_id, r.from_state, r.to_state) for r in records) == sorted(
        [
            (stuck, "SUBMITTING", "STAGED"),
            (accepted, "ACCEPTED", "STAGED"),
            *((i, "FAILED", "STAGED") for i in retryable),
        ]
    )
    assert {(r.command, r.actor) for r in records} == {("reconcile", "auditor")}
    assert set(records[0].inputs) == {"plan", "inventory"}
    assert result.audit_verified and result.audit_head_seq == before[0] + 4
    head = result.report.head
    assert head["requeue"] == {
        "requested": True,
        "requeued": 4,
        "stuck": 2,
        "failed_retryable": 2,
        "left_for_review": 1,
        "moved_on_meanwhile": 0,
        "audit_head_seq": before[0] + 4,
    }
    requeued = {
        row["installation_id"] for row in result.report.installations.to_pylist() if row["requeued"]
    }
    assert requeued == {stuck, accepted, *retryable}
    # The categories are as found, before the requeue.
    assert result.by_category[Category.STUCK] == 3 and result.by_category[Category.IN_FLIGHT] == 1

    again = cohort.reconcile(inventory, requeue=True)
    assert again.requeued == 0
    assert again.by_category[Category.AWAITING_COMMIT] == 4
    assert again.by_category[Category.STUCK] == 1  # the one the DCC lists


def test_without_requeue_nothing_moves(cohort: Cohort) -> None:
    ids = cohort.ids()
    cohort.set(ids, "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    before = _states(cohort)
    result = cohort.reconcile(cohort.write_inventory([]))
    assert result.requeued == 0 and _states(cohort) == before
    assert result.by_category[Category.FAILED_RETRYABLE] == len(ids)
    assert result.report.head["requeue"] == {"requested": False, "requeued": 0}


def test_a_request_moved_since_it_was_read_is_left_where_it_is(cohort: Cohort) -> None:
    ids = cohort.ids()
    cohort.set(ids[:2], "ACCEPTED")
    cohort.set(ids[2:3], "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    chosen = pa.table(
        {
            "installation_id": ids[:3],
            "category": [Category.STUCK, Category.STUCK, Category.FAILED_RETRYABLE],
        }
    )
    cohort.set(ids[1:2], "MIGRATED")  # a worker got there first
    cohort.set(ids[2:3], "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=False)
    result = requeue(
        cohort.engine,
        chosen,
        batch="b1",
        cutoff=NOW - dt.timedelta(hours=1),
        left=0,
        actor="auditor",
        key=None,
        inputs={},
    )
    assert (result.requeued, result.moved_on, result.installation_ids) == (1, 2, [ids[0]])
    assert _states(cohort)[ids[1]][0] == "MIGRATED"
    assert _states(cohort)[ids[2]][0] == "FAILED"


def test_a_requeue_without_the_logs_key_is_refused(cohort: Cohort) -> None:
    ids = cohort.ids()
    cohort.set(ids, "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    with pytest.raises(ConfigError, match="MIGRATE_AUDIT_KEY"):
        cohort.reconcile(cohort.write_inventory([]), requeue=True, key=bytes(32))
    assert {state for state, _, _ in _states(cohort).values()} == {"FAILED"}


def test_a_log_that_does_not_verify_is_not_extended_by_a_requeue(cohort: Cohort) -> None:
    """Requeuing onto a log that fails verification would bury the evidence: nothing moves,
    no record is added, and the report says why."""
    ids = cohort.ids()
    cohort.set(ids, "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    with cohort.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.exec_driver_sql("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
        before = audit_log.head(connection)
    states = _states(cohort)
    result = cohort.reconcile(cohort.write_inventory([]), requeue=True)
    assert not result.audit_verified and result.requeued == 0
    assert _states(cohort) == states
    with cohort.engine.connect() as connection:
        assert audit_log.head(connection) == before
    assert result.report.head["requeue"] == {
        "requested": True,
        "requeued": 0,
        "refused": REQUEUE_REFUSED,
    }
