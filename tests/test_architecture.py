"""Dependencies point one way: core ← bot ← workers. The Slack side never imports the workers (it
enqueues jobs by dotted path); only the composition roots (the CLI and doctor) may."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOTS = {"bot/cli.py", "bot/doctor.py"}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def offenders(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in COMPOSITION_ROOTS:
            continue
        bad = imported_packages(path) & forbidden
        if bad:
            found.append(f"{relative} imports {sorted(bad)}")
    return found


def test_core_imports_neither_slack_side_nor_workers() -> None:
    assert offenders("core", {"bot", "workers", "slack_bolt", "slack_sdk", "boto3"}) == []


def test_slack_side_does_not_import_the_workers() -> None:
    assert offenders("bot", {"workers"}) == []


def test_the_check_can_see_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from workers.jobs import run_plan\nimport bot.app\n")
    assert imported_packages(sample) == {"workers", "bot"}
