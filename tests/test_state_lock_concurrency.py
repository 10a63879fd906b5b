"""The per-state lock under contention, on the harness's real Redis: holders never overlap, and a
holder that dies (its process killed while it refreshes the lock) stops blocking the state once the
lock's TTL runs out — the next run in line gets it, after being told whom it waited for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import redis

from bot.embedded_redis import EmbeddedRedis
from storage.locks import LockHolder, StateLock
from tests.harness.processes import ROOT

STATE = "tfstate-123456789012-us-east-1/web/dev.tfstate"


def test_concurrent_holders_of_one_state_never_overlap(
    redis_server: EmbeddedRedis, redis_conn: redis.Redis
) -> None:
    runs, rounds = 4, 3
    inside = "test:inside"
    seen: list[tuple[str, int, bool]] = []  # (run, holders inside at once, the stored holder is mine)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        conn = redis.Redis.from_url(redis_server.url)  # each run its own connection, as workers have
        lock = StateLock(conn, STATE, ttl_seconds=60)
        try:
            for _ in range(rounds):
                with lock.held(name, "U1", "plan", wait_seconds=60, poll_seconds=0.01) as mine:
                    at_once = int(conn.incr(inside))
                    current = lock.holder()
                    time.sleep(0.02)  # long enough for the others to try while this one holds it
                    seen.append((name, at_once, current is not None and current.token == mine.token))
                    conn.decr(inside)
        except BaseException as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(f"d-{i}",)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len(seen) == runs * rounds, "every run held the state each round"
    assert {at_once for _, at_once, _ in seen} == {1}, "two runs held the state at the same time"
    assert all(mine for _, _, mine in seen), "the stored holder was someone else's while a run held it"
    assert StateLock(redis_conn, STATE, ttl_seconds=60).holder() is None, "every hold was given back"


_DYING_HOLDER = textwrap.dedent(
    """
    import sys, threading, time
    import redis
    from storage.locks import StateLock

    lock = StateLock(redis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl_seconds=2)
    with lock.held("d-dead", "U-dead", "apply", wait_seconds=10) as mine:
        def keep() -> None:  # refreshed while held, as a worker does
            while lock.refresh(mine.token):
                time.sleep(0.2)
        threading.Thread(target=keep, daemon=True).start()
        print("held", mine.token, flush=True)
        time.sleep(600)
    """
)


def test_a_dead_holders_lock_expires_and_the_next_in_line_gets_it(
    redis_server: EmbeddedRedis, redis_conn: redis.Redis
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _DYING_HOLDER, redis_server.url, STATE],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline().split()
        assert line[:1] == ["held"], "the holder process took the state"
        dead_token = line[1]

        lock = StateLock(redis_conn, STATE, ttl_seconds=60)
        told: list[LockHolder] = []
        waiting = threading.Event()
        got: list[LockHolder] = []

        def on_wait(ahead: LockHolder) -> None:
            told.append(ahead)
            waiting.set()

        def wait_in_line() -> None:
            with lock.held(
                "d-next", "U-next", "plan", wait_seconds=120, on_wait=on_wait, poll_seconds=0.05
            ) as mine:
                got.append(mine)

        waiter = threading.Thread(target=wait_in_line)
        waiter.start()
        assert waiting.wait(60), "the next run was told it waits in line"
        assert not got, "the next run does not get the state while its holder is alive"
        os.kill(holder.pid, signal.SIGKILL)  # the holder dies without releasing the lock
        holder.wait(30)
        waiter.join(120)
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)

    assert [(h.deployment_id, h.step, h.token) for h in told] == [("d-dead", "apply", dead_token)]
    assert [h.deployment_id for h in got] == ["d-next"], (
        "the next in line got the state once the lock expired"
    )
    assert lock.holder() is None
