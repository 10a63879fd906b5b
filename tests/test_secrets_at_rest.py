"""Secrets at rest and Redis content that must not steer a worker (issue 10, findings 2 and 9).

- After a real plan of a configuration with a `sensitive` variable, no Redis value of any type holds
  the value in clear (zlib/gzip data, zip members and base64 looked into); RQ's job data is JSON, not
  pickle; nothing under the worker's data directory is readable by other users.
- Artifacts are authenticated: rotation (old keys decrypt, the first key encrypts), a changed token
  or one moved to another name is refused with an ArtifactError.
- A pickled job put into Redis is not run; a path in a deployment record that leaves the workspace
  is refused before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import os
import pickle
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet, InvalidToken

from core.models import (
    AccountSituation,
    DeploymentRequest,
    DeploymentStatus,
    WorkspaceRecord,
)
from core.settings import ConfigurationError, Settings, load_settings
from core.tfvars.type_constraints import parse_variables
from storage.artifacts import ArtifactError, generate_key
from storage.queue import Step, enqueue_step, fetch_job
from storage.store import DeploymentStore
from tests.harness.flow import REQUESTER, PipelineRun
from tests.harness.processes import cli, run_worker_burst
from tests.harness.records import deployment_record, deployment_request
from tests.harness.secrets import ARTIFACT_KEY, artifact_cipher, artifact_store
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.tfrepo import TFREPO, git
from tests.test_cli import clean_env
from workers.workspace import WorkspaceError, inside

SECRET = str(parse_variables((TFREPO / "variables.tf").read_text())["rds_master_password"].default)


# -- what a Redis value can hide --------------------------------------------------------------------


def expand(blob: bytes, depth: int = 0) -> Iterator[bytes]:
    """The value and everything inside it: zlib/gzip data, zip members, base64 text (recursively)."""
    yield blob
    if depth > 3 or len(blob) < 8:
        return
    inner: list[bytes] = []
    for wbits in (zlib.MAX_WBITS, 16 + zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib, gzip, raw deflate
        with contextlib.suppress(zlib.error):
            inner.append(zlib.decompress(blob, wbits))
    if b"PK\x03\x04" in blob:
        try:
            with zipfile.ZipFile(io.BytesIO(blob[blob.index(b"PK\x03\x04") :])) as archive:
                inner.extend(archive.read(name) for name in archive.namelist())
        except (zipfile.BadZipFile, OSError, EOFError):
            pass
    for text in re.findall(rb"[A-Za-z0-9+/=_-]{16,}", blob):
        padded = text + b"=" * (-len(text) % 4)
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                inner.append(decode(padded))
    for part in inner:
        if part != blob:
            yield from expand(part, depth + 1)


def redis_values(connection: redis.Redis) -> Iterator[tuple[str, bytes]]:
    """(key, blob) for every key of every type: names, values, fields, members and stream entries."""
    for raw_key in connection.scan_iter(count=500):
        key = raw_key.decode(errors="replace")
        kind = connection.type(raw_key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        blobs: list[bytes] = [raw_key]
        if kind == "string":
            blobs.append(connection.get(raw_key) or b"")
        elif kind == "hash":
            for field, value in connection.hgetall(raw_key).items():
                blobs += [field, value]
        elif kind == "list":
            blobs += connection.lrange(raw_key, 0, -1)
        elif kind == "set":
            blobs += list(connection.smembers(raw_key))
        elif kind == "zset":
            blobs += [member for member, _ in connection.zrange(raw_key, 0, -1, withscores=True)]
        elif kind == "stream":
            for entry_id, fields in connection.xrange(raw_key):
                blobs.append(entry_id)
                for field, value in fields.items():
                    blobs += [field, value]
        else:
            raise AssertionError(f"{key}: a Redis type the scan does not read ({kind})")
        for blob in blobs:
            yield key, blob if isinstance(blob, bytes) else str(blob).encode()


def keys_holding(connection: redis.Redis, needle: bytes) -> list[str]:
    return sorted({key for key, blob in redis_values(connection) if any(needle in b for b in expand(blob))})


def readable_by_others(root: Path) -> list[str]:
    """Everything under `root` (itself included) with any group or other permission bit."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


# -- the black box -----------------------------------------------------------------------------------


