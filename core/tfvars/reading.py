"""Reading HCL: the top-level attributes of a tfvars (or tfbackend) text as Python values.

Reading goes through python-hcl2 in its quote-keeping mode and decodes strings here, so what the
checks see is what Terraform would see (python-hcl2 keeps `$${` and `%%{` as written; Terraform
turns them into `${` and `%{`). A non-literal expression comes back as an `HclExpression`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hcl2


class TfvarsError(ValueError):
    """A tfvars/tfbackend text that cannot be read, or an edit whose result does not read back."""


@dataclass(frozen=True)
class HclExpression:
    """A non-literal expression found where a tfvars file needs a literal (e.g. `var.x`, `"${a}"`)."""

    source: str


_DECODE_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _decode_template(raw: str) -> str | None:
    """Decode the inside of a quoted HCL string; None when it contains an interpolation or directive."""
    out: list[str] = []
    index, length = 0, len(raw)
    while index < length:
        char = raw[index]
        if char == "\\" and index + 1 < length:
            marker = raw[index + 1]
            if marker in _DECODE_SIMPLE:
                out.append(_DECODE_SIMPLE[marker])
                index += 2
                continue
            width = {"u": 4, "U": 8}.get(marker)
            digits = raw[index + 2 : index + 2 + width] if width else ""
            if width and re.fullmatch(r"[0-9A-Fa-f]+", digits or "-") and len(digits) == width:
                out.append(chr(int(digits, 16)))
                index += 2 + width
                continue
            out.append(char)
            index += 1
            continue
        if raw.startswith(("$${", "%%{"), index):
            out.append(char + "{")
            index += 3
            continue
        if raw.startswith(("${", "%{"), index):
            return None
        out.append(char)
        index += 1
    return "".join(out)


def decode_value(value: object) -> Any:
    """A value as python-hcl2 gives it (quotes kept), decoded as Terraform reads it; expressions become
    `HclExpression`."""
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            decoded = _decode_template(value[1:-1])
            return HclExpression(value) if decoded is None else decoded
        number = re.fullmatch(r"\$\{(-?[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+)\}", value)
        if number:  # python-hcl2 keeps scientific notation as an expression
            return float(number.group(1))
        return HclExpression(value[2:-1] if value.startswith("${") and value.endswith("}") else value)
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if isinstance(value, dict):
        if value.get("__is_block__"):
            raise TfvarsError("blocks are not allowed in a variables file")
        mapping: dict[str, Any] = {}
        for key, item in value.items():
            name = decode_value(key) if key.startswith('"') else key
            if not isinstance(name, str):
                raise TfvarsError(f"map key {key} is an expression, not a literal")
            mapping[name] = decode_value(item)
        return mapping
    return value


def describe_parse_error(error: Exception) -> str:
    """Where (line, column) and what of a python-hcl2 parse error, in one line."""
    line = getattr(error, "line", None)
    column = getattr(error, "column", None)
    where = f"line {line}, column {column}: " if line else ""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return where + first


def read_tfvars(text: str) -> dict[str, Any]:
    """Top-level attributes of a tfvars (or tfbackend) text with strings decoded as Terraform does.

    Non-literal expressions come back as `HclExpression`. Raises TfvarsError if the text does not parse.
    """
    options = hcl2.SerializationOptions(with_comments=False, preserve_heredocs=False)
    try:
        raw = hcl2.loads(text, serialization_options=options)
    except Exception as error:  # lark raises several unrelated exception types
        raise TfvarsError(f"not valid HCL ({describe_parse_error(error)})") from error
    decoded = decode_value(raw)
    assert isinstance(decoded, dict)
    return decoded
