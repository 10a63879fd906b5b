"""The one way the bot runs Terraform.

Every command is an argv list (never a shell) run in the workspace, in its own process group, with
`TF_IN_AUTOMATION=1`, `CHECKPOINT_DISABLE=1`, an empty CLI config unless one is set, and an explicit
timeout. Terraform writes its output (stdout and stderr together) straight into
`<workspace>/.ecs-deploy/logs/<n>-<command>.log` (0600); the runner follows that file line by line
into an optional `on_line` callback. There is no pipe between Terraform and the worker: a worker that
dies can no longer kill Terraform with SIGPIPE half-way through an apply.

`plan` and `apply` run with `-json` (Terraform's machine-readable UI, core/terraform_ui.py): their
log holds one UI message per line, and errors, the stale-plan refusal and a state-lock failure are
read from its `diagnostic` messages, the apply's progress from its hooks (core/apply_progress.py).
`human_log` renders such a log for people (it is what gets attached). The commands that have no
machine-readable UI here (`init`; `show -no-color`, the human plan; `output`) write text, and their
`Error:` blocks are cut from it (`error_excerpt`).

Terraform is started by a small single-threaded launcher (workers/terraform/launcher.py), the leader
of the run's process group, which relays Terraform's exit status. Stopping, in every case:
- timeout or cancel: the whole process group gets SIGINT first (Terraform stops gracefully, writes
  its state and releases its state lock), then SIGKILL after a grace period. Processes the run leaves
  behind in its group (e.g. a provisioner's child) are killed once Terraform has exited;
- the job around the run is stopped (RQ's timeout, an exception): the same, before the job ends;
- the supervising process dies (SIGKILL, OOM, a container stop of the work horse): the launcher sees
  its control pipe close and gives Terraform exactly one SIGINT (a second one would make Terraform
  exit at once, state unwritten, lock held), then kills what is left of the group after the grace
  period. Should the launcher die too, Terraform gets one SIGINT from the kernel (PR_SET_PDEATHSIG,
  armed before exec in its single-threaded parent).

Plan files: a plan the bot hashed is handed to Terraform as a `SealedPlan` — the bytes in a sealed
memory file (memfd, F_SEAL_WRITE…), read by Terraform as `/dev/fd/<n>` — and hashed again
immediately before the command starts. What was hashed is exactly what Terraform reads: nothing on
disk can be swapped between the check and the read. Terraform writes new plans into a directory
only the worker can use (`private_directory`, 0700).

Values of the extra environment (`RunOptions.env`) are never written anywhere; the log names only
their keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core import terraform_ui
from core.terraform_ui import Diagnostic
from workers.child_env import inherited_environment
from workers.metrics import observe_terraform
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
STALE_PLAN_MESSAGE = "the state changed since this plan; re-plan"
FOLLOW_INTERVAL = 0.1
LAUNCHER = Path(__file__).resolve().with_name("launcher.py")


CancelHook = threading.Event | Callable[[], bool]
SignalName = Literal["SIGINT", "SIGKILL"]


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


# ------------------------------------------------------------------------------------------ output text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values given on the command line (`-var=k=v`, `-backend-config=k=v`); files stay visible."""
    shown: list[str] = []
    for arg in argv:
        match = re.match(r"^(-var|-backend-config)=([^=]+)=.*$", arg, flags=re.DOTALL)
        shown.append(f"{match[1]}={match[2]}=***" if match else arg)
    return shown


