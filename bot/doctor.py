"""`ecs-deploy-bot doctor`: every dependency checked, in words an operator can act on.

Like the CLI, this is a composition root: it may look at the workers' engines (Terraform).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import redis
from pydantic import BaseModel
from slack_sdk.errors import SlackApiError

from aws_edge import configs
from aws_edge.sessions import known_profiles, profile_session
from bot.slack import make_web_client
from core.persistence import assess_persistence
from core.redis_settings import redis_configured
from core.settings import Settings
from storage.connection import redis_connection
from storage.persistence import read_persistence

DOCTOR_GIT_TIMEOUT = 20.0


class Check(BaseModel):
    name: str
    level: Literal["ok", "warn", "fail"]
    detail: str


def check_slack(settings: Settings) -> Check:
    if settings.slack_bot_token is None:
        return Check(name="slack", level="fail", detail="SLACK_BOT_TOKEN is not set.")
    try:
        reply = make_web_client(settings).auth_test()
        return Check(
            name="slack",
            level="ok",
            detail=f"auth.test ok: bot {reply.get('user')} in team {reply.get('team')}",
        )
    except SlackApiError as exc:
        return Check(name="slack", level="fail", detail=f"auth.test failed: {exc.response.get('error')}")
    except OSError as exc:
        return Check(
            name="slack", level="fail", detail=f"{settings.slack_api_url} unreachable: {type(exc).__name__}"
        )


def check_signing(settings: Settings) -> Check:
    if settings.slack_signing_secret is None and settings.slack_app_token is None:
        return Check(
            name="slack signing",
            level="fail",
            detail="SLACK_SIGNING_SECRET is not set (needed for HTTP mode; or set SLACK_APP_TOKEN).",
        )
    mode = "Socket Mode" if settings.slack_app_token else "HTTP (/slack/events)"
    return Check(name="slack mode", level="ok", detail=mode)


def check_redis(settings: Settings) -> Check:
    if not redis_configured(settings):
        return Check(
            name="redis",
            level="warn",
            detail="REDIS_URL is not set: only `ecs-deploy-bot dev` works (embedded Redis).",
        )
    connection = redis_connection(settings, "cli")
    try:
        connection.ping()
        verdict = assess_persistence(read_persistence(connection))
    except redis.RedisError as exc:
        return Check(name="redis", level="fail", detail=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    return Check(name="redis", level=verdict.level, detail=f"ping ok; {verdict.detail}")


def check_artifact_key(settings: Settings) -> Check:
    """The keys that encrypt plan files and tfvars in Redis (never shown), and whether the artifacts
    stored now can still be read with them (a key dropped too early during a rotation)."""
    keys = settings.artifact_keys
    if not keys:
        return Check(
            name="artifact key",
            level="fail",
            detail="ECS_DEPLOY_ARTIFACT_KEY is not set: web and worker refuse to start without it"
            " (only `ecs-deploy-bot dev` makes its own).",
        )
    detail = f"{len(keys)} key(s); the first encrypts"
    if not redis_configured(settings):
        return Check(name="artifact key", level="ok", detail=detail)
    from storage.artifacts import ArtifactStore

    try:
        store = ArtifactStore.for_settings(redis_connection(settings, "cli"), settings)
        readable, total = store.readable_count()
    except redis.RedisError as exc:
        return Check(
            name="artifact key", level="warn", detail=f"{detail}; Redis unreachable: {type(exc).__name__}"
        )
    if readable < total:
        return Check(
            name="artifact key",
            level="fail",
            detail=f"{detail}; {total - readable} of {total} stored artifacts cannot be read with these keys"
            " (was a key removed before its artifacts expired?)",
        )
    return Check(name="artifact key", level="ok", detail=f"{detail}; {total} stored artifact(s) readable")


def _verify_profile(profile: str) -> tuple[str, str | None]:
    try:
        reply = profile_session(profile).client("sts", config=configs.STANDARD).get_caller_identity()
        return profile, str(reply["Account"])
    except Exception as exc:
        return profile, f"! {type(exc).__name__}"


def check_aws_profiles() -> Check:
    profiles = known_profiles()
    if not profiles:
        return Check(
            name="aws profiles", level="fail", detail="No AWS named profiles are configured on this host."
        )
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(_verify_profile, profiles))
    bad = [f"{p} ({r})" for p, r in results if r and r.startswith("!")]
    good = [f"{p} → {r}" for p, r in results if r and not r.startswith("!")]
    detail = "; ".join(good) + (("; unusable: " + ", ".join(bad)) if bad else "")
    return Check(name="aws profiles", level="warn" if bad else "ok", detail=detail)


def check_policy(settings: Settings) -> Check:
    if settings.policy_file is None:
        return Check(
            name="access policy",
            level="warn",
            detail="ECS_DEPLOY_POLICY_FILE is not set: every profile is usable by everyone (dev default).",
        )
    from core.policy.access import destroy_warnings, policy_warnings
    from core.policy.errors import PolicyError
    from core.policy.loading import load_policy

    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        return Check(name="access policy", level="fail", detail=str(exc))
    detail = f"{settings.policy_file}: {len(policy.profiles)} profile(s)"
    warnings = policy_warnings(policy) + destroy_warnings(policy)
    if warnings:
        return Check(name="access policy", level="warn", detail="; ".join([detail, *warnings]))
    return Check(name="access policy", level="ok", detail=detail)


def check_terraform(settings: Settings) -> Check:
    try:
        from workers.terraform.binary import resolve_terraform

        binary = resolve_terraform(settings.terraform_bin)
    except Exception as exc:
        return Check(name="terraform", level="fail", detail=f"{type(exc).__name__}: {exc}")
    return Check(name="terraform", level="ok", detail=f"{binary.version} via {binary.source}")


def check_config_repo(settings: Settings) -> Check:
    """Where applied configuration is pushed (ECS_DEPLOY_CONFIG_PUSH_URL or the repository) can be
    read, and a GitHub token has a repository to open pull requests in. Never a failure: a push that
    fails never fails a deployment (the thread offers a retry)."""
    from workers.config_repo import ConfigRepo, ConfigRepoError
    from workers.github_pr import github_repository
    from workers.workspace import WorkspaceError

    try:
        repo = ConfigRepo(settings, git_timeout=DOCTOR_GIT_TIMEOUT)
        branches = repo.remote_heads(f"{settings.config_branch_prefix}*")
    except (ConfigRepoError, WorkspaceError) as exc:
        return Check(
            name="config repository", level="warn", detail=f"configuration will not be pushed: {exc}"
        )
    detail = f"{repo.shown_push_url}: {len(branches)} {settings.config_branch_prefix}* branch(es)"
    token = settings.github_token is not None and bool(settings.github_token.get_secret_value())
    if token and github_repository(settings, repo.push_url) is None:
        return Check(
            name="config repository",
            level="warn",
            detail=f"{detail}; ECS_DEPLOY_GITHUB_TOKEN is set but the push URL is not a github.com "
            "repository: set ECS_DEPLOY_GITHUB_REPOSITORY=owner/name for pull requests",
        )
    return Check(
        name="config repository", level="ok", detail=detail + ("; pull requests on" if token else "")
    )


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_signing(settings),
        check_slack(settings),
        check_redis(settings),
        check_artifact_key(settings),
        check_policy(settings),
        check_aws_profiles(),
        check_terraform(settings),
        check_config_repo(settings),
    ]
