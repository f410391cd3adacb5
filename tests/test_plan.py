"""The dry-run plan: complete, reproducible to the byte, and keyed for idempotent commits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from migrate import plan as plan_module
from migrate.cli import app
from migrate.errors import ConfigError
from migrate.input_records import records_beside
from migrate.plan import load_plan, make_plan

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans record paths as given: run from the repository so that they are relative."""
    monkeypatch.chdir(REPO)


def test_sample_plan_matches_its_golden_file(golden: Callable[[str, str], None]) -> None:
    plan = make_plan(
        [Path("examples/secure_moc_installations.csv")], "secure_moc_installations", "moc"
    )
    golden("plan_moc.json", plan.text)


SAMPLE_COHORTS = [
    ("landis_ioc_devices.csv", "landis_ioc_devices", "ioc"),
    ("secure_moc_installations.csv", "secure_moc_installations", "moc"),
    ("edmi_foc_estate.xlsx", "edmi_foc_estate", "foc"),
    *(
        (extract, mapping, "dormant")
        for extract, mapping in [
            ("landis_ioc_devices.csv", "landis_ioc_devices"),
            ("secure_moc_installations.csv", "secure_moc_installations"),
            ("edmi_foc_estate.xlsx", "edmi_foc_estate"),
        ]
    ),
]


@pytest.mark.parametrize(("extract", "mapping", "cohort"), SAMPLE_COHORTS)
def test_sample_extracts_give_stable_plan_counts(extract: str, mapping: str, cohort: str) -> None:
    """Each sample's plan counts for its own cohort and for the dormant batch, checked by hand
    once (every installation eligible or excluded; DORMANT in an active cohort and
    NOT_DORMANT in the dormant batch cover every installation whose mode is known)."""
    golden = json.loads((REPO / "tests" / "golden" / "plan_sample_summaries.json").read_text())
    summary = make_plan([Path("examples") / extract], mapping, cohort).summary.with_window()
    assert summary == golden[f"{extract} {cohort}"]
    assert summary["eligible"] + summary["excluded"] == summary["installations"]


def test_the_same_inputs_give_a_byte_identical_plan() -> None:
    args = ([Path("examples/landis_ioc_devices.csv")], "landis_ioc_devices", "ioc")
    assert make_plan(*args).text == make_plan(*args).text


def test_extract_records_taken_ahead_give_the_same_plan() -> None:
    # `migrate plan` hashes the extracts while the plan's modules load, and hands them over.
    args = ([Path("examples/landis_ioc_devices.csv")], "landis_ioc_devices", "ioc")
    ahead = make_plan(*args, extract_records=records_beside(args[0])).text
    assert ahead == make_plan(*args).text
    extract = json.loads(ahead)["extracts"][0]
    data = Path("examples/landis_ioc_devices.csv").read_bytes()
    assert extract == {
        "path": "examples/landis_ioc_devices.csv",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_every_installation_is_in_the_plan_once() -> None:
    plan = json.loads(
        make_plan([Path("examples/edmi_foc_estate.xlsx")], "edmi_foc_estate", "foc").text
    )
    eligible = [e["payload"]["installation_id"] for e in plan["eligible"]]
    excluded = [e["installation_id"] for e in plan["excluded"]]
    assert len(set(eligible)) == len(eligible) and not set(eligible) & set(excluded)
    assert len(eligible) + len(excluded) == plan["summary"]["installations"] == 300
    assert all(e["reasons"] for e in plan["excluded"])
    assert len(plan["quarantine"]) == sum(plan["ingest"]["quarantined_by_reason"].values())
    assert plan["mapping"]["sha256"] and plan["cohort"]["sha256"] and plan["extracts"][0]["sha256"]


def _entries(tmp_path: Path, text: str) -> dict[str, dict]:
    path = tmp_path / "x.csv"
    path.write_text(text)
    plan = json.loads(make_plan([path], "landis_ioc_devices", "ioc").text)
    return {e["payload"]["installation_id"]: e for e in plan["eligible"]}


HEADER = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes\n"
)
SITE = (
    "LG1;Comms Hub;70-b3-d5-00-00-00-00-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "01/02/2016;LOND;Live;\n"
    "LG1;Electricity Meter;70-b3-d5-00-00-00-00-02;Landis+Gyr;E470-S1;V2.1.4;L16KA992700;"
    "1312345678907;01/02/2016;LOND;Live;\n"
)


