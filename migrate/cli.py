"""The `migrate` command: parses arguments, calls migrate.api, renders, sets the exit code.

Exit codes: 0 clean; 1 the data has problems (rows quarantined, requests failed); 2 usage,
configuration or unreadable input; 3 an internal error (a bug); 4 a batch is not finished
(stopped, the DCC unavailable, the day's capacity spent): rerun to continue.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import os
import platform
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from migrate import api
from migrate.errors import MigrateError
from migrate.logs import configure

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from migrate.commit.engine import CommitOptions, CommitProgress, CommitResult
    from migrate.ingest import IngestSummary
    from migrate.plan import PlanSummary
    from migrate.reconcile import ReconciliationResult
    from migrate.store.staging import StageResult

EXIT_CLEAN = 0
EXIT_DATA_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_UNFINISHED = 4

# Set by commands that hold large tables and no connections when they end: see main().
_leave_without_teardown = False

app = typer.Typer(
    name="migrate",
    help="Move SMETS1 installations onto the DCC: ingest, validate, plan, stage, commit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
mapping_app = typer.Typer(help="Vendor mappings: list them, check them.", no_args_is_help=True)
sim_app = typer.Typer(help="The DCC simulator and synthetic estates.", no_args_is_help=True)
cohort_app = typer.Typer(
    help="Cohort rule files: list, check, import the CPL.", no_args_is_help=True
)
db_app = typer.Typer(help="The staging store: schema versions.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: verify it, export it.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(mapping_app, name="mapping")
app.add_typer(cohort_app, name="cohort")
app.add_typer(sim_app, name="sim")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

MappingsDir = Annotated[
    Path | None,
    typer.Option(
        "--mappings-dir",
        help="Folder of mapping files (default: $MIGRATE_MAPPINGS_DIR, ./mappings, bundled).",
        file_okay=False,
    ),
]
CohortsDir = Annotated[
    Path | None,
    typer.Option(
        "--cohorts-dir",
        help="Folder of cohort rule files (default: $MIGRATE_COHORTS_DIR, ./cohorts, bundled).",
        file_okay=False,
    ),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store URL (default: $MIGRATE_DATABASE_URL, else sqlite:///migrate.db).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


@app.callback()
def _setup(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "WARNING",
) -> None:
    configure(level=log_level)


def _without_teardown() -> None:
    global _leave_without_teardown
    _leave_without_teardown = True


def _fail(error: MigrateError) -> NoReturn:
    # The message is printed as text: a column named `Serial [MSN]` is not markup.
    stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    raise typer.Exit(EXIT_USAGE)


def _summary_table(title: str, summary: IngestSummary) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in (
        ("rows read", summary.rows_read),
        ("accepted", summary.rows_accepted),
        ("quarantined", summary.rows_quarantined),
        ("duplicates dropped", summary.duplicates),
        ("devices", summary.devices),
        ("installations", summary.installations),
        ("installations with quarantined rows", summary.installations_with_quarantined_rows),
        ("blank rows skipped", summary.blank_rows),
        ("trailer rows skipped", summary.trailer_rows),
    ):
        table.add_row(label, f"{value:,}")
    for reason, count in summary.quarantined_by_reason.items():
        table.add_row(f"  quarantined: {reason}", f"{count:,}")
    for reason, count in summary.warnings_by_reason.items():
        table.add_row(f"  warning: {reason}", f"{count:,}")
    identity = "holds" if summary.balanced else "[bold red]DOES NOT HOLD[/]"
    table.caption = (
        f"read {summary.rows_read:,} = accepted {summary.rows_accepted:,} + quarantined "
        f"{summary.rows_quarantined:,} + duplicates {summary.duplicates:,}: {identity}"
    )
    return table


def _exit_for(summaries: list[IngestSummary]) -> int:
    if any(not s.balanced for s in summaries):
        return EXIT_DATA_PROBLEMS
    return EXIT_DATA_PROBLEMS if any(s.rows_quarantined for s in summaries) else EXIT_CLEAN


@app.command()
def ingest(
    extracts: Annotated[
        list[Path], typer.Argument(help="Extract files (CSV, Excel, Parquet).", dir_okay=False)
    ],
    mapping: Annotated[str, typer.Option("--mapping", "-m", help="Mapping name or file.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder.", file_okay=False)
    ] = Path("ingest-output"),
    json_output: JsonFlag = False,
    mappings_dir: MappingsDir = None,
) -> None:
    """Read extracts through a vendor mapping into canonical devices and installations."""
    try:
        run = api.ingest(extracts, mapping, out, mappings_dir=mappings_dir)
    except MigrateError as error:
        _fail(error)
    _without_teardown()
    if json_output:
        print(json.dumps(run.summary.as_dict(), sort_keys=True))
    else:
        stdout.print(_summary_table(f"ingest ({run.summary.mapping})", run.summary))
        stdout.print(f"outputs in {out}/", highlight=False)
    raise typer.Exit(_exit_for([run.summary]))


@app.command()
def rehearse(
    examples: Annotated[
        Path, typer.Option(help="Folder holding rehearsal.yaml and its extracts.", file_okay=False)
    ] = Path("examples"),
    out: Annotated[Path, typer.Option(help="Output folder.", file_okay=False)] = Path(
        "rehearsal-output"
    ),
    json_output: JsonFlag = False,
    mappings_dir: MappingsDir = None,
) -> None:
    """Run the sample cohort rehearsal on the bundled example extracts: start the DCC
    simulator; ingest each extract, plan it against its cohort, write the dry-run report,
    stage it and commit it; reconcile each batch with the DCC's inventory; show the
    batches' status; stop the simulator."""
    try:
        rehearsal = api.rehearse(examples, out, mappings_dir=mappings_dir)
    except MigrateError as error:
        _fail(error)
    summaries = [step.ingest.summary for step in rehearsal.steps]
    if json_output:
        document = {
            step.extract: {
                "ingest": step.ingest.summary.as_dict(),
                "plan": step.plan.summary.as_dict() if step.plan else None,
                "stage": _stage_fields(step.stage) if step.stage else None,
                "commit": dataclasses.asdict(step.commit) if step.commit else None,
                "reconcile": step.reconcile.report.head["totals"] if step.reconcile else None,
            }
            for step in rehearsal.steps
        }
        document = {
            "extracts": document,
            "status": [dataclasses.asdict(count) for count in rehearsal.status],
            "audit": {"ok": rehearsal.audit.ok, "records": rehearsal.audit.count},
        }
        print(json.dumps(document, sort_keys=True))
    else:
        for step in rehearsal.steps:
            stdout.print(
                _summary_table(
                    f"{step.extract} ({step.ingest.summary.mapping})", step.ingest.summary
                )
            )
            if step.plan is not None:
                stdout.print(_plan_table(step.plan.summary))
                written = ", ".join(str(p) for p in step.report.written[:1]) if step.report else ""
                stdout.print(f"plan {step.plan.path}; dry-run report {written}", highlight=False)
            if step.stage is not None and step.stage.requests == 0:
                _print_none_eligible(step.stage, "stage")
            elif step.stage is not None:
                stdout.print(
                    f"staged {step.stage.staged:,} requests in batch {step.stage.batch}",
                    highlight=False,
                )
            if step.commit is not None:
                _render_commit(step.commit, json_output=False)
            if step.reconcile is not None:
                _render_reconciliation(step.reconcile)
            stdout.print()
        table = Table("batch", "state", "reason", "requests", title=f"store {rehearsal.database}")
        for count in rehearsal.status:
            table.add_row(count.batch, count.state, count.reason or "", f"{count.requests:,}")
        stdout.print(table)
        verdict = (
            "verifies" if rehearsal.audit.ok else f"DOES NOT VERIFY: {rehearsal.audit.problem}"
        )
        stdout.print(f"audit log: {rehearsal.audit.count:,} records, {verdict}", highlight=False)
        stdout.print(f"outputs in {out}/", highlight=False)
    # Quarantined rows are the sample data's planted defects: finding them is success.
    # So are the simulator's failed migrations and the discrepancies they leave; a batch
    # left unfinished is not.
    if not all(step.commit.finished for step in rehearsal.steps if step.commit is not None):
        raise typer.Exit(EXIT_UNFINISHED)
    sound = all(s.balanced for s in summaries) and rehearsal.audit.ok
    raise typer.Exit(EXIT_CLEAN if sound else EXIT_DATA_PROBLEMS)


