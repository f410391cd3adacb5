"""The gateway as a file-drop exchange with the DCC, as over SFTP: requests written into an
outbox, answers read from an inbox.

The layout under the exchange folder (see migrate/sim/DCC_API.md, "File-drop exchange"):

    outbox/<kind>-<id>.json       a request; kind is requests, outcomes or inventory
    inbox/<kind>-<id>.json        its answer envelope, {"status": 200, "body": {...}}
    inbox/inventory-<id>.ndjson   the inventory itself, one device per line, beside its envelope

Both sides write every file under a dot-name in the target folder, fsync it and rename it into
place, and ignore dot-names when they read, so nobody ever reads half a file. An answer keeps
its request's name, which is how a call finds its own among many. A call left unanswered past
its timeout withdraws its request if the DCC has not taken it yet; if the DCC has, the resend
that follows carries the same idempotency keys and is harmless.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from migrate.commit.gateway import (
    GatewayProtocolError,
    GatewayUnavailable,
    Outcome,
    Receipt,
    Submission,
    error_message,
    parse_inventory_lines,
    parse_outcomes,
    parse_receipts,
    requests_body,
    status_error,
)
from migrate.errors import ConfigError

__all__ = [
    "INBOX",
    "KINDS",
    "OUTBOX",
    "FileDropGateway",
    "inventory_data_name",
    "sync_directory",
    "write_atomically",
]

OUTBOX = "outbox"
INBOX = "inbox"
KINDS = ("requests", "outcomes", "inventory")


def inventory_data_name(answer_name: str) -> str:
    """The NDJSON file that goes with an inventory answer: `inventory-<id>.ndjson`."""
    return answer_name.removesuffix(".json") + ".ndjson"


def sync_directory(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX), so a crash cannot undo a handed-over file."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `path` whole or not at all, as the exchange requires of both sides: under a
    dot-name in the same folder (which readers ignore), fsynced, then renamed into place."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("xb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def _open_envelope(raw: bytes, what: str) -> tuple[int, Any, float | None]:
    """The status, body and retry_after of an answer, or a protocol error naming the flaw."""
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        raise GatewayProtocolError(f"{what}: the answer is not JSON") from exc
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise GatewayProtocolError(f"{what}: the answer is not a status and body envelope")
    status = envelope.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise GatewayProtocolError(f"{what}: the answer's status is not an HTTP status: {status!r}")
    retry_after = envelope.get("retry_after")
    if retry_after is None:
        return status, envelope["body"], None
    if (
        isinstance(retry_after, bool)
        or not isinstance(retry_after, int | float)
        or not 0 <= retry_after < math.inf
    ):
        raise GatewayProtocolError(f"{what}: retry_after is not a number of seconds")
    return status, envelope["body"], float(retry_after)


def _devices(data: Path, answer: str) -> Iterator[dict[str, Any]]:
    """The devices in an inventory data file, read a line at a time."""
    what = f"{INBOX}/{data.name}"
    try:
        with data.open("rb") as lines:
            yield from parse_inventory_lines(lines, what)
    except FileNotFoundError as exc:
        raise GatewayProtocolError(f"{what}: missing, though {answer} announced it") from exc
    except OSError as exc:
        raise GatewayUnavailable(f"{what}: could not be read: {exc}") from exc


class FileDropGateway:
    """The gateway over an exchange folder: one request file and one answer per call.

    Every file failure is mapped to a typed error here, so callers never see OSError. Calls
    may run from several threads at once: each owns the files named after its own id.
    """

    def __init__(
        self, directory: Path, *, timeout_s: float = 30.0, poll_interval_s: float = 0.05
    ) -> None:
        if timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("timeout_s and poll_interval_s must be positive")
        self.directory = Path(directory)
        self.outbox = self.directory / OUTBOX
        self.inbox = self.directory / INBOX
        for folder in (self.outbox, self.inbox):
            if not folder.is_dir():
                raise ConfigError(folder, "no such folder: an exchange holds outbox/ and inbox/")
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s

    def __enter__(self) -> FileDropGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every call removes its own files before it returns."""

    def _exchange(self, kind: str, body: bytes) -> tuple[str, Any]:
        """Drop one request, wait for its answer; the answer's name and its 2xx body, or the
        typed error its status calls for."""
        name = f"{kind}-{uuid.uuid4().hex}.json"
        try:
            write_atomically(self.outbox / name, [body])
        except OSError as exc:
            raise GatewayUnavailable(
                f"{OUTBOX}/{name}: could not be written: {exc}", maybe_held=False
            ) from exc
        what = f"{INBOX}/{name}"
        status, body, retry_after = _open_envelope(self._await_answer(name), what)
        if not 200 <= status < 300:
            raise status_error(status, what, error_message(body), retry_after)
        return name, body

    def _await_answer(self, name: str) -> bytes:
        """The answer's bytes, read then deleted; polls until the timeout, then withdraws."""
        answer = self.inbox / name
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                raw = answer.read_bytes()
                answer.unlink(missing_ok=True)
                return raw
            except FileNotFoundError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._unanswered(name) from None
                time.sleep(min(self.poll_interval_s, left))
            except OSError as exc:
                raise GatewayUnavailable(f"{INBOX}/{name}: could not be read: {exc}") from exc

    def _unanswered(self, name: str) -> GatewayUnavailable:
        """Withdraw an unanswered request if it is still waiting; say which case it was."""
        what = f"{OUTBOX}/{name}"
        waited = f"no answer within {self.timeout_s:g} s"
        try:
            (self.outbox / name).unlink()
        except FileNotFoundError:
            return GatewayUnavailable(f"{what}: taken by the DCC, {waited}")
        except OSError as exc:
            return GatewayUnavailable(f"{what}: {waited}, and it could not be withdrawn: {exc}")
        return GatewayUnavailable(
            f"{what}: not taken by the DCC, {waited}; withdrawn", maybe_held=False
        )

    def submit(self, chunk: Sequence[Submission]) -> list[Receipt]:
        """Submit a chunk; one receipt per submission, in order. The DCC stores the chunk
        whole or not at all, so after any error the whole chunk may be resent as is."""
        if not chunk:
            return []
        name, body = self._exchange("requests", requests_body(chunk))
        return parse_receipts(chunk, body, f"{INBOX}/{name}")

    def outcomes(self, keys: Sequence[str]) -> list[Outcome]:
        """The current outcome of each key, in order (UNKNOWN for a key never stored)."""
        if not keys:
            return []
        name, body = self._exchange("outcomes", json.dumps({"keys": list(keys)}).encode())
        return parse_outcomes(keys, body, f"{INBOX}/{name}")

    def inventory(self) -> Iterator[dict[str, Any]]:
        """Stream the post-migration inventory, one device per item, a line at a time.

        The request is made on the first `next()`. The data file is deleted once read or
        abandoned; a failure raises the typed error from the iterator, so a caller that must
        retry restarts the whole read.
        """
        name, body = self._exchange("inventory", b"{}")
        what = f"{INBOX}/{name}"
        data = self.inbox / inventory_data_name(name)
        try:
            announced = body.get("devices") if isinstance(body, dict) else None
            if isinstance(announced, bool) or not isinstance(announced, int) or announced < 0:
                raise GatewayProtocolError(f"{what}: the answer does not give a number of devices")
            count = 0
            for device in _devices(data, what):
                count += 1
                yield device
            if count != announced:
                raise GatewayProtocolError(
                    f"{INBOX}/{data.name}: {count} devices, {what} announced {announced}"
                )
        finally:
            data.unlink(missing_ok=True)
