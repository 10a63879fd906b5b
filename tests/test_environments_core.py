"""Environments: the pure rules of core/environments.py and the Redis store of storage/environments.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from core.environments import (
    Environment,
    EnvironmentChange,
    EnvironmentKey,
    EnvironmentStatus,
    after_apply,
    choose_environment,
    config_branch,
    environment_key,
    is_changing,
    locked_changes,
    parse_environment_ref,
)
from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import Deployment
from storage.environments import EnvironmentStore
from tests.harness.records import deployment_record, deployment_request

REQUESTER, LEAD = "U0REQUEST1", "U0LEAD0001"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def change_of(deployment: Deployment, kind: DeploymentKind, at: datetime = T0) -> EnvironmentChange:
    return EnvironmentChange(
        deployment_id=deployment.id,
        kind=kind,
        requester_id=deployment.requester_id,
        approver_ids=[LEAD],
        plan_sha256="a" * 64,
        repo_commit="c" * 40,
        applied_at=at,
        channel_id=deployment.channel_id,
        thread_ts="1700000000.000100",
    )


def applied(
    previous: Environment | None, deployment: Deployment, kind: DeploymentKind, at: datetime = T0
) -> Environment:
    return after_apply(
        previous,
        deployment=deployment,
        change=change_of(deployment, kind, at),
        tfvars_sha256="b" * 64,
        outputs={"alb_dns_name": {"value": "lb.example", "sensitive": False}, "db": {"sensitive": True}},
    )


def test_the_key_is_the_branch_name_and_people_write_app_slash_env() -> None:
    request = deployment_request()
    key = environment_key(request)
    assert str(key) == request.environment_key
    assert str(key) == f"{request.application}-{request.environment}-{request.account_id}-{request.region}"
    assert key.short == f"{request.application}/{request.environment}"
    assert config_branch(key) == f"ecs-deploy/{key}"
    assert config_branch(key, "deploys/") == f"deploys/{key}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web/dev", ("web", "dev", None, None)),
        (" web/dev ", ("web", "dev", None, None)),
        ("web/dev@123456789012/eu-west-1", ("web", "dev", "123456789012", "eu-west-1")),
    ],
)
def test_environment_refs_people_type(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = parse_environment_ref(text)
    assert ref is not None
    assert (ref.application, ref.environment, ref.account_id, ref.region) == expected


@pytest.mark.parametrize(
    "text", ["web", "web/", "/dev", "web/dev/x", "web/dev@123456789012", "web/dev@/x", ""]
)
def test_what_is_not_an_environment_ref(text: str) -> None:
    assert parse_environment_ref(text) is None


def test_a_ref_chooses_among_accounts_and_regions_live_first() -> None:
    first = applied(None, deployment_record(REQUESTER), DeploymentKind.CREATE)
    elsewhere_request = deployment_request(region="eu-west-1")
    elsewhere = applied(None, deployment_record(REQUESTER, request=elsewhere_request), DeploymentKind.CREATE)
    gone = applied(elsewhere, deployment_record(REQUESTER, request=elsewhere_request), DeploymentKind.DESTROY)
    ref = parse_environment_ref(first.key.short)
    assert ref is not None
    both = choose_environment([gone, first], ref)
    assert [env.key for env in both] == [first.key, gone.key]  # live first
    precise = parse_environment_ref(f"{first.key.short}@{first.key.account_id}/eu-west-1")
    assert precise is not None
    assert [env.key for env in choose_environment([gone, first], precise)] == [gone.key]
    other = parse_environment_ref("other/dev")
    assert other is not None and choose_environment([gone, first], other) == []


def test_the_first_apply_creates_later_ones_change_and_a_destroy_ends_it() -> None:
    create = deployment_record(REQUESTER)
    env = applied(None, create, DeploymentKind.CREATE)
    assert env.status is EnvironmentStatus.LIVE
    assert env.key == environment_key(create.request)
    assert env.deployments == [create.id] and [c.deployment_id for c in env.changes] == [create.id]
    assert env.created_at == T0 and env.outputs["db"] == {"sensitive": True}

    bigger = deployment_record(
        REQUESTER, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
    )
    later = T0 + timedelta(days=3)
    env = applied(env, bigger, DeploymentKind.CHANGE, later)
    assert env.request.size.value == "medium" and env.status is EnvironmentStatus.LIVE
    assert env.deployments == [create.id, bigger.id] and env.created_at == T0 and env.updated_at == later
    assert env.last_change is not None and env.last_change.kind is DeploymentKind.CHANGE

    destroy = deployment_record(REQUESTER, request=env.request, kind=DeploymentKind.DESTROY)
    env = applied(env, destroy, DeploymentKind.DESTROY, later + timedelta(days=1))
    assert env.status is EnvironmentStatus.DESTROYED and env.outputs == {}
    assert [c.kind for c in env.changes] == [
        DeploymentKind.CREATE,
        DeploymentKind.CHANGE,
        DeploymentKind.DESTROY,
    ]


def test_a_deployment_already_listed_is_not_listed_twice() -> None:
    create = deployment_record(REQUESTER)
    env = applied(None, create, DeploymentKind.CREATE)
    change = deployment_record(REQUESTER, kind=DeploymentKind.CHANGE)
    env = env.model_copy(update={"deployments": [*env.deployments, change.id]})  # added when requested
    assert applied(env, change, DeploymentKind.CHANGE).deployments == [create.id, change.id]


@pytest.mark.parametrize(
    ("status", "changing"),
    [
        (DeploymentStatus.PLANNING, True),
        (DeploymentStatus.AWAITING_APPROVAL, True),
        (DeploymentStatus.DEPLOYED, False),
        (DeploymentStatus.FAILED, False),
        (None, False),
    ],
)
def test_changing_while_the_newest_deployment_is_open(
    status: DeploymentStatus | None, changing: bool
) -> None:
    env = applied(None, deployment_record(REQUESTER), DeploymentKind.CREATE)
    assert is_changing(env, status) is changing
    gone = env.model_copy(update={"status": EnvironmentStatus.DESTROYED})
    assert is_changing(gone, status) is False


def test_locked_fields_are_named() -> None:
    before = deployment_request()
    assert locked_changes(before, deployment_request(size="large", additional_tags={"team": "x"})) == []
    assert locked_changes(before, deployment_request(vpc_cidr_block="10.9.0.0/16")) == ["vpc_cidr_block"]


# -- the store ---------------------------------------------------------------------------------------


def test_the_store_keeps_indexes_and_updates_atomically(redis_conn: redis.Redis) -> None:
    store = EnvironmentStore(redis_conn)
    create = deployment_record(REQUESTER)
    key = environment_key(create.request)
    assert store.find(key) is None and store.all() == []

    stored = store.update(key, lambda current: applied(current, create, DeploymentKind.CREATE))
    assert stored is not None and store.find(key) == stored
    elsewhere = deployment_record(REQUESTER, request=deployment_request(region="eu-west-1"))
    store.update(
        str(environment_key(elsewhere.request)),
        lambda c: applied(c, elsewhere, DeploymentKind.CREATE, T0 + timedelta(hours=1)),
    )

    assert [str(e.key) for e in store.named(key.application, key.environment)] == sorted(
        [str(key), elsewhere.request.environment_key]
    )
    assert [str(e.key) for e in store.all()] == [elsewhere.request.environment_key, str(key)]  # newest first
    assert store.named(key.application, "other") == []

    assert store.update(key, lambda current: None) == stored  # nothing written
    change_id = "d-change01"
    assert store.add_deployment(key, change_id) is not None
    assert store.add_deployment(key, change_id) is not None  # idempotent
    found = store.find(key)
    assert found is not None and found.deployments == [create.id, change_id]
    assert store.add_deployment("no-such-key", change_id) is None


def test_concurrent_writers_lose_nothing(redis_conn: redis.Redis) -> None:
    store = EnvironmentStore(redis_conn)
    create = deployment_record(REQUESTER)
    key = environment_key(create.request)
    store.update(key, lambda current: applied(current, create, DeploymentKind.CREATE))
    other = redis.Redis(connection_pool=redis_conn.connection_pool)
    raced = False

    def add_while_another_writes(current: Environment | None) -> Environment | None:
        nonlocal raced
        assert current is not None
        if not raced:  # another process writes between this read and the write: redis-py runs us again
            raced = True
            EnvironmentStore(other).add_deployment(key, "d-other001")
        return current.model_copy(update={"deployments": [*current.deployments, "d-mine0001"]})

    store.update(key, add_while_another_writes)
    found = store.find(key)
    assert found is not None and found.deployments == [create.id, "d-other001", "d-mine0001"]
    assert isinstance(found.key, EnvironmentKey)
