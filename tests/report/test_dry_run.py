"""The dry-run report: its model matches a golden file, it is the same bytes every time, and
hostile values from an extract reach neither the page nor a spreadsheet as code."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from migrate.plan import make_plan
from migrate.report.dry_run import (
    CSV_TABLES,
    REPORT_VERSION,
    build_report,
    dump_report,
    render_html,
    write_csvs,
)
from migrate.report.page import PAGE_ROWS

REPO = Path(__file__).resolve().parent.parent.parent
GOLDEN = REPO / "tests" / "golden" / "dry_run_report_moc.json"
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "Smith & Sons",
    "O'Brien",
    '=HYPERLINK("http://evil")',
)


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    made = make_plan(
        [REPO / "examples" / "secure_moc_installations.csv"], "secure_moc_installations", "moc"
    )
    return json.loads(made.text)


@pytest.fixture(scope="module")
def report(plan: dict[str, Any]) -> dict[str, Any]:
    return build_report(plan)


def _repo_path(value: str | None) -> str | None:
    """A path as the plan holds it (absolute, or relative to the working directory), made
    relative to the repository when it is inside it."""
    if value is None:
        return None
    if value.startswith("shipped:"):  # a shipped cohort or mapping, planned outside the repo
        return value.removeprefix("shipped:")
    path = Path(value).resolve()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else value


def _relative_paths(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its file paths made relative to the repository: the golden file must
    not depend on where the repository is checked out, nor on the working directory."""
    report = copy.deepcopy(report)
    inputs = report["plan"]
    for record in [inputs["cohort"], inputs["mapping"], *inputs["extracts"]]:
        record["path"] = _repo_path(record["path"])
    for row in report["quarantine"]:
        row["source_file"] = _repo_path(row["source_file"])
    return report


