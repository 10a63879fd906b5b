"""Progress of a `terraform apply -json`, read from its UI messages one line at a time (pure: no I/O).

`apply_start` / `apply_progress` / `apply_complete` hooks, the `change_summary` of the apply and
error `diagnostic`s (core/terraform_ui.py); lines that are not UI messages change nothing.

`total` comes from the plan (add + change + destroy; a replacement counts once in add and once in
destroy, and Terraform reports both a delete and a create `apply_complete` for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from core.terraform_ui import diagnostic, message
from core.values import Value

_VERBS = {"create": "creating", "update": "modifying", "delete": "destroying", "read": "reading"}
_KINDS = {"create": "creation", "update": "modifications", "delete": "destruction", "read": "read"}
_COUNTED = frozenset({"create", "update", "delete"})  # data sources are read, not counted in the plan


class ApplyProgress(Value):
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


def elapsed_text(seconds: object) -> str:
    """Elapsed seconds the way Terraform writes them: `0s`, `12s`, `1m10s`, `1h2m3s`."""
    total = int(seconds) if isinstance(seconds, int | float) else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def advance(progress: ApplyProgress, line: str) -> ApplyProgress:
    """The progress after one more output line (the same object when the line says nothing new)."""
    parsed = message(line)
    if parsed is None:
        return progress
    kind = parsed["type"]
    raw_hook = parsed.get("hook")
    hook: Mapping[str, Any] = raw_hook if isinstance(raw_hook, Mapping) else {}
    address = str((hook.get("resource") or {}).get("addr") or "")
    action = str(hook.get("action") or "")
    if kind == "apply_complete" and address:
        remaining = list(progress.in_progress)
        if address in remaining:
            remaining.remove(address)
        counted = action in _COUNTED
        return progress.model_copy(
            update={
                "done": progress.done + 1 if counted else progress.done,
                "completed": (*progress.completed, address) if counted else progress.completed,
                "created": (*progress.created, address) if action == "create" else progress.created,
                "in_progress": tuple(remaining),
                "last_event": f"{address}: {_KINDS.get(action, action)} complete after"
                f" {elapsed_text(hook.get('elapsed_seconds'))}",
            }
        )
    if kind == "apply_start" and address:
        return progress.model_copy(
            update={
                "in_progress": (*progress.in_progress, address),
                "last_event": f"{address}: {_VERBS.get(action, action)}…",
            }
        )
    if kind == "apply_progress" and address:
        elapsed = elapsed_text(hook.get("elapsed_seconds"))
        return progress.model_copy(
            update={"last_event": f"{address}: still {_VERBS.get(action, action)} ({elapsed} elapsed)"}
        )
    if kind == "apply_errored" and address:
        return progress.model_copy(update={"last_event": f"{address}: {_VERBS.get(action, action)} errored"})
    changes = parsed.get("changes")
    if kind == "change_summary" and isinstance(changes, Mapping) and changes.get("operation") == "apply":
        return progress.model_copy(
            update={
                "summary": str(parsed.get("@message", "")).strip(),
                "added": int(changes.get("add") or 0),
                "changed": int(changes.get("change") or 0),
                "destroyed": int(changes.get("remove") or 0),
                "in_progress": (),
            }
        )
    if (found := diagnostic(parsed)) is not None and found.is_error:
        return progress.model_copy(update={"errors": (*progress.errors, found.summary)})
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
