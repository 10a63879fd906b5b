"""The deployment's lifecycle in one table: every status, every move between statuses, the job a
move starts, and which statuses wait for people, run, or are final.

Every status change — a button or form in the thread (bot/listeners), a subcommand (bot/control.py)
or a worker (workers/steps, workers/runtime.py, workers/sweeper.py) — is one `Move` of `TRANSITIONS`
applied with `move()` (or `attempt()` inside `DeploymentStore.transition`). A move that the table does
not allow from the current status is refused (`MoveRefused`, or None from `attempt`): a second
click, a late or duplicate job, a cancelled or rejected deployment. A move that names a `job` is
stored in the same Redis transaction as that job is enqueued (listeners: `Services.enqueue_in`;
workers: `workers.runtime.move`), so a status that promises a job never exists without it.

    people: [..]    worker: (..)    job queued with the move: =JOB=>    ~ any of the statuses

      REQUESTED ─(start_verify)─> VERIFYING ─(verified)=ANALYSE=> ANALYSING
      VERIFYING ─(verified_environment: a change, upgrade or destroy)=WORKSPACE=> PREPARING_WORKSPACE
      ANALYSING ─(analysed)─> AWAITING_DECISION
      ANALYSING ─(fresh_account)=BACKEND=> PREPARING_BACKEND
      AWAITING_DECISION ─[apply_recommendations | keep_values]=BACKEND=> PREPARING_BACKEND
      AWAITING_DECISION ─[override_permissions | full_analysis]=ANALYSE=> ANALYSING
      PREPARING_BACKEND ─(backend_needs_fix)─> AWAITING_BACKEND_FIX ─[fix_backend]=BACKEND=> PREPARING_BACKEND
      PREPARING_BACKEND ─(backend_ready)=WORKSPACE=> PREPARING_WORKSPACE
      PREPARING_WORKSPACE ─(values_needed)─> AWAITING_INPUT ─[give_values]=WORKSPACE=> PREPARING_WORKSPACE
      PREPARING_WORKSPACE ─(workspace_ready)=PLAN=> PLANNING
      PLANNING ─(planned)─> AWAITING_APPROVAL
      PLANNING ─(no_changes)─> DEPLOYED
      PLANNING ─(plan_not_applyable)─> FAILED
      AWAITING_APPROVAL ─[approve]=APPLY=> APPROVED ─(start_apply)─> APPLYING
      AWAITING_APPROVAL ─[reject]─> REJECTED
      APPLYING ─(applied)=VERIFY_DEPLOYMENT=> VERIFYING_DEPLOYMENT ─(deployment_verified)─> DEPLOYED
      VERIFYING_DEPLOYMENT ─(destroyed: a destroy's state is empty)─> DESTROYED
      APPLYING ─(apply_failed)─> FAILED

      AWAITING_APPROVAL | FAILED | DEPLOYED | INTERRUPTED | CANCELLED ─[replan]=PLAN=> PLANNING
      AWAITING_APPROVAL | FAILED | DEPLOYED | INTERRUPTED | AWAITING_INPUT
                                         ─[edit_values]=WORKSPACE=> PREPARING_WORKSPACE
      ~ waiting or running, except APPLYING ─[cancel]─> CANCELLED
      ~ waiting or running                  ─[force_cancel]─> CANCELLED
      ~ any but CANCELLED, REJECTED, DESTROYED, INTERRUPTED ─(fail: a step failed)─> FAILED
      ~ any but CANCELLED, REJECTED, DESTROYED              ─(interrupt: its worker was killed)─> INTERRUPTED

    When a job starts, its worker moves the status the job was queued with to the step's own (the
    root message says so); the first source is the status earlier versions queued the job with:

      VERIFYING | ANALYSING                   ─(start_analyse)─> ANALYSING
      ANALYSING | PREPARING_BACKEND           ─(start_backend)─> PREPARING_BACKEND
      PREPARING_BACKEND | PREPARING_WORKSPACE ─(start_workspace)─> PREPARING_WORKSPACE
      PREPARING_WORKSPACE | PLANNING          ─(start_plan, also while in line for the state)─> PLANNING
      APPROVED                                ─(wait_to_apply: in line for the state)─> APPROVED
      APPROVED | APPLYING                     ─(start_apply)─> APPLYING

A new deployment is stored as REQUESTED together with its VERIFY job (bot/listeners/submissions.py).
Waiting for people: AWAITING_DECISION, AWAITING_BACKEND_FIX, AWAITING_INPUT, AWAITING_APPROVAL.
Running (a job is queued or running): REQUESTED, VERIFYING, ANALYSING, PREPARING_BACKEND,
PREPARING_WORKSPACE, PLANNING, APPROVED, APPLYING, VERIFYING_DEPLOYMENT.
Final: DEPLOYED, DESTROYED, FAILED, REJECTED, CANCELLED, INTERRUPTED; of those, CANCELLED and REJECTED are
*stopped*: no worker moves a stopped deployment any more (a queued job finds it stopped and ends
quietly); only people move a final deployment on (re-plan, edit values). A DESTROYED deployment
never moves again: its environment is gone (a new one starts with a new CREATE deployment).

A change, upgrade or destroy (DeploymentKind) of a live environment skips the account analysis and the
backend (both exist since its first apply): its verify step makes VERIFIED_ENVIRONMENT.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.models import Deployment


class Step(StrEnum):
    """The pipeline's jobs (one RQ job each; storage.queue names their entry points)."""

    VERIFY = "verify"
    ANALYSE = "analyse"
    BACKEND = "backend"
    WORKSPACE = "workspace"
    PLAN = "plan"
    APPLY = "apply"
    VERIFY_DEPLOYMENT = "verify_deployment"


