"""The dry-run report a programme manager reads before go-live: what a plan would migrate,
what it would not and why, and how long it takes.

`build_report` turns a plan document into a report model (versioned JSON); `render_html`
and `write_csvs` present that model, so that the page, the CSVs and the JSON never disagree.
The model is computed from the plan alone, with no clock, so the same plan gives the same
bytes and a report can be tied to its plan by the input hashes it repeats.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from markupsafe import Markup

from migrate.report import page, svg
from migrate.report.csv_export import write_csv
from migrate.report.page import plural as _plural
from migrate.report.page import text as _text

REPORT_VERSION = 1
UNKNOWN_SUPPLIER = "(unknown)"  # as the plan's schedule names a missing supplier
NO_DEVICES = "(no devices)"  # the models label of an installation with no usable device
FIRMWARE_REASON = "FIRMWARE_UPGRADE_REQUIRED"
FINDING_FIELDS = ("device_id", "device_type", "manufacturer", "model", "firmware_version")
QUARANTINE_FIELDS = ("source_file", "source_row", "installation_id", "column", "value", "reason")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _input(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the report repeats of a plan input: enough to check it is the same file."""
    record = record or {}
    return {key: record.get(key) for key in ("name", "path", "bytes", "sha256") if key in record}


def _supplier(value: object) -> str:
    return UNKNOWN_SUPPLIER if value is None else str(value)


def _models(value: object) -> str:
    return _text(value) or NO_DEVICES


def _finding_detail(finding: Mapping[str, Any]) -> str:
    device = " ".join(
        _text(finding.get(name))
        for name in ("device_type", "device_id", "manufacturer", "model")
        if finding.get(name) is not None
    )
    firmware = finding.get("firmware_version")
    firmware_text = f" firmware {firmware}" if firmware is not None else ""
    return f"{device}{firmware_text}: {_text(finding.get('reason'))}"


def _totals(
    plan: Mapping[str, Any],
    eligible: list[Mapping[str, Any]],
    excluded: list[Mapping[str, Any]],
    reasons: Counter[str],
) -> dict[str, Any]:
    summary = plan.get("summary") or {}
    ingest = plan.get("ingest") or {}
    read = _count(ingest.get("rows_read"))
    accepted = _count(ingest.get("rows_accepted"))
    quarantined = _count(ingest.get("rows_quarantined"))
    duplicates = _count(ingest.get("duplicates"))
    return {
        "installations": len(eligible) + len(excluded),
        "eligible": len(eligible),
        "excluded": len(excluded),
        "eligible_devices": _count(summary.get("eligible_devices")),
        "excluded_devices": sum(_count(item.get("devices")) for item in excluded),
        "reasons_given": sum(reasons.values()),
        "rows_read": read,
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
        "duplicates": duplicates,
        "blank_rows": _count(ingest.get("blank_rows")),
        "trailer_rows": _count(ingest.get("trailer_rows")),
        "quarantine_entries": len(plan.get("quarantine") or []),
        "installations_with_quarantined_rows": _count(
            ingest.get("installations_with_quarantined_rows")
        ),
        # Recomputed rather than copied: the report checks the plan, it does not trust it.
        "accounting_holds": read == accepted + quarantined + duplicates,
    }


