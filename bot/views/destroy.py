"""The words of destroying an environment (issue 13): the typed-confirmation modal, the refusals, the
root headline of a destroy, the approval count ("1 of 2") and what the thread says at the end.
core/destroy.py decides; this module only says it."""

from __future__ import annotations

from pydantic import BaseModel
from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.ids import Callback
from bot.views.access import mention, reason_text
from bot.views.blocks import escape_mrkdwn
from bot.views.messages import Message, text_message
from bot.views.request_modal import modal, text_input
from core.approval import ApprovalState
from core.destroy import DestroyCheck, DestroyRefusal
from core.environments import Environment, EnvironmentKey
from core.models import Deployment
from core.plan_summary import PlanSummary, ResourceChange

CONFIRM_BLOCK = "destroy_confirm"  # the modal's one input: the environment typed as `app/env`
POLICY_KEY = "protected"
USAGE = "/ecs-deploy destroy <app>/<env>[@<account>/<region>]"

# Resource types that hold data (core.destroy.DATA_STORE_TYPES), as people call them.
DATA_STORE_LABELS = {
    "aws_db_instance": "RDS database",
    "aws_rds_cluster": "Aurora/RDS cluster",
    "aws_rds_cluster_instance": "Aurora/RDS instance",
    "aws_elasticache_cluster": "ElastiCache cluster",
    "aws_elasticache_replication_group": "ElastiCache replication group",
    "aws_elasticache_serverless_cache": "ElastiCache serverless cache",
    "aws_docdb_cluster": "DocumentDB cluster",
    "aws_docdb_cluster_instance": "DocumentDB instance",
    "aws_docdbelastic_cluster": "DocumentDB elastic cluster",
    "aws_s3_bucket": "S3 bucket",
    "aws_efs_file_system": "EFS file system",
    "aws_dynamodb_table": "DynamoDB table",
}
DESTROY_HEADER = ":rotating_light: This destroys the environment"
MAX_DATA_STORES = 15


class DestroyContext(BaseModel):
    """`private_metadata` of the destroy modal: which environment, where it was asked for."""

    environment_key: str
    channel_id: str
    team_id: str | None = None


def _where(key: EnvironmentKey) -> str:
    return f"*{escape_mrkdwn(key.short)}* (account {key.account_id}, {key.region})"


def destroy_modal(context: DestroyContext, environment: Environment) -> View:
    key = environment.key
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f":warning: Destroy {_where(key)}: the bot runs `terraform plan -destroy` on the"
                " files of its last apply, shows what will be deleted (data stores named) and applies"
                " it only after approval by approvers other than you. The state bucket and the lock"
                " table are kept."
            )
        ),
        text_input(
            CONFIRM_BLOCK,
            f"Type {key.short} to confirm",
            placeholder=key.short,
            hint="Exactly as shown: application/environment.",
            max_length=200,
        ),
    ]
    return modal(Callback.DESTROY_MODAL, "Destroy environment", "Request destroy", context, blocks)


def confirmation_mismatch(key: EnvironmentKey) -> str:
    return f"That is not {key.short}. Type exactly {key.short} to confirm the destroy."


FORM_OUT_OF_DATE = "This form is out of date: run /ecs-deploy destroy again."
STORE_DOWN = "The bot's store is unavailable right now; nothing was requested. Try again in a minute."


def usage() -> str:
    return f"Usage: `{USAGE}` — e.g. `/ecs-deploy destroy web/dev`."


def not_found(typed: str) -> str:
    return (
        f"No environment `{escape_mrkdwn(typed[:100])}` is known to the bot. `/ecs-deploy envs` lists them."
    )


def ambiguous(typed: str, keys: list[EnvironmentKey]) -> str:
    where = ", ".join(f"`{k.short}@{k.account_id}/{k.region}`" for k in keys[:10])
    return f"`{escape_mrkdwn(typed[:100])}` lives in more than one account or region: name one of {where}."


def lift_protection(check_profile: str, environment: str) -> str:
    """How an operator lifts the protection (the policy file is read at start)."""
    return (
        f"An operator can lift it in the access policy file (`ECS_DEPLOY_POLICY_FILE`): set"
        f" `{POLICY_KEY}: false` under `profiles.{check_profile}.environments.{environment}` (or remove"
        f" `{POLICY_KEY}: true` from the profile, from `defaults`, or from the pattern that matches"
        " it), check the file with `ecs-deploy-bot doctor`, then restart the web and worker processes."
    )


