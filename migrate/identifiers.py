"""Parse, normalise and check identifiers (EUI-64, MPAN core, MPRN, MSN), vectorised over Arrow.

Estates run to millions of rows, so every rule here works on whole Arrow arrays with
pyarrow.compute and numpy: the bytes of fixed-width values are viewed as an (n, width) matrix
and checked column by column, and the few slow regular expressions only ever see the rows that
need them. Nothing loops over elements in Python.

Each check returns a `Checked`: the normalised values, a rejection reason per row (RowReason)
and a warning per row (RowWarning). Null or blank input gives a null value and no reason:
missing values are the caller's concern, not an identifier rule. The scalar helpers at the end
call the vectorised checks on a length-1 array, so there is one implementation of each rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.model import RowReason, RowWarning
from migrate.string_bytes import byte_lengths, byte_matrix, string_views

__all__ = [
    "Checked",
    "check_eui64",
    "check_mpan_core",
    "check_mprn",
    "check_msn",
    "is_valid_mpan_core",
    "known_distributors",
    "mpan_check_digits",
    "mprn_check_digits",
    "normalise_eui64",
    "normalise_mpan_core",
]


@dataclass(frozen=True)
class Checked:
    """values: normalised strings (null where the input was null/blank or rejected);
    reasons: RowReason codes as strings (null where accepted or blank);
    warnings: RowWarning codes as strings (null where none)."""

    values: pa.Array
    reasons: pa.Array
    warnings: pa.Array


# MPAN core check digit weights for digits 1-12 (domain.md section 4; 3-7-1 weights are wrong).
_MPAN_WEIGHTS = np.array([3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43], dtype=np.int32)
_MPAN_LENGTH = 13
_MPRN_LENGTHS = range(6, 11)
_EUI64_HEX_DIGITS = 16
_EUI64_CANONICAL_WIDTH = 23  # 8 pairs and 7 dashes

# Whitespace exactly as Python's str.isspace and Arrow's utf8_trim_whitespace see it: ASCII
# whitespace can be removed byte by byte (it never occurs inside a multi-byte UTF-8 sequence);
# the rest (NBSP from spreadsheets, U+2028 and friends) needs this RE2 class.
_WHITESPACE_RE = r"[\t\n\x0B\f\r\x1C-\x1F \x{85}\p{Z}]"
# Any mantissa/exponent spelling a spreadsheet or float may produce; its digits are gone.
_SCIENTIFIC_RE = r"^[+-]?(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)[eE][+-]?[0-9]+$"
# A serial may hold an E between digits (12E3456); Excel always signs its exponent (1E+11).
_SCIENTIFIC_SIGNED_RE = r"^[+-]?(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)[eE][+-][0-9]+$"
_NUMBER_START = np.zeros(256, dtype=bool)  # the first bytes either pattern admits
_NUMBER_START[list(b"0123456789+-.,")] = True

_ASCII_WHITESPACE = np.zeros(256, dtype=bool)
_ASCII_WHITESPACE[list(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")] = True
# SWAR constants for _all_hex: one value per byte, repeated across a 64-bit word.
_BYTES = 0x0101010101010101
_HIGH = np.uint64(0x80 * _BYTES)
_LOW7 = np.uint64(0x7F * _BYTES)
_ADD_GE_0 = np.uint64((0x80 - ord("0")) * _BYTES)
_ADD_GT_9 = np.uint64((0x7F - ord("9")) * _BYTES)
_ADD_GE_A = np.uint64((0x80 - ord("A")) * _BYTES)
_ADD_GT_F = np.uint64((0x7F - ord("F")) * _BYTES)
_DASH_WORD = np.uint64(ord("-") * _BYTES)
_COLON_WORD = np.uint64(ord(":") * _BYTES)
_ZERO = ord("0")
_DASH = ord("-")
# Byte positions in the separated spelling `00-1B-C5-12-34-56-78-9A`.
_SEPARATOR_POS = np.arange(2, _EUI64_CANONICAL_WIDTH, 3)
_HEX_POS = np.setdiff1d(np.arange(_EUI64_CANONICAL_WIDTH), _SEPARATOR_POS)
_SEPARATOR_WORD_POS = np.concatenate([_SEPARATOR_POS[:1], _SEPARATOR_POS])

# Reasons and warnings travel as small int codes (0 = none) and become strings at the end;
# each list maps a code to its label.
_EUI64_REASONS = [None, RowReason.INVALID_EUI64.value]
_MPAN_REASONS = [
    None,
    RowReason.PRECISION_LOST.value,
    RowReason.INVALID_MPAN_FORMAT.value,
    RowReason.UNKNOWN_MPAN_DISTRIBUTOR.value,
    RowReason.INVALID_MPAN_CHECK_DIGIT.value,
]
_MPAN_LOST, _MPAN_FORMAT, _MPAN_DISTRIBUTOR, _MPAN_CHECK = 1, 2, 3, 4
_MPRN_REASONS = [None, RowReason.PRECISION_LOST.value, RowReason.INVALID_MPRN_FORMAT.value]
_MPRN_LOST, _MPRN_FORMAT = 1, 2
_MPRN_WARNINGS = [None, RowWarning.MPRN_CHECK_DIGIT.value]
_MSN_REASONS = [None, RowReason.PRECISION_LOST.value]
_MSN_WARNINGS = [None, RowWarning.MSN_FORMAT.value]


# --- reference data -------------------------------------------------------------------------


@cache
def known_distributors() -> frozenset[str]:
    """Distributor ids (first two digits of an MPAN core) from the shipped reference CSV.

    Kept as data because new IDNOs are licensed over time; a range in code would go stale.
    """
    text = (
        resources.files("migrate.reference")
        .joinpath("mpan_distributors.csv")
        .read_text(encoding="utf-8")
    )
    ids = frozenset(row["distributor_id"].strip() for row in csv.DictReader(io.StringIO(text)))
    bad = sorted(i for i in ids if len(i) != 2 or not i.isdigit())
    if bad:
        raise ValueError(f"mpan_distributors.csv: distributor ids must be 2 digits, got {bad}")
    return ids


@cache
def _distributor_table() -> np.ndarray:
    """Lookup table indexed by the two-digit prefix as an int, for a vectorised membership test."""
    table = np.zeros(100, dtype=bool)
    table[[int(i) for i in known_distributors()]] = True
    return table


# --- check digits ---------------------------------------------------------------------------


def mpan_check_digits(digits: np.ndarray) -> np.ndarray:
    """MPAN core check digits for an (n, 12) digit matrix: weighted sum mod 11, then mod 10."""
    digits = np.asarray(digits)
    if digits.ndim != 2 or digits.shape[1] != len(_MPAN_WEIGHTS):
        raise ValueError(f"expected an (n, 12) digit matrix, got shape {digits.shape}")
    return ((_weighted_sum(digits, _MPAN_WEIGHTS) % 11) % 10).astype(np.int64)


def mprn_check_digits(digits: np.ndarray) -> np.ndarray:
    """MPRN check digits (0-10, shown as 2 digits) for an (n, k) matrix of body digits.

    Body digit i weighs k - i; the sum mod 11 is the check number. Unconfirmed rule, hence a
    warning rather than a rejection in check_mprn.
    """
    digits = np.asarray(digits)
    if digits.ndim != 2 or digits.shape[1] < 1:
        raise ValueError(f"expected an (n, k) digit matrix with k >= 1, got shape {digits.shape}")
    weights = np.arange(digits.shape[1], 0, -1, dtype=np.int32)
    return (_weighted_sum(digits, weights) % 11).astype(np.int64)


def _weighted_sum(digits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row sums of digits * weights, one column at a time (no wide int64 copy of the matrix).

    uint8 digits (the hot path, bytes minus '0') accumulate in uint16: 9 * 288 fits easily.
    """
    if not np.issubdtype(digits.dtype, np.integer):
        raise TypeError(f"expected an integer digit matrix, got {digits.dtype}")
    small = digits.dtype == np.uint8
    acc_type = np.uint16 if small else np.int64
    total = np.zeros(digits.shape[0], dtype=acc_type)
    for column, weight in enumerate(weights):
        total += digits[:, column] * acc_type(weight)
    return total


