"""Indexing a `func.FunctionApp`: one FunctionInfo per function, from a single get_functions()
call per app object (the library allows only one), and calling the user function with the
arguments its signature names."""
from __future__ import annotations

import importlib
import inspect
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import azure.functions as func
from azure.functions import _abc

HTTP, TIMER, QUEUE = "httpTrigger", "timerTrigger", "queueTrigger"

_indexed: dict[int, tuple[Any, list]] = {}  # id(app) -> (app kept alive, its functions)
_index_lock = threading.Lock()


def _text(value) -> str | None:
    """An enum's value or a plain string (the decorators store either)."""
    return None if value is None else str(getattr(value, "value", value))


@dataclass
class FunctionInfo:
    """What the host needs to know about one function, straight from the library's index."""
    name: str
    trigger_type: str
    trigger_name: str
    user_function: Callable
    function_json: str
    route: str | None = None
    methods: tuple[str, ...] | None = None  # None: every method
    auth_level: str | None = None  # "anonymous" | "function" | "admin"
    schedule: str | None = None
    run_on_startup: bool = False
    queue_name: str | None = None
    connection: str | None = None
    is_async: bool = False
    trigger_annotation: Any = None  # str/bytes ask for the plain body instead of the trigger object
    _binder: Callable = field(default=None, repr=False)

    def arguments(self, trigger_value, context) -> dict[str, Any]:
        """Keyword arguments for the user function."""
        return self._binder(trigger_value, context)


class Context(func.Context):
    """The invocation context handed to parameters named or annotated `context`."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id, self._name, self._dir = invocation_id, function_name, function_directory
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._name)
    function_directory = property(lambda self: self._dir)
    thread_local_storage = property(lambda self: self._local)
    trace_context = property(lambda self: _TraceContext())
    retry_context = property(lambda self: _RetryContext())


class _TraceContext(_abc.TraceContext):
    trace_state = property(lambda self: "")
    trace_parent = property(lambda self: "")
    attributes = property(lambda self: {})


class _RetryContext(_abc.RetryContext):
    retry_count = property(lambda self: 0)
    max_retry_count = property(lambda self: 0)
    exception = property(lambda self: None)


def _signature(user_function: Callable) -> inspect.Signature:
    """The signature with string annotations (`from __future__ import annotations`) evaluated."""
    try:
        return inspect.signature(user_function, eval_str=True)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: keep the strings
        return inspect.signature(user_function)


def _binder(user_function: Callable, trigger_name: str, unsupported: list[str]) -> Callable:
    """Map (trigger value, context) onto the function's parameters; other bindings get None."""
    plan = []
    for name, param in _signature(user_function).parameters.items():
        annotation = param.annotation
        if name == trigger_name:
            plan.append((name, "trigger"))
        elif name == "context" or (inspect.isclass(annotation) and issubclass(annotation, func.Context)):
            plan.append((name, "context"))
        elif param.default is inspect.Parameter.empty and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            unsupported.append(name)
            plan.append((name, "none"))

    def bind(trigger_value, context) -> dict[str, Any]:
        pick = {"trigger": trigger_value, "context": context, "none": None}
        return {name: pick[kind] for name, kind in plan}
    return bind


def _annotation(user_function: Callable, name: str):
    param = _signature(user_function).parameters.get(name)
    return None if param is None or param.annotation is inspect.Parameter.empty else param.annotation


def describe(function, warnings: list[str]) -> FunctionInfo | None:
    """A FunctionInfo for one indexed `Function`, or None (with a warning) if it has no trigger."""
    trigger = function.get_trigger()
    name = function.get_function_name()
    if trigger is None:
        warnings.append(f"function '{name}' has no trigger; the host skips it")
        return None
    user_function = function.get_user_function()
    unsupported: list[str] = []
    methods = getattr(trigger, "methods", None)
    info = FunctionInfo(
        name=name, trigger_type=trigger.get_binding_name(), trigger_name=trigger.name,
        user_function=user_function, function_json=function.get_function_json(),
        route=getattr(trigger, "route", None),
        methods=tuple(_text(m).upper() for m in methods) if methods else None,
        auth_level=(_text(getattr(trigger, "auth_level", None)) or "").lower() or None,
        schedule=getattr(trigger, "schedule", None),
        run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
        queue_name=getattr(trigger, "queue_name", None),
        connection=getattr(trigger, "connection", None),
        is_async=inspect.iscoroutinefunction(user_function),
        trigger_annotation=_annotation(user_function, trigger.name),
        _binder=_binder(user_function, trigger.name, unsupported))
    if info.trigger_type == HTTP and info.route is None:
        info.route = name
    for parameter in unsupported:
        warnings.append(f"function '{name}': binding '{parameter}' is not supported by the "
                        "development host; it receives None")
    return info


def index_app(app: func.FunctionApp, warnings: list[str] | None = None) -> list[FunctionInfo]:
    """The app's functions. get_functions() runs once per app object; later calls reuse it."""
    warnings = [] if warnings is None else warnings
    with _index_lock:
        if id(app) not in _indexed or _indexed[id(app)][0] is not app:
            functions = app.get_functions()
            infos = [info for f in functions if (info := describe(f, warnings))]
            _indexed[id(app)] = (app, infos)
        return list(_indexed[id(app)][1])


def load_app(root: Path, module_name: str, attribute: str = "app"):
    """Import `module_name` with `root` first on sys.path; return (module, FunctionApp)."""
    root = str(Path(root).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    app = getattr(module, attribute, None)
    if not isinstance(app, func.FunctionApp):
        found = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
        if len(found) != 1:
            raise LookupError(f"{module_name}.{attribute} is not a func.FunctionApp")
        app = found[0]
    return module, app
