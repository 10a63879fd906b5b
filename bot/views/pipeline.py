"""Thread messages of the pipeline's middle steps: state backend, workspace, apply, verification."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel
from slack_sdk.models.blocks import ActionsBlock, Block

from bot.ids import Action
from bot.views.blocks import MESSAGE_TEXT_LIMIT, buttons, clip, context, section
from bot.views.messages import Message
from bot.views.tfvars import problem_texts
from core.backend_fix import BackendFixPlan
from core.tfvars.validate import TfvarsProblem

_md = section
_context = context


def _buttons(deployment_id: str, *items: tuple[str, Action, str | None]) -> ActionsBlock:
    return buttons(deployment_id, [(label, action.value, style) for label, action, style in items])


LINE_LIMIT = 180


def _lines(items: Iterable[str], limit: int = 15) -> str:
    """At most `limit` lines of at most LINE_LIMIT characters, then how many more: a list of any
    length stays a few thousand characters (Slack refuses messages of about 12k)."""
    items = list(items)
    shown = [clip(item, LINE_LIMIT) for item in items[:limit]]
    more = f"\n…and {len(items) - limit} more" if len(items) > limit else ""
    return "\n".join(shown) + more


class CheckLine(BaseModel):
    ok: bool
    name: str
    detail: str
    fix: str = ""


def backend_message(
    deployment_id: str,
    *,
    bucket: str,
    table: str,
    headline: str,
    checks: Sequence[CheckLine],
    changes: Sequence[str] = (),
    needs_confirmation: bool = False,
    failure: str | None = None,
    suggestion: str | None = None,
    fix_plan: BackendFixPlan | None = None,
    who_may_confirm: str = "",
) -> Message:
    """The backend report; with `needs_confirmation`, the exact changes to confirm (`fix_plan`: each
    setting before → after, irreversible ones called out) and who may confirm them."""
    marks = [f"{':white_check_mark:' if c.ok else ':x:'} *{c.name}* — {c.detail}" for c in checks]
    blocks: list[Block] = [_md(f"*State backend* `{bucket}` · lock table `{table}`\n{headline}")]
    if marks:
        blocks.append(_md(_lines(marks)))
    if changes:
        blocks.append(_md("*Changed:*\n" + _lines(f"• {change}" for change in changes)))
    if failure:
        shown = clip(failure, 1500)
        blocks.append(_md(f":x: {shown}" + (f"\nSuggestion: `{suggestion}`" if suggestion else "")))
    if needs_confirmation:
        blocks.extend(_fix_blocks(bucket, checks, fix_plan, who_may_confirm))
        blocks.append(
            _buttons(
                deployment_id,
                ("Fix the bucket", Action.FIX_BACKEND, "primary"),
                ("Cancel deployment", Action.CANCEL, "danger"),
            )
        )
    return Message(text=f"State backend {bucket}: {headline}", blocks=blocks)


def _fix_blocks(
    bucket: str, checks: Sequence[CheckLine], plan: BackendFixPlan | None, who: str
) -> list[Block]:
    if plan is None:  # no plan to show: the checks' fixes
        fixes = [f"• {c.fix}" for c in checks if not c.ok and c.fix]
        return [
            _md(
                "The bucket exists but is not set up for Terraform state. With your confirmation the bot"
                " will:\n" + _lines(fixes)
            )
        ]
    owner = (
        "The bot created this bucket"
        if plan.managed
        else ":warning: *The bot did not create this bucket* (it has no `ecs-deploy-bot:managed` tag):"
        " it may belong to another team"
    )
    rows = [
        f"• *{c.setting.value}*: {c.before} → *{c.after}*"
        + ((f" — :warning: *{c.note}*" if not c.reversible else f" — _{c.note}_") if c.note else "")
        for c in plan.changes
    ]
    blocks: list[Block] = [
        _md(
            f"{owner}, and it is not set up for Terraform state. Once confirmed, the bot will change"
            f" `{bucket}` exactly like this:\n" + _lines(rows)
        )
    ]
    if plan.irreversible:
        blocks.append(
            _md(
                ":warning: Versioning, once enabled, can never be turned off again on this bucket, only"
                " suspended; from then on overwritten and deleted objects are kept as noncurrent versions."
                " Nothing else in the bucket is changed."
            )
        )
    if who:
        blocks.append(_context(who))
    return blocks


def workspace_message(
    *,
    repo: str,
    commit: str,
    source: str,
    tfvars_path: str,
    tfbackend_path: str,
    changes: Sequence[str],
    errors: Sequence[TfvarsProblem],
    warnings: Sequence[TfvarsProblem],
) -> Message:
    blocks: list[Block] = [
        _md(
            f":file_folder: *Workspace ready* — `{repo}` at `{commit[:12]}`\n"
            f"Generated `{tfvars_path}` (from `{source}`) and `{tfbackend_path}`."
        ),
    ]
    if changes:
        blocks.append(_md("*Values set:*\n```" + _lines(changes, 20).replace("```", "'''") + "```"))
    if errors:
        blocks.append(
            _md(
                ":x: *The generated tfvars has problems:*\n" + _lines(f"• {e}" for e in problem_texts(errors))
            )
        )
    if warnings:
        blocks.append(_context("Warnings: " + clip("; ".join(problem_texts(warnings)), 2000)))
    return Message(text=f"Workspace ready at {commit[:12]}: {tfvars_path}", blocks=blocks)


def missing_values_message(deployment_id: str, labels: Sequence[str]) -> Message:
    text = "The template needs values only you can give before the bot can plan:\n" + _lines(
        f"• {label}" for label in labels
    )
    return Message(
        text="Values needed before planning",
        blocks=[
            _md(f":raising_hand: {text}"),
            _buttons(deployment_id, ("Provide values", Action.PROVIDE_VALUES, "primary")),
        ],
    )


def step_status_message(text: str, *, context: str | None = None) -> Message:
    """A step's status in the thread (waiting for a lock, applying…, interrupted), as one message."""
    blocks: list[Block] = [_md(text)]
    if context:
        blocks.append(_context(context))
    return Message(text=clip(text, MESSAGE_TEXT_LIMIT), blocks=blocks)


