"""Benchmark `migrate stage` on SQLite and PostgreSQL against pandas `DataFrame.to_sql`.

    python bench/stage.py [--devices 1000000] [--repeat 1] [--keep DIR] [--seed 0]
                          [--postgres URL]

Generates a Landis+Gyr IOC long extract (1% defects) with migrate.sim and makes its plan once
(`migrate plan --cohort ioc`). Then, for each database (a fresh SQLite file; a fresh
PostgreSQL schema, reached through `?options=-csearch_path%3D<schema>` and created and dropped
here), times as whole processes, alternating so that drift in the machine hits all alike:

- `migrate db upgrade --db URL` (not part of any figure: the store must exist first);
- stage: `migrate stage PLAN --db URL --json`, into the empty store;
- re-stage: the same command again, which must stage nothing;
- baseline: `python bench/stage_baseline_pandas.py PLAN URL`, the same rows written with
  `DataFrame.to_sql(..., if_exists="append", index=False)` into another fresh store.

Device rows/s is the devices of the plan's eligible installations (the rows staging writes to
`devices`) over the median wall time. Prints a table, one JSON line, and PASS/FAIL per goal.
Exit status: 0 all goals met, 1 a goal failed, 2 a command failed (nothing to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (REPO, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# One way of timing whole processes for every benchmark: bench/ingest.py's.
from ingest import Run, Series, run_timed  # noqa: E402
from plan import fail, last_json_line  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import ArgumentError, SQLAlchemyError  # noqa: E402

DEFECT_RATE = 0.01
MAPPING = "landis_ioc_devices"
COHORT = "ioc"
BASELINE_SCRIPT = BENCH / "stage_baseline_pandas.py"
POSTGRES_ENV = "MIGRATE_TEST_POSTGRES_URL"  # the test suite's, so one setting serves both
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLES = ("installations", "devices", "requests")

# Run in children, not here: ru_maxrss of a child counts the high-water mark of the process
# that spawned it (Linux carries it across fork and exec), so a parent that had held the
# extract or the parsed plan would put a floor under every figure of peak RSS.
GENERATE_CODE = """\
import json, sys
from pathlib import Path
from migrate.sim.extract_generator import generate_long_extract
path, devices, seed, rate = Path(sys.argv[1]), *map(int, sys.argv[2:4]), float(sys.argv[4])
extract = generate_long_extract(path, devices, seed=seed, defect_rate=rate)
print(json.dumps({"rows": extract.rows, "installations": extract.installations,
                  "planted": extract.planted}))
"""
PLAN_ROWS_CODE = """\
import json, sys
eligible = json.loads(open(sys.argv[1], encoding="utf-8").read())["eligible"]
print(json.dumps({"installations": len(eligible),
                  "devices": sum(len(entry["payload"]["devices"]) for entry in eligible),
                  "requests": len(eligible)}))
