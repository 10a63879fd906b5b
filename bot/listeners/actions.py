"""Button clicks in deployment threads: ack at once, check who clicked, change state in one
transaction (so double clicks act once), then enqueue the next step or open a modal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View

from bot import control
from bot.ids import Action
from bot.listeners.click_audit import record_click
from bot.listeners.decided import decision_entries, replace_actions
from bot.outbox import OutboxEntry
from bot.payloads import BlockActions
from bot.services import Services
from bot.views import approval as approval_views
from bot.views import clicks
from bot.views import destroy as destroy_views
from bot.views.access import reason_text
from bot.views.clicks import STORE_DOWN
from bot.views.config_commit import RETRY_WRONG_ENVIRONMENT, retry_requested
from bot.views.decisions import ThreadContext, edit_values_modal, missing_values_modal, reject_modal
from bot.views.messages import Message
from core import lifecycle
from core.analysis.recommendations import apply_recommendations
from core.approval import ApprovalOutcome, ApprovalResult, record_approval
from core.backend_confirm import may_confirm_fix
from core.lifecycle import DeploymentKind, Move
from core.logs import get_logger
from core.models import Deployment, utcnow
from core.policy.access import Decision
from core.policy.principals import SlackIdentity
from core.steering import may_override, may_steer
from core.tfvars.poc_idp import USER_VALUE_LABELS
from storage.queue import enqueue_commit_config
from storage.store import DeploymentNotFound

log = get_logger(__name__)


class Refusal(Exception):
    """A click that changes nothing; the clicker is told why (ephemerally)."""


@dataclass(frozen=True)
class Clicked:
    """One click, with what every handler needs to answer it."""

    services: Services
    click: BlockActions
    deployment: Deployment
    user: SlackIdentity
    client: WebClient
    body: dict[str, Any]

    @property
    def attempt(self) -> int | None:
        """The plan attempt a plan button was rendered for ("<deployment id>:<attempt>")."""
        _, _, attempt = self.click.action.value.partition(":")
        return int(attempt) if attempt.isdigit() else None

    def require(self, decision: Decision) -> None:
        if not decision.allowed:
            raise Refusal(reason_text(decision))

    def may_steer(self) -> None:
        self.require(may_steer(self.services.policy, self.user, self.deployment))

    def advance(
        self,
        move: Move,
        detail: str,
        decided: str | None = None,
        options: dict[str, str] | None = None,
        said: Message | None = None,
        **updates: Any,
    ) -> Deployment:
        """Make `move` (core.lifecycle: refused unless the table allows it from the current status)
        and enqueue the job it starts (with `options`), in one transaction (a second
        click finds it moved and is refused; a status never waits for a job that was not queued),
        with the root refresh, the clicked buttons replaced by `decided` (default: the move's
        clicks.decided_by line) and the thread message `said` queued in the outbox in that same
        transaction (so they reach Slack before anything the job posts)."""
        notifier = self.services.notifier
        text = decided if decided is not None else clicks.decided_by(move, self.user.user_id)
        job = lifecycle.job_of(move)
        enqueue = self.services.enqueue_in(job, options) if job else None

        def change(d: Deployment) -> Deployment | None:
            return lifecycle.attempt(d, move, detail, **updates)

        def also(pipe: Any, deployment: Deployment) -> None:
            said_entry = notifier.post_entry(deployment, said) if said is not None else None
            notifier.queue_in(
                pipe, notifier.root_entry(deployment.id), *self.decision(deployment, text), said_entry
            )
            if enqueue is not None:
                enqueue(pipe, deployment)

        moved, changed = self.services.store.transition(self.deployment.id, change, also=also)
        if not changed:
            raise Refusal(clicks.nothing_to_do(moved))
        notifier.flush(moved.id)
        return moved

    def decision(self, deployment: Deployment, text: str) -> list[OutboxEntry]:
        """The outbox entry replacing the clicked message's buttons by `text` (see decided.py)."""
        container = self.click.container
        ts = container.message_ts if container else None
        return decision_entries(self.services.notifier, deployment, ts, self.body.get("message") or {}, text)

    def decided(self, text: str) -> None:
        """Replace the clicked message's buttons by what was decided, so nothing stale can be clicked.
        Slack sends the clicked message's blocks with the click; those are what we keep."""
        container = self.click.container
        if container and container.message_ts:
            replace_actions(
                self.services.notifier,
                self.deployment,
                container.message_ts,
                self.body.get("message") or {},
                text,
            )

    def open(self, view: View) -> None:
        if not self.click.trigger_id:
            raise Refusal(clicks.NO_TRIGGER)
        try:
            self.client.views_open(trigger_id=self.click.trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("views_open_failed", error=exc.response.get("error"))
            raise Refusal(clicks.FORM_FAILED) from exc

    def thread_context(self) -> ThreadContext:
        container = self.click.container
        return ThreadContext(
            deployment_id=self.deployment.id,
            channel_id=self.deployment.channel_id,
            message_ts=container.message_ts if container else None,
            attempt=self.attempt,
        )


Handler = Callable[[Clicked], None]


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
        Action.RETRY_CONFIG_COMMIT: retry_config_commit_clicked,
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
        deployment_id = _deployment_of(click)
        action = click.action.action_id
        try:
            deployment = services.store.get(deployment_id)
            handler(Clicked(services, click, deployment, services.identity(click.user.id), client, body))
            services.audit.record("action", deployment_id, click.user.id, action=action, outcome="done")
        except Refusal as refusal:
            services.audit.record("refused", deployment_id, click.user.id, action=action, reason=str(refusal))
            _tell(services, channel, click.user.id, str(refusal))
        except DeploymentNotFound:
            _tell(services, channel, click.user.id, clicks.DEPLOYMENT_GONE)
        except redis.RedisError:
            _tell(services, channel, click.user.id, STORE_DOWN)

    return listener


def _deployment_of(click: BlockActions) -> str:
    """The deployment a button is about: its value is `{deployment id}[:{plan attempt}]`, except the
    config Retry's, `{environment key}:{deployment id}` (bot/ids.py)."""
    value = click.action.value
    if click.action.action_id == Action.RETRY_CONFIG_COMMIT.value:
        return value.rpartition(":")[2]
    return value.split(":", 1)[0]


def _tell(services: Services, channel: str | None, user: str, text: str) -> None:
    if channel:
        services.notifier.ephemeral(channel, user, text)


# -- analysis and backend --------------------------------------------------------------------------


def apply_recommendations_clicked(c: Clicked) -> None:
    c.may_steer()
    if not c.deployment.recommendations:
        raise Refusal(clicks.NO_RECOMMENDATIONS)
    try:
        request, changed = apply_recommendations(c.deployment.request, c.deployment.recommendations)
    except ValueError as exc:
        raise Refusal(clicks.recommendations_unusable(exc)) from exc
    c.advance(
        Move.APPLY_RECOMMENDATIONS,
        "recommendations applied",
        said=clicks.values_changed_message(changed),
        request=request,
    )


def keep_values_clicked(c: Clicked) -> None:
    c.may_steer()
    if c.deployment.analysis_blocking:
        raise Refusal(clicks.BLOCKING_ANALYSIS)
    c.advance(Move.KEEP_VALUES, "values kept")


def override_clicked(c: Clicked) -> None:
    c.require(may_override(c.services.policy, c.user, c.deployment))
    c.advance(
        Move.OVERRIDE_PERMISSIONS,
        f"permission check overridden by {c.user.user_id}",
        options={"full": "1"},
        permission_override_by=c.user.user_id,
    )


def full_analysis_clicked(c: Clicked) -> None:
    c.may_steer()
    c.advance(Move.FULL_ANALYSIS, "full analysis", options={"full": "1"})


def fix_backend_clicked(c: Clicked) -> None:
    """Confirm the stored fix plan. A bucket the bot did not create needs an approver of the profile
    (self-approval rules apply); the confirmed plan goes with the job, which changes the bucket only
    if it still needs exactly those changes."""
    plan = c.deployment.backend_fix
    if plan is None:
        c.may_steer()
        raise Refusal(clicks.NO_BACKEND_FIX)
    c.require(may_confirm_fix(c.services.policy, c.user, c.deployment, plan))
    c.advance(
        Move.FIX_BACKEND,
        "fixing the state bucket",
        clicks.backend_fix_confirmed(plan.bucket, c.user.user_id, managed=plan.managed),
        options={"fix": "1"},
        backend_fix=plan.confirm(c.user.user_id, utcnow()),
    )


def provide_values_clicked(c: Clicked) -> None:
    c.may_steer()
    if not lifecycle.allows(c.deployment.status, Move.GIVE_VALUES) or not c.deployment.missing_values:
        raise Refusal(clicks.NO_VALUES_NEEDED)
    variables = [(name, *USER_VALUE_LABELS.get(name, (name, ""))) for name in c.deployment.missing_values]
    c.open(missing_values_modal(c.thread_context(), variables))


# -- control (shared with the /ecs-deploy subcommands) ----------------------------------------------


def cancel_clicked(c: Clicked) -> None:
    text = clicks.decided_by(Move.CANCEL, c.user.user_id)
    _control_clicked(
        lambda: control.cancel(
            c.services,
            c.user,
            c.deployment.id,
            force=False,
            say=lambda _: text,
            clicked=lambda d: c.decision(d, text),
        )
    )


def replan_clicked(c: Clicked) -> None:
    text = clicks.decided_by(Move.REPLAN, c.user.user_id)
    _control_clicked(
        lambda: control.replan(
            c.services, c.user, c.deployment.id, text, clicked=lambda d: c.decision(d, text)
        )
    )


def _control_clicked(act: Callable[[], object]) -> None:
    """A control button: the /ecs-deploy subcommand's rule, its refusal said as is (the move itself
    decides the clicked message and tells the thread)."""
    try:
        act()
    except control.ControlRefused as refused:
        raise Refusal(str(refused)) from refused


# -- the plan --------------------------------------------------------------------------------------


def approve_clicked(c: Clicked) -> None:
    services, user = c.services, c.user
    outcome: list[ApprovalResult] = []

    def change(d: Deployment) -> Deployment:
        result = record_approval(
            d.approval,
            services.policy,
            d.click(user, c.attempt, utcnow()),
            value_authors=frozenset(d.value_authors),
            ttl=timedelta(hours=services.settings.approval_ttl_hours),
            destroy=d.kind is DeploymentKind.DESTROY,
        )
        outcome[:] = [result]
        update: dict[str, Any] = {"approval": result.state}
        if result.outcome is ApprovalOutcome.APPROVED_READY:
            return lifecycle.move(d, Move.APPROVE, "approved", **update)
        return d.model_copy(update=update)

    queue_apply = services.enqueue_in(lifecycle.job_started_by(Move.APPROVE))
    notifier = services.notifier

    def apply_if_ready(pipe: Any, deployment: Deployment) -> None:
        if outcome[0].apply_now:  # exactly one click's transition is APPROVED_READY
            # the decision and the notice enter the outbox with the apply job: ahead of its messages
            state, environment = outcome[0].state, deployment.request.environment
            notifier.queue_in(
                pipe,
                *c.decision(deployment, approval_views.ready_decision(state, environment)),
                notifier.root_entry(deployment.id),
                notifier.post_entry(deployment, approval_views.ready_message(state, environment)),
            )
            queue_apply(pipe, deployment)

    updated, _ = services.store.transition(c.deployment.id, change, also=apply_if_ready)
    result = outcome[0]
    log.info("approval_click", deployment_id=updated.id, user=user.user_id, outcome=result.outcome.value)
    record_click(services, updated.id, user.user_id, result, approval_views.click_text(result))
    if not result.allowed:
        raise Refusal(approval_views.click_text(result))
    if result.apply_now:
        notifier.flush(updated.id)  # queued with the apply job (above)
    else:
        waiting = (
            destroy_views.waiting_message(result.state)
            if updated.kind is DeploymentKind.DESTROY
            else approval_views.waiting_message(result.state, updated.request.environment)
        )
        notifier.post(updated, waiting)


def reject_clicked(c: Clicked) -> None:
    if not lifecycle.allows(c.deployment.status, Move.REJECT):
        raise Refusal(clicks.NOT_WAITING_FOR_DECISION)
    c.open(reject_modal(c.thread_context()))


def edit_values_clicked(c: Clicked) -> None:
    c.may_steer()
    if not lifecycle.edit_form_opens(c.deployment.status):
        raise Refusal(clicks.NOT_EDITABLE)
    c.open(edit_values_modal(c.thread_context(), c.deployment))


# -- the environment's configuration in the repository ----------------------------------------------


def retry_config_commit_clicked(c: Clicked) -> None:
    """Queue the configuration commit again (after a failed push): the requester, or an approver
    (lead) of the deployment's profile."""
    environment_key = c.click.action.value.rpartition(":")[0]
    if environment_key != c.deployment.request.environment_key:
        raise Refusal(RETRY_WRONG_ENVIRONMENT)
    c.may_steer()
    services = c.services
    enqueue_commit_config(services.redis, services.settings, environment_key, c.deployment.id)
    c.decided(retry_requested(c.user.user_id))
