"""The state a cohort leaves behind, for bench/reconcile.py: a staged batch's requests moved
through the commit states as the commit engine moves them (audited, with apply_moves), and
the DCC inventory the simulator would export after it, with discrepancies planted.

    python bench/reconcile_setup.py PLAN STORE_URL BATCH INVENTORY [--seed 0]

Prints one JSON line: what was planted per category, so that the reconciliation's counts can
be checked against it. Deterministic for a given plan and seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
from sqlalchemy import bindparam, update

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from migrate.model import PAYLOAD_DEVICE_FIELDS  # noqa: E402
from migrate.plan_reader import read_eligible  # noqa: E402
from migrate.store.engine import make_engine  # noqa: E402
from migrate.store.moves import Move, apply_moves  # noqa: E402
from migrate.store.schema import requests  # noqa: E402
from migrate.store.states import RequestState  # noqa: E402

S = RequestState
CHUNK = 50_000
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
# Request outcomes, as shares of the batch (the rest is MIGRATED).
OUTCOMES = (
    ("WITHDRAWN", 0.002),
    ("AWAITING_COMMIT", 0.010),
    ("IN_FLIGHT", 0.005),
    ("STUCK_SUBMITTING", 0.003),
    ("STUCK_ACCEPTED", 0.005),
    ("FAILED_RETRYABLE", 0.030),
    ("FAILED_PERMANENT", 0.020),
)
GT01_SHARE = 0.02
# Inventory discrepancies, as shares of the migrated installations (each gets at most one).
PLANTS = (
    ("MISSING_FROM_INVENTORY", 0.003),
    ("FIRMWARE_DIFFERS", 0.003),
    ("DEVICE_MISSING", 0.002),
    ("DEVICE_EXTRA", 0.001),
    ("SUSPENDED", 0.001),
)
NOT_REQUESTED = 200


def _pick(rng: np.random.Generator, n: int, shares: tuple[tuple[str, float], ...]) -> np.ndarray:
    """A label per item ("" for the rest), drawn with the given shares."""
    draws = rng.random(n)
    labels = np.full(n, "", dtype=object)
    edge = 0.0
    for label, share in shares:
        labels[(draws >= edge) & (draws < edge + share)] = label
        edge += share
    return labels


def _move(engine, moves: list[Move], command: str) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(moves), CHUNK):
        with engine.begin() as connection:
            apply_moves(
                connection,
                moves[start : start + CHUNK],
                actor="bench",
                command=command,
                inputs={},
                key=None,
            )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("plan", type=Path)
    parser.add_argument("url")
    parser.add_argument("batch")
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    entries = read_eligible(args.plan)
    keys = entries.column("idempotency_key").to_pylist()
    payloads = entries.column("payload").to_pylist()
    ids = [payload["installation_id"] for payload in payloads]
    rng = np.random.default_rng(args.seed)
    outcome = _pick(rng, len(ids), OUTCOMES)
    gt01 = (outcome == "") & (rng.random(len(ids)) < GT01_SHARE)
    plant = np.where((outcome == "") & ~gt01, _pick(rng, len(ids), PLANTS), "")

    engine = make_engine(args.url)
    sent = [i for i, label in enumerate(outcome) if label not in ("WITHDRAWN", "AWAITING_COMMIT")]
    accepted = [i for i in sent if outcome[i] != "STUCK_SUBMITTING"]
    decided = [i for i in accepted if outcome[i] not in ("IN_FLIGHT", "STUCK_ACCEPTED")]

    def move(i: int, source: RequestState, target: RequestState, **kw: object) -> Move:
        return Move(keys[i], args.batch, ids[i], source, target, **kw)  # type: ignore[arg-type]

    withdrawn = [i for i, label in enumerate(outcome) if label == "WITHDRAWN"]
    _move(engine, [move(i, S.STAGED, S.WITHDRAWN) for i in withdrawn], "withdraw")
    _move(
        engine,
        [move(i, S.STAGED, S.SUBMITTING, attempted=True, worker="w1") for i in sent],
        "commit",
    )
    _move(engine, [move(i, S.SUBMITTING, S.ACCEPTED, worker="w1") for i in accepted], "commit")
    finals = []
    for i in decided:
        if outcome[i] == "FAILED_RETRYABLE":
            finals.append(
                move(i, S.ACCEPTED, S.FAILED, reason="NO_WAN_DURING_MIGRATION", retryable=True)
            )
        elif outcome[i] == "FAILED_PERMANENT":
            finals.append(
                move(i, S.ACCEPTED, S.FAILED, reason="MISSING_MASTER_KEYS", retryable=False)
            )
        else:
            reason = "GAS_HAN_ERROR_GT01" if gt01[i] else None
            finals.append(move(i, S.ACCEPTED, S.MIGRATED, reason=reason))
    _move(engine, finals, "commit")
    stuck = [keys[i] for i, label in enumerate(outcome) if label.startswith("STUCK")]
    with engine.begin() as connection:  # time passes: the stuck ones were last moved long ago
        connection.execute(
            update(requests)
            .where(requests.c.idempotency_key == bindparam("k"))
            .values(updated_at=bindparam("at")),
            [{"k": key, "at": LONG_AGO} for key in stuck],
        )
    engine.dispose()

    not_commissioned = 0
    with args.inventory.open("w", encoding="utf-8") as handle:
        for i in decided:
            if outcome[i] != "" or plant[i] == "MISSING_FROM_INVENTORY":
                continue
            payload = payloads[i]
            devices = [dict(zip(PAYLOAD_DEVICE_FIELDS, d, strict=True)) for d in payload["devices"]]
            if plant[i] == "DEVICE_MISSING" and len(devices) > 1:
                devices.pop()
            if plant[i] == "DEVICE_EXTRA":
                extra = f"FFFF{i:012X}"
                device_id = "-".join(extra[k : k + 2] for k in range(0, 16, 2))
                devices.append({**devices[0], "device_id": device_id, "device_type": "IHD"})
            if plant[i] == "FIRMWARE_DIFFERS":
                devices[0] = {**devices[0], "firmware_version": "9.9.9"}
            gas = any(d["device_type"] == "GSME" for d in devices)
            not_commissioned += bool((gt01[i] and gas) or plant[i] == "SUSPENDED")
            for device in devices:
                status = "Commissioned"
                if gt01[i] and device["device_type"] == "GSME":
                    status = "InstalledNotCommissioned"
                if plant[i] == "SUSPENDED":
                    status = "Suspended"
                line = {
                    "device_id": device["device_id"],
                    "device_type": device["device_type"],
                    "manufacturer": device["manufacturer"],
                    "model": device["model"],
                    "firmware_version": device["firmware_version"],
                    "installation_id": payload["installation_id"],
                    "status": status,
                }
                handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        for n in range(NOT_REQUESTED):
            line = {
                "device_id": f"FE-FE-00-00-00-00-{n // 256:02X}-{n % 256:02X}",
                "device_type": "CHF",
                "manufacturer": "Landis+Gyr",
                "model": "LG-CH1",
                "firmware_version": "3.0.2",
                "installation_id": f"NOT-REQUESTED-{n:06d}",
                "status": "Commissioned",
            }
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")

    counts = {label: int(np.count_nonzero(outcome == label)) for label, _ in OUTCOMES}
    planted = {label: int(np.count_nonzero(plant == label)) for label, _ in PLANTS}
    print(
        json.dumps(
            {
                "requests": len(ids),
                "outcomes": counts,
                "gt01": int(np.count_nonzero(gt01)),
                "planted": planted,
                "not_commissioned": not_commissioned,
                "not_requested": NOT_REQUESTED,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