def test_after_a_plan_no_secret_is_in_redis_in_clear_jobs_are_json_and_the_data_dir_is_private(
    pipeline_run: PipelineRun, redis_conn: redis.Redis
) -> None:
    store, pipeline_env = pipeline_run.store, pipeline_run.env
    deployment_id = pipeline_run.new_account_at_plan_stage("V-SECRETS")
    log = run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval", log[-6000:]
    assert deployment.plan is not None

    # The plan file does hold the sensitive value: the scan below would find it in clear.
    plan = artifact_store(redis_conn).get(
        deployment_id, f"plan-{deployment.plan.attempt}", deployment.plan.sha256
    )
    assert plan.startswith(b"PK") and any(SECRET.encode() in part for part in expand(plan))
    # ...stored in clear as before, or compressed into a hash field, or base64 in a stream, it is found
    redis_conn.set("probe:clear", plan)
    redis_conn.hset("probe:hash", "data", zlib.compress(plan))
    redis_conn.xadd("probe:stream", {"b64": base64.b64encode(plan)})
    assert keys_holding(redis_conn, SECRET.encode()) == ["probe:clear", "probe:hash", "probe:stream"]
    redis_conn.delete("probe:clear", "probe:hash", "probe:stream")

    artifacts = redis_conn.keys("ecs-deploy:artifact:*")
    assert {k.decode().rsplit(":", 1)[1] for k in artifacts} == {"tfvars", "tfbackend", "plan-1"}
    for key in artifacts:
        token = redis_conn.get(key) or b""
        assert Fernet(ARTIFACT_KEY).decrypt(token), key  # a Fernet token under the configured key
        assert 0 < redis_conn.ttl(key) <= 24 * 3600 + 3600, "expires with its approval, not in 30 days"

    assert keys_holding(redis_conn, SECRET.encode()) == []

    jobs = [k for k in redis_conn.scan_iter("rq:job:*") if redis_conn.type(k) in (b"hash", "hash")]
    assert jobs, "the pipeline's jobs are still in Redis"
    for key in jobs:
        for field in (b"data", b"meta"):
            raw = redis_conn.hget(key, field)
            if raw is None:
                continue
            payload = zlib.decompress(raw) if field == b"data" else raw
            assert not payload.startswith(b"\x80"), f"{key!r} {field!r} is a pickle"
            json.loads(payload)

    data_dir = Path(pipeline_env["ECS_DEPLOY_DATA_DIR"])
    assert deployment.workspace is not None
    assert (data_dir / "workspaces" / deployment_id / deployment.workspace.tfvars_path).is_file()
    assert list(data_dir.rglob("*-plan.log")), "the walk covers the generated files and Terraform's logs"
    assert readable_by_others(data_dir) == []


def test_a_pickled_job_put_into_redis_is_not_run(
    redis_conn: redis.Redis, bot_env: dict[str, str], tmp_path: Path
) -> None:
    """Someone who can write to Redis replaces a queued job's data with a pickle that runs code."""
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    deployment = deployment_record(REQUESTER, request=_request())
    DeploymentStore(redis_conn).create(deployment)
    job = enqueue_step(redis_conn, Settings.model_validate({}), Step.VERIFY, deployment.id)
    redis_conn.hset(job.key, "data", zlib.compress(pickle.dumps(Payload(), protocol=pickle.HIGHEST_PROTOCOL)))

    run_worker_burst({**bot_env, "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data")})

    assert not marker.exists(), "the worker unpickled job data from Redis"
    assert fetch_job(redis_conn, job.id).get_status() == "failed"


