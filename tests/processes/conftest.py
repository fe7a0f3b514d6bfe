"""Fixtures for the tests of real `voice2fa` processes (helpers: support.py).

Every test in this folder is marked `slow` (`pytest -m "not slow"` leaves
them out): each starts real servers in subprocesses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.processes.support import Running, running
from tests.support import clean_env

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests `slow` (pytest hands every conftest all the items)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start `voice2fa serve` in the test's empty working directory; each one stopped afterwards.

    `serve(*args, log=None, log_level="warning", seconds=20.0, **settings)`:
    `args` after `--port`, `settings` as environment variables (on
    `clean_env()`), `log` takes its stderr; it has answered at /healthz within
    `seconds` when this returns.
    """
    with ExitStack() as stack:

        def start(
            *args: str, log: Path | None = None, log_level: str = "warning", seconds: float = 20.0, **settings: str
        ) -> Running:
            served = running(
                "serve",
                *args,
                ready="/healthz",
                cwd=tmp_path,
                env=clean_env(**settings),
                log=log,
                log_level=log_level,
                seconds=seconds,
            )
            return stack.enter_context(served)

        yield start
