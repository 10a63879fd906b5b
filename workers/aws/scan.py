"""The account scan of an existing AWS account (poc-idp runbook §8, steps 2-5).

Every section (one AWS listing, workers/aws/scan_sections.py) runs in its own thread, so the scan takes
about as long as its slowest call. Clients are created up front from the session (a boto3 Session is not
thread-safe; clients are) and shared by the threads. botocore's data (service models, endpoint rules,
paginators) is loaded once per process and shared by every session (`preload_service_models`).

A section the profile may not call is recorded as "not scanned: no permission for <iam action>"; any
other error is recorded as that section's error. Neither fails the scan.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import Loader, create_loader

from aws_edge import configs
from core.analysis.scan import SECTIONS, SECTIONS_BY_NAME, AccountScan, Quota, SectionResult, SectionStatus
from core.logs import get_logger
from workers.aws.scan_sections import (
    QUOTA_FUNCTIONS,
    SECTION_FUNCTIONS,
    Fields,
    describe_error,
    iam_action,
    is_permission_error,
)
from workers.metrics import observe_scan

log = get_logger(__name__)

# Bounded retries (a throttled or flaky call is retried a little, never for minutes) and a connection
# pool for the concurrent sections.
DEFAULT_CONFIG = configs.SCAN

# The service each section calls (botocore service name).
SECTION_SERVICE: dict[str, str] = {
    "vpcs": "ec2",
    "subnets": "ec2",
    "nat_gateways": "ec2",
    "availability_zones": "ec2",
    "elastic_ips": "ec2",
    "vpc_quota": "service-quotas",
    "eip_quota": "service-quotas",
    "nat_quota": "service-quotas",
    "rds_clusters": "rds",
    "rds_instances": "rds",
    "elasticache_replication_groups": "elasticache",
    "elasticache_cache_clusters": "elasticache",
    "docdb_clusters": "docdb",
    "ecs_clusters": "ecs",
    "load_balancers": "elbv2",
    "ecr_repositories": "ecr",
    "s3_buckets": "s3",
    "efs_file_systems": "efs",
}

# botocore loads each service's JSON model once per *session*; a scan usually gets a fresh session (one per
# profile), so most of its start-up would be model loading. One loader per process keeps them loaded.
_SHARED_LOADER: Loader | None = None


def share_model_loader(session: boto3.Session) -> None:
    """Let the session reuse this process's already-loaded service models (unless it has its own data path)."""
    global _SHARED_LOADER
    core = getattr(session, "_session", None)  # boto3 keeps its botocore session here
    if core is None or core.get_config_variable("data_path"):
        return
    if _SHARED_LOADER is None:
        _SHARED_LOADER = create_loader()
    core.register_component("data_loader", _SHARED_LOADER)


def preload_service_models(region: str = "us-east-1", *, freeze: bool = False) -> float:
    """Load everything botocore reads from disk for a scan, once, when a worker starts: each service's
    model, endpoint rules and paginators, the partitions, retry and default-configuration data.

    The worker's job processes are forked from it and inherit them, so a scan creates its clients from
    memory instead of parsing ~10 MB of JSON in every job. One client per service is built and
    dropped on the way (no credentials are looked up and nothing is sent: dummy keys).

    With `freeze` (the worker, right before it starts forking): collect, then move every object the
    process holds out of the cyclic garbage collector's reach (`gc.freeze`, as CPython's documentation
    advises before fork without exec), so a job process neither scans those objects again in its own
    collections nor copies their memory pages by touching them. Returns the seconds it took; never
    raises, since a scan without the preload only loads the models itself."""
    started = time.perf_counter()
    services = sorted(set(SECTION_SERVICE.values()))
    try:
        session = boto3.Session(
            region_name=region, aws_access_key_id="preload", aws_secret_access_key="preload"
        )
        share_model_loader(session)
        for service in services:
            client = session.client(service, region_name=region, config=DEFAULT_CONFIG)
            client.can_paginate(next(iter(client.meta.method_to_api_mapping)))  # loads paginators-1
    except Exception:  # the scan works without it, only slower
        log.warning("aws_models_preload_failed", exc_info=True)
    if freeze:
        gc.collect()
        gc.freeze()
    elapsed = time.perf_counter() - started
    log.info(
        "aws_models_preloaded",
        services=len(services),
        seconds=round(elapsed, 3),
        frozen=gc.get_freeze_count(),
    )
    return elapsed


def _run_section(name: str, client: Any) -> tuple[SectionResult, Fields]:
    result = SectionResult.of(name)
    started = time.perf_counter()
    fields: Fields = {}
    try:
        if name in QUOTA_FUNCTIONS:
            fields = QUOTA_FUNCTIONS[name](client)
            quota: Quota = fields[name]
            result.count = quota.value
            if quota.fell_back:
                result.status, result.error = SectionStatus.FALLBACK, quota.reason
        else:
            fields, result.count = SECTION_FUNCTIONS[name](client)
    except ClientError as error:
        if is_permission_error(error):
            result.status = SectionStatus.NO_PERMISSION
            result.iam_action = iam_action(client, error.operation_name)
        else:
            result.status, result.error = SectionStatus.ERROR, describe_error(error)
    except Exception as error:  # a section's failure is reported, never fatal to the scan
        result.status, result.error = SectionStatus.ERROR, describe_error(error)
    result.elapsed_s = round(time.perf_counter() - started, 4)
    return result, fields


def scan_account(
    session: boto3.Session,
    region: str,
    *,
    sections: Iterable[str] | None = None,
    config: Config | None = None,
    max_workers: int | None = None,
) -> AccountScan:
    """Scan `region` of the session's account: every section of `core.analysis.scan.SECTIONS` (or the named
    subset, e.g. `FRESH_ACCOUNT_SECTIONS`), concurrently."""
    started = time.perf_counter()
    names = [spec.name for spec in SECTIONS] if sections is None else list(dict.fromkeys(sections))
    unknown = [name for name in names if name not in SECTIONS_BY_NAME]
    if unknown:
        raise ValueError(f"Unknown scan section(s): {', '.join(unknown)}")
    client_config = DEFAULT_CONFIG.merge(config) if config else DEFAULT_CONFIG
    # Clients up front, in this thread: sessions are not thread-safe, clients are.
    share_model_loader(session)
    clients: dict[str, Any] = {}
    for name in names:
        service = SECTION_SERVICE[name]
        if service not in clients:
            clients[service] = session.client(service, region_name=region, config=client_config)

    with ThreadPoolExecutor(max_workers=max_workers or len(names) or 1, thread_name_prefix="scan") as pool:
        futures = [pool.submit(_run_section, name, clients[SECTION_SERVICE[name]]) for name in names]
        outcomes = [future.result() for future in futures]

    data: Fields = {"region": region, "sections": {}}
    for result, fields in outcomes:
        data["sections"][result.name] = result
        data.update(fields)
    data["elapsed_s"] = round(time.perf_counter() - started, 4)
    observe_scan(data["elapsed_s"])  # ecs_deploy_account_scan_duration_seconds (workers/metrics.py)
    return AccountScan.model_validate(data)