def test_idempotency_key_follows_the_device_set_fingerprint_the_payload(
    tmp_path: Path,
) -> None:
    base = _entries(tmp_path, HEADER + SITE)["LG1"]
    other_supplier = _entries(tmp_path, HEADER + SITE.replace("LOND", "EELC"))["LG1"]
    other_firmware = _entries(tmp_path, HEADER + SITE.replace("V3.1.0", "V3.0.2"))["LG1"]
    reordered = _entries(tmp_path, HEADER + "".join(reversed(SITE.splitlines(True))))["LG1"]
    assert other_supplier["idempotency_key"] == base["idempotency_key"]
    assert other_supplier["fingerprint"] != base["fingerprint"]
    assert reordered["idempotency_key"] == base["idempotency_key"]
    assert reordered["fingerprint"] == base["fingerprint"]
    assert other_firmware["payload"]["combination"] != base["payload"]["combination"]
    assert other_firmware["idempotency_key"] != base["idempotency_key"]


def test_devices_are_listed_by_type_then_id_whatever_the_extract_order(tmp_path: Path) -> None:
    ihds = "".join(
        f"LG1;In Home Display;70-b3-d5-00-00-00-00-{eui};Landis+Gyr;IHD-1;1.0;;;"
        "01/02/2016;LOND;Live;\n"
        for eui in ("09", "03", "07")
    )
    lines = (ihds + SITE).splitlines(True)
    entry = _entries(tmp_path, HEADER + "".join(lines[2:] + lines[:2]))["LG1"]
    assert [(d[1], d[0]) for d in entry["payload"]["devices"]] == [
        ("CHF", "70-B3-D5-00-00-00-00-01"),
        ("ESME", "70-B3-D5-00-00-00-00-02"),
        ("IHD", "70-B3-D5-00-00-00-00-03"),
        ("IHD", "70-B3-D5-00-00-00-00-07"),
        ("IHD", "70-B3-D5-00-00-00-00-09"),
    ]


# An IHD (set aside by the combination rule, so listed in an eligible payload) whose make
# and model hold what a JSON string must escape, and no firmware.
ODD_IHD = (
    'LG1;In Home Display;70-b3-d5-00-00-00-00-09;"Chameleon ""Tech"" \\";IHD\t1;;;;'
    "01/02/2016;LOND;Live;\n"
)


def test_a_device_model_is_written_as_json_whatever_its_fields_hold(tmp_path: Path) -> None:
    """A model's fields are written once per distinct model and taken by its devices: the
    escaping and the nulls are each field's own, and the fingerprint covers those bytes."""
    path = tmp_path / "x.csv"
    path.write_text(HEADER + SITE + ODD_IHD)
    text = make_plan([path], "landis_ioc_devices", "ioc").text
    line = next(line for line in text.splitlines() if '"installation_id":"LG1"' in line)
    entry = json.loads(line.rstrip(","))
    assert entry["payload"]["devices"][2] == [
        "70-B3-D5-00-00-00-00-09",
        "IHD",
        'Chameleon "Tech" \\',
        "IHD\t1",
        None,
        None,
        None,
    ]
    payload = line.rstrip(",")[line.index('"payload":') + len('"payload":') : -1]
    assert hashlib.sha256(payload.encode()).hexdigest() == entry["fingerprint"]


def test_a_device_s_model_fields_stand_together_in_its_array() -> None:
    """A device's model is written as one fragment in the place of its fields: they must
    follow one another in the payload's device arrays, in the model's order."""
    at = plan_module.DEVICE_FIELDS.index(plan_module.MODEL_FIELDS[0])
    fields = plan_module.DEVICE_FIELDS[at : at + len(plan_module.MODEL_FIELDS)]
    assert fields == plan_module.MODEL_FIELDS


def test_a_plan_built_in_small_pieces_is_the_plan_built_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The eligible entries are built a piece at a time, two pieces at once: pieces of a few
    installations, out of step with the suppliers, give the same bytes."""
    args = ([Path("examples/landis_ioc_devices.csv")], "landis_ioc_devices", "ioc")
    whole = make_plan(*args).text
    monkeypatch.setattr(plan_module, "PIECE", 7)
    assert make_plan(*args).text == whole


def test_a_plan_that_fails_while_written_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entries are made while the plan is written: a piece that fails half way leaves
    neither the plan nor its temporary file, and the plan can be written again."""
    made = make_plan([Path("examples/landis_ioc_devices.csv")], "landis_ioc_devices", "ioc")
    whole = made.text
    entries = plan_module._EligibleSet.entries
    calls = iter(range(10**6))

    def failing(self: object, start: int, stop: int) -> object:
        if next(calls) == 2:
            raise MemoryError("out of memory in the third piece")
        return entries(self, start, stop)

    monkeypatch.setattr(plan_module, "PIECE", 5)
    monkeypatch.setattr(plan_module._EligibleSet, "entries", failing)
    out = tmp_path / "plans" / "plan.json"
    with pytest.raises(MemoryError):
        made.write(out)
    assert list(out.parent.iterdir()) == []
    made.write(out)
    assert out.read_text() == whole == made.text


