"""Who a Slack user is, looked up live and cached briefly: their user groups (usergroups.users.list),
what Slack says about them (users.info: guest, other organisation, bot, deactivated) and which
workspace the bot is installed in (auth.test).

Every lookup fails closed: a group that cannot be read grants nothing (after a short grace), and a
user whose facts cannot be read has none (`member=None`), so their approval does not count
(core.approval.member_may_approve).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from core.logs import get_logger
from core.policy.principals import SlackIdentity, SlackMember

log = get_logger(__name__)


STALE_LIMIT_SECONDS = 600.0
MAX_CACHED_USERS = 5000

_T = TypeVar("_T")


class GroupDirectory:
    def __init__(self, client: WebClient, groups: Iterable[str], ttl_seconds: float = 60.0) -> None:
        self.client = client
        self.groups = sorted(set(groups))
        self.ttl = ttl_seconds
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._users: dict[str, tuple[float, SlackMember]] = {}
        self._workspace: str | None = None
        self._lock = threading.Lock()

    def identity(self, user_id: str) -> SlackIdentity:
        return SlackIdentity(
            user_id=user_id,
            group_ids=frozenset(g for g in self.groups if user_id in self._of(g)),
            member=self.member(user_id),
            workspace_team_id=self.workspace_team_id(),
        )

    def workspace_team_id(self) -> str | None:
        """The installed workspace (auth.test's team_id), asked once; None while Slack cannot say."""
        with self._lock:
            if self._workspace is not None:
                return self._workspace
        try:
            team = self.client.auth_test().get("team_id")
        except (SlackApiError, OSError) as exc:
            log.warning("workspace_lookup_failed", error=type(exc).__name__)
            return None
        if not isinstance(team, str) or not team:
            return None
        with self._lock:
            self._workspace = team
        return team

    def member(self, user_id: str) -> SlackMember | None:
        """users.info's facts about the user, cached for the TTL; None when Slack cannot say (no stale
        answer is used: someone just made a guest must not keep approving)."""
        now = time.monotonic()
        cached = self._remembered(self._users, user_id, now, self.ttl)
        if cached is not None:
            return cached
        try:
            user = self.client.users_info(user=user_id).get("user")
        except (SlackApiError, OSError) as exc:
            log.warning("user_lookup_failed", user=user_id, error=type(exc).__name__)
            return None
        if not isinstance(user, dict) or user.get("id") != user_id:
            log.warning("user_lookup_unexpected", user=user_id)
            return None
        team = user.get("team_id")
        facts = SlackMember(
            team_id=team if isinstance(team, str) and team else None,
            is_restricted=bool(user.get("is_restricted")),
            is_ultra_restricted=bool(user.get("is_ultra_restricted")),
            is_bot=bool(user.get("is_bot")),
            deleted=bool(user.get("deleted")),
        )
        with self._lock:
            if len(self._users) >= MAX_CACHED_USERS:
                self._users = {k: v for k, v in self._users.items() if now - v[0] < self.ttl}
            self._users[user_id] = (now, facts)
        return facts

    def _of(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._remembered(self._members, group, now, self.ttl)
        if cached is not None:
            return cached
        try:
            members = frozenset(self.client.usergroups_users_list(usergroup=group).get("users") or [])
        except (SlackApiError, OSError) as exc:
            # A short Slack hiccup may use a recent answer; after that, fail closed: a group we
            # cannot read grants nothing (someone removed from it must not keep approving).
            log.warning("usergroup_lookup_failed", group=group, error=type(exc).__name__)
            return self._remembered(self._members, group, now, STALE_LIMIT_SECONDS) or frozenset()
        with self._lock:
            self._members[group] = (now, members)
        return members

    def _remembered(
        self, cache: dict[str, tuple[float, _T]], key: str, now: float, max_age: float
    ) -> _T | None:
        """What `cache` holds for `key` if it was read less than `max_age` seconds before `now`."""
        with self._lock:
            cached = cache.get(key)
        return cached[1] if cached is not None and now - cached[0] < max_age else None
