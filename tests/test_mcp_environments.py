"""The MCP server's environment tools — list_environments, get_environment, the environment://{key}
resource, get_drift, request_change — and the `channel` argument of the request tools, driven by the
official SDK's own client over stdio and streamable HTTP against the real Redis and the Slack stand-in.

Environments are stored as the registry holds them (EnvironmentStore.put), their deployments in the
deployment store; the access policy gives REQUESTER the `deployer` profile and OTHER `other-account`,
with separate leads, so REQUESTER must not learn that OTHER's environment exists.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import pytest
import redis
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import Implementation

from bot.ids import Action
from core.drift import (
    CheckOutcome,
    DriftCheck,
    DriftedResource,
    DriftKind,
    DriftReport,
    after_check,
)
from core.environments import (
    ALARM_EMAILS,
    DNS_NAME,
    Environment,
    EnvironmentStatus,
)
from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import DeploymentRequest, utcnow
from core.plan.model import AttributeChange, PlanAction
from core.policy.mcp_clients import token_sha256
from storage.audit import AuditTrail
from storage.drift import DriftStore
from storage.environments import EnvironmentStore
from storage.store import DeploymentStore
from tests.harness.flow import LEAD, OTHER, REQUESTER, submit_modal
from tests.harness.processes import ROOT
from tests.harness.records import REQUEST_FIELDS, applied_environment, deployment_record, deployment_request
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.test_change_flow import change_values, command_opens
from tests.test_mcp import (  # the server over HTTP on a free port, and the SDK client's helpers
    CHANNEL,
    CLIENT,
    TOKEN,
    _over_http,
    call,
    mcp_http,  # noqa: F401  (fixtures: this module's policy_yaml configures them)
    modal_error,
    pipeline_env,  # noqa: F401
)

OTHER_LEAD = "U0LEAD0009"
POLICY = f"""
profiles:
  deployer:
    requesters: [{REQUESTER}]
    approvers: [{LEAD}]
    environments:
      dev:
  other-account:
    requesters: [{OTHER}]
    approvers: [{OTHER_LEAD}]
    assume_role_arn: arn:aws:iam::222233334444:role/DeployRole
    environments:
      dev:
mcp_clients:
  - name: {CLIENT}
    token_sha256: {token_sha256(TOKEN)}
    user: {REQUESTER}
"""
COMMIT = "3f2a9c1b7d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
WEB_THREAD = "1700000000.000100"
ELSEWHERE = "C0ELSEWHERE"  # a channel the bot and REQUESTER are both in
NOT_MINE = "C0NOTMINE01"  # the bot is in it, REQUESTER is not
BOT_ABSENT = "C0NOBOT0001"  # REQUESTER is in it, the bot is not


@pytest.fixture
def policy_yaml() -> str:
    """The policy of `pipeline_env` and `pipeline` (conftest): the one above."""
    return POLICY


def put_environment(
    redis_conn: redis.Redis,
    request: DeploymentRequest,
    requester: str,
    *,
    latest_status: DeploymentStatus = DeploymentStatus.DEPLOYED,
    status: EnvironmentStatus = EnvironmentStatus.LIVE,
) -> Environment:
    """A live environment created by one applied deployment of `request` (stored too), whose newest
    deployment has `latest_status` (a second, open one when that is not final)."""
    open_change = (
        None
        if latest_status.is_final
        else deployment_record(requester, request=request, status=latest_status, kind=DeploymentKind.CHANGE)
    )
    return applied_environment(
        redis_conn,
        request,
        requester,
        approver_id=LEAD,
        commit=COMMIT,
        thread_ts=WEB_THREAD,
        status=status,
        open_deployment=open_change,
        summary="Apply complete! Resources: 38 added, 0 changed, 0 destroyed.",
    )


@pytest.fixture
def environments(redis_conn: redis.Redis) -> dict[str, Environment]:
    """web/dev (REQUESTER's, live), api/dev (REQUESTER's, a change open: changing) and billing/dev in
    the other account (OTHER's: hidden from REQUESTER)."""
    return {
        "web": put_environment(redis_conn, deployment_request(), REQUESTER),
        "api": put_environment(
            redis_conn,
            deployment_request(application="api"),
            REQUESTER,
            latest_status=DeploymentStatus.AWAITING_APPROVAL,
        ),
        "billing": put_environment(
            redis_conn,
            deployment_request(application="billing", profile="other-account", account_id="222233334444"),
            OTHER,
        ),
    }


def drift_found(redis_conn: redis.Redis, key: str) -> None:
    """A drift check of `key` that found terraform_data.cluster's input changed outside Terraform."""
    report = DriftReport(
        resources=(
            DriftedResource(
                kind=DriftKind.OUTSIDE,
                address="terraform_data.cluster",
                type="terraform_data",
                action=PlanAction.UPDATE,
                attributes=(AttributeChange(name="input", before='"small"', after='"tampered"'),),
                changed=("input",),
                digest="d" * 16,
            ),
        )
    )
    check = DriftCheck(at=utcnow(), outcome=CheckOutcome.CHECKED, report=report)
    DriftStore(redis_conn).update(key, lambda record: after_check(record, check).record)


def stdio_params(env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "bot.cli", "mcp"], env={**os.environ, **env}, cwd=str(ROOT)
    )


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


