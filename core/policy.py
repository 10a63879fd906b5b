"""The operator's access policy: who may request with an AWS profile, who may approve its plans,
which role the bot assumes for it, and how many approvals each environment needs.

The policy is a YAML file (setting ECS_DEPLOY_POLICY_FILE; annotated example in
docs/policy.example.yml). It is read once at start-up by `load_policy`; any mistake — an unknown
key, a wrong type, a malformed Slack id or role ARN, a profile named twice — raises `PolicyError`
naming the file, the line and the key, so a typo stops the bot instead of silently letting anyone in.

Without a policy file, `AccessPolicy.open` is the development default: every profile is usable by
everyone and approvers come from ECS_DEPLOY_APPROVERS. `is_open` lets `doctor` warn about it.

Resolution model: the file's `defaults` section is merged into every profile field by field (a
profile's own value replaces the default's value; lists are replaced, not concatenated), and a
profile's `environments` entries are merged with the defaults' entries of the same name, again field
by field. An environment without its own `approvers` uses the profile's approvers; without its own
`required_approvals` it uses the profile's (default 1).

Environments are declared per profile: the keys of `environments` are environment names (`prod`: a
rule of its own, possibly empty = the profile's settings) or patterns (`"feature-*"`: declares the
names it matches and takes no settings). An environment matching no key is refused in the request
form; one matched only by a pattern has no rule of its own and gets the STRICTEST rule of the
profile — never the profile's weaker default — so typing `prd` instead of `prod` gains nothing.
Without a policy file (the open default) every environment name is accepted.

`"*"` (everyone) as an approver needs `allow_everyone: true` on the profile (or in defaults); even
then only full members of the installed workspace count (core.approval.member_may_approve).

Group membership is the caller's business: it resolves the user groups named by
`referenced_usergroups` (Slack usergroups.users.list) and passes them in a `SlackIdentity`.
Everything here is pure: no I/O except reading the file in `load_policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from core import validation

EVERYONE = "*"
USER_ID = re.compile(r"[UW][A-Z0-9]+")
USERGROUP_ID = re.compile(r"S[A-Z0-9]+")
# Partitions: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc.
ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
ENVIRONMENT_PATTERN = re.compile(r"[a-z0-9*?-]{1,64}")
MAX_REQUIRED_APPROVALS = 10
MAX_NESTING = 12
MAX_LISTED_ENVIRONMENTS = 30


class PolicyError(Exception):
    """The policy file is unusable. The message names the file, the line (when known) and the key."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, key: str = ""):
        super().__init__(message)
        self.path = path
        self.line = line
        self.key = key


# ---------------------------------------------------------------------------------------------
# Resolved, queryable policy


class Decision(BaseModel):
    """An answer to "may this person do this?", with a reason written for that person."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str

    @classmethod
    def allow(cls, reason: str) -> Decision:
        return cls(allowed=True, reason=reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(allowed=False, reason=reason)


class SlackMember(BaseModel):
    """What Slack's users.info says about a user (the facts an approval depends on)."""

    model_config = ConfigDict(frozen=True)

    team_id: str | None = None  # the user's own workspace (another one for Slack Connect users)
    is_restricted: bool = False  # multi-channel guest
    is_ultra_restricted: bool = False  # single-channel guest
    is_bot: bool = False
    deleted: bool = False


