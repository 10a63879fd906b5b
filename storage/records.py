"""One pydantic model stored as JSON under one Redis key: how every store reads such a record."""

from __future__ import annotations

from typing import TypeVar

import redis
from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_model(connection: redis.Redis, key: str, model: type[ModelT]) -> ModelT | None:
    """The `model` stored as JSON at `key`; None when the key does not exist."""
    raw = connection.get(key)
    return None if raw is None else model.model_validate_json(raw)
