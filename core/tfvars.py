"""Terraform variable files for a deployment: render HCL literals, edit a tfvars template in place,
check the result against the repository's `variables.tf`, and render the tfbackend.

Pure: text in, text or models out. Reading goes through python-hcl2 in its quote-keeping mode and
decodes strings here, so what the checks see is what Terraform would see (python-hcl2 keeps `$${`
and `%%{` as written; Terraform turns them into `${` and `%{`).

Templates live in the repository's top-level `templates/` directory (Jinja2, StrictUndefined,
autoescape off; every value goes through `hcl_literal`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import hcl2
import jinja2
from lark import Token, Tree
from pydantic import BaseModel, ConfigDict

from core import validation
from core.models import DeploymentRequest
from core.sizes import SetupSize, size_profile

PLACEHOLDER = "CHANGE_ME_PLEASE"
BOT_MARKER_COMMENT = "# Set by ecs-deploy-bot"

# Variables the bot fills from the request; a placeholder left in one of them is the bot's fault.
BOT_OWNED_VARIABLES = (
    "account_id",
    "region",
    "application",
    "environment",
    "vpc_cidr_block",
    "additional_tags",
)

# Human labels for values only the requester can give (asked for in the Slack thread).
USER_VALUE_LABELS: dict[str, tuple[str, str]] = {
    "sns_monitoring_recepients_email_list": (
        "Alarm notification emails",
        "One or more email addresses that receive the monitoring alarms (SNS).",
    ),
    "route53_dns_name": (
        "Base DNS domain",
        "The Route53 domain the services are published under, e.g. example.com.",
    ),
    "route53_existing_certificate_arn": (
        "ACM certificate ARN for the load balancer",
        "An ACM certificate ARN in the deployment's region.",
    ),
    "route53_existing_cloudfront_certificate_arn": (
        "ACM certificate ARN for CloudFront",
        "An ACM certificate ARN in us-east-1.",
    ),
    "bastion_ssh_key_name": ("Bastion SSH key pair", "The name of an existing EC2 key pair."),
}

SNS_EMAILS = "sns_monitoring_recepients_email_list"
TFBACKEND_KEYS = ("bucket", "key", "region", "encrypt", "dynamodb_table")

# poc-idp's per-container validation (poc-idp-inputs §5).
CONTAINER_PAIRS: dict[int, tuple[int, ...]] = {
    256: (512, 1024),
    512: (1024, 2048),
    1024: (2048, 3072, 4096),
    2048: tuple(range(4096, 8192 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
}
# AWS Fargate task sizes (the sum over the containers must be one of these).
TASK_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
KEYWORDS = frozenset({"true", "false", "null", "for", "in", "if", "endif", "endfor", "else"})
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


class TfvarsError(ValueError):
    """A tfvars/tfbackend text that cannot be read, or an edit whose result does not read back."""


@dataclass(frozen=True)
class HclExpression:
    """A non-literal expression found where a tfvars file needs a literal (e.g. `var.x`, `"${a}"`)."""

    source: str


# --------------------------------------------------------------------------------------------
# Writing: Python value -> HCL literal
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Reading: HCL text -> Python values, decoded like Terraform does
# --------------------------------------------------------------------------------------------

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


def _decode(value: object) -> Any:
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            decoded = _decode_template(value[1:-1])
            return HclExpression(value) if decoded is None else decoded
        number = re.fullmatch(r"\$\{(-?[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+)\}", value)
        if number:  # python-hcl2 keeps scientific notation as an expression
            return float(number.group(1))
        return HclExpression(value[2:-1] if value.startswith("${") and value.endswith("}") else value)
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if value.get("__is_block__"):
            raise TfvarsError("blocks are not allowed in a variables file")
        mapping: dict[str, Any] = {}
        for key, item in value.items():
            name = _decode(key) if key.startswith('"') else key
            if not isinstance(name, str):
                raise TfvarsError(f"map key {key} is an expression, not a literal")
            mapping[name] = _decode(item)
        return mapping
    return value


def _parse_error(error: Exception) -> str:
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
        raise TfvarsError(f"not valid HCL ({_parse_error(error)})") from error
    decoded = _decode(raw)
    assert isinstance(decoded, dict)
    return decoded


def _normalise(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Editing a template in place
# --------------------------------------------------------------------------------------------


def _attribute_spans(text: str) -> dict[str, tuple[int, int]]:
    """Source span of each top-level attribute's value expression, from python-hcl2's parse tree."""
    try:
        tree = hcl2.parses_to_tree(text)
    except Exception as error:
        raise TfvarsError(f"the template is not valid HCL ({_parse_error(error)})") from error
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


def values_for_request(
    request: DeploymentRequest, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The tfvars values a request decides, plus those decided by earlier steps (`extra` wins)."""
    values: dict[str, object] = {
        "account_id": request.account_id,
        "region": request.region,
        "application": request.application,
        "environment": request.environment,
        "additional_tags": dict(request.additional_tags),
        "vpc_cidr_block": request.vpc_cidr_block,
    }
    values.update(extra or {})
    return values


