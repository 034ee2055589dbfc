"""./dev graph-sim: run the Graph simulator on 127.0.0.1 until Ctrl-C.

Drive it from another process through its control API (`/_sim/...`, JSON, no auth), e.g.
  curl -s -XPOST localhost:PORT/_sim/tenants -d '{"tenant_id": "contoso", "name": "Contoso",
       "roles": ["User.Read.All", "LicenseAssignment.Read.All"]}'
A tenant holds only the application permissions granted to it (--tenant grants what
docs/deploy.md grants a client tenant); anything else answers 403, as Graph does.
Graph clients use base URL http://127.0.0.1:PORT/v1.0 and token `sim-token.{tenant_id}`."""
from __future__ import annotations

import argparse
import signal
import threading


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev graph-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one, printed)")
    parser.add_argument("--tenant", action="append", default=[], metavar="ID[,NAME[,DOMAIN]]",
                        help="create a tenant at start (repeatable)")
    parser.add_argument("--outbox-dir", help="write every sent message into this folder as it is sent")
    parser.add_argument("--delta-page-size", type=int, default=None, help="users per delta page (default 100)")
    args = parser.parse_args(argv)

    from devtools.grants import consent_client
    from devtools.graph_sim import GraphSimulator

    sim = GraphSimulator(port=args.port, outbox_dir=args.outbox_dir)
    for spec in args.tenant:
        parts = [p.strip() or None for p in spec.split(",")]
        sim.add_tenant(parts[0], *(parts[1:3]))
        consent_client(sim, parts[0])
    if args.delta_page_size:
        sim.set_delta_page_size(args.delta_page_size)
    sim.start()
    print(f"Graph simulator: {sim.base_url}   (control API: {sim.control_url}, tokens: sim-token.<tenant_id>)",
          flush=True)
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
