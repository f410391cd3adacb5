"""FileDropGateway against the simulator's real file exchange, on real folders.

Most tests run the simulator's exchange thread on a tmp folder, with its faults; the ones
about answers the simulator never gives (malformed, slow to appear) run a hand-written DCC
thread instead. Timeouts and poll intervals are short, so the file runs in a few seconds.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from migrate.commit import (
    FileDropGateway,
    GatewayProtocolError,
    GatewayRejected,
    GatewayUnavailable,
    Outcome,
    Receipt,
    Submission,
    retrying,
)
from migrate.commit.file_drop import INBOX, OUTBOX, inventory_data_name, write_atomically
from migrate.errors import ConfigError, TransientError
from migrate.sim.dcc import SimulatorOptions
from migrate.sim.file_exchange import PROCESSING, FileExchange, make_exchange

# Outcome rates off: every attempt MIGRATES unless a test asks otherwise.
CALM = {"no_wan_rate": 0.0, "device_test_rate": 0.0, "master_keys_rate": 0.0, "gt01_rate": 0.0}
POLL = 0.01


def started(directory: Path, **options: Any) -> FileExchange:
    """A running simulator exchange on `directory`, its state beside it; close() it."""
    running = make_exchange(
        directory,
        directory.parent / "state",
        SimulatorOptions(**{**CALM, **options}),
        poll_interval_s=POLL,
    )
    running.start()
    return running


@contextmanager
def simulator(directory: Path, **options: Any) -> Iterator[FileExchange]:
    """A running simulator exchange, closed (its state kept) afterwards."""
    running = started(directory, **options)
    try:
        yield running
    finally:
        running.close()


def gateway(directory: Path, timeout_s: float = 5.0) -> FileDropGateway:
    return FileDropGateway(directory, timeout_s=timeout_s, poll_interval_s=POLL)


def submission(n: int, *, fingerprint: str = "fp-1", supplier: str | None = "SUPA") -> Submission:
    installation = f"IOC-{n:06d}"
    return Submission(
        idempotency_key=f"key-{n}",
        fingerprint=fingerprint,
        installation_id=installation,
        supplier_mpid=supplier,
        payload={
            "cohort": "ioc",
            "installation_id": installation,
            "devices": [
                [f"00-1B-C5-00-00-00-{n:02d}-01", "ESME", "LG", "E470", "1.2.0", "S1", "13123"],
                [f"00-1B-C5-00-00-00-{n:02d}-02", "GSME", "LG", "G470", "2.0.1", "G1", "12345"],
            ],
        },
    )


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    """The exchange folder, with its outbox and inbox, as the DCC would provision it."""
    directory = tmp_path / "exchange"
    (directory / OUTBOX).mkdir(parents=True)
    (directory / INBOX).mkdir()
    return directory


@contextmanager
def hand_written_dcc(directory: Path, respond: Callable[[str], None]) -> Iterator[None]:
    """A DCC thread that takes each request from the outbox and calls `respond(name)`,
    which writes whatever answer a test needs into the inbox."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(POLL):
            for path in (directory / OUTBOX).iterdir():
                if not path.name.startswith("."):
                    path.unlink()
                    respond(path.name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def answering(
    directory: Path, envelope: object, data: bytes | None = None
) -> Callable[[str], None]:
    """A respond() that answers every request with `envelope` (bytes as they are, anything
    else as JSON) and, given `data`, an inventory data file."""

    def respond(name: str) -> None:
        if data is not None:
            write_atomically(directory / INBOX / inventory_data_name(name), [data])
        raw = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        write_atomically(directory / INBOX / name, [raw])

    return respond


def test_submit_gives_accepted_duplicate_and_conflict(exchange_dir: Path) -> None:
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        first = gw.submit([submission(1), submission(2)])
        again = gw.submit([submission(1), submission(2, fingerprint="fp-other")])
    assert first == [Receipt("key-1", "ACCEPTED", 1), Receipt("key-2", "ACCEPTED", 1)]
    assert again == [Receipt("key-1", "DUPLICATE", 1), Receipt("key-2", "CONFLICT")]
    # Every call removed its own files; the simulator kept nothing in hand.
    for folder in (OUTBOX, INBOX, PROCESSING):
        assert files(exchange_dir / folder) == [], folder


def test_empty_chunk_makes_no_call(exchange_dir: Path) -> None:
    with gateway(exchange_dir) as gw:  # no DCC answers here; never asked
        assert gw.submit([]) == []
        assert gw.outcomes([]) == []
    assert files(exchange_dir / OUTBOX) == []


def test_a_folder_that_is_not_an_exchange_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outbox"):
        FileDropGateway(tmp_path)


def test_outcomes_report_each_key_in_order_unknown_included(exchange_dir: Path) -> None:
    with simulator(exchange_dir, no_wan_rate=1.0), gateway(exchange_dir) as gw:
        gw.submit([submission(1)])
        outcomes = gw.outcomes(["key-1", "never-sent"])
    assert outcomes == [
        Outcome("key-1", "FAILED", "NO_WAN_DURING_MIGRATION", True),
        Outcome("never-sent", "UNKNOWN", None, None),
    ]


def test_outcome_is_pending_while_processing(exchange_dir: Path) -> None:
    with simulator(exchange_dir, processing_ms=60_000), gateway(exchange_dir) as gw:
        gw.submit([submission(1)])
        assert gw.outcomes(["key-1"]) == [Outcome("key-1", "PENDING", None, None)]


def test_inventory_is_streamed_from_its_data_file(exchange_dir: Path) -> None:
    with simulator(exchange_dir, gt01_rate=1.0), gateway(exchange_dir) as gw:
        gw.submit([submission(n) for n in range(1, 4)])
        devices = gw.inventory()
        assert files(exchange_dir / OUTBOX) == []  # nothing is asked before the first next()
        first = next(devices)
        # Read a line at a time: the data file is still there, its envelope already gone.
        [data] = files(exchange_dir / INBOX)
        assert data.startswith("inventory-") and data.endswith(".ndjson")
        rest = list(devices)
    assert files(exchange_dir / INBOX) == []  # deleted once read
    inventory = [first, *rest]
    assert [(d["installation_id"], d["device_type"], d["status"]) for d in inventory] == [
        (f"IOC-00000{n}", kind, status)
        for n in range(1, 4)
        for kind, status in (("ESME", "Commissioned"), ("GSME", "InstalledNotCommissioned"))
    ]


def test_an_abandoned_inventory_read_deletes_its_data_file(exchange_dir: Path) -> None:
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        gw.submit([submission(1)])
        devices = gw.inventory()
        next(devices)
        devices.close()
    assert files(exchange_dir / INBOX) == []


def test_inventory_fault_is_transient(exchange_dir: Path) -> None:
    with (
        simulator(exchange_dir, error_rate=1.0),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayUnavailable) as caught,
    ):
        list(gw.inventory())
    assert caught.value.status == 503


