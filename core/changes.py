"""Changing a live environment: what a change form offers, what a change or upgrade deployment is made
of, and when one must be refused (pure: models in, models out; the words are bot/views/change_modal.py's).

A change keeps the environment's locked fields (core.environments.LOCKED_FIELDS: names that feed
resource names, the VPC CIDR, the state backend) and may move the size, the tags, the alarm e-mails,
the DNS name and the repository ref. Without a new ref the deployment is pinned to the commit of the
last apply, so the plan shows only what the new values change; with one, the workspace step checks the
ref out and records the commit it resolved to. An upgrade changes nothing but the ref: the configured
`ECS_DEPLOY_REPO_REF`, resolved to its current head by the workspace step.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.environments import ALARM_EMAILS, DNS_NAME, Environment, EnvironmentStatus
from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import Deployment, DeploymentRequest
from core.sizes import SetupSize
from core.values import Value

REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
SIZE_ORDER = tuple(SetupSize)
REF_FIELD = "repo_ref"


class ChangeForm(Value):
    """The change form's values, already parsed: what the environment should look like."""

    size: SetupSize
    additional_tags: dict[str, str] = Field(default_factory=dict)
    alarm_emails: tuple[str, ...] = ()
    dns_name: str = ""
    repo_ref: str = ""  # "" or the environment's commit: keep the commit of the last apply


class ChangeWarning(StrEnum):
    """What a person should know before asking for the plan."""

    SMALLER_SIZE = "smaller_size"  # a smaller size removes resources, data stores among them
    NEW_REF = "new_ref"  # other Terraform code: the plan may change or replace anything


class Blocked(StrEnum):
    """Why no change (or upgrade) deployment may start now."""

    DESTROYED = "destroyed"
    OPEN_DEPLOYMENT = "open_deployment"
    NO_CHANGE = "no_change"
    ALREADY_AT_HEAD = "already_at_head"


class PlannedChange(BaseModel):
    """What a change or upgrade deployment starts from."""

    kind: DeploymentKind
    request: DeploymentRequest
    extra_values: dict[str, Any]
    repo_ref: str | None  # None: pinned to repo_commit
    repo_commit: str | None
    changed: list[str]  # the fields that differ from the environment: size, additional_tags, …
    before: dict[str, Any]  # their values now (same keys as `changed`)
    after: dict[str, Any]  # their values after the change
    warnings: list[ChangeWarning] = Field(default_factory=list)


def alarm_emails(environment: Environment) -> tuple[str, ...]:
    value = environment.extra_values.get(ALARM_EMAILS)
    if isinstance(value, str):
        return tuple(item for item in re.split(r"[,\s]+", value) if item)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


def current_form(environment: Environment) -> ChangeForm:
    """The form as the environment is now (what the change modal is pre-filled with)."""
    dns = environment.extra_values.get(DNS_NAME)
    return ChangeForm(
        size=environment.request.size,
        additional_tags=dict(environment.request.additional_tags),
        alarm_emails=alarm_emails(environment),
        dns_name=dns if isinstance(dns, str) else "",
        repo_ref=environment.repo_commit,
    )


def check_ref(text: str) -> str:
    """A branch, tag or commit as typed ("" keeps the current commit). Raises ValueError."""
    ref = text.strip()
    if not ref:
        return ""
    if not REF.fullmatch(ref) or ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref:
        raise ValueError(
            "Give a branch, tag or commit of the Terraform repository (letters, digits and . _ / -),"
            " or leave the commit of the last apply."
        )
    return ref


def keeps_commit(environment: Environment, ref: str) -> bool:
    """Whether the typed ref means "stay at the commit of the last apply"."""
    typed = ref.strip().lower()
    return not typed or (len(typed) >= 7 and environment.repo_commit.lower().startswith(typed))


