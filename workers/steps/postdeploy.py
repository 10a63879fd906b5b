"""Step: after a successful apply, check what was deployed really runs (the runbook's verification)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from bot.views.pipeline import VerificationLine, verification_message
from core.models import Deployment, DeploymentStatus
from workers.runtime import Runtime
from workers.steps.common import aws_session

# The runbook's troubleshooting table, per check (poc-idp's runbook).
HINTS = {
    "cluster": "Check the ECS console for the cluster; an `Access Denied` needs ECS permissions for the profile.",
    "services": "Look at the service's events and stopped tasks (image pull errors, health checks, "
    "InsufficientCapacity: try another AZ or instance type).",
    "targets": "Targets unhealthy: check the container's health_check_path and port, and the ALB/ECS security groups.",
    "database": "Database unreachable from the worker: expected when it is private (no route from the bot's host); "
    "otherwise check the DB security group.",
    "http": "Endpoint errors: check the listener rules, the certificate and DNS (route53_dns_name).",
}
NEXT_STEPS = [
    "Push your images to the ECR repositories and update the services' image tags.",
    "Point DNS at the load balancer (or CloudFront) if route53_configure_dns is off.",
    "Subscribe to the SNS alarm e-mails.",
]


def _output(outputs: dict[str, Any], name: str) -> Any:
    entry = outputs.get(name) or {}
    return None if entry.get("sensitive") else entry.get("value")


def check_cluster(ecs: Any, cluster: str | None) -> VerificationLine:
    if not cluster:
        return VerificationLine(ok=None, name="ECS cluster", detail="no ecs_cluster_name output")
    found = ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
    status = found[0]["status"] if found else "MISSING"
    return VerificationLine(
        ok=status == "ACTIVE", name="ECS cluster", detail=f"`{cluster}` is {status}", hint=HINTS["cluster"]
    )


def check_services(
    ecs: Any, cluster: str | None, services: list[str], timeout: float
) -> list[VerificationLine]:
    if not cluster or not services:
        return [VerificationLine(ok=None, name="ECS services", detail="no services to check")]
    deadline = time.monotonic() + timeout
    while True:
        described = {
            s["serviceName"]: s
            for chunk in _chunks(services, 10)
            for s in ecs.describe_services(cluster=cluster, services=chunk).get("services", [])
        }
        lines = []
        for name in services:
            service = described.get(name)
            if service is None:
                lines.append(
                    VerificationLine(
                        ok=False, name=f"service {name}", detail="not found", hint=HINTS["services"]
                    )
                )
                continue
            running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
            lines.append(
                VerificationLine(
                    ok=running >= desired,
                    name=f"service {name}",
                    detail=f"{running}/{desired} tasks running",
                    hint=HINTS["services"],
                )
            )
        if all(line.ok for line in lines) or time.monotonic() >= deadline:
            return lines
        time.sleep(min(10.0, max(0.5, deadline - time.monotonic())))


def check_targets(elbv2: Any, alb_dns: str | None) -> list[VerificationLine]:
    if not alb_dns:
        return [VerificationLine(ok=None, name="ALB targets", detail="no alb_dns_name output")]
    balancers = [
        lb
        for page in elbv2.get_paginator("describe_load_balancers").paginate()
        for lb in page["LoadBalancers"]
        if lb.get("DNSName") == alb_dns
    ]
    if not balancers:
        return [
            VerificationLine(
                ok=False,
                name="ALB",
                detail=f"no load balancer with DNS name `{alb_dns}`",
                hint=HINTS["targets"],
            )
        ]
    groups = elbv2.describe_target_groups(LoadBalancerArn=balancers[0]["LoadBalancerArn"]).get(
        "TargetGroups", []
    )
    lines = []
    for group in groups:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        healthy = sum(1 for t in health if t["TargetHealth"]["State"] == "healthy")
        lines.append(
            VerificationLine(
                ok=bool(health) and healthy == len(health),
                name=f"targets {group['TargetGroupName']}",
                detail=f"{healthy}/{len(health)} healthy",
                hint=HINTS["targets"],
            )
        )
    return lines or [
        VerificationLine(ok=False, name="ALB targets", detail="no target groups", hint=HINTS["targets"])
    ]


def check_database(endpoint: str | None, enabled: bool) -> VerificationLine:
    if not endpoint or not enabled:
        return VerificationLine(
            ok=None,
            name="database",
            detail="TCP check not configured (ECS_DEPLOY_VERIFY_DB_TCP)"
            if endpoint
            else "no database_endpoint output",
        )
    host, _, port = endpoint.partition(":")
    try:
        with socket.create_connection((host, int(port or 5432)), timeout=5):
            return VerificationLine(ok=True, name="database", detail=f"`{endpoint}` accepts TCP connections")
    except OSError as exc:
        return VerificationLine(
            ok=False, name="database", detail=f"`{endpoint}`: {type(exc).__name__}", hint=HINTS["database"]
        )


def check_http(urls: list[str]) -> list[VerificationLine]:
    lines = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            lines.append(VerificationLine(ok=False, name=url, detail=type(exc).__name__, hint=HINTS["http"]))
            continue
        lines.append(VerificationLine(ok=status < 500, name=url, detail=f"HTTP {status}", hint=HINTS["http"]))
    return lines


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def verify(
    session: boto3.Session, outputs: dict[str, Any], *, timeout: float, db_tcp: bool, http: bool
) -> list[VerificationLine]:
    ecs, elbv2 = session.client("ecs"), session.client("elbv2")
    cluster = _output(outputs, "ecs_cluster_name")
    services_value = _output(outputs, "ecs_service_names") or {}
    services = list(services_value.values()) if isinstance(services_value, dict) else list(services_value)
    lines: list[VerificationLine] = []
    for name, check in (
        ("cluster", lambda: [check_cluster(ecs, cluster)]),
        ("services", lambda: check_services(ecs, cluster, services, timeout)),
        ("targets", lambda: check_targets(elbv2, _output(outputs, "alb_dns_name"))),
    ):
        try:
            lines += check()
        except (ClientError, BotoCoreError) as exc:
            lines.append(
                VerificationLine(
                    ok=False, name=name, detail=f"could not check: {type(exc).__name__}", hint=HINTS[name]
                )
            )
    lines.append(check_database(_output(outputs, "database_endpoint"), db_tcp))
    urls = [
        v for n, o in outputs.items() if isinstance(v := _output(outputs, n), str) and v.startswith("http")
    ]
    if http and urls:
        lines += check_http(urls)
    return lines


def run(rt: Runtime, deployment: Deployment, options: dict[str, str]) -> None:
    settings = rt.settings
    lines = verify(
        aws_session(rt, deployment),
        deployment.outputs,
        timeout=settings.verify_timeout_seconds,
        db_tcp=settings.verify_database_tcp,
        http=settings.verify_http,
    )
    rt.notifier.post(deployment, verification_message(lines, NEXT_STEPS))
    failed = [line.name for line in lines if line.ok is False]
    detail = "all checks passed" if not failed else f"deployed; check {', '.join(failed)[:200]}"
    rt.audit.record("deployment_verified", deployment.id, "worker", failed_checks=",".join(failed))
    rt.notifier.set_status(deployment.id, DeploymentStatus.DEPLOYED, detail)
