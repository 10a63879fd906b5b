"""Button clicks in deployment threads: ack at once, check who clicked, change state in one
transaction (so double clicks act once), then enqueue the next step or open a modal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import control
from bot.ids import Action
from bot.listeners.decided import replace_actions
from bot.payloads import BlockActions
from bot.services import Services
from bot.views.decisions import ThreadContext, edit_values_modal, missing_values_modal, reject_modal
from bot.views.messages import text_message
from core.approval import ApprovalOutcome, ApprovalResult, decision_text, record_approval
from core.conflicts import apply_recommendations
from core.logs import get_logger
from core.models import Deployment, DeploymentStatus, utcnow
from core.policy import Decision, SlackIdentity
from core.queue import Step, enqueue_step
from core.steering import may_override, may_steer
from core.store import DeploymentNotFound
from core.tfvars import USER_VALUE_LABELS

log = get_logger(__name__)
STORE_DOWN = "The bot cannot reach its store right now; nothing changed. Try again in a minute."
Handler = Callable[[Services, BlockActions, Deployment, SlackIdentity, WebClient, dict[str, Any]], None]


class Refusal(Exception):
    """A click that changes nothing; the clicker is told why (ephemerally)."""


def register(app: App, services: Services) -> None:
    handlers: dict[Action, Handler] = {
        Action.APPLY_RECOMMENDATIONS: apply_recommendations_clicked,
        Action.KEEP_VALUES: keep_values_clicked,
        Action.OVERRIDE_PERMISSIONS: override_clicked,
        Action.RUN_FULL_ANALYSIS: full_analysis_clicked,
        Action.CANCEL: cancel_clicked,
        Action.FIX_BACKEND: fix_backend_clicked,
        Action.PROVIDE_VALUES: provide_values_clicked,
        Action.APPROVE: approve_clicked,
        Action.REJECT: reject_clicked,
        Action.EDIT_VALUES: edit_values_clicked,
        Action.REPLAN: replan_clicked,
    }
    for action, handler in handlers.items():
        app.action(action.value)(_listener(services, handler))


def _listener(services: Services, handler: Handler) -> Callable[..., None]:
    def listener(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = BlockActions.model_validate(body)
        channel = (
            click.channel.id if click.channel else (click.container.channel_id if click.container else None)
        )
        deployment_id = click.action.value.split(":", 1)[0]
        action = click.action.action_id
        try:
            deployment = services.store.get(deployment_id)
            user = services.identity(click.user.id)
            handler(services, click, deployment, user, client, body)
            services.audit.record("action", deployment_id, click.user.id, action=action, outcome="done")
        except Refusal as refusal:
            services.audit.record("refused", deployment_id, click.user.id, action=action, reason=str(refusal))
            _tell(services, channel, click.user.id, str(refusal))
        except DeploymentNotFound:
            _tell(services, channel, click.user.id, "That deployment is no longer known to the bot.")
        except redis.RedisError:
            _tell(services, channel, click.user.id, STORE_DOWN)

    return listener


def _tell(services: Services, channel: str | None, user: str, text: str) -> None:
    if channel:
        services.notifier.ephemeral(channel, user, text)


def _require(decision: Decision) -> None:
    if not decision.allowed:
        raise Refusal(decision.reason)


def _enqueue(
    services: Services, step: Step, deployment_id: str, options: dict[str, str] | None = None
) -> None:
    enqueue_step(services.redis, services.settings, step, deployment_id, options=options)


def _move(
    services: Services,
    deployment: Deployment,
    expected: set[DeploymentStatus],
    to: DeploymentStatus,
    detail: str,
    **updates: Any,
) -> Deployment:
    """Change status only from an expected one, atomically: a second click finds it moved and is refused."""

    def change(d: Deployment) -> Deployment | None:
        if d.status not in expected:
            return None
        return d.with_status(to, detail).model_copy(update=updates)

    moved, changed = services.store.transition(deployment.id, change)
    if not changed:
        raise Refusal(f"Nothing to do: the deployment is now {moved.status.label.split(' ', 1)[-1].lower()}.")
    services.notifier.refresh_root(moved)
    return moved


def _decided(services: Services, click: BlockActions, body: dict[str, Any], text: str) -> None:
    """Replace the clicked message's buttons by what was decided, so nothing stale can be clicked.
    Slack sends the clicked message's blocks with the click; those are what we keep."""
    message = body.get("message") or {}
    channel = click.channel.id if click.channel else None
    if click.container and click.container.message_ts and channel:
        replace_actions(services.client, channel, click.container.message_ts, message, text)


