"""Environment configuration in the Terraform repository: branch, commit, push, and reading it back.

Storage model (in git, on the push remote):

    refs/heads/{prefix}{environment key}   one branch per environment (prefix: ECS_DEPLOY_CONFIG_BRANCH_PREFIX)
      one commit per successful apply:      tfvars/{stem}.tfvars + tfbackends/{stem}.tfbackend as applied,
                                            the message's trailers (core/environment_config.py)

The branch starts at the commit the first apply used; later applies add a commit on top of it (the
`Applied-commit:` trailer names the commit each apply really used). A commit is made from a fresh
scratch clone (under the data directory, removed afterwards) of the workspace mirror
(workers/workspace.py), with the branch fetched from the push remote when it exists there, so
nothing local can go stale. Idempotent: when the branch's head already is this deployment's commit
(`Ecs-Deploy-Deployment:`) nothing is committed again.

The push remote is ECS_DEPLOY_CONFIG_PUSH_URL, or else ECS_DEPLOY_REPO_URL. It may carry credentials
(https://user:token@host/...): every error message goes through `ConfigRepo.redact` before it is
logged or shown. Every git call is an argv list with a timeout and no prompt (workspace.run_git).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path

from pydantic import BaseModel

from core.environment_config import DEPLOYMENT
from core.settings import Settings
from core.values import Value
from workers.workspace import (
    COMMIT_SHA,
    WorkspaceError,
    WorkspaceManager,
    file_lock,
    inside,
    normalise_repo_url,
    redact_url,
    run_git,
)

GIT_TIMEOUT = 300.0
LOG_LIMIT = 1000  # commits read per branch by the import
FIELD, UNIT, RECORD = "\x1e", "\x1f", "\x1d"


class ConfigRepoError(Exception):
    """Committing or pushing the configuration failed; the message is redacted (no credentials)."""


class ConfigFiles(Value):
    """The two generated files of an apply, with their paths in the repository."""

    tfvars_path: str
    tfvars: bytes
    tfbackend_path: str
    tfbackend: bytes


class CommitResult(BaseModel):
    branch: str
    commit: str
    created: bool  # False: the branch already had this deployment's commit (or a later apply's)
    superseded_by: str | None = None  # the later apply whose commit is the branch's head: nothing done


class BranchCommit(BaseModel):
    """One commit of an environment branch, as the import reads it."""

    sha: str
    committed_at: datetime
    trailers: list[tuple[str, str]]

    def trailer(self, key: str) -> str | None:
        values = [value for name, value in self.trailers if name.lower() == key.lower()]
        return values[-1] if values else None


def _reason(what: str, error: WorkspaceError) -> str:
    """`what` failed, with git's own first `fatal:`/`error:` line (its last line is often a hint)."""
    stderr = str(getattr(error, "stderr", "") or "")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith(("fatal:", "error:", "remote:"))), None)
    return f"{what} failed: {first}" if first else str(error)


