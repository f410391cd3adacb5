"""One batch of an extract, through its mapping, into canonical rows, devices and issues.

Long layouts carry one device a row; wide layouts one installation a row with a group of
columns per device. Either way a row is accepted whole or quarantined whole, with every
reason that applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from migrate import identifiers
from migrate.installations import ROW_FIELDS
from migrate.mapping.fields import FieldResult, apply_field, trimmed
from migrate.mapping.spec import FieldSpec, Mapping
from migrate.model import DEVICE_SCHEMA, TYPE2_DEVICES, DeviceType

DEVICE_FIELDS = [
    field
    for field in DEVICE_SCHEMA
    if field.name not in {"installation_id", "source_file", "source_row"}
]
ROWS_SCHEMA = pa.schema(
    [
        pa.field("ordinal", pa.int64()),
        pa.field("installation_id", pa.string()),
        *ROW_FIELDS,
    ]
)
DEVICES_SCHEMA = pa.schema(
    [pa.field("ordinal", pa.int64()), pa.field("installation_id", pa.string()), *DEVICE_FIELDS]
)
ISSUE_SCHEMA = pa.schema(
    [
        pa.field("ordinal", pa.int64()),
        pa.field("installation_id", pa.string()),
        pa.field("column", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("severity", pa.string()),
    ]
)
# Fields a present device must have; firmware only where the device type carries firmware.
REQUIRED_DEVICE_FIELDS = frozenset({"device_id", "device_type", "manufacturer", "model"})
METER_MPAN = {DeviceType.ESME}
METER_MPRN = {DeviceType.GSME, DeviceType.GPF}
METER_MPAN_CODES = pa.array(sorted(METER_MPAN), pa.string())
METER_MPRN_CODES = pa.array(sorted(METER_MPRN), pa.string())
FIRMWARE_BEARING = pa.array(sorted(set(DeviceType) - TYPE2_DEVICES), pa.string())


@dataclass(frozen=True)
class NormalisedBatch:
    """rows: one per input row; devices: one per device found; issues: errors and warnings."""

    rows: pa.Table
    devices: pa.Table
    issues: pa.Table


class IssueCollector:
    """Gathers the rows' reasons and warnings field by field."""

    def __init__(self, ordinals: pa.Array, installation_id: pa.Array) -> None:
        self.ordinals = ordinals
        self.installation_id = installation_id
        self.tables: list[pa.Table] = []

    def add(self, label: str, result: FieldResult, within: pa.Array | None = None) -> None:
        """Keep this field's reasons (only where `within`, e.g. where a device is present)."""
        column = result.column or f"({label})"
        for severity, codes in (("error", result.reasons), ("warning", result.warnings)):
            if codes.null_count == len(codes):
                continue
            mask = pc.is_valid(codes)
            if within is not None:
                mask = pc.and_(mask, within)
            if not pc.any(mask).as_py():
                continue
            count = pc.sum(mask).as_py()
            self.tables.append(
                pa.table(
                    {
                        "ordinal": self.ordinals.filter(mask),
                        "installation_id": self.installation_id.filter(mask),
                        "column": pa.repeat(pa.scalar(column), count),
                        "value": result.shown(mask),
                        "reason": codes.filter(mask),
                        "severity": pa.repeat(pa.scalar(severity), count),
                    },
                    schema=ISSUE_SCHEMA,
                )
            )

    def table(self) -> pa.Table:
        return pa.concat_tables(self.tables) if self.tables else ISSUE_SCHEMA.empty_table()


def _null_column(field: pa.Field, length: int) -> pa.Array:
    return pa.nulls(length, field.type)


def _empty_devices(ordinals: pa.Array, installation_id: pa.Array) -> dict[str, pa.Array]:
    """Every device column, null until a mapped field fills it."""
    columns = {"ordinal": ordinals, "installation_id": installation_id}
    columns.update({field.name: _null_column(field, len(ordinals)) for field in DEVICE_FIELDS})
    return columns


def _row_table(
    mapping: Mapping,
    batch: pa.RecordBatch,
    ordinals: pa.Array,
    issues: IssueCollector,
) -> dict[str, pa.Array]:
    """Installation-level fields of every row, checked."""
    columns: dict[str, pa.Array] = {}
    for field in ROW_FIELDS:
        spec = mapping.installation.fields.get(field.name)
        if spec is None:
            columns[field.name] = _null_column(field, batch.num_rows)
            continue
        result = apply_field(field.name, spec, batch, required=field.name == "mode")
        issues.add(field.name, result)
        columns[field.name] = result.values
    return columns


