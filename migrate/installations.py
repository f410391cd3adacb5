"""Group canonical rows and devices into installations: the unit of migration.

Installation keys are encoded once as integer codes; every per-installation figure after
that (first values, device counts, quarantined rows) is a numpy scatter over those codes.
Arrow's group-by and join on string keys cost ten times as much at a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.chunks import single
from migrate.dedup import repeated
from migrate.mapping.spec import INSTALLATION_FIELDS
from migrate.model import INSTALLATION_SCHEMA, DeviceType

# Installation-level fields, as they stand on every canonical row, in the model's order.
ROW_FIELDS = [field for field in INSTALLATION_SCHEMA if field.name in INSTALLATION_FIELDS]
# Fields on which rows of one installation must agree: if they do not, which row is right
# cannot be told.
CONFLICT_FIELDS = ("smso", "supplier_mpid", "mode", "mpan_core", "mprn", "postcode")
# Where an installation without its own MPAN or MPRN takes it from, in order. A hub's MPxN
# counts only if it has the shape.
METER_SOURCES = {
    "mpan_core": (("ESME", None), ("CHF", r"^\d{13}$")),
    "mprn": (("GSME", None), ("GPF", None), ("CHF", r"^\d{6,10}$")),
}


@dataclass(frozen=True)
class DeviceLinks:
    """Per device (a row of the devices table): its installation's row in the installations
    table (-1: none), and whether its id is listed more than once in the estate."""

    installation: np.ndarray
    repeated: np.ndarray

    @classmethod
    def find(cls, installations: pa.Table, devices: pa.Table) -> DeviceLinks:
        """Found from the two tables alone, for tables that did not come from one ingest."""
        rows = pc.index_in(
            devices.column("installation_id"), value_set=installations.column("installation_id")
        )
        return cls(
            installation=pc.fill_null(rows, -1).to_numpy(zero_copy_only=False).astype(np.int64),
            repeated=repeated(devices.column("device_id")),
        )


def installation_codes(ids: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """An integer code per row (-1 where the key is missing) and the keys, in order of first
    appearance.

    Extracts list an installation's rows together, so keys are encoded once per run of
    equal keys rather than once per row: a third of the hashing at a million rows.
    """
    ids = single(ids)
    n = len(ids)
    if n == 0:
        return np.empty(0, dtype=np.int64), pa.array([], pa.string())
    changed = pc.fill_null(pc.not_equal(ids.slice(1), ids.slice(0, n - 1)), True)
    starts = np.flatnonzero(np.concatenate([[True], changed.to_numpy(zero_copy_only=False)]))
    encoded = pc.dictionary_encode(ids.take(pa.array(starts)))
    run_codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    codes = np.repeat(run_codes.astype(np.int64), np.diff(np.append(starts, n)))
    return codes, encoded.dictionary


def first_positions(codes: np.ndarray, candidates: np.ndarray, count: int) -> np.ndarray:
    """For each code, the first of `candidates` (positions in priority order) that has it;
    -1 where none does."""
    owners = codes[candidates]
    kept = owners >= 0
    if not kept.all():  # rows without a key are rare: skip the copy when there are none
        candidates, owners = candidates[kept], owners[kept]
    if len(candidates) == 0:
        return np.full(count, -1, dtype=np.int64)
    # An extract lists an installation's rows together: only the first of each run of one
    # owner can be its first. When the runs' owners never repeat (the usual case), each
    # run's first is its owner's; otherwise the earliest run wins, by a scatter-minimum.
    starts = np.flatnonzero(np.concatenate([[True], owners[1:] != owners[:-1]]))
    candidates, owners = candidates[starts], owners[starts]
    first = np.full(count, -1, dtype=np.int64)
    if np.all(owners[1:] > owners[:-1]):
        first[owners] = candidates
        return first
    rank = np.full(count, len(candidates), dtype=np.int64)
    np.minimum.at(rank, owners, np.arange(len(candidates)))
    found = rank < len(candidates)
    return np.where(found, candidates[np.minimum(rank, len(candidates) - 1)], -1)


def take_or_null(column: pa.ChunkedArray | pa.Array, positions: np.ndarray) -> pa.Array:
    """column[positions], null where the position is -1."""
    column = single(column)
    indices = pa.array(np.maximum(positions, 0), pa.int64(), mask=positions < 0)
    return column.take(indices)


def conflicting_rows(
    rows: pa.Table, codes: np.ndarray, accepted: np.ndarray, count: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per field, every accepted row of an installation whose rows disagree on it, and the
    installations in dispute. Which row is right cannot be told, so none is believed: the
    installation is incomplete, and its value for the field is left empty."""
    found = []
    for name in CONFLICT_FIELDS:
        column = rows.column(name)
        if column.null_count == len(column):
            continue
        has_value = pc.is_valid(column).to_numpy(zero_copy_only=False)
        eligible = accepted & has_value & (codes >= 0)
        first = first_positions(codes, np.flatnonzero(eligible), count)
        reference = take_or_null(column, first[np.maximum(codes, 0)])
        differs = pc.fill_null(pc.not_equal(column, reference), False)
        split = differs.to_numpy(zero_copy_only=False) & eligible
        if not split.any():
            continue
        disputed = np.zeros(count, dtype=bool)
        disputed[codes[split]] = True
        found.append((name, np.flatnonzero(eligible & disputed[np.maximum(codes, 0)]), disputed))
    return found


