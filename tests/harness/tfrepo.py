"""The poc-idp stand-in repository (tests/tfrepo) as a real git repository, for any test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TFREPO = Path(__file__).resolve().parents[1] / "tfrepo"
MEDIUM_ONLY = ("elasticache", "docdb")  # terraform_data resources only the medium sample creates
GIT_IDENTITY = [
    "-c",
    "user.name=Test Author",
    "-c",
    "user.email=test@example.com",
    "-c",
    "commit.gpgsign=false",
]


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


def make_git_repo(tmp_path: Path, name: str = "poc-idp") -> tuple[Path, str]:
    """Copy tests/tfrepo into `tmp_path/name`, make it a git repository on branch main with one
    commit, and return (path, commit SHA)."""
    repo = tmp_path / name
    shutil.copytree(
        TFREPO, repo, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*")
    )
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "poc-idp stand-in")
    return repo, git(repo, "rev-parse", "HEAD")


def commit_file(repo: Path, relpath: str, text: str, message: str) -> str:
    (repo / relpath).parent.mkdir(parents=True, exist_ok=True)
    (repo / relpath).write_text(text)
    git(repo, "add", relpath)
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")
