"""The base of immutable value objects: a pydantic model that cannot be changed once made.

A subclass adds its own config options (`extra="forbid"`, `strict=True`, …); pydantic merges them
with `frozen=True` from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Value(BaseModel):
    """A frozen pydantic model: equal by value, hashable when its fields are, never mutated."""

    model_config = ConfigDict(frozen=True)


class DataRow(Value):
    """A row of a data file kept next to its module (core/sizes.yaml, core/analysis/scan_sections.yaml):
    a key the model does not know is a typo, refused when the module is imported."""

    model_config = ConfigDict(extra="forbid")
