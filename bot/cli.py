"""`ecs-deploy-bot` — a thin command line over the library: web, socket, worker, dev, doctor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import redis

from bot.services import Services
from core.logs import configure_logging, get_logger
from core.settings import ConfigurationError, Settings, load_settings

log = get_logger(__name__)
FATAL_AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


def _settings() -> Settings:
    try:
        current = load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(current.log_level)
    return current


def _redis_url(current: Settings) -> str:
    if not current.redis_url:
        raise click.ClickException(
            "Missing setting REDIS_URL. Set it to your Redis (redis://host:6379/0), "
            "or run `ecs-deploy-bot dev`, which starts an embedded Redis."
        )
    return current.redis_url


def _services(current: Settings) -> Services:
    from bot.services import redis_connection
    from bot.slack import make_web_client
    from core.policy import PolicyError

    try:
        return Services.build(current, redis_connection(_redis_url(current)), make_web_client(current))
    except PolicyError as exc:
        raise click.ClickException(f"ECS_DEPLOY_POLICY_FILE: {exc}") from None


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
    import waitress

    from bot.app import build_app
    from bot.web import SlackWsgiApp

    current = _settings()
    try:
        current.require_slack_http()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    services = _services(current)
    _check_token(current)
    assert current.slack_signing_secret is not None
    wsgi = SlackWsgiApp(
        build_app(services), current.slack_signing_secret.get_secret_value(), services.redis_ok
    )
    log.info("web_listening", host=host, port=port)
    waitress.serve(wsgi, host=host, port=port, threads=threads, ident="ecs-deploy-bot", _quiet=True)


@main.command()
def socket() -> None:
    """Run the same app over Socket Mode (SLACK_APP_TOKEN), with no public URL."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import build_app

    current = _settings()
    try:
        current.require_slack_socket()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    services = _services(current)
    _check_token(current)
    assert current.slack_app_token is not None
    SocketModeHandler(build_app(services), current.slack_app_token.get_secret_value()).start()


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@click.option("--name", default=None, help="Worker name (default: host and pid).")
def worker(burst: bool, name: str | None) -> None:
    """An RQ worker on the bot's queue, with heartbeats, the dead-job sweep and the Slack outbox."""
    from workers.worker import DeployWorker

    current = _settings()
    connection = redis.Redis.from_url(_redis_url(current))
    DeployWorker([current.queue_name], connection=connection, name=name, settings=current).work(
        burst=burst, with_scheduler=not burst, logging_level=current.log_level
    )


@main.command()
@click.option(
    "--port", type=int, default=lambda: int(os.environ.get("PORT", "3000")), show_default="$PORT or 3000"
)
@click.option("--workers", "worker_count", type=int, default=1, show_default=True)
def dev(port: int, worker_count: int) -> None:
    """Everything in one process tree: web (or socket) + worker(s) + embedded Redis if REDIS_URL is unset."""
    from core.redis_server import EmbeddedRedis

    current = _settings()
    embedded: EmbeddedRedis | None = None
    env = dict(os.environ)
    if not current.redis_url:
        embedded = EmbeddedRedis(
            Path(current.data_dir) / "redis", port=6390 if _port_free(6390) else None
        ).start()
        env["REDIS_URL"] = embedded.url
        click.echo(f"Embedded Redis on {embedded.url} (data in {embedded.data_dir})")
    front = ["socket"] if current.slack_app_token else ["web", "--port", str(port)]
    commands = [front] + [["worker"]] * worker_count
    children = [subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env) for args in commands]
    click.echo(f"Started {' + '.join(c[0] for c in commands)}; Ctrl-C stops everything.")

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = next(child for child in children if child.poll() is not None)
        click.echo(f"A process exited with code {failed.returncode}; stopping the rest.", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()


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

    from core.audit import AuditTrail

    current = _settings()
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    trail = AuditTrail(redis.Redis.from_url(_redis_url(current)))
    try:
        for event in trail.export(start):
            if deployment_id is None or event.deployment_id == deployment_id:
                click.echo(event.model_dump_json())
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis at REDIS_URL is unreachable: {type(exc).__name__}") from None


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


if __name__ == "__main__":
    main()
