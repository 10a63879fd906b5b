"""The environment registry's writes after an apply, and the commit of its configuration.

`record_apply` runs in the apply job right after Terraform's outputs are stored: it records the
apply in the environment (core.environments.after_apply: CREATE makes it, CHANGE/UPGRADE update it,
DESTROY marks it destroyed), audits it and queues `commit_config` (an environment job: it never
moves the deployment's status). Idempotent: a retried apply job finds its change already recorded
and adds no second entry.

`run_commit_config` commits the deployment's generated tfvars/tfbackend — the exact bytes of the
apply, from the artifact store, else the deployment's workspace, else regenerated at the recorded
commit and checked against the recorded SHA-256 — on the environment's branch and pushes it
(workers/config_repo.py), then opens or updates its GitHub pull request (workers/github_pr.py).
One run per environment at a time (a redis-py Lock). A failure never fails the deployment: the
thread says what went wrong (redacted) and offers Retry; the outcome is kept in `Environment.config`.

`environment_workspace` builds an environment's committed configuration in a workspace from the
registry alone (its commit, request and values, checked against its tfvars SHA-256): what a drift
check plans against, on any worker, however long ago the last apply's artifacts expired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.exceptions import LockError

from bot.views.config_commit import (
    commit_message,
    committed_message,
    not_pushed_message,
    pull_request_body,
    pull_request_title,
    superseded_message,
)
from bot.views.drift import configuration_mismatch, configuration_unrecorded
from core.environment_config import ConfigTrailers, TrailerError
from core.environments import ConfigCommit, Environment, EnvironmentChange, after_apply, config_branch
from core.logs import get_logger
from core.models import Deployment, utcnow
from core.values import Value
from storage.artifacts import ArtifactError, ArtifactStore, sha256
from storage.environments import EnvironmentStore
from storage.queue import enqueue_commit_config
from workers import github_pr
from workers.config_repo import ConfigFiles, ConfigRepo, ConfigRepoError
from workers.runtime import Runtime
from workers.steps.common import TFBACKEND, TFVARS, manager
from workers.workspace import Workspace, WorkspaceError, checked_out_commit, inside

log = get_logger(__name__)
LOCK_SECONDS = 1200  # held at most this long (a crashed holder's lock ends by then)
LOCK_WAIT_SECONDS = 1200


def lock_name(environment_key: str) -> str:
    return f"ecs-deploy:environment-config-lock:{environment_key}"


# -- after an apply ----------------------------------------------------------------------------------


def environment_change(deployment: Deployment, summary: str = "") -> EnvironmentChange:
    binding, workspace = deployment.approval.binding, deployment.workspace
    return EnvironmentChange(
        deployment_id=deployment.id,
        kind=deployment.kind,
        requester_id=deployment.requester_id,
        approver_ids=list(deployment.approval.approver_ids),
        plan_sha256=binding.plan_sha256 if binding else "",
        repo_commit=workspace.commit if workspace else (deployment.repo_commit or ""),
        applied_at=utcnow(),
        channel_id=deployment.channel_id,
        thread_ts=deployment.thread_ts,
        summary=summary,
    )


def record_apply(
    rt: Runtime, deployment: Deployment, outputs: dict[str, Any], summary: str = ""
) -> Environment | None:
    """Record `deployment`'s successful apply in its environment, then queue the config commit."""
    key = deployment.request.environment_key
    change = environment_change(deployment, summary)
    tfvars_sha256 = deployment.workspace.tfvars_sha256 if deployment.workspace else ""

    def apply(current: Environment | None) -> Environment | None:
        if current is not None and any(c.deployment_id == deployment.id for c in current.changes):
            return None  # already recorded (a retried job)
        return after_apply(
            current, deployment=deployment, change=change, tfvars_sha256=tfvars_sha256, outputs=outputs
        )

    environment = EnvironmentStore(rt.redis).update(key, apply)
    rt.audit.record(
        "environment_recorded",
        deployment.id,
        "worker",
        environment=key,
        kind=deployment.kind.value,
        plan_sha256=change.plan_sha256,
        repo_commit=change.repo_commit,
    )
    enqueue_commit_config(rt.redis, rt.settings, key, deployment.id)
    log.info("environment_recorded", environment=key, kind=deployment.kind.value)
    return environment


# -- the configuration commit ------------------------------------------------------------------------


