"""The sample rehearsal's reconciliation, end to end: golden JSON, and the CLI's answer."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migrate import api
from migrate.cli import EXIT_DATA_PROBLEMS, app

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rehearsal as the README runs it: from the checkout's root, on `examples`, so that
    the plan names its inputs the same wherever the checkout is."""
    out = tmp_path_factory.mktemp("rehearsal")
    before = Path.cwd()
    os.chdir(REPO)
    try:
        run = api.rehearse(Path("examples"), out)
    finally:
        os.chdir(before)
    assert all(step.commit.finished for step in run.steps if step.commit is not None)
    return out


def test_the_sample_rehearsals_reconciliation_is_as_golden(
    rehearsal: Path, golden: Callable[[str, str], None]
) -> None:
    result = api.reconcile(
        "rehearsal-moc",
        rehearsal / "dcc-inventory.ndjson",
        extract=REPO / "examples" / "secure_moc_installations.csv",
        extract_mapping="secure_moc_installations",
        out=rehearsal / "golden-moc",
        db=f"sqlite:///{rehearsal / 'migrate.db'}",
        now=NOW,
    )
    document = json.loads((rehearsal / "golden-moc" / "reconciliation.json").read_text())
    assert document["audit"]["verified"] is True
    assert document["audit"]["head_hash"] == result.audit_head_hash
    # Audit records carry the time they were written: the one value that differs per run.
    document["audit"]["head_hash"] = "(masked)"
    golden("reconciliation_moc.json", json.dumps(document, indent=1, sort_keys=True) + "\n")
    totals = document["totals"]
    assert totals["installations"] == sum(c["installations"] for c in document["categories"])
    assert totals["installations"] == (
        totals["batch"] + totals["excluded_at_planning"] + totals["only_in_dcc_inventory"]
    )


def test_reconcile_through_the_cli_exits_1_on_discrepancies_with_json(rehearsal: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "reconcile", "--batch", "rehearsal-ioc",
            "--inventory", str(rehearsal / "dcc-inventory.ndjson"),
            "--db", f"sqlite:///{rehearsal / 'migrate.db'}", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == EXIT_DATA_PROBLEMS, result.output
    head = json.loads(result.stdout)
    assert head["batch"]["name"] == "rehearsal-ioc" and head["discrepant"] is True
    by_category = {c["category"]: c["installations"] for c in head["categories"]}
    assert by_category["FAILED_PERMANENT"] == 1  # the sample's MISSING_MASTER_KEYS


def test_an_unknown_batch_exits_2(rehearsal: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "reconcile", "--batch", "nope", "--inventory", str(rehearsal / "dcc-inventory.ndjson"),
            "--db", f"sqlite:///{rehearsal / 'migrate.db'}",
        ],
    )  # fmt: skip
    assert result.exit_code == 2 and "nope" in result.stderr
