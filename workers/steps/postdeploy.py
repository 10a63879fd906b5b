"""Step: after a successful apply, check what was deployed really runs (the runbook's verification)."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from aws_edge import configs
from bot.views.destroy import destroyed_message, state_not_empty
from bot.views.pipeline import VerificationLine, verification_message
from core.lifecycle import DeploymentKind, Move
from core.models import Deployment
from workers.runtime import Runtime, StepFailure, move
from workers.steps.common import aws_session
from workers.terraform.state_backend import read_state

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
# HTTP checks call URLs that Terraform's outputs name: the repository decides them. They never reach
# link-local addresses (the EC2/ECS metadata services live there) or AWS's IPv6 link services,
# never follow a redirect to another host, and give up quickly.
HTTP_TIMEOUT = 5.0  # seconds, for connecting and for each read
MAX_REDIRECTS = 3
MAX_URLS = 10
AWS_LINK_SERVICES = ipaddress.ip_network("fd00:ec2::/64")  # fd00:ec2::254 metadata, ::253 DNS, ::123 NTP
DEFAULT_PORTS = {"http": 80, "https": 443}

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


class Refused(Exception):
    """The bot will not connect there; the message says why."""


def forbidden_address(address: str) -> str | None:
    """Why the bot never connects to this IP address (None: it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return f"{ip} is a link-local address (instance metadata and other host services)"
    if ip in AWS_LINK_SERVICES:
        return f"{ip} is an AWS link-local service address (instance metadata, DNS)"
    if not ip.is_loopback and (ip.is_unspecified or ip.is_multicast or ip.is_reserved):
        return f"{ip} is not a unicast address"
    return None


def allowed_address(host: str, port: int) -> str:
    """The address to connect to for host:port, checked: every address the name resolves to must be
    allowed (DNS can answer differently next time, so the caller connects to this one)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        reason = forbidden_address(address)
        if reason:
            raise Refused(f"not checked: {reason}")
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address, with the URL's host name in the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is verified for the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise Refused("not an http(s) URL with a host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise Refused("the URL's port is not a number") from None
    return scheme, parts.hostname.lower(), port


def http_status(url: str, *, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """GET `url` and return (status, note). Redirects are followed on the same scheme, host and port
    only; a redirect elsewhere is reported, not followed. Refused before connecting when the host
    is (or resolves to) a forbidden address."""
    origin = _origin(url)
    scheme, host, port = origin
    for _ in range(MAX_REDIRECTS + 1):
        address = allowed_address(host, port)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection_class = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        connection = connection_class(host, port, address, timeout)
        try:
            connection.request("GET", target, headers={"User-Agent": "ecs-deploy-bot verification"})
            response = connection.getresponse()
            status, location = response.status, response.getheader("Location")
        finally:
            connection.close()
        if status not in (301, 302, 303, 307, 308) or not location:
            return status, ""
        following = urljoin(url, location)
        try:
            same_origin = _origin(following) == origin
        except Refused:
            same_origin = False
        if not same_origin:
            return status, " (redirect to another host not followed)"
        url = following
    return status, f" (stopped after {MAX_REDIRECTS} redirects)"


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
        address = allowed_address(host, int(port or 5432))
        with socket.create_connection((address, int(port or 5432)), timeout=5):
            return VerificationLine(ok=True, name="database", detail=f"`{endpoint}` accepts TCP connections")
    except Refused as refused:
        return VerificationLine(ok=False, name="database", detail=str(refused), hint=HINTS["database"])
    except (OSError, ValueError) as exc:
        return VerificationLine(
            ok=False, name="database", detail=f"`{endpoint}`: {type(exc).__name__}", hint=HINTS["database"]
        )


def check_http(urls: list[str], *, timeout: float = HTTP_TIMEOUT) -> list[VerificationLine]:
    lines = []
    if len(urls) > MAX_URLS:
        lines.append(
            VerificationLine(
                ok=None, name="HTTP", detail=f"only the first {MAX_URLS} of {len(urls)} URLs checked"
            )
        )
    for url in urls[:MAX_URLS]:
        try:
            status, note = http_status(url, timeout=timeout)
        except Refused as refused:
            lines.append(VerificationLine(ok=False, name=url, detail=str(refused), hint=HINTS["http"]))
            continue
        except (OSError, http.client.HTTPException) as exc:
            detail = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            lines.append(VerificationLine(ok=False, name=url, detail=detail, hint=HINTS["http"]))
            continue
        lines.append(
            VerificationLine(ok=status < 500, name=url, detail=f"HTTP {status}{note}", hint=HINTS["http"])
        )
    return lines


def _destroyed(rt: Runtime, deployment: Deployment) -> None:
    """A destroy's check: the state in S3 holds no resources any more (no endpoint to check)."""
    request = deployment.request
    state = read_state(aws_session(rt, deployment), request.state_bucket, request.state_key)
    if not state.known or state.addresses:
        raise StepFailure(*state_not_empty(sorted(state.addresses), state.problem))
    rt.notifier.post(deployment, destroyed_message(deployment))
    rt.audit.record("environment_destroyed", deployment.id, "worker", serial=state.serial)
    move(rt, deployment.id, Move.DESTROYED, "destroyed: the state holds no resources")


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def verify(
    session: boto3.Session, outputs: dict[str, Any], *, timeout: float, db_tcp: bool, http: bool
) -> list[VerificationLine]:
    ecs = session.client("ecs", config=configs.DEFAULT)
    elbv2 = session.client("elbv2", config=configs.DEFAULT)
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
    if deployment.kind is DeploymentKind.DESTROY:
        _destroyed(rt, deployment)
        return
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
    move(rt, deployment.id, Move.DEPLOYMENT_VERIFIED, detail)
