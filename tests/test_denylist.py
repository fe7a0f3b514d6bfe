"""The operators' deny list: what an operator may type, the checks, and `voice2fa deny`."""

from __future__ import annotations

import contextlib
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import VOICE2FA, FakeClock, clean_env
from webapp import cli, denylist, migrate
from webapp.denylist import Entry, parse_entry
from webapp.models import AdminAction, DenyEntry

NOW = FakeClock().now

Sessions = async_sessionmaker[AsyncSession]


# parse_entry: what an operator types


@pytest.mark.parametrize(
    "typed",
    [
        "+31612345678",
        "+31 6 1234 5678",
        "+31 (0)6-12345678",
        "+31.6.12.34.56.78",
        "0031612345678",
        "00 31 6 12345678",
        " +31612345678 ",
    ],
)
def test_parse_entry_reads_a_number_in_any_format_as_e164(typed: str) -> None:
    assert parse_entry(typed) == Entry("number", "+31612345678")


@pytest.mark.parametrize("typed", ["+3197*", "+31 97*", "+31-97 *", "003197*"])
def test_parse_entry_reads_a_star_as_a_prefix(typed: str) -> None:
    assert parse_entry(typed) == Entry("prefix", "+3197")


@pytest.mark.parametrize("typed", ["+3197", "+31 970", "+3161234567"])
def test_parse_entry_never_guesses_a_prefix_from_a_mistyped_number(typed: str) -> None:
    with pytest.raises(ValueError, match=r"not a valid number; for a range of numbers write a prefix like \+3197\*"):
        parse_entry(typed)


def test_parse_entry_drops_a_written_trunk_zero() -> None:
    assert parse_entry("+31 (0)97*") == Entry("prefix", "+3197")
    assert parse_entry("+31 (0)6 12345678") == Entry("number", "+31612345678")


@pytest.mark.parametrize(
    ("typed", "network"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.9/24", "203.0.113.0/24"),  # host bits dropped, not refused
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("0011::/16", "11::/16"),  # starts with 00, as numbers dialled abroad do
    ],
)
def test_parse_entry_reads_an_ip_address_or_network(typed: str, network: str) -> None:
    assert parse_entry(typed) == Entry("ip", network)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("hello", "'hello' is not a number (with +country code), a prefix or an IP address/network"),
        ("+", "'+' is not a valid number"),
        ("*", "'*' is not a number prefix like +3197*"),
        ("+0*", "'+0*' is not a number prefix like +3197*"),
        ("+31*97", "'+31*97' is not a valid number"),
        ("+31 6 1234 5678 ext 9", "is not a valid number"),
        ("1.2.3.4/99", "'1.2.3.4/99' is not a number (with +country code), a prefix or an IP address/network"),
        ("", "Give a number (+31612345678), a prefix (+3197*) or an IP address or network."),
        ("   ", "Give a number (+31612345678), a prefix (+3197*) or an IP address or network."),
    ],
)
def test_parse_entry_refuses_garbage_with_a_helpful_message(typed: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_entry(typed)


# add, remove, entries: against the migrated SQLite file


async def add(db: Sessions, typed: str, reason: str | None = None) -> bool:
    async with db() as session:
        return await denylist.add(session, parse_entry(typed), reason=reason, by="test", now=NOW)


async def listed(db: Sessions) -> list[tuple[str, str, str | None, datetime, str]]:
    async with db() as session:
        return [(e.kind, e.value, e.reason, e.created_at, e.created_by) for e in await denylist.entries(session)]


async def test_add_stores_the_entry_with_who_when_and_why(db: Sessions) -> None:
    assert await add(db, "+31612345678", reason="fraud ring")
    assert await listed(db) == [("number", "+31612345678", "fraud ring", NOW, "test")]


async def test_add_of_an_entry_already_there_returns_false_and_keeps_one_row(db: Sessions) -> None:
    assert await add(db, "+31612345678", reason="first")
    assert not await add(db, "+31 6 12345678", reason="second")
    assert await listed(db) == [("number", "+31612345678", "first", NOW, "test")]


async def test_the_same_value_may_be_listed_as_a_number_and_as_a_prefix(db: Sessions) -> None:
    assert await add(db, "+31612345678")
    assert await add(db, "+31612345678*")
    assert [(kind, value) for kind, value, *_ in await listed(db)] == [
        ("number", "+31612345678"),
        ("prefix", "+31612345678"),
    ]


async def test_entries_are_sorted_by_kind_then_value(db: Sessions) -> None:
    for typed in ("203.0.113.0/24", "+3197*", "+31612345678", "+3196*"):
        await add(db, typed)
    assert [(kind, value) for kind, value, *_ in await listed(db)] == [
        ("ip", "203.0.113.0/24"),
        ("number", "+31612345678"),
        ("prefix", "+3196"),
        ("prefix", "+3197"),
    ]


async def test_remove_takes_the_entry_off(db: Sessions) -> None:
    await add(db, "+3197*")
    async with db() as session:
        assert await denylist.remove(session, parse_entry("+31 97*"))
    assert await listed(db) == []


async def test_remove_of_a_missing_entry_returns_false(db: Sessions) -> None:
    await add(db, "+3197*")
    async with db() as session:
        assert not await denylist.remove(session, parse_entry("+31612345678"))
    assert len(await listed(db)) == 1


# apply: an operator's action and its record, together or not at all


async def actions(db: Sessions) -> list[tuple[str, str, str, str, str | None]]:
    async with db() as session:
        rows = (await session.scalars(select(AdminAction).order_by(AdminAction.id))).all()
    return [(a.operator, a.action, a.kind, a.value, a.reason) for a in rows]


async def apply(db: Sessions, action: str, typed: str, reason: str | None = None) -> bool:
    async with db() as session:
        return await denylist.apply(session, action, parse_entry(typed), operator="ann", reason=reason, now=NOW)


async def test_apply_writes_the_entry_and_who_did_it(db: Sessions) -> None:
    assert await apply(db, "deny", "+3197*", reason="pumping")
    assert await listed(db) == [("prefix", "+3197", "pumping", NOW, "admin:ann")]
    assert await apply(db, "allow", "+3197*")
    assert await listed(db) == []
    assert await actions(db) == [
        ("ann", "deny", "prefix", "+3197", "pumping"),
        ("ann", "allow", "prefix", "+3197", None),
    ]


async def test_apply_that_changes_nothing_records_nothing(db: Sessions) -> None:
    assert await apply(db, "deny", "+31612345678")
    assert not await apply(db, "deny", "+31612345678")
    assert not await apply(db, "allow", "+3197*")
    assert await actions(db) == [("ann", "deny", "number", "+31612345678", None)]


async def refuse_records(db: Sessions, database_url: str) -> None:
    """A trigger that makes every insert into admin_actions fail, as a full disk or a lost connection would."""
    async with db() as session:
        if database_url.startswith("sqlite"):
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_records BEFORE INSERT ON admin_actions BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION refuse_records() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_records BEFORE INSERT ON admin_actions FOR EACH ROW EXECUTE FUNCTION refuse_records()"
                )
            )
        await session.commit()


