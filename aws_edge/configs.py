"""The botocore client configurations, by what the caller can afford to wait. Every one uses the
standard retry mode (bounded exponential back-off with jitter, retry quota); no client is left on
botocore's legacy defaults. Build clients with one of these; nothing outside this package builds a
`Config` (tests/test_architecture.py checks it).
"""

from __future__ import annotations

from botocore.config import Config

# Jobs that do not hurry (bootstrap of the state backend, post-deployment checks): botocore's own
# timeouts; the number of attempts is the standard mode's (3) unless the operator sets
# AWS_MAX_ATTEMPTS.
DEFAULT = Config(retries={"mode": "standard"})

# A worker's identity check and the account scan: a throttled or flaky call is retried a little,
# never for minutes.
STANDARD = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)

# The account scan: STANDARD with a connection pool for its concurrent sections.
SCAN = STANDARD.merge(Config(max_pool_connections=25))

# iam:SimulatePrincipalPolicy pages (one chunk of actions each).
IAM_SIMULATION = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)

# A worker reading the S3 backend (state object, Terraform's lock item) around a Terraform run.
STATE_BACKEND = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"})

# AWS I/O in a Slack listener thread: fail fast rather than keep a Bolt worker thread busy.
LISTENER = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"})


def merged(base: Config, extra: Config | None) -> Config:
    """`base` with the settings `extra` sets (a caller's override, e.g. a test's fewer attempts)."""
    return base.merge(extra) if extra is not None else base
