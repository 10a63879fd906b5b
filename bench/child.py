"""The benchmarks' measurements in a fresh interpreter (so that caches, imports and peak memory start
clean): run a benchmark script again with its child arguments and read the JSON it prints last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(
    script: str,
    args: list[str],
    *,
    what: str,
    timeout: float,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`script args` in a new Python; its result is the JSON object on the last line of its stdout.
    A non-zero exit raises RuntimeError naming `what` failed, with the end of its stderr."""
    done = subprocess.run(
        [sys.executable, str(Path(script).resolve()), *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
