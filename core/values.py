"""The base of immutable value objects: a pydantic model that cannot be changed once made.

A subclass adds its own config options (`extra="forbid"`, `strict=True`, …); pydantic merges them
with `frozen=True` from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict


class Value(BaseModel):
    """A frozen pydantic model: equal by value, hashable when its fields are, never mutated."""

    model_config = ConfigDict(frozen=True)


class DataRow(Value):
    """A row of a data file kept next to its module (`read_data_file`): a key the model does not know
    is a typo, refused when the module is imported."""

    model_config = ConfigDict(extra="forbid")


def read_data_file(module_file: str, name: str) -> Any:
    """The YAML data file `name` next to the module whose `__file__` is `module_file` (core/sizes.yaml,
    core/analysis/scan_sections.yaml, workers/aws/scan_listings.yaml), parsed, for its module to
    validate into DataRows."""
    return yaml.safe_load(Path(module_file).with_name(name).read_text(encoding="utf-8"))