class DeploymentKind(StrEnum):
    """What a deployment does to its environment (core/environments.py)."""

    CREATE = "create"  # a new environment
    CHANGE = "change"  # new values (or a new ref) for a live environment
    UPGRADE = "upgrade"  # a live environment moved to the repository's current head
    DESTROY = "destroy"  # `terraform plan -destroy`, then its apply

    @property
    def on_live_environment(self) -> bool:
        return self is not DeploymentKind.CREATE


class Kind(StrEnum):
    WAITING = "waiting"  # for people: a button, a form or a subcommand moves it on
    RUNNING = "running"  # a job is queued or running
    FINAL = "final"  # nothing runs; only people move it on (or it stays)


class DeploymentStatus(StrEnum):
    REQUESTED = "requested"
    VERIFYING = "verifying"
    ANALYSING = "analysing"
    AWAITING_DECISION = "awaiting_decision"
    PREPARING_BACKEND = "preparing_backend"
    AWAITING_BACKEND_FIX = "awaiting_backend_fix"
    PREPARING_WORKSPACE = "preparing_workspace"
    AWAITING_INPUT = "awaiting_input"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # approved, its apply job queued (waiting for a worker or the state)
    APPLYING = "applying"
    VERIFYING_DEPLOYMENT = "verifying_deployment"
    DEPLOYED = "deployed"
    DESTROYED = "destroyed"  # a destroy deployment applied: its environment is gone
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def kind(self) -> Kind:
        return KINDS[self]

    @property
    def is_final(self) -> bool:
        return self.kind is Kind.FINAL

    @property
    def is_waiting(self) -> bool:
        """Waiting for people (a decision, a confirmation, values, an approval)."""
        return self.kind is Kind.WAITING

    @property
    def is_running(self) -> bool:
        return self.kind is Kind.RUNNING

    @property
    def is_stopped(self) -> bool:
        """Cancelled or rejected: a job that finds it so ends quietly and moves nothing."""
        return self in STOPPED_STATUSES


S = DeploymentStatus

KINDS: dict[DeploymentStatus, Kind] = {
    S.REQUESTED: Kind.RUNNING,
    S.VERIFYING: Kind.RUNNING,
    S.ANALYSING: Kind.RUNNING,
    S.AWAITING_DECISION: Kind.WAITING,
    S.PREPARING_BACKEND: Kind.RUNNING,
    S.AWAITING_BACKEND_FIX: Kind.WAITING,
    S.PREPARING_WORKSPACE: Kind.RUNNING,
    S.AWAITING_INPUT: Kind.WAITING,
    S.PLANNING: Kind.RUNNING,
    S.AWAITING_APPROVAL: Kind.WAITING,
    S.APPROVED: Kind.RUNNING,
    S.APPLYING: Kind.RUNNING,
    S.VERIFYING_DEPLOYMENT: Kind.RUNNING,
    S.DEPLOYED: Kind.FINAL,
    S.DESTROYED: Kind.FINAL,
    S.FAILED: Kind.FINAL,
    S.REJECTED: Kind.FINAL,
    S.CANCELLED: Kind.FINAL,
    S.INTERRUPTED: Kind.FINAL,
}

ALL_STATUSES = frozenset(DeploymentStatus)
FINAL_STATUSES = frozenset(s for s, kind in KINDS.items() if kind is Kind.FINAL)
WAITING_STATUSES = frozenset(s for s, kind in KINDS.items() if kind is Kind.WAITING)
RUNNING_STATUSES = frozenset(s for s, kind in KINDS.items() if kind is Kind.RUNNING)
STOPPED_STATUSES = frozenset({S.CANCELLED, S.REJECTED})
OPEN_STATUSES = WAITING_STATUSES | RUNNING_STATUSES  # not final: can still be cancelled


