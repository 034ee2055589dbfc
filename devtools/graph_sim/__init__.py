"""The Graph simulator: a local stand-in for the parts of Microsoft Graph that Prorata uses
(users, delta, subscribedSkus, change notifications, sendMail with upload sessions), served on
127.0.0.1 and driven in-process (`GraphSimulator`) or over HTTP (`/_sim/...`).
See docs in devtools/graph_sim/simulator.py and docs/graph-facts.md."""
from .clock import SimClock, graph_datetime, parse_graph_datetime
from .state import ControlError, ControlNotFound, GraphError, SentAttachment, SentMessage
from .simulator import GraphSimulator

__all__ = [
    "GraphSimulator", "SimClock", "GraphError", "ControlError", "ControlNotFound",
    "SentMessage", "SentAttachment", "graph_datetime", "parse_graph_datetime",
]
