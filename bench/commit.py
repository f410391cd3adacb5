"""Benchmark `migrate commit` against the bundled DCC simulator, and against the bare exchange.

    python bench/commit.py [--installations 100000] [--workers 1] [--chunk 500] [--keep DIR]
                           [--seed 0] [--postgres URL]

Generates a Landis+Gyr IOC estate big enough for `--installations` eligible installations,
plans and stages it once, then runs each scenario on a copy of that store (SQLite) or a fresh
schema staged anew (PostgreSQL, with `--postgres`), against a fresh simulator process
(outcome failures off, so every request migrates at its first attempt and all scenarios do
the same work), timing the committer as a whole process:

- floor: `bench/commit_baseline_http.py`: the same payloads POSTed in the same chunks and
  polled until settled, with no store updates, audit log or retries: what the DCC exchange
  itself costs here;
- fault-free: `migrate commit --json`;
- faults: the simulator answers 10% of calls with a transient fault (5% 503, 3% connection
  dropped before storing, 2% stored then the connection dropped: the lost response);
- outage: the simulator starts 8 s after the committer, which backs off meanwhile: its CPU
  time shows whether waiting costs CPU.

Goals: fault-free >= 2,000 installations/s; faults <= 2x the fault-free time; the outage run's
CPU time no more than the fault-free run's plus 1 s. Prints a table, one JSON line, and
PASS/FAIL per goal. Exit status: 0 all goals met, 1 a goal failed, 2 a command failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (REPO, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ingest import Run, child_env, run_timed  # noqa: E402
from plan import last_json_line  # noqa: E402
from stage import Stores, migrate_argv, reachable  # noqa: E402

BATCH = "bench"
# Eligible installations per generated device row for the IOC cohort (measured: 0.318).
ELIGIBLE_PER_DEVICE = 0.31
MIN_RATE = 2000.0
MAX_FAULT_SLOWDOWN = 2.0
MAX_OUTAGE_EXTRA_CPU_S = 1.0
OUTAGE_S = 8.0
FAULTS = {"error_rate": 0.05, "drop_rate": 0.03, "lost_response_rate": 0.02}
SIMULATOR_CODE = """\
import json, sys
from pathlib import Path
from migrate.sim.dcc import SimulatorOptions, serve
options = json.loads(sys.argv[3])
calm = dict(no_wan_rate=0, device_test_rate=0, master_keys_rate=0, gt01_rate=0)
serve("127.0.0.1", int(sys.argv[1]), Path(sys.argv[2]),
      SimulatorOptions(capacity=10_000_000, seed=1, **calm, **options))
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Simulator:
    """A simulator process with a fresh state folder."""

    def __init__(self, state: Path, options: dict[str, float]) -> None:
        shutil.rmtree(state, ignore_errors=True)
        self.state = state
        self.options = options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-c", SIMULATOR_CODE, str(self.port), str(self.state)]
        self.process = subprocess.Popen(
            [*argv, json.dumps(self.options)],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("the simulator did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def must(name: str, run: Run) -> dict[str, object]:
    document = last_json_line(run)
    if document is None or run.returncode not in (0, 1):
        print(f"\n{name} failed (exit {run.returncode}):\n{run.stderr[-3000:]}", file=sys.stderr)
        sys.exit(2)
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installations", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--postgres", help="run on this PostgreSQL instead of SQLite")
    args = parser.parse_args(argv)
    if args.postgres:
        reachable(args.postgres)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return bench(args.keep, args)
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as workdir:
        return bench(Path(workdir), args)


def prepare(workdir: Path, args: argparse.Namespace) -> tuple[Path, int]:
    devices = math.ceil(args.installations / ELIGIBLE_PER_DEVICE)
    extract, plan = workdir / "estate.csv", workdir / "plan.json"
    print(f"generating {devices:,} devices, planning ...", flush=True)
    code = (
        "import sys; from pathlib import Path; "
        "from migrate.sim.extract_generator import generate_long_extract; "
        "generate_long_extract(Path(sys.argv[1]), int(sys.argv[2]), seed=int(sys.argv[3]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(extract), str(devices), str(args.seed)],
        env=child_env(),
        check=True,
    )
    made = run_timed(
        migrate_argv("plan", str(extract), "-c", "ioc", "-m", "landis_ioc_devices", "-o",
                     str(plan), "--json"),
        workdir,
    )  # fmt: skip
    eligible = int(must("plan", made)["eligible"])  # type: ignore[call-overload]
    return plan, eligible


def staged_store(
    stack: contextlib.ExitStack, stores: Stores, plan: Path, workdir: Path, template: Path | None
) -> str:
    """A store holding the staged batch: a copy of the template (SQLite) or staged anew;
    removed when the stack closes."""
    url = stack.enter_context(stores.fresh(keep=False))
    if template is not None and url.startswith("sqlite"):
        target = Path(url.removeprefix("sqlite:///"))
        shutil.copy(template, target)
        return url
    for command in (["db", "upgrade", "--db", url], ["stage", str(plan), "--batch", BATCH,
                                                      "--db", url, "--json"]):  # fmt: skip
        done = run_timed(migrate_argv(*command), workdir)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            sys.exit(2)
    return url


def bench(workdir: Path, args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _bench(stack, workdir, args)


def _bench(stack: contextlib.ExitStack, workdir: Path, args: argparse.Namespace) -> int:
    plan, eligible = prepare(workdir, args)
    kind = "postgresql" if args.postgres else "sqlite"
    stores = Stores(kind, workdir, args.postgres or "")
    template = None
    first = staged_store(stack, stores, plan, workdir, None)
    if kind == "sqlite":
        template = workdir / "staged-template.db"
        shutil.copy(first.removeprefix("sqlite:///"), template)
    print(f"staged {eligible:,} installations on {kind}", flush=True)
    commit = [
        "commit", "--batch", BATCH, "--capacity", "10000000", "--chunk", str(args.chunk),
        "--workers", str(args.workers), "--json",
    ]  # fmt: skip
    figures: dict[str, dict[str, float]] = {}
    scenarios = [("floor", {}), ("fault-free", {}), ("faults", FAULTS), ("outage", {})]
    for name, options in scenarios:
        url = first if name == "floor" else staged_store(stack, stores, plan, workdir, template)
        sim = Simulator(workdir / f"dcc-{name}", options)
        if name == "outage":
            threading.Timer(OUTAGE_S, sim.start).start()
        else:
            sim.start()
        if name == "floor":
            argv = [sys.executable, str(BENCH / "commit_baseline_http.py"), url, BATCH,
                    sim.url, str(args.chunk)]  # fmt: skip
        else:
            argv = migrate_argv(*commit, "--gateway", sim.url, "--db", url)
        print(f"{name} ...", flush=True)
        run = run_timed(argv, workdir)
        sim.stop()
        document = must(name, run)
        settled = eligible if name == "floor" else _settled(document)
        if settled != eligible:
            print(f"\n{name}: settled {settled} of {eligible}: {document}", file=sys.stderr)
            return 2
        figures[name] = {
            "seconds": round(run.seconds, 2),
            "cpu_s": round(run.cpu_s, 2),
            "installations_per_s": round(eligible / run.seconds),
            "peak_rss_mb": round(run.peak_bytes / 1024**2, 1),
        }
        if name != "floor":
            figures[name]["duplicates"] = document["tally"]["duplicates"]  # type: ignore[index]
    return report(figures, eligible, kind, args)


def _settled(document: dict[str, object]) -> int:
    states = document["states"]
    assert isinstance(states, dict)
    return int(states.get("MIGRATED", 0)) + int(states.get("FAILED", 0))


def report(
    figures: dict[str, dict[str, float]], eligible: int, kind: str, args: argparse.Namespace
) -> int:
    print(f"\n{eligible:,} installations, {kind}, {args.workers} worker(s), chunk {args.chunk}")
    print(f"{'scenario':12} {'wall s':>8} {'cpu s':>7} {'inst/s':>8} {'peak MB':>8}")
    for name, row in figures.items():
        print(
            f"{name:12} {row['seconds']:8.2f} {row['cpu_s']:7.2f} "
            f"{row['installations_per_s']:8,.0f} {row['peak_rss_mb']:8.1f}"
        )
    free, faulty, outage = figures["fault-free"], figures["faults"], figures["outage"]
    slowdown = faulty["seconds"] / free["seconds"]
    extra_cpu = outage["cpu_s"] - free["cpu_s"]
    goals = {
        f"fault-free >= {MIN_RATE:,.0f} installations/s": free["installations_per_s"] >= MIN_RATE,
        f"10% transient faults <= {MAX_FAULT_SLOWDOWN}x fault-free time ({slowdown:.2f}x)": (
            slowdown <= MAX_FAULT_SLOWDOWN
        ),
        f"{OUTAGE_S:.0f} s outage costs <= {MAX_OUTAGE_EXTRA_CPU_S} s CPU ({extra_cpu:+.2f} s)": (
            extra_cpu <= MAX_OUTAGE_EXTRA_CPU_S
        ),
    }
    print(f"commit / floor (bare exchange): {free['seconds'] / figures['floor']['seconds']:.2f}x")
    for goal, met in goals.items():
        print(f"{'PASS' if met else 'FAIL'}  {goal}")
    print(
        json.dumps(
            {
                "installations": eligible,
                "store": kind,
                "workers": args.workers,
                "chunk": args.chunk,
                "figures": figures,
                "fault_slowdown": round(slowdown, 2),
                "commit_over_floor": round(free["seconds"] / figures["floor"]["seconds"], 2),
                "outage_extra_cpu_s": round(extra_cpu, 2),
                "goals": goals,
            },
            sort_keys=True,
        )
    )
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
