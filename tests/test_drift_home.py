"""App Home's drift line per environment, through the bot's real HTTP endpoint with a real Redis and
the Slack Web API stand-in: each live environment shows its last check, the result and when the next
check runs (from storage/drift.py, as the worker's checks leave it); a failed check says why; a
destroyed environment shows none. Environment and drift records are stored directly, as
`record_apply` and the drift worker would leave them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from bot.views.drift import drift_line
from core.drift import CheckOutcome, DriftCheck, DriftRecord, after_check
from core.environments import EnvironmentStatus
from core.models import DeploymentStatus
from storage.drift import DriftStore
from storage.store import DeploymentStore
from tests.harness.records import drift_check
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.test_commands import REQUESTER, make_deployment
from tests.test_environments_ui import put_environment, rendered
from tests.test_home import open_home, published_to

pytestmark = pytest.mark.e2e

CHECKED_AT = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
FAILED_AT = datetime(2026, 3, 4, 7, 8, tzinfo=UTC)
NEXT_RUN = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
MISMATCH = "the committed configuration and the registry disagree: run `ecs-deploy-bot environments import`"


def _drifted() -> DriftCheck:
    return drift_check(CHECKED_AT, "terraform_data.ecs_service")


def _record(*checks: DriftCheck) -> DriftRecord:
    record = DriftRecord(environment_key="", next_run_at=NEXT_RUN)
    for check in checks:
        record = after_check(record, check).record
    return record


def _section(view: dict[str, object], start: str, end: str | None = None) -> str:
    text = rendered(view["blocks"])  # type: ignore[arg-type]
    tail = text[text.index(start) :]
    return tail[: tail.index(end)] if end else tail


def test_app_home_shows_each_live_environments_last_check_result_and_next_run(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> None:
    store = DeploymentStore(redis_conn)
    drifted = put_environment(redis_conn, make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED))
    failing = put_environment(
        redis_conn,
        make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED, application="api"),
        age_minutes=10,
    )
    unchecked = put_environment(
        redis_conn,
        make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED, application="new"),
        age_minutes=20,
    )
    put_environment(
        redis_conn,
        make_deployment(store, slack_api, status=DeploymentStatus.DESTROYED, application="old"),
        status=EnvironmentStatus.DESTROYED,
        age_minutes=30,
    )
    drift = DriftStore(redis_conn)
    drift.update(str(drifted.key), lambda _: _record(_drifted()))
    failed = DriftCheck(at=FAILED_AT, outcome=CheckOutcome.FAILED, detail=MISMATCH)
    drift.update(str(failing.key), lambda _: _record(_drifted(), failed))
    assert drift.get(str(unchecked.key)) is None

    open_home(bot, REQUESTER)
    view = published_to(slack_api, REQUESTER)
    web = _section(view, "*web/dev*", "*api/dev*")
    assert "Drift: drifted · last checked 2026-03-04 05:06 UTC · 1 resource(s)" in web, web
    assert "next check 2026-03-04 12:00 UTC" in web, web

    api = _section(view, "*api/dev*", "*new/dev*")
    assert "Drift: drifted · last check failed 2026-03-04 07:08 UTC" in api, api
    assert "the committed configuration and the registry disagree" in api and "environments import" in api

    new = _section(view, "*new/dev*", "*old/dev*")
    assert "Drift: not checked yet · no check scheduled yet" in new, new
    assert "Drift" not in _section(view, "*old/dev*"), "a destroyed environment has no drift line"


def test_the_drift_line_without_scheduled_checks_and_while_the_state_was_busy() -> None:
    busy = DriftCheck(at=FAILED_AT, outcome=CheckOutcome.BUSY, detail="state in use by d-1 (apply)")
    line = drift_line(_record(_drifted(), busy), None, scheduled=False)
    assert line == (
        "Drift: drifted · last skipped (state in use) 2026-03-04 07:08 UTC · 1 resource(s)"
        " · no scheduled checks (drift_interval 0)"
    ), line
    none = _record(drift_check(CHECKED_AT))
    assert drift_line(none, NEXT_RUN) == (
        "Drift: no drift · last checked 2026-03-04 05:06 UTC · next check 2026-03-04 12:00 UTC"
    )
