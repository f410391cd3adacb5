"""Cohort rules: eligible device model combinations, modes, capacity, firmware order."""

from migrate.cohort.loader import available_cohorts, load_cohort
from migrate.cohort.spec import CohortRules, Combination

__all__ = ["CohortRules", "Combination", "available_cohorts", "load_cohort"]
