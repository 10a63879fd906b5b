"""The HTTP endpoint under bad input: forged, replayed and malformed requests never reach the store."""

from __future__ import annotations

import json
import time

import pytest
import redis
from rq import Queue

from storage.queue import JOB_SERIALIZER
from tests.harness.slack_api import SlackApiStandIn
from tests.harness.slack_requests import SlackClientSim, fixture, request_values, sign

METADATA = json.dumps({"channel_id": "C_DEPLOYS"})


def nothing_stored(redis_conn: redis.Redis) -> bool:
    return (
        redis_conn.keys("ecs-deploy:*") == []
        and Queue("ecs-deploy", connection=redis_conn, serializer=JOB_SERIALIZER).count == 0
    )


def test_signature_vectors_from_slack_docs_match_our_signer() -> None:
    vectors = fixture("signature_test_vectors.json")
    headers = sign(vectors["body"], vectors["signing_secret"], int(vectors["timestamp"]))
    assert headers["X-Slack-Signature"] == vectors["valid_signature"]


@pytest.mark.parametrize(
    "tamper",
    ["unsigned", "wrong_secret", "old_timestamp", "body_changed"],
)
def test_forged_or_replayed_requests_get_401_and_change_nothing(
    slack: SlackClientSim, slack_api: SlackApiStandIn, redis_conn: redis.Redis, tamper: str
) -> None:
    from urllib.parse import urlencode

    payload = fixture("bolt_view_submission_state_values.json")
    payload["view"].update(
        callback_id="ecs_deploy_request", private_metadata=METADATA, state={"values": request_values()}
    )
    body = urlencode({"payload": json.dumps(payload)})
    headers: dict[str, str] = {}
    if tamper == "wrong_secret":
        headers = sign(body, "not-the-secret")
    elif tamper == "old_timestamp":
        headers = sign(body, timestamp=int(time.time()) - 301)
    elif tamper == "body_changed":
        headers = sign(body)
        body += "------"
    response = slack.post(body, headers=headers, signed=False)
    assert response.status_code == 401
    assert "Traceback" not in response.text
    assert nothing_stored(redis_conn)
    assert slack_api.calls == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
        ('payload={"type":"view_submission"}', "application/x-www-form-urlencoded"),
        ('payload={"type":"block_actions","user":{"id":"U1"}}', "application/x-www-form-urlencoded"),
        ("text=hello", "application/x-www-form-urlencoded"),
        ("command=%2Fecs-deploy", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ("[]", "application/json"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_signed_bodies_get_a_4xx_not_a_500(
    slack: SlackClientSim, redis_conn: redis.Redis, body: str, content_type: str
) -> None:
    response = slack.post(body, content_type=content_type)
    assert 400 <= response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert nothing_stored(redis_conn)


def test_slack_retries_are_acknowledged_without_running_twice(
    slack: SlackClientSim, slack_api: SlackApiStandIn
) -> None:
    response = slack.slash_command(
        "", headers={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert response.status_code == 200
    time.sleep(0.3)
    assert slack_api.calls_to("views.open") == []


def test_unknown_subcommand_answers_with_help(slack: SlackClientSim) -> None:
    response = slack.slash_command("frobnicate now")
    assert response.status_code == 200
    assert "Unknown subcommand `frobnicate`" in response.text and "/ecs-deploy status" in response.text


def test_oversized_values_are_rejected_and_never_written(
    slack: SlackClientSim, redis_conn: redis.Redis
) -> None:
    values = request_values(
        application="a" * 10_000,
        additional_tags="k=" + "v" * 10_000,
        environment="dev\nprod",
        account_id="１２３４５６７８９０１２",
    )
    response = slack.view_submission(values, private_metadata=METADATA)
    errors = response.json()["errors"]
    assert {"application", "additional_tags", "environment", "account_id"} <= set(errors)
    assert all(len(message) < 300 for message in errors.values())
    assert nothing_stored(redis_conn)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("application", "../web"),
        ("application", "web;ls"),
        ("application", "web\u202eved"),
        ("application", "wеb"),  # Cyrillic e
        ("environment", "$(id)"),
        ("additional_tags", "owner=me\u200b"),
        ("additional_tags", "owner=$(whoami)"),
        ("vpc_cidr_block", "8.8.8.0/24"),
        ("profile", "someone-elses-profile"),
        ("state_bucket", "Bad_Bucket"),
    ],
)
def test_hostile_values_are_refused_on_their_field(
    slack: SlackClientSim, redis_conn: redis.Redis, field: str, value: str
) -> None:
    response = slack.view_submission(request_values(**{field: value}), private_metadata=METADATA)
    assert field in response.json()["errors"]
    assert nothing_stored(redis_conn)
