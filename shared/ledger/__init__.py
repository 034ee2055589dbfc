"""The lifecycle ledger: the append-only record of each client's users, on Table Storage."""
from shared.ledger.ports import LedgerPort, MonthSlice
from shared.ledger.table_ledger import TableLedger

__all__ = ["LedgerPort", "MonthSlice", "TableLedger"]
