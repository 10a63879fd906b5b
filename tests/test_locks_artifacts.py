"""The per-state lock and the artifact store, on a real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from storage.artifacts import ArtifactError, sha256
from storage.locks import LockHolder, StateLock, StateLockTimeout
from tests.harness.flow import eventually
from tests.harness.secrets import artifact_store


def test_second_run_of_the_same_state_waits_and_is_told_who_is_ahead(redis_conn: redis.Redis) -> None:
    first = StateLock(redis_conn, "bucket/key", ttl_seconds=60)
    second = StateLock(redis_conn, "bucket/key", ttl_seconds=60)
    told: list[LockHolder] = []
    order: list[str] = []

    with first.held("d-1", "U1", "plan", wait_seconds=1):

        def run_second() -> None:
            with second.held("d-2", "U2", "plan", wait_seconds=10, on_wait=told.append, poll_seconds=0.02):
                order.append("second")

        thread = threading.Thread(target=run_second)
        thread.start()
        eventually(lambda: told)  # the second run is waiting in line (however slow its start)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    assert [h.deployment_id for h in told] == ["d-1"] and told[0].user_id == "U1"
    assert first.holder() is None


def test_different_states_do_not_block_each_other(redis_conn: redis.Redis) -> None:
    with (
        StateLock(redis_conn, "a/key", ttl_seconds=60).held("d-1", "U1", "plan", wait_seconds=0.1),
        StateLock(redis_conn, "b/key", ttl_seconds=60).held("d-2", "U2", "plan", wait_seconds=0.1),
    ):
        pass


def test_waiting_gives_up_at_its_deadline(redis_conn: redis.Redis) -> None:
    lock = StateLock(redis_conn, "s/k", ttl_seconds=60)
    holder = lock.try_acquire("d-1", "U1", "apply")
    assert holder is not None
    with (
        pytest.raises(StateLockTimeout) as timeout,
        lock.held("d-2", "U2", "plan", wait_seconds=0.2, poll_seconds=0.02),
    ):
        pass
    assert "d-1 (apply)" in str(timeout.value)


def test_only_the_taker_releases(redis_conn: redis.Redis) -> None:
    lock = StateLock(redis_conn, "s/k", ttl_seconds=60)
    holder = lock.try_acquire("d-1", "U1", "apply")
    assert holder is not None
    assert lock.release("not-the-token") is False
    assert lock.holder() is not None
    assert lock.release(holder.token) is True
    assert lock.holder() is None


def test_lock_expires_so_a_crashed_worker_cannot_hold_it_forever(redis_conn: redis.Redis) -> None:
    lock = StateLock(redis_conn, "s/k", ttl_seconds=1)
    assert lock.try_acquire("d-1", "U1", "apply") is not None
    time.sleep(1.2)
    assert lock.try_acquire("d-2", "U2", "plan") is not None


def test_artifacts_are_checked_against_their_hash(redis_conn: redis.Redis) -> None:
    store = artifact_store(redis_conn)
    digest = store.put("d-1", "plan", b"planfile")
    assert digest == sha256(b"planfile")
    assert store.get("d-1", "plan", digest) == b"planfile"
    store.put("d-1", "plan", b"another plan")  # authentic, but not the file that was recorded
    with pytest.raises(ArtifactError, match="does not match"):
        store.get("d-1", "plan", digest)
    with pytest.raises(ArtifactError, match="no longer stored"):
        store.get("d-2", "plan", digest)


def test_a_second_run_of_the_same_deployment_waits_too(redis_conn: redis.Redis) -> None:
    """Each run has its own token: a plan job still finishing never lets the same deployment's apply in."""
    lock = StateLock(redis_conn, "s/k", ttl_seconds=60)
    plan = lock.try_acquire("d-1", "U1", "plan")
    assert plan is not None
    assert lock.try_acquire("d-1", "U1", "apply") is None
    assert lock.release(plan.token)
    assert lock.try_acquire("d-1", "U1", "apply") is not None


def test_refresh_keeps_a_long_run_locked_and_only_for_its_owner(redis_conn: redis.Redis) -> None:
    lock = StateLock(redis_conn, "s/k", ttl_seconds=3)
    holder = lock.try_acquire("d-1", "U1", "apply")
    assert holder is not None
    for _ in range(4):  # 4 s in all, past the TTL; 2 s of margin between refreshes on a busy machine
        time.sleep(1)
        assert lock.refresh(holder.token)
    assert lock.holder() is not None, "refreshed past its TTL"
    assert not lock.refresh("someone-else")
