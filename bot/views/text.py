"""Untrusted text inside Slack mrkdwn: the one escaping helper for everything a user (or a Terraform
repository, or AWS) wrote that the bot shows in a message, a modal or App Home.

Slack gives `&`, `<` and `>` meaning in mrkdwn: `<!channel>`, `<!here>`, `<@U…>`, `<!subteam^S…>`
and `<https://…|label>` are mentions and links. Escaped as Slack documents
(https://api.slack.com/reference/surfaces/formatting#escaping), they show as the characters typed.
"""

from __future__ import annotations


def escape_mrkdwn(text: str) -> str:
    """`&`, `<` and `>` as entities: no mention, broadcast or link can come out of `text`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline_code(text: str) -> str:
    """`text` as inline code that cannot end early (backticks become quotes) and is escaped."""
    return "`" + escape_mrkdwn(text.replace("`", "'")) + "`"
