"""manifest.yml parses, and every Slack API method the code calls is covered by one of its scopes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# Slack's documented required bot scope per Web API method (None: no scope needed).
METHOD_SCOPES: dict[str, str | tuple[str, ...] | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "views.open": None,
    "views.update": None,
    "views.push": None,
    "views.publish": None,
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
    # the outbox looks a post up before posting it again (public and private channels)
    "conversations.replies": ("channels:history", "groups:history"),
    "conversations.history": ("channels:history", "groups:history"),
    # an MCP request's `channel` argument: the bot and the user must be members (bot/mcp/channels.py)
    "conversations.info": ("channels:read", "groups:read"),
    "conversations.members": ("channels:read", "groups:read"),
}
# slack_sdk helpers that call several API methods.
COMPOSITE = {"files.upload.v2": ["files.getUploadURLExternal", "files.completeUploadExternal"]}
CALL = re.compile(
    r"\.(auth_test|chat_\w+|views_\w+|files_\w+|users_\w+|usergroups_\w+|conversations_\w+|reactions_\w+)\("
    r"|(?:_call|\.call|\.lookup)\(\s*\"(\w+)\""
)


def scopes_of(method: str) -> set[str]:
    scope = METHOD_SCOPES[method]
    return set() if scope is None else {scope} if isinstance(scope, str) else set(scope)


def methods_called(root: Path) -> set[str]:
    found: set[str] = set()
    for path in [*root.glob("bot/**/*.py"), *root.glob("workers/**/*.py")]:
        for match in CALL.finditer(path.read_text()):
            python_name = match.group(1) or match.group(2)
            method = python_name.replace("_", ".", 1) if python_name != "auth_test" else "auth.test"
            if python_name == "usergroups_users_list":
                method = "usergroups.users.list"
            if python_name == "files_upload_v2":
                method = "files.upload.v2"
            found.update(COMPOSITE.get(method, [method]))
    return found


def test_manifest_parses_and_declares_the_command_and_interactivity(repo_root: Path) -> None:
    manifest = yaml.safe_load((repo_root / "manifest.yml").read_text())
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == ["/ecs-deploy"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["slash_commands"][0]["url"].endswith("/slack/events")


def test_every_called_method_is_covered_by_a_manifest_scope(repo_root: Path) -> None:
    scopes = set(yaml.safe_load((repo_root / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"])
    called = methods_called(repo_root)
    assert "chat.postMessage" in called and "views.open" in called
    unknown = called - METHOD_SCOPES.keys()
    assert not unknown, f"add the required scope of {unknown} to METHOD_SCOPES and manifest.yml"
    missing = {m: METHOD_SCOPES[m] for m in called if not scopes_of(m) <= scopes}
    assert not missing, f"manifest.yml lacks scopes for {missing}"


def test_manifest_asks_for_no_scope_the_code_does_not_use(repo_root: Path) -> None:
    scopes = set(yaml.safe_load((repo_root / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"])
    needed = {s for m in methods_called(repo_root) for s in scopes_of(m)} | {"commands", "chat:write.public"}
    assert scopes <= needed, f"unused scopes: {scopes - needed}"
