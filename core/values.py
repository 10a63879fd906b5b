"""The base of immutable value objects: a pydantic model that cannot be changed once made.

A subclass adds its own config options (`extra="forbid"`, `strict=True`, …); pydantic merges them
with `frozen=True` from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Value(BaseModel):
    """A frozen pydantic model: equal by value, hashable when its fields are, never mutated."""

    model_config = ConfigDict(frozen=True)
