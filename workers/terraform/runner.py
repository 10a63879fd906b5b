"""The one way the bot runs Terraform.

Every command is an argv list (never a shell) run in the workspace, in its own process group, with
`TF_IN_AUTOMATION=1`, `CHECKPOINT_DISABLE=1`, an empty CLI config unless one is set, and an explicit
timeout. Output (stdout and stderr together) is streamed line by line to
`<workspace>/.ecs-deploy/logs/<n>-<command>.log` and to an optional `on_line` callback.

On timeout or cancel the whole process group gets SIGINT first (Terraform stops gracefully and
releases its state lock), then SIGKILL after a grace period. Processes the run leaves behind in its
group (e.g. a provisioner's child) are killed once Terraform has exited.

Values of the extra environment (`RunOptions.env`) are never written anywhere; the log names only
their keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel

from workers.child_env import inherited_environment
from workers.terraform.binary import TerraformBinary, base_environment, terraform_binary

log = logging.getLogger(__name__)

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
POLL_INTERVAL = 0.2
TAIL_LINES = 40
EXCERPT_MAX_CHARS = 4000
LOG_DIR = Path(".ecs-deploy") / "logs"
STALE_PLAN_TEXT = "Saved plan is stale"
STALE_PLAN_MESSAGE = "the state changed since this plan; re-plan"

CancelHook = threading.Event | Callable[[], bool]
SignalName = Literal["SIGINT", "SIGKILL"]


class TerraformError(Exception):
    """A Terraform command failed where the caller needs its data (show, output)."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class StalePlanError(TerraformError):
    """The saved plan no longer matches the state: plan again."""


@dataclass(frozen=True)
class RunOptions:
    """How to run: which binary, extra environment (values never logged), timeouts, cancel hook."""

    binary: TerraformBinary | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    grace_seconds: float = DEFAULT_GRACE
    cancel: CancelHook | None = None
    lock_timeout_seconds: int = 60  # Terraform retries its own state lock this long (-lock-timeout)

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


# ------------------------------------------------------------------------------------------ output text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values given on the command line (`-var=k=v`, `-backend-config=k=v`); files stay visible."""
    shown: list[str] = []
    for arg in argv:
        match = re.match(r"^(-var|-backend-config)=([^=]+)=.*$", arg, flags=re.DOTALL)
        shown.append(f"{match[1]}={match[2]}=***" if match else arg)
    return shown


