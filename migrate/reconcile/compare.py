"""The three-way comparison: every installation of the batch, of its plan's excluded list
and of the DCC's inventory put in exactly one category (by RULES, which the report repeats),
and every device compared across the sides that list it.

Device fields are compared where both sides list the device and both read the field: a
firmware of a device that carries one (not an IHD or CAD), blank on one side only, differs;
an MPxN blank on one side differs only on a meter (ESME, GSME, GPF), since hubs carry one
or not as the vendor pleases. A status is checked on the DCC's side for every device it
lists, on the extract's only for installations the store says MIGRATED.

Installations and devices are encoded once as integer codes and the sides aligned by numpy
on those: Arrow's joins on string keys cost ten times as much at a million rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.chunks import single
from migrate.errors import TerminalError
from migrate.model import TYPE2_DEVICES, DeviceType
from migrate.reconcile.sources import MappedSide, StoreSide
from migrate.store.states import RequestState

COMMISSIONED = "commissioned"
METERS = pa.array([DeviceType.ESME, DeviceType.GSME, DeviceType.GPF], pa.string())
NO_FIRMWARE = pa.array(sorted(TYPE2_DEVICES), pa.string())


class Category(StrEnum):
    MIGRATED_MATCHING = "MIGRATED_MATCHING"
    LISTED_TWICE = "LISTED_TWICE"
    DEVICE_SET_DIFFERS = "DEVICE_SET_DIFFERS"
    MPXN_DIFFERS = "MPXN_DIFFERS"
    NOT_COMMISSIONED = "NOT_COMMISSIONED"
    FIRMWARE_DIFFERS = "FIRMWARE_DIFFERS"
    MISSING_FROM_INVENTORY = "MISSING_FROM_INVENTORY"
    NOT_REQUESTED = "NOT_REQUESTED"
    STUCK = "STUCK"
    FAILED_RETRYABLE = "FAILED_RETRYABLE"
    FAILED_PERMANENT = "FAILED_PERMANENT"
    IN_FLIGHT = "IN_FLIGHT"
    AWAITING_COMMIT = "AWAITING_COMMIT"
    WITHDRAWN = "WITHDRAWN"
    OTHER_BATCH = "OTHER_BATCH"
    EXCLUDED = "EXCLUDED"


class Discrepancy(StrEnum):
    LISTED_TWICE = "LISTED_TWICE"
    DEVICE_SET_DIFFERS = "DEVICE_SET_DIFFERS"
    MPXN_DIFFERS = "MPXN_DIFFERS"
    NOT_COMMISSIONED = "NOT_COMMISSIONED"
    FIRMWARE_DIFFERS = "FIRMWARE_DIFFERS"
    IN_INVENTORY_NOT_MIGRATED = "IN_INVENTORY_NOT_MIGRATED"


MEANING: dict[str, str] = {
    Category.MIGRATED_MATCHING: "The DCC lists it, every device Commissioned, with the devices, "
    "MPxNs and firmware the tool sent (and the supplier's extract holds).",
    Category.LISTED_TWICE: "The DCC's inventory lists a device of the installation more than "
    "once: enrolled twice (two requests for one installation), or the DCC's export repeats it.",
    Category.DEVICE_SET_DIFFERS: "Migrated, but a device is missing from or extra in the DCC's "
    "inventory or the supplier's extract (e.g. the gas side after GT01).",
    Category.MPXN_DIFFERS: "Migrated, but a device's MPAN core or MPRN differs between the sides.",
    Category.NOT_COMMISSIONED: "Migrated, but a device's inventory status is not Commissioned "
    "(InstalledNotCommissioned, Suspended, ...).",
    Category.FIRMWARE_DIFFERS: "Migrated, but a device's firmware differs between the sides.",
    Category.MISSING_FROM_INVENTORY: "The store says MIGRATED; the DCC's inventory does not list "
    "the installation.",
    Category.NOT_REQUESTED: "The DCC's inventory lists it; no batch of this store requested it.",
    Category.STUCK: "SUBMITTING or ACCEPTED for longer than the threshold: no outcome came back.",
    Category.FAILED_RETRYABLE: "Failed; a later attempt may cure it.",
    Category.FAILED_PERMANENT: "Failed; another attempt will not cure it.",
    Category.IN_FLIGHT: "Sent, its outcome not yet back (younger than the threshold).",
    Category.AWAITING_COMMIT: "STAGED: never sent, or requeued; waits for the next commit.",
    Category.WITHDRAWN: "Withdrawn by an operator.",
    Category.OTHER_BATCH: "The DCC lists it; another batch of this store requested it.",
    Category.EXCLUDED: "Excluded at planning (never staged), for the plan's reasons.",
    Discrepancy.IN_INVENTORY_NOT_MIGRATED: "The DCC lists it, but its request is not MIGRATED.",
}
# How an installation's category is decided: the first rule that applies.
RULES = (
    "In the batch, request MIGRATED: MISSING_FROM_INVENTORY if the DCC does not list the "
    "installation; else its first device-level discrepancy in the order LISTED_TWICE, "
    "DEVICE_SET_DIFFERS, MPXN_DIFFERS, NOT_COMMISSIONED, FIRMWARE_DIFFERS (how often the DCC "
    "lists a device, which devices, which supply point, whether they run, what they run); "
    "else MIGRATED_MATCHING.",
    "In the batch, request not MIGRATED: STUCK (SUBMITTING or ACCEPTED, unmoved for longer "
    "than the threshold), IN_FLIGHT (the same, younger), FAILED_RETRYABLE, FAILED_PERMANENT, "
    "AWAITING_COMMIT (STAGED), WITHDRAWN.",
    "Not in the batch, listed by the DCC: OTHER_BATCH if another batch of this store "
    "requested it, else NOT_REQUESTED (even if the plan excluded it: the DCC lists what was "
    "not asked for).",
    "Not in the batch, not listed by the DCC: EXCLUDED (the plan excluded it).",
    "Whatever its category, an installation carries every discrepancy it has: the "
    "device-level ones and IN_INVENTORY_NOT_MIGRATED. It is discrepant if its category is "
    "not MIGRATED_MATCHING, WITHDRAWN, OTHER_BATCH or EXCLUDED, or if it carries any.",
)
# Categories that need no action: the installation is where it should be.
SETTLED = frozenset(
    {Category.MIGRATED_MATCHING, Category.WITHDRAWN, Category.OTHER_BATCH, Category.EXCLUDED}
)
# The device-level discrepancies, in the precedence that picks a migrated installation's
# category.
DEVICE_DISCREPANCIES = (
    Discrepancy.LISTED_TWICE,
    Discrepancy.DEVICE_SET_DIFFERS,
    Discrepancy.MPXN_DIFFERS,
    Discrepancy.NOT_COMMISSIONED,
    Discrepancy.FIRMWARE_DIFFERS,
)
REQUEUED = frozenset({Category.STUCK, Category.FAILED_RETRYABLE})


class UnknownState(TerminalError):
    """A request in a state this toolkit does not know: it cannot be placed."""


@dataclass(frozen=True)
class Comparison:
    """installations: one row per installation, sorted by id (see INSTALLATION_COLUMNS);
    devices: one row per device with a discrepancy, sorted by installation, type and id
    (see DEVICE_COLUMNS); counts by category and by discrepancy."""

    installations: pa.Table
    devices: pa.Table
    by_category: dict[str, int]
    by_discrepancy: dict[str, dict[str, int]]
    batch_installations: int
    excluded_installations: int
    inventory_only_installations: int


def _concat(columns: list[pa.Array | pa.ChunkedArray]) -> pa.Array:
    return pa.concat_arrays([single(column).cast(pa.string()) for column in columns])


def _codes(values: pa.Array | pa.ChunkedArray, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The position of each value in `keys`, -1 where absent."""
    found = pc.index_in(single(values), value_set=single(keys))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False)


