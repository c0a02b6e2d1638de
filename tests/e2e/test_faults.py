"""Fault tests: the binary against servers that fail, hang, lie or go away.

A fault server (tests/stack/fault_server.py) sits in front of OpenBao or
IMDS and follows a script, usually some faults and then forwarding to the
real server, so a run that recovers ends with a real login. The last part
uses real servers: an OpenBao with raft storage that is stopped, started,
sealed and unsealed, and a moto that OpenBao cannot reach.

Durations are measured, not raced: bounds are loose enough for a loaded
2-core machine, and RELIABILITY.md lists the measured values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pytest

from tests.e2e.fault_support import (  # noqa: F401 (vault_front, imds_front and timed are fixtures)
    OLD_TOKEN,
    assert_duration,
    assert_file_untouched,
    assert_gave_up,
    assert_nonce_complete,
    assert_retry_lines,
    imds_front,
    read_token,
    record_measurement,
    retry_lines,
    run_measuring_memory,
    timed,
    vault_front,
    write_old_token,
)
from tests.stack.fault_server import (
    Close,
    Drip,
    FaultServer,
    Hang,
    Proxy,
    Redirect,
    Refuse,
    Reply,
    ResetMidBody,
    Step,
    Truncate,
    html_502,
    malformed_json,
    oversized,
    status,
)
from tests.stack.faults import RestartableOpenBao, server_certificate, start_restartable_openbao
from tests.stack.stack import PROFILE_ROLE, READ_POLICY

LOGIN_PATH = "/v1/auth/aws/login"
LOOKUP_PATH = "/v1/auth/token/lookup-self"
TOKEN_PUT_PATH = "/latest/api/token"
PKCS7_PATH = "/latest/dynamic/instance-identity/pkcs7"
IAM_INFO_PATH = "/latest/meta-data/iam/info"

# What a run gives up with: one attempt per step, a short deadline.
MAX_WAIT = 1.0
MAX_BACKOFF = 0.2
TIMEOUT = 1.0
SHORT_RETRY = ("--max-wait", "1s", "--min-backoff", "100ms", "--max-backoff", "200ms", "--timeout", "1s")
# What a run recovers with: a deadline far beyond the faults, short delays.
PATIENT_MAX_BACKOFF = 0.3
PATIENT_RETRY = ("--max-wait", "20s", "--min-backoff", "100ms", "--max-backoff", "300ms", "--timeout", "1s")
# IMDS has fixed limits: 2 s to connect, 5 s for a whole request.
IMDS_REQUEST_TIMEOUT = 5.0
# Slack for process start, the stack's own latency and a loaded machine.
SLACK = 3.0

# A login reply that parses, for faults that cut it short without a real Vault.
FAKE_LOGIN_REPLY = (
    '{"request_id":"0","auth":{"client_token":"s.fault-server-token","accessor":"a",'
    '"policies":["default"],"lease_duration":60},"warnings":null}'
)


def assert_login_works(stack, token_path, instance, nonce_path) -> None:
    """Check the token file contains a token of the profile role and OpenBao recorded the nonce on disk."""
    data = stack.lookup_self(read_token(token_path))
    assert data["meta"]["role"] == PROFILE_ROLE
    assert READ_POLICY in data["policies"]
    assert stack.access_list_nonce(instance.instance_id) == assert_nonce_complete(nonce_path)


def assert_gaps_cover_delays(server: FaultServer, lines, path: str | None = None) -> None:
    """Check the time between consecutive requests is at least each logged retry delay.

    Delays are logged rounded to 0.1 s, hence the 0.06 s allowance.
    """
    requests = server.requests(path)
    for line, before, after in zip(lines, requests, requests[1:]):
        gap = after.received_at - before.received_at
        assert gap >= line.delay - 0.06, f"attempt {line.attempt}: {gap:.3f} s between requests, delay {line.delay} s"


# Vault faults the binary outlasts


@dataclass(frozen=True)
class RecoveringFault:
    """Faults that precede a working OpenBao, and what the retries must show."""

    name: str
    # Builds the fault steps from OpenBao's URL; forwarding is appended.
    steps: Callable[[str], list[Step]]
    # Exact number of retry lines, or None when it depends on timing.
    retries: int | None
    # Text every retry line contains.
    reason: str


VAULT_RECOVERING_FAULTS = [
    RecoveringFault("closed-without-reply", lambda up: [Close(), Close()], 2, "failed: Peer disconnected"),
    RecoveringFault("reset-mid-body", lambda up: [ResetMidBody(Proxy(up))], 1, "failed:"),
    RecoveringFault("truncated-body", lambda up: [Truncate(Proxy(up))], 1, "failed:"),
    RecoveringFault("malformed-json-200", lambda up: [malformed_json()], 1, "not a JSON object"),
    RecoveringFault("html-502", lambda up: [html_502()], 1, "502 Bad Gateway"),
    RecoveringFault("429-500-503", lambda up: [status(429), status(500), status(503)], 3,
                    "Vault is unavailable (HTTP "),
    RecoveringFault("hang-past-timeout", lambda up: [Hang()], 1, "timed out"),
    RecoveringFault("drip-past-timeout", lambda up: [Drip(Proxy(up), 0.05)], 1, "timed out"),
    RecoveringFault("oversized-5mib", lambda up: [oversized()], 1, "response body larger than 1048576 bytes"),
    RecoveringFault("refused-for-1s", lambda up: [Refuse(1.0)], None, "failed:"),
]


@pytest.mark.parametrize("fault", VAULT_RECOVERING_FAULTS, ids=lambda fault: fault.name)
def test_vault_fault_then_success(stack, timed, imds, instance, vault_front, tmp_path, fault):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    vault_front.script([*fault.steps(stack.vault_addr), Proxy(stack.vault_addr)])

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, server=vault_front.url), label=fault.name)

    assert run.code == 0, run.describe()
    assert_login_works(stack, token_path, instance, nonce_path)
    lines = assert_retry_lines(run.result, "Vault login", count=fault.retries, max_backoff=PATIENT_MAX_BACKOFF,
                               reason=fault.reason)
    if fault.retries is None:
        # Refused: the first connection is reset, the next ones refused by
        # the kernel until the server listens again after a second.
        assert len(lines) >= 2, run.describe()
        assert any("Connection refused" in line.reason for line in lines), run.describe()
        assert vault_front.request_count(LOGIN_PATH) == 2
        assert_duration(run, 1.0, 1.0 + PATIENT_MAX_BACKOFF + SLACK)
    else:
        assert vault_front.request_count(LOGIN_PATH) == fault.retries + 1
        assert_gaps_cover_delays(vault_front, lines, LOGIN_PATH)
        per_attempt = TIMEOUT + PATIENT_MAX_BACKOFF
        assert_duration(run, 0, fault.retries * per_attempt + SLACK)


def test_vault_status_sequence_logs_each_status(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    vault_front.script([status(429), status(500), status(503), Proxy(stack.vault_addr)])

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, server=vault_front.url))

    assert run.code == 0, run.describe()
    lines = retry_lines(run.result.stderr, "Vault login")
    assert len(lines) == 3, run.describe()
    assert "(HTTP 429): rate limit quota exceeded" in lines[0].reason
    assert "(HTTP 500): internal error" in lines[1].reason
    assert "(HTTP 503): Vault is sealed" in lines[2].reason
    # Every attempt sent the same login: same nonce, same signature.
    bodies = {request.body_sha256 for request in vault_front.requests(LOGIN_PATH)}
    assert len(bodies) == 1


# Vault faults that last past --max-wait


@dataclass(frozen=True)
class LastingFault:
    """A fault that never ends, and the exit code and message the run must end with."""

    name: str
    steps: list[Step]
    code: int
    message: str


VAULT_LASTING_FAULTS = [
    LastingFault("closed-without-reply", [Close()], 75, "failed: Peer disconnected"),
    LastingFault("reset-mid-body", [ResetMidBody(Reply(200, FAKE_LOGIN_REPLY))], 75, "failed:"),
    LastingFault("truncated-body", [Truncate(Reply(200, FAKE_LOGIN_REPLY))], 75, "failed:"),
    LastingFault("malformed-json-200", [malformed_json()], 76, "not a JSON object"),
    LastingFault("html-502", [html_502()], 75, "502 Bad Gateway"),
    LastingFault("sealed-503", [status(503)], 75, "Vault is sealed"),
    LastingFault("hang", [Hang()], 75, "timed out"),
    LastingFault("slow-drip", [Drip(Reply(200, FAKE_LOGIN_REPLY), 0.05)], 75, "timed out"),
    LastingFault("oversized-5mib", [oversized()], 75, "response body larger than 1048576 bytes"),
    LastingFault("oversized-5mib-chunked", [oversized(chunked=True)], 75, "response body larger than 1048576 bytes"),
]


@pytest.mark.parametrize("fault", VAULT_LASTING_FAULTS, ids=lambda fault: fault.name)
def test_vault_fault_until_max_wait(stack, timed, imds, instance, vault_front, tmp_path, fault):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.script(fault.steps)

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *SHORT_RETRY, server=vault_front.url), label=fault.name)

    assert run.code == fault.code, run.describe()
    error_line = run.result.stderr.strip().splitlines()[-1]
    assert error_line.startswith("vault-stork: error: "), run.describe()
    assert fault.message in error_line, run.describe()
    attempts = vault_front.request_count(LOGIN_PATH)
    assert_gave_up(run.result, attempts)
    assert_retry_lines(run.result, "Vault login", count=attempts - 1, max_backoff=MAX_BACKOFF, reason=fault.message)
    assert_duration(run, MAX_WAIT - MAX_BACKOFF, MAX_WAIT + TIMEOUT + SLACK)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    # The nonce was stored before the first attempt and is kept.
    assert_nonce_complete(nonce_path)
    assert stack.access_list_nonce(instance.instance_id) is None


def test_vault_refused_until_max_wait(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.refuse_connections()

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *SHORT_RETRY, server=vault_front.url))

    assert run.code == 75, run.describe()
    assert "Connection refused" in run.result.stderr
    lines = assert_retry_lines(run.result, "Vault login", max_backoff=MAX_BACKOFF, reason="Connection refused")
    assert_gave_up(run.result, len(lines) + 1)
    assert_duration(run, MAX_WAIT - MAX_BACKOFF, MAX_WAIT + SLACK)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert_nonce_complete(nonce_path)


def test_vault_hang_longer_timeout_than_max_wait(stack, timed, imds, instance, vault_front, tmp_path):
    """A request in flight at the deadline runs to its own --timeout: a run can last max-wait + timeout."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    vault_front.script([Hang()])

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           "--max-wait", "1s", "--min-backoff", "100ms", "--max-backoff", "200ms",
                                           "--timeout", "3s", server=vault_front.url))

    assert run.code == 75, run.describe()
    assert "timed out" in run.result.stderr
    assert vault_front.request_count(LOGIN_PATH) == 1
    assert_duration(run, 3.0, 3.0 + SLACK)
    assert not token_path.exists()


