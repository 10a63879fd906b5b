"""Running one Terraform command: `run_terraform` starts it under the launcher in its own process
group, writing into its log file, follows the log, supervises the run to its end and returns its
`RunResult` (see the package docstring for how a run is stopped)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from core import terraform_ui
from workers.child_env import inherited_environment
from workers.metrics import observe_terraform
from workers.terraform.binary import base_environment, terraform_binary
from workers.terraform.runner.models import RunOptions, RunResult, StartedRun
from workers.terraform.runner.output_text import error_excerpt, redact_argv
from workers.terraform.runner.plan_files import SealedPlan
from workers.terraform.runner.process_group import (
    kill_leftovers,
    process_start_time,
    stop_now,
    supervise,
)
from workers.terraform.runner.run_log import Follower, LineSink, new_log_path

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).resolve().parent.parent / "launcher.py"


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
    log_path = new_log_path(workspace, command)

    started = time.monotonic()
    with log_path.open("a", encoding="utf-8", errors="replace") as log_file:
        log_file.write(f"$ {' '.join(shown)}\n")
        log_file.write(f"# binary: {binary.label}; timeout {limit:g} s\n")
        if options.env:
            log_file.write(f"# extra environment: {', '.join(sorted(options.env))} (values not logged)\n")
        if sealed is not None:
            log_file.write(f"# plan: sealed copy, sha256 {sealed.sha256}\n")
    offset = log_path.stat().st_size
    sink = LineSink(on_line)
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
    follower = Follower(log_path, offset, sink)
    follower.start()
    if options.on_start is not None:
        try:
            options.on_start(
                StartedRun(pid=process.pid, pid_start=process_start_time(process.pid), log_path=log_path)
            )
        except Exception:  # recording the run must never leave Terraform unsupervised
            log.exception("on_start callback failed; the run goes on")

    try:
        stop = supervise(process, limit, options)
    except BaseException:
        # The job itself is being stopped (RQ's timeout, a crash): never leave Terraform running
        # unsupervised with the state lock held.
        stop_now(process, options.grace_seconds)
        os.close(control_write)
        follower.finish()
        raise
    leftovers = kill_leftovers(process.pid)
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