async def test_a_deny_whose_record_fails_is_not_made(db: Sessions, database_url: str) -> None:
    await refuse_records(db, database_url)
    with contextlib.suppress(DBAPIError):
        assert not await apply(db, "deny", "+31612345678")
    assert await listed(db) == []


async def test_an_allow_whose_record_fails_is_not_made(db: Sessions, database_url: str) -> None:
    assert await apply(db, "deny", "+31612345678")
    await refuse_records(db, database_url)
    with contextlib.suppress(DBAPIError):
        assert not await apply(db, "allow", "+31612345678")
    assert [value for _, value, *_ in await listed(db)] == ["+31612345678"]


# number_denied, ip_denied


async def number_denied(db: Sessions, e164: str) -> bool:
    async with db() as session:
        return await denylist.number_denied(session, e164)


async def ip_denied(db: Sessions, ip: str) -> bool:
    async with db() as session:
        return await denylist.ip_denied(session, ip)


async def test_number_denied_by_the_exact_number(db: Sessions) -> None:
    await add(db, "+31612345678")
    assert await number_denied(db, "+31612345678")
    assert not await number_denied(db, "+31612345679")


async def test_number_denied_by_a_prefix_and_only_by_its_own_digits(db: Sessions) -> None:
    await add(db, "+3197*")
    assert await number_denied(db, "+31970123456789")
    assert not await number_denied(db, "+31961234567")
    assert not await number_denied(db, "+319")  # shorter than the prefix


async def test_a_stored_prefix_is_matched_literally_not_as_a_like_pattern(db: Sessions) -> None:
    async with db() as session:
        session.add_all(
            [
                DenyEntry(kind="prefix", value="+31_", created_at=NOW, created_by="test"),
                DenyEntry(kind="prefix", value="+44%", created_at=NOW, created_by="test"),
            ]
        )
        await session.commit()
    assert not await number_denied(db, "+31612345678")
    assert not await number_denied(db, "+447700900123")


async def test_number_denied_is_false_on_an_empty_list(db: Sessions) -> None:
    assert not await number_denied(db, "+31612345678")


async def test_ip_denied_for_an_address_inside_a_denied_network(db: Sessions) -> None:
    await add(db, "203.0.113.0/24")
    assert await ip_denied(db, "203.0.113.200")
    assert not await ip_denied(db, "203.0.114.1")


async def test_ip_denied_for_a_single_denied_address(db: Sessions) -> None:
    await add(db, "198.51.100.7")
    assert await ip_denied(db, "198.51.100.7")
    assert not await ip_denied(db, "198.51.100.8")


