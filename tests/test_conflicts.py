"""Pure account-analysis rules (core.analysis): CIDR overlap and the runbook's fallback order, poc-idp name
prefixes and alternative names, quotas, region AZs, the brand-new-account check, permissions, the verdict,
and applying recommendations. Includes the AWS-authored describe-vpcs fixtures."""

from __future__ import annotations

import ipaddress
import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from bot.views.clicks import change_line
from bot.views.findings import conflict_text, note_lines, recommendation_lines, section_line, verdict_label
from core import validation
from core.analysis.analyse import analyse_account
from core.analysis.recommendations import (
    apply_recommendations,
    cidr_candidates,
    first_free_cidr,
    propose_names,
)
from core.analysis.report import ConflictKind, Severity, Verdict
from core.analysis.rules import (
    cidr_conflicts,
    name_conflicts,
    non_default_resources,
    overlapping_blocks,
    poc_idp_prefix,
    quota_conflicts,
    region_conflicts,
)
from core.analysis.scan import (
    AccountScan,
    ExistingResource,
    NatGateway,
    Quota,
    ResourceKind,
    SectionResult,
    SectionStatus,
    Subnet,
    Vpc,
)
from core.models import AccountSituation
from core.permissions import PermissionCaveat, PermissionCheck
from core.sizes import SetupSize
from tests.harness.fixtures import fixture_path
from tests.harness.records import deployment_request

DEFAULT_VPC = Vpc(vpc_id="vpc-default", cidr_blocks=["172.31.0.0/16"], is_default=True)
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def scan(*vpcs: Vpc, default_vpc: bool = True, zones: list[str] | None = None, **fields: Any) -> AccountScan:
    all_vpcs = ([DEFAULT_VPC] if default_vpc else []) + list(vpcs)
    return AccountScan(
        region="us-east-1", vpcs=all_vpcs, availability_zones=ZONES if zones is None else zones, **fields
    )


def vpc(vpc_id: str, *blocks: str, name: str = "") -> Vpc:
    return Vpc(vpc_id=vpc_id, name=name, cidr_blocks=list(blocks))


def res(kind: ResourceKind, name: str) -> ExistingResource:
    return ExistingResource(kind=kind, id=name, name=name)


def kinds(conflicts: list[Any]) -> list[ConflictKind]:
    return [c.kind for c in conflicts]


# ---------------------------------------------------------------- CIDR


def test_candidates_follow_the_runbook_order() -> None:
    candidates = [str(c) for c in cidr_candidates()]
    assert candidates[:3] == ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]
    assert candidates[254] == "10.255.0.0/16"
    assert candidates[255:257] == ["172.16.0.0/16", "172.17.0.0/16"]
    assert candidates[-2:] == ["172.31.0.0/16", "192.168.0.0/16"]
    assert len(candidates) == 255 + 16 + 1
    assert "10.0.0.0/16" not in candidates


def test_empty_account_has_no_cidr_conflict_and_is_safe() -> None:
    report = analyse_account(scan(), deployment_request())
    assert report.conflicts == []
    assert report.verdict is Verdict.SAFE
    assert verdict_label(report.verdict) == "safe to deploy"
    assert report.recommended_changes == {}


def test_exact_overlap_names_the_vpc_and_recommends_10_1() -> None:
    report = analyse_account(scan(vpc("vpc-111", "10.0.0.0/16", name="legacy")), deployment_request())
    [conflict] = [c for c in report.conflicts if c.kind is ConflictKind.CIDR]
    assert (
        "vpc-111" in conflict_text(conflict)
        and "legacy" in conflict_text(conflict)
        and "10.0.0.0/16" in conflict_text(conflict)
    )
    assert conflict.resource is not None and conflict.resource.id == "vpc-111"
    assert conflict.resource.name == "legacy" and "10.0.0.0/16" in conflict.resource.detail
    assert report.recommended_changes == {"vpc_cidr_block": "10.1.0.0/16"}
    assert report.verdict is Verdict.ADJUSTMENTS_NEEDED


def test_secondary_cidr_block_conflicts() -> None:
    existing = vpc("vpc-222", "192.168.0.0/16", "10.0.0.0/16", name="two-blocks")
    [conflict] = cidr_conflicts(scan(existing), "10.0.0.0/16")
    assert "secondary" in conflict_text(conflict) and "10.0.0.0/16" in conflict_text(conflict)
    assert conflict.resource is not None and conflict.resource.detail.startswith("10.0.0.0/16")


