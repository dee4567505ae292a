"""Writers' hooks, re-exported from `core.events` (where the integration API reaches them too)."""

from core.events import after_commit, in_transaction, inventory_moved, sales_landed

__all__ = ["after_commit", "in_transaction", "inventory_moved", "sales_landed"]
