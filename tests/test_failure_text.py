"""A failed Terraform step says what failed once: the thread's title names the step, the reason says
how it failed ("Terraform exited with code 1."), and the status line does not repeat either."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.views.pipeline import terraform_failure_text
from tests.harness.flow import PipelineRun
from tests.harness.processes import run_worker_burst
from tests.test_pipeline_paths import wrapped_terraform

FAIL_ON_PLAN = """if args[:1] == ["plan"]:
    print("Error: fake provider refused the plan", file=sys.stderr, flush=True)
    sys.exit(1)"""


def test_a_failed_plan_says_terraform_plan_failed_once() -> None:
    text = terraform_failure_text("plan", exit_code=1, excerpt="Error: no credentials")
    assert text == "Terraform exited with code 1.\n```Error: no credentials```"


def test_a_failed_init_names_init_and_the_step_it_was_for() -> None:
    text = terraform_failure_text("init", exit_code=1, before="planning")
    assert text == "Before planning, `terraform init` exited with code 1."


def test_a_stopped_run_keeps_the_runners_line_and_never_leaves_a_code_block_open() -> None:
    text = terraform_failure_text(
        "plan",
        exit_code=None,
        stopped="terraform plan timed out after 3 s; interrupted with SIGINT",
        excerpt="x" * 5000 + "```",
    )
    assert text.startswith("terraform plan timed out after 3 s; interrupted with SIGINT.\n```")
    assert text.count("```") == 2 and len(text) < 1700


@pytest.mark.e2e
def test_a_failed_plan_reads_once_in_the_status_and_the_thread(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    _, slack_api, store, pipeline_env = pipeline_run
    fake = wrapped_terraform(tmp_path, FAIL_ON_PLAN)
    deployment_id = pipeline_run.new_account_at_plan_stage("V-FAILPLAN")
    run_worker_burst({**pipeline_env, "TERRAFORM_BIN": str(fake)})
    deployment = store.get(deployment_id)
    assert deployment.status.value == "failed"
    detail = deployment.status_detail or ""
    assert detail.startswith("terraform plan: Terraform exited with code 1."), detail
    assert detail.count("terraform plan") == 1 and "failed" not in detail, detail
    failure = next(
        t for t in slack_api.thread_texts(deployment.thread_ts or "") if "Terraform plan failed" in t
    )
    text = failure.split("\n[", 1)[0]  # the message's text (the stand-in appends its blocks)
    assert "Terraform plan failed.* Terraform exited with code 1." in text, text
    assert "fake provider refused the plan" in text
    assert text.lower().count("terraform plan") == 1 and text.count("failed") == 1, text
