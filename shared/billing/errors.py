"""The one error type for bad input: it names the source, the line where there is one, and the field."""
from __future__ import annotations


class InputError(ValueError):
    def __init__(self, problem: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.problem, self.source, self.line, self.field = problem, source, line, field
        super().__init__(self.describe())

    def describe(self) -> str:
        where = [part for part in (self.source, f"line {self.line}" if self.line else None) if part]
        prefix = " ".join(where)
        subject = f"field '{self.field}': " if self.field else ""
        return f"{prefix + ': ' if prefix else ''}{subject}{self.problem}"

    def located(self, source: str, line: int | None = None) -> "InputError":
        """The same problem, now saying which file (and line) it came from."""
        return InputError(self.problem, source=source, line=line if line is not None else self.line,
                          field=self.field)