def outputs_text(outputs: dict[str, dict[str, object]]) -> str:
    lines = []
    for name, output in sorted(outputs.items()):
        value = "(sensitive)" if output.get("sensitive") else str(output.get("value"))
        lines.append(f"{name} = {clip(value, 200)}")
    return _lines(lines, 25)


def apply_result_message(summary: str, outputs: dict[str, dict[str, object]]) -> Message:
    blocks: list[Block] = [_md(f":white_check_mark: *{summary}*")]
    if outputs:
        blocks.append(_md("*Outputs*\n```" + outputs_text(outputs).replace("```", "'''") + "```"))
    return Message(text=summary, blocks=blocks)


def apply_failed_message(reason: str, excerpt: str, created: Sequence[str]) -> Message:
    blocks: list[Block] = [_md(f":x: *Apply failed.* {reason}")]
    if excerpt:
        blocks.append(_md("```" + clip(excerpt, 2700).replace("```", "'''") + "```"))
    if created:
        blocks.append(_md("*Created or changed before the failure:*\n" + _lines(f"• `{a}`" for a in created)))
    blocks.append(
        _context("The state may be partly applied: re-plan to see what is left. The full log is attached.")
    )
    return Message(text=f"Apply failed: {reason}", blocks=blocks)


class VerificationLine(BaseModel):
    ok: bool | None  # None: not checked (not configured)
    name: str
    detail: str
    hint: str = ""


def verification_message(lines: Sequence[VerificationLine], next_steps: Sequence[str]) -> Message:
    def mark(line: VerificationLine) -> str:
        return ":white_check_mark:" if line.ok else (":heavy_minus_sign:" if line.ok is None else ":x:")

    rows = [
        f"{mark(line)} *{line.name}* — {line.detail}"
        + (f"\n      _{line.hint}_" if line.hint and not line.ok else "")
        for line in lines
    ]
    failed = sum(1 for line in lines if line.ok is False)
    headline = (
        ":stethoscope: *Post-deployment verification*: all checks passed"
        if not failed
        else f":stethoscope: *Post-deployment verification*: {failed} check(s) need attention"
    )
    blocks: list[Block] = [_md(headline), _md(_lines(rows, 20))]
    if next_steps:
        blocks.append(_md("*Next steps*\n" + _lines(f"• {step}" for step in next_steps)))
    return Message(text=headline.replace("*", ""), blocks=blocks)


def terraform_failure_text(
    command: str, *, exit_code: int | None, stopped: str = "", excerpt: str = "", before: str | None = None
) -> str:
    """Why a Terraform run failed, said once (the message's title already names the step): "Terraform
    exited with code 1." or the runner's line for a run that was stopped ("terraform plan timed out
    after 600 s; interrupted with SIGINT"); `before` for the `init` ahead of the step; then the end
    of Terraform's own error output as a code block."""
    if stopped:
        said = f"{stopped}."
    elif before:
        said = f"`terraform {command}` exited with code {exit_code}."
    else:
        said = f"Terraform exited with code {exit_code}."
    if before:
        said = f"Before {before}, {said}"
    shown = excerpt[-1500:].replace("```", "'''").strip()
    return said + (f"\n```{shown}```" if shown else "")


def terraform_failure_next(deployment_id: str, *, lock_error: bool) -> str:
    """What to do after a failed Terraform run (the log is attached)."""
    attached = "The full log is attached in the thread."
    if not lock_error:
        return attached
    return (
        "Terraform's own state lock is held by someone else (its lock ID, who and since when are"
        " above). If no Terraform run is using this state, a lead can look at it and get the exact"
        f" way to clear it with `/ecs-deploy unlock {deployment_id}`; then use Re-plan. The bot itself"
        " releases only locks it can prove were left by its own dead runs. " + attached
    )
