"""The reconciliation report: a versioned JSON model, rendered as one HTML page and CSVs, so
that the three never disagree.

The model is a head (everything but the lists, as plain JSON values) and three Arrow tables:
every installation, every device with a discrepancy, every row a mapping could not read.
The lists reach hundreds of thousands of rows, so their JSON is built column-wise (as the
plan's is), each entry an array of the values its list's `*_fields` name (as the plan's
devices are: a key name per value would double the file), one entry a line, and their CSVs
are written by Arrow; the page shows the discrepant installations, up to HTML_ROWS of each
category, and says where the rest are. Nothing in it comes from the clock but `as_of`, which
the caller passes: the same store and files give the same bytes, except the audit head,
which moves with every record written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup

from migrate import __version__, json_text
from migrate.audit import Verification
from migrate.reconcile.compare import (
    DEVICE_DISCREPANCIES,
    MEANING,
    RULES,
    SETTLED,
    Category,
    Comparison,
    Discrepancy,
)
from migrate.reconcile.requeue import RequeueResult
from migrate.reconcile.sources import MappedSide, StoreSide
from migrate.report import page, svg
from migrate.report.csv_export import write_csv
from migrate.whole_file import write_whole

REPORT_VERSION = 1
HTML_ROWS = 500  # discrepant installations shown per category; the CSV and JSON hold all
UNKNOWN_SUPPLIER = "(unknown)"
CSV_NAMES = ("installations", "devices", "categories", "discrepancies", "unreadable")
# The accounting checks, by the name the report gives each (failed_checks words them).
CATEGORIES_ADD_UP = "installations = the sum of the categories"
SIDES_ADD_UP = "installations = batch + excluded at planning + only in the DCC inventory"
REQUESTS_MATCH = "requests of the batch = its installations in request-state categories"
AUDIT_VERIFIES = "the audit log verifies against its head"


@dataclass(frozen=True)
class AuditState:
    """The audit chain as the report states it: its head kept apart, and the verification
    of the whole log against it."""

    head_seq: int | None
    head_hash: str | None
    verification: Verification

    def as_dict(self) -> dict[str, Any]:
        check = self.verification
        return {
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "verified": check.ok,
            "records": check.count,
            "first_bad_seq": check.first_bad_seq,
            "problem": check.problem,
        }


@dataclass(frozen=True)
class ReconciliationReport:
    head: dict[str, Any]
    installations: pa.Table
    devices: pa.Table
    unreadable: pa.Table

    @property
    def discrepant(self) -> bool:
        return bool(self.head["discrepant"])


def _side(side: MappedSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        **side.file.as_dict(),
        "mapping": {"name": side.mapping_name, "sha256": side.mapping.sha256},
        "compared_fields": sorted(side.provides),
        "read": {
            name: side.summary[name]
            for name in (
                "rows_read",
                "rows_accepted",
                "rows_quarantined",
                "duplicates",
                "blank_rows",
                "devices",
                "installations",
                "balanced",
                "quarantined_by_reason",
                "warnings_by_reason",
            )
        },
    }


def _unreadable(inventory: MappedSide, extract: MappedSide | None) -> pa.Table:
    """The rows each side's mapping refused, the side named (not the path it was read from)."""
    parts = []
    for name, side in (("inventory", inventory), ("extract", extract)):
        if side is None:
            continue
        rows = side.quarantine
        parts.append(
            pa.table(
                {
                    "side": pa.repeat(pa.scalar(name), rows.num_rows),
                    "file": pa.repeat(pa.scalar(side.file.name), rows.num_rows),
                    **{column: rows.column(column) for column in rows.column_names},
                }
            )
        )
    return pa.concat_tables(parts).combine_chunks()


REQUEUE_REFUSED = (
    "the audit log does not verify: nothing was requeued, since extending it would bury the "
    "evidence; find out what changed it (`migrate audit verify`) first"
)


