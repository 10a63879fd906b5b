"""The MCP server's environment tools: list_environments, get_environment, the `environment://{key}`
resource and get_drift (read-only), and request_change (a CHANGE deployment, as the Slack change form
makes one).

Nothing here decides who sees what: an environment is visible under core.visibility's rule, applied by
bot/environments.py (the rule `/ecs-deploy envs` and App Home follow), and a change request goes
through bot/changes.py — the change form's own validation (same messages per field), the same
refusals, the same deployment, posted as the Slack change flow posts it.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from bot.environments import EnvironmentEntry, visible_environments
from bot.mcp.caller import Audited
from bot.mcp.views import DriftView, EnvironmentList, EnvironmentView, drift_view, environment_view
from bot.services import Services
from core.environments import Environment, choose_environment, parse_environment_ref
from core.visibility import may_see_environment
from storage.drift import DriftStore
from storage.environments import EnvironmentStore

UNKNOWN_ENVIRONMENT = "No environment {name} is known to the bot."
SEVERAL = (
    "{name} names several environments: {keys}. Name one by its key, or as"
    " application/environment@account/region."
)
MAX_NAME = 120

EnvironmentName = Annotated[
    str,
    Field(
        description="The environment: its key ({application}-{environment}-{account}-{region}, from"
        " list_environments), or application/environment (e.g. web/dev), or"
        " application/environment@account/region when that name lives in several accounts or regions"
    ),
]


def register_environment_tools(
    server: MCPServer, services: Services, *, audited: Audited, read: ToolAnnotations
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

    def view(entry: EnvironmentEntry) -> EnvironmentView:
        key = str(entry.environment.key)
        return environment_view(
            entry.environment,
            state=entry.state.value,
            latest=entry.latest,
            branch_prefix=services.settings.config_branch_prefix,
            drift=drifts.get(key),
        )

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
            environments=[
                environment_view(
                    entry.environment,
                    state=entry.state.value,
                    latest=entry.latest,
                    branch_prefix=services.settings.config_branch_prefix,
                    drift=drift.get(key),
                )
                for entry, key in zip(entries, keys, strict=True)
            ],
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
        return view(find_visible(caller.user_id, environment))

    @server.resource(
        "environment://{key}",
        name="environment",
        description="An environment as JSON (the same view as get_environment), by its key",
        mime_type="application/json",
    )
    def environment_resource(key: str, ctx: Context) -> str:
        caller = audited(ctx, "resource:environment", key.strip()[:MAX_NAME])
        return view(find_visible(caller.user_id, key)).model_dump_json(indent=2)

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
