"""A DCC test service on localhost: the gateway protocol, served over real HTTP and, with
`serve(exchange=...)`, as a file-drop exchange too (file_exchange.py).

The DCC's interfaces are not public, so the commit stage and reconciliation are exercised
against this simulator. It behaves as the test service would where it matters to a client:
requests are deduplicated by idempotency key and committed to SQLite before they are
acknowledged (a restart loses nothing acknowledged), capacity is rationed per supplier per
simulated day (429 with Retry-After), outcomes arrive asynchronously and are decided
deterministically from a seed and the installation, and faults (latency, 503, timeouts,
dropped connections, a response lost after the commit) are injected on request, all
deterministic for a seed. Both transports call one `Service`, so they store, answer and fault
alike. See DCC_API.md for the wire formats.

Payloads hold personal data (MPxNs, serials): they are stored, never logged; logs carry counts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from migrate.errors import ConfigError
from migrate.logs import get_logger

# A payload may name another order for its device arrays in its own "device_fields".
from migrate.model import PAYLOAD_DEVICE_FIELDS as DEVICE_FIELDS

__all__ = [
    "DEVICE_FIELDS",
    "GAS_SIDE_TYPES",
    "UNAVAILABLE",
    "Outcome",
    "Reply",
    "Service",
    "SimulatorOptions",
    "decide_outcome",
    "make_server",
    "ndjson_lines",
    "open_service",
    "serve",
]

log = get_logger(__name__)

# Devices left uncommissioned when the gas HAN fails (GT01): the gas meter.
GAS_SIDE_TYPES = frozenset({"GSME"})
STATE_FILE = "dcc-simulator.sqlite3"
MAX_BODY = 64 * 1024 * 1024
# Keys looked up per query (SQLite allows 32,766 bound values; smaller is as fast).
LOOKUP = 500
REQUEST_FIELDS = ("idempotency_key", "fingerprint", "installation_id", "supplier_mpid")

# What an endpoint answers, whatever the transport: status, JSON body (for a 200 from the
# inventory, the list of devices, sent as JSON lines) and headers.
Reply = tuple[int, Any, dict[str, str]]
# The answer to an injected "error" fault.
UNAVAILABLE: Reply = (503, {"error": "injected fault: service unavailable"}, {})


REAL_DAY = 86400.0
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class SimulatorOptions:
    """How the simulated service behaves; every random choice is drawn from `seed`."""

    seed: int = 0
    capacity: int = 100  # new requests per supplier per simulated day (MSM DMIN = 100)
    day_seconds: float = REAL_DAY
    processing_ms: int = 0  # how long an accepted request stays PENDING
    latency_ms: int = 0
    error_rate: float = 0.0  # 503, nothing stored
    timeout_rate: float = 0.0  # reply only after timeout_sleep_s, nothing stored
    timeout_sleep_s: float = 30.0
    drop_rate: float = 0.0  # connection closed without a response, nothing stored
    lost_response_rate: float = 0.0  # stored and committed, then the connection is closed
    no_wan_rate: float = 0.04  # FAILED NO_WAN_DURING_MIGRATION, retryable
    device_test_rate: float = 0.02  # FAILED DEVICE_TEST_FAILED, retryable
    master_keys_rate: float = 0.02  # FAILED MISSING_MASTER_KEYS, permanent
    gt01_rate: float = 0.02  # MIGRATED, gas side not (GAS_HAN_ERROR_GT01): with a gas meter only
    max_attempts: int = 5  # the attempt that fails this many times is no longer retryable

    def __post_init__(self) -> None:
        """Refuse options that would make the service meaningless, at start, not mid-run."""
        rates = [f.name for f in fields(self) if f.name.endswith("_rate")]
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.error_rate + self.timeout_rate + self.drop_rate + self.lost_response_rate > 1:
            raise ValueError("the fault rates add up to more than 1")
        if self.no_wan_rate + self.device_test_rate + self.master_keys_rate + self.gt01_rate > 1:
            raise ValueError("the outcome rates add up to more than 1")
        if self.capacity < 1 or self.day_seconds <= 0 or self.max_attempts < 1:
            raise ValueError("capacity, day_seconds and max_attempts must be positive")
        if min(self.processing_ms, self.latency_ms) < 0 or self.timeout_sleep_s < 0:
            raise ValueError("processing_ms, latency_ms and timeout_sleep_s cannot be negative")


@dataclass(frozen=True)
class Outcome:
    """The decided result of one attempt."""

    state: str  # MIGRATED or FAILED
    reason: str | None
    retryable: bool | None


def _uniform(*parts: object) -> float:
    """A number in [0, 1) fixed by its parts: the same seed gives the same service."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide_outcome(
    options: SimulatorOptions, installation_id: str, attempt: int, *, gas_meter: bool
) -> Outcome:
    """The outcome of an installation's n-th attempt.

    Missing master keys belong to the installation, so they are drawn once per installation
    and no attempt ever succeeds; the other outcomes are drawn per attempt, so a later attempt
    after a retryable failure may succeed. The gas HAN error (GT01) needs a gas meter: without
    one, its share of the draws migrates cleanly, and every other draw is as with one.
    """
    seed = options.seed
    if _uniform(seed, installation_id, "keys") < options.master_keys_rate:
        return Outcome("FAILED", "MISSING_MASTER_KEYS", False)
    # Scaled so that the overall rates on a first attempt are those configured.
    rest = 1.0 - options.master_keys_rate
    draw = _uniform(seed, installation_id, attempt) * rest
    retryable = attempt < options.max_attempts
    if draw < options.no_wan_rate:
        return Outcome("FAILED", "NO_WAN_DURING_MIGRATION", retryable)
    draw -= options.no_wan_rate
    if draw < options.device_test_rate:
        return Outcome("FAILED", "DEVICE_TEST_FAILED", retryable)
    draw -= options.device_test_rate
    if draw < options.gt01_rate and gas_meter:
        return Outcome("MIGRATED", "GAS_HAN_ERROR_GT01", None)
    return Outcome("MIGRATED", None, None)


