"""Reconciliation after a cohort: the supplier's extract, the store and the DCC's inventory
compared installation by installation, every installation in one category, reported as
JSON, HTML and CSV; stuck and retryable requests requeued on request."""

from migrate.reconcile.inventory import export_inventory
from migrate.reconcile.run import ReconciliationResult, reconcile

__all__ = ["ReconciliationResult", "export_inventory", "reconcile"]
