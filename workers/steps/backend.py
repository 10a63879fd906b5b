"""Step: the S3 + DynamoDB state backend, created or checked (fixes only after confirmation)."""

from __future__ import annotations

from bot.views.pipeline import CheckLine, backend_message
from core.models import Deployment, DeploymentStatus
from core.queue import Step
from workers.aws.backend import BackendError, bootstrap_backend
from workers.runtime import Runtime, StepFailure
from workers.steps.common import aws_session, then


def run(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    deployment = rt.notifier.set_status(deployment.id, DeploymentStatus.PREPARING_BACKEND)
    request = deployment.request
    try:
        result = bootstrap_backend(
            aws_session(rt, deployment),
            request.state_bucket,
            request.region,
            request.lock_table,
            kms_key_id=rt.settings.kms_key_id,
            fix_existing=options.get("fix") == "1",
        )
    except BackendError as exc:
        raise StepFailure(
            f"The state backend could not be prepared: {exc}",
            "Check the profile's S3 and DynamoDB permissions, then request again.",
        ) from exc
    checks = [CheckLine(ok=c.ok, name=c.name, detail=c.detail, fix=c.fix) for c in result.report.checks]
    rt.notifier.post(
        deployment,
        backend_message(
            deployment.id,
            bucket=result.bucket,
            table=result.lock_table,
            headline=result.message,
            checks=checks,
            changes=result.changes,
            needs_confirmation=result.needs_confirmation,
            failure=result.failure,
            suggestion=result.suggestion,
        ),
    )
    if result.needs_confirmation:
        rt.notifier.set_status(
            deployment.id, DeploymentStatus.AWAITING_BACKEND_FIX, "confirm the bucket fixes"
        )
        return
    if not result.ok:
        hint = (
            f"Request again with another bucket name, e.g. `{result.suggestion}`."
            if result.suggestion
            else ""
        )
        raise StepFailure(result.failure or result.message, hint)
    rt.store.update(deployment.id, lambda d: d.model_copy(update={"backend_ready": True}))
    rt.audit.record(
        "backend_ready", deployment.id, "worker", bucket=result.bucket, changes="; ".join(result.changes)
    )
    then(rt, Step.WORKSPACE, deployment.id)