def _requeue(result: RequeueResult | None, requested: bool) -> dict[str, Any]:
    if result is None:
        if requested:  # asked for, and refused: run() moves nothing on a log that fails
            return {"requested": True, "requeued": 0, "refused": REQUEUE_REFUSED}
        return {"requested": False, "requeued": 0}
    return {
        "requested": requested,
        "requeued": result.requeued,
        "stuck": result.stuck,
        "failed_retryable": result.failed,
        "left_for_review": result.left,
        "moved_on_meanwhile": result.moved_on,
        "audit_head_seq": result.audit_head,
    }


def _suppliers(installations: pa.Table) -> list[dict[str, Any]]:
    supplier = pc.fill_null(installations.column("supplier_mpid"), UNKNOWN_SUPPLIER)
    table = pa.table({"supplier": supplier, "discrepant": installations.column("discrepant")})
    counted = table.group_by(["supplier", "discrepant"]).aggregate([([], "count_all")])
    rows: dict[str, dict[str, Any]] = {}
    for row in counted.to_pylist():
        entry = rows.setdefault(
            row["supplier"], {"supplier_mpid": row["supplier"], "settled": 0, "discrepant": 0}
        )
        entry["discrepant" if row["discrepant"] else "settled"] += row["count_all"]
    return [rows[name] for name in sorted(rows)]


def _timestamps(values: pa.Array) -> pa.Array:
    text = pc.strftime(values.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, "Z", "")


def _waiting_since(installations: pa.Table) -> pa.Table:
    """`updated_at` as `waiting_since`: when a request waiting on the DCC (SUBMITTING,
    ACCEPTED) last moved; none for the others, whose time says nothing to reconcile and
    would make every report differ."""
    waiting = pc.is_in(
        installations.column("state"), value_set=pa.array(["SUBMITTING", "ACCEPTED"])
    )
    stamps = installations.column("updated_at").combine_chunks()
    since = pc.if_else(
        pc.fill_null(waiting, False), _timestamps(stamps), pa.scalar(None, pa.string())
    )
    at = installations.column_names.index("updated_at")
    return installations.remove_column(at).add_column(at, "waiting_since", since)


def build_report(
    store: StoreSide,
    inventory: MappedSide,
    extract: MappedSide | None,
    comparison: Comparison,
    audit: AuditState,
    *,
    requeue_requested: bool,
    requeued: RequeueResult | None,
    as_of: dt.datetime,
    stuck_after: dt.timedelta,
) -> ReconciliationReport:
    """The model of one reconciliation."""
    installations = _waiting_since(comparison.installations)
    if requeued is not None:
        moved = pa.array(requeued.installation_ids, pa.string())
        installations = installations.append_column(
            "requeued", pc.is_in(installations.column("installation_id"), value_set=moved)
        )
    else:
        installations = installations.append_column(
            "requeued", pa.repeat(pa.scalar(False), installations.num_rows)
        )
    total = installations.num_rows
    discrepant_count = int(
        pc.sum(pc.cast(installations.column("discrepant"), pa.int64())).as_py() or 0
    )
    by_category = comparison.by_category
    categorised = sum(by_category.values())
    batch, excluded, only = (
        comparison.batch_installations,
        comparison.excluded_installations,
        comparison.inventory_only_installations,
    )
    by_state = pc.value_counts(store.requests.column("state")).to_pylist()
    checks = [
        {
            "check": CATEGORIES_ADD_UP,
            "holds": categorised == total,
            "detail": f"{total} = " + " + ".join(str(by_category[c]) for c in Category),
        },
        {
            "check": SIDES_ADD_UP,
            "holds": batch + excluded + only == total,
            "detail": f"{total} = {batch} + {excluded} + {only}",
        },
        {
            "check": REQUESTS_MATCH,
            "holds": store.requests.num_rows == batch,
            "detail": f"{store.requests.num_rows} requests, {batch} installations",
        },
        {
            "check": AUDIT_VERIFIES,
            "holds": audit.verification.ok,
            "detail": audit.verification.problem or f"{audit.verification.count} records",
        },
    ]
    head: dict[str, Any] = {
        "report": "reconciliation",
        "report_version": REPORT_VERSION,
        "tool": {"name": "smets1-migrate", "version": __version__},
        "batch": {"name": store.batch, "cohort": store.cohort, "plan": store.plan.as_dict()},
        "as_of": as_of.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "stuck_after_seconds": int(stuck_after.total_seconds()),
        "inventory": _side(inventory),
        "extract": _side(extract),
        "store": {
            "requests": store.requests.num_rows,
            "by_state": {
                row["values"]: row["counts"] for row in sorted(by_state, key=lambda r: r["values"])
            },
        },
        "totals": {
            "installations": total,
            "discrepant": discrepant_count,
            "settled": total - discrepant_count,
            "batch": batch,
            "excluded_at_planning": excluded,
            "only_in_dcc_inventory": only,
        },
        "checks": checks,
        "rules": list(RULES),
        "installation_fields": installations.column_names,
        "device_fields": comparison.devices.column_names,
        "unreadable_fields": None,
        "categories": [
            {
                "category": c.value,
                "installations": by_category[c],
                "settled": c in SETTLED,
                "meaning": MEANING[c],
            }
            for c in Category
        ],
        "discrepancies": [
            {
                "discrepancy": kind.value,
                "installations": comparison.by_discrepancy[kind]["installations"],
                "devices": comparison.by_discrepancy[kind]["devices"],
                "meaning": MEANING[kind],
            }
            for kind in Discrepancy
        ],
        "suppliers": _suppliers(installations),
        "audit": audit.as_dict(),
        "requeue": _requeue(requeued, requeue_requested),
        "discrepant": discrepant_count > 0 or not all(check["holds"] for check in checks),
    }
    unreadable = _unreadable(inventory, extract)
    head["unreadable_fields"] = unreadable.column_names
    return ReconciliationReport(head, installations, comparison.devices, unreadable)


