"""Why a control subcommand or button (cancel, re-plan, unlock) changed nothing: the texts of
bot/control.py's `ControlRefused`. Kept apart from bot/views/status.py, which renders control's
results and so imports bot/control.py."""

from __future__ import annotations

from typing import Literal

from bot.views.blocks import inline_code
from bot.views.statuses import status_words
from core.models import Deployment


def unknown_deployment(typed: str) -> str:
    """The same answer for an id that does not exist and one the asker may not see."""
    return f"No deployment {inline_code(typed)} is known to the bot."


# Why the deployment, as it is now, refuses the command: {id} is its id, {status} its status in words.
NotNow = Literal["apply_running", "nothing_to_cancel", "nothing_to_replan", "replan_not_possible"]
NOT_NOW: dict[NotNow, str] = {
    "apply_running": (
        ":warning: `{id}` is applying right now. Cancelling interrupts `terraform apply` (SIGINT): resources"
        " it already created or changed stay, and the state may be *partially applied*. If you mean it,"
        " type `/ecs-deploy cancel {id} --force`."
    ),
    "nothing_to_cancel": "`{id}` is already {status}; there is nothing to cancel.",
    "nothing_to_replan": (
        "`{id}` never got as far as a Terraform workspace, so there is nothing to re-plan. Request a new"
        " deployment instead."
    ),
    "replan_not_possible": (
        "`{id}` is {status}; a re-plan is possible while a plan waits for approval, or after a failure, an"
        " interruption, a cancellation or a deployment."
    ),
}


def not_now(why: NotNow, deployment: Deployment) -> str:
    return NOT_NOW[why].format(id=deployment.id, status=status_words(deployment.status))


def superseded(deployment_id: str, newer_id: str, environment: str) -> str:
    return (
        f"{inline_code(deployment_id)} is no longer the newest deployment of {environment}"
        f" ({inline_code(newer_id)} is): planning it again would plan its older values against the"
        f" live state. To change the environment, use `/ecs-deploy change {environment}`."
    )


def unlock_leads_only(profile: str, environment: str) -> str:
    return f"Only an approver (lead) for profile `{profile}` in `{environment}` can release a state lock."


def no_lock_to_release(state: str) -> str:
    return f"The bot holds no lock on `{state}` any more; nothing to release."


def lock_changed_hands(state: str, holder_deployment_id: str, holder_step: str, deployment_id: str) -> str:
    return (
        f"The lock on `{state}` changed hands since you looked (now `{holder_deployment_id}`,"
        f" {holder_step}). Run `/ecs-deploy unlock {deployment_id}` again."
    )
