"""Find and load mapping files; every problem names the file and the key."""

from __future__ import annotations

from pathlib import Path

from migrate.config_files import ConfigKind
from migrate.errors import ConfigError
from migrate.mapping.fields import refused_constant
from migrate.mapping.spec import Mapping


class _MappingKind(ConfigKind[Mapping]):
    """Mapping files, whose constants are also put through the transform ingest gives them:
    a constant it refuses (a date that is no date) would fail every row, or stop the ingest,
    so it is the mapping's error and is named when the file loads."""

    def load_file(self, path: Path) -> Mapping:
        mapping = super().load_file(path)
        for group, fields in mapping.field_groups():
            for name, spec in fields.items():
                reason = refused_constant(name, spec)
                if reason is not None:
                    formats = ", ".join(repr(fmt) for fmt in spec.date_format or [])
                    formats = f" (date_format {formats})" if formats else ""
                    raise ConfigError(
                        path,
                        f"the constant {spec.constant!r} is {reason}{formats}: ingest would "
                        "refuse it on every row",
                        key=f"{group}.fields.{name}.constant",
                    )
        return mapping


MAPPINGS = _MappingKind("mappings", "mapping", "MIGRATE_MAPPINGS_DIR", Mapping)


def available_mappings(directory: Path | None = None) -> list[str]:
    return MAPPINGS.available(directory)


def load_mapping(name: str, directory: Path | None = None) -> Mapping:
    return MAPPINGS.load(name, directory)
