"""How an AWS failure is named in a status line or a log: the error code AWS answered with, or the
kind of failure that kept the call from reaching AWS."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def aws_problem(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"AWS answered {error_code(exc) or 'an error'}"
    return f"AWS could not be reached ({type(exc).__name__})"
