"""The run's log file: a new numbered 0600 file per command under `<workspace>/.ecs-deploy/logs`,
and the follower that reads it line by line (like `tail -f`) into the caller's `on_line` callback
while Terraform writes it."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from core import terraform_ui

log = logging.getLogger(__name__)

TAIL_LINES = 40
LOG_DIR = Path(".ecs-deploy") / "logs"
FOLLOW_INTERVAL = 0.1


def new_log_path(workspace: Path, command: str) -> Path:
    directory = workspace / LOG_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    number = len(list(directory.glob("*.log"))) + 1
    while True:
        path = directory / f"{number:03d}-{command}.log"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            return path
        except FileExistsError:
            number += 1


class LineSink:
    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self._on_line = on_line
        self.lines: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._callback_failed = False

    def write(self, line: str) -> None:
        self.lines.append(line)
        self.tail.append(terraform_ui.human_line(line))
        if self._on_line is not None and not self._callback_failed:
            try:
                self._on_line(line)
            except Exception:  # a failing progress reporter must not stop Terraform's output
                self._callback_failed = True
                log.exception("on_line callback failed; no more lines are passed to it")


class Follower(threading.Thread):
    """Follows the log file Terraform writes (like `tail -f`), line by line into the sink. Whether the
    follower keeps up or not never affects Terraform: it only reads."""

    def __init__(self, path: Path, offset: int, sink: LineSink) -> None:
        super().__init__(name=f"follow {path.name}", daemon=True)
        self.path = path
        self.offset = offset
        self.sink = sink
        self._done = threading.Event()

    def run(self) -> None:
        pending = b""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            while True:
                finishing = self._done.is_set()  # read once more after the run ended: then stop at EOF
                chunk = handle.read(65536)
                if chunk:
                    *complete, pending = (pending + chunk).split(b"\n")
                    for raw in complete:
                        self.sink.write(raw.decode("utf-8", errors="replace").rstrip("\r"))
                    continue
                if finishing:
                    break
                self._done.wait(FOLLOW_INTERVAL)
        if pending:
            self.sink.write(pending.decode("utf-8", errors="replace").rstrip("\r"))

    def finish(self) -> None:
        """The run is over: read what is left, then stop."""
        self._done.set()
        self.join(timeout=30)
