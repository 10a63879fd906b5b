"""The request modal's submission: validate, store the record with its first job, open the thread.

A request for an environment that exists already (or is being created: core/duplicates.py) starts
nothing: the form shows why on the application field, and the requester gets an ephemeral message
with a Change it button."""

from __future__ import annotations

from typing import Any

import redis
from pydantic import ValidationError
from slack_bolt import Ack, App

from bot import environments
from bot.forms import parse_request
from bot.ids import BlockId, Callback
from bot.payloads import ViewSubmission
from bot.services import Services
from bot.views import environments as environment_views
from bot.views import form_errors
from bot.views.request_modal import ModalContext
from core.duplicates import Duplicate
from core.logs import get_logger
from core.models import Deployment
from storage.queue import Step, enqueue_step

log = get_logger(__name__)


def register(app: App, services: Services) -> None:
    @app.view(Callback.REQUEST_MODAL.value)
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        submission = ViewSubmission.model_validate(body)
        try:
            context = ModalContext.model_validate_json(submission.view.private_metadata)
        except ValidationError:
            ack(
                response_action="errors",
                errors={BlockId.PROFILE.value: form_errors.REQUEST_FORM_OUT_OF_DATE},
            )
            return
        parsed = parse_request(
            submission.view.state.values,
            services.profiles_for(submission.user.id),
            services.policy.check_environment,
        )
        if isinstance(parsed, dict):
            ack(response_action="errors", errors=parsed)
            return
        submission_key = f"view:{submission.view.id}"
        deployment = Deployment(
            request=parsed,
            requester_id=submission.user.id,
            team_id=submission.team.id if submission.team else context.team_id,
            channel_id=context.channel_id,
        )
        created = False
        try:
            with environments.request_guard(services, parsed) as alone:
                duplicate = environments.existing_for(
                    services, submission.user.id, parsed, submission_key=submission_key, alone=alone
                )
                if duplicate is None:
                    deployment, created = services.store.create(
                        deployment,
                        submission_key=submission_key,
                        also=lambda pipe: enqueue_step(
                            services.redis, services.settings, Step.VERIFY, deployment.id, pipeline=pipe
                        ),
                    )
        except redis.RedisError:
            log.warning("store_unavailable", user=submission.user.id)
            ack(
                response_action="errors",
                errors={BlockId.PROFILE.value: form_errors.REQUEST_STORE_DOWN},
            )
            return
        if duplicate is not None:  # it exists (or is being created): offer to change it instead
            ack(
                response_action="errors",
                errors={BlockId.APPLICATION.value: environment_views.duplicate_field_error(duplicate)},
            )
            refuse_duplicate(services, submission.user.id, context.channel_id, duplicate)
            return
        ack()
        if created:
            log.info("deployment_requested", deployment_id=deployment.id, user=deployment.requester_id)
            services.audit.record(
                "requested",
                deployment.id,
                deployment.requester_id,
                request=deployment.request.headline,
                profile=deployment.request.profile,
            )
            services.notifier.ensure_thread(deployment)


def refuse_duplicate(services: Services, user_id: str, channel_id: str, duplicate: Duplicate) -> None:
    """After ack(): audited, and the requester hears it exists, with a Change it button."""
    opened = duplicate.open_deployment
    log.info(
        "duplicate_request_refused",
        user=user_id,
        environment=str(duplicate.key),
        why=duplicate.why.value,
        open_deployment=opened.id if opened else None,
    )
    services.audit.record(
        "request_refused_duplicate",
        opened.id if opened else "-",
        user_id,
        environment=str(duplicate.key),
        why=duplicate.why.value,
    )
    message = environment_views.duplicate_message(duplicate)
    services.notifier.ephemeral(channel_id, user_id, message.text, message.blocks)
