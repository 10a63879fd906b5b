"""bench/load.py's people: the requester and a lead, playing every deployment through the bot's HTTP
endpoint (submit, give the missing values, decide, approve, re-plan a plan made stale) until it is final."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from core.models import Deployment, DeploymentStatus
from storage.store import DeploymentStore
from tests.harness.flow import LEAD, REQUESTER, USER_VALUES
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, request_values

POLL_SECONDS = 0.2
ACTION_RETRY_SECONDS = 20.0  # act again on a deployment whose status did not move after our action
MAX_REPLANS = 4
STALE_MARK = "state changed since this plan"
METADATA = '{"channel_id": "C_DEPLOYS", "team_id": "T111"}'
SHARED_APP = "shared"
DUPLICATE_ANSWER = "already"  # the form says the environment "already exists" or "is being deployed already"


class BenchError(Exception):
    """The bench could not run (a process did not start, a request was refused)."""


class WorkerProcess(Protocol):
    log_path: Path

    def alive(self) -> bool: ...


@dataclass
class Tracked:
    index: int
    group: str  # "distinct" or "same"
    application: str
    view_id: str
    submitted_at: float = 0.0  # wall clock (time.time()) just before the submission was posted
    deployment_id: str = ""
    finished_at: float | None = None  # first poll that saw a final status
    final: Deployment | None = None
    replans: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    last_action: tuple[str, float] | None = None  # (key, monotonic time)
    in_flight: Future[None] | None = None
    errors: list[str] = field(default_factory=list)
    refused: bool = False  # a request for an environment another request of the group created


class People:
    """The requester and a lead, clicking and submitting through the bot's HTTP endpoint."""

    def __init__(self, events_url: str, api: SlackApiStandIn) -> None:
        self.events_url = events_url
        self.api = api
        self._local = threading.local()

    @property
    def slack(self) -> SlackClientSim:
        sim: SlackClientSim | None = getattr(self._local, "sim", None)
        if sim is None:
            sim = self._local.sim = SlackClientSim(self.events_url)
        return sim

    def submit(self, tracked: Tracked, account_id: str, region: str) -> None:
        values = request_values(
            account_situation="new",
            application=tracked.application,
            environment="dev",
            account_id=account_id,
            region=region,
        )
        tracked.submitted_at = time.time()
        response = self.slack.view_submission(
            values, user=REQUESTER, private_metadata=METADATA, view_id=tracked.view_id
        )
        if response.status_code == 200 and tracked.group == "same" and DUPLICATE_ANSWER in response.text:
            tracked.refused = True  # another request for this environment won: offered the change flow
            return
        if response.status_code != 200 or response.text not in ("", "{}"):
            raise BenchError(
                f"submission {tracked.view_id} refused: HTTP {response.status_code} {response.text[:300]}"
            )

    def click(self, thread_ts: str, action_id: str, user: str) -> None:
        message, button = self.api.find_button(thread_ts, action_id)
        response = self.slack.block_action(
            action_id, button["value"], user=user, message_ts=message["ts"], message=message
        )
        if response.status_code != 200:
            raise BenchError(f"click {action_id} answered HTTP {response.status_code}")

    def has_button(self, thread_ts: str, action_id: str) -> bool:
        try:
            self.api.find_button(thread_ts, action_id)
        except AssertionError:
            return False
        return True

    def give_values(self, deployment: Deployment) -> None:
        assert deployment.thread_ts
        seen = len(self.api.calls_to("views.open"))
        self.click(deployment.thread_ts, "workspace_provide_values", REQUESTER)
        view = self._opened_values_view(deployment.id, seen)
        response = self.slack.view_submission(
            USER_VALUES,
            user=REQUESTER,
            private_metadata=view["private_metadata"],
            callback_id="ecs_deploy_missing_values",
            view_id=f"V-VALUES-{deployment.id}-{seen}",
        )
        if response.text not in ("", "{}"):
            raise BenchError(f"values for {deployment.id} refused: {response.text[:300]}")

    def _opened_values_view(self, deployment_id: str, seen: int, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.api.calls_to("views.open")[seen:]:
                view = call.params.get("view") or {}
                if view.get("callback_id") != "ecs_deploy_missing_values":
                    continue
                with contextlib.suppress(ValueError, TypeError):
                    if json.loads(view.get("private_metadata") or "{}").get("deployment_id") == deployment_id:
                        return dict(view)
            time.sleep(0.05)
        raise BenchError(f"no values modal opened for {deployment_id} within {timeout:.0f}s")

    def replan(self, deployment: Deployment) -> None:
        thread = deployment.thread_ts or ""
        if self.has_button(thread, "plan_replan"):
            self.click(thread, "plan_replan", REQUESTER)
            return
        response = self.slack.slash_command(f"plan {deployment.id}", user=REQUESTER)
        if response.status_code != 200:
            raise BenchError(f"/ecs-deploy plan {deployment.id} answered HTTP {response.status_code}")


def next_move(
    deployment: Deployment, tracked: Tracked, people: People
) -> tuple[str, Callable[[], None]] | None:
    """What a person does now for this deployment: (a key that names the move, the move)."""
    status = deployment.status
    thread = deployment.thread_ts or ""
    attempt = deployment.plan.attempt if deployment.plan else 0
    if not thread:
        return None
    if status is DeploymentStatus.AWAITING_INPUT and deployment.missing_values:
        return f"values:{attempt}", lambda: people.give_values(deployment)
    if status is DeploymentStatus.AWAITING_APPROVAL and people.has_button(thread, "plan_approve"):
        return f"approve:{attempt}", lambda: people.click(thread, "plan_approve", LEAD)
    if status is DeploymentStatus.AWAITING_DECISION:
        for action in ("analysis_keep_values", "analysis_apply_recommendations", "analysis_run_full"):
            if people.has_button(thread, action):
                return f"decision:{action}", partial(people.click, thread, action, REQUESTER)
        return None
    if status is DeploymentStatus.AWAITING_BACKEND_FIX and people.has_button(thread, "backend_fix"):
        return "backend_fix", lambda: people.click(thread, "backend_fix", REQUESTER)
    if (
        status is DeploymentStatus.FAILED
        and STALE_MARK in deployment.status_detail
        and tracked.replans < MAX_REPLANS
    ):

        def replan() -> None:
            people.replan(deployment)
            tracked.replans += 1

        return f"replan:{attempt}", replan
    return None


def is_done(deployment: Deployment, tracked: Tracked) -> bool:
    if not deployment.status.is_final:
        return False
    stale = deployment.status is DeploymentStatus.FAILED and STALE_MARK in deployment.status_detail
    return not (stale and tracked.replans < MAX_REPLANS)


def drive(
    store: DeploymentStore,
    people: People,
    tracked: list[Tracked],
    deadline: float,
    workers: Sequence[WorkerProcess],
) -> None:
    """Poll Redis and play the people until every deployment is final (or the deadline passes)."""
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="person") as pool:
        while time.monotonic() < deadline:
            pending = [t for t in tracked if t.finished_at is None]
            if not pending:
                return
            if not any(w.alive() for w in workers):
                raise BenchError(
                    "every worker process exited; see " + ", ".join(str(w.log_path) for w in workers)
                )
            by_id = {t.deployment_id: store.find(t.deployment_id) for t in pending}
            now = time.monotonic()
            for item in pending:
                deployment = by_id.get(item.deployment_id)
                if deployment is None:
                    continue
                if item.in_flight is not None:
                    if not item.in_flight.done():
                        continue
                    error = item.in_flight.exception()
                    if error is not None:
                        item.errors.append(f"{type(error).__name__}: {error}")
                    item.in_flight = None
                if is_done(deployment, item):
                    item.finished_at, item.final = time.time(), deployment
                    continue
                move = next_move(deployment, item, people)
                if move is None:
                    continue
                key, action = move
                if (
                    item.last_action
                    and item.last_action[0] == key
                    and now - item.last_action[1] < ACTION_RETRY_SECONDS
                ):
                    continue
                item.last_action = (key, now)
                item.actions[key.split(":")[0]] += 1
                item.in_flight = pool.submit(action)
            time.sleep(POLL_SECONDS)
