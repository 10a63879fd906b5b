"""`/ecs-deploy` control subcommands through the bot's real HTTP endpoint: help, status, list, cancel,
unlock and plan, with a real Redis, moto (DynamoDB lock table) and the Slack Web API stand-in.

Deployments are stored directly as records (the modal flow is covered elsewhere); their thread root
is a real message in the stand-in.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis
from rq import Queue
from slack_sdk import WebClient

from core.approval import Approval, ApprovalState, Rejection
from core.models import Deployment, DeploymentStatus, utcnow
from storage.locks import LockHolder, StateLock, state_id
from storage.queue import JOB_SERIALIZER
from storage.store import DeploymentStore
from tests.harness.aws import put_terraform_lock
from tests.harness.records import deployment_request, plan_binding, planned_deployment
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, text_value
from workers.steps.common import cancel_key

pytestmark = pytest.mark.e2e

from tests.harness.flow import BYSTANDER, GROUP_LEAD, LEAD, OTHER, REQUESTER  # noqa: E402

UNLOCK_ACTION = "control_unlock_confirm"
TF_LOCK_ID = "6f1c0c5e-2d4b-4f7e-9a61-1d0c3b2a9e77"


# -- records ---------------------------------------------------------------------------------------


def make_deployment(
    store: DeploymentStore,
    api: SlackApiStandIn,
    *,
    requester: str = REQUESTER,
    status: DeploymentStatus = DeploymentStatus.PLANNING,
    detail: str = "",
    application: str = "web",
    approvers: tuple[str, ...] = (),
    rejected_by: str | None = None,
    age_minutes: int = 0,
    plan_message_ts: str | None = None,
) -> Deployment:
    bound = plan_binding()
    approval = ApprovalState(
        binding=bound,
        approvals=tuple(Approval(approver_id=a, at=utcnow(), binding=bound) for a in approvers),
        rejection=Rejection(by=rejected_by, at=utcnow(), reason="too big for dev", binding=bound)
        if rejected_by
        else None,
    )
    deployment = planned_deployment(
        api,
        requester,
        "Plan: 112 to add, 0 to change, 0 to destroy.",
        plan_fields={"message_ts": plan_message_ts},
        request=deployment_request(application=application),
        team_id="T111",
        status=status,
        status_detail=detail,
        created_at=utcnow() - timedelta(minutes=age_minutes),
        approval=approval,
    )
    created, _ = store.create(deployment)
    return created


def link(deployment: Deployment) -> str:
    assert deployment.thread_ts
    return f"https://slack.com/archives/C_DEPLOYS/p{deployment.thread_ts.replace('.', '')}"


def answer(response: Any) -> str:
    """The private answer Slack shows the caller: the ack's body (plain text, or JSON with text)."""
    assert response.status_code == 200, response.text
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return str(response.json()["text"])
    return str(response.text)


def thread_post(api: SlackApiStandIn, deployment: Deployment, needle: str) -> str:
    call = api.wait_for(
        "chat.postMessage",
        lambda c: c.params.get("thread_ts") == deployment.thread_ts and needle in c.params.get("text", ""),
        timeout=10,
    )
    return str(call.params["text"])


# -- help ------------------------------------------------------------------------------------------


def test_help_lists_every_subcommand_and_unknown_ones_get_the_help(bot: SlackClientSim) -> None:
    text = answer(bot.slash_command("help"))
    for usage in ("status [id]", "list", "cancel <id>", "--force", "plan <id>", "unlock <id>", "help"):
        assert usage in text, usage
    unknown = answer(bot.slash_command("frobnicate now"))
    assert unknown.startswith("Unknown subcommand `frobnicate`.") and "unlock <id>" in unknown
    assert "Usage: `/ecs-deploy cancel <id> [--force]`" in answer(bot.slash_command("cancel"))
    assert "Unknown option `--forse`" in answer(bot.slash_command("cancel d-1234abcd --forse"))


# -- status and list -------------------------------------------------------------------------------


