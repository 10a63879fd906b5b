"""The one place a Redis connection is made from the settings: web, workers, RQ, locks and the CLI.

Three shapes, from the settings:
- `REDIS_URL` alone: `redis://…` (or `unix://…`) as given.
- `REDIS_URL=rediss://…`: TLS; the server is checked against `REDIS_TLS_CA_FILE` (else the system's
  CAs) and, when the server asks for one, `REDIS_TLS_CERT_FILE` / `REDIS_TLS_KEY_FILE` are the client
  certificate.
- `REDIS_SENTINELS=host:port,…` with `REDIS_SENTINEL_MASTER`: the master is asked of the sentinels
  (redis-py's `Sentinel.master_for`) and asked again whenever a connection to it breaks, so after a
  failover the next command reaches the promoted replica. `REDIS_URL`, if also given, then only gives
  the scheme (`rediss://`: TLS, also to the sentinels), the credentials and the database number.

Every connection retries a command that hit a broken connection or a timeout, with exponential
backoff (redis-py's `Retry`): long enough for a worker (WORKER: 14 retries, about 30 s of waiting; a Sentinel failover
takes `down-after-milliseconds` + an election), short for the web process, which must answer Slack
within 3 s. A WATCH transaction is not retried blindly: redis-py turns a broken connection under
WATCH into a WatchError, and the store's transactions start over on a WatchError.

This module lives in core/ only because core/store.py already talks to Redis; it moves with the
other Redis adapters when they leave core/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

if TYPE_CHECKING:
    from core.settings import Settings

Role = Literal["web", "worker", "rq", "cli"]


@dataclass(frozen=True)
class Tuning:
    """Timeouts (seconds; None: none) and the retry budget of one kind of connection."""

    connect_timeout: float | None
    socket_timeout: float | None
    retries: int
    backoff_cap: float
    health_check_interval: int = 0


WEB = Tuning(connect_timeout=1, socket_timeout=2, retries=3, backoff_cap=0.5, health_check_interval=30)
WORKER = Tuning(connect_timeout=10, socket_timeout=30, retries=14, backoff_cap=4)
# RQ's own connection: no socket timeout (RQ sets one that fits its blocking dequeue)
RQ = Tuning(connect_timeout=10, socket_timeout=None, retries=14, backoff_cap=4)
CLI = Tuning(connect_timeout=2, socket_timeout=10, retries=2, backoff_cap=1)
TUNINGS: dict[Role, Tuning] = {"web": WEB, "worker": WORKER, "rq": RQ, "cli": CLI}


class RedisSettingsError(ValueError):
    """The Redis settings do not describe one way to reach Redis (a pydantic validator raises it)."""


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """`host:port,host:port` → [(host, port)]; `[::1]:26379` for IPv6."""
    nodes: list[tuple[str, int]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisSettingsError(f"REDIS_SENTINELS: {part!r} is not host:port")
        nodes.append((host, int(port)))
    return nodes


def check_redis_settings(settings: Settings) -> None:
    """Raises RedisSettingsError when the Redis settings contradict each other (at start)."""
    sentinels = parse_sentinels(settings.redis_sentinels)
    if sentinels and not settings.redis_sentinel_master:
        raise RedisSettingsError("REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS (the master's name)")
    if settings.redis_sentinel_master and not sentinels:
        raise RedisSettingsError("REDIS_SENTINELS: required with REDIS_SENTINEL_MASTER")
    tls_files = [settings.redis_tls_ca_file, settings.redis_tls_cert_file, settings.redis_tls_key_file]
    if any(tls_files) and not _tls(settings):
        raise RedisSettingsError("REDIS_TLS_* files are given but REDIS_URL is not rediss:// (TLS)")
    if bool(settings.redis_tls_cert_file) != bool(settings.redis_tls_key_file):
        raise RedisSettingsError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together")
    for path in tls_files:
        if path is not None and not path.is_file():
            raise RedisSettingsError(f"{path}: no such file (REDIS_TLS_*)")


def redis_configured(settings: Settings) -> bool:
    return bool(settings.redis_url or settings.redis_sentinels)


def _tls(settings: Settings) -> bool:
    return bool(settings.redis_url and settings.redis_url.startswith("rediss://"))


def _tls_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": "required"}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if settings.redis_tls_cert_file and settings.redis_tls_key_file:
        options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        options["ssl_keyfile"] = str(settings.redis_tls_key_file)
    return options


def _tuned(tuning: Tuning) -> dict[str, Any]:
    return {
        "socket_connect_timeout": tuning.connect_timeout,
        "socket_timeout": tuning.socket_timeout,
        "health_check_interval": tuning.health_check_interval,
        "retry": Retry(EqualJitterBackoff(cap=tuning.backoff_cap, base=0.1), tuning.retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def redis_connection(settings: Settings, role: Role = "cli") -> redis.Redis:
    """A client for the bot's Redis as the settings describe it (see the module docstring). Raises
    RedisSettingsError when neither REDIS_URL nor REDIS_SENTINELS is set."""
    tuning = TUNINGS[role]
    options = _tuned(tuning)
    tls = _tls(settings)
    if tls:
        options.update(_tls_options(settings))
    sentinels = parse_sentinels(settings.redis_sentinels)
    if sentinels:
        return _sentinel_master(settings, sentinels, options, tls, tuning)
    if not settings.redis_url:
        raise RedisSettingsError("Missing setting REDIS_URL (or REDIS_SENTINELS)")
    return redis.Redis.from_url(settings.redis_url, **options)


def _sentinel_master(
    settings: Settings, nodes: list[tuple[str, int]], options: dict[str, Any], tls: bool, tuning: Tuning
) -> redis.Redis:
    master_options = dict(options)
    if settings.redis_url:
        url = urlsplit(settings.redis_url)
        if url.username:
            master_options["username"] = unquote(url.username)
        if url.password:
            master_options["password"] = unquote(url.password)
        db = url.path.strip("/")
        master_options["db"] = int(db) if db.isdigit() else 0
    if tls:
        master_options["ssl"] = True
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": tuning.connect_timeout or 2,
        "socket_timeout": tuning.socket_timeout or 5,
    }
    if tls:
        sentinel_options.update(ssl=True, **_tls_options(settings))
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_options)
    client: redis.Redis = sentinel.master_for(settings.redis_sentinel_master, **master_options)
    return client
