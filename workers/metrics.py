"""The worker's Prometheus histograms, and the HTTP server `ecs-deploy-bot worker --metrics-port` runs.

Series (label values come from fixed sets, never ids):
- `ecs_deploy_step_duration_seconds{step, outcome}`: one per pipeline job (`step` is a storage.queue.Step
  value; `outcome` ok | failed — an expected failure or a stopped deployment — | error — a crash);
- `ecs_deploy_terraform_run_duration_seconds{command, outcome}`: every Terraform command a job ran
  (`outcome` ok | error | timed_out | cancelled);
- `ecs_deploy_account_scan_duration_seconds{outcome}`: the account scans.

Jobs run in RQ's work horse, a process forked per job; an observation made there would die with it.
So the worker uses prometheus_client's multiprocess mode: `enable_multiprocess()` (before any metric
exists) points PROMETHEUS_MULTIPROC_DIR at a private directory made for this worker process, every
horse inherits it and writes its observations to its own small mmap file there, and the server in the
worker's main process adds all files up on each scrape (`MultiProcessCollector`). The directory is
removed when the worker stops. Cost: one small file per job process, kept until then (counts must
survive their process), read at every scrape.

Without `--metrics-port` nothing is served and the histograms are only process-local (harmless).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from core.logs import get_logger
from storage.queue import Step

if TYPE_CHECKING:
    from prometheus_client import Histogram

log = get_logger(__name__)
P = ParamSpec("P")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STEP_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
SCAN_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
TERRAFORM_COMMANDS = frozenset(
    {"init", "plan", "apply", "show", "output", "validate", "version", "force-unlock", "providers", "state"}
)


@dataclass(frozen=True)
class Histograms:
    steps: Histogram
    terraform: Histogram
    scans: Histogram


@cache
def histograms() -> Histograms:
    """Made on first use, so that enable_multiprocess() can come first (the mode is chosen when a
    metric is created)."""
    from prometheus_client import Histogram

    return Histograms(
        steps=Histogram(
            "ecs_deploy_step_duration_seconds",
            "Duration of one pipeline step (one RQ job), by step and outcome.",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
        ),
        terraform=Histogram(
            "ecs_deploy_terraform_run_duration_seconds",
            "Duration of one Terraform command run by a job, by command and outcome.",
            ["command", "outcome"],
            buckets=STEP_BUCKETS,
        ),
        scans=Histogram(
            "ecs_deploy_account_scan_duration_seconds",
            "Duration of one AWS account scan, by outcome.",
            ["outcome"],
            buckets=SCAN_BUCKETS,
        ),
    )


def _safely(observe: Callable[[], None]) -> None:
    """Metrics never break a job."""
    try:
        observe()
    except Exception:
        log.exception("metrics_observe_failed")


def step_label(raw: object) -> str:
    try:
        return Step(str(raw)).value
    except ValueError:
        return "other"


def observe_step(step: object, outcome: str, seconds: float) -> None:
    _safely(lambda: histograms().steps.labels(step=step_label(step), outcome=outcome).observe(seconds))


def timed_job(run: Callable[P, str]) -> Callable[P, str]:
    """Time a job entry point (workers/jobs.py): "done" is `ok`, any other result `failed`, an
    exception `error`. The step comes from the RQ job's meta (storage.queue.enqueue_step)."""

    @functools.wraps(run)
    def timed(*args: P.args, **kwargs: P.kwargs) -> str:
        started, outcome = time.perf_counter(), "error"
        try:
            result = run(*args, **kwargs)
            outcome = "ok" if result == "done" else "failed"
            return result
        finally:
            observe_step(_current_step(), outcome, time.perf_counter() - started)

    return timed


def _current_step() -> object:
    from rq import get_current_job

    job = get_current_job()
    return (job.meta or {}).get("step") if job is not None else None


def observe_terraform(result: Any) -> None:
    """One Terraform run (a workers.terraform.runner.RunResult)."""

    def observe() -> None:
        command = result.command if result.command in TERRAFORM_COMMANDS else "other"
        if result.timed_out:
            outcome = "timed_out"
        elif result.cancelled:
            outcome = "cancelled"
        else:
            outcome = "ok" if result.exit_code in (0, 2) and not result.error_excerpt else "error"
        histograms().terraform.labels(command=command, outcome=outcome).observe(result.duration_seconds)

    _safely(observe)


def observe_scan(seconds: float, ok: bool = True) -> None:
    _safely(lambda: histograms().scans.labels(outcome="ok" if ok else "error").observe(seconds))


# -- the worker's metrics server -------------------------------------------------------------------


def enable_multiprocess(data_dir: Path) -> Path:
    """Before any metric exists in this process: a fresh private directory for this worker's metric
    files (removed at exit), in PROMETHEUS_MULTIPROC_DIR so the work horses inherit it."""
    base = Path(data_dir) / "metrics"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=base))
    os.environ[MULTIPROC_ENV] = str(directory)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a work horse that exits
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


@dataclass
class MetricsServer:
    host: str
    port: int
    stop: Callable[[], None]


def serve(host: str, port: int) -> MetricsServer:
    """Serve the histograms of this worker and its work horses over HTTP (a daemon thread)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        from prometheus_client import REGISTRY as registry
    histograms()  # declared before the first scrape
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("worker_metrics_listening", host=host, port=server.server_port, multiprocess=bool(directory))

    def stop() -> None:
        with contextlib.suppress(Exception):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    return MetricsServer(host=host, port=int(server.server_port), stop=stop)
