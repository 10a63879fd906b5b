"""Benchmark: the bot's concurrent account scan against the runbook's AWS CLI commands run one after another.

    .venv/bin/python bench/scan.py

Starts its own moto server on 127.0.0.1 (a free port), seeds an account with a realistic spread
(5 VPCs, 200 buckets, 30 ECS clusters, 20 RDS clusters, 40 load balancers), then the same at 2x, and
for each size times `workers.aws.scan.scan_account` against the runbook's CLI sequence on the same endpoint.
The CLI is `aws` when it is on PATH, else `python -m awscli`, else an emulation that spawns one fresh
Python process per command (process start + boto3 client creation + the call: what the CLI costs).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGION = "us-east-1"
BASE = {"vpcs": 5, "buckets": 200, "ecs": 30, "rds": 20, "albs": 40}
SCALES = (1, 2)
SCAN_RUNS = 3
COMMAND_TIMEOUT = 60

# The runbook's existing-account commands (§8 steps 2-5), in order. "{clusters}" is list-clusters' output.
CLI_COMMANDS: list[tuple[str, str, list[str]]] = [
    ("ec2", "describe-vpcs", []),
    ("ec2", "describe-subnets", []),
    ("ec2", "describe-nat-gateways", []),
    ("rds", "describe-db-clusters", []),
    ("elasticache", "describe-cache-clusters", []),
    ("docdb", "describe-db-clusters", ["--filters", "Name=engine,Values=docdb"]),
    ("ecs", "list-clusters", []),
    ("ecs", "describe-clusters", ["--clusters", "{clusters}"]),
    ("elbv2", "describe-load-balancers", []),
    ("ecr", "describe-repositories", []),
    ("s3api", "list-buckets", []),
    ("efs", "describe-file-systems", []),
]

# One process per command, as the CLI would be: start Python, create a client, make the (paginated) call.
EMULATED_CLI = r"""
import json, sys, boto3
service, operation, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = boto3.client("s3" if service == "s3api" else service)
name = operation.replace("-", "_")
if client.can_paginate(name):
    result = {}
    for page in client.get_paginator(name).paginate(**args):
        for key, value in page.items():
            if isinstance(value, list):
                result.setdefault(key, []).extend(value)
else:
    result = getattr(client, name)(**args)
print(json.dumps(result, default=str))
"""


def find_cli() -> tuple[list[str] | None, str]:
    """How to run the AWS CLI here: the real one if possible."""
    path = shutil.which("aws")
    if path:
        real = path
        if "/.pyenv/shims/" in path:  # resolve pyenv's shim so its own bash start-up is not counted
            found = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True, check=False)
            real = found.stdout.strip() or path
        version = subprocess.run([real, "--version"], capture_output=True, text=True, check=False)
        if version.returncode == 0:
            return [real], f"AWS CLI on PATH ({real}): {(version.stdout or version.stderr).strip()}"
    probe = subprocess.run([sys.executable, "-m", "awscli", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "awscli"], "python -m awscli"
    return None, "emulated: one fresh Python process per command (start + boto3 client + call)"


def _emulated_args(service: str, options: list[str]) -> dict[str, Any]:
    if "--clusters" in options:
        return {"clusters": options[options.index("--clusters") + 1 :]}
    if "--filters" in options:
        return {"Filters": [{"Name": "engine", "Values": ["docdb"]}]}
    return {}


def run_cli_sequence(cli: list[str] | None, env: dict[str, str], endpoint: str) -> float:
    started = time.perf_counter()
    clusters: list[str] = []
    for service, operation, options in CLI_COMMANDS:
        args = [a for option in options for a in (clusters if option == "{clusters}" else [option])]
        if cli is not None:
            command = [*cli, service, operation, *args, "--region", REGION, "--output", "json"]
            command += [
                "--endpoint-url",
                endpoint,
            ]  # AWS CLI v1 does not apply AWS_ENDPOINT_URL to every service
        else:
            params = json.dumps(_emulated_args(service, args))
            command = [sys.executable, "-c", EMULATED_CLI, service, operation, params]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} failed: {done.stderr.strip()[:500]}")
        if operation == "list-clusters":
            clusters = json.loads(done.stdout)["clusterArns"]
    return time.perf_counter() - started


def seed(session: Any, scale: int) -> dict[str, int]:
    ec2 = session.client("ec2")
    vpc_ids = [
        ec2.create_vpc(CidrBlock=f"10.{10 + i}.0.0/16")["Vpc"]["VpcId"] for i in range(BASE["vpcs"] * scale)
    ]
    subnets = [
        ec2.create_subnet(VpcId=vpc_ids[0], CidrBlock=f"10.10.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate("abc")
    ]
    group = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc_ids[0])["GroupId"]
    s3, ecs, rds, elbv2 = (session.client(name) for name in ("s3", "ecs", "rds", "elbv2"))

    jobs: list[Callable[[], Any]] = []
    jobs += [
        partial(s3.create_bucket, Bucket=f"bench-bucket-{i:04d}") for i in range(BASE["buckets"] * scale)
    ]
    jobs += [partial(ecs.create_cluster, clusterName=f"cluster-{i:03d}") for i in range(BASE["ecs"] * scale)]
    jobs += [
        partial(
            rds.create_db_cluster,
            DBClusterIdentifier=f"db-{i:03d}",
            Engine="aurora-postgresql",
            MasterUsername="dbadmin",
            MasterUserPassword="password-123",
        )
        for i in range(BASE["rds"] * scale)
    ]
    jobs += [
        partial(
            elbv2.create_load_balancer,
            Name=f"alb-{i:03d}",
            Subnets=subnets,
            SecurityGroups=[group],
            Type="application",
        )
        for i in range(BASE["albs"] * scale)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return {key: value * scale for key, value in BASE.items()}


def warm_moto(session: Any) -> None:
    """Load every moto backend the scan touches, so the timings measure the scan, not moto's start-up."""
    session.client("elasticache").describe_cache_clusters()
    session.client("efs").describe_file_systems()
    session.client("ecr").describe_repositories()
    session.client("docdb").describe_db_clusters()
    session.client("service-quotas").get_service_quota(ServiceCode="vpc", QuotaCode="L-F678F1CE")
    session.client("ec2").describe_nat_gateways()


