"""`ecs-deploy-bot` — a thin command line over the library: web, socket, worker, dev, doctor."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import redis

from bot.services import Services
from core.logs import configure_logging, get_logger
from core.redis_settings import redis_configured
from core.settings import ConfigurationError, Settings, load_settings
from storage.connection import Role, redis_connection

if TYPE_CHECKING:
    from bot.embedded_redis import EmbeddedRedis

log = get_logger(__name__)
FATAL_AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


def _settings() -> Settings:
    try:
        current = load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(current.log_level)
    return current


def _redis(current: Settings, role: Role = "cli") -> redis.Redis:
    """The bot's Redis as the settings describe it (storage/connection.py: URL, TLS or Sentinel)."""
    if not redis_configured(current):
        raise click.ClickException(
            "Missing setting REDIS_URL. Set it to your Redis (redis://host:6379/0) or give REDIS_SENTINELS, "
            "or run `ecs-deploy-bot dev`, which starts an embedded Redis."
        )
    return redis_connection(current, role)


def _services(current: Settings) -> Services:
    from bot.slack import make_web_client
    from core.policy.errors import PolicyError

    try:
        services = Services.build(current, _redis(current, "web"), make_web_client(current))
    except PolicyError as exc:
        raise click.ClickException(f"ECS_DEPLOY_POLICY_FILE: {exc}") from None
    _watch_store(current, services)
    return services


def _watch_store(current: Settings, services: Services) -> None:
    """Web and socket say at start whether Redis keeps its data, and log `redis_data_lost` when it
    loses it (the workers, which also tell the threads; see bot/store_watch.py)."""
    from bot.store_watch import StoreWatch

    StoreWatch(services.redis, None, role="web").start().watch_in_background(current.sweep_interval_seconds)


def _require_artifact_key(current: Settings) -> None:
    try:
        current.require_artifact_key()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _slack_app_start(require_transport: Callable[[Settings], None]) -> tuple[Settings, Services]:
    """What `web` and `socket` do before they serve: the settings, checked for their Slack transport
    (`Settings.require_slack_http` or `require_slack_socket`); the services; the artifact key; the token."""
    current = _settings()
    try:
        require_transport(current)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    services = _services(current)
    _require_artifact_key(current)
    _check_token(current)
    return current, services


DEV_KEY_FILE = "artifact.key"


def _dev_private_data(current: Settings, env: dict[str, str]) -> None:
    """`dev` keeps everything it writes private (umask 077, the data directory 0700; its children
    inherit both) and, when ECS_DEPLOY_ARTIFACT_KEY is unset, uses a key kept in the data directory
    (0600, made on first use), so its web and workers — and the next `dev` — share one key."""
    from core.settings import parse_keys
    from storage.artifacts import generate_key
    from workers.workspace import PRIVATE_UMASK, private_data_dir

    os.umask(PRIVATE_UMASK)
    data_dir = private_data_dir(current.data_dir)
    if current.artifact_keys:
        return
    key_file = data_dir / DEV_KEY_FILE
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = key_file.read_text(encoding="ascii").strip()
        try:
            parse_keys(key)
        except ValueError as exc:
            raise click.ClickException(f"{key_file}: {exc}; delete it to make a new one.") from None
    else:
        key = generate_key()
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        click.echo(f"Generated the artifact key for dev: {key_file} (elsewhere set ECS_DEPLOY_ARTIFACT_KEY).")
    env["ECS_DEPLOY_ARTIFACT_KEY"] = key


def _check_token(current: Settings) -> None:
    from slack_sdk.errors import SlackApiError

    from bot.slack import make_web_client

    try:
        make_web_client(current).auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in FATAL_AUTH_ERRORS:
            raise click.ClickException(f"SLACK_BOT_TOKEN was refused by Slack ({error}).") from None
        log.warning("slack_auth_test_failed", error=error)
    except OSError as exc:
        log.warning("slack_unreachable_at_start", error=type(exc).__name__)


@click.group()
def main() -> None:
    """ecs-deploy-bot: Slack ChatOps for ECS deployments with Terraform."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=int, default=lambda: int(os.environ.get("PORT", "3000")), show_default="$PORT or 3000"
)
@click.option("--threads", type=int, default=8, show_default=True)
def web(host: str, port: int, threads: int) -> None:
    """Serve the Bolt app over HTTP at /slack/events (waitress)."""
    from bot.app import build_app
    from bot.metrics import WebMetrics
    from bot.web import SlackWsgiApp, serve

    current, services = _slack_app_start(Settings.require_slack_http)
    assert current.slack_signing_secret is not None
    wsgi = SlackWsgiApp(
        build_app(services),
        current.slack_signing_secret.get_secret_value(),
        services.redis_ok,
        metrics=WebMetrics(services.redis),
    )
    log.info("web_listening", host=host, port=port)
    serve(wsgi, host=host, port=port, threads=threads)


@main.command()
def socket() -> None:
    """Run the same app over Socket Mode (SLACK_APP_TOKEN), with no public URL."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import build_app

    current, services = _slack_app_start(Settings.require_slack_socket)
    assert current.slack_app_token is not None
    handler = SocketModeHandler(build_app(services), current.slack_app_token.get_secret_value())
    try:
        handler.start()
    except KeyboardInterrupt:  # Ctrl-C, or `dev` stopping it: close the websocket, no traceback
        handler.close()


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@click.option("--name", default=None, help="Worker name (default: host and pid).")
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics (job histograms) on this port."
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the metrics server.")
def worker(burst: bool, name: str | None, metrics_port: int | None, metrics_host: str) -> None:
    """An RQ worker on the bot's queue, with heartbeats, the dead-job sweep and the Slack outbox."""
    from workers import metrics as worker_metrics
    from workers.worker import DeployWorker

    current = _settings()
    connection = _redis(current, "rq")
    _require_artifact_key(current)
    metrics = None
    if metrics_port is not None:
        worker_metrics.enable_multiprocess(current.data_dir)  # before any metric is made
        metrics = worker_metrics.serve(metrics_host, metrics_port)
    try:
        DeployWorker([current.queue_name], connection=connection, name=name, settings=current).work(
            burst=burst, with_scheduler=not burst, logging_level=current.log_level
        )
    finally:
        if metrics is not None:
            metrics.stop()


