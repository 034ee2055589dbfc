"""Running Graph coroutines from synchronous functions.

Every function is synchronous (storage calls block; async functions sharing the host's one loop
would wait for each other). Graph work is a coroutine run on the worker thread's own event loop,
kept for the thread: msgraph-sdk's clients stay on the loop they first ran on, so they are
reused by the thread's next invocations instead of rebuilt every time.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
_thread = threading.local()


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to its end on this thread's own event loop."""
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)
