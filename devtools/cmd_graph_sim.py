"""./dev graph-sim: run the Graph simulator on 127.0.0.1 until Ctrl-C.

Drive it from another process through its control API (`/_sim/...`, JSON, no auth), e.g.
  curl -s -XPOST localhost:PORT/_sim/tenants -d '{"tenant_id": "contoso", "name": "Contoso",
       "roles": ["User.Read.All", "LicenseAssignment.Read.All"]}'
A tenant holds only the application permissions granted to it (--tenant grants what
docs/deploy.md grants a client tenant, the MSP tenant what it grants the MSP); anything else
answers 403, as Graph does.
Graph clients use base URL http://127.0.0.1:PORT/v1.0 and token `sim-token.{tenant_id}`.
By default it listens on the port of GRAPH_BASE_URL in local.settings.json and holds the MSP's
tenant (MSP_TENANT_ID) with the invoicing mailbox (INVOICE_MAILBOX), so that `./dev close`
can email invoices from it."""
from __future__ import annotations

import argparse
import signal
import threading
from urllib.parse import urlsplit

from devtools.paths import from_caller


def _local_port(base_url: str) -> int:
    """The port of a GRAPH_BASE_URL on this machine, or 0 (a free one)."""
    parts = urlsplit(base_url)
    return (parts.port or 0) if parts.hostname in ("127.0.0.1", "localhost") else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev graph-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=None,
                        help="TCP port on 127.0.0.1 (default: GRAPH_BASE_URL's in the settings; 0: a free one, printed)")
    parser.add_argument("--tenant", action="append", default=[], metavar="ID[,NAME[,DOMAIN]]",
                        help="create a tenant at start (repeatable)")
    parser.add_argument("--outbox-dir", help="write every sent message into this folder as it is sent")
    parser.add_argument("--delta-page-size", type=int, default=None, help="users per delta page (default 100)")
    parser.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    parser.add_argument("--no-msp", action="store_true",
                        help="do not create the MSP tenant and invoicing mailbox of the settings")
    args = parser.parse_args(argv)

    from devtools.grants import consent_client, consent_msp
    from devtools.graph_sim import GraphSimulator
    from devtools.local_app import local_settings

    settings = local_settings(args.settings)
    port = args.port if args.port is not None else _local_port(settings.get("GRAPH_BASE_URL") or "")
    sim = GraphSimulator(port=port, outbox_dir=args.outbox_dir)
    made = ""
    if not args.no_msp and settings.get("MSP_TENANT_ID"):
        msp, mailbox = settings["MSP_TENANT_ID"], settings.get("INVOICE_MAILBOX")
        sim.add_tenant(msp, settings.get("BRAND_NAME") or "MSP", mailbox.split("@")[-1] if mailbox else None)
        if mailbox:
            sim.create_user(msp, "Invoicing", mailbox)
            consent_msp(sim, msp, mailbox)  # as docs/deploy.md grants the MSP
        else:
            consent_client(sim, msp)
        made = f"MSP tenant {msp}{f' with the invoicing mailbox {mailbox}' if mailbox else ''} (from the settings)."
    for spec in args.tenant:
        parts = [p.strip() or None for p in spec.split(",")]
        sim.add_tenant(parts[0], *(parts[1:3]))
        consent_client(sim, parts[0])
    if args.delta_page_size:
        sim.set_delta_page_size(args.delta_page_size)
    sim.start()
    print(f"Graph simulator: {sim.base_url}   (control API: {sim.control_url}, tokens: sim-token.<tenant_id>)",
          flush=True)
    if made:
        print(made, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        print("Graph simulator stopped.", flush=True)
    return 0
