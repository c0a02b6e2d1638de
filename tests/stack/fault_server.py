"""A scriptable HTTP server that misbehaves on purpose, standing in for IMDS or Vault.

A script is a list of steps. Each request that matches the script (by path
and method, or any request for the default script) consumes the next step,
and the last step repeats, so ``[status(503), status(503), Proxy(url)]``
fails twice and then forwards every later request to the real server.

Steps that respond:

* ``Reply``: a fixed status, headers and body; ``status``, ``html_502``,
  ``malformed_json`` and ``oversized`` build common ones.
* ``Redirect``: a 307 or 308 to another URL.
* ``Proxy``: forwards the request to a real server and relays its response.

Steps that deliver another step's response badly:

* ``Drip``: the head at once, then the body a few bytes at a time.
* ``ResetMidBody``: part of the body, then a TCP reset (``SO_LINGER`` 0).
* ``Truncate``: a ``Content-Length`` larger than the bytes sent, then FIN.

Steps that never respond:

* ``Hang``: keeps the connection open without a reply.
* ``Close``: closes the connection right after reading the request.
* ``Refuse``: resets the connection and closes the listening socket, so
  later connections are refused by the kernel, for a while or until
  ``accept_connections``.
* ``Hold``: waits until the test calls ``release``, then runs another step;
  a test uses it to kill the client while its request is in flight.

Every request is recorded without secrets: method, path, headers with
credentials redacted, body length, body SHA-256 and the keys of a JSON body.
Every response carries ``Connection: close``, so each request arrives on a
new connection and each connection consumes exactly one step.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# Request headers whose values are credentials; they are recorded as "<redacted>".
SECRET_HEADERS = frozenset({
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-aws-ec2-metadata-token",
    "x-vault-token",
})

# Headers that describe one connection, not the message, so a proxy must not
# relay them (RFC 9110, section 7.6.1). Content-Length is set again by the
# code that sends the body.
HOP_BY_HOP_HEADERS = frozenset({
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
})

MAX_HEAD_BYTES = 64 * 1024
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
# How long a connection may take to send its request before it is dropped.
REQUEST_READ_TIMEOUT_SECONDS = 10.0
# How often waiting steps check whether the server is stopping.
POLL_SECONDS = 0.02

HTML_502_PAGE = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""

STATUS_ERRORS = {
    429: "rate limit quota exceeded",
    500: "internal error",
    502: "bad gateway",
    503: "Vault is sealed",
    504: "gateway timeout",
}


class FaultServerError(RuntimeError):
    """The fault server was used wrongly or could not listen."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, without secrets."""

    method: str
    path: str
    headers: dict[str, str]
    body_length: int
    body_sha256: str
    json_keys: tuple[str, ...]
    # time.monotonic() when the request had been read in full.
    received_at: float
    # Description of the step that served it, such as "Reply(503)".
    step: str


