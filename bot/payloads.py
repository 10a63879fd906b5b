"""Slack payloads in, as pydantic models: parsed once at the edge, with only the fields we use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SlashCommand(_Loose):
    command: str
    text: str = ""
    user_id: str
    channel_id: str
    team_id: str | None = None
    trigger_id: str | None = None
    response_url: str | None = None


class User(_Loose):
    id: str


class Team(_Loose):
    id: str | None = None


class ViewState(_Loose):
    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class SubmittedView(_Loose):
    id: str
    type: str
    callback_id: str
    hash: str | None = None
    private_metadata: str = ""
    state: ViewState = Field(default_factory=ViewState)


class ViewSubmission(_Loose):
    user: User
    team: Team | None = None
    view: SubmittedView


class ButtonAction(_Loose):
    action_id: str
    value: str = ""
    action_ts: str | None = None


class Container(_Loose):
    message_ts: str | None = None
    channel_id: str | None = None


class Channel(_Loose):
    id: str


class BlockActions(_Loose):
    user: User
    team: Team | None = None
    trigger_id: str | None = None
    channel: Channel | None = None
    container: Container | None = None
    message: dict[str, Any] | None = None
    actions: list[ButtonAction]

    @property
    def action(self) -> ButtonAction:
        return self.actions[0]


def input_value(values: dict[str, dict[str, dict[str, Any]]], block_id: str, action_id: str) -> str | None:
    """The value of an input element, whatever its type (text, select, radio)."""
    element = values.get(block_id, {}).get(action_id)
    if not element:
        return None
    if element.get("selected_option"):
        return str(element["selected_option"].get("value"))
    value = element.get("value")
    return None if value is None else str(value)


class MalformedRequest(ValueError):
    """A signed request whose body is not one of the shapes Slack sends."""


class _Envelope(_Loose):
    type: str
    user: User


class _ViewEnvelope(_Envelope):
    view: SubmittedView


class _ActionsEnvelope(_Envelope):
    actions: list[ButtonAction]


ENVELOPES: dict[str, type[_Envelope]] = {
    "view_submission": _ViewEnvelope,
    "view_closed": _Envelope,
    "block_actions": _ActionsEnvelope,
}


def check_body(body: str, content_type: str) -> None:
    """Raise MalformedRequest unless the body has the fields our listeners rely on."""
    import json
    from urllib.parse import parse_qs

    from pydantic import ValidationError

    try:
        if content_type.startswith("application/json"):
            data = json.loads(body)
            if not isinstance(data, dict) or "type" not in data:
                raise MalformedRequest("a JSON body must be an object with a type")
            return
        form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if "payload" in form:
            payload = json.loads(form["payload"])
            if not isinstance(payload, dict):
                raise MalformedRequest("payload must be a JSON object")
            envelope = ENVELOPES.get(str(payload.get("type")))
            if envelope is None:
                raise MalformedRequest(f"unsupported payload type {str(payload.get('type'))[:40]!r}")
            envelope.model_validate(payload)
        elif "command" in form:
            SlashCommand.model_validate(form)
        else:
            raise MalformedRequest("neither a slash command nor an interaction payload")
    except (ValueError, ValidationError) as exc:
        if isinstance(exc, MalformedRequest):
            raise
        raise MalformedRequest(type(exc).__name__) from None
