"""Placing firmware versions in order, per manufacturer, so that "older than every listed
version" can be told from "cannot be read at all".

Each scheme turns a canonical version into one integer that sorts as the versions do,
vectorised over Arrow arrays. A version the scheme cannot read gets null.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.string_bytes import byte_matrix

# Each numeric part may run to 4 digits; four parts fill an int64 without overflow.
_PART = 10_000


class FirmwareOrder(StrEnum):
    DOTTED = "dotted"  # 2.4.1, 1.12, 2.03: numeric parts compared left to right
    HEX = "hex"  # 00000104: one hexadecimal number
    BUILD = "build"  # 1.2.3-b45: dotted release, then the build number


_PATTERNS = {
    FirmwareOrder.DOTTED: r"^(?P<a>\d{1,4})(?:\.(?P<b>\d{1,4}))?(?:\.(?P<c>\d{1,4}))?"
    r"(?:\.(?P<d>\d{1,4}))?$",
    FirmwareOrder.BUILD: r"^(?P<a>\d{1,4})\.(?P<b>\d{1,4})\.(?P<c>\d{1,4})-b(?P<d>\d{1,4})$",
}


def order_keys(versions: pa.Array, scheme: FirmwareOrder) -> pa.Array:
    """An int64 per version that sorts as the versions do; null where it cannot be read."""
    versions = versions.cast(pa.string())
    if scheme is FirmwareOrder.HEX:
        return _hex_keys(versions)
    parts = pc.extract_regex(versions, _PATTERNS[scheme])
    readable = parts.is_valid().to_numpy(zero_copy_only=False)
    key = np.zeros(len(versions), dtype=np.int64)
    for name in "abcd":
        digits = pc.struct_field(parts, name)
        value = pc.fill_null(pc.cast(pc.if_else(pc.equal(digits, ""), None, digits), pa.int64()), 0)
        key = key * _PART + value.to_numpy(zero_copy_only=False)
    return pa.array(key, pa.int64(), mask=~readable)


_NIBBLE = np.full(256, 0, dtype=np.int64)
_NIBBLE[list(b"0123456789")] = np.arange(10)
_NIBBLE[list(b"abcdef")] = np.arange(10, 16)
_NIBBLE[list(b"ABCDEF")] = np.arange(10, 16)


def _hex_keys(versions: pa.Array) -> pa.Array:
    """Hex versions of up to 15 digits (16**15 fits an int64), read from a byte matrix."""
    readable = pc.fill_null(pc.match_substring_regex(versions, r"^[0-9A-Fa-f]{1,15}$"), False)
    mask = readable.to_numpy(zero_copy_only=False)
    keys = np.zeros(len(versions), dtype=np.int64)
    if mask.any():
        padded = pc.utf8_lpad(versions.filter(readable), width=15, padding="0")
        nibbles = _NIBBLE[byte_matrix(padded, 15)]
        keys[mask] = nibbles @ (16 ** np.arange(14, -1, -1, dtype=np.int64))
    return pa.array(keys, pa.int64(), mask=~mask)
