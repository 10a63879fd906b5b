"""From what the worker holds (the bytes of `terraform show -json`, text, or an already parsed
object) to the records the rules read, or a `PlanParseError` that tells a person what is wrong.

Two ways in, one result:

* the fast way: msgspec decodes UTF-8 bytes (or text) straight into core.plan.document's records,
  skipping what the summary never reads. It is taken only when it can give exactly what the exact
  way would; it gives up on anything unusual (another encoding, invalid JSON, a number or nesting
  msgspec refuses, an entry of the wrong shape) instead of explaining it;
* the exact way: the standard library's json, then checks that name the problem. Every error message
  comes from here, so they are the same whichever way a plan arrives.
"""

from __future__ import annotations

import codecs
import gc
import json
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from core.plan.document import PlanDocument, PlanInput, json_type, plan_input_from_mapping
from core.plan.errors import PlanParseError
from core.plan.model import plural
from core.plan.values import short_value

SUPPORTED_FORMAT_MAJORS = frozenset({0, 1})
_UTF8_CHECK_CHUNK = 1 << 20
_DECODER = msgspec.json.Decoder(PlanDocument)


def read_plan(plan: bytes | str | Mapping[str, Any]) -> PlanInput:
    """The plan's records for the rules; anything that is not a usable plan raises `PlanParseError`."""
    if isinstance(plan, Mapping):
        check_is_plan(plan)
        return plan_input_from_mapping(plan)
    document = decode_document(plan)
    if document is not None:
        _check_plan_keys(document.has, document.format_version)
        return document.plan_input()
    parsed = load_plan_json(plan)
    check_is_plan(parsed)
    return plan_input_from_mapping(parsed)


def decode_document(raw: Any) -> PlanDocument | None:
    """The plan's records straight from UTF-8 JSON, or None to leave the plan to the exact way."""
    data: Any
    if isinstance(raw, bytes | bytearray):
        codec = json.detect_encoding(raw)
        if codec not in ("utf-8", "utf-8-sig") or not _is_utf8(raw):
            return None
        data = memoryview(raw)[3:] if codec == "utf-8-sig" else raw
    elif isinstance(raw, str):
        data = raw.removeprefix("\ufeff")
    else:
        return None
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        return None


def _is_utf8(raw: bytes | bytearray) -> bool:
    """msgspec does not check the text it skips, so check all of it (in chunks: no full copy)."""
    if raw.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    try:
        for start in range(0, len(view), _UTF8_CHECK_CHUNK):
            decoder.decode(view[start : start + _UTF8_CHECK_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _loads_without_gc(raw: str) -> Any:
    """json.loads of a large plan allocates millions of containers and nothing cyclic; the cyclic
    garbage collector running during the parse roughly doubles its time (bench/plan_summary.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(raw)
    finally:
        if enabled:
            gc.enable()


def decode_plan_text(raw: bytes) -> str:
    """Plan JSON as text in any encoding JSON allows (RFC 8259 §8.1 and Python's json module): UTF-8
    with or without a BOM, or UTF-16/32 as editors and PowerShell's `>` redirection save it."""
    codec = json.detect_encoding(raw)
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as error:
        if codec in ("utf-8", "utf-8-sig"):
            raise PlanParseError(
                "The plan is not UTF-8 or UTF-16 text, so it is not `terraform show -json` output."
            ) from error
        raise PlanParseError(
            f"The plan looks like {codec.upper()} text but does not decode as such."
        ) from error


def load_plan_json(raw: bytes | str) -> Any:
    """Parse JSON text, turning every way it can fail into a `PlanParseError` a person understands."""
    if isinstance(raw, bytes | bytearray):
        raw = decode_plan_text(bytes(raw))
    if not isinstance(raw, str):
        raise PlanParseError(f"Expected plan JSON as text or bytes, got {type(raw).__name__}.")
    raw = raw.removeprefix("\ufeff")
    if not raw.strip():
        raise PlanParseError("The plan is empty: `terraform show -json <planfile>` printed nothing.")
    try:
        return _loads_without_gc(raw)
    except json.JSONDecodeError as error:
        if not raw[error.pos :].strip():
            raise PlanParseError(
                f"The plan JSON ends early (after {error.pos} characters): it looks truncated."
            ) from error
        _refuse_text_before_json(raw)
        raise PlanParseError(
            f"The plan is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
        ) from error
    except RecursionError as error:
        raise PlanParseError("The plan JSON is nested too deeply to read.") from error


def _refuse_text_before_json(raw: str) -> None:
    """A wrapper (setup-terraform's, a CI logger) that prints lines before Terraform's JSON gets a
    message that names the cause instead of a JSON syntax error at line 1."""
    lines = raw.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if index and line.lstrip().startswith("{"):
            try:
                json.loads("".join(lines[index:]))
            except (json.JSONDecodeError, RecursionError):
                return
            raise PlanParseError(
                f"{plural(index, 'line')} of non-JSON text precede the plan JSON "
                f"(the first: {short_value(lines[0].strip(), 60)}): is TERRAFORM_BIN a wrapper?"
            )


def check_is_plan(document: Any) -> None:
    """Tell a plan from the other JSON Terraform prints (state, raw state files) or any other JSON."""
    if not isinstance(document, Mapping):
        raise PlanParseError(
            f"The plan JSON must be an object, got {json_type(document)}: is this `terraform show -json` output?"
        )
    _check_plan_keys(document.__contains__, document.get("format_version"))


def _check_plan_keys(has: Callable[[str], bool], format_version: Any) -> None:
    if has("lineage") or has("serial") or (has("version") and not has("format_version")):
        raise PlanParseError(
            "This is a Terraform state file, not a plan: run `terraform show -json <planfile>` on a saved plan."
        )
    if not isinstance(format_version, str):
        raise PlanParseError("The JSON has no `format_version`, so it is not `terraform show -json` output.")
    if _format_major(format_version) not in SUPPORTED_FORMAT_MAJORS:
        raise PlanParseError(
            f"Plan format_version {format_version!r} is newer than this bot understands (0.x–1.x)."
        )
    if not any(has(key) for key in ("planned_values", "resource_changes", "output_changes", "errored")):
        raise PlanParseError(
            "This JSON describes Terraform state, not a plan (no planned_values or resource_changes):"
            " run `terraform show -json` on a saved plan file."
        )


def _format_major(format_version: str) -> int | None:
    major = format_version.split(".", 1)[0]
    return int(major) if major.isdigit() else None
