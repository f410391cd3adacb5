"""The commit stage: staged requests to the DCC, each enrolled once, none lost.

A worker repeats: claim a chunk of STAGED requests (moving them to SUBMITTING and drawing on
the day's capacity, in one transaction), send it with its idempotency keys (retrying what is
transient), record the receipts (ACCEPTED), and poll the outcomes of what it holds (MIGRATED,
FAILED, or back to STAGED for another attempt). Every state change is written with its audit
record and its attempt row in one transaction, after the DCC's answer it reflects; nothing is
marked done that the DCC has not confirmed.

What makes a crash harmless: a request is sent only while SUBMITTING under a live worker's
name. A worker killed at any moment leaves its requests SUBMITTING or ACCEPTED under a dead
name (see lease.py); the next worker adopts them and resends with the same keys, which the
DCC answers DUPLICATE for anything it already holds.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from migrate.audit import GENESIS
from migrate.commit.capacity import NO_SUPPLIER, capacity_day, refund, reserve, spent
from migrate.commit.gateway import (
    Gateway,
    GatewayRejected,
    GatewayUnavailable,
    Outcome,
    Receipt,
    Submission,
)
from migrate.commit.lease import WorkerLease, new_worker_id
from migrate.commit.retry import retrying
from migrate.errors import ConfigError
from migrate.logs import get_logger
from migrate.store import audit_log
from migrate.store.bulk import driver_value, execute_many
from migrate.store.moves import Move, apply_moves, current_states
from migrate.store.schema import attempts, batches, requests
from migrate.store.snapshot import reader
from migrate.store.states import UNANSWERED, RequestState

log = get_logger(__name__)
S = RequestState

# Reasons the commit stage writes itself (the DCC's own reasons pass through as given).
DCC_UNAVAILABLE = "DCC_UNAVAILABLE"
DCC_CAPACITY = "DCC_CAPACITY"
PAYLOAD_ALTERED = "PAYLOAD_ALTERED"
KEY_CONFLICT = "KEY_CONFLICT"
DCC_REJECTED = "DCC_REJECTED"
UNKNOWN_AT_DCC = "UNKNOWN_AT_DCC"
MAX_ATTEMPTS_EXCEEDED = "MAX_ATTEMPTS_EXCEEDED"
ADOPTED = "ADOPTED"
STOPPED = "STOPPED"
# Failures of a kind a later attempt may cure: at the attempt limit they are
# MAX_ATTEMPTS_EXCEEDED, whatever the DCC (which keeps a limit of its own) calls them.
CURABLE = frozenset(
    {
        "NO_WAN_DURING_MIGRATION",
        "NO_WAN_PRE_MIGRATION",
        "DEVICE_TEST_FAILED",
        "COMMISSIONING_FAILED",
    }
)


@dataclass(frozen=True)
class CommitOptions:
    """How a commit runs; None means the cohort's own setting."""

    workers: int = 1
    chunk: int = 500
    poll_chunk: int = 1000
    poll_interval_s: float = 0.5
    # How long to keep polling requests whose outcome the DCC has not decided yet.
    outcome_wait_s: float = 300.0
    capacity_per_day: int | None = None
    max_attempts: int | None = None
    # Retryable failures go back to STAGED for another attempt (up to max_attempts).
    requeue_failures: bool = True
    retry_attempts: int = 8
    retry_max_delay_s: float = 60.0
    retry_max_wait_s: float = 10.0
    progress_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.chunk < 1 or self.poll_chunk < 1:
            raise ConfigError(None, "workers, chunk and poll chunk must be at least 1")
        if self.capacity_per_day is not None and self.capacity_per_day < 1:
            raise ConfigError(None, "the daily capacity must be at least 1", key="capacity")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(None, "max attempts must be at least 1", key="max_attempts")


@dataclass(frozen=True)
class CommitProgress:
    """The batch now, for a progress bar or a progress line."""

    batch: str
    states: dict[str, int]
    sent: int
    elapsed_s: float

    @property
    def total(self) -> int:
        return sum(n for state, n in self.states.items() if state != S.WITHDRAWN)

    @property
    def settled(self) -> int:
        return self.states.get(S.MIGRATED, 0) + self.states.get(S.FAILED, 0)


