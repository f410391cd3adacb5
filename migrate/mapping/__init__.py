"""Per-vendor mappings: declarative files that turn an extract into canonical devices."""

from migrate.mapping.loader import available_mappings, load_mapping
from migrate.mapping.spec import Mapping

__all__ = ["Mapping", "available_mappings", "load_mapping"]
