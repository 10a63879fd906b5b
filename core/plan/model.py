"""What a plan review shows: the summary models (pydantic, frozen) and the words Terraform uses.

A `PlanSummary` is the boundary: the worker builds it from `terraform show -json` (core.plan.rules),
the Slack views render it (bot/views/plan.py). Every string in it is already masked and short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import cached_property

from core.values import Value

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
# Plans from Terraform < 0.15 carry no sensitivity marks at all, so no value can be shown safely.
UNMARKED = "(not shown)"
UNRECORDED_ADDRESS = "(address not recorded by this Terraform version)"

# Resource types that move the monthly bill noticeably; the one list the rest of the bot consults.
COSTLY_RESOURCE_TYPES: Mapping[str, str] = {
    "aws_nat_gateway": "NAT gateway",
    "aws_db_instance": "RDS DB instance",
    "aws_rds_cluster_instance": "Aurora DB instance",
    "aws_docdb_cluster_instance": "DocumentDB instance",
    "aws_elasticache_replication_group": "ElastiCache replication group",
    "aws_elasticache_cluster": "ElastiCache cluster",
    "aws_ec2_client_vpn_endpoint": "Client VPN endpoint",
}


class PlanAction(StrEnum):
    """One resource instance's action, as Terraform's `change.actions` list encodes it."""

    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    DELETE_THEN_CREATE = "delete-then-create"
    CREATE_THEN_DELETE = "create-then-delete"
    FORGET = "forget"
    CREATE_THEN_FORGET = "create-then-forget"
    NO_OP = "no-op"

    @property
    def is_replace(self) -> bool:
        return self in _REPLACE_ACTIONS


_REPLACE_ACTIONS = frozenset(
    {PlanAction.DELETE_THEN_CREATE, PlanAction.CREATE_THEN_DELETE, PlanAction.CREATE_THEN_FORGET}
)


class ChangeGroup(StrEnum):
    """How changes are grouped for review; the declaration order is the display order."""

    DESTROY = "destroy"
    REPLACE = "replace"
    FORGET = "forget"
    UPDATE = "update"
    CREATE = "create"
    IMPORT = "import"
    MOVE = "move"

    @property
    def is_flagged(self) -> bool:
        """Destroys and replacements lose data or cause downtime: they are shown first, flagged."""
        return self in (ChangeGroup.DESTROY, ChangeGroup.REPLACE)


class AttributeChange(Value):
    """One top-level attribute of an update or replacement; values are already masked and short."""

    name: str
    before: str
    after: str
    forces_replacement: bool = False


class ResourceChange(Value):
    address: str
    type: str
    mode: str = "managed"
    action: PlanAction
    group: ChangeGroup | None = None  # None for data-source reads, which are not changes
    reason: str | None = None
    previous_address: str | None = None
    importing: bool = False
    attribute_changes: tuple[AttributeChange, ...] = ()
    more_attribute_changes: int = 0

    @property
    def is_flagged(self) -> bool:
        return self.group is not None and self.group.is_flagged

    @property
    def moved(self) -> bool:
        return bool(self.previous_address) and self.previous_address != self.address


class DriftChange(Value):
    """A resource Terraform found changed (or deleted) outside Terraform while refreshing."""

    address: str
    type: str
    action: PlanAction
    description: str


class OutputChange(Value):
    name: str
    action: PlanAction
    value: str
    sensitive: bool = False


class CostlyChange(Value):
    """How many resources of one costly type this plan adds, replaces, changes or destroys."""

    type: str
    label: str
    added: int = 0
    replaced: int = 0
    changed: int = 0
    destroyed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.replaced + self.changed + self.destroyed


class PlanCounts(Value):
    """Terraform's counts: a replacement is one to add and one to destroy."""

    to_import: int = 0
    to_add: int = 0
    to_change: int = 0
    to_destroy: int = 0
    to_forget: int = 0
    to_move: int = 0
    to_read: int = 0


class TypeCount(Value):
    type: str
    changes: tuple[ResourceChange, ...]

    @property
    def count(self) -> int:
        return len(self.changes)


class GroupedChanges(Value):
    group: ChangeGroup
    by_type: tuple[TypeCount, ...]

    @property
    def total(self) -> int:
        return sum(type_count.count for type_count in self.by_type)


class PlanSummary(Value):
    format_version: str
    terraform_version: str | None = None
    errored: bool = False
    complete: bool | None = None
    applyable: bool = True
    not_applyable_reason: str | None = None
    counts: PlanCounts = PlanCounts()
    changes: tuple[ResourceChange, ...] = ()  # flagged first, then by group, type, address
    data_reads: tuple[ResourceChange, ...] = ()
    drift: tuple[DriftChange, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    costly: tuple[CostlyChange, ...] = ()
    monthly_cost: str | None = None

    @property
    def has_resource_changes(self) -> bool:
        """Terraform prints a "Plan:" line when anything is listed: changes, moves, imports, reads."""
        return bool(self.changes or self.data_reads)

    @property
    def has_changes(self) -> bool:
        return self.has_resource_changes or bool(self.outputs)

    @cached_property
    def flagged(self) -> tuple[ResourceChange, ...]:
        """Computed once per summary: a review reads it several times (10,000 changes are common)."""
        return tuple(change for change in self.changes if change.is_flagged)

    @property
    def sentence(self) -> str:
        """Terraform's own summary sentence, e.g. "Plan: 1 to add, 0 to change, 1 to destroy."."""
        if self.has_resource_changes:
            return plan_sentence(self.counts)
        if self.errored:
            return "Planning failed."
        if self.outputs:
            return f"No resource changes. {plural(len(self.outputs), 'output')} to change."
        return "No changes."

    def grouped(self) -> tuple[GroupedChanges, ...]:
        return group_changes(self.changes)


def plan_sentence(counts: PlanCounts) -> str:
    """Terraform's "Plan:" line: import first and forget last, each only when there are some."""
    parts = [f"{counts.to_import} to import"] if counts.to_import else []
    parts += [f"{counts.to_add} to add", f"{counts.to_change} to change", f"{counts.to_destroy} to destroy"]
    if counts.to_forget:
        parts.append(f"{counts.to_forget} to forget")
    return "Plan: " + ", ".join(parts) + "."


def group_changes(changes: Iterable[ResourceChange]) -> tuple[GroupedChanges, ...]:
    """Group by display group, then by resource type (costly types first, then the most frequent)."""
    by_group: dict[ChangeGroup, dict[str, list[ResourceChange]]] = {}
    for change in changes:
        if change.group is not None:
            by_group.setdefault(change.group, {}).setdefault(change.type, []).append(change)
    return tuple(
        GroupedChanges(
            group=group,
            by_type=tuple(
                TypeCount(type=type_name, changes=tuple(members))
                for type_name, members in sorted(by_group[group].items(), key=_type_priority)
            ),
        )
        for group in ChangeGroup
        if group in by_group
    )


def _type_priority(item: tuple[str, list[ResourceChange]]) -> tuple[bool, int, str]:
    """A database among 500 log groups must not be folded away: costly types lead, then the commonest."""
    type_name, members = item
    return type_name not in COSTLY_RESOURCE_TYPES, -len(members), type_name


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