class Actor(StrEnum):
    PERSON = "person"  # a click, a form or a subcommand
    WORKER = "worker"  # a job


class Move(StrEnum):
    # workers
    START_VERIFY = "start_verify"
    VERIFIED = "verified"
    VERIFIED_ENVIRONMENT = "verified_environment"
    START_ANALYSE = "start_analyse"
    ANALYSED = "analysed"
    FRESH_ACCOUNT = "fresh_account"
    START_BACKEND = "start_backend"
    BACKEND_NEEDS_FIX = "backend_needs_fix"
    BACKEND_READY = "backend_ready"
    START_WORKSPACE = "start_workspace"
    VALUES_NEEDED = "values_needed"
    WORKSPACE_READY = "workspace_ready"
    START_PLAN = "start_plan"
    PLANNED = "planned"
    NO_CHANGES = "no_changes"
    PLAN_NOT_APPLYABLE = "plan_not_applyable"
    WAIT_TO_APPLY = "wait_to_apply"
    START_APPLY = "start_apply"
    APPLIED = "applied"
    APPLY_FAILED = "apply_failed"
    DEPLOYMENT_VERIFIED = "deployment_verified"
    DESTROYED = "destroyed"
    FAIL = "fail"
    INTERRUPT = "interrupt"
    # people
    APPLY_RECOMMENDATIONS = "apply_recommendations"
    KEEP_VALUES = "keep_values"
    OVERRIDE_PERMISSIONS = "override_permissions"
    FULL_ANALYSIS = "full_analysis"
    FIX_BACKEND = "fix_backend"
    GIVE_VALUES = "give_values"
    EDIT_VALUES = "edit_values"
    APPROVE = "approve"
    REJECT = "reject"
    REPLAN = "replan"
    CANCEL = "cancel"
    FORCE_CANCEL = "force_cancel"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[DeploymentStatus]
    target: DeploymentStatus
    by: Actor
    job: Step | None = None


def _w(
    sources: set[DeploymentStatus] | frozenset[DeploymentStatus], target: S, job: Step | None = None
) -> Transition:
    return Transition(frozenset(sources), target, Actor.WORKER, job)


def _p(
    sources: set[DeploymentStatus] | frozenset[DeploymentStatus], target: S, job: Step | None = None
) -> Transition:
    return Transition(frozenset(sources), target, Actor.PERSON, job)


