"""export_inventory: the DCC simulator's inventory through the HTTP gateway into a JSON Lines
file that the dcc_inventory mapping reads; whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import simulator_thread

from migrate.commit import GatewayUnavailable, HttpGateway, Submission
from migrate.ingest import ingest
from migrate.reconcile import export_inventory

DEVICES = [
    ["00-1B-C5-00-00-00-00-01", "CHF", "LG", "CH1", "3.0.2", None, None],
    ["00-1B-C5-00-00-00-00-02", "ESME", "LG", "E470", "2.1.4", "S1", "1312345678907"],
    ["00-1B-C5-00-00-00-00-03", "GSME", "LG", "G470", "1.1.0", "G1", "1234567"],
]


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    with simulator_thread(tmp_path / "dcc", gt01_rate=1.0) as url:
        yield url


def test_the_inventory_is_written_and_reads_through_its_mapping(
    simulator: str, tmp_path: Path
) -> None:
    with HttpGateway(simulator) as gateway:
        gateway.submit(
            [
                Submission(
                    f"key-{n}",
                    "fp",
                    f"IOC-{n}",
                    "SUPA",
                    {"cohort": "ioc", "installation_id": f"IOC-{n}", "devices": DEVICES},
                )
                for n in range(2)
            ]
        )
        gateway.outcomes(["key-0", "key-1"])
        path = tmp_path / "out" / "inventory.ndjson"
        assert export_inventory(gateway, path) == 6
    read = ingest([path], "dcc_inventory")
    assert read.summary.rows_accepted == 6 and read.summary.rows_quarantined == 0
    statuses = dict(
        zip(
            read.devices.column("device_type").to_pylist()[:3],
            read.devices.column("smi_status").to_pylist()[:3],
            strict=True,
        )
    )
    assert statuses == {
        "CHF": "Commissioned",
        "ESME": "Commissioned",
        "GSME": "InstalledNotCommissioned",  # the gas side after GT01
    }
    assert not list(path.parent.glob(".*"))


class _Failing:
    """A gateway whose inventory read fails after two devices."""

    def inventory(self) -> Iterator[dict[str, Any]]:
        yield {"device_id": "A", "installation_id": "I"}
        yield {"device_id": "B", "installation_id": "I"}
        raise GatewayUnavailable("dropped")


def test_a_read_that_fails_midway_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.ndjson"
    path.write_text("the previous export\n")
    with pytest.raises(GatewayUnavailable):
        export_inventory(_Failing(), path)  # type: ignore[arg-type]
    assert path.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.ndjson"]
