"""HttpGateway and the retry policy against the real DCC simulator over loopback.

Each test runs its own simulator in a thread on 127.0.0.1 (port 0) and shuts it down after;
faults are injected by the simulator itself, so these are the failures a real socket shows.
Waits go through the `sleep` hook, so the file runs in a few seconds.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from processes import simulator_thread

from migrate.commit import (
    GatewayRejected,
    GatewayUnavailable,
    HttpGateway,
    Outcome,
    Receipt,
    Submission,
    retrying,
)
from migrate.commit.gateway import _check_status as check_status
from migrate.errors import TerminalError, TransientError

T = TypeVar("T")

# The real simulator in a thread: every attempt MIGRATES unless a test asks otherwise.
simulator = simulator_thread


@contextmanager
def gateway(base_url: str, **timeouts: float) -> Iterator[HttpGateway]:
    options = {"connect_timeout": 2.0, "read_timeout": 5.0, "write_timeout": 2.0, **timeouts}
    gw = HttpGateway(base_url, **options)
    try:
        yield gw
    finally:
        gw.close()


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
                ["00-1B-C5-00-00-00-00-01", "ESME", "LG", "E470", "1.2.0", "S1", "1312345678907"],
                {
                    "device_id": "00-1B-C5-00-00-00-00-02",
                    "device_type": "GSME",
                    "manufacturer": "LG",
                    "model": "G470",
                    "firmware_version": "2.0.1",
                    "msn": "G1",
                    "mpxn": "1234567",
                },
            ],
        },
    )


class Counted:
    """Wraps a call to count attempts and keep the errors each raised."""

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.calls = 0
        self.errors: list[BaseException] = []

    def __call__(self) -> Any:
        self.calls += 1
        try:
            return self.call()
        except BaseException as exc:
            self.errors.append(exc)
            raise


def test_submit_gives_accepted_duplicate_and_conflict(tmp_path: Path) -> None:
    with simulator(tmp_path) as url, gateway(url) as gw:
        first = gw.submit([submission(1), submission(2)])
        again = gw.submit([submission(1), submission(2, fingerprint="fp-other")])
    assert first == [Receipt("key-1", "ACCEPTED", 1), Receipt("key-2", "ACCEPTED", 1)]
    assert again == [Receipt("key-1", "DUPLICATE", 1), Receipt("key-2", "CONFLICT")]


def test_empty_chunk_makes_no_call() -> None:
    gw = HttpGateway("http://127.0.0.1:9")  # nothing listens there; never contacted
    try:
        assert gw.submit([]) == []
        assert gw.outcomes([]) == []
    finally:
        gw.close()


def test_outcomes_report_each_key_in_order(tmp_path: Path) -> None:
    with simulator(tmp_path, no_wan_rate=1.0) as url, gateway(url) as gw:
        gw.submit([submission(1)])
        outcomes = gw.outcomes(["key-1", "never-sent"])
    assert outcomes == [
        Outcome("key-1", "FAILED", "NO_WAN_DURING_MIGRATION", True),
        Outcome("never-sent", "UNKNOWN", None, None),
    ]


def test_outcome_is_pending_while_processing(tmp_path: Path) -> None:
    with simulator(tmp_path, processing_ms=60_000) as url, gateway(url) as gw:
        gw.submit([submission(1)])
        assert gw.outcomes(["key-1"]) == [Outcome("key-1", "PENDING", None, None)]


def test_inventory_streams_migrated_devices(tmp_path: Path) -> None:
    with simulator(tmp_path, gt01_rate=1.0) as url, gateway(url) as gw:
        gw.submit([submission(1)])
        devices = list(gw.inventory())
    assert [(d["device_id"], d["device_type"], d["status"]) for d in devices] == [
        ("00-1B-C5-00-00-00-00-01", "ESME", "Commissioned"),
        ("00-1B-C5-00-00-00-00-02", "GSME", "InstalledNotCommissioned"),
    ]
    assert all(d["installation_id"] == "IOC-000001" for d in devices)


def test_inventory_fault_is_transient(tmp_path: Path) -> None:
    with (
        simulator(tmp_path, error_rate=1.0) as url,
        gateway(url) as gw,
        pytest.raises(TransientError) as caught,
    ):
        list(gw.inventory())
    assert caught.value.status == 503


def test_429_carries_retry_after_and_retrying_succeeds_next_day(tmp_path: Path) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)  # really wait: the simulated day must turn

    with simulator(tmp_path, capacity=1, day_seconds=1) as url, gateway(url) as gw:
        time.sleep(1.02 - time.time() % 1)  # start just after a day turns: no boundary below
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]
        with pytest.raises(TransientError) as caught:
            gw.submit([submission(2)])
        assert isinstance(caught.value, GatewayUnavailable)
        assert caught.value.status == 429
        assert caught.value.retry_after == 1.0
        assert "over its capacity" in str(caught.value)
        receipts = retrying(lambda: gw.submit([submission(2)]), sleep=sleep)
    assert receipts == [Receipt("key-2", "ACCEPTED", 1)]
    assert all(seconds >= 1.0 for seconds in slept)  # Retry-After honoured, never less


def test_retry_after_is_a_floor_for_the_wait() -> None:
    slept: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise GatewayUnavailable("429", status=429, retry_after=7.0)
        return "ok"

    assert retrying(flaky, sleep=slept.append) == "ok"
    assert slept == [7.0]


def test_503_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    slept: list[float] = []
    # Seed 6 draws the fault sequence error, error, none for error_rate=0.5.
    with simulator(tmp_path, error_rate=0.5, seed=6) as url, gateway(url) as gw:
        call = Counted(lambda: gw.submit([submission(1)]))
        receipts = retrying(call, sleep=slept.append)
    assert receipts == [Receipt("key-1", "ACCEPTED", 1)]
    assert call.calls == 3
    assert [getattr(e, "status", None) for e in call.errors] == [503, 503]
    assert len(slept) == 2 and all(0 < s <= 10 for s in slept)


def test_503_stores_nothing_so_a_later_send_is_accepted(tmp_path: Path) -> None:
    with simulator(tmp_path, error_rate=1.0) as url, gateway(url) as gw:
        with pytest.raises(TransientError) as caught:
            gw.submit([submission(1)])
        assert caught.value.status == 503
    with simulator(tmp_path) as url, gateway(url) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "ACCEPTED", 1)]


def test_read_timeout_is_transient(tmp_path: Path) -> None:
    with (
        simulator(tmp_path, timeout_rate=1.0, timeout_sleep_s=2.0) as url,
        gateway(url, read_timeout=0.2) as gw,
    ):
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            gw.submit([submission(1)])
        assert time.monotonic() - started < 1.5
    assert caught.value.status is None
    assert "timed out" in str(caught.value)


def test_504_after_a_slow_reply_is_transient(tmp_path: Path) -> None:
    with (
        simulator(tmp_path, timeout_rate=1.0, timeout_sleep_s=0.05) as url,
        gateway(url) as gw,
        pytest.raises(TransientError) as caught,
    ):
        gw.outcomes(["key-1"])
    assert caught.value.status == 504


def test_dropped_connection_is_transient(tmp_path: Path) -> None:
    with (
        simulator(tmp_path, drop_rate=1.0) as url,
        gateway(url) as gw,
        pytest.raises(TransientError) as caught,
    ):
        gw.submit([submission(1)])
    assert caught.value.status is None


def test_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with gateway(f"http://127.0.0.1:{port}") as gw, pytest.raises(TransientError):
        gw.outcomes(["key-1"])


def test_lost_response_then_resend_is_duplicate(tmp_path: Path) -> None:
    """The case idempotency exists for: committed, the reply lost, the resend harmless."""
    with (
        simulator(tmp_path, lost_response_rate=1.0) as url,
        gateway(url) as gw,
        pytest.raises(TransientError),
    ):
        gw.submit([submission(1)])
    with simulator(tmp_path) as url, gateway(url) as gw:
        assert gw.submit([submission(1)]) == [Receipt("key-1", "DUPLICATE", 1)]
        assert gw.outcomes(["key-1"]) == [Outcome("key-1", "MIGRATED", None, None)]


def test_retrying_a_lost_response_comes_back_duplicate(tmp_path: Path) -> None:
    slept: list[float] = []
    # Seed 0 draws the fault sequence lost response, none for lost_response_rate=0.5.
    with simulator(tmp_path, lost_response_rate=0.5, seed=0) as url, gateway(url) as gw:
        call = Counted(lambda: gw.submit([submission(1)]))
        receipts = retrying(call, sleep=slept.append)
    assert call.calls == 2
    assert receipts == [Receipt("key-1", "DUPLICATE", 1)]


def test_400_is_terminal_and_not_retried(tmp_path: Path) -> None:
    slept: list[float] = []
    with simulator(tmp_path) as url, gateway(url) as gw:
        call = Counted(lambda: gw.submit([submission(1, fingerprint="")]))
        with pytest.raises(TerminalError) as caught:
            retrying(call, sleep=slept.append)
    assert call.calls == 1 and slept == []
    assert isinstance(caught.value, GatewayRejected)
    assert caught.value.status == 400
    assert "requests[0].fingerprint: must be a non-empty string" in str(caught.value)


def test_missing_supplier_is_rejected_by_the_simulator(tmp_path: Path) -> None:
    """Submission allows supplier_mpid None, but the simulator requires one: a 400."""
    with (
        simulator(tmp_path) as url,
        gateway(url) as gw,
        pytest.raises(GatewayRejected) as caught,
    ):
        gw.submit([submission(1, supplier=None)])
    assert caught.value.status == 400
    assert "supplier_mpid: missing" in caught.value.message


def test_413_chunk_larger_than_a_day_is_terminal(tmp_path: Path) -> None:
    with (
        simulator(tmp_path, capacity=1) as url,
        gateway(url) as gw,
        pytest.raises(GatewayRejected) as caught,
    ):
        gw.submit([submission(1), submission(2)])
    assert caught.value.status == 413


def test_retrying_stops_after_the_attempts_and_reraises(tmp_path: Path) -> None:
    slept: list[float] = []
    with simulator(tmp_path, error_rate=1.0) as url, gateway(url) as gw:
        call = Counted(lambda: gw.submit([submission(1)]))
        with pytest.raises(TransientError) as caught:
            retrying(call, attempts=3, sleep=slept.append)
    assert call.calls == 3 and len(slept) == 2
    assert caught.value is call.errors[-1]
    assert caught.value.status == 503


def test_retrying_stops_rather_than_wait_past_its_delay_budget() -> None:
    slept: list[float] = []
    calls = []

    def over_capacity() -> None:
        calls.append(1)
        raise GatewayUnavailable("429", status=429, retry_after=3127.0)

    with pytest.raises(GatewayUnavailable) as caught:
        retrying(over_capacity, max_delay_s=60.0, sleep=slept.append)
    assert len(calls) == 1 and slept == []
    assert caught.value.retry_after == 3127.0


def test_a_payload_given_as_text_is_sent_byte_for_byte() -> None:
    from migrate.commit.gateway import requests_body

    text = '{"cohort":"ioc","devices":[],"note":"caf\\u00e9 \\"quoted\\""}'
    as_text = Submission("k1", "f1", "I-1", None, text)
    as_dict = Submission("k1", "f1", "I-1", None, json.loads(text))
    body = requests_body([as_text])
    assert text.encode() in body
    assert json.loads(body) == json.loads(requests_body([as_dict]))
    assert json.loads(body)["requests"][0]["supplier_mpid"] is None


@pytest.mark.parametrize(
    ("response", "shown", "kept_out"),
    [
        (
            httpx.Response(503, json={"error": "the DCC is down for maintenance"}),
            "the DCC is down for maintenance",
            None,
        ),
        (
            httpx.Response(400, json={"request": {"mpan_core": "1312345678907"}, "code": 7}),
            "a reply without an error message (keys: code, request)",
            "1312345678907",
        ),
        (
            httpx.Response(502, json=[{"mpan_core": "1312345678907"}]),
            "a reply without an error message (a JSON list)",
            "1312345678907",
        ),
        (
            httpx.Response(
                502,
                content=b"<html>bad gateway for 1312345678907</html>",
                headers={"content-type": "text/html; charset=utf-8"},
            ),
            "Bad Gateway (text/html, 42 bytes)",
            "1312345678907",
        ),
        (httpx.Response(500, json={"error": "x" * 5000}), "x" * 200, "x" * 201),
    ],
)
def test_an_error_reply_shows_its_message_never_an_echo_of_the_request(
    response: httpx.Response, shown: str, kept_out: str | None
) -> None:
    """What the DCC replies goes into the retry log, the command's last line and the audit
    log: its own error message, bounded, or the reply's shape; never a body that may echo a
    request's MPANs."""
    with pytest.raises((GatewayUnavailable, GatewayRejected)) as caught:
        check_status(response, "submit")
    assert shown in str(caught.value)
    if kept_out is not None:
        assert kept_out not in str(caught.value)
