"""What a thread says when the bot's store lost the deployment's record (bot/store_watch.py tells
the threads it remembers; pure: models in, messages out)."""

from __future__ import annotations

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.views.messages import Message, text_message
from core.models import Deployment


def data_lost_notice(deployment: Deployment) -> Message:
    return text_message(
        ":warning: *The bot lost this deployment's record.* Its Redis store lost its data (it restarted"
        " without persistence, or was emptied): the request, values, plan, approvals and any queued step"
        " are gone, nothing more will happen in this thread, and its buttons no longer work.",
        context=(
            f"If a step was running (`{deployment.status.value}`), check the AWS account and the Terraform"
            " state before going on. To deploy, request it again with `/ecs-deploy`. Operators: turn on"
            " Redis persistence (`appendonly yes`); `ecs-deploy-bot doctor` checks it."
        ),
    )


def data_lost_root(deployment: Deployment) -> Message:
    """The root message with its status replaced: the record behind it is gone."""
    headline = f"ECS deployment requested: {deployment.request.headline} — by <@{deployment.requester_id}>"
    status = ":warning: Record lost — the bot's store lost its data; see the thread"
    return Message(
        text=f"{headline} · record lost",
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=f"*{headline}*")),
            SectionBlock(text=MarkdownTextObject(text=f"*Status:* {status}")),
            ContextBlock(
                elements=[MarkdownTextObject(text=f"`{deployment.id}` · no longer known to the bot")]
            ),
        ],
    )
