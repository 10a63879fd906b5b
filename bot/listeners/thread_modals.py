"""Submissions of the modals opened from thread buttons: reject reason, missing values, edited values."""

from __future__ import annotations

import re
from typing import Any

import redis
from pydantic import ValidationError
from slack_bolt import Ack, App

from bot.environments import superseded
from bot.forms import errors_from_validation, parse_user_value
from bot.ids import INPUT_ACTION, BlockId, Callback
from bot.listeners.click_audit import record_click
from bot.outbox import OutboxEntry
from bot.payloads import ViewSubmission, input_value
from bot.services import Services
from bot.views import clicks, form_errors
from bot.views.approval import click_text, rejected_decision, rejected_message
from bot.views.blocks import HINT_LIMIT, clip
from bot.views.decisions import EDITABLE_KNOBS, ThreadContext
from core import lifecycle, validation
from core.approval import ApprovalResult, record_rejection
from core.lifecycle import Move
from core.models import Deployment, DeploymentRequest, utcnow
from core.steering import may_steer
from storage.store import DeploymentNotFound

KNOB_PATTERNS = {
    "string": re.compile(r"[a-z0-9][a-z0-9.-]{1,40}"),
    "number": re.compile(r"[1-9]"),
    "bool": re.compile(r"true|false"),
}


def register(app: App, services: Services) -> None:
    @app.view(Callback.REJECT_MODAL.value)
    def rejected(ack: Ack, body: dict[str, Any]) -> None:
        _guarded(ack, body, services, reject)

    @app.view(Callback.MISSING_VALUES_MODAL.value)
    def values_given(ack: Ack, body: dict[str, Any]) -> None:
        _guarded(ack, body, services, provide_values)

    @app.view(Callback.EDIT_VALUES_MODAL.value)
    def values_edited(ack: Ack, body: dict[str, Any]) -> None:
        _guarded(ack, body, services, edit_values)


def _guarded(ack: Ack, body: dict[str, Any], services: Services, handler: Any) -> None:
    submission = ViewSubmission.model_validate(body)
    first_block = next(iter(submission.view.state.values), BlockId.REASON.value)
    try:
        context = ThreadContext.model_validate_json(submission.view.private_metadata)
        deployment = services.store.get(context.deployment_id)
    except (ValidationError, DeploymentNotFound):
        ack(response_action="errors", errors={first_block: form_errors.THREAD_FORM_OUT_OF_DATE})
        return
    except redis.RedisError:
        ack(response_action="errors", errors={first_block: form_errors.THREAD_FORM_STORE_DOWN})
        return
    try:
        handler(ack, submission, context, deployment, services)
    except redis.RedisError:
        ack(response_action="errors", errors={first_block: form_errors.THREAD_FORM_STORE_DOWN})


def _values(submission: ViewSubmission) -> dict[str, str]:
    values = submission.view.state.values
    return {block: (input_value(values, block, INPUT_ACTION) or "").strip() for block in values}


def reject(
    ack: Ack, submission: ViewSubmission, context: ThreadContext, deployment: Deployment, services: Services
) -> None:
    reason = _values(submission).get(BlockId.REASON.value, "")
    user = services.identity(submission.user.id)
    outcome: list[ApprovalResult] = []

    def change(d: Deployment) -> Deployment:
        result = record_rejection(
            d.approval, services.policy, d.click(user, context.attempt, utcnow()), reason=reason[:1000]
        )
        outcome[:] = [result]
        if result.allowed:
            return lifecycle.move(d, Move.REJECT, f"rejected by {user.user_id}", approval=result.state)
        return d.model_copy(update={"approval": result.state})

    updated = services.store.update(deployment.id, change)
    result = outcome[0]
    record_click(services, deployment.id, user.user_id, result, reason[:500])
    if not result.allowed:
        ack(response_action="errors", errors={BlockId.REASON.value: clip(click_text(result), HINT_LIMIT)})
        return
    ack()
    environment = deployment.request.environment
    services.notifier.decide(updated, context.message_ts, rejected_decision(result.state, environment))
    services.notifier.refresh_root(updated)
    services.notifier.post(updated, rejected_message(result.state, environment))


def _with_author(deployment: Deployment, user_id: str) -> list[str]:
    """Remember who chose values besides the requester: they cannot approve the plan alone."""
    if user_id == deployment.requester_id or user_id in deployment.value_authors:
        return deployment.value_authors
    return [*deployment.value_authors, user_id]


