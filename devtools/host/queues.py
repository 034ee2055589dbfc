"""Queue triggers against Azure Storage queues (Azurite locally), with host.json's
`extensions.queues` semantics: message encoding, batch size and new-batch threshold, polling
that backs off to maxPollingInterval, retry after visibilityTimeout, and poison messages moved
to `<queue>-poison` once they have been dequeued maxDequeueCount times and failed."""
from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient

from .index import FunctionInfo
from .settings import parse_timespan, resolve

if TYPE_CHECKING:
    from .core import DevHost

log = logging.getLogger("devtools.host")
MIN_POLL = 0.05  # seconds between polls right after a message
# Seconds a received message stays invisible, renewed every RENEW_EVERY while it runs (the
# Functions host renews its 10-minute hold the same way). Short, so that after a crash of the
# development host its messages run again within a minute, not ten.
RECEIVE_VISIBILITY = 60
RENEW_EVERY = 20.0
DEV_MAX_POLL = 0.5  # the dev host's default maxPollingInterval (Azure's is one minute)


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's defaults."""
    message_encoding: str = "base64"
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_polling_interval: float = DEV_MAX_POLL

    @classmethod
    def from_host_json(cls, host_json: dict) -> "QueueOptions":
        raw = {k.lower(): v for k, v in host_json.get("extensions", {}).get("queues", {}).items()}
        options = cls()
        return cls(
            message_encoding=str(raw.get("messageencoding", options.message_encoding)).lower(),
            max_dequeue_count=int(raw.get("maxdequeuecount", options.max_dequeue_count)),
            visibility_timeout=parse_timespan(raw.get("visibilitytimeout", 0)),
            batch_size=max(1, min(32, int(raw.get("batchsize", options.batch_size)))),
            new_batch_threshold=int(raw["newbatchthreshold"]) if "newbatchthreshold" in raw else None,
            max_polling_interval=max(0.1, parse_timespan(raw.get("maxpollinginterval", DEV_MAX_POLL))))

    @property
    def threshold(self) -> int:
        """Fetch a new batch when this many or fewer messages are running (batchSize/2 default)."""
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold


def connection_string(setting_name: str | None) -> str:
    """The storage connection string named by a binding's `connection` (AzureWebJobsStorage if
    empty; `X` also finds `AzureWebJobsX`, as the host does)."""
    name = setting_name or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        if os.environ.get(candidate):
            return os.environ[candidate]
    raise KeyError(f"storage connection setting '{name}' is missing")


def ensure_queue(client: QueueClient) -> None:
    try:
        client.create_queue()
    except ResourceExistsError:
        pass


