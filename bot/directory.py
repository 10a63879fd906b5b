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
        except SlackApiError as exc:
            # Fail closed: a group we cannot read grants nothing.
            log.warning("usergroup_lookup_failed", group=group, error=exc.response.get("error"))
            members = cached[1] if cached else frozenset()
            return members
        with self._lock:
            self._members[group] = (now, members)
        return members
