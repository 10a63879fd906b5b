"""Dependencies point one way: core ← bot ← workers. The Slack side never imports the workers (it
enqueues jobs by dotted path); only the composition roots (the CLI and doctor) may."""

from __future__ import annotations

import ast
from collections.abc import Callable
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


def hits(
    check: Callable[[Path], list[str]], packages: tuple[str, ...] = ("core", "bot", "workers")
) -> list[str]:
    """What `check` finds in every module of `packages`."""
    return [
        hit for package in packages for path in sorted((ROOT / package).rglob("*.py")) for hit in check(path)
    ]


def test_core_imports_neither_slack_side_nor_workers() -> None:
    assert offenders("core", {"bot", "workers", "slack_bolt", "slack_sdk", "boto3"}) == []


def test_core_is_pure_rules_and_models_without_io_libraries() -> None:
    """Redis, RQ and AWS are reached through storage/ and aws_edge/; core/ only decides."""
    assert offenders("core", {"redis", "rq", "boto3", "storage", "aws_edge"}) == []


def test_storage_imports_core_only() -> None:
    assert offenders("storage", {"bot", "workers", "aws_edge", "slack_bolt", "slack_sdk", "boto3"}) == []


def test_slack_side_does_not_import_the_workers() -> None:
    assert offenders("bot", {"workers"}) == []


def test_the_check_can_see_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from workers.jobs import run_plan\nimport bot.app\n")
    assert imported_packages(sample) == {"workers", "bot"}


# -- the AWS edge: one place for sessions, assumed roles and client configurations ------------------


def aws_edge_bypasses(path: Path) -> list[str]:
    """Calls that belong in aws_edge/: `….assume_role(…)` and building a botocore `Config(…)`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    config_names = {"Config"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "botocore.config":
            config_names.update(alias.asname or alias.name for alias in node.names if alias.name == "Config")
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "assume_role" or name in config_names:
            found.append(
                f"{path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name}:{node.lineno} calls {name}()"
            )
    return found


def test_core_does_not_import_the_aws_edge() -> None:
    assert offenders("core", {"aws_edge"}) == []


def test_aws_edge_imports_core_only() -> None:
    assert offenders("aws_edge", {"bot", "workers", "slack_bolt", "slack_sdk", "rq"}) == []


def test_only_the_aws_edge_assumes_roles_or_builds_client_configs() -> None:
    assert hits(aws_edge_bypasses) == []


def test_the_aws_edge_check_can_see_a_bypass(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "import botocore.config\n"
        "from botocore.config import Config as C\n"
        "a = C(retries={'mode': 'legacy'})\n"
        "b = botocore.config.Config()\n"
        "c = sts.assume_role(RoleArn='arn')\n"
        "d = dict(Configuration=1)\n"
    )
    assert [hit.split(" calls ")[1] for hit in aws_edge_bypasses(sample)] == [
        "C()",
        "Config()",
        "assume_role()",
    ]


# -- RQ and structlog through their public interfaces only ----------------------------------------

LIBRARIES = ("rq", "structlog")
INTERNAL_MODULES = {"rq.job_lifecycle", "rq.utils"}


def _internal(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] not in LIBRARIES:
        return False
    prefixes = {".".join(parts[: n + 1]) for n in range(len(parts))}
    return any(part.startswith("_") for part in parts) or bool(prefixes & INTERNAL_MODULES)


def internal_library_names(path: Path) -> list[str]:
    """Imports of (and attribute paths into) private or internal names of RQ and structlog: any name
    starting with `_`, or the modules RQ keeps for itself (rq.job_lifecycle, rq.utils)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):
            chain: list[str] = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                names = [".".join([value.id, *reversed(chain)])]
        found.extend(f"{path.name}:{node.lineno} {name}" for name in names if _internal(name))
    return sorted(set(found))


def test_no_private_or_internal_rq_or_structlog_names() -> None:
    assert hits(internal_library_names) == []


def test_the_internal_names_check_can_see_them(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        "import rq.utils\n"
        "from rq.job_lifecycle import record_job_failure\n"
        "from rq.utils import parse_composite_key\n"
        "from structlog._log_levels import NAME_TO_LEVEL\n"
        "from structlog.stdlib import _FixedFindCallerLogger\n"
        "import structlog\n"
        "x = structlog._config.get_config()\n"
        "from rq import Callback, Queue\n"
        "from rq.registry import StartedJobRegistry\n"
        "y = structlog.stdlib.ProcessorFormatter\n"
    )
    assert {hit.split(" ", 1)[1] for hit in internal_library_names(sample)} == {
        "rq.utils",
        "rq.job_lifecycle.record_job_failure",
        "rq.utils.parse_composite_key",
        "structlog._log_levels.NAME_TO_LEVEL",
        "structlog.stdlib._FixedFindCallerLogger",
        "structlog._config.get_config",
        "structlog._config",
    }