def build_installations(
    rows: pa.Table,
    codes: np.ndarray,
    keys: pa.Array,
    *,
    counted: np.ndarray,
    rejected: np.ndarray,
    devices: pa.Table,
    device_codes: np.ndarray,
    file_names: pa.Array,
    disputed: dict[str, np.ndarray] | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """One row per installation key among the counted rows, and each key's row in it (-1:
    not listed), by which a device's code finds its installation's row. `device_codes`: each
    device's installation code, -1 for a device that is not counted (its row refused).

    Fields come from its first row with a value, accepted rows before quarantined ones (a
    refused value is null, so what a quarantined row holds passed its checks). Devices are
    the accepted ones, counted by type. An installation all of whose rows were quarantined is
    listed with no devices, so that later stages see it as incomplete, not absent.
    """
    count = len(keys)
    positions = np.arange(rows.num_rows)
    present = counted & (codes >= 0)
    first_row = first_positions(codes, positions[present], count)
    listed = first_row >= 0
    preferred = np.concatenate([positions[present & ~rejected], positions[present & rejected]])
    columns: dict[str, pa.Array] = {"installation_id": keys}
    for field in ROW_FIELDS:
        column = rows.column(field.name)
        has_value = pc.is_valid(column).to_numpy(zero_copy_only=False)
        chosen = first_positions(codes, preferred[has_value[preferred]], count)
        if disputed and field.name in disputed:
            chosen[disputed[field.name]] = -1
        columns[field.name] = take_or_null(column, chosen)
    counted_device = device_codes >= 0
    kinds = {
        kind: found & counted_device
        for kind, found in _device_kinds(devices.column("device_type")).items()
    }
    mpxn = single(devices.column("mpxn"))
    has_mpxn = pc.is_valid(mpxn).to_numpy(zero_copy_only=False) & counted_device
    for kind, sources in METER_SOURCES.items():
        # Each source in turn, for the installations still without a value: most have their
        # meter, so the hub's MPxN is looked at (and shape-checked) for only a few. The
        # device each value comes from is noted, and all are taken at once at the end.
        missing = pc.is_null(columns[kind]).to_numpy(zero_copy_only=False)
        source = np.full(count, -1, dtype=np.int64)
        for device_type, shape in sources:
            if not missing.any():
                break
            carriers = np.flatnonzero(kinds[device_type] & has_mpxn)
            carriers = carriers[missing[device_codes[carriers]]]
            if shape is not None and len(carriers):
                fits = pc.match_substring_regex(mpxn.take(pa.array(carriers)), shape)
                carriers = carriers[fits.to_numpy(zero_copy_only=False)]
            first = first_positions(device_codes, carriers, count)
            found = first >= 0
            source[found] = first[found]
            missing &= ~found
        if (source >= 0).any():
            columns[kind] = pc.coalesce(columns[kind], take_or_null(mpxn, source))
    by_type = {
        f"n_{t.lower()}": np.bincount(device_codes[kinds[t.value]], minlength=count)
        for t in DeviceType
    }
    columns["devices"] = pa.array(sum(by_type.values(), np.zeros(count, dtype=np.int64)))
    columns.update({name: pa.array(values) for name, values in by_type.items()})
    columns["quarantined_rows"] = pa.array(np.bincount(codes[present & rejected], minlength=count))
    columns["source_file"] = file_names.take(take_or_null(rows.column("file"), first_row))
    columns["source_row"] = take_or_null(rows.column("source_row"), first_row)
    table = pa.table(columns)
    if not listed.all():
        table = table.filter(pa.array(listed))
    order = first_row[listed]
    row_of = np.full(count, -1, dtype=np.int64)
    row_of[listed] = np.arange(table.num_rows)
    if np.any(order[1:] < order[:-1]):  # codes follow first appearance, so this is rare
        placing = np.argsort(order, kind="stable")
        table = table.take(pa.array(placing))
        row_of[np.flatnonzero(listed)[placing]] = np.arange(table.num_rows)
    return table.select(INSTALLATION_SCHEMA.names).cast(INSTALLATION_SCHEMA), row_of


def _device_kinds(types: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """A boolean mask per device type, from one dictionary encoding of the type column."""
    encoded = pc.dictionary_encode(single(types))
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    known = {name: index for index, name in enumerate(encoded.dictionary.to_pylist())}
    return {t.value: codes == known.get(t.value, -2) for t in DeviceType}
