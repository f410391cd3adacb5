"""The real `migrate commit` processes: stopped by SIGTERM, and several at once on PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from processes import Simulator, environment, migrate_command, run_migrate
from sqlalchemy import create_engine, select

from migrate.store.schema import requests

BATCH = "w1"


def _stage(folder: Path, env: dict[str, str], devices: int) -> None:
    for args in (
        ("sim", "extract", "estate.csv", "--devices", str(devices), "--seed", "3"),
        ("plan", "estate.csv", "-c", "ioc", "-m", "landis_ioc_devices", "-o", "plan.json"),
        ("db", "upgrade"),
        ("stage", "plan.json", "--batch", BATCH),
    ):
        done = run_migrate(*args, cwd=folder, env=env)
        assert done.returncode in (0, 1), done.stderr


def _commit(
    sim: Simulator, folder: Path, env: dict[str, str], *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        migrate_command("commit", "--batch", BATCH, "--gateway", sim.url, "--chunk", "20",
                        "--capacity", "100000", "--json", *extra),
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _rows(env: dict[str, str]) -> list[object]:
    engine = create_engine(env["MIGRATE_DATABASE_URL"])
    with engine.connect() as connection:
        found = list(connection.execute(select(requests).where(requests.c.batch == BATCH)))
    engine.dispose()
    return found


def test_sigterm_stops_a_commit_consistent_and_a_rerun_finishes(tmp_path: Path) -> None:
    env = environment(MIGRATE_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}")
    _stage(tmp_path, env, 3000)
    sim = Simulator(tmp_path / "dcc", capacity=100_000, latency_ms=20, processing_ms=100).start()
    try:
        process = _commit(sim, tmp_path, env)
        deadline = time.monotonic() + 60
        while not any(r.state != "STAGED" for r in _rows(env)):  # type: ignore[attr-defined]
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 4, err
        stopped = json.loads(out)
        assert stopped["stopped"] and not stopped["finished"]
        assert "SIGTERM: stopping after the requests in flight" in err
        assert stopped["states"].get("SUBMITTING", 0) == 0
        rerun = _commit(sim, tmp_path, env)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode in (0, 1), err
        assert json.loads(out)["finished"]
    finally:
        sim.stop()
    assert run_migrate("audit", "verify", cwd=tmp_path, env=env).returncode == 0


def test_several_commit_processes_on_postgresql_never_send_a_request_twice(
    tmp_path: Path, postgres_url: str
) -> None:
    env = environment(MIGRATE_DATABASE_URL=postgres_url)
    _stage(tmp_path, env, 3000)
    sim = Simulator(tmp_path / "dcc", capacity=100_000, latency_ms=10).start()
    try:
        runs = [_commit(sim, tmp_path, env, "--workers", "2") for _ in range(2)]
        results = []
        for run in runs:
            out, err = run.communicate(timeout=300)
            # 4: the first to run out of work leaves the other's requests still in flight.
            assert run.returncode in (0, 1, 4), err
            results.append(json.loads(out))
    finally:
        sim.stop()
    found = _rows(env)
    assert {r.state for r in found} <= {"MIGRATED", "FAILED"}  # type: ignore[attr-defined]
    # Every send was an attempt the DCC counted: no request went out twice.
    assert all(r.sends == r.attempts for r in found)  # type: ignore[attr-defined]
    assert sum(r["tally"]["duplicates"] for r in results) == 0
    assert all(r["tally"]["sent"] > 0 for r in results)  # both processes did share the work
    assert run_migrate("audit", "verify", cwd=tmp_path, env=env).returncode == 0