# -- reading environments over stdio ------------------------------------------------------------------


def test_environments_over_stdio_follow_the_access_policy(
    pipeline_env: dict[str, str],  # noqa: F811
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    environments: dict[str, Environment],
) -> None:
    web, billing = str(environments["web"].key), str(environments["billing"].key)

    async def session_run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with open(os.devnull, "w") as errlog:
            async with (
                stdio_client(stdio_params(pipeline_env), errlog=errlog) as (read, write),
                ClientSession(
                    read, write, client_info=Implementation(name="pytest-stdio", version="1")
                ) as session,
            ):
                await session.initialize()
                out["templates"] = (await session.list_resource_templates()).resource_templates
                out["list"] = await session.call_tool("list_environments", {})
                out["by_name"] = await session.call_tool("get_environment", {"environment": "web/dev"})
                out["by_key"] = await session.call_tool("get_environment", {"environment": web})
                out["hidden"] = await session.call_tool("get_environment", {"environment": billing})
                out["hidden_by_name"] = await session.call_tool(
                    "get_environment", {"environment": "billing/dev"}
                )
                resource = await session.read_resource(f"environment://{web}")
                out["resource"] = str(getattr(resource.contents[0], "text", ""))
                try:
                    await session.read_resource(f"environment://{billing}")
                    out["hidden_resource"] = None
                except Exception as exc:  # the SDK raises the server's error
                    out["hidden_resource"] = str(exc)
                out["no_drift"] = await session.call_tool("get_drift", {"environment": "web/dev"})
                out["hidden_drift"] = await session.call_tool("get_drift", {"environment": billing})
                drift_found(redis_conn, web)
                out["drift"] = await session.call_tool("get_drift", {"environment": "web/dev"})
                out["after_drift"] = await session.call_tool("get_environment", {"environment": web})
        return out

    out = anyio.run(session_run)

    templates = {t.uri_template for t in out["templates"]}
    assert templates == {"deployment://{deployment_id}", "environment://{key}"}

    # only what the policy lets REQUESTER see: their two environments, live one first... and not OTHER's
    listed = structured(out["list"])
    assert listed["user_id"] == REQUESTER
    by_key = {e["key"]: e for e in listed["environments"]}
    assert set(by_key) == {web, str(environments["api"].key)}
    assert by_key[str(environments["api"].key)]["status"] == "changing"
    assert by_key[web]["status"] == "live"
    assert "billing" not in json.dumps(listed)

    seen = structured(out["by_name"])
    assert seen == structured(out["by_key"]) == json.loads(out["resource"])
    assert seen["key"] == web and seen["name"] == "web/dev" and seen["profile"] == "deployer"
    assert seen["request"]["size"] == "small" and seen["request"]["vpc_cidr_block"]
    assert seen["extra_values"] == {ALARM_EMAILS: ["ops@example.com"], DNS_NAME: "web.example.com"}
    assert seen["repo_commit"] == COMMIT
    change = seen["last_change"]
    assert change["kind"] == "create" and change["requester_id"] == REQUESTER
    assert change["approver_ids"] == [LEAD] and change["applied_at"]
    assert change["thread_link"] == f"https://slack.com/archives/C_DEPLOYS/p{WEB_THREAD.replace('.', '')}"
    assert seen["latest_deployment_status"] == "deployed"
    assert seen["config"]["branch"] == f"ecs-deploy/{web}" and seen["config"]["pushed"] is False
    assert seen["drift"]["state"] == "unknown"

    # OTHER's environment is answered like one that does not exist, by key, by name and as a resource
    for hidden in ("hidden", "hidden_by_name", "hidden_drift"):
        assert out[hidden].is_error, out[hidden]
        assert "is known to the bot" in str(out[hidden].content), out[hidden].content
    assert out["hidden_resource"] and billing in out["hidden_resource"]

    # drift: none checked yet says so; after a check that found drift, its resources and attributes
    no_drift = structured(out["no_drift"])
    assert no_drift["state"] == "unknown" and "No drift check has run yet" in no_drift["message"]
    drift = structured(out["drift"])
    assert drift["state"] == "drifted" and drift["check_outcome"] == "checked"
    assert [(r["kind"], r["address"], r["action"]) for r in drift["resources"]] == [
        ("outside", "terraform_data.cluster", "update")
    ]
    assert drift["resources"][0]["attributes"] == [
        {"name": "input", "before": '"small"', "after": '"tampered"'}
    ]
    assert structured(out["after_drift"])["drift"]["state"] == "drifted"

    calls = [e for e in AuditTrail(redis_conn).export() if e.event == "mcp_call"]
    assert {e.detail["tool"] for e in calls} >= {
        "list_environments",
        "get_environment",
        "get_drift",
        "resource:environment",
    }
    assert {(e.actor, e.detail["client"]) for e in calls} == {(REQUESTER, "pytest-stdio")}


