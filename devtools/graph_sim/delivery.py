"""Outbound HTTP of the simulator: the subscription validation handshake and the background
delivery of change and lifecycle notifications (in order, with retries, logged)."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from .clock import SimClock, graph_datetime

HANDSHAKE_TIMEOUT = 10.0  # the validation request: answer within 10 s (subscription-post-subscriptions)
# change-notifications-delivery-webhooks: Graph waits about 3 s for an answer to a notification
# (slower than 2.9 s counts as slow) and retries any answer that is not 2xx, with back-off,
# for up to 4 hours.
DELIVERY_TIMEOUT = 3.0
SLOW_SECONDS = 2.9


@dataclass
class _Pending:
    url: str
    item: dict
    kind: str  # "change" | "lifecycle"
    queued_at: float = field(default_factory=time.monotonic)


def _post(url: str, data: bytes, content_type: str, timeout: float) -> tuple[int | None, bytes, dict, str | None]:
    """POSTs without following redirects; returns (status or None, body, headers, error text)."""
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": content_type, "User-Agent": "graph-simulator"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers.items()), None
    except urllib.error.HTTPError as err:
        body = err.read() if err.fp else b""
        return err.code, body, dict(err.headers.items()) if err.headers else {}, None
    except (OSError, ValueError) as err:  # connection refused, timeout, bad URL
        return None, b"", {}, f"{type(err).__name__}: {err}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # Graph does not follow redirects here either
        return None


class Deliverer:
    def __init__(self, clock: SimClock, *, retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
                 timeout: float = DELIVERY_TIMEOUT):
        self.clock = clock
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.batch_max_items = 1
        self.batch_linger = 0.2
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._pending = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._log: list[dict] = []
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="graph-sim-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    # ------------------------------------------------------------------ Notifier protocol
    def publish(self, url: str, item: dict, kind: str) -> None:
        with self._cv:
            self._queue.append(_Pending(url, item, kind))
            self._pending += 1
            self._cv.notify_all()

    def dropped(self, url: str, item: dict, kind: str) -> None:
        self._record(kind=kind, url=url, items=[item], attempt=0, status=None,
                     error="dropped on purpose (drop_next_notifications)", latency_ms=0.0, outcome="dropped")

    # ------------------------------------------------------------------ control
    def set_batching(self, max_items: int = 1, linger_seconds: float = 0.2) -> None:
        with self._cv:
            self.batch_max_items = max(1, int(max_items))
            self.batch_linger = max(0.0, float(linger_seconds))

    def wait(self, timeout: float = 10.0) -> bool:
        """True when every queued notification has been delivered, given up on, or dropped."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    @property
    def log(self) -> list[dict]:
        with self._log_lock:
            return [dict(entry) for entry in self._log]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, **entry) -> None:
        entry["at"] = graph_datetime(self.clock.now(), fraction=True)
        items = entry.pop("items", [])
        entry["itemCount"] = len(items)
        entry["subscriptionIds"] = sorted({i.get("subscriptionId") for i in items if i.get("subscriptionId")})
        entry["tenantIds"] = sorted({i.get("tenantId") for i in items if i.get("tenantId")})
        entry["resources"] = [i.get("resource") or i.get("lifecycleEvent") for i in items]
        with self._log_lock:
            self._log.append(entry)

    # ------------------------------------------------------------------ handshake
    def handshake(self, url: str, token: str, timeout: float = HANDSHAKE_TIMEOUT) -> tuple[bool, str]:
        """Graph's validation request: POST url?validationToken=<url-encoded token>, empty
        text/plain body; the endpoint must answer 200, text/plain, the decoded token."""
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        target = f"{url}{separator}validationToken={urllib.parse.quote(token, safe='')}"
        started = time.monotonic()
        status, body, headers, error = _post(target, b"", "text/plain; charset=utf-8", timeout)
        latency = (time.monotonic() - started) * 1000
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if error is not None:
            verdict = f"the validation request failed: {error}"
        elif status != 200:
            verdict = f"the endpoint answered {status}, not 200 OK"
        elif not content_type.lower().startswith("text/plain"):
            verdict = f"the endpoint answered Content-Type {content_type or '(none)'!r}, not text/plain"
        elif body.decode("utf-8", "replace") != token:
            verdict = "the endpoint's answer is not the validation token"
        else:
            verdict = ""
        self._record(kind="validation", url=url, items=[], attempt=1, status=status, error=verdict or error,
                     latency_ms=round(latency, 1), outcome="ok" if not verdict else "failed")
        return (not verdict), verdict

    # ------------------------------------------------------------------ the delivery thread
    def _next_batch(self) -> list[_Pending] | None:
        with self._cv:
            while not self._queue and not self._stopping:
                self._cv.wait()
            if self._stopping:
                return None
            first = self._queue.popleft()
            batch = [first]
            if first.kind == "change" and self.batch_max_items > 1:
                deadline = time.monotonic() + self.batch_linger
                while len(batch) < self.batch_max_items and not self._stopping:
                    if self._queue:
                        nxt = self._queue[0]
                        if nxt.url != first.url or nxt.kind != first.kind:
                            break  # keep the order: flush before another endpoint's items
                        batch.append(self._queue.popleft())
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cv:
                    self._pending -= len(batch)
                    self._cv.notify_all()

    def _deliver(self, batch: list[_Pending]) -> None:
        url = batch[0].url
        items = [p.item for p in batch]
        payload = json.dumps({"value": items}).encode("utf-8")
        attempts = 1 + len(self.retry_delays)
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            status, _, _, error = _post(url, payload, "application/json; charset=utf-8", self.timeout)
            latency = time.monotonic() - started
            retry = status is None or not 200 <= status < 300  # any non-2xx (or no answer) is retried
            outcome = "ok" if status is not None and 200 <= status < 300 else (
                "retrying" if retry and attempt < attempts else "failed")
            self._record(kind=batch[0].kind, url=url, items=items, attempt=attempt, status=status, error=error,
                         latency_ms=round(latency * 1000, 1), slow=latency > SLOW_SECONDS, outcome=outcome)
            if outcome != "retrying":
                return
            with self._cv:
                if self._cv.wait_for(lambda: self._stopping, self.retry_delays[attempt - 1]):
                    return