def test_status_shows_step_requester_approvers_and_thread_link(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    older = make_deployment(
        store, slack_api, status=DeploymentStatus.REJECTED, rejected_by=LEAD, age_minutes=30
    )
    latest = make_deployment(
        store, slack_api, status=DeploymentStatus.APPLYING, detail="42 of 112 resources", approvers=(LEAD,)
    )

    mine = answer(bot.slash_command("status", user=REQUESTER))
    assert f"`{latest.id}`" in mine and "web/dev · 123456789012 · us-east-1 · small" in mine
    assert ":gear: Applying — 42 of 112 resources" in mine
    assert f"<@{REQUESTER}>" in mine and f"approved by <@{LEAD}>" in mine
    assert link(latest) in mine

    # a lead asks about a given deployment: the rejection and its reason
    rejected = answer(bot.slash_command(f"status {older.id}", user=LEAD))
    assert f"`{older.id}`" in rejected and "Rejected" in rejected
    assert f"rejected by <@{LEAD}>" in rejected and "too big for dev" in rejected

    assert "No deployment `d-00000000`" in answer(bot.slash_command("status d-00000000", user=REQUESTER))
    assert "no deployments yet" in answer(bot.slash_command("status", user=BYSTANDER))


def test_list_shows_the_callers_own_newest_first_and_everything_to_a_lead(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    first = make_deployment(
        store, slack_api, application="api", status=DeploymentStatus.DEPLOYED, age_minutes=20
    )
    others = make_deployment(store, slack_api, requester=OTHER, application="billing", age_minutes=10)
    second = make_deployment(store, slack_api, application="web", status=DeploymentStatus.AWAITING_APPROVAL)

    mine = answer(bot.slash_command("list", user=REQUESTER))
    assert "Your recent deployments" in mine
    assert mine.index(second.id) < mine.index(first.id), "newest first"
    assert others.id not in mine
    assert ":white_check_mark: Deployed" in mine and ":raising_hand: Waiting for approval" in mine

    for lead in (LEAD, GROUP_LEAD):  # named approver, and a member of the approvers' user group
        everything = answer(bot.slash_command("list", user=lead))
        assert "everyone's" in everything
        assert everything.index(second.id) < everything.index(others.id) < everything.index(first.id)
        assert f"<@{OTHER}>" in everything

    assert "You have no deployments yet" in answer(bot.slash_command("list", user=BYSTANDER))


# -- cancel ----------------------------------------------------------------------------------------


def assert_not_cancelled(store: DeploymentStore, deployment: Deployment, status: DeploymentStatus) -> None:
    """The deployment kept its status and no cancel key was set for the Terraform runner."""
    assert store.get(deployment.id).status is status
    assert not store.redis.exists(cancel_key(deployment.id))


def test_requester_cancels_a_running_step_and_the_thread_says_who(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.PLANNING)

    reply = answer(bot.slash_command(f"cancel {deployment.id}", user=REQUESTER))
    assert f"`{deployment.id}` is cancelled" in reply
    cancelled = store.get(deployment.id)
    assert cancelled.status is DeploymentStatus.CANCELLED and REQUESTER in cancelled.status_detail
    assert redis_conn.get(cancel_key(deployment.id)) == REQUESTER.encode(), (
        "the Terraform runner's cancel key"
    )
    assert redis_conn.ttl(cancel_key(deployment.id)) > 0
    thread_post(slack_api, deployment, f"Deployment cancelled by <@{REQUESTER}>")

    again = answer(bot.slash_command(f"cancel {deployment.id}", user=REQUESTER))
    assert "already cancelled" in again


def test_a_lead_may_cancel_someone_elses_deployment(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.APPROVED)
    assert "is cancelled" in answer(bot.slash_command(f"cancel {deployment.id}", user=GROUP_LEAD))
    assert store.get(deployment.id).status is DeploymentStatus.CANCELLED
    thread_post(slack_api, deployment, f"cancelled by <@{GROUP_LEAD}>")


def test_a_bystander_cannot_cancel(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.PLANNING)
    reply = answer(bot.slash_command(f"cancel {deployment.id}", user=BYSTANDER))
    # a stranger learns nothing of it: the answer an unknown id gets, word for word
    assert reply == answer(bot.slash_command("cancel d-00000000", user=BYSTANDER)).replace(
        "d-00000000", deployment.id
    )
    assert REQUESTER not in reply and deployment.request.profile not in reply
    assert_not_cancelled(store, deployment, DeploymentStatus.PLANNING)


def test_a_finished_deployment_cannot_be_cancelled(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    reply = answer(bot.slash_command(f"cancel {deployment.id}", user=REQUESTER))
    assert "already deployed" in reply and "nothing to cancel" in reply
    assert_not_cancelled(store, deployment, DeploymentStatus.DEPLOYED)


def test_cancelling_a_running_apply_needs_force_and_warns_of_a_partial_apply(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.APPLYING, approvers=(LEAD,))

    warned = answer(bot.slash_command(f"cancel {deployment.id}", user=REQUESTER))
    assert "partially applied" in warned and f"/ecs-deploy cancel {deployment.id} --force" in warned
    assert_not_cancelled(store, deployment, DeploymentStatus.APPLYING)

    forced = answer(bot.slash_command(f"cancel {deployment.id} --force", user=REQUESTER))
    assert "is cancelled" in forced and "partially applied" in forced
    assert store.get(deployment.id).status is DeploymentStatus.CANCELLED
    assert redis_conn.exists(cancel_key(deployment.id))
    text = thread_post(slack_api, deployment, f"cancelled by <@{REQUESTER}>")
    assert "partially applied" in text


# -- unlock ----------------------------------------------------------------------------------------


def lock_table_with_terraform_lock(deployment: Deployment) -> None:
    """Terraform's S3-backend lock in DynamoDB: the lock item (Info JSON) and the -md5 digest item."""
    put_terraform_lock(
        deployment, lock_id=TF_LOCK_ID, who="rq@worker-7", version="1.9.8", created="2024-05-02T14:02:11.123Z"
    )


def bot_lock(redis_conn: redis.Redis, deployment: Deployment) -> StateLock:
    return StateLock(
        redis_conn,
        state_id(deployment.request.state_bucket, deployment.request.state_key),
        ttl_seconds=600,
    )


def held_lock(redis_conn: redis.Redis, deployment: Deployment, step: str) -> tuple[StateLock, LockHolder]:
    """The bot's lock on `deployment`'s state, taken by its requester for `step`."""
    lock = bot_lock(redis_conn, deployment)
    held = lock.try_acquire(deployment.id, REQUESTER, step)
    assert held is not None
    return lock, held


def locked_deployment(
    store: DeploymentStore, api: SlackApiStandIn, step: str, **fields: Any
) -> tuple[Deployment, StateLock, LockHolder]:
    """A deployment (`make_deployment`'s `fields`) whose `step` holds the bot's lock on its state."""
    deployment = make_deployment(store, api, **fields)
    lock, held = held_lock(store.redis, deployment, step)
    return deployment, lock, held


def unlock_button(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    blocks = response.json().get("blocks") or []
    buttons = [e for b in blocks for e in b.get("elements") or [] if e.get("action_id") == UNLOCK_ACTION]
    assert buttons, response.text
    return dict(buttons[0])


def click_unlock(
    bot: SlackClientSim, slack_api: SlackApiStandIn, value: str, user: str, says: str = ""
) -> str:
    """`user` clicks the unlock confirmation button; the text of the ephemeral answer (one that says `says`)."""
    bot.block_action(UNLOCK_ACTION, value, user=user)
    told = slack_api.wait_for(
        "chat.postEphemeral", lambda c: c.params.get("user") == user and says in c.params["text"], timeout=30
    )
    return str(told.params["text"])


def test_unlock_is_for_leads_only(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment, lock, held = locked_deployment(store, slack_api, "apply", status=DeploymentStatus.FAILED)

    refused = answer(bot.slash_command(f"unlock {deployment.id}", user=REQUESTER))
    assert "Only an approver (lead) for profile `deployer` in `dev` can release a state lock" in refused

    # a forged click on the confirm button by a non-lead releases nothing either
    assert "Only an approver (lead)" in click_unlock(
        bot, slack_api, f"{deployment.id}:{held.token}", BYSTANDER
    )
    assert lock.holder() == held


def test_a_lead_releases_the_bots_lock_and_learns_how_to_force_unlock_terraform(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    crashed, lock, held = locked_deployment(
        store, slack_api, "apply", status=DeploymentStatus.APPLYING, approvers=(LEAD,)
    )
    lock_table_with_terraform_lock(crashed)

    prompt = bot.slash_command(f"unlock {crashed.id}", user=LEAD)
    button = unlock_button(prompt)
    assert button["value"] == f"{crashed.id}:{held.token}"
    assert button["confirm"]["confirm"]["text"] == "Release"
    text = prompt.json()["text"]
    assert f"held by `{crashed.id}` (apply" in text and "has not finished" in text
    assert lock.holder() == held, "nothing is released before the lead confirms"

    told = click_unlock(bot, slack_api, button["value"], LEAD, says="force-unlock")
    assert lock.holder() is None
    assert f"terraform force-unlock {TF_LOCK_ID}" in told
    assert "OperationTypeApply" in told and "rq@worker-7" in told
    assert "-backend-config=tfvars/web.tfbackend" in told
    assert "Released the bot's lock" in told
    thread_post(slack_api, crashed, f"<@{LEAD}> released the bot's lock")

    # the same button again: the lock is gone, nothing else is touched
    click_unlock(bot, slack_api, button["value"], LEAD, says="holds no lock")


def test_unlock_never_releases_a_lock_taken_since_the_lead_looked(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment, lock, first = locked_deployment(store, slack_api, "plan", status=DeploymentStatus.FAILED)
    button = unlock_button(bot.slash_command(f"unlock {deployment.id}", user=LEAD))
    lock.release(first.token)
    newer = lock.try_acquire("d-newer001", OTHER, "apply")

    assert "changed hands" in click_unlock(bot, slack_api, button["value"], LEAD)
    assert lock.holder() == newer


def test_unlock_without_a_bot_lock_still_checks_terraforms_lock(
    bot: SlackClientSim, slack_api: SlackApiStandIn, store: DeploymentStore
) -> None:
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.FAILED)
    lock_table_with_terraform_lock(deployment)
    assert "holds no lock" in answer(bot.slash_command(f"unlock {deployment.id}", user=LEAD))
    told = slack_api.wait_for("chat.postEphemeral", lambda c: c.params.get("user") == LEAD)
    assert f"terraform force-unlock {TF_LOCK_ID}" in told.params["text"]


# -- plan ------------------------------------------------------------------------------------------


def test_plan_requeues_a_plan_with_the_current_values(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    plan_ts = str(
        WebClient(token=BOT_TOKEN, base_url=slack_api.base_url).chat_postMessage(
            channel="C_DEPLOYS",
            text="Plan",
            blocks=[
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Approve"},
                            "action_id": "plan_approve",
                        }
                    ],
                }
            ],
        )["ts"]
    )
    deployment = make_deployment(
        store, slack_api, status=DeploymentStatus.AWAITING_APPROVAL, plan_message_ts=plan_ts
    )
    queue = Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER)

    refused = answer(bot.slash_command(f"plan {deployment.id}", user=BYSTANDER))
    assert "Only the requester" not in refused and REQUESTER not in refused
    assert queue.count == 0

    assert "A new plan" in answer(bot.slash_command(f"plan {deployment.id}", user=REQUESTER))
    assert store.get(deployment.id).status is DeploymentStatus.PLANNING
    [job] = queue.jobs
    assert job.func_name == "workers.jobs.run_plan" and job.args[0] == deployment.id
    thread_post(slack_api, deployment, f"Re-plan requested by <@{REQUESTER}>")
    stale = slack_api.wait_for("chat.update", lambda c: c.params.get("ts") == plan_ts, timeout=10)
    assert all(b.get("type") != "actions" for b in stale.params["blocks"]), "the old Approve button is gone"

    # while planning, another re-plan is refused and nothing more is queued
    assert "is planning" in answer(bot.slash_command(f"plan {deployment.id}", user=REQUESTER))
    assert queue.count == 1


def test_only_the_newest_deployment_of_an_environment_is_planned_again(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    """After a change, re-planning the environment's first deployment would plan its older values
    against the live state (and undo the change once applied): refused, pointing at the change flow."""
    first = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    newer = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)  # e.g. its change
    queue = Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER)
    refused = answer(bot.slash_command(f"plan {first.id}", user=REQUESTER))
    assert f"`{first.id}` is no longer the newest deployment of web/dev (`{newer.id}` is)" in refused
    assert "/ecs-deploy change web/dev" in refused
    assert store.get(first.id).status is DeploymentStatus.DEPLOYED and queue.count == 0
    assert "A new plan" in answer(bot.slash_command(f"plan {newer.id}", user=REQUESTER))
    assert queue.count == 1


def test_values_of_an_older_deployment_of_an_environment_are_not_edited(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    first = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    newer = make_deployment(store, slack_api, status=DeploymentStatus.DEPLOYED)
    values = {
        "size": {"value": {"type": "radio_buttons", "selected_option": {"value": "medium"}}},
        "vpc_cidr_block": text_value("10.0.0.0/16"),
        "additional_tags": text_value("team=platform"),
    }
    metadata = json.dumps({"deployment_id": first.id, "channel_id": "C_DEPLOYS"})
    refused = bot.view_submission(
        values,
        user=REQUESTER,
        private_metadata=metadata,
        callback_id="ecs_deploy_edit_values",
        view_id="V-E1",
    )
    assert (
        f"is no longer the newest deployment of web/dev (`{newer.id}` is)" in refused.json()["errors"]["size"]
    )
    assert (
        store.get(first.id).status is DeploymentStatus.DEPLOYED
        and store.get(first.id).request.size.value == "small"
    )
    assert Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count == 0


def test_an_interrupted_deployment_can_be_replanned(
    bot: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, store: DeploymentStore
) -> None:
    """After a killed apply the sweeper says "re-plan to see": that must work."""
    deployment = make_deployment(store, slack_api, status=DeploymentStatus.INTERRUPTED)
    assert "A new plan" in answer(bot.slash_command(f"plan {deployment.id}", user=REQUESTER))
    assert store.get(deployment.id).status is DeploymentStatus.PLANNING
    [job] = Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).jobs
    assert job.func_name == "workers.jobs.run_plan"
