"""The capacity allowance's day is the UK's: in summer it turns at 23:00 UTC."""

from __future__ import annotations

import datetime as dt

import pytest

from migrate.commit.capacity import capacity_day


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        # British Summer Time (UTC+1): 23:30 UTC is already tomorrow in the UK.
        (dt.datetime(2026, 6, 30, 22, 59, tzinfo=dt.UTC), dt.date(2026, 6, 30)),
        (dt.datetime(2026, 6, 30, 23, 0, tzinfo=dt.UTC), dt.date(2026, 7, 1)),
        # Greenwich Mean Time: the UK day is the UTC day.
        (dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC), dt.date(2026, 11, 30)),
        (dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC), dt.date(2026, 12, 1)),
        # The nights the clocks change (29 March and 25 October 2026).
        (dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), dt.date(2026, 3, 29)),
        (dt.datetime(2026, 3, 29, 23, 30, tzinfo=dt.UTC), dt.date(2026, 3, 30)),
        (dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.UTC), dt.date(2026, 10, 25)),
        (dt.datetime(2026, 10, 25, 23, 30, tzinfo=dt.UTC), dt.date(2026, 10, 25)),
        # Any zone a clock gives is placed by its instant.
        (
            dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            dt.date(2026, 7, 1),
        ),
    ],
)
def test_the_day_is_the_uk_day_of_the_instant(moment: dt.datetime, day: dt.date) -> None:
    assert capacity_day(moment) == day


def test_a_moment_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        capacity_day(dt.datetime(2026, 6, 30, 23, 30))
