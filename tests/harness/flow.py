"""Drive a deployment through the Slack flow the way people do: submit, click, give values."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

import boto3
import requests

from core.environments import ALARM_EMAILS, DNS_NAME
from core.models import Deployment
from storage.store import DeploymentStore
from tests.harness.processes import run_worker_burst
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values, select_value, text_value

REQUESTER, LEAD, BYSTANDER, OTHER = "U0REQUEST1", "U0LEAD0001", "U0BYSTAND1", "U0OTHER001"
GROUP_LEAD, LEADS_GROUP = "U0LEAD0002", "S0LEADS001"  # a lead through the leads' user group
USER_VALUES = {
    "var:sns_monitoring_recepients_email_list": text_value("ops@example.com"),
    "var:route53_dns_name": text_value("web.example.com"),
}
STATE_KEY = "terraform/web/dev/terraform.tfstate"  # the state of the standard request (web/dev)
SECOND_LEAD = GROUP_LEAD  # the second approver a destroy needs
# Everyone may request; two leads and the requester approve; prod is protected from destroys.
DESTROY_POLICY = f"""
defaults:
  requesters: ["*"]
  approvers: [{LEAD}, {SECOND_LEAD}, {REQUESTER}]
profiles:
  deployer:
    environments:
      dev:
      prod: {{protected: true}}
"""


def click(slack: SlackClientSim, api: SlackApiStandIn, thread: str, action: str, user: str) -> None:
    """Click `action` in `thread` once it is there."""
    message, button = api.wait_for_button(thread, action)
    response = slack.block_action(
        action, button["value"], user=user, message_ts=message["ts"], message=message
    )
    assert response.status_code == 200


def click_to_open_modal(
    slack: SlackClientSim, api: SlackApiStandIn, thread: str, action: str, user: str
) -> dict[str, Any]:
    """`click`, then the view of the modal the click opened (the next `views.open`)."""
    opened = len(api.calls_to("views.open"))
    click(slack, api, thread, action, user)
    eventually(lambda: len(api.calls_to("views.open")) > opened)
    view: dict[str, Any] = api.calls_to("views.open")[-1].params["view"]
    return view


def submit_modal(
    slack: SlackClientSim, view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str, view_id: str
) -> requests.Response:
    """Submit `values` as `user` in the modal `view` that Slack opened (its callback id and metadata)."""
    return slack.view_submission(
        values,
        user=user,
        private_metadata=view["private_metadata"],
        callback_id=view["callback_id"],
        view_id=view_id,
    )


def submit(
    slack: SlackClientSim, store: DeploymentStore, view_id: str, user: str = REQUESTER, **overrides: str
) -> str:
    before = {d.id for d in store.recent(limit=100)}
    metadata = '{"channel_id": "C_DEPLOYS", "team_id": "T111"}'
    response = slack.view_submission(
        request_values(**overrides), user=user, private_metadata=metadata, view_id=view_id
    )
    assert response.text in ("", "{}"), response.text
    [new] = [d.id for d in store.recent(limit=100) if d.id not in before]
    return new


def give_values(
    slack: SlackClientSim, api: SlackApiStandIn, deployment: Deployment, user: str = REQUESTER
) -> None:
    assert deployment.thread_ts
    calls_before = len(api.calls_to("views.open"))
    click(slack, api, deployment.thread_ts, "workspace_provide_values", user)
    view = api.wait_for(
        "views.open",
        lambda c: (
            c.params["view"]["callback_id"] == "ecs_deploy_missing_values"
            and api.calls_to("views.open").index(c) >= calls_before
        ),
    ).params["view"]
    response = submit_modal(slack, view, USER_VALUES, user=user, view_id=f"V-VALUES-{deployment.id}")
    assert response.text in ("", "{}"), response.text
    eventually(
        lambda: any(
            "gave" in c.params.get("text", "") and c.params.get("thread_ts") == deployment.thread_ts
            for c in api.calls_to("chat.postMessage")
        )
    )


def drive_to_plan_stage(run: PipelineRun, deployment_id: str) -> Deployment:
    """From a fresh submission to a deployment whose workspace-then-plan job is queued (not yet run)."""
    give_values(run.slack, run.api, drive_to_input(run, deployment_id))
    return run.store.get(deployment_id)


def drive_to_input(run: PipelineRun, deployment_id: str) -> Deployment:
    """From a fresh submission to a deployment waiting for the requester's values (nothing queued)."""
    slack, api, store, env = run
    run_worker_burst(env)  # verify + analyse
    deployment = store.get(deployment_id)
    if deployment.status.value == "awaiting_decision":
        action = "analysis_apply_recommendations" if deployment.recommendations else "analysis_keep_values"
        click(slack, api, deployment.thread_ts or "", action, REQUESTER)
        eventually(lambda: store.get(deployment_id).status.value != "awaiting_decision")
        run_worker_burst(env)  # backend + workspace
    deployment = store.get(deployment_id)
    assert deployment.status.value == "awaiting_input", (deployment.status, deployment.status_detail)
    return deployment


