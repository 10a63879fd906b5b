"""`/ecs-deploy [new | help | status [id] | list | cancel <id> [--force] | plan <id> | unlock <id> | envs | destroy <app>/<env>
| change <app>/<env> | upgrade <app>/<env> | drift <app>/<env>]`.

Answers are private: the command's ack carries the answer (it works in any channel, even one the
bot is not in), except `new`'s, which opens a modal (the request form, or the notice that the store
is down); Slack-side follow-ups (Terraform's DynamoDB lock is looked up, a form is opened) run
after ack(), while a cancel's or re-plan's thread notes are queued with the move itself. The rules live in bot/control.py, the wording in bot/views/status.py.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import control, environments
from bot.control import ControlRefused
from bot.listeners.destroys import destroy_sub
from bot.listeners.drift import drift_sub
from bot.listeners.environments import change_sub, upgrade_sub
from bot.listeners.modals import open_modal
from bot.payloads import BlockActions, SlashCommand
from bot.services import Services
from bot.views import environments as environment_views
from bot.views import status as views
from bot.views.change_modal import notice_modal
from bot.views.messages import Message
from bot.views.refusals import unknown_deployment
from bot.views.request_modal import ModalContext, request_modal_dict
from core.logs import get_logger
from core.visibility import may_see

log = get_logger(__name__)

STORE_DOWN = views.STORE_DOWN
HELP = views.HELP

Reply = str | Message
FollowUp = Callable[[], None]
Subcommand = Callable[[Services, SlashCommand, list[str], set[str]], tuple[Reply, FollowUp | None]]


class Usage(ControlRefused):
    """The subcommand was typed wrong: answer with its usage line."""


def register(app: App, services: Services) -> None:
    @app.command("/ecs-deploy")
    def handle(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        slash = SlashCommand.model_validate(command)
        words = slash.text.split()
        sub = words[0].lower() if words else "new"
        if sub == "new":
            open_request_modal(ack, slash, client, services)
            return
        handler = SUBCOMMANDS.get(sub)
        if handler is None:
            ack(HELP if sub == "help" else views.unknown_subcommand(sub))
            return
        args = [w for w in words[1:] if not w.startswith("--")]
        flags = {w.lower() for w in words[1:] if w.startswith("--")}
        follow_up: FollowUp | None = None
        try:
            reply, follow_up = handler(services, slash, args, flags)
        except ControlRefused as refusal:
            reply = str(refusal)
        except redis.RedisError:
            reply = STORE_DOWN
        if isinstance(reply, Message):
            ack(text=reply.text, blocks=reply.blocks)
        else:
            ack(reply)
        if follow_up is not None:
            try:
                follow_up()
            except redis.RedisError as exc:
                log.warning("command_follow_up_failed", sub=sub, error=type(exc).__name__)

    @app.action(views.UNLOCK_CONFIRM)
    def unlock_confirmed(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        unlock_clicked(services, BlockActions.model_validate(body))


# The form is opened after ack() on threads of its own: Bolt runs listeners on 5 threads, and a
# listener that kept its thread for the Slack calls below made the next commands' acks wait for one
# (bench/ack_latency.py). Two threads, a few ms of work per form: far inside a trigger id's 3 s.
# The store is checked there too, not before ack(): Bolt polls for the ack every 10 ms, and a Redis
# round trip before it made most acks wait one poll more. A store that is down gets its notice in
# the modal the user expected, which, like an ack, works in a channel the bot is not in.
_FORM_OPENER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="request-form")


def open_request_modal(ack: Ack, slash: SlashCommand, client: WebClient, services: Services) -> None:
    ack()
    _FORM_OPENER.submit(_send_request_modal, slash, client, services)


def _send_request_modal(slash: SlashCommand, client: WebClient, services: Services) -> None:
    try:
        _open_request_form(slash, client, services)
    except Exception:  # no listener error handler runs here: say it, or a lost form leaves no trace
        log.exception("request_form_failed", user=slash.user_id)


def _open_request_form(slash: SlashCommand, client: WebClient, services: Services) -> None:
    if not services.redis_ok():
        open_modal(client, slash.trigger_id, notice_modal(STORE_DOWN), slash.user_id)
        return
    profiles = services.profiles_for(slash.user_id)
    if not profiles:
        services.notifier.ephemeral(
            slash.channel_id,
            slash.user_id,
            views.NO_PROFILE,
        )
        return
    view = request_modal_dict(ModalContext(channel_id=slash.channel_id, team_id=slash.team_id), profiles)
    open_modal(client, slash.trigger_id, view, slash.user_id)


# -- subcommands: (services, command, ids, --flags) -> (private answer, what to do after ack) -------


def _one_id(args: list[str], flags: set[str], usage: str, allowed: frozenset[str] = frozenset()) -> str:
    unknown = flags - allowed
    if len(args) != 1 or unknown:
        raise Usage(views.usage_text(usage, sorted(unknown)))
    return args[0]


def status_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    """A deployment for its requester and its profile's approvers (core.visibility); anyone else gets
    the answer an unknown id gets, word for word."""
    if args:
        deployment_id = _one_id(args, flags, "/ecs-deploy status [id]")
        user = services.identity(slash.user_id)
        found = services.store.find(deployment_id.strip()[:64])
        if found is None or not may_see(services.policy, user, found):
            return unknown_deployment(deployment_id.strip()[:64]), None
        deployment = found
    else:
        latest = control.latest_of(services, slash.user_id)
        if latest is None:
            return views.NO_DEPLOYMENTS_YET, None
        deployment = latest
    return views.status_text(deployment), None


def list_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    """The caller's own; for a lead also those of the profiles they approve (core.visibility)."""
    user = services.identity(slash.user_id)
    recent, lead = control.visible(services, user, limit=control.PENDING_SCAN)
    shown = [d for d in recent if may_see(services.policy, user, d)][: views.MAX_LIST + 1]
    return views.list_text(shown, everyone=lead), None


