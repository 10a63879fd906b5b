"""The configuration commit after an apply (workers/environments.run_commit_config): real git with
bare repositories under tmp_path, real Redis, the Slack stand-in, the GitHub stand-in over HTTP
(PyGithub), and the Retry button through the real Bolt app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from core.environment_config import ConfigTrailers
from core.environments import config_branch
from core.lifecycle import DeploymentKind, DeploymentStatus
from core.models import Deployment
from core.settings import Settings
from core.tfvars.reading import read_tfvars
from storage.environments import EnvironmentStore
from tests.harness.flow import BYSTANDER, LEAD, OTHER, REQUESTER, click, ephemeral_to, eventually
from tests.harness.github_api import GITHUB_TOKEN, GitHubApiStandIn
from tests.harness.records import deployment_request
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim
from tests.harness.tfrepo import git
from tests.test_environment_record import (
    applied_deployment,
    bare_repo,
    commit_jobs,
    config_runtime,
)
from workers import environments as environments_module
from workers.config_repo import parse_trailers
from workers.environments import record_apply, run_commit_config
from workers.github_pr import github_repository
from workers.runtime import Runtime

KEY = deployment_request().environment_key
BRANCH = config_branch(KEY)
STEM = deployment_request().file_stem


@pytest.fixture
def github() -> Iterator[GitHubApiStandIn]:
    server = GitHubApiStandIn().start()
    server.add_repository("acme/poc-idp")
    yield server
    server.stop()


def runtime_pushing_to(
    bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path, push_url: str, **settings: str
) -> Runtime:
    return config_runtime(bot_env, redis_conn, tmp_path, ECS_DEPLOY_CONFIG_PUSH_URL=push_url, **settings)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """The bare repository the configuration is pushed to."""
    return bare_repo(tmp_path)


@pytest.fixture
def rt(bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path, remote: Path) -> Runtime:
    """A worker's Runtime pushing to `remote`."""
    return runtime_pushing_to(bot_env, redis_conn, tmp_path, str(remote))


@pytest.fixture
def runtime_with_pull_requests(
    bot_env: dict[str, str], redis_conn: redis.Redis, tmp_path: Path, github: GitHubApiStandIn
) -> Callable[[str], Runtime]:
    """A Runtime pushing to a new bare repository, with pull requests opened on the GitHub stand-in
    as acme/poc-idp with the token it is given."""
    return lambda token: runtime_pushing_to(
        bot_env,
        redis_conn,
        tmp_path,
        str(bare_repo(tmp_path)),
        ECS_DEPLOY_GITHUB_TOKEN=token,
        ECS_DEPLOY_GITHUB_API_URL=github.base_url,
        ECS_DEPLOY_GITHUB_REPOSITORY="acme/poc-idp",
    )


def recorded_apply(rt: Runtime, api: SlackApiStandIn, **kwargs: Any) -> Deployment:
    """`applied_deployment` with its apply recorded in the environment (no outputs)."""
    deployment = applied_deployment(rt, api, **kwargs)
    record_apply(rt, deployment, {})
    return deployment


def branch_log(remote: Path) -> list[str]:
    """The branch's commits on the remote, newest first (sha)."""
    return git(remote, "rev-list", f"refs/heads/{BRANCH}").splitlines()


def trailers_of(remote: Path, sha: str) -> list[tuple[str, str]]:
    return parse_trailers(
        git(remote, "log", "-1", "--format=%(trailers:only=true,unfold=true,separator=%x1f)", sha)
    )


def show(remote: Path, rev: str, path: str) -> str:
    return git(remote, "show", f"{rev}:{path}")