# Final Vault responses


@dataclass(frozen=True)
class FinalResponse:
    """A Vault response that must end the run at once, whatever --max-wait says."""

    name: str
    steps: list[Step]
    code: int
    message: str
    requests: int = 1


VAULT_FINAL_RESPONSES = [
    FinalResponse("403-permission-denied", [status(403, "permission denied")], 77, "permission denied"),
    FinalResponse("400-role-not-found", [status(400, 'entry for role "x" not found')], 77, "not found"),
    FinalResponse("400-nonce-mismatch", [status(400, "client nonce mismatch")], 80, "client nonce mismatch"),
    FinalResponse("200-without-auth", [Reply(200, '{"auth":null,"warnings":["role has no policies"]}')], 76,
                "role has no policies"),
    FinalResponse("302-not-followed", [Redirect("http://127.0.0.1:1/v1/auth/aws/login", status=302)], 75,
                "Vault redirected the login (HTTP 302"),
]


@pytest.mark.parametrize("response", VAULT_FINAL_RESPONSES, ids=lambda response: response.name)
def test_vault_final_response_not_retried(stack, timed, imds, instance, vault_front, tmp_path, response):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    vault_front.script(response.steps)

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, server=vault_front.url), label=response.name)

    assert run.code == response.code, run.describe()
    assert response.message in run.result.stderr
    assert vault_front.request_count(LOGIN_PATH) == response.requests
    assert retry_lines(run.result.stderr, "Vault login") == []
    assert_duration(run, 0, SLACK)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert_nonce_complete(nonce_path)


