"""The MCP server: the bot's read and request tools for AI assistants, acting as a Slack user.

Who is calling (`Caller`): over stdio, the Slack user ECS_DEPLOY_MCP_USER, with the name the client
gives in its `initialize`; over HTTP, the `mcp_clients:` entry of the access policy whose token the
request carries (bot/mcp/http.py refuses any other request with 401 before it reaches a tool). From
then on the access policy applies as for that user, exactly as in Slack: profiles are filtered, the
request is validated by the request form's own function (bot.forms.parse_request, same messages per
field; an environment that exists or is being created is refused as the form refuses it, with the
same private Change it message in Slack), a deployment is visible only to its requester and its profile's approvers (core.visibility),
and a request made here is the mapped user's request — so they cannot approve it themselves unless
the policy allows it. Every tool call is recorded in the audit trail (`mcp_call`, with the client's
name and the tool), and a deployment it creates is audited `requested` with `via`.

The environment tools (list_environments, get_environment, get_drift, request_change and the
`environment://{key}` resource) are bot/mcp/environments.py's. A request may name the Slack channel it
is posted in (`channel`, bot/mcp/channels.py: one the bot and the caller are both members of); by
default it goes to ECS_DEPLOY_MCP_CHANNEL.

The tool set is read and request only: no tool approves, applies, destroys, cancels or unlocks
(tests/test_mcp.py lists the tools and fails if one could).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import redis
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from bot import environments
from bot.forms import parse_request
from bot.ids import INPUT_ACTION, BlockId
from bot.listeners.submissions import refuse_duplicate
from bot.mcp.arguments import STORE_DOWN, ChannelArg, field_errors
from bot.mcp.caller import Caller, CallerOf
from bot.mcp.channels import check_channel
from bot.mcp.environments import register_environment_tools
from bot.mcp.settings import McpSettings
from bot.mcp.views import (
    AnalysisView,
    DeploymentView,
    ProfileList,
    RequestOutcome,
    analysis_view,
    deployment_view,
    profile_views,
)
from bot.services import Services
from bot.views import environments as environment_views
from core.analysis.record import AccountAnalysis
from core.logs import get_logger
from core.models import Deployment, DeploymentRequest
from core.policy.mcp_clients import CLIENT_NAME, authenticate
from core.visibility import may_see
from storage.account_analysis import AnalysisStore
from storage.queue import Step, enqueue_step

log = get_logger(__name__)

SERVER_NAME = "ecs-deploy-bot"
INSTRUCTIONS = (
    "Read and request ECS deployments made with ecs-deploy-bot. You act as one Slack user under the"
    " bot's access policy. Requests are validated like the Slack form and posted to a Slack channel;"
    " the pipeline (AWS checks, state backend, terraform plan) then runs on the bot's workers and"
    " people approve the plan in the Slack thread. Live environments can be read (values, last change,"
    " drift) and a change of one requested the same way. No tool can approve, apply, destroy, cancel or"
    " unlock."
)
# Hints for the assistant: reading tools change nothing; the request tools add a record and a job,
# and destroy or overwrite nothing.
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
REQUEST = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
MAX_WAIT_SECONDS = 60
POLL_SECONDS = 0.5
ANALYSIS_JOB_TIMEOUT = 900
UNKNOWN_DEPLOYMENT = "No deployment {id} is known to the bot."
STDIO_FALLBACK_NAME = "a local MCP client"


def stdio_caller(user_id: str) -> CallerOf:
    """The stdio client acts as ECS_DEPLOY_MCP_USER; its name is what it says in `initialize`
    (kept only if it is a plain name)."""

    def caller(ctx: Context) -> Caller:
        params = ctx.session.client_params
        name = params.client_info.name if params is not None else ""
        name = name.strip()[:63]
        return Caller(user_id, name if CLIENT_NAME.fullmatch(name) else STDIO_FALLBACK_NAME)

    return caller


BEARER = re.compile(r"Bearer +(\S+)", re.IGNORECASE)


def bearer_token(authorization: str | None) -> str | None:
    match = BEARER.fullmatch((authorization or "").strip())
    return match.group(1) if match else None


def http_caller(services: Services) -> CallerOf:
    """The policy's `mcp_clients:` entry of the request's bearer token (the middleware already
    refused requests without one)."""

    def caller(ctx: Context) -> Caller:
        headers = ctx.headers or {}
        client = authenticate(services.policy.mcp_clients, bearer_token(headers.get("authorization")))
        if client is None:  # unreachable behind the middleware; fail closed anyway
            raise ToolError("Unauthorized: unknown MCP client.")
        return Caller(client.user_id, client.name)

    return caller


# The request form's fields, as tool arguments: plain strings validated by the form's own function.
Profile = Annotated[str, Field(description="AWS profile (one of list_profiles)")]
Situation = Annotated[str, Field(description="'existing' (the account has resources) or 'new'")]
Size = Annotated[str, Field(description="Setup size: 'small', 'medium' or 'large'")]
AccountId = Annotated[str, Field(description="The 12-digit AWS account id")]
Region = Annotated[str, Field(description="AWS region, e.g. us-east-1")]
Application = Annotated[str, Field(description="Application name (lower-case letters, digits, '-')")]
Environment = Annotated[str, Field(description="Environment name declared for the profile (list_profiles)")]
Tags = Annotated[str, Field(description="Extra AWS tags, one key=value per line")]
Cidr = Annotated[str, Field(description="Private VPC CIDR /16-/24 (default 10.0.0.0/16)")]
Bucket = Annotated[str, Field(description="Terraform state bucket (empty: tfstate-{account}-{region})")]
LockTable = Annotated[str, Field(description="DynamoDB lock table (default terraform-state-lock)")]


def _form_values(fields: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The tool's arguments in the shape of a submitted Slack form (block id = field name)."""
    return {field: {INPUT_ACTION: {"value": value}} for field, value in fields.items() if value != ""}


