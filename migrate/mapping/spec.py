"""The mapping file format: how one vendor's extract maps onto the canonical model.

A new vendor format is a new file in mappings/, checked against these models when it loads.
mappings/README.md documents the format for the people who write them.
"""

from __future__ import annotations

import re
from typing import Literal, Self

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from migrate.model import DeviceType, Mode

INSTALLATION_FIELDS = frozenset(
    {
        "smso",
        "supplier_mpid",
        "mode",
        "mpan_core",
        "mprn",
        "install_date",
        "last_wan_contact",
        "postcode",
    }
)
DEVICE_FIELDS = frozenset(
    {
        "device_id",
        "device_type",
        "manufacturer",
        "model",
        "firmware_version",
        "msn",
        "mpxn",
        "smi_status",
        "commissioned_date",
    }
)
DATE_FIELDS = frozenset({"install_date", "last_wan_contact", "commissioned_date"})
# Fields whose values must be canonical enum members after the value map.
ENUM_FIELDS: dict[str, frozenset[str]] = {
    "mode": frozenset(Mode),
    "device_type": frozenset(DeviceType),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(value: str | None) -> str | None:
    """Compiled by the engine that runs it (Arrow's RE2), not by Python's `re`: RE2 has no
    lookarounds or backreferences, and a pattern only `re` can read would pass the check
    and then stop the ingest."""
    if value is not None:
        try:
            pc.match_substring_regex(pa.array([""], pa.string()), value)
        except pa.ArrowInvalid as error:
            problem = str(error).removeprefix("Invalid regular expression: ")
            raise ValueError(
                f"not a valid regular expression ({problem}); patterns are RE2: no "
                "lookarounds or backreferences"
            ) from None
    return value


class FirmwareSpec(Strict):
    """How a vendor writes firmware, and how to make it canonical.

    `V2.1.4` -> `2.1.4` is strip_prefix V; `0x104` -> `00000104` is strip_prefix 0x with
    hex_width 8. The canonical result must match `pattern`, else the row is quarantined.
    """

    strip_prefix: str | None = None
    hex_width: int | None = Field(default=None, ge=1, le=32)
    pattern: str | None = None

    _pattern = field_validator("pattern")(_check_regex)


class FieldSpec(Strict):
    """One canonical field: from a column (optionally through a value map) or a constant."""

    column: str | None = None
    constant: str | None = None
    values: dict[str, str] | None = None
    date_format: list[str] | None = None
    firmware: FirmwareSpec | None = None
    pattern: str | None = None
    required: bool | None = None

    _pattern = field_validator("pattern")(_check_regex)

    @field_validator("date_format", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("date_format")
    @classmethod
    def _known_directives(cls, value: list[str] | None) -> list[str] | None:
        for fmt in value or []:
            used = set(re.findall(r"%(.)", fmt))
            unknown = used - set(DATE_DIRECTIVES)
            if unknown:
                raise ValueError(
                    f"date format {fmt!r} uses {', '.join('%' + u for u in sorted(unknown))}; "
                    f"supported: {', '.join('%' + d for d in DATE_DIRECTIVES)}"
                )
            if not {"Y", "m", "d"} <= used:
                raise ValueError(f"date format {fmt!r} must have %Y, %m and %d")
            if "f" in used and "S" not in used:
                raise ValueError(f"date format {fmt!r}: %f, a fraction of a second, needs %S")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.column is None) == (self.constant is None):
            raise ValueError("give exactly one of `column` or `constant`")
        return self


# The directives a date format may use, each a run of digits (strict and vectorisable), and
# its width zero-padded. %f, a fraction of a second, is read and dropped: one to nine digits
# (a warehouse's milli-, micro- or nanoseconds), six where another directive follows it.
DATE_DIRECTIVES = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "f": 6}
FRACTION_DIGITS = 9


def _check_fields(
    fields: dict[str, FieldSpec], allowed: frozenset[str], level: str
) -> dict[str, FieldSpec]:
    for name, spec in fields.items():
        if name not in allowed:
            raise ValueError(f"unknown {level} field {name!r}; known: {', '.join(sorted(allowed))}")
        if name in DATE_FIELDS and not spec.date_format:
            raise ValueError(f"field {name!r} is a date: give its `date_format`")
        if name not in DATE_FIELDS and spec.date_format:
            raise ValueError(f"field {name!r} is not a date: `date_format` does not apply")
        if spec.firmware is not None and name != "firmware_version":
            raise ValueError(f"`firmware` only applies to firmware_version, not {name!r}")
        canonical = ENUM_FIELDS.get(name)
        if canonical is not None:
            given = set(spec.values.values()) if spec.values else set()
            if spec.constant is not None:
                given.add(spec.constant)
            wrong = given - canonical
            if wrong:
                raise ValueError(
                    f"field {name!r} maps to {', '.join(sorted(wrong))}, "
                    f"which are not among {', '.join(sorted(canonical))}"
                )
    return fields