@dataclass
class Tally:
    """What the run did, summed over its workers."""

    sent: int = 0  # answered by the DCC (a receipt or a refusal each); never also released
    resent: int = 0  # of sent: adopted SUBMITTING requests, sent again with their keys
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    migrated: int = 0
    failed: int = 0
    requeued: int = 0
    unknown: int = 0
    released: int = 0  # claimed, then back to STAGED without the DCC's answer
    unanswered: int = 0  # of released: sent, the answer lost; the DCC may hold them
    adopted: int = 0
    overtaken: int = 0

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class CommitResult:
    batch: str
    workers: int
    tally: Tally
    states: dict[str, int]
    waiting_for_capacity: int  # STAGED, held back by today's capacity
    stopped: bool  # by a signal or the caller
    unavailable: str | None  # the DCC's last error, when it stayed unavailable
    dcc_capacity_spent: bool  # the DCC answered 429 for longer than the retries wait
    elapsed_s: float
    audit_records: int
    audit_head_hash: str

    @property
    def in_flight(self) -> int:
        return self.states.get(S.SUBMITTING, 0) + self.states.get(S.ACCEPTED, 0)

    @property
    def finished(self) -> bool:
        """Every request of the batch settled: nothing left to send or wait for."""
        return self.in_flight == 0 and self.states.get(S.STAGED, 0) == 0


class Stopping(Exception):
    """Raised out of a backoff wait when the run is asked to stop. `maybe_held`: a try
    before the wait may have reached the DCC, its answer lost."""

    def __init__(self, *, maybe_held: bool = False) -> None:
        super().__init__("the run was asked to stop")
        self.maybe_held = maybe_held


@dataclass(frozen=True)
class _Held:
    """A request a worker holds, as claimed or adopted."""

    key: str
    installation_id: str
    supplier: str | None
    fingerprint: str
    payload: str
    sends: int
    attempts: int


@dataclass(frozen=True)
class _Waiting:
    key: str
    installation_id: str
    attempts: int
    sends: int


# A request of a split chunk that was never sent, because the DCC went away (or the run was
# stopped) after the parts before it were answered.
_Unsent = GatewayUnavailable | Stopping
_Answer = Receipt | GatewayRejected | _Unsent


def _first_unsent(answers: Sequence[_Answer]) -> _Unsent | None:
    """Why part of a chunk was not sent, if it was not."""
    return next((a for a in answers if isinstance(a, _Unsent)), None)


def _never_sent(why: _Unsent) -> _Unsent:
    """The same reason, for requests that were never sent: the DCC cannot hold them."""
    if isinstance(why, Stopping):
        return Stopping()
    return GatewayUnavailable(
        str(why), status=why.status, retry_after=why.retry_after, maybe_held=False
    )


@dataclass(frozen=True)
class _Answered:
    """What the DCC said to one chunk: a receipt (or refusal) each, or why it was not sent,
    and the outcomes of the accepted ones when it was asked at once."""

    answers: list[_Answer]
    accepted: list[_Waiting]
    outcomes: list[Outcome] | None


@dataclass(frozen=True)
class _Flight:
    """A chunk on its way to the DCC; `day` is the capacity day it drew on (None: a resend)."""

    held: list[_Held]
    day: dt.date | None
    future: Future[_Answered]

    def wait(self) -> _Answered | BaseException:
        try:
            return self.future.result()
        except (GatewayUnavailable, Stopping) as error:
            return error