def _all_digits(digits: np.ndarray) -> np.ndarray:
    """Rows of a (bytes - '0') uint8 matrix that are all digits: non-digits wrap above 9.

    A running column maximum is several times faster than max(axis=1) on short rows.
    """
    highest = digits[:, 0].copy()
    for column in range(1, digits.shape[1]):
        np.maximum(highest, digits[:, column], out=highest)
    return highest <= 9


def _all_hex(upper: np.ndarray) -> np.ndarray:
    """Rows of an (m, 16) upper-cased byte matrix that are all hex digits ('0'-'9', 'A'-'F').

    Each row is read as two 64-bit words and all 8 bytes of a word are range-checked at once
    (SIMD within a register): with the top bit of every byte cleared, x + (0x80 - lo) sets that
    bit exactly when x >= lo, and x + (0x7F - hi) sets it exactly when x > hi, with no carry
    between bytes. Bytes >= 0x80 (UTF-8 sequences) fail separately. About twice as fast as a
    256-entry table lookup per byte.
    """
    words = np.ascontiguousarray(upper).view(np.uint64)
    low7 = words & _LOW7
    digit = (low7 + _ADD_GE_0) & ~(low7 + _ADD_GT_9)
    letter = (low7 + _ADD_GE_A) & ~(low7 + _ADD_GT_F)
    good = ((digit | letter) & _HIGH) == _HIGH
    good &= (words & _HIGH) == 0
    return good[:, 0] & good[:, 1]


