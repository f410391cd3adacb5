"""The DCC simulator over real HTTP: idempotency, durability, capacity, outcomes, faults.

Each test runs a real server on 127.0.0.1 (a free port) in a thread, as the commit stage
would meet it; the fixture shuts every server down, so a test can also restart one on the
same state directory.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migrate.sim.dcc import Outcome, SimulatorOptions, _Store, decide_outcome, make_server

Response = tuple[int, dict[str, str], Any]
NO_FAILURES = {"no_wan_rate": 0.0, "device_test_rate": 0.0, "master_keys_rate": 0.0}


class Running:
    """A started simulator and its base URL."""

    def __init__(self, state_dir: Path, options: SimulatorOptions) -> None:
        self.state_dir = state_dir
        self.server = make_server("127.0.0.1", 0, state_dir, options)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.thread.join()
            self.server.server_close()

    def call(self, method: str, path: str, body: object = None, timeout: float = 5) -> Response:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), _decode(error.read())

    def submit(self, *requests: dict[str, Any], timeout: float = 5) -> Response:
        return self.call("POST", "/v1/requests", {"requests": list(requests)}, timeout)

    def outcomes(self, *keys: str) -> list[dict[str, Any]]:
        status, _, body = self.call("POST", "/v1/outcomes", {"keys": list(keys)})
        assert status == 200, body
        return body["outcomes"]

    def inventory(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(self.url + "/v1/inventory")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"] == "application/x-ndjson"
            return [json.loads(line) for line in response.read().decode().splitlines()]


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.decode()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start simulators (default state dir: tmp_path/state); all are stopped afterwards."""
    running: list[Running] = []

    def run(state_dir: Path | None = None, **options: Any) -> Running:
        server = Running(state_dir or tmp_path / "state", SimulatorOptions(**options))
        running.append(server)
        return server

    yield run
    for server in running:
        server.stop()


def req(
    key: str,
    installation: str | None = None,
    *,
    fingerprint: str = "f1",
    supplier: str = "SUPA",
    devices: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "fingerprint": fingerprint,
        "installation_id": installation or f"INST-{key}",
        "supplier_mpid": supplier,
        "payload": {"cohort": "ioc", "devices": devices or []},
    }


def statuses(response: Response) -> list[str]:
    status, _, body = response
    assert status == 200, body
    return [r["status"] for r in body["results"]]


def find_installation(options: SimulatorOptions, want: Callable[..., bool]) -> str:
    """An installation id whose seeded outcomes satisfy `want(first, second)` (without a gas
    meter, as `req` sends it)."""
    for n in range(10_000):
        installation = f"INST-{n}"
        first = decide_outcome(options, installation, 1, gas_meter=False)
        second = decide_outcome(options, installation, 2, gas_meter=False)
        if want(first, second):
            return installation
    raise AssertionError("no such installation in the first 10,000")


def test_health(start: Callable[..., Running]) -> None:
    assert start().call("GET", "/v1/health")[0] == 200


def test_accepted_duplicate_conflict(start: Callable[..., Running]) -> None:
    sim = start(**NO_FAILURES)
    assert statuses(sim.submit(req("k1"), req("k2"))) == ["ACCEPTED", "ACCEPTED"]
    assert statuses(sim.submit(req("k1"), req("k2", fingerprint="other"))) == [
        "DUPLICATE",
        "CONFLICT",
    ]
    # Within one chunk, a repeated key is judged against the first.
    assert statuses(sim.submit(req("k3"), req("k3"), req("k3", fingerprint="x"))) == [
        "ACCEPTED",
        "DUPLICATE",
        "CONFLICT",
    ]
    # The conflicting fingerprint never overwrote the first: resending it is still a conflict.
    assert statuses(sim.submit(req("k2"), req("k2", fingerprint="other"))) == [
        "DUPLICATE",
        "CONFLICT",
    ]


