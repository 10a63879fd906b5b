"""Input rules for a deployment request. Each check returns the clean value or raises ValueError
with a message written for the person who typed the value.

Naming limits come from poc-idp's name pattern `${substr(app,0,A)}-${substr(env,0,E)}-{descriptor}-{6}`
(poc-idp's naming conventions): the ALB name (limit 32) leaves 17 characters for the
truncated application (21) and environment (4) together.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from functools import cache

DEFAULT_VPC_CIDR = "10.0.0.0/16"
DEFAULT_LOCK_TABLE = "terraform-state-lock"

ACCOUNT_ID = re.compile(r"[0-9]{12}")
NAME = re.compile(r"[a-z][a-z0-9-]*")
PROFILE = re.compile(r"[A-Za-z0-9_.+@-]{1,64}")
LOCK_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

APP_TRUNCATION = 21
ENV_TRUNCATION = 4
ALB_NAME_BUDGET = 17  # 32 (ALB limit) - "-ecsalb-" - "-" - 6-char suffix
MAX_ENVIRONMENT = 16
# Positions that become the last character after poc-idp truncates a name (A = 9, 21, 38; E = 4, 5).
APP_CUT_POSITIONS = (8, 20, 37)
ENV_CUT_POSITIONS = (3, 4)

TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
MAX_TAGS = 50
TAG_PUNCTUATION = set(" _.:/=+-@")
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def shown(value: str, limit: int = 40) -> str:
    """A value safe to echo in a message: short, printable ASCII only."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])
    return cleaned if len(value) <= limit else cleaned + "…"


def check_account_id(value: str) -> str:
    value = value.strip()
    if not ACCOUNT_ID.fullmatch(value):
        raise ValueError(f"An AWS account id is exactly 12 digits (0-9); got {len(value)} characters.")
    return value


@cache
def known_regions() -> frozenset[str]:
    """Every region botocore's endpoint data knows, in every partition (no hand-kept list)."""
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


def check_region(value: str) -> str:
    value = value.strip()
    if value not in known_regions():
        raise ValueError(f"'{shown(value)}' is not an AWS region (for example us-east-1 or eu-west-1).")
    return value


def check_profile_name(value: str) -> str:
    if not PROFILE.fullmatch(value):
        raise ValueError("Choose one of the offered AWS profiles.")
    return value


def _check_name(value: str, what: str, cut_positions: tuple[int, ...]) -> str:
    if not value:
        raise ValueError(f"The {what} name is required.")
    if len(value) > 64 or not NAME.fullmatch(value):
        raise ValueError(
            f"The {what} name must start with a lowercase letter and use only a-z, 0-9 and '-'"
            f" (got '{shown(value)}')."
        )
    if value.endswith("-") or "--" in value:
        raise ValueError(
            f"The {what} name cannot end with '-' or contain '--' (AWS database names reject it)."
        )
    for position in cut_positions:
        if len(value) > position + 1 and value[position] == "-":
            raise ValueError(
                f"The {what} name is shortened to {position + 1} characters in some AWS names, which would"
                f" then end with '-'; move the hyphen at position {position + 1}."
            )
    return value


def check_application(value: str) -> str:
    return _check_name(value.strip(), "application", APP_CUT_POSITIONS)


def check_environment(value: str) -> str:
    value = _check_name(value.strip(), "environment", ENV_CUT_POSITIONS)
    if len(value) > MAX_ENVIRONMENT:
        raise ValueError(
            f"The environment name is at most {MAX_ENVIRONMENT} characters (e.g. dev, stag, prod)."
        )
    return value


def check_name_lengths(application: str, environment: str) -> None:
    used = len(application[:APP_TRUNCATION]) + len(environment[:ENV_TRUNCATION])
    if used > ALB_NAME_BUDGET:
        longest = ALB_NAME_BUDGET - len(environment[:ENV_TRUNCATION])
        raise ValueError(
            f"application: '{application}' with environment '{environment}' makes a load balancer name"
            f" longer than AWS's 32 characters; use an application name of at most {longest} characters."
        )


def _tag_text_ok(text: str) -> bool:
    if unicodedata.normalize("NFKC", text) != text:
        return False
    return all((ch.isalnum() and unicodedata.category(ch)[0] in "LN") or ch in TAG_PUNCTUATION for ch in text)


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"At most {MAX_TAGS} tags (got {len(tags)}).")
    for key, value in tags.items():
        if not key or len(key) > TAG_KEY_MAX:
            raise ValueError(f"Tag key '{shown(key)}' must be 1-{TAG_KEY_MAX} characters.")
        if key.lower().startswith("aws:"):
            raise ValueError(f"Tag key '{shown(key)}' uses the reserved 'aws:' prefix.")
        if len(value) > TAG_VALUE_MAX:
            raise ValueError(f"The value of tag '{shown(key)}' is longer than {TAG_VALUE_MAX} characters.")
        for text in (key, value):
            if not _tag_text_ok(text):
                raise ValueError(f"Tag '{shown(key)}': use letters, digits, spaces and _ . : / = + - @ only.")
    return tags


def parse_tag_lines(text: str) -> dict[str, str]:
    """Parse `key=value` lines. Raises ValueError naming the offending line."""
    tags: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"Line {number}: write tags as key=value, one a line.")
        if key in tags:
            raise ValueError(f"Line {number}: tag '{shown(key)}' is given twice.")
        tags[key] = value
    return check_tags(tags)


def check_vpc_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        raise ValueError(f"'{shown(value)}' is not a network in CIDR form like 10.1.0.0/16.") from None
    if not isinstance(network, ipaddress.IPv4Network) or not any(
        network.subnet_of(private)
        for private in PRIVATE_NETWORKS
        if isinstance(private, ipaddress.IPv4Network)
    ):
        raise ValueError("The VPC CIDR must be a private IPv4 range (10/8, 172.16/12 or 192.168/16).")
    if not 16 <= network.prefixlen <= 24:
        raise ValueError("The VPC CIDR must be between /16 and /24.")
    return str(network)


def check_lock_table(value: str) -> str:
    if not LOCK_TABLE.fullmatch(value):
        raise ValueError("A DynamoDB table name is 3-255 characters of letters, digits, '_', '.' and '-'.")
    return value


def check_bucket_name(value: str) -> str:
    value = value.strip()
    problem = bucket_name_problem(value)
    if problem:
        raise ValueError(f"'{shown(value)}' is not a valid S3 bucket name: {problem}.")
    return value


def bucket_name_problem(value: str) -> str | None:
    if not 3 <= len(value) <= 63:
        return "it must be 3-63 characters"
    if not BUCKET.fullmatch(value):
        return "use lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in value or ".-" in value or "-." in value:
        return "dots cannot be next to each other or to a hyphen"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
        return "it cannot look like an IP address"
    if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        return "it uses a prefix or suffix that AWS reserves"
    return None


def default_state_bucket(account_id: str, region: str) -> str:
    return f"tfstate-{account_id}-{region}"
