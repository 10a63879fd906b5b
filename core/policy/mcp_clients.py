"""MCP clients in the access policy: who an AI assistant calling the bot's MCP server over HTTP is.

The operator declares each client under `mcp_clients:` with a name (shown in Slack and the audit
trail), the SHA-256 of its bearer token (never the token itself) and the Slack user it acts as:

    mcp_clients:
      - name: platform-assistant
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        user: U012AB3CD

A presented token is hashed and compared with every declared hash in constant time
(`hmac.compare_digest`, no early exit), so the answer's timing says nothing about which hash, or how
much of it, matched. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from core.policy.principals import USER_ID
from core.values import Value

CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _check_name(value: str) -> str:
    if not CLIENT_NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a client name: 1-63 letters, digits, spaces and ._- (starting with a letter"
            " or digit)."
        )
    return value


def _check_hash(value: str) -> str:
    if not SHA256_HEX.fullmatch(value):
        raise ValueError(
            "token_sha256 must be the SHA-256 of the token as 64 lower-case hex digits (e.g. `printf %s"
            ' "$TOKEN" | sha256sum`), never the token itself.'
        )
    return value


def _check_user(value: str) -> str:
    if not USER_ID.fullmatch(value):
        raise ValueError(f"'{value}' is not a Slack user id (U… or W…): an MCP client acts as one person.")
    return value


class McpClientFile(Value):
    """One `mcp_clients:` entry as the operator writes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, AfterValidator(_check_name)]
    token_sha256: Annotated[str, AfterValidator(_check_hash)]
    user: Annotated[str, AfterValidator(_check_user)]


def _unique(entries: list[McpClientFile]) -> list[McpClientFile]:
    names = [e.name for e in entries]
    hashes = [e.token_sha256 for e in entries]
    for label, values in (("name", names), ("token_sha256", hashes)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            shown = repeated[0] if label == "name" else f"{repeated[0][:12]}…"
            raise ValueError(f"two MCP clients have the same {label} ({shown}); each needs its own")
    return entries


McpClientList = Annotated[list[McpClientFile], AfterValidator(_unique)]
MCP_CLIENT_KEYS = ", ".join(McpClientFile.model_fields)


class McpClient(Value):
    """A declared MCP client: its name and the Slack user it acts as."""

    name: str
    user_id: str
    token_sha256: str = Field(repr=False)


def resolve_mcp_clients(entries: list[McpClientFile] | None) -> tuple[McpClient, ...]:
    return tuple(McpClient(name=e.name, user_id=e.user, token_sha256=e.token_sha256) for e in entries or ())


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate(clients: tuple[McpClient, ...], token: str | None) -> McpClient | None:
    """The client whose token this is, or None. Every declared hash is compared (constant time each),
    whatever matched earlier."""
    if not token:
        return None
    presented = token_sha256(token).encode("ascii")
    found: McpClient | None = None
    for client in clients:
        if hmac.compare_digest(presented, client.token_sha256.encode("ascii")) and found is None:
            found = client
    return found
