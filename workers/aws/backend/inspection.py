"""Inspecting the backend, read-only: the bucket (name, existence, owner, region, versioning,
encryption, public access block, the bot's managed tag) and the lock table (key schema, status),
one `BackendCheck` per rule in a `BackendReport`."""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import ClientError

from aws_edge.terraform_lock import LOCK_KEY
from core.backend_fix import PUBLIC_ACCESS_FLAGS, BucketFacts, is_managed
from core.validation import bucket_name_problem, default_state_bucket
from workers.aws.backend.calls import Clients, call, error_code, http_status
from workers.aws.backend.models import (
    ACCESS_DENIED_CODES,
    MANAGED_TAG,
    BackendAccessDenied,
    BackendCheck,
    BackendError,
    BackendReport,
    CheckName,
    ClientFactory,
)


def suggest_bucket_name(account_id: str | None, region: str) -> str:
    """`tfstate-{account}-{region}-{4 hex}`: the poc-idp default with a short random suffix."""
    account = account_id or "000000000000"
    for _ in range(10):
        name = f"{default_state_bucket(account, region)}-{secrets.token_hex(2)}"
        if bucket_name_problem(name) is None:
            return name
    raise BackendError(f"cannot build a valid bucket name for {account} in {region}")  # pragma: no cover


def inspect_backend(session: ClientFactory, bucket: str, region: str, lock_table: str) -> BackendReport:
    """Read the bucket and lock table and report every rule; changes nothing."""
    return inspect_with(Clients(session, region), bucket, region, lock_table)


def inspect_with(clients: Clients, bucket: str, region: str, lock_table: str) -> BackendReport:
    report = BackendReport(bucket=bucket, region=region, lock_table=lock_table)
    try:
        report.account_id = str(call(clients.sts, "get_caller_identity")["Account"])
        problem = bucket_name_problem(bucket)
        if problem:
            report.suggestion = suggest_bucket_name(report.account_id, region)
            report.checks.append(
                BackendCheck.blocker(
                    CheckName.NAME,
                    detail=f"'{bucket}' is not a valid S3 bucket name: {problem}",
                    fix=f"choose another name, for example {report.suggestion}",
                )
            )
            report.failure = report.checks[-1].detail
            return report
        _inspect_bucket(clients, report)
        _inspect_table(clients, report)
    except BackendAccessDenied as exc:
        report.failure = str(exc)
    except ClientError as exc:
        raise BackendError(f"{exc.operation_name} failed: {exc}") from exc
    if report.failure is None and report.blocking:
        report.failure = report.blocking[0].detail
    return report


def _owned_by_caller(clients: Clients, bucket: str) -> bool | None:
    """Is the bucket in the caller's own bucket list? None when s3:ListAllMyBuckets is not allowed."""
    try:
        answer = call(clients.s3, "list_buckets", Prefix=bucket)
    except BackendAccessDenied:
        return None
    return any(item.get("Name") == bucket for item in answer.get("Buckets", []))


def _foreign_bucket(report: BackendReport) -> BackendCheck:
    report.suggestion = suggest_bucket_name(report.account_id, report.region)
    return BackendCheck.blocker(
        CheckName.OWNER,
        detail=f"bucket {report.bucket} exists but belongs to another account — choose another name",
        fix=f"use another bucket name, for example {report.suggestion}",
    )


