"""Step: the S3 + DynamoDB state backend, created or checked (fixes only after confirmation).

An existing bucket that needs changes is never changed on the first run: the fix plan (each change,
before → after) is stored on the deployment and shown in the thread with who may confirm it. The
Fix button's handler records who confirmed (core.backend_confirm decides who may) and queues this
step again with `fix=1`; the fix then runs only if the bucket still needs exactly the confirmed
changes — otherwise the thread asks again.
"""

from __future__ import annotations

from bot.views import failures
from bot.views.access import who_may_confirm
from bot.views.pipeline import CheckLine, backend_message
from bot.views.terraform_runs import confirmed_headline
from core.backend_fix import BackendFixPlan
from core.lifecycle import Move
from core.models import Deployment
from workers.aws.backend import BackendError, bootstrap_backend
from workers.runtime import Runtime, StepFailure, move
from workers.steps.common import aws_session, store_fields


def _confirmed(deployment: Deployment, options: dict[str, str]) -> BackendFixPlan | None:
    """The fix plan someone confirmed for this run, if this run is the confirmed fix."""
    plan = deployment.backend_fix
    if options.get("fix") != "1" or plan is None or plan.confirmed_by is None:
        return None
    return plan


def run(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    confirmed = _confirmed(deployment, options)
    deployment = move(rt, deployment.id, Move.START_BACKEND)
    request = deployment.request
    try:
        result = bootstrap_backend(
            aws_session(rt, deployment),
            request.state_bucket,
            request.region,
            request.lock_table,
            kms_key_id=rt.settings.kms_key_id,
            confirmed=confirmed,
        )
    except BackendError as exc:
        raise StepFailure(*failures.backend_failed(exc)) from exc
    pending = result.fix_plan if result.needs_confirmation else None
    # A confirmation is used once: the plan waiting for the next one (or none) replaces it.
    deployment = store_fields(rt, deployment.id, backend_fix=pending)
    if confirmed is not None:
        rt.audit.record(
            "backend_fix" if not result.needs_confirmation else "backend_fix_stale",
            deployment.id,
            confirmed.confirmed_by or "worker",
            bucket=confirmed.bucket,
            managed=confirmed.managed,
            confirmed="; ".join(change.text for change in confirmed.changes),
            changes="; ".join(result.changes),
        )
    checks = [CheckLine(ok=c.ok, name=c.name, detail=c.detail, fix=c.fix) for c in result.report.checks]
    confirmer = confirmed.confirmed_by if confirmed is not None and result.changes else None
    headline = confirmed_headline(result.message, confirmer)
    rt.notifier.post(
        deployment,
        backend_message(
            deployment.id,
            table=result.lock_table,
            headline=headline,
            checks=checks,
            fix_plan=pending,
            who_may_confirm=who_may_confirm(rt.policy, deployment, pending) if pending else "",
            **result.model_dump(include={"bucket", "changes", "needs_confirmation", "failure", "suggestion"}),
        ),
    )
    if result.needs_confirmation:
        move(
            rt,
            deployment.id,
            Move.BACKEND_NEEDS_FIX,
            "confirm the bucket fixes"
            if pending is None or pending.managed
            else "an approver must confirm changes to a bucket the bot did not create",
        )
        return
    if not result.ok:
        hint = (
            f"Request again with another bucket name, e.g. `{result.suggestion}`."
            if result.suggestion
            else ""
        )
        raise StepFailure(result.failure or result.message, hint)
    store_fields(rt, deployment.id, backend_ready=True)
    rt.audit.record(
        "backend_ready", deployment.id, "worker", bucket=result.bucket, changes="; ".join(result.changes)
    )
    move(rt, deployment.id, Move.BACKEND_READY)
