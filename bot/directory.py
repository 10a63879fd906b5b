"""Slack user-group membership, looked up live (usergroups.users.list) and cached briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from core.logs import get_logger
from core.policy import SlackIdentity

log = get_logger(__name__)


STALE_LIMIT_SECONDS = 600.0


class GroupDirectory:
    def __init__(self, client: WebClient, groups: Iterable[str], ttl_seconds: float = 60.0) -> None:
        self.client = client
        self.groups = sorted(set(groups))
        self.ttl = ttl_seconds
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def identity(self, user_id: str) -> SlackIdentity:
        return SlackIdentity(
            user_id=user_id, group_ids=frozenset(g for g in self.groups if user_id in self._of(g))
        )

    def _of(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            cached = self._members.get(group)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        try:
            members = frozenset(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except (SlackApiError, OSError) as exc:
            # A short Slack hiccup may use a recent answer; after that, fail closed: a group we
            # cannot read grants nothing (someone removed from it must not keep approving).
            log.warning("usergroup_lookup_failed", group=group, error=type(exc).__name__)
            recent = cached is not None and now - cached[0] < STALE_LIMIT_SECONDS
            return cached[1] if cached is not None and recent else frozenset()
        with self._lock:
            self._members[group] = (now, members)
        return members
