"""A local stand-in for the Slack Web API.

It answers the methods the bot calls the way Slack does (HTTP 200 with `ok: false` and an error
code for API errors; HTTP 429 with Retry-After for rate limits), records every call for assertions,
and can be told to fail the next N calls of a method, or every call for a while (`fail_for`) — also
*after* doing what was asked (`processed=True`: Slack posted the message but answered 500) — or to
hold calls unanswered until released (`stall`). Messages keep their channel and metadata, and
conversations.replies / conversations.history return them (metadata only with include_all_metadata,
as Slack does); shared files appear in their thread as messages with `files`. Message ts are real
times (microseconds, strictly increasing), so `oldest` means what it means in Slack.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from tests.harness.served import ServedOnThread

BOT_TOKEN = "xoxb-test-0000-ecs-deploy-bot"
APP_TOKEN = "xapp-1-A111-0000-ecs-deploy-bot"  # app-level token: Socket Mode's apps.connections.open
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
TEAM_ID = "T111"  # the workspace the bot is installed in (auth.test)
JSON_PARAMS = ("blocks", "attachments", "view", "files", "metadata")


class SocketModeLinks(Protocol):
    """What apps.connections.open needs from a Socket Mode server (tests/harness/socket_mode.py)."""

    def issue_url(self) -> str: ...


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorized: bool
    at: float = field(default_factory=time.time)


@dataclass
class Failure:
    error: str
    status: int = 200
    retry_after: int | None = None
    times: int = 1
    processed: bool = False  # do what the call asks, then answer with the error (an ambiguous failure)
    until: float | None = None  # a window: every call fails until then (time.time()), `times` unused


class SlackApiStandIn(ServedOnThread):
    def __init__(self, token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.token = token
        self.app_token = app_token
        self.socket_mode: SocketModeLinks | None = None  # set while a Socket Mode server is attached
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        # users.info: fields that differ from a full member of TEAM_ID, per user id (e.g.
        # {"is_restricted": True} for a guest, {"team_id": "T0OTHER"} for a Slack Connect user).
        self.users: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.channels: dict[str, str] = {}  # message ts -> its channel
        self.metadata: dict[str, dict[str, Any]] = {}  # message ts -> the metadata it was posted with
        self.shares: dict[str, dict[str, Any]] = {}  # file shares (files.completeUploadExternal), by ts
        # conversations.info / .members: channel id -> {"is_member": the bot is in it, "members": [user ids],
        # "is_archived": …}; a channel not listed here does not exist (channel_not_found)
        self.conversations: dict[str, dict[str, Any]] = {}
        self.held = 0  # calls being held unanswered now (stall)
        self._stalled: set[str] = set()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._ts_lock = threading.Lock()
        self._last_ts = 0
        self._ids = itertools.count(1)
        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class()))

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/api/"

    def stop(self) -> None:
        self.release()
        super().stop()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.uploads.clear()
            self.messages.clear()
            self.failures.clear()
            self.usergroups.clear()
            self.users.clear()
            self.channels.clear()
            self.metadata.clear()
            self.shares.clear()
            self.conversations.clear()
        self.release()

    # -- test controls ------------------------------------------------------------------------

    def fail(
        self, method: str, error: str, *, status: int = 200, retry_after: int | None = None, times: int = 1
    ) -> None:
        """The next `times` calls of `method` answer with `error` (e.g. ratelimited, invalid_auth)."""
        with self._lock:
            self.failures.setdefault(method, []).append(Failure(error, status, retry_after, times))

    def fail_processed(self, method: str, error: str, *, status: int = 500, times: int = 1) -> None:
        """The next `times` calls of `method` are carried out (a message is posted) and then answered
        with `error`, as when Slack acted but its answer was a server fault."""
        with self._lock:
            failure = Failure(error, status, None, times, processed=True)
            self.failures.setdefault(method, []).append(failure)

    def fail_for(
        self,
        seconds: float,
        methods: tuple[str, ...],
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
    ) -> float:
        """Every call of `methods` answers `error` for the next `seconds` (queued after failures already
        set). Returns when the window ends (time.time())."""
        until = time.time() + seconds
        with self._lock:
            for method in methods:
                self.failures.setdefault(method, []).append(Failure(error, status, retry_after, until=until))
        return until

    def stall(self, *methods: str) -> None:
        """Hold every call of `methods` unanswered (Slack hangs) until `release()`."""
        with self._lock:
            self._stalled.update(methods)
            self._open.clear()

    def release(self) -> None:
        with self._lock:
            self._stalled.clear()
            self._open.set()

    def thread(self, thread_ts: str) -> list[dict[str, Any]]:
        """What the thread shows now, oldest first: its messages and shared files (not the root)."""
        with self._lock:
            items = [*self.messages.values(), *self.shares.values()]
        return sorted((m for m in items if m.get("thread_ts") == thread_ts), key=lambda m: m["ts"])

    def delete_message(self, ts: str) -> None:
        with self._lock:
            self.messages.pop(ts, None)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self, method: str, predicate: Callable[[Call], bool] = lambda c: True, timeout: float = 30.0
    ) -> Call:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.calls_to(method):
                if predicate(call):
                    return call
            time.sleep(0.05)
        seen = [c.params for c in self.calls_to(method)]
        raise AssertionError(f"no {method} call matched within {timeout}s; saw {json.dumps(seen)[:3000]}")

    def find_button(self, thread_ts: str, action_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The newest message in a thread (as it is now) with a button `action_id`: (message, button)."""
        with self._lock:
            messages = [m for m in self.messages.values() if m.get("thread_ts") == thread_ts]
        for message in sorted(messages, key=lambda m: m["ts"], reverse=True):
            for block in message.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("action_id") == action_id:
                        return message, element
        raise AssertionError(f"no button {action_id} in thread {thread_ts}")

    def wait_for_button(
        self, thread_ts: str, action_id: str, timeout: float = 15.0
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """`find_button`, once the button is there (a worker writes a status before it posts)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.find_button(thread_ts, action_id)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def all_payload_text(self) -> str:
        """Everything the bot sent to Slack (for 'never contains a secret' checks)."""
        with self._lock:
            calls = list(self.calls)
            uploads = b"\n".join(self.uploads.values()).decode("utf-8", "replace")
        return json.dumps([c.params for c in calls], ensure_ascii=False) + uploads

    def thread_texts(self, thread_ts: str) -> list[str]:
        """Everything posted into a thread, as text (message text plus block text)."""
        return [
            c.params.get("text", "") + "\n" + json.dumps(c.params.get("blocks") or [], ensure_ascii=False)
            for c in self.calls_to("chat.postMessage")
            if c.params.get("thread_ts") == thread_ts
        ]

    # -- the API ------------------------------------------------------------------------------

    def answer(
        self, method: str, params: dict[str, Any], authorized: bool
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.calls.append(Call(method, params, authorized))
            failure = self._next_failure(method)
            stalled = method in self._stalled
            if stalled:
                self.held += 1
        if stalled:
            self._open.wait()
            with self._lock:
                self.held -= 1
        if failure is not None and not failure.processed:
            return _failed(failure)
        if not authorized:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        result = handler(params)
        if failure is not None:  # done, but the answer is a fault
            return _failed(failure)
        return 200, {}, result

    def _next_failure(self, method: str) -> Failure | None:
        queued = self.failures.get(method)
        while queued:
            failure = queued[0]
            if failure.until is not None:
                if time.time() < failure.until:
                    return failure
                queued.pop(0)
                continue
            failure.times -= 1
            if failure.times <= 0:
                queued.pop(0)
            return failure
        return None

    def _new_ts(self) -> str:
        with self._ts_lock:
            micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
            self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "ecs-deploy-bot",
            "team_id": "T111",
            "user_id": "UBOT",
            "bot_id": "BBOT",
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not (params.get("text") or params.get("blocks")):
            return {"ok": False, "error": "no_text"}
        ts = self._new_ts()
        message = {"ts": ts, "text": params.get("text", ""), "blocks": params.get("blocks") or []}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        with self._lock:
            self.messages[ts] = message
            self.channels[ts] = str(params["channel"])
            if isinstance(params.get("metadata"), dict):
                self.metadata[ts] = params["metadata"]
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": message}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message = self.messages.get(str(params.get("ts")))
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.update({"text": params.get("text", ""), "blocks": params.get("blocks") or []})
        return {
            "ok": True,
            "channel": params.get("channel"),
            "ts": params.get("ts"),
            "text": params.get("text", ""),
        }

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "message_ts": self._new_ts()}

    def _views(self, params: dict[str, Any], *, needs_trigger: bool) -> dict[str, Any]:
        if needs_trigger and not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_arguments"}
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {**view, "id": params.get("view_id") or f"V{next(self._ids):08d}"}}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._views(params, needs_trigger=True)

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._views(params, needs_trigger=True)

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._views(params, needs_trigger=False)

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        view = params.get("view")
        return {
            "ok": True,
            "view": {**(view if isinstance(view, dict) else {}), "id": f"V{next(self._ids):08d}"},
        }

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        base = self.base_url.removesuffix("api/")
        return {"ok": True, "upload_url": f"{base}upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files") or []
        if not files or any(f.get("id") not in self.uploads for f in files):
            return {"ok": False, "error": "file_not_found"}
        shared = [{"id": f["id"], "title": f.get("title", "")} for f in files]
        channel = str(params.get("channel_id") or "")
        if channel:  # shared: a message with the files, in the thread if one was given
            share: dict[str, Any] = {
                "ts": self._new_ts(),
                "text": params.get("initial_comment", ""),
                "files": shared,
            }
            if params.get("thread_ts"):
                share["thread_ts"] = str(params["thread_ts"])
            with self._lock:
                self.shares[share["ts"]] = share
                self.channels[share["ts"]] = channel
        return {"ok": True, "files": shared}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """Like Slack: every user is a full member of TEAM_ID unless `users` says otherwise."""
        user = str(params.get("user", ""))
        if not user:
            return {"ok": False, "error": "user_not_found"}
        with self._lock:
            overrides = dict(self.users.get(user, {}))
        return {
            "ok": True,
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": user.lower(),
                "real_name": f"User {user}",
                "tz": "UTC",
                "deleted": False,
                "is_bot": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                **overrides,
            },
        }

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group = str(params.get("usergroup", ""))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": "D" + str(params.get("users", "U"))[:10]}}

    def _conversation(self, channel: str) -> dict[str, Any] | None:
        """What the stand-in knows of a channel (None: Slack answers channel_not_found)."""
        with self._lock:
            return self.conversations.get(channel)

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        known = self._conversation(channel)
        if known is None:
            return {"ok": False, "error": "channel_not_found"}
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "is_channel": channel.startswith("C"),
                "is_private": channel.startswith("G"),
                "is_archived": bool(known.get("is_archived")),
                "is_member": bool(known.get("is_member")),
            },
        }

    def _conversations_members(self, params: dict[str, Any]) -> dict[str, Any]:
        """The channel's members, paged like Slack (`limit`, `cursor` → response_metadata.next_cursor)."""
        known = self._conversation(str(params.get("channel", "")))
        if known is None:
            return {"ok": False, "error": "channel_not_found"}
        members = list(known.get("members") or [])
        start = int(params.get("cursor") or 0)
        end = start + int(params.get("limit") or 100)
        return {
            "ok": True,
            "members": members[start:end],
            "response_metadata": {"next_cursor": str(end) if end < len(members) else ""},
        }

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """The thread's parent, then its replies (messages and file shares), oldest first."""
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        with self._lock:
            parent = self.messages.get(ts)
            if parent is None or self.channels.get(ts) != channel:
                return {"ok": False, "error": "thread_not_found"}
            replies = [
                m for m in [*self.messages.values(), *self.shares.values()] if m.get("thread_ts") == ts
            ]
        return self._page([parent, *sorted(replies, key=lambda m: m["ts"])], params)

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """The channel's top-level messages, newest first."""
        channel = str(params.get("channel", ""))
        with self._lock:
            top = [
                m
                for ts, m in self.messages.items()
                if self.channels.get(ts) == channel and m.get("thread_ts") in (None, ts)
            ]
        return self._page(sorted(top, key=lambda m: m["ts"], reverse=True), params)

    def _page(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """Slack's reading conventions: `oldest` (exclusive), `limit`, `cursor`, and metadata only
        with `include_all_metadata`."""
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        chosen = [m for m in messages if float(m["ts"]) > oldest]
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        with self._lock:
            shown = [
                {
                    "type": "message",
                    **m,
                    **(
                        {"metadata": self.metadata[m["ts"]]}
                        if with_metadata and m["ts"] in self.metadata
                        else {}
                    ),
                }
                for m in page
            ]
        return {
            "ok": True,
            "messages": shown,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """A fresh single-use WebSocket URL, like Slack's `wss://…/link/?ticket=…&app_id=…`."""
        if self.socket_mode is None:  # the app is not in Socket Mode (no server attached)
            return {"ok": False, "error": "access_denied"}
        return {"ok": True, "url": self.socket_mode.issue_url()}

    # -- HTTP -----------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # slack_sdk reads conversations.* with GET and query parameters
                url = urlsplit(self.path)
                if not url.path.startswith("/api/"):
                    self._send(404, {}, b"not found", "text/plain")
                    return
                params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") if auth else str(params.pop("token", ""))
                status, headers, payload = stand_in.answer(
                    url.path[len("/api/") :], params, token == stand_in.token
                )
                self._send(status, headers, json.dumps(payload).encode(), "application/json; charset=utf-8")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.startswith("/upload/"):
                    with stand_in._lock:
                        stand_in.uploads[self.path.rsplit("/", 1)[1]] = body
                    self._send(200, {}, b"OK - %d" % len(body), "text/plain")
                    return
                if not self.path.startswith("/api/"):
                    self._send(404, {}, b"not found", "text/plain")
                    return
                method = self.path[len("/api/") :].split("?")[0]
                params = _parse(body, self.headers.get("Content-Type", ""))
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") if auth else str(params.pop("token", ""))
                if method in APP_TOKEN_METHODS:  # the app-level token, and only in the header
                    authorized = bool(auth) and token == stand_in.app_token
                else:
                    authorized = token == stand_in.token
                status, headers, payload = stand_in.answer(method, params, authorized)
                self._send(status, headers, json.dumps(payload).encode(), "application/json; charset=utf-8")

            def _send(self, status: int, headers: dict[str, str], body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (its timeout, while a test held Slack): as with Slack

        return Handler


def _failed(failure: Failure) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    return failure.status, headers, {"ok": False, "error": failure.error}


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/json"):
        data = json.loads(text or "{}")
        params = data if isinstance(data, dict) else {}
    else:
        params = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
    for key in JSON_PARAMS:
        if isinstance(params.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                params[key] = json.loads(params[key])
    return params