def _plan_table(summary: PlanSummary) -> Table:
    table = Table(title=f"plan ({summary.cohort})", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("installations", f"{summary.installations:,}")
    table.add_row("eligible", f"{summary.eligible:,}")
    table.add_row("excluded", f"{summary.excluded:,}")
    for reason, count in summary.excluded_by_reason.items():
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("days at capacity", f"{summary.days:,}")
    table.add_row("last day", summary.finish)
    return table


def _warn_if_overrunning(summary: PlanSummary) -> None:
    """A schedule past the cohort's window is the programme manager's to see at once, not
    only in the report."""
    if not summary.fits_window:
        stderr.print(
            f"[bold yellow]warning:[/] at the cohort's capacity the schedule ends on "
            f"{summary.finish}, after the cohort's window ends ({summary.window_end})",
            highlight=False,
        )


@app.command()
def plan(
    extracts: Annotated[
        list[Path], typer.Argument(help="Extract files (CSV, Excel, Parquet).", dir_okay=False)
    ],
    cohort: Annotated[str, typer.Option("--cohort", "-c", help="Cohort name or rule file.")],
    mapping: Annotated[str, typer.Option("--mapping", "-m", help="Mapping name or file.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The plan file to write.", dir_okay=False)
    ] = Path("plan.json"),
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(
            "--as-of",
            formats=["%Y-%m-%d"],
            help="The plan's first day (default: the cohort window's start).",
        ),
    ] = None,
    json_output: JsonFlag = False,
    mappings_dir: MappingsDir = None,
    cohorts_dir: CohortsDir = None,
) -> None:
    """Dry run: which installations the cohort would migrate, which not and why, and when."""
    try:
        run = api.plan(
            extracts,
            mapping,
            cohort,
            out,
            as_of=as_of.date() if as_of else None,
            mappings_dir=mappings_dir,
            cohorts_dir=cohorts_dir,
        )
    except MigrateError as error:
        _fail(error)
    _without_teardown()
    summary = run.summary
    if json_output:
        print(json.dumps(summary.with_window(), sort_keys=True))
    else:
        stdout.print(_plan_table(summary))
        stdout.print(f"plan written to {run.path}", highlight=False)
    _warn_if_overrunning(summary)