def test_a_smaller_block_inside_the_request_conflicts() -> None:
    assert cidr_conflicts(scan(vpc("vpc-1", "10.0.3.0/24")), "10.0.0.0/16")


def test_adjacent_blocks_do_not_conflict() -> None:
    assert (
        cidr_conflicts(scan(vpc("vpc-1", "10.1.0.0/16"), vpc("vpc-2", "9.255.0.0/16")), "10.0.0.0/16") == []
    )


def test_half_of_10_1_blocks_10_1() -> None:
    vpcs = [vpc("vpc-a", "10.0.0.0/16"), vpc("vpc-b", "10.1.128.0/17")]
    assert first_free_cidr(vpcs, exclude=["10.0.0.0/16"]) == "10.2.0.0/16"


def test_10_slash_8_blocks_every_10_network() -> None:
    report = analyse_account(scan(vpc("vpc-big", "10.0.0.0/8")), deployment_request())
    assert report.recommended_changes["vpc_cidr_block"] == "172.16.0.0/16"


def test_default_vpc_blocks_172_31() -> None:
    vpcs = [DEFAULT_VPC, vpc("a", "10.0.0.0/8"), vpc("b", "172.16.0.0/13"), vpc("c", "172.24.0.0/14")]
    # 172.16-23 and 172.24-27 taken; 172.28 is free
    assert first_free_cidr(vpcs) == "172.28.0.0/16"
    vpcs.append(vpc("d", "172.28.0.0/15"))
    vpcs.append(vpc("e", "172.30.0.0/16"))
    assert first_free_cidr(vpcs) == "192.168.0.0/16"  # 172.31 is the default VPC


def test_every_candidate_taken_is_blocking() -> None:
    taken = [vpc("a", "10.0.0.0/8"), vpc("b", "172.16.0.0/12"), vpc("c", "192.168.0.0/16")]
    report = analyse_account(scan(*taken), deployment_request())
    assert "vpc_cidr_block" not in report.recommended_changes
    assert any(c.kind is ConflictKind.CIDR and c.blocking for c in report.conflicts)
    assert report.verdict is Verdict.BLOCKED


def test_non_default_request_is_replaced_by_the_first_free_candidate() -> None:
    report = analyse_account(
        scan(vpc("vpc-1", "10.5.0.0/16")), deployment_request(vpc_cidr_block="10.5.0.0/24")
    )
    assert report.recommended_changes["vpc_cidr_block"] == "10.1.0.0/16"


def test_recommendation_never_overlaps_the_rejected_request() -> None:
    # 10.0.0.0/16 requested and taken; 10.1 taken by a secondary block; 10.2 must be proposed
    existing = vpc("vpc-1", "10.0.0.0/16", "10.1.0.0/16")
    report = analyse_account(scan(existing), deployment_request())
    assert report.recommended_changes["vpc_cidr_block"] == "10.2.0.0/16"


def test_several_overlapping_vpcs_each_get_a_conflict() -> None:
    vpcs = [vpc("vpc-a", "10.0.0.0/20"), vpc("vpc-b", "10.0.16.0/20"), vpc("vpc-c", "10.9.0.0/16")]
    conflicts = cidr_conflicts(scan(*vpcs), "10.0.0.0/16")
    assert sorted(c.resource.id for c in conflicts if c.resource) == ["vpc-a", "vpc-b"]


def test_ipv6_and_garbage_blocks_are_ignored() -> None:
    odd = Vpc(vpc_id="vpc-6", cidr_blocks=["2600:1f18::/56", "not-a-cidr"])
    assert overlapping_blocks([odd], "10.0.0.0/16") == []


@pytest.mark.parametrize("seed", range(25))
def test_first_free_cidr_matches_a_brute_force_reference(seed: int) -> None:
    rng = random.Random(seed)
    vpcs = []
    for index in range(rng.randint(1, 40)):
        base = rng.choice(["10.{}.0.0", "172.{}.0.0", "192.168.{}.0"])
        second = rng.randint(0, 255) if not base.startswith("172") else rng.randint(16, 31)
        prefix = (
            rng.choice([8, 12, 15, 16, 17, 20, 24]) if base.startswith("10") else rng.choice([16, 18, 24])
        )
        network = ipaddress.ip_network(f"{base.format(second)}/{prefix}", strict=False)
        vpcs.append(vpc(f"vpc-{index}", str(network)))
    taken = [ipaddress.ip_network(b) for v in vpcs for b in v.cidr_blocks]
    expected = next(
        (str(c) for c in cidr_candidates() if not any(c.overlaps(t) for t in taken)),
        None,
    )
    assert first_free_cidr(vpcs) == expected


