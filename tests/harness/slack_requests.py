"""Correctly signed requests to the bot's HTTP endpoint, shaped like Slack's own.

Bodies start from the real payloads in tests/fixtures/slack (copied from Slack's SDK test suites)
and change only the fields a scenario needs.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import requests

from tests.harness.fixtures import load_fixture
from tests.harness.records import REQUEST_FIELDS

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def fixture(name: str) -> Any:
    return load_fixture("slack", name)


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class SlackClientSim:
    """Plays Slack's side of the conversation with the bot's /slack/events endpoint."""

    def __init__(self, url: str, secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self.secret = secret
        self.http = requests.Session()

    def post(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signed: bool = True,
    ) -> requests.Response:
        all_headers = {"Content-Type": content_type}
        if signed:
            all_headers.update(sign(body, self.secret, timestamp))
        all_headers.update(headers or {})
        return self.http.post(self.url, data=body.encode(), headers=all_headers, timeout=10)

    def slash_command(
        self,
        text: str = "",
        *,
        user: str = "U0REQUEST1",
        channel: str = "C_DEPLOYS",
        trigger_id: str = "111.222.valid",
        **kw: Any,
    ) -> requests.Response:
        form = dict(_form(fixture("bolt_slash_command_body.form.txt")))
        form.update(
            command="/ecs-deploy",
            text=text,
            user_id=user,
            channel_id=channel,
            trigger_id=trigger_id,
            team_id="T111",
        )
        return self.post(urlencode(form), **kw)

    def view_submission(
        self,
        values: dict[str, dict[str, Any]],
        *,
        user: str = "U0REQUEST1",
        private_metadata: str = "",
        view_id: str = "V0001",
        callback_id: str = "ecs_deploy_request",
        **kw: Any,
    ) -> requests.Response:
        payload = copy.deepcopy(fixture("bolt_view_submission_state_values.json"))
        payload["user"]["id"] = user
        payload["team"]["id"] = "T111"
        view = payload["view"]
        view.update(
            id=view_id,
            callback_id=callback_id,
            private_metadata=private_metadata,
            state={"values": values},
            blocks=[],
        )
        return self.post(urlencode({"payload": json.dumps(payload)}), **kw)

    def block_action(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        channel: str = "C_DEPLOYS",
        message_ts: str = "111.222",
        message: dict[str, Any] | None = None,
        **kw: Any,
    ) -> requests.Response:
        payload = copy.deepcopy(fixture("bolt_block_actions_button.json"))
        payload["user"]["id"] = user
        payload["team"]["id"] = "T111"
        payload["channel"]["id"] = channel
        payload["container"].update(channel_id=channel, message_ts=message_ts, is_ephemeral=False)
        payload["actions"][0].update(action_id=action_id, value=value, action_ts=f"{time.time():.6f}")
        if message is not None:  # Slack sends the clicked message along with a click on it
            payload["message"] = {"type": "message", **message}
        return self.post(urlencode({"payload": json.dumps(payload)}), **kw)


def _form(text: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(text.strip(), keep_blank_values=True)


def text_value(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def select_value(value: str, kind: str = "static_select") -> dict[str, Any]:
    return {
        "value": {
            "type": kind,
            "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}},
        }
    }


def request_values(**overrides: str) -> dict[str, dict[str, Any]]:
    """State values of a filled-in request modal (block id -> action id -> element state)."""
    fields = {
        **REQUEST_FIELDS,
        "additional_tags": "team=platform",
        "vpc_cidr_block": "10.0.0.0/16",
        "state_bucket": "",
        "lock_table": "terraform-state-lock",
        **overrides,
    }
    selects = {
        "profile": "static_select",
        "region": "static_select",
        "account_situation": "radio_buttons",
        "size": "radio_buttons",
    }
    return {
        block: (select_value(value, selects[block]) if block in selects else text_value(value))
        for block, value in fields.items()
    }
