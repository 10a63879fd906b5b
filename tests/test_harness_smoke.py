from __future__ import annotations

import boto3


def test_moto_is_reached_through_standard_endpoint_settings(aws: object) -> None:
    identity = boto3.Session(profile_name="deployer").client("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"


def test_assume_role_profile_reaches_second_account(aws: object) -> None:
    identity = boto3.Session(profile_name="other-account").client("sts").get_caller_identity()
    assert identity["Account"] == "222233334444"


def test_redis_is_real(redis_conn) -> None:  # type: ignore[no-untyped-def]
    assert redis_conn.info("server")["redis_version"].startswith("6.")
