"""A development host for the Functions app (`./dev host`): HTTP, timer and queue triggers of a
Python v2 `func.FunctionApp`, served locally as `func start` would. Development only."""
from .core import DevHost, Invocation
from .index import FunctionInfo, index_app, load_app
from .settings import read_local_settings

__all__ = ["DevHost", "Invocation", "FunctionInfo", "index_app", "load_app", "read_local_settings"]
