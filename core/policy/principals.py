"""People as the policy names them: everyone (`"*"`), Slack users (U…/W…) and user groups (S…).

Group membership is the caller's business: it resolves the user groups named by
`access.referenced_usergroups` (Slack usergroups.users.list) and passes them in a `SlackIdentity`,
together with what Slack says about the user (`SlackMember`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import Field

from core.values import Value

EVERYONE = "*"
USER_ID = re.compile(r"[UW][A-Z0-9]+")
USERGROUP_ID = re.compile(r"S[A-Z0-9]+")


class SlackMember(Value):
    """What Slack's users.info says about a user (the facts an approval depends on)."""

    team_id: str | None = None  # the user's own workspace (another one for Slack Connect users)
    is_restricted: bool = False  # multi-channel guest
    is_ultra_restricted: bool = False  # single-channel guest
    is_bot: bool = False
    deleted: bool = False


class SlackIdentity(Value):
    """A Slack user as resolved by the caller: the user groups (S…) they belong to, what Slack says
    about them (`member`, None when not looked up or the lookup failed) and the workspace the bot is
    installed in (`workspace_team_id`, from auth.test; None when unknown)."""

    user_id: str = Field(min_length=1)
    group_ids: frozenset[str] = frozenset()
    member: SlackMember | None = None
    workspace_team_id: str | None = None


class Principals(Value):
    """A set of people: everyone, and/or named users, and/or members of named user groups."""

    everyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> Principals:
        """Split already-validated ids ("*", U…/W…, S…) into the three kinds."""
        ids = list(ids)
        return cls(
            everyone=EVERYONE in ids,
            users=frozenset(i for i in ids if USER_ID.fullmatch(i)),
            groups=frozenset(i for i in ids if USERGROUP_ID.fullmatch(i)),
        )

    @property
    def is_empty(self) -> bool:
        return not (self.everyone or self.users or self.groups)

    def includes(self, user: SlackIdentity) -> bool:
        return self.everyone or user.user_id in self.users or bool(self.groups & user.group_ids)
