"""What `ecs-deploy-bot mcp` runs once bot/cli.py has the settings and the Services."""

from __future__ import annotations

import click

from bot.mcp.http import serve_http
from bot.mcp.server import build_server, http_caller, stdio_caller
from bot.mcp.settings import load_mcp_settings
from bot.services import Services
from core.logs import get_logger
from core.settings import ConfigurationError

log = get_logger(__name__)


def run_mcp(services: Services, *, use_http: bool, host: str, port: int) -> None:
    try:
        mcp_settings = load_mcp_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if mcp_settings.channel is None:
        log.warning(
            "mcp_channel_unset",
            detail="request_deployment and request_change need a channel argument until ECS_DEPLOY_MCP_CHANNEL is set",
        )
    if use_http:
        clients = services.policy.mcp_clients
        if not clients:
            raise click.ClickException(
                "No mcp_clients in the access policy (ECS_DEPLOY_POLICY_FILE): every HTTP request would get"
                " 401. Declare each client's name, token_sha256 and Slack user there."
            )
        server = build_server(services, http_caller(services), mcp_settings)
        log.info("mcp_http_listening", host=host, port=port, clients=len(clients))
        serve_http(server.streamable_http_app(host=host), clients, host, port)
        return
    if mcp_settings.user is None:
        raise click.ClickException(
            "Missing setting ECS_DEPLOY_MCP_USER: the Slack user id (U…) a stdio MCP client acts as."
        )
    server = build_server(services, stdio_caller(mcp_settings.user), mcp_settings)
    log.info("mcp_stdio_started", user=mcp_settings.user)
    server.run("stdio")
