"""The retry policy for gateway calls: only transient errors, backing off, always with a stop.

Retrying is safe only because every submission carries an idempotency key: a resend after a
lost response comes back DUPLICATE instead of migrating twice. Terminal errors are raised at
once, since the same request would be refused again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from migrate.errors import TransientError
from migrate.logs import get_logger

__all__ = ["RetryAfterWait", "retrying"]

T = TypeVar("T")
log = get_logger(__name__)


class RetryAfterWait:
    """Capped exponential backoff with full jitter, but never shorter than a 429's
    Retry-After.

    Full jitter (a wait drawn between zero and the capped exponential) spreads retries from
    many workers and, on average, waits half as long as a fixed exponential step: a brief
    fault costs a fraction of a second. Retry-After is the server saying when capacity
    returns, so retrying before it would only spend another 429.
    """

    def __init__(self, initial: float = 0.2, maximum: float = 10.0) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self._maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = min(self._maximum, float(self._backoff(retry_state)))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > delay:
            delay = float(retry_after)
        return delay


def retrying(
    call: Callable[[], T],
    *,
    attempts: int = 8,
    max_delay_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    initial_wait_s: float = 0.2,
    max_wait_s: float = 10.0,
) -> T:
    """Call `call`, retrying TransientError until it succeeds or a stop is reached.

    Stops after `attempts` calls, or before a wait that would end more than `max_delay_s`
    after the first call (so a long Retry-After is handed back to the caller at once rather
    than slept through); then the last error is re-raised as is. Any other exception is
    raised on the first occurrence. `sleep` is where the waiting happens (tests pass a fake).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    controller = Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=RetryAfterWait(initial=initial_wait_s, maximum=max_wait_s),
        stop=stop_after_attempt(attempts) | stop_before_delay(max_delay_s),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    return controller(call)


def _log_retry(state: RetryCallState) -> None:
    """Each retry in the log: what failed and how long the wait is (the error names the
    endpoint and the status, never a payload)."""
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "dcc.retry",
        attempt=state.attempt_number,
        wait_s=round(state.upcoming_sleep, 3),
        error=f"{type(error).__name__}: {error}" if error else None,
    )
