"""`/ecs-deploy unlock` and Terraform's own lock: a lock left in DynamoDB by the bot's dead run is
released for a lead — only when it is provably that run's (the lock ID the bot recorded), and only if
the item is unchanged — and audited; a lock of anyone else, or of a run that may be alive, is never
touched. Real web process, Redis and moto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import redis

from core.models import Deployment, DeploymentStatus, utcnow
from core.terraform_locks import TerraformLockInfo, TerraformRun
from storage.audit import AuditTrail
from storage.locks import TerraformRuns, job_heartbeat_key, state_id
from storage.store import DeploymentStore
from tests.harness.aws import put_terraform_lock
from tests.harness.flow import LEAD, REQUESTER
from tests.harness.records import deployment_record
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim

DEAD_RUNS_LOCK = "0b7c58aa-4f1d-4b8e-9d7e-5b2a6c1d3e4f"
SOMEONE_ELSES = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
WHO = "deploy@worker-1"


def interrupted_deployment(redis_conn: redis.Redis) -> Deployment:
    deployment = deployment_record(REQUESTER, team_id="T111", status=DeploymentStatus.INTERRUPTED)
    DeploymentStore(redis_conn).create(deployment)
    return deployment


def state_of(deployment: Deployment) -> str:
    return state_id(deployment.request.state_bucket, deployment.request.state_key)


def terraform_lock_left(deployment: Deployment, lock_id: str) -> str:
    """Terraform's lock item as a killed `terraform apply` leaves it; returns its Info text."""
    return put_terraform_lock(
        deployment,
        lock_id=lock_id,
        who=WHO,
        version="1.11.4",
        created=(utcnow() - timedelta(minutes=3)).isoformat().replace("+00:00", "Z"),
    )


def recorded_run(
    redis_conn: redis.Redis, deployment: Deployment, recorded_info: str, **changes: Any
) -> TerraformRun:
    """The bot's record of the run that took the lock (its ID read back while the run went on)."""
    run = TerraformRun(
        state=state_of(deployment),
        deployment_id=deployment.id,
        job_id="job-of-the-dead-run",
        step="apply",
        host="worker-1",
        who=WHO,
        started_at=utcnow() - timedelta(minutes=4),
        command="apply",
        operation="OperationTypeApply",
        command_started_at=utcnow() - timedelta(minutes=4),
        lock=TerraformLockInfo.from_raw(recorded_info),
        outcome="interrupted",
        ended_at=utcnow() - timedelta(minutes=2),
    ).model_copy(update=changes)
    return TerraformRuns(redis_conn).begin(run)


def deployment_whose_run_left_its_lock(redis_conn: redis.Redis, **run_changes: Any) -> Deployment:
    """An interrupted deployment, Terraform's lock as its run left it (DEAD_RUNS_LOCK), and the bot's
    record of that run with the same lock ID (`run_changes` applied to the record)."""
    deployment = interrupted_deployment(redis_conn)
    info = terraform_lock_left(deployment, DEAD_RUNS_LOCK)
    recorded_run(redis_conn, deployment, info, **run_changes)
    return deployment


def lock_item(deployment: Deployment) -> dict[str, Any] | None:
    dynamodb = boto3.Session(profile_name="deployer", region_name="us-east-1").client("dynamodb")
    reply = dynamodb.get_item(
        TableName=deployment.request.lock_table,
        Key={"LockID": {"S": state_of(deployment)}},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = reply.get("Item")
    return item


def unlock(bot: SlackClientSim, api: SlackApiStandIn, deployment: Deployment, user: str) -> str:
    response = bot.slash_command(f"unlock {deployment.id}", user=user)
    assert response.status_code == 200 and "holds no lock" in response.text, response.text
    return str(
        api.wait_for(
            "chat.postEphemeral",
            lambda c: c.params.get("user") == user and "Terraform's own lock" in c.params.get("text", ""),
            timeout=15,
        ).params["text"]
    )


def released_events(redis_conn: redis.Redis, deployment: Deployment) -> list[Any]:
    return [
        e
        for e in AuditTrail(redis_conn).for_deployment(deployment.id)
        if e.event == "terraform_lock_released"
    ]


def test_a_lead_releases_a_dead_runs_own_terraform_lock_without_force_unlock(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    deployment = deployment_whose_run_left_its_lock(redis_conn)

    told = unlock(bot, slack_api, deployment, LEAD)

    assert f"(lock ID `{DEAD_RUNS_LOCK}`) was left by the bot's dead run `{deployment.id}` (apply" in told
    assert f"the bot recorded lock ID `{DEAD_RUNS_LOCK}` when the run took it" in told
    assert f"Released for <@{LEAD}>" in told and "no `terraform force-unlock` needed" in told
    assert lock_item(deployment) is None
    [event] = released_events(redis_conn, deployment)
    assert event.actor == LEAD and event.detail["lock_id"] == DEAD_RUNS_LOCK
    assert event.detail["proof"] == "recorded lock id" and event.detail["holder_job"] == "job-of-the-dead-run"


def test_a_lock_that_is_not_the_dead_runs_is_never_touched(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    deployment = interrupted_deployment(redis_conn)
    someone_elses = terraform_lock_left(deployment, SOMEONE_ELSES)
    recorded_run(redis_conn, deployment, someone_elses.replace(SOMEONE_ELSES, DEAD_RUNS_LOCK))

    told = unlock(bot, slack_api, deployment, LEAD)

    assert f"terraform force-unlock {SOMEONE_ELSES}" in told
    assert f"The bot does not release it itself: the run took lock ID `{DEAD_RUNS_LOCK}`" in told
    item = lock_item(deployment)
    assert item is not None and item["Info"]["S"] == someone_elses
    assert released_events(redis_conn, deployment) == []


def test_the_lock_of_a_run_that_may_be_alive_is_never_touched(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    deployment = deployment_whose_run_left_its_lock(redis_conn, outcome="running", ended_at=None)
    redis_conn.set(job_heartbeat_key("job-of-the-dead-run"), "4242", ex=60)  # its job still beats

    told = unlock(bot, slack_api, deployment, LEAD)

    assert "The bot does not release it itself: the run that took it may still be running" in told
    assert lock_item(deployment) is not None
    assert released_events(redis_conn, deployment) == []


def test_only_a_lead_can_have_it_released(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    deployment = deployment_whose_run_left_its_lock(redis_conn)

    refused = bot.slash_command(f"unlock {deployment.id}", user=REQUESTER)
    assert "Only an approver (lead)" in refused.text
    assert lock_item(deployment) is not None
    assert released_events(redis_conn, deployment) == []
