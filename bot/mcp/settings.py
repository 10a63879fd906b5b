"""The MCP server's own settings (environment or `.env`, like core.settings)."""

from __future__ import annotations

import re

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.policy.principals import USER_ID
from core.settings import ConfigurationError

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


class McpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    user: str | None = Field(default=None, alias="ECS_DEPLOY_MCP_USER")
    channel: str | None = Field(default=None, alias="ECS_DEPLOY_MCP_CHANNEL")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value and not USER_ID.fullmatch(value):
            raise ValueError("must be a Slack user id (U… or W…): the stdio client acts as that person")
        return value or None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value and not CHANNEL_ID.fullmatch(value):
            raise ValueError("must be a Slack channel id (C… or G…), not a channel name")
        return value or None


def load_mcp_settings() -> McpSettings:
    try:
        return McpSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = McpSettings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
            name = field.alias if field and field.alias else "ECS_DEPLOY_MCP_*"
            problems.append(f"{name}: {str(error['msg']).removeprefix('Value error, ')}")
        raise ConfigurationError("Invalid setting " + "; ".join(problems)) from None
