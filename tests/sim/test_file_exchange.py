"""The DCC simulator's file-drop exchange, driven with raw files as an SFTP client would.

Each test runs a real exchange thread on a tmp folder; the fixture closes them all, so a test
can also restart one on the same folders and state, or set up by hand what a crash leaves.
"""

from __future__ import annotations

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

from migrate.commit import FileDropGateway, Receipt, Submission
from migrate.commit.file_drop import INBOX, OUTBOX, inventory_data_name, write_atomically
from migrate.sim.dcc import SimulatorOptions, make_server
from migrate.sim.file_exchange import ANSWERED, PROCESSING, FileExchange, make_exchange

NO_FAILURES = {"no_wan_rate": 0.0, "device_test_rate": 0.0, "master_keys_rate": 0.0}
POLL = 0.01
Start = Callable[..., FileExchange]


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    return tmp_path / "exchange"


@pytest.fixture
def start(tmp_path: Path, exchange_dir: Path) -> Iterator[Start]:
    """Start exchanges on exchange_dir (state in tmp_path/state); all are closed afterwards."""
    running: list[FileExchange] = []

    def run(state_dir: Path | None = None, **options: Any) -> FileExchange:
        exchange = make_exchange(
            exchange_dir,
            state_dir or tmp_path / "state",
            SimulatorOptions(**options),
            poll_interval_s=POLL,
        )
        exchange.start()
        running.append(exchange)
        return exchange

    yield run
    for exchange in running:
        exchange.close()


def req(key: str, *, fingerprint: str = "f1", devices: list[Any] | None = None) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "fingerprint": fingerprint,
        "installation_id": f"INST-{key}",
        "supplier_mpid": "SUPA",
        "payload": {"cohort": "ioc", "devices": devices or []},
    }


def drop(directory: Path, kind: str, body: object, *, n: int = 1) -> str:
    """Write a request file into the outbox as a client would; its name."""
    name = f"{kind}-{n:032x}.json"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    write_atomically(directory / OUTBOX / name, [raw])
    return name


def answer(directory: Path, name: str, timeout: float = 5.0) -> dict[str, Any]:
    """The envelope answering `name`, once it is there; it is taken, as a client would."""
    path = directory / INBOX / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no answer to {name}"
        time.sleep(POLL)
    envelope = json.loads(path.read_bytes())
    path.unlink()
    return envelope


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def settle(directory: Path, timeout: float = 5.0) -> None:
    """Wait until the exchange holds nothing: outbox and processing empty."""
    deadline = time.monotonic() + timeout
    while files(directory / OUTBOX) or files(directory / PROCESSING):
        assert time.monotonic() < deadline, "the exchange did not take its requests"
        time.sleep(POLL)


def receipts(envelope: dict[str, Any]) -> list[str]:
    assert envelope["status"] == 200, envelope
    return [r["status"] for r in envelope["body"]["results"]]


def test_each_request_is_answered_under_its_own_name(start: Start, exchange_dir: Path) -> None:
    start(**NO_FAILURES)
    first = drop(exchange_dir, "requests", {"requests": [req("k1"), req("k2")]}, n=1)
    again = drop(
        exchange_dir, "requests", {"requests": [req("k1"), req("k2", fingerprint="x")]}, n=2
    )
    assert answer(exchange_dir, first) == {
        "status": 200,
        "body": {
            "results": [
                {"idempotency_key": "k1", "status": "ACCEPTED", "attempt": 1},
                {"idempotency_key": "k2", "status": "ACCEPTED", "attempt": 1},
            ]
        },
    }
    assert receipts(answer(exchange_dir, again)) == ["DUPLICATE", "CONFLICT"]
    outcomes = answer(exchange_dir, drop(exchange_dir, "outcomes", {"keys": ["k1", "no"]}, n=3))
    assert [o["state"] for o in outcomes["body"]["outcomes"]] == ["MIGRATED", "UNKNOWN"]
    settle(exchange_dir)
    assert files(exchange_dir / INBOX) == files(exchange_dir / ANSWERED) == []


def test_inventory_is_a_data_file_delivered_before_its_envelope(
    start: Start, exchange_dir: Path
) -> None:
    start(gt01_rate=1.0, **NO_FAILURES)
    devices = [
        ["00-1B-C5-00-00-00-00-01", "ESME", "LG", "E470", "1.2.0", "S1", "1312345678907"],
        ["00-1B-C5-00-00-00-00-02", "GSME", "LG", "G470", "2.0.1", "S2", "1234567"],
    ]
    answer(exchange_dir, drop(exchange_dir, "requests", {"requests": [req("a", devices=devices)]}))
    name = drop(exchange_dir, "inventory", {}, n=2)
    assert answer(exchange_dir, name) == {"status": 200, "body": {"devices": 2}}
    data = exchange_dir / INBOX / inventory_data_name(name)
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    assert [(d["device_id"][-2:], d["status"]) for d in lines] == [
        ("01", "Commissioned"),
        ("02", "InstalledNotCommissioned"),
    ]


