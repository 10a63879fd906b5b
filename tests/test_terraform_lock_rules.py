"""The rule that decides whether a Terraform lock left in DynamoDB is provably a dead run's own (and so
may be released by the bot), and the parsing around it. Pure functions over models: no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.apply_progress import replay, state_addresses
from core.terraform_locks import TerraformLockInfo, TerraformRun, lock_error_info, own_lock, taken_by

STATE = "tfstate-123456789012-us-east-1/terraform/web/dev/terraform.tfstate"
T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
WHO = "deploy@worker-1"
LOCK_ID = "35766369-fea9-30d1-709f-87f8edf56454"


def lock(**changes: object) -> TerraformLockInfo:
    info = {
        "ID": LOCK_ID,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": WHO,
        "Version": "1.11.4",
        "Created": "2026-03-01T10:00:03.786404575Z",  # Terraform writes nanoseconds
        "Path": STATE,
    }
    info.update({str(k): v for k, v in changes.items()})
    parsed = TerraformLockInfo.from_raw(json.dumps(info))
    assert parsed is not None
    return parsed


def run(**changes: object) -> TerraformRun:
    base = TerraformRun(
        state=STATE,
        deployment_id="d-00000001",
        job_id="job-1",
        step="apply",
        host="worker-1",
        who=WHO,
        started_at=T0,
        command="apply",
        operation="OperationTypeApply",
        command_started_at=T0 + timedelta(seconds=2),
    )
    return base.model_copy(update=changes)


NOW = T0 + timedelta(minutes=5)


def test_terraforms_lock_json_is_read_with_its_raw_text() -> None:
    found = lock()
    assert found.id == LOCK_ID and found.who == WHO and found.operation == "OperationTypeApply"
    assert found.created == datetime(2026, 3, 1, 10, 0, 3, 786404, tzinfo=UTC)
    assert json.loads(found.raw)["ID"] == LOCK_ID  # the exact text a conditional delete compares
    assert TerraformLockInfo.from_raw("not json") is None
    assert TerraformLockInfo.from_raw(json.dumps({"Who": WHO})) is None  # no ID: not Terraform's lock
    undated = TerraformLockInfo.from_raw(json.dumps({"ID": "x", "Created": "now"}))
    assert undated is not None and undated.created is None


def test_a_recorded_lock_id_proves_the_lock_is_the_dead_runs_own() -> None:
    verdict = own_lock(lock(), run(lock=lock()), run_alive=False, now=NOW)
    assert verdict.own and verdict.proof == "recorded lock id"
    assert LOCK_ID in verdict.reason


def test_never_while_the_run_may_be_alive() -> None:
    verdict = own_lock(lock(), run(lock=lock()), run_alive=True, now=NOW)
    assert not verdict.own and verdict.proof is None
    assert "may still be running" in verdict.reason


def test_a_lock_with_another_id_than_the_recorded_one_is_someone_elses() -> None:
    other = lock(ID="11111111-2222-3333-4444-555555555555")
    verdict = own_lock(other, run(lock=lock()), run_alive=False, now=NOW)
    assert not verdict.own and "someone else" in verdict.reason


def test_without_a_recorded_id_the_runs_identity_decides() -> None:
    """Terraform's own retried PutItem: same Who and Operation, taken after the command started."""
    verdict = own_lock(lock(), run(), run_alive=False, now=NOW)
    assert verdict.own and verdict.proof == "run identity"
    assert taken_by(lock(), run(), now=NOW)


@pytest.mark.parametrize(
    ("changes", "run_changes", "why"),
    [
        ({"Who": "alice@laptop"}, {}, "taken by `alice@laptop`"),
        ({"Operation": "OperationTypePlan"}, {}, "taken for OperationTypePlan"),
        ({"Created": "2026-03-01T09:59:00Z"}, {}, "before the run's command started"),
        ({"Created": "2026-03-01T10:04:00Z"}, {"ended_at": T0 + timedelta(minutes=1)}, "after the run ended"),
        ({"Path": "other-bucket/key"}, {}, "not on"),
        ({"Created": "garbage"}, {}, "does not say when"),
        ({}, {"command_started_at": None, "operation": None}, "never started a Terraform command"),
        ({}, {"who": ""}, "not by the run's worker"),
    ],
)
def test_a_lock_that_is_not_provably_the_runs_is_never_its_own(
    changes: dict[str, object], run_changes: dict[str, object], why: str
) -> None:
    verdict = own_lock(lock(**changes), run(**run_changes), run_alive=False, now=NOW)
    assert not verdict.own and verdict.proof is None
    assert why in verdict.reason


def test_clock_skew_of_a_few_seconds_is_tolerated() -> None:
    early = lock(Created="2026-03-01T10:00:00Z")  # 2 s before the recorded command start
    assert own_lock(early, run(), run_alive=False, now=NOW).own


def test_the_lock_info_of_terraforms_lock_error_is_parsed() -> None:
    output = "\n".join(
        [
            "│ Error: Error acquiring the state lock",
            "│ ",
            "│ Error message: operation error DynamoDB: PutItem, ConditionalCheckFailedException: The",
            "│ conditional request failed",
            "│ Lock Info:",
            f"│   ID:        {LOCK_ID}",
            f"│   Path:      {STATE}",
            "│   Operation: OperationTypePlan",
            f"│   Who:       {WHO}",
            "│   Version:   1.11.4",
            "│   Created:   2026-03-01 10:00:03.786404575 +0000 UTC",
            "│   Info:      ",
        ]
    )
    info = lock_error_info(output)
    assert info is not None
    assert info["ID"] == LOCK_ID and info["Who"] == WHO and info["Operation"] == "OperationTypePlan"
    assert lock_error_info("Error: something else") is None


def test_apply_progress_keeps_what_was_created_and_the_state_lists_its_addresses() -> None:
    def hook(kind: str, address: str, action: str) -> str:  # apply -json's UI messages
        return json.dumps({"type": kind, "hook": {"resource": {"addr": address}, "action": action}})

    progress = replay(
        [
            hook("apply_start", "terraform_data.a", "create"),
            hook("apply_complete", "terraform_data.a", "create"),
            hook("apply_start", 'module.net.terraform_data.b["x"]', "update"),
            hook("apply_complete", 'module.net.terraform_data.b["x"]', "update"),
            hook("apply_start", "terraform_data.c[0]", "create"),
        ],
        total=3,
    )
    assert progress.completed == ("terraform_data.a", 'module.net.terraform_data.b["x"]')
    assert progress.created == ("terraform_data.a",) and progress.in_progress == ("terraform_data.c[0]",)
    state = {
        "resources": [
            {"mode": "managed", "type": "terraform_data", "name": "a", "instances": [{}]},
            {
                "module": "module.net",
                "mode": "managed",
                "type": "terraform_data",
                "name": "b",
                "instances": [{"index_key": "x"}],
            },
            {"mode": "managed", "type": "terraform_data", "name": "c", "instances": [{"index_key": 0}]},
            {"mode": "data", "type": "aws_ami", "name": "d", "instances": [{}]},
        ]
    }
    assert state_addresses(state) == {
        "terraform_data.a",
        'module.net.terraform_data.b["x"]',
        "terraform_data.c[0]",
        "data.aws_ami.d",
    }
