"""Validation of a generated tfvars: against the repository's `variables.tf` (declared, required,
typed), poc-idp's rules (placeholders, Fargate sizes, unique ALB paths) and the setup size's limits.
Values only the requester can give are reported as missing rather than as errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.sizes import SetupSize, size_profile
from core.tfvars.poc_idp import (
    BOT_OWNED_VARIABLES,
    PLACEHOLDER,
    SNS_EMAILS,
    USER_VALUE_LABELS,
    fargate_problems,
)
from core.tfvars.reading import TfvarsError, read_tfvars
from core.tfvars.type_constraints import check_type, child_path, parse_variables


class MissingValue(BaseModel):
    """A value only the requester can give; the bot asks for it in the thread."""

    model_config = ConfigDict(frozen=True)

    variable: str
    label: str
    hint: str
    paths: tuple[str, ...] = ()


class TfvarsValidation(BaseModel):
    model_config = ConfigDict(frozen=True)

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    missing_user_values: tuple[MissingValue, ...] = ()
    service_count: int = 0

    @property
    def ok(self) -> bool:
        """No errors (values may still be missing from the requester)."""
        return not self.errors

    @property
    def ready(self) -> bool:
        """Nothing wrong and nothing missing: ready to plan."""
        return self.ok and not self.missing_user_values


def _placeholder_paths(value: object, path: str) -> list[str]:
    if isinstance(value, str):
        return [path] if PLACEHOLDER in value else []
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _placeholder_paths(item, child_path(path, i))]
    if isinstance(value, dict):
        found = [p for k, item in value.items() for p in _placeholder_paths(item, f'{path}["{k}"]')]
        return found + [f"{path} (key {k!r})" for k in value if PLACEHOLDER in k]
    return []


def _missing(name: str, paths: Iterable[str] = ()) -> MissingValue:
    label, hint = USER_VALUE_LABELS.get(name, (name.replace("_", " ").capitalize(), f"A value for {name}."))
    return MissingValue(variable=name, label=label, hint=hint, paths=tuple(paths))


def _service_problems(services: dict[str, Any], size: SetupSize) -> list[str]:
    problems: list[str] = []
    profile = size_profile(size)
    if len(services) > profile.max_services:
        problems.append(
            f"ecs_services defines {len(services)} services; a {profile.title.lower()} setup takes at most"
            f" {profile.max_services} ({profile.services_hint}). Choose a larger size or fewer services."
        )
    paths: dict[str, str] = {}
    for name, definition in services.items():
        problems.extend(fargate_problems(name, definition))
        alb_path = definition.get("alb_path") if isinstance(definition, dict) else None
        if isinstance(alb_path, str):
            if alb_path in paths:
                problems.append(
                    f'ecs_services["{name}"]: alb_path {alb_path!r} is already used by "{paths[alb_path]}".'
                )
            paths.setdefault(alb_path, name)
    return problems


def validate_tfvars(tfvars_text: str, variables_tf_text: str, size: SetupSize | str) -> TfvarsValidation:
    """Check a generated tfvars against the repository's variables and the size's limits.

    Errors: unreadable text, placeholders in values the bot sets, undeclared variables, required
    variables not set, type mismatches, invalid Fargate sizes, too many services for the size.
    Values only the requester can give (placeholders elsewhere, an empty alarm email list) are
    listed in `missing_user_values` instead.
    """
    size = SetupSize(size)
    try:
        values = read_tfvars(tfvars_text)
    except TfvarsError as error:
        return TfvarsValidation(errors=(f"The tfvars file cannot be read: {error}.",))
    try:
        variables = parse_variables(variables_tf_text)
    except TfvarsError as error:
        return TfvarsValidation(errors=(f"The repository's variables cannot be read: {error}.",))

    errors: list[str] = []
    warnings: list[str] = []
    missing: list[MissingValue] = []
    for name, value in values.items():
        paths = _placeholder_paths(value, name)
        if not paths:
            continue
        if name in BOT_OWNED_VARIABLES:
            errors.append(
                f"{name} still holds the {PLACEHOLDER} placeholder; it should come from the request."
            )
        else:
            missing.append(_missing(name, paths))
    if SNS_EMAILS in variables and not any(m.variable == SNS_EMAILS for m in missing):
        emails = values.get(SNS_EMAILS, variables[SNS_EMAILS].default)
        if not emails:
            missing.append(_missing(SNS_EMAILS))

    for name, value in values.items():
        spec = variables.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(variables), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            errors.append(f"{name} is set, but variables.tf declares no variable {name!r}.{hint}")
            continue
        check_type(value, spec.type, name, errors, warnings)
    for name, spec in variables.items():
        if spec.required and name not in values:
            errors.append(f"{name} has no default in variables.tf and must be set.")

    services = values.get("ecs_services", {})
    service_count = 0
    if isinstance(services, dict):
        service_count = len(services)
        errors.extend(_service_problems(services, size))
        if not services:
            warnings.append("ecs_services is empty: no ECS service will be deployed.")
    return TfvarsValidation(
        errors=tuple(errors),
        warnings=tuple(warnings),
        missing_user_values=tuple(missing),
        service_count=service_count,
    )