@dataclass
class _Batch:
    name: str
    capacity: int
    max_attempts: int
    inputs: dict[str, str] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Worker:
    """One worker: its own lease, gateway and transactions; many may share a batch."""

    def __init__(
        self,
        engine: Engine,
        batch: _Batch,
        gateway: Gateway,
        options: CommitOptions,
        *,
        index: int,
        actor: str,
        key: bytes | None,
        stop: threading.Event,
        clock: Callable[[], dt.datetime],
        on_sent: Callable[[int], None],
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.gateway = gateway
        self.options = options
        self.worker = new_worker_id(index)
        self.actor = actor
        self.key = key
        self.stop = stop
        self.clock = clock
        self.on_sent = on_sent
        self.tally = Tally()
        self.unavailable: str | None = None
        self.dcc_capacity_spent = False
        self.ready = threading.Event()  # set once the lease is held
        self.lease = WorkerLease(engine, self.worker)
        self._cursor = ""
        self._cycle_started = 0.0
        self._ask_at_once = True
        # Set when adoption took requests in SUBMITTING: they are resent before new claims.
        self._resend_adopted = False
        self._inputs = {**batch.inputs, "worker": self.worker}

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Pipelined: while the DCC answers one chunk, the next is claimed and the one before
        is recorded, so the store's work and the DCC's overlap instead of taking turns."""
        with self.lease, ThreadPoolExecutor(1, thread_name_prefix="dcc-exchange") as network:
            self.ready.set()
            self._adopt()
            flight: _Flight | None = None
            while True:
                going = not self.stop.is_set() and self.unavailable is None
                taken = self._take(flight) if going else None
                answered = flight.wait() if flight else None
                following = None
                if taken is not None:
                    held, day = taken
                    refusal = self._refusal(answered)
                    if refusal is None:
                        following = _Flight(held, day, network.submit(self._exchange, held))
                    else:  # claimed, never sent: back to STAGED
                        self._release(held, day=day, why=refusal)
                recorded = flight is not None
                if flight is not None:
                    self._record(flight, answered)
                flight = following
                # Outcomes that did not come with the receipts.
                polled = not self._ask_at_once and self._poll()
                if recorded or polled or flight is not None:
                    continue  # what was recorded may have put requests back to STAGED
                if not going or self.unavailable is not None:
                    return
                if self._poll():
                    continue
                if self._waiting_for_outcomes():
                    self.stop.wait(self.options.poll_interval_s)
                    continue
                if not self._adopt():
                    return

    def _apply(self, connection: Connection, moves: Sequence[Move]) -> list[Move]:
        """Apply the moves whose request is still where the move expects it (locked for this
        transaction); a request someone else moved first is left to them."""
        if not moves:
            return []
        found = current_states(connection, list(dict.fromkeys(m.idempotency_key for m in moves)))
        # A request's moves follow on from one another: its first must find it in place.
        starts: dict[str, RequestState] = {}
        for m in moves:
            starts.setdefault(m.idempotency_key, m.source)
        fresh = [m for m in moves if found.get(m.idempotency_key) == starts[m.idempotency_key]]
        self.tally.overtaken += len({m.idempotency_key for m in moves}) - len(
            {m.idempotency_key for m in fresh}
        )
        apply_moves(
            connection, fresh, actor=self.actor, command="commit", inputs=self._inputs, key=self.key
        )
        return fresh

    # -- adopting what dead workers left ----------------------------------------------------

    def _adopt(self) -> int:
        """Take over SUBMITTING and ACCEPTED requests of workers that are gone; audited."""
        adopted = 0
        with self.engine.begin() as connection:
            others = connection.execute(
                select(requests.c.worker)
                .where(
                    requests.c.batch == self.batch.name,
                    requests.c.state.in_([S.SUBMITTING.value, S.ACCEPTED.value]),
                    requests.c.worker.is_distinct_from(self.worker),
                )
                .distinct()
            ).scalars()
            for other in list(others):
                if not self.lease.adoptable(connection, other):
                    continue
                rows = connection.execute(
                    select(
                        requests.c.idempotency_key,
                        requests.c.installation_id,
                        requests.c.state,
                    ).where(
                        requests.c.batch == self.batch.name,
                        requests.c.state.in_([S.SUBMITTING.value, S.ACCEPTED.value]),
                        requests.c.worker.is_(None)
                        if other is None
                        else requests.c.worker == other,
                    )
                ).all()
                if not rows:
                    continue
                connection.execute(
                    update(requests)
                    .where(requests.c.idempotency_key == bindparam("k"))
                    .values(worker=self.worker),
                    [{"k": row.idempotency_key} for row in rows],
                )
                audit_log.append(
                    connection,
                    [
                        {
                            "batch": self.batch.name,
                            "installation_id": row.installation_id,
                            "idempotency_key": row.idempotency_key,
                            "from_state": row.state,
                            "to_state": row.state,
                            "reason": ADOPTED,
                        }
                        for row in rows
                    ],
                    actor=self.actor,
                    command="commit",
                    inputs={**self._inputs, "adopted_from": other or "(none)"},
                    key=self.key,
                )
                adopted += len(rows)
                self._resend_adopted |= any(row.state == S.SUBMITTING for row in rows)
        if adopted:
            log.info("commit.adopted", batch=self.batch.name, requests=adopted)
        self.tally.adopted += adopted
        return adopted

    # -- sending ----------------------------------------------------------------------------

    def _held_query(self, state: RequestState):  # type: ignore[no-untyped-def]
        return select(
            requests.c.idempotency_key,
            requests.c.installation_id,
            requests.c.supplier_mpid,
            requests.c.fingerprint,
            requests.c.payload,
            requests.c.sends,
            requests.c.attempts,
        ).where(requests.c.batch == self.batch.name, requests.c.state == state.value)

    def _take(self, flight: _Flight | None) -> tuple[list[_Held], dt.date | None] | None:
        """The next chunk to send, moved to SUBMITTING with its sends recorded: requests
        adopted in SUBMITTING after a crash first (resent with their keys, drawing no new
        capacity), then STAGED ones within the day's capacity. `flight` is the chunk on its
        way, whose requests are SUBMITTING too but must not go twice."""
        with self.engine.begin() as connection:
            if self._resend_adopted:
                on_the_way = [h.key for h in flight.held] if flight else []
                rows = connection.execute(
                    self._held_query(S.SUBMITTING)
                    .where(
                        requests.c.worker == self.worker,
                        requests.c.idempotency_key.not_in(on_the_way),
                    )
                    .order_by(requests.c.idempotency_key)
                    .limit(self.options.chunk)
                ).all()
                if rows:
                    held = [_Held(*row) for row in rows]
                    execute_many(
                        connection,
                        "UPDATE requests SET sends = sends + 1 WHERE idempotency_key = ?",
                        [(h.key,) for h in held],
                    )
                    self._record_sends(connection, held)
                    return held, None
                self._resend_adopted = False
            day = capacity_day(self.clock())
            held = self._claim(connection, day)
            if not held:
                return None
            self._record_sends(connection, held)
            return held, day

    def _claim(self, connection: Connection, day: dt.date) -> list[_Held]:
        blocked = spent(connection, day, self.batch.capacity)
        query = self._held_query(S.STAGED)
        if blocked:
            query = query.where(
                func.coalesce(requests.c.supplier_mpid, NO_SUPPLIER).not_in(blocked)
            )
        query = query.order_by(requests.c.planned_date, requests.c.idempotency_key).limit(
            self.options.chunk
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        candidates = [_Held(*row) for row in connection.execute(query)]
        if not candidates:
            return []
        wanted = Counter(c.supplier or NO_SUPPLIER for c in candidates)
        granted = reserve(connection, day, wanted, self.batch.capacity)
        held = []
        for candidate in candidates:
            supplier = candidate.supplier or NO_SUPPLIER
            if granted[supplier] > 0:
                granted[supplier] -= 1
                held.append(candidate)
        moves = [
            Move(h.key, self.batch.name, h.installation_id, S.STAGED, S.SUBMITTING,
                 sent=True, worker=self.worker)
            for h in held
        ]  # fmt: skip
        moved = {m.idempotency_key for m in self._apply(connection, moves)}
        reserved, held = held, [h for h in held if h.key in moved]
        # What is sent must be what was staged: a payload changed in the store since is
        # refused here, never sent.
        altered = [h for h in held if sha256(h.payload.encode()).hexdigest() != h.fingerprint]
        if altered:
            self._apply(
                connection,
                [
                    Move(h.key, self.batch.name, h.installation_id, S.SUBMITTING, S.FAILED,
                         reason=PAYLOAD_ALTERED, retryable=False)
                    for h in altered
                ],
            )  # fmt: skip
            log.error("commit.payload_altered", batch=self.batch.name, requests=len(altered))
            self.tally.failed += len(altered)
        sent = {h.key for h in held} - {h.key for h in altered}
        refund(
            connection,
            day,
            Counter(h.supplier or NO_SUPPLIER for h in reserved if h.key not in sent),
        )
        return [h for h in held if h.key in sent]

    def _record_sends(self, connection: Connection, held: Sequence[_Held]) -> None:
        """One attempts row per send, numbered by the request's sends (counted already)."""
        at = driver_value(connection, attempts.c.started_at, self.clock())
        execute_many(
            connection,
            "INSERT INTO attempts (idempotency_key, attempt, started_at, detail)"
            " VALUES (?, ?, ?, ?)",
            [(h.key, h.sends + 1, at, f"worker={self.worker}") for h in held],
        )

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopping

    def _retrying(self, call: Callable[[], object]) -> object:
        return retrying(
            call,
            attempts=self.options.retry_attempts,
            max_delay_s=self.options.retry_max_delay_s,
            max_wait_s=self.options.retry_max_wait_s,
            sleep=self._sleep,
        )

    def _submit(self, chunk: Sequence[Submission]) -> list[_Answer]:
        """Receipts in order; a chunk the DCC refuses as sent is halved until the refused
        requests are found, so one bad request does not fail its neighbours.

        Raises GatewayUnavailable or Stopping when nothing of the chunk was answered. Once a
        part of a split chunk is answered, its receipts are kept whatever follows: the parts
        after the DCC went away are not sent, and stand as the reason why (their capacity
        is given back; the answered part's is spent, as at the DCC)."""
        held = False  # whether a try of this chunk may have reached the DCC unanswered

        def send() -> list[Receipt]:
            nonlocal held
            try:
                return self.gateway.submit(chunk)
            except GatewayUnavailable as error:
                held = held or error.maybe_held
                raise

        try:
            return list(self._retrying(send))  # type: ignore[call-overload]
        except GatewayRejected as error:
            if len(chunk) == 1:
                return [error]
        except GatewayUnavailable as error:
            error.maybe_held = held  # the last try's failure may hide an earlier lost answer
            raise
        except Stopping:
            raise Stopping(maybe_held=held) from None
        middle = len(chunk) // 2
        first = self._submit(chunk[:middle])
        unsent = _first_unsent(first)
        if unsent is not None:  # the second half was never sent
            return [*first, *[_never_sent(unsent)] * (len(chunk) - middle)]
        try:
            return [*first, *self._submit(chunk[middle:])]
        except (GatewayUnavailable, Stopping) as error:
            return [*first, *[error] * (len(chunk) - middle)]

    def _refusal(self, answered: object) -> BaseException | None:
        """Why a claimed chunk must not be sent after all: the run is stopping, or the DCC
        stayed unavailable for the chunk before it (or earlier)."""
        if isinstance(answered, GatewayUnavailable):
            return _never_sent(answered)
        if self.unavailable is not None:
            return GatewayUnavailable(self.unavailable, maybe_held=False)
        if self.stop.is_set():
            return Stopping()
        return None

    def _exchange(self, held: Sequence[_Held]) -> _Answered:
        """In the network thread: send a chunk and, from a DCC that decides quickly, ask
        for the outcomes of what it accepted. Raises GatewayUnavailable or Stopping."""
        chunk = [
            Submission(h.key, h.fingerprint, h.installation_id, h.supplier, h.payload) for h in held
        ]
        answers = self._submit(chunk)
        accepted = [
            _Waiting(
                h.key, h.installation_id, max(h.attempts + 1, answer.attempt or 0), h.sends + 1
            )
            for h, answer in zip(held, answers, strict=True)
            if isinstance(answer, Receipt) and answer.status != "CONFLICT"
        ]
        outcomes = None
        if accepted and self._ask_at_once and _first_unsent(answers) is None:
            try:
                outcomes = self._retrying(lambda: self.gateway.outcomes([w.key for w in accepted]))
            except (GatewayUnavailable, Stopping):
                outcomes = None  # the receipts stand; the outcomes are polled later
        return _Answered(answers, accepted, outcomes)  # type: ignore[arg-type]

    def _record(self, flight: _Flight, answered: _Answered | BaseException | None) -> None:
        """Write what the DCC answered for a chunk, or release it if it could not answer.

        A chunk counts as sent (and resent) only here, once answered: one released unanswered
        counts as released alone, so the summary never counts a request twice."""
        if isinstance(answered, GatewayUnavailable | Stopping):
            self._release(flight.held, day=flight.day, why=answered)
            if isinstance(answered, GatewayUnavailable):
                self.unavailable = str(answered)
                self.dcc_capacity_spent = answered.status == 429
            return
        if isinstance(answered, BaseException):
            raise answered
        assert answered is not None
        unsent = _first_unsent(answered.answers)
        if unsent is not None:  # a split chunk, of which the DCC answered only a part
            pairs = list(zip(flight.held, answered.answers, strict=True))
            done = [(h, a) for h, a in pairs if not isinstance(a, _Unsent)]
            self._record(
                _Flight([h for h, _ in done], flight.day, flight.future),
                _Answered([a for _, a in done], answered.accepted, None),
            )
            self._record(
                _Flight([h for h, a in pairs if isinstance(a, _Unsent)], flight.day, flight.future),
                unsent,
            )
            return
        self._record_receipts(flight.held, answered)
        self.tally.sent += len(flight.held)
        if flight.day is None:
            self.tally.resent += len(flight.held)
        self.on_sent(len(flight.held))

    def _release(self, held: Sequence[_Held], *, day: dt.date | None, why: BaseException) -> None:
        """Back to STAGED what was never answered, with its capacity given back. A send whose
        answer may have been lost is recorded as UNANSWERED: the DCC may hold it, so it must
        not be withdrawn until the DCC has answered for it (`interventions.withdraw`)."""
        if not isinstance(why, GatewayUnavailable):
            outcome, reason = STOPPED, STOPPED
        elif why.status == 429:
            outcome, reason = "OVER_CAPACITY", DCC_CAPACITY
        else:
            outcome, reason = "UNAVAILABLE", DCC_UNAVAILABLE
        if getattr(why, "maybe_held", False):
            outcome = UNANSWERED
        with self.engine.begin() as connection:
            moved = self._apply(
                connection,
                [
                    Move(
                        h.key,
                        self.batch.name,
                        h.installation_id,
                        S.SUBMITTING,
                        S.STAGED,
                        reason=reason,
                    )
                    for h in held
                ],
            )
            detail = str(why)[:500] or outcome
            self._finish_attempts(connection, [(h.key, h.sends + 1, outcome, detail) for h in held])
            if day is not None:
                released = {m.idempotency_key for m in moved}
                refund(
                    connection,
                    day,
                    Counter(h.supplier or NO_SUPPLIER for h in held if h.key in released),
                )
        self.tally.released += len(moved)
        if outcome == UNANSWERED:
            self.tally.unanswered += len(moved)
        log.warning("commit.released", batch=self.batch.name, requests=len(moved), why=outcome)

    def _finish_attempts(
        self, connection: Connection, finished: Sequence[tuple[str, int, str, str]]
    ) -> None:
        """Each send's outcome and detail: (key, attempt, outcome, detail)."""
        at = driver_value(connection, attempts.c.finished_at, self.clock())
        execute_many(
            connection,
            "UPDATE attempts SET finished_at = ?, outcome = ?, detail = ?"
            " WHERE idempotency_key = ? AND attempt = ?",
            [(at, outcome, detail, key, n) for key, n, outcome, detail in finished],
        )

    def _record_receipts(self, held: Sequence[_Held], answered: _Answered) -> None:
        """The receipts, and the outcomes the DCC has decided already, in one transaction."""
        moves = []
        finished = []
        for h, answer in zip(held, answered.answers, strict=True):
            base = (h.key, self.batch.name, h.installation_id, S.SUBMITTING)
            if isinstance(answer, GatewayRejected):
                moves.append(Move(*base, S.FAILED, reason=DCC_REJECTED, retryable=False))
                finished.append((h.key, h.sends + 1, f"REJECTED {answer.status}",
                                 answer.message[:500]))  # fmt: skip
                self.tally.rejected += 1
            elif answer.status == "CONFLICT":
                moves.append(Move(*base, S.FAILED, reason=KEY_CONFLICT, retryable=False))
                finished.append((h.key, h.sends + 1, "CONFLICT", "held with another fingerprint"))
                self.tally.conflicts += 1
            else:
                moves.append(
                    Move(
                        *base,
                        S.ACCEPTED,
                        attempted=True,
                        dcc_attempt=answer.attempt,
                        worker=self.worker,
                    )
                )
                finished.append((h.key, h.sends + 1, answer.status, f"worker={self.worker}"))
                if answer.status == "DUPLICATE":
                    self.tally.duplicates += 1
                else:
                    self.tally.accepted += 1
        settled: tuple[list[Move], list[tuple[str, int, str, str]]] = ([], [])
        if answered.outcomes is not None:
            settled = self._outcome_moves(answered.accepted, answered.outcomes)
            # Keep asking at once while that settles at least half of a chunk.
            self._ask_at_once = len(settled[0]) * 2 >= len(answered.accepted)
        # A send's attempts row is written once: with its outcome, when that came too.
        outcome_of = {f[0]: f for f in settled[1]}
        finished = [outcome_of.get(f[0], f) for f in finished]
        with self.engine.begin() as connection:
            # Receipt and outcome of a request are one update of its row, two audit records.
            self._write_moves(connection, moves + settled[0], finished)

    # -- outcomes ---------------------------------------------------------------------------

    def _outcomes(self, waiting: Sequence[_Waiting]) -> list[Outcome] | None:
        """The DCC's outcomes for these requests, or None if it could not say (then they
        stay ACCEPTED and are polled again; a DCC that stays unavailable ends the run)."""
        try:
            return self._retrying(lambda: self.gateway.outcomes([w.key for w in waiting]))  # type: ignore[return-value]
        except GatewayUnavailable as error:
            self.unavailable = str(error)
        except Stopping:
            pass
        return None

    def _poll(self) -> bool:
        """Poll one page of the requests this worker holds in ACCEPTED, cycling through
        them, each cycle no sooner than the poll interval after the last; True if any
        request was settled."""
        if self._cursor == "":
            wait = self._cycle_started + self.options.poll_interval_s - time.monotonic()
            if wait > 0:
                return False
            self._cycle_started = time.monotonic()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    requests.c.idempotency_key,
                    requests.c.installation_id,
                    requests.c.attempts,
                    requests.c.sends,
                )
                .where(
                    requests.c.batch == self.batch.name,
                    requests.c.state == S.ACCEPTED.value,
                    requests.c.worker == self.worker,
                    requests.c.idempotency_key > self._cursor,
                )
                .order_by(requests.c.idempotency_key)
                .limit(self.options.poll_chunk)
            ).all()
        waiting = [_Waiting(*row) for row in rows]
        self._cursor = waiting[-1].key if len(waiting) == self.options.poll_chunk else ""
        if not waiting:
            return False
        outcomes = self._outcomes(waiting)
        if outcomes is None:
            return False
        moves, finished = self._outcome_moves(waiting, outcomes)
        if not moves:
            return False
        with self.engine.begin() as connection:
            self._write_moves(connection, moves, finished)
        return True

    def _outcome_moves(
        self, waiting: Sequence[_Waiting], outcomes: Sequence[Outcome]
    ) -> tuple[list[Move], list[tuple[str, int, str, str]]]:
        """The moves from ACCEPTED that the outcomes call for (PENDING ones: none), and what
        each send's attempts row should say."""
        moves: list[Move] = []
        finished: list[tuple[str, int, str, str]] = []
        for w, outcome in zip(waiting, outcomes, strict=True):
            base = (w.key, self.batch.name, w.installation_id)
            if outcome.state == "MIGRATED":
                moves.append(Move(*base, S.ACCEPTED, S.MIGRATED, reason=outcome.reason))
                finished.append((w.key, w.sends, "MIGRATED", outcome.reason or ""))
                self.tally.migrated += 1
            elif outcome.state == "FAILED":
                reason = outcome.reason or "FAILED"
                finished.append((w.key, w.sends, "FAILED", reason))
                curable = bool(outcome.retryable) or reason in CURABLE
                again = bool(outcome.retryable) and w.attempts < self.batch.max_attempts
                if curable and not again and w.attempts >= self.batch.max_attempts:
                    moves.append(
                        Move(*base, S.ACCEPTED, S.FAILED, reason=MAX_ATTEMPTS_EXCEEDED,
                             retryable=False)
                    )  # fmt: skip
                    self.tally.failed += 1
                elif again and self.options.requeue_failures:
                    moves.append(Move(*base, S.ACCEPTED, S.FAILED, reason=reason, retryable=True))
                    moves.append(Move(*base, S.FAILED, S.STAGED, reason=reason))
                    self.tally.requeued += 1
                else:
                    moves.append(Move(*base, S.ACCEPTED, S.FAILED, reason=reason, retryable=again))
                    self.tally.failed += 1
            elif outcome.state == "UNKNOWN":
                # We hold a receipt the DCC no longer stands behind: send it again.
                moves.append(Move(*base, S.ACCEPTED, S.STAGED, reason=UNKNOWN_AT_DCC))
                finished.append((w.key, w.sends, "UNKNOWN", UNKNOWN_AT_DCC))
                self.tally.unknown += 1
        return moves, finished

    def _write_moves(
        self,
        connection: Connection,
        moves: Sequence[Move],
        finished: Sequence[tuple[str, int, str, str]],
    ) -> None:
        """The moves still in place, and the attempts rows of the requests they moved."""
        if not moves:
            return
        applied = {m.idempotency_key for m in self._apply(connection, moves)}
        self._finish_attempts(connection, [f for f in finished if f[0] in applied])

    def _waiting_for_outcomes(self) -> bool:
        """Whether this worker holds ACCEPTED requests still worth polling."""
        since = self.clock() - dt.timedelta(seconds=self.options.outcome_wait_s)
        with self.engine.connect() as connection:
            found = connection.execute(
                select(requests.c.idempotency_key)
                .where(
                    requests.c.batch == self.batch.name,
                    requests.c.state == S.ACCEPTED.value,
                    requests.c.worker == self.worker,
                    requests.c.updated_at >= since,
                )
                .limit(1)
            ).first()
        return found is not None