def error_excerpt(lines: Sequence[str], max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """The `Error:` diagnostics of a text run's output (commands without -json): boxed (╷ │ ╵) or
    plain (-no-color)."""
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


def human_log(text: str) -> str:
    """A run's log for people: UI messages (-json runs) as their human text, other lines as they are."""
    return "\n".join(terraform_ui.human_lines(text.splitlines())) + ("\n" if text.endswith("\n") else "")


def _ends_plain_block(block: list[str], line: str) -> bool:
    """A plain diagnostic is summary, blank, body; a second blank line after the body ends it."""
    return line == "" and len(block) >= 3 and block[-1] == ""


# ----------------------------------------------------------------------------------------- plan files


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


def _plan_argument(plan_file: PlanInput) -> tuple[str, SealedPlan | None]:
    if isinstance(plan_file, SealedPlan):
        return plan_file.argument, plan_file
    return str(plan_file), None


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
    sealed: SealedPlan | None = None,
    expected_sha256: str | None = None,
    machine_readable: bool = False,
) -> tuple[RunResult, bytes]:
    """Run `terraform <command> <args>` in `workspace`. With `capture_stdout`, stdout is returned as
    bytes (for `show -json` / `output -json`) and only stderr goes to the log.

    With `sealed`, the command reads that plan (its `argument` is in `args`): its bytes are hashed
    immediately before the command starts and must match `expected_sha256` (default: the hash taken
    when it was sealed), else PlanIntegrityError and nothing runs.

    `machine_readable`: the command runs with -json; errors and the stale-plan refusal are read from
    its `diagnostic` messages.

    It blocks until the run ended: the thread that started the launcher lives as long as the run."""
    options = options or RunOptions()
    binary = options.binary or terraform_binary()
    limit = options.timeout_for(command) if timeout is None else timeout
    argv = [*binary.argv, command, *args]
    shown = [*("terraform",), command, *redact_argv(args)]
    env = {**inherited_environment(), **base_environment(), **binary.environment(), **options.env}
    if sealed is not None:  # the bytes Terraform will read (sealed: they cannot change after this)
        sealed.verify(expected_sha256 or sealed.sha256)
    log_path = _new_log_path(workspace, command)

    started = time.monotonic()
    with log_path.open("a", encoding="utf-8", errors="replace") as log_file:
        log_file.write(f"$ {' '.join(shown)}\n")
        log_file.write(f"# binary: {binary.label}; timeout {limit:g} s\n")
        if options.env:
            log_file.write(f"# extra environment: {', '.join(sorted(options.env))} (values not logged)\n")
        if sealed is not None:
            log_file.write(f"# plan: sealed copy, sha256 {sealed.sha256}\n")
    offset = log_path.stat().st_size
    sink = _LineSink(on_line)
    # Terraform writes straight into the log file (no pipe: a reader that dies would kill Terraform
    # with SIGPIPE at its next line, before it writes its state or releases its lock).
    stdout_file = tempfile.TemporaryFile(dir=log_path.parent) if capture_stdout else None  # noqa: SIM115
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    # The launcher's control pipe: this process holds the write end for as long as it supervises the
    # run; if it dies, the launcher reads end-of-file and stops the run (see launcher.py).
    control_read, control_write = os.pipe()
    pass_fds = [control_read, *([sealed.fd] if sealed is not None else [])]
    launcher = [sys.executable, "-I", str(LAUNCHER), "--control", str(control_read)]
    launcher += ["--grace", f"{options.grace_seconds:g}"]
    if sealed is not None:
        launcher += ["--pass-fd", str(sealed.fd)]
    try:
        if options.before_start is not None:
            options.before_start()
        process = subprocess.Popen(
            [*launcher, "--", *argv],
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout_file.fileno() if stdout_file is not None else log_fd,
            stderr=log_fd,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except BaseException:
        os.close(control_write)
        if stdout_file is not None:
            stdout_file.close()
        raise
    finally:
        os.close(log_fd)  # the launcher has its own copies
        os.close(control_read)
    follower = _Follower(log_path, offset, sink)
    follower.start()
    if options.on_start is not None:
        try:
            options.on_start(
                StartedRun(pid=process.pid, pid_start=process_start_time(process.pid), log_path=log_path)
            )
        except Exception:  # recording the run must never leave Terraform unsupervised
            log.exception("on_start callback failed; the run goes on")

    try:
        stop = _wait(process, limit, options)
    except BaseException:
        # The job itself is being stopped (RQ's timeout, a crash): never leave Terraform running
        # unsupervised with the state lock held.
        _stop_now(process, options.grace_seconds)
        os.close(control_write)
        follower.finish()
        raise
    leftovers = _kill_leftovers(process.pid)
    exit_code = process.wait()
    os.close(control_write)
    follower.finish()
    duration = time.monotonic() - started
    with log_path.open("a", encoding="utf-8", errors="replace") as log_file:
        if stop.detail:
            log_file.write(f"# {stop.detail}\n")
        if leftovers:
            log_file.write(f"# killed {leftovers} left-over process(es) of the run\n")
        log_file.write(f"# exit code {exit_code} after {duration:.1f} s\n")
    captured = b""
    if stdout_file is not None:
        stdout_file.seek(0)
        captured = stdout_file.read()
        stdout_file.close()

    lines = sink.lines
    found = terraform_ui.diagnostics(lines) if machine_readable else ()
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
        error_excerpt=terraform_ui.error_excerpt(found) if machine_readable else error_excerpt(lines),
        stale_plan=terraform_ui.stale_plan(found),
        machine_readable=machine_readable,
        diagnostics=list(found),
    )
    observe_terraform(result)  # ecs_deploy_terraform_run_duration_seconds (workers/metrics.py)
    return result, captured


