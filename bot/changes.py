"""Slack side of changing and upgrading a live environment: find the environment people name, check
they may change it now, build the change (or upgrade) form, and turn its submission into a CHANGE or
UPGRADE deployment — stored with its VERIFY job and its first thread messages in one transaction,
appended to the environment, posted as a new thread in the environment's channel.

The rules are core/changes.py's, the words bot/views/change_modal.py's; the listeners
(bot/listeners/environments.py) open the views. Every refusal is a `ControlRefused` carrying its text.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from pydantic import ValidationError

from bot.control import ControlRefused
from bot.environments import environment_guard, open_deployment
from bot.forms import errors_from_validation, parse_user_value
from bot.ids import INPUT_ACTION, BlockId
from bot.payloads import ViewSubmission, input_value
from bot.services import Services
from bot.views import change_modal as views
from bot.views import form_errors
from core import validation
from core.changes import (
    Blocked,
    ChangeForm,
    PlannedChange,
    blocked,
    change_blocked,
    change_deployment,
    check_ref,
    current_form,
    environment_channel,
    plan_change,
    plan_upgrade,
    upgrade_blocked,
)
from core.environments import (
    ALARM_EMAILS,
    DNS_NAME,
    Environment,
    choose_environment,
    parse_environment_ref,
)
from core.logs import get_logger
from core.models import Deployment
from core.sizes import SetupSize
from storage.environments import EnvironmentStore
from storage.queue import Step, enqueue_step

log = get_logger(__name__)

HEAD_TIMEOUT = 2.0  # a modal must open within 3 s of the click: an unanswered look-up is skipped
COMMIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
GIT_ENVIRONMENT = re.compile(
    r"PATH|HOME|USER|LANG|LC_\w+|TMPDIR|SSH_AUTH_SOCK|GIT_\w+|SSL_CERT_FILE|SSL_CERT_DIR"
    r"|(?i:https?_proxy|no_proxy|all_proxy)"
)


def environments(services: Services) -> EnvironmentStore:
    return EnvironmentStore(services.redis)


def find_environment(services: Services, text: str, mode: str) -> Environment:
    """The one environment `text` (`web/dev` or `web/dev@account/region`) names, or a refusal: the
    usage, "none" (with what exists for that application) or "several" (asking for `@account/region`)."""
    ref = parse_environment_ref(text)
    if ref is None:
        raise ControlRefused(views.usage(mode))
    store = environments(services)
    found = choose_environment(store.named(ref.application, ref.environment), ref)
    if not found:
        of_application = [env for env in store.all() if env.key.application == ref.application]
        raise ControlRefused(views.not_found(ref, of_application))
    if len(found) > 1:
        raise ControlRefused(views.ambiguous(ref, found, mode))
    return found[0]


def environment_by_key(services: Services, key: str) -> Environment:
    found = environments(services).find(key[:300])
    if found is None:
        raise ControlRefused(views.ENVIRONMENT_GONE)
    return found


def check_may_change(services: Services, user_id: str, environment: Environment) -> None:
    """The user may request for the environment's profile and environment (the rule of a new request),
    the environment is live and none of its deployments is still open."""
    profile = environment.request.profile
    decision = services.policy.can_request(services.identity(user_id), profile)
    if not decision.allowed:
        raise ControlRefused(views.not_allowed(decision))
    if profile not in services.profiles_for(user_id):
        raise ControlRefused(views.profile_unavailable(profile))
    decision = services.policy.check_environment(profile, environment.request.environment)
    if not decision.allowed:
        raise ControlRefused(views.not_allowed(decision))
    _check_nothing_open(services, environment)


def _check_nothing_open(services: Services, environment: Environment) -> None:
    """Refused while the environment is destroyed or one of its deployments is still open (named)."""
    opened = open_deployment(services, environment.key, environment)
    why = blocked(environment, opened.status if opened is not None else None)
    if why is not None:
        raise ControlRefused(views.blocked_text(why, environment, opened))


def resolve_head(repo_url: str, ref: str, timeout: float = HEAD_TIMEOUT) -> str | None:
    """The commit `ref` (a branch or tag of the Terraform repository) points at now, by `git ls-remote`;
    None when that is not known in time (the workspace step resolves it anyway)."""
    if COMMIT_SHA.fullmatch(ref):
        return ref
    if not ref or ref.startswith("-"):
        return None
    url = repo_url.strip()
    env = {name: value for name, value in os.environ.items() if GIT_ENVIRONMENT.fullmatch(name)}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"})
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    wanted = [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    try:
        completed = subprocess.run(
            ["git", "ls-remote", "--", url, *wanted],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        log.info("head_lookup_skipped", error=type(exc).__name__)  # never the URL: it may hold a token
        return None
    if completed.returncode != 0:
        log.info("head_lookup_failed", returncode=completed.returncode)
        return None
    heads: dict[str, str] = {}
    for line in completed.stdout.splitlines():
        sha, _, name = line.partition("\t")
        heads[name.strip()] = sha.strip()
    return next((heads[name] for name in wanted if name in heads), None)


# -- opening the forms ------------------------------------------------------------------------------


def change_view(
    services: Services, user_id: str, environment: Environment, context: views.ChangeContext
) -> Any:
    """The change or upgrade modal for the environment, or a refusal (ControlRefused)."""
    check_may_change(services, user_id, environment)
    if context.mode == "upgrade":
        ref = services.settings.repo_ref
        head = resolve_head(services.settings.repo_url, ref)
        why = upgrade_blocked(environment, head)
        if why is not None:
            raise ControlRefused(views.blocked_text(why, environment))
        return views.upgrade_modal(context, environment, ref, head)
    return views.change_modal(context, environment, current_form(environment))


# -- the submission ---------------------------------------------------------------------------------


class FieldErrors(Exception):
    """The form's values are refused: {block_id: message} for Slack's `response_action: errors`."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def _text(values: dict[str, dict[str, dict[str, Any]]], block: str) -> str:
    return (input_value(values, block, INPUT_ACTION) or "").strip()


