"""Shared plumbing for the declarative files (mappings/, cohorts/): where they live, how
they load, and how a schema failure becomes a message naming the file and the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from migrate.errors import ConfigError


def bundled_dir(kind: str, explicit: Path | None, from_env: str | None) -> Path:
    """The first of: the explicit directory, the environment's, ./<kind>, the bundled copy.

    The bundled copies ship inside the package so that an installed toolkit works anywhere.
    """
    for candidate in (explicit, Path(from_env) if from_env else None):
        if candidate is not None:
            if not candidate.is_dir():
                raise ConfigError(candidate, f"no such {kind} directory")
            return candidate
    local = Path.cwd() / kind
    if local.is_dir():
        return local
    bundled = Path(str(resources.files("migrate") / "bundled" / kind))
    if bundled.is_dir():
        return bundled
    # An editable install runs from the source tree, where the files sit beside the package.
    return Path(str(resources.files("migrate"))).parent / kind


def load_yaml(path: Path) -> Any:
    """Safe YAML only: a rule file must never construct Python objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, f"cannot be read: {error}") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(path, f"not valid YAML{where}: {problem}") from None


def validation_problem(error: ValidationError) -> tuple[str, str]:
    """The first schema failure as (dotted key, problem); the others follow in the problem."""
    problems = []
    first_key = ""
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if not first_key:
            first_key = key
            problems.append(message)
        else:
            problems.append(f"{key}: {message}")
    return first_key or "(top level)", "; ".join(problems)
