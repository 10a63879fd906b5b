"""The MCP server (`ecs-deploy-bot mcp`) driven by the official SDK's own client, over stdio (the
server spawned as `python -m bot.cli mcp`) and over streamable HTTP (the server on a free 127.0.0.1
port under uvicorn), against the real Redis, RQ workers, moto, the Slack stand-in and Terraform.

The access policy applies as for the Slack user the client acts as; a request made through MCP is
posted in ECS_DEPLOY_MCP_CHANNEL "via" the client and goes through the pipeline to the plan, where a
lead approves it in Slack (signed HTTP to the web process) and the requester cannot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import httpx2
import pytest
import redis
import requests
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import Implementation

from bot.embedded_redis import free_port
from core.policy.mcp_clients import token_sha256
from storage.audit import AuditTrail
from storage.store import DeploymentStore
from tests.harness.flow import (
    LEAD,
    OTHER,
    REQUESTER,
    PipelineRun,
    click,
    drive_to_input,
    ephemeral_to,
    eventually,
    give_values,
)
from tests.harness.processes import ROOT, run_worker_burst, stop_process
from tests.harness.records import REQUEST_FIELDS
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values

TOKEN = "mcp-test-token-0123456789abcdef"
CLIENT = "test-assistant"
CHANNEL = "C0MCPDEPLOY"
POLICY = f"""
defaults:
  approvers: [{LEAD}, {REQUESTER}]
  environments:
    dev:
profiles:
  deployer:
    requesters: [{REQUESTER}]
  other-account:
    requesters: [{OTHER}]
    assume_role_arn: arn:aws:iam::222233334444:role/DeployRole
mcp_clients:
  - name: {CLIENT}
    token_sha256: {token_sha256(TOKEN)}
    user: {REQUESTER}