# ---------------------------------------------------------------- fixtures


def _fixture_vpcs(name: str) -> list[Vpc]:
    data = json.loads(fixture_path("aws", name).read_text())
    outputs = data if isinstance(data, list) else [data]
    items: list[dict[str, Any]] = []
    for output in outputs:
        if "examples" in output:
            items += [v for example in output["examples"] for v in example["output"]["Vpcs"]]
        else:
            items += output["Vpcs"]
    unique = {item["VpcId"]: item for item in items}
    return [Vpc.from_api(item) for item in unique.values()]


def test_awscli_describe_vpcs_fixture_conflicts_with_the_default_cidr() -> None:
    vpcs = _fixture_vpcs("awscli_examples_ec2_describe-vpcs.output.json")
    shared = next(v for v in vpcs if v.vpc_id == "vpc-06e4ab6c6cEXAMPLE")
    assert shared.name == "Shared VPC" and shared.cidr_blocks == ["10.0.0.0/16"]
    report = analyse_account(
        AccountScan(region="us-east-1", vpcs=vpcs, availability_zones=ZONES), deployment_request()
    )
    [conflict] = [c for c in report.conflicts if c.kind is ConflictKind.CIDR]
    assert "vpc-06e4ab6c6cEXAMPLE" in conflict_text(conflict) and "Shared VPC" in conflict_text(conflict)
    assert report.recommended_changes["vpc_cidr_block"] == "10.1.0.0/16"
    # the public 30.1.0.0/16 VPC conflicts with nothing private
    assert cidr_conflicts(AccountScan(region="us-east-1", vpcs=vpcs), "10.1.0.0/16") == []


@pytest.mark.parametrize(
    "fixture", ["botocore_examples_ec2_DescribeVpcs.json", "botocore_respparse_ec2-describe-vpcs.parsed.json"]
)
def test_botocore_describe_vpcs_fixtures(fixture: str) -> None:
    vpcs = _fixture_vpcs(fixture)
    assert vpcs and all(v.cidr_blocks == ["10.0.0.0/16"] for v in vpcs)
    conflicts = cidr_conflicts(AccountScan(region="us-east-1", vpcs=vpcs), "10.0.0.0/16")
    assert {c.resource.id for c in conflicts if c.resource} == {v.vpc_id for v in vpcs}
    assert cidr_conflicts(AccountScan(region="us-east-1", vpcs=vpcs), "10.0.128.0/17")
    assert first_free_cidr(vpcs) == "10.1.0.0/16"


def test_from_api_keeps_only_associated_secondary_blocks() -> None:
    item = {
        "VpcId": "vpc-x",
        "CidrBlock": "10.0.0.0/16",
        "IsDefault": False,
        "CidrBlockAssociationSet": [
            {"CidrBlock": "10.0.0.0/16", "CidrBlockState": {"State": "associated"}},
            {"CidrBlock": "10.7.0.0/16", "CidrBlockState": {"State": "associated"}},
            {"CidrBlock": "10.8.0.0/16", "CidrBlockState": {"State": "disassociated"}},
        ],
        "Tags": [{"Key": "env", "Value": "x"}, {"Key": "Name", "Value": "main"}],
    }
    parsed = Vpc.from_api(item)
    assert parsed.cidr_blocks == ["10.0.0.0/16", "10.7.0.0/16"] and parsed.name == "main"


# ---------------------------------------------------------------- names


