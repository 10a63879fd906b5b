"""Destroys in the access policy (issue 13): `protected` (profile, environment, pattern),
`destroy_approvals` (default 2) and `allow_self_destroy_approval`, with their load errors; the rules
of core/destroy.py (typed confirmation, who may ask, refusals) and the destroy rule at approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.views.approval import click_text
from bot.views.destroy import confirmation_mismatch, destroy_summary_text, refusal_text
from core.approval import (
    ApprovalOutcome,
    ApprovalState,
    ClickContext,
    PlanBinding,
    new_plan,
    record_approval,
)
from core.destroy import DestroyRefusal, check_destroy, confirmation_matches, data_stores, is_protected
from core.environments import Environment, EnvironmentKey, EnvironmentStatus
from core.models import DeploymentRequest
from core.plan_summary import PlanAction, PlanCounts, PlanSummary, ResourceChange
from core.policy.access import AccessPolicy, destroy_warnings
from core.policy.principals import SlackIdentity, SlackMember
from tests.harness.policies import assert_refused, inline_policy

WORKSPACE = "T0HOME"
POLICY = """
defaults:
  requesters: ["*"]
  approvers: [U0LEAD1, U0LEAD2, U0REQ]
  environments:
    prod: {protected: true}
profiles:
  deployer:
    environments:
      dev:
      stag: {destroy_approvals: 3}
      "preview-*": {protected: true}
      "feature-*":
  careful:
    protected: true
    environments:
      dev:
      sandbox: {protected: false}
  relaxed:
    destroy_approvals: 1
    allow_self_destroy_approval: true
    environments:
      dev:
      prod: {protected: false, allow_self_destroy_approval: false}
