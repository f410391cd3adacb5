"""Synthetic Landis+Gyr IOC device extracts (long format), at any size, with counted defects.

Rehearsals, tests and benchmarks need estates of 100 rows or 10 million, and real extracts
hold personal data, so this module writes one from a seed. It writes exactly what the IOC
SMSO's export tool writes (see examples/README.md, landis_ioc_devices.csv): Windows-1252,
`;`-separated, CRLF, one row per device, grouped by installation.

Everything is vectorised (numpy digit matrices, pyarrow joins) and written in chunks of about
200,000 rows, so 1,000,000 rows take seconds and memory does not grow with the file. Output is
deterministic for a given (devices, seed, defect_rate). Identifiers that must be unique (EUIs,
MPAN cores, MPRNs, serials) come from keyed permutations of counters, not from random draws:
a million random 40-bit EUIs would collide about once in two files.

Defects are the ones real extracts carry (see DEFECT_KINDS); each is planted on its own row,
and `GeneratedExtract.planted` counts them exactly, so a test can check that the toolkit
quarantines every one and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.identifiers import mpan_check_digits, mprn_check_digits

__all__ = [
    "DEFECT_KINDS",
    "ENCODING",
    "HEADER",
    "GeneratedExtract",
    "generate_long_extract",
]

HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
ENCODING = "cp1252"
NEWLINE = b"\r\n"

DEFECT_KINDS = (
    "duplicate_row",  # an exact copy of an earlier (clean) row, later in the file
    "truncated_eui",  # last pair of the EUI lost: 70-b3-d5-83-d3-50-29-
    "scientific_mpan",  # MPAN core through a spreadsheet: 1.17442692604E+12
    "bad_mpan_check_digit",  # MPAN core with a wrong 13th digit
    "unknown_device_type",  # Smart Plug
    "impossible_date",  # 31/02/2016
    "ragged_row",  # one field too many
    "missing_firmware",  # blank firmware on an electricity meter
)

# Rows per written chunk: bounds memory (a chunk is ~25 MB of text plus its columns).
CHUNK_ROWS = 200_000

# Device type codes, in the order an installation's rows are written.
_HUB, _ELEC, _GAS, _PPMID, _IHD, _PLUG = range(6)
_DEVICE_TYPES = (
    "Comms Hub",
    "Electricity Meter",
    "Gas Meter",
    "Prepayment Interface",
    "In Home Display",
    "Smart Plug",
)
_MODELS = ("LG-CH1", "E470-S1", "G470-S1", "LG-PPMID", "Ecometer S1")
_MAKE = "Landis+Gyr"
_FIRMWARES = ("", "V3.0.2", "V3.1.0", "V2.1.4", "V2.1.3", "V1.1.0", "V1.0.9", "V1.0.0")
# Per device type: firmware index into _FIRMWARES -> probability (IHDs have none).
_FIRMWARE_MIX = {
    _HUB: ((1, 2), (0.5, 0.5)),
    _ELEC: ((3, 4), (0.85, 0.15)),
    _GAS: ((5, 6), (0.55, 0.45)),
    _PPMID: ((7,), (1.0,)),
    _IHD: ((0,), (1.0,)),
}

# Installation mix. Every installation has a hub and at least one meter; gas-only sites put
# the MPRN on the hub, as the IOC export does. The mix gives ~2.5 devices per installation:
# 1 + 0.75 + (0.25 + 0.75 * 0.25) + 0.03 + 0.29 = 2.51.
_P_ELEC = 0.75
_P_GAS_WITH_ELEC = 0.25
_P_PPMID = 0.03
_P_IHD = 0.29
_DEVICES_PER_INSTALLATION = 2.51

_SUPPLIERS = ("LOND", "MANW", "EELC", "BGAS", "OVOE", "SWEB")
_SUPPLIER_MIX = (0.16, 0.18, 0.17, 0.2, 0.14, 0.15)
_STATUSES = ("Live", "Dormant")
_P_DORMANT = 0.05
_FIRST_DAY = np.datetime64("2012-01-01", "D")
_LAST_DAY = np.datetime64("2019-12-31", "D")

# Free text the engineers typed: customers' names, which the toolkit must never log. Accented
# letters so that an encoding slip shows; no `;` (the IOC tool does not quote fields).
_NOTES = (
    "",
    "Tenant Zoë Brontë, key safe £",
    "Mrs Siân Ó Súilleabháin, dog on site",
    "Mr José Müller, access via rear lane",
    "Ms Chloë Núñez, call before visit",
)
_P_NOTE = 0.02  # of hubs
_RAGGED_TAIL = b";see notes"

# Electricity MSN: L (Landis+Gyr) + 2-digit year + purchaser code + 6 digits.
_PURCHASER_CODES = (b"KA", b"MB", b"DS", b"EA", b"LB", b"GT")
_MPRN_BODY_LENGTHS = (6, 7, 8)  # MPRNs of 8, 9 and 10 digits

# Purposes of the keyed permutations (part of the key, so the identifier spaces differ).
_EUI_KEY, _MPAN_KEY, _MPRN_KEY, _ESN_KEY, _GSN_KEY = range(5)

_EUI_PREFIX = b"70-b3-d5-"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class GeneratedExtract:
    """What was written, so tests and benchmarks can check the toolkit's counts against it."""

    path: Path
    rows: int  # data rows written (excluding header), duplicates and defects included
    installations: int
    planted: dict[str, int]  # defect kind -> count of rows planted


