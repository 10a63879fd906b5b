"""Resolving the file into each profile's effective rules, and the checks that need a whole profile.

Resolution model: the file's `defaults` section is merged into every profile field by field (a
profile's own value replaces the default's value; lists are replaced, not concatenated), and a
profile's `environments` entries are merged with the defaults' entries of the same name, again field
by field. `"*"` (everyone) as an approver needs `allow_everyone: true` on the profile (or in
defaults). A profile nobody could approve for, or with nothing to request, is a mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.policy.access import DEFAULT_DESTROY_APPROVALS, AssumeRole, EnvironmentPolicy, ProfilePolicy
from core.policy.errors import PolicyError
from core.policy.file_schema import EnvironmentFile, ProfileFile, is_pattern
from core.policy.principals import EVERYONE, Principals

Loc = tuple[str | int, ...]  # where a value sits in the file: keys and list indexes from the top
PATTERN_SETTINGS = {"protected", "drift_interval"}  # the settings a pattern takes


def _merge_envs(
    defaults: Mapping[str, EnvironmentFile | None] | None,
    own: Mapping[str, EnvironmentFile | None] | None,
) -> dict[str, EnvironmentFile]:
    merged: dict[str, EnvironmentFile] = {}
    for source in (defaults or {}, own or {}):
        for name, env in source.items():
            env = env or EnvironmentFile()
            base = merged.get(name, EnvironmentFile())
            merged[name] = base.model_copy(update=env.model_dump(exclude_none=True))
    return merged


def check_patterns(
    environments: Mapping[str, EnvironmentFile | None] | None,
    loc: Loc,
    fail: Callable[[Loc, str], PolicyError],
) -> None:
    """A pattern only declares names (and may protect them: `protected`, and set how often they are
    checked for drift: `drift_interval`); any other setting on it would be ignored, so it is a mistake."""
    for key, env in (environments or {}).items():
        if (
            is_pattern(key)
            and env is not None
            and env.model_dump(exclude_none=True, exclude=PATTERN_SETTINGS)
        ):
            raise fail(
                (*loc, "environments", key),
                "a pattern declares environment names and takes no settings but protected and"
                " drift_interval: an environment matched only by a pattern gets the profile's strictest"
                " rule (give an environment its own entry by name to set its rule)",
            )


def _star_location(
    own: list[str] | None, inherited: list[str] | None, own_loc: Loc, inherited_loc: Loc
) -> Loc | None:
    """Where a "*" approver was written: in the profile's own list, else in the inherited one."""
    for values, where in ((own, own_loc), (inherited, inherited_loc)):
        if values is not None:
            return (*where, values.index(EVERYONE)) if EVERYONE in values else None
    return None


def _check_everyone(
    name: str, own: ProfileFile, defaults: ProfileFile, fail: Callable[[Loc, str], PolicyError]
) -> None:
    """ "*" as an approver must be asked for explicitly (allow_everyone: true)."""
    allowed = own.allow_everyone if own.allow_everyone is not None else defaults.allow_everyone
    if allowed:
        return
    loc: Loc = ("profiles", name)
    found = [
        _star_location(own.approvers, defaults.approvers, (*loc, "approvers"), ("defaults", "approvers"))
    ]
    own_envs, default_envs = own.environments or {}, defaults.environments or {}
    for env_name in dict.fromkeys([*default_envs, *own_envs]):
        own_env, default_env = own_envs.get(env_name), default_envs.get(env_name)
        found.append(
            _star_location(
                own_env.approvers if own_env else None,
                default_env.approvers if default_env else None,
                (*loc, "environments", env_name, "approvers"),
                ("defaults", "environments", env_name, "approvers"),
            )
        )
    where = next((f for f in found if f is not None), None)
    if where is not None:
        raise fail(
            where,
            f'"*" lets everyone in the workspace approve plans of profile {name}; if that is really meant,'
            " say so with allow_everyone: true on the profile (or in defaults)",
        )


