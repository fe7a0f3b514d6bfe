"""`voice2fa client …` and `voice2fa keys …`, run as real processes on the test's database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.models import OidcClient
from webapp.oidc import keys
from webapp.passwords import verify_password

pytestmark = pytest.mark.slow

VOICE2FA = Path(sys.executable).with_name("voice2fa")


def voice2fa(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command with only DATABASE_URL of the voice2fa settings set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSAGEBIRD_", "DATABASE_URL", "OIDC_"))}
    return subprocess.run(
        [str(VOICE2FA), *args], env={**env, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=60
    )


async def test_client_add_prints_the_credentials_once_and_stores_only_a_hash(
    database_url: str,
    db: async_sessionmaker[AsyncSession],
) -> None:
    added = voice2fa(
        database_url,
        "client",
        "add",
        "--name",
        "Example shop",
        "--redirect-uri",
        "https://shop.example/callback",
        "--redirect-uri",
        "http://localhost:5000/cb",
    )
    assert added.returncode == 0, added.stderr
    match = re.fullmatch(r"client_id: (\S+)\nclient_secret: (\S+)\n", added.stdout)
    assert match, added.stdout
    client_id, secret = match.groups()

    async with db() as session:
        row = await session.get(OidcClient, client_id)
    assert row is not None and row.name == "Example shop"
    assert row.redirect_uris == ["https://shop.example/callback", "http://localhost:5000/cb"]
    assert secret not in row.secret_hash and verify_password(secret, row.secret_hash)

    listed = voice2fa(database_url, "client", "list")
    assert listed.returncode == 0
    assert client_id in listed.stdout and "Example shop" in listed.stdout
    assert "https://shop.example/callback" in listed.stdout and "http://localhost:5000/cb" in listed.stdout
    assert secret not in listed.stdout and row.secret_hash not in listed.stdout


def test_client_add_refuses_a_redirect_uri_outside_the_rules_with_a_message(database_url: str) -> None:
    result = voice2fa(database_url, "client", "add", "--name", "Shop", "--redirect-uri", "http://shop.example/cb")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("voice2fa: a redirect URI must be https://")
    assert result.stdout == ""
    assert "(no clients" in voice2fa(database_url, "client", "list").stdout


def test_client_remove_takes_the_client_away(database_url: str) -> None:
    added = voice2fa(database_url, "client", "add", "--name", "Shop", "--redirect-uri", "https://s.example/cb")
    client_id = added.stdout.split()[1]
    removed = voice2fa(database_url, "client", "remove", client_id)
    assert removed.returncode == 0 and client_id in removed.stdout
    assert client_id not in voice2fa(database_url, "client", "list").stdout
    again = voice2fa(database_url, "client", "remove", client_id)
    assert again.returncode == 1 and "no client" in again.stderr


def test_keys_rotate_list_and_retire(database_url: str) -> None:
    first = voice2fa(database_url, "keys", "rotate")
    assert first.returncode == 0, first.stderr
    old = first.stdout.split()[3]
    second = voice2fa(database_url, "keys", "rotate")
    new = second.stdout.split()[3]
    assert f"still published until retired: {old}" in second.stdout

    listed = voice2fa(database_url, "keys", "list").stdout
    assert re.search(rf"^{re.escape(new)}\s.*signing$", listed, re.MULTILINE)
    assert re.search(rf"^{re.escape(old)}\s.*published$", listed, re.MULTILINE)

    refused = voice2fa(database_url, "keys", "retire", new)
    assert refused.returncode == 2 and "rotate" in refused.stderr
    retired = voice2fa(database_url, "keys", "retire", old)
    assert retired.returncode == 0, retired.stderr
    assert re.search(rf"^{re.escape(old)}\s.*retired", voice2fa(database_url, "keys", "list").stdout, re.MULTILINE)


async def test_keys_rotate_adds_a_key_the_database_keeps(
    database_url: str, db: async_sessionmaker[AsyncSession]
) -> None:
    kid = voice2fa(database_url, "keys", "rotate").stdout.split()[3]
    async with db() as session:
        [key] = await keys.active(session)
    assert key.kid == kid and "PRIVATE KEY" in key.private_pem
