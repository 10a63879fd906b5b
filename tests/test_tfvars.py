"""core.tfvars against real python-hcl2: literals, in-place edits, validation, diff, templates."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import hcl2
import jinja2
import pytest

from bot.views.tfvars import problem_texts
from core.sizes import SetupSize
from core.tfvars.diff import diff_values
from core.tfvars.edit import BOT_MARKER_COMMENT, apply_values
from core.tfvars.literals import hcl_literal
from core.tfvars.poc_idp import PLACEHOLDER, values_for_request
from core.tfvars.reading import TfvarsError, read_tfvars
from core.tfvars.templates import render_fallback_tfvars, render_template, render_tfbackend, templates_dir
from core.tfvars.type_constraints import ANY, TfType, parse_type, parse_variables
from core.tfvars.validate import validate_tfvars
from tests.test_tfrepo import TFREPO, USER_VALUES, make_request

VARIABLES_TF = (TFREPO / "variables.tf").read_text()


def sample(size: str = "small") -> str:
    return (TFREPO / "tfvars-sample" / f"example-{size}-setup.tfvars").read_text()


def generated(size: str = "small", **extra: object) -> str:
    request = make_request(SetupSize(size))
    return apply_values(sample(size), values_for_request(request, {**USER_VALUES, **extra}))


def comments(text: str) -> list[str]:
    """Every comment in a tfvars text (whole-line and trailing), whitespace-normalised."""
    found = []
    for line in text.splitlines():
        match = re.search(r"#.*$", line)
        if match:
            found.append(match.group().strip())
    return found


def terraform_value(raw: object) -> Any:
    """Independent of core.tfvars: python-hcl2's stripped value with HCL's template escapes resolved."""
    if isinstance(raw, str):
        return re.sub(r"([$%])\1\{", r"\1{", raw)
    if isinstance(raw, list):
        return [terraform_value(item) for item in raw]
    if isinstance(raw, dict):
        return {terraform_value(k): terraform_value(v) for k, v in raw.items()}
    return raw


STRIP = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False)


# -- hcl_literal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (-2.5, "-2.5"),
        ("eu-west-1", '"eu-west-1"'),
        ([], "[]"),
        ({}, "{}"),
        (["a", 1, None], '["a", 1, null]'),
        (
            {"Owner": "x", "cost center": "y", "true": "z"},
            '{\n  Owner = "x"\n  "cost center" = "y"\n  "true" = "z"\n}',
        ),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("l1\nl2\r\t", '"l1\\nl2\\r\\t"'),
        ("${var.x}", '"$${var.x}"'),
        ("%{ if x }y%{ endif }", '"%%{ if x }y%%{ endif }"'),
        ("bell\x07", '"bell\\u0007"'),
    ],
)
def test_hcl_literal(value: object, expected: str) -> None:
    assert hcl_literal(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1: "x"}, {"a": {2: 3}}])
def test_hcl_literal_refuses_what_hcl_cannot_hold(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        hcl_literal(value)


NASTY = [
    'say "hi"',
    "back\\slash\\",
    '\\"',
    '"\n}\nregion = "us-east-1',
    '" # comment',
    "${var.account_id}",
    "${",
    "$${x}",
    "$$${x}",
    "%{ if true }x%{ endif }",
    "%{",
    "100%",
    "a$",
    "}{",
    "line1\nline2\rline3\tend",
    "\\${x}",
    "\\u0041",
    "€ ünïcode ✓",
    "",
]


@pytest.mark.parametrize("value", NASTY)
def test_tag_values_cannot_break_out_of_the_file(value: str) -> None:
    tags = {"safe": "x", "nasty": value, value or "empty": "as a key"}
    text = apply_values(sample(), {"additional_tags": tags, "application": "shop"})
    raw = hcl2.loads(text, serialization_options=STRIP)
    assert set(raw) == set(read_tfvars(sample()))  # no attribute added or lost
    assert terraform_value(raw["additional_tags"]) == tags
    assert raw["application"] == "shop"
    assert read_tfvars(text)["additional_tags"] == tags


def test_random_strings_round_trip() -> None:
    rng = random.Random(20240611)
    alphabet = '"\\$%{}\n\r\t#=/ab u0'
    for _ in range(400):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        text = f"x = {hcl_literal({'k': value, value: 1})}\ny = 2\n"
        raw = hcl2.loads(text, serialization_options=STRIP)
        assert set(raw) == {"x", "y"}, repr(value)
        assert terraform_value(raw["x"]) == {"k": value, value: 1}, repr(value)


# -- apply_values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [s.value for s in SetupSize])
def test_apply_values_keeps_comments_and_layout(size: str) -> None:
    template = sample(size)
    values = values_for_request(make_request(SetupSize(size)), USER_VALUES)
    text = apply_values(template, values)
    assert comments(text) == comments(template)
    read = read_tfvars(text)
    for name, value in values.items():
        assert read[name] == value
    # Lines of attributes not set are byte-identical, in the same order.
    set_lines = {line for line in template.splitlines() if line.split(" ")[0] in values}
    untouched = [line for line in template.splitlines() if line not in set_lines]
    remaining = iter(text.splitlines())
    assert all(line in remaining for line in untouched)  # a subsequence: same text, same order
    assert "ecs_services = {" in text and "  test-nginx = {" in text
    # An aligned trailing comment stays in its column.
    line = next(line for line in text.splitlines() if line.startswith("region"))
    assert line.index("#") == next(t for t in template.splitlines() if t.startswith("region")).index("#")


def test_apply_values_appends_missing_attributes_once() -> None:
    template = sample()
    text = apply_values(template, {"region": "eu-west-1", "ecr_image_mutability": "MUTABLE"})
    assert text.startswith(template.split("region")[0])
    tail = text.split(BOT_MARKER_COMMENT, 1)[1]
    assert 'ecr_image_mutability = "MUTABLE"' in tail
    again = apply_values(text, {"ecr_image_mutability": "IMMUTABLE", "ecr_allow_forced_delete": True})
    assert again.count(BOT_MARKER_COMMENT) == 1
    read = read_tfvars(again)
    assert read["ecr_image_mutability"] == "IMMUTABLE" and read["ecr_allow_forced_delete"] is True
    assert comments(again) == [*comments(template), BOT_MARKER_COMMENT]


def test_apply_values_multiline_value_replaces_a_one_liner() -> None:
    services = {
        "api": {
            "is_alb_target": True,
            "need_ecr_repo": True,
            "alb_path": "/api",
            "container_definitions": [
                {"name": "api", "image": "x", "cpu": 256, "memory": 512, "open_ports": [8080]}
            ],
        }
    }
    text = apply_values(sample(), {"ecs_services": services, "vpc_endpoint_services": ["sts", "ecs"]})
    read = read_tfvars(text)
    assert read["ecs_services"] == services
    assert read["vpc_endpoint_services"] == ["sts", "ecs"]
    assert comments(text) == comments(sample())


@pytest.mark.parametrize("name", ["1abc", "a b", "x=1", ""])
def test_apply_values_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid Terraform variable name"):
        apply_values(sample(), {name: 1})


def test_apply_values_rejects_a_broken_template() -> None:
    with pytest.raises(TfvarsError, match="not valid HCL"):
        apply_values('region = "us-east-1\n', {"region": "eu-west-1"})


def test_values_for_request_and_extras() -> None:
    request = make_request(SetupSize.MEDIUM, vpc_cidr_block="10.2.0.0/16")
    values = values_for_request(request, {"vpc_cidr_block": "172.16.0.0/16", "docdb_create": False})
    assert values == {
        "account_id": "123456789012",
        "region": "eu-west-1",
        "application": "shop",
        "environment": "prod",
        "additional_tags": {"Owner": "Platform team", "cost-center": "42"},
        "vpc_cidr_block": "172.16.0.0/16",
        "docdb_create": False,
    }


# -- validate_tfvars -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [s.value for s in SetupSize])
def test_generated_files_validate(size: str) -> None:
    result = validate_tfvars(generated(size), VARIABLES_TF, size)
    assert result.errors == ()
    assert result.ready
    assert result.service_count == 1


def test_placeholders_split_between_bot_and_user() -> None:
    text = apply_values(sample(), {"application": PLACEHOLDER})
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert not result.ok
    assert any(
        e.startswith("application still holds the CHANGE_ME_PLEASE") for e in problem_texts(result.errors)
    )
    missing = {m.variable: m for m in result.missing_user_values}
    assert set(missing) == {"sns_monitoring_recepients_email_list", "route53_dns_name"}
    assert missing["sns_monitoring_recepients_email_list"].label == "Alarm notification emails"
    assert missing["sns_monitoring_recepients_email_list"].paths == (
        "sns_monitoring_recepients_email_list[0]",
    )
    assert missing["route53_dns_name"].label == "Base DNS domain"


def test_tag_placeholder_is_the_bots_problem() -> None:
    text = generated(additional_tags={"Owner": "CHANGE_ME_PLEASE"})
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert any(e.startswith("additional_tags still holds") for e in problem_texts(result.errors))


def test_empty_email_list_is_asked_for() -> None:
    text = generated(sns_monitoring_recepients_email_list=[])
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert result.ok and not result.ready
    assert [m.variable for m in result.missing_user_values] == ["sns_monitoring_recepients_email_list"]


def test_user_values_filled_in_clear_the_question() -> None:
    result = validate_tfvars(generated(), VARIABLES_TF, "small")
    assert result.missing_user_values == ()


def test_undeclared_variable_is_named() -> None:
    text = generated(rds_instance_cout=2)
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert any(
        "rds_instance_cout is set" in e and "'rds_instance_count'" in e for e in problem_texts(result.errors)
    )


def test_required_variable_missing() -> None:
    text = "\n".join(line for line in generated().splitlines() if not line.startswith("account_id"))
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert "account_id has no default in variables.tf and must be set." in problem_texts(result.errors)


WRONG_TYPES = [
    ({"rds_instance_count": "two"}, "rds_instance_count: number required, got a string"),
    ({"bastion_create": "yes"}, "bastion_create: bool required"),
    ({"additional_tags": ["a"]}, "additional_tags: map(string) required, got a list"),
    ({"additional_tags": {"a": ["b"]}}, 'additional_tags["a"]: string required, got a list'),
    ({"ignore_tags_keys": "AutoCreateDate"}, "ignore_tags_keys: list(string) required"),
    ({"region": {"a": 1}}, "region: string required, got a map"),
    ({"vpc_endpoint_services": [["sts"]]}, "vpc_endpoint_services[0]: string required"),
]


@pytest.mark.parametrize(("extra", "message"), WRONG_TYPES)
def test_wrong_types_are_reported(extra: dict[str, object], message: str) -> None:
    result = validate_tfvars(generated("small", **extra), VARIABLES_TF, "small")
    assert any(e.startswith(message) for e in problem_texts(result.errors)), problem_texts(result.errors)


def service(cpu: object = 256, memory: object = 512, **changes: object) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "is_alb_target": True,
        "need_ecr_repo": False,
        "container_definitions": [
            {"name": "app", "image": "nginx", "cpu": cpu, "memory": memory, "open_ports": [80]}
        ],
    }
    definition.update(changes)
    return definition


def test_wrong_types_inside_ecs_services() -> None:
    broken = service(cpu="big")
    broken["container_definitions"][0]["open_ports"] = 80
    del broken["is_alb_target"]
    broken["desired_cuont"] = 2
    result = validate_tfvars(generated(ecs_services={"api": broken}), VARIABLES_TF, "small")
    errors = "\n".join(problem_texts(result.errors))
    assert "ecs_services[\"api\"]: the attribute 'is_alb_target' is required." in errors
    assert 'ecs_services["api"].container_definitions[0].cpu: number required, got a string' in errors
    assert (
        'ecs_services["api"].container_definitions[0].open_ports: list(number) required, got a number'
        in errors
    )
    assert any("desired_cuont" in w and "'desired_count'" in w for w in problem_texts(result.warnings))


def test_terraform_conversions_are_accepted() -> None:
    text = generated(
        rds_instance_count="2",
        bastion_create="true",
        region="eu-west-1",
        ecs_services={"api": service("256", "1024")},
    )
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert result.errors == ()


def test_expressions_are_not_literals() -> None:
    text = generated().replace('region      = "eu-west-1"', "region      = var.other")
    assert "var.other" in text
    result = validate_tfvars(text, VARIABLES_TF, "small")
    assert any(e.startswith("region: `var.other` is an expression") for e in problem_texts(result.errors))


def test_unreadable_tfvars() -> None:
    result = validate_tfvars('region = "eu-west-1', VARIABLES_TF, "small")
    assert not result.ok and problem_texts(result.errors)[0].startswith("The tfvars file cannot be read")


@pytest.mark.parametrize(
    ("cpu", "memory"), [(256, 4096), (512, 512), (1024, 1024), (2048, 9216), (4096, 31744), (4096, 8000)]
)
def test_invalid_fargate_pairs(cpu: int, memory: int) -> None:
    result = validate_tfvars(generated(ecs_services={"api": service(cpu, memory)}), VARIABLES_TF, "small")
    assert any(
        e.startswith(
            f'ecs_services["api"] container "app": cpu {cpu} with memory {memory} is not a valid Fargate pair'
        )
        for e in problem_texts(result.errors)
    ), problem_texts(result.errors)


def test_unknown_fargate_cpu() -> None:
    result = validate_tfvars(generated(ecs_services={"api": service(300, 600)}), VARIABLES_TF, "small")
    assert any("cpu 300 is not a Fargate cpu value" in e for e in problem_texts(result.errors))


@pytest.mark.parametrize(
    ("cpu", "memory"), [(256, 512), (256, 1024), (512, 2048), (1024, 3072), (2048, 8192), (4096, 30720)]
)
def test_valid_fargate_pairs(cpu: int, memory: int) -> None:
    result = validate_tfvars(generated(ecs_services={"api": service(cpu, memory)}), VARIABLES_TF, "small")
    assert result.errors == ()


def sidecars(*pairs: tuple[int, int]) -> dict[str, Any]:
    definition = service()
    definition["container_definitions"] = [
        {"name": f"c{i}", "image": "nginx", "cpu": cpu, "memory": memory, "open_ports": [8000 + i]}
        for i, (cpu, memory) in enumerate(pairs)
    ]
    return definition


@pytest.mark.parametrize(
    ("pairs", "total"),
    [
        (((256, 512), (256, 1024)), "cpu 512 / memory 1536"),
        (((256, 512), (256, 512), (256, 512)), "cpu 768 / memory 1536"),
    ],
)
def test_summed_task_size_must_be_a_fargate_size(pairs: tuple[tuple[int, int], ...], total: str) -> None:
    result = validate_tfvars(generated(ecs_services={"api": sidecars(*pairs)}), VARIABLES_TF, "small")
    assert any(
        e.startswith('ecs_services["api"]: the task size') and total in e
        for e in problem_texts(result.errors)
    ), problem_texts(result.errors)


def test_summed_task_size_that_fits() -> None:
    result = validate_tfvars(
        generated(ecs_services={"api": sidecars((256, 512), (256, 512))}), VARIABLES_TF, "small"
    )
    assert result.errors == ()


@pytest.mark.parametrize(
    ("size", "count", "ok"),
    [
        ("small", 5, True),
        ("small", 6, False),
        ("medium", 13, True),
        ("medium", 14, False),
        ("large", 23, True),
        ("large", 24, False),
    ],
)
def test_service_count_fits_the_size(size: str, count: int, ok: bool) -> None:
    services = {f"svc-{i}": service(alb_path=f"/s{i}") for i in range(count)}
    result = validate_tfvars(generated(size, ecs_services=services), VARIABLES_TF, size)
    too_many = [
        e for e in problem_texts(result.errors) if e.startswith(f"ecs_services defines {count} services")
    ]
    assert bool(too_many) is not ok, problem_texts(result.errors)
    assert result.service_count == count


def test_duplicate_alb_path() -> None:
    services = {"a": service(alb_path="/x"), "b": service(alb_path="/x")}
    result = validate_tfvars(generated(ecs_services=services), VARIABLES_TF, "small")
    assert 'ecs_services["b"]: alb_path \'/x\' is already used by "a".' in problem_texts(result.errors)


# -- parse_variables / parse_type ---------------------------------------------------------------


def test_variables_keep_types_and_string_defaults_apart() -> None:
    specs = parse_variables('variable "a" {\n  type = string\n  default = "string"\n}\nvariable "b" {}\n')
    assert specs["a"].type == TfType("string") and specs["a"].default == "string"
    assert not specs["a"].required
    assert specs["b"].type == ANY and specs["b"].required


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("string", "string"),
        ("${list(map(string))}", "list(map(string))"),
        ("${set(number)}", "set(number)"),
        ("${tuple([string, number])}", "tuple([string, number])"),
        (
            "${object({a = optional(list(string), []), b = optional(object({c = bool}), {c = true})})}",
            "object",
        ),
    ],
)
def test_parse_type(text: str, shown: str) -> None:
    assert str(parse_type(text)) == shown


def test_parse_type_rejects_garbage() -> None:
    with pytest.raises(TfvarsError):
        parse_type("${strung}")


# -- diff -----------------------------------------------------------------------------------------------


def test_diff_values() -> None:
    text = apply_values(generated(), {"ecr_image_mutability": "MUTABLE"})
    changes = {c.variable: c for c in diff_values(sample(), text)}
    assert set(changes) == {
        "account_id",
        "region",
        "application",
        "environment",
        "additional_tags",
        "vpc_cidr_block",
        "sns_monitoring_recepients_email_list",
        "route53_dns_name",
        "ecr_image_mutability",
    }
    assert changes["region"].describe() == 'region: "us-east-1" → "eu-west-1"'
    assert changes["ecr_image_mutability"].kind == "added"
    assert changes["additional_tags"].describe() == (
        'additional_tags: {} → {Owner = "Platform team", cost-center = "42"}'
    )
    removed = diff_values(sample(), sample().replace("backup_services", "# backup_services"))
    assert [(c.variable, c.kind) for c in removed] == [("backup_services", "removed")]
    assert diff_values(sample(), sample()) == []


# -- templates --------------------------------------------------------------------------------------


def test_render_tfbackend() -> None:
    request = make_request(SetupSize.SMALL, state_bucket="my-state-bucket", lock_table="locks")
    text = render_tfbackend(request)
    parsed = hcl2.loads(text, serialization_options=STRIP)
    assert parsed == {
        "bucket": "my-state-bucket",
        "key": "terraform/shop/prod/terraform.tfstate",
        "region": "eu-west-1",
        "encrypt": True,
        "dynamodb_table": "locks",
    }
    lowered = text.lower()
    for secret in ("access_key", "secret", "token", "profile", "password", "role_arn"):
        assert secret not in lowered


def test_templates_use_strict_undefined() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_template("backend.tfbackend.j2", {"bucket": "b", "key": "k", "region": "r"})


@pytest.mark.parametrize("size", [s.value for s in SetupSize])
def test_fallback_templates_match_the_per_size_values(size: str) -> None:
    template = render_fallback_tfvars(size)
    placeholders = validate_tfvars(template, VARIABLES_TF, size)
    assert {e.split()[0] for e in problem_texts(placeholders.errors)} == {
        "account_id",
        "region",
        "application",
        "environment",
    }
    values = values_for_request(make_request(SetupSize(size)), USER_VALUES)
    text = apply_values(template, values)
    assert validate_tfvars(text, VARIABLES_TF, size).ready
    assert comments(text) == comments(template)
    # Same per-size settings as the repository's sample (both follow poc-idp-inputs §3).
    ours, theirs = read_tfvars(text), read_tfvars(apply_values(sample(size), values))
    assert ours == theirs


def test_fallback_rendered_with_values() -> None:
    values = values_for_request(make_request(SetupSize.SMALL))
    text = render_fallback_tfvars("small", values)
    read = read_tfvars(text)
    assert read["account_id"] == "123456789012" and read["additional_tags"] == values["additional_tags"]


def test_templates_dir_is_the_repository_templates() -> None:
    assert templates_dir() == Path(__file__).resolve().parents[1] / "templates"
    assert (templates_dir() / "backend.tfbackend.j2").is_file()
