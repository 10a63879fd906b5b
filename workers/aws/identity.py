"""Who a profile really is: `sts get-caller-identity`, compared with the requested account."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from pydantic import BaseModel

from aws_edge import configs
from aws_edge.sessions import known_profiles, session_for
from core.models import CallerIdentity
from core.policy.access import AssumeRole

INVALID_CREDENTIALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"}
EXPIRED_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


class AccessProblem(BaseModel):
    """An expected, explainable reason the profile cannot be used (not a fault of the bot)."""

    reason: str
    what_next: str


class Verification(BaseModel):
    identity: CallerIdentity | None = None
    problem: AccessProblem | None = None


def verify_access(
    profile: str, region: str, expected_account: str, assume: AssumeRole | None = None
) -> Verification:
    try:
        session = session_for(profile, region, assume)
        reply = session.client("sts", config=configs.STANDARD).get_caller_identity()
    except ProfileNotFound:
        known = ", ".join(known_profiles()) or "none"
        return _problem(
            f"The AWS profile `{profile}` is not configured on the bot's host.",
            f"Known profiles: {known}. Ask an operator to add it to the AWS config.",
        )
    except (NoCredentialsError, PartialCredentialsError):
        return _problem(
            f"The AWS profile `{profile}` has no usable credentials (Unable to locate credentials).",
            "An operator must add credentials for it (`aws configure --profile " + profile + "`).",
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in INVALID_CREDENTIALS:
            return _problem(
                f"The credentials of profile `{profile}` are invalid ({code}).",
                "Ask an operator to rotate or fix the profile's access keys.",
            )
        if code in EXPIRED_CREDENTIALS:
            return _problem(
                f"The credentials of profile `{profile}` have expired ({code}).",
                "Refresh the session (e.g. `aws sso login`) on the bot's host.",
            )
        if code in {"AccessDenied", "AccessDeniedException"}:
            return _problem(
                f"Profile `{profile}` may not call sts:GetCallerIdentity or assume its role ({code}).",
                "Check the role's trust policy and the profile's permissions.",
            )
        return _problem(
            f"AWS refused the identity check for `{profile}`: {code}.",
            "Try again; if it persists, ask an operator to check the profile.",
        )
    except BotoCoreError as exc:
        return _problem(
            f"AWS could not be reached with profile `{profile}`: {type(exc).__name__}.",
            "Check the network and the region, then try again.",
        )
    identity = CallerIdentity(account=reply["Account"], arn=reply["Arn"], user_id=reply["UserId"])
    if identity.account != expected_account:
        return Verification(
            identity=identity,
            problem=AccessProblem(
                reason=f"Profile `{profile}` reaches account *{identity.account}*, not {expected_account} as requested.",
                what_next="Request again with the right account id, or choose the profile for that account.",
            ),
        )
    return Verification(identity=identity)


def _problem(reason: str, what_next: str) -> Verification:
    return Verification(problem=AccessProblem(reason=reason, what_next=what_next))