def test_vault_redirect_loop_stops_after_three_hops(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    vault_front.script([Redirect(vault_front.url + LOGIN_PATH)])

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, server=vault_front.url))

    assert run.code == 75, run.describe()
    assert "more than 3 redirects" in run.result.stderr
    # The first request and three redirects, then the run ends without retrying.
    assert vault_front.request_count(LOGIN_PATH) == 4
    assert retry_lines(run.result.stderr, "Vault login") == []
    assert not token_path.exists()


# Redirects


@pytest.mark.parametrize("redirect_status", [307, 308])
def test_vault_redirect_to_real_openbao(stack, timed, imds, instance, vault_front, tmp_path, redirect_status):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    with FaultServer("active-node", default=[Proxy(stack.vault_addr)]) as active:
        vault_front.script([Redirect(active.url + LOGIN_PATH, status=redirect_status)])

        run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                               *PATIENT_RETRY, server=vault_front.url), label=str(redirect_status))

        assert run.code == 0, run.describe()
        assert_login_works(stack, token_path, instance, nonce_path)
        [first] = vault_front.requests(LOGIN_PATH)
        [second] = active.requests(LOGIN_PATH)
    assert first.method == second.method == "POST"
    assert first.body_length == second.body_length
    assert first.body_sha256 == second.body_sha256
    assert second.json_keys == ("nonce", "pkcs7", "role")
    assert second.headers.get("content-type") == "application/json"