def _take(column: pa.Array | pa.ChunkedArray, positions: np.ndarray) -> pa.Array:
    """column[positions], null where the position is -1."""
    column = single(column)
    if len(column) == 0:
        return pa.nulls(len(positions), column.type)
    safe = np.where(positions < 0, 0, positions)
    return column.take(pa.array(safe, mask=positions < 0))


def _numpy(flags: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(single(flags), False).to_numpy(zero_copy_only=False).astype(bool)


def _differs(a: pa.Array, b: pa.Array, blank_counts: np.ndarray) -> np.ndarray:
    """Values differ: both given and unequal, or (where `blank_counts`) one given and one
    blank."""
    unequal = _numpy(pc.not_equal(a, b))
    one_blank = _numpy(pc.is_null(a)) != _numpy(pc.is_null(b))
    return unequal | (one_blank & blank_counts)


def _lists(flags: list[np.ndarray], names: list[str]) -> pa.Array:
    """Per row, the names whose flag is set, in the order given."""
    if not flags:
        return pa.array([], pa.list_(pa.string()))
    matrix = np.column_stack(flags)
    columns = np.nonzero(matrix)[1]
    offsets = np.concatenate([[0], np.cumsum(matrix.sum(axis=1))]).astype(np.int32)
    values = pa.array(names, pa.string()).take(pa.array(columns))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


class _Aligned:
    """The devices of the batch's installations on each side, one row per (installation,
    device) listed by any side, with each side's first row for it (-1: the side lacks it).
    Also, per installation of `ids`, the device rows each side lists for it.

    Installation and device ids are dictionary-encoded once for all sides together (one hash
    pass each), and the (installation, device) pairs ranked by one sort."""

    def __init__(self, ids: pa.Array, sides: dict[str, pa.Table], in_batch: np.ndarray) -> None:
        names = list(sides)
        lengths = [sides[name].num_rows for name in names]
        installations = pc.dictionary_encode(
            _concat([sides[name].column("installation_id") for name in names])
        )
        where = np.append(_codes(installations.dictionary, ids), -1)  # [-1]: no id at all
        code = where[pc.fill_null(installations.indices, -1).to_numpy(zero_copy_only=False)]
        side = np.repeat(np.arange(len(names)), lengths)
        self.counts = {
            name: np.bincount(code[(side == i) & (code >= 0)], minlength=len(ids))
            for i, name in enumerate(names)
        }
        keep = code >= 0
        keep[keep] = in_batch[code[keep]]
        devices = pc.dictionary_encode(
            _concat([sides[name].column("device_id") for name in names]).filter(pa.array(keep))
        )
        self.device_ids = devices.dictionary
        width = max(len(self.device_ids), 1)
        keys = code[keep].astype(np.int64) * width + devices.indices.to_numpy(zero_copy_only=False)
        every, position = np.unique(keys, return_inverse=True)
        self.installation = every // width
        self.device = every % width
        row = np.concatenate([np.arange(n) for n in lengths])[keep]
        side = side[keep]
        self.rows: dict[str, np.ndarray] = {}
        self.listed: dict[str, np.ndarray] = {}  # how many rows of each side list the pair
        for i, name in enumerate(names):
            mine = side == i
            rows = np.full(len(every), -1, dtype=np.int64)
            # Written last to first, so that a side listing a pair twice keeps its first row.
            rows[position[mine][::-1]] = row[mine][::-1]
            self.rows[name] = rows
            self.listed[name] = np.bincount(position[mine], minlength=len(every))
        self.tables = sides

    def present(self, side: str) -> np.ndarray:
        return self.rows[side] >= 0

    def column(self, side: str, name: str) -> pa.Array:
        return _take(self.tables[side].column(name), self.rows[side])


def compare(
    store: StoreSide,
    inventory: MappedSide,
    extract: MappedSide | None,
    others: pa.Table,
    *,
    now: dt.datetime,
    stuck_after: dt.timedelta,
) -> Comparison:
    """Place every installation and compare every device (see the module's docstring)."""
    requests = store.requests
    ids = pc.unique(
        _concat(
            [
                requests.column("installation_id"),
                store.excluded.column("installation_id"),
                inventory.installations.column("installation_id"),
            ]
        ).drop_null()
    )
    ids = ids.take(pc.sort_indices(ids))
    n = len(ids)
    request = _codes(ids, requests.column("installation_id"))
    excluded = _codes(ids, store.excluded.column("installation_id"))
    listed = _codes(ids, inventory.installations.column("installation_id"))
    other = _codes(ids, others.column("installation_id"))
    in_batch, in_excluded, in_inventory = request >= 0, excluded >= 0, listed >= 0

    state = _take(requests.column("state"), request)
    unknown = pc.invert(pc.is_in(state, value_set=pa.array(list(RequestState))))
    if pc.any(pc.and_(unknown, pc.is_valid(state))).as_py():
        found = sorted(set(state.filter(unknown).drop_null().to_pylist()))
        raise UnknownState(f"requests in states this toolkit does not know: {found}")

    def is_state(*names: RequestState) -> np.ndarray:
        return _numpy(pc.is_in(state, value_set=pa.array(list(names), pa.string())))

    migrated = is_state(RequestState.MIGRATED)
    waiting = is_state(RequestState.SUBMITTING, RequestState.ACCEPTED)
    cutoff = pa.scalar(now - stuck_after, pa.timestamp("us", tz="UTC"))
    stuck = waiting & _numpy(pc.less(_take(requests.column("updated_at"), request), cutoff))
    retryable = _numpy(_take(requests.column("retryable"), request))

    sides = {"store": store.devices, "dcc": inventory.devices}
    if extract is not None:
        sides["extract"] = extract.devices
    aligned = _Aligned(ids, sides, in_batch)
    device_flags = _device_flags(aligned, inventory, extract, in_inventory, migrated)
    has = {}
    for kind, flags in device_flags.items():
        has[kind] = np.zeros(n, bool)
        has[kind][aligned.installation[flags]] = True
    has[Discrepancy.IN_INVENTORY_NOT_MIGRATED] = in_batch & in_inventory & ~migrated

    conditions = [
        (in_batch & migrated & ~in_inventory, Category.MISSING_FROM_INVENTORY),
        *((in_batch & migrated & has[kind], Category(kind)) for kind in DEVICE_DISCREPANCIES),
        (in_batch & migrated, Category.MIGRATED_MATCHING),
        (in_batch & stuck, Category.STUCK),
        (in_batch & waiting, Category.IN_FLIGHT),
        (in_batch & is_state(RequestState.FAILED) & retryable, Category.FAILED_RETRYABLE),
        (in_batch & is_state(RequestState.FAILED), Category.FAILED_PERMANENT),
        (in_batch & is_state(RequestState.STAGED), Category.AWAITING_COMMIT),
        (in_batch & is_state(RequestState.WITHDRAWN), Category.WITHDRAWN),
        (in_inventory & (other >= 0), Category.OTHER_BATCH),
        (in_inventory, Category.NOT_REQUESTED),
        (in_excluded, Category.EXCLUDED),
    ]
    order = list(Category)
    code = np.select(
        [condition for condition, _ in conditions],
        [order.index(category) for _, category in conditions],
        default=-1,
    )
    assert not np.any(code < 0), "every installation has a category"
    category = pa.array([c.value for c in order], pa.string()).take(pa.array(code))
    kinds = list(Discrepancy)
    any_flag = np.logical_or.reduce([has[kind] for kind in kinds])
    settled = np.isin(code, [order.index(c) for c in SETTLED])
    discrepant = ~settled | any_flag

    installations = pa.table(
        {
            "installation_id": ids,
            "category": category,
            "discrepant": pa.array(discrepant),
            "discrepancies": _lists([has[kind] for kind in kinds], [k.value for k in kinds]),
            "supplier_mpid": pc.coalesce(
                _take(requests.column("supplier_mpid"), request),
                _take(store.excluded.column("supplier_mpid"), excluded),
            ),
            "state": state,
            "reason": _take(requests.column("reason"), request),
            "retryable": _take(requests.column("retryable"), request),
            "attempts": _take(requests.column("attempts"), request),
            "sends": _take(requests.column("sends"), request),
            "updated_at": _take(requests.column("updated_at"), request),
            "excluded_reasons": _take(store.excluded.column("reasons"), excluded),
            "other_batch": _take(others.column("batch"), other),
            "store_devices": pa.array(aligned.counts["store"]),
            "dcc_devices": pa.array(aligned.counts["dcc"]),
            "extract_devices": (
                pa.array(aligned.counts["extract"])
                if extract is not None
                else pa.nulls(n, pa.int64())
            ),
            "dcc_quarantined_rows": _quarantined(inventory, ids),
            "extract_quarantined_rows": (
                _quarantined(extract, ids) if extract is not None else pa.nulls(n, pa.int64())
            ),
        }
    )
    devices = _device_table(aligned, ids, category, device_flags, extract is not None)
    return Comparison(
        installations=installations,
        devices=devices,
        by_category={c.value: int(np.count_nonzero(code == i)) for i, c in enumerate(order)},
        by_discrepancy={
            kind.value: {
                "installations": int(np.count_nonzero(has[kind])),
                "devices": int(np.count_nonzero(device_flags[kind])) if kind in device_flags else 0,
            }
            for kind in kinds
        },
        batch_installations=int(np.count_nonzero(in_batch)),
        excluded_installations=int(np.count_nonzero(in_excluded & ~in_batch)),
        inventory_only_installations=int(np.count_nonzero(in_inventory & ~in_batch & ~in_excluded)),
    )


def _device_flags(
    aligned: _Aligned,
    inventory: MappedSide,
    extract: MappedSide | None,
    in_inventory: np.ndarray,
    migrated: np.ndarray,
) -> dict[Discrepancy, np.ndarray]:
    """Per aligned device, each device-level discrepancy."""
    on_store, on_dcc = aligned.present("store"), aligned.present("dcc")
    device_type = pc.coalesce(*(aligned.column(side, "device_type") for side in aligned.tables))
    bears_firmware = ~_numpy(pc.is_in(device_type, value_set=NO_FIRMWARE))
    is_meter = _numpy(pc.is_in(device_type, value_set=METERS))
    # Pairs of sides to compare a field on: (side, side, who provides it).
    provided = {"store": frozenset({"firmware_version", "mpxn"}), "dcc": inventory.provides}
    if extract is not None:
        provided["extract"] = extract.provides
    pairs = [
        (a, b)
        for a, b in (("store", "dcc"), ("store", "extract"), ("dcc", "extract"))
        if a in provided and b in provided
    ]

    def field_differs(name: str, blank_counts: np.ndarray) -> np.ndarray:
        differs = np.zeros(len(on_store), bool)
        for a, b in pairs:
            if name in provided[a] and name in provided[b]:
                both = aligned.present(a) & aligned.present(b)
                differs |= both & _differs(
                    aligned.column(a, name), aligned.column(b, name), blank_counts
                )
        return differs

    listed_installation = in_inventory[aligned.installation]
    device_set = listed_installation & (on_store != on_dcc)
    not_commissioned = np.zeros(len(on_store), bool)
    if "smi_status" in inventory.provides:
        not_commissioned |= on_dcc & _not_commissioned(aligned.column("dcc", "smi_status"))
    if extract is not None:
        device_set |= on_store != aligned.present("extract")
        if "smi_status" in extract.provides:
            not_commissioned |= (
                aligned.present("extract")
                & migrated[aligned.installation]
                & _not_commissioned(aligned.column("extract", "smi_status"))
            )
    return {
        # Two requests enrolled one installation: the DCC lists its devices once for each.
        Discrepancy.LISTED_TWICE: aligned.listed["dcc"] > 1,
        Discrepancy.DEVICE_SET_DIFFERS: device_set,
        Discrepancy.MPXN_DIFFERS: field_differs("mpxn", is_meter),
        Discrepancy.NOT_COMMISSIONED: not_commissioned,
        Discrepancy.FIRMWARE_DIFFERS: bears_firmware
        & field_differs("firmware_version", bears_firmware),
    }


def _not_commissioned(status: pa.Array) -> np.ndarray:
    """A status other than Commissioned (any case), or none at all."""
    return ~_numpy(pc.equal(pc.utf8_lower(status), COMMISSIONED))


def _quarantined(side: MappedSide, ids: pa.Array) -> pa.Array:
    """Rows of each installation the side's mapping could not use."""
    where = _codes(ids, side.installations.column("installation_id"))
    return pc.fill_null(_take(side.installations.column("quarantined_rows"), where), 0)


def _device_table(
    aligned: _Aligned,
    ids: pa.Array,
    category: pa.Array,
    flags: dict[Discrepancy, np.ndarray],
    with_extract: bool,
) -> pa.Table:
    """The aligned devices that carry a discrepancy, with every side's values."""
    kinds = list(flags)
    keep = np.logical_or.reduce([flags[kind] for kind in kinds])
    rows = np.flatnonzero(keep)
    installation = aligned.installation[rows]

    def side(name: str, column: str) -> pa.Array:
        if name not in aligned.tables:
            return pa.nulls(len(rows), pa.string())
        return aligned.column(name, column).take(pa.array(rows))

    def present(name: str) -> pa.Array:
        if name not in aligned.tables:
            return pa.nulls(len(rows), pa.bool_())
        return pa.array(aligned.present(name)[rows])

    table = pa.table(
        {
            "installation_id": ids.take(pa.array(installation)),
            "category": category.take(pa.array(installation)),
            "device_id": aligned.device_ids.take(pa.array(aligned.device[rows])),
            "device_type": pc.coalesce(
                side("store", "device_type"),
                side("dcc", "device_type"),
                side("extract", "device_type"),
            ),
            "discrepancies": _lists([flags[k][rows] for k in kinds], [k.value for k in kinds]),
            "on_store": present("store"),
            "on_dcc": present("dcc"),
            "on_extract": present("extract") if with_extract else pa.nulls(len(rows), pa.bool_()),
            "store_firmware": side("store", "firmware_version"),
            "dcc_firmware": side("dcc", "firmware_version"),
            "extract_firmware": side("extract", "firmware_version"),
            "store_mpxn": side("store", "mpxn"),
            "dcc_mpxn": side("dcc", "mpxn"),
            "extract_mpxn": side("extract", "mpxn"),
            "dcc_status": side("dcc", "smi_status"),
            "extract_status": side("extract", "smi_status"),
        }
    )
    return table.take(
        pc.sort_indices(
            table,
            sort_keys=[
                ("installation_id", "ascending"),
                ("device_type", "ascending"),
                ("device_id", "ascending"),
            ],
        )
    )
