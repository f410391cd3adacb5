"""Import a CPL-style list of eligible product combinations into the cohort rule files.

The CPL changes over time (combinations are added as DCC tests them), so the rule files are
regenerated from it rather than edited by hand. What changes is shown before anything is
written; only the `combinations:` block at the end of each file is replaced, so the rest of
the file and its comments stay as people wrote them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from migrate.cohort.loader import COHORTS
from migrate.cohort.spec import CohortRules, Combination, DeviceModel
from migrate.config_files import validation_problem
from migrate.errors import ConfigError, InputError
from migrate.extract.delimited import DelimitedReader
from migrate.model import COMBINATION_SLOTS, DeviceType
from migrate.whole_file import write_whole

KEY_COLUMNS = ("combination_id", "cohort", "smso", "first_listed")
SLOT_FIELDS = ("manufacturer", "model", "firmware")
MARKER = "combinations:"


def cpl_columns() -> list[str]:
    return [
        *KEY_COLUMNS,
        *(slot_column(slot, part) for slot in COMBINATION_SLOTS for part in SLOT_FIELDS),
    ]


def slot_column(slot: DeviceType, part: str) -> str:
    """The CPL column of one part of a slot's device: esme_firmware."""
    return f"{slot.lower()}_{part}"


@dataclass(frozen=True)
class CplRow:
    cohort: str
    combination: Combination
    line: int


def read_cpl(path: Path) -> list[CplRow]:
    """Every row of a CPL file as a combination; a bad row is named by its line and column,
    and so is a combination id given again: two rows for one id cannot both be right."""
    reader = DelimitedReader(path, cpl_columns())
    rows: list[CplRow] = []
    first_lines: dict[str, int] = {}
    for batch, ordinals in reader.batches():
        lines = reader.source_rows(ordinals).tolist()
        for line, record in zip(lines, batch.to_pylist(), strict=True):
            row = _cpl_row(path, line, record)
            first = first_lines.setdefault(row.combination.id, line)
            if first != line:
                raise InputError(
                    path,
                    f"combination {row.combination.id} is listed again (first at line {first})",
                    row=line,
                    column="combination_id",
                )
            rows.append(row)
    if reader.account.unreadable:
        first = reader.account.unreadable[0]
        raise InputError(path, first.detail, row=first.row)
    return rows


def _cpl_row(path: Path, line: int, record: dict[str, str]) -> CplRow:
    values = {key: (value or "").strip() for key, value in record.items()}
    for column in KEY_COLUMNS:
        if not values[column]:
            raise InputError(path, "empty", row=line, column=column)
    try:
        first_listed = dt.date.fromisoformat(values["first_listed"])
    except ValueError:
        raise InputError(
            path, f"not an ISO date: {values['first_listed']!r}", row=line, column="first_listed"
        ) from None
    devices = {}
    for slot in COMBINATION_SLOTS:
        parts = {part: values[slot_column(slot, part)] for part in SLOT_FIELDS}
        if not any(parts.values()):
            continue  # the slot is not part of this combination
        for part, value in parts.items():
            if not value:
                raise InputError(
                    path,
                    "empty while the rest of the device is given",
                    row=line,
                    column=slot_column(slot, part),
                )
        devices[slot] = DeviceModel(**parts)
    try:
        combination = Combination(
            id=values["combination_id"],
            smso=values["smso"],
            first_listed=first_listed,
            devices=devices,
        )
    except ValidationError as error:
        _, problem = validation_problem(error)
        raise InputError(path, problem, row=line) from None
    return CplRow(values["cohort"], combination, line)


@dataclass(frozen=True)
class FieldChange:
    """One field of a listed combination that the CPL changes, named by its CPL column;
    None where the combination has no device in that slot."""

    column: str
    old: str | None
    new: str | None


