"""Find and load mapping files; every problem names the file and the key."""

from __future__ import annotations

from pathlib import Path

from migrate.config_files import ConfigKind
from migrate.mapping.spec import Mapping

MAPPINGS = ConfigKind("mappings", "mapping", "MIGRATE_MAPPINGS_DIR", Mapping)


def mappings_dir(explicit: Path | None = None) -> Path:
    """--mappings-dir, then $MIGRATE_MAPPINGS_DIR, then ./mappings, then the bundled copies."""
    return MAPPINGS.directory(explicit)


def available_mappings(directory: Path | None = None) -> list[str]:
    return MAPPINGS.available(directory)


def resolve_mapping(name: str, directory: Path | None = None) -> Path:
    return MAPPINGS.resolve(name, directory)


def load_mapping(name: str, directory: Path | None = None) -> Mapping:
    return MAPPINGS.load(name, directory)