@pytest.mark.parametrize(
    ("kind", "body", "status", "names"),
    [
        ("requests", b"{not json", 400, "body: not valid JSON"),
        (
            "requests",
            {"requests": [{**req("k"), "fingerprint": None}]},
            400,
            "fingerprint: missing",
        ),
        ("outcomes", {"keys": ["a", 1]}, 400, "keys[1]"),
        ("health", {}, 404, "no such endpoint: health"),
    ],
)
def test_bad_requests_are_answered_with_the_error(
    start: Start, exchange_dir: Path, kind: str, body: object, status: int, names: str
) -> None:
    start()
    envelope = answer(exchange_dir, drop(exchange_dir, kind, body))
    assert envelope["status"] == status
    assert names in envelope["body"]["error"]
    outcomes = answer(exchange_dir, drop(exchange_dir, "outcomes", {"keys": ["k"]}, n=2))
    assert outcomes["body"]["outcomes"][0]["state"] == "UNKNOWN"  # nothing stored


def test_files_still_being_written_are_ignored(start: Start, exchange_dir: Path) -> None:
    start()
    outbox = exchange_dir / OUTBOX
    (outbox / ".requests-0001.json.tmp").write_bytes(b'{"requests": [{"idempo')
    (outbox / "notes.txt").write_text("not a request")
    # A complete request after them is answered: the exchange was polling all along.
    answer(exchange_dir, drop(exchange_dir, "outcomes", {"keys": ["k"]}))
    time.sleep(5 * POLL)
    assert files(outbox) == [".requests-0001.json.tmp", "notes.txt"]
    assert files(exchange_dir / INBOX) == []


def test_over_capacity_is_429_with_retry_after(start: Start, exchange_dir: Path) -> None:
    start(capacity=1, day_seconds=3600.0)
    assert receipts(answer(exchange_dir, drop(exchange_dir, "requests", {"requests": [req("a")]})))
    envelope = answer(exchange_dir, drop(exchange_dir, "requests", {"requests": [req("b")]}, n=2))
    assert envelope["status"] == 429
    assert isinstance(envelope["retry_after"], int) and 1 <= envelope["retry_after"] <= 3600
    assert "over its capacity" in envelope["body"]["error"]


def test_latency_delays_the_answer(start: Start, exchange_dir: Path) -> None:
    start(latency_ms=250)
    began = time.monotonic()
    answer(exchange_dir, drop(exchange_dir, "outcomes", {"keys": ["k"]}))
    assert time.monotonic() - began >= 0.25


def stored(exchange_dir: Path, key: str) -> bool:
    """Whether the store holds `key`, asked of the running exchange (without faults)."""
    envelope = answer(exchange_dir, drop(exchange_dir, "outcomes", {"keys": [key]}, n=99))
    return envelope["body"]["outcomes"][0]["state"] != "UNKNOWN"


def test_error_fault_answers_503_and_stores_nothing(start: Start, exchange_dir: Path) -> None:
    faulty = start(error_rate=1.0)
    envelope = answer(exchange_dir, drop(exchange_dir, "requests", {"requests": [req("k")]}))
    assert envelope == {"status": 503, "body": {"error": "injected fault: service unavailable"}}
    faulty.close()
    start()
    assert not stored(exchange_dir, "k")


@pytest.mark.parametrize("fault", ["timeout_rate", "drop_rate"])
def test_timeout_and_drop_consume_the_request_unanswered(
    start: Start, exchange_dir: Path, fault: str
) -> None:
    faulty = start(**{fault: 1.0})
    drop(exchange_dir, "requests", {"requests": [req("k")]})
    settle(exchange_dir)
    faulty.close()
    assert files(exchange_dir / INBOX) == files(exchange_dir / ANSWERED) == []
    start()
    assert not stored(exchange_dir, "k")


def test_lost_response_is_stored_then_unanswered(start: Start, exchange_dir: Path) -> None:
    faulty = start(lost_response_rate=1.0, **NO_FAILURES)
    drop(exchange_dir, "requests", {"requests": [req("k")]})
    settle(exchange_dir)
    faulty.close()
    assert files(exchange_dir / INBOX) == []
    start(**NO_FAILURES)
    resent = drop(exchange_dir, "requests", {"requests": [req("k")]}, n=2)
    assert receipts(answer(exchange_dir, resent)) == ["DUPLICATE"]


