"""Messages onto Storage queues (base64 JSON, as host.json tells the Functions host to read)."""
from __future__ import annotations

import json

from shared.messages import JsonObject
from shared.storage.account import Storage


class StorageQueues:
    def __init__(self, storage: Storage):
        self._storage = storage

    def send(self, queue: str, message: JsonObject, *, delay_seconds: int = 0) -> None:
        self._storage.queue(queue).send_message(json.dumps(message), visibility_timeout=delay_seconds or None)

    def sender(self, queue: str) -> "QueueSender":
        """A function sending ready-made JSON text to one queue (the webhook's group commit)."""
        return QueueSender(self._storage, queue)


class QueueSender:
    def __init__(self, storage: Storage, queue: str):
        self._client = storage.queue(queue)

    def __call__(self, text: str) -> None:
        self._client.send_message(text)
