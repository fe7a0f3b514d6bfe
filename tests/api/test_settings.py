"""The JSON API's settings, read from the environment with safe defaults."""

from __future__ import annotations

import pytest

from webapp.settings import Settings


def test_the_api_limits_are_read_with_safe_defaults() -> None:
    defaults = Settings.from_env({}, env_file=None)
    assert defaults.limit_api_calls_per_client == "30/minute;300/hour"
    assert defaults.limit_api_auth_failures_per_ip == "10/minute;50/hour"
    read = Settings.from_env(
        {"LIMIT_API_CALLS_PER_CLIENT": "5/minute", "LIMIT_API_AUTH_FAILURES_PER_IP": "3/hour"}, env_file=None
    )
    assert (read.limit_api_calls_per_client, read.limit_api_auth_failures_per_ip) == ("5/minute", "3/hour")


@pytest.mark.parametrize("name", ["LIMIT_API_CALLS_PER_CLIENT", "LIMIT_API_AUTH_FAILURES_PER_IP"])
def test_a_limit_that_is_not_one_fails_at_start_up(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: "lots"}, env_file=None)
