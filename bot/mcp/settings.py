"""The MCP server's own settings (environment or `.env`, like core.settings)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.policy.principals import USER_ID
from core.settings import load_checked

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def optional_id(pattern: re.Pattern[str], rule: str) -> Callable[[str | None], str | None]:
    """A check of an optional Slack id: empty is None, anything else must match `pattern` (else `rule`)."""

    def check(value: str | None) -> str | None:
        if value and not pattern.fullmatch(value):
            raise ValueError(rule)
        return value or None

    return check


class McpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    user: str | None = Field(default=None, alias="ECS_DEPLOY_MCP_USER")
    channel: str | None = Field(default=None, alias="ECS_DEPLOY_MCP_CHANNEL")

    _user = field_validator("user")(
        optional_id(USER_ID, "must be a Slack user id (U… or W…): the stdio client acts as that person")
    )
    _channel = field_validator("channel")(
        optional_id(CHANNEL_ID, "must be a Slack channel id (C… or G…), not a channel name")
    )


def load_mcp_settings() -> McpSettings:
    return load_checked(McpSettings)