# -- the channel a request is posted in ---------------------------------------------------------------


def test_request_channel_argument_must_be_one_the_user_and_the_bot_are_in(
    mcp_http: str,  # noqa: F811
    pipeline_env: dict[str, str],  # noqa: F811
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
) -> None:
    slack_api.conversations.update(
        {
            ELSEWHERE: {"is_member": True, "members": [OTHER, REQUESTER]},
            NOT_MINE: {"is_member": True, "members": [OTHER, LEAD]},
            BOT_ABSENT: {"is_member": False, "members": [REQUESTER]},
        }
    )
    store = DeploymentStore(redis_conn)
    request = {**REQUEST_FIELDS, "additional_tags": "team=platform"}

    refusals = {
        NOT_MINE: "You are not a member of channel",
        BOT_ABSENT: "The bot is not a member of channel",
        "C0UNKNOWN01": "does not exist or the bot cannot see it",
        "#deploys": "is not a Slack channel id",
    }
    for channel, why in refusals.items():
        refused = call(mcp_http, "request_deployment", {**request, "channel": channel})
        assert refused["created"] is False and why in refused["errors"]["channel"], refused
    # a bad value and a bad channel: both reported at once, nothing stored
    both = call(mcp_http, "request_deployment", {**request, "account_id": "12345", "channel": NOT_MINE})
    assert set(both["errors"]) == {"account_id", "channel"}
    assert store.recent() == []
    assert not [c for c in slack_api.calls_to("chat.postMessage")]

    accepted = call(mcp_http, "request_deployment", {**request, "channel": ELSEWHERE})
    assert accepted["created"] is True and accepted["channel_id"] == ELSEWHERE
    assert store.get(accepted["deployment_id"]).channel_id == ELSEWHERE
    root = slack_api.wait_for("chat.postMessage", lambda c: c.params.get("channel") == ELSEWHERE)
    assert f"by <@{REQUESTER}> via {CLIENT}" in json.dumps(root.params, ensure_ascii=False)

    default = call(mcp_http, "request_deployment", {**request, "application": "api"})
    assert default["created"] is True and default["channel_id"] == CHANNEL
    refused_events = [e for e in AuditTrail(redis_conn).export() if e.event == "mcp_request_refused"]
    assert len(refused_events) == len(refusals) + 1


async def _list_tools(session: ClientSession) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}


def test_environment_tools_over_http(
    mcp_http: str,  # noqa: F811
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    environments: dict[str, Environment],
) -> None:
    tools = anyio.run(_over_http, mcp_http, TOKEN, _list_tools)
    assert {"list_environments", "get_environment", "get_drift", "request_change"} <= tools
    listed = call(mcp_http, "list_environments", {})
    assert {e["name"] for e in listed["environments"]} == {"web/dev", "api/dev"}
    web = call(mcp_http, "get_environment", {"environment": "web/dev@123456789012/us-east-1"})
    assert web["key"] == str(environments["web"].key) and web["status"] == "live"
    assert call(mcp_http, "get_drift", {"environment": "web/dev"})["state"] == "unknown"

    # a new request for web/dev, which is live: refused as the request form refuses it, nothing stored
    before = {d.id for d in DeploymentStore(redis_conn).recent(limit=50)}
    duplicate = call(mcp_http, "request_deployment", {**REQUEST_FIELDS, "additional_tags": "team=platform"})
    assert duplicate["created"] is False
    assert duplicate["errors"] == {"application": modal_error(pipeline, "application", "web")}
    assert "already exists" in duplicate["errors"]["application"]
    assert {d.id for d in DeploymentStore(redis_conn).recent(limit=50)} == before
    offered = slack_api.wait_for(
        "chat.postEphemeral",
        lambda c: c.params.get("user") == REQUESTER and c.params.get("channel") == CHANNEL,
    )
    assert Action.CHANGE_ENVIRONMENT.value in json.dumps(offered.params)  # the Change it button


