"""A Redis without persistence (issue 11, section 3).

Reproduced: `doctor` said "✓ redis: ping ok" for a Redis with `appendonly no` and `save ""`; web and
workers said nothing; after that Redis restarted every record was gone and nobody was told; and the
embedded Redis's `--save "60 1"` had no effect on the bundled Redis 6.2. Here: the persistence rule
and the data-loss marker (pure, then on a real Redis), `doctor`, the web and worker start-up
warnings, a real restart of a Redis without persistence under a running web and worker, and the
embedded Redis that `dev` starts."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from slack_sdk import WebClient
from structlog.testing import capture_logs

from bot.doctor import check_redis
from bot.embedded_redis import EmbeddedRedis
from bot.notifier import Notifier
from bot.store_watch import StoreWatch
from core.models import Deployment, DeploymentStatus, utcnow
from core.persistence import (
    MarkerState,
    PersistenceFacts,
    assess_persistence,
    marker_state,
    save_points,
    threads_to_warn,
)
from core.settings import Settings
from storage.persistence import MARKER_KEY, StoreMarker, read_persistence
from storage.store import DeploymentStore
from tests.harness.dev import DevProcess, console_script
from tests.harness.processes import WebProcess, background_workers, run_worker_burst
from tests.harness.records import deployment_record
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SIGNING_SECRET

BOUND = 60.0  # generous waits: these tests fail on a hang, they do not measure speed
NOTICE = "lost this deployment's record"
SCHEDULER_LOCK = "rq:scheduler-lock:ecs-deploy"


def deployment(
    status: DeploymentStatus, *, thread_ts: str | None = "1600000000.000001", **kw: object
) -> Deployment:
    return deployment_record("U0REQUESTER", thread_ts=thread_ts, status=status).model_copy(update=kw)


def eventually(check: object, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


# -- the rule: what counts as persistent (pure) ---------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "level", "says"),
    [
        (PersistenceFacts(appendonly=True, save=""), "ok", "append-only file"),
        (
            PersistenceFacts(appendonly=True, save="3600 1 300 100"),
            "ok",
            "RDB snapshots (save 3600 1 300 100)",
        ),
        (PersistenceFacts(appendonly=False, save=""), "warn", "persistence is off"),
        (PersistenceFacts(appendonly=False, save="60 1"), "warn", "only RDB snapshots (save 60 1)"),
        (
            PersistenceFacts(appendonly=True, config_refused="ERR unknown command 'CONFIG'"),
            "ok",
            "aof_enabled:1",
        ),
        (PersistenceFacts(appendonly=False, config_refused="NOPERM"), "warn", "refuses CONFIG GET (NOPERM)"),
        (
            PersistenceFacts(appendonly=None, config_refused="ERR unknown command"),
            "warn",
            "provider's settings",
        ),
    ],
)
def test_what_counts_as_persistent(facts: PersistenceFacts, level: str, says: str) -> None:
    verdict = assess_persistence(facts)
    assert verdict.level == level
    assert says in verdict.detail


def test_save_points_are_read_as_pairs() -> None:
    assert save_points("3600 1 300 100 60 10000") == [(3600, 1), (300, 100), (60, 10000)]
    assert save_points("") == []
    assert save_points("60") == []
    assert save_points("abc 1 0 5") == []


def test_the_marker_rule() -> None:
    assert marker_state("a", "a") is MarkerState.INTACT
    assert marker_state("a", None) is MarkerState.MISSING
    assert marker_state("a", "b") is MarkerState.REPLACED


def test_threads_told_about_a_loss_are_those_in_flight_or_finished_recently() -> None:
    now = utcnow()
    waiting = deployment(DeploymentStatus.AWAITING_APPROVAL, updated_at=now - timedelta(days=3))
    no_thread = deployment(DeploymentStatus.PLANNING, thread_ts=None)
    just_deployed = deployment(DeploymentStatus.DEPLOYED, updated_at=now - timedelta(hours=1))
    long_done = deployment(DeploymentStatus.DEPLOYED, updated_at=now - timedelta(days=3))
    picked = threads_to_warn([waiting, no_thread, just_deployed, long_done], now)
    assert [d.id for d in picked] == [waiting.id, just_deployed.id]


# -- on a real Redis -------------------------------------------------------------------------------


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


def test_doctor_warns_about_a_redis_without_persistence(redis_server: EmbeddedRedis) -> None:
    """The issue's Redis (appendonly no, save ""): doctor used to say "ping ok" and nothing else."""
    facts = read_persistence(redis.Redis.from_url(redis_server.url))
    assert facts == PersistenceFacts(appendonly=False, save="")
    check = check_redis(Settings(REDIS_URL=redis_server.url))
    assert check.level == "warn"
    assert "persistence is off" in check.detail and "appendonly yes" in check.detail