def _inspect_bucket(clients: Clients, report: BackendReport) -> None:
    bucket, s3 = report.bucket, clients.s3
    head: dict[str, Any] = {"Bucket": bucket}
    if report.account_id:
        head["ExpectedBucketOwner"] = report.account_id  # real S3 answers 403 for anyone else's bucket
    try:
        s3.head_bucket(**head)
    except ClientError as exc:
        if http_status(exc) == 404 or error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            report.checks.append(
                BackendCheck(
                    name=CheckName.BUCKET,
                    ok=False,
                    detail=f"bucket {bucket} does not exist",
                    fix=f"create {bucket} in {report.region} with versioning, encryption and"
                    " the public access block",
                )
            )
            return
        if http_status(exc) == 403 or error_code(exc) in ACCESS_DENIED_CODES:
            if _owned_by_caller(clients, bucket):
                raise BackendAccessDenied("HeadBucket", "the bucket is in this account") from exc
            report.checks.append(_foreign_bucket(report))
            return
        raise
    # moto (and a foreign bucket whose policy lets us in) answer 200: confirm ownership when we can.
    if _owned_by_caller(clients, bucket) is False:
        report.checks.append(_foreign_bucket(report))
        return
    report.bucket_exists = True
    exists = BackendCheck(name=CheckName.BUCKET, ok=True, detail=f"bucket {bucket} exists")
    report.checks.append(exists)
    report.checks.append(
        BackendCheck(name=CheckName.OWNER, ok=True, detail=f"owned by account {report.account_id}")
    )

    location = call(s3, "get_bucket_location", Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if location == "EU":
        location = "eu-west-1"
    if location != report.region:
        alternative = default_state_bucket(report.account_id or "000000000000", report.region)
        report.suggestion = (
            alternative if alternative != bucket else suggest_bucket_name(report.account_id, report.region)
        )
        report.checks.append(
            BackendCheck.blocker(
                CheckName.REGION,
                detail=f"bucket {bucket} is in {location}, not in {report.region}",
                fix=f"use a state bucket in {report.region}, for example {report.suggestion}",
            )
        )
    else:
        report.checks.append(BackendCheck(name=CheckName.REGION, ok=True, detail=f"in {location}"))

    status = call(s3, "get_bucket_versioning", Bucket=bucket).get("Status")
    report.checks.append(
        BackendCheck(
            name=CheckName.VERSIONING,
            ok=status == "Enabled",
            fixable=status != "Enabled",
            detail="versioning Enabled"
            if status == "Enabled"
            else f"versioning is {status or 'not enabled'}",
            fix="" if status == "Enabled" else "enable versioning",
        )
    )

    algorithms = _encryption_algorithms(s3, bucket)
    report.checks.append(
        BackendCheck(
            name=CheckName.ENCRYPTION,
            ok=bool(algorithms),
            fixable=not algorithms,
            detail=f"default encryption {', '.join(algorithms)}" if algorithms else "no default encryption",
            fix="" if algorithms else "turn on default encryption",
        )
    )

    flags = _public_access_flags(s3, bucket)
    missing = [flag for flag in PUBLIC_ACCESS_FLAGS if not flags.get(flag)]
    report.checks.append(
        BackendCheck(
            name=CheckName.PUBLIC_ACCESS,
            ok=not missing,
            fixable=bool(missing),
            detail="all four public access block flags are on"
            if not missing
            else ("no public access block" if not flags else f"{', '.join(missing)} not set"),
            fix="" if not missing else "block all public access (all four flags)",
        )
    )
    managed = _managed_bucket(s3, bucket)
    exists.detail += (
        f", created by the bot ({MANAGED_TAG})"
        if managed
        else f", not created by the bot (no {MANAGED_TAG} tag)"
    )
    report.facts = BucketFacts(
        bucket=bucket,
        managed=managed,
        versioning=status or None,
        encryption=tuple(algorithms),
        public_access=tuple(flag for flag in PUBLIC_ACCESS_FLAGS if flags.get(flag)),
    )


def _managed_bucket(s3: Any, bucket: str) -> bool:
    """Does the bucket carry the bot's managed tag? Unreadable tags count as not managed (the
    stricter path: a change then needs an approver)."""
    try:
        answer = call(s3, "get_bucket_tagging", Bucket=bucket)
    except BackendAccessDenied:
        return False
    except ClientError as exc:
        if error_code(exc) == "NoSuchTagSet":
            return False
        raise
    return is_managed({str(t.get("Key")): str(t.get("Value")) for t in answer.get("TagSet", [])})


def _encryption_algorithms(s3: Any, bucket: str) -> list[str]:
    try:
        answer = call(s3, "get_bucket_encryption", Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return []
        raise
    rules = answer.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return [
        str(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"])
        for rule in rules
        if rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
    ]


def _public_access_flags(s3: Any, bucket: str) -> dict[str, bool]:
    try:
        answer = call(s3, "get_public_access_block", Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return {}
        raise
    config = answer.get("PublicAccessBlockConfiguration", {})
    return {flag: bool(config.get(flag)) for flag in PUBLIC_ACCESS_FLAGS}


def _inspect_table(clients: Clients, report: BackendReport) -> None:
    name = report.lock_table
    try:
        table = call(clients.dynamodb, "describe_table", TableName=name)["Table"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        report.checks.append(
            BackendCheck(
                name=CheckName.LOCK_TABLE,
                ok=False,
                detail=f"lock table {name} does not exist",
                fix=f"create {name} with hash key {LOCK_KEY} (S), PAY_PER_REQUEST",
            )
        )
        return
    report.table_exists = True
    keys = [(key["AttributeName"], key["KeyType"]) for key in table.get("KeySchema", [])]
    types = {item["AttributeName"]: item["AttributeType"] for item in table.get("AttributeDefinitions", [])}
    if keys != [(LOCK_KEY, "HASH")] or types.get(LOCK_KEY) != "S":
        shown = ", ".join(f"{attr} ({types.get(attr, '?')}, {kind})" for attr, kind in keys)
        report.checks.append(
            BackendCheck.blocker(
                CheckName.LOCK_TABLE,
                detail=f"lock table {name} has key {shown}; Terraform needs hash key {LOCK_KEY} (S) only",
                fix="use another lock table name",
            )
        )
        return
    status = table.get("TableStatus", "")
    report.checks.append(
        BackendCheck(
            name=CheckName.LOCK_TABLE,
            ok=status == "ACTIVE",
            detail=f"lock table {name}: hash key {LOCK_KEY} (S), {status}",
            fix="" if status == "ACTIVE" else "wait until the table is ACTIVE",
        )
    )