def _select(matrix: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """matrix[keep], without the copy when every row is kept (the usual case)."""
    return matrix if keep.all() else matrix[keep]


# --- Arrow plumbing -------------------------------------------------------------------------


def _as_string_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous string or large_string array (nulls-only input counts as strings)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        raise TypeError(f"expected a pyarrow Array or ChunkedArray, got {type(values).__name__}")
    kind = values.type
    if pa.types.is_null(kind) or pa.types.is_string_view(kind):
        return values.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values
    raise TypeError(f"identifiers must be string or large_string, got {kind}")


def _valid(arr: pa.Array) -> np.ndarray:
    """Boolean numpy mask of non-null rows."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _rows(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """The rows of arr where mask is true, as a fresh array."""
    return pc.filter(arr, pa.array(mask, type=pa.bool_()))


def _bitmap(mask: np.ndarray, offset: int = 0) -> pa.Buffer:
    """Arrow validity bitmap for a boolean mask, shifted to start at bit `offset`."""
    if offset:
        mask = np.concatenate([np.zeros(offset, dtype=bool), mask])
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def _keep_where(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    """arr as pa.string() with rows outside mask made null; reuses arr's offsets and data."""
    _, offset_buf, data_buf = arr.buffers()
    if len(arr) == 0 or offset_buf is None:
        return pa.array([], type=pa.string())
    kept = pa.Array.from_buffers(
        arr.type,
        len(arr),
        [_bitmap(mask, arr.offset), offset_buf, data_buf],
        offset=arr.offset,
    )
    return kept.cast(pa.string())


def _labels(codes: np.ndarray, labels: list[str | None]) -> pa.Array:
    """Strings for small integer codes (code 0 is None, so null) via one Arrow take; all
    null, the usual case, without building a column of them."""
    if not codes.any():
        return pa.nulls(len(codes), pa.string())
    return pc.take(pa.array(labels, type=pa.string()), pa.array(codes, type=pa.int8()))


def _present(arr: pa.Array) -> np.ndarray:
    """Rows that are non-null and non-empty (callers strip whitespace first)."""
    return _valid(arr) & (byte_lengths(arr) > 0)


def _strip_ends(arr: pa.Array) -> pa.Array:
    """Trim leading and trailing whitespace (Unicode aware)."""
    return pc.utf8_trim_whitespace(arr)


def _strip_all(arr: pa.Array) -> pa.Array:
    """Remove every whitespace character, wherever it is ("17 6174 2304 675" is one MPAN).

    Rows holding non-ASCII characters go through the Unicode regex (few rows, slow path); then
    ASCII whitespace is dropped from the data buffer in one numpy pass with rebuilt offsets.
    Clean input comes back unchanged after a few cheap passes.
    """
    multibyte = pc.not_equal(pc.utf8_length(arr), pc.binary_length(arr))
    if pc.any(multibyte).as_py():
        multibyte = pc.fill_null(multibyte, False)
        cleaned = pc.replace_substring_regex(pc.filter(arr, multibyte), _WHITESPACE_RE, "")
        arr = pc.replace_with_mask(arr, multibyte, cleaned)

    offsets, data = string_views(arr)
    used = data[int(offsets[0]) : int(offsets[-1])]
    if (used < np.uint8(ord(" "))).any():  # control characters: rare, use the full table
        whitespace = _ASCII_WHITESPACE[used]
    else:  # the usual case: the only whitespace byte that can occur is the space
        whitespace = used == np.uint8(ord(" "))
    if not whitespace.any():
        return arr
    keep = ~whitespace
    kept_before = np.zeros(len(used) + 1, dtype=offsets.dtype)
    np.cumsum(keep, out=kept_before[1:])
    return pa.Array.from_buffers(
        arr.type,
        len(arr),
        [
            _bitmap(_valid(arr)),
            pa.py_buffer(kept_before[offsets - offsets[0]]),
            pa.py_buffer(used[keep]),
        ],
    )


def _scientific(arr: pa.Array, pattern: str = _SCIENTIFIC_RE) -> np.ndarray:
    """Rows written in scientific notation (e.g. 1.31234567891E+12): digits already lost.

    Only a row that starts as a number can be; the others (serials start with the maker's
    letter) skip the regular expression, a fifth of its cost over a column of serials.
    """
    offsets, data = string_views(arr)
    numeric = _present(arr)
    numeric[numeric] = _NUMBER_START[data[offsets[:-1][numeric]]]
    found = np.zeros(len(arr), dtype=bool)
    if numeric.any():
        matched = pc.match_substring_regex(_rows(arr, numeric), pattern)
        found[numeric] = pc.fill_null(matched, False).to_numpy(zero_copy_only=False)
    return found


# --- checks ---------------------------------------------------------------------------------


def check_eui64(values: pa.Array | pa.ChunkedArray) -> Checked:
    """EUI-64 device ids to canonical `00-1B-C5-12-34-56-78-9A`; anything else INVALID_EUI64.

    Accepted: 16 hex digits, or 8 pairs separated consistently by '-' or ':', either case.
    A truncated id such as `70-b3-d5-83-d3-50-29-` is rejected, never padded.
    """
    arr = pc.ascii_upper(_strip_ends(_as_string_array(values)))
    n = len(arr)
    present = _present(arr)
    lengths = byte_lengths(arr)

    # Both spellings reduce to an (m, 16) matrix of upper-case hex candidates.
    bare = present & (lengths == _EUI64_HEX_DIGITS)
    bare_hex = byte_matrix(_rows(arr, bare), _EUI64_HEX_DIGITS)
    bare_ok = _all_hex(bare_hex)

    separated = present & (lengths == _EUI64_CANONICAL_WIDTH)
    sep_bytes = byte_matrix(_rows(arr, separated), _EUI64_CANONICAL_WIDTH)
    sep_hex = np.take(sep_bytes, _HEX_POS, axis=1)
    # The 7 separators plus the first again fill one 64-bit word: uniform iff all 8 bytes equal.
    separators = np.take(sep_bytes, _SEPARATOR_WORD_POS, axis=1).view(np.uint64)[:, 0]
    sep_ok = _all_hex(sep_hex) & ((separators == _DASH_WORD) | (separators == _COLON_WORD))

    accepted = np.zeros(n, dtype=bool)
    bare_index = np.flatnonzero(bare)[bare_ok]
    sep_index = np.flatnonzero(separated)[sep_ok]
    accepted[bare_index] = True
    accepted[sep_index] = True
    if not len(sep_index):
        hex_digits = _select(bare_hex, bare_ok)
    elif not len(bare_index):
        hex_digits = _select(sep_hex, sep_ok)
    else:  # both spellings in one column: put rows back in input order
        rank = np.cumsum(accepted) - 1
        hex_digits = np.empty((len(bare_index) + len(sep_index), _EUI64_HEX_DIGITS), np.uint8)
        hex_digits[rank[bare_index]] = bare_hex[bare_ok]
        hex_digits[rank[sep_index]] = sep_hex[sep_ok]
    canonical = np.full((len(hex_digits), _EUI64_CANONICAL_WIDTH), _DASH, dtype=np.uint8)
    canonical[:, _HEX_POS] = hex_digits

    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(accepted * _EUI64_CANONICAL_WIDTH, out=offsets[1:])
    out = pa.Array.from_buffers(
        pa.large_string(),
        n,
        [_bitmap(accepted), pa.py_buffer(offsets), pa.py_buffer(canonical)],
    ).cast(pa.string())

    codes = (present & ~accepted).astype(np.int8)
    return Checked(out, _labels(codes, _EUI64_REASONS), pa.nulls(n, type=pa.string()))


def check_mpan_core(values: pa.Array | pa.ChunkedArray) -> Checked:
    """13-digit MPAN cores, whitespace removed; one reason per rejected row, first rule failed.

    Order: PRECISION_LOST (scientific notation), INVALID_MPAN_FORMAT (not 13 digits),
    UNKNOWN_MPAN_DISTRIBUTOR (prefix not in the reference CSV), INVALID_MPAN_CHECK_DIGIT.
    """
    arr = _strip_all(_as_string_array(values))
    n = len(arr)
    present = _present(arr)
    codes = np.zeros(n, dtype=np.int8)

    candidate = present & (byte_lengths(arr) == _MPAN_LENGTH)
    digits = byte_matrix(_rows(arr, candidate), _MPAN_LENGTH) - np.uint8(_ZERO)
    all_digits = _all_digits(digits)
    prefix = np.where(all_digits, digits[:, 0].astype(np.int64) * 10 + digits[:, 1], 0)
    known = _distributor_table()[prefix]
    check_ok = mpan_check_digits(digits[:, :12]) == digits[:, 12]
    codes[candidate] = np.select(
        [~all_digits, ~known, ~check_ok], [_MPAN_FORMAT, _MPAN_DISTRIBUTOR, _MPAN_CHECK], 0
    )

    # Everything present that is not 13 digits: scientific notation or simply malformed.
    malformed = present.copy()
    malformed[np.flatnonzero(candidate)[all_digits]] = False
    scientific = _scientific(_rows(arr, malformed))
    codes[malformed] = np.where(scientific, _MPAN_LOST, _MPAN_FORMAT)

    accepted = present & (codes == 0)
    return Checked(
        _keep_where(arr, accepted), _labels(codes, _MPAN_REASONS), pa.nulls(n, type=pa.string())
    )


def check_mprn(values: pa.Array | pa.ChunkedArray) -> Checked:
    """Gas MPRNs: 6-10 digits once whitespace is removed (as for MPANs, people type them in
    groups), else INVALID_MPRN_FORMAT (or PRECISION_LOST).

    A failed check digit is only a MPRN_CHECK_DIGIT warning (the rule is not confirmed), so
    the value is kept.
    """
    arr = _strip_all(_as_string_array(values))
    n = len(arr)
    present = _present(arr)
    lengths = byte_lengths(arr)
    accepted = np.zeros(n, dtype=bool)
    warn = np.zeros(n, dtype=np.int8)

    for width in _MPRN_LENGTHS:  # a handful of widths, each checked as one matrix
        group = present & (lengths == width)
        if not group.any():
            continue
        digits = byte_matrix(_rows(arr, group), width) - np.uint8(_ZERO)
        all_digits = _all_digits(digits)
        stated = digits[:, -2].astype(np.int64) * 10 + digits[:, -1]
        mismatch = all_digits & (mprn_check_digits(digits[:, :-2]) != stated)
        index = np.flatnonzero(group)
        accepted[index[all_digits]] = True
        warn[index[mismatch]] = 1

    rejected = present & ~accepted
    codes = np.zeros(n, dtype=np.int8)
    codes[rejected] = np.where(_scientific(_rows(arr, rejected)), _MPRN_LOST, _MPRN_FORMAT)
    return Checked(
        _keep_where(arr, accepted), _labels(codes, _MPRN_REASONS), _labels(warn, _MPRN_WARNINGS)
    )


def mprn_shaped(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows holding 6-10 digits once whitespace is removed (an MPRN's shape, whether or not
    it is one): which check a value on a hub or another device is given. Counted over the
    bytes, without a regular expression."""
    arr = _strip_all(_as_string_array(values))
    offsets, data = string_views(arr)
    lengths = np.diff(offsets)
    start = int(offsets[0])
    used = data[start : int(offsets[-1])]
    non_digits = np.zeros(len(used) + 1, dtype=np.int64)
    np.cumsum((used - np.uint8(_ZERO)) > 9, out=non_digits[1:])  # wraps above 9 if not a digit
    clean = non_digits[offsets[1:] - start] == non_digits[offsets[:-1] - start]
    return _valid(arr) & (lengths >= _MPRN_LENGTHS[0]) & (lengths <= _MPRN_LENGTHS[-1]) & clean


def check_msn(values: pa.Array | pa.ChunkedArray, pattern: str | None = None) -> Checked:
    """Meter serial numbers: whitespace removed, upper-cased; refused only when written in
    scientific notation (1.23457E+11: a spreadsheet took a serial for a number and its digits
    are gone), as PRECISION_LOST like an MPAN, since a serial is never guessed. Only a signed
    exponent counts, as Excel writes it: 12E3456 is a serial.

    `pattern` (RE2, full match against the normalised value) is the expected layout, e.g.
    `[A-Z][0-9]{2}[A-Z]{2}[0-9]{6}`; a value that does not fit is kept with MSN_FORMAT, since
    layouts vary by manufacturer and era. An invalid pattern raises ValueError.
    """
    arr = pc.utf8_upper(_strip_all(_as_string_array(values)))
    n = len(arr)
    present = _present(arr)
    lost = _scientific(arr, _SCIENTIFIC_SIGNED_RE).astype(np.int8)
    accepted = present & (lost == 0)
    warn = np.zeros(n, dtype=np.int8)
    if pattern is not None and n:
        try:
            fits = pc.match_substring_regex(arr, f"^(?:{pattern})$")
        except pa.ArrowInvalid as exc:
            raise ValueError(f"invalid MSN pattern {pattern!r}: {exc}") from exc
        warn[accepted & ~pc.fill_null(fits, False).to_numpy(zero_copy_only=False)] = 1
    return Checked(
        _keep_where(arr, accepted), _labels(lost, _MSN_REASONS), _labels(warn, _MSN_WARNINGS)
    )


# --- scalar conveniences --------------------------------------------------------------------


def _one(check: Callable[[pa.Array], Checked], value: str) -> tuple[str | None, str | None]:
    """Run a vectorised check on one value: (normalised value or None, reason or None)."""
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    result = check(pa.array([value], type=pa.string()))
    return result.values[0].as_py(), result.reasons[0].as_py()


def _normalised(check: Callable[[pa.Array], Checked], value: str) -> str:
    """The normalised value, or ValueError(RowReason); a blank value is MISSING_VALUE."""
    normalised, reason = _one(check, value)
    if normalised is None:
        raise ValueError(RowReason(reason) if reason else RowReason.MISSING_VALUE)
    return normalised


def normalise_eui64(value: str) -> str:
    """Canonical EUI-64; raises ValueError(RowReason.INVALID_EUI64) or MISSING_VALUE if blank."""
    return _normalised(check_eui64, value)


def normalise_mpan_core(value: str) -> str:
    """Normalised MPAN core; raises ValueError carrying the RowReason of the first failed rule."""
    return _normalised(check_mpan_core, value)


def is_valid_mpan_core(value: str) -> bool:
    """True if value normalises to an MPAN core that passes every rule."""
    return _one(check_mpan_core, value)[0] is not None
