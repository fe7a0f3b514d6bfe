"""The Origin check compares whole origins: scheme, host and port.

Browsers that send no `Sec-Fetch-Site` are judged by `Origin` against the
request's own origin. Behind a proxy that ends TLS, the scheme is what a
trusted proxy says in `X-Forwarded-Proto`, and only a trusted one.
"""

from __future__ import annotations

import pytest

from webapp.client_ip import parse_networks
from webapp.cross_origin import is_cross_site

PROXY = parse_networks(["10.0.0.0/8"])


def post(origin: str, host: str, *, scheme: str = "http", peer: str = "198.51.100.7", **headers: str) -> dict:
    pairs = [("origin", origin), ("host", host), *((k.lower().replace("_", "-"), v) for k, v in headers.items())]
    return {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "client": (peer, 40000),
        "headers": [(name.encode(), value.encode()) for name, value in pairs],
    }


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("https://app.test", "app.test", "https"),
        ("http://app.test", "app.test", "http"),
        ("https://app.test:443", "app.test", "https"),
        ("https://app.test", "app.test:443", "https"),
        ("http://app.test:80", "app.test", "http"),
        ("http://app.test:8000", "app.test:8000", "http"),
        ("HTTPS://App.Test", "APP.test", "https"),
        ("http://[2001:db8::1]:8000", "[2001:db8::1]:8000", "http"),
    ],
)
def test_the_same_origin_passes(origin: str, host: str, scheme: str) -> None:
    assert is_cross_site(post(origin, host, scheme=scheme)) is False


@pytest.mark.parametrize(
    ("origin", "host", "scheme"),
    [
        ("http://app.test", "app.test", "https"),  # a plain-HTTP page posting to the TLS site
        ("https://app.test", "app.test", "http"),
        ("http://app.test:8080", "app.test", "http"),
        ("http://app.test", "app.test:8080", "http"),
        ("https://app.test:80", "app.test", "https"),
        ("http://app.test:99999", "app.test", "http"),
        ("ftp://app.test", "app.test", "http"),
        ("http://app.test/path", "app.test", "http"),
        ("http://other.test", "app.test", "http"),
        ("http://app.test", "", "http"),
    ],
)
def test_another_scheme_host_or_port_is_cross_site(origin: str, host: str, scheme: str) -> None:
    assert is_cross_site(post(origin, host, scheme=scheme)) is True


def test_behind_a_trusted_proxy_that_ends_tls_the_forwarded_scheme_counts() -> None:
    forwarded = post("https://app.test", "app.test", peer="10.0.0.2", x_forwarded_proto="https")
    assert is_cross_site(forwarded, PROXY) is False
    # the plain-HTTP origin is still another origin than the one the browser used
    assert is_cross_site(post("http://app.test", "app.test", peer="10.0.0.2", x_forwarded_proto="https"), PROXY)


def test_the_last_forwarded_scheme_is_the_one_our_proxy_wrote() -> None:
    appended = post("https://app.test", "app.test", peer="10.0.0.2", x_forwarded_proto="http, https")
    assert is_cross_site(appended, PROXY) is False


def test_a_forwarded_scheme_from_an_untrusted_peer_changes_nothing() -> None:
    claimed = post("https://app.test", "app.test", peer="198.51.100.7", x_forwarded_proto="https")
    assert is_cross_site(claimed, PROXY) is True


# -- over HTTP, through the app ------------------------------------------------


async def test_a_post_from_a_plain_http_page_to_the_tls_origin_is_refused(client_for, db) -> None:
    async with client_for(base_url="https://app.test") as browser:
        response = await browser.post(
            "/verify", data={"country": "NL", "phone": "0612345678"}, headers={"Origin": "http://app.test"}
        )
    assert response.status_code == 403


@pytest.mark.parametrize("settings_changes", [{"trusted_proxies": ("10.0.0.0/8",)}])
async def test_behind_a_trusted_tls_proxy_a_same_origin_post_is_served(client_for, db) -> None:
    async with client_for("10.0.0.2", base_url="http://app.test") as proxied:
        response = await proxied.post(
            "/verify",
            data={"country": "NL", "phone": "0612345678"},
            headers={"Origin": "https://app.test", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
        )
    assert response.status_code == 303


@pytest.mark.parametrize("settings_changes", [{"trusted_proxies": ("10.0.0.0/8",)}])
async def test_a_forwarded_scheme_from_an_untrusted_client_is_ignored(client_for, db) -> None:
    async with client_for("198.51.100.7", base_url="http://app.test") as direct:
        response = await direct.post(
            "/verify",
            data={"country": "NL", "phone": "0612345678"},
            headers={"Origin": "https://app.test", "X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 403
