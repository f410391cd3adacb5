"""Simulated estates: synthetic supplier extracts of any size, for rehearsals, tests and benchmarks.

Real extracts hold customers' personal data and cannot leave the supplier, so everything that
needs an estate (a cohort rehearsal, a test fixture, a million-row benchmark) makes its own,
deterministically from a seed, with the defects real extracts carry planted and counted.
"""
