"""The `voice2fa` command, run as a real process: serve and sandbox."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import messagebird
import pytest
from messagebird.http_client import HttpClient
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

from tests.processes.support import Running, running
from tests.support import VOICE2FA, clean_env, free_port, stop, wait_until_up
from webapp.server import is_loopback


@pytest.fixture
def served(serve: Callable[..., Running]) -> str:
    """`voice2fa serve` started in an empty working directory; its base URL."""
    return serve().url


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    """`voice2fa sandbox` on its own port; its base URL."""
    with running("sandbox", ready="/_sandbox/calls") as sandbox:
        yield sandbox.url


def test_serve_makes_its_database_in_the_working_directory_and_works(served: str, tmp_path: Path) -> None:
    assert (tmp_path / "voice2fa.db").is_file()
    with httpx.Client(base_url=served) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        response = client.post("/verify", data={"country": "NL", "phone": "0612345678"})
        assert response.status_code == 303
        page = client.get("/")
        assert "Calling +31 6 12345678 now" in page.text
        [call] = client.get("/_sandbox/calls").json()
        verified = client.post("/confirm", data={"code": call["token"]}, follow_redirects=True)
        assert "is verified" in verified.text


def test_serve_refuses_bad_settings_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VOICE2FA), "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(VERIFY_TOKEN_LENGTH="3"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "VERIFY_TOKEN_LENGTH must be between 6 and 10" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_listed_provider_without_credentials(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VOICE2FA), "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(PROVIDERS="messagebird,twilio", MESSAGEBIRD_API_KEY="live_x"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert (
        "PROVIDERS lists twilio, but TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID not set"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_messagebirds_own_sdk_works_against_the_sandbox(sandbox_url: str) -> None:
    """MessageBird's Python SDK, pointed at `voice2fa sandbox` with any key."""
    key = "any-key"
    client = messagebird.Client(key, http_client=HttpClient(sandbox_url + "/", key, "voice2fa-test"))
    verify = client.verify_create(
        "31612345678", {"type": "tts", "template": "Code %token", "tokenLength": 7, "maxAttempts": 3}
    )
    assert verify.status == "sent" and verify.id
    [call] = httpx.get(sandbox_url + "/_sandbox/calls").json()
    assert call["id"] == verify.id and len(call["token"]) == 7 and call["body"] == f"Code {call['token']}"

    with pytest.raises(messagebird.client.ErrorException) as wrong:
        client.verify_verify(verify.id, "0000000" if call["token"] != "0000000" else "1111111")
    assert wrong.value.errors[0].description == "The token is invalid."

    assert client.verify_verify(verify.id, call["token"]).status == "verified"
    assert client.verify(verify.id).status == "verified"
    client.verify_delete(verify.id)
    with pytest.raises(messagebird.client.ErrorException):
        client.verify(verify.id)


def test_twilios_own_sdk_works_against_the_sandbox(sandbox_url: str) -> None:
    """Twilio's Python SDK, its Verify domain pointed at `voice2fa sandbox`, with any credentials."""
    client = TwilioClient("AC" + "0" * 32, "any-auth-token")
    client.verify.base_url = sandbox_url  # the SDK joins this with "v2/Services/..."
    service = client.verify.v2.services("VA" + "0" * 32)

    verification = service.verifications.create(to="+31612345678", channel="call")
    assert verification.status == "pending" and verification.sid.startswith("VE")
    assert verification.date_created is not None and verification.date_created.tzinfo is not None
    [call] = httpx.get(sandbox_url + "/_sandbox/calls").json()
    assert call["api"] == "twilio" and call["id"] == verification.sid and len(call["token"]) == 6

    wrong = service.verification_checks.create(
        verification_sid=verification.sid, code="000000" if call["token"] != "000000" else "111111"
    )
    assert wrong.status == "pending" and wrong.valid is False
    right = service.verification_checks.create(verification_sid=verification.sid, code=call["token"])
    assert right.status == "approved" and right.valid is True
    with pytest.raises(TwilioRestException) as gone:
        service.verifications(verification.sid).fetch()
    assert gone.value.status == 404 and gone.value.code == 20404

    second = service.verifications.create(to="+31612345678", channel="call")
    assert second.sid != verification.sid
    assert service.verifications(second.sid).update(status="canceled").status == "canceled"
    assert service.verifications(second.sid).fetch().status == "canceled"


def test_the_wheel_carries_templates_and_migrations(tmp_path: Path) -> None:
    """A plain `pip install .` must serve from anywhere: templates/ and migrations/ ship inside."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = tmp_path.glob("voice2fa-*.whl")
    unpacked = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "zipfile", "-e", str(wheel), str(unpacked)], check=True, timeout=60)
    for name in ("templates/page.html", "templates/base.html", "migrations/env.py", "alembic.ini"):
        assert (unpacked / "webapp/_bundled" / name).is_file(), name
    assert list((unpacked / "webapp/_bundled/migrations/versions").glob("0001_*.py"))
    assert list((unpacked / "webapp/static").glob("htmx-*.min.js"))
    found = subprocess.run(
        [sys.executable, "-c", "from webapp import resources; print(resources.TEMPLATES, resources.MIGRATIONS)"],
        cwd=tmp_path,
        env={**clean_env(), "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert found.split() == [str(unpacked / "webapp/_bundled/templates"), str(unpacked / "webapp/_bundled/migrations")]


def test_hash_password_reads_stdin_and_prints_a_hash() -> None:
    from webapp.passwords import verify_password

    result = subprocess.run(
        [str(VOICE2FA), "hash-password"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 0
    assert verify_password("correct horse battery", result.stdout.strip())
    short = subprocess.run(
        [str(VOICE2FA), "hash-password"], input="short\n", capture_output=True, text=True, timeout=30, env=clean_env()
    )
    assert short.returncode == 2 and "at least 12 characters" in short.stderr


def test_serve_prints_one_operators_password_that_every_worker_accepts(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(VOICE2FA), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = ""
        while "operators' pages" not in line:
            line = process.stdout.readline()
            assert line, "serve ended without printing the operators' password"
        password = line.split("password ", 1)[1].split()[0]
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz", process)
        with httpx.Client(base_url=base) as client:
            # several requests, so that both workers are asked
            assert {client.get("/admin/", auth=("admin", password)).status_code for _ in range(8)} == {200}
            assert client.get("/admin/", auth=("admin", "wrong")).status_code == 401
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize("command", ["serve", "sandbox"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_sandbox_mode_refuses_an_address_others_can_reach(command: str, host: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VOICE2FA), command, "--host", host, "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"refusing to serve sandbox mode on {host}" in result.stderr
    assert "--allow-public-sandbox" in result.stderr


@pytest.mark.parametrize("command", ["serve", "sandbox"])
def test_allow_public_sandbox_lets_sandbox_mode_bind_any_address(command: str, tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: past the check, the bind itself fails.
    result = subprocess.run(
        [str(VOICE2FA), command, "--host", "192.0.2.1", "--port", str(free_port()), "--allow-public-sandbox"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "refusing to serve sandbox mode" not in result.stderr
    assert "error while attempting to bind" in result.stderr


def test_with_a_real_key_serve_binds_any_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VOICE2FA), "serve", "--host", "192.0.2.1", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(MESSAGEBIRD_API_KEY="live_test"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "refusing to serve sandbox mode" not in result.stderr
    assert "error while attempting to bind" in result.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_is_this_machine_only(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
