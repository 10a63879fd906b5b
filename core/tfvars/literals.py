"""Writing HCL: a Python value rendered as an HCL literal expression for a tfvars file.

Strings are escaped so that no value can end its string, start an interpolation or a directive, or
add attributes; `compact_literal` is the one-line, shortened form shown in chat messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from core.tfvars.reading import HclExpression

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
KEYWORDS = frozenset({"true", "false", "null", "for", "in", "if", "endif", "endfor", "else"})

_SIMPLE_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _needs_backslash(char: str) -> bool:
    return char in _SIMPLE_ESCAPES or ord(char) < 0x20 or ord(char) == 0x7F


def _plain_escape_fits(text: str, after: int) -> bool:
    """Whether `${`/`%{` at `after - 2` can be written as HCL's `$${`/`%%{` escape.

    python-hcl2 lexes that escape as one token running to the next `}` and does not decode
    backslash escapes inside it; so use it only when a `}` follows and nothing before it needs a
    backslash. Otherwise the brace is written as `\u007b`, which Terraform reads the same way.
    """
    end = text.find("}", after)
    return end >= 0 and not any(_needs_backslash(char) for char in text[after:end])


def _quote(text: str) -> str:
    escaped: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in "$%" and text.startswith("{", index + 1):
            # `${` / `%{` would start an interpolation / a directive.
            escaped.append(char + char + "{" if _plain_escape_fits(text, index + 2) else char + "\\u007b")
            index += 2
            continue
        if char in _SIMPLE_ESCAPES:
            escaped.append(_SIMPLE_ESCAPES[char])
        elif _needs_backslash(char):
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
        index += 1
    return '"' + "".join(escaped) + '"'


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"HCL map keys must be strings, not {type(key).__name__}")
    if IDENTIFIER.fullmatch(key) and key not in KEYWORDS:
        return key
    return _quote(key)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def hcl_literal(value: object, *, indent: int = 0) -> str:
    """Render a Python value as an HCL literal expression.

    Strings are escaped so no value can end the string, start an interpolation or directive, or
    add attributes. Maps render one key per line (keys quoted unless plain identifiers); lists of
    scalars render on one line.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"HCL has no literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    pad = " " * (indent + 2)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = [f"{pad}{_key(k)} = {hcl_literal(v, indent=indent + 2)}" for k, v in value.items()]
        return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
    if isinstance(value, list | tuple):
        if all(_is_scalar(item) for item in value):
            return "[" + ", ".join(hcl_literal(item) for item in value) + "]"
        items = [f"{pad}{hcl_literal(item, indent=indent + 2)}," for item in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    raise TypeError(f"No HCL literal for a value of type {type(value).__name__}")


def _inline(value: object) -> str:
    if isinstance(value, HclExpression):
        return value.source
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    return hcl_literal(value)


def compact_literal(value: object, limit: int = 80) -> str:
    """One-line HCL rendering of a value, shortened for a chat message."""
    text = _inline(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
