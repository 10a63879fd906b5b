"""The console script as operators run it: fail-fast settings, `dev`, `doctor`, `audit export`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import requests

from bot.embedded_redis import free_port
from storage.audit import AuditTrail
from tests.harness.processes import ROOT, cli
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SIGNING_SECRET
from tests.harness.tfrepo import make_git_repo

SETTING_NAMES = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "REDIS_URL", "ECS_DEPLOY_")


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_NAMES)}
    return {**env, **values}


def test_web_without_signing_secret_fails_at_start_naming_the_variable() -> None:
    result = cli("web", env=clean_env(SLACK_BOT_TOKEN=BOT_TOKEN, REDIS_URL="redis://127.0.0.1:1/0"))
    assert result.returncode != 0
    assert "SLACK_SIGNING_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_an_invalid_value_names_its_variable() -> None:
    result = cli(
        "web",
        env=clean_env(
            SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, ECS_DEPLOY_APPROVAL_TTL_HOURS="-1"
        ),
    )
    assert result.returncode != 0
    assert "ECS_DEPLOY_APPROVAL_TTL_HOURS" in result.stderr and "Traceback" not in result.stderr


def test_web_without_redis_url_points_to_dev() -> None:
    result = cli("web", env=clean_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET))
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr and "ecs-deploy-bot dev" in result.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_runs_everything_with_only_the_slack_settings(
    slack_stand_in: SlackApiStandIn, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_stand_in.base_url,
        ECS_DEPLOY_DATA_DIR=str(tmp_path / "data"),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "dev", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("dev did not serve /healthz")
        assert health.json() == {"ok": True}  # the web process reaches the embedded Redis
        redis_dir = tmp_path / "data" / "redis"
        assert redis_dir.is_dir() and any(redis_dir.iterdir()), (
            "embedded Redis keeps its data under the data dir"
        )
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0 or process.returncode == -signal.SIGINT, output
    assert "Embedded Redis on redis://127.0.0.1:" in output
    redis_port = int(output.split("Embedded Redis on redis://127.0.0.1:")[1].split("/")[0])
    assert not _port_open(redis_port) and not _port_open(port), "dev stopped everything it started"


def test_doctor_reports_every_dependency(bot_env: dict[str, str], aws: object) -> None:
    result = cli("doctor", env={**os.environ, **bot_env})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("slack:", "redis:", "access policy:", "aws profiles:", "terraform:", "config repository:"):
        assert name in out, out
    assert "deployer → 123456789012" in out and "other-account → 222233334444" in out
    assert "! access policy" in out  # open policy: a warning
    assert "broken" in out  # the profile without credentials is named


def test_doctor_checks_where_configuration_is_pushed(
    bot_env: dict[str, str], aws: object, tmp_path: Path
) -> None:
    repo, _ = make_git_repo(tmp_path)
    base = {
        **os.environ,
        **bot_env,
        "ECS_DEPLOY_REPO_URL": str(repo),
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
    }
    readable = cli("doctor", env=base)
    assert f"✓ config repository: {repo}: 0 ecs-deploy/* branch(es)" in readable.stdout, readable.stdout

    missing = cli("doctor", env={**base, "ECS_DEPLOY_CONFIG_PUSH_URL": str(tmp_path / "nowhere")})
    assert missing.returncode == 0, missing.stdout  # a push that fails never fails a deployment: a warning
    assert "! config repository: configuration will not be pushed:" in missing.stdout, missing.stdout

    token = cli("doctor", env={**base, "ECS_DEPLOY_GITHUB_TOKEN": "ghp_" + "x" * 36})
    assert "ECS_DEPLOY_GITHUB_TOKEN is set but the push URL is not a github.com repository" in token.stdout
    assert "ghp_" not in token.stdout + token.stderr


def test_doctor_fails_on_a_refused_token(bot_env: dict[str, str], aws: object) -> None:
    result = cli("doctor", env={**os.environ, **bot_env, "SLACK_BOT_TOKEN": "xoxb-wrong"})
    assert result.returncode == 1
    assert "auth.test failed: invalid_auth" in result.stdout


def test_audit_export_prints_json_lines_since_a_time(
    bot_env: dict[str, str], redis_conn: redis.Redis
) -> None:
    trail = AuditTrail(redis_conn)
    trail.record("requested", "d-old", "U0REQUEST1")
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    trail.record("approval", "d-new", "U0LEAD0001", plan_sha256="a" * 64, outcome="approved_ready")
    everything = cli("audit", "export", env={**os.environ, **bot_env})
    assert everything.returncode == 0, everything.stderr
    events = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [e["event"] for e in events] == ["requested", "approval"]
    recent = cli(
        "audit",
        "export",
        "--since",
        (cut - timedelta(milliseconds=1)).isoformat(),
        env={**os.environ, **bot_env},
    )
    assert [json.loads(line)["deployment_id"] for line in recent.stdout.splitlines()] == ["d-new"]
    bad = cli("audit", "export", "--since", "yesterday", env={**os.environ, **bot_env})
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr


def test_socket_mode_needs_an_app_level_token() -> None:
    result = cli(
        "socket",
        env=clean_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN="xoxb-not-an-app-token",
            REDIS_URL="redis://127.0.0.1:1/0",
        ),
    )
    assert result.returncode != 0
    assert "SLACK_APP_TOKEN must be an app-level token (xapp-…)" in result.stderr
    assert "Traceback" not in result.stderr
