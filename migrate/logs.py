"""Structured logs: JSON lines for machines, readable lines on a terminal.

Log events carry counts, file names and identifiers of work (batch, installation), never
row values: postcodes, customers' names and free-text notes must not reach a log.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(*, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Logs go to stderr so that stdout stays for the command's result (e.g. --json).

    Readable lines when a person is watching (stdout is a terminal), else JSON lines for
    the scheduler's log store. A given stream decides for itself.
    """
    target = stream or sys.stderr
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