def test_restart_keeps_every_acknowledged_request_and_outcome(
    start: Callable[..., Running],
) -> None:
    first = start(seed=7)
    keys = [f"k{n}" for n in range(30)]
    assert set(statuses(first.submit(*(req(k) for k in keys)))) == {"ACCEPTED"}
    before = first.outcomes(*keys)
    assert {o["state"] for o in before} <= {"MIGRATED", "FAILED"}
    first.stop()

    second = start(seed=7)
    assert second.outcomes(*keys) == before
    # A resend is a duplicate, except after a reported retryable failure: a new attempt.
    retried = sorted(o["idempotency_key"] for o in before if o["retryable"])
    results = second.submit(*(req(k) for k in keys))[2]["results"]
    assert sorted(r["idempotency_key"] for r in results if r["status"] == "ACCEPTED") == retried
    assert {r["status"] for r in results if r["idempotency_key"] not in retried} == {"DUPLICATE"}
    assert set(statuses(second.submit(*(req(k) for k in keys)))) == {"DUPLICATE"}


def _at_start_of_day(day_seconds: float) -> None:
    """Wait until a simulated day has just begun, so a test's steps fall in one day."""
    while time.time() % day_seconds > 0.2 * day_seconds:
        time.sleep(0.02)


def test_capacity_gives_429_with_retry_after_and_recovers_next_day(
    start: Callable[..., Running],
) -> None:
    sim = start(capacity=2, day_seconds=1.0, **NO_FAILURES)
    _at_start_of_day(1.0)
    assert statuses(sim.submit(req("a"), req("b"))) == ["ACCEPTED", "ACCEPTED"]
    # Duplicates use no capacity; another supplier has its own.
    assert statuses(sim.submit(req("a"), req("z", supplier="SUPB"))) == ["DUPLICATE", "ACCEPTED"]
    status, headers, body = sim.submit(req("a"), req("c"))
    assert status == 429, body
    assert int(headers["Retry-After"]) == 1
    assert "SUPA" in body["error"]
    assert [o["state"] for o in sim.outcomes("c")] == ["UNKNOWN"]  # nothing stored
    time.sleep(int(headers["Retry-After"]))
    assert statuses(sim.submit(req("a"), req("c"))) == ["DUPLICATE", "ACCEPTED"]
    # A chunk bigger than a whole day can never be taken: refused, not retried forever.
    status, _, body = sim.submit(req("x1"), req("x2"), req("x3"))
    assert status == 413, body