@app.command()
def report(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="A plan from `migrate plan`.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report as one HTML page.")
    ] = None,
    csv_dir: Annotated[
        Path | None,
        typer.Option("--csv", help="Write every table of the report as CSV to this folder."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the report's JSON model to this file.")
    ] = None,
) -> None:
    """The dry-run report of a plan: totals, reasons, combinations, suppliers, schedule."""
    if html is None and csv_dir is None and json_file is None:
        stderr.print("[bold red]error:[/] give --html, --csv or --json", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        run = api.report(plan_file, html=html, csv_dir=csv_dir, json_path=json_file)
    except MigrateError as error:
        _fail(error)
    for path in run.written:
        stdout.print(f"wrote {path}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(db: DbUrl = None) -> None:
    """Create the store, or bring its schema to this toolkit's version."""
    try:
        run = api.db_upgrade(db)
    except MigrateError as error:
        _fail(error)
    if run.before == run.after:
        stdout.print(f"{run.database}: already at schema version {run.after}", highlight=False)
    else:
        stdout.print(
            f"{run.database}: schema {run.before or '(new)'} -> {run.after}", highlight=False
        )


def _print_none_eligible(result: StageResult, nothing_to: str) -> None:
    """Said, rather than "0 staged", when a plan has no eligible installation: no batch is
    made, and the dry-run report says why each installation was left out."""
    stdout.print(
        f"nothing to {nothing_to}: the plan has no eligible installations (`migrate report` "
        f"shows why each was excluded), so no batch {result.batch} was made",
        highlight=False,
    )


def _stage_fields(result: StageResult) -> dict[str, object]:
    """The staging's counts, for --json; `batch` is null where no batch was made (a plan
    without eligible installations), so that a script never goes on to commit one that is
    not there."""
    fields = dataclasses.asdict(result)
    if result.requests == 0:
        fields["batch"] = None
    return fields


@app.command()
def stage(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="A plan from `migrate plan`.")],
    batch: Annotated[
        str | None, typer.Option(help="Batch name (default: cohort and the plan's hash).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who is staging, for the audit log (default: OS user).")
    ] = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
) -> None:
    """Stage a plan: its eligible installations become STAGED requests, audited."""
    try:
        result = api.stage(plan_file, batch=batch, db=db, actor=actor)
    except MigrateError as error:
        _fail(error)
    if json_output:
        print(json.dumps(_stage_fields(result), sort_keys=True))
    elif result.requests == 0:
        _print_none_eligible(result, "stage")
    elif result.staged == 0:
        stdout.print(
            f"batch {result.batch}: nothing to stage, all {result.requests:,} requests "
            "were staged already",
            highlight=False,
        )
    else:
        stdout.print(
            f"batch {result.batch}: staged {result.staged:,} requests ({result.devices:,} "
            f"devices); {result.already:,} were staged already; the audit log now holds "
            f"{result.audit_head:,} records",
            highlight=False,
        )


GatewayOption = Annotated[
    str,
    typer.Option(
        "--gateway",
        help="The DCC: an http(s) URL, or a file-drop exchange folder (outbox/ and inbox/).",
    ),
]
WorkersOption = Annotated[
    int, typer.Option(min=1, max=32, help="Workers sharing the batch (PostgreSQL for more than 1).")
]
ChunkOption = Annotated[int, typer.Option(min=1, max=10_000, help="Requests per submission.")]
CapacityOption = Annotated[
    int | None,
    typer.Option(
        "--capacity",
        min=1,
        help="New requests per supplier per day (default: the cohort's capacity).",
    ),
]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait", min=0.0, help="Seconds to keep polling outcomes the DCC has not decided yet."
    ),
]
HoldOption = Annotated[
    bool,
    typer.Option(
        "--hold-failures",
        help="Leave retryable failures FAILED for review instead of sending them again.",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds to wait for the DCC's answer to one call (HTTP read, or file drop).",
    ),
]
ActorOption = Annotated[
    str | None, typer.Option(help="Who is acting, for the audit log (default: OS user).")
]


def _commit_options(
    workers: int, chunk: int, capacity: int | None, wait: float, hold_failures: bool
) -> CommitOptions:
    from migrate.commit.engine import CommitOptions

    return CommitOptions(
        workers=workers,
        chunk=chunk,
        capacity_per_day=capacity,
        outcome_wait_s=wait,
        requeue_failures=not hold_failures,
    )


