"""Deployment files every worker can reach: generated tfvars/tfbackend and saved plan files.

Storage model: `ecs-deploy:artifact:{deployment}:{name}` holds the bytes; the SHA-256 recorded on
the deployment is checked on every read, so a worker never plans or applies a file that changed.
"""

from __future__ import annotations

import hashlib

import redis

from core.store import PREFIX

ARTIFACT_TTL_SECONDS = 30 * 24 * 3600


class ArtifactError(Exception):
    """An artifact is missing or does not match its recorded hash."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    @staticmethod
    def _key(deployment_id: str, name: str) -> str:
        return f"{PREFIX}artifact:{deployment_id}:{name}"

    def put(self, deployment_id: str, name: str, data: bytes) -> str:
        self.redis.set(self._key(deployment_id, name), data, ex=ARTIFACT_TTL_SECONDS)
        return sha256(data)

    def get(self, deployment_id: str, name: str, expected_sha256: str) -> bytes:
        data = self.redis.get(self._key(deployment_id, name))
        if data is None:
            raise ArtifactError(f"{name} of {deployment_id} is no longer stored; re-plan the deployment.")
        if not isinstance(data, bytes):
            data = str(data).encode()
        actual = sha256(data)
        if actual != expected_sha256:
            raise ArtifactError(
                f"{name} of {deployment_id} does not match its recorded hash ({actual[:12]}…)."
            )
        return data
