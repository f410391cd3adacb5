"""The request state machine, in one place: which transitions are legal, and the one way to
make one, with its audit record, in the same transaction.

    STAGED -> SUBMITTING -> ACCEPTED -> MIGRATED
       |          |             +-----> FAILED (retryable or permanent)
       |          |             +-----> STAGED (unknown at the DCC, or stuck: requeue)
       |          +-- DCC unavailable: back to STAGED (not an attempt)
       +-- WITHDRAWN (operator)                FAILED (retryable) -> STAGED (requeue)
"""

from __future__ import annotations

from enum import StrEnum

from migrate.errors import TerminalError


class RequestState(StrEnum):
    STAGED = "STAGED"
    SUBMITTING = "SUBMITTING"
    ACCEPTED = "ACCEPTED"
    MIGRATED = "MIGRATED"
    FAILED = "FAILED"
    WITHDRAWN = "WITHDRAWN"


S = RequestState
# A send's outcome (attempts.outcome) when its answer was lost: the DCC may hold the request.
UNANSWERED = "UNANSWERED"
# None is "no request yet": staging creates requests in STAGED.
TRANSITIONS: dict[RequestState | None, frozenset[RequestState]] = {
    None: frozenset({S.STAGED}),
    S.STAGED: frozenset({S.SUBMITTING, S.WITHDRAWN}),
    S.SUBMITTING: frozenset({S.ACCEPTED, S.STAGED, S.FAILED}),
    # ACCEPTED -> STAGED: the DCC no longer knows the key, or an operator requeues a request
    # stuck waiting for its outcome; the resend with the same key is harmless.
    S.ACCEPTED: frozenset({S.MIGRATED, S.FAILED, S.STAGED}),
    S.FAILED: frozenset({S.STAGED}),
    S.MIGRATED: frozenset(),
    S.WITHDRAWN: frozenset(),
}


class IllegalTransition(TerminalError):
    """A change of state the machine does not allow: a bug or a race, never retried."""

    def __init__(self, key: str | None, source: RequestState | None, target: RequestState) -> None:
        self.key = key
        self.source = source
        self.target = target
        name = source.value if source else "(none)"
        super().__init__(f"request {key or '(new)'}: {name} -> {target.value} is not allowed")


def check_transition(
    source: RequestState | None, target: RequestState, key: str | None = None
) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(key, source, target)