def test_the_doctor_command_warns_about_it(bot_env: dict[str, str], aws: object) -> None:
    result = subprocess.run(
        [*console_script(), "doctor"],
        env={**os.environ, **bot_env},
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    assert "! redis: ping ok; persistence is off" in result.stdout, result.stdout + result.stderr


def test_doctor_is_happy_with_the_append_only_file(persistent_redis: EmbeddedRedis) -> None:
    check = check_redis(Settings(REDIS_URL=persistent_redis.url))
    assert check.level == "ok"
    assert check.detail == "ping ok; persistence on: append-only file and RDB snapshots (save 60 1)"


@pytest.mark.parametrize("persistent", [False, True])
def test_doctor_says_plainly_when_a_managed_redis_forbids_config(tmp_path: Path, persistent: bool) -> None:
    """Managed Redis services (ElastiCache, …) rename CONFIG away; INFO still tells about the AOF."""
    server = EmbeddedRedis(
        tmp_path / "redis", persistent=persistent, extra_args=["--rename-command", "CONFIG", ""]
    ).start()
    try:
        check = check_redis(Settings(REDIS_URL=server.url))
    finally:
        server.stop()
    if persistent:
        assert check.level == "ok" and "CONFIG GET refused" in check.detail
    else:
        assert check.level == "warn"
        assert "refuses CONFIG GET (unknown command" in check.detail
        assert "append-only file is off" in check.detail


def test_an_acl_without_config_is_named(persistent_redis: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(persistent_redis.url)
    admin.acl_setuser("bot", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-config"])
    facts = read_persistence(
        redis.Redis(host="127.0.0.1", port=persistent_redis.port, username="bot", password="pw")
    )
    assert facts.appendonly is True and facts.config_refused and "no permissions" in facts.config_refused


def test_the_embedded_redis_persists_across_a_crash(persistent_redis: EmbeddedRedis) -> None:
    """`--save "60 1"` as one argument left Redis 6.2 with no snapshot rule; now both are really on,
    and data survives a SIGKILL (the append-only file), not only a clean SHUTDOWN SAVE."""
    connection = redis.Redis.from_url(persistent_redis.url)
    assert connection.config_get("appendonly") == {"appendonly": "yes"}
    assert connection.config_get("save") == {"save": "60 1"}
    connection.set("ecs-deploy:probe", "kept")

    persistent_redis.kill()
    persistent_redis.start()

    assert connection.get("ecs-deploy:probe") == b"kept"


def test_without_persistence_a_restart_loses_everything(tmp_path: Path) -> None:
    """The condition the rest of this file detects and reports."""
    server = EmbeddedRedis(tmp_path / "redis", persistent=False).start()
    try:
        connection = redis.Redis.from_url(server.url)
        connection.set("ecs-deploy:probe", "kept")
        server.stop()
        server.start()
        assert connection.get("ecs-deploy:probe") is None
    finally:
        server.stop()


def test_the_marker_finds_a_loss_once_per_process(redis_conn: redis.Redis) -> None:
    first, second = StoreMarker(redis_conn), StoreMarker(redis_conn)
    seen = first.ensure()
    assert second.ensure() == seen  # one marker per store, whoever starts first
    assert first.check().state is MarkerState.INTACT

    redis_conn.flushall()  # what a restart without persistence leaves

    lost = first.check()
    assert lost.state is MarkerState.MISSING and lost.previous == seen and lost.current != seen
    assert redis_conn.get(MARKER_KEY) == lost.current.encode()
    adopted = second.check()  # the other process finds the new marker: a loss for it too
    assert adopted.state is MarkerState.REPLACED and adopted.current == lost.current
    assert first.check().state is MarkerState.INTACT and second.check().state is MarkerState.INTACT


def test_the_web_reports_a_loss_once_and_adopts_the_marker_a_worker_writes(redis_conn: redis.Redis) -> None:
    web, worker = StoreMarker(redis_conn, writer=False), StoreMarker(redis_conn)
    seen = web.ensure()  # at start every process writes it if the store has none
    assert worker.ensure() == seen

    redis_conn.flushall()

    lost = web.check()
    assert lost is not None and lost.state is MarkerState.MISSING and lost.current is None
    assert redis_conn.get(MARKER_KEY) is None  # the web does not write it again
    assert web.check() is None  # reported once: nothing to compare with until a worker writes one
    written = worker.check()
    assert written is not None and written.state is MarkerState.MISSING and written.current
    assert web.check() is None  # adopted quietly
    intact = web.check()
    assert intact is not None and intact.state is MarkerState.INTACT and intact.previous == written.current


def test_each_thread_is_told_once_however_many_processes_notice(
    redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url)
    root = str(client.chat_postMessage(channel="C_DEPLOYS", text="root")["ts"])
    waiting = deployment(DeploymentStatus.AWAITING_APPROVAL, thread_ts=root)
    long_done = deployment(DeploymentStatus.DEPLOYED, updated_at=utcnow() - timedelta(days=3))
    store = DeploymentStore(redis_conn)
    for d in (waiting, long_done):
        store.create(d)
    watches = [StoreWatch(redis_conn, Notifier(client, store), role="worker").start() for _ in range(3)]

    redis_conn.flushall()
    with capture_logs() as logs:
        results = [watch.check() for watch in watches]

    assert all(result is not None and result.lost for result in results)
    assert [entry["log_level"] for entry in logs if entry["event"] == "redis_data_lost"] == ["error"] * 3
    notices = [t for t in slack_api.thread_texts(root) if NOTICE in t]
    assert len(notices) == 1
    assert [t for t in slack_api.thread_texts(long_done.thread_ts or "") if NOTICE in t] == []
    [update] = [c for c in slack_api.calls_to("chat.update") if c.params.get("ts") == root]
    assert "Record lost" in str(update.params.get("blocks"))
    again = [watch.check() for watch in watches]
    assert all(result is not None and not result.lost for result in again)


# -- the processes ---------------------------------------------------------------------------------


def test_web_and_worker_warn_at_start_about_a_redis_without_persistence(
    bot_env: dict[str, str], redis_conn: redis.Redis
) -> None:
    web = WebProcess(bot_env).start()
    web_log = web.stop()
    worker_log = run_worker_burst(bot_env)
    for log in (web_log, worker_log):
        assert "redis_persistence_off" in log and "persistence is off" in log, log[-3000:]


def test_a_restart_without_persistence_is_found_logged_and_told_in_the_threads(
    bot_env: dict[str, str], slack_api: SlackApiStandIn, tmp_path: Path
) -> None:
    """The issue's run: a deployment waits for approval, Redis (no persistence) restarts. Before, the
    thread said "Waiting for approval" forever; now the worker tells the thread and both log it."""
    server = EmbeddedRedis(tmp_path / "redis", persistent=False).start()
    env = {**bot_env, "REDIS_URL": server.url, "ECS_DEPLOY_SWEEP_INTERVAL": "1"}
    connection = redis.Redis.from_url(server.url)
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url)
    root = str(client.chat_postMessage(channel="C_DEPLOYS", text="ECS deployment requested")["ts"])
    DeploymentStore(connection).create(deployment(DeploymentStatus.AWAITING_APPROVAL, thread_ts=root))
    web = WebProcess(env).start()
    web_log = ""
    try:
        with background_workers(env, [tmp_path / "worker"]):
            # up and running: registered, and past RQ's start-up, which does not survive Redis going away
            eventually(
                lambda: connection.scard("rq:workers") == 1 and connection.exists(SCHEDULER_LOCK),
                "the worker and its scheduler started",
            )

            server.stop()  # no persistence: it comes back empty
            server.start()

            slack_api.wait_for(
                "chat.postMessage",
                lambda c: c.params.get("thread_ts") == root and NOTICE in c.params.get("text", ""),
                timeout=BOUND,
            )
            slack_api.wait_for(
                "chat.update",
                lambda c: c.params.get("ts") == root and "record lost" in c.params.get("text", ""),
            )
            web_log = read_until(web, "redis_data_lost")
    finally:
        web_log += web.stop()
        server.stop()
    assert "redis_data_lost" in web_log, web_log[-3000:]


def read_until(web: WebProcess, text: str) -> str:
    """The web process's log so far, read until `text` shows up (or the bound passes)."""
    assert web.process is not None and web.process.stdout is not None
    fd, seen = web.process.stdout.fileno(), b""
    deadline = time.monotonic() + BOUND
    while text.encode() not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


# -- the embedded Redis `dev` starts ---------------------------------------------------------------


def test_the_redis_dev_starts_has_persistence_on_and_keeps_data_across_a_crash(
    slack_api: SlackApiStandIn, tmp_path: Path
) -> None:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api.base_url,
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
    }
    first = DevProcess(env, tmp_path).start()
    try:
        connection = redis.Redis.from_url(first.redis_url)
        assert connection.config_get("appendonly") == {"appendonly": "yes"}
        assert connection.config_get("save") == {"save": "60 1"}
        connection.set("ecs-deploy:probe", "kept")
        [redis_pid] = [pid for pid, command in first.snapshot().items() if "redis-server" in command]

        os.kill(redis_pid, signal.SIGKILL)  # a crash: nothing is saved on the way out
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        assert first.wait(BOUND) is not None
    finally:
        first.kill()

    second = DevProcess(env, tmp_path).start()
    try:
        assert redis.Redis.from_url(second.redis_url).get("ecs-deploy:probe") == b"kept"
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert second.wait(BOUND) == 0
    finally:
        second.kill()
