"""Benchmark the reconciliation of a 400,000-installation cohort against a pandas script
doing the same job, on SQLite and PostgreSQL.

    python bench/reconcile.py [--devices 1000000] [--repeat 1] [--keep DIR] [--seed 0]
                              [--postgres URL] [--databases sqlite,postgresql]

Generates a Landis+Gyr IOC extract (1% defects; 1,000,000 devices is ~398,600 installations),
plans it (`migrate plan --cohort ioc`), and for each database, in a fresh store: stages the
plan, moves its requests through the commit states as the commit engine does, audited
(bench/reconcile_setup.py: ~1.26 million audit records), and writes the DCC inventory the
simulator would export, with discrepancies of every kind planted and counted. Then times, as
whole processes and alternating:

- reconcile: `python -c` calling `migrate.reconcile.reconcile` (the library function the CLI
  command calls) with the inventory, the extract (landis_ioc_devices) and an output folder:
  the three sides read, compared, the audit log verified, JSON, HTML and CSVs written;
- baseline: `python bench/reconcile_baseline_pandas.py`: the same sides read and merged
  with pandas, the audit chain checked record by record, CSVs written.

The reconciliation's counts must equal what was planted (else exit 2). Prints per command the
median wall time, installations/s and peak RSS, the ratio baseline/reconcile, PASS/FAIL per
goal and one JSON line. Exit status: 0 all goals met, 1 a goal failed, 2 a command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (REPO, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# The way of timing whole processes and of making fresh stores: bench/ingest.py's, stage.py's.
from ingest import Series  # noqa: E402
from stage import (  # noqa: E402
    GENERATE_CODE,
    POSTGRES_DEFAULT,
    POSTGRES_ENV,
    Stores,
    json_of,
    migrate_argv,
    mismatch,
    must_succeed,
    reachable,
)

DEFECT_RATE = 0.01
MAPPING = "landis_ioc_devices"
COHORT = "ioc"
BATCH = "bench"
SETUP_SCRIPT = BENCH / "reconcile_setup.py"
BASELINE_SCRIPT = BENCH / "reconcile_baseline_pandas.py"
RECONCILE_CODE = """\
import json, sys
from pathlib import Path
from migrate.reconcile import reconcile
from migrate.store.engine import make_engine
url, batch, inventory, extract, out = sys.argv[1:6]
result = reconcile(make_engine(url), batch, inventory=Path(inventory), extract=Path(extract),
                   extract_mapping="landis_ioc_devices", out=Path(out), actor="bench", key=None)
print(json.dumps({"installations": result.installations, "by_category": result.by_category,
                  "discrepant": result.discrepant, "audit_verified": result.audit_verified,
                  "audit_head_seq": result.audit_head_seq}))
