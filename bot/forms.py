"""Turn a submitted request modal into a DeploymentRequest, or into per-field errors for Slack; and
parse one value a person types for a variable (`parse_user_value`: the thread's value forms and the
change form share it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from bot.ids import INPUT_ACTION, BlockId
from bot.payloads import input_value
from bot.views import form_errors
from bot.views.access import reason_text
from core import validation
from core.models import DeploymentRequest
from core.policy.access import Decision

# (profile, environment) -> may a request name this environment with this profile?
EnvironmentCheck = Callable[[str, str], Decision]

FIELD_BLOCKS: dict[str, BlockId] = {
    "profile": BlockId.PROFILE,
    "account_situation": BlockId.ACCOUNT_SITUATION,
    "size": BlockId.SIZE,
    "account_id": BlockId.ACCOUNT_ID,
    "region": BlockId.REGION,
    "application": BlockId.APPLICATION,
    "environment": BlockId.ENVIRONMENT,
    "additional_tags": BlockId.TAGS,
    "vpc_cidr_block": BlockId.VPC_CIDR,
    "state_bucket": BlockId.STATE_BUCKET,
    "lock_table": BlockId.LOCK_TABLE,
}
MAX_FIELD_LENGTH = 3000
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
SAFE_TEXT = re.compile(r"[ -~]{1,256}")


def parse_user_value(name: str, raw: str) -> object:
    """A value typed for variable `name`: a list (split on commas or spaces, each an e-mail address
    when the name speaks of e-mails) for a `*_list` variable, a domain name for a `*dns_name*` one,
    else the text. Raises ValueError with the message shown on the field."""
    if not raw or not SAFE_TEXT.fullmatch(raw):
        raise ValueError("Required: up to 256 plain characters.")
    if name.endswith("_list"):
        items = [item for item in re.split(r"[,\s]+", raw) if item]
        bad = [item for item in items if "email" in name and not EMAIL.fullmatch(item)]
        if bad or not items:
            raise ValueError(
                f"Give e-mail addresses separated by commas ({validation.shown(bad[0]) if bad else ''})."
            )
        return items
    if "dns_name" in name and not HOSTNAME.fullmatch(raw.lower()):
        raise ValueError("Give a domain name such as example.com.")
    return raw


def _message(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if "error" in ctx:
        return str(ctx["error"])
    if error.get("type") == "enum":
        return form_errors.CHOOSE_OFFERED
    return str(error.get("msg", form_errors.INVALID_VALUE))


def errors_from_validation(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "application"
        block = FIELD_BLOCKS.get(field, BlockId.APPLICATION)
        message = form_errors.FIELD_REQUIRED if error.get("type") == "missing" else _message(error)
        if message.startswith("application: "):
            message = message.removeprefix("application: ")
        errors.setdefault(block.value, message[:2000])
    return errors


def parse_request(
    values: dict[str, dict[str, dict[str, Any]]],
    allowed_profiles: list[str],
    environment_check: EnvironmentCheck | None = None,
) -> DeploymentRequest | dict[str, str]:
    """Return a valid request, or {block_id: message} for Slack's `response_action: errors`.

    Every field is checked in one pass, so the requester sees all problems at once. With
    `environment_check` (the access policy's), an environment the chosen profile does not declare is
    refused on the environment field, with the allowed ones.
    """
    raw = {field: input_value(values, block.value, INPUT_ACTION) for field, block in FIELD_BLOCKS.items()}
    errors: dict[str, str] = {}
    for field, value in raw.items():
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            errors[FIELD_BLOCKS[field].value] = form_errors.too_long(len(value))
            raw[field] = None
    for field, message in form_errors.REQUIRED_MESSAGE.items():
        if not raw.get(field):
            errors[FIELD_BLOCKS[field].value] = message
    profile = raw.get("profile")
    if profile and profile not in allowed_profiles:
        errors[BlockId.PROFILE.value] = form_errors.PROFILE_NOT_OFFERED
    tags: dict[str, str] = {}
    try:
        tags = validation.parse_tag_lines(raw.get("additional_tags") or "")
    except ValueError as exc:
        errors[BlockId.TAGS.value] = str(exc)
    fields = {k: v for k, v in raw.items() if v not in (None, "") and k != "additional_tags"}
    request: DeploymentRequest | None = None
    try:
        request = DeploymentRequest.model_validate({**fields, "additional_tags": tags})
    except ValidationError as exc:
        for block_id, message in errors_from_validation(exc).items():
            errors.setdefault(block_id, message)
    if environment_check is not None and profile in allowed_profiles:
        _check_environment(raw.get("environment"), profile, environment_check, errors)
    if errors or request is None:
        return errors
    return request


def _check_environment(
    value: str | None, profile: str, check: EnvironmentCheck, errors: dict[str, str]
) -> None:
    """A well-formed environment name the profile does not declare is refused on its field."""
    if not value or BlockId.ENVIRONMENT.value in errors:
        return
    try:
        environment = validation.check_environment(value)
    except ValueError:
        return  # the field's own error is reported already
    decision = check(profile, environment)
    if not decision.allowed:
        errors[BlockId.ENVIRONMENT.value] = reason_text(decision)[:2000]
