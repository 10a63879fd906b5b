"""The MCP server's environment tools: list_environments, get_environment, the `environment://{key}`
resource and get_drift (read-only), and request_change (a CHANGE deployment, as the Slack change form
makes one).

Nothing here decides who sees what: an environment is visible under core.visibility's rule, applied by
bot/environments.py (the rule `/ecs-deploy envs` and App Home follow), and a change request goes
through bot/changes.py — the change form's own validation (same messages per field), the same
refusals, the same deployment, posted as the Slack change flow posts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import redis
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from bot import changes
from bot.control import ControlRefused
from bot.environments import EnvironmentEntry, visible_environments
from bot.ids import INPUT_ACTION, BlockId
from bot.mcp.arguments import STORE_DOWN, ChannelArg, field_errors
from bot.mcp.caller import Audited, Caller
from bot.mcp.views import (
    SEVERAL,
    UNKNOWN_ENVIRONMENT,
    DriftView,
    EnvironmentList,
    EnvironmentView,
    RequestOutcome,
    change_requested,
    drift_view,
    environment_view,
)
from bot.services import Services
from bot.views import change_modal
from core.changes import PlannedChange, current_form
from core.drift import DriftRecord
from core.environments import Environment, choose_environment, parse_environment_ref
from core.logs import get_logger
from core.visibility import may_see_environment
from storage.drift import DriftStore
from storage.environments import EnvironmentStore

log = get_logger(__name__)
TargetChannel = Callable[[Caller, str], str | dict[str, str]]
RefusedRequest = Callable[[Caller, dict[str, str]], RequestOutcome]
MAX_NAME = 120

EnvironmentName = Annotated[
    str,
    Field(
        description="The environment: its key ({application}-{environment}-{account}-{region}, from"
        " list_environments), or application/environment (e.g. web/dev), or"
        " application/environment@account/region when that name lives in several accounts or regions"
    ),
]

# The change form's fields as tool arguments (None: keep the environment's current value).
ChangeSize = Annotated[str | None, Field(description="Setup size: 'small', 'medium' or 'large'")]
ChangeTags = Annotated[
    str | None, Field(description="Extra AWS tags, one key=value per line (replaces the current ones)")
]
ChangeEmails = Annotated[str | None, Field(description="Alarm e-mail addresses, separated by commas")]
ChangeDns = Annotated[str | None, Field(description="The DNS name, e.g. web.example.com")]
ChangeRef = Annotated[
    str | None,
    Field(
        description="A branch, tag or commit of the Terraform repository (omitted: the commit of the last apply)"
    ),
]
# The change form's block ids -> the tool's argument names (for per-field errors).
CHANGE_FIELDS = {
    BlockId.SIZE.value: "size",
    BlockId.TAGS.value: "additional_tags",
    change_modal.ALARM_EMAILS_BLOCK: "alarm_emails",
    change_modal.DNS_NAME_BLOCK: "dns_name",
    change_modal.REF_BLOCK: "repo_ref",
}


def register_environment_tools(
    server: MCPServer,
    services: Services,
    *,
    audited: Audited,
    target_channel: TargetChannel,
    refused_request: RefusedRequest,
    read: ToolAnnotations,
    request: ToolAnnotations,
) -> None:
    environments = EnvironmentStore(services.redis)
    drifts = DriftStore(services.redis)

    def entry_of(user_id: str, environment: Environment) -> EnvironmentEntry | None:
        """`environment` as `user_id` sees it, or None when the access policy hides it."""
        latest_id = environment.latest_deployment_id
        latest = services.store.find(latest_id) if latest_id else None
        if not may_see_environment(services.policy, services.identity(user_id), environment, latest):
            return None
        return EnvironmentEntry(environment=environment, latest=latest)

    def find_visible(user_id: str, name: str) -> EnvironmentEntry:
        """The one environment `name` names among those `user_id` may see; a ToolError otherwise (an
        environment they may not see is answered like one that does not exist)."""
        name = name.strip()[:MAX_NAME]
        exact = environments.find(name) if "/" not in name else None
        if exact is not None:
            entry = entry_of(user_id, exact)
            if entry is not None:
                return entry
            raise ToolError(UNKNOWN_ENVIRONMENT.format(name=name))
        ref = parse_environment_ref(name)
        if ref is None:
            raise ToolError(UNKNOWN_ENVIRONMENT.format(name=name))
        candidates = choose_environment(environments.named(ref.application, ref.environment), ref)
        entries = [e for e in (entry_of(user_id, env) for env in candidates) if e is not None]
        if not entries:
            raise ToolError(UNKNOWN_ENVIRONMENT.format(name=name))
        if len(entries) > 1:
            raise ToolError(
                SEVERAL.format(name=name, keys=", ".join(str(e.environment.key) for e in entries))
            )
        return entries[0]

    def view(entry: EnvironmentEntry, drift: DriftRecord | None) -> EnvironmentView:
        return environment_view(
            entry.environment,
            state=entry.state.value,
            latest=entry.latest,
            branch_prefix=services.settings.config_branch_prefix,
            drift=drift,
        )

    def view_visible(user_id: str, name: str) -> EnvironmentView:
        entry = find_visible(user_id, name)
        return view(entry, drifts.get(str(entry.environment.key)))

    @server.tool(
        title="List environments",
        annotations=read,
        description="The environments ECS deployments created that you may see (those you requested and,"
        " for the leads of a profile, all of its own): live and changing ones first, then destroyed ones (destroying happens in Slack only)."
        " Each with its values, last change (kind, who, when, Slack thread), status, configuration"
        " branch and drift state. Read-only.",
    )
    def list_environments(ctx: Context) -> EnvironmentList:
        caller = audited(ctx, "list_environments")
        entries = visible_environments(services, caller.user_id)
        keys = [str(entry.environment.key) for entry in entries]
        drift = drifts.many(keys)
        return EnvironmentList(
            user_id=caller.user_id,
            environments=[view(entry, drift.get(key)) for entry, key in zip(entries, keys, strict=True)],
        )

    @server.tool(
        title="Get an environment",
        annotations=read,
        description="One environment: its values (the request and the values given beyond it), last"
        " change, status (live, changing, or destroyed through Slack), configuration branch and pull request, and drift"
        " state. Read-only.",
    )
    def get_environment(environment: EnvironmentName, ctx: Context) -> EnvironmentView:
        caller = audited(ctx, "get_environment", environment.strip()[:MAX_NAME])
        return view_visible(caller.user_id, environment)

    @server.resource(
        "environment://{key}",
        name="environment",
        description="An environment as JSON (the same view as get_environment), by its key",
        mime_type="application/json",
    )
    def environment_resource(key: str, ctx: Context) -> str:
        caller = audited(ctx, "resource:environment", key.strip()[:MAX_NAME])
        return view_visible(caller.user_id, key).model_dump_json(indent=2)

    @server.tool(
        title="Get the drift of an environment",
        annotations=read,
        description="The last drift check of an environment: whether it differs from its last deployment"
        " (changed outside Terraform, or changes Terraform would make), which resources and"
        " attributes (sensitive values masked as in a plan review), whether someone acknowledged it in"
        " Slack, and when the next check runs. Says so when no check has run yet. Read-only.",
    )
    def get_drift(environment: EnvironmentName, ctx: Context) -> DriftView:
        caller = audited(ctx, "get_drift", environment.strip()[:MAX_NAME])
        entry = find_visible(caller.user_id, environment)
        return drift_view(drifts.get(str(entry.environment.key)))

    @server.tool(
        title="Request a change of an environment",
        annotations=request,
        description="Request a change of a live environment: its size, tags, alarm e-mails, DNS name or"
        " Terraform repository ref (an omitted argument keeps the current value; the names, account,"
        " region, VPC CIDR and state backend never change). Validated exactly like the Slack change"
        " form (errors come back per field and nothing is stored). A valid change becomes a change"
        " deployment posted in Slack as requested by you via this client; the bot's workers plan it"
        " against the live state and people approve that plan in the Slack thread. Follow it with"
        " get_deployment.",
    )
    def request_change(
        environment: EnvironmentName,
        ctx: Context,
        size: ChangeSize = None,
        additional_tags: ChangeTags = None,
        alarm_emails: ChangeEmails = None,
        dns_name: ChangeDns = None,
        repo_ref: ChangeRef = None,
        channel: ChannelArg = "",
    ) -> RequestOutcome:
        caller = audited(ctx, "request_change", environment.strip()[:MAX_NAME])
        entry = find_visible(caller.user_id, environment)
        target = target_channel(caller, channel)
        env = entry.environment
        try:
            changes.check_may_change(services, caller.user_id, env)
            planned: PlannedChange | dict[str, str] = changes.parse_change_form(
                env,
                change_form_values(
                    env,
                    size=size,
                    additional_tags=additional_tags,
                    alarm_emails=alarm_emails,
                    dns_name=dns_name,
                    repo_ref=repo_ref,
                ),
            )
        except ControlRefused as refused:
            planned = {"environment": str(refused)}
        except changes.FieldErrors as invalid:
            planned = {CHANGE_FIELDS.get(block, block): message for block, message in invalid.errors.items()}
        if isinstance(planned, dict) or isinstance(target, dict):
            return refused_request(caller, field_errors(planned, target))
        try:
            deployment, _ = changes.start(
                services,
                env,
                planned,
                requester_id=caller.user_id,
                channel_id=None,
                team_id=services.directory.workspace_team_id(),
                submission_key=None,
                requested_via=caller.client,
                post_in=target,
            )
        except ControlRefused as refused:  # another deployment for it was stored first
            return refused_request(caller, field_errors({"environment": str(refused)}, target))
        except redis.RedisError:
            log.warning("store_unavailable", user=caller.user_id)
            raise ToolError(STORE_DOWN) from None
        return RequestOutcome(
            created=True,
            deployment_id=deployment.id,
            status=deployment.status.value,
            channel_id=deployment.channel_id,
            message=change_requested(deployment.id, env.key.short, planned.changed, deployment.channel_id),
        )


def change_form_values(
    environment: Environment,
    *,
    size: str | None,
    additional_tags: str | None,
    alarm_emails: str | None,
    dns_name: str | None,
    repo_ref: str | None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The change form as Slack would submit it: pre-filled with the environment's current values
    (core.changes.current_form, as the modal is), with the given arguments typed over them."""
    now = current_form(environment)
    fields = {
        BlockId.SIZE.value: now.size.value if size is None else size,
        BlockId.TAGS.value: "\n".join(f"{k}={v}" for k, v in now.additional_tags.items())
        if additional_tags is None
        else additional_tags,
        change_modal.ALARM_EMAILS_BLOCK: ", ".join(now.alarm_emails)
        if alarm_emails is None
        else alarm_emails,
        change_modal.DNS_NAME_BLOCK: now.dns_name if dns_name is None else dns_name,
        change_modal.REF_BLOCK: now.repo_ref if repo_ref is None else repo_ref,
    }
    return {block: {INPUT_ACTION: {"value": value}} for block, value in fields.items()}
