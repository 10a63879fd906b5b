"""The operator's access policy: loading (every mistake fails loudly, with file, line and key),
inheritance from defaults, wildcards, group membership, profile filtering and the open default."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter

from bot.views.access import reason_text
from core.policy.access import AccessPolicy, ApprovalRule, AssumeRole, policy_warnings, referenced_usergroups
from core.policy.errors import PolicyError
from core.policy.loading import load_policy, parse_policy, policy_from_settings
from core.policy.principals import SlackIdentity

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "policy.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def user(user_id: str, *groups: str) -> SlackIdentity:
    return SlackIdentity(user_id=user_id, group_ids=frozenset(groups))


def rule(policy: AccessPolicy, profile: str, environment: str) -> ApprovalRule:
    found = policy.approval_rule(profile, environment)
    assert found is not None
    return found


# ---------------------------------------------------------------------------------------------
# Loading errors: (yaml, expected line, expected key, words the message must contain), the most of them
# in policy_load_errors.yaml


def bad_role_arn(arn: str, case: str, *words: str) -> Any:
    """A profile whose assume_role_arn (line 4) is not an IAM role's ARN."""
    text = f"""
        profiles:
          dev:
            approvers: [U1]
            assume_role_arn: {arn}
        """
    return pytest.param(text, 4, "profiles.dev.assume_role_arn", ["not an IAM role ARN", *words], id=case)


class LoadErrorCase(BaseModel):
    """One case of policy_load_errors.yaml (next to this file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    line: int | None
    key: str
    words: list[str]


LOAD_ERROR_CASES = TypeAdapter(list[LoadErrorCase]).validate_python(
    yaml.safe_load(Path(__file__).with_name("policy_load_errors.yaml").read_text(encoding="utf-8"))
)
LOAD_ERRORS = [
    *(pytest.param(case.text, case.line, case.key, case.words, id=case.id) for case in LOAD_ERROR_CASES),
    bad_role_arn("arn:aws:iam::12345678901:role/deploy", "arn-account-11-digits", "12345678901"),
    bad_role_arn("arn:aws:iam::123456789012:user/deploy", "arn-user-not-role"),
    bad_role_arn("arn:aws:sts::123456789012:role/deploy", "arn-wrong-service"),
    bad_role_arn('"123456789012:role/deploy"', "arn-missing-prefix"),
    bad_role_arn("arn:aws:iam::123456789012:role/", "arn-empty-role-name"),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), LOAD_ERRORS)
def test_load_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int | None, key: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    error = caught.value
    message = str(error)
    assert str(path) in message
    assert error.path == str(path)
    assert error.line == line
    if line is not None:
        assert f"{path}:{line}:" in message
    assert error.key == key
    if key:
        assert f": {key}: " in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        profiles:
          dev:
            approvers: [U1, bob]
            requesterz: [U2]
          prod:
            approvers: [U3]
            assume_role_arn: arn:aws:iam::1:role/x
        """,
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert f"{path}:3: profiles.dev.approvers[1]" in message
    assert f"{path}:4: profiles.dev.requesterz" in message
    assert f"{path}:7: profiles.prod.assume_role_arn" in message
    assert caught.value.line == 3


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert "ECS_DEPLOY_POLICY_FILE" in str(caught.value)


def test_load_accepts_str_path(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles:\n  dev:\n    approvers: [U1]\n    environments: {dev: }\n")
    assert set(load_policy(str(path)).profiles) == {"dev"}


# ---------------------------------------------------------------------------------------------
# Valid files: ids, ARNs, inheritance


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/deploy",
        "arn:aws:iam::123456789012:role/service-role/ecs-deploy_bot+x=y,z.@-",
        "arn:aws-cn:iam::123456789012:role/deploy",
        "arn:aws-us-gov:iam::123456789012:role/deploy",
        "arn:aws-iso-b:iam::123456789012:role/deploy",
    ],
)
def test_role_arn_formats_accepted(arn: str) -> None:
    policy = parse_policy(
        f"profiles:\n  dev:\n    approvers: [U1]\n    assume_role_arn: {arn}\n    environments: {{dev: }}\n"
    )
    assert policy.role_for("dev") == AssumeRole(role_arn=arn)