@dataclass
class CohortChange:
    """What importing the CPL does to one cohort rule file: the ids added and removed, and
    for each changed id what changed in it."""

    cohort: str
    path: Path
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    text: str = ""

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class CplImport:
    """What importing a CPL does: the change to each rule file, and the CPL's rows that no
    rule file takes (their cohort is in no `cpl.cohorts`), which writing refuses to drop."""

    cpl: Path
    changes: list[CohortChange]
    untaken: list[CplRow]

    @property
    def any(self) -> bool:
        """Whether a rule file is out of date with the CPL, or a row of it has nowhere to go."""
        return bool(self.untaken) or any(change.any for change in self.changes)

    def untaken_text(self) -> str:
        """Each cohort no rule file takes, with its rows' lines: `XOC (lines 5, 9)`."""
        lines: dict[str, list[str]] = {}
        for row in self.untaken:
            lines.setdefault(row.cohort, []).append(str(row.line))
        return "; ".join(
            f"{cohort} ({'line' if len(found) == 1 else 'lines'} {', '.join(found)})"
            for cohort, found in lines.items()
        )


def plan_import(cpl: Path, directory: Path | None = None) -> CplImport:
    """The change to each cohort rule file, checked against the schema, nothing written."""
    rows = read_cpl(cpl)
    changes = []
    taken: set[str] = set()
    for path in sorted(COHORTS.directory(directory).glob("*.yaml")):
        rules = COHORTS.load_file(path)
        taken.update(rules.cpl.cohorts)
        wanted = sorted(
            (row.combination for row in rows if row.cohort in rules.cpl.cohorts),
            key=lambda c: c.id,
        )
        changes.append(_change(path, rules, wanted))
    return CplImport(cpl, changes, [row for row in rows if row.cohort not in taken])


def _change(path: Path, rules: CohortRules, wanted: list[Combination]) -> CohortChange:
    before = {c.id: c for c in rules.combinations}
    after = {c.id: c for c in wanted}
    change = CohortChange(
        cohort=rules.name,
        path=path,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed={
            i: fields
            for i in sorted(before.keys() & after.keys())
            if (fields := _field_changes(before[i], after[i]))
        },
    )
    text = path.read_text(encoding="utf-8")
    head = text.split(f"\n{MARKER}", 1)[0].rstrip("\n") if f"\n{MARKER}" in text else text
    block = yaml.safe_dump(
        {"combinations": [_as_yaml(c) for c in wanted]},
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=100,
    )
    change.text = head.rstrip("\n") + "\n" + block
    try:
        CohortRules.model_validate(yaml.safe_load(change.text))
    except ValidationError as error:
        key, problem = validation_problem(error)
        raise ConfigError(path, f"after importing the CPL: {problem}", key=key) from None
    return change


def _field_changes(old: Combination, new: Combination) -> list[FieldChange]:
    """What differs between two listings of one combination, in the CPL's column order."""
    before, after = _cpl_values(old), _cpl_values(new)
    return [
        FieldChange(column, before.get(column), after.get(column))
        for column in cpl_columns()
        if before.get(column) != after.get(column)
    ]


def _cpl_values(combination: Combination) -> dict[str, str]:
    """A combination as the CPL row that lists it, its id and cohort aside."""
    values = {"smso": combination.smso, "first_listed": combination.first_listed.isoformat()}
    for slot, device in combination.devices.items():
        values.update({slot_column(slot, part): getattr(device, part) for part in SLOT_FIELDS})
    return values


def _as_yaml(combination: Combination) -> dict[str, object]:
    return {
        "id": combination.id,
        "smso": combination.smso,
        "first_listed": combination.first_listed.isoformat(),
        "devices": {
            slot.value: device.model_dump() for slot, device in combination.devices.items()
        },
    }


def write_import(imported: CplImport) -> None:
    """Write the changed files, each whole through a temporary file; nothing at all while a
    row of the CPL has no rule file to go to, since writing the rest would drop it unseen."""
    if imported.untaken:
        raise InputError(
            imported.cpl,
            "rows for a cohort that no rule file takes in its `cpl.cohorts`: "
            f"{imported.untaken_text()}; add the cohort to a rule file or take the rows out "
            "of the CPL (nothing written)",
            row=imported.untaken[0].line,
            column="cohort",
        )
    for change in imported.changes:
        if change.any:
            write_whole(change.path, [change.text.encode("utf-8")])
