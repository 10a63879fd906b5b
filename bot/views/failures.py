"""Why a pipeline step failed and what to do next: the words of the workers' `StepFailure`s.

Each function returns a `Failure` (reason, what next) that a step raises as
`StepFailure(*failures.x(...))`; the job frame reports it in the thread and on the root message.
"""

from __future__ import annotations

from typing import NamedTuple

from bot.views.approval import applyability_text
from bot.views.messages import Message, failure_message
from core.apply_gate import Applyability
from core.lifecycle import DeploymentStatus

REPLAN_FOR_APPROVAL = "Use Re-plan to make a fresh plan for approval."


class Failure(NamedTuple):
    reason: str
    what_next: str = ""


# -- plan


def plan_unreadable(error: object) -> Failure:
    return Failure(f"The plan could not be read: {error}")


def plan_changed_while_stored() -> Failure:
    return Failure("The plan changed while it was being stored; nothing was kept.", "Use Re-plan.")


def no_private_directory(error: object) -> Failure:
    return Failure(f"No private directory for the plan: {error}")


def plan_file_unreadable(error: object) -> Failure:
    return Failure(f"The plan Terraform wrote could not be read: {error}")


# -- apply


def no_approved_plan() -> Failure:
    return Failure("There is no approved plan to apply.")


def approved_plan_unavailable(error: object) -> Failure:
    return Failure(str(error), "Use Re-plan and have the new plan approved.")


def not_applyable(answer: Applyability) -> Failure:
    return Failure(f"Not applied: {applyability_text(answer)}", REPLAN_FOR_APPROVAL)


def plan_not_intact(error: object) -> Failure:
    return Failure(f"Not applied: {error}", REPLAN_FOR_APPROVAL)


def stale_plan() -> Failure:
    return Failure(
        "The state changed since this plan; re-plan.",
        "Nothing was applied. Use Re-plan and have the new plan approved.",
    )


# -- workspace, backend, analysis


def workspace_never_prepared() -> Failure:
    return Failure("The workspace was never prepared for this deployment.")


def workspace_path_refused(error: object) -> Failure:
    return Failure(str(error), "Start a new deployment; tell the operators (Redis may have been altered).")


def workspace_failed(error: object) -> Failure:
    return Failure(str(error), "Check ECS_DEPLOY_REPO_URL / ECS_DEPLOY_REPO_REF, then request again.")


def tfvars_invalid() -> Failure:
    return Failure(
        "The generated tfvars does not pass the repository's rules (listed above).",
        "Use Edit values on a new request, or ask the Terraform repository's owners.",
    )


def backend_failed(error: object) -> Failure:
    return Failure(
        f"The state backend could not be prepared: {error}",
        "Check the profile's S3 and DynamoDB permissions, then request again.",
    )


def access_not_verified() -> Failure:
    return Failure("AWS access was not verified before the analysis.")


# -- any step (the job frame, workers/runtime.py)


def step_crashed(error_type: str) -> Failure:
    """An exception no step expected."""
    return Failure(
        f"An unexpected error stopped it ({error_type}).",
        "The bot's operators can find the details in the worker log under this deployment id. "
        "Start a new request once it is fixed.",
    )


def stopped_failure_message(step: str, status: DeploymentStatus, reason: str) -> Message:
    """A step failed after the deployment was stopped (cancelled, rejected): said, status unchanged."""
    return failure_message(step.capitalize(), f"Stopped: the deployment was {status.value}. {reason}")


def step_failure_message(step: str, failure: Failure) -> Message:
    return failure_message(step.capitalize(), failure.reason, what_next=failure.what_next or None)
