"""workers.workspace with real git repositories: mirror, checkouts, exact commits, generated files."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import hcl2
import pytest

from core.sizes import SetupSize
from core.tfvars.reading import read_tfvars
from tests.test_tfrepo import USER_VALUES, commit_file, git, make_git_repo, make_request
from workers.workspace import (
    Workspace,
    WorkspaceError,
    WorkspaceManager,
    generate_files,
    redact_url,
    write_atomic,
)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    return make_git_repo(tmp_path / "src")


def manager_for(tmp_path: Path, url: str, ref: str = "main") -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "data", url, ref)


# -- checkout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_prepare_from_a_path_or_file_url(tmp_path: Path, source: tuple[Path, str], form: str) -> None:
    repo, sha = source
    url = str(repo) if form == "path" else repo.as_uri()
    manager = manager_for(tmp_path, url)
    workspace = manager.prepare("d-0001")
    assert workspace.commit == sha
    assert workspace.path == tmp_path / "data" / "workspaces" / "d-0001"
    assert (workspace.path / "variables.tf").read_text() == (repo / "variables.tf").read_text()
    assert git(workspace.path, "rev-parse", "HEAD") == sha
    # poc-idp's data "external" runs `git rev-parse --show-toplevel`: the workspace must be a checkout.
    assert Path(git(workspace.path, "rev-parse", "--show-toplevel")) == workspace.path
    assert git(workspace.path, "rev-parse", "--is-shallow-repository") == "true"
    assert manager.mirror_path.parent == tmp_path / "data" / "mirrors"
    assert git(manager.mirror_path, "rev-parse", "--is-bare-repository") == "true"


def test_relative_path_is_resolved(
    tmp_path: Path, source: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sha = source
    monkeypatch.chdir(repo.parent)
    manager = manager_for(tmp_path, repo.name)
    assert manager.repo_url == str(repo)
    assert manager.prepare("d-rel").commit == sha


def test_mirror_is_reused(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, sha = source
    manager = manager_for(tmp_path, str(repo))
    manager.prepare("d-1")
    sentinel = manager.mirror_path / "sentinel-from-test"
    sentinel.write_text("still here")
    inode = manager.mirror_path.stat().st_ino
    manager.prepare("d-2")
    assert (manager.clones, manager.fetches) == (1, 1)
    # A second manager (another worker process) finds the same mirror and only fetches.
    other = manager_for(tmp_path, str(repo))
    assert other.mirror_path == manager.mirror_path
    assert other.prepare("d-3").commit == sha
    assert (other.clones, other.fetches) == (0, 1)
    assert sentinel.read_text() == "still here"
    assert manager.mirror_path.stat().st_ino == inode


def test_different_urls_get_different_mirrors(tmp_path: Path) -> None:
    repo_a, _ = make_git_repo(tmp_path / "a")
    repo_b, _ = make_git_repo(tmp_path / "b")
    assert manager_for(tmp_path, str(repo_a)).mirror_path != manager_for(tmp_path, str(repo_b)).mirror_path


def test_new_commits_are_fetched_and_exact_commits_checked_out(
    tmp_path: Path, source: tuple[Path, str]
) -> None:
    repo, first = source
    manager = manager_for(tmp_path, repo.as_uri())
    assert manager.prepare("d-1").commit == first
    second = commit_file(repo, "extra.tf", 'resource "terraform_data" "extra" {}\n', "add extra")
    latest = manager.prepare("d-2")
    assert latest.commit == second and (latest.path / "extra.tf").is_file()
    pinned = manager.prepare("d-3", commit=first)
    assert pinned.commit == first
    assert not (pinned.path / "extra.tf").exists()
    assert git(pinned.path, "rev-parse", "HEAD") == first
    # Re-preparing a deployment replaces its directory.
    again = manager.prepare("d-2", commit=first)
    assert again.path == latest.path and not (again.path / "extra.tf").exists()


def test_commit_made_after_the_last_fetch_is_found(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, _ = source
    manager = manager_for(tmp_path, str(repo))
    manager.prepare("d-1")
    newer = commit_file(repo, "later.tf", "# later\n", "later")
    assert manager.prepare("d-2", commit=newer).commit == newer


def test_tag_ref(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, sha = source
    git(repo, "tag", "v1.0.0")
    commit_file(repo, "after-tag.tf", "# after\n", "after tag")
    workspace = manager_for(tmp_path, str(repo), "v1.0.0").prepare("d-tag")
    assert workspace.commit == sha and workspace.ref == "v1.0.0"


def test_concurrent_prepares_share_one_clone(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, sha = source
    managers = [manager_for(tmp_path, str(repo)) for _ in range(4)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = managers[index].prepare(f"d-{index}").commit
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert set(results.values()) == {sha}
    assert sum(m.clones for m in managers) == 1


# -- errors ------------------------------------------------------------------------------------------


def test_unreachable_repository(tmp_path: Path) -> None:
    manager = manager_for(tmp_path, str(tmp_path / "no-such-repo"))
    with pytest.raises(
        WorkspaceError, match=r"Could not reach the Terraform repository .*no-such-repo"
    ) as caught:
        manager.prepare("d-1")
    assert "Check the repository URL" in str(caught.value)
    assert not manager.mirror_path.exists()
    assert list((tmp_path / "data" / "mirrors").iterdir()) == [manager.lock_path]


def test_credentials_never_appear_in_messages(tmp_path: Path) -> None:
    manager = manager_for(tmp_path, "https://bot:s3cr3t-token@127.0.0.1:9/org/poc-idp.git")
    with pytest.raises(WorkspaceError) as caught:
        manager.prepare("d-1")
    assert "s3cr3t-token" not in str(caught.value)
    assert "https://***@127.0.0.1:9/org/poc-idp.git" in str(caught.value)
    assert redact_url("https://github.com/org/repo.git") == "https://github.com/org/repo.git"


def test_unknown_ref(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, _ = source
    with pytest.raises(WorkspaceError, match="The branch or tag 'release-9' was not found in"):
        manager_for(tmp_path, str(repo), "release-9").prepare("d-1")


def test_unknown_commit(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, _ = source
    missing = "0" * 40
    with pytest.raises(WorkspaceError, match="Commit 000000000000 is no longer in"):
        manager_for(tmp_path, str(repo)).prepare("d-1", commit=missing)
    with pytest.raises(WorkspaceError, match="not a full commit SHA"):
        manager_for(tmp_path, str(repo)).prepare("d-1", commit="main")


@pytest.mark.parametrize("bad", ["../escape", "", "a/b", "-rf"])
def test_bad_deployment_id(tmp_path: Path, source: tuple[Path, str], bad: str) -> None:
    with pytest.raises(WorkspaceError, match="not a valid deployment id"):
        manager_for(tmp_path, str(source[0])).prepare(bad)


@pytest.mark.parametrize("ref", ["", "--upload-pack=evil"])
def test_bad_ref_is_refused_early(tmp_path: Path, ref: str) -> None:
    with pytest.raises(WorkspaceError, match="not a usable branch or tag"):
        WorkspaceManager(tmp_path, "/nowhere", ref)


# -- generated files -----------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, source: tuple[Path, str]) -> Workspace:
    return manager_for(tmp_path, str(source[0])).prepare("d-files")


def comment_lines(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


@pytest.mark.parametrize("size", list(SetupSize))
def test_generate_files(workspace: Workspace, size: SetupSize) -> None:
    request = make_request(size)
    files = generate_files(workspace, request, USER_VALUES)
    stem = "shop-123456789012-eu-west-1"
    assert files.tfvars_path == workspace.path / "tfvars" / f"{stem}.tfvars"
    assert files.tfbackend_path == workspace.path / "tfbackends" / f"{stem}.tfbackend"
    assert (files.tfvars_relpath, files.tfbackend_relpath) == (
        f"tfvars/{stem}.tfvars",
        f"tfbackends/{stem}.tfbackend",
    )
    text = files.tfvars_path.read_text()
    backend = files.tfbackend_path.read_text()
    assert files.tfvars_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert files.tfbackend_sha256 == hashlib.sha256(backend.encode()).hexdigest()
    assert files.source == f"tfvars-sample/example-{size.value}-setup.tfvars" and not files.used_fallback
    template = (workspace.path / files.source).read_text()
    assert comment_lines(text) == comment_lines(template)
    assert files.validation.ready, files.validation
    read = read_tfvars(text)
    assert read["account_id"] == "123456789012" and read["additional_tags"]["cost-center"] == "42"
    assert {c.variable for c in files.changes} >= {"account_id", "region", "application", "environment"}
    parsed = hcl2.loads(backend, serialization_options=hcl2.SerializationOptions(strip_string_quotes=True))
    assert parsed == {
        "bucket": "tfstate-123456789012-eu-west-1",
        "key": "terraform/shop/prod/terraform.tfstate",
        "region": "eu-west-1",
        "encrypt": True,
        "dynamodb_table": "terraform-state-lock",
    }
    # Generated files are git-ignored, as in poc-idp.
    assert git(workspace.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_generate_files_reports_missing_user_values(workspace: Workspace) -> None:
    files = generate_files(workspace, make_request(SetupSize.SMALL))
    assert files.validation.ok and not files.validation.ready
    assert {m.variable for m in files.validation.missing_user_values} == set(USER_VALUES)
    assert files.tfvars_path.is_file()


def test_generate_files_falls_back_to_bundled_templates(tmp_path: Path, source: tuple[Path, str]) -> None:
    repo, _ = source
    git(repo, "rm", "--quiet", "tfvars-sample/example-medium-setup.tfvars")
    git(
        repo,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "--quiet",
        "-m",
        "no medium sample",
    )
    workspace = manager_for(tmp_path, str(repo)).prepare("d-fallback")
    files = generate_files(workspace, make_request(SetupSize.MEDIUM), USER_VALUES)
    assert files.used_fallback
    assert files.source == "templates/tfvars/example-medium-setup.tfvars.j2 (bundled)"
    assert files.validation.ready, files.validation
    assert read_tfvars(files.tfvars_path.read_text())["rds_instance_count"] == 2


def test_generate_files_needs_variables_tf(workspace: Workspace) -> None:
    (workspace.path / "variables.tf").unlink()
    with pytest.raises(WorkspaceError, match=r"has no variables\.tf"):
        generate_files(workspace, make_request(SetupSize.SMALL))


def test_failed_generation_leaves_previous_files_whole(workspace: Workspace) -> None:
    request = make_request(SetupSize.SMALL)
    files = generate_files(workspace, request, USER_VALUES)
    before = files.tfvars_path.read_bytes(), files.tfbackend_path.read_bytes()
    with pytest.raises(TypeError):
        generate_files(workspace, request, {"route53_dns_name": object()})
    assert (files.tfvars_path.read_bytes(), files.tfbackend_path.read_bytes()) == before
    leftovers = [p.name for d in ("tfvars", "tfbackends") for p in (workspace.path / d).iterdir()]
    assert sorted(leftovers) == sorted([files.tfvars_path.name, files.tfbackend_path.name])


def test_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    digest = write_atomic(target, "one\n")
    assert target.read_text() == "one\n" and digest == hashlib.sha256(b"one\n").hexdigest()
    write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]