async def test_ip_denied_for_ipv6(db: Sessions) -> None:
    await add(db, "2001:db8::/32")
    assert await ip_denied(db, "2001:db8:1234::1")
    assert not await ip_denied(db, "2001:db9::1")


async def test_ip_denied_sees_an_ipv4_address_behind_a_dual_stack_socket(db: Sessions) -> None:
    """A server listening on "::" reports IPv4 clients as ::ffff:a.b.c.d."""
    await add(db, "203.0.113.0/24")
    assert await ip_denied(db, "::ffff:203.0.113.9")


async def test_ip_denied_keeps_ipv4_and_ipv6_apart(db: Sessions) -> None:
    await add(db, "0.0.0.0/0")
    assert not await ip_denied(db, "2001:db8::1")


@pytest.mark.parametrize("ip", ["unknown", "", "203.0.113.0/24", "+31612345678"])
async def test_ip_denied_is_false_for_a_string_that_is_no_ip_address(db: Sessions, ip: str) -> None:
    await add(db, "0.0.0.0/0")
    assert not await ip_denied(db, ip)


# `voice2fa deny`, run as a real process


def voice2fa_deny(cwd: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VOICE2FA), "deny", *args],
        cwd=cwd,
        env=clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.slow
def test_cli_deny_list_on_a_fresh_machine_makes_the_database_and_says_it_is_empty(tmp_path: Path) -> None:
    result = voice2fa_deny(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db", "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "(the deny list is empty)\n", "")
    assert (tmp_path / "x.db").is_file()


@pytest.mark.slow
async def test_cli_deny_add_stores_the_entry_by_the_os_user(tmp_path: Path, database_url: str, db: Sessions) -> None:
    result = voice2fa_deny(tmp_path, database_url, "add", "+31 6 1234 5678", "--reason", "fraud ring")
    assert (result.returncode, result.stdout) == (0, "denied number +31612345678\n")
    async with db() as session:
        [row] = (await session.scalars(select(DenyEntry))).all()
    assert (row.kind, row.value, row.reason) == ("number", "+31612345678", "fraud ring")
    assert row.created_by.startswith("cli:") and len(row.created_by) > len("cli:")
    assert abs((datetime.now(UTC) - row.created_at).total_seconds()) < 60


@pytest.mark.slow
async def test_cli_deny_add_of_an_entry_already_there_says_so_and_succeeds(
    tmp_path: Path, database_url: str, db: Sessions
) -> None:
    await add(db, "+3197*")
    result = voice2fa_deny(tmp_path, database_url, "add", "+31 97*")
    assert (result.returncode, result.stdout) == (0, "already denied: prefix +3197\n")


@pytest.mark.slow
async def test_cli_deny_list_shows_a_table_of_the_entries(tmp_path: Path, database_url: str, db: Sessions) -> None:
    await add(db, "203.0.113.0/24", reason="scraper")
    await add(db, "+3197*")
    result = voice2fa_deny(tmp_path, database_url, "list")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "kind    value           reason   added (UTC)          by",
        "ip      203.0.113.0/24  scraper  2026-11-26 12:00:00  test",
        "prefix  +3197           -        2026-11-26 12:00:00  test",
    ]


@pytest.mark.slow
async def test_cli_deny_remove_takes_the_entry_off(tmp_path: Path, database_url: str, db: Sessions) -> None:
    await add(db, "2001:db8::/32")
    result = voice2fa_deny(tmp_path, database_url, "remove", "2001:db8::/32")
    assert (result.returncode, result.stdout) == (0, "removed ip 2001:db8::/32\n")
    assert await listed(db) == []


@pytest.mark.slow
def test_cli_deny_remove_of_a_missing_entry_exits_1(tmp_path: Path, database_url: str) -> None:
    result = voice2fa_deny(tmp_path, database_url, "remove", "+31612345678")
    assert result.returncode == 1
    assert result.stderr == "not on the deny list: number +31612345678\n"


@pytest.mark.slow
def test_cli_deny_add_of_a_bad_value_exits_2_with_a_message(tmp_path: Path, database_url: str) -> None:
    result = voice2fa_deny(tmp_path, database_url, "add", "hello")
    assert result.returncode == 2
    assert (
        result.stderr == "voice2fa: 'hello' is not a number (with +country code), a prefix or an IP address/network\n"
    )


def test_cli_deny_without_the_table_asks_for_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What an operator sees on a database nobody migrated (PostgreSQL: the CLI never migrates it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    monkeypatch.setattr(migrate, "upgrade", lambda url: None)  # as on a database the CLI must not migrate
    assert cli.main(["deny", "list"]) == 2
    assert "run `alembic upgrade head` first" in capsys.readouterr().err
