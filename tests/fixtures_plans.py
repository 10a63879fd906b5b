"""Helpers for the plan tests: the real-world fixtures, Terraform's counting rules, synthetic plans.

Everything here is written from Terraform's documented JSON format and its plan renderer
(internal/command/jsonformat/plan.go), not from core.plan_summary, so the tests can disagree.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tests.harness.fixtures import fixture_files, fixture_path

FIXTURE_PATHS = fixture_files("plans")


def load_fixture(name: str) -> dict[str, Any]:
    plan = json.loads(fixture_path("plans", name).read_text())
    assert isinstance(plan, dict)
    return plan


def terraform_sentence(plan: dict[str, Any]) -> str | None:
    """The "Plan: …" line Terraform would print for this plan, or None when it prints none.

    Terraform lists every change except plain no-ops (a no-op that moves or imports is listed) and
    deleted data sources; move-only changes are listed but not counted; a replacement counts as one
    to add and one to destroy; reads are listed but not counted.
    """
    actions: Counter[tuple[str, ...]] = Counter()
    listed = imports = 0
    for entry in plan.get("resource_changes") or []:
        change = entry["change"]
        kind = tuple(change["actions"])
        moved = entry.get("previous_address") not in (None, entry["address"])
        importing = change.get("importing") is not None
        if kind == ("no-op",) and not moved and not importing:
            continue
        if kind == ("delete",) and entry.get("mode", "managed") != "managed":
            continue
        listed += 1
        imports += importing
        if kind != ("no-op",):
            actions[kind] += 1
    if not listed:
        return None
    replaced = actions["delete", "create"] + actions["create", "delete"]
    add = actions["create",] + replaced + actions["create", "forget"]
    destroy = actions["delete",] + replaced
    forget = actions["forget",] + actions["create", "forget"]
    sentence = "Plan: " + (f"{imports} to import, " if imports else "")
    sentence += f"{add} to add, {actions['update',]} to change, {destroy} to destroy"
    return sentence + (f", {forget} to forget." if forget else ".")


def sensitive_leaves(plan: dict[str, Any]) -> list[Any]:
    """Every clear value Terraform marked sensitive, from resource changes, drift and outputs."""
    found: list[Any] = []
    for container, marks in _marked_pairs(plan):
        for value, _ in _sensitive_slots(container, marks):
            found.extend(_leaves(value))
    return found


def with_canaries(plan: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of the plan whose every sensitive value is a unique canary string (leaf by leaf)."""
    planted = copy.deepcopy(plan)
    canaries: list[str] = []
    counter = itertools.count()

    def canary() -> str:
        token = f"CANARY{next(counter):05d}XZ"
        canaries.append(token)
        return token

    for container, marks in _marked_pairs(planted):
        for _, (parent, key) in list(_sensitive_slots(container, marks)):
            parent[key] = _replace_leaves(parent[key], canary)
    return planted, canaries


def _marked_pairs(plan: dict[str, Any]) -> Iterator[tuple[dict[str, Any], tuple[str, str]]]:
    for section in ("resource_changes", "resource_drift"):
        for entry in plan.get(section) or []:
            yield entry["change"], ("before", "before_sensitive")
            yield entry["change"], ("after", "after_sensitive")
    for change in (plan.get("output_changes") or {}).values():
        yield change, ("before", "before_sensitive")
        yield change, ("after", "after_sensitive")


