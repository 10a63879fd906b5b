"""Block Kit helpers for every view: escaping untrusted text, clipping to Slack's limits, and the few
block shapes the bot uses (section, context, buttons).

The limits are `slack_sdk`'s own (the values its models validate against), so a clipped text is
never refused by `slack_sdk` or by Slack.

Untrusted text (anything a user, a Terraform repository or AWS wrote) goes through `escape_mrkdwn`:
Slack gives `&`, `<` and `>` meaning in mrkdwn — `<!channel>`, `<!here>`, `<@U…>`,
`<!subteam^S…>` and `<https://…|label>` are mentions and links. Escaped as Slack documents
(https://api.slack.com/reference/surfaces/formatting#escaping), they show as the characters typed.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    BlockElement,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)

TEXT_LIMIT = SectionBlock.text_max_length  # a section's text; also used for context texts (Slack: 3000)
MESSAGE_TEXT_LIMIT = SectionBlock.text_max_length  # a message's fallback/notification text as sent
LABEL_LIMIT = InputBlock.label_max_length
HINT_LIMIT = InputBlock.hint_max_length
BUTTON_TEXT_LIMIT = ButtonElement.text_max_length
OPTIONS_LIMIT = StaticSelectElement.options_max_length
ELLIPSIS = "…"


def escape_mrkdwn(text: str) -> str:
    """`&`, `<` and `>` as entities: no mention, broadcast or link can come out of `text`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline_code(text: str) -> str:
    """`text` as inline code that cannot end early (backticks become quotes) and is escaped."""
    return "`" + escape_mrkdwn(text.replace("`", "'")) + "`"


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` if it fits in `limit` characters, else its start and an ellipsis (`limit` in all)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def clip_code(text: str, limit: int = TEXT_LIMIT) -> str:
    """`clip` for mrkdwn that may hold ``` blocks: a cut never leaves a code block open."""
    if len(text) <= limit:
        return text
    closing = "\n```"
    clipped = clip(text, limit - len(closing))
    return clipped + closing if clipped.count("```") % 2 else clipped


def section(text: str, *, block_id: str | None = None, accessory: BlockElement | None = None) -> SectionBlock:
    """An mrkdwn section within Slack's limit; a cut never leaves a code block open."""
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=clip_code(text)), accessory=accessory)


def context(text: str, *, block_id: str | None = None) -> ContextBlock:
    """One line of small mrkdwn under a message, within Slack's limit."""
    return ContextBlock(block_id=block_id, elements=[MarkdownTextObject(text=clip(text))])


def button(
    label: str, action_id: str, value: str, style: str | None = None, *, confirm: ConfirmObject | None = None
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=clip(label, BUTTON_TEXT_LIMIT)),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def buttons(
    value: str, items: Sequence[tuple[str, str, str | None]], *, block_id: str | None = None
) -> ActionsBlock:
    """A row of buttons (label, action id, style) that all carry `value` (a deployment id)."""
    return ActionsBlock(
        block_id=block_id, elements=[button(label, action, value, style) for label, action, style in items]
    )
