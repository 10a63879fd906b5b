"""What a Terraform run is asked to do and what it gave: `RunOptions` (binary, extra environment,
timeouts, cancel hook), `PlanMode`, `StartedRun`, the results (`RunResult`, `PlanResult`) and the errors the
runner raises (`TerraformError`, `StalePlanError`, `PlanIntegrityError`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from core import terraform_ui
from core.terraform_ui import Diagnostic
from workers.terraform.binary import TerraformBinary

DEFAULT_TIMEOUTS: dict[str, float] = {
    "init": 600.0,
    "plan": 1200.0,
    "show": 300.0,
    "apply": 3600.0,
    "output": 300.0,
    "version": 60.0,
}
FALLBACK_TIMEOUT = 600.0
DEFAULT_GRACE = 30.0
STALE_PLAN_MESSAGE = "the state changed since this plan; re-plan"


CancelHook = threading.Event | Callable[[], bool]
SignalName = Literal["SIGINT", "SIGKILL"]


class PlanMode(StrEnum):
    """Terraform's planning modes: one at a time, each but NORMAL chosen by the plan flag of its name."""

    NORMAL = "normal"  # the changes that make the infrastructure match the configuration
    DESTROY = "destroy"  # `-destroy`: destroy every resource of the state
    REFRESH_ONLY = "refresh-only"  # `-refresh-only`: changes made outside Terraform only (the drift check)

    @property
    def flags(self) -> list[str]:
        return [] if self is PlanMode.NORMAL else [f"-{self.value}"]


class TerraformError(Exception):
    """A Terraform command failed where the caller needs its data (show, output)."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class StalePlanError(TerraformError):
    """The saved plan no longer matches the state: plan again."""


class PlanIntegrityError(TerraformError):
    """The plan bytes are not the ones that were hashed (or their directory is not private)."""


@dataclass(frozen=True)
class StartedRun:
    """What a caller may record about a command once it started."""

    pid: int  # also the process group id of the run
    pid_start: int | None  # the process's start time (clock ticks after boot), see process_start_time
    log_path: Path


@dataclass(frozen=True)
class RunOptions:
    """How to run: which binary, extra environment (values never logged), timeouts, cancel hook."""

    binary: TerraformBinary | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    grace_seconds: float = DEFAULT_GRACE
    cancel: CancelHook | None = None
    lock_timeout_seconds: int = 60  # Terraform retries its own state lock this long (-lock-timeout)
    on_start: Callable[[StartedRun], None] | None = None  # called right after the command started
    # Called after the last integrity check, immediately before the command starts (tests use it to
    # try to swap the plan file in that window).
    before_start: Callable[[], None] | None = None

    def timeout_for(self, command: str) -> float:
        return float(self.timeouts.get(command, DEFAULT_TIMEOUTS.get(command, FALLBACK_TIMEOUT)))


class RunResult(BaseModel):
    command: str
    argv: list[str]  # as run, with -var / -backend-config values redacted
    pid: int  # also the process group id of the run
    exit_code: int | None
    duration_seconds: float
    timed_out: bool = False
    cancelled: bool = False
    signal_sent: SignalName | None = None
    stop_detail: str = ""  # "timed out after 600 s; interrupted with SIGINT"
    leftover_processes_killed: int = 0
    log_path: Path
    output_tail: str = ""
    error_excerpt: str = ""
    stale_plan: bool = False
    machine_readable: bool = False  # run with -json: the log holds Terraform's UI messages
    diagnostics: list[Diagnostic] = []  # from the UI messages (-json runs only)

    @property
    def lock_error(self) -> bool:
        """Terraform could not take the state lock."""
        if self.machine_readable:
            return terraform_ui.lock_error(self.diagnostics)
        return terraform_ui.LOCK_ERROR_SUMMARY in self.error_excerpt

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    @property
    def summary(self) -> str:
        if self.stop_detail:
            return f"terraform {self.command} {self.stop_detail}"
        if self.stale_plan:
            return f"terraform {self.command}: {STALE_PLAN_MESSAGE}"
        if self.ok:
            return f"terraform {self.command} succeeded in {self.duration_seconds:.1f} s"
        return f"terraform {self.command} failed (exit {self.exit_code})"


class PlanResult(RunResult):
    plan_file: Path
    has_changes: bool | None = None  # None when the plan failed

    @property
    def ok(self) -> bool:
        """-detailed-exitcode: 2 (changes) is a successful plan too."""
        return self.has_changes is not None
