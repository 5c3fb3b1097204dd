"""The TUI's one door: the service's control socket (`companion.control.AsyncClient`).

When no service runs, the screens that show history (the jobs screen) read it from the catalog
through `offline(op, fields)`, which `seedward tui` hands in (`companion/catalog/views.py`'s
read-only answers): the TUI itself never opens the catalog.
"""

import asyncio

from companion.control import AsyncClient, ControlError, UnknownOp
from companion.errors import Error, ServiceNotRunning

__all__ = ["ControlError", "Door", "Error", "ServiceNotRunning", "UnknownOp"]


class Door:
    def __init__(self, socket_path, offline=None, timeout: float = 30.0):
        self.client = AsyncClient(socket_path, timeout=timeout)
        self.offline = offline

    async def request(self, op: str, **fields) -> dict:
        """The service's answer; raises ServiceNotRunning or ControlError (and its kinds)."""
        return await self.client.request(op, **fields)

    async def read(self, op: str, **fields) -> dict:
        """A read-only op: the service's answer or, with the service down, the catalog's."""
        try:
            return await self.client.request(op, **fields)
        except ServiceNotRunning:
            if self.offline is None:
                raise
            return await asyncio.to_thread(self.offline, op, fields)

    async def subscribe(self):
        return await self.client.subscribe()
