"""A local stand-in for the GitHub REST endpoints the bot's pull requests use (workers/github_pr.py).

Exactly these, answered the way GitHub does (JSON bodies, `url` fields on this server so PyGithub
follows them, 401 "Bad credentials" without the token, 404 "Not Found" for an unknown repository,
422 "Validation Failed" for a second open pull request of the same head and base):

    GET   /repos/{owner}/{name}
    GET   /repos/{owner}/{name}/pulls?state=&head=owner:branch&base=
    POST  /repos/{owner}/{name}/pulls            {"title", "head", "base", "body"}
    PATCH /repos/{owner}/{name}/pulls/{number}   {"title", "body", ...}

Every request is recorded (method, path, query, JSON body, whether it was authorised) for assertions.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness.served import ServedOnThread

GITHUB_TOKEN = "ghp_testtoken0000000000000000000000000000"


@dataclass
class GitHubCall:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    authorized: bool


@dataclass
class Pull:
    number: int
    owner: str
    repo: str
    title: str
    body: str
    head: str
    base: str
    state: str = "open"
    edits: list[dict[str, Any]] = field(default_factory=list)


class GitHubApiStandIn(ServedOnThread):
    def __init__(self, token: str = GITHUB_TOKEN) -> None:
        self.token = token
        self.repositories: set[str] = set()
        self.pulls: list[Pull] = []
        self.calls: list[GitHubCall] = []
        self._lock = threading.Lock()
        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class()))

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def add_repository(self, full_name: str) -> None:
        self.repositories.add(full_name)

    def calls_to(self, method: str, suffix: str = "") -> list[GitHubCall]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    # -- answers ------------------------------------------------------------------------------

    def _repo_json(self, full_name: str) -> dict[str, Any]:
        owner, name = full_name.split("/", 1)
        return {
            "id": abs(hash(full_name)) % 10**8,
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "type": "Organization"},
            "private": True,
            "url": f"{self.base_url}/repos/{full_name}",
            "html_url": f"https://github.example/{full_name}",
            "default_branch": "main",
        }

    def _pull_json(self, pull: Pull) -> dict[str, Any]:
        full_name = f"{pull.owner}/{pull.repo}"
        return {
            "id": 1000 + pull.number,
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "url": f"{self.base_url}/repos/{full_name}/pulls/{pull.number}",
            "html_url": f"https://github.example/{full_name}/pull/{pull.number}",
            "head": {"ref": pull.head, "label": f"{pull.owner}:{pull.head}"},
            "base": {"ref": pull.base, "label": f"{pull.owner}:{pull.base}"},
        }

    def answer(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if len(parts) < 3 or parts[0] != "repos":
            return 404, {"message": "Not Found"}
        full_name = f"{parts[1]}/{parts[2]}"
        if full_name not in self.repositories:
            return 404, {"message": "Not Found"}
        rest = parts[3:]
        if method == "GET" and not rest:
            return 200, self._repo_json(full_name)
        if rest[:1] != ["pulls"]:
            return 404, {"message": "Not Found"}
        mine = [p for p in self.pulls if f"{p.owner}/{p.repo}" == full_name]
        if method == "GET" and len(rest) == 1:
            state = query.get("state", "open")
            found = [
                p
                for p in mine
                if (state == "all" or p.state == state)
                and ("head" not in query or f"{p.owner}:{p.head}" == query["head"])
                and ("base" not in query or p.base == query["base"])
            ]
            return 200, [self._pull_json(p) for p in found]
        if method == "POST" and len(rest) == 1:
            missing = [k for k in ("title", "head", "base") if not body.get(k)]
            if missing:
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"field": missing[0], "code": "missing"}],
                }
            head = str(body["head"]).split(":")[-1]
            if any(p.state == "open" and p.head == head and p.base == body["base"] for p in mine):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": f"A pull request already exists for {parts[1]}:{head}."}],
                }
            pull = Pull(
                number=len(self.pulls) + 1,
                owner=parts[1],
                repo=parts[2],
                title=str(body["title"]),
                body=str(body.get("body") or ""),
                head=head,
                base=str(body["base"]),
            )
            self.pulls.append(pull)
            return 201, self._pull_json(pull)
        if method == "PATCH" and len(rest) == 2 and rest[1].isdigit():
            target = next((p for p in mine if p.number == int(rest[1])), None)
            if target is None:
                return 404, {"message": "Not Found"}
            target.edits.append(body)
            target.title = str(body.get("title", target.title))
            target.body = str(body.get("body", target.body))
            target.state = str(body.get("state", target.state))
            return 200, self._pull_json(target)
        return 404, {"message": "Not Found"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                auth = self.headers.get("Authorization") or ""
                authorized = auth in (f"token {stand_in.token}", f"Bearer {stand_in.token}")
                with stand_in._lock:
                    stand_in.calls.append(GitHubCall(self.command, split.path, query, body, authorized))
                    if authorized:
                        status, payload = stand_in.answer(self.command, split.path, query, body)
                    else:
                        status, payload = 401, {"message": "Bad credentials"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _handle

        return Handler