def provide_values(
    ack: Ack, submission: ViewSubmission, context: ThreadContext, deployment: Deployment, services: Services
) -> None:
    if not may_steer(services.policy, services.identity(submission.user.id), deployment).allowed:
        ack(
            response_action="errors",
            errors={next(iter(submission.view.state.values)): form_errors.ONLY_STEERERS_GIVE_VALUES},
        )
        return
    given, errors = {}, {}
    for block, raw in _values(submission).items():
        name = block.removeprefix("var:")
        try:
            given[name] = parse_user_value(name, raw)
        except ValueError as exc:
            errors[block] = str(exc)
    if errors:
        ack(response_action="errors", errors=errors)
        return

    def change(d: Deployment) -> Deployment | None:
        return lifecycle.attempt(
            d,
            Move.GIVE_VALUES,
            "values given",
            extra_values={**d.extra_values, **given},
            missing_values=[],
            value_authors=_with_author(d, submission.user.id),
        )

    notifier = services.notifier

    def notes(d: Deployment) -> list[OutboxEntry | None]:
        return [
            notifier.root_entry(d.id),
            notifier.post_entry(d, clicks.values_given_message(submission.user.id, given)),
        ]

    updated, changed = services.store.transition(
        deployment.id, change, also=services.start_in(lifecycle.job_started_by(Move.GIVE_VALUES), notes)
    )
    ack()
    services.audit.record("values_given", deployment.id, submission.user.id, variables=",".join(given))
    if changed:
        notifier.flush(updated.id)


def _knob(name: str, raw: str) -> object:
    kind = EDITABLE_KNOBS[name][2]
    if not KNOB_PATTERNS[kind].fullmatch(raw):
        raise ValueError(f"Expected {EDITABLE_KNOBS[name][1]}.")
    return int(raw) if kind == "number" else (raw == "true" if kind == "bool" else raw)


def edit_values(
    ack: Ack, submission: ViewSubmission, context: ThreadContext, deployment: Deployment, services: Services
) -> None:
    values = _values(submission)
    errors: dict[str, str] = {}
    if not may_steer(services.policy, services.identity(submission.user.id), deployment).allowed:
        ack(
            response_action="errors",
            errors={BlockId.SIZE.value: form_errors.ONLY_STEERERS_EDIT_VALUES},
        )
        return
    try:
        tags = validation.parse_tag_lines(values.get(BlockId.TAGS.value, ""))
    except ValueError as exc:
        errors[BlockId.TAGS.value], tags = str(exc), {}
    knobs: dict[str, object] = {}
    for name in EDITABLE_KNOBS:
        raw = values.get(f"var:{name}", "")
        if raw:
            try:
                knobs[name] = _knob(name, raw)
            except ValueError as exc:
                errors[f"var:{name}"] = str(exc)
    request: DeploymentRequest | None = None
    try:
        request = DeploymentRequest.model_validate(
            {
                **deployment.request.model_dump(),
                "size": values.get(BlockId.SIZE.value) or deployment.request.size,
                "vpc_cidr_block": values.get(BlockId.VPC_CIDR.value, ""),
                "additional_tags": tags,
            }
        )
    except ValidationError as exc:
        errors.update({k: v for k, v in errors_from_validation(exc).items() if k in values})
    if errors or request is None:
        ack(response_action="errors", errors=errors or {BlockId.SIZE.value: form_errors.INVALID_VALUES})
        return
    newer = superseded(services, deployment)
    if newer is not None:
        ack(response_action="errors", errors={BlockId.SIZE.value: clip(newer, HINT_LIMIT)})
        return
    extra = {k: v for k, v in deployment.extra_values.items() if k not in EDITABLE_KNOBS} | knobs
    before = {**deployment.request.model_dump(mode="json"), **deployment.extra_values}
    after = {**request.model_dump(mode="json"), **extra}
    diff = [
        clicks.value_change_line(key, before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]

    def change(d: Deployment) -> Deployment | None:
        return lifecycle.attempt(
            d,
            Move.EDIT_VALUES,
            "values edited",
            request=request,
            extra_values=extra,
            value_authors=_with_author(d, submission.user.id),
        )

    who = submission.user.id
    notifier = services.notifier

    def notes(d: Deployment) -> list[OutboxEntry | None]:
        """The old plan's buttons replaced (its approvals no longer count) and the edit said."""
        plan_ts = d.plan.message_ts if d.plan else None
        return [
            notifier.root_entry(d.id),
            notifier.decide_entry(d, plan_ts, clicks.decided_by(Move.EDIT_VALUES, who)),
            notifier.post_entry(d, clicks.values_edited_message(who, diff)),
        ]

    updated, changed = services.store.transition(
        deployment.id, change, also=services.start_in(lifecycle.job_started_by(Move.EDIT_VALUES), notes)
    )
    if not changed:
        ack(
            response_action="errors",
            errors={BlockId.SIZE.value: clicks.VALUES_MOVED_ON},
        )
        return
    ack()
    services.audit.record("values_edited", deployment.id, who, changes=" ".join(diff)[:500])
    notifier.flush(updated.id)
