"""All configuration, read once from the environment (and `.env`). Invalid values stop start-up."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TypeVar

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_API_DEFAULT = "https://slack.com/api/"
SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def parse_keys(value: str) -> list[str]:
    """The comma-separated keys of the setting, each checked to be a Fernet key. Messages name the
    position of a bad key, never its text."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("must hold at least one key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(
                f"key {position} of {len(keys)} is not a Fernet key (url-safe base64 of 32 random bytes,"
                " as Fernet.generate_key() prints)"
            ) from None
    return keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default=SLACK_API_DEFAULT, alias="SLACK_API_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    # Sentinel ("host:port,host:port") and TLS files: see storage/connection.py, which makes every connection
    redis_sentinels: str = Field(default="", alias="REDIS_SENTINELS")
    redis_sentinel_master: str = Field(default="", alias="REDIS_SENTINEL_MASTER")
    redis_tls_ca_file: Path | None = Field(default=None, alias="REDIS_TLS_CA_FILE")
    redis_tls_cert_file: Path | None = Field(default=None, alias="REDIS_TLS_CERT_FILE")
    redis_tls_key_file: Path | None = Field(default=None, alias="REDIS_TLS_KEY_FILE")
    data_dir: Path = Field(default=Path(".ecs-deploy-data"), alias="ECS_DEPLOY_DATA_DIR")
    policy_file: Path | None = Field(default=None, alias="ECS_DEPLOY_POLICY_FILE")
    approvers: str = Field(default="", alias="ECS_DEPLOY_APPROVERS")
    repo_url: str = Field(default="https://github.com/santyar0/poc-idp.git", alias="ECS_DEPLOY_REPO_URL")
    repo_ref: str = Field(default="main", alias="ECS_DEPLOY_REPO_REF")
    terraform_bin: str | None = Field(default=None, alias="TERRAFORM_BIN")
    approval_ttl_hours: float = Field(default=24.0, gt=0, alias="ECS_DEPLOY_APPROVAL_TTL_HOURS")
    job_timeout_seconds: int = Field(default=900, ge=60, alias="ECS_DEPLOY_JOB_TIMEOUT")
    apply_timeout_seconds: int = Field(default=3600, ge=1, alias="ECS_DEPLOY_APPLY_TIMEOUT")
    plan_timeout_seconds: int = Field(default=1200, ge=1, alias="ECS_DEPLOY_PLAN_TIMEOUT")
    terraform_lock_timeout_seconds: int = Field(default=60, ge=0, alias="ECS_DEPLOY_TF_LOCK_TIMEOUT")
    queue_name: str = Field(default="ecs-deploy", alias="ECS_DEPLOY_QUEUE")
    verify_timeout_seconds: int = Field(default=600, ge=0, alias="ECS_DEPLOY_VERIFY_TIMEOUT")
    verify_database_tcp: bool = Field(default=False, alias="ECS_DEPLOY_VERIFY_DB_TCP")
    verify_http: bool = Field(default=True, alias="ECS_DEPLOY_VERIFY_HTTP")
    kms_key_id: str | None = Field(default=None, alias="ECS_DEPLOY_STATE_KMS_KEY")
    audit_retention_days: int = Field(default=400, ge=1, alias="ECS_DEPLOY_AUDIT_RETENTION_DAYS")
    drift_interval_seconds: int = Field(default=21600, ge=0, alias="ECS_DEPLOY_DRIFT_INTERVAL")  # 0: off
    artifact_key: SecretStr | None = Field(default=None, alias="ECS_DEPLOY_ARTIFACT_KEY")
    heartbeat_interval_seconds: float = Field(default=5.0, gt=0, alias="ECS_DEPLOY_HEARTBEAT_INTERVAL")
    dead_after_seconds: float = Field(default=45.0, gt=0, alias="ECS_DEPLOY_DEAD_AFTER")
    sweep_interval_seconds: float = Field(default=15.0, gt=0, alias="ECS_DEPLOY_SWEEP_INTERVAL")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # committed environment configuration (workers/config_repo.py) and its pull requests (workers/github_pr.py)
    config_branch_prefix: str = Field(default="ecs-deploy/", alias="ECS_DEPLOY_CONFIG_BRANCH_PREFIX")
    config_push_url: SecretStr | None = Field(default=None, alias="ECS_DEPLOY_CONFIG_PUSH_URL")
    git_author: str = Field(
        default="ecs-deploy-bot <ecs-deploy-bot@users.noreply.local>", alias="ECS_DEPLOY_GIT_AUTHOR"
    )
    github_token: SecretStr | None = Field(default=None, alias="ECS_DEPLOY_GITHUB_TOKEN")
    github_api_url: str = Field(default="https://api.github.com", alias="ECS_DEPLOY_GITHUB_API_URL")
    github_repository: str = Field(default="", alias="ECS_DEPLOY_GITHUB_REPOSITORY")

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("artifact_key")
    @classmethod
    def _artifact_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_keys(value.get_secret_value())
        return value

    @field_validator("git_author")
    @classmethod
    def _git_author(cls, value: str) -> str:
        from email.utils import parseaddr

        name, address = parseaddr(value)
        if not name or "@" not in address:
            raise ValueError('must be "Name <email>", e.g. "ecs-deploy-bot <ecs-deploy-bot@example.com>"')
        return value

    @field_validator("github_repository")
    @classmethod
    def _github_repository(cls, value: str) -> str:
        value = value.strip()
        owner, slash, name = value.partition("/")
        if value and (not slash or not owner or not name or "/" in name):
            raise ValueError("must be owner/name")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _redis_sentinel(self) -> Settings:
        from core.redis_settings import check_redis_settings  # it imports this module

        check_redis_settings(self)
        return self

    @model_validator(mode="after")
    def _heartbeat_fits(self) -> Settings:
        if self.dead_after_seconds <= 2 * self.heartbeat_interval_seconds:
            raise ValueError(
                "ECS_DEPLOY_DEAD_AFTER must be more than twice ECS_DEPLOY_HEARTBEAT_INTERVAL, or live jobs"
                " would be reported as interrupted"
            )
        return self

    @property
    def approver_ids(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.approvers.split(",") if part.strip())

    def require_slack_http(self) -> None:
        """The web process needs a bot token and a signing secret."""
        missing = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            )
            if value is None or not value.get_secret_value()
        ]
        if missing:
            raise ConfigurationError(
                f"Missing setting {', '.join(missing)}: the Slack app cannot start without it."
            )

    @property
    def artifact_keys(self) -> list[str]:
        """The artifact keys, newest (encrypting) first; empty when ECS_DEPLOY_ARTIFACT_KEY is unset."""
        return parse_keys(self.artifact_key.get_secret_value()) if self.artifact_key else []

    def require_artifact_key(self) -> None:
        """web and worker (outside `dev`, which makes one) need the key that encrypts stored artifacts."""
        if not self.artifact_keys:
            raise ConfigurationError(
                "Missing setting ECS_DEPLOY_ARTIFACT_KEY: plan files and tfvars are stored encrypted under it."
                ' Generate one with `python -c "from cryptography.fernet import Fernet;'
                ' print(Fernet.generate_key().decode())"` and give the same value to every web and worker.'
            )

    def require_slack_socket(self) -> None:
        if self.slack_bot_token is None or not self.slack_bot_token.get_secret_value():
            raise ConfigurationError(
                "Missing setting SLACK_BOT_TOKEN: the Slack app cannot start without it."
            )
        if self.slack_app_token is None or not self.slack_app_token.get_secret_value().startswith("xapp-"):
            raise ConfigurationError("SLACK_APP_TOKEN must be an app-level token (xapp-…) for Socket Mode.")


def load_settings() -> Settings:
    """Read the settings; a bad value becomes a ConfigurationError naming the variable."""
    return load_checked(Settings)


def load_checked(model: type[SettingsT]) -> SettingsT:
    """`model()` read from the environment; a bad value becomes a ConfigurationError naming the
    variable (pydantic-settings reports it by its alias). A check of the settings together (no
    field) is said as is."""
    try:
        return model()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:
                problems.append(message)
                continue
            variable = str(error["loc"][0])
            field = model.model_fields.get(variable)
            name = field.alias if field and field.alias else variable
            problems.append(f"{name}: {message}")
        raise ConfigurationError("Invalid setting " + "; ".join(problems)) from None


@cache
def settings() -> Settings:
    return load_settings()
