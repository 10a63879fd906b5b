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

The modules: `inspection` (reading the bucket and table into a report), `bootstrap` (creating and
fixing), `calls` (the clients and the one AWS call) and `models` (checks, report, result, errors).
This package exports what callers use.
"""

from workers.aws.backend.bootstrap import bootstrap_backend
from workers.aws.backend.inspection import inspect_backend, suggest_bucket_name
from workers.aws.backend.models import (
    IAM_ACTIONS,
    BackendAccessDenied,
    BackendCheck,
    BackendError,
    BackendReport,
    BackendResult,
    CheckName,
    ClientFactory,
)

__all__ = [
    "IAM_ACTIONS",
    "BackendAccessDenied",
    "BackendCheck",
    "BackendError",
    "BackendReport",
    "BackendResult",
    "CheckName",
    "ClientFactory",
    "bootstrap_backend",
    "inspect_backend",
    "suggest_bucket_name",
]
