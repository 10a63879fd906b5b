"""What the state backend engine reports and raises: the IAM action behind each AWS operation, the
checks (`CheckName`, `BackendCheck`), `BackendReport` (inspection), `BackendResult` (bootstrap) and
the errors (`BackendError`, `BackendAccessDenied`)."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.config import Config
from pydantic import BaseModel, Field

from core.backend_fix import MANAGED_TAG_KEY, MANAGED_TAG_VALUE, BackendFixPlan, BucketFacts

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

    @classmethod
    def blocker(cls, name: str, *, detail: str, fix: str) -> BackendCheck:
        """A failed check the bot cannot fix: the requester must choose another name."""
        return cls(name=name, ok=False, blocking=True, detail=detail, fix=fix)


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