def test_a_record_path_outside_the_workspace_is_refused_before_anything_is_written(
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    pipeline_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """A deployment record in Redis names its tfvars `../../../escape.tfvars`: the worker rebuilding
    the workspace must not write the artifact there."""
    commit = git(Path(pipeline_env["ECS_DEPLOY_REPO_URL"]), "rev-parse", "HEAD")
    data_dir = Path(pipeline_env["ECS_DEPLOY_DATA_DIR"])
    escape = data_dir.parent / "escape.tfvars"
    deployment = deployment_record(REQUESTER, request=_request())
    artifacts = artifact_store(redis_conn)
    tfvars_sha = artifacts.put(deployment.id, "tfvars", b'region = "us-east-1"\n')
    backend_sha = artifacts.put(deployment.id, "tfbackend", b'bucket = "b"\n')
    deployment = deployment.model_copy(
        update={
            "status": DeploymentStatus.PREPARING_WORKSPACE,
            "repo_commit": commit,
            "workspace": WorkspaceRecord(
                commit=commit,
                tfvars_path="../../../escape.tfvars",
                tfbackend_path="tfbackends/x.tfbackend",
                tfvars_sha256=tfvars_sha,
                tfbackend_sha256=backend_sha,
            ),
        }
    )
    store = DeploymentStore(redis_conn)
    store.create(deployment)
    enqueue_step(redis_conn, Settings.model_validate({}), Step.PLAN, deployment.id)

    run_worker_burst(pipeline_env)

    assert not escape.exists(), "the artifact was written outside the workspace"
    after = store.get(deployment.id)
    assert after.status is DeploymentStatus.FAILED
    assert "outside the deployment's workspace" in (after.status_detail or "") + "\n".join(
        slack_api.thread_texts(after.thread_ts or "")
    )


# -- the artifact store ----------------------------------------------------------------------------


def test_rotation_the_first_key_encrypts_and_every_key_decrypts(redis_conn: redis.Redis) -> None:
    old, new = ARTIFACT_KEY, generate_key()
    digest = artifact_store(redis_conn, old).put("d-1", "plan-1", b"made under the old key")

    rotated = artifact_store(redis_conn, new, old)
    assert rotated.get("d-1", "plan-1", digest) == b"made under the old key"

    digest = rotated.put("d-1", "plan-2", b"made under the new key")
    token = redis_conn.get("ecs-deploy:artifact:d-1:plan-2") or b""
    assert b"made under the new key" in Fernet(new).decrypt(token)
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(token)
    with pytest.raises(ArtifactError, match="could not be authenticated"):
        artifact_store(redis_conn, old).get("d-1", "plan-2", digest)
    assert artifact_store(redis_conn, new).get("d-1", "plan-2", digest) == b"made under the new key"


def test_a_tampered_artifact_is_refused(redis_conn: redis.Redis) -> None:
    store = artifact_store(redis_conn)
    digest = store.put("d-1", "plan-1", b"a saved terraform plan")
    key = "ecs-deploy:artifact:d-1:plan-1"
    token = bytearray(base64.urlsafe_b64decode(redis_conn.get(key) or b""))
    token[40] ^= 0x01  # one bit of the ciphertext
    redis_conn.set(key, base64.urlsafe_b64encode(bytes(token)))
    with pytest.raises(ArtifactError, match="could not be authenticated"):
        store.get("d-1", "plan-1", digest)

    redis_conn.set(key, b"a saved terraform plan")  # plain bytes put back, with their right hash
    with pytest.raises(ArtifactError, match="could not be authenticated"):
        store.get("d-1", "plan-1", digest)


def test_an_artifact_moved_to_another_deployment_is_refused(redis_conn: redis.Redis) -> None:
    store = artifact_store(redis_conn)
    digest = store.put("d-1", "plan-1", b"deployment one's plan")
    redis_conn.copy("ecs-deploy:artifact:d-1:plan-1", "ecs-deploy:artifact:d-2:plan-1")
    with pytest.raises(ArtifactError, match="wrong name"):
        store.get("d-2", "plan-1", digest)
    assert (
        artifact_cipher().decrypt(
            "d-1", "plan-1", redis_conn.get("ecs-deploy:artifact:d-1:plan-1") or b"", max_age_seconds=60
        )
        == b"deployment one's plan"
    )


def test_an_expired_token_is_refused_even_if_redis_kept_it(redis_conn: redis.Redis) -> None:
    store = artifact_store(redis_conn)
    digest = store.put("d-1", "plan-1", b"old plan")
    redis_conn.persist("ecs-deploy:artifact:d-1:plan-1")
    store.ttl_seconds = -1  # as if the approval's lifetime had passed
    with pytest.raises(ArtifactError, match="expired"):
        store.get("d-1", "plan-1", digest)


# -- paths from records ----------------------------------------------------------------------------


def test_inside_refuses_paths_that_leave_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "workspaces" / "d-1"
    (workspace / "tfvars").mkdir(parents=True)
    (workspace / "linked").symlink_to(tmp_path)
    assert inside(workspace, "tfvars/a.tfvars") == (workspace / "tfvars" / "a.tfvars").resolve()
    for bad in (
        "../d-2/tfvars/a.tfvars",
        "tfvars/../../../x",
        "/etc/passwd",
        str(tmp_path / "x"),
        "linked/x",
        "",
        ".",
    ):
        with pytest.raises(WorkspaceError, match="outside the deployment's workspace"):
            inside(workspace, bad)


# -- the setting --------------------------------------------------------------------------------------


def test_the_key_setting_is_checked_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_DEPLOY_ARTIFACT_KEY", f"{ARTIFACT_KEY},not-a-key-but-a-secret")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert "ECS_DEPLOY_ARTIFACT_KEY" in str(error.value) and "key 2 of 2" in str(error.value)
    assert "not-a-key-but-a-secret" not in str(error.value) and ARTIFACT_KEY not in str(error.value)

    new = generate_key()
    monkeypatch.setenv("ECS_DEPLOY_ARTIFACT_KEY", f" {new} , {ARTIFACT_KEY} ")
    assert load_settings().artifact_keys == [new, ARTIFACT_KEY]
    monkeypatch.delenv("ECS_DEPLOY_ARTIFACT_KEY")
    with pytest.raises(ConfigurationError, match="ECS_DEPLOY_ARTIFACT_KEY"):
        load_settings().require_artifact_key()


@pytest.mark.parametrize("command", ["web", "worker"])
def test_web_and_worker_refuse_to_start_without_the_key(command: str, bot_env: dict[str, str]) -> None:
    env = clean_env(**{k: v for k, v in bot_env.items() if k != "ECS_DEPLOY_ARTIFACT_KEY"})
    result = cli(command, *(["--burst"] if command == "worker" else []), env=env)
    assert result.returncode != 0
    assert "Missing setting ECS_DEPLOY_ARTIFACT_KEY" in result.stderr and "Traceback" not in result.stderr


def test_doctor_checks_the_key_and_the_stored_artifacts(
    bot_env: dict[str, str], redis_conn: redis.Redis, aws: object
) -> None:
    artifact_store(redis_conn, generate_key()).put("d-1", "plan-1", b"made under a key since removed")
    artifact_store(redis_conn).put("d-2", "plan-1", b"made under the current key")
    result = cli("doctor", env=clean_env(**bot_env))
    assert (
        "✗ artifact key: 1 key(s); the first encrypts; 1 of 2 stored artifacts cannot be read"
        in result.stdout
    )
    assert ARTIFACT_KEY not in result.stdout + result.stderr

    redis_conn.delete("ecs-deploy:artifact:d-1:plan-1")
    result = cli("doctor", env=clean_env(**bot_env))
    assert "✓ artifact key: 1 key(s); the first encrypts; 1 stored artifact(s) readable" in result.stdout

    result = cli(
        "doctor", env=clean_env(**{k: v for k, v in bot_env.items() if k != "ECS_DEPLOY_ARTIFACT_KEY"})
    )
    assert result.returncode == 1 and "✗ artifact key: ECS_DEPLOY_ARTIFACT_KEY is not set" in result.stdout


def test_dev_makes_one_private_key_in_the_data_dir_and_keeps_it(tmp_path: Path) -> None:
    from bot.cli import DEV_KEY_FILE, _dev_private_data

    previous = os.umask(0o022)
    try:
        settings = Settings.model_validate({"ECS_DEPLOY_DATA_DIR": str(tmp_path / "data")})
        first: dict[str, str] = {}
        _dev_private_data(settings, first)
        assert os.umask(0o077) == 0o077, "dev's processes run with umask 077"
        key_file = tmp_path / "data" / DEV_KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
        assert Fernet(first["ECS_DEPLOY_ARTIFACT_KEY"])
        second: dict[str, str] = {}
        _dev_private_data(settings, second)
        assert second == first, "the next dev (and every child of this one) uses the same key"

        given = Settings.model_validate(
            {"ECS_DEPLOY_DATA_DIR": str(tmp_path / "other"), "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY}
        )
        env: dict[str, str] = {}
        _dev_private_data(given, env)
        assert env == {} and not (tmp_path / "other" / DEV_KEY_FILE).exists()
    finally:
        os.umask(previous)


def _request() -> DeploymentRequest:
    return deployment_request(account_situation=AccountSituation.NEW)
