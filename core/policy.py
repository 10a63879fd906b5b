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

Group membership is the caller's business: it resolves the user groups named by
`referenced_usergroups` (Slack usergroups.users.list) and passes them in a `SlackIdentity`.
Everything here is pure: no I/O except reading the file in `load_policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
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
MAX_REQUIRED_APPROVALS = 10
MAX_NESTING = 12


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


class SlackIdentity(BaseModel):
    """A Slack user and the user groups (S…) they belong to, as resolved by the caller."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1)
    group_ids: frozenset[str] = frozenset()


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

    @property
    def scope(self) -> str:
        """ "profile prod-admin" or "profile prod-admin in environment prod" (when approvers differ)."""
        if self.environment_specific_approvers:
            return f"profile {self.profile} in environment {self.environment}"
        return f"profile {self.profile}"


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
    environments: dict[str, EnvironmentPolicy] = Field(default_factory=dict)
    assume_role: AssumeRole | None = None

    def rule_for(self, environment: str) -> ApprovalRule:
        env = self.environments.get(environment)
        if env is None:
            return ApprovalRule(
                profile=self.name,
                environment=environment,
                approvers=self.approvers,
                required_approvals=self.required_approvals,
                allow_self_approval=self.allow_self_approval,
            )
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


def _check_env(value: str) -> str:
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


def _resolve(
    name: str, own: ProfileFile, defaults: ProfileFile, fail: Callable[[Loc, str], PolicyError]
) -> ProfilePolicy:
    merged = defaults.model_copy(update=own.model_dump(exclude_none=True, exclude={"environments"}))
    envs = _merge_envs(defaults.environments, own.environments)
    loc: Loc = ("profiles", name)

    approvers = Principals.from_ids(merged.approvers or [])
    if approvers.is_empty:
        raise fail(
            loc, "no approvers (set approvers here or in defaults): nobody could ever approve its plans"
        )
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
