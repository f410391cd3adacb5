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
from migrate.input_records import input_record


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


def shipped_folder(kind: str) -> Path | None:
    """The files of a kind that come with the toolkit, where this installation keeps them."""
    bundled = Path(str(resources.files("migrate") / "bundled" / kind))
    # An editable install runs from the source tree, where the files sit beside the package.
    source = Path(str(resources.files("migrate"))).parent / kind
    for shipped in (bundled, source):
        if shipped.is_dir():
            return shipped
    return None


# How an input record names a shipped file: by its place among the shipped files.
SHIPPED = "shipped:"
SHIPPED_KINDS = ("mappings", "cohorts")


def recorded_file(recorded: str) -> Path:
    """The file an input record names (`ConfigKind.record`): a shipped one is looked for
    among this installation's shipped files."""
    if not recorded.startswith(SHIPPED):
        return Path(recorded)
    kind, _, name = recorded.removeprefix(SHIPPED).partition("/")
    shipped = shipped_folder(kind) if kind in SHIPPED_KINDS and name else None
    return Path(recorded) if shipped is None else shipped / name


def search_path(kind: str, explicit: Path | None, from_env: str | None) -> list[Path]:
    """Where files of a kind are looked for, in order: the explicit folder, the
    environment's, ./<kind>, and the copies bundled with the package (so that an installed
    toolkit works anywhere, and a local folder adds to the shipped files, not hides them)."""
    folders = own_folders(kind, explicit, from_env)
    shipped = shipped_folder(kind)
    if shipped is not None:
        folders.append(shipped)
    unique: list[Path] = []
    for folder in folders:
        if not any(folder.resolve() == seen.resolve() for seen in unique):
            unique.append(folder)
    return unique


# libyaml's parser where PyYAML was built with it (its wheels are): a cohort file loads in a
# sixth of the time of the pure-Python parser's. Either way, only the safe constructor.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
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


# What YAML makes of an unquoted key that is not text, by the tag it resolves to.
_READ_AS = {
    "tag:yaml.org,2002:bool": "a boolean (YAML reads unquoted yes, no, on, off, true, false so)",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


def _refuse_keys_not_text(path: Path, root: yaml.Node) -> None:
    """Every key in these files is text, but YAML reads `Yes:` in a value map as the boolean
    true, which the schema then refuses as `True` without a word of why: name the key as
    written, and say to quote it."""
    found: list[tuple[yaml.ScalarNode, tuple[str, ...]]] = []
    pending: list[tuple[tuple[str, ...], yaml.Node]] = [((), root)]
    seen: set[int] = set()  # an alias may lead back into its own anchor
    while pending:
        where, node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend(((*where, str(index)), item) for index, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.tag in _READ_AS:
                        found.append((key_node, (*where, key_node.value)))
                    pending.append(((*where, key_node.value), value_node))
    if found:
        found.sort(key=lambda item: (item[0].start_mark.line, item[0].start_mark.column))
        (first, key), *others = found
        likewise = "".join(
            f"; likewise {node.value} (line {node.start_mark.line + 1})" for node, _ in others
        )
        raise ConfigError(
            path,
            f"the key {first.value} (line {first.start_mark.line + 1}) is read as "
            f"{_READ_AS[first.tag]}, not text: quote it, '{first.value}'{likewise}",
            key=".".join(key),
        )


def load_yaml(path: Path) -> Any:
    """Safe YAML only: a rule file must never construct Python objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, f"cannot be read: {error}") from error
    loader = _UniqueKeyLoader(text)  # a SafeLoader: no Python objects
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_keys_not_text(path, node)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(path, f"not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


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

    def record(self, path: Path) -> dict[str, object]:
        """The input record of a file of this kind (`input_records.input_record`). A shipped
        file outside the working folder is named by its place among the shipped files
        (`shipped:mappings/landis_ioc_devices.yaml`), not by where this installation keeps
        them: a plan then reads the same on every machine, and stages on any machine with
        the same toolkit (its SHA-256 still has to match)."""
        record = input_record(path)
        shipped = shipped_folder(self.folder)
        if shipped is None or not Path(str(record["path"])).is_absolute():
            return record  # below the working folder: named from there
        where, root = path.resolve(), shipped.resolve()
        if where.is_relative_to(root):
            record["path"] = f"{SHIPPED}{self.folder}/{where.relative_to(root).as_posix()}"
        return record

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
