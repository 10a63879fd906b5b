"""The Terraform state backend: an S3 bucket and a DynamoDB lock table (poc-idp-inputs.md §7).

`inspect_backend` only reads and returns a `BackendReport`: one `BackendCheck` per rule, each saying
whether it holds, what was found and what the bot would do about it, plus the existing bucket's
`BucketFacts` (its settings and whether it carries the bot's `ecs-deploy-bot:managed` tag).
`bootstrap_backend` creates what is missing — a bucket or lock table it creates is tagged
`ecs-deploy-bot:managed=true` — and changes an existing bucket only when someone confirmed exactly
the changes it would make now (`confirmed`, a `BackendFixPlan` from core.backend_fix; who may
confirm is core.backend_confirm's business), or when the caller decided so itself
(`fix_existing=True`, without `confirmed`). Otherwise it changes nothing and answers
`needs_confirmation=True` with the `fix_plan` to confirm. Both are idempotent: a second run reports
`changes == []`. An existing lock table is never changed.

Expected problems (an invalid or taken name, a bucket of another account or region, a missing IAM
permission) are returned as a `failure` with a message for the thread; only unexpected AWS errors
raise `BackendError`.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError
from pydantic import BaseModel, Field

from aws_edge import configs
from aws_edge.terraform_lock import LOCK_KEY
from core.backend_fix import (
    MANAGED_TAG_KEY,
    MANAGED_TAG_VALUE,
    PUBLIC_ACCESS_FLAGS,
    BackendFixPlan,
    BucketFacts,
    Setting,
    is_managed,
    managed_tags,
    plan_fix,
)
from core.validation import bucket_name_problem, default_state_bucket

# Each boto3 operation this module calls, mapped to the IAM action that allows it.
IAM_ACTIONS: dict[str, str] = {
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "HeadBucket": "s3:ListBucket",
    "ListBuckets": "s3:ListAllMyBuckets",
    "CreateBucket": "s3:CreateBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "DescribeTable": "dynamodb:DescribeTable",
    "CreateTable": "dynamodb:CreateTable",  # with Tags: dynamodb:TagResource too
}

ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AllAccessDisabled", "403"}
)
MANAGED_TAG = f"{MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}"


class ClientFactory(Protocol):
    """What the engine needs from a boto3.Session (tests may pass a factory of stubbed clients)."""

    def client(
        self, service_name: str, region_name: str | None = None, config: Config | None = None
    ) -> Any: ...


class BackendError(Exception):
    """An unexpected AWS error while inspecting or preparing the state backend."""


class BackendAccessDenied(BackendError):
    """The caller lacks the IAM permission for one operation; the message names the action."""

    def __init__(self, operation: str, detail: str = "") -> None:
        self.operation = operation
        self.action = IAM_ACTIONS.get(operation, operation)
        message = f"no permission for {self.action}"
        super().__init__(f"{message} ({detail})" if detail else message)


class CheckName:
    NAME = "bucket name"
    BUCKET = "bucket"
    OWNER = "bucket owner"
    REGION = "bucket region"
    VERSIONING = "versioning"
    ENCRYPTION = "default encryption"
    PUBLIC_ACCESS = "public access block"
    LOCK_TABLE = "lock table"


class BackendCheck(BaseModel):
    """One rule about the backend, as a line in the thread."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = False  # the bot cannot fix it: the user must choose another name
    fixable: bool = False  # a setting of an existing resource the bot can change after confirmation


class BackendReport(BaseModel):
    bucket: str
    region: str
    lock_table: str
    account_id: str | None = None
    bucket_exists: bool = False
    table_exists: bool = False
    facts: BucketFacts | None = None  # the existing bucket's settings, when it exists and is ours
    checks: list[BackendCheck] = Field(default_factory=list)
    failure: str | None = None
    suggestion: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and all(check.ok for check in self.checks)

    @property
    def blocking(self) -> list[BackendCheck]:
        return [check for check in self.checks if not check.ok and check.blocking]

    @property
    def needs_fix(self) -> list[BackendCheck]:
        """Settings of the existing bucket that are wrong and that the bot may fix once confirmed."""
        return [check for check in self.checks if not check.ok and check.fixable]

    def check(self, name: str) -> BackendCheck | None:
        return next((check for check in self.checks if check.name == name), None)


