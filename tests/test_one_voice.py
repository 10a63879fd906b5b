"""One voice: the notifier is the only code that writes a deployment's messages to Slack, and the
words people read are built in bot/views/ only.

Read from the source (AST), so a regression fails here before it reaches a thread:
- Slack's write methods (posting, updating, deleting, ephemeral replies, uploads, reactions, pins)
  are named only in the notifier (bot/notifier/) — whether called as `client.chat_postMessage(...)` or by name
  (`"chat_postMessage"`, `"chat.postMessage"`) as the notifier's delivery does.
- `views_open` / `views_push` / `views_update` / `views_publish` are interactions, not writes of a
  deployment: a modal must open with the click's trigger_id within 3 seconds and App Home is one
  user's own surface, so they cannot wait in a deployment's outbox. They are allowed only in the
  listeners (bot/listeners/), where Slack's interactions arrive.
- User-facing text outside bot/views/: a string (not a docstring) holding a Slack emoji shortcode
  (`:white_check_mark:`) or a user mention (`<@`), or a literal sentence passed to the places text
  reaches people (text_message, Message, failure_message, status messages, Refusal, ControlRefused,
  StepFailure, ephemeral, set_status). The modules that still hold such text are listed in
  REMAINING with how many they hold: a count may only go down, and no other module may start.
- Rules that return facts (FACTS_ONLY: the account analysis, the permission pre-check, the tfvars
  validation) hold no sentence at all outside docstrings and the messages of the exceptions they raise,
  whatever it is passed to: a finding is a model, and bot/views/ words it. The data they still name on
  purpose is counted in FACTS_REMAINING, a count that may only go down.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "core", "workers")

WRITE_METHODS = {
    "chat_postMessage",
    "chat_update",
    "chat_delete",
    "chat_postEphemeral",
    "chat_scheduleMessage",
    "chat_meMessage",
    "files_upload",
    "files_upload_v2",
    "files_getUploadURLExternal",
    "files_completeUploadExternal",
    "files_delete",
    "reactions_add",
    "reactions_remove",
    "pins_add",
    "pins_remove",
    "bookmarks_add",
    "bookmarks_edit",
}
INTERACTION_METHODS = {"views_open", "views_push", "views_update", "views_publish"}
SLACK_WRITERS = {"bot/notifier/sending.py", "bot/notifier/thread.py"}  # delivery; ephemeral replies

EMOJI = re.compile(r"(?<![\w:/])(:[a-z][a-z0-9_+\-]*:)(?![\w:])")
TEXT_SINKS = {
    "text_message",
    "failure_message",
    "step_status_message",
    "Message",
    "Refusal",
    "ControlRefused",
    "StepFailure",
    "ephemeral",
}
# Modules outside bot/views/ that still build text people read: {module: findings}. Empty: none may
# start (move the text into a view instead).
REMAINING: dict[str, int] = {}
FACTS_ONLY = ("core/analysis/", "core/permissions.py", "core/tfvars/validate.py")
FACTS_REMAINING: dict[str, int] = {
    "core/analysis/scan.py": 21,  # the scan sections' titles and the quotas' names
    "core/permissions.py": 15,  # the names of poc-idp's components (what groups the IAM actions)
    "core/tfvars/validate.py": 1,  # the fallback hint for a value only the requester can give
}


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def method_name(text: str) -> str:
    """`chat.postMessage` → `chat_postMessage` (the SDK's method names)."""
    return text.replace(".", "_")


def slack_methods(tree: ast.AST) -> set[str]:
    """Slack Web API methods a module calls: as attributes, or by name as a call's first argument
    (`api_call("chat.postMessage", …)`, the notifier's `_call("chat_update", …)`). A name merely
    listed (bot/slack.py's set of methods that must not be retried) is not a call."""
    found: set[str] = set()
    known = WRITE_METHODS | INTERACTION_METHODS
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in known:
            found.add(node.attr)
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found |= {method_name(first.value)} & known
    return found


def docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def is_sentence(node: ast.AST) -> bool:
    """A literal with words in it (plain or the fixed parts of an f-string)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(re.search(r"[A-Za-z]{3,} [A-Za-z]", node.value))
    if isinstance(node, ast.JoinedStr):
        fixed = "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
        return bool(re.search(r"[A-Za-z]{3,} [A-Za-z]", fixed))
    if isinstance(node, ast.BinOp):
        return is_sentence(node.left) or is_sentence(node.right)
    return False


def user_text(tree: ast.AST) -> list[str]:
    """The user-facing text a module builds itself (see the module docstring)."""
    skip = docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [f"emoji {m}" for m in EMOJI.findall(node.value)]
            if "<@" in node.value:
                found.append("mention <@")
        elif isinstance(node, ast.Call) and call_name(node) in TEXT_SINKS:
            arguments = [*node.args, *(k.value for k in node.keywords if k.arg in (None, "text", "reason"))]
            found += [f"sentence to {call_name(node)}" for a in arguments if is_sentence(a)]
    return found


def sentences(tree: ast.AST) -> list[str]:
    """Every sentence literal a module holds, but its docstrings and the messages it raises."""
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            skip |= {id(inner) for inner in ast.walk(node)}
        elif isinstance(node, ast.JoinedStr):  # the f-string counts once, not its fixed parts again
            skip |= {id(part) for part in node.values}
    return [
        f"sentence at line {node.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant | ast.JoinedStr) and id(node) not in skip and is_sentence(node)
    ]


def test_only_the_notifier_writes_to_slack() -> None:
    writers = {
        rel(path): sorted(slack_methods(ast.parse(path.read_text())) & WRITE_METHODS) for path in modules()
    }
    assert {path for path, methods in writers.items() if methods} == SLACK_WRITERS, writers


def test_views_are_opened_and_published_only_where_interactions_arrive() -> None:
    for path in modules():
        methods = slack_methods(ast.parse(path.read_text())) & INTERACTION_METHODS
        assert not methods or rel(path).startswith("bot/listeners/"), (rel(path), methods)


def over_ratchet(counts: dict[str, int], allowed: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The modules holding more than a ratchet allows them: {module: (found, allowed)}."""
    return {path: (n, allowed.get(path, 0)) for path, n in counts.items() if n > allowed.get(path, 0)}


def test_user_facing_text_is_built_in_views_only() -> None:
    counts = {
        rel(path): len(found)
        for path in modules()
        if not rel(path).startswith("bot/views/") and (found := user_text(ast.parse(path.read_text())))
    }
    grown = over_ratchet(counts, REMAINING)
    assert not grown, f"user-facing text outside bot/views/ (found, allowed): {grown}"


def test_rules_that_return_facts_word_nothing() -> None:
    facts_only = [path for path in modules() if rel(path).startswith(FACTS_ONLY)]
    assert {rel(path) for path in facts_only} >= set(FACTS_REMAINING), "FACTS_REMAINING names a lost module"
    counts = {rel(path): len(sentences(ast.parse(path.read_text()))) for path in facts_only}
    grown = over_ratchet(counts, FACTS_REMAINING)
    assert not grown, f"sentences in modules that return facts (found, allowed): {grown}"


def test_the_rules_catch_what_they_are_for() -> None:
    """The detectors themselves: each would catch the regression it exists for."""
    post = ast.parse("def f(client):\n    client.chat_update(channel='C', ts='1', text='x')\n")
    by_name = ast.parse("def f(n):\n    n._call('chat.postMessage', channel='C')\n")
    assert slack_methods(post) == {"chat_update"} and slack_methods(by_name) == {"chat_postMessage"}
    text = ast.parse(
        '"""A docstring may say :white_check_mark: and <@U1>."""\n'
        "def f(who, n):\n"
        "    n.post(text_message(f':white_check_mark: Approved by <@{who}>'))\n"
        "    raise Refusal('You cannot do this now.')\n"
        "    key = f'arn:aws:iam::{who}:role/x'  # not an emoji\n"
    )
    assert Counter(user_text(text)) == Counter(
        ["emoji :white_check_mark:", "mention <@", "sentence to text_message", "sentence to Refusal"]
    )
    rule = ast.parse(
        '"""Docstrings may say anything at all."""\n'
        "def f(cidr):\n"
        "    if not cidr:\n"
        "        raise ValueError(f'Not a CIDR block: {cidr}')\n"
        "    notes = [f'Use VPC CIDR {cidr} instead.']\n"
        "    return Conflict(kind=CIDR, message='Every candidate overlaps a VPC.', key='vpc_cidr_block')\n"
    )
    assert sorted(sentences(rule)) == ["sentence at line 5", "sentence at line 6"]
