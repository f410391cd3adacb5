"""Identifier rules: worked examples and traps from domain.md section 4, plus properties.

The reference functions below restate each rule in plain Python, one value at a time, as an
independent oracle for the vectorised implementation (they live only in the tests).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from importlib import resources

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrate.identifiers import (
    Checked,
    check_eui64,
    check_mpan_core,
    check_mprn,
    check_msn,
    is_valid_mpan_core,
    known_distributors,
    mpan_check_digits,
    mprn_check_digits,
    mprn_shaped,
    normalise_eui64,
    normalise_mpan_core,
)
from migrate.model import RowReason, RowWarning

WEIGHTS = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43]
VALID_CORES = ["1312345678907", "1030006718997", "2000012345672", "2300123456784", "1200000000002"]
INVALID_CORES = ["2499999999990", "2099999999386", "1099999999997"]
MSN_PATTERN = r"[A-Z][0-9]{2}[A-Z]{2}[0-9]{6}"
SCIENTIFIC = re.compile(r"[+-]?(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)[eE][+-]?[0-9]+")
# For a serial only Excel's spelling, with a signed exponent: 12E3456 is a serial.
SCIENTIFIC_SIGNED = re.compile(r"[+-]?(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)[eE][+-][0-9]+")
HEX = "0123456789abcdefABCDEF"
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x85\u00a0\u2007\u2028\u3000"

# Local settings (not a global profile, which would change other modules' tests too).
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- reference rules (plain Python, one value at a time) ----------------------------------


def mpan_residue(core12: str) -> int:
    return sum(int(d) * w for d, w in zip(core12, WEIGHTS, strict=True)) % 11


def ref_eui64(value: str | None) -> tuple[str | None, str | None]:
    if value is None or not value.strip():
        return None, None
    v = value.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{16}", v):
        digits = v
    elif re.fullmatch(r"(?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}", v) or re.fullmatch(
        r"(?:[0-9A-Fa-f]{2}:){7}[0-9A-Fa-f]{2}", v
    ):
        digits = "".join(v[i : i + 2] for i in range(0, 23, 3))
    else:
        return None, RowReason.INVALID_EUI64
    digits = digits.upper()
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2)), None


def ref_mpan(value: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    v = "".join(c for c in value if not c.isspace())
    if not v:
        return None, None
    if SCIENTIFIC.fullmatch(v):
        return None, RowReason.PRECISION_LOST
    if not re.fullmatch(r"[0-9]{13}", v):
        return None, RowReason.INVALID_MPAN_FORMAT
    if v[:2] not in known_distributors():
        return None, RowReason.UNKNOWN_MPAN_DISTRIBUTOR
    if mpan_residue(v[:12]) % 10 != int(v[12]):
        return None, RowReason.INVALID_MPAN_CHECK_DIGIT
    return v, None


def ref_mprn(value: str | None) -> tuple[str | None, str | None, str | None]:
    if value is None or not value.strip():
        return None, None, None
    v = "".join(value.split())
    if SCIENTIFIC.fullmatch(v):
        return None, RowReason.PRECISION_LOST, None
    if not re.fullmatch(r"[0-9]{6,10}", v):
        return None, RowReason.INVALID_MPRN_FORMAT, None
    body = v[:-2]
    check = sum(int(d) * (len(body) - i) for i, d in enumerate(body)) % 11
    return v, None, (None if f"{check:02d}" == v[-2:] else RowWarning.MPRN_CHECK_DIGIT)


def ref_msn(value: str | None, pattern: str | None) -> tuple[str | None, str | None, str | None]:
    if value is None:
        return None, None, None
    # Arrow upper-cases code point by code point (no 'ß' -> 'SS'), unlike str.upper.
    v = "".join(c.upper() if len(c.upper()) == 1 else c for c in value if not c.isspace())
    if not v:
        return None, None, None
    if SCIENTIFIC_SIGNED.fullmatch(v):
        return None, RowReason.PRECISION_LOST, None
    if pattern is not None and not re.fullmatch(pattern, v):
        return v, None, RowWarning.MSN_FORMAT
    return v, None, None


def rows(result: Checked) -> list[tuple[str | None, str | None, str | None]]:
    return list(
        zip(
            result.values.to_pylist(),
            result.reasons.to_pylist(),
            result.warnings.to_pylist(),
            strict=True,
        )
    )


def one(check: Callable[[pa.Array], Checked], value: str | None) -> tuple:
    return rows(check(pa.array([value], type=pa.string())))[0]


# --- strategies ---------------------------------------------------------------------------

blank = st.text(alphabet=WHITESPACE, max_size=4)
digits = st.text(alphabet="0123456789", min_size=1, max_size=16)
padding = st.text(alphabet=" \t\u00a0", max_size=2)
known_prefix = st.sampled_from(sorted(known_distributors()))


@st.composite
def valid_cores(draw: st.DrawFn) -> str:
    body = draw(known_prefix) + draw(st.text(alphabet="0123456789", min_size=10, max_size=10))
    return body + str(mpan_residue(body) % 10)


@st.composite
def scientific(draw: st.DrawFn) -> str:
    integer = draw(st.text(alphabet="0123456789", min_size=1, max_size=3))
    point = draw(st.sampled_from(["", ".", ","]))
    fraction = draw(st.text(alphabet="0123456789", max_size=12)) if point else ""
    sign = draw(st.sampled_from(["", "+", "-"]))
    exponent = draw(st.text(alphabet="0123456789", min_size=1, max_size=3))
    text = f"{integer}{point}{fraction}{draw(st.sampled_from('eE'))}{sign}{exponent}"
    return draw(padding) + text + draw(padding)


@st.composite
def eui_bytes(draw: st.DrawFn) -> str:
    return draw(st.binary(min_size=8, max_size=8)).hex()


@st.composite
def eui_spellings(draw: st.DrawFn) -> str:
    hex16 = draw(eui_bytes())
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in hex16)
    separator = draw(st.sampled_from(["", "-", ":"]))
    pairs = [cased[i : i + 2] for i in range(0, 16, 2)]
    return draw(padding) + separator.join(pairs) + draw(padding)


@st.composite
def mprns(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=4, max_size=8))
    if draw(st.booleans()):
        check = sum(int(d) * (len(body) - i) for i, d in enumerate(body)) % 11
        return body + f"{check:02d}"
    return body + draw(st.text(alphabet="0123456789", min_size=2, max_size=2))


@st.composite
def near_misses(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A base value with one character dropped, duplicated, replaced or whitespace added."""
    value = draw(base)
    kind = draw(st.sampled_from(["drop", "dup", "replace", "pad", "inner"]))
    if not value:
        return value
    i = draw(st.integers(0, len(value) - 1))
    if kind == "drop":
        return value[:i] + value[i + 1 :]
    if kind == "dup":
        return value[:i] + value[i] + value[i:]
    if kind == "replace":
        return value[:i] + draw(st.sampled_from("0aZ.-: e\u00e9")) + value[i + 1 :]
    if kind == "pad":
        return draw(blank) + value + draw(blank)
    return value[:i] + draw(st.sampled_from(WHITESPACE)) + value[i:]


