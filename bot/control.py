"""Operating deployments from `/ecs-deploy` and App Home: who is a lead, what a user may see, and
cancel / unlock / re-plan as state changes over `Services`.

Every state change is a move of core.lifecycle made in `DeploymentStore.transition` (WATCH/MULTI), so a command racing a
worker or a button either wins or is refused with the status it found; nothing is half-written.
The functions here change Redis (and enqueue jobs) but never call Slack: they return what
happened. A cancel or re-plan takes its thread notes from the listener and queues them in the outbox
in its own transaction (with the plan job, or the cancel flag), so they come before anything the job
or the interrupted step posts; an unlock is rendered and handed to the notifier (`announce_release`). The AWS calls of
`terraform_lock` read Terraform's DynamoDB lock item with short timeouts (listeners call it only
after `ack()`), and release that item when it is provably a dead run's own (core.terraform_locks.own_lock) and
a lead asked for it: `lock_view` — every unlock goes through it, after the lead check — records the
lead's intent for a few minutes; `terraform_lock` consumes it, deletes the item only if its Info is
unchanged (a conditional delete), and audits the release. A lock of anyone else is never touched.

The cancel flag (the key the Terraform runner polls) is set in the same transaction as CANCELLED,
and cleared in the same transaction as the re-plan that moves a cancelled deployment on: a re-plan of
a cancelled deployment is never interrupted by its old cancel.

Refusals are `ControlRefused`, with a message written for the person who typed the command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from redis.client import Pipeline

from aws_edge import configs
from aws_edge.errors import aws_problem, error_code
from aws_edge.sessions import session_for
from aws_edge.terraform_lock import lock_client, read_lock, release_lock
from bot.environments import superseded
from bot.notifier import Notifier
from bot.outbox import OutboxEntry
from bot.services import Services
from bot.views import refusals
from bot.views.access import reason_text
from bot.views.messages import text_message
from core import lifecycle
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentStatus, utcnow
from core.policy.access import AccessPolicy
from core.policy.principals import SlackIdentity
from core.steering import may_override, may_steer
from core.terraform_locks import TerraformLockInfo, own_lock, release_facts
from core.values import Value
from storage.locks import LockHolder, StateLock, TerraformRuns, state_id
from storage.store import PREFIX

log = get_logger(__name__)

CANCEL_KEY_TTL_SECONDS = 24 * 3600
UNLOCK_INTENT_TTL_SECONDS = 600  # a lead's /ecs-deploy unlock, until its Terraform lock check ran
PENDING_SCAN = 200  # how many recent deployments App Home looks through for pending approvals


class ControlRefused(Exception):
    """A command that changes nothing; the message says why, for the person who asked."""


def cancel_key(deployment_id: str) -> str:
    """The key the Terraform runner polls (workers/steps/common.py): set → SIGINT to terraform."""
    return f"{PREFIX}cancel:{deployment_id}"


def unlock_intent_key(deployment_id: str) -> str:
    return f"{PREFIX}unlock-intent:{deployment_id}"


# -- who sees what ---------------------------------------------------------------------------------


def is_lead(policy: AccessPolicy, user: SlackIdentity) -> bool:
    """A lead may approve plans for at least one profile (or one environment of a profile)."""
    entries = list(policy.profiles.values())
    if policy.open_profile is not None:
        entries.append(policy.open_profile)
    for entry in entries:
        if entry.approvers.includes(user):
            return True
        if any(
            env.approvers is not None and env.approvers.includes(user) for env in entry.environments.values()
        ):
            return True
    return False


def find(services: Services, deployment_id: str) -> Deployment:
    deployment = services.store.find(deployment_id.strip()[:64])
    if deployment is None:
        raise ControlRefused(refusals.unknown_deployment(deployment_id.strip()[:64]))
    return deployment


def latest_of(services: Services, user_id: str) -> Deployment | None:
    return next(iter(services.store.recent(user_id=user_id, limit=1)), None)


def visible(services: Services, user: SlackIdentity, *, limit: int) -> tuple[list[Deployment], bool]:
    """Recent deployments for `list`, newest first: a lead's are everyone's. Returns (them, everyone)."""
    everyone = is_lead(services.policy, user)
    recent = services.store.recent(user_id=None if everyone else user.user_id, limit=limit)
    return recent, everyone


def can_still_approve(policy: AccessPolicy, user: SlackIdentity, deployment: Deployment) -> bool:
    """Whether the user could approve this plan now: an approver for its profile/environment, not
    the requester (unless the policy allows self-approval), and not one who approved it already."""
    if deployment.status is not DeploymentStatus.AWAITING_APPROVAL:
        return False
    request = deployment.request
    if not policy.can_approve(user, request.profile, request.environment).allowed:
        return False
    rule = policy.approval_rule(request.profile, request.environment)
    if user.user_id == deployment.requester_id and not (rule and rule.allow_self_approval):
        return False
    return user.user_id not in deployment.approval.approver_ids


def pending_approvals(
    services: Services, user: SlackIdentity, *, scan: int = PENDING_SCAN
) -> list[Deployment]:
    """Plans waiting for this user's approval, newest first (empty for anyone who is not a lead)."""
    if not is_lead(services.policy, user):
        return []
    return [d for d in services.store.recent(limit=scan) if can_still_approve(services.policy, user, d)]


