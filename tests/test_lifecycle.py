"""The lifecycle table (core/lifecycle.py): every allowed and every forbidden move, the classes of
statuses, the table's invariants, a worker's move and its job in one transaction, and no status set
defined anywhere else."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import redis

from bot.views.statuses import status_label
from core import lifecycle
from core.lifecycle import (
    TRANSITIONS,
    Actor,
    DeploymentStatus,
    Kind,
    Move,
    MoveRefused,
    Step,
)
from core.models import Deployment, DeploymentStopped
from core.policy.loading import policy_from_settings
from core.settings import Settings
from storage.queue import JOB_FUNCTIONS, queue
from tests.harness.records import deployment_request, worker_runtime
from tests.harness.slack_api import BOT_TOKEN
from tests.test_crash_recovery import REQUESTER
from workers.runtime import Runtime, move

S = DeploymentStatus
ROOT = Path(__file__).resolve().parents[1]
EVERY = frozenset(S)
STOPPED = {S.CANCELLED, S.REJECTED}
OPEN = EVERY - {S.DEPLOYED, S.DESTROYED, S.FAILED, S.REJECTED, S.CANCELLED, S.INTERRUPTED}

# The lifecycle written out once more, by hand, from the product's flow (README "Using it"): the
# table must say exactly this. (sources, target, job)
EXPECTED: dict[Move, tuple[set[S] | frozenset[S], S, Step | None]] = {
    Move.START_VERIFY: ({S.REQUESTED, S.VERIFYING}, S.VERIFYING, None),
    Move.VERIFIED: ({S.VERIFYING}, S.ANALYSING, Step.ANALYSE),
    Move.VERIFIED_ENVIRONMENT: ({S.VERIFYING}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.START_ANALYSE: ({S.VERIFYING, S.ANALYSING}, S.ANALYSING, None),
    Move.ANALYSED: ({S.ANALYSING}, S.AWAITING_DECISION, None),
    Move.FRESH_ACCOUNT: ({S.ANALYSING}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.START_BACKEND: ({S.ANALYSING, S.PREPARING_BACKEND}, S.PREPARING_BACKEND, None),
    Move.BACKEND_NEEDS_FIX: ({S.PREPARING_BACKEND}, S.AWAITING_BACKEND_FIX, None),
    Move.BACKEND_READY: ({S.PREPARING_BACKEND}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.START_WORKSPACE: ({S.PREPARING_BACKEND, S.PREPARING_WORKSPACE}, S.PREPARING_WORKSPACE, None),
    Move.VALUES_NEEDED: ({S.PREPARING_WORKSPACE}, S.AWAITING_INPUT, None),
    Move.WORKSPACE_READY: ({S.PREPARING_WORKSPACE}, S.PLANNING, Step.PLAN),
    Move.START_PLAN: ({S.PREPARING_WORKSPACE, S.PLANNING}, S.PLANNING, None),
    Move.PLANNED: ({S.PLANNING}, S.AWAITING_APPROVAL, None),
    Move.NO_CHANGES: ({S.PLANNING}, S.DEPLOYED, None),
    Move.PLAN_NOT_APPLYABLE: ({S.PLANNING}, S.FAILED, None),
    Move.WAIT_TO_APPLY: ({S.APPROVED}, S.APPROVED, None),
    Move.START_APPLY: ({S.APPROVED, S.APPLYING}, S.APPLYING, None),
    Move.APPLIED: ({S.APPLYING}, S.VERIFYING_DEPLOYMENT, Step.VERIFY_DEPLOYMENT),
    Move.APPLY_FAILED: ({S.APPLYING}, S.FAILED, None),
    Move.DEPLOYMENT_VERIFIED: ({S.VERIFYING_DEPLOYMENT}, S.DEPLOYED, None),
    Move.DESTROYED: ({S.VERIFYING_DEPLOYMENT}, S.DESTROYED, None),
    Move.FAIL: (EVERY - STOPPED - {S.INTERRUPTED, S.DESTROYED}, S.FAILED, None),
    Move.INTERRUPT: (EVERY - STOPPED - {S.DESTROYED}, S.INTERRUPTED, None),
    Move.APPLY_RECOMMENDATIONS: ({S.AWAITING_DECISION}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.KEEP_VALUES: ({S.AWAITING_DECISION}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.OVERRIDE_PERMISSIONS: ({S.AWAITING_DECISION}, S.ANALYSING, Step.ANALYSE),
    Move.FULL_ANALYSIS: ({S.AWAITING_DECISION}, S.ANALYSING, Step.ANALYSE),
    Move.FIX_BACKEND: ({S.AWAITING_BACKEND_FIX}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.GIVE_VALUES: ({S.AWAITING_INPUT}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.EDIT_VALUES: (
        {S.AWAITING_APPROVAL, S.FAILED, S.DEPLOYED, S.AWAITING_INPUT, S.INTERRUPTED},
        S.PREPARING_WORKSPACE,
        Step.WORKSPACE,
    ),
    Move.APPROVE: ({S.AWAITING_APPROVAL}, S.APPROVED, Step.APPLY),
    Move.REJECT: ({S.AWAITING_APPROVAL}, S.REJECTED, None),
    Move.REPLAN: (
        {S.AWAITING_APPROVAL, S.FAILED, S.DEPLOYED, S.INTERRUPTED, S.CANCELLED},
        S.PLANNING,
        Step.PLAN,
    ),
    Move.CANCEL: (OPEN - {S.APPLYING}, S.CANCELLED, None),
    Move.FORCE_CANCEL: (OPEN, S.CANCELLED, None),
}
BY_PEOPLE = {
    Move.APPLY_RECOMMENDATIONS,
    Move.KEEP_VALUES,
    Move.OVERRIDE_PERMISSIONS,
    Move.FULL_ANALYSIS,
    Move.FIX_BACKEND,
    Move.GIVE_VALUES,
    Move.EDIT_VALUES,
    Move.APPROVE,
    Move.REJECT,
    Move.REPLAN,
    Move.CANCEL,
    Move.FORCE_CANCEL,
}
WAITING = {S.AWAITING_DECISION, S.AWAITING_BACKEND_FIX, S.AWAITING_INPUT, S.AWAITING_APPROVAL}
FINAL = {S.DEPLOYED, S.DESTROYED, S.FAILED, S.REJECTED, S.CANCELLED, S.INTERRUPTED}


def deployment(status: S) -> Deployment:
    return Deployment(
        request=deployment_request(), requester_id=REQUESTER, channel_id="C_DEPLOYS", status=status
    )


def test_the_table_has_every_move_and_the_expectation_too() -> None:
    assert set(TRANSITIONS) == set(Move) == set(EXPECTED)


@pytest.mark.parametrize(
    ("event", "status"), list(itertools.product(list(Move), list(S))), ids=lambda v: str(v.value)
)
def test_every_move_from_every_status(event: Move, status: S) -> None:
    sources, target, job = EXPECTED[event]
    before = deployment(status)
    assert lifecycle.job_of(event) is job
    if status in sources:
        assert lifecycle.allows(status, event)
        after = lifecycle.move(before, event, "why")
        assert (after.status, after.status_detail) == (target, "why")
        assert after.id == before.id and before.status is status  # a new record; the old one unchanged
        attempted = lifecycle.attempt(before, event, "why")
        assert attempted is not None and attempted.status is target
    else:
        assert not lifecycle.allows(status, event)
        with pytest.raises(MoveRefused) as refused:
            lifecycle.move(before, event, "why")
        assert (refused.value.move, refused.value.status) == (event, status)
        assert lifecycle.attempt(before, event, "why") is None


def test_a_move_carries_the_changes_made_with_it() -> None:
    moved = lifecycle.move(deployment(S.AWAITING_INPUT), Move.GIVE_VALUES, "values given", missing_values=[])
    assert moved.status is S.PREPARING_WORKSPACE and moved.missing_values == []
    assert lifecycle.attempt(deployment(S.PLANNING), Move.GIVE_VALUES, missing_values=["x"]) is None


def test_who_makes_each_move() -> None:
    for event, transition in TRANSITIONS.items():
        assert transition.by is (Actor.PERSON if event in BY_PEOPLE else Actor.WORKER), event


def test_job_started_by() -> None:
    assert lifecycle.job_started_by(Move.REPLAN) is Step.PLAN
    with pytest.raises(ValueError):
        lifecycle.job_started_by(Move.REJECT)


@pytest.mark.parametrize("status", list(S), ids=str)
def test_each_status_is_of_one_class(status: S) -> None:
    expected = Kind.WAITING if status in WAITING else Kind.FINAL if status in FINAL else Kind.RUNNING
    assert status.kind is expected
    assert (status.is_waiting, status.is_running, status.is_final) == (
        expected is Kind.WAITING,
        expected is Kind.RUNNING,
        expected is Kind.FINAL,
    )
    assert status.is_stopped == (status in STOPPED)
    assert status_label(status)  # every status can be shown


def test_the_classes() -> None:
    assert lifecycle.WAITING_STATUSES == WAITING
    assert lifecycle.FINAL_STATUSES == FINAL
    assert lifecycle.STOPPED_STATUSES == STOPPED <= FINAL
    assert lifecycle.RUNNING_STATUSES == EVERY - WAITING - FINAL
    assert S.APPROVED.value == "approved"  # stored records from before the rename still load
    assert (
        Deployment.model_validate({**deployment(S.REQUESTED).model_dump(), "status": "approved"}).status
        is S.APPROVED
    )


def test_invariants_of_the_table() -> None:
    for event, t in TRANSITIONS.items():
        if t.job is not None:  # a status that promises a job is a running one
            assert t.target.is_running, event
        if t.target.is_waiting:  # waiting for people: no job runs
            assert t.job is None, event
        if t.by is Actor.WORKER:  # no worker moves a cancelled or rejected deployment
            assert not t.sources & STOPPED, event
        if t.sources & FINAL and t.by is Actor.WORKER:  # nor, but for the failure rules, a final one
            assert event in {Move.FAIL, Move.INTERRUPT}, event


def test_every_status_is_reachable_and_people_move_on_what_waits_for_them() -> None:
    edges = {(s, t.target) for t in TRANSITIONS.values() for s in t.sources}
    reached, frontier = {S.REQUESTED}, [S.REQUESTED]
    while frontier:
        here = frontier.pop()
        for a, b in edges:
            if a is here and b not in reached:
                reached.add(b)
                frontier.append(b)
    assert reached == EVERY
    for status in WAITING:  # besides cancelling, a person's move takes it on with a job
        onward = [e for e, t in TRANSITIONS.items() if status in t.sources and t.by is Actor.PERSON and t.job]
        assert onward, status


@pytest.mark.parametrize("status", list(S), ids=str)
def test_the_edit_form_opens(status: S) -> None:
    # as before the table: refused while an approved plan is applying and when final and not editable
    refused = {S.APPLYING, S.APPROVED, S.REJECTED, S.CANCELLED, S.DESTROYED}
    assert lifecycle.edit_form_opens(status) is (status not in refused)


def test_the_docstring_draws_every_move_and_status() -> None:
    doc = lifecycle.__doc__ or ""
    for event in Move:
        assert event.value in doc, event
    for status in S:
        assert status.name in doc, status


# -- a worker's move and the job it starts: one transaction ----------------------------------------


@pytest.fixture
def rt(bot_env: dict[str, str], redis_conn: redis.Redis) -> Runtime:
    settings = Settings(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=bot_env["SLACK_API_URL"], REDIS_URL=bot_env["REDIS_URL"]
    )
    return worker_runtime(settings, redis_conn, policy_from_settings(None, frozenset()))


def stored(rt: Runtime, status: S) -> Deployment:
    created, _ = rt.store.create(deployment(status))
    return created


def test_a_workers_move_enqueues_its_job_with_the_status(rt: Runtime) -> None:
    d = stored(rt, S.PREPARING_WORKSPACE)
    moved = move(rt, d.id, Move.WORKSPACE_READY)
    assert moved.status is S.PLANNING and rt.store.get(d.id).status is S.PLANNING
    jobs = [j for j in queue(rt.redis, rt.settings).jobs if j.meta.get("deployment_id") == d.id]
    assert [(j.func_name, j.meta["step"]) for j in jobs] == [(JOB_FUNCTIONS[Step.PLAN], Step.PLAN.value)]


def test_a_refused_move_stores_nothing_and_enqueues_nothing(rt: Runtime) -> None:
    d = stored(rt, S.CANCELLED)
    with pytest.raises(DeploymentStopped):
        move(rt, d.id, Move.WORKSPACE_READY)
    assert rt.store.get(d.id).status is S.CANCELLED
    assert not [j for j in queue(rt.redis, rt.settings).jobs if j.meta.get("deployment_id") == d.id]


def test_a_move_without_a_job_enqueues_nothing(rt: Runtime) -> None:
    d = stored(rt, S.PLANNING)
    assert move(rt, d.id, Move.PLANNED, "1 to add").status is S.AWAITING_APPROVAL
    assert not [j for j in queue(rt.redis, rt.settings).jobs if j.meta.get("deployment_id") == d.id]


# -- no status set anywhere else --------------------------------------------------------------------

STATUS_SET = re.compile(
    r"frozenset\(\s*[\{\[(]\s*DeploymentStatus\."  # frozenset({DeploymentStatus.X ...})
    r"|\{\s*DeploymentStatus\.\w+\s*[,}]"  # {DeploymentStatus.X} or {DeploymentStatus.X, ...}
    r"|[\[(]\s*DeploymentStatus\.\w+\s*,\s*DeploymentStatus\."  # (X, Y) or [X, Y]
)


def status_sets(text: str) -> list[str]:
    return [m.group(0) for m in STATUS_SET.finditer(text)]


def test_the_check_finds_status_sets() -> None:
    assert status_sets("A = frozenset(\n    {\n        DeploymentStatus.FAILED,\n    }\n)")
    assert status_sets("if s in {DeploymentStatus.APPLYING, DeploymentStatus.APPROVED}:")
    assert status_sets("if s in {DeploymentStatus.AWAITING_DECISION}:")
    assert status_sets("if s in (DeploymentStatus.A, DeploymentStatus.B):")
    assert not status_sets("LABELS = {DeploymentStatus.FAILED: 'x'}\nif s is DeploymentStatus.FAILED:")


def test_no_status_set_outside_the_lifecycle() -> None:
    found = []
    for package in ("bot", "core", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "core" / "lifecycle.py":
                continue
            for hit in status_sets(path.read_text()):
                found.append(f"{path.relative_to(ROOT)}: {hit!r}")
    assert found == []


def test_every_status_change_is_a_move_of_the_table() -> None:
    """`Deployment.with_status` is called by core.lifecycle.move only: nothing changes a status
    without the table."""
    callers = [
        str(path.relative_to(ROOT))
        for package in ("bot", "core", "workers")
        for path in sorted((ROOT / package).rglob("*.py"))
        if ".with_status(" in path.read_text() and path != ROOT / "core" / "lifecycle.py"
    ]
    assert callers == []
