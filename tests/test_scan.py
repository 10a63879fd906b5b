"""The account scan (workers.aws.scan) against moto in SERVER mode, reached through AWS_ENDPOINT_URL with the
named profiles of tests/harness/aws.py. No boto3 mocking: moto is a real HTTP endpoint.

The permission-denied cases use moto's IAM enforcement in server mode: an IAM user is created while auth is
off, then `POST /moto-api/reset-auth` with "0" makes moto check every request's signature and the user's
policies (the INITIAL_NO_AUTH_ACTION_COUNT mechanism); it is reset to "inf" afterwards.
Only the parse-through-pagination and the non-permission error cases use botocore's Stubber on real clients.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.stub import Stubber

from bot.views.findings import conflict_text, note_lines, section_line, section_summary
from core.analysis.analyse import analyse_account
from core.analysis.recommendations import apply_recommendations
from core.analysis.report import ConflictKind, Verdict
from core.analysis.rules import non_default_resources
from core.analysis.scan import FRESH_ACCOUNT_SECTIONS, SECTIONS, ResourceKind, SectionStatus
from core.models import AccountSituation
from tests.harness.aws import MotoServer
from tests.harness.fixtures import fixture_path
from tests.harness.records import deployment_request
from workers.aws import scan as scan_module
from workers.aws.scan import is_permission_error, scan_account
from workers.aws.scan_sections import Listing

REGION = "us-east-1"


def seed_account(session: boto3.Session) -> dict[str, str]:
    """A lived-in account: overlapping VPCs (primary and secondary blocks) and resources named like web/dev."""
    ec2 = session.client("ec2")
    legacy = ec2.create_vpc(
        CidrBlock="10.0.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "legacy"}]}],
    )["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=legacy, CidrBlock="10.1.0.0/16")
    other = ec2.create_vpc(
        CidrBlock="172.16.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "shared"}]}],
    )["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=other, CidrBlock="10.2.128.0/17")
    subnet_a = ec2.create_subnet(VpcId=legacy, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
    subnet_b = ec2.create_subnet(VpcId=legacy, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")
    subnet_a_id, subnet_b_id = subnet_a["Subnet"]["SubnetId"], subnet_b["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_nat_gateway(SubnetId=subnet_a_id, AllocationId=allocation)
    ec2.allocate_address(Domain="vpc")

    ecs = session.client("ecs")
    ecs.create_cluster(clusterName="web-dev-ecs-a1b2c3")
    ecs.create_cluster(clusterName="billing")

    elbv2 = session.client("elbv2")
    group = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=legacy)["GroupId"]
    elbv2.create_load_balancer(
        Name="web-dev-ecsalb-a1b2c3",
        Subnets=[subnet_a_id, subnet_b_id],
        SecurityGroups=[group],
        Type="application",
    )
    elbv2.create_load_balancer(Name="net-lb", Subnets=[subnet_a_id, subnet_b_id], Type="network")

    rds = session.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="web-dev-database-a1b2c3",
        Engine="aurora-postgresql",
        MasterUsername="dbadmin",
        MasterUserPassword="password-123",
    )
    rds.create_db_instance(
        DBInstanceIdentifier="reporting", Engine="postgres", DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
        MasterUsername="dbadmin", MasterUserPassword="password-123",
    )  # fmt: skip
    session.client("elasticache").create_replication_group(
        ReplicationGroupId="web-dev-cache-a1b2c3",
        ReplicationGroupDescription="cache",
        Engine="redis",
        CacheNodeType="cache.t4g.medium",
        NumCacheClusters=1,
    )
    s3 = session.client("s3")
    for bucket in ("web-dev-user-data-a1b2c3", "company-logs", "legacy-web-assets"):
        s3.create_bucket(Bucket=bucket)
    session.client("ecr").create_repository(repositoryName="web-api")
    session.client("efs").create_file_system(
        CreationToken="shared-fs", Tags=[{"Key": "Name", "Value": "shared"}]
    )
    return {"legacy": legacy, "other": other}


@pytest.fixture
def seeded(deployer_session: boto3.Session) -> dict[str, str]:
    return seed_account(deployer_session)


def test_scan_finds_everything_and_the_analysis_names_the_causes(
    deployer_session: boto3.Session, seeded: dict[str, str]
) -> None:
    found = scan_account(deployer_session, REGION)

    assert {name: r.status for name, r in found.sections.items()} == {
        spec.name: SectionStatus.FALLBACK if spec.name == "eip_quota" else SectionStatus.SCANNED
        for spec in SECTIONS
    }
    by_id = {vpc.vpc_id: vpc for vpc in found.vpcs}
    assert by_id[seeded["legacy"]].cidr_blocks == ["10.0.0.0/16", "10.1.0.0/16"]
    assert by_id[seeded["legacy"]].name == "legacy"
    assert by_id[seeded["other"]].cidr_blocks == ["172.16.0.0/16", "10.2.128.0/17"]
    assert sum(vpc.is_default for vpc in found.vpcs) == 1
    assert len(found.nat_gateways) == 1 and found.elastic_ip_count == 2
    assert len(found.availability_zones) >= 3
    assert [lb.name for lb in found.load_balancers] == ["web-dev-ecsalb-a1b2c3"]  # the NLB is not an ALB
    assert sorted(c.name for c in found.ecs_clusters) == ["billing", "web-dev-ecs-a1b2c3"]
    assert all("active service" in c.detail for c in found.ecs_clusters)
    assert [c.name for c in found.rds_clusters] == ["web-dev-database-a1b2c3"]
    assert [i.name for i in found.rds_instances] == ["reporting"]
    assert found.docdb_clusters == []  # the Aurora cluster is not a DocumentDB cluster
    assert [g.id for g in found.elasticache_replication_groups] == ["web-dev-cache-a1b2c3"]
    assert len(found.s3_buckets) == 3 and [r.name for r in found.ecr_repositories] == ["web-api"]
    assert [f.name for f in found.efs_file_systems] == ["shared"]
    assert found.vpc_quota.value == 5 and not found.vpc_quota.fell_back
    assert found.eip_quota.fell_back and "NoSuchResource" in found.eip_quota.reason
    assert all(r.elapsed_s >= 0 for r in found.sections.values())

    report = analyse_account(found, deployment_request())
    cidr = [c for c in report.conflicts if c.kind is ConflictKind.CIDR]
    assert [c.resource.id for c in cidr if c.resource] == [seeded["legacy"]]
    # 10.1 is a secondary block of "legacy", 10.2 is half-taken by "shared"'s secondary /17
    assert report.recommended_changes["vpc_cidr_block"] == "10.3.0.0/16"
    names = sorted(c.resource.name for c in report.conflicts if c.kind is ConflictKind.NAME and c.resource)
    assert names == [
        "legacy-web-assets",
        "web-dev-cache-a1b2c3",
        "web-dev-database-a1b2c3",
        "web-dev-ecs-a1b2c3",
        "web-dev-ecsalb-a1b2c3",
        "web-dev-user-data-a1b2c3",
    ]
    assert report.recommended_changes["application"] == "web-v2"
    assert report.verdict is Verdict.ADJUSTMENTS_NEEDED
    assert report.counts[ResourceKind.S3_BUCKET] == 3 and report.counts[ResourceKind.VPC] == 3

    updated, changed = apply_recommendations(deployment_request(), report)
    assert len(changed) == 2
    assert analyse_account(found, updated).verdict is Verdict.SAFE


def test_vpc_quota_reached_blocks(deployer_session: boto3.Session) -> None:
    ec2 = deployer_session.client("ec2")
    for second in range(20, 24):
        ec2.create_vpc(CidrBlock=f"10.{second}.0.0/16")
    report = analyse_account(scan_account(deployer_session, REGION), deployment_request())
    [quota] = [c for c in report.conflicts if c.kind is ConflictKind.QUOTA]
    assert quota.blocking and "5 VPCs" in conflict_text(quota)
    assert report.verdict is Verdict.BLOCKED


def test_region_with_two_azs_blocks(aws: MotoServer) -> None:
    session = boto3.Session(profile_name="deployer", region_name="us-west-1")
    found = scan_account(session, "us-west-1")
    assert len(found.availability_zones) == 2
    report = analyse_account(found, deployment_request(region="us-west-1"))
    assert any(c.kind is ConflictKind.REGION and c.blocking for c in report.conflicts)


def test_second_account_through_assume_role_sees_only_its_own_resources(
    deployer_session: boto3.Session, seeded: dict[str, str]
) -> None:
    other = boto3.Session(profile_name="other-account", region_name=REGION)
    other.client("ecs").create_cluster(clusterName="other-only")
    other.client("s3").create_bucket(Bucket="other-account-bucket")

    found = scan_account(other, REGION)
    assert [vpc.cidr_blocks for vpc in found.vpcs] == [["172.31.0.0/16"]]
    assert [c.name for c in found.ecs_clusters] == ["other-only"]
    assert found.rds_clusters == [] and found.load_balancers == []
    assert seeded["legacy"] not in {vpc.vpc_id for vpc in found.vpcs}
    mine = scan_account(deployer_session, REGION)
    assert "other-only" not in {c.name for c in mine.ecs_clusters}
    report = analyse_account(found, deployment_request(account_id="222233334444", profile="other-account"))
    assert not [c for c in report.conflicts if c.kind is ConflictKind.CIDR]


def test_fresh_account_subset_scan(deployer_session: boto3.Session) -> None:
    found = scan_account(deployer_session, REGION, sections=FRESH_ACCOUNT_SECTIONS)
    assert set(found.sections) == set(FRESH_ACCOUNT_SECTIONS)
    assert non_default_resources(found) == []
    deployer_session.client("ecs").create_cluster(clusterName="surprise")
    found = scan_account(deployer_session, REGION, sections=FRESH_ACCOUNT_SECTIONS)
    assert [r.name for r in non_default_resources(found)] == ["surprise"]
    report = analyse_account(found, deployment_request(account_situation=AccountSituation.NEW))
    assert any(c.kind is ConflictKind.NOT_NEW_ACCOUNT for c in report.conflicts)
    with pytest.raises(ValueError, match="Unknown scan section"):
        scan_account(deployer_session, REGION, sections=["nope"])


def test_ecs_clusters_are_paginated_and_described_in_batches(deployer_session: boto3.Session) -> None:
    ecs = deployer_session.client("ecs")
    for index in range(130):
        ecs.create_cluster(clusterName=f"c{index:03d}")
    found = scan_account(deployer_session, REGION, sections=["ecs_clusters"])
    assert sorted(c.name for c in found.ecs_clusters) == [f"c{i:03d}" for i in range(130)]
    assert found.sections["ecs_clusters"].count == 130


def test_sections_run_concurrently(deployer_session: boto3.Session) -> None:
    """Every AWS call waits at a gate (a before-send hook on the session, copied into each client)
    that opens once every section has a call in flight at the same time; a serial scan never opens
    it, and after 10 s the gate gives up so that the test can say so."""
    sections = len(SECTIONS)
    lock = threading.Lock()
    in_flight, peak = 0, 0
    everyone_in = threading.Event()

    def gate(**_: Any) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight >= sections:
                everyone_in.set()
        if not everyone_in.wait(10):
            everyone_in.set()
        with lock:
            in_flight -= 1

    deployer_session.events.register("before-send", gate)
    found = scan_account(deployer_session, REGION)
    assert all(r.scanned for r in found.sections.values())
    assert len(found.sections) == sections
    assert peak == sections, f"at most {peak} of the {sections} sections had a call in flight at once"


# ---------------------------------------------------------------- permissions


@pytest.fixture
def enforce_auth(aws: MotoServer) -> Iterator[None]:
    """Make moto check signatures and IAM policies on every request, then switch it back off."""
    requests.post(aws.endpoint + "/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.post(aws.endpoint + "/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def _user_session(deployer_session: boto3.Session, name: str, policy: dict[str, Any] | None) -> boto3.Session:
    iam = deployer_session.client("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="scan", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=REGION
    )


EXPECTED_ACTIONS = {
    "vpcs": "ec2:DescribeVpcs",
    "subnets": "ec2:DescribeSubnets",
    "nat_gateways": "ec2:DescribeNatGateways",
    "availability_zones": "ec2:DescribeAvailabilityZones",
    "elastic_ips": "ec2:DescribeAddresses",
    "rds_clusters": "rds:DescribeDBClusters",
    "rds_instances": "rds:DescribeDBInstances",
    "elasticache_replication_groups": "elasticache:DescribeReplicationGroups",
    "elasticache_cache_clusters": "elasticache:DescribeCacheClusters",
    "docdb_clusters": "rds:DescribeDBClusters",
    "ecs_clusters": "ecs:ListClusters",
    "load_balancers": "elasticloadbalancing:DescribeLoadBalancers",
    "ecr_repositories": "ecr:DescribeRepositories",
    "s3_buckets": "s3:ListAllMyBuckets",
    "efs_file_systems": "elasticfilesystem:DescribeFileSystems",
}


@pytest.fixture
def nobody_session(deployer_session: boto3.Session) -> boto3.Session:
    return _user_session(deployer_session, "nobody", None)


@pytest.fixture
def ec2_reader_session(deployer_session: boto3.Session) -> boto3.Session:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
    }
    return _user_session(deployer_session, "ec2-reader", policy)


def test_no_permission_sections_name_the_iam_action(
    seeded: dict[str, str], nobody_session: boto3.Session, enforce_auth: None
) -> None:
    found = scan_account(nobody_session, REGION, config=Config(retries={"max_attempts": 1}))
    for name, action in EXPECTED_ACTIONS.items():
        section = found.sections[name]
        assert section.status is SectionStatus.NO_PERMISSION, (name, section)
        assert section_summary(section) == f"not scanned: no permission for {action}"
    for quota in (found.vpc_quota, found.eip_quota, found.nat_quota):
        assert quota.fell_back and quota.value == 5
        assert quota.reason == "no permission for servicequotas:GetServiceQuota"
    assert found.vpcs == [] and found.count(ResourceKind.VPC) is None

    report = analyse_account(found, deployment_request())
    assert len(report.skipped_sections) == len(EXPECTED_ACTIONS)
    assert f"{len(EXPECTED_ACTIONS)} section(s) not scanned" in note_lines(report)[0]
    assert "VPCs: not scanned: no permission for ec2:DescribeVpcs" in map(
        section_line, report.skipped_sections
    )
    assert any(c.kind is ConflictKind.COVERAGE for c in report.conflicts)
    assert report.verdict is not Verdict.SAFE


def test_partial_permissions_scan_what_is_allowed(
    seeded: dict[str, str], ec2_reader_session: boto3.Session, enforce_auth: None
) -> None:
    found = scan_account(ec2_reader_session, REGION, config=Config(retries={"max_attempts": 1}))
    for name in ("vpcs", "subnets", "nat_gateways", "availability_zones", "elastic_ips"):
        assert found.sections[name].status is SectionStatus.SCANNED, name
    for name in ("rds_clusters", "ecs_clusters", "s3_buckets", "load_balancers"):
        assert found.sections[name].status is SectionStatus.NO_PERMISSION, name
    assert seeded["legacy"] in {vpc.vpc_id for vpc in found.vpcs}
    report = analyse_account(found, deployment_request())
    assert any(c.kind is ConflictKind.CIDR for c in report.conflicts)
    assert not any(c.kind is ConflictKind.NAME for c in report.conflicts)  # those sections were not scanned


# ---------------------------------------------------------------- Stubber: errors and pagination


def _stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y").client(
        service, region_name=REGION, endpoint_url="http://127.0.0.1:9"
    )
    return client, Stubber(client)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("UnauthorizedOperation", 403, SectionStatus.NO_PERMISSION),
        ("AuthorizationError", 403, SectionStatus.NO_PERMISSION),
        ("AccessDeniedException", 400, SectionStatus.NO_PERMISSION),
        ("SomethingForbidden", 403, SectionStatus.NO_PERMISSION),
        ("InternalError", 500, SectionStatus.ERROR),
        ("RequestLimitExceeded", 503, SectionStatus.ERROR),
    ],
)
def test_section_errors_are_recorded_not_raised(code: str, status: int, expected: SectionStatus) -> None:
    """botocore Stubber on a real ec2 client: moto cannot be made to return these particular codes."""
    client, stubber = _stubbed("ec2")
    stubber.add_client_error(
        "describe_vpcs", service_error_code=code, service_message="nope", http_status_code=status
    )
    with stubber:
        result, fields = scan_module._run_section("vpcs", client)
    assert result.status is expected and fields == {}
    if expected is SectionStatus.ERROR:
        assert (
            result.error == f"{code}: nope" and section_summary(result) == f"not scanned: error: {code}: nope"
        )
    else:
        assert section_summary(result) == "not scanned: no permission for ec2:DescribeVpcs"


def test_describe_vpcs_pages_are_all_read() -> None:
    """Stubber on a real ec2 client: two pages (NextToken), from the AWS-authored describe-vpcs fixtures."""
    pages = json.loads(fixture_path("aws", "awscli_examples_ec2_describe-vpcs.output.json").read_text())
    client, stubber = _stubbed("ec2")
    stubber.add_response("describe_vpcs", {"Vpcs": pages[0]["Vpcs"], "NextToken": "page-2"}, {})
    second = {"Vpcs": [{**pages[1]["Vpcs"][0], "VpcId": "vpc-page2"}]}
    stubber.add_response("describe_vpcs", second, {"NextToken": "page-2"})
    with stubber:
        result, fields = scan_module._run_section("vpcs", client)
    stubber.assert_no_pending_responses()
    assert result.count == 3
    assert [v.vpc_id for v in fields["vpcs"]] == [
        "vpc-0e9801d129EXAMPLE",
        "vpc-06e4ab6c6cEXAMPLE",
        "vpc-page2",
    ]


def test_load_balancer_fixture_keeps_only_application_balancers() -> None:
    """Stubber on a real elbv2 client with the AWS-authored describe-load-balancers output."""
    output = json.loads(
        fixture_path("aws", "awscli_examples_elbv2_describe-load-balancers.output.json").read_text()
    )
    network = {**output["LoadBalancers"][0], "Type": "network", "LoadBalancerName": "nlb"}
    client, stubber = _stubbed("elbv2")
    stubber.add_response(
        "describe_load_balancers", {"LoadBalancers": [*output["LoadBalancers"], network]}, {}
    )
    with stubber:
        _, fields = scan_module._run_section("load_balancers", client)
    assert [lb.name for lb in fields["load_balancers"]] == ["my-load-balancer"]


def test_items_lacking_optional_keys_are_listed_and_lacking_required_ones_fail_their_section() -> None:
    """Stubber on real clients: AWS always returns these keys, so moto cannot leave them out. A subnet
    without its VPC or zone, and a repository without its ARN, are listed with "" (as before the listing
    table); a repository without its name fails the section with the missing key named."""
    ec2, ec2_stub = _stubbed("ec2")
    ec2_stub.add_response(
        "describe_subnets", {"Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.0.0/24"}]}
    )
    with ec2_stub:
        result, fields = scan_module._run_section("subnets", ec2)
    assert result.status is SectionStatus.SCANNED
    assert [(s.subnet_id, s.vpc_id, s.availability_zone) for s in fields["subnets"]] == [("subnet-1", "", "")]

    ecr, ecr_stub = _stubbed("ecr")
    ecr_stub.add_response("describe_repositories", {"repositories": [{"repositoryName": "web"}]})
    ecr_stub.add_response("describe_repositories", {"repositories": [{"repositoryArn": "arn:aws:ecr:x"}]})
    with ecr_stub:
        listed, fields = scan_module._run_section("ecr_repositories", ecr)
        unnamed, _ = scan_module._run_section("ecr_repositories", ecr)
    assert listed.status is SectionStatus.SCANNED
    assert [(r.id, r.name) for r in fields["ecr_repositories"]] == [("", "web")]
    assert unnamed.status is SectionStatus.ERROR and "repositoryName" in (unnamed.error or "")


def test_a_listing_refuses_optional_keys_it_does_not_read() -> None:
    with pytest.raises(ValueError, match="neither the id nor the name"):
        Listing(operation="describe_x", result_key="X", id="XId", optional=frozenset({"XNmae"}))


def test_is_permission_error_ignores_non_client_errors() -> None:
    assert not is_permission_error(ValueError("AccessDenied"))
