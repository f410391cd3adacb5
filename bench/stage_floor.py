"""What the databases themselves allow for staging's biggest table, whatever the tool does:
the floor under bench/stage.py's goal of 150,000 device rows/s.

    python bench/stage_floor.py [--devices 787166] [--postgres URL]

Writes N device rows (batch, installation, EUI-64 device id, type, manufacturer, model,
firmware, MSN, MPxN: the shapes staging writes) into an empty copy of the store's `devices`
table, already sorted by its key, in one transaction, and times only the database's work:

- SQLite: the driver's executemany of a prepared INSERT into a fresh file in WAL mode with
  the store's pragmas (synchronous NORMAL, 256 MB of cache), the rows already Python tuples;
  once with the table's primary key, once without any index;
- PostgreSQL: COPY of the rows as CSV into an unindexed copy of `devices`, then into one
  with its primary key, then into one with its primary key and its foreign key to
  `installations` (holding each installation), as staging's table has.

Staging writes installations, requests (with their payloads and two more indexes) and one
audit record per request besides: if this table alone takes the whole budget, the goal is
beyond these databases on this machine, not beyond the tool. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

DEVICES_DDL = (
    "CREATE TABLE {name} (batch VARCHAR(200) NOT NULL, installation_id VARCHAR(200) NOT NULL,"
    " device_id VARCHAR(23) NOT NULL, device_type VARCHAR(10) NOT NULL,"
    " manufacturer VARCHAR(100), model VARCHAR(100), firmware_version VARCHAR(100),"
    " msn VARCHAR(100), mpxn VARCHAR(13){key})"
)
KEY = ", PRIMARY KEY (batch, installation_id, device_id)"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = "ioc-0123456789ab"


def device_rows(count: int) -> list[tuple[str, ...]]:
    """Rows shaped as staging's, about 2.5 devices an installation, in key order."""
    rows = [
        (
            BATCH,
            f"LG{i * 2 // 5:07d}",
            "00-1B-C5-" + "-".join(f"{i:010X}"[k : k + 2] for k in range(0, 10, 2)),
            ("ESME", "CHF", "GSME", "IHD")[i % 4],
            "Landis+Gyr",
            "E470-S1",
            "2.1.4",
            f"L17MB{i:06d}",
            f"{1000000000000 + i}",
        )
        for i in range(count)
    ]
    rows.sort()
    return rows


def sqlite_seconds(rows: list[tuple[str, ...]], folder: Path, key: str) -> float:
    path = folder / f"floor-{len(key)}.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-262144"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute(DEVICES_DDL.format(name="devices", key=key))
    statement = f"INSERT INTO devices VALUES ({', '.join('?' * 9)})"
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for start in range(0, len(rows), 50_000):
        connection.executemany(statement, rows[start : start + 50_000])
    connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def postgres_seconds(rows: list[tuple[str, ...]], url: str) -> dict[str, float]:
    import psycopg

    text = io.StringIO()
    for row in rows:
        text.write(",".join(row) + "\n")
    data = text.getvalue().encode()
    installations = sorted({row[1] for row in rows})
    schema = f"bench_floor_{os.getpid()}"
    found: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        try:
            connection.execute(f"SET search_path = {schema}")
            connection.execute(
                "CREATE TABLE installations (batch VARCHAR(200), installation_id VARCHAR(200),"
                " PRIMARY KEY (batch, installation_id))"
            )
            with connection.cursor().copy("COPY installations FROM STDIN") as copy:
                for installation in installations:
                    copy.write_row((BATCH, installation))
            foreign = (
                KEY + ", FOREIGN KEY (batch, installation_id) REFERENCES installations"
                " (batch, installation_id)"
            )
            for label, key in (("no_index", ""), ("primary_key", KEY), ("with_fk", foreign)):
                name = f"devices_{label}"
                connection.execute(DEVICES_DDL.format(name=name, key=key))
                started = time.perf_counter()
                with (
                    connection.transaction(),
                    connection.cursor().copy(f"COPY {name} FROM STDIN WITH (FORMAT csv)") as copy,
                ):
                    copy.write(data)
                found[label] = time.perf_counter() - started
        finally:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=787_166)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MIGRATE_BENCH_POSTGRES_DSN", POSTGRES_DEFAULT),
        help="a libpq connection string (not a SQLAlchemy URL)",
    )
    args = parser.parse_args(argv)
    rows = device_rows(args.devices)
    report: dict[str, object] = {"devices": args.devices}
    with tempfile.TemporaryDirectory() as folder:
        for label, key in (("primary_key", KEY), ("no_index", "")):
            seconds = sqlite_seconds(rows, Path(folder), key)
            rate = args.devices / seconds
            report[f"sqlite_{label}"] = {"s": round(seconds, 2), "rows_per_s": round(rate)}
            print(f"SQLite, devices only, {label}: {seconds:.2f} s = {rate:,.0f} rows/s")
    for label, seconds in postgres_seconds(rows, args.postgres).items():
        rate = args.devices / seconds
        report[f"postgresql_{label}"] = {"s": round(seconds, 2), "rows_per_s": round(rate)}
        print(f"PostgreSQL COPY, devices only, {label}: {seconds:.2f} s = {rate:,.0f} rows/s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