def failed_checks(head: dict[str, Any]) -> list[str]:
    """Each check of a report's head that does not hold, as a line in words: what it expected
    and what it found, from the figures the head states (its detail is an equation, which
    does not say which side is which)."""
    totals, audit = head["totals"], head["audit"]
    total = totals["installations"]
    batch, excluded = totals["batch"], totals["excluded_at_planning"]
    only = totals["only_in_dcc_inventory"]
    categorised = sum(row["installations"] for row in head["categories"])
    words = {
        CATEGORIES_ADD_UP: f"expected {total:,} installations, found {categorised:,} in the "
        "categories",
        SIDES_ADD_UP: f"expected {total:,} installations, found {batch + excluded + only:,} "
        f"({batch:,} in the batch + {excluded:,} excluded at planning + {only:,} only in the "
        "DCC inventory)",
        REQUESTS_MATCH: f"expected {batch:,} requests (one per installation of the batch), "
        f"found {head['store']['requests']:,}",
        AUDIT_VERIFIES: "expected every record to verify, found "
        f"{audit['problem'] or 'a record that does not'}",
    }
    return [
        f"check does not hold: {check['check']}: {words.get(check['check'], check['detail'])}"
        for check in head["checks"]
        if not check["holds"]
    ]


# --- JSON ------------------------------------------------------------------------------------


