"""The process's long-lived heap, set aside from the cyclic garbage collector once it is built.

After a process has served its first request it holds what its work imported and built (the
SDKs' modules and classes, tens or hundreds of thousands of objects that live as long as the
process). Every full collection walks all of them: 12 ms for the webhook's worker, far more with
msgraph's models, every few seconds under load and with every thread stopped meanwhile, which is
the slow tail of the webhook's answers. gc.freeze() moves them to a generation the collector
never walks; they are still freed by their reference counts if ever unused.
"""
from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_frozen: set[str] = set()


def freeze_once(after: str) -> None:
    """Sets the heap built so far aside, once per kind of first work (`after`) in this process:
    later work is collected as usual."""
    with _lock:
        if after in _frozen:
            return
        _frozen.add(after)
    gc.freeze()