class _ProgressDisplay:
    """A progress bar on a terminal; otherwise one JSON line on stderr per tick, for logs."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> _ProgressDisplay:
        if stderr.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[states]}"),
                TimeElapsedColumn(),
                console=stderr,
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, progress: CommitProgress) -> None:
        states = ", ".join(f"{s.lower()} {n:,}" for s, n in sorted(progress.states.items()))
        if self._bar is None:
            from migrate.store.states import RequestState

            line = {
                "event": "commit.progress",
                "batch": progress.batch,
                "settled": progress.settled,
                "total": progress.total,
                "sent": progress.sent,
                "elapsed_s": round(progress.elapsed_s, 1),
                **{s.value.lower(): progress.states.get(s.value, 0) for s in RequestState},
            }
            print(json.dumps(line, sort_keys=True), file=sys.stderr, flush=True)
            return
        if self._task is None:
            self._task = self._bar.add_task(
                f"batch {progress.batch}", total=progress.total, states=states
            )
        self._bar.update(
            self._task, completed=progress.settled, total=progress.total, states=states
        )


def _render_commit(result: CommitResult, json_output: bool) -> int:
    """Print the outcome of a commit run; returns its exit code."""
    failed = result.states.get("FAILED", 0)
    code = EXIT_UNFINISHED if not result.finished else EXIT_DATA_PROBLEMS if failed else EXIT_CLEAN
    if json_output:
        document = dataclasses.asdict(result)
        document.update(finished=result.finished, in_flight=result.in_flight, exit_code=code)
        print(json.dumps(document, sort_keys=True))
        return code
    tally = result.tally
    parts = [
        f"sent {tally.sent:,}" + (f" ({tally.resent:,} of them resent)" if tally.resent else ""),
        f"accepted {tally.accepted:,}",
        f"duplicates {tally.duplicates:,}",
        f"migrated {tally.migrated:,}",
        f"failed {tally.failed + tally.conflicts + tally.rejected:,}",
        f"requeued after a retryable failure {tally.requeued:,}",
    ]
    for count, label in (
        (tally.conflicts, "key conflicts"),
        (tally.rejected, "refused by the DCC"),
        (tally.adopted, "adopted from stopped workers"),
        (tally.released, "released unanswered"),
        (tally.unanswered, "of those, sent and the answer lost (the DCC may hold them)"),
        (tally.unknown, "unknown to the DCC, sent again"),
    ):
        if count:
            parts.append(f"{label} {count:,}")
    stdout.print(
        f"batch {result.batch}: {', '.join(parts)}; {result.elapsed_s:.1f} s, "
        f"{result.workers} worker(s)",
        highlight=False,
    )
    states = ", ".join(f"{s} {n:,}" for s, n in sorted(result.states.items()))
    stdout.print(f"batch {result.batch} now: {states}", highlight=False)
    if result.dcc_capacity_spent:
        stdout.print(
            f"the DCC refused more for today (its capacity is spent: "
            f"{escape(result.unavailable or '')}); "
            "lower --capacity to the DCC's allowance and rerun `migrate commit` after its "
            "day turns",
            highlight=False,
        )
    elif result.unavailable:
        stdout.print(
            f"the DCC stayed unavailable: {result.unavailable}; rerun `migrate commit` to continue",
            highlight=False,
        )
    if result.stopped:
        stdout.print("stopped on request; rerun `migrate commit` to continue", highlight=False)
    if result.waiting_for_capacity:
        stdout.print(
            f"{result.waiting_for_capacity:,} requests wait for the next day's capacity; "
            "rerun `migrate commit` then",
            highlight=False,
        )
    elif result.in_flight and not (result.stopped or result.unavailable):
        stdout.print(
            f"{result.in_flight:,} requests still wait for the DCC's outcome; rerun "
            "`migrate commit` to keep polling, or see `migrate reconcile`",
            highlight=False,
        )
    if failed:
        stdout.print(
            f"{failed:,} requests FAILED: `migrate status --batch {result.batch}` "
            "lists them by reason",
            highlight=False,
        )
    return code


@app.command()
def commit(
    batch: Annotated[str, typer.Option(help="The staged batch to commit.")],
    gateway: GatewayOption,
    workers: WorkersOption = 1,
    chunk: ChunkOption = 500,
    capacity: CapacityOption = None,
    wait: WaitOption = 300.0,
    hold_failures: HoldOption = False,
    timeout: TimeoutOption = 30.0,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
    cohorts_dir: CohortsDir = None,
) -> None:
    """Send a staged batch to the DCC: idempotent, retried, resumable; Ctrl-C stops cleanly."""
    try:
        options = _commit_options(workers, chunk, capacity, wait, hold_failures)
        with _ProgressDisplay() as display:
            result = api.commit(
                batch,
                gateway,
                timeout_s=timeout,
                db=db,
                options=options,
                actor=actor,
                on_progress=display,
                cohorts_dir=cohorts_dir,
            )
    except MigrateError as error:
        _fail(error)
    raise typer.Exit(_render_commit(result, json_output))


@app.command()
def apply(
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="A plan from `migrate plan`.")],
    gateway: GatewayOption,
    batch: Annotated[
        str | None, typer.Option(help="Batch name (default: cohort and the plan's hash).")
    ] = None,
    workers: WorkersOption = 1,
    chunk: ChunkOption = 500,
    capacity: CapacityOption = None,
    wait: WaitOption = 300.0,
    hold_failures: HoldOption = False,
    timeout: TimeoutOption = 30.0,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
    cohorts_dir: CohortsDir = None,
) -> None:
    """Stage a plan and commit it in one go; refused if the plan's inputs changed."""
    try:
        options = _commit_options(workers, chunk, capacity, wait, hold_failures)
        with _ProgressDisplay() as display:
            run = api.apply(
                plan_file,
                gateway,
                timeout_s=timeout,
                batch=batch,
                db=db,
                options=options,
                actor=actor,
                on_progress=display,
                cohorts_dir=cohorts_dir,
            )
    except MigrateError as error:
        _fail(error)
    if run.committed is None:
        if json_output:
            print(json.dumps(_stage_fields(run.staged), sort_keys=True))
        else:
            _print_none_eligible(run.staged, "stage or send")
        raise typer.Exit(EXIT_CLEAN)
    if not json_output:
        stdout.print(
            f"batch {run.staged.batch}: staged {run.staged.staged:,} requests "
            f"({run.staged.already:,} were staged already)",
            highlight=False,
        )
    raise typer.Exit(_render_commit(run.committed, json_output))


