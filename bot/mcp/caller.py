"""Who an MCP tool call acts for (`Caller`), and the hooks the server gives its tool modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mcp.server.mcpserver import Context


@dataclass(frozen=True)
class Caller:
    user_id: str
    client: str  # shown in Slack ("via …") and recorded in the audit trail


CallerOf = Callable[[Context], Caller]


class Audited(Protocol):
    """Record a tool call in the audit trail and the log; returns who is calling."""

    def __call__(self, ctx: Context, tool: str, subject: str = "-", **detail: Any) -> Caller: ...
