"""The drift interval in the access policy (issue 14): `drift_interval` in seconds (0: no scheduled
checks) per profile, in `defaults`, per environment by name and on a pattern; resolved the way the
destroy keys are, with load errors naming line and key; and the workers' schedule follows it (seeded
on a real Redis with RQ's scheduler)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq.registry import ScheduledJobRegistry

from core.drift import next_slot, slot_job_id
from core.models import utcnow
from core.policy.access import AccessPolicy
from core.policy.loading import load_policy
from core.settings import Settings
from storage.drift import DriftStore
from storage.queue import JOB_SERIALIZER
from tests.harness.policies import assert_refused, inline_policy
from tests.harness.records import deployment_request, stored_environment
from workers.drift import seed_schedules

POLICY = """
defaults:
  requesters: ["*"]
  approvers: [U0LEAD1, U0LEAD2]
  drift_interval: 3600
  environments:
    prod: {drift_interval: 900}
profiles:
  deployer:
    environments:
      dev:
      stag: {drift_interval: 0}
      "preview-*": {protected: true, drift_interval: 0}
      "feature-*":
  quiet:
    drift_interval: 0
    environments:
      dev:
      prod: {required_approvals: 2, drift_interval: 7200}
"""


def policy(text: str = POLICY) -> AccessPolicy:
    return inline_policy(text)


# -- the policy file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "environment", "seconds"),
    [
        ("deployer", "dev", 3600),  # defaults'
        ("deployer", "prod", 900),  # defaults' prod
        ("deployer", "stag", 0),  # its own: no scheduled checks
        ("deployer", "preview-42", 0),  # a pattern's
        ("deployer", "feature-x", 3600),  # a pattern without one: the profile's
        ("quiet", "dev", 0),  # the profile's own replaces defaults'
        ("quiet", "prod", 7200),  # merged with defaults' prod, its own value wins
        ("nobody", "dev", None),  # a profile the policy does not know
    ],
)
def test_drift_interval_resolves_by_name_then_pattern_then_profile(
    profile: str, environment: str, seconds: int | None
) -> None:
    assert policy().drift_interval(profile, environment) == seconds


def test_without_drift_interval_the_setting_applies() -> None:
    plain = policy(
        """
        profiles:
          deployer:
            approvers: [U0LEAD1, U0LEAD2]
            environments: {dev: , "feature-*": }
        """
    )
    assert plain.drift_interval("deployer", "dev") is None
    assert plain.drift_interval("deployer", "feature-1") is None
    assert AccessPolicy.open(frozenset({"U0LEAD1"})).drift_interval("any", "prod") is None
    # the other rules of an environment are untouched by its drift_interval
    quiet_prod = policy().approval_rule("quiet", "prod")
    assert quiet_prod is not None and quiet_prod.required_approvals == 2
    assert policy().profiles["deployer"].is_protected("preview-1")


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1]
                drift_interval: 30
                environments: {dev: }
            """,
            4,
            "profiles.p.drift_interval",
            ["30 is not a drift interval", "0 (no scheduled checks) or 60-2592000"],
            id="shorter-than-a-minute",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1]
                environments:
                  dev: {drift_interval: -1}
            """,
            5,
            "profiles.p.environments.dev.drift_interval",
            ["-1 is not a drift interval"],
            id="negative",
        ),
        pytest.param(
            """
            defaults:
              drift_interval: 100000000
            profiles:
              p:
                approvers: [U1]
                environments: {dev: }
            """,
            2,
            "defaults.drift_interval",
            ["100000000 is not a drift interval", "30 days"],
            id="longer-than-30-days",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1]
                drift_interval: "6h"
                environments: {dev: }
            """,
            4,
            "profiles.p.drift_interval",
            ["integer"],
            id="not-seconds",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1]
                drift_interval: true
                environments: {dev: }
            """,
            4,
            "profiles.p.drift_interval",
            ["integer"],
            id="a-boolean",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1, U2]
                environments:
                  dev:
                  "feature-*": {drift_interval: 600, required_approvals: 2}
            """,
            6,
            "profiles.p.environments.feature-*",
            ["takes no settings but protected and drift_interval"],
            id="pattern-with-another-setting",
        ),
    ],
)
def test_drift_interval_load_errors_name_line_and_key(
    text: str, line: int, key: str, words: list[str]
) -> None:
    assert_refused(text, line, key, words)


def test_the_example_policy_sets_drift_intervals_as_its_comments_say() -> None:
    example = load_policy(Path(__file__).resolve().parents[1] / "docs" / "policy.example.yml")
    assert example.drift_interval("sandbox", "dev") == 21600  # defaults'
    assert example.drift_interval("prod-admin", "prod") == 3600  # defaults' prod: every hour
    assert example.drift_interval("dev-admin", "feature-login") == 0  # the pattern's: none
    assert example.drift_interval("dev-admin", "dev") == 21600


# -- the workers' schedule follows it ------------------------------------------------------------------


def _live(redis_conn: redis.Redis, environment: str) -> str:
    return str(stored_environment(redis_conn, deployment_request(environment=environment)).key)


def test_seeded_schedules_follow_the_policy(redis_conn: redis.Redis, bot_env: dict[str, str]) -> None:
    dev, prod, stag = (_live(redis_conn, name) for name in ("dev", "prod", "stag"))
    settings = Settings.model_validate(
        {"REDIS_URL": bot_env["REDIS_URL"], "ECS_DEPLOY_DRIFT_INTERVAL": "21600"}
    )
    before = utcnow()
    assert seed_schedules(redis_conn, settings, policy()) == 2, "stag's drift_interval is 0: not scheduled"
    after = utcnow()
    drift = DriftStore(redis_conn)
    assert drift.get(stag) is None
    scheduled = set(
        ScheduledJobRegistry(
            settings.queue_name, connection=redis_conn, serializer=JOB_SERIALIZER
        ).get_job_ids()
    )
    for key, seconds in ((dev, 3600), (prod, 900)):
        record = drift.get(key)
        assert record is not None and record.next_run_at is not None
        at = record.next_run_at
        # the next multiple of the environment's own interval (not of the setting's 6 h)
        assert int(at.timestamp()) % seconds == 0, (key, at)
        assert next_slot(before, seconds) <= at <= next_slot(after, seconds)
        assert at - after <= timedelta(seconds=seconds)
        assert slot_job_id(key, at) in scheduled, (key, scheduled)
    assert not any(job.startswith(f"drift-{stag}-") for job in scheduled)