def test_the_schedule_fills_each_day_to_capacity_per_supplier(tmp_path: Path) -> None:
    cohort = (
        (REPO / "cohorts" / "ioc.yaml")
        .read_text()
        .replace("capacity_per_supplier_per_day: 100", "capacity_per_supplier_per_day: 50")
    )
    rules = tmp_path / "ioc.yaml"
    rules.write_text(cohort)
    plan = json.loads(
        make_plan([Path("examples/landis_ioc_devices.csv")], "landis_ioc_devices", str(rules)).text
    )
    by_supplier = {s["supplier_mpid"]: s for s in plan["schedule"]["by_supplier"]}
    for supplier, entry in by_supplier.items():
        days = [e["day"] for e in plan["eligible"] if e["payload"]["supplier_mpid"] == supplier]
        assert max(days) == entry["days"] == -(-entry["eligible"] // 50)
        assert all(days.count(d) <= 50 for d in set(days))
    assert plan["schedule"]["days"] == max(s["days"] for s in by_supplier.values())


def test_plan_cli_prints_summary_json_and_writes_the_plan(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "examples/landis_ioc_devices.csv",
            "-c",
            "ioc",
            "-m",
            "landis_ioc_devices",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["installations"] == summary["eligible"] + summary["excluded"] == 300
    assert load_plan(out)["summary"]["eligible"] == summary["eligible"]
    assert summary["fits_window"] is True and "warning" not in result.stderr
    assert summary["finish"] <= summary["window_end"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_plan_cli_warns_when_the_schedule_overruns_the_window(tmp_path: Path) -> None:
    rules = tmp_path / "ioc.yaml"
    rules.write_text(
        (REPO / "cohorts" / "ioc.yaml")
        .read_text()
        .replace("capacity_per_supplier_per_day: 100", "capacity_per_supplier_per_day: 1")
        .replace("end: 2022-12-31", "end: 2019-06-10")
    )
    result = CliRunner().invoke(
        app,
        [
            *("plan", "examples/landis_ioc_devices.csv", "-c", str(rules)),
            *("-m", "landis_ioc_devices", "-o", str(tmp_path / "plan.json"), "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fits_window"] is False and summary["window_end"] == "2019-06-10"
    assert f"schedule ends on {summary['finish']}, after the cohort's window ends" in (
        " ".join(result.stderr.split())
    )


def test_a_plan_date_after_the_window_is_refused() -> None:
    import datetime as dt

    with pytest.raises(ConfigError, match="after the cohort's window"):
        make_plan(
            [Path("examples/landis_ioc_devices.csv")],
            "landis_ioc_devices",
            "ioc",
            as_of=dt.date(2030, 1, 1),
        )


@pytest.fixture(scope="module")
def sample_plan_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("plan") / "plan.json"
    make_plan([REPO / "examples/landis_ioc_devices.csv"], "landis_ioc_devices", "ioc").write(out)
    return out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda plan: plan.pop("cohort"), "'cohort'"),
        (lambda plan: plan["mapping"].pop("sha256"), "'mapping.sha256'"),
        (lambda plan: plan["extracts"][0].update(bytes="12"), "'extracts.0.bytes'"),
        (lambda plan: plan.update(excluded={}), "'excluded'"),
        (lambda plan: plan["excluded"][2].update(findings="x"), "'excluded.2.findings'"),
        (lambda plan: plan["excluded"][0].update(reasons=[1]), "'excluded.0.reasons.0'"),
        (lambda plan: plan["summary"].update(excluded_by_reason={"DORMANT": "3"}), "'summary."),
        (lambda plan: plan["eligible"].insert(5, [1]), "'eligible.5'"),
        (lambda plan: plan["eligible"][7].update(payload=None), "'eligible.7'"),
        (lambda plan: plan["eligible"][9].update(models=3), "'eligible.9'"),
    ],
)
def test_load_plan_refuses_a_plan_missing_a_part_or_with_one_of_another_type(
    sample_plan_text: str, tmp_path: Path, damage: Callable[[dict], object], key: str
) -> None:
    """What a report reads must be there and of its type: a plan cut short or edited by hand
    is refused by name (a clean error, exit 2), never half rendered or a traceback."""
    document = json.loads(sample_plan_text)
    damage(document)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="not a whole plan") as refused:
        load_plan(path)
    assert key in str(refused.value)
    result = CliRunner().invoke(app, ["report", str(path), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert "not a whole plan" in " ".join(result.stderr.split())
    assert not (tmp_path / "r.html").exists()


def test_load_plan_takes_a_whole_plan(sample_plan_text: str, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(sample_plan_text)
    assert load_plan(path) == json.loads(sample_plan_text)


def test_load_plan_refuses_what_is_not_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"plan_version": 99}')
    with pytest.raises(ConfigError, match="not a plan of version 1"):
        load_plan(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable plan"):
        load_plan(path)
