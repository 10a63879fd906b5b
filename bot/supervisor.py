"""The process supervision behind `ecs-deploy-bot dev`: start web (or socket), workers and Redis; stop
them in order.

Every child runs in its own process group, so Ctrl-C at the terminal (SIGINT to the foreground
process group), SIGTERM (what a container runtime sends) or SIGHUP reach only the supervisor, which
then stops the processes in the order they depend on each other, printing one line per process:

1. the front (web or socket) with SIGINT: it stops taking requests and closes (10 s, then SIGKILL);
2. the workers with SIGINT, RQ's warm shutdown: each finishes the job it runs, stops its scheduler
   (which releases its locks) and deregisters, while Redis is still there. A second Ctrl-C or
   SIGTERM forwards SIGINT again, RQ's cold shutdown (the running job is interrupted); a third
   kills what is left;
3. the embedded Redis last, saving its data.

If a child exits on its own, the rest are stopped the same way. If the supervisor itself is killed,
its children get SIGTERM from the kernel (bot.embedded_redis.die_with_parent, Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bot.embedded_redis import EmbeddedRedis, die_with_parent

FRONT_GRACE_SECONDS = 10.0
WORKER_PATIENCE_SECONDS = 5.0  # then say that a worker is finishing a job, and how to interrupt it
RQ_SIGNAL_DEBOUNCE_SECONDS = 1.1  # RQ ignores a second SIGINT that comes within a second of the first
POLL_SECONDS = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Child:
    label: str
    process: subprocess.Popen[bytes]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Supervisor:
    echo: Callable[[str], None]
    children: list[Child] = field(default_factory=list)
    stop_requests: int = 0

    def _say(self, line: str) -> None:
        """One line for the developer; a terminal that is gone (SIGHUP) must not stop the stopping."""
        with contextlib.suppress(OSError):
            self.echo(line)

    # -- start ------------------------------------------------------------------------------------

    def catch_stop_signals(self) -> None:
        """From now on SIGINT, SIGTERM and SIGHUP only count as requests to stop (no KeyboardInterrupt)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requests += 1

    def spawn(self, label: str, args: Sequence[str], env: dict[str, str]) -> Child:
        """`ecs-deploy-bot <args>` as a child in its own process group."""
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        child = Child(label, process)
        self.children.append(child)
        return child

    # -- run and stop -----------------------------------------------------------------------------

    def run(self, front: Child, workers: list[Child], redis: EmbeddedRedis | None) -> int:
        """Wait for a stop request or a child that exits; stop everything in order. Returns the exit
        code for the supervisor: 0 when asked to stop, 1 when a child exited on its own."""
        code = 0
        try:
            while self.stop_requests == 0:
                exited = next((c for c in [front, *workers] if not c.alive), None)
                if exited is not None:
                    self._say(
                        f"{exited.label} exited on its own ({_how(exited.process.returncode)}); stopping the rest."
                    )
                    code = 1
                    break
                time.sleep(POLL_SECONDS)
        finally:
            self.stop(front, workers, redis)
        return code

    def stop(self, front: Child, workers: list[Child], redis: EmbeddedRedis | None) -> None:
        self._stop_front(front)
        self._stop_workers(workers, redis)
        if redis is not None:
            self._stop_redis(redis)

    def _stop_front(self, front: Child) -> None:
        if front.alive:
            front.process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + FRONT_GRACE_SECONDS
            while front.alive and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
            if front.alive:
                _kill_tree(front.process.pid)
        self._stopped(front)

    def _stop_workers(self, workers: list[Child], redis: EmbeddedRedis | None = None) -> None:
        running = [w for w in workers if w.alive]
        for worker in running:
            worker.process.send_signal(signal.SIGINT)
        for worker in workers:
            if worker not in running:
                self._stopped(worker)
        asked_at = time.monotonic()
        requests_seen = self.stop_requests
        escalations = 0
        announced = False
        while running:
            for worker in [w for w in running if not w.alive]:
                running.remove(worker)
                self._stopped(worker)
            if not running:
                break
            if _gone(redis) and time.monotonic() - asked_at > WORKER_PATIENCE_SECONDS:
                # the embedded Redis died: no job can finish or report, and each Redis call of a
                # stopping worker would wait out its reconnect retries
                self._say("Redis is gone: stopping the workers without waiting for their jobs.")
                for worker in running:
                    _kill_tree(worker.process.pid)
            elif self.stop_requests > requests_seen:
                requests_seen = self.stop_requests
                escalations += 1
                if escalations == 1:
                    self._say("Stopping the workers now: a running job is interrupted.")
                    time.sleep(max(0.0, asked_at + RQ_SIGNAL_DEBOUNCE_SECONDS - time.monotonic()))
                    for worker in running:
                        with contextlib.suppress(ProcessLookupError):
                            worker.process.send_signal(signal.SIGINT)
                else:
                    for worker in running:
                        _kill_tree(worker.process.pid)
            elif not announced and time.monotonic() - asked_at > WORKER_PATIENCE_SECONDS:
                announced = True
                names = ", ".join(w.label for w in running)
                self._say(f"Waiting for {names} to finish the running job (Ctrl-C again to interrupt it).")
            time.sleep(POLL_SECONDS)

    def _stop_redis(self, redis: EmbeddedRedis) -> None:
        pid = redis.pid
        redis.stop()
        self._say(f"Stopped Redis (pid {pid}); its data is saved in {redis.data_dir}")

    def _stopped(self, child: Child) -> None:
        child.process.wait()
        self._say(f"Stopped {child.label} (pid {child.process.pid}, {_how(child.process.returncode)})")


def _gone(redis: EmbeddedRedis | None) -> bool:
    return redis is not None and (redis.process is None or redis.process.poll() is not None)


def _how(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def children_by_parent() -> dict[int, list[int]]:
    """parent pid → the pids of its children, read from /proc (empty where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    return parents


def _descendants(pid: int) -> list[int]:
    """The process's children, grandchildren, … (from /proc; empty where there is none)."""
    parents = children_by_parent()
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL a child and everything under it, also what left its process group (RQ's work horse)."""
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)