class QueueListener:
    """Polls one queue for one function and runs its messages on a thread pool."""

    def __init__(self, host: "DevHost", info: FunctionInfo, options: QueueOptions) -> None:
        self.host, self.info, self.options = host, info, options
        self.queue_name = resolve(info.queue_name)
        self.poison_name = f"{self.queue_name}-poison"
        self._conn = connection_string(info.connection)
        self._local = threading.local()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._slots = threading.Condition()
        self.in_flight = 0
        self._pool = ThreadPoolExecutor(options.batch_size + options.threshold,
                                        thread_name_prefix=f"queue-{info.name}")
        self._thread = threading.Thread(target=self._poll, name=f"poll-{info.name}", daemon=True)
        self._poison_ready = False
        self._renewals = _Renewals(self)

    def client(self, name: str | None = None) -> QueueClient:
        """A QueueClient for this thread (raw message text: no encode/decode policy)."""
        name = name or self.queue_name
        clients = self._local.__dict__.setdefault("clients", {})
        if name not in clients:
            clients[name] = QueueClient.from_connection_string(self._conn, name)
        return clients[name]

    def start(self) -> None:
        ensure_queue(self.client())
        self._thread.start()

    def wake(self) -> None:
        """Poll now (after an invocation, a new message may be waiting)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, then wait for the running messages to finish."""
        self._stop.set()
        self._wake.set()
        with self._slots:
            self._slots.notify_all()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._renewals.stop()

    def pending(self) -> int:
        """Messages in the queue, visible or not, plus messages running here."""
        return self.client().get_queue_properties().approximate_message_count + self.in_flight

    def _poll(self) -> None:
        interval, failures = MIN_POLL, 0
        while not self._stop.is_set():
            with self._slots:
                self._slots.wait_for(lambda: self._stop.is_set() or self.in_flight <= self.options.threshold)
            if self._stop.is_set():
                return
            polled = time.monotonic()
            try:
                wanted = self.options.batch_size
                messages = list(self.client().receive_messages(
                    messages_per_page=wanted, max_messages=wanted, visibility_timeout=RECEIVE_VISIBILITY))
                failures = 0
            except Exception as error:  # noqa: BLE001 - storage down: say so now and then, keep polling
                if failures % 20 == 0:
                    log.warning("Polling queue '%s' failed: %s", self.queue_name, error)
                failures += 1
                messages = []
            for message in messages:
                with self._slots:
                    self.in_flight += 1
                self._pool.submit(self._process, message)
            if messages:
                interval = MIN_POLL
                continue
            if self._wake.wait(interval):
                self._wake.clear()
                interval = MIN_POLL
                # woken by an invocation: poll soon, but no more than once per MIN_POLL
                self._stop.wait(max(0.0, MIN_POLL - (time.monotonic() - polled)))
            else:
                interval = min(interval * 2, self.options.max_polling_interval)

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding == "base64":
            return base64.b64decode(content, validate=True)
        return content.encode("utf-8")

    def _process(self, message) -> None:
        try:
            limit = self.options.max_dequeue_count
            if message.dequeue_count > limit:
                return self._to_poison(message, f"has been dequeued {message.dequeue_count} times")
            try:
                body = self._decode(message.content or "")
            except (binascii.Error, ValueError):
                return self._to_poison(message, "is not valid base64 (host.json messageEncoding)")
            renewing = self._keep_invisible(message)
            trigger = QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                   expiration_time=message.expires_on, insertion_time=message.inserted_on,
                                   time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
            if self.info.trigger_annotation is str:
                trigger = body.decode("utf-8")
            elif self.info.trigger_annotation is bytes:
                trigger = body
            try:
                invocation = self.host.invoke(self.info, trigger, f"New queue message detected on '{self.queue_name}'.")
            finally:
                renewing()
            if invocation.succeeded:
                self.client().delete_message(message)
            elif message.dequeue_count >= limit:
                self._to_poison(message, f"has reached MaxDequeueCount of {limit}")
            else:
                self.client().update_message(message, visibility_timeout=int(round(self.options.visibility_timeout)))
        except ResourceNotFoundError:
            log.warning("Message %s on '%s' vanished while it ran (deleted or its receipt expired)",
                        message.id, self.queue_name)
        except Exception:  # noqa: BLE001 - keep the listener alive, log like the host
            log.exception("Processing message %s on '%s' failed in the host", message.id, self.queue_name)
        finally:
            with self._slots:
                self.in_flight -= 1
                self._slots.notify_all()
            self._wake.set()

    def _keep_invisible(self, message) -> Callable[[], None]:
        """Renews the message's invisibility while it runs; call the returned function to stop
        (it returns once no renewal is under way, so the message's receipt is current)."""
        return self._renewals.hold(message)

    def _to_poison(self, message, why: str) -> None:
        """Copy the message as it is to `<queue>-poison`, then delete it from the queue."""
        log.warning("Message %s %s. Moving message to queue '%s'.", message.id, why, self.poison_name)
        poison = self.client(self.poison_name)
        if not self._poison_ready:
            ensure_queue(poison)
            self._poison_ready = True
        poison.send_message(message.content)
        self.client().delete_message(message)


class _Renewals:
    """Keeps the running messages of one listener hidden, from one thread for all of them. The
    Functions host renews from its own process, so a renewal costs the function's worker
    nothing; a thread started per message would cost this worker a thread start and a join on
    every message, hundreds a second under load."""

    def __init__(self, listener: QueueListener) -> None:
        self._listener = listener
        self._lock = threading.Lock()  # held while a renewal is under way
        self._changed = threading.Condition(threading.Lock())
        self._due: dict[int, tuple[float, object]] = {}  # id(message) -> (next renewal, message)
        self._thread: threading.Thread | None = None
        self._stopped = False

    def hold(self, message) -> Callable[[], None]:
        key = id(message)
        with self._changed:
            self._due[key] = (time.monotonic() + RENEW_EVERY, message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew_forever, daemon=True,
                                                name=f"renew-{self._listener.info.name}")
                self._thread.start()
            self._changed.notify()

        def release() -> None:
            with self._lock, self._changed:  # no renewal of it is under way once we hold both
                self._due.pop(key, None)
        return release

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _renew_forever(self) -> None:
        while True:
            with self._changed:
                while not self._stopped:
                    now = time.monotonic()
                    due = [(key, message) for key, (at, message) in self._due.items() if at <= now]
                    if due:
                        break
                    wake = min((at for at, _ in self._due.values()), default=now + 60)
                    self._changed.wait(max(0.01, wake - now))
                if self._stopped:
                    return
            for key, message in due:
                with self._lock:
                    with self._changed:
                        if key not in self._due:
                            continue  # finished meanwhile
                        self._due[key] = (time.monotonic() + RENEW_EVERY, message)
                    self._renew(key, message)

    def _renew(self, key: int, message) -> None:
        listener = self._listener
        try:
            updated = listener.client().update_message(message, visibility_timeout=RECEIVE_VISIBILITY)
            message.pop_receipt, message.next_visible_on = updated.pop_receipt, updated.next_visible_on
        except Exception as error:  # noqa: BLE001 - the message may run twice; the functions allow it
            log.warning("Could not keep message %s on '%s' hidden while it runs: %s", message.id,
                        listener.queue_name, error)
            with self._changed:
                self._due.pop(key, None)