def test_429_over_capacity_carries_retry_after(exchange_dir: Path) -> None:
    with simulator(exchange_dir, capacity=1, day_seconds=3600.0), gateway(exchange_dir) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]
        with pytest.raises(GatewayUnavailable) as caught:
            gw.submit([submission(2)])
        assert gw.outcomes(["key-2"]) == [Outcome("key-2", "UNKNOWN", None, None)]
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 1.0 <= caught.value.retry_after <= 3600.0
    assert "over its capacity" in str(caught.value)


def test_503_is_retried_until_it_succeeds(exchange_dir: Path) -> None:
    slept: list[float] = []
    calls: list[int] = []

    def submit() -> list[Receipt]:
        calls.append(1)
        return gw.submit([submission(1)])

    # Seed 6 draws the fault sequence error, error, none for error_rate=0.5.
    with simulator(exchange_dir, error_rate=0.5, seed=6), gateway(exchange_dir) as gw:
        assert retrying(submit, sleep=slept.append) == [Receipt("key-1", "ACCEPTED", 1)]
    assert len(calls) == 3 and len(slept) == 2


def test_503_stores_nothing(exchange_dir: Path) -> None:
    with simulator(exchange_dir, error_rate=1.0), gateway(exchange_dir) as gw:
        with pytest.raises(GatewayUnavailable) as caught:
            gw.submit([submission(1)])
        assert caught.value.status == 503
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]


def test_an_unanswered_request_is_withdrawn(exchange_dir: Path) -> None:
    with gateway(exchange_dir, timeout_s=0.2) as gw:  # no DCC is running
        started_at = time.monotonic()
        with pytest.raises(TransientError) as caught:
            gw.submit([submission(1)])
        assert time.monotonic() - started_at < 1.5
    assert isinstance(caught.value, GatewayUnavailable) and caught.value.status is None
    assert "withdrawn" in str(caught.value)
    assert files(exchange_dir / OUTBOX) == []
    # The DCC that comes up later never sees it.
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        assert gw.outcomes(["key-1"]) == [Outcome("key-1", "UNKNOWN", None, None)]


