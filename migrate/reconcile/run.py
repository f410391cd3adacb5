"""One reconciliation, end to end: read the three sides, compare, requeue if asked, verify
the audit log, write the report. `reconcile` is what `migrate reconcile` calls.

The store's batch is read, and its audit log verified, on two more threads while the
extract and the inventory are read: the log grows with every batch ever run, and reading is
mostly the database's and Arrow's work, which leave the interpreter free. They read through
a snapshot (`migrate.store.snapshot`), so commit workers are not held up meanwhile. A
requeue's records are then verified on top of what was verified.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
from sqlalchemy import Engine

from migrate.errors import ConfigError
from migrate.logs import get_logger
from migrate.reconcile.compare import compare
from migrate.reconcile.report import (
    AuditState,
    ReconciliationReport,
    build_report,
    write_csvs,
    write_html,
    write_json,
)
from migrate.reconcile.requeue import RequeueResult, candidates
from migrate.reconcile.requeue import requeue as requeue_requests
from migrate.reconcile.sources import StoreSide, other_batches, read_side, read_store
from migrate.store import audit_log
from migrate.store.audit_verify import verify_log_fast
from migrate.store.engine import require_current
from migrate.store.snapshot import reader

log = get_logger(__name__)

DEFAULT_INVENTORY_MAPPING = "dcc_inventory"
DEFAULT_STUCK_AFTER = dt.timedelta(hours=1)
JSON_NAME = "reconciliation.json"
HTML_NAME = "reconciliation.html"
CSV_FOLDER = "csv"


@dataclass(frozen=True)
class ReconciliationResult:
    """What a caller acts on: the counts, whether anything is discrepant (exit 0 only when
    not), the audit chain's head and whether it verifies, what was requeued and written."""

    batch: str
    cohort: str
    installations: int
    by_category: dict[str, int]
    by_discrepancy: dict[str, dict[str, int]]
    discrepant_installations: int
    discrepant: bool
    checks_hold: bool
    audit_head_seq: int | None
    audit_head_hash: str | None
    audit_verified: bool
    audit_problem: str | None
    requeued: int
    written: list[Path]
    report: ReconciliationReport


def _aware(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(None, "`now` has no time zone: give an aware datetime", key="now")
    return moment.astimezone(dt.UTC)


def _read_store(engine: Engine, batch: str) -> StoreSide:
    with engine.connect() as connection:
        return read_store(connection, batch)


def _audit(engine: Engine, key: bytes | None, after: AuditState | None = None) -> AuditState:
    """The head kept apart and the whole log verified against it, in one snapshot."""
    with engine.connect() as connection:
        head = audit_log.head(connection)
        verification = verify_log_fast(
            connection, key, after=None if after is None else after.verification
        )
    return AuditState(
        head_seq=None if head is None else head[0],
        head_hash=None if head is None else head[1],
        verification=verification,
    )


def _write(report: ReconciliationReport, out: Path) -> list[Path]:
    """The JSON, the page and the CSVs, each written whole or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / JSON_NAME)
    write_html(report, out / HTML_NAME)
    return [out / JSON_NAME, out / HTML_NAME, *write_csvs(report, out / CSV_FOLDER)]


def reconcile(
    engine: Engine,
    batch: str,
    *,
    inventory: Path,
    inventory_mapping: str | None = None,
    extract: Path | None = None,
    extract_mapping: str | None = None,
    out: Path | None = None,
    stuck_after: dt.timedelta = DEFAULT_STUCK_AFTER,
    requeue: bool = False,
    actor: str,
    key: bytes | None,
    now: dt.datetime | None = None,
    mappings_dir: Path | None = None,
) -> ReconciliationResult:
    """Reconcile one batch against the DCC's inventory (and the supplier's extract, if
    given); with `requeue`, move its stuck and retryable requests back to STAGED."""
    if (extract is None) != (extract_mapping is None):
        raise ConfigError(None, "give the extract and its mapping together", key="extract")
    if stuck_after <= dt.timedelta(0):
        raise ConfigError(None, "the stuck threshold must be positive", key="stuck_after")
    require_current(engine)
    as_of = _aware(now)
    with reader(engine) as snapshot, ThreadPoolExecutor(2, "reconcile") as pool:
        reading = pool.submit(_read_store, snapshot, batch)
        verifying = pool.submit(_audit, snapshot, key)
        dcc = read_side(inventory, inventory_mapping or DEFAULT_INVENTORY_MAPPING, mappings_dir)
        supplier = (
            read_side(extract, extract_mapping, mappings_dir)
            if extract is not None and extract_mapping is not None
            else None
        )
        store = reading.result()
        listed = dcc.installations.column("installation_id")
        outside = listed.filter(
            pc.invert(pc.is_in(listed, value_set=store.requests.column("installation_id")))
        )
        with snapshot.connect() as connection:
            others = other_batches(connection, batch, outside.drop_null().to_pylist())
        comparison = compare(store, dcc, supplier, others, now=as_of, stuck_after=stuck_after)
        audit = verifying.result()
    log.info(
        "reconcile.compared",
        batch=batch,
        installations=comparison.installations.num_rows,
        **{category.lower(): count for category, count in comparison.by_category.items() if count},
    )
    requeued: RequeueResult | None = None
    if requeue:
        with engine.connect() as connection:
            audit_log.require_matching_key(connection, key)
    if requeue and not audit.verification.ok:
        # Extending a log that does not verify would bury the evidence: report, move nothing.
        log.error("reconcile.requeue_refused", batch=batch, problem=audit.verification.problem)
    elif requeue:
        chosen, left = candidates(comparison.installations)
        inputs = {"plan": store.plan.sha256, "inventory": dcc.file.sha256}
        if supplier is not None:
            inputs["extract"] = supplier.file.sha256
        requeued = requeue_requests(
            engine,
            chosen,
            batch=batch,
            cutoff=as_of - stuck_after,
            left=left,
            actor=actor,
            key=key,
            inputs=inputs,
        )
        log.info(
            "reconcile.requeued",
            batch=batch,
            requeued=requeued.requeued,
            left=requeued.left,
            moved_on=requeued.moved_on,
        )
        if requeued.requeued:
            with reader(engine) as snapshot:
                audit = _audit(snapshot, key, after=audit)
    report = build_report(
        store,
        dcc,
        supplier,
        comparison,
        audit,
        requeue_requested=requeue,
        requeued=requeued,
        as_of=as_of,
        stuck_after=stuck_after,
    )
    written = _write(report, out) if out is not None else []
    head = report.head
    return ReconciliationResult(
        batch=batch,
        cohort=store.cohort,
        installations=head["totals"]["installations"],
        by_category=comparison.by_category,
        by_discrepancy=comparison.by_discrepancy,
        discrepant_installations=head["totals"]["discrepant"],
        discrepant=report.discrepant,
        checks_hold=all(check["holds"] for check in head["checks"]),
        audit_head_seq=audit.head_seq,
        audit_head_hash=audit.head_hash,
        audit_verified=audit.verification.ok,
        audit_problem=audit.verification.problem,
        requeued=0 if requeued is None else requeued.requeued,
        written=written,
        report=report,
    )
