"""Access policies written inline in a test, as the policy file `policy.yml` would hold them."""

from __future__ import annotations

import textwrap

import pytest

from core.policy.access import AccessPolicy
from core.policy.errors import PolicyError
from core.policy.loading import parse_policy


def inline_policy(text: str) -> AccessPolicy:
    """`text` (indented like the test that holds it) read as the file policy.yml."""
    return parse_policy(textwrap.dedent(text).lstrip("\n"), "policy.yml")


def assert_refused(text: str, line: int, key: str, words: list[str]) -> None:
    """Loading `text` fails with a PolicyError naming `line` and `key`, whose message says `words`."""
    with pytest.raises(PolicyError) as caught:
        inline_policy(text)
    message = str(caught.value)
    assert caught.value.key == key, message
    assert caught.value.line == line, message
    for word in words:
        assert word in message, message