def test_an_apply_commits_its_files_with_trailers_once(
    rt: Runtime, remote: Path, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    deployment = recorded_apply(rt, slack_api, approvers=(LEAD, OTHER))
    assert deployment.workspace is not None and deployment.approval.binding is not None

    assert run_commit_config(rt, KEY, deployment.id) == "committed"

    applied = deployment.workspace.commit
    shas = branch_log(remote)
    assert shas[1:] == git(remote, "rev-list", applied).splitlines()  # one commit on top of the applied one
    head = shas[0]
    assert git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", head) == (
        "ecs-deploy-bot <ecs-deploy-bot@users.noreply.local>|ecs-deploy-bot <ecs-deploy-bot@users.noreply.local>"
    )
    subject = git(remote, "log", "-1", "--format=%s", head)
    assert deployment.id in subject and "web/dev" in subject and subject.startswith("Create")
    trailers = trailers_of(remote, head)
    assert ("Requested-by", REQUESTER) in trailers
    assert [v for k, v in trailers if k == "Approved-by"] == [LEAD, OTHER]
    assert ("Plan-SHA256", deployment.approval.binding.plan_sha256) in trailers
    assert ("Applied-commit", applied) in trailers
    assert ConfigTrailers.parse(trailers) == ConfigTrailers.of(deployment)
    tfvars_path, tfbackend_path = deployment.workspace.tfvars_path, deployment.workspace.tfbackend_path
    assert (tfvars_path, tfbackend_path) == (f"tfvars/{STEM}.tfvars", f"tfbackends/{STEM}.tfbackend")
    workspace = rt.settings.data_dir / "workspaces" / deployment.id
    assert show(remote, head, tfvars_path) + "\n" == (workspace / tfvars_path).read_text()
    assert show(remote, head, tfbackend_path) + "\n" == (workspace / tfbackend_path).read_text()

    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None
    assert (env.config.branch, env.config.commit, env.config.pushed) == (BRANCH, head, True)
    assert any(
        BRANCH in text and head[:12] in text for text in slack_api.thread_texts(deployment.thread_ts or "")
    )

    # the job again (a retry after a lost answer): nothing new on the branch
    assert run_commit_config(rt, KEY, deployment.id) == "unchanged"
    assert branch_log(remote)[0] == head


def test_a_second_apply_adds_a_commit_with_its_values(
    rt: Runtime, remote: Path, slack_api: SlackApiStandIn
) -> None:
    first = recorded_apply(rt, slack_api)
    run_commit_config(rt, KEY, first.id)
    first_head = branch_log(remote)[0]

    new_values = {
        "sns_monitoring_recepients_email_list": ["oncall@example.com"],
        "route53_dns_name": "web.example.org",
    }
    second = recorded_apply(
        rt,
        slack_api,
        request=deployment_request(size="medium"),
        kind=DeploymentKind.CHANGE,
        extra_values=new_values,
    )
    assert run_commit_config(rt, KEY, second.id) == "committed"

    head = branch_log(remote)[0]
    assert git(remote, "rev-parse", f"{head}^") == first_head
    values = read_tfvars(show(remote, head, f"tfvars/{STEM}.tfvars"))
    assert values["sns_monitoring_recepients_email_list"] == ["oncall@example.com"]
    assert values["route53_dns_name"] == "web.example.org"
    assert read_tfvars(show(remote, first_head, f"tfvars/{STEM}.tfvars"))["route53_dns_name"] == "example.com"
    assert ("Ecs-Deploy-Size", "medium") in trailers_of(remote, head)
    assert ("Ecs-Deploy-Kind", "change") in trailers_of(remote, head)


def test_a_destroy_commits_the_last_files_with_a_message_saying_so(
    rt: Runtime, remote: Path, slack_api: SlackApiStandIn
) -> None:
    created = recorded_apply(rt, slack_api)
    run_commit_config(rt, KEY, created.id)
    destroy = recorded_apply(rt, slack_api, kind=DeploymentKind.DESTROY)

    assert run_commit_config(rt, KEY, destroy.id) == "committed"

    head, before = branch_log(remote)[:2]
    assert git(remote, "log", "-1", "--format=%s", head).startswith("Destroy")
    assert "destroyed" in git(remote, "log", "-1", "--format=%b", head)
    assert show(remote, head, f"tfvars/{STEM}.tfvars") == show(remote, before, f"tfvars/{STEM}.tfvars")
    assert ("Ecs-Deploy-Kind", "destroy") in trailers_of(remote, head)


