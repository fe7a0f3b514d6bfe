"""Small pure functions: the code format check, the client address, cross-site posts."""

from __future__ import annotations

import pytest

from webapp.attempts import printable
from webapp.client_ip import client_ip, limit_key, parse_networks
from webapp.codes import InvalidCode, clean_code
from webapp.cross_origin import is_cross_site


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("123456", "123456"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        ("١٢٣٤٥٦", "123456"),
        ("１２３４５６", "123456"),
    ],
)
def test_clean_code_accepts_digits_of_any_script_and_separators(typed: str, code: str) -> None:
    assert clean_code(typed, 6) == code


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Type the code you heard."),
        ("   ", "Type the code you heard."),
        ("12345", "The code has 6 digits."),
        ("1234567", "The code has 6 digits."),
        ("12345a", "The code is made of digits only."),
        ("①②③④⑤⑥", "The code is made of digits only."),
        ("1" * 10_000, "The code has 6 digits."),
    ],
)
def test_clean_code_refuses_what_cannot_be_right(typed: str, message: str) -> None:
    with pytest.raises(InvalidCode, match=message):
        clean_code(typed, 6)


def test_printable_truncates_and_drops_control_characters() -> None:
    assert printable("06\x00 12\u202e34" + "5" * 100) == "06 1234" + "5" * 57
    assert printable("\ud800abc") == "?abc"


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_client_ip_is_the_peer_when_no_proxy_is_trusted() -> None:
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), ()) == "203.0.113.9"


def test_client_ip_ignores_a_spoofed_header_from_an_untrusted_peer() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), trusted) == "203.0.113.9"


def test_client_ip_reads_the_header_from_a_trusted_proxy() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(scope("10.0.0.2", "198.51.100.1"), trusted) == "198.51.100.1"


def test_client_ip_takes_the_first_untrusted_hop_from_the_right() -> None:
    trusted = parse_networks(["10.0.0.0/8", "127.0.0.1"])
    # the client can write anything at the left; only what our proxies appended counts
    assert client_ip(scope("127.0.0.1", "1.2.3.4, 198.51.100.1, 10.0.0.7"), trusted) == "198.51.100.1"


def test_client_ip_stops_at_garbage_in_the_chain() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(scope("10.0.0.2", "198.51.100.1, not-an-ip"), trusted) == "10.0.0.2"


def test_client_ip_handles_ipv6_and_ports() -> None:
    trusted = parse_networks(["::1"])
    assert client_ip(scope("::1", "[2001:db8::5]:443"), trusted) == "2001:db8::5"


def test_client_ip_reads_an_ipv4_mapped_peer_as_ipv4() -> None:
    assert client_ip(scope("::ffff:203.0.113.9"), ()) == "203.0.113.9"


def test_parse_networks_refuses_a_typo() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks(["10.0.0.0/33"])


def post(**headers: str) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "headers": [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.parametrize(
    ("headers", "cross"),
    [
        ({}, False),
        ({"Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "http://app.test", "Host": "app.test"}, False),
        ({"Origin": "https://evil.test", "Host": "app.test"}, True),
        ({"Origin": "null", "Host": "app.test"}, True),
    ],
)
def test_cross_site_posts_are_recognised(headers: dict[str, str], cross: bool) -> None:
    assert is_cross_site(post(**headers)) is cross


@pytest.mark.parametrize(
    ("ip", "prefix", "key"),
    [
        ("203.0.113.7", 64, "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", 48, "2001:db8:1::/48"),
        ("2001:db8::1", 128, "2001:db8::1/128"),
        ("::ffff:198.51.100.3", 64, "198.51.100.3"),
        ("unknown", 64, "unknown"),
    ],
)
def test_limit_key_counts_ipv6_by_its_network_and_ipv4_as_it_is(ip: str, prefix: int, key: str) -> None:
    assert limit_key(ip, prefix) == key
