"""Shared pieces for reading etcd with aetcd: which errors mean "unreachable", and a watch read as a queue.

aetcd's watch is an async iterator that ends when the iteration waiting on it
is cancelled, so it cannot be waited on with a timeout directly. ``WatchQueue``
reads it in its own task into a queue: a reader can then wait with a timeout
(to flush, or to probe an idle connection) without losing the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import aetcd

#: Errors that mean etcd cannot be reached right now (retry with backoff).
UNAVAILABLE = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError, aetcd.InternalError, OSError)


class WatchQueue:
    """An aetcd watch read into a queue; errors (and the end of the stream) come out of ``get``."""

    def __init__(self, watch: Any) -> None:
        self.watch = watch
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        try:
            async for event in self.watch:
                await self.queue.put(event)
            await self.queue.put(aetcd.ConnectionFailedError("the watch stream ended"))
        except Exception as error:
            await self.queue.put(error)

    async def get(self, timeout: float) -> Any:
        """The next event; raises what the watch raised, or ``TimeoutError`` when none came in time."""
        if self.queue.empty():
            item = await asyncio.wait_for(self.queue.get(), timeout)
        else:  # no timer and task per event while changes stream in
            item = self.queue.get_nowait()
        if isinstance(item, Exception):
            raise item
        return item

    def empty(self) -> bool:
        return self.queue.empty()

    async def __aenter__(self) -> WatchQueue:
        self._reader = asyncio.create_task(self._pump())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        with contextlib.suppress(Exception):
            await self.watch.cancel()