# -- analysis --------------------------------------------------------------------------------------


def apply_recommendations_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    if not deployment.recommendations:
        raise Refusal("There are no recommendations to apply.")
    try:
        request, changed = apply_recommendations(deployment.request, deployment.recommendations)
    except ValueError as exc:
        raise Refusal(f"The recommendations cannot be applied: {exc}") from exc
    moved = _move(
        services,
        deployment,
        {DeploymentStatus.AWAITING_DECISION},
        DeploymentStatus.PREPARING_BACKEND,
        "recommendations applied",
        request=request,
    )
    _decided(services, click, body, f":white_check_mark: Recommendations applied by <@{user.user_id}>.")
    services.notifier.post(
        moved,
        text_message(
            "*Values changed by the analysis:*\n" + "\n".join(f"• {line}" for line in changed)
            if changed
            else "No value needed changing."
        ),
    )
    _enqueue(services, Step.BACKEND, moved.id)


def keep_values_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    if deployment.analysis_blocking:
        raise Refusal("The analysis found a blocking problem; the values cannot be kept as they are.")
    _move(
        services,
        deployment,
        {DeploymentStatus.AWAITING_DECISION},
        DeploymentStatus.PREPARING_BACKEND,
        "values kept",
    )
    _decided(services, click, body, f":white_check_mark: <@{user.user_id}> kept the requested values.")
    _enqueue(services, Step.BACKEND, deployment.id)


def override_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_override(services.policy, user, deployment))
    moved = _move(
        services,
        deployment,
        {DeploymentStatus.AWAITING_DECISION},
        DeploymentStatus.ANALYSING,
        f"permission check overridden by {user.user_id}",
        permission_override_by=user.user_id,
    )
    _decided(services, click, body, f":warning: Permission findings overridden by <@{user.user_id}>.")
    _enqueue(services, Step.ANALYSE, moved.id, {"full": "1"})


def full_analysis_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    _move(
        services,
        deployment,
        {DeploymentStatus.AWAITING_DECISION},
        DeploymentStatus.ANALYSING,
        "full analysis",
    )
    _decided(services, click, body, f":mag: Full analysis requested by <@{user.user_id}>.")
    _enqueue(services, Step.ANALYSE, deployment.id, {"full": "1"})


def cancel_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    try:
        result = control.cancel(services, user, deployment.id, force=False)
    except control.ControlRefused as refused:
        raise Refusal(str(refused)) from refused
    text = f":no_entry_sign: Cancelled by <@{user.user_id}>."
    _decided(services, click, body, text)
    control.announce_cancel(services, result, text)


def fix_backend_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    _move(
        services,
        deployment,
        {DeploymentStatus.AWAITING_BACKEND_FIX},
        DeploymentStatus.PREPARING_BACKEND,
        "fixing the state bucket",
    )
    _decided(services, click, body, f":wrench: Bucket fixes confirmed by <@{user.user_id}>.")
    _enqueue(services, Step.BACKEND, deployment.id, {"fix": "1"})


def provide_values_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    if deployment.status is not DeploymentStatus.AWAITING_INPUT or not deployment.missing_values:
        raise Refusal("No values are needed right now.")
    variables = [(name, *USER_VALUE_LABELS.get(name, (name, ""))) for name in deployment.missing_values]
    _open(client, click, missing_values_modal(_context(click, deployment), variables))