def _new_log_path(workspace: Path, command: str) -> Path:
    directory = workspace / LOG_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    number = len(list(directory.glob("*.log"))) + 1
    while True:
        path = directory / f"{number:03d}-{command}.log"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            return path
        except FileExistsError:
            number += 1


class _LineSink:
    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self._on_line = on_line
        self.lines: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._callback_failed = False

    def write(self, line: str) -> None:
        self.lines.append(line)
        self.tail.append(terraform_ui.human_line(line))
        if self._on_line is not None and not self._callback_failed:
            try:
                self._on_line(line)
            except Exception:  # a failing progress reporter must not stop Terraform's output
                self._callback_failed = True
                log.exception("on_line callback failed; no more lines are passed to it")


class _Follower(threading.Thread):
    """Follows the log file Terraform writes (like `tail -f`), line by line into the sink. Whether the
    follower keeps up or not never affects Terraform: it only reads."""

    def __init__(self, path: Path, offset: int, sink: _LineSink) -> None:
        super().__init__(name=f"follow {path.name}", daemon=True)
        self.path = path
        self.offset = offset
        self.sink = sink
        self._done = threading.Event()

    def run(self) -> None:
        pending = b""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            while True:
                finishing = self._done.is_set()  # read once more after the run ended: then stop at EOF
                chunk = handle.read(65536)
                if chunk:
                    *complete, pending = (pending + chunk).split(b"\n")
                    for raw in complete:
                        self.sink.write(raw.decode("utf-8", errors="replace").rstrip("\r"))
                    continue
                if finishing:
                    break
                self._done.wait(FOLLOW_INTERVAL)
        if pending:
            self.sink.write(pending.decode("utf-8", errors="replace").rstrip("\r"))

    def finish(self) -> None:
        """The run is over: read what is left, then stop."""
        self._done.set()
        self.join(timeout=30)


def process_start_time(pid: int) -> int | None:
    """A live process's start time (clock ticks after boot, from /proc): with the pid it names one
    process for good (pids are reused). None when it is gone, a zombie, or /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return int(fields[19])


def process_running(pid: int, start_time: int | None) -> bool:
    """Is the process `pid` that started at `start_time` still running (not exited, not a zombie)?"""
    return start_time is not None and process_start_time(pid) == start_time


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
    """The launcher (and so Terraform) has exited, still unreaped: kill whatever else is left in the
    run's process group."""
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
    """`terraform plan -json -detailed-exitcode`: exit 0 no changes, 2 changes, anything else an error."""
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
    argument, sealed = _plan_argument(plan_file)
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
    argument, sealed = _plan_argument(plan_file)
    return _data("show", workspace, ["-json", argument], options, sealed)


def show_text(workspace: Path, plan_file: PlanInput, *, options: RunOptions | None = None) -> str:
    """`terraform show -no-color <plan file>`: the human-readable plan."""
    argument, sealed = _plan_argument(plan_file)
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
