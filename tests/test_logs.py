"""No code in a log line, and numbers only by their last three digits.

The attempts table is the one place that holds whole numbers. Call sites mask
what they log, the engine hides query parameters, httpx (which logs each
check's URL, code included) is kept to warnings, and `voice2fa serve` masks
every line its handlers write, uvicorn's access log included.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from uvicorn.logging import AccessFormatter

from tests.support import OPERATOR, OPERATOR_HASH, VOICE2FA, clean_env, execute_sql, free_port, stop, wait_until_up
from webapp.db import create_engine
from webapp.logs import MaskingFilter, mask_number, mask_text
from webapp.provider.sandbox import TRIGGER_CALL_FAILS, TRIGGER_HANG, TRIGGER_SERVER_ERROR


def forms(e164: str) -> list[str]:
    """The ways a whole number can be written in a log line."""
    digits = e164.removeprefix("+")
    national = digits[2:]  # every number here is Dutch: +31
    return [e164, digits, "0" + national, national, f"+31 {national[0]} {national[1:]}", "%2B" + digits]


def leaks(log: str, numbers: list[str], codes: list[str]) -> list[str]:
    """Every whole number (in any form) and code that appears in `log`."""
    return [form for number in numbers for form in forms(number) if form in log] + [c for c in codes if c in log]


# -- the masking itself ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("call to +31612345678 failed", "call to ***678 failed"),
        ("call to +31 6 12345678 failed", "call to ***678 failed"),
        ("GET /admin/?number=%2B31612345678&ip=", "GET /admin/?number=***678&ip="),
        ("GET /admin/?number=%2B31+6+12345678", "GET /admin/?number=***678"),
        ("recipient 31612345678,", "recipient ***678,"),
        ("typed 0612345678", "typed **********"),
        (
            "GET http://sandbox.invalid/verify/ab12?token=663587 200",
            "GET http://sandbox.invalid/verify/ab12?token=*** 200",
        ),
        ("code 6635871234 is wrong", "code ********** is wrong"),
    ],
)
def test_numbers_and_codes_are_masked(line: str, masked: str) -> None:
    assert mask_text(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "203.0.113.10:40000 - GET / 200",
        "2001:db8::1 stopped until 2026-11-26T13:00:00+00:00",
        "verification a1b2c3d4e5f60718293a4b5c6d7e8f90 took 0.1234567 s",
        "ref 1234567abcdef, port 65535, [pid 32768]",
    ],
)
def test_addresses_times_and_ids_are_left_alone(line: str) -> None:
    assert mask_text(line) == line


def test_a_number_is_named_by_its_last_three_digits() -> None:
    assert mask_number("+31612345678") == "***678"


@pytest.fixture
def masked_root() -> Iterator[io.StringIO]:
    """A handler on the root logger with the masking filter, as `voice2fa serve` installs it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    yield stream
    root.removeHandler(handler)
    root.level = level


def test_the_filter_on_a_handler_masks_records_of_child_loggers(masked_root: io.StringIO) -> None:
    logging.getLogger("webapp.some.child").warning("call to %s: status %s", "+31612345678", "failed")
    assert masked_root.getvalue() == "call to ***678: status failed\n"


def test_the_filter_masks_a_traceback(masked_root: io.StringIO) -> None:
    try:
        raise ValueError("no call to +31612345678")
    except ValueError:
        logging.getLogger("webapp.test").exception("it failed")
    assert "+31612345678" not in masked_root.getvalue()
    assert "ValueError: no call to ***678" in masked_root.getvalue()


def test_the_filter_masks_an_access_log_line_and_keeps_its_format() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    handler.addFilter(MaskingFilter())
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    try:
        access.warning(
            '%s - "%s %s HTTP/%s" %d', "203.0.113.7:5000", "GET", "/admin/numbers/%2B31612345678", "1.1", 401
        )
    finally:
        access.removeHandler(handler)
    assert stream.getvalue() == '203.0.113.7:5000 - "GET /admin/numbers/***678 HTTP/1.1" 401 Unauthorized\n'


# -- the app's own lines, without the filter -------------------------------------


