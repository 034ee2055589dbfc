"""`GraphSimulator`: the in-process control API and the lifecycle of the HTTP server."""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from .clock import SimClock, graph_datetime
from .delivery import Deliverer
from .server import SimHTTPServer
from .state import DirectoryState, GraphError, SentMessage


class GraphSimulator:
    """A local stand-in for Microsoft Graph on 127.0.0.1.

    >>> sim = GraphSimulator().start()
    >>> sim.add_tenant("contoso-tid", "Contoso", "contoso.example")
    >>> sim.base_url    # 'http://127.0.0.1:PORT/v1.0'; tokens are 'sim-token.contoso-tid'
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1",
                 retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
                 delivery_timeout: float = 3.0, outbox_dir: str | Path | None = None):
        self.clock = SimClock()
        self.deliverer = Deliverer(self.clock, retry_delays=retry_delays, timeout=delivery_timeout)
        self.state = DirectoryState(self.clock, self.deliverer)
        if outbox_dir is not None:
            self.state.outbox_dir = Path(outbox_dir)
        self._host = host
        self._port = port
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: deque[dict] = deque(maxlen=2000)
        self._requests_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "GraphSimulator":
        if self._server is not None:
            return self
        self._server = SimHTTPServer((self._host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="graph-sim-http", daemon=True)
        self._thread.start()
        self.deliverer.start()
        return self

    def stop(self) -> None:
        self.deliverer.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(2)
        self._server = None
        self._thread = None

    def __enter__(self) -> "GraphSimulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What GRAPH_BASE_URL / the request adapter's base_url should be."""
        return f"{self.root_url}/v1.0"

    @property
    def control_url(self) -> str:
        return f"{self.root_url}/_sim"

    @staticmethod
    def token_for(tenant_id: str) -> str:
        return f"sim-token.{tenant_id}"

    def reset(self) -> None:
        """Forgets every tenant, subscription, token and message; the clock runs real time again."""
        self.wait_deliveries(5)
        self.clock.reset()
        self.state.clear()
        self.deliverer.clear_log()
        with self._requests_lock:
            self._requests.clear()

    # ------------------------------------------------------------------ clock
    def now(self) -> datetime:
        return self.clock.now()

    def set_now(self, when: datetime, *, freeze: bool = True) -> None:
        self.clock.set_now(when, freeze=freeze)

    def advance(self, delta: timedelta) -> datetime:
        return self.clock.advance(delta)

    # ------------------------------------------------------------------ directory
    def add_tenant(self, tenant_id: str, name: str | None = None, domain: str | None = None, *,
                   roles: Iterable[str] = ()) -> dict:
        """A tenant whose admin consented to the application permissions `roles` (none by
        default: every Graph call then answers 403, as Graph does)."""
        return self.state.add_tenant(tenant_id, name, domain, roles)

    def grant(self, tenant_id: str, *roles: str) -> list[str]:
        """Admin consent of application permissions in the tenant (tokens carry them)."""
        return self.state.grant(tenant_id, roles)

    def revoke(self, tenant_id: str, *roles: str) -> list[str]:
        return self.state.revoke(tenant_id, roles)

    def grant_mailbox(self, tenant_id: str, mailbox: str, *roles: str) -> list[str]:
        """Exchange RBAC for Applications: mail permissions scoped to one mailbox."""
        return self.state.grant_mailbox(tenant_id, mailbox, roles)

    def tenants(self) -> list[dict]:
        with self.state.lock:
            return [self.state.tenant_json(t) for t in self.state.tenants]

    def add_sku(self, tenant_id: str, sku_part_number: str, prepaid: int | dict = 0,
                sku_id: str | None = None, *, applies_to: str = "User", capability_status: str = "Enabled") -> str:
        """A subscribed SKU: `applies_to` "Company" for company-wide ones (not assignable),
        `capability_status` Enabled / Warning / Suspended / Deleted / LockedOut."""
        return self.state.add_sku(tenant_id, sku_part_number, prepaid, sku_id, applies_to=applies_to,
                                  capability_status=capability_status)

    def set_sku_status(self, tenant_id: str, sku: str, capability_status: str) -> None:
        self.state.set_sku_status(tenant_id, sku, capability_status)

    def skus(self, tenant_id: str) -> list[dict]:
        return self.state.subscribed_skus(tenant_id, base=self.base_url)["value"]

    def sku_id(self, tenant_id: str, sku_part_number: str) -> str:
        with self.state.lock:
            return self.state._sku(self.state.tenant(tenant_id), sku_part_number).sku_id

    def set_prepaid_units(self, tenant_id: str, sku: str, enabled: int | None = None, *,
                          suspended: int | None = None, warning: int | None = None,
                          locked_out: int | None = None) -> dict:
        return self.state.set_prepaid_units(tenant_id, sku, enabled, suspended=suspended,
                                            warning=warning, locked_out=locked_out)

    def create_user(self, tenant_id: str, display_name: str, upn: str | None = None, *,
                    user_type: str = "Member", account_enabled: bool = True, skus: Iterable[str] = (),
                    created: datetime | None = None, mail: str | None = None,
                    user_id: str | None = None) -> str:
        return self.state.create_user(tenant_id, display_name, upn, user_type=user_type,
                                      account_enabled=account_enabled, skus=skus, created=created,
                                      mail=mail, user_id=user_id)

    def users(self, tenant_id: str) -> list[dict]:
        """Every user including deleted ones, with a `status` (active/soft_deleted/hard_deleted)."""
        return self.state.users_json(tenant_id)

    def assign_license(self, tenant_id: str, user_id: str, sku: str) -> bool:
        return self.state.assign_license(tenant_id, user_id, sku)

    def remove_license(self, tenant_id: str, user_id: str, sku: str) -> bool:
        return self.state.remove_license(tenant_id, user_id, sku)

    def disable_user(self, tenant_id: str, user_id: str) -> bool:
        return self.state.set_account_enabled(tenant_id, user_id, False)

    def enable_user(self, tenant_id: str, user_id: str) -> bool:
        return self.state.set_account_enabled(tenant_id, user_id, True)

    def update_user(self, tenant_id: str, user_id: str, *, display_name: str | None = None,
                    upn: str | None = None, mail: str | None = None, user_type: str | None = None) -> bool:
        return self.state.update_user(tenant_id, user_id, display_name=display_name, upn=upn,
                                      mail=mail, user_type=user_type)

    def soft_delete_user(self, tenant_id: str, user_id: str) -> None:
        self.state.soft_delete_user(tenant_id, user_id)

    def restore_user(self, tenant_id: str, user_id: str) -> None:
        self.state.restore_user(tenant_id, user_id)

    def hard_delete_user(self, tenant_id: str, user_id: str) -> None:
        self.state.hard_delete_user(tenant_id, user_id)

    # ------------------------------------------------------------------ delta
    def set_delta_page_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("page size must be positive")
        with self.state.lock:
            self.state.delta_page_size = int(size)

    def invalidate_delta_tokens(self, tenant_id: str, form: str = "syncStateNotFound") -> None:
        """Every delta token of the tenant answers `form`: syncStateNotFound (400, as users
        usually do), gone (410), resyncRequired (410 with a Location to start over) or
        Directory_ExpiredPageToken (400)."""
        self.state.invalidate_delta_tokens(tenant_id, form)

    def set_replication_delay(self, seconds: float) -> None:
        """Delta shows each later change only `seconds` after it happens (its notification
        leaves at once), as Graph's replication delay does."""
        if seconds < 0:
            raise ValueError("the replication delay cannot be negative")
        with self.state.lock:
            self.state.replication_delay = float(seconds)

    def replay_next_delta(self, tenant_id: str) -> None:
        """The next incremental delta round of this tenant returns every live user again."""
        self.state.replay_next_delta(tenant_id)

    # ------------------------------------------------------------------ subscriptions
    def subscriptions(self, tenant_id: str | None = None) -> list[dict]:
        return self.state.subscriptions_json(tenant_id)

    def _create_subscription(self, tenant_id: str, body: Any) -> dict:
        spec = self.state.check_new_subscription(tenant_id, body)
        urls = [spec["notification_url"]]
        if spec["lifecycle_url"] and spec["lifecycle_url"] != spec["notification_url"]:
            urls.append(spec["lifecycle_url"])
        for url in urls:  # outside the lock: the endpoint may well call the simulator back
            token = ("Validation: Testing client application reachability for subscription "
                     f"Request-Id: {uuid.uuid4()}")
            ok, why = self.deliverer.handshake(url, token)
            if not ok:
                raise GraphError(400, "ValidationError",
                                 "Subscription validation request failed. Notification endpoint must respond "
                                 f"with 200 OK to validation request. ({url}: {why})")
        return self.state.add_subscription(tenant_id, spec, base=self.base_url)

    def send_lifecycle(self, subscription_id: str, event: str, *, unusual: bool = False) -> dict:
        """Graph sends /users only reauthorizationRequired; `unusual=True` sends the others."""
        return self.state.send_lifecycle(subscription_id, event, unusual=unusual)

    # ------------------------------------------------------------------ notifications
    def drop_next_notifications(self, tenant_id: str, n: int = 1) -> None:
        self.state.drop_next_notifications(tenant_id, n)

    def set_notification_batching(self, max_items: int = 1, linger_seconds: float = 0.2) -> None:
        """Up to `max_items` consecutive notifications to the same URL go in one POST (the
        delivery thread waits up to `linger_seconds` for more). 1 = one item per POST."""
        self.deliverer.set_batching(max_items, linger_seconds)

    def wait_deliveries(self, timeout: float = 10.0) -> bool:
        return self.deliverer.wait(timeout)

    @property
    def delivery_log(self) -> list[dict]:
        return self.deliverer.log

    # ------------------------------------------------------------------ throttling
    def throttle(self, count: int, status: int = 429, retry_after: int = 1,
                 path_prefix: str | None = None) -> None:
        """The next `count` authenticated /v1.0 requests (whose path, relative to /v1.0, starts
        with `path_prefix` if given) answer `status` with Retry-After."""
        self.state.add_throttle(count, status, retry_after, path_prefix)

    # ------------------------------------------------------------------ mail
    @property
    def outbox(self) -> list[SentMessage]:
        with self.state.lock:
            return list(self.state.outbox)

    def outbox_json(self, include_bytes: bool = False, tenant_id: str | None = None) -> list[dict]:
        return self.state.outbox_json(include_bytes, tenant_id)

    def export_outbox(self, folder: str | Path) -> list[str]:
        return self.state.export_outbox(folder)

    def clear_outbox(self) -> None:
        with self.state.lock:
            self.state.outbox.clear()

    # ------------------------------------------------------------------ request log
    def _record_request(self, method: str, path: str, status: int, tenant: str | None,
                        started: float, error: str | None = None, operations: list[str] | None = None) -> None:
        entry = {"method": method, "path": path, "status": status, "tenantId": tenant,
                 "operations": list(operations or []),
                 "ms": round((time.monotonic() - started) * 1000, 1),
                 "at": graph_datetime(self.clock.now(), fraction=True)}
        if error:
            entry["error"] = error
        with self._requests_lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[dict]:
        """The last 2,000 HTTP requests the simulator answered (method, path, status...)."""
        with self._requests_lock:
            return list(self._requests)
