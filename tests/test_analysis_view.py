"""The analysis summary renderer (bot.views.analysis): content, buttons, Slack's limits on large accounts,
the full-text report, and the brand-new-account messages. Reports come from core.analysis.analyse.analyse_account
over constructed scans, so the views render what the rules really produce."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock, SectionBlock

from bot.ids import Action
from bot.views.analysis import (
    MAX_BLOCKS,
    analysis_blocks,
    analysis_report_text,
    block_text_length,
    fresh_account_blocks,
)
from bot.views.findings import verdict_label
from core.analysis.analyse import analyse_account
from core.analysis.report import AnalysisReport, Verdict
from core.analysis.scan import AccountScan, ExistingResource, ResourceKind, SectionResult, SectionStatus, Vpc
from core.models import AccountSituation
from core.permissions import PermissionCaveat, PermissionCheck
from core.sizes import SetupSize
from tests.harness.records import deployment_request

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
DEFAULT_VPC = Vpc(vpc_id="vpc-default", cidr_blocks=["172.31.0.0/16"], is_default=True)
CONTEXT: dict[str, Any] = {
    "deployment_id": "d-1234abcd",
    "profile": "deployer",
    "account_id": "123456789012",
    "region": "us-east-1",
}


def report_for(*vpcs: Vpc, permissions: PermissionCheck | None = None, **fields: Any) -> AnalysisReport:
    found = AccountScan(region="us-east-1", vpcs=[DEFAULT_VPC, *vpcs], availability_zones=ZONES, **fields)
    return analyse_account(found, deployment_request(), permissions=permissions)


def render(report: AnalysisReport, can_keep_values: bool = True) -> list[Block]:
    return analysis_blocks(report, can_keep_values=can_keep_values, **CONTEXT)


def text_of(blocks: list[Block]) -> str:
    return json.dumps([b.to_dict() for b in blocks], ensure_ascii=False)


def buttons(blocks: list[Block]) -> list[ButtonElement]:
    [actions] = [b for b in blocks if isinstance(b, ActionsBlock)]
    return [e for e in actions.elements if isinstance(e, ButtonElement)]


def action_ids(blocks: list[Block]) -> list[str | None]:
    return [b.action_id for b in buttons(blocks)]


def assert_slack_limits(blocks: list[Block]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        block.to_dict()  # slack_sdk validates lazily: this raises on a broken block
        if isinstance(block, SectionBlock) and block.text is not None:
            assert len(block.text.text) <= 3000
    assert block_text_length(blocks) < 12_000
    assert len(text_of(blocks)) < 40_000


def test_safe_report() -> None:
    blocks = render(report_for())
    content = text_of(blocks)
    assert isinstance(blocks[0], HeaderBlock)
    assert "Verdict: safe to deploy" in content
    for value in ("123456789012", "deployer", "us-east-1", "web/dev"):
        assert value in content
    assert "VPCs: 1" in content and "S3 buckets: 0" in content
    assert action_ids(blocks) == [Action.KEEP_VALUES, Action.CANCEL]
    assert {b.value for b in buttons(blocks)} == {"d-1234abcd"}
    assert_slack_limits(blocks)


def test_conflicts_name_their_resource_and_recommendations_are_offered() -> None:
    report = report_for(
        Vpc(vpc_id="vpc-0abc", name="legacy", cidr_blocks=["10.0.0.0/16"]),
        ecs_clusters=[ExistingResource(kind=ResourceKind.ECS_CLUSTER, id="arn:x", name="web-dev-ecs-a1b2c3")],
    )
    blocks = render(report)
    content = text_of(blocks)
    assert "Verdict: adjustments needed" in content
    assert "vpc-0abc" in content and "legacy" in content and "10.0.0.0/16" in content
    assert "web-dev-ecs-a1b2c3" in content
    assert "10.1.0.0/16" in content and "web-v2" in content
    assert action_ids(blocks) == [Action.APPLY_RECOMMENDATIONS, Action.KEEP_VALUES, Action.CANCEL]
    assert_slack_limits(blocks)


def test_keep_values_depends_on_the_caller_and_on_blocking() -> None:
    assert Action.KEEP_VALUES not in action_ids(render(report_for(), can_keep_values=False))
    blocked = analyse_account(
        AccountScan(region="us-east-1", availability_zones=["us-east-1a"]), deployment_request()
    )
    assert blocked.verdict is Verdict.BLOCKED
    blocks = render(blocked, can_keep_values=True)
    assert action_ids(blocks) == [Action.CANCEL]
    assert "Verdict: blocked" in text_of(blocks)


def _denied(services: int = 2, per_service: int = 3) -> PermissionCheck:
    prefixes = ["ec2", "rds", "ecs", "s3", "iam", "kms", "logs", "sns", "acm", "backup", "ssm", "sts", "ecr"]
    denied = {
        prefixes[i % len(prefixes)] + ("" if i < len(prefixes) else str(i)): [
            f"{prefixes[i % len(prefixes)]}:Action{j:03d}" for j in range(per_service)
        ]
        for i in range(services)
    }
    return PermissionCheck(
        principal_arn="arn:aws:iam::123456789012:role/Deploy",
        size=SetupSize.SMALL,
        checked=True,
        evaluated=200,
        denied=denied,
    )


def test_permission_findings_grouped_by_service_with_a_lead_override() -> None:
    report = report_for(permissions=_denied())
    blocks = render(report)
    content = text_of(blocks)
    assert "EC2 / VPC" in content and "RDS / Aurora / DocumentDB" in content
    assert "ec2:Action000" in content and "6 denied action(s)" in content
    assert action_ids(blocks) == [Action.OVERRIDE_PERMISSIONS, Action.CANCEL]


def test_unchecked_permissions_are_a_warning() -> None:
    check = PermissionCheck(
        principal_arn="arn:x",
        size=SetupSize.SMALL,
        checked=False,
        caveat=PermissionCaveat.SIMULATION_UNAVAILABLE,
        error="ResponseParserError: …",
    )
    content = text_of(render(report_for(permissions=check)))
    assert ":warning: Permissions could not be checked" in content


def test_skipped_sections_are_shown() -> None:
    sections = {"s3_buckets": SectionResult.of("s3_buckets", status=SectionStatus.NO_PERMISSION)}
    found = AccountScan(region="us-east-1", vpcs=[DEFAULT_VPC], availability_zones=ZONES, sections=sections)
    content = text_of(render(analyse_account(found, deployment_request())))
    assert "no permission for s3:ListAllMyBuckets" in content
    assert "S3 buckets: not scanned" in content
    assert "1 section(s) not scanned" in content


def test_mrkdwn_control_characters_are_escaped() -> None:
    bucket = ExistingResource(kind=ResourceKind.S3_BUCKET, id="web<&>x", name="web<&>x")
    content = text_of(render(report_for(s3_buckets=[bucket])))
    assert "web&lt;&amp;&gt;x" in content and "web<&>x" not in content


def huge_report() -> AnalysisReport:
    vpcs = [Vpc(vpc_id=f"vpc-{i:04d}", name=f"team-{i}", cidr_blocks=[f"10.0.{i}.0/24"]) for i in range(250)]
    buckets = [
        ExistingResource(
            kind=ResourceKind.S3_BUCKET, id=f"web-dev-bucket-{i:04d}", name=f"web-dev-bucket-{i:04d}"
        )
        for i in range(600)
    ]
    clusters = [
        ExistingResource(
            kind=ResourceKind.ECS_CLUSTER, id=f"arn:{i}", name=f"web-dev-ecs-{i:04d}" + "x" * 200
        )
        for i in range(300)
    ]
    sections = {
        f"s{i}": SectionResult(
            name=f"s{i}",
            title=f"Section {i}",
            group="network",
            iam_action=f"ec2:Describe{i}",
            status="no_permission",
        )
        for i in range(40)
    }
    found = AccountScan(
        region="us-east-1",
        vpcs=vpcs,
        availability_zones=["us-east-1a"],
        s3_buckets=buckets,
        ecs_clusters=clusters,
        elastic_ip_count=5,
        sections=sections,
    )
    return analyse_account(
        found,
        deployment_request(account_situation=AccountSituation.NEW),
        permissions=_denied(services=40, per_service=60),
    )


def test_large_accounts_stay_within_slack_limits() -> None:
    report = huge_report()
    assert len(report.conflicts) > 1000
    blocks = render(report)
    assert_slack_limits(blocks)
    content = text_of(blocks)
    assert "more (see the full report)" in content
    assert "Verdict: blocked" in content
    assert action_ids(blocks)[-1] == Action.CANCEL


def test_full_text_report_is_unabridged() -> None:
    report = huge_report()
    text = analysis_report_text(report, profile="deployer", account_id="123456789012", region="us-east-1")
    assert text.startswith("AWS ACCOUNT ANALYSIS SUMMARY")
    assert "Account:  123456789012" in text and "Profile:  deployer" in text
    assert all(f"web-dev-bucket-{i:04d}" in text for i in range(600))
    assert all(f"vpc-{i:04d}" in text for i in range(250))
    assert "ec2:Action059" in text and "Verdict:  BLOCKED" in text
    assert "no permission for ec2:Describe39" in text


def test_full_text_report_of_a_safe_account() -> None:
    text = analysis_report_text(report_for(), profile="p", account_id="123456789012", region="us-east-1")
    assert "Verdict:  SAFE TO DEPLOY" in text and "CONFLICTS (0 blocking, 0 warnings)" in text


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_has_a_label(verdict: Verdict) -> None:
    assert verdict_label(verdict) in {"safe to deploy", "adjustments needed", "blocked"}


# ---------------------------------------------------------------- brand-new accounts


def test_fresh_account_uses_the_defaults() -> None:
    blocks = fresh_account_blocks(application="web", environment="dev", **CONTEXT)
    content = text_of(blocks)
    assert "Fresh AWS account — using defaults:" in content
    assert "VPC CIDR `10.0.0.0/16`, application `web`, environment `dev`" in content
    assert action_ids(blocks) == [Action.CANCEL]
    assert_slack_limits(blocks)


def test_brand_new_account_with_resources_offers_the_full_analysis() -> None:
    found = [
        ExistingResource(kind=ResourceKind.VPC, id=f"vpc-{i}", name="prod", detail="10.9.0.0/16")
        for i in range(8)
    ]
    blocks = fresh_account_blocks(application="web", environment="dev", found=found, **CONTEXT)
    content = text_of(blocks)
    assert "not brand new" in content and "8 non-default resource(s)" in content
    assert "vpc-0" in content and "…and 3 more." in content
    assert action_ids(blocks) == [Action.RUN_FULL_ANALYSIS, Action.CANCEL]
    assert {b.value for b in buttons(blocks)} == {"d-1234abcd"}
    assert_slack_limits(blocks)
