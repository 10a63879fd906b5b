"""`ecs-deploy-bot environments import`: rebuild the environment registry from the repository.

For each `{prefix}*` branch of the push remote (`git ls-remote --heads`), the head commit's tfvars,
tfbackend and trailers (core/environment_config.py) give the environment's request; its
`extra_values` are the committed values that generation for that request at the applied commit does
not give, so that regenerating reproduces the committed file (checked: a mismatch is reported as a
warning); its history (`changes`) is the branch's configuration commits. The state object the
tfbackend names must exist in S3 (head_object with the profile's session): otherwise the
environment is reported and not imported. Idempotent: a re-import writes the same record (the
history comes from git, not appended to what Redis holds).
"""

from __future__ import annotations

import functools
from typing import Literal

import redis
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from aws_edge.sessions import session_for
from bot.views.config_commit import (
    branch_unreadable,
    key_mismatch,
    regeneration_mismatch,
    state_missing,
    state_unreadable,
)
from core.environment_config import (
    ConfigTrailers,
    TrailerError,
    extra_values_from,
    generated_tfvars,
    request_from_files,
)
from core.environments import (
    ConfigCommit,
    Environment,
    EnvironmentChange,
    EnvironmentStatus,
    environment_key,
)
from core.lifecycle import DeploymentKind
from core.logs import get_logger
from core.models import DeploymentRequest
from core.policy.access import AccessPolicy
from core.policy.loading import policy_from_settings
from core.settings import Settings
from core.tfvars.reading import TfvarsError, read_tfvars
from core.tfvars.templates import render_fallback_tfvars
from storage.artifacts import sha256
from storage.environments import EnvironmentStore
from workers.config_repo import BranchCommit, BranchReader, ConfigRepo, ConfigRepoError
from workers.workspace import SAMPLE_DIR

log = get_logger(__name__)
MISSING_STATUS = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


ImportOutcome = Literal["imported", "state missing", "unreadable"]


class ImportResult(BaseModel):
    branch: str
    key: str
    outcome: ImportOutcome
    detail: str = ""
    warnings: list[str] = Field(default_factory=list)


