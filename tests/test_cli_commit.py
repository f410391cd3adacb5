"""`migrate commit` and `migrate apply` through typer's runner, against the real simulator."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import CALM, simulator_thread
from typer.testing import CliRunner

from migrate.cli import EXIT_DATA_PROBLEMS, EXIT_UNFINISHED, EXIT_USAGE, app
from migrate.plan import make_plan
from migrate.sim.dcc import SimulatorOptions
from migrate.sim.file_exchange import make_exchange

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plan of the Secure MOC sample and an empty store, in a folder of their own."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", "secure.csv")
    make_plan([Path("secure.csv")], "secure_moc_installations", "moc").write(Path("plan.json"))
    monkeypatch.setenv("MIGRATE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield tmp_path


def invoke(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, list(args))
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, json.loads(lines[-1]) if lines else {"output": result.output}


def test_apply_stages_and_commits_and_a_rerun_has_nothing_left(planned: Path) -> None:
    with simulator_thread(planned / "dcc") as url:
        code, first = invoke("apply", "plan.json", "--gateway", url, "--batch", "w1",
                             "--capacity", "1000", "--json")  # fmt: skip
        assert code == 0, first
        assert first["finished"] and first["states"] == {"MIGRATED": 306}
        code, again = invoke("commit", "--batch", "w1", "--gateway", url, "--json")
    assert code == 0 and again["tally"]["sent"] == 0  # type: ignore[index]
    status = runner.invoke(app, ["status", "--batch", "w1", "--json"])
    assert json.loads(status.stdout) == [
        {"batch": "w1", "reason": None, "requests": 306, "state": "MIGRATED"}
    ]


def test_failures_exit_1_and_are_named(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    with simulator_thread(planned / "dcc", master_keys_rate=0.1) as url:
        result = runner.invoke(
            app, ["commit", "--batch", "w1", "--gateway", url, "--capacity", "1000"]
        )
    assert result.exit_code == EXIT_DATA_PROBLEMS, result.output
    assert "requests FAILED: `migrate status --batch w1` lists them by reason" in result.stdout


def test_commit_through_a_file_drop_exchange(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    exchange = planned / "exchange"
    options = SimulatorOptions(capacity=1000, **CALM)
    with make_exchange(exchange, planned / "dcc", options, poll_interval_s=0.01):
        code, result = invoke("commit", "--batch", "w1", "--gateway", str(exchange),
                              "--capacity", "1000", "--json")  # fmt: skip
    assert code == 0, result
    assert result["states"] == {"MIGRATED": 306}


def test_the_days_capacity_leaves_the_batch_unfinished_exit_4(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    with simulator_thread(planned / "dcc") as url:
        result = runner.invoke(
            app, ["commit", "--batch", "w1", "--gateway", url, "--capacity", "40"]
        )
    assert result.exit_code == EXIT_UNFINISHED, result.output
    assert "wait for the next day's capacity" in result.stdout


def test_a_dcc_that_does_not_answer_exits_4_with_everything_staged(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    with simulator_thread(planned / "dcc") as url:
        pass  # stopped: nothing listens on its port any more
    code, result = invoke("commit", "--batch", "w1", "--gateway", url, "--wait", "0", "--json")
    assert code == EXIT_UNFINISHED and result["unavailable"]
    assert result["states"] == {"STAGED": 306}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "nope", "--gateway", "http://127.0.0.1:9"], "no batch 'nope'"),
        (["--batch", "w1", "--gateway", "http://127.0.0.1:9", "--workers", "2"], "SQLite serves"),
        (["--batch", "w1", "--gateway", "ftp://dcc"], "use an http(s) URL or a folder"),
        (["--batch", "w1", "--gateway", "no-such-folder"], "neither an http(s) URL nor a folder"),
    ],
)
def test_bad_commit_arguments_exit_2_with_one_line(
    planned: Path, args: list[str], message: str
) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    result = runner.invoke(app, ["commit", *args])
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr and "Traceback" not in result.output


def test_apply_refuses_a_plan_whose_inputs_changed(planned: Path) -> None:
    with Path("secure.csv").open("a", encoding="utf-8") as extract:
        extract.write("\n")
    result = runner.invoke(app, ["apply", "plan.json", "--gateway", "http://127.0.0.1:9"])
    assert result.exit_code == EXIT_USAGE
    assert "the plan's inputs changed since it was made: secure.csv (changed)" in result.stderr


def test_apply_of_a_plan_with_no_eligible_installations_says_so_and_sends_nothing(
    planned: Path,
) -> None:
    """Not "staged 0 requests (0 were staged already)": no batch is made, and the DCC (here
    an address nothing listens on) is not called."""
    make_plan([Path("secure.csv")], "secure_moc_installations", "ioc").write(Path("none.json"))
    args = ["apply", "none.json", "--gateway", "http://127.0.0.1:9", "--batch", "ioc-w1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert " ".join(result.stdout.split()) == (
        "nothing to stage or send: the plan has no eligible installations (`migrate report` "
        "shows why each was excluded), so no batch ioc-w1 was made"
    )
    code, document = invoke(*args, "--json")
    assert code == 0 and (document["batch"], document["requests"]) == (None, 0)
    assert runner.invoke(app, ["status", "--batch", "ioc-w1"]).exit_code == EXIT_USAGE


def test_status_of_an_unknown_batch_exits_2(planned: Path) -> None:
    result = runner.invoke(app, ["status", "--batch", "nope"])
    assert result.exit_code == EXIT_USAGE
    assert "no batch 'nope' in the store" in result.stderr


def test_held_failures_are_requeued_by_reason_and_sent_again(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    with simulator_thread(planned / "dcc", no_wan_rate=0.3) as url:
        code, held = invoke("commit", "--batch", "w1", "--gateway", url, "--capacity", "1000",
                            "--hold-failures", "--json")  # fmt: skip
    failed = held["states"]["FAILED"]  # type: ignore[index]
    assert code == EXIT_DATA_PROBLEMS and failed > 50
    code, moved = invoke("requeue", "--batch", "w1", "--reason", "NO_WAN_DURING_MIGRATION",
                         "--actor", "a.engineer", "--json")  # fmt: skip
    assert code == 0 and moved["moved"] == failed
    with simulator_thread(planned / "dcc") as url:
        code, again = invoke("commit", "--batch", "w1", "--gateway", url, "--capacity", "1000",
                             "--json")  # fmt: skip
    assert code == 0 and again["states"] == {"MIGRATED": 306}


def test_withdrawn_installations_are_never_sent(planned: Path) -> None:
    assert runner.invoke(app, ["stage", "plan.json", "--batch", "w1"]).exit_code == 0
    plan = json.loads(Path("plan.json").read_text())
    chosen = [entry["payload"]["installation_id"] for entry in plan["eligible"][:2]]
    args = [arg for i in chosen for arg in ("--installation", i)]
    code, done = invoke("withdraw", "--batch", "w1", *args, "--json")
    assert code == 0 and done["installation_ids"] == sorted(chosen)
    again = runner.invoke(app, ["withdraw", "--batch", "w1", *args])
    assert again.exit_code == EXIT_USAGE and "have no STAGED request" in again.stderr
    with simulator_thread(planned / "dcc") as url:
        code, result = invoke("commit", "--batch", "w1", "--gateway", url, "--capacity", "1000",
                              "--json")  # fmt: skip
    assert code == 0 and result["states"] == {"MIGRATED": 304, "WITHDRAWN": 2}