# A START_* move also accepts the status the step's job was queued with by earlier versions (the
# status before the one the queueing move now sets), so jobs queued before an upgrade still run.
TRANSITIONS: dict[Move, Transition] = {
    Move.START_VERIFY: _w({S.REQUESTED, S.VERIFYING}, S.VERIFYING),
    Move.VERIFIED: _w({S.VERIFYING}, S.ANALYSING, Step.ANALYSE),
    Move.VERIFIED_ENVIRONMENT: _w({S.VERIFYING}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.START_ANALYSE: _w({S.VERIFYING, S.ANALYSING}, S.ANALYSING),
    Move.ANALYSED: _w({S.ANALYSING}, S.AWAITING_DECISION),
    Move.FRESH_ACCOUNT: _w({S.ANALYSING}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.START_BACKEND: _w({S.ANALYSING, S.PREPARING_BACKEND}, S.PREPARING_BACKEND),
    Move.BACKEND_NEEDS_FIX: _w({S.PREPARING_BACKEND}, S.AWAITING_BACKEND_FIX),
    Move.BACKEND_READY: _w({S.PREPARING_BACKEND}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.START_WORKSPACE: _w({S.PREPARING_BACKEND, S.PREPARING_WORKSPACE}, S.PREPARING_WORKSPACE),
    Move.VALUES_NEEDED: _w({S.PREPARING_WORKSPACE}, S.AWAITING_INPUT),
    Move.WORKSPACE_READY: _w({S.PREPARING_WORKSPACE}, S.PLANNING, Step.PLAN),
    Move.START_PLAN: _w({S.PREPARING_WORKSPACE, S.PLANNING}, S.PLANNING),  # also while waiting in line
    Move.PLANNED: _w({S.PLANNING}, S.AWAITING_APPROVAL),
    Move.NO_CHANGES: _w({S.PLANNING}, S.DEPLOYED),
    Move.PLAN_NOT_APPLYABLE: _w({S.PLANNING}, S.FAILED),
    Move.WAIT_TO_APPLY: _w({S.APPROVED}, S.APPROVED),  # waiting in line for the state
    Move.START_APPLY: _w({S.APPROVED, S.APPLYING}, S.APPLYING),
    Move.APPLIED: _w({S.APPLYING}, S.VERIFYING_DEPLOYMENT, Step.VERIFY_DEPLOYMENT),
    Move.APPLY_FAILED: _w({S.APPLYING}, S.FAILED),
    Move.DEPLOYMENT_VERIFIED: _w({S.VERIFYING_DEPLOYMENT}, S.DEPLOYED),
    Move.DESTROYED: _w({S.VERIFYING_DEPLOYMENT}, S.DESTROYED),
    Move.FAIL: _w(ALL_STATUSES - STOPPED_STATUSES - {S.INTERRUPTED, S.DESTROYED}, S.FAILED),
    Move.INTERRUPT: _w(ALL_STATUSES - STOPPED_STATUSES - {S.DESTROYED}, S.INTERRUPTED),
    Move.APPLY_RECOMMENDATIONS: _p({S.AWAITING_DECISION}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.KEEP_VALUES: _p({S.AWAITING_DECISION}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.OVERRIDE_PERMISSIONS: _p({S.AWAITING_DECISION}, S.ANALYSING, Step.ANALYSE),
    Move.FULL_ANALYSIS: _p({S.AWAITING_DECISION}, S.ANALYSING, Step.ANALYSE),
    Move.FIX_BACKEND: _p({S.AWAITING_BACKEND_FIX}, S.PREPARING_BACKEND, Step.BACKEND),
    Move.GIVE_VALUES: _p({S.AWAITING_INPUT}, S.PREPARING_WORKSPACE, Step.WORKSPACE),
    Move.EDIT_VALUES: _p(
        {S.AWAITING_APPROVAL, S.FAILED, S.DEPLOYED, S.AWAITING_INPUT, S.INTERRUPTED},
        S.PREPARING_WORKSPACE,
        Step.WORKSPACE,
    ),
    Move.APPROVE: _p({S.AWAITING_APPROVAL}, S.APPROVED, Step.APPLY),
    Move.REJECT: _p({S.AWAITING_APPROVAL}, S.REJECTED),
    # An interrupted or force-cancelled apply may have left the state partly applied: a fresh plan
    # is the way forward (its review shows what is left), so those can be re-planned too.
    Move.REPLAN: _p(
        {S.AWAITING_APPROVAL, S.FAILED, S.DEPLOYED, S.INTERRUPTED, S.CANCELLED}, S.PLANNING, Step.PLAN
    ),
    Move.CANCEL: _p(OPEN_STATUSES - {S.APPLYING}, S.CANCELLED),  # a running apply needs --force
    Move.FORCE_CANCEL: _p(OPEN_STATUSES, S.CANCELLED),
}


class MoveRefused(Exception):
    """The table does not allow `move` from `status`."""

    def __init__(self, move: Move, status: DeploymentStatus) -> None:
        super().__init__(f"{move.value} is not allowed from {status.value}")
        self.move = move
        self.status = status


def allows(status: DeploymentStatus, event: Move) -> bool:
    return status in TRANSITIONS[event].sources


def target(event: Move) -> DeploymentStatus:
    return TRANSITIONS[event].target


def job_of(event: Move) -> Step | None:
    """The job this move starts; it is enqueued in the same transaction as the move is stored."""
    return TRANSITIONS[event].job


def job_started_by(event: Move) -> Step:
    """The job a move that always starts one starts (ValueError for a move that starts none)."""
    job = TRANSITIONS[event].job
    if job is None:
        raise ValueError(f"{event.value} starts no job")
    return job


def move(deployment: Deployment, event: Move, detail: str = "", **updates: Any) -> Deployment:
    """The deployment after `event` (status, detail and `updates`), or MoveRefused."""
    if not allows(deployment.status, event):
        raise MoveRefused(event, deployment.status)
    moved = deployment.with_status(TRANSITIONS[event].target, detail)
    return moved.model_copy(update=updates) if updates else moved


def attempt(deployment: Deployment, event: Move, detail: str = "", **updates: Any) -> Deployment | None:
    """`move`, or None when refused: the shape `DeploymentStore.transition`'s `change` takes."""
    try:
        return move(deployment, event, detail, **updates)
    except MoveRefused:
        return None


def edit_form_opens(status: DeploymentStatus) -> bool:
    """Whether Edit values opens its form: on the way to a plan (the submission then checks
    EDIT_VALUES again) or wherever EDIT_VALUES may start — never once an approved plan is applying."""
    if status in TRANSITIONS[Move.START_APPLY].sources:
        return False
    return not status.is_final or allows(status, Move.EDIT_VALUES)
