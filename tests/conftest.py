from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import boto3
import pytest
import redis

from bot.embedded_redis import EmbeddedRedis
from storage.store import DeploymentStore
from tests.harness.aws import MotoServer, aws_environment, patched_environ

# Nothing in the tests may reach a real AWS account or a real credential chain.
for _name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ["CHECKPOINT_DISABLE"] = "1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class _Stoppable(Protocol):
    def stop(self) -> object: ...


class _Resettable(Protocol):
    def reset(self) -> None: ...


StoppableT = TypeVar("StoppableT", bound=_Stoppable)
ResettableT = TypeVar("ResettableT", bound=_Resettable)


def _until_teardown(started: StoppableT) -> Iterator[StoppableT]:
    """A fixture's body for a server or process it started: yields it, stops it at teardown."""
    yield started
    started.stop()


def _reset_around(shared: ResettableT) -> Iterator[ResettableT]:
    """A fixture's body for a session-wide stand-in: reset before the test and after it."""
    shared.reset()
    yield shared
    shared.reset()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    yield from _until_teardown(EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False).start())


@pytest.fixture
def redis_conn(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    yield conn
    conn.flushall()
    conn.close()


@pytest.fixture
def store(redis_conn: redis.Redis) -> DeploymentStore:
    """The deployment store on this test's (flushed) Redis."""
    return DeploymentStore(redis_conn)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer().start()
    env = aws_environment(server.endpoint, tmp_path_factory.mktemp("aws"))
    with patched_environ(env):
        yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> Iterator[MotoServer]:
    """A clean moto: every test starts from an empty account (plus moto's default VPC)."""
    yield from _reset_around(moto_server)


@pytest.fixture
def deployer_session(aws: MotoServer) -> boto3.Session:
    return boto3.Session(profile_name="deployer", region_name="us-east-1")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- Slack: the Web API stand-in and the bot's real HTTP endpoint ---------------------------------

from tests.harness.processes import WebProcess, web_bot, with_policy  # noqa: E402
from tests.harness.secrets import ARTIFACT_KEY  # noqa: E402
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn  # noqa: E402
from tests.harness.slack_requests import SIGNING_SECRET, SlackClientSim  # noqa: E402


@pytest.fixture(scope="session")
def slack_stand_in() -> Iterator[SlackApiStandIn]:
    yield from _until_teardown(SlackApiStandIn().start())


@pytest.fixture
def slack_api(slack_stand_in: SlackApiStandIn) -> Iterator[SlackApiStandIn]:
    yield from _reset_around(slack_stand_in)


@pytest.fixture(scope="session")
def bot_env(
    redis_server: EmbeddedRedis,
    slack_stand_in: SlackApiStandIn,
    moto_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The environment an operator gives the bot's processes, pointed at the local stand-ins."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_stand_in.base_url,
        "REDIS_URL": redis_server.url,
        "ECS_DEPLOY_DATA_DIR": str(tmp_path_factory.mktemp("bot-data")),
        "ECS_DEPLOY_ARTIFACT_KEY": ARTIFACT_KEY,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def web_process(bot_env: dict[str, str]) -> Iterator[WebProcess]:
    yield from _until_teardown(WebProcess(bot_env).start())


@pytest.fixture
def slack(
    web_process: WebProcess, slack_api: SlackApiStandIn, redis_conn: redis.Redis, aws: MotoServer
) -> SlackClientSim:
    """Slack's side of the conversation, against a clean Redis, Slack stand-in and moto."""
    return SlackClientSim(web_process.events_url)


# -- the whole pipeline: a web process and workers pointed at the test Terraform repository --------

from tests.harness.flow import GROUP_LEAD, LEAD, LEADS_GROUP, REQUESTER, PipelineRun  # noqa: E402
from tests.harness.tfrepo import make_git_repo  # noqa: E402


@pytest.fixture
def policy_yaml() -> str | None:
    """The access policy file (ECS_DEPLOY_POLICY_FILE) that `pipeline_env` and `policy_bot` give the
    bot: none here, so ECS_DEPLOY_APPROVERS' open policy applies; a test module overrides this."""
    return None


def _under_policy(env: dict[str, str], folder: Path, policy: str | None) -> dict[str, str]:
    return env if policy is None else with_policy(env, folder, policy)


@pytest.fixture
def pipeline_env(bot_env: dict[str, str], tmp_path: Path, policy_yaml: str | None) -> dict[str, str]:
    repo, _ = make_git_repo(tmp_path)
    env = {
        **bot_env,
        "ECS_DEPLOY_REPO_URL": str(repo),
        "ECS_DEPLOY_APPROVERS": f"{LEAD},{REQUESTER}",  # the requester is a lead too: self-approval rule
        "ECS_DEPLOY_VERIFY_TIMEOUT": "0",
        "ECS_DEPLOY_DATA_DIR": str(tmp_path / "worker-a"),
    }
    return _under_policy(env, tmp_path, policy_yaml)


@pytest.fixture
def pipeline(
    pipeline_env: dict[str, str], slack_api: SlackApiStandIn, redis_conn: redis.Redis, aws: MotoServer
) -> Iterator[SlackClientSim]:
    with web_bot(pipeline_env) as slack:
        yield slack


@pytest.fixture
def pipeline_run(
    pipeline: SlackClientSim,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
    pipeline_env: dict[str, str],
) -> PipelineRun:
    """`pipeline`, with the Slack stand-in, the deployment store and the workers' environment."""
    return PipelineRun(pipeline, slack_api, DeploymentStore(redis_conn), pipeline_env)


@pytest.fixture
def policy_bot(
    bot_env: dict[str, str],
    tmp_path: Path,
    policy_yaml: str | None,
    slack_api: SlackApiStandIn,
    redis_conn: redis.Redis,
) -> Iterator[SlackClientSim]:
    """A web process alone (no workers, no Terraform repository) under `policy_yaml`, against a clean
    Redis and Slack stand-in."""
    with web_bot(_under_policy(bot_env, tmp_path, policy_yaml)) as slack:
        yield slack


@pytest.fixture(scope="module")
def lead_web(bot_env: dict[str, str]) -> Iterator[WebProcess]:
    """The bot with an open policy whose approvers (leads) are a user and a user group."""
    yield from _until_teardown(
        WebProcess({**bot_env, "ECS_DEPLOY_APPROVERS": f"{LEAD},{LEADS_GROUP}"}).start()
    )


@pytest.fixture
def bot(
    lead_web: WebProcess, slack_api: SlackApiStandIn, redis_conn: redis.Redis, aws: MotoServer
) -> SlackClientSim:
    slack_api.usergroups[LEADS_GROUP] = [GROUP_LEAD]
    return SlackClientSim(lead_web.events_url)
