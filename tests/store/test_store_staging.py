"""Staging, schema versions, the state machine and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from migrate import api, config_files
from migrate.errors import ConfigError, InputError
from migrate.plan import make_plan
from migrate.store import audit_log
from migrate.store.engine import (
    alembic_config,
    head_revision,
    make_engine,
    require_current,
    upgrade,
)
from migrate.store.progress import batch_status
from migrate.store.schema import audit, batches, devices, installations, requests
from migrate.store.staging import FingerprintConflict, StalePlan, stage
from migrate.store.states import IllegalTransition, RequestState, check_transition

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """A plan of the Secure MOC sample, made from a copy of it that a test may change."""
    extract = tmp_path / "secure.csv"
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", extract)
    plan = make_plan([extract], "secure_moc_installations", "moc")
    path = tmp_path / "plan.json"
    plan.write(path)
    return path


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_store_must_be_upgraded_before_use_and_says_how(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(ConfigError, match="run `migrate db upgrade`"):
        require_current(engine)
    before, after = upgrade(engine)
    assert (before, after) == (None, head_revision())
    require_current(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(
        ConfigError, match=f"at schema version 0001, this toolkit needs {head_revision()}"
    ):
        require_current(engine)
    engine.dispose()


def _old_store(db_url: str, revision: str, request: str) -> Engine:
    """A store at an older schema version holding one request of installation I-1, given
    as the columns and values of its INSERT (with :at for the time)."""
    engine = make_engine(db_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO batches VALUES ('old', 'moc', :h, 'plan.json', '{}', :at, 'tester')"),
            {"h": "0" * 64, "at": at},
        )
        connection.execute(
            text("INSERT INTO installations (batch, installation_id) VALUES ('old', 'I-1')")
        )
        connection.execute(text(f"INSERT INTO requests {request}"), {"at": at})
    return engine


def test_a_store_staged_at_the_first_version_upgrades_with_its_requests(
    db_url: str, plan_file: Path
) -> None:
    engine = _old_store(
        db_url,
        "0001",
        "(idempotency_key, fingerprint, batch, cohort, installation_id, state, attempts,"
        " payload, updated_at) VALUES ('k1', 'f1', 'old', 'moc', 'I-1', 'STAGED', 0, '{}', :at)",
    )
    assert upgrade(engine) == ("0001", head_revision())
    with engine.connect() as connection:
        row = connection.execute(select(requests).where(requests.c.idempotency_key == "k1")).one()
    assert (row.state, row.sends, row.worker, row.retryable) == ("STAGED", 0, None, None)
    engine.dispose()


def test_a_store_at_0002_gains_the_installation_index_and_keeps_its_requests(db_url: str) -> None:
    engine = _old_store(
        db_url,
        "0002",
        "(idempotency_key, fingerprint, batch, cohort, installation_id, state, attempts,"
        " payload, updated_at, sends)"
        " VALUES ('k1', 'f1', 'old', 'moc', 'I-1', 'FAILED', 1, '{}', :at, 1)",
    )
    config = alembic_config()

    def indexes() -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes("requests")}

    assert "requests_installation" not in indexes()
    assert upgrade(engine) == ("0002", "0004") and head_revision() == "0004"
    require_current(engine)
    assert {"requests_claim", "requests_installation"} <= indexes()
    with engine.connect() as connection:
        row = connection.execute(select(requests).where(requests.c.installation_id == "I-1")).one()
    assert (row.idempotency_key, row.state, row.sends) == ("k1", "FAILED", 1)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    assert "requests_installation" not in indexes()
    with pytest.raises(ConfigError, match="at schema version 0002, this toolkit needs 0004"):
        require_current(engine)
    engine.dispose()


def test_a_store_at_0003_keeps_its_batches_without_limits(db_url: str) -> None:
    """Batches staged before 0004 keep no limits (commit goes by the cohort file for them);
    a downgrade drops the columns again."""
    engine = _old_store(
        db_url,
        "0003",
        "(idempotency_key, fingerprint, batch, cohort, installation_id, state, attempts,"
        " payload, updated_at) VALUES ('k1', 'f1', 'old', 'moc', 'I-1', 'STAGED', 0, '{}', :at)",
    )
    assert upgrade(engine) == ("0003", "0004")
    with engine.connect() as connection:
        row = connection.execute(select(batches).where(batches.c.name == "old")).one()
    assert (row.cohort, row.capacity_per_day, row.max_attempts) == ("moc", None, None)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    columns = {column["name"] for column in inspect(engine).get_columns("batches")}
    assert "capacity_per_day" not in columns and "name" in columns
    engine.dispose()


def test_a_batch_keeps_the_limits_of_its_plans_cohort_rules(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    with store.connect() as connection:
        row = connection.execute(select(batches).where(batches.c.name == "moc-1")).one()
    assert (row.capacity_per_day, row.max_attempts) == (100, 5)  # cohorts/moc.yaml


def test_staging_a_plan_stages_every_eligible_installation_once(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    plan = json.loads(plan_file.read_text())
    eligible = len(plan["eligible"])
    result = stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    assert (result.staged, result.already, result.requests) == (eligible, 0, eligible)
    assert result.devices == plan["summary"]["eligible_devices"] == _count(store, devices)
    assert _count(store, requests) == _count(store, installations) == eligible
    assert [(c.batch, c.state, c.requests) for c in batch_status(store)] == [
        ("moc-1", "STAGED", eligible)
    ]
    again = stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    assert (again.staged, again.already) == (0, eligible)
    assert _count(store, requests) == eligible
    with store.connect() as connection:
        assert audit_log.verify_log(connection, None).ok
        assert audit_log.head(connection) == (eligible, audit_log.head(connection)[1])


# One eligible Landis+Gyr site whose IHD (set aside by the combination rule, so in the
# payload) has a make and model that JSON must escape, and no firmware.
ODD_SITE = (
    "Site ID;Device Type;Device EUI;Make;Model;Firmware;Serial No;MPxN;"
    "Install Date;Supplier;Status;Notes\n"
    "LG1;Comms Hub;70-b3-d5-00-00-00-00-01;Landis+Gyr;LG-CH1;V3.1.0;;1312345678907;"
    "01/02/2016;LOND;Live;\n"
    "LG1;Electricity Meter;70-b3-d5-00-00-00-00-02;Landis+Gyr;E470-S1;V2.1.4;L16KA992700;"
    "1312345678907;01/02/2016;LOND;Live;\n"
    'LG1;In Home Display;70-b3-d5-00-00-00-00-09;"Odd ""Make"" \\";IHD\t1;;;;'
    "01/02/2016;LOND;Live;\n"
)


def test_a_payload_whose_device_model_needs_escaping_stages_as_planned(  # type: ignore[no-untyped-def]
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging rebuilds each payload field by field, the plan wrote a device's model as one
    fragment per distinct model: the two agree byte for byte, escapes and nulls included."""
    monkeypatch.chdir(tmp_path)
    extract = tmp_path / "landis.csv"
    extract.write_text(ODD_SITE)
    path = tmp_path / "plan.json"
    make_plan([extract], "landis_ioc_devices", "ioc").write(path)
    assert stage(store, path, batch="ioc-1", actor="tester", key=None).staged == 1
    with store.connect() as connection:
        stored = connection.execute(select(devices.c.manufacturer, devices.c.model)).all()
    assert ('Odd "Make" \\', "IHD\t1") in [tuple(row) for row in stored]


