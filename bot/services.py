"""What the listeners need, built once per process and passed to each `register()`."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import redis
from redis import Redis
from slack_sdk import WebClient

from bot.notifier import Notifier
from core.settings import Settings
from core.store import DeploymentStore


@dataclass
class Services:
    settings: Settings
    redis: Redis
    client: WebClient
    store: DeploymentStore
    notifier: Notifier

    @classmethod
    def build(cls, settings: Settings, connection: Redis, client: WebClient) -> Services:
        store = DeploymentStore(connection)
        return cls(
            settings=settings, redis=connection, client=client, store=store, notifier=Notifier(client, store)
        )

    def redis_ok(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def profiles_for(self, user_id: str) -> list[str]:
        """AWS named profiles this host can use (boto3's config and credential files)."""
        return sorted(boto3.Session().available_profiles)


def redis_connection(url: str) -> Redis:
    # Short timeouts: a listener must answer Slack within 3 s even when Redis is down.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)
