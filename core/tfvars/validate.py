"""Validation of a generated tfvars: against the repository's `variables.tf` (declared, required,
typed), poc-idp's rules (placeholders, Fargate sizes, unique ALB paths) and the setup size's limits.
Values only the requester can give are reported as missing rather than as errors. Each problem is a
model with its facts (`TfvarsProblem`); `bot.views.tfvars` words them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field

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
from core.values import Value


class MissingValue(Value):
    """A value only the requester can give; the bot asks for it in the thread."""

    variable: str
    label: str
    hint: str
    paths: tuple[str, ...] = ()


class _Problem(Value):
    """What the tfvars problems below share: each is a frozen value."""


class Unreadable(_Problem):
    """The tfvars file, or the repository's variables.tf, cannot be read (`error`: the reader's own)."""

    problem: Literal["unreadable"] = "unreadable"
    file: Literal["tfvars", "variables"]
    error: str


class _VariableProblem(_Problem):
    variable: str


class BotPlaceholder(_VariableProblem):
    """A value the bot sets from the request still holds the placeholder."""

    problem: Literal["bot_placeholder"] = "bot_placeholder"


class Undeclared(_VariableProblem):
    problem: Literal["undeclared"] = "undeclared"
    close_match: str | None = None  # a declared variable with a close name


class RequiredUnset(_VariableProblem):
    """A variable without a default in variables.tf that the file does not set."""

    problem: Literal["required_unset"] = "required_unset"


class TooManyServices(_Problem):
    problem: Literal["too_many_services"] = "too_many_services"
    count: int
    size: SetupSize


class DuplicateAlbPath(_Problem):
    problem: Literal["duplicate_alb_path"] = "duplicate_alb_path"
    service: str
    alb_path: str
    used_by: str


class NoServices(_Problem):
    """A warning: ecs_services is empty."""

    problem: Literal["no_services"] = "no_services"


class CheckedRule(_Problem):
    """A type check (core.tfvars.type_constraints) or a Fargate rule (core.tfvars.poc_idp) that failed,
    as those modules word it."""

    problem: Literal["checked_rule"] = "checked_rule"
    text: str


TfvarsProblem = Annotated[
    Unreadable
    | BotPlaceholder
    | Undeclared
    | RequiredUnset
    | TooManyServices
    | DuplicateAlbPath
    | NoServices
    | CheckedRule,
    Field(discriminator="problem"),
]


class TfvarsValidation(Value):
    errors: tuple[TfvarsProblem, ...] = ()
    warnings: tuple[TfvarsProblem, ...] = ()
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


def _service_problems(services: dict[str, Any], size: SetupSize) -> list[TfvarsProblem]:
    problems: list[TfvarsProblem] = []
    if len(services) > size_profile(size).max_services:
        problems.append(TooManyServices(count=len(services), size=size))
    paths: dict[str, str] = {}
    for name, definition in services.items():
        problems.extend(CheckedRule(text=text) for text in fargate_problems(name, definition))
        alb_path = definition.get("alb_path") if isinstance(definition, dict) else None
        if isinstance(alb_path, str):
            if alb_path in paths:
                problems.append(DuplicateAlbPath(service=name, alb_path=alb_path, used_by=paths[alb_path]))
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
        return TfvarsValidation(errors=(Unreadable(file="tfvars", error=str(error)),))
    try:
        variables = parse_variables(variables_tf_text)
    except TfvarsError as error:
        return TfvarsValidation(errors=(Unreadable(file="variables", error=str(error)),))

    errors: list[TfvarsProblem] = []
    warnings: list[TfvarsProblem] = []
    missing: list[MissingValue] = []
    for name, value in values.items():
        paths = _placeholder_paths(value, name)
        if not paths:
            continue
        if name in BOT_OWNED_VARIABLES:
            errors.append(BotPlaceholder(variable=name))
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
            errors.append(Undeclared(variable=name, close_match=close[0] if close else None))
            continue
        type_errors: list[str] = []
        type_warnings: list[str] = []
        check_type(value, spec.type, name, type_errors, type_warnings)
        errors += [CheckedRule(text=text) for text in type_errors]
        warnings += [CheckedRule(text=text) for text in type_warnings]
    for name, spec in variables.items():
        if spec.required and name not in values:
            errors.append(RequiredUnset(variable=name))

    services = values.get("ecs_services", {})
    service_count = 0
    if isinstance(services, dict):
        service_count = len(services)
        errors.extend(_service_problems(services, size))
        if not services:
            warnings.append(NoServices())
    return TfvarsValidation(
        errors=tuple(errors),
        warnings=tuple(warnings),
        missing_user_values=tuple(missing),
        service_count=service_count,
    )
