"""`ecs-deploy-bot environments import`: the registry rebuilt from the environment branches after
Redis lost it — real git (bare remote under tmp_path), real Redis, moto for the state objects, the
command run through click's CliRunner."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import boto3
import pytest
import redis
from click.testing import CliRunner, Result

from bot.cli import main
from core.environments import EnvironmentStatus
from core.lifecycle import DeploymentKind
from core.models import Deployment
from storage.environments import EnvironmentStore
from tests.harness.records import deployment_request
from tests.harness.secrets import ARTIFACT_KEY
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.tfrepo import git
from tests.test_environment_record import applied_deployment, bare_repo, config_runtime
from workers.environments import record_apply, run_commit_config
from workers.runtime import Runtime

KEY = deployment_request().environment_key


class ConfigRemote(NamedTuple):
    """A worker's runtime whose configuration commits are pushed to `remote` (a bare repository), and
    the environment `ecs-deploy-bot environments import` reads them back with."""

    rt: Runtime
    remote: Path
    import_env: dict[str, str]

    def import_command(self) -> Result:
        return CliRunner().invoke(main, ["environments", "import"], env=self.import_env)


@pytest.fixture
def config(bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path) -> ConfigRemote:
    remote = bare_repo(tmp_path)
    rt = config_runtime(bot_env, redis_conn, tmp_path, ECS_DEPLOY_CONFIG_PUSH_URL=str(remote))
    import_env = {
        "REDIS_URL": bot_env["REDIS_URL"],
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "import-data"),
        "ECS_DEPLOY_REPO_URL": str(tmp_path / "poc-idp"),
        "ECS_DEPLOY_CONFIG_PUSH_URL": str(remote),
        "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
    }
    return ConfigRemote(rt, remote, import_env)


def applied_and_committed(rt: Runtime, api: SlackApiStandIn, deployment: Deployment) -> None:
    record_apply(rt, deployment, {"alb_dns": {"value": "web.example", "sensitive": False}})
    assert run_commit_config(rt, deployment.request.environment_key, deployment.id) == "committed"


def put_state(session: boto3.Session, deployment: Deployment) -> None:
    s3 = session.client("s3")
    s3.create_bucket(Bucket=deployment.request.state_bucket)
    s3.put_object(Bucket=deployment.request.state_bucket, Key=deployment.request.state_key, Body=b"{}")


def test_import_after_a_flush_rebuilds_the_environment_and_is_idempotent(
    config: ConfigRemote, redis_conn: redis.Redis, slack_api: SlackApiStandIn, deployer_session: boto3.Session
) -> None:
    rt, remote, _ = config
    created = applied_deployment(rt, slack_api)
    applied_and_committed(rt, slack_api, created)
    changed = applied_deployment(
        rt,
        slack_api,
        request=deployment_request(size="medium", additional_tags={"team": "payments"}),
        kind=DeploymentKind.CHANGE,
        extra_values={
            "sns_monitoring_recepients_email_list": ["oncall@example.com"],
            "route53_dns_name": "x.example",
        },
    )
    applied_and_committed(rt, slack_api, changed)
    put_state(deployer_session, changed)
    store = EnvironmentStore(redis_conn)
    original = store.find(KEY)
    assert original is not None

    redis_conn.flushall()
    assert store.find(KEY) is None
    result = config.import_command()

    assert result.exit_code == 0, result.output
    assert f"{KEY}: imported" in result.output and "1 of 1 environment(s) imported" in result.output
    assert "does not give the committed file" not in result.output  # regeneration reproduced the file
    imported = store.find(KEY)
    assert imported is not None
    assert imported.key == original.key
    assert imported.request == original.request
    assert imported.extra_values == original.extra_values
    assert imported.repo_commit == original.repo_commit
    assert imported.tfvars_sha256 == original.tfvars_sha256
    assert imported.status is EnvironmentStatus.LIVE
    assert [c.deployment_id for c in imported.changes] == [created.id, changed.id]
    assert [c.model_dump(exclude={"applied_at", "summary"}) for c in imported.changes] == [
        c.model_dump(exclude={"applied_at", "summary"}) for c in original.changes
    ]
    assert imported.config is not None and imported.config.commit == git(
        remote, "rev-parse", f"refs/heads/ecs-deploy/{KEY}"
    )

    again = config.import_command()
    assert again.exit_code == 0, again.output
    reimported = store.find(KEY)
    assert reimported is not None
    assert [c.deployment_id for c in reimported.changes] == [created.id, changed.id]
    assert reimported.deployments == [created.id, changed.id]


def test_import_reports_a_missing_state_object_and_an_unreadable_branch(
    config: ConfigRemote, redis_conn: redis.Redis, slack_api: SlackApiStandIn, aws: object, tmp_path: Path
) -> None:
    rt, remote, _ = config
    applied_and_committed(rt, slack_api, applied_deployment(rt, slack_api))
    git(tmp_path / "poc-idp", "push", "--quiet", str(remote), "main:refs/heads/ecs-deploy/not-an-environment")
    redis_conn.flushall()

    result = config.import_command()

    assert result.exit_code == 1, result.output
    request = deployment_request()
    assert f"{KEY}: state missing" in result.output
    assert f"s3://{request.state_bucket}/{request.state_key}" in result.output
    assert "not-an-environment: unreadable" in result.output
    assert "0 of 2 environment(s) imported" in result.output
    assert EnvironmentStore(redis_conn).all() == []


def test_import_keeps_a_registry_record_newer_than_the_branch(
    config: ConfigRemote, redis_conn: redis.Redis, slack_api: SlackApiStandIn, deployer_session: boto3.Session
) -> None:
    """The newest apply's push failed (its commit is not on the branch yet): importing with Redis
    still there must not roll the environment back to the branch's older values and commit — the
    next change would start from them and plan against the live state."""
    rt = config.rt
    created = applied_deployment(rt, slack_api)
    applied_and_committed(rt, slack_api, created)
    changed = applied_deployment(
        rt, slack_api, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
    )
    record_apply(rt, changed, {})  # recorded; its config commit has not reached the remote
    put_state(deployer_session, changed)
    store = EnvironmentStore(redis_conn)
    before = store.find(KEY)
    assert before is not None and before.request.size.value == "medium"

    result = config.import_command()

    assert result.exit_code == 0, result.output
    after = store.find(KEY)
    assert after is not None
    assert after.request == before.request
    assert (after.repo_commit, after.tfvars_sha256) == (before.repo_commit, before.tfvars_sha256)
    assert [c.deployment_id for c in after.changes] == [created.id, changed.id]
