"""The hand-off's settings, read from the environment."""

from __future__ import annotations

import pytest

from webapp.settings import Settings


def test_the_hand_off_settings_are_read_with_safe_defaults() -> None:
    defaults = Settings.from_env({}, env_file=None)
    assert defaults.public_url is None and defaults.oidc_signing_key_file is None
    assert defaults.oidc_code_lifetime == 60 and defaults.oidc_token_lifetime == 300
    read = Settings.from_env(
        {
            "PUBLIC_URL": "https://verify.example.com/",
            "OIDC_CODE_LIFETIME": "30",
            "OIDC_TOKEN_LIFETIME": "600",
            "OIDC_REQUEST_LIFETIME": "900",
            "OIDC_SIGNING_KEY_FILE": "/etc/voice2fa/key.pem",
            "LIMIT_TOKEN_FAILURES_PER_IP": "2/minute",
            "LIMIT_TOKEN_FAILURES_PER_CLIENT": "4/minute",
            "LIMIT_AUTHORIZE_PER_IP": "7/minute",
        },
        env_file=None,
    )
    assert read.public_url == "https://verify.example.com"  # no trailing slash: endpoints are issuer + path
    assert (read.oidc_code_lifetime, read.oidc_token_lifetime, read.oidc_request_lifetime) == (30, 600, 900)
    assert read.oidc_signing_key_file == "/etc/voice2fa/key.pem"
    assert (read.limit_token_failures_per_ip, read.limit_token_failures_per_client) == ("2/minute", "4/minute")
    assert defaults.limit_authorize_per_ip == "20/minute;100/hour" and read.limit_authorize_per_ip == "7/minute"


@pytest.mark.parametrize(
    "url",
    [
        "http://verify.example.com",
        "https://verify.example.com/?a=1",
        "https://verify.example.com/#x",
        "verify.example.com",
        "https://u:p@v.example.com",
    ],
)
def test_public_url_must_be_an_issuer(url: str) -> None:
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        Settings.from_env({"PUBLIC_URL": url}, env_file=None)


@pytest.mark.parametrize("url", ["https://verify.example.com/voice2fa", "http://localhost:8000", "http://127.0.0.1"])
def test_public_url_may_have_a_path_or_be_loopback_http(url: str) -> None:
    assert Settings.from_env({"PUBLIC_URL": url}, env_file=None).public_url == url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OIDC_CODE_LIFETIME", "5"),
        ("OIDC_CODE_LIFETIME", "3600"),
        ("OIDC_TOKEN_LIFETIME", "86400"),
        ("LIMIT_TOKEN_FAILURES_PER_IP", "lots"),
        ("LIMIT_AUTHORIZE_PER_IP", "many"),
    ],
)
def test_lifetimes_and_limits_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value}, env_file=None)