def test_outcomes_pending_then_decided_and_deterministic(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    options = {"seed": 11, "processing_ms": 300, "no_wan_rate": 0.3, "master_keys_rate": 0.2}
    keys = [f"k{n}" for n in range(20)]
    runs = []
    for name in ("one", "two"):
        sim = start(tmp_path / name, **options)
        statuses(sim.submit(*(req(k) for k in keys)))
        pending = sim.outcomes(*keys)
        assert {o["state"] for o in pending} == {"PENDING"}
        assert {(o["reason"], o["retryable"]) for o in pending} == {(None, None)}
        runs.append(sim)
    time.sleep(0.35)
    decided = [sim.outcomes(*keys) for sim in runs]
    assert decided[0] == decided[1]  # the same seed decides the same way
    expected = SimulatorOptions(**options)
    for outcome in decided[0]:
        want = decide_outcome(expected, f"INST-{outcome['idempotency_key']}", 1, gas_meter=False)
        assert (outcome["state"], outcome["reason"], outcome["retryable"]) == (
            want.state,
            want.reason,
            want.retryable,
        )
    assert {o["state"] for o in decided[0]} == {"MIGRATED", "FAILED"}
    assert runs[0].outcomes("never-sent") == [
        {"idempotency_key": "never-sent", "state": "UNKNOWN", "reason": None, "retryable": None}
    ]


def test_default_rates_are_roughly_those_configured() -> None:
    options = SimulatorOptions(seed=3)
    reasons = [decide_outcome(options, f"I{n}", 1, gas_meter=True).reason for n in range(5000)]
    share = {r: reasons.count(r) / len(reasons) for r in set(reasons)}
    assert 0.87 < share[None] < 0.93
    for reason, rate in (
        ("NO_WAN_DURING_MIGRATION", 0.04),
        ("DEVICE_TEST_FAILED", 0.02),
        ("MISSING_MASTER_KEYS", 0.02),
        ("GAS_HAN_ERROR_GT01", 0.02),
    ):
        assert abs(share[reason] - rate) < 0.01, reason


def test_retryable_failure_can_succeed_on_a_later_attempt(start: Callable[..., Running]) -> None:
    options = {"seed": 5, "no_wan_rate": 0.5, "device_test_rate": 0.0, "master_keys_rate": 0.0}
    installation = find_installation(
        SimulatorOptions(**options),
        lambda first, second: (
            first.reason == "NO_WAN_DURING_MIGRATION" and second.state == "MIGRATED"
        ),
    )
    sim = start(**options)
    assert statuses(sim.submit(req("k", installation))) == ["ACCEPTED"]
    [failed] = sim.outcomes("k")
    assert (failed["state"], failed["reason"], failed["retryable"]) == (
        "FAILED",
        "NO_WAN_DURING_MIGRATION",
        True,
    )
    assert statuses(sim.submit(req("k", installation))) == ["ACCEPTED"]  # attempt 2
    [migrated] = sim.outcomes("k")
    assert (migrated["state"], migrated["reason"]) == ("MIGRATED", None)
    assert statuses(sim.submit(req("k", installation))) == ["DUPLICATE"]


def test_missing_master_keys_never_succeeds(start: Callable[..., Running]) -> None:
    options = SimulatorOptions(seed=5, master_keys_rate=0.5)
    installation = find_installation(options, lambda f, _: f.reason == "MISSING_MASTER_KEYS")
    assert {
        decide_outcome(options, installation, n, gas_meter=False).reason for n in range(1, 50)
    } == {"MISSING_MASTER_KEYS"}
    sim = start(seed=5, master_keys_rate=0.5)
    statuses(sim.submit(req("k", installation)))
    for _ in range(2):
        [outcome] = sim.outcomes("k")
        assert (outcome["state"], outcome["reason"], outcome["retryable"]) == (
            "FAILED",
            "MISSING_MASTER_KEYS",
            False,
        )
        assert statuses(sim.submit(req("k", installation))) == ["DUPLICATE"]


def test_the_last_allowed_attempt_is_not_retryable() -> None:
    options = SimulatorOptions(
        no_wan_rate=1.0, device_test_rate=0.0, master_keys_rate=0.0, gt01_rate=0.0
    )
    assert [decide_outcome(options, "I", n, gas_meter=True).retryable for n in range(1, 6)] == [
        True,
        True,
        True,
        True,
        False,
    ]


def test_gt01_shows_in_inventory(start: Callable[..., Running]) -> None:
    sim = start(gt01_rate=1.0, **NO_FAILURES)
    arrays = [
        ["00-1B-C5-00-00-00-00-01", "ESME", "LG", "E470", "1.2.0", "S1", "1312345678907"],
        ["00-1B-C5-00-00-00-00-02", "GSME", "LG", "G470", "2.0.1", "S2", "1234567"],
    ]
    objects = [
        {
            "device_id": "00-1B-C5-00-00-00-00-03",
            "device_type": "CHF",
            "manufacturer": "TL",
            "model": "CH1",
            "firmware_version": "3.1",
            "msn": None,
            "mpxn": None,
        }
    ]
    statuses(sim.submit(req("a", "I-A", devices=arrays), req("b", "I-B", devices=objects)))
    [a, b] = sim.outcomes("a", "b")
    assert (a["state"], a["reason"]) == ("MIGRATED", "GAS_HAN_ERROR_GT01")
    assert (b["state"], b["reason"]) == ("MIGRATED", None)  # no gas meter: no gas HAN error
    inventory = {d["device_id"]: d for d in sim.inventory()}
    assert {d: (v["installation_id"], v["status"]) for d, v in inventory.items()} == {
        "00-1B-C5-00-00-00-00-01": ("I-A", "Commissioned"),
        "00-1B-C5-00-00-00-00-02": ("I-A", "InstalledNotCommissioned"),
        "00-1B-C5-00-00-00-00-03": ("I-B", "Commissioned"),
    }
    assert inventory["00-1B-C5-00-00-00-00-02"]["firmware_version"] == "2.0.1"
    assert inventory["00-1B-C5-00-00-00-00-03"]["device_type"] == "CHF"


def test_inventory_lists_only_migrated_installations(start: Callable[..., Running]) -> None:
    sim = start(master_keys_rate=1.0, no_wan_rate=0.0, device_test_rate=0.0, gt01_rate=0.0)
    device = ["00-1B-C5-00-00-00-00-09", "ESME", "LG", "E470", "1.2.0", "S1", "1312345678907"]
    statuses(sim.submit(req("a", devices=[device])))
    assert sim.inventory() == []


def test_latency(start: Callable[..., Running]) -> None:
    sim = start(latency_ms=250)
    began = time.monotonic()
    assert statuses(sim.submit(req("k"))) == ["ACCEPTED"]
    assert time.monotonic() - began >= 0.25


def test_error_fault_replies_503_and_stores_nothing(start: Callable[..., Running]) -> None:
    faulty = start(error_rate=1.0)
    assert faulty.submit(req("k"))[0] == 503
    faulty.stop()
    assert statuses(start().submit(req("k"))) == ["ACCEPTED"]


def test_timeout_fault_stores_nothing(start: Callable[..., Running]) -> None:
    faulty = start(timeout_rate=1.0, timeout_sleep_s=5.0)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        faulty.submit(req("k"), timeout=0.3)
    faulty.stop()  # wakes the sleeping handler
    assert statuses(start().submit(req("k"))) == ["ACCEPTED"]


def test_drop_fault_closes_without_response_and_stores_nothing(
    start: Callable[..., Running],
) -> None:
    faulty = start(drop_rate=1.0)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        faulty.submit(req("k"))
    faulty.stop()
    assert statuses(start().submit(req("k"))) == ["ACCEPTED"]


def test_lost_response_is_committed_and_a_resend_is_duplicate(
    start: Callable[..., Running],
) -> None:
    faulty = start(lost_response_rate=1.0, **NO_FAILURES)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        faulty.submit(req("k"))
    faulty.stop()
    sim = start(**NO_FAILURES)
    assert statuses(sim.submit(req("k"))) == ["DUPLICATE"]
    assert sim.outcomes("k")[0]["state"] == "MIGRATED"


def test_fault_sequence_is_deterministic_for_a_seed(
    start: Callable[..., Running], tmp_path: Path
) -> None:
    sequences = []
    for name in ("one", "two"):
        sim = start(tmp_path / name, seed=9, error_rate=0.5)
        codes = [sim.call("POST", "/v1/outcomes", {"keys": ["k"]})[0] for _ in range(12)]
        sequences.append(codes)
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 503}