def parse_change_form(
    environment: Environment, values: dict[str, dict[str, dict[str, Any]]]
) -> PlannedChange:
    """The submitted change form as a PlannedChange, or FieldErrors with the request form's messages
    (core/validation.py) and the thread's value forms' messages for e-mails and DNS names."""
    errors: dict[str, str] = {}
    size_value = _text(values, BlockId.SIZE.value)
    size = environment.request.size
    try:
        size = SetupSize(size_value) if size_value else size
    except ValueError:
        errors[BlockId.SIZE.value] = form_errors.CHOOSE_OFFERED
    tags: dict[str, str] = {}
    try:
        tags = validation.parse_tag_lines(_text(values, BlockId.TAGS.value))
    except ValueError as exc:
        errors[BlockId.TAGS.value] = str(exc)
    given: dict[str, Any] = {}
    for name, block in ((ALARM_EMAILS, views.ALARM_EMAILS_BLOCK), (DNS_NAME, views.DNS_NAME_BLOCK)):
        try:
            given[name] = parse_user_value(name, _text(values, block))
        except ValueError as exc:
            errors[block] = str(exc)
    ref = ""
    try:
        ref = check_ref(_text(values, views.REF_BLOCK))
    except ValueError as exc:
        errors[views.REF_BLOCK] = str(exc)
    if errors:
        raise FieldErrors(errors)
    emails = given.get(ALARM_EMAILS)
    form = ChangeForm(
        size=size,
        additional_tags=tags,
        alarm_emails=tuple(emails) if isinstance(emails, list) else (),
        dns_name=str(given.get(DNS_NAME) or ""),
        repo_ref=ref,
    )
    try:
        planned = plan_change(environment, form)
    except ValidationError as exc:
        raise FieldErrors(
            {k: v for k, v in errors_from_validation(exc).items() if k == BlockId.TAGS.value}
            or {BlockId.SIZE.value: form_errors.INVALID_VALUE}
        ) from exc
    why = change_blocked(planned)
    if why is not None:
        raise FieldErrors({BlockId.SIZE.value: views.blocked_text(why, environment)})
    return planned