class ImportReport(BaseModel):
    remote: str
    results: list[ImportResult] = Field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(r.outcome == "imported" for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.imported


class _Unreadable(Exception):
    pass


def import_environments(
    settings: Settings, connection: redis.Redis, *, policy: AccessPolicy | None = None
) -> ImportReport:
    """Import every environment branch; raises ConfigRepoError when the remote cannot be read."""
    repo = ConfigRepo(settings)
    heads = repo.remote_heads(f"{repo.prefix}*")
    report = ImportReport(remote=repo.shown_push_url)
    store = EnvironmentStore(connection)
    access = policy or policy_from_settings(settings.policy_file, settings.approver_ids)
    with repo.reader(sorted(heads)) as reader:
        for branch in sorted(heads):
            key = branch.removeprefix(repo.prefix)
            try:
                environment, warnings = rebuild(reader, branch, heads[branch], key)
            except _Unreadable as exc:
                report.results.append(
                    ImportResult(branch=branch, key=key, outcome="unreadable", detail=str(exc))
                )
                continue
            request = environment.request
            missing = _state_problem(access, request)
            if missing is not None:
                report.results.append(
                    ImportResult(branch=branch, key=key, outcome=missing[0], detail=missing[1])
                )
                continue
            store.update(key, functools.partial(_merged, imported=environment))
            log.info("environment_imported", environment=key, commit=environment.repo_commit)
            report.results.append(ImportResult(branch=branch, key=key, outcome="imported", warnings=warnings))
    return report


def rebuild(reader: BranchReader, branch: str, head: str, key: str) -> tuple[Environment, list[str]]:
    """The environment the branch describes, and warnings (a regeneration mismatch)."""
    try:
        commits = reader.commits(branch)
    except ConfigRepoError as exc:
        raise _Unreadable(branch_unreadable(str(exc))) from None
    if not commits or commits[0].sha != head:
        raise _Unreadable(branch_unreadable("no ecs-deploy trailers"))
    try:
        trailers = ConfigTrailers.parse(commits[0].trailers)
        tfvars_text = reader.show(head, trailers.tfvars_path)
        backend_text = reader.show(head, trailers.tfbackend_path)
        if tfvars_text is None or backend_text is None:
            raise TrailerError(f"{trailers.tfvars_path} or {trailers.tfbackend_path} is missing")
        tfvars, backend = read_tfvars(tfvars_text), read_tfvars(backend_text)
        request = request_from_files(tfvars, backend, trailers)
    except (TrailerError, TfvarsError, ValueError) as exc:
        raise _Unreadable(branch_unreadable(str(exc).splitlines()[0])) from None
    if request.environment_key != key:
        raise _Unreadable(key_mismatch(branch, request.environment_key))
    sample = reader.show(trailers.applied_commit, f"{SAMPLE_DIR}/example-{request.size.value}-setup.tfvars")
    template = sample if sample is not None else render_fallback_tfvars(request.size)
    extra = extra_values_from(tfvars, read_tfvars(generated_tfvars(template, request)))
    warnings = []
    if generated_tfvars(template, request, extra) != tfvars_text:
        warnings.append(regeneration_mismatch(trailers.tfvars_path))
    changes = _changes(commits)
    environment = Environment(
        key=environment_key(request),
        request=request,
        extra_values=extra,
        repo_commit=trailers.applied_commit,
        repo_ref=trailers.repo_ref,
        tfvars_sha256=sha256(tfvars_text.encode("utf-8")),
        status=EnvironmentStatus.DESTROYED
        if trailers.kind is DeploymentKind.DESTROY
        else EnvironmentStatus.LIVE,
        changes=changes,
        deployments=[c.deployment_id for c in changes],
        config=ConfigCommit(branch=branch, commit=head, deployment_id=trailers.deployment_id, pushed=True),
        created_at=changes[0].applied_at,
        updated_at=changes[-1].applied_at,
    )
    return environment, warnings


def _changes(commits: list[BranchCommit]) -> list[EnvironmentChange]:
    """One change per configuration commit, oldest first (a commit per deployment: the newest wins)."""
    found: dict[str, EnvironmentChange] = {}
    for commit in reversed(commits):
        try:
            change = ConfigTrailers.parse(commit.trailers).change(commit.committed_at)
        except TrailerError:
            continue
        found.pop(change.deployment_id, None)
        found[change.deployment_id] = change
    return list(found.values())


def _merged(current: Environment | None, imported: Environment) -> Environment | None:
    """The imported record; deployments Redis knows beyond git's history are kept, and the
    outputs when the record is still there (git does not hold them). A record whose last apply the
    branch does not have (its configuration commit failed or is still queued), made after the
    branch's last commit, is newer than the branch: it is kept as it is, so the environment is not
    rolled back to older values."""
    if current is None:
        return imported
    last, branch_last = current.last_change, imported.last_change
    if (
        last is not None
        and last.deployment_id not in {c.deployment_id for c in imported.changes}
        and (branch_last is None or last.applied_at > branch_last.applied_at)
    ):
        return None  # the registry is ahead of the branch: nothing to restore
    deployments = [*imported.deployments, *(d for d in current.deployments if d not in imported.deployments)]
    return imported.model_copy(update={"deployments": deployments, "outputs": current.outputs})


def _state_problem(policy: AccessPolicy, request: DeploymentRequest) -> tuple[ImportOutcome, str] | None:
    """None when the state object exists; else why it could not be imported."""
    bucket, key = request.state_bucket, request.state_key
    try:
        s3 = session_for(request.profile, request.region, policy.role_for(request.profile)).client("s3")
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_STATUS:
            return "state missing", state_missing(bucket, key)
        return "unreadable", state_unreadable(bucket, key, code or type(exc).__name__)
    except BotoCoreError as exc:
        return "unreadable", state_unreadable(bucket, key, type(exc).__name__)
    return None