def _sensitive_slots(
    container: dict[str, Any], names: tuple[str, str]
) -> Iterator[tuple[Any, tuple[Any, Any]]]:
    """(value, (parent, key)) for every subtree whose mark is `true`."""
    value_key, marks_key = names
    if value_key not in container:
        return
    stack: list[tuple[Any, Any, Any, Any]] = [
        (container[value_key], container.get(marks_key), container, value_key)
    ]
    while stack:
        value, marks, parent, key = stack.pop()
        if marks is True:
            yield value, (parent, key)
        elif isinstance(marks, dict) and isinstance(value, dict):
            stack.extend((value[name], marks[name], value, name) for name in marks if name in value)
        elif isinstance(marks, list) and isinstance(value, list):
            stack.extend((value[i], marks[i], value, i) for i in range(min(len(marks), len(value))))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _replace_leaves(value: Any, make: Any) -> Any:
    if isinstance(value, dict):
        return {name: _replace_leaves(item, make) for name, item in value.items()}
    if isinstance(value, list):
        return [_replace_leaves(item, make) for item in value]
    return make()


def resource_change(
    address: str,
    actions: list[str],
    *,
    type_: str | None = None,
    mode: str = "managed",
    before: Any = None,
    after: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A `resource_changes` entry in the 1.x format; `extra` goes into `change` unless it is top-level."""
    top_level: dict[str, Any] = {
        key: extra.pop(key) for key in ("action_reason", "previous_address", "deposed") if key in extra
    }
    name_part = address.split("[", 1)[0].split(".")
    change = {
        "actions": actions,
        "before": before,
        "after": after,
        "after_unknown": extra.pop("after_unknown", {}),
        "before_sensitive": extra.pop("before_sensitive", False if before is None else {}),
        "after_sensitive": extra.pop("after_sensitive", False if after is None else {}),
        **extra,
    }
    return {
        "address": address,
        "mode": mode,
        "type": type_ or name_part[-2],
        "name": name_part[-1],
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": change,
        **top_level,
    }


def plan_document(*changes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.5",
        "planned_values": {"root_module": {}},
        "resource_changes": list(changes),
        **extra,
    }


SYNTHETIC_TYPES = (
    "aws_ecs_service",
    "aws_ecs_task_definition",
    "aws_security_group_rule",
    "aws_iam_role_policy_attachment",
    "aws_cloudwatch_log_group",
    "aws_lb_target_group",
    "aws_route53_record",
    "aws_nat_gateway",
)


def big_plan(count: int) -> tuple[dict[str, Any], dict[str, int]]:
    """A plan with `count` changes in a fixed mix, and the per-action numbers it was built with.

    Every tenth change destroys, every 25th replaces, every 7th updates (with a sensitive
    password), the rest create; attributes carry a few hundred bytes each so the JSON is big.
    """
    changes = []
    built: Counter[str] = Counter()
    for index in range(count):
        type_ = SYNTHETIC_TYPES[index % len(SYNTHETIC_TYPES)]
        address = f'module.app["svc-{index // 100}"].{type_}.r{index}'
        attributes = {
            "name": f"svc-{index}",
            "description": "x" * 300,
            "tags": {"Application": "shop", "Environment": "prod", "Index": str(index)},
        }
        # a replace and an update both change the sensitive password (and the description)
        password_change: dict[str, Any] = {
            "before": dict(attributes, password="OLDSECRET"),
            "after": dict(attributes, password=f"SECRETPW{index:06d}Q", description="y" * 300),
            "before_sensitive": {"password": True},
            "after_sensitive": {"password": True},
        }
        if index % 10 == 0:
            built["delete"] += 1
            entry = resource_change(
                address,
                ["delete"],
                type_=type_,
                before=attributes,
                action_reason="delete_because_no_resource_config",
            )
        elif index % 25 == 0:
            built["replace"] += 1
            entry = resource_change(
                address,
                ["create", "delete"],
                type_=type_,
                replace_paths=[["password"]],
                action_reason="replace_because_cannot_update",
                **password_change,
            )
        elif index % 7 == 0:
            built["update"] += 1
            entry = resource_change(address, ["update"], type_=type_, **password_change)
        else:
            built["create"] += 1
            entry = resource_change(
                address, ["create"], type_=type_, after=attributes, after_unknown={"id": True}
            )
        changes.append(entry)
    return plan_document(*changes), dict(built)