"""
# The tools an assistant gets: reading and requesting, nothing that decides or changes infrastructure.
EXPECTED_TOOLS = {
    "list_profiles",
    "get_deployment",
    "request_deployment",
    "analyse_account",
    "get_analysis",
    "list_environments",
    "get_environment",
    "get_drift",
    "request_change",
}
# What no tool may do; a description may mention it only in a sentence saying it happens in Slack.
DANGEROUS = re.compile(
    r"\b(approv|apply|applie|destroy|cancel|unlock|delet|reject|force|terminat)", re.IGNORECASE
)
READ_ONLY_TOOLS = {
    "list_profiles",
    "get_deployment",
    "get_analysis",
    "list_environments",
    "get_environment",
    "get_drift",
}
REQUEST = {
    **REQUEST_FIELDS,
    "additional_tags": "team=platform",
    "vpc_cidr_block": "10.0.0.0/16",
    "lock_table": "terraform-state-lock",
}
T = TypeVar("T")


@pytest.fixture
def policy_yaml() -> str:
    """The policy of `pipeline_env` and `pipeline` (conftest): the one above."""
    return POLICY


@pytest.fixture
def pipeline_env(pipeline_env: dict[str, str]) -> dict[str, str]:
    """The pipeline's, with the MCP server's user and channel: the environment of the MCP server, the
    web process (`pipeline`, the bot's Slack side) and the workers."""
    return {**pipeline_env, "ECS_DEPLOY_MCP_USER": REQUESTER, "ECS_DEPLOY_MCP_CHANNEL": CHANNEL}


@pytest.fixture
def mcp_http(
    pipeline_env: dict[str, str], slack_api: SlackApiStandIn, redis_conn: redis.Redis
) -> Iterator[str]:
    """`ecs-deploy-bot mcp --http` on a free loopback port; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "mcp", "--http", "--port", str(port)],
        env={**os.environ, **pipeline_env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"mcp --http exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                requests.post(url, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


async def _over_http(url: str, token: str, work: Callable[[ClientSession], Awaitable[T]]) -> T:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, client_info=Implementation(name="pytest-http", version="1")) as session,
    ):
        await session.initialize()
        return await work(session)


def over_http(url: str, work: Callable[[ClientSession], Awaitable[T]]) -> T:
    return anyio.run(_over_http, url, TOKEN, work)


def call(url: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One tool call over HTTP; its structured result (fails on a tool error)."""

    async def work(session: ClientSession) -> dict[str, Any]:
        result = await session.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert isinstance(result.structured_content, dict), result
        return result.structured_content

    return over_http(url, work)


def modal_error(slack: SlackClientSim, field: str, value: str) -> str:
    """The Slack request form's message for `field` when it is given `value`."""
    metadata = json.dumps({"channel_id": "C_DEPLOYS", "team_id": "T111"})
    response = slack.view_submission(
        request_values(**{field: value}), user=REQUESTER, private_metadata=metadata
    )
    errors = response.json()["errors"]
    assert field in errors, errors
    return str(errors[field])


# -- stdio ------------------------------------------------------------------------------------------


def test_stdio_tools_resources_policy_and_modal_messages(
    pipeline_env: dict[str, str],
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bot.cli", "mcp"],
        env={**os.environ, **pipeline_env},
        cwd=str(ROOT),
    )

    async def session_run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with open(os.devnull, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(
                    read, write, client_info=Implementation(name="pytest-stdio", version="1")
                ) as session,
            ):
                await session.initialize()
                out["tools"] = (await session.list_tools()).tools
                out["templates"] = (await session.list_resource_templates()).resource_templates
                out["profiles"] = await session.call_tool("list_profiles", {})
                out["hidden_profile"] = await session.call_tool(
                    "request_deployment", {**REQUEST, "profile": "other-account"}
                )
                out["bad_account"] = await session.call_tool(
                    "request_deployment", {**REQUEST, "account_id": "12345"}
                )
                out["bad_cidr"] = await session.call_tool(
                    "request_deployment", {**REQUEST, "vpc_cidr_block": "8.8.0.0/16"}
                )
                out["unknown"] = await session.call_tool("get_deployment", {"deployment_id": "d-00000000"})
                out["resource_unknown"] = None
                try:
                    await session.read_resource("deployment://d-00000000")
                except Exception as exc:  # the SDK raises the server's error
                    out["resource_unknown"] = str(exc)
        return out

    out = anyio.run(session_run)

    # the tool set is exactly the read/request set, and nothing in it can decide or change anything
    tools = {tool.name: tool for tool in out["tools"]}
    assert DANGEROUS.search("approve_plan") and DANGEROUS.search("Run terraform apply")  # the check can fail
    assert set(tools) == EXPECTED_TOOLS
    for tool in tools.values():
        assert not DANGEROUS.search(f"{tool.name} {tool.title or ''}"), tool.name
        for sentence in re.split(r"(?<=\.) ", tool.description or ""):
            assert not DANGEROUS.search(sentence) or "slack" in sentence.lower(), (tool.name, sentence)
        assert tool.annotations is not None and tool.annotations.destructive_hint is False, tool.name
        assert tool.annotations.read_only_hint is (tool.name in READ_ONLY_TOOLS), tool.name
        assert tool.output_schema is not None, tool.name  # typed outputs
    assert {t.uri_template for t in out["templates"]} == {
        "deployment://{deployment_id}",
        "environment://{key}",
    }

    # the caller (ECS_DEPLOY_MCP_USER) sees only the profile the policy gives them
    profiles = out["profiles"].structured_content
    assert profiles["user_id"] == REQUESTER
    assert [p["profile"] for p in profiles["profiles"]] == ["deployer"]
    assert profiles["profiles"][0]["environments"] == ["dev"]

    # ... and cannot request with the hidden one: the form's own message, nothing stored
    hidden = out["hidden_profile"].structured_content
    assert hidden["created"] is False
    assert hidden["errors"]["profile"] == modal_error(pipeline, "profile", "other-account")
    assert out["bad_account"].structured_content["errors"]["account_id"] == modal_error(
        pipeline, "account_id", "12345"
    )
    assert out["bad_cidr"].structured_content["errors"]["vpc_cidr_block"] == modal_error(
        pipeline, "vpc_cidr_block", "8.8.0.0/16"
    )
    assert DeploymentStore(redis_conn).recent() == []
    assert out["unknown"].is_error and "No deployment d-00000000 is known" in str(out["unknown"].content)
    assert out["resource_unknown"] and "d-00000000" in out["resource_unknown"]

    # every call is in the audit trail with the client's name
    calls = [e for e in AuditTrail(redis_conn).export() if e.event == "mcp_call"]
    assert {e.detail["tool"] for e in calls} >= {"list_profiles", "request_deployment", "get_deployment"}
    assert {(e.actor, e.detail["client"]) for e in calls} == {(REQUESTER, "pytest-stdio")}


# -- HTTP -------------------------------------------------------------------------------------------


def test_http_refuses_a_missing_or_unknown_bearer_token(mcp_http: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert requests.post(mcp_http, json=body, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.post(mcp_http, json=body, headers=wrong, timeout=5).status_code == 401
    assert requests.post(mcp_http, json=body, headers={"Authorization": TOKEN}, timeout=5).status_code == 401

    async def list_tools(session: ClientSession) -> set[str]:
        return {tool.name for tool in (await session.list_tools()).tools}

    with pytest.raises(ExceptionGroup) as refused:  # the SDK's own client with a wrong token gets nowhere
        anyio.run(_over_http, mcp_http, "not-the-token", list_tools)
    assert refused.group_contains(MCPError)
    assert over_http(mcp_http, list_tools) == EXPECTED_TOOLS


@pytest.mark.e2e
def test_request_over_http_reaches_the_plan_and_a_lead_approves_in_slack(
    mcp_http: str,
    pipeline_env: dict[str, str],
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
) -> None:
    slack = pipeline
    store = DeploymentStore(redis_conn)

    # an analysis of the account, queued for a worker (nothing is posted or changed)
    analysis = call(
        mcp_http,
        "analyse_account",
        {"profile": "deployer", "account_id": "123456789012", "region": "us-east-1", "wait_seconds": 0},
    )
    assert analysis["state"] == "queued" and analysis["analysis_id"].startswith("a-")
    hidden = call(
        mcp_http,
        "analyse_account",
        {"profile": "other-account", "account_id": "222233334444", "region": "us-east-1", "wait_seconds": 0},
    )
    assert hidden["state"] == "refused" and "profile" in hidden["errors"]

    # the request: stored with its first job, root message in the MCP channel "via" the client
    outcome = call(mcp_http, "request_deployment", REQUEST)
    assert outcome["created"] is True and outcome["channel_id"] == CHANNEL
    deployment_id = outcome["deployment_id"]
    deployment = store.get(deployment_id)
    assert deployment.requester_id == REQUESTER and deployment.requested_via == CLIENT
    root = slack_api.wait_for(
        "chat.postMessage", lambda c: c.params.get("channel") == CHANNEL and not c.params.get("thread_ts")
    )
    assert f"by <@{REQUESTER}> via {CLIENT}" in json.dumps(root.params, ensure_ascii=False)

    # the pipeline runs as usual: workers verify, analyse, prepare the backend and the workspace ...
    drive_to_input(PipelineRun(slack, slack_api, store, pipeline_env), deployment_id)
    done = call(mcp_http, "get_analysis", {"analysis_id": analysis["analysis_id"]})
    assert done["state"] == "done", done
    assert "AWS ACCOUNT ANALYSIS SUMMARY" in done["report"] and done["verdict"]
    give_values(slack, slack_api, store.get(deployment_id))
    run_worker_burst(pipeline_env)  # ... and terraform plan
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval", deployment.status_detail

    seen = call(mcp_http, "get_deployment", {"deployment_id": deployment_id})
    assert seen["status"] == "awaiting_approval" and seen["requested_via"] == CLIENT
    assert seen["plan"] and "to add" in seen["plan"]["summary"] and seen["approvals"] == []
    assert seen["thread_link"] and CHANNEL in seen["thread_link"]
    assert [e["event"] for e in seen["timeline"]][:1] == ["requested"]

    async def read(session: ClientSession) -> str:
        result = await session.read_resource(f"deployment://{deployment_id}")
        return str(getattr(result.contents[0], "text", ""))

    assert json.loads(over_http(mcp_http, read))["id"] == deployment_id

    # the request is the mapped user's: they cannot approve it themselves; a lead approves in Slack
    thread = deployment.thread_ts or ""
    click(slack, slack_api, thread, "plan_approve", REQUESTER)
    ephemeral_to(slack_api, REQUESTER, "cannot approve it yourself")
    assert store.get(deployment_id).status.value == "awaiting_approval"
    click(slack, slack_api, thread, "plan_approve", LEAD)
    eventually(lambda: store.get(deployment_id).status.value == "approved")
    run_worker_burst(pipeline_env)
    deployment = store.get(deployment_id)
    assert deployment.status.value == "deployed", deployment.status_detail
    approved = call(mcp_http, "get_deployment", {"deployment_id": deployment_id})
    assert [a["approver_id"] for a in approved["approvals"]] == [LEAD]

    # the audit trail: every MCP call with the client's name, the request "via" it
    events = list(AuditTrail(redis_conn).export())
    calls = [e for e in events if e.event == "mcp_call"]
    assert {e.detail["tool"] for e in calls} >= {"analyse_account", "request_deployment", "get_deployment"}
    assert {(e.actor, e.detail["client"]) for e in calls} == {(REQUESTER, CLIENT)}
    requested = next(e for e in events if e.event == "requested" and e.deployment_id == deployment_id)
    assert requested.actor == REQUESTER and requested.detail["via"] == CLIENT
    assert TOKEN not in "\n".join(e.model_dump_json() for e in events)


# -- the policy's mcp_clients -----------------------------------------------------------------------

POLICY_HEAD = (
    "profiles:\n  deployer:\n    requesters: ['*']\n    approvers: [U0LEAD0001]\n    environments: {dev: }\n"
)


def test_mcp_clients_in_the_policy_map_tokens_to_users_and_refuse_mistakes() -> None:
    from core.policy.errors import PolicyError
    from core.policy.loading import parse_policy
    from core.policy.mcp_clients import authenticate

    policy = parse_policy(
        POLICY_HEAD + f"mcp_clients:\n  - {{name: a, token_sha256: {token_sha256('ta')}, user: U0AAAA0001}}\n"
        f"  - {{name: b, token_sha256: {token_sha256('tb')}, user: U0BBBB0001}}\n"
    )
    assert [(c.name, c.user_id) for c in policy.mcp_clients] == [("a", "U0AAAA0001"), ("b", "U0BBBB0001")]
    found = authenticate(policy.mcp_clients, "tb")
    assert found is not None and found.user_id == "U0BBBB0001"
    assert authenticate(policy.mcp_clients, "tc") is None and authenticate(policy.mcp_clients, None) is None
    assert token_sha256("ta") not in repr(policy.mcp_clients)  # hashes stay out of logs and reprs

    mistakes = {
        "  - {name: a, token_sha256: ta, user: U0AAAA0001}\n": "mcp_clients[0].token_sha256: token_sha256 must be",
        f"  - {{name: a, token: x, token_sha256: {token_sha256('x')}, user: U0A1}}\n": "mcp_clients[0].token:"
        " unknown key (allowed here: name, token_sha256, user)",
        f"  - {{name: a, token_sha256: {token_sha256('x')}, user: S0GROUP01}}\n": "is not a Slack user id",
        f"  - {{name: a, token_sha256: {token_sha256('x')}, user: U0A1}}\n"
        f"  - {{name: a, token_sha256: {token_sha256('y')}, user: U0A2}}\n": "two MCP clients have the same name",
        f"  - {{name: a, token_sha256: {token_sha256('x')}, user: U0A1}}\n"
        f"  - {{name: b, token_sha256: {token_sha256('x')}, user: U0A2}}\n": "the same token_sha256",
    }
    for entries, message in mistakes.items():
        with pytest.raises(PolicyError) as refused:
            parse_policy(POLICY_HEAD + "mcp_clients:\n" + entries, "policy.yml")
        assert message in str(refused.value) and "policy.yml:" in str(refused.value), str(refused.value)
