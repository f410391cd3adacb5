"""`migrate stage` through typer's runner: a new device set beside a live request is an
error (exit 2, one message, no traceback) until the old request is withdrawn."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migrate.audit import from_jsonl, verify
from migrate.cli import EXIT_DATA_PROBLEMS, EXIT_USAGE, app
from migrate.plan import make_plan

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The Secure MOC sample staged as w1, and a plan (later/plan.json) of the same extract
    re-sent with SEC0000002's gas meter on new firmware."""
    monkeypatch.chdir(tmp_path)
    original = (REPO / "examples" / "secure_moc_installations.csv").read_text()
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", "secure.csv")
    make_plan([Path("secure.csv")], "secure_moc_installations", "moc").write(Path("plan.json"))
    Path("later").mkdir()
    Path("later/secure.csv").write_text(
        "".join(
            line.replace("Cirrus G4,3.1,", "Cirrus G4,3.2,")
            if line.startswith("SEC0000002,")
            else line
            for line in original.splitlines(keepends=True)
        )
    )
    make_plan([Path("later/secure.csv")], "secure_moc_installations", "moc").write(
        Path("later/plan.json")
    )
    monkeypatch.setenv("MIGRATE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    yield tmp_path


def test_a_second_live_request_for_an_installation_exits_2_naming_it(staged: Path) -> None:
    result = runner.invoke(app, ["stage", "later/plan.json", "--batch", "w2", "--actor", "a.b"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("error: 1 installation(s) already have a request")
    assert "SEC0000002 (w1, STAGED)" in result.stderr
    assert "`migrate withdraw --batch BATCH --installation ID`" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output + result.stderr
    status = runner.invoke(app, ["status", "--json"])
    assert json.loads(status.stdout) == [
        {"batch": "w1", "reason": None, "requests": 306, "state": "STAGED"}
    ]

    withdrawn = runner.invoke(
        app, ["withdraw", "--batch", "w1", "--installation", "SEC0000002", "--actor", "a.b"]
    )
    assert withdrawn.exit_code == 0, withdrawn.output
    again = runner.invoke(app, ["stage", "later/plan.json", "--batch", "w2", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["staged"] == 1


@pytest.mark.parametrize(
    ("plan", "problem"), [("nowhere.json", "no such plan file"), (".", "not a plan file")]
)
def test_a_plan_that_is_not_a_file_exits_2_naming_it(staged: Path, plan: str, problem: str) -> None:
    result = runner.invoke(app, ["stage", plan, "--batch", "w9"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert problem in result.stderr and "internal error" not in result.stderr


def test_audit_verify_and_export_answer_while_a_writer_holds_the_store(staged: Path) -> None:
    writer = sqlite3.connect(staged / "store.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a commit worker, mid-transaction
        verified = runner.invoke(app, ["audit", "verify"])
        assert verified.exit_code == 0, verified.output
        assert "audit log verifies: 306 records" in verified.stdout
        exported = runner.invoke(app, ["audit", "export", "--jsonl", "audit.jsonl"])
        assert exported.exit_code == 0, exported.output
        assert len(Path("audit.jsonl").read_text().splitlines()) == 306
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_audit_record_whose_inputs_text_changed_fails_verify_and_export_shows_it(
    staged: Path,
) -> None:
    """Spacing added to record 5's stored inputs reads back as the same mapping: verify names
    the record, and the export keeps the changed text, so that the file fails there too."""
    store = sqlite3.connect(staged / "store.db")
    with store:
        store.execute("UPDATE audit SET inputs = replace(inputs, ':', ': ') WHERE seq = 5")
    store.close()
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == EXIT_DATA_PROBLEMS, verified.output
    assert " ".join(verified.stderr.split()).startswith(
        "audit log does not verify: record 5: not a well-formed record (field 'inputs' is text"
    )
    exported = runner.invoke(app, ["audit", "export", "--jsonl", "audit.jsonl"])
    assert exported.exit_code == 0, exported.output
    with Path("audit.jsonl").open("rb") as handle:
        result = verify(from_jsonl(handle))
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "field 'inputs' is text" in (result.problem or "")


def test_audit_export_to_a_folder_exits_2_and_leaves_nothing(staged: Path) -> None:
    Path("out").mkdir()
    result = runner.invoke(app, ["audit", "export", "--jsonl", "out"])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "is a folder" in result.stderr
    assert not list(staged.glob(".*.tmp"))


def test_a_plan_with_no_eligible_installations_says_so_and_makes_no_batch(staged: Path) -> None:
    make_plan([Path("secure.csv")], "secure_moc_installations", "ioc").write(Path("none.json"))
    for _ in range(2):  # first staging, and again
        result = runner.invoke(app, ["stage", "none.json", "--batch", "ioc-w1"])
        assert result.exit_code == 0, result.output
        assert " ".join(result.stdout.split()) == (
            "nothing to stage: the plan has no eligible installations (`migrate report` shows "
            "why each was excluded), so no batch ioc-w1 was made"
        )
    result = runner.invoke(app, ["stage", "none.json", "--batch", "ioc-w1", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["batch"], counts["requests"], counts["staged"]) == (None, 0, 0)
    status = runner.invoke(app, ["status", "--batch", "ioc-w1"])
    assert status.exit_code == EXIT_USAGE and "no batch 'ioc-w1' in the store" in status.stderr
    verified = runner.invoke(app, ["audit", "verify"])
    assert "audit log verifies: 306 records" in verified.stdout  # w1's, nothing more
