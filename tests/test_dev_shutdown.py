"""Stopping `scripts/dev` (`ecs-deploy-bot dev`) is clean (issue 9).

Ctrl-C at a terminal sends SIGINT to the whole foreground process group; a container runtime sends
SIGTERM to the main process. Either way: web stops first, then the workers (their RQ scheduler
releases its locks while Redis is still up), then the embedded Redis; one line per process; no
traceback; nothing left running. Each test runs the real process tree with only the Slack token and
signing secret set (plus where the test's Slack stand-in and data directory are)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.supervisor import Child, Supervisor
from tests.harness.dev import DevProcess, command_line, running
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from tests.harness.slack_requests import SIGNING_SECRET

STOP_BOUND = 60.0  # generous: the tests fail on a hang, they do not measure speed


@pytest.fixture
def dev_env(slack_api: SlackApiStandIn, tmp_path: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api.base_url,
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def start_dev(dev_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., DevProcess]]:
    started: list[DevProcess] = []

    def start(*args: str) -> DevProcess:
        dev = DevProcess(dev_env, tmp_path, args)
        started.append(dev)
        dev.start()
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        # the workers and RQ's scheduler (a fork of the worker that holds the queue's scheduler lock):
        # the process whose locks were released after Redis had gone
        wait_for_tree(dev, lambda tree: sum(" worker" in c for c in tree.values()) >= workers + 1)
        return dev

    yield start
    for dev in started:
        dev.kill()


def wait_for_tree(dev: DevProcess, ready: Callable[[dict[int, str]], bool], bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not ready(dev.snapshot()):
        assert time.monotonic() < deadline, f"the process tree never got ready: {dev.seen}"
        time.sleep(0.1)


def stopped_lines(dev: DevProcess) -> list[str]:
    return re.findall(r"^Stopped (web|worker(?: \d+)?|Redis) \(pid \d+", "".join(dev.stdout), re.M)


def left_running(dev: DevProcess) -> dict[int, str]:
    return {pid: cmd for pid, cmd in dev.seen.items() if running(pid) and command_line(pid) == cmd}


def assert_stopped_cleanly(dev: DevProcess, code: int | None, workers: list[str]) -> None:
    assert code is not None, f"dev did not stop within {STOP_BOUND}s:\n{dev.output[-5000:]}"
    assert code == 0, dev.output[-5000:]
    assert "Traceback" not in dev.output, dev.output[-8000:]
    lines = stopped_lines(dev)
    assert lines[0] == "web" and lines[-1] == "Redis", dev.stdout
    assert sorted(lines[1:-1]) == workers, dev.stdout
    assert left_running(dev) == {}


def test_ctrl_c_stops_web_then_the_worker_then_redis_without_a_traceback(
    start_dev: Callable[..., DevProcess],
) -> None:
    dev = start_dev()
    tree = dev.snapshot()
    assert any("redis-server" in command for command in tree.values()), tree
    assert dev.process is not None

    os.killpg(dev.process.pid, signal.SIGINT)  # what Ctrl-C at the terminal does

    assert_stopped_cleanly(dev, dev.wait(STOP_BOUND), ["worker"])
    assert "releasing locks" in dev.output  # the scheduler released its locks, with Redis still there


def test_sigterm_stops_web_then_every_worker_then_redis(start_dev: Callable[..., DevProcess]) -> None:
    dev = start_dev("--workers", "2")
    assert dev.process is not None

    dev.process.send_signal(signal.SIGTERM)  # what a container runtime does

    assert_stopped_cleanly(dev, dev.wait(STOP_BOUND), ["worker 1", "worker 2"])


def test_a_process_that_dies_stops_the_rest_in_order(start_dev: Callable[..., DevProcess]) -> None:
    dev = start_dev()
    web = next(pid for pid, command in dev.snapshot().items() if command.endswith(f"web --port {dev.port}"))

    os.kill(web, signal.SIGKILL)

    code = dev.wait(STOP_BOUND)
    assert code == 1, dev.output[-5000:]
    assert "web exited on its own (killed by SIGKILL); stopping the rest." in dev.output
    assert stopped_lines(dev) == ["web", "worker", "Redis"]
    assert "Traceback" not in dev.output, dev.output[-8000:]
    assert left_running(dev) == {}


def test_children_do_not_outlive_a_killed_dev(start_dev: Callable[..., DevProcess]) -> None:
    dev = start_dev()
    assert dev.process is not None

    dev.process.kill()  # no chance to stop anything: the kernel tells the children (PDEATHSIG)

    assert dev.wait(STOP_BOUND) is not None
    deadline = time.monotonic() + STOP_BOUND
    while left_running(dev) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left_running(dev) == {}


QUIET_FRONT = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); print('ready', flush=True); time.sleep(120)"
BUSY_WORKER = """
import signal, sys, time
signals = []
signal.signal(signal.SIGINT, lambda *_: signals.append(1))
print("ready", flush=True)
while len(signals) < 2:  # like RQ: the first SIGINT waits for the job, the second interrupts it
    time.sleep(0.05)
sys.exit(3)
"""


def test_a_worker_busy_with_a_job_is_waited_for_until_a_second_ctrl_c() -> None:
    """The supervisor's side of RQ's warm and cold shutdown, with a child that behaves like a worker
    in the middle of a job."""
    lines: list[str] = []
    supervisor = Supervisor(echo=lines.append)
    front = Child(
        "web", subprocess.Popen([sys.executable, "-c", QUIET_FRONT], stdout=subprocess.PIPE, text=True)
    )
    assert front.process.stdout is not None and front.process.stdout.readline() == "ready\n"
    worker_process = subprocess.Popen([sys.executable, "-c", BUSY_WORKER], stdout=subprocess.PIPE, text=True)
    assert worker_process.stdout is not None and worker_process.stdout.readline() == "ready\n"
    worker = Child("worker", worker_process)
    stopping = threading.Thread(target=supervisor.stop, args=(front, [worker], None))
    try:
        stopping.start()
        deadline = time.monotonic() + STOP_BOUND
        while not any(line.startswith("Waiting for worker to finish") for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.1)
        assert worker.alive and lines[0] == f"Stopped web (pid {front.process.pid}, killed by SIGINT)"

        supervisor.stop_requests += 1  # what the signal handler counts: Ctrl-C again

        stopping.join(STOP_BOUND)
        assert not stopping.is_alive()
        assert lines[-2:] == [
            "Stopping the workers now: a running job is interrupted.",
            f"Stopped worker (pid {worker_process.pid}, exit code 3)",
        ]
    finally:
        for process in (front.process, worker_process):
            process.kill()
            process.wait()