@pytest.mark.parametrize("slack_id", ["U012AB3CD", "W012AB3CD", "S012AB3CD", "*"])
def test_slack_id_formats_accepted(slack_id: str) -> None:
    policy = parse_policy(
        f'profiles:\n  dev:\n    approvers: ["{slack_id}"]\n    requesters: ["{slack_id}"]\n'
        "    allow_everyone: true\n    environments: {dev: }\n"
    )
    assert policy.profiles["dev"].approvers.is_empty is False


INHERITANCE = """
defaults:
  requesters: ["*"]
  approvers: [S0LEADS]
  allow_self_approval: true
  required_approvals: 1
  session_name: ecs-deploy-bot
  external_id: default-ext
  environments:
    prod: {required_approvals: 2}
    stag: {approvers: [U0STAG1]}
profiles:
  plain:
  empty: {}
  narrowed:
    requesters: [U0DEV1]
    approvers: [U0LEAD1, U0LEAD2, U0LEAD3]
    allow_self_approval: false
    assume_role_arn: arn:aws:iam::123456789012:role/deploy
    environments:
      prod: {approvers: [U0LEAD1, U0LEAD2]}
      dev: {required_approvals: 3}
      "feature-*":
  own-role:
    assume_role_arn: arn:aws:iam::210987654321:role/other
    external_id: own-ext
    session_name: own-session
"""


@pytest.mark.parametrize("profile", ["plain", "empty"])
def test_profile_without_settings_inherits_everything(profile: str) -> None:
    entry = parse_policy(INHERITANCE).profiles[profile]
    assert entry.requesters.everyone
    assert entry.approvers.groups == frozenset({"S0LEADS"})
    assert entry.allow_self_approval is True
    assert entry.assume_role is None  # session_name/external_id in defaults alone assume nothing
    prod = entry.rule_for("prod")
    assert (prod.required_approvals, prod.approvers.groups) == (2, frozenset({"S0LEADS"}))
    stag = entry.rule_for("stag")
    assert stag.approvers.users == frozenset({"U0STAG1"}) and stag.required_approvals == 1
    assert entry.allowed_environments == ("prod", "stag")  # declared through defaults


def test_profile_values_replace_defaults_and_environments_merge_by_field() -> None:
    policy = parse_policy(INHERITANCE)
    entry = policy.profiles["narrowed"]
    assert entry.requesters.everyone is False
    assert entry.requesters.users == frozenset({"U0DEV1"})
    assert entry.approvers.users == frozenset({"U0LEAD1", "U0LEAD2", "U0LEAD3"})
    assert entry.approvers.groups == frozenset()  # lists replace, never concatenate
    assert entry.allow_self_approval is False
    prod = entry.rule_for("prod")
    assert prod.required_approvals == 2  # from defaults.environments.prod
    assert prod.approvers.users == frozenset({"U0LEAD1", "U0LEAD2"})  # from the profile's prod
    assert entry.rule_for("dev").required_approvals == 3
    assert entry.rule_for("stag").approvers.users == frozenset({"U0STAG1"})
    assert policy.role_for("narrowed") == AssumeRole(
        role_arn="arn:aws:iam::123456789012:role/deploy",
        external_id="default-ext",
        session_name="ecs-deploy-bot",
    )
    assert policy.role_for("own-role") == AssumeRole(
        role_arn="arn:aws:iam::210987654321:role/other", external_id="own-ext", session_name="own-session"
    )
    assert policy.role_for("plain") is None
    assert policy.role_for("not-listed") is None
    assert policy.is_open is False


