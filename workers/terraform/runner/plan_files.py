"""Plan files: the private directory Terraform writes new plans into, reading what it wrote, and
`SealedPlan`, the hashed bytes Terraform reads as `/dev/fd/<n>` (see the package docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from workers.terraform.runner.models import PlanIntegrityError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def private_directory(workspace: Path, prefix: str = "run-") -> Path:
    """A new directory under `<workspace>/.ecs-deploy` that only this user can read or write (0700,
    ours, not a symlink: checked after creation, not assumed)."""
    base = workspace / ".ecs-deploy"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PlanIntegrityError(f"{path} is not a private directory")
    return path


def read_plan_file(path: Path) -> bytes:
    """The bytes of a plan file Terraform wrote (a regular file, not followed through a symlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PlanIntegrityError(f"{path.name} is not a regular file")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class SealedPlan:
    """Plan bytes as Terraform will read them: a sealed memory file (Linux memfd with F_SEAL_WRITE,
    SHRINK, GROW and SEAL: nobody, this process included, can change it any more), passed to Terraform
    as `/dev/fd/<n>`. `sha256` is the hash of exactly these bytes; `verify` hashes them again.

    Where memfd is missing (not Linux), a 0600 file in a fresh private directory stands in."""

    def __init__(self, data: bytes, *, workspace: Path | None = None) -> None:
        self.size = len(data)
        self._directory: Path | None = None
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is not None:
            self.fd = memfd_create("ecs-deploy-plan", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            _write_all(self.fd, data)
            seals = fcntl_seals()
            import fcntl

            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, seals)
            self.argument = f"/dev/fd/{self.fd}"
        else:  # pragma: no cover - not Linux
            self._directory = private_directory(workspace or Path(tempfile.gettempdir()), prefix="plan-")
            path = self._directory / "plan.tfplan"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            self.fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            self.argument = str(path)
        self.sha256 = sha256_hex(self.read())

    def read(self) -> bytes:
        chunks: list[bytes] = []
        offset = 0
        while offset < self.size:
            chunk = os.pread(self.fd, min(1 << 20, self.size - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def verify(self, expected_sha256: str) -> None:
        actual = sha256_hex(self.read())
        if actual != expected_sha256:
            raise PlanIntegrityError(
                f"the plan Terraform would read has sha256 {actual[:12]}…, not the expected"
                f" {expected_sha256[:12]}…; nothing was run"
            )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self._directory is not None:
            with contextlib.suppress(OSError):
                (self._directory / "plan.tfplan").unlink()
                self._directory.rmdir()

    def __enter__(self) -> SealedPlan:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def fcntl_seals() -> int:
    import fcntl

    return int(fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


PlanInput = Path | SealedPlan


def plan_argument(plan_file: PlanInput) -> tuple[str, SealedPlan | None]:
    if isinstance(plan_file, SealedPlan):
        return plan_file.argument, plan_file
    return str(plan_file), None