class SlackIdentity(BaseModel):
    """A Slack user as resolved by the caller: the user groups (S…) they belong to, what Slack says
    about them (`member`, None when not looked up or the lookup failed) and the workspace the bot is
    installed in (`workspace_team_id`, from auth.test; None when unknown)."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1)
    group_ids: frozenset[str] = frozenset()
    member: SlackMember | None = None
    workspace_team_id: str | None = None


def mention(slack_id: str) -> str:
    """Slack markup for a user (<@U…>), a user group (<!subteam^S…>) or everyone."""
    if slack_id == EVERYONE:
        return "everyone"
    if USERGROUP_ID.fullmatch(slack_id):
        return f"<!subteam^{slack_id}>"
    return f"<@{slack_id}>"


class Principals(BaseModel):
    """A set of people: everyone, and/or named users, and/or members of named user groups."""

    model_config = ConfigDict(frozen=True)

    everyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> Principals:
        """Split already-validated ids ("*", U…/W…, S…) into the three kinds."""
        ids = list(ids)
        return cls(
            everyone=EVERYONE in ids,
            users=frozenset(i for i in ids if USER_ID.fullmatch(i)),
            groups=frozenset(i for i in ids if USERGROUP_ID.fullmatch(i)),
        )

    @property
    def is_empty(self) -> bool:
        return not (self.everyone or self.users or self.groups)

    def includes(self, user: SlackIdentity) -> bool:
        return self.everyone or user.user_id in self.users or bool(self.groups & user.group_ids)

    def describe(self) -> str:
        """ "everyone", or the mentions in a stable order (users, then groups), or "nobody"."""
        if self.everyone:
            return "everyone"
        parts = [mention(u) for u in sorted(self.users)] + [mention(g) for g in sorted(self.groups)]
        return ", ".join(parts) if parts else "nobody"


class AssumeRole(BaseModel):
    """The IAM role the bot assumes (from the profile's credentials) before acting for the profile."""

    model_config = ConfigDict(frozen=True)

    role_arn: str
    external_id: str | None = None
    session_name: str | None = None


class ApprovalRule(BaseModel):
    """What approving a plan for one profile and environment takes."""

    model_config = ConfigDict(frozen=True)

    profile: str
    environment: str
    approvers: Principals
    required_approvals: int = Field(default=1, ge=1)
    allow_self_approval: bool = False
    environment_specific_approvers: bool = False
    # The environment has no rule of its own (only a pattern declares it): the profile's strictest
    # rule applies — the one of `strictest_from` (an environment), or the profile's own settings (None).
    strictest: bool = False
    strictest_from: str | None = None

    @property
    def scope(self) -> str:
        """ "profile prod-admin" or "profile prod-admin in environment prod" (when approvers differ);
        for an environment without a rule of its own, which rule applies to it."""
        if self.strictest:
            like = (
                f"ruled like {self.strictest_from}"
                if self.strictest_from
                else "ruled by the profile's settings"
            )
            return (
                f"profile {self.profile} in environment {self.environment}"
                f" ({like}: the strictest rule of the profile)"
            )
        if self.environment_specific_approvers:
            return f"profile {self.profile} in environment {self.environment}"
        return f"profile {self.profile}"

    @property
    def strictness(self) -> tuple[bool, int, bool, bool]:
        """Orders rules from weakest to strictest: self-approval forbidden, more approvals, named
        approvers rather than everyone, environment-specific approvers rather than the profile's."""
        return (
            not self.allow_self_approval,
            self.required_approvals,
            not self.approvers.everyone,
            self.environment_specific_approvers,
        )


class EnvironmentPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    required_approvals: int = Field(default=1, ge=1)
    approvers: Principals | None = None  # None: the profile's approvers
    allow_self_approval: bool | None = None  # None: the profile's setting


class ProfilePolicy(BaseModel):
    """One profile's effective rules, after `defaults` were merged in."""

    model_config = ConfigDict(frozen=True)

    name: str
    requesters: Principals
    approvers: Principals
    allow_self_approval: bool = False
    required_approvals: int = Field(default=1, ge=1)
    environments: dict[str, EnvironmentPolicy] = Field(default_factory=dict)  # named rules
    # Declared environments (names and patterns, in file order); None: any name (the open default).
    allowed_environments: tuple[str, ...] | None = None
    assume_role: AssumeRole | None = None

    def declares(self, environment: str) -> bool:
        """Whether a request for this environment may be made with the profile."""
        if self.allowed_environments is None:
            return True
        return any(fnmatchcase(environment, declared) for declared in self.allowed_environments)

    def rule_for(self, environment: str) -> ApprovalRule:
        """The environment's own rule; without one (declared by a pattern only, or not declared at
        all), the strictest rule of the profile. Only the open default uses the profile's settings
        for every name."""
        env = self.environments.get(environment)
        if env is not None:
            return self._own_rule(environment, env)
        if self.allowed_environments is None:
            return self._default_rule(environment)
        return self.strictest_rule(environment)

    def strictest_rule(self, environment: str) -> ApprovalRule:
        """The strictest of the profile's rules (its named environments' and its own settings),
        applied to `environment`. Ties go to the first in name order, the profile's settings last."""
        candidates = [self._own_rule(name, env) for name, env in sorted(self.environments.items())]
        candidates.append(self._default_rule(environment))
        best = max(candidates, key=lambda rule: rule.strictness)
        named = best.environment if best.environment in self.environments else None
        return best.model_copy(
            update={"environment": environment, "strictest": True, "strictest_from": named}
        )

    def _default_rule(self, environment: str) -> ApprovalRule:
        return ApprovalRule(
            profile=self.name,
            environment=environment,
            approvers=self.approvers,
            required_approvals=self.required_approvals,
            allow_self_approval=self.allow_self_approval,
        )

    def _own_rule(self, environment: str, env: EnvironmentPolicy) -> ApprovalRule:
        return ApprovalRule(
            profile=self.name,
            environment=environment,
            approvers=env.approvers if env.approvers is not None else self.approvers,
            required_approvals=env.required_approvals,
            allow_self_approval=(
                env.allow_self_approval if env.allow_self_approval is not None else self.allow_self_approval
            ),
            environment_specific_approvers=env.approvers is not None,
        )

    def rules(self) -> list[ApprovalRule]:
        """The profile's own settings and every named environment's rule."""
        own = self._default_rule("(any)")
        return [own] + [self._own_rule(name, env) for name, env in sorted(self.environments.items())]


class AccessPolicy(BaseModel):
    """The whole policy. With `is_open`, `open_profile` applies to every profile name."""

    model_config = ConfigDict(frozen=True)

    source: str | None = None
    is_open: bool = False
    profiles: dict[str, ProfilePolicy] = Field(default_factory=dict)
    open_profile: ProfilePolicy | None = None

    @classmethod
    def open(cls, approver_ids: frozenset[str]) -> AccessPolicy:
        """Development default (no policy file): every profile usable by everyone; approvers are the
        users and user groups of ECS_DEPLOY_APPROVERS; self-approval is not allowed."""
        bad = sorted(i for i in approver_ids if not (USER_ID.fullmatch(i) or USERGROUP_ID.fullmatch(i)))
        if bad:
            raise PolicyError(
                f"ECS_DEPLOY_APPROVERS: {', '.join(repr(b) for b in bad)} is not a Slack user id (U…/W…)"
                " or user group id (S…).",
                key="ECS_DEPLOY_APPROVERS",
            )
        entry = ProfilePolicy(
            name="*",
            requesters=Principals(everyone=True),
            approvers=Principals.from_ids(approver_ids),
        )
        return cls(is_open=True, open_profile=entry)

    def entry_for(self, profile: str) -> ProfilePolicy | None:
        if self.is_open and self.open_profile is not None:
            return self.open_profile.model_copy(update={"name": profile})
        return self.profiles.get(profile)

    def profiles_for(self, user: SlackIdentity, available_profiles: list[str]) -> list[str]:
        """The available profiles this user may request with, in the given order, without repeats.
        With a policy file, a profile the file does not name is never offered."""
        seen: set[str] = set()
        offered = []
        for profile in available_profiles:
            if profile not in seen and self.can_request(user, profile).allowed:
                offered.append(profile)
            seen.add(profile)
        return offered

    def can_request(self, user: SlackIdentity, profile: str) -> Decision:
        entry = self.entry_for(profile)
        if entry is None:
            return Decision.deny(
                f"Profile {profile} is not in the access policy, so nobody may use it."
                " Ask an operator to add it."
            )
        if entry.requesters.includes(user):
            if self.is_open:
                return Decision.allow(
                    f"No access policy is configured: profile {profile} is open to everyone."
                )
            return Decision.allow(f"You may request deployments with profile {profile}.")
        return Decision.deny(
            f"You may not request deployments with profile {profile}."
            f" Requesters: {entry.requesters.describe()}."
        )

    def check_environment(self, profile: str, environment: str) -> Decision:
        """Whether the profile declares this environment; the refusal lists what it declares."""
        entry = self.entry_for(profile)
        if entry is None:
            return Decision.deny(f"Profile {profile} is not in the access policy, so nobody may use it.")
        if entry.declares(environment):
            return Decision.allow(f"Profile {profile} may deploy environment {environment}.")
        declared = list(entry.allowed_environments or ())
        listed = ", ".join(declared[:MAX_LISTED_ENVIRONMENTS]) + (
            ", …" if len(declared) > MAX_LISTED_ENVIRONMENTS else ""
        )
        return Decision.deny(
            f"Environment {environment} is not declared for profile {profile}. Allowed: {listed}."
            " An operator can declare more in the access policy."
        )

    def approval_rule(self, profile: str, environment: str) -> ApprovalRule | None:
        entry = self.entry_for(profile)
        return entry.rule_for(environment) if entry is not None else None

    def can_approve(self, user: SlackIdentity, profile: str, environment: str) -> Decision:
        """Whether the user is an approver for this profile and environment. Self-approval is judged
        by core.approval, which knows the requester."""
        rule = self.approval_rule(profile, environment)
        if rule is None:
            return Decision.deny(
                f"Profile {profile} is not in the access policy, so nobody may approve plans for it."
            )
        if rule.approvers.is_empty:
            setting = "ECS_DEPLOY_APPROVERS" if self.is_open else "the access policy"
            return Decision.deny(
                f"Nobody is configured to approve plans for {rule.scope}; an operator must set {setting}."
            )
        if rule.approvers.includes(user):
            return Decision.allow(f"You are an approver for {rule.scope}.")
        return Decision.deny(
            f"You are not an approver for {rule.scope}. Approvers: {rule.approvers.describe()}."
        )

    def role_for(self, profile: str) -> AssumeRole | None:
        entry = self.entry_for(profile)
        return entry.assume_role if entry is not None else None


def policy_warnings(policy: AccessPolicy) -> list[str]:
    """What an operator should know about a policy that loaded: where everyone may approve."""
    warnings = []
    for name, entry in sorted(policy.profiles.items()):
        where = [
            "its own settings" if rule.environment == "(any)" else f"environment {rule.environment}"
            for rule in entry.rules()
            if rule.approvers.everyone
        ]
        if where:
            warnings.append(
                f"profile {name}: everyone may approve ({', '.join(where)}; allow_everyone: true) — only"
                " full members of this workspace count, never guests or Slack Connect users"
            )
    return warnings


def referenced_usergroups(policy: AccessPolicy) -> set[str]:
    """Every user group id the policy names, so the Slack side knows whose members to resolve."""
    entries = list(policy.profiles.values())
    if policy.open_profile is not None:
        entries.append(policy.open_profile)
    groups: set[str] = set()
    for entry in entries:
        groups |= entry.requesters.groups | entry.approvers.groups
        for env in entry.environments.values():
            if env.approvers is not None:
                groups |= env.approvers.groups
    return groups


# ---------------------------------------------------------------------------------------------
# The file, as written by the operator (every field optional: None means "inherit")


def _check_principal(value: str) -> str:
    if value == EVERYONE or USER_ID.fullmatch(value) or USERGROUP_ID.fullmatch(value):
        return value
    raise ValueError(
        f"'{value}' is not a Slack id: use a member id like U012AB3CD (or W… on Enterprise Grid), a user"
        ' group id like S012AB3CD, or "*" for everyone (quoted).'
    )


def _check_role_arn(value: str) -> str:
    if not ROLE_ARN.fullmatch(value):
        raise ValueError(f"'{value}' is not an IAM role ARN (expected arn:aws:iam::123456789012:role/NAME).")
    return value


def _check_session_name(value: str) -> str:
    if not SESSION_NAME.fullmatch(value):
        raise ValueError("a role session name is 2-64 characters of letters, digits and _+=,.@-")
    return value


def _check_external_id(value: str) -> str:
    if not EXTERNAL_ID.fullmatch(value):
        raise ValueError("an external id is 2-1224 characters of letters, digits and _+=,.@:/-")
    return value


def _check_profile(value: str) -> str:
    if not validation.PROFILE.fullmatch(value):
        raise ValueError(f"'{value}' is not an AWS profile name (letters, digits and _.+@-, at most 64).")
    return value


def is_pattern(key: str) -> bool:
    return "*" in key or "?" in key


def _check_env(value: str) -> str:
    if is_pattern(value):
        if not ENVIRONMENT_PATTERN.fullmatch(value):
            raise ValueError(
                f"'{value}' is not a valid environment pattern: use a-z, 0-9, '-' and the wildcards * and ?"
                ' (quoted, e.g. "feature-*").'
            )
        return value
    try:
        return validation.check_environment(value)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid environment name: {exc}") from None


SlackPrincipal = Annotated[str, AfterValidator(_check_principal)]
ProfileName = Annotated[str, AfterValidator(_check_profile)]
EnvironmentName = Annotated[str, AfterValidator(_check_env)]
Approvals = Annotated[int, Field(ge=1, le=MAX_REQUIRED_APPROVALS)]


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EnvironmentFile(_FileModel):
    required_approvals: Approvals | None = None
    approvers: list[SlackPrincipal] | None = None
    allow_self_approval: bool | None = None


class ProfileFile(_FileModel):
    requesters: list[SlackPrincipal] | None = None
    approvers: list[SlackPrincipal] | None = None
    allow_everyone: bool | None = None
    allow_self_approval: bool | None = None
    required_approvals: Approvals | None = None
    environments: dict[EnvironmentName, EnvironmentFile | None] | None = None
    assume_role_arn: Annotated[str, AfterValidator(_check_role_arn)] | None = None
    external_id: Annotated[str, AfterValidator(_check_external_id)] | None = None
    session_name: Annotated[str, AfterValidator(_check_session_name)] | None = None


class PolicyFile(_FileModel):
    version: Literal[1] = 1
    defaults: ProfileFile | None = None
    profiles: dict[ProfileName, ProfileFile | None]


_ALLOWED_KEYS: dict[type[BaseModel], str] = {
    model: ", ".join(model.model_fields) for model in (EnvironmentFile, ProfileFile, PolicyFile)
}


# ---------------------------------------------------------------------------------------------
# Loading


Loc = tuple[str | int, ...]
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Located:
    """Builds plain Python data from a YAML node tree, remembering the line of every key and item."""

    def __init__(self, loader: yaml.SafeLoader, source: str):
        self.loader = loader
        self.source = source
        self.lines: dict[Loc, int] = {}

    def fail(self, message: str, loc: Loc, line: int | None) -> PolicyError:
        return _error(self.source, loc, line, message)

    def build(self, node: yaml.Node, loc: Loc = (), depth: int = 0) -> Any:
        if depth > MAX_NESTING:
            raise self.fail("nested too deeply", loc, node.start_mark.line + 1)
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            raise self.fail(f"unsupported YAML tag {node.tag}", loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail("a key must be a plain name", loc, line)
                key = str(key_node.value)
                if key == "<<":
                    raise self.fail(
                        "YAML merge keys (<<) are not supported; use the defaults section", loc, line
                    )
                if key in result:
                    first = self.lines[(*loc, key)]
                    what = "profile" if loc == ("profiles",) else "key"
                    raise self.fail(
                        f"duplicate {what} '{key}' (first defined at line {first})", (*loc, key), line
                    )
                self.lines[(*loc, key)] = line
                result[key] = self.build(value_node, (*loc, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*loc, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*loc, index), depth + 1))
            return items
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            raise self.fail(f"unreadable value ({problem})", loc, node.start_mark.line + 1) from None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _error(source: str, loc: Loc, line: int | None, message: str) -> PolicyError:
    key = _dotted(loc)
    where = f"{source}:{line}" if line is not None else source
    text = f"Access policy {where}: {key}: {message}" if key else f"Access policy {where}: {message}"
    return PolicyError(text, path=source, line=line, key=key)


def _line_for(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_at(loc: Loc) -> type[BaseModel]:
    """Which file model sits at this location (for listing its allowed keys)."""
    if not loc:
        return PolicyFile
    if loc[0] == "defaults":
        rest = loc[1:]
    elif loc[0] == "profiles" and len(loc) >= 2:
        rest = loc[2:]
    else:
        return PolicyFile
    if len(rest) >= 2 and rest[0] == "environments":
        return EnvironmentFile
    return ProfileFile


def _problem(error: Mapping[str, Any]) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _ALLOWED_KEYS[_model_at(loc[:-1])]
        return loc, f"unknown key (allowed here: {allowed})"
    if kind == "missing":
        return loc, "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in ("string_type", "bool_type", "int_type", "list_type", "dict_type", "model_type"):
        message += f" (got {type(error.get('input')).__name__}: {error.get('input')!r})"
    return loc, message


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


def _check_patterns(
    environments: Mapping[str, EnvironmentFile | None] | None,
    loc: Loc,
    fail: Callable[[Loc, str], PolicyError],
) -> None:
    """A pattern only declares names; settings on it would be ignored, so they are a mistake."""
    for key, env in (environments or {}).items():
        if is_pattern(key) and env is not None and env.model_dump(exclude_none=True):
            raise fail(
                (*loc, "environments", key),
                "a pattern declares environment names and takes no settings: an environment matched"
                " only by a pattern gets the profile's strictest rule (give an environment its own"
                " entry by name to set its rule)",
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


def _resolve(
    name: str, own: ProfileFile, defaults: ProfileFile, fail: Callable[[Loc, str], PolicyError]
) -> ProfilePolicy:
    merged = defaults.model_copy(update=own.model_dump(exclude_none=True, exclude={"environments"}))
    envs = _merge_envs(defaults.environments, own.environments)
    loc: Loc = ("profiles", name)
    _check_patterns(own.environments, loc, fail)

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
                f" ({who.describe()})",
            )
    if not envs:
        raise fail(
            loc,
            "declares no environments (list them under environments, here or in defaults, by name or"
            ' pattern such as "feature-*"): nothing could be requested with it',
        )
    return entry


def parse_policy(text: str, source: str = "<policy>") -> AccessPolicy:
    """Parse and validate policy text; `source` names the file in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = exc.problem or str(exc)
            if line is not None and "*" in "".join(text.splitlines()[line - 1 : line]):
                problem += ' (to mean everyone, write "*" in quotes: a bare * starts a YAML alias)'
            raise _error(source, (), line, f"not valid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise _error(source, (), None, f"not valid YAML: {exc}") from None
        if root is None:
            raise _error(source, (), None, "the file is empty; it must define profiles")
        located = _Located(loader, source)
        data = located.build(root)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _error(source, (), 1, "the top level must be a mapping with keys version, defaults, profiles")
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as exc:
        found = [
            _error(source, loc, _line_for(located.lines, loc), msg)
            for loc, msg in map(_problem, exc.errors())
        ]
        # In file order; problems without a line (a missing key) last.
        found.sort(key=lambda e: (e.line is None, e.line or 0))
        first = found[0]
        error = PolicyError(
            "\n".join(dict.fromkeys(str(e) for e in found)), path=source, line=first.line, key=first.key
        )
        raise error from None
    if not parsed.profiles:
        raise _error(
            source, ("profiles",), _line_for(located.lines, ("profiles",)), "no profiles are defined"
        )

    def fail(loc: Loc, message: str) -> PolicyError:
        return _error(source, loc, _line_for(located.lines, loc), message)

    defaults = parsed.defaults or ProfileFile()
    _check_patterns(defaults.environments, ("defaults",), fail)
    profiles = {
        name: _resolve(name, own or ProfileFile(), defaults, fail) for name, own in parsed.profiles.items()
    }
    return AccessPolicy(source=source, profiles=profiles)


def load_policy(path: str | Path) -> AccessPolicy:
    """Read the operator's policy file. Every problem raises PolicyError naming file, line and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            f"Access policy {source}: the file does not exist (ECS_DEPLOY_POLICY_FILE).", path=source
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"Access policy {source}: cannot be read ({exc}).", path=source) from None
    return parse_policy(text, source)


def policy_from_settings(policy_file: Path | None, approver_ids: frozenset[str]) -> AccessPolicy:
    """The policy the bot runs with: the file when ECS_DEPLOY_POLICY_FILE is set, else the open default."""
    if policy_file is not None:
        return load_policy(policy_file)
    return AccessPolicy.open(approver_ids)