def test_environment_self_approval_overrides_profile() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            profiles:
              dev:
                approvers: [U1]
                allow_self_approval: true
                environments:
                  dev:
                  prod: {allow_self_approval: false}
            """
        )
    )
    assert rule(policy, "dev", "dev").allow_self_approval is True
    assert rule(policy, "dev", "prod").allow_self_approval is False


def test_example_policy_in_docs_loads() -> None:
    policy = load_policy(REPO / "docs" / "policy.example.yml")
    assert not policy.is_open
    assert {"sandbox", "dev-admin", "prod-admin"} <= set(policy.profiles)
    assert rule(policy, "prod-admin", "prod").required_approvals == 2
    assert policy.role_for("prod-admin") is not None
    assert policy_warnings(policy) == []
    for profile in ("sandbox", "dev-admin", "prod-admin"):  # every prod is protected from a destroy
        assert policy.profiles[profile].is_protected("prod")
        assert not policy.profiles[profile].is_protected("dev")
        assert policy.profiles[profile].destroy_rule("dev").required_approvals == 2


@pytest.mark.parametrize("typed", ["prd", "production", "prod2", "Prod", "dev-prod", "feature"])
def test_example_policy_refuses_a_name_that_side_steps_prod(typed: str) -> None:
    """Issue 10, finding 8: a dev-admin requester may approve their own dev plans but not prod ones;
    typing another name for production must not land on the self-approvable default."""
    policy = load_policy(REPO / "docs" / "policy.example.yml")
    decision = policy.check_environment("dev-admin", typed)
    assert not decision.allowed
    assert f"Environment {typed} is not declared for profile dev-admin" in reason_text(decision)
    assert "Allowed: dev, stag, prod, feature-*." in reason_text(decision)
    assert not rule(policy, "dev-admin", typed).allow_self_approval  # and never the weakest rule


def test_example_policy_pattern_environment_gets_the_strictest_rule() -> None:
    policy = load_policy(REPO / "docs" / "policy.example.yml")
    assert policy.check_environment("dev-admin", "feature-login").allowed
    assert not policy.check_environment("sandbox", "feature-login").allowed  # the pattern is dev-admin's
    feature = rule(policy, "dev-admin", "feature-login")
    assert (feature.required_approvals, feature.allow_self_approval) == (2, False)
    assert feature.strictest and feature.strictest_from == "prod"
    assert "feature-login (ruled like prod: the strictest rule of the profile)" in feature.scope
    dev = rule(policy, "dev-admin", "dev")  # named: its own rule, the profile's settings
    assert (dev.required_approvals, dev.allow_self_approval, dev.strictest) == (1, True, False)
    assert not rule(policy, "dev-admin", "prod").allow_self_approval


STRICTEST = """
profiles:
  catch-all:
    approvers: [U1, U2, U3, S0SEC]
    allow_self_approval: true
    environments:
      dev:
      stag: {required_approvals: 2}
      prod: {allow_self_approval: false, approvers: [S0SEC]}
      "*":
  counts:
    approvers: [U1, U2, U3]
    allow_self_approval: true
    environments:
      dev:
      stag: {required_approvals: 3}
      qa: {required_approvals: 2}
      "qa-?":
  settings-strictest:
    approvers: [U1, U2]
    required_approvals: 2
    environments:
      dev: {required_approvals: 1, allow_self_approval: true}
      "tmp-*":
"""


@pytest.mark.parametrize(
    ("profile", "typed", "required", "self_ok", "approvers", "ruled_like"),
    [
        # forbidding self-approval is stricter than any count; prod's own approvers come with it
        ("catch-all", "prd", 1, False, frozenset({"S0SEC"}), "prod"),
        ("catch-all", "anything-else", 1, False, frozenset({"S0SEC"}), "prod"),
        # all allow self-approval: the most approvals wins
        ("counts", "qa-1", 3, True, frozenset({"U1", "U2", "U3"}), "stag"),
        # the profile's own settings can be the strictest rule
        ("settings-strictest", "tmp-x", 2, False, frozenset({"U1", "U2"}), None),
    ],
)
def test_environment_without_a_rule_of_its_own_gets_the_strictest(
    profile: str, typed: str, required: int, self_ok: bool, approvers: frozenset[str], ruled_like: str | None
) -> None:
    policy = parse_policy(STRICTEST)
    assert policy.check_environment(profile, typed).allowed
    found = rule(policy, profile, typed)
    assert (found.required_approvals, found.allow_self_approval) == (required, self_ok)
    assert found.approvers.users | found.approvers.groups == approvers
    assert found.environment == typed and found.strictest and found.strictest_from == ruled_like


def test_named_environments_keep_their_own_rule_next_to_patterns() -> None:
    policy = parse_policy(STRICTEST)
    dev = rule(policy, "catch-all", "dev")
    assert (dev.required_approvals, dev.allow_self_approval, dev.strictest) == (1, True, False)
    qa = rule(policy, "counts", "qa")
    assert (qa.required_approvals, qa.strictest) == (2, False)
    assert not policy.check_environment("counts", "qa-12").allowed  # ? is exactly one character
    assert not policy.check_environment("counts", "prod").allowed


def test_undeclared_environment_is_refused_with_the_allowed_list() -> None:
    policy = parse_policy(QUERIES)
    decision = policy.check_environment("prod-admin", "stag")
    assert not decision.allowed
    assert reason_text(decision) == (
        "Environment stag is not declared for profile prod-admin. Allowed: dev, prod."
        " An operator can declare more in the access policy."
    )
    assert policy.check_environment("prod-admin", "prod").allowed
    assert not policy.check_environment("unlisted", "dev").allowed


def test_everyone_may_approve_only_when_the_policy_says_so_and_doctor_hears_of_it() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            defaults:
              allow_everyone: true
              environments: {dev: }
            profiles:
              open-dev:
                approvers: ["*"]
              locked:
                approvers: [U1]
                environments:
                  prod: {approvers: ["*"], required_approvals: 2}
            """
        )
    )
    assert rule(policy, "open-dev", "dev").approvers.everyone
    assert policy_warnings(policy) == [
        "profile locked: everyone may approve (environment prod; allow_everyone: true) — only full"
        " members of this workspace count, never guests or Slack Connect users",
        "profile open-dev: everyone may approve (its own settings, environment dev; allow_everyone:"
        " true) — only full members of this workspace count, never guests or Slack Connect users",
    ]


