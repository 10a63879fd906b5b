"""Benchmark: the bot's concurrent account scan against the runbook's AWS CLI commands run one after another.

    .venv/bin/python bench/scan.py

Starts its own moto server on 127.0.0.1 (a free port, in its own process like AWS, so its request
handling does not compete with the scan for this process's GIL), seeds an account with a realistic
spread (5 VPCs, 200 buckets, 30 ECS clusters, 20 RDS clusters, 40 load balancers), then the same at
2x, and for each size times `workers.aws.scan.scan_account` against the runbook's CLI sequence on the
same endpoint:

* cold: the first scan in a fresh worker process (`--fresh-worker`), after the preload a worker does
  when it starts (`preload_service_models(freeze=True)`, timed on its own: paid once per worker
  start, before any job), and for comparison without it. A worker's job processes are forked from
  it after the preload, so in production every scan is such a first scan;
* warm: the scans after the first in the same process, each with a new boto3 Session.

The CLI is `aws` when it is on PATH, else `python -m awscli`, else an emulation that spawns one fresh
Python process per command (process start + boto3 client creation + the call: what the CLI costs).
It ends with the targets (cold ≥ 10×, warm ≥ 25× faster than the CLI sequence) as met / not met:
figures, not assertions; other work on the machine skews them, so the load average is printed too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.child import run_child

REGION = "us-east-1"
BASE = {"vpcs": 5, "buckets": 200, "ecs": 30, "rds": 20, "albs": 40}
SCALES = (1, 2)
SCAN_RUNS = 3
FRESH_RUNS = 3
# Targets (issue "Faster where users wait"): how many times faster than the runbook's CLI sequence.
TARGET_COLD = 10
TARGET_WARM = 25
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


def fresh_worker(preload: bool) -> dict[str, Any]:
    """Child mode: a fresh worker process. It imports the scan and preloads as a worker does when it
    starts (`--fresh-worker preload`: the models, then gc.freeze) or not (`none`), then runs its first
    scan (cold) and SCAN_RUNS more (warm), each with a new boto3 Session. Each part timed on its own."""
    import boto3

    from workers.aws.scan import preload_service_models, scan_account

    preload_s = preload_service_models(freeze=True) if preload else 0.0
    times: list[float] = []
    for _ in range(1 + SCAN_RUNS):
        started = time.perf_counter()
        found = scan_account(boto3.Session(region_name=REGION), REGION)
        times.append(time.perf_counter() - started)
    failed = [
        f"{section.name}: {section.status.value} {section.error}".rstrip()
        for section in found.sections.values()
        if not section.scanned
    ]
    if failed:
        raise RuntimeError(f"scan sections failed: {failed}")
    slowest = max(found.sections.values(), key=lambda section: section.elapsed_s)
    return {
        "preload_s": preload_s,
        "cold_s": times[0],
        "warm_s": statistics.median(times[1:]),
        "slowest": f"{slowest.name} {slowest.elapsed_s:.2f}s",
        "found": {
            "buckets": len(found.s3_buckets),
            "ecs": len(found.ecs_clusters),
            "albs": len(found.load_balancers),
            "rds": len(found.rds_clusters),
            "vpcs": len(found.vpcs),
        },
    }


def run_fresh_worker(preload: bool, env: dict[str, str]) -> dict[str, Any]:
    return run_child(
        __file__,
        ["--fresh-worker", "preload" if preload else "none"],
        what="fresh worker",
        timeout=COMMAND_TIMEOUT,
        env=env,
    )


def start_moto(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """moto in its own process, as AWS is: its request handling must not share the scan's GIL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, endpoint
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every timing here."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    import boto3
    import requests

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
    server, endpoint = start_moto(env)
    env["AWS_ENDPOINT_URL"] = endpoint
    os.environ.clear()
    os.environ.update(env)

    cli, how = find_cli()
    print(f"moto server: {endpoint} (its own process)")
    print(f"CLI baseline: {how}")
    print(f"load average at start: {load_average()}", flush=True)
    rows = []
    try:
        for scale in SCALES:
            requests.post(endpoint + "/moto-api/reset", timeout=30).raise_for_status()
            session = boto3.Session(region_name=REGION)
            seeded = seed(session, scale)
            warm_moto(session)
            preloaded = [run_fresh_worker(True, env) for _ in range(FRESH_RUNS)]
            unprepared = [run_fresh_worker(False, env) for _ in range(FRESH_RUNS)]
            for result in preloaded + unprepared:
                found = result["found"]
                if any(found[key] != seeded[key] for key in ("buckets", "ecs", "albs", "rds")):
                    raise RuntimeError(f"the scan found {found}, seeded {seeded}")
            rows.append(
                Row(
                    scale=scale,
                    seeded=seeded,
                    preload=statistics.median(r["preload_s"] for r in preloaded),
                    cold=statistics.median(r["cold_s"] for r in preloaded),
                    cold_unprepared=statistics.median(r["cold_s"] for r in unprepared),
                    warm=statistics.median(r["warm_s"] for r in preloaded),
                    cli=run_cli_sequence(cli, env, endpoint),
                    slowest=preloaded[-1]["slowest"],
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=COMMAND_TIMEOUT)
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(rows)
    print(f"load average at the end: {load_average()}")
    return 0


@dataclass(frozen=True)
class Row:
    scale: int
    seeded: dict[str, int]
    preload: float
    cold: float
    cold_unprepared: float
    warm: float
    cli: float
    slowest: str


def print_report(rows: list[Row]) -> None:
    print()
    print(
        f"cold = the first scan of a fresh worker process after the preload a worker does when it starts"
        f" (median of {FRESH_RUNS} processes; the preload's own cost in its column, paid once per worker"
        " start, before any job);"
    )
    print("cold, no preload = the same without it (every scan paid this before workers preloaded);")
    print(
        f"warm = median of the {SCAN_RUNS} scans after the first in the same processes, each with a new"
        " boto3 Session;"
    )
    print(f"CLI sequence = the runbook's {len(CLI_COMMANDS)} commands run one after another, once.")
    print()
    header = (
        f"{'size':<5}{'resources':<50}{'preload':>8}{'cold':>7}{'no prel.':>9}{'warm':>7}{'CLI seq.':>9}"
        f"{'× cold':>8}{'× warm':>8}"
    )
    print(header + "  slowest section (last scan)")
    for row in rows:
        spread = ", ".join(f"{v} {k}" for k, v in row.seeded.items())
        print(
            f"{row.scale}x{'':<3}{spread:<50}{row.preload:>7.2f}s{row.cold:>6.2f}s{row.cold_unprepared:>8.2f}s"
            f"{row.warm:>6.2f}s{row.cli:>8.2f}s{row.cli / row.cold:>7.1f}x{row.cli / row.warm:>7.1f}x  {row.slowest}"
        )
    if len(rows) == 2:
        print(
            f"\nGrowth 1x → 2x: bot scan (warm) {rows[1].warm / rows[0].warm:.2f}x,"
            f" CLI sequence {rows[1].cli / rows[0].cli:.2f}x"
        )
    print()
    for row in rows:
        cold_ratio, warm_ratio = row.cli / row.cold, row.cli / row.warm
        print(
            f"targets at {row.scale}x: cold ≥ {TARGET_COLD}× faster than the CLI sequence: {cold_ratio:.1f}× "
            f"{met(cold_ratio >= TARGET_COLD)}; warm ≥ {TARGET_WARM}×: {warm_ratio:.1f}× "
            f"{met(warm_ratio >= TARGET_WARM)}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--fresh-worker":
        print(json.dumps(fresh_worker(sys.argv[2] == "preload")))
        sys.exit(0)
    sys.exit(main())
