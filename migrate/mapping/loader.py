"""Find and load mapping files; every problem names the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from migrate.config_files import bundled_dir, load_yaml, validation_problem
from migrate.errors import ConfigError
from migrate.mapping.spec import Mapping

ENV_DIR = "MIGRATE_MAPPINGS_DIR"


def mappings_dir(explicit: Path | None = None) -> Path:
    """--mappings-dir, then $MIGRATE_MAPPINGS_DIR, then ./mappings, then the bundled copies."""
    return bundled_dir("mappings", explicit, os.environ.get(ENV_DIR))


def available_mappings(directory: Path | None = None) -> list[str]:
    return sorted(path.stem for path in mappings_dir(directory).glob("*.yaml"))


def resolve_mapping(name: str, directory: Path | None = None) -> Path:
    """A mapping is named (landis_ioc_devices) or given as a path to its file."""
    as_path = Path(name)
    if as_path.suffix in {".yaml", ".yml"}:
        if not as_path.is_file():
            raise ConfigError(as_path, "no such mapping file")
        return as_path
    path = mappings_dir(directory) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_mappings(directory)) or "none"
        raise ConfigError(None, f"unknown mapping {name!r} (known: {known})", key="mapping")
    return path


def load_mapping(name: str, directory: Path | None = None) -> Mapping:
    path = resolve_mapping(name, directory)
    document = load_yaml(path)
    try:
        mapping = Mapping.model_validate(document)
    except ValidationError as error:
        key, problem = validation_problem(error)
        raise ConfigError(path, problem, key=key) from None
    if mapping.name != path.stem:
        raise ConfigError(
            path, f"name {mapping.name!r} differs from the file name {path.stem!r}", key="name"
        )
    return mapping


__all__ = ["Mapping", "available_mappings", "load_mapping", "mappings_dir", "resolve_mapping"]
