"""The `/ecs-deploy` request modal: everything the runbook asks before any work starts."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.ids import INPUT_ACTION, BlockId, Callback
from bot.views.blocks import HINT_LIMIT, LABEL_LIMIT, OPTIONS_LIMIT, clip
from core import validation
from core.models import AccountSituation
from core.sizes import SIZE_PROFILES, SetupSize

DEFAULT_REGION = "us-east-1"
DEFAULT_ENVIRONMENT = "dev"
MAX_TEXT = 3000  # longer values are refused by Slack itself; shorter limits are checked on submit


class ModalContext(BaseModel):
    """What the modal carries in `private_metadata`: where the command was typed."""

    channel_id: str
    team_id: str | None = None


SITUATION_OPTIONS = {
    AccountSituation.EXISTING: ("Existing account", "Already has resources: scan it for conflicts first"),
    AccountSituation.NEW: ("Brand-new account", "Nothing deployed yet: verify access, use defaults"),
}


def _option(value: str, text: str, description: str | None = None) -> Option:
    return Option(value=value, text=PlainTextObject(text=text), description=description)


def size_option_description(size: SetupSize) -> str:
    profile = SIZE_PROFILES[size]
    return f"{profile.monthly_cost} · {profile.services_hint}"


def size_input(initial: SetupSize) -> InputBlock:
    """The setup size as radio buttons (each size's title, cost and services), `initial` chosen."""
    options = [_option(s.value, SIZE_PROFILES[s].title, size_option_description(s)) for s in SetupSize]
    return InputBlock(
        block_id=BlockId.SIZE.value,
        label=PlainTextObject(text="Setup size"),
        element=RadioButtonsElement(
            action_id=INPUT_ACTION,
            options=options,
            initial_option=next(o for o in options if o.value == initial.value),
        ),
    )


def size_matrix_markdown() -> str:
    lines = ["*Setup sizes*"]
    for profile in SIZE_PROFILES.values():
        lines.append(
            f"• *{profile.title}* — {profile.monthly_cost}, {profile.services_hint}: {', '.join(profile.includes)}"
        )
    lines.append("_Not sure? Start with medium._")
    return "\n".join(lines)


def region_options() -> list[Option]:
    regions = sorted(validation.known_regions(), key=lambda r: (not r.startswith(("us-", "eu-")), r))
    return [_option(region, region) for region in regions[:OPTIONS_LIMIT]]


def text_input(
    block_id: str,
    label: str,
    *,
    initial: str | None = None,
    placeholder: str | None = None,
    hint: str | None = None,
    optional: bool = False,
    multiline: bool = False,
    max_length: int = 64,
) -> InputBlock:
    """A plain-text input whose value is read back under the shared action id."""
    return InputBlock(
        block_id=str(block_id),
        label=PlainTextObject(text=clip(label, LABEL_LIMIT)),
        optional=optional,
        hint=PlainTextObject(text=clip(hint, HINT_LIMIT)) if hint else None,
        element=PlainTextInputElement(
            action_id=INPUT_ACTION,
            initial_value=initial,
            placeholder=PlainTextObject(text=placeholder) if placeholder else None,
            multiline=multiline,
            max_length=max_length,
        ),
    )


def modal(
    callback: Callback,
    title: str,
    submit: str,
    context: BaseModel,
    blocks: Sequence[Block],
    *,
    close: str = "Cancel",
) -> View:
    """A modal whose `private_metadata` is `context` (where it was opened), read back on submit."""
    return View(
        type="modal",
        callback_id=callback.value,
        title=PlainTextObject(text=title),
        submit=PlainTextObject(text=submit),
        close=PlainTextObject(text=close),
        private_metadata=context.model_dump_json(),
        blocks=list(blocks),
    )


def request_modal(context: ModalContext, profiles: list[str]) -> View:
    profile_options = [_option(p, p) for p in profiles[:OPTIONS_LIMIT]]
    regions = region_options()
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text="Request an ECS environment. The bot verifies access, checks the account, plans with"
                " Terraform and waits for a lead's approval before anything changes."
            )
        ),
        InputBlock(
            block_id=BlockId.PROFILE.value,
            label=PlainTextObject(text="AWS profile"),
            element=StaticSelectElement(
                action_id=INPUT_ACTION,
                placeholder=PlainTextObject(text="Choose a profile"),
                options=profile_options,
                initial_option=profile_options[0] if len(profile_options) == 1 else None,
            ),
        ),
        InputBlock(
            block_id=BlockId.ACCOUNT_SITUATION.value,
            label=PlainTextObject(text="Account"),
            element=RadioButtonsElement(
                action_id=INPUT_ACTION,
                options=[_option(s.value, *SITUATION_OPTIONS[s]) for s in SITUATION_OPTIONS],
                initial_option=_option(
                    AccountSituation.EXISTING.value, *SITUATION_OPTIONS[AccountSituation.EXISTING]
                ),
            ),
        ),
        DividerBlock(),
        SectionBlock(text=MarkdownTextObject(text=size_matrix_markdown())),
        size_input(SetupSize.MEDIUM),
        DividerBlock(),
        text_input(
            BlockId.ACCOUNT_ID, "AWS account id", placeholder="123456789012", hint="12 digits", max_length=12
        ),
        InputBlock(
            block_id=BlockId.REGION.value,
            label=PlainTextObject(text="Region"),
            element=StaticSelectElement(
                action_id=INPUT_ACTION,
                options=regions,
                initial_option=next((o for o in regions if o.value == DEFAULT_REGION), None),
            ),
        ),
        text_input(
            BlockId.APPLICATION,
            "Application",
            placeholder="web",
            hint="Lowercase letters, digits and '-'; at most 13 characters with a 4-letter environment.",
            max_length=21,
        ),
        text_input(
            BlockId.ENVIRONMENT,
            "Environment",
            initial=DEFAULT_ENVIRONMENT,
            hint="e.g. dev, stag, prod",
            max_length=validation.MAX_ENVIRONMENT,
        ),
        text_input(
            BlockId.TAGS,
            "Additional tags",
            optional=True,
            multiline=True,
            placeholder="team=platform\ncost-center=1234",
            hint="key=value, one a line",
            max_length=MAX_TEXT,
        ),
        DividerBlock(),
        ContextBlock(elements=[MarkdownTextObject(text="*Advanced* — defaults follow the runbook.")]),
        text_input(
            BlockId.VPC_CIDR,
            "VPC CIDR",
            initial=validation.DEFAULT_VPC_CIDR,
            hint="Private IPv4, /16 to /24. The account scan proposes a free one if this overlaps.",
            max_length=18,
        ),
        text_input(
            BlockId.STATE_BUCKET,
            "Terraform state bucket",
            optional=True,
            placeholder="tfstate-<account id>-<region>",
            hint="Created if it does not exist.",
            max_length=63,
        ),
        text_input(
            BlockId.LOCK_TABLE,
            "State lock table (DynamoDB)",
            initial=validation.DEFAULT_LOCK_TABLE,
            max_length=255,
        ),
    ]
    return modal(Callback.REQUEST_MODAL, "ECS deployment", "Request", context, blocks)


@lru_cache(maxsize=256)
def _modal_template(profiles: tuple[str, ...]) -> dict[str, Any]:
    return request_modal(ModalContext(channel_id="-"), list(profiles)).to_dict()


def request_modal_dict(context: ModalContext, profiles: list[str]) -> dict[str, Any]:
    """The modal as Slack JSON; built and validated once per profile list, since it runs after every ack."""
    view = copy.deepcopy(_modal_template(tuple(profiles)))
    view["private_metadata"] = context.model_dump_json()
    return view
