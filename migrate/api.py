"""The toolkit as a library: one function per CLI command, plain data in and out.

Another program runs a cohort by importing these; the CLI only parses, calls and renders.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migrate.config_files import load_yaml, validation_problem
from migrate.errors import ConfigError
from migrate.whole_file import write_whole

# Each command imports what it needs when it runs: `migrate ingest` should not pay for
# SQLAlchemy, Alembic and Jinja at start-up, nor `migrate stage` for the Excel reader.
if TYPE_CHECKING:
    from migrate.audit import Verification
    from migrate.cohort import CohortRules
    from migrate.cohort.cpl import CplImport
    from migrate.commit.engine import CommitOptions, CommitProgress, CommitResult
    from migrate.ingest import IngestSummary
    from migrate.mapping import Mapping
    from migrate.plan import PlanSummary
    from migrate.reconcile import ReconciliationResult
    from migrate.sim.dcc import SimulatorOptions
    from migrate.sim.extract_generator import GeneratedExtract
    from migrate.store.interventions import Intervention
    from migrate.store.progress import StateCount
    from migrate.store.staging import StageResult

__all__ = [
    "ApplyRun",
    "IngestRun",
    "PlanRun",
    "RehearsalRun",
    "RehearsalStep",
    "ReportRun",
    "UpgradeRun",
    "apply",
    "audit_export",
    "audit_verify",
    "check_cohorts",
    "check_mappings",
    "commit",
    "db_upgrade",
    "export_inventory",
    "generate_extract",
    "import_cpl",
    "ingest",
    "list_cohorts",
    "list_mappings",
    "plan",
    "reconcile",
    "rehearse",
    "report",
    "requeue",
    "sim_serve",
    "stage",
    "status",
    "withdraw",
]


@dataclass(frozen=True)
class IngestRun:
    summary: IngestSummary
    outputs: list[Path]


def ingest(
    extracts: Sequence[Path],
    mapping: str,
    out_dir: Path,
    *,
    mappings_dir: Path | None = None,
) -> IngestRun:
    """`migrate ingest`: canonical devices, installations, quarantine and duplicates on disk."""
    from migrate.ingest import OutputWriter
    from migrate.ingest import ingest as ingest_extracts

    with OutputWriter(out_dir) as writer:
        ingested = ingest_extracts(extracts, mapping, mappings_dir=mappings_dir, writer=writer)
        return IngestRun(ingested.summary, writer.finish(ingested.summary))


def list_mappings(mappings_dir: Path | None = None) -> list[Mapping]:
    from migrate.mapping import available_mappings, load_mapping

    return [load_mapping(name, mappings_dir) for name in available_mappings(mappings_dir)]


def check_mappings(names: Sequence[str], mappings_dir: Path | None = None) -> list[Mapping]:
    """Load each mapping against the schema; the first problem raises ConfigError."""
    from migrate.mapping import load_mapping

    return [load_mapping(name, mappings_dir) for name in names]


class _RehearsalExtract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    mapping: str
    # The cohort this extract rehearses; none for a file read only for reconciliation.
    cohort: str | None = None


class _RehearsalSimulator(BaseModel):
    """The bundled DCC simulator the rehearsal commits to (SimulatorOptions' fields)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    capacity: int = Field(default=100, ge=1)
    processing_ms: int = Field(default=0, ge=0)


class _Rehearsal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    extracts: list[_RehearsalExtract] = Field(min_length=1)
    simulator: _RehearsalSimulator = _RehearsalSimulator()
    # New requests per supplier per day the rehearsal's commits may send (None: the cohort's).
    capacity_per_day: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class RehearsalStep:
    """One extract of the rehearsal: its ingest, and its plan and report where it has a
    cohort."""

    extract: str
    ingest: IngestRun
    plan: PlanRun | None = None
    report: ReportRun | None = None
    stage: StageResult | None = None
    commit: CommitResult | None = None
    reconcile: ReconciliationResult | None = None


@dataclass(frozen=True)
class RehearsalRun:
    steps: list[RehearsalStep]
    database: str
    simulator: str
    status: list[StateCount]
    audit: Verification


def rehearse(
    examples_dir: Path,
    out_dir: Path,
    *,
    mappings_dir: Path | None = None,
    cohorts_dir: Path | None = None,
) -> RehearsalRun:
    """The sample cohort end to end: the bundled DCC simulator started; each extract
    ingested, planned against its cohort, reported as a dry run, staged in a store of its
    own and committed to the simulator; the DCC's inventory exported and each batch
    reconciled against it and its extract; the simulator stopped."""
    manifest = examples_dir / "rehearsal.yaml"
    if not manifest.is_file():
        raise ConfigError(
            manifest,
            f"no rehearsal manifest here (looked in {examples_dir.resolve()}): run from the "
            "smets1-migrate checkout, whose examples/ holds it, or name its folder with "
            "--examples",
        )
    try:
        rehearsal = _Rehearsal.model_validate(load_yaml(manifest))
    except ValidationError as error:
        key, problem = validation_problem(error)
        raise ConfigError(manifest, problem, key=key) from None
    # A rehearsal starts from an empty store and DCC of its own, beside its other outputs.
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("migrate.db*"):
        old.unlink()
    shutil.rmtree(out_dir / "dcc-simulator", ignore_errors=True)
    database = f"sqlite:///{out_dir / 'migrate.db'}"
    db_upgrade(database)
    from migrate.sim.dcc import SimulatorOptions, serving

    simulated = SimulatorOptions(**rehearsal.simulator.model_dump())
    with serving(out_dir / "dcc-simulator", simulated) as url:
        steps = _rehearse_extracts(
            rehearsal, examples_dir, out_dir, database, url, mappings_dir, cohorts_dir
        )
        # After the cohorts: the DCC's inventory, and each batch reconciled against it and
        # against the supplier's extract it was planned from.
        inventory = out_dir / "dcc-inventory.ndjson"
        export_inventory(url, inventory)
    steps = [
        dataclasses.replace(
            step,
            reconcile=reconcile(
                step.stage.batch,
                inventory,
                extract=examples_dir / step.extract,
                extract_mapping=step.ingest.summary.mapping,
                out=out_dir / step.plan.summary.cohort / "reconciliation",
                db=database,
                mappings_dir=mappings_dir,
            ),
        )
        if step.stage is not None and step.stage.requests and step.plan is not None
        else step
        for step in steps
    ]
    return RehearsalRun(steps, database, url, status(db=database), audit_verify(database))


def _rehearse_extracts(
    rehearsal: _Rehearsal,
    examples_dir: Path,
    out_dir: Path,
    database: str,
    simulator_url: str,
    mappings_dir: Path | None,
    cohorts_dir: Path | None,
) -> list[RehearsalStep]:
    from migrate.commit.engine import CommitOptions

    options = CommitOptions(capacity_per_day=rehearsal.capacity_per_day, poll_interval_s=0.05)
    steps = []
    for item in rehearsal.extracts:
        extract = examples_dir / item.path
        ingested = ingest(
            [extract], item.mapping, out_dir / "ingest" / item.mapping, mappings_dir=mappings_dir
        )
        if item.cohort is None:
            steps.append(RehearsalStep(item.path, ingested))
            continue
        folder = out_dir / item.cohort
        planned = plan(
            [extract],
            item.mapping,
            item.cohort,
            folder / "plan.json",
            mappings_dir=mappings_dir,
            cohorts_dir=cohorts_dir,
        )
        reported = report(
            planned.path,
            html=folder / "dry-run.html",
            csv_dir=folder / "csv",
            json_path=folder / "dry-run.json",
        )
        staged = stage(planned.path, batch=f"rehearsal-{item.cohort}", db=database)
        committed = (
            commit(
                staged.batch, simulator_url, db=database, options=options, cohorts_dir=cohorts_dir
            )
            if staged.requests
            else None  # no eligible installations: no batch to commit or reconcile
        )
        steps.append(RehearsalStep(item.path, ingested, planned, reported, staged, committed))
    return steps


def generate_extract(
    path: Path, devices: int, *, seed: int = 0, defect_rate: float = 0.0
) -> GeneratedExtract:
    """`migrate sim extract`: a synthetic Landis+Gyr-format estate of any size."""
    from migrate.sim.extract_generator import generate_long_extract

    return generate_long_extract(path, devices, seed=seed, defect_rate=defect_rate)


def list_cohorts(cohorts_dir: Path | None = None) -> list[CohortRules]:
    from migrate.cohort.loader import COHORTS

    return [COHORTS.load(name, cohorts_dir) for name in COHORTS.available(cohorts_dir)]


def check_cohorts(names: Sequence[str], cohorts_dir: Path | None = None) -> list[CohortRules]:
    """Load each cohort rule file against the schema; the first problem raises ConfigError."""
    from migrate.cohort.loader import COHORTS

    return [COHORTS.load(name, cohorts_dir) for name in names]


def import_cpl(cpl: Path, *, check: bool = False, cohorts_dir: Path | None = None) -> CplImport:
    """`migrate cohort import-cpl`: what the CPL changes in each rule file, and its rows no
    rule file takes; written unless `check`, and only once every changed file has passed
    the schema and every row has a rule file to go to."""
    from migrate.cohort.cpl import plan_import, write_import

    imported = plan_import(cpl, cohorts_dir)
    if not check:
        write_import(imported)
    return imported


@dataclass(frozen=True)
class PlanRun:
    summary: PlanSummary
    path: Path


def plan(
    extracts: Sequence[Path],
    mapping: str,
    cohort: str,
    out: Path,
    *,
    as_of: dt.date | None = None,
    mappings_dir: Path | None = None,
    cohorts_dir: Path | None = None,
) -> PlanRun:
    """`migrate plan`: the dry run, written whole to `out`; no store is touched."""
    from migrate.input_records import records_beside

    # The extracts are hashed while the plan's modules load, on a core that would be idle.
    records = records_beside(extracts)
    from migrate.plan import make_plan

    made = make_plan(
        extracts,
        mapping,
        cohort,
        as_of=as_of,
        mappings_dir=mappings_dir,
        cohorts_dir=cohorts_dir,
        extract_records=records,
    )
    made.write(out)
    return PlanRun(made.summary, out)


@dataclass(frozen=True)
class ReportRun:
    report: dict[str, object]
    written: list[Path]


def report(
    plan_path: Path,
    *,
    html: Path | None = None,
    csv_dir: Path | None = None,
    json_path: Path | None = None,
) -> ReportRun:
    """`migrate report`: the dry-run report of a plan, as HTML, CSV tables and JSON."""
    from migrate.plan import load_plan
    from migrate.report.dry_run import build_report, dump_report, render_html, write_csvs

    built = build_report(load_plan(plan_path))
    written: list[Path] = []
    if html is not None:
        _write_text(html, render_html(built))
        written.append(html)
    if csv_dir is not None:
        written.extend(write_csvs(built, csv_dir))
    if json_path is not None:
        _write_text(json_path, dump_report(built))
        written.append(json_path)
    return ReportRun(built, written)


def _write_text(path: Path, text: str) -> None:
    write_whole(path, [text.encode("utf-8")])


@dataclass(frozen=True)
class UpgradeRun:
    database: str
    before: str | None
    after: str


def db_upgrade(db: str | None = None) -> UpgradeRun:
    """`migrate db upgrade`: bring the store's schema to this toolkit's version."""
    from migrate.store.engine import make_engine, shown
    from migrate.store.engine import upgrade as upgrade_schema

    engine = make_engine(db)
    before, after = upgrade_schema(engine)
    return UpgradeRun(shown(str(engine.url)), before, after)


def stage(
    plan_path: Path,
    *,
    batch: str | None = None,
    db: str | None = None,
    actor: str | None = None,
) -> StageResult:
    """`migrate stage`: the plan's eligible installations as STAGED requests, audited."""
    from migrate.audit.key import audit_key
    from migrate.store import audit_log
    from migrate.store.engine import make_engine
    from migrate.store.staging import stage as stage_plan

    return stage_plan(
        make_engine(db),
        plan_path,
        batch=batch,
        actor=audit_log.actor_name(actor),
        key=audit_key(),
    )


def commit(
    batch: str,
    gateway: str,
    *,
    timeout_s: float = 30.0,
    db: str | None = None,
    options: CommitOptions | None = None,
    actor: str | None = None,
    on_progress: Callable[[CommitProgress], None] | None = None,
    stop: threading.Event | None = None,
    cohorts_dir: Path | None = None,
) -> CommitResult:
    """`migrate commit`: send a staged batch to the DCC until every request is settled, the
    day's capacity is spent, the DCC stays unavailable, or SIGINT/SIGTERM asks to stop."""
    from migrate.audit.key import audit_key
    from migrate.commit.connect import gateway_factory
    from migrate.commit.engine import CommitOptions
    from migrate.commit.engine import commit as commit_batch
    from migrate.signals import stop_on_signals
    from migrate.store import audit_log
    from migrate.store.engine import make_engine

    gateways, shown = gateway_factory(gateway, timeout_s=timeout_s)
    engine = make_engine(db)
    with stop_on_signals(stop or threading.Event()) as stopping:
        return commit_batch(
            engine,
            batch,
            gateways,
            options=options or CommitOptions(),
            actor=audit_log.actor_name(actor),
            key=audit_key(),
            gateway_name=shown,
            stop=stopping,
            on_progress=on_progress,
            cohorts_dir=cohorts_dir,
        )


@dataclass(frozen=True)
class ApplyRun:
    staged: StageResult
    committed: CommitResult | None  # None: the plan has no eligible installations, no batch


def apply(
    plan_path: Path,
    gateway: str,
    *,
    timeout_s: float = 30.0,
    batch: str | None = None,
    db: str | None = None,
    options: CommitOptions | None = None,
    actor: str | None = None,
    on_progress: Callable[[CommitProgress], None] | None = None,
    stop: threading.Event | None = None,
    cohorts_dir: Path | None = None,
) -> ApplyRun:
    """`migrate apply`: stage a plan (refused if its inputs changed since it was made) and
    commit it, in one go; a rerun finishes what an interrupted one left. A plan with no
    eligible installations makes no batch, so nothing is committed (nor the DCC called)."""
    staged = stage(plan_path, batch=batch, db=db, actor=actor)
    if staged.requests == 0:
        return ApplyRun(staged, None)
    committed = commit(
        staged.batch,
        gateway,
        timeout_s=timeout_s,
        db=db,
        options=options,
        actor=actor,
        on_progress=on_progress,
        stop=stop,
        cohorts_dir=cohorts_dir,
    )
    return ApplyRun(staged, committed)


def requeue(
    batch: str,
    *,
    reasons: Sequence[str] = (),
    installations: Sequence[str] = (),
    db: str | None = None,
    actor: str | None = None,
) -> Intervention:
    """`migrate requeue`: FAILED requests back to STAGED for the next commit, audited."""
    from migrate.audit.key import audit_key
    from migrate.store import audit_log
    from migrate.store.engine import make_engine
    from migrate.store.interventions import requeue_failed

    return requeue_failed(
        make_engine(db),
        batch,
        reasons=reasons,
        installations=installations,
        actor=audit_log.actor_name(actor),
        key=audit_key(),
    )


def withdraw(
    batch: str,
    installations: Sequence[str],
    *,
    db: str | None = None,
    actor: str | None = None,
) -> Intervention:
    """`migrate withdraw`: STAGED requests out of the go-live, audited."""
    from migrate.audit.key import audit_key
    from migrate.store import audit_log
    from migrate.store.engine import make_engine
    from migrate.store.interventions import withdraw as withdraw_requests

    return withdraw_requests(
        make_engine(db),
        batch,
        installations=installations,
        actor=audit_log.actor_name(actor),
        key=audit_key(),
    )


def reconcile(
    batch: str,
    inventory: Path,
    *,
    inventory_mapping: str | None = None,
    extract: Path | None = None,
    extract_mapping: str | None = None,
    out: Path | None = None,
    stuck_after: dt.timedelta | None = None,
    requeue: bool = False,
    db: str | None = None,
    actor: str | None = None,
    now: dt.datetime | None = None,
    mappings_dir: Path | None = None,
) -> ReconciliationResult:
    """`migrate reconcile`: the batch against the DCC's inventory (and the supplier's
    extract), installation by installation; with `requeue`, stuck and retryable requests
    back to STAGED."""
    from migrate.audit.key import audit_key
    from migrate.reconcile import reconcile as reconcile_batch
    from migrate.reconcile.run import DEFAULT_STUCK_AFTER
    from migrate.store import audit_log
    from migrate.store.engine import make_engine

    return reconcile_batch(
        make_engine(db),
        batch,
        inventory=inventory,
        inventory_mapping=inventory_mapping,
        extract=extract,
        extract_mapping=extract_mapping,
        out=out,
        stuck_after=stuck_after or DEFAULT_STUCK_AFTER,
        requeue=requeue,
        actor=audit_log.actor_name(actor),
        key=audit_key(),
        now=now,
        mappings_dir=mappings_dir,
    )


def export_inventory(gateway: str, out: Path, *, timeout_s: float = 30.0) -> int:
    """`migrate inventory`: the DCC's post-migration inventory as an NDJSON file, written
    whole or not at all; returns the devices written."""
    from migrate.commit.connect import gateway_factory
    from migrate.commit.retry import retrying
    from migrate.reconcile import export_inventory as export

    gateways, _ = gateway_factory(gateway, timeout_s=timeout_s)
    connection = gateways()
    try:
        # A failure mid-stream restarts the whole read: the file is only ever whole.
        return retrying(lambda: export(connection, out))
    finally:
        connection.close()


def status(batch: str | None = None, *, db: str | None = None) -> list[StateCount]:
    """`migrate status`: requests by batch, state and reason."""
    from migrate.store.engine import make_engine
    from migrate.store.progress import batch_status
    from migrate.store.snapshot import reader

    # Read without SQLite's write lock: a status taken during a commit does not hold it up.
    with reader(make_engine(db)) as snapshot:
        return batch_status(snapshot, batch)


def audit_verify(db: str | None = None) -> Verification:
    """`migrate audit verify`: the whole log against its chain, MACs and kept head, and the
    requests table against the log."""
    from migrate.audit.key import audit_key
    from migrate.store.audit_verify import requests_against_log, verify_log_fast
    from migrate.store.engine import make_engine, require_current
    from migrate.store.snapshot import reader

    # One snapshot, without the write lock: commits go on meanwhile, and are not seen.
    with reader(make_engine(db)) as snapshot:
        require_current(snapshot)
        with snapshot.connect() as connection:
            return requests_against_log(connection, verify_log_fast(connection, audit_key()))


def audit_export(out: Path, db: str | None = None) -> int:
    """`migrate audit export --jsonl`: every record as a JSON line; returns the count."""
    from migrate.audit import to_jsonl
    from migrate.store import audit_log
    from migrate.store.engine import make_engine, require_current
    from migrate.store.snapshot import reader

    if out.is_dir():
        raise ConfigError(out, "is a folder: give the file to write the records to")
    count = 0
    # Read without the write lock, one snapshot: an export during a commit neither waits
    # for it nor holds it up.
    with reader(make_engine(db)) as snapshot:
        require_current(snapshot)
        with snapshot.connect() as connection:

            def lines() -> Iterator[bytes]:
                nonlocal count
                for line in to_jsonl(audit_log.records(connection)):
                    count += 1
                    yield f"{line}\n".encode()

            write_whole(out, lines())
    return count


def sim_serve(
    host: str,
    port: int,
    state_dir: Path,
    options: SimulatorOptions,
    *,
    exchange: Path | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """`migrate sim serve`: the bundled DCC simulator, until SIGINT or SIGTERM; with
    `exchange`, also as a file-drop exchange in that folder; `on_ready` is told the
    address bound."""
    from migrate.sim.dcc import serve

    serve(host, port, state_dir, options, exchange=exchange, on_ready=on_ready)