# ---------------------------------------------------------------------------------------------
# Queries

QUERIES = """
defaults:
  environments: {dev: , prod: }
profiles:
  sandbox:
    requesters: ["*"]
    approvers: ["*"]
    allow_everyone: true
  dev-admin:
    requesters: [S0DEV, U0ALICE]
    approvers: [S0LEADS]
  prod-admin:
    requesters: [S0SRE]
    approvers: [U1, S2]
    environments:
      prod:
        approvers: [U0CTO, S0SEC]
        required_approvals: 2
"""

AVAILABLE = ["sandbox", "dev-admin", "prod-admin", "unlisted", "dev-admin"]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (user("U0NOBODY"), ["sandbox"]),
        (user("U0ALICE"), ["sandbox", "dev-admin"]),
        (user("U0BOB", "S0DEV"), ["sandbox", "dev-admin"]),
        (user("U0CAROL", "S0SRE", "S0DEV"), ["sandbox", "dev-admin", "prod-admin"]),
        (user("U0DAVE", "S0OTHER"), ["sandbox"]),
        (user("S0DEV"), ["sandbox"]),  # a user id equal to a group id is not membership
    ],
)
def test_profiles_for_filters_by_requester(who: SlackIdentity, expected: list[str]) -> None:
    assert parse_policy(QUERIES).profiles_for(who, AVAILABLE) == expected


@pytest.mark.parametrize(
    ("who", "profile", "allowed", "reason_words"),
    [
        (user("U0ANY"), "sandbox", True, []),
        (user("U0ALICE"), "dev-admin", True, []),
        (user("U0BOB", "S0DEV"), "dev-admin", True, []),
        (
            user("U0BOB"),
            "dev-admin",
            False,
            ["You may not request", "dev-admin", "<@U0ALICE>", "<!subteam^S0DEV>"],
        ),
        (user("U0BOB"), "unlisted", False, ["unlisted", "not in the access policy"]),
    ],
)
def test_can_request(who: SlackIdentity, profile: str, allowed: bool, reason_words: list[str]) -> None:
    decision = parse_policy(QUERIES).can_request(who, profile)
    assert decision.allowed is allowed
    for word in reason_words:
        assert word in reason_text(decision)


@pytest.mark.parametrize(
    ("who", "profile", "environment", "allowed"),
    [
        (user("U1"), "prod-admin", "dev", True),
        (user("U9", "S2"), "prod-admin", "dev", True),
        (user("U9"), "prod-admin", "dev", False),
        (user("U1"), "prod-admin", "prod", False),  # prod has its own approvers
        (user("U0CTO"), "prod-admin", "prod", True),
        (user("U9", "S0SEC"), "prod-admin", "prod", True),
        (user("U0CTO"), "prod-admin", "dev", False),
        (user("U0ANYONE"), "sandbox", "prod", True),
        (user("U0LEAD", "S0LEADS"), "dev-admin", "dev", True),
        (user("U0LEAD"), "unlisted", "dev", False),
    ],
)
def test_can_approve(who: SlackIdentity, profile: str, environment: str, allowed: bool) -> None:
    assert parse_policy(QUERIES).can_approve(who, profile, environment).allowed is allowed


