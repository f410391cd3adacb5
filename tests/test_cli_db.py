"""The store named by --db through typer's runner: a store the toolkit cannot use is a usage
error (exit 2, one message, no traceback) that says why, on SQLite and PostgreSQL."""

from __future__ import annotations

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
