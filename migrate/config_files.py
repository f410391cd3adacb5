"""Shared plumbing for the declarative files (mappings/, cohorts/): where they live, how
they load, and how a schema failure becomes a message naming the file and the key."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from migrate.errors import ConfigError


def own_folders(kind: str, explicit: Path | None, from_env: str | None) -> list[Path]:
    """The user's folders of a kind, in search order: the explicit one, the environment's,
    ./<kind>. A folder named but missing is an error, not skipped."""
    folders = []
    for candidate in (explicit, Path(from_env) if from_env else None):
        if candidate is not None:
            if not candidate.is_dir():
                raise ConfigError(candidate, f"no such {kind} directory")
            folders.append(candidate)
    local = Path.cwd() / kind
    if local.is_dir():
        folders.append(local)
    return folders


def search_path(kind: str, explicit: Path | None, from_env: str | None) -> list[Path]:
    """Where files of a kind are looked for, in order: the explicit folder, the
    environment's, ./<kind>, and the copies bundled with the package (so that an installed
    toolkit works anywhere, and a local folder adds to the shipped files, not hides them)."""
    folders = own_folders(kind, explicit, from_env)
    bundled = Path(str(resources.files("migrate") / "bundled" / kind))
    # An editable install runs from the source tree, where the files sit beside the package.
    source = Path(str(resources.files("migrate"))).parent / kind
    for shipped in (bundled, source):
        if shipped.is_dir():
            folders.append(shipped)
            break
    unique: list[Path] = []
    for folder in folders:
        if not any(folder.resolve() == seen.resolve() for seen in unique):
            unique.append(folder)
    return unique


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: plain YAML keeps the last,
    so an edit that repeats `max_attempts` would change a cohort without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice in one mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    """Safe YAML only: a rule file must never construct Python objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, f"cannot be read: {error}") from error
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
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


M = TypeVar("M", bound=BaseModel)


class ConfigKind(Generic[M]):
    """One kind of declarative file (mappings, cohorts): where its files live, how one is
    named, and how it loads and is checked. A file's `name` must equal its file name."""

    def __init__(self, folder: str, noun: str, env: str, model: type[M]) -> None:
        self.folder = folder
        self.noun = noun
        self.env = env
        self.model = model

    def folders(self, explicit: Path | None = None) -> list[Path]:
        return search_path(self.folder, explicit, os.environ.get(self.env))

    def directory(self, explicit: Path | None = None) -> Path:
        """Where files of this kind are written: the explicit folder, the environment's, or
        ./<kind>; never the copies bundled with the package, which an upgrade replaces and
        every other user of the installation shares."""
        folders = own_folders(self.folder, explicit, os.environ.get(self.env))
        if folders:
            return folders[0]
        raise ConfigError(
            None,
            f"no {self.folder} folder to write to: give --{self.folder}-dir, set {self.env}, "
            f"or run from a folder that has a {self.folder}/ folder (the toolkit's own copies "
            "are never rewritten)",
            key=self.noun,
        )

    def available(self, directory: Path | None = None) -> list[str]:
        """Every name found on the search path (an earlier folder's file wins)."""
        return sorted(
            {path.stem for folder in self.folders(directory) for path in folder.glob("*.yaml")}
        )

    def resolve(self, name: str, directory: Path | None = None) -> Path:
        """A file is named (landis_ioc_devices), found along the search path, or given as a
        path."""
        as_path = Path(name)
        if as_path.suffix in {".yaml", ".yml"}:
            if not as_path.is_file():
                raise ConfigError(as_path, f"no such {self.noun} file")
            return as_path
        for folder in self.folders(directory):
            path = folder / f"{name}.yaml"
            if path.is_file():
                return path
        known = ", ".join(self.available(directory)) or "none"
        raise ConfigError(None, f"unknown {self.noun} {name!r} (known: {known})", key=self.noun)

    def load_file(self, path: Path) -> M:
        try:
            loaded = self.model.model_validate(load_yaml(path))
        except ValidationError as error:
            key, problem = validation_problem(error)
            raise ConfigError(path, problem, key=key) from None
        name = getattr(loaded, "name", path.stem)
        if name != path.stem:
            raise ConfigError(
                path, f"name {name!r} differs from the file name {path.stem!r}", key="name"
            )
        return loaded

    def load(self, name: str, directory: Path | None = None) -> M:
        return self.load_file(self.resolve(name, directory))
