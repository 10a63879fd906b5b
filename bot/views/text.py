"""Kept for importers not yet moved: the escaping helpers live in bot/views/blocks.py."""

from __future__ import annotations

from bot.views.blocks import escape_mrkdwn, inline_code

__all__ = ["escape_mrkdwn", "inline_code"]
