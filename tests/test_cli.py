"""The `migrate` command through typer's runner: output, JSON and exit codes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migrate.cli import app

runner = CliRunner()
HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes"
)
HUB = (
    "LG1;Comms Hub;70-b3-d5-00-00-00-00-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "22/05/2016;LOND;Live;"
)


def test_ingest_clean_file_exits_0_with_json_counts(
    tmp_path: Path, write_text: Callable[..., Path]
) -> None:
    path = write_text("lg.csv", [HEADER, HUB])
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["ingest", str(path), "--mapping", "landis_ioc_devices", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_read"] == 1
    assert summary["rows_accepted"] == 1
    assert summary["quarantined_by_reason"] == {}
    assert summary["duplicates"] == 0
    assert summary["devices"] == 1 and summary["installations"] == 1
    assert (out / "devices.parquet").is_file()


def test_ingest_with_quarantined_rows_exits_1_and_prints_the_identity(
    tmp_path: Path, write_text: Callable[..., Path]
) -> None:
    bad = HUB.replace("1312345678907", "1.31234567891E+12")
    path = write_text("lg.csv", [HEADER, bad, HUB.replace("LG1", "LG2")])
    result = runner.invoke(
        app, ["ingest", str(path), "-m", "landis_ioc_devices", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1, result.output
    assert "PRECISION_LOST" in result.stdout
    assert "read 2 = accepted 1 + quarantined 1 + duplicates 0: holds" in result.stdout


def test_unknown_mapping_exits_2_with_one_clear_line(write_text: Callable[..., Path]) -> None:
    path = write_text("lg.csv", [HEADER, HUB])
    result = runner.invoke(app, ["ingest", str(path), "--mapping", "nope"])
    assert result.exit_code == 2
    assert "unknown mapping 'nope'" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_unreadable_file_exits_2_naming_the_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "estate.xlsx"
    path.write_bytes(b"this is not a workbook at all")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["ingest", str(path), "--mapping", "edmi_foc_estate", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert str(path) in result.stderr.replace("\n", "")
    assert "not a readable spreadsheet" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_failed_ingest_takes_away_the_output_folders_it_made(tmp_path: Path) -> None:
    path = tmp_path / "estate.xlsx"
    path.write_bytes(b"this is not a workbook at all")
    (tmp_path / "runs" / "kept").mkdir(parents=True)
    out = tmp_path / "runs" / "2026" / "cohort" / "out"
    result = runner.invoke(
        app, ["ingest", str(path), "--mapping", "edmi_foc_estate", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["kept"]


def test_missing_extract_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "absent.csv"), "--mapping", "landis_ioc_devices"]
    )
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_mapping_check_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad_vendor.yaml"
    bad.write_text(
        "name: bad_vendor\nlayout: long\ninstallation: {key: Site}\n"
        "device: {fields: {device_id: {column: EUI}, device_type: {column: T},"
        " colour: {column: C}}}\n"
    )
    result = runner.invoke(app, ["mapping", "check", str(bad)])
    assert result.exit_code == 2
    message = result.stderr.replace("\n", "")
    assert str(bad) in message
    assert "device.fields" in message
    assert "unknown device field 'colour'" in message


def test_mapping_list_shows_the_shipped_mappings() -> None:
    result = runner.invoke(app, ["mapping", "list"])
    assert result.exit_code == 0
    for name in ("landis_ioc_devices", "secure_moc_installations", "edmi_foc_estate"):
        assert name in result.stdout


def test_a_rehearsal_cohort_with_no_eligible_installations_is_neither_committed_nor_reconciled(
    tmp_path: Path, examples: Path
) -> None:
    """It makes no batch, so there is none to commit or reconcile: the rehearsal says so and
    goes on, where it stopped asking for a batch the store does not hold."""
    folder = tmp_path / "examples"
    folder.mkdir()
    shutil.copy(examples / "secure_moc_installations.csv", folder)
    (folder / "rehearsal.yaml").write_text(
        "extracts:\n"
        "  - {path: secure_moc_installations.csv, mapping: secure_moc_installations, cohort: ioc}\n"
    )
    out = tmp_path / "r"
    result = runner.invoke(app, ["rehearse", "--examples", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "so no batch rehearsal-ioc was made" in " ".join(result.stdout.split())
    assert "audit log: 0 records, verifies" in result.stdout
    assert not (out / "ioc" / "reconciliation").exists()
    result = runner.invoke(
        app, ["rehearse", "--examples", str(folder), "--out", str(tmp_path / "j"), "--json"]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["extracts"]["secure_moc_installations.csv"]
    assert (run["stage"]["batch"], run["stage"]["requests"], run["commit"]) == (None, 0, None)


def test_rehearse_outside_the_checkout_says_where_it_looked_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install .` then `migrate rehearse` from another folder: no traceback, and the
    way out (the checkout, or --examples)."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["rehearse"])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no rehearsal manifest here" in message
    assert "--examples" in message
    assert str(tmp_path / "examples") in "".join(message.split())  # however it wraps
    assert not (tmp_path / "rehearsal-output").exists()


def test_rehearse_ingests_every_sample_and_the_identity_holds(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rehearse", "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    runs = document["extracts"]
    assert document["audit"]["ok"] is True
    staged: dict[str, int] = {}
    for count in document["status"]:
        staged[count["batch"]] = staged.get(count["batch"], 0) + count["requests"]
        assert count["state"] in {"MIGRATED", "FAILED"}, count
    assert staged == {
        f"rehearsal-{c}": runs[e]["plan"]["eligible"]
        for c, e in (
            ("ioc", "landis_ioc_devices.csv"),
            ("moc", "secure_moc_installations.csv"),
            ("foc", "edmi_foc_estate.xlsx"),
        )
    }
    commits = [run["commit"] for run in runs.values() if run["commit"] is not None]
    assert len(commits) == 3 and all(not c["unavailable"] and not c["stopped"] for c in commits)
    # Each request staged, then sent, accepted and settled at least once.
    assert document["audit"]["records"] >= 4 * sum(staged.values())
    assert set(runs) == {
        "landis_ioc_devices.csv",
        "secure_moc_installations.csv",
        "edmi_foc_estate.xlsx",
        "warehouse_estate_firmware.parquet",
    }
    assert all(run["ingest"]["balanced"] for run in runs.values())
    assert runs["warehouse_estate_firmware.parquet"]["plan"] is None
    out = tmp_path / "r"
    assert (out / "ingest" / "edmi_foc_estate" / "installations.parquet").is_file()
    for cohort, extract in (
        ("ioc", "landis_ioc_devices.csv"),
        ("moc", "secure_moc_installations.csv"),
        ("foc", "edmi_foc_estate.xlsx"),
    ):
        plan = runs[extract]["plan"]
        assert (
            plan["cohort"] == cohort
            and plan["eligible"] + plan["excluded"] == plan["installations"]
        )
        assert (out / cohort / "plan.json").is_file()
        assert "<svg" in (out / cohort / "dry-run.html").read_text()
        assert (out / cohort / "csv" / "excluded.csv").is_file()


def test_report_needs_an_output_and_renders_a_plan(tmp_path: Path, examples: Path) -> None:
    plan = tmp_path / "plan.json"
    made = runner.invoke(
        app,
        [
            "plan",
            str(examples / "secure_moc_installations.csv"),
            "-c",
            "moc",
            "-m",
            "secure_moc_installations",
            "-o",
            str(plan),
        ],
    )
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["report", str(plan)]).exit_code == 2
    result = runner.invoke(app, ["report", str(plan), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "Dry-run report" in (tmp_path / "r.html").read_text()
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    failed = runner.invoke(app, ["report", str(broken), "--html", str(tmp_path / "x.html")])
    assert failed.exit_code == 2 and "not a readable plan" in failed.stderr


def test_sim_extract_writes_a_generated_estate(tmp_path: Path) -> None:
    path = tmp_path / "estate.csv"
    result = runner.invoke(
        app, ["sim", "extract", str(path), "--devices", "500", "--defect-rate", "0.02", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["rows"] >= 500
    assert path.read_bytes().startswith(b"Site ID;Device Type")


def test_the_real_command_keeps_its_output_and_exit_code(
    tmp_path: Path, write_text: Callable[..., Path]
) -> None:
    """Through the console entry point (which skips teardown after ingest): what was printed
    arrives whole and the exit code is the command's; pandas, which pyarrow would import
    for nothing, is never loaded; on Linux, Arrow allocates with jemalloc."""
    import subprocess
    import sys

    bad = HUB.replace("1312345678907", "1.31234567891E+12")
    path = write_text("lg.csv", [HEADER, bad, HUB.replace("LG1", "LG2")])
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "migrate",
            "--log-level",
            "INFO",
            "ingest",
            str(path),
            "-m",
            "landis_ioc_devices",
            "-o",
            str(tmp_path / "o"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["quarantined_by_reason"] == {"PRECISION_LOST": 1}
    assert (tmp_path / "o" / "summary.json").is_file()
    assert "pyarrow.lib" in done.stderr and "pandas.core" not in done.stderr
    if sys.platform == "linux":
        assert '"memory_pool": "jemalloc"' in done.stderr


UNEXPECTED = """\
import sys
import migrate.api

