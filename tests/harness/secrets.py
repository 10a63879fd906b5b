"""The artifact key the test processes share (ECS_DEPLOY_ARTIFACT_KEY in `bot_env`), and the artifact
store a test uses to put or read what the bot's processes read or put."""

from __future__ import annotations

import redis

from core.settings import Settings
from storage.artifacts import ArtifactCipher, ArtifactStore

# A fixed Fernet key (url-safe base64 of 32 bytes) for the tests only.
ARTIFACT_KEY = "dGVzdHMtb25seS1hcnRpZmFjdC1rZXktMzItYnl0ZSE="


def artifact_store(connection: redis.Redis, *keys: str) -> ArtifactStore:
    """The store as the bot's processes build it with ECS_DEPLOY_ARTIFACT_KEY (default: ARTIFACT_KEY)."""
    settings = Settings.model_validate({"ECS_DEPLOY_ARTIFACT_KEY": ",".join(keys or (ARTIFACT_KEY,))})
    return ArtifactStore.for_settings(connection, settings)


def artifact_cipher(*keys: str) -> ArtifactCipher:
    return ArtifactCipher(list(keys or (ARTIFACT_KEY,)))
