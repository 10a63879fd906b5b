"""Attribute and output values, made safe to post: masked, short, and only the few that matter.

`terraform show -json` does not redact: it keeps the clear value in `before`/`after` and only
*marks* it in `before_sensitive`/`after_sensitive`. A value is shown only when the plan has marks and
none of them covers it; sensitive wins over unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.plan.document import ChangeValues
from core.plan.model import SENSITIVE, UNKNOWN, UNMARKED, AttributeChange

MAX_ATTRIBUTES_PER_RESOURCE = 3
MAX_VALUE_CHARS = 60


def attribute_diff(values: ChangeValues) -> tuple[tuple[AttributeChange, ...], int]:
    """The first few changed top-level attributes of an update or replacement, masked, and how many
    more changed (the caller asks only for updates and replacements: creates and deletes list no
    attributes, since every attribute "changes" there and showing them adds noise and risk)."""
    before, after = values.before, values.after
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return (), 0
    unknown = values.after_unknown
    changed = [
        name
        for name in _union_keys(before, after)
        if before.get(name) != after.get(name) or any_true(child(unknown, name))
    ]
    forcing = _replace_attribute_names(values.replace_paths)
    changed.sort(key=lambda name: name not in forcing)
    shown = changed[:MAX_ATTRIBUTES_PER_RESOURCE]
    return tuple(_attribute_change(values, name, forcing) for name in shown), len(changed) - len(shown)


def _attribute_change(values: ChangeValues, name: str, forcing: set[str]) -> AttributeChange:
    sensitive = any_true(child(values.before_sensitive, name)) or any_true(
        child(values.after_sensitive, name)
    )
    before = masked(values.before.get(name), marked=values.marked, sensitive=sensitive, unknown=False)
    after = masked(
        values.after.get(name),
        marked=values.marked,
        sensitive=sensitive,
        unknown=any_true(child(values.after_unknown, name)),
    )
    return AttributeChange(name=name, before=before, after=after, forces_replacement=name in forcing)


def masked(value: Any, *, marked: bool, sensitive: bool, unknown: bool) -> str:
    """A value safe to post: sensitive wins over unknown; without marks nothing is shown."""
    if sensitive:
        return SENSITIVE
    if unknown:
        return UNKNOWN
    if not marked:
        return UNMARKED
    return short_value(value)


def short_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _union_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return list(after) + [name for name in before if name not in after]


def _replace_attribute_names(replace_paths: Any) -> set[str]:
    """Top-level attribute names of `replace_paths` (each path is a list of steps)."""
    if not isinstance(replace_paths, list):
        return set()
    return {path[0] for path in replace_paths if isinstance(path, list) and path and isinstance(path[0], str)}


def child(marks: Any, name: str) -> Any:
    """The marks for attribute `name`: a `true` above it covers it too."""
    if marks is True:
        return True
    return marks.get(name) if isinstance(marks, Mapping) else None


def any_true(marks: Any) -> bool:
    """Whether a sensitivity/unknown structure has `true` anywhere (iterative: plans can nest deep)."""
    stack = [marks]
    while stack:
        item = stack.pop()
        if item is True:
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