def upgrade_planned(services: Services, environment: Environment) -> PlannedChange:
    """The upgrade, unless the ref's head is the environment's commit already (ControlRefused)."""
    ref = services.settings.repo_ref
    why = upgrade_blocked(environment, resolve_head(services.settings.repo_url, ref))
    if why is not None:
        raise ControlRefused(views.blocked_text(why, environment))
    return plan_upgrade(environment, ref)


def start(
    services: Services,
    environment: Environment,
    planned: PlannedChange,
    *,
    requester_id: str,
    channel_id: str | None,
    team_id: str | None,
    submission_key: str | None,
    requested_via: str | None = None,
    post_in: str | None = None,
) -> tuple[Deployment, bool]:
    """Store the change/upgrade deployment with its VERIFY job and its first thread messages (root
    message, what changes) in one transaction; then append it to the environment and start delivery.
    Returns (deployment, created): a repeated submission finds the first one. Raises redis errors.
    An MCP client's request (bot/mcp) names itself (`requested_via`) and the channel it is posted in
    (`post_in`, checked there) instead of the environment's.

    The "nothing open" check is made again, with the stored environment, under the environment's
    guard (bot/environments.py) and the create follows under it: of several requests at the same
    moment (the change form, MCP, drift's Plan to reconcile, a destroy, a new request) one is stored
    and the others are refused (ControlRefused) naming it."""
    channel = post_in or environment_channel(environment, channel_id) or requester_id  # DM: last resort
    deployment = change_deployment(
        environment, planned, requester_id=requester_id, channel_id=channel, team_id=team_id
    ).model_copy(update={"requested_via": requested_via})
    notifier = services.notifier
    entries = (
        notifier.root_entry(deployment.id),
        notifier.post_entry(deployment, views.change_requested_message(deployment, planned)),
    )

    def also(pipe: Any) -> None:
        enqueue_step(services.redis, services.settings, Step.VERIFY, deployment.id, pipeline=pipe)
        notifier.queue_in(pipe, *entries)

    with environment_guard(services, environment.key) as alone:
        earlier = services.store.created_by(submission_key) if submission_key else None
        done = services.store.find(earlier) if earlier else None
        if done is not None:
            return done, False  # Slack retried, or a double submit
        current = environments(services).find(environment.key) or environment
        if not alone:
            opened = open_deployment(services, current.key, current)
            raise ControlRefused(views.blocked_text(Blocked.OPEN_DEPLOYMENT, current, opened))
        _check_nothing_open(services, current)
        deployment, created = services.store.create(deployment, submission_key=submission_key, also=also)
        if not created:
            return deployment, False
        environments(services).add_deployment(environment.key, deployment.id)
    log.info(
        "environment_change_requested",
        deployment_id=deployment.id,
        environment=str(environment.key),
        kind=deployment.kind.value,
        user=requester_id,
    )
    services.audit.record(
        "requested",
        deployment.id,
        requester_id,
        request=deployment.request.headline,
        profile=deployment.request.profile,
        kind=deployment.kind.value,
        environment=str(environment.key),
        changed=",".join(planned.changed),
        **({"via": requested_via} if requested_via else {}),
    )
    notifier.flush(deployment.id)
    return deployment, True


def submitted(services: Services, submission: ViewSubmission, context: views.ChangeContext) -> Deployment:
    """A change or upgrade form's submission → the deployment (FieldErrors or ControlRefused otherwise)."""
    environment = environment_by_key(services, context.environment_key)
    check_may_change(services, submission.user.id, environment)
    if context.mode == "upgrade":
        planned = upgrade_planned(services, environment)
    else:
        planned = parse_change_form(environment, submission.view.state.values)
    deployment, _ = start(
        services,
        environment,
        planned,
        requester_id=submission.user.id,
        channel_id=context.channel_id,
        team_id=submission.team.id if submission.team and submission.team.id else context.team_id,
        submission_key=f"view:{submission.view.id}",
    )
    return deployment
