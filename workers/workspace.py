"""The deployment workspace: a checkout of the Terraform repository per deployment, and its files.

Storage model (under the bot's data directory):

    mirrors/<sha256(url)[:16]>.git    bare mirror of the repository (clone --mirror once, fetch --prune later)
    mirrors/<sha256(url)[:16]>.lock   flock: exclusive while the mirror is created or updated, shared while
                                      a workspace is cloned from it
    workspaces/<deployment_id>/       the deployment's own checkout (shallow at the ref, or a full clone
                                      checked out at an exact recorded commit); replaced as a whole

Generated files are `tfvars/{file_stem}.tfvars` and `tfbackends/{file_stem}.tfbackend` in the
workspace, written atomically (temp file + os.replace). A path read from a record in Redis is only
used through `inside()`, which refuses one that leaves the workspace (absolute, `..`, or a symlink).

The data directory is private to the worker's user (`private_data_dir`, and the worker's umask 077):
checkouts, generated tfvars, plan files and Terraform logs hold secrets, so they are 0700/0600.

Every git call is an argv list (no shell) with a timeout and no terminal prompt; failures become a
`WorkspaceError` whose message says what the user can do about it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.models import DeploymentRequest, WorkspaceRecord
from core.tfvars.diff import ValueChange, diff_values
from core.tfvars.edit import apply_values
from core.tfvars.poc_idp import values_for_request
from core.tfvars.reading import TfvarsError
from core.tfvars.templates import fallback_template_name, render_fallback_tfvars, render_tfbackend
from core.tfvars.validate import TfvarsValidation, validate_tfvars
from core.values import Value
from workers.child_env import inherited_environment

GIT_TIMEOUT = 300.0
LOCK_TIMEOUT = 600.0
DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SAMPLE_DIR = "tfvars-sample"


class WorkspaceError(Exception):
    """The workspace could not be prepared; the message is meant for the requester."""


class Workspace(Value):
    deployment_id: str
    path: Path
    commit: str
    ref: str
    repo_url: str  # credentials removed


class GeneratedFiles(Value):
    tfvars_path: Path
    tfbackend_path: Path
    tfvars_sha256: str
    tfbackend_sha256: str
    source: str  # "tfvars-sample/example-small-setup.tfvars" or "templates/tfvars/....j2 (bundled)"
    used_fallback: bool
    validation: TfvarsValidation
    changes: tuple[ValueChange, ...]

    @property
    def tfvars_relpath(self) -> str:
        return f"tfvars/{self.tfvars_path.name}"

    @property
    def tfbackend_relpath(self) -> str:
        return f"tfbackends/{self.tfbackend_path.name}"

    def record(self, commit: str) -> WorkspaceRecord:
        """What a deployment records of these files, generated in a checkout of `commit`."""
        return WorkspaceRecord(
            commit=commit,
            tfvars_path=self.tfvars_relpath,
            tfbackend_path=self.tfbackend_relpath,
            tfvars_sha256=self.tfvars_sha256,
            tfbackend_sha256=self.tfbackend_sha256,
        )


def redact_url(url: str) -> str:
    """The URL without user info (a token in https://user:token@host must not reach Slack or logs)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return url


def normalise_repo_url(repo_url: str) -> str:
    """https/ssh/file URLs as given; a local directory path made absolute."""
    url = repo_url.strip()
    if not url:
        raise WorkspaceError("No Terraform repository is configured (the repository URL is empty).")
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url
    return str(Path(url).expanduser().resolve())


def _git_env() -> dict[str, str]:
    env = inherited_environment()
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",  # fail instead of waiting for a password
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_SSH_COMMAND": env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
            "LC_ALL": "C",
        }
    )
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def checked_out_commit(path: Path) -> str | None:
    """The commit checked out at `path`; None when there is no checkout or git cannot read it."""
    if not (path / ".git").exists():
        return None
    try:
        return run_git(
            ["-C", str(path), "rev-parse", "HEAD"], timeout=30, what="Reading the workspace commit"
        ).strip()
    except WorkspaceError:
        return None


def run_git(args: list[str], *, cwd: Path | None = None, timeout: float = GIT_TIMEOUT, what: str) -> str:
    """Run `git <args>`; return stdout. Raises WorkspaceError naming `what` failed and why."""
    argv = ["git", "-c", "advice.detachedHead=false", *args]
    try:
        completed = subprocess.run(
            argv,
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"{what} took longer than {timeout:.0f} s and was stopped.") from None
    except FileNotFoundError:
        raise WorkspaceError("git is not installed on the worker host.") from None
    if completed.returncode != 0:
        raise _GitFailed(what, completed.stderr)
    return completed.stdout


def inside(root: Path, relpath: str | Path) -> Path:
    """`root / relpath` for a relative path taken from a record, resolved (symlinks followed); refused
    with a WorkspaceError when it would leave `root`."""
    base = Path(root).resolve()
    candidate = Path(relpath)
    target = (base / candidate).resolve()
    if candidate.is_absolute() or target == base or not target.is_relative_to(base):
        raise WorkspaceError(
            f"The recorded path '{str(relpath)[:200]}' is outside the deployment's workspace; refused."
        )
    return target


