"""The cohort rule file: what a cohort migrates, how fast, and which device model
combinations are eligible. One YAML file per cohort in cohorts/, checked when it loads."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from migrate.cohort.firmware_order import FirmwareOrder, order_keys
from migrate.model import COMBINATION_SLOTS, DeviceType, Mode

# The DCC's flat allocation (MSM DMIN): SMETS1 installations per supplier per day.
DEFAULT_CAPACITY = 100
# TMAD: five failed attempts and an installation is excluded.
DEFAULT_MAX_ATTEMPTS = 5


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceModel(Strict):
    """A SMETS1 device model as the CPL lists it. Firmware is canonical and must be quoted
    in YAML: 1.10 unquoted is the number 1.1."""

    manufacturer: StrictStr = Field(min_length=1)
    model: StrictStr = Field(min_length=1)
    firmware: StrictStr = Field(min_length=1)


class Combination(Strict):
    """An eligible product combination: its devices (one per slot) and its SMSO."""

    id: StrictStr = Field(min_length=1)
    smso: StrictStr = Field(min_length=1)
    first_listed: dt.date
    devices: dict[DeviceType, DeviceModel]

    @field_validator("devices")
    @classmethod
    def _slots(cls, value: dict[DeviceType, DeviceModel]) -> dict[DeviceType, DeviceModel]:
        wrong = set(value) - set(COMBINATION_SLOTS)
        if wrong:
            raise ValueError(
                f"device types {', '.join(sorted(wrong))} are not part of a combination "
                f"(slots: {', '.join(COMBINATION_SLOTS)})"
            )
        if DeviceType.CHF not in value:
            raise ValueError("a combination has a comms hub (CHF)")
        return value


class Window(Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("the window ends before it starts")
        return self


class CplSource(Strict):
    """Which rows of a CPL file feed this cohort when `migrate cohort import-cpl` runs."""

    cohorts: list[StrictStr] = Field(min_length=1)


class CohortRules(Strict):
    version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    smso: list[StrictStr] = Field(min_length=1)
    modes: list[Mode] = Field(min_length=1)
    window: Window
    capacity_per_supplier_per_day: int = Field(default=DEFAULT_CAPACITY, ge=1)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    # Per manufacturer (matched case-insensitively): how its firmware versions are ordered.
    firmware_order: dict[str, FirmwareOrder] = Field(default_factory=dict)
    cpl: CplSource
    combinations: list[Combination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [c.id for c in self.combinations]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"combination ids listed twice: {', '.join(repeated)}")
        orders = {name.casefold() for name in self.firmware_order}
        for combination in self.combinations:
            if combination.smso not in self.smso:
                raise ValueError(
                    f"combination {combination.id} is for SMSO {combination.smso}, "
                    f"which this cohort does not migrate ({', '.join(self.smso)})"
                )
            for device in combination.devices.values():
                if device.manufacturer.casefold() not in orders:
                    raise ValueError(
                        f"combination {combination.id}: no firmware_order for manufacturer "
                        f"{device.manufacturer!r}"
                    )
        unreadable = self._unplaceable_firmware()
        if unreadable:
            raise ValueError(
                "listed firmware that its manufacturer's firmware_order cannot place (every "
                "installation's firmware would be compared with it wrongly): "
                + "; ".join(unreadable)
            )
        return self

    def _unplaceable_firmware(self) -> list[str]:
        """`combination id slot: version (order)` for each listed firmware its manufacturer's
        order cannot read."""
        listed: list[tuple[str, str, FirmwareOrder]] = []
        for combination in self.combinations:
            for slot, device in combination.devices.items():
                order = self.order_for(device.manufacturer)
                assert order is not None  # checked above
                listed.append((f"{combination.id} {slot}", device.firmware, order))
        readable = [True] * len(listed)
        for order in {order for _, _, order in listed}:  # each order's versions read at once
            rows = [index for index, (_, _, its) in enumerate(listed) if its is order]
            keys = order_keys(pa.array([listed[index][1] for index in rows]), order)
            for index, valid in zip(rows, keys.is_valid().to_pylist(), strict=True):
                readable[index] = valid
        return [
            f"{place}: {firmware!r} ({order})"
            for (place, firmware, order), valid in zip(listed, readable, strict=True)
            if not valid
        ]

    def order_for(self, manufacturer: str) -> FirmwareOrder | None:
        wanted = manufacturer.casefold()
        for name, order in self.firmware_order.items():
            if name.casefold() == wanted:
                return order
        return None