def ingest(*args, **kwargs):
    raise ValueError("cannot place MPAN 1312345678907 of Jane Doe")

migrate.api.ingest = ingest
from migrate.cli import main
extract, out, *options = sys.argv[1:]
sys.argv = ["migrate", *options, "ingest", extract, "--mapping", "landis_ioc_devices", "-o", out]
main()
"""


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_names_its_type_and_place_never_its_message(
    tmp_path: Path, examples: Path, debug: bool
) -> None:
    """The line an engineer pastes into a ticket: exit 3, the error's type and where it was
    raised, and not its message, which may hold a value from the extract. The message and
    traceback come with --log-level DEBUG, asked for."""
    import subprocess
    import sys

    options = ["--log-level", "DEBUG"] if debug else []
    extract = str(examples / "landis_ioc_devices.csv")
    done = subprocess.run(
        [sys.executable, "-c", UNEXPECTED, extract, str(tmp_path), *options],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    last = " ".join(done.stderr.split("internal error:")[-1].split())
    assert last.startswith("ValueError at migrate/cli.py:"), last
    assert "in ingest" in last and "--log-level DEBUG" in last
    assert "1312345678907" not in last and "Jane" not in last
    assert ("Traceback" in done.stderr) is debug
    assert ("1312345678907" in done.stderr) is debug
