"""Drift detection end to end, on real parts: an environment applied through the pipeline (real
Terraform on tests/tfrepo, state in moto's S3, lock in DynamoDB), its state changed outside the bot,
scheduled checks on a long-running worker (RQ's scheduler), the drift message in the environment's
channel, silence while the drift stays the same, Plan to reconcile → an approval-gated plan that
restores it → apply, and the drift reported resolved. Plus the pure rules (core/drift.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from core.drift import (
    CheckOutcome,
    DriftChange,
    DriftCheck,
    DriftRecord,
    acknowledge,
    after_check,
    compare,
    drift_report,
    drift_state,
)
from core.models import utcnow
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from tests.harness.flow import LEAD, REQUESTER, PipelineRun, click, edit_state_outside_terraform, eventually
from tests.harness.processes import background_workers, run_worker_burst

STATE_KEY = "terraform/web/dev/terraform.tfstate"


def _plan(resource_drift: list[dict[str, Any]], resource_changes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format_version": "1.2",
        "resource_drift": resource_drift,
        "resource_changes": resource_changes,
        "planned_values": {},
    }


def _update(
    address: str, before: dict[str, Any], after: dict[str, Any], sensitive: dict[str, Any]
) -> dict[str, Any]:
    return {
        "address": address,
        "type": address.split(".")[0],
        "mode": "managed",
        "change": {
            "actions": ["update"],
            "before": before,
            "after": after,
            "before_sensitive": sensitive,
            "after_sensitive": sensitive,
            "after_unknown": {},
        },
    }


def test_report_masks_sensitive_values_and_compares() -> None:
    outside = _update(
        "aws_db_instance.main",
        {"instance_class": "db.t4g.small", "password": "hunter2-old"},
        {"instance_class": "db.t4g.large", "password": "hunter2-new"},
        {"password": True},
    )
    refresh = _plan([outside], [])
    report = drift_report(refresh, _plan([], []))
    [resource] = report.resources
    assert resource.address == "aws_db_instance.main" and resource.changed == ("instance_class", "password")
    shown = json.dumps(report.model_dump(mode="json"))
    assert "hunter2" not in shown and "(sensitive)" in shown and "db.t4g.large" in shown
    assert compare(None, report) is DriftChange.NEW
    assert compare(report, report) is DriftChange.SAME
    assert compare(report, drift_report(_plan([], []), _plan([], []))) is DriftChange.RESOLVED
    more = drift_report(
        refresh, _plan([], [_update("aws_s3_bucket.logs", {"acl": "private"}, {"acl": "public"}, {})])
    )
    assert compare(report, more) is DriftChange.GREW
    other = drift_report(
        _plan([_update("aws_db_instance.main", {"instance_class": "a"}, {"instance_class": "b"}, {})], []),
        _plan([], []),
    )
    assert compare(report, other) is DriftChange.CHANGED and other.fingerprint != report.fingerprint


def test_acknowledgement_silences_exactly_one_drift() -> None:
    first = drift_report(_plan([_update("x.a", {"v": 1}, {"v": 2}, {})], []), _plan([], []))
    record = after_check(
        DriftRecord(environment_key="k"), DriftCheck(at=utcnow(), outcome=CheckOutcome.CHECKED, report=first)
    ).record
    assert acknowledge(record, "not-the-fingerprint", "U1", "why", utcnow()) is None
    acked = acknowledge(record, first.fingerprint, "U1", "known", utcnow())
    assert acked is not None and drift_state(acked).value == "acknowledged"
    changed = drift_report(_plan([_update("x.a", {"v": 1}, {"v": 3}, {})], []), _plan([], []))
    verdict = after_check(acked, DriftCheck(at=utcnow(), outcome=CheckOutcome.CHECKED, report=changed))
    assert verdict.change is DriftChange.CHANGED and verdict.notify
    busy = after_check(acked, DriftCheck(at=utcnow(), outcome=CheckOutcome.BUSY))
    assert not busy.notify and busy.record.reported == acked.reported


# -- end to end ----------------------------------------------------------------------------------------


def _channel_posts(api: Any, channel: str, contains: str) -> list[dict[str, Any]]:
    return [
        c.params
        for c in api.calls_to("chat.postMessage")
        if c.params.get("channel") == channel
        and not c.params.get("thread_ts")
        and contains in c.params.get("text", "")
    ]


@pytest.mark.e2e
def test_drift_found_reported_once_reconciled_and_resolved(
    pipeline_run: PipelineRun, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    slack, api, store, env = pipeline_run
    # an environment applied through the pipeline
    deployment_id = pipeline_run.new_account_at_plan_stage("V-DRIFT")
    run_worker_burst(env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval", deployment.status_detail
    click(slack, api, deployment.thread_ts or "", "plan_approve", LEAD)
    eventually(lambda: store.get(deployment_id).status.value == "approved")
    run_worker_burst(env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "deployed", deployment.status_detail
    key = deployment.request.environment_key
    assert EnvironmentStore(redis_conn).find(key) is not None

    session = boto3.Session(profile_name="deployer", region_name="us-east-1")
    edit_state_outside_terraform(session, deployment.request.state_bucket)
    drift = DriftStore(redis_conn)
    channel = deployment.channel_id

    with background_workers({**env, "ECS_DEPLOY_DRIFT_INTERVAL": "3"}, [tmp_path / "worker-drift"]):
        # within one interval (plus the check's own Terraform runs): one message naming the resource
        eventually(lambda: len(_channel_posts(api, channel, "Drift detected")) == 1, timeout=180)
        [message] = _channel_posts(api, channel, "Drift detected")
        blocks = json.dumps(message["blocks"])
        assert "ecs_service" in message["text"] and "`input`" in blocks, blocks  # the attribute that drifted
        # the next check (same drift) posts nothing
        checked = drift.get(key)
        assert checked is not None
        eventually(lambda: (drift.get(key) or checked).checks >= checked.checks + 2, timeout=180)
        assert len(_channel_posts(api, channel, "Drift")) == 1

        # Plan to reconcile → a CHANGE deployment whose plan restores it, gated by an approval
        [posted] = [m for m in api.messages.values() if m.get("text") == message["text"]]
        button = next(
            e
            for b in posted["blocks"]
            for e in b.get("elements") or []
            if e.get("action_id") == "drift_reconcile"
        )
        response = slack.block_action(
            "drift_reconcile",
            button["value"],
            user=REQUESTER,
            channel=channel,
            message_ts=posted["ts"],
            message=posted,
        )
        assert response.status_code == 200
        environment = EnvironmentStore(redis_conn)
        eventually(lambda: len((environment.find(key) or pytest.fail("gone")).deployments) == 2, timeout=30)
        change_id = (environment.find(key) or pytest.fail("gone")).deployments[-1]
        eventually(lambda: store.get(change_id).status.value == "awaiting_approval", timeout=240)
        change = store.get(change_id)
        assert change.kind.value == "change" and change.plan is not None
        assert "1 to change" in change.plan.sentence, change.plan.sentence
        # the worker writes the status, then posts the plan with its buttons
        api.wait_for_button(change.thread_ts or "", "plan_approve")
        plan_text = "\n".join(api.thread_texts(change.thread_ts or ""))
        assert "ecs_service" in plan_text
        click(slack, api, change.thread_ts or "", "plan_approve", LEAD)
        eventually(lambda: store.get(change_id).status.value == "deployed", timeout=240)
        # after the apply, the next check reports the drift resolved
        eventually(lambda: len(_channel_posts(api, channel, "resolved")) == 1, timeout=180)
    assert len(_channel_posts(api, channel, "Drift detected")) == 1
    state = json.loads(
        session.client("s3").get_object(Bucket=deployment.request.state_bucket, Key=STATE_KEY)["Body"].read()
    )
    service = next(r for r in state["resources"] if r["name"] == "ecs_service")["instances"][0]["attributes"]
    restored = service["input"].get("value", service["input"])
    assert restored["desired_count"] != 7, "the reconcile restored the applied value"