def _devices(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A payload's devices as objects, whether it lists them as arrays (in its own
    "device_fields" order, or the default) or as objects."""
    order = payload.get("device_fields", list(DEVICE_FIELDS))
    for device in payload.get("devices", []):
        yield dict(zip(order, device, strict=True)) if isinstance(device, list) else device


def _has_gas_meter(devices: Iterable[dict[str, Any]]) -> bool:
    """Whether an installation has a device that a gas HAN error (GT01) would leave
    uncommissioned: only then can the DCC report one."""
    return any(device["device_type"] in GAS_SIDE_TYPES for device in devices)


class BadRequest(Exception):
    """Input the client must fix; the message names the field."""


def _text_field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if value is None:
        raise BadRequest(f"{where}.{name}: missing")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}.{name}: must be a non-empty string")
    return value


def _check_devices(payload: dict[str, Any], where: str) -> None:
    """Devices are checked on arrival, so the inventory never meets one it cannot read."""
    order = payload.get("device_fields", list(DEVICE_FIELDS))
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        raise BadRequest(f"{where}.device_fields: must be a list of field names")
    if "devices" not in payload:
        return
    devices = payload["devices"]
    if not isinstance(devices, list):
        raise BadRequest(f"{where}.devices: must be a list")
    for index, device in enumerate(devices):
        at = f"{where}.devices[{index}]"
        if isinstance(device, list):
            if len(device) != len(order):
                raise BadRequest(f"{at}: must have {len(order)} values ({', '.join(order)})")
            device = dict(zip(order, device, strict=True))
        elif not isinstance(device, dict):
            raise BadRequest(f"{at}: must be an array or an object")
        for name in ("device_id", "device_type"):
            if not isinstance(device.get(name), str) or not device[name]:
                raise BadRequest(f"{at}.{name}: must be a non-empty string")


def _parse_requests(body: object) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    items = body.get("requests")
    if items is None:
        raise BadRequest("requests: missing")
    if not isinstance(items, list):
        raise BadRequest("requests: must be a list")
    parsed = []
    for index, item in enumerate(items):
        where = f"requests[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where}: must be an object")
        values: dict[str, Any] = {name: _text_field(item, name, where) for name in REQUEST_FIELDS}
        payload = item.get("payload")
        if payload is None:
            raise BadRequest(f"{where}.payload: missing")
        if not isinstance(payload, dict):
            raise BadRequest(f"{where}.payload: must be an object")
        _check_devices(payload, f"{where}.payload")
        values["payload"] = payload
        parsed.append(values)
    return parsed


def _parse_keys(body: object) -> list[str]:
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    keys = body.get("keys")
    if keys is None:
        raise BadRequest("keys: missing")
    if not isinstance(keys, list):
        raise BadRequest("keys: must be a list")
    for index, key in enumerate(keys):
        if not isinstance(key, str) or not key:
            raise BadRequest(f"keys[{index}]: must be a non-empty string")
    return keys


def parse_body(raw: bytes) -> object:
    """The request body as JSON, or a BadRequest naming the problem."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body: not valid JSON ({exc.__class__.__name__})") from None