@dataclass
class Response:
    """An HTTP response to send: status, headers and the whole body."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""


class Exchange:
    """One request on an accepted connection, and the means to respond to it."""

    def __init__(self, server: "FaultServer", connection: socket.socket, method: str, target: str,
                 headers: list[tuple[str, str]], body: bytes):
        self.server = server
        self.connection = connection
        self.method = method
        # The request target as sent, with its query string.
        self.target = target
        # Raw headers, secrets included: only a Proxy step forwards them.
        self.headers = headers
        self.body = body
        self.closed = False

    def send(self, data: bytes) -> None:
        self.connection.sendall(data)

    def send_head(self, response: Response, content_length: int | None, chunked: bool = False) -> None:
        reason = response.reason or http.client.responses.get(response.status, "Unknown")
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        for name, value in response.headers:
            if name.lower() not in HOP_BY_HOP_HEADERS:
                lines.append(f"{name}: {value}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif content_length is not None:
            lines.append(f"Content-Length: {content_length}")
        lines.append("Connection: close")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_response(self, response: Response, chunked: bool = False) -> None:
        if chunked:
            self.send_head(response, None, chunked=True)
            chunk_size = 64 * 1024
            for offset in range(0, len(response.body), chunk_size):
                chunk = response.body[offset:offset + chunk_size]
                self.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.send(b"0\r\n\r\n")
        else:
            self.send_head(response, len(response.body))
            self.send(response.body)

    def close(self) -> None:
        """Close the connection with a FIN."""
        if not self.closed:
            self.closed = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.connection.close()

    def reset(self) -> None:
        """Close the connection with a TCP reset instead of a FIN."""
        if not self.closed:
            self.closed = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def client_closed(self) -> bool:
        """Return True once the client has closed its end of a plain TCP connection.

        TLS connections always return False, because peeking at the raw
        socket would confuse the TLS layer.
        """
        if isinstance(self.connection, ssl.SSLSocket) or self.closed:
            return False
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def wait(self, seconds: float) -> bool:
        """Sleep SECONDS; return False early if the server is stopping."""
        return not self.server.stopping.wait(seconds)


class Step:
    """One scripted reaction to one request."""

    def serve(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def __str__(self) -> str:
        return type(self).__name__


class ResponseStep(Step):
    """A step that produces a whole response, which other steps can deliver badly."""

    def response(self, exchange: Exchange) -> Response:
        raise NotImplementedError

    def serve(self, exchange: Exchange) -> None:
        exchange.send_response(self.response(exchange))


class Reply(ResponseStep):
    """Respond with STATUS and BODY; CHUNKED sends the body without a Content-Length."""

    def __init__(self, status: int, body: bytes | str = b"", content_type: str = "application/json",
                 headers: list[tuple[str, str]] | None = None, chunked: bool = False):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = [("Content-Type", content_type), *(headers or [])]
        self.chunked = chunked

    def response(self, exchange: Exchange) -> Response:
        return Response(self.status, self.body, list(self.headers))

    def serve(self, exchange: Exchange) -> None:
        exchange.send_response(self.response(exchange), chunked=self.chunked)

    def __str__(self) -> str:
        return f"Reply({self.status}, {len(self.body)} bytes{', chunked' if self.chunked else ''})"


def status(code: int, message: str | None = None) -> Reply:
    """Return a Vault-style JSON error reply: ``{"errors": [MESSAGE]}``."""
    message = message if message is not None else STATUS_ERRORS.get(code, http.client.responses.get(code, ""))
    return Reply(code, json.dumps({"errors": [message]}))


def html_502() -> Reply:
    """Return the HTML 502 page a load balancer in front of Vault sends."""
    return Reply(502, HTML_502_PAGE, content_type="text/html")


def malformed_json() -> Reply:
    """Return a 200 whose JSON body is cut off in the middle."""
    return Reply(200, b'{"request_id":"0","auth":{"client_token":"s.cut', content_type="application/json")


def oversized(size: int = 5 * 1024 * 1024, chunked: bool = False) -> Reply:
    """Return a 200 with a JSON body of SIZE bytes."""
    filler = size - len(b'{"data":""}')
    return Reply(200, b'{"data":"' + b"x" * filler + b'"}', chunked=chunked)


class Redirect(ResponseStep):
    """Respond with a redirect to LOCATION, 307 unless STATUS is given."""

    def __init__(self, location: str, status: int = 307):
        self.location = location
        self.status = status

    def response(self, exchange: Exchange) -> Response:
        return Response(self.status, b"", [("Location", self.location)])

    def __str__(self) -> str:
        return f"Redirect({self.status} to {self.location})"


class Proxy(ResponseStep):
    """Forward the request to the plain-HTTP server at UPSTREAM and relay its response.

    The Host header is forwarded unchanged, so a SigV4 signature made for
    this server's address still verifies upstream (moto checks it). An
    upstream that cannot be reached gets a 502, as from a real reverse proxy.
    """

    def __init__(self, upstream: str, timeout: float = 60.0):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise FaultServerError(f"Proxy needs an http://HOST:PORT upstream, not {upstream!r}")
        self.upstream = upstream
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout

    def response(self, exchange: Exchange) -> Response:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.putrequest(exchange.method, exchange.target, skip_host=True, skip_accept_encoding=True)
            for name, value in exchange.headers:
                if name.lower() not in HOP_BY_HOP_HEADERS:
                    connection.putheader(name, value)
            if exchange.body or exchange.method in ("POST", "PUT"):
                connection.putheader("Content-Length", str(len(exchange.body)))
            connection.endheaders(exchange.body or None)
            upstream_response = connection.getresponse()
            body = upstream_response.read()
            headers = [(name, value) for name, value in upstream_response.getheaders()
                       if name.lower() not in HOP_BY_HOP_HEADERS]
            return Response(upstream_response.status, body, headers, upstream_response.reason)
        except OSError as error:
            log.info("proxy to %s failed: %s; responding with 502", self.upstream, error)
            return Response(502, HTML_502_PAGE, [("Content-Type", "text/html")])
        finally:
            connection.close()

    def __str__(self) -> str:
        return f"Proxy({self.upstream})"


class Drip(Step):
    """Deliver SOURCE's response: the head at once, then CHUNK body bytes every INTERVAL seconds."""

    def __init__(self, source: ResponseStep, interval: float, chunk: int = 1):
        self.source = source
        self.interval = interval
        self.chunk = chunk

    def serve(self, exchange: Exchange) -> None:
        response = self.source.response(exchange)
        exchange.send_head(response, len(response.body))
        for offset in range(0, len(response.body), self.chunk):
            if not exchange.wait(self.interval):
                return
            exchange.send(response.body[offset:offset + self.chunk])

    def __str__(self) -> str:
        return f"Drip({self.source}, {self.chunk} bytes every {self.interval * 1000:.0f} ms)"


