"""The text of a run's output: argv with values hidden (`redact_argv`), the `Error:` blocks of a
text run (`error_excerpt`) and a `-json` run's log rendered for people (`human_log`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core import terraform_ui

EXCERPT_MAX_CHARS = 4000


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Hide values given on the command line (`-var=k=v`, `-backend-config=k=v`); files stay visible."""
    shown: list[str] = []
    for arg in argv:
        match = re.match(r"^(-var|-backend-config)=([^=]+)=.*$", arg, flags=re.DOTALL)
        shown.append(f"{match[1]}={match[2]}=***" if match else arg)
    return shown


def error_excerpt(lines: Sequence[str], max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """The `Error:` diagnostics of a text run's output (commands without -json): boxed (╷ │ ╵) or
    plain (-no-color)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    boxed = False
    for raw in lines:
        line = raw.rstrip("\n")
        stripped = line[2:] if line.startswith("│ ") else ("" if line == "│" else None)
        if stripped is not None and stripped.startswith("Error: "):
            current, boxed = [stripped], True
            blocks.append(current)
        elif line.startswith("Error: "):
            current, boxed = [line], False
            blocks.append(current)
        elif current is None:
            continue
        elif boxed:
            if line.startswith("╵") or stripped is None:
                current = None
            else:
                current.append(stripped)
        elif line.startswith(("Warning: ", "╷")) or _ends_plain_block(current, line):
            current = None
        else:
            current.append(line)
    text = "\n\n".join("\n".join(block).strip() for block in blocks)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def human_log(text: str) -> str:
    """A run's log for people: UI messages (-json runs) as their human text, other lines as they are."""
    return "\n".join(terraform_ui.human_lines(text.splitlines())) + ("\n" if text.endswith("\n") else "")


def _ends_plain_block(block: list[str], line: str) -> bool:
    """A plain diagnostic is summary, blank, body; a second blank line after the body ends it."""
    return line == "" and len(block) >= 3 and block[-1] == ""
