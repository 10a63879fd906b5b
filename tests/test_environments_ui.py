"""Environments in Slack through the bot's real HTTP endpoint, with a real Redis and the Slack Web API
stand-in: `/ecs-deploy envs` (filtered by the access policy like `list`), App Home's Environments
section and its buttons, and a request for an environment that exists (refused on the form with an
ephemeral "Change it" button) or was destroyed (created again).

Environment records are stored directly (EnvironmentStore.put), as the worker's `record_apply` would
leave them; their deployments are records in the deployment store with a real thread root.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis
import requests
from rq import Queue

from bot.environments import EnvironmentEntry, request_guard_key
from bot.views.environments import MESSAGE_BLOCKS, envs_answer, home_section
from bot.views.home import home_view
from core.duplicates import DuplicateWhy, duplicate_of
from core.environments import (
    ConfigCommit,
    Environment,
    EnvironmentChange,
    EnvironmentStatus,
    environment_key,
)
from core.lifecycle import DeploymentKind
from core.models import Deployment, DeploymentStatus, utcnow
from storage.environments import EnvironmentStore
from storage.queue import JOB_SERIALIZER
from storage.store import DeploymentStore
from tests.harness.records import deployment_record, deployment_request
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values
from tests.test_commands import BYSTANDER, LEAD, OTHER, REQUESTER, link, make_deployment
from tests.test_home import open_home, published_to

pytestmark = pytest.mark.e2e

METADATA = json.dumps({"channel_id": "C_DEPLOYS", "team_id": "T111"})
PR_URL = "https://github.com/acme/poc-idp/pull/7"


def put_environment(
    redis_conn: redis.Redis,
    applied: Deployment,
    *,
    status: EnvironmentStatus = EnvironmentStatus.LIVE,
    newer: Deployment | None = None,
    config: ConfigCommit | None = None,
    age_minutes: int = 0,
) -> Environment:
    """The environment `applied` created (its thread is the change's), `newer` its open deployment."""
    at = utcnow() - timedelta(minutes=age_minutes)
    change = EnvironmentChange(
        deployment_id=applied.id,
        kind=DeploymentKind.DESTROY if status is EnvironmentStatus.DESTROYED else DeploymentKind.CREATE,
        requester_id=applied.requester_id,
        approver_ids=[LEAD],
        plan_sha256="a" * 64,
        repo_commit="3f2a9c1",
        applied_at=at,
        channel_id=applied.channel_id,
        thread_ts=applied.thread_ts,
    )
    environment = Environment(
        key=environment_key(applied.request),
        request=applied.request,
        repo_commit="3f2a9c1",
        status=status,
        changes=[change],
        deployments=[applied.id] + ([newer.id] if newer else []),
        config=config,
        created_at=at,
        updated_at=at,
    )
    return EnvironmentStore(redis_conn).put(environment)


def blocks_of(response: requests.Response) -> list[dict[str, Any]]:
    """The blocks of the command's private answer (the ack's JSON body)."""
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body.get("blocks") or [])


def rendered(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def environment_buttons(view: dict[str, Any]) -> dict[str, list[str]]:
    """Each environment key → the action ids of its buttons (Home's actions blocks)."""
    rows: dict[str, list[str]] = {}
    for block in view["blocks"]:
        if block["type"] == "actions":
            for element in block["elements"]:
                rows.setdefault(element["value"], []).append(element["action_id"])
    return rows


def jobs(redis_conn: redis.Redis) -> int:
    return Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count


def ephemeral_blocks(api: SlackApiStandIn, user: str) -> list[dict[str, Any]]:
    call = api.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == user, timeout=10)
    blocks = call.params.get("blocks") or []
    return list(json.loads(blocks) if isinstance(blocks, str) else blocks)


# -- /ecs-deploy envs ----------------------------------------------------------------------------


