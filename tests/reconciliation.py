"""For the reconciliation tests (tests/reconcile): a staged batch of the Secure MOC sample
whose requests a test moves as a cohort would have, and the DCC inventory it writes."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from migrate.plan import make_plan
from migrate.reconcile import ReconciliationResult, reconcile
from migrate.store.schema import devices, requests
from migrate.store.staging import stage

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
LONG_AGO = NOW - dt.timedelta(hours=5)
# An inventory mapping that also reads the MPxN (the simulator's export has none).
MPXN_MAPPING = """\
version: 1
name: inventory_with_mpxn
source: {format: ndjson}
layout: long
installation: {key: installation_id}
device:
  fields:
    device_id: {column: device_id}
    device_type: {column: device_type}
    firmware_version: {column: firmware_version, required: false}
    mpxn: {column: mpxn}
    smi_status: {column: status}
"""


class Cohort:
    """Batch b1 staged from the sample; states set as a test needs, inventory written from
    what the store holds (MIGRATED installations, as the simulator lists them)."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine = engine
        self.folder = folder
        self.mappings = folder / "mappings"
        self.mappings.mkdir()
        (self.mappings / "inventory_with_mpxn.yaml").write_text(MPXN_MAPPING)

    def ids(self) -> list[str]:
        with self.engine.connect() as connection:
            query = select(requests.c.installation_id).where(requests.c.batch == "b1")
            return sorted(connection.execute(query).scalars())

    def devices(self, installation: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            query = (
                select(devices)
                .where(devices.c.batch == "b1")
                .where(devices.c.installation_id == installation)
                .order_by(devices.c.device_type, devices.c.device_id)
            )
            return [dict(row._mapping) for row in connection.execute(query)]

    def set(self, ids: list[str], state: str, **values: object) -> None:
        """Requests of these installations in `state` (last moved LONG_AGO unless given)."""
        values.setdefault("updated_at", LONG_AGO)
        with self.engine.begin() as connection:
            connection.execute(
                update(requests)
                .where(requests.c.installation_id.in_(ids))
                .values(state=state, **values)
            )

    def inventory_lines(self, ids: list[str], status: str = "Commissioned") -> list[dict[str, Any]]:
        return [
            {
                "device_id": d["device_id"],
                "device_type": d["device_type"],
                "manufacturer": d["manufacturer"],
                "model": d["model"],
                "firmware_version": d["firmware_version"],
                "installation_id": installation,
                "mpxn": d["mpxn"],
                "status": status,
            }
            for installation in ids
            for d in self.devices(installation)
        ]

    def write_inventory(self, lines: list[dict[str, Any]], name: str = "inventory.ndjson") -> Path:
        path = self.folder / name
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        return path

    def reconcile(self, inventory: Path, **options: Any) -> ReconciliationResult:
        options.setdefault("out", self.folder / "out")
        options.setdefault("now", NOW)
        options.setdefault("actor", "auditor")
        options.setdefault("key", None)
        options.setdefault("mappings_dir", self.mappings)
        return reconcile(self.engine, "b1", inventory=inventory, **options)

    def stage_other_batch(self, count: int) -> list[str]:
        """A second batch, b2, of `count` installations the sample does not have."""
        source = REPO / "examples" / "secure_moc_installations.csv"
        with source.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        chosen = [r for r in rows if r["OPERATING_MODE"] == "Smart"][:count]
        for row in chosen:
            row["INSTALLATION_REF"] = row["INSTALLATION_REF"].replace("SEC", "OTH")
        extract = self.folder / "other.csv"
        with extract.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(chosen)
        plan = self.folder / "other-plan.json"
        make_plan([extract], "secure_moc_installations", "moc").write(plan)
        stage(self.engine, plan, batch="b2", actor="tester", key=None)
        with self.engine.connect() as connection:
            query = select(requests.c.installation_id).where(requests.c.batch == "b2")
            return sorted(connection.execute(query).scalars())