def refusal_text(check: DestroyCheck) -> str:
    key = check.key
    match check.refusal:
        case DestroyRefusal.NOT_ALLOWED | DestroyRefusal.UNDECLARED:
            assert check.decision is not None
            return f"You cannot destroy {key.short}: {reason_text(check.decision)}"
        case DestroyRefusal.ALREADY_DESTROYED:
            return f"{_where(key)} is already destroyed."
        case DestroyRefusal.PROTECTED:
            return (
                f":lock: {_where(key)} is protected by the access policy: it cannot be destroyed from"
                f" Slack. {lift_protection(check.profile, key.environment)}"
            )
        case DestroyRefusal.OPEN_DEPLOYMENT:
            return (
                f"A deployment for {key.short} is still open: `{check.open_deployment}`"
                f" (`/ecs-deploy status {check.open_deployment}`). Let it finish or cancel it first."
            )
        case None:
            return ""


def protected_approval_text(scope: str) -> str:
    """An Approve click on the destroy plan of a protected environment."""
    return (
        f":lock: This environment is protected by the access policy ({escape_mrkdwn(scope)}): its"
        " destroy cannot be approved. An operator can lift it by setting `protected: false` for it in"
        " the access policy file and restarting the bot."
    )


def protected_at_apply() -> tuple[str, str]:
    """(reason, what next) when the policy protects the environment by the time its destroy applies."""
    return (
        "The environment is protected by the access policy now: its destroy is not applied.",
        "An operator can lift the protection (`protected: false` in the access policy file, then"
        " restart the bot); then re-plan.",
    )


def waiting_message(state: ApprovalState) -> Message:
    """A destroy approval counted, more are needed: "1 of 2"."""
    who = ", ".join(mention(a.approver_id) for a in state.current_approvals)
    have, needed = len(state.current_approvals), state.required_approvals
    return text_message(
        f":ballot_box_with_check: Destroy approval {have} of {needed}: approved by {who} —"
        f" {state.missing_approvals} more needed from another approver (not the requester)."
    )


def data_store_line(change: ResourceChange) -> str:
    label = DATA_STORE_LABELS.get(change.type, change.type)
    return f"• {label}: `{escape_mrkdwn(change.address[:150])}`"


def destroy_summary_text(summary: PlanSummary, stores: tuple[ResourceChange, ...]) -> str:
    """The top of a destroy plan's message: the counts, then the data stores it deletes."""
    lines = [f"*{summary.counts.to_destroy} resources will be destroyed.*"]
    if stores:
        lines.append(f":floppy_disk: *Data stores deleted, with their data ({len(stores)}):*")
        lines += [data_store_line(c) for c in stores[:MAX_DATA_STORES]]
        if len(stores) > MAX_DATA_STORES:
            lines.append(f"…and {len(stores) - MAX_DATA_STORES} more")
    else:
        lines.append("No data stores (RDS, ElastiCache, DocumentDB, S3, EFS, DynamoDB) among them.")
    lines.append("The state bucket and the lock table are kept.")
    return "\n".join(lines)


def destroyed_message(deployment: Deployment) -> Message:
    request = deployment.request
    return text_message(
        f":wastebasket: *{request.application}/{request.environment} is destroyed*: its Terraform state"
        " holds no resources any more. The state bucket and the lock table are kept."
    )


def state_not_empty(addresses: list[str], problem: str | None) -> tuple[str, str]:
    """(reason, what next) when the state is not empty (or unreadable) after a destroy's apply."""
    if problem is not None:
        reason = f"The state could not be read after the destroy: {problem}"
    else:
        shown = ", ".join(f"`{a}`" for a in addresses[:10])
        more = f" and {len(addresses) - 10} more" if len(addresses) > 10 else ""
        reason = f"The state still holds {len(addresses)} resource(s) after the destroy: {shown}{more}."
    return reason, "Re-plan (`/ecs-deploy plan <id>`) to destroy what is left."