def _checks(
    plan: Mapping[str, Any],
    totals: Mapping[str, Any],
    reasons: Counter[str],
    eligible_by_supplier: Counter[str],
) -> list[dict[str, Any]]:
    """Cross-checks between the plan's summaries and its lists: a plan edited by hand, or
    made by a faulty tool, shows here before anyone acts on it."""
    summary = plan.get("summary") or {}
    schedule = plan.get("schedule") or {}
    scheduled = {
        _supplier(row.get("supplier_mpid")): _count(row.get("eligible"))
        for row in schedule.get("by_supplier") or []
    }
    listed = {key: int(value) for key, value in (summary.get("excluded_by_reason") or {}).items()}
    return [
        {
            "check": "ingest rows: read = accepted + quarantined + duplicates",
            "holds": bool(totals["accounting_holds"]),
            "detail": f"{totals['rows_read']} = {totals['rows_accepted']} + "
            f"{totals['rows_quarantined']} + {totals['duplicates']}",
        },
        {
            "check": "installations = eligible + excluded (plan summary)",
            "holds": summary.get("installations") == totals["installations"]
            and summary.get("eligible") == totals["eligible"]
            and summary.get("excluded") == totals["excluded"],
            "detail": f"summary {summary.get('installations')} = {summary.get('eligible')} + "
            f"{summary.get('excluded')}; lists {totals['installations']} = "
            f"{totals['eligible']} + {totals['excluded']}",
        },
        {
            "check": "excluded by reason: plan summary matches the excluded list",
            "holds": listed == dict(reasons),
            "detail": f"{sum(listed.values())} in summary, {sum(reasons.values())} in list",
        },
        {
            "check": "schedule: eligible per supplier matches the eligible list",
            "holds": scheduled == dict(eligible_by_supplier),
            "detail": f"{sum(scheduled.values())} scheduled, "
            f"{sum(eligible_by_supplier.values())} eligible",
        },
        {
            "check": "schedule finishes inside the cohort's window",
            "holds": bool(schedule.get("fits_window")),
            "detail": f"finish {schedule.get('finish')}, window end {schedule.get('window_end')}",
        },
    ]