def one(**changes: Any) -> dict[str, Any]:
    """A chunk of one request with some fields changed."""
    return {"requests": [{**req("k"), **changes}]}


REQUESTS, OUTCOMES = "/v1/requests", "/v1/outcomes"


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        (REQUESTS, b"{not json", "body"),
        (REQUESTS, [], "body"),
        (REQUESTS, {}, "requests: missing"),
        (REQUESTS, {"requests": {}}, "requests: must be a list"),
        (REQUESTS, one(fingerprint=None), "requests[0].fingerprint: missing"),
        (REQUESTS, {"requests": [req("a"), {**req("k"), "supplier_mpid": 3}]}, "[1].supplier_mpid"),
        (REQUESTS, one(payload="x"), "requests[0].payload"),
        (REQUESTS, one(payload={"devices": [["id", "ESME"]]}), "requests[0].payload.devices[0]"),
        (REQUESTS, one(payload={"devices": [{"device_type": "ESME"}]}), "devices[0].device_id"),
        (OUTCOMES, {"keys": "k"}, "keys: must be a list"),
        (OUTCOMES, {"keys": ["a", 1]}, "keys[1]"),
        (OUTCOMES, {}, "keys: missing"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    start: Callable[..., Running], path: str, body: object, names: str
) -> None:
    sim = start()
    status, _, reply = sim.call("POST", path, body)
    assert status == 400
    assert names in reply["error"]
    assert "Traceback" not in json.dumps(reply)
    assert sim.outcomes("k")[0]["state"] == "UNKNOWN"  # a refused chunk stores nothing


def test_unknown_paths_and_methods(start: Callable[..., Running]) -> None:
    sim = start()
    assert sim.call("GET", "/v1/nothing")[0] == 404
    assert sim.call("GET", "/v1/requests")[0] == 405


