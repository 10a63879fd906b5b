"""What several steps share: the AWS session of a deployment, Terraform's environment, the workspace."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3

from aws_edge.sessions import session_for
from bot.views import failures
from bot.views.pipeline import step_status_message
from bot.views.terraform_runs import waiting_text
from core.lifecycle import Move
from core.logs import get_logger
from core.models import Deployment, DeploymentRequest
from core.policy.access import AssumeRole
from storage.artifacts import ArtifactStore
from storage.locks import LockHolder, StateLock, state_id
from storage.store import PREFIX
from workers.runtime import Runtime, StepFailure, move
from workers.terraform.runner import RunOptions
from workers.workspace import WorkspaceError, WorkspaceManager, checked_out_commit, inside, write_atomic

log = get_logger(__name__)
TFVARS, TFBACKEND = "tfvars", "tfbackend"


def aws_session(rt: Runtime, deployment: Deployment) -> boto3.Session:
    request = deployment.request
    return session_for(request.profile, request.region, rt.policy.role_for(request.profile))


ASSUMED_PROFILE = "ecs-deploy-bot-assumed"


def terraform_env(rt: Runtime, deployment: Deployment, workspace: Path) -> dict[str, str]:
    """Terraform gets the deployment's *profile*, not frozen keys: the AWS SDK inside Terraform then
    refreshes SSO, credential-process and assumed-role credentials itself, so a long apply never
    runs out of credentials half-way. When the access policy names a role to assume, a config file
    in the workspace adds a profile that assumes it from the deployment's profile."""
    return request_terraform_env(rt, deployment.request, workspace)


def request_terraform_env(rt: Runtime, request: DeploymentRequest, workspace: Path) -> dict[str, str]:
    """`terraform_env` for a request without its deployment (a drift check of an environment)."""
    env = {"AWS_PROFILE": request.profile, "AWS_REGION": request.region, "AWS_DEFAULT_REGION": request.region}
    role = rt.policy.role_for(request.profile)
    if role is not None:
        config = workspace / ".ecs-deploy" / "aws-config"
        # A copy of the host's AWS config: created 0600 (mkstemp) and renamed into place, never
        # readable by others for a moment, and never written through a link the checkout planted.
        write_atomic(config, _assumed_profile_config(request.profile, request.region, role))
        env.update(AWS_CONFIG_FILE=str(config), AWS_PROFILE=ASSUMED_PROFILE)
    return env


def _assumed_profile_config(profile: str, region: str, role: AssumeRole) -> str:
    """The host's AWS config plus one profile that assumes `role` with `profile`'s credentials."""
    host_config = Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")
    text = host_config.read_text() if host_config.is_file() else ""
    lines = [
        f"[profile {ASSUMED_PROFILE}]",
        f"role_arn = {role.role_arn}",
        f"source_profile = {profile}",
        f"role_session_name = {role.session_name or 'ecs-deploy-bot'}",
        f"region = {region}",
    ]
    if role.external_id:
        lines.append(f"external_id = {role.external_id}")
    return text.rstrip() + "\n\n" + "\n".join(lines) + "\n"


def store_fields(rt: Runtime, deployment_id: str, **fields: Any) -> Deployment:
    """Store `fields` on the deployment (a read-modify-write the store retries when another writer
    wins); the updated deployment."""
    return rt.store.update(deployment_id, lambda d: d.model_copy(update=fields))


def manager(rt: Runtime) -> WorkspaceManager:
    return WorkspaceManager(Path(rt.settings.data_dir), rt.settings.repo_url, rt.settings.repo_ref)


def ensure_workspace(rt: Runtime, deployment: Deployment) -> Path:
    """The deployment's checkout on this worker, rebuilt at the recorded commit when missing, with the
    generated files restored from the shared store and checked against their recorded hashes."""
    record = deployment.workspace
    if record is None:
        raise StepFailure(*failures.workspace_never_prepared())
    workspaces = manager(rt)
    path = workspaces.workspace_path(deployment.id)
    if checked_out_commit(path) != record.commit:
        try:
            path = workspaces.prepare(deployment.id, commit=record.commit).path
        except WorkspaceError as exc:
            raise StepFailure(str(exc)) from exc
    artifacts = ArtifactStore.for_settings(rt.redis, rt.settings)
    for name, relpath, digest in (
        (TFVARS, record.tfvars_path, record.tfvars_sha256),
        (TFBACKEND, record.tfbackend_path, record.tfbackend_sha256),
    ):
        target = workspace_file(path, relpath)
        if not target.is_file() or _sha(target) != digest:
            data = artifacts.get(deployment.id, name, digest)
            write_atomic(target, data.decode("utf-8"))
    return path