class ResetMidBody(Step):
    """Deliver SOURCE's head and the first AFTER body bytes (default: half), then reset."""

    def __init__(self, source: ResponseStep, after: int | None = None):
        self.source = source
        self.after = after

    def serve(self, exchange: Exchange) -> None:
        response = self.source.response(exchange)
        after = self.after if self.after is not None else len(response.body) // 2
        exchange.send_head(response, len(response.body))
        exchange.send(response.body[:after])
        # Give the client time to read the partial body before the reset.
        exchange.wait(0.05)
        exchange.reset()

    def __str__(self) -> str:
        return f"ResetMidBody({self.source})"


class Truncate(Step):
    """Deliver SOURCE's response with a Content-Length EXTRA bytes larger than the body, then FIN."""

    def __init__(self, source: ResponseStep, extra: int = 100):
        self.source = source
        self.extra = extra

    def serve(self, exchange: Exchange) -> None:
        response = self.source.response(exchange)
        exchange.send_head(response, len(response.body) + self.extra)
        exchange.send(response.body)
        exchange.close()

    def __str__(self) -> str:
        return f"Truncate({self.source}, {self.extra} bytes short)"


class Hang(Step):
    """Never respond: keep the connection open until the client closes it or the server stops."""

    def serve(self, exchange: Exchange) -> None:
        while exchange.wait(POLL_SECONDS):
            if exchange.client_closed():
                return


class Close(Step):
    """Close the connection after reading the request, without any response."""

    def serve(self, exchange: Exchange) -> None:
        exchange.close()


class Refuse(Step):
    """Reset this connection and stop listening, for SECONDS or until ``accept_connections``.

    While the server does not listen, the kernel refuses connections to its
    port (ECONNREFUSED), as for a server process that is not running.
    """

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds

    def serve(self, exchange: Exchange) -> None:
        exchange.server.refuse_connections(self.seconds)
        exchange.reset()

    def __str__(self) -> str:
        return f"Refuse({'until accepted' if self.seconds is None else f'{self.seconds} s'})"


class Hold(Step):
    """Hold each request until ``release``, then serve it with INNER (by default: close).

    ``wait_arrived`` lets a test wait until a request is being held. After
    ``release`` the inner step runs even if the client has gone, so a held
    login can still reach Vault after the client was killed.
    """

    def __init__(self, inner: Step | None = None):
        self.inner = inner if inner is not None else Close()
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.finished = threading.Event()
        self.lock = threading.Lock()
        self.held_count = 0

    def serve(self, exchange: Exchange) -> None:
        with self.lock:
            self.held_count += 1
        self.arrived.set()
        while not self.released.is_set():
            if not exchange.wait(POLL_SECONDS):
                return
        try:
            self.inner.serve(exchange)
        finally:
            self.finished.set()

    def wait_arrived(self, timeout: float) -> None:
        if not self.arrived.wait(timeout):
            raise FaultServerError(f"no request reached the held step within {timeout:.0f} s")

    def release(self) -> None:
        self.released.set()

    def wait_finished(self, timeout: float) -> None:
        if not self.finished.wait(timeout):
            raise FaultServerError(f"the released step did not finish within {timeout:.0f} s")

    def __str__(self) -> str:
        return f"Hold({self.inner})"


