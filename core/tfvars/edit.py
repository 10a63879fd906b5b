"""Editing a tfvars template in place: set top-level attributes, keep every comment and the layout.

Each attribute's value expression is found through python-hcl2's parse tree (which records its source
span) and replaced where it stands; the result is re-read and every value must read back as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import hcl2
from lark import Token, Tree

from core.tfvars.literals import IDENTIFIER, hcl_literal
from core.tfvars.reading import TfvarsError, describe_parse_error, read_tfvars

BOT_MARKER_COMMENT = "# Set by ecs-deploy-bot"


def _normalise(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def _attribute_spans(text: str) -> dict[str, tuple[int, int]]:
    """Source span of each top-level attribute's value expression, from python-hcl2's parse tree."""
    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as error:
        raise TfvarsError(f"the template is not valid HCL ({describe_parse_error(error)})") from error
    spans: dict[str, tuple[int, int]] = {}
    body = next((child for child in tree.children if isinstance(child, Tree) and child.data == "body"), None)
    for node in body.children if body is not None else ():
        if not (isinstance(node, Tree) and node.data == "attribute"):
            continue
        parts = [child for child in node.children if isinstance(child, Tree)]
        identifier, expression = parts[0], parts[-1]
        name = "".join(str(t) for t in identifier.scan_values(lambda v: isinstance(v, Token)))
        spans[name] = (expression.meta.start_pos, expression.meta.end_pos)
    return spans


def apply_values(template_text: str, values: Mapping[str, object]) -> str:
    """Set top-level attributes of a tfvars template, keeping every comment and the layout.

    Each existing attribute's value expression is replaced where it stands (found through
    python-hcl2's parse tree, which records each expression's source span), so comments, blank
    lines and alignment stay byte for byte. Attributes the template lacks are appended at the end
    under `# Set by ecs-deploy-bot`. The result is re-read and every value must read back equal.
    """
    for name in values:
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"'{name}' is not a valid Terraform variable name")
    spans = _attribute_spans(template_text)
    result = template_text
    # Replace from the end so earlier offsets stay valid.
    for name, (start, end) in sorted(spans.items(), key=lambda item: item[1][0], reverse=True):
        if name in values:
            line = result[:start].rsplit("\n", 1)[-1]
            indent = len(line) - len(line.lstrip())
            literal = hcl_literal(values[name], indent=indent)
            rest = result[end:]
            # Keep an aligned trailing comment in its column when the value is a one-liner.
            gap = re.match(r"[ \t]+(?=#|//)", rest)
            if gap and "\n" not in literal and "\t" not in gap.group():
                width = max(1, (end - start) + len(gap.group()) - len(literal))
                rest = " " * width + rest[gap.end() :]
            result = result[:start] + literal + rest
    appended = [name for name in values if name not in spans]
    if appended:
        lines = [f"{name} = {hcl_literal(values[name])}" for name in appended]
        already_marked = BOT_MARKER_COMMENT in result
        head = result.rstrip("\n") + "\n"
        result = head + ("" if already_marked else "\n" + BOT_MARKER_COMMENT + "\n") + "\n".join(lines) + "\n"
    written = read_tfvars(result)
    for name, value in values.items():
        if written.get(name) != _normalise(value):
            raise TfvarsError(f"{name} does not read back as written")
    return result
