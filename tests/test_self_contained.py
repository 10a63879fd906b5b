"""A fresh clone has nothing next to it: every file the tests, benchmarks and scripts read is inside
the repository, and a test parametrized over fixture files never silently runs zero cases."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.harness import fixtures

ROOT = Path(__file__).resolve().parents[1]
PYTHON_TREES = ["tests", "bench", "scripts", "bot", "core", "workers"]
SHELL_FILES = [".ci/run", "scripts/setup", "scripts/test", "scripts/dev"]
PATH_CALLS = {"Path", "PurePath", "PosixPath", "open", "read_text", "read_bytes"}
# Spelt in pieces so that this file does not itself contain what it looks for.
SHARED = "shared"
OUTSIDE_TEXT = re.compile(rf"\.\./{SHARED}|/work/|ECS_DEPLOY_{SHARED.upper()}_DIR|/{SHARED}/fixtures")
# Absolute paths that name the machine, not the repository; fine to name (system files, /proc).
SYSTEM_PREFIXES = ("/proc", "/dev/", "/etc/", "/usr/", "/bin/", "/sys/")


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _depth(relative: Path) -> int:
    """How many folders lie between the file and the repository root (parents[depth] is the root)."""
    return len(relative.parents) - 1


def outside_paths(source: str, relative: Path) -> list[str]:
    """Every place in a Python source that reaches for a file outside the repository."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and OUTSIDE_TEXT.search(node.value):
            found.append(f"{relative}:{line}: names a path outside the repository: {node.value!r}")
        if isinstance(node, ast.Call) and _call_name(node) in PATH_CALLS and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith(("/", "~"))
                and not first.value.startswith(SYSTEM_PREFIXES)
            ):
                found.append(f"{relative}:{line}: absolute path {first.value!r}")
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
            and node.slice.value > _depth(relative)
        ):
            found.append(f"{relative}:{line}: parents[{node.slice.value}] climbs above the repository root")
    return found


def python_files() -> list[Path]:
    files = [path for tree in PYTHON_TREES for path in sorted((ROOT / tree).rglob("*.py"))]
    return [path for path in files if ".terraform" not in path.parts and path.name != Path(__file__).name]


def test_the_scanner_catches_each_way_out() -> None:
    bad = (
        "from pathlib import Path\n"
        f"A = Path({f'/work/{SHARED}/fixtures/plans'!r})\n"
        f'B = Path(__file__).resolve().parents[3] / "{SHARED}"\n'
        f'C = "../{SHARED}/fixtures/slack"\n'
        'D = open("/home/someone/plan.json")\n'
    )
    found = outside_paths(bad, Path("tests/harness/example.py"))
    assert len(found) == 5, found  # A is named twice: an absolute path and a path to /work/
    assert any("parents[3]" in item for item in found)
    assert outside_paths('P = Path(__file__).resolve().parents[2] / "x"\n', Path("tests/harness/ok.py")) == []


def test_nothing_reads_a_path_outside_the_repository() -> None:
    files = python_files()
    assert len(files) > 50  # the scan really looked at the project
    found = [item for path in files for item in outside_paths(path.read_text(), path.relative_to(ROOT))]
    for name in SHELL_FILES:
        text = (ROOT / name).read_text()
        found += [f"{name}: {m.group(0)}" for m in OUTSIDE_TEXT.finditer(text)]
    assert found == []


@pytest.mark.parametrize("kind", ["plans", "plan_inputs", "aws", "slack"])
def test_every_fixture_folder_says_where_its_files_came_from(kind: str) -> None:
    folder = fixtures.FIXTURES_DIR / kind
    readme = (folder / "README.md").read_text()
    files = [path.name for path in folder.iterdir() if path.name != "README.md"]
    assert files
    assert [name for name in files if f"| {name} |" not in readme and not name.startswith("awscli_")] == []


def test_an_empty_fixture_folder_fails_instead_of_testing_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plans").mkdir()
    monkeypatch.setattr(fixtures, "FIXTURES_DIR", tmp_path)
    with pytest.raises(fixtures.MissingFixtures, match="would test nothing"):
        fixtures.fixture_files("plans")
    with pytest.raises(fixtures.MissingFixtures):
        fixtures.load_fixture("slack", "bolt_slash_command_body.form.txt")


def test_fixture_parametrized_tests_have_cases(pytestconfig: pytest.Config) -> None:
    """The plan tests are parametrized over the plan fixtures: all twenty of them are there."""
    from tests.fixtures_plans import FIXTURE_PATHS

    assert len(FIXTURE_PATHS) >= 20
    assert all(path.is_relative_to(ROOT) for path in FIXTURE_PATHS)
