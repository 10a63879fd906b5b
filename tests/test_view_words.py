"""The views' word tables cover their enums: a new `Why`, `DeploymentKind` or `Verdict` without words
fails here, not in front of a user (a lookup table, unlike a `match`, is not checked for exhaustiveness
by mypy)."""

from __future__ import annotations

import pytest

from bot.views.access import reason_text
from bot.views.findings import VERDICT_WORDS
from bot.views.statuses import KIND_WORDS
from core.analysis.report import Verdict
from core.lifecycle import DeploymentKind
from core.policy.access import Decision, Why


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