def test_vault_redirect_https_to_http_refused(stack, timed, imds, instance, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    ca_certificate, certificate, key = server_certificate(tmp_path / "tls")
    with FaultServer("plain-http") as plain, FaultServer("tls-front", tls=(certificate, key)) as tls_front:
        tls_front.script([Redirect(plain.url + LOGIN_PATH)])

        run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                               "--ca-cert", str(ca_certificate), *PATIENT_RETRY,
                                               server=tls_front.url))

        assert run.code == 79, run.describe()
        assert "refusing to send the login without TLS" in run.result.stderr
        assert tls_front.request_count(LOGIN_PATH) == 1
        assert plain.request_count() == 0
    assert retry_lines(run.result.stderr, "Vault login") == []
    assert not token_path.exists()


def test_login_request_carries_namespace(stack, timed, imds, instance, vault_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    vault_front.script([status(403, "permission denied")])

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           "--namespace", "team-a", "--max-wait", "0", server=vault_front.url))

    assert run.code == 77, run.describe()
    [login] = vault_front.requests(LOGIN_PATH)
    assert login.headers.get("x-vault-namespace") == "team-a"


# Memory and the token lookup


def test_oversized_reply_memory_bounded(stack, stork, imds, instance, vault_front, tmp_path):
    """A 64 MiB reply costs the binary no more memory than the 1 MiB cap allows."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    baseline, baseline_peak = run_measuring_memory(
        stork, stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, server=vault_front.url))
    assert baseline.code == 0, baseline.describe()
    body_size = 64 * 1024 * 1024
    vault_front.script([oversized(body_size, chunked=True)])

    # Repeated attempts for two seconds give the polling many chances to
    # see the peak of an attempt.
    result, peak = run_measuring_memory(
        stork, stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--max-wait", "2s",
                                "--min-backoff", "10ms", "--max-backoff", "50ms", server=vault_front.url))

    assert result.code == 75, result.describe()
    assert "response body larger than 1048576 bytes" in result.stderr
    assert vault_front.request_count(LOGIN_PATH) >= 5
    record_measurement("test_oversized_reply_memory_bounded", "peak VmHWM", baseline_kib=baseline_peak,
                       oversized_reply_kib=peak)
    assert baseline_peak > 0
    # The 1 MiB cap plus room for buffers, far below the body size.
    assert peak < baseline_peak + 8 * 1024, f"peak {peak} KiB, baseline {baseline_peak} KiB"
    assert peak < body_size // 1024


def test_token_lookup_hang_still_logs_in(stack, timed, imds, instance, vault_front, tmp_path):
    """With --min-ttl, a token lookup that hangs costs one --timeout, then the login goes ahead."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    write_old_token(token_path)
    vault_front.script([Hang()], path=LOOKUP_PATH)

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, "--min-ttl", "1m",
                                           *PATIENT_RETRY, server=vault_front.url))

    assert run.code == 0, run.describe()
    assert vault_front.request_count(LOOKUP_PATH) == 1
    assert vault_front.request_count(LOGIN_PATH) == 1
    assert_login_works(stack, token_path, instance, nonce_path)
    assert_duration(run, TIMEOUT, TIMEOUT + SLACK)