@app.command()
def inventory(
    gateway: GatewayOption,
    out: Annotated[Path, typer.Option(help="The NDJSON file to write.", dir_okay=False)],
    timeout: TimeoutOption = 30.0,
) -> None:
    """Export the DCC's post-migration inventory (one device a line), for `reconcile`."""
    try:
        count = api.export_inventory(gateway, out, timeout_s=timeout)
    except MigrateError as error:
        _fail(error)
    stdout.print(f"wrote {count:,} devices to {out}", highlight=False)


@app.command()
def reconcile(
    batch: Annotated[str, typer.Option(help="The batch to reconcile.")],
    inventory: Annotated[
        Path,
        typer.Option(
            help="The DCC's inventory (`migrate inventory`, or any file a mapping reads)."
        ),
    ],
    inventory_mapping: Annotated[
        str | None, typer.Option(help="Mapping that reads the inventory (default: dcc_inventory).")
    ] = None,
    extract: Annotated[
        Path | None,
        typer.Option(help="The supplier's extract or warehouse report, as a third side."),
    ] = None,
    mapping: Annotated[
        str | None, typer.Option("--mapping", "-m", help="Mapping that reads --extract.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for reconciliation.json, .html and csv/.", file_okay=False),
    ] = None,
    stuck_after: Annotated[
        float,
        typer.Option(
            min=0.001, help="Hours in SUBMITTING or ACCEPTED after which a request is stuck."
        ),
    ] = 1.0,
    requeue: Annotated[
        bool,
        typer.Option(
            "--requeue", help="Move stuck and retryable requests back to STAGED (audited)."
        ),
    ] = False,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
    mappings_dir: MappingsDir = None,
) -> None:
    """Reconcile a batch: what the supplier held, what was asked, what the DCC now lists.
    Exit 0 only when nothing is discrepant."""
    try:
        result = api.reconcile(
            batch,
            inventory,
            inventory_mapping=inventory_mapping,
            extract=extract,
            extract_mapping=mapping,
            out=out,
            stuck_after=dt.timedelta(hours=stuck_after),
            requeue=requeue,
            db=db,
            actor=actor,
            mappings_dir=mappings_dir,
        )
    except MigrateError as error:
        _fail(error)
    code = EXIT_DATA_PROBLEMS if result.discrepant else EXIT_CLEAN
    if json_output:
        print(json.dumps(result.report.head, sort_keys=True))
        raise typer.Exit(code)
    _render_reconciliation(result)
    raise typer.Exit(code)


def _render_reconciliation(result: ReconciliationResult) -> None:
    from migrate.reconcile.report import failed_checks

    head = result.report.head
    table = Table(
        "category", "installations", "", title=f"reconciliation of batch {result.batch}",
        title_justify="left",
    )  # fmt: skip
    for row in head["categories"]:
        if row["installations"]:
            table.add_row(
                row["category"],
                f"{row['installations']:,}",
                "" if row["settled"] else "needs action",
            )
    stdout.print(table)
    for row in head["discrepancies"]:
        if row["installations"]:
            stdout.print(
                f"  {row['discrepancy']}: {row['installations']:,} installations, "
                f"{row['devices']:,} devices",
                highlight=False,
            )
    totals = head["totals"]
    stdout.print(
        f"{totals['installations']:,} installations = {totals['batch']:,} in the batch + "
        f"{totals['excluded_at_planning']:,} excluded at planning + "
        f"{totals['only_in_dcc_inventory']:,} only in the DCC's inventory; "
        f"{totals['discrepant']:,} discrepant",
        highlight=False,
    )
    for line in failed_checks(head):
        stdout.print(f"[bold red]{escape(line)}[/]")
    verdict = "verifies" if result.audit_verified else f"DOES NOT VERIFY: {result.audit_problem}"
    stdout.print(
        f"audit log: head {result.audit_head_hash} ({result.audit_head_seq or 0:,} records), "
        f"{escape(verdict)}",
        highlight=False,
    )
    if result.requeued:
        stdout.print(
            f"requeued {result.requeued:,} requests to STAGED: `migrate commit` sends them",
            highlight=False,
        )
    refused = head["requeue"].get("refused")
    if refused:
        stdout.print(f"[bold red]requeue refused: {escape(refused)}[/]")
    if result.written:
        stdout.print(f"report in {result.written[0].parent}/", highlight=False)


