"""`make example` (examples/shop/run.py) as a real process: both servers up, the shop registered, both stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import clean_env, free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_serves_voice2fa_and_the_shop_registered_as_its_client() -> None:
    voice2fa_port, shop_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "examples/shop/run.py"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=clean_env(VOICE2FA_PORT=str(voice2fa_port), SHOP_PORT=str(shop_port)),
    )
    try:
        wait_until_up(f"http://127.0.0.1:{voice2fa_port}/healthz", process, seconds=60)
        wait_until_up(f"http://localhost:{shop_port}/", process, seconds=60)
        with httpx.Client() as browser:
            signup = browser.get(f"http://localhost:{shop_port}/signup")
            assert signup.status_code == 302
            authorize = signup.headers["location"]
            assert authorize.startswith(f"http://127.0.0.1:{voice2fa_port}/oidc/authorize?")
            accepted = browser.get(authorize)  # the shop's client_id and redirect URI are registered
            assert accepted.status_code == 303 and accepted.headers["location"] == "/"
            page = browser.get(f"http://127.0.0.1:{voice2fa_port}/")
            assert "Verify your phone number for Example shop" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    for port in (voice2fa_port, shop_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
