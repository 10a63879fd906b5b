"""The Terraform commands the bot runs, each one argv on top of `run_terraform`: `init`, `plan`
(-json, -detailed-exitcode), `apply` (-json, of a saved or sealed plan), `show_json`, `show_text`
and `output_json`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workers.terraform.runner.models import (
    STALE_PLAN_MESSAGE,
    PlanMode,
    PlanResult,
    RunOptions,
    RunResult,
    StalePlanError,
    TerraformError,
)
from workers.terraform.runner.plan_files import PlanInput, SealedPlan, plan_argument
from workers.terraform.runner.run import run_terraform


def init(workspace: Path, backend_config: Path, *, options: RunOptions | None = None) -> RunResult:
    """`terraform init -backend-config=<file> -reconfigure -input=false -no-color`."""
    result, _ = run_terraform(
        workspace,
        "init",
        [f"-backend-config={backend_config}", "-reconfigure", "-input=false", "-no-color"],
        options=options,
    )
    return result


def plan(
    workspace: Path,
    var_file: Path,
    plan_file: Path,
    *,
    options: RunOptions | None = None,
    on_line: Callable[[str], None] | None = None,
    mode: PlanMode = PlanMode.NORMAL,
) -> PlanResult:
    """`terraform plan -json -detailed-exitcode`: exit 0 no changes, 2 changes, anything else an error.
    `mode` adds its flag (`-refresh-only`, `-destroy`; PlanMode)."""
    result, _ = run_terraform(
        workspace,
        "plan",
        [
            *mode.flags,
            f"-var-file={var_file}",
            f"-out={plan_file}",
            f"-lock-timeout={(options or RunOptions()).lock_timeout_seconds}s",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
            "-json",
        ],
        options=options,
        on_line=on_line,
        machine_readable=True,
    )
    has_changes: bool | None = None
    if not (result.timed_out or result.cancelled):
        has_changes = {0: False, 2: True}.get(result.exit_code if result.exit_code is not None else -1)
    return PlanResult(**result.model_dump(), plan_file=plan_file, has_changes=has_changes)


def apply(
    workspace: Path,
    plan_file: PlanInput,
    on_line: Callable[[str], None] | None = None,
    *,
    options: RunOptions | None = None,
    expected_sha256: str | None = None,
) -> RunResult:
    """`terraform apply -input=false -no-color -json <plan file>` (a saved plan needs no -auto-approve).

    A SealedPlan is hashed again immediately before Terraform starts and must match
    `expected_sha256` (PlanIntegrityError otherwise: nothing is applied).
    Raises StalePlanError when Terraform refuses the plan because the state changed since (its
    "Saved plan is stale" diagnostic)."""
    argument, sealed = plan_argument(plan_file)
    result, _ = run_terraform(
        workspace,
        "apply",
        [
            "-input=false",
            "-no-color",
            "-json",
            f"-lock-timeout={(options or RunOptions()).lock_timeout_seconds}s",
            argument,
        ],
        options=options,
        on_line=on_line,
        sealed=sealed,
        expected_sha256=expected_sha256,
        machine_readable=True,
    )
    if result.stale_plan and not result.ok:
        raise StalePlanError(STALE_PLAN_MESSAGE, result)
    return result


def show_json(workspace: Path, plan_file: PlanInput, *, options: RunOptions | None = None) -> bytes:
    """`terraform show -json <plan file>` (show takes no -input)."""
    argument, sealed = plan_argument(plan_file)
    return _data("show", workspace, ["-json", argument], options, sealed)


def show_text(workspace: Path, plan_file: PlanInput, *, options: RunOptions | None = None) -> str:
    """`terraform show -no-color <plan file>`: the human-readable plan."""
    argument, sealed = plan_argument(plan_file)
    raw = _data("show", workspace, ["-no-color", argument], options, sealed)
    return raw.decode("utf-8", errors="replace")


def output_json(workspace: Path, *, options: RunOptions | None = None) -> dict[str, Any]:
    """`terraform output -json` as a dict of output name → {"value", "type", "sensitive"}."""
    raw = _data("output", workspace, ["-json", "-no-color"], options)
    data = json.loads(raw or b"{}")
    if not isinstance(data, dict):
        raise TerraformError(f"terraform output -json gave {type(data).__name__}, not an object")
    return data


def _data(
    command: str,
    workspace: Path,
    args: Sequence[str],
    options: RunOptions | None,
    sealed: SealedPlan | None = None,
) -> bytes:
    result, stdout = run_terraform(
        workspace, command, args, options=options, capture_stdout=True, sealed=sealed
    )
    if not result.ok:
        detail = result.error_excerpt or result.stop_detail or result.output_tail
        raise TerraformError(f"{result.summary}: {detail}", result)
    return stdout