def ndjson_lines(devices: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """The inventory as JSON lines, one device each, as both transports send it."""
    for device in devices:
        yield json.dumps(device, separators=(",", ":")).encode() + b"\n"


class OverCapacity(Exception):
    """A chunk that would take a supplier over its day's capacity."""

    def __init__(self, retry_after: int, supplier: str) -> None:
        super().__init__(supplier)
        self.retry_after = retry_after
        self.supplier = supplier


class ChunkTooLarge(Exception):
    """More new requests for one supplier than a whole day holds: waiting never helps."""


def _answer(key: str, state: str, reason: str | None, retryable: bool | None) -> dict[str, Any]:
    return {"idempotency_key": key, "state": state, "reason": reason, "retryable": retryable}


class _Store:
    """The service's state in one SQLite file; one lock, since each call is one transaction."""

    def __init__(self, path: Path, options: SimulatorOptions) -> None:
        self.options = options
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            """CREATE TABLE IF NOT EXISTS requests (
                idempotency_key TEXT PRIMARY KEY,
                fingerprint TEXT NOT NULL,
                installation_id TEXT NOT NULL,
                supplier_mpid TEXT NOT NULL,
                payload TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                accepted_at REAL NOT NULL,
                day INTEGER NOT NULL,
                state TEXT,
                reason TEXT,
                retryable INTEGER
            )"""
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS requests_day ON requests (supplier_mpid, day)")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _day(self, now: float) -> int:
        return math.floor((now + self._uk_offset(now)) / self.options.day_seconds)

    def _uk_offset(self, now: float) -> float:
        """Seconds the UK is ahead of UTC, when days are real days: the DCC's day is the
        UK's (it turns at 23:00 UTC in summer). Shortened rehearsal days are just counted."""
        if self.options.day_seconds != REAL_DAY:
            return 0.0
        offset = dt.datetime.fromtimestamp(now, UK).utcoffset()
        return 0.0 if offset is None else offset.total_seconds()

    def _rows(self, columns: str, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """The stored columns of these keys, looked up a few hundred at a time."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(unique), LOOKUP):
            part = unique[start : start + LOOKUP]
            marks = ",".join("?" * len(part))
            query = (
                f"SELECT idempotency_key, {columns} FROM requests"
                f" WHERE idempotency_key IN ({marks})"
            )
            found.update({row[0]: row[1:] for row in self.db.execute(query, part)})
        return found

    def submit(self, items: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Store a chunk whole or not at all; committed before the caller replies. A key
        repeated within the chunk is judged against its first occurrence."""
        now = time.time()
        today = self._day(now)
        results: list[dict[str, Any]] = []
        new_by_supplier: Counter[str] = Counter()
        inserts: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                known = self._rows(
                    "fingerprint, state, retryable, attempt", (i["idempotency_key"] for i in items)
                )
                for item in items:
                    key, fingerprint = item["idempotency_key"], item["fingerprint"]
                    row = known.get(key)
                    attempt = None
                    if row is None:
                        inserts.append(
                            (key, fingerprint, item["installation_id"], item["supplier_mpid"],
                             json.dumps(item["payload"], separators=(",", ":")), now, today)
                        )  # fmt: skip
                        status, attempt = "ACCEPTED", 1
                    elif row[0] != fingerprint:
                        status = "CONFLICT"
                    elif row[1] == "FAILED" and row[2]:
                        # A reported retryable failure: the resubmission is the next attempt.
                        attempts.append((now, today, key))
                        status, attempt = "ACCEPTED", row[3] + 1
                    else:
                        status, attempt = "DUPLICATE", row[3]
                    if status == "ACCEPTED":
                        known[key] = (fingerprint, None, None, attempt)
                        new_by_supplier[item["supplier_mpid"]] += 1
                    result: dict[str, Any] = {"idempotency_key": key, "status": status}
                    if attempt is not None:
                        result["attempt"] = attempt
                    results.append(result)
                self.db.executemany(
                    "INSERT INTO requests (idempotency_key, fingerprint, installation_id,"
                    " supplier_mpid, payload, attempt, accepted_at, day)"
                    " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                    inserts,
                )
                self.db.executemany(
                    "UPDATE requests SET attempt = attempt + 1, accepted_at = ?, day = ?,"
                    " state = NULL, reason = NULL, retryable = NULL WHERE idempotency_key = ?",
                    attempts,
                )
                for supplier, new in sorted(new_by_supplier.items()):
                    if new > self.options.capacity:
                        raise ChunkTooLarge(
                            f"{new} new requests for supplier {supplier} in one chunk; "
                            f"a day holds {self.options.capacity}"
                        )
                    used = self.db.execute(
                        "SELECT count(*) FROM requests WHERE supplier_mpid = ? AND day = ?",
                        (supplier, today),
                    ).fetchone()[0]
                    if used > self.options.capacity:
                        next_day = (today + 1) * self.options.day_seconds
                        wait = next_day - (now + self._uk_offset(now))
                        raise OverCapacity(max(1, math.ceil(wait)), supplier)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return results

    def _due(self, accepted_at: float, now: float) -> bool:
        """Whether an attempt has been processed, so that its outcome is decided."""
        return now >= accepted_at + self.options.processing_ms / 1000

    def outcomes(self, keys: list[str]) -> list[dict[str, Any]]:
        """Each key's outcome; a newly decided one is stored, so it is reported only once
        decided and a resubmission after a reported retryable failure is a new attempt."""
        now = time.time()
        answers = []
        decided: list[tuple[Any, ...]] = []
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._rows(
                    "installation_id, attempt, accepted_at, state, reason, retryable", keys
                )
                # Payloads only of the outcomes decided now: once an attempt, not every poll.
                due = [k for k, row in rows.items() if row[3] is None and self._due(row[2], now)]
                gas_meter = {
                    key: _has_gas_meter(_devices(json.loads(payload)))
                    for key, (payload,) in self._rows("payload", due).items()
                }
                for key in keys:
                    row = rows.get(key)
                    if row is None:
                        answers.append(_answer(key, "UNKNOWN", None, None))
                        continue
                    installation_id, attempt, accepted_at, state, reason, retryable = row
                    if state is None:
                        if not self._due(accepted_at, now):
                            answers.append(_answer(key, "PENDING", None, None))
                            continue
                        outcome = decide_outcome(
                            self.options, installation_id, attempt, gas_meter=gas_meter[key]
                        )
                        state, reason = outcome.state, outcome.reason
                        retryable = None if outcome.retryable is None else int(outcome.retryable)
                        decided.append((state, reason, retryable, key))
                        rows[key] = (*row[:3], state, reason, retryable)
                    answers.append(
                        _answer(key, state, reason, None if retryable is None else bool(retryable))
                    )
                self.db.executemany(
                    "UPDATE requests SET state = ?, reason = ?, retryable = ?"
                    " WHERE idempotency_key = ?",
                    decided,
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return answers

    def inventory(self) -> list[dict[str, Any]]:
        """Devices of migrated installations, as the SMI would list them after migration."""
        now = time.time()
        with self.lock:
            rows = self.db.execute(
                "SELECT installation_id, payload, attempt, accepted_at, state, reason"
                " FROM requests ORDER BY installation_id, idempotency_key"
            ).fetchall()
        devices = []
        for installation_id, payload_text, attempt, accepted_at, state, reason in rows:
            if state not in (None, "MIGRATED"):
                continue
            if state is None and not self._due(accepted_at, now):
                continue  # still being processed
            listed = list(_devices(json.loads(payload_text)))
            if state is None:
                decided = decide_outcome(
                    self.options, installation_id, attempt, gas_meter=_has_gas_meter(listed)
                )
                state, reason = decided.state, decided.reason
            if state != "MIGRATED":
                continue
            for values in listed:
                gas_failed = (
                    reason == "GAS_HAN_ERROR_GT01" and values["device_type"] in GAS_SIDE_TYPES
                )
                devices.append(
                    {
                        "device_id": values["device_id"],
                        "device_type": values["device_type"],
                        "manufacturer": values.get("manufacturer"),
                        "model": values.get("model"),
                        "firmware_version": values.get("firmware_version"),
                        "installation_id": installation_id,
                        "status": "InstalledNotCommissioned" if gas_failed else "Commissioned",
                    }
                )
        return devices


class Service:
    """The simulated DCC behind every transport: its store, its options, the seeded fault
    sequence and one function per endpoint, so HTTP and the file exchange behave alike."""

    def __init__(self, store: _Store, options: SimulatorOptions) -> None:
        self.store = store
        self.options = options
        self._faults = 0
        self._fault_lock = threading.Lock()

    def close(self) -> None:
        """Close the store; every transport using this service must have stopped."""
        self.store.close()

    def next_fault(self) -> str | None:
        """The fault for the next request, drawn in arrival order from the seed."""
        with self._fault_lock:
            n = self._faults
            self._faults += 1
        draw = _uniform(self.options.seed, "fault", n)
        o = self.options
        for name, rate in (
            ("error", o.error_rate),
            ("timeout", o.timeout_rate),
            ("drop", o.drop_rate),
            ("lost_response", o.lost_response_rate),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None

    def call(self, endpoint: str, raw: bytes) -> Reply:
        """One endpoint (requests, outcomes, inventory) on a raw body (which the inventory
        ignores): input the client must fix is a 400 naming the field, any other failure a
        500, never a traceback."""
        try:
            if endpoint == "requests":
                return self.requests(parse_body(raw))
            if endpoint == "outcomes":
                return self.outcomes(parse_body(raw))
            if endpoint == "inventory":
                return self.inventory()
        except BadRequest as exc:
            return 400, {"error": str(exc)}, {}
        except Exception:
            log.exception("internal_error", endpoint=endpoint)
            return 500, {"error": "internal error in the simulator; see its log"}, {}
        return 404, {"error": f"no such endpoint: {endpoint}"}, {}

    def requests(self, body: object) -> Reply:
        """Store a chunk: its receipts, or 429 with Retry-After over the day's capacity, or
        413 for a chunk that no day could hold."""
        items = _parse_requests(body)
        try:
            results = self.store.submit(items)
        except OverCapacity as exc:
            log.info("over_capacity", requests=len(items), retry_after=exc.retry_after)
            message = f"supplier {exc.supplier} is over its capacity for the simulated day"
            return 429, {"error": message}, {"Retry-After": str(exc.retry_after)}
        except ChunkTooLarge as exc:
            return 413, {"error": str(exc)}, {}
        counts = Counter(r["status"] for r in results)
        log.info(
            "requests",
            received=len(items),
            accepted=counts["ACCEPTED"],
            duplicate=counts["DUPLICATE"],
            conflict=counts["CONFLICT"],
        )
        return 200, {"results": results}, {}

    def outcomes(self, body: object) -> Reply:
        """The outcome of each key, in order."""
        keys = _parse_keys(body)
        outcomes = self.store.outcomes(keys)
        counts = Counter(o["state"] for o in outcomes)
        log.info("outcomes", keys=len(keys), **{k.lower(): v for k, v in counts.items()})
        return 200, {"outcomes": outcomes}, {}

    def inventory(self) -> Reply:
        """The devices of migrated installations (a list, which transports send as JSON lines)."""
        devices = self.store.inventory()
        log.info("inventory", devices=len(devices))
        return 200, devices, {}


ROUTES = {
    ("POST", "/v1/requests"): "requests",
    ("POST", "/v1/outcomes"): "outcomes",
    ("GET", "/v1/inventory"): "inventory",
}
HEALTH = "/v1/health"


class DCCSimulatorServer(ThreadingHTTPServer):
    """The HTTP server in front of a service."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def server_close(self) -> None:
        """Wake handlers sleeping out a timeout, then close the socket and the store."""
        self.stopping.set()
        super().server_close()
        self.service.close()


class _Handler(BaseHTTPRequestHandler):
    server: DCCSimulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "DCCSimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to the debug log, not stderr; they hold paths, never bodies."""
        log.debug("http", line=format % args)

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: object, **headers: str) -> None:
        self._send(status, json.dumps(document).encode(), "application/json", **headers)

    def _error(self, status: int, message: str, **headers: str) -> None:
        self._json(status, {"error": message}, **headers)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest("Content-Length: missing")
        try:
            size = int(length)
        except ValueError:
            raise BadRequest("Content-Length: not a number") from None
        if size < 0 or size > MAX_BODY:
            raise BadRequest(f"Content-Length: must be between 0 and {MAX_BODY}")
        return self.rfile.read(size)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        """Route, apply the injected fault, and turn any failure into a reply, never a
        traceback to the client."""
        path = self.path.split("?", 1)[0]
        if (method, path) == ("GET", HEALTH):
            self._json(200, {"status": "ok"})
            return
        endpoint = ROUTES.get((method, path))
        if endpoint is None:
            if path in {p for _, p in ROUTES} | {HEALTH}:
                self._error(405, f"{method} not allowed on {path}")
            else:
                self._error(404, f"no such endpoint: {path}")
            return
        service = self.server.service
        options = service.options
        if options.latency_ms:
            self.server.stopping.wait(options.latency_ms / 1000)
        fault = service.next_fault()
        try:
            raw = self._read_body() if method == "POST" else b""
            if fault == "error":
                log.info("fault", kind="error", path=path)
                status, document, headers = UNAVAILABLE
                self._json(status, document, **headers)
                return
            if fault == "timeout":
                log.info("fault", kind="timeout", path=path)
                self.server.stopping.wait(options.timeout_sleep_s)
                with contextlib.suppress(OSError):
                    self._error(504, "injected fault: timed out")
                return
            if fault == "drop":
                log.info("fault", kind="drop", path=path)
                self._drop()
                return
            status, document, headers = service.call(endpoint, raw)
            if fault == "lost_response":
                log.info("fault", kind="lost_response", path=path)
                self._drop()
                return
            if endpoint == "inventory" and status == 200:
                text = b"".join(ndjson_lines(document))
                self._send(status, text, "application/x-ndjson", **headers)
            else:
                self._json(status, document, **headers)
        except BadRequest as exc:
            self._error(400, str(exc))
        except Exception:
            log.exception("internal_error", path=path)
            with contextlib.suppress(OSError):
                self._error(500, "internal error in the simulator; see its log")

    def _drop(self) -> None:
        """Close without a byte of response, as a network failure would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)


def open_service(state_dir: Path, options: SimulatorOptions) -> Service:
    """The service on the state in `state_dir` (created if need be); close() it when done."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    return Service(_Store(state_dir / STATE_FILE, options), options)


def make_server(
    host: str, port: int, state_dir: Path, options: SimulatorOptions
) -> DCCSimulatorServer:
    """A bound, not yet serving, simulator; port 0 picks a free port (see server_address).

    Call serve_forever() to run it and shutdown() then server_close() to stop it.
    """
    service = open_service(state_dir, options)
    try:
        return DCCSimulatorServer((host, port), service)
    except BaseException:
        service.close()
        raise


@contextlib.contextmanager
def serving(state_dir: Path, options: SimulatorOptions, host: str = "127.0.0.1") -> Iterator[str]:
    """The simulator serving in a thread of this process on a free port, for as long as the
    block lasts (a rehearsal, a test); yields its base URL."""
    server = make_server(host, 0, state_dir, options)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    bound_host, port = server.server_address[:2]
    try:
        yield f"http://{bound_host}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    state_dir: Path = Path("dcc-simulator-state"),
    options: SimulatorOptions | None = None,
    *,
    exchange: Path | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly: in-flight requests finish their
    transaction and the store is closed, so nothing acknowledged is lost. With `exchange`,
    the file-drop exchange in that folder is answered too, from the same service.
    `on_ready` is told the address actually bound (port 0 picks one)."""
    # Imported here because file_exchange builds on this module.
    from migrate.sim.file_exchange import FileExchange

    try:
        server = make_server(host, port, state_dir, options or SimulatorOptions())
    except OSError as error:
        raise ConfigError(
            None, f"cannot listen on {host}:{port}: {error.strerror or error}", key="port"
        ) from None
    try:
        files = None if exchange is None else FileExchange(exchange, server.service)
    except BaseException:
        server.server_close()
        raise
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, name="dcc-simulator", daemon=True)
    worker.start()
    if files is not None:
        files.start()
    bound_host, bound_port = server.server_address[:2]
    if on_ready is not None:
        on_ready(str(bound_host), int(bound_port))
    log.info(
        "dcc_simulator_started",
        host=bound_host,
        port=bound_port,
        state_dir=str(state_dir),
        exchange=None if exchange is None else str(exchange),
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if files is not None:
            files.stop()
        server.shutdown()
        worker.join()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("dcc_simulator_stopped")