class PipelineRun(NamedTuple):
    """A running bot on the test Terraform repository (the `pipeline_run` fixture): Slack's side of it,
    the Slack Web API stand-in, the deployment store and the environment its workers run with."""

    slack: SlackClientSim
    api: SlackApiStandIn
    store: DeploymentStore
    env: dict[str, str]

    def submit_new_account(self, view_id: str, **overrides: str) -> str:
        """The requester's request for a brand-new account; returns the new deployment's id."""
        return submit(self.slack, self.store, view_id, account_situation="new", **overrides)

    def new_account_at_plan_stage(self, view_id: str, **overrides: str) -> str:
        """A brand-new account's request, driven to where its workspace-then-plan job is queued."""
        deployment_id = self.submit_new_account(view_id, **overrides)
        drive_to_plan_stage(self, deployment_id)
        return deployment_id


def created_environment(run: PipelineRun, view_id: str = "V-CREATE", **overrides: str) -> str:
    """An environment created through the pipeline (brand-new account, one lead approves, applied);
    returns its deployment id."""
    deployment_id = run.new_account_at_plan_stage(view_id, **overrides)
    run_worker_burst(run.env)  # workspace + plan
    deployment = run.store.get(deployment_id)
    assert deployment.status.value == "awaiting_approval", deployment.status_detail
    deployment = approve_and_apply(run, deployment_id)
    assert deployment.status.value == "deployed", deployment.status_detail
    return deployment_id


def approve_and_apply(run: PipelineRun, deployment_id: str, approver: str = LEAD) -> Deployment:
    """`approver` approves the deployment's plan; a burst worker applies it (and verifies)."""
    thread = run.store.get(deployment_id).thread_ts
    assert thread
    click(run.slack, run.api, thread, "plan_approve", approver)
    eventually(lambda: run.store.get(deployment_id).status.value == "approved")
    run_worker_burst(run.env)
    return run.store.get(deployment_id)


def change_values(
    *,
    size: str = "small",
    tags: str = "team=platform",
    emails: str = "ops@example.com",
    dns: str = "web.example.com",
    ref: str = "",
) -> dict[str, dict[str, Any]]:
    """State values of a filled-in change modal."""
    return {
        "size": select_value(size, "radio_buttons"),
        "additional_tags": text_value(tags),
        f"var:{ALARM_EMAILS}": text_value(emails),
        f"var:{DNS_NAME}": text_value(dns),
        "repo_ref": text_value(ref),
    }


def opened_view(api: SlackApiStandIn, before: int) -> dict[str, Any]:
    """The view of the first `views.open` after the first `before` ones."""
    eventually(lambda: len(api.calls_to("views.open")) > before)
    view: dict[str, Any] = api.calls_to("views.open")[before].params["view"]
    return view


def command_opens(
    slack: SlackClientSim, api: SlackApiStandIn, text: str, user: str = REQUESTER
) -> dict[str, Any]:
    """`/ecs-deploy {text}` as `user`, answered with no text: the view of the modal it opened."""
    before = len(api.calls_to("views.open"))
    response = slack.slash_command(text, user=user)
    assert response.status_code == 200 and response.text == "", response.text
    return opened_view(api, before)


def inputs(view: dict[str, Any]) -> dict[str, Any]:
    """block id -> the initial value of its input element."""
    found: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] == "input":
            element = block["element"]
            option = element.get("initial_option")
            found[block["block_id"]] = option["value"] if option else element.get("initial_value")
    return found


def state_resources(bucket: str, key: str = STATE_KEY) -> set[str]:
    """The names of the resources with instances in the Terraform state at s3://bucket/key (moto)."""
    s3 = boto3.Session(profile_name="deployer", region_name="us-east-1").client("s3")
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return {r["name"] for r in state["resources"] if r["instances"]}


def edit_state_outside_terraform(session: boto3.Session, bucket: str, key: str = STATE_KEY) -> str:
    """Change the ecs_service's desired_count in the state object itself (serial + 1, same lineage) and
    update Terraform's digest item, as someone with console access (or another tool) would leave it.
    Returns the resource's index key."""
    s3 = session.client("s3")
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    resource = next(
        r for r in state["resources"] if r["type"] == "terraform_data" and r["name"] == "ecs_service"
    )
    attributes = resource["instances"][0]["attributes"]
    value = attributes["input"]["value"] if "value" in attributes["input"] else attributes["input"]
    value["desired_count"] = 7
    state["serial"] += 1
    body = json.dumps(state, indent=2).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    session.client("dynamodb").put_item(
        TableName="terraform-state-lock",
        Item={"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": hashlib.md5(body).hexdigest()}},
    )
    return str(resource["instances"][0].get("index_key", ""))


def eventually(check: object, timeout: float = 15.0, interval: float = 0.05) -> None:
    """Listeners finish after Slack got its ack: poll until `check()` holds (raises its last error)."""
    import time
    from collections.abc import Callable

    assert callable(check)
    probe: Callable[[], object] = check
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
            if result is None or result:
                return
            error: Exception = AssertionError(f"{probe} returned {result!r}")
        except AssertionError as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        time.sleep(interval)


def ephemeral_to(api: SlackApiStandIn, user: str, contains: str, timeout: float = 15.0) -> str:
    call = api.wait_for(
        "chat.postEphemeral",
        lambda c: c.params.get("user") == user and contains in c.params.get("text", ""),
        timeout=timeout,
    )
    return str(call.params["text"])
