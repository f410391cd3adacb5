"""Validate installations against a cohort's rules: eligible, or excluded with every reason.

The installation is the unit of migration: it is eligible only if its comms hub and every
meter and PPMID match one listed combination exactly (IHDs and CADs aside), and nothing
else rules it out. All checks are array operations over installation codes; there is no
Python loop over installations or devices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.chunks import single
from migrate.cohort.firmware_order import order_keys
from migrate.cohort.spec import CohortRules, Combination
from migrate.dedup import repeated
from migrate.installations import first_positions, take_or_null
from migrate.model import (
    COMBINATION_SLOTS,
    TYPE2_DEVICES,
    DeviceType,
    InstallationReason,
    Mode,
)

R = InstallationReason
FINDING_SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("device_type", pa.string()),
        pa.field("manufacturer", pa.string()),
        pa.field("model", pa.string()),
        pa.field("firmware_version", pa.string()),
        pa.field("reason", pa.string()),
    ]
)
# Devices outside the combination slots that still make a set unlisted (no CPL row has them).
UNLISTABLE = frozenset(set(DeviceType) - set(COMBINATION_SLOTS) - TYPE2_DEVICES)


@dataclass(frozen=True)
class Validation:
    """installations: the ingest's table with eligible, reasons, combination and models.
    findings: the device behind each device-level reason. device_installation: each device's
    row in `installations` (-1: none), for what is built per installation from its devices."""

    cohort: str
    installations: pa.Table
    findings: pa.Table
    device_installation: np.ndarray

    @property
    def eligible(self) -> pa.Table:
        return self.installations.filter(self.installations.column("eligible"))

    @property
    def excluded(self) -> pa.Table:
        return self.installations.filter(pc.invert(self.installations.column("eligible")))

    def excluded_by_reason(self) -> dict[str, int]:
        reasons = pc.list_flatten(self.installations.column("reasons"))
        counted = pc.value_counts(reasons).to_pylist()
        return {
            item["values"]: item["counts"] for item in sorted(counted, key=lambda i: i["values"])
        }


def _model_key(device_type: pa.Array, manufacturer: pa.Array, model: pa.Array) -> pa.Array:
    """type|manufacturer|model, the manufacturer compared case-insensitively."""
    return pc.binary_join_element_wise(device_type, pc.utf8_lower(manufacturer), model, "|")


def _combination_keys(combination: Combination) -> dict[DeviceType, tuple[str, str]]:
    """Per slot: (model key, firmware key), spelt as _model_key spells a device's."""
    keys = {}
    for slot, device in combination.devices.items():
        model_key = f"{slot.value}|{device.manufacturer.lower()}|{device.model}"
        keys[slot] = (model_key, f"{model_key}|{device.firmware}")
    return keys


def _signature(smso: str, slots: dict[DeviceType, str]) -> str:
    return smso + "#" + "#".join(slots.get(slot, "") for slot in COMBINATION_SLOTS)


