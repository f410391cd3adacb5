"""The gateway protocol the commit stage speaks to the DCC, and its HTTP implementation.

The commit stage only needs three things from the DCC: submit a chunk of keyed requests,
poll their outcomes, read the post-migration inventory. Keeping that behind a small protocol
lets the HTTP client, a file-drop exchange (file_drop.py) and test doubles stand in for one
another; the checks of the DCC's replies are functions here that both transports call.

Errors are typed by what the caller does next: `GatewayUnavailable` (a TransientError:
timeouts, dropped connections, 429, 5xx) is retried with the same idempotency keys;
`GatewayRejected` and `GatewayProtocolError` (TerminalErrors) are not, since resending the
same bytes cannot help.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from migrate.errors import TerminalError, TransientError

__all__ = [
    "RECEIPT_STATUSES",
    "Gateway",
    "GatewayProtocolError",
    "GatewayRejected",
    "GatewayUnavailable",
    "HttpGateway",
    "Outcome",
    "Receipt",
    "Submission",
]

RECEIPT_STATUSES = frozenset({"ACCEPTED", "DUPLICATE", "CONFLICT"})


@dataclass(frozen=True)
class Submission:
    """One migration request; the key makes a resend after a lost response harmless."""

    idempotency_key: str
    fingerprint: str
    installation_id: str
    supplier_mpid: str | None
    # The payload, or its JSON text, which is sent byte for byte (what was staged and
    # fingerprinted is what the DCC gets).
    payload: dict[str, Any] | str


@dataclass(frozen=True)
class Receipt:
    """The DCC's answer to one submission: ACCEPTED, DUPLICATE or CONFLICT, and the number
    the DCC gives the attempt it holds (None if it does not say): a store that lags behind it
    (attempts the DCC decided while no run recorded them) catches up, so the cohort's attempt
    limit counts every attempt the DCC made."""

    idempotency_key: str
    status: str
    attempt: int | None = None


@dataclass(frozen=True)
class Outcome:
    """The reported state of one key (MIGRATED, FAILED, PENDING or UNKNOWN)."""

    idempotency_key: str
    state: str
    reason: str | None
    retryable: bool | None


class Gateway(Protocol):
    """What the commit stage and reconciliation need from the DCC, whatever the transport."""

    def submit(self, chunk: Sequence[Submission]) -> list[Receipt]: ...

    def outcomes(self, keys: Sequence[str]) -> list[Outcome]: ...

    def inventory(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class GatewayUnavailable(TransientError):
    """The DCC did not answer usefully this time; the same call may succeed later.

    `status` is the HTTP status when there was one (None for a timeout or a dropped
    connection); `retry_after` is the server's Retry-After in seconds, when it sent one.
    `maybe_held`: whether the DCC may have taken what was sent, its answer lost (a timeout
    while waiting, a dropped connection); False only where the failure shows it did not
    (no connection made, a 429 or 503 answer, a file the DCC never took).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_held: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.maybe_held = maybe_held


class GatewayRejected(TerminalError):
    """The DCC refused the request as sent (400, 409, 413, ...): the request must change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"DCC rejected the request with HTTP {status}: {message}")
        self.status = status
        self.message = message


class GatewayProtocolError(TerminalError):
    """The DCC's reply does not follow the protocol; retrying would only repeat it."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


# The longest error message kept from the DCC: it goes into logs and the audit log.
MESSAGE_CHARS = 200


def error_message(document: object) -> str:
    """The server's `{"error": ...}` message. Of a reply without one, only its shape: the
    DCC may echo a request back, and a request holds MPANs and device ids, which are kept
    out of logs."""
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"][:MESSAGE_CHARS]
    if isinstance(document, dict):
        keys = ", ".join(sorted(str(key) for key in document)[:10])[:MESSAGE_CHARS]
        return f"a reply without an error message (keys: {keys or 'none'})"
    return f"a reply without an error message (a JSON {type(document).__name__})"


def status_error(
    status: int, what: str, message: str, retry_after: float | None = None
) -> GatewayUnavailable | GatewayRejected:
    """The typed error for a non-2xx status, which says whether to retry: 429 and 5xx are
    transient (429 with its Retry-After); any other status means the request must change."""
    if status == 429:
        return GatewayUnavailable(
            f"{what}: HTTP 429: {message}", status=429, retry_after=retry_after, maybe_held=False
        )
    if status >= 500:
        # 503: the DCC turned the call away; another 5xx may come after it stored the chunk.
        return GatewayUnavailable(
            f"{what}: HTTP {status}: {message}", status=status, maybe_held=status != 503
        )
    return GatewayRejected(status, f"{what}: {message}")


def requests_body(chunk: Sequence[Submission]) -> bytes:
    """The body of a submission (as POST /v1/requests), whatever transport carries it: JSON
    text written here so that a payload given as text goes in unchanged."""
    dumps = json.dumps
    items = [
        f'{{"idempotency_key":{dumps(s.idempotency_key)},"fingerprint":{dumps(s.fingerprint)},'
        f'"installation_id":{dumps(s.installation_id)},'
        f'"supplier_mpid":{dumps(s.supplier_mpid)},'
        f'"payload":{s.payload if isinstance(s.payload, str) else dumps(s.payload)}}}'
        for s in chunk
    ]
    return ('{"requests":[' + ",".join(items) + "]}").encode()


