"""Field transforms: strict dates, firmware canonicalisation, value maps, required fields."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.mapping import fields as fields_module
from migrate.mapping.fields import (
    apply_field,
    canonical_firmware,
    days_since_epoch,
    map_values,
    parse_dates,
)
from migrate.mapping.spec import FieldSpec, FirmwareSpec


def _dates(values: list[str | None], formats: list[str]) -> tuple[list, list]:
    dates, reasons = parse_dates(pa.array(values, pa.string()), formats)
    return dates.to_pylist(), reasons.to_pylist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dates(dt.date(1990, 1, 1), dt.date(2099, 12, 31)), min_size=1, max_size=40),
    st.sampled_from(["%d/%m/%Y", "%Y-%m-%d", "%Y%m%d", "%m/%d/%Y %H:%M"]),
)
def test_every_real_date_round_trips_in_each_format(days: list[dt.date], fmt: str) -> None:
    written = [day.strftime(fmt) for day in days]
    assert _dates(written, [fmt]) == (days, [None] * len(days))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("31/02/2016", "INVALID_DATE"),
        ("29/02/2015", "INVALID_DATE"),
        ("00/01/2016", "INVALID_DATE"),
        ("12/13/2016", "INVALID_DATE"),
        ("12/05/17", "INVALID_DATE"),
        ("2016-05-12", "INVALID_DATE"),
        ("not known", "INVALID_DATE"),
        ("12/05/1899", "IMPLAUSIBLE_DATE"),
        ("12/05/2150", "IMPLAUSIBLE_DATE"),
    ],
)
def test_impossible_and_implausible_dates_are_refused(text: str, reason: str) -> None:
    assert _dates([text], ["%d/%m/%Y"]) == ([None], [reason])


def test_unpadded_dates_leap_days_and_several_formats() -> None:
    values = ["1/2/2016", "29/02/2016", "2016-03-04", None, "01/02/2016 10:61"]
    dates, reasons = _dates(values, ["%d/%m/%Y", "%Y-%m-%d", "%d/%m/%Y %H:%M"])
    assert dates == [dt.date(2016, 2, 1), dt.date(2016, 2, 29), dt.date(2016, 3, 4), None, None]
    assert reasons == [None, None, None, None, "INVALID_DATE"]


def _unpadded(fmt: str, moment: dt.datetime) -> str:
    """The moment written in `fmt` without zero padding, as some suppliers write it."""
    parts = {"Y": moment.year, "m": moment.month, "d": moment.day, "H": moment.hour}
    parts.update(M=moment.minute, S=moment.second)
    return re.sub(r"%(.)", lambda found: str(parts[found.group(1)]), fmt)


MOMENTS = st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2099, 12, 31, 23, 59, 59))


@settings(max_examples=200, deadline=None)
@given(MOMENTS)
def test_a_fraction_of_a_second_is_read_and_dropped(moment: dt.datetime) -> None:
    """Milli-, micro- and nanoseconds (as a warehouse's timestamps are written) after a
    separator; six digits where it touches another directive."""
    micro = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    written = [micro[:-3], micro, micro + "789", moment.strftime("%Y%m%d%H%M%S%f")]
    formats = ["%Y-%m-%dT%H:%M:%S.%f", "%Y%m%d%H%M%S%f"]
    assert _dates(written, formats) == ([moment.date()] * 4, [None] * 4)


@pytest.mark.parametrize(
    "text",
    [
        "2016-05-12T10:30:00.",
        "2016-05-12T10:30:00.1234567890",
        "2016-05-12T10:30:00.12a",
        "2016-02-30T10:30:00.5",
    ],
)
def test_a_fraction_of_a_second_holds_one_to_nine_digits_of_a_real_date(text: str) -> None:
    assert _dates([text], ["%Y-%m-%dT%H:%M:%S.%f"]) == ([None], ["INVALID_DATE"])


def test_a_fraction_after_digits_run_together_ends_where_the_digits_do() -> None:
    """%S before it keeps its two digits, so the fraction is what follows them."""
    written = ["20160512103000123", "20160512103000123456789", "201605121030001234567890"]
    assert _dates([*written, "2016051210300"], ["%Y%m%d%H%M%S%f"]) == (
        [dt.date(2016, 5, 12), dt.date(2016, 5, 12), None, None],
        [None, None, "INVALID_DATE", "INVALID_DATE"],
    )


@settings(max_examples=200, deadline=None)
@given(MOMENTS, st.sampled_from(["%Y%m%d", "%d%m%Y", "%m%d%Y", "%Y%m%d%H%M%S"]))
def test_digits_run_together_must_be_zero_padded(moment: dt.datetime, fmt: str) -> None:
    """Without a separator, 2016111 could be 1 November or 11 January: never guessed."""
    written = _unpadded(fmt, moment)
    padded = written == moment.strftime(fmt)
    assert _dates([written], [fmt]) == (
        [moment.date()] if padded else [None],
        [None] if padded else ["INVALID_DATE"],
    )


@settings(max_examples=200, deadline=None)
@given(MOMENTS, st.sampled_from(["%d/%m/%Y", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y"]))
def test_separated_dates_may_be_unpadded(moment: dt.datetime, fmt: str) -> None:
    assert _dates([_unpadded(fmt, moment)], [fmt]) == ([moment.date()], [None])


def test_an_unpadded_run_of_digits_is_no_date() -> None:
    assert _dates(["2016111", "20161101", "1112016"], ["%Y%m%d", "%d%m%Y"]) == (
        [None, dt.date(2016, 11, 1), None],
        ["INVALID_DATE", None, "INVALID_DATE"],
    )
    # Only the run is held to its width: the day and month keep their separators.
    assert _dates(["1/2/2016 0930", "1/2/2016 930"], ["%d/%m/%Y %H%M"]) == (
        [dt.date(2016, 2, 1), None],
        [None, "INVALID_DATE"],
    )


@pytest.mark.parametrize(
    ("spec", "raw", "canonical", "reason"),
    [
        (FirmwareSpec(strip_prefix="V", pattern=r"\d+(\.\d+)+"), "V2.1.4", "2.1.4", None),
        (FirmwareSpec(strip_prefix="V", pattern=r"\d+(\.\d+)+"), "v2.1.4", "2.1.4", None),
        (FirmwareSpec(strip_prefix="V", pattern=r"\d+(\.\d+)+"), "V2.x", None, "INVALID_FIRMWARE"),
        (FirmwareSpec(strip_prefix="0x", hex_width=8), "0x104", "00000104", None),
        (FirmwareSpec(strip_prefix="0x", hex_width=8), "0XfF", "000000FF", None),
        (FirmwareSpec(strip_prefix="0x", hex_width=8), "9.9", None, "INVALID_FIRMWARE"),
        (FirmwareSpec(strip_prefix="0x", hex_width=8), "0x123456789", None, "INVALID_FIRMWARE"),
        (FirmwareSpec(pattern=r"\d+\.\d+\.\d+-b\d+"), "1.2.3-b45", "1.2.3-b45", None),
    ],
)
def test_vendor_firmware_becomes_canonical(
    spec: FirmwareSpec, raw: str, canonical: str | None, reason: str | None
) -> None:
    values, reasons = canonical_firmware(pa.array([raw]), spec)
    assert (values.to_pylist(), reasons.to_pylist()) == ([canonical], [reason])


def test_value_maps_match_case_insensitively_and_flag_the_unknown() -> None:
    values, reasons = map_values(
        pa.array(["Live", "DORMANT", "live", "Hybrid", None]),
        {"Live": "ACTIVE", "Dormant": "DORMANT"},
        None,
    )
    assert values.to_pylist() == ["ACTIVE", "DORMANT", "ACTIVE", None, None]
    assert reasons.to_pylist() == [None, None, None, "UNKNOWN_VALUE", None]


def test_apply_field_trims_checks_identifiers_and_requires_values() -> None:
    batch = pa.record_batch({"EUI": [" 00:1b:c5:12:34:56:78:9a ", "  ", "00-1B-C5-12"]})
    result = apply_field("device_id", FieldSpec(column="EUI"), batch, required=True)
    assert result.values.to_pylist() == ["00-1B-C5-12-34-56-78-9A", None, None]
    assert result.reasons.to_pylist() == [None, "MISSING_VALUE", "INVALID_EUI64"]
    assert result.raw.to_pylist() == ["00:1b:c5:12:34:56:78:9a", None, "00-1B-C5-12"]


def test_a_constant_fills_every_row() -> None:
    batch = pa.record_batch({"x": ["a", "b"]})
    result = apply_field("manufacturer", FieldSpec(constant="Secure"), batch)
    assert result.values.to_pylist() == ["Secure", "Secure"]
    assert result.reasons.to_pylist() == [None, None]


@given(st.lists(st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), min_size=1, max_size=50))
def test_days_since_epoch_agrees_with_the_calendar(days: list[dt.date]) -> None:
    epoch = dt.date(1970, 1, 1).toordinal()
    got = days_since_epoch(
        np.array([d.year for d in days]),
        np.array([d.month for d in days]),
        np.array([d.day for d in days]),
    )
    assert got.tolist() == [d.toordinal() - epoch for d in days]


# Values of few kinds, as in a real column: repeats, padding, case, blanks, nulls, junk.
FEW = st.lists(
    st.one_of(
        st.none(),
        st.sampled_from(
            [
                "Live",
                " live ",
                "Dormant",
                "DORMANT",
                "",
                "  ",
                "Dumb",
                "V2.1.4",
                "v10.0",
                "2.1",
                "V",
                "31/02/2024",
                "01/03/2024",
                " 1/3/2024",
                "29/02/2023",
                "0x1A4",
                "é",
            ]
        ),
    ),
    max_size=60,
)
SPECS = [
    ("mode", FieldSpec(column="c", values={"Live": "ACTIVE", "Dormant": "DORMANT"})),
    ("device_type", FieldSpec(column="c", values={"Dumb": "ESME", "V2.1.4": "CHF"})),
    ("firmware_version", FieldSpec(column="c", firmware=FirmwareSpec(strip_prefix="V"))),
    (
        "firmware_version",
        FieldSpec(column="c", firmware=FirmwareSpec(strip_prefix="0x", hex_width=8)),
    ),
    ("commissioned_date", FieldSpec(column="c", date_format=["%d/%m/%Y", "%Y-%m-%d"])),
]


@settings(max_examples=150, deadline=None)
@given(FEW, st.sampled_from(range(len(SPECS))), st.booleans())
def test_a_field_made_once_per_distinct_value_equals_it_made_row_by_row(
    values: list[str | None], which: int, required: bool
) -> None:
    name, spec = SPECS[which]
    assert fields_module._per_distinct_value(name, spec)
    batch = pa.record_batch({"c": pa.array(values, pa.string())})
    by_value = apply_field(name, spec, batch, required=required)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fields_module, "_per_distinct_value", lambda *_: False)
        by_row = apply_field(name, spec, batch, required=required)
    for part in ("values", "reasons", "warnings"):
        assert getattr(by_value, part).equals(getattr(by_row, part)), part
    every_row = pa.array([True] * len(values), pa.bool_())
    assert by_value.shown(every_row).equals(by_row.shown(every_row))
    assert by_value.missing().equals(by_row.missing())