class BackendResult(BaseModel):
    ok: bool
    bucket: str
    region: str
    lock_table: str
    message: str
    changes: list[str] = Field(default_factory=list)
    needs_confirmation: bool = False
    fix_plan: BackendFixPlan | None = None  # what needs confirming (with needs_confirmation)
    created_bucket: bool = False
    created_table: bool = False
    failure: str | None = None
    suggestion: str | None = None
    report: BackendReport


def suggest_bucket_name(account_id: str | None, region: str) -> str:
    """`tfstate-{account}-{region}-{4 hex}`: the poc-idp default with a short random suffix."""
    account = account_id or "000000000000"
    for _ in range(10):
        name = f"{default_state_bucket(account, region)}-{secrets.token_hex(2)}"
        if bucket_name_problem(name) is None:
            return name
    raise BackendError(f"cannot build a valid bucket name for {account} in {region}")  # pragma: no cover


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _call(client: Any, method: str, **kwargs: Any) -> Any:
    """Call one boto3 operation; an access-denied answer becomes BackendAccessDenied."""
    try:
        return getattr(client, method)(**kwargs)
    except ClientError as exc:
        if _code(exc) in ACCESS_DENIED_CODES or _status(exc) == 403:
            raise BackendAccessDenied(exc.operation_name, _code(exc)) from exc
        raise


class _Clients:
    def __init__(self, session: ClientFactory, region: str) -> None:
        self.s3 = session.client("s3", region_name=region, config=configs.DEFAULT)
        self.dynamodb = session.client("dynamodb", region_name=region, config=configs.DEFAULT)
        self.sts = session.client("sts", region_name=region, config=configs.DEFAULT)


# ---------------------------------------------------------------------------------------------- inspect


def inspect_backend(session: ClientFactory, bucket: str, region: str, lock_table: str) -> BackendReport:
    """Read the bucket and lock table and report every rule; changes nothing."""
    return _inspect(_Clients(session, region), bucket, region, lock_table)


