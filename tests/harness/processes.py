"""The bot's own processes, started the way an operator starts them (the console script's code)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bot.embedded_redis import free_port
from tests.harness.slack_requests import SlackClientSim

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM to a process still running, SIGKILL if it has not exited `timeout` seconds later; returns
    once it has exited."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class WebProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self, timeout: float = 20.0) -> WebProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "web", "--port", str(self.port)],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"web process exited with {self.process.returncode}:\n{output}")
            try:
                requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=0.5)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("web process did not start listening")

    def stop(self) -> str:
        if self.process is None:
            return ""
        stop_process(self.process)
        output = self.process.stdout.read().decode() if self.process.stdout else ""
        return output


@contextmanager
def web_bot(env: dict[str, str]) -> Iterator[SlackClientSim]:
    """A web process started with `env`: yields Slack's side of a conversation with it, and stops it
    whatever happens in the test."""
    web = WebProcess(env).start()
    try:
        yield SlackClientSim(web.events_url)
    finally:
        web.stop()


def with_policy(env: dict[str, str], folder: Path, policy: str) -> dict[str, str]:
    """`env` plus ECS_DEPLOY_POLICY_FILE naming `policy`, written to folder/policy.yml."""
    path = folder / "policy.yml"
    path.write_text(policy)
    return {**env, "ECS_DEPLOY_POLICY_FILE": str(path)}


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`ecs-deploy-bot args` run to its end with exactly `env`; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_worker_burst(env: dict[str, str], *, timeout: float = 240.0, data_dir: Path | None = None) -> str:
    """Run `ecs-deploy-bot worker --burst` until the queue is empty; return its log."""
    extra = {"ECS_DEPLOY_DATA_DIR": str(data_dir)} if data_dir else {}
    completed = cli("worker", "--burst", env={**os.environ, **env, **extra}, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"worker exited with {completed.returncode}:\n{completed.stderr[-5000:]}")
    return completed.stderr + completed.stdout


@contextmanager
def background_workers(env: dict[str, str], data_dirs: list[Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-running `ecs-deploy-bot worker` processes (a burst worker leaves as soon as the queue is
    briefly empty), stopped — whatever happens in the test — with SIGTERM, then SIGKILL of their group."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **env, "ECS_DEPLOY_DATA_DIR": str(data_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for data_dir in data_dirs
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def path_without(program: str, scratch: Path) -> str:
    """PATH as it is, minus `program`: a folder that holds it is replaced by a copy made of links to
    everything else in it, so a test can run the bot as on a machine without that program."""
    folders: list[str] = []
    for index, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if not folder or not (Path(folder) / program).exists():
            folders.append(folder)
            continue
        stand_in = scratch / f"path-{index}"
        stand_in.mkdir(parents=True, exist_ok=True)
        for entry in Path(folder).iterdir():
            if entry.name != program and not (stand_in / entry.name).exists():
                (stand_in / entry.name).symlink_to(entry)
        folders.append(str(stand_in))
    return os.pathsep.join(folders)
