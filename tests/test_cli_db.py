"""The store named by --db through typer's runner: a store the toolkit cannot use is a usage
error (exit 2, one message, no traceback) that says why, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from migrate.cli import EXIT_USAGE, app
from migrate.store.engine import current_revision, head_revision, make_engine

runner = CliRunner()


@pytest.mark.parametrize("command", [["status"], ["audit", "verify"], ["db", "upgrade"]])
def test_a_store_newer_than_the_toolkit_is_refused_naming_both_versions(
    db_url: str, command: list[str]
) -> None:
    assert runner.invoke(app, ["db", "upgrade", "--db", db_url]).exit_code == 0
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    result = runner.invoke(app, [*command, "--db", db_url])
    assert result.exit_code == EXIT_USAGE, result.output
    message = " ".join(result.stderr.split())
    assert (
        "is newer than this toolkit: it is at schema version 9999, and this toolkit knows "
        f"versions up to {head_revision()}. Use the newer toolkit" in message
    )
    assert "run `migrate db upgrade`" not in message
    assert "Traceback" not in result.output
    assert current_revision(engine) == "9999"
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("foo://operator:s3cret@db.example/store", "foo"),
        ("mysql://operator:s3cret@db.example/store", "mysql"),
        ("postgres://operator:s3cret@db.example/store", "postgres"),
        ("postgresql+asyncpg://operator:s3cret@db.example/store", "postgresql+asyncpg"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"]])
def test_a_url_of_an_unknown_scheme_is_named_without_its_password(
    url: str, scheme: str, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--db", url])
    assert result.exit_code == EXIT_USAGE, result.output
    assert f"unsupported database URL scheme {scheme!r}" in result.stderr
    assert "s3cret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://operator:s3cret@db.example:notaport/store",
        # An unescaped '@' and ':' in the password put its tail where the port goes.
        "postgresql://operator:s3@cret:s3cret@db.example/store",
    ],
)
@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"]])
def test_a_url_whose_port_is_not_a_number_is_refused_without_its_password(
    url: str, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--db", url])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "not a database URL: its port is not a number" in result.stderr
    assert "s3cret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("content", [b"installation_id,mpan\nI-1,1312345678907\n", None])
@pytest.mark.parametrize("command", [["status"], ["audit", "verify"], ["db", "upgrade"]])
def test_a_file_that_is_not_a_sqlite_database_is_named_and_left_alone(
    tmp_path: Path, content: bytes | None, command: list[str]
) -> None:
    """A text file, or a folder (None), given as the store."""
    path = tmp_path / "inventory.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = runner.invoke(app, [*command, "--db", f"sqlite:///{path}"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith(f"error: {path}, key 'db': ")
    assert "Traceback" not in result.output
    assert content is None or path.read_bytes() == content


@pytest.mark.parametrize(
    "command", [["status"], ["audit", "verify"], ["audit", "export", "--jsonl", "audit.jsonl"]]
)
def test_a_missing_sqlite_store_is_refused_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*command, "--db", "sqlite:///nowhere.db"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "no store at sqlite:///nowhere.db yet: run `migrate db upgrade`" in result.stderr
    assert list(tmp_path.iterdir()) == []
    created = runner.invoke(app, ["db", "upgrade", "--db", "sqlite:///nowhere.db"])
    assert created.exit_code == 0, created.output
    # The URI form names the same file; SQLite resolves it itself.
    for url in ("sqlite:///nowhere.db", "sqlite:///file:nowhere.db?uri=true"):
        assert runner.invoke(app, [*command, "--db", url]).exit_code == 0, url
