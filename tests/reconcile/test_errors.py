"""What stops a reconciliation before it compares anything, and says why."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from reconciliation import Cohort

from migrate.errors import ConfigError, InputError
from migrate.reconcile import reconcile
from migrate.reconcile.sources import PlanChanged


def test_an_unknown_batch(cohort: Cohort) -> None:
    with pytest.raises(InputError, match="no batch 'nope' in the store"):
        reconcile(
            cohort.engine,
            "nope",
            inventory=cohort.write_inventory([]),
            actor="a",
            key=None,
        )


def test_a_plan_changed_or_gone_since_staging(cohort: Cohort) -> None:
    plan = cohort.folder / "plan.json"
    original = plan.read_bytes()
    plan.write_bytes(original.replace(b'"plan_version": 1', b'"plan_version": 1 '))
    with pytest.raises(PlanChanged, match="the plan changed since batch 'b1' was staged"):
        cohort.reconcile(cohort.write_inventory([]))
    plan.unlink()
    with pytest.raises(InputError, match="the batch's plan is not there"):
        cohort.reconcile(cohort.write_inventory([]))


def test_an_unreadable_inventory_names_its_line(cohort: Cohort) -> None:
    path = cohort.folder / "inventory.ndjson"
    first = {
        "installation_id": "I",
        "device_id": "00-DB-12-00-00-00-00-01",
        "device_type": "CHF",
        "firmware_version": "1",
        "mpxn": None,
        "status": "Commissioned",
    }
    path.write_text(json.dumps(first) + "\nnot json\n")
    with pytest.raises(InputError) as caught:
        cohort.reconcile(path, inventory_mapping="inventory_with_mpxn")
    assert caught.value.row == 2


def test_bad_options(cohort: Cohort) -> None:
    inventory = cohort.write_inventory([])
    with pytest.raises(ConfigError, match="positive"):
        cohort.reconcile(inventory, stuck_after=dt.timedelta(0))
    with pytest.raises(ConfigError, match="time zone"):
        cohort.reconcile(inventory, now=dt.datetime(2026, 1, 1))