"""


def policy(text: str = POLICY) -> AccessPolicy:
    return inline_policy(text)


def member(user_id: str) -> SlackIdentity:
    return SlackIdentity(user_id=user_id, member=SlackMember(team_id=WORKSPACE), workspace_team_id=WORKSPACE)


# -- the policy file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "environment", "protected"),
    [
        ("deployer", "prod", True),  # from defaults' prod
        ("deployer", "dev", False),
        ("deployer", "preview-42", True),  # a protected pattern
        ("deployer", "feature-x", False),  # an unprotected pattern
        ("careful", "dev", True),  # the profile's
        ("careful", "sandbox", False),  # lifted by name
        ("relaxed", "prod", False),  # lifted by the profile for defaults' prod
    ],
)
def test_protected_resolves_by_name_then_profile_then_pattern(
    profile: str, environment: str, protected: bool
) -> None:
    assert is_protected(policy(), profile, environment) is protected


def test_destroy_approvals_default_two_never_the_requester() -> None:
    found = policy()
    dev = found.approval_rule("deployer", "dev", destroy=True)
    assert dev is not None
    assert (dev.required_approvals, dev.allow_self_approval, dev.destroy) == (2, False, True)
    stag = found.approval_rule("deployer", "stag", destroy=True)
    assert stag is not None and stag.required_approvals == 3
    # a plan that is not a destroy keeps the ordinary rule
    ordinary = found.approval_rule("deployer", "stag")
    assert ordinary is not None and (ordinary.required_approvals, ordinary.destroy) == (1, False)


def test_a_destroy_never_needs_fewer_approvals_than_a_change_of_the_same_environment() -> None:
    found = policy(
        """
        profiles:
          acme:
            requesters: ["*"]
            approvers: [U0LEAD1, U0LEAD2, U0LEAD3, U0LEAD4]
            environments:
              prod: {required_approvals: 3}
              dev:
        """
    )
    for environment, needed in (("prod", 3), ("dev", 2)):
        change = found.approval_rule("acme", environment)
        destroy = found.approval_rule("acme", environment, destroy=True)
        assert change is not None and destroy is not None
        assert destroy.required_approvals == needed >= change.required_approvals


def test_an_environment_matched_only_by_a_pattern_needs_the_most_destroy_approvals() -> None:
    rule = policy().approval_rule("deployer", "feature-x", destroy=True)
    assert rule is not None and rule.required_approvals == 3 and not rule.allow_self_approval


def test_self_destroy_approval_per_profile_and_environment() -> None:
    found = policy()
    dev = found.approval_rule("relaxed", "dev", destroy=True)
    prod = found.approval_rule("relaxed", "prod", destroy=True)
    assert dev is not None and (dev.required_approvals, dev.allow_self_approval) == (1, True)
    assert prod is not None and prod.allow_self_approval is False


def test_the_open_policy_needs_two_destroy_approvals_and_protects_nothing() -> None:
    open_policy = AccessPolicy.open(frozenset({"U0LEAD1"}))
    rule = open_policy.approval_rule("any", "prod", destroy=True)
    assert rule is not None and (rule.required_approvals, rule.protected) == (2, False)
    assert destroy_warnings(open_policy) == [
        "every profile (ECS_DEPLOY_APPROVERS) (its own settings): a destroy needs 2 approvals (destroy_approvals, default 2) but"
        " only 1 approver(s) are listed: it can never be destroyed from Slack"
    ]


def test_the_default_with_too_few_named_approvers_only_warns() -> None:
    loaded = policy(
        """
        profiles:
          solo:
            approvers: [U0LEAD1]
            environments: {dev: , prod: {protected: true}}
        """
    )
    assert destroy_warnings(loaded) == [
        "profile solo (its own settings): a destroy needs 2 approvals (destroy_approvals, default 2) but"
        " only 1 approver(s) are listed: it can never be destroyed from Slack",
        "profile solo (dev): a destroy needs 2 approvals (destroy_approvals, default 2) but only 1"
        " approver(s) are listed: it can never be destroyed from Slack",
    ]
    assert destroy_warnings(policy()) == []


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1]
                destroy_approvals: 2
                environments: {dev: }
            """,
            4,
            "profiles.p.destroy_approvals",
            ["a destroy requires 2 approvals but only 1 approver(s) are listed (U1)", "allow_self_destroy"],
            id="explicit-destroy-approvals-nobody-can-meet",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1, U2]
                environments:
                  prod: {destroy_approvals: 3}
            """,
            5,
            "profiles.p.environments.prod.destroy_approvals",
            ["a destroy requires 3 approvals but only 2 approver(s) are listed (U1, U2)"],
            id="environment-destroy-approvals-nobody-can-meet",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1, U2]
                destroy_approvals: 0
                environments: {dev: }
            """,
            4,
            "profiles.p.destroy_approvals",
            ["greater than or equal to 1"],
            id="zero-destroy-approvals",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1, U2]
                protected: "yes"
                environments: {dev: }
            """,
            4,
            "profiles.p.protected",
            ["bool"],
            id="protected-not-a-boolean",
        ),
        pytest.param(
            """
            profiles:
              p:
                approvers: [U1, U2]
                environments:
                  dev:
                  "feature-*": {protected: true, destroy_approvals: 2}
            """,
            6,
            "profiles.p.environments.feature-*",
            ["takes no settings but protected"],
            id="pattern-with-destroy-approvals",
        ),
    ],
)
def test_destroy_keys_load_errors_name_line_and_key(text: str, line: int, key: str, words: list[str]) -> None:
    assert_refused(text, line, key, words)


# -- the rules of core/destroy.py ----------------------------------------------------------------------


def environment(name: str = "dev", profile: str = "deployer", **changes: object) -> Environment:
    request = DeploymentRequest.model_validate(
        {
            "profile": profile,
            "account_situation": "new",
            "size": "small",
            "account_id": "123456789012",
            "region": "us-east-1",
            "application": "web",
            "environment": name,
        }
    )
    at = datetime(2025, 1, 1, tzinfo=UTC)
    env = Environment(
        key=EnvironmentKey(
            application="web", environment=name, account_id="123456789012", region="us-east-1"
        ),
        request=request,
        repo_commit="a" * 40,
        created_at=at,
        updated_at=at,
    )
    return env.model_copy(update=changes)


@pytest.mark.parametrize(
    ("typed", "matches"),
    [
        ("web/dev", True),
        ("  web/dev ", True),
        ("Web/dev", False),
        ("web/de", False),
        ("", False),
        (None, False),
    ],
)
def test_the_typed_confirmation_is_exactly_app_slash_env(typed: str | None, matches: bool) -> None:
    assert confirmation_matches(typed, environment().key) is matches


def test_refusals_in_order_with_their_words() -> None:
    found = policy(POLICY.replace('requesters: ["*"]', "requesters: [U0REQ]"))  # only U0REQ may request
    stranger = check_destroy(found, member("U0OTHER"), environment(), None)
    assert stranger.refusal is DestroyRefusal.NOT_ALLOWED
    assert refusal_text(stranger).startswith("You cannot destroy web/dev:")

    gone = check_destroy(found, member("U0REQ"), environment(status=EnvironmentStatus.DESTROYED), None)
    assert gone.refusal is DestroyRefusal.ALREADY_DESTROYED and "already destroyed" in refusal_text(gone)

    protected = check_destroy(found, member("U0REQ"), environment("prod"), None)
    assert protected.refusal is DestroyRefusal.PROTECTED
    words = refusal_text(protected)
    assert "cannot be destroyed from Slack" in words
    assert "`protected: false` under `profiles.deployer.environments.prod`" in words
    assert "ecs-deploy-bot doctor" in words and "ECS_DEPLOY_POLICY_FILE" in words

    busy = check_destroy(found, member("U0REQ"), environment(), "d-0pen0001")
    assert busy.refusal is DestroyRefusal.OPEN_DEPLOYMENT and "d-0pen0001" in refusal_text(busy)

    assert check_destroy(found, member("U0REQ"), environment(), None).allowed
    assert "Type exactly web/dev" in confirmation_mismatch(environment().key)


def test_undeclared_environment_is_refused() -> None:
    answer = check_destroy(policy(), member("U0REQ"), environment("qa"), None)
    assert answer.refusal is DestroyRefusal.UNDECLARED


# -- approval of a destroy's plan ----------------------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)


def planned() -> ApprovalState:
    binding = PlanBinding(
        plan_sha256="b" * 64, repo_commit="c" * 40, tfvars_sha256="d" * 64, plan_created_at=NOW, attempt=1
    )
    return new_plan(ApprovalState(), binding, required_approvals=2)


def approve(state: ApprovalState, user: str, environment: str = "dev", text: str = POLICY) -> object:
    click = ClickContext(
        user=member(user),
        profile="deployer",
        environment=environment,
        requester_id="U0REQ",
        binding_seen=state.binding,
        now=NOW + timedelta(minutes=1),
    )
    return record_approval(state, policy(text), click, destroy=True)


def test_two_distinct_approvers_not_the_requester() -> None:
    state = planned()
    own = approve(state, "U0REQ")
    assert own.outcome is ApprovalOutcome.REFUSED_SELF_APPROVAL  # type: ignore[attr-defined]
    first = approve(state, "U0LEAD1")
    assert first.outcome is ApprovalOutcome.APPROVED_WAITING  # type: ignore[attr-defined]
    state = first.state  # type: ignore[attr-defined]
    assert (len(state.current_approvals), state.required_approvals) == (1, 2)
    again = approve(state, "U0LEAD1")
    assert again.outcome is ApprovalOutcome.REFUSED_ALREADY_APPROVED  # type: ignore[attr-defined]
    second = approve(state, "U0LEAD2")
    assert second.outcome is ApprovalOutcome.APPROVED_READY  # type: ignore[attr-defined]


def test_a_protected_environment_cannot_be_approved_even_with_its_plan_waiting() -> None:
    """The policy changed after the plan: prod is protected now."""
    result = approve(planned(), "U0LEAD1", environment="prod")
    assert result.outcome is ApprovalOutcome.REFUSED_PROTECTED  # type: ignore[attr-defined]
    assert "protected by the access policy" in click_text(result)  # type: ignore[arg-type]
    assert not result.state.current_approvals  # type: ignore[attr-defined]


# -- the destroy plan's summary --------------------------------------------------------------------------


def test_data_stores_are_named_after_the_counts() -> None:
    changes = (
        ResourceChange(
            address="module.db.aws_rds_cluster.this", type="aws_rds_cluster", action=PlanAction.DELETE
        ),
        ResourceChange(address="aws_s3_bucket.assets", type="aws_s3_bucket", action=PlanAction.DELETE),
        ResourceChange(address="aws_ecs_cluster.main", type="aws_ecs_cluster", action=PlanAction.DELETE),
    )
    summary = PlanSummary(format_version="1.2", counts=PlanCounts(to_destroy=3), changes=changes)
    stores = data_stores(summary)
    assert [c.address for c in stores] == ["module.db.aws_rds_cluster.this", "aws_s3_bucket.assets"]
    text = destroy_summary_text(summary, stores)
    lines = text.splitlines()
    assert lines[0] == "*3 resources will be destroyed.*"
    assert "Aurora/RDS cluster: `module.db.aws_rds_cluster.this`" in text and "S3 bucket" in text
    assert "aws_ecs_cluster" not in text
    assert "state bucket and the lock table are kept" in lines[-1]
