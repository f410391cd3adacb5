"""The go-live guarantee, end to end: the real `migrate commit` killed with SIGKILL at random
moments (and the real simulator killed too), restarted each time, still enrols each eligible
installation exactly once, loses none, and leaves an audit log that verifies."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import Simulator, environment, migrate_command, run_migrate
from sqlalchemy import create_engine, select

from migrate.store.schema import audit, requests

KILLS = 20
BATCH = "crash-test"


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A generated IOC estate, planned and staged in a SQLite store, through the CLI."""
    env = environment(MIGRATE_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}")
    for args in (
        ("sim", "extract", "estate.csv", "--devices", "5000", "--seed", "11"),
        ("plan", "estate.csv", "-c", "ioc", "-m", "landis_ioc_devices", "-o", "plan.json"),
        ("db", "upgrade"),
        ("stage", "plan.json", "--batch", BATCH),
    ):
        done = run_migrate(*args, cwd=tmp_path, env=env)
        assert done.returncode in (0, 1), done.stderr
    return tmp_path, env


def _commit(sim: Simulator, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        migrate_command(
            "commit", "--batch", BATCH, "--gateway", sim.url, "--chunk", "10",
            "--capacity", "100000", "--json",
        ),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _exactly_once(folder: Path, env: dict[str, str], sim: Simulator) -> None:
    """What the store says against what the DCC holds, installation by installation."""
    engine = create_engine(env["MIGRATE_DATABASE_URL"])
    with engine.connect() as connection:
        store = {
            row.idempotency_key: row
            for row in connection.execute(select(requests).where(requests.c.batch == BATCH))
        }
    engine.dispose()
    plan = json.loads((folder / "plan.json").read_text())
    assert len(store) == len(plan["eligible"]) > 500
    # Nothing lost: every request settled, and the DCC holds every one of them.
    assert Counter(r.state for r in store.values()).keys() <= {"MIGRATED", "FAILED"}
    held = {r["idempotency_key"]: r for r in sim.requests()}
    assert held.keys() == store.keys()
    # Exactly once: one request per installation at the DCC, one enrolment in its inventory.
    assert len({r["installation_id"] for r in held.values()}) == len(held)
    for key, row in store.items():
        # Every attempt the DCC made counted, none it did not: also those it decided (and
        # reported) while the run that sent them was being killed.
        assert held[key]["attempt"] == row.attempts, row.installation_id
        assert (held[key]["state"] == "MIGRATED") == (row.state == "MIGRATED"), row.installation_id
    devices = sim.inventory()
    assert len({d["device_id"] for d in devices}) == len(devices)
    migrated = {r.installation_id for r in store.values() if r.state == "MIGRATED"}
    assert {d["installation_id"] for d in devices} == migrated
    verified = run_migrate("audit", "verify", cwd=folder, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _audit_head(folder: Path) -> int:
    with sqlite3.connect(f"file:{folder / 'store.db'}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0])


def _started(process: subprocess.Popen[str], folder: Path, before: int) -> bool:
    """Wait until the run has written to the store (adopted or claimed): a kill is only a
    test of recovery once the run is under way, however long a slow machine takes to start
    it. False if it ended first."""
    deadline = time.monotonic() + 60
    while _audit_head(folder) == before:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _adopted(env: dict[str, str]) -> int:
    engine = create_engine(env["MIGRATE_DATABASE_URL"])
    with engine.connect() as connection:
        found = connection.execute(select(audit.c.seq).where(audit.c.reason == "ADOPTED")).all()
    engine.dispose()
    return len(found)


@pytest.mark.parametrize("restart_simulator", [False, True], ids=["commit-killed", "both-killed"])
def test_a_commit_killed_at_random_moments_enrols_each_installation_exactly_once(
    staged: tuple[Path, dict[str, str]], restart_simulator: bool
) -> None:
    folder, env = staged
    sim = Simulator(
        folder / "dcc",
        seed=5,
        capacity=100_000,
        latency_ms=50,
        processing_ms=150,
        lost_response_rate=0.05,
        error_rate=0.05,
    ).start()
    rng = random.Random(2026 + restart_simulator)
    kills = 0
    try:
        while kills < KILLS:
            before = _audit_head(folder)
            process = _commit(sim, folder, env)
            assert _started(process, folder, before), process.communicate()
            try:
                process.wait(timeout=rng.uniform(0.0, 0.8))
            except subprocess.TimeoutExpired:
                if restart_simulator and kills % 3 == 1:
                    sim.kill()  # the DCC goes down under the running commit, then comes back
                    sim.start()
                process.kill()
                process.wait()
                kills += 1
                continue
            out, err = process.communicate()
            pytest.fail(f"the batch finished after {kills} kills, too soon to test: {out}{err}")
        final = _commit(sim, folder, env)
        out, err = final.communicate(timeout=300)
        assert final.returncode in (0, 1), out[-2000:]
        result = json.loads(out)
        assert result["finished"], result
        _exactly_once(folder, env, sim)
        assert _adopted(env) > 0  # the runs did find requests that killed runs had left
    finally:
        sim.stop()
