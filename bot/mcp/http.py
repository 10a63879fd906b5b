"""The MCP server over streamable HTTP: the SDK's Starlette app behind a bearer-token check.

Every HTTP request must carry `Authorization: Bearer <token>` whose SHA-256 is declared under
`mcp_clients:` in the access policy (compared in constant time, core.policy.mcp_clients); any other
request gets 401 before the SDK sees it. Lifespan events pass through (they start the SDK's session
manager). The token never reaches a log.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from bot.mcp.server import bearer_token
from core.logs import get_logger
from core.policy.mcp_clients import McpClient, authenticate

log = get_logger(__name__)


class BearerAuth:
    def __init__(self, app: ASGIApp, clients: tuple[McpClient, ...]) -> None:
        self.app = app
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                authorization = value.decode("latin-1")
                break
        client = authenticate(self.clients, bearer_token(authorization))
        if client is None:
            log.warning("mcp_unauthorized", path=scope.get("path", ""), token_given=authorization is not None)
            await _unauthorized(send)
            return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"error": "unauthorized", "detail": "a valid bearer token is required"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="ecs-deploy-bot"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve_http(app: ASGIApp, clients: tuple[McpClient, ...], host: str, port: int) -> None:
    """Serve `app` (the SDK's streamable HTTP app) behind BearerAuth with uvicorn."""
    import uvicorn

    uvicorn.run(BearerAuth(app, clients), host=host, port=port, log_config=None, access_log=False)
