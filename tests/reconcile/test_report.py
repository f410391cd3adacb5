"""The reconciliation report: JSON, HTML and CSV from one model, the same bytes for the same
inputs, every total stated and adding up, and hostile values from an inventory reaching
neither the page nor a spreadsheet as code."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from reconciliation import NOW, Cohort
from typer.testing import CliRunner

from migrate.cli import EXIT_DATA_PROBLEMS, app
from migrate.reconcile.compare import Category
from migrate.reconcile.report import (
    AUDIT_VERIFIES,
    CATEGORIES_ADD_UP,
    CSV_NAMES,
    REPORT_VERSION,
    REQUESTS_MATCH,
    REQUEUE_REFUSED,
    SIDES_ADD_UP,
    failed_checks,
)

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    '=HYPERLINK("http://evil")',
    "@SUM(A1)",
)


def _written(cohort: Cohort) -> tuple[dict[str, Any], str, dict[str, list[dict[str, str]]]]:
    out = cohort.folder / "out"
    document = json.loads((out / "reconciliation.json").read_text(encoding="utf-8"))
    page = (out / "reconciliation.html").read_text(encoding="utf-8")
    tables = {}
    for name in CSV_NAMES:
        with (out / "csv" / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
            tables[name] = list(csv.DictReader(handle))
    return document, page, tables


def _some_of_everything(cohort: Cohort) -> Path:
    ids = cohort.ids()
    cohort.set(ids[10:], "MIGRATED")
    cohort.set(ids[:3], "FAILED", reason="NO_WAN_DURING_MIGRATION", retryable=True)
    lines = cohort.inventory_lines(ids[12:])
    lines[0]["firmware_version"] = "9.9.9"
    return cohort.write_inventory(lines)


def test_the_json_lists_every_installation_and_states_the_totals(cohort: Cohort) -> None:
    result = cohort.reconcile(_some_of_everything(cohort))
    document, _, tables = _written(cohort)
    assert document["report"] == "reconciliation"
    assert document["report_version"] == REPORT_VERSION
    assert document["as_of"] == "2026-12-01T12:00:00Z"
    fields = document["installation_fields"]
    rows = [dict(zip(fields, entry, strict=True)) for entry in document["installations"]]
    assert [row["installation_id"] for row in rows] == sorted(
        row["installation_id"] for row in rows
    )
    assert len(rows) == document["totals"]["installations"] == result.installations
    counted = {c["category"]: c["installations"] for c in document["categories"]}
    assert counted == result.by_category
    assert sum(counted.values()) == len(rows)
    assert {row["category"] for row in rows} <= set(counted)
    assert all(check["holds"] for check in document["checks"])
    assert document["discrepant"] is True
    assert document["audit"]["verified"] is True
    assert document["audit"]["head_hash"] == result.audit_head_hash
    assert len(document["devices"]) == 1 and document["device_fields"][0] == "installation_id"
    assert len(tables["installations"]) == len(rows)
    assert tables["categories"][0]["category"] == Category.MIGRATED_MATCHING
    assert result.written == [
        cohort.folder / "out" / "reconciliation.json",
        cohort.folder / "out" / "reconciliation.html",
        *(cohort.folder / "out" / "csv" / f"{name}.csv" for name in CSV_NAMES),
    ]


def test_the_same_inputs_give_the_same_bytes(cohort: Cohort) -> None:
    inventory = _some_of_everything(cohort)
    out = cohort.folder / "out"
    cohort.reconcile(inventory)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    cohort.reconcile(inventory)
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == second


def test_nothing_is_written_without_an_output_folder(cohort: Cohort) -> None:
    result = cohort.reconcile(cohort.write_inventory([]), out=None)
    assert result.written == [] and not (cohort.folder / "out").exists()


def test_the_page_is_self_contained_and_says_what_it_found(cohort: Cohort) -> None:
    result = cohort.reconcile(_some_of_everything(cohort))
    _, page, _ = _written(cohort)
    assert 'http-equiv="Content-Security-Policy"' in page
    assert "default-src &#39;none&#39;" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert page.count("<svg") == 3
    assert f"{result.discrepant_installations:,} of {result.installations:,} installations" in page
    assert result.audit_head_hash in page
    assert "FAILED_RETRYABLE" in page and "--requeue" in page


def _hostile_inventory(cohort: Cohort) -> Path:
    ids = cohort.ids()
    cohort.set(ids, "MIGRATED")
    lines = cohort.inventory_lines(ids)
    for n, value in enumerate(HOSTILE):
        lines.append(
            {
                **lines[0],
                "installation_id": value,
                "device_id": f"00-DB-12-FF-FF-FF-FF-{n:02X}",
                "firmware_version": value,
                "status": value,
            }
        )
    lines[1]["status"] = HOSTILE[0]
    return cohort.write_inventory(lines)


def test_hostile_values_are_escaped_in_the_page(cohort: Cohort) -> None:
    cohort.reconcile(_hostile_inventory(cohort))
    _, page, _ = _written(cohort)
    lowered = page.lower()
    assert "<script>alert" not in lowered
    assert "<img src=x" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert lowered.count("<script") == 1  # the page's own, allowed by its hash


def test_hostile_values_are_neutralised_in_the_csvs(cohort: Cohort) -> None:
    cohort.reconcile(_hostile_inventory(cohort))
    _, _, tables = _written(cohort)
    ids = {row["installation_id"] for row in tables["installations"]}
    assert "'" + HOSTILE[2] in ids and "'" + HOSTILE[3] in ids
    assert HOSTILE[0] in ids
    for table in tables.values():
        for row in table:
            assert not any(str(v).startswith(("=", "+", "@")) for v in row.values())
    statuses = {row["dcc_status"] for row in tables["devices"]}
    assert HOSTILE[0] in statuses


def _migrated_with_record_5_tampered(cohort: Cohort) -> Path:
    """Every request MIGRATED and listed by the DCC, then audit record 5 altered; returns
    the inventory."""
    ids = cohort.ids()
    cohort.set(ids, "MIGRATED")
    inventory = cohort.write_inventory(cohort.inventory_lines(ids))
    with cohort.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A superuser can switch the append-only trigger off: the chain still tells.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.exec_driver_sql("UPDATE audit SET actor = 'mallory' WHERE seq = 5")
    return inventory


def test_a_broken_audit_chain_is_discrepant_and_named(cohort: Cohort) -> None:
    inventory = _migrated_with_record_5_tampered(cohort)
    result = cohort.reconcile(inventory)
    assert not result.audit_verified
    assert result.discrepant and result.discrepant_installations == 0
    assert result.audit_problem == "record 5: hash does not match its content"
    document, page, _ = _written(cohort)
    assert document["audit"]["first_bad_seq"] == 5
    assert "record 5: hash does not match its content" in page
    assert NOW.year == 2026


def test_a_failed_check_reads_as_expected_and_found_in_words() -> None:
    head: dict[str, Any] = {
        "totals": {
            "installations": 840,
            "batch": 306,
            "excluded_at_planning": 94,
            "only_in_dcc_inventory": 439,
        },
        "categories": [
            {"category": c.value, "installations": 839 if c == Category.EXCLUDED else 0}
            for c in Category
        ],
        "store": {"requests": 305},
        "audit": {"problem": "record 5: hash does not match its content"},
        "checks": [
            {"check": CATEGORIES_ADD_UP, "holds": False, "detail": "840 = 0 + 839"},
            {"check": SIDES_ADD_UP, "holds": False, "detail": "840 = 306 + 94 + 439"},
            {"check": REQUESTS_MATCH, "holds": False, "detail": "305 requests, 306 inst"},
            {"check": AUDIT_VERIFIES, "holds": False, "detail": "record 5: ..."},
            {"check": "a check that holds", "holds": True, "detail": "1 = 1"},
        ],
    }
    assert failed_checks(head) == [
        f"check does not hold: {CATEGORIES_ADD_UP}: expected 840 installations, found 839 in "
        "the categories",
        f"check does not hold: {SIDES_ADD_UP}: expected 840 installations, found 839 (306 in "
        "the batch + 94 excluded at planning + 439 only in the DCC inventory)",
        f"check does not hold: {REQUESTS_MATCH}: expected 306 requests (one per installation "
        "of the batch), found 305",
        f"check does not hold: {AUDIT_VERIFIES}: expected every record to verify, found "
        "record 5: hash does not match its content",
    ]


def test_the_cli_words_a_failed_check_not_as_a_dict(cohort: Cohort, db_url: str) -> None:
    inventory = _migrated_with_record_5_tampered(cohort)
    result = CliRunner().invoke(
        app,
        [
            "reconcile", "--batch", "b1", "--inventory", str(inventory),
            "--db", db_url, "--mappings-dir", str(cohort.mappings),
        ],
    )  # fmt: skip
    assert result.exit_code == EXIT_DATA_PROBLEMS, result.output
    lines = [line for line in result.stdout.splitlines() if "check does not hold" in line]
    assert lines == [
        f"check does not hold: {AUDIT_VERIFIES}: expected every record to verify, found "
        "record 5: hash does not match its content"
    ]
    assert "{" not in result.stdout
    assert "requeue refused" not in result.stdout  # none was asked for


def test_the_cli_says_a_requeue_onto_a_log_that_does_not_verify_moved_nothing(
    cohort: Cohort, db_url: str
) -> None:
    inventory = _migrated_with_record_5_tampered(cohort)
    result = CliRunner().invoke(
        app,
        [
            "reconcile", "--batch", "b1", "--inventory", str(inventory),
            "--db", db_url, "--mappings-dir", str(cohort.mappings), "--requeue",
        ],
    )  # fmt: skip
    assert result.exit_code == EXIT_DATA_PROBLEMS, result.output
    assert " ".join(result.stdout.split()).count(f"requeue refused: {REQUEUE_REFUSED}") == 1
