"""Progress of a `terraform apply`, read from its output one line at a time (pure: no I/O).

`total` comes from the plan (add + change + destroy; a replacement counts once in add and once in
destroy, and Terraform prints both a "Destruction complete" and a "Creation complete" line for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_STARTED = re.compile(r"^(?P<address>\S.*?): (?P<verb>Creating|Modifying|Destroying|Reading)\.\.\.")
_DONE = re.compile(
    r"^(?P<address>\S.*?): (?P<kind>Creation|Modifications|Destruction|Read) complete after (?P<after>\S+)"
)
_STILL = re.compile(
    r"^(?P<address>\S.*?): Still (?P<verb>creating|modifying|destroying|reading)\.\.\. \[(?P<rest>.*)\]"
)
_SUMMARY = re.compile(
    r"^Apply complete! Resources: (?:(?P<imported>\d+) imported, )?(?P<added>\d+) added,"
    r" (?P<changed>\d+) changed, (?P<destroyed>\d+) destroyed\."
)
_ERROR = re.compile(r"^(?:│ )?Error: (?P<summary>.+)$")


class ApplyProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int | None = None
    done: int = 0
    in_progress: tuple[str, ...] = ()
    last_event: str = ""
    summary: str | None = None
    added: int | None = None
    changed: int | None = None
    destroyed: int | None = None
    errors: tuple[str, ...] = Field(default=())
    completed: tuple[str, ...] = ()  # addresses whose create/update/destroy completed, in order
    created: tuple[str, ...] = ()  # of those, the ones created ("Creation complete")

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(self.done / self.total, 1.0)

    @property
    def text(self) -> str:
        if self.summary:
            return self.summary
        counted = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        return f"{counted} resources done" + (f" · {self.last_event}" if self.last_event else "")


def total_changes(add: int, change: int, destroy: int) -> int:
    """The number of "… complete" lines an apply of a plan with these counts prints."""
    return add + change + destroy


def total_from_plan_json(plan: Mapping[str, Any]) -> int:
    """Count the resource actions of a `terraform show -json` plan the same way as `total_changes`."""
    total = 0
    for change in plan.get("resource_changes", []):
        actions = change.get("change", {}).get("actions", [])
        total += sum(1 for action in actions if action in {"create", "update", "delete"})
    return total


def advance(progress: ApplyProgress, line: str) -> ApplyProgress:
    """The progress after one more output line (the same object when the line says nothing new)."""
    line = line.rstrip("\n")
    if match := _DONE.match(line):
        address = match["address"]
        remaining = list(progress.in_progress)
        if address in remaining:
            remaining.remove(address)
        counted = match["kind"] != "Read"  # data sources are read, not counted in the plan's totals
        return progress.model_copy(
            update={
                "done": progress.done + 1 if counted else progress.done,
                "completed": (*progress.completed, address) if counted else progress.completed,
                "created": (*progress.created, address) if match["kind"] == "Creation" else progress.created,
                "in_progress": tuple(remaining),
                "last_event": f"{address}: {match['kind'].lower()} complete after {match['after']}",
            }
        )
    if match := _STARTED.match(line):
        address = match["address"]
        return progress.model_copy(
            update={
                "in_progress": (*progress.in_progress, address),
                "last_event": f"{address}: {match['verb'].lower()}…",
            }
        )
    if match := _STILL.match(line):
        elapsed = match["rest"].rsplit(", ", 1)[-1]
        return progress.model_copy(
            update={"last_event": f"{match['address']}: still {match['verb']} ({elapsed})"}
        )
    if match := _SUMMARY.match(line):
        return progress.model_copy(
            update={
                "summary": line.strip(),
                "added": int(match["added"]),
                "changed": int(match["changed"]),
                "destroyed": int(match["destroyed"]),
                "in_progress": (),
            }
        )
    if match := _ERROR.match(line):
        return progress.model_copy(update={"errors": (*progress.errors, match["summary"].strip())})
    return progress


def replay(lines: Iterable[str], total: int | None = None) -> ApplyProgress:
    progress = ApplyProgress(total=total)
    for line in lines:
        progress = advance(progress, line)
    return progress


def state_addresses(state: Mapping[str, Any]) -> set[str]:
    """The resource instance addresses a Terraform state (JSON, format version 4) holds, written the
    way apply prints them: `module.a.aws_vpc.main`, `terraform_data.x[0]`, `terraform_data.y["k"]`."""
    found: set[str] = set()
    for resource in state.get("resources", []) or []:
        if not isinstance(resource, Mapping):
            continue
        base = f"{resource.get('type')}.{resource.get('name')}"
        if resource.get("mode") == "data":
            base = "data." + base
        if resource.get("module"):
            base = f"{resource['module']}.{base}"
        for instance in resource.get("instances", []) or []:
            key = instance.get("index_key") if isinstance(instance, Mapping) else None
            if key is None:
                found.add(base)
            elif isinstance(key, int):
                found.add(f"{base}[{key}]")
            else:
                found.add(f'{base}["{key}"]')
    return found
