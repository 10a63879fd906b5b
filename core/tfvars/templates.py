"""The bundled templates: the per-size fallback tfvars and the tfbackend.

Templates live in the repository's top-level `templates/` directory (Jinja2, StrictUndefined,
autoescape off; every value goes through `hcl_literal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import jinja2

from core import validation
from core.models import DeploymentRequest
from core.sizes import SetupSize
from core.tfvars.literals import hcl_literal
from core.tfvars.poc_idp import PLACEHOLDER
from core.tfvars.reading import TfvarsError, read_tfvars

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


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
    """The bundled per-size template (templates/tfvars/), for a repository without a sample.

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
