"""The resolved access policy and its queries: may this person request with a profile, deploy an
environment, approve a plan; which role the bot assumes for a profile.

Environments are declared per profile: by name (a rule of its own, possibly empty = the profile's
settings) or by pattern (`"feature-*"`: declares the names it matches and takes no settings). An
environment matching no declaration is refused in the request form; one matched only by a pattern has
no rule of its own and gets the STRICTEST rule of the profile — never the profile's weaker default —
so typing `prd` instead of `prod` gains nothing. An environment without its own `approvers` uses the
profile's approvers; without its own `required_approvals` it uses the profile's (default 1).

Destroys (issue 13) have a rule of their own (`destroy_rule`, `approval_rule(..., destroy=True)`): the
same approvers, `destroy_approvals` distinct approvals (default 2), the requester never one of them
unless `allow_self_destroy_approval`, and none at all for a `protected` environment (`is_protected`:
its own `protected`, else the profile's, else a protected pattern that matches it). An environment
without a rule of its own needs the most destroy approvals any rule of its profile asks.

Drift checks (issue 14) run every `drift_interval` seconds (`drift_interval_for`, `drift_interval`):
the environment's own value, else that of the first declared pattern matching it that sets one, else
the profile's (or defaults'); None means the policy says nothing and ECS_DEPLOY_DRIFT_INTERVAL
applies. 0 turns scheduled checks off.

Without a policy file, `AccessPolicy.open` is the development default: every profile is usable by
everyone, every environment name is accepted, and approvers come from ECS_DEPLOY_APPROVERS. `is_open`
lets `doctor` warn about it. Even where everyone may approve, only full members of the installed
workspace count (core.approval.member_may_approve).
"""

from __future__ import annotations

from enum import StrEnum
from fnmatch import fnmatchcase

from pydantic import Field

from core.policy.errors import PolicyError
from core.policy.mcp_clients import McpClient
from core.policy.principals import USER_ID, USERGROUP_ID, Principals, SlackIdentity
from core.values import Value

DEFAULT_DESTROY_APPROVALS = 2


class Why(StrEnum):
    """The kind of answer a `Decision` is; with its facts, bot/views/access.py words it."""

    # allowed
    OPEN_POLICY = "open_policy"  # no policy file: the profile is open to everyone
    MAY_REQUEST = "may_request"
    ENVIRONMENT_DECLARED = "environment_declared"
    APPROVER = "approver"  # an approver under the rule of `scope`
    REQUESTER = "requester"  # steering: the requester
    DEPLOYMENT_APPROVER = "deployment_approver"  # steering: an approver of the deployment
    MAY_CONFIRM_FIX = "may_confirm_fix"  # a foreign bucket's fix, by an approver (`cause`)
    # refused
    PROFILE_UNLISTED = "profile_unlisted"  # requesting with a profile the policy does not name
    PROFILE_UNLISTED_ENVIRONMENT = "profile_unlisted_environment"  # its environments, likewise
    PROFILE_UNLISTED_APPROVAL = "profile_unlisted_approval"  # approving for it, likewise
    NOT_REQUESTER = "not_requester"  # not among the profile's requesters (`people`)
    ENVIRONMENT_UNDECLARED = "environment_undeclared"  # `declared`: what the profile declares
    NO_APPROVERS = "no_approvers"  # nobody configured for `scope` (`open_policy`: the setting)
    NOT_APPROVER = "not_approver"  # not among the approvers (`people`) of `scope`
    NOT_STEERER = "not_steerer"  # neither the requester (`user_id`) nor an approver of `profile`
    LEADS_ONLY = "leads_only"  # overriding a blocking check; `cause`: the approval answer
    FOREIGN_BUCKET = "foreign_bucket"  # `bucket` not the bot's; `cause`: the approval answer
    FOREIGN_BUCKET_SELF = "foreign_bucket_self"  # and `scope` does not allow self-approval


