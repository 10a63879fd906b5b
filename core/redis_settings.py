"""The Redis settings as rules: the sentinel list, and whether the settings describe one way to reach
Redis (checked when the settings load). The connection itself is made in storage/connection.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # core.settings imports this module when it validates
    from core.settings import Settings


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
    if any(tls_files) and not uses_tls(settings):
        raise RedisSettingsError("REDIS_TLS_* files are given but REDIS_URL is not rediss:// (TLS)")
    if bool(settings.redis_tls_cert_file) != bool(settings.redis_tls_key_file):
        raise RedisSettingsError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together")
    for path in tls_files:
        if path is not None and not path.is_file():
            raise RedisSettingsError(f"{path}: no such file (REDIS_TLS_*)")


def redis_configured(settings: Settings) -> bool:
    return bool(settings.redis_url or settings.redis_sentinels)


def uses_tls(settings: Settings) -> bool:
    return bool(settings.redis_url and settings.redis_url.startswith("rediss://"))
