"""The difference between a tfvars template and the file generated from it, for the thread."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict

from core.tfvars.literals import compact_literal
from core.tfvars.reading import read_tfvars
from core.values import Value


class ValueChange(Value):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    variable: str
    kind: Literal["changed", "added", "removed"]
    before: Any = None
    after: Any = None

    def describe(self, limit: int = 60) -> str:
        if self.kind == "added":
            return f"{self.variable} = {compact_literal(self.after, limit)} (added)"
        if self.kind == "removed":
            return f"{self.variable} removed (was {compact_literal(self.before, limit)})"
        return (
            f"{self.variable}: {compact_literal(self.before, limit)} → {compact_literal(self.after, limit)}"
        )


def diff_values(template_text: str, generated_text: str) -> list[ValueChange]:
    """Top-level values that differ between a template and the generated file, in file order."""
    before, after = read_tfvars(template_text), read_tfvars(generated_text)
    changes: list[ValueChange] = []
    for name, value in after.items():
        if name not in before:
            changes.append(ValueChange(variable=name, kind="added", after=value))
        elif before[name] != value:
            changes.append(ValueChange(variable=name, kind="changed", before=before[name], after=value))
    changes.extend(
        ValueChange(variable=name, kind="removed", before=value)
        for name, value in before.items()
        if name not in after
    )
    return changes
