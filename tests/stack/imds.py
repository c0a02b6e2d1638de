"""A fake EC2 instance metadata service (IMDS) for one instance.

The status codes are those AWS lists in its knowledge-center article "How do
I troubleshoot instance metadata issues on my EC2 Linux instance?": 400 for
an invalid token PUT, 401 for a GET with an invalid token, 403 for a request
that is not allowed, 404 for an unknown path.

* ``PUT /latest/api/token`` needs ``X-aws-ec2-metadata-token-ttl-seconds``
  between 1 and 21600 (six hours, the EC2 maximum), otherwise 400, and
  returns a random session token that expires after that many seconds.
  A PUT that carries ``X-Forwarded-For`` gets 403. NOTE: the article names
  no status for that case, so 403 is an assumption.
* A GET with a token header that is unknown or expired gets 401, in every
  mode. A GET without a token works unless the server requires IMDSv2.

Modes: ``both`` (IMDSv1 and IMDSv2), ``v2-only`` (a GET without a valid
token gets 401) and ``v1-only`` (the token PUT gets 403 or 404, like an
instance or proxy without IMDSv2).

Tests can change the served instance, override any path with a fixed status
and body, and read how many requests each path got.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL_SECONDS = 21600

MODES = ("both", "v2-only", "v1-only")

# The body EC2's metadata service sends with a 404.
NOT_FOUND_BODY = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
         "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
"""


def aws_timestamp(moment: datetime | None = None) -> str:
    """Format MOMENT (default now) as IMDS does, e.g. ``2024-05-01T12:00:00Z``."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class InstanceProfile:
    """The IAM instance profile attached to an instance."""

    arn: str
    profile_id: str


@dataclass
class RoleCredentials:
    """Temporary credentials that IMDS serves for the instance's role."""

    role_name: str
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: str


@dataclass
class InstanceMetadata:
    """What the IMDS serves for one instance."""

    instance_id: str
    image_id: str
    region: str
    availability_zone: str
    private_ip: str
    instance_type: str
    document: bytes
    pkcs7: str
    rsa2048: str
    signature: str
    instance_profile: InstanceProfile | None = None
    credentials: RoleCredentials | None = None
    last_updated: str = field(default_factory=aws_timestamp)


@dataclass
class Override:
    """A fixed reply served for one path instead of the normal one."""

    status: int
    body: bytes
    content_type: str = "text/html"


class ImdsState:
    """Everything the request handler reads, guarded by one lock."""

    def __init__(self, instance: InstanceMetadata):
        self.lock = threading.Lock()
        self.instance = instance
        self.mode = "both"
        self.v1_only_token_status = 403
        self.tokens: dict[str, float] = {}
        self.overrides: dict[str, Override] = {}
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str, bool]] = []


