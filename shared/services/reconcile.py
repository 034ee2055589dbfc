"""License reconciliation of the MSP's clients: Graph's subscribedSkus against the ledger's
current states, compared by the pure shared/billing/reconciliation.py; the findings CSV stored
through the archive beside a run's PDFs."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from shared.billing.reconciliation import Reconciliation, findings_csv, reconcile
from shared.errors import TenantNotOnboarded
from shared.invoicing.products import product_name
from shared.ports import Archive, Clock, GraphPort, LedgerPort, TenantRepository
from shared.storage.archive import findings_path

log = logging.getLogger("prorata.reconcile")


class Reconciler:
    def __init__(self, *, tenants: TenantRepository, ledger: LedgerPort, graph: Callable[[], GraphPort],
                 archive: Callable[[], Archive], clock: Clock):
        self.tenants, self.ledger, self._graph, self._archive, self.now = tenants, ledger, graph, archive, clock

    async def reconcile_tenant(self, tenant_id: str) -> Reconciliation:
        """Reads Graph's subscribedSkus and the ledger's current states for the tenant, now, and
        compares them. Logs a WARNING per drifting SKU. Raises TenantNotOnboarded, or GraphError
        when Graph refuses."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotOnboarded(tenant_id)
        skus = await self._graph().subscribed_skus(tenant_id)
        states = self.ledger.current_states(tenant_id)
        result = reconcile(tenant.plan, skus, states, at=self.now(), tenant_name=tenant.name,
                           product_name=product_name)
        for count in result.skus:
            if count.drift:
                log.warning("Tenant %s (%s): SKU %s: Graph counts %d assigned, the ledger %d. The sync has missed "
                            "a change (or one is still on its way); the next delta sync should repair it.",
                            tenant.name, tenant_id, count.sku, count.consumed_units, count.ledger_units)
        log.info("Reconciliation: %s", result.summary_line())
        return result

    async def reconcile_all(self) -> list[Reconciliation]:
        """Reconciles every active tenant, by name. A tenant that cannot be reconciled (Graph
        refuses, consent withdrawn...) gets a Reconciliation with `error` set; the others go on."""
        results = []
        for tenant in sorted(self.tenants.all(active_only=True), key=lambda t: (t.name.lower(), t.tenant_id)):
            try:
                results.append(await self.reconcile_tenant(tenant.tenant_id))
            except Exception as error:  # one tenant's failure must not stop the others' report
                from shared.graph.gateway import GraphError

                if isinstance(error, (GraphError, OSError)):  # Graph refused or could not be reached: no traceback
                    log.error("Tenant %s (%s): could not be reconciled: %s", tenant.name, tenant.tenant_id, error)
                else:
                    log.exception("Tenant %s (%s): could not be reconciled: %s", tenant.name, tenant.tenant_id, error)
                results.append(Reconciliation(tenant.tenant_id, tenant.name, tenant.plan.currency, self.now(),
                                              error=str(error) or type(error).__name__))
        return results

    def store_findings_csv(self, period: str, run_id: str, reconciliations: Iterable[Reconciliation]) -> str:
        """Stores the findings CSV beside the invoices' PDFs (`{period}/reconciliation-{run_id}.csv`,
        overwritten if the run writes it again). Returns the blob name."""
        name = findings_path(period, run_id)
        reconciliations = list(reconciliations)
        archive = self._archive()
        archive.put(name, findings_csv(reconciliations), "text/csv; charset=utf-8")
        log.info("Reconciliation of %d tenant(s) for %s stored as %s/%s.", len(reconciliations), period,
                 archive.container_name, name)
        return name