def test_prefixes_follow_the_name_classes() -> None:
    assert poc_idp_prefix("abcdefghijklmnopqrstuvwxyz", "staging", ResourceKind.ECS_CLUSTER) == (
        "abcdefghijklmnopqrstu-stag-"
    )
    assert poc_idp_prefix("web", "staging", ResourceKind.S3_BUCKET) == "web-stagi-"
    assert poc_idp_prefix("web", "staging", ResourceKind.ELASTICACHE_REPLICATION_GROUP) == "web-stagi-"
    assert poc_idp_prefix("web", "staging", ResourceKind.LOAD_BALANCER) == "web-stag-"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ResourceKind.ECS_CLUSTER, "web-dev-ecs-a1b2c3"),
        (ResourceKind.LOAD_BALANCER, "web-dev-ecsalb-a1b2c3"),
        (ResourceKind.RDS_CLUSTER, "web-dev-database-a1b2c3"),
        (ResourceKind.DOCDB_CLUSTER, "web-dev-docdb-a1b2c3"),
        (ResourceKind.S3_BUCKET, "web-dev-user-data-a1b2c3"),
        (ResourceKind.ELASTICACHE_REPLICATION_GROUP, "web-dev-cache-a1b2c3"),
    ],
)
def test_poc_idp_names_of_each_kind_are_flagged(kind: ResourceKind, name: str) -> None:
    field = {
        ResourceKind.ECS_CLUSTER: "ecs_clusters",
        ResourceKind.LOAD_BALANCER: "load_balancers",
        ResourceKind.RDS_CLUSTER: "rds_clusters",
        ResourceKind.DOCDB_CLUSTER: "docdb_clusters",
        ResourceKind.S3_BUCKET: "s3_buckets",
        ResourceKind.ELASTICACHE_REPLICATION_GROUP: "elasticache_replication_groups",
    }[kind]
    fields: dict[str, Any] = {field: [res(kind, name)]}
    found = scan(**fields)
    [conflict] = name_conflicts(found, "web", "dev")
    assert conflict.resource is not None and conflict.resource.name == name
    assert "starts with 'web-dev-'" in conflict_text(conflict) and name in conflict_text(conflict)
    assert conflict.severity is Severity.WARNING


def test_names_containing_the_application_are_flagged() -> None:
    found = scan(load_balancers=[res(ResourceKind.LOAD_BALANCER, "legacy-web-alb")])
    [conflict] = name_conflicts(found, "web", "dev")
    assert "contains the application name 'web'" in conflict_text(conflict)


def test_unrelated_names_and_other_kinds_are_not_flagged() -> None:
    found = scan(
        ecs_clusters=[res(ResourceKind.ECS_CLUSTER, "api-prod-ecs-a1b2c3")],
        s3_buckets=[res(ResourceKind.S3_BUCKET, "dev-logs")],
        ecr_repositories=[res(ResourceKind.ECR_REPOSITORY, "web")],  # not a poc-idp name class
    )
    assert name_conflicts(found, "web", "dev") == []


def test_name_matching_ignores_case() -> None:
    found = scan(ecs_clusters=[res(ResourceKind.ECS_CLUSTER, "WEB-DEV-cluster")])
    assert len(name_conflicts(found, "web", "dev")) == 1


def test_truncated_environment_prefix_for_medium_names() -> None:
    app = "abcdefghijklm"
    found = scan(
        s3_buckets=[res(ResourceKind.S3_BUCKET, f"{app}-stagi-frontend-x1y2z3")],
        ecs_clusters=[res(ResourceKind.ECS_CLUSTER, f"{app}-stag-ecs-x1y2z3")],
    )
    conflicts = name_conflicts(found, app, "staging")
    assert len(conflicts) == 2 and all("starts with" in conflict_text(c) for c in conflicts)


def _assert_valid_and_free(found: AccountScan, app: str, env: str) -> None:
    validation.check_application(app)
    validation.check_environment(env)
    validation.check_name_lengths(app, env)
    assert name_conflicts(found, app, env) == []


def test_alternative_application_is_proposed() -> None:
    found = scan(ecs_clusters=[res(ResourceKind.ECS_CLUSTER, "web-dev-ecs-a1b2c3")])
    report = analyse_account(found, deployment_request())
    assert report.recommended_changes == {"application": "web-v2"}
    assert any("web-v2" in message for message in recommendation_lines(report))


def test_alternative_that_itself_conflicts_is_skipped() -> None:
    found = scan(
        ecs_clusters=[
            res(ResourceKind.ECS_CLUSTER, "web-dev-ecs-a1b2c3"),
            res(ResourceKind.ECS_CLUSTER, "web-v2-dev-ecs-d4e5f6"),
        ]
    )
    proposal = propose_names(found, "web", "dev")
    assert proposal is not None and proposal[0] != "web-v2"
    _assert_valid_and_free(found, *proposal)