PRIVATE_UMASK = 0o077


def private_data_dir(data_dir: Path) -> Path:
    """Create the data directory 0700, or take group and other permissions away from an existing
    one (earlier versions left it world-readable); return its path."""
    path = Path(data_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


class _GitFailed(WorkspaceError):
    def __init__(self, what: str, stderr: str) -> None:
        self.stderr = stderr
        super().__init__(f"{what} failed: {_last_line(stderr) or 'git gave no reason'}.")


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """flock on `path` (created if needed): exclusive, or shared for readers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(
                        "Another job has been updating the repository mirror for too long; try again later."
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> str:
    """Write `text` to `path` via a temp file in the same directory and os.replace; return its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return hashlib.sha256(data).hexdigest()


class WorkspaceManager:
    """Checks the Terraform repository out for each deployment, through a cached mirror."""

    def __init__(
        self, data_dir: Path, repo_url: str, repo_ref: str, *, git_timeout: float = GIT_TIMEOUT
    ) -> None:
        self.data_dir = Path(data_dir)
        self.repo_url = normalise_repo_url(repo_url)
        self.repo_ref = repo_ref.strip()
        if not self.repo_ref or self.repo_ref.startswith("-"):
            raise WorkspaceError(f"'{repo_ref}' is not a usable branch or tag name.")
        self.git_timeout = git_timeout
        key = hashlib.sha256(self.repo_url.encode()).hexdigest()[:16]
        self.mirror_path = self.data_dir / "mirrors" / f"{key}.git"
        self.lock_path = self.data_dir / "mirrors" / f"{key}.lock"
        self.workspaces_dir = self.data_dir / "workspaces"
        self.clones = 0  # mirror clones and fetches done by this instance (visible to tests and logs)
        self.fetches = 0

    @property
    def shown_url(self) -> str:
        return redact_url(self.repo_url)

    # -- mirror -----------------------------------------------------------------------------

    def _unreachable(self, error: _GitFailed) -> WorkspaceError:
        reason = _last_line(error.stderr) or "no reason given"
        return WorkspaceError(
            f"Could not reach the Terraform repository {self.shown_url} ({reason}). Check the repository URL"
            " and that the bot's host can read it."
        )

    def update_mirror(self) -> Path:
        """Create the mirror (first use) or fetch into it; exclusive lock held throughout."""
        with file_lock(self.lock_path):
            self._update_mirror_locked()
        return self.mirror_path

    def _update_mirror_locked(self) -> None:
        if (self.mirror_path / "HEAD").is_file():
            try:
                run_git(
                    ["-C", str(self.mirror_path), "fetch", "--prune", "--quiet", "origin"],
                    timeout=self.git_timeout,
                    what="Updating the repository mirror",
                )
            except _GitFailed as error:
                raise self._unreachable(error) from None
            self.fetches += 1
            return
        self.mirror_path.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.mirror_path.parent))
        try:
            run_git(
                # --no-hardlinks: objects of a local repository are copied, not shared (their modes too)
                ["clone", "--mirror", "--no-hardlinks", "--quiet", "--", self.repo_url, str(temp / "m.git")],
                timeout=self.git_timeout,
                what="Cloning the repository",
            )
            os.replace(temp / "m.git", self.mirror_path)  # never a half-cloned mirror
        except _GitFailed as error:
            raise self._unreachable(error) from None
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        self.clones += 1

    def _mirror_has(self, revision: str) -> str | None:
        try:
            out = run_git(
                ["-C", str(self.mirror_path), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                timeout=60,
                what="Looking up a revision",
            )
        except _GitFailed:
            return None
        return out.strip() or None

    # -- workspaces -------------------------------------------------------------------------

    def workspace_path(self, deployment_id: str) -> Path:
        if not DEPLOYMENT_ID.fullmatch(deployment_id) or ".." in deployment_id:
            raise WorkspaceError(f"'{deployment_id}' is not a valid deployment id.")
        return self.workspaces_dir / deployment_id

    def prepare(self, deployment_id: str, commit: str | None = None, ref: str | None = None) -> Workspace:
        """A fresh checkout for the deployment: the current commit of `ref` (default: the configured
        ref), or exactly `commit` (a recorded SHA, so a re-plan or apply sees the files that were
        reviewed)."""
        final = self.workspace_path(deployment_id)
        ref = (ref or self.repo_ref).strip()
        if not ref or ref.startswith("-"):
            raise WorkspaceError(f"'{ref[:200]}' is not a usable branch or tag name.")
        if commit is not None:
            commit = commit.strip().lower()
            if not COMMIT_SHA.fullmatch(commit):
                raise WorkspaceError(f"'{commit}' is not a full commit SHA.")
        if commit is None or not (self.mirror_path / "HEAD").is_file() or self._mirror_has(commit) is None:
            self.update_mirror()  # a recorded commit already in the mirror needs no fetch
        with file_lock(self.lock_path, shared=True):
            target = commit or self._resolve_ref(ref)
            if commit is not None and self._mirror_has(commit) is None:
                raise WorkspaceError(
                    f"Commit {commit[:12]} is no longer in {self.shown_url} (was the branch force-pushed?)."
                    " Start a new deployment to use the current files."
                )
            self.workspaces_dir.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f".{deployment_id}-", dir=self.workspaces_dir))
            checkout = temp / "repo"
            try:
                if commit is None and self._is_branch_or_tag(ref):
                    self._clone_shallow(checkout, ref)
                else:
                    self._clone_at(checkout, target)
                head = run_git(
                    ["-C", str(checkout), "rev-parse", "HEAD"],
                    timeout=60,
                    what="Reading the checked-out commit",
                ).strip()
                if head != target:
                    raise WorkspaceError(
                        f"The checkout is at {head[:12]}, not {target[:12]}: the repository changed while the"
                        " workspace was prepared. Try again."
                    )
                if final.exists():
                    shutil.rmtree(final)
                os.replace(checkout, final)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
        return Workspace(
            deployment_id=deployment_id, path=final, commit=head, ref=ref, repo_url=self.shown_url
        )

    def _resolve_ref(self, ref: str) -> str:
        sha = self._mirror_has(f"refs/heads/{ref}") or self._mirror_has(f"refs/tags/{ref}")
        if sha is None and COMMIT_SHA.fullmatch(ref):
            sha = self._mirror_has(ref)
        if sha is None:
            raise WorkspaceError(
                f"The branch or tag '{ref[:200]}' was not found in {self.shown_url}. Check the"
                + (" configured repository ref." if ref == self.repo_ref else " ref the change asked for.")
            )
        return sha

    def _is_branch_or_tag(self, ref: str) -> bool:
        return any(self._mirror_has(f"refs/{kind}/{ref}") for kind in ("heads", "tags"))

    def _clone_shallow(self, checkout: Path, ref: str) -> None:
        run_git(
            [
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--branch",
                ref,
                "--",
                self.mirror_path.resolve().as_uri(),
                str(checkout),
            ],
            timeout=self.git_timeout,
            what="Checking out the repository",
        )

    def _clone_at(self, checkout: Path, commit: str) -> None:
        run_git(
            ["clone", "--quiet", "--no-checkout", "--", self.mirror_path.resolve().as_uri(), str(checkout)],
            timeout=self.git_timeout,
            what="Checking out the repository",
        )
        run_git(
            ["-C", str(checkout), "checkout", "--quiet", "--detach", commit],
            timeout=self.git_timeout,
            what=f"Checking out commit {commit[:12]}",
        )

    def remove(self, deployment_id: str) -> None:
        shutil.rmtree(self.workspace_path(deployment_id), ignore_errors=True)

    def generate_files(
        self,
        workspace: Workspace,
        request: DeploymentRequest,
        extra_values: Mapping[str, object] | None = None,
    ) -> GeneratedFiles:
        return generate_files(workspace, request, extra_values)