"""

# Goals for a plan of 1,000,000 devices (~400,000 installations), on each database.
MIN_ROWS_PER_S = 150_000
MIN_SPEEDUP = 3.0


@dataclass
class Database:
    """One kind of store and the figures measured on it."""

    name: str
    upgrade: Series
    stage: Series
    restage: Series
    baseline: Series
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    restaged: list[int] = field(default_factory=list)  # `staged` of every re-staging


class Stores:
    """Fresh, empty stores of one kind, each made for one run and removed after it."""

    def __init__(self, kind: str, workdir: Path, postgres_url: str) -> None:
        self.kind = kind
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.made = 0

    @contextlib.contextmanager
    def fresh(self, keep: bool) -> Iterator[str]:
        """A URL to a store nobody has used; SQLite files outlive the run only with --keep,
        PostgreSQL schemas never do (they are dropped even when a command fails)."""
        self.made += 1
        if self.kind == "sqlite":
            path = self.workdir / f"store-{self.made}.db"
            _remove_sqlite(path)
            try:
                yield f"sqlite:///{path}"
            finally:
                if not keep:
                    _remove_sqlite(path)
            return
        schema = f"bench_stage_{os.getpid()}_{self.made}"
        admin = create_engine(self.postgres_url)
        try:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                connection.execute(text(f"CREATE SCHEMA {schema}"))
        except SQLAlchemyError as error:  # nothing made yet, nothing to drop
            admin.dispose()
            print(f"\ncannot make a schema in {shown(self.postgres_url)}: {error}", file=sys.stderr)
            sys.exit(2)
        try:
            url = make_url(self.postgres_url).update_query_dict(
                {"options": f"-csearch_path={schema}"}
            )
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


def reachable(url: str) -> None:
    """Exit 2 at once if the PostgreSQL cannot be reached."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        print(f"cannot reach {shown(url)}: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        engine.dispose()


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def table_counts(url: str) -> dict[str, int]:
    """Rows in each staged table: both tools must have written the same data."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: int(connection.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
                for name in TABLES
            }
    finally:
        engine.dispose()


def migrate_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "migrate", *args]


def must_succeed(series: Series, argv: list[str], workdir: Path) -> Run:
    """One timed run that must exit 0; its Run is kept in `series`."""
    run = run_timed(argv, workdir)
    if run.returncode != 0:
        print()
        fail(series.name, run)
    series.runs.append(run)
    return run


def json_of(series: Series, run: Run) -> dict[str, object]:
    """The JSON object a command printed last; a run without one failed."""
    value = last_json_line(run)
    if value is None:
        print()
        fail(series.name, run)
    return value


def mismatch(name: str, detail: str) -> None:
    """Counts that differ mean the two did not write the same data: nothing to compare."""
    print(f"\n{name}: {detail}", file=sys.stderr)
    sys.exit(2)


def measure(
    db: Database, stores: Stores, plan_path: Path, expected: dict[str, int], keep: bool
) -> None:
    """One round on one database: stage and re-stage into one fresh store, the baseline into
    another, each after `migrate db upgrade`."""
    workdir = stores.workdir
    with stores.fresh(keep) as url:
        must_succeed(db.upgrade, migrate_argv("db", "upgrade", "--db", url), workdir)
        stage_argv = migrate_argv("stage", str(plan_path), "--db", url, "--json")
        first = json_of(db.stage, must_succeed(db.stage, stage_argv, workdir))
        if (first.get("staged"), first.get("devices")) != (
            expected["requests"],
            expected["devices"],
        ):
            mismatch(db.stage.name, f"staged {first}, the plan has {expected}")
        db.counts["stage"] = counts = table_counts(url)
        if counts != expected:
            mismatch(db.stage.name, f"tables hold {counts}, the plan has {expected}")
        print(f"    stage {db.stage.runs[-1].seconds:7.2f} s", end="", flush=True)
        again = json_of(db.restage, must_succeed(db.restage, stage_argv, workdir))
        db.restaged.append(int(again.get("staged", -1)))
        print(f"   re-stage {db.restage.runs[-1].seconds:7.2f} s", end="", flush=True)
    with stores.fresh(keep) as url:
        must_succeed(db.upgrade, migrate_argv("db", "upgrade", "--db", url), workdir)
        argv = [sys.executable, str(BASELINE_SCRIPT), str(plan_path), url]
        json_of(db.baseline, must_succeed(db.baseline, argv, workdir))
        db.counts["baseline"] = counts = table_counts(url)
        if counts != expected:
            mismatch(db.baseline.name, f"tables hold {counts}, the plan has {expected}")
        print(f"   to_sql {db.baseline.runs[-1].seconds:7.2f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000, help="devices in the extract")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each command")
    parser.add_argument("--keep", type=Path, help="write the extract, plan and stores here")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT),
        help=f"PostgreSQL to make schemas in (default ${POSTGRES_ENV} or {POSTGRES_DEFAULT})",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.devices < 1:
        parser.error("--devices and --repeat must be at least 1")
    try:
        if make_url(args.postgres).get_backend_name() != "postgresql":
            parser.error("--postgres must be a postgresql:// URL")
    except ArgumentError:
        parser.error("--postgres is not a database URL")
    reachable(args.postgres)  # before minutes of work, not after

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep.resolve(), args)
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        return bench(Path(tmp), args)


def bench(workdir: Path, args: argparse.Namespace) -> int:
    extract_path = workdir / "landis_ioc_devices.csv"
    generating = Series("generate extract")
    argv = [sys.executable, "-c", GENERATE_CODE, str(extract_path)]
    argv += [str(args.devices), str(args.seed), str(DEFECT_RATE)]
    extract = json_of(generating, must_succeed(generating, argv, workdir))
    print(
        f"extract: {extract['rows']:,} rows, {extract['installations']:,} installations, "
        f"{extract_path.stat().st_size / 1024**2:.1f} MB, {sum(extract['planted'].values()):,} "
        f"defects planted; generated in {generating.runs[-1].seconds:.2f} s"
    )
    plan_path = workdir / "plan.json"
    planning = Series("migrate plan")
    plan_argv = migrate_argv(
        "plan", str(extract_path), "--cohort", COHORT, "--mapping", MAPPING,
        "--out", str(plan_path), "--json",
    )  # fmt: skip
    plan_counts = json_of(planning, must_succeed(planning, plan_argv, workdir))
    counting = Series("count the plan's rows")
    argv = [sys.executable, "-c", PLAN_ROWS_CODE, str(plan_path)]
    expected = {
        k: int(v) for k, v in json_of(counting, must_succeed(counting, argv, workdir)).items()
    }
    devices = expected["devices"]
    print(
        f"plan: {expected['installations']:,} eligible installations with {devices:,} devices "
        f"(of {plan_counts.get('installations', 0):,}), {plan_path.stat().st_size / 1024**2:.1f} "
        f"MB; planned in {planning.runs[-1].seconds:.2f} s"
    )

    databases = []
    for kind, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        databases.append(
            (
                Database(
                    label,
                    upgrade=Series(f"{label}: migrate db upgrade"),
                    stage=Series(f"{label}: migrate stage"),
                    restage=Series(f"{label}: migrate stage (again)"),
                    baseline=Series(f"{label}: DataFrame.to_sql"),
                ),
                Stores(kind, workdir, args.postgres),
            )
        )
    for db, stores in databases:
        for i in range(args.repeat):
            print(f"  {db.name} run {i + 1}:", end="", flush=True)
            measure(db, stores, plan_path, expected, bool(args.keep))

    goals: dict[str, bool] = {}
    print()
    print(f"{'command':<38} {'median s':>9} {'device rows/s':>14} {'peak RSS MB':>12}")
    for db, _ in databases:
        for series in (db.upgrade, db.stage, db.restage, db.baseline):
            print(
                f"{series.name:<38} {series.median_s:>9.2f} "
                f"{devices / series.median_s:>14,.0f} {series.peak_bytes / 1024**2:>12.1f}"
            )
    for db, _ in databases:
        speedup = db.baseline.median_s / db.stage.median_s
        respeedup = db.baseline.median_s / db.restage.median_s
        print(
            f"{db.name}: to_sql time / stage time {speedup:.2f}, / re-stage time "
            f"{respeedup:.2f}; re-stage time / stage time "
            f"{db.restage.median_s / db.stage.median_s:.2f}"
        )
        goals[f"{db.name}: stage >= {MIN_ROWS_PER_S:,} device rows/s"] = (
            devices / db.stage.median_s >= MIN_ROWS_PER_S
        )
        goals[f"{db.name}: stage >= {MIN_SPEEDUP:g}x faster than to_sql"] = speedup >= MIN_SPEEDUP
        goals[f"{db.name}: re-stage stages 0 rows"] = all(n == 0 for n in db.restaged)
        goals[f"{db.name}: re-stage >= {MIN_ROWS_PER_S:,} device rows/s"] = (
            devices / db.restage.median_s >= MIN_ROWS_PER_S
        )
        goals[f"{db.name}: re-stage >= {MIN_SPEEDUP:g}x faster than to_sql"] = (
            respeedup >= MIN_SPEEDUP
        )
    for goal, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")

    report: dict[str, object] = {
        "devices": args.devices,
        "rows": extract["rows"],
        "installations": extract["installations"],
        "planted": extract["planted"],
        "repeat": args.repeat,
        "plan_s": round(planning.runs[-1].seconds, 3),
        "plan_counts": plan_counts,
        "staged_rows": expected,
    }
    for db, _ in databases:
        report[db.name.lower()] = {
            "upgrade": db.upgrade.summary(devices),
            "stage": db.stage.summary(devices),
            "restage": db.restage.summary(devices),
            "baseline_to_sql": db.baseline.summary(devices),
            "speedup": round(db.baseline.median_s / db.stage.median_s, 3),
            "restage_speedup": round(db.baseline.median_s / db.restage.median_s, 3),
            "restage_over_stage": round(db.restage.median_s / db.stage.median_s, 3),
            "restaged": db.restaged,
            "counts": db.counts,
        }
    report["goals"] = goals
    report["pass"] = all(goals.values())
    print(json.dumps(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
