"""Helpers for the tests of real `voice2fa` processes: start one, wait until it answers, stop it.

The `serve` fixture (conftest.py) is `running("serve", ...)` in the test's
working directory; the helpers other folders share too (`VOICE2FA`,
`clean_env`, `free_port`, `wait_until_up`, `stop`) are in tests/support.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support import VOICE2FA, clean_env, free_port, stop, wait_until_up


@dataclass(frozen=True)
class Running:
    """A `voice2fa` process that answers: its base URL, its port and the process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]


def start(
    command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server in a process group of its own, so that no worker can outlive the test; stderr to `log`."""
    stderr = log.open("wb") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    finally:
        if log:
            stderr.close()  # the child holds its own copy


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the server, which stops its workers; if it had to be killed, kill what is left of them."""
    stop(process)
    if process.returncode != 0:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def running(
    command: str,
    *args: str,
    ready: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    log_level: str = "warning",
    seconds: float = 20.0,
) -> Iterator[Running]:
    """`voice2fa <command> --port <free> [args]`, once its path `ready` answers; stopped afterwards.

    `env` defaults to `clean_env()`; `log` takes the process's stderr (else
    discarded) and is shown if it does not answer within `seconds`.
    """
    port = free_port()
    process = start(
        [str(VOICE2FA), command, "--port", str(port), "--log-level", log_level, *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        log=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(url + ready, process, seconds)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{log.read_text()}" if log else str(exc)) from None
        yield Running(url, port, process)
    finally:
        stop_group(process)
