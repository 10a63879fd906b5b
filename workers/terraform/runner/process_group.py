"""The run's process group, supervised: waiting for it under a timeout and a cancel hook (SIGINT,
then SIGKILL after the grace period), stopping it at once, killing what it leaves behind, and
recognising a process again by its pid and start time (/proc)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workers.terraform.runner.models import CancelHook, RunOptions, SignalName

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.2


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


def stop_now(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
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


def supervise(process: subprocess.Popen[bytes], limit: float, options: RunOptions) -> _Stop:
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


def kill_leftovers(pid: int) -> int:
    """The launcher (and so Terraform) has exited, still unreaped: kill whatever else is left in the
    run's process group."""
    leftovers = [member for member in group_members(pid) if member != pid]
    if leftovers:
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5  # SIGKILL is asynchronous: report only once the tree is gone
        while time.monotonic() < deadline and any(m != pid for m in group_members(pid)):
            time.sleep(0.02)
    return len(leftovers)