def _mpxn(values: pa.Array, device_type: pa.Array) -> FieldResult:
    """An MPxN is an MPAN core on an electricity meter and an MPRN on a gas meter or GPF;
    on a hub or other device, whichever its shape says. Each value is checked once, by the
    rule that applies to it."""
    is_gas = pc.fill_null(pc.is_in(device_type, METER_MPRN_CODES), False)
    is_elec = pc.fill_null(pc.is_in(device_type, METER_MPAN_CODES), False)
    use_mprn = is_gas.to_numpy(zero_copy_only=False).copy()
    other = np.flatnonzero(~(use_mprn | is_elec.to_numpy(zero_copy_only=False)))
    if len(other):
        use_mprn[other] = identifiers.mprn_shaped(values.take(pa.array(other)))
    mprn_rows = np.flatnonzero(use_mprn)
    mpan_rows = np.flatnonzero(~use_mprn)
    mpan = identifiers.check_mpan_core(values.take(pa.array(mpan_rows)))
    mprn = identifiers.check_mprn(values.take(pa.array(mprn_rows)))
    # Back into row order: row i is at position inverse[i] of the two subsets end to end.
    inverse = pa.array(np.argsort(np.concatenate([mpan_rows, mprn_rows]), kind="stable"))

    def merged(first: pa.Array, second: pa.Array) -> pa.Array:
        if first.null_count == len(first) and second.null_count == len(second):
            return pa.nulls(len(values), first.type)  # no reason, as in most batches
        return pa.concat_arrays([first, second]).take(inverse)

    return FieldResult(
        values=merged(mpan.values, mprn.values),
        reasons=merged(mpan.reasons, mprn.reasons),
        warnings=merged(mpan.warnings, mprn.warnings),
        raw=values,
        column=None,
    )


def _long(mapping: Mapping, batch: pa.RecordBatch, ordinals: pa.Array) -> NormalisedBatch:
    key = apply_field(
        "installation_id", FieldSpec(column=mapping.installation.key), batch, required=True
    )
    issues = IssueCollector(ordinals, key.values)
    issues.add("installation_id", key)
    rows = _row_table(mapping, batch, ordinals, issues)
    assert mapping.device is not None
    fields = mapping.device.fields
    device_type = apply_field("device_type", fields["device_type"], batch, required=True)
    issues.add("device_type", device_type)
    bears_firmware = pc.fill_null(pc.is_in(device_type.values, FIRMWARE_BEARING), False)
    devices = _empty_devices(ordinals, key.values)
    devices["device_type"] = device_type.values
    for field in DEVICE_FIELDS:
        spec = fields.get(field.name)
        if spec is None or field.name == "device_type":
            continue
        if field.name == "mpxn":
            result = _mpxn(trimmed(batch.column(spec.column)), device_type.values)
            result = FieldResult(
                result.values, result.reasons, result.warnings, result.raw, spec.column
            )
            issues.add(field.name, result)
            devices[field.name] = result.values
        else:
            required: pa.Array | bool = field.name in REQUIRED_DEVICE_FIELDS
            if field.name == "firmware_version":
                required = bears_firmware
            result = apply_field(field.name, spec, batch, required=required)
            issues.add(field.name, result)
            devices[field.name] = result.values
            if field.name == "firmware_version" and spec.column is not None:
                devices["firmware_raw"] = trimmed(batch.column(spec.column))
    return _assemble(key.values, ordinals, rows, [devices], issues)


def _wide(mapping: Mapping, batch: pa.RecordBatch, ordinals: pa.Array) -> NormalisedBatch:
    n = batch.num_rows
    key = apply_field(
        "installation_id", FieldSpec(column=mapping.installation.key), batch, required=True
    )
    issues = IssueCollector(ordinals, key.values)
    issues.add("installation_id", key)
    rows = _row_table(mapping, batch, ordinals, issues)
    groups = []
    for group in mapping.devices or []:
        present = None
        for spec in group.fields.values():
            if spec.column is not None:
                filled = pc.is_valid(trimmed(batch.column(spec.column)))
                present = filled if present is None else pc.or_(present, filled)
        assert present is not None
        devices = _empty_devices(ordinals, key.values)
        devices["device_type"] = pa.repeat(pa.scalar(group.type.value), n)
        if group.type in METER_MPAN:
            devices["mpxn"] = rows["mpan_core"]
        elif group.type in METER_MPRN:
            devices["mpxn"] = rows["mprn"]
        for field in DEVICE_FIELDS:
            spec = group.fields.get(field.name)
            if spec is not None:
                needed = field.name in REQUIRED_DEVICE_FIELDS or (
                    field.name == "firmware_version" and group.type not in TYPE2_DEVICES
                )
                result = apply_field(field.name, spec, batch, required=present if needed else False)
                issues.add(f"{group.type}.{field.name}", result, within=present)
                devices[field.name] = result.values
                if field.name == "firmware_version" and spec.column is not None:
                    devices["firmware_raw"] = trimmed(batch.column(spec.column))
        groups.append({name: column.filter(present) for name, column in devices.items()})
    return _assemble(key.values, ordinals, rows, groups, issues)


def _assemble(
    installation_id: pa.Array,
    ordinals: pa.Array,
    rows: dict[str, pa.Array],
    device_groups: list[dict[str, pa.Array]],
    issues: IssueCollector,
) -> NormalisedBatch:
    row_table = pa.table(
        {
            "ordinal": ordinals,
            "installation_id": installation_id,
            **rows,
        },
        schema=ROWS_SCHEMA,
    )
    device_tables = [
        pa.table({name: group[name] for name in DEVICES_SCHEMA.names}, schema=DEVICES_SCHEMA)
        for group in device_groups
    ]
    return NormalisedBatch(row_table, pa.concat_tables(device_tables), issues.table())


def normalise_batch(
    mapping: Mapping, batch: pa.RecordBatch, ordinals: np.ndarray
) -> NormalisedBatch:
    """Canonical rows, devices and issues of one batch; ordinals tie them to the input rows."""
    ordinal_array = pa.array(ordinals, pa.int64())
    if mapping.layout == "long":
        return _long(mapping, batch, ordinal_array)
    return _wide(mapping, batch, ordinal_array)
