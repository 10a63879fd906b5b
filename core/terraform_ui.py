"""Terraform's machine-readable UI (`plan -json`, `apply -json`), read one line at a time (pure: no I/O).

With `-json` Terraform writes one JSON object per line: `{"@level", "@message", "@module",
"@timestamp", "type", …}`. The bot reads the types it needs — `apply_start`, `apply_progress`,
`apply_complete`, `apply_errored`, `change_summary`, `diagnostic`, and `log` (Terraform's
"Interrupt received") — instead of scraping the human text, which HashiCorp documents as unstable.
Lines that are not JSON (the runner's own `# …` notes, warnings Terraform prints on stderr before it
parsed its flags) are kept as they are.

Every message carries its human text in `@message`; `human_lines` renders a run's log for people
(the attached log, the output tail) from it, with each diagnostic written out as Terraform would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.values import Value

EXCERPT_MAX_CHARS = 4000
STALE_PLAN_SUMMARY = "Saved plan is stale"
LOCK_ERROR_SUMMARY = "Error acquiring the state lock"
INTERRUPT_TEXT = "Interrupt received"


class Diagnostic(Value):
    """One `diagnostic` message: an error or a warning."""

    severity: str
    summary: str
    detail: str = ""
    address: str | None = None
    filename: str | None = None
    line: int | None = None
    code: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def text(self) -> str:
        """The diagnostic as Terraform prints it without colour (summary, where, detail)."""
        parts = [f"{self.severity.capitalize()}: {self.summary}"]
        if self.filename and self.line is not None:
            where = f"  on {self.filename} line {self.line}"
            parts.append(where + (f":\n  {self.line}: {self.code}" if self.code else ""))
        if self.address:
            parts.append(f"  with {self.address},")
        if self.detail:
            parts.append(self.detail)
        return "\n\n".join(parts)


def message(line: str) -> dict[str, Any] | None:
    """The UI message on this line, or None when the line is not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        return None
    return parsed


def diagnostic(parsed: Mapping[str, Any]) -> Diagnostic | None:
    if parsed.get("type") != "diagnostic" or not isinstance(parsed.get("diagnostic"), Mapping):
        return None
    body: Mapping[str, Any] = parsed["diagnostic"]
    start = (body.get("range") or {}).get("start") or {}
    snippet = body.get("snippet") or {}
    return Diagnostic(
        severity=str(body.get("severity") or "error"),
        summary=str(body.get("summary") or ""),
        detail=str(body.get("detail") or ""),
        address=body.get("address") or None,
        filename=(body.get("range") or {}).get("filename") or None,
        line=start.get("line") if isinstance(start.get("line"), int) else None,
        code=snippet.get("code") or None,
    )


def diagnostics(lines: Iterable[str]) -> tuple[Diagnostic, ...]:
    found: list[Diagnostic] = []
    for line in lines:
        parsed = message(line)
        if parsed is not None and (item := diagnostic(parsed)) is not None:
            found.append(item)
    return tuple(found)


def error_excerpt(found: Sequence[Diagnostic], max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """The error diagnostics, written out as Terraform prints them (warnings left out)."""
    text = "\n\n".join(item.text.strip() for item in found if item.is_error)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def stale_plan(found: Sequence[Diagnostic]) -> bool:
    """Terraform refused a saved plan because the state changed since it was made."""
    return any(item.is_error and item.summary == STALE_PLAN_SUMMARY for item in found)


def lock_error(found: Sequence[Diagnostic]) -> bool:
    """Terraform could not take the state lock."""
    return any(item.is_error and item.summary == LOCK_ERROR_SUMMARY for item in found)


def interrupt_received(lines: Iterable[str]) -> bool:
    """Terraform says (a `log` message) that it got an interrupt and shuts down gracefully."""
    for line in lines:
        parsed = message(line)
        if (
            parsed is not None
            and parsed.get("type") == "log"
            and INTERRUPT_TEXT in str(parsed.get("@message"))
        ):
            return True
    return False


def human_line(line: str) -> str:
    """One log line for people: a UI message's human text (a diagnostic written out in full)."""
    parsed = message(line)
    if parsed is None:
        return line
    if (item := diagnostic(parsed)) is not None:
        return item.text
    return str(parsed.get("@message", "")).strip("\n")


def human_lines(lines: Iterable[str]) -> list[str]:
    return [human_line(line) for line in lines]