def generate_files(
    workspace: Workspace,
    request: DeploymentRequest,
    extra_values: Mapping[str, object] | None = None,
) -> GeneratedFiles:
    """Write `tfvars/{file_stem}.tfvars` (the size's sample with the request's values, comments kept;
    the bundled template when the repository has no sample) and `tfbackends/{file_stem}.tfbackend`.

    The files are written even when validation finds problems: the result carries the validation,
    and the caller decides whether to ask the requester or to plan.
    """
    root = workspace.path
    size = request.size.value
    sample = root / SAMPLE_DIR / f"example-{size}-setup.tfvars"
    values = values_for_request(request, extra_values)
    if sample.is_file():
        template_text = sample.read_text(encoding="utf-8")
        source, used_fallback = f"{SAMPLE_DIR}/{sample.name}", False
    else:
        template_text = render_fallback_tfvars(size)
        source, used_fallback = f"templates/{fallback_template_name(size)} (bundled)", True
    variables_file = root / "variables.tf"
    if not variables_file.is_file():
        raise WorkspaceError(
            f"The repository {workspace.repo_url} at {workspace.commit[:12]} has no variables.tf; is it the"
            " poc-idp Terraform repository?"
        )
    try:
        text = apply_values(template_text, values)
        backend = render_tfbackend(request)
    except TfvarsError as error:
        raise WorkspaceError(f"Could not fill in {source}: {error}.") from error
    result = validate_tfvars(text, variables_file.read_text(encoding="utf-8"), request.size)
    changes = tuple(diff_values(template_text, text))
    tfvars_path = root / "tfvars" / f"{request.file_stem}.tfvars"
    tfbackend_path = root / "tfbackends" / f"{request.file_stem}.tfbackend"
    return GeneratedFiles(
        tfvars_path=tfvars_path,
        tfbackend_path=tfbackend_path,
        tfvars_sha256=write_atomic(tfvars_path, text),
        tfbackend_sha256=write_atomic(tfbackend_path, backend),
        source=source,
        used_fallback=used_fallback,
        validation=result,
        changes=changes,
    )
