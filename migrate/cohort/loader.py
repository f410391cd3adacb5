"""Find and load cohort rule files; every problem names the file and the key."""

from __future__ import annotations

from pathlib import Path

from migrate.cohort.spec import CohortRules
from migrate.config_files import ConfigKind

COHORTS = ConfigKind("cohorts", "cohort", "MIGRATE_COHORTS_DIR", CohortRules)


def available_cohorts(directory: Path | None = None) -> list[str]:
    return COHORTS.available(directory)


def load_cohort(name: str, directory: Path | None = None) -> CohortRules:
    return COHORTS.load(name, directory)