def test_alternative_respects_the_load_balancer_budget() -> None:
    app = "abcdefghijklm"  # 13 + len("prod") = 17, the ALB budget
    found = scan(ecs_clusters=[res(ResourceKind.ECS_CLUSTER, f"{app}-prod-ecs-a1b2c3")])
    proposal = propose_names(found, app, "prod")
    assert proposal is not None
    assert len(proposal[0]) <= 13 and proposal[0] != app
    _assert_valid_and_free(found, *proposal)


def test_alternative_avoids_a_hyphen_at_a_truncation_point() -> None:
    app = "abcdefgh"  # app-v2 / app-2 put '-' at index 8, which poc-idp cuts to a trailing hyphen
    found = scan(ecs_clusters=[res(ResourceKind.ECS_CLUSTER, f"{app}-dev-ecs-a1b2c3")])
    proposal = propose_names(found, app, "dev")
    assert proposal == ("abcdefghv2", "dev")
    _assert_valid_and_free(found, *proposal)


def test_no_proposal_when_every_alternative_is_taken() -> None:
    variants = [f"web{sep}{n}" for sep in ("-v", "-", "v", "") for n in range(2, 10)]
    taken = [res(ResourceKind.S3_BUCKET, f"x-{name}-y") for name in ["web", *variants]]
    found = scan(s3_buckets=taken)
    assert propose_names(found, "web", "dev") is None
    report = analyse_account(found, deployment_request())
    assert "application" not in report.recommended_changes
    assert any("choose one yourself" in message for message in recommendation_lines(report))
    # one free variant is enough
    found = scan(s3_buckets=taken[:-1])
    assert propose_names(found, "web", "dev") == ("web9", "dev")


@pytest.mark.parametrize(
    ("app", "env"),
    [("web", "dev"), ("payments", "prod"), ("a", "stag"), ("abcdefghijklm", "prod"), ("shop-api", "qa")],
)
def test_proposals_pass_the_request_validation(app: str, env: str) -> None:
    found = scan(
        ecs_clusters=[res(ResourceKind.ECS_CLUSTER, f"{app}-{env[:4]}-ecs-a1b2c3")],
        s3_buckets=[res(ResourceKind.S3_BUCKET, f"{app}-{env[:5]}-frontend-a1b2c3")],
    )
    proposal = propose_names(found, app, env)
    assert proposal is not None
    _assert_valid_and_free(found, *proposal)
    deployment_request(application=proposal[0], environment=proposal[1])  # the model accepts it too


# ---------------------------------------------------------------- quotas, region


def _quota(value: int, fell_back: bool = False) -> Quota:
    return Quota(code="L-F678F1CE", name="VPCs per Region", value=value, fell_back=fell_back, reason="x")


def test_vpc_quota_reached_is_blocking_when_read() -> None:
    vpcs = [vpc(f"vpc-{i}", f"10.{100 + i}.0.0/16") for i in range(4)]
    found = scan(*vpcs, vpc_quota=_quota(5))
    [conflict] = quota_conflicts(found, SetupSize.SMALL)
    assert (
        conflict.blocking and "5 VPCs" in conflict_text(conflict) and "quota of 5" in conflict_text(conflict)
    )


def test_vpc_quota_reached_is_a_warning_on_the_documented_default() -> None:
    vpcs = [vpc(f"vpc-{i}", f"10.{100 + i}.0.0/16") for i in range(4)]
    [conflict] = quota_conflicts(scan(*vpcs, vpc_quota=_quota(5, fell_back=True)), SetupSize.SMALL)
    assert not conflict.blocking and "documented default" in conflict_text(conflict)


def test_vpc_quota_with_room_is_fine() -> None:
    vpcs = [vpc(f"vpc-{i}", f"10.{100 + i}.0.0/16") for i in range(3)]
    assert quota_conflicts(scan(*vpcs, vpc_quota=_quota(5)), SetupSize.SMALL) == []
    assert quota_conflicts(scan(*vpcs, vpc_quota=_quota(4)), SetupSize.SMALL)  # 4 existing, quota 4


@pytest.mark.parametrize(
    ("size", "allocated", "expect"),
    [
        (SetupSize.SMALL, 4, False),
        (SetupSize.SMALL, 5, True),
        (SetupSize.MEDIUM, 4, False),
        (SetupSize.LARGE, 2, False),
        (SetupSize.LARGE, 3, True),
    ],
)
def test_elastic_ips_left_for_the_nat_gateways(size: SetupSize, allocated: int, expect: bool) -> None:
    conflicts = quota_conflicts(scan(elastic_ip_count=allocated), size)
    assert bool(conflicts) is expect
    if expect:
        needed = 3 if size is SetupSize.LARGE else 1
        assert f"needs {needed} Elastic IP" in conflict_text(conflicts[0])
        assert f"{allocated} are allocated" in conflict_text(conflicts[0])
        assert f"leaving {5 - allocated}" in conflict_text(conflicts[0])