def assert_golden(actual: Any, golden: Path) -> None:
    """Compare with the golden file, or rewrite it when UPDATE_GOLDEN=1 (then review the diff)."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(dump_report(actual), encoding="utf-8")
        return
    assert json.loads(golden.read_text(encoding="utf-8")) == actual


def test_report_matches_the_golden_file(report: dict[str, Any]) -> None:
    assert_golden(_relative_paths(report), GOLDEN)


def test_report_totals_agree_with_the_plan(plan: dict[str, Any], report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert report["report_version"] == REPORT_VERSION
    assert totals["installations"] == plan["summary"]["installations"]
    assert totals["eligible"] + totals["excluded"] == totals["installations"]
    assert totals["accounting_holds"] is True
    assert all(check["holds"] for check in report["checks"])
    # Several reasons per installation: the reason counts add up to more than the excluded.
    assert sum(r["installations"] for r in report["reasons"]) == totals["reasons_given"]
    assert totals["reasons_given"] > totals["excluded"]
    combinations = report["combinations"]
    assert sum(c["eligible"] + c["excluded"] for c in combinations) == totals["installations"]
    suppliers = report["suppliers"]
    assert sum(s["eligible"] for s in suppliers) == totals["eligible"]
    firmware = plan["summary"]["excluded_by_reason"]["FIRMWARE_UPGRADE_REQUIRED"]
    assert sum(f["installations"] for f in report["firmware_upgrades"]) >= firmware
    assert report["plan"]["cohort"]["sha256"] == plan["cohort"]["sha256"]


def test_same_plan_same_bytes(plan: dict[str, Any]) -> None:
    first = dump_report(build_report(plan))
    second = dump_report(build_report(copy.deepcopy(plan)))
    assert first == second
    again = make_plan(
        [REPO / "examples" / "secure_moc_installations.csv"], "secure_moc_installations", "moc"
    )
    assert dump_report(build_report(json.loads(again.text))) == first
    assert first == json.dumps(json.loads(first), sort_keys=True, indent=2) + "\n"
    assert render_html(json.loads(first)) == render_html(json.loads(second))


def test_the_page_is_self_contained(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert "http://" not in page
    assert "https://" not in page
    # Links only to the page's own sections; nothing loaded from anywhere.
    assert all(link.startswith("#") for link in re.findall(r'\bhref="([^"]*)"', page))
    assert not re.search(r"\bsrc=|@import|url\(|<link\b|<iframe\b|<object\b", page)
    assert page.count("<svg") == 5
    assert "Content-Security-Policy" in page


def _hostile_plan(plan: dict[str, Any]) -> dict[str, Any]:
    plan = copy.deepcopy(plan)
    excluded = plan["excluded"][0]
    excluded["installation_id"] = HOSTILE[0]
    excluded["supplier_mpid"] = HOSTILE[1]
    excluded["models"] = HOSTILE[2] + " " + HOSTILE[3]
    excluded["reasons"] = list(HOSTILE)
    excluded["findings"] = [
        {
            "device_id": HOSTILE[4],
            "device_type": HOSTILE[0],
            "manufacturer": HOSTILE[2],
            "model": HOSTILE[1],
            "firmware_version": HOSTILE[3],
            "reason": "FIRMWARE_UPGRADE_REQUIRED",
        }
    ]
    plan["eligible"][0]["models"] = HOSTILE[1]
    plan["eligible"][0]["payload"]["supplier_mpid"] = HOSTILE[0]
    plan["schedule"]["by_supplier"][0]["supplier_mpid"] = HOSTILE[0]
    for row, value in zip(plan["quarantine"], HOSTILE, strict=False):
        row["value"] = value
        row["installation_id"] = value
        row["reason"] = value
    plan["cohort"]["name"] = HOSTILE[1]
    plan["extracts"][0]["path"] = HOSTILE[0]
    plan["as_of"] = HOSTILE[3]
    return plan


def test_hostile_values_are_escaped_in_the_page(plan: dict[str, Any]) -> None:
    page = render_html(build_report(_hostile_plan(plan)))
    lowered = page.lower()
    assert "<script>alert" not in lowered
    assert "<img" not in lowered
    assert "onerror=alert(1)>" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Smith &amp; Sons" in page
    assert "O&#39;Brien" in page
    assert "Smith & Sons" not in page
    assert "O'Brien" not in page
    # The page's own markup is intact: exactly its one script element, the one it ships.
    assert lowered.count("<script") == 1
    # In attributes too: the reason dropdown's option values.
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_hostile_values_are_neutralised_in_the_csvs(plan: dict[str, Any], tmp_path: Path) -> None:
    report = build_report(_hostile_plan(plan))
    write_csvs(report, tmp_path)
    with (tmp_path / "quarantine.csv").open(newline="", encoding="utf-8") as handle:
        values = [row["value"] for row in csv.DictReader(handle)]
    assert "'" + HOSTILE[4] in values
    assert HOSTILE[4] not in values
    with (tmp_path / "excluded.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    hostile_row = next(row for row in rows if row["installation_id"] == HOSTILE[0])
    assert hostile_row["supplier_mpid"] == HOSTILE[1]
    with (tmp_path / "reasons.csv").open(newline="", encoding="utf-8") as handle:
        reasons = [row["reason"] for row in csv.DictReader(handle)]
    assert "'" + HOSTILE[4] in reasons
    for path in tmp_path.glob("*.csv"):
        for row in csv.reader(path.open(newline="", encoding="utf-8")):
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), path


def test_csvs_have_their_headers_and_rows(report: dict[str, Any], tmp_path: Path) -> None:
    written = write_csvs(report, tmp_path / "csv")
    assert [path.name for path in written] == [f"{name}.csv" for name in CSV_TABLES]
    expected_rows = {
        "reasons": len(report["reasons"]),
        "combinations": len(report["combinations"]),
        "suppliers": len(report["suppliers"]),
        "firmware_upgrades": len(report["firmware_upgrades"]),
        "schedule": len(report["schedule"]["by_supplier"]),
        "excluded": report["totals"]["excluded"],
        "quarantine": report["totals"]["quarantine_entries"],
    }
    for path in written:
        name = path.stem
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        assert reader.fieldnames == [column for column, _ in CSV_TABLES[name]]
        assert len(rows) == expected_rows[name], name
        assert rows, name
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(p.name for p in written)


def test_an_empty_plan_still_reports(plan: dict[str, Any], tmp_path: Path) -> None:
    empty = copy.deepcopy(plan)
    empty["eligible"], empty["excluded"], empty["quarantine"] = [], [], []
    empty["schedule"]["by_supplier"] = []
    report = build_report(empty)
    assert report["totals"]["installations"] == 0
    assert not all(check["holds"] for check in report["checks"])
    assert "check" in render_html(report)
    for path in write_csvs(report, tmp_path):
        assert len(path.read_text().splitlines()) == 1


def _table_rows(page: str, section: str) -> tuple[list[str], list[str]]:
    """The rows of a section's table laid out at once, and those waiting in its template."""
    body = page.split(f'<section id="{section}"', 1)[1].split("<tbody>", 1)[1]
    body = body.split("</tbody>", 1)[0]
    live, _, waiting = body.partition("<template data-more-rows>")
    return re.findall(r"<tr>", live), re.findall(r"<tr>", waiting)


def test_a_long_table_lays_out_one_page_and_keeps_the_rest_for_the_script(
    plan: dict[str, Any],
) -> None:
    """A national cohort's tens of thousands of excluded installations: only the first page is
    laid out (a browser took over a minute over 80,000 rows); every other row is in the page,
    escaped like the first, in a template the script pages through."""
    big = copy.deepcopy(plan)
    first = big["excluded"][0]
    count = 2 * PAGE_ROWS + 7
    big["excluded"] = [
        {**first, "installation_id": f"{first['installation_id']}-{index:05d}"}
        for index in range(count)
    ]
    big["excluded"][-1]["installation_id"] = HOSTILE[0]
    big["quarantine"] = big["quarantine"][:3]
    page = render_html(build_report(big))
    live, waiting = _table_rows(page, "excluded")
    assert (len(live), len(waiting)) == (PAGE_ROWS, count - PAGE_ROWS)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert f"shows the first {PAGE_ROWS} of {count:,}" in " ".join(page.split())
    assert f'data-page-rows="{PAGE_ROWS}"' in page
    live, waiting = _table_rows(page, "quarantine")  # short: laid out whole, no template
    assert (len(live), len(waiting)) == (3, 0)


def test_a_short_table_is_laid_out_whole(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert len(report["excluded"]) < PAGE_ROWS
    live, waiting = _table_rows(page, "excluded")
    assert (len(live), len(waiting)) == (len(report["excluded"]), 0)
    assert "<noscript>" not in page