class _Reasons:
    """Boolean masks per reason, over installations, turned into one list per installation."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.masks: dict[InstallationReason, np.ndarray] = {}

    def flag(self, reason: InstallationReason, mask: np.ndarray) -> None:
        current = self.masks.get(reason)
        self.masks[reason] = mask if current is None else current | mask

    def unless(self, cause: InstallationReason, artefacts: tuple[InstallationReason, ...]) -> None:
        """Drop reasons that `cause` may have produced: an installation with a quarantined
        row lacks that row's device or value, so a missing hub, an unlisted set or an unknown
        mode or SMSO says nothing more than that."""
        mask = self.masks.get(cause)
        if mask is None:
            return
        for reason in artefacts:
            if reason in self.masks:
                self.masks[reason] = self.masks[reason] & ~mask

    def flag_codes(self, reason: InstallationReason, codes: np.ndarray) -> None:
        self.flag(reason, np.bincount(codes[codes >= 0], minlength=self.count) > 0)

    def lists(self) -> tuple[pa.Array, np.ndarray]:
        """The reasons of each installation in enum order, and whether it has none."""
        order = [reason for reason in R if reason in self.masks]
        if not order:
            empty = pa.ListArray.from_arrays(
                pa.array(np.zeros(self.count + 1, np.int32)), pa.array([], pa.string())
            )
            return empty, np.ones(self.count, dtype=bool)
        stacked = np.stack([self.masks[reason] for reason in order], axis=1)
        installation, which = np.nonzero(stacked)
        per = np.bincount(installation, minlength=self.count)
        offsets = np.concatenate([[0], np.cumsum(per)]).astype(np.int32)
        names = pa.array([reason.value for reason in order], pa.string())
        values = names.take(pa.array(which))
        return pa.ListArray.from_arrays(pa.array(offsets), values), per == 0


def validate(
    installations: pa.Table, devices: pa.Table, rules: CohortRules, as_of: dt.date | None = None
) -> Validation:
    """Every reason that applies to every installation, against the combinations listed by
    `as_of` (default: the start of the cohort's window): a combination listed later cannot
    be migrated yet."""
    as_of = as_of or rules.window.start
    count = installations.num_rows
    reasons = _Reasons(count)
    codes = (
        pc.fill_null(
            pc.index_in(
                devices.column("installation_id"), value_set=installations.column("installation_id")
            ),
            -1,
        )
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )

    def column(name: str) -> np.ndarray:
        return installations.column(name).to_numpy(zero_copy_only=False)

    reasons.flag(R.DATA_INVALID, column("quarantined_rows") > 0)
    hubs = column("n_chf")
    reasons.flag(R.NO_COMMS_HUB, hubs == 0)
    reasons.flag(R.MULTIPLE_COMMS_HUBS, hubs > 1)
    smso = installations.column("smso")
    reasons.flag(
        R.WRONG_SMSO,
        ~pc.fill_null(pc.is_in(smso, value_set=pa.array(rules.smso, pa.string())), False).to_numpy(
            zero_copy_only=False
        ),
    )
    _flag_mode(reasons, installations.column("mode"), rules)
    _flag_duplicates(reasons, installations, devices, codes)
    findings = _flag_devices(reasons, installations, devices, codes, rules)

    combinations = rules.combinations
    signature, models = _signatures(installations, devices, codes, count)
    combination_signatures = pa.array(
        [
            _signature(c.smso, {s: keys[1] for s, keys in _combination_keys(c).items()})
            for c in combinations
        ],
        pa.string(),
    )
    match = pc.index_in(
        pc.binary_join_element_wise(pc.fill_null(smso, ""), signature, "#"),
        value_set=combination_signatures,
    )
    listed_in_time = np.array([c.first_listed <= as_of for c in combinations], dtype=bool)
    matched = match.is_valid().to_numpy(zero_copy_only=False)
    match_index = pc.fill_null(match, 0).to_numpy(zero_copy_only=False)
    too_early = matched & ~listed_in_time[match_index] if len(combinations) else matched
    reasons.flag(R.COMBINATION_NOT_YET_LISTED, too_early)
    device_level = np.zeros(count, dtype=bool)
    for reason in (
        R.DMC_NOT_ELIGIBLE,
        R.FIRMWARE_UPGRADE_REQUIRED,
        R.FIRMWARE_NOT_LISTED,
        R.FIRMWARE_UNRECOGNISED,
    ):
        device_level |= reasons.masks.get(reason, np.zeros(count, dtype=bool))
    reasons.flag(R.COMBINATION_NOT_LISTED, ~matched & ~device_level)
    reasons.unless(
        R.DATA_INVALID,
        (R.NO_COMMS_HUB, R.COMBINATION_NOT_LISTED, R.MODE_UNKNOWN, R.WRONG_SMSO),
    )
    lists, eligible = reasons.lists()
    combination_ids = pa.array([c.id for c in combinations], pa.string()).take(match)
    table = (
        installations.append_column("eligible", pa.array(eligible))
        .append_column("reasons", lists)
        .append_column("combination", pc.if_else(pa.array(eligible), combination_ids, None))
        .append_column("models", models)
    )
    return Validation(rules.name, table, findings, codes)


def _flag_mode(reasons: _Reasons, mode: pa.ChunkedArray, rules: CohortRules) -> None:
    values = mode.to_numpy(zero_copy_only=False)
    taken = {m.value for m in rules.modes}
    known = pc.is_valid(mode).to_numpy(zero_copy_only=False)
    reasons.flag(R.MODE_UNKNOWN, ~known)
    if Mode.DORMANT.value not in taken:
        reasons.flag(R.DORMANT, values == Mode.DORMANT.value)
    if Mode.ACTIVE.value not in taken:
        reasons.flag(R.NOT_DORMANT, values == Mode.ACTIVE.value)


def _flag_duplicates(
    reasons: _Reasons, installations: pa.Table, devices: pa.Table, codes: np.ndarray
) -> None:
    """A device or an MPxN in two installations (or twice in one): which is right cannot be
    told, so every installation involved is excluded."""
    if devices.num_rows:
        reasons.flag_codes(R.DUPLICATE_DEVICE, codes[repeated(devices.column("device_id"))])
    for name in ("mpan_core", "mprn"):
        reasons.flag(R.DUPLICATE_MPXN, repeated(installations.column(name)))


def _flag_devices(
    reasons: _Reasons,
    installations: pa.Table,
    devices: pa.Table,
    codes: np.ndarray,
    rules: CohortRules,
) -> pa.Table:
    """Device-level reasons: a meter without its MPxN; a model on no combination; firmware
    not listed with its model, placed against the listed versions."""
    types = devices.column("device_type")
    meter = pc.is_in(types, value_set=pa.array(["ESME", "GSME", "GPF"])).to_numpy(
        zero_copy_only=False
    )
    no_mpxn = meter & pc.is_null(devices.column("mpxn")).to_numpy(zero_copy_only=False)
    reasons.flag_codes(R.MPXN_MISSING, codes[no_mpxn])

    combinations = rules.combinations
    listed_firmware: set[str] = set()
    newest_by_model: dict[str, int] = {}  # model key -> newest listed firmware's order key
    by_manufacturer: dict[str, list[tuple[str, str]]] = {}
    for combination in combinations:
        for slot, (model_key, firmware_key) in _combination_keys(combination).items():
            listed_firmware.add(firmware_key)
            newest_by_model.setdefault(model_key, -1)
            device = combination.devices[slot]
            by_manufacturer.setdefault(device.manufacturer, []).append((model_key, device.firmware))
    for manufacturer, listed in by_manufacturer.items():
        order = rules.order_for(manufacturer)
        if order is None:
            continue
        keys = order_keys(pa.array([firmware for _, firmware in listed]), order).to_pylist()
        for (model_key, _), key in zip(listed, keys, strict=True):
            if key is not None:
                newest_by_model[model_key] = max(newest_by_model[model_key], key)
    listed_models = newest_by_model

    slot_device = pc.is_in(types, value_set=pa.array([s.value for s in COMBINATION_SLOTS]))
    slot_rows = np.flatnonzero(slot_device.to_numpy(zero_copy_only=False))
    # Only the columns read below: each column more would be taken too.
    subset = devices.select(FINDING_SCHEMA.names[:-1]).take(pa.array(slot_rows))
    model_key = _model_key(
        subset.column("device_type"), subset.column("manufacturer"), subset.column("model")
    )
    firmware_key = pc.binary_join_element_wise(model_key, subset.column("firmware_version"), "|")
    model_listed = pc.fill_null(
        pc.is_in(model_key, value_set=pa.array(sorted(listed_models), pa.string())), False
    ).to_numpy(zero_copy_only=False)
    firmware_listed = pc.fill_null(
        pc.is_in(firmware_key, value_set=pa.array(sorted(listed_firmware), pa.string())), False
    ).to_numpy(zero_copy_only=False)
    unlisted_model = ~model_listed
    placed = _firmware_order(subset, rules)
    newest = pa.array([listed_models[k] for k in sorted(listed_models)], pa.int64()).take(
        pc.index_in(model_key, value_set=pa.array(sorted(listed_models), pa.string()))
    )
    order = placed.to_numpy(zero_copy_only=False)
    readable = placed.is_valid().to_numpy(zero_copy_only=False)
    newest_values = pc.fill_null(newest, -1).to_numpy(zero_copy_only=False)
    other_firmware = model_listed & ~firmware_listed
    unrecognised = other_firmware & ~readable
    older = other_firmware & readable & (np.nan_to_num(order, nan=-1) < newest_values)
    newer = other_firmware & readable & ~older
    findings = []
    subset_codes = codes[slot_rows]
    for reason, mask in (
        (R.DMC_NOT_ELIGIBLE, unlisted_model),
        (R.FIRMWARE_UPGRADE_REQUIRED, older),
        (R.FIRMWARE_NOT_LISTED, newer),
        (R.FIRMWARE_UNRECOGNISED, unrecognised),
    ):
        reasons.flag_codes(reason, subset_codes[mask])
        if mask.any():
            hit = subset.filter(pa.array(mask))
            findings.append(
                pa.table(
                    {
                        **{name: hit.column(name) for name in FINDING_SCHEMA.names[:-1]},
                        "reason": pa.repeat(pa.scalar(reason.value), hit.num_rows),
                    }
                )
            )
    if not findings:
        return FINDING_SCHEMA.empty_table()
    return pa.concat_tables(findings).cast(FINDING_SCHEMA)


def _firmware_order(devices: pa.Table, rules: CohortRules) -> pa.Array:
    """Each device's firmware order key under its manufacturer's scheme (null if none)."""
    manufacturer = single(pc.utf8_lower(devices.column("manufacturer")))
    firmware = single(devices.column("firmware_version"))
    keys = np.zeros(devices.num_rows, dtype=np.float64)
    keys[:] = np.nan
    for name in pc.unique(manufacturer).drop_null().to_pylist():
        order = rules.order_for(name)
        if order is None:
            continue
        rows = np.flatnonzero(pc.equal(manufacturer, name).to_numpy(zero_copy_only=False))
        # A few versions over many devices: each distinct one is read once.
        encoded = pc.dictionary_encode(firmware.take(pa.array(rows)))
        placed = order_keys(encoded.dictionary, order).take(encoded.indices)
        values = pc.fill_null(pc.cast(placed, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        keys[rows] = values
    return pa.array(keys, pa.float64(), from_pandas=True)


def _signatures(
    installations: pa.Table, devices: pa.Table, codes: np.ndarray, count: int
) -> tuple[pa.Array, pa.Array]:
    """Per installation: its device set as the combinations spell theirs (null where it
    cannot match any: two devices in one slot, or a device no combination has), and a
    readable label of its models for reports."""
    types = devices.column("device_type")
    firmware_key = pc.binary_join_element_wise(
        _model_key(types, devices.column("manufacturer"), devices.column("model")),
        devices.column("firmware_version"),
        "|",
    )
    slots = []
    labels = []
    valid = np.ones(count, dtype=bool)
    for slot in COMBINATION_SLOTS:
        rows = np.flatnonzero(pc.equal(types, slot.value).to_numpy(zero_copy_only=False))
        per = np.bincount(codes[rows], minlength=count) if len(rows) else np.zeros(count, int)
        valid &= per <= 1
        first = first_positions(codes, rows, count)
        taken = take_or_null(firmware_key, first)
        # A device in the slot without model or firmware cannot match: never an empty slot.
        valid &= ~((first >= 0) & pc.is_null(taken).to_numpy(zero_copy_only=False))
        slots.append(pc.fill_null(taken, ""))
        model = take_or_null(devices.column("model"), first)
        labels.append(pc.fill_null(model, ""))
    for other in UNLISTABLE:
        rows = np.flatnonzero(pc.equal(types, other.value).to_numpy(zero_copy_only=False))
        valid[codes[rows]] = False
    signature = pc.binary_join_element_wise(*slots, "#")
    label = pc.utf8_trim(pc.binary_join_element_wise(*labels, " + "), characters=" +")
    label = pc.replace_substring_regex(label, pattern=r"( \+ )+", replacement=" + ")
    return pc.if_else(pa.array(valid), signature, None), label
