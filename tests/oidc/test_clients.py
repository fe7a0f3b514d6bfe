"""The rules for what a client may register."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import FakeClock
from webapp.oidc.clients import add, check_name, check_redirect_uri


@pytest.mark.parametrize(
    "uri",
    [
        "https://shop.example/callback",
        "https://shop.example/cb?tenant=7",
        "https://shop.example:8443/cb",
        "http://localhost/cb",
        "http://localhost:5000/cb",
        "http://127.0.0.1:8080/cb",
    ],
)
def test_https_and_loopback_redirect_uris_are_taken_as_they_are(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://shop.example/callback",  # plain http off loopback
        "http://localhost.evil.example/cb",  # not the loopback host
        "http://127.0.0.2/cb",
        "https://shop.example/cb#fragment",  # RFC 6749 §3.1.2
        "https://user:pw@shop.example/cb",
        "shop.example/callback",
        "ftp://shop.example/cb",
        "javascript:alert(1)",
        "https:///cb",
        "https://shop.example:99999/cb",
        "https://shop.example/a b",
        "https://bücher.example/cb",
        "HTTPS://shop.example/cb",
        "",
        "https://shop.example/" + "a" * 2000,
    ],
)
def test_other_redirect_uris_are_refused_with_a_reason(uri: str) -> None:
    with pytest.raises(ValueError, match=r"redirect URI|not a URL"):
        check_redirect_uri(uri)


def test_a_name_is_trimmed_and_must_be_printable() -> None:
    assert check_name("  Example   shop ") == "Example shop"
    for bad in ("", "   ", "a" * 101, "shop\x00"):
        with pytest.raises(ValueError, match="printable characters"):
            check_name(bad)


async def test_client_ids_are_hex_so_no_command_line_takes_one_for_an_option(
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    async with db() as session:
        ids = [(await add(session, f"Site {i}", ["https://s.example/cb"], clock())).client_id for i in range(20)]
    assert all(re.fullmatch("[0-9a-f]{32}", client_id) for client_id in ids)