InstallationOption = Annotated[
    list[str] | None,
    typer.Option("--installation", help="An installation id (repeat for several)."),
]


@app.command()
def requeue(
    batch: Annotated[str, typer.Option(help="The batch.")],
    reason: Annotated[
        list[str] | None,
        typer.Option(help="Only requests that failed for this reason (repeat for several)."),
    ] = None,
    installation: InstallationOption = None,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
) -> None:
    """Send FAILED requests again at the next commit (e.g. once master keys arrive)."""
    try:
        done = api.requeue(
            batch, reasons=reason or (), installations=installation or (), db=db, actor=actor
        )
    except MigrateError as error:
        _fail(error)
    if json_output:
        print(json.dumps(dataclasses.asdict(done), sort_keys=True))
        return
    stdout.print(
        f"batch {done.batch}: {done.moved:,} FAILED requests back to STAGED; "
        "`migrate commit` sends them",
        highlight=False,
    )


@app.command()
def withdraw(
    batch: Annotated[str, typer.Option(help="The batch.")],
    installation: InstallationOption = None,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
) -> None:
    """Take STAGED installations out of the go-live (final; audited)."""
    try:
        done = api.withdraw(batch, installation or [], db=db, actor=actor)
    except MigrateError as error:
        _fail(error)
    if json_output:
        print(json.dumps(dataclasses.asdict(done), sort_keys=True))
        return
    stdout.print(f"batch {done.batch}: withdrew {done.moved:,} requests", highlight=False)


@app.command()
def status(
    batch: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
    json_output: JsonFlag = False,
    db: DbUrl = None,
) -> None:
    """Requests by batch, state and reason."""
    try:
        counts = api.status(batch, db=db)
    except MigrateError as error:
        _fail(error)
    if json_output:
        print(json.dumps([dataclasses.asdict(c) for c in counts], sort_keys=True))
        return
    table = Table("batch", "state", "reason", "requests")
    for count in counts:
        table.add_row(count.batch, count.state, count.reason or "", f"{count.requests:,}")
    stdout.print(table)


@audit_app.command("verify")
def audit_verify(db: DbUrl = None) -> None:
    """Check the audit log: the first bad record is named; exit 1 if the log was altered."""
    try:
        result = api.audit_verify(db)
    except MigrateError as error:
        _fail(error)
    if result.ok:
        stdout.print(
            f"audit log verifies: {result.count:,} records, head hash {result.head_hash}",
            highlight=False,
        )
        if not os.environ.get("MIGRATE_AUDIT_KEY"):
            stdout.print(
                "note: without MIGRATE_AUDIT_KEY the records' MACs are not checked, so a log "
                "re-sealed after an edit would pass; compare the head hash with a copy kept "
                "outside the database.",
                highlight=False,
            )
        return
    stderr.print(f"[bold red]audit log does not verify:[/] {escape(result.problem or '')}")
    raise typer.Exit(EXIT_DATA_PROBLEMS)


@audit_app.command("export")
def audit_export(
    jsonl: Annotated[Path, typer.Option("--jsonl", help="The JSON Lines file to write.")],
    db: DbUrl = None,
) -> None:
    """Export every audit record, hash and MAC included, one JSON object a line."""
    try:
        count = api.audit_export(jsonl, db)
    except MigrateError as error:
        _fail(error)
    stdout.print(f"wrote {count:,} records to {jsonl}", highlight=False)


@cohort_app.command("list")
def cohort_list(cohorts_dir: CohortsDir = None) -> None:
    """List the cohorts, with their SMSOs, modes, capacity and combinations."""
    try:
        cohorts = api.list_cohorts(cohorts_dir)
    except MigrateError as error:
        _fail(error)
    table = Table("name", "SMSO", "modes", "window", "capacity", "combinations")
    for rules in cohorts:
        table.add_row(
            rules.name,
            ", ".join(rules.smso),
            ", ".join(rules.modes),
            f"{rules.window.start} to {rules.window.end}",
            str(rules.capacity_per_supplier_per_day),
            str(len(rules.combinations)),
        )
    stdout.print(table)


@cohort_app.command("check")
def cohort_check(
    cohorts: Annotated[list[str], typer.Argument(help="Cohort names or rule files.")],
    cohorts_dir: CohortsDir = None,
) -> None:
    """Check cohort rule files against the schema; the first problem is named with its key."""
    try:
        checked = api.check_cohorts(cohorts, cohorts_dir)
    except MigrateError as error:
        _fail(error)
    for rules in checked:
        stdout.print(f"ok: {rules.name} ({len(rules.combinations)} combinations)")


