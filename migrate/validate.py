"""Validate installations against a cohort's rules: eligible, or excluded with every reason.

The installation is the unit of migration: it is eligible only if its comms hub and every
meter and PPMID match one listed combination exactly (IHDs and CADs aside), and nothing
else rules it out. All checks are array operations over installation codes; there is no
Python loop over installations or devices.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate.chunks import single
from migrate.cohort.firmware_order import order_keys
from migrate.cohort.spec import CohortRules, Combination
from migrate.dedup import repeated
from migrate.installations import DeviceLinks, first_positions
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
    row in `installations` (-1: none), and device_models its model, for what is built per
    installation from its devices."""

    cohort: str
    installations: pa.Table
    findings: pa.Table
    device_installation: np.ndarray
    device_models: DeviceModels

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
    installations: pa.Table,
    devices: pa.Table,
    rules: CohortRules,
    as_of: dt.date | None = None,
    links: DeviceLinks | None = None,
) -> Validation:
    """Every reason that applies to every installation, against the combinations listed by
    `as_of` (default: the start of the cohort's window): a combination listed later cannot
    be migrated yet. `links` are what the ingest already knows of the devices; without
    them they are found again."""
    as_of = as_of or rules.window.start
    links = links or DeviceLinks.find(installations, devices)
    count = installations.num_rows
    reasons = _Reasons(count)
    owner = links.installation

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
    if devices.num_rows:
        # A device in two installations (or twice in one): which is right cannot be told, so
        # every installation involved is excluded.
        reasons.flag_codes(R.DUPLICATE_DEVICE, owner[links.repeated])
    with ThreadPoolExecutor(1, thread_name_prefix="validate") as beside:
        # The same MPxN in two installations (which is right cannot be told), found beside
        # the device checks: Arrow and numpy let go of the GIL.
        shared_mpxn = [
            beside.submit(repeated, installations.column(name)) for name in ("mpan_core", "mprn")
        ]
        models = DeviceModels.of(devices)
        findings = _flag_devices(reasons, devices, owner, models, rules)
        combinations = rules.combinations
        match, labels = _match_combinations(smso, owner, models, combinations, count)
        for found in shared_mpxn:
            reasons.flag(R.DUPLICATE_MPXN, found.result())
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
        .append_column("models", labels)
    )
    return Validation(rules.name, table, findings, owner, models)


def _flag_mode(reasons: _Reasons, mode: pa.ChunkedArray, rules: CohortRules) -> None:
    def equal(value: str) -> np.ndarray:
        return pc.fill_null(pc.equal(mode, value), False).to_numpy(zero_copy_only=False)

    taken = {m.value for m in rules.modes}
    known = pc.is_valid(mode).to_numpy(zero_copy_only=False)
    reasons.flag(R.MODE_UNKNOWN, ~known)
    if Mode.DORMANT.value not in taken:
        reasons.flag(R.DORMANT, equal(Mode.DORMANT.value))
    if Mode.ACTIVE.value not in taken:
        reasons.flag(R.NOT_DORMANT, equal(Mode.ACTIVE.value))