def parse_trailers(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(UNIT):
        key, colon, value = item.partition(":")
        if colon and key.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs


class ConfigRepo:
    """The environment branches on the push remote (see the module docstring)."""

    def __init__(self, settings: Settings, *, git_timeout: float = GIT_TIMEOUT) -> None:
        self.settings = settings
        self.mirror = WorkspaceManager(Path(settings.data_dir), settings.repo_url, settings.repo_ref)
        configured = settings.config_push_url.get_secret_value() if settings.config_push_url else ""
        self.push_url = normalise_repo_url(configured) if configured.strip() else self.mirror.repo_url
        self.prefix = settings.config_branch_prefix
        name, email = parseaddr(settings.git_author)
        self.author_name, self.author_email = name, email
        self.git_timeout = git_timeout
        self.scratch_root = Path(settings.data_dir) / "config-repos"
        self._secrets = [s for s in (self._password(configured),) if s]
        if settings.github_token is not None and settings.github_token.get_secret_value():
            self._secrets.append(settings.github_token.get_secret_value())

    @staticmethod
    def _password(url: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
        except ValueError:
            return ""
        if parts.password:
            return parts.password
        # https://TOKEN@host: a token as the user name (an ssh user such as `git` is no secret)
        return parts.username if parts.username and len(parts.username) >= 16 else ""

    @property
    def shown_push_url(self) -> str:
        return redact_url(self.push_url)

    def redact(self, text: str) -> str:
        """`text` without the push URL's credentials or the GitHub token."""
        out = text.replace(self.push_url, self.shown_push_url)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= 4:
                out = out.replace(secret, "***")
        return out

    def branch(self, environment_key: str) -> str:
        return f"{self.prefix}{environment_key}"

    # -- git ---------------------------------------------------------------------------------

    def _git(self, args: list[str], *, cwd: Path | None = None, what: str) -> str:
        try:
            return run_git(args, cwd=cwd, timeout=self.git_timeout, what=what)
        except WorkspaceError as exc:
            raise ConfigRepoError(self.redact(_reason(what, exc))) from None

    @contextlib.contextmanager
    def _scratch(self, start: str | None = None) -> Iterator[Path]:
        """A fresh clone of the workspace mirror (updated first unless it already has `start`)."""
        mirror = self.mirror
        try:
            if start is None or not (mirror.mirror_path / "HEAD").is_file() or not self._mirror_has(start):
                mirror.update_mirror()
        except WorkspaceError as exc:
            raise ConfigRepoError(self.redact(str(exc))) from None
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=".config-", dir=self.scratch_root))
        checkout = temp / "repo"
        try:
            with file_lock(mirror.lock_path, shared=True):
                self._git(
                    [
                        "clone",
                        "--quiet",
                        "--no-checkout",
                        "--",
                        mirror.mirror_path.resolve().as_uri(),
                        str(checkout),
                    ],
                    what="Cloning the repository for the configuration commit",
                )
            yield checkout
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _mirror_has(self, commit: str) -> bool:
        try:
            run_git(
                ["-C", str(self.mirror.mirror_path), "cat-file", "-e", f"{commit}^{{commit}}"],
                timeout=60,
                what="Looking up a commit",
            )
        except WorkspaceError:
            return False
        return True

    def remote_heads(self, pattern: str) -> dict[str, str]:
        """{branch name: head sha} of the push remote's branches matching `refs/heads/{pattern}`."""
        out = self._git(
            ["ls-remote", "--heads", "--", self.push_url, f"refs/heads/{pattern}"],
            what=f"Reading the branches of {self.shown_push_url}",
        )
        heads = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/") and COMMIT_SHA.fullmatch(sha.strip()):
                heads[ref.removeprefix("refs/heads/")] = sha.strip()
        return heads

    def commit(
        self,
        branch: str,
        files: ConfigFiles,
        message: str,
        *,
        start: str,
        deployment_id: str,
        later: frozenset[str] = frozenset(),
    ) -> CommitResult:
        """Commit `files` on `branch` (from the push remote, else started at `start`) and push it;
        nothing when the branch's head is the commit of a `later` deployment (newer files)."""
        if not COMMIT_SHA.fullmatch(start):
            raise ConfigRepoError(f"'{start[:80]}' is not a full commit SHA.")
        head = self.remote_heads(branch).get(branch)
        with self._scratch(start) as repo:
            if head is not None:
                self._git(
                    ["-C", str(repo), "fetch", "--quiet", "--", self.push_url, f"refs/heads/{branch}"],
                    what=f"Fetching {branch} from {self.shown_push_url}",
                )
                top = self._commits(repo, "FETCH_HEAD", limit=1)[0].trailer(DEPLOYMENT)
                if top == deployment_id:
                    return CommitResult(branch=branch, commit=head, created=False)
                if top is not None and top in later:
                    return CommitResult(branch=branch, commit=head, created=False, superseded_by=top)
                base = "FETCH_HEAD"
            else:
                base = start
            self._git(
                ["-C", str(repo), "checkout", "--quiet", "-B", branch, base],
                what=f"Checking out {branch}",
            )
            for relpath, data in ((files.tfvars_path, files.tfvars), (files.tfbackend_path, files.tfbackend)):
                try:
                    target = inside(repo, relpath)
                except WorkspaceError as exc:
                    raise ConfigRepoError(str(exc)) from None
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            self._git(
                ["-C", str(repo), "add", "--force", "--", files.tfvars_path, files.tfbackend_path],
                what="Adding the configuration files",
            )
            message_file = repo.parent / "message.txt"
            message_file.write_text(message, encoding="utf-8")
            self._git(
                [
                    "-c", f"user.name={self.author_name}",
                    "-c", f"user.email={self.author_email}",
                    "-c", "commit.gpgsign=false",
                    "-C", str(repo),
                    "commit", "--quiet", "--allow-empty", "--no-verify", "-F", str(message_file),
                ],
                what="Committing the configuration",
            )  # fmt: skip
            sha = self._git(["-C", str(repo), "rev-parse", "HEAD"], what="Reading the new commit").strip()
            self._git(
                ["-C", str(repo), "push", "--quiet", "--", self.push_url, f"HEAD:refs/heads/{branch}"],
                what=f"Pushing {branch} to {self.shown_push_url}",
            )
        return CommitResult(branch=branch, commit=sha, created=True)

    def _commits(self, repo: Path, rev: str, *, limit: int = LOG_LIMIT) -> list[BranchCommit]:
        out = self._git(
            [
                "-C", str(repo), "log", f"-n{limit}",
                f"--format=%H{FIELD}%cI{FIELD}%(trailers:only=true,unfold=true,separator=%x1f){RECORD}",
                rev, "--",
            ],
            what="Reading the branch's commits",
        )  # fmt: skip
        commits = []
        for record in out.split(RECORD):
            fields = record.strip().split(FIELD)
            if len(fields) == 3:
                sha, when, trailers = fields
                commits.append(
                    BranchCommit(
                        sha=sha, committed_at=datetime.fromisoformat(when), trailers=parse_trailers(trailers)
                    )
                )
        return commits

    # -- reading it back (environments import) ------------------------------------------------

    @contextlib.contextmanager
    def reader(self, branches: list[str]) -> Iterator[BranchReader]:
        """A scratch clone with `branches` fetched from the push remote, to read them."""
        with self._scratch() as repo:
            if branches:
                self._git(
                    [
                        "-C", str(repo), "fetch", "--quiet", "--", self.push_url,
                        *(f"+refs/heads/{b}:refs/config/{b}" for b in branches),
                    ],
                    what=f"Fetching the environment branches from {self.shown_push_url}",
                )  # fmt: skip
            yield BranchReader(self, repo)


class BranchReader:
    """Reads fetched environment branches (`ConfigRepo.reader`)."""

    def __init__(self, config: ConfigRepo, repo: Path) -> None:
        self.config, self.repo = config, repo

    def commits(self, branch: str) -> list[BranchCommit]:
        """The branch's configuration commits (those with the deployment trailer), newest first."""
        return [c for c in self.config._commits(self.repo, f"refs/config/{branch}") if c.trailer(DEPLOYMENT)]

    def show(self, commit: str, path: str) -> str | None:
        """The file `path` at `commit` (None when it is not there)."""
        try:
            return run_git(
                ["-C", str(self.repo), "show", f"{commit}:{path}"], timeout=60, what=f"Reading {path}"
            )
        except WorkspaceError:
            return None
