"""Wake long-polling claims when work is placed on a node (in-process; others poll)."""

from __future__ import annotations

import asyncio


class WorkNotifier:
    """One asyncio event per waiting node; set from any thread."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop."""
        self._loop = loop

    def event(self, node_id: str) -> asyncio.Event:
        """The event a claim for ``node_id`` waits on."""
        ev = self._events.get(node_id)
        if ev is None:
            ev = self._events[node_id] = asyncio.Event()
        return ev

    def wake(self, node_ids: set[str]) -> None:
        """Thread-safe: wake the claims of these nodes."""
        loop = self._loop
        if loop is None or not node_ids:
            return
        for node_id in node_ids:
            ev = self._events.get(node_id)
            if ev is not None:
                loop.call_soon_threadsafe(ev.set)
