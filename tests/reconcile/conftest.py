"""The staged batch every reconciliation test starts from, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from reconciliation import REPO, Cohort

from migrate.plan import make_plan
from migrate.store.engine import make_engine, upgrade
from migrate.store.staging import stage


@pytest.fixture
def cohort(db_url: str, tmp_path: Path) -> Iterator[Cohort]:
    extract = tmp_path / "secure.csv"
    shutil.copy(REPO / "examples" / "secure_moc_installations.csv", extract)
    plan = tmp_path / "plan.json"
    make_plan([extract], "secure_moc_installations", "moc").write(plan)
    engine = make_engine(db_url)
    upgrade(engine)
    stage(engine, plan, batch="b1", actor="tester", key=None)
    yield Cohort(engine, tmp_path)
    engine.dispose()