def test_envs_lists_only_the_environments_the_policy_lets_each_user_see(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    web = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED, age_minutes=60)
    put_environment(redis_conn, web, age_minutes=50)
    old = make_deployment(store, slack_api, status=DeploymentStatus.DESTROYED, application="old")
    put_environment(redis_conn, old, status=EnvironmentStatus.DESTROYED)  # the newest record
    api_created = make_deployment(
        store, slack_api, requester=OTHER, status=DeploymentStatus.DEPLOYED, application="api", age_minutes=90
    )
    api_change = make_deployment(
        store, slack_api, requester=OTHER, status=DeploymentStatus.PLANNING, application="api"
    )
    put_environment(redis_conn, api_created, newer=api_change, age_minutes=80)

    mine = rendered(blocks_of(bot.slash_command("envs", user=REQUESTER)))
    assert "Environments you can see (2)" in mine
    assert "*web/dev* · 123456789012 · us-east-1 · small" in mine and "old/dev" in mine
    assert "api/dev" not in mine, "another requester's environment, and the requester is no lead"
    assert mine.index("web/dev") < mine.index("old/dev"), "live ones first, though old/dev changed last"
    assert ":large_green_circle: Live" in mine and ":wastebasket: Destroyed" in mine
    assert f"created by <@{REQUESTER}>" in mine and link(web) in mine

    everyone = rendered(blocks_of(bot.slash_command("envs", user=LEAD)))
    assert "Environments you can see (3)" in everyone
    assert ":arrows_counterclockwise: Changing" in everyone, "its newest deployment is open"
    assert api_change.id in everyone and link(api_change) in everyone

    nobody = bot.slash_command("envs", user=BYSTANDER)
    assert "You see no environments yet" in rendered(blocks_of(nobody))
    assert "web/dev" not in nobody.text and "api/dev" not in nobody.text

    assert "Usage: `/ecs-deploy envs`" in bot.slash_command("envs web/dev", user=REQUESTER).text
    assert "/ecs-deploy envs" in bot.slash_command("help").text


def test_envs_answer_stays_within_a_messages_50_blocks() -> None:
    base = deployment_record(REQUESTER, thread_ts="1700000000.000100")
    entries = [
        EnvironmentEntry(
            environment=Environment(
                key=environment_key(deployment_request(application=f"app{i}")),
                request=deployment_request(application=f"app{i}"),
                repo_commit="3f2a9c1",
                created_at=base.created_at,
                updated_at=base.created_at,
            )
        )
        for i in range(80)
    ]
    answer = envs_answer(entries)
    assert len(answer.blocks) <= MESSAGE_BLOCKS
    assert "… and 40 more" in json.dumps(answer.block_dicts(), ensure_ascii=False)
    view = home_view(mine=[base] * 15, pending=[base] * 30, environments=entries).to_dict()
    assert len(view["blocks"]) <= 100
    assert "(`/ecs-deploy envs`)" in json.dumps(view["blocks"]), "the ones that do not fit are counted"
    assert home_section(entries, 1) == []


# -- App Home ------------------------------------------------------------------------------------


def test_app_home_shows_the_environments_with_change_upgrade_destroy_on_live_ones(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    web = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    config = ConfigCommit(
        branch="ecs-deploy/web-dev-123456789012-us-east-1",
        commit="c0ffee1",
        deployment_id=web.id,
        pushed=True,
        pull_request_url=PR_URL,
    )
    live = put_environment(redis_conn, web, config=config)
    old = make_deployment(store, slack_api, status=DeploymentStatus.DESTROYED, application="old")
    destroyed = put_environment(redis_conn, old, status=EnvironmentStatus.DESTROYED)
    busy_created = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED, application="busy")
    busy_change = make_deployment(
        store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL, application="busy"
    )
    busy = put_environment(redis_conn, busy_created, newer=busy_change)

    open_home(bot, REQUESTER)
    view = published_to(slack_api, REQUESTER)
    text = rendered(view["blocks"])
    section = text[text.index("Environments (3)") :]
    assert "web/dev" in section and "old/dev" in section and "busy/dev" in section
    assert "`ecs-deploy/web-dev-123456789012-us-east-1`" in section and PR_URL in section
    assert f"created by <@{REQUESTER}>" in section and link(web) in section
    rows = environment_buttons(view)
    assert rows[str(live.key)] == ["environment_change", "environment_upgrade", "environment_destroy"]
    assert str(destroyed.key) not in rows, "no buttons on a destroyed environment"
    assert str(busy.key) not in rows, "nor while a deployment of it is open"
    assert busy_change.id in section and ":raising_hand: Waiting for approval" in section

    open_home(bot, BYSTANDER)
    other_view = published_to(slack_api, BYSTANDER)
    assert "Environments (0)" in rendered(other_view["blocks"])
    assert "web/dev" not in rendered(other_view["blocks"]) and environment_buttons(other_view) == {}