"""

# Goals for 400,000 installations, on each database.
MAX_SECONDS = 20.0
MAX_PEAK_RSS_BYTES = 2 * 1024**3


def expected(planted: dict[str, object], excluded: int) -> dict[str, int]:
    """The categories the planted cohort must give."""
    outcomes = planted["outcomes"]
    plants = planted["planted"]
    assert isinstance(outcomes, dict) and isinstance(plants, dict)
    counts = {
        "MISSING_FROM_INVENTORY": plants["MISSING_FROM_INVENTORY"],
        "DEVICE_SET_DIFFERS": plants["DEVICE_MISSING"] + plants["DEVICE_EXTRA"],
        "NOT_COMMISSIONED": planted["not_commissioned"],
        "FIRMWARE_DIFFERS": plants["FIRMWARE_DIFFERS"],
        "MPXN_DIFFERS": 0,
        "STUCK": outcomes["STUCK_SUBMITTING"] + outcomes["STUCK_ACCEPTED"],
        "IN_FLIGHT": outcomes["IN_FLIGHT"],
        "FAILED_RETRYABLE": outcomes["FAILED_RETRYABLE"],
        "FAILED_PERMANENT": outcomes["FAILED_PERMANENT"],
        "AWAITING_COMMIT": outcomes["AWAITING_COMMIT"],
        "WITHDRAWN": outcomes["WITHDRAWN"],
        "NOT_REQUESTED": planted["not_requested"],
        "OTHER_BATCH": 0,
        "EXCLUDED": excluded,
    }
    in_batch = sum(v for k, v in counts.items() if k not in ("NOT_REQUESTED", "EXCLUDED"))
    counts["MIGRATED_MATCHING"] = int(planted["requests"]) - in_batch  # type: ignore[call-overload]
    return {k: int(v) for k, v in counts.items()}  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000, help="devices in the extract")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each command")
    parser.add_argument("--keep", type=Path, help="write the extract, plan, stores here")
    parser.add_argument("--seed", type=int, default=0, help="generator and outcome seed")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT),
        help=f"PostgreSQL to make schemas in (default ${POSTGRES_ENV} or {POSTGRES_DEFAULT})",
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="which stores")
    args = parser.parse_args(argv)
    kinds = args.databases.split(",")
    if args.repeat < 1 or args.devices < 1 or not set(kinds) <= {"sqlite", "postgresql"}:
        parser.error("--devices and --repeat must be at least 1; databases sqlite, postgresql")
    if "postgresql" in kinds:
        reachable(args.postgres)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep.resolve(), args, kinds)
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        return bench(Path(tmp), args, kinds)


def bench(workdir: Path, args: argparse.Namespace, kinds: list[str]) -> int:
    extract = workdir / "landis_ioc_devices.csv"
    generating = Series("generate extract")
    argv = [sys.executable, "-c", GENERATE_CODE, str(extract)]
    argv += [str(args.devices), str(args.seed), str(DEFECT_RATE)]
    made = json_of(generating, must_succeed(generating, argv, workdir))
    plan = workdir / "plan.json"
    planning = Series("migrate plan")
    plan_argv = migrate_argv(
        "plan", str(extract), "--cohort", COHORT, "--mapping", MAPPING, "--out", str(plan),
        "--json",
    )  # fmt: skip
    planned = json_of(planning, must_succeed(planning, plan_argv, workdir))
    print(
        f"extract: {made['rows']:,} rows, {made['installations']:,} installations; plan: "
        f"{planned['eligible']:,} eligible, {planned['excluded']:,} excluded",
        flush=True,
    )
    report: dict[str, object] = {
        "devices": args.devices,
        "installations": made["installations"],
        "repeat": args.repeat,
    }
    goals: dict[str, bool] = {}
    rows = []
    for kind in kinds:
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        stores = Stores(kind, workdir, args.postgres)
        with stores.fresh(bool(args.keep)) as url:
            setup = Series(f"{label}: setup")
            must_succeed(setup, migrate_argv("db", "upgrade", "--db", url), workdir)
            stage_argv = migrate_argv("stage", str(plan), "--batch", BATCH, "--db", url, "--json")
            must_succeed(setup, stage_argv, workdir)
            inventory = workdir / f"inventory-{kind}.ndjson"
            argv = [sys.executable, str(SETUP_SCRIPT), str(plan), url, BATCH, str(inventory)]
            planted = json_of(
                setup, must_succeed(setup, [*argv, "--seed", str(args.seed)], workdir)
            )
            want = expected(planted, int(planned["excluded"]))
            print(f"  {label}: staged and moved in {sum(r.seconds for r in setup.runs):.0f} s")
            reconciling = Series(f"{label}: reconcile")
            baseline = Series(f"{label}: pandas baseline")
            for n in range(args.repeat):
                out = workdir / f"out-{kind}-{n}"
                argv = [sys.executable, "-c", RECONCILE_CODE, url, BATCH, str(inventory)]
                found = json_of(
                    reconciling,
                    must_succeed(reconciling, [*argv, str(extract), str(out)], workdir),
                )
                if found["by_category"] != want or not found["audit_verified"]:
                    mismatch(reconciling.name, f"found {found}, planted {want}")
                print(f"    reconcile {reconciling.runs[-1].seconds:7.2f} s", end="", flush=True)
                argv = [sys.executable, str(BASELINE_SCRIPT), url, BATCH, str(plan)]
                argv += [str(inventory), str(extract), str(workdir / f"base-{kind}-{n}")]
                base = json_of(baseline, must_succeed(baseline, argv, workdir))
                print(f"   baseline {baseline.runs[-1].seconds:7.2f} s", flush=True)
        installations = int(found["installations"])
        ratio = baseline.median_s / reconciling.median_s
        rows += [(reconciling, installations), (baseline, installations)]
        goals[f"{label}: reconcile < {MAX_SECONDS:g} s"] = reconciling.median_s < MAX_SECONDS
        goals[f"{label}: reconcile peak RSS < 2 GB"] = reconciling.peak_bytes < MAX_PEAK_RSS_BYTES
        agree = {k: v for k, v in base["by_category"].items() if v} == {  # type: ignore[union-attr]
            k: v for k, v in want.items() if v
        }
        report[kind] = {
            "reconcile": reconciling.summary(installations),
            "baseline": baseline.summary(installations),
            "baseline_over_reconcile": round(ratio, 3),
            "baseline_phases_s": {k: v for k, v in base.items() if k.endswith("_s")},
            "baseline_agrees": agree,
            "audit_records": found["audit_head_seq"],
            "by_category": found["by_category"],
            "cpu_s": round(reconciling.runs[-1].cpu_s, 3),
        }
    print()
    print(f"{'command':<34} {'median s':>9} {'installations/s':>16} {'peak RSS MB':>12}")
    for series, installations in rows:
        print(
            f"{series.name:<34} {series.median_s:>9.2f} "
            f"{installations / series.median_s:>16,.0f} {series.peak_bytes / 1024**2:>12.1f}"
        )
    for kind in kinds:
        entry = report[kind]
        assert isinstance(entry, dict)
        print(
            f"{kind}: baseline time / reconcile time {entry['baseline_over_reconcile']:.2f}; "
            f"baseline phases {entry['baseline_phases_s']}; counts agree: "
            f"{entry['baseline_agrees']}"
        )
    for goal, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    report["goals"] = goals
    report["pass"] = all(goals.values())
    print(json.dumps(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
