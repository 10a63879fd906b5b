"""A server of the test process on a loopback port, served on a daemon thread: the Slack and GitHub
API stand-ins and the TLS front of Redis are each one."""

from __future__ import annotations

import socketserver
import threading
from typing import Self


class ServedOnThread:
    """`server` runs on its own daemon thread between start() and stop()."""

    def __init__(self, server: socketserver.TCPServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