@pytest.mark.parametrize("fault", ["timeout_rate", "drop_rate"])
def test_a_request_taken_but_never_answered_is_transient(exchange_dir: Path, fault: str) -> None:
    with (
        simulator(exchange_dir, **{fault: 1.0}),
        gateway(exchange_dir, timeout_s=0.3) as gw,
        pytest.raises(GatewayUnavailable) as caught,
    ):
        gw.submit([submission(1)])
    assert caught.value.status is None
    assert "taken by the DCC" in str(caught.value)
    for folder in (OUTBOX, INBOX, PROCESSING):
        assert files(exchange_dir / folder) == [], folder
    with simulator(exchange_dir), gateway(exchange_dir) as gw:  # nothing was stored
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]


def test_lost_response_then_resend_is_duplicate(exchange_dir: Path) -> None:
    """The case idempotency exists for: committed, the answer lost, the resend harmless."""
    with (
        simulator(exchange_dir, lost_response_rate=1.0),
        gateway(exchange_dir, timeout_s=0.3) as gw,
        pytest.raises(GatewayUnavailable),
    ):
        gw.submit([submission(1)])
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "DUPLICATE", 1)]
        assert gw.outcomes(["key-1"]) == [Outcome("key-1", "MIGRATED", None, None)]


def test_retrying_a_lost_response_comes_back_duplicate(exchange_dir: Path) -> None:
    # Seed 0 draws the fault sequence lost response, none for lost_response_rate=0.5.
    with (
        simulator(exchange_dir, lost_response_rate=0.5, seed=0),
        gateway(exchange_dir, timeout_s=0.3) as gw,
    ):
        receipts = retrying(lambda: gw.submit([submission(1)]), sleep=lambda _: None)
    assert receipts == [Receipt("key-1", "DUPLICATE", 1)]


def test_400_is_terminal_and_names_the_field(exchange_dir: Path) -> None:
    with (
        simulator(exchange_dir),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayRejected) as caught,
    ):
        gw.submit([submission(1, fingerprint="")])
    assert caught.value.status == 400
    assert "requests[0].fingerprint: must be a non-empty string" in caught.value.message


def test_413_chunk_larger_than_a_day_is_terminal(exchange_dir: Path) -> None:
    with (
        simulator(exchange_dir, capacity=1),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayRejected) as caught,
    ):
        gw.submit([submission(1), submission(2)])
    assert caught.value.status == 413


def test_a_restart_mid_request_loses_nothing(exchange_dir: Path) -> None:
    """The simulator stops after taking the request; the next one answers the same call."""
    first = started(exchange_dir, latency_ms=10_000)
    restarted: list[FileExchange] = []

    def restart() -> None:
        while not files(exchange_dir / PROCESSING):
            time.sleep(POLL)
        first.close()  # the request stays claimed in processing/
        restarted.append(started(exchange_dir))

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        with gateway(exchange_dir) as gw:
            assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]
            thread.join()
            assert gw.submit([submission(1)]) == [Receipt("key-1", "DUPLICATE", 1)]
            assert gw.outcomes(["key-1"]) == [Outcome("key-1", "MIGRATED", None, None)]
    finally:
        thread.join()
        for running in restarted:
            running.close()


def test_a_restart_keeps_every_acknowledged_request(exchange_dir: Path) -> None:
    chunk = [submission(n) for n in range(1, 6)]
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        assert {r.status for r in gw.submit(chunk)} == {"ACCEPTED"}
    with simulator(exchange_dir), gateway(exchange_dir) as gw:
        assert {r.status for r in gw.submit(chunk)} == {"DUPLICATE"}
        assert {o.state for o in gw.outcomes([s.idempotency_key for s in chunk])} == {"MIGRATED"}


