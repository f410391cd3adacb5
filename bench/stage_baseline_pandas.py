"""Staging as an analyst would write it in pandas without this toolkit: the baseline for
bench/stage.py.

    python bench/stage_baseline_pandas.py PLAN.json DATABASE_URL

Loads the plan JSON, builds the rows of installations, devices and requests exactly as
migrate/store/staging.py builds them (same columns, same values, the payload as the same
canonical JSON), puts each list in a pandas DataFrame and writes it with
`DataFrame.to_sql(name, engine, if_exists="append", index=False)`, every other setting left at
its default. The tables must exist (`migrate db upgrade`), so both tools write into the same
schema. The batch row goes first, written the same way, because PostgreSQL enforces the
foreign keys to it.

It does not import `migrate`: it is the script written instead of the toolkit, so it checks no
input hashes, keeps no audit log and is not idempotent. The last line on stdout is its counts
as one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine

# The column lists of migrate/store/staging.py, repeated so that this script stands alone.
INSTALLATION_COLUMNS = [
    "batch", "installation_id", "supplier_mpid", "smso", "mode", "mpan_core", "mprn",
    "combination", "planned_date",
]  # fmt: skip
DEVICE_COLUMNS = [
    "batch", "installation_id", "device_id", "device_type", "manufacturer", "model",
    "firmware_version", "msn", "mpxn",
]  # fmt: skip
REQUEST_COLUMNS = [
    "idempotency_key", "fingerprint", "batch", "cohort", "installation_id", "supplier_mpid",
    "state", "reason", "attempts", "planned_date", "payload", "updated_at",
]  # fmt: skip


def sha256(path: Path) -> str:
    """The plan's digest: `migrate stage` names the batch after it, so must we."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def frames(
    plan: dict[str, Any], batch: str, at: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The eligible entries as the three tables' rows, as migrate/store/staging.py's _rows."""
    fields = plan["device_fields"]
    cohort = plan["cohort"]["name"]
    installations, devices, requests = [], [], []
    for entry in plan["eligible"]:
        payload = entry["payload"]
        planned = dt.date.fromisoformat(entry["date"])
        installation = payload["installation_id"]
        installations.append(
            (
                batch, installation, payload["supplier_mpid"], payload["smso"], payload["mode"],
                payload["mpan_core"], payload["mprn"], payload["combination"], planned,
            )
        )  # fmt: skip
        for device in payload["devices"]:
            values = dict(zip(fields, device, strict=True))
            devices.append((batch, installation, *(values[c] for c in DEVICE_COLUMNS[2:])))
        requests.append(
            (
                entry["idempotency_key"], entry["fingerprint"], batch, cohort, installation,
                payload["supplier_mpid"], "STAGED", None, 0, planned,
                json.dumps(payload, sort_keys=True, separators=(",", ":")), at,
            )
        )  # fmt: skip
    return (
        pd.DataFrame.from_records(installations, columns=INSTALLATION_COLUMNS),
        pd.DataFrame.from_records(devices, columns=DEVICE_COLUMNS),
        pd.DataFrame.from_records(requests, columns=REQUEST_COLUMNS),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", type=Path)
    parser.add_argument("url")
    args = parser.parse_args()

    plan_sha = sha256(args.plan)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    cohort = plan["cohort"]["name"]
    batch = f"{cohort}-{plan_sha[:12]}"
    at = dt.datetime.now(dt.UTC)
    installations, devices, requests = frames(plan, batch, at)
    inputs = {r["path"]: r["sha256"] for r in [plan["cohort"], plan["mapping"], *plan["extracts"]]}
    del plan
    batches = pd.DataFrame(
        [
            {
                "name": batch,
                "cohort": cohort,
                "plan_sha256": plan_sha,
                "plan_path": str(args.plan),
                "inputs": json.dumps(inputs, sort_keys=True),
                "created_at": at,
                "created_by": "baseline",
            }
        ]
    )

    engine = create_engine(args.url)
    written = {}
    for name, frame in (
        ("batches", batches),
        ("installations", installations),
        ("devices", devices),
        ("requests", requests),
    ):
        frame.to_sql(name, engine, if_exists="append", index=False)
        written[name] = len(frame)
    engine.dispose()
    print(json.dumps({"batch": batch, **written}, sort_keys=True))


if __name__ == "__main__":
    main()