# --------------------------------------------------------------------------------------------
# Variable declarations and type constraints
# --------------------------------------------------------------------------------------------


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


class VariableSpec(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

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
        raise TfvarsError(f"variables.tf is not valid HCL ({_parse_error(error)})") from error
    specs: dict[str, VariableSpec] = {}
    for block in parsed.get("variable", []):
        for raw_name, body in block.items():
            name = raw_name.strip('"')
            type_text = body.get("type")
            var_type = parse_type(type_text) if isinstance(type_text, str) else ANY
            default = _decode(body["default"]) if "default" in body else None
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


def _is_number(value: object) -> bool:
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


def _child(path: str, key: str | int) -> str:
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
        if not _is_number(value):
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
            check_type(item, expected.element, _child(path, index), errors, warnings)
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
                check_type(value[name], attr_type, _child(path, name), errors, warnings)
            elif not optional:
                errors.append(f"{path}: the attribute {name!r} is required.")
        for name in value:
            if name not in expected.attributes:
                close = difflib.get_close_matches(name, list(expected.attributes), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                warnings.append(
                    f"{_child(path, name)} is not part of the declared type; Terraform ignores it{hint}."
                )
    elif kind == "tuple":
        if not isinstance(value, list) or len(value) != len(expected.elements):
            errors.append(problem)
            return
        for index, (item, item_type) in enumerate(zip(value, expected.elements, strict=True)):
            check_type(item, item_type, _child(path, index), errors, warnings)


# --------------------------------------------------------------------------------------------
# Validation of a generated tfvars
# --------------------------------------------------------------------------------------------


class MissingValue(BaseModel):
    """A value only the requester can give; the bot asks for it in the thread."""

    model_config = ConfigDict(frozen=True)

    variable: str
    label: str
    hint: str
    paths: tuple[str, ...] = ()


class TfvarsValidation(BaseModel):
    model_config = ConfigDict(frozen=True)

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    missing_user_values: tuple[MissingValue, ...] = ()
    service_count: int = 0

    @property
    def ok(self) -> bool:
        """No errors (values may still be missing from the requester)."""
        return not self.errors

    @property
    def ready(self) -> bool:
        """Nothing wrong and nothing missing: ready to plan."""
        return self.ok and not self.missing_user_values


def _placeholder_paths(value: object, path: str) -> list[str]:
    if isinstance(value, str):
        return [path] if PLACEHOLDER in value else []
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _placeholder_paths(item, _child(path, i))]
    if isinstance(value, dict):
        found = [p for k, item in value.items() for p in _placeholder_paths(item, f'{path}["{k}"]')]
        return found + [f"{path} (key {k!r})" for k in value if PLACEHOLDER in k]
    return []


def _missing(name: str, paths: Iterable[str] = ()) -> MissingValue:
    label, hint = USER_VALUE_LABELS.get(name, (name.replace("_", " ").capitalize(), f"A value for {name}."))
    return MissingValue(variable=name, label=label, hint=hint, paths=tuple(paths))


def _pairs_text(table: Mapping[int, tuple[int, ...]], cpu: int) -> str:
    options = table[cpu]
    if len(options) > 3:
        step = options[1] - options[0]
        return f"{options[0]}-{options[-1]} in steps of {step}"
    return ", ".join(str(m) for m in options)


def fargate_problems(service: str, definition: object) -> list[str]:
    """Per-container pairs (poc-idp's rule) and the summed task size (AWS's rule) of one service."""
    if not isinstance(definition, dict) or not isinstance(definition.get("container_definitions"), list):
        return []
    problems: list[str] = []
    total_cpu = total_memory = 0
    complete = True
    for index, container in enumerate(definition["container_definitions"]):
        if not isinstance(container, dict):
            complete = False
            continue
        name = container.get("name") if isinstance(container.get("name"), str) else f"#{index + 1}"
        cpu, memory = container.get("cpu"), container.get("memory")
        if not (_is_number(cpu) and _is_number(memory)):
            complete = False
            continue
        cpu_n, memory_n = float(cpu), float(memory)  # type: ignore[arg-type]
        where = f'ecs_services["{service}"] container "{name}"'
        if not (cpu_n.is_integer() and memory_n.is_integer()):
            problems.append(f"{where}: cpu and memory must be whole numbers (got {cpu}/{memory}).")
            complete = False
            continue
        c, m = int(cpu_n), int(memory_n)
        total_cpu, total_memory = total_cpu + c, total_memory + m
        if c not in CONTAINER_PAIRS:
            problems.append(
                f"{where}: cpu {c} is not a Fargate cpu value (use {', '.join(map(str, CONTAINER_PAIRS))})."
            )
        elif m not in CONTAINER_PAIRS[c]:
            problems.append(
                f"{where}: cpu {c} with memory {m} is not a valid Fargate pair"
                f" (with cpu {c} use memory {_pairs_text(CONTAINER_PAIRS, c)})."
            )
    containers = definition["container_definitions"]
    if complete and containers and not problems and total_memory not in TASK_SIZES.get(total_cpu, ()):
        fix = (
            f"cpu {total_cpu} takes memory {_pairs_text(TASK_SIZES, total_cpu)}"
            if total_cpu in TASK_SIZES
            else f"the task cpu must be one of {', '.join(map(str, TASK_SIZES))}"
        )
        problems.append(
            f'ecs_services["{service}"]: the task size (sum over its {len(containers)} containers) is'
            f" cpu {total_cpu} / memory {total_memory}, which is not a Fargate task size ({fix})."
        )
    return problems


def _service_problems(services: dict[str, Any], size: SetupSize) -> list[str]:
    problems: list[str] = []
    profile = size_profile(size)
    if len(services) > profile.max_services:
        problems.append(
            f"ecs_services defines {len(services)} services; a {profile.title.lower()} setup takes at most"
            f" {profile.max_services} ({profile.services_hint}). Choose a larger size or fewer services."
        )
    paths: dict[str, str] = {}
    for name, definition in services.items():
        problems.extend(fargate_problems(name, definition))
        alb_path = definition.get("alb_path") if isinstance(definition, dict) else None
        if isinstance(alb_path, str):
            if alb_path in paths:
                problems.append(
                    f'ecs_services["{name}"]: alb_path {alb_path!r} is already used by "{paths[alb_path]}".'
                )
            paths.setdefault(alb_path, name)
    return problems


def validate_tfvars(tfvars_text: str, variables_tf_text: str, size: SetupSize | str) -> TfvarsValidation:
    """Check a generated tfvars against the repository's variables and the size's limits.

    Errors: unreadable text, placeholders in values the bot sets, undeclared variables, required
    variables not set, type mismatches, invalid Fargate sizes, too many services for the size.
    Values only the requester can give (placeholders elsewhere, an empty alarm email list) are
    listed in `missing_user_values` instead.
    """
    size = SetupSize(size)
    try:
        values = read_tfvars(tfvars_text)
    except TfvarsError as error:
        return TfvarsValidation(errors=(f"The tfvars file cannot be read: {error}.",))
    try:
        variables = parse_variables(variables_tf_text)
    except TfvarsError as error:
        return TfvarsValidation(errors=(f"The repository's variables cannot be read: {error}.",))

    errors: list[str] = []
    warnings: list[str] = []
    missing: list[MissingValue] = []
    for name, value in values.items():
        paths = _placeholder_paths(value, name)
        if not paths:
            continue
        if name in BOT_OWNED_VARIABLES:
            errors.append(
                f"{name} still holds the {PLACEHOLDER} placeholder; it should come from the request."
            )
        else:
            missing.append(_missing(name, paths))
    if SNS_EMAILS in variables and not any(m.variable == SNS_EMAILS for m in missing):
        emails = values.get(SNS_EMAILS, variables[SNS_EMAILS].default)
        if not emails:
            missing.append(_missing(SNS_EMAILS))

    for name, value in values.items():
        spec = variables.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(variables), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            errors.append(f"{name} is set, but variables.tf declares no variable {name!r}.{hint}")
            continue
        check_type(value, spec.type, name, errors, warnings)
    for name, spec in variables.items():
        if spec.required and name not in values:
            errors.append(f"{name} has no default in variables.tf and must be set.")

    services = values.get("ecs_services", {})
    service_count = 0
    if isinstance(services, dict):
        service_count = len(services)
        errors.extend(_service_problems(services, size))
        if not services:
            warnings.append("ecs_services is empty: no ECS service will be deployed.")
    return TfvarsValidation(
        errors=tuple(errors),
        warnings=tuple(warnings),
        missing_user_values=tuple(missing),
        service_count=service_count,
    )


# --------------------------------------------------------------------------------------------
# Diff for the thread
# --------------------------------------------------------------------------------------------


class ValueChange(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    variable: str
    kind: Literal["changed", "added", "removed"]
    before: Any = None
    after: Any = None

    def describe(self, limit: int = 60) -> str:
        if self.kind == "added":
            return f"{self.variable} = {compact_literal(self.after, limit)} (added)"
        if self.kind == "removed":
            return f"{self.variable} removed (was {compact_literal(self.before, limit)})"
        return (
            f"{self.variable}: {compact_literal(self.before, limit)} → {compact_literal(self.after, limit)}"
        )


def diff_values(template_text: str, generated_text: str) -> list[ValueChange]:
    """Top-level values that differ between a template and the generated file, in file order."""
    before, after = read_tfvars(template_text), read_tfvars(generated_text)
    changes: list[ValueChange] = []
    for name, value in after.items():
        if name not in before:
            changes.append(ValueChange(variable=name, kind="added", after=value))
        elif before[name] != value:
            changes.append(ValueChange(variable=name, kind="changed", before=before[name], after=value))
    changes.extend(
        ValueChange(variable=name, kind="removed", before=value)
        for name, value in before.items()
        if name not in after
    )
    return changes


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


def templates_dir() -> Path:
    return TEMPLATES_DIR


def _hcl_filter(value: object) -> str:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming the missing value
    return hcl_literal(value)


@cache
def _environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["hcl"] = _hcl_filter
    return env


def render_template(name: str, context: Mapping[str, object]) -> str:
    return _environment(templates_dir()).get_template(name).render(**context)


def fallback_template_name(size: SetupSize | str) -> str:
    return f"tfvars/example-{SetupSize(size).value}-setup.tfvars.j2"


def render_fallback_tfvars(size: SetupSize | str, values: Mapping[str, object] | None = None) -> str:
    """The bundled per-size template (poc-idp-inputs §3), for a repository without a sample.

    Without `values` the request fields are CHANGE_ME_PLEASE placeholders, like the repository's
    samples, so `apply_values` and `diff_values` treat both sources alike.
    """
    context: dict[str, object] = {
        "account_id": PLACEHOLDER,
        "region": PLACEHOLDER,
        "application": PLACEHOLDER,
        "environment": PLACEHOLDER,
        "vpc_cidr_block": validation.DEFAULT_VPC_CIDR,
        "additional_tags": {},
    }
    context.update({k: v for k, v in (values or {}).items() if k in context})
    return render_template(fallback_template_name(size), context)


def render_tfbackend(request: DeploymentRequest) -> str:
    """The `tfbackends/{file_stem}.tfbackend` text: bucket, key, region, encrypt, dynamodb_table.

    Carries no credentials (they come from the runner's environment). Re-read as a check.
    """
    expected: dict[str, object] = {
        "bucket": request.state_bucket,
        "key": request.state_key,
        "region": request.region,
        "encrypt": True,
        "dynamodb_table": request.lock_table,
    }
    text = render_template("backend.tfbackend.j2", expected)
    if read_tfvars(text) != expected:
        raise TfvarsError("the rendered tfbackend does not read back as the request's backend settings")
    return text
