"""Small modals opened from thread buttons: reject reason, missing values, edit values."""

from __future__ import annotations

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    Block,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.ids import BlockId, Callback
from bot.views.request_modal import modal, size_input, text_input
from core.models import Deployment


class ThreadContext(BaseModel):
    """`private_metadata` of a modal opened from a thread button."""

    deployment_id: str
    channel_id: str
    message_ts: str | None = None
    attempt: int | None = None


# Values a requester may change after seeing the plan, beyond size, CIDR and tags: the knobs the size
# templates expose. Field name -> (label, hint, kind).
EDITABLE_KNOBS: dict[str, tuple[str, str, str]] = {
    "rds_instance_class": ("RDS instance class", "e.g. db.t4g.medium", "string"),
    "rds_instance_count": ("RDS instance count", "1-5", "number"),
    "elasticache_node_type": ("ElastiCache node type", "e.g. cache.t4g.medium", "string"),
    "vpc_enable_high_available_nat_gateway": ("NAT per AZ (high availability)", "true or false", "bool"),
}


def reject_modal(context: ThreadContext) -> View:
    return modal(
        Callback.REJECT_MODAL,
        "Reject plan",
        "Reject",
        context,
        [text_input(BlockId.REASON.value, "Why? (the requester sees this)", multiline=True, max_length=1000)],
        close="Back",
    )


def missing_values_modal(context: ThreadContext, variables: list[tuple[str, str, str]]) -> View:
    """`variables`: (variable name, label, hint) for each value the template leaves to the requester."""
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text="These values are yours to give; they go into the generated tfvars.")
        )
    ]
    blocks += [
        text_input(f"var:{name}", label, hint=hint, max_length=256) for name, label, hint in variables[:40]
    ]
    return modal(Callback.MISSING_VALUES_MODAL, "Values needed", "Save and plan", context, blocks)


def edit_values_modal(context: ThreadContext, deployment: Deployment) -> View:
    request = deployment.request
    tags = "\n".join(f"{k}={v}" for k, v in request.additional_tags.items())
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text="Saving rewrites the tfvars (comments kept), discards earlier approvals and makes a new plan."
            )
        ),
        size_input(request.size),
        text_input(BlockId.VPC_CIDR.value, "VPC CIDR", initial=request.vpc_cidr_block, max_length=18),
        text_input(
            BlockId.TAGS.value,
            "Additional tags",
            initial=tags or None,
            optional=True,
            multiline=True,
            hint="key=value, one a line",
            max_length=3000,
        ),
    ]
    for name, (label, hint, _) in EDITABLE_KNOBS.items():
        current = deployment.extra_values.get(name)
        initial = (
            None if current is None else (str(current).lower() if isinstance(current, bool) else str(current))
        )
        blocks.append(
            text_input(
                f"var:{name}",
                label,
                initial=initial,
                hint=f"{hint} — empty keeps the template's value",
                optional=True,
                max_length=64,
            )
        )
    return modal(Callback.EDIT_VALUES_MODAL, "Edit values", "Save and re-plan", context, blocks)