# -- cancel ----------------------------------------------------------------------------------------


Notes = Callable[[Deployment], Sequence[OutboxEntry | None]]


def no_notes(deployment: Deployment) -> list[OutboxEntry | None]:
    return []


def announcement(
    notifier: Notifier, deployment: Deployment, previous: DeploymentStatus, text: str
) -> list[OutboxEntry | None]:
    """The thread hears who cancelled or asked for a new plan; if a plan was waiting for approval, its
    buttons are replaced so nobody approves it any more."""
    waiting_plan = deployment.plan if previous is DeploymentStatus.AWAITING_APPROVAL else None
    return [
        notifier.root_entry(deployment.id),
        notifier.decide_entry(deployment, waiting_plan.message_ts, text) if waiting_plan else None,
        notifier.post_entry(deployment, text_message(text)),
    ]


class Cancelled(Value):
    deployment: Deployment
    previous: DeploymentStatus
    by: str

    @property
    def interrupted_apply(self) -> bool:
        return self.previous is DeploymentStatus.APPLYING


class ApplyRunning(ControlRefused):
    """Cancelling a running apply needs an explicit --force."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(refusals.not_now("apply_running", deployment))
        self.deployment_id = deployment.id


def cancel(
    services: Services,
    user: SlackIdentity,
    deployment_id: str,
    *,
    force: bool,
    say: Callable[[Cancelled], str],
    clicked: Notes = no_notes,
) -> Cancelled:
    """Stop a deployment: status CANCELLED (from any open status; from APPLYING only with `force`),
    then the cancel key, so a running terraform gets SIGINT and gives its state lock back, and a
    queued step finds the deployment stopped and ends quietly. The thread is told (`clicked`: the
    clicked message decided, then `announcement` with `say(cancelled)`) in the same transaction,
    ahead of what the interrupted step still posts."""
    deployment = find(services, deployment_id)
    decision = may_steer(services.policy, user, deployment)
    if not decision.allowed:
        raise ControlRefused(reason_text(decision))
    refusal: list[ControlRefused] = []
    replaced: list[DeploymentStatus] = []

    event = Move.FORCE_CANCEL if force else Move.CANCEL  # a running apply needs --force

    def change(d: Deployment) -> Deployment | None:  # may run more than once (optimistic locking)
        refusal.clear()
        replaced[:] = [d.status]
        if lifecycle.allows(d.status, event):
            return lifecycle.move(d, event, f"cancelled by {user.user_id}")
        if d.status.is_final:
            refusal.append(ControlRefused(refusals.not_now("nothing_to_cancel", d)))
            return None
        refusal.append(ApplyRunning(d))  # open but refused: an apply is running and no --force
        return None

    def flag(pipe: Pipeline, moved: Deployment) -> None:  # with CANCELLED, in the same MULTI
        pipe.set(cancel_key(moved.id), user.user_id, ex=CANCEL_KEY_TTL_SECONDS)
        cancelled = Cancelled(deployment=moved, previous=replaced[0], by=user.user_id)
        notes = announcement(services.notifier, moved, replaced[0], say(cancelled))
        services.notifier.queue_in(pipe, *clicked(moved), *notes)

    moved, changed = services.store.transition(deployment.id, change, also=flag)
    if not changed:
        raise refusal[0]
    services.notifier.flush(moved.id)
    previous = replaced[0]  # what the transition replaced, not what we read before it
    log.info("deployment_cancelled", deployment_id=moved.id, user=user.user_id, previous=previous.value)
    services.audit.record("cancelled", moved.id, user.user_id, previous=previous.value, forced=force)
    return Cancelled(deployment=moved, previous=previous, by=user.user_id)


# -- re-plan ---------------------------------------------------------------------------------------


class Replanned(Value):
    deployment: Deployment
    previous: DeploymentStatus
    by: str


def replan(
    services: Services,
    user: SlackIdentity,
    deployment_id: str,
    thread_text: str,
    clicked: Notes = no_notes,
) -> Replanned:
    """Same rules as the Re-plan button: requester or approver; the move REPLAN of core.lifecycle
    (from AWAITING_APPROVAL, FAILED, DEPLOYED, INTERRUPTED or CANCELLED) → PLANNING, with a PLAN job
    with the deployment's current values in the same transaction, behind the thread's notes in the
    outbox (`clicked`, then `announcement` with `thread_text`): they are said before the new plan."""
    deployment = find(services, deployment_id)
    decision = may_steer(services.policy, user, deployment)
    if not decision.allowed:
        raise ControlRefused(reason_text(decision))
    if deployment.workspace is None:
        raise ControlRefused(refusals.not_now("nothing_to_replan", deployment))
    newer = superseded(services, deployment)
    if newer is not None:
        raise ControlRefused(newer)
    replaced: list[DeploymentStatus] = []

    def change(d: Deployment) -> Deployment | None:
        replaced[:] = [d.status]
        return lifecycle.attempt(d, Move.REPLAN, "re-plan requested")

    enqueue = services.start_in(
        lifecycle.job_started_by(Move.REPLAN),
        lambda moved: [*clicked(moved), *announcement(services.notifier, moved, replaced[0], thread_text)],
    )

    def plan_again(pipe: Pipeline, moved: Deployment) -> None:
        # an old cancel must not interrupt the new plan: cleared in the same MULTI as PLANNING
        pipe.delete(cancel_key(moved.id))
        enqueue(pipe, moved)

    moved, changed = services.store.transition(deployment.id, change, also=plan_again)
    if not changed:
        raise ControlRefused(refusals.not_now("replan_not_possible", moved))
    services.notifier.flush(moved.id)
    log.info("replan_requested", deployment_id=moved.id, user=user.user_id)
    services.audit.record("replan_requested", moved.id, user.user_id, previous=replaced[0].value)
    return Replanned(deployment=moved, previous=replaced[0], by=user.user_id)


# -- unlock ----------------------------------------------------------------------------------------


class LockView(Value):
    """The bot's Redis lock on a deployment's Terraform state, and whose run holds it."""

    deployment: Deployment
    state: str
    holder: LockHolder | None = None
    holder_status: DeploymentStatus | None = None  # the holding deployment's status, when known


def state_of(deployment: Deployment) -> str:
    return state_id(deployment.request.state_bucket, deployment.request.state_key)


def _lock(services: Services, state: str) -> StateLock:
    return StateLock(services.redis, state, ttl_seconds=services.settings.apply_timeout_seconds + 600)


def lock_view(services: Services, user: SlackIdentity, deployment_id: str) -> LockView:
    """Leads only: what an unlock would release (shown before the lead confirms)."""
    deployment = find(services, deployment_id)
    if not may_override(services.policy, user, deployment).allowed:
        request = deployment.request
        raise ControlRefused(refusals.unlock_leads_only(request.profile, request.environment))
    state = state_of(deployment)
    holder = _lock(services, state).holder()
    holding = services.store.find(holder.deployment_id) if holder else None
    # the lead's intent, for the Terraform lock check that follows this view (terraform_lock)
    services.redis.set(unlock_intent_key(deployment.id), user.user_id, ex=UNLOCK_INTENT_TTL_SECONDS)
    return LockView(
        deployment=deployment, state=state, holder=holder, holder_status=holding.status if holding else None
    )


def release(services: Services, user: SlackIdentity, deployment_id: str, token: str) -> LockView:
    """Release the lock the lead was shown (same token), never a lock someone took since."""
    view = lock_view(services, user, deployment_id)
    if view.holder is None:
        raise ControlRefused(refusals.no_lock_to_release(view.state))
    if view.holder.token != token or not _lock(services, view.state).release(token):
        raise ControlRefused(
            refusals.lock_changed_hands(
                view.state, view.holder.deployment_id, view.holder.step, view.deployment.id
            )
        )
    services.audit.record(
        "state_lock_released",
        view.deployment.id,
        user.user_id,
        state=view.state,
        holder=view.holder.deployment_id,
        holder_step=view.holder.step,
    )
    log.warning(
        "state_lock_released",
        deployment_id=view.deployment.id,
        state=view.state,
        holder=view.holder.deployment_id,
        user=user.user_id,
    )
    return view


class TerraformLock(Value):
    """Terraform's own lock item in the state backend's DynamoDB table, as far as it could be read."""

    state: str
    table: str
    backend_config: str  # the deployment's .tfbackend file, for `terraform init -backend-config=`
    held: bool = False
    lock_id: str | None = None
    who: str | None = None
    operation: str | None = None
    created: str | None = None
    problem: str | None = None  # the table could not be read: why
    # the lock was provably a dead run's own and was released now (for this lead's unlock)
    released_by: str | None = None
    released_run: str | None = None  # "d-… (apply, job …)"
    own_reason: str | None = None  # why it is (or is not) a dead run's own


def terraform_lock(services: Services, deployment: Deployment) -> TerraformLock:
    """Read the lock item `<bucket>/<key>` (not the `<bucket>/<key>-md5` digest item) with the
    deployment's profile; release it when it is provably the bot's dead run's own and a lead asked
    (see the module docstring). AWS I/O with short timeouts: call after ack()."""
    request = deployment.request
    state = state_of(deployment)
    backend = (
        deployment.workspace.tfbackend_path
        if deployment.workspace
        else f"tfbackends/{request.file_stem}.tfbackend"
    )
    found = TerraformLock(state=state, table=request.lock_table, backend_config=backend)
    try:
        # AWS I/O in a listener thread: fail fast rather than keep a Bolt worker thread busy.
        role = services.policy.role_for(request.profile)
        session = session_for(request.profile, request.region, role, sts_config=configs.LISTENER)
        client = lock_client(session, configs.LISTENER)
    except ClientError as exc:
        return found.model_copy(update={"problem": _lock_table_problem(request.lock_table, exc)})
    except BotoCoreError as exc:
        return found.model_copy(update={"problem": aws_problem(exc)})
    read = read_lock(client, request.lock_table, state)
    if read.error_code is not None:
        return found.model_copy(update={"problem": _lock_table_problem(request.lock_table, read.error_code)})
    if read.problem is not None:
        return found.model_copy(update={"problem": read.problem})
    if not read.held:
        return found
    info = read.lock
    if info is None:
        return found.model_copy(update={"held": True})
    held = found.model_copy(
        update={
            "held": True,
            "lock_id": info.id,
            "who": info.who or None,
            "operation": info.operation or None,
            "created": f"{info.created:%Y-%m-%d %H:%M:%S} UTC" if info.created else None,
        }
    )
    return _release_if_dead_runs_own(services, deployment, client, held, info)


def _release_if_dead_runs_own(
    services: Services, deployment: Deployment, client: Any, held: TerraformLock, info: TerraformLockInfo
) -> TerraformLock:
    """A lead asked to unlock (the intent `lock_view` recorded): release Terraform's lock if it is
    provably the bot's dead run's own, deleting it only if its Info is unchanged; audited."""
    runs = TerraformRuns(services.redis)
    run = runs.get(held.state)
    if run is None:
        return held
    verdict = own_lock(info, run, run_alive=runs.alive(run), now=utcnow())
    if not verdict.own:
        return held.model_copy(update={"own_reason": verdict.reason})
    lead = services.redis.getdel(unlock_intent_key(deployment.id))
    if not lead:
        return held.model_copy(update={"own_reason": verdict.reason})
    lead_id = lead.decode() if isinstance(lead, bytes) else str(lead)
    try:
        released = release_lock(client, held.table, held.state, info)
    except ClientError as exc:
        code = error_code(exc) or "error"
        return held.model_copy(update={"problem": f"DynamoDB answered {code} to the release"})
    except BotoCoreError as exc:
        return held.model_copy(update={"problem": aws_problem(exc)})
    if not released:
        return held.model_copy(update={"problem": "the lock changed while it was being released; look again"})
    holder = f"`{run.deployment_id}` ({run.step}, job `{run.job_id}`)"
    services.audit.record(
        "terraform_lock_released",
        deployment.id,
        lead_id,
        **release_facts(
            held.state, info, run, proof=verdict.proof or "", reason=verdict.reason, retried=False
        ),
    )
    log.warning("terraform_lock_released", deployment_id=deployment.id, lock_id=info.id, user=lead_id)
    return held.model_copy(
        update={"held": False, "released_by": lead_id, "released_run": holder, "own_reason": verdict.reason}
    )


def _lock_table_problem(table: str, answer: ClientError | str) -> str:
    """What DynamoDB's error answer (or its code) means for the lock table."""
    code = answer if isinstance(answer, str) else error_code(answer) or "error"
    if code == "ResourceNotFoundException":
        return f"the lock table `{table}` does not exist"
    return f"DynamoDB answered {code}"


def announce_release(services: Services, view: LockView, text: str) -> None:
    services.notifier.post(view.deployment, text_message(text))
