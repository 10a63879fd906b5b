"""Approval integrity: who may approve, distinct approvers, self-approval, plan binding, expiry,
rejection, one-way decisions, and the last check before apply."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from bot.views.approval import MEMBERSHIP_TEXT, applyability_text, click_text, decision_text
from core.apply_gate import is_applyable
from core.approval import (
    DEFAULT_APPROVAL_TTL,
    MAX_CLICKS,
    ApprovalOutcome,
    ApprovalResult,
    ApprovalState,
    ClickAction,
    ClickContext,
    PlanBinding,
    member_may_approve,
    new_plan,
    record_approval,
    record_rejection,
)
from core.policy.access import AccessPolicy
from core.policy.loading import parse_policy
from core.policy.principals import SlackIdentity, SlackMember

Out = ApprovalOutcome
PLANNED_AT = datetime(2025, 3, 4, 13, 50, tzinfo=UTC)
HASH_A = "3f2a9c1b" + "0" * 56
HASH_B = "9b1c0d2e" + "1" * 56
TFVARS = "ab" * 32
COMMIT = "c0ffee" + "0" * 34

POLICY = parse_policy(
    textwrap.dedent(
        """
        defaults:
          requesters: ["*"]
          environments: {dev: }
        profiles:
          dev-admin:
            approvers: [U1, U2, U3, S9]
            environments:
              prod: {required_approvals: 2}
          self-ok:
            approvers: [U1, U2]
            allow_self_approval: true
            environments:
              prod: {required_approvals: 2, allow_self_approval: false}
              "*":
        """
    )
)
REQUESTER = "U0REQ"
WORKSPACE = "T0HOME"
FULL_MEMBER = SlackMember(team_id=WORKSPACE)


def member(
    user_id: str, groups: frozenset[str] = frozenset(), facts: SlackMember | None = FULL_MEMBER
) -> SlackIdentity:
    """A user as the Slack side resolves them: by default a full member of the installed workspace."""
    return SlackIdentity(user_id=user_id, group_ids=groups, member=facts, workspace_team_id=WORKSPACE)


def binding(attempt: int = 1, plan: str = HASH_A, **changes: object) -> PlanBinding:
    fields: dict[str, object] = {
        "plan_sha256": plan,
        "repo_commit": COMMIT,
        "tfvars_sha256": TFVARS,
        "plan_created_at": PLANNED_AT,
        "attempt": attempt,
    }
    fields.update(changes)
    return PlanBinding.model_validate(fields)


CURRENT = "current"  # the button was rendered for the state's current plan


def seen_binding(state: ApprovalState, seen: PlanBinding | str | None) -> PlanBinding | None:
    return state.binding if seen == CURRENT else (seen if isinstance(seen, PlanBinding) else None)


def at(minutes: float) -> datetime:
    return PLANNED_AT + timedelta(minutes=minutes)


def planned(required: int | None = None, b: PlanBinding | None = None) -> ApprovalState:
    return new_plan(ApprovalState(), b or binding(), required_approvals=required)


def approve(
    state: ApprovalState,
    user_id: str,
    *,
    groups: frozenset[str] = frozenset(),
    profile: str = "dev-admin",
    environment: str = "prod",
    seen: PlanBinding | str | None = CURRENT,
    minutes: float = 12,
    requester: str = REQUESTER,
    policy: AccessPolicy = POLICY,
    ttl: timedelta = DEFAULT_APPROVAL_TTL,
    authors: frozenset[str] = frozenset(),
    facts: SlackMember | None = FULL_MEMBER,
) -> ApprovalResult:
    click = ClickContext(
        user=member(user_id, groups, facts),
        profile=profile,
        environment=environment,
        requester_id=requester,
        binding_seen=seen_binding(state, seen),
        now=at(minutes),
    )
    return record_approval(state, policy, click, value_authors=authors, ttl=ttl)


def reject(
    state: ApprovalState,
    user_id: str,
    *,
    profile: str = "dev-admin",
    environment: str = "prod",
    seen: PlanBinding | str | None = CURRENT,
    minutes: float = 12,
    reason: str = "",
) -> ApprovalResult:
    click = ClickContext(
        user=SlackIdentity(user_id=user_id),
        profile=profile,
        environment=environment,
        requester_id=REQUESTER,
        binding_seen=seen_binding(state, seen),
        now=at(minutes),
    )
    return record_rejection(state, POLICY, click, reason=reason)


# ---------------------------------------------------------------------------------------------
# Click sequences: each step is (action, user, options) -> expected outcome; the last column is
# the set of distinct approvers that must be counted at the end.

Step = tuple[str, str, dict[str, object], ApprovalOutcome]

SCENARIOS: list[tuple[str, str, list[Step], list[str]]] = [
    ("non-approver refused", "prod", [("approve", "U7", {}, Out.REFUSED_NOT_APPROVER)], []),
    (
        "profile not in policy",
        "prod",
        [("approve", "U1", {"profile": "unlisted"}, Out.REFUSED_NOT_APPROVER)],
        [],
    ),
    (
        "requester who is an approver refused",
        "dev",
        [("approve", "U1", {"requester": "U1"}, Out.REFUSED_SELF_APPROVAL)],
        [],
    ),
    (
        "environment the profile does not declare",
        "prd",
        [("approve", "U1", {}, Out.REFUSED_UNDECLARED_ENVIRONMENT)],
        [],
    ),
    (
        "environment declared by a pattern only: the strictest rule forbids self-approval",
        "prd",
        [
            ("approve", "U1", {"requester": "U1", "profile": "self-ok"}, Out.REFUSED_SELF_APPROVAL),
            ("approve", "U2", {"requester": "U1", "profile": "self-ok"}, Out.APPROVED_WAITING),
        ],
        ["U2"],
    ),
    (
        "requester allowed to self-approve where the profile allows it",
        "dev",
        [("approve", "U1", {"requester": "U1", "profile": "self-ok"}, Out.APPROVED_READY)],
        ["U1"],
    ),
    (
        "environment forbids self-approval although the profile allows it",
        "prod",
        [("approve", "U1", {"requester": "U1", "profile": "self-ok"}, Out.REFUSED_SELF_APPROVAL)],
        [],
    ),
    (
        "dev needs one approval",
        "dev",
        [("approve", "U1", {}, Out.APPROVED_READY)],
        ["U1"],
    ),
    (
        "prod needs two distinct approvers",
        "prod",
        [("approve", "U1", {}, Out.APPROVED_WAITING), ("approve", "U2", {}, Out.APPROVED_READY)],
        ["U1", "U2"],
    ),
    (
        "same approver twice does not count twice",
        "prod",
        [
            ("approve", "U1", {}, Out.APPROVED_WAITING),
            ("approve", "U1", {"minutes": 13}, Out.REFUSED_ALREADY_APPROVED),
            ("approve", "U1", {"minutes": 14}, Out.REFUSED_ALREADY_APPROVED),
        ],
        ["U1"],
    ),
    (
        "group member counts as an approver",
        "prod",
        [
            ("approve", "U0GRP", {"groups": frozenset({"S9"})}, Out.APPROVED_WAITING),
            ("approve", "U0OUT", {"groups": frozenset({"S8"})}, Out.REFUSED_NOT_APPROVER),
            ("approve", "U3", {}, Out.APPROVED_READY),
        ],
        ["U0GRP", "U3"],
    ),
    (
        "guests and other organisations never count, even when listed as approvers",
        "prod",
        [
            (
                "approve",
                "U1",
                {"facts": SlackMember(team_id=WORKSPACE, is_restricted=True)},
                Out.REFUSED_NOT_FULL_MEMBER,
            ),
            (
                "approve",
                "U2",
                {"facts": SlackMember(team_id=WORKSPACE, is_ultra_restricted=True)},
                Out.REFUSED_NOT_FULL_MEMBER,
            ),
            ("approve", "U3", {"facts": SlackMember(team_id="T0OTHERORG")}, Out.REFUSED_NOT_FULL_MEMBER),
            ("approve", "U0GRP", {"groups": frozenset({"S9"}), "facts": None}, Out.REFUSED_NOT_FULL_MEMBER),
            ("approve", "U1", {}, Out.APPROVED_WAITING),
        ],
        ["U1"],
    ),
    (
        "refused clicks do not count toward the requirement",
        "prod",
        [
            ("approve", "U7", {}, Out.REFUSED_NOT_APPROVER),
            ("approve", REQUESTER, {"groups": frozenset({"S9"})}, Out.REFUSED_SELF_APPROVAL),
            ("approve", "U1", {}, Out.APPROVED_WAITING),
        ],
        ["U1"],
    ),
    (
        "approval after ready is already decided (double click)",
        "dev",
        [("approve", "U1", {}, Out.APPROVED_READY), ("approve", "U1", {}, Out.REFUSED_ALREADY_DECIDED)],
        ["U1"],
    ),
    (
        "second lead after ready is already decided",
        "prod",
        [
            ("approve", "U1", {}, Out.APPROVED_WAITING),
            ("approve", "U2", {}, Out.APPROVED_READY),
            ("approve", "U3", {}, Out.REFUSED_ALREADY_DECIDED),
        ],
        ["U1", "U2"],
    ),
    (
        "non-approver after ready is told it is decided",
        "dev",
        [("approve", "U1", {}, Out.APPROVED_READY), ("approve", "U7", {}, Out.REFUSED_ALREADY_DECIDED)],
        ["U1"],
    ),
    (
        "rejection then approval refused",
        "prod",
        [("reject", "U2", {}, Out.REJECTED), ("approve", "U1", {}, Out.REFUSED_ALREADY_DECIDED)],
        [],
    ),
    (
        "approval, then rejection by another approver, then approval refused",
        "prod",
        [
            ("approve", "U1", {}, Out.APPROVED_WAITING),
            ("reject", "U2", {}, Out.REJECTED),
            ("approve", "U3", {}, Out.REFUSED_ALREADY_DECIDED),
        ],
        ["U1"],
    ),
    (
        "an approver may reject after approving",
        "prod",
        [("approve", "U1", {}, Out.APPROVED_WAITING), ("reject", "U1", {}, Out.REJECTED)],
        ["U1"],
    ),
    (
        "rejection after ready is refused",
        "dev",
        [("approve", "U1", {}, Out.APPROVED_READY), ("reject", "U2", {}, Out.REFUSED_ALREADY_DECIDED)],
        ["U1"],
    ),
    (
        "rejection twice",
        "dev",
        [("reject", "U1", {}, Out.REJECTED), ("reject", "U2", {}, Out.REFUSED_ALREADY_DECIDED)],
        [],
    ),
    ("requester may withdraw", "prod", [("reject", REQUESTER, {}, Out.REJECTED)], []),
    ("non-approver may not reject", "prod", [("reject", "U7", {}, Out.REFUSED_NOT_APPROVER)], []),
    (
        "stale approve button refused",
        "prod",
        [("approve", "U1", {"seen": binding(attempt=1, plan=HASH_B)}, Out.REFUSED_STALE_PLAN)],
        [],
    ),
    (
        "button without a binding refused",
        "prod",
        [("approve", "U1", {"seen": None}, Out.REFUSED_STALE_PLAN)],
        [],
    ),
    (
        "stale reject button refused",
        "prod",
        [("reject", "U1", {"seen": binding(attempt=1, tfvars_sha256="cd" * 32)}, Out.REFUSED_STALE_PLAN)],
        [],
    ),
    (
        "approval one microsecond before the TTL counts",
        "dev",
        [("approve", "U1", {"minutes": 24 * 60 - 1e-6 / 60}, Out.APPROVED_READY)],
        ["U1"],
    ),
    (
        "approval exactly at the TTL is expired",
        "dev",
        [("approve", "U1", {"minutes": 24 * 60}, Out.REFUSED_EXPIRED)],
        [],
    ),
    (
        "approval after the TTL is expired",
        "dev",
        [("approve", "U1", {"minutes": 24 * 60 + 1}, Out.REFUSED_EXPIRED)],
        [],
    ),
    (
        "custom TTL",
        "dev",
        [
            ("approve", "U1", {"minutes": 30, "ttl": timedelta(minutes=30)}, Out.REFUSED_EXPIRED),
            ("approve", "U1", {"minutes": 29, "ttl": timedelta(minutes=30)}, Out.APPROVED_READY),
        ],
        ["U1"],
    ),
    (
        "an expired plan may still be rejected",
        "dev",
        [("reject", "U1", {"minutes": 48 * 60}, Out.REJECTED)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("environment", "steps", "counted"),
    [pytest.param(env, steps, counted, id=name) for name, env, steps, counted in SCENARIOS],
)
def test_click_sequences(environment: str, steps: list[Step], counted: list[str]) -> None:
    state = planned()
    for number, (action, user_id, options, expected) in enumerate(steps, start=1):
        before = state.model_dump()
        options = {"environment": environment, **options}
        if action == "approve":
            result = approve(state, user_id, **options)  # type: ignore[arg-type]
        else:
            result = reject(state, user_id, **options)  # type: ignore[arg-type]
        assert state.model_dump() == before, "a transition must not mutate its input"
        assert result.outcome is expected, f"step {number}: {click_text(result)}"
        assert result.allowed is (expected in (Out.APPROVED_READY, Out.APPROVED_WAITING, Out.REJECTED))
        assert result.apply_now is (expected is Out.APPROVED_READY)
        assert click_text(result)
        click = result.state.clicks[-1]
        assert (click.user_id, click.action, click.allowed, click.outcome) == (
            user_id,
            ClickAction(action),
            result.allowed,
            expected,
        )
        assert len(result.state.clicks) == number, "every click, allowed or not, is recorded"
        state = result.state
    assert state.approver_ids == counted


def test_exactly_one_click_yields_ready() -> None:
    """The caller serialises clicks (Redis transaction); whatever the order, one READY in total."""
    for order in (["U1", "U2", "U3", "U1"], ["U3", "U3", "U2", "U1"], ["U2", "U1", "U2", "U3"]):
        state = planned()
        outcomes = []
        for user_id in order:
            result = approve(state, user_id, environment="prod")
            outcomes.append(result.outcome)
            state = result.state
        assert outcomes.count(Out.APPROVED_READY) == 1, outcomes


def test_refused_click_leaves_everything_but_the_audit_trail_unchanged() -> None:
    state = approve(planned(), "U1").state
    result = approve(state, "U7")
    assert result.state.model_dump(exclude={"clicks"}) == state.model_dump(exclude={"clicks"})
    assert result.state.clicks[-1].facts == result.facts  # the audit trail keeps why
    message = click_text(result)
    assert "<@U1>" in message and "<!subteam^S9>" in message  # who can approve


def test_each_click_is_named_for_the_audit_trail_with_the_plan_it_concerned() -> None:
    approved = approve(planned(), "U1")
    assert (approved.audit_event, approved.plan_sha256) == ("approval", HASH_A)
    assert approve(planned(), "U7").audit_event == "approval_refused"
    assert reject(planned(), REQUESTER).audit_event == "rejection"
    assert reject(planned(), "U7").audit_event == "rejection_refused"
    no_plan = reject(ApprovalState(), REQUESTER)
    assert no_plan.audit_event == "rejection_refused" and no_plan.plan_sha256 is None


def test_self_approval_message_explains() -> None:
    result = approve(planned(), "U1", requester="U1", environment="dev")
    assert "cannot approve it yourself" in click_text(result)


def test_an_approver_who_set_values_cannot_approve_the_plan_alone() -> None:
    """A lead who edited the size or gave the DNS name would otherwise review their own change."""
    refused = approve(planned(), "U1", environment="dev", authors=frozenset({"U1"}))
    assert refused.outcome is Out.REFUSED_SELF_APPROVAL and "You set values" in click_text(refused)
    other = approve(planned(), "U2", environment="dev", authors=frozenset({"U1"}))
    assert other.outcome is Out.APPROVED_READY
    allowed = approve(planned(), "U1", profile="self-ok", environment="dev", authors=frozenset({"U1"}))
    assert allowed.outcome is Out.APPROVED_READY


def test_a_rejection_reason_cannot_mention_or_link_in_slack() -> None:
    rejected = reject(
        planned(), "U1", environment="dev", reason="<!channel> see <https://evil|the plan> & more"
    )
    text = decision_text(rejected.state, environment="dev")
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; see &lt;https://evil|the plan&gt; &amp; more" in text


def test_approval_uses_live_policy_requirement() -> None:
    state = planned(required=1)
    result = approve(state, "U1", environment="prod")
    assert result.outcome is Out.APPROVED_WAITING
    assert result.state.required_approvals == 2


def test_approval_is_bound_to_current_binding_and_time() -> None:
    result = approve(planned(), "U1", minutes=12, environment="dev")
    (approval,) = result.state.approvals
    assert approval.binding == binding()
    assert approval.at == at(12)
    assert approval.approver_id == "U1"


def test_rejection_records_reason_and_withdrawal() -> None:
    by_approver = reject(planned(), "U2", reason="  too many destroys  ").state.rejection
    assert by_approver is not None
    assert (by_approver.by, by_approver.reason, by_approver.by_requester) == (
        "U2",
        "too many destroys",
        False,
    )
    withdrawn = reject(planned(), REQUESTER).state.rejection
    assert withdrawn is not None and withdrawn.by_requester


# ---------------------------------------------------------------------------------------------
# Who counts (issue 10, finding 7)


@pytest.mark.parametrize(
    ("facts", "workspace", "allowed", "words"),
    [
        (SlackMember(team_id=WORKSPACE), WORKSPACE, True, ["full member"]),
        (SlackMember(team_id=WORKSPACE, is_restricted=True), WORKSPACE, False, ["Guests"]),
        (SlackMember(team_id=WORKSPACE, is_ultra_restricted=True), WORKSPACE, False, ["Guests"]),
        (SlackMember(team_id="T0OTHERORG"), WORKSPACE, False, ["another organisation", "Slack Connect"]),
        (SlackMember(team_id=None), WORKSPACE, False, ["another organisation"]),
        (SlackMember(team_id=WORKSPACE, deleted=True), WORKSPACE, False, ["deactivated"]),
        (SlackMember(team_id=WORKSPACE, is_bot=True), WORKSPACE, False, ["bots"]),
        (None, WORKSPACE, False, ["could not confirm"]),  # users.info failed: fail closed
        (SlackMember(team_id=WORKSPACE), None, False, ["could not confirm"]),  # auth.test failed
    ],
)
def test_member_may_approve(
    facts: SlackMember | None, workspace: str | None, allowed: bool, words: list[str]
) -> None:
    user = SlackIdentity(user_id="U1", member=facts, workspace_team_id=workspace)
    membership = member_may_approve(user)
    assert membership.may_approve is allowed
    for word in words:
        assert word in MEMBERSHIP_TEXT[membership]


def test_two_guests_cannot_make_a_two_approver_plan_ready() -> None:
    """The attack: with approvers anyone could be (a group holding guests, or allow_everyone), two
    guests or Slack Connect users click Approve on a prod plan. Neither counts; nothing is applied."""
    state = planned()
    guest = approve(state, "U1", facts=SlackMember(team_id=WORKSPACE, is_ultra_restricted=True))
    stranger = approve(guest.state, "U2", facts=SlackMember(team_id="T0OTHERORG"))
    assert (guest.outcome, stranger.outcome) == (Out.REFUSED_NOT_FULL_MEMBER,) * 2
    assert stranger.state.approver_ids == [] and not stranger.state.is_ready
    assert [c.outcome for c in stranger.state.clicks] == [Out.REFUSED_NOT_FULL_MEMBER] * 2
    assert not is_applyable(stranger.state, binding(), at(20)).allowed


def test_the_membership_rule_holds_for_a_policy_that_lets_everyone_approve() -> None:
    everyone = parse_policy(
        'profiles:\n  open:\n    requesters: ["*"]\n    approvers: ["*"]\n    allow_everyone: true\n'
        "    environments: {prod: {required_approvals: 2}}\n"
    )
    state = planned()
    for user_id, facts in (
        ("U0GUEST1", SlackMember(team_id=WORKSPACE, is_restricted=True)),
        ("U0EXT1", None),
    ):
        result = approve(state, user_id, profile="open", policy=everyone, facts=facts)
        assert result.outcome is Out.REFUSED_NOT_FULL_MEMBER
        state = result.state
    first = approve(state, "U0ANY1", profile="open", policy=everyone)
    second = approve(first.state, "U0ANY2", profile="open", policy=everyone)
    assert (first.outcome, second.outcome) == (Out.APPROVED_WAITING, Out.APPROVED_READY)


def test_an_undeclared_environment_cannot_be_approved_even_by_an_approver() -> None:
    result = approve(planned(), "U1", environment="production")
    assert result.outcome is Out.REFUSED_UNDECLARED_ENVIRONMENT
    assert "Environment production is not declared for profile dev-admin" in click_text(result)
    assert result.state.approver_ids == []


# ---------------------------------------------------------------------------------------------
# New plans


def test_new_plan_discards_approvals_and_rejection_but_keeps_clicks() -> None:
    first = approve(planned(), "U1").state
    first = reject(first, "U2").state
    second = new_plan(first, binding(attempt=2, plan=HASH_B))
    assert second.approvals == () and second.rejection is None
    assert second.clicks == first.clicks
    assert second.binding == binding(attempt=2, plan=HASH_B)
    # U1 must approve again, and still needs a second person.
    assert approve(second, "U1").outcome is Out.APPROVED_WAITING


def test_old_button_cannot_approve_new_plan_even_with_same_hash() -> None:
    state = new_plan(approve(planned(), "U1").state, binding(attempt=2))  # identical plan, new attempt
    result = approve(state, "U2", seen=binding(attempt=1))
    assert result.outcome is Out.REFUSED_STALE_PLAN
    assert "attempt 2" in click_text(result)


def test_new_plan_attempt_must_increase() -> None:
    state = planned(b=binding(attempt=3))
    for attempt in (1, 3):
        with pytest.raises(ValueError, match="attempt"):
            new_plan(state, binding(attempt=attempt, plan=HASH_B))
    assert new_plan(state, binding(attempt=4)).binding == binding(attempt=4)


def test_new_plan_sets_required_approvals() -> None:
    assert planned(required=3).required_approvals == 3
    assert new_plan(planned(required=3), binding(attempt=2)).required_approvals == 3


def test_no_plan_yet_refuses_clicks() -> None:
    state = ApprovalState()
    assert approve(state, "U1", seen=binding()).outcome is Out.REFUSED_STALE_PLAN
    assert reject(state, "U1", seen=binding()).outcome is Out.REFUSED_STALE_PLAN


def test_clicks_are_capped() -> None:
    state = planned()
    for _ in range(MAX_CLICKS + 5):
        state = approve(state, "U7").state
    assert len(state.clicks) == MAX_CLICKS


# ---------------------------------------------------------------------------------------------
# The last check before apply


def ready_prod() -> ApprovalState:
    state = approve(planned(), "U1", minutes=12).state
    return approve(state, "U2", minutes=15).state


@pytest.mark.parametrize(
    ("state_factory", "on_disk", "minutes", "allowed", "words"),
    [
        (ready_prod, binding(), 20, True, ["<@U1>", "<@U2>", "3f2a9c1b"]),
        (ready_prod, binding(plan=HASH_B), 20, False, ["plan_sha256"]),
        (ready_prod, binding(tfvars_sha256="cd" * 32), 20, False, ["tfvars_sha256"]),
        (ready_prod, binding(repo_commit="deadbeef"), 20, False, ["repo_commit"]),
        (ready_prod, binding(attempt=2), 20, False, ["attempt"]),
        (ready_prod, binding(state_serial=7), 20, False, ["state_serial"]),
        (ready_prod, None, 20, False, ["missing"]),
        (ready_prod, binding(), 24 * 60, False, ["expired"]),
        (ready_prod, binding(), 24 * 60 + 5, False, ["expired"]),
        (lambda: approve(planned(), "U1").state, binding(), 20, False, ["1 more approval"]),
        (lambda: planned(2), binding(), 20, False, ["2 more approvals"]),
        (planned, binding(), 20, False, ["1 more approval"]),
        (lambda: reject(planned(), "U2", reason="no").state, binding(), 20, False, ["Rejected by <@U2>: no"]),
        (ApprovalState, binding(), 20, False, ["no plan"]),
    ],
)
def test_is_applyable(
    state_factory: Callable[[], ApprovalState],
    on_disk: PlanBinding | None,
    minutes: float,
    allowed: bool,
    words: list[str],
) -> None:
    state = state_factory()
    decision = is_applyable(state, on_disk, at(minutes))
    assert decision.allowed is allowed, applyability_text(decision)
    for word in words:
        assert word in applyability_text(decision)


def test_is_applyable_ignores_approvals_for_another_binding() -> None:
    # A hand-built state whose approvals were given for an earlier plan: they must not count.
    old = approve(planned(), "U1", environment="dev").state
    forged = old.model_copy(update={"binding": binding(attempt=2)})
    assert not is_applyable(forged, binding(attempt=2), at(20)).allowed


# ---------------------------------------------------------------------------------------------
# Text


def test_decision_text() -> None:
    one = approve(planned(), "U1", minutes=12, environment="dev").state
    assert decision_text(one, environment="dev") == "Approved by <@U1> at 14:02 UTC (plan 3f2a9c1b…)"

    waiting = approve(planned(), "U1", minutes=12).state
    assert decision_text(waiting, environment="prod") == (
        "Approved by <@U1> — 1 more approval needed (prod requires 2)"
    )

    both = approve(waiting, "U2", minutes=15).state
    assert decision_text(both, environment="prod") == (
        "Approved by <@U1> at 14:02 UTC and <@U2> at 14:05 UTC (plan 3f2a9c1b…)"
    )

    rejected = reject(planned(), "U2", reason="too many destroys").state
    assert decision_text(rejected) == "Rejected by <@U2>: too many destroys"
    assert decision_text(reject(planned(), "U2").state) == "Rejected by <@U2>"
    assert decision_text(reject(planned(), REQUESTER).state).startswith("Withdrawn")

    assert "2 more approvals needed (prod requires 2)" in decision_text(planned(2), environment="prod")
    assert decision_text(ApprovalState()) == "No plan yet."


def test_decision_text_converts_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    click = ClickContext(
        user=member("U1"),
        profile="dev-admin",
        environment="dev",
        requester_id=REQUESTER,
        binding_seen=binding(),
        now=datetime(2025, 3, 4, 15, 2, tzinfo=cet),
    )
    state = record_approval(planned(), POLICY, click).state
    assert "at 14:02 UTC" in decision_text(state)


# ---------------------------------------------------------------------------------------------
# Models and guards


@pytest.mark.parametrize(
    "changes",
    [
        {"plan_sha256": "xyz"},
        {"plan_sha256": "a" * 63},
        {"tfvars_sha256": "g" * 64},
        {"repo_commit": "abc"},
        {"plan_created_at": datetime(2025, 3, 4, 13, 50)},  # naive
        {"attempt": 0},
        {"state_serial": -1},
        {"unknown": 1},
    ],
)
def test_plan_binding_validation(changes: dict[str, object]) -> None:
    valid = binding().model_dump()
    with pytest.raises(ValidationError):
        PlanBinding.model_validate({**valid, **changes})


def test_plan_binding_normalises_and_shortens() -> None:
    b = binding(plan=HASH_A.upper())
    assert b.plan_sha256 == HASH_A
    assert b.short == "3f2a9c1b…"


def test_state_round_trips_through_json() -> None:
    state = reject(approve(planned(), "U1").state, "U2", reason="r").state
    assert ApprovalState.model_validate_json(state.model_dump_json()) == state


def test_state_is_frozen() -> None:
    state = planned()
    with pytest.raises(ValidationError):
        state.required_approvals = 5  # type: ignore[misc]


def test_naive_now_and_bad_ttl_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone"):
        is_applyable(planned(), binding(), datetime(2025, 3, 4, 14, 0))
    with pytest.raises(ValueError, match="ttl"):
        is_applyable(planned(), binding(), at(1), timedelta(0))
    with pytest.raises(ValueError, match="ttl"):
        approve(planned(), "U1", ttl=timedelta(seconds=-1))


def test_duplicate_approvals_in_a_stored_state_count_once() -> None:
    # Defence in depth: even if a stored state held the same approver twice, it counts once.
    state = approve(planned(2), "U1").state
    doubled = state.model_copy(update={"approvals": state.approvals * 2})
    assert doubled.approver_ids == ["U1"]
    assert not doubled.is_ready
    assert not is_applyable(doubled, binding(), at(20)).allowed