def error_excerpt(lines: Sequence[str], max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """The `Error:` diagnostics of Terraform's output: boxed (╷ │ ╵) or plain (-no-color)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    boxed = False
    for raw in lines:
        line = raw.rstrip("\n")
        stripped = line[2:] if line.startswith("│ ") else ("" if line == "│" else None)
        if stripped is not None and stripped.startswith("Error: "):
            current, boxed = [stripped], True
            blocks.append(current)
        elif line.startswith("Error: "):
            current, boxed = [line], False
            blocks.append(current)
        elif current is None:
            continue
        elif boxed:
            if line.startswith("╵") or stripped is None:
                current = None
            else:
                current.append(stripped)
        elif line.startswith(("Warning: ", "╷")) or _ends_plain_block(current, line):
            current = None
        else:
            current.append(line)
    text = "\n\n".join("\n".join(block).strip() for block in blocks)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _ends_plain_block(block: list[str], line: str) -> bool:
    """A plain diagnostic is summary, blank, body; a second blank line after the body ends it."""
    return line == "" and len(block) >= 3 and block[-1] == ""


# ---------------------------------------------------------------------------------------------- running


def run_terraform(
    workspace: Path,
    command: str,
    args: Sequence[str] = (),
    *,
    options: RunOptions | None = None,
    on_line: Callable[[str], None] | None = None,
    timeout: float | None = None,
    capture_stdout: bool = False,
) -> tuple[RunResult, bytes]:
    """Run `terraform <command> <args>` in `workspace`. With `capture_stdout`, stdout is returned as
    bytes (for `show -json` / `output -json`) and only stderr is streamed and logged."""
    options = options or RunOptions()
    binary = options.binary or terraform_binary()
    limit = options.timeout_for(command) if timeout is None else timeout
    argv = [*binary.argv, command, *args]
    shown = [*("terraform",), command, *redact_argv(args)]
    env = {**inherited_environment(), **base_environment(), **binary.environment(), **options.env}
    log_path = _new_log_path(workspace, command)

    started = time.monotonic()
    with log_path.open("w", encoding="utf-8", errors="replace") as log_file:
        log_file.write(f"$ {' '.join(shown)}\n")
        log_file.write(f"# binary: {binary.label}; timeout {limit:g} s\n")
        if options.env:
            log_file.write(f"# extra environment: {', '.join(sorted(options.env))} (values not logged)\n")
        log_file.flush()
        process = subprocess.Popen(
            argv,
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
        sink = _LineSink(log_file, on_line)
        readers: list[threading.Thread] = []
        captured = bytearray()
        if capture_stdout:
            assert process.stdout is not None and process.stderr is not None
            readers.append(_start(_collect, process.stdout, captured))
            readers.append(_start(_stream, process.stderr, sink))
        else:
            assert process.stdout is not None
            readers.append(_start(_stream, process.stdout, sink))

        try:
            stop = _wait(process, limit, options)
        except BaseException:
            # The job itself is being stopped (RQ's timeout, a crash): never leave Terraform running
            # unsupervised with the state lock held.
            _stop_now(process, options.grace_seconds)
            raise
        leftovers = _kill_leftovers(process.pid)
        exit_code = process.wait()
        for reader in readers:
            reader.join(timeout=5)
        duration = time.monotonic() - started
        if stop.detail:
            log_file.write(f"# {stop.detail}\n")
        if leftovers:
            log_file.write(f"# killed {leftovers} left-over process(es) of the run\n")
        log_file.write(f"# exit code {exit_code} after {duration:.1f} s\n")

    lines = sink.lines
    result = RunResult(
        command=command,
        argv=shown,
        pid=process.pid,
        exit_code=exit_code,
        duration_seconds=round(duration, 3),
        timed_out=stop.timed_out,
        cancelled=stop.cancelled,
        signal_sent=stop.signal_sent,
        stop_detail=stop.detail,
        leftover_processes_killed=leftovers,
        log_path=log_path,
        output_tail="\n".join(sink.tail),
        error_excerpt=error_excerpt(lines),
        stale_plan=any(STALE_PLAN_TEXT in line for line in lines),
    )
    return result, bytes(captured)


def _new_log_path(workspace: Path, command: str) -> Path:
    directory = workspace / LOG_DIR
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob("*.log"))) + 1
    while True:
        path = directory / f"{number:03d}-{command}.log"
        try:
            path.touch(exist_ok=False)
            return path
        except FileExistsError:
            number += 1


class _LineSink:
    def __init__(self, log_file: IO[str], on_line: Callable[[str], None] | None) -> None:
        self._log_file = log_file
        self._on_line = on_line
        self._lock = threading.Lock()
        self.lines: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._callback_failed = False

    def write(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            self.tail.append(line)
            self._log_file.write(line + "\n")
            self._log_file.flush()
        if self._on_line is not None and not self._callback_failed:
            try:
                self._on_line(line)
            except Exception:  # a failing progress reporter must not stop Terraform's output
                self._callback_failed = True
                log.exception("on_line callback failed; no more lines are passed to it")


def _start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _stream(pipe: IO[bytes], sink: _LineSink) -> None:
    with pipe:
        for raw in iter(pipe.readline, b""):
            sink.write(raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def _collect(pipe: IO[bytes], into: bytearray) -> None:
    with pipe:
        for chunk in iter(lambda: pipe.read(65536), b""):
            into.extend(chunk)


@dataclass
class _Stop:
    timed_out: bool = False
    cancelled: bool = False
    signal_sent: SignalName | None = None
    detail: str = ""


def _cancel_requested(hook: CancelHook | None) -> bool:
    if hook is None:
        return False
    if isinstance(hook, threading.Event):
        return hook.is_set()
    try:
        return bool(hook())
    except Exception as exc:  # e.g. Redis unreachable for a moment: keep supervising the run
        log.warning("cancel check failed (%s); the run goes on", type(exc).__name__)
        return False


def _stop_now(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGINT the run's process group, then SIGKILL it after the grace period if it is still there."""
    _signal_group(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    while not _exited(process.pid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        process.wait(timeout=10)


def _exited(pid: int) -> bool:
    """Has the process exited? It stays a zombie (WNOWAIT), so its pid and group id are not reused."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _default_signals() -> None:
    """Runs in the child before exec. RQ's work horse ignores SIGINT, and an ignored signal stays
    ignored across exec: without this, Terraform (and any wrapper around it) would never see our
    SIGINT, never release its state lock, and always end in SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait(process: subprocess.Popen[bytes], limit: float, options: RunOptions) -> _Stop:
    stop = _Stop()
    started = time.monotonic()
    interrupted_at = 0.0
    while not _exited(process.pid):
        now = time.monotonic()
        if stop.signal_sent is None:
            if now - started >= limit:
                stop.timed_out = True
                stop.detail = f"timed out after {limit:g} s"
            elif _cancel_requested(options.cancel):
                stop.cancelled = True
                stop.detail = "cancelled"
            if stop.detail:
                _signal_group(process.pid, signal.SIGINT)
                stop.signal_sent, interrupted_at = "SIGINT", now
                stop.detail += "; interrupted with SIGINT"
        elif stop.signal_sent == "SIGINT" and now - interrupted_at >= options.grace_seconds:
            _signal_group(process.pid, signal.SIGKILL)
            stop.signal_sent = "SIGKILL"
            stop.detail += f" and killed with SIGKILL after {options.grace_seconds:g} s"
        if isinstance(options.cancel, threading.Event) and stop.signal_sent is None:
            options.cancel.wait(POLL_INTERVAL)
        else:
            time.sleep(POLL_INTERVAL)
    return stop


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, from /proc (empty where /proc is missing)."""
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _kill_leftovers(pid: int) -> int:
    """Terraform has exited (still unreaped): kill whatever else it left in its process group."""
    leftovers = [member for member in group_members(pid) if member != pid]
    if leftovers:
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5  # SIGKILL is asynchronous: report only once the tree is gone
        while time.monotonic() < deadline and any(m != pid for m in group_members(pid)):
            time.sleep(0.02)
    return len(leftovers)


# ----------------------------------------------------------------------------------------------- helpers


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
) -> PlanResult:
    """`terraform plan -detailed-exitcode`: exit 0 no changes, 2 changes, anything else an error."""
    result, _ = run_terraform(
        workspace,
        "plan",
        [
            f"-var-file={var_file}",
            f"-out={plan_file}",
            f"-lock-timeout={(options or RunOptions()).lock_timeout_seconds}s",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
        ],
        options=options,
        on_line=on_line,
    )
    has_changes: bool | None = None
    if not (result.timed_out or result.cancelled):
        has_changes = {0: False, 2: True}.get(result.exit_code if result.exit_code is not None else -1)
    return PlanResult(**result.model_dump(), plan_file=plan_file, has_changes=has_changes)


def apply(
    workspace: Path,
    plan_file: Path,
    on_line: Callable[[str], None] | None = None,
    *,
    options: RunOptions | None = None,
) -> RunResult:
    """`terraform apply -input=false -no-color <plan file>` (a saved plan needs no -auto-approve).

    Raises StalePlanError when Terraform refuses the plan because the state changed since."""
    result, _ = run_terraform(
        workspace,
        "apply",
        [
            "-input=false",
            "-no-color",
            f"-lock-timeout={(options or RunOptions()).lock_timeout_seconds}s",
            str(plan_file),
        ],
        options=options,
        on_line=on_line,
    )
    if result.stale_plan and not result.ok:
        raise StalePlanError(STALE_PLAN_MESSAGE, result)
    return result


def show_json(workspace: Path, plan_file: Path, *, options: RunOptions | None = None) -> bytes:
    """`terraform show -json <plan file>` (show takes no -input)."""
    return _data("show", workspace, ["-json", str(plan_file)], options)


def show_text(workspace: Path, plan_file: Path, *, options: RunOptions | None = None) -> str:
    """`terraform show -no-color <plan file>`: the human-readable plan."""
    return _data("show", workspace, ["-no-color", str(plan_file)], options).decode("utf-8", errors="replace")


def output_json(workspace: Path, *, options: RunOptions | None = None) -> dict[str, Any]:
    """`terraform output -json` as a dict of output name → {"value", "type", "sensitive"}."""
    raw = _data("output", workspace, ["-json", "-no-color"], options)
    data = json.loads(raw or b"{}")
    if not isinstance(data, dict):
        raise TerraformError(f"terraform output -json gave {type(data).__name__}, not an object")
    return data


def _data(command: str, workspace: Path, args: Sequence[str], options: RunOptions | None) -> bytes:
    result, stdout = run_terraform(workspace, command, args, options=options, capture_stdout=True)
    if not result.ok:
        detail = result.error_excerpt or result.stop_detail or result.output_tail
        raise TerraformError(f"{result.summary}: {detail}", result)
    return stdout