def plan_change(environment: Environment, form: ChangeForm) -> PlannedChange:
    """The CHANGE deployment's request, values and ref for `form`: the locked fields stay as they are.
    Raises pydantic's ValidationError for values the request's own rules refuse (tags)."""
    request = DeploymentRequest.model_validate(
        {
            **environment.request.model_dump(),
            "size": form.size,
            "additional_tags": dict(form.additional_tags),
        }
    )
    extra = dict(environment.extra_values)
    if form.alarm_emails:
        extra[ALARM_EMAILS] = list(form.alarm_emails)
    if form.dns_name:
        extra[DNS_NAME] = form.dns_name
    now = current_form(environment)
    new_ref = not keeps_commit(environment, form.repo_ref)
    before: dict[str, Any] = {
        "size": now.size.value,
        "additional_tags": now.additional_tags,
        ALARM_EMAILS: list(now.alarm_emails),
        DNS_NAME: now.dns_name,
        REF_FIELD: environment.repo_commit,
    }
    after: dict[str, Any] = {
        "size": request.size.value,
        "additional_tags": dict(request.additional_tags),
        ALARM_EMAILS: list(alarm_emails(environment.model_copy(update={"extra_values": extra}))),
        DNS_NAME: extra.get(DNS_NAME, ""),
        REF_FIELD: form.repo_ref.strip() if new_ref else environment.repo_commit,
    }
    changed = [name for name in before if before[name] != after[name]]
    warnings = []
    if SIZE_ORDER.index(request.size) < SIZE_ORDER.index(environment.request.size):
        warnings.append(ChangeWarning.SMALLER_SIZE)
    if new_ref:
        warnings.append(ChangeWarning.NEW_REF)
    return PlannedChange(
        kind=DeploymentKind.CHANGE,
        request=request,
        extra_values=extra,
        repo_ref=form.repo_ref.strip() if new_ref else None,
        repo_commit=None if new_ref else environment.repo_commit,
        changed=changed,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
        warnings=warnings,
    )


def plan_upgrade(environment: Environment, ref: str) -> PlannedChange:
    """The UPGRADE deployment: the environment's values as they are, at `ref`'s current head."""
    return PlannedChange(
        kind=DeploymentKind.UPGRADE,
        request=environment.request,
        extra_values=dict(environment.extra_values),
        repo_ref=ref,
        repo_commit=None,
        changed=[REF_FIELD],
        before={REF_FIELD: environment.repo_commit},
        after={REF_FIELD: ref},
        warnings=[ChangeWarning.NEW_REF],
    )


def blocked(environment: Environment, latest_status: DeploymentStatus | None) -> Blocked | None:
    """Why no change or upgrade may start on the environment now (None: it may)."""
    if environment.status is EnvironmentStatus.DESTROYED:
        return Blocked.DESTROYED
    if latest_status is not None and not latest_status.is_final:
        return Blocked.OPEN_DEPLOYMENT
    return None


def change_blocked(planned: PlannedChange) -> Blocked | None:
    return Blocked.NO_CHANGE if not planned.changed else None


def upgrade_blocked(environment: Environment, head: str | None) -> Blocked | None:
    """An upgrade to the commit the environment is already at changes nothing (head None: unknown)."""
    if head is not None and head.lower() == environment.repo_commit.lower():
        return Blocked.ALREADY_AT_HEAD
    return None


def thread_permalink(channel_id: str, thread_ts: str) -> str:
    """A link to a thread (Slack redirects slack.com/archives to the workspace)."""
    return f"https://slack.com/archives/{channel_id}/p{thread_ts.replace('.', '')}"


def previous_threads(environment: Environment) -> list[str]:
    """Links to the threads of the environment's earlier applies, oldest first."""
    links = [
        thread_permalink(change.channel_id, change.thread_ts)
        for change in environment.changes
        if change.thread_ts
    ]
    return list(dict.fromkeys(links))


def environment_channel(environment: Environment, fallback: str | None) -> str | None:
    """Where the environment's deployments are posted: the channel of its last change."""
    last = environment.last_change
    return last.channel_id if last is not None else fallback


def change_deployment(
    environment: Environment,
    planned: PlannedChange,
    *,
    requester_id: str,
    channel_id: str,
    team_id: str | None,
) -> Deployment:
    """The deployment that carries `planned` out on the environment, linked to its earlier threads."""
    return Deployment(
        **planned.model_dump(include={"request", "kind", "repo_ref", "repo_commit", "extra_values"}),
        requester_id=requester_id,
        team_id=team_id,
        channel_id=channel_id,
        previous_threads=previous_threads(environment),
    )
