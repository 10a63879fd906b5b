"""Step: check the Terraform repository out at a pinned commit and generate tfvars and tfbackend."""

from __future__ import annotations

from bot.views import failures
from bot.views.pipeline import missing_values_message, workspace_message
from core.lifecycle import Move
from core.models import Deployment
from storage.artifacts import ArtifactStore
from workers.runtime import Runtime, StepFailure, move
from workers.steps.common import TFBACKEND, TFVARS, manager, store_fields
from workers.workspace import WorkspaceError


def run(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    deployment = move(rt, deployment.id, Move.START_WORKSPACE)
    workspaces = manager(rt)
    try:
        # a pinned commit wins; else the deployment's own ref (a change to another ref, an upgrade)
        workspace = workspaces.prepare(deployment.id, commit=deployment.repo_commit, ref=deployment.repo_ref)
        files = workspaces.generate_files(workspace, deployment.request, deployment.extra_values)
    except WorkspaceError as exc:
        raise StepFailure(*failures.workspace_failed(exc)) from exc
    tfvars_text = files.tfvars_path.read_bytes()
    artifacts = ArtifactStore.for_settings(rt.redis, rt.settings)
    artifacts.put(deployment.id, TFVARS, tfvars_text)
    artifacts.put(deployment.id, TFBACKEND, files.tfbackend_path.read_bytes())
    record = files.record(workspace.commit)
    missing = [value.variable for value in files.validation.missing_user_values]
    deployment = store_fields(
        rt, deployment.id, workspace=record, repo_commit=workspace.commit, missing_values=missing
    )
    validation = files.validation
    rt.notifier.post(
        deployment,
        workspace_message(
            repo=workspace.repo_url,
            commit=workspace.commit,
            source=files.source,
            tfvars_path=files.tfvars_relpath,
            tfbackend_path=files.tfbackend_relpath,
            changes=[c.describe() for c in files.changes],
            errors=list(validation.errors),
            warnings=list(validation.warnings),
        ),
    )
    rt.notifier.upload(
        deployment,
        filename=files.tfvars_path.name,
        content=tfvars_text.decode("utf-8"),
        title=f"Generated {files.tfvars_relpath}",
    )
    if validation.errors:
        raise StepFailure(*failures.tfvars_invalid())
    if validation.missing_user_values:
        labels = [f"{value.label} (`{value.variable}`)" for value in validation.missing_user_values]
        rt.notifier.post(deployment, missing_values_message(deployment.id, labels))
        move(rt, deployment.id, Move.VALUES_NEEDED, "values needed from the requester")
        return
    rt.audit.record(
        "workspace_ready", deployment.id, "worker", commit=workspace.commit, tfvars_sha256=files.tfvars_sha256
    )
    move(rt, deployment.id, Move.WORKSPACE_READY)