def _inspect(clients: _Clients, bucket: str, region: str, lock_table: str) -> BackendReport:
    report = BackendReport(bucket=bucket, region=region, lock_table=lock_table)
    try:
        report.account_id = str(_call(clients.sts, "get_caller_identity")["Account"])
        problem = bucket_name_problem(bucket)
        if problem:
            report.suggestion = suggest_bucket_name(report.account_id, region)
            report.checks.append(
                BackendCheck(
                    name=CheckName.NAME,
                    ok=False,
                    blocking=True,
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


def _owned_by_caller(clients: _Clients, bucket: str) -> bool | None:
    """Is the bucket in the caller's own bucket list? None when s3:ListAllMyBuckets is not allowed."""
    try:
        answer = _call(clients.s3, "list_buckets", Prefix=bucket)
    except BackendAccessDenied:
        return None
    return any(item.get("Name") == bucket for item in answer.get("Buckets", []))


def _foreign_bucket(report: BackendReport) -> BackendCheck:
    report.suggestion = suggest_bucket_name(report.account_id, report.region)
    return BackendCheck(
        name=CheckName.OWNER,
        ok=False,
        blocking=True,
        detail=f"bucket {report.bucket} exists but belongs to another account — choose another name",
        fix=f"use another bucket name, for example {report.suggestion}",
    )


def _inspect_bucket(clients: _Clients, report: BackendReport) -> None:
    bucket, s3 = report.bucket, clients.s3
    head: dict[str, Any] = {"Bucket": bucket}
    if report.account_id:
        head["ExpectedBucketOwner"] = report.account_id  # real S3 answers 403 for anyone else's bucket
    try:
        s3.head_bucket(**head)
    except ClientError as exc:
        if _status(exc) == 404 or _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
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
        if _status(exc) == 403 or _code(exc) in ACCESS_DENIED_CODES:
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

    location = _call(s3, "get_bucket_location", Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if location == "EU":
        location = "eu-west-1"
    if location != report.region:
        alternative = default_state_bucket(report.account_id or "000000000000", report.region)
        report.suggestion = (
            alternative if alternative != bucket else suggest_bucket_name(report.account_id, report.region)
        )
        report.checks.append(
            BackendCheck(
                name=CheckName.REGION,
                ok=False,
                blocking=True,
                detail=f"bucket {bucket} is in {location}, not in {report.region}",
                fix=f"use a state bucket in {report.region}, for example {report.suggestion}",
            )
        )
    else:
        report.checks.append(BackendCheck(name=CheckName.REGION, ok=True, detail=f"in {location}"))

    status = _call(s3, "get_bucket_versioning", Bucket=bucket).get("Status")
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
        answer = _call(s3, "get_bucket_tagging", Bucket=bucket)
    except BackendAccessDenied:
        return False
    except ClientError as exc:
        if _code(exc) == "NoSuchTagSet":
            return False
        raise
    return is_managed({str(t.get("Key")): str(t.get("Value")) for t in answer.get("TagSet", [])})


def _encryption_algorithms(s3: Any, bucket: str) -> list[str]:
    try:
        answer = _call(s3, "get_bucket_encryption", Bucket=bucket)
    except ClientError as exc:
        if _code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
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
        answer = _call(s3, "get_public_access_block", Bucket=bucket)
    except ClientError as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return {}
        raise
    config = answer.get("PublicAccessBlockConfiguration", {})
    return {flag: bool(config.get(flag)) for flag in PUBLIC_ACCESS_FLAGS}


def _inspect_table(clients: _Clients, report: BackendReport) -> None:
    name = report.lock_table
    try:
        table = _call(clients.dynamodb, "describe_table", TableName=name)["Table"]
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
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
            BackendCheck(
                name=CheckName.LOCK_TABLE,
                ok=False,
                blocking=True,
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


# -------------------------------------------------------------------------------------------- bootstrap


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
    clients = _Clients(session, region)
    report = _inspect(clients, bucket, region, lock_table)
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
                _call(clients.s3, "put_bucket_tagging", Bucket=bucket, Tagging={"TagSet": managed_tags()})
                changes.append(f"tagged bucket {bucket} {MANAGED_TAG}")
        fix_all = created_bucket
        if fix_all or Setting.VERSIONING in names:
            _call(
                clients.s3,
                "put_bucket_versioning",
                Bucket=bucket,
                VersioningConfiguration={"Status": "Enabled"},
            )
            changes.append("enabled versioning")
        if fix_all or Setting.ENCRYPTION in names:
            _call(
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
            _call(
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

    final = _inspect(clients, bucket, region, lock_table) if changes else report
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
        _call(s3, "create_bucket", **kwargs)
    except ClientError as exc:
        if _code(exc) == "BucketAlreadyOwnedByYou":
            return False
        if _code(exc) == "BucketAlreadyExists":
            raise _NameTaken(_code(exc)) from exc
        raise
    return True


def _create_table(dynamodb: Any, name: str) -> bool:
    try:
        _call(
            dynamodb,
            "create_table",
            TableName=name,
            AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=managed_tags(),
        )
    except ClientError as exc:
        if _code(exc) == "ResourceInUseException":  # created concurrently: wait for it like our own
            return False
        raise
    return True


def _wait_for_table(dynamodb: Any, name: str) -> None:
    try:
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    except WaiterError as exc:
        raise BackendError(f"lock table {name} did not become ACTIVE: {exc}") from exc
