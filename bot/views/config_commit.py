"""The words of the configuration kept in the Terraform repository: the commit message, the pull
request, the thread messages after a commit or a failed push, the Retry button's answers, and the
`environments import` report. Pure: models in, text and blocks out."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block

from bot.ids import Action
from bot.views.blocks import buttons, clip, context, escape_mrkdwn, section
from bot.views.messages import Message
from bot.views.statuses import KIND_WORDS
from core.lifecycle import DeploymentKind
from core.models import Deployment


def _where(deployment: Deployment) -> str:
    request = deployment.request
    return f"{request.application}/{request.environment} ({request.account_id}, {request.region})"


# -- git ---------------------------------------------------------------------------------------------


def commit_message(deployment: Deployment, trailer_lines: Sequence[str]) -> str:
    """Subject naming the deployment (kind, app/env, id), a body, and the trailers paragraph."""
    request, kind = deployment.request, deployment.kind
    subject = f"{KIND_WORDS[kind].verb} {_where(deployment)}: deployment {deployment.id}"
    workspace = deployment.workspace
    files = f"{workspace.tfvars_path} and {workspace.tfbackend_path}" if workspace else "the generated files"
    if kind is DeploymentKind.DESTROY:
        body = (
            f"ecs-deploy-bot destroyed the environment {request.application}/{request.environment}"
            f" (size {request.size.value}) with deployment {deployment.id}. {files} are kept as they were"
            " at its last apply; the state bucket and lock table were not deleted."
        )
    else:
        body = (
            f"ecs-deploy-bot applied deployment {deployment.id} ({kind.value}) to"
            f" {request.application}/{request.environment} (size {request.size.value}): {files} as applied."
        )
    return f"{subject}\n\n{body}\n\n" + "\n".join(trailer_lines) + "\n"


def pull_request_title(deployment: Deployment) -> str:
    return f"ecs-deploy: {_where(deployment)} — {deployment.kind.value} {deployment.id}"


def pull_request_body(deployment: Deployment, commit: str) -> str:
    request = deployment.request
    approvers = ", ".join(deployment.approval.approver_ids) or "—"
    return (
        f"The configuration of `{request.application}/{request.environment}` in account"
        f" `{request.account_id}` ({request.region}) as last applied by ecs-deploy-bot.\n\n"
        f"- Latest deployment: `{deployment.id}` ({deployment.kind.value}, size {request.size.value})\n"
        f"- Requested by: {deployment.requester_id}\n"
        f"- Approved by: {approvers}\n"
        f"- Commit: {commit}\n\n"
        "Each commit on this branch is one apply; its trailers name the requester, the approvers, the"
        " plan's SHA-256 and the repository commit that was applied."
    )


# -- the thread ----------------------------------------------------------------------------------------


def committed_message(
    *,
    branch: str,
    commit: str,
    remote: str,
    pull_request_url: str | None = None,
    pull_request_error: str | None = None,
) -> Message:
    text = (
        f":package: Configuration committed to `{escape_mrkdwn(branch)}` at `{commit[:12]}`"
        f" ({escape_mrkdwn(remote)})."
    )
    if pull_request_url:
        text += f" Pull request: <{pull_request_url}|{escape_mrkdwn(pull_request_url)}>"
    blocks: list[Block] = [section(clip(text))]
    if pull_request_error:
        blocks.append(context(clip(f"The pull request could not be opened or updated: {pull_request_error}")))
    return Message(text=clip(text), blocks=blocks)


def retry_value(environment_key: str, deployment_id: str) -> str:
    """The Retry button's value (bot/ids.py: `{env_key}:{deployment_id}`)."""
    return f"{environment_key}:{deployment_id}"


def not_pushed_message(*, branch: str, reason: str, environment_key: str, deployment_id: str) -> Message:
    text = (
        f":warning: The deployment succeeded, but its configuration was *not pushed* to"
        f" `{escape_mrkdwn(branch)}`: {escape_mrkdwn(reason)}"
    )
    return Message(
        text=clip(text),
        blocks=[
            section(clip(text)),
            context(
                "Fix the repository's push URL or access (ECS_DEPLOY_CONFIG_PUSH_URL, or ECS_DEPLOY_REPO_URL),"
                " then retry: the same files and commit message are used."
            ),
            buttons(
                retry_value(environment_key, deployment_id),
                [("Retry", Action.RETRY_CONFIG_COMMIT.value, "primary")],
            ),
        ],
    )


def superseded_message(*, branch: str, newer_deployment_id: str) -> Message:
    text = (
        f":information_source: This deployment's configuration was not committed to `{escape_mrkdwn(branch)}`:"
        f" it was superseded by the later apply of deployment {newer_deployment_id}, whose files the"
        " branch keeps."
    )
    return Message(text=clip(text), blocks=[section(clip(text))])


def retry_requested(user_id: str) -> str:
    return f":repeat: Configuration commit retried by <@{user_id}>."


RETRY_WRONG_ENVIRONMENT = "This button belongs to another environment's configuration; nothing was retried."


# -- environments import ---------------------------------------------------------------------------


def import_line(key: str, outcome: str, detail: str = "") -> str:
    marks = {"imported": "✓", "state missing": "✗", "unreadable": "✗"}
    return f"{marks.get(outcome, '!')} {key}: {outcome}" + (f" — {detail}" if detail else "")


def import_summary(imported: int, failed: int, branches: int, remote: str) -> str:
    if branches == 0:
        return f"No environment branches found on {remote}; nothing imported."
    return f"{imported} of {branches} environment(s) imported from {remote}" + (
        f"; {failed} could not be imported." if failed else "."
    )


def regeneration_mismatch(path: str) -> str:
    return (
        f"regenerating {path} from the imported values does not give the committed file; the committed"
        " file is what was applied, check it before the next change"
    )


def state_missing(bucket: str, key: str) -> str:
    return f"no state object s3://{bucket}/{key}"


def state_unreadable(bucket: str, key: str, error: str) -> str:
    return f"could not check s3://{bucket}/{key} ({error})"


def branch_unreadable(reason: str) -> str:
    return f"its head commit is not a readable configuration commit ({reason})"


def key_mismatch(branch: str, key: str) -> str:
    return f"the branch {branch} holds the files of another environment ({key})"
