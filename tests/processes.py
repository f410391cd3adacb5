"""The real CLI and the real simulator as separate processes, for end-to-end tests: what an
engineer runs, killed the way a machine kills it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    """The test's environment with the checkout importable (an editable install or not)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def migrate_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "migrate", *args]


def run_migrate(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        migrate_command(*args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Simulator:
    """`migrate sim serve` in a process of its own, on a fixed port, so that it can be killed
    (SIGKILL) and started again on the same state folder."""

    def __init__(self, state: Path, **options: object) -> None:
        self.state = state
        self.port = free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Simulator:
        args = ["sim", "serve", "--state", str(self.state), "--port", str(self.port)]
        for name, value in self.options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            migrate_command(*args),
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def requests(self) -> list[dict[str, Any]]:
        """What the DCC holds, read from its state file."""
        with sqlite3.connect(self.state / "dcc-simulator.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT idempotency_key, installation_id, attempt, state, reason FROM requests"
            ).fetchall()
        return [dict(row) for row in rows]

    def inventory(self) -> list[dict[str, Any]]:
        """The DCC's inventory, read again while the simulator's injected faults hit it."""
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"{self.url}/v1/inventory", timeout=30) as response:
                    body = response.read()
            except (OSError, http.client.HTTPException):
                continue
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        raise RuntimeError("the simulator's inventory could not be read")


# Outcome rates off: every attempt MIGRATES unless a test asks otherwise.
CALM = {"no_wan_rate": 0.0, "device_test_rate": 0.0, "master_keys_rate": 0.0, "gt01_rate": 0.0}


@contextlib.contextmanager
def simulator_thread(state: Path, **options: Any) -> Iterator[str]:
    """The real simulator serving in a thread of this process (port 0); yields its URL."""
    from migrate.sim.dcc import SimulatorOptions, serving

    with serving(state, SimulatorOptions(**{**CALM, **options})) as url:
        yield url
