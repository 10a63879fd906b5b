"""Steps: `terraform plan` (summarised for review) and `terraform apply` of exactly the approved plan.

The plan's bytes are read once from the private directory Terraform wrote them to, sealed
(runner.SealedPlan), hashed, summarised (`show -json` of the sealed bytes), stored and bound to the
approval: what people review is what was hashed is what is stored. The apply seals the approved
bytes from the store, checks them against the approval, and Terraform reads exactly those bytes —
hashed once more immediately before it starts. Each run is recorded (workers/steps/tfrun.py) so that
an interrupted run can be reported truthfully and its Terraform lock released without a manual
`terraform force-unlock`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bot.views import failures
from bot.views.destroy import protected_at_apply
from bot.views.pipeline import (
    apply_failed_message,
    apply_result_message,
    step_status_message,
    terraform_failure_next,
    terraform_failure_text,
)
from bot.views.plan import plan_message
from bot.views.terraform_runs import apply_progress_text, applying_text, superseded_text
from core.apply_gate import is_applyable
from core.apply_progress import ApplyProgress, advance
from core.approval import PlanBinding, new_plan
from core.destroy import data_stores, is_protected
from core.lifecycle import DeploymentKind, Move
from core.models import Deployment, PlanRecord, utcnow
from core.plan_summary import PlanParseError, summarise_plan
from core.sizes import size_profile
from storage.artifacts import ArtifactError, ArtifactStore
from workers.environments import record_apply
from workers.runtime import Runtime, StepFailure, move
from workers.steps.common import (
    approval_ttl,
    ensure_workspace,
    holding_state,
    run_options,
    store_fields,
    terraform_env,
    workspace_file,
)
from workers.steps.tfrun import TerraformRunContext, is_lock_error
from workers.terraform import runner
from workers.terraform.runner import (
    PlanIntegrityError,
    PlanMode,
    RunOptions,
    RunResult,
    SealedPlan,
    StalePlanError,
    TerraformError,
)

PROGRESS_EVERY_SECONDS = 3.0
PROGRESS_RECORD_EVERY_SECONDS = 1.0


def plan_artifact(attempt: int) -> str:
    return f"plan-{attempt}"


def _init(rt: Runtime, deployment: Deployment, workspace: Path, options: RunOptions, what: str) -> None:
    assert deployment.workspace is not None
    result = runner.init(
        workspace, workspace_file(workspace, deployment.workspace.tfbackend_path), options=options
    )
    if not result.ok:
        _report_failure(rt, deployment, result, before=what)


def _report_failure(
    rt: Runtime, deployment: Deployment, result: RunResult, *, before: str | None = None
) -> None:
    _attach_log(rt, deployment, result)
    raise StepFailure(
        terraform_failure_text(
            result.command,
            exit_code=result.exit_code,
            stopped=result.summary if result.stop_detail or result.stale_plan else "",
            excerpt=result.error_excerpt or result.output_tail,
            before=before,
        ),
        terraform_failure_next(deployment.id, lock_error=is_lock_error(result)),
    )


def _attach_log(rt: Runtime, deployment: Deployment, result: RunResult) -> None:
    try:
        text = Path(result.log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    if result.machine_readable:  # the log holds Terraform's UI messages (-json): attach their text
        text = runner.human_log(text)
    rt.notifier.upload(
        deployment,
        filename=f"{deployment.id}-{result.command}.log",
        content=text[-900_000:],
        title=f"terraform {result.command} log",
    )


# -- plan ------------------------------------------------------------------------------------------


Outcome = tuple[Move, str]


def _run_holding_state(
    rt: Runtime,
    deployment: Deployment,
    step: str,
    start: Move,
    waiting: Move,
    body: Callable[[Runtime, Deployment], Outcome],
) -> None:
    """Run `body` while holding the state (see holding_state: `waiting` in line, then `start`), then
    make the final move it returned. That move is made after the state was given back, so that
    whoever acts on that status (an approver's apply, a re-plan, the next step's job queued with the
    move) never finds the state still held by this run."""
    with holding_state(rt, deployment, step, start, waiting=waiting) as deployment:
        event, detail = body(rt, deployment)
    move(rt, deployment.id, event, detail)


def run_plan(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    _run_holding_state(rt, deployment, "plan", Move.START_PLAN, Move.START_PLAN, _plan)


def _plan(rt: Runtime, deployment: Deployment) -> Outcome:
    assert deployment.workspace is not None
    workspace = ensure_workspace(rt, deployment)
    options = run_options(rt, terraform_env(rt, deployment, workspace), deployment.id)
    attempt = (deployment.plan.attempt + 1) if deployment.plan else 1
    tfvars_file = workspace_file(workspace, deployment.workspace.tfvars_path)
    run = TerraformRunContext.begin(rt, deployment, "plan")
    try:
        _init(rt, deployment, workspace, options, "planning")
        sealed = _planned(rt, deployment, run, workspace, tfvars_file, attempt, options)
    finally:
        run.finish()
    with sealed:
        try:
            summary = summarise_plan(
                runner.show_json(workspace, sealed, options=options),
                monthly_cost=size_profile(deployment.request.size).monthly_cost,
            )
            human = runner.show_text(workspace, sealed, options=options)
        except (TerraformError, PlanParseError) as exc:
            raise StepFailure(*failures.plan_unreadable(exc)) from exc
        digest = ArtifactStore.for_settings(rt.redis, rt.settings).put(
            deployment.id, plan_artifact(attempt), sealed.read()
        )
    if digest != sealed.sha256:
        raise StepFailure(*failures.plan_changed_while_stored())
    binding = PlanBinding(
        plan_sha256=digest,
        repo_commit=deployment.workspace.commit,
        tfvars_sha256=deployment.workspace.tfvars_sha256,
        plan_created_at=utcnow(),
        attempt=attempt,
    )
    destroy = deployment.kind is DeploymentKind.DESTROY
    rule = rt.policy.approval_rule(
        deployment.request.profile, deployment.request.environment, destroy=destroy
    )
    previous = deployment.plan
    record = PlanRecord(
        attempt=attempt,
        sha256=digest,
        created_at=binding.plan_created_at,
        sentence=summary.sentence,
        has_changes=summary.has_changes,
        applyable=summary.applyable,
        resource_changes=len(summary.changes),
    )
    deployment = rt.store.update(
        deployment.id,
        lambda d: d.model_copy(
            update={
                "plan": record,
                "approval": new_plan(
                    d.approval, binding, required_approvals=rule.required_approvals if rule else None
                ),
            }
        ),
    )
    if previous and previous.message_ts:
        rt.notifier.decide(deployment, previous.message_ts, _superseded(previous, attempt))
    message = plan_message(
        summary,
        deployment_id=deployment.id,
        plan_sha256=digest,
        button_value=f"{deployment.id}:{attempt}",
        destroy_stores=data_stores(summary) if destroy else None,
    )
    rt.audit.record(
        "planned",
        deployment.id,
        "worker",
        plan_sha256=digest,
        attempt=attempt,
        summary=summary.sentence,
        commit=binding.repo_commit,
    )
    ts = rt.notifier.post(deployment, message, remember=True)
    store_fields(rt, deployment.id, plan=record.model_copy(update={"message_ts": ts}))
    rt.notifier.upload(
        deployment,
        filename=f"{deployment.id}-plan-{attempt}.txt",
        content=human,
        title=f"terraform plan #{attempt} (full output)",
    )
    if summary.applyable and summary.has_changes:
        return Move.PLANNED, summary.sentence
    if summary.has_changes:
        return Move.PLAN_NOT_APPLYABLE, summary.not_applyable_reason or "plan errored"
    return Move.NO_CHANGES, "no changes: the infrastructure matches"


def _planned(
    rt: Runtime,
    deployment: Deployment,
    run: TerraformRunContext,
    workspace: Path,
    tfvars_file: Path,
    attempt: int,
    options: RunOptions,
) -> SealedPlan:
    """`terraform plan -out` into a directory only this worker can use; the plan's bytes, read once
    and sealed: everything after this (hash, summary, storage) works on exactly these bytes."""
    try:
        private = runner.private_directory(workspace)
    except (OSError, PlanIntegrityError) as exc:
        raise StepFailure(*failures.no_private_directory(exc)) from exc
    try:
        plan_file = private / f"{plan_artifact(attempt)}.tfplan"
        result = run.command(
            "plan",
            lambda opts: runner.plan(
                workspace,
                tfvars_file,
                plan_file,
                options=opts,
                mode=PlanMode.DESTROY if deployment.kind is DeploymentKind.DESTROY else PlanMode.NORMAL,
            ),
            options,
        )
        if not result.ok:
            _report_failure(rt, deployment, result)
        try:
            return SealedPlan(runner.read_plan_file(plan_file), workspace=workspace)
        except (OSError, PlanIntegrityError) as exc:
            raise StepFailure(*failures.plan_file_unreadable(exc)) from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _superseded(previous: PlanRecord, attempt: int) -> str:
    return superseded_text(previous.attempt, attempt)


# -- apply -----------------------------------------------------------------------------------------


def run_apply(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    _run_holding_state(rt, deployment, "apply", Move.START_APPLY, Move.WAIT_TO_APPLY, _apply)


def _apply(rt: Runtime, deployment: Deployment) -> Outcome:
    binding = deployment.approval.binding
    if deployment.plan is None or binding is None:
        raise StepFailure(*failures.no_approved_plan())
    request = deployment.request
    destroying = deployment.kind is DeploymentKind.DESTROY
    if destroying and is_protected(rt.policy, request.profile, request.environment):
        raise StepFailure(*protected_at_apply())  # the policy may have changed since the approval
    workspace = ensure_workspace(rt, deployment)
    try:
        data = ArtifactStore.for_settings(rt.redis, rt.settings).get(
            deployment.id, plan_artifact(binding.attempt), binding.plan_sha256
        )
    except ArtifactError as exc:
        raise StepFailure(*failures.approved_plan_unavailable(exc)) from exc
    with SealedPlan(data, workspace=workspace) as sealed:
        # the approval is checked against the sealed bytes: the ones Terraform will read
        sealed_binding = binding.model_copy(update={"plan_sha256": sealed.sha256})
        decision = is_applyable(deployment.approval, sealed_binding, utcnow(), approval_ttl(rt))
        if not decision.allowed:
            raise StepFailure(*failures.not_applyable(decision))
        options = run_options(rt, terraform_env(rt, deployment, workspace), deployment.id)
        run = TerraformRunContext.begin(rt, deployment, "apply")
        try:
            _init(rt, deployment, workspace, options, "applying")
            rt.audit.record(
                "apply_started",
                deployment.id,
                "worker",
                plan_sha256=binding.plan_sha256,
                approved_by=",".join(deployment.approval.approver_ids),
            )
            progress_ts = rt.notifier.post(deployment, step_status_message(applying_text(binding.attempt)))
            tracker = _ProgressTracker(rt, deployment, progress_ts, deployment.plan.resource_changes, run)
            run.progress(ts=progress_ts, total=deployment.plan.resource_changes or None)
            result = run.command(
                "apply",
                lambda opts: runner.apply(
                    workspace, sealed, tracker.on_line, options=opts, expected_sha256=binding.plan_sha256
                ),
                options,
            )
        except StalePlanError as exc:
            if exc.result is not None:
                _attach_log(rt, deployment, exc.result)
            raise StepFailure(*failures.stale_plan()) from exc
        except PlanIntegrityError as exc:
            raise StepFailure(*failures.plan_not_intact(exc)) from exc
        finally:
            run.finish()
    tracker.flush(final=True)
    if not result.ok:
        _attach_log(rt, deployment, result)
        reason = result.stop_detail or f"terraform apply exited with {result.exit_code}"
        rt.notifier.post(
            deployment, apply_failed_message(reason, result.error_excerpt, list(tracker.progress.completed))
        )
        rt.audit.record(
            "apply_failed", deployment.id, "worker", plan_sha256=binding.plan_sha256, reason=reason
        )
        return Move.APPLY_FAILED, f"apply: {reason}"
    outputs = _outputs(workspace, options)
    deployment = store_fields(rt, deployment.id, outputs=outputs)
    summary = tracker.progress.summary or "Apply complete!"
    rt.notifier.post(deployment, apply_result_message(summary, outputs))
    rt.audit.record("applied", deployment.id, "worker", plan_sha256=binding.plan_sha256, summary=summary)
    record_apply(rt, deployment, outputs, summary)  # the environment registry, then the config commit
    return Move.APPLIED, summary


def _outputs(workspace: Path, options: RunOptions) -> dict[str, dict[str, object]]:
    """Terraform outputs with sensitive values dropped before they are stored or posted."""
    try:
        raw = runner.output_json(workspace, options=options)
    except TerraformError:
        return {}
    return {
        name: ({"sensitive": True} if o.get("sensitive") else {"value": o.get("value"), "sensitive": False})
        for name, o in raw.items()
        if isinstance(o, dict)
    }


class _ProgressTracker:
    """Turns Terraform's apply UI messages (-json) into one thread message updated at most every few
    seconds."""

    def __init__(
        self, rt: Runtime, deployment: Deployment, ts: str | None, total: int, run: TerraformRunContext
    ) -> None:
        self.rt, self.deployment, self.ts, self.run = rt, deployment, ts, run
        self.progress = ApplyProgress(total=total or None)
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.last_recorded = 0.0
        self.recorded_done = 0

    def on_line(self, line: str) -> None:
        self.progress = advance(self.progress, line)
        now = time.monotonic()
        if (
            self.progress.done > self.recorded_done
            and now - self.last_recorded >= PROGRESS_RECORD_EVERY_SECONDS
        ):
            # mirrored in the run's record, for whoever reports this run if its worker dies
            self.last_recorded, self.recorded_done = now, self.progress.done
            self.run.progress(completed=self.progress.completed)
        if now - self.last_sent >= PROGRESS_EVERY_SECONDS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        self.last_sent = time.monotonic()
        elapsed = int(time.monotonic() - self.started)
        text = apply_progress_text(self.progress.text, elapsed, final=final)
        before, self.ts = (
            self.ts,
            self.rt.notifier.update(self.deployment, self.ts, step_status_message(text)),
        )
        if final or self.ts != before:
            self.run.progress(ts=self.ts, completed=self.progress.completed)