@cohort_app.command("import-cpl")
def cohort_import_cpl(
    cpl: Annotated[Path, typer.Argument(help="CPL-style CSV of eligible combinations.")],
    check: Annotated[
        bool, typer.Option("--check", help="Only show what would change; exit 1 if anything.")
    ] = False,
    cohorts_dir: CohortsDir = None,
) -> None:
    """Update the cohort rule files from a CPL: shows added, removed and changed combinations."""
    try:
        imported = api.import_cpl(cpl, check=check, cohorts_dir=cohorts_dir)
    except MigrateError as error:
        _fail(error)
    for change in imported.changes:
        if not change.any:
            stdout.print(f"{change.cohort}: up to date", highlight=False)
            continue
        stdout.print(f"{change.cohort} ({change.path}):", highlight=False)
        for sign, ids in (("+", change.added), ("-", change.removed)):
            for combination in ids:
                stdout.print(f"  {sign} {combination}", highlight=False)
        for combination, fields in change.changed.items():
            what = ", ".join(
                f"{item.column} {item.old or '(none)'} -> {item.new or '(none)'}" for item in fields
            )
            stdout.print(f"  ~ {combination}: {what}", highlight=False)
    if imported.untaken:
        stdout.print(
            f"not imported, no rule file takes the cohort: {imported.untaken_text()}",
            highlight=False,
        )
    if check:
        raise typer.Exit(EXIT_DATA_PROBLEMS if imported.any else EXIT_CLEAN)
    if imported.any:
        stdout.print("written.")


@mapping_app.command("list")
def mapping_list(mappings_dir: MappingsDir = None) -> None:
    """List the mappings available, with the layout and source format of each."""
    try:
        mappings = api.list_mappings(mappings_dir)
    except MigrateError as error:
        _fail(error)
    table = Table("name", "layout", "format", "description")
    for item in mappings:
        table.add_row(item.name, item.layout, item.source.format, item.description)
    stdout.print(table)


@mapping_app.command("check")
def mapping_check(
    mappings: Annotated[list[str], typer.Argument(help="Mapping names or files.")],
    mappings_dir: MappingsDir = None,
) -> None:
    """Check mapping files against the schema; the first problem is named with its key."""
    try:
        checked = api.check_mappings(mappings, mappings_dir)
    except MigrateError as error:
        _fail(error)
    for item in checked:
        stdout.print(f"ok: {item.name} ({item.layout}, reads {len(item.columns())} columns)")