def build_server(services: Services, caller_of: CallerOf, mcp_settings: McpSettings) -> MCPServer:
    server: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)
    analyses = AnalysisStore(services.redis)

    def audited(ctx: Context, tool: str, subject: str = "-", **detail: Any) -> Caller:
        caller = caller_of(ctx)
        services.audit.record("mcp_call", subject, caller.user_id, tool=tool, client=caller.client, **detail)
        log.info("mcp_call", tool=tool, client=caller.client, user=caller.user_id)
        return caller

    def validate(caller: Caller, fields: dict[str, str]) -> DeploymentRequest | dict[str, str]:
        return parse_request(
            _form_values(fields), services.profiles_for(caller.user_id), services.policy.check_environment
        )

    def target_channel(caller: Caller, channel: str) -> str | dict[str, str]:
        """The channel a request is posted in: `channel` when the caller may use it (bot/mcp/channels.py),
        else ECS_DEPLOY_MCP_CHANNEL; {"channel": why} when neither is possible."""
        channel = channel.strip()
        if not channel:
            if mcp_settings.channel is None:
                raise ToolError(
                    "This MCP server has no deployment channel: an operator must set ECS_DEPLOY_MCP_CHANNEL"
                    " (or name a channel you and the bot are members of in `channel`)."
                )
            return mcp_settings.channel
        check = check_channel(services.notifier.client, channel, caller.user_id)
        return channel if check.allowed else {"channel": check.why}

    def refused_request(caller: Caller, errors: dict[str, str]) -> RequestOutcome:
        services.audit.record(
            "mcp_request_refused", "-", caller.user_id, client=caller.client, fields=",".join(sorted(errors))
        )
        return RequestOutcome(created=False, errors=errors, message="The request was refused; see errors.")

    def visible(caller: Caller, deployment_id: str) -> DeploymentView:
        deployment = services.store.find(deployment_id.strip()[:64])
        if deployment is None or not may_see(services.policy, services.identity(caller.user_id), deployment):
            raise ToolError(UNKNOWN_DEPLOYMENT.format(id=deployment_id.strip()[:64]))
        return deployment_view(deployment, services.audit.for_deployment(deployment.id))

    @server.tool(
        title="List my AWS profiles",
        annotations=READ,
        description="The AWS profiles you may request deployments with, and for each the environments it"
        " declares. Per environment, who approves its plans in Slack, how many approvals it needs and whether"
        " the requester may approve their own in Slack. Read-only.",
    )
    def list_profiles(ctx: Context) -> ProfileList:
        caller = audited(ctx, "list_profiles")
        allowed = services.profiles_for(caller.user_id)
        return ProfileList(
            user_id=caller.user_id,
            open_policy=services.policy.is_open,
            profiles=profile_views(services.policy, allowed),
        )

    @server.tool(
        title="Get a deployment",
        annotations=READ,
        description="A deployment's status, timeline (audit trail), plan summary (counts only, no values),"
        " the approvals given in Slack and the Slack thread link. Visible to its requester and to the leads"
        " of its profile only. Read-only.",
    )
    def get_deployment(
        deployment_id: Annotated[str, Field(description="The deployment id, e.g. d-1a2b3c4d")], ctx: Context
    ) -> DeploymentView:
        caller = audited(ctx, "get_deployment", deployment_id.strip()[:64])
        return visible(caller, deployment_id)

    @server.resource(
        "deployment://{deployment_id}",
        name="deployment",
        description="A deployment as JSON (the same view as get_deployment)",
        mime_type="application/json",
    )
    def deployment_resource(deployment_id: str, ctx: Context) -> str:
        caller = audited(ctx, "resource:deployment", deployment_id.strip()[:64])
        return visible(caller, deployment_id).model_dump_json(indent=2)

    @server.tool(
        title="Request a deployment",
        annotations=REQUEST,
        description="Request an ECS deployment, validated exactly like the Slack request form (errors come"
        " back per field and nothing is stored). A valid request is posted to the deployment channel in"
        " Slack as requested by you via this client; the bot's workers then verify access, analyse the"
        " account, prepare the state backend and run terraform plan, and people approve the plan in the"
        " Slack thread. Follow it with get_deployment.",
    )
    def request_deployment(
        profile: Profile,
        account_situation: Situation,
        size: Size,
        account_id: AccountId,
        region: Region,
        application: Application,
        environment: Environment,
        ctx: Context,
        additional_tags: Tags = "",
        vpc_cidr_block: Cidr = "",
        state_bucket: Bucket = "",
        lock_table: LockTable = "",
        channel: ChannelArg = "",
    ) -> RequestOutcome:
        caller = audited(ctx, "request_deployment", profile=profile[:64])
        parsed = validate(
            caller,
            {
                "profile": profile,
                "account_situation": account_situation,
                "size": size,
                "account_id": account_id,
                "region": region,
                "application": application,
                "environment": environment,
                "additional_tags": additional_tags,
                "vpc_cidr_block": vpc_cidr_block,
                "state_bucket": state_bucket,
                "lock_table": lock_table,
            },
        )
        target = target_channel(caller, channel)
        if isinstance(parsed, dict) or isinstance(target, dict):
            return refused_request(caller, field_errors(parsed, target))
        channel = target
        deployment = Deployment(
            request=parsed,
            requester_id=caller.user_id,
            team_id=services.directory.workspace_team_id(),
            channel_id=channel,
            requested_via=caller.client,
        )
        try:
            # as the request form: an environment that exists (or is being created) starts nothing
            with environments.request_guard(services, parsed) as alone:
                duplicate = environments.existing_for(services, caller.user_id, parsed, alone=alone)
                if duplicate is None:
                    deployment, _ = services.store.create(
                        deployment,
                        also=lambda pipe: enqueue_step(
                            services.redis, services.settings, Step.VERIFY, deployment.id, pipeline=pipe
                        ),
                    )
        except redis.RedisError:
            log.warning("store_unavailable", user=caller.user_id)
            raise ToolError(STORE_DOWN) from None
        if duplicate is not None:  # the form's answer, and the same private Change it message in Slack
            refuse_duplicate(services, caller.user_id, channel, duplicate)
            return refused_request(
                caller, {BlockId.APPLICATION.value: environment_views.duplicate_field_error(duplicate)}
            )
        log.info("deployment_requested", deployment_id=deployment.id, user=caller.user_id, via=caller.client)
        services.audit.record(
            "requested",
            deployment.id,
            caller.user_id,
            request=parsed.headline,
            profile=parsed.profile,
            via=caller.client,
        )
        services.notifier.ensure_thread(deployment)
        return RequestOutcome(
            created=True,
            deployment_id=deployment.id,
            status=deployment.status.value,
            channel_id=channel,
            message=f"Deployment {deployment.id} requested; its thread is in Slack channel {channel}."
            " Leads approve the plan there.",
        )

    @server.tool(
        title="Analyse an AWS account",
        annotations=REQUEST,
        description="Run the bot's read-only account scan and conflict analysis (overlapping CIDRs, names"
        " poc-idp would generate, quotas, permissions) for the values a request would use, on a worker."
        " Waits up to wait_seconds for the report; if it is not done by then, poll get_analysis with the"
        " returned analysis_id. Nothing is changed in the account and nothing is posted to Slack.",
    )
    def analyse_account(
        profile: Profile,
        account_id: AccountId,
        region: Region,
        ctx: Context,
        application: Application = "app",
        environment: Environment = "dev",
        size: Size = "small",
        account_situation: Situation = "existing",
        vpc_cidr_block: Cidr = "",
        wait_seconds: Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)] = 20,
    ) -> AnalysisView:
        caller = audited(ctx, "analyse_account", profile=profile[:64], account=account_id[:12])
        parsed = validate(
            caller,
            {
                "profile": profile,
                "account_situation": account_situation,
                "size": size,
                "account_id": account_id,
                "region": region,
                "application": application,
                "environment": environment,
                "vpc_cidr_block": vpc_cidr_block,
            },
        )
        if isinstance(parsed, dict):
            return AnalysisView(
                analysis_id="",
                state="refused",
                profile=profile,
                account_id=account_id,
                region=region,
                errors=parsed,
            )
        analysis = AccountAnalysis(request=parsed, requester_id=caller.user_id, requested_via=caller.client)
        analyses.submit(analysis, services.settings, ANALYSIS_JOB_TIMEOUT)
        services.audit.record(
            "analysis_requested", analysis.id, caller.user_id, client=caller.client, profile=parsed.profile
        )
        deadline = time.monotonic() + wait_seconds
        current = analysis
        while True:
            current = analyses.find(analysis.id) or current
            if current.state.finished or time.monotonic() >= deadline:
                return analysis_view(current)
            time.sleep(POLL_SECONDS)

    @server.tool(
        title="Get an account analysis",
        annotations=READ,
        description="The state and, once done, the report of an analysis started with analyse_account."
        " Read-only.",
    )
    def get_analysis(
        analysis_id: Annotated[str, Field(description="The analysis_id analyse_account returned")],
        ctx: Context,
    ) -> AnalysisView:
        caller = audited(ctx, "get_analysis", analysis_id.strip()[:64])
        analysis = analyses.find(analysis_id.strip()[:64])
        if analysis is None or analysis.requester_id != caller.user_id:
            raise ToolError(f"No analysis {analysis_id.strip()[:64]} is known (analyses are kept for a day).")
        return analysis_view(analysis)

    register_environment_tools(
        server,
        services,
        audited=audited,
        target_channel=target_channel,
        refused_request=refused_request,
        read=READ,
        request=REQUEST,
    )
    return server
