"""App settings for the development host: local.settings.json, host.json and `%NAME%` binding
expressions, as the Functions host reads them."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

_EXPRESSION = re.compile(r"%([^%]+)%")


def read_local_settings(path: Path | str) -> dict:
    """The parsed local.settings.json ({} when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8-sig"))


def _as_setting(value) -> str:
    """Settings are strings; JSON booleans become "true"/"false" as the host writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Environment:
    """Applies settings to os.environ and puts back what it changed on restore()."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def apply(self, values: Mapping, *, override: bool) -> None:
        """Set each value; with override=False a variable already in the environment wins."""
        for name, value in values.items():
            if not override and name in os.environ:
                continue
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = _as_setting(value)

    def restore(self) -> None:
        for name, old in self._saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        self._saved.clear()


def resolve(text: str | None) -> str | None:
    """Replace each `%NAME%` with the app setting NAME; KeyError names a missing setting."""
    if text is None:
        return None

    def setting(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise KeyError(f"'%{name}%' does not resolve to a value (no app setting {name})")
        return os.environ[name]

    return _EXPRESSION.sub(setting, text)


def read_host_json(root: Path) -> dict:
    """The parsed host.json of the app root ({} when absent)."""
    path = Path(root) / "host.json"
    return json.loads(path.read_text(encoding="utf-8-sig")) if path.exists() else {}


TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")


def parse_timespan(text) -> float:
    """Seconds in a .NET TimeSpan ("00:00:02", "1.02:00:00", "00:00:00.500") or a number."""
    if isinstance(text, (int, float)):
        return float(text)
    match = TIMESPAN.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"not a TimeSpan: {text!r}")
    days, hours, minutes, seconds = match.groups()
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes),
                     seconds=float(seconds)).total_seconds()


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}