def workspace_file(workspace: Path, relpath: str) -> Path:
    """A file of the workspace named by a record from Redis; a path leaving the workspace is refused."""
    try:
        return inside(workspace, relpath)
    except WorkspaceError as exc:
        raise StepFailure(*failures.workspace_path_refused(exc)) from exc


def _sha(path: Path) -> str:
    from storage.artifacts import sha256

    return sha256(path.read_bytes())


def cancel_key(deployment_id: str) -> str:
    return f"{PREFIX}cancel:{deployment_id}"


def run_options(rt: Runtime, env: dict[str, str], deployment_id: str) -> RunOptions:
    key = cancel_key(deployment_id)
    return RunOptions(
        env=env,
        lock_timeout_seconds=rt.settings.terraform_lock_timeout_seconds,
        timeouts={
            "apply": float(rt.settings.apply_timeout_seconds),
            "plan": float(rt.settings.plan_timeout_seconds),
            "init": float(rt.settings.plan_timeout_seconds),
        },
        cancel=lambda: bool(rt.redis.exists(key)),
    )


def state_lock(rt: Runtime, deployment: Deployment) -> StateLock:
    request = deployment.request
    return StateLock(
        rt.redis, state_id(request.state_bucket, request.state_key), ttl_seconds=STATE_LOCK_TTL_SECONDS
    )


def waiting_in_line(
    rt: Runtime,
    deployment: Deployment,
    holder: LockHolder,
    waiting: Move,
) -> None:
    """Say in the thread, and on the root message, behind whom the run waits for the state."""
    move(rt, deployment.id, waiting, f"waiting in line behind {holder.deployment_id}")
    rt.notifier.post(deployment, step_status_message(waiting_text(holder)))


STATE_LOCK_TTL_SECONDS = 300  # refreshed while held: a crashed worker's hold ends within minutes
STATE_LOCK_REFRESH_SECONDS = 60


@contextmanager
def holding_state(
    rt: Runtime,
    deployment: Deployment,
    step: str,
    start: Move,
    *,
    waiting: Move,
) -> Iterator[Deployment]:
    """Wait in line for the deployment's Terraform state (saying so with the move `waiting`), make
    the move `start` (core.lifecycle refuses it from any other status: a late or duplicate job stops
    quietly), and hold the state — refreshing the lock — while the body runs. Taking and giving back
    the state are audited, so operators can prove that runs on one state never overlapped."""
    lock = state_lock(rt, deployment)
    request = deployment.request
    state = state_id(request.state_bucket, request.state_key)
    with lock.held(
        deployment.id,
        deployment.requester_id,
        step,
        wait_seconds=rt.settings.job_timeout_seconds,
        on_wait=lambda holder: waiting_in_line(rt, deployment, holder, waiting),
    ) as holder:
        rt.audit.record("state_acquired", deployment.id, "worker", state=state, step=step)
        stop = threading.Event()
        keeper = threading.Thread(target=_keep_lock, args=(lock, holder.token, stop), daemon=True)
        keeper.start()
        try:
            yield move(rt, deployment.id, start)
        finally:
            stop.set()
            keeper.join(timeout=5)
            rt.audit.record("state_released", deployment.id, "worker", state=state, step=step)


def _keep_lock(lock: StateLock, token: str, stop: threading.Event) -> None:
    while not stop.wait(STATE_LOCK_REFRESH_SECONDS):
        try:
            if not lock.refresh(token):
                log.error("state_lock_lost", key=lock.key)
                return
        except Exception as exc:  # Redis unreachable for a moment: try again at the next beat
            log.warning("state_lock_refresh_failed", error=type(exc).__name__)


def approval_ttl(rt: Runtime) -> timedelta:
    return timedelta(hours=rt.settings.approval_ttl_hours)
