"""The one place that builds boto3 sessions.

A deployment acts with its named profile (the host's AWS config: keys, SSO, a credential process),
or, when the access policy names a role for the profile, with that role assumed from the profile's
credentials. The assumed role's credentials are botocore's refreshable ones
(`AssumeRoleCredentialFetcher` + `DeferredRefreshableCredentials`, what botocore itself uses for a
profile with `role_arn`): shortly before they expire the next call assumes the role again, so a long
job never runs out of credentials half-way, and the profile's own refreshable credentials are
refreshed on the way. The first assume-role call is made right away, so a role that cannot be
assumed fails where the session is built, as it always has.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError

from aws_edge import configs
from core.policy.access import AssumeRole

DEFAULT_SESSION_NAME = "ecs-deploy-bot"


def known_profiles() -> list[str]:
    """The named profiles in the host's AWS config and credentials files, sorted."""
    return sorted(boto3.Session().available_profiles)


def profile_session(profile: str, region: str | None = None) -> boto3.Session:
    """The named profile's session (raises botocore's ProfileNotFound for an unknown profile)."""
    return boto3.Session(profile_name=profile, region_name=region)


def session_for(
    profile: str,
    region: str,
    assume: AssumeRole | None = None,
    *,
    sts_config: Config = configs.STANDARD,
    duration_seconds: int | None = None,
) -> boto3.Session:
    """The session a deployment acts with: its profile's, or (when the access policy names a role)
    one whose credentials are the role assumed from the profile, refreshed before they expire.
    `sts_config` is the configuration of the assume-role calls; `duration_seconds` asks STS for a
    session of that length (default: the role's, usually an hour)."""
    base = profile_session(profile, region)
    if assume is None:
        return base
    return assumed_role_session(base, assume, sts_config=sts_config, duration_seconds=duration_seconds)


def assumed_role_session(
    base: boto3.Session,
    assume: AssumeRole,
    *,
    sts_config: Config = configs.STANDARD,
    duration_seconds: int | None = None,
) -> boto3.Session:
    source = base.get_credentials()
    if source is None:
        raise NoCredentialsError()
    extra: dict[str, Any] = {"RoleSessionName": assume.session_name or DEFAULT_SESSION_NAME}
    if assume.external_id:
        extra["ExternalId"] = assume.external_id
    if duration_seconds is not None:
        extra["DurationSeconds"] = duration_seconds
    base_core = base._session  # boto3 keeps its botocore session here (no public accessor)
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(base_core.create_client, config=sts_config),
        source_credentials=source,
        role_arn=assume.role_arn,
        extra_args=extra,
    )
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    credentials.get_frozen_credentials()  # assume the role now: a refusal surfaces here
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver(providers=[_Fixed(credentials)]))
    return boto3.Session(botocore_session=core, region_name=base.region_name)


class _Fixed(CredentialProvider):
    """Hands botocore the (refreshable) credentials built above, whatever the environment holds."""

    METHOD = "assume-role"
    CANONICAL_NAME = None

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials
