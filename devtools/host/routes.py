"""HTTP route templates as the Functions host (ASP.NET routing) reads them:
literal segments (case-insensitive), `{name}`, `{name?}`, `{name=default}`, `{*rest}` and
constraints such as `{id:int}`, `{code:alpha:length(3)}`, `{n:range(1,12)}`, `{x:regex(^a+$)}`."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

_PARAM = re.compile(r"\{([^{}]*(?:\([^()]*\)[^{}]*)*)\}")


def _args(arg: str) -> list[int]:
    return [int(a) for a in arg.split(",")]


def _number(value: str) -> bool:
    try:
        float(value)
        return value.strip().lower() not in {"nan", "inf", "-inf", "infinity", "-infinity"}
    except ValueError:
        return False


def _parses(parse):
    def check(value: str) -> bool:
        try:
            parse(value)
            return True
        except ValueError:
            return False
    return check


_SIMPLE = {
    "int": re.compile(r"-?\d+").fullmatch, "long": re.compile(r"-?\d+").fullmatch,
    "alpha": re.compile(r"[A-Za-z]+").fullmatch, "bool": lambda v: v.lower() in {"true", "false"},
    "guid": _parses(uuid.UUID), "datetime": _parses(datetime.fromisoformat),
    "decimal": _number, "double": _number, "float": _number,
}
_WITH_ARGS = {
    "minlength": lambda v, a: len(v) >= a[0], "maxlength": lambda v, a: len(v) <= a[0],
    "length": lambda v, a: len(v) == a[0] if len(a) == 1 else a[0] <= len(v) <= a[1],
    "min": lambda v, a: _SIMPLE["int"](v) and int(v) >= a[0],
    "max": lambda v, a: _SIMPLE["int"](v) and int(v) <= a[0],
    "range": lambda v, a: _SIMPLE["int"](v) and a[0] <= int(v) <= a[1],
}


def _constraint(text: str):
    """A predicate for one constraint (`int`, `length(3)`, `regex(...)`); ValueError if unknown."""
    name, _, arg = text.partition("(")
    name, arg = name.strip().lower(), arg[:-1] if arg.endswith(")") else arg
    if name in _SIMPLE and not arg:
        return _SIMPLE[name]
    if name == "regex":
        return re.compile(arg, re.IGNORECASE).search
    if name in _WITH_ARGS:
        check, numbers = _WITH_ARGS[name], _args(arg)
        return lambda value: bool(check(value, numbers))
    raise ValueError(f"unknown route constraint {text!r}")


def _split_constraints(text: str) -> list[str]:
    """Split `int:min(1):regex(a:b)` on the colons outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


@dataclass
class _Param:
    name: str
    group: str
    checks: list = field(default_factory=list)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False


def _param(body: str, group: str) -> _Param:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    name, *constraints = _split_constraints(body)
    default = None
    if "=" in name:
        name, default = name.split("=", 1)
    last = constraints[-1] if constraints else name
    optional = last.endswith("?")
    if optional:
        if constraints:
            constraints[-1] = last[:-1]
        else:
            name = name[:-1]
    return _Param(name.strip(), group, [_constraint(c) for c in constraints],
                  optional or default is not None or catch_all, default, catch_all)


class Route:
    """One compiled route template; match(path) gives the route parameters or None."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.params: list[_Param] = []
        pattern, ranks = "", []
        for segment in filter(None, self.template.split("/")):
            whole = _PARAM.fullmatch(segment)
            if whole:
                param = _param(whole.group(1), f"p{len(self.params)}")
                self.params.append(param)
                value = ".*" if param.catch_all else "[^/]+"
                body = f"/(?P<{param.group}>{value})"
                pattern += f"(?:{body})?" if param.optional else body
                ranks.append(4 if param.catch_all else 3 if param.optional else 1 if param.checks else 2)
                continue
            pieces, last = [], 0
            for found in _PARAM.finditer(segment):
                param = _param(found.group(1), f"p{len(self.params)}")
                self.params.append(param)
                pieces += [re.escape(segment[last:found.start()]), f"(?P<{param.group}>[^/]+)"]
                last = found.end()
            pieces.append(re.escape(segment[last:]))
            pattern += "/" + "".join(pieces)
            ranks.append(0 if last == 0 else 1)
        self.rank = tuple(ranks) + (5,)  # literal segments first, then longer templates first
        self._regex = re.compile(f"{pattern}/?", re.IGNORECASE)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a path below the route prefix ("/echo/1"), or None if it doesn't fit."""
        found = self._regex.fullmatch(path)
        if not found:
            return None
        values = {}
        for param in self.params:
            raw = found.group(param.group)
            if raw is None:
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values
