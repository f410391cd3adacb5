"""What a plan remembers of each file it was made from: where it was, its size and its
SHA-256, so that a go-live run can refuse a plan whose inputs changed since.

Only the standard library: a command can start hashing an extract before it loads the
heavy modules (numpy, Arrow) that the rest of the plan needs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def input_record(path: Path) -> dict[str, object]:
    """Where an input was (relative to the working folder when below it, so that a plan
    reads the same in any checkout) and what it held."""
    shown = Path(os.path.relpath(path.resolve()))
    if shown.parts[:1] == ("..",):
        shown = path.resolve()
    return {"path": str(shown), "bytes": path.stat().st_size, "sha256": file_digest(path)}


def records_beside(paths: Sequence[Path]) -> Future[list[dict[str, object]]]:
    """The inputs' records, taken on a thread of their own: hashlib lets go of the
    interpreter's lock, so an extract is hashed while the caller goes on (a 100 MB extract
    takes a tenth of a second). A daemon thread: a command that fails before it needs the
    records exits at once, not after hashing a national extract to the end."""
    records: Future[list[dict[str, object]]] = Future()

    def take() -> None:
        records.set_running_or_notify_cancel()
        try:
            records.set_result([input_record(Path(path)) for path in paths])
        except BaseException as error:  # handed to whoever asks for the records
            records.set_exception(error)

    threading.Thread(target=take, name="input-records", daemon=True).start()
    return records