@sim_app.command("serve")
def sim_serve(
    state: Annotated[
        Path, typer.Option(help="Folder for the simulator's state (kept across restarts).")
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8080,
    seed: Annotated[int, typer.Option(help="Outcomes and faults are drawn from this.")] = 0,
    capacity: Annotated[
        int, typer.Option(help="New requests per supplier per simulated day.")
    ] = 100,
    day_seconds: Annotated[float, typer.Option(help="Length of a simulated day.")] = 86400.0,
    processing_ms: Annotated[int, typer.Option(help="How long a request stays PENDING.")] = 0,
    latency_ms: Annotated[int, typer.Option(help="Added to every call.")] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of calls answered 503.")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of calls left hanging.")] = 0.0,
    timeout_sleep_s: Annotated[
        float, typer.Option(help="How long a hanging call hangs before its 504.")
    ] = 30.0,
    drop_rate: Annotated[float, typer.Option(help="Share of calls dropped unanswered.")] = 0.0,
    lost_response_rate: Annotated[
        float, typer.Option(help="Share of calls stored, then dropped unanswered.")
    ] = 0.0,
    no_wan_rate: Annotated[
        float, typer.Option(help="Attempts failing NO_WAN_DURING_MIGRATION (retryable).")
    ] = 0.04,
    device_test_rate: Annotated[
        float, typer.Option(help="Attempts failing DEVICE_TEST_FAILED (retryable).")
    ] = 0.02,
    master_keys_rate: Annotated[
        float, typer.Option(help="Installations failing MISSING_MASTER_KEYS (permanent).")
    ] = 0.02,
    gt01_rate: Annotated[
        float,
        typer.Option(
            help="Attempts migrating without the gas side (GT01); only with a gas meter (GSME)."
        ),
    ] = 0.02,
    max_attempts: Annotated[
        int, typer.Option(help="The attempt whose failure is no longer retryable.")
    ] = 5,
    exchange: Annotated[
        Path | None,
        typer.Option(
            help="Also serve a file-drop exchange in this folder (outbox/, inbox/).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the DCC simulator (a real HTTP server, and a file-drop exchange with --exchange;
    see migrate/sim/DCC_API.md)."""
    from migrate.sim.dcc import SimulatorOptions

    try:
        options = SimulatorOptions(
            seed=seed,
            capacity=capacity,
            day_seconds=day_seconds,
            processing_ms=processing_ms,
            latency_ms=latency_ms,
            error_rate=error_rate,
            timeout_rate=timeout_rate,
            timeout_sleep_s=timeout_sleep_s,
            drop_rate=drop_rate,
            lost_response_rate=lost_response_rate,
            no_wan_rate=no_wan_rate,
            device_test_rate=device_test_rate,
            master_keys_rate=master_keys_rate,
            gt01_rate=gt01_rate,
            max_attempts=max_attempts,
        )
    except ValueError as error:
        stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None

    def ready(bound_host: str, bound_port: int) -> None:
        also = f", file drop in {exchange}" if exchange else ""
        stdout.print(
            f"DCC simulator on http://{bound_host}:{bound_port}{also}, state in {state}",
            highlight=False,
        )

    try:
        api.sim_serve(host, port, state, options, exchange=exchange, on_ready=ready)
    except MigrateError as error:
        _fail(error)


@sim_app.command("extract")
def sim_extract(
    out: Annotated[Path, typer.Argument(help="The CSV file to write.", dir_okay=False)],
    devices: Annotated[int, typer.Option(min=1, help="Device rows to write.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same file.")] = 0,
    defect_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of rows with a planted defect.")
    ] = 0.0,
    json_output: JsonFlag = False,
) -> None:
    """Write a synthetic Landis+Gyr-format estate (for rehearsals and benchmarks)."""
    generated = api.generate_extract(out, devices, seed=seed, defect_rate=defect_rate)
    document = {
        "path": str(generated.path),
        "rows": generated.rows,
        "installations": generated.installations,
        "planted": generated.planted,
    }
    if json_output:
        print(json.dumps(document, sort_keys=True))
    else:
        stdout.print(
            f"wrote {generated.rows:,} rows ({generated.installations:,} installations) "
            f"to {generated.path}; planted defects: {generated.planted}",
            highlight=False,
        )


def internal_error_text(error: Exception) -> str:
    """What an unexpected error shows, in a line an engineer pastes into a ticket: its type
    and where it was raised, not its message, which may quote a value from the extract (an
    MPAN in a ValueError). A database's error says only its first line: the lines after it
    may echo the failing row (PostgreSQL's DETAIL). An operating system's error says its
    cause (a full disk), without the file's name. The whole message and traceback are one
    rerun away, with --log-level DEBUG."""
    # SQLAlchemy's DBAPIError, known by its `orig` (the driver's error), without importing
    # SQLAlchemy: commands that never touch the store do not pay for it.
    orig = getattr(error, "orig", None)
    if type(error).__module__.startswith("sqlalchemy") and isinstance(orig, Exception):
        lines = str(orig).splitlines()
        return f"{type(orig).__name__}: {lines[0] if lines else ''}"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror} {_raised_at(error)}"
    return f"{type(error).__name__} {_raised_at(error)}"


def _raised_at(error: BaseException) -> str:
    """Where the error was raised: the innermost frame in the toolkit's own code, else the
    innermost of all (file name, line, function)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "(where is not known)"
    package = f"{os.sep}migrate{os.sep}"
    ours = [frame for frame in frames if package in frame.filename]
    frame = (ours or frames)[-1]
    module = frame.filename.rpartition(package)[2] if ours else Path(frame.filename).name
    where = f"migrate/{module}" if ours else module
    return f"at {where}:{frame.lineno} in {frame.name}"


class _WithoutPandas:
    """pyarrow imports pandas the first time it is handed Python values, only to ask whether
    they are pandas objects: a fifth of a second at every start of a command, for a library
    the toolkit never uses. The console script keeps it out (pyarrow then knows there is no
    pandas); a program that imports migrate is left as it is. A finder on `sys.meta_path`
    (importlib's protocol; its abstract base class costs a hundredth of a second to import)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError("the migrate command does not use pandas", name=name)


# Arrow's allocator for the command's process, unless the environment names one. On Linux
# its default, mimalloc, backs memory with transparent huge pages: where fresh pages are slow
# to come by (virtual machines), a 1M-row ingest spent a second more in the kernel with it
# than with jemalloc, and peaked 0.3 GB higher in a plan.
ARROW_POOL = "jemalloc"
# numpy's OpenBLAS starts a thread per core, which spins for work it is never given here (no
# matrix algebra): on two cores a 1M-device plan lost 0.3-0.4 s of CPU to it.
BLAS_THREADS = "1"


def main() -> None:
    """The console script. A bug shows as one line and exit code 3, never mistaken for
    exit code 1 (rows quarantined); --log-level DEBUG shows the traceback. Usage errors and
    exits pass through typer as SystemExit, which this does not catch."""
    # Batch work allocates millions of short-lived objects (JSON, rows for the database); the
    # cyclic collector's default thresholds would walk them thousands of times for nothing.
    gc.set_threshold(100_000, 50, 100)
    without_pandas = _WithoutPandas()
    sys.meta_path.insert(0, without_pandas)
    # Where pyarrow's wheels are known to carry jemalloc: elsewhere naming it would only
    # print Arrow's warning at every command.
    if sys.platform == "linux" and platform.machine() == "x86_64":
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_POOL)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    try:
        app()
    except SystemExit as done:
        if _leave_without_teardown:
            # Every output is written and closed; freeing a gigabyte of Arrow tables one by
            # one at exit would only make the engineer wait (a fifth of a second at 1M rows).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else EXIT_CLEAN)
        raise
    except Exception as error:
        if any(arg.upper().endswith("DEBUG") for arg in sys.argv):
            traceback.print_exc()
        stderr.print(
            f"[bold red]internal error:[/] {escape(internal_error_text(error))}"
            " (a bug: rerun with --log-level DEBUG for the traceback, and report it)",
            highlight=False,
        )
        sys.exit(EXIT_INTERNAL)
    finally:  # a program that calls main() and goes on may import pandas again
        sys.meta_path.remove(without_pandas)


if __name__ == "__main__":
    sys.exit(main())