@main.command()
@click.option(
    "--port", type=int, default=lambda: int(os.environ.get("PORT", "3000")), show_default="$PORT or 3000"
)
@click.option("--workers", "worker_count", type=int, default=1, show_default=True)
def dev(port: int, worker_count: int) -> None:
    """Everything in one process tree: web (or socket) + worker(s) + embedded Redis if REDIS_URL is unset.

    Ctrl-C or SIGTERM stops web, then the workers (they finish a running job), then Redis."""
    from bot.supervisor import Supervisor

    supervisor = Supervisor(echo=click.echo)
    supervisor.catch_stop_signals()
    current = _settings()
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    _dev_private_data(current, env)
    if not redis_configured(current):
        embedded = _start_embedded_redis(Path(current.data_dir) / "redis")
        env["REDIS_URL"] = embedded.url
        click.echo(f"Embedded Redis on {embedded.url} (data in {embedded.data_dir}, persistence on)")
    front_args = ["socket"] if current.slack_app_token else ["web", "--port", str(port)]
    try:
        front = supervisor.spawn(front_args[0], front_args, env)
        workers = [
            supervisor.spawn(f"worker {n}" if worker_count > 1 else "worker", ["worker"], env)
            for n in range(1, worker_count + 1)
        ]
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    click.echo(f"Started {front.label} + {worker_count} worker(s); Ctrl-C stops everything.")
    sys.exit(supervisor.run(front, workers, embedded))


def _start_embedded_redis(data_dir: Path) -> EmbeddedRedis:
    """On port 6390 when it is free (a stable URL for `rq info` and redis-cli), else any free port."""
    from bot.embedded_redis import EmbeddedRedis

    try:
        if _port_free(6390):
            try:
                return EmbeddedRedis(data_dir, port=6390, die_with_owner=True).start()
            except RuntimeError:
                pass  # taken in between, or a real problem that the next start reports
        return EmbeddedRedis(data_dir, die_with_owner=True).start()
    except RuntimeError as exc:
        raise click.ClickException(f"The embedded Redis did not start: {exc}") from None


def _port_free(port: int) -> bool:
    import socket as sockets

    with sockets.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@main.group()
def audit() -> None:
    """The audit trail (every request, decision, approval, refusal, apply, cancel and unlock)."""


@audit.command("export")
@click.option(
    "--since", default=None, help="Only events at or after this time (ISO 8601, e.g. 2026-11-01T00:00Z)."
)
@click.option("--deployment", "deployment_id", default=None, help="Only this deployment's events.")
def audit_export(since: str | None, deployment_id: str | None) -> None:
    """Print the audit trail as JSON lines, oldest first."""
    from datetime import UTC, datetime

    from storage.audit import AuditTrail

    current = _settings()
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    trail = AuditTrail(_redis(current))
    try:
        for event in trail.export(start):
            if deployment_id is None or event.deployment_id == deployment_id:
                click.echo(event.model_dump_json())
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis at REDIS_URL is unreachable: {type(exc).__name__}") from None


@main.command()
@click.option("--http", "use_http", is_flag=True, help="Streamable HTTP with bearer tokens (default: stdio).")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: the address to bind.")
@click.option("--port", type=int, default=8765, show_default=True, help="With --http: the port.")
def mcp(use_http: bool, host: str, port: int) -> None:
    """MCP server for AI assistants: read and request tools, as a Slack user, under the access policy."""
    from bot.mcp.command import run_mcp

    current = _settings()
    run_mcp(_services(current), use_http=use_http, host=host, port=port)


@main.command()
def doctor() -> None:
    """Check configuration and reachability; exit non-zero on problems."""
    from bot.doctor import run_checks

    try:
        current = load_settings()
    except ConfigurationError as exc:
        click.echo(f"✗ settings: {exc}")
        sys.exit(1)
    configure_logging(current.log_level)
    checks = run_checks(current)
    for check in checks:
        mark = {"ok": "✓", "warn": "!", "fail": "✗"}[check.level]
        click.echo(f"{mark} {check.name}: {check.detail}")
    sys.exit(1 if any(check.level == "fail" for check in checks) else 0)


@main.group()
def environments() -> None:
    """The environment registry (what each deployment created, kept in Redis)."""


@environments.command("import")
def environments_import() -> None:
    """Rebuild the registry from the repository's environment branches; exit 1 if any failed."""
    from bot.views.config_commit import import_line, import_summary
    from workers.config_repo import ConfigRepoError
    from workers.environments_import import import_environments

    current = _settings()
    try:
        report = import_environments(current, _redis(current))
    except ConfigRepoError as exc:
        raise click.ClickException(str(exc)) from None
    for result in report.results:
        click.echo(import_line(result.key, result.outcome, result.detail))
        for warning in result.warnings:
            click.echo(f"  ! {warning}")
    click.echo(import_summary(report.imported, report.failed, len(report.results), report.remote))
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
