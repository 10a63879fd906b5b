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
The rules for the settings themselves are in core/redis_settings.py.
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

from core.redis_settings import (
    RedisSettingsError,
    parse_sentinels,
    uses_tls,
)

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
    tls = uses_tls(settings)
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