def build_report(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The report model of a plan document (as `migrate.plan.load_plan` returns it): one pass
    over each of the plan's lists, everything sorted, nothing from the clock."""
    eligible = list(plan.get("eligible") or [])
    excluded = list(plan.get("excluded") or [])
    quarantine = list(plan.get("quarantine") or [])
    schedule = plan.get("schedule") or {}

    eligible_by_supplier: Counter[str] = Counter()
    combos: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in eligible:
        payload = entry.get("payload") or {}
        eligible_by_supplier[_supplier(payload.get("supplier_mpid"))] += 1
        combos[_models(entry.get("models"))][0] += 1

    reasons: Counter[str] = Counter()
    excluded_by_supplier: Counter[str] = Counter()
    firmware: Counter[tuple[str, str, str, str]] = Counter()
    firmware_installations: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    excluded_rows = []
    for item in excluded:
        codes = [_text(code) for code in item.get("reasons") or []]
        reasons.update(codes)
        excluded_by_supplier[_supplier(item.get("supplier_mpid"))] += 1
        combos[_models(item.get("models"))][1] += 1
        findings = [
            {name: finding.get(name) for name in (*FINDING_FIELDS, "reason")}
            for finding in item.get("findings") or []
        ]
        for finding in findings:
            if finding["reason"] == FIRMWARE_REASON:
                key = tuple(_text(finding[name]) for name in FINDING_FIELDS[1:])
                firmware[key] += 1
                firmware_installations[key].add(_text(item.get("installation_id")))
        excluded_rows.append(
            {
                "installation_id": item.get("installation_id"),
                "supplier_mpid": _supplier(item.get("supplier_mpid")),
                "mode": item.get("mode"),
                "models": _models(item.get("models")),
                "devices": _count(item.get("devices")),
                "quarantined_rows": _count(item.get("quarantined_rows")),
                "reasons": "; ".join(codes),
                "reason_codes": codes,
                "findings": findings,
                "finding_details": "; ".join(_finding_detail(f) for f in findings),
            }
        )
    excluded_rows.sort(key=lambda row: (_text(row["installation_id"]), row["supplier_mpid"]))

    totals = _totals(plan, eligible, excluded, reasons)
    days_by_supplier = {
        _supplier(row.get("supplier_mpid")): row for row in schedule.get("by_supplier") or []
    }
    suppliers = []
    for name in sorted(set(eligible_by_supplier) | set(excluded_by_supplier)):
        timetable = days_by_supplier.get(name) or {}
        suppliers.append(
            {
                "supplier_mpid": name,
                "eligible": eligible_by_supplier[name],
                "excluded": excluded_by_supplier[name],
                "installations": eligible_by_supplier[name] + excluded_by_supplier[name],
                "days": _count(timetable.get("days")),
                "finish": timetable.get("finish"),
            }
        )

    quarantine_rows = [{name: row.get(name) for name in QUARANTINE_FIELDS} for row in quarantine]
    quarantine_rows.sort(
        key=lambda row: (
            _text(row["source_file"]),
            row["source_row"] if isinstance(row["source_row"], int) else -1,
            _text(row["column"]),
            _text(row["reason"]),
            _text(row["value"]),
        )
    )
    tool = plan.get("tool") or {}
    return {
        "report_version": REPORT_VERSION,
        "report": "dry_run",
        "plan": {
            "plan_version": plan.get("plan_version"),
            "tool": {"name": tool.get("name"), "version": tool.get("version")},
            "cohort": _input(plan.get("cohort")),
            "mapping": _input(plan.get("mapping")),
            "extracts": [_input(record) for record in plan.get("extracts") or []],
            "as_of": plan.get("as_of"),
        },
        "totals": totals,
        "checks": _checks(plan, totals, reasons, eligible_by_supplier),
        "reasons": [
            {"reason": reason, "installations": count}
            for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "combinations": [
            {"models": models, "eligible": counts[0], "excluded": counts[1]}
            for models, counts in sorted(
                combos.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0])
            )
        ],
        "suppliers": suppliers,
        "firmware_upgrades": [
            {
                "device_type": key[0],
                "manufacturer": key[1],
                "model": key[2],
                "firmware_version": key[3],
                "devices": count,
                "installations": len(firmware_installations[key]),
            }
            for key, count in sorted(firmware.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "schedule": {
            "start": schedule.get("start"),
            "finish": schedule.get("finish"),
            "days": _count(schedule.get("days")),
            "capacity_per_supplier_per_day": schedule.get("capacity_per_supplier_per_day"),
            "window_end": schedule.get("window_end"),
            "fits_window": bool(schedule.get("fits_window")),
            "by_supplier": [
                {
                    "supplier_mpid": _supplier(row.get("supplier_mpid")),
                    "eligible": _count(row.get("eligible")),
                    "days": _count(row.get("days")),
                    "finish": row.get("finish"),
                }
                for row in sorted(
                    schedule.get("by_supplier") or [],
                    key=lambda row: _supplier(row.get("supplier_mpid")),
                )
            ],
        },
        "quarantine_by_reason": [
            {"reason": reason, "entries": count}
            for reason, count in sorted(
                Counter(_text(row["reason"]) for row in quarantine_rows).items(),
                key=lambda kv: (-kv[1], kv[0]),
            )
        ],
        "excluded": excluded_rows,
        "quarantine": quarantine_rows,
    }


def dump_report(report: Mapping[str, Any]) -> str:
    """The report as JSON text: sorted keys, so the same report is the same bytes."""
    return json.dumps(report, sort_keys=True, indent=2) + "\n"


# --- HTML ------------------------------------------------------------------------------------


def _date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def _charts(report: Mapping[str, Any]) -> dict[str, Markup]:
    totals = report["totals"]
    split = (svg.Series("eligible", "s-eligible"), svg.Series("excluded", "s-excluded"))
    reasons = svg.bar_chart(
        "chart-reasons",
        "Eligible installations and excluded installations by reason",
        f"{totals['eligible']:,} eligible; {totals['excluded']:,} excluded installations, "
        f"which give {totals['reasons_given']:,} reasons (an installation can have several).",
        [svg.Bar("eligible", (totals["eligible"], 0))]
        + [svg.Bar(row["reason"], (0, row["installations"])) for row in report["reasons"]],
        split,
        show_parts=False,
    )
    suppliers = svg.bar_chart(
        "chart-suppliers",
        "Installations by supplier",
        "Eligible and excluded installations of each supplier (MPID).",
        [
            svg.Bar(row["supplier_mpid"], (row["eligible"], row["excluded"]))
            for row in report["suppliers"]
        ],
        split,
    )
    combinations = svg.bar_chart(
        "chart-combinations",
        "Installations by device model combination",
        "Eligible and excluded installations of each combination of device models.",
        [
            svg.Bar(row["models"], (row["eligible"], row["excluded"]))
            for row in report["combinations"]
        ],
        split,
        width=1100,
    )
    firmware = svg.bar_chart(
        "chart-firmware",
        "Devices needing a firmware upgrade, by model and firmware",
        "Devices of excluded installations whose firmware is older than the cohort accepts.",
        [
            svg.Bar(
                f"{row['device_type']} {row['manufacturer']} {row['model']} "
                f"fw {row['firmware_version']}",
                (row["devices"],),
                note=f"in {_plural(row['installations'], 'installation')}",
            )
            for row in report["firmware_upgrades"]
        ],
        (svg.Series("devices", "s-firmware"),),
    )
    schedule = report["schedule"]
    start = _date(schedule["start"])
    timeline = (
        svg.timeline_chart(
            "chart-schedule",
            "Schedule: days to migrate each supplier's eligible installations",
            f"From {schedule['start']} at {schedule['capacity_per_supplier_per_day']} "
            f"installations per supplier per day; all finish by {schedule['finish']}.",
            start,
            [
                svg.Span(
                    row["supplier_mpid"],
                    row["days"],
                    note=f"{_plural(row['days'], 'day')} · {row['eligible']:,} inst. · "
                    f"to {row['finish']}",
                )
                for row in schedule["by_supplier"]
            ],
            window_end=_date(schedule["window_end"]),
        )
        if start
        else Markup("")
    )
    return {
        "reasons": reasons,
        "suppliers": suppliers,
        "combinations": combinations,
        "firmware": firmware,
        "schedule": timeline,
    }


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained page (inline CSS, SVG and a little JS; nothing fetched at view
    time), every value escaped, under a Content-Security-Policy (see `page.render`)."""
    return page.render(
        "dry_run.html.j2", report=report, charts=_charts(report), no_devices=NO_DEVICES
    )


# --- CSV -------------------------------------------------------------------------------------

_STRING = pa.string()
_INT = pa.int64()
CSV_TABLES: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "reasons": (("reason", _STRING), ("installations", _INT)),
    "combinations": (("models", _STRING), ("eligible", _INT), ("excluded", _INT)),
    "suppliers": (
        ("supplier_mpid", _STRING),
        ("eligible", _INT),
        ("excluded", _INT),
        ("installations", _INT),
        ("days", _INT),
        ("finish", _STRING),
    ),
    "firmware_upgrades": (
        ("device_type", _STRING),
        ("manufacturer", _STRING),
        ("model", _STRING),
        ("firmware_version", _STRING),
        ("devices", _INT),
        ("installations", _INT),
    ),
    "schedule": (
        ("supplier_mpid", _STRING),
        ("eligible", _INT),
        ("days", _INT),
        ("finish", _STRING),
    ),
    "excluded": (
        ("installation_id", _STRING),
        ("supplier_mpid", _STRING),
        ("mode", _STRING),
        ("models", _STRING),
        ("devices", _INT),
        ("quarantined_rows", _INT),
        ("reasons", _STRING),
        ("finding_details", _STRING),
    ),
    "quarantine": (
        ("source_file", _STRING),
        ("source_row", _INT),
        ("installation_id", _STRING),
        ("column", _STRING),
        ("value", _STRING),
        ("reason", _STRING),
    ),
}


def _csv_rows(report: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The rows of one CSV: the schedule's are its per-supplier lines."""
    return report["schedule"]["by_supplier"] if name == "schedule" else report[name]


def _cell(value: object, kind: pa.DataType) -> object:
    """A value as its column's type: text as text, a count only when it is one."""
    if kind == _INT:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None if value is None else _text(value)


def _table(rows: list[Mapping[str, Any]], columns: tuple[tuple[str, pa.DataType], ...]) -> pa.Table:
    return pa.table(
        {
            name: pa.array([_cell(row.get(name), kind) for row in rows], kind)
            for name, kind in columns
        }
    )


def write_csvs(report: Mapping[str, Any], directory: Path) -> list[Path]:
    """One CSV per table of the report, each written whole or not at all, formula cells
    neutralised (`csv_export.write_csv`)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns in CSV_TABLES.items():
        path = directory / f"{name}.csv"
        write_csv(_table(_csv_rows(report, name), columns), path)
        written.append(path)
    return written
