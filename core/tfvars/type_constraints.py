"""Terraform type constraints: the `variable` blocks of a `variables.tf`, their types parsed, and a
structural check of a decoded value against a type with Terraform's own conversions.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import hcl2
from pydantic import ConfigDict

from core.tfvars.literals import IDENTIFIER, compact_literal
from core.tfvars.reading import HclExpression, TfvarsError, decode_value, describe_parse_error
from core.values import Value


@dataclass(frozen=True)
class TfType:
    """A Terraform type constraint: string/number/bool/any, list/set/map(T), object({...}), tuple([...])."""

    kind: str
    element: TfType | None = None
    attributes: dict[str, tuple[TfType, bool]] = field(default_factory=dict)  # name -> (type, optional)
    elements: tuple[TfType, ...] = ()

    def __str__(self) -> str:
        if self.element is not None:
            return f"{self.kind}({self.element})"
        if self.kind == "object":
            return "object"
        if self.kind == "tuple":
            return "tuple([" + ", ".join(str(e) for e in self.elements) + "])"
        return self.kind


ANY = TfType("any")
_TOKEN = re.compile(
    r'\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_.-]*)|(-?[0-9][0-9.eE+-]*)|([(){}\[\]=,:]))'
)


class _TypeParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                if text[position:].strip() == "":
                    break
                raise TfvarsError(f"cannot read the type expression {text!r}")
            self.tokens.append(next(group for group in match.groups() if group is not None))
            position = match.end()
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise TfvarsError(f"unexpected end or token in a type expression (wanted {expected!r})")
        self.index += 1
        return token

    def skip_value(self) -> None:
        depth = 0
        while (token := self.peek()) is not None:
            if token in "([{":
                depth += 1
            elif token in ")]}":
                if depth == 0:
                    return
                depth -= 1
            self.index += 1

    def parse(self) -> TfType:
        name = self.take()
        if name in ("string", "number", "bool", "any"):
            return TfType(name)
        if name in ("list", "set", "map"):
            self.take("(")
            element = self.parse()
            self.take(")")
            return TfType(name, element=element)
        if name == "object":
            self.take("(")
            self.take("{")
            attributes: dict[str, tuple[TfType, bool]] = {}
            while self.peek() not in ("}", None):
                key = self.take().strip('"')
                self.take("=") if self.peek() == "=" else self.take(":")
                optional = self.peek() == "optional"
                if optional:
                    self.take()
                    self.take("(")
                    attr_type = self.parse()
                    if self.peek() == ",":
                        self.take()
                        self.skip_value()
                    self.take(")")
                else:
                    attr_type = self.parse()
                attributes[key] = (attr_type, optional)
                if self.peek() == ",":
                    self.take()
            self.take("}")
            self.take(")")
            return TfType("object", attributes=attributes)
        if name == "tuple":
            self.take("(")
            self.take("[")
            elements: list[TfType] = []
            while self.peek() not in ("]", None):
                elements.append(self.parse())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            self.take(")")
            return TfType("tuple", elements=tuple(elements))
        raise TfvarsError(f"unknown type {name!r}")


def parse_type(expression: str) -> TfType:
    """Parse a type constraint as python-hcl2 serialises it (`string` or `${map(object({...}))}`)."""
    text = expression.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    parser = _TypeParser(text)
    result = parser.parse()
    if parser.peek() is not None:
        raise TfvarsError(f"unexpected {parser.peek()!r} after a type expression")
    return result


class VariableSpec(Value):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    type: TfType
    required: bool
    default: Any = None


def parse_variables(variables_tf_text: str) -> dict[str, VariableSpec]:
    """The `variable` blocks of a .tf text. Quotes are kept while parsing, because with stripped
    quotes `type = string` and `default = "string"` read the same."""
    try:
        parsed = hcl2.loads(
            variables_tf_text, serialization_options=hcl2.SerializationOptions(with_comments=False)
        )
    except Exception as error:
        raise TfvarsError(f"variables.tf is not valid HCL ({describe_parse_error(error)})") from error
    specs: dict[str, VariableSpec] = {}
    for block in parsed.get("variable", []):
        for raw_name, body in block.items():
            name = raw_name.strip('"')
            type_text = body.get("type")
            var_type = parse_type(type_text) if isinstance(type_text, str) else ANY
            default = decode_value(body["default"]) if "default" in body else None
            specs[name] = VariableSpec(
                name=name, type=var_type, required="default" not in body, default=default
            )
    return specs


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a bool ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({compact_literal(value, 30)})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a map/object"
    return type(value).__name__


def is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if IDENTIFIER.fullmatch(key) and "-" not in key else f'{path}["{key}"]'


def check_type(value: object, expected: TfType, path: str, errors: list[str], warnings: list[str]) -> None:
    """Structural check of a decoded value against a type constraint, with Terraform's conversions
    (numbers/bools to string, numeric strings to number, "true"/"false" to bool)."""
    if value is None or expected.kind == "any":
        if isinstance(value, HclExpression):
            errors.append(
                f"{path}: `{value.source}` is an expression; a tfvars file takes literal values only."
            )
        return
    if isinstance(value, HclExpression):
        errors.append(f"{path}: `{value.source}` is an expression; a tfvars file takes literal values only.")
        return
    problem = f"{path}: {expected} required, got {_describe(value)}."
    kind = expected.kind
    if kind == "string":
        if not isinstance(value, str | int | float):
            errors.append(problem)
    elif kind == "number":
        if not is_number(value):
            errors.append(problem)
    elif kind == "bool":
        if not (isinstance(value, bool) or value in ("true", "false")):
            errors.append(problem)
    elif kind in ("list", "set"):
        if not isinstance(value, list):
            errors.append(problem)
            return
        assert expected.element is not None
        for index, item in enumerate(value):
            check_type(item, expected.element, child_path(path, index), errors, warnings)
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(problem)
            return
        assert expected.element is not None
        for key, item in value.items():
            check_type(item, expected.element, f'{path}["{key}"]', errors, warnings)
    elif kind == "object":
        if not isinstance(value, dict):
            errors.append(problem)
            return
        for name, (attr_type, optional) in expected.attributes.items():
            if name in value:
                check_type(value[name], attr_type, child_path(path, name), errors, warnings)
            elif not optional:
                errors.append(f"{path}: the attribute {name!r} is required.")
        for name in value:
            if name not in expected.attributes:
                close = difflib.get_close_matches(name, list(expected.attributes), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                warnings.append(
                    f"{child_path(path, name)} is not part of the declared type; Terraform ignores it{hint}."
                )
    elif kind == "tuple":
        if not isinstance(value, list) or len(value) != len(expected.elements):
            errors.append(problem)
            return
        for index, (item, item_type) in enumerate(zip(value, expected.elements, strict=True)):
            check_type(item, item_type, child_path(path, index), errors, warnings)
