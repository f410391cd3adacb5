"""The simulator's file-drop mode: the DCC's side of the exchange FileDropGateway speaks.

A thread polls `outbox/` for request files and answers each into `inbox/`, through the same
`Service` as the HTTP server (store, request handling, fault sequence). Each request is
handled once, and a crash at any point loses nothing acknowledged:

1. claimed: renamed from `outbox/` into `processing/` (one rename, so one taker; a request
   the client withdrew first is simply gone);
2. handled: the service commits, and the answer is written whole into `processing/answered/`;
3. the claimed request is deleted, then the answer renamed into `inbox/` (data file first).

On start, answers already written are delivered and claimed requests are handled again: one
whose chunk was committed before the crash comes back DUPLICATE, as any resend would.
Requests are handled one at a time, oldest first. See DCC_API.md, "File-drop exchange".
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from migrate.commit.file_drop import (
    INBOX,
    OUTBOX,
    inventory_data_name,
    sync_directory,
    write_atomically,
)
from migrate.logs import get_logger
from migrate.sim.dcc import (
    MAX_BODY,
    UNAVAILABLE,
    Reply,
    Service,
    SimulatorOptions,
    ndjson_lines,
    open_service,
)

__all__ = ["ANSWERED", "PROCESSING", "FileExchange", "make_exchange"]

log = get_logger(__name__)

PROCESSING = "processing"
ANSWERED = "processing/answered"


def _waiting(folder: Path) -> list[str]:
    """Request-shaped files in `folder`, oldest first; dot-names are still being written."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    found.append((entry.stat().st_mtime_ns, entry.name))
            except FileNotFoundError:
                continue  # withdrawn (or taken) since it was listed
    return [name for _, name in sorted(found)]


class FileExchange:
    """The exchange in `directory`, answered from `service` by a polling thread.

    `start()` runs it; `stop()` stops polling (the service stays open, as `serve()` shares it
    with the HTTP server); `close()` stops and closes the service. As a context manager it
    starts on entry and closes on exit.
    """

    def __init__(self, directory: Path, service: Service, *, poll_interval_s: float = 0.05) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        self.directory = Path(directory)
        self.outbox = self.directory / OUTBOX
        self.inbox = self.directory / INBOX
        self.processing = self.directory / PROCESSING
        self.answered = self.directory / ANSWERED
        for folder in (self.outbox, self.inbox, self.answered):
            folder.mkdir(parents=True, exist_ok=True)
        self.service = service
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FileExchange:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Recover what an earlier run left behind, then poll, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="dcc-file-exchange", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling once the request in hand is answered; one still waiting out its
        latency stays claimed, and the next start answers it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        """Stop, then close the service's store."""
        self.stop()
        self.service.close()

    def _run(self) -> None:
        self._recover()
        while not self._stop.is_set():
            for name in self._listed(self.outbox):
                if self._stop.is_set():
                    return
                self._guarded(partial(self._take, name), name)
            self._stop.wait(self.poll_interval_s)

    def _guarded(self, step: Callable[[], object], what: str) -> None:
        """Run one step; a failure is logged and the thread goes on to the next request."""
        try:
            step()
        except Exception:
            log.exception("exchange_error", file=what)

    def _listed(self, folder: Path) -> list[str]:
        """The requests in `folder`, or none this time if it cannot be read."""
        try:
            return _waiting(folder)
        except OSError:
            log.exception("exchange_error", file=str(folder))
            return []

    def _recover(self) -> None:
        """Drop answers half written before a stop or crash, deliver those written whole, and
        handle again the requests that were claimed but not answered."""
        for half_written in self.answered.glob(".*"):
            self._guarded(half_written.unlink, half_written.name)
        for name in self._listed(self.answered):
            self._guarded(partial(self._redeliver, name), name)
        for name in self._listed(self.processing):
            if self._stop.is_set():
                return
            self._guarded(partial(self._handle, name), name)

    def _redeliver(self, name: str) -> None:
        """An answer written before a stop or crash: its request is done; hand it over."""
        (self.processing / name).unlink(missing_ok=True)
        self._deliver(name)

    def _take(self, name: str) -> None:
        try:
            os.rename(self.outbox / name, self.processing / name)
        except FileNotFoundError:
            return  # withdrawn by the client before it was taken
        sync_directory(self.processing)
        self._handle(name)

    def _handle(self, name: str) -> None:
        """Answer one claimed request, with the fault the service draws for it."""
        claimed = self.processing / name
        kind = name.partition("-")[0]
        latency = self.service.options.latency_ms
        if latency and self._stop.wait(latency / 1000):
            return
        fault = self.service.next_fault()
        if fault is not None:
            log.info("fault", kind=fault, file=name)
        if fault in ("timeout", "drop"):
            claimed.unlink()
            return
        reply = UNAVAILABLE if fault == "error" else self._reply(kind, claimed)
        if fault == "lost_response":
            claimed.unlink()
            return
        self._write_answer(name, kind, reply)
        claimed.unlink()
        sync_directory(self.processing)
        self._deliver(name)

    def _reply(self, kind: str, claimed: Path) -> Reply:
        if claimed.stat().st_size > MAX_BODY:
            return 400, {"error": f"body: must be at most {MAX_BODY} bytes"}, {}
        return self.service.call(kind, claimed.read_bytes())

    def _write_answer(self, name: str, kind: str, reply: Reply) -> None:
        """Write the answer whole into answered/: the inventory's data file, then the envelope."""
        status, body, headers = reply
        envelope: dict[str, Any] = {"status": status, "body": body}
        if "Retry-After" in headers:
            envelope["retry_after"] = int(headers["Retry-After"])
        if kind == "inventory" and status == 200:
            write_atomically(self.answered / inventory_data_name(name), ndjson_lines(body))
            envelope["body"] = {"devices": len(body)}
        write_atomically(self.answered / name, [json.dumps(envelope).encode()])

    def _deliver(self, name: str) -> None:
        """Hand a written answer over: each file renamed into inbox/, the envelope last."""
        data = self.answered / inventory_data_name(name)
        if data.exists():
            os.replace(data, self.inbox / data.name)
        os.replace(self.answered / name, self.inbox / name)
        sync_directory(self.inbox)


def make_exchange(
    directory: Path, state_dir: Path, options: SimulatorOptions, *, poll_interval_s: float = 0.05
) -> FileExchange:
    """A simulator answering only the file-drop exchange in `directory`, its state in
    `state_dir`; not yet polling: start() it (or use it as a context manager), close() it."""
    service = open_service(state_dir, options)
    try:
        return FileExchange(directory, service, poll_interval_s=poll_interval_s)
    except BaseException:
        service.close()
        raise
