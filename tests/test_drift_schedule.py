"""Scheduled drift checks on real parts: two long-running workers (RQ's scheduler on), a real Redis.
Each time slot of an environment is checked exactly once, even when the same slot's job is queued
twice and both workers take it. And the web /metrics counts environments by drift state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import redis

from core.drift import after_check, next_slot, slot_job_id
from core.models import utcnow
from core.settings import Settings
from storage.audit import AuditTrail
from storage.drift import DriftStore
from storage.queue import enqueue_drift_check
from tests.harness.flow import eventually
from tests.harness.processes import WebProcess, background_workers
from tests.harness.records import create_change, drift_check, stored_environment
from tests.test_metrics import metrics_url, scrape, value


def _live_environment(redis_conn: redis.Redis) -> str:
    """A live environment with no recorded tfvars SHA-256: its checks end fast (FAILED, before any
    checkout)."""
    environment = stored_environment(
        redis_conn,
        changes=[create_change("gone-deployment", plan_sha256="0" * 64)],
        deployments=["gone-deployment"],
    )
    return str(environment.key)


def test_two_workers_never_run_a_slot_twice(
    bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path
) -> None:
    key = _live_environment(redis_conn)
    env = {**bot_env, "ECS_DEPLOY_DRIFT_INTERVAL": "2"}
    drift = DriftStore(redis_conn)
    settings = Settings.model_validate({"REDIS_URL": bot_env["REDIS_URL"]})
    # the same slot's job queued twice (both in the queue): both workers may take it
    doubled = slot_job_id(key, next_slot(utcnow() - timedelta(days=1), 2))
    for _ in range(2):
        enqueue_drift_check(redis_conn, settings, key, job_id=doubled)
    with background_workers(env, [tmp_path / "worker-a", tmp_path / "worker-b"]):
        # both workers seed the first slot; each check schedules the next one
        eventually(lambda: len(drift.runs(key)) >= 6, timeout=120)
    runs = drift.runs(key)
    assert doubled in runs
    assert len(runs) == len(set(runs)), f"a slot ran twice: {runs}"
    scheduled = [r for r in runs if r != doubled]
    assert all(r.startswith(f"drift-{key}-") for r in scheduled)
    slots = [int(r.rsplit("-", 1)[1]) for r in scheduled]
    assert slots == sorted(slots) and all(s % 2 == 0 for s in slots), slots
    record = drift.get(key)
    assert record is not None and record.checks == len(runs)
    assert record.last_check is not None and record.last_check.outcome.value == "failed"
    assert "environments import" in record.last_check.detail, record.last_check.detail
    checked = [e for e in AuditTrail(redis_conn).for_deployment(f"env:{key}") if e.event == "drift_checked"]
    assert len(checked) == len(runs)
    assert record.next_run_at is not None


def test_web_metrics_count_environments_by_drift_state(
    web_process: WebProcess, redis_conn: redis.Redis
) -> None:
    key = _live_environment(redis_conn)
    families = scrape(metrics_url(web_process))
    environments = families["ecs_deploy_environments"]
    assert value(environments, "ecs_deploy_environments", drift_state="unknown") == 1
    assert value(environments, "ecs_deploy_environments", drift_state="drifted") == 0
    check = drift_check(utcnow(), "terraform_data.a")
    DriftStore(redis_conn).update(key, lambda record: after_check(record, check).record)
    families = scrape(metrics_url(web_process))
    environments = families["ecs_deploy_environments"]
    assert value(environments, "ecs_deploy_environments", drift_state="drifted") == 1
    assert value(environments, "ecs_deploy_environments", drift_state="unknown") == 0
    assert {s.labels["drift_state"] for s in environments} == {
        "none",
        "drifted",
        "acknowledged",
        "unknown",
    }
