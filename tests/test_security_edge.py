"""Issue 10, finding 3: the body size limit holds before the body arrives.

Black-box against the bot's real `web` process (waitress): a raw socket announces a huge body,
sends a little of it and waits for the answer without sending the rest. The socket's timeout only
keeps a regression from hanging the suite; what is asserted is the answer itself.
"""

from __future__ import annotations

import socket

from tests.harness.processes import WebProcess

MIB = 1024 * 1024
GUARD_SECONDS = 60  # never reached when the bot answers from the headers


def _request_head(port: int, extra: str) -> bytes:
    return (
        "POST /slack/events HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"{extra}"
        "\r\n"
    ).encode()


def _status_line(sock: socket.socket) -> bytes:
    """The first line of the answer (b"" when the server closed without one)."""
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0]


def test_an_unsigned_64_mib_request_is_refused_before_its_body_is_sent(web_process: WebProcess) -> None:
    with socket.create_connection(("127.0.0.1", web_process.port), timeout=GUARD_SECONDS) as sock:
        sock.sendall(_request_head(web_process.port, f"Content-Length: {64 * MIB}\r\n") + b"payload=" * 128)
        status = _status_line(sock)  # the other 64 MiB are never sent
    assert status.startswith(b"HTTP/1.1 413"), status


def test_a_chunked_body_is_cut_once_it_passes_the_limit(web_process: WebProcess) -> None:
    chunk = b"x" * (64 * 1024)
    with socket.create_connection(("127.0.0.1", web_process.port), timeout=GUARD_SECONDS) as sock:
        sock.sendall(_request_head(web_process.port, "Transfer-Encoding: chunked\r\n"))
        for _ in range(17):  # 1 MiB + 64 KiB, and no terminating chunk
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        status = _status_line(sock)
    assert status.startswith(b"HTTP/1.1 413"), status


def test_a_body_of_exactly_the_limit_still_reaches_the_signature_check(web_process: WebProcess) -> None:
    with socket.create_connection(("127.0.0.1", web_process.port), timeout=GUARD_SECONDS) as sock:
        sock.sendall(_request_head(web_process.port, f"Content-Length: {MIB}\r\n") + b"a" * MIB)
        status = _status_line(sock)
    assert status.startswith(b"HTTP/1.1 401"), status  # unsigned: refused by the app, not by size
