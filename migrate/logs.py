"""Structured logs: JSON lines for machines, readable lines on a terminal.

Log events carry counts, file names and identifiers of work (batch, installation), never
row values: postcodes, customers' names and free-text notes must not reach a log.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


class _CurrentStderr:
    """sys.stderr as it is when a line is written, not when logging was configured: a test
    runner or a caller may have swapped it since (and closed the one it had)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(*, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Logs go to stderr so that stdout stays for the command's result (e.g. --json).

    Readable lines when a person is watching (stdout is a terminal), else JSON lines for
    the scheduler's log store. A given stream decides for itself.
    """
    target: TextIO | _CurrentStderr = stream or _CurrentStderr()
    watched = (stream or sys.stdout).isatty()
    renderer: structlog.typing.Processor
    if watched:
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=target),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