# -- a request for an environment that exists ------------------------------------------------------


def test_a_request_for_a_live_environment_creates_nothing_and_offers_to_change_it(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    web = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    live = put_environment(redis_conn, web)
    before = {d.id for d in store.recent(limit=50)}

    response = bot.view_submission(request_values(), user=OTHER, private_metadata=METADATA, view_id="V-DUP")

    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    error = body["errors"]["application"]
    assert "web/dev already exists" in error and "`/ecs-deploy change web/dev`" in error
    assert {d.id for d in store.recent(limit=50)} == before, "no new deployment"
    assert jobs(redis_conn) == 0
    blocks = ephemeral_blocks(slack_api, OTHER)
    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "environment_change" and button["value"] == str(live.key)
    assert button["text"]["text"] == "Change it"
    assert "already exists" in rendered(blocks)


def test_a_request_while_the_environment_is_being_created_creates_nothing(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    creating = make_deployment(store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL)  # no record yet

    response = bot.view_submission(request_values(), private_metadata=METADATA, view_id="V-INFLIGHT")

    error = response.json()["errors"]["application"]
    assert "being deployed already" in error and creating.id in error
    assert [d.id for d in store.recent(limit=50)] == [creating.id]
    assert jobs(redis_conn) == 0
    text = rendered(ephemeral_blocks(slack_api, REQUESTER))
    assert creating.id in text and link(creating) in text


def test_a_destroyed_environment_may_be_requested_again(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    old = make_deployment(store, slack_api, status=DeploymentStatus.DESTROYED)
    put_environment(redis_conn, old, status=EnvironmentStatus.DESTROYED)

    for _ in range(2):  # Slack sending the same submission twice: the same answer, one deployment
        response = bot.view_submission(request_values(), private_metadata=METADATA, view_id="V-AGAIN")
        assert response.status_code == 200 and response.text in ("", "{}"), response.text

    [new] = [d for d in store.recent(limit=50) if d.id != old.id]
    assert new.request.environment_key == old.request.environment_key
    assert new.kind is DeploymentKind.CREATE
    assert jobs(redis_conn) == 1
    assert slack_api.calls_to("chat.postEphemeral") == []


def test_a_request_while_another_for_the_same_environment_is_being_stored_creates_nothing(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    """Two submissions at the same moment: the second finds the first one's request guard held."""
    guard = redis_conn.lock(request_guard_key(deployment_request()), timeout=60)
    assert guard.acquire(blocking=False)

    held = bot.view_submission(request_values(), private_metadata=METADATA, view_id="V-RACE-1")

    assert "being deployed already" in held.json()["errors"]["application"]
    assert store.recent(limit=50) == [] and jobs(redis_conn) == 0
    guard.release()
    free = bot.view_submission(request_values(), private_metadata=METADATA, view_id="V-RACE-2")
    assert free.text in ("", "{}"), free.text
    assert len(store.recent(limit=50)) == 1 and jobs(redis_conn) == 1
    assert redis_conn.exists(request_guard_key(deployment_request())) == 0, "given back after the create"


# -- the rule -------------------------------------------------------------------------------------


def test_the_duplicate_rule() -> None:
    request = deployment_request()
    key = environment_key(request)
    done = deployment_record(REQUESTER, status=DeploymentStatus.DEPLOYED)
    running = deployment_record(REQUESTER, status=DeploymentStatus.PLANNING)
    elsewhere = deployment_record(REQUESTER, request=deployment_request(region="eu-west-1"))
    at = utcnow()
    live = Environment(key=key, request=request, repo_commit="c", created_at=at, updated_at=at)
    destroyed = live.model_copy(update={"status": EnvironmentStatus.DESTROYED})

    assert duplicate_of(key, None, [done, elsewhere]) is None
    assert duplicate_of(key, destroyed, [done]) is None
    found = duplicate_of(key, live, [done])
    assert found is not None and found.why is DuplicateWhy.LIVE and found.open_deployment is None
    in_flight = duplicate_of(key, destroyed, [elsewhere, running, done])
    assert in_flight is not None and in_flight.why is DuplicateWhy.IN_FLIGHT
    assert in_flight.open_deployment == running
