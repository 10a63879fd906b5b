"""Root and thread messages of a deployment (pure: models in, text and blocks out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import Block

from bot.views.blocks import MESSAGE_TEXT_LIMIT, clip, context, escape_mrkdwn, section
from bot.views.statuses import KIND_WORDS, status_label
from core.models import CallerIdentity, Deployment


class Message(BaseModel):
    """A rendered message: `text` is the notification/fallback, `blocks` the layout."""

    model_config = {"arbitrary_types_allowed": True}

    text: str
    blocks: list[Block] = []

    def block_dicts(self) -> list[dict[str, object]]:
        return [block.to_dict() for block in self.blocks]


# One pattern for every kind: "{title}: {app}/{env} · {account} · {region} · {size} — by <@U…>",
# e.g. "Destroy requested: web/dev · 123456789012 · us-east-1 · small — by <@U0REQUEST1>".
MAX_EARLIER_THREADS = 10


def earlier_threads_text(links: list[str]) -> str:
    """Links to the environment's earlier threads (the newest ones when there are many)."""
    shown = links[-MAX_EARLIER_THREADS:]
    first = len(links) - len(shown) + 1
    return "Earlier threads of this environment: " + " · ".join(
        f"<{link}|#{first + n}>" for n, link in enumerate(shown)
    )


def root_message(deployment: Deployment) -> Message:
    request = deployment.request
    title = KIND_WORDS[deployment.kind].requested
    headline = f"{title}: {request.headline} — by <@{deployment.requester_id}>"
    if deployment.requested_via:
        headline += f" via {escape_mrkdwn(deployment.requested_via)}"
    detail = deployment.status_detail
    status = status_label(deployment.status) + (f" — {escape_mrkdwn(detail)}" if detail else "")
    return Message(
        text=f"{headline} · {deployment.status.value}",
        blocks=[
            section(f"*{headline}*"),
            section(f"*Status:* {clip(status, 2500)}"),
            context(
                f"`{deployment.id}` · profile `{request.profile}` · {request.account_situation.value}"
                " account · updates in the thread"
            ),
            *(
                [context(earlier_threads_text(deployment.previous_threads))]
                if deployment.previous_threads
                else []
            ),
        ],
    )


def text_message(text: str, *, context: str | None = None) -> Message:
    return _message(text, context)


def _message(text: str, note: str | None) -> Message:
    blocks: list[Block] = [section(text)]
    if note:
        blocks.append(context(note))
    return Message(text=clip(text, MESSAGE_TEXT_LIMIT), blocks=blocks)


def verified_message(identity: CallerIdentity, profile: str) -> Message:
    return text_message(
        f":white_check_mark: AWS access verified with profile `{profile}`: account *{identity.account}*,"
        f" identity `{identity.arn}`."
    )


def failure_message(step: str, reason: str, *, what_next: str | None = None) -> Message:
    text = f":x: *{step} failed.* {reason}"
    return text_message(text, context=what_next)


def decided_blocks(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """A clicked message without its buttons, and what was decided (`text`, mrkdwn) in their place."""
    kept = [block for block in blocks if block.get("type") != "actions"]
    return [*kept[:49], context(text, block_id="decision").to_dict()]
