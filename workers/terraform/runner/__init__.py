"""The one way the bot runs Terraform.

Every command is an argv list (never a shell) run in the workspace, in its own process group, with
`TF_IN_AUTOMATION=1`, `CHECKPOINT_DISABLE=1`, an empty CLI config unless one is set, and an explicit
timeout. Terraform writes its output (stdout and stderr together) straight into
`<workspace>/.ecs-deploy/logs/<n>-<command>.log` (0600); the runner follows that file line by line
into an optional `on_line` callback. There is no pipe between Terraform and the worker: a worker that
dies can no longer kill Terraform with SIGPIPE half-way through an apply.

`plan` and `apply` run with `-json` (Terraform's machine-readable UI, core/terraform_ui.py): their
log holds one UI message per line, and errors, the stale-plan refusal and a state-lock failure are
read from its `diagnostic` messages, the apply's progress from its hooks (core/apply_progress.py).
`human_log` renders such a log for people (it is what gets attached). The commands that have no
machine-readable UI here (`init`; `show -no-color`, the human plan; `output`) write text, and their
`Error:` blocks are cut from it (`error_excerpt`).

Terraform is started by a small single-threaded launcher (workers/terraform/launcher.py), the leader
of the run's process group, which relays Terraform's exit status. Stopping, in every case:
- timeout or cancel: the whole process group gets SIGINT first (Terraform stops gracefully, writes
  its state and releases its state lock), then SIGKILL after a grace period. Processes the run leaves
  behind in its group (e.g. a provisioner's child) are killed once Terraform has exited;
- the job around the run is stopped (RQ's timeout, an exception): the same, before the job ends;
- the supervising process dies (SIGKILL, OOM, a container stop of the work horse): the launcher sees
  its control pipe close and gives Terraform exactly one SIGINT (a second one would make Terraform
  exit at once, state unwritten, lock held), then kills what is left of the group after the grace
  period. Should the launcher die too, Terraform gets one SIGINT from the kernel (PR_SET_PDEATHSIG,
  armed before exec in its single-threaded parent).

Plan files: a plan the bot hashed is handed to Terraform as a `SealedPlan` — the bytes in a sealed
memory file (memfd, F_SEAL_WRITE…), read by Terraform as `/dev/fd/<n>` — and hashed again
immediately before the command starts. What was hashed is exactly what Terraform reads: nothing on
disk can be swapped between the check and the read. Terraform writes new plans into a directory
only the worker can use (`private_directory`, 0700).

Values of the extra environment (`RunOptions.env`) are never written anywhere; the log names only
their keys.

The modules: `commands` (init, plan, apply, show, output), `run` (`run_terraform`: one command, start
to result), `process_group` (supervising and stopping the run's process group), `run_log` (the log
file and its follower), `plan_files` (`SealedPlan`, the private plan directory), `output_text`
(redacted argv, error excerpts, the human log) and `models` (options, results, errors). This package
exports what the steps use.
"""

from workers.terraform.runner.commands import apply, init, output_json, plan, show_json, show_text
from workers.terraform.runner.models import (
    PlanIntegrityError,
    PlanMode,
    PlanResult,
    RunOptions,
    RunResult,
    StalePlanError,
    StartedRun,
    TerraformError,
)
from workers.terraform.runner.output_text import human_log
from workers.terraform.runner.plan_files import PlanInput, SealedPlan, private_directory, read_plan_file
from workers.terraform.runner.run import run_terraform

__all__ = [
    "PlanInput",
    "PlanIntegrityError",
    "PlanMode",
    "PlanResult",
    "RunOptions",
    "RunResult",
    "SealedPlan",
    "StalePlanError",
    "StartedRun",
    "TerraformError",
    "apply",
    "human_log",
    "init",
    "output_json",
    "plan",
    "private_directory",
    "read_plan_file",
    "run_terraform",
    "show_json",
    "show_text",
]