def test_a_failed_push_leaves_the_deployment_alone_and_retry_pushes_after_the_fix(
    bot_env: dict[str, str],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    bot: SlackClientSim,
    tmp_path: Path,
) -> None:
    unreachable = f"file://{tmp_path}/no-such-remote.git"
    rt = runtime_pushing_to(bot_env, redis_conn, tmp_path, unreachable)
    deployment = applied_deployment(rt, slack_api)
    rt.store.update(deployment.id, lambda d: d.with_status(DeploymentStatus.DEPLOYED))
    record_apply(rt, deployment, {})
    thread = deployment.thread_ts or ""

    assert run_commit_config(rt, KEY, deployment.id) == "not pushed"

    assert rt.store.get(deployment.id).status is DeploymentStatus.DEPLOYED
    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None and not env.config.pushed
    assert "no-such-remote" in env.config.error
    [notice] = [t for t in slack_api.thread_texts(thread) if "not pushed" in t]
    assert BRANCH in notice
    _, button = slack_api.find_button(thread, "environment_config_retry")
    assert button["value"] == f"{KEY}:{deployment.id}"

    # someone who is neither the requester nor a lead is refused, and nothing is queued
    jobs_before = commit_jobs(rt)
    click(bot, slack_api, thread, "environment_config_retry", BYSTANDER)
    ephemeral_to(slack_api, BYSTANDER, "")
    assert commit_jobs(rt) == jobs_before

    # the requester's click queues the job again
    click(bot, slack_api, thread, "environment_config_retry", REQUESTER)
    eventually(lambda: len(commit_jobs(rt)) > len(jobs_before))
    assert commit_jobs(rt) == [*jobs_before, (KEY, deployment.id)]

    # the operator fixes the push URL; the worker runs the queued job
    remote = bare_repo(tmp_path)
    fixed = runtime_pushing_to(bot_env, redis_conn, tmp_path, str(remote))
    assert run_commit_config(fixed, KEY, deployment.id) == "committed"
    assert len(branch_log(remote)) == 2
    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None and env.config.pushed
    assert env.config.commit == branch_log(remote)[0]


def test_credentials_in_the_push_url_never_reach_slack_or_the_logs(
    bot_env: dict[str, str], redis_conn: redis.Redis, slack_api: SlackApiStandIn, tmp_path: Path
) -> None:
    secret = "s3cr3t-push-token"
    rt = runtime_pushing_to(
        bot_env, redis_conn, tmp_path, f"https://bot:{secret}@127.0.0.1:9/acme/poc-idp.git"
    )
    deployment = recorded_apply(rt, slack_api)
    with capture_logs() as logs:
        assert run_commit_config(rt, KEY, deployment.id) == "not pushed"
    assert logs and secret not in repr(logs)
    assert secret not in slack_api.all_payload_text()
    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None and secret not in env.config.error
    assert "127.0.0.1" in env.config.error  # the reason is still there, without the credentials


def test_a_pull_request_is_opened_then_updated_and_the_token_stays_secret(
    runtime_with_pull_requests: Callable[[str], Runtime],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    github: GitHubApiStandIn,
) -> None:
    rt = runtime_with_pull_requests(GITHUB_TOKEN)
    first = recorded_apply(rt, slack_api)
    with capture_logs() as logs:
        run_commit_config(rt, KEY, first.id)
        second = recorded_apply(
            rt, slack_api, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
        )
        run_commit_config(rt, KEY, second.id)

    [pull] = github.pulls
    assert (pull.head, pull.base, pull.state) == (BRANCH, "main", "open")
    assert len(github.calls_to("POST", "/pulls")) == 1
    [edit] = github.calls_to("PATCH", f"/pulls/{pull.number}")
    assert second.id in edit.body["title"] and second.id in edit.body["body"]
    assert pull.title == edit.body["title"]
    lookups = github.calls_to("GET", "/pulls")
    assert lookups and all(c.query["head"] == f"acme:{BRANCH}" and c.query["base"] == "main" for c in lookups)
    assert all(c.authorized for c in github.calls)

    url = "https://github.example/acme/poc-idp/pull/1"
    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None and env.config.pull_request_url == url
    assert any(url in text for text in slack_api.thread_texts(second.thread_ts or ""))
    assert logs and GITHUB_TOKEN not in repr(logs)
    assert GITHUB_TOKEN not in slack_api.all_payload_text()


def test_a_pull_request_github_refuses_is_said_but_the_push_stands(
    runtime_with_pull_requests: Callable[[str], Runtime],
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    github: GitHubApiStandIn,
) -> None:
    rt = runtime_with_pull_requests("ghp_wrong_token_000000000000000000000000")
    deployment = recorded_apply(rt, slack_api)

    assert run_commit_config(rt, KEY, deployment.id) == "committed"

    assert github.pulls == [] and not github.calls[0].authorized
    env = EnvironmentStore(redis_conn).find(KEY)
    assert (
        env is not None
        and env.config is not None
        and env.config.pushed
        and env.config.pull_request_url is None
    )
    assert "401" in env.config.error
    texts = slack_api.thread_texts(deployment.thread_ts or "")
    assert any("Configuration committed" in t for t in texts)


