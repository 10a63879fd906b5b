"""Deployment files every worker can reach: generated tfvars/tfbackend and saved plan files.

Storage model: `ecs-deploy:artifact:{deployment}:{name}` holds a Fernet token (AES-128-CBC with an
HMAC-SHA256 tag, from `cryptography`) of the artifact's bytes, prefixed inside the token with the
deployment id and artifact name. A plan file embeds the prior state and every variable value, so
nothing is stored in clear; the key never reaches Redis.

- Keys: ECS_DEPLOY_ARTIFACT_KEY, one or more Fernet keys, comma-separated. The first encrypts, all
  decrypt (MultiFernet), so a key is rotated by putting the new one first and dropping the old one
  once the artifacts it encrypted have expired.
- Reads are authenticated: a changed byte, a token made under another key, or a token copied from
  another deployment or artifact is refused with an ArtifactError; then the SHA-256 recorded on the
  deployment is checked, so a worker never plans or applies a file that changed.
- Lifetime: an artifact lives as long as the approval of the plan it belongs to can (the approval
  TTL) plus ARTIFACT_MARGIN_SECONDS, both as the Redis expiry and as the token's maximum age.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from storage.store import PREFIX

if TYPE_CHECKING:
    from core.settings import Settings

# Past the approval's TTL: an apply that started just before its approval expired still finds its
# plan after waiting in line for the state.
ARTIFACT_MARGIN_SECONDS = 3600
KEY_SETTING = "ECS_DEPLOY_ARTIFACT_KEY"
KEY_PREFIX = f"{PREFIX}artifact:"


class ArtifactError(Exception):
    """An artifact is missing, expired, could not be authenticated, or does not match its hash."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def generate_key() -> str:
    """A new key in the form ECS_DEPLOY_ARTIFACT_KEY takes (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


class ArtifactCipher:
    """Authenticated encryption of artifacts under the configured keys (see the module docstring)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ArtifactError(f"No artifact key: set {KEY_SETTING}.")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @staticmethod
    def _context(deployment_id: str, name: str) -> bytes:
        return f"ecs-deploy-artifact:v1:{deployment_id}:{name}\n".encode()

    def encrypt(self, deployment_id: str, name: str, data: bytes) -> bytes:
        return self._fernet.encrypt(self._context(deployment_id, name) + data)

    def decrypt(self, deployment_id: str, name: str, token: bytes, *, max_age_seconds: int) -> bytes:
        what = f"{name} of {deployment_id}"
        try:
            clear = self._fernet.decrypt(token)
            created = self._fernet.extract_timestamp(token)
        except InvalidToken:
            raise ArtifactError(
                f"{what} could not be authenticated: it was changed in Redis, or encrypted under a key"
                f" that is not in {KEY_SETTING}. Re-plan the deployment."
            ) from None
        context = self._context(deployment_id, name)
        if not clear.startswith(context):
            raise ArtifactError(f"{what} is stored under the wrong name (copied from another artifact).")
        if time.time() - created > max_age_seconds:
            raise ArtifactError(f"{what} has expired with its approval; re-plan the deployment.")
        return clear[len(context) :]


class ArtifactStore:
    def __init__(self, connection: redis.Redis, cipher: ArtifactCipher, *, ttl_seconds: int) -> None:
        self.redis = connection
        self.cipher = cipher
        self.ttl_seconds = ttl_seconds

    @classmethod
    def for_settings(cls, connection: redis.Redis, settings: Settings) -> ArtifactStore:
        """The store the processes use: the configured keys, and the approval's lifetime plus a margin."""
        return cls(
            connection,
            ArtifactCipher(settings.artifact_keys),
            ttl_seconds=int(settings.approval_ttl_hours * 3600) + ARTIFACT_MARGIN_SECONDS,
        )

    @staticmethod
    def _key(deployment_id: str, name: str) -> str:
        return f"{KEY_PREFIX}{deployment_id}:{name}"

    def put(self, deployment_id: str, name: str, data: bytes) -> str:
        token = self.cipher.encrypt(deployment_id, name, data)
        self.redis.set(self._key(deployment_id, name), token, ex=self.ttl_seconds)
        return sha256(data)

    def readable_count(self, limit: int = 1000) -> tuple[int, int]:
        """(readable, looked at) over up to `limit` stored artifacts: whether the configured keys
        still authenticate what is in Redis (for `doctor`, e.g. after a key rotation)."""
        readable = total = 0
        for raw in self.redis.scan_iter(match=f"{KEY_PREFIX}*", count=200):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            deployment_id, _, name = key.removeprefix(KEY_PREFIX).partition(":")
            token = self.redis.get(key)
            if token is None:
                continue
            total += 1
            try:
                self.cipher.decrypt(deployment_id, name, _as_bytes(token), max_age_seconds=self.ttl_seconds)
                readable += 1
            except ArtifactError:
                pass
            if total >= limit:
                break
        return readable, total

    def get(self, deployment_id: str, name: str, expected_sha256: str) -> bytes:
        token = self.redis.get(self._key(deployment_id, name))
        if token is None:
            raise ArtifactError(f"{name} of {deployment_id} is no longer stored; re-plan the deployment.")
        data = self.cipher.decrypt(deployment_id, name, _as_bytes(token), max_age_seconds=self.ttl_seconds)
        actual = sha256(data)
        if actual != expected_sha256:
            raise ArtifactError(
                f"{name} of {deployment_id} does not match its recorded hash ({actual[:12]}…)."
            )
        return data


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