def _check_destroy_approvals(
    entry: ProfilePolicy,
    own: ProfileFile,
    defaults: ProfileFile,
    envs: Mapping[str, EnvironmentFile],
    loc: Loc,
    fail: Callable[[Loc, str], PolicyError],
) -> None:
    """A destroy_approvals written in the file that the named approvers alone can never meet is a
    typo. (The default, 2, with a single named approver only warns: core.policy.access.destroy_warnings.)"""
    written: list[tuple[Loc, int, Principals]] = []
    if own.destroy_approvals is not None or defaults.destroy_approvals is not None:
        written.append(((*loc, "destroy_approvals"), entry.destroy_approvals, entry.approvers))
    for env_name, env in envs.items():
        if env.destroy_approvals is not None and not is_pattern(env_name):
            rule = entry.destroy_rule(env_name)
            written.append(
                ((*loc, "environments", env_name, "destroy_approvals"), env.destroy_approvals, rule.approvers)
            )
    for where, needed, who in written:
        if not who.everyone and not who.groups and needed > len(who.users):
            raise fail(
                where,
                f"a destroy requires {needed} approvals but only {len(who.users)} approver(s) are"
                f" listed ({', '.join(sorted(who.users)) or 'nobody'}); the requester never counts"
                " among them unless allow_self_destroy_approval is true",
            )


def resolve_profile(
    name: str, own: ProfileFile, defaults: ProfileFile, fail: Callable[[Loc, str], PolicyError]
) -> ProfilePolicy:
    """The profile's effective rules with `defaults` merged in; `fail` makes the PolicyError for a location."""
    merged = defaults.model_copy(update=own.model_dump(exclude_none=True, exclude={"environments"}))
    envs = _merge_envs(defaults.environments, own.environments)
    loc: Loc = ("profiles", name)
    check_patterns(own.environments, loc, fail)

    approvers = Principals.from_ids(merged.approvers or [])
    if approvers.is_empty:
        raise fail(
            loc, "no approvers (set approvers here or in defaults): nobody could ever approve its plans"
        )
    _check_everyone(name, own, defaults, fail)
    role = None
    if merged.assume_role_arn is not None:
        role = AssumeRole(
            role_arn=merged.assume_role_arn, external_id=merged.external_id, session_name=merged.session_name
        )
    elif own.external_id is not None or own.session_name is not None:
        # Set on the profile itself without a role: a mistake. (Inherited from defaults: unused.)
        key = "external_id" if own.external_id is not None else "session_name"
        raise fail((*loc, key), "is set but assume_role_arn is not (here or in defaults)")

    self_approval = bool(merged.allow_self_approval)
    required = merged.required_approvals or 1
    environments: dict[str, EnvironmentPolicy] = {}
    for env_name, env in envs.items():
        if is_pattern(env_name):
            continue
        env_approvers = Principals.from_ids(env.approvers) if env.approvers is not None else None
        if env_approvers is not None and env_approvers.is_empty:
            raise fail((*loc, "environments", env_name, "approvers"), "is empty: nobody could approve")
        environments[env_name] = EnvironmentPolicy(
            required_approvals=env.required_approvals or required,
            approvers=env_approvers,
            allow_self_approval=env.allow_self_approval,
            protected=env.protected,
            destroy_approvals=env.destroy_approvals,
            allow_self_destroy_approval=env.allow_self_destroy_approval,
            drift_interval=env.drift_interval,
        )
    entry = ProfilePolicy(
        name=name,
        requesters=Principals.from_ids(merged.requesters or []),
        approvers=approvers,
        allow_self_approval=self_approval,
        required_approvals=required,
        environments=environments,
        allowed_environments=tuple(envs),
        assume_role=role,
        protected=bool(merged.protected),
        protected_patterns=tuple(n for n, env in envs.items() if is_pattern(n) and env.protected),
        destroy_approvals=merged.destroy_approvals or DEFAULT_DESTROY_APPROVALS,
        allow_self_destroy_approval=bool(merged.allow_self_destroy_approval),
        drift_interval=merged.drift_interval,
        drift_patterns=tuple(
            (n, env.drift_interval)
            for n, env in envs.items()
            if is_pattern(n) and env.drift_interval is not None
        ),
    )
    # A requirement that named people alone can never meet is a typo, not a policy.
    checks: list[tuple[Loc, int, Principals]] = [((*loc, "required_approvals"), required, approvers)]
    checks += [
        ((*loc, "environments", env_name), rule.required_approvals, rule.approvers or approvers)
        for env_name, rule in environments.items()
    ]
    for where, needed, who in checks:
        if not who.everyone and not who.groups and needed > len(who.users):
            raise fail(
                where,
                f"requires {needed} approvals but only {len(who.users)} approver(s) are listed"
                f" ({', '.join(sorted(who.users)) or 'nobody'})",
            )
    _check_destroy_approvals(entry, own, defaults, envs, loc, fail)
    if not envs:
        raise fail(
            loc,
            "declares no environments (list them under environments, here or in defaults, by name or"
            ' pattern such as "feature-*"): nothing could be requested with it',
        )
    return entry