async def test_the_flows_own_log_lines_name_no_whole_number_and_no_code(
    client_for, app: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Every error path that logs, captured at DEBUG; the engine's own row dumps aside (serve masks those)."""
    caplog.set_level(logging.DEBUG)
    numbers = ["+31612345678", "+" + TRIGGER_CALL_FAILS, "+" + TRIGGER_SERVER_ERROR, "+" + TRIGGER_HANG]
    async with client_for("203.0.113.20") as person:
        await person.post("/verify", data={"country": "NL", "phone": "06 12345678"})
        code = app.state.sandbox.calls()[0]["token"]  # type: ignore[attr-defined]
        wrong = "000000" if code != "000000" else "111111"
        assert (await person.post("/confirm", data={"code": wrong})).status_code == 422
        assert (await person.post("/confirm", data={"code": code})).status_code == 303
    for i, trigger in enumerate(numbers[1:]):
        async with client_for(f"203.0.113.{30 + i}") as person:
            response = await person.post("/verify", data={"country": "NL", "phone": "0" + trigger[3:]})
            assert response.status_code == 503
    async with client_for("203.0.113.40") as operator:
        assert (await operator.get("/admin/numbers/%2B31612345678", auth=(OPERATOR[0], "wrong"))).status_code == 401
    codes = [call["token"] for call in app.state.sandbox.calls()]  # type: ignore[attr-defined]
    lines = "\n".join(
        record.getMessage() + (f"\n{record.exc_text or ''}" if record.exc_info else "")
        for record in caplog.records
        if not (record.name.startswith("sqlalchemy") and record.levelno == logging.DEBUG)
    )
    assert "***486" in lines  # the call that failed is named, masked
    assert leaks(lines, numbers, codes) == []


async def test_database_errors_carry_no_query_parameters(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(SQLAlchemyError) as error:
                await connection.execute(text("SELECT * FROM no_such_table WHERE number = :n"), {"n": "+31612345678"})
    finally:
        await engine.dispose()
    assert "+31612345678" not in str(error.value)
    assert "parameters hidden" in str(error.value)


# -- voice2fa serve, every logger at DEBUG ---------------------------------------

FAILING_INSERT = {
    "sqlite": [
        (
            "CREATE TRIGGER fail_attempts BEFORE INSERT ON attempts WHEN NEW.number = '+31612345677' "
            "BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END"
        ),
    ],
    "postgresql": [
        (
            "CREATE FUNCTION fail_attempts() RETURNS trigger AS $$ BEGIN IF NEW.number = '+31612345677' THEN "
            "RAISE EXCEPTION 'the disk is on fire'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        ),
        "CREATE TRIGGER fail_attempts BEFORE INSERT ON attempts FOR EACH ROW EXECUTE FUNCTION fail_attempts()",
    ],
}


@pytest.mark.slow
def test_serve_logs_no_code_and_no_whole_number_on_any_path(database_url: str, tmp_path: Path) -> None:
    """The flow and its error paths against `voice2fa serve --log-level debug`, all it writes scanned."""
    sandbox_port, port = free_port(), free_port()
    sandbox_url, base = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{port}"
    sandbox = subprocess.Popen(
        [str(VOICE2FA), "sandbox", "--port", str(sandbox_port), "--log-level", "warning"],
        env=clean_env(SHUTDOWN_TIMEOUT="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log_path = tmp_path / "serve.log"
    env = clean_env(
        MESSAGEBIRD_API_KEY="any-key",
        MESSAGEBIRD_BASE_URL=sandbox_url,
        DATABASE_URL=database_url,
        COOKIE_SECURE="false",
        ADMIN_PASSWORD_HASH=OPERATOR_HASH,
        PROVIDER_DEADLINE="1",
        VERIFY_TOKEN_LENGTH="10",
        LIMIT_START_PER_IP="100/minute",
        LIMIT_CHECK_PER_IP="100/minute",
        ACCESS_LOG="true",  # off by default; its lines must be masked when it is on
    )
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(VOICE2FA), "serve", "--port", str(port), "--log-level", "debug"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    numbers = [
        "+31612345678",
        "+31612345677",
        "+31612345676",
        "+" + TRIGGER_CALL_FAILS,
        "+" + TRIGGER_SERVER_ERROR,
        "+" + TRIGGER_HANG,
    ]
    try:
        wait_until_up(sandbox_url + "/_sandbox/calls", sandbox)
        wait_until_up(base + "/healthz", server)
        with httpx.Client(base_url=base, timeout=30) as person:
            assert person.post("/verify", data={"country": "NL", "phone": "06 12345678"}).status_code == 303
            code = httpx.get(sandbox_url + "/_sandbox/calls").json()[0]["token"]
            wrong = "0" * 10 if code != "0" * 10 else "1" * 10
            assert person.post("/confirm", data={"code": wrong}).status_code == 422
            assert person.post("/confirm", data={"code": code}).status_code == 303
        for trigger in (TRIGGER_CALL_FAILS, TRIGGER_SERVER_ERROR, TRIGGER_HANG):  # a failed call, an error, a timeout
            with httpx.Client(base_url=base, timeout=30) as person:
                assert person.post("/verify", data={"country": "NL", "phone": "0" + trigger[2:]}).status_code == 503
        with httpx.Client(base_url=base, timeout=30) as operator:
            assert operator.get("/admin/numbers/%2B31612345678", auth=(OPERATOR[0], "wrong")).status_code == 401
            assert operator.get("/admin/", params={"number": "0612345678"}, auth=OPERATOR).status_code == 200
        execute_sql(database_url, *FAILING_INSERT[database_url.split(":", 1)[0].split("+")[0]])
        with httpx.Client(base_url=base, timeout=30) as person:  # the call is placed, its row can't be written
            assert person.post("/verify", data={"country": "NL", "phone": "06 12345677"}).status_code >= 500
        with httpx.Client(base_url=base, timeout=30) as person:  # the provider goes away before the check
            assert person.post("/verify", data={"country": "NL", "phone": "06 12345676"}).status_code == 303
            last_code = httpx.get(sandbox_url + "/_sandbox/calls").json()[0]["token"]
            codes = [call["token"] for call in httpx.get(sandbox_url + "/_sandbox/calls").json()]
            stop(sandbox)
            assert person.post("/confirm", data={"code": last_code}).status_code == 503
    finally:
        stop(server)
        stop(sandbox)
    written = log_path.read_text()
    assert 'GET /admin/numbers/***678 HTTP/1.1" 401' in written  # the access log, masked
    # The database error: the call's row could not be written, so the outbox kept it (and logged it, masked).
    assert "call placed as provider ref" in written
    assert "DEBUG" in written  # every logger at DEBUG really wrote
    assert len(codes) == 4  # the verified one, the failed call, the one left unrecorded, the last
    assert leaks(written, numbers, codes) == []
