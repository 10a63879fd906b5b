"""A drift check plans against the environment's committed configuration, built from the registry
alone (workers/environments.py `environment_workspace`): it works after the last apply's stored
tfvars/tfbackend have gone from Redis and on a worker that never had the workspace; and a registry
whose request and values no longer regenerate the recorded tfvars makes the check fail, saying to run
`environments import`. Real parts: the pipeline applies the environment (Terraform on tests/tfrepo,
state in moto's S3), burst workers run the checks, the Slack stand-in receives the drift message."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
import redis

from core.drift import CheckOutcome, DriftRecord
from core.environments import Environment
from core.settings import Settings
from storage.artifacts import KEY_PREFIX
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from storage.queue import enqueue_drift_check
from tests.harness.flow import PipelineRun, created_environment, edit_state_outside_terraform
from tests.harness.processes import run_worker_burst
from tests.test_drift import _channel_posts

pytestmark = pytest.mark.e2e


def _check_now(
    redis_conn: redis.Redis, env: dict[str, str], key: str, name: str, data_dir: Path
) -> DriftRecord:
    """`/ecs-deploy drift`'s job for `key`, run by a burst worker whose data directory is `data_dir`."""
    settings = Settings.model_validate({"REDIS_URL": env["REDIS_URL"]})
    enqueue_drift_check(redis_conn, settings, key, job_id=f"drift-{key}-now-{name}")
    run_worker_burst(env, data_dir=data_dir)
    record = DriftStore(redis_conn).get(key)
    assert record is not None
    return record


def test_a_check_needs_neither_the_stored_artifacts_nor_the_workspace(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    deployment_id = created_environment(pipeline_run, "V-DRIFT-COMMITTED")
    deployment = pipeline_run.store.get(deployment_id)
    key = deployment.request.environment_key
    environments = EnvironmentStore(redis_conn)
    assert environments.find(key) is not None

    # what expires is gone: the apply's encrypted tfvars/tfbackend, and the worker's workspace
    artifacts = list(redis_conn.scan_iter(match=f"{KEY_PREFIX}*"))
    assert artifacts, "the apply stored its artifacts"
    redis_conn.delete(*artifacts)
    workspace = Path(pipeline_run.env["ECS_DEPLOY_DATA_DIR"]) / "workspaces" / deployment_id
    assert workspace.is_dir()
    shutil.rmtree(workspace)

    session = boto3.Session(profile_name="deployer", region_name="us-east-1")
    edit_state_outside_terraform(session, deployment.request.state_bucket)
    env = {**pipeline_run.env, "ECS_DEPLOY_DRIFT_INTERVAL": "0"}  # no scheduled checks besides these
    fresh = tmp_path / "worker-fresh"  # a worker that never saw this environment
    record = _check_now(redis_conn, env, key, "first", fresh)
    assert record.last_check is not None
    assert record.last_check.outcome is CheckOutcome.CHECKED, record.last_check.detail
    report = record.last_check.report
    assert report is not None and report.has_drift
    assert any("ecs_service" in r.address for r in report.resources), report.resources
    assert len(_channel_posts(pipeline_run.api, deployment.channel_id, "Drift detected")) == 1
    assert (fresh / "workspaces" / f"drift-{key}" / ".git").is_dir(), "the check's own workspace"

    # the registry no longer regenerates the committed tfvars: the check fails and says what to do
    def recorded_elsewhere(current: Environment | None) -> Environment | None:
        assert current is not None
        return current.model_copy(update={"tfvars_sha256": "0" * 64})

    environments.update(key, recorded_elsewhere)
    record = _check_now(redis_conn, env, key, "mismatch", fresh)
    assert record.last_check is not None and record.last_check.outcome is CheckOutcome.FAILED
    detail = record.last_check.detail
    assert "the committed configuration and the registry disagree" in detail, detail
    assert "environments import" in detail and "000000000000" in detail, detail
    assert record.last_result is not None and record.last_result.report == report, "the last result stays"
    assert len(_channel_posts(pipeline_run.api, deployment.channel_id, "Drift")) == 1, (
        "a failure posts nothing"
    )