def test_the_fault_sequence_is_the_http_servers(start: Start, tmp_path: Path) -> None:
    """One seed, one sequence of faults, whichever transport the requests come by."""
    options = SimulatorOptions(seed=9, error_rate=0.5)
    server = make_server("127.0.0.1", 0, tmp_path / "http-state", options)
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        over_http = []
        for _ in range(12):
            request = urllib.request.Request(
                f"http://{host}:{port}/v1/outcomes", data=b'{"keys": ["k"]}', method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    over_http.append(response.status)
            except urllib.error.HTTPError as error:
                over_http.append(error.code)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    start(seed=9, error_rate=0.5)
    by_file = [
        answer(
            tmp_path / "exchange", drop(tmp_path / "exchange", "outcomes", {"keys": ["k"]}, n=n)
        )["status"]
        for n in range(12)
    ]
    assert by_file == over_http
    assert set(by_file) == {200, 503}


def test_a_claimed_request_is_answered_after_a_restart(start: Start, exchange_dir: Path) -> None:
    """A simulator killed right after claiming a request leaves it in processing/."""
    first = start(latency_ms=10_000, **NO_FAILURES)
    name = drop(exchange_dir, "requests", {"requests": [req("k")]})
    while files(exchange_dir / PROCESSING) != [name]:
        time.sleep(POLL)
    began = time.monotonic()
    first.close()
    assert time.monotonic() - began < 2  # stopping does not wait out the latency
    assert files(exchange_dir / PROCESSING) == [name] and files(exchange_dir / INBOX) == []
    start(**NO_FAILURES)
    assert receipts(answer(exchange_dir, name)) == ["ACCEPTED"]
    settle(exchange_dir)


def test_a_request_committed_before_a_crash_comes_back_duplicate(
    start: Start, exchange_dir: Path
) -> None:
    """A crash between the commit and the answer: handled again, it is a resend."""
    first = start(**NO_FAILURES)
    body = {"requests": [req("k")]}
    assert receipts(answer(exchange_dir, drop(exchange_dir, "requests", body))) == ["ACCEPTED"]
    first.close()
    name = "requests-" + "c" * 32 + ".json"
    (exchange_dir / PROCESSING / name).write_text(json.dumps(body))
    start(**NO_FAILURES)
    assert receipts(answer(exchange_dir, name)) == ["DUPLICATE"]


def test_a_written_answer_is_delivered_after_a_restart_not_handled_again(
    start: Start, exchange_dir: Path
) -> None:
    """A crash after the answer was written whole: it is delivered as written; a crash
    while it was being written leaves a dot-file, which is dropped."""
    start().close()  # lays out the folders
    name = "requests-" + "d" * 32 + ".json"
    (exchange_dir / PROCESSING / name).write_text(json.dumps({"requests": [req("k")]}))
    written = {"status": 200, "body": {"results": [{"idempotency_key": "k", "status": "ACCEPTED"}]}}
    (exchange_dir / ANSWERED / name).write_text(json.dumps(written))
    (exchange_dir / ANSWERED / ".outcomes-1.json.tmp").write_text('{"status": 2')
    start()
    assert answer(exchange_dir, name) == written
    settle(exchange_dir)
    assert files(exchange_dir / ANSWERED) == []
    assert not stored(exchange_dir, "k")  # delivered, not handled a second time


def test_payload_values_are_never_logged(
    start: Start, exchange_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    start()
    secret = ["00-1B-C5-00-00-00-00-01", "ESME", "LG", "E470", "1.2.0", "MSN-SECRET", "13123"]
    answer(exchange_dir, drop(exchange_dir, "requests", {"requests": [req("k", devices=[secret])]}))
    answer(exchange_dir, drop(exchange_dir, "inventory", {}, n=2))
    out, err = capfd.readouterr()
    assert "MSN-SECRET" not in out + err


def test_serve_answers_http_and_the_exchange_from_one_store(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import sys; from pathlib import Path; from migrate.sim.dcc import serve, SimulatorOptions;"
        f"serve('127.0.0.1', {port}, Path(sys.argv[1]), SimulatorOptions(),"
        " exchange=Path(sys.argv[2]))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    exchange = tmp_path / "exchange"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "state"), str(exchange)], env=env
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.05)
        submission = Submission("key-1", "fp", "IOC-1", "SUPA", {"devices": []})
        with FileDropGateway(exchange, timeout_s=5, poll_interval_s=POLL) as gw:
            assert gw.submit([submission]) == [Receipt("key-1", "ACCEPTED", 1)]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/requests",
            data=json.dumps({"requests": [req("key-1", fingerprint="fp")]}).encode(),
            method="POST",
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            results = json.loads(response.read())["results"]
        assert results == [{"idempotency_key": "key-1", "status": "DUPLICATE", "attempt": 1}]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
