"""Benchmark `migrate plan` against a plain pandas script that loops over installations.

    python bench/plan.py [--devices 1000000] [--repeat 3] [--baseline-devices N]
                         [--baseline-repeat 1] [--keep DIR] [--seed 0]

Generates a Landis+Gyr IOC long extract (1% defects) with migrate.sim of `--devices` devices.
Then times, as whole processes and alternating so that drift in the machine hits all alike:

- plan: `python -m migrate plan EXTRACT --cohort ioc --mapping landis_ioc_devices --out OUT
  --json`, `--repeat` times;
- baseline: `python bench/plan_baseline_pandas.py EXTRACT cohorts/ioc.yaml`, the checks
  written as a pandas groupby loop, `--baseline-repeat` times (about three minutes a run at
  a million devices: it loops over 400,000 installations).

The speed ratio compares the two on the same extract in the same run. By default that is the
full extract, as the goal reads; `--baseline-devices N` runs the baseline (and a plan to
compare it with) on a smaller extract of N devices instead, where the plan's fixed cost of
starting Python and importing its libraries (about 0.4 s) weighs more. Prints a table, the two
tools' counts side by side with where they disagree, one JSON line, and PASS/FAIL per goal.
Exit status: 0 all goals met, 1 a goal failed, 2 a command failed (nothing to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (REPO, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# One way of timing whole processes for every benchmark: bench/ingest.py's.
from ingest import BASELINE_CODE as BARE_READ_CODE  # noqa: E402
from ingest import Run, Series, bare_read_done, run_timed  # noqa: E402

from migrate.cohort.loader import COHORTS  # noqa: E402
from migrate.sim.extract_generator import GeneratedExtract, generate_long_extract  # noqa: E402

DEFECT_RATE = 0.01
MAPPING = "landis_ioc_devices"
COHORT = "ioc"
BASELINE_SCRIPT = BENCH / "plan_baseline_pandas.py"
# What both tools report, compared key by key.
COUNT_KEYS = ("installations", "eligible", "excluded")

# Goals for a 1,000,000-device extract on a CI-sized machine.
MIN_ROWS_PER_S = 250_000
MAX_PEAK_RSS_BYTES = 2 * 1024**3
MIN_SPEEDUP = 50.0


def last_json_line(run: Run) -> dict[str, object] | None:
    """The JSON object a command printed last, or None if it failed or printed none."""
    if run.returncode != 0:
        return None
    lines = run.stdout.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def fail(name: str, run: Run) -> None:
    """A command that fails leaves nothing to compare: say why and stop (exit 2)."""
    print(f"\n{name} failed with exit status {run.returncode}", file=sys.stderr)
    for line in (run.stderr.strip() or run.stdout.strip()).splitlines()[-15:]:
        print(f"  {line}", file=sys.stderr)
    sys.exit(2)


def timed(series: Series, argv: list[str], workdir: Path, out: Path) -> dict[str, object]:
    """One run of a command that must exit 0 and print its counts as JSON; a fresh `out`."""
    out.unlink(missing_ok=True)
    run = run_timed(argv, workdir)
    counts = last_json_line(run)
    if counts is None:
        print()
        fail(series.name, run)
    series.runs.append(run)
    return counts


def bare_read(series: Series, extract: Path, workdir: Path) -> None:
    """One bare pyarrow read of the extract (bench/ingest.py's baseline): the machine's own
    speed, beside each plan, so that runs on different machines can be compared."""
    run = run_timed([sys.executable, "-c", BARE_READ_CODE, str(extract)], workdir)
    if not bare_read_done(run):
        print()
        fail(series.name, run)
    series.runs.append(run)


def plan_argv(extract: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "migrate", "plan", str(extract),
        "--cohort", COHORT, "--mapping", MAPPING, "--out", str(out), "--json",
    ]  # fmt: skip


def compare_verdicts(plan_path: Path, baseline_path: Path) -> dict[str, object]:
    """Installation by installation: where the two tools disagree, and which of the rows the
    toolkit quarantined (and the baseline read or skipped) sit in those installations."""
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    toolkit: dict[str, frozenset[str]] = {
        entry["payload"]["installation_id"]: frozenset() for entry in plan["eligible"]
    }
    toolkit.update(
        {entry["installation_id"]: frozenset(entry["reasons"]) for entry in plan["excluded"]}
    )
    quarantined: dict[str, set[str]] = {}
    for row in plan["quarantine"]:
        quarantined.setdefault(row["installation_id"], set()).add(row["reason"])
    del plan
    baseline = {
        entry["installation_id"]: frozenset(entry["reasons"])
        for entry in json.loads(baseline_path.read_text(encoding="utf-8"))["installations"]
    }

    both = toolkit.keys() & baseline.keys()
    differing = [i for i in both if toolkit[i] != baseline[i]]
    eligible_only_baseline = sum(1 for i in differing if not baseline[i])
    eligible_only_toolkit = sum(1 for i in differing if not toolkit[i])
    causes = Counter(reason for i in differing for reason in quarantined.get(i, ()))
    return {
        "installations_only_in_plan": len(toolkit.keys() - baseline.keys()),
        "installations_only_in_baseline": len(baseline.keys() - toolkit.keys()),
        "same_reasons": len(both) - len(differing),
        "different_reasons": len(differing),
        "eligible_only_in_baseline": eligible_only_baseline,
        "eligible_only_in_plan": eligible_only_toolkit,
        # Among the installations that differ: the toolkit's quarantine reasons found there.
        "differing_with_quarantine_reason": dict(sorted(causes.items())),
        "differing_without_quarantined_rows": sum(1 for i in differing if i not in quarantined),
    }


def count_rows(
    toolkit: dict[str, object], baseline: dict[str, object]
) -> list[tuple[str, int, int]]:
    """(what, plan, baseline) for the summary counts and every reason either tool gives."""
    rows = [(key, toolkit.get(key), baseline.get(key)) for key in COUNT_KEYS]
    plan_reasons = toolkit.get("excluded_by_reason") or {}
    baseline_reasons = baseline.get("excluded_by_reason") or {}
    for reason in sorted(plan_reasons.keys() | baseline_reasons.keys()):
        rows.append((f"  {reason}", plan_reasons.get(reason, 0), baseline_reasons.get(reason, 0)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000, help="devices in the extract")
    parser.add_argument(
        "--baseline-devices",
        type=int,
        help="devices in the extract the pandas baseline runs on (default: --devices; "
        "0: no baseline)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of migrate plan")
    parser.add_argument(
        "--baseline-repeat", type=int, default=1, help="timed runs of the pandas baseline"
    )
    parser.add_argument("--keep", type=Path, help="write the extracts and outputs here; keep them")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    args = parser.parse_args(argv)
    if args.baseline_devices is None:
        args.baseline_devices = args.devices
    if args.repeat < 1 or args.devices < 1 or args.baseline_devices < 0:
        parser.error("--devices and --repeat must be at least 1, --baseline-devices at least 0")
    if not 1 <= args.baseline_repeat <= args.repeat:
        parser.error("--baseline-repeat must be between 1 and --repeat")
    args.baseline_devices = min(args.baseline_devices, args.devices)

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep.resolve(), args)
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        return bench(Path(tmp), args)


def generate(path: Path, devices: int, seed: int) -> GeneratedExtract:
    start = time.perf_counter()
    extract = generate_long_extract(path, devices, seed=seed, defect_rate=DEFECT_RATE)
    print(
        f"extract {path.name}: {extract.rows:,} rows, {extract.installations:,} installations, "
        f"{path.stat().st_size / 1024**2:.1f} MB, {sum(extract.planted.values()):,} defects "
        f"planted; generated in {time.perf_counter() - start:.2f} s"
    )
    return extract


def bench(workdir: Path, args: argparse.Namespace) -> int:
    full = generate(workdir / "landis_ioc_devices.csv", args.devices, args.seed)
    with_baseline = args.baseline_devices > 0
    same_extract = args.baseline_devices == args.devices
    small = full
    if with_baseline and not same_extract:
        small = generate(workdir / "landis_ioc_devices_small.csv", args.baseline_devices, args.seed)
    with contextlib.chdir(REPO):  # as the children, which run in REPO, resolve `--cohort ioc`
        cohort_file = COHORTS.resolve(COHORT).resolve()

    plan_full = Series(f"migrate plan ({args.devices:,} devices)")
    bare = Series(f"bare read_csv ({args.devices:,} devices)")
    plan_small = Series(f"migrate plan ({args.baseline_devices:,} devices)")
    baseline = Series(f"pandas loop ({args.baseline_devices:,} devices)")
    if same_extract:
        plan_small = plan_full
    full_out, small_out = workdir / "plan-full.json", workdir / "plan-small.json"
    baseline_out = workdir / "baseline-small.json"
    baseline_argv = [
        sys.executable, str(BASELINE_SCRIPT), str(small.path), str(cohort_file),
        "--out", str(baseline_out),
    ]  # fmt: skip
    plan_counts: dict[str, object] = {}
    small_counts: dict[str, object] = {}
    baseline_counts: dict[str, object] = {}
    for i in range(args.repeat):
        plan_counts = timed(plan_full, plan_argv(full.path, full_out), workdir, full_out)
        run = plan_full.runs[-1]
        print(f"  run {i + 1}: plan {run.seconds:7.2f} s (CPU {run.cpu_s:5.2f} s)", end="")
        bare_read(bare, full.path, workdir)
        print(f"   bare read {bare.runs[-1].seconds:5.2f} s", end="")
        if with_baseline and i < args.baseline_repeat:
            baseline_counts = timed(baseline, baseline_argv, workdir, baseline_out)
            run = baseline.runs[-1]
            print(f"   baseline {run.seconds:7.2f} s (CPU {run.cpu_s:6.2f} s)", end="", flush=True)
            if same_extract:
                small_counts = plan_counts
            else:
                argv = plan_argv(small.path, small_out)
                small_counts = timed(plan_small, argv, workdir, small_out)
                print(f"   plan (small) {plan_small.runs[-1].seconds:6.2f} s", end="")
        print(flush=True)

    rows = full.rows
    goals = {
        f"plan >= {MIN_ROWS_PER_S:,} rows/s ({args.devices:,} devices)": (
            rows / plan_full.median_s >= MIN_ROWS_PER_S
        ),
        f"plan peak RSS < {MAX_PEAK_RSS_BYTES / 1024**3:g} GB ({args.devices:,} devices)": (
            plan_full.peak_bytes < MAX_PEAK_RSS_BYTES
        ),
    }
    measured = [(plan_full, full), (bare, full)]
    speedup = None
    if with_baseline:
        speedup = baseline.median_s / plan_small.median_s
        goals[f"plan >= {MIN_SPEEDUP:g}x the pandas loop ({args.baseline_devices:,} devices)"] = (
            speedup >= MIN_SPEEDUP
        )
        if not same_extract:
            measured.append((plan_small, small))
        measured.append((baseline, small))

    print()
    print(f"{'command':<38} {'median s':>9} {'rows/s':>12} {'peak RSS MB':>12}")
    for series, extract in measured:
        print(
            f"{series.name:<38} {series.median_s:>9.2f} {extract.rows / series.median_s:>12,.0f} "
            f"{series.peak_bytes / 1024**2:>12.1f}"
        )
    print(
        f"the machine: a bare read_csv of the extract took {bare.median_s:.2f} s; the plan "
        f"took {plan_full.median_s / bare.median_s:.1f}x that"
    )
    comparison: dict[str, object] | None = None
    if with_baseline:
        print(
            f"speed-up of migrate plan over the pandas loop, same {args.baseline_devices:,}-device "
            f"extract: {speedup:.1f}x"
        )
        print()
        print(f"{'counts, ' + f'{args.baseline_devices:,} devices':<38} {'plan':>9} "
              f"{'pandas':>12} {'pandas-plan':>12}")  # fmt: skip
        for what, ours, theirs in count_rows(small_counts, baseline_counts):
            print(f"{what:<38} {ours:>9,} {theirs:>12,} {theirs - ours:>+12,}")
        comparison = compare_verdicts(full_out if same_extract else small_out, baseline_out)
        print(
            f"installations with other reasons in the two: {comparison['different_reasons']:,} "
            f"(eligible only in pandas {comparison['eligible_only_in_baseline']:,}, only in "
            f"plan {comparison['eligible_only_in_plan']:,}); of those, "
            f"{comparison['differing_without_quarantined_rows']:,} have no row the toolkit "
            f"quarantined"
        )
        causes = comparison["differing_with_quarantine_reason"]
        if causes:
            print("  their quarantined rows: " + ", ".join(f"{k} {v:,}" for k, v in causes.items()))
    for goal, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    if not args.keep:
        for path in (full_out, small_out, baseline_out):
            path.unlink(missing_ok=True)

    report: dict[str, object] = {
        "devices": args.devices,
        "rows": rows,
        "installations": full.installations,
        "file_bytes": full.path.stat().st_size,
        "planted": full.planted,
        "repeat": args.repeat,
        "baseline_repeat": args.baseline_repeat,
        "plan": plan_full.summary(rows),
        "bare_read": bare.summary(rows),
        "plan_over_bare_read": round(plan_full.median_s / bare.median_s, 2),
        "plan_counts": plan_counts,
    }
    if with_baseline:
        report.update(
            {
                "baseline_devices": args.baseline_devices,
                "baseline_rows": small.rows,
                "baseline_installations": small.installations,
                "baseline_planted": small.planted,
                "plan_small": plan_small.summary(small.rows),
                "baseline": baseline.summary(small.rows),
                "speedup": round(speedup, 2),
                "plan_small_counts": small_counts,
                "baseline_counts": baseline_counts,
                "verdicts": comparison,
            }
        )
    report["goals"] = goals
    report["pass"] = all(goals.values())
    print(json.dumps(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