class Script:
    """A list of steps consumed one per request; the last one repeats."""

    def __init__(self, steps: list[Step], path: str | None, method: str | None):
        if not steps:
            raise FaultServerError("a script needs at least one step")
        self.steps = list(steps)
        self.path = path
        self.method = method
        self.used = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or self.path == path) and (self.method is None or self.method == method)

    def next_step(self) -> Step:
        step = self.steps[min(self.used, len(self.steps) - 1)]
        self.used += 1
        return step


def redact_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name: "<redacted>" if name.lower() in SECRET_HEADERS else value for name, value in headers}


def json_keys(body: bytes) -> tuple[str, ...]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return ()
    return tuple(sorted(parsed)) if isinstance(parsed, dict) else ()


class FaultServer:
    """A threaded HTTP server on 127.0.0.1 that follows scripts; see the module docstring.

    With TLS (a certificate and key file), every connection is wrapped in
    TLS before the request is read.
    """

    def __init__(self, name: str = "fault", default: list[Step] | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.name = name
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.scripts: list[Script] = []
        self.default = Script(default or [status(404, "no script for this request")], None, None)
        self.recorded: list[RecordedRequest] = []
        self.listener: socket.socket | None = None
        self.port = 0
        self.listen_again_at: float | None = None
        self.accept_thread: threading.Thread | None = None
        self.handlers: set[threading.Thread] = set()
        self.connections: set[socket.socket] = set()
        self.tls_context: ssl.SSLContext | None = None
        if tls is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls[0]), str(tls[1]))

    # Start and stop

    def start(self) -> "FaultServer":
        self.listen()
        self.accept_thread = threading.Thread(target=self.accept_loop, name=f"{self.name}-accept", daemon=True)
        self.accept_thread.start()
        log.info("%s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        """Stop accepting, end every waiting step and close every connection."""
        self.stopping.set()
        with self.lock:
            self.close_listener()
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.accept_thread is not None:
            self.accept_thread.join(timeout=5)
        for handler in list(self.handlers):
            handler.join(timeout=5)
        log.info("%s on port %d stopped after %d requests", self.name, self.port, len(self.recorded))

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # Scripts and records

    def script(self, steps: list[Step], path: str | None = None, method: str | None = None) -> None:
        """Serve requests for PATH (and METHOD, when given) with STEPS; no PATH replaces the default script."""
        with self.lock:
            if path is None and method is None:
                self.default = Script(steps, None, None)
                return
            self.scripts = [s for s in self.scripts if (s.path, s.method) != (path, method)]
            self.scripts.append(Script(steps, path, method))

    def requests(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.recorded
                    if (path is None or r.path == path) and (method is None or r.method == method)]

    def request_count(self, path: str | None = None, method: str | None = None) -> int:
        return len(self.requests(path, method))

    def wait_for_requests(self, count: int, timeout: float, path: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while self.request_count(path) < count:
            if time.monotonic() > deadline:
                raise FaultServerError(
                    f"{self.name}: {self.request_count(path)} requests for {path or 'any path'} "
                    f"after {timeout:.0f} s, expected {count}")
            time.sleep(POLL_SECONDS)

    # Listening

    def refuse_connections(self, seconds: float | None = None) -> None:
        """Stop listening, so the kernel refuses connections; listen again after SECONDS if given."""
        with self.lock:
            self.close_listener()
            self.listen_again_at = time.monotonic() + seconds if seconds is not None else None
        log.info("%s refuses connections%s", self.name, f" for {seconds} s" if seconds is not None else "")

    def accept_connections(self) -> None:
        """Listen again on the same port after ``refuse_connections``."""
        with self.lock:
            if self.listener is None:
                self.listen_locked()
            self.listen_again_at = None

    def listen(self) -> None:
        with self.lock:
            self.listen_locked()

    def listen_locked(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The old listening socket may still be referenced for a moment by
        # the accept thread's select, which keeps the port bound.
        for _ in range(100):
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if self.port == 0:
                    raise
                time.sleep(POLL_SECONDS)
        else:
            listener.close()
            raise FaultServerError(f"{self.name}: port {self.port} stayed busy; cannot listen again")
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener

    def close_listener(self) -> None:
        if self.listener is None:
            return
        # shutdown() takes the socket out of the listening state at once, even
        # while the accept thread's select still holds a reference to it.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.listener = None

    def accept_loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                listener = self.listener
                if listener is None and self.listen_again_at is not None and time.monotonic() >= self.listen_again_at:
                    self.listen_locked()
                    self.listen_again_at = None
                    log.info("%s listens again on port %d", self.name, self.port)
                    listener = self.listener
            if listener is None:
                self.stopping.wait(POLL_SECONDS)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], 0.05)
                if not readable:
                    continue
                connection, _ = listener.accept()
            except (OSError, ValueError):
                continue
            handler = threading.Thread(target=self.handle, args=(connection,), name=f"{self.name}-handler",
                                       daemon=True)
            with self.lock:
                self.handlers.add(handler)
                self.connections.add(connection)
            handler.start()

    # Requests

    def handle(self, connection: socket.socket) -> None:
        raw_connection = connection
        try:
            if self.tls_context is not None:
                connection.settimeout(REQUEST_READ_TIMEOUT_SECONDS)
                connection = self.tls_context.wrap_socket(connection, server_side=True)
            connection.settimeout(REQUEST_READ_TIMEOUT_SECONDS)
            request = read_request(connection)
            if request is None:
                return
            method, target, headers, body = request
            path = target.split("?", 1)[0]
            with self.lock:
                script = next((s for s in self.scripts if s.matches(method, path)), self.default)
                step = script.next_step()
                self.recorded.append(RecordedRequest(
                    method=method,
                    path=path,
                    headers=redact_headers(headers),
                    body_length=len(body),
                    body_sha256=hashlib.sha256(body).hexdigest(),
                    json_keys=json_keys(body),
                    received_at=time.monotonic(),
                    step=str(step),
                ))
            log.info("%s: %s %s -> %s", self.name, method, path, step)
            connection.settimeout(None)
            exchange = Exchange(self, connection, method, target, headers, body)
            step.serve(exchange)
            exchange.close()
        except (OSError, ssl.SSLError, ValueError) as error:
            # The client went away, or the step reset the connection on purpose.
            log.info("%s: connection ended: %s", self.name, error)
        finally:
            try:
                connection.close()
            except OSError:
                pass
            with self.lock:
                self.connections.discard(raw_connection)
                self.handlers.discard(threading.current_thread())


def read_request(connection: socket.socket) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    """Read one HTTP/1.1 request; return None if the client closed the connection before sending one.

    Raises ValueError for a malformed or oversized request.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            if data:
                raise ValueError("connection closed in the middle of the request head")
            return None
        data += chunk
        if len(data) > MAX_HEAD_BYTES:
            raise ValueError(f"request head larger than {MAX_HEAD_BYTES} bytes")
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError(f"malformed request line {lines[0]!r}")
    method, target, _ = parts
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    lowered = {name.lower(): value for name, value in headers}

    if lowered.get("transfer-encoding", "").lower() == "chunked":
        body, rest = read_chunked(connection, rest)
    else:
        length = int(lowered.get("content-length", "0"))
        if length > MAX_REQUEST_BODY_BYTES:
            raise ValueError(f"request body of {length} bytes is larger than {MAX_REQUEST_BODY_BYTES}")
        while len(rest) < length:
            chunk = connection.recv(65536)
            if not chunk:
                raise ValueError("connection closed in the middle of the request body")
            rest += chunk
        body = rest[:length]
    return method, target, headers, body


def read_chunked(connection: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    """Decode a chunked request body; return it and any bytes read past its end."""
    body = b""

    def fill(needed: int) -> None:
        nonlocal buffered
        while len(buffered) < needed:
            chunk = connection.recv(65536)
            if not chunk:
                raise ValueError("connection closed in the middle of a chunked body")
            buffered += chunk

    while True:
        while b"\r\n" not in buffered:
            fill(len(buffered) + 1)
        size_line, buffered = buffered.split(b"\r\n", 1)
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            while b"\r\n\r\n" not in b"\r\n" + buffered:
                fill(len(buffered) + 1)
            _, buffered = (b"\r\n" + buffered).split(b"\r\n\r\n", 1)
            return body, buffered
        fill(size + 2)
        body += buffered[:size]
        if len(body) > MAX_REQUEST_BODY_BYTES:
            raise ValueError(f"chunked request body larger than {MAX_REQUEST_BODY_BYTES} bytes")
        buffered = buffered[size + 2:]
