"""Nothing lost, whatever the file holds: a property test over hostile extracts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.ingest import ingest
from migrate.installations import DeviceLinks

HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
GOOD = [
    "LG{n};Comms Hub;70-b3-d5-00-00-00-{n:02x}-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "01/02/2016;LOND;Live;",
    "LG{n};Electricity Meter;70-b3-d5-00-00-00-{n:02x}-02;Landis+Gyr;E470-S1;V2.1.4;"
    "L16KA992700;1312345678907;01/02/2016;LOND;Live;",
]
BAD = [
    "LG{n};Smart Plug;70-b3-d5-00-00-00-{n:02x}-03;Landis+Gyr;X;V1.0;;;01/02/2016;LOND;Live;",
    "LG{n};Comms Hub;70-b3-d5-00-00;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;01/02/2016;LOND;Live;",
    "LG{n};Electricity Meter;70-b3-d5-00-00-00-{n:02x}-04;Landis+Gyr;E470-S1;V2.1.4;;"
    "1.31234567891E+12;01/02/2016;LOND;Live;",
    "LG{n};Comms Hub;70-b3-d5-00-00-00-{n:02x}-05;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "31/02/2016;LOND;Live;",
    "LG{n};Comms Hub;70-b3-d5-00-00-00-{n:02x}-06;Landis+Gyr;LG-CH1;V3.1.0;;;01/02/2016;"
    "LOND;Live;;extra",
    "LG{n};Comms Hub",
]
LINE = st.one_of(
    st.tuples(st.just("good"), st.sampled_from(GOOD), st.integers(0, 40)),
    st.tuples(st.just("bad"), st.sampled_from(BAD), st.integers(0, 40)),
    st.just(("blank", "", 0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=60), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_every_row_is_accepted_quarantined_or_a_named_duplicate(
    lines: list[tuple[str, str, int]], newline: str, repeat_some: bool
) -> None:
    texts = [template.format(n=n) for _, template, n in lines]
    if repeat_some and texts:
        texts = texts + texts[: len(texts) // 3]  # exact duplicates, later in the file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        path.write_bytes((newline.join([HEADER, *texts]) + newline).encode("cp1252"))
        result = ingest([path], "landis_ioc_devices")
    summary = result.summary
    data_rows = [t for t in texts if t.strip()]
    assert summary.rows_read == len(data_rows)
    assert summary.balanced
    assert summary.blank_rows == len(texts) - len(data_rows)
    bad = {template.format(n=n) for kind, template, n in lines if kind == "bad"}
    seen: set[str] = set()
    expected = {"accepted": set(), "quarantined": set(), "duplicate": set()}
    for index, text in enumerate(texts):
        line = index + 2  # the header is line 1
        if not text.strip():
            continue
        if text in seen:
            expected["duplicate"].add(line)
        else:
            expected["quarantined" if text in bad else "accepted"].add(line)
        seen.add(text)
    assert {q["source_row"] for q in result.quarantine.to_pylist()} == expected["quarantined"]
    assert set(result.devices.column("source_row").to_pylist()) == expected["accepted"]
    duplicates = result.duplicates.to_pylist()
    assert {d["source_row"] for d in duplicates} == expected["duplicate"]
    for duplicate in duplicates:  # each names the earlier line it repeats
        assert texts[duplicate["source_row"] - 2] == texts[duplicate["duplicate_of_row"] - 2]
        assert duplicate["duplicate_of_row"] < duplicate["source_row"]
    # What the ingest hands validation about its devices is what the tables alone say.
    found = DeviceLinks.find(result.installations, result.devices)
    assert np.array_equal(result.device_links.installation, found.installation)
    assert np.array_equal(result.device_links.repeated, found.repeated)