def test_not_an_approver_reason_names_profile_and_approvers() -> None:
    decision = parse_policy(QUERIES).can_approve(user("U9"), "prod-admin", "dev")
    assert (
        reason_text(decision)
        == "You are not an approver for profile prod-admin. Approvers: <@U1>, <!subteam^S2>."
    )


def test_environment_specific_approvers_named_in_reason() -> None:
    decision = parse_policy(QUERIES).can_approve(user("U1"), "prod-admin", "prod")
    assert reason_text(decision) == (
        "You are not an approver for profile prod-admin in environment prod."
        " Approvers: <@U0CTO>, <!subteam^S0SEC>."
    )


def test_referenced_usergroups() -> None:
    assert referenced_usergroups(parse_policy(QUERIES)) == {"S0DEV", "S0LEADS", "S0SRE", "S2", "S0SEC"}
    assert referenced_usergroups(AccessPolicy.open(frozenset({"U1", "S5"}))) == {"S5"}


# ---------------------------------------------------------------------------------------------
# The open default


def test_open_policy_allows_every_profile_to_everyone() -> None:
    policy = AccessPolicy.open(frozenset({"U1", "S2"}))
    assert policy.is_open
    assert policy.profiles_for(user("U0ANY"), ["a", "b", "a"]) == ["a", "b"]
    assert policy.can_request(user("U0ANY"), "anything").allowed
    assert policy.role_for("anything") is None
    assert policy.can_approve(user("U1"), "anything", "prod").allowed
    assert policy.can_approve(user("U9", "S2"), "anything", "prod").allowed
    refused = policy.can_approve(user("U9"), "p1", "prod")
    assert not refused.allowed
    assert reason_text(refused) == "You are not an approver for profile p1. Approvers: <@U1>, <!subteam^S2>."
    rule = policy.approval_rule("p1", "prod")
    assert rule is not None
    assert rule.allow_self_approval is False
    assert rule.required_approvals == 1


def test_open_policy_accepts_every_environment_with_the_profile_settings() -> None:
    """Without a policy file (the development default) nothing is declared, so nothing is refused."""
    policy = AccessPolicy.open(frozenset({"U1"}))
    assert policy.check_environment("anything", "prd").allowed
    found = rule(policy, "anything", "prd")
    assert (found.required_approvals, found.allow_self_approval, found.strictest) == (1, False, False)
    assert policy_warnings(policy) == []


def test_open_policy_without_approvers_names_the_setting() -> None:
    decision = AccessPolicy.open(frozenset()).can_approve(user("U1"), "dev", "dev")
    assert not decision.allowed
    assert "ECS_DEPLOY_APPROVERS" in reason_text(decision)


@pytest.mark.parametrize("bad", ["bob", "@U1", "C123", "*", "u1"])
def test_open_policy_rejects_bad_approver_ids(bad: str) -> None:
    with pytest.raises(PolicyError) as caught:
        AccessPolicy.open(frozenset({"U1", bad}))
    assert "ECS_DEPLOY_APPROVERS" in str(caught.value)
    assert repr(bad) in str(caught.value)


def test_policy_from_settings(tmp_path: Path) -> None:
    assert policy_from_settings(None, frozenset({"U1"})).is_open
    path = write(tmp_path, "profiles:\n  dev:\n    approvers: [U1]\n    environments: {dev: }\n")
    loaded = policy_from_settings(path, frozenset({"U1"}))
    assert not loaded.is_open
    assert loaded.profiles_for(user("U1"), ["dev", "prod"]) == []  # no requesters listed: nobody


def test_policy_without_requesters_offers_nothing() -> None:
    policy = parse_policy("profiles:\n  dev:\n    approvers: [U1]\n    environments: {dev: }\n")
    decision = policy.can_request(user("U1"), "dev")
    assert not decision.allowed
    assert "Requesters: nobody" in reason_text(decision)
