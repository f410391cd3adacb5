"""Shared fixtures: the bundled example extracts, a way to write small hostile ones, and a
fresh store database on SQLite and on PostgreSQL.

PostgreSQL comes from MIGRATE_TEST_POSTGRES_URL. When it is unreachable its tests skip with
the reason, except under MIGRATE_REQUIRE_POSTGRES=1 (as .ci/run sets), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MAPPINGS = REPO / "mappings"


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def mappings_dir() -> Path:
    return MAPPINGS


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[..., Path]:
    """Write lines as a file with the given encoding and line ending."""

    def write(name: str, lines: list[str], *, encoding: str = "utf-8", newline: str = "\n") -> Path:
        path = tmp_path / name
        path.write_bytes(newline.join(lines).encode(encoding) + newline.encode(encoding))
        return path

    return write


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with tests/golden/NAME; UPDATE_GOLDEN=1 rewrites the file instead."""
    import os

    def check(name: str, text: str) -> None:
        path = REPO / "tests" / "golden" / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
        assert path.is_file(), f"no golden file {name}: run with UPDATE_GOLDEN=1"
        assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"

    return check


DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_url() -> str:
    return os.environ.get("MIGRATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from _postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, for what only PostgreSQL does (several workers)."""
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    base = make_url(_postgres_url())
    admin = create_engine(base)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        admin.dispose()
        reason = (
            f"PostgreSQL unreachable at {base.render_as_string(hide_password=True)}: {error.orig}"
        )
        if os.environ.get("MIGRATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