def _json_column(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_list(kind):
        return pc.if_else(pc.is_null(values), json_text.NULL, json_text.string_lists(values))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return json_text.numbers(values)
    return json_text.strings(values)


def _json_rows(table: pa.Table) -> pa.Array:
    """Each row as a JSON array of its values, in column order."""
    pieces: list[pa.Array | str] = ["["]
    for index, name in enumerate(table.column_names):
        if index:
            pieces.append(",")
        pieces.append(_json_column(table.column(name)))
    return pc.binary_join_element_wise(*pieces, "]", "")


def json_chunks(report: ReconciliationReport) -> list[bytes | pa.Buffer]:
    """The report as JSON text in byte chunks: the head's keys, then one list entry a line."""
    return json_text.document(
        report.head,
        {
            "installations": _json_rows(report.installations),
            "devices": _json_rows(report.devices),
            "unreadable": _json_rows(report.unreadable),
        },
    )


def write_json(report: ReconciliationReport, path: Path) -> None:
    write_whole(path, json_chunks(report))


# --- CSV -------------------------------------------------------------------------------------


def _flat(table: pa.Table) -> pa.Table:
    """List columns joined by "; ", for a spreadsheet."""
    columns = []
    for column in table.columns:
        if pa.types.is_list(column.type):
            column = pc.binary_join(column, "; ")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _count_table(rows: list[dict[str, Any]], names: tuple[str, ...]) -> pa.Table:
    return pa.table({name: [row[name] for row in rows] for name in names})


def write_csvs(report: ReconciliationReport, directory: Path) -> list[Path]:
    """installations, devices, categories, discrepancies and unreadable rows, one CSV each,
    formula cells neutralised, each written whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = {
        "installations": _flat(report.installations),
        "devices": _flat(report.devices),
        "categories": _count_table(
            report.head["categories"], ("category", "installations", "settled", "meaning")
        ),
        "discrepancies": _count_table(
            report.head["discrepancies"], ("discrepancy", "installations", "devices", "meaning")
        ),
        "unreadable": report.unreadable,
    }
    written = []
    for name in CSV_NAMES:
        path = directory / f"{name}.csv"
        write_csv(tables[name], path)
        written.append(path)
    return written


# --- HTML ------------------------------------------------------------------------------------


def _shown(report: ReconciliationReport) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The discrepant installations the page lists (up to HTML_ROWS of each category) and
    their devices' discrepancies."""
    table = report.installations
    discrepant = table.filter(table.column("discrepant"))
    category = discrepant.column("category").combine_chunks()
    codes = pc.dictionary_encode(category).indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    rank = np.empty(len(codes), np.int64)
    starts = np.concatenate(
        [[0], np.cumsum(np.bincount(codes, minlength=codes.max(initial=-1) + 1))]
    )
    rank[order] = np.arange(len(codes)) - starts[codes[order]]
    shown = discrepant.filter(pa.array(rank < HTML_ROWS))
    ids = shown.column("installation_id")
    devices = report.devices.filter(
        pc.is_in(report.devices.column("installation_id"), value_set=ids)
    )
    return shown.to_pylist(), devices.to_pylist()


def _charts(head: dict[str, Any]) -> dict[str, Markup]:
    split = (svg.Series("settled", "s-settled"), svg.Series("discrepant", "s-discrepant"))
    categories = svg.bar_chart(
        "chart-categories",
        "Installations by category",
        "Every installation of the batch, of its plan's excluded list and of the DCC's "
        "inventory, in exactly one category.",
        [
            svg.Bar(
                row["category"],
                (row["installations"], 0) if row["settled"] else (0, row["installations"]),
            )
            for row in head["categories"]
            if row["installations"]
        ],
        split,
        show_parts=False,
    )
    kinds = svg.bar_chart(
        "chart-discrepancies",
        "Installations by discrepancy",
        "Installations carrying each discrepancy (an installation can carry several).",
        [
            svg.Bar(row["discrepancy"], (row["installations"],), note=_devices_note(row))
            for row in head["discrepancies"]
        ],
        (svg.Series("installations", "s-discrepant"),),
    )
    suppliers = svg.bar_chart(
        "chart-suppliers",
        "Installations by supplier",
        "Settled and discrepant installations of each supplier (MPID).",
        [
            svg.Bar(row["supplier_mpid"], (row["settled"], row["discrepant"]))
            for row in head["suppliers"]
        ],
        split,
    )
    return {"categories": categories, "discrepancies": kinds, "suppliers": suppliers}


def _devices_note(row: dict[str, Any]) -> str:
    return (
        f"{page.plural(row['devices'], 'device')}"
        if row["discrepancy"] in DEVICE_DISCREPANCIES
        else ""
    )


def render_html(report: ReconciliationReport) -> str:
    """One self-contained page, every value escaped (see `migrate.report.page`)."""
    shown, devices = _shown(report)
    unreadable = report.unreadable.slice(0, HTML_ROWS).to_pylist()
    return page.render(
        "reconciliation.html.j2",
        report=report.head,
        charts=_charts(report.head),
        installations=shown,
        devices=devices,
        unreadable=unreadable,
        unreadable_total=report.unreadable.num_rows,
        html_rows=HTML_ROWS,
    )


def write_html(report: ReconciliationReport, path: Path) -> None:
    write_whole(path, [render_html(report).encode("utf-8")])
