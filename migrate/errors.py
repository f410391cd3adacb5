"""Typed errors: the kind says what the caller does next.

- terminal (InputError, ConfigError): stop, say what is wrong, write nothing partial;
- transient (TransientError): retry, always with a stop;
- rejected rows are not exceptions: they are quarantined with a reason and the run goes on.
"""

from __future__ import annotations

from pathlib import Path


class MigrateError(Exception):
    """Base of every error the toolkit raises on purpose."""


class TerminalError(MigrateError):
    """Retrying cannot help: the input or the configuration must change."""


class InputError(TerminalError):
    """An input file cannot be used at all; names the file and, where known, row and column."""

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.row = row
        self.column = column
        where = self.path
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class ConfigError(TerminalError):
    """A mapping, cohort rule file or option is wrong; names the file and key where known."""

    def __init__(self, path: Path | str | None, problem: str, *, key: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.key = key
        where = self.path or "configuration"
        if key:
            where += f", key {key!r}"
        super().__init__(f"{where}: {problem}")


class TransientError(MigrateError):
    """A failure that the same call may not meet again (timeout, 5xx, 429): retry it."""
