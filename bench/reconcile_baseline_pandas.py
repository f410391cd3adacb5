"""The reconciliation an analyst would write in pandas without this toolkit: the baseline for
bench/reconcile.py.

    python bench/reconcile_baseline_pandas.py STORE_URL BATCH PLAN INVENTORY EXTRACT OUT_DIR

Reads the batch's requests and devices (`pandas.read_sql`), the DCC inventory
(`read_json(lines=True)`), the Landis+Gyr extract (`read_csv`, cp1252, `;`, every column a
string; EUIs and firmware normalised with string methods) and the plan's excluded list
(`json.load`); outer-merges the three sides on installation and device; puts each
installation in the toolkit's categories with `numpy.select`; checks the audit chain as
migrate/audit/chain.py documents it (each record's canonical JSON, SHA-256 over the previous
hash and it), record by record; writes the installations and the differing devices as CSV.
The last line on stdout is its counts as one JSON object, with its phases' times.

It does not import `migrate`: it is the script written instead of the toolkit. It compares
no MPxN (the simulator's inventory has none), reads no mapping and writes no HTML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine

DEVICE_TYPES = {
    "Comms Hub": "CHF",
    "Electricity Meter": "ESME",
    "Gas Meter": "GSME",
    "In Home Display": "IHD",
    "Prepayment Interface": "PPMID",
}
STUCK_AFTER = dt.timedelta(hours=1)


def excluded(plan: Path) -> pd.DataFrame:
    document = json.loads(plan.read_text(encoding="utf-8"))
    return pd.DataFrame(
        {"installation_id": [e["installation_id"] for e in document["excluded"]], "excluded": True}
    )


def extract_devices(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep=";", encoding="cp1252", dtype=str, on_bad_lines="skip")
    eui = df["Device EUI"].str.replace("-", "", regex=False).str.upper()
    return pd.DataFrame(
        {
            "installation_id": df["Site ID"].str.strip(),
            "device_id": eui.str.findall("..").str.join("-"),
            "extract_firmware": df["Firmware"].str.strip().str.removeprefix("V"),
            "extract_type": df["Device Type"].map(DEVICE_TYPES),
        }
    ).drop_duplicates(["installation_id", "device_id"])


def verify_audit(engine) -> tuple[bool, int]:  # type: ignore[no-untyped-def]
    """Each record's hash over the previous hash and its canonical JSON (chain.py's format)."""
    log = pd.read_sql("SELECT * FROM audit ORDER BY seq", engine)
    log = log.astype(object).where(log.notna(), None)  # NULL is null, not NaN
    previous = "0" * 64
    for row in log.itertuples(index=False):
        record = row._asdict()
        record["inputs"] = json.loads(record["inputs"])
        stored = record.pop("hash")
        del record["mac"]
        if record["prev_hash"] != previous:
            return False, len(log)
        content = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(bytes.fromhex(previous) + content.encode()).hexdigest()
        if digest != stored:
            return False, len(log)
        previous = stored
    return True, len(log)


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("url", "batch", "plan", "inventory", "extract", "out"):
        parser.add_argument(name)
    args = parser.parse_args()
    times: dict[str, float] = {}
    started = time.perf_counter()
    engine = create_engine(args.url)
    requests = pd.read_sql(
        "SELECT installation_id, state, reason, retryable, updated_at FROM requests "
        "WHERE batch = %(batch)s"
        if engine.dialect.name == "postgresql"
        else "SELECT installation_id, state, reason, retryable, updated_at FROM requests "
        "WHERE batch = :batch",
        engine,
        params={"batch": args.batch},
    )
    store = pd.read_sql(
        "SELECT installation_id, device_id, device_type, firmware_version AS store_firmware "
        "FROM devices WHERE batch = %(batch)s"
        if engine.dialect.name == "postgresql"
        else "SELECT installation_id, device_id, device_type, firmware_version AS store_firmware "
        "FROM devices WHERE batch = :batch",
        engine,
        params={"batch": args.batch},
    )
    dcc = pd.read_json(args.inventory, lines=True, dtype=False).rename(
        columns={"firmware_version": "dcc_firmware", "status": "dcc_status"}
    )
    dcc = dcc[["installation_id", "device_id", "dcc_firmware", "dcc_status"]]
    supplier = extract_devices(Path(args.extract))
    left_out = excluded(Path(args.plan))
    times["read_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    batch_ids = set(requests["installation_id"])
    sides = store.assign(on_store=True).merge(
        dcc.assign(on_dcc=True), on=["installation_id", "device_id"], how="outer"
    )
    sides = sides.merge(
        supplier[supplier["installation_id"].isin(batch_ids)].assign(on_extract=True),
        on=["installation_id", "device_id"],
        how="outer",
    )
    sides = sides[sides["installation_id"].isin(batch_ids)]
    for flag in ("on_store", "on_dcc", "on_extract"):
        sides[flag] = sides[flag].eq(True)
    listed = set(dcc["installation_id"])
    sides["listed"] = sides["installation_id"].isin(listed)
    sides["set_differs"] = (sides["listed"] & (sides["on_store"] != sides["on_dcc"])) | (
        sides["on_store"] != sides["on_extract"]
    )
    bears = ~sides["device_type"].isin(["IHD", "CAD"])
    sides["firmware_differs"] = bears & (
        (sides["on_dcc"] & sides["on_store"] & (sides["store_firmware"] != sides["dcc_firmware"]))
        | (
            sides["on_extract"]
            & sides["on_store"]
            & (sides["store_firmware"] != sides["extract_firmware"])
        )
    )
    sides["not_commissioned"] = sides["on_dcc"] & (sides["dcc_status"] != "Commissioned")
    flags = sides.groupby("installation_id")[
        ["set_differs", "firmware_differs", "not_commissioned"]
    ].any()

    everyone = pd.DataFrame(
        {"installation_id": sorted(batch_ids | listed | set(left_out["installation_id"]))}
    )
    table = everyone.merge(requests, on="installation_id", how="left")
    table = table.merge(flags, left_on="installation_id", right_index=True, how="left")
    table = table.merge(left_out, on="installation_id", how="left")
    for name in ("set_differs", "firmware_differs", "not_commissioned", "excluded"):
        table[name] = table[name].eq(True)
    table["listed"] = table["installation_id"].isin(listed)
    updated = pd.to_datetime(table["updated_at"], utc=True, format="mixed")
    old = updated < pd.Timestamp(dt.datetime.now(dt.UTC) - STUCK_AFTER)
    in_batch = table["installation_id"].isin(batch_ids)
    state = table["state"]
    migrated = in_batch & (state == "MIGRATED")
    waiting = in_batch & state.isin(["SUBMITTING", "ACCEPTED"])
    failed = in_batch & (state == "FAILED")
    table["category"] = np.select(
        [
            migrated & ~table["listed"],
            migrated & table["set_differs"],
            migrated & table["not_commissioned"],
            migrated & table["firmware_differs"],
            migrated,
            waiting & old,
            waiting,
            failed & table["retryable"].eq(True),
            failed,
            in_batch & (state == "STAGED"),
            in_batch & (state == "WITHDRAWN"),
            table["listed"],
            table["excluded"],
        ],
        [
            "MISSING_FROM_INVENTORY",
            "DEVICE_SET_DIFFERS",
            "NOT_COMMISSIONED",
            "FIRMWARE_DIFFERS",
            "MIGRATED_MATCHING",
            "STUCK",
            "IN_FLIGHT",
            "FAILED_RETRYABLE",
            "FAILED_PERMANENT",
            "AWAITING_COMMIT",
            "WITHDRAWN",
            "NOT_REQUESTED",
            "EXCLUDED",
        ],
        default="UNPLACED",
    )
    times["compare_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    verified, records = verify_audit(engine)
    times["audit_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.drop(columns=["updated_at"]).to_csv(out / "installations.csv", index=False)
    differing = sides[sides[["set_differs", "firmware_differs", "not_commissioned"]].any(axis=1)]
    differing.to_csv(out / "devices.csv", index=False)
    times["write_s"] = time.perf_counter() - mark
    counts = table["category"].value_counts().sort_index().to_dict()
    print(
        json.dumps(
            {
                "installations": len(table),
                "by_category": {k: int(v) for k, v in counts.items()},
                "audit_verified": verified,
                "audit_records": records,
                **{k: round(v, 3) for k, v in times.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