def test_payload_values_are_never_logged(
    start: Callable[..., Running], capfd: pytest.CaptureFixture[str]
) -> None:
    sim = start()
    secret = ["00-1B-C5-00-00-00-00-01", "ESME", "LG", "E470", "1.2.0", "MSN-SECRET", "13123"]
    statuses(sim.submit(req("k", devices=[secret])))
    sim.outcomes("k")
    sim.inventory()
    out, err = capfd.readouterr()
    assert "MSN-SECRET" not in out + err


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        SimulatorOptions(error_rate=1.5)
    with pytest.raises(ValueError, match="outcome rates"):
        SimulatorOptions(no_wan_rate=0.6, device_test_rate=0.6)


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import sys; from pathlib import Path; from migrate.sim.dcc import serve, SimulatorOptions;"
        f"serve('127.0.0.1', {port}, Path(sys.argv[1]), SimulatorOptions())"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_gt01_is_drawn_only_for_installations_with_a_gas_meter(
    start: Callable[..., Running],
) -> None:
    """However the payload lists its devices, an installation without a GSME never gets the
    gas HAN error; one with a GSME does, at the configured rate (here every attempt)."""
    sim = start(gt01_rate=1.0, **NO_FAILURES)
    gas = {"device_id": "00-1B-C5-00-00-00-00-12", "device_type": "GSME"}
    electric = {"device_id": "00-1B-C5-00-00-00-00-11", "device_type": "ESME"}
    reordered = {
        "cohort": "ioc",
        "device_fields": ["device_type", "device_id"],
        "devices": [["ESME", "00-1B-C5-00-00-00-00-21"], ["GSME", "00-1B-C5-00-00-00-00-22"]],
    }
    statuses(
        sim.submit(
            req("gas-objects", "I-GAS", devices=[electric, gas]),
            {**req("gas-reordered", "I-REORDERED"), "payload": reordered},
            req("electric-only", "I-ELECTRIC", devices=[electric]),
            req("no-devices", "I-NONE"),
        )
    )
    reasons = {o["idempotency_key"]: (o["state"], o["reason"]) for o in sim.outcomes(
        "gas-objects", "gas-reordered", "electric-only", "no-devices"
    )}  # fmt: skip
    assert reasons == {
        "gas-objects": ("MIGRATED", "GAS_HAN_ERROR_GT01"),
        "gas-reordered": ("MIGRATED", "GAS_HAN_ERROR_GT01"),
        "electric-only": ("MIGRATED", None),
        "no-devices": ("MIGRATED", None),
    }
    not_commissioned = {d["device_id"] for d in sim.inventory() if d["status"] != "Commissioned"}
    assert not_commissioned == {"00-1B-C5-00-00-00-00-12", "00-1B-C5-00-00-00-00-22"}


def test_without_a_gas_meter_only_gt01_changes_and_the_seed_still_decides() -> None:
    """The GT01 share of draws becomes a clean migration without a gas meter; every other
    outcome is the same draw as with one, so a seed decides as before."""
    options = SimulatorOptions(seed=3, gt01_rate=0.2)
    for n in range(2000):
        for attempt in (1, 2):
            gas = decide_outcome(options, f"I{n}", attempt, gas_meter=True)
            none = decide_outcome(options, f"I{n}", attempt, gas_meter=False)
            if gas.reason == "GAS_HAN_ERROR_GT01":
                assert none == Outcome("MIGRATED", None, None)
            else:
                assert none == gas


def test_real_days_are_uk_days_and_shortened_days_are_counted(tmp_path: Path) -> None:
    """The DCC's day turns at midnight UK time: 23:00 UTC in summer, 00:00 UTC in winter."""

    def moment(*fields: int) -> float:
        return dt.datetime(*fields, tzinfo=dt.UTC).timestamp()

    real = _Store(tmp_path / "real.db", SimulatorOptions())
    assert real._day(moment(2026, 6, 30, 22, 30)) + 1 == real._day(moment(2026, 6, 30, 23, 30))
    assert real._day(moment(2026, 11, 30, 22, 30)) == real._day(moment(2026, 11, 30, 23, 30))
    assert real._day(moment(2026, 11, 30, 23, 30)) + 1 == real._day(moment(2026, 12, 1, 0, 30))
    short = _Store(tmp_path / "short.db", SimulatorOptions(day_seconds=1.0))
    assert short._day(moment(2026, 6, 30, 23, 30)) == int(moment(2026, 6, 30, 23, 30))
    real.close()
    short.close()
