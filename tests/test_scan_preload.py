"""workers.aws.scan.preload_service_models, what a worker does when it starts: afterwards a scan reads
none of botocore's data files (the worker's job processes are forked from it and inherit what it
loaded), against moto in server mode through the harness's named profiles.

The shared loader is a real botocore Loader whose file loader records the files it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.loaders import JSONFileLoader, Loader

from core.analysis.scan import SECTIONS
from workers.aws import scan as scan_module
from workers.aws.scan import SECTION_SERVICE, preload_service_models, scan_account

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]


class RecordingFileLoader(JSONFileLoader):
    def __init__(self) -> None:
        self.read: list[str] = []

    def load_file(self, file_path: str) -> Any:
        self.read.append(file_path)
        return super().load_file(file_path)


class BrokenFileLoader(JSONFileLoader):
    def load_file(self, file_path: str) -> Any:
        raise OSError(f"cannot read {file_path}")


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> RecordingFileLoader:
    """A fresh process's state: no model loaded yet, and every file the shared loader reads recorded."""
    recorder = RecordingFileLoader()
    monkeypatch.setattr(scan_module, "_SHARED_LOADER", Loader(file_loader=recorder))
    return recorder


def models_read(paths: list[str]) -> set[str]:
    """The services whose API model (service-2) was read."""
    return {path.split("/")[-3] for path in paths if path.endswith("/service-2")}


def test_after_the_preload_a_scan_reads_no_data_file(
    files: RecordingFileLoader, deployer_session: boto3.Session
) -> None:
    preload_service_models()
    assert models_read(files.read) == set(SECTION_SERVICE.values())
    assert any(path.endswith("/paginators-1") for path in files.read)
    files.read.clear()

    scan = scan_account(deployer_session, REGION)

    assert set(scan.sections) == {spec.name for spec in SECTIONS}
    assert scan.sections["vpcs"].scanned and scan.vpcs  # moto's default VPC: the scan really ran
    assert files.read == []


def test_without_the_preload_the_first_scan_reads_the_models(
    files: RecordingFileLoader, deployer_session: boto3.Session
) -> None:
    """The check above can see a read: the same scan in a worker that did not preload reads them all."""
    scan_account(deployer_session, REGION)
    assert models_read(files.read) == set(SECTION_SERVICE.values())


def test_a_failed_preload_does_not_stop_the_worker_and_the_scan_still_runs(
    monkeypatch: pytest.MonkeyPatch, deployer_session: boto3.Session
) -> None:
    monkeypatch.setattr(scan_module, "_SHARED_LOADER", Loader(file_loader=BrokenFileLoader()))
    assert preload_service_models() >= 0
    monkeypatch.setattr(scan_module, "_SHARED_LOADER", None)
    assert scan_account(deployer_session, REGION).sections["vpcs"].scanned


FROZEN_CHECK = """
import gc, sys
from workers.aws import scan
scan.preload_service_models(freeze=sys.argv[1] == "freeze")
model = scan._SHARED_LOADER.load_service_model("ec2", "service-2")
print(any(o is model for o in gc.get_objects()))
"""


@pytest.mark.parametrize(("mode", "collected"), [("freeze", False), ("no-freeze", True)])
def test_the_worker_preload_puts_the_models_out_of_the_collectors_reach(mode: str, collected: bool) -> None:
    """In a process of its own (freezing this one would keep the test session's garbage for good)."""
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_CHECK, mode], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(collected)
