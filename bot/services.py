"""What the listeners need, built once per process and passed to each `register()`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from redis import Redis
from redis.client import Pipeline
from slack_sdk import WebClient

from aws_edge.sessions import known_profiles
from bot.directory import GroupDirectory
from bot.notifier import Notifier
from bot.outbox import OutboxEntry
from core.models import Deployment
from core.policy.access import AccessPolicy, referenced_usergroups
from core.policy.loading import policy_from_settings
from core.policy.principals import SlackIdentity
from core.settings import Settings
from storage.audit import AuditTrail
from storage.queue import Step, enqueue_step
from storage.store import DeploymentStore


@dataclass
class Services:
    settings: Settings
    redis: Redis
    client: WebClient
    store: DeploymentStore
    notifier: Notifier
    policy: AccessPolicy
    directory: GroupDirectory
    audit: AuditTrail

    @classmethod
    def build(cls, settings: Settings, connection: Redis, client: WebClient) -> Services:
        """Raises core.policy.errors.PolicyError for a bad policy file: the process must not start with it."""
        store = DeploymentStore(connection)
        policy = policy_from_settings(settings.policy_file, settings.approver_ids)
        return cls(
            settings=settings,
            redis=connection,
            client=client,
            store=store,
            notifier=Notifier(client, store, background=True),  # listeners never wait on Slack
            policy=policy,
            directory=GroupDirectory(client, referenced_usergroups(policy)),
            audit=AuditTrail(connection, retention_days=settings.audit_retention_days),
        )

    def enqueue_in(
        self, step: Step, options: dict[str, str] | None = None
    ) -> Callable[[Pipeline, Deployment], object]:
        """For DeploymentStore.transition(also=...): queue `step` in the same transaction."""
        return lambda pipe, deployment: enqueue_step(
            self.redis, self.settings, step, deployment.id, pipeline=pipe, options=options
        )

    def start_in(
        self,
        step: Step,
        notes: Callable[[Deployment], Sequence[OutboxEntry | None]],
        options: dict[str, str] | None = None,
    ) -> Callable[[Pipeline, Deployment], object]:
        """`enqueue_in`, with the thread's notes about the move queued in the outbox first, in the same
        transaction: they reach Slack before anything the job posts. `notifier.flush()` after it."""
        enqueue = self.enqueue_in(step, options)

        def also(pipe: Pipeline, deployment: Deployment) -> None:
            self.notifier.queue_in(pipe, *notes(deployment))
            enqueue(pipe, deployment)

        return also

    def identity(self, user_id: str) -> SlackIdentity:
        return self.directory.identity(user_id)

    def redis_ok(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def profiles_for(self, user_id: str) -> list[str]:
        """The AWS named profiles this host has (boto3's config files) that the policy lets the user use."""
        available = host_profiles()
        return self.policy.profiles_for(self.identity(user_id), available)


_PROFILE_CACHE_SECONDS = 10.0
_profiles_cache: tuple[float, list[str]] = (-_PROFILE_CACHE_SECONDS, [])


def host_profiles() -> list[str]:
    """Named profiles in the host's AWS config files, re-read at most every few seconds."""
    global _profiles_cache
    now = time.monotonic()
    if now - _profiles_cache[0] >= _PROFILE_CACHE_SECONDS:
        _profiles_cache = (now, known_profiles())
    return list(_profiles_cache[1])