def test_nat_gateways_per_az() -> None:
    subnets = [Subnet(subnet_id=f"subnet-{z}", vpc_id="v", availability_zone=z) for z in ZONES]
    full = [
        NatGateway(nat_gateway_id=f"nat-{z}-{i}", subnet_id=f"subnet-{z}")
        for z in ZONES[:2]
        for i in range(5)
    ]
    found = scan(subnets=subnets, nat_gateways=full)
    assert [c.kind for c in quota_conflicts(found, SetupSize.SMALL)] == []
    [conflict] = quota_conflicts(found, SetupSize.LARGE)
    assert "needs 3 NAT gateway" in conflict_text(conflict) and "only 1 AZ" in conflict_text(conflict)


def test_fewer_than_three_azs_blocks() -> None:
    [conflict] = region_conflicts(scan(zones=["us-west-1a", "us-west-1c"]), SetupSize.SMALL)
    assert (
        conflict.blocking
        and "2 available AZ" in conflict_text(conflict)
        and "us-west-1c" in conflict_text(conflict)
    )
    assert region_conflicts(scan(zones=ZONES), SetupSize.LARGE) == []
    report = analyse_account(scan(zones=["us-west-1a"]), deployment_request())
    assert report.verdict is Verdict.BLOCKED


# ---------------------------------------------------------------- brand-new accounts


def test_brand_new_account_with_only_the_default_vpc() -> None:
    found = scan()
    assert non_default_resources(found) == []
    report = analyse_account(found, deployment_request(account_situation=AccountSituation.NEW))
    assert ConflictKind.NOT_NEW_ACCOUNT not in kinds(report.conflicts)


@pytest.mark.parametrize(
    "fields",
    [
        {"vpcs": [DEFAULT_VPC, vpc("vpc-x", "10.50.0.0/16")]},
        {"ecs_clusters": [res(ResourceKind.ECS_CLUSTER, "prod")]},
        {"rds_clusters": [res(ResourceKind.RDS_CLUSTER, "db1")]},
        {"vpcs": [Vpc(vpc_id="vpc-d", cidr_blocks=["172.31.0.0/16", "10.9.0.0/16"], is_default=True)]},
        {"vpcs": [Vpc(vpc_id="vpc-d", cidr_blocks=["10.9.0.0/16"], is_default=True)]},
    ],
)
def test_brand_new_account_that_is_not(fields: dict[str, Any]) -> None:
    found = AccountScan(region="us-east-1", availability_zones=ZONES, **fields)
    report = analyse_account(found, deployment_request(account_situation=AccountSituation.NEW))
    [finding] = [c for c in report.conflicts if c.kind is ConflictKind.NOT_NEW_ACCOUNT]
    assert "brand new" in conflict_text(finding) and finding.resource is not None
    # an account declared existing is not warned about this
    existing = analyse_account(found, deployment_request())
    assert ConflictKind.NOT_NEW_ACCOUNT not in kinds(existing.conflicts)


# ---------------------------------------------------------------- permissions, coverage, verdict


def _check(denied: dict[str, list[str]] | None = None, checked: bool = True) -> PermissionCheck:
    return PermissionCheck(
        principal_arn="arn:aws:iam::123456789012:role/Deploy",
        size=SetupSize.SMALL,
        checked=checked,
        evaluated=10,
        denied=denied or {},
        caveat=None if checked else PermissionCaveat.NOT_ALLOWED_TO_SIMULATE,
    )


def test_denied_actions_block_unless_overridden() -> None:
    denied = {"ec2": ["ec2:CreateVpc", "ec2:CreateNatGateway"], "rds": ["rds:CreateDBCluster"]}
    report = analyse_account(scan(), deployment_request(), permissions=_check(denied))
    permission = [c for c in report.conflicts if c.kind is ConflictKind.PERMISSION]
    assert len(permission) == 2 and all(c.blocking for c in permission)
    assert "ec2:CreateVpc" in conflict_text(permission[0]) and "EC2" in conflict_text(permission[0])
    assert report.verdict is Verdict.BLOCKED and report.only_permissions_block
    overridden = analyse_account(
        scan(), deployment_request(), permissions=_check(denied), permissions_overridden=True
    )
    assert overridden.verdict is Verdict.ADJUSTMENTS_NEEDED
    assert all("overridden" in conflict_text(c) for c in overridden.conflicts)