def generate_long_extract(
    path: Path, devices: int, *, seed: int = 0, defect_rate: float = 0.0
) -> GeneratedExtract:
    """Write a Landis+Gyr IOC long extract of `devices` devices to `path`.

    With `defect_rate` > 0, about that fraction of the rows carry one defect each (duplicate
    rows are written in addition to the `devices` rows). Same arguments, same bytes.
    """
    if devices < 0:
        raise ValueError(f"devices must be >= 0, not {devices}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    if not 0.0 <= defect_rate <= 0.5:
        raise ValueError(f"defect_rate must be between 0 and 0.5, not {defect_rate}")
    path = Path(path)
    state = _State(seed=seed, defect_rate=defect_rate)
    with path.open("wb") as handle:
        handle.write(HEADER.encode(ENCODING) + NEWLINE)
        block = 0
        while state.devices < devices:
            _write_block(handle, state, block, devices - state.devices)
            block += 1
    return GeneratedExtract(
        path=path,
        rows=state.rows,
        installations=state.installations,
        planted=dict(state.planted),
    )


@dataclass
class _State:
    """Counters carried from chunk to chunk: they keep identifiers unique across the file."""

    seed: int
    defect_rate: float
    devices: int = 0
    rows: int = 0
    installations: int = 0
    elec_meters: int = 0
    gas_meters: int = 0

    def __post_init__(self) -> None:
        self.planted = dict.fromkeys(DEFECT_KINDS, 0)
        self.mprns = dict.fromkeys(_MPRN_BODY_LENGTHS, 0)
        self.keys = {
            purpose: np.random.default_rng([self.seed, 1_000_003, purpose]).integers(
                0, 2**32, size=4, dtype=np.uint64
            )
            for purpose in (_EUI_KEY, _MPAN_KEY, _MPRN_KEY, _ESN_KEY, _GSN_KEY)
        }


def _write_block(handle: BinaryIO, state: _State, block: int, wanted: int) -> None:
    """Generate one chunk of installations (at most `wanted` devices), plant defects, write."""
    rng = np.random.default_rng([state.seed, block])
    n_inst = min(
        int(CHUNK_ROWS / _DEVICES_PER_INSTALLATION),
        int(wanted / _DEVICES_PER_INSTALLATION * 1.05) + 8,
    )

    # --- installations: composition and installation-level fields -----------------------
    present = np.zeros((n_inst, 5), dtype=bool)
    present[:, _HUB] = True
    has_elec = rng.random(n_inst) < _P_ELEC
    present[:, _ELEC] = has_elec
    present[:, _GAS] = ~has_elec | (rng.random(n_inst) < _P_GAS_WITH_ELEC)
    present[:, _PPMID] = rng.random(n_inst) < _P_PPMID
    present[:, _IHD] = rng.random(n_inst) < _P_IHD
    day = rng.integers(
        0, int((_LAST_DAY - _FIRST_DAY).astype(int)) + 1, size=n_inst, dtype=np.int64
    )
    supplier = rng.choice(len(_SUPPLIERS), size=n_inst, p=_SUPPLIER_MIX)
    status = (rng.random(n_inst) < _P_DORMANT).astype(np.int64)
    distributor = rng.integers(10, 24, size=n_inst, dtype=np.int64)
    mprn_length = rng.choice(np.array(_MPRN_BODY_LENGTHS), size=n_inst)

    inst, device = np.nonzero(present)  # row-major: grouped by installation, hub first
    if len(inst) > wanted:  # the last chunk stops at exactly `devices` devices
        inst, device = inst[:wanted], device[:wanted]
    n = len(inst)
    n_inst = int(inst[-1]) + 1
    has_elec, has_gas = has_elec[:n_inst], present[:n_inst, _GAS]
    day, supplier, status = day[:n_inst], supplier[:n_inst], status[:n_inst]
    distributor, mprn_length = distributor[:n_inst], mprn_length[:n_inst]
    inst_no = state.installations + np.arange(n_inst, dtype=np.int64)

    # --- row-level draws ----------------------------------------------------------------
    firmware = np.zeros(n, dtype=np.int64)
    for code, (choices, weights) in _FIRMWARE_MIX.items():
        rows = np.flatnonzero(device == code)
        firmware[rows] = rng.choice(np.array(choices), size=len(rows), p=weights)
    notes = np.zeros(n, dtype=np.int64)
    hubs = np.flatnonzero(device == _HUB)
    noted = hubs[rng.random(len(hubs)) < _P_NOTE]
    notes[noted] = rng.integers(1, len(_NOTES), size=len(noted))
    purchaser = rng.integers(0, len(_PURCHASER_CODES), size=n, dtype=np.int64)

    # --- identifiers ----------------------------------------------------------------------
    date_mat = _dates(day)  # (n_inst, 10) dd/mm/yyyy
    year = (_FIRST_DAY + day.astype("timedelta64[D]")).astype("datetime64[Y]").astype(int) + 1970
    mpan = _mpan_cores(state, inst_no, distributor)  # (n_inst, 13) digits
    mprn, mprn_len = _mprns(state, has_gas, mprn_length)  # (n_inst, 10) digits, lengths

    eui = _euis(state, state.devices + np.arange(n, dtype=np.int64))  # (n, 23)
    eui_len = np.full(n, 23, dtype=np.int64)

    serial = np.zeros((n, 15), dtype=np.uint8)
    serial_len = np.zeros(n, dtype=np.int64)
    elec_rows = np.flatnonzero(device == _ELEC)
    gas_rows = np.flatnonzero(device == _GAS)
    serial[elec_rows, :11] = _elec_serials(state, year[inst[elec_rows]], purchaser[elec_rows])
    serial_len[elec_rows] = 11
    serial[gas_rows, :15] = _gas_serials(state, year[inst[gas_rows]])
    serial_len[gas_rows] = 15
    state.elec_meters += len(elec_rows)
    state.gas_meters += len(gas_rows)

    # MPxN: MPAN core on the electricity meter, and on the hub when there is one; else MPRN.
    mpxn = np.zeros((n, 17), dtype=np.uint8)
    mpxn_len = np.zeros(n, dtype=np.int64)
    mpan_rows = np.flatnonzero((device == _ELEC) | ((device == _HUB) & has_elec[inst]))
    mprn_rows = np.flatnonzero((device == _GAS) | ((device == _HUB) & ~has_elec[inst]))
    mpxn[mpan_rows, :13] = mpan[inst[mpan_rows]]
    mpxn_len[mpan_rows] = 13
    mpxn[mprn_rows, :10] = mprn[inst[mprn_rows]]
    mpxn_len[mprn_rows] = mprn_len[inst[mprn_rows]]

    dates = date_mat[inst]
    type_text = device.copy()
    tail = np.zeros(n, dtype=np.int64)

    # --- defects --------------------------------------------------------------------------
    picked = _pick_defects(rng, state, device, mpan_rows, n)
    eui_len[picked["truncated_eui"]] = 21
    rows = picked["scientific_mpan"]
    mpxn[rows], mpxn_len[rows] = _scientific(mpxn[rows, :13])
    rows = picked["bad_mpan_check_digit"]
    wrong = (mpxn[rows, 12] - 48 + rng.integers(1, 10, size=len(rows))) % 10
    mpxn[rows, 12] = wrong.astype(np.uint8) + 48
    type_text[picked["unknown_device_type"]] = _PLUG
    rows = picked["impossible_date"]
    dates[rows, :5] = np.frombuffer(b"31/02", dtype=np.uint8)
    tail[picked["ragged_row"]] = 1
    firmware[picked["missing_firmware"]] = 0

    # --- text -----------------------------------------------------------------------------
    site = pc.binary_join_element_wise(
        "LG", pc.utf8_lpad(pc.cast(pa.array(inst_no), pa.string()), 7, "0"), ""
    ).cast(pa.binary())
    columns = [
        site.take(inst),
        _choose(_DEVICE_TYPES, type_text),
        _binary(eui, eui_len),
        _choose((_MAKE,), np.zeros(n, dtype=np.int64)),
        _choose(_MODELS, device),
        _choose(_FIRMWARES, firmware),
        _binary(serial, serial_len),
        _binary(mpxn, mpxn_len),
        _binary(dates),
        _choose(_SUPPLIERS, supplier[inst]),
        _choose(_STATUSES, status[inst]),
        _choose(_NOTES, notes),
    ]
    lines = pc.binary_join_element_wise(*columns, b";")
    lines = pc.binary_join_element_wise(lines, _choose((b"", _RAGGED_TAIL), tail), NEWLINE, b"")

    # Duplicates: copies of clean rows, each inserted at a random later position.
    sources = picked["duplicate_row"]
    if len(sources):
        later = rng.integers(sources + 1, n + 1)  # insert before row `later` (n: at the end)
        keys = np.concatenate([2 * np.arange(n), 2 * later - 1])
        order = np.concatenate([np.arange(n), sources])[np.argsort(keys, kind="stable")]
        lines = lines.take(pa.array(order))
    _write_lines(handle, lines)

    state.devices += n
    state.rows += len(lines)
    state.installations += n_inst
    for kind, rows in picked.items():
        state.planted[kind] += len(rows)


def _pick_defects(
    rng: np.random.Generator, state: _State, device: np.ndarray, mpan_rows: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    """Choose distinct rows for each defect kind, only among rows the defect makes sense on."""
    total = round(state.defect_rate * n)
    counts = np.full(len(DEFECT_KINDS), total // len(DEFECT_KINDS))
    counts[rng.choice(len(DEFECT_KINDS), total % len(DEFECT_KINDS), replace=False)] += 1
    wanted = dict(zip(DEFECT_KINDS, counts.tolist(), strict=True))
    free = np.ones(n, dtype=bool)
    mpan_bearing = np.zeros(n, dtype=bool)
    mpan_bearing[mpan_rows] = True
    everywhere = np.ones(n, dtype=bool)
    eligible = {
        "missing_firmware": device == _ELEC,
        "scientific_mpan": mpan_bearing,
        "bad_mpan_check_digit": mpan_bearing,
    }
    picked: dict[str, np.ndarray] = {}
    # Most constrained first; duplicates last, so that their sources are clean rows.
    order = ["missing_firmware", "scientific_mpan", "bad_mpan_check_digit"]
    order += [kind for kind in DEFECT_KINDS if kind not in order and kind != "duplicate_row"]
    order.append("duplicate_row")
    for kind in order:
        candidates = np.flatnonzero(free & eligible.get(kind, everywhere))
        size = min(wanted[kind], len(candidates))
        rows = np.sort(rng.choice(candidates, size=size, replace=False))
        free[rows] = False
        picked[kind] = rows
    return {kind: picked[kind] for kind in DEFECT_KINDS}


# --- identifiers --------------------------------------------------------------------------


def _permute(values: np.ndarray, n: int, key: np.ndarray) -> np.ndarray:
    """A keyed bijection of [0, n): identifiers that look random yet never repeat.

    A 4-round Feistel network on [0, a*a) with a*a >= n, cycle-walked back into [0, n).
    Values beyond the capacity wrap (uniqueness then holds only up to n identifiers).
    """
    side = math.isqrt(n - 1) + 1
    out = _feistel(values.astype(np.uint64) % np.uint64(n), side, key)
    outside = np.flatnonzero(out >= n)
    while len(outside):
        out[outside] = _feistel(out[outside], side, key)
        outside = outside[out[outside] >= n]
    return out.astype(np.int64)


def _feistel(values: np.ndarray, side: int, key: np.ndarray) -> np.ndarray:
    """One pass of a balanced Feistel network over [0, side**2): a bijection for any round
    function, which is why any mixing hash will do here."""
    a = np.uint64(side)
    left, right = values // a, values % a
    for round_key in key:
        mixed = (right ^ round_key) * np.uint64(0x9E3779B97F4A7C15)
        mixed ^= mixed >> np.uint64(29)
        left, right = right, (left + mixed % a) % a
    return left * a + right


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative ints -> (n, width) ASCII digits, zero padded on the left."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10).astype(np.uint8) + 48


def _mpan_cores(state: _State, inst_no: np.ndarray, distributor: np.ndarray) -> np.ndarray:
    """Valid 13-digit MPAN cores as (n, 13) ASCII digits, unique per installation."""
    body = _permute(inst_no, 10**10, state.keys[_MPAN_KEY])
    digits = np.empty((len(inst_no), 13), dtype=np.uint8)
    digits[:, :2] = _digits(distributor, 2)
    digits[:, 2:12] = _digits(body, 10)
    check = mpan_check_digits((digits[:, :12] - 48).astype(np.int64))
    digits[:, 12] = np.asarray(check, dtype=np.uint8) + 48
    return digits


def _mprns(
    state: _State, has_gas: np.ndarray, body_length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """MPRNs of 8-10 digits (6-8 body digits + 2 check digits) for installations with gas,
    unique per length (one counter per length), as (n, 10) ASCII digits and their lengths."""
    out = np.zeros((len(has_gas), 10), dtype=np.uint8)
    lengths = np.zeros(len(has_gas), dtype=np.int64)
    for k in _MPRN_BODY_LENGTHS:
        rows = np.flatnonzero(has_gas & (body_length == k))
        counter = state.mprns[k] + np.arange(len(rows), dtype=np.int64)
        state.mprns[k] += len(rows)
        body = 10 ** (k - 1) + _permute(counter, 9 * 10 ** (k - 1), state.keys[_MPRN_KEY])
        digits = _digits(body, k)
        check = np.asarray(mprn_check_digits((digits - 48).astype(np.int64)), dtype=np.int64)
        out[rows, :k] = digits
        out[rows, k : k + 2] = _digits(check, 2)
        lengths[rows] = k + 2
    return out, lengths


def _euis(state: _State, counter: np.ndarray) -> np.ndarray:
    """Unique lower-case hyphenated EUI-64s under the 70-b3-d5 prefix, as (n, 23) bytes."""
    low = _permute(counter, 2**40, state.keys[_EUI_KEY]).astype(np.uint64)
    out = np.empty((len(counter), 23), dtype=np.uint8)
    out[:, :9] = np.frombuffer(_EUI_PREFIX, dtype=np.uint8)
    for i in range(5):
        byte = (low >> np.uint64(8 * (4 - i))) & np.uint64(0xFF)
        out[:, 9 + 3 * i] = _HEX[(byte >> np.uint64(4)).astype(np.intp)]
        out[:, 10 + 3 * i] = _HEX[(byte & np.uint64(0xF)).astype(np.intp)]
        if i < 4:
            out[:, 11 + 3 * i] = ord("-")
    return out


def _elec_serials(state: _State, year: np.ndarray, purchaser: np.ndarray) -> np.ndarray:
    """Electricity MSNs like L16KA992700: L, 2-digit year, purchaser code, 6 unique digits."""
    counter = state.elec_meters + np.arange(len(year), dtype=np.int64)
    number = _permute(counter, 10**6, state.keys[_ESN_KEY])
    out = np.empty((len(year), 11), dtype=np.uint8)
    out[:, 0] = ord("L")
    out[:, 1:3] = _digits(year % 100, 2)
    codes = np.frombuffer(b"".join(_PURCHASER_CODES), dtype=np.uint8).reshape(-1, 2)
    out[:, 3:5] = codes[purchaser]
    out[:, 5:11] = _digits(number, 6)
    return out


def _gas_serials(state: _State, year: np.ndarray) -> np.ndarray:
    """Gas MSNs like G4L201689677431: G4L, 4-digit year, 8 unique digits."""
    counter = state.gas_meters + np.arange(len(year), dtype=np.int64)
    number = _permute(counter, 10**8, state.keys[_GSN_KEY])
    out = np.empty((len(year), 15), dtype=np.uint8)
    out[:, :3] = np.frombuffer(b"G4L", dtype=np.uint8)
    out[:, 3:7] = _digits(year, 4)
    out[:, 7:] = _digits(number, 8)
    return out


def _dates(day: np.ndarray) -> np.ndarray:
    """Days since _FIRST_DAY -> (n, 10) dd/mm/yyyy."""
    when = _FIRST_DAY + day.astype("timedelta64[D]")
    years = when.astype("datetime64[Y]")
    months = when.astype("datetime64[M]")
    out = np.empty((len(day), 10), dtype=np.uint8)
    out[:, 0:2] = _digits((when - months).astype(np.int64) + 1, 2)
    out[:, 2] = out[:, 5] = ord("/")
    out[:, 3:5] = _digits((months - years).astype(np.int64) + 1, 2)
    out[:, 6:10] = _digits(years.astype(np.int64) + 1970, 4)
    return out


def _scientific(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """13-digit cores as a spreadsheet shows them: 12 significant digits, trailing zeros
    dropped (1.17442692604E+12). Returns (n, 17) bytes and lengths."""
    values = ((digits.astype(np.int64) - 48) * 10 ** np.arange(12, -1, -1)).sum(axis=1)
    mantissa = _digits((values + 5) // 10, 12)  # round half up to 12 significant digits
    nonzero = mantissa[:, 1:] != ord("0")
    last = np.where(nonzero.any(axis=1), 11 - np.argmax(nonzero[:, ::-1], axis=1), 0)
    out = np.zeros((len(values), 17), dtype=np.uint8)
    out[:, 0] = mantissa[:, 0]
    out[:, 1] = ord(".")
    out[:, 2:13] = mantissa[:, 1:]
    head = np.where(last > 0, last + 2, 1)  # "d.ddd" or just "d"
    rows = np.arange(len(values))
    for i, char in enumerate(b"E+12"):
        out[rows, head + i] = char
    return out, head + 4


# --- text ---------------------------------------------------------------------------------


def _binary(matrix: np.ndarray, lengths: np.ndarray | None = None) -> pa.Array:
    """(n, w) bytes -> Arrow binary array, row i being its first lengths[i] bytes."""
    n, width = matrix.shape
    if lengths is None:
        data = np.ascontiguousarray(matrix).reshape(-1)
        offsets = np.arange(n + 1, dtype=np.int32) * width
    else:
        data = matrix[np.arange(width) < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _choose(values: tuple[str | bytes, ...], index: np.ndarray) -> pa.Array:
    """A column of a few distinct values, encoded once and taken by index."""
    encoded = [v if isinstance(v, bytes) else v.encode(ENCODING) for v in values]
    return pa.array(encoded, pa.binary()).take(pa.array(index))


def _write_lines(handle: BinaryIO, lines: pa.Array) -> None:
    """Write a binary array's bytes as they lie in its data buffer: the lines, end to end."""
    if len(lines) == 0:
        return
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    handle.write(memoryview(lines.buffers()[2])[start:end])
