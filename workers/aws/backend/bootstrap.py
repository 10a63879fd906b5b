"""Preparing the backend: creating a missing bucket (tagged as the bot's, versioned, encrypted, public
access blocked) and lock table, and fixing an existing bucket only when that fix was confirmed (or
the caller said so); otherwise it answers with the `fix_plan` to confirm."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, WaiterError

from aws_edge.terraform_lock import LOCK_KEY
from core.backend_fix import PUBLIC_ACCESS_FLAGS, BackendFixPlan, Setting, managed_tags, plan_fix
from workers.aws.backend.calls import Clients, call, error_code
from workers.aws.backend.inspection import inspect_with, suggest_bucket_name
from workers.aws.backend.models import (
    MANAGED_TAG,
    BackendAccessDenied,
    BackendError,
    BackendReport,
    BackendResult,
    CheckName,
    ClientFactory,
)


def bootstrap_backend(
    session: ClientFactory,
    bucket: str,
    region: str,
    lock_table: str,
    *,
    kms_key_id: str | None = None,
    fix_existing: bool = False,
    confirmed: BackendFixPlan | None = None,
) -> BackendResult:
    """Create the bucket and lock table when missing (tagged as the bot's). Change an existing bucket
    only when `confirmed` is exactly the fix it needs now (same bucket, changes and managed flag), or,
    without `confirmed`, when the caller says so with `fix_existing`; else ask (`needs_confirmation`)."""
    clients = Clients(session, region)
    report = inspect_with(clients, bucket, region, lock_table)
    base = {"bucket": bucket, "region": region, "lock_table": lock_table}
    if report.failure:
        return BackendResult(
            ok=False,
            message=f"State backend not ready: {report.failure}",
            failure=report.failure,
            suggestion=report.suggestion,
            report=report,
            **base,
        )
    plan = plan_fix(report.facts, kms_key_id) if report.facts is not None else None
    if plan is not None and plan.changes:
        if confirmed is not None and not confirmed.same_fix(plan):
            return _ask(report, plan, f"The bucket {bucket} is not as it was when the fix was confirmed")
        if confirmed is None and not fix_existing:
            return _ask(
                report, plan, f"The existing bucket {bucket} needs changes before it holds Terraform state"
            )
    names = plan.settings if plan is not None else frozenset()

    changes: list[str] = []
    created_bucket = created_table = False
    try:
        if not report.bucket_exists:
            created_bucket = _create_bucket(clients.s3, bucket, region, report.account_id)
            if created_bucket:
                changes.append(f"created bucket {bucket} in {region}")
                call(clients.s3, "put_bucket_tagging", Bucket=bucket, Tagging={"TagSet": managed_tags()})
                changes.append(f"tagged bucket {bucket} {MANAGED_TAG}")
        fix_all = created_bucket
        if fix_all or Setting.VERSIONING in names:
            call(
                clients.s3,
                "put_bucket_versioning",
                Bucket=bucket,
                VersioningConfiguration={"Status": "Enabled"},
            )
            changes.append("enabled versioning")
        if fix_all or Setting.ENCRYPTION in names:
            call(
                clients.s3,
                "put_bucket_encryption",
                Bucket=bucket,
                ServerSideEncryptionConfiguration={"Rules": [_encryption_rule(kms_key_id)]},
            )
            changes.append(
                f"turned on default encryption aws:kms ({kms_key_id})"
                if kms_key_id
                else "turned on default encryption AES256"
            )
        if fix_all or Setting.PUBLIC_ACCESS in names:
            call(
                clients.s3,
                "put_public_access_block",
                Bucket=bucket,
                PublicAccessBlockConfiguration=dict.fromkeys(PUBLIC_ACCESS_FLAGS, True),
            )
            changes.append("blocked all public access")
        if not report.table_exists:
            created_table = _create_table(clients.dynamodb, lock_table)
            if created_table:
                changes.append(
                    f"created lock table {lock_table} (hash key {LOCK_KEY}, PAY_PER_REQUEST, tagged {MANAGED_TAG})"
                )
        lock_check = report.check(CheckName.LOCK_TABLE)
        if created_table or (lock_check is not None and not lock_check.ok):
            _wait_for_table(clients.dynamodb, lock_table)
    except BackendAccessDenied as exc:
        return BackendResult(
            ok=False,
            message=f"State backend not ready: {exc}",
            failure=str(exc),
            changes=changes,
            created_bucket=created_bucket,
            created_table=created_table,
            report=report,
            **base,
        )
    except _NameTaken as exc:
        suggestion = suggest_bucket_name(report.account_id, region)
        failure = f"bucket name {bucket} is taken by another AWS account ({exc}) — choose another name"
        return BackendResult(
            ok=False,
            message=f"State backend not ready: {failure}",
            failure=failure,
            suggestion=suggestion,
            report=report.model_copy(update={"suggestion": suggestion}),
            **base,
        )
    except ClientError as exc:
        raise BackendError(f"{exc.operation_name} failed: {exc}") from exc

    final = inspect_with(clients, bucket, region, lock_table) if changes else report
    if changes:
        message = "State backend ready: " + "; ".join(changes) + "."
    else:
        message = "State backend already in place: nothing to change."
    return BackendResult(
        ok=final.ok,
        message=message
        if final.ok
        else f"State backend still not ready: {final.failure or 'see the checks'}",
        changes=changes,
        created_bucket=created_bucket,
        created_table=created_table,
        failure=None if final.ok else (final.failure or "a check still fails after the changes"),
        report=final,
        **base,
    )


def _ask(report: BackendReport, plan: BackendFixPlan, why: str) -> BackendResult:
    """Change nothing; the fix plan waits for a confirmation."""
    listed = "; ".join(change.text for change in plan.changes)
    return BackendResult(
        ok=False,
        needs_confirmation=True,
        fix_plan=plan,
        message=f"{why}: {listed}. Confirm to make these changes.",
        report=report,
        bucket=report.bucket,
        region=report.region,
        lock_table=report.lock_table,
    )


class _NameTaken(Exception):
    pass


def _encryption_rule(kms_key_id: str | None) -> dict[str, Any]:
    if kms_key_id:
        return {
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id},
            "BucketKeyEnabled": True,
        }
    return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}


def _create_bucket(s3: Any, bucket: str, region: str, account_id: str | None) -> bool:
    """Create the bucket; False when it turns out to be ours already. us-east-1 takes no LocationConstraint."""
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        call(s3, "create_bucket", **kwargs)
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":
            return False
        if error_code(exc) == "BucketAlreadyExists":
            raise _NameTaken(error_code(exc)) from exc
        raise
    return True


def _create_table(dynamodb: Any, name: str) -> bool:
    try:
        call(
            dynamodb,
            "create_table",
            TableName=name,
            AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=managed_tags(),
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceInUseException":  # created concurrently: wait for it like our own
            return False
        raise
    return True


def _wait_for_table(dynamodb: Any, name: str) -> None:
    try:
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    except WaiterError as exc:
        raise BackendError(f"lock table {name} did not become ACTIVE: {exc}") from exc
