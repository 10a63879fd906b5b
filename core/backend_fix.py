"""What fixing an existing state bucket would change, computed from what was read from it.

The backend step reads an existing bucket into `BucketFacts`; `plan_fix` turns those facts into a
`BackendFixPlan`: one `BackendChange` per setting the bot would change, each with the value before,
the value after and whether it can be undone. The plan is stored on the deployment while it waits
for a confirmation, shown in the thread as the exact list of changes, and compared with a fresh plan
when the fix runs: the bot changes a bucket only if what it would change now is exactly what was
confirmed (same bucket, same changes, same managed flag).

Buckets and lock tables the bot creates carry the tag `MANAGED_TAG_KEY = MANAGED_TAG_VALUE`. A plan
for a bucket without it (`managed=False`: a bucket someone else created) needs an approver of the
profile to confirm; see core.backend_confirm.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, ConfigDict

from core.values import Value

MANAGED_TAG_KEY = "ecs-deploy-bot:managed"
MANAGED_TAG_VALUE = "true"
PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def managed_tags() -> list[dict[str, str]]:
    """The tag set the bot puts on what it creates (S3 TagSet / DynamoDB Tags shape)."""
    return [{"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE}]


def is_managed(tags: Mapping[str, str]) -> bool:
    return tags.get(MANAGED_TAG_KEY, "").strip().lower() == MANAGED_TAG_VALUE


class Setting(StrEnum):
    VERSIONING = "versioning"
    ENCRYPTION = "default encryption"
    PUBLIC_ACCESS = "public access block"


class BucketFacts(Value):
    """An existing bucket's settings as read from S3."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    managed: bool  # tagged MANAGED_TAG_KEY=true: the bot created it
    versioning: str | None = None  # GetBucketVersioning Status: "Enabled", "Suspended", or None (never on)
    encryption: tuple[str, ...] = ()  # default encryption algorithms (SSEAlgorithm of each rule)
    public_access: tuple[str, ...] = ()  # the public access block flags that are on


class BackendChange(Value):
    """One setting the bot would change on an existing bucket."""

    model_config = ConfigDict(extra="forbid")

    setting: Setting
    before: str
    after: str
    reversible: bool = True
    note: str = ""

    @property
    def text(self) -> str:
        """ "versioning: not enabled → Enabled (cannot be turned off again, only suspended)" """
        return f"{self.setting.value}: {self.before} → {self.after}" + (
            f" ({self.note})" if self.note else ""
        )


class BackendFixPlan(Value):
    """The changes to an existing bucket waiting for (or given) a confirmation."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    managed: bool
    changes: tuple[BackendChange, ...]
    confirmed_by: str | None = None
    confirmed_at: AwareDatetime | None = None

    @property
    def settings(self) -> frozenset[Setting]:
        return frozenset(change.setting for change in self.changes)

    @property
    def irreversible(self) -> tuple[BackendChange, ...]:
        return tuple(change for change in self.changes if not change.reversible)

    def confirm(self, user_id: str, at: datetime) -> BackendFixPlan:
        return self.model_copy(update={"confirmed_by": user_id, "confirmed_at": at})

    def same_fix(self, other: BackendFixPlan) -> bool:
        """The same bucket, the same changes and the same managed flag (confirmation fields aside)."""
        return (self.bucket, self.managed, self.changes) == (other.bucket, other.managed, other.changes)


def encryption_target(kms_key_id: str | None) -> str:
    if kms_key_id:
        return f"SSE-KMS (aws:kms, key {kms_key_id}, S3 Bucket Key on)"
    return "SSE-S3 (AES256)"


def _flags(names: Sequence[str]) -> str:
    return ", ".join(names)


def bucket_changes(facts: BucketFacts, kms_key_id: str | None = None) -> tuple[BackendChange, ...]:
    """The changes that make an existing bucket fit for Terraform state, in the order they are made."""
    changes: list[BackendChange] = []
    if facts.versioning != "Enabled":
        changes.append(
            BackendChange(
                setting=Setting.VERSIONING,
                before=facts.versioning or "never enabled",
                after="Enabled",
                reversible=False,
                note="cannot be turned off again, only suspended",
            )
        )
    if not facts.encryption:
        changes.append(
            BackendChange(
                setting=Setting.ENCRYPTION,
                before="none",
                after=encryption_target(kms_key_id),
                note="applies to objects written from now on",
            )
        )
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if flag not in facts.public_access]
    if off:
        before = "not configured" if not facts.public_access else f"{_flags(off)} off"
        changes.append(
            BackendChange(
                setting=Setting.PUBLIC_ACCESS,
                before=before,
                after=f"all four on ({_flags(PUBLIC_ACCESS_FLAGS)})",
                note="public ACLs and public bucket policies stop granting access to the bucket",
            )
        )
    return tuple(changes)


def plan_fix(facts: BucketFacts, kms_key_id: str | None = None) -> BackendFixPlan:
    return BackendFixPlan(
        bucket=facts.bucket, managed=facts.managed, changes=bucket_changes(facts, kms_key_id)
    )
