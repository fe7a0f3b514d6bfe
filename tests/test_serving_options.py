"""What a request costs around the flow: template reloading, the access log, the PostgreSQL pool, sniffio."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Secret

from tests.support import VOICE2FA, clean_env, free_port, stop, wait_until_up
from webapp.db import create_engine
from webapp.db_pool import pool_options
from webapp.pages import Pages
from webapp.phone import CountryOptions
from webapp.settings import Settings

LIVE = {"MESSAGEBIRD_API_KEY": "live_x"}


# -- Jinja2's auto-reload -------------------------------------------------------------------------


def test_templates_reload_in_sandbox_mode_only_by_default() -> None:
    assert Settings.from_env({}, env_file=None).reload_templates
    assert not Settings.from_env(LIVE, env_file=None).reload_templates


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("auto", False), ("", False)])
def test_templates_reload_can_be_set(value: str, expected: bool) -> None:
    assert Settings.from_env({**LIVE, "TEMPLATES_RELOAD": value}, env_file=None).reload_templates is expected


def test_a_bad_templates_reload_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="true, false or auto"):
        Settings.from_env({"TEMPLATES_RELOAD": "sometimes"}, env_file=None)


@pytest.mark.parametrize("reload", [True, False])
def test_the_pages_look_at_template_files_again_only_when_reloading(
    reload: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = Pages(CountryOptions(), "NL", auto_reload=reload)
    pages.env.get_template("page.html")  # loaded and cached
    looked: list[str] = []
    getmtime = os.path.getmtime

    def counting(path: str) -> float:
        looked.append(path)
        return getmtime(path)

    monkeypatch.setattr(os.path, "getmtime", counting)  # what Jinja2's FileSystemLoader checks a file by
    for _ in range(3):
        pages.env.get_template("page.html")
    assert bool(looked) is reload


# -- the access log -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "logged"), [(None, False), ("true", True)], ids=["default", "ACCESS_LOG=true"])
def test_serve_writes_an_access_line_only_when_asked(tmp_path: Path, setting: str | None, logged: bool) -> None:
    port = free_port()
    env = clean_env(**({"ACCESS_LOG": setting} if setting else {}))
    out = tmp_path / "serve.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [str(VOICE2FA), "serve", "--port", str(port), "--log-level", "info"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        assert httpx.get(f"http://127.0.0.1:{port}/?probe=1").status_code == 200
    finally:
        stop(process)
    written = out.read_text()
    assert "Application startup complete." in written, "the log at info was written"
    assert bool(re.search(r'"GET /\?probe=1 HTTP/1\.1" 200', written)) is logged


def test_access_log_is_off_unless_set() -> None:
    assert Settings.from_env({}, env_file=None).access_log is False
    assert Settings.from_env({"ACCESS_LOG": "true"}, env_file=None).access_log is True


# -- the PostgreSQL pool --------------------------------------------------------------------------


def test_pool_sizes_apply_to_postgresql_only() -> None:
    settings = Settings(database_pool_size=7, database_max_overflow=3)
    assert pool_options(settings) == {}, "SQLite's engine is db.py's business"
    on_postgres = settings.replace(database_url="postgresql+asyncpg://postgres@127.0.0.1/x")
    assert pool_options(on_postgres) == {"pool_size": 7, "max_overflow": 3}


async def test_the_engine_gets_the_pool_it_was_given(postgres_template: str) -> None:
    from tests.support import postgres_url

    settings = Settings(database_url=postgres_url(postgres_template), database_pool_size=7, database_max_overflow=3)
    engine = create_engine(settings.database_url, **pool_options(settings))
    try:
        assert (engine.pool.size(), engine.pool._max_overflow) == (7, 3)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


def test_pool_sizes_are_read_and_checked() -> None:
    settings = Settings.from_env({"DATABASE_POOL_SIZE": "20", "DATABASE_MAX_OVERFLOW": "0"}, env_file=None)
    assert (settings.database_pool_size, settings.database_max_overflow) == (20, 0)
    assert (Settings().database_pool_size, Settings().database_max_overflow) == (10, 10)
    with pytest.raises(ValueError, match="DATABASE_POOL_SIZE must be between 1 and 100"):
        Settings.from_env({"DATABASE_POOL_SIZE": "0"}, env_file=None)
    with pytest.raises(ValueError, match="DATABASE_MAX_OVERFLOW must be between 0 and 100"):
        Settings(admin_password_hash=None, database_max_overflow=-1, secret_key=Secret("x")).validate()


# -- sniffio ----------------------------------------------------------------------------------------


def test_sniffio_is_a_dependency_of_its_own() -> None:
    requirements = importlib.metadata.requires("voice2fa") or []
    assert any(re.match(r"sniffio\b", requirement) for requirement in requirements)


async def test_httpcore_finds_sniffio() -> None:
    import sniffio
    from httpcore._synchronization import current_async_library

    assert sniffio.current_async_library() == current_async_library() == "asyncio"