def main() -> int:
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    (workdir / "config").write_text(f"[default]\nregion = {REGION}\n")
    (workdir / "credentials").write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(workdir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    }
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env["AWS_ENDPOINT_URL"] = endpoint
    os.environ.clear()
    os.environ.update(env)

    from workers.aws import scan as scan_module
    from workers.aws.scan import scan_account

    cli, how = find_cli()
    print(f"moto server: {endpoint}")
    print(f"CLI baseline: {how}")
    rows = []
    try:
        for scale in SCALES:
            requests.post(endpoint + "/moto-api/reset", timeout=30).raise_for_status()
            session = boto3.Session(region_name=REGION)
            seeded = seed(session, scale)
            warm_moto(session)
            scan_module._SHARED_LOADER = None  # as in a fresh worker process: no service model loaded yet
            started = time.perf_counter()
            scan_account(boto3.Session(region_name=REGION), REGION)
            cold = time.perf_counter() - started
            timings = []
            for _ in range(SCAN_RUNS):
                started = time.perf_counter()
                found = scan_account(boto3.Session(region_name=REGION), REGION)  # a fresh session each time
                timings.append(time.perf_counter() - started)
            bad = [s.summary for s in found.sections.values() if not s.scanned]
            if bad:
                raise RuntimeError(f"scan sections failed: {bad}")
            assert len(found.s3_buckets) == seeded["buckets"] and len(found.ecs_clusters) == seeded["ecs"]
            assert len(found.load_balancers) == seeded["albs"] and len(found.rds_clusters) == seeded["rds"]
            cli_seconds = run_cli_sequence(cli, env, endpoint)
            scan_seconds = statistics.median(timings)
            slowest = max(found.sections.values(), key=lambda s: s.elapsed_s)
            rows.append((scale, seeded, cold, scan_seconds, cli_seconds, slowest.name, slowest.elapsed_s))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print("bot scan, cold = first scan of a fresh worker (service models loaded from disk);")
    print(f"bot scan, warm = median of {SCAN_RUNS} later scans, each with a new boto3 Session;")
    print(f"CLI sequence = the runbook's {len(CLI_COMMANDS)} commands run one after another, once.")
    print()
    header = f"{'size':<5}{'resources':<50}{'cold':>8}{'warm':>8}{'CLI seq.':>10}{'ratio cold':>12}{'ratio warm':>12}"
    print(header + "  slowest section (warm)")
    for scale, seeded, cold, warm, cli_seconds, slowest_name, slowest_s in rows:
        spread = ", ".join(f"{v} {k}" for k, v in seeded.items())
        print(
            f"{scale}x{'':<3}{spread:<50}{cold:>7.2f}s{warm:>7.2f}s{cli_seconds:>9.2f}s"
            f"{cli_seconds / cold:>11.1f}x{cli_seconds / warm:>11.1f}x  {slowest_name} {slowest_s:.2f}s"
        )
    if len(rows) == 2:
        print(
            f"\nGrowth 1x → 2x: bot scan (warm) {rows[1][3] / rows[0][3]:.2f}x,"
            f" CLI sequence {rows[1][4] / rows[0][4]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