def test_pull_requests_need_a_token_and_a_github_repository() -> None:
    token = {"ECS_DEPLOY_GITHUB_TOKEN": GITHUB_TOKEN}
    with_token = Settings(**token)  # type: ignore[arg-type]
    assert github_repository(with_token, "https://github.com/acme/poc-idp.git") == "acme/poc-idp"
    assert github_repository(with_token, "git@github.com:acme/poc-idp.git") == "acme/poc-idp"
    assert github_repository(with_token, "https://gitlab.example/acme/poc-idp.git") is None
    named = Settings(**token, ECS_DEPLOY_GITHUB_REPOSITORY="acme/infra")  # type: ignore[arg-type]
    assert github_repository(named, "/srv/git/poc-idp.git") == "acme/infra"
    assert github_repository(Settings(), "https://github.com/acme/poc-idp.git") is None


def test_an_older_apply_retried_after_a_newer_one_never_becomes_the_branch_head(
    rt: Runtime, remote: Path, redis_conn: redis.Redis, slack_api: SlackApiStandIn
) -> None:
    """A Retry on the first apply's failed push, clicked after a change was applied and committed,
    must not put the first apply's (older) files on top: `environments import` reads the head."""
    first = recorded_apply(rt, slack_api)  # its commit job "failed": never ran
    second = recorded_apply(
        rt, slack_api, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
    )
    assert run_commit_config(rt, KEY, second.id) == "committed"
    head = branch_log(remote)[0]

    assert run_commit_config(rt, KEY, first.id) == "superseded"

    assert branch_log(remote)[0] == head
    assert ("Ecs-Deploy-Size", "medium") in trailers_of(remote, head)
    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None
    assert (env.config.deployment_id, env.config.commit) == (second.id, head)
    assert any("superseded" in text for text in slack_api.thread_texts(first.thread_ts or ""))


def test_an_older_apply_committed_before_the_newer_one_keeps_the_branch_one_commit_per_apply(
    rt: Runtime, remote: Path, slack_api: SlackApiStandIn
) -> None:
    """Both pushes failed; retried oldest first: each apply gets its commit, the newest on top."""
    first = recorded_apply(rt, slack_api)
    second = recorded_apply(
        rt, slack_api, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
    )

    assert run_commit_config(rt, KEY, first.id) == "committed"
    assert run_commit_config(rt, KEY, second.id) == "committed"

    head, before = branch_log(remote)[:2]
    assert ("Ecs-Deploy-Deployment", second.id) in trailers_of(remote, head)
    assert ("Ecs-Deploy-Deployment", first.id) in trailers_of(remote, before)


def test_a_push_that_outlasts_the_config_lock_is_still_reported_as_committed(
    rt: Runtime,
    remote: Path,
    redis_conn: redis.Redis,
    slack_api: SlackApiStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The push landed, but the job's lock expired meanwhile (a slow remote): releasing it fails.
    The outcome is still "committed" — not a "not pushed" notice and a Retry for a commit that is
    on the branch, nor a registry saying it was not pushed."""
    monkeypatch.setattr(environments_module, "LOCK_SECONDS", 1)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 2\n")  # a slow remote: the push outlasts the 1 s lock
    hook.chmod(0o755)
    deployment = recorded_apply(rt, slack_api)

    assert run_commit_config(rt, KEY, deployment.id) == "committed"

    env = EnvironmentStore(redis_conn).find(KEY)
    assert env is not None and env.config is not None and env.config.pushed
    assert env.config.commit == branch_log(remote)[0]
    assert not [t for t in slack_api.thread_texts(deployment.thread_ts or "") if "not pushed" in t]


def test_a_change_to_another_ref_updates_the_one_pull_request_into_the_configured_branch(
    runtime_with_pull_requests: Callable[[str], Runtime],
    slack_api: SlackApiStandIn,
    github: GitHubApiStandIn,
) -> None:
    """A change may check out a tag or a commit (`repo_ref`); the pull request of the environment
    branch still targets ECS_DEPLOY_REPO_REF — a tag or a SHA is no base GitHub accepts, and another
    base would open a second pull request for the same branch."""
    rt = runtime_with_pull_requests(GITHUB_TOKEN)
    first = recorded_apply(rt, slack_api)
    assert run_commit_config(rt, KEY, first.id) == "committed"
    second = recorded_apply(
        rt, slack_api, request=deployment_request(size="medium"), kind=DeploymentKind.CHANGE
    )
    rt.store.update(second.id, lambda d: d.model_copy(update={"repo_ref": "v2.0.0"}))

    assert run_commit_config(rt, KEY, second.id) == "committed"

    [pull] = github.pulls
    assert (pull.head, pull.base) == (BRANCH, "main")
    assert len(github.calls_to("PATCH", f"/pulls/{pull.number}")) == 1