# IMDS faults


IMDS_RECOVERING_FAULTS = [
    RecoveringFault("closed-without-reply", lambda up: [Close()], 1, "failed: Peer disconnected"),
    RecoveringFault("reset-mid-body", lambda up: [ResetMidBody(Proxy(up))], 1, "failed:"),
    RecoveringFault("truncated-body", lambda up: [Truncate(Proxy(up))], 1, "failed:"),
    RecoveringFault("html-502", lambda up: [html_502()], 1, "answered HTTP 502"),
    RecoveringFault("429-500-503", lambda up: [status(429), status(500), status(503)], 3, "answered HTTP"),
    RecoveringFault("drip-within-limit", lambda up: [Drip(Proxy(up), 0.02, chunk=64)], 0, ""),
]


@pytest.mark.parametrize("fault", IMDS_RECOVERING_FAULTS, ids=lambda fault: fault.name)
def test_imds_fault_then_success(stack, timed, imds, instance, imds_front, tmp_path, fault):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds_front.script([*fault.steps(imds.url), Proxy(imds.url)], path=PKCS7_PATH)

    run = timed.run(timed.stork.login_args(None, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, imds_url=imds_front.url), label=fault.name)

    assert run.code == 0, run.describe()
    assert_login_works(stack, token_path, instance, nonce_path)
    lines = assert_retry_lines(run.result, f"IMDS GET {PKCS7_PATH}", count=fault.retries,
                               max_backoff=PATIENT_MAX_BACKOFF, reason=fault.reason)
    assert imds_front.request_count(PKCS7_PATH) == fault.retries + 1
    assert_gaps_cover_delays(imds_front, lines, PKCS7_PATH)