def _load_batch(engine: Engine, name: str, options: CommitOptions, cohorts_dir: object) -> _Batch:
    """The batch and the limits it was planned with (capacity, attempts), or a clear
    refusal. A batch staged before the store kept its limits goes by the cohort file."""
    from migrate.cohort.loader import load_cohort

    with engine.connect() as connection:
        row = connection.execute(
            select(
                batches.c.cohort,
                batches.c.plan_sha256,
                batches.c.capacity_per_day,
                batches.c.max_attempts,
            ).where(batches.c.name == name)
        ).first()
    if row is None:
        raise ConfigError(None, f"no batch {name!r} in the store: stage a plan first", key="batch")
    capacity, attempts = row.capacity_per_day, row.max_attempts
    if capacity is None or attempts is None:
        rules = load_cohort(row.cohort, cohorts_dir)  # type: ignore[arg-type]
        capacity, attempts = rules.capacity_per_supplier_per_day, rules.max_attempts
    return _Batch(
        name=name,
        capacity=options.capacity_per_day or capacity,
        max_attempts=options.max_attempts or attempts,
        inputs={"batch": name, "plan": row.plan_sha256},
    )


def states_of(engine: Engine, batch: str) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            state: int(count)
            for state, count in connection.execute(
                select(requests.c.state, func.count())
                .where(requests.c.batch == batch)
                .group_by(requests.c.state)
            )
        }


