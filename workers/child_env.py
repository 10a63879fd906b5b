"""What the bot's child processes (Terraform, git) inherit from the bot's own environment.

An allowlist, not the whole environment: the Terraform repository's code (providers, `local-exec`,
`external` data sources) runs in these processes and must not see the bot's Slack tokens, its
signing secret, its Redis URL, or AWS credentials that are not the deployment's.
"""

from __future__ import annotations

import os
import re

INHERITED = re.compile(
    r"PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|TEMP|TMP"
    r"|(?i:https?_proxy|no_proxy|all_proxy)|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE"
    r"|SSH_AUTH_SOCK|GIT_\w+|TF_\w+|CHECKPOINT_DISABLE|PYTHONPATH|VIRTUAL_ENV"
    r"|AWS_CONFIG_FILE|AWS_SHARED_CREDENTIALS_FILE|AWS_ENDPOINT_URL\w*|AWS_CA_BUNDLE|AWS_EC2_METADATA_\w+"
    r"|AWS_MAX_ATTEMPTS|AWS_RETRY_MODE|AWS_STS_REGIONAL_ENDPOINTS|AWS_USE_FIPS_ENDPOINT|AWS_USE_DUALSTACK_ENDPOINT"
)


def inherited_environment() -> dict[str, str]:
    """The allowlisted part of this process's environment."""
    return {name: value for name, value in os.environ.items() if INHERITED.fullmatch(name)}