class SourceSpec(Strict):
    """How to read the file: everything defaults to detection."""

    format: Literal["auto", "delimited", "excel", "parquet", "ndjson"] = "auto"
    encoding: str = "auto"
    delimiter: str = "auto"
    header_row: int | None = Field(default=None, ge=1)
    trailer: str | None = None
    sheet: str | None = None
    # A quoted value may span lines (an address); one spanning more is taken for a stray
    # quote that swallowed the rows after it, and the file is refused.
    max_value_lines: int = Field(default=20, ge=1)

    _trailer = field_validator("trailer")(_check_regex)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError as error:
                raise ValueError(f"unknown encoding {value!r}") from error
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if value != "auto" and len(value) != 1:
            raise ValueError("the delimiter is one character, or `auto`")
        return value


class InstallationSpec(Strict):
    key: str = Field(min_length=1)
    fields: dict[str, FieldSpec] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        return _check_fields(value, INSTALLATION_FIELDS, "installation")


class DeviceGroupSpec(Strict):
    """Wide layouts: one group of columns per device type, on the installation's row."""

    type: DeviceType
    fields: dict[str, FieldSpec]

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        value = _check_fields(value, DEVICE_FIELDS - {"device_type", "mpxn"}, "device")
        if "device_id" not in value:
            raise ValueError("a device group needs a `device_id` field")
        if all(spec.column is None for spec in value.values()):
            raise ValueError(
                "a device group reads at least one column: a row has the device where one "
                "of its columns has a value"
            )
        return value


class DeviceRowSpec(Strict):
    """Long layouts: one device per row."""

    fields: dict[str, FieldSpec]

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        value = _check_fields(value, DEVICE_FIELDS, "device")
        missing = {"device_id", "device_type"} - set(value)
        if missing:
            raise ValueError(f"a long layout needs the fields {', '.join(sorted(missing))}")
        if "mpxn" in value and value["mpxn"].column is None:
            raise ValueError("`mpxn` is read from a column: each meter has its own")
        return value


class Mapping(Strict):
    """A vendor extract format. `layout` says whether a row is a device or an installation."""

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    source: SourceSpec = SourceSpec()
    layout: Literal["long", "wide"]
    installation: InstallationSpec
    device: DeviceRowSpec | None = None
    devices: list[DeviceGroupSpec] | None = None
    # Columns holding personal data (names, free text): never read into the model or logged.
    personal_columns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _layout_fits(self) -> Self:
        if self.layout == "long" and (self.device is None or self.devices is not None):
            raise ValueError("a long layout has `device` (one device per row), not `devices`")
        if self.layout == "wide" and (not self.devices or self.device is not None):
            raise ValueError("a wide layout has `devices` (a list of column groups)")
        if self.layout == "wide":
            types = [group.type for group in self.devices or []]
            repeated = {t for t in types if types.count(t) > 1}
            if repeated:
                raise ValueError(f"device type listed twice: {', '.join(sorted(repeated))}")
        used = set(self.columns())
        personal = used & set(self.personal_columns)
        if personal:
            raise ValueError(f"personal columns cannot be mapped: {', '.join(sorted(personal))}")
        return self

    def field_groups(self) -> list[tuple[str, dict[str, FieldSpec]]]:
        """Every group of fields with its key in the file, for messages: installation,
        device, devices.N."""
        groups = [("installation", self.installation.fields)]
        if self.device is not None:
            groups.append(("device", self.device.fields))
        for index, group in enumerate(self.devices or []):
            groups.append((f"devices.{index}", group.fields))
        return groups

    def columns(self) -> list[str]:
        """The source columns the mapping reads: a file lacking one cannot be used."""
        names = [self.installation.key]
        for _, fields in self.field_groups():
            names.extend(spec.column for spec in fields.values() if spec.column is not None)
        return list(dict.fromkeys(names))