def test_a_key_staged_with_another_fingerprint_is_refused_by_name(  # type: ignore[no-untyped-def]
    store, plan_file: Path, tmp_path: Path
) -> None:
    """A later plan whose installation kept its devices (same key) but changed supplier
    (other payload) cannot silently replace the staged request."""
    stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    later = tmp_path / "later"
    later.mkdir()
    extract = later / "secure.csv"
    text = (tmp_path / "secure.csv").read_text()
    extract.write_text(text.replace("SEC0000002,SECURE-SMSO,BGAS", "SEC0000002,SECURE-SMSO,EELC"))
    second = later / "plan.json"
    make_plan([extract], "secure_moc_installations", "moc").write(second)
    with pytest.raises(FingerprintConflict) as caught:
        stage(store, second, batch="moc-2", actor="tester", key=None)
    assert caught.value.installations == ["SEC0000002"]
    assert _count(store, requests) == len(json.loads(plan_file.read_text())["eligible"])


def test_an_altered_plan_is_refused(store, plan_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    altered = tmp_path / "altered.json"
    text = plan_file.read_text()
    assert '"supplier_mpid":"BGAS"' in text
    altered.write_text(text.replace('"supplier_mpid":"BGAS"', '"supplier_mpid":"EELC"', 1))
    with pytest.raises(InputError, match="do not match their fingerprints"):
        stage(store, altered, batch="moc-x", actor="tester", key=None)
    assert _count(store, requests) == 0


def test_a_plan_whose_inputs_changed_is_refused(store, plan_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    extract = tmp_path / "secure.csv"
    extract.write_text(extract.read_text().replace("LOND", "EELC", 1))
    with pytest.raises(StalePlan, match=r"secure.csv \(changed\)"):
        stage(store, plan_file, actor="tester", key=None)
    assert _count(store, requests) == 0


def test_a_plan_staged_from_another_folder_says_where_its_paths_start(  # type: ignore[no-untyped-def]
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_in, elsewhere = tmp_path / "made-in", tmp_path / "elsewhere"
    made_in.mkdir()
    elsewhere.mkdir()
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", made_in / "secure.csv")
    monkeypatch.chdir(made_in)
    plan_path = made_in / "plan.json"
    make_plan([Path("secure.csv")], "secure_moc_installations", "moc").write(plan_path)
    monkeypatch.chdir(elsewhere)
    with pytest.raises(StalePlan) as refused:
        stage(store, plan_path, actor="tester", key=None)
    message = str(refused.value)
    assert "secure.csv (missing)" in message
    assert f"not from here ({elsewhere})" in message
    assert "run `migrate stage` from that folder" in message
    assert _count(store, requests) == 0


def test_a_plan_names_the_toolkits_own_files_so_that_it_stages_on_another_installation(  # type: ignore[no-untyped-def]
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made outside a checkout, a plan's shipped cohort and mapping are named by their place
    among the shipped files, not by this installation's folder: the same bytes on every
    machine, and staged by another installation of the same toolkit (here, a copy of the
    shipped files elsewhere), their SHA-256 still checked."""
    made_in = tmp_path / "made-in"
    made_in.mkdir()
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", made_in / "secure.csv")
    monkeypatch.chdir(made_in)
    plan_path = made_in / "plan.json"
    make_plan([Path("secure.csv")], "secure_moc_installations", "moc").write(plan_path)
    head = json.loads(plan_path.read_text())
    assert head["cohort"]["path"] == "shipped:cohorts/moc.yaml"
    assert head["mapping"]["path"] == "shipped:mappings/secure_moc_installations.yaml"

    other = tmp_path / "other-installation"
    for kind in ("cohorts", "mappings"):
        shutil.copytree(config_files.shipped_folder(kind), other / kind)  # type: ignore[arg-type]
    monkeypatch.setattr(config_files, "shipped_folder", lambda kind: other / kind)
    batch = stage(store, plan_path, actor="tester", key=None)
    assert _count(store, requests) == batch.requests > 0

    (other / "cohorts" / "moc.yaml").write_text(
        (other / "cohorts" / "moc.yaml").read_text() + "\n# edited\n"
    )
    with pytest.raises(StalePlan, match=r"moc.yaml \(changed\)"):
        stage(store, plan_path, actor="tester", key=None, batch="again")


def test_an_input_record_names_a_shipped_file_only_among_the_shipped_kinds() -> None:
    shipped = config_files.shipped_folder("cohorts")
    assert shipped is not None
    assert config_files.recorded_file("shipped:cohorts/ioc.yaml") == shipped / "ioc.yaml"
    for recorded in ("shipped:elsewhere/x.yaml", "shipped:cohorts", "cohorts/ioc.yaml"):
        assert config_files.recorded_file(recorded) == Path(recorded)


def test_the_audit_log_names_the_first_altered_record(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    stage(store, plan_file, batch="moc-1", actor="tester", key=b"secret")
    with store.connect() as connection:
        assert audit_log.verify_log(connection, b"secret").ok
        assert not audit_log.verify_log(connection, b"wrong").ok
    if store.dialect.name == "postgresql":
        for statement in ("UPDATE audit SET reason = 'x' WHERE seq = 5", "DELETE FROM audit"):
            with pytest.raises(DBAPIError, match="append-only"), store.begin() as connection:
                connection.execute(text(statement))
        return
    with store.begin() as connection:
        connection.execute(text("UPDATE audit SET reason = 'edited' WHERE seq = 5"))
    with store.connect() as connection:
        result = audit_log.verify_log(connection, None)
    assert not result.ok and result.first_bad_seq == 5


def test_a_truncated_tail_is_caught_by_the_kept_head(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    with store.begin() as connection:
        if store.dialect.name == "postgresql":
            # A superuser can switch the append-only trigger off: the head still tells.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        last = connection.execute(select(func.max(audit.c.seq))).scalar_one()
        connection.execute(text(f"DELETE FROM audit WHERE seq = {int(last)}"))
    with store.connect() as connection:
        result = audit_log.verify_log(connection, None)
    assert not result.ok and "truncated" in (result.problem or "")


def test_two_stagers_racing_on_one_plan_leave_one_copy(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stage(store, plan_file, batch="moc-1", actor="racer", key=None)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    eligible = len(json.loads(plan_file.read_text())["eligible"])
    assert _count(store, requests) == eligible
    assert _count(store, audit) == eligible  # staged once, audited once
    with store.connect() as connection:
        assert audit_log.verify_log(connection, None).ok


@pytest.mark.parametrize(
    ("source", "target", "legal"),
    [
        (None, RequestState.STAGED, True),
        (RequestState.STAGED, RequestState.SUBMITTING, True),
        (RequestState.SUBMITTING, RequestState.STAGED, True),
        (RequestState.SUBMITTING, RequestState.ACCEPTED, True),
        (RequestState.ACCEPTED, RequestState.MIGRATED, True),
        (RequestState.FAILED, RequestState.STAGED, True),
        (RequestState.STAGED, RequestState.MIGRATED, False),
        (RequestState.MIGRATED, RequestState.STAGED, False),
        (RequestState.WITHDRAWN, RequestState.STAGED, False),
        (None, RequestState.SUBMITTING, False),
    ],
)
def test_the_state_machine_allows_only_its_transitions(
    source: RequestState | None, target: RequestState, legal: bool
) -> None:
    if legal:
        check_transition(source, target, "k")
    else:
        with pytest.raises(IllegalTransition, match="is not allowed"):
            check_transition(source, target, "k")


def test_staged_payloads_are_the_planned_bytes_their_fingerprints_cover(  # type: ignore[no-untyped-def]
    store, plan_file: Path
) -> None:
    import hashlib

    stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    plan = json.loads(plan_file.read_text())
    with store.connect() as connection:
        stored = dict(
            connection.execute(select(requests.c.idempotency_key, requests.c.payload)).all()
        )
        dated = connection.execute(
            select(requests.c.planned_date, requests.c.state, requests.c.updated_at).limit(1)
        ).one()
    for entry in plan["eligible"]:
        text = stored[entry["idempotency_key"]]
        assert hashlib.sha256(text.encode()).hexdigest() == entry["fingerprint"]
        assert json.loads(text) == entry["payload"]
    assert dated.state == "STAGED" and dated.planned_date.isoformat() == plan["as_of"]
    assert dated.updated_at is not None


def test_a_plan_with_no_eligible_installations_makes_no_batch(  # type: ignore[no-untyped-def]
    store, plan_file: Path, tmp_path: Path
) -> None:
    """An empty batch held nothing, had no audit record, and kept its name from the next
    plan ("batch 'w1' already holds another plan")."""
    none = tmp_path / "none.json"
    make_plan([tmp_path / "secure.csv"], "secure_moc_installations", "ioc").write(none)
    for _ in range(2):  # idempotent
        result = stage(store, none, batch="w1", actor="tester", key=None)
        assert (result.requests, result.staged, result.already, result.audit_head) == (0, 0, 0, 0)
    assert _count(store, batches) == _count(store, audit) == 0
    staged = stage(store, plan_file, batch="w1", actor="tester", key=None)
    assert staged.staged == _count(store, requests) > 0 and _count(store, batches) == 1


def test_staging_a_staged_plan_under_another_batch_name_is_refused(store, plan_file: Path) -> None:  # type: ignore[no-untyped-def]
    stage(store, plan_file, batch="moc-1", actor="tester", key=None)
    with pytest.raises(InputError, match=r"already staged, in batch\(es\) moc-1"):
        stage(store, plan_file, batch="moc-again", actor="tester", key=None)
    assert [c.batch for c in batch_status(store)] == ["moc-1"]


@pytest.mark.parametrize("option", ["batch", "actor"])
def test_a_batch_name_or_actor_longer_than_the_store_keeps_is_refused_before_any_write(  # type: ignore[no-untyped-def]
    store, db_url: str, plan_file: Path, option: str
) -> None:
    """The same limit on both databases (PostgreSQL's column would refuse the write, SQLite's
    keep it whole), for staging and for the commands that only record an actor."""
    too_long = f"--{option} is 201 characters long; the store keeps at most 200"
    with pytest.raises(ConfigError, match=too_long):
        api.stage(plan_file, db=db_url, **{option: "x" * 201})
    assert _count(store, batches) == _count(store, audit) == 0
    staged = api.stage(plan_file, db=db_url, **{option: "x" * 200})
    assert staged.staged == _count(store, requests) == _count(store, audit)
    with pytest.raises(ConfigError, match="--actor is 201 characters long"):
        api.withdraw(staged.batch, ["SEC0000002"], db=db_url, actor="x" * 201)
    assert _count(store, audit) == staged.staged


def test_a_plan_listing_an_installation_twice_is_refused_naming_it(  # type: ignore[no-untyped-def]
    store, plan_file: Path, tmp_path: Path
) -> None:
    """Not mistaken for a race with another stager (which a rerun would cure): the plan is
    malformed, and nothing is written."""
    lines = plan_file.read_text().splitlines(keepends=True)
    first = lines.index('"eligible": [\n') + 1
    repeated = json.loads(lines[first].rstrip().rstrip(","))["payload"]["installation_id"]
    doubled = tmp_path / "doubled.json"
    doubled.write_text("".join([*lines[: first + 1], lines[first], *lines[first + 1 :]]))
    with pytest.raises(InputError) as caught:
        stage(store, doubled, batch="moc-1", actor="tester", key=None)
    assert f"lists 1 eligible installation(s) more than once: {repeated}." in str(caught.value)
    assert _count(store, batches) == _count(store, requests) == _count(store, audit) == 0


def _lengthened(extract: Path, installation: str, msn: str) -> None:
    """The Secure MOC sample as `extract`, SEC0000002 renamed to `installation` and
    SEC0000003's electricity meter's serial number made `msn` (both stay eligible: an odd
    serial number is only a warning)."""
    original = REPO / "examples" / "secure_moc_installations.csv"
    lines = original.read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("SEC0000002,"):
            lines[index] = installation + line.removeprefix("SEC0000002")
        elif line.startswith("SEC0000003,"):
            lines[index] = line.replace(",H16MB087852,", f",{msn},")
    extract.write_text("".join(lines))


def _refused(store, extract: Path, installation: str, msn: str) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """The plan of the Secure MOC sample made odd by _lengthened, and staging's refusal."""
    _lengthened(extract, installation, msn)
    plan = extract.with_suffix(".json")
    make_plan([extract], "secure_moc_installations", "moc").write(plan)
    with pytest.raises(InputError) as caught:
        stage(store, plan, batch="moc-1", actor="tester", key=None)
    return plan, str(caught.value)


def test_values_longer_than_the_store_keeps_are_refused_before_any_write(  # type: ignore[no-untyped-def]
    store, tmp_path: Path
) -> None:
    """The same on both databases: PostgreSQL refused them mid-write as an internal error,
    SQLite kept them whole. Each field is named with its limit and its installations."""
    extract = tmp_path / "secure.csv"
    long_id = "SEC0000002" + "X" * 191
    plan, refusal = _refused(store, extract, long_id, "H16MB" + "0" * 96)
    assert refusal == (
        f"{plan}: holds values longer than the store keeps: installation_id longer than 200 "
        f"characters in 1 installation(s): {long_id[:40]}…; msn longer than 100 characters in "
        "1 installation(s): SEC0000003. Nothing was staged: correct them in the extract, then "
        "plan again"
    )
    assert _count(store, batches) == _count(store, requests) == _count(store, audit) == 0

    _lengthened(extract, long_id[:200], "H16MB" + "0" * 95)  # at the limits: kept whole
    make_plan([extract], "secure_moc_installations", "moc").write(plan)
    staged = stage(store, plan, batch="moc-1", actor="tester", key=None)
    assert staged.staged == _count(store, requests) > 0
    with store.connect() as connection:
        kept = connection.execute(
            select(installations.c.installation_id).where(
                installations.c.installation_id.like("SEC0000002%")
            )
        ).scalar_one()
        msn = connection.execute(
            select(devices.c.msn).where(
                devices.c.installation_id == "SEC0000003", devices.c.device_type == "ESME"
            )
        ).scalar_one()
    assert (kept, msn) == (long_id[:200], "H16MB" + "0" * 95)


def test_a_nul_character_in_a_value_is_refused_before_any_write(  # type: ignore[no-untyped-def]
    store, tmp_path: Path
) -> None:
    """PostgreSQL's text cannot hold NUL (it refused the write midway); SQLite would keep it.
    The same on both: refused before anything is written, naming the field."""
    plan, refusal = _refused(store, tmp_path / "secure.csv", "SEC0000002", "H16MB\x00001")
    assert refusal == (
        f"{plan}: holds values the store cannot keep: msn with a NUL character in 1 "
        "installation(s): SEC0000003. Nothing was staged: correct them in the extract, then "
        "plan again"
    )
    assert _count(store, batches) == _count(store, requests) == _count(store, audit) == 0
