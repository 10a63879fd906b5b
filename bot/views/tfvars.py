"""The words of a generated tfvars' validation (core.tfvars.validate): one line per problem, as the
workspace message lists them."""

from __future__ import annotations

from collections.abc import Iterable

from core.sizes import size_profile
from core.tfvars.poc_idp import PLACEHOLDER
from core.tfvars.validate import (
    BotPlaceholder,
    CheckedRule,
    DuplicateAlbPath,
    NoServices,
    RequiredUnset,
    TfvarsProblem,
    TooManyServices,
    Undeclared,
    Unreadable,
)

UNREADABLE = {"tfvars": "The tfvars file", "variables": "The repository's variables"}


def problem_text(problem: TfvarsProblem) -> str:
    """One validation problem in a sentence."""
    match problem:
        case Unreadable():
            return f"{UNREADABLE[problem.file]} cannot be read: {problem.error}."
        case BotPlaceholder():
            return f"{problem.variable} still holds the {PLACEHOLDER} placeholder; it should come from the request."
        case Undeclared():
            hint = f" Did you mean {problem.close_match!r}?" if problem.close_match else ""
            return f"{problem.variable} is set, but variables.tf declares no variable {problem.variable!r}.{hint}"
        case RequiredUnset():
            return f"{problem.variable} has no default in variables.tf and must be set."
        case TooManyServices():
            profile = size_profile(problem.size)
            return (
                f"ecs_services defines {problem.count} services; a {profile.title.lower()} setup takes at most"
                f" {profile.max_services} ({profile.services_hint}). Choose a larger size or fewer services."
            )
        case DuplicateAlbPath():
            return (
                f'ecs_services["{problem.service}"]: alb_path {problem.alb_path!r} is already used by'
                f' "{problem.used_by}".'
            )
        case NoServices():
            return "ecs_services is empty: no ECS service will be deployed."
        case CheckedRule():
            return problem.text


def problem_texts(problems: Iterable[TfvarsProblem]) -> list[str]:
    return [problem_text(problem) for problem in problems]