def run_commit_config(rt: Runtime, environment_key: str, deployment_id: str) -> str:
    """The commit_config job: "committed", "unchanged" (already on the branch), "not pushed", or
    "superseded" (the branch already holds a later apply of the environment)."""
    deployment = rt.store.get(deployment_id)
    if deployment.request.environment_key != environment_key:
        log.error("config_commit_wrong_environment", environment=environment_key)
        return "refused"
    lock = rt.redis.lock(lock_name(environment_key), timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS)
    if not lock.acquire():  # not acquired in time: say so like any other failure
        return _not_pushed(rt, deployment, environment_key, _branch(rt, environment_key), "busy")
    try:
        return _commit(rt, deployment, environment_key)
    finally:
        try:
            lock.release()
        except LockError:  # it expired during a slow push: the outcome above stands
            log.warning("config_commit_lock_expired", environment=environment_key)


def _branch(rt: Runtime, environment_key: str) -> str:
    return config_branch(environment_key, rt.settings.config_branch_prefix)


def _commit(rt: Runtime, deployment: Deployment, environment_key: str) -> str:
    repo = ConfigRepo(rt.settings)
    branch = repo.branch(environment_key)
    try:
        trailers = ConfigTrailers.of(deployment)
        files = applied_files(rt, deployment)
        message = commit_message(deployment, trailers.lines())
        result = repo.commit(
            branch,
            files,
            message,
            start=trailers.applied_commit,
            deployment_id=deployment.id,
            later=_later_applies(rt, environment_key, deployment.id),
        )
    except (ConfigRepoError, TrailerError) as exc:
        return _not_pushed(rt, deployment, environment_key, branch, repo.redact(str(exc)))
    if result.superseded_by is not None:  # these older files must not go on top of the newer ones
        newer = result.superseded_by
        log.warning("config_commit_superseded", environment=environment_key, newer=newer)
        rt.audit.record(
            "config_superseded", deployment.id, "worker", environment=environment_key, newer=newer
        )
        rt.notifier.post(deployment, superseded_message(branch=branch, newer_deployment_id=newer))
        return "superseded"
    pull_url, pull_error = None, None
    target = github_pr.github_repository(rt.settings, repo.push_url)
    if target is not None:
        try:
            pull = github_pr.open_or_update(
                rt.settings,
                target,
                branch=branch,
                base=rt.settings.repo_ref,  # not the deployment's ref: it may be a tag or a commit
                title=pull_request_title(deployment),
                body=pull_request_body(deployment, result.commit),
            )
            pull_url = pull.url
        except github_pr.PullRequestError as exc:
            pull_error = repo.redact(str(exc))
            log.warning("config_pull_request_failed", environment=environment_key, error=pull_error)
    config = ConfigCommit(
        branch=branch,
        commit=result.commit,
        deployment_id=deployment.id,
        pushed=True,
        pull_request_url=pull_url,
        error=pull_error or "",
    )
    _remember(rt, environment_key, config)
    rt.audit.record(
        "config_committed", deployment.id, "worker", environment=environment_key, branch=branch,
        commit=result.commit, created=str(result.created), pull_request=pull_url or "",
    )  # fmt: skip
    log.info("config_committed", environment=environment_key, branch=branch, commit=result.commit)
    shown = config.model_dump(include={"branch", "commit", "pull_request_url"})
    posted = committed_message(remote=repo.shown_push_url, pull_request_error=pull_error, **shown)
    rt.notifier.post(deployment, posted)
    return "committed" if result.created else "unchanged"


def _later_applies(rt: Runtime, environment_key: str, deployment_id: str) -> frozenset[str]:
    """The deployments the environment applied after `deployment_id` (whose configuration, once on
    the branch, must stay at its head)."""
    environment = EnvironmentStore(rt.redis).find(environment_key)
    applied = [change.deployment_id for change in environment.changes] if environment else []
    return frozenset(applied[applied.index(deployment_id) + 1 :]) if deployment_id in applied else frozenset()


def _not_pushed(rt: Runtime, deployment: Deployment, environment_key: str, branch: str, reason: str) -> str:
    _remember(
        rt,
        environment_key,
        ConfigCommit(branch=branch, deployment_id=deployment.id, pushed=False, error=reason[:500]),
    )
    rt.audit.record(
        "config_not_pushed", deployment.id, "worker", environment=environment_key, reason=reason[:500]
    )
    log.warning("config_not_pushed", environment=environment_key, reason=reason[:500])
    rt.notifier.post(
        deployment,
        not_pushed_message(
            branch=branch, reason=reason[:500], environment_key=environment_key, deployment_id=deployment.id
        ),
    )
    return "not pushed"


def _remember(rt: Runtime, environment_key: str, config: ConfigCommit) -> None:
    def put(current: Environment | None) -> Environment | None:
        if current is None:
            return None
        return current.model_copy(update={"config": config})

    EnvironmentStore(rt.redis).update(environment_key, put)


