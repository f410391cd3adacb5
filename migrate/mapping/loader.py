"""Find and load mapping files; every problem names the file and the key."""

from __future__ import annotations

from pathlib import Path

from migrate.config_files import ConfigKind
from migrate.mapping.spec import Mapping

MAPPINGS = ConfigKind("mappings", "mapping", "MIGRATE_MAPPINGS_DIR", Mapping)


def available_mappings(directory: Path | None = None) -> list[str]:
    return MAPPINGS.available(directory)


def load_mapping(name: str, directory: Path | None = None) -> Mapping:
    return MAPPINGS.load(name, directory)