def mixed(
    base: st.SearchStrategy[str], other: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[list[str | None]]:
    """Arrays mixing nulls, blanks, valid and near-valid values and arbitrary text."""
    element = st.one_of(
        st.none(),
        blank,
        base,
        near_misses(base),
        other if other is not None else st.text(max_size=25),
        digits,
        scientific(),
    )
    return st.lists(element, max_size=25)


mpan_like = st.one_of(valid_cores(), st.text(alphabet="0123456789", min_size=13, max_size=13))
eui_like = st.one_of(eui_spellings(), st.text(alphabet=HEX + "-:", min_size=14, max_size=25))
msn_like = st.from_regex(r"[a-zA-Z][0-9]{2} ?[a-zA-Z]{2} ?[0-9]{6}", fullmatch=True)


# --- reference data -----------------------------------------------------------------------


def test_distributor_csv_has_14_dnos_and_idnos_24_to_38() -> None:
    text = resources.files("migrate.reference").joinpath("mpan_distributors.csv").read_text()
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == ["distributor_id", "name", "kind"]
    dnos = [r["distributor_id"] for r in table if r["kind"] == "DNO"]
    idnos = [r["distributor_id"] for r in table if r["kind"] == "IDNO"]
    assert dnos == [str(i) for i in range(10, 24)]
    assert idnos == [str(i) for i in range(24, 39)]
    assert all(r["name"].strip() for r in table)
    assert {r["kind"] for r in table} == {"DNO", "IDNO"}
    assert next(r["name"] for r in table if r["distributor_id"] == "38").startswith("Indigo")


def test_known_distributors_is_cached_frozenset() -> None:
    ids = known_distributors()
    assert ids == frozenset(str(i) for i in range(10, 39))
    assert known_distributors() is ids


# --- MPAN core ----------------------------------------------------------------------------


def test_mpan_worked_example() -> None:
    digits = np.array([[int(c) for c in "131234567890"]])
    assert sum(int(c) * w for c, w in zip("131234567890", WEIGHTS, strict=True)) == 1349
    assert mpan_check_digits(digits).tolist() == [7]


@pytest.mark.parametrize("core", VALID_CORES)
def test_valid_cores(core: str) -> None:
    assert normalise_mpan_core(core) == core
    assert is_valid_mpan_core(core)
    assert one(check_mpan_core, core) == (core, None, None)


@pytest.mark.parametrize("core", INVALID_CORES)
def test_invalid_cores_fail_the_check_digit(core: str) -> None:
    assert not is_valid_mpan_core(core)
    assert one(check_mpan_core, core) == (None, RowReason.INVALID_MPAN_CHECK_DIGIT, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("17 6174 2304 675", ("1761742304675", None, None)),
        (" 1312345678907\t", ("1312345678907", None, None)),
        ("13\u00a012345678907", ("1312345678907", None, None)),
        ("1.31234567891E+12", (None, RowReason.PRECISION_LOST, None)),
        ("1.312345678907e12", (None, RowReason.PRECISION_LOST, None)),
        ("1,31234567891E+12", (None, RowReason.PRECISION_LOST, None)),
        ("1312345678907.0", (None, RowReason.INVALID_MPAN_FORMAT, None)),
        ("131234567890", (None, RowReason.INVALID_MPAN_FORMAT, None)),
        ("13123456789071", (None, RowReason.INVALID_MPAN_FORMAT, None)),
        ("131234567890X", (None, RowReason.INVALID_MPAN_FORMAT, None)),
        ("0912345678906", (None, RowReason.UNKNOWN_MPAN_DISTRIBUTOR, None)),
        ("3912345678906", (None, RowReason.UNKNOWN_MPAN_DISTRIBUTOR, None)),
        ("", (None, None, None)),
        ("   ", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_mpan_traps(raw: str | None, expected: tuple) -> None:
    assert one(check_mpan_core, raw) == expected


def test_normalise_mpan_core_raises_with_reason_code() -> None:
    with pytest.raises(ValueError) as caught:
        normalise_mpan_core("1.31234567891E+12")
    assert caught.value.args[0] is RowReason.PRECISION_LOST
    assert str(caught.value) == "PRECISION_LOST"
    with pytest.raises(ValueError, match=r"^INVALID_MPAN_CHECK_DIGIT$"):
        normalise_mpan_core("2499999999990")
    with pytest.raises(ValueError, match=r"^MISSING_VALUE$"):
        normalise_mpan_core("  ")
    with pytest.raises(TypeError):
        normalise_mpan_core(1312345678907)  # type: ignore[arg-type]


def test_single_digit_change_that_passes_exists_when_check_digit_is_zero() -> None:
    # (sum % 11) % 10 maps residues 0 and 10 to the same check digit 0, so the weights cannot
    # catch every single-digit change of a core whose check digit is 0.
    assert is_valid_mpan_core("1000000000030")
    assert is_valid_mpan_core("1030000000030")


@fast
@given(valid_cores())
def test_constructed_core_passes(core: str) -> None:
    digits = np.array([[int(c) for c in core[:12]]])
    assert mpan_check_digits(digits).tolist() == [int(core[12])]
    assert normalise_mpan_core(core) == core


@fast
@given(valid_cores())
@example("1000000000030")  # check digit 0: one change aliases residue 0 to 10 and passes
def test_every_single_digit_change_fails(core: str) -> None:
    variants = [
        core[:i] + d + core[i + 1 :] for i in range(13) for d in "0123456789" if d != core[i]
    ]
    result = check_mpan_core(pa.array(variants))
    for variant, (value, reason, _) in zip(variants, rows(result), strict=True):
        body_changed = variant[12] == core[12]
        residue_alias = {mpan_residue(core[:12]), mpan_residue(variant[:12])} == {0, 10}
        if body_changed and residue_alias and variant[:2] in known_distributors():
            # The only way through: check digit 0 and a residue moved between 0 and 10.
            assert core[12] == "0"
            assert value == variant
        else:
            assert value is None
            assert reason in {
                RowReason.INVALID_MPAN_CHECK_DIGIT,
                RowReason.UNKNOWN_MPAN_DISTRIBUTOR,
            }


@fast
@given(mpan_like.map(lambda c: f"{c[:2]} {c[2:6]} {c[6:10]} {c[10:]}"))
def test_mpan_spacing_is_ignored(spaced: str) -> None:
    compact = spaced.replace(" ", "")
    assert one(check_mpan_core, spaced) == one(check_mpan_core, compact)


@fast
@given(scientific())
def test_scientific_notation_is_always_precision_lost(text: str) -> None:
    """For an MSN only with a signed exponent: unsigned, it is kept as a serial."""
    lost = (None, RowReason.PRECISION_LOST, None)
    assert one(check_mpan_core, text) == lost
    assert one(check_mprn, text) == lost
    signed = re.search(r"[eE][+-]", text) is not None
    assert one(check_msn, text) == (lost if signed else ref_msn(text, None))


def test_mpan_check_digits_shape_and_type() -> None:
    with pytest.raises(ValueError):
        mpan_check_digits(np.zeros((2, 11), dtype=np.int64))
    with pytest.raises(TypeError):
        mpan_check_digits(np.zeros((2, 12), dtype=np.float64))
    as_bytes = np.array([[int(c) for c in v[:12]] for v in VALID_CORES], dtype=np.uint8)
    expected = [int(v[12]) for v in VALID_CORES]
    assert mpan_check_digits(as_bytes).tolist() == expected
    assert mpan_check_digits(as_bytes.astype(np.int64)).tolist() == expected
    assert mpan_check_digits(np.zeros((0, 12), dtype=np.int64)).shape == (0,)


# --- MPRN ---------------------------------------------------------------------------------


def test_mprn_worked_examples() -> None:
    body = np.array([[int(c) for c in "39384244"]])
    assert mprn_check_digits(body).tolist() == [3]
    assert mprn_check_digits(np.array([[int(c) for c in "12345678"]])).tolist() == [10]
    assert one(check_mprn, "3938424403") == ("3938424403", None, None)
    assert one(check_mprn, "1234567810") == ("1234567810", None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 3938424403 ", ("3938424403", None, None)),
        ("3938 4244 03", ("3938424403", None, None)),
        ("3938424404", ("3938424404", None, RowWarning.MPRN_CHECK_DIGIT)),
        ("39384244", ("39384244", None, RowWarning.MPRN_CHECK_DIGIT)),
        ("12345", (None, RowReason.INVALID_MPRN_FORMAT, None)),
        ("12345678901", (None, RowReason.INVALID_MPRN_FORMAT, None)),
        ("3938424403.0", (None, RowReason.INVALID_MPRN_FORMAT, None)),
        ("3.938424403E+09", (None, RowReason.PRECISION_LOST, None)),
        ("\u00a0", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_mprn_traps(raw: str | None, expected: tuple) -> None:
    assert one(check_mprn, raw) == expected


# --- EUI-64 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "001BC5123456789A",
        "001bc5123456789a",
        "00-1B-C5-12-34-56-78-9A",
        "00-1b-c5-12-34-56-78-9a",
        "00:1B:C5:12:34:56:78:9A",
        " 00:1b:C5:12:34:56:78:9a\t",
    ],
)
def test_eui64_spellings(raw: str) -> None:
    assert normalise_eui64(raw) == "00-1B-C5-12-34-56-78-9A"


@pytest.mark.parametrize(
    "raw",
    [
        "70-b3-d5-83-d3-50-29-",
        "001BC5123456789",
        "001BC5123456789AB",
        "00-1B:C5-12-34-56-78-9A",
        "00 1B C5 12 34 56 78 9A",
        "00-1B-C5-12-34-56-78-9G",
        "0x001BC5123456789A",
        "001B-C512-3456-789A",
        "00-1B-C5-12-34-56-78-9\u00c4",
    ],
)
def test_eui64_rejects(raw: str) -> None:
    assert one(check_eui64, raw) == (None, RowReason.INVALID_EUI64, None)
    with pytest.raises(ValueError, match=r"^INVALID_EUI64$"):
        normalise_eui64(raw)


def test_eui64_byte_classification_is_exhaustive() -> None:
    """Every code point up to U+07FF (1 or 2 UTF-8 bytes) in a hex or separator position."""
    bare, dashed = "0123456789ABCDEF", "01-23-45-67-89-AB-CD-EF"
    values, expected = [], []
    for c in range(0x800):
        ch = chr(c)
        width = len(ch.encode())  # a 2-byte character replaces two characters: same byte length
        for base, pos in [(bare, 0), (bare, 7), (bare, 14), (dashed, 0), (dashed, 21)]:
            values.append(base[:pos] + ch + base[pos + width :])
            expected.append(width == 1 and ch in HEX)
        values.append(dashed[:2] + ch + dashed[2 + width :])  # a separator
        expected.append(ch == "-")
    accepted = check_eui64(pa.array(values)).values.is_valid().to_pylist()
    assert accepted == expected


@fast
@given(eui_bytes(), st.data())
def test_every_eui64_spelling_gives_one_canonical_form(hex16: str, data: st.DataObject) -> None:
    expected = "-".join(hex16.upper()[i : i + 2] for i in range(0, 16, 2))
    spellings = []
    for separator in ["", "-", ":"]:
        cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in hex16)
        spellings.append(separator.join(cased[i : i + 2] for i in range(0, 16, 2)))
    assert check_eui64(pa.array(spellings)).values.to_pylist() == [expected] * 3


@fast
@given(st.text(alphabet=HEX, min_size=1, max_size=40).filter(lambda s: len(s) != 16))
def test_eui64_of_any_other_length_is_rejected(text: str) -> None:
    assert one(check_eui64, text) == (None, RowReason.INVALID_EUI64, None)
    pairs = "-".join(text[i : i + 2] for i in range(0, len(text), 2))
    assert one(check_eui64, pairs) == (None, RowReason.INVALID_EUI64, None)


# --- MSN ----------------------------------------------------------------------------------


def test_msn_normalised_and_pattern_is_a_warning() -> None:
    result = check_msn(pa.array([" s06ds 123456 ", "abc", "", None]), MSN_PATTERN)
    assert rows(result) == [
        ("S06DS123456", None, None),
        ("ABC", None, RowWarning.MSN_FORMAT),
        (None, None, None),
        (None, None, None),
    ]
    assert check_msn(pa.array(["abc"])).warnings.to_pylist() == [None]


def test_msn_in_scientific_notation_is_precision_lost_not_kept() -> None:
    """A spreadsheet's 1.23457E+11 is not the serial: its digits are gone. Excel signs the
    exponent; without a sign (12E3456) the E is the serial's own."""
    values = ["1.23457E+11", " 1,23457e+11 ", "1E-05", "E16DS123456", "12345678901", "12E3456"]
    assert rows(check_msn(pa.array(values), MSN_PATTERN)) == [
        (None, RowReason.PRECISION_LOST, None),
        (None, RowReason.PRECISION_LOST, None),
        (None, RowReason.PRECISION_LOST, None),
        ("E16DS123456", None, None),
        ("12345678901", None, RowWarning.MSN_FORMAT),
        ("12E3456", None, RowWarning.MSN_FORMAT),
    ]


def test_msn_pattern_is_a_full_match() -> None:
    result = check_msn(pa.array(["XS06DS123456", "S06DS1234567", "S06DS123456"]), MSN_PATTERN)
    assert result.warnings.to_pylist() == [RowWarning.MSN_FORMAT, RowWarning.MSN_FORMAT, None]
    alternation = check_msn(pa.array(["AB", "ABC"]), "A|AB")
    assert alternation.warnings.to_pylist() == [None, RowWarning.MSN_FORMAT]


def test_msn_invalid_pattern_raises_value_error() -> None:
    with pytest.raises(ValueError, match="invalid MSN pattern"):
        check_msn(pa.array(["S06DS123456"]), "([A-Z")


# --- whitespace, nulls, Arrow shapes ------------------------------------------------------

CHECKS: dict[str, Callable[[pa.Array], Checked]] = {
    "eui64": check_eui64,
    "mpan": check_mpan_core,
    "mprn": check_mprn,
    "msn": lambda a: check_msn(a, MSN_PATTERN),
}


@pytest.mark.parametrize("name", CHECKS)
def test_whitespace_agrees_with_str_isspace_for_every_code_point(name: str) -> None:
    points = [chr(c) for c in range(0x3100) if not 0xD800 <= c <= 0xDFFF]
    result = CHECKS[name](pa.array(points))
    blank_rows = [value is None and reason is None for value, reason, _ in rows(result)]
    assert blank_rows == [p.isspace() for p in points]


@pytest.mark.parametrize("name", CHECKS)
@fast
@given(st.lists(st.one_of(st.none(), blank), max_size=10))
def test_nulls_and_blanks_give_null_value_and_null_reason(
    name: str, values: list[str | None]
) -> None:
    result = CHECKS[name](pa.array(values, type=pa.string()))
    assert result.values.type == pa.string()
    assert result.values.null_count == len(values)
    assert result.reasons.null_count == len(values)
    assert result.warnings.null_count == len(values)


@pytest.mark.parametrize("name", CHECKS)
def test_empty_and_null_typed_arrays(name: str) -> None:
    for empty in [pa.array([], type=pa.string()), pa.chunked_array([], type=pa.string())]:
        result = CHECKS[name](empty)
        assert (len(result.values), len(result.reasons), len(result.warnings)) == (0, 0, 0)
    result = CHECKS[name](pa.nulls(3))
    assert result.values.to_pylist() == [None] * 3
    assert result.reasons.to_pylist() == [None] * 3


@pytest.mark.parametrize("name", CHECKS)
def test_non_string_arrays_are_refused(name: str) -> None:
    with pytest.raises(TypeError):
        CHECKS[name](pa.array([1312345678907]))


# --- properties: oracle, scalar equality, idempotence, layouts -----------------------------


@fast
@given(mixed(eui_like))
def test_eui64_matches_reference(values: list[str | None]) -> None:
    result = check_eui64(pa.array(values, type=pa.string()))
    assert rows(result) == [(*ref_eui64(v), None) for v in values]


@fast
@given(mixed(mpan_like))
def test_mpan_matches_reference(values: list[str | None]) -> None:
    result = check_mpan_core(pa.array(values, type=pa.string()))
    assert rows(result) == [(*ref_mpan(v), None) for v in values]


@fast
@given(mixed(mprns()))
def test_mprn_matches_reference(values: list[str | None]) -> None:
    result = check_mprn(pa.array(values, type=pa.string()))
    assert rows(result) == [ref_mprn(v) for v in values]


@fast
@given(mixed(st.one_of(mprns(), mpan_like)))
def test_mprn_shape_matches_reference(values: list[str | None]) -> None:
    """The shape that sends a hub's MPxN to the MPRN check: 6-10 digits once whitespace is
    removed, as the check itself removes it."""
    shaped = mprn_shaped(pa.array(values, type=pa.string()))
    assert shaped.tolist() == [
        v is not None and re.fullmatch(r"[0-9]{6,10}", "".join(v.split())) is not None
        for v in values
    ]


@fast
@given(mixed(msn_like, st.text(st.characters(max_codepoint=0xDE), max_size=25)))
def test_msn_matches_reference(values: list[str | None]) -> None:
    result = check_msn(pa.array(values, type=pa.string()), MSN_PATTERN)
    assert rows(result) == [ref_msn(v, MSN_PATTERN) for v in values]


def scalar_row(normalise: Callable[[str], str], value: str | None) -> tuple:
    if value is None:
        return (None, None, None)
    try:
        return (normalise(value), None, None)
    except ValueError as exc:
        reason = exc.args[0]
        return (None, None if reason is RowReason.MISSING_VALUE else reason, None)


@fast
@given(mixed(eui_like))
def test_eui64_vectorised_equals_scalar(values: list[str | None]) -> None:
    result = check_eui64(pa.array(values, type=pa.string()))
    assert rows(result) == [scalar_row(normalise_eui64, v) for v in values]


@fast
@given(mixed(mpan_like))
def test_mpan_vectorised_equals_scalar(values: list[str | None]) -> None:
    result = check_mpan_core(pa.array(values, type=pa.string()))
    assert rows(result) == [scalar_row(normalise_mpan_core, v) for v in values]
    assert [v is not None for v in result.values.to_pylist()] == [
        v is not None and is_valid_mpan_core(v) for v in values
    ]


@pytest.mark.parametrize("name", CHECKS)
@fast
@given(data=st.data())
def test_each_row_is_checked_on_its_own(name: str, data: st.DataObject) -> None:
    base = {"eui64": eui_like, "mpan": mpan_like, "mprn": mprns(), "msn": msn_like}[name]
    values = data.draw(mixed(base))
    check = CHECKS[name]
    assert rows(check(pa.array(values, type=pa.string()))) == [one(check, v) for v in values]


@pytest.mark.parametrize("name", CHECKS)
@fast
@given(data=st.data())
def test_normalising_is_idempotent(name: str, data: st.DataObject) -> None:
    base = {"eui64": eui_like, "mpan": mpan_like, "mprn": mprns(), "msn": msn_like}[name]
    values = data.draw(mixed(base))
    check = CHECKS[name]
    first = check(pa.array(values, type=pa.string()))
    again = check(first.values)
    assert again.values.to_pylist() == first.values.to_pylist()
    assert again.reasons.null_count == len(values)
    assert again.warnings.to_pylist() == first.warnings.to_pylist()


@pytest.mark.parametrize("name", CHECKS)
@fast
@given(data=st.data())
def test_slices_chunks_and_large_strings_agree(name: str, data: st.DataObject) -> None:
    base = {"eui64": eui_like, "mpan": mpan_like, "mprn": mprns(), "msn": msn_like}[name]
    values = data.draw(mixed(base))
    start = data.draw(st.integers(0, len(values)))
    stop = data.draw(st.integers(start, len(values)))
    check = CHECKS[name]
    expected = rows(check(pa.array(values[start:stop], type=pa.string())))
    whole = pa.array(values, type=pa.string())
    assert rows(check(whole.slice(start, stop - start))) == expected
    large = pa.array(values, type=pa.large_string()).slice(start, stop - start)
    assert rows(check(large)) == expected
    chunked = pa.chunked_array(
        [whole.slice(start, 1), whole.slice(start + 1, max(stop - start - 1, 0))]
        if stop > start
        else [],
        type=pa.string(),
    )
    assert rows(check(chunked)) == expected
    result = check(large)
    assert (result.values.type, result.reasons.type, result.warnings.type) == (pa.string(),) * 3