def test_a_half_written_answer_is_never_read(exchange_dir: Path) -> None:
    """The answer is complete only when renamed to its name; its dot-name is ignored."""
    full = json.dumps(
        {"status": 200, "body": {"results": [{"idempotency_key": "key-1", "status": "ACCEPTED"}]}}
    ).encode()
    writing = threading.Event()

    def slowly(name: str) -> None:
        partial = exchange_dir / INBOX / f".{name}.partial"
        partial.write_bytes(full[:20])
        writing.set()
        time.sleep(0.3)
        partial.write_bytes(full)
        os.replace(partial, exchange_dir / INBOX / name)

    with hand_written_dcc(exchange_dir, slowly), gateway(exchange_dir) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED")]
    assert writing.is_set()
    assert files(exchange_dir / INBOX) == []


@pytest.mark.parametrize(
    ("envelope", "names"),
    [
        (b"{not json", "not JSON"),
        ([], "envelope"),
        ({"status": 200}, "envelope"),
        ({"status": "200", "body": {}}, "status"),
        ({"status": True, "body": {}}, "status"),
        ({"status": 700, "body": {}}, "status"),
        ({"status": 429, "body": {}, "retry_after": "soon"}, "retry_after"),
        ({"status": 429, "body": {}, "retry_after": -1}, "retry_after"),
        ({"status": 200, "body": {"results": []}}, "expected 1 results, got 0"),
        ({"status": 200, "body": []}, "expected 1 results, got NoneType"),
        (
            {"status": 200, "body": {"results": [{"idempotency_key": "x", "status": "ACCEPTED"}]}},
            "unexpected result for 'key-1'",
        ),
        (
            {"status": 200, "body": {"results": [{"idempotency_key": "key-1", "status": "OK"}]}},
            "unexpected result for 'key-1'",
        ),
        *(
            (
                {
                    "status": 200,
                    "body": {
                        "results": [
                            {"idempotency_key": "key-1", "status": "ACCEPTED", "attempt": attempt}
                        ]
                    },
                },
                "unexpected result for 'key-1'",
            )
            for attempt in (0, -1, "2", 1.0, True)
        ),
    ],
)
def test_a_malformed_answer_is_a_protocol_error(
    exchange_dir: Path, envelope: object, names: str
) -> None:
    with (
        hand_written_dcc(exchange_dir, answering(exchange_dir, envelope)),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayProtocolError, match=names) as caught,
    ):
        gw.submit([submission(1)])
    assert "inbox/requests-" in str(caught.value)  # names the answer file
    assert files(exchange_dir / INBOX) == []


def test_a_malformed_outcomes_answer_is_a_protocol_error(exchange_dir: Path) -> None:
    envelope = {"status": 200, "body": {"outcomes": [{"idempotency_key": "key-1"}]}}
    with (
        hand_written_dcc(exchange_dir, answering(exchange_dir, envelope)),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayProtocolError, match="unexpected outcome for 'key-1'"),
    ):
        gw.outcomes(["key-1"])


def test_retry_after_from_the_envelope_is_kept(exchange_dir: Path) -> None:
    envelope = {"status": 429, "body": {"error": "over"}, "retry_after": 12}
    with (
        hand_written_dcc(exchange_dir, answering(exchange_dir, envelope)),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayUnavailable) as caught,
    ):
        gw.submit([submission(1)])
    assert (caught.value.status, caught.value.retry_after) == (429, 12.0)
    assert "over" in str(caught.value)


DEVICE = b'{"device_id":"d1","device_type":"ESME"}\n'


@pytest.mark.parametrize(
    ("envelope", "data", "names"),
    [
        ({"status": 200, "body": {}}, DEVICE, "number of devices"),
        ({"status": 200, "body": {"devices": -1}}, DEVICE, "number of devices"),
        ({"status": 200, "body": {"devices": 1}}, None, "missing"),
        ({"status": 200, "body": {"devices": 2}}, DEVICE, "1 devices, .* announced 2"),
        ({"status": 200, "body": {"devices": 2}}, DEVICE + b"{oops\n", "line 2 is not JSON"),
        ({"status": 200, "body": {"devices": 1}}, b"[1]\n", "line 1 is not an object"),
    ],
)
def test_a_malformed_inventory_is_a_protocol_error(
    exchange_dir: Path, envelope: object, data: bytes | None, names: str
) -> None:
    with (
        hand_written_dcc(exchange_dir, answering(exchange_dir, envelope, data)),
        gateway(exchange_dir) as gw,
        pytest.raises(GatewayProtocolError, match=names),
    ):
        list(gw.inventory())
    assert files(exchange_dir / INBOX) == []