@dataclass(frozen=True)
class DeviceModels:
    """The estate's distinct (type, manufacturer, model, firmware), and each device's one.

    A million devices have a few dozen: the rules are read once per distinct model, and
    what they say is carried to the devices by a numpy take, not by string work per device.
    """

    of_device: np.ndarray  # per device, its row in `table`
    table: pa.Table  # device_type, manufacturer, model, firmware_version; one row per model

    COLUMNS = ("device_type", "manufacturer", "model", "firmware_version")

    @classmethod
    def of(cls, devices: pa.Table) -> DeviceModels:
        codes = np.zeros(devices.num_rows, dtype=np.int64)
        values = {}
        for name in cls.COLUMNS:
            encoded = pc.dictionary_encode(devices.column(name))
            # The last chunk's dictionary holds every value (the chunks share one hash table).
            dictionary = (
                encoded.chunks[-1].dictionary if encoded.num_chunks else pa.array([], pa.string())
            )
            indices = np.concatenate(
                [
                    np.zeros(0, dtype=np.int64),
                    *(
                        pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False)
                        for chunk in encoded.chunks
                    ),
                ]
            )
            values[name] = (dictionary, indices)
            # Codes kept dense (first appearance) so that the next column's product fits.
            combined = codes * (len(dictionary) + 1) + (indices + 1)
            codes = pc.dictionary_encode(pa.array(combined)).indices.to_numpy().astype(np.int64)
        # Dense codes in order of first appearance: a code's first device is where the
        # running maximum rises.
        rising = np.ones(len(codes), dtype=bool)
        rising[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
        first = np.flatnonzero(rising)
        table = pa.table(
            {
                name: dictionary.take(pa.array(indices[first], mask=indices[first] < 0))
                for name, (dictionary, indices) in values.items()
            }
        )
        return cls(codes, table)

    def __len__(self) -> int:
        return self.table.num_rows

    def of_type(self, *types: str) -> np.ndarray:
        """Per model: whether its type is one of these."""
        return pc.fill_null(
            pc.is_in(self.table.column("device_type"), value_set=pa.array(types, pa.string())),
            False,
        ).to_numpy(zero_copy_only=False)

    def firmware_keys(self) -> pa.ChunkedArray:
        """type|manufacturer|model|firmware per model, as the combinations spell theirs."""
        table = self.table
        return pc.binary_join_element_wise(
            _model_key(
                table.column("device_type"), table.column("manufacturer"), table.column("model")
            ),
            table.column("firmware_version"),
            "|",
        )


def _flag_devices(
    reasons: _Reasons,
    devices: pa.Table,
    owner: np.ndarray,
    models: DeviceModels,
    rules: CohortRules,
) -> pa.Table:
    """Device-level reasons: a meter without its MPxN; a model on no combination; firmware
    not listed with its model, placed against the listed versions."""
    meter = models.of_type("ESME", "GSME", "GPF")[models.of_device]
    no_mpxn = meter & pc.is_null(devices.column("mpxn")).to_numpy(zero_copy_only=False)
    reasons.flag_codes(R.MPXN_MISSING, owner[no_mpxn])

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
    listed_models = pa.array(sorted(newest_by_model), pa.string())

    # Each rule read once per distinct model, over the models that fill a combination slot.
    table = models.table
    model_key = _model_key(
        table.column("device_type"), table.column("manufacturer"), table.column("model")
    )
    slot = models.of_type(*(s.value for s in COMBINATION_SLOTS))
    model_listed = pc.fill_null(pc.is_in(model_key, value_set=listed_models), False).to_numpy(
        zero_copy_only=False
    )
    firmware_listed = pc.fill_null(
        pc.is_in(models.firmware_keys(), value_set=pa.array(sorted(listed_firmware), pa.string())),
        False,
    ).to_numpy(zero_copy_only=False)
    placed = _firmware_order(table, rules)
    newest = pa.array([newest_by_model[k] for k in listed_models.to_pylist()], pa.int64()).take(
        pc.index_in(model_key, value_set=listed_models)
    )
    order = placed.to_numpy(zero_copy_only=False)
    readable = placed.is_valid().to_numpy(zero_copy_only=False)
    newest_values = pc.fill_null(newest, -1).to_numpy(zero_copy_only=False)
    other_firmware = slot & model_listed & ~firmware_listed
    unrecognised = other_firmware & ~readable
    older = other_firmware & readable & (np.nan_to_num(order, nan=-1) < newest_values)
    newer = other_firmware & readable & ~older
    findings = []
    for reason, by_model in (
        (R.DMC_NOT_ELIGIBLE, slot & ~model_listed),
        (R.FIRMWARE_UPGRADE_REQUIRED, older),
        (R.FIRMWARE_NOT_LISTED, newer),
        (R.FIRMWARE_UNRECOGNISED, unrecognised),
    ):
        if not by_model.any():
            continue
        mask = by_model[models.of_device]
        reasons.flag_codes(reason, owner[mask])
        hit = devices.select(FINDING_SCHEMA.names[:-1]).filter(pa.array(mask))
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


def _firmware_order(models: pa.Table, rules: CohortRules) -> pa.Array:
    """Each model's firmware order key under its manufacturer's scheme (null if none)."""
    manufacturer = single(pc.utf8_lower(models.column("manufacturer")))
    firmware = single(models.column("firmware_version"))
    keys = np.full(models.num_rows, np.nan, dtype=np.float64)
    for name in pc.unique(manufacturer).drop_null().to_pylist():
        order = rules.order_for(name)
        if order is None:
            continue
        rows = np.flatnonzero(pc.equal(manufacturer, name).to_numpy(zero_copy_only=False))
        placed = order_keys(firmware.take(pa.array(rows)), order)
        keys[rows] = pc.fill_null(pc.cast(placed, pa.float64()), np.nan).to_numpy(
            zero_copy_only=False
        )
    return pa.array(keys, pa.float64(), from_pandas=True)


def _match_combinations(
    smso: pa.ChunkedArray,
    owner: np.ndarray,
    models: DeviceModels,
    combinations: list[Combination],
    count: int,
) -> tuple[pa.Array, pa.Array]:
    """Per installation: the listed combination its SMSO and device set are (null if none),
    and a readable label of its models for reports.

    An installation's device set is the model in each combination slot. Installations
    sharing an SMSO and a set are one distinct set: each set is spelt and looked up once.
    A set cannot match with two devices in one slot, a slot device without model or
    firmware, or a device that no combination has.
    """
    firmware_key = models.firmware_keys()
    unkeyed = pc.is_null(firmware_key).to_numpy(zero_copy_only=False)
    smso_codes = pc.fill_null(pc.dictionary_encode(single(smso)).indices, -1).to_numpy(
        zero_copy_only=False
    )
    set_codes = smso_codes.astype(np.int64)
    valid = np.ones(count, dtype=bool)
    slot_models = []
    has_owner = owner >= 0
    for slot in COMBINATION_SLOTS:
        rows = np.flatnonzero(models.of_type(slot.value)[models.of_device] & has_owner)
        valid &= np.bincount(owner[rows], minlength=count) <= 1
        first = first_positions(owner, rows, count)
        model = np.where(first >= 0, models.of_device[np.maximum(first, 0)], -1)
        valid &= ~((model >= 0) & unkeyed[model])
        slot_models.append(model)
        combined = set_codes * (len(models) + 1) + (model + 1)
        set_codes = pc.dictionary_encode(pa.array(combined)).indices.to_numpy().astype(np.int64)
    for other in UNLISTABLE:
        rows = np.flatnonzero(models.of_type(other.value)[models.of_device] & has_owner)
        valid[owner[rows]] = False
    # The first installation of each distinct set (codes are dense, in first appearance).
    rising = np.ones(count, dtype=bool)
    rising[1:] = set_codes[1:] > np.maximum.accumulate(set_codes)[:-1]
    first_of_set = np.flatnonzero(rising)
    slots, labels = [], []
    for model in slot_models:
        of_set = model[first_of_set]
        indices = pa.array(np.maximum(of_set, 0), pa.int64(), mask=of_set < 0)
        slots.append(pc.fill_null(firmware_key.take(indices), ""))
        labels.append(pc.fill_null(models.table.column("model").take(indices), ""))
    signature = pc.binary_join_element_wise(
        pc.fill_null(single(smso).take(pa.array(first_of_set)), ""), *slots, "#"
    )
    combination_signatures = pa.array(
        [
            _signature(c.smso, {s: keys[1] for s, keys in _combination_keys(c).items()})
            for c in combinations
        ],
        pa.string(),
    )
    match = pc.index_in(signature, value_set=combination_signatures).take(pa.array(set_codes))
    label = pc.utf8_trim(pc.binary_join_element_wise(*labels, " + "), characters=" +")
    label = pc.replace_substring_regex(label, pattern=r"( \+ )+", replacement=" + ")
    return pc.if_else(pa.array(valid), match, None), single(label).take(pa.array(set_codes))