def _waiting_for_capacity(engine: Engine, batch: _Batch, day: dt.date) -> int:
    with engine.connect() as connection:
        blocked = spent(connection, day, batch.capacity)
        if not blocked:
            return 0
        return int(
            connection.execute(
                select(func.count()).where(
                    requests.c.batch == batch.name,
                    requests.c.state == S.STAGED.value,
                    func.coalesce(requests.c.supplier_mpid, NO_SUPPLIER).in_(blocked),
                )
            ).scalar_one()
        )


def commit(
    engine: Engine,
    batch: str,
    gateways: Callable[[], Gateway],
    *,
    options: CommitOptions,
    actor: str,
    key: bytes | None,
    gateway_name: str,
    stop: threading.Event | None = None,
    on_progress: Callable[[CommitProgress], None] | None = None,
    clock: Callable[[], dt.datetime] = _now,
    cohorts_dir: object = None,
) -> CommitResult:
    """Commit a staged batch with `options.workers` workers, each with a gateway from
    `gateways`, until nothing is left to send or wait for, the DCC stays unavailable, or
    `stop` is set (then claimed requests not yet sent are released to STAGED and the rest
    is left for the next run to finish)."""
    from migrate.store.engine import require_current

    require_current(engine)
    if options.workers > 1 and engine.dialect.name != "postgresql":
        raise ConfigError(
            None,
            f"SQLite serves one commit worker, not {options.workers}: use PostgreSQL "
            "(--db postgresql://...) for several",
            key="workers",
        )
    loaded = _load_batch(engine, batch, options, cohorts_dir)
    loaded.inputs["gateway"] = gateway_name
    with engine.connect() as connection:
        audit_log.require_matching_key(connection, key)
    stop = stop or threading.Event()
    started = time.monotonic()
    sent = Counter[str]()
    lock = threading.Lock()

    def count_sent(n: int) -> None:
        with lock:
            sent["sent"] += n

    workers = []
    for index in range(options.workers):
        workers.append(
            _Worker(
                engine,
                loaded,
                gateways(),
                options,
                index=index,
                actor=actor,
                key=key,
                stop=stop,
                clock=clock,
                on_sent=count_sent,
            )
        )
    errors: list[BaseException] = []

    def run(worker: _Worker) -> None:
        try:
            worker.run()
        except BaseException as error:
            errors.append(error)
            stop.set()
        finally:
            worker.gateway.close()

    threads = [
        threading.Thread(target=run, args=(w,), name=f"commit-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    # Progress only once every worker holds its lease: a refused run shows no one else's.
    for worker, thread in zip(workers, threads, strict=True):
        while thread.is_alive() and not worker.ready.wait(0.05):
            pass
    done = threading.Event()

    def report() -> None:
        if on_progress is None or errors:
            return
        # A snapshot reader: on SQLite, progress must not take the workers' write lock.
        with reader(engine) as snapshot:
            while True:
                finished = done.wait(options.progress_interval_s)
                with lock:
                    count = sent["sent"]
                states = states_of(snapshot, batch)
                on_progress(CommitProgress(batch, states, count, time.monotonic() - started))
                if finished:
                    return

    reporter = threading.Thread(target=report, name="commit-progress", daemon=True)
    reporter.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    finally:
        stopped_by_caller = stop.is_set() and not errors
        stop.set()
        for thread in threads:
            thread.join()
        done.set()
        reporter.join()
    if errors:
        raise errors[0]
    tally = Tally()
    for worker in workers:
        tally.add(worker.tally)
    unavailable = next((w.unavailable for w in workers if w.unavailable), None)
    with engine.connect() as connection:
        head = audit_log.head(connection) or (0, GENESIS)
    return CommitResult(
        batch=batch,
        workers=options.workers,
        tally=tally,
        states=states_of(engine, batch),
        waiting_for_capacity=_waiting_for_capacity(engine, loaded, capacity_day(clock())),
        stopped=stopped_by_caller,
        unavailable=unavailable,
        dcc_capacity_spent=any(w.dcc_capacity_spent for w in workers),
        elapsed_s=time.monotonic() - started,
        audit_records=head[0],
        audit_head_hash=head[1],
    )