class Decision(Value):
    """An answer to "may this person do this?": the answer, its kind and the facts it rests on, as
    data (bot/views/access.py words it for that person)."""

    allowed: bool
    why: Why
    profile: str = ""
    environment: str = ""
    scope: str = ""  # an approval rule's profile/environment
    bucket: str = ""
    user_id: str = ""  # the requester, for NOT_STEERER
    people: Principals | None = None  # the requesters or approvers the refusal names
    declared: tuple[str, ...] = ()  # the environments a profile declares
    open_policy: bool = False
    cause: Decision | None = None  # the answer this one rests on

    @classmethod
    def allow(cls, why: Why, **facts: object) -> Decision:
        return cls.model_validate({"allowed": True, "why": why, **facts})

    @classmethod
    def deny(cls, why: Why, **facts: object) -> Decision:
        return cls.model_validate({"allowed": False, "why": why, **facts})


class AssumeRole(Value):
    """The IAM role the bot assumes (from the profile's credentials) before acting for the profile."""

    role_arn: str
    external_id: str | None = None
    session_name: str | None = None


class ApprovalRule(Value):
    """What approving a plan for one profile and environment takes."""

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
    destroy: bool = False  # the rule for a destroy's plan (`ProfilePolicy.destroy_rule`)
    protected: bool = False  # a protected environment: a destroy is never approved nor applied

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


class EnvironmentPolicy(Value):
    required_approvals: int = Field(default=1, ge=1)
    approvers: Principals | None = None  # None: the profile's approvers
    allow_self_approval: bool | None = None  # None: the profile's setting
    protected: bool | None = None  # None: the profile's (or a protected pattern's) setting
    destroy_approvals: int | None = Field(default=None, ge=1)  # None: the profile's
    allow_self_destroy_approval: bool | None = None  # None: the profile's setting
    drift_interval: int | None = Field(default=None, ge=0)  # None: a pattern's, else the profile's


class ProfilePolicy(Value):
    """One profile's effective rules, after `defaults` were merged in."""

    name: str
    requesters: Principals
    approvers: Principals
    allow_self_approval: bool = False
    required_approvals: int = Field(default=1, ge=1)
    environments: dict[str, EnvironmentPolicy] = Field(default_factory=dict)  # named rules
    # Declared environments (names and patterns, in file order); None: any name (the open default).
    allowed_environments: tuple[str, ...] | None = None
    assume_role: AssumeRole | None = None
    protected: bool = False
    protected_patterns: tuple[str, ...] = ()  # declared patterns marked `protected: true`
    destroy_approvals: int = Field(default=DEFAULT_DESTROY_APPROVALS, ge=1)
    allow_self_destroy_approval: bool = False
    drift_interval: int | None = Field(default=None, ge=0)  # None: ECS_DEPLOY_DRIFT_INTERVAL
    drift_patterns: tuple[tuple[str, int], ...] = ()  # declared patterns that set drift_interval

    def drift_interval_for(self, environment: str) -> int | None:
        """Seconds between scheduled drift checks of the environment (0: none): its own
        `drift_interval`, else the first declared pattern's that matches it, else the profile's; None
        when the policy sets none (ECS_DEPLOY_DRIFT_INTERVAL applies)."""
        env = self.environments.get(environment)
        if env is not None and env.drift_interval is not None:
            return env.drift_interval
        for pattern, seconds in self.drift_patterns:
            if fnmatchcase(environment, pattern):
                return seconds
        return self.drift_interval

    def is_protected(self, environment: str) -> bool:
        """Whether a destroy of this environment is refused outright (no approval can lift it)."""
        env = self.environments.get(environment)
        if env is not None and env.protected is not None:
            return env.protected
        return self.protected or any(fnmatchcase(environment, p) for p in self.protected_patterns)

    def destroy_rule(self, environment: str) -> ApprovalRule:
        """What approving a destroy's plan takes: the environment's approvers (`rule_for`), its
        `destroy_approvals` and self-destroy setting; without a rule of its own, the most approvals
        and no self-approval unless every rule allows it. Never fewer approvals than a change of the
        same environment needs (its `required_approvals`)."""
        env = self.environments.get(environment)
        if env is not None or self.allowed_environments is None:
            needed = (env.destroy_approvals if env else None) or self.destroy_approvals
            own = env.allow_self_destroy_approval if env else None
            self_ok = own if own is not None else self.allow_self_destroy_approval
        else:
            named = self.environments.values()
            needed = max([self.destroy_approvals, *(e.destroy_approvals or 0 for e in named)])
            self_ok = self.allow_self_destroy_approval and all(
                e.allow_self_destroy_approval is not False for e in named
            )
        rule = self.rule_for(environment)
        return rule.model_copy(
            update={
                "required_approvals": max(needed, rule.required_approvals),
                "allow_self_approval": self_ok,
                "destroy": True,
                "protected": self.is_protected(environment),
            }
        )

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