def test_allowed_and_unchecked_permissions_do_not_block() -> None:
    assert analyse_account(scan(), deployment_request(), permissions=_check()).verdict is Verdict.SAFE
    report = analyse_account(scan(), deployment_request(), permissions=_check(checked=False))
    assert report.verdict is Verdict.SAFE
    assert any("could not be checked" in note for note in note_lines(report))


def test_skipped_sections_are_counted_and_uncheckable_rules_warn() -> None:
    sections = {
        "vpcs": SectionResult.of("vpcs", status=SectionStatus.NO_PERMISSION),
        "ecs_clusters": SectionResult.of("ecs_clusters", count=0),
        "availability_zones": SectionResult.of(
            "availability_zones", status=SectionStatus.ERROR, error="InternalError: boom"
        ),
    }
    found = AccountScan(region="us-east-1", sections=sections)
    report = analyse_account(found, deployment_request())
    assert report.counts[ResourceKind.VPC] is None and report.counts[ResourceKind.ECS_CLUSTER] == 0
    assert [section_line(s) for s in report.skipped_sections] == [
        "VPCs: not scanned: no permission for ec2:DescribeVpcs"
    ]
    assert [section_line(s) for s in report.failed_sections] == [
        "Availability zones: not scanned: error: InternalError: boom"
    ]
    coverage = [conflict_text(c) for c in report.conflicts if c.kind is ConflictKind.COVERAGE]
    assert len(coverage) == 2 and "CIDR overlap" in coverage[0]
    assert "1 section(s) not scanned" in note_lines(report)[0]
    assert report.verdict is Verdict.ADJUSTMENTS_NEEDED


def test_quota_fallbacks_are_noted() -> None:
    report = analyse_account(scan(), deployment_request())
    assert any("VPCs per Region: used the documented default of 5" in note for note in note_lines(report))


def test_counts_cover_every_kind() -> None:
    found = scan(
        vpc("vpc-1", "10.9.0.0/16"),
        s3_buckets=[res(ResourceKind.S3_BUCKET, f"b{i}") for i in range(7)],
        elastic_ip_count=2,
    )
    counts = analyse_account(found, deployment_request()).counts
    assert counts[ResourceKind.VPC] == 2 and counts[ResourceKind.S3_BUCKET] == 7
    assert counts[ResourceKind.ELASTIC_IP] == 2 and counts[ResourceKind.AVAILABILITY_ZONE] == 3
    assert set(counts) == set(ResourceKind)


# ---------------------------------------------------------------- applying recommendations


def test_apply_recommendations_revalidates_and_resolves_the_conflicts() -> None:
    found = scan(
        vpc("vpc-1", "10.0.0.0/16", name="legacy"),
        ecs_clusters=[res(ResourceKind.ECS_CLUSTER, "web-dev-ecs-a1b2c3")],
    )
    original = deployment_request()
    report = analyse_account(found, original)
    updated, changed = apply_recommendations(original, report)
    assert updated.vpc_cidr_block == "10.1.0.0/16" and updated.application == "web-v2"
    assert [change_line(c) for c in changed] == [
        "application: web → web-v2",
        "vpc_cidr_block: 10.0.0.0/16 → 10.1.0.0/16",
    ]
    assert original.application == "web"  # frozen original untouched
    assert updated.state_key == "terraform/web-v2/dev/terraform.tfstate"
    again = analyse_account(found, updated)
    assert again.conflicts == [] and again.verdict is Verdict.SAFE


def test_apply_rejects_invalid_or_unknown_values() -> None:
    with pytest.raises(ValidationError):
        apply_recommendations(deployment_request(), {"application": "Bad_Name"})
    with pytest.raises(ValidationError):
        apply_recommendations(deployment_request(), {"vpc_cidr_block": "8.8.0.0/16"})
    with pytest.raises(ValueError, match="Not a recommendable field"):
        apply_recommendations(deployment_request(), {"region": "eu-west-1"})
    same, changed = apply_recommendations(deployment_request(), {})
    assert same == deployment_request() and changed == []
