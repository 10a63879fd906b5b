"""`ecs-deploy-bot dev` as a developer runs it: a real process tree (web, workers, embedded Redis) in
its own session, so a test can signal it like a terminal (SIGINT to the process group) or a
container runtime (SIGTERM to the process), and see every process it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from bot.embedded_redis import free_port
from bot.supervisor import children_by_parent


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("ecs-deploy-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def children(parent: int) -> list[int]:
    """The direct children of `parent`."""
    return children_by_parent().get(parent, [])


def process_tree(root: int) -> dict[int, str]:
    """Every descendant of `root` (pid → command line), read from /proc."""
    parents = children_by_parent()
    tree: dict[int, str] = {}
    queue = [root]
    while queue:
        for child in parents.get(queue.pop(), []):
            tree[child] = command_line(child)
            queue.append(child)
    return tree


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class DevProcess:
    def __init__(self, env: dict[str, str], cwd: Path, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SLACK_APP_TOKEN")},
            **env,
            "PORT": str(self.port),
        }
        self.cwd = cwd
        self.args = list(args)
        self.process: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.seen: dict[int, str] = {}  # every descendant seen while it ran
        self._readers: list[threading.Thread] = []

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    @property
    def redis_url(self) -> str:
        found = re.search(r"Embedded Redis on (redis://\S+)", "".join(self.stdout))
        assert found, f"dev did not say where its Redis is:\n{self.output[-3000:]}"
        return found.group(1)

    def start(self, timeout: float = 60.0) -> DevProcess:
        self.process = subprocess.Popen(
            [*console_script(), "dev", *self.args],
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream, lines in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            reader = threading.Thread(target=_collect, args=(stream, lines), daemon=True)
            reader.start()
            self._readers.append(reader)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.wait(10)
                raise RuntimeError(f"dev exited with {self.process.returncode}:\n{self.output[-5000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    self.snapshot()
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"dev did not serve /healthz:\n{self.output[-5000:]}")

    def snapshot(self) -> dict[int, str]:
        assert self.process is not None
        tree = process_tree(self.process.pid)
        self.seen.update(tree)
        return tree

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout` seconds."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(timeout=timeout)
        return code

    def kill(self) -> None:
        """Clean up whatever is left, whatever happened in the test."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.seen.update(process_tree(self.process.pid))
            self.process.kill()
        for pid, command in self.seen.items():  # only our own: still running the same command
            if running(pid) and command_line(pid) == command:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)


def _collect(stream: object, lines: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
