"""The plan summary's public names, kept importable from here (the code lives in core/plan/)."""

from __future__ import annotations

from core.plan.document import drift_address
from core.plan.errors import PlanParseError, PlanSummaryError
from core.plan.model import (
    COSTLY_RESOURCE_TYPES,
    SENSITIVE,
    UNKNOWN,
    UNMARKED,
    UNRECORDED_ADDRESS,
    AttributeChange,
    ChangeGroup,
    CostlyChange,
    DriftChange,
    GroupedChanges,
    OutputChange,
    PlanAction,
    PlanCounts,
    PlanSummary,
    ResourceChange,
    TypeCount,
    group_changes,
    plan_sentence,
)
from core.plan.reading import SUPPORTED_FORMAT_MAJORS, check_is_plan, decode_plan_text, load_plan_json
from core.plan.rules import ACTION_REASON_WORDS, summarise_plan
from core.plan.values import MAX_ATTRIBUTES_PER_RESOURCE, MAX_VALUE_CHARS, short_value

__all__ = [
    "ACTION_REASON_WORDS",
    "COSTLY_RESOURCE_TYPES",
    "MAX_ATTRIBUTES_PER_RESOURCE",
    "MAX_VALUE_CHARS",
    "SENSITIVE",
    "SUPPORTED_FORMAT_MAJORS",
    "UNKNOWN",
    "UNMARKED",
    "UNRECORDED_ADDRESS",
    "AttributeChange",
    "ChangeGroup",
    "CostlyChange",
    "DriftChange",
    "GroupedChanges",
    "OutputChange",
    "PlanAction",
    "PlanCounts",
    "PlanParseError",
    "PlanSummary",
    "PlanSummaryError",
    "ResourceChange",
    "TypeCount",
    "check_is_plan",
    "decode_plan_text",
    "drift_address",
    "group_changes",
    "load_plan_json",
    "plan_sentence",
    "short_value",
    "summarise_plan",
]