class AccessPolicy(Value):
    """The whole policy. With `is_open`, `open_profile` applies to every profile name."""

    source: str | None = None
    is_open: bool = False
    profiles: dict[str, ProfilePolicy] = Field(default_factory=dict)
    open_profile: ProfilePolicy | None = None
    mcp_clients: tuple[McpClient, ...] = ()  # who MCP clients over HTTP are (core.policy.mcp_clients)

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
            return Decision.deny(Why.PROFILE_UNLISTED, profile=profile)
        if entry.requesters.includes(user):
            if self.is_open:
                return Decision.allow(Why.OPEN_POLICY, profile=profile)
            return Decision.allow(Why.MAY_REQUEST, profile=profile)
        return Decision.deny(Why.NOT_REQUESTER, profile=profile, people=entry.requesters)

    def check_environment(self, profile: str, environment: str) -> Decision:
        """Whether the profile declares this environment; the refusal lists what it declares."""
        entry = self.entry_for(profile)
        if entry is None:
            return Decision.deny(Why.PROFILE_UNLISTED_ENVIRONMENT, profile=profile)
        if entry.declares(environment):
            return Decision.allow(Why.ENVIRONMENT_DECLARED, profile=profile, environment=environment)
        return Decision.deny(
            Why.ENVIRONMENT_UNDECLARED,
            profile=profile,
            environment=environment,
            declared=tuple(entry.allowed_environments or ()),
        )

    def approval_rule(self, profile: str, environment: str, *, destroy: bool = False) -> ApprovalRule | None:
        """The rule for approving a plan (with `destroy`: a destroy's plan, `destroy_rule`)."""
        entry = self.entry_for(profile)
        if entry is None:
            return None
        return entry.destroy_rule(environment) if destroy else entry.rule_for(environment)

    def can_approve(self, user: SlackIdentity, profile: str, environment: str) -> Decision:
        """Whether the user is an approver for this profile and environment. Self-approval is judged
        by core.approval, which knows the requester."""
        rule = self.approval_rule(profile, environment)
        if rule is None:
            return Decision.deny(Why.PROFILE_UNLISTED_APPROVAL, profile=profile)
        if rule.approvers.is_empty:
            return Decision.deny(Why.NO_APPROVERS, scope=rule.scope, open_policy=self.is_open)
        if rule.approvers.includes(user):
            return Decision.allow(Why.APPROVER, scope=rule.scope)
        return Decision.deny(Why.NOT_APPROVER, scope=rule.scope, people=rule.approvers)

    def drift_interval(self, profile: str, environment: str) -> int | None:
        """The policy's drift interval for the profile's environment (ProfilePolicy.drift_interval_for);
        None: the policy sets none (or does not know the profile) and ECS_DEPLOY_DRIFT_INTERVAL applies."""
        entry = self.entry_for(profile)
        return entry.drift_interval_for(environment) if entry is not None else None

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


def destroy_warnings(policy: AccessPolicy) -> list[str]:
    """Where a destroy could never get its approvals from the approvers listed by name (the default
    destroy_approvals, 2, with one named approver; set explicitly, such a value fails the load)."""
    warnings = []
    entries = list(policy.profiles.values()) + ([policy.open_profile] if policy.open_profile else [])
    for entry in entries:
        checks = [("its own settings", entry.destroy_approvals, entry.approvers, entry.protected)]
        for env_name in sorted(entry.environments):
            rule = entry.destroy_rule(env_name)
            checks.append((env_name, rule.required_approvals, rule.approvers, rule.protected))
        for where, needed, who, protected in checks:
            if not protected and not who.everyone and not who.groups and needed > len(who.users):
                named = "every profile (ECS_DEPLOY_APPROVERS)" if policy.is_open else f"profile {entry.name}"
                warnings.append(
                    f"{named} ({where}): a destroy needs {needed} approvals"
                    f" (destroy_approvals, default {DEFAULT_DESTROY_APPROVALS}) but only"
                    f" {len(who.users)} approver(s) are listed: it can never be destroyed from Slack"
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