# -- request_change ------------------------------------------------------------------------------------


def change_modal_errors(slack: SlackClientSim, api: SlackApiStandIn, **values: str) -> dict[str, str]:
    """The Slack change form's errors for `values` (opened with /ecs-deploy change web/dev)."""
    view = command_opens(slack, api, "change web/dev")
    response = submit_modal(slack, view, change_values(**values), user=REQUESTER, view_id="V-MCP")
    errors: dict[str, str] = response.json()["errors"]
    return errors


def test_request_change_validates_like_the_change_form_and_posts_via_the_client(
    mcp_http: str,  # noqa: F811
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    environments: dict[str, Environment],
) -> None:
    store = DeploymentStore(redis_conn)
    web = environments["web"]
    slack_api.conversations[NOT_MINE] = {"is_member": True, "members": [OTHER]}

    # bad values: the change form's own messages, on the tool's argument names; nothing stored
    modal = change_modal_errors(
        pipeline, slack_api, size="medium", tags="aws:owner=me", emails="not-an-email"
    )
    bad = call(
        mcp_http,
        "request_change",
        {
            "environment": "web/dev",
            "size": "medium",
            "additional_tags": "aws:owner=me",
            "alarm_emails": "not-an-email",
        },
    )
    assert bad["created"] is False
    assert bad["errors"] == {
        "additional_tags": modal["additional_tags"],
        "alarm_emails": modal[f"var:{ALARM_EMAILS}"],
    }
    # the form as it is now (every omitted argument keeps its value): nothing would change
    same = call(mcp_http, "request_change", {"environment": "web/dev"})
    assert same["errors"] == {"size": change_modal_errors(pipeline, slack_api, ref=COMMIT, tags="")["size"]}
    assert "Nothing would change" in same["errors"]["size"]
    # a change open on api/dev: refused as in Slack; OTHER's environment is not known to REQUESTER
    busy = call(mcp_http, "request_change", {"environment": "api/dev", "size": "medium"})
    assert busy["created"] is False and "environment" in busy["errors"], busy

    async def hidden(session: ClientSession) -> Any:
        return await session.call_tool("request_change", {"environment": "billing/dev", "size": "medium"})

    refused = anyio.run(_over_http, mcp_http, TOKEN, hidden)
    assert refused.is_error and "No environment billing/dev is known" in str(refused.content)
    # a channel REQUESTER is not in
    elsewhere = call(
        mcp_http, "request_change", {"environment": "web/dev", "size": "medium", "channel": NOT_MINE}
    )
    assert elsewhere["errors"] == {"channel": elsewhere["errors"]["channel"]}
    assert "You are not a member" in elsewhere["errors"]["channel"]
    changes_before = {d.id for d in store.recent(limit=50)}
    assert len(changes_before) == 4  # the fixture's (3 creates + api's open change)

    # small -> medium: a CHANGE deployment, as the Slack flow makes it, posted via the client
    outcome = call(mcp_http, "request_change", {"environment": "web/dev", "size": "medium"})
    assert outcome["created"] is True and outcome["channel_id"] == CHANNEL, outcome
    deployment = store.get(outcome["deployment_id"])
    assert deployment.kind is DeploymentKind.CHANGE and deployment.request.size.value == "medium"
    assert deployment.repo_commit == COMMIT and deployment.repo_ref is None  # pinned to the last apply
    assert deployment.extra_values == web.extra_values
    assert deployment.requester_id == REQUESTER and deployment.requested_via == CLIENT
    assert deployment.previous_threads == [
        f"https://slack.com/archives/C_DEPLOYS/p{WEB_THREAD.replace('.', '')}"
    ]
    stored = EnvironmentStore(redis_conn).find(web.key)
    assert stored is not None and stored.deployments[-1] == deployment.id
    root = slack_api.wait_for(
        "chat.postMessage", lambda c: c.params.get("channel") == CHANNEL and not c.params.get("thread_ts")
    )
    assert f"by <@{REQUESTER}> via {CLIENT}" in json.dumps(root.params, ensure_ascii=False)
    requested = next(e for e in AuditTrail(redis_conn).export() if e.event == "requested")
    assert requested.deployment_id == deployment.id and requested.detail["via"] == CLIENT

    # ... and now web/dev is changing: a second change is refused
    assert call(mcp_http, "get_environment", {"environment": "web/dev"})["status"] == "changing"
    again = call(mcp_http, "request_change", {"environment": "web/dev", "size": "large"})
    assert again["created"] is False and "environment" in again["errors"]