class ImdsHandler(BaseHTTPRequestHandler):
    server_version = "EC2ws"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> ImdsState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (name fixed by http.server)
        log.info("%s %s", self.address_string(), format % args)

    def send_text(self, status: int, body: bytes | str, content_type: str = "text/plain",
                  headers: dict[str, str] | None = None) -> None:
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_status(self, status: int) -> None:
        if status == 404:
            self.send_text(404, NOT_FOUND_BODY, "text/html")
            return
        reason = self.responses.get(status, ("",))[0]
        body = f"<html><body><h1>{status} - {reason}</h1></body></html>\n"
        self.send_text(status, body, "text/html")

    def record(self, path: str) -> Override | None:
        with self.state.lock:
            self.state.counts[path] += 1
            self.state.requests.append((self.command, path, TOKEN_HEADER.lower() in
                                        {name.lower() for name in self.headers.keys()}))
            return self.state.overrides.get(path)

    def drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_PUT(self) -> None:  # noqa: N802 (name fixed by http.server)
        self.drain_body()
        path = self.path.split("?", 1)[0]
        override = self.record(path)
        if override is not None:
            self.send_text(override.status, override.body, override.content_type)
            return
        if path != TOKEN_PATH:
            self.send_status(405 if self.is_known_path(path) else 404)
            return

        with self.state.lock:
            mode = self.state.mode
            v1_only_status = self.state.v1_only_token_status
        if mode == "v1-only":
            self.send_status(v1_only_status)
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self.send_status(403)
            return

        ttl_text = self.headers.get(TOKEN_TTL_HEADER)
        try:
            ttl = int(ttl_text) if ttl_text is not None else 0
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TOKEN_TTL_SECONDS:
            self.send_status(400)
            return

        token = secrets.token_urlsafe(42)
        with self.state.lock:
            self.state.tokens[token] = time.monotonic() + ttl
        self.send_text(200, token, headers={TOKEN_TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
        path = self.path.split("?", 1)[0]
        override = self.record(path)

        token = self.headers.get(TOKEN_HEADER)
        with self.state.lock:
            mode = self.state.mode
            token_valid = token is not None and self.state.tokens.get(token, 0.0) > time.monotonic()
        if token is not None and not token_valid:
            self.send_status(401)
            return
        if token is None and mode == "v2-only":
            self.send_status(401)
            return

        if override is not None:
            self.send_text(override.status, override.body, override.content_type)
            return

        body = self.metadata_body(path)
        if body is None:
            self.send_status(404)
            return
        self.send_text(200, body)

    def do_POST(self) -> None:  # noqa: N802 (name fixed by http.server)
        self.drain_body()
        self.record(self.path.split("?", 1)[0])
        self.send_status(405)

    def is_known_path(self, path: str) -> bool:
        return self.metadata_body(path) is not None

    def metadata_body(self, path: str) -> str | None:
        """Return the body IMDS serves for PATH, or None for a 404."""
        with self.state.lock:
            instance = self.state.instance
        profile = instance.instance_profile
        credentials = instance.credentials

        identity = {
            "/latest/dynamic/instance-identity/": "document\npkcs7\nrsa2048\nsignature",
            "/latest/dynamic/instance-identity/document": instance.document.decode(),
            "/latest/dynamic/instance-identity/pkcs7": instance.pkcs7,
            "/latest/dynamic/instance-identity/rsa2048": instance.rsa2048,
            "/latest/dynamic/instance-identity/signature": instance.signature,
        }
        if path in identity:
            return identity[path]

        simple = {
            "/latest/meta-data/instance-id": instance.instance_id,
            "/latest/meta-data/ami-id": instance.image_id,
            "/latest/meta-data/instance-type": instance.instance_type,
            "/latest/meta-data/local-ipv4": instance.private_ip,
            "/latest/meta-data/placement/availability-zone": instance.availability_zone,
            "/latest/meta-data/placement/region": instance.region,
        }
        if path in simple:
            return simple[path]

        if path == "/latest/meta-data/iam/info":
            if profile is None:
                return None
            return json.dumps({
                "Code": "Success",
                "LastUpdated": instance.last_updated,
                "InstanceProfileArn": profile.arn,
                "InstanceProfileId": profile.profile_id,
            }, indent=2)

        if path == "/latest/meta-data/iam/security-credentials/":
            if profile is None or credentials is None:
                return None
            return credentials.role_name

        prefix = "/latest/meta-data/iam/security-credentials/"
        if path.startswith(prefix) and credentials is not None and profile is not None:
            if path[len(prefix):] != credentials.role_name:
                return None
            return json.dumps({
                "Code": "Success",
                "LastUpdated": instance.last_updated,
                "Type": "AWS-HMAC",
                "AccessKeyId": credentials.access_key_id,
                "SecretAccessKey": credentials.secret_access_key,
                "Token": credentials.token,
                "Expiration": credentials.expiration,
            }, indent=2)

        return None


class ImdsServer:
    """An IMDS on 127.0.0.1 with a free port, served from a background thread."""

    def __init__(self, instance: InstanceMetadata):
        self.state = ImdsState(instance)
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> "ImdsServer":
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), ImdsHandler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="imds", daemon=True)
        self.thread.start()
        log.info("IMDS listening on %s for instance %s", self.url, self.state.instance.instance_id)
        return self

    def stop(self) -> None:
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        log.info("IMDS on %s stopped", self.url)
        self.httpd = None

    @property
    def url(self) -> str:
        assert self.httpd is not None, "IMDS server is not running"
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def instance(self) -> InstanceMetadata:
        with self.state.lock:
            return self.state.instance

    def set_instance(self, instance: InstanceMetadata) -> None:
        with self.state.lock:
            self.state.instance = instance

    def set_mode(self, mode: str, v1_only_token_status: int = 403) -> None:
        """Switch to MODE; in ``v1-only`` the token PUT gets V1_ONLY_TOKEN_STATUS."""
        if mode not in MODES:
            raise ValueError(f"unknown IMDS mode {mode!r}; expected one of {MODES}")
        if v1_only_token_status not in (403, 404, 405):
            raise ValueError(f"v1-only token status must be 403, 404 or 405, not {v1_only_token_status}")
        with self.state.lock:
            self.state.mode = mode
            self.state.v1_only_token_status = v1_only_token_status

    def set_response(self, path: str, status: int, body: bytes | str,
                     content_type: str = "text/html") -> None:
        """Serve STATUS and BODY for GET and PUT of PATH until ``clear_responses``.

        A GET still has to pass the token checks of the current mode first.
        """
        if isinstance(body, str):
            body = body.encode()
        with self.state.lock:
            self.state.overrides[path] = Override(status, body, content_type)

    def clear_responses(self) -> None:
        with self.state.lock:
            self.state.overrides.clear()

    def remove_instance_profile(self) -> None:
        with self.state.lock:
            self.state.instance.instance_profile = None
            self.state.instance.credentials = None

    def set_credentials(self, credentials: RoleCredentials | None) -> None:
        with self.state.lock:
            self.state.instance.credentials = credentials

    def expire_tokens(self) -> None:
        with self.state.lock:
            self.state.tokens.clear()

    def request_count(self, path: str | None = None) -> int:
        """Return how many requests PATH got, or all paths together when PATH is None."""
        with self.state.lock:
            if path is None:
                return sum(self.state.counts.values())
            return self.state.counts[path]

    def requests(self) -> list[tuple[str, str, bool]]:
        """Return (method, path, had token header) for every request so far."""
        with self.state.lock:
            return list(self.state.requests)

    def reset_counts(self) -> None:
        with self.state.lock:
            self.state.counts.clear()
            self.state.requests.clear()
