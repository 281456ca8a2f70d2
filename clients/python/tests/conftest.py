"""Real processes and sockets for the tests: the hub binary, SSE streams, small HTTP servers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from herald_client import mint_token

REPO = Path(__file__).resolve().parents[3]
HERALD = os.environ.get("HERALD_BIN", str(REPO / "target" / "release" / "herald"))
SECRET = "python-sdk-test-secret"
PUBLISH_KEY = "python-sdk-test-key"


@dataclass
class Hub:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def running_hub(*extra_args: str) -> Iterator[Hub]:
    """``herald serve`` on a free port (``--listen 127.0.0.1:0``; the address is on stdout)."""
    if not Path(HERALD).exists():
        pytest.fail(f"{HERALD} not found: set HERALD_BIN or cargo build --release -p herald")
    process = subprocess.Popen(
        [
            HERALD,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            SECRET,
            "--publish-key",
            PUBLISH_KEY,
            *extra_args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HERALD_LOG": "warn"},
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 15
    printed = b""
    url = None
    while url is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            process.kill()
            pytest.fail(f"herald did not start: {printed!r}")
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"herald exited ({process.wait()}): {printed!r}")
        printed += line
        if line.startswith(b"herald listening on "):
            url = line.split()[-1].decode()
    try:
        yield Hub(url, process)
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_redis() -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port (skips if none is installed); its URL."""
    if subprocess.run(["sh", "-c", "command -v redis-server"], capture_output=True).returncode:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as ping:
                ping.sendall(b"PING\r\n")
                if ping.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    """One hub shared by the session's tests."""
    with running_hub() as started:
        yield started


class StreamRefusedError(Exception):
    def __init__(self, status: int, body: str, path: str = "/events") -> None:
        super().__init__(f"GET {path} answered {status}: {body}")
        self.status = status


@dataclass
class Event:
    type: str
    id: str
    data: str


class Stream:
    """A ``GET /events`` stream read by a thread over a plain socket; events are collected.

    ``path`` and ``query`` open another stream endpoint (``/.well-known/mercure?topic=…``);
    ``token`` None sends no ``Authorization`` header (an anonymous subscriber).
    """

    def __init__(
        self,
        hub_url: str,
        token: str | None,
        topics: list[str],
        *,
        path: str = "/events",
        query: list[tuple[str, str]] | None = None,
    ) -> None:
        parts = urlsplit(hub_url)
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._ended = False
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        encoded = urlencode(query if query is not None else [("topic", t) for t in topics])
        headers = {"Accept": "text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._conn.request("GET", f"{path}?{encoded}", headers=headers)
        # getresponse() may hand the socket over to the response (and forget it here), so keep
        # it: close() shuts it down, which is what tells the hub the client left.
        self._sock = self._conn.sock
        self._response = self._conn.getresponse()
        if self._response.status != 200:
            body = self._response.read().decode()
            self._conn.close()
            raise StreamRefusedError(self._response.status, body, path)
        self._opened = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        # The hub's opening comment: from here on the stream is registered.
        if not self._opened.wait(10):
            raise TimeoutError("no opening comment from the hub")

    def _read(self) -> None:
        kind, last_id = "", ""
        data: list[str] = []
        try:
            while True:
                raw = self._response.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self._opened.set()
                    continue
                if line == "":
                    if data:
                        self._push(Event(kind or "message", last_id, "\n".join(data)))
                    kind, data = "", []
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    last_id = value
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by close()
        finally:
            self._opened.set()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _push(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def next(self, match: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        """The first event (from the start of the stream) matching ``match``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    raise AssertionError(f"no matching event; got {self.events!r}")
                self._changed.wait(remaining)

    def by_id(self, kind: str, event_id: str, timeout: float = 5.0) -> Event:
        return self.next(lambda e: e.type == kind and e.id == event_id, timeout)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


@pytest.fixture
def open_stream(hub: Hub) -> Iterator[Callable[..., Stream]]:
    streams: list[Stream] = []

    def open_(token: str, topics: list[str] | None = None) -> Stream:
        stream = Stream(hub.url, token, topics or [])
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()


_users = iter(range(1_000_000))


@pytest.fixture
def user_stream(open_stream: Callable[..., Stream]) -> Callable[..., tuple[str, Stream]]:
    """A fresh user with an open stream (and topic subscriptions under ``orders/**``)."""

    def make(topics: list[str] | None = None) -> tuple[str, Stream]:
        user = f"py-user-{os.getpid()}-{next(_users)}"
        token = mint_token(SECRET, user, topics=["orders/**"] if topics else None, ttl=600)
        return user, open_stream(token, topics)

    return make


@dataclass
class Recorded:
    at: float
    headers: dict[str, str]
    body: bytes


Script = Callable[[BaseHTTPRequestHandler, bytes, int], None]


@dataclass
class ScriptedServer:
    """A local HTTP server whose answers the test scripts; it records every request."""

    script: Script
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def start(self) -> ScriptedServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                index = len(outer.requests)
                outer.requests.append(
                    Recorded(
                        time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                outer.script(self, body, index)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script) -> ScriptedServer:
        server = ScriptedServer(script).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def answer_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: object,
    headers: dict[str, str] | None = None,
) -> None:
    encoded = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(encoded)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(encoded)


def forward_to_hub(hub_url: str, handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """Sends a recorded publish on to the real hub and answers with what the hub said."""
    parts = urlsplit(hub_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(
        "POST",
        "/publish",
        body=body,
        headers={
            "Authorization": handler.headers.get("Authorization", ""),
            "Content-Type": "application/json",
        },
    )
    answer = conn.getresponse()
    payload = answer.read()
    conn.close()
    handler.send_response(answer.status)
    handler.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ResettingServer:
    """Accepts connections and resets them at once: a network error, counted."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            # SO_LINGER 0: close sends RST instead of FIN.
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            conn.close()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def resetting() -> Iterator[ResettingServer]:
    server = ResettingServer()
    yield server
    server.close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
