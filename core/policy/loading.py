"""Reading the policy file: YAML to plain data with the line of every key, the file schema, the
resolution, and every problem as a `PolicyError` naming the file, the line and the key.

The policy is a YAML file (setting ECS_DEPLOY_POLICY_FILE; annotated example in
docs/policy.example.yml). It is read once at start-up by `load_policy`; any mistake — an unknown key,
a wrong type, a malformed Slack id or role ARN, a profile named twice — stops the bot instead of
silently letting anyone in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from core.policy.access import AccessPolicy
from core.policy.errors import PolicyError
from core.policy.file_schema import ALLOWED_KEYS, EnvironmentFile, PolicyFile, ProfileFile
from core.policy.mcp_clients import MCP_CLIENT_KEYS, resolve_mcp_clients
from core.policy.resolve import Loc, check_patterns, resolve_profile

MAX_NESTING = 12
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Located:
    """Builds plain Python data from a YAML node tree, remembering the line of every key and item."""

    def __init__(self, loader: yaml.SafeLoader, source: str):
        self.loader = loader
        self.source = source
        self.lines: dict[Loc, int] = {}

    def fail(self, message: str, loc: Loc, line: int | None) -> PolicyError:
        return _error(self.source, loc, line, message)

    def build(self, node: yaml.Node, loc: Loc = (), depth: int = 0) -> Any:
        if depth > MAX_NESTING:
            raise self.fail("nested too deeply", loc, node.start_mark.line + 1)
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            raise self.fail(f"unsupported YAML tag {node.tag}", loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail("a key must be a plain name", loc, line)
                key = str(key_node.value)
                if key == "<<":
                    raise self.fail(
                        "YAML merge keys (<<) are not supported; use the defaults section", loc, line
                    )
                if key in result:
                    first = self.lines[(*loc, key)]
                    what = "profile" if loc == ("profiles",) else "key"
                    raise self.fail(
                        f"duplicate {what} '{key}' (first defined at line {first})", (*loc, key), line
                    )
                self.lines[(*loc, key)] = line
                result[key] = self.build(value_node, (*loc, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*loc, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*loc, index), depth + 1))
            return items
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            raise self.fail(f"unreadable value ({problem})", loc, node.start_mark.line + 1) from None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _error(source: str, loc: Loc, line: int | None, message: str) -> PolicyError:
    key = _dotted(loc)
    where = f"{source}:{line}" if line is not None else source
    text = f"Access policy {where}: {key}: {message}" if key else f"Access policy {where}: {message}"
    return PolicyError(text, path=source, line=line, key=key)


def _line_for(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_at(loc: Loc) -> type[BaseModel]:
    """Which file model sits at this location (for listing its allowed keys)."""
    if not loc:
        return PolicyFile
    if loc[0] == "defaults":
        rest = loc[1:]
    elif loc[0] == "profiles" and len(loc) >= 2:
        rest = loc[2:]
    else:
        return PolicyFile
    if len(rest) >= 2 and rest[0] == "environments":
        return EnvironmentFile
    return ProfileFile


def _problem(error: Mapping[str, Any]) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    if kind == "extra_forbidden":
        mcp_entry = len(loc) == 3 and loc[0] == "mcp_clients"
        allowed = MCP_CLIENT_KEYS if mcp_entry else ALLOWED_KEYS[_model_at(loc[:-1])]
        return loc, f"unknown key (allowed here: {allowed})"
    if kind == "missing":
        return loc, "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in ("string_type", "bool_type", "int_type", "list_type", "dict_type", "model_type"):
        message += f" (got {type(error.get('input')).__name__}: {error.get('input')!r})"
    return loc, message


def parse_policy(text: str, source: str = "<policy>") -> AccessPolicy:
    """Parse and validate policy text; `source` names the file in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = exc.problem or str(exc)
            if line is not None and "*" in "".join(text.splitlines()[line - 1 : line]):
                problem += ' (to mean everyone, write "*" in quotes: a bare * starts a YAML alias)'
            raise _error(source, (), line, f"not valid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise _error(source, (), None, f"not valid YAML: {exc}") from None
        if root is None:
            raise _error(source, (), None, "the file is empty; it must define profiles")
        located = _Located(loader, source)
        data = located.build(root)
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _error(source, (), 1, "the top level must be a mapping with keys version, defaults, profiles")
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as exc:
        found = [
            _error(source, loc, _line_for(located.lines, loc), msg)
            for loc, msg in map(_problem, exc.errors())
        ]
        # In file order; problems without a line (a missing key) last.
        found.sort(key=lambda e: (e.line is None, e.line or 0))
        first = found[0]
        error = PolicyError(
            "\n".join(dict.fromkeys(str(e) for e in found)), path=source, line=first.line, key=first.key
        )
        raise error from None
    if not parsed.profiles:
        raise _error(
            source, ("profiles",), _line_for(located.lines, ("profiles",)), "no profiles are defined"
        )

    def fail(loc: Loc, message: str) -> PolicyError:
        return _error(source, loc, _line_for(located.lines, loc), message)

    defaults = parsed.defaults or ProfileFile()
    check_patterns(defaults.environments, ("defaults",), fail)
    profiles = {
        name: resolve_profile(name, own or ProfileFile(), defaults, fail)
        for name, own in parsed.profiles.items()
    }
    return AccessPolicy(source=source, profiles=profiles, mcp_clients=resolve_mcp_clients(parsed.mcp_clients))


def load_policy(path: str | Path) -> AccessPolicy:
    """Read the operator's policy file. Every problem raises PolicyError naming file, line and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            f"Access policy {source}: the file does not exist (ECS_DEPLOY_POLICY_FILE).", path=source
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"Access policy {source}: cannot be read ({exc}).", path=source) from None
    return parse_policy(text, source)


def policy_from_settings(policy_file: Path | None, approver_ids: frozenset[str]) -> AccessPolicy:
    """The policy the bot runs with: the file when ECS_DEPLOY_POLICY_FILE is set, else the open default."""
    if policy_file is not None:
        return load_policy(policy_file)
    return AccessPolicy.open(approver_ids)
