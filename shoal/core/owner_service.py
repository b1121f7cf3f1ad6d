"""What an owner serves to other processes about the objects it owns: their values
(GET_OBJECT) and who borrows them (ADD_BORROWER, REMOVE_BORROWER).

Handed the few parts it reads, not the core worker: the value table (values and
their waiters), the reference table (ownership and borrowers), recovery (a value
that lineage freed is rebuilt when a borrower asks for it) and the performer of
the reference table's actions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from shoal.core.value_table import set_result_once
from shoal.core.value_wire import VALUE_UNKNOWN, value_to_wire


class OwnerService:
    def __init__(self, values: Any, references: Any, recovery: Any,
                 perform_actions: Callable[[], None]) -> None:
        self.values = values
        self.references = references
        self.recovery = recovery
        self.perform_actions = perform_actions

    def handle_get_object(self, conn, body):
        """Answer when the object is ready, with its value or location (loop thread)."""
        oid = body
        value = self.values.get(oid)
        if value is not None:
            return value_to_wire(value)
        if not self.references.is_owned(oid):
            return [VALUE_UNKNOWN]
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def ready(_oid, v):  # any thread
            loop.call_soon_threadsafe(set_result_once, fut, value_to_wire(v))

        value = self.values.add_waiter(oid, ready)
        if value is not None:
            self.values.remove_waiter(oid, ready)
            return value_to_wire(value)
        self.recovery.rebuild_if_freed([oid])  # a borrower reads a value lineage freed
        return fut

    def handle_add_borrower(self, conn, body):
        oid, borrower = body
        return self.references.add_borrower(oid, borrower)

    def handle_remove_borrower(self, conn, body):
        oid, borrower, count = body
        self.references.remove_borrower(oid, borrower, count)
        self.perform_actions()
        return None
