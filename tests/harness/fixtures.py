"""The fixture files the tests read: all of them live in the repository, under tests/fixtures/.

Each folder has a README saying where every file came from. A folder that is missing or empty is an
error, never an empty parametrization: a test over no fixtures would pass without testing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"


class MissingFixtures(RuntimeError):
    """A fixture folder has no files of the kind a test is parametrized over."""


def fixture_path(kind: str, name: str) -> Path:
    path = FIXTURES_DIR / kind / name
    if not path.is_file():
        raise MissingFixtures(f"fixture {kind}/{name} is not in {FIXTURES_DIR}")
    return path


def fixture_files(kind: str, pattern: str = "*.json") -> list[Path]:
    """Every fixture of `kind` matching `pattern`, sorted; raises when there are none."""
    found = sorted((FIXTURES_DIR / kind).glob(pattern))
    if not found:
        raise MissingFixtures(
            f"no {pattern} fixtures in {FIXTURES_DIR / kind}: the parametrized tests would test nothing"
        )
    return found


def load_fixture(kind: str, name: str) -> Any:
    path = fixture_path(kind, name)
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text()