def parse_receipts(chunk: Sequence[Submission], document: object, what: str) -> list[Receipt]:
    """One receipt per submission, in order, each naming its key; anything else is a
    protocol error, since a receipt matched to the wrong request would record a lie."""
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list) or len(results) != len(chunk):
        raise GatewayProtocolError(
            f"{what}: expected {len(chunk)} results, got {_describe(results)}"
        )
    receipts = []
    for sent, result in zip(chunk, results, strict=True):
        attempt = result.get("attempt") if isinstance(result, dict) else None
        if (
            not isinstance(result, dict)
            or result.get("idempotency_key") != sent.idempotency_key
            or result.get("status") not in RECEIPT_STATUSES
            or not (attempt is None or (type(attempt) is int and attempt >= 1))
        ):
            raise GatewayProtocolError(
                f"{what}: unexpected result for {sent.idempotency_key!r}: {result!r}"
            )
        receipts.append(Receipt(sent.idempotency_key, result["status"], attempt))
    return receipts


def parse_outcomes(keys: Sequence[str], document: object, what: str) -> list[Outcome]:
    """One outcome per key, in order, each naming its key and a state."""
    items = document.get("outcomes") if isinstance(document, dict) else None
    if not isinstance(items, list) or len(items) != len(keys):
        raise GatewayProtocolError(f"{what}: expected {len(keys)} outcomes, got {_describe(items)}")
    outcomes = []
    for key, item in zip(keys, items, strict=True):
        if (
            not isinstance(item, dict)
            or item.get("idempotency_key") != key
            or not isinstance(item.get("state"), str)
        ):
            raise GatewayProtocolError(f"{what}: unexpected outcome for {key!r}: {item!r}")
        outcomes.append(Outcome(key, item["state"], item.get("reason"), item.get("retryable")))
    return outcomes


def parse_inventory_lines(lines: Iterable[str | bytes], what: str) -> Iterator[dict[str, Any]]:
    """Devices from inventory JSON lines, one at a time, as they are read; blank lines skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            device = json.loads(line)
        except ValueError as exc:
            raise GatewayProtocolError(f"{what}: line {number} is not JSON") from exc
        if not isinstance(device, dict):
            raise GatewayProtocolError(f"{what}: line {number} is not an object")
        yield device


def _error_message(response: httpx.Response) -> str:
    """The message of an HTTP error reply; of a body that is not JSON (a proxy's error page),
    its type and size, not its text."""
    try:
        document = response.json()
    except (ValueError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return f"{response.reason_phrase} ({kind[:60]}, {len(response.content)} bytes)"
    return error_message(document)


def _check_status(response: httpx.Response, what: str) -> None:
    """Turn a non-2xx reply into the typed error that says whether to retry."""
    status = response.status_code
    if not 200 <= status < 300:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise status_error(status, what, _error_message(response), retry_after)


# Failures before a request left: no connection was made, so the DCC cannot hold it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class HttpGateway:
    """The gateway over HTTP (httpx), with explicit timeouts and a pooled, kept-alive client.

    Every httpx failure is mapped to a typed error here, so callers never see httpx types.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        write_timeout: float = 30.0,
        pool_timeout: float = 5.0,
        max_connections: int = 10,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
            ),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
            transport=transport,
        )

    def __enter__(self) -> HttpGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._client.close()

    def _post(self, path: str, body: bytes) -> Any:
        """POST a JSON body and return the parsed JSON reply, or raise the typed error."""
        what = f"POST {path}"
        try:
            response = self._client.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(
                f"{what}: timed out ({type(exc).__name__})",
                maybe_held=not isinstance(exc, NOT_SENT),
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise GatewayProtocolError(f"{what}: {exc}") from exc
        except httpx.TransportError as exc:
            # ConnectError, ReadError, RemoteProtocolError (a dropped connection), ...
            raise GatewayUnavailable(
                f"{what}: {type(exc).__name__}: {exc}", maybe_held=not isinstance(exc, NOT_SENT)
            ) from exc
        _check_status(response, what)
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise GatewayProtocolError(f"{what}: reply is not JSON") from exc

    def submit(self, chunk: Sequence[Submission]) -> list[Receipt]:
        """Submit a chunk; one receipt per submission, in order. The DCC stores the chunk
        whole or not at all, so after any error the whole chunk may be resent as is."""
        if not chunk:
            return []
        document = self._post("/v1/requests", requests_body(chunk))
        return parse_receipts(chunk, document, "POST /v1/requests")

    def outcomes(self, keys: Sequence[str]) -> list[Outcome]:
        """The current outcome of each key, in order (UNKNOWN for a key never stored)."""
        if not keys:
            return []
        document = self._post("/v1/outcomes", json.dumps({"keys": list(keys)}).encode())
        return parse_outcomes(keys, document, "POST /v1/outcomes")

    def inventory(self) -> Iterator[dict[str, Any]]:
        """Stream the post-migration inventory, one device per item, without holding it all.

        The request is made on the first `next()`; a failure mid-stream raises the typed error
        from the iterator, so a caller that must retry restarts the whole read.
        """
        what = "GET /v1/inventory"
        try:
            with self._client.stream("GET", "/v1/inventory") as response:
                if response.status_code >= 300:
                    response.read()
                _check_status(response, what)
                yield from parse_inventory_lines(response.iter_lines(), what)
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(f"{what}: timed out ({type(exc).__name__})") from exc
        except httpx.UnsupportedProtocol as exc:
            raise GatewayProtocolError(f"{what}: {exc}") from exc
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


def _describe(value: object) -> str:
    return f"{len(value)}" if isinstance(value, list) else type(value).__name__
