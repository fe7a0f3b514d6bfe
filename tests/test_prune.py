"""Retention: `voice2fa prune` deletes old attempts and finished verifications, a batch at a time."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import VOICE2FA, attempts, clean_env, verifications
from webapp import cli, prune
from webapp.models import (
    Attempt,
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcAuthorizationRequest,
    OidcClient,
    Verification,
)
from webapp.prune import Pruned, parse_duration

Sessions = async_sessionmaker[AsyncSession]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
SECOND = timedelta(seconds=1)


def attempt(created_at: datetime, verification_id: str | None = None) -> Attempt:
    return Attempt(
        created_at=created_at,
        kind="start",
        number="+31612345678",
        ip="203.0.113.10",
        channel="tts",
        outcome="sent",
        verification_id=verification_id,
    )


def verification(
    id: str,  # noqa: A002 - id, as the column
    created_at: datetime,
    status: str = "verified",
    number: str = "+31612345678",
    expires_at: datetime | None = None,
) -> Verification:
    return Verification(
        id=id,
        number=number,
        country="NL",
        channel="tts",
        status=status,
        code_attempts=0,
        calls=1,
        ip="203.0.113.10",
        created_at=created_at,
        last_call_at=created_at,
        expires_at=expires_at or created_at + timedelta(minutes=10),
    )


async def add(db: Sessions, *rows: Attempt | Verification) -> None:
    """Store rows, verifications first (attempts refer to them)."""
    async with db.begin() as session:
        session.add_all([row for row in rows if isinstance(row, Verification)])
        await session.flush()
        session.add_all([row for row in rows if isinstance(row, Attempt)])


@pytest.mark.parametrize(
    ("typed", "age"),
    [
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        (" 7D ", timedelta(days=7)),
        ("36500d", timedelta(days=36500)),
    ],
)
def test_parse_duration_reads_a_number_and_a_unit(typed: str, age: timedelta) -> None:
    assert parse_duration(typed) == age


@pytest.mark.parametrize(
    "typed", ["90", "d", "-5d", "1.5d", "90 days", "3mo", "", "99999999999d", "999999999w", "36501d"]
)
def test_parse_duration_refuses_anything_else(typed: str) -> None:
    with pytest.raises(ValueError, match=r"is not an age|is more than"):
        parse_duration(typed)


async def test_prune_deletes_the_attempts_created_before_the_cutoff_only(db: Sessions) -> None:
    await add(
        db, *(attempt(at) for at in (CUTOFF - timedelta(days=400), CUTOFF - SECOND, CUTOFF, CUTOFF + SECOND, NOW))
    )
    assert await prune.prune(db, CUTOFF, NOW) == Pruned(attempts=2, verifications=0)
    assert [row.created_at for row in await attempts(db)] == [CUTOFF, CUTOFF + SECOND, NOW]


async def test_prune_deletes_in_batches_each_its_own_transaction(db: Sessions) -> None:
    await add(db, *(attempt(CUTOFF - timedelta(hours=n)) for n in range(1, 11)), attempt(NOW), attempt(NOW))
    steps: list[object] = []
    engine = db.kw["bind"].sync_engine

    def executed(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM ATTEMPTS"):
            steps.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "commit", lambda _conn: steps.append("commit"))
    assert await prune.prune(db, CUTOFF, NOW, batch=3) == Pruned(attempts=10, verifications=0)
    assert steps[:8] == [3, "commit", 3, "commit", 3, "commit", 1, "commit"]
    assert [row.created_at for row in await attempts(db)] == [NOW, NOW]


async def test_prune_deletes_finished_verifications_created_before_the_cutoff(db: Sessions) -> None:
    old = CUTOFF - timedelta(days=1)
    await add(
        db,
        *(verification(status, old, status=status) for status in ("verified", "failed", "expired", "cancelled")),
        verification("recent", CUTOFF + SECOND),
    )
    assert await prune.prune(db, CUTOFF, NOW, batch=3) == Pruned(attempts=0, verifications=4)
    assert [v.id for v in await verifications(db)] == ["recent"]


async def test_prune_keeps_a_verification_still_waiting_for_its_code_however_old(db: Sessions) -> None:
    await add(
        db, verification("live", CUTOFF - timedelta(days=1), status="pending", expires_at=NOW + timedelta(minutes=5))
    )
    assert await prune.prune(db, CUTOFF, NOW) == Pruned(attempts=0, verifications=0)
    assert [v.id for v in await verifications(db)] == ["live"]


async def test_prune_deletes_an_abandoned_pending_verification_past_its_expiry(db: Sessions) -> None:
    """Pending but expired holds no number for the flow, so it keeps none for us either."""
    await add(db, verification("abandoned", CUTOFF - timedelta(days=1), status="pending"))
    assert await prune.prune(db, CUTOFF, NOW) == Pruned(attempts=0, verifications=1)
    assert await verifications(db) == []


async def test_a_newer_attempt_outlives_its_deleted_verification_without_the_link(db: Sessions) -> None:
    await add(
        db,
        verification("old", CUTOFF - timedelta(days=1)),
        attempt(CUTOFF - timedelta(days=1), verification_id="old"),
        attempt(CUTOFF + timedelta(hours=1), verification_id="old"),
    )
    assert await prune.prune(db, CUTOFF, NOW) == Pruned(attempts=1, verifications=1)
    [kept] = await attempts(db)
    assert kept.created_at == CUTOFF + timedelta(hours=1) and kept.verification_id is None


async def test_a_dry_run_counts_what_prune_deletes_and_deletes_nothing(db: Sessions) -> None:
    old = CUTOFF - timedelta(days=1)
    await add(
        db,
        verification("old", old),
        verification("live", old, status="pending", number="+31612345679", expires_at=NOW + SECOND),
        attempt(old, verification_id="old"),
        attempt(old),
        attempt(NOW, verification_id="live"),
    )
    assert await prune.count(db, CUTOFF, NOW) == Pruned(attempts=2, verifications=1)
    assert (len(await attempts(db)), len(await verifications(db))) == (3, 2)
    assert await prune.prune(db, CUTOFF, NOW) == Pruned(attempts=2, verifications=1)


async def test_cli_prune_says_what_it_deleted(
    db: Sessions, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    await add(db, verification("old", old), attempt(old), attempt(recent))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    # The command runs its own event loop, as it does from a shell: give it a thread.
    assert await asyncio.to_thread(cli.main, ["prune", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would delete 1 attempt and 1 verification from before ")
    assert await asyncio.to_thread(cli.main, ["prune", "--older-than", "90d"]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 attempt and 1 verification from before ")
    assert [row.created_at for row in await attempts(db)] == [recent]


def test_cli_prune_refuses_a_bad_age_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VOICE2FA), "prune", "--older-than", "90 days"],
        cwd=tmp_path,
        env=clean_env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("voice2fa: --older-than: '90 days' is not an age: write a whole number and a unit")
    assert not (tmp_path / "x.db").exists()


def test_cli_prune_refuses_an_age_under_a_day_without_force(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert cli.main(["prune", "--older-than", "12h"]) == 2
    assert (
        capsys.readouterr().err
        == "voice2fa: --older-than 12h is less than a day: add --force to delete a log that recent\n"
    )
    assert not (tmp_path / "x.db").exists()


# -- the hand-off's requests, codes and access tokens ----------------------------------------------


async def handoff_rows(db: Sessions, expires_at: datetime, tag: str) -> None:
    """A client with one authorization request, one code and one access token, all expiring at `expires_at`."""
    async with db.begin() as session:
        if await session.get(OidcClient, "c" * 32) is None:
            session.add(
                OidcClient(
                    id="c" * 32,
                    name="Example shop",
                    secret_hash="x",
                    redirect_uris=["https://s.example/cb"],
                    created_at=NOW - timedelta(days=1),
                )
            )
            await session.flush()
        common = {"client_id": "c" * 32, "created_at": expires_at - timedelta(minutes=1), "expires_at": expires_at}
        session.add(
            OidcAuthorizationRequest(
                id=f"request-{tag}",
                redirect_uri="https://s.example/cb",
                scope="openid",
                code_challenge="x" * 43,
                login_hint="+31612345678",
                **common,
            )
        )
        session.add(
            OidcAuthorizationCode(
                code_hash=f"code-{tag}",
                redirect_uri="https://s.example/cb",
                scope="openid",
                code_challenge="x" * 43,
                number="+31612345678",
                auth_time=NOW,
                **common,
            )
        )
        session.add(
            OidcAccessToken(
                token_hash=f"token-{tag}", code_hash=f"code-{tag}", number="+31612345678", scope="openid", **common
            )
        )


async def handoff_left(db: Sessions) -> list[str]:
    async with db() as session:
        return sorted(
            [
                *(await session.scalars(select(OidcAuthorizationRequest.id))).all(),
                *(await session.scalars(select(OidcAuthorizationCode.code_hash))).all(),
                *(await session.scalars(select(OidcAccessToken.token_hash))).all(),
            ]
        )


async def test_prune_deletes_the_handoffs_rows_once_expired_whatever_the_cutoff(db: Sessions) -> None:
    await handoff_rows(db, NOW - SECOND, "expired")
    await handoff_rows(db, NOW + SECOND, "live")
    assert await prune.count(db, CUTOFF, NOW) == Pruned(
        0, 0, authorization_requests=1, authorization_codes=1, access_tokens=1
    )
    assert await prune.prune(db, CUTOFF, NOW, batch=1) == Pruned(
        0, 0, authorization_requests=1, authorization_codes=1, access_tokens=1
    )
    assert await handoff_left(db) == ["code-live", "request-live", "token-live"]


async def test_cli_prune_says_what_of_the_handoff_it_deleted(
    db: Sessions, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await handoff_rows(db, datetime.now(UTC) - timedelta(hours=1), "old")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(cli.main, ["prune"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted 0 attempts and 0 verifications from before ")
    assert out.endswith(
        ", and 1 authorization request, 1 authorization code, 1 access token and 0 idempotency keys that have expired\n"
    )
    assert await handoff_left(db) == []
