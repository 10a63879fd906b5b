"""The views' word tables cover their enums: a new `Why`, `DeploymentKind` or `Verdict` without words
fails here, not in front of a user (a lookup table, unlike a `match`, is not checked for exhaustiveness
by mypy)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from bot.mcp.views import CHANNEL_REFUSALS, ChannelRefusal
from bot.views.access import reason_text
from bot.views.clicks import DECIDED_BY, decided_by
from bot.views.findings import VERDICT_WORDS
from bot.views.refusals import NOT_NOW, NotNow
from bot.views.statuses import KIND_WORDS
from core.analysis.report import Verdict
from core.lifecycle import DeploymentKind, Move
from core.policy.access import Decision, Why

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("why", list(Why))
def test_every_access_answer_has_its_reason(why: Why) -> None:
    decision = Decision.deny(why, profile="web-dev", environment="dev", scope="web-dev/dev", bucket="tfstate")
    text = reason_text(decision)
    assert text.strip() and "{" not in text, text


def test_every_deployment_kind_has_its_words() -> None:
    assert set(KIND_WORDS) == set(DeploymentKind)
    assert all(words.verb and words.done and words.requested for words in KIND_WORDS.values())


def test_every_verdict_has_its_words() -> None:
    assert set(VERDICT_WORDS) == set(Verdict)
    assert all(words.icon and words.label and words.explained for words in VERDICT_WORDS.values())


def test_every_refusal_named_in_a_literal_has_its_words() -> None:
    assert set(NOT_NOW) == set(get_args(NotNow))
    assert set(CHANNEL_REFUSALS) == set(get_args(ChannelRefusal))


def _advance_calls_without_words() -> list[tuple[str, int, str]]:
    """(file, line, Move member) of every `….advance(Move.X, …)` in the listeners that passes no
    `decided` text (the third positional argument or the keyword), so falls back to DECIDED_BY."""
    found = []
    for path in sorted((ROOT / "bot" / "listeners").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "advance" or not node.args:
                continue
            move = node.args[0]
            if len(node.args) >= 3 or any(k.arg == "decided" for k in node.keywords):
                continue
            assert isinstance(move, ast.Attribute), f"{path.name}:{node.lineno}: advance() of a computed move"
            found.append((path.name, node.lineno, move.attr))
    return found


def test_every_move_a_click_makes_without_its_own_text_has_a_decided_by_line() -> None:
    calls = _advance_calls_without_words()
    assert calls, "the scan found no advance() call: it no longer sees the listeners"
    missing = [
        f"{name}:{line} Move.{member}" for name, line, member in calls if Move[member] not in DECIDED_BY
    ]
    assert not missing, missing
    for move in DECIDED_BY:
        assert "<@U1>" in decided_by(move, "U1"), move