def test_imds_refused_then_success(stack, timed, imds, instance, imds_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds_front.script([Refuse(1.0), Proxy(imds.url)], path=TOKEN_PUT_PATH)

    run = timed.run(timed.stork.login_args(None, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, imds_url=imds_front.url))

    assert run.code == 0, run.describe()
    assert_login_works(stack, token_path, instance, nonce_path)
    lines = assert_retry_lines(run.result, "IMDS token request", max_backoff=PATIENT_MAX_BACKOFF)
    assert any("Connection refused" in line.reason for line in lines), run.describe()
    assert_duration(run, 1.0, 1.0 + SLACK)


IMDS_LASTING_FAULTS = [
    LastingFault("hang", [Hang()], 69, "timed out"),
    LastingFault("slow-drip", [Drip(Reply(200, "A" * 200, "text/plain"), 0.05)], 69, "timed out"),
    LastingFault("oversized-5mib", [oversized()], 69, "response body larger than 1048576 bytes"),
    LastingFault("throttled-503", [status(503)], 69, "answered HTTP 503"),
    LastingFault("closed-without-reply", [Close()], 69, "failed: Peer disconnected"),
]


@pytest.mark.parametrize("fault", IMDS_LASTING_FAULTS, ids=lambda fault: fault.name)
def test_imds_fault_until_max_wait(stack, timed, imds, instance, imds_front, tmp_path, fault):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    imds_front.script(fault.steps, path=PKCS7_PATH)
    logins_before = stack.login_requests()

    run = timed.run(timed.stork.login_args(None, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *SHORT_RETRY, imds_url=imds_front.url), label=fault.name)

    assert run.code == fault.code, run.describe()
    assert fault.message in run.result.stderr.strip().splitlines()[-1], run.describe()
    attempts = imds_front.request_count(PKCS7_PATH)
    assert_retry_lines(run.result, f"IMDS GET {PKCS7_PATH}", count=attempts - 1, max_backoff=MAX_BACKOFF,
                       reason=fault.message)
    # An attempt in flight at the deadline runs to the IMDS request limit.
    assert_duration(run, MAX_WAIT - MAX_BACKOFF, MAX_WAIT + IMDS_REQUEST_TIMEOUT + SLACK)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    # The identity comes before the nonce: a failed IMDS leaves no nonce and no login.
    assert not nonce_path.exists()
    assert stack.login_requests() == logins_before


def test_imds_redirect_not_followed(stack, timed, imds, instance, imds_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    with FaultServer("redirect-target") as target:
        imds_front.script([Redirect(target.url + PKCS7_PATH)], path=PKCS7_PATH)

        run = timed.run(timed.stork.login_args(None, token_path, nonce_path, "--role", PROFILE_ROLE,
                                               *PATIENT_RETRY, imds_url=imds_front.url))

        assert run.code == 69, run.describe()
        assert f"GET {PKCS7_PATH} answered HTTP 307" in run.result.stderr
        assert imds_front.request_count(PKCS7_PATH) == 1
        assert target.request_count() == 0
    assert not nonce_path.exists()


def test_imds_malformed_profile_not_retried(stack, timed, imds, instance, imds_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds_front.script([malformed_json()], path=IAM_INFO_PATH)

    run = timed.run(timed.stork.login_args(None, token_path, nonce_path, *PATIENT_RETRY,
                                           imds_url=imds_front.url))

    assert run.code == 69, run.describe()
    assert "no usable InstanceProfileArn" in run.result.stderr
    assert imds_front.request_count(IAM_INFO_PATH) == 1
    assert not nonce_path.exists()


def test_imds_token_hang_falls_back_to_v1(stack, timed, imds, instance, imds_front, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    imds_front.script([Hang()], path=TOKEN_PUT_PATH)

    run = timed.run(timed.stork.login_args(None, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *PATIENT_RETRY, imds_url=imds_front.url))

    assert run.code == 0, run.describe()
    assert "the IMDSv2 token request timed out" in run.result.stderr
    assert_login_works(stack, token_path, instance, nonce_path)
    [get] = imds_front.requests(PKCS7_PATH)
    assert "x-aws-ec2-metadata-token" not in get.headers
    # NOTE: the token request ends after about 2 s (the IMDS connect limit
    # is 2 s), not after the 5 s request limit that GET requests get. Which
    # ureq timeout ends it was not traced.
    assert_duration(run, 1.5, IMDS_REQUEST_TIMEOUT + SLACK)


# Real servers: an OpenBao that stops, starts and seals, and an AWS it cannot reach


@dataclass
class RestartableStack:
    """The restartable OpenBao and the fault server between it and moto."""

    bao: RestartableOpenBao
    moto_front: FaultServer

    def nonce_of(self, instance_id: str) -> str | None:
        reply = self.bao.client.read(f"auth/aws/identity-accesslist/{instance_id}")
        return reply["data"]["client_nonce"]

    def lookup_self(self, token: str) -> dict:
        return self.bao.client.read("auth/token/lookup-self", token=token)["data"]


@pytest.fixture(scope="module")
def restartable(stack):
    moto_front = FaultServer("moto-front", default=[Proxy(stack.moto_url)]).start()
    try:
        bao = start_restartable_openbao(stack, stack.run_dir, moto_front.url)
    except Exception:
        moto_front.stop()
        raise
    yield RestartableStack(bao, moto_front)
    bao.stop()
    moto_front.stop()


@pytest.fixture
def healthy(restartable):
    """The restartable stack, brought back to running, unsealed and reaching moto after the test."""
    yield restartable
    restartable.moto_front.accept_connections()
    if not restartable.bao.running():
        restartable.bao.start()
    elif restartable.bao.is_sealed():
        restartable.bao.unseal()


def test_openbao_restarted_within_max_wait(stack, timed, imds, instance, healthy, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    bao = healthy.bao
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *PATIENT_RETRY,
                                  server=bao.url)
    first = timed.run(args, label="before restart")
    assert first.code == 0, first.describe()
    first_token = read_token(token_path)
    # Another instance's nonce record, which only the restart could lose.
    other = stack.new_instance()
    bao.client.write("auth/aws/login", {"pkcs7": other.pkcs7, "nonce": "recorded-before-the-restart",
                                        "role": PROFILE_ROLE}, token="")

    bao.stop()
    running = timed.start(args, label="across restart")
    time.sleep(1.0)
    assert running.is_running(), "the run ended while OpenBao was stopped"
    bao.start(unseal=False)
    time.sleep(1.0)
    assert running.is_running(), "the run ended while OpenBao was sealed"
    unsealed_at = time.monotonic()
    bao.unseal()
    run = running.wait()
    after_unseal = time.monotonic() - unsealed_at

    assert run.code == 0, run.describe()
    reasons = [line.reason for line in assert_retry_lines(run.result, "Vault login", max_backoff=PATIENT_MAX_BACKOFF)]
    assert any("Connection refused" in reason for reason in reasons), run.describe()
    assert any("Vault is sealed" in reason for reason in reasons), run.describe()
    token = read_token(token_path)
    assert token != first_token
    assert healthy.lookup_self(token)["meta"]["role"] == PROFILE_ROLE
    assert healthy.nonce_of(other.instance_id) == "recorded-before-the-restart"
    assert healthy.nonce_of(instance.instance_id) == assert_nonce_complete(nonce_path)
    assert after_unseal < PATIENT_MAX_BACKOFF + SLACK, f"{after_unseal:.2f} s from unseal to exit"


def test_openbao_never_back(stack, timed, imds, instance, healthy, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    token_before = write_old_token(token_path)
    server = healthy.bao.url
    healthy.bao.stop()

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           "--max-wait", "2s", "--min-backoff", "100ms", "--max-backoff", "200ms",
                                           server=server))

    assert run.code == 75, run.describe()
    lines = assert_retry_lines(run.result, "Vault login", max_backoff=MAX_BACKOFF, reason="Connection refused")
    assert_gave_up(run.result, len(lines) + 1)
    assert_duration(run, 2.0 - MAX_BACKOFF, 2.0 + SLACK)
    assert_file_untouched(token_path, token_before, OLD_TOKEN)
    assert_nonce_complete(nonce_path)


def test_openbao_sealed_until_max_wait(stack, timed, imds, instance, healthy, tmp_path):
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    healthy.bao.seal()

    run = timed.run(timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE,
                                           *SHORT_RETRY, server=healthy.bao.url))

    assert run.code == 75, run.describe()
    lines = assert_retry_lines(run.result, "Vault login", max_backoff=MAX_BACKOFF, reason="Vault is sealed")
    assert_gave_up(run.result, len(lines) + 1)
    assert_duration(run, MAX_WAIT - MAX_BACKOFF, MAX_WAIT + SLACK)
    assert not token_path.exists()


def test_aws_outage_behind_openbao_is_retried(stack, timed, imds, instance, healthy, tmp_path):
    """OpenBao reports an unreachable AWS API as HTTP 400; the binary retries it until AWS is back."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *PATIENT_RETRY,
                                  server=healthy.bao.url)
    healthy.moto_front.refuse_connections()

    running = timed.stork.start(args)
    time.sleep(2.0)
    healthy.moto_front.accept_connections()
    result = running.wait()

    assert result.code == 0, result.describe()
    # The plugin's first AWS call fails: sts:GetCallerIdentity or
    # ec2:DescribeInstances, depending on what it has cached.
    assert "Vault could not reach AWS to check the login (HTTP 400)" in result.stderr
    assert "connect: connection refused" in result.stderr
    assert len(retry_lines(result.stderr, "Vault login")) >= 1
    nonce = assert_nonce_complete(nonce_path)
    assert token_path.is_file()
    assert healthy.nonce_of(instance.instance_id) == nonce


def test_aws_outage_behind_openbao_gives_up(stack, timed, imds, instance, healthy, tmp_path):
    """When AWS stays unreachable behind OpenBao, the run ends with 75 after --max-wait, nonce kept."""
    token_path, nonce_path = tmp_path / "token", tmp_path / "nonce"
    args = timed.stork.login_args(imds, token_path, nonce_path, "--role", PROFILE_ROLE, *SHORT_RETRY,
                                  server=healthy.bao.url)
    healthy.moto_front.refuse_connections()
    try:
        run = timed.run(args, label="moto refused")
    finally:
        healthy.moto_front.accept_connections()

    assert run.code == 75, run.describe()
    assert "Vault could not reach AWS to check the login (HTTP 400)" in run.result.stderr
    assert "gave up after" in run.result.stderr
    assert not token_path.exists()
    assert_nonce_complete(nonce_path)