def applied_files(rt: Runtime, deployment: Deployment) -> ConfigFiles:
    """The generated files exactly as applied (checked against the recorded SHA-256s)."""
    record = deployment.workspace
    if record is None:
        raise ConfigRepoError(f"deployment {deployment.id} has no workspace record")
    wanted = (
        (TFVARS, record.tfvars_path, record.tfvars_sha256),
        (TFBACKEND, record.tfbackend_path, record.tfbackend_sha256),
    )
    found: dict[str, bytes] = {}
    artifacts = ArtifactStore.for_settings(rt.redis, rt.settings)
    for name, relpath, digest in wanted:
        try:
            found[name] = artifacts.get(deployment.id, name, digest)
            continue
        except ArtifactError:
            pass
        data = _from_workspace(rt, deployment, relpath, digest)
        if data is None:
            raise ConfigRepoError(
                f"the applied {relpath} is neither stored nor reproducible at {record.commit[:12]}"
            )
        found[name] = data
    return ConfigFiles(
        tfvars_path=record.tfvars_path,
        tfvars=found[TFVARS],
        tfbackend_path=record.tfbackend_path,
        tfbackend=found[TFBACKEND],
    )


def _from_workspace(rt: Runtime, deployment: Deployment, relpath: str, digest: str) -> bytes | None:
    """The file from the deployment's workspace on this worker, else regenerated at the recorded
    commit (generation is deterministic); None when neither matches `digest`."""
    assert deployment.workspace is not None
    workspaces = manager(rt)
    try:
        path = workspaces.workspace_path(deployment.id)
        existing = _read(path, relpath)
        if existing is not None and sha256(existing) == digest:
            return existing
        workspace = workspaces.prepare(deployment.id, commit=deployment.workspace.commit)
        workspaces.generate_files(workspace, deployment.request, deployment.extra_values)
        regenerated = _read(workspace.path, relpath)
    except WorkspaceError:
        return None
    return regenerated if regenerated is not None and sha256(regenerated) == digest else None


def _read(root: Path, relpath: str) -> bytes | None:
    try:
        target = inside(root, relpath)
    except WorkspaceError:
        return None
    return target.read_bytes() if target.is_file() else None


# -- an environment's committed configuration, as a workspace ------------------------------------------


class ConfigurationMismatch(Exception):
    """The registry's request and values do not regenerate the tfvars it recorded (the message says
    what to do: `environments import`)."""


class EnvironmentWorkspace(Value):
    path: Path
    commit: str
    tfvars: Path
    tfbackend: Path


def environment_workspace(rt: Runtime, environment: Environment, workspace_id: str) -> EnvironmentWorkspace:
    """The environment's committed configuration in the workspace `workspace_id` on this worker: the
    Terraform repository at `Environment.repo_commit` with the tfvars/tfbackend generated from
    `Environment.request` + `extra_values` (deterministic: the files its configuration branch holds),
    the tfvars checked against `Environment.tfvars_sha256`. Needs nothing that expires — neither the
    last apply's deployment record nor its stored artifacts — so any worker can build it. A workspace
    already at that commit is reused (Terraform's providers stay installed); the files are always
    generated again. Raises WorkspaceError (checkout, generation) or ConfigurationMismatch."""
    if not environment.tfvars_sha256:  # nothing to check the files against: fail before any checkout
        raise ConfigurationMismatch(configuration_unrecorded())
    workspaces = manager(rt)
    path = workspaces.workspace_path(workspace_id)
    commit = environment.repo_commit.strip().lower()
    if checked_out_commit(path) == commit:
        workspace = Workspace(
            deployment_id=workspace_id,
            path=path,
            commit=commit,
            ref=workspaces.repo_ref,
            repo_url=workspaces.shown_url,
        )
    else:
        workspace = workspaces.prepare(workspace_id, commit=commit)
    files = workspaces.generate_files(workspace, environment.request, environment.extra_values)
    if files.tfvars_sha256 != environment.tfvars_sha256:
        log.warning(
            "environment_configuration_mismatch",
            environment=str(environment.key),
            recorded=environment.tfvars_sha256[:12],
            generated=files.tfvars_sha256[:12],
        )
        raise ConfigurationMismatch(
            configuration_mismatch(
                files.tfvars_relpath, environment.tfvars_sha256, files.tfvars_sha256, workspace.commit
            )
        )
    return EnvironmentWorkspace(
        path=workspace.path, commit=workspace.commit, tfvars=files.tfvars_path, tfbackend=files.tfbackend_path
    )