def _visible(services: Services, slash: SlashCommand, deployment_id: str) -> str:
    """An id typed by someone who may not see that deployment gets the unknown-id answer, as for
    `status`: a refusal would name its requester and profile."""
    found = services.store.find(deployment_id.strip()[:64])
    if found is not None and not may_see(services.policy, services.identity(slash.user_id), found):
        raise ControlRefused(unknown_deployment(deployment_id.strip()[:64]))
    return deployment_id


def cancel_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    deployment_id = _one_id(args, flags, "/ecs-deploy cancel <id> [--force]", frozenset({"--force"}))
    _visible(services, slash, deployment_id)
    result = control.cancel(
        services,
        services.identity(slash.user_id),
        deployment_id,
        force="--force" in flags,
        say=views.cancelled_thread_text,
    )
    return views.cancelled_reply(result), None  # the thread is told in the cancel's transaction


def plan_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    deployment_id = _visible(services, slash, _one_id(args, flags, "/ecs-deploy plan <id>"))
    result = control.replan(
        services, services.identity(slash.user_id), deployment_id, views.replan_thread_text(slash.user_id)
    )
    return views.replan_reply(result.deployment), None  # the thread is told with the plan job


def unlock_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    deployment_id = _visible(services, slash, _one_id(args, flags, "/ecs-deploy unlock <id>"))
    view = control.lock_view(services, services.identity(slash.user_id), deployment_id)
    if view.holder is not None:
        return views.unlock_prompt(view, view.holder), None  # released when the lead confirms

    def check_terraform() -> None:
        lock = control.terraform_lock(services, view.deployment)
        services.notifier.ephemeral(slash.channel_id, slash.user_id, views.terraform_lock_text(lock))

    return views.no_lock_text(view), check_terraform


def envs_sub(
    services: Services, slash: SlashCommand, args: list[str], flags: set[str]
) -> tuple[Reply, FollowUp | None]:
    """The environments the caller may see (the rule `list` follows), live ones first."""
    if args or flags:
        raise Usage(views.usage_text("/ecs-deploy envs", sorted(flags)))
    return environment_views.envs_answer(environments.visible_environments(services, slash.user_id)), None


SUBCOMMANDS: dict[str, Subcommand] = {
    "status": status_sub,
    "list": list_sub,
    "cancel": cancel_sub,
    "plan": plan_sub,
    "replan": plan_sub,
    "unlock": unlock_sub,
    "envs": envs_sub,
    "destroy": destroy_sub,
    "change": change_sub,
    "upgrade": upgrade_sub,
    "drift": drift_sub,
}


# -- the unlock button -----------------------------------------------------------------------------


def unlock_clicked(services: Services, click: BlockActions) -> None:
    """After ack(): release exactly the lock the lead was shown, tell the thread, then look at
    Terraform's own DynamoDB lock and explain force-unlock if it is still held."""
    channel = click.channel.id if click.channel else (click.container.channel_id if click.container else None)
    user_id = click.user.id
    deployment_id, _, token = click.action.value.partition(":")

    def tell(text: str) -> None:
        if channel:
            services.notifier.ephemeral(channel, user_id, text)
        else:
            log.warning("unlock_reply_nowhere", user=user_id, deployment_id=deployment_id)

    try:
        released = control.release(services, services.identity(user_id), deployment_id, token)
    except ControlRefused as refusal:
        tell(str(refusal))
        return
    except redis.RedisError:
        tell(views.STORE_DOWN_NOTHING_RELEASED)
        return
    control.announce_release(services, released, views.released_thread_text(released, user_id))
    lock = control.terraform_lock(services, released.deployment)
    tell(views.released_reply(released) + "\n" + views.terraform_lock_text(lock))