def approve_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    attempt = _attempt(click)
    outcome: list[ApprovalResult] = []

    def change(d: Deployment) -> Deployment:
        seen = d.approval.binding if d.approval.binding and d.approval.binding.attempt == attempt else None
        result = record_approval(
            d.approval,
            services.policy,
            user=user,
            profile=d.request.profile,
            environment=d.request.environment,
            requester_id=d.requester_id,
            binding_seen=seen if d.status is DeploymentStatus.AWAITING_APPROVAL else None,
            now=utcnow(),
            ttl=_ttl(services),
        )
        outcome[:] = [result]
        update: dict[str, Any] = {"approval": result.state}
        if result.outcome is ApprovalOutcome.APPROVED_READY:
            return d.with_status(DeploymentStatus.APPROVED_QUEUED, "approved").model_copy(update=update)
        return d.model_copy(update=update)

    updated = services.store.update(deployment.id, change)
    result = outcome[0]
    log.info("approval_click", deployment_id=deployment.id, user=user.user_id, outcome=result.outcome.value)
    binding = result.state.binding
    services.audit.record(
        "approval" if result.allowed else "approval_refused",
        deployment.id,
        user.user_id,
        plan_sha256=binding.plan_sha256 if binding else None,
        outcome=result.outcome.value,
        reason=result.message,
    )
    if not result.allowed:
        raise Refusal(result.message)
    text = decision_text(result.state, environment=deployment.request.environment)
    if result.apply_now:
        _decided(services, click, body, f":white_check_mark: {text}")
        services.notifier.refresh_root(updated)
        services.notifier.post(
            updated, text_message(f":white_check_mark: {text}. Applying exactly this plan.")
        )
        _enqueue(services, Step.APPLY, updated.id)
    else:
        services.notifier.post(updated, text_message(f":ballot_box_with_check: {text}"))


def reject_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    if deployment.status is not DeploymentStatus.AWAITING_APPROVAL:
        raise Refusal("This plan is no longer waiting for a decision.")
    _open(client, click, reject_modal(_context(click, deployment)))


def edit_values_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    _require(may_steer(services.policy, user, deployment))
    if (
        deployment.status in {DeploymentStatus.APPLYING, DeploymentStatus.APPROVED_QUEUED}
        or deployment.status.is_final
    ):
        raise Refusal("Values can only be edited while the plan is waiting for review.")
    _open(client, click, edit_values_modal(_context(click, deployment), deployment))


def replan_clicked(
    services: Services,
    click: BlockActions,
    deployment: Deployment,
    user: SlackIdentity,
    client: WebClient,
    body: dict[str, Any],
) -> None:
    try:
        result = control.replan(services, user, deployment.id)
    except control.ControlRefused as refused:
        raise Refusal(str(refused)) from refused
    text = f":arrows_counterclockwise: Re-plan requested by <@{user.user_id}>; approvals of this plan no longer count."
    _decided(services, click, body, text)
    control.announce_replan(services, result, text)


# -- helpers ---------------------------------------------------------------------------------------


def _attempt(click: BlockActions) -> int | None:
    _, _, attempt = click.action.value.partition(":")
    return int(attempt) if attempt.isdigit() else None


def _context(click: BlockActions, deployment: Deployment) -> ThreadContext:
    return ThreadContext(
        deployment_id=deployment.id,
        channel_id=deployment.channel_id,
        message_ts=click.container.message_ts if click.container else None,
        attempt=_attempt(click),
    )


def _open(client: WebClient, click: BlockActions, view: Any) -> None:
    if not click.trigger_id:
        raise Refusal("Slack did not send what is needed to open a form; try again.")
    try:
        client.views_open(trigger_id=click.trigger_id, view=view)
    except SlackApiError as exc:
        log.warning("views_open_failed", error=exc.response.get("error"))
        raise Refusal("The form could not be opened; try again.") from exc


def _ttl(services: Services) -> Any:
    from datetime import timedelta

    return timedelta(hours=services.settings.approval_ttl_hours)
